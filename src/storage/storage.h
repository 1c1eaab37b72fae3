/* storage.h: pools, volumes and the storage driver registry.
 *
 * A pool is an instance of a driver with options (as in qubes.xml's
 * <pool> element); a volume is one disk of a domain, living in a pool.
 * Every operation is synchronous and thread-safe: the daemon runs them on
 * a worker pool. Operations that change a volume hold that volume's lock
 * for their whole run (an in-process mutex plus the driver's own lock,
 * which for file-reflink is a lock file that keeps other processes off).
 *
 * Errors are QUBES_ERROR; codes map to the Qubes exception names.
 */
#pragma once

#include <glib.h>

#include "qubes-error.h"

G_BEGIN_DECLS

typedef struct _QubesPool QubesPool;
typedef struct _QubesVolume QubesVolume;
typedef struct _QubesStorageDriver QubesStorageDriver;

typedef void (*QubesProgressFunc)(guint64 done, guint64 total,
                                  gpointer user_data);

/* What a volume is made of (qubes.xml <volume> attributes). Strings are
 * copied. */
typedef struct {
    const char *name;          /* root, private, volatile, kernel, ... */
    const char *vid;           /* NULL: the driver derives it */
    const char *vm_name;       /* for a derived vid */
    const char *vm_dir_prefix; /* "appvms" or "vm-templates" */
    const char *source;        /* vid of the source, iff snap_on_start */
    guint64 size;
    gboolean rw;
    gboolean save_on_stop;
    gboolean snap_on_start;
    int ephemeral; /* QUBES_EPHEMERAL_DEFAULT, or TRUE/FALSE as set */
    gboolean has_revisions_to_keep; /* else the pool's */
    int revisions_to_keep;          /* -1: snapshots disabled */
} QubesVolumeConfig;

/* A volume's ephemeral setting when none was made: the reference's
 * default (the pool's ephemeral_volatile for a writable volatile volume,
 * else off; see qubes_volume_get_ephemeral()). */
#define QUBES_EPHEMERAL_DEFAULT (-1)

/* A volume. The configuration fields are read-only for callers; they
 * change only through the functions below, under the volume's lock. The
 * volume holds a reference to its pool, so the pool lives as long as any
 * of its volumes does. */
struct _QubesVolume {
    QubesPool *pool; /* referenced */
    char *name;
    char *vid;
    char *source;
    guint64 size; /* configured size; see qubes_volume_get_size() */
    gboolean rw;
    gboolean save_on_stop;
    gboolean snap_on_start;
    int ephemeral; /* QUBES_EPHEMERAL_DEFAULT, or TRUE/FALSE as set */
    int revisions_to_keep;
    /* private */
    GMutex lock;
    gint refcount;
    gpointer driver_data;
};

/* One revision (kept older image) of a volume. */
typedef struct {
    char *id;        /* "7", or the time for seed-era revisions */
    char *timestamp; /* "2018-01-02T03:04:05" (UTC) */
} QubesRevision;
void qubes_revision_free(QubesRevision *rev);

/* Space held by one image of a volume: bytes shared with other images
 * (reflinks) and bytes only it holds, i.e. what removing it would free. */
typedef struct {
    char *what; /* "current", or a revision id */
    guint64 size;
    guint64 shared;
    guint64 exclusive;
} QubesVolumeSpace;
void qubes_volume_space_free(QubesVolumeSpace *space);

typedef struct {
    guint64 data_size;
    guint64 data_usage;
} QubesPoolUsage;

/* ---- drivers ---- */

/* Names of the drivers built in, NULL-terminated (static). */
const char *const *qubes_storage_driver_names(void);
/* Parameters a driver's pools take (for admin.pool.ListDrivers), or NULL
 * when there is no such driver. Static, NULL-terminated. */
const char *const *qubes_storage_driver_parameters(const char *driver);
/* The parameters a pool of @driver needs (NULL-terminated, static). */
const char *const *qubes_storage_driver_required(const char *driver);

/* ---- pools ---- */

/* Returns a new pool of @driver named @name with @options (string keys and
 * values, as in qubes.xml or admin.pool.Add; validated here: a bad or
 * unknown option is a QubesValueError/StoragePoolException naming it).
 * Does not touch the disk; see qubes_pool_setup(). */
QubesPool *qubes_pool_new(const char *driver, const char *name,
                          GHashTable *options, GError **error);
/* Drops the owner's handle on @pool (the app's, when it removes or
 * closes it): the pool forgets its registered volumes, and the object
 * lives on until the last volume referring to it is gone, so a volume a
 * worker or a clone token still holds never reaches freed memory. */
void qubes_pool_free(QubesPool *pool);
QubesPool *qubes_pool_ref(QubesPool *pool);
void qubes_pool_unref(QubesPool *pool);
/* How many volumes are registered in @pool (those of the app's domains,
 * and those being created or removed). */
guint qubes_pool_count_volumes(QubesPool *pool);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QubesPool, qubes_pool_free)

const char *qubes_pool_get_name(QubesPool *pool);
const char *qubes_pool_get_driver(QubesPool *pool);
int qubes_pool_get_revisions_to_keep(QubesPool *pool);
gboolean qubes_pool_get_ephemeral_volatile(QubesPool *pool);
/* Sets pool-wide defaults (admin.pool.Set.*). Existing volumes keep
 * their own values. */
gboolean qubes_pool_set_revisions_to_keep(QubesPool *pool, int value,
                                          GError **error);
void qubes_pool_set_ephemeral_volatile(QubesPool *pool, gboolean value);

/* Prepares the pool on disk (creates its folders, checks the filesystem). */
gboolean qubes_pool_setup(QubesPool *pool, GError **error);
/* Undoes setup where the driver does anything for it. */
gboolean qubes_pool_destroy(QubesPool *pool, GError **error);
/* The pool's configuration as qubes.xml stores it (new table, string keys
 * and values, including "name" and "driver"). */
GHashTable *qubes_pool_get_config(QubesPool *pool);
gboolean qubes_pool_usage_details(QubesPool *pool, QubesPoolUsage *usage,
                                  GError **error);

/* Makes the volume object for @config and registers it in the pool (no
 * disk work: see qubes_volume_create()). Returns a new reference. */
QubesVolume *qubes_pool_init_volume(QubesPool *pool,
                                    const QubesVolumeConfig *config,
                                    GError **error);
/* Returns the pool's volumes (new array of new references): the
 * registered ones, or what the driver lists itself (kernels); NULL with
 * @error set when the driver cannot list them. */
GPtrArray *qubes_pool_list_volumes(QubesPool *pool, GError **error);
/* Returns a new reference to the volume @vid, or NULL. */
QubesVolume *qubes_pool_get_volume(QubesPool *pool, const char *vid);

/* Instrumentation, for tests, benchmarks and the crash suite. */
/* Number of fsyncs the pool's driver has issued so far. */
guint64 qubes_pool_get_fsync_count(QubesPool *pool);
/* Calls @func before every file step (create, link, rename, unlink,
 * fsync, ...) the driver takes, with the step's name and path; when it
 * returns TRUE the step fails with EIO. NULL removes it. Not thread-safe
 * against running operations: set it while the pool is idle. */
typedef gboolean (*QubesFailpointFunc)(const char *step, const char *path,
                                       gpointer user_data);
void qubes_pool_set_failpoint(QubesPool *pool, QubesFailpointFunc func,
                              gpointer user_data);

/* The driver-private context of a pool, for drivers only. */
gpointer qubes_pool_get_driver_data(QubesPool *pool);

/* ---- volumes ---- */

QubesVolume *qubes_volume_ref(QubesVolume *vol);
void qubes_volume_unref(QubesVolume *vol);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QubesVolume, qubes_volume_unref)

/* Creates the volume's images (an origin gets an empty sparse image). */
gboolean qubes_volume_create(QubesVolume *vol, GError **error);
/* Removes every image and revision of the volume and unregisters it. */
gboolean qubes_volume_remove(QubesVolume *vol, GError **error);
/* Prepares the image a running domain uses (qubes_volume_get_path()). */
gboolean qubes_volume_start(QubesVolume *vol, GError **error);
/* Commits or discards the running image. Stopping twice is a no-op. */
gboolean qubes_volume_stop(QubesVolume *vol, GError **error);
/* Checks that the images the volume needs to start exist. */
gboolean qubes_volume_verify(QubesVolume *vol, GError **error);
/* Makes @revision (NULL: the latest) the committed image; the current one
 * becomes a revision. Refused while the volume is in use. */
gboolean qubes_volume_revert(QubesVolume *vol, const char *revision,
                             GError **error);
/* Grows the volume to @size bytes; shrinking is refused. */
gboolean qubes_volume_resize(QubesVolume *vol, guint64 size, GError **error);
/* Starts an import: returns the path of a new sparse image of @size bytes
 * for the caller to fill, then call qubes_volume_import_data_end(). */
char *qubes_volume_import_data(QubesVolume *vol, guint64 size, GError **error);
/* Commits the imported image (a revision of the old one is kept), or
 * drops it when @success is FALSE. */
gboolean qubes_volume_import_data_end(QubesVolume *vol, gboolean success,
                                      GError **error);
/* Copies @src's committed data into @vol and commits it: a reflink where
 * both share a filesystem, else a sparse copy reporting @progress. */
gboolean qubes_volume_import_volume(QubesVolume *vol, QubesVolume *src,
                                    QubesProgressFunc progress,
                                    gpointer progress_data, GError **error);
/* Path of the committed image, for reading (origin volumes only). */
char *qubes_volume_export(QubesVolume *vol, GError **error);
/* Opens the committed image for reading; returns an fd or -1. */
int qubes_volume_export_open(QubesVolume *vol, GError **error);
/* The committed image as it is now, for a long read (a backup): a
 * reflink of it where the filesystem has them (an unnamed file, gone when
 * closed), else the committed image itself (never written in place).
 * Returns an fd or -1. */
int qubes_volume_export_snapshot(QubesVolume *vol, GError **error);

/* Path of the image a running domain uses (may not exist yet). */
char *qubes_volume_get_path(QubesVolume *vol);
gboolean qubes_volume_is_dirty(QubesVolume *vol);
gboolean qubes_volume_is_outdated(QubesVolume *vol);
/* Size in bytes: of the running image, else the committed one, else the
 * configured size. */
guint64 qubes_volume_get_size(QubesVolume *vol);
/* Allocated bytes of the running image, else of the committed one. */
guint64 qubes_volume_get_usage(QubesVolume *vol);
/* Revisions, oldest first (array of QubesRevision). */
GPtrArray *qubes_volume_list_revisions(QubesVolume *vol, GError **error);
/* Space held by the current image and by each revision (array of
 * QubesVolumeSpace, current first, then revisions oldest first). */
GPtrArray *qubes_volume_get_space(QubesVolume *vol, GError **error);

/* What admin.vm.volume.Info reports of the volume's files, read in one
 * pass where the driver can (its folder opened and listed once): the
 * four calls above, with @space NULL where get_space would fail (a
 * volume not created yet). Blocking. */
typedef struct {
    guint64 size, usage;
    gboolean outdated;
    GPtrArray *space; /* QubesVolumeSpace, or NULL */
} QubesVolumeState;
void qubes_volume_get_state(QubesVolume *vol, QubesVolumeState *out);
void qubes_volume_state_clear(QubesVolumeState *state);

gboolean qubes_volume_set_revisions_to_keep(QubesVolume *vol, int value,
                                            GError **error);
/* Whether the volume is ephemeral: as set, else the default (the pool's
 * ephemeral_volatile for a writable volume that is neither snapshot nor
 * saved on stop). */
gboolean qubes_volume_get_ephemeral(QubesVolume *vol);
/* Sets it; TRUE is refused (QubesValueError) for a volume that is a
 * snapshot, saved on stop or read-only. */
gboolean qubes_volume_set_ephemeral(QubesVolume *vol, gboolean value,
                                    GError **error);
gboolean qubes_volume_set_rw(QubesVolume *vol, gboolean rw, GError **error);
/* The vid a snapshot volume is taken from (its template changed). */
void qubes_volume_set_source(QubesVolume *vol, const char *source);

/* Takes and releases the volume's lock around a sequence of calls made by
 * one thread (the operations above take it themselves: do not call them
 * while holding it). Exposed for callers that must keep other processes
 * off a volume. */
gboolean qubes_volume_lock(QubesVolume *vol, GError **error);
void qubes_volume_unlock(QubesVolume *vol);

G_END_DECLS
