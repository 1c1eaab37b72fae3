/* qvm-ls: list qubes and their properties, as the Qubes client's qvm-ls
 * does: its options (argparse.h, qubes-args.h), formats, columns,
 * filters, sorting, network tree, raw output, spinner and table.
 *
 * Calls: one admin.vm.List, then one admin.vm.property.GetAll for each
 * qube whose properties a column or filter reads (qubes-app.h); features,
 * tags, volumes and memory only for the columns and filters that show
 * them. */
#include "argparse.h"
#include "qubes-app.h"
#include "qubes-args.h"
#include "qubesadmin.h"
#include "tool.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* ---- columns ---- */

typedef char *(*CellFunc)(QaApp *app, QaVm *vm);

typedef struct {
    const char *head;
    CellFunc func;   /* NULL: a property column */
    const char *doc; /* --help-columns */
    char *prop;      /* a property column's property */
} Column;

static char *dup_or_null(const char *s)
{
    return s ? g_strdup(s) : NULL;
}

static char *col_state(QaApp *app, QaVm *vm)
{
    return dup_or_null(qa_vm_state(vm));
}

static char *col_class(QaApp *app, QaVm *vm)
{
    return dup_or_null(qa_vm_klass(vm));
}

static char *col_gateway(QaApp *app, QaVm *vm)
{
    const char *net = qa_vm_prop_str(vm, "netvm");
    QaVm *n = net ? qa_app_domain(app, net) : NULL;
    return n ? dup_or_null(qa_vm_prop_str(n, "gateway")) : NULL;
}

static gboolean is_running(QaVm *vm)
{
    const char *s = qa_vm_state(vm);
    return g_strcmp0(s, "Halted") != 0 && g_strcmp0(s, "NA") != 0;
}

/* Python's floor division of a non-negative count */
static char *col_memory(QaApp *app, QaVm *vm)
{
    if (!is_running(vm))
        return NULL;
    gint64 m = qa_vm_mem(vm);
    return m < 0 ? NULL : g_strdup_printf("%" G_GINT64_FORMAT, m / 1024);
}

static guint64 vol_num(QaVm *vm, const char *volume, const char *key)
{
    GHashTable *info = qa_vm_volume_info(vm, volume);
    const char *v = info ? g_hash_table_lookup(info, key) : NULL;
    return v ? g_ascii_strtoull(v, NULL, 10) : 0;
}

static char *col_disk(QaApp *app, QaVm *vm)
{
    guint64 sum = 0;
    GPtrArray *vols = qa_vm_volumes(vm);
    for (guint i = 0; i < vols->len; i++)
        sum += vol_num(vm, vols->pdata[i], "usage");
    return g_strdup_printf("%" G_GUINT64_FORMAT, sum / 1024 / 1024);
}

static char *mib(QaVm *vm, const char *volume, const char *key)
{
    return g_strdup_printf("%" G_GUINT64_FORMAT,
                           vol_num(vm, volume, key) / 1024 / 1024);
}

static char *pool(QaVm *vm, const char *volume)
{
    GHashTable *info = qa_vm_volume_info(vm, volume);
    if (!info)
        return g_strdup("-");
    return dup_or_null(g_hash_table_lookup(info, "pool"));
}

static char *used(QaVm *vm, const char *volume)
{
    guint64 size = vol_num(vm, volume, "size") / 1024 / 1024;
    if (!size)
        return g_strdup("0");
    guint64 usage = vol_num(vm, volume, "usage") / 1024 / 1024;
    return g_strdup_printf("%" G_GUINT64_FORMAT "%%", usage * 100 / size);
}

static char *col_priv_curr(QaApp *app, QaVm *vm)
{
    return mib(vm, "private", "usage");
}
static char *col_priv_max(QaApp *app, QaVm *vm)
{
    return mib(vm, "private", "size");
}
static char *col_priv_pool(QaApp *app, QaVm *vm)
{
    return pool(vm, "private");
}
static char *col_priv_used(QaApp *app, QaVm *vm)
{
    return used(vm, "private");
}
static char *col_root_curr(QaApp *app, QaVm *vm)
{
    return mib(vm, "root", "usage");
}
static char *col_root_max(QaApp *app, QaVm *vm)
{
    return mib(vm, "root", "size");
}
static char *col_root_pool(QaApp *app, QaVm *vm)
{
    return pool(vm, "root");
}
static char *col_root_used(QaApp *app, QaVm *vm)
{
    return used(vm, "root");
}

static char *col_flags(QaApp *app, QaVm *vm)
{
    static const struct {
        const char *klass;
        char code;
    } types[] = {{"AdminVM", '0'},
                 {"TemplateVM", 't'},
                 {"AppVM", 'a'},
                 {"StandaloneVM", 's'},
                 {"DispVM", 'd'}};
    char t = '-';
    for (guint i = 0; i < G_N_ELEMENTS(types); i++)
        if (g_strcmp0(qa_vm_klass(vm), types[i].klass) == 0)
            t = types[i].code;
    if (t != '0' && t != '-') {
        const char *mode = qa_vm_prop_str(vm, "virt_mode");
        if (g_strcmp0(mode ? mode : "pv", "hvm") == 0)
            t = g_ascii_toupper(t);
    }
    g_autofree char *state =
        g_ascii_strdown(qa_vm_state(vm) ? qa_vm_state(vm) : "", -1);
    char p = '-';
    static const char *const states[] = {"running",   "transient", "paused",
                                         "suspended", "halting",   "dying",
                                         "crashed"};
    if (strcmp(state, "unknown") == 0)
        p = '?';
    for (guint i = 0; i < G_N_ELEMENTS(states); i++)
        if (strcmp(state, states[i]) == 0)
            p = state[0];
    static const struct {
        const char *prop;
        char letter;
    } bools[] = {{"updateable", 'U'},
                 {"provides_network", 'N'},
                 {"installed_by_rpm", 'R'},
                 {"internal", 'i'},
                 {"debug", 'D'},
                 {"autostart", 'A'}};
    GString *f = g_string_new(NULL);
    g_string_append_c(f, t);
    g_string_append_c(f, p);
    for (guint i = 0; i < G_N_ELEMENTS(bools); i++)
        g_string_append_c(
            f, qa_vm_prop_true(vm, bools[i].prop) ? bools[i].letter : '-');
    return g_string_free(f, FALSE);
}

static const Column builtin[] = {
    {"STATE", col_state, "Current power state."},
    {"CLASS", col_class, "Class of the qube."},
    {"GATEWAY", col_gateway, "Network gateway."},
    {"MEMORY", col_memory, "Memory currently used by VM"},
    {"DISK", col_disk, "Total disk utilisation."},
    {"PRIV-CURR", col_priv_curr,
     "Disk utilisation by private image (/home, /usr/local)."},
    {"PRIV-MAX", col_priv_max, "Maximum available space for private image."},
    {"PRIV-POOL", col_priv_pool, "Storage pool of private volume."},
    {"PRIV-USED", col_priv_used,
     "Disk utilisation by private image as a percentage of available "
     "space."},
    {"ROOT-CURR", col_root_curr,
     "Disk utilisation by root image (/usr, /lib, /etc, ...)."},
    {"ROOT-MAX", col_root_max, "Maximum available space for root image."},
    {"ROOT-POOL", col_root_pool, "Storage pool of root volume."},
    {"ROOT-USED", col_root_used,
     "Disk utilisation by root image as a percentage of available space."},
    {"FLAGS", col_flags,
     "Various flags: type, power state, updateable, provides_network, "
     "installed_by_rpm, internal, debug, autostart."},
};

static const char *const sort_numeric[] = {
    "MEMORY",           "DISK",      "PRIV-CURR",
    "PRIV-MAX",         "ROOT-CURR", "XID",
    "ROOT-MAX",         "MAXMEM",    "QREXEC-TIMEOUT",
    "SHUTDOWN-TIMEOUT", "VCPUS",     "PRIV-USED",
    "ROOT-USED",        NULL};

static const struct {
    const char *name;
    const char *columns;
} formats[] = {
    {"simple", "name,state,class,label,template,netvm"},
    {"network", "name,state,netvm,ip,ipback,gateway"},
    {"kernel", "name,state,class,template,kernel,kernelopts"},
    {"full", "name,state,class,label,qid,xid,uuid"},
    {"prefs", "name,label,template,netvm,vcpus,initialmem,maxmem,virt_mode"},
    {"disk", "name,state,disk,priv-curr,priv-max,priv-used,root-curr,"
             "root-max,root-used"},
};

/* The registry of columns by head (Column.columns): the built-in ones,
 * then a property column for each other name asked for, which replaces
 * a built-in one of the same head, as the client's registry does. */
typedef struct {
    GPtrArray *cols; /* Column* (owned) */
} Registry;

static void column_free(Column *c)
{
    g_free(c->prop);
    g_free(c);
}

static Registry *registry_new(void)
{
    Registry *r = g_new0(Registry, 1);
    r->cols = g_ptr_array_new_with_free_func((GDestroyNotify)column_free);
    for (guint i = 0; i < G_N_ELEMENTS(builtin); i++) {
        Column *c = g_new0(Column, 1);
        *c = builtin[i];
        g_ptr_array_add(r->cols, c);
    }
    return r;
}

static Column *registry_get(Registry *r, const char *head)
{
    for (guint i = 0; i < r->cols->len; i++) {
        Column *c = r->cols->pdata[i];
        if (strcmp(c->head, head) == 0)
            return c;
    }
    return NULL;
}

static void registry_add_property(Registry *r, const char *name)
{
    g_autofree char *head = g_ascii_strup(name, -1);
    for (char *p = head; *p; p++)
        if (*p == '_')
            *p = '-';
    Column *c = registry_get(r, head);
    if (!c) {
        c = g_new0(Column, 1);
        g_ptr_array_add(r->cols, c);
    }
    g_free(c->prop);
    c->prop = g_strdup(name);
    c->func = NULL;
    c->doc = NULL;
    c->head = g_intern_string(head);
}

static void registry_free(Registry *r)
{
    g_ptr_array_unref(r->cols);
    g_free(r);
}

/* A new array of the same pointers, freeing none of them (a copy made
 * with g_ptr_array_copy() would free them with the original's
 * function). */
static GPtrArray *borrowed_copy(GPtrArray *a)
{
    GPtrArray *c = g_ptr_array_sized_new(a->len);
    for (guint i = 0; i < a->len; i++)
        g_ptr_array_add(c, a->pdata[i]);
    return c;
}

static gint head_cmp(gconstpointer a, gconstpointer b)
{
    const Column *x = *(Column *const *)a, *y = *(Column *const *)b;
    return strcmp(x->head, y->head);
}

/* ---- the spinner (qubesadmin.spinner's Enterprise Edition on
 * stderr: dots when stderr is not a terminal) ---- */

typedef struct {
    gboolean on, tty;
    guint next;
    gsize hidelen;
} Spinner;

static const char enterprise[] = "-\\|/-\\|/-\\|/-\\|/-._.-^-._.-^";

static char spin_char(Spinner *s)
{
    if (!s->tty)
        return '.';
    char c = enterprise[s->next % (sizeof enterprise - 1)];
    s->next++;
    return c;
}

static void spinner_show(Spinner *s, const char *prompt)
{
    if (!s->on)
        return;
    s->hidelen = g_utf8_strlen(prompt, -1) + 2;
    fprintf(stderr, "%s %c", prompt, spin_char(s));
    fflush(stderr);
}

static void spinner_update(Spinner *s)
{
    if (!s->on)
        return;
    if (s->tty)
        fprintf(stderr, "\b%c", spin_char(s));
    else
        fputc('.', stderr);
    fflush(stderr);
}

static void spinner_hide(Spinner *s)
{
    if (!s->on)
        return;
    if (s->tty)
        fputs("\r\033[K", stderr);
    else
        fputc('\n', stderr);
    fflush(stderr);
}

/* ---- cells and the table ---- */

static char *cell(Column *c, QaApp *app, QaVm *vm, int insertion)
{
    char *v = NULL;
    if (c->func) {
        v = c->func(app, vm);
    } else if (strcmp(c->prop, "name") == 0) {
        v = g_strdup(qa_vm_name(vm));
    } else if (strcmp(c->prop, "klass") == 0) {
        v = g_strdup(qa_vm_klass(vm));
    } else {
        v = dup_or_null(qa_vm_prop_str(vm, c->prop));
    }
    if (!v || !*v) {
        g_free(v);
        v = g_strdup("-");
    }
    if (insertion > 0 && strcmp(c->head, "NAME") == 0) {
        GString *s = g_string_new(NULL);
        for (int i = 0; i < insertion - 1; i++)
            g_string_append(s, "  ");
        g_string_append_printf(s, "└─%s", v);
        g_free(v);
        v = g_string_free(s, FALSE);
    }
    return v;
}

typedef struct {
    GPtrArray *cells; /* char* */
} Row;

static void row_free(Row *r)
{
    g_ptr_array_unref(r->cells);
    g_free(r);
}

static Row *get_row(GPtrArray *cols, QaApp *app, QaVm *vm, int insertion,
                    Spinner *sp)
{
    Row *r = g_new0(Row, 1);
    r->cells = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i < cols->len; i++) {
        g_ptr_array_add(r->cells, cell(cols->pdata[i], app, vm, insertion));
        spinner_update(sp);
    }
    return r;
}

static gboolean in_list(GPtrArray *l, QaVm *vm)
{
    for (guint i = 0; i < l->len; i++)
        if (l->pdata[i] == vm)
            return TRUE;
    return FALSE;
}

static gboolean provides_network(QaVm *vm)
{
    return qa_vm_prop_true(vm, "provides_network");
}

static void tree_children(QaApp *app, GPtrArray *domains, QaVm *parent,
                          int level, GPtrArray *out_vms, GArray *out_levels)
{
    g_autoptr(GPtrArray) kids = qa_vm_connected(app, parent);
    for (guint i = 0; i < kids->len; i++) {
        QaVm *c = kids->pdata[i];
        if (!in_list(domains, c))
            continue;
        g_ptr_array_add(out_vms, c);
        g_array_append_val(out_levels, level);
        if (provides_network(c))
            tree_children(app, domains, c, level + 1, out_vms, out_levels);
    }
}

static gint vm_cmp(gconstpointer a, gconstpointer b)
{
    return strcmp(qa_vm_name(*(QaVm *const *)a), qa_vm_name(*(QaVm *const *)b));
}

/* Table.sort_to_tree() */
static void sort_to_tree(QaApp *app, GPtrArray *domains, GPtrArray *vms,
                         GArray *levels)
{
    g_autoptr(GPtrArray) sorted = borrowed_copy(domains);
    g_ptr_array_sort(sorted, vm_cmp);
    int zero = 0;
    for (guint i = 0; i < sorted->len; i++) {
        QaVm *d = sorted->pdata[i];
        const QaProp *net = qa_vm_prop(d, "netvm");
        if (net->kind == QA_PROP_MISSING ||
            (net->kind == QA_PROP_NONE && !provides_network(d))) {
            g_ptr_array_add(vms, d);
            g_array_append_val(levels, zero);
            g_ptr_array_remove(domains, d);
        }
    }
    g_ptr_array_unref(sorted);
    sorted = borrowed_copy(domains);
    g_ptr_array_sort(sorted, vm_cmp);
    for (guint i = 0; i < sorted->len; i++) {
        QaVm *d = sorted->pdata[i];
        const QaProp *net = qa_vm_prop(d, "netvm");
        if (net->kind == QA_PROP_NONE && provides_network(d)) {
            g_ptr_array_add(vms, d);
            g_array_append_val(levels, zero);
            g_ptr_array_remove(domains, d);
            tree_children(app, domains, d, 1, vms, levels);
        }
    }
}

/* Python's int() of a cell for the numeric sorts, 0 when it is none */
static gint64 numeric(const char *s)
{
    g_autofree char *t = g_strdup(s);
    size_t n = strlen(t);
    if (n && t[n - 1] == '%')
        t[n - 1] = '\0';
    g_strstrip(t);
    const char *p = t;
    if (*p == '+' || *p == '-')
        p++;
    if (!*p)
        return 0;
    for (const char *c = p; *c; c++)
        if (!g_ascii_isdigit(*c) && *c != '_')
            return 0;
    return g_ascii_strtoll(t, NULL, 10);
}

typedef struct {
    guint col;
    gboolean numeric, ignore_case, reverse;
} SortBy;

static int compare_rows(const Row *a, const Row *b, const SortBy *s)
{
    const char *x = a->cells->pdata[s->col], *y = b->cells->pdata[s->col];
    int c;
    if (s->numeric) {
        gint64 u = numeric(x), v = numeric(y);
        c = u < v ? -1 : u > v ? 1 : 0;
    } else if (s->ignore_case) {
        g_autofree char *u = g_utf8_strup(x, -1), *v = g_utf8_strup(y, -1);
        c = strcmp(u, v);
    } else {
        c = strcmp(x, y);
    }
    return s->reverse ? -c : c;
}

/* a stable sort (Python's sorted, reverse keeping equal rows in order) */
static void sort_rows(GPtrArray *rows, const SortBy *s)
{
    for (guint i = 1; i < rows->len; i++) {
        Row *r = rows->pdata[i];
        guint j = i;
        while (j > 0 && compare_rows(rows->pdata[j - 1], r, s) > 0) {
            rows->pdata[j] = rows->pdata[j - 1];
            j--;
        }
        rows->pdata[j] = r;
    }
}

static void print_table(GPtrArray *cols, GPtrArray *rows)
{
    g_autoptr(Table) t = table_new(cols->len, NULL);
    for (guint i = 0; i < cols->len; i++)
        g_ptr_array_add(t->cells, g_strdup(((Column *)cols->pdata[i])->head));
    for (guint r = 0; r < rows->len; r++) {
        Row *row = rows->pdata[r];
        for (guint i = 0; i < row->cells->len; i++)
            g_ptr_array_add(t->cells, g_strdup(row->cells->pdata[i]));
    }
    table_print(t);
}

/* ---- the help actions ---- */

static void help_columns(ArgsParser *p, ArgsNamespace *ns, const ArgsAction *a,
                         GPtrArray *values, const char *opt, gpointer data)
{
    Registry *r = data;
    g_autoptr(GPtrArray) cols = borrowed_copy(r->cols);
    g_ptr_array_sort(cols, head_cmp);
    gsize width = 0;
    for (guint i = 0; i < cols->len; i++)
        width = MAX(width, strlen(((Column *)cols->pdata[i])->head));
    g_autofree char *sub = g_strnfill(width + 6, ' ');
    GString *o = g_string_new("Available columns:\n");
    for (guint i = 0; i < cols->len; i++) {
        Column *c = cols->pdata[i];
        g_autofree char *line = g_strdup_printf("%-*s  %s", (int)width, c->head,
                                                c->doc ? c->doc : "");
        g_autofree char *filled = args_textfill(line, 80, "  ", sub, TRUE);
        g_string_append_printf(o, "%s%s", i ? "\n" : "", filled);
    }
    g_string_append(o, "\n\nAdditionally any VM property may be used as a "
                       "column, see qvm-prefs --help-properties for "
                       "available values\n\n");
    fputs(o->str, stdout);
    g_string_free(o, TRUE);
    args_exit(0, NULL);
}

static void help_formats(ArgsParser *p, ArgsNamespace *ns, const ArgsAction *a,
                         GPtrArray *values, const char *opt, gpointer data)
{
    gsize width = 0;
    for (guint i = 0; i < G_N_ELEMENTS(formats); i++)
        width = MAX(width, strlen(formats[i].name));
    g_autoptr(GPtrArray) names = g_ptr_array_new();
    for (guint i = 0; i < G_N_ELEMENTS(formats); i++)
        g_ptr_array_add(names, (gpointer)formats[i].name);
    g_ptr_array_sort(names, tool_str_cmp);
    printf("Available formats:\n");
    for (guint i = 0; i < names->len; i++)
        for (guint k = 0; k < G_N_ELEMENTS(formats); k++)
            if (names->pdata[i] == formats[k].name) {
                g_autofree char *up = g_ascii_strup(formats[k].columns, -1);
                printf("  %-*s  %s\n", (int)width, formats[k].name, up);
            }
    printf("\n");
    args_exit(0, NULL);
}

static char *epilog(Registry *r)
{
    g_autoptr(GPtrArray) names = g_ptr_array_new();
    for (guint i = 0; i < G_N_ELEMENTS(formats); i++)
        g_ptr_array_add(names, (gpointer)formats[i].name);
    g_ptr_array_sort(names, tool_str_cmp);
    g_ptr_array_add(names, NULL);
    g_autofree char *fj = g_strjoinv(", ", (char **)names->pdata);
    g_autoptr(GPtrArray) heads = g_ptr_array_new();
    for (guint i = 0; i < r->cols->len; i++)
        g_ptr_array_add(heads, (gpointer)((Column *)r->cols->pdata[i])->head);
    g_ptr_array_sort(heads, tool_str_cmp);
    g_ptr_array_add(heads, NULL);
    g_autofree char *cj = g_strjoinv(", ", (char **)heads->pdata);
    g_autofree char *ff = args_textfill(fj, 80, "  ", "  ", FALSE);
    g_autofree char *cf = args_textfill(cj, 80, "  ", "  ", FALSE);
    return g_strdup_printf("available formats (see --help-formats):\n%s\n\n"
                           "available columns (see --help-columns):\n%s",
                           ff, cf);
}

/* ---- the parser ---- */

static const char *const format_names[] = {
    "simple", "network", "kernel", "full", "prefs", "disk", NULL};
static const char *const yn[] = {"y", "yes", "n", "no", NULL};

static ArgsParser *make_parser(Registry *reg)
{
    g_autofree char *ep = epilog(reg);
    ArgsParser *p = qubes_args_new("qvm-ls", ARGS_ZERO_OR_MORE,
                                   "List Qubes domains and their parameters.",
                                   ep, ARGS_FORMAT_RAW_TEXT);
    int fmt = args_add_section(p, "formatting options", NULL);
    int fmt_x = args_add_mutex(p, fmt, FALSE);
    args_add_in(p, 0, fmt_x,
                &(ArgsSpec){.names = "--format -o",
                            .metavar = "FORMAT",
                            .choices = format_names,
                            .deflt = "simple",
                            .help = "preset format"});
    args_add_in(p, 0, fmt_x,
                &(ArgsSpec){.names = "--fields -O",
                            .metavar = "FIELD,...",
                            .help = "user specified format (see available "
                                    "columns below)"});
    args_add_in(p, fmt, 0,
                &(ArgsSpec){.names = "--tree -t",
                            .action = ARGS_STORE_CONST,
                            .konst = "tree",
                            .help = "sort domain list as network tree"});
    args_add_in(p, fmt, 0,
                &(ArgsSpec){.names = "--raw-data",
                            .action = ARGS_STORE_TRUE,
                            .help = "Display specify data of specified VMs. "
                                    "Intended for bash-parsing."});
    args_add_in(p, fmt, 0,
                &(ArgsSpec){.names = "--raw-list",
                            .action = ARGS_STORE_TRUE,
                            .help = "Same as --raw-data --fields=name"});
    static const struct {
        const char *names, *konst, *help;
    } shortcuts[] = {
        {"--disk -d", "disk", "Same as --format=disk"},
        {"--network -n", "network", "Same as --format=network"},
        {"--kernel -k", "kernel", "Same as --format=kernel"},
    };
    for (guint i = 0; i < G_N_ELEMENTS(shortcuts); i++)
        args_add_in(p, 0, fmt_x,
                    &(ArgsSpec){.names = shortcuts[i].names,
                                .action = ARGS_STORE_CONST,
                                .dest = "format",
                                .konst = shortcuts[i].konst,
                                .help = shortcuts[i].help});
    args_add_in(p, fmt, 0,
                &(ArgsSpec){.names = "--help-formats",
                            .action = ARGS_CALLBACK,
                            .nargs = ARGS_NARGS_ZERO,
                            .dest = ARGS_SUPPRESS,
                            .deflt = ARGS_SUPPRESS,
                            .help = "list all available formats with their "
                                    "definitions and exit",
                            .callback = help_formats});
    args_add_in(p, fmt, 0,
                &(ArgsSpec){.names = "--help-columns",
                            .action = ARGS_CALLBACK,
                            .nargs = ARGS_NARGS_ZERO,
                            .dest = ARGS_SUPPRESS,
                            .deflt = ARGS_SUPPRESS,
                            .help = "list all available columns with short "
                                    "descriptions and exit",
                            .callback = help_columns,
                            .callback_data = reg});
    int filt = args_add_section(p, "filtering options", NULL);
    args_add_in(p, filt, 0,
                &(ArgsSpec){.names = "--class",
                            .nargs = ARGS_ONE_OR_MORE,
                            .metavar = "CLASS",
                            .dest = "klass",
                            .help = "show only qubes of specific class(es)"});
    args_add_in(p, filt, 0,
                &(ArgsSpec){.names = "--label",
                            .nargs = ARGS_ONE_OR_MORE,
                            .metavar = "LABEL",
                            .help = "show only qubes with specific label(s)"});
    args_add_in(p, filt, 0,
                &(ArgsSpec){.names = "--tags",
                            .nargs = ARGS_ONE_OR_MORE,
                            .metavar = "TAG",
                            .help = "show only qubes having specific tag(s)"});
    args_add_in(p, filt, 0,
                &(ArgsSpec){.names = "--exclude-tags",
                            .nargs = ARGS_ONE_OR_MORE,
                            .metavar = "TAG",
                            .help = "exclude qubes having specific tag(s)"});
    static const char *const states[] = {"running", "paused", "halted"};
    for (guint i = 0; i < G_N_ELEMENTS(states); i++) {
        g_autofree char *name = g_strdup_printf("--%s", states[i]);
        g_autofree char *help = g_strdup_printf("show %s VMs", states[i]);
        args_add_in(p, filt, 0,
                    &(ArgsSpec){.names = name,
                                .action = ARGS_STORE_TRUE,
                                .help = help});
    }
    args_add_in(p, filt, 0,
                &(ArgsSpec){.names = "--template-source",
                            .nargs = ARGS_ONE_OR_MORE,
                            .metavar = "TEMPLATE",
                            .help = "filter results to the qubes based on the "
                                    "TEMPLATE. \"\" means None"});
    args_add_in(p, filt, 0,
                &(ArgsSpec){.names = "--netvm-is",
                            .nargs = ARGS_ONE_OR_MORE,
                            .metavar = "NETVM",
                            .help = "filter results to the qubes connecting "
                                    "via NETVM"});
    args_add_in(p, filt, 0,
                &(ArgsSpec){.names = "--internal",
                            .metavar = "<y|n>",
                            .deflt = "both",
                            .choices = yn,
                            .help = "show only internal qubes or option to "
                                    "hide them"});
    args_add_in(p, filt, 0,
                &(ArgsSpec){.names = "--servicevm",
                            .metavar = "<y|n>",
                            .deflt = "both",
                            .choices = yn,
                            .help = "show only ServiceVMs or option to hide "
                                    "them"});
    args_add_in(p, filt, 0,
                &(ArgsSpec){.names = "--pending-update",
                            .action = ARGS_STORE_TRUE,
                            .help = "filter results to qubes pending for "
                                    "update"});
    args_add_in(p, filt, 0,
                &(ArgsSpec){.names = "--features",
                            .nargs = ARGS_ONE_OR_MORE,
                            .metavar = "FEATURE=VALUE",
                            .help = "filter results to qubes that matches all "
                                    "specified features. omitted VALUE means "
                                    "None (unset). Empty value means \"\" "
                                    "(blank)"});
    args_add_in(p, filt, 0,
                &(ArgsSpec){.names = "--prefs",
                            .nargs = ARGS_ONE_OR_MORE,
                            .metavar = "PREFERENCE=VALUE",
                            .help = "filter results to qubes that matches all "
                                    "specified preferences. omitted VALUE "
                                    "means None (unset). Empty value means "
                                    "\"\" (blank)"});
    int sort = args_add_section(p, "sorting options", NULL);
    args_add_in(p, sort, 0,
                &(ArgsSpec){.names = "--sort",
                            .metavar = "COLUMN",
                            .deflt = "NAME",
                            .help = "sort based on provided column rather "
                                    "than NAME"});
    args_add_in(p, sort, 0,
                &(ArgsSpec){.names = "--reverse",
                            .action = ARGS_STORE_TRUE,
                            .deflt = "False",
                            .deflt_type = ARGV_BOOL,
                            .help = "reverse sort"});
    args_add_in(p, sort, 0,
                &(ArgsSpec){.names = "--ignore-case",
                            .action = ARGS_STORE_TRUE,
                            .deflt = "False",
                            .deflt_type = ARGV_BOOL,
                            .help = "ignore case distinctions when sorting"});
    args_add(p, &(ArgsSpec){.names = "--spinner",
                            .action = ARGS_STORE_TRUE,
                            .dest = "spinner",
                            .help = "reenable spinner"});
    args_add(p, &(ArgsSpec){.names = "--no-spinner",
                            .action = ARGS_STORE_FALSE,
                            .dest = "spinner",
                            .help = "disable spinner"});
    ArgValue *on = args_value_new(ARGV_BOOL);
    on->i = 1;
    args_set_default_value(p, "spinner", on);
    return p;
}

/* ---- filters ---- */

static gboolean listed(GPtrArray *l, const char *s)
{
    for (guint i = 0; s && l && i < l->len; i++)
        if (strcmp(l->pdata[i], s) == 0)
            return TRUE;
    return FALSE;
}

static gboolean has_any_tag(QaVm *vm, GPtrArray *want)
{
    GPtrArray *tags = qa_vm_tags(vm);
    for (guint i = 0; i < tags->len; i++)
        if (listed(want, tags->pdata[i]))
            return TRUE;
    return FALSE;
}

static gboolean feature_true(QaVm *vm, const char *name)
{
    const char *v = qa_vm_feature(vm, name);
    return g_strcmp0(v, "1") == 0 || g_strcmp0(v, "true") == 0 ||
           g_strcmp0(v, "True") == 0;
}

typedef gboolean (*Keep)(QaVm *vm, gpointer data);

static void filter(GPtrArray *domains, Keep keep, gpointer data, Spinner *sp)
{
    for (guint i = 0; i < domains->len;) {
        gboolean k = keep(domains->pdata[i], data);
        if (sp)
            spinner_update(sp);
        if (k)
            i++;
        else
            g_ptr_array_remove_index(domains, i);
    }
}

static gboolean keep_class(QaVm *vm, gpointer l)
{
    return listed(l, qa_vm_klass(vm));
}
static gboolean keep_label(QaVm *vm, gpointer l)
{
    return listed(l, qa_vm_prop_str(vm, "label"));
}
static gboolean keep_tags(QaVm *vm, gpointer l)
{
    return has_any_tag(vm, l);
}
static gboolean keep_not_tags(QaVm *vm, gpointer l)
{
    return !has_any_tag(vm, l);
}

/* getattr(dom, NAME, '') in LIST: a missing property is '', None
 * matches nothing */
static gboolean prop_in(QaVm *vm, const char *name, GPtrArray *l)
{
    const QaProp *p = qa_vm_prop(vm, name);
    if (p->kind == QA_PROP_MISSING)
        return listed(l, "");
    if (p->kind == QA_PROP_NONE)
        return FALSE;
    return listed(l, p->value);
}
static gboolean keep_template(QaVm *vm, gpointer l)
{
    return prop_in(vm, "template", l);
}
static gboolean keep_netvm(QaVm *vm, gpointer l)
{
    return prop_in(vm, "netvm", l);
}

typedef struct {
    const char *feature;
    gboolean want;
} FeatureFlag;
static gboolean keep_feature_flag(QaVm *vm, gpointer data)
{
    FeatureFlag *f = data;
    return feature_true(vm, f->feature) == f->want;
}
static gboolean keep_pending(QaVm *vm, gpointer data)
{
    const char *v = qa_vm_feature(vm, "updates-available");
    return v && *v;
}

typedef struct {
    const char *key;
    const char *value; /* NULL: None */
} KeyValue;
static gboolean keep_feature(QaVm *vm, gpointer data)
{
    KeyValue *kv = data;
    return g_strcmp0(qa_vm_feature(vm, kv->key), kv->value) == 0;
}
/* str(getattr(d, key, None)) == value: None never matches */
static gboolean keep_pref(QaVm *vm, gpointer data)
{
    KeyValue *kv = data;
    if (!kv->value)
        return FALSE;
    const char *v;
    if (strcmp(kv->key, "name") == 0)
        v = qa_vm_name(vm);
    else if (strcmp(kv->key, "klass") == 0)
        v = qa_vm_klass(vm);
    else
        v = qa_vm_prop_str(vm, kv->key);
    return strcmp(v ? v : "None", kv->value) == 0;
}

typedef struct {
    gboolean running, paused, halted;
} States;
static gboolean keep_state(QaVm *vm, gpointer data)
{
    States *s = data;
    g_autofree char *st =
        g_ascii_strdown(qa_vm_state(vm) ? qa_vm_state(vm) : "", -1);
    return (s->running && strcmp(st, "running") == 0) ||
           (s->paused && strcmp(st, "paused") == 0) ||
           (s->halted && strcmp(st, "halted") == 0);
}

/* "KEY=VALUE" of --features and --prefs: VALUE "" is None, '' or ""
 * is empty. */
static KeyValue parse_kv(ArgsParser *p, const char *opt, const char *arg)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg)
        args_error(p, "Invalid argument: %s %s", opt, arg);
    KeyValue kv = {g_strndup(arg, (gsize)(eq - arg)), eq + 1};
    if (!*kv.value)
        kv.value = NULL;
    else if (strcmp(kv.value, "''") == 0 || strcmp(kv.value, "\"\"") == 0)
        kv.value = "";
    return kv;
}

int main(int argc, char **argv)
{
    Registry *reg = registry_new();
    ArgsParser *p = make_parser(reg);
    g_autoptr(ArgsNamespace) ns = args_parse(p, argc, argv);
    g_autoptr(GError) err = NULL;
    g_autoptr(QaApp) app = qa_app_new(&err);
    if (!app) {
        fprintf(stderr, "Error: %s\n", tool_error_message(err));
        return 1;
    }
    g_autoptr(GPtrArray) named =
        qubes_args_domains(p, ns, app, ARGS_ZERO_OR_MORE);
    gboolean raw = args_bool(ns, "raw_data");
    const char *fields = args_str(ns, "fields");
    if (args_bool(ns, "raw_list")) {
        raw = TRUE;
        fields = "name";
    }
    g_auto(GStrv) names = NULL;
    if (fields) {
        names = g_strsplit(fields, ",", -1);
        for (char **n = names; *n; n++)
            g_strstrip(*n);
    } else {
        for (guint i = 0; i < G_N_ELEMENTS(formats); i++)
            if (g_strcmp0(args_str(ns, "format"), formats[i].name) == 0)
                names = g_strsplit(formats[i].columns, ",", -1);
    }
    for (char **n = names; *n; n++) {
        g_autofree char *up = g_ascii_strup(*n, -1);
        if (!registry_get(reg, up)) {
            g_autofree char *low = g_ascii_strdown(*n, -1);
            registry_add_property(reg, low);
        }
    }
    g_autoptr(GPtrArray) cols = g_ptr_array_new();
    for (char **n = names; *n; n++) {
        g_autofree char *key = g_ascii_strup(*n, -1);
        for (char *c = key; *c; c++)
            if (*c == '_')
                *c = '-';
        Column *c = registry_get(reg, key);
        if (!c) {
            /* the client fails with a KeyError here */
            fprintf(stderr, "Error: no such column: %s\n", key);
            return 1;
        }
        g_ptr_array_add(cols, c);
    }
    Spinner sp = {.on = args_bool(ns, "spinner") && !raw,
                  .tty = isatty(STDERR_FILENO)};

    g_autoptr(GPtrArray) domains =
        borrowed_copy(named->len ? named : qa_app_domains(app));
    if (args_bool(ns, "all_domains")) {
        GPtrArray *exclude = args_list(ns, "exclude");
        g_ptr_array_set_size(domains, 0);
        GPtrArray *all = qa_app_domains(app);
        for (guint i = 0; i < all->len; i++)
            if (!listed(exclude, qa_vm_name(all->pdata[i])))
                g_ptr_array_add(domains, all->pdata[i]);
    }
    GPtrArray *l;
    if ((l = args_list(ns, "klass")))
        filter(domains, keep_class, l, NULL);
    if ((l = args_list(ns, "label"))) {
        spinner_show(&sp, "Filtering based on labels...");
        filter(domains, keep_label, l, &sp);
        spinner_hide(&sp);
    }
    if ((l = args_list(ns, "tags")))
        filter(domains, keep_tags, l, NULL);
    if ((l = args_list(ns, "exclude_tags")))
        filter(domains, keep_not_tags, l, NULL);
    if ((l = args_list(ns, "template_source"))) {
        spinner_show(&sp,
                     "Filtering results to qubes based on their templates...");
        filter(domains, keep_template, l, &sp);
        spinner_hide(&sp);
    }
    if ((l = args_list(ns, "netvm_is"))) {
        spinner_show(&sp, "Filtering results to qubes based on their netvm...");
        filter(domains, keep_netvm, l, &sp);
        spinner_hide(&sp);
    }
    static const char *const flags[] = {"internal", "servicevm"};
    for (guint i = 0; i < G_N_ELEMENTS(flags); i++) {
        const char *v = args_str(ns, flags[i]);
        if (g_strcmp0(v, "both") == 0 || !v)
            continue;
        FeatureFlag f = {flags[i], v[0] == 'y'};
        filter(domains, keep_feature_flag, &f, NULL);
    }
    if (args_bool(ns, "pending_update"))
        filter(domains, keep_pending, NULL, NULL);
    static const char *const kvs[] = {"features", "prefs"};
    for (guint k = 0; k < G_N_ELEMENTS(kvs); k++) {
        l = args_list(ns, kvs[k]);
        g_autofree char *opt = g_strdup_printf("--%s", kvs[k]);
        for (guint i = 0; l && i < l->len; i++) {
            KeyValue kv = parse_kv(p, opt, l->pdata[i]);
            filter(domains, k ? keep_pref : keep_feature, &kv, NULL);
            g_free((char *)kv.key);
        }
    }
    States st = {args_bool(ns, "running"), args_bool(ns, "paused"),
                 args_bool(ns, "halted")};
    if (st.running || st.paused || st.halted)
        filter(domains, keep_state, &st, NULL);

    if (raw) {
        g_autoptr(GPtrArray) sorted = borrowed_copy(domains);
        g_ptr_array_sort(sorted, vm_cmp);
        for (guint i = 0; i < sorted->len; i++) {
            Row *r = get_row(cols, app, sorted->pdata[i], 0, &sp);
            for (guint c = 0; c < r->cells->len; c++)
                printf("%s%s", c ? "|" : "", (char *)r->cells->pdata[c]);
            printf("\n");
            row_free(r);
        }
    } else {
        g_autoptr(GPtrArray) rows =
            g_ptr_array_new_with_free_func((GDestroyNotify)row_free);
        spinner_show(&sp, "please wait...");
        spinner_update(&sp);
        if (args_str(ns, "tree")) {
            g_autoptr(GPtrArray) vms = g_ptr_array_new();
            g_autoptr(GArray) levels = g_array_new(FALSE, FALSE, sizeof(int));
            sort_to_tree(app, domains, vms, levels);
            for (guint i = 0; i < vms->len; i++)
                g_ptr_array_add(rows,
                                get_row(cols, app, vms->pdata[i],
                                        g_array_index(levels, int, i), &sp));
        } else {
            g_autoptr(GPtrArray) sorted = borrowed_copy(domains);
            g_ptr_array_sort(sorted, vm_cmp);
            for (guint i = 0; i < sorted->len; i++)
                g_ptr_array_add(rows,
                                get_row(cols, app, sorted->pdata[i], 0, &sp));
            g_autofree char *order = g_ascii_strup(args_str(ns, "sort"), -1);
            for (guint c = 0; c < cols->len; c++) {
                if (strcmp(((Column *)cols->pdata[c])->head, order) != 0)
                    continue;
                SortBy s = {c, g_strv_contains(sort_numeric, order),
                            args_bool(ns, "ignore_case"),
                            args_bool(ns, "reverse")};
                sort_rows(rows, &s);
                break;
            }
        }
        spinner_hide(&sp);
        fflush(stderr);
        print_table(cols, rows);
    }
    fflush(stdout);
    args_parser_free(p);
    registry_free(reg);
    return 0;
}
