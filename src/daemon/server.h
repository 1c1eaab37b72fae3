/* server.h: qubesd's sockets, connections and calls.
 *
 * The server listens on the admin socket and on the internal one (the
 * latter root-only, serving internal.* methods too). A connection carries
 * one request (SPEC 5): it is read to EOF (at most 64 KiB), parsed,
 * dispatched to a method, and answered once, except admin.Events which
 * streams until the client goes away.
 *
 * Limits: a connection has request_timeout seconds to send its request
 * and as long again to take its answer; at max_connections a new one
 * evicts the oldest still sending; an events client that leaves more
 * than max_event_backlog bytes unread is dropped (server.c).
 *
 * Errors: a ProtocolError or PermissionDenied drops the connection with no
 * answer (the reference does the same: a correct client never sees them);
 * any other error becomes an exception answer with the Qubes name.
 *
 * Methods run on the main thread and must not block; storage work goes to
 * GLib's worker threads through call_run_worker(), touching only volume
 * references, and the model is updated when it comes back.
 */
#pragma once

#include <gio/gio.h>

#include "app.h"
#include "protocol.h"

G_BEGIN_DECLS

typedef struct _Server Server;
typedef struct _Conn Conn;
typedef struct _Call Call;
typedef struct _Method Method;

/* What a method's result is: text (new), or CALL_ASYNC when the method
 * completes later with call_return()/call_fail(). NULL with @error set
 * is a failure. */
extern char call_async_marker[];
#define CALL_ASYNC (call_async_marker)

typedef char *(*MethodFunc)(Call *call, GError **error);

typedef enum {
    M_NO_PAYLOAD = 1 << 0, /* payload must be empty */
    M_DOM0 = 1 << 1,       /* destination must be dom0 */
    M_NO_ARG = 1 << 2,     /* argument must be empty */
    M_INTERNAL = 1 << 3,   /* only on the internal socket */
    M_PREFIX = 1 << 4,     /* name is a prefix: admin.vm.Create.<class> */
} MethodFlags;

struct _Method {
    const char *name;
    MethodFlags flags;
    MethodFunc func;
};

struct _Call {
    Server *srv;
    Conn *conn;
    QubesApp *app;
    const Method *method;
    char *method_name; /* full name, e.g. admin.vm.Create.AppVM */
    char *endpoint;    /* for M_PREFIX methods: the part after the prefix */
    char *arg;         /* validated printable ASCII, "" when none */
    QubesDomain *src;  /* referenced */
    QubesDomain *dest; /* referenced */
    GBytes *untrusted_payload;
};

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
    GSocketService *service;
    GSocketService *internal_service;
    char *socket_path;
    char *internal_path;
    GHashTable *clone_tokens; /* token -> QubesVolume* (ref) */
    GPtrArray *save_waiting;  /* calls waiting for the next save */
    GPtrArray *save_batch;    /* calls the running save answers, or NULL */
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

/* The method table (methods.c), ended by a NULL name. */
extern const Method admin_methods[];

/* Completes an async call; @result may be NULL (empty answer). */
void call_return(Call *call, const char *result);
/* Fails an async call (takes @error). */
void call_fail(Call *call, GError *error);

/* Runs @work(@data) on a worker thread, then @done(call, ok, error,
 * @data) on the main thread, whose return value completes the call as a
 * MethodFunc's would (CALL_ASYNC to chain further). @free frees @data
 * after @done. */
typedef gboolean (*WorkerFunc)(gpointer data, GError **error);
typedef char *(*WorkerDone)(Call *call, gboolean ok, GError **error,
                            gpointer data);
void call_run_worker(Call *call, WorkerFunc work, WorkerDone done,
                     gpointer data, GDestroyNotify free);

/* Saves qubes.xml with every change made so far, then calls @done(call,
 * ok, error, @data) on the main thread, whose return value completes the
 * call as a WorkerDone's does; @free frees @data after @done. Saves run
 * on a worker thread and are grouped (server.c). */
void call_save_then(Call *call, WorkerDone done, gpointer data,
                    GDestroyNotify free);
/* Runs the main context until no save is running or waiting. */
void server_flush_saves(Server *srv);

/* admin.Events: subscribes @call's connection to the app's events (all,
 * or those of @dest only) until the client leaves. */
void call_subscribe_events(Call *call);

G_END_DECLS
