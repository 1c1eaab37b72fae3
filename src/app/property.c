/* property.c: see property.h. Semantics of qubes/__init__.py property and
 * PropertyHolder. */
#include "property.h"

#include "qubes-error.h"
#include "qubes-parse.h"

#include <string.h>

/* The reference's default stage is 2; 0 in a table means that. */
static int stage(const QubesPropDef *def)
{
    return def->load_stage ? def->load_stage : 2;
}

static gint def_cmp(gconstpointer a, gconstpointer b)
{
    const QubesPropDef *x = *(const QubesPropDef *const *)a;
    const QubesPropDef *y = *(const QubesPropDef *const *)b;
    if (stage(x) != stage(y))
        return stage(x) < stage(y) ? -1 : 1;
    if (x->order != y->order)
        return x->order < y->order ? -1 : 1;
    return strcmp(x->name, y->name);
}

void qubes_props_init(QubesPropHolder *holder, QubesEmitter *emitter,
                      const char *class_name, const QubesPropDef *const *tables,
                      gpointer owner)
{
    holder->emitter = emitter;
    holder->class_name = class_name;
    holder->owner = owner;
    holder->defs = g_ptr_array_new();
    holder->values =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);
    for (const QubesPropDef *const *t = tables; t && *t; t++) {
        for (const QubesPropDef *d = *t; d->name; d++) {
            if (g_hash_table_contains(seen, d->name))
                continue; /* hidden by a subclass */
            g_hash_table_add(seen, (gpointer)d->name);
            g_ptr_array_add(holder->defs, (gpointer)d);
        }
    }
    g_ptr_array_sort(holder->defs, def_cmp);
}

void qubes_props_clear(QubesPropHolder *holder)
{
    g_clear_pointer(&holder->defs, g_ptr_array_unref);
    g_clear_pointer(&holder->values, g_hash_table_unref);
}

const GPtrArray *qubes_props_list(QubesPropHolder *holder)
{
    return holder->defs;
}

const QubesPropDef *qubes_props_def(QubesPropHolder *holder, const char *name,
                                    GError **error)
{
    for (guint i = 0; i < holder->defs->len; i++) {
        const QubesPropDef *d = holder->defs->pdata[i];
        if (strcmp(d->name, name) == 0)
            return d;
    }
    g_set_error(error, QUBES_ERROR, QUBES_ERROR_NO_SUCH_PROPERTY,
                "Invalid property %s of %s", name, holder->class_name);
    return NULL;
}

const char *qubes_prop_type_name(QubesPropType type)
{
    switch (type) {
    case QUBES_PROP_INT:
        return "int";
    case QUBES_PROP_BOOL:
        return "bool";
    case QUBES_PROP_VM:
        return "vm";
    case QUBES_PROP_LABEL:
        return "label";
    case QUBES_PROP_STR:
    default:
        return "str";
    }
}

static char *default_of(QubesPropHolder *holder, const QubesPropDef *def)
{
    if (def->default_func)
        return def->default_func(holder, def);
    return g_strdup(def->default_value);
}

char *qubes_props_get_default(QubesPropHolder *holder, const char *name,
                              GError **error)
{
    const QubesPropDef *def = qubes_props_def(holder, name, error);
    return def ? default_of(holder, def) : NULL;
}

gboolean qubes_props_is_default(QubesPropHolder *holder, const char *name)
{
    return !g_hash_table_contains(holder->values, name);
}

gboolean qubes_props_get(QubesPropHolder *holder, const char *name,
                         char **value, gboolean *is_default, GError **error)
{
    const QubesPropDef *def = qubes_props_def(holder, name, error);
    if (!def)
        return FALSE;
    const char *set = g_hash_table_lookup(holder->values, name);
    if (is_default)
        *is_default = set == NULL;
    *value = set ? g_strdup(set) : default_of(holder, def);
    return TRUE;
}

static gboolean value_error(GError **error, QubesPropHolder *holder,
                            const QubesPropDef *def, const char *why)
{
    g_set_error(error, QUBES_ERROR, QUBES_ERROR_PROPERTY_VALUE,
                "Invalid value for property %s of %s: %s", def->name,
                holder->class_name, why);
    return FALSE;
}

gboolean qubes_prop_error(GError **error, QubesPropHolder *holder,
                          const QubesPropDef *def, const char *value,
                          const char *why)
{
    g_set_error(error, QUBES_ERROR, QUBES_ERROR_PROPERTY_VALUE,
                "Invalid value '%s' for property '%s' of %s: %s", value,
                def->name, holder->class_name, why);
    return FALSE;
}

/* Refuses an integer below @min ("must be positive[ or zero]"). */
static char *at_least(QubesPropHolder *holder, const QubesPropDef *def,
                      const char *value, gint64 min, GError **error)
{
    if (g_ascii_strtoll(value, NULL, 10) < min) {
        g_autofree char *why = g_strdup_printf(
            "%s must be positive%s", def->name, min ? "" : " or zero");
        qubes_prop_error(error, holder, def, value, why);
        return NULL;
    }
    return g_strdup(value);
}

char *qubes_prop_setter_positive(QubesPropHolder *holder,
                                 const QubesPropDef *def, const char *value,
                                 GError **error)
{
    return at_least(holder, def, value, 1, error);
}

char *qubes_prop_setter_non_negative(QubesPropHolder *holder,
                                     const QubesPropDef *def, const char *value,
                                     GError **error)
{
    return at_least(holder, def, value, 0, error);
}

/* The coarse check every value passes before its setter (the reference's
 * property.sanitize), giving the canonical form of ints and booleans. */
static char *sanitize(QubesPropHolder *holder, const QubesPropDef *def,
                      const char *untrusted, GError **error)
{
    for (const char *p = untrusted; *p; p++) {
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) {
            value_error(error, holder, def,
                        "invalid characters in property value");
            return NULL;
        }
    }
    if (def->type == QUBES_PROP_INT) {
        gint64 v;
        if (!qubes_parse_number(untrusted, TRUE, def->name,
                                QUBES_ERROR_PROPERTY_VALUE, &v, error))
            return NULL;
        return g_strdup_printf("%" G_GINT64_FORMAT, v);
    }
    if (def->type == QUBES_PROP_BOOL) {
        static const char *const yes[] = {"1", "yes", "true", "on"};
        static const char *const no[] = {"0", "no", "false", "off"};
        for (size_t i = 0; i < G_N_ELEMENTS(yes); i++) {
            if (g_ascii_strcasecmp(untrusted, yes[i]) == 0)
                return g_strdup("True");
            if (g_ascii_strcasecmp(untrusted, no[i]) == 0)
                return g_strdup("False");
        }
        value_error(error, holder, def, "not a boolean");
        return NULL;
    }
    return g_strdup(untrusted);
}

static gboolean fire(QubesPropHolder *holder, const char *prefix,
                     const char *name, const char *newvalue,
                     const char *oldvalue, GError **error)
{
    if (!holder->emitter)
        return TRUE;
    g_autofree char *event = g_strconcat(prefix, name, NULL);
    const char *kwargs[7];
    int n = 0;
    kwargs[n++] = "name";
    kwargs[n++] = name;
    if (newvalue) {
        kwargs[n++] = "newvalue";
        kwargs[n++] = newvalue;
    }
    if (oldvalue) {
        kwargs[n++] = "oldvalue";
        kwargs[n++] = oldvalue;
    }
    kwargs[n] = NULL;
    g_autoptr(GPtrArray) effects =
        qubes_emitter_fire(holder->emitter, event, kwargs, error);
    return effects != NULL;
}

/* Refuses changing a read-only property, or a write-once one that is
 * set; @verb says which change ("set", "reset"). */
static gboolean check_changeable(QubesPropHolder *holder,
                                 const QubesPropDef *def, const char *verb,
                                 GError **error)
{
    if (def->flags & QUBES_PROP_READ_ONLY) {
        g_autofree char *why = g_strdup_printf("it cannot be %s", verb);
        return value_error(error, holder, def, why);
    }
    if ((def->flags & QUBES_PROP_WRITE_ONCE) &&
        !qubes_props_is_default(holder, def->name))
        return value_error(error, holder, def,
                           "it is write-once and already set");
    return TRUE;
}

/* An untrusted value sanitised for its type, then through the setter
 * when @with_setter: the canonical string (new), or NULL. */
static char *checked_value(QubesPropHolder *holder, const QubesPropDef *def,
                           const char *untrusted_value, gboolean with_setter,
                           GError **error)
{
    char *value = sanitize(holder, def, untrusted_value, error);
    if (!value || !with_setter || !def->setter)
        return value;
    char *checked = def->setter(holder, def, value, error);
    g_free(value);
    return checked;
}

gboolean qubes_props_set(QubesPropHolder *holder, const char *name,
                         const char *untrusted_value, GError **error)
{
    const QubesPropDef *def = qubes_props_def(holder, name, error);
    if (!def)
        return FALSE;
    if (!check_changeable(holder, def, "set", error))
        return FALSE;
    g_autofree char *value =
        checked_value(holder, def, untrusted_value, TRUE, error);
    if (!value)
        return FALSE;
    g_autofree char *old = NULL;
    if (!qubes_props_get(holder, name, &old, NULL, error))
        return FALSE;
    if (!fire(holder, "property-pre-set:", name, value, old, error))
        return FALSE;
    g_hash_table_replace(holder->values, g_strdup(name), g_strdup(value));
    /* The change is made; a failing handler of the post-event is
     * reported but does not undo it (as in the reference). */
    return fire(holder, "property-set:", name, value, old, error);
}

gboolean qubes_props_reset(QubesPropHolder *holder, const char *name,
                           GError **error)
{
    const QubesPropDef *def = qubes_props_def(holder, name, error);
    if (!def)
        return FALSE;
    if (!check_changeable(holder, def, "reset", error))
        return FALSE;
    g_autofree char *old = NULL;
    if (!qubes_props_get(holder, name, &old, NULL, error))
        return FALSE;
    if (!fire(holder, "property-pre-reset:", name, NULL, old, error) ||
        !fire(holder, "property-pre-del:", name, NULL, old, error))
        return FALSE;
    g_hash_table_remove(holder->values, name);
    return fire(holder, "property-reset:", name, NULL, old, error) &&
           fire(holder, "property-del:", name, NULL, old, error);
}

gboolean qubes_props_load(QubesPropHolder *holder, const GPtrArray *props,
                          int load_stage, GError **error)
{
    for (guint i = 0; i < props->len; i++) {
        const QxProperty *p = props->pdata[i];
        const QubesPropDef *def = qubes_props_def(holder, p->name, NULL);
        if (!def) {
            g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                        "property %s not applicable to %s", p->name,
                        holder->class_name);
            return FALSE;
        }
        if (load_stage && stage(def) != load_stage)
            continue;
        /* A read-only property's setter forbids setting, not loading. */
        g_autofree char *value =
            checked_value(holder, def, p->value ? p->value : "",
                          !(def->flags & QUBES_PROP_READ_ONLY), error);
        if (!value)
            return FALSE;
        g_hash_table_replace(holder->values, g_strdup(p->name),
                             g_steal_pointer(&value));
    }
    return TRUE;
}

GPtrArray *qubes_props_save(QubesPropHolder *holder)
{
    GPtrArray *out =
        g_ptr_array_new_with_free_func((GDestroyNotify)qx_property_free);
    for (guint i = 0; i < holder->defs->len; i++) {
        const QubesPropDef *def = holder->defs->pdata[i];
        const char *v = g_hash_table_lookup(holder->values, def->name);
        if (!v || (def->flags & QUBES_PROP_DONT_SAVE))
            continue;
        QxProperty *p = g_new0(QxProperty, 1);
        p->name = g_strdup(def->name);
        p->value = g_strdup(v);
        p->is_ref = (def->flags & QUBES_PROP_SAVE_VIA_REF) != 0;
        g_ptr_array_add(out, p);
    }
    return out;
}
