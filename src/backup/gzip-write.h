/* gzip-write.h: a gzip stream (RFC 1952, one member) written with zlib,
 * as `gzip` writes it at its default level 6, except that data which
 * looks incompressible is stored.
 *
 * A backup's volumes hold much data that deflate cannot shrink (media,
 * packages, encrypted or already compressed files). zlib spends as long
 * failing to compress such data as compressing text (about 30 MB/s here,
 * against 1 GB/s for a copy), and then stores it anyway. So each 64 KiB
 * of input is first looked at: when its bytes are as evenly spread as
 * random data's (a chi-square against the uniform distribution below
 * QUBES_GZIP_RANDOM_CHI2), it goes into stored blocks; otherwise it is
 * deflated at level 6. Switching between the two ends a deflate block
 * (deflateParams); matches may still reach back into stored data.
 *
 * The output is an ordinary gzip member that any gunzip reads. What can
 * be lost: a run that looks random byte by byte but repeats within
 * deflate's 32 KiB window (the same random page twice in a row) is
 * stored where level 6 would have found the repeat. Not thread-safe: one
 * writer per stream.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Below this, 64 KiB of input looks random: uniform bytes give 255 on
 * average (standard deviation 23); text gives hundreds of thousands. */
#define QUBES_GZIP_RANDOM_CHI2 400

typedef struct _QubesGzipWriter QubesGzipWriter;

/* Where the compressed bytes go; FALSE with @error stops the writer. */
typedef gboolean (*QubesGzipSink)(const guint8 *buf, gsize len, gpointer data,
                                  GError **error);

QubesGzipWriter *qubes_gzip_writer_new(QubesGzipSink out, gpointer data);
/* Compresses @len bytes of input; with @at_end, ends the member (its
 * last block, CRC and length). Errors: the sink's, or zlib's as a
 * QubesException naming it. */
gboolean qubes_gzip_writer_write(QubesGzipWriter *z, const guint8 *in,
                                 gsize len, gboolean at_end, GError **error);
/* Input bytes that went into stored blocks, of all taken (benchmarks). */
guint64 qubes_gzip_writer_stored(const QubesGzipWriter *z);
void qubes_gzip_writer_free(QubesGzipWriter *z);

G_END_DECLS
