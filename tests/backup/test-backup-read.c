/* test-backup-read: a backup made by the Qubes reference
 * (../shared/backup-fixtures: the gzip one; the none and xz ones are read
 * whole through qvm-backup-restore by tests/daemon/test-restore.py and
 * here as far as the damage tests go), read whole by
 * src/backup/backup-read.h: the header checked and parsed, every chunk
 * decrypted once and authenticated, every file's stream decompressed and
 * untarred, and the data of every volume (holes as zeros) hashing to the
 * sha256 and size that MANIFEST.json gives for the qubes in it; the
 * notes and firewall of the qube that has them; qubes.xml present.
 * Then damage: a wrong passphrase, a flipped byte in the last chunk, a
 * cut file, a header with an odd key, a chunk renamed out of order: each
 * refused, naming the file or chunk. Under CI=true missing fixtures are
 * a failure. */
#include "backup-read.h"
#include "qubes-error.h"
#include "util.h"

#include <fcntl.h>
#include <json-glib/json-glib.h>
#include <openssl/evp.h>
#include <string.h>
#include <unistd.h>

static const char *fixtures;
static char *dir;

typedef struct {
    EVP_MD_CTX *md;
    guint64 summed;
    GHashTable *volumes; /* "SIZE SHA256" -> count */
    GHashTable *texts;   /* inner name -> content (small files) */
    GString *text;
    char *header_id;
    guint files;
    gboolean no_hash; /* volumes only read, not hashed */
} Seen;

static void zeros_to(Seen *s, guint64 upto)
{
    bt_sha256_zeros(s->md, &s->summed, upto);
}

static gboolean on_header(const QubesBackupHeader *h, gpointer data, GError **e)
{
    Seen *s = data;
    s->header_id = g_strdup(h->backup_id);
    return TRUE;
}

static gboolean on_begin(const char *file, const QubesTarMember *m,
                         gpointer data, GError **e)
{
    Seen *s = data;
    g_assert_cmpint(m->type, ==, QUBES_TAR_FILE);
    s->summed = 0;
    if (s->no_hash && g_str_has_suffix(m->name, ".img"))
        return TRUE;
    if (g_str_has_suffix(m->name, ".img")) {
        s->md = EVP_MD_CTX_new();
        EVP_DigestInit_ex(s->md, EVP_sha256(), NULL);
    } else {
        s->text = g_string_new(NULL);
    }
    return TRUE;
}

static gboolean on_data(const char *file, const QubesTarMember *m,
                        guint64 offset, const guint8 *buf, gsize len,
                        gpointer data, GError **e)
{
    Seen *s = data;
    if (!s->md && !s->text)
        return TRUE;
    if (s->md) {
        zeros_to(s, offset);
        EVP_DigestUpdate(s->md, buf, len);
        s->summed += len;
    } else {
        g_assert_cmpuint(offset, ==, s->text->len);
        g_string_append_len(s->text, (const char *)buf, (gssize)len);
    }
    return TRUE;
}

static gboolean on_end(const char *file, const QubesTarMember *m, gpointer data,
                       GError **e)
{
    Seen *s = data;
    if (s->md) {
        zeros_to(s, m->size);
        guint8 d[32];
        unsigned n = 0;
        EVP_DigestFinal_ex(s->md, d, &n);
        EVP_MD_CTX_free(s->md);
        s->md = NULL;
        GString *key = g_string_new(NULL);
        g_string_append_printf(key, "%" G_GUINT64_FORMAT " ", m->size);
        for (unsigned i = 0; i < n; i++)
            g_string_append_printf(key, "%02x", d[i]);
        char *k = g_string_free(key, FALSE);
        guint c = GPOINTER_TO_UINT(g_hash_table_lookup(s->volumes, k));
        g_hash_table_insert(s->volumes, k, GUINT_TO_POINTER(c + 1));
    } else if (s->text) {
        g_hash_table_insert(s->texts, g_strdup(m->name),
                            g_string_free(s->text, FALSE));
        s->text = NULL;
    }
    return TRUE;
}

static gboolean on_file(const char *file, gpointer data, GError **e)
{
    ((Seen *)data)->files++;
    return TRUE;
}

static const QubesBackupReadCallbacks callbacks = {on_header, on_begin, on_data,
                                                   on_end, on_file};

static void seen_clear(Seen *s)
{
    g_hash_table_unref(s->volumes);
    g_hash_table_unref(s->texts);
    g_free(s->header_id);
    if (s->md)
        EVP_MD_CTX_free(s->md);
    if (s->text)
        g_string_free(s->text, TRUE);
}

static gboolean read_file(const char *path, const char *pass, Seen *s,
                          gboolean hash, GError **error)
{
    *s = (Seen){
        .volumes = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL),
        .texts = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free),
        .no_hash = !hash,
    };
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    g_assert_cmpint(fd, >=, 0);
    gboolean ok = qubes_backup_read(fd, pass, NULL, &callbacks, s, error);
    close(fd);
    return ok;
}

static JsonObject *manifest(void)
{
    static JsonParser *parser;
    if (!parser) {
        g_autofree char *path =
            g_build_filename(fixtures, "MANIFEST.json", NULL);
        parser = json_parser_new();
        GError *err = NULL;
        g_assert_true(json_parser_load_from_file(parser, path, &err));
    }
    return json_node_get_object(json_parser_get_root(parser));
}

static gboolean have_fixtures(void)
{
    g_autofree char *path = g_build_filename(fixtures, "MANIFEST.json", NULL);
    if (g_file_test(path, G_FILE_TEST_EXISTS))
        return TRUE;
    if (bt_in_ci())
        g_error("%s is missing", path);
    g_test_skip("no fixtures");
    return FALSE;
}

static void check_fixture(gconstpointer data)
{
    const char *name = data;
    if (!have_fixtures())
        return;
    JsonObject *fx = json_object_get_object_member(manifest(), name);
    const char *pass = json_object_get_string_member(fx, "passphrase");
    g_autofree char *bin = g_strdup_printf("%s/%s.bin", fixtures, name);
    Seen s;
    g_autoptr(GError) err = NULL;
    if (!read_file(bin, pass, &s, TRUE, &err))
        g_error("%s: %s", name, err->message);
    g_assert_nonnull(s.header_id);
    /* every volume of every qube, and nothing else */
    g_autoptr(GHashTable) want =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    JsonObject *qubes = json_object_get_object_member(fx, "qubes");
    g_autoptr(GList) names = json_object_get_members(qubes);
    const char *notes = NULL;
    for (GList *q = names; q; q = q->next) {
        JsonObject *vm = json_object_get_object_member(qubes, q->data);
        if (json_object_has_member(vm, "notes"))
            notes = json_object_get_string_member(vm, "notes");
        JsonObject *vols = json_object_get_object_member(vm, "volumes");
        g_autoptr(GList) vnames = json_object_get_members(vols);
        for (GList *v = vnames; v; v = v->next) {
            JsonObject *vo = json_object_get_object_member(vols, v->data);
            char *k =
                g_strdup_printf("%" G_GINT64_FORMAT " %s",
                                json_object_get_int_member(vo, "size"),
                                json_object_get_string_member(vo, "sha256"));
            guint c = GPOINTER_TO_UINT(g_hash_table_lookup(want, k));
            g_hash_table_insert(want, k, GUINT_TO_POINTER(c + 1));
        }
    }
    g_assert_cmpuint(g_hash_table_size(want), ==, g_hash_table_size(s.volumes));
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, want);
    while (g_hash_table_iter_next(&it, &k, &v))
        if (g_hash_table_lookup(s.volumes, k) != v)
            g_error("%s: volume %s: %u in the manifest, %u read", name,
                    (char *)k, GPOINTER_TO_UINT(v),
                    GPOINTER_TO_UINT(g_hash_table_lookup(s.volumes, k)));
    /* qubes.xml, the notes and the firewall */
    const char *xml = g_hash_table_lookup(s.texts, "qubes.xml");
    g_assert_nonnull(xml);
    g_assert_true(g_str_has_prefix(xml, "<qubes>"));
    g_assert_nonnull(strstr(xml, "backup-path"));
    gboolean found_notes = FALSE, found_fw = FALSE;
    g_hash_table_iter_init(&it, s.texts);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        if (g_str_has_suffix(k, "/notes.txt")) {
            g_assert_cmpstr(v, ==, notes);
            found_notes = TRUE;
        }
        if (g_str_has_suffix(k, "/firewall.xml")) {
            g_assert_nonnull(strstr(v, "192.0.2.0/24"));
            found_fw = TRUE;
        }
    }
    g_assert_true(found_notes && found_fw);
    seen_clear(&s);
}

/* @fixture's bytes with @edit applied, written to a file; its path. */
static char *edited(const char *fixture, void (*edit)(GByteArray *))
{
    g_autofree char *bin = g_strdup_printf("%s/%s.bin", fixtures, fixture);
    char *d = NULL;
    gsize n = 0;
    g_assert_true(g_file_get_contents(bin, &d, &n, NULL));
    GByteArray *b = g_byte_array_new_take((guint8 *)d, n);
    edit(b);
    char *out = g_build_filename(dir, "edited.bin", NULL);
    g_assert_true(g_file_set_contents(out, (char *)b->data, b->len, NULL));
    g_byte_array_unref(b);
    return out;
}

/* The offset of the tar member @name's header in @b. */
static gsize member_at(GByteArray *b, const char *name)
{
    for (gsize off = 0; off + 512 <= b->len; off += 512)
        if (strcmp((char *)b->data + off, name) == 0 &&
            memcmp(b->data + off + 257, "ustar", 5) == 0)
            return off;
    g_error("no member %s", name);
}

/* (each damage is in the first chunks: every chunk read costs a key
 * derivation of the reference's cost, about a second) */
static void flip_chunk(GByteArray *b)
{
    gsize at = member_at(b, "vm1/root.img.000.enc");
    b->data[at + 512 + 5000] ^= 0x20;
}

static void cut(GByteArray *b)
{
    gsize at = member_at(b, "vm1/root.img.000.enc");
    g_byte_array_set_size(b, (guint)(at + 512 + 300));
}

static void rename_chunk(GByteArray *b)
{
    gsize at = member_at(b, "vm1/root.img.000.enc");
    memcpy(b->data + at, "vm1/root.img.001.enc", 20);
    /* its header checksum again */
    memset(b->data + at + 148, ' ', 8);
    guint sum = 0;
    for (int i = 0; i < 512; i++)
        sum += b->data[at + i];
    g_snprintf((char *)b->data + at + 148, 8, "%06o", sum);
    b->data[at + 155] = ' ';
}

static void expect_refused(const char *path, const char *pass, const char *says)
{
    Seen s;
    g_autoptr(GError) err = NULL;
    g_assert_false(read_file(path, pass, &s, FALSE, &err));
    g_assert_nonnull(err);
    if (!strstr(err->message, says))
        g_error("'%s' does not say '%s'", err->message, says);
    seen_clear(&s);
}

static void test_damage_refused(void)
{
    if (!have_fixtures())
        return;
    g_autofree char *plain = g_strdup_printf("%s/r4-plain.bin", fixtures);
    expect_refused(plain, "not the passphrase", "wrong passphrase");
    g_autofree char *a = edited("r4-plain", flip_chunk);
    expect_refused(a, "fixture-passphrase",
                   "failed to decrypt vm1/root.img.000.enc: the scrypt file's "
                   "MAC does not match");
    g_autofree char *b = edited("r4-plain", cut);
    expect_refused(b, "fixture-passphrase", "ends inside");
    g_autofree char *c = edited("r4-plain", rename_chunk);
    expect_refused(c, "fixture-passphrase",
                   "vm1/root.img.001.enc: a chunk out of order or missing");
}

static void test_header_parse(void)
{
    const char *good = "version=4\nencrypted=True\ncompressed=True\n"
                       "compression-filter=gzip\nhmac-algorithm=scrypt\n"
                       "backup-id=20261205T181356-14823\nunknown-key=1\n";
    g_auto(QubesBackupHeader) h = {0};
    GError *err = NULL;
    g_assert_true(
        qubes_backup_header_parse(good, strlen(good), NULL, &h, &err));
    g_assert_cmpint(h.version, ==, 4);
    g_assert_true(h.encrypted && h.compressed);
    g_assert_cmpstr(h.backup_id, ==, "20261205T181356-14823");
    g_autofree char *again = qubes_backup_header_format(&h);
    g_assert_cmpstr(again, ==,
                    "version=4\nencrypted=True\ncompressed=True\n"
                    "compression-filter=gzip\nhmac-algorithm=scrypt\n"
                    "backup-id=20261205T181356-14823\n");
    const struct {
        const char *text;
        const char *says;
    } bad[] = {
        {"version=4\nversion=4\n", "Duplicated header line: version"},
        {"version=4\nencrypted=a=b\n", "Invalid backup header"},
        {"version=4\nencrypted\n", "Invalid backup header"},
        {"ver sion=4\n", "Invalid backup header (key)"},
        {"version=4\nbackup-id=a/b\n", "Invalid backup header (value)"},
        {"version=9\n", "Invalid value for header: version"},
        {"version=4\nencrypted=True\ncompressed=True\nhmac-algorithm=scrypt\n"
         "backup-id=x\n",
         "Backup header lack 'compression_filter' info"},
        {"version=4\nencrypted=True\ncompressed=False\nhmac-algorithm=scrypt\n",
         "Backup header lack 'backup_id' info"},
        {"version=4\ncompression-filter=zstd\n",
         "Unusual compression filter 'zstd' found. Use "
         "--compression-filter=zstd to use it anyway."},
        {"version=4\nbackup-id=-x\n", "Invalid value for header: backup-id"},
        {"version=4\nhmac-algorithm=md5\n",
         "Invalid value for header: hmac-algorithm"},
        {"version=4\xc3\xa9\n", "Non-ASCII characters in backup header"},
    };
    for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_auto(QubesBackupHeader) b = {0};
        g_autoptr(GError) e = NULL;
        g_assert_false(qubes_backup_header_parse(
            bad[i].text, strlen(bad[i].text), NULL, &b, &e));
        if (!strstr(e->message, bad[i].says))
            g_error("%s: '%s' does not say '%s'", bad[i].text, e->message,
                    bad[i].says);
    }
    /* a filter the user allows */
    const char *z = "version=4\nencrypted=True\ncompressed=True\n"
                    "compression-filter=zstd\nhmac-algorithm=scrypt\n"
                    "backup-id=x\n";
    g_auto(QubesBackupHeader) zh = {0};
    g_assert_true(qubes_backup_header_parse(z, strlen(z), "zstd", &zh, NULL));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    fixtures = argc > 1 ? argv[1] : "../shared/backup-fixtures";
    /* --no-whole: the sanitizer build reads the fixtures only as far as
     * the damage tests do (a fixture read whole is mostly key derivations
     * and the hashing of 62 GiB of volumes, in libcrypto, the same in
     * both builds; test-tar reads a fixture's chunk under it too) */
    gboolean whole = !(argc > 2 && strcmp(argv[2], "--no-whole") == 0);
    dir = g_dir_make_tmp("test-backup-read-XXXXXX", NULL);
    g_test_add_func("/backup-read/header", test_header_parse);
    /* the gzip fixture whole here (all five qubes); the three are each
     * read whole and checked against the manifest by
     * tests/daemon/test-restore.py, through qvm-backup-restore */
    if (whole)
        g_test_add_data_func("/backup-read/r4-gzip", "r4-gzip", check_fixture);
    g_test_add_func("/backup-read/damage", test_damage_refused);
    return bt_finish(g_test_run(), dir);
}
