/* memory-request.c: a qube's memory asked of qmemmand (memory-request.h).
 *
 * Without qmemmand (no socket, refused) the answer says absent; FAIL
 * says refused. */
#include "memory-request.h"

#include "domain-spec.h"

#include <string.h>

static void mem_request_free(QubesMemRequest *m)
{
    g_free(m->socket);
    g_clear_object(&m->conn);
    g_free(m);
}

static void mem_thread(GTask *task, gpointer src, gpointer data,
                       GCancellable *cancel)
{
    QubesMemRequest *m = data;
    g_autoptr(GSocketAddress) addr = g_unix_socket_address_new(m->socket);
    g_autoptr(GSocketClient) client = g_socket_client_new();
    GError *err = NULL;
    GSocketConnection *conn =
        g_socket_client_connect(client, G_SOCKET_CONNECTABLE(addr), NULL, &err);
    if (!conn) {
        if (g_error_matches(err, G_IO_ERROR, G_IO_ERROR_NOT_FOUND) ||
            g_error_matches(err, G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED)) {
            m->absent = TRUE;
            g_error_free(err);
            g_task_return_boolean(task, TRUE);
            return;
        }
        g_prefix_error(&err, "Failed to connect to qmemman: ");
        g_task_return_error(task, err);
        return;
    }
    char line[32];
    int n = g_snprintf(line, sizeof(line), "%" G_GUINT64_FORMAT "\n", m->bytes);
    char answer[1025] = "";
    gsize got = 0;
    GOutputStream *out = g_io_stream_get_output_stream(G_IO_STREAM(conn));
    GInputStream *in = g_io_stream_get_input_stream(G_IO_STREAM(conn));
    if (!g_output_stream_write_all(out, line, (gsize)n, NULL, NULL, &err) ||
        !g_input_stream_read_all(in, answer, 3, &got, NULL, &err)) {
        g_object_unref(conn);
        g_prefix_error(&err, "Failed to ask qmemman: ");
        g_task_return_error(task, err);
        return;
    }
    if (got >= 2 && strncmp(answer, "OK", 2) == 0)
        m->conn = conn;
    else {
        m->refused = TRUE;
        g_object_unref(conn);
    }
    g_task_return_boolean(task, TRUE);
}

static guint64 memory_required(QubesRuntime *rt, QubesDomain *dom)
{
    guint64 mib = rt_prop_u64(dom, "memory");
    g_autofree char *mode = qubes_domain_prop(dom, "virt_mode");
    if (rt->cfg.hv == QUBES_HV_XEN && g_strcmp0(mode, "hvm") == 0) {
        guint64 stub = rt_prop_u64(dom, "stubdom_mem");
        mib += stub ? stub : rt_legacy_stubdom(dom) ? 28 : 128;
    }
    guint64 vcpus = MAX(rt_prop_u64(dom, "vcpus"), 1);
    /* MEM_OVERHEAD_BASE + vcpus * MEM_OVERHEAD_PER_VCPU (1.5 MiB) */
    return mib * 1024 * 1024 + 4 * 1024 * 1024 + vcpus * 1572864;
}

void rt_memory_request(QubesRuntime *rt, QubesDomain *dom,
                       GAsyncReadyCallback cb, gpointer data)
{
    QubesMemRequest *m = g_new0(QubesMemRequest, 1);
    m->socket = g_strdup(rt->cfg.qmemman_socket);
    m->bytes = memory_required(rt, dom);
    rt_run_in_worker(mem_thread, m, (GDestroyNotify)mem_request_free, cb, data);
}

QubesMemRequest *rt_memory_request_result(GAsyncResult *res)
{
    return g_task_get_task_data(G_TASK(res));
}
