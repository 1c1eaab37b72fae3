#include "qubes-parse.h"

#include "qubes-error.h"

#include <string.h>

/* The Admin API's rules and messages (qubes/api/__init__.py
 * validate_number), with the error code the caller wants. */
static gboolean parse_digits(const char *s, const char *what, int code,
                             guint64 *out, GError **error)
{
    g_autofree char *cap = g_strdup(what);
    cap[0] = g_ascii_toupper(cap[0]);
    size_t len = strlen(s);
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            len = 0;
    }
    if (len == 0) {
        g_set_error(error, QUBES_ERROR, code, "%s contains non ASCII digits",
                    cap);
        return FALSE;
    }
    if (len > 19) {
        g_set_error(error, QUBES_ERROR, code,
                    "%s is bigger than 19 decimal digits", cap);
        return FALSE;
    }
    if (len > 1 && s[0] == '0') {
        g_set_error(error, QUBES_ERROR, code,
                    "%s contains spurious leading zeros", cap);
        return FALSE;
    }
    guint64 v = 0;
    for (size_t i = 0; i < len; i++)
        v = v * 10 + (guint64)(s[i] - '0');
    *out = v;
    return TRUE;
}

gboolean qubes_parse_number(const char *untrusted, gboolean allow_negative,
                            const char *what, int code, gint64 *out,
                            GError **error)
{
    gboolean neg = allow_negative && untrusted[0] == '-';
    guint64 v;
    if (!parse_digits(untrusted + (neg ? 1 : 0), what, code, &v, error))
        return FALSE;
    if (v > (guint64)G_MAXINT64) {
        g_set_error(error, QUBES_ERROR, code, "%s is out of range", what);
        return FALSE;
    }
    *out = neg ? -(gint64)v : (gint64)v;
    return TRUE;
}

gboolean qubes_parse_uint64(const char *untrusted, const char *what,
                            guint64 *out, GError **error)
{
    return parse_digits(untrusted, what, QUBES_ERROR_VALUE, out, error);
}

gboolean qubes_parse_int64(const char *untrusted, gboolean allow_negative,
                           const char *what, gint64 *out, GError **error)
{
    return qubes_parse_number(untrusted, allow_negative, what,
                              QUBES_ERROR_VALUE, out, error);
}

static gboolean bad(GError **error, const char *what)
{
    g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE, "Invalid %s", what);
    return FALSE;
}

gboolean qubes_parse_bool(const char *untrusted, const char *what,
                          gboolean *out, GError **error)
{
    static const char *const yes[] = {"True", "true", "yes", "on", "1"};
    static const char *const no[] = {"False", "false", "no", "off", "0"};
    for (size_t i = 0; i < G_N_ELEMENTS(yes); i++) {
        if (strcmp(untrusted, yes[i]) == 0) {
            *out = TRUE;
            return TRUE;
        }
        if (strcmp(untrusted, no[i]) == 0) {
            *out = FALSE;
            return TRUE;
        }
    }
    return bad(error, what);
}

static gboolean simple_name(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > 64 || !g_ascii_isalnum(s[0]))
        return FALSE;
    for (size_t i = 0; i < len; i++) {
        if (!g_ascii_isalnum(s[i]) && !strchr("_.-", s[i]))
            return FALSE;
    }
    return TRUE;
}

gboolean qubes_name_is_valid_pool(const char *untrusted)
{
    return simple_name(untrusted);
}

gboolean qubes_name_is_valid_volume(const char *untrusted)
{
    return simple_name(untrusted);
}

gboolean qubes_validate_vm_name(const char *untrusted_name, GError **error)
{
    size_t len = strlen(untrusted_name);
    const char *why = NULL;
    if (len > 31)
        why = "VM name must be shorter than 32 characters";
    else if (strchr("0123456789_.-", untrusted_name[0]) && untrusted_name[0])
        why = "VM name cannot start with hyphen, underscore, dot or numbers";
    else if (!g_ascii_isalpha(untrusted_name[0]))
        why = "VM name contains illegal characters";
    for (size_t i = 0; !why && i < len; i++) {
        char c = untrusted_name[i];
        if (!g_ascii_isalnum(c) && !strchr("_.-", c))
            why = "VM name contains illegal characters";
    }
    if (!why && strcmp(untrusted_name, "Domain-0") == 0)
        why = "VM name cannot be 'Domain-0'";
    if (!why && (strcmp(untrusted_name, "none") == 0 ||
                 strcmp(untrusted_name, "default") == 0))
        why = "VM name cannot be 'none' nor 'default'";
    if (!why && g_str_has_suffix(untrusted_name, "-dm"))
        why = "VM name cannot end with -dm";
    if (why) {
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_VALUE, why);
        return FALSE;
    }
    return TRUE;
}

char *qubes_py_repr(const char *s)
{
    /* repr() quotes with ' unless the text holds ' and no ". */
    char q = strchr(s, '\'') && !strchr(s, '"') ? '"' : '\'';
    GString *out = g_string_new(NULL);
    g_string_append_c(out, q);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '\\' || *p == (unsigned char)q)
            g_string_append_printf(out, "\\%c", *p);
        else if (*p == '\n')
            g_string_append(out, "\\n");
        else if (*p == '\r')
            g_string_append(out, "\\r");
        else if (*p == '\t')
            g_string_append(out, "\\t");
        else if (*p < 0x20 || *p >= 0x7f)
            g_string_append_printf(out, "\\x%02x", *p);
        else
            g_string_append_c(out, (char)*p);
    }
    g_string_append_c(out, q);
    return g_string_free(out, FALSE);
}
