/* xen-none.c: xen-ops.h when qmemmand was built without Debian's Xen
 * libraries. */
#include "xen-ops.h"

#include <gio/gio.h>

QmXenOps *qm_xen_ops_open(GError **error)
{
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                "qmemmand was built without Xen's libraries (libxen-dev)");
    return NULL;
}
