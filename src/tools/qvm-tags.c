/* qvm-tags: a qube's tags, as the Qubes client's qvm-tags
 * (qubesadmin/tools/qvm_tags.py): "list" (ls, l; the default) prints
 * them sorted, or one tag when it is set (exit 1 when not); "add" (a,
 * set) adds tags; "del" (d, unset, u) removes one. */
#include "argparse.h"
#include "qubes-app.h"
#include "qubes-args.h"
#include "qubesadmin.h"
#include "tool.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    ArgsParser *p = qubes_args_new("qvm-tags", 1, "manage domain's tags", NULL,
                                   ARGS_FORMAT_DEFAULT);
    ArgsAction *sub = args_add_subparsers(
        p, "command", "commands",
        "For more information see qvm-tags command -h", NULL, NULL, FALSE);
    args_subparsers_qubes_aliases(sub);
    static const char *const ls[] = {"ls", "l", NULL};
    static const char *const add[] = {"a", "set", NULL};
    static const char *const del[] = {"d", "unset", "u", NULL};
    ArgsParser *lp =
        args_add_parser(sub, "list", ls, "list tags", NULL, NULL, 0);
    qubes_args_add_common(lp);
    args_add(lp, &(ArgsSpec){.names = "tag", .nargs = ARGS_OPTIONAL});
    args_set_default(lp, "func", "query");
    ArgsParser *ap = args_add_parser(sub, "add", add, "add tag", NULL, NULL, 0);
    qubes_args_add_common(ap);
    args_add(ap, &(ArgsSpec){.names = "tag", .nargs = ARGS_ONE_OR_MORE});
    args_set_default(ap, "func", "add");
    ArgsParser *dp = args_add_parser(sub, "del", del, "add tag", NULL, NULL, 0);
    qubes_args_add_common(dp);
    args_add(dp, &(ArgsSpec){.names = "tag", .nargs = 1});
    args_set_default(dp, "func", "del");
    args_set_default(p, "func", "query");
    g_autoptr(ArgsNamespace) ns = args_parse(p, argc, argv);
    g_autoptr(QaApp) app = qubes_args_app(p);
    g_autoptr(GPtrArray) doms = qubes_args_domains(p, ns, app, 1);
    const char *vm = qa_vm_name(doms->pdata[0]);
    const char *func = args_str(ns, "func");
    g_autoptr(GError) err = NULL;
    int rc = 0;
    if (strcmp(func, "query") == 0) {
        const char *tag = args_str(ns, "tag");
        if (!tag) {
            g_autoptr(GPtrArray) tags =
                qa_call_lines("admin.vm.tag.List", vm, NULL, &err);
            if (!tags)
                qubes_args_error_runtime(p, 1, "%s", tool_error_message(err));
            g_ptr_array_sort(tags, tool_str_cmp);
            for (guint i = 0; i < tags->len; i++)
                printf("%s\n", (char *)tags->pdata[i]);
        } else {
            /* "in": admin.vm.tag.Get answers 1 or 0 */
            g_autoptr(GError) e = NULL;
            g_autofree char *has =
                qa_call("admin.vm.tag.Get", vm, tag, NULL, &e);
            if (!has)
                qubes_args_error_runtime(p, 1, "%s", tool_error_message(e));
            if (strcmp(has, "1") == 0)
                printf("%s\n", tag);
            else
                rc = 1;
        }
    } else {
        GPtrArray *tags = args_list(ns, "tag");
        gboolean adding = strcmp(func, "add") == 0;
        for (guint i = 0; tags && i < tags->len; i++) {
            g_autoptr(GError) e = NULL;
            g_autofree char *r =
                qa_call(adding ? "admin.vm.tag.Set" : "admin.vm.tag.Remove", vm,
                        tags->pdata[i], NULL, &e);
            /* discard(): a tag that is not there is no failure */
            if (!r && !(!adding && g_strcmp0(qa_error_type(e),
                                             "QubesTagNotFoundError") == 0))
                qubes_args_error_runtime(p, 1, "%s", tool_error_message(e));
        }
    }
    fflush(stdout);
    args_parser_free(p);
    return rc;
}
