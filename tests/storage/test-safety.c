/* test-safety.c: hostile names and options, links planted in a pool, two
 * processes on one volume, and the fsync budget of a VM's start and stop.
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MiB (1024ull * 1024)

static void expect_pool_refused(const char *driver, const char *name,
                                const char *key, const char *value,
                                const char *needle)
{
    g_autoptr(GHashTable) opts = g_hash_table_new(g_str_hash, g_str_equal);
    g_hash_table_insert(opts, "dir_path", "/var/tmp/never-made");
    if (key)
        g_hash_table_insert(opts, (char *)key, (char *)value);
    g_autoptr(GError) error = NULL;
    g_autoptr(QubesPool) pool = qubes_pool_new(driver, name, opts, &error);
    g_assert_null(pool);
    g_assert_nonnull(error);
    g_autofree char *lower = g_ascii_strdown(error->message, -1);
    g_autofree char *want = g_ascii_strdown(needle, -1);
    if (!strstr(lower, want))
        g_error("\"%s\" lacks \"%s\"", error->message, needle);
    g_assert_false(test_exists("/var/tmp/never-made"));
}

static void test_hostile_pool_options(void)
{
    expect_pool_refused("nope", "p", NULL, NULL, "No such pool driver: nope");
    expect_pool_refused("file-reflink", "bad/name", NULL, NULL,
                        "Invalid pool name");
    expect_pool_refused("file-reflink", "", NULL, NULL, "Invalid pool name");
    expect_pool_refused("file-reflink", "p", "dir_path", "relative/dir",
                        "absolute");
    expect_pool_refused("file-reflink", "p", "dir_path", "/a/../etc",
                        "absolute");
    expect_pool_refused("file-reflink", "p", "colour", "red",
                        "takes no option colour");
    expect_pool_refused("file-reflink", "p", "revisions_to_keep", "-2",
                        "revisions_to_keep");
    expect_pool_refused("file-reflink", "p", "revisions_to_keep", "01",
                        "revisions_to_keep");
    expect_pool_refused("file-reflink", "p", "revisions_to_keep", "1x",
                        "revisions_to_keep");
    expect_pool_refused("file-reflink", "p", "revisions_to_keep",
                        "99999999999999999999", "revisions_to_keep");
    expect_pool_refused("file-reflink", "p", "setup_check", "maybe",
                        "setup_check");
    expect_pool_refused("file-reflink", "p", "ephemeral_volatile", "2",
                        "ephemeral_volatile");

    const char *const *params = qubes_storage_driver_parameters("file-reflink");
    g_autofree char *joined = g_strjoinv(" ", (char **)params);
    g_assert_cmpstr(joined, ==,
                    "revisions_to_keep dir_path setup_check "
                    "ephemeral_volatile");
    g_assert_null(qubes_storage_driver_parameters("nope"));
}

static void test_hostile_names(gconstpointer data)
{
    GET_FS(data);
    g_autoptr(QubesPool) pool = test_pool_new(fs, NULL, NULL);
    const char *bad_vids[] = {"../x",      "/abs/x",    "a//b",   "a/./b",
                              "a/b/",      "a/../../b", "a/b\nc", "a/b c",
                              "appvms/..", "a/.",       "a/b/..", "."};
    for (size_t i = 0; i < G_N_ELEMENTS(bad_vids); i++) {
        QubesVolumeConfig cfg = {.name = "private",
                                 .vid = bad_vids[i],
                                 .save_on_stop = TRUE,
                                 .size = MiB};
        g_autoptr(GError) error = NULL;
        g_autoptr(QubesVolume) vol = qubes_pool_init_volume(pool, &cfg, &error);
        g_assert_null(vol);
        g_assert_error(error, QUBES_ERROR, QUBES_ERROR_VALUE);
    }
    const char *bad_vms[] = {"..", "../../etc", "a/b", "", "x\n"};
    for (size_t i = 0; i < G_N_ELEMENTS(bad_vms); i++) {
        QubesVolumeConfig cfg = {.name = "private",
                                 .vm_name = bad_vms[i],
                                 .vm_dir_prefix = "appvms",
                                 .save_on_stop = TRUE};
        g_autoptr(GError) error = NULL;
        g_autoptr(QubesVolume) vol = qubes_pool_init_volume(pool, &cfg, &error);
        g_assert_null(vol);
        g_assert_error(error, QUBES_ERROR, QUBES_ERROR_VALUE);
    }
    /* Unknown VM folder prefixes fail closed. */
    QubesVolumeConfig odd = {.name = "private",
                             .vm_name = "x",
                             .vm_dir_prefix = "etc",
                             .save_on_stop = TRUE};
    g_autoptr(GError) e1 = NULL;
    g_assert_null(qubes_pool_init_volume(pool, &odd, &e1));
    g_assert_error(e1, QUBES_ERROR, QUBES_ERROR_VALUE);
    /* Volume names, sources, and the source rule. */
    const char *bad_names[] = {"", "../root", "a/b", "-x", ".hidden"};
    for (size_t i = 0; i < G_N_ELEMENTS(bad_names); i++) {
        QubesVolumeConfig cfg = {
            .name = bad_names[i], .vm_name = "x", .vm_dir_prefix = "appvms"};
        g_autoptr(GError) error = NULL;
        g_assert_null(qubes_pool_init_volume(pool, &cfg, &error));
        g_assert_error(error, QUBES_ERROR, QUBES_ERROR_VALUE);
    }
    QubesVolumeConfig src = {.name = "root",
                             .vm_name = "x",
                             .vm_dir_prefix = "appvms",
                             .snap_on_start = TRUE,
                             .source = "../../etc"};
    g_autoptr(GError) e2 = NULL;
    g_assert_null(qubes_pool_init_volume(pool, &src, &e2));
    g_assert_error(e2, QUBES_ERROR, QUBES_ERROR_VALUE);
    QubesVolumeConfig nosrc = {.name = "root",
                               .vm_name = "x",
                               .vm_dir_prefix = "appvms",
                               .snap_on_start = TRUE};
    g_autoptr(GError) e3 = NULL;
    g_assert_null(qubes_pool_init_volume(pool, &nosrc, &e3));
    g_assert_error(e3, QUBES_ERROR, QUBES_ERROR_VALUE);
    QubesVolumeConfig keep = {.name = "private",
                              .vm_name = "x",
                              .vm_dir_prefix = "appvms",
                              .has_revisions_to_keep = TRUE,
                              .revisions_to_keep = -5};
    g_autoptr(GError) e4 = NULL;
    g_assert_null(qubes_pool_init_volume(pool, &keep, &e4));
    g_assert_error(e4, QUBES_ERROR, QUBES_ERROR_VALUE);
    /* Two volumes cannot share a vid. */
    g_autoptr(QubesVolume) one = test_origin(pool, "dup", "private", MiB, 1);
    QubesVolumeConfig dup = {
        .name = "private", .vm_name = "dup", .vm_dir_prefix = "appvms"};
    g_autoptr(GError) e5 = NULL;
    g_assert_null(qubes_pool_init_volume(pool, &dup, &e5));
    g_assert_error(e5, QUBES_ERROR, QUBES_ERROR_STORAGE_POOL);
    /* Nothing was created by any of it. */
    g_autofree char *appvms = g_strdup_printf("%s/appvms", test_pool_dir(pool));
    g_autofree char *ls = test_ls(appvms);
    g_assert_cmpstr(ls, ==, "");
}

/* A folder outside the pool that nothing may touch, with a file in it. */
static char *make_outside(TestFs *fs, char **secret_sum)
{
    char *outside = testfs_new_dir(fs, "outside");
    g_assert_cmpint(g_mkdir_with_parents(outside, 0755), ==, 0);
    g_autofree char *secret = g_strdup_printf("%s/secret.img", outside);
    g_assert_true(g_file_set_contents(secret, "secret data", -1, NULL));
    *secret_sum = test_checksum(secret);
    return outside;
}

static void assert_outside_untouched(const char *outside,
                                     const char *secret_sum)
{
    g_autofree char *ls = test_ls(outside);
    g_assert_cmpstr(ls, ==, "secret.img");
    g_autofree char *secret = g_strdup_printf("%s/secret.img", outside);
    g_autofree char *sum = test_checksum(secret);
    g_assert_cmpstr(sum, ==, secret_sum);
}

static void test_planted_links(gconstpointer data)
{
    GET_FS(data);
    g_autoptr(QubesPool) pool = test_pool_new(fs, NULL, NULL);
    g_autofree char *secret_sum = NULL;
    g_autofree char *outside = make_outside(fs, &secret_sum);
    const char *dir = test_pool_dir(pool);

    /* A VM folder that is a link out of the pool. */
    g_autofree char *evil = g_strdup_printf("%s/appvms/evil", dir);
    g_assert_cmpint(symlink(outside, evil), ==, 0);
    g_autoptr(QubesVolume) ev = test_origin(pool, "evil", "private", MiB, 1);
    g_autoptr(GError) e1 = NULL;
    g_assert_false(qubes_volume_create(ev, &e1));
    g_assert_error(e1, QUBES_ERROR, QUBES_ERROR_STORAGE_POOL);
    g_assert_nonnull(strstr(e1->message, "links are not followed"));
    g_autoptr(GError) e1b = NULL;
    g_assert_false(qubes_volume_start(ev, &e1b));
    g_autoptr(GError) e1c = NULL;
    g_assert_false(qubes_volume_remove(ev, &e1c));
    g_assert_false(qubes_volume_is_dirty(ev));
    assert_outside_untouched(outside, secret_sum);

    /* The pool's appvms/ itself replaced by a link. */
    g_autoptr(QubesPool) pool2 = test_pool_new(fs, NULL, NULL);
    const char *dir2 = test_pool_dir(pool2);
    g_autofree char *appvms2 = g_strdup_printf("%s/appvms", dir2);
    g_assert_cmpint(rmdir(appvms2), ==, 0);
    g_assert_cmpint(symlink(outside, appvms2), ==, 0);
    g_autoptr(QubesVolume) v2 = test_origin(pool2, "x", "private", MiB, 1);
    g_autoptr(GError) e2 = NULL;
    g_assert_false(qubes_volume_create(v2, &e2));
    assert_outside_untouched(outside, secret_sum);

    /* Images that are links: never read, written or synced through. */
    g_autoptr(QubesVolume) vol = test_origin(pool, "good", "private", MiB, 1);
    OK(qubes_volume_create(vol, &err_));
    /* A revision that is a link out: not listed, not reverted to. */
    OK(qubes_volume_start(vol, &err_));
    OK(qubes_volume_stop(vol, &err_));
    g_autofree char *rev1 = test_revision_path(pool, vol, "1");
    g_assert_nonnull(rev1);
    g_autofree char *vdir = test_vol_dir(pool, vol);
    g_autofree char *rev9 =
        g_strdup_printf("%s/private.img.9%s", vdir, strchr(rev1, '@'));
    g_autofree char *secret_img = g_strdup_printf("%s/secret.img", outside);
    g_assert_cmpint(symlink(secret_img, rev9), ==, 0);
    g_autoptr(GError) el = NULL;
    g_autoptr(GPtrArray) revs = qubes_volume_list_revisions(vol, &el);
    g_assert_no_error(el);
    g_assert_cmpuint(revs->len, ==, 1);
    g_assert_cmpstr(((QubesRevision *)revs->pdata[0])->id, ==, "1");
    g_autoptr(GError) e9 = NULL;
    g_assert_false(qubes_volume_revert(vol, "9", &e9));
    g_assert_cmpint(unlink(rev9), ==, 0);
    assert_outside_untouched(outside, secret_sum);
    g_autofree char *secret = g_strdup_printf("%s/secret.img", outside);
    g_autofree char *clean = test_image(pool, vol, ".img");
    g_autofree char *pre = test_image(pool, vol, "-precache.img");
    g_autofree char *dirty = test_image(pool, vol, "-dirty.img");
    g_assert_cmpint(unlink(clean), ==, 0);
    g_assert_cmpint(unlink(pre), ==, 0);
    g_assert_cmpint(symlink(secret, clean), ==, 0);
    g_autoptr(GError) e3 = NULL;
    g_assert_false(qubes_volume_start(vol, &e3)); /* copy refuses it */
    g_assert_false(test_exists(dirty));
    /* Nor kept as a revision by a revert (the link would be renamed). */
    g_autoptr(GError) e3b = NULL;
    g_assert_false(qubes_volume_revert(vol, "1", &e3b));
    g_assert_error(e3b, QUBES_ERROR, QUBES_ERROR_STORAGE_POOL);
    struct stat lst;
    g_assert_cmpint(lstat(clean, &lst), ==, 0);
    g_assert_true(S_ISLNK(lst.st_mode));
    g_assert_nonnull(rev1);
    g_assert_true(test_exists(rev1));
    g_autoptr(GError) e4 = NULL;
    g_assert_cmpint(qubes_volume_export_open(vol, &e4), ==, -1);
    g_assert_nonnull(e4);
    /* A planted dirty link is not synced or committed through. */
    g_assert_cmpint(unlink(clean), ==, 0);
    g_assert_cmpint(symlink(secret, dirty), ==, 0);
    g_autoptr(GError) e5 = NULL;
    g_assert_false(qubes_volume_stop(vol, &e5));
    g_assert_nonnull(e5);
    /* Removing the volume removes the links, not what they point to. */
    OK(qubes_volume_remove(vol, &err_));
    assert_outside_untouched(outside, secret_sum);

    /* A snapshot's source folder that is a link out. */
    g_autofree char *tpl = g_strdup_printf("%s/appvms/tpl", dir);
    if (symlink(outside, tpl) < 0)
        g_error("symlink %s: %s", tpl, g_strerror(errno));
    g_autoptr(QubesVolume) snap =
        test_snapshot(pool, "snap", "root", "appvms/tpl/secret", FALSE);
    g_autoptr(GError) e6 = NULL;
    g_assert_false(qubes_volume_start(snap, &e6));
    g_assert_nonnull(strstr(e6->message, "links are not followed"));
    assert_outside_untouched(outside, secret_sum);
}

static char *self_exe;

/* The second process of test_two_processes: start appvms/two/private. */
static int start_volume_main(const char *dir)
{
    g_autoptr(GHashTable) opts = g_hash_table_new(g_str_hash, g_str_equal);
    g_hash_table_insert(opts, "dir_path", (char *)dir);
    g_hash_table_insert(opts, "setup_check", "no");
    g_autoptr(QubesPool) pool =
        qubes_pool_new("file-reflink", "other", opts, NULL);
    QubesVolumeConfig cfg = {.name = "private",
                             .vm_name = "two",
                             .vm_dir_prefix = "appvms",
                             .size = MiB,
                             .rw = TRUE,
                             .save_on_stop = TRUE};
    g_autoptr(QubesVolume) vol = qubes_pool_init_volume(pool, &cfg, NULL);
    return vol && qubes_volume_start(vol, NULL) ? 0 : 1;
}

/* A second process that starts the volume while we hold its lock must
 * wait for us. */
static void test_two_processes(gconstpointer data)
{
    GET_FS(data);
    g_autoptr(QubesPool) pool = test_pool_new(fs, NULL, NULL);
    g_autoptr(QubesVolume) vol = test_origin(pool, "two", "private", MiB, 1);
    OK(qubes_volume_create(vol, &err_));
    g_autofree char *dirty = test_image(pool, vol, "-dirty.img");
    OK(qubes_volume_lock(vol, &err_));
    /* Another process (this program again): its own pool and volume. */
    const char *argv[] = {self_exe, "--start-volume", test_pool_dir(pool),
                          NULL};
    GPid pid;
    g_autoptr(GError) error = NULL;
    g_spawn_async(NULL, (char **)argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, NULL,
                  NULL, &pid, &error);
    g_assert_no_error(error);
    g_usleep(400 * 1000);
    int status;
    g_assert_cmpint(waitpid(pid, &status, WNOHANG), ==, 0); /* waiting */
    g_assert_false(test_exists(dirty));
    qubes_volume_unlock(vol);
    g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
    g_assert_true(WIFEXITED(status));
    g_assert_cmpint(WEXITSTATUS(status), ==, 0);
    g_assert_true(test_exists(dirty));
    /* The lock file is gone once nobody holds it. */
    g_autofree char *vmdir = g_path_get_dirname(dirty);
    g_autofree char *ls = test_ls(vmdir);
    g_assert_cmpstr(ls, ==, "private-dirty.img private.img");
}

/* Threads of one process on one volume serialize too. */
typedef struct {
    QubesVolume *vol;
    int iterations;
} Worker;

static gpointer worker(gpointer data)
{
    Worker *w = data;
    for (int i = 0; i < w->iterations; i++) {
        g_autoptr(GError) error = NULL;
        if (!qubes_volume_start(w->vol, &error) ||
            !qubes_volume_stop(w->vol, &error))
            return g_strdup(error->message);
    }
    return NULL;
}

static void test_threads(gconstpointer data)
{
    GET_FS(data);
    g_autoptr(QubesPool) pool = test_pool_new(fs, NULL, "3");
    g_autoptr(QubesVolume) vol = test_origin(pool, "thr", "private", MiB, -2);
    OK(qubes_volume_create(vol, &err_));
    Worker w = {vol, 20};
    GThread *t[4];
    for (int i = 0; i < 4; i++)
        t[i] = g_thread_new("worker", worker, &w);
    for (int i = 0; i < 4; i++) {
        g_autofree char *err = g_thread_join(t[i]);
        g_assert_null(err);
    }
    /* Interleaved starts and stops commit fewer than 80 times, but each
     * commit numbered its revision once, and nothing is left over. */
    g_autoptr(GPtrArray) revs = qubes_volume_list_revisions(vol, NULL);
    g_assert_cmpuint(revs->len, ==, 3);
    guint64 first =
        g_ascii_strtoull(((QubesRevision *)revs->pdata[0])->id, NULL, 10);
    for (guint i = 1; i < 3; i++)
        g_assert_cmpuint(
            g_ascii_strtoull(((QubesRevision *)revs->pdata[i])->id, NULL, 10),
            ==, first + i);
    g_assert_false(qubes_volume_is_dirty(vol));
    g_autofree char *clean = test_image(pool, vol, ".img");
    g_autofree char *vmdir = g_path_get_dirname(clean);
    g_autofree char *ls = test_ls(vmdir);
    g_autofree char *want = g_strdup_printf(
        "private-precache.img private.img private.img.%" G_GUINT64_FORMAT "@",
        first);
    g_assert_true(g_str_has_prefix(ls, want));
    g_assert_null(strstr(ls, "~"));
    g_assert_null(strstr(ls, ".lock"));
}

/* One start+stop of an AppVM (root snapshot, private origin, volatile):
 * 3 fsyncs on reflink filesystems, 4 where copies stand in for reflinks
 * (the precache copy must be synced before it is named). */
static void test_fsync_budget(gconstpointer data)
{
    GET_FS(data);
    g_autoptr(QubesPool) pool = test_pool_new(fs, NULL, NULL);
    g_autoptr(QubesVolume) tpl = test_origin(pool, "tpl", "root", 8 * MiB, 1);
    OK(qubes_volume_create(tpl, &err_));
    g_autoptr(QubesVolume) root =
        test_snapshot(pool, "app", "root", tpl->vid, FALSE);
    g_autoptr(QubesVolume) priv =
        test_origin(pool, "app", "private", 8 * MiB, 2);
    g_autoptr(QubesVolume) vola = test_volatile(pool, "app", 8 * MiB);
    QubesVolume *vols[] = {root, priv, vola};
    for (int i = 0; i < 3; i++)
        OK(qubes_volume_create(vols[i], &err_));
    g_autofree char *dirty = test_image(pool, priv, "-dirty.img");
    for (int round = 0; round < 3; round++) {
        guint64 before = qubes_pool_get_fsync_count(pool);
        for (int i = 0; i < 3; i++)
            OK(qubes_volume_start(vols[i], &err_));
        test_write_pattern(dirty, 0, 4096, (guint8)round);
        for (int i = 0; i < 3; i++)
            OK(qubes_volume_stop(vols[i], &err_));
        guint64 used = qubes_pool_get_fsync_count(pool) - before;
        g_test_message("fsyncs per cycle on %s: %" G_GUINT64_FORMAT, fs->type,
                       used);
        g_assert_cmpuint(used, ==, g_str_equal(fs->type, "ext4") ? 4 : 3);
    }
}

int main(int argc, char **argv)
{
    if (argc == 3 && g_str_equal(argv[1], "--start-volume"))
        return start_volume_main(argv[2]);
    self_exe = g_file_read_link("/proc/self/exe", NULL);
    g_test_init(&argc, &argv, NULL);
    g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
    g_test_add_func("/safety/hostile-pool-options", test_hostile_pool_options);
    test_add_all_fs("safety", "hostile-names", test_hostile_names);
    test_add_all_fs("safety", "planted-links", test_planted_links);
    test_add_all_fs("safety", "two-processes", test_two_processes);
    test_add_all_fs("safety", "threads", test_threads);
    test_add_all_fs("safety", "fsync-budget", test_fsync_budget);
    return g_test_run();
}
