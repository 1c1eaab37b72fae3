/* qvm-backup: make a backup through qubesd's admin.backup.* (the Qubes
 * client's qvm-backup: the same options, prompts and output).
 *
 *   qvm-backup [--profile NAME | -x VM ... -d VM -p FILE -z|--no-compress|
 *               -Z FILTER --save-profile NAME] [-y] LOCATION [VM ...]
 *
 * Without --profile it writes a profile (backup-run-PID, or the name
 * --save-profile gives) into the profile folder, first without the
 * passphrase to show qubesd's summary, then with it, and removes it at the
 * end unless saved. The folder is /etc/qubes/backup, or
 * $QUBES_BACKUP_PROFILE_DIR (qubesd's --backup-dir). Profiles are written
 * mode 0600 (the client leaves them to the umask): they hold the
 * passphrase. Progress shows as "Making a backup... N%" from the
 * backup-progress events; Ctrl-C cancels (admin.backup.Cancel).
 */
#include "profile.h"
#include "tool.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *prog = "qvm-backup";

/* --compress, --no-compress and --compress-filter share one setting, the
 * last given winning (argparse's dest=compression) */
static enum { C_UNSET, C_TRUE, C_FALSE, C_FILTER } compression = C_UNSET;
static char *filter;

static gboolean opt_compress(const char *name, const char *value, gpointer data,
                             GError **error)
{
    g_clear_pointer(&filter, g_free);
    if (strcmp(name, "--no-compress") == 0) {
        compression = C_FALSE;
    } else if (strcmp(name, "-Z") == 0 ||
               strcmp(name, "--compress-filter") == 0) {
        compression = *value ? C_FILTER : C_FALSE;
        filter = g_strdup(value);
    } else {
        compression = C_TRUE;
    }
    return TRUE;
}

static char *profile_dir(void)
{
    const char *env = g_getenv("QUBES_BACKUP_PROFILE_DIR");
    return g_strdup(env && *env ? env : "/etc/qubes/backup");
}

static gboolean write_profile(const char *path, const QubesBackupProfile *p,
                              GError **error)
{
    g_autofree char *text = qubes_backup_profile_format(p);
    return g_file_set_contents_full(
        path, text, -1, G_FILE_SET_CONTENTS_CONSISTENT, 0600, error);
}

/* ---- running it ---- */

typedef struct {
    const char *profile;
    char *answer;
    GError *error;
    gint done;
} Exec;

static gpointer execute_thread(gpointer data)
{
    Exec *x = data;
    x->answer =
        qa_call("admin.backup.Execute", "dom0", x->profile, NULL, &x->error);
    g_atomic_int_set(&x->done, 1);
    return NULL;
}

static void on_event(const char *subject, const char *event,
                     const char *const *kw, gpointer data)
{
    const char *profile = data;
    if (strcmp(event, "backup-progress") != 0)
        return;
    const char *name = NULL, *progress = NULL;
    for (; kw[0] && kw[1]; kw += 2) {
        if (strcmp(kw[0], "backup_profile") == 0)
            name = kw[1];
        else if (strcmp(kw[0], "progress") == 0)
            progress = kw[1];
    }
    if (g_strcmp0(name, profile) != 0 || !progress)
        return;
    fprintf(stderr, "\rMaking a backup... %.2f%%",
            g_ascii_strtod(progress, NULL));
    fflush(stderr);
}

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

static int run(const char *profile)
{
    g_autoptr(GError) err = NULL;
    QaEvents *ev = qa_events_open("dom0", NULL);
    Exec x = {.profile = profile};
    struct sigaction sa = {.sa_handler = on_sigint};
    sigaction(SIGINT, &sa, NULL);
    GThread *t = g_thread_new("execute", execute_thread, &x);
    while (!g_atomic_int_get(&x.done)) {
        struct pollfd p = {.fd = ev ? qa_events_fd(ev) : -1, .events = POLLIN};
        int n = poll(&p, 1, 100);
        if (n > 0 && ev && !qa_events_read(ev, on_event, (gpointer)profile))
            g_clear_pointer(&ev, qa_events_close);
        if (interrupted) {
            interrupted = 0;
            g_autoptr(GError) cerr = NULL;
            g_autofree char *r =
                qa_call("admin.backup.Cancel", "dom0", profile, NULL, &cerr);
        }
    }
    g_thread_join(t);
    qa_events_close(ev);
    signal(SIGINT, SIG_DFL);
    g_free(x.answer);
    if (x.error) {
        fprintf(stderr, "\nBackup error: %s\n", tool_error_message(x.error));
        g_error_free(x.error);
        return 1;
    }
    return 0;
}

/* Whether each name (or wildcard) of @vms names a qube. */
static gboolean check_names(GStrv vms)
{
    if (!vms || !*vms)
        return TRUE;
    g_autoptr(GError) err = NULL;
    g_autofree char *list = qa_call("admin.vm.List", "dom0", NULL, NULL, &err);
    if (!list) {
        qa_fail(prog, err);
        return FALSE;
    }
    g_auto(GStrv) lines = g_strsplit(list, "\n", -1);
    for (GStrv v = vms; *v; v++) {
        gboolean wild = strpbrk(*v, "*?[!]") != NULL, found = FALSE;
        for (GStrv l = lines; *l && !found; l++) {
            g_autofree char *name = g_strndup(*l, strcspn(*l, " "));
            found = wild ? fnmatch(*v, name, 0) == 0 : strcmp(*v, name) == 0;
        }
        if (!wild && !found) {
            tool_usage_error(prog, "no such domain: '%s'", *v);
            return FALSE;
        }
    }
    return TRUE;
}

int main(int argc, char **argv)
{
    gboolean yes = FALSE, encrypt = FALSE;
    g_autofree char *profile_opt = NULL, *dest_vm = NULL, *pass_file = NULL;
    g_autofree char *save_profile = NULL;
    g_auto(GStrv) exclude = NULL;
    GOptionEntry entries[] = {
        {"yes", 'y', 0, G_OPTION_ARG_NONE, &yes, "Do not ask for confirmation",
         NULL},
        {"profile", 0, 0, G_OPTION_ARG_STRING, &profile_opt,
         "Perform backup defined by a given profile", "PROFILE"},
        {"exclude", 'x', 0, G_OPTION_ARG_STRING_ARRAY, &exclude,
         "Exclude the specified VM from the backup (may be repeated)",
         "EXCLUDE_LIST"},
        {"dest-vm", 'd', 0, G_OPTION_ARG_STRING, &dest_vm,
         "Specify the destination VM to which the backup will be sent "
         "(implies -e)",
         "APPVM"},
        {"encrypt", 'e', 0, G_OPTION_ARG_NONE, &encrypt,
         "Ignored, backup is always encrypted", NULL},
        {"passphrase-file", 'p', 0, G_OPTION_ARG_FILENAME, &pass_file,
         "Read passphrase from a file, or use '-' to read from stdin",
         "PASSPHRASE_FILE"},
        {"compress", 'z', G_OPTION_FLAG_NO_ARG, G_OPTION_ARG_CALLBACK,
         opt_compress, "Compress the backup (default)", NULL},
        {"no-compress", 0, G_OPTION_FLAG_NO_ARG, G_OPTION_ARG_CALLBACK,
         opt_compress, "Do not compress the backup", NULL},
        {"compress-filter", 'Z', 0, G_OPTION_ARG_CALLBACK, opt_compress,
         "Specify a non-default compression filter program (default: gzip)",
         "COMPRESSION"},
        {"save-profile", 0, 0, G_OPTION_ARG_STRING, &save_profile,
         "Save profile under selected name for further use.Available only in "
         "dom0.",
         "SAVE_PROFILE"},
        {NULL},
    };
    tool_parse(&argc, &argv, entries, "[backup_location] [vms ...]",
               "Make a backup of qubes in the Qubes format.",
               "backup_location: an absolute directory path (or a file's) in "
               "dom0, or a path in the --dest-vm qube");
    const char *location = argc > 1 ? argv[1] : NULL;
    GStrv vms = argc > 2 ? argv + 2 : NULL;
    g_autofree char *dir = profile_dir();
    g_autofree char *profile_path = NULL;
    g_autoptr(QubesBackupProfile) p = g_new0(QubesBackupProfile, 1);
    const char *profile_name;
    g_autofree char *temp_name = NULL;

    if (!profile_opt) {
        if (!location)
            return tool_usage_error(
                prog, "either --profile or 'backup_location' is required");
        if (!check_names(vms))
            return 2;
        profile_name =
            save_profile
                ? save_profile
                : (temp_name = g_strdup_printf("backup-run-%d", (int)getpid()));
        p->include = vms ? g_strdupv(vms) : NULL;
        p->exclude = exclude ? g_strdupv(exclude) : g_new0(char *, 1);
        p->compressed = compression != C_FALSE;
        p->compression_filter = g_strdup(filter);
        if (dest_vm && strcmp(dest_vm, "dom0") != 0) {
            p->destination_vm = g_strdup(dest_vm);
            p->destination_path = g_strdup(location);
        } else {
            g_autofree char *cwd = g_get_current_dir();
            p->destination_vm = g_strdup("dom0");
            /* os.path.join: an absolute location stands alone */
            p->destination_path =
                g_path_is_absolute(location)
                    ? g_strdup(location)
                    : g_strconcat(cwd, g_str_has_suffix(cwd, "/") ? "" : "/",
                                  location, NULL);
        }
        g_autofree char *file = g_strconcat(profile_name, ".conf", NULL);
        profile_path = g_build_filename(dir, file, NULL);
        g_autoptr(GError) err = NULL;
        if (!write_profile(profile_path, p, &err)) {
            fprintf(stderr, "%s: error: %s\n", prog, err->message);
            return 1;
        }
    } else {
        static const struct {
            const char *name;
        } conflicts[] = {{"exclude-list"},
                         {"passphrase-file"},
                         {"compression"},
                         {"save-profile"}};
        gboolean set[] = {exclude && *exclude, pass_file != NULL,
                          compression == C_TRUE || compression == C_FILTER,
                          save_profile != NULL};
        for (guint i = 0; i < G_N_ELEMENTS(set); i++)
            if (set[i])
                return tool_usage_error(
                    prog,
                    "--%s option could not be used together with "
                    "--profile",
                    conflicts[i].name);
        profile_name = profile_opt;
    }
    /* a profile this run made goes at the end, unless it is to be kept */
    gboolean remove_profile = !profile_opt && !save_profile;
    int rc = 0;
    g_autoptr(GError) err = NULL;
    g_autofree char *summary =
        qa_call("admin.backup.Info", "dom0", profile_name, NULL, &err);
    if (!summary) {
        fprintf(stderr, "\nBackup preparation error: %s\n",
                tool_error_message(err));
        rc = 1;
        goto out;
    }
    printf("%s\n", summary);
    fflush(stdout);
    if (!yes) {
        printf("Do you want to proceed? [y/N] ");
        fflush(stdout);
        char line[64] = "";
        if (!fgets(line, sizeof line, stdin) ||
            g_ascii_strcasecmp(g_strstrip(line), "y") != 0)
            goto out;
    }
    if (!profile_opt) {
        g_autofree char *pass = NULL;
        if (pass_file) {
            pass = tool_read_passphrase_file(pass_file, &err);
            if (!pass) {
                fprintf(stderr, "%s: error: %s\n", prog, err->message);
                rc = 1;
                goto out;
            }
        } else {
            pass =
                tool_getpass("Please enter the passphrase that will be used to "
                             "encrypt and verify the backup: ");
            g_autofree char *again =
                tool_getpass("Enter again for verification: ");
            if (strcmp(pass, again) != 0) {
                fprintf(stderr, "%s: error: Passphrase mismatch!\n", prog);
                rc = 1;
                goto out;
            }
        }
        /* an empty passphrase writes none, as the client's truth test */
        p->passphrase_text = *pass ? g_strdup(pass) : NULL;
        memset(pass, 0, strlen(pass));
        if (!write_profile(profile_path, p, &err)) {
            fprintf(stderr, "%s: error: %s\n", prog, err->message);
            rc = 1;
            goto out;
        }
    }
    rc = run(profile_name);
    printf("\n\n");
out:
    if (remove_profile && profile_path)
        unlink(profile_path);
    return rc;
}
