/* qfile.c: see qfile.h for the contract.
 *
 * Durability rules used by every caller (the argument, once):
 *   1. A file whose data we wrote ourselves (a sparse copy, a written
 *      image) is fsynced before it gets its final name: otherwise a power
 *      cut could keep the name (journaled metadata) but lose the data
 *      (page cache), e.g. on ext4 with delayed allocation.
 *   2. A reflink (FICLONE) or a size change needs no fsync before it is
 *      named. Both are metadata transactions on the filesystems that
 *      support them (btrfs, XFS; ext4 for sizes), and those filesystems
 *      replay their journal in order: a link or rename that survived a
 *      crash implies that every transaction before it survived too. The
 *      data blocks a reflink shares were already durable (rule 1 or a
 *      previous commit).
 *   3. A link, rename or unlink is durable once its folder is fsynced.
 *      Callers sync each folder once, after the last change that must be
 *      durable before they return.
 */
#include "qfile.h"

#include "qubes-error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define COPY_CHUNK (8u << 20)

struct _QFileCtx {
    char *root_path;
    GMutex lock; /* guards root_fd while it is opened */
    int root_fd;
    atomic_uint_fast64_t fsyncs;
    int lock_fd; /* the pool's lock folder, opened on first use */
    QFileFailpointFunc failpoint;
    gpointer failpoint_data;
};

struct _QDir {
    QFileCtx *ctx;
    int fd;
    char *path;
};

QFileCtx *qfile_ctx_new(const char *root_path)
{
    QFileCtx *ctx = g_new0(QFileCtx, 1);
    ctx->root_path = g_strdup(root_path);
    ctx->root_fd = -1;
    ctx->lock_fd = -1;
    g_mutex_init(&ctx->lock);
    return ctx;
}

void qfile_ctx_free(QFileCtx *ctx)
{
    if (!ctx)
        return;
    if (ctx->root_fd >= 0)
        close(ctx->root_fd);
    if (ctx->lock_fd >= 0)
        close(ctx->lock_fd);
    g_mutex_clear(&ctx->lock);
    g_free(ctx->root_path);
    g_free(ctx);
}

const char *qfile_ctx_root_path(QFileCtx *ctx)
{
    return ctx->root_path;
}

void qfile_ctx_set_failpoint(QFileCtx *ctx, QFileFailpointFunc func,
                             gpointer user_data)
{
    ctx->failpoint = func;
    ctx->failpoint_data = user_data;
}

guint64 qfile_ctx_fsync_count(QFileCtx *ctx)
{
    return atomic_load(&ctx->fsyncs);
}

/* Runs the failpoint hook for a step; returns FALSE (EIO) if it fires. */
static gboolean step(QFileCtx *ctx, const char *what, const char *path,
                     GError **error)
{
    if (ctx->failpoint && ctx->failpoint(what, path, ctx->failpoint_data)) {
        return qubes_error_errno_code(error, QUBES_ERROR_STORAGE_IO, EIO,
                                      "Cannot %s %s (failpoint)", what, path);
    }
    return TRUE;
}

static gboolean counted_fsync(QFileCtx *ctx, int fd, const char *path,
                              GError **error)
{
    if (!step(ctx, "fsync", path, error))
        return FALSE;
    atomic_fetch_add(&ctx->fsyncs, 1);
    if (fsync(fd) < 0)
        return qubes_error_errno_code(error, QUBES_ERROR_STORAGE_IO, errno,
                                      "Cannot fsync %s", path);
    return TRUE;
}

gboolean qfile_ctx_open_root(QFileCtx *ctx, gboolean create, gboolean *created,
                             GError **error)
{
    g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&ctx->lock);
    if (created)
        *created = FALSE;
    if (ctx->root_fd >= 0)
        return TRUE;
    if (!g_path_is_absolute(ctx->root_path)) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_STORAGE_POOL,
                    "Pool folder %s is not an absolute path", ctx->root_path);
        return FALSE;
    }
    if (create) {
        if (!step(ctx, "mkdir", ctx->root_path, error))
            return FALSE;
        if (mkdir(ctx->root_path, 0755) == 0) {
            if (created)
                *created = TRUE;
            g_autofree char *parent = g_path_get_dirname(ctx->root_path);
            int pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (pfd < 0)
                return qubes_error_errno_code(error, QUBES_ERROR_STORAGE_IO,
                                              errno, "Cannot open %s", parent);
            /* The new folder's name is durable before anything in it. */
            gboolean ok = counted_fsync(ctx, pfd, parent, error);
            close(pfd);
            if (!ok)
                return FALSE;
            g_info("Created directory: %s", ctx->root_path);
        } else if (errno != EEXIST) {
            return qubes_error_errno_code(error, QUBES_ERROR_STORAGE_IO, errno,
                                          "Cannot create %s", ctx->root_path);
        }
    }
    int fd = open(ctx->root_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return qubes_error_errno_code(error, QUBES_ERROR_STORAGE_IO, errno,
                                      "Cannot open pool folder %s",
                                      ctx->root_path);
    ctx->root_fd = fd;
    return TRUE;
}

void qfile_ctx_close_root(QFileCtx *ctx)
{
    g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&ctx->lock);
    if (ctx->root_fd >= 0)
        close(ctx->root_fd);
    ctx->root_fd = -1;
}

gboolean qfile_name_is_safe(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > 255 || strcmp(name, ".") == 0 ||
        strcmp(name, "..") == 0)
        return FALSE;
    for (const char *p = name; *p; p++) {
        if (!g_ascii_isalnum(*p) && !strchr("_.+@:~-", *p))
            return FALSE;
    }
    return TRUE;
}

gboolean qfile_relpath_is_safe(const char *relpath)
{
    if (strlen(relpath) == 0 || strlen(relpath) > 1024)
        return FALSE;
    g_auto(GStrv) parts = g_strsplit(relpath, "/", -1);
    for (char **p = parts; *p; p++) {
        if (!qfile_name_is_safe(*p))
            return FALSE;
    }
    return TRUE;
}

static char *join(const char *a, const char *b)
{
    return g_strconcat(a, "/", b, NULL);
}

QDir *qdir_open(QFileCtx *ctx, const char *relpath, gboolean create,
                GError **error)
{
    if (ctx->root_fd < 0 && !qfile_ctx_open_root(ctx, FALSE, NULL, error))
        return NULL;
    if (*relpath && !qfile_relpath_is_safe(relpath)) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_STORAGE_POOL,
                    "Unsafe path %s below %s", relpath, ctx->root_path);
        return NULL;
    }
    /* The whole path in one call where the kernel has openat2: a link
     * in any component is refused (RESOLVE_NO_SYMLINKS, as the walk
     * below refuses one with O_NOFOLLOW at each step) and nothing leaves
     * the root (RESOLVE_BENEATH). Only its success is taken: a missing
     * folder (to make), a link or a file on the way (to report in the
     * walk's words), or ENOSYS take the walk, which decides. */
    if (*relpath) {
        struct open_how how = {.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
                               .resolve = RESOLVE_NO_SYMLINKS |
                                          RESOLVE_NO_MAGICLINKS |
                                          RESOLVE_BENEATH};
        int fd =
            (int)syscall(SYS_openat2, ctx->root_fd, relpath, &how, sizeof how);
        if (fd >= 0) {
            QDir *dir = g_new0(QDir, 1);
            dir->ctx = ctx;
            dir->fd = fd;
            dir->path = join(ctx->root_path, relpath);
            return dir;
        }
    }
    int fd = fcntl(ctx->root_fd, F_DUPFD_CLOEXEC, 3);
    if (fd < 0) {
        qubes_error_errno_code(error, QUBES_ERROR_STORAGE_IO, errno,
                               "Cannot open %s", ctx->root_path);
        return NULL;
    }
    g_autofree char *path = g_strdup(ctx->root_path);
    g_auto(GStrv) parts =
        *relpath ? g_strsplit(relpath, "/", -1) : g_new0(char *, 1);
    for (char **p = parts; *p; p++) {
        g_autofree char *child = join(path, *p);
        int cfd =
            openat(fd, *p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (cfd < 0 && errno == ENOENT && create) {
            if (!step(ctx, "mkdir", child, error)) {
                close(fd);
                return NULL;
            }
            if (mkdirat(fd, *p, 0755) == 0) {
                /* The folder's name must be durable before files in it
                 * are: sync the parent once, here, when it is new. */
                if (!counted_fsync(ctx, fd, path, error)) {
                    close(fd);
                    return NULL;
                }
                g_info("Created directory: %s", child);
            } else if (errno != EEXIST) {
                qubes_error_errno_code(error, QUBES_ERROR_STORAGE_IO, errno,
                                       "Cannot create %s", child);
                close(fd);
                return NULL;
            }
            cfd =
                openat(fd, *p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        if (cfd < 0) {
            int errsv = errno;
            close(fd);
            if (errsv == ELOOP || errsv == ENOTDIR)
                g_set_error(error, QUBES_ERROR, QUBES_ERROR_STORAGE_POOL,
                            "Refusing %s: not a folder (links are not "
                            "followed in a pool)",
                            child);
            else
                qubes_error_errno_code(error, QUBES_ERROR_STORAGE_IO, errsv,
                                       "Cannot open %s", child);
            return NULL;
        }
        close(fd);
        fd = cfd;
        g_free(path);
        path = g_steal_pointer(&child);
    }
    QDir *dir = g_new0(QDir, 1);
    dir->ctx = ctx;
    dir->fd = fd;
    dir->path = g_steal_pointer(&path);
    return dir;
}

void qdir_close(QDir *dir)
{
    if (!dir)
        return;
    close(dir->fd);
    g_free(dir->path);
    g_free(dir);
}

const char *qdir_path(QDir *dir)
{
    return dir->path;
}

int qdir_fd(QDir *dir)
{
    return dir->fd;
}

char *qdir_child_path(QDir *dir, const char *name)
{
    return join(dir->path, name);
}

int qfile_stat(QDir *dir, const char *name, struct stat *st, GError **error)
{
    if (fstatat(dir->fd, name, st, AT_SYMLINK_NOFOLLOW) == 0)
        return 1;
    if (errno == ENOENT)
        return 0;
    g_autofree char *path = qdir_child_path(dir, name);
    qubes_error_errno_code(error, QUBES_ERROR_STORAGE_IO, errno,
                           "Cannot stat %s", path);
    return -1;
}

void qfile_writeback_step(int fd, guint64 *pending, gsize len)
{
    *pending += len;
    if (*pending < QFILE_WRITEBACK_STEP)
        return;
    *pending = 0;
    /* the whole file: the writes may be anywhere in it. An error only
     * means the writeback waits for the fsync, which reports its own. */
    (void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
}

int qfile_openat_file(int dirfd, const char *dir_path, const char *name,
                      int flags, GError **error)
{
    g_assert(!(flags & (O_CREAT | O_TRUNC | O_DIRECTORY)));
    int fd = openat(dirfd, name, flags | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    int errsv = errno;
    struct stat st;
    const char *why = NULL;
    /* a FIFO without a reader refuses a non-blocking open for writing */
    if (fd < 0 && errsv == ENXIO &&
        fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        !S_ISREG(st.st_mode))
        why = "not a regular file";
    else if (fd >= 0 && fstat(fd, &st) != 0)
        errsv = errno;
    else if (fd >= 0 && !S_ISREG(st.st_mode))
        why = "not a regular file";
    else if (fd >= 0 && (flags & O_ACCMODE) != O_RDONLY && st.st_nlink != 1)
        why = "it has more than one link (a hard link from elsewhere?)";
    else if (fd >= 0 && fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0)
        errsv = errno;
    else if (fd >= 0)
        return fd;
    if (fd >= 0)
        close(fd);
    g_autofree char *path = g_build_filename(dir_path, name, NULL);
    if (why)
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_STORAGE_POOL,
                    "Refusing %s: %s", path, why);
    else
        qubes_error_errno_code(error, QUBES_ERROR_STORAGE_IO, errsv,
                               "Cannot open %s", path);
    errno = why ? EINVAL : errsv;
    return -1;
}

char *qfile_read_text(const char *dir_path, const char *name, gsize max,
                      GError **error)
{
    int dfd = open(dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        int errsv = errno;
        qubes_error_errno_code(error, QUBES_ERROR_STORAGE_IO, errsv,
                               "Cannot open %s", dir_path);
        errno = errsv;
        return NULL;
    }
    char *text = qfile_read_textat(dfd, dir_path, name, max, NULL, error);
    int errsv = errno;
    close(dfd);
    errno = errsv;
    return text;
}

char *qfile_read_textat(int dirfd, const char *dir_path, const char *name,
                        gsize max, gsize *len, GError **error)
{
    int fd = qfile_openat_file(dirfd, dir_path, name, O_RDONLY, error);
    if (fd < 0)
        return NULL;
    int errsv;
    GString *out = g_string_new(NULL);
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0 && out->len <= max)
        g_string_append_len(out, buf, n);
    errsv = n < 0 ? errno : out->len > max ? EFBIG : 0;
    close(fd);
    if (errsv) {
        g_autofree char *path = g_build_filename(dir_path, name, NULL);
        qubes_error_errno_code(error, QUBES_ERROR_STORAGE_IO, errsv,
                               "Cannot read %s", path);
        g_string_free(out, TRUE);
        errno = errsv;
        return NULL;
    }
    if (len)
        *len = out->len;
    return g_string_free(out, FALSE);
}

int qfile_open_read(QDir *dir, const char *name, GError **error)
{
    return qfile_openat_file(dir->fd, dir->path, name, O_RDONLY, error);
}

GPtrArray *qfile_list(QDir *dir, GError **error)
{
    /* getdents64 on a descriptor of its own (the listing's position is
     * the descriptor's): no DIR, whose fdopendir asks the descriptor's
     * flags and mode again. */
    int fd = openat(dir->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        qubes_error_errno_code(error, QUBES_ERROR_STORAGE_IO, errno,
                               "Cannot list %s", dir->path);
        return NULL;
    }
    GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
    /* aligned for struct dirent64 */
    union {
        struct dirent64 first;
        char bytes[32768];
    } buf;
    for (;;) {
        long n = syscall(SYS_getdents64, fd, buf.bytes, sizeof buf.bytes);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int errsv = errno;
            close(fd);
            g_ptr_array_unref(names);
            qubes_error_errno_code(error, QUBES_ERROR_STORAGE_IO, errsv,
                                   "Cannot list %s", dir->path);
            return NULL;
        }
        if (n == 0)
            break;
        for (long off = 0; off < n;) {
            const struct dirent64 *de =
                (const struct dirent64 *)(buf.bytes + off);
            if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
                g_ptr_array_add(names, g_strdup(de->d_name));
            off += de->d_reclen;
        }
    }
    close(fd);
    return names;
}

gboolean qfile_unlink(QDir *dir, const char *name, GError **error)
{
    g_autofree char *path = qdir_child_path(dir, name);
    if (!step(dir->ctx, "unlink", path, error))
        return FALSE;
    if (unlinkat(dir->fd, name, 0) < 0) {
        if (errno == ENOENT)
            return TRUE;
        return qubes_error_errno_code(error, QUBES_ERROR_STORAGE_IO, errno,
                                      "Cannot remove %s", path);
    }
    g_info("Removed file: %s", path);
    return TRUE;
}

gboolean qfile_rename(QDir *from_dir, const char *from, QDir *to_dir,
                      const char *to, GError **error)
{
    g_autofree char *from_path = qdir_child_path(from_dir, from);
    g_autofree char *to_path = qdir_child_path(to_dir, to);
    if (!step(from_dir->ctx, "rename", from_path, error))
        return FALSE;
    if (renameat(from_dir->fd, from, to_dir->fd, to) < 0)
        return qubes_error_errno_code(error, QUBES_ERROR_STORAGE_IO, errno,
                                      "Cannot rename %s to %s", from_path,
                                      to_path);
    g_info("Renamed file: %s -> %s", from_path, to_path);
    return TRUE;
}

gboolean qfile_link(QDir *src_dir, const char *src, QDir *dst_dir,
                    const char *dst, GError **error)
{
    g_autofree char *src_path = qdir_child_path(src_dir, src);
    g_autofree char *dst_path = qdir_child_path(dst_dir, dst);
    if (!step(src_dir->ctx, "link", dst_path, error))
        return FALSE;
    /* flags 0: a link planted at @src is linked itself, never followed */
    if (linkat(src_dir->fd, src, dst_dir->fd, dst, 0) < 0)
        return qubes_error_errno_code(error, QUBES_ERROR_STORAGE_IO, errno,
                                      "Cannot hardlink %s to %s", src_path,
                                      dst_path);
    g_info("Hardlinked file: %s -> %s", src_path, dst_path);
    return TRUE;
}

gboolean qfile_rmdir_if_empty(QDir *parent, const char *name, GError **error)
{
    g_autofree char *path = qdir_child_path(parent, name);
    if (!step(parent->ctx, "rmdir", path, error))
        return FALSE;
    if (unlinkat(parent->fd, name, AT_REMOVEDIR) < 0) {
        if (errno == ENOENT || errno == ENOTEMPTY || errno == EEXIST)
            return TRUE;
        return qubes_error_errno_code(error, QUBES_ERROR_STORAGE_IO, errno,
                                      "Cannot remove folder %s", path);
    }
    g_info("Removed empty directory: %s", path);
    /* Sync the parent so that a removed VM folder stays removed. */
    return counted_fsync(parent->ctx, parent->fd, parent->path, error);
}

gboolean qfile_fsync(QDir *dir, const char *name, GError **error)
{
    g_autofree char *path = qdir_child_path(dir, name);
    int fd = qfile_open_read(dir, name, error);
    if (fd < 0)
        return FALSE;
    gboolean ok = counted_fsync(dir->ctx, fd, path, error);
    close(fd);
    return ok;
}

gboolean qfile_fsync_dir(QDir *dir, GError **error)
{
    return counted_fsync(dir->ctx, dir->fd, dir->path, error);
}

/* A file being made: an anonymous O_TMPFILE inode, or a "~" temporary
 * where the filesystem has no O_TMPFILE. */
typedef struct {
    QDir *dir;
    int fd;
    char *tmpname; /* NULL for O_TMPFILE */
    char *path;    /* final path, for messages */
} TmpFile;

static char *random_tmp_name(const char *final)
{
    static const char chars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    char suffix[9];
    for (size_t i = 0; i < sizeof suffix - 1; i++)
        suffix[i] = chars[g_random_int_range(0, sizeof chars - 1)];
    suffix[sizeof suffix - 1] = '\0';
    return g_strconcat(final, "~", suffix, NULL);
}

static gboolean tmp_open(QDir *dir, const char *final, TmpFile *t,
                         GError **error)
{
    t->dir = dir;
    t->tmpname = NULL;
    t->path = qdir_child_path(dir, final);
    if (!step(dir->ctx, "create", t->path, error))
        goto fail;
    t->fd = openat(dir->fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (t->fd >= 0)
        return TRUE;
    if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) {
        qubes_error_errno_code(error, QUBES_ERROR_STORAGE_IO, errno,
                               "Cannot create a file in %s", dir->path);
        goto fail;
    }
    for (int i = 0; i < 100; i++) {
        g_autofree char *name = random_tmp_name(final);
        t->fd =
            openat(dir->fd, name,
                   O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (t->fd >= 0) {
            t->tmpname = g_steal_pointer(&name);
            return TRUE;
        }
        if (errno != EEXIST)
            break;
    }
    qubes_error_errno_code(error, QUBES_ERROR_STORAGE_IO, errno,
                           "Cannot create a temporary for %s", t->path);
fail:
    g_clear_pointer(&t->path, g_free);
    t->fd = -1;
    return FALSE;
}

static void tmp_abort(TmpFile *t)
{
    if (t->fd < 0)
        return;
    close(t->fd);
    t->fd = -1;
    if (t->tmpname)
        unlinkat(t->dir->fd, t->tmpname, 0);
    g_clear_pointer(&t->tmpname, g_free);
    g_clear_pointer(&t->path, g_free);
}

static gboolean link_anonymous(TmpFile *t, const char *name)
{
    if (linkat(t->fd, "", t->dir->fd, name, AT_EMPTY_PATH) == 0)
        return TRUE;
    if (errno != ENOENT && errno != EPERM)
        return FALSE;
    /* Without CAP_DAC_READ_SEARCH, go through /proc. */
    char proc[64];
    g_snprintf(proc, sizeof proc, "/proc/self/fd/%d", t->fd);
    return linkat(AT_FDCWD, proc, t->dir->fd, name, AT_SYMLINK_FOLLOW) == 0;
}

/* Gives the new file its final name @final. With @replace, an existing
 * @final is replaced atomically (through a "~" name and a rename);
 * otherwise an existing @final is an error. */
static gboolean tmp_commit(TmpFile *t, const char *final, gboolean replace,
                           GError **error)
{
    gboolean ok = FALSE;
    if (!step(t->dir->ctx, "link", t->path, error))
        goto out;
    if (!t->tmpname && !replace) {
        if (!link_anonymous(t, final)) {
            qubes_error_errno_code(error, QUBES_ERROR_STORAGE_IO, errno,
                                   "Cannot create %s", t->path);
            goto out;
        }
        ok = TRUE;
        goto out;
    }
    if (!t->tmpname) {
        for (int i = 0; i < 100 && !t->tmpname; i++) {
            g_autofree char *name = random_tmp_name(final);
            if (link_anonymous(t, name))
                t->tmpname = g_steal_pointer(&name);
            else if (errno != EEXIST)
                break;
        }
        if (!t->tmpname) {
            qubes_error_errno_code(error, QUBES_ERROR_STORAGE_IO, errno,
                                   "Cannot create a temporary for %s", t->path);
            goto out;
        }
    }
    if (!replace) {
        /* Named temporary on a filesystem without O_TMPFILE. */
        if (renameat2(t->dir->fd, t->tmpname, t->dir->fd, final,
                      RENAME_NOREPLACE) < 0) {
            qubes_error_errno_code(error, QUBES_ERROR_STORAGE_IO, errno,
                                   "Cannot create %s", t->path);
            goto out;
        }
    } else if (renameat(t->dir->fd, t->tmpname, t->dir->fd, final) < 0) {
        qubes_error_errno_code(error, QUBES_ERROR_STORAGE_IO, errno,
                               "Cannot replace %s", t->path);
        goto out;
    }
    g_clear_pointer(&t->tmpname, g_free);
    ok = TRUE;
out:
    tmp_abort(t);
    return ok;
}

/* ---- a new file made by the caller ---- */

struct _QFileNew {
    TmpFile t;
};

QFileNew *qfile_new_begin(QDir *dir, const char *final, GError **error)
{
    QFileNew *n = g_new0(QFileNew, 1);
    if (!tmp_open(dir, final, &n->t, error)) {
        g_free(n);
        return NULL;
    }
    return n;
}

int qfile_new_fd(QFileNew *n)
{
    return n->t.fd;
}

gboolean qfile_new_commit(QFileNew *n, const char *final, gboolean replace,
                          GError **error)
{
    gboolean ok = counted_fsync(n->t.dir->ctx, n->t.fd, n->t.path, error) &&
                  tmp_commit(&n->t, final, replace, error);
    qfile_new_abort(n);
    return ok;
}

void qfile_new_abort(QFileNew *n)
{
    if (!n)
        return;
    tmp_abort(&n->t);
    g_free(n);
}

gboolean qfile_create_sparse(QDir *dir, const char *name, guint64 size,
                             GError **error)
{
    TmpFile t;
    if (!tmp_open(dir, name, &t, error))
        return FALSE;
    if (ftruncate(t.fd, (off_t)size) < 0) {
        qubes_error_errno_code(
            error, QUBES_ERROR_STORAGE_IO, errno,
            "Cannot set the size of %s to %" G_GUINT64_FORMAT, t.path, size);
        tmp_abort(&t);
        return FALSE;
    }
    g_autofree char *path = g_strdup(t.path);
    /* No fsync: rule 2, a size is metadata ordered before the link. */
    if (!tmp_commit(&t, name, FALSE, error))
        return FALSE;
    g_info("Created sparse file: %s (%" G_GUINT64_FORMAT " bytes)", path, size);
    return TRUE;
}

gboolean qfile_truncate(QDir *dir, const char *name, guint64 size,
                        GError **error)
{
    g_autofree char *path = qdir_child_path(dir, name);
    if (!step(dir->ctx, "truncate", path, error))
        return FALSE;
    int fd = qfile_openat_file(dir->fd, dir->path, name, O_WRONLY, error);
    if (fd < 0)
        return FALSE;
    if (ftruncate(fd, (off_t)size) < 0) {
        int errsv = errno;
        close(fd);
        return qubes_error_errno_code(error, QUBES_ERROR_STORAGE_IO, errsv,
                                      "Cannot resize %s to %" G_GUINT64_FORMAT,
                                      path, size);
    }
    /* The caller reports the new size as done: make it durable. */
    gboolean ok = counted_fsync(dir->ctx, fd, path, error);
    close(fd);
    if (ok)
        g_info("Resized file: %s (%" G_GUINT64_FORMAT " bytes)", path, size);
    return ok;
}

static gboolean all_zero(const guint8 *buf, size_t len)
{
    return len == 0 || (buf[0] == 0 && memcmp(buf, buf + 1, len - 1) == 0);
}

/* Copies [off, off+len) with read and write, leaving zero blocks as
 * holes. Measured against copy_file_range (which may also share extents,
 * not what a fallback copy is for), this was faster on ext4: see
 * bench/copy-fallback. */
static gboolean copy_range_rw(int src, int dst, off_t off, off_t len,
                              const char *desc, guint8 *buf, GError **error)
{
    const size_t blk = 64 * 1024;
    while (len > 0) {
        size_t want = (size_t)MIN((off_t)COPY_CHUNK, len);
        ssize_t n = pread(src, buf, want, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return qubes_error_errno_code(error, QUBES_ERROR_STORAGE_IO, errno,
                                          "Cannot read %s", desc);
        if (n == 0)
            break;
        for (size_t pos = 0; pos < (size_t)n; pos += blk) {
            size_t l = MIN(blk, (size_t)n - pos);
            if (all_zero(buf + pos, l))
                continue;
            const guint8 *p = buf + pos;
            off_t o = off + (off_t)pos;
            while (l > 0) {
                ssize_t w = pwrite(dst, p, l, o);
                if (w < 0 && errno == EINTR)
                    continue;
                if (w < 0)
                    return qubes_error_errno_code(
                        error, QUBES_ERROR_STORAGE_IO, errno,
                        "Cannot write the copy of %s", desc);
                p += w;
                o += w;
                l -= (size_t)w;
            }
        }
        off += n;
        len -= n;
    }
    return TRUE;
}

/* The sparse copy: only the data ranges (SEEK_DATA/SEEK_HOLE) are
 * copied, holes stay holes, and all-zero blocks within data become holes
 * too. */
static gboolean sparse_copy(int src, int dst, off_t size, const char *desc,
                            const QFileCopyOpts *opts, GError **error)
{
    /* First pass: the data ranges, for the progress total. */
    g_autoptr(GArray) ranges = g_array_new(FALSE, FALSE, sizeof(off_t) * 2);
    guint64 total = 0;
    off_t pos = 0;
    while (pos < size) {
        off_t data = lseek(src, pos, SEEK_DATA);
        if (data < 0 && errno == ENXIO)
            break;
        if (data < 0 && errno == EINVAL) { /* no SEEK_DATA: all data */
            off_t r[2] = {pos, size};
            g_array_append_val(ranges, r);
            total += (guint64)(size - pos);
            break;
        }
        if (data < 0)
            return qubes_error_errno_code(error, QUBES_ERROR_STORAGE_IO, errno,
                                          "Cannot map %s", desc);
        off_t hole = lseek(src, data, SEEK_HOLE);
        if (hole < 0)
            return qubes_error_errno_code(error, QUBES_ERROR_STORAGE_IO, errno,
                                          "Cannot map %s", desc);
        hole = MIN(hole, size);
        off_t r[2] = {data, hole};
        g_array_append_val(ranges, r);
        total += (guint64)(hole - data);
        pos = hole;
    }
    if (ftruncate(dst, size) < 0)
        return qubes_error_errno_code(error, QUBES_ERROR_STORAGE_IO, errno,
                                      "Cannot size the copy of %s", desc);
    guint64 done = 0;
    g_autofree guint8 *buf = g_malloc(COPY_CHUNK);
    if (opts->progress)
        opts->progress(0, total, opts->progress_data);
    for (guint i = 0; i < ranges->len; i++) {
        off_t *r = &g_array_index(ranges, off_t, i * 2);
        off_t off = r[0], end = r[1];
        while (off < end) {
            off_t len = MIN((off_t)COPY_CHUNK, end - off);
            if (!copy_range_rw(src, dst, off, len, desc, buf, error))
                return FALSE;
            off += len;
            done += (guint64)len;
            if (opts->progress)
                opts->progress(done, total, opts->progress_data);
        }
    }
    return TRUE;
}

static gboolean is_no_reflink_errno(int errsv)
{
    return errsv == EBADF || errsv == EINVAL || errsv == EOPNOTSUPP ||
           errsv == EXDEV || errsv == ENOTTY;
}

gboolean qfile_copy_fd(int src_fd, const char *src_desc, QDir *dst_dir,
                       const char *dst, const QFileCopyOpts *opts,
                       gboolean *reflinked, GError **error)
{
    static const QFileCopyOpts defaults = QFILE_COPY_OPTS_INIT;
    if (!opts)
        opts = &defaults;
    struct stat st;
    if (fstat(src_fd, &st) < 0)
        return qubes_error_errno_code(error, QUBES_ERROR_STORAGE_IO, errno,
                                      "Cannot stat %s", src_desc);
    if (!S_ISREG(st.st_mode)) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_STORAGE_POOL,
                    "Cannot copy %s: not a regular file", src_desc);
        return FALSE;
    }
    g_autofree char *path = NULL;
    TmpFile t;
    if (!tmp_open(dst_dir, dst, &t, error))
        return FALSE;
    gboolean cloned = FALSE;
    if (opts->size != 0 && st.st_size > 0) {
        if (!step(dst_dir->ctx, "reflink", t.path, error))
            goto fail;
        if (!opts->no_reflink && ioctl(t.fd, FICLONE, src_fd) == 0) {
            cloned = TRUE;
        } else if (!opts->no_reflink && !is_no_reflink_errno(errno)) {
            qubes_error_errno_code(error, QUBES_ERROR_STORAGE_IO, errno,
                                   "Cannot reflink %s to %s", src_desc, t.path);
            goto fail;
        } else {
            if (!step(dst_dir->ctx, "copy", t.path, error))
                goto fail;
            off_t len = st.st_size;
            if (opts->size >= 0)
                len = MIN(len, (off_t)opts->size);
            if (!sparse_copy(src_fd, t.fd, len, src_desc, opts, error))
                goto fail;
        }
    }
    if (opts->size >= 0 && opts->size != st.st_size &&
        ftruncate(t.fd, (off_t)opts->size) < 0) {
        qubes_error_errno_code(error, QUBES_ERROR_STORAGE_IO, errno,
                               "Cannot set the size of %s", t.path);
        goto fail;
    }
    if (opts->keep_mtime) {
        struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, st.st_mtim};
        if (futimens(t.fd, ts) < 0) {
            qubes_error_errno_code(error, QUBES_ERROR_STORAGE_IO, errno,
                                   "Cannot set the time of %s", t.path);
            goto fail;
        }
    }
    /* Rule 1: data we copied must be durable before it is named. A reflink
     * or an empty file is metadata only (rule 2). */
    if (!cloned && !opts->discardable && opts->size != 0 && st.st_size > 0 &&
        !counted_fsync(dst_dir->ctx, t.fd, t.path, error))
        goto fail;
    path = g_strdup(t.path);
    if (!tmp_commit(&t, dst, opts->replace, error))
        return FALSE;
    g_info("%s file: %s -> %s", cloned ? "Reflinked" : "Copied (sparse)",
           src_desc, path);
    if (reflinked)
        *reflinked = cloned;
    return TRUE;
fail:
    tmp_abort(&t);
    return FALSE;
}

gboolean qfile_copy(QDir *src_dir, const char *src, QDir *dst_dir,
                    const char *dst, const QFileCopyOpts *opts,
                    gboolean *reflinked, GError **error)
{
    int fd = qfile_open_read(src_dir, src, error);
    if (fd < 0)
        return FALSE;
    g_autofree char *desc = qdir_child_path(src_dir, src);
    gboolean ok = qfile_copy_fd(fd, desc, dst_dir, dst, opts, reflinked, error);
    close(fd);
    return ok;
}

gboolean qfile_extent_usage(int fd, const char *desc, guint64 *shared,
                            guint64 *exclusive, GError **error)
{
    enum { N = 256 };
    g_autofree struct fiemap *fm =
        g_malloc0(sizeof *fm + N * sizeof(struct fiemap_extent));
    guint64 start = 0;
    *shared = *exclusive = 0;
    for (;;) {
        memset(fm, 0, sizeof *fm);
        fm->fm_start = start;
        fm->fm_length = FIEMAP_MAX_OFFSET - start;
        fm->fm_extent_count = N;
        if (ioctl(fd, FS_IOC_FIEMAP, fm) < 0)
            return qubes_error_errno_code(error, QUBES_ERROR_STORAGE_IO, errno,
                                          "Cannot map extents of %s", desc);
        if (fm->fm_mapped_extents == 0)
            return TRUE;
        gboolean last = FALSE;
        for (guint i = 0; i < fm->fm_mapped_extents; i++) {
            struct fiemap_extent *e = &fm->fm_extents[i];
            if (e->fe_flags & FIEMAP_EXTENT_SHARED)
                *shared += e->fe_length;
            else
                *exclusive += e->fe_length;
            start = e->fe_logical + e->fe_length;
            if (e->fe_flags & FIEMAP_EXTENT_LAST)
                last = TRUE;
        }
        if (last)
            return TRUE;
    }
}

gboolean qfile_reflink_supported(QDir *dir, GError **error)
{
    int a = openat(dir->fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    int b =
        a < 0 ? -1 : openat(dir->fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    gboolean supported = FALSE;
    if (b < 0) {
        qubes_error_errno_code(error, QUBES_ERROR_STORAGE_IO, errno,
                               "Cannot create a test file in %s", dir->path);
    } else if (pwrite(a, "foo", 3, 0) != 3) {
        /* An empty file could be "cloned" by a clever filesystem. */
        qubes_error_errno_code(error, QUBES_ERROR_STORAGE_IO, errno,
                               "Cannot write a test file in %s", dir->path);
    } else if (ioctl(b, FICLONE, a) == 0) {
        supported = TRUE;
    } else if (!is_no_reflink_errno(errno)) {
        qubes_error_errno_code(error, QUBES_ERROR_STORAGE_IO, errno,
                               "Cannot test reflinks in %s", dir->path);
    }
    if (a >= 0)
        close(a);
    if (b >= 0)
        close(b);
    return supported;
}

int qfile_update_loop_devices(int fd, const char *desc, GError **error)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        qubes_error_errno_code(error, QUBES_ERROR_STORAGE_IO, errno,
                               "Cannot stat %s", desc);
        return -1;
    }
    g_autoptr(GDir) sys = g_dir_open("/sys/block", 0, NULL);
    if (!sys)
        return 0;
    int updated = 0;
    const char *dev;
    while ((dev = g_dir_read_name(sys)) != NULL) {
        if (!g_str_has_prefix(dev, "loop"))
            continue;
        g_autofree char *backing =
            g_strdup_printf("/sys/block/%s/loop/backing_file", dev);
        if (!g_file_test(backing, G_FILE_TEST_EXISTS))
            continue; /* not bound */
        g_autofree char *node = g_strdup_printf("/dev/%s", dev);
        int lfd = open(node, O_RDONLY | O_CLOEXEC);
        if (lfd < 0)
            continue;
        struct loop_info64 info;
        if (ioctl(lfd, LOOP_GET_STATUS64, &info) == 0 &&
            info.lo_device == (guint64)st.st_dev &&
            info.lo_inode == (guint64)st.st_ino) {
            if (ioctl(lfd, LOOP_SET_CAPACITY, 0) < 0) {
                qubes_error_errno_code(
                    error, QUBES_ERROR_STORAGE_IO, errno,
                    "Cannot update the size of %s (backed by "
                    "%s)",
                    node, desc);
                close(lfd);
                return -1;
            }
            g_info("Updated loop device size: %s (backed by %s)", node, desc);
            updated++;
        }
        close(lfd);
    }
    return updated;
}

/* Opens (creating) @name below @parent as a folder only root can enter. */
static int open_private_dir(int parent, const char *path, const char *name,
                            GError **error)
{
    if (mkdirat(parent, name, 0700) < 0 && errno != EEXIST) {
        qubes_error_errno_code(error, QUBES_ERROR_STORAGE_IO, errno,
                               "Cannot create %s/%s", path, name);
        return -1;
    }
    int fd =
        openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        qubes_error_errno_code(error, QUBES_ERROR_STORAGE_IO, errno,
                               "Cannot open %s/%s", path, name);
    return fd;
}

static int lock_dir(QFileCtx *ctx, GError **error)
{
    g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&ctx->lock);
    if (ctx->lock_fd >= 0)
        return ctx->lock_fd;
    if (ctx->root_fd < 0) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_STORAGE_POOL,
                    "Pool folder %s is not open", ctx->root_path);
        return -1;
    }
    struct stat st;
    if (fstat(ctx->root_fd, &st) < 0) {
        qubes_error_errno_code(error, QUBES_ERROR_STORAGE_IO, errno,
                               "Cannot stat %s", ctx->root_path);
        return -1;
    }
    const char *base = g_getenv("QUBES_LOCK_DIR");
    g_autofree char *top = g_strdup(base ? base : "/run/qubes");
    if (g_mkdir_with_parents(top, 0755) < 0) {
        qubes_error_errno_code(error, QUBES_ERROR_STORAGE_IO, errno,
                               "Cannot create %s", top);
        return -1;
    }
    int top_fd = open(top, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (top_fd < 0) {
        qubes_error_errno_code(error, QUBES_ERROR_STORAGE_IO, errno,
                               "Cannot open %s", top);
        return -1;
    }
    int fd =
        base ? top_fd : open_private_dir(top_fd, top, "storage-locks", error);
    if (!base)
        close(top_fd);
    if (fd < 0)
        return -1;
    g_autofree char *name =
        g_strdup_printf("%ju-%ju", (uintmax_t)st.st_dev, (uintmax_t)st.st_ino);
    ctx->lock_fd = open_private_dir(fd, top, name, error);
    close(fd);
    return ctx->lock_fd;
}

int qfile_lock(QFileCtx *ctx, const char *name, GError **error)
{
    int dir = lock_dir(ctx, error);
    if (dir < 0)
        return -1;
    int fd = openat(dir, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        qubes_error_errno_code(error, QUBES_ERROR_STORAGE_IO, errno,
                               "Cannot open lock file %s", name);
        return -1;
    }
    while (flock(fd, LOCK_EX) < 0) {
        if (errno != EINTR) {
            qubes_error_errno_code(error, QUBES_ERROR_STORAGE_IO, errno,
                                   "Cannot lock %s", name);
            close(fd);
            return -1;
        }
    }
    return fd;
}

void qfile_unlock(int fd)
{
    close(fd); /* releases the flock */
}
