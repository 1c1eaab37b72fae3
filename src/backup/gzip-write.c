/* gzip-write.c: gzip with zlib, incompressible input stored (see
 * gzip-write.h). */
#include "gzip-write.h"

#include "qubes-error.h"

#include <string.h>
#include <zlib.h>

#define SLICE ((gsize)64 << 10)
#define OUT ((gsize)256 << 10)
#define LEVEL 6 /* gzip's default */

struct _QubesGzipWriter {
    z_stream z;
    QubesGzipSink out;
    gpointer data;
    int level; /* LEVEL or 0 (stored) */
    guint64 stored, taken;
    /* input that came in pieces shorter than a slice, gathered into one
     * (the test needs a slice's bytes to say much) */
    gsize staged;
    guint8 stage[SLICE];
    guint8 buf[OUT];
};

static gboolean zlib_failed(GError **error, const char *what, int rc)
{
    g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                "gzip: zlib's %s failed (%d)", what, rc);
    return FALSE;
}

QubesGzipWriter *qubes_gzip_writer_new(QubesGzipSink out, gpointer data)
{
    QubesGzipWriter *z = g_new0(QubesGzipWriter, 1);
    z->out = out;
    z->data = data;
    z->level = LEVEL;
    /* windowBits 15 + 16: a gzip header (mtime 0, no name), as gzip -n */
    if (deflateInit2(&z->z, LEVEL, Z_DEFLATED, 15 + 16, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK)
        g_error("gzip: zlib's deflateInit2 failed: out of memory");
    z->z.next_out = z->buf;
    z->z.avail_out = OUT;
    return z;
}

/* Hands the output so far to the sink. */
static gboolean drain(QubesGzipWriter *z, GError **error)
{
    gsize n = OUT - z->z.avail_out;
    z->z.next_out = z->buf;
    z->z.avail_out = OUT;
    return !n || z->out(z->buf, n, z->data, error);
}

/* Whether @len bytes look random: a chi-square of their byte counts
 * against the uniform distribution (gzip-write.h). */
static gboolean looks_random(const guint8 *p, gsize len)
{
    /* four tables, so that neighbouring equal bytes do not wait on one
     * another's increment */
    guint32 c[4][256] = {{0}};
    gsize i = 0;
    for (; i + 4 <= len; i += 4) {
        c[0][p[i]]++;
        c[1][p[i + 1]]++;
        c[2][p[i + 2]]++;
        c[3][p[i + 3]]++;
    }
    for (; i < len; i++)
        c[0][p[i]]++;
    guint64 sumsq = 0;
    for (int b = 0; b < 256; b++) {
        guint64 n = (guint64)c[0][b] + c[1][b] + c[2][b] + c[3][b];
        sumsq += n * n;
    }
    /* sum (n - E)^2 / E with E = len / 256 */
    guint64 chi2 = 256 * sumsq / len - len;
    return chi2 < QUBES_GZIP_RANDOM_CHI2;
}

static gboolean set_level(QubesGzipWriter *z, int level, GError **error)
{
    for (;;) {
        int rc = deflateParams(&z->z, level, Z_DEFAULT_STRATEGY);
        if (rc == Z_OK) {
            z->level = level;
            return TRUE;
        }
        /* the block before did not fit in the output: make room, again */
        if (rc != Z_BUF_ERROR || z->z.avail_out == OUT)
            return zlib_failed(error, "deflateParams", rc);
        if (!drain(z, error))
            return FALSE;
    }
}

static gboolean run(QubesGzipWriter *z, const guint8 *in, gsize len, int flush,
                    GError **error)
{
    z->z.next_in = (Bytef *)in;
    z->z.avail_in = (uInt)len;
    for (;;) {
        int rc = deflate(&z->z, flush);
        if (rc == Z_STREAM_ERROR ||
            (rc == Z_BUF_ERROR && flush == Z_FINISH && z->z.avail_out))
            return zlib_failed(error, "deflate", rc);
        if (z->z.avail_out == 0) {
            if (!drain(z, error))
                return FALSE;
            continue;
        }
        /* everything taken and, at the end, the member finished */
        if (z->z.avail_in == 0 && (flush != Z_FINISH || rc == Z_STREAM_END))
            return TRUE;
    }
}

/* A slice (at most SLICE bytes) at the level its bytes call for. */
static gboolean slice(QubesGzipWriter *z, const guint8 *in, gsize n,
                      GError **error)
{
    int level = looks_random(in, n) ? 0 : LEVEL;
    if (level != z->level && !set_level(z, level, error))
        return FALSE;
    if (level == 0)
        z->stored += n;
    z->taken += n;
    return run(z, in, n, Z_NO_FLUSH, error);
}

gboolean qubes_gzip_writer_write(QubesGzipWriter *z, const guint8 *in,
                                 gsize len, gboolean at_end, GError **error)
{
    while (len) {
        if (z->staged || len < SLICE) {
            gsize k = MIN(len, SLICE - z->staged);
            memcpy(z->stage + z->staged, in, k);
            z->staged += k;
            in += k;
            len -= k;
            if (z->staged == SLICE) {
                z->staged = 0;
                if (!slice(z, z->stage, SLICE, error))
                    return FALSE;
            }
            continue;
        }
        if (!slice(z, in, SLICE, error))
            return FALSE;
        in += SLICE;
        len -= SLICE;
    }
    if (!at_end)
        return TRUE;
    gsize n = z->staged;
    z->staged = 0;
    return (!n || slice(z, z->stage, n, error)) &&
           run(z, NULL, 0, Z_FINISH, error) && drain(z, error);
}

guint64 qubes_gzip_writer_stored(const QubesGzipWriter *z)
{
    return z->stored;
}

void qubes_gzip_writer_free(QubesGzipWriter *z)
{
    if (!z)
        return;
    deflateEnd(&z->z);
    g_free(z);
}
