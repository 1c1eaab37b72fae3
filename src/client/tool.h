/* tool.h: what the qvm-* tools share: option parsing conventions,
 * aligned tables, sizes with units, and confirmation prompts. */
#pragma once

#include "qubesadmin.h"

G_BEGIN_DECLS

/* Parses @argv with @entries; on a usage error prints it and exits 2.
 * @summary is the one-line description, @usage the positional part. */
void tool_parse(int *argc, char ***argv, const GOptionEntry *entries,
                const char *usage, const char *summary,
                const char *description);

/* "PROG: error: MESSAGE" on stderr; returns 2 (argparse's usage
 * error status). */
int tool_usage_error(const char *prog, const char *fmt, ...)
    G_GNUC_PRINTF(2, 3);

/* A table printed with columns padded to the widest cell. */
typedef struct {
    guint columns;
    GPtrArray *cells; /* char*, row by row */
} Table;
Table *table_new(guint columns, ...) G_GNUC_NULL_TERMINATED; /* headers */
void table_add(Table *t, ...) G_GNUC_NULL_TERMINATED;
/* Adds a KEY, VALUE row for each KEY=VALUE line of @text, in order; a
 * KEY in @size_keys (NULL-ended, or NULL) shows its bytes as "N (1.5 GiB)". */
void table_add_kv_lines(Table *t, const char *text,
                        const char *const *size_keys);
void table_print(Table *t);
/* The rows without the header (columns as wide as with it). */
void table_print_body(Table *t);
void table_free(Table *t);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Table, table_free)

/* "10G", "512MiB", "1024" -> bytes; FALSE on nonsense. */
gboolean tool_parse_size(const char *text, guint64 *out);
/* Bytes as "1.5 GiB" (new). */
char *tool_format_size(guint64 bytes);

/* Asks @question [y/N] on the terminal; FALSE unless answered yes. */
gboolean tool_confirm(const char *question);

/* Splits "VM:VOLUME"; FALSE when it has no colon. */
gboolean tool_split_vm_volume(const char *spec, char **vm, char **volume);

/* The value part of a property.Get answer "default=X type=Y VALUE"
 * (new); *is_default from X. */
char *tool_prop_value(const char *answer, gboolean *is_default);

/* One line of a property.GetAll answer. */
typedef struct {
    char *name;
    char *value; /* unescaped */
    gboolean is_default;
} ToolProp;
/* Calls @method (admin.vm.property.GetAll or admin.property.GetAll) on
 * @dest and parses the answer (new array of ToolProp), or NULL. */
GPtrArray *tool_get_all(const char *method, const char *dest, GError **error);

/* The message of an Admin API exception without its type (what str()
 * of the client's exception gives). */
const char *tool_error_message(const GError *err);

/* str() of the client's exception for @err (new): its message, or for
 * those that are KeyErrors too (QubesVMNotFoundError, the device
 * refusals...) Python's repr() of it, as KeyError's str() gives. */
char *tool_exception_str(const GError *err);

/* Python's getpass(): @prompt and a line read from the terminal without
 * echo (standard input when there is no terminal). New string. */
char *tool_getpass(const char *prompt);

/* The first line of @path ("-": standard input), its end stripped as
 * Python's rstrip() strips (a --passphrase-file); NULL with Python's
 * "[Errno N] ...: 'PATH'" when it cannot be opened. New string. */
char *tool_read_passphrase_file(const char *path, GError **error);

/* Imports the data read from @in into @vm's @volume through the volume
 * import service program, as the client does (ImportWithSize with
 * @size when @have_size), a progress bar on standard error when
 * @show_progress. FALSE on failure, *@message (new) then qubesd's word
 * or "", and *@type (new, when @type is not NULL) the exception's type,
 * or NULL. */
gboolean tool_volume_import(const char *vm, const char *vol, int in,
                            guint64 size, gboolean have_size,
                            gboolean show_progress, char **message,
                            char **type);

/* Python's input(): @prompt on standard output, a line from standard
 * input without its newline (new); NULL at its end (EOFError). */
char *tool_input(const char *prompt);
/* A Python dict's item set in @pairs (KEY, VALUE char*, owned, in the
 * order first set): a key set again keeps its place, takes the value. */
void tool_pairs_set(GPtrArray *pairs, const char *key, const char *value);
/* strcmp() of two char* in a GPtrArray, for g_ptr_array_sort(). */
gint tool_str_cmp(gconstpointer a, gconstpointer b);

G_END_DECLS
