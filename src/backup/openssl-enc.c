/* openssl-enc.c: `openssl enc` streams and `openssl dgst -hmac` texts of
 * format 3 backups, with libcrypto (see openssl-enc.h). */
#include "openssl-enc.h"

#include "qubes-error.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

#define MAGIC "Salted__"
#define SALT 8
#define HMAC_TEXT_MAX 4096 /* the client's HMAC_MAX_SIZE */

struct _QubesEncReader {
    EVP_CIPHER_CTX *ctx;
    EVP_CIPHER *cipher;
    char *passphrase;
    guint8 head[sizeof MAGIC - 1 + SALT]; /* "Salted__" and the salt */
    gsize have;                           /* of head */
    gboolean keyed;
};

/* every refusal here is a QubesException */
#define fail(error, ...)                                                       \
    qubes_error_fail(error, QUBES_ERROR_EXCEPTION, __VA_ARGS__)

/* A name libcrypto may be asked for: [A-Za-z0-9-], 1 to 64 bytes (the
 * header's own syntax; nothing else reaches libcrypto's lookup). */
static gboolean plain_name(const char *untrusted)
{
    gsize n = strlen(untrusted);
    if (n == 0 || n > 64)
        return FALSE;
    for (gsize i = 0; i < n; i++)
        if (!g_ascii_isalnum(untrusted[i]) && untrusted[i] != '-')
            return FALSE;
    return TRUE;
}

QubesEncReader *qubes_enc_reader_new(const char *untrusted_cipher,
                                     const char *passphrase, GError **error)
{
    EVP_CIPHER *c = plain_name(untrusted_cipher)
                        ? EVP_CIPHER_fetch(NULL, untrusted_cipher, NULL)
                        : NULL;
    if (c && (EVP_CIPHER_get_flags(c) & EVP_CIPH_FLAG_AEAD_CIPHER)) {
        EVP_CIPHER_free(c);
        c = NULL;
    }
    if (!c) {
        fail(error, "Unsupported encryption algorithm: %s",
             plain_name(untrusted_cipher) ? untrusted_cipher : "(not a name)");
        return NULL;
    }
    QubesEncReader *r = g_new0(QubesEncReader, 1);
    r->cipher = c;
    r->ctx = EVP_CIPHER_CTX_new();
    r->passphrase = g_strdup(passphrase);
    if (!r->ctx) {
        qubes_enc_reader_free(r);
        fail(error, "Cannot make a cipher context (out of memory)");
        return NULL;
    }
    return r;
}

void qubes_enc_reader_free(QubesEncReader *r)
{
    if (!r)
        return;
    EVP_CIPHER_CTX_free(r->ctx);
    EVP_CIPHER_free(r->cipher);
    if (r->passphrase) {
        OPENSSL_cleanse(r->passphrase, strlen(r->passphrase));
        g_free(r->passphrase);
    }
    g_free(r);
}

/* The salt is whole: the key and IV as `openssl enc -md MD5` makes them. */
static gboolean start(QubesEncReader *r, const char *file, GError **error)
{
    if (memcmp(r->head, MAGIC, sizeof MAGIC - 1) != 0)
        return fail(error,
                    "%s: not an openssl enc stream (no \"%s\" "
                    "header)",
                    file, MAGIC);
    guint8 key[EVP_MAX_KEY_LENGTH], iv[EVP_MAX_IV_LENGTH];
    gboolean ok =
        EVP_BytesToKey(r->cipher, EVP_md5(), r->head + sizeof MAGIC - 1,
                       (const guint8 *)r->passphrase,
                       (int)strlen(r->passphrase), 1, key, iv) > 0 &&
        EVP_DecryptInit_ex(r->ctx, r->cipher, NULL, key, iv) == 1;
    OPENSSL_cleanse(key, sizeof key);
    OPENSSL_cleanse(iv, sizeof iv);
    if (!ok)
        return fail(error, "%s: the cipher could not be set up in libcrypto",
                    file);
    r->keyed = TRUE;
    return TRUE;
}

gboolean qubes_enc_reader_update(QubesEncReader *r, const guint8 *in, gsize len,
                                 GByteArray *out, const char *file,
                                 GError **error)
{
    if (!r->keyed) {
        gsize take = MIN(len, sizeof r->head - r->have);
        memcpy(r->head + r->have, in, take);
        r->have += take;
        in += take;
        len -= take;
        if (r->have < sizeof r->head)
            return TRUE;
        if (!start(r, file, error))
            return FALSE;
    }
    /* at most 1 MiB a call, so that a length fits an int */
    while (len > 0) {
        int n = (int)MIN(len, (gsize)1 << 20), got = 0;
        guint old = out->len;
        g_byte_array_set_size(out, old + (guint)n + EVP_MAX_BLOCK_LENGTH);
        if (EVP_DecryptUpdate(r->ctx, out->data + old, &got, in, n) != 1) {
            g_byte_array_set_size(out, old);
            return fail(error, "%s: decryption failed in libcrypto", file);
        }
        g_byte_array_set_size(out, old + (guint)got);
        in += n;
        len -= (gsize)n;
    }
    return TRUE;
}

gboolean qubes_enc_reader_finish(QubesEncReader *r, GByteArray *out,
                                 const char *file, GError **error)
{
    if (!r->keyed)
        return fail(error,
                    "%s: the stream is cut short (%" G_GSIZE_FORMAT
                    " bytes, no salt)",
                    file, r->have);
    guint old = out->len;
    int got = 0;
    g_byte_array_set_size(out, old + EVP_MAX_BLOCK_LENGTH);
    if (EVP_DecryptFinal_ex(r->ctx, out->data + old, &got) != 1) {
        g_byte_array_set_size(out, old);
        return fail(error,
                    "%s: bad decrypt (a wrong passphrase, or the stream is "
                    "cut or changed)",
                    file);
    }
    g_byte_array_set_size(out, old + (guint)got);
    return TRUE;
}

/* The lower-case hex of the HMAC of @data, or NULL (no such digest). */
static char *hmac_hex(const char *untrusted_algorithm, const char *passphrase,
                      const guint8 *data, gsize len, GError **error)
{
    EVP_MD *md = plain_name(untrusted_algorithm)
                     ? EVP_MD_fetch(NULL, untrusted_algorithm, NULL)
                     : NULL;
    guint8 mac[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    gboolean ok = md && HMAC(md, passphrase, (int)strlen(passphrase), data, len,
                             mac, &n) != NULL;
    EVP_MD_free(md);
    if (!ok) {
        fail(error, "Unsupported hmac algorithm: %s",
             plain_name(untrusted_algorithm) ? untrusted_algorithm
                                             : "(not a name)");
        return NULL;
    }
    GString *hex = g_string_sized_new(2 * n + 1);
    for (unsigned int i = 0; i < n; i++)
        g_string_append_printf(hex, "%02x", mac[i]);
    return g_string_free(hex, FALSE);
}

char *qubes_hmac_text(const char *untrusted_algorithm, const char *passphrase,
                      const guint8 *data, gsize len, GError **error)
{
    g_autofree char *hex =
        hmac_hex(untrusted_algorithm, passphrase, data, len, error);
    return hex ? g_strdup_printf("(stdin)= %s\n", hex) : NULL;
}

gboolean qubes_hmac_text_check(const char *untrusted_algorithm,
                               const char *passphrase, const guint8 *data,
                               gsize len, const char *untrusted_text,
                               gsize text_len, const char *file, GError **error)
{
    if (text_len > HMAC_TEXT_MAX)
        return fail(error, "HMAC file %s.hmac too large", file);
    for (gsize i = 0; i < text_len; i++)
        if ((guchar)untrusted_text[i] >= 128 || !untrusted_text[i])
            return fail(error, "Invalid content of %s.hmac", file);
    /* the hex after the first '=' (the client splits the trimmed text on
     * '=' and takes its second field) */
    g_autofree char *text = g_strndup(untrusted_text, text_len);
    char **fields = g_strsplit(g_strstrip(text), "=", 3);
    g_autofree char *stored =
        fields[0] && fields[1] ? g_strdup(g_strstrip(fields[1])) : NULL;
    g_strfreev(fields);
    if (!stored)
        return fail(error, "ERROR: invalid hmac file content");
    g_autofree char *hex =
        hmac_hex(untrusted_algorithm, passphrase, data, len, error);
    if (!hex)
        return FALSE;
    if (strlen(stored) == strlen(hex) &&
        CRYPTO_memcmp(stored, hex, strlen(hex)) == 0)
        return TRUE;
    return fail(error,
                "ERROR: invalid hmac for file %s: %s. Is the passphrase "
                "correct?",
                file, hex);
}
