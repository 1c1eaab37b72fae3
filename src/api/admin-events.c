/* admin-events.c: admin.Events (the transport streams the events). */
#include "api-util.h"

static char *events(Call *call, GError **error)
{
    call_subscribe_events(call);
    return CALL_ASYNC;
}

const Method api_events_methods[] = {
    {"admin.Events", M_NO_PAYLOAD | M_NO_ARG, events},
    {NULL},
};
