/* test-reflink.c: every operation of the file-reflink driver, for every
 * volume kind, on real btrfs, XFS and ext4 filesystems. */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MiB (1024ull * 1024)

static char *revisions_str(QubesVolume *vol)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) revs = qubes_volume_list_revisions(vol, &error);
    g_assert_no_error(error);
    GString *s = g_string_new(NULL);
    for (guint i = 0; i < revs->len; i++) {
        QubesRevision *r = revs->pdata[i];
        g_string_append_printf(s, "%s%s", i ? " " : "", r->id);
    }
    return g_string_free(s, FALSE);
}

/* Path of revision @id of @vol. */
static char *revision_path(QubesPool *pool, QubesVolume *vol, const char *id)
{
    g_autofree char *dir_rel = g_path_get_dirname(vol->vid);
    g_autofree char *dir =
        g_strdup_printf("%s/%s", test_pool_dir(pool), dir_rel);
    g_autofree char *prefix = g_strdup_printf("%s.img.%s@", vol->name, id);
    g_autofree char *legacy = g_strdup_printf("%s.img@%s", vol->name, id);
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    const char *n;
    while (d && (n = g_dir_read_name(d)) != NULL) {
        if (g_str_has_prefix(n, prefix) || g_str_equal(n, legacy))
            return g_strdup_printf("%s/%s", dir, n);
    }
    return NULL;
}

static void cycle(QubesVolume *vol, QubesPool *pool, guint8 seed)
{
    OK(qubes_volume_start(vol, &err_));
    g_autofree char *dirty = test_image(pool, vol, "-dirty.img");
    test_write_pattern(dirty, seed * 64 * 1024, 64 * 1024, seed);
    OK(qubes_volume_stop(vol, &err_));
}

static void test_pool_setup(gconstpointer data)
{
    GET_FS(data);
    g_autoptr(QubesPool) pool = test_pool_new(fs, NULL, NULL);
    const char *dir = test_pool_dir(pool);
    g_autofree char *appvms = g_strdup_printf("%s/appvms", dir);
    g_autofree char *tpls = g_strdup_printf("%s/vm-templates", dir);
    g_assert_true(g_file_test(appvms, G_FILE_TEST_IS_DIR));
    g_assert_true(g_file_test(tpls, G_FILE_TEST_IS_DIR));
    QubesPoolUsage usage;
    OK(qubes_pool_usage_details(pool, &usage, &err_));
    g_assert_cmpuint(usage.data_size, >, 900 * MiB);
    g_assert_cmpuint(usage.data_usage, >, 0);
    g_assert_cmpuint(usage.data_usage, <, usage.data_size);
    g_autoptr(GHashTable) config = qubes_pool_get_config(pool);
    g_assert_cmpstr(g_hash_table_lookup(config, "driver"), ==, "file-reflink");
    g_assert_cmpstr(g_hash_table_lookup(config, "dir_path"), ==, dir);
    g_assert_cmpstr(g_hash_table_lookup(config, "revisions_to_keep"), ==, "1");

    /* With the check on: ext4 refused (naming the option), others fine. */
    g_autofree char *dir2 = testfs_new_dir(fs, "checked");
    g_autoptr(GHashTable) opts = g_hash_table_new(g_str_hash, g_str_equal);
    g_hash_table_insert(opts, "dir_path", dir2);
    g_autoptr(GError) error = NULL;
    g_autoptr(QubesPool) checked =
        qubes_pool_new("file-reflink", "checked", opts, &error);
    g_assert_no_error(error);
    gboolean ok = qubes_pool_setup(checked, &error);
    if (g_str_equal(fs->type, "ext4")) {
        g_assert_false(ok);
        g_assert_error(error, QUBES_ERROR, QUBES_ERROR_STORAGE_POOL);
        g_assert_nonnull(strstr(error->message, "setup_check=False"));
        g_assert_nonnull(strstr(error->message, dir2));
        g_assert_false(test_exists(dir2)); /* what it made, it removed */
    } else {
        g_assert_no_error(error);
        g_assert_true(ok);
    }
}

static void test_origin_cycle(gconstpointer data)
{
    GET_FS(data);
    g_autoptr(QubesPool) pool = test_pool_new(fs, NULL, NULL);
    g_autoptr(QubesVolume) vol =
        test_origin(pool, "work", "private", 64 * MiB, 1);
    g_assert_cmpstr(vol->vid, ==, "appvms/work/private");
    g_autofree char *clean = test_image(pool, vol, ".img");
    g_autofree char *dirty = test_image(pool, vol, "-dirty.img");
    g_autofree char *pre = test_image(pool, vol, "-precache.img");

    OK(qubes_volume_create(vol, &err_));
    struct stat st;
    test_stat(clean, &st);
    g_assert_cmpint(st.st_size, ==, 64 * MiB);
    g_assert_cmpint(st.st_blocks, ==, 0);
    g_assert_true(test_exists(pre));
    g_assert_false(test_exists(dirty));
    g_assert_false(qubes_volume_is_dirty(vol));
    g_assert_cmpuint(qubes_volume_get_size(vol), ==, 64 * MiB);
    g_assert_cmpuint(qubes_volume_get_usage(vol), ==, 0);
    OK(qubes_volume_verify(vol, &err_));

    OK(qubes_volume_start(vol, &err_));
    g_assert_true(test_exists(dirty));
    g_assert_false(test_exists(pre)); /* the precache became dirty */
    g_assert_true(qubes_volume_is_dirty(vol));
    g_autofree char *path = qubes_volume_get_path(vol);
    g_assert_cmpstr(path, ==, dirty);
    test_write_pattern(dirty, 1 * MiB, 128 * 1024, 1);
    g_autofree char *sum = test_checksum(dirty);
    /* Starting again keeps the dirty image. */
    OK(qubes_volume_start(vol, &err_));
    g_autofree char *sum2 = test_checksum(dirty);
    g_assert_cmpstr(sum, ==, sum2);

    OK(qubes_volume_stop(vol, &err_));
    g_assert_false(test_exists(dirty));
    g_assert_false(qubes_volume_is_dirty(vol));
    g_autofree char *clean_sum = test_checksum(clean);
    g_assert_cmpstr(clean_sum, ==, sum);
    g_autofree char *pre_sum = test_checksum(pre);
    g_assert_cmpstr(pre_sum, ==, sum);
    g_autofree char *revs = revisions_str(vol);
    g_assert_cmpstr(revs, ==, "1");
    g_assert_cmpuint(qubes_volume_get_usage(vol), >=, 128 * 1024);

    /* Stopping twice is a no-op. */
    OK(qubes_volume_stop(vol, &err_));
    g_autofree char *revs2 = revisions_str(vol);
    g_assert_cmpstr(revs2, ==, "1");
    g_autofree char *clean_sum2 = test_checksum(clean);
    g_assert_cmpstr(clean_sum2, ==, sum);
    g_autofree char *export = NULL;
    OK((export = qubes_volume_export(vol, &err_)) != NULL);
    g_assert_cmpstr(export, ==, clean);
}

static void test_revisions(gconstpointer data)
{
    GET_FS(data);
    g_autoptr(QubesPool) pool = test_pool_new(fs, NULL, NULL);
    g_autoptr(QubesVolume) vol =
        test_origin(pool, "rev", "private", 8 * MiB, 2);
    g_autofree char *clean = test_image(pool, vol, ".img");
    OK(qubes_volume_create(vol, &err_));
    char *sums[5];
    sums[0] = test_checksum(clean);
    for (int i = 1; i <= 4; i++) {
        cycle(vol, pool, (guint8)i);
        sums[i] = test_checksum(clean);
    }
    /* Four commits made revisions 1..4; two are kept, oldest first. */
    g_autofree char *revs = revisions_str(vol);
    g_assert_cmpstr(revs, ==, "3 4");
    g_autofree char *r1 = revision_path(pool, vol, "1");
    g_assert_null(r1);
    g_autofree char *r3 = revision_path(pool, vol, "3");
    g_autofree char *r4 = revision_path(pool, vol, "4");
    g_autofree char *s3 = test_checksum(r3);
    g_autofree char *s4 = test_checksum(r4);
    g_assert_cmpstr(s3, ==, sums[2]);
    g_assert_cmpstr(s4, ==, sums[3]);
    /* The name carries the clean image's mtime, in UTC. */
    g_assert_true(g_regex_match_simple(
        "/private\\.img\\.4@[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:"
        "[0-9]{2}Z$",
        r4, 0, 0));
    g_autoptr(GPtrArray) list = qubes_volume_list_revisions(vol, NULL);
    QubesRevision *last = list->pdata[1];
    g_assert_true(strstr(r4, last->timestamp) != NULL);

    /* Revert to the latest: the current image becomes revision 5. */
    OK(qubes_volume_revert(vol, NULL, &err_));
    g_autofree char *now = test_checksum(clean);
    g_assert_cmpstr(now, ==, sums[3]);
    g_autofree char *revs2 = revisions_str(vol);
    g_assert_cmpstr(revs2, ==, "3 5");
    g_autofree char *r5 = revision_path(pool, vol, "5");
    g_autofree char *s5 = test_checksum(r5);
    g_assert_cmpstr(s5, ==, sums[4]);

    /* Revert to a named revision; an empty name means the latest. */
    OK(qubes_volume_revert(vol, "3", &err_));
    g_autofree char *now2 = test_checksum(clean);
    g_assert_cmpstr(now2, ==, sums[2]);
    g_autofree char *revs3 = revisions_str(vol);
    g_assert_cmpstr(revs3, ==, "5 6");
    OK(qubes_volume_revert(vol, "", &err_));
    g_autofree char *now3 = test_checksum(clean);
    g_assert_cmpstr(now3, ==, sums[3]);

    FAILS(qubes_volume_revert(vol, "99", &err_), QUBES_ERROR_STORAGE_POOL,
          "Missing revision 99");
    OK(qubes_volume_start(vol, &err_));
    FAILS(qubes_volume_revert(vol, NULL, &err_), QUBES_ERROR_STORAGE_POOL,
          "not cleanly stopped");
    OK(qubes_volume_stop(vol, &err_)); /* a commit: revision 8 */
    g_autofree char *revs35 = revisions_str(vol);
    g_assert_cmpstr(revs35, ==, "7 8");

    /* Lowering revisions_to_keep hides, then prunes, the oldest. */
    OK(qubes_volume_set_revisions_to_keep(vol, 1, &err_));
    g_autofree char *revs4 = revisions_str(vol);
    g_assert_cmpstr(revs4, ==, "8");
    cycle(vol, pool, 9);
    g_autofree char *revs5 = revisions_str(vol);
    g_assert_cmpstr(revs5, ==, "9");
    g_autofree char *vmdir = g_path_get_dirname(clean);
    g_autofree char *ls = test_ls(vmdir);
    g_assert_null(strstr(ls, ".img.7@"));
    g_assert_null(strstr(ls, ".img.8@"));
    for (int i = 0; i <= 4; i++)
        g_free(sums[i]);
}

static void plant(const char *path, guint8 seed)
{
    g_assert_true(g_file_set_contents(path, "", 0, NULL));
    g_assert_cmpint(truncate(path, 1 * MiB), ==, 0);
    test_write_pattern(path, 0, 64 * 1024, seed);
}

static void test_legacy_revisions(gconstpointer data)
{
    GET_FS(data);
    g_autoptr(QubesPool) pool = test_pool_new(fs, NULL, NULL);
    g_autoptr(QubesVolume) vol = test_origin(pool, "old", "private", MiB, 3);
    OK(qubes_volume_create(vol, &err_));
    g_autofree char *clean = test_image(pool, vol, ".img");
    g_autofree char *a = g_strdup_printf("%s@2018-01-02T03:04:05Z", clean);
    g_autofree char *b = g_strdup_printf("%s@2017-05-06T07:08:09Z", clean);
    plant(a, 9);
    plant(b, 8);
    /* Seed-era revisions are older than every numbered one, and the next
     * number is 1 when only they exist. */
    g_autofree char *revs = revisions_str(vol);
    g_assert_cmpstr(revs, ==, "2017-05-06T07:08:09Z 2018-01-02T03:04:05Z");
    cycle(vol, pool, 1);
    g_autofree char *revs2 = revisions_str(vol);
    g_assert_cmpstr(revs2, ==, "2017-05-06T07:08:09Z 2018-01-02T03:04:05Z 1");
    g_autofree char *sa = test_checksum(a);
    OK(qubes_volume_revert(vol, "2018-01-02T03:04:05Z", &err_));
    g_autofree char *now = test_checksum(clean);
    g_assert_cmpstr(now, ==, sa);
    g_autofree char *revs3 = revisions_str(vol);
    g_assert_cmpstr(revs3, ==, "2017-05-06T07:08:09Z 1 2");
    /* Pruning takes the oldest, seed-era first. */
    cycle(vol, pool, 2);
    g_autofree char *revs4 = revisions_str(vol);
    g_assert_cmpstr(revs4, ==, "1 2 3");
    g_assert_false(test_exists(b));
}

/* qubes_volume_get_state says what the separate reads say. */
static void check_state(QubesVolume *vol)
{
    QubesVolumeState st;
    qubes_volume_get_state(vol, &st);
    g_assert_cmpuint(st.size, ==, qubes_volume_get_size(vol));
    g_assert_cmpuint(st.usage, ==, qubes_volume_get_usage(vol));
    g_assert_cmpint(st.outdated, ==, qubes_volume_is_outdated(vol));
    g_autoptr(GPtrArray) space = qubes_volume_get_space(vol, NULL);
    g_assert_cmpint(st.space != NULL, ==, space != NULL);
    for (guint i = 0; space && i < space->len; i++) {
        QubesVolumeSpace *a = st.space->pdata[i], *b = space->pdata[i];
        g_assert_cmpstr(a->what, ==, b->what);
        g_assert_cmpuint(a->size, ==, b->size);
        g_assert_cmpuint(a->shared + a->exclusive, ==,
                         b->shared + b->exclusive);
    }
    if (space)
        g_assert_cmpuint(st.space->len, ==, space->len);
    qubes_volume_state_clear(&st);
}

static void test_snapshot_kind(gconstpointer data)
{
    GET_FS(data);
    g_autoptr(QubesPool) pool = test_pool_new(fs, NULL, NULL);
    g_autoptr(QubesVolume) tpl = test_origin(pool, "tpl", "root", 32 * MiB, 1);
    OK(qubes_volume_create(tpl, &err_));
    cycle(tpl, pool, 1);
    g_autoptr(QubesVolume) root =
        test_snapshot(pool, "app", "root", tpl->vid, FALSE);
    g_autofree char *tclean = test_image(pool, tpl, ".img");
    g_autofree char *clean = test_image(pool, root, ".img");
    g_autofree char *dirty = test_image(pool, root, "-dirty.img");
    OK(qubes_volume_create(root, &err_));
    OK(qubes_volume_verify(root, &err_));
    g_assert_false(qubes_volume_is_outdated(root));
    check_state(root);

    OK(qubes_volume_start(root, &err_));
    struct stat a, b;
    test_stat(tclean, &a);
    test_stat(clean, &b);
    g_assert_cmpuint(a.st_ino, ==, b.st_ino); /* a hardlink */
    g_autofree char *ts = test_checksum(tclean);
    g_autofree char *ds = test_checksum(dirty);
    g_assert_cmpstr(ts, ==, ds);
    g_assert_false(qubes_volume_is_dirty(root)); /* not saved on stop */
    g_assert_false(qubes_volume_is_outdated(root));
    g_assert_cmpuint(qubes_volume_get_size(root), ==, 32 * MiB);
    check_state(root);

    /* The template commits: the running snapshot is now outdated. */
    cycle(tpl, pool, 2);
    g_assert_true(qubes_volume_is_outdated(root));
    check_state(root);
    OK(qubes_volume_stop(root, &err_));
    g_assert_false(test_exists(dirty));
    g_assert_false(test_exists(clean));
    g_assert_false(qubes_volume_is_outdated(root));
    OK(qubes_volume_stop(root, &err_));

    /* Next start sees the new template. */
    OK(qubes_volume_start(root, &err_));
    g_autofree char *ts2 = test_checksum(tclean);
    g_autofree char *ds2 = test_checksum(dirty);
    g_assert_cmpstr(ts2, ==, ds2);
    g_assert_cmpstr(ts2, !=, ts);
    OK(qubes_volume_stop(root, &err_));

    /* A snapshot whose source is gone fails to verify and to start,
     * naming the missing image. */
    g_autoptr(QubesVolume) orphan =
        test_snapshot(pool, "app2", "root", "appvms/none/root", FALSE);
    FAILS(qubes_volume_verify(orphan, &err_), QUBES_ERROR_STORAGE_POOL,
          "appvms/none/root.img");
    FAILS(qubes_volume_start(orphan, &err_), QUBES_ERROR_STORAGE_POOL, "none");
    FAILS(qubes_volume_import_data(root, MiB, &err_) != NULL,
          QUBES_ERROR_NOT_IMPLEMENTED, "not save_on_stop");
    FAILS(qubes_volume_export(root, &err_) != NULL, QUBES_ERROR_NOT_IMPLEMENTED,
          "not save_on_stop");
}

static void test_origin_snapshot_kind(gconstpointer data)
{
    GET_FS(data);
    g_autoptr(QubesPool) pool = test_pool_new(fs, NULL, NULL);
    g_autoptr(QubesVolume) tpl = test_origin(pool, "tpl", "root", 4 * MiB, 1);
    OK(qubes_volume_create(tpl, &err_));
    cycle(tpl, pool, 3);
    g_autoptr(QubesVolume) vol =
        test_snapshot(pool, "disp", "root", tpl->vid, TRUE);
    OK(qubes_volume_start(vol, &err_));
    g_assert_true(qubes_volume_is_dirty(vol));
    g_autofree char *dirty = test_image(pool, vol, "-dirty.img");
    g_autofree char *clean = test_image(pool, vol, ".img");
    g_autofree char *tclean = test_image(pool, tpl, ".img");
    test_write_pattern(dirty, 0, 4096, 7);
    g_autofree char *ds = test_checksum(dirty);
    OK(qubes_volume_stop(vol, &err_));
    g_autofree char *cs = test_checksum(clean);
    g_assert_cmpstr(cs, ==, ds);
    g_autofree char *ts = test_checksum(tclean);
    g_assert_cmpstr(ts, !=, cs); /* the template is untouched */
}

static void test_volatile_kind(gconstpointer data)
{
    GET_FS(data);
    g_autoptr(QubesPool) pool = test_pool_new(fs, NULL, NULL);
    g_autoptr(QubesVolume) vol = test_volatile(pool, "app", 16 * MiB);
    g_autofree char *dirty = test_image(pool, vol, "-dirty.img");
    OK(qubes_volume_create(vol, &err_));
    g_assert_false(test_exists(dirty));
    OK(qubes_volume_verify(vol, &err_));
    OK(qubes_volume_start(vol, &err_));
    struct stat st;
    test_stat(dirty, &st);
    g_assert_cmpint(st.st_size, ==, 16 * MiB);
    g_assert_cmpint(st.st_blocks, ==, 0);
    g_assert_false(qubes_volume_is_dirty(vol));
    OK(qubes_volume_resize(vol, 32 * MiB, &err_));
    test_stat(dirty, &st);
    g_assert_cmpint(st.st_size, ==, 32 * MiB);
    OK(qubes_volume_stop(vol, &err_));
    g_assert_false(test_exists(dirty));
    /* The size change made while running is kept. */
    g_assert_cmpuint(qubes_volume_get_size(vol), ==, 32 * MiB);
    OK(qubes_volume_start(vol, &err_));
    test_stat(dirty, &st);
    g_assert_cmpint(st.st_size, ==, 32 * MiB);
    FAILS(qubes_volume_resize(vol, 8 * MiB, &err_), QUBES_ERROR_STORAGE_POOL,
          "shrinking");
    OK(qubes_volume_stop(vol, &err_));
    g_autofree char *revs = revisions_str(vol);
    g_assert_cmpstr(revs, ==, "");
}

static void test_snapshots_disabled(gconstpointer data)
{
    GET_FS(data);
    g_autoptr(QubesPool) pool = test_pool_new(fs, NULL, NULL);
    g_autoptr(QubesVolume) vol =
        test_origin(pool, "nosnap", "private", 4 * MiB, -1);
    g_autofree char *clean = test_image(pool, vol, ".img");
    g_autofree char *dirty = test_image(pool, vol, "-dirty.img");
    g_autofree char *pre = test_image(pool, vol, "-precache.img");
    OK(qubes_volume_create(vol, &err_));
    g_assert_false(test_exists(pre));
    struct stat a, b;
    test_stat(clean, &a);
    OK(qubes_volume_start(vol, &err_));
    g_assert_false(test_exists(clean));
    test_stat(dirty, &b);
    g_assert_cmpuint(a.st_ino, ==, b.st_ino); /* used directly */
    test_write_pattern(dirty, 0, 8192, 4);
    g_autofree char *ds = test_checksum(dirty);
    OK(qubes_volume_stop(vol, &err_));
    g_autofree char *cs = test_checksum(clean);
    g_assert_cmpstr(cs, ==, ds);
    g_assert_false(test_exists(dirty));
    g_assert_false(test_exists(pre));
    g_autofree char *revs = revisions_str(vol);
    g_assert_cmpstr(revs, ==, "");
    g_autofree char *vmdir = g_path_get_dirname(clean);
    g_autofree char *ls = test_ls(vmdir);
    g_assert_cmpstr(ls, ==, "private.img");
    FAILS(qubes_volume_revert(vol, NULL, &err_), QUBES_ERROR_STORAGE_POOL,
          "No revision");
}

static void test_stale_precache(gconstpointer data)
{
    GET_FS(data);
    g_autoptr(QubesPool) pool = test_pool_new(fs, NULL, NULL);
    g_autoptr(QubesVolume) vol = test_origin(pool, "st", "private", MiB, 1);
    OK(qubes_volume_create(vol, &err_));
    cycle(vol, pool, 1);
    g_autofree char *clean = test_image(pool, vol, ".img");
    g_autofree char *dirty = test_image(pool, vol, "-dirty.img");
    g_autofree char *pre = test_image(pool, vol, "-precache.img");
    /* An older driver changed clean behind the precache's back. */
    test_write_pattern(clean, 0, 4096, 42);
    struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_sec = 1000}};
    g_assert_cmpint(utimensat(AT_FDCWD, clean, ts, 0), ==, 0);
    g_autofree char *cs = test_checksum(clean);
    OK(qubes_volume_start(vol, &err_));
    g_autofree char *ds = test_checksum(dirty);
    g_assert_cmpstr(ds, ==, cs);
    g_assert_false(test_exists(pre));
    OK(qubes_volume_stop(vol, &err_));
}

static guint64 sysfs_size(const char *dev)
{
    g_autofree char *path =
        g_strdup_printf("/sys/block/%s/size", strrchr(dev, '/') + 1);
    g_autofree char *s = NULL;
    g_assert_true(g_file_get_contents(path, &s, NULL, NULL));
    return g_ascii_strtoull(s, NULL, 10) * 512;
}

static void test_resize(gconstpointer data)
{
    GET_FS(data);
    g_autoptr(QubesPool) pool = test_pool_new(fs, NULL, NULL);
    g_autoptr(QubesVolume) vol =
        test_origin(pool, "rs", "private", 16 * MiB, 1);
    OK(qubes_volume_create(vol, &err_));
    cycle(vol, pool, 1);
    g_autofree char *clean = test_image(pool, vol, ".img");
    g_autofree char *dirty = test_image(pool, vol, "-dirty.img");
    g_autofree char *pre = test_image(pool, vol, "-precache.img");
    struct stat before, after;
    test_stat(clean, &before);
    g_autofree char *revs0 = revisions_str(vol);

    /* Stopped: a new, larger clean image (a new inode). */
    OK(qubes_volume_resize(vol, 32 * MiB, &err_));
    test_stat(clean, &after);
    g_assert_cmpint(after.st_size, ==, 32 * MiB);
    g_assert_cmpuint(after.st_ino, !=, before.st_ino);
    test_stat(pre, &after);
    g_assert_cmpint(after.st_size, ==, 32 * MiB);
    g_assert_cmpuint(qubes_volume_get_size(vol), ==, 32 * MiB);
    g_autofree char *revs1 = revisions_str(vol);
    g_assert_cmpstr(revs1, ==, revs0);

    FAILS(qubes_volume_resize(vol, 16 * MiB, &err_), QUBES_ERROR_STORAGE_POOL,
          "shrinking of appvms/rs/private");
    OK(qubes_volume_resize(vol, 32 * MiB, &err_)); /* same size: fine */
    OK(qubes_volume_set_rw(vol, FALSE, &err_));
    FAILS(qubes_volume_resize(vol, 64 * MiB, &err_), QUBES_ERROR_STORAGE_POOL,
          "read-only");
    OK(qubes_volume_set_rw(vol, TRUE, &err_));

    /* Running: grown in place, and a loop device on it learns the size. */
    OK(qubes_volume_start(vol, &err_));
    g_autofree char *loop = test_loop_attach(dirty);
    g_assert_nonnull(loop);
    g_assert_cmpuint(sysfs_size(loop), ==, 32 * MiB);
    OK(qubes_volume_resize(vol, 64 * MiB, &err_));
    g_assert_cmpuint(sysfs_size(loop), ==, 64 * MiB);
    test_loop_detach(loop);
    OK(qubes_volume_stop(vol, &err_));
    test_stat(clean, &after);
    g_assert_cmpint(after.st_size, ==, 64 * MiB);
}

static void test_import_data(gconstpointer data)
{
    GET_FS(data);
    g_autoptr(QubesPool) pool = test_pool_new(fs, NULL, NULL);
    g_autoptr(QubesVolume) vol =
        test_origin(pool, "imp", "private", 8 * MiB, 1);
    OK(qubes_volume_create(vol, &err_));
    g_autofree char *clean = test_image(pool, vol, ".img");
    g_autofree char *import = test_image(pool, vol, "-import.img");
    g_autofree char *old = test_checksum(clean);

    g_autofree char *path = NULL;
    OK((path = qubes_volume_import_data(vol, 16 * MiB, &err_)) != NULL);
    g_assert_cmpstr(path, ==, import);
    test_write_pattern(path, 3 * MiB, 256 * 1024, 5);
    g_autofree char *sum = test_checksum(path);
    OK(qubes_volume_import_data_end(vol, TRUE, &err_));
    g_assert_false(test_exists(import));
    g_autofree char *now = test_checksum(clean);
    g_assert_cmpstr(now, ==, sum);
    g_assert_cmpuint(qubes_volume_get_size(vol), ==, 16 * MiB);
    g_autofree char *revs = revisions_str(vol);
    g_assert_cmpstr(revs, ==, "1");
    g_autofree char *r1 = revision_path(pool, vol, "1");
    g_autofree char *s1 = test_checksum(r1);
    g_assert_cmpstr(s1, ==, old);

    /* A failed import changes nothing. */
    g_free(path);
    OK((path = qubes_volume_import_data(vol, 8 * MiB, &err_)) != NULL);
    test_write_pattern(path, 0, 4096, 6);
    OK(qubes_volume_import_data_end(vol, FALSE, &err_));
    g_assert_false(test_exists(import));
    g_autofree char *still = test_checksum(clean);
    g_assert_cmpstr(still, ==, sum);
    FAILS(qubes_volume_import_data_end(vol, TRUE, &err_),
          QUBES_ERROR_STORAGE_POOL, "No import in progress");

    OK(qubes_volume_start(vol, &err_));
    FAILS(qubes_volume_import_data(vol, MiB, &err_) != NULL,
          QUBES_ERROR_STORAGE_POOL, "not cleanly stopped");
    OK(qubes_volume_stop(vol, &err_));
}

/* "start-end start-end ..." of the data ranges of @path. */
static char *data_map(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    g_assert_cmpint(fd, >=, 0);
    GString *s = g_string_new(NULL);
    off_t pos = 0;
    for (;;) {
        off_t d = lseek(fd, pos, SEEK_DATA);
        if (d < 0)
            break;
        off_t h = lseek(fd, d, SEEK_HOLE);
        g_string_append_printf(s, "%jd-%jd ", (intmax_t)d, (intmax_t)h);
        pos = h;
    }
    close(fd);
    return g_string_free(s, FALSE);
}

static void progress_cb(guint64 done, guint64 total, gpointer data)
{
    guint64 *last = data;
    g_assert_cmpuint(done, <=, total);
    g_assert_cmpuint(done, >=, last[0]);
    last[0] = done;
    last[1] = total;
    last[2]++;
}

static void fill_sparse_source(QubesPool *pool, QubesVolume *src)
{
    OK(qubes_volume_start(src, &err_));
    g_autofree char *dirty = test_image(pool, src, "-dirty.img");
    test_write_pattern(dirty, 0, MiB, 1);
    test_write_pattern(dirty, 100 * MiB, 3 * MiB, 2);
    test_write_pattern(dirty, 200 * MiB, 64 * 1024, 3);
    OK(qubes_volume_stop(src, &err_));
}

static void test_import_across_filesystems(void)
{
    TestFs *a = testfs_get("btrfs"), *b = testfs_get("xfs");
    if (!a || !b)
        return;
    g_autoptr(QubesPool) pa = test_pool_new(a, NULL, NULL);
    g_autoptr(QubesPool) pb = test_pool_new(b, NULL, NULL);
    g_autoptr(QubesVolume) src =
        test_origin(pa, "src", "private", 256 * MiB, 1);
    g_autoptr(QubesVolume) dst = test_origin(pb, "dst", "private", MiB, 1);
    OK(qubes_volume_create(src, &err_));
    OK(qubes_volume_create(dst, &err_));
    fill_sparse_source(pa, src);
    guint64 progress[3] = {0, 0, 0};
    OK(qubes_volume_import_volume(dst, src, progress_cb, progress, &err_));
    g_autofree char *sclean = test_image(pa, src, ".img");
    g_autofree char *dclean = test_image(pb, dst, ".img");
    g_autofree char *ss = test_checksum(sclean);
    g_autofree char *ds = test_checksum(dclean);
    g_assert_cmpstr(ss, ==, ds);
    /* A sparse copy: same data map, same allocation (within 64 KiB). */
    g_autofree char *sm = data_map(sclean);
    g_autofree char *dm = data_map(dclean);
    g_assert_cmpstr(sm, ==, dm);
    struct stat sst, dst_st;
    test_stat(sclean, &sst);
    test_stat(dclean, &dst_st);
    g_assert_cmpint(dst_st.st_size, ==, 256 * MiB);
    g_assert_cmpint(dst_st.st_blocks, <=, sst.st_blocks + 128);
    g_assert_cmpint(dst_st.st_blocks * 512, >=, 4 * MiB);
    g_assert_cmpuint(progress[1], ==, 4 * MiB + 64 * 1024);
    g_assert_cmpuint(progress[0], ==, progress[1]);
    g_assert_cmpuint(progress[2], >=, 2);
    g_autofree char *revs = revisions_str(dst);
    g_assert_cmpstr(revs, ==, "1");
}

static void test_import_same_fs(gconstpointer data)
{
    GET_FS(data);
    g_autoptr(QubesPool) pool = test_pool_new(fs, NULL, NULL);
    g_autoptr(QubesVolume) src =
        test_origin(pool, "src", "private", 256 * MiB, 1);
    g_autoptr(QubesVolume) dst = test_origin(pool, "dst", "private", MiB, 1);
    OK(qubes_volume_create(src, &err_));
    OK(qubes_volume_create(dst, &err_));
    fill_sparse_source(pool, src);
    OK(qubes_volume_import_volume(dst, src, NULL, NULL, &err_));
    g_autofree char *sclean = test_image(pool, src, ".img");
    g_autofree char *dclean = test_image(pool, dst, ".img");
    g_autofree char *ss = test_checksum(sclean);
    g_autofree char *ds = test_checksum(dclean);
    g_assert_cmpstr(ss, ==, ds);
    g_autofree char *sm = data_map(sclean);
    g_autofree char *dm = data_map(dclean);
    g_assert_cmpstr(sm, ==, dm);
    /* On reflink filesystems the copy shares every extent. */
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) space = qubes_volume_get_space(dst, &error);
    g_assert_no_error(error);
    QubesVolumeSpace *cur = space->pdata[0];
    g_assert_cmpstr(cur->what, ==, "current");
    if (g_str_equal(fs->type, "ext4")) {
        g_assert_cmpuint(cur->shared, ==, 0);
        g_assert_cmpuint(cur->exclusive, >=, 4 * MiB);
    } else {
        g_assert_cmpuint(cur->shared, >=, 4 * MiB);
        g_assert_cmpuint(cur->exclusive, ==, 0);
    }
    FAILS(qubes_volume_import_volume(dst, dst, NULL, NULL, &err_),
          QUBES_ERROR_VALUE, "into itself");
}

static void test_space(gconstpointer data)
{
    GET_FS(data);
    g_autoptr(QubesPool) pool = test_pool_new(fs, NULL, NULL);
    g_autoptr(QubesVolume) vol =
        test_origin(pool, "sp", "private", 16 * MiB, 2);
    OK(qubes_volume_create(vol, &err_));
    OK(qubes_volume_start(vol, &err_));
    g_autofree char *dirty = test_image(pool, vol, "-dirty.img");
    /* Two flushes, two extents: btrfs tells sharing per extent. */
    test_write_pattern(dirty, 0, MiB, 1);
    test_write_pattern(dirty, MiB, MiB, 11);
    OK(qubes_volume_stop(vol, &err_));
    OK(qubes_volume_start(vol, &err_));
    test_write_pattern(dirty, 0, MiB, 2); /* rewrite half of it */
    OK(qubes_volume_stop(vol, &err_));
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) space = qubes_volume_get_space(vol, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(space->len, ==, 3); /* current, 1, 2 */
    check_state(vol);
    OK(qubes_volume_start(vol, &err_));
    check_state(vol); /* running: the dirty image is the current one */
    OK(qubes_volume_stop(vol, &err_));
    QubesVolumeSpace *cur = space->pdata[0], *r2 = space->pdata[2];
    g_assert_cmpstr(r2->what, ==, "2");
    g_assert_cmpuint(cur->size, ==, 16 * MiB);
    if (g_str_equal(fs->type, "ext4")) {
        /* Copies: nothing is shared. */
        g_assert_cmpuint(cur->shared, ==, 0);
        g_assert_cmpuint(r2->exclusive, >=, 2 * MiB);
    } else {
        /* Revision 2 shares the untouched MiB with the current image
         * (and the precache) and alone holds the rewritten one. */
        g_assert_cmpuint(r2->shared, >=, MiB);
        g_assert_cmpuint(r2->exclusive, >=, MiB);
        g_assert_cmpuint(r2->exclusive, <, 2 * MiB);
        g_assert_cmpuint(cur->shared, >=, 2 * MiB);
    }
}

static void test_remove(gconstpointer data)
{
    GET_FS(data);
    g_autoptr(QubesPool) pool = test_pool_new(fs, NULL, NULL);
    g_autoptr(QubesVolume) priv = test_origin(pool, "gone", "private", MiB, 2);
    g_autoptr(QubesVolume) vola = test_volatile(pool, "gone", MiB);
    OK(qubes_volume_create(priv, &err_));
    cycle(priv, pool, 1);
    cycle(priv, pool, 2);
    OK(qubes_volume_start(vola, &err_));
    g_autofree char *clean = test_image(pool, priv, ".img");
    g_autofree char *vmdir = g_path_get_dirname(clean);
    OK(qubes_volume_remove(priv, &err_));
    g_autofree char *ls = test_ls(vmdir);
    g_assert_cmpstr(ls, ==, "volatile-dirty.img");
    g_autoptr(QubesVolume) none = qubes_pool_get_volume(pool, priv->vid);
    g_assert_null(none);
    OK(qubes_volume_remove(vola, &err_));
    g_assert_false(test_exists(vmdir));
    OK(qubes_volume_remove(vola, &err_)); /* again: nothing to do */
}

static void test_create_over_stale(gconstpointer data)
{
    GET_FS(data);
    g_autoptr(QubesPool) pool = test_pool_new(fs, NULL, NULL);
    g_autoptr(QubesVolume) vol = test_origin(pool, "again", "private", MiB, 2);
    OK(qubes_volume_create(vol, &err_));
    cycle(vol, pool, 1);
    OK(qubes_volume_start(vol, &err_));
    /* Creating over an existing folder with stale images starts clean. */
    OK(qubes_volume_create(vol, &err_));
    g_autofree char *clean = test_image(pool, vol, ".img");
    g_autofree char *vmdir = g_path_get_dirname(clean);
    g_autofree char *ls = test_ls(vmdir);
    g_assert_cmpstr(ls, ==, "private-precache.img private.img");
    struct stat st;
    test_stat(clean, &st);
    g_assert_cmpint(st.st_blocks, ==, 0);
}

static void test_temporaries(gconstpointer data)
{
    GET_FS(data);
    g_autoptr(QubesPool) pool = test_pool_new(fs, NULL, NULL);
    g_autoptr(QubesVolume) vol = test_origin(pool, "tmp", "private", MiB, 1);
    OK(qubes_volume_create(vol, &err_));
    g_autofree char *clean = test_image(pool, vol, ".img");
    g_autofree char *vmdir = g_path_get_dirname(clean);
    const char *junk[] = {"private.img~abc123", "private-dirty.img~x1",
                          "private.img.3@2020-01-01T00:00:00Z~q",
                          "private-import.img"};
    for (size_t i = 0; i < G_N_ELEMENTS(junk); i++) {
        g_autofree char *p = g_strdup_printf("%s/%s", vmdir, junk[i]);
        plant(p, 1);
    }
    /* Another volume's temporary is not ours to remove. */
    g_autofree char *other = g_strdup_printf("%s/private2.img~zz", vmdir);
    plant(other, 1);
    /* A revision that is the clean image itself: an interrupted commit. */
    g_autofree char *half =
        g_strdup_printf("%s/private.img.1@2020-01-01T00:00:00Z", vmdir);
    g_assert_cmpint(link(clean, half), ==, 0);
    g_autofree char *revs = revisions_str(vol);
    g_assert_cmpstr(revs, ==, ""); /* not listed */
    OK(qubes_volume_start(vol, &err_));
    g_autofree char *ls = test_ls(vmdir);
    g_assert_cmpstr(ls, ==, "private-dirty.img private.img private2.img~zz");
    OK(qubes_volume_stop(vol, &err_));
    g_autofree char *revs2 = revisions_str(vol);
    g_assert_cmpstr(revs2, ==, "1");
}

static void capture_log(const char *domain, GLogLevelFlags level,
                        const char *message, gpointer data)
{
    g_ptr_array_add(data, g_strdup(message));
}

static void test_logging(gconstpointer data)
{
    GET_FS(data);
    g_autoptr(QubesPool) pool = test_pool_new(fs, NULL, NULL);
    g_autoptr(QubesVolume) vol = test_origin(pool, "log", "private", MiB, 1);
    g_autoptr(GPtrArray) msgs = g_ptr_array_new_with_free_func(g_free);
    guint id =
        g_log_set_handler("qubes.storage", G_LOG_LEVEL_INFO, capture_log, msgs);
    OK(qubes_volume_create(vol, &err_));
    cycle(vol, pool, 1);
    OK(qubes_volume_remove(vol, &err_));
    g_log_remove_handler("qubes.storage", id);
    g_autofree char *clean = test_image(pool, vol, ".img");
    g_autofree char *dirty = test_image(pool, vol, "-dirty.img");
    g_autofree char *pre = test_image(pool, vol, "-precache.img");
    g_ptr_array_add(msgs, NULL);
    g_autofree char *all = g_strjoinv("\n", (char **)msgs->pdata);
    g_autofree char *want[] = {
        g_strdup_printf("Created sparse file: %s", clean),
        g_strdup_printf("file: %s -> %s", clean, pre),
        g_strdup_printf("Renamed file: %s -> %s", pre, dirty),
        g_strdup_printf("Hardlinked file: %s -> %s.1@", clean, clean),
        g_strdup_printf("Renamed file: %s -> %s", dirty, clean),
        g_strdup_printf("Removed file: %s", clean),
        g_strdup_printf("Removed empty directory: "),
    };
    for (size_t i = 0; i < G_N_ELEMENTS(want); i++) {
        if (!strstr(all, want[i]))
            g_error("log lacks \"%s\":\n%s", want[i], all);
        g_free(want[i]);
        want[i] = NULL;
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    /* The driver warns about stale files; that is not a test failure. */
    g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
    test_add_all_fs("reflink", "pool-setup", test_pool_setup);
    test_add_all_fs("reflink", "origin-cycle", test_origin_cycle);
    test_add_all_fs("reflink", "revisions", test_revisions);
    test_add_all_fs("reflink", "legacy-revisions", test_legacy_revisions);
    test_add_all_fs("reflink", "snapshot", test_snapshot_kind);
    test_add_all_fs("reflink", "origin-snapshot", test_origin_snapshot_kind);
    test_add_all_fs("reflink", "volatile", test_volatile_kind);
    test_add_all_fs("reflink", "snapshots-disabled", test_snapshots_disabled);
    test_add_all_fs("reflink", "stale-precache", test_stale_precache);
    test_add_all_fs("reflink", "resize", test_resize);
    test_add_all_fs("reflink", "import-data", test_import_data);
    test_add_all_fs("reflink", "import-volume", test_import_same_fs);
    test_add_all_fs("reflink", "space", test_space);
    test_add_all_fs("reflink", "remove", test_remove);
    test_add_all_fs("reflink", "create-over-stale", test_create_over_stale);
    test_add_all_fs("reflink", "temporaries", test_temporaries);
    test_add_all_fs("reflink", "logging", test_logging);
    g_test_add_func("/reflink/import-across-filesystems",
                    test_import_across_filesystems);
    return g_test_run();
}
