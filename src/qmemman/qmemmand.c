/* qmemmand: the memory balancer's daemon (the reference's qmemmand), for
 * domains under libvirt with virtio-balloon (QEMU/KVM).
 *
 *   qmemmand [--config /etc/qubes/qmemman.conf]
 *            [--socket /var/run/qubes/qmemman.sock]
 *            [--libvirt-uri qemu:///system] [--host-reserve SIZE]
 *            [--total-mem SIZE] [--balloon-delay S] [--progress-period S]
 *            [--progress-rate MIB]
 *
 * Threads: each client connection has its own (GThreadedSocketService),
 * the watcher one more; all the balancing state is under one lock. A
 * client's request ("N\n", bytes) holds the reservation from the
 * request until it disconnects, as the reference's GLOBAL_LOCK: nothing
 * is rebalanced meanwhile, so what it got stays free until its domain
 * exists. The watcher polls libvirt every --interval seconds: domains
 * that appeared or went (then a balance), and each one's use from its
 * balloon statistics (available - unused - disk caches), a change of
 * which is the reference's meminfo update (then a balance).
 *
 * The host is what dom0 is on Xen, without being balanced: its free
 * memory is MemAvailable less --host-reserve, and with --total-mem the
 * domains together never get more than that.
 */
#include "system.h"

#include <gio/gio.h>
#include <glib-unix.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <locale.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    GMutex lock; /* everything below */
    GCond released;
    gboolean reserved;     /* a client holds the reservation */
    gboolean refresh_list; /* a reservation ended: re-list first */
    QmSystem *sys;
    char *uri;
    virConnectPtr conn;
    gint64 reserve;
    gint64 total_limit;
    GHashTable *domains;   /* name -> gint64* last reported use (or -1) */
    gint64 guests_current; /* sum of balloon.current, last refresh */
} Daemon;

/* ---- the libvirt backend (QmBackend) ---- */

static void ignore_error(void *data, virErrorPtr e)
{
}

static virConnectPtr conn_get(Daemon *d)
{
    if (d->conn && virConnectIsAlive(d->conn) == 1)
        return d->conn;
    if (d->conn) {
        virConnectClose(d->conn);
        d->conn = NULL;
    }
    d->conn = virConnectOpen(d->uri);
    if (!d->conn)
        g_warning("cannot connect to %s: %s", d->uri, virGetLastErrorMessage());
    return d->conn;
}

static gint64 host_available(void)
{
    g_autofree char *meminfo = NULL;
    if (!g_file_get_contents("/proc/meminfo", &meminfo, NULL, NULL))
        return 0;
    const char *a = strstr(meminfo, "MemAvailable:");
    return a ? (gint64)g_ascii_strtoull(a + 13, NULL, 10) * 1024 : 0;
}

static gint64 be_free_mem(gpointer self)
{
    Daemon *d = self;
    gint64 free = host_available() - d->reserve;
    if (d->total_limit)
        free = MIN(free, d->total_limit - d->guests_current);
    return free;
}

typedef struct {
    char *name;
    gint64 current, maximum, used; /* bytes; used -1: not reported */
} Stat;

static void stat_free(gpointer p)
{
    g_free(((Stat *)p)->name);
    g_free(p);
}

/* Every running domain's balloon, in one call. */
static GPtrArray *poll_stats(Daemon *d)
{
    GPtrArray *out = g_ptr_array_new_with_free_func(stat_free);
    virConnectPtr c = conn_get(d);
    if (!c)
        return out;
    virDomainStatsRecordPtr *recs = NULL;
    int n =
        virConnectGetAllDomainStats(c, VIR_DOMAIN_STATS_BALLOON, &recs,
                                    VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE);
    if (n < 0) {
        g_warning("cannot read the domains' balloons: %s",
                  virGetLastErrorMessage());
        return out;
    }
    for (int i = 0; i < n; i++) {
        virTypedParameterPtr p = recs[i]->params;
        int np = recs[i]->nparams;
        unsigned long long cur = 0, max = 0, avail = 0, unused = 0, caches = 0;
        if (virTypedParamsGetULLong(p, np, "balloon.current", &cur) != 1 ||
            virTypedParamsGetULLong(p, np, "balloon.maximum", &max) != 1)
            continue;
        Stat *s = g_new0(Stat, 1);
        s->name = g_strdup(virDomainGetName(recs[i]->dom));
        s->current = (gint64)cur * 1024;
        s->maximum = (gint64)max * 1024;
        s->used = -1;
        /* used = what the guest has less what it does not use and its
         * caches (the reference's meminfo-writer reports the same). With
         * autodeflate the guest's MemTotal (available) keeps the pages
         * the balloon took, counted as used: they are taken off. */
        if (virTypedParamsGetULLong(p, np, "balloon.available", &avail) == 1 &&
            virTypedParamsGetULLong(p, np, "balloon.unused", &unused) == 1) {
            virTypedParamsGetULLong(p, np, "balloon.disk_caches", &caches);
            long long ballooned = avail > cur && max > cur ? max - cur : 0;
            long long used = (long long)avail - (long long)unused -
                             (long long)caches - ballooned;
            /* a guest using next to nothing can come out a little below 0
             * (its reserved pages move between the figures) */
            s->used = (gint64)MAX(used, 0) * 1024;
        }
        g_ptr_array_add(out, s);
    }
    virDomainStatsRecordListFree(recs);
    return out;
}

static void be_refresh(gpointer self, QmSystem *sys)
{
    Daemon *d = self;
    g_autoptr(GPtrArray) stats = poll_stats(d);
    d->guests_current = 0;
    for (guint i = 0; i < stats->len; i++) {
        Stat *s = stats->pdata[i];
        d->guests_current += s->current;
        QmDom *q = qm_system_dom(sys, s->name);
        if (!q)
            continue;
        q->mem_current = s->current;
        q->mem_max = s->maximum;
        q->unseen = FALSE;
    }
}

static void be_set_target(gpointer self, const char *id, gint64 bytes)
{
    Daemon *d = self;
    virConnectPtr c = conn_get(d);
    virDomainPtr dom = c ? virDomainLookupByName(c, id) : NULL;
    if (!dom)
        return; /* going away in the middle, as the reference allows */
    QmDom *q = qm_system_dom(d->sys, id);
    gint64 kib = bytes / 1024;
    if (q && q->mem_max && kib > q->mem_max / 1024)
        kib = q->mem_max / 1024; /* never above the domain's memory */
    if (kib > 0 && virDomainSetMemoryFlags(dom, (unsigned long)kib,
                                           VIR_DOMAIN_AFFECT_LIVE) < 0)
        g_warning("%s: cannot set its balloon to %" G_GINT64_FORMAT " KiB: %s",
                  id, kib, virGetLastErrorMessage());
    virDomainFree(dom);
}

static void be_sleep(gpointer self, double seconds)
{
    g_usleep((gulong)(seconds * G_USEC_PER_SEC));
}

/* ---- watching the domains ---- */

/* The domains that appeared or went, then their reported use; under the
 * lock. Returns whether a balance is due for the list. */
static gboolean watch_round(Daemon *d)
{
    g_autoptr(GPtrArray) stats = poll_stats(d);
    gboolean changed = FALSE;
    g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);
    for (guint i = 0; i < stats->len; i++) {
        Stat *s = stats->pdata[i];
        g_hash_table_add(seen, s->name);
        /* a domain counts once its balloon driver reports (before, its
         * size is the maximum, not what it will have) */
        if (!g_hash_table_contains(d->domains, s->name) && s->used >= 0) {
            g_message("domain %s appeared", s->name);
            gint64 *u = g_new(gint64, 1);
            *u = -1;
            g_hash_table_insert(d->domains, g_strdup(s->name), u);
            /* Its balloon's target is not known (libvirt reports the
             * size it reached as currentMemory): none yet, as a Xen
             * domain without memory/target; what it holds is its
             * mem_actual until qmemmand sets one. */
            qm_system_add(d->sys, s->name, 0);
            changed = TRUE;
        }
    }
    GHashTableIter it;
    gpointer k;
    g_hash_table_iter_init(&it, d->domains);
    while (g_hash_table_iter_next(&it, &k, NULL))
        if (!g_hash_table_contains(seen, k)) {
            g_message("domain %s went", (char *)k);
            qm_system_remove(d->sys, k);
            g_hash_table_iter_remove(&it);
            changed = TRUE;
        }
    if (changed)
        qm_system_balance(d->sys);
    /* meminfo: a change of what a domain uses */
    for (guint i = 0; i < stats->len; i++) {
        Stat *s = stats->pdata[i];
        gint64 *last = g_hash_table_lookup(d->domains, s->name);
        if (!last || s->used < 0 || s->used == *last)
            continue;
        *last = s->used;
        qm_system_used(d->sys, s->name, s->used);
    }
    return changed;
}

static gpointer watcher(gpointer data)
{
    Daemon *d = data;
    for (;;) {
        g_mutex_lock(&d->lock);
        if (!d->reserved)
            watch_round(d);
        g_mutex_unlock(&d->lock);
        g_usleep(G_USEC_PER_SEC);
    }
    return NULL;
}

/* ---- the socket ---- */

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
        char buf[1025];
        gssize n = g_input_stream_read(in, buf, 1024, NULL, NULL);
        if (n <= 0)
            break; /* the client left */
        buf[n] = '\0';
        g_strstrip(buf);
        if (!*buf)
            continue;
        if (holding) {
            g_warning("Second request over qmemman.sock?");
            break;
        }
        g_mutex_lock(&d->lock);
        while (d->reserved)
            g_cond_wait(&d->released, &d->lock);
        d->reserved = TRUE;
        holding = TRUE;
        if (d->refresh_list) {
            watch_round(d);
            d->refresh_list = FALSE;
        }
        gboolean digits = TRUE;
        for (const char *p = buf; *p; p++)
            digits &= g_ascii_isdigit(*p);
        gint64 want = 0;
        const char *answer = "INVALID_ARG\n";
        if (digits) {
            answer = "FAIL\n";
            if (g_ascii_string_to_signed(buf, 10, 0, G_MAXINT64, &want, NULL) &&
                qm_system_balloon(d->sys, want))
                answer = "OK\n";
        } else if (strchr(buf, ':')) {
            /* master's per-domain form (preloaded disposables): not
             * served yet */
            g_warning("per-domain requests are not served yet: %s", buf);
            answer = "FAIL\n";
        }
        g_mutex_unlock(&d->lock);
        g_message("request %s: %s", buf, answer);
        reply(out, answer);
    }
    if (holding) {
        g_mutex_lock(&d->lock);
        d->reserved = FALSE;
        d->refresh_list = TRUE;
        g_cond_broadcast(&d->released);
        g_mutex_unlock(&d->lock);
        g_message("client disconnected, resuming membalance");
    }
    return TRUE;
}

static gboolean on_signal(gpointer loop)
{
    g_main_loop_quit(loop);
    return G_SOURCE_REMOVE;
}

int main(int argc, char **argv)
{
    setlocale(LC_ALL, "");
    g_autofree char *config = g_strdup("/etc/qubes/qmemman.conf");
    g_autofree char *socket_path = g_strdup("/var/run/qubes/qmemman.sock");
    g_autofree char *uri = g_strdup("qemu:///system");
    g_autofree char *reserve = g_strdup("1GiB");
    g_autofree char *total = NULL;
    double delay = 2, period = 10;
    gint64 rate = 10;
    GOptionEntry entries[] = {
        {"config", 'c', 0, G_OPTION_ARG_FILENAME, &config,
         "qmemman.conf (default /etc/qubes/qmemman.conf)", "FILE"},
        {"socket", 0, 0, G_OPTION_ARG_FILENAME, &socket_path,
         "Where clients ask for memory (default "
         "/var/run/qubes/qmemman.sock)",
         "PATH"},
        {"libvirt-uri", 0, 0, G_OPTION_ARG_STRING, &uri,
         "The hypervisor (default qemu:///system)", "URI"},
        {"host-reserve", 0, 0, G_OPTION_ARG_STRING, &reserve,
         "Memory the host keeps for itself (default 1GiB)", "SIZE"},
        {"total-mem", 0, 0, G_OPTION_ARG_STRING, &total,
         "At most this much for all domains together (default: no limit "
         "but the host's)",
         "SIZE"},
        {"balloon-delay", 0, 0, G_OPTION_ARG_DOUBLE, &delay,
         "Seconds between the rounds of a request or a balance (default 2; "
         "the reference's 0.1 is for Xen)",
         "SECONDS"},
        {"progress-period", 0, 0, G_OPTION_ARG_DOUBLE, &period,
         "A request fails when this many seconds freed less than "
         "--progress-rate (default 10; the reference's 3 is for Xen)",
         "SECONDS"},
        {"progress-rate", 0, 0, G_OPTION_ARG_INT64, &rate,
         "MiB per second a request must free on average (default 10; the "
         "reference's 100 is for Xen)",
         "MIB"},
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
    QmConfig cfg;
    qm_config_defaults(&cfg);
    if (!qm_config_load(&cfg, config, &err)) {
        fprintf(stderr, "qmemmand: %s\n", err->message);
        return 2;
    }
    Daemon d = {0};
    g_mutex_init(&d.lock);
    g_cond_init(&d.released);
    d.uri = uri;
    if (!qm_parse_size(reserve, &d.reserve) ||
        (total && !qm_parse_size(total, &d.total_limit))) {
        fprintf(stderr, "qmemmand: Invalid size: %s.\n",
                total ? total : reserve);
        return 2;
    }
    virSetErrorFunc(NULL, ignore_error);
    d.domains = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    QmBackend be = {be_free_mem, be_refresh, be_set_target, be_sleep, &d};
    d.sys = qm_system_new(&cfg, &be);
    /* libvirt reports a virtio balloon's size about once a second and it
     * moves at 25-140 MiB/s here (RUNTIME-NOTES); Xen's figures move at
     * once and faster: the reference's 0.1 s rounds would take every
     * guest for stuck, and its 3 s at 100 MiB/s would fail requests that
     * are being met. */
    if (delay <= 0 || period <= 0 || rate < 0) {
        fprintf(stderr, "qmemmand: the timing must be positive\n");
        return 2;
    }
    qm_system_set_timing(d.sys, delay, period, rate);
    g_message("MIN_PREFMEM=%" G_GINT64_FORMAT
              " DOM0_MEM_BOOST=%" G_GINT64_FORMAT " CACHE_FACTOR=%g",
              cfg.min_prefmem, cfg.dom0_mem_boost, cfg.cache_factor);

    g_autofree char *dir = g_path_get_dirname(socket_path);
    g_mkdir_with_parents(dir, 0755);
    unlink(socket_path);
    g_autoptr(GSocketAddress) addr = g_unix_socket_address_new(socket_path);
    GSocketService *svc = g_threaded_socket_service_new(64);
    if (!g_socket_listener_add_address(
            G_SOCKET_LISTENER(svc), addr, G_SOCKET_TYPE_STREAM,
            G_SOCKET_PROTOCOL_DEFAULT, NULL, NULL, &err)) {
        fprintf(stderr, "qmemmand: %s: %s\n", socket_path, err->message);
        return 1;
    }
    /* root's clients (qubesd) only */
    chmod(socket_path, 0600);
    g_signal_connect(svc, "run", G_CALLBACK(on_client), &d);
    g_socket_service_start(svc);
    g_thread_unref(g_thread_new("watcher", watcher, &d));
    g_message("qmemmand ready: socket %s, libvirt %s", socket_path, uri);
    GMainLoop *loop = g_main_loop_new(NULL, FALSE);
    g_unix_signal_add(SIGTERM, on_signal, loop);
    g_unix_signal_add(SIGINT, on_signal, loop);
    g_main_loop_run(loop);
    unlink(socket_path);
    return 0;
}
