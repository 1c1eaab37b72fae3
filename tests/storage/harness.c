#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <linux/types.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

static GHashTable *filesystems; /* type -> TestFs; test process only */
static char *workdir;

static gboolean under_ci(void)
{
    return g_strcmp0(g_getenv("CI"), "true") == 0;
}

static void unavailable(const char *type, const char *why)
{
    g_autofree char *msg =
        g_strdup_printf("no %s filesystem for this test: %s", type, why);
    if (under_ci()) {
        g_test_message("%s", msg);
        g_test_fail();
    } else {
        g_test_skip(msg);
    }
}

char *test_run(const char *const *argv)
{
    g_autofree char *out = NULL, *err = NULL;
    int status = 0;
    g_autoptr(GError) error = NULL;
    g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL,
                 &out, &err, &status, &error);
    g_assert_no_error(error);
    if (!g_spawn_check_wait_status(status, NULL)) {
        g_autofree char *cmd = g_strjoinv(" ", (char **)argv);
        g_test_message("command failed: %s\n%s", cmd, err);
        return NULL;
    }
    return g_steal_pointer(&out);
}

static void cleanup_all(void)
{
    if (!filesystems)
        return;
    GHashTableIter it;
    gpointer v;
    g_hash_table_iter_init(&it, filesystems);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        TestFs *fs = v;
        if (umount2(fs->mountpoint, 0) < 0)
            umount2(fs->mountpoint, MNT_DETACH);
        test_loop_detach(fs->device);
        unlink(fs->image);
        rmdir(fs->mountpoint);
    }
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", workdir);
    if (system(cmd) != 0)
        g_printerr("cannot remove %s\n", workdir);
}

char *test_loop_attach(const char *path)
{
    const char *argv[] = {"losetup", "--find", "--show", path, NULL};
    g_autofree char *out = test_run(argv);
    if (!out)
        return NULL;
    return g_strdup(g_strstrip(out));
}

void test_loop_detach(const char *dev)
{
    if (!dev)
        return;
    const char *argv[] = {"losetup", "-d", dev, NULL};
    g_free(test_run(argv));
}

TestFs *testfs_get(const char *type)
{
    if (!filesystems) {
        filesystems = g_hash_table_new(g_str_hash, g_str_equal);
        workdir = g_dir_make_tmp("qubes-testfs-XXXXXX", NULL);
        g_assert_nonnull(workdir);
        /* Lock files of the test pools, away from the system's. */
        g_autofree char *locks = g_strdup_printf("%s/locks", workdir);
        g_assert_cmpint(g_mkdir_with_parents(locks, 0700), ==, 0);
        g_setenv("QUBES_LOCK_DIR", locks, TRUE);
        atexit(cleanup_all);
    }
    TestFs *fs = g_hash_table_lookup(filesystems, type);
    if (fs)
        return fs;
    if (geteuid() != 0) {
        unavailable(type, "the tests need root for loop devices");
        return NULL;
    }
    g_autofree char *image = g_strdup_printf("%s/%s.img", workdir, type);
    g_autofree char *mnt = g_strdup_printf("%s/%s", workdir, type);
    int fd = open(image, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0 || ftruncate(fd, 1024L << 20) < 0) {
        unavailable(type, g_strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    close(fd);
    g_autofree char *dev = test_loop_attach(image);
    if (!dev) {
        unavailable(type, "losetup failed");
        return NULL;
    }
    const char *mkfs_btrfs[] = {"mkfs.btrfs", "-q", "-f", dev, NULL};
    const char *mkfs_xfs[] = {"mkfs.xfs",  "-q", "-f", "-m",
                              "reflink=1", dev,  NULL};
    const char *mkfs_ext4[] = {"mkfs.ext4", "-q", "-F", dev, NULL};
    const char *const *mkfs = g_str_equal(type, "btrfs") ? mkfs_btrfs
                              : g_str_equal(type, "xfs") ? mkfs_xfs
                                                         : mkfs_ext4;
    g_autofree char *out = test_run(mkfs);
    if (!out || g_mkdir_with_parents(mnt, 0755) < 0 ||
        mount(dev, mnt, type, 0, NULL) < 0) {
        unavailable(type, out ? g_strerror(errno) : "mkfs failed");
        test_loop_detach(dev);
        return NULL;
    }
    fs = g_new0(TestFs, 1);
    fs->type = g_strdup(type);
    fs->image = g_steal_pointer(&image);
    fs->device = g_steal_pointer(&dev);
    fs->mountpoint = g_steal_pointer(&mnt);
    g_hash_table_insert(filesystems, fs->type, fs);
    return fs;
}

/* <linux/fs.h> of this Debian lacks them; the values are the kernel's. */
#define QTEST_FS_IOC_SHUTDOWN _IOR('X', 125, __u32)
#define QTEST_FS_GOING_DOWN_NOLOGFLUSH 0x2

gboolean testfs_shutdown(TestFs *fs)
{
    int fd = open(fs->mountpoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    g_assert_cmpint(fd, >=, 0);
    __u32 flags = QTEST_FS_GOING_DOWN_NOLOGFLUSH;
    int rc = ioctl(fd, QTEST_FS_IOC_SHUTDOWN, &flags);
    int errsv = errno;
    close(fd);
    if (rc < 0) {
        unavailable(fs->type, g_strerror(errsv));
        return FALSE;
    }
    return TRUE;
}

/* After the unmount, the shut-down filesystem must be gone from the
 * device before it is mounted again: otherwise the mount could meet what
 * is left of the old one (its superblock still holding the device, its
 * cached blocks), and the verdict would be about the harness, not the
 * storage. An exclusive open succeeds only once nothing holds the device;
 * then its buffer cache is dropped, so the new mount reads the disk. */
static void wait_device_free(TestFs *fs)
{
    for (int tries = 0;; tries++) {
        int fd = open(fs->device, O_RDONLY | O_EXCL | O_CLOEXEC);
        if (fd >= 0) {
            if (ioctl(fd, BLKFLSBUF, 0) < 0)
                g_error("cannot drop the buffers of %s: %s", fs->device,
                        g_strerror(errno));
            close(fd);
            if (tries)
                g_test_message("%s was still held %d ms after the unmount",
                               fs->device, tries * 10);
            return;
        }
        if (errno != EBUSY || tries >= 3000)
            g_error("%s not free after the unmount: %s", fs->device,
                    g_strerror(errno));
        g_usleep(10 * 1000);
    }
}

/* A descriptor of this process still open in @fs: a leak of the code
 * under test, which must fail the test rather than be waited out. */
static void check_own_descriptors(TestFs *fs)
{
    g_autoptr(GDir) d = g_dir_open("/proc/self/fd", 0, NULL);
    const char *n;
    while (d && (n = g_dir_read_name(d)) != NULL) {
        g_autofree char *link = g_build_filename("/proc/self/fd", n, NULL);
        g_autofree char *target = g_file_read_link(link, NULL);
        if (target && g_str_has_prefix(target, fs->mountpoint) &&
            (target[strlen(fs->mountpoint)] == '/' ||
             target[strlen(fs->mountpoint)] == '\0'))
            g_error("descriptor %s still open on %s at the unmount", n, target);
    }
}

/* Unmounts @fs. EBUSY means another process is in the filesystem for a
 * moment (a path walk, a scan of /tmp on a shared machine): waited out,
 * up to 30 s, and logged. Never a lazy unmount: the old filesystem must
 * be gone before the next mount. */
static void unmount(TestFs *fs)
{
    for (int tries = 0;; tries++) {
        if (umount2(fs->mountpoint, 0) == 0) {
            if (tries)
                g_test_message("%s was busy for %d ms at the unmount",
                               fs->mountpoint, tries * 10);
            return;
        }
        if (errno != EBUSY || tries >= 3000)
            g_error("cannot unmount %s: %s", fs->mountpoint, g_strerror(errno));
        if (tries == 0)
            check_own_descriptors(fs);
        g_usleep(10 * 1000);
    }
}

gboolean testfs_remount(TestFs *fs)
{
    unmount(fs);
    wait_device_free(fs);
    if (mount(fs->device, fs->mountpoint, fs->type, 0, NULL) < 0)
        g_error("cannot mount %s again after the power cut: %s", fs->device,
                g_strerror(errno));
    /* The new mount must answer: a fresh filesystem, not the shut down
     * one (every call of which fails with EIO). */
    int fd = open(fs->mountpoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct statfs st;
    if (fd < 0 || fstatfs(fd, &st) < 0)
        g_error("%s mounted again does not answer: %s", fs->mountpoint,
                g_strerror(errno));
    close(fd);
    return TRUE;
}

gboolean testfs_power_cut(TestFs *fs)
{
    return testfs_shutdown(fs) && testfs_remount(fs);
}

void testfs_sync(TestFs *fs)
{
    int fd = open(fs->mountpoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(syncfs(fd), ==, 0);
    close(fd);
}

char *testfs_new_dir(TestFs *fs, const char *hint)
{
    static int counter;
    return g_strdup_printf("%s/%s-%d", fs->mountpoint, hint, ++counter);
}

static QubesPool *pool_in(TestFs *fs, const char *dir, const char *setup_check,
                          const char *revisions_to_keep)
{
    g_autoptr(GHashTable) opts = g_hash_table_new(g_str_hash, g_str_equal);
    g_hash_table_insert(opts, "dir_path", (char *)dir);
    if (!setup_check && g_str_equal(fs->type, "ext4"))
        setup_check = "no";
    if (setup_check)
        g_hash_table_insert(opts, "setup_check", (char *)setup_check);
    if (revisions_to_keep)
        g_hash_table_insert(opts, "revisions_to_keep",
                            (char *)revisions_to_keep);
    g_autoptr(GError) error = NULL;
    QubesPool *pool = qubes_pool_new("file-reflink", "test", opts, &error);
    g_assert_no_error(error);
    return pool;
}

QubesPool *test_pool_open(TestFs *fs, const char *dir)
{
    return pool_in(fs, dir, NULL, NULL);
}

QubesPool *test_pool_new(TestFs *fs, const char *setup_check,
                         const char *revisions_to_keep)
{
    g_autofree char *dir = testfs_new_dir(fs, "pool");
    QubesPool *pool = pool_in(fs, dir, setup_check, revisions_to_keep);
    g_autoptr(GError) error = NULL;
    g_assert_true(qubes_pool_setup(pool, &error));
    g_assert_no_error(error);
    return pool;
}

const char *test_pool_dir(QubesPool *pool)
{
    g_autoptr(GHashTable) config = qubes_pool_get_config(pool);
    return g_intern_string(g_hash_table_lookup(config, "dir_path"));
}

static QubesVolume *init_volume(QubesPool *pool, QubesVolumeConfig *cfg)
{
    g_autoptr(GError) error = NULL;
    QubesVolume *vol = qubes_pool_init_volume(pool, cfg, &error);
    g_assert_no_error(error);
    return vol;
}

QubesVolume *test_origin(QubesPool *pool, const char *vm, const char *name,
                         guint64 size, int keep)
{
    QubesVolumeConfig cfg = {
        .name = name,
        .vm_name = vm,
        .vm_dir_prefix = "appvms",
        .size = size,
        .rw = TRUE,
        .save_on_stop = TRUE,
        .has_revisions_to_keep = keep != -2,
        .revisions_to_keep = keep,
    };
    return init_volume(pool, &cfg);
}

QubesVolume *test_snapshot(QubesPool *pool, const char *vm, const char *name,
                           const char *source, gboolean save_on_stop)
{
    QubesVolumeConfig cfg = {
        .name = name,
        .vm_name = vm,
        .vm_dir_prefix = "appvms",
        .source = source,
        .rw = TRUE,
        .snap_on_start = TRUE,
        .save_on_stop = save_on_stop,
    };
    return init_volume(pool, &cfg);
}

QubesVolume *test_volatile(QubesPool *pool, const char *vm, guint64 size)
{
    QubesVolumeConfig cfg = {
        .name = "volatile",
        .vm_name = vm,
        .vm_dir_prefix = "appvms",
        .size = size,
        .rw = TRUE,
    };
    return init_volume(pool, &cfg);
}

gboolean test_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

void test_write_pattern(const char *path, guint64 offset, gsize len,
                        guint8 seed)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    g_assert_cmpint(fd, >=, 0);
    g_autofree guint8 *buf = g_malloc(len);
    for (gsize i = 0; i < len; i++)
        buf[i] = (guint8)(seed + i * 7 + (i >> 12));
    g_assert_cmpint(pwrite(fd, buf, len, (off_t)offset), ==, (gssize)len);
    g_assert_cmpint(fsync(fd), ==, 0);
    close(fd);
}

char *test_checksum(const char *path)
{
    /* read in pieces into one buffer: a whole image in memory each time
     * costs the sanitizers' build its page faults, a third of the crash
     * tests' time there */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        g_error("%s: %s", path, g_strerror(errno));
    g_autoptr(GChecksum) sum = g_checksum_new(G_CHECKSUM_SHA256);
    guint8 buf[128 << 10];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        g_checksum_update(sum, buf, n);
    if (n < 0)
        g_error("%s: %s", path, g_strerror(errno));
    close(fd);
    return g_strdup(g_checksum_get_string(sum));
}

void test_stat(const char *path, struct stat *st)
{
    g_assert_cmpint(lstat(path, st), ==, 0);
}

char *test_image(QubesPool *pool, QubesVolume *vol, const char *suffix)
{
    return g_strdup_printf("%s/%s%s", test_pool_dir(pool), vol->vid, suffix);
}

char *test_vol_dir(QubesPool *pool, QubesVolume *vol)
{
    g_autofree char *clean = test_image(pool, vol, ".img");
    return g_path_get_dirname(clean);
}

char *test_revision_path(QubesPool *pool, QubesVolume *vol, const char *id)
{
    g_autofree char *dir = test_vol_dir(pool, vol);
    g_autofree char *prefix = g_strdup_printf("%s.img.%s@", vol->name, id);
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    const char *n;
    while (d && (n = g_dir_read_name(d)) != NULL) {
        if (g_str_has_prefix(n, prefix) && !strchr(n, '~'))
            return g_build_filename(dir, n, NULL);
    }
    return NULL;
}

static gint cmp_names(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char *test_ls(const char *dir)
{
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    if (!d)
        return g_strdup("(none)");
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    const char *n;
    while ((n = g_dir_read_name(d)) != NULL)
        g_ptr_array_add(names, g_strdup(n));
    g_ptr_array_sort(names, cmp_names);
    g_ptr_array_add(names, NULL);
    return g_strjoinv(" ", (char **)names->pdata);
}

void test_add_all_fs(const char *prefix, const char *name,
                     void (*func)(gconstpointer fstype))
{
    static const char *const types[] = {"btrfs", "xfs", "ext4"};
    for (size_t i = 0; i < G_N_ELEMENTS(types); i++) {
        g_autofree char *path =
            g_strdup_printf("/%s/%s/%s", prefix, types[i], name);
        g_test_add_data_func(path, types[i], func);
    }
}
