/* openssl-enc.h: the crypto of Qubes backups before format 4 (Qubes R3,
 * format 3), with libcrypto, no `openssl` process.
 *
 * In those backups each file is one stream, `openssl enc -e -CIPHER -md
 * MD5 -pass pass:PASSPHRASE` of its compressed tar, cut into 100 MiB
 * chunks `NAME.000`, `NAME.001`, ...; beside each chunk, `NAME.NNN.hmac`
 * holds what `openssl dgst -ALGORITHM -hmac PASSPHRASE` prints for it
 * ("HMAC-SHA512(stdin)= 3f7a..." or "(stdin)= 3f7a..."). The Qubes client
 * checks a chunk's HMAC before it decrypts anything of it, and decrypts a
 * file's chunks as one stream (qubesadmin/backup/restore.py).
 *
 * The stream: "Salted__", an 8-byte salt, then the cipher text; the key
 * and IV are EVP_BytesToKey's with MD5, one round (what `-md MD5` asks
 * for). CIPHER and ALGORITHM come from the backup's header: untrusted,
 * taken only when libcrypto knows them (and a cipher only when it is not
 * an AEAD mode, which `openssl enc` refuses too).
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* A stream being decrypted. */
typedef struct _QubesEncReader QubesEncReader;

/* A decryption of a stream under @untrusted_cipher (an `openssl enc`
 * cipher name: "aes-256-cbc") and @passphrase. NULL with a
 * QubesException naming the cipher when libcrypto has no such cipher. */
QubesEncReader *qubes_enc_reader_new(const char *untrusted_cipher,
                                     const char *passphrase, GError **error);
/* Decrypts the next @len bytes of the stream (any split: the salt may
 * come in pieces), appending the plain text to @out. FALSE with a
 * QubesException naming @file when the stream does not begin with
 * "Salted__". */
gboolean qubes_enc_reader_update(QubesEncReader *r, const guint8 *in, gsize len,
                                 GByteArray *out, const char *file,
                                 GError **error);
/* The stream ended: the last block, its padding checked. FALSE with a
 * QubesException naming @file for a stream cut short or whose padding is
 * wrong (a wrong passphrase, mostly). */
gboolean qubes_enc_reader_finish(QubesEncReader *r, GByteArray *out,
                                 const char *file, GError **error);
void qubes_enc_reader_free(QubesEncReader *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QubesEncReader, qubes_enc_reader_free)

/* Checks the `.hmac` file's text @untrusted_text (@text_len bytes) for
 * @data (@len bytes, the chunk @file) under @untrusted_algorithm (an
 * `openssl dgst` digest name: "SHA512") and @passphrase, as the client
 * does: ASCII only, at most 4096 bytes, the hex after the first "=",
 * spaces trimmed, equal to the lower-case hex of the HMAC. FALSE with the
 * client's QubesException otherwise ("ERROR: invalid hmac for file FILE:
 * HEX. Is the passphrase correct?"). */
gboolean qubes_hmac_text_check(const char *untrusted_algorithm,
                               const char *passphrase, const guint8 *data,
                               gsize len, const char *untrusted_text,
                               gsize text_len, const char *file,
                               GError **error);

/* A `.hmac` file's text for @data as `openssl dgst -ALGORITHM -hmac
 * PASSPHRASE` of OpenSSL 1.0 printed it ("(stdin)= HEX\n", new), or NULL
 * with a QubesException when libcrypto has no such digest (for tests). */
char *qubes_hmac_text(const char *untrusted_algorithm, const char *passphrase,
                      const guint8 *data, gsize len, GError **error);

G_END_DECLS
