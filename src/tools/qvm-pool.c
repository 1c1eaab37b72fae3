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
 */
#include "tool.h"

#include <stdio.h>
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

int main(int argc, char **argv)
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
