/* test-backup-write: backups written by src/backup/backup-write.h, read
 * back two ways:
 * - by our reader (backup-read.h): every file and member with its data;
 * - by the pipeline the Qubes client's restore runs, made of the tools
 *   themselves: `tar -i` lists the outer members in order, `scrypt dec`
 *   decrypts each chunk under BACKUP_ID!FILE.NNN!PASSPHRASE and the
 *   header's .hmac under backup-header!PASSPHRASE, the chunks of a file
 *   joined and `gzip -d`ed make a tar stream that GNU tar extracts with
 *   the volume's holes kept.
 * With gzip and without, with chunks small enough that a volume takes
 * several; and once with the default key derivation cost, which `scrypt
 * info` must report as the scrypt tool's own (N = 2^19, r = 8, p = 1). */
#include "backup-read.h"
#include "backup-write.h"
#include "qubes-error.h"
#include "util.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *dir;
static const QubesScryptParams cheap = {.log_n = 10, .r = 8, .p = 1};

static char *path_of(const char *name)
{
    return g_build_filename(dir, name, NULL);
}

static gboolean to_fd(const guint8 *buf, gsize len, gpointer data,
                      GError **error)
{
    g_assert_cmpint(write(GPOINTER_TO_INT(data), buf, len), ==, (ssize_t)len);
    return TRUE;
}

/* @path into the current file of @w as tar member @name, holes kept. */
static void add_member(QubesBackupWriter *w, const char *path, const char *name)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    g_assert_cmpint(fd, >=, 0);
    GError *err = NULL;
    g_assert_true(
        qubes_tar_write_fd(qubes_backup_write_sink, w, fd, name, &err));
    g_assert_true(qubes_tar_write_finish(qubes_backup_write_sink, w, &err));
    close(fd);
}

/* The files a backup of one qube holds, in @src. */
static void make_qube(const char *src)
{
    g_mkdir_with_parents(src, 0755);
    g_autofree char *img = g_build_filename(src, "private.img", NULL);
    int fd = open(img, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    g_assert_cmpint(ftruncate(fd, 64 << 20), ==, 0);
    /* random data (it does not compress) at 1 MiB, text at 40 MiB */
    g_autofree guint8 *rnd = g_malloc(300000);
    for (gsize i = 0; i < 300000; i++)
        rnd[i] = (guint8)g_random_int();
    g_assert_cmpint(pwrite(fd, rnd, 300000, 1 << 20), ==, 300000);
    g_autofree char *text = g_strnfill(200000, 'q');
    g_assert_cmpint(pwrite(fd, text, 200000, 40 << 20), ==, 200000);
    close(fd);
    g_autofree char *notes = g_build_filename(src, "notes.txt", NULL);
    g_assert_true(g_file_set_contents(notes, "my notes\n", -1, NULL));
    g_autofree char *xml = g_build_filename(src, "qubes.xml", NULL);
    g_assert_true(g_file_set_contents(xml, "<qubes></qubes>\n", -1, NULL));
}

static char *write_backup(const char *src, gboolean gzip,
                          const QubesScryptParams *params, gsize chunk,
                          const char *id)
{
    g_autofree char *name = g_strdup_printf("backup-%s.bin", id);
    char *out = path_of(name);
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    QubesBackupHeader h = {.version = 4,
                           .encrypted = TRUE,
                           .compressed = gzip,
                           .compression_filter = (char *)"gzip",
                           .hmac_algorithm = (char *)"scrypt",
                           .backup_id = (char *)id};
    GError *err = NULL;
    QubesBackupWriteOptions opts = {.params = params, .chunk = chunk};
    QubesBackupWriter *w = qubes_backup_writer_new(
        to_fd, GINT_TO_POINTER(fd), &h, "pass word", &opts, &err);
    g_assert_no_error(err);
    const char *const files[][3] = {
        {"qubes.xml", "qubes.xml", "qubes.xml"},
        {"vm1/private.img", "private.img", "vm1/private.img"},
        {"vm1/notes.txt", "notes.txt", "vm1/notes.txt"},
    };
    for (guint i = 0; i < G_N_ELEMENTS(files); i++) {
        g_assert_true(qubes_backup_writer_file_begin(w, files[i][0], 0, &err));
        g_autofree char *p = g_build_filename(src, files[i][1], NULL);
        add_member(w, p, files[i][2]);
        g_assert_true(qubes_backup_writer_file_end(w, &err));
    }
    g_assert_true(qubes_backup_writer_finish(w, &err));
    close(fd);
    return out;
}

/* ---- read back by us ---- */

typedef struct {
    char *into;
    int fd;
    GString *log;
} Back;

static gboolean b_begin(const char *file, const QubesTarMember *m,
                        gpointer data, GError **e)
{
    Back *b = data;
    g_string_append_printf(b->log, "%s: %s %" G_GUINT64_FORMAT "\n", file,
                           m->name, m->size);
    g_autofree char *flat = g_strdelimit(g_strdup(m->name), "/", '_');
    g_autofree char *p = g_build_filename(b->into, flat, NULL);
    b->fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    g_assert_cmpint(ftruncate(b->fd, (off_t)m->size), ==, 0);
    return TRUE;
}

static gboolean b_data(const char *file, const QubesTarMember *m,
                       guint64 offset, const guint8 *buf, gsize len,
                       gpointer data, GError **e)
{
    Back *b = data;
    g_assert_cmpint(pwrite(b->fd, buf, len, (off_t)offset), ==, (ssize_t)len);
    return TRUE;
}

static gboolean b_end(const char *file, const QubesTarMember *m, gpointer data,
                      GError **e)
{
    Back *b = data;
    close(b->fd);
    b->fd = -1;
    return TRUE;
}

static const QubesBackupReadCallbacks back_callbacks = {NULL, b_begin, b_data,
                                                        b_end, NULL};

static void read_back(const char *backup, const char *src)
{
    g_autofree char *into = path_of("back");
    g_mkdir_with_parents(into, 0755);
    Back b = {.into = into, .fd = -1, .log = g_string_new(NULL)};
    int fd = open(backup, O_RDONLY | O_CLOEXEC);
    GError *err = NULL;
    gboolean ok =
        qubes_backup_read(fd, "pass word", NULL, &back_callbacks, &b, &err);
    g_assert_no_error(err);
    g_assert_true(ok);
    close(fd);
    g_assert_cmpstr(b.log->str, ==,
                    "qubes.xml: qubes.xml 16\n"
                    "vm1/private.img: vm1/private.img 67108864\n"
                    "vm1/notes.txt: vm1/notes.txt 9\n");
    g_string_free(b.log, TRUE);
    g_autofree char *a = g_build_filename(src, "private.img", NULL);
    g_autofree char *c = g_build_filename(into, "vm1_private.img", NULL);
    bt_same_sparse(a, c);
    g_autofree char *rm = g_strdup_printf("rm -rf %s", into);
    bt_run(rm);
}

/* ---- read back by the tools ---- */

static void tools_restore(const char *backup, const char *src, gboolean gzip,
                          const char *id)
{
    g_autofree char *x = path_of("tools");
    g_autofree char *rm = g_strdup_printf("rm -rf %s", x);
    bt_run(rm);
    g_mkdir_with_parents(x, 0755);
    g_autofree char *q = g_shell_quote(backup);
    g_autofree char *qx = g_shell_quote(x);
    g_autofree char *untar = g_strdup_printf("tar -xif %s -C %s", q, qx);
    bt_run(untar);
    /* the header's .hmac */
    g_autofree char *pw = path_of("pw");
    g_assert_true(
        g_file_set_contents(pw, "backup-header!pass word\n", -1, NULL));
    g_autofree char *dec = g_strdup_printf(
        "scrypt dec --passphrase file:%s %s/backup-header.hmac %s/hdr", pw, x,
        x);
    bt_run(dec);
    g_autofree char *h1 = g_build_filename(x, "hdr", NULL);
    g_autofree char *h2 = g_build_filename(x, "backup-header", NULL);
    g_autoptr(GBytes) a = bt_slurp(h1);
    g_autoptr(GBytes) b = bt_slurp(h2);
    g_assert_true(g_bytes_equal(a, b));
    /* the volume's chunks: decrypted, joined, decompressed, untarred */
    g_autofree char *joined = path_of("joined");
    g_assert_true(g_file_set_contents(joined, "", 0, NULL));
    guint chunks = 0;
    for (;; chunks++) {
        g_autofree char *enc =
            g_strdup_printf("%s/vm1/private.img.%03u.enc", x, chunks);
        if (!g_file_test(enc, G_FILE_TEST_EXISTS))
            break;
        g_autofree char *line =
            g_strdup_printf("%s!vm1/private.img.%03u!pass word\n", id, chunks);
        g_assert_true(g_file_set_contents(pw, line, -1, NULL));
        g_autofree char *part = path_of("part");
        g_autofree char *cmd = g_strdup_printf(
            "scrypt dec --passphrase file:%s %s %s", pw, enc, part);
        bt_run(cmd);
        g_autoptr(GBytes) p = bt_slurp(part);
        FILE *f = fopen(joined, "ab");
        g_assert_cmpuint(
            fwrite(g_bytes_get_data(p, NULL), 1, g_bytes_get_size(p), f), ==,
            g_bytes_get_size(p));
        fclose(f);
    }
    g_assert_cmpuint(chunks, >, 1); /* the volume took several */
    g_autofree char *vtar = path_of("volume.tar");
    g_autofree char *cmd =
        gzip ? g_strdup_printf("sh -c 'gzip -dc < %s > %s'", joined, vtar)
             : g_strdup_printf("mv %s %s", joined, vtar);
    bt_run(cmd);
    g_autofree char *out = path_of("tools-out");
    g_mkdir_with_parents(out, 0755);
    g_autofree char *x2 = g_strdup_printf("tar -xf %s -C %s", vtar, out);
    bt_run(x2);
    g_autofree char *orig = g_build_filename(src, "private.img", NULL);
    g_autofree char *got = g_build_filename(out, "vm1", "private.img", NULL);
    bt_same_sparse(orig, got);
    g_autofree char *rm2 = g_strdup_printf("rm -rf %s", out);
    bt_run(rm2);
}

static void round_trip(gconstpointer data)
{
    gboolean gzip = GPOINTER_TO_INT(data);
    if (!bt_have("scrypt") || !bt_have("tar") || !bt_have("gzip")) {
        g_test_skip("no scrypt, tar or gzip");
        return;
    }
    g_autofree char *src = path_of("src");
    make_qube(src);
    const char *id = gzip ? "20261205T200000-1" : "20261205T200000-2";
    /* 128 KiB chunks: the volume's stream takes several */
    g_autofree char *backup = write_backup(src, gzip, &cheap, 128 << 10, id);
    read_back(backup, src);
    tools_restore(backup, src, gzip, id);
}

static void test_default_cost(void)
{
    if (!bt_have("scrypt")) {
        g_test_skip("no scrypt");
        return;
    }
    g_autofree char *src = path_of("src");
    make_qube(src);
    const QubesScryptParams def = QUBES_SCRYPT_PARAMS_DEFAULT;
    g_autofree char *backup =
        write_backup(src, TRUE, &def, 0, "20261205T200000-3");
    g_autofree char *x = path_of("default");
    g_mkdir_with_parents(x, 0755);
    g_autofree char *untar = g_strdup_printf("tar -xif %s -C %s", backup, x);
    bt_run(untar);
    g_autofree char *info =
        g_strdup_printf("scrypt info %s/vm1/private.img.000.enc", x);
    g_autofree char *out = NULL, *err = NULL;
    int status = -1;
    g_assert_true(g_spawn_command_line_sync(info, &out, &err, &status, NULL));
    g_autofree char *both = g_strconcat(out, err, NULL);
    g_assert_nonnull(strstr(both, "N = 524288; r = 8; p = 1"));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    dir = g_dir_make_tmp("test-backup-write-XXXXXX", NULL);
    g_test_add_data_func("/backup-write/round-trip-gzip", GINT_TO_POINTER(1),
                         round_trip);
    g_test_add_data_func("/backup-write/round-trip-plain", GINT_TO_POINTER(0),
                         round_trip);
    g_test_add_func("/backup-write/default-cost", test_default_cost);
    return bt_finish(g_test_run(), dir);
}
