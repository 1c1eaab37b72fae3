/* scrypt-file.c: the scrypt tool's file format with libcrypto (see
 * scrypt-file.h for the layout). */
#include "scrypt-file.h"

#include "qubes-error.h"
#include "scrypt-kdf.h"

#include <errno.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <string.h>

struct _QubesScryptEnc {
    EVP_CIPHER_CTX *cipher;
    EVP_MAC_CTX *mac;
};

struct _QubesScryptDec {
    EVP_CIPHER_CTX *cipher;
    EVP_MAC_CTX *mac;
};

gboolean qubes_scrypt_params_check(const QubesScryptParams *params,
                                   GError **error)
{
    gboolean shape = params->log_n >= 1 && params->log_n <= 30 &&
                     params->r > 0 && params->r <= (1u << 24) &&
                     params->p > 0 &&
                     (guint64)params->r * params->p < (1u << 30);
    /* V (128*r*N) and B (128*r*p), as libcrypto counts its maxmem; the
     * work, N*r*p blocks mixed twice */
    guint64 mem = shape ? ((guint64)128 * params->r << params->log_n) +
                              (guint64)128 * params->r * params->p
                        : 0;
    guint64 work = shape ? (guint64)params->r * params->p << params->log_n : 0;
    if (!shape || mem > QUBES_SCRYPT_MAX_MEMORY ||
        work > QUBES_SCRYPT_MAX_WORK) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                    "scrypt parameters out of bounds (log2 N %u, r %u, p %u: "
                    "at most log2 N 30, r*p below 2^30, N*r*p 2^%d, "
                    "%" G_GUINT64_FORMAT " MiB of memory)",
                    params->log_n, params->r, params->p,
                    g_bit_nth_msf(QUBES_SCRYPT_MAX_WORK, -1),
                    QUBES_SCRYPT_MAX_MEMORY >> 20);
        return FALSE;
    }
    return TRUE;
}

void qubes_scrypt_init(void)
{
    /* A derivation may still run on a pool's thread when
     * the process exits (qubes_key_ahead_free need not wait for it):
     * OpenSSL's exit handler would free what that thread uses, so it is
     * turned off (the process is going; nothing needs cleaning). */
    static gsize once;
    if (g_once_init_enter(&once)) {
        OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL);
        g_once_init_leave(&once, 1);
    }
}

static gboolean crypto_failed(GError **error, const char *what)
{
    g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                "%s failed in libcrypto", what);
    return FALSE;
}

/* A derivation that could not be made: its memory could not be had. */
static gboolean derive_failed(const QubesScryptParams *params, GError **error)
{
    return qubes_error_errno_code(
        error, QUBES_ERROR_EXCEPTION, errno,
        "scrypt: cannot derive a key with %" G_GUINT64_FORMAT " MiB",
        ((guint64)128 * params->r << params->log_n) >> 20);
}

gboolean qubes_scrypt_derive(const char *passphrase, gsize passphrase_len,
                             const guint8 salt[QUBES_SCRYPT_SALT],
                             const QubesScryptParams *params,
                             guint8 key[QUBES_SCRYPT_KEY], GError **error)
{
    if (!qubes_scrypt_params_check(params, error))
        return FALSE;
    qubes_scrypt_init();
    return qubes_scrypt_kdf((const guint8 *)passphrase, passphrase_len, salt,
                            QUBES_SCRYPT_SALT, params->log_n, params->r,
                            params->p, key, QUBES_SCRYPT_KEY) ||
           derive_failed(params, error);
}

gboolean qubes_scrypt_derive2(const char *const passphrase[2],
                              const guint8 *const salt[2],
                              const QubesScryptParams *params,
                              guint8 *const key[2], GError **error)
{
    if (!qubes_scrypt_params_check(params, error))
        return FALSE;
    qubes_scrypt_init();
    QubesScryptInput in[2];
    for (int k = 0; k < 2; k++)
        in[k] = (QubesScryptInput){(const guint8 *)passphrase[k],
                                   strlen(passphrase[k]),
                                   salt[k],
                                   QUBES_SCRYPT_SALT,
                                   key[k],
                                   QUBES_SCRYPT_KEY};
    return qubes_scrypt_kdf2(in, params->log_n, params->r, params->p,
                             QUBES_SCRYPT_IMPL_BEST) ||
           derive_failed(params, error);
}

gboolean qubes_scrypt_salt(guint8 salt[QUBES_SCRYPT_SALT], GError **error)
{
    qubes_scrypt_init();
    return RAND_bytes(salt, QUBES_SCRYPT_SALT) == 1 ||
           crypto_failed(error, "RAND_bytes");
}

/* AES-256-CTR under the first half of @key, counter from 0. */
static EVP_CIPHER_CTX *cipher_new(const guint8 key[QUBES_SCRYPT_KEY],
                                  gboolean encrypt)
{
    qubes_scrypt_init();
    static const guint8 iv[16];
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    if (!c || EVP_CipherInit_ex(c, EVP_aes_256_ctr(), NULL, key, iv,
                                encrypt ? 1 : 0) != 1)
        g_error("AES-256-CTR is not available in libcrypto");
    return c;
}

/* HMAC-SHA256 under the second half of @key. */
static EVP_MAC_CTX *mac_new(const guint8 key[QUBES_SCRYPT_KEY])
{
    qubes_scrypt_init();
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *m = mac ? EVP_MAC_CTX_new(mac) : NULL;
    EVP_MAC_free(mac);
    OSSL_PARAM ps[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    if (!m || EVP_MAC_init(m, key + 32, 32, ps) != 1)
        g_error("HMAC-SHA256 is not available in libcrypto");
    return m;
}

static void mac_final(EVP_MAC_CTX *m, guint8 out[32])
{
    size_t len = 0;
    if (EVP_MAC_final(m, out, &len, 32) != 1 || len != 32)
        g_error("HMAC-SHA256 failed in libcrypto");
}

/* The first 64 bytes of the header for @params and @salt. */
static void header_start(const QubesScryptParams *params,
                         const guint8 salt[QUBES_SCRYPT_SALT], guint8 h[64])
{
    memcpy(h, "scrypt", 6);
    h[6] = 0;
    h[7] = params->log_n;
    for (int i = 0; i < 4; i++) {
        h[8 + i] = (guint8)(params->r >> (24 - 8 * i));
        h[12 + i] = (guint8)(params->p >> (24 - 8 * i));
    }
    memcpy(h + 16, salt, QUBES_SCRYPT_SALT);
    guint8 sum[32];
    gsize len = sizeof sum;
    GChecksum *c = g_checksum_new(G_CHECKSUM_SHA256);
    g_checksum_update(c, h, 48);
    g_checksum_get_digest(c, sum, &len);
    g_checksum_free(c);
    memcpy(h + 48, sum, 16);
}

QubesScryptEnc *qubes_scrypt_enc_new(const guint8 key[QUBES_SCRYPT_KEY],
                                     const guint8 salt[QUBES_SCRYPT_SALT],
                                     const QubesScryptParams *params,
                                     guint8 header[QUBES_SCRYPT_HEADER])
{
    QubesScryptEnc *enc = g_new0(QubesScryptEnc, 1);
    header_start(params, salt, header);
    EVP_MAC_CTX *hm = mac_new(key);
    EVP_MAC_update(hm, header, 64);
    mac_final(hm, header + 64);
    EVP_MAC_CTX_free(hm);
    enc->cipher = cipher_new(key, TRUE);
    enc->mac = mac_new(key);
    EVP_MAC_update(enc->mac, header, QUBES_SCRYPT_HEADER);
    return enc;
}

/* EVP's lengths are ints: large buffers go in pieces. */
static void cipher_run(EVP_CIPHER_CTX *c, const guint8 *in, guint8 *out,
                       gsize len)
{
    while (len) {
        int n = (int)MIN(len, (gsize)1 << 30), outl = 0;
        if (EVP_CipherUpdate(c, out, &outl, in, n) != 1 || outl != n)
            g_error("AES-256-CTR failed in libcrypto");
        in += n;
        out += n;
        len -= (gsize)n;
    }
}

void qubes_scrypt_enc_update(QubesScryptEnc *enc, const guint8 *in, guint8 *out,
                             gsize len)
{
    for (gsize off = 0; off < len; off += QUBES_SCRYPT_PIECE) {
        gsize n = MIN(QUBES_SCRYPT_PIECE, len - off);
        cipher_run(enc->cipher, in + off, out + off, n);
        EVP_MAC_update(enc->mac, out + off, n);
    }
}

void qubes_scrypt_enc_finish(QubesScryptEnc *enc, guint8 mac[QUBES_SCRYPT_MAC])
{
    mac_final(enc->mac, mac);
    qubes_scrypt_enc_free(enc);
}

void qubes_scrypt_enc_free(QubesScryptEnc *enc)
{
    if (!enc)
        return;
    EVP_CIPHER_CTX_free(enc->cipher);
    EVP_MAC_CTX_free(enc->mac);
    g_free(enc);
}

gboolean qubes_scrypt_header_parse(const guint8 *untrusted_header,
                                   QubesScryptParams *params,
                                   guint8 salt[QUBES_SCRYPT_SALT],
                                   GError **error)
{
    const guint8 *h = untrusted_header;
    if (memcmp(h, "scrypt", 6) != 0 || h[6] != 0) {
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                            "not a file of the scrypt tool's format "
                            "(version 0)");
        return FALSE;
    }
    params->log_n = h[7];
    params->r =
        (guint32)h[8] << 24 | (guint32)h[9] << 16 | (guint32)h[10] << 8 | h[11];
    params->p = (guint32)h[12] << 24 | (guint32)h[13] << 16 |
                (guint32)h[14] << 8 | h[15];
    if (!qubes_scrypt_params_check(params, error))
        return FALSE;
    memcpy(salt, h + 16, QUBES_SCRYPT_SALT);
    guint8 again[64];
    header_start(params, salt, again);
    if (CRYPTO_memcmp(again + 48, h + 48, 16) != 0) {
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                            "the scrypt header's checksum does not match "
                            "(a changed header)");
        return FALSE;
    }
    return TRUE;
}

QubesScryptDec *qubes_scrypt_dec_new(const guint8 *untrusted_header,
                                     const guint8 key[QUBES_SCRYPT_KEY],
                                     GError **error)
{
    guint8 mac[32];
    EVP_MAC_CTX *hm = mac_new(key);
    EVP_MAC_update(hm, untrusted_header, 64);
    mac_final(hm, mac);
    EVP_MAC_CTX_free(hm);
    if (CRYPTO_memcmp(mac, untrusted_header + 64, 32) != 0) {
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                            "wrong passphrase (the scrypt header's MAC does "
                            "not match)");
        return NULL;
    }
    QubesScryptDec *dec = g_new0(QubesScryptDec, 1);
    dec->cipher = cipher_new(key, FALSE);
    dec->mac = mac_new(key);
    EVP_MAC_update(dec->mac, untrusted_header, QUBES_SCRYPT_HEADER);
    return dec;
}

void qubes_scrypt_dec_update(QubesScryptDec *dec, const guint8 *in, guint8 *out,
                             gsize len)
{
    /* a piece at a time: the MAC and the cipher read it from the cache */
    for (gsize off = 0; off < len; off += QUBES_SCRYPT_PIECE) {
        gsize n = MIN(QUBES_SCRYPT_PIECE, len - off);
        EVP_MAC_update(dec->mac, in + off, n);
        cipher_run(dec->cipher, in + off, out + off, n);
    }
}

gboolean qubes_scrypt_dec_finish(QubesScryptDec *dec,
                                 const guint8 *untrusted_mac, GError **error)
{
    guint8 mac[32];
    mac_final(dec->mac, mac);
    qubes_scrypt_dec_free(dec);
    if (CRYPTO_memcmp(mac, untrusted_mac, 32) != 0) {
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                            "the scrypt file's MAC does not match (a changed, "
                            "cut or reordered file)");
        return FALSE;
    }
    return TRUE;
}

void qubes_scrypt_dec_free(QubesScryptDec *dec)
{
    if (!dec)
        return;
    EVP_CIPHER_CTX_free(dec->cipher);
    EVP_MAC_CTX_free(dec->mac);
    g_free(dec);
}

/* The scrypt file @untrusted (@len bytes) under @key, its plain data
 * into @out (@len - 128 bytes; may be @untrusted + QUBES_SCRYPT_HEADER),
 * authenticated. */
static gboolean open_to(const guint8 *untrusted, gsize len,
                        const guint8 key[QUBES_SCRYPT_KEY], guint8 *out,
                        const char *what, GError **error)
{
    QubesScryptDec *dec = qubes_scrypt_dec_new(untrusted, key, error);
    if (dec) {
        qubes_scrypt_dec_update(dec, untrusted + QUBES_SCRYPT_HEADER, out,
                                len - QUBES_SCRYPT_HEADER - QUBES_SCRYPT_MAC);
        if (qubes_scrypt_dec_finish(dec, untrusted + len - QUBES_SCRYPT_MAC,
                                    error))
            return TRUE;
    }
    g_prefix_error(error, "failed to decrypt %s: ", what);
    return FALSE;
}

static gboolean cut_short(gsize len, const char *what, GError **error)
{
    if (len >= QUBES_SCRYPT_HEADER + QUBES_SCRYPT_MAC)
        return FALSE;
    g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                "failed to decrypt %s: it is cut short", what);
    return TRUE;
}

gboolean qubes_scrypt_open_keyed(guint8 *untrusted, gsize len,
                                 const guint8 key[QUBES_SCRYPT_KEY],
                                 const char *what, GError **error)
{
    return !cut_short(len, what, error) &&
           open_to(untrusted, len, key, untrusted + QUBES_SCRYPT_HEADER, what,
                   error);
}

GByteArray *qubes_scrypt_decrypt(const guint8 *untrusted, gsize len,
                                 const char *passphrase, const char *what,
                                 GError **error)
{
    QubesScryptParams params;
    guint8 salt[QUBES_SCRYPT_SALT], key[QUBES_SCRYPT_KEY];
    if (cut_short(len, what, error))
        return NULL;
    if (!qubes_scrypt_header_parse(untrusted, &params, salt, error) ||
        !qubes_scrypt_derive(passphrase, strlen(passphrase), salt, &params, key,
                             error)) {
        g_prefix_error(error, "failed to decrypt %s: ", what);
        return NULL;
    }
    GByteArray *out = g_byte_array_sized_new((guint)len);
    g_byte_array_set_size(
        out, (guint)(len - QUBES_SCRYPT_HEADER - QUBES_SCRYPT_MAC));
    gboolean ok = open_to(untrusted, len, key, out->data, what, error);
    memset(key, 0, sizeof key);
    if (!ok)
        g_clear_pointer(&out, g_byte_array_unref);
    return out;
}
