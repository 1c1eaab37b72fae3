/* qvm-remove: remove qubes, as the Qubes client's qvm-remove
 * (qubesadmin/tools/qvm_remove.py): VMNAME... or --all [--exclude VM],
 * a confirmation unless --force/-f (--all asks for IKNOWWHATIAMDOING),
 * and a qube in use refused with where it is used.
 *
 * Deliberately different: the client's uncaught EOFError (no answer on
 * standard input) is printed as its last line, exit 1. Where several
 * places use a qube the client lists them in the random order of a
 * Python set; we list them in the order it finds them. */
#include "argparse.h"
#include "qubes-app.h"
#include "qubes-args.h"
#include "qubesadmin.h"
#include "tool.h"

#include <stdio.h>
#include <string.h>

static const char *const global_props[] = {
    "default_dispvm",  "default_netvm",     "default_guivm",
    "default_audiovm", "default_template",  "clockvm",
    "updatevm",        "management_dispvm", NULL};

/* qubesadmin.utils.vm_dependencies() less the preloaded disposables'
 * templates: "global property P" or "P for QUBE" (new strings). */
static GPtrArray *dependencies(QaApp *app, QaVm *ref)
{
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GHashTable) globals =
        qa_props_get_all("admin.property.GetAll", "dom0");
    for (const char *const *p = global_props; globals && *p; p++) {
        const QaProp *v = g_hash_table_lookup(globals, *p);
        if (v && v->kind == QA_PROP_VALUE &&
            g_strcmp0(v->value, qa_vm_name(ref)) == 0)
            g_ptr_array_add(out, g_strdup_printf(" - global property %s", *p));
    }
    GPtrArray *all = qa_app_domains(app);
    for (guint i = 0; i < all->len; i++) {
        QaVm *vm = all->pdata[i];
        if (vm == ref)
            continue;
        gboolean preload = qa_vm_prop_true(vm, "is_preload");
        static const char *const order[] = {
            "template",          "netvm", "guivm", "audiovm", "default_dispvm",
            "management_dispvm", NULL};
        for (const char *const *p = order; *p; p++) {
            const QaProp *v = qa_vm_prop(vm, *p);
            if (v->kind != QA_PROP_VALUE || v->is_default ||
                g_strcmp0(v->value, qa_vm_name(ref)) != 0)
                continue;
            /* qvm-remove leaves out a preloaded disposable's template,
             * and its default_dispvm when that is its template */
            if (preload && (strcmp(*p, "template") == 0 ||
                            (strcmp(*p, "default_dispvm") == 0 &&
                             g_strcmp0(qa_vm_prop_str(vm, "template"),
                                       qa_vm_name(ref)) == 0)))
                continue;
            g_ptr_array_add(
                out, g_strdup_printf(" - %s for %s", *p, qa_vm_name(vm)));
        }
    }
    return out;
}

int main(int argc, char **argv)
{
    ArgsParser *p = qubes_args_new("qvm-remove", ARGS_ONE_OR_MORE,
                                   "Remove domains from the system", NULL,
                                   ARGS_FORMAT_DEFAULT);
    args_add(p, &(ArgsSpec){.names = "--force -f",
                            .action = ARGS_STORE_TRUE,
                            .dest = "no_confirm",
                            .deflt = "False",
                            .deflt_type = ARGV_BOOL,
                            .help = "Do not prompt for confirmation"});
    g_autoptr(ArgsNamespace) ns = args_parse(p, argc, argv);
    g_autoptr(QaApp) app = qubes_args_app(p);
    g_autoptr(GPtrArray) doms =
        qubes_args_domains(p, ns, app, ARGS_ONE_OR_MORE);
    for (guint i = 0; i < doms->len; i++)
        if (strcmp(qa_vm_name(doms->pdata[i]), "dom0") == 0) {
            fprintf(stderr, "Domain 'dom0' cannot be removed.\n");
            return 1;
        }
    gboolean force = args_bool(ns, "no_confirm");
    GPtrArray *exclude = args_list(ns, "exclude");
    if (args_bool(ns, "all_domains") && !(force || (exclude && exclude->len))) {
        fprintf(stderr, "WARNING!!! Removing all domains may leave your "
                        "system in an unrecoverable state!\n");
        g_autofree char *a =
            tool_input("Are you certain? [N/IKNOWWHATIAMDOING]");
        if (!a) {
            fprintf(stderr, "EOFError: EOF when reading a line\n");
            return 1;
        }
        if (strcmp(a, "IKNOWWHATIAMDOING") != 0) {
            fprintf(stderr, "Remove cancelled.\n");
            return 1;
        }
    }
    gboolean go = force;
    if (!force) {
        fprintf(stderr, "This will completely remove the selected VM(s)...\n");
        for (guint i = 0; i < doms->len; i++)
            printf("  %s\n", qa_vm_name(doms->pdata[i]));
        g_autofree char *a = tool_input("Are you sure? [y/N] ");
        if (!a) {
            fprintf(stderr, "EOFError: EOF when reading a line\n");
            return 1;
        }
        go = g_ascii_strcasecmp(a, "y") == 0;
    }
    if (!go) {
        fprintf(stderr, "Remove cancelled.\n");
        return 1;
    }
    for (guint i = 0; i < doms->len; i++) {
        QaVm *vm = doms->pdata[i];
        g_autoptr(GError) err = NULL;
        g_autofree char *r =
            qa_call("admin.vm.Remove", qa_vm_name(vm), NULL, NULL, &err);
        if (r)
            continue;
        if (g_strcmp0(qa_error_type(err), "QubesVMInUseError") == 0) {
            g_autoptr(GPtrArray) deps = dependencies(app, vm);
            if (deps->len) {
                fprintf(stderr, "VM %s cannot be removed. It is in use as:\n",
                        qa_vm_name(vm));
                for (guint k = 0; k < deps->len; k++)
                    fprintf(stderr, "%s\n", (char *)deps->pdata[k]);
            }
        }
        qubes_args_error_runtime(p, 1, "%s", tool_error_message(err));
    }
    fflush(stdout);
    args_parser_free(p);
    return 0;
}
