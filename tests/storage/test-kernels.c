/* test-kernels.c: the linux-kernel driver, on a folder of versions. */
#include "harness.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    char *dir;
    QubesPool *pool;
} Kernels;

static void put(const char *dir, const char *version, const char *file,
                gsize size)
{
    g_autofree char *vdir = g_build_filename(dir, version, NULL);
    g_assert_cmpint(g_mkdir_with_parents(vdir, 0755), ==, 0);
    g_autofree char *path = g_build_filename(vdir, file, NULL);
    g_autofree char *data = g_malloc0(size);
    g_assert_true(g_file_set_contents(path, data, (gssize)size, NULL));
}

static void setup(Kernels *k, gconstpointer data)
{
    k->dir = g_dir_make_tmp("vm-kernels-XXXXXX", NULL);
    put(k->dir, "6.1.0", "vmlinuz", 100);
    put(k->dir, "6.1.0", "initramfs", 100);
    put(k->dir, "6.1.0", "modules.img", 4096);
    put(k->dir, "5.10.0", "vmlinuz", 100); /* no initramfs */
    put(k->dir, "5.10.0", "modules.img", 100);
    g_autofree char *stray = g_build_filename(k->dir, "README", NULL);
    g_assert_true(g_file_set_contents(stray, "not a kernel", -1, NULL));
    g_autoptr(GHashTable) opts = g_hash_table_new(g_str_hash, g_str_equal);
    g_hash_table_insert(opts, "dir_path", k->dir);
    g_autoptr(GError) error = NULL;
    k->pool = qubes_pool_new("linux-kernel", "linux-kernel", opts, &error);
    g_assert_no_error(error);
    OK(qubes_pool_setup(k->pool, &err_));
}

static void teardown(Kernels *k, gconstpointer data)
{
    qubes_pool_free(k->pool);
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", k->dir);
    g_assert_cmpint(system(cmd), ==, 0);
    g_free(k->dir);
}

static QubesVolume *kernel_volume(Kernels *k, const char *version)
{
    QubesVolumeConfig cfg = {
        .name = "kernel", .vid = version, .rw = TRUE /* forced read-only */};
    g_autoptr(GError) error = NULL;
    QubesVolume *vol = qubes_pool_init_volume(k->pool, &cfg, &error);
    g_assert_no_error(error);
    return vol;
}

static void test_volumes(Kernels *k, gconstpointer data)
{
    g_autoptr(QubesVolume) a = kernel_volume(k, "6.1.0");
    /* Many domains share one kernel. */
    g_autoptr(QubesVolume) b = kernel_volume(k, "6.1.0");
    g_assert_false(a->rw);
    OK(qubes_volume_verify(a, &err_));
    OK(qubes_volume_create(a, &err_));
    OK(qubes_volume_start(a, &err_));
    OK(qubes_volume_start(b, &err_));
    g_autofree char *path = qubes_volume_get_path(a);
    g_autofree char *want =
        g_build_filename(k->dir, "6.1.0", "modules.img", NULL);
    g_assert_cmpstr(path, ==, want);
    /* As the reference's LinuxModules: size and usage 0 (modules.img is
     * not the qube's disk), never writable, no revisions. */
    g_assert_cmpuint(qubes_volume_get_size(a), ==, 0);
    g_assert_cmpuint(qubes_volume_get_usage(a), ==, 0);
    g_assert_cmpint(a->revisions_to_keep, ==, 0);
    FAILS(qubes_volume_set_rw(a, TRUE, &err_), QUBES_ERROR_VALUE,
          "LinuxModules supports only read-only volumes");
    OK(qubes_volume_set_rw(a, FALSE, &err_));
    FAILS(qubes_volume_set_revisions_to_keep(a, 1, &err_), QUBES_ERROR_VALUE,
          "LinuxModules supports only revisions_to_keep=0");
    FAILS(qubes_volume_set_revisions_to_keep(a, -1, &err_), QUBES_ERROR_VALUE,
          "LinuxModules supports only revisions_to_keep=0");
    OK(qubes_volume_set_revisions_to_keep(a, 0, &err_));
    /* the pool itself is LinuxKernel (kernels.py) */
    FAILS(qubes_pool_set_revisions_to_keep(k->pool, 2, &err_),
          QUBES_ERROR_VALUE, "LinuxKernel supports only revisions_to_keep=0");
    g_assert_false(qubes_volume_is_dirty(a));
    OK(qubes_volume_stop(a, &err_));
    OK(qubes_volume_remove(a, &err_));
    g_assert_true(test_exists(want)); /* removing a domain keeps kernels */
    g_autoptr(GPtrArray) revs = qubes_volume_list_revisions(a, NULL);
    g_assert_cmpuint(revs->len, ==, 0);

    FAILS(qubes_volume_resize(a, 1 << 20, &err_), QUBES_ERROR_STORAGE_POOL,
          "read-only");
    FAILS(qubes_volume_revert(a, NULL, &err_), QUBES_ERROR_STORAGE_POOL,
          "no revisions");
    FAILS(qubes_volume_import_data(a, 4096, &err_) != NULL,
          QUBES_ERROR_NOT_IMPLEMENTED, "linux-kernel");
    FAILS(qubes_volume_export(a, &err_) != NULL, QUBES_ERROR_NOT_IMPLEMENTED,
          "linux-kernel");
}

static void test_missing(Kernels *k, gconstpointer data)
{
    /* As master: only vmlinuz is required; a kernel without initramfs
     * (or without modules.img) verifies and starts. */
    g_autoptr(QubesVolume) no_initramfs = kernel_volume(k, "5.10.0");
    OK(qubes_volume_verify(no_initramfs, &err_));
    OK(qubes_volume_start(no_initramfs, &err_));
    put(k->dir, "4.19.0", "vmlinuz", 100); /* vmlinuz alone */
    g_autoptr(QubesVolume) bare = kernel_volume(k, "4.19.0");
    OK(qubes_volume_verify(bare, &err_));
    OK(qubes_volume_start(bare, &err_));
    g_autofree char *modules = qubes_volume_get_path(bare);
    g_assert_true(g_str_has_suffix(modules, "/4.19.0/modules.img"));
    g_assert_false(g_file_test(modules, G_FILE_TEST_EXISTS));
    /* Without vmlinuz: refused in master's words, with the path. */
    g_autoptr(QubesVolume) gone = kernel_volume(k, "9.9.9");
    FAILS(qubes_volume_verify(gone, &err_), QUBES_ERROR_STORAGE_POOL,
          "Missing file: ");
    FAILS(qubes_volume_start(gone, &err_), QUBES_ERROR_STORAGE_POOL,
          "9.9.9/vmlinuz");
    /* No kernel from dom0: nothing to check, no path. */
    g_autoptr(QubesVolume) none = kernel_volume(k, NULL);
    g_assert_cmpstr(none->vid, ==, "");
    OK(qubes_volume_verify(none, &err_));
    OK(qubes_volume_start(none, &err_));
    g_assert_null(qubes_volume_get_path(none));
    g_assert_cmpuint(qubes_volume_get_size(none), ==, 0);
}

static void test_list(Kernels *k, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) vols = qubes_pool_list_volumes(k->pool, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(vols->len, ==, 2); /* not README */
    GString *s = g_string_new(NULL);
    for (guint i = 0; i < vols->len; i++) {
        QubesVolume *v = vols->pdata[i];
        g_string_append_printf(s, "%s ", v->vid);
    }
    g_autofree char *got = g_string_free(s, FALSE);
    g_assert_true(g_str_equal(got, "6.1.0 5.10.0 ") ||
                  g_str_equal(got, "5.10.0 6.1.0 "));
    g_autoptr(GHashTable) config = qubes_pool_get_config(k->pool);
    g_assert_cmpstr(g_hash_table_lookup(config, "driver"), ==, "linux-kernel");
    g_assert_cmpstr(g_hash_table_lookup(config, "dir_path"), ==, k->dir);
    g_assert_null(g_hash_table_lookup(config, "revisions_to_keep"));
    const char *const *params = qubes_storage_driver_parameters("linux-kernel");
    g_assert_cmpstr(params[0], ==, "dir_path");
    g_assert_null(params[1]);
}

static void test_missing_folder(void)
{
    g_autoptr(GHashTable) opts = g_hash_table_new(g_str_hash, g_str_equal);
    g_hash_table_insert(opts, "dir_path", "/nonexistent/vm-kernels");
    g_autoptr(GError) error = NULL;
    g_autoptr(QubesPool) pool =
        qubes_pool_new("linux-kernel", "linux-kernel", opts, &error);
    g_assert_no_error(error);
    g_autoptr(GPtrArray) vols = qubes_pool_list_volumes(pool, &error);
    g_assert_null(vols);
    g_assert_error(error, QUBES_ERROR, QUBES_ERROR_STORAGE_POOL);
    g_assert_nonnull(strstr(error->message, "/nonexistent/vm-kernels"));
}

static void test_hostile(Kernels *k, gconstpointer data)
{
    const char *bad[] = {"../6.1.0", "6.1.0/../..", "/boot", "a/b", ".."};
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        QubesVolumeConfig cfg = {.name = "kernel", .vid = bad[i]};
        g_autoptr(GError) error = NULL;
        g_assert_null(qubes_pool_init_volume(k->pool, &cfg, &error));
        g_assert_error(error, QUBES_ERROR, QUBES_ERROR_VALUE);
    }
    /* A version folder that is a link out is not followed. */
    g_autofree char *outside = g_dir_make_tmp("outside-XXXXXX", NULL);
    put(outside, "x", "vmlinuz", 1);
    put(outside, "x", "initramfs", 1);
    put(outside, "x", "modules.img", 1);
    g_autofree char *target = g_build_filename(outside, "x", NULL);
    g_autofree char *link = g_build_filename(k->dir, "evil", NULL);
    g_assert_cmpint(symlink(target, link), ==, 0);
    g_autoptr(QubesVolume) evil = kernel_volume(k, "evil");
    FAILS(qubes_volume_verify(evil, &err_), QUBES_ERROR_STORAGE_POOL,
          "Missing file: ");
    g_autoptr(GPtrArray) vols = qubes_pool_list_volumes(k->pool, NULL);
    g_assert_cmpuint(vols->len, ==, 2);
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", outside);
    g_assert_cmpint(system(cmd), ==, 0);
    /* Kernels are never saved on stop. */
    QubesVolumeConfig rw = {
        .name = "kernel", .vid = "6.1.0", .save_on_stop = TRUE};
    g_autoptr(GError) error = NULL;
    g_assert_null(qubes_pool_init_volume(k->pool, &rw, &error));
    g_assert_error(error, QUBES_ERROR, QUBES_ERROR_STORAGE_POOL);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
#define ADD(path, fn) g_test_add(path, Kernels, NULL, setup, fn, teardown)
    ADD("/kernels/volumes", test_volumes);
    ADD("/kernels/missing", test_missing);
    ADD("/kernels/list", test_list);
    ADD("/kernels/hostile", test_hostile);
    g_test_add_func("/kernels/missing-folder", test_missing_folder);
    return g_test_run();
}
