/* test-gzip: src/backup/gzip-write.c against gzip itself. What it writes
 * `gzip -d` reads back to the same bytes, fed in pieces of any size; text
 * is deflated as tightly as `gzip -6` makes it; random input goes into
 * stored blocks (it costs a copy, and grows by the blocks' headers only);
 * mixed input switches between the two; an empty stream is a valid
 * member; a sink's error stops the writer with that error. */
#include "gzip-write.h"
#include "qubes-error.h"
#include "util.h"

#include <string.h>

static char *dir;

static gboolean to_array(const guint8 *buf, gsize len, gpointer data,
                         GError **error)
{
    (void)error;
    g_byte_array_append(data, buf, (guint)len);
    return TRUE;
}

/* @data compressed by us, fed in pieces of sizes from @step (0: whole). */
static GByteArray *ours(const guint8 *data, gsize len, gsize step,
                        guint64 *stored)
{
    GByteArray *out = g_byte_array_new();
    QubesGzipWriter *z = qubes_gzip_writer_new(to_array, out);
    GError *err = NULL;
    for (gsize off = 0, k = 1; off < len; k++) {
        gsize n = step ? MIN(len - off, 1 + (k * step) % (3 * step)) : len;
        g_assert_true(qubes_gzip_writer_write(z, data + off, n, FALSE, &err));
        off += n;
    }
    g_assert_true(qubes_gzip_writer_write(z, NULL, 0, TRUE, &err));
    if (stored)
        *stored = qubes_gzip_writer_stored(z);
    qubes_gzip_writer_free(z);
    return out;
}

static void assert_gunzips_to(GByteArray *gz, const guint8 *data, gsize len)
{
    g_autoptr(GBytes) back = bt_pipe(dir, "gzip -dc", gz->data, gz->len);
    g_assert_cmpuint(g_bytes_get_size(back), ==, len);
    g_assert_true(memcmp(g_bytes_get_data(back, NULL), data, len) == 0);
}

static guint8 *text(gsize len)
{
    static const char line[] =
        "Qubes backup: the quick brown fox, 0123456789\n";
    guint8 *t = g_malloc(len);
    for (gsize i = 0; i < len; i++)
        t[i] = (guint8)line[(i + i / 997) % (sizeof line - 1)];
    return t;
}

static guint8 *noise(gsize len)
{
    guint8 *r = g_malloc(len);
    for (gsize i = 0; i < len; i += 4) {
        guint32 v = g_random_int();
        memcpy(r + i, &v, MIN(4, len - i));
    }
    return r;
}

static void test_text_as_tight_as_gzip(void)
{
    const gsize len = 3 << 20;
    g_autofree guint8 *t = text(len);
    guint64 stored = 1;
    g_autoptr(GByteArray) gz = ours(t, len, 70001, &stored);
    g_assert_cmpuint(stored, ==, 0);
    assert_gunzips_to(gz, t, len);
    g_autoptr(GBytes) theirs = bt_pipe(dir, "gzip -6 -n -c", t, len);
    /* the same deflate at the same level: within 1% of gzip's size */
    g_assert_cmpuint(gz->len, <=, g_bytes_get_size(theirs) * 101 / 100 + 64);
}

static void test_random_stored(void)
{
    const gsize len = 4 << 20;
    g_autofree guint8 *r = noise(len);
    guint64 stored = 0;
    g_autoptr(GByteArray) gz = ours(r, len, 1 << 20, &stored);
    g_assert_cmpuint(stored, ==, len);
    /* stored blocks: 5 bytes of header per 64 KiB at most, and gzip's 18 */
    g_assert_cmpuint(gz->len, <=, len + 5 * (len >> 16) + 64);
    assert_gunzips_to(gz, r, len);
}

static void test_mixed_switches(void)
{
    /* 64 KiB slices alternating, in pieces of odd sizes, and a text
     * slice holding a copy of the random one before (a match reaching
     * back into stored data) */
    const gsize slice = 64 << 10, len = 40 * slice;
    g_autofree guint8 *data = g_malloc(len);
    g_autofree guint8 *r = noise(len / 2);
    g_autofree guint8 *t = text(len / 2);
    for (gsize i = 0; i < 40; i++)
        memcpy(data + i * slice, (i % 2 ? t : r) + (i / 2) * slice, slice);
    memcpy(data + 3 * slice + 100, data + 2 * slice + 60000, 4000);
    for (gsize step = 1000; step <= 300000; step *= 17) {
        guint64 stored = 0;
        g_autoptr(GByteArray) gz = ours(data, len, step, &stored);
        g_assert_cmpuint(stored, >=, len / 3);
        g_assert_cmpuint(stored, <=, len * 2 / 3);
        g_assert_cmpuint(gz->len, <, len * 6 / 10);
        assert_gunzips_to(gz, data, len);
    }
}

static void test_empty(void)
{
    g_autoptr(GByteArray) gz = ours(NULL, 0, 0, NULL);
    assert_gunzips_to(gz, (const guint8 *)"", 0);
}

static gboolean refuse(const guint8 *buf, gsize len, gpointer data,
                       GError **error)
{
    (void)buf;
    (void)len;
    (void)data;
    g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_STORAGE_IO,
                        "the disk is full");
    return FALSE;
}

static void test_sink_error_stops(void)
{
    const gsize len = 1 << 20;
    g_autofree guint8 *r = noise(len);
    QubesGzipWriter *z = qubes_gzip_writer_new(refuse, NULL);
    g_autoptr(GError) err = NULL;
    g_assert_false(qubes_gzip_writer_write(z, r, len, TRUE, &err));
    g_assert_error(err, QUBES_ERROR, QUBES_ERROR_STORAGE_IO);
    g_assert_cmpstr(err->message, ==, "the disk is full");
    qubes_gzip_writer_free(z);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    dir = g_dir_make_tmp("test-gzip-XXXXXX", NULL);
    g_test_add_func("/gzip/text-as-tight-as-gzip", test_text_as_tight_as_gzip);
    g_test_add_func("/gzip/random-stored", test_random_stored);
    g_test_add_func("/gzip/mixed-switches", test_mixed_switches);
    g_test_add_func("/gzip/empty", test_empty);
    g_test_add_func("/gzip/sink-error-stops", test_sink_error_stops);
    return bt_finish(g_test_run(), dir);
}
