/* qubesadmin.h: a small Admin API client for the qvm-* tools and the
 * service programs.
 *
 * One call is one connection: the request is sent, the write side shut
 * down, and the whole answer read. The socket is $QUBESD_SOCKET, else
 * /var/run/qubesd.sock; the internal one is qubesd.internal.sock in the
 * same folder.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define QA_ERROR (qa_error_quark())
GQuark qa_error_quark(void);

typedef enum {
    QA_ERROR_CONNECT,   /* no daemon */
    QA_ERROR_PROTOCOL,  /* the daemon dropped the call or answered badly */
    QA_ERROR_EXCEPTION, /* an exception answer; see qa_error_type() */
} QaErrorCode;

/* The admin socket's path (static or from the environment). */
const char *qa_socket_path(void);
/* The internal socket's path (new). */
char *qa_internal_socket_path(void);

/* Calls @method+@arg on @dest from @src (NULL: dom0) through @socket
 * (NULL: the admin socket). Returns the result text (new, may hold NULs:
 * *len is its length) or NULL with @error: for an exception answer the
 * message is "TYPE: MESSAGE" and the code QA_ERROR_EXCEPTION. */
char *qa_call_full(const char *socket, const char *src, const char *method,
                   const char *dest, const char *arg, const void *payload,
                   gsize payload_len, gsize *len, GError **error);
char *qa_call(const char *method, const char *dest, const char *arg,
              const char *payload, GError **error);
/* qa_call()'s answer as its non-empty lines (new array), or NULL with
 * @error. */
GPtrArray *qa_call_lines(const char *method, const char *dest, const char *arg,
                         GError **error);
/* The raw answer bytes (for service programs that pass it on). */
GBytes *qa_call_raw(const char *socket, const char *src, const char *method,
                    const char *dest, const char *arg, const void *payload,
                    gsize payload_len, GError **error);

/* The answer @raw (to @method+@arg) as qa_call_full gives it: its text,
 * or NULL with @error for an exception or a refusal. */
char *qa_answer_text(GBytes *raw, const char *method, const char *arg,
                     gsize *len, GError **error);

/* "key=value" lines (or space-separated "key=value" words) as a table. */
GHashTable *qa_parse_kv(const char *text, const char *sep);

/* The exception type of an error from qa_call (static, or NULL). */
const char *qa_error_type(const GError *error);

/* Prints "PROG: MESSAGE" to stderr for @error; returns the exit status
 * the Qubes tools use (1). */
int qa_fail(const char *prog, const GError *error);

/* A stream of admin.Events on @dest: poll qa_events_fd() for input, then
 * qa_events_read() calls @func for each whole event (its subject, name
 * and a NULL-ended KEY, VALUE, ... vector); FALSE at the stream's end. */
typedef struct _QaEvents QaEvents;
typedef void (*QaEventFunc)(const char *subject, const char *event,
                            const char *const *kwargs, gpointer data);
QaEvents *qa_events_open(const char *dest, GError **error);
int qa_events_fd(QaEvents *ev);
gboolean qa_events_read(QaEvents *ev, QaEventFunc func, gpointer data);
void qa_events_close(QaEvents *ev);

/* Whether stdout is a terminal (for progress bars and tables). */
gboolean qa_isatty(void);

G_END_DECLS
