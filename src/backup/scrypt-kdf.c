/* scrypt-kdf.c: scrypt, RFC 7914's steps (see scrypt-kdf.h). */
#include "scrypt-kdf.h"

#include "kdf-memory.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <string.h>

#define ROTL(a, b) (((a) << (b)) | ((a) >> (32 - (b))))

/* The mixing loops are left out of the sanitizers' instrumentation: they
 * run 2^22 blocks a derivation, six times slower instrumented, and their
 * bounds are the caller's (r and N, checked); test-scrypt checks their
 * result against RFC 7914 and libcrypto in every build. */
#define UNINSTRUMENTED __attribute__((no_sanitize("address", "undefined")))

/* Salsa20/8 core (RFC 7914, section 3) on one 64-byte block, in place. */
UNINSTRUMENTED static inline void salsa20_8(guint32 b[16])
{
    guint32 x[16];
    memcpy(x, b, sizeof x);
    for (int i = 0; i < 8; i += 2) {
        /* the columns */
        x[4] ^= ROTL(x[0] + x[12], 7);
        x[8] ^= ROTL(x[4] + x[0], 9);
        x[12] ^= ROTL(x[8] + x[4], 13);
        x[0] ^= ROTL(x[12] + x[8], 18);
        x[9] ^= ROTL(x[5] + x[1], 7);
        x[13] ^= ROTL(x[9] + x[5], 9);
        x[1] ^= ROTL(x[13] + x[9], 13);
        x[5] ^= ROTL(x[1] + x[13], 18);
        x[14] ^= ROTL(x[10] + x[6], 7);
        x[2] ^= ROTL(x[14] + x[10], 9);
        x[6] ^= ROTL(x[2] + x[14], 13);
        x[10] ^= ROTL(x[6] + x[2], 18);
        x[3] ^= ROTL(x[15] + x[11], 7);
        x[7] ^= ROTL(x[3] + x[15], 9);
        x[11] ^= ROTL(x[7] + x[3], 13);
        x[15] ^= ROTL(x[11] + x[7], 18);
        /* the rows */
        x[1] ^= ROTL(x[0] + x[3], 7);
        x[2] ^= ROTL(x[1] + x[0], 9);
        x[3] ^= ROTL(x[2] + x[1], 13);
        x[0] ^= ROTL(x[3] + x[2], 18);
        x[6] ^= ROTL(x[5] + x[4], 7);
        x[7] ^= ROTL(x[6] + x[5], 9);
        x[4] ^= ROTL(x[7] + x[6], 13);
        x[5] ^= ROTL(x[4] + x[7], 18);
        x[11] ^= ROTL(x[10] + x[9], 7);
        x[8] ^= ROTL(x[11] + x[10], 9);
        x[9] ^= ROTL(x[8] + x[11], 13);
        x[10] ^= ROTL(x[9] + x[8], 18);
        x[12] ^= ROTL(x[15] + x[14], 7);
        x[13] ^= ROTL(x[12] + x[15], 9);
        x[14] ^= ROTL(x[13] + x[12], 13);
        x[15] ^= ROTL(x[14] + x[13], 18);
    }
    for (int i = 0; i < 16; i++)
        b[i] += x[i];
}

/* @out = BlockMix(@in XOR @v) (RFC 7914, section 4; @v NULL: @in alone)
 * over 2*@r blocks of 16 words; the output's even blocks first, then
 * its odd ones. */
UNINSTRUMENTED static void block_mix(const guint32 *in, const guint32 *v,
                                     guint32 *out, gsize r)
{
    guint32 x[16];
    const gsize last = (2 * r - 1) * 16;
    for (int k = 0; k < 16; k++)
        x[k] = in[last + k] ^ (v ? v[last + k] : 0);
    for (gsize i = 0; i < 2 * r; i++) {
        const guint32 *b = in + i * 16;
        if (v)
            for (int k = 0; k < 16; k++)
                x[k] ^= b[k] ^ v[i * 16 + k];
        else
            for (int k = 0; k < 16; k++)
                x[k] ^= b[k];
        salsa20_8(x);
        memcpy(out + (i / 2 + (i & 1) * r) * 16, x, sizeof x);
    }
}

/* ROMix (RFC 7914, section 5) of the 128*@r bytes at @b, in place, with
 * @vmem (128*@r*@n bytes) and @xy (256*@r bytes). */
UNINSTRUMENTED static void ro_mix(guint8 *b, gsize r, guint64 n, guint32 *vmem,
                                  guint32 *xy)
{
    const gsize w = 32 * r; /* words in a 128*r-byte block */
    guint32 *x = xy, *y = xy + w;
    for (gsize k = 0; k < w; k++) {
        guint32 le;
        memcpy(&le, b + 4 * k, 4);
        x[k] = GUINT32_FROM_LE(le);
    }
    /* two steps a turn: x to y, then y back to x */
    for (guint64 i = 0; i < n; i += 2) {
        memcpy(vmem + i * w, x, 4 * w);
        block_mix(x, NULL, y, r);
        memcpy(vmem + (i + 1) * w, y, 4 * w);
        block_mix(y, NULL, x, r);
    }
    /* Integerify: the last block's first word, mod N (N <= 2^30) */
    for (guint64 i = 0; i < n; i += 2) {
        guint64 j = x[(2 * r - 1) * 16] & (n - 1);
        block_mix(x, vmem + j * w, y, r);
        j = y[(2 * r - 1) * 16] & (n - 1);
        block_mix(y, vmem + j * w, x, r);
    }
    for (gsize k = 0; k < w; k++) {
        guint32 le = GUINT32_TO_LE(x[k]);
        memcpy(b + 4 * k, &le, 4);
    }
}

/* ---- two at once ---- */

/* ROMix of two blocks at once (scrypt-mix2.inc), NULL where there is
 * none: one after the other then. */
typedef void (*RoMix2)(guint32 *, guint32 *, gsize, guint64, guint32 *,
                       guint32 *, guint32 *);

#if defined(__x86_64__)
#include <immintrin.h>

#define MIX2_CAT_(a, b) a##b
#define MIX2_CAT(a, b) MIX2_CAT_(a, b)

/* x86-64's baseline: SSE2, a rotation in three instructions */
#define MIX2_NAME ro_mix2_sse2
#define MIX2_ATTR
#define MIX2_ROT(x, n)                                                         \
    _mm_or_si128(_mm_slli_epi32((x), (n)), _mm_srli_epi32((x), 32 - (n)))
#include "scrypt-mix2.inc"
#undef MIX2_NAME
#undef MIX2_ATTR
#undef MIX2_ROT

/* AVX-512VL: the same in 128-bit vectors, a rotation in one */
#define MIX2_NAME ro_mix2_avx512
#define MIX2_ATTR __attribute__((target("avx512f,avx512vl")))
#define MIX2_ROT(x, n) _mm_rol_epi32((x), (n))
#include "scrypt-mix2.inc"
#undef MIX2_NAME
#undef MIX2_ATTR
#undef MIX2_ROT

/* The words of a 64-byte block in the vectors' diagonal order. */
static const guint8 diagonal[16] = {0, 5,  10, 15, 4,  9, 14, 3,
                                    8, 13, 2,  7,  12, 1, 6,  11};

static void to_diagonal(const guint8 *b, guint32 *x, gsize r)
{
    for (gsize blk = 0; blk < 2 * r; blk++)
        for (int k = 0; k < 16; k++) {
            guint32 le;
            memcpy(&le, b + 64 * blk + 4 * diagonal[k], 4);
            x[blk * 16 + k] = GUINT32_FROM_LE(le);
        }
}

static void from_diagonal(const guint32 *x, guint8 *b, gsize r)
{
    for (gsize blk = 0; blk < 2 * r; blk++)
        for (int k = 0; k < 16; k++) {
            guint32 le = GUINT32_TO_LE(x[blk * 16 + k]);
            memcpy(b + 64 * blk + 4 * diagonal[k], &le, 4);
        }
}

static RoMix2 ro_mix2_for(QubesScryptImpl impl)
{
    static gsize once;
    static gboolean avx512;
    if (g_once_init_enter(&once)) {
        __builtin_cpu_init();
        avx512 = __builtin_cpu_supports("avx512f") &&
                 __builtin_cpu_supports("avx512vl");
        g_once_init_leave(&once, 1);
    }
    switch (impl) {
    case QUBES_SCRYPT_IMPL_SCALAR:
        return NULL;
    case QUBES_SCRYPT_IMPL_SSE2:
        return ro_mix2_sse2;
    case QUBES_SCRYPT_IMPL_AVX512:
        return avx512 ? ro_mix2_avx512 : NULL;
    default:
        return avx512 ? ro_mix2_avx512 : ro_mix2_sse2;
    }
}
#else
static RoMix2 ro_mix2_for(QubesScryptImpl impl)
{
    (void)impl;
    return NULL;
}
#endif

gboolean qubes_scrypt_impl_available(QubesScryptImpl impl)
{
    return impl == QUBES_SCRYPT_IMPL_SCALAR || impl == QUBES_SCRYPT_IMPL_BEST ||
           ro_mix2_for(impl) != NULL;
}

/* scrypt of @count (1 or 2) inputs of the same cost: the two ROMix of a
 * block at once with @mix, else one after the other. */
static gboolean derive(const QubesScryptInput *in, guint count, guint log_n,
                       guint32 r, guint32 p, RoMix2 mix)
{
    g_return_val_if_fail(log_n >= 1 && log_n <= 30 && r && p &&
                             (guint64)r * p < ((guint64)1 << 30) &&
                             (count == 1 || count == 2),
                         FALSE);
    if (count < 2)
        mix = NULL;
    const guint64 n = (guint64)1 << log_n;
    const gsize blen = (gsize)128 * r * p, vlen = (gsize)(128 * r * n);
    const gsize xylen = (gsize)512 * r; /* ro_mix needs half of it */
    guint8 *b[2] = {NULL, NULL};
    guint32 *vmem[2] = {NULL, NULL}, *x[2] = {NULL, NULL};
    guint32 *xy = g_aligned_alloc(xylen, 1, 64);
    gboolean ok = TRUE;
    for (guint k = 0; k < count; k++) {
        b[k] = g_malloc(blen);
        x[k] = g_malloc(128 * (gsize)r);
        vmem[k] = qubes_kdf_memory_get(vlen);
        ok = ok && vmem[k];
    }
    int saved = errno; /* a mapping's failure */
    for (guint k = 0; ok && k < count; k++)
        ok = PKCS5_PBKDF2_HMAC((const char *)in[k].pass, (int)in[k].pass_len,
                               in[k].salt, (int)in[k].salt_len, 1, EVP_sha256(),
                               (int)blen, b[k]) == 1;
    for (guint32 i = 0; ok && i < p; i++) {
        gsize off = (gsize)128 * r * i;
        if (!mix) {
            for (guint k = 0; k < count; k++)
                ro_mix(b[k] + off, r, n, vmem[k], xy);
            continue;
        }
#if defined(__x86_64__)
        to_diagonal(b[0] + off, x[0], r);
        to_diagonal(b[1] + off, x[1], r);
        mix(x[0], x[1], r, n, vmem[0], vmem[1], xy);
        from_diagonal(x[0], b[0] + off, r);
        from_diagonal(x[1], b[1] + off, r);
#endif
    }
    for (guint k = 0; ok && k < count; k++)
        ok = PKCS5_PBKDF2_HMAC((const char *)in[k].pass, (int)in[k].pass_len,
                               b[k], (int)blen, 1, EVP_sha256(),
                               (int)in[k].out_len, in[k].out) == 1;
    gboolean mapped = vmem[0] && (count < 2 || vmem[1]);
    for (guint k = 0; k < count; k++) {
        qubes_kdf_memory_put(vmem[k], vlen);
        OPENSSL_cleanse(b[k], blen);
        OPENSSL_cleanse(x[k], 128 * (gsize)r);
        g_free(b[k]);
        g_free(x[k]);
    }
    OPENSSL_cleanse(xy, xylen);
    g_aligned_free(xy);
    errno = !mapped ? saved : ok ? 0 : EINVAL;
    return ok;
}

gboolean qubes_scrypt_kdf2(const QubesScryptInput in[2], guint log_n, guint32 r,
                           guint32 p, QubesScryptImpl impl)
{
    return derive(in, 2, log_n, r, p, ro_mix2_for(impl));
}

gboolean qubes_scrypt_kdf(const guint8 *pass, gsize pass_len,
                          const guint8 *salt, gsize salt_len, guint log_n,
                          guint32 r, guint32 p, guint8 *out, gsize out_len)
{
    const QubesScryptInput in = {pass, pass_len, salt, salt_len, out, out_len};
    return derive(&in, 1, log_n, r, p, NULL);
}
