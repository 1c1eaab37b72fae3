/* qvm-features: list, get, set or unset the features of a qube.
 *
 *   qvm-features VM                   list "NAME  VALUE"
 *   qvm-features VM FEATURE           print the value (exit 1 when unset)
 *   qvm-features VM FEATURE VALUE     set
 *   qvm-features --unset VM FEATURE   remove
 */
#include "tool.h"

#include <stdio.h>

int main(int argc, char **argv)
{
    gboolean unset = FALSE;
    GOptionEntry entries[] = {
        {"unset", 'D', 0, G_OPTION_ARG_NONE, &unset, "Remove the feature",
         NULL},
        {"default", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_NONE, &unset,
         "Remove the feature", NULL},
        {NULL},
    };
    tool_parse(&argc, &argv, entries, "VMNAME [FEATURE [VALUE]]",
               "Manage the features of a qube.", NULL);
    if (argc < 2 || argc > 4 || (unset && argc != 3)) {
        fprintf(stderr, "qvm-features: error: wrong number of arguments\n");
        return 2;
    }
    const char *vm = argv[1];
    g_autoptr(GError) err = NULL;
    if (argc == 2) {
        g_autofree char *list =
            qa_call("admin.vm.feature.List", vm, NULL, NULL, &err);
        if (!list)
            return qa_fail("qvm-features", err);
        g_autoptr(Table) t = table_new(2, NULL);
        g_auto(GStrv) names = g_strsplit(list, "\n", -1);
        for (char **n = names; *n && **n; n++) {
            g_autofree char *v =
                qa_call("admin.vm.feature.Get", vm, *n, NULL, NULL);
            table_add(t, *n, v ? v : "", NULL);
        }
        table_print(t);
        return 0;
    }
    const char *feature = argv[2];
    if (unset) {
        g_autofree char *r =
            qa_call("admin.vm.feature.Remove", vm, feature, NULL, &err);
        return r ? 0 : qa_fail("qvm-features", err);
    }
    if (argc == 4) {
        g_autofree char *r =
            qa_call("admin.vm.feature.Set", vm, feature, argv[3], &err);
        return r ? 0 : qa_fail("qvm-features", err);
    }
    g_autofree char *v =
        qa_call("admin.vm.feature.Get", vm, feature, NULL, &err);
    if (!v)
        return g_strcmp0(qa_error_type(err), "QubesFeatureNotFoundError") == 0
                   ? 1
                   : qa_fail("qvm-features", err);
    printf("%s\n", v);
    return 0;
}
