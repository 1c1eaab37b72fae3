/* qvm-prefs and qubes-prefs: list, get, set or reset the properties of a
 * qube or the global ones, as the Qubes client's tools of the same names
 * (qubesadmin/tools/qvm_prefs.py): the same options, listing ("D" a
 * default, "-" a value set, "U" no value), --help-properties, the value
 * "none" of a qube-valued property as nothing, and the same refusals
 * (no such property, a property the client computes itself).
 *
 * Deliberate differences: where the client raises an uncaught exception
 * (a property without a value asked for alone, an attribute of its own
 * objects such as "features" printed as a Python object) we print the
 * exception's last line, or refuse the name, and exit 1 or 2. */
#include "argparse.h"
#include "qubes-app.h"
#include "qubes-args.h"
#include "qubesadmin.h"
#include "tool.h"

#include <stdio.h>
#include <string.h>

#ifdef GLOBAL_PREFS
#define PROG "qubes-prefs"
#define NS "admin.property."
#else
#define PROG "qvm-prefs"
#define NS "admin.vm.property."
#endif

/* What the client's class (QubesVM, or QubesBase for the global ones)
 * defines itself: such a name that qubesd does not list is refused, and
 * one it lists is read from the client's own object, never set. */
#ifdef GLOBAL_PREFS
static const char *const class_attrs[] = {
    "add_new_vm", "add_pool", "blind_mode", "cache_enabled", "clear_cache",
    "clone_properties", "clone_vm", "get_label", "get_vm_class",
    "list_deviceclass", "list_vmclass", "local_name", "pool_driver_parameters",
    "pool_drivers", "property_get_default", "property_help",
    "property_is_default", "property_list", "qubesd_call", "remove_pool",
    "run_service",
    /* set on each instance */
    "app", "domains", "labels", "pools", "log", NULL};
#else
static const char *const class_attrs[] = {
    "appvms", "clear_cache", "clone_properties", "connected_vms", "derived_vms",
    "force_shutdown", "get_disk_utilization", "get_mem", "get_notes",
    "get_power_state", "is_halted", "is_networked", "is_paused", "is_running",
    "is_suspended", "kill", "klass", "name", "pause",
    "prepare_input_for_vmshell", "property_get_default", "property_help",
    "property_is_default", "property_list", "qubesd_call", "resume", "run",
    "run_service", "run_service_for_stdio", "run_with_args", "set_notes",
    "shutdown", "start", "suspend", "unpause", "volumes",
    /* set on each instance */
    "app", "log", "tags", "features", "devices", "firewall", NULL};
#endif

typedef struct {
    ArgsParser *p;
    const char *dest; /* the qube, or dom0 for the global ones */
} Target;

static GPtrArray *property_list(Target *t)
{
    g_autoptr(GError) err = NULL;
    GPtrArray *out = qa_call_lines(NS "List", t->dest, NULL, &err);
    if (!out)
        qubes_args_error_runtime(t->p, 1, "%s", tool_error_message(err));
    return out;
}

static gboolean listed(GPtrArray *l, const char *s)
{
    for (guint i = 0; i < l->len; i++)
        if (strcmp(l->pdata[i], s) == 0)
            return TRUE;
    return FALSE;
}

/* A failed call as the client reports it: no such property as
 * parser.error() (status 2), any other refusal as error_runtime(). */
static void fail(Target *t, const char *prop, const GError *err)
{
    if (g_strcmp0(qa_error_type(err), "QubesNoSuchPropertyError") == 0) {
        g_autofree char *r = g_strdup_printf("'%s'", prop);
        args_error(t->p, "no such property: %s", r);
    }
    qubes_args_error_runtime(t->p, 1, "%s", tool_error_message(err));
}

static int help_properties(Target *t)
{
    g_autoptr(GPtrArray) props = property_list(t);
    g_ptr_array_sort(props, tool_str_cmp);
    gsize width = 0;
    for (guint i = 0; i < props->len; i++)
        width = MAX(width, strlen(props->pdata[i]));
    g_autofree char *sub = g_strnfill(width + 6, ' ');
    for (guint i = 0; i < props->len; i++) {
        g_autoptr(GError) err = NULL;
        g_autofree char *help =
            qa_call(NS "Help", t->dest, props->pdata[i], NULL, &err);
        if (!help)
            fail(t, props->pdata[i], err);
        g_autofree char *line = g_strdup_printf("%-*s  %s", (int)width,
                                                (char *)props->pdata[i], help);
        g_autofree char *filled = args_textfill(line, 80, "  ", sub, TRUE);
        printf("%s\n", filled);
    }
    return 0;
}

/* str() of a property's value as the client holds it */
static const char *value_str(const QaProp *p)
{
    return p->kind == QA_PROP_NONE ? "None" : p->value;
}

static int list_all(Target *t, gboolean hide_default)
{
    g_autoptr(GPtrArray) props = property_list(t);
    g_autoptr(GHashTable) all = qa_props_get_all(NS "GetAll", t->dest);
    g_ptr_array_sort(props, tool_str_cmp);
    gsize width = 0;
    for (guint i = 0; i < props->len; i++)
        width = MAX(width, strlen(props->pdata[i]));
    for (guint i = 0; i < props->len; i++) {
        const char *name = props->pdata[i];
        const QaProp *p = all ? g_hash_table_lookup(all, name) : NULL;
        if (!p || p->kind == QA_PROP_MISSING) {
            printf("%-*s  U\n", (int)width, name);
            continue;
        }
        if (!p->is_default)
            printf("%-*s  -  %s\n", (int)width, name, value_str(p));
        else if (!hide_default)
            printf("%-*s  D  %s\n", (int)width, name, value_str(p));
    }
    return 0;
}

/* "default=X type=T VALUE" of @prop, or the failure reported */
static QaProp *get(Target *t, const char *prop)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *ans = qa_call(NS "Get", t->dest, prop, NULL, &err);
    if (!ans)
        fail(t, prop, err);
    return qa_prop_parse(ans);
}

int main(int argc, char **argv)
{
#ifdef GLOBAL_PREFS
    ArgsParser *p = qubes_args_new(PROG, 0, NULL, NULL, ARGS_FORMAT_DEFAULT);
#else
    ArgsParser *p = qubes_args_new(PROG, 1, NULL, NULL, ARGS_FORMAT_DEFAULT);
#endif
    args_add(p, &(ArgsSpec){.names = "--help-properties",
                            .action = ARGS_STORE_TRUE,
                            .help = "list all available properties with "
                                    "short descriptions and exit"});
    args_add(p, &(ArgsSpec){.names = "--hide-default",
                            .action = ARGS_STORE_TRUE,
                            .help = "Do not show properties that are set to "
                                    "the default value."});
    args_add(p, &(ArgsSpec){.names = "--get -g",
                            .action = ARGS_STORE_TRUE,
                            .help = "Ignored; for compatibility with older "
                                    "scripts."});
    args_add(p, &(ArgsSpec){.names = "--set -s",
                            .action = ARGS_STORE_TRUE,
                            .help = "Ignored; for compatibility with older "
                                    "scripts."});
    args_add(p, &(ArgsSpec){.names = "property",
                            .metavar = "PROPERTY",
                            .nargs = ARGS_OPTIONAL,
                            .help = "name of the property to show or change"});
    int value_group = args_add_mutex(p, 0, FALSE);
    args_add_in(p, 0, value_group,
                &(ArgsSpec){.names = "value",
                            .metavar = "VALUE",
                            .nargs = ARGS_OPTIONAL,
                            .help = "new value of the property"});
    args_add(p, &(ArgsSpec){.names = "--default -D",
                            .dest = "delete",
                            .action = ARGS_STORE_TRUE,
                            .help = "reset property to its default value"});
    g_autoptr(ArgsNamespace) ns = args_parse(p, argc, argv);
    Target t = {.p = p, .dest = "dom0"};
#ifndef GLOBAL_PREFS
    g_autoptr(QaApp) app = qubes_args_app(p);
    g_autoptr(GPtrArray) doms = qubes_args_domains(p, ns, app, 1);
    QaVm *vm = doms->pdata[doms->len - 1];
    t.dest = qa_vm_name(vm);
#endif
    if (args_bool(ns, "help_properties"))
        return help_properties(&t);
    const char *given = args_str(ns, "property");
    if (!given)
        return list_all(&t, args_bool(ns, "hide_default"));
    g_autofree char *prop = g_strdup(given);
    for (char *c = prop; *c; c++)
        if (*c == '-')
            *c = '_';
    gboolean own = g_strv_contains(class_attrs, prop);
    if (own) {
        g_autoptr(GPtrArray) props = property_list(&t);
        if (!listed(props, prop))
            args_error(p, "no such property: '%s'", prop);
    }
    const char *value = args_str(ns, "value");
    if (value) {
        static const char *const vm_props[] = {
            "default_dispvm", "netvm", "template", "guivm", "audiovm", NULL};
        g_autofree char *lower = g_ascii_strdown(value, -1);
        if (strcmp(lower, "none") == 0 && g_strv_contains(vm_props, prop))
            value = "";
#ifndef GLOBAL_PREFS
        if (strcmp(prop, "klass") == 0) {
            /* the client's read-only attribute: its exception's line */
            fprintf(stderr, "AttributeError: property 'klass' of 'QubesVM' "
                            "object has no setter\n");
            return 1;
        }
#endif
        /* "name" goes to qubesd through the client's own setter */
        g_autoptr(GError) err = NULL;
        g_autofree char *r = qa_call(NS "Set", t.dest, prop, value, &err);
        if (!r)
            fail(&t, prop, err);
        return 0;
    }
    if (args_bool(ns, "delete")) {
        if (own) {
            fprintf(stderr,
                    "AttributeError: property '%s' of '%s' object "
                    "has no deleter\n",
                    prop,
#ifdef GLOBAL_PREFS
                    "QubesLocal"
#else
                    "QubesVM"
#endif
            );
            return 1;
        }
        g_autoptr(GError) err = NULL;
        g_autofree char *r = qa_call(NS "Reset", t.dest, prop, NULL, &err);
        if (!r)
            fail(&t, prop, err);
        return 0;
    }
    if (args_bool(ns, "hide_default")) {
        QaProp *pr = get(&t, prop);
        gboolean is_default = pr->is_default;
        qa_prop_free(pr);
        if (is_default)
            return 0;
    }
#ifndef GLOBAL_PREFS
    if (strcmp(prop, "name") == 0) {
        printf("%s\n", qa_vm_name(vm));
        return 0;
    }
    if (strcmp(prop, "klass") == 0) {
        printf("%s\n", qa_vm_klass(vm));
        return 0;
    }
#endif
    if (own)
        args_error(p, "no such property: '%s'", prop);
    QaProp *pr = get(&t, prop);
    int rc = 0;
    if (pr->kind == QA_PROP_MISSING) {
        fprintf(stderr, "AttributeError: %s\n", prop);
        rc = 1;
    } else if (pr->kind == QA_PROP_VALUE) {
        printf("%s\n", pr->value);
    }
    qa_prop_free(pr);
    fflush(stdout);
    args_parser_free(p);
    return rc;
}
