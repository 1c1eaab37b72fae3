/* backup-read.c: one pass over a Qubes backup file (see backup-read.h).
 *
 * The outer tar stream is read with tar-read.h; each of its members is
 * gathered whole (the header files, or one chunk of at most
 * QUBES_BACKUP_MAX_CHUNK bytes), decrypted and authenticated, and only
 * then handed on: to the file's decompressor (an Inflater), whose output
 * goes to the file's own tar reader and from there to the callbacks.
 *
 * Keys ahead: when the backup is a regular file, its outer tar headers are
 * scanned first (a hint only), and the keys of the next chunks are
 * derived on other cores (key-ahead.h) from their own headers while the
 * current one is decompressed and written. A key derived ahead is used
 * only if the chunk read has the very header it was derived for; else the
 * key is derived then. */
#include "backup-read.h"

#include "key-ahead.h"
#include "openssl-enc.h"
#include "qubes-error.h"
#include "scrypt-file.h"

#include <errno.h>
#include <gio/gio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HEADER_NAME "backup-header"
#define MAX_HEADER 4096

/* ---- decompressing one file's stream ---- */

typedef enum { INF_NONE, INF_GZIP, INF_PROGRAM } InflaterKind;

typedef struct {
    InflaterKind kind;
    char *file;
    QubesTarReader *tar;
    GConverter *conv;  /* INF_GZIP */
    gboolean finished; /* INF_GZIP: the gzip stream ended */
    GSubprocess *proc; /* INF_PROGRAM */
    char *program;
    GThread *reader;
    GMutex lock;
    GError *error; /* the reader thread's first error (under lock) */
} Inflater;

static gboolean tar_feed(Inflater *f, const guint8 *buf, gsize len,
                         GError **error)
{
    return qubes_tar_reader_feed(f->tar, buf, len, error);
}

/* INF_PROGRAM: the filter's output into the tar reader, on a thread of
 * its own so that writing its input never waits on reading it. After an
 * error it goes on reading (and dropping), so that the filter ends. */
static gpointer program_reader(gpointer data)
{
    Inflater *f = data;
    GInputStream *out = g_subprocess_get_stdout_pipe(f->proc);
    guint8 buf[1 << 16];
    for (;;) {
        GError *err = NULL;
        gssize n = g_input_stream_read(out, buf, sizeof buf, NULL, &err);
        if (n <= 0) {
            if (err) {
                g_mutex_lock(&f->lock);
                if (!f->error)
                    f->error = err;
                else
                    g_error_free(err);
                g_mutex_unlock(&f->lock);
            }
            break;
        }
        g_mutex_lock(&f->lock);
        gboolean failed = f->error != NULL;
        g_mutex_unlock(&f->lock);
        if (!failed && !tar_feed(f, buf, (gsize)n, &err)) {
            g_mutex_lock(&f->lock);
            f->error = err;
            g_mutex_unlock(&f->lock);
        }
    }
    return NULL;
}

static Inflater *inflater_new(const QubesBackupHeader *h, const char *file,
                              QubesTarReader *tar, GError **error)
{
    Inflater *f = g_new0(Inflater, 1);
    f->file = g_strdup(file);
    f->tar = tar;
    g_mutex_init(&f->lock);
    const char *filter = h->compression_filter ? h->compression_filter : "gzip";
    if (!h->compressed) {
        f->kind = INF_NONE;
    } else if (strcmp(filter, "gzip") == 0) {
        f->kind = INF_GZIP;
        f->conv =
            G_CONVERTER(g_zlib_decompressor_new(G_ZLIB_COMPRESSOR_FORMAT_GZIP));
    } else {
        /* the client runs "FILTER -d"; its name was checked by the
         * header's parse (known, or allowed by the user) */
        f->kind = INF_PROGRAM;
        f->program = g_strdup(filter);
        f->proc = g_subprocess_new(G_SUBPROCESS_FLAGS_STDIN_PIPE |
                                       G_SUBPROCESS_FLAGS_STDOUT_PIPE,
                                   error, filter, "-d", NULL);
        if (!f->proc) {
            g_prefix_error(error, "%s: cannot run '%s -d': ", file, filter);
            g_mutex_clear(&f->lock);
            g_free(f->file);
            g_free(f->program);
            g_free(f);
            return NULL;
        }
        f->reader = g_thread_new("backup-filter", program_reader, f);
    }
    return f;
}

static gboolean gzip_run(Inflater *f, const guint8 *in, gsize len,
                         gboolean at_end, GError **error)
{
    guint8 out[1 << 16];
    do {
        gsize read = 0, written = 0;
        GError *err = NULL;
        if (f->finished) {
            if (len)
                return qubes_error_errno_code(
                    error, QUBES_ERROR_EXCEPTION, EINVAL,
                    "%s: data after the end of its gzip stream", f->file);
            return TRUE;
        }
        GConverterResult r = g_converter_convert(
            f->conv, in, len, out, sizeof out,
            at_end ? G_CONVERTER_INPUT_AT_END : G_CONVERTER_NO_FLAGS, &read,
            &written, &err);
        if (r == G_CONVERTER_ERROR) {
            if (!at_end &&
                g_error_matches(err, G_IO_ERROR, G_IO_ERROR_PARTIAL_INPUT)) {
                g_error_free(err);
                return TRUE; /* more input is needed */
            }
            g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                        "%s: its gzip stream is damaged: %s", f->file,
                        err->message);
            g_error_free(err);
            return FALSE;
        }
        in += read;
        len -= read;
        if (written && !tar_feed(f, out, written, error))
            return FALSE;
        if (r == G_CONVERTER_FINISHED)
            f->finished = TRUE;
        if (!read && !written && !f->finished && !at_end)
            break;
    } while (len || (at_end && !f->finished));
    return TRUE;
}

static gboolean inflater_feed(Inflater *f, const guint8 *buf, gsize len,
                              GError **error)
{
    switch (f->kind) {
    case INF_NONE:
        return tar_feed(f, buf, len, error);
    case INF_GZIP:
        return gzip_run(f, buf, len, FALSE, error);
    case INF_PROGRAM: {
        g_mutex_lock(&f->lock);
        gboolean failed = f->error != NULL;
        g_mutex_unlock(&f->lock);
        if (failed)
            return TRUE; /* reported at the end */
        GOutputStream *in = g_subprocess_get_stdin_pipe(f->proc);
        gsize done = 0;
        if (!g_output_stream_write_all(in, buf, len, &done, NULL, error)) {
            g_prefix_error(error, "%s: '%s -d' stopped reading: ", f->file,
                           f->program);
            return FALSE;
        }
        return TRUE;
    }
    }
    return FALSE;
}

/* Ends the stream; frees @f. */
static gboolean inflater_finish(Inflater *f, gboolean ok, GError **error)
{
    if (f->kind == INF_GZIP && ok) {
        ok = gzip_run(f, NULL, 0, TRUE, error);
        if (ok && !f->finished) {
            g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                        "%s: its gzip stream is cut short", f->file);
            ok = FALSE;
        }
    }
    if (f->kind == INF_PROGRAM) {
        g_output_stream_close(g_subprocess_get_stdin_pipe(f->proc), NULL, NULL);
        g_thread_join(f->reader);
        GError *werr = NULL;
        if (!g_subprocess_wait(f->proc, NULL, &werr))
            g_clear_error(&werr);
        if (ok && f->error) {
            g_propagate_error(error, f->error);
            f->error = NULL;
            ok = FALSE;
        } else if (ok && !g_subprocess_get_successful(f->proc)) {
            g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                        "%s: '%s -d' failed (its stream is damaged)", f->file,
                        f->program);
            ok = FALSE;
        }
        g_clear_error(&f->error);
        g_object_unref(f->proc);
    }
    if (f->conv)
        g_object_unref(f->conv);
    g_mutex_clear(&f->lock);
    g_free(f->file);
    g_free(f->program);
    g_free(f);
    return ok;
}

/* ---- keys ahead ---- */

typedef struct {
    char *name;     /* an outer member named *.enc */
    guint64 offset; /* of its data in the file */
} Member;

typedef struct {
    QubesKeyJob *job;
    guint8 header[QUBES_SCRYPT_HEADER];
} AheadJob;

typedef struct {
    int fd;
    GPtrArray *members; /* Member, in the file's order */
    guint next;         /* the next member to start a key for */
    QubesKeyAhead *ka;
    GHashTable *jobs; /* name -> AheadJob */
    guint depth;      /* keys to keep coming (qubes_key_ahead_depth) */
} Prefetch;

static void member_free(Member *m)
{
    g_free(m->name);
    g_free(m);
}

static void ahead_job_free(AheadJob *a)
{
    qubes_key_job_drop(a->job);
    g_free(a);
}

/* The outer members of the file, from their headers (stopping at the
 * first that does not parse). */
static GPtrArray *scan_members(int fd)
{
    GPtrArray *out =
        g_ptr_array_new_with_free_func((GDestroyNotify)member_free);
    guint8 b[512];
    guint64 off = 0;
    while (out->len < 100000 && pread(fd, b, sizeof b, (off_t)off) == 512) {
        gboolean zero;
        char name[101], type;
        guint64 size = 0;
        if (!qubes_tar_header_peek(b, &zero, name, &type, &size))
            break;
        if (zero) { /* the end blocks each member of the reference has */
            off += 512;
            continue;
        }
        if ((type == '0' || type == '\0') &&
            (g_str_has_suffix(name, ".enc") ||
             strcmp(name, HEADER_NAME ".hmac") == 0)) {
            Member *m = g_new0(Member, 1);
            m->name = g_strdup(name);
            m->offset = off + 512;
            g_ptr_array_add(out, m);
        }
        off += 512 + (size + 511) / 512 * 512;
    }
    return out;
}

static Prefetch *prefetch_new(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        lseek(fd, 0, SEEK_CUR) != 0)
        return NULL;
    Prefetch *p = g_new0(Prefetch, 1);
    p->fd = fd;
    p->members = scan_members(fd);
    QubesScryptParams dflt = QUBES_SCRYPT_PARAMS_DEFAULT;
    p->ka = qubes_key_ahead_new(&dflt, QUBES_KEY_AHEAD_SPREAD);
    p->depth = qubes_key_ahead_depth(p->ka);
    p->jobs = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                    (GDestroyNotify)ahead_job_free);
    return p;
}

static void prefetch_free(Prefetch *p)
{
    if (!p)
        return;
    g_hash_table_unref(p->jobs);
    qubes_key_ahead_free(p->ka, TRUE);
    g_ptr_array_unref(p->members);
    g_free(p);
}

/* Keeps the pool's depth of derivations queued or going for the chunks
 * that come next. */
static void prefetch_schedule(Prefetch *p, const char *backup_id,
                              const char *passphrase)
{
    while (p && g_hash_table_size(p->jobs) < p->depth &&
           p->next < p->members->len) {
        Member *m = p->members->pdata[p->next++];
        AheadJob *a = g_new0(AheadJob, 1);
        QubesScryptParams params;
        guint8 salt[QUBES_SCRYPT_SALT];
        if (pread(p->fd, a->header, sizeof a->header, (off_t)m->offset) !=
                (ssize_t)sizeof a->header ||
            !qubes_scrypt_header_parse(a->header, &params, salt, NULL)) {
            g_free(a);
            continue;
        }
        g_autofree char *base = g_strndup(m->name, strlen(m->name) - 4);
        g_autofree char *pass =
            strcmp(m->name, HEADER_NAME ".hmac") == 0
                ? g_strdup_printf("%s!%s", HEADER_NAME, passphrase)
                : g_strdup_printf("%s!%s!%s", backup_id, base, passphrase);
        a->job = qubes_key_ahead_start_for(p->ka, pass, &params, salt);
        memset(pass, 0, strlen(pass));
        g_hash_table_replace(p->jobs, g_strdup(m->name), a);
    }
}

/* ---- the backup ---- */

typedef struct {
    const QubesBackupReadCallbacks *cb;
    gpointer data;
    const char *passphrase;
    const char *allow_filter;
    int stage;          /* 0: the header next, 1: its .hmac, 2: chunks */
    GByteArray *member; /* the outer member gathered */
    char *member_name;
    GByteArray *header_bytes;
    /* parsed once, as it comes: not yet authenticated until stage 2 */
    QubesBackupHeader header;
    gboolean header_parsed;
    GError *header_error; /* why it did not parse */
    GHashTable *files_seen;
    char *file;       /* the file whose chunks come, or NULL */
    guint next_index; /* its next chunk's number */
    QubesTarReader *inner;
    Inflater *inf;
    Prefetch *prefetch; /* NULL: not a regular file */
    /* format 3: a chunk waits for its .hmac; a file is one openssl enc
     * stream */
    gboolean v3;
    GByteArray *pending; /* the chunk gathered, not yet authenticated */
    char *pending_name;
    QubesEncReader *enc; /* the file's stream (encrypted backups) */
    GByteArray *plain;   /* what it decrypted, for the inflater */
} Reader;

/* inner tar callbacks: on to the caller's, with the file's name */
static gboolean in_begin(const QubesTarMember *m, gpointer data, GError **e)
{
    Reader *r = data;
    return !r->cb->begin || r->cb->begin(r->file, m, r->data, e);
}

static gboolean in_data(const QubesTarMember *m, guint64 offset,
                        const guint8 *buf, gsize len, gpointer data, GError **e)
{
    Reader *r = data;
    return !r->cb->data ||
           r->cb->data(r->file, m, offset, buf, len, r->data, e);
}

static gboolean in_end(const QubesTarMember *m, gpointer data, GError **e)
{
    Reader *r = data;
    return !r->cb->end || r->cb->end(r->file, m, r->data, e);
}

static const QubesTarCallbacks inner_callbacks = {in_begin, in_data, in_end};

/* The current file's stream ended: everything in it must be whole. */
static gboolean finish_file(Reader *r, gboolean ok, GError **error)
{
    if (!r->file)
        return ok;
    if (r->enc) {
        /* format 3: the stream's last block and its padding */
        g_byte_array_set_size(r->plain, 0);
        if (ok)
            ok = qubes_enc_reader_finish(r->enc, r->plain, r->file, error) &&
                 inflater_feed(r->inf, r->plain->data, r->plain->len, error);
        g_clear_pointer(&r->enc, qubes_enc_reader_free);
    }
    if (r->inf)
        ok = inflater_finish(r->inf, ok, error) && ok;
    r->inf = NULL;
    if (ok && !qubes_tar_reader_finish(r->inner, error)) {
        g_prefix_error(error, "%s: ", r->file);
        ok = FALSE;
    }
    qubes_tar_reader_free(r->inner);
    r->inner = NULL;
    if (ok && r->cb->file_done)
        ok = r->cb->file_done(r->file, r->data, error);
    g_clear_pointer(&r->file, g_free);
    return ok;
}

/* "FILE.NNN.enc": FILE qubes.xml, vmN/NAME or dom0-home/NAME. */
static gboolean chunk_name(const char *untrusted, char **file, guint *index)
{
    gsize len = strlen(untrusted);
    if (len < 9 || !g_str_has_suffix(untrusted, ".enc") ||
        untrusted[len - 8] != '.')
        return FALSE;
    for (gsize i = len - 7; i < len - 4; i++)
        if (!g_ascii_isdigit(untrusted[i]))
            return FALSE;
    g_autofree char *f = g_strndup(untrusted, len - 8);
    *index = (guint)g_ascii_strtoull(untrusted + len - 7, NULL, 10);
    if (strcmp(f, "qubes.xml") != 0) {
        const char *slash = strchr(f, '/');
        if (!slash || strchr(slash + 1, '/') || !slash[1] || slash[1] == '.' ||
            slash - f > 16)
            return FALSE;
        g_autofree char *top = g_strndup(f, (gsize)(slash - f));
        gboolean vm = g_str_has_prefix(top, "vm") && top[2];
        for (const char *p = top + 2; vm && *p; p++)
            vm = g_ascii_isdigit(*p);
        if (!vm && strcmp(top, "dom0-home") != 0)
            return FALSE;
        for (const char *p = slash + 1; *p; p++)
            if (!g_ascii_isalnum(*p) && !strchr("._-", *p))
                return FALSE;
    }
    *file = g_steal_pointer(&f);
    return TRUE;
}

/* Format 3's "FILE.NNN": FILE qubes.xml or a relative path of one to
 * four names of [A-Za-z0-9._-] (not "." or ".." but for a last "." of a
 * folder: R3's "vm-templates/NAME/."). */
static gboolean chunk_name3(const char *untrusted, char **file, guint *index)
{
    gsize len = strlen(untrusted);
    if (len < 5 || untrusted[len - 4] != '.')
        return FALSE;
    for (gsize i = len - 3; i < len; i++)
        if (!g_ascii_isdigit(untrusted[i]))
            return FALSE;
    g_autofree char *f = g_strndup(untrusted, len - 4);
    g_auto(GStrv) parts = g_strsplit(f, "/", 0);
    guint n = g_strv_length(parts);
    if (n < 1 || n > 4)
        return FALSE;
    for (guint i = 0; i < n; i++) {
        const char *c = parts[i];
        if (!*c || strcmp(c, "..") == 0 || (strcmp(c, ".") == 0 && i != n - 1))
            return FALSE;
        for (const char *p = c; *p; p++)
            if (!g_ascii_isalnum(*p) && !strchr("._-", *p))
                return FALSE;
    }
    *index = (guint)g_ascii_strtoull(untrusted + len - 3, NULL, 10);
    *file = g_steal_pointer(&f);
    return TRUE;
}

/* The chunks' keys start while the header's own is derived: their names
 * take the backup id of the header as it reads, not yet authenticated
 * (a key only opens a chunk whose MAC it matches, and the header is
 * checked against its .hmac before any chunk is opened). */
static void prefetch_early(Reader *r)
{
    if (r->prefetch && r->header_parsed && r->header.backup_id)
        prefetch_schedule(r->prefetch, r->header.backup_id, r->passphrase);
}

/* The key of the member gathered, under @pass: derived ahead from this
 * very scrypt header, or now. FALSE with @error "failed to decrypt
 * MEMBER: WHY". */
static gboolean member_key(Reader *r, const char *pass,
                           guint8 key[QUBES_SCRYPT_KEY], GError **error)
{
    guint8 salt[QUBES_SCRYPT_SALT];
    gpointer key_name = NULL, value = NULL;
    if (r->prefetch &&
        g_hash_table_steal_extended(r->prefetch->jobs, r->member_name,
                                    &key_name, &value)) {
        AheadJob *a = value;
        /* the key is this member's only if its header is the one read
         * ahead (else the file changed: derived again below) */
        gboolean keyed =
            r->member->len >= QUBES_SCRYPT_HEADER &&
            memcmp(a->header, r->member->data, QUBES_SCRYPT_HEADER) == 0 &&
            qubes_key_job_take(g_steal_pointer(&a->job), salt, key, NULL, NULL);
        ahead_job_free(a);
        g_free(key_name);
        if (keyed)
            return TRUE;
    }
    QubesScryptParams params;
    if (r->member->len < QUBES_SCRYPT_HEADER)
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                            "it is cut short");
    else if (qubes_scrypt_header_parse(r->member->data, &params, salt, error) &&
             qubes_scrypt_derive(pass, strlen(pass), salt, &params, key, error))
        return TRUE;
    g_prefix_error(error, "failed to decrypt %s: ", r->member_name);
    return FALSE;
}

/* The member gathered, decrypted where it lies and authenticated (no
 * copy of a chunk): its plain data at r->member->data +
 * QUBES_SCRYPT_HEADER, *@len bytes. */
static gboolean open_member(Reader *r, const char *pass, gsize *len,
                            GError **error)
{
    guint8 key[QUBES_SCRYPT_KEY];
    if (!member_key(r, pass, key, error))
        return FALSE;
    gboolean ok = qubes_scrypt_open_keyed(r->member->data, r->member->len, key,
                                          r->member_name, error);
    memset(key, 0, sizeof key);
    *len = ok ? r->member->len - QUBES_SCRYPT_HEADER - QUBES_SCRYPT_MAC : 0;
    return ok;
}

/* Format 4 is read when encrypted (as the client writes it); formats 1
 * and 2 are refused in the client's words (it reads neither). */
static gboolean format_4(const QubesBackupHeader *h, GError **error)
{
    if (h->version == 4 && h->encrypted &&
        g_ascii_strcasecmp(h->hmac_algorithm, "scrypt") == 0)
        return TRUE;
    if (h->version < 3)
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                    "Backup format version %d not supported", h->version);
    else
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                    "a backup of format %d%s: only encrypted backups of "
                    "format 4 are read here (and those of format 3)",
                    h->version, h->encrypted ? "" : ", not encrypted");
    return FALSE;
}

/* Format 3: the .hmac is the text of `openssl dgst -ALGORITHM -hmac` for
 * the header, the algorithm the header's own (the client tries every one
 * it knows; a header signed under another than it names is refused). */
static gboolean take_header3(Reader *r, GError **error)
{
    g_autoptr(GError) why = NULL;
    if (!qubes_hmac_text_check(r->header.hmac_algorithm, r->passphrase,
                               r->header_bytes->data, r->header_bytes->len,
                               (const char *)r->member->data, r->member->len,
                               HEADER_NAME, &why)) {
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                            "Corrupted backup header (hmac verification "
                            "failed). Is the password correct?");
        return FALSE;
    }
    r->v3 = TRUE;
    r->plain = g_byte_array_new();
    /* no scrypt keys to derive ahead */
    g_clear_pointer(&r->prefetch, prefetch_free);
    return !r->cb->header || r->cb->header(&r->header, r->data, error);
}

static gboolean take_header(Reader *r, GError **error)
{
    /* The header's version, not yet authenticated, says how its .hmac is
     * checked (format 3's is openssl dgst text, not a scrypt file) or that
     * its format is refused; nothing else of it is used before the check. */
    if (r->header_parsed && r->header.version == 3)
        return take_header3(r, error);
    if (r->header_parsed && !format_4(&r->header, error))
        return FALSE;
    g_autofree char *pass =
        g_strdup_printf("%s!%s", HEADER_NAME, r->passphrase);
    gsize len = 0;
    gboolean ok = open_member(r, pass, &len, error);
    memset(pass, 0, strlen(pass));
    if (!ok)
        return FALSE;
    const guint8 *plain = r->member->data + QUBES_SCRYPT_HEADER;
    if (len != r->header_bytes->len ||
        memcmp(plain, r->header_bytes->data, len) != 0) {
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                            "ERROR: invalid hmac for file backup-header: "
                            "it is not the one its .hmac holds");
        return FALSE;
    }
    /* authentic: a header that does not parse is refused only now, so
     * that a wrong passphrase is what is said first */
    if (!r->header_parsed) {
        g_propagate_error(error, g_steal_pointer(&r->header_error));
        return FALSE;
    }
    prefetch_schedule(r->prefetch, r->header.backup_id, r->passphrase);
    return !r->cb->header || r->cb->header(&r->header, r->data, error);
}

/* The chunk @name (@file's chunk @index) comes: in order, after the
 * file before ended whole; a new file gets its tar reader and inflater
 * (and *@fresh is TRUE). */
static gboolean next_chunk(Reader *r, const char *name, const char *file,
                           guint index, gboolean *fresh, GError **error)
{
    *fresh = !r->file || strcmp(r->file, file) != 0;
    if (*fresh) {
        if (!finish_file(r, TRUE, error))
            return FALSE;
        if (index != 0 || g_hash_table_contains(r->files_seen, file)) {
            g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                        "%s: a chunk out of order or missing (%03u first)",
                        name, index);
            return FALSE;
        }
        g_hash_table_add(r->files_seen, g_strdup(file));
        r->file = g_strdup(file);
        r->next_index = 0;
        r->inner = qubes_tar_reader_new(&inner_callbacks, r);
        r->inf = inflater_new(&r->header, file, r->inner, error);
        if (!r->inf)
            return FALSE;
    }
    if (index != r->next_index) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                    "%s: a chunk out of order or missing (%03u expected)", name,
                    r->next_index);
        return FALSE;
    }
    r->next_index++;
    return TRUE;
}

static gboolean take_chunk(Reader *r, GError **error)
{
    char *file = NULL;
    guint index = 0;
    gboolean fresh;
    if (!chunk_name(r->member_name, &file, &index)) {
        g_autofree char *n = g_strescape(r->member_name, NULL);
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                    "unexpected file in the backup: '%s'", n);
        return FALSE;
    }
    g_autofree char *owned = file;
    if (!next_chunk(r, r->member_name, file, index, &fresh, error))
        return FALSE;
    g_autofree char *pass = g_strdup_printf(
        "%s!%s.%03u!%s", r->header.backup_id, file, index, r->passphrase);
    gsize len = 0;
    gboolean ok = open_member(r, pass, &len, error);
    memset(pass, 0, strlen(pass));
    if (r->prefetch)
        prefetch_schedule(r->prefetch, r->header.backup_id, r->passphrase);
    return ok && inflater_feed(r->inf, r->member->data + QUBES_SCRYPT_HEADER,
                               len, error);
}

/* Format 3: the chunk r->pending (FILE.NNN), its .hmac checked. */
static gboolean take_chunk3(Reader *r, GError **error)
{
    char *file = NULL;
    guint index = 0;
    g_autofree char *name = g_steal_pointer(&r->pending_name);
    if (!chunk_name3(name, &file, &index)) {
        g_autofree char *n = g_strescape(name, NULL);
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                    "'%s' in the backup is not a chunk's name", n);
        return FALSE;
    }
    g_autofree char *owned = file;
    gboolean fresh;
    if (!next_chunk(r, name, file, index, &fresh, error))
        return FALSE;
    if (fresh && r->header.encrypted &&
        !(r->enc = qubes_enc_reader_new(r->header.crypto_algorithm,
                                        r->passphrase, error)))
        return FALSE;
    if (!r->enc)
        return inflater_feed(r->inf, r->pending->data, r->pending->len, error);
    g_byte_array_set_size(r->plain, 0);
    return qubes_enc_reader_update(r->enc, r->pending->data, r->pending->len,
                                   r->plain, name, error) &&
           inflater_feed(r->inf, r->plain->data, r->plain->len, error);
}

/* Format 3, a member whole: a chunk waits for its .hmac, which must come
 * next; then the chunk is read. */
static gboolean take_member3(Reader *r, GError **error)
{
    if (!g_str_has_suffix(r->member_name, ".hmac")) {
        if (r->pending_name) {
            g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                        "ERROR: expected hmac for %s, but got %s",
                        r->pending_name, r->member_name);
            return FALSE;
        }
        GByteArray *t = r->pending ? r->pending : g_byte_array_new();
        r->pending = r->member;
        r->member = t;
        r->pending_name = g_strdup(r->member_name);
        return TRUE;
    }
    g_autofree char *want =
        r->pending_name ? g_strconcat(r->pending_name, ".hmac", NULL) : NULL;
    if (!want || strcmp(want, r->member_name) != 0) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                    "ERROR: expected hmac for %s, but got %s",
                    r->pending_name ? r->pending_name : "(no chunk)",
                    r->member_name);
        return FALSE;
    }
    return qubes_hmac_text_check(r->header.hmac_algorithm, r->passphrase,
                                 r->pending->data, r->pending->len,
                                 (const char *)r->member->data, r->member->len,
                                 r->pending_name, error) &&
           take_chunk3(r, error);
}

static gboolean out_begin(const QubesTarMember *m, gpointer data, GError **e)
{
    Reader *r = data;
    g_autofree char *n = g_strescape(m->name, NULL);
    guint64 max = r->stage < 2 ? MAX_HEADER + 128 : QUBES_BACKUP_MAX_CHUNK;
    const char *want = r->stage == 0   ? HEADER_NAME
                       : r->stage == 1 ? HEADER_NAME ".hmac"
                                       : NULL;
    if (m->type != QUBES_TAR_FILE || m->sparse) {
        g_set_error(e, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                    "'%s' in the backup is not a plain file", n);
        return FALSE;
    }
    if (want && strcmp(m->name, want) != 0) {
        g_set_error(e, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                    "'%s' where the backup should have %s: not a Qubes "
                    "backup, or a damaged one",
                    n, want);
        return FALSE;
    }
    if (m->stored > max) {
        g_set_error(e, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                    "'%s' in the backup is too large (%" G_GUINT64_FORMAT
                    " bytes)",
                    n, m->stored);
        return FALSE;
    }
    g_byte_array_set_size(r->member, 0);
    g_free(r->member_name);
    r->member_name = g_strdup(m->name);
    return TRUE;
}

static gboolean out_data(const QubesTarMember *m, guint64 offset,
                         const guint8 *buf, gsize len, gpointer data,
                         GError **e)
{
    Reader *r = data;
    g_byte_array_append(r->member, buf, (guint)len);
    return TRUE;
}

static gboolean out_end(const QubesTarMember *m, gpointer data, GError **e)
{
    Reader *r = data;
    switch (r->stage) {
    case 0:
        g_byte_array_append(r->header_bytes, r->member->data, r->member->len);
        r->stage = 1;
        r->header_parsed = qubes_backup_header_parse(
            (char *)r->header_bytes->data, r->header_bytes->len,
            r->allow_filter, &r->header, &r->header_error);
        prefetch_early(r);
        return TRUE;
    case 1:
        r->stage = 2;
        return take_header(r, e);
    default:
        return r->v3 ? take_member3(r, e) : take_chunk(r, e);
    }
}

static const QubesTarCallbacks outer_callbacks = {out_begin, out_data, out_end};

gboolean qubes_backup_read(int fd, const char *passphrase,
                           const char *allow_filter,
                           const QubesBackupReadCallbacks *callbacks,
                           gpointer data, GError **error)
{
    Reader r = {.cb = callbacks,
                .data = data,
                .passphrase = passphrase,
                .allow_filter = allow_filter,
                .member = g_byte_array_new(),
                .header_bytes = g_byte_array_new(),
                .files_seen = g_hash_table_new_full(g_str_hash, g_str_equal,
                                                    g_free, NULL)};
    r.prefetch = prefetch_new(fd);
    QubesTarReader *outer = qubes_tar_reader_new(&outer_callbacks, &r);
    g_autofree guint8 *buf = g_malloc(1 << 20);
    gboolean ok = TRUE;
    for (;;) {
        ssize_t n = read(fd, buf, 1 << 20);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            ok = qubes_error_errno_code(error, QUBES_ERROR_EXCEPTION, errno,
                                        "Cannot read the backup");
            break;
        }
        if (n == 0)
            break;
        if (!(ok = qubes_tar_reader_feed(outer, buf, (gsize)n, error))) {
            /* the outer tar's own refusals say where */
            if (error && *error && g_str_has_prefix((*error)->message, "tar:"))
                g_prefix_error(error, "the backup, after '%s': ",
                               r.member_name ? r.member_name : "its start");
            break;
        }
    }
    if (ok)
        ok = qubes_tar_reader_finish(outer, error);
    if (ok && r.stage < 2) {
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                            "the backup ends before its header is whole");
        ok = FALSE;
    }
    if (ok && r.pending_name) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                    "the backup ends before the hmac of %s", r.pending_name);
        ok = FALSE;
    }
    ok = finish_file(&r, ok, ok ? error : NULL) && ok;
    qubes_tar_reader_free(outer);
    prefetch_free(r.prefetch);
    if (r.inner)
        qubes_tar_reader_free(r.inner);
    g_byte_array_unref(r.member);
    if (r.pending)
        g_byte_array_unref(r.pending);
    if (r.plain)
        g_byte_array_unref(r.plain);
    g_free(r.pending_name);
    qubes_enc_reader_free(r.enc);
    g_byte_array_unref(r.header_bytes);
    g_hash_table_unref(r.files_seen);
    g_free(r.member_name);
    g_free(r.file);
    qubes_backup_header_clear(&r.header);
    g_clear_error(&r.header_error);
    return ok;
}
