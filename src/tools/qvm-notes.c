/* qvm-notes: a qube's notes, as the Qubes client's qvm-notes
 * (qubesadmin/tools/qvm_notes.py): edit them in $VISUAL or $EDITOR (vi)
 * by default, or --print, --set 'NOTES', --import FILENAME, --append
 * 'NOTES' (on a line of its own), --delete (after a confirmation unless
 * --force). A failure is logged as the client logs it ("root: Unable to
 * ...", the logger's name left out with -q) and exits 1.
 *
 * Deliberately different: where the client ends in an uncaught Python
 * exception (a file to import that cannot be read, an editor that
 * fails, the confirmation's input closed) we print that exception's
 * last line and exit 1, as it does. */
#include "argparse.h"
#include "qubes-app.h"
#include "qubes-args.h"
#include "qubesadmin.h"
#include "tool.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static ArgsNamespace *g_ns;

/* logging.error() as qubesadmin.log sets it up: "root: MESSAGE" while
 * verbose, the bare message when quieted. */
#define log_error(...) qubes_args_log(g_ns, "root", TRUE, __VA_ARGS__)

/* The client catches QubesException only: a ProtocolError (dom0 has no
 * notes) ends it. */
static const char *const uncaught_types[] = {"ProtocolError", NULL};

static char *get_notes(const char *vm, GError **error)
{
    char *r = qa_call("admin.vm.notes.Get", vm, NULL, NULL, error);
    if (!r)
        qubes_args_uncaught(*error, uncaught_types);
    return r;
}

static gboolean set_notes(const char *vm, const char *text, GError **error)
{
    g_autofree char *r = qa_call_full(NULL, NULL, "admin.vm.notes.Set", vm,
                                      NULL, text, strlen(text), NULL, error);
    if (!r)
        qubes_args_uncaught(*error, uncaught_types);
    return r != NULL;
}

/* Python's OSError text: "[Errno N] STRERROR: 'PATH'" */
static void os_error(const char *type, int err, const char *path)
{
    fprintf(stderr, "%s: [Errno %d] %s: '%s'\n", type, err, g_strerror(err),
            path);
}

static int edit(const char *vm)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *notes = get_notes(vm, &err);
    if (!notes) {
        log_error("Failed to edit qube notes: %s", tool_error_message(err));
        return 1;
    }
    const char *tmp = g_getenv("TMPDIR");
    g_autofree char *path = g_strdup_printf("%s/%s_qube_XXXXXX_notes.txt",
                                            tmp && *tmp ? tmp : "/tmp", vm);
    int fd = mkstemps(path, (int)strlen("_notes.txt"));
    if (fd < 0) {
        os_error("FileNotFoundError", errno, path);
        return 1;
    }
    gboolean ok = write(fd, notes, strlen(notes)) == (ssize_t)strlen(notes);
    close(fd);
    int rc = 0;
    g_autofree char *cmd = NULL;
    struct stat before, after;
    if (!ok || stat(path, &before) != 0) {
        os_error("OSError", errno, path);
        rc = 1;
        goto out;
    }
    cmd = g_strdup_printf("${VISUAL:-${EDITOR:-vi}} %s", path);
    int status = system(cmd);
    if (status != 0) {
        int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        fprintf(stderr,
                "subprocess.CalledProcessError: Command '%s' returned "
                "non-zero exit status %d.\n",
                cmd, code);
        rc = 1;
        goto out;
    }
    if (stat(path, &after) == 0 &&
        (after.st_mtim.tv_sec != before.st_mtim.tv_sec ||
         after.st_mtim.tv_nsec != before.st_mtim.tv_nsec)) {
        g_autofree char *text = NULL;
        if (!g_file_get_contents(path, &text, NULL, NULL)) {
            os_error("FileNotFoundError", errno, path);
            rc = 1;
        } else if (!set_notes(vm, text, &err)) {
            log_error("Failed to edit qube notes: %s", tool_error_message(err));
            rc = 1;
        }
    }
out:
    unlink(path);
    return rc;
}

int main(int argc, char **argv)
{
    ArgsParser *p = qubes_args_new(
        "qvm-notes", 1, "Manipulate qube notes",
        "Each qube notes is limited to 256KB of clear-text. See program "
        "manpage for more information on other limitations.",
        ARGS_FORMAT_DEFAULT);
    args_add(p, &(ArgsSpec){.names = "--force -f",
                            .action = ARGS_STORE_TRUE,
                            .help = "Do not prompt for confirmation; assume "
                                    "`yes`"});
    int sec = args_add_section(
        p, "Notes action options",
        "note: `--edit` is the default action for qube notes.");
    int g = args_add_mutex(p, sec, FALSE);
    args_add_in(p, 0, g,
                &(ArgsSpec){.names = "--edit -e",
                            .action = ARGS_STORE_CONST,
                            .dest = "action",
                            .konst = "edit",
                            .help = "Edit qube notes in $EDITOR (default "
                                    "text editor)"});
    args_add_in(p, 0, g,
                &(ArgsSpec){.names = "--print -p",
                            .action = ARGS_STORE_CONST,
                            .dest = "action",
                            .konst = "print",
                            .help = "Print qube notes"});
    args_add_in(p, 0, g,
                &(ArgsSpec){.names = "--import -i",
                            .dest = "filename",
                            .metavar = "FILENAME",
                            .help = "Import qube notes from file"});
    args_add_in(p, 0, g,
                &(ArgsSpec){.names = "--set -s",
                            .dest = "notes",
                            .metavar = "'NOTES'",
                            .help = "Set qube notes from provided string"});
    args_add_in(p, 0, g,
                &(ArgsSpec){.names = "--append",
                            .dest = "append",
                            .metavar = "'NOTES'",
                            .help = "Append the provided string to qube "
                                    "notes"});
    args_add_in(p, 0, g,
                &(ArgsSpec){.names = "--delete -d",
                            .action = ARGS_STORE_CONST,
                            .dest = "action",
                            .konst = "delete",
                            .help = "Delete qube notes"});
    args_set_default(p, "action", "edit");
    g_autoptr(ArgsNamespace) ns = args_parse(p, argc, argv);
    g_ns = ns;
    g_autoptr(QaApp) app = qubes_args_app(p);
    g_autoptr(GPtrArray) doms = qubes_args_domains(p, ns, app, 1);
    const char *vm = qa_vm_name(doms->pdata[doms->len - 1]);
    const char *action = args_str(ns, "action");
    /* a non-empty value chooses its action, as the client tests them */
    const char *filename = args_str(ns, "filename");
    const char *notes = args_str(ns, "notes");
    const char *append = args_str(ns, "append");
    if (filename && *filename)
        action = "import";
    if (notes && *notes)
        action = "set";
    if (append && *append)
        action = "append";
    g_autoptr(GError) err = NULL;
    int rc = 0;
    if (strcmp(action, "edit") == 0) {
        rc = edit(vm);
    } else if (strcmp(action, "print") == 0) {
        g_autofree char *text = get_notes(vm, &err);
        if (text) {
            printf("%s\n", text);
        } else {
            log_error("Unable to get qube notes: %s", tool_error_message(err));
            rc = 1;
        }
    } else if (strcmp(action, "set") == 0) {
        if (!set_notes(vm, notes, &err)) {
            log_error("Unable to set qube notes: %s", tool_error_message(err));
            rc = 1;
        }
    } else if (strcmp(action, "import") == 0) {
        g_autofree char *text = NULL;
        g_autoptr(GError) ferr = NULL;
        if (!g_file_get_contents(filename, &text, NULL, &ferr)) {
            int e = g_error_matches(ferr, G_FILE_ERROR, G_FILE_ERROR_NOENT)
                        ? ENOENT
                    : g_error_matches(ferr, G_FILE_ERROR, G_FILE_ERROR_ACCES)
                        ? EACCES
                    : g_error_matches(ferr, G_FILE_ERROR, G_FILE_ERROR_ISDIR)
                        ? EISDIR
                        : EIO;
            os_error(e == ENOENT   ? "FileNotFoundError"
                     : e == EACCES ? "PermissionError"
                     : e == EISDIR ? "IsADirectoryError"
                                   : "OSError",
                     e, filename);
            rc = 1;
        } else if (!g_utf8_validate(text, -1, NULL)) {
            fprintf(stderr, "UnicodeDecodeError: 'utf-8' codec can't decode "
                            "the file\n");
            rc = 1;
        } else if (!set_notes(vm, text, &err)) {
            log_error("Unable to import notes file: %s",
                      tool_error_message(err));
            rc = 1;
        }
    } else if (strcmp(action, "append") == 0) {
        g_autofree char *text = get_notes(vm, &err);
        if (text) {
            const char *last = strrchr(text, '\n');
            last = last ? last + 1 : text;
            g_autofree char *all =
                g_strconcat(text, *last ? "\n" : "", append, NULL);
            if (!set_notes(vm, all, &err))
                text = (g_free(text), NULL);
        }
        if (!text) {
            log_error("Unable to append qube notes: %s",
                      tool_error_message(err));
            rc = 1;
        }
    } else if (strcmp(action, "delete") == 0) {
        if (!args_bool(ns, "force")) {
            printf("You are about to delete existing qube notes\n");
            g_autofree char *line = tool_input("Are you certain? [y/N]");
            if (!line) {
                fprintf(stderr, "EOFError: EOF when reading a line\n");
                return 1;
            }
            if (g_ascii_strcasecmp(line, "y") != 0)
                return 2;
        }
        if (!set_notes(vm, "", &err)) {
            log_error("Unable to delete qube notes: %s",
                      tool_error_message(err));
            rc = 1;
        }
    }
    fflush(stdout);
    args_parser_free(p);
    return rc;
}
