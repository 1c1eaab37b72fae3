/* test-tar: the streaming tar reader (src/backup/tar-read.h) against GNU
 * tar, and on a backup made by Qubes.
 *
 * - GNU tar --sparse archives (old-GNU sparse members with extension
 *   blocks, long names, folders, links) and --format=posix ones (pax
 *   paths), fed in pieces of every size: every member reported with its
 *   type, and each file rebuilt from the data given at its offsets is
 *   byte for byte the original with its holes kept;
 * - a changed byte in any header, a cut at any block, a sparse map past
 *   the file's size or not adding up: refused, naming the member;
 * - ../shared/backup-fixtures/r4-plain.bin, made by the Qubes reference:
 *   its outer tar read, a volume's chunk decrypted (scrypt-file.h) and its
 *   inner sparse tar rebuilt to the sha256 that MANIFEST.json gives.
 *   Under CI=true missing fixtures or GNU tar are failures. */
#include "qubes-error.h"
#include "scrypt-file.h"
#include "tar-read.h"
#include "tar-write.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

static char *dir;
static const char *fixtures;

/* ---- rebuilding what a stream holds ---- */

typedef struct {
    char *into;      /* folder */
    GString *log;    /* "TYPE NAME [LINK] SIZE\n" per member */
    int fd;          /* the file being rebuilt */
    EVP_MD_CTX *sum; /* or its sha256, holes as zeros */
    guint64 summed;  /* bytes summed so far */
    guint64 size;
} Rebuild;

static const char type_char[] = {'f', 'd', 'l', 'h', 'o'};

static gboolean rb_begin(const QubesTarMember *m, gpointer data, GError **error)
{
    Rebuild *rb = data;
    g_string_append_printf(rb->log, "%c %s%s%s %" G_GUINT64_FORMAT "\n",
                           type_char[m->type], m->name, m->link ? " -> " : "",
                           m->link ? m->link : "", m->size);
    rb->size = m->size;
    rb->summed = 0;
    if (m->type != QUBES_TAR_FILE || rb->sum || !rb->into)
        return TRUE; /* summed, or only read */
    g_autofree char *flat = g_strdelimit(g_strdup(m->name), "/", '_');
    g_autofree char *path = g_build_filename(rb->into, flat, NULL);
    rb->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    g_assert_cmpint(rb->fd, >=, 0);
    g_assert_cmpint(ftruncate(rb->fd, (off_t)m->size), ==, 0);
    return TRUE;
}

static void sum_zeros(Rebuild *rb, guint64 upto)
{
    bt_sha256_zeros(rb->sum, &rb->summed, upto);
}

static gboolean rb_data(const QubesTarMember *m, guint64 offset,
                        const guint8 *buf, gsize len, gpointer data,
                        GError **error)
{
    Rebuild *rb = data;
    g_assert_cmpuint(offset + len, <=, m->size);
    if (rb->sum) {
        g_assert_cmpuint(offset, >=, rb->summed);
        sum_zeros(rb, offset);
        EVP_DigestUpdate(rb->sum, buf, len);
        rb->summed += len;
        return TRUE;
    }
    if (rb->fd < 0)
        return TRUE;
    g_assert_cmpint(pwrite(rb->fd, buf, len, (off_t)offset), ==, (ssize_t)len);
    return TRUE;
}

static gboolean rb_end(const QubesTarMember *m, gpointer data, GError **error)
{
    Rebuild *rb = data;
    if (rb->sum && m->type == QUBES_TAR_FILE)
        sum_zeros(rb, m->size);
    if (rb->fd >= 0)
        close(rb->fd);
    rb->fd = -1;
    return TRUE;
}

static const QubesTarCallbacks rb_callbacks = {rb_begin, rb_data, rb_end};

/* Feeds @data to a reader in pieces of @piece bytes (0: varied). */
static gboolean feed(Rebuild *rb, const guint8 *data, gsize len, gsize piece,
                     GError **error)
{
    QubesTarReader *r = qubes_tar_reader_new(&rb_callbacks, rb);
    gboolean ok = TRUE;
    for (gsize off = 0, i = 0; ok && off < len; i++) {
        gsize n = piece ? piece : 1 + (i * 2654435761u) % 9000;
        n = MIN(n, len - off);
        ok = qubes_tar_reader_feed(r, data + off, n, error);
        off += n;
    }
    ok = ok && qubes_tar_reader_finish(r, error);
    qubes_tar_reader_free(r);
    if (rb->fd >= 0) {
        close(rb->fd);
        rb->fd = -1;
    }
    return ok;
}

static char *path_of(const char *name)
{
    return g_build_filename(dir, name, NULL);
}

static guint64 allocated(const char *path)
{
    struct stat st;
    g_assert_cmpint(stat(path, &st), ==, 0);
    return (guint64)st.st_blocks * 512;
}

/* A file of @size with 30 pieces of data between holes (more than the 4
 * of a header's map and the 21 of one extension block). */
static void make_sparse(const char *path, guint64 size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(ftruncate(fd, (off_t)size), ==, 0);
    guint8 buf[8192];
    for (guint i = 0; i < 30; i++) {
        for (gsize k = 0; k < sizeof buf; k++)
            buf[k] = (guint8)(i * 7 + k);
        off_t at = (off_t)(size / 31 * (i + 1)) & ~(off_t)4095;
        g_assert_cmpint(pwrite(fd, buf, 1000 + i * 200, at), >, 0);
    }
    close(fd);
}

static gboolean have_tar(void)
{
    return bt_have("tar");
}

static void test_gnu_sparse_and_members(void)
{
    if (!have_tar()) {
        g_test_skip("no tar");
        return;
    }
    g_autofree char *src = path_of("src");
    g_autofree char *sub = path_of("src/a-folder");
    g_assert_cmpint(g_mkdir_with_parents(sub, 0755), ==, 0);
    g_autofree char *img = path_of("src/private.img");
    make_sparse(img, 16 << 20);
    g_autofree char *small = path_of("src/notes.txt");
    g_assert_true(g_file_set_contents(small, "notes\n", -1, NULL));
    g_autofree char *longname = g_strnfill(150, 'n');
    g_autofree char *lpath = g_build_filename(sub, longname, NULL);
    g_assert_true(g_file_set_contents(lpath, "long", -1, NULL));
    g_autofree char *slink = path_of("src/link");
    g_assert_cmpint(symlink("../elsewhere", slink), ==, 0);
    g_autofree char *hard = path_of("src/hard");
    g_assert_cmpint(link(small, hard), ==, 0);
    g_autofree char *tarf = path_of("a.tar");
    g_autofree char *cmd = g_strdup_printf(
        "tar --sparse -cf %s -C %s private.img notes.txt a-folder link hard",
        tarf, src);
    bt_run(cmd);
    g_autoptr(GBytes) t = bt_slurp(tarf);
    const gsize pieces[] = {1, 511, 512, 513, 4096, 0, 1 << 20};
    for (guint i = 0; i < G_N_ELEMENTS(pieces); i++) {
        g_autofree char *out = path_of("out");
        g_mkdir_with_parents(out, 0755);
        Rebuild rb = {.into = out, .log = g_string_new(NULL), .fd = -1};
        g_autoptr(GError) err = NULL;
        gsize len;
        const guint8 *d = g_bytes_get_data(t, &len);
        g_assert_true(feed(&rb, d, len, pieces[i], &err));
        g_assert_no_error(err);
        g_autofree char *want =
            g_strdup_printf("f private.img %d\nf notes.txt 6\nd a-folder/ 0\n"
                            "f a-folder/%s 4\nl link -> ../elsewhere 0\n"
                            "h hard -> notes.txt 0\n",
                            16 << 20, longname);
        g_assert_cmpstr(rb.log->str, ==, want);
        g_string_free(rb.log, TRUE);
        g_autofree char *back = g_build_filename(out, "private.img", NULL);
        g_autoptr(GBytes) a = bt_slurp(img);
        g_autoptr(GBytes) b = bt_slurp(back);
        g_assert_true(g_bytes_equal(a, b));
        /* the holes stay holes: 30 pieces of at most 7 KiB */
        g_assert_cmpuint(allocated(back), <=, 30 * 3 * 4096);
        g_autofree char *lback =
            g_strdup_printf("%s/a-folder_%s", out, longname);
        g_autoptr(GBytes) l = bt_slurp(lback);
        g_assert_cmpuint(g_bytes_get_size(l), ==, 4);
        g_autofree char *rm = g_strdup_printf("rm -rf %s", out);
        bt_run(rm);
    }
}

static void test_posix_pax_paths(void)
{
    if (!have_tar()) {
        g_test_skip("no tar");
        return;
    }
    g_autofree char *src = path_of("psrc");
    g_autofree char *deep =
        g_build_filename(src, "d1234567890123456789012345678901234567890",
                         "e1234567890123456789012345678901234567890",
                         "f1234567890123456789012345678901234567890", NULL);
    g_assert_cmpint(g_mkdir_with_parents(deep, 0755), ==, 0);
    g_autofree char *f =
        g_build_filename(deep, "g12345678901234567890.txt", NULL);
    g_assert_true(g_file_set_contents(f, "deep", -1, NULL));
    g_autofree char *tarf = path_of("p.tar");
    g_autofree char *cmd =
        g_strdup_printf("tar --format=posix -cf %s -C %s .", tarf, src);
    bt_run(cmd);
    g_autoptr(GBytes) t = bt_slurp(tarf);
    g_autofree char *out = path_of("pout");
    g_mkdir_with_parents(out, 0755);
    Rebuild rb = {.into = out, .log = g_string_new(NULL), .fd = -1};
    g_autoptr(GError) err = NULL;
    gsize len;
    const guint8 *d = g_bytes_get_data(t, &len);
    g_assert_true(feed(&rb, d, len, 0, &err));
    g_assert_nonnull(strstr(rb.log->str, "g12345678901234567890.txt 4\n"));
    g_assert_nonnull(strstr(rb.log->str,
                            "./d1234567890123456789012345678901234567890/"
                            "e1234567890123456789012345678901234567890/"
                            "f1234567890123456789012345678901234567890/"
                            "g12345678901234567890.txt"));
    g_string_free(rb.log, TRUE);
}

/* A checksum for a header block changed on purpose. */
static void fix_checksum(guint8 *b)
{
    memset(b + 148, ' ', 8);
    guint sum = 0;
    for (int i = 0; i < 512; i++)
        sum += b[i];
    g_snprintf((char *)b + 148, 8, "%06o", sum);
    b[155] = ' ';
}

static void expect_refused(const guint8 *d, gsize len, const char *says)
{
    Rebuild rb = {.log = g_string_new(NULL), .fd = -1};
    g_autoptr(GError) err = NULL;
    gboolean ok = feed(&rb, d, len, 0, &err);
    g_string_free(rb.log, TRUE);
    if (ok)
        g_error("accepted; expected '%s'", says);
    if (says && !strstr(err->message, says))
        g_error("'%s' does not say '%s'", err->message, says);
}

static gboolean all_blocks_zero_after(const guint8 *d, gsize cut, gsize len)
{
    for (gsize i = cut; i < len; i++)
        if (d[i])
            return FALSE;
    return TRUE;
}

static void test_hostile_streams_refused(void)
{
    if (!have_tar()) {
        g_test_skip("no tar");
        return;
    }
    g_autofree char *src = path_of("hsrc");
    g_mkdir_with_parents(src, 0755);
    g_autofree char *img = path_of("hsrc/private.img");
    make_sparse(img, 8 << 20);
    g_autofree char *tarf = path_of("h.tar");
    g_autofree char *cmd =
        g_strdup_printf("tar --sparse -cf %s -C %s private.img", tarf, src);
    bt_run(cmd);
    g_autoptr(GBytes) t = bt_slurp(tarf);
    gsize len;
    const guint8 *orig = g_bytes_get_data(t, &len);
    g_autofree guint8 *d = g_memdup2(orig, len);
    /* every byte of the header (a checksum mismatch) and of the sparse
     * extension blocks after it (no checksum there: refused as a bad
     * number or a map that no longer adds up, or, where the change keeps
     * it whole, read without harm) */
    for (gsize i = 0; i < 4 * 512; i++) {
        if (i % 512 >= 148 && i % 512 < 156)
            continue;
        memcpy(d, orig, len);
        d[i] ^= 0x01;
        Rebuild rb = {.log = g_string_new(NULL), .fd = -1};
        g_autoptr(GError) err = NULL;
        gboolean ok = feed(&rb, d, len, 0, &err);
        g_string_free(rb.log, TRUE);
        /* an extension block has no checksum: its numbers must then be
         * refused, or still make a map that adds up (a changed digit
         * where a NUL was is refused as a bad number) */
        if (i < 512)
            g_assert_false(ok);
    }
    /* a cut at every block boundary, and in the middle of one */
    for (gsize cut = 0; cut < len; cut += 256) {
        if (cut == 0 || all_blocks_zero_after(orig, cut, len))
            continue;
        expect_refused(orig, cut, "ends inside");
    }
    /* the file's size made smaller than its map */
    memcpy(d, orig, len);
    g_snprintf((char *)d + 483, 12, "%011o", 4096);
    fix_checksum(d);
    expect_refused(d, len, "past its size");
    /* a map that does not add up to the data */
    memcpy(d, orig, len);
    g_snprintf((char *)d + 124, 12, "%011o", 512);
    fix_checksum(d);
    expect_refused(d, len, "its data");
    /* a base-256 size past 2^63 */
    memcpy(d, orig, len);
    memset(d + 124, 0xff, 12);
    d[124] = 0x80 | 0x3f;
    fix_checksum(d);
    expect_refused(d, len, "bad number");
    /* not a tar header */
    memcpy(d, orig, len);
    memcpy(d + 257, "nostar", 6);
    expect_refused(d, len, "not a ustar");
    /* data in a folder */
    memcpy(d, orig, len);
    d[156] = '5';
    fix_checksum(d);
    expect_refused(d, len, "data in a member that holds none");
    /* an unknown member type */
    memcpy(d, orig, len);
    d[156] = 'V';
    fix_checksum(d);
    expect_refused(d, len, "unsupported member type");
}

/* ---- a backup made by Qubes ---- */

typedef struct {
    GHashTable *members; /* name -> GByteArray (small members only) */
    GByteArray *cur;
} Outer;

static gboolean outer_begin(const QubesTarMember *m, gpointer data,
                            GError **error)
{
    Outer *o = data;
    g_assert_cmpint(m->type, ==, QUBES_TAR_FILE);
    g_assert_null(m->sparse);
    o->cur = g_byte_array_new();
    g_hash_table_insert(o->members, g_strdup(m->name), o->cur);
    return TRUE;
}

static gboolean outer_data(const QubesTarMember *m, guint64 offset,
                           const guint8 *buf, gsize len, gpointer data,
                           GError **error)
{
    Outer *o = data;
    g_assert_cmpuint(offset, ==, o->cur->len);
    g_byte_array_append(o->cur, buf, (guint)len);
    return TRUE;
}

static const QubesTarCallbacks outer_callbacks = {outer_begin, outer_data,
                                                  NULL};

static GByteArray *decrypt(const GByteArray *f, const char *pass)
{
    GError *err = NULL;
    GByteArray *out = qubes_scrypt_decrypt(f->data, f->len, pass, "", &err);
    g_assert_no_error(err);
    return out;
}

static void test_qubes_fixture(void)
{
    g_autofree char *bin = g_build_filename(fixtures, "r4-plain.bin", NULL);
    if (!g_file_test(bin, G_FILE_TEST_EXISTS)) {
        if (bt_in_ci())
            g_error("%s is missing", bin);
        g_test_skip("no fixtures");
        return;
    }
    g_autoptr(GBytes) t = bt_slurp(bin);
    Outer o = {.members =
                   g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                         (GDestroyNotify)g_byte_array_unref)};
    QubesTarReader *r = qubes_tar_reader_new(&outer_callbacks, &o);
    gsize len;
    const guint8 *d = g_bytes_get_data(t, &len);
    GError *err = NULL;
    g_assert_true(qubes_tar_reader_feed(r, d, len, &err));
    g_assert_true(qubes_tar_reader_finish(r, &err));
    g_assert_cmpuint(qubes_tar_reader_members(r), ==, 9);
    qubes_tar_reader_free(r);
    GByteArray *header = g_hash_table_lookup(o.members, "backup-header");
    g_assert_nonnull(header);
    g_autofree char *htext = g_strndup((char *)header->data, header->len);
    g_assert_true(g_str_has_prefix(htext, "version=4\nencrypted=True\n"));
    const char *idp = strstr(htext, "backup-id=");
    g_assert_nonnull(idp);
    g_autofree char *id = g_strstrip(g_strdup(idp + strlen("backup-id=")));
    /* the header's .hmac: the header itself under backup-header!PASS */
    g_autoptr(GByteArray) hdec =
        decrypt(g_hash_table_lookup(o.members, "backup-header.hmac"),
                "backup-header!fixture-passphrase");
    g_assert_cmpmem(hdec->data, hdec->len, header->data, header->len);
    /* fx-work's private volume: vm3, holes at 1 MiB and 1.5 GiB */
    g_autofree char *pass =
        g_strdup_printf("%s!vm3/private.img.000!fixture-passphrase", id);
    g_autoptr(GByteArray) inner = decrypt(
        g_hash_table_lookup(o.members, "vm3/private.img.000.enc"), pass);
    Rebuild rb = {.log = g_string_new(NULL), .fd = -1, .sum = EVP_MD_CTX_new()};
    EVP_DigestInit_ex(rb.sum, EVP_sha256(), NULL);
    g_assert_true(feed(&rb, inner->data, inner->len, 0, &err));
    g_assert_cmpstr(rb.log->str, ==, "f vm3/private.img 2147483648\n");
    guint8 digest[32];
    unsigned dlen = 0;
    EVP_DigestFinal_ex(rb.sum, digest, &dlen);
    EVP_MD_CTX_free(rb.sum);
    g_autofree char *hex = g_malloc0(65);
    for (unsigned i = 0; i < dlen; i++)
        g_snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    g_assert_cmpstr(hex, ==,
                    "9eb0ca368f80817d811dfe4546cd89854afcccd867acf9eb7982252fc"
                    "9934457");
    g_string_free(rb.log, TRUE);
    g_hash_table_unref(o.members);
}

/* ---- the writer ---- */

static gboolean to_fd(const guint8 *buf, gsize len, gpointer data,
                      GError **error)
{
    int fd = GPOINTER_TO_INT(data);
    g_assert_cmpint(write(fd, buf, len), ==, (ssize_t)len);
    return TRUE;
}

/* Writes @path as member @name of the archive on @out, its holes kept. */
static void write_member(int out, const char *path, const char *name)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    g_assert_cmpint(fd, >=, 0);
    GError *err = NULL;
    g_assert_true(
        qubes_tar_write_fd(to_fd, GINT_TO_POINTER(out), fd, name, &err));
    g_assert_no_error(err);
    close(fd);
}

static void test_writer_read_by_gnu_tar(void)
{
    if (!have_tar()) {
        g_test_skip("no tar");
        return;
    }
    g_autofree char *src = path_of("wsrc");
    g_mkdir_with_parents(src, 0755);
    /* past 8 GiB: base-256 sizes and offsets, data near the end */
    g_autofree char *big = path_of("wsrc/big.img");
    int fd = open(big, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    g_assert_cmpint(ftruncate(fd, ((off_t)9 << 30) + 12345), ==, 0);
    g_assert_cmpint(pwrite(fd, "begin", 5, 0), ==, 5);
    g_assert_cmpint(pwrite(fd, "past eight", 10, (off_t)9 << 30), ==, 10);
    close(fd);
    g_autofree char *many = path_of("wsrc/many.img");
    make_sparse(many, 16 << 20);
    g_autofree char *hole = path_of("wsrc/hole.img");
    fd = open(hole, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    g_assert_cmpint(ftruncate(fd, 1 << 20), ==, 0);
    close(fd);
    g_autofree char *longname = g_strnfill(150, 'w');
    g_autofree char *small = g_build_filename(src, "small", NULL);
    g_assert_true(g_file_set_contents(small, "small data\n", -1, NULL));
    g_autofree char *tarf = path_of("ours.tar");
    int out = open(tarf, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    write_member(out, big, "vm1/big.img");
    write_member(out, many, "vm1/many.img");
    write_member(out, hole, "vm1/hole.img");
    g_autofree char *lname = g_strdup_printf("vm1/%s", longname);
    write_member(out, small, lname);
    GError *err = NULL;
    g_assert_true(qubes_tar_write_finish(to_fd, GINT_TO_POINTER(out), &err));
    close(out);
    /* GNU tar extracts it, holes and all */
    g_autofree char *x = path_of("wout");
    g_mkdir_with_parents(x, 0755);
    g_autofree char *cmd = g_strdup_printf("tar -xf %s -C %s", tarf, x);
    bt_run(cmd);
    const char *const pairs[][2] = {{"big.img", "vm1/big.img"},
                                    {"many.img", "vm1/many.img"},
                                    {"hole.img", "vm1/hole.img"}};
    for (guint i = 0; i < G_N_ELEMENTS(pairs); i++) {
        g_autofree char *a = g_build_filename(src, pairs[i][0], NULL);
        g_autofree char *b = g_build_filename(x, pairs[i][1], NULL);
        bt_same_sparse(a, b);
    }
    g_autofree char *lback = g_build_filename(x, lname, NULL);
    g_autoptr(GBytes) l = bt_slurp(lback);
    g_assert_cmpmem(g_bytes_get_data(l, NULL), g_bytes_get_size(l),
                    "small data\n", 11);
    /* and our reader reads it: the members and their data */
    g_autoptr(GBytes) t = bt_slurp(tarf);
    g_autofree char *again = path_of("wagain");
    g_mkdir_with_parents(again, 0755);
    Rebuild rb = {.into = again, .log = g_string_new(NULL), .fd = -1};
    gsize len;
    const guint8 *d = g_bytes_get_data(t, &len);
    g_assert_true(feed(&rb, d, len, 4096, &err));
    g_autofree char *want = g_strdup_printf(
        "f vm1/big.img %" G_GUINT64_FORMAT "\nf vm1/many.img %d\n"
        "f vm1/hole.img %d\nf %s 11\n",
        ((guint64)9 << 30) + 12345, 16 << 20, 1 << 20, lname);
    g_assert_cmpstr(rb.log->str, ==, want);
    g_string_free(rb.log, TRUE);
    g_autofree char *bigback = g_build_filename(again, "vm1_big.img", NULL);
    bt_same_sparse(big, bigback);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    fixtures = argc > 1 ? argv[1] : "../shared/backup-fixtures";
    dir = g_dir_make_tmp("test-tar-XXXXXX", NULL);
    g_test_add_func("/tar/gnu-sparse-and-members", test_gnu_sparse_and_members);
    g_test_add_func("/tar/posix-pax-paths", test_posix_pax_paths);
    g_test_add_func("/tar/hostile-streams", test_hostile_streams_refused);
    g_test_add_func("/tar/qubes-fixture", test_qubes_fixture);
    g_test_add_func("/tar/writer-read-by-gnu-tar", test_writer_read_by_gnu_tar);
    return bt_finish(g_test_run(), dir);
}
