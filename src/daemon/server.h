/* server.h: qubesd's sockets, connections and calls.
 *
 * The server listens on three sockets, each serving its own methods
 * (api.h ApiSocket): the admin socket (PATH, mode 0660, group qubes),
 * and beside it qubesd.internal.sock (root only, 0600) and
 * qubesd.misc.sock (0660, group qubes, as the admin one: qrexec's
 * services reach it as dom0's user). A connection carries
 * one request (SPEC 5): it is read to EOF (at most 64 KiB), parsed,
 * dispatched to a method, and answered once, except admin.Events which
 * streams until the client goes away.
 *
 * Limits: a connection has request_timeout seconds to send its request
 * and as long again to take its answer; at max_connections a new one
 * evicts the oldest still sending; an events client that leaves more
 * than max_event_backlog bytes unread is dropped (server.c).
 *
 * Errors: every failure of a call is answered with its Qubes exception
 * name and message, ProtocolError and PermissionDenied included (as the
 * reference's current qubesd); only a request that cannot be framed (no
 * NUL, over 64 KiB, a bad destination type) closes the connection with
 * no answer.
 *
 * Methods run on the main thread and must not block; storage work goes to
 * GLib's worker threads through call_run_worker(), touching only volume
 * references, and the model is updated when it comes back.
 */
#pragma once

#include <gio/gio.h>

#include "api.h"
#include "app.h"
#include "protocol.h"

G_BEGIN_DECLS

typedef struct _Server Server;
typedef struct _Conn Conn;

/* Why a limit closed a connection (server.c). */
typedef enum {
    DROP_REQUEST_LATE,
    DROP_ANSWER_UNTAKEN,
    DROP_EVENTS_UNREAD,
    DROP_EVICTED,
    DROP_REFUSED,
    DROP_N_REASONS
} DropReason;

struct _Server {
    QubesApp *app;
    GMainLoop *loop;
    /* the listening sockets, by ApiSocket; fd -1 when not open */
    struct {
        int fd;
        guint watch;
        char *path;
    } sockets[API_N_SOCKETS];
    ApiState *api;           /* the API's state between calls */
    GPtrArray *save_waiting; /* calls waiting for the next save */
    GPtrArray *save_batch;   /* calls the running save answers, or NULL */
    guint connections;
    guint64 requests;
    /* Limits (server.c); server_new sets the defaults below. */
    guint request_timeout;   /* seconds to send a request or take an answer;
                                0: no limit */
    guint max_connections;   /* open connections at once */
    gsize max_event_backlog; /* unread bytes of an admin.Events client */
    GQueue reading;          /* connections still sending, oldest first */
    guint64 dropped;         /* connections closed by a limit */
    gint64 dropped_logged_at[DROP_N_REASONS];
};

#define SERVER_REQUEST_TIMEOUT 60
#define SERVER_MAX_CONNECTIONS 4096
#define SERVER_MAX_EVENT_BACKLOG (16u << 20)

Server *server_new(QubesApp *app, const char *socket_path, GError **error);
void server_free(Server *srv);

/* Runs the main context until no save is running or waiting. */
void server_flush_saves(Server *srv);

G_END_DECLS
