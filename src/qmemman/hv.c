/* hv.c: what the hypervisors share (hv.h). */
#include "hv.h"

void qm_seen_free(gpointer p)
{
    QmSeen *s = p;
    g_free(s->id);
    g_free(s->untrusted_meminfo);
    g_free(s);
}
