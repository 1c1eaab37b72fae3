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

static char *label_create(Call *call, GError **error)
{
    /* Not to be confused with an index; label name characters only. */
    if (api_is_digits(call->arg) || !api_name_chars_ok(call->arg)) {
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_INVALID_LABEL,
                            "Invalid label name");
        return NULL;
    }
    if (qubes_app_get_label(call->app, call->arg, NULL)) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                    "label already exists");
        return NULL;
    }
    g_autofree char *untrusted = api_payload_text(call, TRUE, error);
    if (!untrusted)
        return NULL;
    g_strstrip(untrusted);
    gboolean ok = strlen(untrusted) == 8 && g_str_has_prefix(untrusted, "0x");
    for (int i = 2; ok && i < 8; i++)
        ok = g_ascii_isxdigit(untrusted[i]);
    if (!ok) {
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_INVALID_LABEL_VALUE,
                            "Invalid label color, expected 0xRRGGBB");
        return NULL;
    }
    if (!qubes_app_add_label(call->app, call->arg, untrusted, error))
        return NULL;
    return api_saved(call, error);
}

static char *label_remove(Call *call, GError **error)
{
    const QxLabel *l = label_arg(call, error);
    if (!l)
        return NULL;
    if (!api_enforce(l->index > 8, "default labels cannot be removed", error))
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
