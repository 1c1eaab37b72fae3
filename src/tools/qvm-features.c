/* qvm-features and qvm-service: a qube's features, and its services
 * (the features "service.NAME"), as the Qubes client's tools of the
 * same names (qubesadmin/tools/qvm_features.py, qvm_service.py): list
 * them as a table, print one (exit 1 when it is not set), set one, or
 * unset it (-D, --unset, --default, --delete). qvm-service also takes
 * --enable/-e, --disable/-d and on/off, yes/no, true/false, 1/0. */
#include "argparse.h"
#include "qubes-app.h"
#include "qubes-args.h"
#include "qubesadmin.h"
#include "tool.h"

#include <stdio.h>
#include <string.h>

#ifdef QVM_SERVICE
#define PROG "qvm-service"
#else
#define PROG "qvm-features"
#endif

/* A failed call: error_runtime() with the exception's message. */
static void fail(ArgsParser *p, const GError *err)
{
    qubes_args_error_runtime(p, 1, "%s", tool_error_message(err));
}

static gboolean not_found(const GError *err)
{
    return g_strcmp0(qa_error_type(err), "QubesFeatureNotFoundError") == 0;
}

/* The features' names (new array), or the failure reported. */
static GPtrArray *feature_list(ArgsParser *p, const char *vm)
{
    g_autoptr(GError) err = NULL;
    GPtrArray *out = qa_call_lines("admin.vm.feature.List", vm, NULL, &err);
    if (!out)
        fail(p, err);
    return out;
}

/* feature.Get: the value, or NULL (with *missing) when it is not set. */
static char *feature_get(ArgsParser *p, const char *vm, const char *name,
                         gboolean *missing)
{
    g_autoptr(GError) err = NULL;
    char *v = qa_call("admin.vm.feature.Get", vm, name, NULL, &err);
    *missing = !v && not_found(err);
    if (!v && !*missing)
        fail(p, err);
    return v;
}

static void feature_remove(ArgsParser *p, const char *vm, const char *name)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *r =
        qa_call("admin.vm.feature.Remove", vm, name, NULL, &err);
    if (!r && !not_found(err))
        fail(p, err);
}

static void feature_set(ArgsParser *p, const char *vm, const char *name,
                        const char *value)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *r = qa_call("admin.vm.feature.Set", vm, name, value, &err);
    if (!r)
        fail(p, err);
}

static ArgsParser *make_parser(void)
{
#ifdef QVM_SERVICE
    ArgsParser *p = args_parser_new(PROG, NULL, "manage domain's services",
                                    NULL, ARGS_FORMAT_DEFAULT);
    args_parser_suppress_defaults(p);
    qubes_args_add_common(p);
    args_add(
        p, &(ArgsSpec){.names = "VMNAME", .nargs = 1, .help = "a domain name"});
    args_add(p, &(ArgsSpec){.names = "service",
                            .metavar = "SERVICE",
                            .nargs = ARGS_OPTIONAL,
                            .help = "name of the feature"});
    args_add(p, &(ArgsSpec){.names = "value",
                            .metavar = "VALUE",
                            .nargs = ARGS_OPTIONAL,
                            .help = "new value of the service (on/off)"});
    args_add(p, &(ArgsSpec){.names = "--unset --default --delete -D",
                            .dest = "delete",
                            .deflt = "False",
                            .deflt_type = ARGV_BOOL,
                            .action = ARGS_STORE_TRUE,
                            .help = "unset service (default to VM "
                                    "preference)"});
    args_add(p, &(ArgsSpec){.names = "--list -l",
                            .dest = "list",
                            .action = ARGS_STORE_TRUE,
                            .help = "list services (default action)"});
    args_add(p, &(ArgsSpec){.names = "--enable -e",
                            .dest = "value",
                            .action = ARGS_STORE_CONST,
                            .konst = "1",
                            .help = "enable service (same as setting \"on\" "
                                    "value)"});
    args_add(p, &(ArgsSpec){.names = "--disable -d",
                            .dest = "value",
                            .action = ARGS_STORE_CONST,
                            .konst = "0",
                            .help = "disable service (same as setting "
                                    "\"off\" value)"});
#else
    ArgsParser *p = qubes_args_new(PROG, 1, "manage domain's features", NULL,
                                   ARGS_FORMAT_DEFAULT);
    args_add(p, &(ArgsSpec){.names = "feature",
                            .metavar = "FEATURE",
                            .nargs = ARGS_OPTIONAL,
                            .help = "name of the feature"});
    args_add(p, &(ArgsSpec){.names = "value",
                            .metavar = "VALUE",
                            .nargs = ARGS_OPTIONAL,
                            .help = "new value of the feature"});
    args_add(p, &(ArgsSpec){.names = "--unset --default --delete -D",
                            .dest = "delete",
                            .action = ARGS_STORE_TRUE,
                            .help = "unset the feature"});
#endif
    return p;
}

#ifdef QVM_SERVICE
/* parse_bool(): the well-known words, case aside */
static gboolean parse_bool(ArgsParser *p, const char *v, gboolean *out)
{
    g_autofree char *l = g_ascii_strdown(v, -1);
    static const char *const no[] = {"0", "no", "false", "off", NULL};
    static const char *const yes[] = {"1", "yes", "true", "on", NULL};
    if (g_strv_contains(no, l)) {
        *out = FALSE;
        return TRUE;
    }
    if (g_strv_contains(yes, l)) {
        *out = TRUE;
        return TRUE;
    }
    g_autofree char *rs = args_py_repr(v);
    qubes_args_error_runtime(p, 1, "Invalid literal for boolean value: %s", rs);
}
#endif

int main(int argc, char **argv)
{
    ArgsParser *p = make_parser();
    g_autoptr(ArgsNamespace) ns = args_parse(p, argc, argv);
    g_autoptr(QaApp) app = qubes_args_app(p);
    g_autoptr(GPtrArray) doms = qubes_args_domains(p, ns, app, 1);
    const char *vm = qa_vm_name(doms->pdata[0]);
    gboolean del = args_bool(ns, "delete");
#ifdef QVM_SERVICE
    const char *name = args_str(ns, "service");
    gboolean has_value = args_get(ns, "value") != NULL;
#else
    const char *name = args_str(ns, "feature");
    gboolean has_value = args_str(ns, "value") != NULL;
#endif
    const char *value = args_str(ns, "value");
    int rc = 0;
    if (!name) {
        if (del)
            args_error(p, "--unset requires a feature");
        g_autoptr(GPtrArray) names = feature_list(p, vm);
        g_autoptr(Table) t = table_new(2, NULL);
        for (guint i = 0; i < names->len; i++) {
            const char *f = names->pdata[i];
#ifdef QVM_SERVICE
            if (!g_str_has_prefix(f, "service."))
                continue;
#endif
            gboolean missing;
            g_autofree char *v = feature_get(p, vm, f, &missing);
            if (missing)
                qubes_args_error_runtime(p, 1, "%s", f);
#ifdef QVM_SERVICE
            table_add(t, f + strlen("service."), *v ? "on" : "off", NULL);
#else
            table_add(t, f, v, NULL);
#endif
        }
        table_print(t);
    } else {
#ifdef QVM_SERVICE
        g_autofree char *feature = g_strconcat("service.", name, NULL);
#else
        const char *feature = name;
#endif
        if (del) {
            if (has_value)
                args_error(p, "cannot both set and unset a value");
            feature_remove(p, vm, feature);
        } else if (has_value) {
#ifdef QVM_SERVICE
            gboolean on = FALSE;
            parse_bool(p, value, &on);
            feature_set(p, vm, feature, on ? "1" : "");
#else
            feature_set(p, vm, feature, value);
#endif
        } else {
            gboolean missing;
            g_autofree char *v = feature_get(p, vm, feature, &missing);
            if (missing) {
                rc = 1;
            } else {
#ifdef QVM_SERVICE
                printf("%s\n", *v ? "on" : "off");
#else
                printf("%s\n", v);
#endif
            }
        }
    }
    fflush(stdout);
    args_parser_free(p);
    return rc;
}
