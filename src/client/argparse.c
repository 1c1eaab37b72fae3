/* argparse.c: Python argparse's behaviour for the tools (argparse.h).
 *
 * Written from argparse's documented behaviour and checked against
 * Python 3.11's argparse by tests/client/test-argparse.py, which runs the
 * same parsers and command lines through both. */
#include "argparse.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

const char ARGS_SUPPRESS[] = "==SUPPRESS==";

#define SUPPRESSED(s) ((s) == ARGS_SUPPRESS)

struct _ArgsAction {
    GPtrArray *option_strings; /* char* */
    char *dest;                /* ARGS_SUPPRESS allowed (not owned then) */
    ArgsActionKind kind;
    int nargs;
    char *metavar, *help, *konst, *deflt;
    GStrv metavars; /* a tuple metavar, one name a value */
    gboolean help_suppressed, dest_suppressed, deflt_suppressed;
    ArgValueType deflt_type;
    GPtrArray *choices; /* char*, or NULL */
    gboolean required, is_int;
    ArgsCallback callback;
    gpointer callback_data;
    int mutex;
    /* subcommands */
    ArgsParser *owner;
    char *prog_prefix;
    GPtrArray *sub_parsers;     /* ArgsParser*, parallel to choices */
    GPtrArray *choices_actions; /* ArgsAction*: the listed ones */
    gboolean qubes_aliases;     /* "NAME (A,B)" */
};

typedef struct {
    char *title, *description;
    GPtrArray *actions; /* borrowed */
} Section;

typedef struct {
    int section;
    gboolean required;
    GPtrArray *actions; /* borrowed */
} Mutex;

struct _ArgsParser {
    char *prog, *usage, *description, *epilog, *version;
    ArgsFormatterKind fmt;
    GPtrArray *actions;  /* ArgsAction*, owned, in order */
    GPtrArray *sections; /* Section*: positionals, options, then others */
    GPtrArray *mutexes;  /* Mutex* */
    GPtrArray *options;  /* option strings in order (borrowed) */
    GHashTable *option_map;
    GPtrArray *defaults; /* set_defaults: Default* */
    GPtrArray *children; /* ArgsParser*, owned (subcommands) */
    ArgsAction *subparsers;
    gboolean suppress_defaults; /* argument_default=SUPPRESS */
    gboolean no_abbrev;         /* allow_abbrev=False */
};

typedef struct {
    char *dest;
    ArgValue *value;
} Default;

static void default_free(Default *d)
{
    g_free(d->dest);
    args_value_free(d->value);
    g_free(d);
}

struct _ArgsNamespace {
    GHashTable *values;      /* dest -> ArgValue* */
    GPtrArray *unrecognized; /* char*, from subcommands */
};

/* ---- values ---- */

ArgValue *args_value_new(ArgValueType type)
{
    ArgValue *v = g_new0(ArgValue, 1);
    v->type = type;
    if (type == ARGV_LIST)
        v->list = g_ptr_array_new_with_free_func(g_free);
    return v;
}

ArgValue *args_value_str(const char *s)
{
    if (!s)
        return args_value_new(ARGV_NONE);
    ArgValue *v = args_value_new(ARGV_STR);
    v->s = g_strdup(s);
    return v;
}

void args_value_free(ArgValue *v)
{
    if (!v)
        return;
    g_free(v->s);
    if (v->list)
        g_ptr_array_unref(v->list);
    g_free(v);
}

static ArgValue *value_copy(const ArgValue *v)
{
    ArgValue *c = args_value_new(v->type);
    c->s = g_strdup(v->s);
    c->i = v->i;
    for (guint i = 0; v->list && i < v->list->len; i++)
        g_ptr_array_add(c->list, g_strdup(v->list->pdata[i]));
    return c;
}

static ArgsNamespace *namespace_new(void)
{
    ArgsNamespace *ns = g_new0(ArgsNamespace, 1);
    ns->values = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                       (GDestroyNotify)args_value_free);
    ns->unrecognized = g_ptr_array_new_with_free_func(g_free);
    return ns;
}

void args_namespace_free(ArgsNamespace *ns)
{
    if (!ns)
        return;
    g_hash_table_unref(ns->values);
    g_ptr_array_unref(ns->unrecognized);
    g_free(ns);
}

void args_set(ArgsNamespace *ns, const char *dest, ArgValue *value)
{
    g_hash_table_replace(ns->values, g_strdup(dest), value);
}

const ArgValue *args_get(ArgsNamespace *ns, const char *dest)
{
    return g_hash_table_lookup(ns->values, dest);
}

const char *args_str(ArgsNamespace *ns, const char *dest)
{
    const ArgValue *v = args_get(ns, dest);
    return v && v->type == ARGV_STR ? v->s : NULL;
}

GPtrArray *args_list(ArgsNamespace *ns, const char *dest)
{
    const ArgValue *v = args_get(ns, dest);
    return v && v->type == ARGV_LIST ? v->list : NULL;
}

gint64 args_int(ArgsNamespace *ns, const char *dest)
{
    const ArgValue *v = args_get(ns, dest);
    return v && (v->type == ARGV_INT || v->type == ARGV_BOOL) ? v->i : 0;
}

gboolean args_bool(ArgsNamespace *ns, const char *dest)
{
    const ArgValue *v = args_get(ns, dest);
    if (!v)
        return FALSE;
    switch (v->type) {
    case ARGV_BOOL:
    case ARGV_INT:
        return v->i != 0;
    case ARGV_STR:
        return v->s && *v->s;
    case ARGV_LIST:
        return v->list->len > 0;
    default:
        return FALSE;
    }
}

GPtrArray *args_dests(ArgsNamespace *ns)
{
    GPtrArray *out = g_ptr_array_new();
    GHashTableIter it;
    gpointer k;
    g_hash_table_iter_init(&it, ns->values);
    while (g_hash_table_iter_next(&it, &k, NULL))
        g_ptr_array_add(out, k);
    g_ptr_array_sort(out, (GCompareFunc)(void *)g_strcmp0);
    return out;
}

/* ---- text helpers ---- */

char *args_py_repr(const char *s)
{
    gboolean sq = strchr(s, '\'') != NULL, dq = strchr(s, '"') != NULL;
    char q = sq && !dq ? '"' : '\'';
    GString *o = g_string_new(NULL);
    g_string_append_c(o, q);
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '\\' || c == (unsigned char)q)
            g_string_append_printf(o, "\\%c", c);
        else if (c == '\n')
            g_string_append(o, "\\n");
        else if (c == '\t')
            g_string_append(o, "\\t");
        else if (c == '\r')
            g_string_append(o, "\\r");
        else if (c < 0x20 || c == 0x7f)
            g_string_append_printf(o, "\\x%02x", c);
        else
            g_string_append_c(o, (char)c);
    }
    g_string_append_c(o, q);
    return g_string_free(o, FALSE);
}

static glong ulen(const char *s)
{
    return g_utf8_strlen(s, -1);
}

/* @s without its first @n characters / its first @n (new). */
static char *usub(const char *s, glong from, glong n)
{
    const char *a = g_utf8_offset_to_pointer(s, from);
    if (n < 0)
        return g_strdup(a);
    const char *b = g_utf8_offset_to_pointer(a, n);
    return g_strndup(a, (gsize)(b - a));
}

static void pad(GString *o, glong n)
{
    for (glong i = 0; i < n; i++)
        g_string_append_c(o, ' ');
}

static char *regex_sub(const char *pattern, const char *text, const char *repl)
{
    GRegex *re = g_regex_new(pattern, 0, 0, NULL);
    char *out = g_regex_replace(re, text, -1, 0, repl, 0, NULL);
    g_regex_unref(re);
    return out;
}

/* Python's text.split() then ' '.join, stripped: every run of
 * whitespace one space. */
static char *collapse_ws(const char *text)
{
    g_autofree char *c = regex_sub("\\s+", text, " ");
    return g_strdup(g_strstrip(c));
}

/* textwrap's chunks: whitespace runs, words, hyphenated word parts
 * (only whitespace runs and words without @hyphens). */
static GPtrArray *wrap_chunks(const char *text, gboolean hyphens)
{
    static GRegex *simple;
    if (g_once_init_enter(&simple))
        g_once_init_leave(&simple,
                          g_regex_new("([\\t\\n\\x0b\\x0c\\r ]+)", 0, 0, NULL));
    static GRegex *re;
    if (g_once_init_enter(&re)) {
        const char *ws = "[\\t\\n\\x0b\\x0c\\r ]";
        const char *nws = "[^\\t\\n\\x0b\\x0c\\r ]";
        const char *lt = "[^\\d\\W]";
        const char *wp = "[\\w!\"'&.,?]";
        g_autofree char *p = g_strdup_printf(
            "(*UCP)(%s+|(?<=%s)-{2,}(?=\\w)|%s+?(?:-(?:(?<=%s{2}-)|"
            "(?<=%s-%s-))(?=%s-?%s)|(?=%s|\\z)|(?<=%s)(?=-{2,}\\w)))",
            ws, wp, nws, lt, lt, lt, lt, lt, ws, wp);
        g_once_init_leave(&re, g_regex_new(p, G_REGEX_OPTIMIZE, 0, NULL));
    }
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
    GMatchInfo *mi = NULL;
    gsize last = 0;
    g_regex_match(hyphens ? re : simple, text, 0, &mi);
    while (g_match_info_matches(mi)) {
        int s = 0, e = 0;
        g_match_info_fetch_pos(mi, 0, &s, &e);
        if ((gsize)s > last)
            g_ptr_array_add(out, g_strndup(text + last, (gsize)s - last));
        if (e > s)
            g_ptr_array_add(out, g_strndup(text + s, (gsize)(e - s)));
        last = (gsize)e;
        g_match_info_next(mi, NULL);
    }
    g_match_info_free(mi);
    if (text[last])
        g_ptr_array_add(out, g_strdup(text + last));
    return out;
}

static gboolean blank(const char *s)
{
    for (; *s; s++)
        if (!g_ascii_isspace(*s))
            return FALSE;
    return TRUE;
}

GPtrArray *args_textwrap(const char *text, glong width, const char *initial,
                         const char *subsequent, gboolean hyphens)
{
    g_autofree char *t = g_strdup(text);
    for (char *p = t; *p; p++)
        if (strchr("\t\n\x0b\x0c\r", *p))
            *p = ' ';
    g_autoptr(GPtrArray) chunks = wrap_chunks(t, hyphens);
    GPtrArray *lines = g_ptr_array_new_with_free_func(g_free);
    guint next = 0;
    while (next < chunks->len) {
        const char *indent = lines->len ? subsequent : initial;
        glong w = width - ulen(indent);
        if (blank(chunks->pdata[next]) && lines->len)
            next++;
        GPtrArray *cur = g_ptr_array_new_with_free_func(g_free);
        glong cur_len = 0;
        while (next < chunks->len) {
            glong l = ulen(chunks->pdata[next]);
            if (cur_len + l > w)
                break;
            g_ptr_array_add(cur, g_strdup(chunks->pdata[next++]));
            cur_len += l;
        }
        if (next < chunks->len && ulen(chunks->pdata[next]) > w) {
            /* a word longer than a line: broken, after a hyphen when one
             * fits */
            glong space_left = w < 1 ? 1 : w - cur_len;
            const char *chunk = chunks->pdata[next];
            glong end = space_left;
            if (hyphens && ulen(chunk) > space_left) {
                g_autofree char *head = usub(chunk, 0, space_left);
                const char *h = strrchr(head, '-');
                if (h && h > head) {
                    gboolean other = FALSE;
                    for (const char *c = head; c < h && !other; c++)
                        other = *c != '-';
                    if (other)
                        end = g_utf8_pointer_to_offset(head, h) + 1;
                }
            }
            g_ptr_array_add(cur, usub(chunk, 0, end));
            char *rest = usub(chunk, end, -1);
            g_free(chunks->pdata[next]);
            chunks->pdata[next] = rest;
        }
        if (cur->len && blank(cur->pdata[cur->len - 1]))
            g_ptr_array_remove_index(cur, cur->len - 1);
        if (cur->len) {
            GString *l = g_string_new(indent);
            for (guint i = 0; i < cur->len; i++)
                g_string_append(l, cur->pdata[i]);
            g_ptr_array_add(lines, g_string_free(l, FALSE));
        }
        g_ptr_array_unref(cur);
    }
    return lines;
}

static GPtrArray *wrap(const char *text, glong width, const char *indent)
{
    return args_textwrap(text, width, indent, indent, TRUE);
}

char *args_textfill(const char *text, glong width, const char *initial,
                    const char *subsequent, gboolean hyphens)
{
    g_autoptr(GPtrArray) lines =
        args_textwrap(text, width, initial, subsequent, hyphens);
    g_ptr_array_add(lines, NULL);
    return g_strjoinv("\n", (char **)lines->pdata);
}

/* ---- the parser ---- */

static Section *section_new(const char *title, const char *description)
{
    Section *s = g_new0(Section, 1);
    s->title = g_strdup(title);
    s->description = g_strdup(description);
    s->actions = g_ptr_array_new();
    return s;
}

static void section_free(Section *s)
{
    g_free(s->title);
    g_free(s->description);
    g_ptr_array_unref(s->actions);
    g_free(s);
}

static void mutex_free(Mutex *m)
{
    g_ptr_array_unref(m->actions);
    g_free(m);
}

static void action_free(ArgsAction *a)
{
    g_ptr_array_unref(a->option_strings);
    if (!a->dest_suppressed)
        g_free(a->dest);
    g_free(a->metavar);
    g_strfreev(a->metavars);
    if (!a->help_suppressed)
        g_free(a->help);
    g_free(a->konst);
    g_free(a->deflt);
    if (a->choices)
        g_ptr_array_unref(a->choices);
    g_free(a->prog_prefix);
    if (a->sub_parsers)
        g_ptr_array_unref(a->sub_parsers);
    if (a->choices_actions)
        g_ptr_array_unref(a->choices_actions);
    g_free(a);
}

ArgsParser *args_parser_new(const char *prog, const char *usage,
                            const char *description, const char *epilog,
                            ArgsFormatterKind formatter)
{
    ArgsParser *p = g_new0(ArgsParser, 1);
    p->prog = g_strdup(prog);
    p->usage = g_strdup(usage);
    p->description = g_strdup(description);
    p->epilog = g_strdup(epilog);
    p->fmt = formatter;
    p->actions = g_ptr_array_new_with_free_func((GDestroyNotify)action_free);
    p->sections = g_ptr_array_new_with_free_func((GDestroyNotify)section_free);
    g_ptr_array_add(p->sections, section_new("positional arguments", NULL));
    g_ptr_array_add(p->sections, section_new("options", NULL));
    p->mutexes = g_ptr_array_new_with_free_func((GDestroyNotify)mutex_free);
    p->options = g_ptr_array_new();
    p->option_map = g_hash_table_new(g_str_hash, g_str_equal);
    p->defaults = g_ptr_array_new_with_free_func((GDestroyNotify)default_free);
    p->children =
        g_ptr_array_new_with_free_func((GDestroyNotify)args_parser_free);
    return p;
}

void args_parser_free(ArgsParser *p)
{
    if (!p)
        return;
    g_free(p->prog);
    g_free(p->usage);
    g_free(p->description);
    g_free(p->epilog);
    g_free(p->version);
    g_ptr_array_unref(p->children);
    g_ptr_array_unref(p->actions);
    g_ptr_array_unref(p->sections);
    g_ptr_array_unref(p->mutexes);
    g_ptr_array_unref(p->options);
    g_hash_table_unref(p->option_map);
    g_ptr_array_unref(p->defaults);
    g_free(p);
}

void args_parser_no_abbrev(ArgsParser *p)
{
    p->no_abbrev = TRUE;
}

void args_parser_suppress_defaults(ArgsParser *p)
{
    p->suppress_defaults = TRUE;
}

void args_subparsers_qubes_aliases(ArgsAction *sp)
{
    sp->qubes_aliases = TRUE;
}

void args_parser_set_version(ArgsParser *p, const char *version)
{
    g_free(p->version);
    p->version = g_strdup(version);
}

const char *args_prog(ArgsParser *p)
{
    return p->prog;
}

int args_add_section(ArgsParser *p, const char *title, const char *description)
{
    g_ptr_array_add(p->sections, section_new(title, description));
    return (int)p->sections->len - 1;
}

int args_add_mutex(ArgsParser *p, int section, gboolean required)
{
    Mutex *m = g_new0(Mutex, 1);
    m->section = section;
    m->required = required;
    m->actions = g_ptr_array_new();
    g_ptr_array_add(p->mutexes, m);
    return (int)p->mutexes->len;
}

void args_set_default_value(ArgsParser *p, const char *dest, ArgValue *value)
{
    /* set_defaults() also changes the default of the actions of @dest */
    for (guint i = 0; i < p->actions->len; i++) {
        ArgsAction *a = p->actions->pdata[i];
        if (a->dest_suppressed || strcmp(a->dest, dest) != 0)
            continue;
        g_free(a->deflt);
        a->deflt = NULL;
        a->deflt_type = ARGV_NONE;
        switch (value->type) {
        case ARGV_STR:
            a->deflt = g_strdup(value->s);
            break;
        case ARGV_INT:
            a->deflt_type = ARGV_INT;
            a->deflt = g_strdup_printf("%" G_GINT64_FORMAT, value->i);
            break;
        case ARGV_BOOL:
            a->deflt_type = ARGV_BOOL;
            a->deflt = g_strdup(value->i ? "True" : "False");
            break;
        case ARGV_LIST:
            a->deflt_type = ARGV_LIST;
            break;
        default:
            break;
        }
    }
    Default *d = g_new0(Default, 1);
    d->dest = g_strdup(dest);
    d->value = value;
    g_ptr_array_add(p->defaults, d);
}

void args_set_default(ArgsParser *p, const char *dest, const char *value)
{
    args_set_default_value(p, dest, args_value_str(value));
}

static int default_nargs(ArgsActionKind k)
{
    switch (k) {
    case ARGS_STORE_CONST:
    case ARGS_STORE_TRUE:
    case ARGS_STORE_FALSE:
    case ARGS_APPEND_CONST:
    case ARGS_COUNT:
    case ARGS_HELP:
    case ARGS_HELP_ALL:
    case ARGS_VERSION:
        return 0;
    default:
        return ARGS_NARGS_NONE;
    }
}

ArgsAction *args_add_in(ArgsParser *p, int section, int mutex,
                        const ArgsSpec *spec)
{
    ArgsAction *a = g_new0(ArgsAction, 1);
    a->option_strings = g_ptr_array_new_with_free_func(g_free);
    g_auto(GStrv) names = g_strsplit(spec->names ? spec->names : "", " ", -1);
    /* a subcommand's action has no name and is a positional */
    gboolean positional =
        (names[0] && names[0][0] != '-') || spec->nargs == ARGS_PARSER;
    if (!positional)
        for (char **n = names; *n; n++)
            if (**n)
                g_ptr_array_add(a->option_strings, g_strdup(*n));
    a->kind = spec->action;
    a->nargs = spec->nargs == ARGS_NARGS_ZERO ? 0
               : spec->nargs                  ? spec->nargs
                                              : default_nargs(spec->action);
    if (spec->dest && SUPPRESSED(spec->dest)) {
        a->dest = (char *)ARGS_SUPPRESS;
        a->dest_suppressed = TRUE;
    } else if (spec->dest) {
        a->dest = g_strdup(spec->dest);
    } else if (positional) {
        a->dest = g_strdup(names[0]);
    } else {
        /* the first long option, else the first; dashes to underscores */
        const char *pick = a->option_strings->pdata[0];
        for (guint i = 0; i < a->option_strings->len; i++) {
            const char *o = a->option_strings->pdata[i];
            if (o[0] == '-' && o[1] == '-') {
                pick = o;
                break;
            }
        }
        while (*pick == '-')
            pick++;
        a->dest = g_strdup(pick);
        for (char *c = a->dest; *c; c++)
            if (*c == '-')
                *c = '_';
    }
    if (a->kind == ARGS_HELP || a->kind == ARGS_HELP_ALL ||
        a->kind == ARGS_VERSION) {
        if (!a->dest_suppressed)
            g_free(a->dest);
        a->dest = (char *)ARGS_SUPPRESS;
        a->dest_suppressed = TRUE;
        a->deflt_suppressed = TRUE;
    }
    a->metavar = g_strdup(spec->metavar);
    a->metavars = g_strdupv((char **)spec->metavars);
    if (spec->help && SUPPRESSED(spec->help)) {
        a->help = (char *)ARGS_SUPPRESS;
        a->help_suppressed = TRUE;
    } else if (!spec->help && a->kind == ARGS_VERSION) {
        a->help = g_strdup("show program's version number and exit");
    } else {
        a->help = g_strdup(spec->help);
    }
    a->konst = g_strdup(spec->konst);
    a->deflt = g_strdup(spec->deflt);
    a->deflt_type = spec->deflt_type;
    if ((spec->deflt && SUPPRESSED(spec->deflt)) ||
        (p->suppress_defaults && !spec->deflt &&
         spec->deflt_type == ARGV_NONE)) {
        a->deflt_suppressed = TRUE;
        g_clear_pointer(&a->deflt, g_free);
    }
    if ((a->kind == ARGS_STORE_TRUE || a->kind == ARGS_STORE_FALSE) &&
        !spec->deflt && !a->deflt_suppressed) {
        a->deflt_type = ARGV_BOOL;
        a->deflt = g_strdup(a->kind == ARGS_STORE_TRUE ? "False" : "True");
    }
    if (spec->choices) {
        a->choices = g_ptr_array_new_with_free_func(g_free);
        for (const char *const *c = spec->choices; *c; c++)
            g_ptr_array_add(a->choices, g_strdup(*c));
    }
    a->required = spec->required;
    if (positional) {
        /* argparse: a positional is required unless it may be empty */
        if (a->nargs != ARGS_OPTIONAL && a->nargs != ARGS_ZERO_OR_MORE)
            a->required = TRUE;
        if (a->nargs == ARGS_ZERO_OR_MORE && !spec->deflt)
            a->required = TRUE;
    }
    a->is_int = spec->is_int;
    a->callback = spec->callback;
    a->callback_data = spec->callback_data;
    a->owner = p;
    a->mutex = mutex;
    g_ptr_array_add(p->actions, a);
    for (guint i = 0; i < a->option_strings->len; i++) {
        g_ptr_array_add(p->options, a->option_strings->pdata[i]);
        g_hash_table_replace(p->option_map, a->option_strings->pdata[i], a);
    }
    if (section == 0 && mutex)
        section = ((Mutex *)p->mutexes->pdata[mutex - 1])->section;
    if (section == 0)
        section = positional ? 0 : 1;
    g_ptr_array_add(((Section *)p->sections->pdata[section])->actions, a);
    if (mutex)
        g_ptr_array_add(((Mutex *)p->mutexes->pdata[mutex - 1])->actions, a);
    return a;
}

ArgsAction *args_add(ArgsParser *p, const ArgsSpec *spec)
{
    return args_add_in(p, 0, 0, spec);
}

const char *args_action_dest(const ArgsAction *a)
{
    return a->dest;
}

/* _get_action_name() */
char *args_action_name(const ArgsAction *a)
{
    if (a->option_strings->len) {
        GString *s = g_string_new(NULL);
        for (guint i = 0; i < a->option_strings->len; i++)
            g_string_append_printf(s, "%s%s", i ? "/" : "",
                                   (char *)a->option_strings->pdata[i]);
        return g_string_free(s, FALSE);
    }
    if (a->metavar)
        return g_strdup(a->metavar);
    if (!a->dest_suppressed)
        return g_strdup(a->dest);
    if (a->choices) {
        GString *s = g_string_new("{");
        for (guint i = 0; i < a->choices->len; i++)
            g_string_append_printf(s, "%s%s", i ? "," : "",
                                   (char *)a->choices->pdata[i]);
        g_string_append_c(s, '}');
        return g_string_free(s, FALSE);
    }
    return NULL;
}

/* ---- the help formatter ---- */

typedef struct {
    ArgsParser *p;
    glong width, indent, max_help_position, action_max_length;
} Fmt;

static glong terminal_width(void)
{
    const char *c = g_getenv("COLUMNS");
    glong cols = 0;
    if (c) {
        char *end = NULL;
        errno = 0;
        long v = strtol(c, &end, 10);
        if (!errno && end != c && !*end)
            cols = v;
    }
    if (cols <= 0) {
        struct winsize ws;
        if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
            cols = ws.ws_col;
        else
            cols = 80;
    }
    return cols;
}

static void fmt_init(Fmt *f, ArgsParser *p)
{
    f->p = p;
    f->width = terminal_width() - 2;
    f->indent = 0;
    f->max_help_position = MIN(24, MAX(f->width - 20, 4));
    f->action_max_length = 0;
}

/* _metavar_formatter(action, default)(1) */
static char *metavar_of(const ArgsAction *a, const char *deflt)
{
    if (a->metavar)
        return g_strdup(a->metavar);
    if (a->choices) {
        GString *s = g_string_new("{");
        for (guint i = 0; i < a->choices->len; i++)
            g_string_append_printf(s, "%s%s", i ? "," : "",
                                   (char *)a->choices->pdata[i]);
        g_string_append_c(s, '}');
        return g_string_free(s, FALSE);
    }
    return g_strdup(deflt);
}

static char *default_metavar(const ArgsAction *a)
{
    if (a->option_strings->len)
        return g_ascii_strup(a->dest_suppressed ? "==SUPPRESS==" : a->dest, -1);
    return g_strdup(a->dest);
}

/* _format_args() */
static char *format_args(const ArgsAction *a)
{
    g_autofree char *d = default_metavar(a);
    g_autofree char *m = metavar_of(a, d);
    switch (a->nargs) {
    case ARGS_NARGS_NONE:
        return g_strdup(m);
    case ARGS_OPTIONAL:
        return g_strdup_printf("[%s]", m);
    case ARGS_ZERO_OR_MORE:
        return g_strdup_printf("[%s ...]", m);
    case ARGS_ONE_OR_MORE:
        return g_strdup_printf("%s [%s ...]", m, m);
    case ARGS_REMAINDER:
        return g_strdup("...");
    case ARGS_PARSER:
        return g_strdup_printf("%s ...", m);
    default: {
        GString *s = g_string_new(NULL);
        guint n = a->metavars ? g_strv_length(a->metavars) : 0;
        for (int i = 0; i < a->nargs; i++)
            g_string_append_printf(s, "%s%s", i ? " " : "",
                                   (guint)i < n ? a->metavars[i] : m);
        return g_string_free(s, FALSE);
    }
    }
}

/* _format_action_invocation() */
static char *invocation(const ArgsAction *a)
{
    if (!a->option_strings->len) {
        g_autofree char *d = default_metavar(a);
        return metavar_of(a, d);
    }
    GString *s = g_string_new(NULL);
    g_autofree char *args = a->nargs == 0 ? NULL : format_args(a);
    for (guint i = 0; i < a->option_strings->len; i++) {
        if (i)
            g_string_append(s, ", ");
        g_string_append(s, a->option_strings->pdata[i]);
        if (args)
            g_string_append_printf(s, " %s", args);
    }
    return g_string_free(s, FALSE);
}

static gboolean help_hidden(const ArgsAction *a)
{
    return a->help_suppressed;
}

static gint cmp_desc(gconstpointer a, gconstpointer b)
{
    guint x = *(const guint *)a, y = *(const guint *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* _format_actions_usage() */
static char *actions_usage(ArgsParser *p, GPtrArray *actions)
{
    g_autoptr(GHashTable) in_group = g_hash_table_new(NULL, NULL);
    g_autoptr(GHashTable) inserts =
        g_hash_table_new_full(NULL, NULL, NULL, g_free);
    for (guint g = 0; g < p->mutexes->len; g++) {
        Mutex *m = p->mutexes->pdata[g];
        if (!m->actions->len)
            continue;
        guint start = 0;
        gboolean found = FALSE;
        for (guint i = 0; i < actions->len && !found; i++)
            if (actions->pdata[i] == m->actions->pdata[0]) {
                start = i;
                found = TRUE;
            }
        if (!found)
            continue;
        guint end = start + m->actions->len;
        gboolean same = end <= actions->len;
        for (guint i = 0; same && i < m->actions->len; i++)
            same = actions->pdata[start + i] == m->actions->pdata[i];
        if (!same)
            continue;
        for (guint i = 0; i < m->actions->len; i++)
            g_hash_table_add(in_group, m->actions->pdata[i]);
        const char *open = m->required ? "(" : "[";
        const char *close = m->required ? ")" : "]";
        char *s = g_hash_table_lookup(inserts, GUINT_TO_POINTER(start));
        g_hash_table_replace(inserts, GUINT_TO_POINTER(start),
                             s ? g_strdup_printf("%s %s", s, open)
                               : g_strdup(open));
        char *e = g_hash_table_lookup(inserts, GUINT_TO_POINTER(end));
        g_hash_table_replace(inserts, GUINT_TO_POINTER(end),
                             e ? g_strdup_printf("%s%s", e, close)
                               : g_strdup(close));
        for (guint i = start + 1; i < end; i++)
            g_hash_table_replace(inserts, GUINT_TO_POINTER(i), g_strdup("|"));
    }
    g_autoptr(GPtrArray) parts = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i < actions->len; i++) {
        const ArgsAction *a = actions->pdata[i];
        if (help_hidden(a)) {
            g_ptr_array_add(parts, NULL);
            const char *here =
                g_hash_table_lookup(inserts, GUINT_TO_POINTER(i));
            const char *next =
                g_hash_table_lookup(inserts, GUINT_TO_POINTER(i + 1));
            if (g_strcmp0(here, "|") == 0)
                g_hash_table_remove(inserts, GUINT_TO_POINTER(i));
            else if (g_strcmp0(next, "|") == 0)
                g_hash_table_remove(inserts, GUINT_TO_POINTER(i + 1));
        } else if (!a->option_strings->len) {
            char *part = format_args(a);
            size_t n = strlen(part);
            if (g_hash_table_contains(in_group, a) && n >= 2 &&
                part[0] == '[' && part[n - 1] == ']') {
                char *inner = g_strndup(part + 1, n - 2);
                g_free(part);
                part = inner;
            }
            g_ptr_array_add(parts, part);
        } else {
            const char *opt = a->option_strings->pdata[0];
            char *part;
            if (a->nargs == 0) {
                part = g_strdup(opt);
            } else {
                g_autofree char *args = format_args(a);
                part = g_strdup_printf("%s %s", opt, args);
            }
            if (!a->required && !g_hash_table_contains(in_group, a)) {
                char *b = g_strdup_printf("[%s]", part);
                g_free(part);
                part = b;
            }
            g_ptr_array_add(parts, part);
        }
    }
    /* the inserts, from the last position down */
    g_autoptr(GArray) at = g_array_new(FALSE, FALSE, sizeof(guint));
    GHashTableIter it;
    gpointer key;
    g_hash_table_iter_init(&it, inserts);
    while (g_hash_table_iter_next(&it, &key, NULL)) {
        guint k = GPOINTER_TO_UINT(key);
        g_array_append_val(at, k);
    }
    g_array_sort(at, cmp_desc);
    for (guint x = 0; x < at->len; x++) {
        guint pos = g_array_index(at, guint, x);
        const char *ins = g_hash_table_lookup(inserts, GUINT_TO_POINTER(pos));
        g_ptr_array_insert(parts, (gint)MIN(pos, parts->len), g_strdup(ins));
    }
    GString *t = g_string_new(NULL);
    gboolean first = TRUE;
    for (guint i = 0; i < parts->len; i++) {
        if (!parts->pdata[i])
            continue;
        if (!first)
            g_string_append_c(t, ' ');
        g_string_append(t, parts->pdata[i]);
        first = FALSE;
    }
    g_autofree char *text = g_string_free(t, FALSE);
    g_autofree char *a1 = regex_sub("([\\[(]) ", text, "\\1");
    g_autofree char *a2 = regex_sub(" ([\\])])", a1, "\\1");
    g_autofree char *a3 = regex_sub("[\\[(] *[\\])]", a2, "");
    g_autofree char *a4 = regex_sub("\\(([^|]*)\\)", a3, "\\1");
    return g_strdup(g_strstrip(a4));
}

static GPtrArray *find_parts(const char *text)
{
    GRegex *re =
        g_regex_new("\\(.*?\\)+(?=\\s|$)|\\[.*?\\]+(?=\\s|$)|\\S+", 0, 0, NULL);
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
    GMatchInfo *mi = NULL;
    g_regex_match(re, text, 0, &mi);
    while (g_match_info_matches(mi)) {
        g_ptr_array_add(out, g_match_info_fetch(mi, 0));
        g_match_info_next(mi, NULL);
    }
    g_match_info_free(mi);
    g_regex_unref(re);
    return out;
}

static void usage_lines(GPtrArray *lines, GPtrArray *parts, glong from,
                        const char *indent, const char *prefix,
                        glong text_width)
{
    GString *line = NULL;
    glong line_len = (prefix ? ulen(prefix) : ulen(indent)) - 1;
    guint first_line = lines->len;
    for (guint i = (guint)from; i < parts->len; i++) {
        const char *part = parts->pdata[i];
        if (line && line_len + 1 + ulen(part) > text_width) {
            g_ptr_array_add(lines, g_string_free(line, FALSE));
            line = NULL;
            line_len = ulen(indent) - 1;
        }
        if (!line)
            line = g_string_new(indent);
        else
            g_string_append_c(line, ' ');
        g_string_append(line, part);
        line_len += ulen(part) + 1;
    }
    if (line)
        g_ptr_array_add(lines, g_string_free(line, FALSE));
    if (prefix && lines->len > first_line) {
        char *l = lines->pdata[first_line];
        lines->pdata[first_line] = g_strdup(l + strlen(indent));
        g_free(l);
    }
}

/* _format_usage(): "usage: ...\n\n" (@prefix NULL: "usage: "). */
static char *format_usage(Fmt *f, GPtrArray *actions, const char *prefix)
{
    ArgsParser *p = f->p;
    if (!prefix)
        prefix = "usage: ";
    g_autofree char *usage = NULL;
    if (p->usage) {
        usage = g_strdup(p->usage); /* %(prog)s expanded by the caller */
    } else if (!actions->len) {
        usage = g_strdup(p->prog);
    } else {
        g_autoptr(GPtrArray) opts = g_ptr_array_new();
        g_autoptr(GPtrArray) pos = g_ptr_array_new();
        for (guint i = 0; i < actions->len; i++) {
            ArgsAction *a = actions->pdata[i];
            g_ptr_array_add(a->option_strings->len ? opts : pos, a);
        }
        g_autoptr(GPtrArray) all = g_ptr_array_new();
        g_ptr_array_extend(all, opts, NULL, NULL);
        g_ptr_array_extend(all, pos, NULL, NULL);
        g_autofree char *action_usage = actions_usage(p, all);
        usage = *action_usage ? g_strdup_printf("%s %s", p->prog, action_usage)
                              : g_strdup(p->prog);
        glong text_width = f->width - f->indent;
        if (ulen(prefix) + ulen(usage) > text_width) {
            g_autofree char *ou = actions_usage(p, opts);
            g_autofree char *pu = actions_usage(p, pos);
            g_autoptr(GPtrArray) op = find_parts(ou);
            g_autoptr(GPtrArray) pp = find_parts(pu);
            g_autoptr(GPtrArray) lines = g_ptr_array_new_with_free_func(g_free);
            if (ulen(prefix) + ulen(p->prog) <= 0.75 * text_width) {
                g_autofree char *indent =
                    g_strnfill((gsize)(ulen(prefix) + ulen(p->prog) + 1), ' ');
                if (op->len) {
                    g_ptr_array_insert(op, 0, g_strdup(p->prog));
                    usage_lines(lines, op, 0, indent, prefix, text_width);
                    usage_lines(lines, pp, 0, indent, NULL, text_width);
                } else if (pp->len) {
                    g_ptr_array_insert(pp, 0, g_strdup(p->prog));
                    usage_lines(lines, pp, 0, indent, prefix, text_width);
                } else {
                    g_ptr_array_add(lines, g_strdup(p->prog));
                }
            } else {
                g_autofree char *indent = g_strnfill((gsize)ulen(prefix), ' ');
                g_autoptr(GPtrArray) both =
                    g_ptr_array_new_with_free_func(g_free);
                for (guint i = 0; i < op->len; i++)
                    g_ptr_array_add(both, g_strdup(op->pdata[i]));
                for (guint i = 0; i < pp->len; i++)
                    g_ptr_array_add(both, g_strdup(pp->pdata[i]));
                usage_lines(lines, both, 0, indent, NULL, text_width);
                if (lines->len > 1) {
                    g_ptr_array_set_size(lines, 0);
                    usage_lines(lines, op, 0, indent, NULL, text_width);
                    usage_lines(lines, pp, 0, indent, NULL, text_width);
                }
                g_ptr_array_insert(lines, 0, g_strdup(p->prog));
            }
            g_ptr_array_add(lines, NULL);
            g_free(usage);
            usage = g_strjoinv("\n", (char **)lines->pdata);
        }
    }
    return g_strdup_printf("%s%s\n\n", prefix, usage);
}

/* Python's "%(name)s" expansion of a help text. */
static char *expand_help(Fmt *f, const ArgsAction *a)
{
    GString *o = g_string_new(NULL);
    for (const char *s = a->help; *s; s++) {
        if (s[0] == '%' && s[1] == '%') {
            g_string_append_c(o, '%');
            s++;
            continue;
        }
        if (s[0] == '%' && s[1] == '(') {
            const char *close = strchr(s, ')');
            if (close && close[1] == 's') {
                g_autofree char *key = g_strndup(s + 2, (gsize)(close - s - 2));
                if (strcmp(key, "prog") == 0) {
                    g_string_append(o, f->p->prog);
                } else if (strcmp(key, "default") == 0) {
                    if (a->deflt_type == ARGV_BOOL || a->deflt)
                        g_string_append(o, a->deflt);
                    else
                        g_string_append(o, "None");
                } else if (strcmp(key, "dest") == 0) {
                    g_string_append(o, a->dest);
                } else if (strcmp(key, "const") == 0) {
                    g_string_append(o, a->konst ? a->konst : "None");
                } else if (strcmp(key, "metavar") == 0) {
                    g_string_append(o, a->metavar ? a->metavar : "None");
                } else if (strcmp(key, "choices") == 0 && a->choices) {
                    for (guint i = 0; i < a->choices->len; i++)
                        g_string_append_printf(o, "%s%s", i ? ", " : "",
                                               (char *)a->choices->pdata[i]);
                }
                s = close + 1;
                continue;
            }
        }
        g_string_append_c(o, *s);
    }
    return g_string_free(o, FALSE);
}

/* _split_lines() */
static GPtrArray *split_lines(Fmt *f, const char *text, glong width)
{
    if (f->p->fmt == ARGS_FORMAT_RAW_TEXT) {
        GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
        g_auto(GStrv) ls = g_regex_split_simple("\r\n|\n|\r", text, 0, 0);
        guint n = g_strv_length(ls);
        if (n && !*ls[n - 1])
            n--; /* splitlines() drops the empty tail */
        for (guint i = 0; i < n; i++)
            g_ptr_array_add(out, g_strdup(ls[i]));
        return out;
    }
    g_autofree char *c = collapse_ws(text);
    return wrap(c, width, "");
}

/* _fill_text() */
static char *fill_text(Fmt *f, const char *text, glong width,
                       const char *indent)
{
    if (f->p->fmt == ARGS_FORMAT_RAW_TEXT ||
        f->p->fmt == ARGS_FORMAT_RAW_DESCRIPTION) {
        GString *o = g_string_new(NULL);
        const char *s = text;
        while (*s) {
            const char *nl = strchr(s, '\n');
            gsize n = nl ? (gsize)(nl - s + 1) : strlen(s);
            g_string_append(o, indent);
            g_string_append_len(o, s, (gssize)n);
            s += n;
        }
        return g_string_free(o, FALSE);
    }
    g_autofree char *c = collapse_ws(text);
    g_autoptr(GPtrArray) lines = wrap(c, width, indent);
    g_ptr_array_add(lines, NULL);
    return g_strjoinv("\n", (char **)lines->pdata);
}

/* _format_text() */
static char *format_text(Fmt *f, const char *text)
{
    if (!text || SUPPRESSED(text))
        return g_strdup("");
    g_autofree char *t = NULL;
    if (strstr(text, "%(prog)")) {
        GString *o = g_string_new(NULL);
        for (const char *s = text; *s; s++) {
            if (g_str_has_prefix(s, "%(prog)s")) {
                g_string_append(o, f->p->prog);
                s += 7;
            } else if (s[0] == '%' && s[1] == '%') {
                g_string_append_c(o, '%');
                s++;
            } else {
                g_string_append_c(o, *s);
            }
        }
        t = g_string_free(o, FALSE);
        text = t;
    }
    glong w = MAX(f->width - f->indent, 11);
    g_autofree char *indent = g_strnfill((gsize)f->indent, ' ');
    g_autofree char *filled = fill_text(f, text, w, indent);
    return g_strdup_printf("%s\n\n", filled);
}

static GPtrArray *subactions(const ArgsAction *a)
{
    return a->choices_actions;
}

/* _format_action() */
static void format_action(Fmt *f, GString *o, const ArgsAction *a)
{
    glong help_position = MIN(f->action_max_length + 2, f->max_help_position);
    glong help_width = MAX(f->width - help_position, 11);
    glong action_width = help_position - f->indent - 2;
    g_autofree char *header = invocation(a);
    glong indent_first = 0;
    gboolean header_nl = FALSE;
    if (!a->help) {
        pad(o, f->indent);
        g_string_append_printf(o, "%s\n", header);
        header_nl = TRUE;
    } else if (ulen(header) <= action_width) {
        pad(o, f->indent);
        g_string_append(o, header);
        pad(o, action_width - ulen(header) + 2);
    } else {
        pad(o, f->indent);
        g_string_append_printf(o, "%s\n", header);
        header_nl = TRUE;
        indent_first = help_position;
    }
    g_autofree char *stripped = a->help ? g_strstrip(g_strdup(a->help)) : NULL;
    if (a->help && *stripped) {
        g_autofree char *text = expand_help(f, a);
        if (*text) {
            g_autoptr(GPtrArray) lines = split_lines(f, text, help_width);
            for (guint i = 0; i < lines->len; i++) {
                pad(o, i ? help_position : indent_first);
                g_string_append_printf(o, "%s\n", (char *)lines->pdata[i]);
            }
        }
    } else if (!header_nl) {
        g_string_append_c(o, '\n');
    }
    GPtrArray *subs = subactions(a);
    if (subs) {
        f->indent += 2;
        for (guint i = 0; i < subs->len; i++)
            format_action(f, o, subs->pdata[i]);
        f->indent -= 2;
    }
}

static void measure(Fmt *f, const ArgsAction *a, glong indent)
{
    if (help_hidden(a))
        return;
    g_autofree char *inv = invocation(a);
    f->action_max_length = MAX(f->action_max_length, ulen(inv) + indent);
    /* argparse measures the subcommands at the section's indent */
    GPtrArray *subs = subactions(a);
    for (guint i = 0; subs && i < subs->len; i++) {
        g_autofree char *s = invocation(subs->pdata[i]);
        f->action_max_length = MAX(f->action_max_length, ulen(s) + indent);
    }
}

/* The usage text, with %(prog)s of a given usage expanded ("" for a
 * usage of SUPPRESS). */
static char *usage_text(Fmt *f, GPtrArray *actions, const char *prefix)
{
    ArgsParser *p = f->p;
    if (p->usage && strcmp(p->usage, ARGS_SUPPRESS) == 0)
        return g_strdup("");
    if (p->usage && strstr(p->usage, "%(prog)s")) {
        g_autofree char *saved = p->usage;
        g_autoptr(GString) u = g_string_new(NULL);
        for (const char *s = saved; *s; s++) {
            if (g_str_has_prefix(s, "%(prog)s")) {
                g_string_append(u, p->prog);
                s += 7;
            } else {
                g_string_append_c(u, *s);
            }
        }
        p->usage = u->str;
        char *out = format_usage(f, actions, prefix);
        p->usage = g_steal_pointer(&saved);
        return out;
    }
    return format_usage(f, actions, prefix);
}

/* format_help()'s final touch: no run of 3+ newlines, one at the end. */
static char *finish(GString *o)
{
    g_autofree char *s = g_string_free(o, FALSE);
    g_autofree char *t = regex_sub("\n\n\n+", s, "\n\n");
    const char *a = t;
    while (*a == '\n')
        a++;
    gsize n = strlen(a);
    while (n && a[n - 1] == '\n')
        n--;
    if (!n)
        return g_strdup("");
    return g_strdup_printf("%.*s\n", (int)n, a);
}

char *args_format_usage(ArgsParser *p)
{
    Fmt f;
    fmt_init(&f, p);
    GString *o = g_string_new(NULL);
    g_autofree char *u = usage_text(&f, p->actions, NULL);
    g_string_append(o, u);
    return finish(o);
}

char *args_format_help(ArgsParser *p)
{
    Fmt f;
    fmt_init(&f, p);
    for (guint s = 0; s < p->sections->len; s++) {
        Section *sec = p->sections->pdata[s];
        for (guint i = 0; i < sec->actions->len; i++)
            measure(&f, sec->actions->pdata[i], 2);
    }
    GString *o = g_string_new(NULL);
    g_autofree char *u = usage_text(&f, p->actions, NULL);
    g_string_append(o, u);
    g_autofree char *d = format_text(&f, p->description);
    g_string_append(o, d);
    for (guint s = 0; s < p->sections->len; s++) {
        Section *sec = p->sections->pdata[s];
        f.indent += 2;
        GString *items = g_string_new(NULL);
        g_autofree char *sd = format_text(&f, sec->description);
        g_string_append(items, sd);
        for (guint i = 0; i < sec->actions->len; i++)
            if (!help_hidden(sec->actions->pdata[i]))
                format_action(&f, items, sec->actions->pdata[i]);
        f.indent -= 2;
        if (items->len)
            g_string_append_printf(o, "\n%s:\n%s\n", sec->title, items->str);
        g_string_free(items, TRUE);
    }
    g_autofree char *e = format_text(&f, p->epilog);
    g_string_append(o, e);
    return finish(o);
}

void args_exit(int status, const char *message)
{
    if (message)
        fputs(message, stderr);
    fflush(stdout);
    fflush(stderr);
    exit(status);
}

void args_error(ArgsParser *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_autofree char *usage = args_format_usage(p);
    fputs(usage, stderr);
    g_autofree char *line = g_strdup_printf("%s: error: %s\n", p->prog, msg);
    args_exit(2, line);
}

/* ---- subcommands ---- */

ArgsAction *args_add_subparsers(ArgsParser *p, const char *dest,
                                const char *title, const char *description,
                                const char *metavar, const char *help,
                                gboolean required)
{
    int section = 0;
    if (title || description)
        section =
            args_add_section(p, title ? title : "subcommands", description);
    /* the prog of the subcommands: this one's, with the positionals
     * before them */
    Fmt f;
    fmt_init(&f, p);
    g_autoptr(GPtrArray) pos = g_ptr_array_new();
    for (guint i = 0; i < p->actions->len; i++) {
        ArgsAction *a = p->actions->pdata[i];
        if (!a->option_strings->len)
            g_ptr_array_add(pos, a);
    }
    g_autofree char *u = usage_text(&f, pos, "");
    ArgsSpec spec = {.names = "",
                     .action = ARGS_STORE,
                     .nargs = ARGS_PARSER,
                     .dest = dest ? dest : ARGS_SUPPRESS,
                     .metavar = metavar,
                     .help = help,
                     .required = required};
    ArgsAction *a = args_add_in(p, section, 0, &spec);
    /* add_subparsers() does not make it required as a positional is */
    a->required = required;
    a->prog_prefix = g_strdup(g_strstrip(u));
    a->choices = g_ptr_array_new_with_free_func(g_free);
    a->sub_parsers = g_ptr_array_new();
    a->choices_actions =
        g_ptr_array_new_with_free_func((GDestroyNotify)action_free);
    p->subparsers = a;
    return a;
}

ArgsParser *args_add_parser(ArgsAction *sp, const char *name,
                            const char *const *aliases, const char *help,
                            const char *description, const char *epilog,
                            ArgsFormatterKind formatter)
{
    g_autofree char *prog = g_strdup_printf("%s %s", sp->prog_prefix, name);
    ArgsParser *child =
        args_parser_new(prog, NULL, description, epilog, formatter);
    g_ptr_array_add(sp->owner->children, child);
    g_ptr_array_add(sp->choices, g_strdup(name));
    g_ptr_array_add(sp->sub_parsers, child);
    for (const char *const *al = aliases; al && *al; al++) {
        g_ptr_array_add(sp->choices, g_strdup(*al));
        g_ptr_array_add(sp->sub_parsers, child);
    }
    if (help) {
        ArgsAction *c = g_new0(ArgsAction, 1);
        c->option_strings = g_ptr_array_new_with_free_func(g_free);
        c->dest = g_strdup(name);
        GString *mv = g_string_new(name);
        if (aliases && *aliases) {
            g_string_append(mv, " (");
            for (const char *const *al = aliases; *al; al++)
                g_string_append_printf(
                    mv, "%s%s",
                    al == aliases ? "" : (sp->qubes_aliases ? "," : ", "), *al);
            g_string_append_c(mv, ')');
        }
        c->metavar = g_string_free(mv, FALSE);
        if (SUPPRESSED(help)) {
            c->help = (char *)ARGS_SUPPRESS;
            c->help_suppressed = TRUE;
        } else {
            c->help = g_strdup(help);
        }
        c->nargs = ARGS_NARGS_NONE;
        g_ptr_array_add(sp->choices_actions, c);
    }
    return child;
}

/* ---- parsing ---- */

typedef struct {
    ArgsParser *p;
    ArgsNamespace *ns;
    GPtrArray *args; /* char*, borrowed */
    GString *pattern;
    GHashTable *opt_action;   /* index -> ArgsAction* (NULL: unknown) */
    GHashTable *opt_string;   /* index -> char* (owned) */
    GHashTable *opt_explicit; /* index -> char* (owned; absent: none) */
    GHashTable *seen, *seen_non_default;
    GPtrArray *extras;
    GPtrArray *positionals; /* ArgsAction* left */
} Parse;

static gboolean looks_negative(const char *s)
{
    return g_regex_match_simple("^-\\d+$|^-\\d*\\.\\d+$", s, 0, 0);
}

static gboolean has_negative_number_optionals(ArgsParser *p)
{
    for (guint i = 0; i < p->options->len; i++)
        if (looks_negative(p->options->pdata[i]))
            return TRUE;
    return FALSE;
}

/* _parse_optional(): FALSE for a positional; else the action (NULL: an
 * unknown option), its option string and explicit argument. */
static gboolean parse_optional(ArgsParser *p, const char *arg,
                               ArgsAction **action, char **option_string,
                               char **explicit)
{
    *action = NULL;
    *option_string = NULL;
    *explicit = NULL;
    if (!*arg || arg[0] != '-')
        return FALSE;
    ArgsAction *a = g_hash_table_lookup(p->option_map, arg);
    if (a) {
        *action = a;
        *option_string = g_strdup(arg);
        return TRUE;
    }
    if (!arg[1])
        return FALSE;
    const char *eq = strchr(arg, '=');
    if (eq) {
        g_autofree char *o = g_strndup(arg, (gsize)(eq - arg));
        a = g_hash_table_lookup(p->option_map, o);
        if (a) {
            *action = a;
            *option_string = g_steal_pointer(&o);
            *explicit = g_strdup(eq + 1);
            return TRUE;
        }
    }
    /* _get_option_tuples() */
    g_autoptr(GPtrArray) hits = g_ptr_array_new(); /* option strings */
    g_autoptr(GPtrArray) hit_explicit = g_ptr_array_new_with_free_func(g_free);
    if (arg[1] == '-' && p->no_abbrev) {
        /* allow_abbrev=False: a long option only whole */
    } else if (arg[1] == '-') {
        g_autofree char *prefix =
            eq ? g_strndup(arg, (gsize)(eq - arg)) : g_strdup(arg);
        for (guint i = 0; i < p->options->len; i++)
            if (g_str_has_prefix(p->options->pdata[i], prefix)) {
                g_ptr_array_add(hits, p->options->pdata[i]);
                g_ptr_array_add(hit_explicit, eq ? g_strdup(eq + 1) : NULL);
            }
    } else {
        g_autofree char *short_prefix = g_strndup(arg, 2);
        for (guint i = 0; i < p->options->len; i++) {
            const char *o = p->options->pdata[i];
            if (strcmp(o, short_prefix) == 0) {
                g_ptr_array_add(hits, (gpointer)o);
                g_ptr_array_add(hit_explicit, g_strdup(arg + 2));
            } else if (g_str_has_prefix(o, arg)) {
                g_ptr_array_add(hits, (gpointer)o);
                g_ptr_array_add(hit_explicit, NULL);
            }
        }
    }
    if (hits->len > 1) {
        GString *m = g_string_new(NULL);
        for (guint i = 0; i < hits->len; i++)
            g_string_append_printf(m, "%s%s", i ? ", " : "",
                                   (char *)hits->pdata[i]);
        g_autofree char *ms = g_string_free(m, FALSE);
        args_error(p, "ambiguous option: %s could match %s", arg, ms);
    }
    if (hits->len == 1) {
        *action = g_hash_table_lookup(p->option_map, hits->pdata[0]);
        *option_string = g_strdup(hits->pdata[0]);
        *explicit = g_strdup(hit_explicit->pdata[0]);
        return TRUE;
    }
    if (looks_negative(arg) && !has_negative_number_optionals(p))
        return FALSE;
    if (strchr(arg, ' '))
        return FALSE;
    *option_string = g_strdup(arg);
    return TRUE;
}

/* _get_nargs_pattern() */
static char *nargs_pattern(const ArgsAction *a)
{
    const char *pat;
    g_autofree char *n = NULL;
    switch (a->nargs) {
    case ARGS_NARGS_NONE:
        pat = "(-*A-*)";
        break;
    case ARGS_OPTIONAL:
        pat = "(-*A?-*)";
        break;
    case ARGS_ZERO_OR_MORE:
        pat = "(-*[A-]*)";
        break;
    case ARGS_ONE_OR_MORE:
        pat = "(-*A[A-]*)";
        break;
    case ARGS_REMAINDER:
        pat = "([-AO]*)";
        break;
    case ARGS_PARSER:
        pat = "(-*A[-AO]*)";
        break;
    default: {
        GString *s = g_string_new("(-*");
        for (int i = 0; i < a->nargs; i++)
            g_string_append(s, i ? "-*A" : "A");
        g_string_append(s, "-*)");
        n = g_string_free(s, FALSE);
        pat = n;
    }
    }
    if (!a->option_strings->len)
        return g_strdup(pat);
    g_autofree char *x = regex_sub("-\\*", pat, "");
    return regex_sub("-", x, "");
}

static gboolean anchored_match(const char *pattern, const char *text,
                               GArray *lens)
{
    GRegex *re = g_regex_new(pattern, G_REGEX_ANCHORED, 0, NULL);
    GMatchInfo *mi = NULL;
    gboolean ok = g_regex_match(re, text, 0, &mi);
    if (ok && lens) {
        int groups = g_match_info_get_match_count(mi);
        for (int g = 1; g < groups; g++) {
            int s = 0, e = 0;
            g_match_info_fetch_pos(mi, g, &s, &e);
            int len = e - s;
            g_array_append_val(lens, len);
        }
    }
    g_match_info_free(mi);
    g_regex_unref(re);
    return ok;
}

static void argument_error(Parse *ps, const ArgsAction *a, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4) G_GNUC_NORETURN;
static void argument_error(Parse *ps, const ArgsAction *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_autofree char *name = a ? args_action_name(a) : NULL;
    if (name)
        args_error(ps->p, "argument %s: %s", name, msg);
    args_error(ps->p, "%s", msg);
}

/* _match_argument() */
static int match_argument(Parse *ps, const ArgsAction *a, const char *pattern)
{
    g_autofree char *np = nargs_pattern(a);
    g_autoptr(GArray) lens = g_array_new(FALSE, FALSE, sizeof(int));
    if (!anchored_match(np, pattern, lens)) {
        switch (a->nargs) {
        case ARGS_NARGS_NONE:
            argument_error(ps, a, "expected one argument");
        case ARGS_OPTIONAL:
            argument_error(ps, a, "expected at most one argument");
        case ARGS_ONE_OR_MORE:
            argument_error(ps, a, "expected at least one argument");
        default:
            argument_error(ps, a, "expected %d argument%s", a->nargs,
                           a->nargs == 1 ? "" : "s");
        }
    }
    return g_array_index(lens, int, 0);
}

gboolean args_py_int(const char *s, gint64 *out)
{
    g_autofree char *t = g_strstrip(g_strdup(s));
    const char *p = t;
    gboolean neg = FALSE;
    if (*p == '+' || *p == '-')
        neg = *p++ == '-';
    if (!g_ascii_isdigit(*p))
        return FALSE;
    gint64 v = 0;
    gboolean under = FALSE;
    for (; *p; p++) {
        if (*p == '_' && !under && g_ascii_isdigit(p[1])) {
            under = TRUE;
            continue;
        }
        if (!g_ascii_isdigit(*p))
            return FALSE;
        under = FALSE;
        if (v > (G_MAXINT64 - 9) / 10)
            return FALSE; /* past what we hold (Python's has no end) */
        v = v * 10 + (*p - '0');
    }
    *out = neg ? -v : v;
    return TRUE;
}

char *args_py_int_error(const char *s)
{
    g_autofree char *r = args_py_repr(s);
    return g_strdup_printf("invalid literal for int() with base 10: %s", r);
}

/* _get_value() and _check_value() of one string */
static ArgValue *convert(Parse *ps, const ArgsAction *a, const char *s,
                         gboolean check)
{
    ArgValue *v;
    if (a->is_int) {
        gint64 i;
        if (!args_py_int(s, &i)) {
            g_autofree char *r = args_py_repr(s);
            argument_error(ps, a, "invalid int value: %s", r);
        }
        v = args_value_new(ARGV_INT);
        v->i = i;
    } else {
        v = args_value_str(s);
    }
    if (check && a->choices) {
        gboolean ok = FALSE;
        for (guint i = 0; i < a->choices->len && !ok; i++)
            ok = strcmp(a->choices->pdata[i], s) == 0;
        if (!ok) {
            GString *c = g_string_new(NULL);
            for (guint i = 0; i < a->choices->len; i++) {
                g_autofree char *r = args_py_repr(a->choices->pdata[i]);
                g_string_append_printf(c, "%s%s", i ? ", " : "", r);
            }
            g_autofree char *cs = g_string_free(c, FALSE);
            g_autofree char *r = args_py_repr(s);
            argument_error(ps, a, "invalid choice: %s (choose from %s)", r, cs);
        }
    }
    return v;
}

/* A default as the namespace holds it. */
static ArgValue *default_value(const ArgsAction *a, const char *deflt,
                               ArgValueType type)
{
    if (type == ARGV_BOOL) {
        ArgValue *v = args_value_new(ARGV_BOOL);
        v->i = g_strcmp0(deflt, "True") == 0;
        return v;
    }
    if (type == ARGV_LIST)
        return args_value_new(ARGV_LIST);
    if (type == ARGV_INT) {
        ArgValue *v = args_value_new(ARGV_INT);
        v->i = g_ascii_strtoll(deflt ? deflt : "0", NULL, 10);
        return v;
    }
    return args_value_str(deflt);
}

/* _get_values(): the value (NULL: SUPPRESS); *is_default when argparse
 * would find it to be the action's default object. */
static ArgValue *get_values(Parse *ps, const ArgsAction *a, GPtrArray *strs,
                            gboolean *is_default)
{
    *is_default = FALSE;
    if (a->nargs != ARGS_PARSER && a->nargs != ARGS_REMAINDER)
        for (guint i = 0; i < strs->len; i++)
            if (strcmp(strs->pdata[i], "--") == 0) {
                g_ptr_array_remove_index(strs, i);
                break;
            }
    gboolean positional = !a->option_strings->len;
    if (!strs->len && a->nargs == ARGS_OPTIONAL) {
        const char *v = positional ? a->deflt : a->konst;
        *is_default = positional || (!a->konst && !a->deflt);
        if (positional && a->deflt_suppressed)
            return NULL;
        if (positional && a->deflt_type != ARGV_NONE)
            return default_value(a, a->deflt, a->deflt_type);
        return v ? convert(ps, a, v, TRUE) : args_value_new(ARGV_NONE);
    }
    if (!strs->len && a->nargs == ARGS_ZERO_OR_MORE && positional) {
        if (a->deflt_suppressed)
            return NULL;
        if (a->deflt || a->deflt_type != ARGV_NONE) {
            *is_default = TRUE;
            return default_value(a, a->deflt, a->deflt_type);
        }
        return args_value_new(ARGV_LIST);
    }
    if (strs->len == 1 &&
        (a->nargs == ARGS_NARGS_NONE || a->nargs == ARGS_OPTIONAL))
        return convert(ps, a, strs->pdata[0], TRUE);
    ArgValue *list = args_value_new(ARGV_LIST);
    for (guint i = 0; i < strs->len; i++) {
        gboolean check =
            a->nargs != ARGS_REMAINDER && (a->nargs != ARGS_PARSER || i == 0);
        g_autoptr(GError) e = NULL;
        ArgValue *one = convert(ps, a, strs->pdata[i], check);
        g_ptr_array_add(list->list,
                        one->type == ARGV_INT
                            ? g_strdup_printf("%" G_GINT64_FORMAT, one->i)
                            : g_strdup(one->s));
        args_value_free(one);
    }
    return list;
}

static ArgsNamespace *parse_known(ArgsParser *p, GPtrArray *args,
                                  ArgsNamespace *ns, GPtrArray *extras);

static void perform(Parse *ps, ArgsAction *a, ArgValue *v, GPtrArray *strs,
                    const char *option_string)
{
    ArgsNamespace *ns = ps->ns;
    switch (a->kind) {
    case ARGS_STORE:
        if (a->nargs == ARGS_PARSER) {
            /* a subcommand: its parser takes the rest */
            const char *name = v->list->pdata[0];
            if (!a->dest_suppressed)
                args_set(ns, a->dest, args_value_str(name));
            ArgsParser *sub = NULL;
            for (guint i = 0; i < a->choices->len && !sub; i++)
                if (strcmp(a->choices->pdata[i], name) == 0)
                    sub = a->sub_parsers->pdata[i];
            g_autoptr(GPtrArray) rest = g_ptr_array_new();
            for (guint i = 1; i < v->list->len; i++)
                g_ptr_array_add(rest, v->list->pdata[i]);
            g_autoptr(GPtrArray) sub_extras =
                g_ptr_array_new_with_free_func(g_free);
            ArgsNamespace *subns =
                parse_known(sub, rest, namespace_new(), sub_extras);
            GHashTableIter it;
            gpointer k, val;
            g_hash_table_iter_init(&it, subns->values);
            while (g_hash_table_iter_next(&it, &k, &val))
                args_set(ns, k, value_copy(val));
            for (guint i = 0; i < sub_extras->len; i++)
                g_ptr_array_add(ns->unrecognized,
                                g_strdup(sub_extras->pdata[i]));
            args_namespace_free(subns);
            args_value_free(v);
            return;
        }
        args_set(ns, a->dest, v);
        return;
    case ARGS_STORE_CONST:
        args_value_free(v);
        args_set(ns, a->dest, args_value_str(a->konst));
        return;
    case ARGS_STORE_TRUE:
    case ARGS_STORE_FALSE: {
        args_value_free(v);
        ArgValue *b = args_value_new(ARGV_BOOL);
        b->i = a->kind == ARGS_STORE_TRUE;
        args_set(ns, a->dest, b);
        return;
    }
    case ARGS_APPEND:
    case ARGS_APPEND_CONST: {
        const ArgValue *cur = args_get(ns, a->dest);
        ArgValue *l = cur && cur->type == ARGV_LIST ? value_copy(cur)
                                                    : args_value_new(ARGV_LIST);
        if (a->kind == ARGS_APPEND_CONST)
            g_ptr_array_add(l->list, g_strdup(a->konst));
        else if (v->type == ARGV_LIST)
            for (guint i = 0; i < v->list->len; i++)
                g_ptr_array_add(l->list, g_strdup(v->list->pdata[i]));
        else if (v->type == ARGV_INT)
            g_ptr_array_add(l->list,
                            g_strdup_printf("%" G_GINT64_FORMAT, v->i));
        else
            g_ptr_array_add(l->list, g_strdup(v->s));
        args_value_free(v);
        args_set(ns, a->dest, l);
        return;
    }
    case ARGS_COUNT: {
        args_value_free(v);
        const ArgValue *cur = args_get(ns, a->dest);
        ArgValue *c = args_value_new(ARGV_INT);
        c->i = (cur && cur->type == ARGV_INT ? cur->i : 0) + 1;
        args_set(ns, a->dest, c);
        return;
    }
    case ARGS_HELP: {
        args_value_free(v);
        g_autofree char *h = args_format_help(ps->p);
        fputs(h, stdout);
        args_exit(0, NULL);
    }
    case ARGS_HELP_ALL: {
        args_value_free(v);
        g_autofree char *h = args_format_help(ps->p);
        fputs(h, stdout);
        ArgsAction *sp = ps->p->subparsers;
        for (guint i = 0; sp && i < sp->choices_actions->len; i++) {
            const ArgsAction *c = sp->choices_actions->pdata[i];
            g_autofree char *choice = g_strdup(c->dest);
            char *space = strchr(choice, ' ');
            if (space)
                *space = '\0';
            ArgsParser *sub = NULL;
            for (guint k = 0; k < sp->choices->len && !sub; k++)
                if (strcmp(sp->choices->pdata[k], choice) == 0)
                    sub = sp->sub_parsers->pdata[k];
            printf("\nCommand '%s':\n", choice);
            g_autofree char *u = args_format_usage(sub);
            g_auto(GStrv) lines = g_strsplit(u, "\n", -1);
            guint n = g_strv_length(lines);
            if (n && !*lines[n - 1])
                n--;
            for (guint k = 0; k < n; k++)
                printf("%s  %s", k ? "\n" : "", lines[k]);
            printf("\n");
        }
        args_exit(0, NULL);
    }
    case ARGS_VERSION: {
        args_value_free(v);
        Fmt f;
        fmt_init(&f, ps->p);
        GString *o = g_string_new(NULL);
        g_autofree char *t = format_text(&f, ps->p->version);
        g_string_append(o, t);
        g_autofree char *out = finish(o);
        fputs(out, stdout);
        args_exit(0, NULL);
    }
    case ARGS_CALLBACK:
        a->callback(ps->p, ns, a, strs, option_string, a->callback_data);
        args_value_free(v);
        return;
    }
}

static void take_action(Parse *ps, ArgsAction *a, GPtrArray *strs,
                        const char *option_string)
{
    g_hash_table_add(ps->seen, a);
    g_autoptr(GPtrArray) copy = g_ptr_array_new();
    g_ptr_array_extend(copy, strs, NULL, NULL);
    gboolean is_default = FALSE;
    ArgValue *v = get_values(ps, a, copy, &is_default);
    if (!is_default) {
        g_hash_table_add(ps->seen_non_default, a);
        if (a->mutex) {
            Mutex *m = ps->p->mutexes->pdata[a->mutex - 1];
            for (guint i = 0; i < m->actions->len; i++) {
                ArgsAction *other = m->actions->pdata[i];
                if (other != a &&
                    g_hash_table_contains(ps->seen_non_default, other)) {
                    args_value_free(v);
                    g_autofree char *on = args_action_name(other);
                    argument_error(ps, a, "not allowed with argument %s", on);
                }
            }
        }
    }
    if (v)
        perform(ps, a, v, copy, option_string);
}

static GPtrArray *slice(GPtrArray *args, guint from, guint to)
{
    GPtrArray *out = g_ptr_array_new();
    for (guint i = from; i < to && i < args->len; i++)
        g_ptr_array_add(out, args->pdata[i]);
    return out;
}

/* consume_optional() */
static guint consume_optional(Parse *ps, guint start)
{
    gpointer key = GUINT_TO_POINTER(start);
    ArgsAction *action = g_hash_table_lookup(ps->opt_action, key);
    g_autofree char *option_string =
        g_strdup(g_hash_table_lookup(ps->opt_string, key));
    g_autofree char *explicit =
        g_strdup(g_hash_table_lookup(ps->opt_explicit, key));
    gboolean has_explicit = g_hash_table_contains(ps->opt_explicit, key);
    typedef struct {
        ArgsAction *a;
        GPtrArray *args;
        char *opt;
    } Tuple;
    GArray *tuples = g_array_new(FALSE, FALSE, sizeof(Tuple));
    guint stop = start + 1;
    for (;;) {
        if (!action) {
            g_ptr_array_add(ps->extras, g_strdup(ps->args->pdata[start]));
            g_array_free(tuples, TRUE);
            return start + 1;
        }
        if (has_explicit) {
            int count = match_argument(ps, action, "A");
            if (count == 0 && option_string[1] != '-' && *explicit) {
                Tuple t = {action, g_ptr_array_new(), g_strdup(option_string)};
                g_array_append_val(tuples, t);
                char next[3] = {'-', explicit[0], 0};
                ArgsAction *na = g_hash_table_lookup(ps->p->option_map, next);
                if (!na) {
                    g_autofree char *r = args_py_repr(explicit);
                    argument_error(ps, action, "ignored explicit argument %s",
                                   r);
                }
                action = na;
                g_free(option_string);
                option_string = g_strdup(next);
                char *rest = explicit[1] ? g_strdup(explicit + 1) : NULL;
                g_free(explicit);
                explicit = rest;
                has_explicit = rest != NULL;
            } else if (count == 1) {
                stop = start + 1;
                GPtrArray *one = g_ptr_array_new();
                g_ptr_array_add(one, explicit);
                Tuple t = {action, one, g_strdup(option_string)};
                g_array_append_val(tuples, t);
                break;
            } else {
                g_autofree char *r = args_py_repr(explicit);
                argument_error(ps, action, "ignored explicit argument %s", r);
            }
        } else {
            guint from = start + 1;
            const char *sel = ps->pattern->str + MIN(from, ps->pattern->len);
            int count = match_argument(ps, action, sel);
            stop = from + (guint)count;
            Tuple t = {action, slice(ps->args, from, stop),
                       g_strdup(option_string)};
            g_array_append_val(tuples, t);
            break;
        }
    }
    for (guint i = 0; i < tuples->len; i++) {
        Tuple *t = &g_array_index(tuples, Tuple, i);
        take_action(ps, t->a, t->args, t->opt);
        g_ptr_array_unref(t->args);
        g_free(t->opt);
    }
    g_array_free(tuples, TRUE);
    return stop;
}

/* consume_positionals() */
static guint consume_positionals(Parse *ps, guint start)
{
    const char *sel = ps->pattern->str + MIN(start, ps->pattern->len);
    g_autoptr(GArray) counts = g_array_new(FALSE, FALSE, sizeof(int));
    for (guint n = ps->positionals->len; n > 0; n--) {
        GString *pat = g_string_new(NULL);
        for (guint i = 0; i < n; i++) {
            g_autofree char *one = nargs_pattern(ps->positionals->pdata[i]);
            g_string_append(pat, one);
        }
        gboolean ok = anchored_match(pat->str, sel, counts);
        g_string_free(pat, TRUE);
        if (ok)
            break;
        g_array_set_size(counts, 0);
    }
    for (guint i = 0; i < counts->len; i++) {
        int c = g_array_index(counts, int, i);
        g_autoptr(GPtrArray) args = slice(ps->args, start, start + (guint)c);
        start += (guint)c;
        take_action(ps, ps->positionals->pdata[i], args, NULL);
    }
    g_ptr_array_remove_range(ps->positionals, 0, counts->len);
    return start;
}

static ArgsNamespace *parse_known(ArgsParser *p, GPtrArray *args,
                                  ArgsNamespace *ns, GPtrArray *extras)
{
    /* the defaults */
    for (guint i = 0; i < p->actions->len; i++) {
        ArgsAction *a = p->actions->pdata[i];
        if (a->dest_suppressed || a->deflt_suppressed || args_get(ns, a->dest))
            continue;
        args_set(ns, a->dest, default_value(a, a->deflt, a->deflt_type));
    }
    for (guint i = 0; i < p->defaults->len; i++) {
        Default *d = p->defaults->pdata[i];
        if (!args_get(ns, d->dest))
            args_set(ns, d->dest, value_copy(d->value));
    }

    Parse ps = {.p = p, .ns = ns, .args = args, .extras = extras};
    ps.pattern = g_string_new(NULL);
    ps.opt_action = g_hash_table_new(NULL, NULL);
    ps.opt_string = g_hash_table_new_full(NULL, NULL, NULL, g_free);
    ps.opt_explicit = g_hash_table_new_full(NULL, NULL, NULL, g_free);
    ps.seen = g_hash_table_new(NULL, NULL);
    ps.seen_non_default = g_hash_table_new(NULL, NULL);
    ps.positionals = g_ptr_array_new();
    for (guint i = 0; i < p->actions->len; i++) {
        ArgsAction *a = p->actions->pdata[i];
        if (!a->option_strings->len)
            g_ptr_array_add(ps.positionals, a);
    }
    GArray *opt_idx = g_array_new(FALSE, FALSE, sizeof(guint));
    for (guint i = 0; i < args->len; i++) {
        const char *s = args->pdata[i];
        if (strcmp(s, "--") == 0) {
            g_string_append_c(ps.pattern, '-');
            for (i++; i < args->len; i++)
                g_string_append_c(ps.pattern, 'A');
            break;
        }
        ArgsAction *a;
        char *os, *ex;
        if (parse_optional(p, s, &a, &os, &ex)) {
            gpointer k = GUINT_TO_POINTER(i);
            g_hash_table_insert(ps.opt_action, k, a);
            g_hash_table_insert(ps.opt_string, k, os);
            if (ex)
                g_hash_table_insert(ps.opt_explicit, k, ex);
            g_array_append_val(opt_idx, i);
            g_string_append_c(ps.pattern, 'O');
        } else {
            g_string_append_c(ps.pattern, 'A');
        }
    }

    guint start = 0;
    gint max_opt = opt_idx->len
                       ? (gint)g_array_index(opt_idx, guint, opt_idx->len - 1)
                       : -1;
    while ((gint)start <= max_opt) {
        guint next_opt = G_MAXUINT;
        for (guint k = 0; k < opt_idx->len; k++) {
            guint x = g_array_index(opt_idx, guint, k);
            if (x >= start && x < next_opt)
                next_opt = x;
        }
        if (start != next_opt) {
            guint end = consume_positionals(&ps, start);
            if (end > start) {
                start = end;
                continue;
            }
            start = end;
        }
        if (!g_hash_table_contains(ps.opt_string, GUINT_TO_POINTER(start))) {
            for (guint i = start; i < next_opt; i++)
                g_ptr_array_add(extras, g_strdup(args->pdata[i]));
            start = next_opt;
        }
        start = consume_optional(&ps, start);
    }
    guint stop = consume_positionals(&ps, start);
    for (guint i = stop; i < args->len; i++)
        g_ptr_array_add(extras, g_strdup(args->pdata[i]));

    /* required arguments, and string defaults of int arguments */
    GString *missing = NULL;
    for (guint i = 0; i < p->actions->len; i++) {
        ArgsAction *a = p->actions->pdata[i];
        if (g_hash_table_contains(ps.seen, a))
            continue;
        if (a->required) {
            g_autofree char *n = args_action_name(a);
            if (!missing)
                missing = g_string_new(n);
            else
                g_string_append_printf(missing, ", %s", n);
        } else if (a->is_int && a->deflt && a->deflt_type == ARGV_NONE &&
                   !a->dest_suppressed) {
            const ArgValue *cur = args_get(ns, a->dest);
            if (cur && cur->type == ARGV_STR &&
                g_strcmp0(cur->s, a->deflt) == 0)
                args_set(ns, a->dest, convert(&ps, a, a->deflt, FALSE));
        }
    }
    if (missing) {
        g_autofree char *m = g_string_free(missing, FALSE);
        args_error(p, "the following arguments are required: %s", m);
    }
    for (guint g = 0; g < p->mutexes->len; g++) {
        Mutex *m = p->mutexes->pdata[g];
        if (!m->required)
            continue;
        gboolean any = FALSE;
        for (guint i = 0; i < m->actions->len && !any; i++)
            any = g_hash_table_contains(ps.seen_non_default,
                                        m->actions->pdata[i]);
        if (!any) {
            GString *n = g_string_new(NULL);
            for (guint i = 0; i < m->actions->len; i++) {
                ArgsAction *a = m->actions->pdata[i];
                if (help_hidden(a))
                    continue;
                g_autofree char *nm = args_action_name(a);
                g_string_append_printf(n, "%s%s", n->len ? " " : "", nm);
            }
            g_autofree char *ns_ = g_string_free(n, FALSE);
            args_error(p, "one of the arguments %s is required", ns_);
        }
    }
    for (guint i = 0; i < ns->unrecognized->len; i++)
        g_ptr_array_add(extras, g_strdup(ns->unrecognized->pdata[i]));
    g_ptr_array_set_size(ns->unrecognized, 0);
    g_array_free(opt_idx, TRUE);
    g_string_free(ps.pattern, TRUE);
    g_hash_table_unref(ps.opt_action);
    g_hash_table_unref(ps.opt_string);
    g_hash_table_unref(ps.opt_explicit);
    g_hash_table_unref(ps.seen);
    g_hash_table_unref(ps.seen_non_default);
    g_ptr_array_unref(ps.positionals);
    return ns;
}

ArgsNamespace *args_parse_known(ArgsParser *p, int argc, char **argv,
                                GPtrArray *extras)
{
    g_autoptr(GPtrArray) args = g_ptr_array_new();
    for (int i = 1; i < argc; i++)
        g_ptr_array_add(args, argv[i]);
    return parse_known(p, args, namespace_new(), extras);
}

ArgsNamespace *args_parse(ArgsParser *p, int argc, char **argv)
{
    g_autoptr(GPtrArray) extras = g_ptr_array_new_with_free_func(g_free);
    ArgsNamespace *ns = args_parse_known(p, argc, argv, extras);
    if (extras->len) {
        g_ptr_array_add(extras, NULL);
        g_autofree char *j = g_strjoinv(" ", (char **)extras->pdata);
        args_error(p, "unrecognized arguments: %s", j);
    }
    return ns;
}
