/* scrypt-file.h: the scrypt tool's encrypted file format, in process.
 *
 * Qubes' backup format 4 encrypts each chunk and the backup header with
 * the `scrypt` tool (`scrypt enc`); this writes and reads the same bytes
 * with OpenSSL's libcrypto, no process and no pty:
 *
 *   offset  size  what
 *   0       6     "scrypt"
 *   6       1     version, 0
 *   7       1     log2 N
 *   8       4     r, big-endian
 *   12      4     p, big-endian
 *   16      32    salt
 *   48      16    the first 16 bytes of SHA-256 of bytes 0..47
 *   64      32    HMAC-SHA256 of bytes 0..63 under the MAC key
 *   96      n     the data, AES-256-CTR under the cipher key (counter
 *                 from 0, big-endian)
 *   96+n    32    HMAC-SHA256 of bytes 0..95+n under the MAC key
 *
 * where scrypt(passphrase, salt, N, r, p) gives 64 bytes: the cipher key,
 * then the MAC key (the layout of the tool's lib/scryptenc/scryptenc.c).
 *
 * The key derivation is the slow step, on purpose; it is separate
 * (qubes_scrypt_derive) so that a writer can derive the keys of the next
 * chunks on other cores while it compresses. The cipher streams: a chunk
 * never needs to be in memory whole.
 *
 * Reading: the header is untrusted. Its parameters are checked against
 * limits before any work (log2 N 1 to 30, r*p below 2^30, the memory
 * 128*r*(N+p) within QUBES_SCRYPT_MAX_MEMORY, the work N*r*p within
 * QUBES_SCRYPT_MAX_WORK) and its checksum and MAC are
 * verified before a byte of data is decrypted. Errors are QubesException
 * (QUBES_ERROR_EXCEPTION), as the Qubes client reports a backup it cannot
 * read; the caller names the file. Decrypted data must not be trusted
 * until qubes_scrypt_dec_finish() has checked the MAC.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define QUBES_SCRYPT_HEADER 96
#define QUBES_SCRYPT_MAC 32
#define QUBES_SCRYPT_SALT 32
#define QUBES_SCRYPT_KEY 64
/* The cipher and the MAC go over data this much at a time (the piece
 * stays in the cache between them); a writer hands pieces of this size
 * on for the same reason. */
#define QUBES_SCRYPT_PIECE ((gsize)256 << 10)
/* The most memory a file's parameters may make the derivation take. */
#define QUBES_SCRYPT_MAX_MEMORY ((guint64)2 << 30)
/* The most work (N*r*p) they may ask: 16 times the scrypt tool's choice
 * here (2^22, about a second), room for a faster machine's calibration. */
#define QUBES_SCRYPT_MAX_WORK ((guint64)1 << 26)

typedef struct {
    guint8 log_n;
    guint32 r;
    guint32 p;
} QubesScryptParams;

/* The parameters the scrypt tool's own calibration picks for `enc` on
 * this machine class (2 cores: log2 N 19, r 8, p 1; 512 MiB), the least
 * a backup of ours uses. */
#define QUBES_SCRYPT_PARAMS_DEFAULT                                            \
    {                                                                          \
        .log_n = 19, .r = 8, .p = 1                                            \
    }

/* Whether @params are within the limits above; FALSE with @error (a
 * QubesException naming them) otherwise. */
gboolean qubes_scrypt_params_check(const QubesScryptParams *params,
                                   GError **error);

/* Readies libcrypto for this process, once: no exit handler (a
 * derivation may outlive main). Every function here calls it before
 * using libcrypto. */
void qubes_scrypt_init(void);

/* scrypt(@passphrase, @salt, @params) into @key (64 bytes). Slow. */
gboolean qubes_scrypt_derive(const char *passphrase, gsize passphrase_len,
                             const guint8 salt[QUBES_SCRYPT_SALT],
                             const QubesScryptParams *params,
                             guint8 key[QUBES_SCRYPT_KEY], GError **error);

/* Two derivations of the same @params at once (scrypt-kdf.h's
 * qubes_scrypt_kdf2, on this thread): the keys of @passphrase[0] and [1]
 * under @salt[0] and [1] into @key[0] and [1]. */
gboolean qubes_scrypt_derive2(const char *const passphrase[2],
                              const guint8 *const salt[2],
                              const QubesScryptParams *params,
                              guint8 *const key[2], GError **error);

/* Fills @salt from the system's random source. */
gboolean qubes_scrypt_salt(guint8 salt[QUBES_SCRYPT_SALT], GError **error);

typedef struct _QubesScryptEnc QubesScryptEnc;

/* Starts a file under @key (from qubes_scrypt_derive with @salt and
 * @params); @header gets its first 96 bytes. */
QubesScryptEnc *qubes_scrypt_enc_new(const guint8 key[QUBES_SCRYPT_KEY],
                                     const guint8 salt[QUBES_SCRYPT_SALT],
                                     const QubesScryptParams *params,
                                     guint8 header[QUBES_SCRYPT_HEADER]);
/* Encrypts @len bytes of @in into @out (the same length; may be @in). */
void qubes_scrypt_enc_update(QubesScryptEnc *enc, const guint8 *in, guint8 *out,
                             gsize len);
/* The file's last 32 bytes; frees @enc. */
void qubes_scrypt_enc_finish(QubesScryptEnc *enc, guint8 mac[QUBES_SCRYPT_MAC]);
void qubes_scrypt_enc_free(QubesScryptEnc *enc);

/* The parameters and salt of the header @untrusted_header (96 bytes),
 * checked against the limits; nothing else is verified yet. */
gboolean qubes_scrypt_header_parse(const guint8 *untrusted_header,
                                   QubesScryptParams *params,
                                   guint8 salt[QUBES_SCRYPT_SALT],
                                   GError **error);

typedef struct _QubesScryptDec QubesScryptDec;

/* Starts reading a file whose header is @untrusted_header under @key
 * (derived from the header's own salt and parameters): NULL when the
 * header's checksum or MAC does not match (a changed header, or a wrong
 * passphrase: the message says which). */
QubesScryptDec *qubes_scrypt_dec_new(const guint8 *untrusted_header,
                                     const guint8 key[QUBES_SCRYPT_KEY],
                                     GError **error);
/* Decrypts @len bytes (not yet authenticated). */
void qubes_scrypt_dec_update(QubesScryptDec *dec, const guint8 *in, guint8 *out,
                             gsize len);
/* Checks the file's last 32 bytes @untrusted_mac; frees @dec. FALSE
 * when they do not match (a changed byte, a cut or a reordered file). */
gboolean qubes_scrypt_dec_finish(QubesScryptDec *dec,
                                 const guint8 *untrusted_mac, GError **error);
void qubes_scrypt_dec_free(QubesScryptDec *dec);

/* The whole scrypt file @untrusted (@len bytes) under @passphrase,
 * decrypted and authenticated: a new array, or NULL with @error
 * "failed to decrypt @what: WHY". */
GByteArray *qubes_scrypt_decrypt(const guint8 *untrusted, gsize len,
                                 const char *passphrase, const char *what,
                                 GError **error);

/* The whole scrypt file @untrusted (@len bytes) under @key, derived
 * already from its own header (its salt and parameters), decrypted in
 * place and authenticated: its plain data is then the @len - 128 bytes
 * from @untrusted + QUBES_SCRYPT_HEADER. FALSE with @error "failed to
 * decrypt @what: WHY" (the buffer then holds nothing to use). */
gboolean qubes_scrypt_open_keyed(guint8 *untrusted, gsize len,
                                 const guint8 key[QUBES_SCRYPT_KEY],
                                 const char *what, GError **error);

G_END_DECLS
