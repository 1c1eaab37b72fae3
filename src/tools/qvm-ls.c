/* qvm-ls: list qubes with their state, class, label, template and netvm
 * (the default columns of the Qubes tool).
 *
 *   qvm-ls [--raw-list] [--fields F1,F2,...] [--running|--halted] [VM...]
 */
#include "tool.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    char *name, *klass, *state;
} Row;

static char *field(const Row *r, const char *f)
{
    if (g_ascii_strcasecmp(f, "name") == 0)
        return g_strdup(r->name);
    if (g_ascii_strcasecmp(f, "state") == 0)
        return g_strdup(r->state);
    if (g_ascii_strcasecmp(f, "class") == 0)
        return g_strdup(r->klass);
    g_autofree char *lower = g_ascii_strdown(f, -1);
    g_autofree char *ans =
        qa_call("admin.vm.property.Get", r->name, lower, NULL, NULL);
    if (!ans)
        return g_strdup("-");
    char *v = tool_prop_value(ans, NULL);
    if (!*v) {
        g_free(v);
        return g_strdup("-");
    }
    return v;
}

int main(int argc, char **argv)
{
    gboolean raw = FALSE, running = FALSE, halted = FALSE;
    g_autofree char *fields = NULL;
    GOptionEntry entries[] = {
        {"raw-list", 0, 0, G_OPTION_ARG_NONE, &raw,
         "Print only the names of the qubes", NULL},
        {"fields", 0, 0, G_OPTION_ARG_STRING, &fields,
         "Columns to show (default name,state,class,label,template,netvm)",
         "FIELDS"},
        {"running", 0, 0, G_OPTION_ARG_NONE, &running,
         "Show only running qubes", NULL},
        {"halted", 0, 0, G_OPTION_ARG_NONE, &halted, "Show only halted qubes",
         NULL},
        {NULL},
    };
    tool_parse(&argc, &argv, entries, "[VMNAME...]", "List qubes.", NULL);
    g_autoptr(GError) err = NULL;
    g_autofree char *list = qa_call("admin.vm.List", "dom0", NULL, NULL, &err);
    if (!list)
        return qa_fail("qvm-ls", err);
    g_auto(GStrv) want = g_strsplit(fields ? fields
                                           : "name,state,class,label,"
                                             "template,netvm",
                                    ",", -1);
    guint ncol = g_strv_length(want);
    g_autoptr(Table) t = table_new(ncol, NULL);
    if (!raw) {
        for (guint i = 0; i < ncol; i++) {
            g_autofree char *up = g_ascii_strup(want[i], -1);
            g_ptr_array_add(t->cells, g_strdup(up));
        }
    }
    g_auto(GStrv) lines = g_strsplit(list, "\n", -1);
    for (char **l = lines; *l && **l; l++) {
        g_auto(GStrv) parts = g_strsplit(*l, " ", -1);
        g_autoptr(GHashTable) kv = qa_parse_kv(*l, " ");
        Row r = {parts[0], g_hash_table_lookup(kv, "class"),
                 g_hash_table_lookup(kv, "state")};
        if (argc > 1) {
            gboolean named = FALSE;
            for (int i = 1; i < argc; i++)
                named = named || strcmp(argv[i], r.name) == 0;
            if (!named)
                continue;
        }
        gboolean is_running = g_strcmp0(r.state, "Halted") != 0;
        if ((running && !is_running) || (halted && is_running))
            continue;
        if (raw) {
            printf("%s\n", r.name);
            continue;
        }
        for (guint i = 0; i < ncol; i++)
            g_ptr_array_add(t->cells, field(&r, want[i]));
    }
    if (!raw)
        table_print(t);
    return 0;
}
