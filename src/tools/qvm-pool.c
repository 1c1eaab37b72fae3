/* qvm-pool: manage storage pools.
 *
 *   qvm-pool [list]                         NAME  DRIVER
 *   qvm-pool info POOL                      its settings and usage
 *   qvm-pool add POOL DRIVER -o dir_path=...,revisions_to_keep=...
 *   qvm-pool remove POOL...
 *   qvm-pool set POOL -o revisions_to_keep=N,ephemeral_volatile=BOOL
 *   qvm-pool drivers                        DRIVER  OPTIONS
 * The options of the older syntax work too: -l, -i POOL, -a POOL DRIVER,
 * -r POOL, --help-drivers.
 *
 * The subcommands are the Qubes client's (qubesadmin/tools/qvm_pool.py):
 * the same syntax, aliases, help, tables and messages. The older syntax
 * is still this tool's own (not yet the client's legacy tool's words).
 */
#include "argparse.h"
#include "qubes-args.h"
#include "tool.h"

#include <stdio.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static int list(void)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *pools =
        qa_call("admin.pool.List", "dom0", NULL, NULL, &err);
    if (!pools)
        return qa_fail("qvm-pool", err);
    g_autoptr(Table) t = table_new(2, "NAME", "DRIVER", NULL);
    g_auto(GStrv) names = g_strsplit(pools, "\n", -1);
    for (char **n = names; *n && **n; n++) {
        g_autofree char *info =
            qa_call("admin.pool.Info", "dom0", *n, NULL, NULL);
        g_autoptr(GHashTable) kv = qa_parse_kv(info ? info : "", "\n");
        const char *driver = g_hash_table_lookup(kv, "driver");
        table_add(t, *n, driver ? driver : "?", NULL);
    }
    table_print(t);
    return 0;
}

static int info(const char *pool)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *info =
        qa_call("admin.pool.Info", "dom0", pool, NULL, &err);
    if (!info)
        return qa_fail("qvm-pool", err);
    g_autoptr(Table) t = table_new(2, NULL);
    table_add_kv_lines(t, info, NULL);
    table_print(t);
    return 0;
}

static int drivers(void)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *d =
        qa_call("admin.pool.ListDrivers", "dom0", NULL, NULL, &err);
    if (!d)
        return qa_fail("qvm-pool", err);
    g_autoptr(Table) t = table_new(2, "DRIVER", "OPTIONS", NULL);
    g_auto(GStrv) lines = g_strsplit(d, "\n", -1);
    for (char **l = lines; *l && **l; l++) {
        char *sp = strchr(*l, ' ');
        if (sp)
            *sp = '\0';
        g_autofree char *opts =
            sp ? g_strdelimit(g_strdup(sp + 1), " ", ',') : g_strdup("");
        table_add(t, *l, opts, NULL);
    }
    table_print(t);
    return 0;
}

/* "a=1,b=2" (or several -o) as "a=1\nb=2\n" lines. */
static char *options_payload(char **opts, const char *name)
{
    GString *p = g_string_new(NULL);
    if (name)
        g_string_append_printf(p, "name=%s\n", name);
    for (char **o = opts; o && *o; o++) {
        g_auto(GStrv) items = g_strsplit(*o, ",", -1);
        for (char **i = items; *i; i++) {
            if (**i)
                g_string_append_printf(p, "%s\n", *i);
        }
    }
    return g_string_free(p, FALSE);
}

/* admin.pool.Add, after checking the driver here: qubesd answers an
 * unknown one with a bare PermissionDenied, as the reference does. */
static int add_pool(const char *name, const char *driver, char **opts)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *d =
        qa_call("admin.pool.ListDrivers", "dom0", NULL, NULL, &err);
    if (!d)
        return qa_fail("qvm-pool", err);
    g_auto(GStrv) lines = g_strsplit(d, "\n", -1);
    GString *known = g_string_new(NULL);
    gboolean found = FALSE;
    for (char **l = lines; *l && **l; l++) {
        char *sp = strchr(*l, ' ');
        if (sp)
            *sp = '\0';
        found = found || strcmp(*l, driver) == 0;
        g_string_append_printf(known, "%s%s", known->len ? ", " : "", *l);
    }
    if (!found) {
        fprintf(stderr, "qvm-pool: error: no such driver: %s (drivers: %s)\n",
                driver, known->str);
        g_string_free(known, TRUE);
        return 2;
    }
    g_string_free(known, TRUE);
    g_autofree char *payload = options_payload(opts, name);
    g_autofree char *r =
        qa_call("admin.pool.Add", "dom0", driver, payload, &err);
    return r ? 0 : qa_fail("qvm-pool", err);
}

/* The older syntax (-l, -i POOL, -a POOL DRIVER, -r POOL, -s POOL,
 * --help-drivers), which the client hands to its legacy tool. */
static int legacy_main(int argc, char **argv)
{
    g_auto(GStrv) opts = NULL;
    gboolean old_list = FALSE, old_drivers = FALSE;
    g_autofree char *old_info = NULL, *old_remove = NULL;
    g_auto(GStrv) old_add = NULL;
    GOptionEntry entries[] = {
        {"option", 'o', 0, G_OPTION_ARG_STRING_ARRAY, &opts,
         "Pool options, as NAME=VALUE[,NAME=VALUE...]", "OPTIONS"},
        {"list", 'l', G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_NONE, &old_list,
         "List pools", NULL},
        {"info", 'i', G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_STRING, &old_info,
         "Show a pool", "POOL"},
        {"add", 'a', G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_STRING_ARRAY, &old_add,
         "Add a pool", "POOL"},
        {"remove", 'r', G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_STRING, &old_remove,
         "Remove a pool", "POOL"},
        {"help-drivers", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_NONE,
         &old_drivers, "List the drivers", NULL},
        {NULL},
    };
    tool_parse(&argc, &argv, entries,
               "[list | info POOL | add POOL DRIVER | remove POOL... | "
               "set POOL | drivers]",
               "Manage storage pools.",
               "Commands:\n"
               "  list                     NAME DRIVER\n"
               "  info POOL                settings and usage\n"
               "  add POOL DRIVER -o dir_path=DIR[,revisions_to_keep=N,...]\n"
               "  remove POOL...           refused while a volume lives there\n"
               "  set POOL -o revisions_to_keep=N|ephemeral_volatile=BOOL\n"
               "  drivers                  DRIVER OPTIONS\n\n"
               "The daemon is found through $QUBESD_SOCKET, else "
               "/var/run/qubesd.sock.");
    const char *cmd = argc > 1 ? argv[1] : "list";
    if (old_list)
        return list();
    if (old_drivers)
        return drivers();
    if (old_info)
        return info(old_info);
    g_autoptr(GError) err = NULL;
    if (old_remove) {
        g_autofree char *r =
            qa_call("admin.pool.Remove", "dom0", old_remove, NULL, &err);
        return r ? 0 : qa_fail("qvm-pool", err);
    }
    if (old_add) {
        if (argc != 2) {
            fprintf(stderr, "qvm-pool: error: -a POOL DRIVER\n");
            return 2;
        }
        return add_pool(old_add[0], argv[1], opts);
    }
    if (!strcmp(cmd, "list") || !strcmp(cmd, "ls"))
        return list();
    if (!strcmp(cmd, "drivers"))
        return drivers();
    if (!strcmp(cmd, "info") || !strcmp(cmd, "i")) {
        if (argc != 3) {
            fprintf(stderr, "qvm-pool: error: info POOL\n");
            return 2;
        }
        return info(argv[2]);
    }
    if (!strcmp(cmd, "add") || !strcmp(cmd, "a")) {
        if (argc != 4) {
            fprintf(stderr, "qvm-pool: error: add POOL DRIVER -o OPTIONS\n");
            return 2;
        }
        return add_pool(argv[2], argv[3], opts);
    }
    if (!strcmp(cmd, "remove") || !strcmp(cmd, "rm")) {
        int rc = argc < 3 ? 2 : 0;
        for (int i = 2; i < argc; i++) {
            g_autoptr(GError) e = NULL;
            g_autofree char *r =
                qa_call("admin.pool.Remove", "dom0", argv[i], NULL, &e);
            if (!r)
                rc = qa_fail("qvm-pool", e);
        }
        return rc;
    }
    if (!strcmp(cmd, "set") || !strcmp(cmd, "s")) {
        if (argc != 3 || !opts) {
            fprintf(stderr, "qvm-pool: error: set POOL -o NAME=VALUE\n");
            return 2;
        }
        g_autofree char *lines = options_payload(opts, NULL);
        g_auto(GStrv) items = g_strsplit(lines, "\n", -1);
        for (char **i = items; *i && **i; i++) {
            char *eq = strchr(*i, '=');
            if (!eq) {
                fprintf(stderr, "qvm-pool: error: option %s has no value\n",
                        *i);
                return 2;
            }
            *eq = '\0';
            g_autofree char *method = g_strdup_printf("admin.pool.Set.%s", *i);
            g_autofree char *r = qa_call(method, "dom0", argv[2], eq + 1, &err);
            if (!r)
                return qa_fail("qvm-pool", err);
        }
        return 0;
    }
    fprintf(stderr, "qvm-pool: error: unknown command %s\n", cmd);
    return 2;
}

/* ---- the client's subcommands ---- */

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

/* qubesd's refusals the client does not catch here (an unknown driver
 * or pool, a bad value) */
static const char *const uncaught_types[] = {"PermissionDenied",
                                             "ProtocolError", NULL};

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
        /* PoolsAction: every name must be a pool */
        GPtrArray *names = args_list(ns, "pools");
        g_autoptr(GPtrArray) pools = lines_or_fail(p, "admin.pool.List", NULL);
        for (guint i = 0; names && i < names->len; i++) {
            gboolean found = FALSE;
            for (guint k = 0; k < pools->len && !found; k++)
                found = strcmp(pools->pdata[k], names->pdata[i]) == 0;
            if (!found) {
                GString *r = g_string_new("[");
                for (guint k = 0; k < names->len; k++)
                    g_string_append_printf(r, "%s'%s'", k ? ", " : "",
                                           (char *)names->pdata[k]);
                g_string_append_c(r, ']');
                g_autofree char *rs = g_string_free(r, FALSE);
                args_error(p, "No such pools: %s", rs);
            }
        }
        cmd_info(p, names);
    } else if (strcmp(func, "add") == 0) {
        GPtrArray *opts = args_list(ns, "option");
        GString *payload = g_string_new(NULL);
        g_string_printf(payload, "name=%s\n", args_str(ns, "pool_name"));
        g_autoptr(GPtrArray) kv = g_ptr_array_new_with_free_func(g_free);
        for (guint i = 0; opts && i < opts->len; i++) {
            const char *o = opts->pdata[i];
            const char *eq = strchr(o, '=');
            if (!eq) {
                fprintf(stderr,
                        "ValueError: dictionary update sequence "
                        "element #%u has length 1; 2 is required\n",
                        i);
                return 1;
            }
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
