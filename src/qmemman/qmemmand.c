/* qmemmand: the memory balancer's daemon (the reference's qmemmand), for
 * domains under libvirt with virtio-balloon (QEMU/KVM) or under Xen.
 *
 *   qmemmand [--config /etc/qubes/qmemman.conf]
 *            [--socket /var/run/qubes/qmemman.sock]
 *            [--status-socket /var/run/qubes/qmemman-status.sock]
 *            [--hypervisor auto|libvirt|xen] [--libvirt-uri qemu:///system]
 *            [--host-reserve SIZE] [--total-mem SIZE] [--balloon-delay S]
 *            [--progress-period S] [--progress-rate MIB]
 *            [--avail-mem-file PATH] [--inhibit-file PATH]
 *
 * Threads: each client connection has its own (GThreadedSocketService),
 * the watcher one more; all the balancing state is under one lock. A
 * client's request ("N\n", bytes, or "ID:BYTES ...") holds the
 * reservation from the request until it disconnects, as the reference's
 * GLOBAL_LOCK: nothing is rebalanced meanwhile, so what it got stays free
 * until its domain exists. The watcher asks the hypervisor (hv.h) which
 * domains are there and what each reported, after each change or second:
 * domains that appeared or went (then a balance), and each one's use, a
 * change of which is the reference's meminfo update (then a balance).
 *
 * The status socket answers "state" (JSON: each domain's figures, flags,
 * preference and target, and the last decision with why it was made;
 * what qvm-memory shows) or "case" (the same state as a qmemman-sim case
 * line, to replay what the balancer would do).
 */
#include "daemon.h"
#include "hv-xen.h"

#include <gio/gio.h>
#include <glib-unix.h>
#include <locale.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    QmDaemon *daemon;
    QmHv *hv;
    GSocketService *svc, *status;
    GMainLoop *loop;
} Daemon;

/* The daemon lives until the process ends: the watcher and the clients'
 * threads use it to the last moment (static, not on main's stack). */
static Daemon the;

static gpointer watcher(gpointer data)
{
    Daemon *d = data;
    for (;;) {
        qm_daemon_watch(d->daemon);
        d->hv->wait(d->hv, 1.0);
    }
    return NULL;
}

/* ---- the sockets ---- */

static void reply(GOutputStream *out, const char *text)
{
    g_output_stream_write_all(out, text, strlen(text), NULL, NULL, NULL);
}

/* One connection: one request, answered; the reservation is held until
 * the client leaves. */
static gboolean on_client(GThreadedSocketService *svc, GSocketConnection *conn,
                          GObject *src, gpointer data)
{
    Daemon *d = data;
    GInputStream *in = g_io_stream_get_input_stream(G_IO_STREAM(conn));
    GOutputStream *out = g_io_stream_get_output_stream(G_IO_STREAM(conn));
    gboolean holding = FALSE;
    for (;;) {
        char buf[1024];
        gssize n = g_input_stream_read(in, buf, sizeof buf, NULL, NULL);
        if (n <= 0)
            break; /* the client left */
        gboolean blank = TRUE;
        for (gssize i = 0; i < n; i++)
            blank &= g_ascii_isspace(buf[i]);
        if (blank)
            continue;
        if (holding) {
            g_warning("Second request over qmemman.sock?");
            break;
        }
        holding = TRUE;
        reply(out, qm_daemon_request(d->daemon, buf, (gsize)n));
    }
    if (holding)
        qm_daemon_release(d->daemon);
    return TRUE;
}

/* The status: "state" or "case" (nothing: state); answered, then
 * closed. */
static gboolean on_status(GThreadedSocketService *svc, GSocketConnection *conn,
                          GObject *src, gpointer data)
{
    Daemon *d = data;
    g_socket_set_timeout(g_socket_connection_get_socket(conn), 5);
    GInputStream *in = g_io_stream_get_input_stream(G_IO_STREAM(conn));
    GOutputStream *out = g_io_stream_get_output_stream(G_IO_STREAM(conn));
    char buf[65];
    gssize n = g_input_stream_read(in, buf, 64, NULL, NULL);
    buf[MAX(n, 0)] = '\0';
    g_strstrip(buf);
    if (*buf && strcmp(buf, "state") != 0 && strcmp(buf, "case") != 0) {
        reply(out, "{\"error\": \"ask state or case\"}\n");
        return TRUE;
    }
    g_autofree char *text = qm_daemon_dump(d->daemon, strcmp(buf, "case") == 0);
    reply(out, text);
    return TRUE;
}

/* A socket only root reaches. */
static GSocketService *listen_at(const char *path, GError **error)
{
    g_autofree char *dir = g_path_get_dirname(path);
    g_mkdir_with_parents(dir, 0755);
    unlink(path);
    g_autoptr(GSocketAddress) addr = g_unix_socket_address_new(path);
    GSocketService *svc = g_threaded_socket_service_new(64);
    if (!g_socket_listener_add_address(
            G_SOCKET_LISTENER(svc), addr, G_SOCKET_TYPE_STREAM,
            G_SOCKET_PROTOCOL_DEFAULT, NULL, NULL, error)) {
        g_object_unref(svc);
        return NULL;
    }
    chmod(path, 0600);
    return svc;
}

static gboolean on_signal(gpointer loop)
{
    g_main_loop_quit(loop);
    return G_SOURCE_REMOVE;
}

/* Xen when this is its control domain and its libraries answer. */
static QmHv *open_hypervisor(const char *which, const char *uri, gint64 reserve,
                             gint64 total_limit, GError **error)
{
    gboolean xen = g_strcmp0(which, "xen") == 0;
    if (g_strcmp0(which, "auto") == 0) {
        g_autofree char *caps = NULL;
        xen =
            g_file_get_contents("/proc/xen/capabilities", &caps, NULL, NULL) &&
            strstr(caps, "control_d");
    } else if (!xen && g_strcmp0(which, "libvirt") != 0) {
        g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                    "--hypervisor: auto, libvirt or xen, not %s", which);
        return NULL;
    }
    if (!xen)
        return qm_hv_libvirt_new(uri, reserve, total_limit);
    QmXenOps *ops = qm_xen_ops_open(error);
    return ops ? qm_hv_xen_new(ops) : NULL;
}

/* An option not given takes its default (GOption replaces a string
 * without freeing it: defaults go in after parsing). */
static void default_to(char **var, const char *text)
{
    if (!*var)
        *var = g_strdup(text);
}

int main(int argc, char **argv)
{
    setlocale(LC_ALL, "");
    /* NULL until given: GOption replaces a string without freeing it */
    g_autofree char *config = NULL, *socket_path = NULL, *status_path = NULL,
                    *avail_path = NULL, *inhibit_path = NULL, *which = NULL,
                    *uri = NULL, *reserve = NULL, *total = NULL;
    double delay = -1, period = -1;
    gint64 rate = -1;
    gboolean version = FALSE;
    GOptionEntry entries[] = {
        {"config", 'c', 0, G_OPTION_ARG_FILENAME, &config,
         "qmemman.conf (default /etc/qubes/qmemman.conf)", "FILE"},
        {"socket", 0, 0, G_OPTION_ARG_FILENAME, &socket_path,
         "Where clients ask for memory (default "
         "/var/run/qubes/qmemman.sock)",
         "PATH"},
        {"status-socket", 0, 0, G_OPTION_ARG_FILENAME, &status_path,
         "Where qvm-memory reads the state (default "
         "/var/run/qubes/qmemman-status.sock)",
         "PATH"},
        {"avail-mem-file", 0, 0, G_OPTION_ARG_FILENAME, &avail_path,
         "Where what is left to give is written after each balance (default "
         "/var/run/qubes/qmemman-avail-mem)",
         "PATH"},
        {"inhibit-file", 0, 0, G_OPTION_ARG_FILENAME, &inhibit_path,
         "No balancing while this file exists (default "
         "/var/run/qubes/do-not-membalance)",
         "PATH"},
        {"hypervisor", 0, 0, G_OPTION_ARG_STRING, &which,
         "auto (Xen when this is its control domain), libvirt or xen", "NAME"},
        {"libvirt-uri", 0, 0, G_OPTION_ARG_STRING, &uri,
         "The hypervisor (default qemu:///system)", "URI"},
        {"host-reserve", 0, 0, G_OPTION_ARG_STRING, &reserve,
         "libvirt: memory the host keeps for itself (default 1GiB)", "SIZE"},
        {"total-mem", 0, 0, G_OPTION_ARG_STRING, &total,
         "libvirt: at most this much for all domains together (default: no "
         "limit but the host's)",
         "SIZE"},
        {"balloon-delay", 0, 0, G_OPTION_ARG_DOUBLE, &delay,
         "Seconds between the rounds of a request or a balance (default 2 "
         "on libvirt, the reference's 0.1 on Xen)",
         "SECONDS"},
        {"progress-period", 0, 0, G_OPTION_ARG_DOUBLE, &period,
         "A request fails when this many seconds freed less than "
         "--progress-rate (default 10 on libvirt, 3 on Xen)",
         "SECONDS"},
        {"progress-rate", 0, 0, G_OPTION_ARG_INT64, &rate,
         "MiB per second a request must free on average (default 10 on "
         "libvirt, 100 on Xen)",
         "MIB"},
        {"version", 0, 0, G_OPTION_ARG_NONE, &version, "Print the version",
         NULL},
        {NULL},
    };
    g_autoptr(GOptionContext) ctx =
        g_option_context_new("- the memory balancer's daemon");
    g_option_context_add_main_entries(ctx, entries, NULL);
    g_autoptr(GError) err = NULL;
    if (!g_option_context_parse(ctx, &argc, &argv, &err)) {
        fprintf(stderr, "qmemmand: %s\n", err->message);
        return 2;
    }
    if (version) {
        g_print("qmemmand " QUBES_VERSION "\n");
        return 0;
    }
    default_to(&config, "/etc/qubes/qmemman.conf");
    default_to(&socket_path, "/var/run/qubes/qmemman.sock");
    default_to(&status_path, "/var/run/qubes/qmemman-status.sock");
    default_to(&avail_path, "/var/run/qubes/qmemman-avail-mem");
    default_to(&inhibit_path, "/var/run/qubes/do-not-membalance");
    default_to(&which, "auto");
    default_to(&uri, "qemu:///system");
    default_to(&reserve, "1GiB");
    QmConfig cfg;
    qm_config_defaults(&cfg);
    if (!qm_config_load(&cfg, config, &err)) {
        fprintf(stderr, "qmemmand: %s\n", err->message);
        return 2;
    }
    gint64 reserve_b = 0, total_b = 0;
    if (!qm_parse_size(reserve, &reserve_b) ||
        (total && !qm_parse_size(total, &total_b))) {
        fprintf(stderr, "qmemmand: Invalid size: %s.\n",
                total ? total : reserve);
        return 2;
    }
    QmHv *hv = open_hypervisor(which, uri, reserve_b, total_b, &err);
    if (!hv) {
        fprintf(stderr, "qmemmand: %s\n", err->message);
        return 1;
    }
    /* libvirt reports a virtio balloon's size about once a second and it
     * moves at 25-140 MiB/s here (RUNTIME-NOTES); Xen's figures move at
     * once and faster: the reference's 0.1 s rounds would take every
     * virtio guest for stuck, and its 3 s at 100 MiB/s would fail
     * requests that are being met. On Xen, the reference's timing. */
    gboolean on_xen = strcmp(hv->name, "xen") == 0;
    if (delay < 0)
        delay = on_xen ? 0.1 : 2;
    if (period < 0)
        period = on_xen ? 3 : 10;
    if (rate < 0)
        rate = on_xen ? 100 : 10;
    if (delay <= 0 || period <= 0) {
        fprintf(stderr, "qmemmand: the timing must be positive\n");
        return 2;
    }
    Daemon *d = &the;
    d->hv = hv;
    d->daemon = qm_daemon_new(hv, &cfg, *avail_path ? avail_path : NULL,
                              *inhibit_path ? inhibit_path : NULL);
    qm_system_set_timing(qm_daemon_system(d->daemon), delay, period, rate);
    g_message("MIN_PREFMEM=%" G_GINT64_FORMAT
              " DOM0_MEM_BOOST=%" G_GINT64_FORMAT " CACHE_FACTOR=%g",
              cfg.min_prefmem, cfg.dom0_mem_boost, cfg.cache_factor);

    d->svc = listen_at(socket_path, &err);
    d->status = d->svc && *status_path ? listen_at(status_path, &err) : NULL;
    if (!d->svc || (*status_path && !d->status)) {
        fprintf(stderr, "qmemmand: %s\n", err->message);
        return 1;
    }
    g_signal_connect(d->svc, "run", G_CALLBACK(on_client), d);
    g_socket_service_start(d->svc);
    if (d->status) {
        g_signal_connect(d->status, "run", G_CALLBACK(on_status), d);
        g_socket_service_start(d->status);
    }
    g_thread_unref(g_thread_new("watcher", watcher, d));
    g_message("qmemmand ready: socket %s, hypervisor %s%s%s", socket_path,
              hv->name, on_xen ? "" : " ", on_xen ? "" : uri);
    d->loop = g_main_loop_new(NULL, FALSE);
    g_unix_signal_add(SIGTERM, on_signal, d->loop);
    g_unix_signal_add(SIGINT, on_signal, d->loop);
    g_main_loop_run(d->loop);
    unlink(socket_path);
    if (*status_path)
        unlink(status_path);
    return 0;
}
