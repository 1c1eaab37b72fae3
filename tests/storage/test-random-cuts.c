/* test-random-cuts.c: power cuts at random times during a loop of mixed
 * storage operations, on XFS and ext4.
 *
 * Each trial makes a pool with two origin volumes (1 MiB, two revisions
 * kept), commits a few images into each and makes that durable. A worker
 * thread then runs random operations on them, as a VM's life does: start,
 * a VM write flushed with fsync, stop, revert to the latest revision. It
 * keeps the images' contents in memory (a model), and before each
 * operation publishes the volume's state before it and the state the
 * operation will leave. The main thread cuts the power (FS_IOC_SHUTDOWN
 * without a log flush) after a random delay, wherever the worker is; every
 * later step fails. The filesystem is then mounted again (journal replay)
 * and the pool opened anew. Required:
 *   - the volume the interrupted operation was working on is in the state
 *     before or after it: committed image, revisions (oldest first) and
 *     running image, checked by content; during a VM write the running
 *     image may hold any mix, as a disk does mid-write;
 *   - the other volume is exactly as the model says, including every
 *     flushed VM write into a running image;
 *   - after recovery (a stop of each running volume, as qubesd does at
 *     start) no temporary, lock or unfinished revision is left, and the
 *     committed image is the running image that was there.
 *
 * Trials per filesystem: QUBES_CUT_TRIALS (default 40; the full run is
 * 200 or more: `QUBES_CUT_TRIALS=200 build/tests/storage/test-random-cuts`).
 * The seed is printed; QUBES_CUT_SEED replays a run.
 */
#include "harness.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#define SIZE (1024 * 1024)
#define N_VOLS 2
#define KEEP 2

typedef struct {
    GBytes *clean;
    GBytes *dirty;   /* NULL when stopped */
    GPtrArray *revs; /* GBytes*, oldest first */
} Model;

typedef enum { OP_NONE, OP_START, OP_WRITE, OP_STOP, OP_REVERT } OpKind;
static const char *const op_names[] = {"none", "start", "write", "stop",
                                       "revert"};

typedef struct {
    TestFs *fs;
    char *dir;
    QubesPool *pool;
    QubesVolume *vols[N_VOLS];
    Model model[N_VOLS];
    /* The operation in flight, published before it starts. */
    GMutex lock;
    OpKind op;
    int op_vol;
    Model before, after; /* copies (borrowed GBytes refs) */
    guint ops_done;
    gint cutting; /* set just before the shutdown */
    gint stop;
    GRand *rand;
} Trial;

static void model_clear(Model *m)
{
    g_clear_pointer(&m->clean, g_bytes_unref);
    g_clear_pointer(&m->dirty, g_bytes_unref);
    g_clear_pointer(&m->revs, g_ptr_array_unref);
}

static Model model_copy(const Model *m)
{
    Model c = {g_bytes_ref(m->clean), m->dirty ? g_bytes_ref(m->dirty) : NULL,
               g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref)};
    for (guint i = 0; i < m->revs->len; i++)
        g_ptr_array_add(c.revs, g_bytes_ref(m->revs->pdata[i]));
    return c;
}

static void keep_newest(GPtrArray *revs)
{
    while (revs->len > KEEP)
        g_ptr_array_remove_index(revs, 0);
}

/* The state @op leaves, from @m. */
static Model model_after(const Model *m, OpKind op, GBytes *written)
{
    Model a = model_copy(m);
    switch (op) {
    case OP_START:
        a.dirty = g_bytes_ref(a.clean);
        break;
    case OP_WRITE:
        g_bytes_unref(a.dirty);
        a.dirty = g_bytes_ref(written);
        break;
    case OP_STOP:
        g_ptr_array_add(a.revs, a.clean);
        keep_newest(a.revs);
        a.clean = a.dirty;
        a.dirty = NULL;
        break;
    case OP_REVERT: {
        GBytes *latest = g_ptr_array_steal_index(a.revs, a.revs->len - 1);
        g_ptr_array_add(a.revs, a.clean);
        keep_newest(a.revs);
        a.clean = latest;
        break;
    }
    case OP_NONE:
        break;
    }
    return a;
}

static char *sum(GBytes *b)
{
    return b ? g_compute_checksum_for_bytes(G_CHECKSUM_SHA256, b)
             : g_strdup("none");
}

/* "clean=… dirty=… revs=[…]", short sums; @any_dirty: "dirty=*". */
static char *model_state(const Model *m, gboolean any_dirty)
{
    g_autofree char *c = sum(m->clean), *d = sum(m->dirty);
    GString *s = g_string_new(NULL);
    g_string_append_printf(s, "clean=%.12s dirty=%.12s revs=[", c,
                           any_dirty && m->dirty ? "*" : d);
    for (guint i = 0; i < m->revs->len; i++) {
        g_autofree char *r = sum(m->revs->pdata[i]);
        g_string_append_printf(s, " %.12s", r);
    }
    g_string_append(s, " ]");
    return g_string_free(s, FALSE);
}

static GBytes *read_or_null(const char *path)
{
    char *data;
    gsize len;
    if (!g_file_get_contents(path, &data, &len, NULL))
        return NULL;
    return g_bytes_new_take(data, len);
}

/* What the disk holds, as a model. */
static Model disk_model(Trial *t, int i)
{
    QubesVolume *v = t->vols[i];
    g_autofree char *clean = test_image(t->pool, v, ".img");
    g_autofree char *dirty = test_image(t->pool, v, "-dirty.img");
    Model m = {read_or_null(clean), read_or_null(dirty),
               g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref)};
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) revs = qubes_volume_list_revisions(v, &error);
    g_assert_no_error(error);
    for (guint r = 0; r < revs->len; r++) {
        g_autofree char *p = test_revision_path(
            t->pool, v, ((QubesRevision *)revs->pdata[r])->id);
        if (p) {
            GBytes *b = read_or_null(p);
            g_assert_nonnull(b);
            g_ptr_array_add(m.revs, b);
        }
    }
    if (!m.clean)
        m.clean = g_bytes_new(NULL, 0);
    return m;
}

static void open_pool(Trial *t)
{
    t->pool = test_pool_open(t->fs, t->dir);
    for (int i = 0; i < N_VOLS; i++) {
        g_autofree char *vm = g_strdup_printf("vm%d", i);
        t->vols[i] = test_origin(t->pool, vm, "private", SIZE, KEEP);
    }
}

static void close_pool(Trial *t)
{
    for (int i = 0; i < N_VOLS; i++)
        g_clear_pointer(&t->vols[i], qubes_volume_unref);
    g_clear_pointer(&t->pool, qubes_pool_free);
}

/* A VM's write of @len bytes at @off into the running image, flushed.
 * FALSE when the disk is gone. Applies it to @image (new bytes). */
static gboolean vm_write(Trial *t, int i, GBytes **image)
{
    gsize off = (gsize)g_rand_int_range(t->rand, 0, SIZE / 4096 - 4) * 4096;
    gsize len = 16384;
    guint8 seed = (guint8)g_rand_int(t->rand);
    gsize n;
    const guint8 *old = g_bytes_get_data(*image, &n);
    guint8 *data = g_memdup2(old, n);
    for (gsize k = 0; k < len; k++)
        data[off + k] = (guint8)(seed + k * 13);
    GBytes *written = g_bytes_new_take(data, n);
    g_autofree char *dirty = test_image(t->pool, t->vols[i], "-dirty.img");
    g_mutex_lock(&t->lock);
    Model after = model_after(&t->model[i], OP_WRITE, written);
    t->before = model_copy(&t->model[i]);
    t->after = after;
    t->op = OP_WRITE;
    t->op_vol = i;
    g_mutex_unlock(&t->lock);
    int fd = open(dirty, O_WRONLY | O_CLOEXEC);
    gboolean ok = fd >= 0 &&
                  pwrite(fd, data + off, len, (off_t)off) == (gssize)len &&
                  fsync(fd) == 0;
    if (fd >= 0)
        close(fd);
    if (ok) {
        g_bytes_unref(*image);
        *image = written;
    } else {
        g_bytes_unref(written);
    }
    return ok;
}

static void op_done(Trial *t, int i, gboolean ok)
{
    g_mutex_lock(&t->lock);
    if (g_getenv("QUBES_CUT_DEBUG")) {
        g_autofree char *a = model_state(&t->after, FALSE);
        g_printerr("op %s vm%d ok=%d -> %s\n", op_names[t->op], i, ok, a);
    }
    /* An operation that returns once the cut has begun overlapped it:
     * it may or may not have reached the disk (a flush the kernel ends
     * after the shutdown started may report success), so it stays in
     * flight. Only what returned before the cut must be durable. */
    if (ok && g_atomic_int_get(&t->cutting))
        ok = FALSE;
    if (ok) {
        model_clear(&t->model[i]);
        t->model[i] = t->after;
        t->after = (Model){0};
        model_clear(&t->before);
        t->op = OP_NONE;
        t->ops_done++;
    }
    g_mutex_unlock(&t->lock);
}

static gpointer worker(gpointer data)
{
    Trial *t = data;
    while (!g_atomic_int_get(&t->stop)) {
        int i = g_rand_int_range(t->rand, 0, N_VOLS);
        QubesVolume *v = t->vols[i];
        Model *m = &t->model[i];
        OpKind op;
        if (m->dirty)
            op = g_rand_int_range(t->rand, 0, 3) ? OP_WRITE : OP_STOP;
        else
            op = m->revs->len && g_rand_int_range(t->rand, 0, 4) == 0
                     ? OP_REVERT
                     : OP_START;
        gboolean ok;
        if (op == OP_WRITE) {
            GBytes *image = g_bytes_ref(m->dirty);
            ok = vm_write(t, i, &image);
            g_bytes_unref(image);
        } else {
            g_mutex_lock(&t->lock);
            t->before = model_copy(m);
            t->after = model_after(m, op, NULL);
            t->op = op;
            t->op_vol = i;
            g_mutex_unlock(&t->lock);
            g_autoptr(GError) error = NULL;
            ok = op == OP_START  ? qubes_volume_start(v, &error)
                 : op == OP_STOP ? qubes_volume_stop(v, &error)
                                 : qubes_volume_revert(v, NULL, &error);
        }
        op_done(t, i, ok);
        if (!ok || g_atomic_int_get(&t->cutting))
            break; /* the power is gone */
    }
    return NULL;
}

static void setup(Trial *t)
{
    QubesPool *made = test_pool_new(t->fs, NULL, NULL);
    t->dir = g_strdup(test_pool_dir(made));
    qubes_pool_free(made);
    open_pool(t);
    for (int i = 0; i < N_VOLS; i++) {
        OK(qubes_volume_create(t->vols[i], &err_));
        Model *m = &t->model[i];
        m->clean = g_bytes_new_take(g_malloc0(SIZE), SIZE);
        m->revs = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
        for (int c = 0; c < 3; c++) {
            OK(qubes_volume_start(t->vols[i], &err_));
            m->dirty = g_bytes_ref(m->clean);
            GBytes *image = g_bytes_ref(m->dirty);
            g_assert_true(vm_write(t, i, &image));
            g_bytes_unref(m->dirty);
            m->dirty = image;
            model_clear(&t->before);
            model_clear(&t->after);
            OK(qubes_volume_stop(t->vols[i], &err_));
            Model a = model_after(m, OP_STOP, NULL);
            model_clear(m);
            *m = a;
        }
    }
    t->op = OP_NONE;
    testfs_sync(t->fs);
}

static void check_no_leftovers(Trial *t, int i)
{
    g_autofree char *dir = test_vol_dir(t->pool, t->vols[i]);
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    g_assert_nonnull(d);
    const char *n;
    while ((n = g_dir_read_name(d)) != NULL)
        if (strchr(n, '~') || g_str_has_suffix(n, ".lock") ||
            g_str_has_suffix(n, "-import.img"))
            g_error("left over after recovery: %s/%s", dir, n);
}

/* One trial; returns the operation that was in flight. */
static OpKind run_trial(TestFs *fs, guint32 seed, guint delay_us,
                        guint *ops_done)
{
    Trial t = {.fs = fs, .rand = g_rand_new_with_seed(seed)};
    g_mutex_init(&t.lock);
    setup(&t);
    GThread *th = g_thread_new("ops", worker, &t);
    g_usleep(delay_us);
    g_atomic_int_set(&t.cutting, 1);
    g_assert_true(testfs_shutdown(fs));
    g_atomic_int_set(&t.stop, 1);
    g_thread_join(th);
    close_pool(&t);
    g_assert_true(testfs_remount(fs));
    open_pool(&t);
    for (int i = 0; i < N_VOLS; i++) {
        Model disk = disk_model(&t, i);
        gboolean in_flight = t.op != OP_NONE && t.op_vol == i;
        gboolean any = in_flight && t.op == OP_WRITE;
        g_autofree char *got = model_state(&disk, any);
        g_autofree char *want = model_state(&t.model[i], FALSE);
        g_autofree char *before =
            in_flight ? model_state(&t.before, FALSE) : NULL;
        g_autofree char *after = in_flight ? model_state(&t.after, any) : NULL;
        if (!g_str_equal(got, want) &&
            !(in_flight &&
              (g_str_equal(got, before) || g_str_equal(got, after))))
            g_error("seed %u, cut after %u us, during %s of vm%d: vm%d holds\n"
                    "  %s\nnot\n  %s%s%s",
                    seed, delay_us, op_names[t.op], t.op_vol, i, got,
                    in_flight ? before : want, in_flight ? "\nnor\n  " : "",
                    in_flight ? after : "");
        /* Recovery, as qubesd does for a qube that is not running. */
        OK(qubes_volume_stop(t.vols[i], &err_));
        check_no_leftovers(&t, i);
        Model rec = disk_model(&t, i);
        if (disk.dirty) {
            g_autofree char *a = sum(rec.clean), *b = sum(disk.dirty);
            g_assert_cmpstr(a, ==, b);
        }
        model_clear(&rec);
        model_clear(&disk);
    }
    OpKind op = t.op;
    *ops_done = t.ops_done;
    close_pool(&t);
    for (int i = 0; i < N_VOLS; i++)
        model_clear(&t.model[i]);
    model_clear(&t.before);
    model_clear(&t.after);
    g_mutex_clear(&t.lock);
    g_rand_free(t.rand);
    const char *rm[] = {"rm", "-rf", t.dir, NULL};
    g_free(test_run(rm));
    g_free(t.dir);
    return op;
}

static void test_random_cuts(gconstpointer data)
{
    GET_FS(data);
    const char *env = g_getenv("QUBES_CUT_TRIALS");
    guint trials = env ? (guint)g_ascii_strtoull(env, NULL, 10) : 40;
    const char *seed_env = g_getenv("QUBES_CUT_SEED");
    guint32 seed = seed_env ? (guint32)g_ascii_strtoull(seed_env, NULL, 10)
                            : (guint32)g_random_int();
    g_test_message("%s: %u trials, QUBES_CUT_SEED=%u", fs->type, trials, seed);
    GRand *r = g_rand_new_with_seed(seed);
    guint by_op[G_N_ELEMENTS(op_names)] = {0}, ops = 0;
    for (guint k = 0; k < trials; k++) {
        guint32 s = g_rand_int(r);
        guint delay = (guint)g_rand_int_range(r, 0, 40000);
        guint done = 0;
        OpKind op = run_trial(fs, s, delay, &done);
        by_op[op]++;
        ops += done;
    }
    g_rand_free(r);
    g_test_message("%s: %u trials, %u operations completed before the cuts; "
                   "cut during: start %u, write %u, stop %u, revert %u, "
                   "between operations %u; lost data: none",
                   fs->type, trials, ops, by_op[OP_START], by_op[OP_WRITE],
                   by_op[OP_STOP], by_op[OP_REVERT], by_op[OP_NONE]);
}

static void drop_log(const char *domain, GLogLevelFlags level,
                     const char *message, gpointer data)
{
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
    /* Failed steps after the cut warn; the checks above judge. */
    g_log_set_handler("qubes.storage",
                      G_LOG_LEVEL_INFO | G_LOG_LEVEL_WARNING |
                          G_LOG_LEVEL_MESSAGE,
                      drop_log, NULL);
    g_test_add_data_func("/random-cuts/xfs", "xfs", test_random_cuts);
    g_test_add_data_func("/random-cuts/ext4", "ext4", test_random_cuts);
    return g_test_run();
}
