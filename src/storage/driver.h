/* driver.h: the table of functions a storage driver provides.
 *
 * For drivers only; everyone else uses storage.h. A driver is one static
 * QubesStorageDriver; adding a driver (lvm_thin, zfs, linux-kernel) means
 * adding its table to the list in storage.c, and no caller changes.
 *
 * The generic layer (storage.c) validates arguments, holds the volume's
 * mutex and calls volume_lock()/volume_unlock() around every volume
 * operation marked (locked) below. A NULL operation makes the call fail
 * with QubesNotImplementedError.
 */
#pragma once

#include "storage.h"

G_BEGIN_DECLS

struct _QubesStorageDriver {
    const char *name;
    /* Options the driver takes, for admin.pool.ListDrivers (NULL-term.).
     * "revisions_to_keep" and "ephemeral_volatile" are handled by the
     * generic layer when listed here. */
    const char *const *parameters;
    /* Those of them a pool cannot be made without (NULL-terminated). */
    const char *const *required;

    /* TRUE when many volumes share one vid (kernels: one per VM, same
     * version): the pool does not register volumes by vid, and lists them
     * with list_volumes(). */
    gboolean shared_vids;
    /* TRUE when its volumes are never writable and keep no revisions
     * (kernels, the reference's LinuxModules): setting rw or a non-zero
     * revisions_to_keep is refused with the reference's messages. */
    gboolean read_only;
    /* Lists the pool's volumes itself (new array of new references), for
     * drivers whose volumes exist without any domain (kernels). */
    GPtrArray *(*list_volumes)(QubesPool *pool, GError **error);

    /* Parses the driver's own options (already stripped of the generic
     * ones) into the pool's driver data. */
    gboolean (*pool_init)(QubesPool *pool, GHashTable *options, GError **error);
    void (*pool_free)(QubesPool *pool);
    gboolean (*pool_setup)(QubesPool *pool, GError **error);
    gboolean (*pool_destroy)(QubesPool *pool, GError **error);
    /* Adds the driver's own keys to @config. */
    void (*pool_config)(QubesPool *pool, GHashTable *config);
    gboolean (*pool_usage)(QubesPool *pool, QubesPoolUsage *usage,
                           GError **error);
    guint64 (*pool_fsync_count)(QubesPool *pool);
    void (*pool_set_failpoint)(QubesPool *pool, QubesFailpointFunc func,
                               gpointer user_data);

    /* Sets vol->vid when the config has none, checks the config, sets up
     * vol->driver_data. */
    gboolean (*volume_init)(QubesVolume *vol, const QubesVolumeConfig *config,
                            GError **error);
    void (*volume_free)(QubesVolume *vol);
    /* Takes the driver's cross-process lock on the volume. @may_create
     * says whether the operation may create the volume's folder. */
    gboolean (*volume_lock)(QubesVolume *vol, gboolean may_create,
                            GError **error);
    void (*volume_unlock)(QubesVolume *vol);

    gboolean (*create)(QubesVolume *vol, GError **error); /* locked */
    gboolean (*remove)(QubesVolume *vol, GError **error); /* locked */
    gboolean (*start)(QubesVolume *vol, GError **error);  /* locked */
    gboolean (*stop)(QubesVolume *vol, GError **error);   /* locked */
    gboolean (*revert)(QubesVolume *vol, const char *revision,
                       GError **error); /* locked */
    gboolean (*resize)(QubesVolume *vol, guint64 size, GError **error);
    char *(*import_data)(QubesVolume *vol, guint64 size, GError **error);
    gboolean (*import_data_end)(QubesVolume *vol, gboolean success,
                                GError **error); /* locked */
    gboolean (*import_volume)(QubesVolume *vol, int src_fd,
                              const char *src_desc, QubesProgressFunc progress,
                              gpointer progress_data,
                              GError **error); /* locked */
    gboolean (*verify)(QubesVolume *vol, GError **error);
    char *(*export_path)(QubesVolume *vol, GError **error);
    int (*export_open)(QubesVolume *vol, GError **error);
    int (*export_snapshot)(QubesVolume *vol, GError **error); /* optional */

    char *(*get_path)(QubesVolume *vol);
    gboolean (*is_dirty)(QubesVolume *vol);
    gboolean (*is_outdated)(QubesVolume *vol);
    gboolean (*get_size)(QubesVolume *vol, guint64 *size);
    guint64 (*get_usage)(QubesVolume *vol);
    GPtrArray *(*list_revisions)(QubesVolume *vol, GError **error);
    GPtrArray *(*get_space)(QubesVolume *vol, GError **error);
    /* optional: the four above in one pass (storage.h) */
    void (*get_state)(QubesVolume *vol, QubesVolumeState *out);
};

extern const QubesStorageDriver qubes_driver_file_reflink;
extern const QubesStorageDriver qubes_driver_linux_kernel;

/* Helpers for drivers. */
void qubes_pool_set_driver_data(QubesPool *pool, gpointer data);
/* Checks the pool option "dir_path" (absolute, no "..") and returns it
 * canonicalised (new string), or NULL with a StoragePoolException. */
char *qubes_pool_option_dir_path(QubesPool *pool, GHashTable *options,
                                 GError **error);

G_END_DECLS
