/* methods.c: the Admin API methods (qubes/api/admin.py), with the same
 * names, argument and payload rules, answers and exceptions.
 *
 * Every payload is untrusted: it is checked here, where it enters, and
 * named untrusted_* until then. A check that a correct client never fails
 * (the reference's enforce()) is a ProtocolError: no answer.
 */
#include "server.h"

#include "qubes-error.h"
#include "qubes-parse.h"

#include <string.h>

/* ---- helpers ---- */

static gboolean enforce(gboolean ok, GError **error)
{
    if (!ok)
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_PROTOCOL,
                            "enforce failed");
    return ok;
}

/* The payload as text: printable ASCII (and, where @lines, newlines)
 * only, else a ProtocolError (the reference's strict ASCII decode). */
static char *payload_text(Call *call, gboolean lines, GError **error)
{
    gsize len;
    const guint8 *p = g_bytes_get_data(call->untrusted_payload, &len);
    for (gsize i = 0; i < len; i++) {
        if ((p[i] >= 0x20 && p[i] < 0x7f) || (lines && p[i] == '\n'))
            continue;
        if (p[i] == '\t' || p[i] == '\r')
            continue;
        enforce(FALSE, error);
        return NULL;
    }
    return len ? g_strndup((const char *)p, len) : g_strdup("");
}

/* qubes/api validate_size: the number rule, as a ProtocolError. */
static gboolean payload_number(Call *call, const char *what, gint64 *out,
                               GError **error)
{
    g_autofree char *untrusted = payload_text(call, TRUE, error);
    if (!untrusted)
        return FALSE;
    return qubes_parse_number(g_strstrip(untrusted), FALSE, what,
                              QUBES_ERROR_PROTOCOL, out, error);
}

static gboolean payload_bool(Call *call, gboolean *out, GError **error)
{
    g_autofree char *untrusted = payload_text(call, FALSE, error);
    if (!untrusted || !qubes_parse_bool(untrusted, "value", out, NULL)) {
        g_clear_error(error);
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_PROTOCOL,
                            "Invalid value");
        return FALSE;
    }
    return TRUE;
}

static gboolean name_chars_ok(const char *s)
{
    if (!*s)
        return FALSE;
    for (; *s; s++) {
        if (!g_ascii_isalnum(*s) && !strchr("-_.", *s))
            return FALSE;
    }
    return TRUE;
}

static gboolean is_digits(const char *s)
{
    return *s && strspn(s, "0123456789") == strlen(s);
}

static char *join_lines(GPtrArray *items)
{
    GString *out = g_string_new(NULL);
    for (guint i = 0; i < items->len; i++)
        g_string_append_printf(out, "%s\n", (char *)items->pdata[i]);
    return g_string_free(out, FALSE);
}

static char *saved_done(Call *call, gboolean ok, GError **error, gpointer data)
{
    return ok ? g_strdup("") : NULL;
}

/* The answer of a method that changed the model: empty, once saved. */
static char *saved(Call *call, GError **error)
{
    call_save_then(call, saved_done, NULL, NULL);
    return CALL_ASYNC;
}

static QubesPropHolder *holder_of(Call *call, gboolean global)
{
    return global ? &call->app->props : &call->dest->props;
}

static const char *holder_name(Call *call, gboolean global)
{
    return global ? "Qubes" : call->dest->name;
}

/* ---- classes and domains ---- */

static char *vmclass_list(Call *call, GError **error)
{
    GString *out = g_string_new(NULL);
    for (const QubesDomainClass *const *c = qubes_domain_classes(); *c; c++)
        g_string_append_printf(out, "%s\n", (*c)->name);
    return g_string_free(out, FALSE);
}

static void vm_line(GString *out, QubesDomain *d)
{
    g_autofree char *uuid = NULL;
    qubes_props_get(&d->props, "uuid", &uuid, NULL, NULL);
    g_string_append_printf(out, "%s class=%s state=%s uuid=%s\n", d->name,
                           d->klass->name, qubes_domain_power_state(d),
                           uuid ? uuid : "");
}

static gint vm_sort(gconstpointer a, gconstpointer b)
{
    const QubesDomain *x = *(QubesDomain *const *)a;
    const QubesDomain *y = *(QubesDomain *const *)b;
    /* dom0 first, then by name (QubesVM.__lt__). */
    if ((x->qid == 0) != (y->qid == 0))
        return x->qid == 0 ? -1 : 1;
    return strcmp(x->name, y->name);
}

static char *vm_list(Call *call, GError **error)
{
    GString *out = g_string_new(NULL);
    if (call->dest->qid != 0) {
        vm_line(out, call->dest);
    } else {
        g_autoptr(GPtrArray) all = g_ptr_array_new();
        for (guint i = 0; i < call->app->domains->len; i++)
            g_ptr_array_add(all, call->app->domains->pdata[i]);
        g_ptr_array_sort(all, vm_sort);
        for (guint i = 0; i < all->len; i++)
            vm_line(out, all->pdata[i]);
    }
    return g_string_free(out, FALSE);
}

static char *vm_current_state(Call *call, GError **error)
{
    QubesDomain *d = call->dest;
    guint64 mem = 0;
    if (d->qid == 0)
        mem = call->app->host_memory;
    return g_strdup_printf("mem=%" G_GUINT64_FORMAT
                           " mem_static_max=%" G_GUINT64_FORMAT
                           " cputime=0 power_state=%s",
                           mem, mem, qubes_domain_power_state(d));
}

/* ---- properties ---- */

static char *serialize_prop(QubesPropHolder *h, const char *name,
                            GError **error)
{
    const QubesPropDef *def = qubes_props_def(h, name, error);
    if (!def)
        return NULL;
    g_autofree char *value = NULL;
    gboolean is_default = TRUE;
    if (!qubes_props_get(h, name, &value, &is_default, error))
        return NULL;
    return g_strdup_printf("default=%s type=%s %s",
                           is_default ? "True" : "False",
                           qubes_prop_type_name(def->type), value ? value : "");
}

static char *prop_list(Call *call, gboolean global, GError **error)
{
    const GPtrArray *defs = qubes_props_list(holder_of(call, global));
    GString *out = g_string_new(NULL);
    for (guint i = 0; i < defs->len; i++)
        g_string_append_printf(out, "%s\n",
                               ((const QubesPropDef *)defs->pdata[i])->name);
    return g_string_free(out, FALSE);
}

static gboolean prop_exists(Call *call, gboolean global, GError **error)
{
    if (qubes_props_def(holder_of(call, global), call->arg, NULL))
        return TRUE;
    g_set_error(error, QUBES_ERROR, QUBES_ERROR_NO_SUCH_PROPERTY,
                "Invalid property '%s' of %s", call->arg,
                holder_name(call, global));
    return FALSE;
}

static char *prop_get(Call *call, gboolean global, GError **error)
{
    if (!prop_exists(call, global, error))
        return NULL;
    return serialize_prop(holder_of(call, global), call->arg, error);
}

static gint def_name_cmp(gconstpointer a, gconstpointer b)
{
    return strcmp((*(const QubesPropDef *const *)a)->name,
                  (*(const QubesPropDef *const *)b)->name);
}

static char *prop_get_all(Call *call, gboolean global, GError **error)
{
    QubesPropHolder *h = holder_of(call, global);
    g_autoptr(GPtrArray) defs =
        g_ptr_array_copy((GPtrArray *)qubes_props_list(h), NULL, NULL);
    g_ptr_array_sort(defs, def_name_cmp);
    GString *out = g_string_new(NULL);
    for (guint i = 0; i < defs->len; i++) {
        const QubesPropDef *def = defs->pdata[i];
        g_autofree char *s = serialize_prop(h, def->name, NULL);
        g_string_append_printf(out, "%s ", def->name);
        for (const char *p = s; p && *p; p++) {
            if (*p == '\\')
                g_string_append(out, "\\\\");
            else if (*p == '\n')
                g_string_append(out, "\\n");
            else
                g_string_append_c(out, *p);
        }
        g_string_append_c(out, '\n');
    }
    return g_string_free(out, FALSE);
}

static char *prop_get_default(Call *call, gboolean global, GError **error)
{
    if (!prop_exists(call, global, error))
        return NULL;
    QubesPropHolder *h = holder_of(call, global);
    const QubesPropDef *def = qubes_props_def(h, call->arg, error);
    g_autofree char *value = qubes_props_get_default(h, call->arg, error);
    if (!value)
        return NULL; /* no default: an empty answer */
    return g_strdup_printf("type=%s %s", qubes_prop_type_name(def->type),
                           value);
}

static char *prop_help(Call *call, gboolean global, GError **error)
{
    if (!prop_exists(call, global, error))
        return NULL;
    const QubesPropDef *def =
        qubes_props_def(holder_of(call, global), call->arg, error);
    return g_strdup(def->doc ? def->doc : "");
}

static char *prop_set(Call *call, gboolean global, GError **error)
{
    if (!prop_exists(call, global, error))
        return NULL;
    gsize len;
    const char *p = g_bytes_get_data(call->untrusted_payload, &len);
    if (len && memchr(p, '\0', len)) {
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                            "Property value contains a NUL byte");
        return NULL;
    }
    g_autofree char *untrusted_value = len ? g_strndup(p, len) : g_strdup("");
    if (!qubes_props_set(holder_of(call, global), call->arg, untrusted_value,
                         error))
        return NULL;
    return saved(call, error);
}

static char *prop_reset(Call *call, gboolean global, GError **error)
{
    if (!prop_exists(call, global, error))
        return NULL;
    if (!qubes_props_reset(holder_of(call, global), call->arg, error))
        return NULL;
    return saved(call, error);
}

#define PROP_PAIR(fn)                                                          \
    static char *vm_##fn(Call *call, GError **error)                           \
    {                                                                          \
        return fn(call, FALSE, error);                                         \
    }                                                                          \
    static char *global_##fn(Call *call, GError **error)                       \
    {                                                                          \
        return fn(call, TRUE, error);                                          \
    }
PROP_PAIR(prop_list)
PROP_PAIR(prop_get)
PROP_PAIR(prop_get_all)
PROP_PAIR(prop_get_default)
PROP_PAIR(prop_help)
PROP_PAIR(prop_set)
PROP_PAIR(prop_reset)

/* ---- features ---- */

static char *feature_list(Call *call, GError **error)
{
    GString *out = g_string_new(NULL);
    GPtrArray *f = call->dest->features;
    for (guint i = 0; i + 1 < f->len; i += 2)
        g_string_append_printf(out, "%s\n", (char *)f->pdata[i]);
    return g_string_free(out, FALSE);
}

static char *feature_get(Call *call, GError **error)
{
    const char *v = qubes_domain_feature_get(call->dest, call->arg);
    if (!v) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_FEATURE_NOT_FOUND,
                    "Feature not set for domain %s: %s", call->dest->name,
                    call->arg);
        return NULL;
    }
    return g_strdup(v);
}

static char *feature_check(Call *call, gboolean tpl, gboolean net,
                           gboolean admin, GError **error)
{
    const char *v = qubes_domain_feature_check(call->dest, call->arg, tpl, net,
                                               admin, error);
    return v ? g_strdup(v) : NULL;
}

static char *feature_check_template(Call *call, GError **error)
{
    return feature_check(call, TRUE, FALSE, FALSE, error);
}

static char *feature_check_netvm(Call *call, GError **error)
{
    return feature_check(call, FALSE, TRUE, FALSE, error);
}

static char *feature_check_adminvm(Call *call, GError **error)
{
    return feature_check(call, FALSE, FALSE, TRUE, error);
}

static char *feature_check_template_adminvm(Call *call, GError **error)
{
    return feature_check(call, TRUE, FALSE, TRUE, error);
}

static gboolean feature_name_ok(Call *call, GError **error)
{
    /* The header is printable ASCII without spaces; a feature name must
     * also not be empty. */
    return enforce(*call->arg != '\0', error);
}

static char *feature_set(Call *call, GError **error)
{
    if (!feature_name_ok(call, error))
        return NULL;
    g_autofree char *value = payload_text(call, TRUE, error);
    if (!value)
        return NULL;
    if (!qubes_domain_feature_set(call->dest, call->arg, value, error))
        return NULL;
    return saved(call, error);
}

static char *feature_remove(Call *call, GError **error)
{
    if (!qubes_domain_feature_remove(call->dest, call->arg, error))
        return NULL;
    return saved(call, error);
}

/* ---- tags ---- */

static char *tag_list(Call *call, GError **error)
{
    g_autoptr(GPtrArray) tags = qubes_domain_tags(call->dest);
    return join_lines(tags);
}

static gboolean tag_ok(Call *call, GError **error)
{
    /* validate_tag raises a ValueError: no answer, as a ProtocolError. */
    return enforce(qubes_tag_is_valid(call->arg), error);
}

static char *tag_get(Call *call, GError **error)
{
    if (!tag_ok(call, error))
        return NULL;
    return g_strdup(g_hash_table_contains(call->dest->tags, call->arg) ? "1"
                                                                       : "0");
}

static char *tag_set(Call *call, GError **error)
{
    if (!tag_ok(call, error) ||
        !qubes_domain_tag_add(call->dest, call->arg, error))
        return NULL;
    return saved(call, error);
}

static char *tag_remove(Call *call, GError **error)
{
    if (!tag_ok(call, error) ||
        !qubes_domain_tag_remove(call->dest, call->arg, error))
        return NULL;
    return saved(call, error);
}

/* ---- labels ---- */

static char *label_list(Call *call, GError **error)
{
    GString *out = g_string_new(NULL);
    for (guint i = 0; i < call->app->labels->len; i++)
        g_string_append_printf(out, "%s\n",
                               ((QxLabel *)call->app->labels->pdata[i])->name);
    return g_string_free(out, FALSE);
}

static const QxLabel *label_arg(Call *call, GError **error)
{
    const QxLabel *l = qubes_app_get_label(call->app, call->arg, NULL);
    if (!l)
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                    "Label does not exist: %s", call->arg);
    return l;
}

static char *label_get(Call *call, GError **error)
{
    const QxLabel *l = label_arg(call, error);
    return l ? g_strdup(l->color) : NULL;
}

static char *label_index(Call *call, GError **error)
{
    const QxLabel *l = label_arg(call, error);
    return l ? g_strdup_printf("%u", l->index) : NULL;
}

static char *label_create(Call *call, GError **error)
{
    if (!enforce(!is_digits(call->arg) && name_chars_ok(call->arg), error))
        return NULL;
    if (qubes_app_get_label(call->app, call->arg, NULL)) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                    "label already exists");
        return NULL;
    }
    g_autofree char *untrusted = payload_text(call, TRUE, error);
    if (!untrusted)
        return NULL;
    g_strstrip(untrusted);
    if (!enforce(strlen(untrusted) == 8 && g_str_has_prefix(untrusted, "0x"),
                 error))
        return NULL;
    for (int i = 2; i < 8; i++) {
        if (!enforce(g_ascii_isxdigit(untrusted[i]), error))
            return NULL;
    }
    if (!qubes_app_add_label(call->app, call->arg, untrusted, error))
        return NULL;
    return saved(call, error);
}

static char *label_remove(Call *call, GError **error)
{
    const QxLabel *l = label_arg(call, error);
    if (!l)
        return NULL;
    if (!enforce(l->index > 8, error))
        return NULL;
    if (!qubes_app_remove_label(call->app, call->arg, error))
        return NULL;
    return saved(call, error);
}

/* ---- pools ---- */

static QubesPool *pool_arg(Call *call, GError **error)
{
    QubesPool *p = qubes_app_get_pool(call->app, call->arg, NULL);
    enforce(p != NULL, error);
    return p;
}

static char *pool_list(Call *call, GError **error)
{
    GString *out = g_string_new(NULL);
    for (guint i = 0; i < call->app->pools->len; i++)
        g_string_append_printf(out, "%s\n",
                               qubes_pool_get_name(call->app->pools->pdata[i]));
    return g_string_free(out, FALSE);
}

static char *pool_list_drivers(Call *call, GError **error)
{
    GString *out = g_string_new(NULL);
    for (const char *const *d = qubes_storage_driver_names(); *d; d++) {
        g_autofree char *params =
            g_strjoinv(" ", (char **)qubes_storage_driver_parameters(*d));
        g_string_append_printf(out, "%s %s\n", *d, params);
    }
    return g_string_free(out, FALSE);
}

typedef struct {
    QubesPool *pool;
    QubesPoolUsage usage;
    gboolean have_usage;
    GHashTable *config;
} PoolInfo;

static void pool_info_free(PoolInfo *pi)
{
    if (pi->config)
        g_hash_table_unref(pi->config);
    g_free(pi);
}

static gboolean pool_usage_work(gpointer data, GError **error)
{
    PoolInfo *pi = data;
    g_autoptr(GError) err = NULL;
    pi->have_usage = qubes_pool_usage_details(pi->pool, &pi->usage, &err);
    if (!pi->have_usage)
        g_warning("usage of pool %s: %s", qubes_pool_get_name(pi->pool),
                  err->message);
    return TRUE;
}

static char *pool_info_done(Call *call, gboolean ok, GError **error,
                            gpointer data)
{
    PoolInfo *pi = data;
    GList *keys =
        g_list_sort(g_hash_table_get_keys(pi->config), (GCompareFunc)strcmp);
    GString *out = g_string_new(NULL);
    for (GList *k = keys; k; k = k->next)
        g_string_append_printf(
            out, "%s=%s\n", (char *)k->data,
            (char *)g_hash_table_lookup(pi->config, k->data));
    g_list_free(keys);
    if (pi->have_usage && pi->usage.data_size) {
        g_string_append_printf(out, "size=%" G_GUINT64_FORMAT "\n",
                               pi->usage.data_size);
        g_string_append_printf(out, "usage=%" G_GUINT64_FORMAT "\n",
                               pi->usage.data_usage);
    }
    return g_string_free(out, FALSE);
}

static char *pool_usage_done(Call *call, gboolean ok, GError **error,
                             gpointer data)
{
    PoolInfo *pi = data;
    if (!pi->have_usage || !pi->usage.data_size)
        return g_strdup("");
    return g_strdup_printf("data_size=%" G_GUINT64_FORMAT
                           "\ndata_usage=%" G_GUINT64_FORMAT "\n",
                           pi->usage.data_size, pi->usage.data_usage);
}

static char *pool_info(Call *call, GError **error)
{
    QubesPool *p = pool_arg(call, error);
    if (!p)
        return NULL;
    PoolInfo *pi = g_new0(PoolInfo, 1);
    pi->pool = p;
    pi->config = qubes_pool_get_config(p);
    call_run_worker(call, pool_usage_work, pool_info_done, pi,
                    (GDestroyNotify)pool_info_free);
    return CALL_ASYNC;
}

static char *pool_usage_details(Call *call, GError **error)
{
    QubesPool *p = pool_arg(call, error);
    if (!p)
        return NULL;
    PoolInfo *pi = g_new0(PoolInfo, 1);
    pi->pool = p;
    call_run_worker(call, pool_usage_work, pool_usage_done, pi,
                    (GDestroyNotify)pool_info_free);
    return CALL_ASYNC;
}

static char *pool_add(Call *call, GError **error)
{
    const char *driver = call->arg;
    gboolean known = FALSE;
    for (const char *const *d = qubes_storage_driver_names(); *d; d++)
        known = known || strcmp(*d, call->arg) == 0;
    if (!known) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                    "unexpected driver name: %s", call->arg);
        return NULL;
    }
    g_autofree char *untrusted = payload_text(call, TRUE, error);
    if (!untrusted)
        return NULL;
    g_auto(GStrv) lines = g_strsplit(untrusted, "\n", -1);
    g_autoptr(GHashTable) opts =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    g_autofree char *name = NULL;
    for (char **l = lines; *l; l++) {
        if (!**l && !l[1])
            break; /* the final newline */
        char *eq = strchr(*l, '=');
        if (!enforce(eq != NULL, error))
            return NULL;
        *eq = '\0';
        if (!enforce(!g_hash_table_contains(opts, *l) &&
                         !(name && strcmp(*l, "name") == 0),
                     error))
            return NULL;
        if (strcmp(*l, "name") == 0)
            name = g_strdup(eq + 1);
        else
            g_hash_table_insert(opts, g_strdup(*l), g_strdup(eq + 1));
    }
    if (!enforce(name && name_chars_ok(name), error) ||
        !enforce(!qubes_app_get_pool(call->app, name, NULL), error))
        return NULL;
    const char *const *params = qubes_storage_driver_parameters(driver);
    GString *unexpected = g_string_new(NULL);
    GList *keys =
        g_list_sort(g_hash_table_get_keys(opts), (GCompareFunc)strcmp);
    for (GList *k = keys; k; k = k->next) {
        if (!g_strv_contains(params, k->data))
            g_string_append_printf(unexpected, " %s", (char *)k->data);
    }
    g_list_free(keys);
    if (unexpected->len) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                    "unexpected driver options:%s", unexpected->str);
        g_string_free(unexpected, TRUE);
        return NULL;
    }
    g_string_free(unexpected, TRUE);
    if (!qubes_app_add_pool(call->app, driver, name, opts, error))
        return NULL;
    return saved(call, error);
}

static char *pool_remove(Call *call, GError **error)
{
    if (!pool_arg(call, error) ||
        !qubes_app_remove_pool(call->app, call->arg, error))
        return NULL;
    return saved(call, error);
}

static char *pool_volume_list(Call *call, GError **error)
{
    QubesPool *p = pool_arg(call, error);
    if (!p)
        return NULL;
    g_autoptr(GPtrArray) vols = qubes_pool_list_volumes(p, error);
    if (!vols)
        return NULL;
    GString *out = g_string_new(NULL);
    for (guint i = 0; i < vols->len; i++)
        g_string_append_printf(out, "%s\n",
                               ((QubesVolume *)vols->pdata[i])->vid);
    return g_string_free(out, FALSE);
}

static char *pool_set_revisions(Call *call, GError **error)
{
    QubesPool *p = pool_arg(call, error);
    gint64 v;
    if (!p || !payload_number(call, "revisions_to_keep", &v, error))
        return NULL;
    if (v > G_MAXINT) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                    "revisions_to_keep is too big");
        return NULL;
    }
    if (!qubes_pool_set_revisions_to_keep(p, (int)v, error))
        return NULL;
    return saved(call, error);
}

static char *pool_set_ephemeral(Call *call, GError **error)
{
    QubesPool *p = pool_arg(call, error);
    gboolean v;
    if (!p || !payload_bool(call, &v, error))
        return NULL;
    qubes_pool_set_ephemeral_volatile(p, v);
    return saved(call, error);
}

/* ---- volumes ---- */

static gboolean halted(Call *call, GError **error)
{
    if (qubes_domain_is_halted(call->dest))
        return TRUE;
    g_set_error(error, QUBES_ERROR, QUBES_ERROR_VM_NOT_HALTED,
                "Domain is not powered off: '%s'", call->dest->name);
    return FALSE;
}

static QubesVolume *volume_arg(Call *call, GError **error)
{
    QubesVolume *v = qubes_domain_get_volume(call->dest, call->arg);
    enforce(v != NULL, error);
    return v;
}

static char *volume_list(Call *call, GError **error)
{
    g_autoptr(GPtrArray) names = qubes_domain_volume_names(call->dest);
    return join_lines(names);
}

typedef struct {
    QubesVolume *vol;
    char *pool;
    guint64 size, usage;
    gboolean outdated;
    GPtrArray *space;
    GPtrArray *revisions;
    char *revision;
    guint64 new_size;
    gboolean flag;
    char *path;
    QubesVolume *src;
} VolJob;

static void vol_job_free(VolJob *j)
{
    qubes_volume_unref(j->vol);
    if (j->src)
        qubes_volume_unref(j->src);
    g_free(j->pool);
    g_free(j->revision);
    g_free(j->path);
    if (j->space)
        g_ptr_array_unref(j->space);
    if (j->revisions)
        g_ptr_array_unref(j->revisions);
    g_free(j);
}

static VolJob *vol_job(Call *call, QubesVolume *v)
{
    VolJob *j = g_new0(VolJob, 1);
    j->vol = qubes_volume_ref(v);
    j->pool = g_strdup(qubes_domain_volume_pool(call->dest, call->arg));
    return j;
}

static gboolean volume_info_work(gpointer data, GError **error)
{
    VolJob *j = data;
    j->size = qubes_volume_get_size(j->vol);
    j->usage = qubes_volume_get_usage(j->vol);
    j->outdated = qubes_volume_is_outdated(j->vol);
    j->path = qubes_volume_get_path(j->vol);
    j->space = qubes_volume_get_space(j->vol, NULL); /* may not exist yet */
    return TRUE;
}

static char *volume_info_done(Call *call, gboolean ok, GError **error,
                              gpointer data)
{
    VolJob *j = data;
    QubesVolume *v = j->vol;
    GString *out = g_string_new(NULL);
    g_string_append_printf(out, "pool=%s\n", j->pool ? j->pool : "");
    g_string_append_printf(out, "vid=%s\n", v->vid);
    g_string_append_printf(out, "size=%" G_GUINT64_FORMAT "\n", j->size);
    g_string_append_printf(out, "usage=%" G_GUINT64_FORMAT "\n", j->usage);
    g_string_append_printf(out, "rw=%s\n", v->rw ? "True" : "False");
    g_string_append_printf(out, "source=%s\n", v->source ? v->source : "");
    g_string_append_printf(out, "path=%s\n", j->path ? j->path : "");
    g_string_append_printf(out, "save_on_stop=%s\n",
                           v->save_on_stop ? "True" : "False");
    g_string_append_printf(out, "snap_on_start=%s\n",
                           v->snap_on_start ? "True" : "False");
    g_string_append_printf(out, "revisions_to_keep=%d\n", v->revisions_to_keep);
    g_string_append_printf(out, "ephemeral=%s\n",
                           v->ephemeral ? "True" : "False");
    g_string_append_printf(out, "is_outdated=%s\n",
                           j->outdated ? "True" : "False");
    /* Ours: what the current image shares with others and holds alone. */
    if (j->space && j->space->len) {
        QubesVolumeSpace *cur = j->space->pdata[0];
        g_string_append_printf(out, "shared=%" G_GUINT64_FORMAT "\n",
                               cur->shared);
        g_string_append_printf(out, "exclusive=%" G_GUINT64_FORMAT "\n",
                               cur->exclusive);
    }
    return g_string_free(out, FALSE);
}

static char *volume_info(Call *call, GError **error)
{
    QubesVolume *v = volume_arg(call, error);
    if (!v)
        return NULL;
    call_run_worker(call, volume_info_work, volume_info_done, vol_job(call, v),
                    (GDestroyNotify)vol_job_free);
    return CALL_ASYNC;
}

static gboolean revisions_work(gpointer data, GError **error)
{
    VolJob *j = data;
    j->revisions = qubes_volume_list_revisions(j->vol, error);
    return j->revisions != NULL;
}

static char *list_snapshots_done(Call *call, gboolean ok, GError **error,
                                 gpointer data)
{
    VolJob *j = data;
    if (!ok)
        return NULL;
    GString *out = g_string_new(NULL);
    for (guint i = 0; i < j->revisions->len; i++)
        g_string_append_printf(out, "%s\n",
                               ((QubesRevision *)j->revisions->pdata[i])->id);
    return g_string_free(out, FALSE);
}

static char *volume_list_snapshots(Call *call, GError **error)
{
    QubesVolume *v = volume_arg(call, error);
    if (!v)
        return NULL;
    call_run_worker(call, revisions_work, list_snapshots_done, vol_job(call, v),
                    (GDestroyNotify)vol_job_free);
    return CALL_ASYNC;
}

/* Saves after a storage change of @call's volume, if its domain is
 * still there. */
static char *volume_changed(Call *call, VolJob *j, GError **error)
{
    if (call->dest->removed)
        return g_strdup("");
    qubes_domain_volume_sync(call->dest, call->arg);
    return saved(call, error);
}

static gboolean revert_work(gpointer data, GError **error)
{
    VolJob *j = data;
    g_autoptr(GPtrArray) revs = qubes_volume_list_revisions(j->vol, error);
    if (!revs)
        return FALSE;
    gboolean found = FALSE;
    for (guint i = 0; i < revs->len; i++)
        found = found ||
                strcmp(((QubesRevision *)revs->pdata[i])->id, j->revision) == 0;
    if (*j->revision && !found) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_PROTOCOL,
                    "no such revision");
        return FALSE;
    }
    return qubes_volume_revert(j->vol, *j->revision ? j->revision : NULL,
                               error);
}

static char *changed_done(Call *call, gboolean ok, GError **error,
                          gpointer data)
{
    return ok ? volume_changed(call, data, error) : NULL;
}

static char *volume_revert(Call *call, GError **error)
{
    QubesVolume *v = volume_arg(call, error);
    if (!v)
        return NULL;
    g_autofree char *untrusted = payload_text(call, TRUE, error);
    if (!untrusted)
        return NULL;
    g_strstrip(untrusted);
    /* A revision id: digits, or a seed-era timestamp; never a path. */
    for (const char *p = untrusted; *p; p++) {
        if (!enforce(g_ascii_isalnum(*p) || strchr("-:.T", *p), error))
            return NULL;
    }
    if (!halted(call, error))
        return NULL;
    VolJob *j = vol_job(call, v);
    j->revision = g_steal_pointer(&untrusted);
    call_run_worker(call, revert_work, changed_done, j,
                    (GDestroyNotify)vol_job_free);
    return CALL_ASYNC;
}

static gboolean resize_work(gpointer data, GError **error)
{
    VolJob *j = data;
    return qubes_volume_resize(j->vol, j->new_size, error);
}

static char *volume_resize(Call *call, GError **error)
{
    QubesVolume *v = volume_arg(call, error);
    gint64 size;
    if (!v || !payload_number(call, "size", &size, error))
        return NULL;
    VolJob *j = vol_job(call, v);
    j->new_size = (guint64)size;
    call_run_worker(call, resize_work, changed_done, j,
                    (GDestroyNotify)vol_job_free);
    return CALL_ASYNC;
}

static char *volume_set_revisions(Call *call, GError **error)
{
    QubesVolume *v = volume_arg(call, error);
    gint64 n;
    if (!v || !payload_number(call, "revisions_to_keep", &n, error))
        return NULL;
    if (n > G_MAXINT) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                    "revisions_to_keep is too big");
        return NULL;
    }
    if (!qubes_volume_set_revisions_to_keep(v, (int)n, error))
        return NULL;
    qubes_domain_volume_sync(call->dest, call->arg);
    return saved(call, error);
}

static char *volume_set_rw(Call *call, GError **error)
{
    QubesVolume *v = volume_arg(call, error);
    gboolean rw;
    if (!v || !payload_bool(call, &rw, error) || !halted(call, error) ||
        !qubes_volume_set_rw(v, rw, error))
        return NULL;
    qubes_domain_volume_sync(call->dest, call->arg);
    return saved(call, error);
}

static char *volume_set_ephemeral(Call *call, GError **error)
{
    QubesVolume *v = volume_arg(call, error);
    gboolean e;
    if (!v || !payload_bool(call, &e, error) || !halted(call, error) ||
        !qubes_domain_volume_set_ephemeral(call->dest, call->arg, e, error))
        return NULL;
    return saved(call, error);
}

static gboolean clear_work(gpointer data, GError **error)
{
    VolJob *j = data;
    /* Import nothing: a new sparse image of the same size, all zeros. */
    g_autofree char *path =
        qubes_volume_import_data(j->vol, qubes_volume_get_size(j->vol), error);
    if (!path)
        return FALSE;
    return qubes_volume_import_data_end(j->vol, TRUE, error);
}

static char *volume_clear(Call *call, GError **error)
{
    QubesVolume *v = volume_arg(call, error);
    if (!v)
        return NULL;
    call_run_worker(call, clear_work, changed_done, vol_job(call, v),
                    (GDestroyNotify)vol_job_free);
    return CALL_ASYNC;
}

static char *volume_clone_from(Call *call, GError **error)
{
    QubesVolume *v = volume_arg(call, error);
    if (!v)
        return NULL;
    /* 32 random letters and digits, as qubes.utils.random_string. */
    static const char chars[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    char token[33];
    for (int i = 0; i < 32; i++)
        token[i] = chars[g_random_int_range(0, sizeof chars - 1)];
    token[32] = '\0';
    if (!enforce(!g_hash_table_contains(call->srv->clone_tokens, token), error))
        return NULL;
    g_hash_table_insert(call->srv->clone_tokens, g_strdup(token),
                        qubes_volume_ref(v));
    return g_strdup(token);
}

static gboolean clone_to_work(gpointer data, GError **error)
{
    VolJob *j = data;
    return qubes_volume_import_volume(j->vol, j->src, NULL, NULL, error);
}

static char *volume_clone_to(Call *call, GError **error)
{
    QubesVolume *v = volume_arg(call, error);
    if (!v)
        return NULL;
    g_autofree char *untrusted = payload_text(call, TRUE, error);
    if (!untrusted)
        return NULL;
    g_strstrip(untrusted);
    QubesVolume *src = NULL;
    gpointer key = NULL;
    if (!enforce(g_hash_table_steal_extended(call->srv->clone_tokens, untrusted,
                                             &key, (gpointer *)&src),
                 error))
        return NULL;
    g_free(key);
    VolJob *j = vol_job(call, v);
    j->src = src; /* the token's reference */
    call_run_worker(call, clone_to_work, changed_done, j,
                    (GDestroyNotify)vol_job_free);
    return CALL_ASYNC;
}

/* ---- import (internal socket; the service programs drive it) ---- */

static gboolean import_begin_work(gpointer data, GError **error)
{
    VolJob *j = data;
    j->path = qubes_volume_import_data(j->vol, j->new_size, error);
    return j->path != NULL;
}

static char *import_begin_done(Call *call, gboolean ok, GError **error,
                               gpointer data)
{
    VolJob *j = data;
    if (!ok)
        return NULL;
    /* The service program splits the answer at the first space. */
    if (!enforce(strchr(j->path, ' ') == NULL, error))
        return NULL;
    const char *kw[] = {"volume", call->arg, "size", NULL, NULL};
    g_autofree char *size = g_strdup_printf("%" G_GUINT64_FORMAT, j->new_size);
    kw[3] = size;
    g_autoptr(GPtrArray) fx = qubes_emitter_fire(
        &call->dest->emitter, "domain-volume-import-begin", kw, NULL);
    return g_strdup_printf("%" G_GUINT64_FORMAT " %s", j->new_size, j->path);
}

/* internal.vm.volume.ImportBegin: payload the size in bytes, or empty for
 * the volume's size; answers "SIZE PATH" of the image to fill. */
static char *import_begin(Call *call, GError **error)
{
    QubesVolume *v = volume_arg(call, error);
    if (!v || !halted(call, error))
        return NULL;
    VolJob *j = vol_job(call, v);
    if (g_bytes_get_size(call->untrusted_payload)) {
        gint64 size;
        if (!payload_number(call, "size", &size, error)) {
            vol_job_free(j);
            return NULL;
        }
        j->new_size = (guint64)size;
    } else {
        j->new_size = v->size;
    }
    call_run_worker(call, import_begin_work, import_begin_done, j,
                    (GDestroyNotify)vol_job_free);
    return CALL_ASYNC;
}

static gboolean import_end_work(gpointer data, GError **error)
{
    VolJob *j = data;
    return qubes_volume_import_data_end(j->vol, j->flag, error);
}

static char *import_end_done(Call *call, gboolean ok, GError **error,
                             gpointer data)
{
    VolJob *j = data;
    const char *kw[] = {"volume", call->arg, "success",
                        ok && j->flag ? "True" : "False", NULL};
    g_autoptr(GPtrArray) fx = qubes_emitter_fire(
        &call->dest->emitter, "domain-volume-import-end", kw, NULL);
    if (!ok)
        return NULL;
    if (!j->flag) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                    "Data import failed: %s", j->revision);
        return NULL;
    }
    return volume_changed(call, j, error);
}

/* internal.vm.volume.ImportEnd: payload "ok", or "fail\nMESSAGE". */
static char *import_end(Call *call, GError **error)
{
    QubesVolume *v = volume_arg(call, error);
    if (!v)
        return NULL;
    gsize len;
    const char *p = g_bytes_get_data(call->untrusted_payload, &len);
    VolJob *j = vol_job(call, v);
    j->flag = len == 2 && memcmp(p, "ok", 2) == 0;
    /* The failure message is shown to the user: printable text only. */
    const char *nl = len ? memchr(p, '\n', len) : NULL;
    GString *msg = g_string_new(NULL);
    for (const char *c = nl ? nl + 1 : p + len; c < p + len; c++)
        g_string_append_c(msg, (*c >= 0x20 && *c < 0x7f) ? *c : '?');
    j->revision = g_string_free(msg, FALSE);
    call_run_worker(call, import_end_work, import_end_done, j,
                    (GDestroyNotify)vol_job_free);
    return CALL_ASYNC;
}

/* ---- create and remove ---- */

typedef struct {
    QubesDomain *dom;
    GPtrArray *volumes;
    char *dir;
} DomJob;

static void dom_job_free(DomJob *j)
{
    qubes_domain_unref(j->dom);
    g_ptr_array_unref(j->volumes);
    g_free(j->dir);
    g_free(j);
}

static gboolean create_work(gpointer data, GError **error)
{
    DomJob *j = data;
    return qubes_storage_create(j->volumes, j->dir, error);
}

static char *create_done(Call *call, gboolean ok, GError **error, gpointer data)
{
    DomJob *j = data;
    if (!ok) {
        /* Nothing of it stays: the volumes were unmade by the worker. */
        if (!j->dom->removed)
            qubes_app_remove_domain(call->app, j->dom, NULL);
        return NULL;
    }
    return saved(call, error);
}

static char *vm_create(Call *call, gboolean allow_pool, GError **error)
{
    const QubesDomainClass *klass = qubes_domain_class_lookup(call->endpoint);
    if (!klass || strcmp(klass->name, "AdminVM") == 0)
        return enforce(FALSE, error), NULL;
    g_autofree char *untrusted = payload_text(call, FALSE, error);
    if (!untrusted)
        return NULL;
    g_autofree char *name = NULL, *label = NULL, *pool = NULL;
    g_autoptr(GHashTable) pools =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    g_auto(GStrv) params = g_strsplit(untrusted, " ", -1);
    for (char **p = params; *p; p++) {
        char *eq = strchr(*p, '=');
        if (!enforce(eq != NULL, error))
            return NULL;
        *eq = '\0';
        const char *key = *p, *value = eq + 1;
        if (strcmp(key, "name") == 0) {
            if (!enforce(!name, error) || !qubes_validate_vm_name(value, error))
                return NULL;
            name = g_strdup(value);
        } else if (strcmp(key, "label") == 0) {
            if (!enforce(!label && !is_digits(value) && name_chars_ok(value),
                         error))
                return NULL;
            if (!qubes_app_get_label(call->app, value, NULL)) {
                g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                            "Label does not exist: %s", value);
                return NULL;
            }
            label = g_strdup(value);
        } else if (allow_pool && strcmp(key, "pool") == 0) {
            if (!enforce(!pool, error) ||
                !qubes_app_get_pool(call->app, value, error))
                return NULL;
            pool = g_strdup(value);
        } else if (allow_pool && g_str_has_prefix(key, "pool:")) {
            const char *vol = key + 5;
            if (!enforce(g_strv_contains(
                             (const char *const[]){"root", "private",
                                                   "volatile", "kernel", NULL},
                             vol) &&
                             !g_hash_table_contains(pools, vol),
                         error) ||
                !qubes_app_get_pool(call->app, value, error))
                return NULL;
            g_hash_table_insert(pools, g_strdup(vol), g_strdup(value));
        } else {
            return enforce(FALSE, error), NULL;
        }
    }
    if (!enforce(name && label, error) ||
        !enforce(!(pool && g_hash_table_size(pools)), error))
        return NULL;
    /* The app refuses a taken name, and a template for a class without
     * one; a template that does not exist is QubesVMNotFoundError here,
     * whatever its spelling, as in the reference. */
    const char *tpl = *call->arg ? call->arg : NULL;
    if (tpl && klass->has_template &&
        !qubes_app_get_domain(call->app, tpl, error))
        return NULL;
    QubesDomain *dom = qubes_app_add_new_domain(
        call->app, klass, name, label, tpl, pool,
        g_hash_table_size(pools) ? pools : NULL, error);
    if (!dom)
        return NULL;
    g_autofree char *tag = g_strconcat("created-by-", call->src->name, NULL);
    qubes_domain_tag_add(dom, tag, NULL);
    DomJob *j = g_new0(DomJob, 1);
    j->dom = qubes_domain_ref(dom);
    j->volumes = qubes_domain_volume_refs(dom);
    j->dir = qubes_domain_dir_path(dom);
    call_run_worker(call, create_work, create_done, j,
                    (GDestroyNotify)dom_job_free);
    return CALL_ASYNC;
}

static char *vm_create_plain(Call *call, GError **error)
{
    return vm_create(call, FALSE, error);
}

static char *vm_create_in_pool(Call *call, GError **error)
{
    return vm_create(call, TRUE, error);
}

static gboolean remove_work(gpointer data, GError **error)
{
    DomJob *j = data;
    g_autoptr(GError) err = NULL;
    if (!qubes_storage_remove(j->volumes, j->dir, &err))
        g_warning("Error while removing VM '%s' files: %s", j->dom->name,
                  err->message);
    return TRUE;
}

static char *remove_done(Call *call, gboolean ok, GError **error, gpointer data)
{
    return g_strdup("");
}

/* Owns the DomJob @data from here. */
static char *remove_saved(Call *call, gboolean ok, GError **error,
                          gpointer data)
{
    if (!ok) {
        dom_job_free(data);
        return NULL;
    }
    call_run_worker(call, remove_work, remove_done, data,
                    (GDestroyNotify)dom_job_free);
    return CALL_ASYNC;
}

static char *vm_remove(Call *call, GError **error)
{
    QubesDomain *dom = call->dest;
    if (dom->qid == 0) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VM_IN_USE,
                    "'dom0' cannot be removed");
        return NULL;
    }
    if (!halted(call, error))
        return NULL;
    g_autofree char *rpm = NULL;
    qubes_props_get(&dom->props, "installed_by_rpm", &rpm, NULL, NULL);
    if (g_strcmp0(rpm, "True") == 0) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VM_IN_USE,
                    "VM installed by package manager: %s", dom->name);
        return NULL;
    }
    DomJob *j = g_new0(DomJob, 1);
    j->dom = qubes_domain_ref(dom);
    j->volumes = qubes_domain_volume_refs(dom);
    j->dir = qubes_domain_dir_path(dom);
    if (!qubes_app_remove_domain(call->app, dom, error)) {
        dom_job_free(j);
        return NULL;
    }
    /* qubes.xml forgets the domain before its files go: a crash in
     * between leaves unreferenced files, never a domain without disks. */
    call_save_then(call, remove_saved, j, NULL);
    return CALL_ASYNC;
}

/* ---- events ---- */

static char *events(Call *call, GError **error)
{
    call_subscribe_events(call);
    return CALL_ASYNC;
}

/* ---- the table ---- */

#define NP M_NO_PAYLOAD
#define NA M_NO_ARG
#define D0 M_DOM0

const Method admin_methods[] = {
    {"admin.vmclass.List", NP | NA | D0, vmclass_list},
    {"admin.vm.List", NP | NA, vm_list},
    {"admin.vm.CurrentState", NP | NA, vm_current_state},
    {"admin.vm.Create.", D0 | M_PREFIX, vm_create_plain},
    {"admin.vm.CreateInPool.", D0 | M_PREFIX, vm_create_in_pool},
    {"admin.vm.Remove", NP | NA, vm_remove},
    {"admin.vm.property.List", NP | NA, vm_prop_list},
    {"admin.vm.property.Get", NP, vm_prop_get},
    {"admin.vm.property.GetAll", NP | NA, vm_prop_get_all},
    {"admin.vm.property.GetDefault", NP, vm_prop_get_default},
    {"admin.vm.property.Help", NP, vm_prop_help},
    {"admin.vm.property.Set", 0, vm_prop_set},
    {"admin.vm.property.Reset", NP, vm_prop_reset},
    {"admin.property.List", NP | NA | D0, global_prop_list},
    {"admin.property.Get", NP | D0, global_prop_get},
    {"admin.property.GetAll", NP | NA | D0, global_prop_get_all},
    {"admin.property.GetDefault", NP | D0, global_prop_get_default},
    {"admin.property.Help", NP | D0, global_prop_help},
    {"admin.property.Set", D0, global_prop_set},
    {"admin.property.Reset", NP | D0, global_prop_reset},
    {"admin.vm.feature.List", NP | NA, feature_list},
    {"admin.vm.feature.Get", NP, feature_get},
    {"admin.vm.feature.CheckWithTemplate", NP, feature_check_template},
    {"admin.vm.feature.CheckWithNetvm", NP, feature_check_netvm},
    {"admin.vm.feature.CheckWithAdminVM", NP, feature_check_adminvm},
    {"admin.vm.feature.CheckWithTemplateAndAdminVM", NP,
     feature_check_template_adminvm},
    {"admin.vm.feature.Set", 0, feature_set},
    {"admin.vm.feature.Remove", NP, feature_remove},
    {"admin.vm.tag.List", NP | NA, tag_list},
    {"admin.vm.tag.Get", NP, tag_get},
    {"admin.vm.tag.Set", NP, tag_set},
    {"admin.vm.tag.Remove", NP, tag_remove},
    {"admin.label.List", NP | NA | D0, label_list},
    {"admin.label.Get", NP | D0, label_get},
    {"admin.label.Index", NP | D0, label_index},
    {"admin.label.Create", D0, label_create},
    {"admin.label.Remove", NP | D0, label_remove},
    {"admin.pool.List", NP | NA | D0, pool_list},
    {"admin.pool.ListDrivers", NP | NA | D0, pool_list_drivers},
    {"admin.pool.Info", NP | D0, pool_info},
    {"admin.pool.UsageDetails", NP | D0, pool_usage_details},
    {"admin.pool.Add", D0, pool_add},
    {"admin.pool.Remove", NP | D0, pool_remove},
    {"admin.pool.volume.List", NP | D0, pool_volume_list},
    {"admin.pool.Set.revisions_to_keep", D0, pool_set_revisions},
    {"admin.pool.Set.ephemeral_volatile", D0, pool_set_ephemeral},
    {"admin.vm.volume.List", NP | NA, volume_list},
    {"admin.vm.volume.Info", NP, volume_info},
    {"admin.vm.volume.ListSnapshots", NP, volume_list_snapshots},
    {"admin.vm.volume.Revert", 0, volume_revert},
    {"admin.vm.volume.Resize", 0, volume_resize},
    {"admin.vm.volume.Set.revisions_to_keep", 0, volume_set_revisions},
    {"admin.vm.volume.Set.rw", 0, volume_set_rw},
    {"admin.vm.volume.Set.ephemeral", 0, volume_set_ephemeral},
    {"admin.vm.volume.Clear", NP, volume_clear},
    {"admin.vm.volume.CloneFrom", NP, volume_clone_from},
    {"admin.vm.volume.CloneTo", 0, volume_clone_to},
    {"admin.Events", NP | NA, events},
    {"internal.vm.volume.ImportBegin", M_INTERNAL, import_begin},
    {"internal.vm.volume.ImportEnd", M_INTERNAL, import_end},
    {NULL},
};
