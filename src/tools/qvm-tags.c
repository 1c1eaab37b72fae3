/* qvm-tags: list, check, add or remove the tags of a qube.
 *
 *   qvm-tags VM [list [TAG]]     list all tags, or check one (exit 1: no)
 *   qvm-tags VM add TAG...
 *   qvm-tags VM del TAG...
 */
#include "tool.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    GOptionEntry entries[] = {{NULL}};
    tool_parse(&argc, &argv, entries,
               "VMNAME [list|add|del|set|unset] [TAG...]",
               "Manage the tags of a qube.",
               "Commands: list [TAG] (exit 1 when TAG is not set), "
               "add TAG..., del TAG...\nTags are ASCII letters, digits, "
               "'_' and '-'.");
    if (argc < 2) {
        fprintf(stderr, "qvm-tags: error: a qube name is required\n");
        return 2;
    }
    const char *vm = argv[1];
    const char *cmd = argc > 2 ? argv[2] : "list";
    g_autoptr(GError) err = NULL;
    if (strcmp(cmd, "list") == 0 || strcmp(cmd, "ls") == 0 ||
        strcmp(cmd, "l") == 0) {
        if (argc > 4) {
            fprintf(stderr, "qvm-tags: error: list takes one tag at most\n");
            return 2;
        }
        if (argc == 4) {
            g_autofree char *r =
                qa_call("admin.vm.tag.Get", vm, argv[3], NULL, &err);
            if (!r)
                return qa_fail("qvm-tags", err);
            if (strcmp(r, "1") != 0)
                return 1;
            printf("%s\n", argv[3]);
            return 0;
        }
        g_autofree char *r = qa_call("admin.vm.tag.List", vm, NULL, NULL, &err);
        if (!r)
            return qa_fail("qvm-tags", err);
        fputs(r, stdout);
        return 0;
    }
    gboolean add = strcmp(cmd, "add") == 0 || strcmp(cmd, "a") == 0 ||
                   strcmp(cmd, "set") == 0;
    gboolean del = strcmp(cmd, "del") == 0 || strcmp(cmd, "d") == 0 ||
                   strcmp(cmd, "unset") == 0 || strcmp(cmd, "u") == 0;
    if ((!add && !del) || argc < 4) {
        fprintf(stderr, "qvm-tags: error: usage: qvm-tags VMNAME "
                        "{list [TAG] | add TAG... | del TAG...}\n");
        return 2;
    }
    for (int i = 3; i < argc; i++) {
        g_autofree char *r =
            qa_call(add ? "admin.vm.tag.Set" : "admin.vm.tag.Remove", vm,
                    argv[i], NULL, &err);
        if (!r)
            return qa_fail("qvm-tags", err);
    }
    return 0;
}
