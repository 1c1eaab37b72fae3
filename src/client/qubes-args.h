/* qubes-args.h: the command line every Qubes client tool shares
 * (qubesadmin.tools.QubesArgumentParser) over argparse.h:
 * --verbose/-v and --quiet/-q (counted; verbose defaults to 1, quiet to
 * 0), a hidden --force-root, --help/-h, --version, and the VMNAME
 * arguments: one, at most one, or a list that --all (every qube but
 * dom0, less those given to --exclude) may replace, as VmNameGroup
 * makes them. The names resolve to qubes as VmNameAction resolves them:
 * shell wildcards (*?[!]) matched against every qube, duplicates
 * dropped, an unknown name refused with "no such domain: 'NAME'". */
#pragma once

#include "argparse.h"
#include "qubes-app.h"

G_BEGIN_DECLS

/* @vmname_nargs: 0 for no VMNAME, else an argparse nargs (1, N,
 * ARGS_OPTIONAL, ARGS_ZERO_OR_MORE, ARGS_ONE_OR_MORE). */
ArgsParser *qubes_args_new(const char *prog, int vmname_nargs,
                           const char *description, const char *epilog,
                           ArgsFormatterKind formatter);
/* The same options on a subcommand's parser. */
void qubes_args_add_common(ArgsParser *p);
/* VmNameGroup on @p (a subcommand's parser): --all (its help
 * @all_help, NULL: the usual) or VMNAME..., required or not, and
 * --exclude beside. */
void qubes_args_add_vmname_group(ArgsParser *p, gboolean required,
                                 const char *all_help);
/* The qubes the command line names (QaVm*, borrowed from @app), as
 * VmNameAction.parse_qubes_app gives them; refusals exit as
 * parser.error() does. */
GPtrArray *qubes_args_domains(ArgsParser *p, ArgsNamespace *ns, QaApp *app,
                              int vmname_nargs);
/* The qubes (one admin.vm.List), or error_runtime() with qubesd's
 * refusal. */
QaApp *qubes_args_app(ArgsParser *p);
/* A line of the client's logger @logger as qubesadmin.log sets it up on
 * standard error: "LOGGER: MESSAGE" while verbose (the default); once
 * quieted (-q) only a warning or an error (@important), bare. */
void qubes_args_log(ArgsNamespace *ns, const char *logger, gboolean important,
                    const char *fmt, ...) G_GNUC_PRINTF(4, 5);
/* A Python exception the client does not catch: its traceback's last
 * line ("ValueError: ...") on standard error, after what standard
 * output holds, and exit 1. */
void qubes_args_exit_uncaught(const char *fmt, ...)
    G_GNUC_PRINTF(1, 2) G_GNUC_NORETURN;
/* The ValueError of dict() given an item that is not a pair (element
 * @i, from 0), a format for qubes_args_exit_uncaught(). */
#define QUBES_ARGS_DICT_ERROR                                                  \
    "ValueError: dictionary update sequence element #%u has length 1; 2 is "   \
    "required"
/* An Admin API exception of one of @types (NULL-ended) that the client
 * does not catch where the tool meets it: its traceback's last line,
 * "qubesadmin.exc.TYPE: MESSAGE", and exit 1. Any other: nothing. */
void qubes_args_uncaught(const GError *err, const char *const *types);
/* A tool's main() catching QubesException: parser.print_error(), that
 * is "Error: MESSAGE" on standard error, and exit 1. */
void qubes_args_print_error(const char *fmt, ...)
    G_GNUC_PRINTF(1, 2) G_GNUC_NORETURN;
/* The same for qubesd's refusal @err (str() of the client's exception);
 * the two the client does not catch, ProtocolError and
 * PermissionDenied, as their traceback's last line, exit 1. */
void qubes_args_print_exception(const GError *err) G_GNUC_NORETURN;
/* parser.error_runtime(): "PROG: error: MESSAGE" and exit @status,
 * without the usage. */
void qubes_args_error_runtime(ArgsParser *p, int status, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4) G_GNUC_NORETURN;

G_END_DECLS
