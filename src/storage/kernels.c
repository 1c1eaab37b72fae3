/* kernels.c: the linux-kernel driver.
 *
 * Read-only kernels from a folder of version-named subfolders, as Qubes
 * keeps them in /var/lib/qubes/vm-kernels:
 *
 *   DIR/6.1.0/vmlinuz, DIR/6.1.0/initramfs, DIR/6.1.0/modules.img
 *
 * As master's LinuxModules: only vmlinuz is required (verify and start
 * check it); initramfs and modules.img are used when present (the
 * runtime boots without an initrd, and attaches no modules disk,
 * without them).
 *
 * A domain's "kernel" volume has the kernel version as its vid (many
 * domains share one), and the empty vid for "no kernel from dom0": then
 * it verifies and starts with nothing to check, and has no path. Nothing
 * is ever written: start and stop only check, create and remove do
 * nothing, resize, revert and imports are refused; rw and revisions stay
 * off (driver->read_only). Like the reference's LinuxModules, a kernel
 * volume reports size and usage 0: modules.img is not the qube's disk.
 * Folder and file names
 * are walked with the same link-refusing primitives as file-reflink.
 */
#include "driver.h"

#include "qfile.h"

#include <string.h>
#include <sys/stat.h>

static const char *const parameters[] = {"dir_path", NULL};
static const char *const required[] = {"dir_path", NULL};

static QFileCtx *kctx(QubesPool *pool)
{
    return qubes_pool_get_driver_data(pool);
}

static gboolean pool_init(QubesPool *pool, GHashTable *options, GError **error)
{
    g_autofree char *canon = qubes_pool_option_dir_path(pool, options, error);
    if (!canon)
        return FALSE;
    qubes_pool_set_driver_data(pool, qfile_ctx_new(canon));
    return TRUE;
}

static void pool_free(QubesPool *pool)
{
    qfile_ctx_free(kctx(pool));
}

static void pool_config(QubesPool *pool, GHashTable *config)
{
    g_hash_table_insert(config, g_strdup("dir_path"),
                        g_strdup(qfile_ctx_root_path(kctx(pool))));
}

/* The pool lists one volume per installed kernel version. */
static GPtrArray *list_volumes(QubesPool *pool, GError **error)
{
    g_autoptr(QDir) top = qdir_open(kctx(pool), "", FALSE, error);
    if (!top)
        return NULL;
    g_autoptr(GPtrArray) names = qfile_list(top, error);
    if (!names)
        return NULL;
    GPtrArray *out =
        g_ptr_array_new_with_free_func((GDestroyNotify)qubes_volume_unref);
    for (guint i = 0; i < names->len; i++) {
        const char *version = names->pdata[i];
        struct stat st;
        if (!qfile_name_is_safe(version) ||
            qfile_stat(top, version, &st, NULL) != 1 || !S_ISDIR(st.st_mode))
            continue;
        QubesVolumeConfig cfg = {.name = version, .vid = version};
        QubesVolume *vol = qubes_pool_init_volume(pool, &cfg, NULL);
        if (vol)
            g_ptr_array_add(out, vol);
    }
    return out;
}

static gboolean volume_init(QubesVolume *vol, const QubesVolumeConfig *config,
                            GError **error)
{
    if (!vol->vid)
        vol->vid = g_strdup(""); /* no kernel */
    if (*vol->vid && !qfile_name_is_safe(vol->vid)) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                    "Invalid kernel version for volume %s: %s", vol->name,
                    vol->vid);
        return FALSE;
    }
    if (vol->save_on_stop || vol->snap_on_start) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_STORAGE_POOL,
                    "Volume %s: kernels are read-only, not saved on stop "
                    "or snapshotted",
                    vol->name);
        return FALSE;
    }
    vol->rw = FALSE;
    return TRUE;
}

/* Checks that the kernel's vmlinuz is there, a regular file (reached
 * without following a link), in master's words. */
static gboolean vol_verify(QubesVolume *vol, GError **error)
{
    if (!*vol->vid)
        return TRUE;
    QFileCtx *ctx = kctx(vol->pool);
    g_autoptr(QDir) dir = qdir_open(ctx, vol->vid, FALSE, NULL);
    struct stat st;
    if (dir && qfile_stat(dir, "vmlinuz", &st, NULL) == 1 &&
        S_ISREG(st.st_mode))
        return TRUE;
    g_autofree char *path =
        g_build_filename(qfile_ctx_root_path(ctx), vol->vid, "vmlinuz", NULL);
    g_set_error(error, QUBES_ERROR, QUBES_ERROR_STORAGE_POOL,
                "Missing file: %s", path);
    return FALSE;
}

static gboolean vol_nothing(QubesVolume *vol, GError **error)
{
    return TRUE;
}

static gboolean vol_resize(QubesVolume *vol, guint64 size, GError **error)
{
    g_set_error(error, QUBES_ERROR, QUBES_ERROR_STORAGE_POOL,
                "Cannot resize: kernel volume %s is read-only", vol->name);
    return FALSE;
}

static gboolean vol_revert(QubesVolume *vol, const char *revision,
                           GError **error)
{
    g_set_error(error, QUBES_ERROR, QUBES_ERROR_STORAGE_POOL,
                "Cannot revert: kernel volume %s has no revisions", vol->name);
    return FALSE;
}

static char *vol_get_path(QubesVolume *vol)
{
    if (!*vol->vid)
        return NULL;
    return g_build_filename(qfile_ctx_root_path(kctx(vol->pool)), vol->vid,
                            "modules.img", NULL);
}

const QubesStorageDriver qubes_driver_linux_kernel = {
    .name = "linux-kernel",
    .parameters = parameters,
    .required = required,
    .shared_vids = TRUE,
    .read_only = TRUE,
    .list_volumes = list_volumes,
    .pool_init = pool_init,
    .pool_free = pool_free,
    .pool_config = pool_config,
    .volume_init = volume_init,
    .create = vol_nothing,
    .remove = vol_nothing,
    .start = vol_verify,
    .stop = vol_nothing,
    .revert = vol_revert,
    .resize = vol_resize,
    .verify = vol_verify,
    .get_path = vol_get_path,
};
