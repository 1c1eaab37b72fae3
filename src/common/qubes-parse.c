#include "qubes-parse.h"

#include "qubes-error.h"

#include <string.h>

static gboolean bad(GError **error, const char *what)
{
    g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE, "Invalid %s", what);
    return FALSE;
}

static gboolean parse_digits(const char *s, const char *what, guint64 *out,
                             GError **error)
{
    size_t len = strlen(s);
    if (len == 0 || len > 19 || (len > 1 && s[0] == '0'))
        return bad(error, what);
    guint64 v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return bad(error, what);
        v = v * 10 + (guint64)(s[i] - '0');
    }
    *out = v;
    return TRUE;
}

gboolean qubes_parse_uint64(const char *untrusted, const char *what,
                            guint64 *out, GError **error)
{
    return parse_digits(untrusted, what, out, error);
}

gboolean qubes_parse_int64(const char *untrusted, gboolean allow_negative,
                           const char *what, gint64 *out, GError **error)
{
    gboolean neg = allow_negative && untrusted[0] == '-';
    guint64 v;
    if (!parse_digits(untrusted + (neg ? 1 : 0), what, &v, error))
        return FALSE;
    if (v > G_MAXINT64 || (neg && v == 0))
        return bad(error, what);
    *out = neg ? -(gint64)v : (gint64)v;
    return TRUE;
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
