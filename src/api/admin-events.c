/* admin-events.c: admin.Events (the transport streams the events; this
 * decides which a source other than dom0 may see, as the reference's
 * ext/admin.py). */
#include "api-util.h"
#include "policy.h"

#include <string.h>

static char *events(Call *call, GError **error)
{
    if (!api_src_is_dom0(call)) {
        call->data = qubes_policy_load(call->state->policy_dir);
        call->data_free = (GDestroyNotify)qubes_policy_free;
    }
    call_subscribe_events(call);
    return CALL_ASYNC;
}

gboolean api_event_visible(Call *call, const QubesEvent *event)
{
    QubesPolicy *policy = call->data;
    if (!policy)
        return TRUE;
    /* The event's qube: its subject, or for the app's events the qube
     * they are about (domain-add, ...), else dom0. */
    const char *dest = event->subject->name;
    if (!*dest) {
        const char *vm = qubes_event_get(event, "vm");
        dest = vm ? vm : "@adminvm";
    }
    g_autofree char *arg =
        g_strdelimit(g_strconcat("+", event->name, NULL), ":", '_');
    return qubes_policy_allows(policy, call->app, "admin.Events", arg,
                               call->src, dest);
}

const Method api_events_methods[] = {
    {"admin.Events", M_NO_PAYLOAD | M_NO_ARG, events},
    {NULL},
};
