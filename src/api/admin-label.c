/* admin-label.c: admin.label.* (the app's labels). */
#include "api-util.h"

#include "qubes-error.h"

#include <string.h>

static char *label_list(Call *call, GError **error)
{
    GString *out = g_string_new(NULL);
    for (guint i = 0; i < call->app->labels->len; i++)
        g_string_append_printf(out, "%s\n",
                               ((QxLabel *)call->app->labels->pdata[i])->name);
    return g_string_free(out, FALSE);
}

static const QxLabel *label_arg(Call *call, GError **error)
{
    return qubes_app_get_label(call->app, call->arg, error);
}

static char *label_get(Call *call, GError **error)
{
    const QxLabel *l = label_arg(call, error);
    return l ? g_strdup(l->color) : NULL;
}

static char *label_index(Call *call, GError **error)
{
    const QxLabel *l = label_arg(call, error);
    return l ? g_strdup_printf("%u", l->index) : NULL;
}

static gboolean bad_colour(const char *why, GError **error)
{
    g_set_error(error, QUBES_ERROR, QUBES_ERROR_INVALID_LABEL_VALUE,
                "Label value %s", why);
    return FALSE;
}

/* The reference's checks of a new label's colour, in its order. */
static char *label_colour(Call *call, GError **error)
{
    gsize len;
    const char *p = api_payload(call, &len);
    for (gsize i = 0; i < len; i++) {
        if ((guchar)p[i] >= 0x80 || p[i] == '\0') {
            bad_colour("must be encoded in ASCII", error);
            return NULL;
        }
    }
    g_autofree char *untrusted = g_strndup(p, len);
    g_strstrip(untrusted);
    if (strlen(untrusted) != 8) {
        bad_colour("must have length of 8", error);
        return NULL;
    }
    if (!g_str_has_prefix(untrusted, "0x")) {
        bad_colour("must start with: 0x", error);
        return NULL;
    }
    for (int i = 2; i < 8; i++) {
        if (!g_ascii_isxdigit(untrusted[i])) {
            bad_colour("must only contain hexadecimal digits after prefix: "
                       "0123456789abcdefABCDEF",
                       error);
            return NULL;
        }
    }
    return g_steal_pointer(&untrusted);
}

static char *label_create(Call *call, GError **error)
{
    /* master's order: the name, the colour, then whether it exists */
    if (!api_label_name_ok(call->arg, TRUE, error))
        return NULL;
    g_autofree char *colour = label_colour(call, error);
    if (!colour)
        return NULL;
    if (qubes_app_get_label(call->app, call->arg, NULL)) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_LABEL_IN_USE,
                    "Label is still in use: '%s'", call->arg);
        return NULL;
    }
    if (!qubes_app_add_label(call->app, call->arg, colour, error))
        return NULL;
    return api_saved(call, error);
}

static char *label_remove(Call *call, GError **error)
{
    if (!api_label_name_ok(call->arg, FALSE, error))
        return NULL;
    const QxLabel *l = label_arg(call, error);
    if (!l)
        return NULL;
    if (!api_enforce(l->index > 8, "Can only remove custom labels", error))
        return NULL;
    if (!qubes_app_remove_label(call->app, call->arg, error))
        return NULL;
    return api_saved(call, error);
}

#define NP M_NO_PAYLOAD
#define NA M_NO_ARG
#define D0 M_DOM0

const Method api_label_methods[] = {
    {"admin.label.List", NP | NA | D0, label_list},
    {"admin.label.Get", NP | D0 | M_ARG, label_get},
    {"admin.label.Index", NP | D0 | M_ARG, label_index},
    {"admin.label.Create", D0 | M_ARG | M_PAYLOAD, label_create},
    {"admin.label.Remove", NP | D0 | M_ARG, label_remove},
    {NULL},
};
