/* qvm-template-postprocess: what a template package runs after it is
 * installed and before it is removed, as the Qubes client's
 * qvm-template-postprocess (qubesadmin/tools/qvm_template_postprocess.py):
 *
 *   qvm-template-postprocess --really [--skip-start] [--keep-source]
 *       [--no-installed-by-rpm] [--allow-pv] [--pool POOL]
 *       post-install|pre-remove NAME DIR
 *
 * post-install: the TemplateVM NAME is made (label black, in POOL) unless
 * it exists (a reinstall: its private volume is cleared); DIR's root.img
 * (or root.img.tar, or the parts root.img.part.NN inside template.rpm) is
 * imported into its root volume with its size, unless it already is
 * that volume's file; installed_by_rpm is set; the menu lists become the
 * default-menu-items, menu-items and netvm-menu-items features;
 * template.conf's settings are applied (the boolean features, the fake
 * network addresses, virt-mode, kernel); unless --skip-start the
 * template is started once with no network and shut down; unless
 * --keep-source DIR is removed.
 *
 * pre-remove: refused while qubes use the template; else installed_by_rpm
 * is unset and the template removed.
 *
 * Deliberately different, for a host without a desktop or qrexec (this
 * system): the menus are handed to qvm-appmenus only when it is
 * installed, and the template's first start does not run
 * qubes.PostInstall inside it (it needs qrexec); where the client ends
 * in an uncaught Python exception we print its last line and exit 1. */
#include "argparse.h"
#include "qubes-app.h"
#include "qubes-args.h"
#include "qubesadmin.h"
#include "tool.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static ArgsParser *parser;
static ArgsNamespace *ns;
static const char *name;

/* An Admin API refusal the client does not catch here. */
G_GNUC_NORETURN static void uncaught(const GError *err)
{
    const char *type = qa_error_type(err);
    g_autofree char *msg = tool_exception_str(err);
    qubes_args_exit_uncaught("qubesadmin.exc.%s: %s",
                             type ? type : "QubesException", msg);
}

static char *call_or_die(const char *method, const char *dest, const char *arg,
                         const char *payload)
{
    g_autoptr(GError) err = NULL;
    char *r = qa_call(method, dest, arg, payload, &err);
    if (!r)
        uncaught(err);
    return r;
}

static void set_prop(const char *prop, const char *value)
{
    g_free(call_or_die("admin.vm.property.Set", name, prop, value));
}

static void set_feature(const char *feature, const char *value)
{
    g_free(call_or_die("admin.vm.feature.Set", name, feature, value));
}

/* the client's vm.log: an info line, or a warning that -q keeps */
#define info(...) qubes_args_log(ns, name, FALSE, __VA_ARGS__)
#define warn(...) qubes_args_log(ns, name, TRUE, __VA_ARGS__)

/* ---- root.img ---- */

static gboolean exists(const char *path)
{
    return g_file_test(path, G_FILE_TEST_EXISTS);
}

/* get_root_img_size(): the size tar lists for root.img in the first
 * part or the tar, else the file's. */
static guint64 root_img_size(const char *dir)
{
    g_autofree char *root = g_build_filename(dir, "root.img", NULL);
    g_autofree char *part = g_strconcat(root, ".part.00", NULL);
    g_autofree char *tar = g_strconcat(root, ".tar", NULL);
    if (exists(part) || exists(tar)) {
        const char *argv[] = {"tar", "tvf", exists(part) ? part : tar, NULL};
        g_autofree char *out = NULL;
        if (!g_spawn_sync(NULL, (char **)argv, NULL,
                          G_SPAWN_SEARCH_PATH | G_SPAWN_STDERR_TO_DEV_NULL,
                          NULL, NULL, &out, NULL, NULL, NULL))
            qubes_args_exit_uncaught(
                "FileNotFoundError: [Errno 2] No such file or "
                "directory: 'tar'");
        g_auto(GStrv) f = g_strsplit_set(g_strstrip(out), " \t\n", -1);
        guint n = 0;
        for (guint i = 0; f[i]; i++)
            if (*f[i] && ++n == 3)
                return g_ascii_strtoull(f[i], NULL, 10);
        qubes_args_exit_uncaught("IndexError: list index out of range");
    }
    struct stat st;
    if (stat(root, &st) == 0)
        return (guint64)st.st_size;
    qubes_args_exit_uncaught(
        "qubesadmin.exc.QubesException: root.img not found");
}

/* The output of @argv (reading @in), as a pipe to read. */
static int pipe_from(const char *const *argv, int in, GPid *pid)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        qubes_args_exit_uncaught("OSError: pipe");
    g_autoptr(GError) err = NULL;
    if (!g_spawn_async_with_fds(NULL, (char **)argv, NULL,
                                G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD,
                                NULL, NULL, pid, in, fds[1], -1, &err)) {
        qubes_args_exit_uncaught(
            "FileNotFoundError: [Errno 2] No such file or directory: '%s'",
            argv[0]);
    }
    close(fds[1]);
    return fds[0];
}

static gboolean reaped_ok(GPid pid)
{
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static void import_fd(int fd, guint64 size)
{
    g_autofree char *msg = NULL, *type = NULL;
    if (!tool_volume_import(name, "root", fd, size, TRUE, FALSE, &msg, &type)) {
        qubes_args_exit_uncaught("qubesadmin.exc.%s: %s",
                                 type ? type : "QubesException", msg);
    }
}

/* import_root_img() */
static void import_root_img(const char *dir)
{
    guint64 size = root_img_size(dir);
    g_autofree char *root = g_build_filename(dir, "root.img", NULL);
    g_autofree char *part = g_strconcat(root, ".part.00", NULL);
    g_autofree char *tar = g_strconcat(root, ".tar", NULL);
    if (exists(part)) {
        g_autofree char *rpm = g_build_filename(dir, "template.rpm", NULL);
        if (!g_file_test(rpm, G_FILE_TEST_IS_SYMLINK))
            qubes_args_exit_uncaught(
                "qubesadmin.exc.QubesException: template.rpm "
                "symlink not found for multi-part image, using "
                "up-to-date `qvm-template install ...` should help");
        int pkg = open(rpm, O_RDONLY | O_CLOEXEC);
        if (pkg < 0)
            qubes_args_exit_uncaught("OSError: template.rpm");
        GPid p1, p2, p3;
        const char *a1[] = {"rpm2archive", "-", NULL};
        const char *a2[] = {
            "tar", "xzSOf", "-", "--wildcards", "*/root.img.part.*", NULL};
        const char *a3[] = {"tar", "xSOf", "-", NULL};
        int o1 = pipe_from(a1, pkg, &p1);
        close(pkg);
        int o2 = pipe_from(a2, o1, &p2);
        close(o1);
        int o3 = pipe_from(a3, o2, &p3);
        close(o2);
        import_fd(o3, size);
        close(o3);
        gboolean ok = reaped_ok(p1) & reaped_ok(p2) & reaped_ok(p3);
        if (!ok)
            qubes_args_exit_uncaught(
                "qubesadmin.exc.QubesException: root.img extraction failed");
        return;
    }
    if (exists(tar)) {
        GPid pid;
        const char *a[] = {"tar", "xSOf", tar, NULL};
        int o = pipe_from(a, -1, &pid);
        import_fd(o, size);
        close(o);
        if (!reaped_ok(pid))
            qubes_args_exit_uncaught(
                "qubesadmin.exc.QubesException: root.img extraction failed");
        return;
    }
    /* already the volume's own file (a file or file-reflink pool whose
     * folder DIR is) */
    g_autofree char *vinfo =
        call_or_die("admin.vm.volume.Info", name, "root", NULL);
    g_autoptr(GHashTable) v = qa_parse_kv(vinfo, "\n");
    g_autofree char *pinfo = call_or_die("admin.pool.Info", "dom0",
                                         g_hash_table_lookup(v, "pool"), NULL);
    g_autoptr(GHashTable) pool = qa_parse_kv(pinfo, "\n");
    const char *driver = g_hash_table_lookup(pool, "driver");
    const char *dir_path = g_hash_table_lookup(pool, "dir_path");
    if (dir_path && (g_strcmp0(driver, "file") == 0 ||
                     g_strcmp0(driver, "file-reflink") == 0)) {
        g_autofree char *vid =
            g_strconcat((char *)g_hash_table_lookup(v, "vid"), ".img", NULL);
        g_autofree char *own = g_build_filename(dir_path, vid, NULL);
        if (strcmp(own, root) == 0) {
            info("root.img already in place, do not re-import");
            return;
        }
    }
    int fd = open(root, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        g_autofree char *r = args_py_repr(root);
        qubes_args_exit_uncaught("OSError: [Errno %d] %s: %s", errno,
                                 g_strerror(errno), r);
    }
    import_fd(fd, size);
    close(fd);
}

/* ---- menus and template.conf ---- */

/* A menu list's lines, each without its end, joined by spaces; NULL
 * when the file is not there. */
static char *menu_list(const char *dir, const char *file)
{
    g_autofree char *path = g_build_filename(dir, file, NULL);
    g_autofree char *text = NULL;
    if (!g_file_get_contents(path, &text, NULL, NULL))
        return NULL;
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    guint n = g_strv_length(lines);
    if (n && !*lines[n - 1]) {
        g_free(lines[n - 1]);
        lines[n - 1] = NULL;
    }
    for (guint i = 0; lines[i]; i++)
        g_strchomp(lines[i]);
    return g_strjoinv(" ", lines);
}

/* import_appmenus() */
static void import_appmenus(const char *dir, gboolean skip_generate)
{
    g_autofree char *user = NULL;
    if (getuid() == 0) {
        struct group *g = getgrnam("qubes");
        if (!g) {
            warn("Default user not found, not importing appmenus: "
                 "\"getgrnam(): name not found: 'qubes'\"");
            return;
        }
        if (!g->gr_mem || !g->gr_mem[0])
            qubes_args_exit_uncaught("IndexError: list index out of range");
        user = g_strdup(g->gr_mem[0]);
    }
    static const struct {
        const char *file, *feature;
    } lists[] = {{"vm-whitelisted-appmenus.list", "default-menu-items"},
                 {"whitelisted-appmenus.list", "menu-items"},
                 {"netvm-whitelisted-appmenus.list", "netvm-menu-items"}};
    for (guint i = 0; i < G_N_ELEMENTS(lists); i++) {
        g_autofree char *items = menu_list(dir, lists[i].file);
        if (items) {
            set_feature(lists[i].feature, items);
        } else {
            g_autofree char *path = g_build_filename(dir, lists[i].file, NULL);
            warn("Cannot set %s, %s not found", lists[i].feature, path);
        }
    }
    g_autofree char *prog = g_find_program_in_path("qvm-appmenus");
    if (skip_generate || !prog)
        return; /* no desktop here: no menus to make */
    for (guint i = 0; i < 2; i++) {
        g_autofree char *path = g_build_filename(dir, lists[i].file, NULL);
        g_autofree char *opt =
            g_strdup_printf("--set-%swhitelist=%s", i ? "" : "default-", path);
        const char *argv[] = {"runuser",    "-u",           user, "--", "env",
                              "DISPLAY=:0", "qvm-appmenus", opt,  name, NULL};
        const char *const *run = user ? argv : argv + 6;
        int status = 0;
        if (!g_spawn_sync(NULL, (char **)run, NULL,
                          G_SPAWN_SEARCH_PATH | G_SPAWN_CHILD_INHERITS_STDIN,
                          NULL, NULL, NULL, NULL, &status, NULL) ||
            !g_spawn_check_wait_status(status, NULL)) {
            warn("Failed to set default application list: Command '%s' "
                 "returned non-zero exit status %d.",
                 "qvm-appmenus", WEXITSTATUS(status));
            return;
        }
    }
}

/* validate_ip(): four (or fewer) numbers 0-255 */
static gboolean valid_ip(const char *ip)
{
    g_auto(GStrv) parts = g_strsplit(ip, ".", 4);
    for (guint i = 0; parts[i]; i++) {
        gint64 v;
        if (!args_py_int(parts[i], &v) || v < 0 || v > 255)
            return FALSE;
    }
    return TRUE;
}

/* import_template_config() */
static void import_template_config(const char *path)
{
    g_autofree char *text = NULL;
    if (!g_file_get_contents(path, &text, NULL, NULL))
        qubes_args_exit_uncaught("OSError: template.conf");
    g_autoptr(GHashTable) conf =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    guint n = g_strv_length(lines);
    for (guint i = 0; i < n; i++) {
        if (i == n - 1 && !*lines[i])
            break; /* the end of the last line */
        char *eq = strchr(lines[i], '=');
        if (!eq)
            qubes_args_exit_uncaught(QUBES_ARGS_DICT_ERROR, i);
        g_hash_table_replace(conf, g_strndup(lines[i], (gsize)(eq - lines[i])),
                             g_strdup(eq + 1));
    }
    static const char *const flags[] = {
        "no-monitor-layout", "pci-e820-host", "linux-stubdom", "gui",
        "selinux",           "gui-emulated",  "qrexec",        NULL};
    for (const char *const *k = flags; *k; k++) {
        const char *v = g_hash_table_lookup(conf, *k);
        if (!v)
            continue;
        if (strcmp(v, "1") == 0)
            set_feature(*k, v);
        else
            warn("ignoring boolean config flags that are not '1'");
    }
    static const char *const nets[] = {"net.fake-ip", "net.fake-gateway",
                                       "net.fake-netmask", NULL};
    for (const char *const *k = nets; *k; k++) {
        const char *v = g_hash_table_lookup(conf, *k);
        if (!v)
            continue;
        if (valid_ip(v))
            set_feature(*k, v);
        else
            warn("ignoring invalid value for '%s'", *k);
    }
    const char *mode = g_hash_table_lookup(conf, "virt-mode");
    if (mode) {
        if (strcmp(mode, "pv") == 0 && args_bool(ns, "allow_pv"))
            set_prop("virt_mode", "pv");
        else if (strcmp(mode, "pv") == 0)
            warn("--allow-pv not set, ignoring request to change virt-mode");
        else if (strcmp(mode, "pvh") == 0 || strcmp(mode, "hvm") == 0)
            set_prop("virt_mode", mode);
        else
            warn("ignoring invalid value for virt-mode");
    }
    const char *kernel = g_hash_table_lookup(conf, "kernel");
    if (kernel) {
        if (!*kernel)
            set_prop("kernel", "");
        else
            warn("Currently only supports setting kernel to (none)");
    }
}

/* call_postinstall_service(): one start with no network, then a clean
 * shutdown (a kill past the shutdown timeout); qubes.PostInstall is not
 * run here (no qrexec). */
static void first_start(void)
{
    set_prop("netvm", "");
    set_feature("qrexec", "1");
    g_autoptr(GError) err = NULL;
    g_autofree char *r = qa_call("admin.vm.Start", name, NULL, NULL, &err);
    if (!r) {
        g_free(call_or_die("admin.vm.feature.Remove", name, "qrexec", NULL));
    } else {
        g_autoptr(GError) e2 = NULL;
        g_autofree char *s =
            qa_call("admin.vm.Shutdown", name, "wait", NULL, &e2);
        if (!s)
            g_free(call_or_die("admin.vm.Kill", name, NULL, NULL));
    }
    g_free(call_or_die("admin.vm.property.Reset", name, "netvm", NULL));
}

static int post_install(void)
{
    const char *arg_dir = args_str(ns, "dir");
    g_autofree char *dir = g_strdup(arg_dir);
    g_autofree char *local =
        g_strconcat("/var/lib/qubes/vm-templates/", name, NULL);
    g_autoptr(GError) err = NULL;
    g_autoptr(QaApp) app = qa_app_new(&err);
    if (!app)
        uncaught(err);
    gboolean created = FALSE, local_reinstall = FALSE;
    if (qa_app_domain(app, name)) {
        local_reinstall = strcmp(dir, local) == 0;
    } else {
        if (strcmp(dir, local) == 0) {
            /* the new template makes that folder: move it out of its way */
            g_autofree char *tmp =
                g_strconcat("/var/lib/qubes/vm-templates/tmp-", name, NULL);
            if (rename(dir, tmp) != 0) {
                qubes_args_exit_uncaught("OSError: [Errno %d] %s", errno,
                                         g_strerror(errno));
            }
            g_free(dir);
            dir = g_steal_pointer(&tmp);
        }
        const char *pool = args_str(ns, "pool");
        g_autofree char *payload =
            pool ? g_strdup_printf("name=%s label=black pool=%s", name, pool)
                 : g_strdup_printf("name=%s label=black", name);
        g_free(call_or_die(pool ? "admin.vm.CreateInPool.TemplateVM"
                                : "admin.vm.Create.TemplateVM",
                           "dom0", NULL, payload));
        created = TRUE;
    }
    info("Importing data");
    if (created) {
        /* a failed import removes the half-made template */
        pid_t child = fork();
        if (child == 0) {
            import_root_img(dir);
            _exit(0);
        }
        int status = 0;
        while (waitpid(child, &status, 0) < 0 && errno == EINTR)
            ;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            g_free(qa_call("admin.vm.Remove", name, NULL, NULL, NULL));
            return 1;
        }
    } else {
        import_root_img(dir);
        info("Clearing private volume");
        g_free(call_or_die("admin.vm.volume.Clear", name, "private", NULL));
    }
    set_prop("installed_by_rpm",
             args_bool(ns, "no_installed_by_rpm") ? "False" : "True");
    import_appmenus(dir, !args_bool(ns, "skip_start"));
    g_autofree char *conf = g_build_filename(dir, "template.conf", NULL);
    if (exists(conf))
        import_template_config(conf);
    if (!args_bool(ns, "skip_start"))
        first_start();
    if (!args_bool(ns, "keep_source")) {
        if (local_reinstall) {
            g_autofree char *pattern =
                g_build_filename(dir, "root.img.part.*", NULL);
            glob_t g = {0};
            if (glob(pattern, 0, NULL, &g) == 0)
                for (size_t i = 0; i < g.gl_pathc; i++)
                    unlink(g.gl_pathv[i]);
            globfree(&g);
        } else {
            const char *argv[] = {"rm", "-rf", "--", dir, NULL};
            g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL,
                         NULL, NULL, NULL, NULL, NULL);
        }
        if (getuid() == 0) {
            /* tell the storage the freed blocks */
            g_autofree char *parent = g_path_get_dirname(dir);
            const char *sync_argv[] = {"sync", "-f", parent, NULL};
            const char *trim_argv[] = {"fstrim", parent, NULL};
            g_spawn_sync(NULL, (char **)sync_argv, NULL,
                         G_SPAWN_SEARCH_PATH | G_SPAWN_CHILD_INHERITS_STDIN,
                         NULL, NULL, NULL, NULL, NULL, NULL);
            g_spawn_sync(NULL, (char **)trim_argv, NULL,
                         G_SPAWN_SEARCH_PATH | G_SPAWN_CHILD_INHERITS_STDIN,
                         NULL, NULL, NULL, NULL, NULL, NULL);
        }
    }
    return 0;
}

static int pre_remove(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(QaApp) app = qa_app_new(&err);
    if (!app)
        uncaught(err);
    if (!qa_app_domain(app, name))
        args_error(parser, "No Qube with this name exists");
    GPtrArray *all = qa_app_domains(app);
    gboolean used = FALSE;
    for (guint i = 0; i < all->len; i++) {
        QaVm *vm = all->pdata[i];
        if (g_strcmp0(qa_vm_prop_str(vm, "template"), name) != 0)
            continue;
        used = TRUE;
        qubes_args_log(ns, "qvm-template-postprocess", TRUE,
                       "ERROR! Qube \"%s\" uses this template", qa_vm_name(vm));
    }
    if (used) {
        qubes_args_log(ns, "qvm-template-postprocess", TRUE,
                       "WARNING! Do not use dnf to uninstall templates!");
        qubes_args_log(ns, "qvm-template-postprocess", FALSE,
                       "Info: Use qvm-template(1) or Qubes Template Manager "
                       "GUI to uninstall templates\n");
        return 1;
    }
    set_prop("installed_by_rpm", "False");
    g_free(call_or_die("admin.vm.Remove", name, NULL, NULL));
    return 0;
}

/* is_chroot(): / is not init's root */
static gboolean in_chroot(void)
{
    struct stat a, b;
    if (stat("/", &a) != 0 || stat("/proc/1/root/.", &b) != 0)
        return FALSE;
    return a.st_dev != b.st_dev || a.st_ino != b.st_ino;
}

int main(int argc, char **argv)
{
    parser = qubes_args_new("qvm-template-postprocess", 0,
                            "Postprocess template package", NULL,
                            ARGS_FORMAT_DEFAULT);
    args_add(parser, &(ArgsSpec){.names = "--really",
                                 .action = ARGS_STORE_TRUE,
                                 .deflt = "False",
                                 .deflt_type = ARGV_BOOL,
                                 .help = "Really perform the action, YOU "
                                         "SHOULD REALLY KNOW WHAT YOU ARE "
                                         "DOING"});
    args_add(parser, &(ArgsSpec){.names = "--skip-start",
                                 .action = ARGS_STORE_TRUE,
                                 .help = "Do not start the VM - do not "
                                         "retrieve menu entries etc."});
    args_add(parser, &(ArgsSpec){.names = "--keep-source",
                                 .action = ARGS_STORE_TRUE,
                                 .help = "Do not remove source data (*dir* "
                                         "directory) after import"});
    args_add(parser, &(ArgsSpec){.names = "--no-installed-by-rpm",
                                 .action = ARGS_STORE_TRUE,
                                 .help = "Do not set installed_by_rpm"});
    args_add(parser, &(ArgsSpec){.names = "--allow-pv",
                                 .action = ARGS_STORE_TRUE,
                                 .help = "Allow setting virt_mode to pv in "
                                         "configuration file."});
    args_add(parser, &(ArgsSpec){.names = "--pool",
                                 .help = "Specify pool to store created VMs "
                                         "in."});
    static const char *const actions[] = {"post-install", "pre-remove", NULL};
    args_add(parser, &(ArgsSpec){.names = "action",
                                 .choices = actions,
                                 .help = "Action to perform"});
    args_add(parser, &(ArgsSpec){.names = "name", .help = "Template name"});
    args_add(parser, &(ArgsSpec){.names = "dir", .help = "Template directory"});
    ns = args_parse(parser, argc, argv);
    if (in_chroot()) {
        fprintf(stderr, "Running in chroot, ignoring request. Import "
                        "template with:\n");
        for (int i = 0; i < argc; i++)
            fprintf(stderr, "%s%s", i ? " " : "", argv[i]);
        fprintf(stderr, "\n");
        return 0;
    }
    if (!args_bool(ns, "really"))
        args_error(parser, "Do not call this tool directly.");
    name = args_str(ns, "name");
    int rc = strcmp(args_str(ns, "action"), "post-install") == 0
                 ? post_install()
                 : pre_remove();
    fflush(stdout);
    args_namespace_free(ns);
    args_parser_free(parser);
    return rc;
}
