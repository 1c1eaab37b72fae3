/* status.h: the client side of qmemmand's status socket, for qvm-memory
 * and for qubesd (autostart on Xen waits for dom0's report there). */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Asks qmemmand's status socket at @path for @what ("state" or "case")
 * and returns its whole answer (one JSON line); NULL with the cause when
 * it does not answer. Blocking (timeout @timeout_s seconds). */
char *qm_status_ask(const char *path, const char *what, guint timeout_s,
                    GError **error);

G_END_DECLS
