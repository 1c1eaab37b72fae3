/* qvm-notes: show or change the notes of a qube (admin.vm.notes.*).
 *
 *   qvm-notes VM                       print the notes
 *   qvm-notes --import VM [FILE|-]     replace them (standard input: -)
 *   qvm-notes --append VM TEXT|-       add TEXT (or standard input) at the end
 *   qvm-notes --delete VM              empty them
 *   qvm-notes --edit VM                edit them in $EDITOR (else vi)
 */
#include "tool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *read_source(const char *src, GError **error)
{
    char *text = NULL;
    if (strcmp(src, "-") == 0) {
        GString *s = g_string_new(NULL);
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, stdin)) > 0)
            g_string_append_len(s, buf, n);
        return g_string_free(s, FALSE);
    }
    return g_file_get_contents(src, &text, NULL, error) ? text : NULL;
}

static int set_notes(const char *vm, const char *text)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *r = qa_call("admin.vm.notes.Set", vm, NULL, text, &err);
    return r ? 0 : qa_fail("qvm-notes", err);
}

static int edit(const char *vm, const char *current)
{
    g_autofree char *path = NULL;
    g_autoptr(GError) err = NULL;
    int fd = g_file_open_tmp("qvm-notes-XXXXXX.txt", &path, &err);
    if (fd < 0)
        return qa_fail("qvm-notes", err);
    close(fd);
    if (!g_file_set_contents(path, current, -1, &err))
        return qa_fail("qvm-notes", err);
    const char *editor = g_getenv("VISUAL");
    if (!editor || !*editor)
        editor = g_getenv("EDITOR");
    if (!editor || !*editor)
        editor = "vi";
    g_autofree char *quoted = g_shell_quote(path);
    g_autofree char *cmd = g_strdup_printf("%s %s", editor, quoted);
    int rc = system(cmd);
    g_autofree char *text = NULL;
    gboolean read_ok = g_file_get_contents(path, &text, NULL, &err);
    unlink(path);
    if (rc != 0) {
        fprintf(stderr, "qvm-notes: the editor failed; notes unchanged\n");
        return 1;
    }
    if (!read_ok)
        return qa_fail("qvm-notes", err);
    return strcmp(text, current) == 0 ? 0 : set_notes(vm, text);
}

int main(int argc, char **argv)
{
    gboolean import = FALSE, append = FALSE, delete = FALSE, editing = FALSE;
    GOptionEntry entries[] = {
        {"import", 'i', 0, G_OPTION_ARG_NONE, &import,
         "Replace the notes with FILE, or standard input (-)", NULL},
        {"append", 0, 0, G_OPTION_ARG_NONE, &append,
         "Add TEXT (or standard input: -) at the end of the notes", NULL},
        {"delete", 'd', 0, G_OPTION_ARG_NONE, &delete, "Empty the notes", NULL},
        {"edit", 'e', 0, G_OPTION_ARG_NONE, &editing,
         "Edit the notes in $EDITOR", NULL},
        {NULL},
    };
    tool_parse(&argc, &argv, entries, "VMNAME [FILE|TEXT|-]",
               "Show or change the notes of a qube.", NULL);
    int modes = import + append + delete + editing;
    gboolean needs_arg = append;
    gboolean takes_arg = import || append;
    if (modes > 1 || argc < 2 || argc > 3 || (argc == 3 && !takes_arg) ||
        (needs_arg && argc != 3)) {
        fprintf(stderr, "qvm-notes: error: wrong arguments\n");
        return 2;
    }
    const char *vm = argv[1];
    g_autoptr(GError) err = NULL;
    if (delete)
        return set_notes(vm, "");
    if (import) {
        g_autofree char *text = read_source(argc == 3 ? argv[2] : "-", &err);
        return text ? set_notes(vm, text) : qa_fail("qvm-notes", err);
    }
    g_autofree char *notes =
        qa_call("admin.vm.notes.Get", vm, NULL, NULL, &err);
    if (!notes)
        return qa_fail("qvm-notes", err);
    if (append) {
        g_autofree char *more = strcmp(argv[2], "-") == 0
                                    ? read_source("-", &err)
                                    : g_strdup(argv[2]);
        if (!more)
            return qa_fail("qvm-notes", err);
        gboolean nl = *notes && !g_str_has_suffix(notes, "\n");
        g_autofree char *text = g_strconcat(notes, nl ? "\n" : "", more, NULL);
        return set_notes(vm, text);
    }
    if (editing)
        return edit(vm, notes);
    fputs(notes, stdout);
    if (*notes && !g_str_has_suffix(notes, "\n"))
        putchar('\n');
    return 0;
}
