/* server.c: sockets, connections, dispatch and workers. See server.h;
 * the connection protocol follows qubes/api/__init__.py
 * (QubesDaemonProtocol). */
#include "server.h"

#include "qubes-error.h"
#include "qubes-parse.h"

#include <errno.h>
#include <glib-unix.h>
#include <glib/gstdio.h>
#include <grp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

char call_async_marker[1];

struct _Conn {
    gint ref;
    Server *srv;
    int fd;           /* the client's socket, non-blocking; -1 once closed */
    ApiSocket socket; /* the socket it came in on */
    GByteArray *buf;
    guint8 chunk[16384];
    GQueue out;
    GBytes *writing; /* being written, from its byte @written on */
    gsize written;
    guint out_watch; /* waiting for the socket to take more */
    guint in_watch;  /* waiting for the request, or an events client's end */
    gboolean finish_after; /* close once the queue is written */
    gboolean closed;
    Call *events_call;                 /* admin.Events subscription */
    const CallEventsView *events_view; /* how it filters and words them */
    guint sub_app, sub_vm;
    gsize queued;   /* bytes waiting in out and writing */
    guint timer;    /* deadline of the request or of its answer */
    GList *reading; /* link in srv->reading while the request comes */
};

static Conn *conn_ref(Conn *c)
{
    c->ref++;
    return c;
}

static void conn_unref(Conn *c)
{
    if (--c->ref)
        return;
    g_queue_clear_full(&c->out, (GDestroyNotify)g_bytes_unref);
    g_byte_array_unref(c->buf);
    if (c->writing)
        g_bytes_unref(c->writing);
    if (c->fd >= 0)
        close(c->fd);
    g_free(c);
}

static void call_free(Call *call)
{
    g_free(call->method_name);
    g_free(call->endpoint);
    g_free(call->arg);
    if (call->src)
        qubes_domain_unref(call->src);
    if (call->dest)
        qubes_domain_unref(call->dest);
    if (call->untrusted_payload)
        g_bytes_unref(call->untrusted_payload);
    if (call->data && call->data_free)
        call->data_free(call->data);
    conn_unref(call->transport);
    g_free(call);
}

static void unsubscribe(Conn *c)
{
    if (!c->events_call)
        return;
    QubesEventRegistry *reg = c->srv->app->registry;
    if (c->sub_app)
        qubes_event_remove_class_handler(reg, c->sub_app);
    if (c->sub_vm)
        qubes_event_remove_class_handler(reg, c->sub_vm);
    c->sub_app = c->sub_vm = 0;
    Call *call = c->events_call;
    c->events_call = NULL;
    call_free(call);
}

/* ---- limits ----
 *
 * A client is trusted to send its request and to take its answer, not to
 * be quick about it: each has request_timeout seconds (the time a method
 * works in between does not count), then the connection is closed. At
 * max_connections open, a new connection evicts the oldest one still
 * sending its request, or is refused when none is; an admin.Events
 * subscriber whose unread events pass max_event_backlog bytes is
 * dropped. So half-sent, idle and unread connections are bounded in
 * number, time and memory, and a flood of them cannot keep others out. */

static const char *const drop_reasons[DROP_N_REASONS] = {
    "a client did not send its request in time; connection closed",
    "a client did not take its answer in time; connection closed",
    "an admin.Events client stopped reading its events; connection closed",
    "too many connections; the oldest one still sending its request closed",
    "too many connections; a new one refused",
};

/* Logs a dropped connection, at most one line per 10 s for each reason
 * in a flood. */
static void note_dropped(Server *srv, DropReason why)
{
    srv->dropped++;
    gint64 now = g_get_monotonic_time();
    gint64 *last = &srv->dropped_logged_at[why];
    if (*last && now - *last < 10 * G_USEC_PER_SEC)
        return;
    *last = now;
    g_warning("%s (%" G_GUINT64_FORMAT " connections dropped so far)",
              drop_reasons[why], srv->dropped);
}

static void conn_disarm(Conn *c)
{
    if (c->timer) {
        g_source_remove(c->timer);
        c->timer = 0;
    }
}

static void conn_done_reading(Conn *c)
{
    if (c->reading) {
        g_queue_delete_link(&c->srv->reading, c->reading);
        c->reading = NULL;
    }
}

static void conn_close(Conn *c);

/* The deadline counts the client's time, not ours: when it passes while
 * the client's bytes (or its end of the request) wait in the socket for
 * us to read them, or its socket can take more of the answer, it was the
 * daemon that was late (stopped with SIGSTOP, starved on a loaded
 * machine), and the client gets a short grace for us to catch up. The
 * grace is short, so a client trickling bytes gains nothing from it. */
#define SERVER_DEADLINE_GRACE 1

static gboolean on_deadline(gpointer data)
{
    Conn *c = data;
    c->timer = 0;
    struct pollfd p = {.fd = c->fd, .events = c->reading ? POLLIN : POLLOUT};
    if (poll(&p, 1, 0) == 1 && !(p.revents & (POLLERR | POLLNVAL))) {
        c->timer = g_timeout_add_seconds(SERVER_DEADLINE_GRACE, on_deadline, c);
        return G_SOURCE_REMOVE;
    }
    note_dropped(c->srv, c->reading ? DROP_REQUEST_LATE : DROP_ANSWER_UNTAKEN);
    conn_close(c);
    return G_SOURCE_REMOVE;
}

static void conn_arm(Conn *c)
{
    conn_disarm(c);
    if (c->srv->request_timeout)
        c->timer =
            g_timeout_add_seconds(c->srv->request_timeout, on_deadline, c);
}

static void conn_close(Conn *c)
{
    if (c->closed)
        return;
    c->closed = TRUE;
    unsubscribe(c);
    conn_disarm(c);
    conn_done_reading(c);
    if (c->in_watch)
        g_source_remove(c->in_watch);
    if (c->out_watch)
        g_source_remove(c->out_watch);
    c->in_watch = c->out_watch = 0;
    close(c->fd);
    c->fd = -1;
    c->srv->connections--;
    conn_unref(c);
}

static void conn_flush(Conn *c);

static gboolean on_writable(gint fd, GIOCondition cond, gpointer data)
{
    Conn *c = data;
    c->out_watch = 0;
    conn_ref(c);
    conn_flush(c);
    conn_unref(c);
    return G_SOURCE_REMOVE;
}

/* Writes the queue as far as the socket takes it now; the rest when it
 * can take more (an answer mostly fits its buffer whole: one send). The
 * connection closes after its last answer (finish_after), or when the
 * client has gone. */
static void conn_flush(Conn *c)
{
    while (!c->closed && !c->out_watch) {
        if (!c->writing) {
            c->writing = g_queue_pop_head(&c->out);
            c->written = 0;
            if (!c->writing) {
                if (c->finish_after)
                    conn_close(c);
                return;
            }
        }
        gsize len;
        const char *data = g_bytes_get_data(c->writing, &len);
        ssize_t n = len > c->written
                        ? send(c->fd, data + c->written, len - c->written,
                               MSG_NOSIGNAL | MSG_DONTWAIT)
                        : 0;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            c->out_watch = g_unix_fd_add(c->fd, G_IO_OUT | G_IO_ERR | G_IO_HUP,
                                         on_writable, c);
            return;
        }
        if (n < 0) {
            g_debug("client went away: %s", g_strerror(errno));
            conn_close(c);
            return;
        }
        c->written += (gsize)n;
        c->queued -= (gsize)n;
        if (c->written == len)
            g_clear_pointer(&c->writing, g_bytes_unref);
    }
}

static void conn_send(Conn *c, GBytes *b)
{
    if (c->closed) {
        g_bytes_unref(b);
        return;
    }
    c->queued += g_bytes_get_size(b);
    g_queue_push_tail(&c->out, b);
    if (c->events_call && c->queued > c->srv->max_event_backlog) {
        note_dropped(c->srv, DROP_EVENTS_UNREAD);
        conn_close(c);
        return;
    }
    conn_flush(c);
}

/* Sends the one answer of a call; the connection closes once it is
 * written. */
static void conn_answer(Conn *c, GBytes *answer)
{
    c->finish_after = TRUE;
    conn_send(c, answer);
    /* a deadline only for an answer the client has not taken yet */
    if (!c->closed)
        conn_arm(c);
}

/* ---- completing calls ---- */

static Conn *call_conn(Call *call)
{
    return call->transport;
}

void call_return(Call *call, const char *result)
{
    conn_answer(
        call_conn(call),
        qubes_response_ok(result ? result : "", result ? strlen(result) : 0));
    call_free(call);
}

void call_fail(Call *call, GError *error)
{
    Conn *c = call_conn(call);
    if (c->events_call == call)
        c->events_call = NULL; /* a stream ends with its exception */
    gsize plen =
        call->untrusted_payload ? g_bytes_get_size(call->untrusted_payload) : 0;
    const char *type = error->domain == QUBES_ERROR
                           ? qubes_error_exception_name(error->code)
                           : "QubesException";
    /* Every refusal is answered with its exception, as the reference's
     * current qubesd answers ProtocolError and PermissionDenied too (a
     * client then shows why, not "Got empty response"); those two are
     * logged as warnings, as the reference logs them. */
    if (error->domain == QUBES_ERROR &&
        (error->code == QUBES_ERROR_PROTOCOL ||
         error->code == QUBES_ERROR_PERMISSION_DENIED))
        g_warning("failed call %s+%s (%s → %s) with payload of %zu bytes "
                  "due to %s: %s",
                  call->method_name, call->arg ? call->arg : "",
                  call->src ? call->src->name : "?",
                  call->dest ? call->dest->name : "?", plen, type,
                  error->message);
    else
        g_info("call %s+%s (%s → %s) failed: %s: %s", call->method_name,
               call->arg ? call->arg : "", call->src ? call->src->name : "?",
               call->dest ? call->dest->name : "?", type, error->message);
    conn_answer(c, qubes_response_exception(type, "", error->message));
    g_error_free(error);
    call_free(call);
}

/* Completes @call with what a method or a worker's done returned. */
static void call_complete(Call *call, char *result, GError *error)
{
    if (result == CALL_ASYNC) {
        if (error)
            g_error_free(error);
        return;
    }
    if (!result && error) {
        call_fail(call, error);
        return;
    }
    if (error)
        g_error_free(error);
    call_return(call, result);
    g_free(result);
}

/* ---- workers ---- */

typedef struct {
    Call *call; /* NULL for a save of the app's own (notify) */
    WorkerFunc work;
    WorkerDone done;
    void (*notify)(gpointer data, GError *error);
    gpointer data;
    GDestroyNotify free;
} Job;

static void job_free(Job *j)
{
    if (j->free)
        j->free(j->data);
    g_free(j);
}

static void job_thread(GTask *task, gpointer src, gpointer task_data,
                       GCancellable *cancellable)
{
    Job *j = task_data;
    GError *err = NULL;
    if (j->work(j->data, &err))
        g_task_return_boolean(task, TRUE);
    else
        g_task_return_error(task, err);
}

static void job_done(GObject *src, GAsyncResult *res, gpointer data)
{
    Job *j = g_task_get_task_data(G_TASK(res));
    GError *err = NULL;
    gboolean ok = g_task_propagate_boolean(G_TASK(res), &err);
    char *result = j->done(j->call, ok, &err, j->data);
    /* The data goes here, on the main context and before the answer, not
     * with the task: the worker may hold the task's last reference, and
     * the data's free may change the daemon's state (a backup's entry
     * leaves the running ones), which a client answered must find
     * changed and which only the main context touches. */
    if (j->free)
        j->free(j->data);
    j->free = NULL;
    call_complete(j->call, result, err);
}

void call_run_worker(Call *call, WorkerFunc work, WorkerDone done,
                     gpointer data, GDestroyNotify free)
{
    Job *j = g_new0(Job, 1);
    j->call = call;
    j->work = work;
    j->done = done;
    j->data = data;
    j->free = free;
    GTask *task = g_task_new(NULL, NULL, job_done, NULL);
    g_task_set_task_data(task, j, (GDestroyNotify)job_free);
    g_task_run_in_thread(task, job_thread);
    g_object_unref(task);
}

/* ---- saving qubes.xml ----
 *
 * A method that changed the model answers only once a qubes.xml holding
 * the change is on disk (qubes_xml_save: temporary, fsync, rename, fsync
 * of the folder). Saves are a group commit:
 *  - a call joins save_waiting after its change is made in the model;
 *  - one save runs at a time: it takes the whole waiting list as its
 *    batch and a snapshot of the model (qubes_app_to_xml, on the main
 *    thread, so after every change of the batch), then writes the
 *    snapshot on a worker thread while the main loop goes on serving;
 *  - when it is on disk the batch is answered, and the calls that came
 *    meanwhile start the next save, all of their changes in one write.
 * So no answer precedes the durability of its change, the main loop never
 * waits for the disk, and under load one fsync'd write serves many calls.
 * As saves never overlap, an older snapshot never lands after a newer one
 * (qubes_xml_save's lockf also orders us against other writers). A failed
 * save fails each call of its batch with the cause; the changes stay in
 * the model and go to disk with the next save, as in the reference. */

typedef struct {
    QubesXml *xml;
    char *path;
} SaveJob;

static void save_job_free(SaveJob *s)
{
    qubes_xml_free(s->xml);
    g_free(s->path);
    g_free(s);
}

static void save_thread(GTask *task, gpointer src, gpointer task_data,
                        GCancellable *cancellable)
{
    SaveJob *s = task_data;
    GError *err = NULL;
    gboolean ok = qubes_xml_save(s->xml, s->path, &err);
    /* The snapshot is freed here, not with the task on the main thread:
     * with a thousand qubes that is milliseconds the next call would
     * wait. */
    g_clear_pointer(&s->xml, qubes_xml_free);
    if (ok)
        g_task_return_boolean(task, TRUE);
    else
        g_task_return_error(task, err);
}

static void save_start(Server *srv);

static void save_done(GObject *src, GAsyncResult *res, gpointer data)
{
    Server *srv = data;
    g_autoptr(GError) err = NULL;
    gboolean ok = g_task_propagate_boolean(G_TASK(res), &err);
    g_autoptr(GPtrArray) batch = g_steal_pointer(&srv->save_batch);
    if (!ok)
        g_warning("cannot save %s: %s", srv->app->xml_path, err->message);
    for (guint i = 0; i < batch->len; i++) {
        Job *j = batch->pdata[i];
        GError *e = NULL;
        if (!ok)
            e = g_error_new(QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                            "cannot save %s: %s", srv->app->xml_path,
                            err->message);
        if (!j->call) {
            j->notify(j->data, e);
            g_clear_error(&e);
            continue;
        }
        char *result = j->done(j->call, ok, &e, j->data);
        call_complete(j->call, result, e);
    }
    save_start(srv);
}

static void save_start(Server *srv)
{
    if (srv->save_batch || !srv->save_waiting->len)
        return;
    srv->save_batch = g_steal_pointer(&srv->save_waiting);
    srv->save_waiting =
        g_ptr_array_new_with_free_func((GDestroyNotify)job_free);
    SaveJob *s = g_new0(SaveJob, 1);
    s->xml = qubes_app_to_xml(srv->app);
    s->path = g_strdup(srv->app->xml_path);
    GTask *task = g_task_new(NULL, NULL, save_done, srv);
    g_task_set_task_data(task, s, (GDestroyNotify)save_job_free);
    g_task_run_in_thread(task, save_thread);
    g_object_unref(task);
}

void call_save_then(Call *call, WorkerDone done, gpointer data,
                    GDestroyNotify free)
{
    Job *j = g_new0(Job, 1);
    j->call = call;
    j->done = done;
    j->data = data;
    j->free = free;
    Server *srv = call_conn(call)->srv;
    g_ptr_array_add(srv->save_waiting, j);
    save_start(srv);
}

/* app->save_async: a change the daemon made by itself (a DispVM that
 * removed itself) joins the same group commit as the calls'. */
static void app_save_async(QubesApp *app, void (*done)(gpointer, GError *),
                           gpointer data)
{
    Server *srv = app->save_async_data;
    Job *j = g_new0(Job, 1);
    j->notify = done;
    j->data = data;
    g_ptr_array_add(srv->save_waiting, j);
    save_start(srv);
}

void server_flush_saves(Server *srv)
{
    while (srv->save_batch || srv->save_waiting->len)
        g_main_context_iteration(NULL, TRUE);
}

/* ---- events ---- */

static gboolean forward_event(QubesEvent *ev, gpointer data, GError **error)
{
    Conn *c = data;
    const char *name = ev->name;
    if (g_str_has_prefix(name, "admin-permission:") ||
        g_str_has_prefix(name, "device-get:") ||
        g_str_has_prefix(name, "device-list:") ||
        g_str_has_prefix(name, "device-list-attached:") ||
        strcmp(name, "domain-is-fully-usable") == 0)
        return TRUE;
    QubesDomain *only = c->events_call ? c->events_call->dest : NULL;
    if (only && only->qid != 0 && strcmp(ev->subject->name, only->name) != 0)
        return TRUE;
    const CallEventsView *view = c->events_view;
    if (c->events_call && !view->visible(c->events_call, ev))
        return TRUE;
    g_auto(GStrv) kw = view->wire_kwargs(c->srv->app, ev);
    conn_send(c, qubes_response_event(ev->subject->name, name,
                                      (const char *const *)kw));
    return TRUE;
}

static gboolean on_hup(gint fd, GIOCondition cond, gpointer data)
{
    Conn *c = data;
    c->in_watch = 0;
    conn_close(c);
    return G_SOURCE_REMOVE;
}

void call_stream_begin(Call *call)
{
    Conn *c = call_conn(call);
    c->events_call = call;
    conn_send(c, qubes_response_event("", "connection-established", NULL));
    if (!c->closed)
        c->in_watch = g_unix_fd_add(c->fd, G_IO_HUP | G_IO_ERR, on_hup, c);
}

gboolean call_stream_send(Call *call, const char *subject, const char *event,
                          const char *const *kwargs)
{
    Conn *c = call_conn(call);
    if (c->closed || c->events_call != call)
        return FALSE;
    conn_send(c, qubes_response_event(subject, event, kwargs));
    return !c->closed;
}

void call_subscribe_events(Call *call, const CallEventsView *view)
{
    Conn *c = call_conn(call);
    c->events_view = view;
    QubesEventRegistry *reg = call->app->registry;
    /* as master's dispatcher, which adds its handler to each qube and the
     * app: it sees an event after the handlers it set off (and a
     * pre-event before them) */
    c->sub_vm = qubes_event_add_class_handler(
        reg, "BaseVM", "*", forward_event, QUBES_HANDLER_AS_INSTANCE, c, NULL);
    if (call->dest->qid == 0)
        c->sub_app =
            qubes_event_add_class_handler(reg, "Qubes", "*", forward_event,
                                          QUBES_HANDLER_AS_INSTANCE, c, NULL);
    call_stream_begin(call);
}

/* ---- dispatch ---- */

/* qubes/api decode_vm: "uuid:UUID" or a valid name of an existing VM. */
static QubesDomain *decode_vm(QubesApp *app, const char *untrusted,
                              GError **error)
{
    if (g_str_has_prefix(untrusted, "uuid:")) {
        const char *u = untrusted + 5;
        if (strlen(untrusted) != 41 || !g_uuid_string_is_valid(u)) {
            g_autofree char *r = qubes_py_repr(u);
            g_set_error(error, QUBES_ERROR, QUBES_ERROR_VM_INVALID_UUID,
                        "VM UUID is not valid: %s", r);
            return NULL;
        }
        for (guint i = 0; i < app->domains->len; i++) {
            QubesDomain *d = app->domains->pdata[i];
            g_autofree char *uuid = NULL;
            qubes_props_get(&d->props, "uuid", &uuid, NULL, NULL);
            if (g_ascii_strcasecmp(uuid, u) == 0)
                return qubes_domain_ref(d);
        }
    } else {
        if (!qubes_validate_vm_name(untrusted, error))
            return NULL;
        QubesDomain *d = g_hash_table_lookup(app->by_name, untrusted);
        if (d)
            return qubes_domain_ref(d);
    }
    g_set_error(error, QUBES_ERROR, QUBES_ERROR_VM_NOT_FOUND,
                "No such domain: '%s'", untrusted);
    return NULL;
}

static gboolean protocol_error(GError **error, const char *why)
{
    g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_PROTOCOL, why);
    return FALSE;
}

static gboolean prepare(Call *call, QubesRequest *req, ApiSocket socket,
                        GError **error)
{
    call->src = decode_vm(call->app, req->untrusted_src, error);
    if (!call->src)
        return FALSE;
    call->dest = decode_vm(call->app, req->untrusted_dest, error);
    if (!call->dest)
        return FALSE;
    call->method = api_find_method(call->method_name, socket, &call->endpoint);
    if (!call->method) {
        g_autofree char *r = qubes_py_repr(call->method_name);
        g_autofree char *why = g_strdup_printf("no such method: %s", r);
        return protocol_error(error, why);
    }
    /* The reference's checks of its method options, in its order and
     * words (qubes/api AbstractQubesAPI.execute). */
    MethodFlags f = call->method->flags;
    gsize plen = g_bytes_get_size(call->untrusted_payload);
    if ((f & M_PAYLOAD) && !plen)
        return protocol_error(error, "expected payload");
    if ((f & M_NO_PAYLOAD) && plen)
        return protocol_error(error, "unexpected payload");
    if ((f & M_ARG) && !*call->arg)
        return protocol_error(error, "expected an argument");
    if ((f & M_NO_ARG) && *call->arg)
        return protocol_error(error, "unexpected argument");
    if ((f & M_DOM0) && call->dest->qid != 0)
        return protocol_error(error, "expected destination to be AdminVM");
    if ((f & M_NOT_DOM0) && call->dest->qid == 0)
        return protocol_error(error, "expected destination to not be AdminVM");
    return TRUE;
}

static void handle_request(Conn *c)
{
    g_autoptr(GError) perr = NULL;
    if (c->buf->len == 0) { /* connected and left: a probe, not an error */
        conn_close(c);
        return;
    }
    g_autoptr(QubesRequest) req =
        qubes_request_parse(c->buf->data, c->buf->len, &perr);
    if (!req) {
        g_warning("framing error: %s", perr->message);
        conn_close(c);
        return;
    }
    c->srv->requests++;
    Call *call = g_new0(Call, 1);
    call->transport = conn_ref(c);
    call->app = c->srv->app;
    call->state = c->srv->api;
    /* The header is printable ASCII (protocol.c); the method and the
     * argument are checked further by each method. */
    call->method_name = g_strdup(req->untrusted_method);
    call->arg = g_strdup(req->untrusted_arg);
    call->untrusted_payload = g_bytes_ref(req->untrusted_payload);
    GError *err = NULL;
    if (!prepare(call, req, c->socket, &err)) {
        call_fail(call, err);
        return;
    }
    char *result = call->method->func(call, &err);
    call_complete(call, result, err);
}

/* Takes @n bytes of the request (0: its end); FALSE when the connection
 * was closed or the request handled. */
static gboolean took(Conn *c, const guint8 *bytes, gsize n)
{
    if (n == 0) {
        conn_disarm(c);
        conn_done_reading(c);
        handle_request(c);
        return FALSE;
    }
    if (c->buf->len + n > QUBES_REQUEST_MAX) {
        g_warning("request too long");
        conn_close(c);
        return FALSE;
    }
    g_byte_array_append(c->buf, bytes, (guint)n);
    return TRUE;
}

static gboolean on_readable(gint fd, GIOCondition cond, gpointer data);

/* Reads the request as far as the socket holds it now (a client mostly
 * sends it whole with its connection: then nothing waits), then waits
 * for the rest under the request's deadline. */
static void conn_read(Conn *c)
{
    conn_ref(c);
    for (;;) {
        ssize_t n = recv(c->fd, c->chunk, sizeof c->chunk, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n >= 0) {
            if (took(c, c->chunk, (gsize)n))
                continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (!c->timer)
                conn_arm(c);
            if (!c->in_watch)
                c->in_watch = g_unix_fd_add(
                    c->fd, G_IO_IN | G_IO_HUP | G_IO_ERR, on_readable, c);
            break;
        } else {
            g_debug("read error: %s", g_strerror(errno));
            conn_close(c);
        }
        /* done reading: no more waiting for it */
        if (c->in_watch && !c->events_call) {
            g_source_remove(c->in_watch);
            c->in_watch = 0;
        }
        break;
    }
    conn_unref(c);
}

static gboolean on_readable(gint fd, GIOCondition cond, gpointer data)
{
    Conn *c = conn_ref(data);
    guint before = c->in_watch;
    conn_read(c);
    /* conn_read removed or kept the watch; keep it only while it is
     * still the one waiting for this request */
    gboolean again = before && c->in_watch == before;
    conn_unref(c);
    return again ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

/* A new client on @socket. */
static void conn_new(Server *srv, int fd, ApiSocket socket)
{
    if (srv->connections >= srv->max_connections) {
        Conn *oldest = g_queue_peek_head(&srv->reading);
        if (!oldest) {
            /* Every open connection has its request in: refuse this one. */
            note_dropped(srv, DROP_REFUSED);
            close(fd);
            return;
        }
        note_dropped(srv, DROP_EVICTED);
        conn_close(oldest);
    }
    Conn *c = g_new0(Conn, 1);
    c->ref = 1; /* the open connection's own reference */
    c->srv = srv;
    c->fd = fd;
    c->socket = socket;
    c->buf = g_byte_array_new();
    g_queue_init(&c->out);
    srv->connections++;
    g_queue_push_tail(&srv->reading, c);
    c->reading = srv->reading.tail;
    conn_read(c);
}

/* Takes every client waiting on a listening socket (many connect at
 * once: qvm-ls with a thousand qubes, the GUI tools), then waits for
 * more. A client gets a plain non-blocking descriptor: no object, no
 * query of its address, as nothing here needs them. */
static gboolean on_accept(gint lfd, GIOCondition cond, gpointer data)
{
    Server *srv = data;
    ApiSocket socket = API_SOCKET_ADMIN;
    while (socket + 1 < API_N_SOCKETS && srv->sockets[socket].fd != lfd)
        socket++;
    for (int i = 0; i < 64; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                g_warning("accept on %s: %s", srv->sockets[socket].path,
                          g_strerror(errno));
            break;
        }
        conn_new(srv, fd, socket);
    }
    return G_SOURCE_CONTINUE;
}

/* ---- sockets ---- */

/* Removes a socket file no daemon answers on; refuses a live one. */
static gboolean clear_stale(const char *path, GError **error)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return TRUE;
    if (!S_ISSOCK(st.st_mode)) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                    "%s exists and is not a socket", path);
        return FALSE;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    g_strlcpy(sa.sun_path, path, sizeof sa.sun_path);
    gboolean live = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    if (live) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                    "another qubesd is listening on %s", path);
        return FALSE;
    }
    if (unlink(path) != 0 && errno != ENOENT)
        return qubes_error_errno(error, errno, "Cannot remove stale %s", path);
    return TRUE;
}

/* Listens on @path (a stale socket file replaced), mode @mode; the
 * descriptor, or -1 with @error. */
static int listen_on(Server *srv, const char *path, mode_t mode, guint *watch,
                     GError **error)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                    "socket path too long: %s", path);
        return -1;
    }
    if (!clear_stale(path, error))
        return -1;
    g_strlcpy(sa.sun_path, path, sizeof sa.sun_path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    /* Many clients connect at once (qvm-ls with a thousand qubes, the
     * GUI tools): a short accept queue would refuse them. */
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        listen(fd, 1024) != 0) {
        qubes_error_errno(error, errno, "Cannot listen on %s", path);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    /* Mode 0660 and group qubes for the admin and misc sockets (as the
     * reference's), 0600 for the internal one (server.h). */
    struct group *gr = mode & 0070 ? getgrnam("qubes") : NULL;
    if (gr && chown(path, (uid_t)-1, gr->gr_gid) != 0)
        g_warning("cannot give %s to group qubes: %s", path, g_strerror(errno));
    if (chmod(path, mode) != 0) {
        qubes_error_errno(error, errno, "Cannot set the mode of %s", path);
        close(fd);
        unlink(path);
        return -1;
    }
    *watch = g_unix_fd_add(fd, G_IO_IN, on_accept, srv);
    return fd;
}

Server *server_new(QubesApp *app, const char *socket_path, GError **error)
{
    static const struct {
        const char *name; /* beside the admin socket; NULL: PATH */
        mode_t mode;
    } kinds[API_N_SOCKETS] = {
        [API_SOCKET_ADMIN] = {NULL, 0660},
        [API_SOCKET_INTERNAL] = {"qubesd.internal.sock", 0600},
        [API_SOCKET_MISC] = {"qubesd.misc.sock", 0660},
    };
    Server *srv = g_new0(Server, 1);
    g_autofree char *dir = g_path_get_dirname(socket_path);
    for (guint k = 0; k < API_N_SOCKETS; k++) {
        srv->sockets[k].fd = -1;
        srv->sockets[k].path = kinds[k].name
                                   ? g_build_filename(dir, kinds[k].name, NULL)
                                   : g_strdup(socket_path);
    }
    srv->app = app;
    srv->api = api_state_new();
    srv->save_waiting =
        g_ptr_array_new_with_free_func((GDestroyNotify)job_free);
    app->save_async = app_save_async;
    app->save_async_data = srv;
    srv->request_timeout = SERVER_REQUEST_TIMEOUT;
    srv->max_connections = SERVER_MAX_CONNECTIONS;
    srv->max_event_backlog = SERVER_MAX_EVENT_BACKLOG;
    g_queue_init(&srv->reading);
    if (g_mkdir_with_parents(dir, 0755) != 0) {
        qubes_error_errno(error, errno, "Cannot create %s", dir);
        server_free(srv);
        return NULL;
    }
    for (guint k = 0; k < API_N_SOCKETS; k++) {
        srv->sockets[k].fd = listen_on(srv, srv->sockets[k].path, kinds[k].mode,
                                       &srv->sockets[k].watch, error);
        if (srv->sockets[k].fd < 0) {
            server_free(srv);
            return NULL;
        }
    }
    return srv;
}

void server_free(Server *srv)
{
    if (!srv)
        return;
    if (srv->app && srv->app->save_async_data == srv) {
        srv->app->save_async = NULL;
        srv->app->save_async_data = NULL;
    }
    Conn *c;
    while ((c = g_queue_peek_head(&srv->reading)))
        conn_close(c);
    for (guint k = 0; k < API_N_SOCKETS; k++) {
        if (srv->sockets[k].fd >= 0) {
            g_source_remove(srv->sockets[k].watch);
            close(srv->sockets[k].fd);
            unlink(srv->sockets[k].path);
        }
        g_free(srv->sockets[k].path);
    }
    api_state_free(srv->api);
    g_ptr_array_unref(srv->save_waiting);
    g_free(srv);
}
