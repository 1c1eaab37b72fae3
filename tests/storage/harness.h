/* harness.h: real filesystems on loop devices for the storage tests.
 *
 * testfs_get("btrfs" | "xfs" | "ext4") makes a 1 GiB sparse image, binds
 * a loop device, runs mkfs and mounts it, once per test program; all are
 * unmounted and detached at exit. When a filesystem cannot be had, the
 * test is skipped, except under CI=true, where that is a failure.
 */
#pragma once

#include <glib.h>
#include <string.h>
#include <sys/types.h>

#include "storage.h"

/* Gets the filesystem named by the test's data, or returns (the test was
 * marked skipped or failed). */
#define GET_FS(data)                                                           \
    TestFs *fs = testfs_get(data);                                             \
    if (!fs)                                                                   \
    return

/* Asserts that @call, given &err_ as its error argument, succeeds. */
#define OK(call)                                                               \
    do {                                                                       \
        g_autoptr(GError) err_ = NULL;                                         \
        gboolean ok_ = (call);                                                 \
        g_assert_no_error(err_);                                               \
        g_assert_true(ok_);                                                    \
    } while (0)

/* Asserts that @call fails with QUBES_ERROR @code and a message holding
 * @needle. */
#define FAILS(call, code, needle)                                              \
    do {                                                                       \
        g_autoptr(GError) err_ = NULL;                                         \
        gboolean ok_ = (call);                                                 \
        g_assert_false(ok_);                                                   \
        g_assert_error(err_, QUBES_ERROR, (code));                             \
        if (!strstr(err_->message, (needle)))                                  \
            g_error("message \"%s\" lacks \"%s\"", err_->message, (needle));   \
    } while (0)

typedef struct {
    char *type;
    char *image;
    char *device;
    char *mountpoint;
} TestFs;

/* NULL (after marking the test skipped or failed) when unavailable. */
TestFs *testfs_get(const char *type);
/* Simulates a power cut on @fs: FS_IOC_SHUTDOWN without flushing the log
 * (what xfstests does; XFS and ext4 have it), then unmounts and mounts
 * again, which replays the journal. Every fd on @fs must be closed first
 * (free the pools). Returns FALSE (test marked skipped or failed) when the
 * filesystem cannot do it. */
gboolean testfs_power_cut(TestFs *fs);
/* Its two halves: the shutdown alone (every later file operation on @fs
 * fails), and the unmount and mount (journal replay). */
gboolean testfs_shutdown(TestFs *fs);
gboolean testfs_remount(TestFs *fs);
/* syncfs() of @fs: what was written so far is durable. */
void testfs_sync(TestFs *fs);
/* A fresh, not yet existing folder path on @fs (caller frees). */
char *testfs_new_dir(TestFs *fs, const char *hint);

/* Runs a command line (argv) and returns its stdout; fails the test on a
 * non-zero exit. */
char *test_run(const char *const *argv);

/* Pool helpers: a file-reflink pool in a fresh folder on @fs, set up. */
QubesPool *test_pool_new(TestFs *fs, const char *setup_check,
                         const char *revisions_to_keep);
const char *test_pool_dir(QubesPool *pool);
/* The pool test_pool_new(fs, NULL, NULL) made in @dir, opened again (no
 * setup), as after a restart. */
QubesPool *test_pool_open(TestFs *fs, const char *dir);

/* Volume helpers for the four kinds. */
QubesVolume *test_origin(QubesPool *pool, const char *vm, const char *name,
                         guint64 size, int keep);
QubesVolume *test_snapshot(QubesPool *pool, const char *vm, const char *name,
                           const char *source, gboolean save_on_stop);
QubesVolume *test_volatile(QubesPool *pool, const char *vm, guint64 size);

/* File helpers on absolute paths. */
gboolean test_exists(const char *path);
void test_write_pattern(const char *path, guint64 offset, gsize len,
                        guint8 seed);
char *test_checksum(const char *path);
struct stat;
void test_stat(const char *path, struct stat *st);
/* Path of @name in the volume's folder. */
char *test_image(QubesPool *pool, QubesVolume *vol, const char *suffix);
/* The volume's folder (caller frees). */
char *test_vol_dir(QubesPool *pool, QubesVolume *vol);
/* The file of the volume's revision @id, or NULL (caller frees). */
char *test_revision_path(QubesPool *pool, QubesVolume *vol, const char *id);
/* Names in a folder, sorted, joined by spaces. */
char *test_ls(const char *dir);

/* Registers @func for each of btrfs, xfs and ext4 as /PREFIX/FS/NAME. */
void test_add_all_fs(const char *prefix, const char *name,
                     void (*func)(gconstpointer fstype));

/* Loop devices: bind @path, returning "/dev/loopN"; detach. */
char *test_loop_attach(const char *path);
void test_loop_detach(const char *dev);
