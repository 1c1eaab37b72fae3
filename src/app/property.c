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

/* A class's definitions: sorted by load stage, order and name, and by
 * name. */
typedef struct _QubesPropSchema {
    GPtrArray *defs;     /* const QubesPropDef* */
    GHashTable *by_name; /* name -> const QubesPropDef* */
} QubesPropSchema;

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
    holder->values =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    /* The sorted list and the index depend on @tables only: made once
     * for each (a class's tables are static), kept for the process and
     * shared by every holder of the class, which saves a thousand
     * domains a thousand copies. */
    static GHashTable *schemas; /* tables -> QubesPropSchema */
    G_LOCK_DEFINE_STATIC(schemas);
    G_LOCK(schemas);
    if (!schemas)
        schemas = g_hash_table_new(NULL, NULL);
    QubesPropSchema *schema = g_hash_table_lookup(schemas, tables);
    if (!schema) {
        schema = g_new0(QubesPropSchema, 1);
        schema->defs = g_ptr_array_new();
        schema->by_name = g_hash_table_new(g_str_hash, g_str_equal);
        for (const QubesPropDef *const *t = tables; t && *t; t++) {
            for (const QubesPropDef *d = *t; d->name; d++) {
                if (g_hash_table_contains(schema->by_name, d->name))
                    continue; /* hidden by a subclass */
                g_hash_table_insert(schema->by_name, (gpointer)d->name,
                                    (gpointer)d);
                g_ptr_array_add(schema->defs, (gpointer)d);
            }
        }
        g_ptr_array_sort(schema->defs, def_cmp);
        g_hash_table_insert(schemas, (gpointer)tables, schema);
    }
    G_UNLOCK(schemas);
    holder->schema = schema;
}

void qubes_props_clear(QubesPropHolder *holder)
{
    holder->schema = NULL;
    g_clear_pointer(&holder->values, g_hash_table_unref);
}

const GPtrArray *qubes_props_list(QubesPropHolder *holder)
{
    return holder->schema->defs;
}

const QubesPropDef *qubes_props_def(QubesPropHolder *holder, const char *name,
                                    GError **error)
{
    const QubesPropDef *d = g_hash_table_lookup(holder->schema->by_name, name);
    if (d)
        return d;
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

char *qubes_props_value(QubesPropHolder *holder, const char *name)
{
    char *v = NULL;
    qubes_props_get(holder, name, &v, NULL, NULL);
    return v;
}

gboolean qubes_prop_error(GError **error, QubesPropHolder *holder,
                          const QubesPropDef *def, const char *value,
                          const char *why)
{
    if (why) {
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_PROPERTY_VALUE,
                            why);
        return FALSE;
    }
    g_autofree char *r = qubes_py_repr(value);
    g_set_error(error, QUBES_ERROR, QUBES_ERROR_PROPERTY_VALUE,
                "Invalid value %s for property '%s' of %s", r, def->name,
                holder->class_name);
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

/* QubesValueError with the reference's message (often none at all). */
static char *bad_value(GError **error, const char *msg)
{
    g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_VALUE, msg ? msg : "");
    return NULL;
}

static gboolean py_space(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

/* Python's int() of a string: blanks around, a sign, digits with single
 * underscores between them, of any size. The decimal form (new: no
 * leading zeros, "-" only before a value other than 0), or NULL. */
static char *py_int(const char *s)
{
    while (py_space(*s))
        s++;
    gboolean neg = *s == '-';
    if (*s == '-' || *s == '+')
        s++;
    GString *digits = g_string_new(NULL);
    for (; *s && !py_space(*s); s++) {
        if (*s == '_' && digits->len && g_ascii_isdigit(s[1]))
            continue;
        if (!g_ascii_isdigit(*s)) {
            g_string_free(digits, TRUE);
            return NULL;
        }
        g_string_append_c(digits, *s);
    }
    while (py_space(*s))
        s++;
    if (!digits->len || *s) {
        g_string_free(digits, TRUE);
        return NULL;
    }
    gsize z = 0;
    while (z + 1 < digits->len && digits->str[z] == '0')
        z++;
    g_string_erase(digits, 0, (gssize)z);
    if (neg && strcmp(digits->str, "0") != 0)
        g_string_prepend_c(digits, '-');
    return g_string_free(digits, FALSE);
}

/* The coarse check every value passes before its setter (the reference's
 * property.sanitize and VMProperty.sanitize), giving the canonical form
 * of ints and booleans. */
static char *sanitize(QubesPropHolder *holder, const QubesPropDef *def,
                      const char *untrusted, GError **error)
{
    for (const char *p = untrusted; *p; p++) {
        if ((unsigned char)*p >= 0x80) /* VMProperty.sanitize: no words */
            return bad_value(error, def->type == QUBES_PROP_VM
                                        ? NULL
                                        : "Non-ASCII bytes in property value");
    }
    switch (def->type) {
    case QUBES_PROP_INT: {
        char *v = py_int(untrusted);
        return v ? v
                 : bad_value(error, "Failed to parse property value as int");
    }
    case QUBES_PROP_BOOL: {
        static const char *const yes[] = {"1", "yes", "true", "on"};
        static const char *const no[] = {"0", "no", "false", "off"};
        for (size_t i = 0; i < G_N_ELEMENTS(yes); i++) {
            if (g_ascii_strcasecmp(untrusted, yes[i]) == 0)
                return g_strdup("True");
            if (g_ascii_strcasecmp(untrusted, no[i]) == 0)
                return g_strdup("False");
        }
        g_autofree char *r = qubes_py_repr(untrusted);
        g_autofree char *why =
            g_strdup_printf("Invalid literal for boolean property: %s", r);
        return bad_value(error, why);
    }
    case QUBES_PROP_VM: {
        if (*untrusted && !qubes_validate_vm_name(untrusted, error))
            return NULL;
        return g_strdup(untrusted);
    }
    case QUBES_PROP_IP4:
    case QUBES_PROP_IP6: {
        GSocketFamily want = def->type == QUBES_PROP_IP4 ? G_SOCKET_FAMILY_IPV4
                                                         : G_SOCKET_FAMILY_IPV6;
        g_autoptr(GInetAddress) a = g_inet_address_new_from_string(untrusted);
        if (!a || g_inet_address_get_family(a) != want ||
            strchr(untrusted, '%'))
            return bad_value(error, def->type == QUBES_PROP_IP4
                                        ? "Failed to parse property value "
                                          "as IPv4Address"
                                        : "Failed to parse property value "
                                          "as IPv6Address");
        return g_inet_address_to_string(a);
    }
    case QUBES_PROP_UUID:
        if (!g_uuid_string_is_valid(untrusted))
            return bad_value(error, "Failed to parse property value as UUID");
        return g_ascii_strdown(untrusted, -1);
    case QUBES_PROP_STR:
    case QUBES_PROP_LABEL:
    default:
        /* string.printable */
        for (const char *p = untrusted; *p; p++) {
            if ((unsigned char)*p < 0x20 && !(*p >= '\t' && *p <= '\r'))
                return bad_value(error, "Invalid characters in property value");
            if ((unsigned char)*p == 0x7f)
                return bad_value(error, "Invalid characters in property value");
        }
        return g_strdup(untrusted);
    }
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

void qubes_props_notify_reset(QubesPropHolder *holder, const char *name,
                              const char *oldvalue)
{
    fire(holder, "property-reset:", name, NULL, oldvalue, NULL);
}

/* The reference's write-once rule: only while not set. (It raises a bare
 * AttributeError, which its clients see as a dropped connection; we
 * answer with the reason.) */
static gboolean check_write_once(QubesPropHolder *holder,
                                 const QubesPropDef *def, GError **error)
{
    if ((def->flags & QUBES_PROP_WRITE_ONCE) &&
        !qubes_props_is_default(holder, def->name)) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_PROPERTY_VALUE,
                    "property '%s' is write-once and already set", def->name);
        return FALSE;
    }
    return TRUE;
}

/* property.forbidden, the setter of read-only (stateless) properties. */
static gboolean check_settable(QubesPropHolder *holder, const QubesPropDef *def,
                               GError **error)
{
    if (def->flags & QUBES_PROP_READ_ONLY) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_PROPERTY_VALUE,
                    "property '%s' on %s instance cannot be set", def->name,
                    holder->class_name);
        return FALSE;
    }
    return TRUE;
}

/* Puts back the value @name had (@was; NULL: not set). */
static void restore(QubesPropHolder *holder, const char *name, const char *was)
{
    if (was)
        g_hash_table_replace(holder->values, g_strdup(name), g_strdup(was));
    else
        g_hash_table_remove(holder->values, name);
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
    /* The reference's order: sanitize (the API), write-once, setter. */
    g_autofree char *sane = sanitize(holder, def, untrusted_value, error);
    if (!sane || !check_write_once(holder, def, error) ||
        !check_settable(holder, def, error))
        return FALSE;
    g_autofree char *value =
        def->setter ? def->setter(holder, def, sane, error) : g_strdup(sane);
    if (!value)
        return FALSE;
    g_autofree char *old = NULL;
    if (!qubes_props_get(holder, name, &old, NULL, error))
        return FALSE;
    if (!fire(holder, "property-pre-set:", name, value, old, error))
        return FALSE;
    g_autofree char *was = g_strdup(g_hash_table_lookup(holder->values, name));
    g_hash_table_replace(holder->values, g_strdup(name), g_strdup(value));
    if (holder->check && !holder->check(holder, name, error)) {
        restore(holder, name, was);
        return FALSE;
    }
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
    if (!check_write_once(holder, def, error))
        return FALSE;
    g_autofree char *old = NULL;
    if (!qubes_props_get(holder, name, &old, NULL, error))
        return FALSE;
    if (!fire(holder, "property-pre-reset:", name, NULL, old, error) ||
        !fire(holder, "property-pre-del:", name, NULL, old, error))
        return FALSE;
    g_autofree char *was = g_strdup(g_hash_table_lookup(holder->values, name));
    g_hash_table_remove(holder->values, name);
    if (holder->check && !holder->check(holder, name, error)) {
        restore(holder, name, was);
        return FALSE;
    }
    return fire(holder, "property-reset:", name, NULL, old, error) &&
           fire(holder, "property-del:", name, NULL, old, error);
}

gboolean qubes_props_load(QubesPropHolder *holder, const GPtrArray *props,
                          int load_stage, gboolean tolerant, const char *who,
                          GError **error)
{
    for (guint i = 0; i < props->len; i++) {
        const QxProperty *p = props->pdata[i];
        const QubesPropDef *def = qubes_props_def(holder, p->name, NULL);
        g_autoptr(GError) err = NULL;
        if (!def) {
            g_set_error(&err, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                        "property %s not applicable to %s", p->name,
                        holder->class_name);
        } else if (load_stage && stage(def) != load_stage) {
            continue;
        } else {
            /* A read-only property's setter forbids setting, not
             * loading. */
            g_autofree char *value =
                checked_value(holder, def, p->value ? p->value : "",
                              !(def->flags & QUBES_PROP_READ_ONLY), &err);
            if (value) {
                g_hash_table_replace(holder->values, g_strdup(p->name),
                                     g_steal_pointer(&value));
                continue;
            }
        }
        if (!tolerant) {
            g_propagate_error(error, g_steal_pointer(&err));
            return FALSE;
        }
        g_autofree char *r = qubes_py_repr(p->value ? p->value : "");
        g_warning("%s: property %s: value %s left out, the default applies: "
                  "%s",
                  who, p->name, r, *err->message ? err->message : "invalid");
    }
    return TRUE;
}

gboolean qubes_props_check_all(QubesPropHolder *holder, GError **error)
{
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, holder->values);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        const QubesPropDef *def = qubes_props_def(holder, k, NULL);
        if (!def || !def->setter || (def->flags & QUBES_PROP_READ_ONLY))
            continue;
        g_autofree char *ok = def->setter(holder, def, v, error);
        if (!ok)
            return FALSE;
    }
    return TRUE;
}

GPtrArray *qubes_props_save(QubesPropHolder *holder)
{
    GPtrArray *out =
        g_ptr_array_new_with_free_func((GDestroyNotify)qx_property_free);
    for (guint i = 0; i < holder->schema->defs->len; i++) {
        const QubesPropDef *def = holder->schema->defs->pdata[i];
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

char *qubes_py_dict(const GPtrArray *pairs)
{
    GString *s = g_string_new("{");
    for (guint i = 0; i + 1 < pairs->len; i += 2) {
        g_autofree char *k = qubes_py_repr(pairs->pdata[i]);
        g_autofree char *v = qubes_py_repr(pairs->pdata[i + 1]);
        g_string_append_printf(s, "%s%s: %s", i ? ", " : "", k, v);
    }
    g_string_append_c(s, '}');
    return g_string_free(s, FALSE);
}
