/* argparse.h: command lines parsed, and help and errors written, as
 * Python's argparse (3.11) does for the Qubes client's tools, so that
 * our tools accept what the client's accept and say what they say.
 *
 * The parts the client's tools use: options with short and long names
 * (a unique prefix of a long name accepted, "--name=value",
 * "-ovalue", "-vq"), positional arguments, nargs None, N, '?', '*',
 * '+', REMAINDER and a subcommand's "A...", the actions store,
 * store_const, store_true, store_false, append, append_const, count,
 * help, version and a tool's own (a callback), choices, int values,
 * defaults, mutually exclusive groups (required or not), argument
 * groups for the help, and subcommands with aliases. Positionals and
 * options are matched the way argparse matches them (its pattern of
 * 'O', 'A' and '-', positionals taken greedily in runs between
 * options), so that what argparse refuses is refused here, in its
 * words.
 *
 * Output: usage and help formatted as argparse's HelpFormatter (or
 * RawTextHelpFormatter, RawDescriptionHelpFormatter) at the width of
 * $COLUMNS (else the terminal's, else 80) minus 2; an error is the usage
 * then "PROG: error: MESSAGE" on standard error and exit status 2;
 * --help prints to standard output and exits 0.
 *
 * Values: the namespace maps each destination to None, a string, a list
 * of strings, an int or a bool, as argparse's Namespace would hold it. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* nargs */
enum {
    ARGS_NARGS_NONE = -100, /* one value, not a list (argparse's None) */
    ARGS_OPTIONAL = -1,     /* '?' */
    ARGS_ZERO_OR_MORE = -2, /* '*' */
    ARGS_ONE_OR_MORE = -3,  /* '+' */
    ARGS_REMAINDER = -4,    /* '...' */
    ARGS_PARSER = -5,       /* 'A...': a subcommand and its arguments */
    ARGS_NARGS_ZERO = -99,  /* 0, for a callback that takes no value */
};

typedef enum {
    ARGS_STORE,
    ARGS_STORE_CONST,
    ARGS_STORE_TRUE,
    ARGS_STORE_FALSE,
    ARGS_APPEND,
    ARGS_APPEND_CONST,
    ARGS_COUNT,
    ARGS_HELP,
    ARGS_VERSION,
    ARGS_CALLBACK, /* the spec's callback takes the values */
    ARGS_HELP_ALL, /* the Qubes tools' --help: the help, then each
                      subcommand's usage ("Command 'NAME':") */
} ArgsActionKind;

typedef enum {
    ARGS_FORMAT_DEFAULT,
    ARGS_FORMAT_RAW_TEXT,        /* help texts and description as written */
    ARGS_FORMAT_RAW_DESCRIPTION, /* description and epilog as written */
} ArgsFormatterKind;

typedef enum {
    ARGV_NONE,
    ARGV_STR,
    ARGV_LIST,
    ARGV_INT,
    ARGV_BOOL,
} ArgValueType;

typedef struct {
    ArgValueType type;
    char *s;         /* ARGV_STR */
    GPtrArray *list; /* ARGV_LIST: char* */
    gint64 i;        /* ARGV_INT, ARGV_BOOL */
} ArgValue;

typedef struct _ArgsParser ArgsParser;
typedef struct _ArgsAction ArgsAction;
typedef struct _ArgsNamespace ArgsNamespace;

/* A tool's own action: @values are the strings it matched (NULL for
 * nargs NONE with... never: always an array, possibly empty). */
typedef void (*ArgsCallback)(ArgsParser *parser, ArgsNamespace *ns,
                             const ArgsAction *action, GPtrArray *values,
                             const char *option_string, gpointer data);

/* The text argparse.SUPPRESS stands for (a help not shown, a default
 * not set). */
extern const char ARGS_SUPPRESS[];

typedef struct {
    /* "-o --format" (options, space-separated) or "VMNAME" (positional) */
    const char *names;
    ArgsActionKind action;
    int nargs;                   /* 0: the action's own default */
    const char *dest;            /* NULL: from the names, as argparse */
    const char *metavar;         /* NULL: argparse's */
    const char *const *metavars; /* a tuple metavar (nargs N), NULL-ended */
    const char *help;            /* NULL: none; ARGS_SUPPRESS: hidden */
    const char *konst;           /* const */
    const char *deflt;           /* default (a string), NULL: None */
    ArgValueType deflt_type;     /* NONE: @deflt as a string; BOOL ("True",
                                    "False"), INT, LIST (an empty list) */
    const char *const *choices;
    gboolean required;
    gboolean is_int;       /* type=int */
    ArgsCallback callback; /* ARGS_CALLBACK */
    gpointer callback_data;
} ArgsSpec;

ArgsParser *args_parser_new(const char *prog, const char *usage,
                            const char *description, const char *epilog,
                            ArgsFormatterKind formatter);
void args_parser_free(ArgsParser *p);
/* The version --version prints. */
void args_parser_set_version(ArgsParser *p, const char *version);

/* Adds an argument to @p (to section @section, 0: the default ones; to
 * mutually exclusive group @mutex, 0: none). The spec is copied. */
ArgsAction *args_add(ArgsParser *p, const ArgsSpec *spec);
ArgsAction *args_add_in(ArgsParser *p, int section, int mutex,
                        const ArgsSpec *spec);
/* A section of the help (add_argument_group); its id. */
int args_add_section(ArgsParser *p, const char *title, const char *description);
/* A mutually exclusive group in @section (0: the default ones); its id. */
int args_add_mutex(ArgsParser *p, int section, gboolean required);
/* set_defaults(): @dest defaults to @value (a string; NULL: None), and
 * so do the actions of @dest; _value takes any value (taken). */
void args_set_default(ArgsParser *p, const char *dest, const char *value);
void args_set_default_value(ArgsParser *p, const char *dest, ArgValue *value);

/* allow_abbrev=False: a long option is not matched by its prefix. */
void args_parser_no_abbrev(ArgsParser *p);
/* argument_default=SUPPRESS: an argument added after this, without a
 * default of its own, leaves its destination unset (not None) until
 * given. */
void args_parser_suppress_defaults(ArgsParser *p);

/* add_subparsers(): the subcommands of @p (NULL @title: shown among the
 * positionals). Returns the action that holds them. */
ArgsAction *args_add_subparsers(ArgsParser *p, const char *dest,
                                const char *title, const char *description,
                                const char *metavar, const char *help,
                                gboolean required);
/* The Qubes tools' AliasedSubParsersAction: a subcommand listed as
 * "NAME (ALIAS,ALIAS)" rather than argparse's "NAME (ALIAS, ALIAS)". */
void args_subparsers_qubes_aliases(ArgsAction *subparsers);
/* add_parser(): a subcommand @name with @aliases (NULL-ended or NULL),
 * @help (NULL: not listed), its own description and epilog. */
ArgsParser *args_add_parser(ArgsAction *subparsers, const char *name,
                            const char *const *aliases, const char *help,
                            const char *description, const char *epilog,
                            ArgsFormatterKind formatter);

/* parse_args(): the namespace, or exits as argparse does (usage and
 * error, status 2; --help, --version: status 0). */
ArgsNamespace *args_parse(ArgsParser *p, int argc, char **argv);
/* parse_known_args(): the extras go to @extras (char*). */
ArgsNamespace *args_parse_known(ArgsParser *p, int argc, char **argv,
                                GPtrArray *extras);

/* The usage line(s) and the whole help (new strings). */
char *args_format_usage(ArgsParser *p);
char *args_format_help(ArgsParser *p);
const char *args_prog(ArgsParser *p);
/* parser.error(): usage and "PROG: error: MESSAGE" on stderr, exit 2. */
void args_error(ArgsParser *p, const char *fmt, ...)
    G_GNUC_PRINTF(2, 3) G_GNUC_NORETURN;
/* parser.exit(status, message): @message (may be NULL) on stderr. */
void args_exit(int status, const char *message) G_GNUC_NORETURN;

/* The namespace. */
void args_namespace_free(ArgsNamespace *ns);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ArgsNamespace, args_namespace_free)
/* The value of @dest (NULL when it has none at all). */
const ArgValue *args_get(ArgsNamespace *ns, const char *dest);
/* Shorthands: a string (NULL for None or absent), a list (NULL for
 * None), an int (0 for None), a bool (FALSE for None). */
const char *args_str(ArgsNamespace *ns, const char *dest);
GPtrArray *args_list(ArgsNamespace *ns, const char *dest);
gint64 args_int(ArgsNamespace *ns, const char *dest);
gboolean args_bool(ArgsNamespace *ns, const char *dest);
/* setattr(). @value is taken. */
void args_set(ArgsNamespace *ns, const char *dest, ArgValue *value);
ArgValue *args_value_new(ArgValueType type);
ArgValue *args_value_str(const char *s);
void args_value_free(ArgValue *v);
/* The destinations, sorted (new array of borrowed strings). */
GPtrArray *args_dests(ArgsNamespace *ns);

/* Python's repr() of a str (new): the quotes it picks, its escapes. */
char *args_py_repr(const char *s);

/* Python's int() of a string (spaces around, a sign, digits with single
 * underscores between); FALSE where it raises ValueError, or past 63
 * bits. */
gboolean args_py_int(const char *s, gint64 *out);
/* The message of int()'s ValueError for @s: "invalid literal for int()
 * with base 10: 'S'" (new). */
char *args_py_int_error(const char *s);
/* Python's textwrap.wrap() and fill() (drop_whitespace, long words
 * broken; on hyphens when @hyphens). */
GPtrArray *args_textwrap(const char *text, glong width, const char *initial,
                         const char *subsequent, gboolean hyphens);
char *args_textfill(const char *text, glong width, const char *initial,
                    const char *subsequent, gboolean hyphens);

/* An action's destination and the name errors give it. */
const char *args_action_dest(const ArgsAction *a);
char *args_action_name(const ArgsAction *a);

G_END_DECLS
