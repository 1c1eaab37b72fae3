/* scrypt-kdf.h: the scrypt key derivation function (RFC 7914), with
 * libcrypto's PBKDF2-HMAC-SHA256 around a ROMix of our own whose working
 * memory comes from kdf-memory.h.
 *
 * Why not libcrypto's EVP scrypt: it allocates and frees its 128*r*N bytes
 * on every call, and on this machine class the page faults and zeroing
 * of 512 MiB are half of a derivation at the backup's cost; its allocator
 * can only be replaced before the process's first libcrypto allocation,
 * which in qubesd happens in libssh's constructor (through libvirt). Ours
 * reuses a kept huge-page block: 1.2 s a derivation here against 2.7 s.
 * The result is scrypt's, bit for bit: test-scrypt checks RFC 7914's
 * vectors and compares with libcrypto's EVP scrypt on many parameters.
 *
 * Like any scrypt, the memory walk depends on the data (that is the
 * design); nothing here branches on the passphrase otherwise.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* scrypt(@pass, @salt, N = 2^@log_n, @r, @p) into @out (@out_len bytes).
 * The caller bounds the parameters (qubes_scrypt_params_check): 1 <=
 * log_n <= 30, r*p below 2^30, 128*r*N bytes it agrees to map. FALSE with
 * errno set when the memory cannot be had. Thread-safe. */
gboolean qubes_scrypt_kdf(const guint8 *pass, gsize pass_len,
                          const guint8 *salt, gsize salt_len, guint log_n,
                          guint32 r, guint32 p, guint8 *out, gsize out_len);

G_END_DECLS
