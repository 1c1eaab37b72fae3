/* scrypt-kdf.h: the scrypt key derivation function (RFC 7914), with
 * libcrypto's PBKDF2-HMAC-SHA256 around a ROMix of our own whose working
 * memory comes from kdf-memory.h.
 *
 * Why not libcrypto's EVP scrypt: it allocates and frees its 128*r*N bytes
 * on every call, and on this machine class the page faults and zeroing
 * of 512 MiB are half of a derivation at the backup's cost; its allocator
 * can only be replaced before the process's first libcrypto allocation,
 * which in qubesd happens in libssh's constructor (through libvirt). Ours
 * reuses a kept huge-page block: 1.0 s a derivation here against 2.7 s.
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

/* One derivation's own input and output, for qubes_scrypt_kdf2. */
typedef struct {
    const guint8 *pass;
    gsize pass_len;
    const guint8 *salt;
    gsize salt_len;
    guint8 *out;
    gsize out_len;
} QubesScryptInput;

/* How the two derivations of qubes_scrypt_kdf2 mix: the best this CPU
 * has, or one named (tests compare them). */
typedef enum {
    QUBES_SCRYPT_IMPL_BEST,
    QUBES_SCRYPT_IMPL_SCALAR, /* one after the other, portable C */
    QUBES_SCRYPT_IMPL_SSE2,   /* x86-64: both at once */
    QUBES_SCRYPT_IMPL_AVX512, /* x86-64 with AVX-512VL: both at once */
} QubesScryptImpl;

/* Whether this build on this CPU has @impl. */
gboolean qubes_scrypt_impl_available(QubesScryptImpl impl);

/* Two derivations of the same cost at once, on this one thread: on
 * x86-64 their two Salsa20/8 chains interleave, about 1.5 times the keys
 * a core makes one after another here with AVX-512VL (1.3 s for two),
 * for twice the memory (2 * 128*r*N). The keys are qubes_scrypt_kdf's.
 * @impl: QUBES_SCRYPT_IMPL_BEST (an implementation this CPU lacks falls
 * back to SCALAR). FALSE with errno set as qubes_scrypt_kdf. */
gboolean qubes_scrypt_kdf2(const QubesScryptInput in[2], guint log_n, guint32 r,
                           guint32 p, QubesScryptImpl impl);

G_END_DECLS
