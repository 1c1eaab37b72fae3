/* tool.c: see tool.h. */
#include "tool.h"

#include "argparse.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

void tool_parse(int *argc, char ***argv, const GOptionEntry *entries,
                const char *usage, const char *summary, const char *description)
{
    g_autoptr(GOptionContext) ctx = g_option_context_new(usage);
    g_option_context_set_summary(ctx, summary);
    if (description)
        g_option_context_set_description(ctx, description);
    g_option_context_add_main_entries(ctx, entries, NULL);
    gboolean version = FALSE;
    GOptionEntry common[] = {
        {"version", 0, 0, G_OPTION_ARG_NONE, &version,
         "Print the version and exit", NULL},
        {NULL},
    };
    GOptionGroup *misc = g_option_group_new("misc", "Other options",
                                            "Show other options", NULL, NULL);
    g_option_group_add_entries(misc, common);
    g_option_context_add_group(ctx, misc);
    g_autoptr(GError) err = NULL;
    if (!g_option_context_parse(ctx, argc, argv, &err)) {
        /* freed by hand: exit() runs no scope's cleanup */
        char *prog = g_path_get_basename((*argv)[0]);
        fprintf(stderr, "%s: error: %s\nTry '%s --help'.\n", prog, err->message,
                prog);
        g_free(prog);
        g_clear_error(&err);
        exit(2);
    }
    if (version) {
        char *prog = g_path_get_basename((*argv)[0]);
        printf("%s (qubes-core-c) %s\n", prog, QUBES_VERSION);
        g_free(prog);
        exit(0);
    }
}

Table *table_new(guint columns, ...)
{
    Table *t = g_new0(Table, 1);
    t->columns = columns;
    t->cells = g_ptr_array_new_with_free_func(g_free);
    va_list ap;
    va_start(ap, columns);
    const char *h;
    while ((h = va_arg(ap, const char *)))
        g_ptr_array_add(t->cells, g_strdup(h));
    va_end(ap);
    return t;
}

void table_add(Table *t, ...)
{
    va_list ap;
    va_start(ap, t);
    const char *c;
    guint n = 0;
    while ((c = va_arg(ap, const char *))) {
        g_ptr_array_add(t->cells, g_strdup(c));
        n++;
    }
    va_end(ap);
    for (; n < t->columns; n++)
        g_ptr_array_add(t->cells, g_strdup(""));
}

void table_add_kv_lines(Table *t, const char *text,
                        const char *const *size_keys)
{
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    for (char **l = lines; *l && **l; l++) {
        char *eq = strchr(*l, '=');
        if (!eq)
            continue;
        *eq = '\0';
        if (size_keys && g_strv_contains(size_keys, *l)) {
            g_autofree char *h =
                tool_format_size(g_ascii_strtoull(eq + 1, NULL, 10));
            g_autofree char *both = g_strdup_printf("%s (%s)", eq + 1, h);
            table_add(t, *l, both, NULL);
        } else {
            table_add(t, *l, eq + 1, NULL);
        }
    }
}

/* The columns a terminal gives @s (wide characters two). */
static guint display_width(const char *s)
{
    guint w = 0;
    if (!g_utf8_validate(s, -1, NULL))
        return (guint)strlen(s);
    for (const char *p = s; *p; p = g_utf8_next_char(p)) {
        gunichar c = g_utf8_get_char(p);
        if (g_unichar_iszerowidth(c))
            continue;
        w += g_unichar_iswide(c) ? 2 : 1;
    }
    return w;
}

/* As util-linux's column -t (which the client's tables go through):
 * each column as wide as its widest cell, two spaces between, the last
 * not padded. */
static void print_from(Table *t, guint first)
{
    g_autofree guint *w = g_new0(guint, t->columns);
    for (guint i = first; i < t->cells->len; i++) {
        guint len = display_width(t->cells->pdata[i]);
        w[i % t->columns] = MAX(w[i % t->columns], len);
    }
    for (guint i = first; i < t->cells->len; i++) {
        guint col = i % t->columns;
        const char *cell = t->cells->pdata[i];
        if (col == t->columns - 1) {
            printf("%s\n", cell);
        } else {
            fputs(cell, stdout);
            for (guint k = display_width(cell); k < w[col] + 2; k++)
                putchar(' ');
        }
    }
}

int tool_usage_error(const char *prog, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: error: %s\n", prog, msg);
    return 2;
}

void table_print(Table *t)
{
    print_from(t, 0);
}

void table_print_body(Table *t)
{
    print_from(t, t->columns);
}

void table_free(Table *t)
{
    g_ptr_array_unref(t->cells);
    g_free(t);
}

gboolean tool_parse_size(const char *text, guint64 *out)
{
    char *end = NULL;
    if (!text || !g_ascii_isdigit(*text))
        return FALSE;
    double v = g_ascii_strtod(text, &end);
    static const struct {
        const char *suffix;
        guint64 mult;
    } units[] = {
        {"", 1},
        {"B", 1},
        {"K", 1ULL << 10},
        {"KiB", 1ULL << 10},
        {"KB", 1000},
        {"M", 1ULL << 20},
        {"MiB", 1ULL << 20},
        {"MB", 1000000},
        {"G", 1ULL << 30},
        {"GiB", 1ULL << 30},
        {"GB", 1000000000},
        {"T", 1ULL << 40},
        {"TiB", 1ULL << 40},
        {"TB", 1000000000000ULL},
    };
    for (guint i = 0; i < G_N_ELEMENTS(units); i++) {
        if (g_ascii_strcasecmp(end, units[i].suffix) == 0) {
            double r = v * (double)units[i].mult;
            if (r < 0 || r > 9.2e18)
                return FALSE;
            *out = (guint64)r;
            return TRUE;
        }
    }
    return FALSE;
}

char *tool_format_size(guint64 bytes)
{
    return g_format_size_full(bytes, G_FORMAT_SIZE_IEC_UNITS);
}

gboolean tool_confirm(const char *question)
{
    fprintf(stderr, "%s [y/N] ", question);
    fflush(stderr);
    char line[16];
    if (!fgets(line, sizeof line, stdin))
        return FALSE;
    return line[0] == 'y' || line[0] == 'Y';
}

gboolean tool_split_vm_volume(const char *spec, char **vm, char **volume)
{
    const char *colon = strchr(spec, ':');
    if (!colon || colon == spec || !colon[1])
        return FALSE;
    *vm = g_strndup(spec, (gsize)(colon - spec));
    *volume = g_strdup(colon + 1);
    return TRUE;
}

char *tool_prop_value(const char *answer, gboolean *is_default)
{
    if (is_default)
        *is_default = g_str_has_prefix(answer, "default=True");
    const char *sp = strchr(answer, ' ');
    sp = sp ? strchr(sp + 1, ' ') : NULL;
    return g_strdup(sp ? sp + 1 : "");
}

static void tool_prop_free(ToolProp *p)
{
    g_free(p->name);
    g_free(p->value);
    g_free(p);
}

GPtrArray *tool_get_all(const char *method, const char *dest, GError **error)
{
    g_autofree char *all = qa_call(method, dest, NULL, NULL, error);
    if (!all)
        return NULL;
    GPtrArray *props =
        g_ptr_array_new_with_free_func((GDestroyNotify)tool_prop_free);
    g_auto(GStrv) lines = g_strsplit(all, "\n", -1);
    for (char **l = lines; *l && **l; l++) {
        char *sp = strchr(*l, ' ');
        if (!sp)
            continue;
        *sp = '\0';
        ToolProp *p = g_new0(ToolProp, 1);
        p->name = g_strdup(*l);
        g_autofree char *v = tool_prop_value(sp + 1, &p->is_default);
        /* GetAll escapes backslashes and newlines. */
        p->value = g_strcompress(v);
        g_ptr_array_add(props, p);
    }
    return props;
}

const char *tool_error_message(const GError *err)
{
    const char *type = qa_error_type(err);
    if (type && g_str_has_prefix(err->message, type) &&
        g_str_has_prefix(err->message + strlen(type), ": "))
        return err->message + strlen(type) + 2;
    return err->message;
}

char *tool_exception_str(const GError *err)
{
    /* the client's exceptions that are KeyErrors too: str() is repr() */
    static const char *const key_errors[] = {
        "QubesVMNotFoundError",  "QubesFeatureNotFoundError",
        "QubesTagNotFoundError", "QubesLabelNotFoundError",
        "DeviceNotAssigned",     "DeviceAlreadyAttached",
        "DeviceAlreadyAssigned", NULL};
    const char *type = qa_error_type(err);
    if (type && g_strv_contains(key_errors, type))
        return args_py_repr(tool_error_message(err));
    return g_strdup(tool_error_message(err));
}

char *tool_getpass(const char *prompt)
{
    int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
    FILE *tty = fd >= 0 ? fdopen(fd, "r+") : NULL;
    FILE *in = tty ? tty : stdin, *out = tty ? tty : stderr;
    struct termios old, quiet;
    gboolean echo_off = tty && tcgetattr(fd, &old) == 0;
    fputs(prompt, out);
    fflush(out);
    if (echo_off) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(fd, TCSAFLUSH, &quiet);
    }
    char line[4096] = "";
    if (!fgets(line, sizeof line, in))
        line[0] = '\0';
    if (echo_off) {
        tcsetattr(fd, TCSAFLUSH, &old);
        fputc('\n', out);
    }
    if (tty)
        fclose(tty);
    else if (fd >= 0)
        close(fd);
    line[strcspn(line, "\n")] = '\0';
    char *r = g_strdup(line);
    memset(line, 0, sizeof line);
    return r;
}

/* The first line of @path ("-": standard input), its end stripped as
 * Python's rstrip() strips. */
char *tool_read_passphrase_file(const char *path, GError **error)
{
    char line[4096] = "";
    if (strcmp(path, "-") == 0) {
        if (!fgets(line, sizeof line, stdin))
            line[0] = '\0';
    } else {
        FILE *f = fopen(path, "r");
        if (!f) {
            g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errno),
                        "[Errno %d] %s: '%s'", errno, g_strerror(errno), path);
            return NULL;
        }
        if (!fgets(line, sizeof line, f))
            line[0] = '\0';
        fclose(f);
    }
    return g_strchomp(g_strdup(line));
}

/* The volume import service program (admin.vm.volume.Import or
 * ImportWithSize): $QUBES_RPC_DIR, else beside this program, else where
 * it is installed. */
static char *find_service(const char *name)
{
    const char *env = g_getenv("QUBES_RPC_DIR");
    if (env && *env)
        return g_build_filename(env, name, NULL);
    g_autofree char *self = g_file_read_link("/proc/self/exe", NULL);
    if (self) {
        g_autofree char *dir = g_path_get_dirname(self);
        char *beside = g_build_filename(dir, name, NULL);
        if (g_file_test(beside, G_FILE_TEST_IS_EXECUTABLE))
            return beside;
        g_free(beside);
    }
    return g_build_filename(QUBES_RPC_INSTALL_DIR, name, NULL);
}

static void progress(guint64 done, guint64 total)
{
    int pct = total ? (int)(done * 100 / total) : 100;
    int bar = pct / 4;
    fprintf(stderr,
            "\r[%.*s%*s] %3d%% %" G_GUINT64_FORMAT "/%" G_GUINT64_FORMAT " MiB",
            bar, "#########################", 25 - bar, "", pct, done >> 20,
            total >> 20);
    fflush(stderr);
}

gboolean tool_volume_import(const char *vm, const char *vol, int in,
                            guint64 size, gboolean have_size,
                            gboolean show_progress, char **message, char **type)
{
    *message = g_strdup("");
    if (type)
        *type = NULL;
    g_autofree char *prog =
        find_service(have_size ? "admin.vm.volume.ImportWithSize"
                               : "admin.vm.volume.Import");
    int pipefd[2], outfd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0)
        return FALSE;
    if (pipe2(outfd, O_CLOEXEC) != 0) {
        close(pipefd[0]);
        close(pipefd[1]);
        return FALSE;
    }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pipefd[0], STDIN_FILENO);
        dup2(outfd[1], STDOUT_FILENO);
        g_setenv("QREXEC_REQUESTED_TARGET", vm, TRUE);
        if (!g_getenv("QREXEC_REMOTE_DOMAIN"))
            g_setenv("QREXEC_REMOTE_DOMAIN", "dom0", TRUE);
        execl(prog, prog, vol, (char *)NULL);
        fprintf(stderr, "cannot run %s: %s\n", prog, g_strerror(errno));
        _exit(127);
    }
    close(outfd[1]);
    close(pipefd[0]);
    FILE *to = fdopen(pipefd[1], "w");
    if (have_size)
        fprintf(to, "%" G_GUINT64_FORMAT "\n", size);
    g_autofree char *buf = g_malloc(1 << 20);
    guint64 done = 0;
    for (;;) {
        ssize_t n = read(in, buf, 1 << 20);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (fwrite(buf, 1, (size_t)n, to) != (size_t)n)
            break; /* the service stopped reading: it says why */
        done += (guint64)n;
        if (show_progress)
            progress(done, have_size ? size : done);
    }
    fclose(to);
    if (show_progress)
        fputc('\n', stderr);
    /* The service answers as qubesd does: "0\0", or an exception. */
    GByteArray *answer = g_byte_array_new();
    for (;;) {
        ssize_t n = read(outfd[0], buf, 1 << 20);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        g_byte_array_append(answer, (guint8 *)buf, (guint)n);
    }
    close(outfd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    gboolean ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
                  answer->len >= 2 && answer->data[0] == '0';
    if (!ok && answer->len > 2 && answer->data[0] == '2') {
        g_byte_array_append(answer, (const guint8 *)"", 1);
        const char *p = (const char *)answer->data + 2;
        const char *end = (const char *)answer->data + answer->len;
        if (type)
            *type = g_strdup(p);
        p += strlen(p) + 1; /* type */
        if (p < end)
            p += strlen(p) + 1; /* traceback */
        if (p < end) {
            g_free(*message);
            *message = g_strdup(p);
        }
    }
    g_byte_array_unref(answer);
    return ok;
}

char *tool_input(const char *prompt)
{
    fputs(prompt, stdout);
    fflush(stdout);
    char line[4096];
    if (!fgets(line, sizeof line, stdin))
        return NULL;
    line[strcspn(line, "\n")] = '\0';
    return g_strdup(line);
}

void tool_pairs_set(GPtrArray *pairs, const char *key, const char *value)
{
    for (guint i = 0; i + 1 < pairs->len; i += 2)
        if (strcmp(pairs->pdata[i], key) == 0) {
            g_free(pairs->pdata[i + 1]);
            pairs->pdata[i + 1] = g_strdup(value);
            return;
        }
    g_ptr_array_add(pairs, g_strdup(key));
    g_ptr_array_add(pairs, g_strdup(value));
}

gint tool_str_cmp(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}
