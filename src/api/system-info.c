/* system-info.c: internal.GetSystemInfo's JSON and its cache; see
 * system-info.h. */
#include "system-info.h"

#include <string.h>

/* One domain's text, the power state left out: "NAME": {... "power_state":
 * is @head, ", \"uuid\": ...}" is @tail. */
typedef struct {
    QubesDomain *dom; /* referenced */
    char *head;
    char *tail;
    gsize head_len, tail_len;
} Entry;

struct _QubesSystemInfo {
    QubesApp *app;
    GArray *entries;   /* Entry, in the answer's order; NULL: invalid */
    GHashTable *index; /* QubesDomain* -> its entry's position + 1 */
    GHashTable *stale; /* set of QubesDomain*: entries to make anew */
    GArray *class_handlers;
    guint app_handlers[4];
};

/* The events that change a domain's text (the reference's list, less
 * the power events: the state is read on each call). */
static const char *const vm_events[] = {
    "domain-tag-add:*",
    "domain-tag-delete:*",
    "domain-feature-set:internal",
    "domain-feature-delete:internal",
    "property-set:template_for_dispvms",
    "property-reset:template_for_dispvms",
    "property-set:default_dispvm",
    "property-reset:default_dispvm",
    "property-set:label",
    "property-reset:label",
    "property-set:guivm",
    "property-reset:guivm",
    "property-set:relayvm",
    "property-reset:relayvm",
    "property-set:transport_rpc",
    "property-reset:transport_rpc",
    "property-set:uuid",
    "property-reset:uuid",
};

/* The app's: a domain added or removed, and any global property (the
 * defaults of default_dispvm, guivm, ...). */
static const char *const app_events[] = {
    "domain-add",
    "domain-delete",
    "property-set:*",
    "property-reset:*",
};

static void entry_clear(gpointer p)
{
    Entry *e = p;
    qubes_domain_unref(e->dom);
    g_free(e->head);
    g_free(e->tail);
}

static void invalidate(QubesSystemInfo *info)
{
    g_clear_pointer(&info->entries, g_array_unref);
    g_hash_table_remove_all(info->index);
    g_hash_table_remove_all(info->stale);
}

/* A domain's own change: its entry alone is made anew (no other
 * domain's text depends on its tags, features or these properties: a
 * default that follows another qube names it, and the app's defaults
 * invalidate everything). */
static gboolean on_vm_change(QubesEvent *event, gpointer data, GError **error)
{
    QubesSystemInfo *info = data;
    if (info->entries)
        g_hash_table_add(info->stale, qubes_domain_of_emitter(event->subject));
    return TRUE;
}

static gboolean on_change(QubesEvent *event, gpointer data, GError **error)
{
    invalidate(data);
    return TRUE;
}

QubesSystemInfo *qubes_system_info_new(QubesApp *app)
{
    QubesSystemInfo *info = g_new0(QubesSystemInfo, 1);
    info->app = app;
    info->class_handlers = g_array_new(FALSE, FALSE, sizeof(guint));
    info->index = g_hash_table_new(NULL, NULL);
    info->stale = g_hash_table_new(NULL, NULL);
    for (guint i = 0; i < G_N_ELEMENTS(vm_events); i++) {
        guint id = qubes_event_add_class_handler(
            app->registry, "BaseVM", vm_events[i], on_vm_change,
            QUBES_HANDLER_DEFAULT, info, NULL);
        g_array_append_val(info->class_handlers, id);
    }
    for (guint i = 0; i < G_N_ELEMENTS(app_events); i++)
        info->app_handlers[i] = qubes_emitter_add_handler(
            &app->emitter, app_events[i], on_change, info, NULL);
    return info;
}

void qubes_system_info_free(QubesSystemInfo *info)
{
    if (!info)
        return;
    for (guint i = 0; i < info->class_handlers->len; i++)
        qubes_event_remove_class_handler(
            info->app->registry, g_array_index(info->class_handlers, guint, i));
    g_array_unref(info->class_handlers);
    for (guint i = 0; i < G_N_ELEMENTS(info->app_handlers); i++)
        qubes_emitter_remove_handler(&info->app->emitter,
                                     info->app_handlers[i]);
    invalidate(info);
    g_hash_table_unref(info->index);
    g_hash_table_unref(info->stale);
    g_free(info);
}

void qubes_json_append_string(GString *out, const char *s)
{
    g_string_append_c(out, '"');
    const char *p = s;
    while (*p) {
        guchar c = (guchar)*p;
        if (c >= ' ' && c <= '~' && c != '"' && c != '\\') {
            g_string_append_c(out, (char)c);
            p++;
            continue;
        }
        const char *named = NULL;
        switch (c) {
        case '"':
            named = "\\\"";
            break;
        case '\\':
            named = "\\\\";
            break;
        case '\b':
            named = "\\b";
            break;
        case '\f':
            named = "\\f";
            break;
        case '\n':
            named = "\\n";
            break;
        case '\r':
            named = "\\r";
            break;
        case '\t':
            named = "\\t";
            break;
        default:
            break;
        }
        if (named) {
            g_string_append(out, named);
            p++;
            continue;
        }
        gunichar u = c < 0x80 ? c : g_utf8_get_char_validated(p, -1);
        if (u == (gunichar)-1 || u == (gunichar)-2) {
            u = 0xfffd; /* not UTF-8: one byte taken */
            p++;
        } else {
            p = c < 0x80 ? p + 1 : g_utf8_next_char(p);
        }
        if (u > 0xffff) {
            u -= 0x10000;
            g_string_append_printf(out, "\\u%04x\\u%04x", 0xd800 + (u >> 10),
                                   0xdc00 + (u & 0x3ff));
        } else {
            g_string_append_printf(out, "\\u%04x", u);
        }
    }
    g_string_append_c(out, '"');
}

/* A string value, or null for NULL and "" (the reference's
 * "X if getattr(domain, X, None) else None"). */
static void append_value(GString *out, const char *value)
{
    if (value && *value)
        qubes_json_append_string(out, value);
    else
        g_string_append(out, "null");
}

/* ", \"NAME\": " and the value of @d's property NAME (null when none, or
 * when the class has no such property) */
static void append_prop(GString *out, QubesDomain *d, const char *name)
{
    g_autofree char *v = qubes_props_value(&d->props, name);
    g_string_append_printf(out, ", \"%s\": ", name);
    append_value(out, v);
}

static void make_entry(QubesSystemInfo *info, QubesDomain *d, Entry *e)
{
    GString *out = g_string_sized_new(384);
    qubes_json_append_string(out, d->name);
    g_string_append(out, ": {\"internal\": ");
    const char *internal = qubes_domain_feature_get(d, "internal");
    if (internal)
        qubes_json_append_string(out, internal);
    else
        g_string_append(out, "null");

    g_string_append(out, ", \"tags\": [");
    g_autoptr(GPtrArray) tags = qubes_domain_tags(d); /* sorted */
    for (guint i = 0; i < tags->len; i++) {
        if (i)
            g_string_append(out, ", ");
        qubes_json_append_string(out, tags->pdata[i]);
    }
    g_string_append(out, "], \"type\": ");
    qubes_json_append_string(out, d->klass->name);

    g_autofree char *tfd = qubes_props_value(&d->props, "template_for_dispvms");
    g_string_append(out, ", \"template_for_dispvms\": ");
    g_string_append(out, g_strcmp0(tfd, "True") == 0 ? "true" : "false");

    append_prop(out, d, "default_dispvm");

    g_autofree char *label = qubes_props_value(&d->props, "label");
    const QxLabel *l =
        label ? qubes_app_get_label(info->app, label, NULL) : NULL;
    g_string_append(out, ", \"icon\": ");
    g_autofree char *icon = g_strconcat("appvm-", l ? l->name : "", NULL);
    qubes_json_append_string(out, icon);
    g_string_append(out, ", \"label\": ");
    qubes_json_append_string(out, l ? l->color : "");

    append_prop(out, d, "guivm");
    append_prop(out, d, "relayvm");
    append_prop(out, d, "transport_rpc");
    g_string_append(out, ", \"power_state\": ");
    e->head_len = out->len;
    e->head = g_string_free(out, FALSE);

    g_autofree char *uuid = qubes_props_value(&d->props, "uuid");
    GString *tail = g_string_new(", \"uuid\": ");
    qubes_json_append_string(tail, uuid ? uuid : "");
    g_string_append_c(tail, '}');
    e->tail_len = tail->len;
    e->tail = g_string_free(tail, FALSE);
    e->dom = qubes_domain_ref(d);
}

static void rebuild(QubesSystemInfo *info)
{
    GPtrArray *domains = info->app->domains;
    g_autoptr(GPtrArray) sorted = g_ptr_array_sized_new(domains->len);
    for (guint i = 0; i < domains->len; i++)
        g_ptr_array_add(sorted, domains->pdata[i]);
    g_ptr_array_sort(sorted, qubes_domain_cmp);
    info->entries = g_array_sized_new(FALSE, TRUE, sizeof(Entry), sorted->len);
    g_array_set_clear_func(info->entries, entry_clear);
    for (guint i = 0; i < sorted->len; i++) {
        Entry e;
        make_entry(info, sorted->pdata[i], &e);
        g_array_append_val(info->entries, e);
        g_hash_table_insert(info->index, sorted->pdata[i],
                            GUINT_TO_POINTER(i + 1));
    }
}

/* The entries of the domains that changed, made anew. */
static void refresh(QubesSystemInfo *info)
{
    GHashTableIter it;
    gpointer dom;
    g_hash_table_iter_init(&it, info->stale);
    while (g_hash_table_iter_next(&it, &dom, NULL)) {
        guint pos = GPOINTER_TO_UINT(g_hash_table_lookup(info->index, dom));
        if (!pos) /* not in the answer yet: a domain-add will come */
            continue;
        Entry *e = &g_array_index(info->entries, Entry, pos - 1);
        entry_clear(e);
        make_entry(info, dom, e);
    }
    g_hash_table_remove_all(info->stale);
}

char *qubes_system_info_json(QubesSystemInfo *info)
{
    if (!info->entries)
        rebuild(info);
    else if (g_hash_table_size(info->stale))
        refresh(info);

    gsize size = 32;
    for (guint i = 0; i < info->entries->len; i++) {
        Entry *e = &g_array_index(info->entries, Entry, i);
        size += e->head_len + e->tail_len + 16;
    }
    GString *out = g_string_sized_new(size);
    g_string_append(out, "{\"domains\": {");
    for (guint i = 0; i < info->entries->len; i++) {
        Entry *e = &g_array_index(info->entries, Entry, i);
        if (i)
            g_string_append(out, ", ");
        g_string_append_len(out, e->head, (gssize)e->head_len);
        g_string_append_c(out, '"');
        g_string_append(out, qubes_domain_power_state(e->dom));
        g_string_append_c(out, '"');
        g_string_append_len(out, e->tail, (gssize)e->tail_len);
    }
    g_string_append(out, "}}");
    return g_string_free(out, FALSE);
}
