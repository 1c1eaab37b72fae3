/* qvm-volume: the volumes of qubes, as the Qubes client's qvm-volume
 * (qubesadmin/tools/qvm_volume.py):
 *
 *   qvm-volume [list] [-p POOL] [--full] [--all | VMNAME...]
 *   qvm-volume info VM:VOLUME [PROPERTY]
 *   qvm-volume config VM:VOLUME PROPERTY VALUE   (rw, revisions_to_keep,
 *                                                 ephemeral)
 *   qvm-volume resize [--force] VM:VOLUME SIZE
 *   qvm-volume revert VM:VOLUME [REVISION]      (the latest by default)
 *   qvm-volume import [--size SIZE] [--no-resize] VM:VOLUME PATH|-
 *   qvm-volume clone [--force] SRC_VM:VOLUME DST_VM:VOLUME
 *   qvm-volume clear [--force] VM:VOLUME
 *
 * with the client's aliases, help, tables and messages: a VM:VOLUME
 * that names nothing is refused before anything is done ("no vm 'X'",
 * "vm 'X' has no volume 'Y'"), qubesd's refusal is "Error: MESSAGE"
 * and exit 1.
 *
 * import runs the service program admin.vm.volume.ImportWithSize (or
 * Import with --no-resize) from $QUBES_RPC_DIR, else from beside this
 * program, else from the installed services folder, as the client runs
 * it from its services folder; the size is --size, else the size
 * fstat() gives the file or standard input (a pipe's is 0), as the
 * client's os.stat().
 *
 * Deliberately different: where the client ends in an uncaught Python
 * exception (no answer to a question, a file that cannot be opened, a
 * size int() refuses) we print its last line and exit 1. */
#include "argparse.h"
#include "qubes-app.h"
#include "qubes-args.h"
#include "qubesadmin.h"
#include "tool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The main parser: the client's parse_qubes_app() refuses with its
 * usage and name, whichever subcommand it resolves for. */
static ArgsParser *main_parser;

/* A VM:VOLUME the command line named (VMVolumeAction). */
typedef struct {
    const char *vm, *name;
    GHashTable *info; /* its admin.vm.volume.Info, borrowed from the app */
} Vol;

static Vol resolve_volume(QaApp *app, const char *spec)
{
    g_auto(GStrv) parts = g_strsplit(spec, ":", -1);
    if (g_strv_length(parts) != 2)
        args_error(main_parser, "expected a vm & volume combination like "
                                "foo:bar");
    QaVm *vm = qa_app_domain(app, parts[0]);
    g_autofree char *rvm = args_py_repr(parts[0]);
    if (!vm)
        qubes_args_error_runtime(main_parser, 1, "no vm %s", rvm);
    GHashTable *info = qa_vm_volume_info(vm, parts[1]);
    if (!info) {
        g_autofree char *rvol = args_py_repr(parts[1]);
        qubes_args_error_runtime(main_parser, 1, "vm %s has no volume %s", rvm,
                                 rvol);
    }
    GPtrArray *names = qa_vm_volumes(vm);
    const char *name = NULL;
    for (guint i = 0; i < names->len && !name; i++)
        if (strcmp(names->pdata[i], parts[1]) == 0)
            name = names->pdata[i];
    return (Vol){.vm = qa_vm_name(vm), .name = name, .info = info};
}

static const char *info_get(const Vol *v, const char *key)
{
    return g_hash_table_lookup(v->info, key);
}

/* Volume.<key> as the client's print() shows it: a bool True/False, a
 * source of "" as None (printed ""). */
static char *info_value(const Vol *v, const char *key)
{
    const char *val = info_get(v, key);
    static const char *const bools[] = {
        "rw",        "save_on_stop", "snap_on_start",
        "ephemeral", "is_outdated",  NULL};
    if (g_strv_contains(bools, key))
        return g_strdup(g_strcmp0(val, "True") == 0 ? "True" : "False");
    return g_strdup(val ? val : "");
}

/* Volume.revisions: ListSnapshots, a line each. */
static GPtrArray *revisions(const Vol *v)
{
    g_autoptr(GError) err = NULL;
    GPtrArray *r =
        qa_call_lines("admin.vm.volume.ListSnapshots", v->vm, v->name, &err);
    if (!r)
        qubes_args_print_exception(err);
    return r;
}

static void cmd_info(const Vol *v, const char *prop)
{
    static const char *const items[] = {"pool",
                                        "vid",
                                        "rw",
                                        "source",
                                        "save_on_stop",
                                        "snap_on_start",
                                        "size",
                                        "usage",
                                        "revisions_to_keep",
                                        "ephemeral",
                                        NULL};
    if (prop) {
        if (strcmp(prop, "revisions") == 0) {
            g_autoptr(GPtrArray) revs = revisions(v);
            for (guint i = 0; i < revs->len; i++)
                printf("%s\n", (char *)revs->pdata[i]);
        } else if (strcmp(prop, "is_outdated") == 0 ||
                   g_strv_contains(items, prop)) {
            g_autofree char *val = info_value(v, prop);
            printf("%s\n", val);
        } else {
            qubes_args_print_error("No such property: %s", prop);
        }
        return;
    }
    g_autoptr(Table) t = table_new(2, NULL);
    for (const char *const *k = items; *k; k++) {
        g_autofree char *val = info_value(v, *k);
        if (strcmp(*k, "revisions_to_keep") == 0 && strcmp(val, "-1") == 0)
            table_add(t, *k, "-1 (snapshot disabled)", NULL);
        else
            table_add(t, *k, val, NULL);
    }
    g_autofree char *outdated = info_value(v, "is_outdated");
    table_add(t, "is_outdated", outdated, NULL);
    table_print(t);
    g_autoptr(GPtrArray) revs = revisions(v);
    if (!revs->len) {
        printf("List of available revisions (for revert): none\n");
        return;
    }
    printf("List of available revisions (for revert):\n");
    for (guint i = 0; i < revs->len; i++)
        printf("  %s\n", (char *)revs->pdata[i]);
}

static void cmd_config(const Vol *v, const char *prop, const char *value)
{
    static const char *const settable[] = {"rw", "revisions_to_keep",
                                           "ephemeral", NULL};
    if (!g_strv_contains(settable, prop)) {
        qubes_args_print_error("Invalid property: %s", prop);
    }
    g_autofree char *method = g_strdup_printf("admin.vm.volume.Set.%s", prop);
    g_autoptr(GError) err = NULL;
    g_autofree char *r = qa_call(method, v->vm, v->name, value, &err);
    if (!r)
        qubes_args_print_exception(err);
}

/* qubesadmin.utils.parse_size(): digits, or an int before a unit (K, KB,
 * M, MB, G, GB decimal; Ki, KiB, Mi, MiB, Gi, GiB binary), any case. */
static gint64 parse_size(const char *text)
{
    static const struct {
        const char *unit;
        gint64 mult;
    } units[] = {{"K", 1000},      {"KB", 1000},      {"M", 1000000},
                 {"MB", 1000000},  {"G", 1000000000}, {"GB", 1000000000},
                 {"KI", 1024},     {"KIB", 1024},     {"MI", 1 << 20},
                 {"MIB", 1 << 20}, {"GI", 1 << 30},   {"GIB", 1 << 30}};
    g_autofree char *s = g_ascii_strup(text, -1);
    g_strstrip(s);
    gboolean digits = *s != '\0';
    for (const char *p = s; *p; p++)
        digits = digits && g_ascii_isdigit(*p);
    gint64 n;
    if (digits && args_py_int(s, &n))
        return n;
    for (guint i = 0; i < G_N_ELEMENTS(units); i++) {
        if (!g_str_has_suffix(s, units[i].unit))
            continue;
        s[strlen(s) - strlen(units[i].unit)] = '\0';
        g_strstrip(s);
        if (!args_py_int(s, &n)) {
            /* the client's uncaught ValueError */
            g_autofree char *m = args_py_int_error(s);
            qubes_args_exit_uncaught("ValueError: %s", m);
        }
        return n * units[i].mult;
    }
    qubes_args_print_error("Invalid size: %s.", s);
}

static void cmd_resize(const Vol *v, const char *size_text, gboolean force)
{
    gint64 size = parse_size(size_text);
    if (!force) {
        gint64 current = g_ascii_strtoll(info_get(v, "size"), NULL, 10);
        if (size < current) {
            fprintf(
                stderr,
                "Error: Refusing to shrink volume %s:%s from %" G_GINT64_FORMAT
                " to %" G_GINT64_FORMAT " bytes.\n"
                "If you really know what you are doing: Manually shrink "
                "the filesystem on the volume first, and repartition the "
                "volume if it is partitioned. Do this in a VM, not in "
                "dom0. Then use 'qvm-volume resize --force %s:%s "
                "%" G_GINT64_FORMAT "'\n",
                v->vm, v->name, current, size, v->vm, v->name, size);
            exit(1);
        }
    }
    g_autofree char *s = g_strdup_printf("%" G_GINT64_FORMAT, size);
    g_autoptr(GError) err = NULL;
    g_autofree char *r =
        qa_call("admin.vm.volume.Resize", v->vm, v->name, s, &err);
    if (!r)
        qubes_args_print_exception(err);
}

static void cmd_revert(const Vol *v, const char *revision)
{
    g_autoptr(GPtrArray) revs = NULL;
    if (!revision || !*revision) {
        revs = revisions(v);
        if (!revs->len)
            qubes_args_print_error("%s", "No snapshots available");
        revision = revs->pdata[revs->len - 1];
    }
    g_autoptr(GError) err = NULL;
    g_autofree char *r =
        qa_call("admin.vm.volume.Revert", v->vm, v->name, revision, &err);
    if (!r)
        qubes_args_print_exception(err);
}

static void cmd_import(const Vol *v, const char *path, const ArgValue *size,
                       gboolean no_resize)
{
    int in = STDIN_FILENO;
    if (strcmp(path, "-") != 0) {
        in = open(path, O_RDONLY | O_CLOEXEC);
        if (in < 0) {
            /* the client's uncaught open() error */
            int e = errno;
            g_autofree char *r = args_py_repr(path);
            qubes_args_exit_uncaught("%s: [Errno %d] %s: %s",
                                     e == ENOENT   ? "FileNotFoundError"
                                     : e == EACCES ? "PermissionError"
                                     : e == EISDIR ? "IsADirectoryError"
                                                   : "OSError",
                                     e, g_strerror(e), r);
        }
    }
    guint64 bytes = 0;
    if (!no_resize) {
        struct stat st;
        if (size && size->type == ARGV_INT) {
            bytes = (guint64)size->i;
        } else if (fstat(in, &st) == 0) {
            bytes = (guint64)st.st_size;
        } else {
            int e = errno;
            qubes_args_print_error("Failed to get [Errno %d] %s file size, "
                                   "specify it explicitly with --size, or "
                                   "use --no-resize option",
                                   e, g_strerror(e));
        }
    }
    g_autofree char *msg = NULL;
    gboolean ok = tool_volume_import(v->vm, v->name, in, bytes, !no_resize,
                                     FALSE, &msg, NULL);
    if (in != STDIN_FILENO)
        close(in);
    if (!ok)
        qubes_args_print_error("%s", msg);
}

/* input("Are you sure? [y/N] ").lower() == 'y'; the client's uncaught
 * EOFError at the end of the input. */
static gboolean sure(void)
{
    g_autofree char *a = tool_input("Are you sure? [y/N] ");
    if (!a)
        qubes_args_exit_uncaught("EOFError: EOF when reading a line");
    g_autofree char *lower = g_utf8_strdown(a, -1);
    return strcmp(lower, "y") == 0;
}

static void cmd_clone(const Vol *src, const Vol *dst, gboolean force)
{
    if (g_strcmp0(info_get(src, "save_on_stop"), "True") != 0 ||
        g_strcmp0(info_get(dst, "save_on_stop"), "True") != 0)
        qubes_args_print_error("%s",
                               "Volumes must be save_on_stop for cloning");
    if (!force) {
        printf("This will clone the data from %s:%s into %s:%s!\n"
               "(Data in %s:%s may be preserved in a revision.)\n",
               src->vm, src->name, dst->vm, dst->name, dst->vm, dst->name);
        if (!sure()) {
            printf("Clone cancelled.\n");
            return;
        }
    }
    g_autoptr(GError) err = NULL;
    g_autofree char *token =
        qa_call("admin.vm.volume.CloneFrom", src->vm, src->name, NULL, &err);
    if (!token)
        qubes_args_print_exception(err);
    g_autofree char *r =
        qa_call("admin.vm.volume.CloneTo", dst->vm, dst->name, token, &err);
    if (!r)
        qubes_args_print_exception(err);
}

static void cmd_clear(const Vol *v, gboolean force)
{
    if (!force) {
        printf("This will empty the volume!\n"
               "(Data may be preserved in a revision.)\n");
        if (!sure()) {
            printf("Clear cancelled.\n");
            return;
        }
    }
    g_autoptr(GError) err = NULL;
    g_autofree char *r =
        qa_call("admin.vm.volume.Clear", v->vm, v->name, NULL, &err);
    if (!r)
        qubes_args_print_exception(err);
}

/* VolumeData: one (pool, vid) and the qubes' volumes that are it. */
typedef struct {
    char *pool, *vid;
    const char *revert; /* "Yes", "No" */
    GPtrArray *domains; /* "VM" "VOLUME" pairs (borrowed) */
} VolumeData;

static void volume_data_free(gpointer p)
{
    VolumeData *d = p;
    g_free(d->pool);
    g_free(d->vid);
    g_ptr_array_unref(d->domains);
    g_free(d);
}

static gint volume_data_cmp(gconstpointer a, gconstpointer b)
{
    const VolumeData *x = *(VolumeData *const *)a, *y = *(VolumeData *const *)b;
    int c = strcmp(x->pool, y->pool);
    return c ? c : strcmp(x->vid, y->vid);
}

/* list_volumes(): the volumes of the qubes given (else of every qube),
 * in pools given (else in any), one row per (pool, vid) and qube; on a
 * terminal without --full the repeated POOL:VOLUME is left blank. */
static void cmd_list(ArgsNamespace *ns, QaApp *app, GPtrArray *given)
{
    GPtrArray *domains = given->len ? given : qa_app_domains(app);
    GPtrArray *pools = args_list(ns, "pools");
    g_autoptr(GHashTable) by_key =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    g_autoptr(GPtrArray) all = g_ptr_array_new_with_free_func(volume_data_free);
    for (guint i = 0; i < domains->len; i++) {
        QaVm *vm = domains->pdata[i];
        GPtrArray *names = qa_vm_volumes(vm);
        for (guint k = 0; k < names->len; k++) {
            GHashTable *info = qa_vm_volume_info(vm, names->pdata[k]);
            const char *pool = info ? g_hash_table_lookup(info, "pool") : NULL;
            const char *vid = info ? g_hash_table_lookup(info, "vid") : NULL;
            if (!pool || !vid)
                continue;
            gboolean wanted = !pools;
            for (guint j = 0; pools && j < pools->len && !wanted; j++)
                wanted = strcmp(pools->pdata[j], pool) == 0;
            if (!wanted)
                continue;
            g_autoptr(GError) err = NULL;
            g_autoptr(GPtrArray) revs =
                qa_call_lines("admin.vm.volume.ListSnapshots", qa_vm_name(vm),
                              names->pdata[k], &err);
            if (!revs)
                qubes_args_print_exception(err);
            char *key = g_strdup_printf("%s:%s", pool, vid);
            VolumeData *d = g_hash_table_lookup(by_key, key);
            if (!d) {
                d = g_new0(VolumeData, 1);
                d->pool = g_strdup(pool);
                d->vid = g_strdup(vid);
                d->domains = g_ptr_array_new();
                g_ptr_array_add(all, d);
                g_hash_table_insert(by_key, key, d);
            } else {
                g_free(key);
            }
            /* the last volume of the (pool, vid) read decides */
            d->revert = revs->len ? "Yes" : "No";
            g_ptr_array_add(d->domains, (gpointer)qa_vm_name(vm));
            g_ptr_array_add(d->domains, names->pdata[k]);
        }
    }
    g_ptr_array_sort(all, volume_data_cmp);
    gboolean full = args_bool(ns, "full") || !isatty(STDOUT_FILENO);
    g_autoptr(Table) t = table_new(4, "POOL:VOLUME", "VMNAME", "VOLUME_NAME",
                                   "REVERT_POSSIBLE", NULL);
    for (guint i = 0; i < all->len; i++) {
        VolumeData *d = all->pdata[i];
        g_autofree char *name = g_strdup_printf("%s:%s", d->pool, d->vid);
        guint n = d->domains->len;
        /* domains.pop(): the last first, then the others in order */
        table_add(t, name, d->domains->pdata[n - 2], d->domains->pdata[n - 1],
                  d->revert, NULL);
        for (guint k = 0; k + 2 < n; k += 2)
            table_add(t, full ? name : "", d->domains->pdata[k],
                      d->domains->pdata[k + 1], d->revert, NULL);
    }
    table_print(t);
}

static ArgsParser *add_command(ArgsAction *sub, const char *name,
                               const char *const *aliases, const char *help)
{
    ArgsParser *c = args_add_parser(sub, name, aliases, help, NULL, NULL,
                                    ARGS_FORMAT_DEFAULT);
    qubes_args_add_common(c);
    args_set_default(c, "func", name);
    return c;
}

static void add_vm_volume(ArgsParser *c, const char *dest, const char *metavar)
{
    args_add(c, &(ArgsSpec){.names = dest,
                            .metavar = metavar,
                            .help = "A VM & volume id combination"});
}

static void add_force(ArgsParser *c, const char *help)
{
    args_add(c, &(ArgsSpec){.names = "--force -f",
                            .action = ARGS_STORE_TRUE,
                            .deflt = "False",
                            .deflt_type = ARGV_BOOL,
                            .help = help});
}

static ArgsParser *make_parser(void)
{
    ArgsParser *p = qubes_args_new("qvm-volume", 0, "Qubes volume management",
                                   NULL, ARGS_FORMAT_DEFAULT);
    ArgsAction *sub = args_add_subparsers(
        p, "command", "commands",
        "For more information see qvm-volume command -h", NULL, NULL, FALSE);
    args_subparsers_qubes_aliases(sub);
    static const char *const a_info[] = {"i", NULL},
                             *const a_config[] = {"c", "set", "s", NULL},
                             *const a_resize[] = {"extend", NULL},
                             *const a_list[] = {"ls", "l", NULL},
                             *const a_revert[] = {"rv", "r", NULL};

    ArgsParser *c = add_command(sub, "info", a_info, "info about volume");
    add_vm_volume(c, "volume", "VM:VOLUME");
    args_add(c, &(ArgsSpec){.names = "property",
                            .nargs = ARGS_OPTIONAL,
                            .help = "Show only this property instead of all "
                                    "of them; use 'revisions' to list "
                                    "available revisions"});

    c = add_command(sub, "config", a_config, "set config option for a volume");
    add_vm_volume(c, "volume", "VM:VOLUME");
    args_add(c, &(ArgsSpec){.names = "property"});
    args_add(c, &(ArgsSpec){.names = "value"});

    c = add_command(sub, "resize", a_resize, "resize volume for domain");
    add_vm_volume(c, "volume", "VM:VOLUME");
    args_add(c, &(ArgsSpec){.names = "size", .help = "New size in bytes"});
    add_force(c, "Force operation, even if new size is smaller than the "
                 "current one");

    c = add_command(sub, "list", a_list, "list storage volumes");
    args_add(c, &(ArgsSpec){.names = "-p --pool",
                            .metavar = "POOL_NAME",
                            .dest = "pools",
                            .action = ARGS_APPEND});
    args_add(c, &(ArgsSpec){.names = "--full",
                            .action = ARGS_STORE_TRUE,
                            .deflt = "False",
                            .deflt_type = ARGV_BOOL,
                            .help = "print full line for each "
                                    "POOL_NAME:VOLUME_ID & vm combination"});
    qubes_args_add_vmname_group(c, FALSE,
                                "list volumes from specified domain(s)");

    c = add_command(sub, "revert", a_revert,
                    "revert volume to previous revision");
    add_vm_volume(c, "volume", "VM:VOLUME");
    args_add(c, &(ArgsSpec){.names = "revision",
                            .metavar = "REVISION",
                            .nargs = ARGS_OPTIONAL,
                            .help = "Optional revision to revert to; if not "
                                    "specified, latest one is assumed"});

    c = add_command(sub, "import", NULL, "import volume data");
    add_vm_volume(c, "volume", "VM:VOLUME");
    args_add(c, &(ArgsSpec){.names = "input_path",
                            .metavar = "PATH",
                            .help = "File path to import, use '-' for "
                                    "standard input"});
    args_add(c, &(ArgsSpec){.names = "--size",
                            .is_int = TRUE,
                            .help = "Set volume size to this value in bytes"});
    args_add(c, &(ArgsSpec){.names = "--no-resize",
                            .action = ARGS_STORE_TRUE,
                            .deflt = "False",
                            .deflt_type = ARGV_BOOL,
                            .help = "Do not resize volume before importing "
                                    "data"});

    c = add_command(sub, "clone", NULL, "clone volume data");
    add_vm_volume(c, "src_volume", "SOURCE_VM:SOURCE_VOLUME");
    add_vm_volume(c, "dst_volume", "DESTINATION_VM:DESTINATION_VOLUME");
    add_force(c, "Do not prompt for confirmation");

    c = add_command(sub, "clear", NULL, "clear volume data");
    add_vm_volume(c, "volume", "VM:VOLUME");
    add_force(c, "Do not prompt for confirmation");

    args_set_default(p, "func", "list");
    return p;
}

int main(int argc, char **argv)
{
    ArgsParser *p = make_parser();
    main_parser = p;
    g_autoptr(ArgsNamespace) ns = args_parse(p, argc, argv);
    g_autoptr(QaApp) app = qubes_args_app(p);
    const char *func = args_str(ns, "func");
    if (strcmp(func, "list") == 0) {
        /* PoolsAction, then the qubes (VmNameAction), as the client
         * resolves them */
        GPtrArray *pools = args_list(ns, "pools");
        if (pools) {
            g_autoptr(GError) err = NULL;
            g_autoptr(GPtrArray) known =
                qa_call_lines("admin.pool.List", "dom0", NULL, &err);
            if (!known)
                args_error(p, "%s", tool_error_message(err));
            for (guint i = 0; i < pools->len; i++)
                if (!g_ptr_array_find_with_equal_func(known, pools->pdata[i],
                                                      g_str_equal, NULL)) {
                    GString *r = g_string_new("[");
                    for (guint k = 0; k < pools->len; k++) {
                        g_autofree char *q = args_py_repr(pools->pdata[k]);
                        g_string_append_printf(r, "%s%s", k ? ", " : "", q);
                    }
                    g_string_append_c(r, ']');
                    args_error(p, "No such pools: %s", r->str);
                }
        }
        g_autoptr(GPtrArray) doms =
            args_get(ns, "VMNAME")
                ? qubes_args_domains(p, ns, app, ARGS_ZERO_OR_MORE)
                : g_ptr_array_new();
        cmd_list(ns, app, doms);
    } else if (strcmp(func, "clone") == 0) {
        Vol src = resolve_volume(app, args_str(ns, "src_volume"));
        Vol dst = resolve_volume(app, args_str(ns, "dst_volume"));
        cmd_clone(&src, &dst, args_bool(ns, "force"));
    } else {
        Vol v = resolve_volume(app, args_str(ns, "volume"));
        if (strcmp(func, "info") == 0)
            cmd_info(&v, args_str(ns, "property"));
        else if (strcmp(func, "config") == 0)
            cmd_config(&v, args_str(ns, "property"), args_str(ns, "value"));
        else if (strcmp(func, "resize") == 0)
            cmd_resize(&v, args_str(ns, "size"), args_bool(ns, "force"));
        else if (strcmp(func, "revert") == 0)
            cmd_revert(&v, args_str(ns, "revision"));
        else if (strcmp(func, "import") == 0)
            cmd_import(&v, args_str(ns, "input_path"), args_get(ns, "size"),
                       args_bool(ns, "no_resize"));
        else if (strcmp(func, "clear") == 0)
            cmd_clear(&v, args_bool(ns, "force"));
    }
    fflush(stdout);
    args_parser_free(p);
    return 0;
}
