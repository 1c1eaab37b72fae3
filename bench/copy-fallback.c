/* copy-fallback: time the in-process sparse copy against cp.
 *
 *   copy-fallback --dir DIR [--size-gib 4] [--data-percent 5] [--runs 5]
 *
 * Makes a sparse image of the given size holding the given share of data
 * (1 MiB pieces, evenly spread), then copies it with the driver's
 * fallback (SEEK_DATA/SEEK_HOLE + read/write, fsynced) and with
 * `cp --sparse=always --reflink=never` (followed by an fsync, so both
 * promise the same), alternating, with the page cache dropped before each
 * copy. Prints the medians and checks both copies match the source.
 */
#include "bench-util.h"
#include "qfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MiB ((guint64)1024 * 1024)

static void die(const char *what, GError *error)
{
    bench_die("copy-fallback", what, error);
}

static void drop_caches(void)
{
    sync();
    int fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (write(fd, "3", 1) != 1) {
            /* not root: measure with a warm cache */
        }
        close(fd);
    }
}

static double now_ms(void)
{
    return (double)g_get_monotonic_time() / 1000.0;
}

static char *checksum(const char *path)
{
    g_autoptr(GChecksum) sum = g_checksum_new(G_CHECKSUM_SHA256);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        die(path, NULL);
    g_autofree guint8 *buf = g_malloc(8 * MiB);
    ssize_t n;
    while ((n = read(fd, buf, 8 * MiB)) > 0)
        g_checksum_update(sum, buf, (gssize)n);
    close(fd);
    return g_strdup(g_checksum_get_string(sum));
}

static guint64 allocated(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0)
        die(path, NULL);
    return (guint64)st.st_blocks * 512;
}

int main(int argc, char **argv)
{
    g_autofree char *dir = NULL;
    int size_gib = 4, percent = 5, runs = 5;
    GOptionEntry entries[] = {
        {"dir", 0, 0, G_OPTION_ARG_FILENAME, &dir,
         "Folder on the filesystem to measure", "DIR"},
        {"size-gib", 0, 0, G_OPTION_ARG_INT, &size_gib, "Image size", "N"},
        {"data-percent", 0, 0, G_OPTION_ARG_INT, &percent, "Share of data",
         "P"},
        {"runs", 0, 0, G_OPTION_ARG_INT, &runs, "Copies of each kind", "N"},
        {NULL},
    };
    g_autoptr(GOptionContext) octx =
        g_option_context_new("- time the sparse copy fallback against cp");
    g_option_context_add_main_entries(octx, entries, NULL);
    GError *error = NULL;
    if (!g_option_context_parse(octx, &argc, &argv, &error))
        die("options", error);
    if (!dir || size_gib < 1 || percent < 1 || percent > 100 || runs < 1) {
        fprintf(stderr, "usage: copy-fallback --dir DIR\n");
        return 2;
    }
    g_autoptr(QFileCtx) ctx = qfile_ctx_new(dir);
    if (!qfile_ctx_open_root(ctx, TRUE, NULL, &error))
        die(dir, error);
    g_autoptr(QDir) qdir = qdir_open(ctx, "", FALSE, &error);
    if (!qdir)
        die(dir, error);

    gboolean reflinks = qfile_reflink_supported(qdir, NULL);

    /* The source: data in 1 MiB pieces, one every 100/P MiB. */
    g_autofree char *src = g_strdup_printf("%s/source.img", dir);
    unlink(src);
    int fd = open(src, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
    guint64 size = (guint64)size_gib * 1024 * MiB;
    if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
        die(src, NULL);
    g_autofree guint8 *buf = g_malloc(MiB);
    guint64 stride = 100 * MiB / (guint64)percent, data = 0;
    for (guint64 off = 0; off + MiB <= size; off += stride) {
        for (size_t i = 0; i < MiB; i++)
            buf[i] = (guint8)(i * 31 + off / MiB);
        if (pwrite(fd, buf, MiB, (off_t)off) != (ssize_t)MiB)
            die(src, NULL);
        data += MiB;
    }
    fsync(fd);
    close(fd);

    g_autofree char *ours = g_strdup_printf("%s/ours.img", dir);
    g_autofree char *theirs = g_strdup_printf("%s/cp.img", dir);
    double *t_ours = g_new(double, runs), *t_cp = g_new(double, runs);
    for (int r = 0; r < runs; r++) {
        unlink(ours);
        drop_caches();
        double t0 = now_ms();
        QFileCopyOpts opts = QFILE_COPY_OPTS_INIT;
        /* Where reflinks work, force a real copy (read/write); elsewhere
         * the driver's own fallback path, exactly as it runs. */
        opts.no_reflink = reflinks;
        if (!qfile_copy(qdir, "source.img", qdir, "ours.img", &opts, NULL,
                        &error))
            die("copy", error);
        t_ours[r] = now_ms() - t0;

        unlink(theirs);
        drop_caches();
        t0 = now_ms();
        const char *argv_cp[] = {
            "cp", "--sparse=always", "--reflink=never", src, theirs, NULL};
        int status;
        if (!g_spawn_sync(NULL, (char **)argv_cp, NULL, G_SPAWN_SEARCH_PATH,
                          NULL, NULL, NULL, NULL, &status, &error) ||
            !g_spawn_check_wait_status(status, &error))
            die("cp", error);
        int cfd = open(theirs, O_RDONLY | O_CLOEXEC);
        if (cfd < 0 || fsync(cfd) < 0)
            die(theirs, NULL);
        close(cfd);
        t_cp[r] = now_ms() - t0;
    }
    g_autofree char *s0 = checksum(src);
    g_autofree char *s1 = checksum(ours);
    g_autofree char *s2 = checksum(theirs);
    if (strcmp(s0, s1) != 0 || strcmp(s0, s2) != 0) {
        fprintf(stderr, "copy-fallback: the copies differ from the source\n");
        return 1;
    }
    double mo = bench_median(t_ours, runs), mc = bench_median(t_cp, runs);
    printf("image=%d GiB data=%" G_GUINT64_FORMAT " MiB runs=%d\n", size_gib,
           data / MiB, runs);
    printf("allocated: source=%" G_GUINT64_FORMAT " ours=%" G_GUINT64_FORMAT
           " cp=%" G_GUINT64_FORMAT " MiB\n",
           allocated(src) / MiB, allocated(ours) / MiB,
           allocated(theirs) / MiB);
    printf("ms_ours=%.1f ms_cp=%.1f speedup=%.2f\n", mo, mc, mc / mo);
    unlink(src);
    unlink(ours);
    unlink(theirs);
    g_free(t_ours);
    g_free(t_cp);
    return 0;
}
