/* qmemman: the balancer's speed.
 *
 *   qmemman [--rounds N] [--qmemmand PATH] [--requests N]
 *
 * 1. One balancing round (do_balance: refresh, flags, free memory, the
 *    algorithm, the significance test, the targets) with 10, 100 and 1000
 *    domains over an in-memory hypervisor whose balloons meet their
 *    targets at once; each round follows one domain's new use report
 *    (the reference's meminfo update), alternately up and down by 300
 *    MiB, so that every round has something to decide. The algorithm
 *    alone (algo.balance()) is timed too.
 * 2. With --qmemmand: a request through its socket ("N\n" answered OK,
 *    the client leaving), qmemmand over libvirt's test driver (no domain
 *    to balloon: the answer comes from free memory, so this is the
 *    protocol's and the daemon's own cost).
 *
 * Medians, in microseconds.
 */
#include "bench-util.h"
#include "system.h"

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <gio/gunixsocketaddress.h>
#include <string.h>
#include <unistd.h>

#define MiB (G_GINT64_CONSTANT(1024) * 1024)

typedef struct {
    guint n;
    gint64 *current, *max;
    char **ids;
    gint64 host;
    gint64 used; /* sum of current: a hypervisor's free memory is one
                  * figure to read, not a sum */
} Fake;

static gint64 fake_free(gpointer self)
{
    Fake *f = self;
    return f->host - f->used;
}

static guint index_of(Fake *f, const char *id)
{
    return (guint)g_ascii_strtoull(id + 1, NULL, 10);
}

static void fake_refresh(gpointer self, QmSystem *sys)
{
    Fake *f = self;
    guint n;
    QmDom *doms = qm_system_doms(sys, &n);
    for (guint i = 0; i < n; i++) {
        guint k = index_of(f, doms[i].id);
        doms[i].mem_current = f->current[k];
        doms[i].mem_max = f->max[k];
        doms[i].unseen = FALSE;
    }
}

static void fake_set(gpointer self, const char *id, gint64 bytes)
{
    Fake *f = self;
    guint k = index_of(f, id);
    f->used -= f->current[k];
    f->current[k] = MIN(bytes, f->max[k]);
    f->used += f->current[k];
}

static void fake_sleep(gpointer self, double s)
{
}

static void quiet(const char *domain, GLogLevelFlags level, const char *msg,
                  gpointer data)
{
}

static void bench_rounds(guint n, int rounds)
{
    Fake f = {n, g_new0(gint64, n), g_new0(gint64, n), g_new0(char *, n), 0};
    QmConfig cfg;
    qm_config_defaults(&cfg);
    QmBackend be = {fake_free, fake_refresh, fake_set, fake_sleep, &f};
    QmSystem *sys = qm_system_new(&cfg, &be);
    GRand *r = g_rand_new_with_seed(n);
    for (guint i = 0; i < n; i++) {
        f.ids[i] = g_strdup_printf("d%u", i);
        f.max[i] = 4096 * MiB;
        f.current[i] = (400 + g_rand_int_range(r, 0, 600)) * MiB;
        f.host += f.current[i] + 300 * MiB;
        f.used += f.current[i];
        qm_system_add(sys, f.ids[i], f.current[i]);
    }
    for (guint i = 0; i < n; i++)
        qm_system_used(sys, f.ids[i], g_rand_int_range(r, 100, 500) * MiB);
    double *round_us = g_new(double, rounds);
    double *algo_us = g_new(double, rounds);
    int decided = 0;
    for (int k = 0; k < rounds; k++) {
        guint i = (guint)k % n;
        QmDom *d = qm_system_dom(sys, f.ids[i]);
        gint64 used = d->mem_used + (k / (int)n % 2 ? -300 : 300) * MiB;
        guint before = qm_system_decision_count(sys);
        gint64 t0 = g_get_monotonic_time();
        qm_system_used(sys, f.ids[i], MAX(used, 50 * MiB));
        round_us[k] = (double)(g_get_monotonic_time() - t0);
        decided += qm_system_decision_count(sys) != before;
        guint nd;
        QmDom *doms = qm_system_doms(sys, &nd);
        g_autoptr(GArray) t = g_array_new(FALSE, FALSE, sizeof(QmTarget));
        QmMemInfo mi = {0};
        gboolean enough;
        t0 = g_get_monotonic_time();
        qm_balance(&cfg, fake_free(&f) - QM_XEN_FREE_MEM_LEFT, doms, nd, &mi,
                   &enough, t);
        algo_us[k] = (double)(g_get_monotonic_time() - t0);
        qm_mem_info_clear(&mi);
    }
    printf("balancing round, %4u domains: %8.1f us median (%d rounds, %d "
           "with targets set); algo.balance() alone %8.1f us\n",
           n, bench_median(round_us, rounds), rounds, decided,
           bench_median(algo_us, rounds));
    g_free(round_us);
    g_free(algo_us);
    g_rand_free(r);
    qm_system_free(sys);
    for (guint i = 0; i < n; i++)
        g_free(f.ids[i]);
    g_free(f.ids);
    g_free(f.current);
    g_free(f.max);
}

static void bench_requests(const char *qmemmand, int requests)
{
    g_autofree char *dir = g_dir_make_tmp("qmemman-bench-XXXXXX", NULL);
    g_autofree char *sock = g_build_filename(dir, "qmemman.sock", NULL);
    g_autofree char *status = g_build_filename(dir, "status.sock", NULL);
    g_autofree char *avail = g_build_filename(dir, "avail", NULL);
    g_autofree char *conf = g_build_filename(dir, "none.conf", NULL);
    const char *argv[] = {qmemmand,
                          "--config",
                          conf,
                          "--socket",
                          sock,
                          "--status-socket",
                          status,
                          "--avail-mem-file",
                          avail,
                          "--libvirt-uri",
                          "test:///default",
                          "--hypervisor",
                          "libvirt",
                          NULL};
    g_autoptr(GError) err = NULL;
    GSubprocess *p =
        g_subprocess_newv(argv, G_SUBPROCESS_FLAGS_STDERR_SILENCE, &err);
    if (!p)
        bench_die("qmemman", qmemmand, err);
    for (int i = 0; i < 300 && !g_file_test(sock, G_FILE_TEST_EXISTS); i++)
        g_usleep(100000);
    double *us = g_new(double, requests);
    int ok = 0;
    for (int k = 0; k < requests; k++) {
        gint64 t0 = g_get_monotonic_time();
        g_autoptr(GSocketClient) c = g_socket_client_new();
        g_autoptr(GSocketAddress) a = g_unix_socket_address_new(sock);
        g_autoptr(GSocketConnection) conn =
            g_socket_client_connect(c, G_SOCKET_CONNECTABLE(a), NULL, &err);
        if (!conn)
            bench_die("qmemman", sock, err);
        const char *req = "104857600\n";
        char answer[16] = {0};
        gsize got = 0;
        g_output_stream_write_all(
            g_io_stream_get_output_stream(G_IO_STREAM(conn)), req, strlen(req),
            NULL, NULL, NULL);
        g_input_stream_read_all(g_io_stream_get_input_stream(G_IO_STREAM(conn)),
                                answer, 3, &got, NULL, NULL);
        ok += strncmp(answer, "OK\n", 3) == 0;
        g_io_stream_close(G_IO_STREAM(conn), NULL, NULL);
        us[k] = (double)(g_get_monotonic_time() - t0);
    }
    printf("request through the socket (connect, \"N\", OK, close): %.1f us "
           "median (%d requests, %d OK)\n",
           bench_median(us, requests), requests, ok);
    g_free(us);
    g_subprocess_send_signal(p, SIGTERM);
    g_subprocess_wait(p, NULL, NULL);
    g_object_unref(p);
    unlink(avail);
    g_rmdir(dir);
}

int main(int argc, char **argv)
{
    int rounds = 2000, requests = 200;
    g_autofree char *qmemmand = NULL;
    GOptionEntry entries[] = {
        {"rounds", 0, 0, G_OPTION_ARG_INT, &rounds, "Rounds per size", "N"},
        {"qmemmand", 0, 0, G_OPTION_ARG_FILENAME, &qmemmand,
         "Time requests through this qmemmand's socket", "PATH"},
        {"requests", 0, 0, G_OPTION_ARG_INT, &requests, "Requests", "N"},
        {NULL},
    };
    g_autoptr(GOptionContext) ctx =
        g_option_context_new("- the memory balancer's speed");
    g_option_context_add_main_entries(ctx, entries, NULL);
    g_autoptr(GError) err = NULL;
    if (!g_option_context_parse(ctx, &argc, &argv, &err) || rounds < 1 ||
        requests < 1)
        bench_die("qmemman", "options", err);
    g_log_set_handler("qmemman",
                      G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO |
                          G_LOG_LEVEL_DEBUG | G_LOG_LEVEL_WARNING,
                      quiet, NULL);
    guint sizes[] = {10, 100, 1000};
    for (guint i = 0; i < G_N_ELEMENTS(sizes); i++)
        bench_rounds(sizes[i], rounds);
    if (qmemmand)
        bench_requests(qmemmand, requests);
    return 0;
}
