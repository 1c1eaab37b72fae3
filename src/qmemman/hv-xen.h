/* hv-xen.h: qmemmand's hypervisor on Xen (hv-xen.c), over the calls of
 * xen-ops.h. */
#pragma once

#include "hv.h"
#include "xen-ops.h"

G_BEGIN_DECLS

/* Takes @ops (closed with the hypervisor). */
QmHv *qm_hv_xen_new(QmXenOps *ops);

G_END_DECLS
