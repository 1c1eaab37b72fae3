/* qubesd: the Qubes admin daemon.
 *
 *   qubesd [--base-dir DIR] [--socket PATH] [--request-timeout SECONDS]
 *          [--max-connections N] [--max-event-backlog BYTES]
 *          [--libvirt-uri URI] [--domain-type xen|kvm|qemu] [--offline]
 *          [--log-dir DIR]
 *
 * Loads DIR/qubes.xml (making a new system when there is none), connects
 * to the hypervisor through libvirt (adopting the qubes that run and
 * bringing the storage of halted ones to rest), and serves the Admin API
 * on PATH, with qubesd.internal.sock (dom0's components) and
 * qubesd.misc.sock (what qubes report) beside it, until SIGTERM or SIGINT,
 * when it saves qubes.xml and exits. Running qubes keep running.
 */
#include "hostdev.h"
#include "orphans.h"
#include "runtime.h"
#include "server.h"

#include <errno.h>
#include <glib-unix.h>
#include <locale.h>
#include <stdlib.h>
#include <sys/resource.h>

/* SIGTERM and SIGINT are caught from the start (a signal that came
 * while qubesd was still loading, after its socket appeared, would
 * otherwise kill it unsaved); the loop ends once it runs. */
static GMainLoop *main_loop;
static gboolean quit_requested;

static gboolean on_signal(gpointer data)
{
    g_message("signal received, saving and exiting");
    quit_requested = TRUE;
    g_main_loop_quit(main_loop);
    return G_SOURCE_REMOVE;
}

/* Offline (no hypervisor): nothing runs. Storage left mid-operation by a
 * crash is finished or rolled back by the driver's next operation on each
 * volume; stopping the volumes of every halted domain is that operation,
 * and it commits (save_on_stop) or drops what a domain that died while
 * running left behind. With a hypervisor the runtime does the same once it
 * knows which qubes run (connection.c). */
static void settle_storage(QubesApp *app)
{
    for (guint i = 0; i < app->domains->len; i++) {
        QubesDomain *d = app->domains->pdata[i];
        if (!qubes_domain_is_halted(d))
            continue;
        g_autoptr(GPtrArray) vols = qubes_domain_volume_refs(d);
        for (guint j = 0; j < vols->len; j++) {
            QubesVolume *v = vols->pdata[j];
            g_autoptr(GError) err = NULL;
            if (!qubes_volume_stop(v, &err))
                g_warning("%s: volume %s: %s", d->name, v->name, err->message);
        }
    }
}

/* Raises the open-file limit to its hard limit and fits @max_connections
 * under it, keeping room for the pools' and workers' own files. */
static guint fit_connections(gint64 max_connections)
{
    const rlim_t reserve = 256;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return (guint)MIN(max_connections, 768);
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t want = rl.rlim_max;
        if (want == RLIM_INFINITY || want > 1 << 20)
            want = 1 << 20;
        struct rlimit up = {want, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &up) == 0)
            rl.rlim_cur = want;
    }
    rlim_t room =
        rl.rlim_cur > 2 * reserve ? rl.rlim_cur - reserve : rl.rlim_cur / 2;
    if ((rlim_t)max_connections > room) {
        g_warning("at most %lu open files: serving %lu connections at once, "
                  "not %" G_GINT64_FORMAT,
                  (unsigned long)rl.rlim_cur, (unsigned long)room,
                  max_connections);
        return (guint)room;
    }
    return (guint)max_connections;
}

/* dom0's block devices come and go (a stick, a loop device): qubesd
 * looks every 2 s (no udev agent here) and, on a change, does what the
 * reference's device_list_change does (ext/utils.py): fires
 * device-list-change:block on dom0, device-removed:block for each port
 * gone (or holding another device now), device-added:block for each new
 * one, and gives a new one to the running qube whose assignment asks
 * for it (hotplug.c). */
typedef struct {
    QubesApp *app;
    QubesRuntime *rt; /* NULL: offline */
    char *last;       /* the fingerprint of the last look */
    GHashTable *ids;  /* port -> device_id, at the last look */
} BlockWatch;

static GHashTable *block_ids(GPtrArray *blocks)
{
    GHashTable *ids =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    for (guint i = 0; i < blocks->len; i++) {
        QubesHostBlock *b = blocks->pdata[i];
        g_hash_table_insert(ids, g_strdup(b->info->dev.port_id),
                            g_strdup(b->info->dev.device_id));
    }
    return ids;
}

static void block_fire(QubesDomain *dom0, const char *event, const char *key,
                       const char *value)
{
    const char *kw[] = {key, value, NULL};
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) fx =
        qubes_emitter_fire(&dom0->emitter, event, key ? kw : NULL, &err);
    if (!fx)
        g_warning("dom0: a %s handler failed: %s", event, err->message);
}

static gboolean block_watch(gpointer data)
{
    BlockWatch *w = data;
    g_autofree char *now = qubes_host_block_fingerprint();
    if (g_strcmp0(now, w->last) == 0)
        return G_SOURCE_CONTINUE;
    g_free(w->last);
    w->last = g_steal_pointer(&now);
    g_autoptr(GPtrArray) blocks = qubes_host_block_list();
    GHashTable *ids = block_ids(blocks);
    g_autoptr(GPtrArray) added = g_ptr_array_new();
    g_autoptr(GPtrArray) removed = g_ptr_array_new();
    GHashTableIter it;
    gpointer port, id;
    g_hash_table_iter_init(&it, ids);
    while (g_hash_table_iter_next(&it, &port, &id))
        if (g_strcmp0(g_hash_table_lookup(w->ids, port), id) != 0)
            g_ptr_array_add(added, port);
    g_hash_table_iter_init(&it, w->ids);
    while (g_hash_table_iter_next(&it, &port, &id))
        if (g_strcmp0(g_hash_table_lookup(ids, port), id) != 0)
            g_ptr_array_add(removed, port);
    QubesDomain *dom0 = qubes_app_get_domain_by_qid(w->app, 0);
    if (dom0) {
        block_fire(dom0, "device-list-change:block", NULL, NULL);
        for (guint i = 0; i < removed->len; i++) {
            g_autofree char *p =
                g_strdup_printf("dom0:%s", (char *)removed->pdata[i]);
            block_fire(dom0, "device-removed:block", "port", p);
        }
        for (guint i = 0; i < added->len; i++) {
            g_autofree char *d = g_strdup_printf(
                "dom0:%s:%s", (char *)added->pdata[i],
                (char *)g_hash_table_lookup(ids, added->pdata[i]));
            block_fire(dom0, "device-added:block", "device", d);
        }
    }
    if (w->rt && added->len)
        qubes_runtime_blocks_appeared(w->rt, blocks, added);
    g_hash_table_unref(w->ids);
    w->ids = ids;
    return G_SOURCE_CONTINUE;
}

int main(int argc, char **argv)
{
    setlocale(LC_ALL, "");
    g_autofree char *base_dir = NULL;
    g_autofree char *socket_path = NULL;
    g_autofree char *qubesdb_dir = NULL;
    g_autofree char *suspend_list = NULL;
    g_autofree char *policy_dir = NULL;
    g_autofree char *backup_dir = NULL;
    g_autofree char *dom0_home = NULL;
    gboolean version = FALSE;
    gint64 request_timeout = SERVER_REQUEST_TIMEOUT;
    gint64 max_connections = SERVER_MAX_CONNECTIONS;
    gint64 max_event_backlog = SERVER_MAX_EVENT_BACKLOG;
    g_autofree char *libvirt_uri = NULL;
    g_autofree char *domain_type = NULL;
    g_autofree char *log_dir = NULL;
    gboolean offline = FALSE, init = FALSE;
    gboolean no_balancing = FALSE;
    g_autofree char *qmemman_socket = NULL;
    g_autofree char *qmemman_status = NULL;
    g_autofree char *qmemman_avail = NULL;
    g_autofree char *autostart_marker = NULL;
    gboolean no_autostart = FALSE;
    GOptionEntry entries[] = {
        {"base-dir", 0, 0, G_OPTION_ARG_FILENAME, &base_dir,
         "Folder of qubes.xml and the default pool (default /var/lib/qubes)",
         "DIR"},
        {"socket", 0, 0, G_OPTION_ARG_FILENAME, &socket_path,
         "Admin API socket (default /var/run/qubesd.sock); the internal "
         "socket qubesd.internal.sock and the misc socket qubesd.misc.sock "
         "go beside it",
         "PATH"},
        {"policy-dir", 0, 0, G_OPTION_ARG_FILENAME, &policy_dir,
         "The qrexec policy, consulted for what a qube other than dom0 may "
         "list or watch (default /etc/qubes/policy.d)",
         "DIR"},
        {"backup-dir", 0, 0, G_OPTION_ARG_FILENAME, &backup_dir,
         "The backup profiles, NAME.conf (default /etc/qubes/backup)", "DIR"},
        {"dom0-home", 0, 0, G_OPTION_ARG_FILENAME, &dom0_home,
         "dom0's home folder, what a backup of dom0 holds (default: the "
         "home of the first member of the group qubes)",
         "DIR"},
        {"request-timeout", 0, 0, G_OPTION_ARG_INT64, &request_timeout,
         "Seconds a client has to send its request, and again to take its "
         "answer, before its connection is closed; 0: no limit (default 60)",
         "SECONDS"},
        {"max-connections", 0, 0, G_OPTION_ARG_INT64, &max_connections,
         "Connections open at once; past it a new one closes the oldest "
         "still sending its request (default 4096, within the open-file "
         "limit)",
         "N"},
        {"max-event-backlog", 0, 0, G_OPTION_ARG_INT64, &max_event_backlog,
         "Bytes of events an admin.Events client may leave unread before it "
         "is dropped (default 16 MiB)",
         "BYTES"},
        {"libvirt-uri", 0, 0, G_OPTION_ARG_STRING, &libvirt_uri,
         "The hypervisor's libvirt URI (default xen:///system where "
         "/proc/xen exists, else qemu:///system)",
         "URI"},
        {"domain-type", 0, 0, G_OPTION_ARG_STRING, &domain_type,
         "Domains to make: xen, kvm or qemu (TCG); default from the URI, "
         "and kvm when /dev/kvm exists",
         "TYPE"},
        {"init", 0, 0, G_OPTION_ARG_NONE, &init,
         "Make DIR and a new system's DIR/qubes.xml when there is none (an "
         "existing one is not touched), then exit; the package's first "
         "install runs it",
         NULL},
        {"offline", 0, 0, G_OPTION_ARG_NONE, &offline,
         "Run no qube: no hypervisor connection, every qube but dom0 is "
         "Halted",
         NULL},
        {"no-memory-balancing", 0, 0, G_OPTION_ARG_NONE, &no_balancing,
         "Start qubes without asking qmemmand for their memory", NULL},
        {"qmemman-socket", 0, 0, G_OPTION_ARG_FILENAME, &qmemman_socket,
         "qmemmand's socket, asked for a qube's memory before it starts "
         "(default /var/run/qubes/qmemman.sock; without an answer there, "
         "qubes start without it)",
         "PATH"},
        {"qmemman-status-socket", 0, 0, G_OPTION_ARG_FILENAME, &qmemman_status,
         "qmemmand's status socket: on Xen, autostart waits until dom0 "
         "reported its memory use there (default "
         "/var/run/qubes/qmemman-status.sock)",
         "PATH"},
        {"qmemman-avail-mem-file", 0, 0, G_OPTION_ARG_FILENAME, &qmemman_avail,
         "qmemmand's available-memory file: preloaded disposables are made "
         "only while it has room for them (default "
         "/var/run/qubes/qmemman-avail-mem; without it, they are not "
         "limited)",
         "PATH"},
        {"autostart-marker", 0, 0, G_OPTION_ARG_FILENAME, &autostart_marker,
         "The qubes whose autostart is True are started when this file is "
         "absent, which is then written: once per boot (default "
         "/var/run/qubes/autostart-done)",
         "PATH"},
        {"no-autostart", 0, 0, G_OPTION_ARG_NONE, &no_autostart,
         "Start no qube by itself", NULL},
        {"qubesdb-dir", 0, 0, G_OPTION_ARG_FILENAME, &qubesdb_dir,
         "The qubes' QubesDB entries that the misc socket reads, "
         "DIR/QUBE/features-request/NAME (default /var/run/qubes/qubesdb)",
         "DIR"},
        {"suspend-list", 0, 0, G_OPTION_ARG_FILENAME, &suspend_list,
         "Where internal.SuspendPre lists the qubes that were paused "
         "already, for SuspendPost to leave paused (default "
         "/var/run/qubes/previously-paused.list)",
         "PATH"},
        {"log-dir", 0, 0, G_OPTION_ARG_FILENAME, &log_dir,
         "Where the qubes' console logs go, guest-NAME.log (default "
         "/var/log/qubes)",
         "DIR"},
        {"version", 0, 0, G_OPTION_ARG_NONE, &version, "Print the version",
         NULL},
        {NULL},
    };
    g_autoptr(GOptionContext) ctx =
        g_option_context_new("- Qubes admin daemon");
    g_option_context_add_main_entries(ctx, entries, NULL);
    g_option_context_set_description(
        ctx, "Serves the Qubes Admin API on a Unix socket. See qubesd(8).");
    g_autoptr(GError) err = NULL;
    if (!g_option_context_parse(ctx, &argc, &argv, &err)) {
        g_printerr("qubesd: %s\n", err->message);
        return 2;
    }
    if (version) {
        g_print("qubesd " QUBES_VERSION "\n");
        return 0;
    }
    main_loop = g_main_loop_new(NULL, FALSE);
    g_unix_signal_add(SIGTERM, on_signal, NULL);
    g_unix_signal_add(SIGINT, on_signal, NULL);
    if (request_timeout < 0 || request_timeout > G_MAXINT ||
        max_connections < 1 || max_connections > G_MAXINT ||
        max_event_backlog < 1) {
        g_printerr("qubesd: --request-timeout must be 0 or more, "
                   "--max-connections and --max-event-backlog 1 or more\n");
        return 2;
    }
    QubesRuntimeConfig rcfg = {0};
    rcfg.uri = libvirt_uri ? libvirt_uri : (char *)qubes_runtime_default_uri();
    rcfg.hv = qubes_runtime_default_hv(rcfg.uri);
    if (domain_type && !qubes_hv_type_parse(domain_type, &rcfg.hv)) {
        g_printerr("qubesd: --domain-type is xen, kvm or qemu, not '%s'\n",
                   domain_type);
        return 2;
    }
    rcfg.log_dir = log_dir ? log_dir : (char *)"/var/log/qubes";
    rcfg.qmemman_socket = no_balancing ? NULL
                          : qmemman_socket
                              ? qmemman_socket
                              : (char *)"/var/run/qubes/qmemman.sock";
    rcfg.qmemman_status_socket =
        no_balancing     ? NULL
        : qmemman_status ? qmemman_status
                         : (char *)"/var/run/qubes/qmemman-status.sock";
    rcfg.qmemman_avail_mem_file =
        no_balancing    ? NULL
        : qmemman_avail ? qmemman_avail
                        : (char *)"/var/run/qubes/qmemman-avail-mem";
    rcfg.autostart_marker = no_autostart       ? NULL
                            : autostart_marker ? autostart_marker
                                               : (char *)"/var/run/qubes/"
                                                         "autostart-done";
    if (!base_dir)
        base_dir = g_strdup("/var/lib/qubes");
    if (!socket_path)
        socket_path = g_strdup("/var/run/qubesd.sock");

    if (init) {
        /* an existing system is never touched: not even loaded */
        g_autofree char *xml = g_build_filename(base_dir, "qubes.xml", NULL);
        if (g_file_test(xml, G_FILE_TEST_EXISTS))
            return 0;
        if (g_mkdir_with_parents(base_dir, 0755) != 0) {
            g_printerr("qubesd: cannot make %s: %s\n", base_dir,
                       g_strerror(errno));
            return 1;
        }
    }
    g_autoptr(QubesApp) app = qubes_app_open(base_dir, NULL, &err);
    if (!app) {
        g_printerr("qubesd: %s\n", err->message);
        return 1;
    }
    if (init) {
        /* the new system, saved as every save is (crash-safe) */
        if (!qubes_app_save(app, &err)) {
            g_printerr("qubesd: %s\n", err->message);
            return 1;
        }
        return 0;
    }
    /* before anything is served: no stale folder is ever adopted */
    qubes_app_set_aside_orphans(app);
    QubesRuntime *runtime = NULL;
    if (offline) {
        settle_storage(app);
    } else {
        if (g_mkdir_with_parents(rcfg.log_dir, 0750) != 0)
            g_warning("cannot make %s: %s", rcfg.log_dir, g_strerror(errno));
        runtime = qubes_runtime_new(app, &rcfg);
        qubes_app_firewall_watch(app);
    }
    /* dom0's block devices: what there is now, then a look every 2 s */
    g_autoptr(GPtrArray) blocks_now = qubes_host_block_list();
    BlockWatch bw = {.app = app,
                     .rt = runtime,
                     .last = qubes_host_block_fingerprint(),
                     .ids = block_ids(blocks_now)};
    guint bw_source = g_timeout_add_seconds(2, block_watch, &bw);
    Server *srv = server_new(app, socket_path, &err);
    if (!srv) {
        g_printerr("qubesd: %s\n", err->message);
        qubes_runtime_free(runtime);
        g_source_remove(bw_source);
        g_free(bw.last);
        g_hash_table_unref(bw.ids);
        return 1;
    }
    if (backup_dir) {
        g_free(srv->api->backup_dir);
        srv->api->backup_dir = g_strdup(backup_dir);
    }
    srv->api->dom0_home = g_strdup(dom0_home);
    if (qubesdb_dir) {
        g_free(srv->api->qubesdb_dir);
        srv->api->qubesdb_dir = g_strdup(qubesdb_dir);
    }
    if (suspend_list) {
        g_free(srv->api->paused_list);
        srv->api->paused_list = g_strdup(suspend_list);
    }
    if (policy_dir) {
        g_free(srv->api->policy_dir);
        srv->api->policy_dir = g_strdup(policy_dir);
    }
    srv->request_timeout = (guint)request_timeout;
    srv->max_connections = fit_connections(max_connections);
    srv->max_event_backlog = (gsize)max_event_backlog;
    srv->loop = main_loop;
    g_message("qubesd ready: %u domains, socket %s", app->domains->len,
              socket_path);
    if (!quit_requested)
        g_main_loop_run(srv->loop);
    /* The calls waiting for a save get it; the last save below then holds
     * every change, as no save of an older snapshot is left to land. */
    server_flush_saves(srv);

    int rc = 0;
    if (!qubes_app_save(app, &err)) {
        g_printerr("qubesd: %s\n", err->message);
        rc = 1;
    }
    g_source_remove(bw_source);
    g_free(bw.last);
    g_hash_table_unref(bw.ids);
    g_main_loop_unref(srv->loop);
    server_free(srv);
    qubes_runtime_free(runtime);
    return rc;
}
