/* qvm-pool: storage pools, as the Qubes client's qvm-pool
 * (qubesadmin/tools/qvm_pool.py):
 *
 *   qvm-pool [list|ls|l]                    NAME  DRIVER
 *   qvm-pool info|i POOL...                 its settings
 *   qvm-pool add|a POOL DRIVER [-o OPT=VALUE]...
 *   qvm-pool remove|rm|r POOL...
 *   qvm-pool set|s POOL [-o OPT=VALUE]...
 *   qvm-pool drivers|d                      DRIVER  OPTIONS
 *
 * and, as the client hands them to its older tool
 * (qubesadmin/tools/qvm_pool_legacy.py), the older options: -l, -i
 * POOL, -a NAME DRIVER, -r NAME, -s POOL, --help-drivers, with -o
 * OPT=VALUE[,OPT=VALUE...]. The same syntax, aliases, help, tables and
 * messages as the client's, and its exit statuses (the older tool's
 * status is always 0 unless argparse refuses).
 *
 * Deliberately different: where the client ends in an uncaught Python
 * exception we print its last line and exit 1. */
#include "argparse.h"
#include "qubes-args.h"
#include "tool.h"

#include <stdio.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---- the client's subcommands ---- */

/* qubesd's refusals the client does not catch (an unknown driver or
 * pool, a bad value) */
static const char *const uncaught_types[] = {"PermissionDenied",
                                             "ProtocolError", NULL};

/* A failure: error_runtime(str(e)) */
static G_GNUC_NORETURN void fail(ArgsParser *p, const char *fmt, ...)
    G_GNUC_PRINTF(2, 3);
static void fail(ArgsParser *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *m = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    qubes_args_error_runtime(p, 1, "%s", m);
}

/* @method's answer as its lines, or the failure reported */
static GPtrArray *lines_or_fail(ArgsParser *p, const char *method,
                                const char *arg)
{
    g_autoptr(GError) err = NULL;
    GPtrArray *r = qa_call_lines(method, "dom0", arg, &err);
    if (!r)
        fail(p, "%s", tool_error_message(err));
    return r;
}

/* Pool.config: KEY=VALUE lines of admin.pool.Info, in order */
static GPtrArray *pool_config(ArgsParser *p, const char *pool)
{
    return lines_or_fail(p, "admin.pool.Info", pool);
}

static void cmd_list(ArgsParser *p)
{
    g_autoptr(GPtrArray) pools = lines_or_fail(p, "admin.pool.List", NULL);
    g_autoptr(Table) t = table_new(2, "NAME", "DRIVER", NULL);
    for (guint i = 0; i < pools->len; i++) {
        g_autoptr(GPtrArray) cfg = pool_config(p, pools->pdata[i]);
        const char *driver = "";
        for (guint k = 0; k < cfg->len; k++)
            if (g_str_has_prefix(cfg->pdata[k], "driver="))
                driver = (char *)cfg->pdata[k] + strlen("driver=");
        table_add(t, pools->pdata[i], driver, NULL);
    }
    table_print(t);
}

static void cmd_drivers(ArgsParser *p)
{
    g_autoptr(GPtrArray) lines =
        lines_or_fail(p, "admin.pool.ListDrivers", NULL);
    g_ptr_array_sort(lines, tool_str_cmp);
    g_autoptr(Table) t = table_new(2, "DRIVER", "OPTIONS", NULL);
    for (guint i = 0; i < lines->len; i++) {
        g_auto(GStrv) w = g_strsplit(lines->pdata[i], " ", -1);
        g_autofree char *opts = g_strjoinv(", ", w + (w[0] ? 1 : 0));
        table_add(t, w[0], opts, NULL);
    }
    table_print(t);
}

static void cmd_info(ArgsParser *p, GPtrArray *names)
{
    g_autoptr(Table) t = table_new(2, NULL);
    for (guint i = 0; names && i < names->len; i++) {
        if (i)
            table_add(t, "", "", NULL);
        table_add(t, "name", names->pdata[i], NULL);
        g_autoptr(GPtrArray) cfg = pool_config(p, names->pdata[i]);
        g_ptr_array_sort(cfg, tool_str_cmp);
        for (guint k = 0; k < cfg->len; k++) {
            char *eq = strchr(cfg->pdata[k], '=');
            if (!eq)
                continue;
            *eq = '\0';
            if (strcmp(cfg->pdata[k], "name") != 0)
                table_add(t, cfg->pdata[k], eq + 1, NULL);
        }
    }
    table_print(t);
}

/* PoolsAction.parse_qubes_app(): every name a pool, else parser.error()
 * with the list as Python prints it. */
static void check_pools(ArgsParser *p, GPtrArray *names)
{
    if (!names || !names->len)
        return;
    g_autoptr(GPtrArray) pools = lines_or_fail(p, "admin.pool.List", NULL);
    for (guint i = 0; i < names->len; i++) {
        gboolean found = FALSE;
        for (guint k = 0; k < pools->len && !found; k++)
            found = strcmp(pools->pdata[k], names->pdata[i]) == 0;
        if (found)
            continue;
        GString *r = g_string_new("[");
        for (guint k = 0; k < names->len; k++) {
            g_autofree char *q = args_py_repr(names->pdata[k]);
            g_string_append_printf(r, "%s%s", k ? ", " : "", q);
        }
        g_string_append_c(r, ']');
        g_autofree char *rs = g_string_free(r, FALSE);
        args_error(p, "No such pools: %s", rs);
    }
}

/* ---- the older options (qvm_pool_legacy) ---- */

/* _Options: -o "a=1,b=2" as a dict (the last -o wins), kept as the
 * string; a part without '=' is the client's uncaught ValueError. */
static void legacy_options(ArgsParser *parser, ArgsNamespace *ns,
                           const ArgsAction *action, GPtrArray *values,
                           const char *option_string, gpointer data)
{
    const char *opts = values->pdata[0];
    g_auto(GStrv) parts = g_strsplit(opts, ",", -1);
    for (guint i = 0; parts[i]; i++)
        if (!strchr(parts[i], '='))
            qubes_args_exit_uncaught(QUBES_ARGS_DICT_ERROR, i);
    args_set(ns, "options", args_value_str(opts));
}

/* _Info, _Add, _Remove, _Set: the command and its names */
static void legacy_action(ArgsParser *parser, ArgsNamespace *ns,
                          const ArgsAction *action, GPtrArray *values,
                          const char *option_string, gpointer data)
{
    const char *command = data;
    args_set(ns, "command", args_value_str(command));
    if (strcmp(command, "add") == 0) {
        args_set(ns, "name", args_value_str(values->pdata[0]));
        args_set(ns, "driver", args_value_str(values->pdata[1]));
    } else if (strcmp(command, "remove") == 0) {
        args_set(ns, "name", args_value_str(values->pdata[0]));
    } else {
        /* PoolsAction: the names gathered */
        const char *dest = args_action_dest(action);
        ArgValue *v = args_value_new(ARGV_LIST);
        GPtrArray *had = args_list(ns, dest);
        for (guint i = 0; had && i < had->len; i++)
            g_ptr_array_add(v->list, g_strdup(had->pdata[i]));
        g_ptr_array_add(v->list, g_strdup(values->pdata[0]));
        args_set(ns, dest, v);
    }
}

/* "{'a': '1', 'b': '2'}" pairs of -o, in order, the last of a key
 * winning in place (new array of char*, key then value). */
static GPtrArray *legacy_dict(const char *opts)
{
    GPtrArray *kv = g_ptr_array_new_with_free_func(g_free);
    g_auto(GStrv) parts = g_strsplit(opts ? opts : "", ",", -1);
    for (guint i = 0; opts && parts[i]; i++) {
        char *eq = strchr(parts[i], '=');
        g_autofree char *k = g_strndup(parts[i], (gsize)(eq - parts[i]));
        tool_pairs_set(kv, k, eq + 1);
    }
    return kv;
}

/* parser.error() with the client's message, whose '\n' makes two. */
G_GNUC_NORETURN static void legacy_error(ArgsParser *p, const char *what,
                                         const char *name, const GError *err)
{
    qubes_args_uncaught(err, uncaught_types);
    g_autofree char *msg = tool_exception_str(err);
    args_error(p, "%s %s: %s\n", what, name, msg);
}

static int legacy_main(int argc, char **argv)
{
    ArgsParser *p =
        qubes_args_new("qvm-pool", 0, "Manages Qubes pools and their options",
                       NULL, ARGS_FORMAT_DEFAULT);
    args_add(p, &(ArgsSpec){.names = "-o",
                            .action = ARGS_CALLBACK,
                            .callback = legacy_options,
                            .dest = "options",
                            .metavar = "options",
                            .help = "comma-separated list of driver options"});
    int mx = args_add_mutex(p, 0, FALSE);
    args_add_in(p, 0, mx,
                &(ArgsSpec){.names = "-l --list",
                            .dest = "command",
                            .konst = "list",
                            .action = ARGS_STORE_CONST,
                            .help = "list all pools and exit (default "
                                    "action)"});
    args_add_in(p, 0, mx,
                &(ArgsSpec){.names = "-i --info",
                            .metavar = "POOLNAME",
                            .dest = "pools",
                            .action = ARGS_CALLBACK,
                            .callback = legacy_action,
                            .callback_data = (gpointer) "info",
                            .deflt_type = ARGV_LIST,
                            .help = "print pool info and exit"});
    static const char *const add_names[] = {"NAME", "DRIVER", NULL};
    args_add_in(p, 0, mx,
                &(ArgsSpec){.names = "-a --add",
                            .dest = "command",
                            .metavars = add_names,
                            .nargs = 2,
                            .action = ARGS_CALLBACK,
                            .callback = legacy_action,
                            .callback_data = (gpointer) "add",
                            .help = "add pool"});
    args_add_in(p, 0, mx,
                &(ArgsSpec){.names = "-r --remove",
                            .metavar = "NAME",
                            .action = ARGS_CALLBACK,
                            .callback = legacy_action,
                            .callback_data = (gpointer) "remove",
                            .help = "remove pool"});
    args_add_in(p, 0, mx,
                &(ArgsSpec){.names = "-s --set",
                            .metavar = "POOLNAME",
                            .dest = "pool",
                            .action = ARGS_CALLBACK,
                            .callback = legacy_action,
                            .callback_data = (gpointer) "set",
                            .deflt_type = ARGV_LIST,
                            .help = "modify pool (use -o to specify "
                                    "modifications)"});
    args_add_in(p, 0, mx,
                &(ArgsSpec){.names = "--help-drivers",
                            .dest = "command",
                            .konst = "list-drivers",
                            .action = ARGS_STORE_CONST,
                            .help = "list all drivers with their options "
                                    "and exit"});
    g_autoptr(ArgsNamespace) ns = args_parse(p, argc, argv);
    /* PoolsAction.parse_qubes_app() of -i, then of -s */
    check_pools(p, args_list(ns, "pools"));
    check_pools(p, args_list(ns, "pool"));
    const char *command = args_str(ns, "command");
    g_autoptr(GPtrArray) opts = legacy_dict(args_str(ns, "options"));
    if (!command || strcmp(command, "list") == 0) {
        cmd_list(p);
    } else if (strcmp(command, "list-drivers") == 0) {
        cmd_drivers(p);
    } else if (strcmp(command, "add") == 0) {
        const char *name = args_str(ns, "name");
        g_autoptr(GPtrArray) sorted = g_ptr_array_new();
        for (guint i = 0; i + 1 < opts->len; i += 2)
            g_ptr_array_add(sorted,
                            g_strdup_printf("%s=%s\n", (char *)opts->pdata[i],
                                            (char *)opts->pdata[i + 1]));
        g_ptr_array_sort(sorted, tool_str_cmp);
        GString *payload = g_string_new(NULL);
        g_string_printf(payload, "name=%s\n", name);
        for (guint i = 0; i < sorted->len; i++) {
            g_string_append(payload, sorted->pdata[i]);
            g_free(sorted->pdata[i]);
        }
        g_autoptr(GError) err = NULL;
        g_autofree char *r =
            qa_call("admin.pool.Add", "dom0", args_str(ns, "driver"),
                    payload->str, &err);
        g_string_free(payload, TRUE);
        if (!r)
            legacy_error(p, "failed to add pool", name, err);
    } else if (strcmp(command, "remove") == 0) {
        const char *name = args_str(ns, "name");
        g_autoptr(GError) err = NULL;
        g_autofree char *r =
            qa_call("admin.pool.Remove", "dom0", name, NULL, &err);
        if (!r)
            legacy_error(p, "failed to remove pool", name, err);
    } else if (strcmp(command, "info") == 0) {
        cmd_info(p, args_list(ns, "pools"));
    } else if (strcmp(command, "set") == 0) {
        const char *pool = args_list(ns, "pool")->pdata[0];
        static const char *const settable[] = {"ephemeral_volatile",
                                               "revisions_to_keep", NULL};
        static const char *const read_only[] = {
            "config",        "driver",  "size", "usage",
            "usage_details", "volumes", NULL};
        for (guint i = 0; i + 1 < opts->len; i += 2) {
            const char *opt = opts->pdata[i];
            if (g_strv_contains(read_only, opt))
                qubes_args_exit_uncaught("AttributeError: property '%s' of "
                                         "'Pool' object has no setter",
                                         opt);
            if (g_str_has_prefix(opt, "__") && g_str_has_suffix(opt, "__"))
                continue; /* an attribute of the object, not qubesd's */
            if (!g_strv_contains(settable, opt))
                args_error(p, "setting pool option %s is not supported", pool);
            g_autofree char *m = g_strdup_printf("admin.pool.Set.%s", opt);
            g_autoptr(GError) err = NULL;
            g_autofree char *r =
                qa_call(m, "dom0", pool, opts->pdata[i + 1], &err);
            if (!r) {
                g_autofree char *what =
                    g_strdup_printf("failed to set pool %s option", pool);
                legacy_error(p, what, opt, err);
            }
        }
    }
    fflush(stdout);
    args_parser_free(p);
    return 0;
}

int main(int argc, char **argv)
{
    /* the older options hand the whole line to the older syntax */
    ArgsParser *legacy = args_parser_new("qvm-pool", ARGS_SUPPRESS, NULL, NULL,
                                         ARGS_FORMAT_DEFAULT);
    static const char *const olds[] = {"-a --add",  "-i --info",
                                       "-l --list", "-r --remove",
                                       "-s --set",  "--help-drivers"};
    for (guint i = 0; i < G_N_ELEMENTS(olds); i++)
        args_add(legacy, &(ArgsSpec){.names = olds[i],
                                     .action = ARGS_STORE_TRUE,
                                     .dest = "has_legacy_options",
                                     .help = ARGS_SUPPRESS});
    {
        g_autoptr(GPtrArray) extras = g_ptr_array_new_with_free_func(g_free);
        g_autoptr(ArgsNamespace) lns =
            args_parse_known(legacy, argc, argv, extras);
        gboolean old = args_bool(lns, "has_legacy_options");
        args_parser_free(legacy);
        if (old)
            return legacy_main(argc, argv);
    }
    ArgsParser *p =
        qubes_args_new("qvm-pool", 0, "Manages Qubes pools and their options",
                       NULL, ARGS_FORMAT_DEFAULT);
    ArgsAction *sub = args_add_subparsers(
        p, "command", "commands",
        "For more information see qvm-pool <command> -h", NULL, NULL, FALSE);
    args_subparsers_qubes_aliases(sub);
    static const char *const a_d[] = {"d", NULL}, *const a_l[] = {"l", "ls",
                                                                  NULL};
    static const char *const a_i[] = {"i", NULL}, *const a_a[] = {"a", NULL};
    static const char *const a_r[] = {"r", "rm", NULL}, *const a_s[] = {"s",
                                                                        NULL};
    ArgsParser *dp =
        args_add_parser(sub, "drivers", a_d,
                        "List all drivers with their options", NULL, NULL, 0);
    qubes_args_add_common(dp);
    args_set_default(dp, "func", "drivers");
    ArgsParser *lsp = args_add_parser(
        sub, "list", a_l, "List all available pools", NULL, NULL, 0);
    qubes_args_add_common(lsp);
    args_set_default(lsp, "func", "list");
    ArgsParser *ip =
        args_add_parser(sub, "info", a_i,
                        "Print info about the specified pools", NULL, NULL, 0);
    qubes_args_add_common(ip);
    args_add(ip, &(ArgsSpec){.names = "pools",
                             .metavar = "POOL_NAME",
                             .action = ARGS_APPEND});
    args_set_default(ip, "func", "info");
    static const char *const opt_help =
        "Set option for the driver in opt=value form(can be specified "
        "multiple times) --see `man qvm-pool` for details";
    ArgsParser *ap =
        args_add_parser(sub, "add", a_a, "Add a new pool", NULL, NULL, 0);
    qubes_args_add_common(ap);
    args_add(ap, &(ArgsSpec){.names = "pool_name", .metavar = "POOL_NAME"});
    args_add(ap, &(ArgsSpec){.names = "driver", .metavar = "DRIVER"});
    args_add(ap, &(ArgsSpec){.names = "--option -o",
                             .action = ARGS_APPEND,
                             .help = opt_help});
    args_set_default(ap, "func", "add");
    ArgsParser *rp = args_add_parser(
        sub, "remove", a_r, "Remove the specified pools", NULL, NULL, 0);
    qubes_args_add_common(rp);
    args_add(rp, &(ArgsSpec){.names = "pool_names",
                             .metavar = "POOL_NAME",
                             .nargs = ARGS_ONE_OR_MORE});
    args_set_default(rp, "func", "remove");
    ArgsParser *sp = args_add_parser(
        sub, "set", a_s, "Modify driver options for a pool", NULL, NULL, 0);
    qubes_args_add_common(sp);
    args_add(sp, &(ArgsSpec){.names = "pool_name", .metavar = "POOL_NAME"});
    args_add(sp, &(ArgsSpec){.names = "--option -o",
                             .action = ARGS_APPEND,
                             .help = opt_help});
    args_set_default(sp, "func", "set");
    args_set_default(p, "func", "list");
    g_autoptr(ArgsNamespace) ns = args_parse(p, argc, argv);
    const char *func = args_str(ns, "func");
    if (strcmp(func, "list") == 0) {
        cmd_list(p);
    } else if (strcmp(func, "drivers") == 0) {
        cmd_drivers(p);
    } else if (strcmp(func, "info") == 0) {
        GPtrArray *names = args_list(ns, "pools");
        check_pools(p, names);
        cmd_info(p, names);
    } else if (strcmp(func, "add") == 0) {
        GPtrArray *opts = args_list(ns, "option");
        GString *payload = g_string_new(NULL);
        g_string_printf(payload, "name=%s\n", args_str(ns, "pool_name"));
        g_autoptr(GPtrArray) kv = g_ptr_array_new_with_free_func(g_free);
        for (guint i = 0; opts && i < opts->len; i++) {
            const char *o = opts->pdata[i];
            const char *eq = strchr(o, '=');
            if (!eq)
                qubes_args_exit_uncaught(QUBES_ARGS_DICT_ERROR, i);
            /* a dict: a key given again takes its new value */
            g_autofree char *key = g_strndup(o, (gsize)(eq - o));
            gboolean done = FALSE;
            for (guint k = 0; k < kv->len; k++) {
                const char *e = kv->pdata[k];
                if (g_str_has_prefix(e, key) && e[strlen(key)] == '=') {
                    g_free(kv->pdata[k]);
                    kv->pdata[k] = g_strdup(o);
                    done = TRUE;
                }
            }
            if (!done)
                g_ptr_array_add(kv, g_strdup(o));
        }
        g_ptr_array_sort(kv, tool_str_cmp);
        for (guint k = 0; k < kv->len; k++)
            g_string_append_printf(payload, "%s\n", (char *)kv->pdata[k]);
        g_autoptr(GError) err = NULL;
        g_autofree char *r =
            qa_call("admin.pool.Add", "dom0", args_str(ns, "driver"),
                    payload->str, &err);
        g_string_free(payload, TRUE);
        if (!r)
            qubes_args_uncaught(err, uncaught_types);
        if (!r)
            fail(p, "Failed to add pool %s: %s\n", args_str(ns, "pool_name"),
                 tool_error_message(err));
    } else if (strcmp(func, "remove") == 0) {
        GPtrArray *names = args_list(ns, "pool_names");
        GString *errors = g_string_new(NULL);
        for (guint i = 0; names && i < names->len; i++) {
            g_autoptr(GError) err = NULL;
            g_autofree char *r = qa_call("admin.pool.Remove", "dom0",
                                         names->pdata[i], NULL, &err);
            if (!r)
                qubes_args_uncaught(err, uncaught_types);
            if (!r)
                g_string_append_printf(errors,
                                       "%sFailed to remove pool %s: "
                                       "%s\n",
                                       errors->len ? "\n" : "",
                                       (char *)names->pdata[i],
                                       tool_error_message(err));
        }
        if (errors->len)
            fail(p, "%s", errors->str);
        g_string_free(errors, TRUE);
    } else if (strcmp(func, "set") == 0) {
        const char *pool = args_str(ns, "pool_name");
        g_autoptr(GPtrArray) pools = lines_or_fail(p, "admin.pool.List", NULL);
        gboolean found = FALSE;
        for (guint k = 0; k < pools->len && !found; k++)
            found = strcmp(pools->pdata[k], pool) == 0;
        if (!found) {
            fprintf(stderr, "KeyError: '%s'\n", pool);
            return 1;
        }
        GPtrArray *opts = args_list(ns, "option");
        GString *errors = g_string_new(NULL);
        static const char *const settable[] = {"revisions_to_keep",
                                               "ephemeral_volatile", NULL};
        for (guint i = 0; opts && i < opts->len; i++) {
            const char *o = opts->pdata[i];
            const char *eq = strchr(o, '=');
            if (!eq) {
                fprintf(stderr, "ValueError: not enough values to unpack "
                                "(expected 2, got 1)\n");
                return 1;
            }
            g_autofree char *key = g_strndup(o, (gsize)(eq - o));
            if (!g_strv_contains(settable, key)) {
                /* the client says so and sets its own attribute only */
                g_string_append_printf(errors,
                                       "%sSetting option %s is not "
                                       "supported for pool %s\n",
                                       errors->len ? "\n" : "", key, pool);
                continue;
            }
            g_autofree char *method = g_strconcat("admin.pool.Set.", key, NULL);
            g_autoptr(GError) err = NULL;
            g_autofree char *r = qa_call(method, "dom0", pool, eq + 1, &err);
            if (!r)
                qubes_args_uncaught(err, uncaught_types);
            if (!r)
                g_string_append_printf(errors,
                                       "%sFailed to set option %s for "
                                       "pool %s: %s\n",
                                       errors->len ? "\n" : "", key, pool,
                                       tool_error_message(err));
        }
        if (errors->len)
            fail(p, "%s", errors->str);
        g_string_free(errors, TRUE);
    }
    fflush(stdout);
    args_parser_free(p);
    return 0;
}
