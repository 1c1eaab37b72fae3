/* api.c: the method tables of every area, joined; see api.h. */
#include "api.h"

#include <string.h>

static const Method *const tables[] = {
    api_vm_methods,       api_lifecycle_methods, api_property_methods,
    api_feature_methods,  api_tag_methods,       api_label_methods,
    api_pool_methods,     api_volume_methods,    api_notes_methods,
    api_firewall_methods, api_device_methods,    api_events_methods,
    api_backup_methods,   api_import_methods,    api_internal_methods,
    api_misc_methods,
};

/* The socket a method is served on, from its flags. */
static ApiSocket method_socket(const Method *m)
{
    if (m->flags & M_INTERNAL)
        return API_SOCKET_INTERNAL;
    if (m->flags & M_MISC)
        return API_SOCKET_MISC;
    return API_SOCKET_ADMIN;
}

const Method *api_find_method(const char *name, ApiSocket socket,
                              char **endpoint)
{
    for (guint t = 0; t < G_N_ELEMENTS(tables); t++) {
        for (const Method *m = tables[t]; m->name; m++) {
            if (method_socket(m) != socket)
                continue;
            if (m->flags & M_PREFIX) {
                size_t n = strlen(m->name);
                if (strncmp(name, m->name, n) == 0 && name[n]) {
                    *endpoint = g_strdup(name + n);
                    return m;
                }
            } else if (strcmp(m->name, name) == 0) {
                return m;
            }
        }
    }
    return NULL;
}

ApiState *api_state_new(void)
{
    ApiState *s = g_new0(ApiState, 1);
    s->policy_dir = g_strdup("/etc/qubes/policy.d");
    s->backup_dir = g_strdup("/etc/qubes/backup");
    s->paused_list = g_strdup("/var/run/qubes/previously-paused.list");
    s->qubesdb_dir = g_strdup("/var/run/qubes/qubesdb");
    s->backups = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    s->clone_tokens = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                            (GDestroyNotify)qubes_volume_unref);
    return s;
}

gboolean api_src_is_dom0(Call *call)
{
    return call->src->qid == 0;
}

void api_state_free(ApiState *state)
{
    if (!state)
        return;
    g_free(state->policy_dir);
    g_free(state->backup_dir);
    g_free(state->paused_list);
    g_free(state->qubesdb_dir);
    g_free(state->dom0_home);
    g_hash_table_unref(state->backups);
    g_hash_table_unref(state->clone_tokens);
    qubes_system_info_free(state->system_info);
    g_free(state);
}
