/* qfile.h: logged, counted, dirfd-relative file primitives.
 *
 * Everything the storage drivers do to a file goes through here, so that
 * the rules hold in one place:
 *   - Work is relative to a pool's root directory fd. Folders below it are
 *     walked one validated component at a time with O_NOFOLLOW, and every
 *     file name handed to these functions is a single component: no link
 *     and no ".." can lead out of the pool.
 *   - New files appear under their final name only when complete: they are
 *     made as O_TMPFILE inodes (or "NAME~XXXXXX" where O_TMPFILE is not
 *     supported) and linked or renamed into place.
 *   - Every change (create, reflink, copy, hardlink, rename, remove) is
 *     logged at INFO with its full paths, in log domain "qubes.storage".
 *   - Every step passes a failpoint hook first, so tests can make any step
 *     fail, and every fsync is counted.
 *
 * None of these functions fsync a folder by themselves unless they say so:
 * the callers batch the folder syncs and write down why each one is needed.
 */
#pragma once

#include <glib.h>
#include <sys/stat.h>

G_BEGIN_DECLS

typedef struct _QFileCtx QFileCtx;
typedef struct _QDir QDir;

/* A failpoint hook: called before each step with its kind ("rename",
 * "fsync", ...) and the path it touches. Returning TRUE makes the step fail
 * with EIO, as if the disk had failed there. */
typedef gboolean (*QFileFailpointFunc)(const char *step, const char *path,
                                       gpointer user_data);

/* Progress of a long copy: @done of @total data bytes. */
typedef void (*QFileProgressFunc)(guint64 done, guint64 total,
                                  gpointer user_data);

/* Returns a new context for the folder @root_path (not opened yet). */
QFileCtx *qfile_ctx_new(const char *root_path);
void qfile_ctx_free(QFileCtx *ctx);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QFileCtx, qfile_ctx_free)

/* Creates @root_path if needed (and @created says whether it did), then
 * opens it as the root of all further work. The root path itself is
 * trusted configuration and may be reached through links. Thread-safe;
 * opening twice is a no-op. */
gboolean qfile_ctx_open_root(QFileCtx *ctx, gboolean create, gboolean *created,
                             GError **error);
/* Forgets the opened root (after the folder was removed). */
void qfile_ctx_close_root(QFileCtx *ctx);
const char *qfile_ctx_root_path(QFileCtx *ctx);
void qfile_ctx_set_failpoint(QFileCtx *ctx, QFileFailpointFunc func,
                             gpointer user_data);
/* Number of fsync calls made through this context so far. */
guint64 qfile_ctx_fsync_count(QFileCtx *ctx);

/* Returns TRUE when @name is a safe single path component: 1 to 255 bytes
 * of [A-Za-z0-9_.+@:~-], not "." or "..". */
gboolean qfile_name_is_safe(const char *name);
/* Returns TRUE when @relpath is one or more safe components joined by
 * single slashes (no leading or trailing slash), at most 1024 bytes. */
gboolean qfile_relpath_is_safe(const char *relpath);

/* Opens the folder @relpath ("" for the root) below the root, creating
 * missing components when @create (each new one is made durable by an
 * fsync of its parent). Fails with a clear error when a component is a
 * link or not a folder. */
QDir *qdir_open(QFileCtx *ctx, const char *relpath, gboolean create,
                GError **error);
void qdir_close(QDir *dir);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QDir, qdir_close)
/* Full path of the folder, for messages. */
const char *qdir_path(QDir *dir);
int qdir_fd(QDir *dir);
/* Returns the full path of @name in @dir (caller frees). */
char *qdir_child_path(QDir *dir, const char *name);

/* A new file the caller writes, under its final name only when whole
 * (the rule above: an O_TMPFILE inode, or "NAME~XXXXXX" where the
 * filesystem has none, removed on abort). _commit syncs its data, then
 * links it as @final in @dir (@replace: over an existing one, through a
 * "~" name and a rename); the folder's sync is the caller's. Both _commit
 * and _abort free @n. */
typedef struct _QFileNew QFileNew;
QFileNew *qfile_new_begin(QDir *dir, const char *final, GError **error);
int qfile_new_fd(QFileNew *n);
gboolean qfile_new_commit(QFileNew *n, const char *final, gboolean replace,
                          GError **error);
void qfile_new_abort(QFileNew *n);

/* Stats @name without following links. Returns 1 when it exists, 0 when
 * it does not, -1 with @error set otherwise. */
int qfile_stat(QDir *dir, const char *name, struct stat *st, GError **error);
/* The one open of an existing file, for the storage layer and a qube's
 * own files (qube-folder.c): @name in the folder @dirfd (@dir_path names it in
 * messages) with @flags (O_RDONLY, O_WRONLY or O_RDWR and nothing that
 * creates), never through a link, O_NONBLOCK so that a planted FIFO
 * cannot block the open, and then refused unless fstat() says it is a
 * regular file, and, when it opens for writing, one with one link: a
 * FIFO, a device or a folder is no image, and a second link means the
 * inode is also named elsewhere, perhaps outside the pool, where a write
 * would change a file we do not own. (Reading allows more links: the
 * driver itself hardlinks a snapshot's source and keeps revisions as
 * hardlinks while it commits; it never writes into such an inode.)
 * Returns the fd (O_NONBLOCK cleared) or -1 with errno set (EINVAL for a
 * refusal, ENOENT when there is no such file) and @error naming the
 * path: StoragePoolException for what is not a lone regular file,
 * QubesStorageIO with the errno's text otherwise. */
int qfile_openat_file(int dirfd, const char *dir_path, const char *name,
                      int flags, GError **error);
/* The text of the small file @name in the folder @dir_path (trusted
 * configuration: the folder may be reached through links), through
 * qfile_openat_file(): NULL with @error when it is missing (errno
 * ENOENT), refused, unreadable or larger than @max bytes. */
char *qfile_read_text(const char *dir_path, const char *name, gsize max,
                      GError **error);
/* The same in the folder @dirfd (@dir_path names it); *@len, when not
 * NULL, gets the text's length (it may hold NULs). */
char *qfile_read_textat(int dirfd, const char *dir_path, const char *name,
                        gsize max, gsize *len, GError **error);
/* Early writeback for a long write: call after writing @len more bytes
 * to @fd. Every QFILE_WRITEBACK_STEP bytes (counted in *@pending) it asks
 * the kernel to start writing the file's dirty pages out
 * (sync_file_range with SYNC_FILE_RANGE_WRITE, which waits for nothing),
 * so that the disk works while the caller computes and the final fsync
 * finds little left. It promises no durability: the fsync still does. */
#define QFILE_WRITEBACK_STEP ((guint64)64 << 20)
void qfile_writeback_step(int fd, guint64 *pending, gsize len);
/* qfile_openat_file() in @dir, read-only. */
int qfile_open_read(QDir *dir, const char *name, GError **error);
/* Lists the names in @dir (caller frees the array). */
GPtrArray *qfile_list(QDir *dir, GError **error);

/* Removes @name; a missing file is fine. Logs what it removed. */
gboolean qfile_unlink(QDir *dir, const char *name, GError **error);
/* Renames @from in @from_dir to @to in @to_dir, replacing @to. */
gboolean qfile_rename(QDir *from_dir, const char *from, QDir *to_dir,
                      const char *to, GError **error);
/* Hardlinks @src in @src_dir as @dst in @dst_dir (@dst must not exist). */
gboolean qfile_link(QDir *src_dir, const char *src, QDir *dst_dir,
                    const char *dst, GError **error);
/* Removes the folder @name in @parent when it is empty; a missing or
 * non-empty folder is fine. The parent is synced when it was removed. */
gboolean qfile_rmdir_if_empty(QDir *parent, const char *name, GError **error);

gboolean qfile_fsync(QDir *dir, const char *name, GError **error);
gboolean qfile_fsync_dir(QDir *dir, GError **error);

/* Creates @name as an empty sparse file of @size bytes. Fails if it
 * exists. Not synced: its size is journaled metadata that the filesystem
 * orders before the link that names it. */
gboolean qfile_create_sparse(QDir *dir, const char *name, guint64 size,
                             GError **error);
/* Sets the size of the existing file @name and syncs it. */
gboolean qfile_truncate(QDir *dir, const char *name, guint64 size,
                        GError **error);

typedef struct {
    gint64 size;          /* size of the copy; -1 keeps the source's */
    gboolean keep_mtime;  /* carry the source's mtime over */
    gboolean replace;     /* @dst may exist and is replaced atomically */
    gboolean discardable; /* not synced even when copied: the caller
                             throws it away after a crash anyway */
    gboolean no_reflink;  /* always the sparse copy (benchmarks) */
    QFileProgressFunc progress;
    gpointer progress_data;
} QFileCopyOpts;
#define QFILE_COPY_OPTS_INIT                                                   \
    {                                                                          \
        .size = -1                                                             \
    }

/* Copies the data of @src_fd (described as @src_desc in messages) to a new
 * file @dst in @dst_dir: a reflink (FICLONE) where the filesystem can,
 * else a sparse copy of the data ranges only, in process. A copy is synced
 * before it is named; a reflink is not (see qfile.c). @reflinked, if not
 * NULL, says which way it went. */
gboolean qfile_copy_fd(int src_fd, const char *src_desc, QDir *dst_dir,
                       const char *dst, const QFileCopyOpts *opts,
                       gboolean *reflinked, GError **error);
gboolean qfile_copy(QDir *src_dir, const char *src, QDir *dst_dir,
                    const char *dst, const QFileCopyOpts *opts,
                    gboolean *reflinked, GError **error);

/* Bytes of @fd's extents that are shared with other files (reflinks) and
 * that only it holds, from FIEMAP. */
gboolean qfile_extent_usage(int fd, const char *desc, guint64 *shared,
                            guint64 *exclusive, GError **error);

/* Returns TRUE when two temporary files in @dir can be reflinked; FALSE
 * when they cannot, with @error set only if the test itself failed. */
gboolean qfile_reflink_supported(QDir *dir, GError **error);

/* Tells every loop device backed by the inode of @fd that its size
 * changed (LOOP_SET_CAPACITY). Returns the number of devices updated. */
int qfile_update_loop_devices(int fd, const char *desc, GError **error);

/* Lock files live outside the pool, on tmpfs: in $QUBES_LOCK_DIR, else
 * /run/qubes/storage-locks, in a folder named after the device and inode
 * of the pool's root (so two paths to one pool share their locks). A lock
 * file is never removed: its inode stays the one everybody locks. */

/* Takes the lock @name of the pool: exclusive, blocking, against other
 * processes and other threads (each call opens its own file description).
 * Returns its fd, or -1 with @error set. */
int qfile_lock(QFileCtx *ctx, const char *name, GError **error);
void qfile_unlock(int fd);

G_END_DECLS
