/* storage.c: the generic pool and volume layer (see storage.h).
 *
 * It owns the driver list, the pool's volume registry, argument checks
 * and the locking protocol; everything that touches a disk is the
 * driver's.
 */
#include "driver.h"

#include "qubes-parse.h"

#include <string.h>
#include <unistd.h>

static const QubesStorageDriver *const drivers[] = {
    &qubes_driver_file_reflink,
    &qubes_driver_linux_kernel,
};

struct _QubesPool {
    gint refcount; /* the owner's handle, and one per volume */
    char *name;
    const QubesStorageDriver *driver;
    GMutex lock; /* guards volumes and the defaults below */
    int revisions_to_keep;
    gboolean ephemeral_volatile;
    GHashTable *volumes; /* vid -> QubesVolume (ref) */
    gpointer driver_data;
};

static const QubesStorageDriver *find_driver(const char *name)
{
    for (size_t i = 0; i < G_N_ELEMENTS(drivers); i++) {
        if (strcmp(drivers[i]->name, name) == 0)
            return drivers[i];
    }
    return NULL;
}

const char *const *qubes_storage_driver_names(void)
{
    static const char *names[G_N_ELEMENTS(drivers) + 1];
    static gsize done;
    if (g_once_init_enter(&done)) {
        for (size_t i = 0; i < G_N_ELEMENTS(drivers); i++)
            names[i] = drivers[i]->name;
        g_once_init_leave(&done, 1);
    }
    return names;
}

const char *const *qubes_storage_driver_parameters(const char *driver)
{
    const QubesStorageDriver *d = find_driver(driver);
    return d ? d->parameters : NULL;
}

const char *const *qubes_storage_driver_required(const char *driver)
{
    const QubesStorageDriver *d = find_driver(driver);
    static const char *const none[] = {NULL};
    return d && d->required ? d->required : none;
}

static gboolean driver_takes(const QubesStorageDriver *d, const char *param)
{
    for (const char *const *p = d->parameters; *p; p++) {
        if (strcmp(*p, param) == 0)
            return TRUE;
    }
    return FALSE;
}

void qubes_revision_free(QubesRevision *rev)
{
    if (!rev)
        return;
    g_free(rev->id);
    g_free(rev->timestamp);
    g_free(rev);
}

void qubes_volume_space_free(QubesVolumeSpace *space)
{
    if (!space)
        return;
    g_free(space->what);
    g_free(space);
}

/* ---- pools ---- */

QubesPool *qubes_pool_new(const char *driver, const char *name,
                          GHashTable *options, GError **error)
{
    const QubesStorageDriver *d = find_driver(driver);
    if (!d) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_STORAGE_POOL,
                    "No such pool driver: %s", driver);
        return NULL;
    }
    if (!qubes_name_is_valid_pool(name)) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                    "Invalid pool name: %s", name);
        return NULL;
    }
    g_autoptr(QubesPool) pool = g_new0(QubesPool, 1);
    pool->refcount = 1;
    pool->name = g_strdup(name);
    pool->driver = d;
    g_mutex_init(&pool->lock);
    pool->revisions_to_keep = d->read_only ? 0 : 1;
    pool->volumes = g_hash_table_new_full(g_str_hash, g_str_equal, NULL,
                                          (GDestroyNotify)qubes_volume_unref);

    /* The generic options are ours; the rest go to the driver. */
    g_autoptr(GHashTable) rest = g_hash_table_new(g_str_hash, g_str_equal);
    GHashTableIter it;
    gpointer k, v;
    if (options)
        g_hash_table_iter_init(&it, options);
    while (options && g_hash_table_iter_next(&it, &k, &v)) {
        const char *key = k, *untrusted_value = v;
        if (strcmp(key, "revisions_to_keep") == 0 && driver_takes(d, key)) {
            gint64 n;
            if (!qubes_parse_int64(untrusted_value, TRUE, "revisions_to_keep",
                                   &n, error))
                return NULL;
            if (!qubes_pool_set_revisions_to_keep(pool, (int)MIN(n, G_MAXINT),
                                                  error))
                return NULL;
        } else if (strcmp(key, "ephemeral_volatile") == 0 &&
                   driver_takes(d, key)) {
            if (!qubes_parse_bool(untrusted_value, "ephemeral_volatile",
                                  &pool->ephemeral_volatile, error))
                return NULL;
        } else if (strcmp(key, "name") == 0 || strcmp(key, "driver") == 0) {
            continue;
        } else if (!driver_takes(d, key)) {
            g_set_error(error, QUBES_ERROR, QUBES_ERROR_STORAGE_POOL,
                        "Pool driver %s takes no option %s", d->name, key);
            return NULL;
        } else {
            g_hash_table_insert(rest, k, v);
        }
    }
    if (d->pool_init && !d->pool_init(pool, rest, error))
        return NULL;
    return g_steal_pointer(&pool);
}

void qubes_pool_free(QubesPool *pool)
{
    if (!pool)
        return;
    /* The registry's references would keep the pool alive through its
     * own volumes: drop them, outside the lock (a volume's last unref
     * unrefs the pool). */
    g_mutex_lock(&pool->lock);
    GHashTable *vols = pool->volumes;
    pool->volumes = g_hash_table_new_full(g_str_hash, g_str_equal, NULL,
                                          (GDestroyNotify)qubes_volume_unref);
    g_mutex_unlock(&pool->lock);
    g_hash_table_destroy(vols);
    qubes_pool_unref(pool);
}

QubesPool *qubes_pool_ref(QubesPool *pool)
{
    g_atomic_int_inc(&pool->refcount);
    return pool;
}

void qubes_pool_unref(QubesPool *pool)
{
    if (!pool || !g_atomic_int_dec_and_test(&pool->refcount))
        return;
    g_hash_table_destroy(pool->volumes);
    if (pool->driver->pool_free && pool->driver_data)
        pool->driver->pool_free(pool);
    g_mutex_clear(&pool->lock);
    g_free(pool->name);
    g_free(pool);
}

guint qubes_pool_count_volumes(QubesPool *pool)
{
    g_autoptr(GMutexLocker) l = g_mutex_locker_new(&pool->lock);
    return g_hash_table_size(pool->volumes);
}

const char *qubes_pool_get_name(QubesPool *pool)
{
    return pool->name;
}

const char *qubes_pool_get_driver(QubesPool *pool)
{
    return pool->driver->name;
}

int qubes_pool_get_revisions_to_keep(QubesPool *pool)
{
    g_autoptr(GMutexLocker) l = g_mutex_locker_new(&pool->lock);
    return pool->revisions_to_keep;
}

gboolean qubes_pool_get_ephemeral_volatile(QubesPool *pool)
{
    g_autoptr(GMutexLocker) l = g_mutex_locker_new(&pool->lock);
    return pool->ephemeral_volatile;
}

/* The reference's rule for revisions_to_keep: -1 (snapshots disabled) or
 * more, and only 0 on a read-only driver's pool or volume. */
/* @of_pool: the pool's own setting (kernels.py: the pool is LinuxKernel,
 * its volumes LinuxModules, each refusing in its own name). */
static gboolean check_revisions_to_keep(const QubesStorageDriver *d, int value,
                                        gboolean of_pool, GError **error)
{
    if (value < -1) {
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                            "Invalid value for revisions_to_keep");
        return FALSE;
    }
    if (d->read_only && value != 0) {
        g_set_error_literal(
            error, QUBES_ERROR, QUBES_ERROR_VALUE,
            of_pool ? "LinuxKernel supports only revisions_to_keep=0"
                    : "LinuxModules supports only "
                      "revisions_to_keep=0");
        return FALSE;
    }
    return TRUE;
}

gboolean qubes_pool_set_revisions_to_keep(QubesPool *pool, int value,
                                          GError **error)
{
    if (!check_revisions_to_keep(pool->driver, value, TRUE, error))
        return FALSE;
    g_autoptr(GMutexLocker) l = g_mutex_locker_new(&pool->lock);
    pool->revisions_to_keep = value;
    return TRUE;
}

void qubes_pool_set_ephemeral_volatile(QubesPool *pool, gboolean value)
{
    g_autoptr(GMutexLocker) l = g_mutex_locker_new(&pool->lock);
    pool->ephemeral_volatile = value;
}

gpointer qubes_pool_get_driver_data(QubesPool *pool)
{
    return pool->driver_data;
}

void qubes_pool_set_driver_data(QubesPool *pool, gpointer data)
{
    pool->driver_data = data;
}

char *qubes_pool_option_dir_path(QubesPool *pool, GHashTable *options,
                                 GError **error)
{
    const char *untrusted_dir = g_hash_table_lookup(options, "dir_path");
    if (!untrusted_dir || !g_path_is_absolute(untrusted_dir) ||
        strstr(untrusted_dir, "/../") ||
        g_str_has_suffix(untrusted_dir, "/..")) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_STORAGE_POOL,
                    "Pool %s: dir_path must be an absolute path", pool->name);
        return NULL;
    }
    return g_canonicalize_filename(untrusted_dir, "/");
}

/* The file layer's I/O errors (a full disk, a failing one) get the name
 * of the pool, for the admin who has to free space in it or repair it,
 * and become the StoragePoolException they are. Returns @ok. */
static gboolean name_pool(QubesPool *pool, gboolean ok, GError **error)
{
    if (!ok && error && *error && (*error)->domain == QUBES_ERROR &&
        (*error)->code == QUBES_ERROR_STORAGE_IO) {
        char *m =
            g_strdup_printf("%s (pool %s)", (*error)->message, pool->name);
        g_free((*error)->message);
        (*error)->message = m;
        (*error)->code = QUBES_ERROR_STORAGE_POOL;
    }
    return ok;
}

gboolean qubes_pool_setup(QubesPool *pool, GError **error)
{
    return name_pool(pool,
                     !pool->driver->pool_setup ||
                         pool->driver->pool_setup(pool, error),
                     error);
}

gboolean qubes_pool_destroy(QubesPool *pool, GError **error)
{
    return name_pool(pool,
                     !pool->driver->pool_destroy ||
                         pool->driver->pool_destroy(pool, error),
                     error);
}

GHashTable *qubes_pool_get_config(QubesPool *pool)
{
    GHashTable *config =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    g_hash_table_insert(config, g_strdup("name"), g_strdup(pool->name));
    g_hash_table_insert(config, g_strdup("driver"),
                        g_strdup(pool->driver->name));
    if (driver_takes(pool->driver, "revisions_to_keep"))
        g_hash_table_insert(
            config, g_strdup("revisions_to_keep"),
            g_strdup_printf("%d", qubes_pool_get_revisions_to_keep(pool)));
    if (driver_takes(pool->driver, "ephemeral_volatile"))
        g_hash_table_insert(config, g_strdup("ephemeral_volatile"),
                            g_strdup(qubes_pool_get_ephemeral_volatile(pool)
                                         ? "True"
                                         : "False"));
    if (pool->driver->pool_config)
        pool->driver->pool_config(pool, config);
    return config;
}

gboolean qubes_pool_usage_details(QubesPool *pool, QubesPoolUsage *usage,
                                  GError **error)
{
    memset(usage, 0, sizeof *usage);
    return name_pool(pool,
                     !pool->driver->pool_usage ||
                         pool->driver->pool_usage(pool, usage, error),
                     error);
}

guint64 qubes_pool_get_fsync_count(QubesPool *pool)
{
    return pool->driver->pool_fsync_count ? pool->driver->pool_fsync_count(pool)
                                          : 0;
}

void qubes_pool_set_failpoint(QubesPool *pool, QubesFailpointFunc func,
                              gpointer user_data)
{
    if (pool->driver->pool_set_failpoint)
        pool->driver->pool_set_failpoint(pool, func, user_data);
}

QubesVolume *qubes_pool_init_volume(QubesPool *pool,
                                    const QubesVolumeConfig *config,
                                    GError **error)
{
    if (!config->name || !qubes_name_is_valid_volume(config->name)) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                    "Invalid volume name: %s",
                    config->name ? config->name : "(none)");
        return NULL;
    }
    if (config->snap_on_start != (config->source != NULL)) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                    "Volume %s: a source is needed exactly when "
                    "snap_on_start is set",
                    config->name);
        return NULL;
    }
    /* A read-only driver's volume keeps none, whatever qubes.xml says. */
    int keep = config->has_revisions_to_keep && !pool->driver->read_only
                   ? config->revisions_to_keep
                   : qubes_pool_get_revisions_to_keep(pool);
    if (!check_revisions_to_keep(pool->driver, keep, FALSE, error))
        return NULL;

    QubesVolume *vol = g_new0(QubesVolume, 1);
    vol->refcount = 1;
    g_mutex_init(&vol->lock);
    vol->pool = qubes_pool_ref(pool);
    vol->name = g_strdup(config->name);
    vol->vid = g_strdup(config->vid);
    vol->source = g_strdup(config->source);
    vol->size = config->size;
    vol->rw = config->rw;
    vol->save_on_stop = config->save_on_stop;
    vol->snap_on_start = config->snap_on_start;
    vol->ephemeral = config->ephemeral;
    vol->revisions_to_keep = keep;
    if (pool->driver->volume_init &&
        !pool->driver->volume_init(vol, config, error)) {
        qubes_volume_unref(vol);
        return NULL;
    }
    if (!vol->vid) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                    "Volume %s has no vid", config->name);
        qubes_volume_unref(vol);
        return NULL;
    }
    if (pool->driver->shared_vids)
        return vol; /* not registered: many volumes, one vid */
    g_autoptr(GMutexLocker) l = g_mutex_locker_new(&pool->lock);
    if (g_hash_table_contains(pool->volumes, vol->vid)) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_STORAGE_POOL,
                    "Volume %s already exists in pool %s", vol->vid,
                    pool->name);
        qubes_volume_unref(vol);
        return NULL;
    }
    g_hash_table_insert(pool->volumes, vol->vid, qubes_volume_ref(vol));
    return vol;
}

GPtrArray *qubes_pool_list_volumes(QubesPool *pool, GError **error)
{
    if (pool->driver->list_volumes) {
        GPtrArray *vols = pool->driver->list_volumes(pool, error);
        name_pool(pool, vols != NULL, error);
        return vols;
    }
    g_autoptr(GMutexLocker) l = g_mutex_locker_new(&pool->lock);
    GPtrArray *out =
        g_ptr_array_new_with_free_func((GDestroyNotify)qubes_volume_unref);
    GHashTableIter it;
    gpointer v;
    g_hash_table_iter_init(&it, pool->volumes);
    while (g_hash_table_iter_next(&it, NULL, &v))
        g_ptr_array_add(out, qubes_volume_ref(v));
    return out;
}

QubesVolume *qubes_pool_get_volume(QubesPool *pool, const char *vid)
{
    g_autoptr(GMutexLocker) l = g_mutex_locker_new(&pool->lock);
    QubesVolume *vol = g_hash_table_lookup(pool->volumes, vid);
    return vol ? qubes_volume_ref(vol) : NULL;
}

/* ---- volumes ---- */

QubesVolume *qubes_volume_ref(QubesVolume *vol)
{
    g_atomic_int_inc(&vol->refcount);
    return vol;
}

void qubes_volume_unref(QubesVolume *vol)
{
    if (!vol || !g_atomic_int_dec_and_test(&vol->refcount))
        return;
    if (vol->driver_data && vol->pool->driver->volume_free)
        vol->pool->driver->volume_free(vol);
    qubes_pool_unref(vol->pool);
    g_mutex_clear(&vol->lock);
    g_free(vol->name);
    g_free(vol->vid);
    g_free(vol->source);
    g_free(vol);
}

static gboolean not_supported(QubesVolume *vol, const char *op, GError **error)
{
    g_set_error(error, QUBES_ERROR, QUBES_ERROR_NOT_IMPLEMENTED,
                "Pool driver %s cannot %s (volume %s)", vol->pool->driver->name,
                op, vol->vid);
    return FALSE;
}

static gboolean begin(QubesVolume *vol, gboolean may_create, GError **error)
{
    g_mutex_lock(&vol->lock);
    const QubesStorageDriver *d = vol->pool->driver;
    if (d->volume_lock && !d->volume_lock(vol, may_create, error)) {
        g_mutex_unlock(&vol->lock);
        return name_pool(vol->pool, FALSE, error);
    }
    return TRUE;
}

static void end(QubesVolume *vol)
{
    const QubesStorageDriver *d = vol->pool->driver;
    if (d->volume_unlock)
        d->volume_unlock(vol);
    g_mutex_unlock(&vol->lock);
}

gboolean qubes_volume_lock(QubesVolume *vol, GError **error)
{
    return begin(vol, TRUE, error);
}

void qubes_volume_unlock(QubesVolume *vol)
{
    end(vol);
}

/* Runs a locked driver operation @OP(vol, args...). */
#define LOCKED_OP(vol, may_create, opname, error, ...)                         \
    do {                                                                       \
        const QubesStorageDriver *d_ = (vol)->pool->driver;                    \
        if (!d_->opname)                                                       \
            return not_supported((vol), #opname, (error));                     \
        if (!begin((vol), (may_create), (error)))                              \
            return FALSE;                                                      \
        gboolean ok_ = d_->opname((vol), ##__VA_ARGS__, (error));              \
        end(vol);                                                              \
        return name_pool((vol)->pool, ok_, (error));                           \
    } while (0)

gboolean qubes_volume_create(QubesVolume *vol, GError **error)
{
    LOCKED_OP(vol, TRUE, create, error);
}

gboolean qubes_volume_start(QubesVolume *vol, GError **error)
{
    LOCKED_OP(vol, TRUE, start, error);
}

gboolean qubes_volume_stop(QubesVolume *vol, GError **error)
{
    LOCKED_OP(vol, FALSE, stop, error);
}

gboolean qubes_volume_revert(QubesVolume *vol, const char *revision,
                             GError **error)
{
    if (revision && !*revision)
        revision = NULL; /* an empty payload means the latest */
    LOCKED_OP(vol, FALSE, revert, error, revision);
}

gboolean qubes_volume_resize(QubesVolume *vol, guint64 size, GError **error)
{
    if (size > (guint64)G_MAXINT64) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                    "Invalid size for %s", vol->vid);
        return FALSE;
    }
    LOCKED_OP(vol, FALSE, resize, error, size);
}

gboolean qubes_volume_import_data_end(QubesVolume *vol, gboolean success,
                                      GError **error)
{
    LOCKED_OP(vol, FALSE, import_data_end, error, success);
}

gboolean qubes_volume_remove(QubesVolume *vol, GError **error)
{
    const QubesStorageDriver *d = vol->pool->driver;
    if (d->remove) {
        if (!begin(vol, FALSE, error))
            return FALSE;
        gboolean ok = d->remove(vol, error);
        end(vol);
        if (!ok)
            return name_pool(vol->pool, FALSE, error);
    }
    QubesPool *pool = vol->pool;
    g_autoptr(GMutexLocker) l = g_mutex_locker_new(&pool->lock);
    if (g_hash_table_lookup(pool->volumes, vol->vid) == vol)
        g_hash_table_remove(pool->volumes, vol->vid);
    return TRUE;
}

char *qubes_volume_import_data(QubesVolume *vol, guint64 size, GError **error)
{
    const QubesStorageDriver *d = vol->pool->driver;
    if (size > (guint64)G_MAXINT64) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                    "Invalid size for %s", vol->vid);
        return NULL;
    }
    if (!d->import_data) {
        not_supported(vol, "import_data", error);
        return NULL;
    }
    if (!begin(vol, TRUE, error))
        return NULL;
    char *path = d->import_data(vol, size, error);
    end(vol);
    name_pool(vol->pool, path != NULL, error);
    return path;
}

gboolean qubes_volume_import_volume(QubesVolume *vol, QubesVolume *src,
                                    QubesProgressFunc progress,
                                    gpointer progress_data, GError **error)
{
    const QubesStorageDriver *d = vol->pool->driver;
    if (!d->import_volume)
        return not_supported(vol, "import_volume", error);
    if (src == vol) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                    "Cannot import volume %s into itself", vol->vid);
        return FALSE;
    }
    /* The source's committed image is an immutable inode: opening it is
     * atomic against its own commits, so its lock is not needed. */
    int fd = qubes_volume_export_open(src, error);
    if (fd < 0)
        return FALSE;
    g_autofree char *desc =
        g_strdup_printf("%s:%s", qubes_pool_get_name(src->pool), src->vid);
    gboolean ok = FALSE;
    if (begin(vol, TRUE, error)) {
        ok = d->import_volume(vol, fd, desc, progress, progress_data, error);
        end(vol);
    }
    close(fd);
    return name_pool(vol->pool, ok, error);
}

gboolean qubes_volume_verify(QubesVolume *vol, GError **error)
{
    const QubesStorageDriver *d = vol->pool->driver;
    return name_pool(vol->pool, !d->verify || d->verify(vol, error), error);
}

char *qubes_volume_export(QubesVolume *vol, GError **error)
{
    const QubesStorageDriver *d = vol->pool->driver;
    if (!d->export_path) {
        not_supported(vol, "export", error);
        return NULL;
    }
    char *path = d->export_path(vol, error);
    name_pool(vol->pool, path != NULL, error);
    return path;
}

int qubes_volume_export_open(QubesVolume *vol, GError **error)
{
    const QubesStorageDriver *d = vol->pool->driver;
    if (!d->export_open) {
        not_supported(vol, "export", error);
        return -1;
    }
    int fd = d->export_open(vol, error);
    name_pool(vol->pool, fd >= 0, error);
    return fd;
}

int qubes_volume_export_snapshot(QubesVolume *vol, GError **error)
{
    const QubesStorageDriver *d = vol->pool->driver;
    if (!d->export_snapshot)
        return qubes_volume_export_open(vol, error);
    int fd = d->export_snapshot(vol, error);
    name_pool(vol->pool, fd >= 0, error);
    return fd;
}

char *qubes_volume_get_path(QubesVolume *vol)
{
    const QubesStorageDriver *d = vol->pool->driver;
    return d->get_path ? d->get_path(vol) : NULL;
}

gboolean qubes_volume_is_dirty(QubesVolume *vol)
{
    const QubesStorageDriver *d = vol->pool->driver;
    return d->is_dirty && d->is_dirty(vol);
}

gboolean qubes_volume_is_outdated(QubesVolume *vol)
{
    const QubesStorageDriver *d = vol->pool->driver;
    return d->is_outdated && d->is_outdated(vol);
}

guint64 qubes_volume_get_size(QubesVolume *vol)
{
    const QubesStorageDriver *d = vol->pool->driver;
    guint64 size;
    if (d->get_size && d->get_size(vol, &size))
        return size;
    return vol->size;
}

guint64 qubes_volume_get_usage(QubesVolume *vol)
{
    const QubesStorageDriver *d = vol->pool->driver;
    return d->get_usage ? d->get_usage(vol) : 0;
}

GPtrArray *qubes_volume_list_revisions(QubesVolume *vol, GError **error)
{
    const QubesStorageDriver *d = vol->pool->driver;
    if (!d->list_revisions)
        return g_ptr_array_new_with_free_func(
            (GDestroyNotify)qubes_revision_free);
    GPtrArray *revs = d->list_revisions(vol, error);
    name_pool(vol->pool, revs != NULL, error);
    return revs;
}

GPtrArray *qubes_volume_get_space(QubesVolume *vol, GError **error)
{
    const QubesStorageDriver *d = vol->pool->driver;
    if (!d->get_space) {
        not_supported(vol, "report space", error);
        return NULL;
    }
    GPtrArray *space = d->get_space(vol, error);
    name_pool(vol->pool, space != NULL, error);
    return space;
}

void qubes_volume_get_state(QubesVolume *vol, QubesVolumeState *out)
{
    const QubesStorageDriver *d = vol->pool->driver;
    if (d->get_state) {
        d->get_state(vol, out);
        return;
    }
    out->size = qubes_volume_get_size(vol);
    out->usage = qubes_volume_get_usage(vol);
    out->outdated = qubes_volume_is_outdated(vol);
    out->space = d->get_space ? d->get_space(vol, NULL) : NULL;
}

void qubes_volume_state_clear(QubesVolumeState *state)
{
    g_clear_pointer(&state->space, g_ptr_array_unref);
}

gboolean qubes_volume_set_revisions_to_keep(QubesVolume *vol, int value,
                                            GError **error)
{
    if (!check_revisions_to_keep(vol->pool->driver, value, FALSE, error))
        return FALSE;
    g_autoptr(GMutexLocker) l = g_mutex_locker_new(&vol->lock);
    vol->revisions_to_keep = value;
    return TRUE;
}

gboolean qubes_volume_set_rw(QubesVolume *vol, gboolean rw, GError **error)
{
    if (rw && vol->pool->driver->read_only) {
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                            "LinuxModules supports only read-only volumes");
        return FALSE;
    }
    g_autoptr(GMutexLocker) l = g_mutex_locker_new(&vol->lock);
    vol->rw = rw;
    return TRUE;
}

void qubes_volume_set_source(QubesVolume *vol, const char *source)
{
    g_autoptr(GMutexLocker) l = g_mutex_locker_new(&vol->lock);
    g_free(vol->source);
    vol->source = g_strdup(source);
}

gboolean qubes_volume_get_ephemeral(QubesVolume *vol)
{
    g_autoptr(GMutexLocker) l = g_mutex_locker_new(&vol->lock);
    if (vol->ephemeral != QUBES_EPHEMERAL_DEFAULT)
        return vol->ephemeral;
    if (vol->snap_on_start || vol->save_on_stop || !vol->rw)
        return FALSE;
    return qubes_pool_get_ephemeral_volatile(vol->pool);
}

gboolean qubes_volume_set_ephemeral(QubesVolume *vol, gboolean value,
                                    GError **error)
{
    g_autoptr(GMutexLocker) l = g_mutex_locker_new(&vol->lock);
    if (value && (vol->snap_on_start || vol->save_on_stop || !vol->rw)) {
        /* The reference's words: "non-dom0" is a volume a qube other
         * than dom0 provides, which we never have. */
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                            "Cannot enable ephemeral on snap_on_start or "
                            "save_on_stop or non-dom0 or not writable volume");
        return FALSE;
    }
    vol->ephemeral = value ? TRUE : FALSE;
    return TRUE;
}
