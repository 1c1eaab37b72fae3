/* api-util.c: see api-util.h. */
#include "api-util.h"

#include "qubes-error.h"
#include "qubes-parse.h"

#include <string.h>

gboolean api_enforce(gboolean ok, const char *why, GError **error)
{
    if (!ok)
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_PROTOCOL,
                            why ? why : "");
    return ok;
}

gboolean api_enforce_arg(gboolean ok, const char *short_reason, GError **error)
{
    if (!ok)
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_PERMISSION_DENIED,
                    "Argument not in '%s'", short_reason);
    return ok;
}

const char *api_payload(Call *call, gsize *len)
{
    *len = 0;
    const char *p = call->untrusted_payload
                        ? g_bytes_get_data(call->untrusted_payload, len)
                        : NULL;
    if (!p || !*len) {
        *len = 0;
        return "";
    }
    return p;
}

char *api_payload_text(Call *call, gboolean lines, GError **error)
{
    gsize len;
    const guint8 *p = (const guint8 *)api_payload(call, &len);
    for (gsize i = 0; i < len; i++) {
        if ((p[i] >= 0x20 && p[i] < 0x7f) || (lines && p[i] == '\n'))
            continue;
        if (p[i] == '\t' || p[i] == '\r')
            continue;
        api_enforce(FALSE, "payload is not ASCII text", error);
        return NULL;
    }
    return g_strndup((const char *)p, len);
}

char *api_payload_ascii(Call *call, const char *why, GError **error)
{
    gsize len;
    const char *p = api_payload(call, &len);
    for (gsize i = 0; i < len; i++)
        if ((guchar)p[i] >= 0x80 || !p[i]) {
            api_enforce(FALSE, why, error);
            return NULL;
        }
    return g_strndup(p, len);
}

gboolean api_payload_number(Call *call, const char *what,
                            gboolean allow_negative, gint64 *out,
                            GError **error)
{
    g_autofree char *untrusted = api_payload_text(call, TRUE, error);
    if (!untrusted)
        return FALSE;
    return qubes_parse_number(g_strstrip(untrusted), allow_negative, what,
                              QUBES_ERROR_PROTOCOL, out, error);
}

gboolean api_payload_bool(Call *call, gboolean *out, GError **error)
{
    g_autofree char *untrusted = api_payload_text(call, FALSE, error);
    if (!untrusted || !qubes_parse_bool(untrusted, "value", out, NULL)) {
        g_clear_error(error);
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_PROTOCOL,
                            "Payload is not boolean ASCII");
        return FALSE;
    }
    return TRUE;
}

gboolean api_label_name_ok(const char *untrusted, gboolean creation,
                           GError **error)
{
    if (creation && api_is_digits(untrusted)) {
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_INVALID_LABEL,
                            "Label must not be a digit");
        return FALSE;
    }
    if (!api_name_chars_ok(untrusted)) {
        g_set_error_literal(
            error, QUBES_ERROR, QUBES_ERROR_INVALID_LABEL,
            "Label must be in safe set: "
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
            "0123456789-_.");
        return FALSE;
    }
    return TRUE;
}

gboolean api_name_chars_ok(const char *s)
{
    if (!*s)
        return FALSE;
    for (; *s; s++) {
        if (!g_ascii_isalnum(*s) && !strchr("-_.", *s))
            return FALSE;
    }
    return TRUE;
}

gboolean api_is_digits(const char *s)
{
    return *s && strspn(s, "0123456789") == strlen(s);
}

char *api_join_lines(GPtrArray *items)
{
    GString *out = g_string_new(NULL);
    for (guint i = 0; i < items->len; i++)
        g_string_append_printf(out, "%s\n", (char *)items->pdata[i]);
    return g_string_free(out, FALSE);
}

static char *saved_done(Call *call, gboolean ok, GError **error, gpointer data)
{
    return ok ? g_strdup("") : NULL;
}

char *api_saved(Call *call, GError **error)
{
    call_save_then(call, saved_done, NULL, NULL);
    return CALL_ASYNC;
}

gboolean api_dest_halted(Call *call, GError **error)
{
    if (qubes_domain_is_halted(call->dest))
        return TRUE;
    g_set_error(error, QUBES_ERROR, QUBES_ERROR_VM_NOT_HALTED,
                "Domain is not powered off: '%s'", call->dest->name);
    return FALSE;
}
