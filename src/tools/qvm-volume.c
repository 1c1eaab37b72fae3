/* qvm-volume: list and manage the volumes of qubes.
 *
 *   qvm-volume [list] [-p POOL] [VM...]      POOL:VOLUME VMNAME VOLUME_NAME
 *                                            REVERT_POSSIBLE
 *   qvm-volume info VM:VOLUME [PROPERTY]     its settings and revisions
 *   qvm-volume config VM:VOLUME PROPERTY VALUE
 *                     (rw, revisions_to_keep, ephemeral)
 *   qvm-volume resize VM:VOLUME SIZE         grow (10G, 512MiB, bytes)
 *   qvm-volume revert VM:VOLUME [REVISION]   the latest when none is named
 *   qvm-volume import [--size SIZE] VM:VOLUME PATH|-
 *
 * import runs the service program admin.vm.volume.Import (or
 * ImportWithSize) from $QUBES_RPC_DIR, else from beside this program,
 * else from the installed services folder, feeding it the image and
 * showing progress on a terminal.
 */
#include "tool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef QUBES_RPC_INSTALL_DIR
#define QUBES_RPC_INSTALL_DIR "/etc/qubes-rpc"
#endif

static const char *P = "qvm-volume";

static GHashTable *volume_info(const char *vm, const char *vol, GError **err)
{
    g_autofree char *info = qa_call("admin.vm.volume.Info", vm, vol, NULL, err);
    return info ? qa_parse_kv(info, "\n") : NULL;
}

static int cmd_list(char **vms, const char *pool_filter)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *list = qa_call("admin.vm.List", "dom0", NULL, NULL, &err);
    if (!list)
        return qa_fail(P, err);
    g_autoptr(Table) t = table_new(4, "POOL:VOLUME", "VMNAME", "VOLUME_NAME",
                                   "REVERT_POSSIBLE", NULL);
    g_auto(GStrv) lines = g_strsplit(list, "\n", -1);
    for (char **l = lines; *l && **l; l++) {
        g_autofree char *vm = g_strndup(*l, strcspn(*l, " "));
        if (vms && *vms && !g_strv_contains((const char *const *)vms, vm))
            continue;
        g_autofree char *vols =
            qa_call("admin.vm.volume.List", vm, NULL, NULL, NULL);
        g_auto(GStrv) names = g_strsplit(vols ? vols : "", "\n", -1);
        for (char **v = names; *v && **v; v++) {
            g_autoptr(GHashTable) kv = volume_info(vm, *v, NULL);
            if (!kv)
                continue;
            const char *pool = g_hash_table_lookup(kv, "pool");
            if (pool_filter && g_strcmp0(pool, pool_filter) != 0)
                continue;
            g_autofree char *snaps =
                qa_call("admin.vm.volume.ListSnapshots", vm, *v, NULL, NULL);
            g_autofree char *pv =
                g_strdup_printf("%s:%s", pool ? pool : "",
                                (char *)g_hash_table_lookup(kv, "vid"));
            table_add(t, pv, vm, *v, snaps && *snaps ? "Yes" : "No", NULL);
        }
    }
    table_print(t);
    return 0;
}

static int cmd_info(const char *vm, const char *vol, const char *prop)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *info =
        qa_call("admin.vm.volume.Info", vm, vol, NULL, &err);
    if (!info)
        return qa_fail(P, err);
    g_autofree char *snaps =
        qa_call("admin.vm.volume.ListSnapshots", vm, vol, NULL, &err);
    if (!snaps)
        return qa_fail(P, err);
    g_auto(GStrv) revs = g_strsplit(snaps, "\n", -1);
    g_autofree char *revlist = g_strjoinv(" ", revs);
    g_strstrip(revlist);
    if (prop) {
        if (strcmp(prop, "revisions") == 0) {
            for (char **r = revs; *r && **r; r++)
                printf("%s\n", *r);
            return 0;
        }
        g_autoptr(GHashTable) kv = qa_parse_kv(info, "\n");
        const char *v = g_hash_table_lookup(kv, prop);
        if (!v) {
            fprintf(stderr, "%s: error: no such property: %s\n", P, prop);
            return 1;
        }
        printf("%s\n", v);
        return 0;
    }
    g_autoptr(Table) t = table_new(2, NULL);
    static const char *const sizes[] = {"size", "usage", "shared", "exclusive",
                                        NULL};
    table_add_kv_lines(t, info, sizes);
    table_add(t, "revisions", *revlist ? revlist : "(none)", NULL);
    table_print(t);
    return 0;
}

static int cmd_import(const char *vm, const char *vol, const char *path,
                      const char *size_opt, gboolean no_resize)
{
    int in = STDIN_FILENO;
    guint64 size = 0;
    gboolean have_size = FALSE;
    if (strcmp(path, "-") != 0) {
        in = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (in < 0 || fstat(in, &st) != 0) {
            fprintf(stderr, "%s: error: cannot open %s: %s\n", P, path,
                    g_strerror(errno));
            return 1;
        }
        if (S_ISREG(st.st_mode) && !no_resize) {
            size = (guint64)st.st_size;
            have_size = TRUE;
        }
    }
    if (size_opt) {
        if (!tool_parse_size(size_opt, &size)) {
            fprintf(stderr, "%s: error: bad size: %s\n", P, size_opt);
            return 2;
        }
        have_size = TRUE;
    }
    g_autofree char *msg = NULL;
    if (!tool_volume_import(vm, vol, in, size, have_size, isatty(STDERR_FILENO),
                            &msg)) {
        fprintf(stderr, "%s: error: import into %s:%s failed%s%s\n", P, vm, vol,
                *msg ? ": " : "", msg);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    g_autofree char *pool = NULL, *size_opt = NULL;
    gboolean no_resize = FALSE;
    GOptionEntry entries[] = {
        {"no-resize", 0, 0, G_OPTION_ARG_NONE, &no_resize,
         "import: keep the volume's size (the data must fill it)", NULL},
        {"pool", 'p', 0, G_OPTION_ARG_STRING, &pool,
         "list: only volumes in this pool", "POOL"},
        {"size", 0, 0, G_OPTION_ARG_STRING, &size_opt,
         "import: the size of the data (default: the file's)", "SIZE"},
        {NULL},
    };
    tool_parse(&argc, &argv, entries,
               "[list [VM...] | info VM:VOLUME [PROPERTY] | config VM:VOLUME "
               "PROPERTY VALUE | resize VM:VOLUME SIZE | revert VM:VOLUME "
               "[REVISION] | import VM:VOLUME PATH]",
               "Manage the volumes of qubes.",
               "Commands:\n"
               "  list [VM...]                 POOL:VOLUME VMNAME VOLUME_NAME "
               "REVERT_POSSIBLE\n"
               "  info VM:VOLUME [PROPERTY]    settings, usage and revisions\n"
               "  config VM:VOLUME PROP VALUE  rw, revisions_to_keep or "
               "ephemeral\n"
               "  resize VM:VOLUME SIZE        grow (10G, 512MiB, bytes)\n"
               "  revert VM:VOLUME [REVISION]  the latest revision by default\n"
               "  import VM:VOLUME PATH|-      the volume takes the image's "
               "size unless --no-resize\n\n"
               "The daemon is found through $QUBESD_SOCKET, else "
               "/var/run/qubesd.sock.");
    const char *cmd = argc > 1 ? argv[1] : "list";
    if (!strcmp(cmd, "list") || !strcmp(cmd, "ls") || !strcmp(cmd, "l"))
        return cmd_list(argc > 2 ? argv + 2 : NULL, pool);
    if (argc < 3) {
        fprintf(stderr, "%s: error: %s needs VM:VOLUME\n", P, cmd);
        return 2;
    }
    g_autofree char *vm = NULL, *vol = NULL;
    if (!tool_split_vm_volume(argv[2], &vm, &vol)) {
        fprintf(stderr, "%s: error: expected VM:VOLUME, got %s\n", P, argv[2]);
        return 2;
    }
    g_autoptr(GError) err = NULL;
    if (!strcmp(cmd, "info") || !strcmp(cmd, "i"))
        return cmd_info(vm, vol, argc > 3 ? argv[3] : NULL);
    if (!strcmp(cmd, "config") || !strcmp(cmd, "c") || !strcmp(cmd, "set")) {
        if (argc != 5) {
            fprintf(stderr, "%s: error: config VM:VOLUME PROPERTY VALUE\n", P);
            return 2;
        }
        g_autofree char *method =
            g_strdup_printf("admin.vm.volume.Set.%s", argv[3]);
        g_autofree char *r = qa_call(method, vm, vol, argv[4], &err);
        return r ? 0 : qa_fail(P, err);
    }
    if (!strcmp(cmd, "resize") || !strcmp(cmd, "extend")) {
        guint64 size;
        if (argc != 4 || !tool_parse_size(argv[3], &size)) {
            fprintf(stderr, "%s: error: resize VM:VOLUME SIZE\n", P);
            return 2;
        }
        g_autofree char *s = g_strdup_printf("%" G_GUINT64_FORMAT, size);
        g_autofree char *r =
            qa_call("admin.vm.volume.Resize", vm, vol, s, &err);
        return r ? 0 : qa_fail(P, err);
    }
    if (!strcmp(cmd, "revert") || !strcmp(cmd, "rv") || !strcmp(cmd, "r")) {
        /* the client's revert_volume: without a revision, the latest */
        g_autofree char *latest = NULL;
        if (argc <= 3) {
            g_autofree char *list =
                qa_call("admin.vm.volume.ListSnapshots", vm, vol, "", &err);
            if (!list)
                return qa_fail(P, err);
            g_auto(GStrv) revs = g_strsplit(g_strchomp(list), "\n", -1);
            guint n = g_strv_length(revs);
            if (!n || !*revs[n - 1]) {
                fprintf(stderr, "%s: error: No snapshots available\n", P);
                return 1;
            }
            latest = g_strdup(revs[n - 1]);
        }
        g_autofree char *r = qa_call("admin.vm.volume.Revert", vm, vol,
                                     argc > 3 ? argv[3] : latest, &err);
        return r ? 0 : qa_fail(P, err);
    }
    if (!strcmp(cmd, "import")) {
        if (argc != 4) {
            fprintf(stderr, "%s: error: import VM:VOLUME PATH\n", P);
            return 2;
        }
        return cmd_import(vm, vol, argv[3], size_opt, no_resize);
    }
    fprintf(stderr, "%s: error: unknown command %s\n", P, cmd);
    return 2;
}
