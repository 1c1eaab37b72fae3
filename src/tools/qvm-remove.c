/* qvm-remove: remove qubes and their disks.
 *
 *   qvm-remove [--force] VMNAME...
 */
#include "tool.h"

#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    gboolean force = FALSE;
    GOptionEntry entries[] = {
        {"force", 'f', 0, G_OPTION_ARG_NONE, &force,
         "Do not ask for confirmation", NULL},
        {NULL},
    };
    tool_parse(&argc, &argv, entries, "VMNAME...",
               "Remove qubes, with all their volumes.", NULL);
    if (argc < 2) {
        fprintf(stderr, "qvm-remove: error: a qube name is required\n");
        return 2;
    }
    if (!force) {
        GString *q = g_string_new("This will completely remove the selected "
                                  "qube(s):\n");
        for (int i = 1; i < argc; i++)
            g_string_append_printf(q, "  %s\n", argv[i]);
        g_string_append(q, "Are you sure?");
        gboolean yes = tool_confirm(q->str);
        g_string_free(q, TRUE);
        if (!yes) {
            fprintf(stderr, "qvm-remove: nothing removed\n");
            return 1;
        }
    }
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        g_autoptr(GError) err = NULL;
        g_autofree char *r =
            qa_call("admin.vm.Remove", argv[i], NULL, NULL, &err);
        if (!r)
            rc = qa_fail("qvm-remove", err);
    }
    return rc;
}
