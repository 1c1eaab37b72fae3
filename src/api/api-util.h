/* api-util.h: helpers the Admin API methods share: checks of the
 * untrusted payload and argument where they enter, with the reference's
 * exceptions, and the common answers. */
#pragma once

#include "api.h"
#include "qubes-parse.h"

G_BEGIN_DECLS

/* The reference's enforce(): FALSE with a ProtocolError (@why may be
 * NULL: the reference often gives no reason) when @ok is FALSE. */
gboolean api_enforce(gboolean ok, const char *why, GError **error);

/* The reference's enforce_arg(): FALSE with PermissionDenied "Argument
 * not in '@short_reason'" when @ok is FALSE (an argument that names
 * nothing there: the reference does not say more, so that a qube cannot
 * learn what exists). */
gboolean api_enforce_arg(gboolean ok, const char *short_reason, GError **error);

/* The payload's bytes and their count: never NULL (an empty payload is
 * ""), not NUL-terminated. Every method reads its payload through this
 * or the helpers below. */
const char *api_payload(Call *call, gsize *len);
/* The payload as text: printable ASCII (and, where @lines, newlines;
 * tabs and carriage returns are printable enough), else a ProtocolError
 * (the reference's strict ASCII decode). New string. */
char *api_payload_text(Call *call, gboolean lines, GError **error);
/* The payload's bytes as text when they are ASCII (no NUL), else a
 * ProtocolError with @why, master's words of each method ("Parameters
 * contains non-ASCII characters", ...). New string. */
char *api_payload_ascii(Call *call, const char *why, GError **error);
/* The payload as a number by the API's rule (validate_number); a
 * leading '-' only where @allow_negative. */
gboolean api_payload_number(Call *call, const char *what,
                            gboolean allow_negative, gint64 *out,
                            GError **error);
/* The payload as a Qubes boolean word; ProtocolError "Invalid value". */
gboolean api_payload_bool(Call *call, gboolean *out, GError **error);

/* utils.py validate_label_name: letters, digits and "-_." (and, for a
 * new label, not a number, which would read as an index); else
 * QubesInvalidLabelError in master's words. */
gboolean api_label_name_ok(const char *untrusted, gboolean creation,
                           GError **error);
/* Letters, digits and "-_." only, not empty (pool and label names). */
gboolean api_name_chars_ok(const char *s);
gboolean api_is_digits(const char *s);

/* "ITEM\n" for each string of @items (new). */
char *api_join_lines(GPtrArray *items);

/* The answer of a method that changed the model: empty, once qubes.xml
 * holding the change is saved. Returns CALL_ASYNC. */
char *api_saved(Call *call, GError **error);

/* QubesVMNotHaltedError unless @call's destination is halted. */
gboolean api_dest_halted(Call *call, GError **error);

G_END_DECLS
