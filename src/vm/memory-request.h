/* memory-request.h: a qube's memory asked of qmemmand before it is
 * created (memory-request.c; the reference's request_memory).
 *
 * The amount is the reference's: memory, the stubdomain's on Xen hvm,
 * 4 MiB and 1.5 MiB per vCPU of overhead. The connection, which holds
 * the reservation, is the caller's to close once the domain exists. */
#pragma once

#include "runtime-state.h"

#include <gio/gio.h>

G_BEGIN_DECLS

typedef struct {
    char *socket;
    guint64 bytes;
    GSocketConnection *conn; /* OK: the reservation, the caller's to take */
    gboolean absent;         /* no qmemmand at the socket: not balanced */
    gboolean refused;        /* FAIL: the reference's QubesMemoryError */
} QubesMemRequest;

/* Asks rt->cfg.qmemman_socket for @dom's memory on a worker. The task
 * fails only when qmemmand could not be asked. */
void rt_memory_request(QubesRuntime *rt, QubesDomain *dom,
                       GAsyncReadyCallback cb, gpointer data);
/* The finished request's answer. */
QubesMemRequest *rt_memory_request_result(GAsyncResult *res);

G_END_DECLS
