/* storage-cycle: time an AppVM's storage start+stop cycle.
 *
 *   storage-cycle --pool-dir DIR --cycles N [--setup-check no]
 *
 * Creates a template root (10 GiB, 64 MiB of data in 1 MiB pieces) and an
 * AppVM with a root snapshot of it, a private origin volume (2 GiB,
 * revisions_to_keep 2) and a volatile volume (10 GiB), then runs N cycles
 * of: start all three, write 4 KiB into private's dirty image, stop all
 * three. For comparison it also runs, in the same folder, the bare
 * sequence of system calls such a cycle needs with 3 fsyncs (the floor),
 * in the pool's folder layout (vm-templates/bench-template for the
 * template, appvms/bench-app for the qube, as the pool's volumes are).
 * The figures and the 1.15 target are printed with the ratio.
 * Prints the medians; the last line is
 *   ms_per_cycle=X fsyncs_per_cycle=Y
 */
#include "bench-util.h"
#include "storage.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define MiB (1024ull * 1024)
#define GiB (1024 * MiB)

static void die(const char *what, GError *error)
{
    bench_die("storage-cycle", what, error);
}

static void check(gboolean ok, const char *what, GError *error)
{
    if (!ok)
        die(what, error);
}

static void write_4k(const char *path, off_t off)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    char buf[4096];
    memset(buf, (int)(off & 0xff) | 1, sizeof buf);
    if (fd < 0 || pwrite(fd, buf, sizeof buf, off) != sizeof buf)
        die(path, NULL);
    close(fd);
}

static QubesVolume *volume(QubesPool *pool, const char *vm, const char *name,
                           guint64 size, gboolean save, const char *source,
                           int keep)
{
    QubesVolumeConfig cfg = {
        .name = name,
        .vm_name = vm,
        .vm_dir_prefix =
            strcmp(vm, "bench-template") == 0 ? "vm-templates" : "appvms",
        .size = size,
        .rw = TRUE,
        .save_on_stop = save,
        .snap_on_start = source != NULL,
        .source = source,
        .has_revisions_to_keep = keep >= -1,
        .revisions_to_keep = keep,
    };
    GError *error = NULL;
    QubesVolume *vol = qubes_pool_init_volume(pool, &cfg, &error);
    check(vol != NULL, name, error);
    check(qubes_volume_create(vol, &error), name, error);
    return vol;
}

/* ---- the floor: bare system calls, 3 fsyncs ---- */

static void sys_ok(int rc, const char *what)
{
    if (rc < 0)
        die(what, NULL);
}

static int mk(int dirfd, const char *name, off_t size)
{
    int fd = openat(dirfd, name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
    sys_ok(fd, name);
    if (size)
        sys_ok(ftruncate(fd, size), name);
    return fd;
}

static void clone_to(int dirfd, const char *src, const char *dst)
{
    int s = openat(dirfd, src, O_RDONLY | O_CLOEXEC);
    int d = mk(dirfd, dst, 0);
    sys_ok(ioctl(d, FICLONE, s), "FICLONE (the floor needs reflinks)");
    close(s);
    close(d);
}

static double floor_cycle(int tdir, int dir, int i)
{
    gint64 t0 = g_get_monotonic_time();
    /* start: root snapshot (link + reflink), private (rename + dir fsync),
     * volatile (sparse file) */
    sys_ok(linkat(tdir, "root.img", dir, "root.img", 0), "link");
    clone_to(dir, "root.img", "root-dirty.img");
    sys_ok(renameat(dir, "private-precache.img", dir, "private-dirty.img"),
           "rename");
    sys_ok(fsync(dir), "fsync");
    close(mk(dir, "volatile-dirty.img", (off_t)(10 * GiB)));
    /* the VM writes: the same 4 KiB as ours */
    int fd = openat(dir, "private-dirty.img", O_WRONLY | O_CLOEXEC);
    char buf[4096];
    off_t off = (off_t)((i % 64) * 4096);
    memset(buf, (int)(off & 0xff) | 1, sizeof buf);
    sys_ok((int)pwrite(fd, buf, sizeof buf, off), "pwrite");
    /* stop: fsync dirty, keep a revision, prune, commit, precache, fsync
     * the folder; discard the rest */
    sys_ok(fsync(fd), "fsync");
    close(fd);
    char rev[64], old[64];
    g_snprintf(rev, sizeof rev, "private.img.%d", i + 3);
    g_snprintf(old, sizeof old, "private.img.%d", i + 1);
    sys_ok(linkat(dir, "private.img", dir, rev, 0), "link");
    sys_ok(renameat(dir, "private-dirty.img", dir, "private.img"), "rename");
    unlinkat(dir, old, 0);
    clone_to(dir, "private.img", "private-precache.img");
    sys_ok(unlinkat(dir, "root-dirty.img", 0), "unlink");
    sys_ok(unlinkat(dir, "root.img", 0), "unlink");
    sys_ok(unlinkat(dir, "volatile-dirty.img", 0), "unlink");
    sys_ok(fsync(dir), "fsync");
    return (double)(g_get_monotonic_time() - t0) / 1000.0;
}

typedef struct {
    char *base;
    int tdir, dir;
} Floor;

static void floor_setup(Floor *f, const char *pool_dir)
{
    f->base = g_strdup_printf("%s/floor", pool_dir);
    /* the pool's layout: a template's folder, a qube's folder */
    g_autofree char *tpl =
        g_strdup_printf("%s/vm-templates/bench-template", f->base);
    g_autofree char *app = g_strdup_printf("%s/appvms/bench-app", f->base);
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", f->base);
    if (system(cmd) != 0 || g_mkdir_with_parents(tpl, 0755) < 0 ||
        g_mkdir_with_parents(app, 0755) < 0)
        die(f->base, NULL);
    f->tdir = open(tpl, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    f->dir = open(app, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    /* The same template as ours: 64 MiB in 1 MiB pieces, synced. */
    int t = mk(f->tdir, "root.img", (off_t)(10 * GiB));
    g_autofree char *buf = g_malloc(MiB);
    for (int i = 0; i < 64; i++) {
        memset(buf, i + 1, MiB);
        if (pwrite(t, buf, MiB, (off_t)(i * 160 * MiB)) != (ssize_t)MiB)
            die("floor template", NULL);
    }
    sys_ok(fsync(t), "fsync");
    close(t);
    close(mk(f->dir, "private.img", (off_t)(2 * GiB)));
    clone_to(f->dir, "private.img", "private-precache.img");
}

static void floor_teardown(Floor *f)
{
    close(f->tdir);
    close(f->dir);
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", f->base);
    if (system(cmd) != 0)
        die(f->base, NULL);
    g_free(f->base);
}

int main(int argc, char **argv)
{
    g_autofree char *pool_dir = NULL;
    g_autofree char *setup_check = NULL;
    int cycles = 100;
    GOptionEntry entries[] = {
        {"pool-dir", 0, 0, G_OPTION_ARG_FILENAME, &pool_dir,
         "Folder of the pool to create (on the filesystem to measure)", "DIR"},
        {"cycles", 0, 0, G_OPTION_ARG_INT, &cycles, "Cycles to run", "N"},
        {"setup-check", 0, 0, G_OPTION_ARG_STRING, &setup_check,
         "Pass setup_check=no for filesystems without reflinks", "no"},
        {NULL},
    };
    g_autoptr(GOptionContext) octx =
        g_option_context_new("- time an AppVM's storage start+stop cycle");
    g_option_context_add_main_entries(octx, entries, NULL);
    GError *error = NULL;
    check(g_option_context_parse(octx, &argc, &argv, &error), "options", error);
    if (!pool_dir || cycles < 1) {
        fprintf(stderr, "usage: storage-cycle --pool-dir DIR --cycles N\n");
        return 2;
    }
    g_autoptr(GHashTable) opts = g_hash_table_new(g_str_hash, g_str_equal);
    g_hash_table_insert(opts, "dir_path", pool_dir);
    if (setup_check)
        g_hash_table_insert(opts, "setup_check", setup_check);
    g_autoptr(QubesPool) pool =
        qubes_pool_new("file-reflink", "bench", opts, &error);
    check(pool != NULL, "pool", error);
    check(qubes_pool_setup(pool, &error), "pool setup", error);

    /* The template root: 10 GiB holding 64 MiB of data in 1 MiB pieces. */
    g_autoptr(QubesVolume) troot =
        volume(pool, "bench-template", "root", 10 * GiB, TRUE, NULL, 1);
    check(qubes_volume_start(troot, &error), "template start", error);
    g_autofree char *tdirty = qubes_volume_get_path(troot);
    {
        int fd = open(tdirty, O_WRONLY | O_CLOEXEC);
        g_autofree char *buf = g_malloc(MiB);
        for (int i = 0; i < 64; i++) {
            memset(buf, i + 1, MiB);
            if (pwrite(fd, buf, MiB, (off_t)(i * 160 * MiB)) != (ssize_t)MiB)
                die(tdirty, NULL);
        }
        close(fd);
    }
    check(qubes_volume_stop(troot, &error), "template stop", error);

    g_autoptr(QubesVolume) root =
        volume(pool, "bench-app", "root", 10 * GiB, FALSE, troot->vid, -2);
    g_autoptr(QubesVolume) priv =
        volume(pool, "bench-app", "private", 2 * GiB, TRUE, NULL, 2);
    g_autoptr(QubesVolume) vola =
        volume(pool, "bench-app", "volatile", 10 * GiB, FALSE, NULL, -2);
    QubesVolume *vols[] = {root, priv, vola};
    g_autofree char *pdirty = qubes_volume_get_path(priv);

    /* Our cycles and the floor's alternate, so both see the same noise
     * from the rest of the machine. */
    gboolean with_floor = !setup_check; /* the floor needs reflinks */
    Floor fl = {0};
    if (with_floor)
        floor_setup(&fl, pool_dir);
    double *ms = g_new(double, cycles);
    double *fs = g_new(double, cycles);
    double *fms = g_new(double, cycles);
    for (int i = 0; i < cycles; i++) {
        if (with_floor)
            fms[i] = floor_cycle(fl.tdir, fl.dir, i);
        guint64 f0 = qubes_pool_get_fsync_count(pool);
        gint64 t0 = g_get_monotonic_time();
        for (int v = 0; v < 3; v++)
            check(qubes_volume_start(vols[v], &error), "start", error);
        write_4k(pdirty, (off_t)((i % 64) * 4096));
        for (int v = 0; v < 3; v++)
            check(qubes_volume_stop(vols[v], &error), "stop", error);
        ms[i] = (double)(g_get_monotonic_time() - t0) / 1000.0;
        fs[i] = (double)(qubes_pool_get_fsync_count(pool) - f0);
    }
    double m = bench_median(ms, cycles);
    printf("cycles=%d\n", cycles);
    if (with_floor) {
        floor_teardown(&fl);
        double floor_ms = bench_median(fms, cycles);
        printf("floor_ms_per_cycle=%.3f (bare system calls, 3 fsyncs)\n",
               floor_ms);
        printf("ratio_to_floor=%.2f (target <= 1.15: %s)\n", m / floor_ms,
               m / floor_ms <= 1.15 ? "met" : "NOT met");
    }
    printf("ms_per_cycle=%.3f fsyncs_per_cycle=%.0f\n", m,
           bench_median(fs, cycles));
    g_free(ms);
    g_free(fs);
    g_free(fms);
    for (int v = 0; v < 3; v++)
        qubes_volume_remove(vols[v], NULL);
    qubes_volume_remove(troot, NULL);
    return 0;
}
