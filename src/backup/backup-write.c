/* backup-write.c: a Qubes backup file written in one pass (see
 * backup-write.h). */
#include "backup-write.h"

#include "qubes-error.h"

#include <gio/gio.h>
#include <string.h>

struct _QubesBackupWriter {
    QubesTarSink out;
    gpointer data;
    QubesBackupHeader h;
    char *passphrase;
    QubesScryptParams params;
    gsize chunk_size;
    char *file;        /* the current file, or NULL */
    guint index;       /* its next chunk's number */
    GByteArray *chunk; /* the current chunk's (compressed) data */
    GConverter *gzip;  /* when compressed */
    gint64 mtime;
};

/* Encrypts @plain as the scrypt file of @name under @pass and writes it
 * as one outer member. */
static gboolean emit_member(QubesBackupWriter *w, const char *name,
                            const char *pass, const guint8 *plain, gsize len,
                            GError **error)
{
    guint8 salt[QUBES_SCRYPT_SALT], key[QUBES_SCRYPT_KEY];
    if (!qubes_scrypt_salt(salt, error) ||
        !qubes_scrypt_derive(pass, strlen(pass), salt, &w->params, key, error))
        return FALSE;
    guint8 header[QUBES_SCRYPT_HEADER], mac[QUBES_SCRYPT_MAC];
    QubesScryptEnc *enc = qubes_scrypt_enc_new(key, salt, &w->params, header);
    guint8 *cipher = g_malloc(len ? len : 1);
    qubes_scrypt_enc_update(enc, plain, cipher, len);
    qubes_scrypt_enc_finish(enc, mac);
    gsize total = QUBES_SCRYPT_HEADER + len + QUBES_SCRYPT_MAC;
    QubesTarFile f = {
        .name = name, .mode = 0644, .mtime = w->mtime, .size = total};
    gboolean ok = qubes_tar_write_begin(w->out, w->data, &f, error) &&
                  w->out(header, sizeof header, w->data, error) &&
                  w->out(cipher, len, w->data, error) &&
                  w->out(mac, sizeof mac, w->data, error) &&
                  qubes_tar_write_end(w->out, w->data, total, error);
    g_free(cipher);
    return ok;
}

/* The current chunk, whole: out as FILE.NNN.enc. */
static gboolean flush_chunk(QubesBackupWriter *w, GError **error)
{
    g_autofree char *name = g_strdup_printf("%s.%03u.enc", w->file, w->index);
    g_autofree char *pass = g_strdup_printf("%s!%s.%03u!%s", w->h.backup_id,
                                            w->file, w->index, w->passphrase);
    if (w->index > 999) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                    "%s: more than 1000 chunks", w->file);
        return FALSE;
    }
    gboolean ok =
        emit_member(w, name, pass, w->chunk->data, w->chunk->len, error);
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
        buf += k;
        len -= k;
        if (w->chunk->len == w->chunk_size && !flush_chunk(w, error))
            return FALSE;
    }
    return TRUE;
}

static gboolean compress(QubesBackupWriter *w, const guint8 *in, gsize len,
                         gboolean at_end, GError **error)
{
    guint8 out[1 << 16];
    for (;;) {
        gsize read = 0, written = 0;
        GError *err = NULL;
        GConverterResult r = g_converter_convert(
            w->gzip, in, len, out, sizeof out,
            at_end ? G_CONVERTER_INPUT_AT_END : G_CONVERTER_NO_FLAGS, &read,
            &written, &err);
        if (r == G_CONVERTER_ERROR) {
            g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                        "%s: gzip failed: %s", w->file, err->message);
            g_error_free(err);
            return FALSE;
        }
        in += read;
        len -= read;
        if (written && !chunk_add(w, out, written, error))
            return FALSE;
        if (r == G_CONVERTER_FINISHED || (!len && !at_end))
            return TRUE;
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
    return w->gzip ? compress(w, buf, len, FALSE, error)
                   : chunk_add(w, buf, len, error);
}

QubesBackupWriter *qubes_backup_writer_new(QubesTarSink out, gpointer data,
                                           const QubesBackupHeader *h,
                                           const char *passphrase,
                                           const QubesScryptParams *params,
                                           gsize chunk, GError **error)
{
    if (h->version != 4 || !h->encrypted || !h->backup_id ||
        g_strcmp0(h->hmac_algorithm, "scrypt") != 0 ||
        (h->compressed && g_strcmp0(h->compression_filter, "gzip") != 0)) {
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                            "backup: only encrypted format 4 backups, gzip "
                            "or uncompressed, are written here");
        return NULL;
    }
    if (!qubes_scrypt_params_check(params, error))
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
    w->params = *params;
    w->chunk_size = chunk ? chunk : QUBES_BACKUP_CHUNK;
    w->chunk = g_byte_array_new();
    w->mtime = g_get_real_time() / G_USEC_PER_SEC;
    g_autofree char *text = qubes_backup_header_format(&w->h);
    gsize tlen = strlen(text);
    QubesTarFile f = {
        .name = "backup-header", .mode = 0644, .mtime = w->mtime, .size = tlen};
    g_autofree char *pass = g_strdup_printf("backup-header!%s", passphrase);
    if (!qubes_tar_write_begin(out, data, &f, error) ||
        !out((const guint8 *)text, tlen, data, error) ||
        !qubes_tar_write_end(out, data, tlen, error) ||
        !emit_member(w, "backup-header.hmac", pass, (const guint8 *)text, tlen,
                     error)) {
        qubes_backup_writer_free(w);
        return NULL;
    }
    return w;
}

gboolean qubes_backup_writer_file_begin(QubesBackupWriter *w, const char *file,
                                        GError **error)
{
    g_assert(!w->file);
    w->file = g_strdup(file);
    w->index = 0;
    g_byte_array_set_size(w->chunk, 0);
    if (w->h.compressed)
        w->gzip = G_CONVERTER(
            g_zlib_compressor_new(G_ZLIB_COMPRESSOR_FORMAT_GZIP, -1));
    return TRUE;
}

gboolean qubes_backup_writer_file_end(QubesBackupWriter *w, GError **error)
{
    gboolean ok = !w->gzip || compress(w, NULL, 0, TRUE, error);
    /* the last chunk, or the only one of an empty stream */
    if (ok && (w->chunk->len || w->index == 0))
        ok = flush_chunk(w, error);
    g_clear_object(&w->gzip);
    g_clear_pointer(&w->file, g_free);
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
    qubes_backup_header_clear(&w->h);
    if (w->passphrase) {
        memset(w->passphrase, 0, strlen(w->passphrase));
        g_free(w->passphrase);
    }
    g_byte_array_unref(w->chunk);
    g_clear_object(&w->gzip);
    g_free(w->file);
    g_free(w);
}
