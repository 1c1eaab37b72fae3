/* test-failpoints.c: a failure, or a power cut, at each step of each
 * operation.
 *
 * For every scenario the operation is first run clean, which gives the
 * "before" and "after" states and the number N of file steps it takes.
 * Then, for each k in 1..N, the scenario is set up afresh and the k-th
 * step fails with EIO. Required each time:
 *   - the operation reports the error;
 *   - the volume is in the state before or after the operation: the same
 *     committed image, running image and listed revisions, byte for byte
 *     operations that only delete (remove, create over stale images, the
 *     stop of a snapshot, which holds no committed data of its own) may
 *     stop half-way, with the committed image as before or gone, and a
 *     retry completes them;
 *   - a precache that looks fresh (same size and mtime as the committed
 *     image) holds the same data;
 *   - after recovery (a stop, as the daemon does at start for domains
 *     that are not running) no temporary, unfinished revision, import or
 *     lock file is left, and the committed data is intact.
 *
 * With --kill, /kill/FS/SCENARIO does the same with the process killed
 * (SIGKILL) at the k-th step instead: no error path runs, the volume's
 * lock dies with the process, and a fresh process (the pool opened anew)
 * must find the volume before or after and recover it.
 *
 * With --full, /full/FS/SCENARIO fills the filesystem before the k-th
 * step and lets it run: the operation succeeds (state after) or fails
 * with an error that names the pool, leaving the volume before or after;
 * then, with the space freed, the same operation succeeds.
 *
 * With --cut, /cut/FS/SCENARIO does the same with a power cut instead of an
 * error (XFS and ext4, which have FS_IOC_SHUTDOWN): at the k-th step the
 * filesystem is shut down without a log flush, so nothing that was not yet
 * durable reaches the disk and every later step fails; then it is mounted again
 * (journal replay), the pool and volumes are opened anew from their
 * configuration, and the same checks run on what the disk holds. The
 * state before each trial is made durable first (syncfs), so "before"
 * means what was on disk when the power went.
 */
#include "harness.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

#define MiB (1024ull * 1024)

/* The volumes a scenario works on; made again after a power cut. */
typedef enum {
    VOLS_ORIGIN,        /* vol: vm:private, revisions_to_keep 2 */
    VOLS_ORIGIN_SOURCE, /* and other: src:private to import from */
    VOLS_SNAPSHOT,      /* other: tpl:root; vol: app:root, its snapshot */
    VOLS_VOLATILE,      /* vol: app:volatile */
    VOLS_NOSNAP,        /* vol: vm:private, revisions_to_keep -1 */
} Vols;

typedef struct {
    TestFs *fs;
    char *dir; /* the pool's folder */
    QubesPool *pool;
    QubesVolume *vol; /* the volume under test */
    QubesVolume *other;
} Ctx;

typedef struct {
    const char *name;
    Vols vols;
    void (*setup)(Ctx *c);
    gboolean (*op)(Ctx *c, GError **error);
    gboolean partial_ok; /* deletes on purpose: see partial_ok() */
    /* Its result holds no data of its own (a snapshot's or a volatile
     * volume's running image, made and dropped without a folder fsync on
     * purpose): a cut right after it may undo it; the next start makes
     * the image again. */
    gboolean disposable;
} Scenario;

static char *sum_or_none(const char *path)
{
    return test_exists(path) ? test_checksum(path) : g_strdup("none");
}

static char *vm_dir(Ctx *c)
{
    return test_vol_dir(c->pool, c->vol);
}

/* The observable state of the volume under test. */
static char *state(Ctx *c)
{
    g_autofree char *clean = test_image(c->pool, c->vol, ".img");
    g_autofree char *dirty = test_image(c->pool, c->vol, "-dirty.img");
    g_autofree char *cs = sum_or_none(clean);
    g_autofree char *ds = sum_or_none(dirty);
    GString *s = g_string_new(NULL);
    g_string_append_printf(
        s, "clean=%.12s dirty=%.12s size=%" G_GUINT64_FORMAT " revs=[", cs, ds,
        qubes_volume_get_size(c->vol));
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) revs = qubes_volume_list_revisions(c->vol, &error);
    g_assert_no_error(error);
    for (guint i = 0; i < revs->len; i++) {
        QubesRevision *r = revs->pdata[i];
        g_autofree char *p = test_revision_path(c->pool, c->vol, r->id);
        if (p) {
            g_autofree char *rs = test_checksum(p);
            g_string_append_printf(s, " %s:%.12s", r->id, rs);
        }
    }
    g_string_append(s, " ]");
    return g_string_free(s, FALSE);
}

static void check_precache(Ctx *c)
{
    g_autofree char *clean = test_image(c->pool, c->vol, ".img");
    g_autofree char *pre = test_image(c->pool, c->vol, "-precache.img");
    struct stat a, b;
    if (lstat(pre, &b) < 0 || lstat(clean, &a) < 0)
        return;
    if (a.st_size != b.st_size || a.st_mtim.tv_sec != b.st_mtim.tv_sec ||
        a.st_mtim.tv_nsec != b.st_mtim.tv_nsec)
        return; /* stale: the next start drops it */
    g_autofree char *s1 = test_checksum(clean);
    g_autofree char *s2 = test_checksum(pre);
    g_assert_cmpstr(s1, ==, s2);
}

static void check_no_leftovers(Ctx *c)
{
    g_autofree char *dir = vm_dir(c);
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    if (!d)
        return;
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) revs = qubes_volume_list_revisions(c->vol, &error);
    guint rev_files = 0;
    const char *n;
    while ((n = g_dir_read_name(d)) != NULL) {
        if (strchr(n, '~') || g_str_has_suffix(n, ".lock") ||
            g_str_has_suffix(n, "-import.img"))
            g_error("left over after recovery: %s/%s", dir, n);
        g_autofree char *prefix = g_strdup_printf("%s.img.", c->vol->name);
        if (g_str_has_prefix(n, prefix))
            rev_files++;
    }
    /* Every revision file is a listed one (none unfinished). */
    g_assert_cmpuint(rev_files, ==, revs->len);
}

static void make_vols(Ctx *c, Vols vols)
{
    switch (vols) {
    case VOLS_ORIGIN:
        c->vol = test_origin(c->pool, "vm", "private", 4 * MiB, 2);
        break;
    case VOLS_ORIGIN_SOURCE:
        c->vol = test_origin(c->pool, "vm", "private", 4 * MiB, 2);
        c->other = test_origin(c->pool, "src", "private", 2 * MiB, 1);
        break;
    case VOLS_SNAPSHOT:
        c->other = test_origin(c->pool, "tpl", "root", 4 * MiB, 1);
        c->vol = test_snapshot(c->pool, "app", "root", c->other->vid, FALSE);
        break;
    case VOLS_VOLATILE:
        c->vol = test_volatile(c->pool, "app", 4 * MiB);
        break;
    case VOLS_NOSNAP:
        c->vol = test_origin(c->pool, "vm", "private", 4 * MiB, -1);
        break;
    }
}

/* A new pool with the scenario's volumes set up, durably. */
static Ctx *ctx_new(TestFs *fs, const Scenario *sc)
{
    Ctx *c = g_new0(Ctx, 1);
    c->fs = fs;
    c->pool = test_pool_new(fs, NULL, NULL);
    c->dir = g_strdup(test_pool_dir(c->pool));
    make_vols(c, sc->vols);
    sc->setup(c);
    testfs_sync(fs);
    /* A running volume also holds a write the VM has not flushed: a power
     * cut may lose it until the operation commits it, never after. */
    g_autofree char *dirty = test_image(c->pool, c->vol, "-dirty.img");
    if (qubes_volume_is_dirty(c->vol) && test_exists(dirty))
        test_write_pattern(dirty, MiB, 64 * 1024, 0x5a);
    return c;
}

static void ctx_close(Ctx *c)
{
    g_clear_pointer(&c->vol, qubes_volume_unref);
    g_clear_pointer(&c->other, qubes_volume_unref);
    g_clear_pointer(&c->pool, qubes_pool_free);
}

/* The pool and volumes opened again from their configuration, as the
 * daemon does at start. */
static void ctx_reopen(Ctx *c, const Scenario *sc)
{
    c->pool = test_pool_open(c->fs, c->dir);
    make_vols(c, sc->vols);
}

static void ctx_free(Ctx *c)
{
    ctx_close(c);
    g_free(c->dir);
    g_free(c);
}

typedef struct {
    int target;
    int count;
    char *hit;
    TestFs *cut;   /* power cut there instead of an error */
    gboolean kill; /* or SIGKILL */
    TestFs *fill;  /* or fill the filesystem and go on */
} Failpoint;

static char *filler_path(TestFs *fs)
{
    return g_build_filename(fs->mountpoint, "filler", NULL);
}

/* Takes every free block: fallocate in halving chunks down to 4 KiB. */
static void fill_fs(TestFs *fs)
{
    g_autofree char *path = filler_path(fs);
    int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    g_assert_cmpint(fd, >=, 0);
    struct statvfs sv;
    g_assert_cmpint(fstatvfs(fd, &sv), ==, 0);
    off_t end = 0;
    for (off_t chunk = (off_t)(sv.f_bavail * sv.f_frsize); chunk >= 4096;
         chunk /= 2)
        while (fallocate(fd, 0, end, chunk) == 0)
            end += chunk;
    close(fd);
}

static void unfill_fs(TestFs *fs)
{
    g_autofree char *path = filler_path(fs);
    unlink(path);
    testfs_sync(fs); /* btrfs frees the blocks with its next commit */
}

static gboolean failpoint(const char *step, const char *path, gpointer data)
{
    Failpoint *fp = data;
    if (++fp->count != fp->target)
        return FALSE;
    fp->hit = g_strdup_printf("%s %s", step, path);
    if (fp->cut)
        g_assert_true(testfs_shutdown(fp->cut));
    if (fp->kill)
        raise(SIGKILL);
    if (fp->fill) {
        fill_fs(fp->fill);
        return FALSE; /* the step runs, on a full disk */
    }
    return TRUE;
}

static void cycle(Ctx *c, guint8 seed)
{
    OK(qubes_volume_start(c->vol, &err_));
    g_autofree char *dirty = test_image(c->pool, c->vol, "-dirty.img");
    test_write_pattern(dirty, (guint64)seed * 4096, 4096, seed);
    OK(qubes_volume_stop(c->vol, &err_));
}

/* ---- scenarios ---- */

static void setup_nothing(Ctx *c)
{
}

static void setup_stopped_origin(Ctx *c)
{
    OK(qubes_volume_create(c->vol, &err_));
    cycle(c, 1);
    cycle(c, 2);
    cycle(c, 3);
}

static void setup_stopped_no_precache(Ctx *c)
{
    setup_stopped_origin(c);
    g_autofree char *pre = test_image(c->pool, c->vol, "-precache.img");
    g_assert_cmpint(unlink(pre), ==, 0);
}

static void setup_running_origin(Ctx *c)
{
    setup_stopped_origin(c);
    OK(qubes_volume_start(c->vol, &err_));
    g_autofree char *dirty = test_image(c->pool, c->vol, "-dirty.img");
    test_write_pattern(dirty, 0, 64 * 1024, 9);
}

static void setup_importing(Ctx *c)
{
    setup_stopped_origin(c);
    g_autofree char *path = NULL;
    OK((path = qubes_volume_import_data(c->vol, 8 * MiB, &err_)) != NULL);
    test_write_pattern(path, MiB, 64 * 1024, 7);
}

static void setup_import_source(Ctx *c)
{
    setup_stopped_origin(c);
    OK(qubes_volume_create(c->other, &err_));
    OK(qubes_volume_start(c->other, &err_));
    g_autofree char *dirty = test_image(c->pool, c->other, "-dirty.img");
    test_write_pattern(dirty, 0, 128 * 1024, 5);
    OK(qubes_volume_stop(c->other, &err_));
}

static void setup_snapshot(Ctx *c)
{
    OK(qubes_volume_create(c->other, &err_));
    OK(qubes_volume_start(c->other, &err_));
    g_autofree char *dirty = test_image(c->pool, c->other, "-dirty.img");
    test_write_pattern(dirty, 0, 64 * 1024, 3);
    OK(qubes_volume_stop(c->other, &err_));
}

static void setup_running_snapshot(Ctx *c)
{
    setup_snapshot(c);
    OK(qubes_volume_start(c->vol, &err_));
}

static void setup_nosnap(Ctx *c)
{
    OK(qubes_volume_create(c->vol, &err_));
}

static void setup_running_nosnap(Ctx *c)
{
    setup_nosnap(c);
    OK(qubes_volume_start(c->vol, &err_));
    g_autofree char *dirty = test_image(c->pool, c->vol, "-dirty.img");
    test_write_pattern(dirty, 0, 64 * 1024, 9);
}

static gboolean op_create(Ctx *c, GError **e)
{
    return qubes_volume_create(c->vol, e);
}

static gboolean op_start(Ctx *c, GError **e)
{
    return qubes_volume_start(c->vol, e);
}

static gboolean op_stop(Ctx *c, GError **e)
{
    return qubes_volume_stop(c->vol, e);
}

static gboolean op_revert(Ctx *c, GError **e)
{
    return qubes_volume_revert(c->vol, NULL, e);
}

static gboolean op_revert_oldest(Ctx *c, GError **e)
{
    g_autoptr(GPtrArray) revs = qubes_volume_list_revisions(c->vol, NULL);
    return qubes_volume_revert(c->vol, ((QubesRevision *)revs->pdata[0])->id,
                               e);
}

static gboolean op_resize(Ctx *c, GError **e)
{
    return qubes_volume_resize(c->vol, 8 * MiB, e);
}

static gboolean op_import_end(Ctx *c, GError **e)
{
    return qubes_volume_import_data_end(c->vol, TRUE, e);
}

static gboolean op_import_volume(Ctx *c, GError **e)
{
    return qubes_volume_import_volume(c->vol, c->other, NULL, NULL, e);
}

static gboolean op_remove(Ctx *c, GError **e)
{
    return qubes_volume_remove(c->vol, e);
}

static const Scenario scenarios[] = {
    {"create", VOLS_ORIGIN, setup_nothing, op_create, FALSE},
    {"create-over-existing", VOLS_ORIGIN, setup_stopped_origin, op_create,
     TRUE},
    {"start", VOLS_ORIGIN, setup_stopped_origin, op_start, FALSE},
    {"start-without-precache", VOLS_ORIGIN, setup_stopped_no_precache, op_start,
     FALSE},
    {"stop", VOLS_ORIGIN, setup_running_origin, op_stop, FALSE},
    {"revert-latest", VOLS_ORIGIN, setup_stopped_origin, op_revert, FALSE},
    {"revert-oldest", VOLS_ORIGIN, setup_stopped_origin, op_revert_oldest,
     FALSE},
    {"resize", VOLS_ORIGIN, setup_stopped_origin, op_resize, FALSE},
    {"resize-running", VOLS_ORIGIN, setup_running_origin, op_resize, FALSE},
    {"import-data-end", VOLS_ORIGIN, setup_importing, op_import_end, FALSE},
    {"import-volume", VOLS_ORIGIN_SOURCE, setup_import_source, op_import_volume,
     FALSE},
    {"remove", VOLS_ORIGIN, setup_running_origin, op_remove, TRUE},
    {"snapshot-start", VOLS_SNAPSHOT, setup_snapshot, op_start, FALSE, TRUE},
    {"snapshot-stop", VOLS_SNAPSHOT, setup_running_snapshot, op_stop, TRUE,
     TRUE},
    {"volatile-start", VOLS_VOLATILE, setup_nothing, op_start, FALSE, TRUE},
    {"nosnap-start", VOLS_NOSNAP, setup_nosnap, op_start, FALSE},
    {"nosnap-stop", VOLS_NOSNAP, setup_running_nosnap, op_stop, FALSE},
};

typedef enum {
    MODE_EIO,  /* the step fails with an error */
    MODE_CUT,  /* the power is cut before the step */
    MODE_KILL, /* the process is killed (SIGKILL) before the step */
    MODE_FULL, /* the filesystem is filled before the step */
} Mode;

typedef struct {
    const char *fstype;
    const Scenario *sc;
    Mode mode;
} Case;

/* For remove and create over stale images, which delete on purpose: the
 * committed image is as before or gone, and a retry completes. */
static gboolean partial_ok(Ctx *c, const Scenario *sc, const char *s,
                           const char *before, const char *after)
{
    const char *a = strstr(s, "clean="), *b = strstr(before, "clean=");
    if (strncmp(a, b, 18) != 0 && !g_str_has_prefix(a, "clean=none"))
        return FALSE;
    OK(sc->op(c, &err_));
    g_autofree char *retried = state(c);
    g_assert_cmpstr(retried, ==, after);
    return TRUE;
}

/* Whether two states differ at most in the running image's checksum. */
static gboolean same_but_dirty(const char *a, const char *b)
{
    const char *da = strstr(a, "dirty="), *db = strstr(b, "dirty=");
    const char *ea = strchr(da, ' '), *eb = strchr(db, ' ');
    return da - a == db - b && strncmp(a, b, (size_t)(da - a)) == 0 &&
           strcmp(ea, eb) == 0 && strncmp(da, "dirty=none", 10) != 0 &&
           strncmp(db, "dirty=none", 10) != 0;
}

static void run_case(gconstpointer data)
{
    const Case *tc = data;
    gboolean cut = tc->mode == MODE_CUT;
    TestFs *fs = testfs_get(tc->fstype);
    if (!fs)
        return;
    const Scenario *sc = tc->sc;

    /* The clean run. */
    Ctx *c = ctx_new(fs, sc);
    g_autofree char *before = state(c);
    Failpoint counter = {.target = -1};
    qubes_pool_set_failpoint(c->pool, failpoint, &counter);
    OK(sc->op(c, &err_));
    qubes_pool_set_failpoint(c->pool, NULL, NULL);
    g_autofree char *after = state(c);
    /* What recovery makes of a disposable result: stopped. */
    g_autofree char *recovered = NULL;
    if (sc->disposable) {
        OK(qubes_volume_stop(c->vol, &err_));
        recovered = state(c);
    }
    ctx_free(c);
    int steps = counter.count;
    g_assert_cmpint(steps, >, 0);
    g_test_message("%s on %s: %d steps\n  before %s\n  after  %s", sc->name,
                   fs->type, steps, before, after);

    if (cut) {
        /* The cut right after the operation returns: all of it is there. */
        c = ctx_new(fs, sc);
        OK(sc->op(c, &err_));
        ctx_close(c);
        g_assert_true(testfs_power_cut(fs));
        ctx_reopen(c, sc);
        g_autofree char *s = state(c);
        /* A disposable result is made and dropped without a folder fsync
         * (it holds no data): a cut right after may keep any part of the
         * change, e.g. a stop's removal of the running image but not of
         * the snapshot's marker link. Recovery must then give what it
         * gives after a clean run. */
        if (sc->disposable) {
            OK(qubes_volume_stop(c->vol, &err_));
            g_autofree char *r = state(c);
            if (!g_str_equal(r, recovered))
                g_error("%s: a power cut after it returned left\n  %s\n"
                        "which recovery made\n  %s\nnot\n  %s",
                        sc->name, s, r, recovered);
        } else if (!g_str_equal(s, after)) {
            g_error("%s: a power cut after it returned left\n  %s\nnot after\n"
                    "  %s",
                    sc->name, s, after);
        }
        ctx_free(c);
    }
    int full_failures = 0;
    for (int k = 1; k <= steps; k++) {
        gboolean full_ok = TRUE;
        c = ctx_new(fs, sc);
        g_autofree char *b = state(c);
        g_assert_cmpstr(b, ==, before);
        Failpoint fp = {
            .target = k, .cut = cut ? fs : NULL, .kill = tc->mode == MODE_KILL};
        if (tc->mode == MODE_KILL) {
            /* The child dies at step k, holding the volume's lock and
             * whatever it had half done; it never runs atexit handlers. */
            pid_t pid = fork();
            g_assert_cmpint(pid, >=, 0);
            if (pid == 0) {
                qubes_pool_set_failpoint(c->pool, failpoint, &fp);
                sc->op(c, NULL);
                _exit(3);
            }
            int status;
            g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
            if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
                g_error("%s: step %d: the child was not killed (status %d)",
                        sc->name, k, status);
            fp.hit = g_strdup_printf("step %d", k);
            ctx_close(c);
            ctx_reopen(c, sc);
        } else if (tc->mode == MODE_FULL) {
            fp.fill = fs;
            qubes_pool_set_failpoint(c->pool, failpoint, &fp);
            g_autoptr(GError) error = NULL;
            full_ok = sc->op(c, &error);
            qubes_pool_set_failpoint(c->pool, NULL, NULL);
            unfill_fs(fs);
            g_assert_nonnull(fp.hit);
            if (!full_ok && (!error || !strstr(error->message, "(pool test)")))
                g_error("%s: full at step %d (%s): the error does not name "
                        "the pool: %s",
                        sc->name, k, fp.hit, error ? error->message : "(none)");
            if (!full_ok)
                full_failures++;
        } else {
            qubes_pool_set_failpoint(c->pool, failpoint, &fp);
            g_autoptr(GError) error = NULL;
            gboolean ok = sc->op(c, &error);
            qubes_pool_set_failpoint(c->pool, NULL, NULL);
            g_assert_nonnull(fp.hit);
            if (ok || !error)
                g_error("%s: failing step %d (%s) was not reported", sc->name,
                        k, fp.hit);
            g_assert_nonnull(strstr(error->message, "failpoint"));
        }
        if (cut) {
            /* Every fd closed, then the journal replayed. */
            ctx_close(c);
            g_assert_true(testfs_remount(fs));
            ctx_reopen(c, sc);
        }
        g_autofree char *s = state(c);
        if (tc->mode == MODE_FULL && full_ok && !g_str_equal(s, after))
            g_error("%s: full at step %d (%s): it succeeded but left\n  %s\n"
                    "not\n  %s",
                    sc->name, k, fp.hit, s, after);
        if (cut && !g_str_equal(s, after) && same_but_dirty(s, before)) {
            /* Before, but for the unflushed write: allowed. */
            g_free(s);
            s = g_strdup(before);
        }
        /* A disposable result interrupted with no error path run (a cut,
         * a kill) may be half made: it holds no data, and recovery must
         * make it the stopped state (checked below). */
        gboolean half_ok =
            sc->disposable && (tc->mode == MODE_CUT || tc->mode == MODE_KILL);
        if (!half_ok && !g_str_equal(s, before) && !g_str_equal(s, after) &&
            !(sc->partial_ok && partial_ok(c, sc, s, before, after)))
            g_error("%s: failing step %d (%s) left\n  %s\nnot before\n  %s\n"
                    "nor after\n  %s",
                    sc->name, k, fp.hit, s, before, after);
        if (tc->mode == MODE_FULL && !full_ok) {
            /* With the space back, the same operation succeeds. */
            g_autofree char *now = state(c);
            if (!g_str_equal(now, after)) {
                OK(sc->op(c, &err_));
                g_autofree char *retried = state(c);
                g_assert_cmpstr(retried, ==, after);
            }
        }
        check_precache(c);
        /* Recovery, as the daemon does for a domain that is not running. */
        g_autofree char *dir = vm_dir(c);
        if (test_exists(dir)) {
            OK(qubes_volume_stop(c->vol, &err_));
            check_no_leftovers(c);
            check_precache(c);
        }
        if (half_ok) {
            g_autofree char *r = state(c);
            if (!g_str_equal(r, recovered))
                g_error("%s: step %d (%s): recovery left\n  %s\nnot\n  %s",
                        sc->name, k, fp.hit, r, recovered);
        }
        g_free(fp.hit);
        ctx_free(c);
    }
    if (tc->mode == MODE_FULL)
        g_test_message("%s on %s: full before each of %d steps, %d failed",
                       sc->name, fs->type, steps, full_failures);
}

static void drop_log(const char *domain, GLogLevelFlags level,
                     const char *message, gpointer data)
{
}

int main(int argc, char **argv)
{
    /* --cut: the power cuts (/cut/...); --kill: SIGKILL (/kill/...);
     * else the I/O errors (/failpoints/...). */
    Mode mode = MODE_EIO;
    if (argc > 1 &&
        (g_str_equal(argv[1], "--cut") || g_str_equal(argv[1], "--kill") ||
         g_str_equal(argv[1], "--full"))) {
        mode = g_str_equal(argv[1], "--cut")    ? MODE_CUT
               : g_str_equal(argv[1], "--kill") ? MODE_KILL
                                                : MODE_FULL;
        argv[1] = argv[0];
        argc--;
        argv++;
    }
    g_test_init(&argc, &argv, NULL);
    g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
    /* Thousands of operations: keep their INFO lines out of the output. */
    g_log_set_handler("qubes.storage", G_LOG_LEVEL_INFO, drop_log, NULL);
    static const char *const types[] = {"btrfs", "xfs", "ext4"};
    static Case cases[G_N_ELEMENTS(types) * G_N_ELEMENTS(scenarios)];
    size_t n = 0;
    static const char *const mode_names[] = {"failpoints", "cut", "kill",
                                             "full"};
    for (size_t t = 0; t < G_N_ELEMENTS(types); t++) {
        if (mode == MODE_CUT && g_str_equal(types[t], "btrfs"))
            continue; /* no FS_IOC_SHUTDOWN */
        for (size_t i = 0; i < G_N_ELEMENTS(scenarios); i++) {
            cases[n] = (Case){types[t], &scenarios[i], mode};
            g_autofree char *path = g_strdup_printf(
                "/%s/%s/%s", mode_names[mode], types[t], scenarios[i].name);
            g_test_add_data_func(path, &cases[n], run_case);
            n++;
        }
    }
    return g_test_run();
}
