/* system-info.h: the system's summary that qrexec's policy daemon asks
 * for (internal.GetSystemInfo) before it allows or refuses any call
 * between qubes.
 *
 * The answer is the reference's JSON (qubes/api/internal.py
 * SystemInfoCache), byte for byte in Python's json.dumps form: every
 * domain, dom0 first and then by name, with its internal feature, tags,
 * class, template_for_dispvms, default_dispvm, label icon and colour,
 * guivm, relayvm, transport_rpc, power state and uuid.
 *
 * Cache: the reference keeps the whole answer until one of a list of
 * events (a tag, the internal feature, one of those properties, a domain
 * added or removed). Here each domain's text is kept the same way, and
 * invalidated by the same events plus any property of the app (the
 * defaults several fields follow); the power state is read anew on
 * every call, so a qube paused or crashed is never reported in a state
 * it left. Tags are sorted (the reference lists a Python set, in an
 * order that changes from run to run).
 *
 * Lifetime: made for an app, whose event registry it subscribes to;
 * free it before the app. Main thread only.
 */
#pragma once

#include "app.h"

G_BEGIN_DECLS

typedef struct _QubesSystemInfo QubesSystemInfo;

QubesSystemInfo *qubes_system_info_new(QubesApp *app);
void qubes_system_info_free(QubesSystemInfo *info);

/* The JSON text (new). */
char *qubes_system_info_json(QubesSystemInfo *info);

/* @s (UTF-8) appended to @out as a JSON string in Python's json.dumps
 * form (ensure_ascii): '"', '\\' and \b \f \n \r \t by name, every
 * other character outside ' '..'~' as \uXXXX (a surrogate pair past
 * U+FFFF); a byte that is not UTF-8 as \ufffd. */
void qubes_json_append_string(GString *out, const char *s);

G_END_DECLS
