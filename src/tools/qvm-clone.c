/* qvm-clone: copy a qube, as the Qubes client's qvm-clone
 * (qubesadmin/tools/qvm_clone.py and QubesBase.clone_vm): the new qube
 * made with the source's class (or --class), template and label, in
 * the default pools, one pool (-P) or a pool per volume (-p VOL=POOL);
 * then the source's properties that are not default, its tags (not
 * created-by-*), features (not the preloaded disposables' own), notes
 * and firewall; then the data of each volume saved on stop (CloneFrom
 * and CloneTo: reflinks where the pool can); then the device
 * assignments. A failure removes the new qube and says why
 * ("qvm-clone: error: ..."); --ignore-errors logs a failure to copy
 * the settings or the assignments and goes on.
 *
 * The desktop menus are copied by qvm-appmenus, as the client does,
 * when it is installed (the copy itself: clone.c). Deliberately different:
 * without qvm-appmenus (a host with no desktop, as this system is) there are no
 * menus to copy and the step is skipped; the client fails the clone there
 * unless
 * --ignore-errors. */
#include "argparse.h"
#include "clone.h"
#include "qubes-app.h"
#include "qubes-args.h"
#include "qubesadmin.h"
#include "tool.h"

#include <stdio.h>

int main(int argc, char **argv)
{
    ArgsParser *p = qubes_args_new("qvm-clone", 1, "Clone a domain", NULL,
                                   ARGS_FORMAT_DEFAULT);
    args_add(p, &(ArgsSpec){.names = "new_name",
                            .metavar = "NEWVM",
                            .help = "name of the domain to create"});
    args_add(p, &(ArgsSpec){.names = "--class -C",
                            .dest = "cls",
                            .help = "specify the class of the new domain "
                                    "(default: same as source)"});
    /* the client's help joins these two words without a space */
    args_add(p, &(ArgsSpec){.names = "--ignore-errors",
                            .action = ARGS_STORE_TRUE,
                            .deflt = "False",
                            .deflt_type = ARGV_BOOL,
                            .help = "log errors encountered during setting "
                                    "metadatabut continue clone operation"});
    int mx = args_add_mutex(p, 0, FALSE);
    args_add_in(p, 0, mx,
                &(ArgsSpec){.names = "-P",
                            .metavar = "POOL",
                            .dest = "one_pool",
                            .deflt = "",
                            .help = "pool to use for the new domain"});
    args_add_in(p, 0, mx,
                &(ArgsSpec){.names = "-p --pool",
                            .action = ARGS_APPEND,
                            .metavar = "VOLUME=POOL",
                            .help = "specify the pool to use for the specific "
                                    "volume"});
    g_autoptr(ArgsNamespace) ns = args_parse(p, argc, argv);
    g_autoptr(QaApp) app = qubes_args_app(p);
    g_autoptr(GPtrArray) doms = qubes_args_domains(p, ns, app, 1);
    g_autoptr(GHashTable) pools = g_hash_table_new(g_str_hash, g_str_equal);
    GPtrArray *given = args_list(ns, "pool");
    for (guint i = 0; given && i < given->len; i++) {
        g_auto(GStrv) kv = g_strsplit(given->pdata[i], "=", -1);
        if (g_strv_length(kv) != 2)
            args_error(p, "Pool argument must be of form: -p "
                          "volume_name=pool_name");
        /* a dict: the last VOLUME= wins */
        g_hash_table_replace(pools, (gpointer)g_intern_string(kv[0]),
                             (gpointer)g_intern_string(kv[1]));
    }
    QaCloneOptions o = {.cls = args_str(ns, "cls"),
                        .pool = args_str(ns, "one_pool"),
                        .pools = pools,
                        .ignore_errors = args_bool(ns, "ignore_errors")};
    g_autoptr(GError) err = NULL;
    if (!qa_clone_vm(ns, doms->pdata[0], args_str(ns, "new_name"), &o, &err)) {
        /* the client does not catch a ProtocolError (a class or a name
         * qubesd cannot take) */
        static const char *const uncaught[] = {"ProtocolError", NULL};
        qubes_args_uncaught(err, uncaught);
        g_autofree char *msg = tool_exception_str(err);
        qubes_args_error_runtime(p, 1, "%s", msg);
    }
    fflush(stdout);
    args_parser_free(p);
    return 0;
}
