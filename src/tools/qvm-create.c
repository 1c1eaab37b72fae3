/* qvm-create: create a qube.
 *
 *   qvm-create [--class CLASS] [--template TEMPLATE] --label LABEL
 *              [--property NAME=VALUE]... [-P POOL | --pool VOLUME:POOL...]
 *              VMNAME
 */
#include "tool.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    g_autofree char *klass = NULL, *template = NULL, *label = NULL;
    g_autofree char *pool = NULL;
    g_auto(GStrv) props = NULL, pools = NULL;
    GOptionEntry entries[] = {
        {"class", 'C', 0, G_OPTION_ARG_STRING, &klass,
         "The class of the new qube (default AppVM)", "CLASS"},
        {"template", 't', 0, G_OPTION_ARG_STRING, &template,
         "The template (default: the default template)", "TEMPLATE"},
        {"label", 'l', 0, G_OPTION_ARG_STRING, &label, "The label (required)",
         "LABEL"},
        {"property", 'p', 0, G_OPTION_ARG_STRING_ARRAY, &props,
         "Set a property of the new qube", "NAME=VALUE"},
        {"pool", 0, 0, G_OPTION_ARG_STRING_ARRAY, &pools,
         "The pool of one volume", "VOLUME:POOL"},
        {"pool-name", 'P', 0, G_OPTION_ARG_STRING, &pool,
         "The pool of every volume", "POOL"},
        {NULL},
    };
    tool_parse(&argc, &argv, entries, "VMNAME", "Create a new qube.", NULL);
    if (argc != 2) {
        fprintf(stderr, "qvm-create: error: one qube name is required\n");
        return 2;
    }
    if (!label) {
        fprintf(stderr, "qvm-create: error: --label is required\n");
        return 2;
    }
    if (pool && pools) {
        fprintf(stderr,
                "qvm-create: error: use -P or --pool VOLUME:POOL, not both\n");
        return 2;
    }
    const char *name = argv[1];
    GString *payload = g_string_new(NULL);
    g_string_printf(payload, "name=%s label=%s", name, label);
    if (pool)
        g_string_append_printf(payload, " pool=%s", pool);
    for (char **p = pools; p && *p; p++) {
        char *colon = strchr(*p, ':');
        if (!colon) {
            fprintf(stderr, "qvm-create: error: --pool wants VOLUME:POOL\n");
            return 2;
        }
        *colon = '\0';
        g_string_append_printf(payload, " pool:%s=%s", *p, colon + 1);
    }
    g_autofree char *method = g_strdup_printf(
        "admin.vm.%s.%s", pool || pools ? "CreateInPool" : "Create",
        klass ? klass : "AppVM");
    g_autoptr(GError) err = NULL;
    g_autofree char *r = qa_call(method, "dom0", template, payload->str, &err);
    g_string_free(payload, TRUE);
    if (!r)
        return qa_fail("qvm-create", err);
    for (char **p = props; p && *p; p++) {
        char *eq = strchr(*p, '=');
        if (!eq) {
            fprintf(stderr, "qvm-create: error: --property wants NAME=VALUE\n");
            return 2;
        }
        *eq = '\0';
        g_autofree char *s =
            qa_call("admin.vm.property.Set", name, *p, eq + 1, &err);
        if (!s)
            return qa_fail("qvm-create", err);
    }
    return 0;
}
