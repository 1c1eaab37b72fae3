/* qvm-start, qvm-shutdown, qvm-kill, qvm-pause, qvm-unpause and
 * qvm-check (one source, QVM_TOOL picks the tool), as the Qubes
 * client's tools of those names (qubesadmin/tools/qvm_start.py, ...):
 * their options, the VMNAME... or --all/--exclude of every one, the
 * actions run on each qube and the failures reported in the qubes'
 * order ("Error: Failed to kill: NAME: MESSAGE"), their exit statuses
 * (qvm-kill and qvm-shutdown: the number that failed), qvm-shutdown's
 * retries of qubes in use or timed out, qvm-start's --drive, --hddisk,
 * --cdrom and --install-windows-tools (a loop device made for a dom0
 * file, assigned for the start only), qvm-check's filters and log lines.
 *
 * Deliberately different: qvm-shutdown --timeout's deprecation warning is
 * Python's warnings line without its source location. */
#include "argparse.h"
#include "qubes-app.h"
#include "qubes-args.h"
#include "qubesadmin.h"
#include "tool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define T_START 1
#define T_SHUTDOWN 2
#define T_KILL 3
#define T_PAUSE 4
#define T_UNPAUSE 5
#define T_CHECK 6

#if QVM_TOOL == T_START
#define PROG "qvm-start"
#elif QVM_TOOL == T_SHUTDOWN
#define PROG "qvm-shutdown"
#elif QVM_TOOL == T_KILL
#define PROG "qvm-kill"
#elif QVM_TOOL == T_PAUSE
#define PROG "qvm-pause"
#elif QVM_TOOL == T_UNPAUSE
#define PROG "qvm-unpause"
#else
#define PROG "qvm-check"
#endif

/* parser.print_error() */
static void print_error(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
G_GNUC_UNUSED static void print_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    fprintf(stderr, "Error: %s\n", msg);
}

/* One Admin API call on @vm; NULL on success, else the failure (new). */
G_GNUC_UNUSED static GError *act(const char *method, const char *vm,
                                 const char *arg)
{
    GError *err = NULL;
    g_autofree char *r = qa_call(method, vm, arg, NULL, &err);
    return r ? NULL : err;
}

/* The power state now (CurrentState), as get_power_state() asks it. */
G_GNUC_UNUSED static char *power_state(const char *vm)
{
    g_autofree char *s = qa_call("admin.vm.CurrentState", vm, NULL, NULL, NULL);
    if (!s)
        return g_strdup("NA");
    g_autoptr(GHashTable) kv = qa_parse_kv(s, " ");
    const char *p = g_hash_table_lookup(kv, "power_state");
    return g_strdup(p ? p : "NA");
}

G_GNUC_UNUSED static gboolean is_running(const char *vm)
{
    g_autofree char *s = power_state(vm);
    return strcmp(s, "Halted") != 0 && strcmp(s, "NA") != 0;
}

#if QVM_TOOL == T_START
/* get_drive_assignment(): "[cdrom:|hd:]VM:PATH_OR_PORT" as a required
 * block assignment's argument and payload; a dom0 path gets a loop
 * device first. FALSE with @message (new). */
static gboolean drive_assignment(QaApp *app, const char *drive, char **arg,
                                 char **payload, char **message)
{
    const char *devtype = "cdrom";
    if (g_str_has_prefix(drive, "cdrom:")) {
        drive += strlen("cdrom:");
    } else if (g_str_has_prefix(drive, "hd:")) {
        devtype = "disk";
        drive += strlen("hd:");
    }
    const char *colon = strchr(drive, ':');
    if (!colon) {
        *message = g_strdup("Incorrect image name: image must be in the "
                            "format of VMNAME:full_path, for example "
                            "dom0:/home/user/test.iso");
        return FALSE;
    }
    g_autofree char *backend = g_strndup(drive, (gsize)(colon - drive));
    g_autofree char *port = g_strdup(colon + 1);
    QaVm *b = qa_app_domain(app, backend);
    if (!b) {
        *message = g_strdup_printf("No such VM: %s", backend);
        return FALSE;
    }
    if (port[0] == '/') {
        if (g_strcmp0(qa_vm_klass(b), "AdminVM") != 0) {
            *message =
                g_strdup_printf("Failed to setup loop device for %s", port);
            return FALSE;
        }
        const char *argv_root[] = {"losetup", "-f", "--show", port, NULL};
        const char *argv_sudo[] = {"sudo",   "losetup", "-f",
                                   "--show", port,      NULL};
        g_autofree char *out = NULL;
        int status = 0;
        if (!g_spawn_sync(
                NULL, (char **)(geteuid() == 0 ? argv_root : argv_sudo), NULL,
                G_SPAWN_SEARCH_PATH, NULL, NULL, &out, NULL, &status, NULL) ||
            !g_spawn_check_wait_status(status, NULL) ||
            !g_str_has_prefix(out, "/dev/loop")) {
            *message =
                g_strdup_printf("Failed to setup loop device for %s", port);
            return FALSE;
        }
        g_free(port);
        port = g_strdup(g_strstrip(out) + strlen("/dev/"));
        /* the device appears to qubesd (it looks every 2 s) */
        for (int t = 0;; t++) {
            g_autofree char *avail = qa_call("admin.vm.device.block.Available",
                                             backend, port, NULL, NULL);
            if (avail && *avail)
                break;
            if (t == 10) {
                *message = g_strdup_printf("Timeout waiting for %s:%s device "
                                           "to appear",
                                           backend, port);
                return FALSE;
            }
            sleep(1);
        }
    }
    *arg = g_strdup_printf("%s+%s", backend, port);
    *payload = g_strdup_printf(
        "mode='required' _devtype='%s' _read-only='%s'", devtype,
        strcmp(devtype, "cdrom") == 0 ? "True" : "False");
    return TRUE;
}
#endif

#if QVM_TOOL == T_START
/* qubesadmin.utils.DriveAction: the prefix and the image */
static void drive_action(ArgsParser *p, ArgsNamespace *ns, const ArgsAction *a,
                         GPtrArray *values, const char *opt, gpointer prefix)
{
    g_autofree char *v = g_strconcat(prefix, (char *)values->pdata[0], NULL);
    args_set(ns, "drive", args_value_str(v));
}
#endif

static ArgsParser *make_parser(void)
{
#if QVM_TOOL == T_START
    ArgsParser *p = qubes_args_new(PROG, ARGS_ONE_OR_MORE, "start a domain",
                                   NULL, ARGS_FORMAT_DEFAULT);
    args_add(p, &(ArgsSpec){.names = "--skip-if-running",
                            .action = ARGS_STORE_TRUE,
                            .deflt = "False",
                            .deflt_type = ARGV_BOOL,
                            .help = "Do not fail if the qube is already "
                                    "runnning"});
    int g = args_add_mutex(p, 0, FALSE);
    args_add_in(p, 0, g,
                &(ArgsSpec){.names = "--drive",
                            .metavar = "DRIVE",
                            .help = "temporarily attach specified drive as "
                                    "CD/DVD or hard disk (can be specified "
                                    "with prefix \"hd:\" or \"cdrom:\", "
                                    "default is cdrom)"});
    args_add_in(p, 0, g,
                &(ArgsSpec){.names = "--hddisk",
                            .action = ARGS_CALLBACK,
                            .dest = "drive",
                            .metavar = "IMAGE",
                            .help = "temporarily attach specified drive as "
                                    "hard disk",
                            .callback = drive_action,
                            .callback_data = (gpointer) "hd:"});
    args_add_in(p, 0, g,
                &(ArgsSpec){.names = "--cdrom",
                            .action = ARGS_CALLBACK,
                            .dest = "drive",
                            .metavar = "IMAGE",
                            .help = "temporarily attach specified drive as "
                                    "CD/DVD",
                            .callback = drive_action,
                            .callback_data = (gpointer) "cdrom:"});
    args_add_in(p, 0, g,
                &(ArgsSpec){.names = "--install-windows-tools",
                            .action = ARGS_STORE_CONST,
                            .dest = "drive",
                            .deflt = "False",
                            .deflt_type = ARGV_BOOL,
                            .konst = "cdrom:dom0:/usr/lib/qubes/"
                                     "qubes-windows-tools.iso",
                            .help = "temporarily attach Windows tools CDROM "
                                    "to the domain"});
#elif QVM_TOOL == T_SHUTDOWN
    ArgsParser *p = qubes_args_new(PROG, ARGS_ONE_OR_MORE, "Shutdown a qube",
                                   NULL, ARGS_FORMAT_DEFAULT);
    args_add(p, &(ArgsSpec){.names = "--wait",
                            .action = ARGS_STORE_TRUE,
                            .deflt = "False",
                            .deflt_type = ARGV_BOOL,
                            .help = "wait for the VMs to shut down"});
    args_add(p, &(ArgsSpec){.names = "--timeout",
                            .help = "Deprecated, use --wait instead. Setting "
                                    "this option will enable --wait"});
    args_add(p, &(ArgsSpec){.names = "--force",
                            .action = ARGS_STORE_TRUE,
                            .deflt = "False",
                            .deflt_type = ARGV_BOOL,
                            .help = "shut down even if other qubes depend on "
                                    "this one (e.g. as NetVM or AudioVM); "
                                    "does not affect how the qube itself is "
                                    "shut down; use with caution"});
    args_add(p, &(ArgsSpec){.names = "--dry-run",
                            .action = ARGS_STORE_TRUE,
                            .dest = "dry_run",
                            .deflt = "False",
                            .deflt_type = ARGV_BOOL,
                            .help = "don't really shutdown or kill the "
                                    "domains; useful with --wait"});
#elif QVM_TOOL == T_KILL
    ArgsParser *p = qubes_args_new(
        PROG, ARGS_ONE_OR_MORE,
        "immediately terminate a qube without a graceful shutdown sequence",
        NULL, ARGS_FORMAT_DEFAULT);
#elif QVM_TOOL == T_PAUSE
    ArgsParser *p = qubes_args_new(
        PROG, ARGS_ONE_OR_MORE, "pause a qube",
        "Paused qubes will be killed on system shutdown.", ARGS_FORMAT_DEFAULT);
    args_add(p, &(ArgsSpec){.names = "--suspend -S",
                            .action = ARGS_STORE_TRUE,
                            .help = "Put the qube to (S3) suspend mode "
                                    "instead of emergency pause"});
#elif QVM_TOOL == T_UNPAUSE
    ArgsParser *p = qubes_args_new(PROG, ARGS_ONE_OR_MORE, "unpause a domain",
                                   NULL, ARGS_FORMAT_DEFAULT);
#else
    /* VmNameGroup with names that need not exist */
    ArgsParser *p = qubes_args_new(PROG, ARGS_ONE_OR_MORE,
                                   " Exits sucessfull if the provided "
                                   "domain(s) exist, else returns failure ",
                                   NULL, ARGS_FORMAT_DEFAULT);
    static const struct {
        const char *names, *dest, *help;
    } flags[] = {
        {"--running", "running", "Determine if (any of given) VM is running"},
        {"--paused", "paused", "Determine if (any of given) VM is paused"},
        {"--template", "template",
         "Determine if (any of given) VM is a template"},
        {"--networked", "networked",
         "Determine if (any of given) VM can reach network"},
    };
    for (guint i = 0; i < G_N_ELEMENTS(flags); i++)
        args_add(p, &(ArgsSpec){.names = flags[i].names,
                                .action = ARGS_STORE_TRUE,
                                .dest = flags[i].dest,
                                .deflt = "False",
                                .deflt_type = ARGV_BOOL,
                                .help = flags[i].help});
#endif
    return p;
}

#if QVM_TOOL == T_CHECK
static gint vm_cmp(gconstpointer a, gconstpointer b)
{
    return strcmp(qa_vm_name(*(QaVm *const *)a), qa_vm_name(*(QaVm *const *)b));
}

/* log.info / log.warning of the "qvm-check" logger */
static void log_line(ArgsNamespace *ns, gboolean warning, const char *msg)
{
    qubes_args_log(ns, "qvm-check", warning, "%s", msg);
}

static int check(ArgsParser *p, ArgsNamespace *ns, QaApp *app)
{
    g_autoptr(GPtrArray) doms = g_ptr_array_new();
    g_autoptr(GPtrArray) invalid = g_ptr_array_new();
    GPtrArray *exclude = args_list(ns, "exclude");
    GPtrArray *all = qa_app_domains(app);
    if (args_bool(ns, "all_domains")) {
        for (guint i = 0; i < all->len; i++) {
            QaVm *vm = all->pdata[i];
            gboolean ex = FALSE;
            for (guint k = 0; exclude && k < exclude->len && !ex; k++)
                ex = strcmp(exclude->pdata[k], qa_vm_name(vm)) == 0;
            if (g_strcmp0(qa_vm_klass(vm), "AdminVM") != 0 && !ex)
                g_ptr_array_add(doms, vm);
        }
    } else {
        if (exclude && exclude->len)
            args_error(p, "--exclude can only be used with --all");
        GPtrArray *names = args_list(ns, "VMNAME");
        for (guint i = 0; names && i < names->len; i++) {
            QaVm *vm = qa_app_domain(app, names->pdata[i]);
            if (vm)
                g_ptr_array_add(doms, vm);
            else
                g_ptr_array_add(invalid, names->pdata[i]);
        }
    }
    gboolean verbose = args_int(ns, "verbose") != 0;
    int rc = 0;
    g_autoptr(GString) status = g_string_new(NULL);
    /* the qubes that pass every filter, once each */
    g_autoptr(GPtrArray) passed = g_ptr_array_new();
    for (guint i = 0; i < doms->len; i++)
        if (!g_ptr_array_find(passed, doms->pdata[i], NULL))
            g_ptr_array_add(passed, doms->pdata[i]);
    g_autoptr(GPtrArray) distinct = g_ptr_array_copy(passed, NULL, NULL);
    gboolean any_filter = FALSE;
    static const char *const names[] = {"running", "paused", "template",
                                        "networked"};
    for (guint f = 0; f < G_N_ELEMENTS(names); f++) {
        if (!args_bool(ns, names[f]))
            continue;
        any_filter = TRUE;
        g_string_append_printf(status, "%s%s", status->len ? ", " : "",
                               names[f]);
        for (guint i = 0; i < passed->len;) {
            QaVm *vm = passed->pdata[i];
            const char *n = qa_vm_name(vm);
            gboolean ok;
            if (f == 0) {
                ok = is_running(n);
            } else if (f == 1) {
                g_autofree char *s = power_state(n);
                ok = strcmp(s, "Paused") == 0;
            } else if (f == 2) {
                ok = g_strcmp0(qa_vm_klass(vm), "TemplateVM") == 0;
            } else {
                const QaProp *net = qa_vm_prop(vm, "netvm");
                ok = qa_vm_prop_true(vm, "provides_network") ||
                     net->kind == QA_PROP_VALUE;
            }
            if (ok)
                i++;
            else
                g_ptr_array_remove_index(passed, i);
        }
    }
    g_ptr_array_sort(passed, vm_cmp);
    if (any_filter) {
        if (passed->len != distinct->len)
            rc = passed->len ? 3 : 1;
        if (verbose) {
            if (!passed->len) {
                g_autofree char *m =
                    g_strdup_printf("None of qubes: %s", status->str);
                log_line(ns, FALSE, m);
            }
            for (guint i = 0; i < passed->len; i++) {
                g_autofree char *m = g_strdup_printf(
                    "%s: %s", qa_vm_name(passed->pdata[i]), status->str);
                log_line(ns, FALSE, m);
            }
        }
    } else if (!doms->len) {
        rc = 1;
    } else if (verbose) {
        /* the list as given: a name given twice is said twice */
        g_autoptr(GPtrArray) sorted = g_ptr_array_copy(doms, NULL, NULL);
        g_ptr_array_sort(sorted, vm_cmp);
        for (guint i = 0; i < sorted->len; i++) {
            g_autofree char *m =
                g_strdup_printf("%s: exists", qa_vm_name(sorted->pdata[i]));
            log_line(ns, FALSE, m);
        }
    }
    if (invalid->len) {
        if (verbose) {
            /* a set of the names, once each */
            g_autoptr(GPtrArray) seen = g_ptr_array_new();
            for (guint i = 0; i < invalid->len; i++) {
                gboolean dup = FALSE;
                for (guint k = 0; k < seen->len && !dup; k++)
                    dup = strcmp(seen->pdata[k], invalid->pdata[i]) == 0;
                if (dup)
                    continue;
                g_ptr_array_add(seen, invalid->pdata[i]);
                g_autofree char *m = g_strdup_printf("%s: non-existent!",
                                                     (char *)invalid->pdata[i]);
                log_line(ns, TRUE, m);
            }
        }
        rc = 1;
    }
    return rc;
}
#endif

#if QVM_TOOL == T_SHUTDOWN
/* One round of shutdowns: each failure sorted into in use, timed out or
 * other (NotStarted ignored). */
static void shutdown_round(GPtrArray *doms, const char *arg, GPtrArray *other,
                           GPtrArray *used, GPtrArray *timedout)
{
    for (guint i = 0; i < doms->len; i++) {
        const char *n = doms->pdata[i];
        GError *e = act("admin.vm.Shutdown", n, arg);
        if (!e)
            continue;
        const char *t = qa_error_type(e);
        if (g_strcmp0(t, "QubesVMNotStartedError") == 0) {
            g_error_free(e);
            continue;
        }
        GPtrArray *to = g_strcmp0(t, "QubesVMInUseError") == 0 ? used
                        : g_strcmp0(t, "QubesVMShutdownTimeoutError") == 0
                            ? timedout
                            : other;
        g_ptr_array_add(to, g_strdup(n));
        g_ptr_array_add(to, g_strdup(tool_error_message(e)));
        g_error_free(e);
    }
}

static char *names_of(GPtrArray *pairs)
{
    GString *s = g_string_new(NULL);
    for (guint i = 0; i + 1 < pairs->len; i += 2)
        g_string_append_printf(s, "%s%s", i ? ", " : "",
                               (char *)pairs->pdata[i]);
    return g_string_free(s, FALSE);
}

static GPtrArray *first_of(GPtrArray *pairs)
{
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i + 1 < pairs->len; i += 2)
        g_ptr_array_add(out, g_strdup(pairs->pdata[i]));
    return out;
}

static GPtrArray *pairs_new(void)
{
    return g_ptr_array_new_with_free_func(g_free);
}

/* dict.update(): the pairs of @from into @into, a name once */
static void pairs_update(GPtrArray *into, GPtrArray *from)
{
    for (guint i = 0; i + 1 < from->len; i += 2) {
        gboolean found = FALSE;
        for (guint k = 0; k + 1 < into->len && !found; k += 2)
            if (strcmp(into->pdata[k], from->pdata[i]) == 0) {
                g_free(into->pdata[k + 1]);
                into->pdata[k + 1] = g_strdup(from->pdata[i + 1]);
                found = TRUE;
            }
        if (!found) {
            g_ptr_array_add(into, g_strdup(from->pdata[i]));
            g_ptr_array_add(into, g_strdup(from->pdata[i + 1]));
        }
    }
}

static int shutdown_all(ArgsNamespace *ns, GPtrArray *doms)
{
    if (args_bool(ns, "dry_run"))
        return 0;
    gboolean wait = args_bool(ns, "wait");
    if (args_str(ns, "timeout")) {
        fprintf(stderr, "FutureWarning: Call to deprecated --timeout option, "
                        "use --wait instead\n");
        wait = TRUE;
    }
    GPtrArray *exclude = args_list(ns, "exclude");
    gboolean force = args_bool(ns, "force") || (args_bool(ns, "all_domains") &&
                                                !(exclude && exclude->len));
    g_autofree char *arg =
        g_strdup_printf("%s%s%s", force ? "force" : "",
                        force && wait ? "+" : "", wait ? "wait" : "");
    const char *a = *arg ? arg : NULL;
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i < doms->len; i++)
        g_ptr_array_add(names, g_strdup(qa_vm_name(doms->pdata[i])));
    g_autoptr(GPtrArray) other = pairs_new(), used = pairs_new(),
                         timedout = pairs_new();
    shutdown_round(names, a, other, used, timedout);
    if (used->len)
        print_error("Retrying shutdown of qubes that were in use for %u "
                    "time(s)",
                    used->len / 2);
    guint tries = used->len / 2;
    guint old_total = (other->len + used->len + timedout->len) / 2;
    for (guint t = 0; t < tries; t++) {
        g_autofree char *n = names_of(used);
        print_error("Retrying shutdown of qubes that were in use: %s", n);
        g_autoptr(GPtrArray) again = first_of(used);
        g_autoptr(GPtrArray) o2 = pairs_new(), u2 = pairs_new(),
                             t2 = pairs_new();
        shutdown_round(again, a, o2, u2, t2);
        pairs_update(other, o2);
        pairs_update(timedout, t2);
        g_ptr_array_set_size(used, 0);
        pairs_update(used, u2);
        guint total = (o2->len + u2->len + t2->len) / 2;
        if (total == old_total)
            break;
        old_total = total;
    }
    if (timedout->len) {
        g_autofree char *n = names_of(timedout);
        print_error("Retrying shutdown of qubes that timed out: %s", n);
        g_autoptr(GPtrArray) again = first_of(timedout);
        g_ptr_array_set_size(other, 0);
        g_ptr_array_set_size(used, 0);
        g_ptr_array_set_size(timedout, 0);
        shutdown_round(again, a, other, used, timedout);
    }
    if (timedout->len) {
        g_autofree char *n = names_of(timedout);
        print_error("Killing timed out qubes: %s", n);
        g_autoptr(GPtrArray) kill = first_of(timedout);
        g_ptr_array_set_size(timedout, 0);
        for (guint i = 0; i < kill->len; i++) {
            GError *e = act("admin.vm.Kill", kill->pdata[i], NULL);
            if (e &&
                g_strcmp0(qa_error_type(e), "QubesVMNotStartedError") != 0) {
                g_ptr_array_add(timedout, g_strdup(kill->pdata[i]));
                g_ptr_array_add(timedout, g_strdup(tool_error_message(e)));
            }
            if (e)
                g_error_free(e);
        }
    }
    GPtrArray *groups[] = {other, used, timedout};
    for (guint g = 0; g < G_N_ELEMENTS(groups); g++)
        for (guint i = 0; i + 1 < groups[g]->len; i += 2)
            print_error("Failed to shut down: %s: %s",
                        (char *)groups[g]->pdata[i],
                        (char *)groups[g]->pdata[i + 1]);
    return (int)((other->len + used->len + timedout->len) / 2);
}
#endif

int main(int argc, char **argv)
{
    ArgsParser *p = make_parser();
    g_autoptr(ArgsNamespace) ns = args_parse(p, argc, argv);
    g_autoptr(QaApp) app = qubes_args_app(p);
#if QVM_TOOL == T_CHECK
    int rc = check(p, ns, app);
#else
    g_autoptr(GPtrArray) doms =
        qubes_args_domains(p, ns, app, ARGS_ONE_OR_MORE);
    int rc = 0;
#if QVM_TOOL == T_SHUTDOWN
    rc = shutdown_all(ns, doms);
#else
#if QVM_TOOL == T_UNPAUSE
    if (args_bool(ns, "all_domains")) {
        for (guint i = 0; i < doms->len;) {
            const char *f = qa_vm_feature(doms->pdata[i], "internal");
            if (f && *f)
                g_ptr_array_remove_index(doms, i);
            else
                i++;
        }
    }
#endif
    int failed = 0;
    for (guint i = 0; i < doms->len; i++) {
        const char *n = qa_vm_name(doms->pdata[i]);
#if QVM_TOOL == T_START
        const ArgValue *drive = args_get(ns, "drive");
        if (is_running(n)) {
            if (args_bool(ns, "skip_if_running"))
                continue;
            print_error("Starting qube failed: %s: Domain is already running",
                        n);
            rc = 1;
            continue;
        }
        g_autofree char *darg = NULL, *dpayload = NULL, *dmsg = NULL;
        if (drive && drive->type == ARGV_STR && *drive->s) {
            const char *d = drive->s;
            if (!drive_assignment(app, d, &darg, &dpayload, &dmsg)) {
                print_error("Starting qube failed: %s: %s", n, dmsg);
                rc = 1;
                continue;
            }
            GError *e = NULL;
            g_autofree char *r =
                qa_call("admin.vm.device.block.Assign", n, darg, dpayload, &e);
            if (!r) {
                print_error("Starting qube failed: %s: %s", n,
                            tool_error_message(e));
                g_error_free(e);
                rc = 1;
                continue;
            }
        }
        GError *e = act("admin.vm.Start", n, NULL);
        if (darg) {
            /* for this start only */
            g_autofree char *r =
                qa_call("admin.vm.device.block.Unassign", n, darg, NULL, NULL);
            if (e) {
                g_autofree char *d = qa_call("admin.vm.device.block.Detach", n,
                                             darg, NULL, NULL);
            }
        }
        if (e) {
            print_error("Starting qube failed: %s: %s", n,
                        tool_error_message(e));
            g_error_free(e);
            rc = 1;
        }
#else
#if QVM_TOOL == T_KILL
        const char *method = "admin.vm.Kill";
        const char *verb = "kill";
#elif QVM_TOOL == T_PAUSE
        gboolean suspend = args_bool(ns, "suspend");
        const char *method = suspend ? "admin.vm.Suspend" : "admin.vm.Pause";
        const char *verb = suspend ? "suspend" : "pause";
#else
        g_autofree char *st = power_state(n);
        const char *method = strcmp(st, "Suspended") == 0 ? "admin.vm.Resume"
                                                          : "admin.vm.Unpause";
        const char *verb = "unpause/resume";
#endif
        GError *e = act(method, n, NULL);
        if (!e)
            continue;
#if QVM_TOOL == T_KILL
        if (g_strcmp0(qa_error_type(e), "QubesVMNotStartedError") == 0) {
            g_error_free(e);
            continue;
        }
#endif
        print_error("Failed to %s: %s: %s", verb, n, tool_error_message(e));
        g_error_free(e);
        failed++;
#endif
    }
#if QVM_TOOL == T_KILL
    rc = failed;
#elif QVM_TOOL == T_PAUSE || QVM_TOOL == T_UNPAUSE
    rc = failed ? 1 : 0;
#endif
    (void)failed;
#endif
#endif
    fflush(stdout);
    args_parser_free(p);
    return rc;
}
