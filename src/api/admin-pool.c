/* admin-pool.c: admin.pool.* (storage pools and their drivers). */
#include "api-util.h"

#include "qubes-error.h"

#include <stdlib.h>
#include <string.h>

static QubesPool *pool_arg(Call *call, GError **error)
{
    QubesPool *p = qubes_app_get_pool(call->app, call->arg, NULL);
    api_enforce_arg(p != NULL, "pools", error);
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

/* A worker's view of a pool: it holds a reference, so that an
 * admin.pool.Remove answered meanwhile cannot free what it reads (the
 * pool object outlives its removal until the last reference goes). */
typedef struct {
    QubesPool *pool; /* referenced */
    QubesPoolUsage usage;
    gboolean have_usage;
    GHashTable *config;
    GPtrArray *others; /* for Info: name, dir_path, ... of the other pools
                          that have a folder, in qubes.xml's order */
    char *included_in; /* the first of them holding this pool's folder */
} PoolInfo;

static void pool_info_free(PoolInfo *pi)
{
    qubes_pool_unref(pi->pool);
    if (pi->config)
        g_hash_table_unref(pi->config);
    if (pi->others)
        g_ptr_array_unref(pi->others);
    g_free(pi->included_in);
    g_free(pi);
}

/* os.path.realpath: links resolved, a missing path taken as it is
 * (new). */
static char *real_path(const char *path)
{
    char *r = realpath(path, NULL);
    if (!r)
        return g_canonicalize_filename(path, "/");
    char *out = g_strdup(r);
    free(r);
    return out;
}

/* search_pool_containing_dir (storage/__init__.py), for the pools with
 * a folder: the first whose folder holds @dir (new name, NULL: none). */
static char *pool_containing(GPtrArray *others, const char *dir)
{
    g_autofree char *want = real_path(dir);
    for (guint i = 0; i + 1 < others->len; i += 2) {
        g_autofree char *have = real_path(others->pdata[i + 1]);
        gsize n = strlen(have);
        if (strncmp(want, have, n) == 0 &&
            (want[n] == '\0' || want[n] == '/' || strcmp(have, "/") == 0))
            return g_strdup(others->pdata[i]);
    }
    return NULL;
}

static gboolean pool_usage_work(gpointer data, GError **error)
{
    PoolInfo *pi = data;
    const char *dir =
        pi->config ? g_hash_table_lookup(pi->config, "dir_path") : NULL;
    if (pi->others && dir)
        pi->included_in = pool_containing(pi->others, dir);
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
    if (pi->included_in)
        g_string_append_printf(out, "included_in=%s\n", pi->included_in);
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
    pi->pool = qubes_pool_ref(p);
    pi->config = qubes_pool_get_config(p);
    /* master's included_in: the other pools' folders, read here, looked
     * at on the worker */
    pi->others = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i < call->app->pools->len; i++) {
        QubesPool *o = call->app->pools->pdata[i];
        if (o == p)
            continue;
        g_autoptr(GHashTable) c = qubes_pool_get_config(o);
        const char *dir = g_hash_table_lookup(c, "dir_path");
        if (!dir)
            continue;
        g_ptr_array_add(pi->others, g_strdup(qubes_pool_get_name(o)));
        g_ptr_array_add(pi->others, g_strdup(dir));
    }
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
    pi->pool = qubes_pool_ref(p);
    call_run_worker(call, pool_usage_work, pool_usage_done, pi,
                    (GDestroyNotify)pool_info_free);
    return CALL_ASYNC;
}

/* TRUE when @names (" a b", taken) is empty; else @error "@what: a b". */
static gboolean no_options(GString *names, int code, const char *what,
                           GError **error)
{
    gboolean none = names->len == 0;
    if (!none)
        g_set_error(error, QUBES_ERROR, code, "%s:%s", what, names->str);
    g_string_free(names, TRUE);
    return none;
}

static char *pool_add(Call *call, GError **error)
{
    const char *driver = call->arg;
    gboolean known = FALSE;
    for (const char *const *d = qubes_storage_driver_names(); *d; d++)
        known = known || strcmp(*d, call->arg) == 0;
    if (!api_enforce_arg(known, "available drivers", error))
        return NULL;
    g_autofree char *untrusted = api_payload_text(call, TRUE, error);
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
        if (!api_enforce(eq != NULL, NULL, error))
            return NULL;
        *eq = '\0';
        if (!api_enforce(!g_hash_table_contains(opts, *l) &&
                             !(name && strcmp(*l, "name") == 0),
                         NULL, error))
            return NULL;
        if (strcmp(*l, "name") == 0)
            name = g_strdup(eq + 1);
        else
            g_hash_table_insert(opts, g_strdup(*l), g_strdup(eq + 1));
    }
    if (!api_enforce(name && api_name_chars_ok(name), NULL, error))
        return NULL;
    if (qubes_app_get_pool(call->app, name, NULL)) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_POOL_IN_USE,
                    "Storage pool is in use: '%s'", name);
        return NULL;
    }
    const char *const *params = qubes_storage_driver_parameters(driver);
    GString *unexpected = g_string_new(NULL);
    GList *keys =
        g_list_sort(g_hash_table_get_keys(opts), (GCompareFunc)strcmp);
    for (GList *k = keys; k; k = k->next) {
        if (!g_strv_contains(params, k->data))
            g_string_append_printf(unexpected, " %s", (char *)k->data);
    }
    g_list_free(keys);
    if (!no_options(unexpected, QUBES_ERROR_PROTOCOL,
                    "unexpected driver options", error))
        return NULL;
    GString *missing = g_string_new(NULL);
    for (const char *const *r = qubes_storage_driver_required(driver); *r;
         r++) {
        if (!g_hash_table_contains(opts, *r))
            g_string_append_printf(missing, " %s", *r);
    }
    if (!no_options(missing, QUBES_ERROR_EXCEPTION,
                    "missing required driver options", error))
        return NULL;
    if (!qubes_app_add_pool(call->app, driver, name, opts, error))
        return NULL;
    return api_saved(call, error);
}

static char *pool_remove(Call *call, GError **error)
{
    if (!pool_arg(call, error) ||
        !qubes_app_remove_pool(call->app, call->arg, error))
        return NULL;
    return api_saved(call, error);
}

/* Where @vid comes in the listing: the reference lists a pool's volumes
 * in the order its qubes were loaded or made, each qube's in its own
 * order. Ours: qubes by qid (the qubes.xml order, so a restart gives the
 * same list), then each qube's volumes as in qubes.xml; volumes no qube
 * holds (the kernel pool's folders) after them, by vid. */
static GHashTable *volume_ranks(QubesApp *app, QubesPool *pool)
{
    GHashTable *rank = g_hash_table_new(g_str_hash, g_str_equal);
    guint n = 0;
    for (guint i = 0; i < app->domains->len; i++) {
        QubesDomain *dom = app->domains->pdata[i];
        for (guint j = 0; j < dom->volumes->len; j++) {
            QubesVolume *vol =
                ((QubesDomainVolume *)dom->volumes->pdata[j])->vol;
            if (vol->pool == pool && !g_hash_table_contains(rank, vol->vid))
                g_hash_table_insert(rank, vol->vid, GUINT_TO_POINTER(++n));
        }
    }
    return rank;
}

static int by_rank(gconstpointer a, gconstpointer b, gpointer user_data)
{
    const QubesVolume *va = *(QubesVolume *const *)a;
    const QubesVolume *vb = *(QubesVolume *const *)b;
    guint ra = GPOINTER_TO_UINT(g_hash_table_lookup(user_data, va->vid));
    guint rb = GPOINTER_TO_UINT(g_hash_table_lookup(user_data, vb->vid));
    if (ra != rb)
        return ra == 0 ? 1 : rb == 0 ? -1 : (ra < rb ? -1 : 1);
    return strcmp(va->vid, vb->vid);
}

static char *pool_volume_list(Call *call, GError **error)
{
    QubesPool *p = pool_arg(call, error);
    if (!p)
        return NULL;
    g_autoptr(GPtrArray) vols = qubes_pool_list_volumes(p, error);
    if (!vols)
        return NULL;
    g_autoptr(GHashTable) rank = volume_ranks(call->app, p);
    g_ptr_array_sort_with_data(vols, by_rank, rank);
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
    if (!p || !api_payload_number(call, "revisions to keep", TRUE, &v, error))
        return NULL;
    if (v < -1) { /* the reference checks it here, as a protocol error */
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_PROTOCOL,
                            "Invalid value for revisions_to_keep");
        return NULL;
    }
    if (v > G_MAXINT) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                    "revisions_to_keep is too big");
        return NULL;
    }
    if (!qubes_pool_set_revisions_to_keep(p, (int)v, error))
        return NULL;
    return api_saved(call, error);
}

static char *pool_set_ephemeral(Call *call, GError **error)
{
    QubesPool *p = pool_arg(call, error);
    gboolean v;
    if (!p || !api_payload_bool(call, &v, error))
        return NULL;
    qubes_pool_set_ephemeral_volatile(p, v);
    return api_saved(call, error);
}

#define NP M_NO_PAYLOAD
#define NA M_NO_ARG
#define D0 M_DOM0

const Method api_pool_methods[] = {
    {"admin.pool.List", NP | NA | D0, pool_list},
    {"admin.pool.ListDrivers", NP | NA | D0, pool_list_drivers},
    {"admin.pool.Info", NP | D0 | M_ARG, pool_info},
    {"admin.pool.UsageDetails", NP | D0 | M_ARG, pool_usage_details},
    {"admin.pool.Add", D0 | M_ARG | M_PAYLOAD, pool_add},
    {"admin.pool.Remove", NP | D0 | M_ARG, pool_remove},
    {"admin.pool.volume.List", NP | D0 | M_ARG, pool_volume_list},
    {"admin.pool.Set.revisions_to_keep", D0 | M_ARG | M_PAYLOAD,
     pool_set_revisions},
    {"admin.pool.Set.ephemeral_volatile", D0 | M_ARG | M_PAYLOAD,
     pool_set_ephemeral},
    {NULL},
};
