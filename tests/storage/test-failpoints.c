/* test-failpoints.c: a failure injected at each step of each operation.
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
 */
#include "harness.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MiB (1024ull * 1024)

typedef struct {
    TestFs *fs;
    QubesPool *pool;
    QubesVolume *vol; /* the volume under test */
    QubesVolume *other;
} Ctx;

typedef struct {
    const char *name;
    void (*setup)(Ctx *c);
    gboolean (*op)(Ctx *c, GError **error);
    gboolean partial_ok; /* deletes on purpose: see partial_ok() */
} Scenario;

static char *sum_or_none(const char *path)
{
    return test_exists(path) ? test_checksum(path) : g_strdup("none");
}

static char *vm_dir(Ctx *c)
{
    g_autofree char *clean = test_image(c->pool, c->vol, ".img");
    return g_path_get_dirname(clean);
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
    g_autofree char *dir = vm_dir(c);
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    for (guint i = 0; d && i < revs->len; i++) {
        QubesRevision *r = revs->pdata[i];
        g_autofree char *prefix =
            g_strdup_printf("%s.img.%s@", c->vol->name, r->id);
        const char *n;
        g_dir_rewind(d);
        while ((n = g_dir_read_name(d)) != NULL) {
            if (g_str_has_prefix(n, prefix) && !strchr(n, '~')) {
                g_autofree char *p = g_strdup_printf("%s/%s", dir, n);
                g_autofree char *rs = test_checksum(p);
                g_string_append_printf(s, " %s:%.12s", r->id, rs);
            }
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

static Ctx *ctx_new(TestFs *fs, const Scenario *sc)
{
    Ctx *c = g_new0(Ctx, 1);
    c->fs = fs;
    c->pool = test_pool_new(fs, NULL, NULL);
    sc->setup(c);
    return c;
}

static void ctx_free(Ctx *c)
{
    g_clear_pointer(&c->vol, qubes_volume_unref);
    g_clear_pointer(&c->other, qubes_volume_unref);
    qubes_pool_free(c->pool);
    g_free(c);
}

typedef struct {
    int target;
    int count;
    char *hit;
} Failpoint;

static gboolean failpoint(const char *step, const char *path, gpointer data)
{
    Failpoint *fp = data;
    if (++fp->count != fp->target)
        return FALSE;
    fp->hit = g_strdup_printf("%s %s", step, path);
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

static void setup_empty_origin(Ctx *c)
{
    c->vol = test_origin(c->pool, "vm", "private", 4 * MiB, 2);
}

static void setup_stopped_origin(Ctx *c)
{
    setup_empty_origin(c);
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
    c->other = test_origin(c->pool, "src", "private", 2 * MiB, 1);
    OK(qubes_volume_create(c->other, &err_));
    OK(qubes_volume_start(c->other, &err_));
    g_autofree char *dirty = test_image(c->pool, c->other, "-dirty.img");
    test_write_pattern(dirty, 0, 128 * 1024, 5);
    OK(qubes_volume_stop(c->other, &err_));
}

static void setup_snapshot(Ctx *c)
{
    c->other = test_origin(c->pool, "tpl", "root", 4 * MiB, 1);
    OK(qubes_volume_create(c->other, &err_));
    OK(qubes_volume_start(c->other, &err_));
    g_autofree char *dirty = test_image(c->pool, c->other, "-dirty.img");
    test_write_pattern(dirty, 0, 64 * 1024, 3);
    OK(qubes_volume_stop(c->other, &err_));
    c->vol = test_snapshot(c->pool, "app", "root", c->other->vid, FALSE);
}

static void setup_running_snapshot(Ctx *c)
{
    setup_snapshot(c);
    OK(qubes_volume_start(c->vol, &err_));
}

static void setup_volatile(Ctx *c)
{
    c->vol = test_volatile(c->pool, "app", 4 * MiB);
}

static void setup_nosnap(Ctx *c)
{
    c->vol = test_origin(c->pool, "vm", "private", 4 * MiB, -1);
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
    {"create", setup_empty_origin, op_create, FALSE},
    {"create-over-existing", setup_stopped_origin, op_create, TRUE},
    {"start", setup_stopped_origin, op_start, FALSE},
    {"start-without-precache", setup_stopped_no_precache, op_start, FALSE},
    {"stop", setup_running_origin, op_stop, FALSE},
    {"revert-latest", setup_stopped_origin, op_revert, FALSE},
    {"revert-oldest", setup_stopped_origin, op_revert_oldest, FALSE},
    {"resize", setup_stopped_origin, op_resize, FALSE},
    {"resize-running", setup_running_origin, op_resize, FALSE},
    {"import-data-end", setup_importing, op_import_end, FALSE},
    {"import-volume", setup_import_source, op_import_volume, FALSE},
    {"remove", setup_running_origin, op_remove, TRUE},
    {"snapshot-start", setup_snapshot, op_start, FALSE},
    {"snapshot-stop", setup_running_snapshot, op_stop, TRUE},
    {"volatile-start", setup_volatile, op_start, FALSE},
    {"nosnap-start", setup_nosnap, op_start, FALSE},
    {"nosnap-stop", setup_running_nosnap, op_stop, FALSE},
};

typedef struct {
    const char *fstype;
    const Scenario *sc;
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

static void run_case(gconstpointer data)
{
    const Case *tc = data;
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
    ctx_free(c);
    int steps = counter.count;
    g_assert_cmpint(steps, >, 0);
    g_test_message("%s on %s: %d steps\n  before %s\n  after  %s", sc->name,
                   fs->type, steps, before, after);

    for (int k = 1; k <= steps; k++) {
        c = ctx_new(fs, sc);
        g_autofree char *b = state(c);
        g_assert_cmpstr(b, ==, before);
        Failpoint fp = {.target = k};
        qubes_pool_set_failpoint(c->pool, failpoint, &fp);
        g_autoptr(GError) error = NULL;
        gboolean ok = sc->op(c, &error);
        qubes_pool_set_failpoint(c->pool, NULL, NULL);
        g_assert_nonnull(fp.hit);
        if (ok || !error)
            g_error("%s: failing step %d (%s) was not reported", sc->name, k,
                    fp.hit);
        g_assert_nonnull(strstr(error->message, "failpoint"));
        g_autofree char *s = state(c);
        if (!g_str_equal(s, before) && !g_str_equal(s, after) &&
            !(sc->partial_ok && partial_ok(c, sc, s, before, after)))
            g_error("%s: failing step %d (%s) left\n  %s\nnot before\n  %s\n"
                    "nor after\n  %s",
                    sc->name, k, fp.hit, s, before, after);
        check_precache(c);
        /* Recovery, as the daemon does for a domain that is not running. */
        g_autofree char *dir = vm_dir(c);
        if (test_exists(dir)) {
            OK(qubes_volume_stop(c->vol, &err_));
            check_no_leftovers(c);
            check_precache(c);
        }
        g_free(fp.hit);
        ctx_free(c);
    }
}

static void drop_log(const char *domain, GLogLevelFlags level,
                     const char *message, gpointer data)
{
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
    /* Thousands of operations: keep their INFO lines out of the output. */
    g_log_set_handler("qubes.storage", G_LOG_LEVEL_INFO, drop_log, NULL);
    static const char *const types[] = {"btrfs", "xfs", "ext4"};
    static Case cases[G_N_ELEMENTS(types) * G_N_ELEMENTS(scenarios)];
    size_t n = 0;
    for (size_t t = 0; t < G_N_ELEMENTS(types); t++) {
        for (size_t i = 0; i < G_N_ELEMENTS(scenarios); i++) {
            cases[n] = (Case){types[t], &scenarios[i]};
            g_autofree char *path = g_strdup_printf(
                "/failpoints/%s/%s", types[t], scenarios[i].name);
            g_test_add_data_func(path, &cases[n], run_case);
            n++;
        }
    }
    return g_test_run();
}
