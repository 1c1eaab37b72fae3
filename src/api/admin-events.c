/* admin-events.c: admin.Events (the transport streams the events; this
 * decides which a source other than dom0 may see, as the reference's
 * ext/admin.py). */
#include "api-util.h"
#include "policy.h"

#include <string.h>

/* Whether @event may go to @call's source (the reference's ext/admin.py
 * filter for a source other than dom0). */
static gboolean event_visible(Call *call, const QubesEvent *event)
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

/* @event's arguments as the reference sends them (new vector): its
 * str(value) of a property that holds no value is "None", where ours
 * is "" inside (a qube, a number or an address property). */
static char **event_wire_kwargs(QubesApp *app, const QubesEvent *event)
{
    GPtrArray *out = g_ptr_array_new();
    const char *colon = strchr(event->name, ':');
    const QubesPropDef *def = NULL;
    if (colon && g_str_has_prefix(event->name, "property-")) {
        QubesPropHolder *h =
            event->subject == &app->emitter
                ? &app->props
                : &qubes_domain_of_emitter(event->subject)->props;
        def = qubes_props_def(h, colon + 1, NULL);
    }
    gboolean noneable =
        def && (def->type == QUBES_PROP_VM || def->type == QUBES_PROP_INT ||
                def->type == QUBES_PROP_IP4 || def->type == QUBES_PROP_IP6);
    for (const char *const *kv = event->kwargs; kv && kv[0] && kv[1]; kv += 2) {
        gboolean value =
            strcmp(kv[0], "newvalue") == 0 || strcmp(kv[0], "oldvalue") == 0;
        g_ptr_array_add(out, g_strdup(kv[0]));
        g_ptr_array_add(
            out, g_strdup(noneable && value && !*kv[1] ? "None" : kv[1]));
    }
    g_ptr_array_add(out, NULL);
    return (char **)g_ptr_array_free(out, FALSE);
}

static const CallEventsView events_view = {event_visible, event_wire_kwargs};

static char *events(Call *call, GError **error)
{
    if (!api_src_is_dom0(call)) {
        call->data = qubes_policy_load(call->state->policy_dir);
        call->data_free = (GDestroyNotify)qubes_policy_free;
    }
    call_subscribe_events(call, &events_view);
    return CALL_ASYNC;
}

const Method api_events_methods[] = {
    {"admin.Events", M_NO_PAYLOAD | M_NO_ARG, events},
    {NULL},
};
