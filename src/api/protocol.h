/* protocol.h: the qubesd wire format (SPEC section 5).
 *
 * A client sends "METHOD[+ARG] SOURCE DEST_TYPE DEST\0PAYLOAD" and shuts
 * its side down; the daemon answers with one of
 *   "0\0" RESULT                                 success
 *   ("1\0" SUBJECT\0 EVENT\0 (KEY\0 VALUE\0)* \0)*  events
 *   "2\0" EXCEPTION_TYPE\0 TRACEBACK\0 MESSAGE\0   failure
 * Requests longer than QUBES_REQUEST_MAX are dropped, as are requests
 * that do not parse: the daemon closes the connection without an answer.
 *
 * Everything parsed here is untrusted: the fields keep the untrusted_
 * prefix until the method that uses them has validated them.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define QUBES_REQUEST_MAX 65536

typedef struct {
    char *untrusted_method;
    char *untrusted_arg; /* "" when there is none */
    char *untrusted_src;
    char *untrusted_dest; /* "dom0" for the keyword "adminvm" */
    GBytes *untrusted_payload;
} QubesRequest;

void qubes_request_free(QubesRequest *req);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QubesRequest, qubes_request_free)

/* Splits a whole request into its parts. Returns NULL with a
 * QUBES_ERROR_PROTOCOL error saying what is wrong (for the log; the
 * client gets no answer) when it is too long, has no NUL, has fewer than
 * four header fields, a destination type other than "name" (or the
 * keyword "adminvm"), or bytes other than printable ASCII in its header. */
QubesRequest *qubes_request_parse(const guint8 *untrusted_data, gsize len,
                                  GError **error);

/* Answers, ready to write (new GBytes). */
GBytes *qubes_response_ok(const char *content, gsize len);
/* One event of a stream: @kwargs is key, value, ..., NULL (may be NULL);
 * @subject "" for the app itself. */
GBytes *qubes_response_event(const char *subject, const char *event,
                             const char *const *kwargs);
GBytes *qubes_response_exception(const char *type, const char *traceback,
                                 const char *message);

G_END_DECLS
