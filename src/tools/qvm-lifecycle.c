/* qvm-start, qvm-shutdown, qvm-kill, qvm-pause, qvm-unpause, qvm-check:
 * a qube's life, with the Qubes tools' options, messages and exit codes
 * (qubesadmin/tools/qvm_*.py). One source, built once per tool with
 * -DQVM_TOOL=... (meson.build).
 *
 *   qvm-start [--skip-if-running] [--all] [--exclude NAME] VMNAME...
 *   qvm-shutdown [--wait] [--timeout SECONDS] [--force] [--all]
 *                [--exclude NAME] VMNAME...
 *   qvm-kill|qvm-pause|qvm-unpause [--all] [--exclude NAME] VMNAME...
 *   qvm-check [--running] [--paused] [--template] [--networked] [-q]
 *             VMNAME...
 */
#include "tool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* The qube's power state ("Halted", ...), or NULL when there is no such
 * qube. */
G_GNUC_UNUSED static char *power_state(const char *vm)
{
    g_autofree char *st =
        qa_call("admin.vm.CurrentState", vm, NULL, NULL, NULL);
    if (!st)
        return NULL;
    g_autoptr(GHashTable) kv = qa_parse_kv(st, " ");
    const char *p = g_hash_table_lookup(kv, "power_state");
    return g_strdup(p ? p : "NA");
}

/* The qubes admin.vm.List names, with their class (name -> class). */
G_GNUC_UNUSED static GHashTable *list_qubes(GError **error)
{
    g_autofree char *out = qa_call("admin.vm.List", "dom0", NULL, NULL, error);
    if (!out)
        return NULL;
    GHashTable *all =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    g_auto(GStrv) lines = g_strsplit(out, "\n", -1);
    for (char **l = lines; *l && **l; l++) {
        g_auto(GStrv) w = g_strsplit(*l, " ", -1);
        const char *klass = "";
        for (char **f = w + 1; *f; f++)
            if (g_str_has_prefix(*f, "class="))
                klass = *f + 6;
        g_hash_table_insert(all, g_strdup(w[0]), g_strdup(klass));
    }
    return all;
}

G_GNUC_UNUSED static gint cmp_str(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The qubes named on the command line, or all but dom0 (and @exclude)
 * with --all; an unknown name ends the tool as the Qubes parser does. */
G_GNUC_UNUSED static GPtrArray *pick(int argc, char **argv, gboolean all,
                                     char **exclude)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GHashTable) qubes = list_qubes(&err);
    if (!qubes)
        exit(qa_fail(PROG, err));
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
    if (all) {
        GHashTableIter it;
        gpointer k;
        g_hash_table_iter_init(&it, qubes);
        while (g_hash_table_iter_next(&it, &k, NULL)) {
            if (strcmp(k, "dom0") == 0 ||
                (exclude && g_strv_contains((const char *const *)exclude, k)))
                continue;
            g_ptr_array_add(out, g_strdup(k));
        }
        g_ptr_array_sort(out, cmp_str);
        return out;
    }
    if (argc < 2) {
        fprintf(stderr,
                "%s: error: one of the arguments --all VMNAME is "
                "required\n",
                PROG);
        exit(2);
    }
    for (int i = 1; i < argc; i++) {
        if (!g_hash_table_contains(qubes, argv[i])) {
            fprintf(stderr, "%s: error: no such domain: '%s'\n", PROG, argv[i]);
            exit(2);
        }
        g_ptr_array_add(out, g_strdup(argv[i]));
    }
    return out;
}

/* The exception type of @err, "" when it is not an exception answer. */
G_GNUC_UNUSED static const char *exc_type(const GError *err)
{
    const char *t = qa_error_type(err);
    return t ? t : "";
}

#if QVM_TOOL == T_SHUTDOWN
static int shutdown_main(GPtrArray *vms, gboolean wait, double timeout,
                         gboolean force)
{
    g_autoptr(GPtrArray) asked = g_ptr_array_new();
    for (guint i = 0; i < vms->len; i++) {
        const char *vm = vms->pdata[i];
        g_autoptr(GError) err = NULL;
        g_autofree char *r = qa_call("admin.vm.Shutdown", vm,
                                     force ? "force" : NULL, NULL, &err);
        if (r)
            g_ptr_array_add(asked, (gpointer)vm);
        else if (strcmp(exc_type(err), "QubesVMNotRunningError") != 0 &&
                 strcmp(exc_type(err), "QubesVMNotStartedError") != 0)
            qa_fail(PROG, err);
    }
    if (!wait)
        return 0;
    /* Wait for each to halt; the ones left at the timeout are killed. */
    gint64 deadline = g_get_monotonic_time() + (gint64)(timeout * 1e6);
    for (;;) {
        gboolean left = FALSE;
        for (guint i = 0; i < asked->len; i++) {
            g_autofree char *st = power_state(asked->pdata[i]);
            left = left || (st && strcmp(st, "Halted") != 0);
        }
        if (!left || g_get_monotonic_time() > deadline)
            break;
        g_usleep(250000);
    }
    for (guint i = 0; i < asked->len; i++) {
        g_autofree char *st = power_state(asked->pdata[i]);
        if (!st || strcmp(st, "Halted") == 0)
            continue;
        g_autoptr(GError) err = NULL;
        g_autofree char *r =
            qa_call("admin.vm.Kill", asked->pdata[i], NULL, NULL, &err);
        if (!r && strcmp(exc_type(err), "QubesVMNotStartedError") != 0)
            qa_fail(PROG, err);
    }
    g_autoptr(GString) failed = g_string_new(NULL);
    int nfailed = 0;
    for (guint i = 0; i < vms->len; i++) {
        g_autofree char *st = power_state(vms->pdata[i]);
        if (st && strcmp(st, "Halted") != 0) {
            g_string_append_printf(failed, "%s%s", nfailed ? ", " : "",
                                   (char *)vms->pdata[i]);
            nfailed++;
        }
    }
    if (nfailed)
        fprintf(stderr, "%s: error: Failed to shut down: %s\n", PROG,
                failed->str);
    return nfailed;
}
#endif

#if QVM_TOOL == T_CHECK
static gboolean check(const char *vm, const char *klass, const char *what)
{
    if (strcmp(what, "template") == 0)
        return strcmp(klass, "TemplateVM") == 0;
    if (strcmp(what, "networked") == 0) {
        g_autofree char *p = qa_call("admin.vm.property.Get", vm,
                                     "provides_network", NULL, NULL);
        if (p && g_str_has_suffix(p, " True"))
            return TRUE;
        g_autofree char *n =
            qa_call("admin.vm.property.Get", vm, "netvm", NULL, NULL);
        g_autofree char *v = n ? tool_prop_value(n, NULL) : NULL;
        return v && *v;
    }
    g_autofree char *st = power_state(vm);
    if (!st)
        return FALSE;
    if (strcmp(what, "paused") == 0)
        return strcmp(st, "Paused") == 0;
    return strcmp(st, "Halted") != 0 && strcmp(st, "NA") != 0;
}

static int check_main(int argc, char **argv, gboolean running, gboolean paused,
                      gboolean template, gboolean networked, gboolean quiet)
{
    if (argc < 2) {
        fprintf(stderr,
                "%s: error: the following arguments are required: "
                "VMNAME\n",
                PROG);
        return 2;
    }
    g_autoptr(GError) err = NULL;
    g_autoptr(GHashTable) qubes = list_qubes(&err);
    if (!qubes)
        return qa_fail(PROG, err);
    g_autoptr(GPtrArray) valid = g_ptr_array_new();
    g_autoptr(GPtrArray) invalid = g_ptr_array_new();
    for (int i = 1; i < argc; i++)
        g_ptr_array_add(g_hash_table_contains(qubes, argv[i]) ? valid : invalid,
                        argv[i]);
    g_ptr_array_sort(valid, cmp_str);
    g_ptr_array_sort(invalid, cmp_str);
    const char *filters[4];
    guint nf = 0;
    if (running)
        filters[nf++] = "running";
    if (paused)
        filters[nf++] = "paused";
    if (template)
        filters[nf++] = "template";
    if (networked)
        filters[nf++] = "networked";
    int rc = 0;
    if (nf) {
        g_autoptr(GPtrArray) pass = g_ptr_array_new();
        for (guint i = 0; i < valid->len; i++) {
            gboolean ok = TRUE;
            for (guint f = 0; f < nf && ok; f++)
                ok = check(valid->pdata[i],
                           g_hash_table_lookup(qubes, valid->pdata[i]),
                           filters[f]);
            if (ok)
                g_ptr_array_add(pass, valid->pdata[i]);
        }
        if (pass->len != valid->len)
            rc = pass->len ? 3 : 1;
        g_autoptr(GString) status = g_string_new(NULL);
        for (guint f = 0; f < nf; f++)
            g_string_append_printf(status, "%s%s", f ? ", " : "", filters[f]);
        if (!quiet) {
            if (!pass->len)
                fprintf(stderr, "None of qubes: %s\n", status->str);
            for (guint i = 0; i < pass->len; i++)
                fprintf(stderr, "%s: %s\n", (char *)pass->pdata[i],
                        status->str);
        }
    } else {
        if (!valid->len)
            rc = 1;
        else if (!quiet)
            for (guint i = 0; i < valid->len; i++)
                fprintf(stderr, "%s: exists\n", (char *)valid->pdata[i]);
    }
    if (invalid->len) {
        if (!quiet)
            for (guint i = 0; i < invalid->len; i++)
                fprintf(stderr, "%s: non-existent!\n",
                        (char *)invalid->pdata[i]);
        rc = 1;
    }
    return rc;
}
#endif

int main(int argc, char **argv)
{
    gboolean all = FALSE;
    g_auto(GStrv) exclude = NULL;
#if QVM_TOOL == T_CHECK
    gboolean running = FALSE, paused = FALSE, template = FALSE,
             networked = FALSE, quiet = FALSE;
    GOptionEntry entries[] = {
        {"running", 0, 0, G_OPTION_ARG_NONE, &running,
         "Determine if (any of given) VM is running", NULL},
        {"paused", 0, 0, G_OPTION_ARG_NONE, &paused,
         "Determine if (any of given) VM is paused", NULL},
        {"template", 0, 0, G_OPTION_ARG_NONE, &template,
         "Determine if (any of given) VM is a template", NULL},
        {"networked", 0, 0, G_OPTION_ARG_NONE, &networked,
         "Determine if (any of given) VM can reach network", NULL},
        {"quiet", 'q', 0, G_OPTION_ARG_NONE, &quiet, "Print nothing", NULL},
        {NULL},
    };
    tool_parse(&argc, &argv, entries, "VMNAME...",
               "Exits successfully if the given qubes exist (and are in the "
               "asked state), else with 1, or 3 when only some are.",
               NULL);
    (void)all;
    return check_main(argc, argv, running, paused, template, networked, quiet);
#else
    gboolean skip = FALSE, wait = FALSE, force = FALSE;
    double timeout = 60;
    GOptionEntry entries[] = {
        {"all", 0, 0, G_OPTION_ARG_NONE, &all, "Act on all qubes but dom0",
         NULL},
        {"exclude", 0, 0, G_OPTION_ARG_STRING_ARRAY, &exclude,
         "Leave this qube out of --all (repeatable)", "NAME"},
#if QVM_TOOL == T_START
        {"skip-if-running", 0, 0, G_OPTION_ARG_NONE, &skip,
         "Do nothing for a qube that is already running", NULL},
#endif
#if QVM_TOOL == T_SHUTDOWN
        {"wait", 0, 0, G_OPTION_ARG_NONE, &wait,
         "Wait for the qubes to shut down", NULL},
        {"timeout", 0, 0, G_OPTION_ARG_DOUBLE, &timeout,
         "With --wait, seconds after which the qubes left are killed "
         "(default 60)",
         "SECONDS"},
        {"force", 0, 0, G_OPTION_ARG_NONE, &force,
         "Shut down regardless of connected qubes; use with caution", NULL},
#endif
        {NULL},
    };
    static const char *const summaries[] = {
        [T_START] = "Start qubes.",
        [T_SHUTDOWN] = "Shut qubes down (gracefully: the guest is asked).",
        [T_KILL] = "Kill qubes (their domain is destroyed at once).",
        [T_PAUSE] = "Pause qubes.",
        [T_UNPAUSE] = "Unpause qubes.",
    };
    tool_parse(&argc, &argv, entries, "[VMNAME...]", summaries[QVM_TOOL], NULL);
    (void)skip;
    (void)wait;
    (void)force;
    (void)timeout;
    g_autoptr(GPtrArray) vms = pick(argc, argv, all, exclude);
#if QVM_TOOL == T_SHUTDOWN
    return shutdown_main(vms, wait, timeout, force || all);
#else
    int rc = 0;
    for (guint i = 0; i < vms->len; i++) {
        const char *vm = vms->pdata[i];
#if QVM_TOOL == T_START
        g_autofree char *st = power_state(vm);
        if (st && strcmp(st, "Halted") != 0) {
            if (skip)
                continue;
            fprintf(stderr, "%s: error: domain %s is already running\n", PROG,
                    vm);
            return 1;
        }
        const char *method = "admin.vm.Start";
#elif QVM_TOOL == T_KILL
        const char *method = "admin.vm.Kill";
#elif QVM_TOOL == T_PAUSE
        const char *method = "admin.vm.Pause";
#else
        const char *method = "admin.vm.Unpause";
#endif
        g_autoptr(GError) err = NULL;
        g_autofree char *r = qa_call(method, vm, NULL, NULL, &err);
#if QVM_TOOL == T_KILL
        /* qvm-kill: a qube already halted is not an error */
        if (!r && strcmp(exc_type(err), "QubesVMNotStartedError") == 0)
            continue;
#endif
        if (!r)
            rc = qa_fail(PROG, err);
    }
    return rc;
#endif
#endif
}
