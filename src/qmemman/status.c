/* status.c: the client side of qmemmand's status socket (status.h). */
#include "status.h"

#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#include <string.h>

char *qm_status_ask(const char *path, const char *what, guint timeout_s,
                    GError **error)
{
    g_autoptr(GSocketClient) client = g_socket_client_new();
    g_socket_client_set_timeout(client, timeout_s);
    g_autoptr(GSocketAddress) addr = g_unix_socket_address_new(path);
    g_autoptr(GSocketConnection) conn = g_socket_client_connect(
        client, G_SOCKET_CONNECTABLE(addr), NULL, error);
    if (!conn)
        return NULL;
    GOutputStream *out = g_io_stream_get_output_stream(G_IO_STREAM(conn));
    g_autofree char *line = g_strconcat(what, "\n", NULL);
    if (!g_output_stream_write_all(out, line, strlen(line), NULL, NULL, error))
        return NULL;
    GInputStream *in = g_io_stream_get_input_stream(G_IO_STREAM(conn));
    g_autoptr(GString) answer = g_string_new(NULL);
    char buf[8192];
    gssize n;
    while ((n = g_input_stream_read(in, buf, sizeof buf, NULL, error)) > 0)
        g_string_append_len(answer, buf, n);
    if (n < 0)
        return NULL;
    return g_string_free(g_steal_pointer(&answer), FALSE);
}
