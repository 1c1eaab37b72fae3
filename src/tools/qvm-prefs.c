/* qvm-prefs and qubes-prefs: list, get, set or reset the properties of a
 * qube or the global ones, as the Qubes tools of the same names.
 *
 *   qvm-prefs [--hide-default] VM                 list
 *   qvm-prefs VM PROPERTY                         print the value
 *   qvm-prefs VM PROPERTY VALUE                   set ("" for none)
 *   qvm-prefs --default VM PROPERTY               reset to the default
 *   qubes-prefs [PROPERTY [VALUE]]                the same, global
 */
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

int main(int argc, char **argv)
{
    gboolean reset = FALSE, hide_default = FALSE, help_props = FALSE;
    gboolean get = FALSE, set = FALSE;
    GOptionEntry entries[] = {
        {"default", 'D', 0, G_OPTION_ARG_NONE, &reset,
         "Reset the property to its default value", NULL},
        {"hide-default", 0, 0, G_OPTION_ARG_NONE, &hide_default,
         "Do not show properties that are set to the default value", NULL},
        {"help-properties", 0, 0, G_OPTION_ARG_NONE, &help_props,
         "List the available properties with a short description", NULL},
        {"get", 'g', 0, G_OPTION_ARG_NONE, &get, "Get the value (default)",
         NULL},
        {"set", 's', 0, G_OPTION_ARG_NONE, &set, "Set the value", NULL},
        {NULL},
    };
#ifdef GLOBAL_PREFS
    tool_parse(&argc, &argv, entries, "[PROPERTY [VALUE]]",
               "Manage global Qubes properties.", NULL);
    const char *dest = "dom0";
    int first = 1;
#else
    tool_parse(&argc, &argv, entries, "VMNAME [PROPERTY [VALUE]]",
               "Manage the properties of a qube.",
               "A value of \"\" (or \"none\" for a qube property) sets none.");
    if (argc < 2) {
        fprintf(stderr, PROG ": error: a qube name is required\n");
        return 2;
    }
    const char *dest = argv[1];
    int first = 2;
#endif
    int nargs = argc - first;
    const char *prop = nargs > 0 ? argv[first] : NULL;
    const char *value = nargs > 1 ? argv[first + 1] : NULL;
    g_autoptr(GError) err = NULL;
    if (nargs > 2 || (reset && (!prop || value))) {
        fprintf(stderr, PROG ": error: wrong number of arguments\n");
        return 2;
    }
    if (help_props) {
        g_autofree char *list = qa_call(NS "List", dest, NULL, NULL, &err);
        if (!list)
            return qa_fail(PROG, err);
        g_auto(GStrv) names = g_strsplit(list, "\n", -1);
        for (char **n = names; *n && **n; n++) {
            g_autofree char *doc = qa_call(NS "Help", dest, *n, NULL, NULL);
            char *nl = doc ? strchr(doc, '\n') : NULL;
            if (nl)
                *nl = '\0';
            printf("%-24s %s\n", *n, doc ? doc : "");
        }
        return 0;
    }
    if (!prop) {
        g_autoptr(GPtrArray) props = tool_get_all(NS "GetAll", dest, &err);
        if (!props)
            return qa_fail(PROG, err);
        g_autoptr(Table) t = table_new(3, NULL);
        for (guint i = 0; i < props->len; i++) {
            ToolProp *p = props->pdata[i];
            if (!(hide_default && p->is_default))
                table_add(t, p->name, p->is_default ? "D" : "-", p->value,
                          NULL);
        }
        table_print(t);
        return 0;
    }
    if (reset) {
        g_autofree char *r = qa_call(NS "Reset", dest, prop, NULL, &err);
        return r ? 0 : qa_fail(PROG, err);
    }
    if (value) {
        if (strcmp(value, "none") == 0 || strcmp(value, "None") == 0) {
            /* "none" means no qube for a qube-valued property. */
            g_autofree char *cur = qa_call(NS "Get", dest, prop, NULL, NULL);
            if (cur && strstr(cur, " type=vm "))
                value = "";
        }
        g_autofree char *r = qa_call(NS "Set", dest, prop, value, &err);
        return r ? 0 : qa_fail(PROG, err);
    }
    g_autofree char *r = qa_call(NS "Get", dest, prop, NULL, &err);
    if (!r)
        return qa_fail(PROG, err);
    g_autofree char *v = tool_prop_value(r, NULL);
    printf("%s\n", v);
    return 0;
}
