/* qubes-args.c: the command line the Qubes tools share (qubes-args.h). */
#include "qubes-args.h"

#include "qubesadmin.h"
#include "tool.h"

#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef QUBES_VERSION
#define QUBES_VERSION "0"
#endif

/* set_defaults(verbose=1, quiet=0) */
static void verbosity_defaults(ArgsParser *p)
{
    ArgValue *v = args_value_new(ARGV_INT), *q = args_value_new(ARGV_INT);
    v->i = 1;
    args_set_default_value(p, "verbose", v);
    args_set_default_value(p, "quiet", q);
}

void qubes_args_add_common(ArgsParser *p)
{
    args_add(p, &(ArgsSpec){.names = "--verbose -v",
                            .action = ARGS_COUNT,
                            .help = "increase verbosity"});
    args_add(p, &(ArgsSpec){.names = "--quiet -q",
                            .action = ARGS_COUNT,
                            .help = "decrease verbosity"});
    args_add(p, &(ArgsSpec){.names = "--force-root",
                            .action = ARGS_STORE_TRUE,
                            .help = ARGS_SUPPRESS});
    args_add(p, &(ArgsSpec){.names = "--help -h",
                            .action = ARGS_HELP_ALL,
                            .help = "show this help message and exit"});
    g_autofree char *version =
        g_strdup_printf("%s (qubes-core-c) %s\nLicense: LGPL-2.1-or-later",
                        args_prog(p), QUBES_VERSION);
    args_parser_set_version(p, version);
    args_add(p, &(ArgsSpec){.names = "--version", .action = ARGS_VERSION});
    verbosity_defaults(p);
}

static const char *vmname_help(int nargs)
{
    switch (nargs) {
    case ARGS_OPTIONAL:
        return "at most one domain name";
    case 1:
        return "a domain name";
    case ARGS_ZERO_OR_MORE:
        return "zero or more domain names";
    case ARGS_ONE_OR_MORE:
        return "one or more domain names";
    default:
        return NULL;
    }
}

void qubes_args_add_vmname_group(ArgsParser *p, gboolean required,
                                 const char *all_help)
{
    int g = args_add_mutex(p, 0, required);
    args_add_in(p, 0, g,
                &(ArgsSpec){.names = "--all",
                            .action = ARGS_STORE_TRUE,
                            .dest = "all_domains",
                            .help = all_help ? all_help
                                             : "perform the action on all "
                                               "qubes"});
    args_add(p, &(ArgsSpec){.names = "--exclude",
                            .action = ARGS_APPEND,
                            .deflt_type = ARGV_LIST,
                            .help = "exclude the qube from --all"});
    args_add_in(p, 0, g,
                &(ArgsSpec){.names = "VMNAME",
                            .nargs = ARGS_ZERO_OR_MORE,
                            .deflt_type = ARGV_LIST,
                            .help = vmname_help(ARGS_ZERO_OR_MORE)});
}

ArgsParser *qubes_args_new(const char *prog, int vmname_nargs,
                           const char *description, const char *epilog,
                           ArgsFormatterKind formatter)
{
    ArgsParser *p = args_parser_new(prog, NULL, description, epilog, formatter);
    qubes_args_add_common(p);
    if (vmname_nargs == ARGS_ZERO_OR_MORE || vmname_nargs == ARGS_ONE_OR_MORE) {
        qubes_args_add_vmname_group(p, vmname_nargs == ARGS_ONE_OR_MORE, NULL);
    } else if (vmname_nargs) {
        g_autofree char *help =
            vmname_help(vmname_nargs)
                ? g_strdup(vmname_help(vmname_nargs))
                : g_strdup_printf("%d domain names", vmname_nargs);
        args_add(p, &(ArgsSpec){.names = "VMNAME",
                                .nargs = vmname_nargs,
                                .help = help});
    }
    return p;
}

void qubes_args_error_runtime(ArgsParser *p, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_autofree char *line =
        g_strdup_printf("%s: error: %s\n", args_prog(p), msg);
    args_exit(status, line);
}

static void no_such(ArgsParser *p, const char *name)
{
    g_autofree char *r = args_py_repr(name);
    args_error(p, "no such domain: %s", r);
}

GPtrArray *qubes_args_domains(ArgsParser *p, ArgsNamespace *ns, QaApp *app,
                              int vmname_nargs)
{
    GPtrArray *out = g_ptr_array_new();
    GPtrArray *all = qa_app_domains(app);
    GPtrArray *exclude = args_list(ns, "exclude");
    if (args_bool(ns, "all_domains")) {
        for (guint i = 0; i < all->len; i++) {
            QaVm *vm = all->pdata[i];
            gboolean excluded = FALSE;
            for (guint k = 0; exclude && k < exclude->len && !excluded; k++)
                excluded = strcmp(exclude->pdata[k], qa_vm_name(vm)) == 0;
            if (g_strcmp0(qa_vm_klass(vm), "AdminVM") != 0 && !excluded)
                g_ptr_array_add(out, vm);
        }
        return out;
    }
    if (exclude && exclude->len)
        args_error(p, "--exclude can only be used with --all");
    if (vmname_nargs == ARGS_OPTIONAL) {
        const char *name = args_str(ns, "VMNAME");
        if (name) {
            QaVm *vm = qa_app_domain(app, name);
            if (!vm)
                no_such(p, name);
            g_ptr_array_add(out, vm);
        }
        return out;
    }
    GPtrArray *given = args_list(ns, "VMNAME");
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; given && i < given->len; i++) {
        const char *d = given->pdata[i];
        if (strpbrk(d, "*?[!")) {
            for (guint k = 0; k < all->len; k++) {
                const char *n = qa_vm_name(all->pdata[k]);
                gboolean have = FALSE;
                for (guint j = 0; j < names->len && !have; j++)
                    have = strcmp(names->pdata[j], n) == 0;
                if (!have && fnmatch(d, n, 0) == 0)
                    g_ptr_array_add(names, g_strdup(n));
            }
        } else {
            gboolean have = FALSE;
            for (guint j = 0; j < names->len && !have; j++)
                have = strcmp(names->pdata[j], d) == 0;
            if (!have)
                g_ptr_array_add(names, g_strdup(d));
        }
    }
    for (guint i = 0; i < names->len; i++) {
        QaVm *vm = qa_app_domain(app, names->pdata[i]);
        if (!vm)
            no_such(p, names->pdata[i]);
        g_ptr_array_add(out, vm);
    }
    return out;
}

QaApp *qubes_args_app(ArgsParser *p)
{
    g_autoptr(GError) err = NULL;
    QaApp *app = qa_app_new(&err);
    if (!app)
        qubes_args_error_runtime(p, 1, "%s", tool_error_message(err));
    return app;
}

void qubes_args_log(ArgsNamespace *ns, const char *logger, gboolean important,
                    const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    gint64 level = args_int(ns, "verbose") - args_int(ns, "quiet");
    if (level >= 1)
        fprintf(stderr, "%s: %s\n", logger, msg);
    else if (important)
        fprintf(stderr, "%s\n", msg);
}

void qubes_args_exit_uncaught(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *line = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
    fprintf(stderr, "%s\n", line);
    exit(1);
}

void qubes_args_print_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    qubes_args_exit_uncaught("Error: %s", msg);
}

void qubes_args_print_exception(const GError *err)
{
    static const char *const uncaught[] = {"ProtocolError", "PermissionDenied",
                                           NULL};
    qubes_args_uncaught(err, uncaught);
    g_autofree char *msg = tool_exception_str(err);
    qubes_args_print_error("%s", msg);
}

void qubes_args_uncaught(const GError *err, const char *const *types)
{
    const char *t = qa_error_type(err);
    if (t && g_strv_contains(types, t))
        qubes_args_exit_uncaught("qubesadmin.exc.%s: %s", t,
                                 tool_error_message(err));
}
