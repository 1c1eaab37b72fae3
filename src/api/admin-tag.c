/* admin-tag.c: admin.vm.tag.* (a qube's tags). */
#include "api-util.h"

#include "qubes-error.h"

#include <string.h>

static char *tag_list(Call *call, GError **error)
{
    g_autoptr(GPtrArray) tags = qubes_domain_tags(call->dest);
    return api_join_lines(tags);
}

static gboolean tag_ok(Call *call, GError **error)
{
    if (qubes_tag_is_valid(call->arg))
        return TRUE;
    g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_INVALID_TAG,
                        "disallowed characters");
    return FALSE;
}

static char *tag_get(Call *call, GError **error)
{
    if (!tag_ok(call, error))
        return NULL;
    return g_strdup(g_hash_table_contains(call->dest->tags, call->arg) ? "1"
                                                                       : "0");
}

/* The reference's ext/admin.py: a qube other than dom0 may not set or
 * remove the tags that record who made a qube. */
static gboolean tag_allowed(Call *call, GError **error)
{
    if (api_src_is_dom0(call) ||
        !(g_str_has_prefix(call->arg, "created-by-") ||
          g_str_has_prefix(call->arg, "disp-created-by-")))
        return TRUE;
    g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_PERMISSION_DENIED,
                        "changing this tag is prohibited by "
                        "qubes.ext.admin.AdminExtension");
    return FALSE;
}

static char *tag_set(Call *call, GError **error)
{
    if (!tag_ok(call, error) || !tag_allowed(call, error) ||
        !qubes_domain_tag_add(call->dest, call->arg, error))
        return NULL;
    return api_saved(call, error);
}

static char *tag_remove(Call *call, GError **error)
{
    if (!tag_ok(call, error) || !tag_allowed(call, error) ||
        !qubes_domain_tag_remove(call->dest, call->arg, error))
        return NULL;
    return api_saved(call, error);
}

#define NP M_NO_PAYLOAD
#define NA M_NO_ARG

const Method api_tag_methods[] = {
    {"admin.vm.tag.List", NP | NA, tag_list},
    {"admin.vm.tag.Get", NP | M_ARG, tag_get},
    {"admin.vm.tag.Set", NP | M_ARG, tag_set},
    {"admin.vm.tag.Remove", NP | M_ARG, tag_remove},
    {NULL},
};
