/* admin-property.c: admin.vm.property.* and admin.property.* (the
 * reference's _property_* methods): a qube's properties, or the app's
 * (global) ones on dom0. */
#include "api-util.h"

#include "qubes-error.h"

#include <string.h>

static QubesPropHolder *holder_of(Call *call, gboolean global)
{
    return global ? &call->app->props : &call->dest->props;
}

static const char *holder_name(Call *call, gboolean global)
{
    return global ? "Qubes" : call->dest->name;
}

static char *serialize_prop(QubesPropHolder *h, const char *name,
                            GError **error)
{
    const QubesPropDef *def = qubes_props_def(h, name, error);
    if (!def)
        return NULL;
    g_autofree char *value = NULL;
    gboolean is_default = TRUE;
    if (!qubes_props_get(h, name, &value, &is_default, error))
        return NULL;
    return g_strdup_printf("default=%s type=%s %s",
                           is_default ? "True" : "False",
                           qubes_prop_type_name(def->type), value ? value : "");
}

static char *prop_list(Call *call, gboolean global, GError **error)
{
    const GPtrArray *defs = qubes_props_list(holder_of(call, global));
    GString *out = g_string_new(NULL);
    for (guint i = 0; i < defs->len; i++)
        g_string_append_printf(out, "%s\n",
                               ((const QubesPropDef *)defs->pdata[i])->name);
    return g_string_free(out, FALSE);
}

static gboolean prop_exists(Call *call, gboolean global, GError **error)
{
    if (qubes_props_def(holder_of(call, global), call->arg, NULL))
        return TRUE;
    g_set_error(error, QUBES_ERROR, QUBES_ERROR_NO_SUCH_PROPERTY,
                "Invalid property '%s' of %s", call->arg,
                holder_name(call, global));
    return FALSE;
}

static char *prop_get(Call *call, gboolean global, GError **error)
{
    if (!prop_exists(call, global, error))
        return NULL;
    return serialize_prop(holder_of(call, global), call->arg, error);
}

static char *prop_get_all(Call *call, gboolean global, GError **error)
{
    QubesPropHolder *h = holder_of(call, global);
    /* master's sorted(properties): by load stage, then name (a property
     * loaded later, as a qube's netvm or kernelopts, comes last) */
    const GPtrArray *defs = qubes_props_list(h);
    GString *out = g_string_new(NULL);
    for (guint i = 0; i < defs->len; i++) {
        const QubesPropDef *def = defs->pdata[i];
        g_autofree char *s = serialize_prop(h, def->name, NULL);
        g_string_append_printf(out, "%s ", def->name);
        for (const char *p = s; p && *p; p++) {
            if (*p == '\\')
                g_string_append(out, "\\\\");
            else if (*p == '\n')
                g_string_append(out, "\\n");
            else
                g_string_append_c(out, *p);
        }
        g_string_append_c(out, '\n');
    }
    return g_string_free(out, FALSE);
}

static char *prop_get_default(Call *call, gboolean global, GError **error)
{
    if (!prop_exists(call, global, error))
        return NULL;
    QubesPropHolder *h = holder_of(call, global);
    const QubesPropDef *def = qubes_props_def(h, call->arg, error);
    g_autofree char *value = qubes_props_get_default(h, call->arg, error);
    /* master: a property without a default answers nothing; one whose
     * default is None (a function that finds nothing, or None itself)
     * "type=T " */
    if (!value && !def->default_func && !(def->flags & QUBES_PROP_DEFAULT_NONE))
        return NULL;
    return g_strdup_printf("type=%s %s", qubes_prop_type_name(def->type),
                           value ? value : "");
}

static char *prop_help(Call *call, gboolean global, GError **error)
{
    if (!prop_exists(call, global, error))
        return NULL;
    const QubesPropDef *def =
        qubes_props_def(holder_of(call, global), call->arg, error);
    return g_strdup(def->doc ? def->doc : "");
}

static char *prop_set(Call *call, gboolean global, GError **error)
{
    if (!prop_exists(call, global, error))
        return NULL;
    gsize len;
    const char *p = api_payload(call, &len);
    if (len && memchr(p, '\0', len)) {
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                            "Property value contains a NUL byte");
        return NULL;
    }
    g_autofree char *untrusted_value = g_strndup(p, len);
    if (!qubes_props_set(holder_of(call, global), call->arg, untrusted_value,
                         error))
        return NULL;
    return api_saved(call, error);
}

static char *prop_reset(Call *call, gboolean global, GError **error)
{
    if (!prop_exists(call, global, error))
        return NULL;
    if (!qubes_props_reset(holder_of(call, global), call->arg, error))
        return NULL;
    return api_saved(call, error);
}

#define PROP_PAIR(fn)                                                          \
    static char *vm_##fn(Call *call, GError **error)                           \
    {                                                                          \
        return fn(call, FALSE, error);                                         \
    }                                                                          \
    static char *global_##fn(Call *call, GError **error)                       \
    {                                                                          \
        return fn(call, TRUE, error);                                          \
    }
PROP_PAIR(prop_list)
PROP_PAIR(prop_get)
PROP_PAIR(prop_get_all)
PROP_PAIR(prop_get_default)
PROP_PAIR(prop_help)
PROP_PAIR(prop_set)
PROP_PAIR(prop_reset)

#define NP M_NO_PAYLOAD
#define NA M_NO_ARG
#define D0 M_DOM0

const Method api_property_methods[] = {
    {"admin.vm.property.List", NP | NA, vm_prop_list},
    {"admin.vm.property.Get", NP | M_ARG, vm_prop_get},
    {"admin.vm.property.GetAll", NP | NA, vm_prop_get_all},
    {"admin.vm.property.GetDefault", NP | M_ARG, vm_prop_get_default},
    {"admin.vm.property.Help", NP | M_ARG, vm_prop_help},
    {"admin.vm.property.Set", M_ARG, vm_prop_set},
    {"admin.vm.property.Reset", NP | M_ARG, vm_prop_reset},
    {"admin.property.List", NP | NA | D0, global_prop_list},
    {"admin.property.Get", NP | D0 | M_ARG, global_prop_get},
    {"admin.property.GetAll", NP | NA | D0, global_prop_get_all},
    {"admin.property.GetDefault", NP | D0 | M_ARG, global_prop_get_default},
    {"admin.property.Help", NP | D0 | M_ARG, global_prop_help},
    {"admin.property.Set", D0 | M_ARG, global_prop_set},
    {"admin.property.Reset", NP | D0 | M_ARG, global_prop_reset},
    {NULL},
};
