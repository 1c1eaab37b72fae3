/* qvm-create: create a qube, as the Qubes client's qvm-create
 * (qubesadmin/tools/qvm_create.py): its options (--class/-C,
 * --standalone, --disp, --property/--prop NAME=VALUE, --pool/-p
 * VOLUME=POOL, -P POOL, --template/-t, --label/-l, --help-classes,
 * --root-copy-from/-r, --root-move-from/-R), its checks and messages,
 * the properties set after the qube is made ("Error setting property
 * ... (but VM created)", exit 2) and the root image imported (exit 3
 * when that fails). Failures are logged as the client's "app" logger
 * logs them.
 *
 * A StandaloneVM with a template is a copy of that template, as the
 * client makes it with clone_vm (clone.h), its private volume left
 * empty.
 *
 * Deliberately different: where the client ends in an uncaught Python
 * exception we print its last line and exit 1. */
#include "argparse.h"
#include "clone.h"
#include "qubes-app.h"
#include "qubes-args.h"
#include "qubesadmin.h"
#include "tool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static ArgsNamespace *g_ns;

/* The "app" logger as qubesadmin.log sets it up. */
#define log_error(...) qubes_args_log(g_ns, "app", TRUE, __VA_ARGS__)

/* The properties dict (PropertyAction, SinglePropertyAction): a list of
 * NAME, VALUE pairs in the order names first came. */
static void dict_set(ArgsNamespace *ns, const char *key, const char *value)
{
    const ArgValue *cur = args_get(ns, "properties");
    ArgValue *d = args_value_new(ARGV_LIST);
    gboolean done = FALSE;
    for (guint i = 0; cur && cur->type == ARGV_LIST && i + 1 < cur->list->len;
         i += 2) {
        const char *k = cur->list->pdata[i];
        g_ptr_array_add(d->list, g_strdup(k));
        if (strcmp(k, key) == 0) {
            g_ptr_array_add(d->list, g_strdup(value));
            done = TRUE;
        } else {
            g_ptr_array_add(d->list, g_strdup(cur->list->pdata[i + 1]));
        }
    }
    if (!done) {
        g_ptr_array_add(d->list, g_strdup(key));
        g_ptr_array_add(d->list, g_strdup(value));
    }
    args_set(ns, "properties", d);
}

static const char *dict_get(ArgsNamespace *ns, const char *key)
{
    GPtrArray *l = args_list(ns, "properties");
    for (guint i = 0; l && i + 1 < l->len; i += 2)
        if (strcmp(l->pdata[i], key) == 0)
            return l->pdata[i + 1];
    return NULL;
}

static void property_action(ArgsParser *p, ArgsNamespace *ns,
                            const ArgsAction *a, GPtrArray *values,
                            const char *opt, gpointer data)
{
    const char *token = values->len ? values->pdata[0] : "";
    const char *eq = strchr(token, '=');
    if (!eq)
        args_error(p, "Invalid property token: '%s'", token);
    g_autofree char *key = g_strndup(token, (gsize)(eq - token));
    dict_set(ns, key, eq + 1);
}

static void single_property_action(ArgsParser *p, ArgsNamespace *ns,
                                   const ArgsAction *a, GPtrArray *values,
                                   const char *opt, gpointer data)
{
    if (!values->len || !*(char *)values->pdata[0])
        return;
    dict_set(ns, data, values->pdata[0]);
}

static ArgsParser *make_parser(void)
{
    ArgsParser *p =
        qubes_args_new("qvm-create", 0, NULL, NULL, ARGS_FORMAT_DEFAULT);
    args_add(p, &(ArgsSpec){.names = "--class -C",
                            .dest = "cls",
                            .deflt = "AppVM",
                            .help = "specify the class of the new domain "
                                    "(default: %(default)s)"});
    args_add(p, &(ArgsSpec){.names = "--standalone",
                            .action = ARGS_STORE_TRUE,
                            .help = " shortcut for --class StandaloneVM"});
    args_add(p, &(ArgsSpec){.names = "--disp",
                            .action = ARGS_STORE_TRUE,
                            .help = "alias for --class DispVM --label red"});
    args_add(p, &(ArgsSpec){.names = "--property --prop",
                            .action = ARGS_CALLBACK,
                            .dest = "properties",
                            .metavar = "NAME=VALUE",
                            .help = "set domain's property, like "
                                    "\"internal\", \"memory\" or \"vcpus\"",
                            .callback = property_action});
    args_add(p, &(ArgsSpec){.names = "--pool -p",
                            .action = ARGS_APPEND,
                            .metavar = "VOLUME_NAME=POOL_NAME",
                            .help = "specify the pool to use for a volume"});
    args_add(p, &(ArgsSpec){.names = "-P",
                            .metavar = "POOL_NAME",
                            .dest = "one_pool",
                            .deflt = "",
                            .help = "change all volume pools to specified "
                                    "pool"});
    args_add(p, &(ArgsSpec){.names = "--template -t",
                            .action = ARGS_CALLBACK,
                            .dest = "properties",
                            .metavar = "VALUE",
                            .help = "specify the TemplateVM to use",
                            .callback = single_property_action,
                            .callback_data = (gpointer) "template"});
    args_add(p, &(ArgsSpec){.names = "--label -l",
                            .action = ARGS_CALLBACK,
                            .dest = "properties",
                            .metavar = "VALUE",
                            .help = "specify the label to use for the new "
                                    "domain (e.g. red, yellow, green, ...)",
                            .callback = single_property_action,
                            .callback_data = (gpointer) "label"});
    args_add(p, &(ArgsSpec){.names = "--help-classes",
                            .action = ARGS_STORE_TRUE,
                            .help = "List available classes and exit"});
    int root = args_add_mutex(p, 0, FALSE);
    args_add_in(p, 0, root,
                &(ArgsSpec){.names = "--root-copy-from -r",
                            .metavar = "FILENAME",
                            .help = "use provided root.img instead of "
                                    "default/empty one (file will be "
                                    "COPIED)"});
    args_add_in(p, 0, root,
                &(ArgsSpec){.names = "--root-move-from -R",
                            .metavar = "FILENAME",
                            .help = "use provided root.img instead of "
                                    "default/empty one (file will be "
                                    "MOVED)"});
    args_add_in(p, 0, root,
                &(ArgsSpec){.names = "--no-root",
                            .action = ARGS_STORE_TRUE,
                            .deflt = "False",
                            .deflt_type = ARGV_BOOL,
                            .help = ARGS_SUPPRESS});
    args_add(p, &(ArgsSpec){.names = "name",
                            .metavar = "VMNAME",
                            .action = ARGS_CALLBACK,
                            .nargs = ARGS_OPTIONAL,
                            .dest = "properties",
                            .help = "name of the domain to create",
                            .callback = single_property_action,
                            .callback_data = (gpointer) "name"});
    return p;
}

/* app.get_label(): by name, else by index */
static gboolean label_exists(GPtrArray *labels, const char *label)
{
    for (guint i = 0; i < labels->len; i++)
        if (strcmp(labels->pdata[i], label) == 0)
            return TRUE;
    gboolean digits = *label != '\0';
    for (const char *c = label; *c; c++)
        digits = digits && g_ascii_isdigit(*c);
    if (!digits)
        return FALSE;
    for (guint i = 0; i < labels->len; i++) {
        g_autofree char *idx =
            qa_call("admin.label.Index", "dom0", labels->pdata[i], NULL, NULL);
        if (idx &&
            g_ascii_strtoll(idx, NULL, 10) == g_ascii_strtoll(label, NULL, 10))
            return TRUE;
    }
    return FALSE;
}

/* A failure to create: the client's uncaught ProtocolError as its
 * last line, any other logged; exit 1. */
static int uncaught_or_logged(const GError *err, const char *what)
{
    static const char *const uncaught[] = {"ProtocolError", NULL};
    qubes_args_uncaught(err, uncaught);
    log_error("%s: %s", what, tool_error_message(err));
    return 1;
}

/* A StandaloneVM from a template: clone_vm() of the template, its
 * private volume left empty, as the client makes it. @pools: VOLUME,
 * POOL pairs. */
static int clone_standalone(const char *tpl, const char *name, const char *pool,
                            GPtrArray *pools)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(QaApp) app = qa_app_new(&err);
    if (!app)
        return uncaught_or_logged(err, "Error creating VM");
    QaVm *src = qa_app_domain(app, tpl);
    if (!src) {
        /* the client's uncaught KeyError */
        g_autofree char *r = args_py_repr(tpl);
        fprintf(stderr, "KeyError: %s\n", r);
        return 1;
    }
    g_autoptr(GHashTable) by_vol = g_hash_table_new(g_str_hash, g_str_equal);
    for (guint k = 0; k + 1 < pools->len; k += 2)
        g_hash_table_replace(by_vol, pools->pdata[k], pools->pdata[k + 1]);
    static const char *const private_only[] = {"private", NULL};
    QaCloneOptions o = {.cls = "StandaloneVM",
                        .pool = pool,
                        .pools = by_vol,
                        .ignore_volumes = private_only};
    if (!qa_clone_vm(g_ns, src, name, &o, &err))
        return uncaught_or_logged(err, "Error creating VM");
    return 0;
}

int main(int argc, char **argv)
{
    ArgsParser *p = make_parser();
    g_autoptr(ArgsNamespace) ns = args_parse(p, argc, argv);
    g_ns = ns;
    g_autoptr(GError) err = NULL;
    if (args_bool(ns, "help_classes")) {
        g_autoptr(GPtrArray) cls =
            qa_call_lines("admin.vmclass.List", "dom0", NULL, &err);
        if (!cls)
            qubes_args_error_runtime(p, 1, "%s", tool_error_message(err));
        g_ptr_array_sort(cls, tool_str_cmp);
        for (guint i = 0; i < cls->len; i++)
            printf("%s\n", (char *)cls->pdata[i]);
        return 0;
    }
    /* pools */
    GPtrArray *pool_args = args_list(ns, "pool");
    g_autoptr(GPtrArray) pools = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; pool_args && i < pool_args->len; i++) {
        g_auto(GStrv) kv = g_strsplit(pool_args->pdata[i], "=", -1);
        if (g_strv_length(kv) != 2)
            args_error(p, "Pool argument must be of form: -p "
                          "volume_name=pool_name");
        /* a dict: a volume named again takes its new pool */
        gboolean replaced = FALSE;
        for (guint k = 0; k + 1 < pools->len; k += 2)
            if (strcmp(pools->pdata[k], kv[0]) == 0) {
                g_free(pools->pdata[k + 1]);
                pools->pdata[k + 1] = g_strdup(kv[1]);
                replaced = TRUE;
            }
        if (!replaced) {
            g_ptr_array_add(pools, g_strdup(kv[0]));
            g_ptr_array_add(pools, g_strdup(kv[1]));
        }
    }
    const char *one_pool = args_str(ns, "one_pool");
    const char *cls = args_str(ns, "cls");
    if (!args_list(ns, "properties")) {
        if (args_bool(ns, "disp")) {
            fprintf(stderr, "AttributeError: 'NoneType' object has no "
                            "attribute 'setdefault'\n");
            return 1;
        }
        fprintf(stderr, "TypeError: argument of type 'NoneType' is not "
                        "iterable\n");
        return 1;
    }
    if (args_bool(ns, "disp")) {
        if (!dict_get(ns, "label"))
            dict_set(ns, "label", "red");
        cls = "DispVM";
    }
    if (args_bool(ns, "standalone"))
        cls = "StandaloneVM";
    if (!dict_get(ns, "label"))
        args_error(p, "--label option is mandatory");
    if (!dict_get(ns, "name"))
        args_error(p, "VMNAME is mandatory");
    const char *copy = args_str(ns, "root_copy_from");
    const char *move = args_str(ns, "root_move_from");
    const char *root = copy && *copy ? copy : move;
    if (root && *root && access(root, F_OK) != 0)
        args_error(p, "File pointed by --root-copy-from/--root-move-from "
                      "does not exist");
    if (root && *root &&
        (strcmp(cls, "AppVM") == 0 || strcmp(cls, "DispVM") == 0))
        args_error(p, "--root-copy-from/--root-move-from used but this qube "
                      "does not have own 'root' volume (uses template's one)");
    g_autoptr(GPtrArray) labels =
        qa_call_lines("admin.label.List", "dom0", NULL, &err);
    if (!labels)
        qubes_args_error_runtime(p, 1, "%s", tool_error_message(err));
    const char *label = dict_get(ns, "label");
    if (!label_exists(labels, label)) {
        g_ptr_array_add(labels, NULL);
        g_autofree char *avail = g_strjoinv(", ", (char **)labels->pdata);
        args_error(p, "no such label: '%s'; available: %s", label, avail);
    }
    g_autofree char *name = g_strdup(dict_get(ns, "name"));
    g_autofree char *tpl = g_strdup(dict_get(ns, "template"));
    if (strcmp(cls, "StandaloneVM") == 0 && tpl) {
        if (*one_pool && pools->len) {
            fprintf(stderr, "ValueError: only one of pool= and pools= can be "
                            "used\n");
            return 1;
        }
        if (clone_standalone(tpl, name, one_pool, pools) != 0)
            return 1;
    } else {
        if (strchr(name, ' ')) {
            fprintf(stderr,
                    "ValueError: Qube name could not contain space: "
                    "%s\n",
                    name);
            return 1;
        }
        if (*one_pool && pools->len) {
            fprintf(stderr, "ValueError: only one of pool= and pools= can be "
                            "used\n");
            return 1;
        }
        GString *payload = g_string_new(NULL);
        g_string_printf(payload, "name=%s label=%s", name, label);
        const char *prefix = "admin.vm.Create.";
        if (*one_pool) {
            g_string_append_printf(payload, " pool=%s", one_pool);
            prefix = "admin.vm.CreateInPool.";
        }
        if (pools->len) {
            /* sorted by volume, as the client sorts pools.items() */
            g_autoptr(GPtrArray) vols = g_ptr_array_new();
            for (guint k = 0; k + 1 < pools->len; k += 2)
                g_ptr_array_add(vols, pools->pdata[k]);
            g_ptr_array_sort(vols, tool_str_cmp);
            for (guint k = 0; k < vols->len; k++)
                for (guint j = 0; j + 1 < pools->len; j += 2)
                    if (pools->pdata[j] == vols->pdata[k])
                        g_string_append_printf(payload, " pool:%s=%s",
                                               (char *)pools->pdata[j],
                                               (char *)pools->pdata[j + 1]);
            prefix = "admin.vm.CreateInPool.";
        }
        g_autofree char *method = g_strconcat(prefix, cls, NULL);
        g_autofree char *r = qa_call(method, "dom0", tpl, payload->str, &err);
        g_string_free(payload, TRUE);
        if (!r)
            return uncaught_or_logged(err, "Error creating VM");
    }
    int rc = 0;
    GPtrArray *props = args_list(ns, "properties");
    gboolean cloned = strcmp(cls, "StandaloneVM") == 0 && tpl;
    for (guint i = 0; i + 1 < props->len; i += 2) {
        const char *k = props->pdata[i];
        /* made with the qube; a clone keeps its template's label, so the
         * label given is set like any property, as the client does */
        if (strcmp(k, "name") == 0 || strcmp(k, "template") == 0 ||
            (strcmp(k, "label") == 0 && !cloned))
            continue;
        g_autoptr(GError) e = NULL;
        g_autofree char *r =
            qa_call("admin.vm.property.Set", name, k, props->pdata[i + 1], &e);
        if (!r) {
            log_error("Error setting property %s (but VM created): %s", k,
                      tool_error_message(e));
            rc = 2;
        }
    }
    if (root && *root) {
        int fd = open(root, O_RDONLY | O_CLOEXEC);
        struct stat st;
        g_autofree char *msg = NULL;
        if (fd < 0 || fstat(fd, &st) != 0) {
            fprintf(stderr, "FileNotFoundError: [Errno %d] %s: '%s'\n", errno,
                    g_strerror(errno), root);
            return 1;
        }
        if (!tool_volume_import(name, "root", fd, (guint64)st.st_size, TRUE,
                                FALSE, &msg, NULL)) {
            log_error("Error importing root volume (but VM created): %s", msg);
            rc = 3;
        } else if (move && *move) {
            unlink(root);
        }
        close(fd);
    }
    fflush(stdout);
    args_parser_free(p);
    return rc;
}
