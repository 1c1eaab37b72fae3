/* qubes-parse.h: validation of untrusted numbers and flags, and the
 * quoting of text as the reference's messages quote it.
 *
 * The Admin API's rule for numbers: ASCII digits only, at most 19 of
 * them, no leading zeros (a lone "0" is fine), an optional leading '-'
 * only where a caller allows negatives. Anything else is refused with a
 * QubesValueError naming @what.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* The same with the error code of the caller's choice (the Admin API
 * reports ProtocolError). Messages name @what: "Size contains non ASCII
 * digits", "... is bigger than 19 decimal digits", "... contains spurious
 * leading zeros". */
gboolean qubes_parse_number(const char *untrusted, gboolean allow_negative,
                            const char *what, int code, gint64 *out,
                            GError **error);
gboolean qubes_parse_int64(const char *untrusted, gboolean allow_negative,
                           const char *what, gint64 *out, GError **error);
gboolean qubes_parse_uint64(const char *untrusted, const char *what,
                            guint64 *out, GError **error);
/* Qubes' boolean spellings: True/true/yes/on/1 and False/false/no/off/0. */
gboolean qubes_parse_bool(const char *untrusted, const char *what,
                          gboolean *out, GError **error);

/* Pool and volume names: 1 to 64 characters of [A-Za-z0-9_.-], starting
 * with a letter or digit. */
gboolean qubes_name_is_valid_pool(const char *untrusted);
gboolean qubes_name_is_valid_volume(const char *untrusted);

/* A qube name as qubes.vm.validate_name accepts it: a letter, then
 * letters, digits and "_.-", at most 31 characters, not "Domain-0",
 * "none" or "default" and not ending in "-dm"; else QubesValueError with
 * the reference's message. */
gboolean qubes_validate_vm_name(const char *untrusted_name, GError **error);

/* Python's repr() of an ASCII string, as the reference's messages quote
 * values (new). */
char *qubes_py_repr(const char *s);

G_END_DECLS
