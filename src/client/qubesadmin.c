/* qubesadmin.c: see qubesadmin.h. Plain sockets: the tools are short
 * lived and make a handful of calls. */
#include "qubesadmin.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

G_DEFINE_QUARK(qa - error - quark, qa_error)

const char *qa_socket_path(void)
{
    const char *env = g_getenv("QUBESD_SOCKET");
    return env && *env ? env : "/var/run/qubesd.sock";
}

char *qa_internal_socket_path(void)
{
    g_autofree char *dir = g_path_get_dirname(qa_socket_path());
    return g_build_filename(dir, "qubesd.internal.sock", NULL);
}

/* Sends all of @data; FALSE (errno set) when qubesd closed the
 * connection first (no SIGPIPE: it refuses a request it will not read
 * whole, such as notes over its limit). */
static gboolean write_all(int fd, const void *data, gsize len)
{
    const char *p = data;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return FALSE;
        p += n;
        len -= (gsize)n;
    }
    return TRUE;
}

/* A connection to @path with the request sent and the write side shut
 * down; -1 with @error. *@sent: whether the request went whole. */
static int send_request(const char *path, const char *src, const char *method,
                        const char *dest, const char *arg, const void *payload,
                        gsize payload_len, gboolean *sent, GError **error)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (fd < 0 || strlen(path) >= sizeof sa.sun_path) {
        g_set_error(error, QA_ERROR, QA_ERROR_CONNECT,
                    "cannot connect to qubesd at %s", path);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    g_strlcpy(sa.sun_path, path, sizeof sa.sun_path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int e = errno;
        close(fd);
        g_set_error(error, QA_ERROR, QA_ERROR_CONNECT,
                    "cannot connect to qubesd at %s: %s", path, g_strerror(e));
        return -1;
    }
    g_autofree char *header = g_strdup_printf(
        "%s+%s %s name %s", method, arg ? arg : "", src ? src : "dom0", dest);
    *sent = write_all(fd, header, strlen(header) + 1) &&
            (!payload_len || write_all(fd, payload, payload_len));
    shutdown(fd, SHUT_WR);
    return fd;
}

GPtrArray *qa_call_lines(const char *method, const char *dest, const char *arg,
                         GError **error)
{
    g_autofree char *text = qa_call(method, dest, arg, NULL, error);
    if (!text)
        return NULL;
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    for (char **l = lines; *l; l++)
        if (**l)
            g_ptr_array_add(out, g_strdup(*l));
    return out;
}

GBytes *qa_call_raw(const char *socket_path, const char *src,
                    const char *method, const char *dest, const char *arg,
                    const void *payload, gsize payload_len, GError **error)
{
    const char *path = socket_path ? socket_path : qa_socket_path();
    gboolean ok = FALSE;
    int fd = send_request(path, src, method, dest, arg, payload, payload_len,
                          &ok, error);
    int send_errno = ok ? 0 : errno;
    if (fd < 0)
        return NULL;
    GByteArray *out = g_byte_array_new();
    char buf[65536];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        g_byte_array_append(out, (guint8 *)buf, (guint)n);
    }
    close(fd);
    if (!ok && !out->len) {
        g_byte_array_unref(out);
        g_set_error(error, QA_ERROR, QA_ERROR_PROTOCOL,
                    "Failed to send the request to qubesd: %s",
                    g_strerror(send_errno ? send_errno : EPIPE));
        return NULL;
    }
    return g_byte_array_free_to_bytes(out);
}

char *qa_answer_text(GBytes *raw, const char *method, const char *arg,
                     gsize *len, GError **error)
{
    gsize n;
    const char *p = g_bytes_get_data(raw, &n);
    if (n >= 2 && p[0] == '0' && p[1] == '\0') {
        if (len)
            *len = n - 2;
        return g_strndup(p + 2, n - 2);
    }
    if (n >= 2 && p[0] == '2' && p[1] == '\0') {
        /* TYPE\0TRACEBACK\0MESSAGE\0 */
        const char *type = p + 2;
        const char *end = p + n;
        const char *tb = memchr(type, '\0', (gsize)(end - type));
        const char *msg =
            tb ? memchr(tb + 1, '\0', (gsize)(end - tb - 1)) : NULL;
        g_set_error(error, QA_ERROR, QA_ERROR_EXCEPTION, "%s: %s", type,
                    msg ? msg + 1 : "");
        return NULL;
    }
    /* the client's words: qubesd drops a malformed or denied call */
    (void)method;
    (void)arg;
    g_set_error_literal(error, QA_ERROR, QA_ERROR_PROTOCOL,
                        n == 0 ? "Got empty response from qubesd. See "
                                 "journalctl in dom0 for details."
                               : "Invalid response format");
    return NULL;
}

char *qa_call_full(const char *socket_path, const char *src, const char *method,
                   const char *dest, const char *arg, const void *payload,
                   gsize payload_len, gsize *len, GError **error)
{
    g_autoptr(GBytes) raw = qa_call_raw(socket_path, src, method, dest, arg,
                                        payload, payload_len, error);
    return raw ? qa_answer_text(raw, method, arg, len, error) : NULL;
}

char *qa_call(const char *method, const char *dest, const char *arg,
              const char *payload, GError **error)
{
    return qa_call_full(NULL, NULL, method, dest, arg, payload,
                        payload ? strlen(payload) : 0, NULL, error);
}

GHashTable *qa_parse_kv(const char *text, const char *sep)
{
    GHashTable *t =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    g_auto(GStrv) items = g_strsplit_set(text, sep, -1);
    for (char **i = items; *i; i++) {
        char *eq = strchr(*i, '=');
        if (eq)
            g_hash_table_insert(t, g_strndup(*i, (gsize)(eq - *i)),
                                g_strdup(eq + 1));
    }
    return t;
}

const char *qa_error_type(const GError *error)
{
    static char type[64];
    if (!error || error->domain != QA_ERROR ||
        error->code != QA_ERROR_EXCEPTION)
        return NULL;
    const char *colon = strchr(error->message, ':');
    gsize n = colon ? (gsize)(colon - error->message) : 0;
    if (n >= sizeof type)
        n = sizeof type - 1;
    memcpy(type, error->message, n);
    type[n] = '\0';
    return type;
}

int qa_fail(const char *prog, const GError *error)
{
    const char *msg = error->message;
    /* The tools show the message, as qubesadmin's do; the type is for
     * scripts (and stays in the message of non-Qubes errors). */
    if (error->domain == QA_ERROR && error->code == QA_ERROR_EXCEPTION) {
        const char *colon = strstr(msg, ": ");
        if (colon)
            msg = colon + 2;
    }
    fprintf(stderr, "%s: error: %s\n", prog, msg);
    return 1;
}

gboolean qa_isatty(void)
{
    return isatty(STDOUT_FILENO);
}

/* ---- events ---- */

struct _QaEvents {
    int fd;
    GByteArray *buf;
};

QaEvents *qa_events_open(const char *dest, GError **error)
{
    gboolean sent = FALSE;
    int fd = send_request(qa_socket_path(), NULL, "admin.Events", dest, NULL,
                          NULL, 0, &sent, error);
    if (fd < 0)
        return NULL;
    QaEvents *ev = g_new0(QaEvents, 1);
    ev->fd = fd;
    ev->buf = g_byte_array_new();
    return ev;
}

int qa_events_fd(QaEvents *ev)
{
    return ev->fd;
}

/* One whole event at the front of the buffer: "1\0SUBJECT\0EVENT\0"
 * then KEY\0VALUE\0 pairs and an empty field; its length, or 0. */
static gsize whole_event(const guint8 *p, gsize n, GPtrArray *fields)
{
    if (n < 2 || p[0] != '1' || p[1] != 0)
        return 0;
    gsize pos = 2;
    for (;;) {
        const guint8 *end = memchr(p + pos, 0, n - pos);
        if (!end)
            return 0;
        gsize len = (gsize)(end - (p + pos));
        if (!len && fields->len >= 2 && fields->len % 2 == 0)
            return pos + 1;
        g_ptr_array_add(fields, g_strndup((const char *)p + pos, len));
        pos += len + 1;
        if (pos >= n)
            return 0;
    }
}

gboolean qa_events_read(QaEvents *ev, QaEventFunc func, gpointer data)
{
    guint8 chunk[65536];
    ssize_t n = read(ev->fd, chunk, sizeof chunk);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return TRUE;
    if (n <= 0)
        return FALSE;
    g_byte_array_append(ev->buf, chunk, (guint)n);
    for (;;) {
        g_autoptr(GPtrArray) fields = g_ptr_array_new_with_free_func(g_free);
        gsize used = whole_event(ev->buf->data, ev->buf->len, fields);
        if (!used)
            break;
        g_ptr_array_add(fields, NULL);
        func(fields->pdata[0], fields->pdata[1],
             (const char *const *)fields->pdata + 2, data);
        g_byte_array_remove_range(ev->buf, 0, (guint)used);
    }
    return TRUE;
}

void qa_events_close(QaEvents *ev)
{
    if (!ev)
        return;
    close(ev->fd);
    g_byte_array_unref(ev->buf);
    g_free(ev);
}
