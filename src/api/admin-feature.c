/* admin-feature.c: admin.vm.feature.* (a qube's features, and the
 * lookups along its template, netvm and dom0). */
#include "api-util.h"

#include "qubes-error.h"

#include <string.h>

static char *feature_list(Call *call, GError **error)
{
    GString *out = g_string_new(NULL);
    GPtrArray *f = call->dest->features;
    for (guint i = 0; i + 1 < f->len; i += 2)
        g_string_append_printf(out, "%s\n", (char *)f->pdata[i]);
    return g_string_free(out, FALSE);
}

static char *feature_get(Call *call, GError **error)
{
    const char *v = qubes_domain_feature_get(call->dest, call->arg);
    if (!v) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_FEATURE_NOT_FOUND,
                    "Feature not set for domain %s: %s", call->dest->name,
                    call->arg);
        return NULL;
    }
    return g_strdup(v);
}

static char *feature_check(Call *call, gboolean tpl, gboolean net,
                           gboolean admin, GError **error)
{
    const char *v = qubes_domain_feature_check(call->dest, call->arg, tpl, net,
                                               admin, error);
    return v ? g_strdup(v) : NULL;
}

static char *feature_check_template(Call *call, GError **error)
{
    return feature_check(call, TRUE, FALSE, FALSE, error);
}

static char *feature_check_netvm(Call *call, GError **error)
{
    return feature_check(call, FALSE, TRUE, FALSE, error);
}

static char *feature_check_adminvm(Call *call, GError **error)
{
    return feature_check(call, FALSE, FALSE, TRUE, error);
}

static char *feature_check_template_adminvm(Call *call, GError **error)
{
    return feature_check(call, TRUE, FALSE, TRUE, error);
}

/* Features the system keeps for itself (the preloaded disposables'
 * bookkeeping): a qube other than dom0 may not change them. */
static gboolean feature_allowed(Call *call, GError **error)
{
    if (api_src_is_dom0(call) || !g_str_has_prefix(call->arg, "preload-dispvm"))
        return TRUE;
    g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_PERMISSION_DENIED,
                        "changing this feature is prohibited by "
                        "qubes.ext.admin.AdminExtension");
    return FALSE;
}

static char *feature_set(Call *call, GError **error)
{
    if (!feature_allowed(call, error))
        return NULL;
    /* The reference's checks: a name of [a-zA-Z0-9_.-] (it becomes a
     * QubesDB path element in the qube), a value of printable ASCII on
     * one line; a service name fits QubesDB's 63-byte keys under
     * /qubes-service/. */
    gboolean name_ok = TRUE;
    for (const char *p = call->arg; *p; p++)
        name_ok = name_ok && (g_ascii_isalnum(*p) || strchr("_.-", *p));
    if (!api_enforce(name_ok, "feature name contains illegal characters",
                     error))
        return NULL;
    gsize len;
    const guint8 *p = (const guint8 *)api_payload(call, &len);
    gboolean ascii = TRUE, printable = TRUE;
    for (gsize i = 0; i < len; i++) {
        ascii = ascii && p[i] < 0x80;
        printable = printable && p[i] >= 0x20 && p[i] < 0x7f;
    }
    if (!api_enforce(ascii, "Feature value contains non-ASCII characters",
                     error))
        return NULL;
    if (!printable) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_PROTOCOL,
                    "%s value contains illegal characters", call->arg);
        return NULL;
    }
    g_autofree char *value =
        len ? g_strndup((const char *)p, len) : g_strdup("");
    if (!qubes_domain_feature_set(call->dest, call->arg, value, error))
        return NULL;
    return api_saved(call, error);
}

static char *feature_remove(Call *call, GError **error)
{
    if (!feature_allowed(call, error) ||
        !qubes_domain_feature_remove(call->dest, call->arg, error))
        return NULL;
    return api_saved(call, error);
}

#define NP M_NO_PAYLOAD
#define NA M_NO_ARG

const Method api_feature_methods[] = {
    {"admin.vm.feature.List", NP | NA, feature_list},
    {"admin.vm.feature.Get", NP | M_ARG, feature_get},
    {"admin.vm.feature.CheckWithTemplate", NP | M_ARG, feature_check_template},
    {"admin.vm.feature.CheckWithNetvm", NP | M_ARG, feature_check_netvm},
    {"admin.vm.feature.CheckWithAdminVM", NP | M_ARG, feature_check_adminvm},
    {"admin.vm.feature.CheckWithTemplateAndAdminVM", NP | M_ARG,
     feature_check_template_adminvm},
    {"admin.vm.feature.Set", M_ARG, feature_set},
    {"admin.vm.feature.Remove", NP | M_ARG, feature_remove},
    {NULL},
};
