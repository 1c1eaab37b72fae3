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

/* One quarter-round step: a ^= (b + c) <<< n. */
#define QSTEP(a, b, c, n) a ^= ROTL((b) + (c), n)

/* @x = Salsa20/8(@x ^ @t) (RFC 7914, section 3), on 64-byte blocks.
 *
 * The sixteen words are named locals, not an array, so that they stay in
 * registers: the four quarter-rounds of a column or a row are four
 * independent chains that the integer units run side by side. The four
 * double rounds are unrolled; the function is kept out of line (inlined
 * into block_mix, the compiler spills its words to the stack). A
 * derivation alone (log2 N 19, r 8) takes 1.0 s here this way, against
 * 1.3 s with the words in an array. */
UNINSTRUMENTED static __attribute__((noinline)) void
salsa20_8_xor(guint32 x[16], const guint32 t[16])
{
    guint32 x0 = x[0] ^ t[0], x1 = x[1] ^ t[1], x2 = x[2] ^ t[2];
    guint32 x3 = x[3] ^ t[3], x4 = x[4] ^ t[4], x5 = x[5] ^ t[5];
    guint32 x6 = x[6] ^ t[6], x7 = x[7] ^ t[7], x8 = x[8] ^ t[8];
    guint32 x9 = x[9] ^ t[9], x10 = x[10] ^ t[10], x11 = x[11] ^ t[11];
    guint32 x12 = x[12] ^ t[12], x13 = x[13] ^ t[13], x14 = x[14] ^ t[14];
    guint32 x15 = x[15] ^ t[15];
    const guint32 in[16] = {x0, x1, x2,  x3,  x4,  x5,  x6,  x7,
                            x8, x9, x10, x11, x12, x13, x14, x15};
#pragma GCC unroll 4
    for (int i = 0; i < 8; i += 2) {
        /* the columns */
        QSTEP(x4, x0, x12, 7), QSTEP(x9, x5, x1, 7);
        QSTEP(x14, x10, x6, 7), QSTEP(x3, x15, x11, 7);
        QSTEP(x8, x4, x0, 9), QSTEP(x13, x9, x5, 9);
        QSTEP(x2, x14, x10, 9), QSTEP(x7, x3, x15, 9);
        QSTEP(x12, x8, x4, 13), QSTEP(x1, x13, x9, 13);
        QSTEP(x6, x2, x14, 13), QSTEP(x11, x7, x3, 13);
        QSTEP(x0, x12, x8, 18), QSTEP(x5, x1, x13, 18);
        QSTEP(x10, x6, x2, 18), QSTEP(x15, x11, x7, 18);
        /* the rows */
        QSTEP(x1, x0, x3, 7), QSTEP(x6, x5, x4, 7);
        QSTEP(x11, x10, x9, 7), QSTEP(x12, x15, x14, 7);
        QSTEP(x2, x1, x0, 9), QSTEP(x7, x6, x5, 9);
        QSTEP(x8, x11, x10, 9), QSTEP(x13, x12, x15, 9);
        QSTEP(x3, x2, x1, 13), QSTEP(x4, x7, x6, 13);
        QSTEP(x9, x8, x11, 13), QSTEP(x14, x13, x12, 13);
        QSTEP(x0, x3, x2, 18), QSTEP(x5, x4, x7, 18);
        QSTEP(x10, x9, x8, 18), QSTEP(x15, x14, x13, 18);
    }
    x[0] = in[0] + x0, x[1] = in[1] + x1, x[2] = in[2] + x2;
    x[3] = in[3] + x3, x[4] = in[4] + x4, x[5] = in[5] + x5;
    x[6] = in[6] + x6, x[7] = in[7] + x7, x[8] = in[8] + x8;
    x[9] = in[9] + x9, x[10] = in[10] + x10, x[11] = in[11] + x11;
    x[12] = in[12] + x12, x[13] = in[13] + x13, x[14] = in[14] + x14;
    x[15] = in[15] + x15;
}

/* @out = BlockMix(@in XOR @v) (RFC 7914, section 4; @v NULL: @in alone)
 * over 2*@r blocks of 16 words; the output's even blocks first, then
 * its odd ones. */
UNINSTRUMENTED static void block_mix(const guint32 *in, const guint32 *v,
                                     guint32 *out, gsize r)
{
    guint32 x[16], t[16];
    const gsize last = (2 * r - 1) * 16;
    for (int k = 0; k < 16; k++)
        x[k] = in[last + k] ^ (v ? v[last + k] : 0);
    for (gsize i = 0; i < 2 * r; i++) {
        const guint32 *b = in + i * 16;
        if (v) {
            for (int k = 0; k < 16; k++)
                t[k] = b[k] ^ v[i * 16 + k];
            b = t;
        }
        salsa20_8_xor(x, b);
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
