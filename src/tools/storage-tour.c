/* qubes-storage-tour: a short, narrated tour of the storage engine.
 *
 *   qubes-storage-tour --pool-dir DIR [--setup-check no] [--quiet-log]
 *
 * Sets up a file-reflink pool in DIR, makes a template and an AppVM, starts
 * and stops them, keeps and reverts revisions, and shows the space each
 * image holds. Every file the driver touches is shown as it happens (the
 * INFO log an administrator would follow). Removes what it made at the end.
 */
#include "storage.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MiB ((guint64)1024 * 1024)
#define GiB (1024 * MiB)

static gboolean quiet_log;

static void show_log(const char *domain, GLogLevelFlags level,
                     const char *message, gpointer data)
{
    if (!quiet_log || level & G_LOG_LEVEL_WARNING)
        printf("    | %s\n", message);
}

static void step(const char *title)
{
    printf("\n== %s\n", title);
}

static void must(gboolean ok, GError *error)
{
    if (!ok) {
        fprintf(stderr, "qubes-storage-tour: %s (%s)\n",
                error ? error->message : "failed",
                error ? qubes_error_exception_name(error->code) : "");
        exit(1);
    }
}

static void write_data(const char *path, guint64 off, guint64 len, int seed)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    g_autofree char *buf = g_malloc(len);
    memset(buf, seed, len);
    if (fd < 0 || pwrite(fd, buf, len, (off_t)off) != (ssize_t)len ||
        fsync(fd) < 0) {
        perror(path);
        exit(1);
    }
    close(fd);
    printf("    (the VM writes %" G_GUINT64_FORMAT " KiB at %" G_GUINT64_FORMAT
           " MiB and flushes)\n",
           len / 1024, off / MiB);
}

static char *first_bytes(QubesVolume *vol)
{
    GError *error = NULL;
    int fd = qubes_volume_export_open(vol, &error);
    must(fd >= 0, error);
    unsigned char c = 0;
    if (pread(fd, &c, 1, 0) != 1)
        c = 0;
    close(fd);
    return g_strdup_printf("0x%02x", c);
}

static void show_revisions(QubesVolume *vol)
{
    GError *error = NULL;
    g_autoptr(GPtrArray) revs = qubes_volume_list_revisions(vol, &error);
    must(revs != NULL, error);
    printf("    revisions of %s (oldest first):", vol->vid);
    for (guint i = 0; i < revs->len; i++) {
        QubesRevision *r = revs->pdata[i];
        printf(" %s (%sZ)", r->id, r->timestamp);
    }
    printf("%s\n", revs->len ? "" : " none");
}

static void show_space(QubesVolume *vol)
{
    GError *error = NULL;
    g_autoptr(GPtrArray) space = qubes_volume_get_space(vol, &error);
    must(space != NULL, error);
    printf("    %-10s %12s %12s %12s\n", "image", "size", "shared",
           "only-here");
    for (guint i = 0; i < space->len; i++) {
        QubesVolumeSpace *s = space->pdata[i];
        printf("    %-10s %10" G_GUINT64_FORMAT "Mi %10" G_GUINT64_FORMAT
               "Ki %10" G_GUINT64_FORMAT "Ki\n",
               s->what, s->size / MiB, s->shared / 1024, s->exclusive / 1024);
    }
}

static QubesVolume *volume(QubesPool *pool, const char *vm, const char *name,
                           guint64 size, gboolean save, const char *source,
                           int keep)
{
    QubesVolumeConfig cfg = {
        .name = name,
        .vm_name = vm,
        .vm_dir_prefix = g_str_equal(vm, "debian") ? "vm-templates" : "appvms",
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
    must(vol != NULL, error);
    return vol;
}

int main(int argc, char **argv)
{
    g_autofree char *pool_dir = NULL, *setup_check = NULL;
    GOptionEntry entries[] = {
        {"pool-dir", 0, 0, G_OPTION_ARG_FILENAME, &pool_dir,
         "Folder for the tour's pool (made and removed)", "DIR"},
        {"setup-check", 0, 0, G_OPTION_ARG_STRING, &setup_check,
         "\"no\" on a filesystem without reflinks", "no"},
        {"quiet-log", 0, 0, G_OPTION_ARG_NONE, &quiet_log,
         "Do not show the driver's file log", NULL},
        {NULL},
    };
    g_autoptr(GOptionContext) octx =
        g_option_context_new("- a tour of the file-reflink storage engine");
    g_option_context_add_main_entries(octx, entries, NULL);
    GError *error = NULL;
    must(g_option_context_parse(octx, &argc, &argv, &error), error);
    if (!pool_dir) {
        fprintf(stderr, "usage: qubes-storage-tour --pool-dir DIR\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    g_log_set_handler("qubes.storage",
                      G_LOG_LEVEL_INFO | G_LOG_LEVEL_WARNING |
                          G_LOG_LEVEL_MESSAGE,
                      show_log, NULL);

    step("1. A file-reflink pool");
    g_autoptr(GHashTable) opts = g_hash_table_new(g_str_hash, g_str_equal);
    g_hash_table_insert(opts, "dir_path", pool_dir);
    if (setup_check)
        g_hash_table_insert(opts, "setup_check", setup_check);
    g_autoptr(QubesPool) pool =
        qubes_pool_new("file-reflink", "tour", opts, &error);
    must(pool != NULL, error);
    gboolean ok = qubes_pool_setup(pool, &error);
    if (!ok && !setup_check) {
        printf("    setup refused: %s\n", error->message);
        printf("    (retrying with setup_check=no: copies instead of "
               "reflinks)\n");
        g_clear_error(&error);
        g_hash_table_insert(opts, "setup_check", "no");
        qubes_pool_free(g_steal_pointer(&pool));
        pool = qubes_pool_new("file-reflink", "tour", opts, &error);
        must(pool != NULL, error);
        ok = qubes_pool_setup(pool, &error);
    }
    must(ok, error);
    QubesPoolUsage usage;
    must(qubes_pool_usage_details(pool, &usage, &error), error);
    printf("    pool 'tour' at %s: %" G_GUINT64_FORMAT
           " MiB, %" G_GUINT64_FORMAT " MiB used\n",
           pool_dir, usage.data_size / MiB, usage.data_usage / MiB);

    step("2. A template's root volume: created, started, written, stopped");
    g_autoptr(QubesVolume) troot =
        volume(pool, "debian", "root", 4 * GiB, TRUE, NULL, 1);
    must(qubes_volume_create(troot, &error), error);
    must(qubes_volume_start(troot, &error), error);
    g_autofree char *tpath = qubes_volume_get_path(troot);
    write_data(tpath, 0, 8 * MiB, 0x11);
    must(qubes_volume_stop(troot, &error), error);
    show_revisions(troot);

    step("3. An AppVM: root is a snapshot of the template's, private an "
         "origin, volatile scratch");
    g_autoptr(QubesVolume) root =
        volume(pool, "work", "root", 4 * GiB, FALSE, troot->vid, -2);
    g_autoptr(QubesVolume) priv =
        volume(pool, "work", "private", 2 * GiB, TRUE, NULL, 2);
    g_autoptr(QubesVolume) vola =
        volume(pool, "work", "volatile", 10 * GiB, FALSE, NULL, -2);
    QubesVolume *vols[] = {root, priv, vola};
    for (int i = 0; i < 3; i++)
        must(qubes_volume_create(vols[i], &error), error);

    for (int round = 1; round <= 3; round++) {
        g_autofree char *title =
            g_strdup_printf("4.%d. Start the AppVM, write, stop", round);
        step(title);
        guint64 f0 = qubes_pool_get_fsync_count(pool);
        gint64 t0 = g_get_monotonic_time();
        for (int i = 0; i < 3; i++)
            must(qubes_volume_start(vols[i], &error), error);
        gint64 t1 = g_get_monotonic_time();
        g_autofree char *ppath = qubes_volume_get_path(priv);
        write_data(ppath, 0, 64 * 1024, 0x20 + round);
        gint64 t2 = g_get_monotonic_time();
        for (int i = 0; i < 3; i++)
            must(qubes_volume_stop(vols[i], &error), error);
        gint64 t3 = g_get_monotonic_time();
        printf("    start %.2f ms, stop %.2f ms, %" G_GUINT64_FORMAT
               " fsyncs\n",
               (double)(t1 - t0) / 1000, (double)(t3 - t2) / 1000,
               qubes_pool_get_fsync_count(pool) - f0);
        show_revisions(priv);
    }

    step("5. The template commits while the AppVM runs: its root is outdated");
    must(qubes_volume_start(root, &error), error);
    must(qubes_volume_start(troot, &error), error);
    write_data(tpath, 16 * MiB, MiB, 0x12);
    must(qubes_volume_stop(troot, &error), error);
    printf("    is_outdated(%s) = %s\n", root->vid,
           qubes_volume_is_outdated(root) ? "yes" : "no");
    must(qubes_volume_stop(root, &error), error);

    step("6. Revert the private volume to its latest revision");
    g_autofree char *before = first_bytes(priv);
    must(qubes_volume_revert(priv, NULL, &error), error);
    g_autofree char *after = first_bytes(priv);
    printf("    first byte of %s: %s before, %s after the revert\n", priv->vid,
           before, after);
    show_revisions(priv);

    step("7. Who holds what: bytes shared by reflinks, bytes only an image "
         "holds (what deleting it frees)");
    show_space(priv);

    step("8. Clean up");
    quiet_log = TRUE;
    for (int i = 0; i < 3; i++)
        must(qubes_volume_remove(vols[i], &error), error);
    must(qubes_volume_remove(troot, &error), error);
    printf("    removed the volumes; the pool folder %s stays\n", pool_dir);
    return 0;
}
