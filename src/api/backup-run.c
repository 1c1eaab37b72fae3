/* backup-run.c: one backup written (see backup-run.h).
 *
 * Durability: the data goes to a new file of the file layer (qfile.h's
 * QFileNew: an unnamed O_TMPFILE inode in the destination folder, or a
 * "NAME~XXXXXX" where the filesystem has none); only once the writer
 * finished is it synced, linked under a temporary name and renamed over
 * the final name, and the folder synced. So the final name either does
 * not exist (or holds what it held before) or holds a whole, synced
 * backup.
 */
#include "backup-run.h"

#include "backup-write.h"
#include "qfile.h"
#include "qubes-error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

QubesBackupRun *qubes_backup_run_new(void)
{
    QubesBackupRun *run = g_new0(QubesBackupRun, 1);
    run->params = (QubesScryptParams)QUBES_SCRYPT_PARAMS_DEFAULT;
    return run;
}

void qubes_backup_run_free(QubesBackupRun *run)
{
    if (!run)
        return;
    qubes_backup_plan_free(run->plan);
    g_free(run->qubes_xml);
    g_free(run->destination);
    if (run->passphrase) {
        memset(run->passphrase, 0, strlen(run->passphrase));
        g_free(run->passphrase);
    }
    g_free(run->compression_filter);
    g_free(run->backup_id);
    g_free(run->written);
    g_free(run);
}

double qubes_backup_run_progress(QubesBackupRun *run)
{
    guint64 total = run->plan ? run->plan->total : 0;
    guint64 done = __atomic_load_n(&run->done, __ATOMIC_RELAXED);
    if (!total)
        return 0;
    return MIN(100.0, 100.0 * (double)done / (double)total);
}

/* ---- the output file ---- */

typedef struct {
    QFileCtx *ctx; /* the destination folder */
    QDir *dir;
    char *name; /* the final name */
    QFileNew *file;
    guint64 unsynced; /* written since writeback was last started */
} Output;

static gboolean out_write(const guint8 *buf, gsize len, gpointer data,
                          GError **error)
{
    Output *o = data;
    int fd = qfile_new_fd(o->file);
    while (len) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return qubes_error_errno_code(error, QUBES_ERROR_EXCEPTION, errno,
                                          "Failed to write the backup to %s/%s",
                                          qdir_path(o->dir), o->name);
        buf += n;
        len -= (gsize)n;
        qfile_writeback_step(fd, &o->unsynced, (gsize)n);
    }
    return TRUE;
}

static gboolean out_open(Output *o, const char *destination, GError **error)
{
    struct stat st;
    g_autofree char *folder = NULL;
    if (stat(destination, &st) == 0 && S_ISDIR(st.st_mode)) {
        g_autoptr(GDateTime) now = g_date_time_new_now_local();
        folder = g_strdup(destination);
        o->name = g_date_time_format(now, "qubes-%Y-%m-%dT%H%M%S");
    } else {
        folder = g_path_get_dirname(destination);
        o->name = g_path_get_basename(destination);
        if (stat(folder, &st) != 0 || !S_ISDIR(st.st_mode) ||
            !qfile_name_is_safe(o->name)) {
            g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                        "ERROR: the backup directory for %s does not exists",
                        destination);
            return FALSE;
        }
    }
    o->ctx = qfile_ctx_new(folder);
    if (!(o->dir = qdir_open(o->ctx, "", FALSE, error)) ||
        !(o->file = qfile_new_begin(o->dir, o->name, error)))
        return FALSE;
    /* readable by dom0's user, as the reference's file is */
    fchmod(qfile_new_fd(o->file), 0644);
    return TRUE;
}

/* Syncs the file, gives it its name (over an older one, as the
 * reference's open() does), syncs the folder. */
static gboolean out_commit(Output *o, GError **error)
{
    QFileNew *f = g_steal_pointer(&o->file);
    return qfile_new_commit(f, o->name, TRUE, error) &&
           qfile_fsync_dir(o->dir, error);
}

static void out_close(Output *o)
{
    qfile_new_abort(o->file); /* a failure: the temporary goes */
    if (o->dir)
        qdir_close(o->dir);
    if (o->ctx)
        qfile_ctx_free(o->ctx);
    g_free(o->name);
}

/* ---- the inner streams ---- */

typedef struct {
    QubesBackupRun *run;
    QubesBackupWriter *w;
} Inner;

/* Each file's tar stream, counted for the progress. */
static gboolean inner_sink(const guint8 *buf, gsize len, gpointer data,
                           GError **error)
{
    Inner *in = data;
    __atomic_fetch_add(&in->run->done, (guint64)len, __ATOMIC_RELAXED);
    return qubes_backup_write_sink(buf, len, in->w, error);
}

static gboolean put_bytes(Inner *in, const char *name, const char *bytes,
                          gsize len, GError **error)
{
    QubesTarFile f = {.name = name,
                      .mode = 0644,
                      .mtime = g_get_real_time() / G_USEC_PER_SEC,
                      .size = len};
    return qubes_tar_write_begin(inner_sink, in, &f, error) &&
           (!len || inner_sink((const guint8 *)bytes, len, in, error)) &&
           qubes_tar_write_end(inner_sink, in, len, error);
}

/* A folder whole (dom0's home): @dirfd is @name's. */
static gboolean put_tree(Inner *in, int dirfd, const char *name,
                         const struct stat *st, guint depth, GError **error)
{
    g_autofree char *dname = g_strconcat(name, "/", NULL);
    QubesTarFile f = {
        .name = dname, .mode = st->st_mode, .mtime = st->st_mtime, .type = '5'};
    if (!qubes_tar_write_begin(inner_sink, in, &f, error))
        return FALSE;
    if (depth > 64) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                    "%s: folders nested too deep", name);
        return FALSE;
    }
    int dup_fd = dup(dirfd);
    DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
    if (!d) {
        if (dup_fd >= 0)
            close(dup_fd);
        return qubes_error_errno_code(error, QUBES_ERROR_EXCEPTION, errno,
                                      "Cannot read %s", name);
    }
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            g_ptr_array_add(names, g_strdup(e->d_name));
    closedir(d);
    g_ptr_array_sort(names, (GCompareFunc)g_strcmp0);
    gboolean ok = TRUE;
    for (guint i = 0; ok && i < names->len; i++) {
        const char *child = names->pdata[i];
        g_autofree char *cname = g_strconcat(name, "/", child, NULL);
        struct stat cst;
        if (fstatat(dirfd, child, &cst, AT_SYMLINK_NOFOLLOW) != 0)
            continue; /* gone meanwhile */
        if (S_ISDIR(cst.st_mode)) {
            int fd = openat(dirfd, child,
                            O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (fd < 0)
                continue;
            ok = put_tree(in, fd, cname, &cst, depth + 1, error);
            close(fd);
        } else if (S_ISLNK(cst.st_mode)) {
            char target[4096];
            ssize_t n = readlinkat(dirfd, child, target, sizeof target - 1);
            if (n < 0)
                continue;
            target[n] = '\0';
            QubesTarFile l = {.name = cname,
                              .mode = 0777,
                              .mtime = cst.st_mtime,
                              .type = '2',
                              .linkname = target};
            ok = qubes_tar_write_begin(inner_sink, in, &l, error);
        } else if (S_ISREG(cst.st_mode)) {
            int fd = qfile_openat_file(dirfd, name, child, O_RDONLY, NULL);
            if (fd < 0)
                continue;
            ok = qubes_tar_write_fd(inner_sink, in, fd, cname, error);
            close(fd);
        }
        /* sockets, pipes and devices: not backed up */
    }
    return ok;
}

static gboolean put_file(Inner *in, const QubesBackupFile *f, GError **error)
{
    if (f->vol) {
        int fd = qubes_volume_export_snapshot(f->vol, error);
        if (fd < 0)
            return FALSE;
        gboolean ok = qubes_tar_write_fd(inner_sink, in, fd, f->archive, error);
        close(fd);
        return ok;
    }
    if (!f->dir) /* the reference's empty file */
        return put_bytes(in, f->archive, "", 0, error);
    int dirfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dirfd < 0)
        return qubes_error_errno_code(error, QUBES_ERROR_EXCEPTION, errno,
                                      "Cannot open %s", f->dir);
    gboolean ok;
    if (f->tree) {
        struct stat st;
        int fd = openat(dirfd, f->file,
                        O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        ok = fd >= 0 && fstat(fd, &st) == 0;
        if (!ok)
            qubes_error_errno_code(error, QUBES_ERROR_EXCEPTION, errno,
                                   "Cannot open %s/%s", f->dir, f->file);
        else
            ok = put_tree(in, fd, f->archive, &st, 0, error);
        if (fd >= 0)
            close(fd);
    } else {
        int fd = qfile_openat_file(dirfd, f->dir, f->file, O_RDONLY, error);
        ok = fd >= 0 &&
             qubes_tar_write_fd(inner_sink, in, fd, f->archive, error);
        if (fd >= 0)
            close(fd);
    }
    close(dirfd);
    return ok;
}

static gboolean put_stream(Inner *in, const char *file,
                           const QubesBackupFile *f, GError **error)
{
    guint64 expected = f ? f->size : in->run->qubes_xml_len;
    if (!qubes_backup_writer_file_begin(in->w, file, expected, error))
        return FALSE;
    gboolean ok = f ? put_file(in, f, error)
                    : put_bytes(in, "qubes.xml", in->run->qubes_xml,
                                in->run->qubes_xml_len, error);
    return ok && qubes_tar_write_finish(inner_sink, in, error) &&
           qubes_backup_writer_file_end(in->w, error);
}

gboolean qubes_backup_run(QubesBackupRun *run, GError **error)
{
    Output o = {0};
    QubesBackupHeader h = {.version = 4,
                           .encrypted = TRUE,
                           .compressed = run->compressed,
                           .compression_filter = run->compression_filter,
                           .hmac_algorithm = (char *)"scrypt",
                           .backup_id = run->backup_id};
    /* the files in order, for the keys derived ahead */
    g_autoptr(GStrvBuilder) b = g_strv_builder_new();
    g_strv_builder_add(b, "qubes.xml");
    for (guint i = 0; i < run->plan->qubes->len; i++) {
        QubesBackupQube *q = run->plan->qubes->pdata[i];
        for (guint j = 0; j < q->files->len; j++) {
            QubesBackupFile *f = q->files->pdata[j];
            if (f->present)
                g_strv_builder_add(b, f->archive);
        }
    }
    g_auto(GStrv) files = g_strv_builder_end(b);
    QubesBackupWriteOptions opts = {.params = &run->params,
                                    .files = (const char *const *)files,
                                    .cancel = &run->cancel};
    Inner in = {.run = run};
    gboolean ok =
        out_open(&o, run->destination, error) &&
        (in.w = qubes_backup_writer_new(out_write, &o, &h, run->passphrase,
                                        &opts, error)) != NULL &&
        put_stream(&in, "qubes.xml", NULL, error);
    for (guint i = 0; ok && i < run->plan->qubes->len; i++) {
        QubesBackupQube *q = run->plan->qubes->pdata[i];
        for (guint j = 0; ok && j < q->files->len; j++) {
            QubesBackupFile *f = q->files->pdata[j];
            if (f->present)
                ok = put_stream(&in, f->archive, f, error);
        }
    }
    if (ok) {
        ok = qubes_backup_writer_finish(in.w, error);
        in.w = NULL;
    }
    qubes_backup_writer_free(in.w);
    if (ok && g_atomic_int_get(&run->cancel)) {
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_BACKUP_CANCELLED,
                            "Backup cancelled");
        ok = FALSE;
    }
    if (ok && (ok = out_commit(&o, error)))
        run->written = qdir_child_path(o.dir, o.name);
    out_close(&o);
    /* the file layer's I/O errors answer as the reference's backup
     * errors do: QubesException (not a pool's StoragePoolException) */
    if (!ok && error && *error && (*error)->domain == QUBES_ERROR &&
        ((*error)->code == QUBES_ERROR_STORAGE_IO ||
         (*error)->code == QUBES_ERROR_STORAGE_POOL))
        (*error)->code = QUBES_ERROR_EXCEPTION;
    return ok;
}
