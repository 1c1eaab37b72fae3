/* backup-write.c: a Qubes backup file written in one pass (see
 * backup-write.h). */
#include "backup-write.h"

#include "gzip-write.h"
#include "key-ahead.h"
#include "qubes-error.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* A filter program compressing the current file: its stdin and stdout,
 * both non-blocking. */
typedef struct {
    GPid pid;
    int in;
    int out;
} Filter;

struct _QubesBackupWriter {
    QubesTarSink out;
    gpointer data;
    QubesBackupHeader h;
    char *passphrase;
    QubesScryptParams params;
    gsize chunk_size;
    const gint *cancel;
    char *file;            /* the current file, or NULL */
    guint index;           /* its next chunk's number */
    guint64 expected;      /* its input's size as measured, or 0 */
    guint64 taken;         /* its input so far */
    guint64 made;          /* its output so far (compressed) */
    guint64 topped;        /* its input when keys were last looked ahead */
    GByteArray *chunk;     /* the current chunk's (compressed) data */
    QubesGzipWriter *gzip; /* compressed with gzip */
    Filter filter;         /* compressed by another program (pid 0: none) */
    gint64 mtime;
    /* keys derived ahead: "FILE.NNN" (or "backup-header") -> job */
    QubesKeyAhead *ka;
    GHashTable *jobs;
    guint depth;     /* keys to keep coming (qubes_key_ahead_depth) */
    GStrv files;     /* the files to come, or NULL */
    guint next_file; /* the first of them not begun */
};

static char *chunk_name(const char *file, guint index)
{
    return g_strdup_printf("%s.%03u", file, index);
}

static gboolean start_key(QubesBackupWriter *w, const char *name,
                          GError **error)
{
    g_autofree char *pass =
        strcmp(name, "backup-header") == 0
            ? g_strdup_printf("backup-header!%s", w->passphrase)
            : g_strdup_printf("%s!%s!%s", w->h.backup_id, name, w->passphrase);
    QubesKeyJob *j = qubes_key_ahead_start(w->ka, pass, error);
    memset(pass, 0, strlen(pass));
    if (!j)
        return FALSE;
    g_hash_table_insert(w->jobs, g_strdup(name), j);
    return TRUE;
}

/* Input taken before the output's size is foreseen from its ratio. */
#define FORESEE_AFTER ((guint64)4 << 20)

/* How many chunks the current file will have, as foreseen now: its output
 * so far and the rest of its input at the ratio so far (stored data: a
 * little more than 1). */
static guint64 chunks_foreseen(const QubesBackupWriter *w)
{
    if (!w->expected || w->taken < FORESEE_AFTER)
        return w->index + 1;
    guint64 rest = w->expected > w->taken ? w->expected - w->taken : 0;
    double ratio = MIN((double)w->made / (double)w->taken, 1.01);
    double out = (double)w->made + (double)rest * ratio;
    return MAX((guint64)(out / (double)w->chunk_size) + 1, w->index + 1);
}

/* Keeps the pool's depth of derivations queued or going: the chunk being
 * filled, the current file's next chunks as far as its output is
 * foreseen to go, then the first chunk of each file to come (every file
 * has one, so none of these is wasted). */
static void top_up(QubesBackupWriter *w)
{
    g_autoptr(GPtrArray) want = g_ptr_array_new_with_free_func(g_free);
    if (w->file) {
        guint64 last = chunks_foreseen(w);
        for (guint64 k = w->index; k < MIN(last, 1000) && want->len < w->depth;
             k++)
            g_ptr_array_add(want, chunk_name(w->file, (guint)k));
        w->topped = w->taken;
    }
    for (guint k = w->next_file;
         w->files && w->files[k] && want->len < w->depth; k++)
        g_ptr_array_add(want, chunk_name(w->files[k], 0));
    for (guint i = 0; i < want->len; i++) {
        if (g_hash_table_size(w->jobs) >= w->depth)
            break;
        if (!g_hash_table_contains(w->jobs, want->pdata[i]) &&
            !start_key(w, want->pdata[i], NULL))
            break; /* no salt now: derived when needed, with the error */
    }
}

/* The salt and key of @name: derived ahead, or now. */
static gboolean take_key(QubesBackupWriter *w, const char *name,
                         guint8 salt[QUBES_SCRYPT_SALT],
                         guint8 key[QUBES_SCRYPT_KEY], GError **error)
{
    if (!g_hash_table_contains(w->jobs, name) && !start_key(w, name, error))
        return FALSE;
    gpointer k, j;
    g_hash_table_steal_extended(w->jobs, name, &k, &j);
    g_free(k);
    return qubes_key_job_take(j, salt, key, w->cancel, error);
}

/* Encrypts @data (in place) as the scrypt file of @name (the key's name:
 * "FILE.NNN", "backup-header"; the member is @name.enc or .hmac) and
 * writes it as one outer member. */
static gboolean emit_member(QubesBackupWriter *w, const char *name,
                            const char *member, guint8 *data, gsize len,
                            GError **error)
{
    guint8 salt[QUBES_SCRYPT_SALT], key[QUBES_SCRYPT_KEY];
    if (!take_key(w, name, salt, key, error))
        return FALSE;
    guint8 header[QUBES_SCRYPT_HEADER], mac[QUBES_SCRYPT_MAC];
    QubesScryptEnc *enc = qubes_scrypt_enc_new(key, salt, &w->params, header);
    memset(key, 0, sizeof key);
    gsize total = QUBES_SCRYPT_HEADER + len + QUBES_SCRYPT_MAC;
    QubesTarFile f = {
        .name = member, .mode = 0644, .mtime = w->mtime, .size = total};
    gboolean ok = qubes_tar_write_begin(w->out, w->data, &f, error) &&
                  w->out(header, sizeof header, w->data, error);
    /* a piece at a time, each written out while it is still in the
     * cache: AES, MAC and copy read it once from memory, not three times */
    for (gsize off = 0; ok && off < len; off += QUBES_SCRYPT_PIECE) {
        gsize n = MIN(QUBES_SCRYPT_PIECE, len - off);
        qubes_scrypt_enc_update(enc, data + off, data + off, n);
        ok = w->out(data + off, n, w->data, error);
    }
    qubes_scrypt_enc_finish(enc, mac);
    return ok && w->out(mac, sizeof mac, w->data, error) &&
           qubes_tar_write_end(w->out, w->data, total, error);
}

/* The current chunk, whole: out as FILE.NNN.enc. */
static gboolean flush_chunk(QubesBackupWriter *w, GError **error)
{
    g_autofree char *name = chunk_name(w->file, w->index);
    g_autofree char *member = g_strconcat(name, ".enc", NULL);
    if (w->index > 999) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                    "%s: more than 1000 chunks", w->file);
        return FALSE;
    }
    gboolean ok =
        emit_member(w, name, member, w->chunk->data, w->chunk->len, error);
    w->index++;
    g_byte_array_set_size(w->chunk, 0);
    return ok;
}

/* Adds @len bytes of the file's (compressed) stream to its chunks. */
static gboolean chunk_add(QubesBackupWriter *w, const guint8 *buf, gsize len,
                          GError **error)
{
    while (len) {
        gsize k = MIN(len, w->chunk_size - w->chunk->len);
        g_byte_array_append(w->chunk, buf, (guint)k);
        w->made += k;
        buf += k;
        len -= k;
        if (w->chunk->len == w->chunk_size) {
            if (!flush_chunk(w, error))
                return FALSE;
            top_up(w);
        }
    }
    return TRUE;
}

static gboolean gzip_out(const guint8 *buf, gsize len, gpointer data,
                         GError **error)
{
    return chunk_add(data, buf, len, error);
}

/* ---- a filter program ---- */

gboolean qubes_backup_filter_check(const char *filter, GError **error)
{
    gboolean ok = *filter && *filter != '-' && strlen(filter) < 64;
    for (const char *c = filter; ok && *c; c++)
        ok = g_ascii_isalnum(*c) || strchr("._+-", *c);
    g_autofree char *path = ok ? g_find_program_in_path(filter) : NULL;
    if (!path) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                    ok ? "Compression filter '%s' not found"
                       : "Invalid compression filter '%s': a program's name "
                         "is expected",
                    filter);
        return FALSE;
    }
    return TRUE;
}

static gboolean filter_start(QubesBackupWriter *w, GError **error)
{
    char *argv[] = {w->h.compression_filter, NULL};
    GError *err = NULL;
    if (!g_spawn_async_with_pipes(NULL, argv, NULL,
                                  G_SPAWN_SEARCH_PATH |
                                      G_SPAWN_DO_NOT_REAP_CHILD |
                                      G_SPAWN_CLOEXEC_PIPES,
                                  NULL, NULL, &w->filter.pid, &w->filter.in,
                                  &w->filter.out, NULL, &err)) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                    "%s: cannot run %s: %s", w->file, w->h.compression_filter,
                    err->message);
        g_error_free(err);
        w->filter.pid = 0;
        return FALSE;
    }
    fcntl(w->filter.in, F_SETFL, O_NONBLOCK);
    fcntl(w->filter.out, F_SETFL, O_NONBLOCK);
    return TRUE;
}

/* Ends the filter: kills it unless it exited; the exit status. */
static int filter_reap(QubesBackupWriter *w, gboolean kill_it)
{
    if (!w->filter.pid)
        return 0;
    if (w->filter.in >= 0)
        close(w->filter.in);
    if (w->filter.out >= 0)
        close(w->filter.out);
    if (kill_it)
        kill(w->filter.pid, SIGKILL);
    int status = 0;
    while (waitpid(w->filter.pid, &status, 0) < 0 && errno == EINTR)
        ;
    g_spawn_close_pid(w->filter.pid);
    w->filter = (Filter){0, -1, -1};
    return status;
}

/* Feeds @len bytes to the filter (all of them; @len 0 with @at_end: its
 * end) while taking what it gives into the chunks. */
static gboolean filter_feed(QubesBackupWriter *w, const guint8 *in, gsize len,
                            gboolean at_end, GError **error)
{
    guint8 buf[1 << 16];
    for (;;) {
        if (!len && at_end && w->filter.in >= 0) {
            close(w->filter.in);
            w->filter.in = -1;
        }
        if (!len && !at_end)
            return TRUE;
        struct pollfd p[2] = {
            {.fd = w->filter.out, .events = POLLIN},
            {.fd = len ? w->filter.in : -1, .events = POLLOUT}};
        if (poll(p, 2, 100) < 0 && errno != EINTR)
            return qubes_error_errno_code(error, QUBES_ERROR_EXCEPTION, errno,
                                          "%s: %s", w->file,
                                          w->h.compression_filter);
        if (w->cancel && g_atomic_int_get(w->cancel)) {
            g_set_error_literal(error, QUBES_ERROR,
                                QUBES_ERROR_BACKUP_CANCELLED,
                                "Backup cancelled");
            return FALSE;
        }
        if (p[0].revents) {
            ssize_t n = read(w->filter.out, buf, sizeof buf);
            if (n < 0 && errno != EAGAIN && errno != EINTR)
                return qubes_error_errno_code(error, QUBES_ERROR_EXCEPTION,
                                              errno, "%s: reading from %s",
                                              w->file, w->h.compression_filter);
            if (n == 0) /* its end: only after its input's */
                return at_end && !len
                           ? TRUE
                           : (g_set_error(error, QUBES_ERROR,
                                          QUBES_ERROR_EXCEPTION,
                                          "%s: %s ended early", w->file,
                                          w->h.compression_filter),
                              FALSE);
            if (n > 0 && !chunk_add(w, buf, (gsize)n, error))
                return FALSE;
        }
        if (len && p[1].revents) {
            ssize_t n = write(w->filter.in, in, len);
            if (n < 0 && errno != EAGAIN && errno != EINTR)
                return qubes_error_errno_code(error, QUBES_ERROR_EXCEPTION,
                                              errno, "%s: writing to %s",
                                              w->file, w->h.compression_filter);
            if (n > 0)
                in += n, len -= (gsize)n;
        }
    }
}

gboolean qubes_backup_write_sink(const guint8 *buf, gsize len, gpointer data,
                                 GError **error)
{
    QubesBackupWriter *w = data;
    if (!w->file) {
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                            "backup: data outside a file");
        return FALSE;
    }
    if (w->cancel && g_atomic_int_get(w->cancel)) {
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_BACKUP_CANCELLED,
                            "Backup cancelled");
        return FALSE;
    }
    w->taken += len;
    if (w->taken - w->topped >= FORESEE_AFTER)
        top_up(w); /* the foreseen output changed */
    return w->gzip ? qubes_gzip_writer_write(w->gzip, buf, len, FALSE, error)
           : w->filter.pid ? filter_feed(w, buf, len, FALSE, error)
                           : chunk_add(w, buf, len, error);
}

QubesBackupWriter *qubes_backup_writer_new(QubesTarSink out, gpointer data,
                                           const QubesBackupHeader *h,
                                           const char *passphrase,
                                           const QubesBackupWriteOptions *opts,
                                           GError **error)
{
    if (h->version != 4 || !h->encrypted || !h->backup_id ||
        g_strcmp0(h->hmac_algorithm, "scrypt") != 0 ||
        (h->compressed && !h->compression_filter)) {
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                            "backup: only encrypted format 4 backups are "
                            "written here");
        return NULL;
    }
    if (!qubes_scrypt_params_check(opts->params, error))
        return NULL;
    if (h->compressed && strcmp(h->compression_filter, "gzip") != 0 &&
        !qubes_backup_filter_check(h->compression_filter, error))
        return NULL;
    QubesBackupWriter *w = g_new0(QubesBackupWriter, 1);
    w->out = out;
    w->data = data;
    w->h.version = h->version;
    w->h.encrypted = h->encrypted;
    w->h.compressed = h->compressed;
    w->h.compression_filter = g_strdup(h->compression_filter);
    w->h.hmac_algorithm = g_strdup(h->hmac_algorithm);
    w->h.backup_id = g_strdup(h->backup_id);
    w->passphrase = g_strdup(passphrase);
    w->params = *opts->params;
    w->chunk_size = opts->chunk ? opts->chunk : QUBES_BACKUP_CHUNK;
    w->cancel = opts->cancel;
    w->chunk = g_byte_array_new();
    w->filter = (Filter){0, -1, -1};
    w->mtime = g_get_real_time() / G_USEC_PER_SEC;
    w->ka = qubes_key_ahead_new(&w->params, QUBES_KEY_AHEAD_BESIDE);
    w->depth = qubes_key_ahead_depth(w->ka);
    w->jobs = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                    (GDestroyNotify)qubes_key_job_drop);
    w->files = g_strdupv((char **)opts->files);
    g_autofree char *text = qubes_backup_header_format(&w->h);
    gsize tlen = strlen(text);
    QubesTarFile f = {
        .name = "backup-header", .mode = 0644, .mtime = w->mtime, .size = tlen};
    gboolean ok = start_key(w, "backup-header", error);
    if (ok)
        top_up(w);
    if (!ok || !qubes_tar_write_begin(out, data, &f, error) ||
        !out((const guint8 *)text, tlen, data, error) ||
        !qubes_tar_write_end(out, data, tlen, error) ||
        /* the plain text is out: encrypted in place for its .hmac */
        !emit_member(w, "backup-header", "backup-header.hmac", (guint8 *)text,
                     tlen, error)) {
        qubes_backup_writer_free(w);
        return NULL;
    }
    return w;
}

gboolean qubes_backup_writer_file_begin(QubesBackupWriter *w, const char *file,
                                        guint64 expected, GError **error)
{
    g_assert(!w->file);
    w->file = g_strdup(file);
    w->index = 0;
    w->expected = expected;
    w->taken = w->made = w->topped = 0;
    if (w->files && w->files[w->next_file] &&
        strcmp(w->files[w->next_file], file) == 0)
        w->next_file++;
    g_byte_array_set_size(w->chunk, 0);
    top_up(w);
    if (!w->h.compressed)
        return TRUE;
    if (strcmp(w->h.compression_filter, "gzip") == 0) {
        w->gzip = qubes_gzip_writer_new(gzip_out, w);
        return TRUE;
    }
    return filter_start(w, error);
}

/* Drops the keys derived ahead for the current file's chunks (its
 * stream ended on a chunk's edge). */
static gboolean is_own_chunk(gpointer key, gpointer value, gpointer file)
{
    gsize n = strlen(file);
    const char *k = key;
    return strncmp(k, file, n) == 0 && k[n] == '.' && strlen(k + n) == 4;
}

gboolean qubes_backup_writer_file_end(QubesBackupWriter *w, GError **error)
{
    gboolean ok = TRUE;
    if (w->gzip) {
        ok = qubes_gzip_writer_write(w->gzip, NULL, 0, TRUE, error);
        if (!ok)
            g_prefix_error(error, "%s: ", w->file);
    } else if (w->filter.pid) {
        ok = filter_feed(w, NULL, 0, TRUE, error);
        int status = filter_reap(w, !ok);
        if (ok && !g_spawn_check_wait_status(status, NULL)) {
            g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                        "%s: %s failed", w->file, w->h.compression_filter);
            ok = FALSE;
        }
    }
    /* the last chunk, or the only one of an empty stream */
    if (ok && (w->chunk->len || w->index == 0))
        ok = flush_chunk(w, error);
    g_hash_table_foreach_remove(w->jobs, is_own_chunk, w->file);
    g_clear_pointer(&w->gzip, qubes_gzip_writer_free);
    g_clear_pointer(&w->file, g_free);
    top_up(w);
    return ok;
}

gboolean qubes_backup_writer_finish(QubesBackupWriter *w, GError **error)
{
    gboolean ok = qubes_tar_write_finish(w->out, w->data, error);
    qubes_backup_writer_free(w);
    return ok;
}

void qubes_backup_writer_free(QubesBackupWriter *w)
{
    if (!w)
        return;
    filter_reap(w, TRUE);
    g_hash_table_unref(w->jobs);
    /* a cancelled backup answers at once; else the derivations still
     * running (keys no longer needed) are waited for */
    qubes_key_ahead_free(w->ka, !(w->cancel && g_atomic_int_get(w->cancel)));
    qubes_backup_header_clear(&w->h);
    if (w->passphrase) {
        memset(w->passphrase, 0, strlen(w->passphrase));
        g_free(w->passphrase);
    }
    g_strfreev(w->files);
    g_byte_array_unref(w->chunk);
    g_clear_pointer(&w->gzip, qubes_gzip_writer_free);
    g_free(w->file);
    g_free(w);
}
