/* runtime.c: qubes run under libvirt (runtime.h).
 *
 * Each operation is a small state machine on the main context: checks
 * and events there, every blocking step (a libvirt call, storage start or
 * stop) on a worker thread through GTask, and its result back on the
 * main context. A qube's state (dom->power) changes only here, on the
 * main context, from the operations' results and libvirt's lifecycle
 * events.
 */
#include "runtime.h"

#include "firewall.h"
#include "hostdev.h"
#include "netfilter.h"
#include "preload-run.h"
#include "qubes-error.h"
#include "status.h"

#include <json-glib/json-glib.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libvirt-glib/libvirt-glib.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* The reference's config.defaults['kernelopts_common'], with the console
 * on the serial port on QEMU (there is no Xen console there). */
#define KERNELOPTS_COMMON_XEN                                                  \
    "root=/dev/mapper/dmroot ro nomodeset console=hvc0 rd_NO_PLYMOUTH "        \
    "rd.plymouth.enable=0 plymouth.enable=0 "
#define KERNELOPTS_COMMON_QEMU                                                 \
    "root=/dev/mapper/dmroot ro nomodeset console=ttyS0 rd_NO_PLYMOUTH "       \
    "rd.plymouth.enable=0 plymouth.enable=0 "

/* What the runtime keeps per qube while something is going on. */
typedef struct {
    QubesDomain *dom;      /* referenced */
    gboolean starting;     /* a start is between its checks and its end */
    gboolean died;         /* stopped while starting */
    GSList *start_waiters; /* GTask*: further starts, completed together */
    GSList *stop_waiters;  /* GTask*: kill, shutdown --wait */
} DomRt;

struct _QubesRuntime {
    gint refs; /* the owner's and one per operation on a worker */
    QubesApp *app;
    QubesRuntimeConfig cfg;
    GMutex lock;        /* guards conn, for workers */
    virConnectPtr conn; /* NULL while disconnected */
    int lifecycle_id;
    guint retry_source;
    guint drop_source;
    gboolean warned;         /* the connection failure was logged */
    gboolean warned_qmemman; /* qmemmand's absence was logged */
    gboolean settled;        /* halted qubes' storage brought to rest */
    GHashTable *doms;        /* QubesDomain* -> DomRt* */
    GHashTable *links;       /* client QubesDomain* (held) -> Link*: where
                                its link is plugged (QEMU) */
    guint handlers[5];       /* netvm-change, firewall-changed handlers */
    GThreadPool *nf_pool;    /* firewall jobs, one at a time, in order */
    GPtrArray *blocks;       /* QubesBlockAttachment: dom0's block devices
                                attached to running qubes */
    QubesPreload *preload;   /* preloaded disposables (preload-run.c) */
};

/* ---- small helpers ---- */

static guint64 prop_u64(QubesDomain *d, const char *name)
{
    g_autofree char *v = qubes_domain_prop(d, name);
    return v ? g_ascii_strtoull(v, NULL, 10) : 0;
}

static gboolean feature_with_template(QubesDomain *d, const char *name)
{
    const char *v =
        qubes_domain_feature_check(d, name, TRUE, FALSE, FALSE, NULL);
    return v && *v && strcmp(v, "0") != 0 && strcmp(v, "False") != 0;
}

static DomRt *dom_rt(QubesRuntime *rt, QubesDomain *dom)
{
    DomRt *r = g_hash_table_lookup(rt->doms, dom);
    if (!r) {
        r = g_new0(DomRt, 1);
        r->dom = qubes_domain_ref(dom);
        g_hash_table_insert(rt->doms, dom, r);
    }
    return r;
}

static void dom_rt_free(DomRt *r)
{
    qubes_domain_unref(r->dom);
    g_free(r);
}

static QubesRuntime *rt_ref(QubesRuntime *rt)
{
    g_atomic_int_inc(&rt->refs);
    return rt;
}

/* The last reference (the owner's, or a worker's finishing after qubesd
 * stopped watching) frees what is left. */
static void rt_unref(QubesRuntime *rt)
{
    if (!g_atomic_int_dec_and_test(&rt->refs))
        return;
    g_mutex_clear(&rt->lock);
    g_free(rt->cfg.uri);
    g_free(rt->cfg.log_dir);
    g_free(rt->cfg.qmemman_socket);
    g_free(rt->cfg.qmemman_status_socket);
    g_free(rt->cfg.qmemman_avail_mem_file);
    g_free(rt->cfg.autostart_marker);
    g_free(rt);
}

static void fire(QubesDomain *dom, const char *event,
                 ...) G_GNUC_NULL_TERMINATED;
static void fire(QubesDomain *dom, const char *event, ...)
{
    g_autoptr(GPtrArray) kw = g_ptr_array_new();
    va_list ap;
    va_start(ap, event);
    for (const char *k; (k = va_arg(ap, const char *));) {
        g_ptr_array_add(kw, (gpointer)k);
        g_ptr_array_add(kw, va_arg(ap, char *));
    }
    va_end(ap);
    g_ptr_array_add(kw, NULL);
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) fx = qubes_emitter_fire(
        &dom->emitter, event, (const char *const *)kw->pdata, &err);
    if (!fx)
        g_warning("%s: handler of %s failed: %s", dom->name, event,
                  err->message);
}

static void fire_state_resets(QubesDomain *dom)
{
    fire(dom, "property-reset:xid", "name", "xid", NULL);
    fire(dom, "property-reset:stubdom_xid", "name", "stubdom_xid", NULL);
    fire(dom, "property-reset:start_time", "name", "start_time", NULL);
}

/* The error of the libvirt call that just failed on this thread. */
static void set_virt_error(GError **error, QubesErrorCode code,
                           const char *what)
{
    const char *msg = virGetLastErrorMessage();
    g_set_error(error, QUBES_ERROR, code, "%s%s", what ? what : "",
                msg ? msg : "unknown libvirt error");
}

static QubesDomain *find_by_uuid(QubesRuntime *rt, const char *uuid)
{
    for (guint i = 0; i < rt->app->domains->len; i++) {
        QubesDomain *d = rt->app->domains->pdata[i];
        if (!d || d->qid == 0)
            continue;
        g_autofree char *u = qubes_domain_prop(d, "uuid");
        if (u && g_ascii_strcasecmp(u, uuid) == 0)
            return d;
    }
    return NULL;
}

/* ---- the connection, for workers ---- */

static virConnectPtr conn_get(QubesRuntime *rt, GError **error)
{
    g_mutex_lock(&rt->lock);
    virConnectPtr c = rt->conn;
    if (c)
        virConnectRef(c);
    g_mutex_unlock(&rt->lock);
    if (!c)
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                    "Not connected to the hypervisor (%s)", rt->cfg.uri);
    return c;
}

/* One blocking libvirt step on a domain, run by a worker. */
typedef enum {
    OP_CREATE,
    OP_RESUME,
    OP_SUSPEND,
    OP_DESTROY,
    OP_SHUTDOWN,
    OP_PM_SUSPEND,
    OP_PM_WAKEUP,
    OP_INFO,
    OP_CONSOLE,
    OP_ATTACH_NIC, /* xml: an <interface>; detached first, errors ignored */
    OP_DETACH_NIC,
    OP_ATTACH_DISK, /* xml: a <disk> */
    OP_DETACH_DISK,
} OpKind;

typedef struct {
    QubesRuntime *rt;
    OpKind kind;
    char *uuid;
    char *xml;            /* OP_CREATE */
    gint64 id;            /* OP_CREATE: the new domain's id */
    QubesDomainInfo info; /* OP_INFO */
    int state;            /* OP_INFO: virDomainState */
    char *tty;            /* OP_CONSOLE */
} Op;

static void op_free(Op *op)
{
    rt_unref(op->rt);
    g_free(op->uuid);
    g_free(op->xml);
    g_free(op->tty);
    g_free(op);
}

static char *console_tty(const char *xml)
{
    /* /domain/devices/console/@tty, as master reads it. */
    const char *c = strstr(xml, "<console ");
    const char *t = c ? strstr(c, "tty='") : NULL;
    if (!t)
        return g_strdup("");
    t += 5;
    const char *e = strchr(t, '\'');
    return e ? g_strndup(t, (gsize)(e - t)) : g_strdup("");
}

static void op_thread(GTask *task, gpointer src, gpointer data,
                      GCancellable *cancel)
{
    Op *op = data;
    GError *err = NULL;
    virConnectPtr c = conn_get(op->rt, &err);
    if (!c) {
        g_task_return_error(task, err);
        return;
    }
    virDomainPtr d = NULL;
    int rc = 0;
    if (op->kind == OP_CREATE) {
        d = virDomainCreateXML(c, op->xml, VIR_DOMAIN_START_PAUSED);
        if (!d)
            rc = -1;
        else
            op->id = virDomainGetID(d);
    } else {
        d = virDomainLookupByUUIDString(c, op->uuid);
        if (!d) {
            g_set_error(&err, QUBES_ERROR, QUBES_ERROR_VM_NOT_STARTED,
                        "no such domain in libvirt");
            virConnectClose(c);
            g_task_return_error(task, err);
            return;
        }
        switch (op->kind) {
        case OP_RESUME:
            rc = virDomainResume(d);
            break;
        case OP_SUSPEND:
            rc = virDomainSuspend(d);
            break;
        case OP_DESTROY:
            rc = virDomainDestroy(d);
            break;
        case OP_SHUTDOWN:
            rc = virDomainShutdown(d);
            break;
        case OP_PM_SUSPEND:
            rc = virDomainPMSuspendForDuration(d, VIR_NODE_SUSPEND_TARGET_MEM,
                                               0, 0);
            break;
        case OP_PM_WAKEUP:
            rc = virDomainPMWakeup(d, 0);
            break;
        case OP_INFO: {
            virDomainInfo info;
            rc = virDomainGetInfo(d, &info);
            if (rc == 0) {
                op->info.mem = info.memory;
                op->info.mem_static_max = info.maxMem;
                op->info.cputime = info.cpuTime;
                op->state = info.state;
            }
            break;
        }
        case OP_CONSOLE: {
            char *xml = virDomainGetXMLDesc(d, 0);
            if (!xml)
                rc = -1;
            else
                op->tty = console_tty(xml);
            free(xml);
            break;
        }
        case OP_ATTACH_NIC:
            /* The seed's rule: detach first (ignoring its error), so that
             * a NIC left from an earlier attach never doubles. */
            virDomainDetachDeviceFlags(d, op->xml, VIR_DOMAIN_AFFECT_LIVE);
            virResetLastError();
            rc = virDomainAttachDeviceFlags(d, op->xml, VIR_DOMAIN_AFFECT_LIVE);
            break;
        case OP_DETACH_NIC:
        case OP_DETACH_DISK:
            rc = virDomainDetachDeviceFlags(d, op->xml, VIR_DOMAIN_AFFECT_LIVE);
            break;
        case OP_ATTACH_DISK:
            rc = virDomainAttachDeviceFlags(d, op->xml, VIR_DOMAIN_AFFECT_LIVE);
            break;
        case OP_CREATE:
            break;
        }
    }
    if (rc < 0) {
        virErrorPtr e = virGetLastError();
        QubesErrorCode code = QUBES_ERROR_EXCEPTION;
        if (e && (e->code == VIR_ERR_OPERATION_INVALID ||
                  e->code == VIR_ERR_NO_DOMAIN))
            code = QUBES_ERROR_VM_NOT_STARTED;
        set_virt_error(&err, code, NULL);
    }
    if (d)
        virDomainFree(d);
    virConnectClose(c);
    if (err)
        g_task_return_error(task, err);
    else
        g_task_return_boolean(task, TRUE);
}

/* Runs @func on a worker with @data (freed by @free with the task),
 * then @cb on the main context. */
static void run_in_worker(GTaskThreadFunc func, gpointer data,
                          GDestroyNotify free, GAsyncReadyCallback cb,
                          gpointer cb_data)
{
    GTask *task = g_task_new(NULL, NULL, cb, cb_data);
    g_task_set_task_data(task, data, free);
    g_task_run_in_thread(task, func);
    g_object_unref(task);
}

static void run_op(QubesRuntime *rt, OpKind kind, QubesDomain *dom, char *xml,
                   GAsyncReadyCallback cb, gpointer data)
{
    Op *op = g_new0(Op, 1);
    op->rt = rt_ref(rt);
    op->kind = kind;
    op->uuid = qubes_domain_prop(dom, "uuid");
    op->xml = xml;
    run_in_worker(op_thread, op, (GDestroyNotify)op_free, cb, data);
}

static Op *op_of(GAsyncResult *res)
{
    return g_task_get_task_data(G_TASK(res));
}

/* ---- the link between a qube and its netvm (QEMU) ----
 *
 * On QEMU there are no driver domains: each client qube gets its own
 * bridge, qbrQID, made by qubesd with no address and nothing routed by
 * the host. The client's NIC is on it from its start; its netvm gets a
 * NIC on it, hot-plugged while both run, whose MAC fe:ff:AA:BB:CC:DD
 * carries the client's address AA.BB.CC.DD so that a plain guest can
 * route to it. The bridge goes when the client stops. */

static char *bridge_name(QubesDomain *dom)
{
    return g_strdup_printf("qbr%u", dom->qid);
}

/* Runs `ip ARGS...`; FALSE with its message. */
static gboolean run_ip(GError **error, ...) G_GNUC_NULL_TERMINATED;
static gboolean run_ip(GError **error, ...)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    g_ptr_array_add(argv, (gpointer) "ip");
    va_list ap;
    va_start(ap, error);
    for (const char *a; (a = va_arg(ap, const char *));)
        g_ptr_array_add(argv, (gpointer)a);
    va_end(ap);
    g_ptr_array_add(argv, NULL);
    g_autofree char *err_out = NULL;
    int status = 0;
    if (!g_spawn_sync(NULL, (char **)argv->pdata, NULL, G_SPAWN_SEARCH_PATH,
                      NULL, NULL, NULL, &err_out, &status, error))
        return FALSE;
    if (!g_spawn_check_wait_status(status, NULL)) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                    "ip %s %s %s: %s", (char *)argv->pdata[1],
                    (char *)argv->pdata[2], (char *)argv->pdata[3],
                    g_strstrip(err_out));
        return FALSE;
    }
    return TRUE;
}

typedef struct {
    char *name;
    gboolean add;
} BridgeJob;

static void bridge_job_free(BridgeJob *b)
{
    g_free(b->name);
    g_free(b);
}

static void bridge_thread(GTask *task, gpointer src, gpointer data,
                          GCancellable *cancel)
{
    BridgeJob *b = data;
    GError *err = NULL;
    /* /proc/sys/net is the view of this thread's network namespace
     * (/sys/class/net is that of whoever mounted /sys). */
    g_autofree char *sys =
        g_strdup_printf("/proc/sys/net/ipv4/conf/%s", b->name);
    gboolean exists = g_file_test(sys, G_FILE_TEST_EXISTS);
    if (b->add) {
        if (!exists && !run_ip(&err, "link", "add", "name", b->name, "type",
                               "bridge", NULL)) {
            g_task_return_error(task, err);
            return;
        }
        /* no address of the host's on it: IPv6 would give it one */
        g_autofree char *v6 =
            g_strdup_printf("/proc/sys/net/ipv6/conf/%s/disable_ipv6", b->name);
        g_file_set_contents(v6, "1", 1, NULL);
        if (!run_ip(&err, "link", "set", b->name, "up", NULL)) {
            g_task_return_error(task, err);
            return;
        }
    } else if (exists && !run_ip(&err, "link", "del", b->name, NULL)) {
        g_task_return_error(task, err);
        return;
    }
    g_task_return_boolean(task, TRUE);
}

static void run_bridge(QubesDomain *dom, gboolean add, GAsyncReadyCallback cb,
                       gpointer data)
{
    BridgeJob *b = g_new0(BridgeJob, 1);
    b->name = bridge_name(dom);
    b->add = add;
    run_in_worker(bridge_thread, b, (GDestroyNotify)bridge_job_free, cb, data);
}

/* The <interface> a netvm gets for @client. */
static char *netvm_nic_xml(QubesDomain *client)
{
    char *ip = qubes_domain_prop(client, "visible_ip");
    guint a = 0, b = 0, c = 0, d = 0;
    if (!ip || sscanf(ip, "%u.%u.%u.%u", &a, &b, &c, &d) != 4)
        a = b = c = d = 0;
    g_free(ip);
    g_autofree char *br = bridge_name(client);
    return g_strdup_printf(
        "<interface type='bridge'><mac address='fe:ff:%02x:%02x:%02x:%02x'/>"
        "<source bridge='%s'/><model type='virtio'/></interface>",
        a & 255, b & 255, c & 255, d & 255, br);
}

static gboolean uses_links(QubesRuntime *rt)
{
    return rt->cfg.hv != QUBES_HV_XEN;
}

static gboolean is_up(QubesDomain *d)
{
    return d->power == QUBES_POWER_RUNNING || d->power == QUBES_POWER_PAUSED ||
           d->power == QUBES_POWER_TRANSIENT;
}

static void link_done(GObject *src, GAsyncResult *res, gpointer data)
{
    char *what = data;
    g_autoptr(GError) err = NULL;
    if (!g_task_propagate_boolean(G_TASK(res), &err))
        g_warning("%s: failed: %s", what, err->message);
    else
        g_message("%s: done", what);
    g_free(what);
}

/* Where a client's link is plugged: the netvm and the NIC it got there
 * (its MAC carries the client's address of that time). */
typedef struct {
    QubesDomain *netvm; /* referenced */
    char *nic_xml;
} Link;

static void link_free(Link *l)
{
    qubes_domain_unref(l->netvm);
    g_free(l->nic_xml);
    g_free(l);
}

static void link_remember(QubesRuntime *rt, QubesDomain *client,
                          QubesDomain *netvm)
{
    Link *l = g_new0(Link, 1);
    l->netvm = qubes_domain_ref(netvm);
    l->nic_xml = netvm_nic_xml(client);
    g_hash_table_replace(rt->links, qubes_domain_ref(client), l);
}

static QubesDomain *linked_netvm(QubesRuntime *rt, QubesDomain *client)
{
    Link *l = g_hash_table_lookup(rt->links, client);
    return l ? l->netvm : NULL;
}

/* Connects @client to @netvm when both run; an error is logged and
 * stops nothing (the seed's rule). */
static void link_connect(QubesRuntime *rt, QubesDomain *client,
                         QubesDomain *netvm)
{
    if (!uses_links(rt) || !netvm || netvm->qid == 0 || !is_up(netvm) ||
        !is_up(client))
        return;
    link_remember(rt, client, netvm);
    run_op(rt, OP_ATTACH_NIC, netvm, netvm_nic_xml(client), link_done,
           g_strdup_printf("%s: plugging its link into its netvm %s",
                           client->name, netvm->name));
}

/* Unplugs @client's link from the netvm it is plugged into, if any. */
static void link_disconnect(QubesRuntime *rt, QubesDomain *client)
{
    Link *l = g_hash_table_lookup(rt->links, client);
    if (!l)
        return;
    if (is_up(l->netvm))
        run_op(rt, OP_DETACH_NIC, l->netvm, g_strdup(l->nic_xml), link_done,
               g_strdup_printf("%s: unplugging its link from %s", client->name,
                               l->netvm->name));
    g_hash_table_remove(rt->links, client);
}

/* A netvm just started: its running clients are connected. */
static void link_clients(QubesRuntime *rt, QubesDomain *netvm)
{
    if (!uses_links(rt))
        return;
    g_autoptr(GPtrArray) clients = qubes_domain_connected_vms(netvm);
    for (guint i = 0; i < clients->len; i++)
        link_connect(rt, clients->pdata[i], netvm);
}

/* A netvm stopped: the links plugged into it went with it. */
static void links_gone_with(QubesRuntime *rt, QubesDomain *netvm)
{
    GHashTableIter it;
    gpointer v;
    g_hash_table_iter_init(&it, rt->links);
    while (g_hash_table_iter_next(&it, NULL, &v))
        if (((Link *)v)->netvm == netvm)
            g_hash_table_iter_remove(&it);
}

/* ---- the firewall on the link (QEMU; netfilter.h) ----
 *
 * A client's rules are written into the kernel before its NIC exists
 * (at its start, before the domain is made), again when they change
 * (firewall-changed: a Set, a Reload, an expiry) or its DNS servers do
 * (a netvm change), and dropped when it stops. When qubesd starts, the
 * table is made anew in one transaction with the chains of the clients
 * that run, so nothing a previous qubesd left for a qube since gone
 * remains. The jobs run on one worker, in the order they were asked:
 * each reads firewall.xml when it runs, so the last one writes the
 * current rules. A firewall.xml that cannot be read or a host name that
 * does not resolve leaves the qube with nothing allowed (fail closed),
 * logged; only nftables refusing the transaction fails a start. */

typedef enum { NF_APPLY, NF_REMOVE, NF_RESET, NF_DROP } NfKind;

typedef struct {
    NfKind kind;
    GPtrArray *clients; /* QubesDomain* (referenced): NF_APPLY one, NF_RESET
                           the running ones */
    GPtrArray *dns;     /* GStrv per client */
    guint qid;          /* NF_REMOVE */
    char *what;         /* for the log */
} NfJob;

static void nf_job_free(NfJob *j)
{
    if (j->clients)
        g_ptr_array_unref(j->clients);
    if (j->dns)
        g_ptr_array_unref(j->dns);
    g_free(j->what);
    g_free(j);
}

/* @dom's chain; NULL only when nothing can be written. A soft failure
 * (the rules unreadable, a name unresolved) gives the drop-all chain and
 * is logged. */
static char *nf_client_script(QubesDomain *dom, GStrv dns)
{
    QubesNfClient c = {.qid = dom->qid};
    g_autoptr(GError) err = NULL;
    c.rules = qubes_domain_read_firewall(dom, &err);
    if (!c.rules) {
        g_warning("%s: firewall: %s; nothing is allowed until it is fixed",
                  dom->name, err->message);
        c.rules = g_ptr_array_new();
        g_clear_error(&err);
    } else if (!qubes_nf_resolve(&c, &err)) {
        /* qubes_nf_client_script() then fails closed, naming it */
        g_clear_error(&err);
    }
    c.dns = g_strdupv(dns);
    char *script =
        qubes_nf_client_script(&c, g_get_real_time() / G_USEC_PER_SEC, &err);
    if (err)
        g_warning("%s: firewall: %s; nothing is allowed", dom->name,
                  err->message);
    qubes_nf_client_clear(&c);
    return script;
}

static void nf_thread(gpointer data, gpointer pool_data)
{
    GTask *task = data;
    NfJob *j = g_task_get_task_data(task);
    GError *err = NULL;
    g_autoptr(GString) script = g_string_new(NULL);
    if (j->kind == NF_DROP) {
        qubes_nf_drop_table();
        g_task_return_boolean(task, TRUE);
        g_object_unref(task);
        return;
    }
    if (j->kind == NF_REMOVE) {
        g_autofree char *s = qubes_nf_remove_script(j->qid);
        g_string_append(script, s);
    } else {
        if (j->kind == NF_RESET) {
            g_autofree char *s = qubes_nf_reset_script();
            g_string_append(script, s);
        }
        for (guint i = 0; i < j->clients->len; i++) {
            g_autofree char *s =
                nf_client_script(j->clients->pdata[i], j->dns->pdata[i]);
            g_string_append(script, s);
        }
    }
    if (qubes_nf_run(script->str, &err))
        g_task_return_boolean(task, TRUE);
    else
        g_task_return_error(task, err);
    g_object_unref(task);
}

static void nf_push(QubesRuntime *rt, NfJob *j, GAsyncReadyCallback cb,
                    gpointer data)
{
    GTask *task = g_task_new(NULL, NULL, cb, data);
    g_task_set_task_data(task, j, (GDestroyNotify)nf_job_free);
    g_thread_pool_push(rt->nf_pool, task, NULL);
}

static GStrv dns_of(QubesDomain *dom)
{
    g_autofree char *dns = qubes_domain_prop(dom, "dns");
    return g_strsplit(dns ? dns : "", " ", -1);
}

static NfJob *nf_job(NfKind kind, const char *what)
{
    NfJob *j = g_new0(NfJob, 1);
    j->kind = kind;
    j->clients =
        g_ptr_array_new_with_free_func((GDestroyNotify)qubes_domain_unref);
    j->dns = g_ptr_array_new_with_free_func((GDestroyNotify)g_strfreev);
    j->what = g_strdup(what);
    return j;
}

static void nf_add_client(NfJob *j, QubesDomain *dom)
{
    g_ptr_array_add(j->clients, qubes_domain_ref(dom));
    g_ptr_array_add(j->dns, dns_of(dom));
}

static void nf_logged(GObject *src, GAsyncResult *res, gpointer data)
{
    NfJob *j = g_task_get_task_data(G_TASK(res));
    g_autoptr(GError) err = NULL;
    if (!g_task_propagate_boolean(G_TASK(res), &err))
        g_warning("%s: %s", j->what, err->message);
}

/* Writes @dom's chain; @cb (NULL: the outcome is logged). */
static void nf_apply(QubesRuntime *rt, QubesDomain *dom, GAsyncReadyCallback cb,
                     gpointer data)
{
    g_autofree char *what =
        g_strdup_printf("%s: applying its firewall", dom->name);
    NfJob *j = nf_job(NF_APPLY, what);
    nf_add_client(j, dom);
    nf_push(rt, j, cb ? cb : nf_logged, data);
}

static void nf_remove(QubesRuntime *rt, QubesDomain *dom)
{
    g_autofree char *what =
        g_strdup_printf("%s: removing its firewall", dom->name);
    NfJob *j = nf_job(NF_REMOVE, what);
    j->qid = dom->qid;
    nf_push(rt, j, nf_logged, NULL);
}

/* Whether @dom has a link whose port its chain guards (or is starting:
 * its chain may have been written before the change). */
static gboolean nf_guarded(QubesRuntime *rt, QubesDomain *dom)
{
    DomRt *r = g_hash_table_lookup(rt->doms, dom);
    return uses_links(rt) && dom->qid != 0 &&
           (is_up(dom) || (r && r->starting)) &&
           qubes_domain_get_netvm(dom) != NULL;
}

/* The table anew with the running clients' chains (qubesd's start). On a
 * host where no qube runs and no table is left there is nothing to do,
 * and nothing is made. */
static void nf_reset(QubesRuntime *rt, GHashTable *alive)
{
    NfJob *j = nf_job(NF_RESET, "firewall: making its table anew");
    GHashTableIter it;
    gpointer k;
    g_hash_table_iter_init(&it, alive);
    while (g_hash_table_iter_next(&it, &k, NULL))
        if (nf_guarded(rt, k))
            nf_add_client(j, k);
    if (!j->clients->len) /* only what a previous qubesd left, if any */
        j->kind = NF_DROP;
    nf_push(rt, j, nf_logged, NULL);
}

static gboolean on_firewall_changed(QubesEvent *ev, gpointer data,
                                    GError **error)
{
    QubesRuntime *rt = data;
    QubesDomain *dom = qubes_domain_of_emitter(ev->subject);
    if (nf_guarded(rt, dom))
        nf_apply(rt, dom, NULL, NULL);
    return TRUE;
}

/* ---- dom0's block devices attached to running qubes (runtime.h) ---- */

static void block_attachment_free(QubesBlockAttachment *a)
{
    qubes_domain_unref(a->frontend);
    g_free(a->port_id);
    g_free(a->path);
    g_free(a->target);
    g_free(a->devtype);
    g_free(a);
}

const GPtrArray *qubes_runtime_block_attachments(QubesRuntime *rt)
{
    return rt->blocks;
}

const QubesBlockAttachment *qubes_runtime_block_attached(QubesRuntime *rt,
                                                         const char *port_id)
{
    for (guint i = 0; i < rt->blocks->len; i++) {
        const QubesBlockAttachment *a = rt->blocks->pdata[i];
        if (strcmp(a->port_id, port_id) == 0)
            return a;
    }
    return NULL;
}

/* The reference's block.xml on Xen (a phy disk); on QEMU a virtio disk
 * with the port as its serial. A cdrom on QEMU is a read-only disk (the
 * virtio bus has no cdroms). */
static char *block_disk_xml(QubesRuntime *rt, const QubesBlockAttachment *a)
{
    g_autofree char *path = g_markup_escape_text(a->path, -1);
    g_autofree char *target = g_markup_escape_text(a->target, -1);
    gboolean ro = a->read_only || (rt->cfg.hv != QUBES_HV_XEN &&
                                   g_strcmp0(a->devtype, "cdrom") == 0);
    if (rt->cfg.hv == QUBES_HV_XEN)
        return g_strdup_printf("<disk type='block' device='%s'>"
                               "<driver name='phy'/><source dev='%s'/>"
                               "<target dev='%s'/>%s</disk>",
                               g_strcmp0(a->devtype, "cdrom") == 0 ? "cdrom"
                                                                   : "disk",
                               path, target, ro ? "<readonly/>" : "");
    g_autofree char *port = g_strndup(a->port_id, 20); /* virtio's limit */
    g_autofree char *serial = g_markup_escape_text(port, -1);
    return g_strdup_printf("<disk type='block' device='disk'>"
                           "<driver name='qemu' type='raw' cache='none'/>"
                           "<source dev='%s'/><target dev='%s' bus='virtio'/>"
                           "<serial>%s</serial>%s</disk>",
                           path, target, serial, ro ? "<readonly/>" : "");
}

/* The frontend device for a new disk of @dom: @hint (xvdX or sdX as the
 * reference takes them, vdX on QEMU too; a Xen name on QEMU becomes its
 * vdX), else the first free of ..i-z, then e-h, after the qube's own
 * disks. NULL when every name is taken. */
static char *block_target(QubesRuntime *rt, QubesDomain *dom, const char *hint)
{
    gboolean xen = rt->cfg.hv == QUBES_HV_XEN;
    const char *prefix = xen ? "xvd" : "vd";
    if (hint) {
        if (xen)
            return g_strdup(hint);
        const char *letters = g_str_has_prefix(hint, "xvd")  ? hint + 3
                              : g_str_has_prefix(hint, "vd") ? hint + 2
                              : g_str_has_prefix(hint, "sd") ? hint + 2
                                                             : hint;
        return g_strdup_printf("vd%s", letters);
    }
    const char *order = "ijklmnopqrstuvwxyzefgh";
    for (const char *c = order; *c; c++) {
        g_autofree char *t = g_strdup_printf("%s%c", prefix, *c);
        gboolean used = FALSE;
        for (guint i = 0; i < rt->blocks->len && !used; i++) {
            const QubesBlockAttachment *a = rt->blocks->pdata[i];
            used = a->frontend == dom && strcmp(a->target, t) == 0;
        }
        if (!used)
            return g_steal_pointer(&t);
    }
    return NULL;
}

typedef struct {
    QubesRuntime *rt;
    QubesBlockAttachment *a; /* owned until it is in the table */
    gboolean attach;
    GTask *task; /* the caller's */
} BlockJob;

static void block_job_done(GObject *src, GAsyncResult *res, gpointer data)
{
    BlockJob *j = data;
    GError *err = NULL;
    if (!g_task_propagate_boolean(G_TASK(res), &err)) {
        g_task_return_error(j->task, err);
    } else {
        if (j->attach) {
            g_ptr_array_add(j->rt->blocks, g_steal_pointer(&j->a));
        } else {
            for (guint i = 0; i < j->rt->blocks->len; i++) {
                QubesBlockAttachment *a = j->rt->blocks->pdata[i];
                if (a->frontend == j->a->frontend &&
                    strcmp(a->port_id, j->a->port_id) == 0)
                    g_ptr_array_remove_index(j->rt->blocks, i--);
            }
        }
        g_task_return_boolean(j->task, TRUE);
    }
    g_object_unref(j->task);
    if (j->a)
        block_attachment_free(j->a);
    rt_unref(j->rt);
    g_free(j);
}

void qubes_runtime_attach_block(QubesRuntime *rt, QubesDomain *dom,
                                const char *port_id, const char *path,
                                const char *frontend_dev, gboolean read_only,
                                const char *devtype, GAsyncReadyCallback cb,
                                gpointer data)
{
    GTask *task = g_task_new(NULL, NULL, cb, data);
    g_autofree char *target = block_target(rt, dom, frontend_dev);
    if (!target) {
        g_task_return_new_error(task, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                                "No free frontend device in %s", dom->name);
        g_object_unref(task);
        return;
    }
    QubesBlockAttachment *a = g_new0(QubesBlockAttachment, 1);
    a->frontend = qubes_domain_ref(dom);
    a->port_id = g_strdup(port_id);
    a->path = g_strdup(path);
    a->target = g_steal_pointer(&target);
    a->devtype = g_strdup(devtype ? devtype : "disk");
    a->read_only = read_only;
    BlockJob *j = g_new0(BlockJob, 1);
    j->rt = rt_ref(rt);
    j->a = a;
    j->attach = TRUE;
    j->task = task;
    run_op(rt, OP_ATTACH_DISK, dom, block_disk_xml(rt, a), block_job_done, j);
}

void qubes_runtime_detach_block(QubesRuntime *rt, QubesDomain *dom,
                                const char *port_id, GAsyncReadyCallback cb,
                                gpointer data)
{
    GTask *task = g_task_new(NULL, NULL, cb, data);
    const QubesBlockAttachment *found = NULL;
    for (guint i = 0; i < rt->blocks->len && !found; i++) {
        const QubesBlockAttachment *a = rt->blocks->pdata[i];
        if (a->frontend == dom && strcmp(a->port_id, port_id) == 0)
            found = a;
    }
    if (!found) {
        g_task_return_new_error(
            task, QUBES_ERROR, QUBES_ERROR_DEVICE_NOT_ASSIGNED,
            "block device dom0:%s not attached to '%s'", port_id, dom->name);
        g_object_unref(task);
        return;
    }
    QubesBlockAttachment *copy = g_new0(QubesBlockAttachment, 1);
    copy->frontend = qubes_domain_ref(dom);
    copy->port_id = g_strdup(found->port_id);
    copy->path = g_strdup(found->path);
    copy->target = g_strdup(found->target);
    copy->devtype = g_strdup(found->devtype);
    copy->read_only = found->read_only;
    BlockJob *j = g_new0(BlockJob, 1);
    j->rt = rt_ref(rt);
    j->a = copy;
    j->task = task;
    run_op(rt, OP_DETACH_DISK, dom, block_disk_xml(rt, copy), block_job_done,
           j);
}

/* The qube stopped: its attachments went with it. */
static void blocks_gone_with(QubesRuntime *rt, QubesDomain *dom)
{
    for (guint i = 0; i < rt->blocks->len; i++)
        if (((QubesBlockAttachment *)rt->blocks->pdata[i])->frontend == dom)
            g_ptr_array_remove_index(rt->blocks, i--);
}

/* A qube that runs when qubesd starts: its attached host block devices,
 * read from its domain XML (disks of type block whose source is a
 * /dev node and whose serial is not one of its volumes). */
static void blocks_adopt(QubesRuntime *rt, QubesDomain *dom, const char *xml)
{
    xmlDocPtr doc = xmlReadMemory(xml, (int)strlen(xml), "domain.xml", NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR |
                                      XML_PARSE_NOWARNING);
    if (!doc)
        return;
    xmlNodePtr root = xmlDocGetRootElement(doc);
    for (xmlNodePtr devs = root ? root->children : NULL; devs;
         devs = devs->next) {
        if (devs->type != XML_ELEMENT_NODE ||
            strcmp((const char *)devs->name, "devices") != 0)
            continue;
        for (xmlNodePtr d = devs->children; d; d = d->next) {
            if (d->type != XML_ELEMENT_NODE ||
                strcmp((const char *)d->name, "disk") != 0)
                continue;
            xmlChar *type = xmlGetProp(d, (const xmlChar *)"type");
            gboolean block = type && strcmp((char *)type, "block") == 0;
            xmlFree(type);
            if (!block)
                continue;
            g_autofree char *src = NULL, *target = NULL, *serial = NULL;
            gboolean ro = FALSE;
            for (xmlNodePtr c = d->children; c; c = c->next) {
                if (c->type != XML_ELEMENT_NODE)
                    continue;
                const char *n = (const char *)c->name;
                if (strcmp(n, "source") == 0) {
                    xmlChar *v = xmlGetProp(c, (const xmlChar *)"dev");
                    src = g_strdup((char *)v);
                    xmlFree(v);
                } else if (strcmp(n, "target") == 0) {
                    xmlChar *v = xmlGetProp(c, (const xmlChar *)"dev");
                    target = g_strdup((char *)v);
                    xmlFree(v);
                } else if (strcmp(n, "serial") == 0) {
                    xmlChar *v = xmlNodeGetContent(c);
                    serial = g_strdup((char *)v);
                    xmlFree(v);
                } else if (strcmp(n, "readonly") == 0) {
                    ro = TRUE;
                }
            }
            if (!src || !target || !g_str_has_prefix(src, "/dev/"))
                continue;
            /* the qube's own disks take a..d (root, private, volatile,
             * kernel modules) */
            const char *letter = g_str_has_prefix(target, "xvd")  ? target + 3
                                 : g_str_has_prefix(target, "vd") ? target + 2
                                                                  : NULL;
            if (letter && letter[0] >= 'a' && letter[0] <= 'd' && !letter[1])
                continue;
            gboolean own = FALSE;
            for (guint v = 0; serial && v < dom->volumes->len && !own; v++)
                own = strcmp(((QubesDomainVolume *)dom->volumes->pdata[v])
                                 ->vol->name,
                             serial) == 0;
            if (own)
                continue;
            QubesBlockAttachment *a = g_new0(QubesBlockAttachment, 1);
            a->frontend = qubes_domain_ref(dom);
            a->port_id = g_strdup(src + 5);
            for (char *p = a->port_id; *p; p++)
                if (*p == '/')
                    *p = '_';
            a->path = g_steal_pointer(&src);
            a->target = g_steal_pointer(&target);
            a->devtype = g_strdup("disk");
            a->read_only = ro;
            g_ptr_array_add(rt->blocks, a);
        }
    }
    xmlFreeDoc(doc);
}

/* ---- a netvm change on a running qube (the reference's net.py) ----
 *
 * The new netvm of a running qube must run ("Cannot dynamically attach
 * to stopped NetVM"); once the change is made the qube's link is
 * unplugged from the old netvm and plugged into the new one, and the
 * new netvm gets net-domain-connect. The checks come on the pre-events
 * (a direct set, a reset to the default, a change of default_netvm that
 * the qube follows), the re-plug on the post-events. The guest keeps its
 * address (it is the qube's own); its gateway is the new netvm's, which
 * a guest without Qubes' agents learns only at its next start. */

static gboolean refuse_stopped_netvm(QubesRuntime *rt, QubesDomain *self,
                                     const char *name, GError **error)
{
    QubesDomain *net =
        name && *name ? g_hash_table_lookup(rt->app->by_name, name) : NULL;
    if (!is_up(self) || !net || is_up(net))
        return TRUE;
    g_autofree char *r = qubes_py_repr(net->name);
    g_set_error(error, QUBES_ERROR, QUBES_ERROR_VM_NOT_STARTED,
                "Cannot dynamically attach to stopped NetVM: %s", r);
    return FALSE;
}

static gboolean on_netvm_pre_set(QubesEvent *ev, gpointer data, GError **error)
{
    return refuse_stopped_netvm(data, qubes_domain_of_emitter(ev->subject),
                                qubes_event_get(ev, "newvalue"), error);
}

static gboolean on_netvm_pre_reset(QubesEvent *ev, gpointer data,
                                   GError **error)
{
    QubesDomain *self = qubes_domain_of_emitter(ev->subject);
    g_autofree char *def = qubes_props_get_default(&self->props, "netvm", NULL);
    return refuse_stopped_netvm(data, self, def, error);
}

static gboolean on_netvm_changed(QubesEvent *ev, gpointer data, GError **error)
{
    QubesRuntime *rt = data;
    QubesDomain *self = qubes_domain_of_emitter(ev->subject);
    QubesDomain *now = qubes_domain_get_netvm(self);
    if (!uses_links(rt) || !is_up(self) || linked_netvm(rt, self) == now)
        return TRUE;
    /* its DNS servers follow the netvm */
    if (nf_guarded(rt, self))
        nf_apply(rt, self, NULL, NULL);
    link_disconnect(rt, self);
    if (now && is_up(now)) {
        link_connect(rt, self, now);
        fire(now, "net-domain-connect", "vm", self->name, NULL);
    }
    return TRUE;
}

static void register_netvm_handlers(QubesRuntime *rt)
{
    QubesEventRegistry *reg = rt->app->registry;
    rt->handlers[0] =
        qubes_event_add_class_handler(reg, "QubesVM", "property-pre-set:netvm",
                                      on_netvm_pre_set, 0, rt, NULL);
    rt->handlers[1] = qubes_event_add_class_handler(
        reg, "QubesVM", "property-pre-reset:netvm", on_netvm_pre_reset, 0, rt,
        NULL);
    rt->handlers[2] = qubes_event_add_class_handler(
        reg, "QubesVM", "property-set:netvm", on_netvm_changed, 0, rt, NULL);
    rt->handlers[3] = qubes_event_add_class_handler(
        reg, "QubesVM", "property-reset:netvm", on_netvm_changed, 0, rt, NULL);
    rt->handlers[4] = qubes_event_add_class_handler(
        reg, "QubesVM", "firewall-changed", on_firewall_changed, 0, rt, NULL);
}

/* ---- storage, on workers ---- */

typedef enum { ST_VERIFY, ST_START, ST_STOP } StorageKind;

typedef struct {
    StorageKind kind;
    GPtrArray *volumes;
} StorageJob;

static void storage_job_free(StorageJob *j)
{
    g_ptr_array_unref(j->volumes);
    g_free(j);
}

typedef struct {
    StorageKind kind;
    QubesVolume *vol;
    GError *error;
} VolStep;

static gpointer vol_step_thread(gpointer data)
{
    VolStep *s = data;
    gboolean ok = s->kind == ST_VERIFY  ? qubes_volume_verify(s->vol, &s->error)
                  : s->kind == ST_START ? qubes_volume_start(s->vol, &s->error)
                                        : qubes_volume_stop(s->vol, &s->error);
    (void)ok;
    return NULL;
}

/* Every volume at once, each on its own thread; the first error wins. A
 * start that fails stops the volumes that did start. */
static void storage_thread(GTask *task, gpointer src, gpointer data,
                           GCancellable *cancel)
{
    StorageJob *j = data;
    guint n = j->volumes->len;
    g_autofree VolStep *steps = g_new0(VolStep, n);
    g_autofree GThread **threads = g_new0(GThread *, n);
    for (guint i = 0; i < n; i++) {
        steps[i].kind = j->kind;
        steps[i].vol = j->volumes->pdata[i];
        threads[i] = g_thread_new("volume", vol_step_thread, &steps[i]);
    }
    GError *first = NULL;
    for (guint i = 0; i < n; i++) {
        g_thread_join(threads[i]);
        if (steps[i].error && !first) {
            first = steps[i].error;
            g_prefix_error(&first, "volume %s: ", steps[i].vol->name);
        } else if (steps[i].error) {
            g_warning("volume %s: %s", steps[i].vol->name,
                      steps[i].error->message);
            g_clear_error(&steps[i].error);
        }
    }
    if (first && j->kind == ST_START) {
        for (guint i = 0; i < n; i++) {
            g_autoptr(GError) e = NULL;
            if (!qubes_volume_stop(steps[i].vol, &e))
                g_warning("volume %s: %s", steps[i].vol->name, e->message);
        }
    }
    if (first)
        g_task_return_error(task, first);
    else
        g_task_return_boolean(task, TRUE);
}

static void run_storage(QubesDomain *dom, StorageKind kind,
                        GAsyncReadyCallback cb, gpointer data)
{
    StorageJob *j = g_new0(StorageJob, 1);
    j->kind = kind;
    j->volumes = qubes_domain_volume_refs(dom);
    run_in_worker(storage_thread, j, (GDestroyNotify)storage_job_free, cb,
                  data);
}

/* ---- the domain XML ---- */

static char *kernel_dir(QubesDomain *dom)
{
    QubesVolume *k = qubes_domain_get_volume(dom, "kernel");
    if (!k)
        return NULL;
    g_autofree char *modules = qubes_volume_get_path(k);
    return modules ? g_path_get_dirname(modules) : NULL;
}

static char *kernelopts_common(QubesRuntime *rt, const char *kdir)
{
    g_autofree char *path =
        g_build_filename(kdir, "default-kernelopts-common.txt", NULL);
    char *text = NULL;
    if (g_file_get_contents(path, &text, NULL, NULL)) {
        g_strchomp(text);
        return text;
    }
    return g_strdup(rt->cfg.hv == QUBES_HV_XEN ? KERNELOPTS_COMMON_XEN
                                               : KERNELOPTS_COMMON_QEMU);
}

/* On QEMU there is no qubesdb: the addresses the reference writes there
 * go on the kernel command line, for a guest without Qubes agents.
 * `ip=IP::GATEWAY:NETMASK:NAME:eth0:off:DNS1:DNS2` (the kernel's and
 * initramfs-tools' syntax) for a qube with a netvm, its values the
 * reference's visible_ip, visible_gateway, visible_netmask and dns (the
 * netmask is 255.255.255.255: the gateway is reached with an on-link
 * route, as in Qubes); `qubes.gateway=IP` for a qube that provides
 * network, the address it answers its clients on. */
static void append_net_cmdline(QubesVmSpec *s, QubesDomain *dom,
                               QubesDomain *net)
{
    GString *c = g_string_new(s->cmdline);
    if (net) {
        g_autofree char *ip = qubes_domain_prop(dom, "visible_ip");
        g_autofree char *gw = qubes_domain_prop(dom, "visible_gateway");
        g_autofree char *mask = qubes_domain_prop(dom, "visible_netmask");
        g_autofree char *dns = qubes_domain_prop(dom, "dns");
        g_auto(GStrv) d = g_strsplit(dns ? dns : "", " ", 3);
        g_string_append_printf(c, " ip=%s::%s:%s:%s:eth0:off:%s:%s",
                               ip ? ip : "", gw ? gw : "", mask ? mask : "",
                               dom->name, d[0] ? d[0] : "",
                               d[0] && d[1] ? d[1] : "");
    }
    if (qubes_domain_flag(dom, "provides_network")) {
        g_autofree char *gw = qubes_domain_prop(dom, "gateway");
        if (gw && *gw)
            g_string_append_printf(c, " qubes.gateway=%s", gw);
    }
    g_free(s->cmdline);
    s->cmdline = g_string_free(c, FALSE);
}

/* Xen hvm: the legacy (mini-os) stubdomain rather than the Linux one,
 * when the linux-stubdom feature (the template's too) is set off. */
static gboolean legacy_stubdom(QubesDomain *dom)
{
    const char *ls = qubes_domain_feature_check(dom, "linux-stubdom", TRUE,
                                                FALSE, FALSE, NULL);
    return ls && !feature_with_template(dom, "linux-stubdom");
}

/* Xen hvm: the stubdomain's kind, memory and command line (domxml.h),
 * from the linux-stubdom feature, stubdom_mem, the audio domain when it
 * runs, and the network: the qube's ip and dns, its netvm's gateway. */
static void set_emulator(QubesVmSpec *s, QubesDomain *dom, QubesDomain *net)
{
    s->stubdom_legacy = legacy_stubdom(dom);
    s->stubdom_mem = prop_u64(dom, "stubdom_mem");
    g_autofree char *audio = qubes_domain_prop(dom, "audiovm");
    QubesDomain *a =
        audio && *audio ? g_hash_table_lookup(dom->app->by_name, audio) : NULL;
    gint64 audio_xid = !a ? -1 : a->qid == 0 ? 0 : a->xid;
    g_autofree char *ip = net ? qubes_domain_prop(dom, "ip") : NULL;
    g_autofree char *gw = net ? qubes_domain_prop(net, "gateway") : NULL;
    g_autofree char *dns = net ? qubes_domain_prop(dom, "dns") : NULL;
    g_auto(GStrv) d = g_strsplit(dns ? dns : "", " ", 3);
    s->emulator_cmdline =
        qubes_vm_emulator_cmdline(s->stubdom_legacy, audio_xid, net != NULL, ip,
                                  d[0], d[0] ? d[1] : NULL, gw);
}

char *qubes_runtime_domain_xml(QubesRuntime *rt, QubesDomain *dom,
                               GError **error)
{
    g_autoptr(QubesVmSpec) s = qubes_vm_spec_new();
    s->hv = rt->cfg.hv;
    s->name = g_strdup(dom->name);
    s->uuid = qubes_domain_prop(dom, "uuid");
    s->memory = prop_u64(dom, "memory");
    s->maxmem = prop_u64(dom, "maxmem");
    s->vcpus = (guint)MAX(prop_u64(dom, "vcpus"), 1);
    s->virt_mode = qubes_domain_prop(dom, "virt_mode");
    if (!s->virt_mode)
        s->virt_mode = g_strdup("pvh");
    /* The reference fixes the memory of a qube that cannot balloon:
     * maxmem 0, or PCI devices assigned (a device's DMA cannot follow a
     * balloon; qmemmand then leaves the qube alone, as it has no
     * balloon to read). */
    if (s->maxmem < s->memory || qubes_domain_has_assignment(dom, "pci"))
        s->maxmem = 0;
    g_autofree char *kernel = qubes_domain_prop(dom, "kernel");
    if (kernel && *kernel) {
        s->kernel_dir = kernel_dir(dom);
        if (!s->kernel_dir) {
            g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                        "Kernel %s of %s has no files", kernel, dom->name);
            return NULL;
        }
        g_autofree char *opts = qubes_domain_prop(dom, "kernelopts");
        if (feature_with_template(dom, "no-default-kernelopts")) {
            s->cmdline = g_strdup(opts ? opts : "");
        } else {
            g_autofree char *common = kernelopts_common(rt, s->kernel_dir);
            s->cmdline = g_strconcat(common, opts ? opts : "", NULL);
        }
    }
    s->uefi = feature_with_template(dom, "uefi");
    const char *tz =
        qubes_domain_feature_check(dom, "timezone", TRUE, FALSE, FALSE, NULL);
    s->timezone = g_strdup(tz);

    g_autoptr(GPtrArray) vols = qubes_domain_volume_refs(dom);
    for (guint i = 0; i < vols->len; i++) {
        QubesVolume *v = vols->pdata[i];
        g_autofree char *path = qubes_volume_get_path(v);
        if (!path)
            continue; /* a kernel volume of "no kernel" */
        struct stat st;
        gboolean block = stat(path, &st) == 0 && S_ISBLK(st.st_mode);
        qubes_vm_spec_add_disk(s, v->name, path, v->rw, block, NULL);
    }

    QubesDomain *net = qubes_domain_get_netvm(dom);
    if (net) {
        QubesVmNic *nic = g_new0(QubesVmNic, 1);
        nic->mac = qubes_domain_prop(dom, "mac");
        nic->ip = qubes_domain_prop(dom, "ip");
        nic->ip6 = qubes_domain_prop(dom, "ip6");
        if (nic->ip6 && !*nic->ip6)
            g_clear_pointer(&nic->ip6, g_free);
        nic->backend_domain = g_strdup(net->name);
        nic->bridge = g_strdup_printf("qbr%u", dom->qid);
        if (uses_links(rt))
            nic->tap = qubes_nf_tap_name(dom->qid);
        s->nic = nic;
    }
    if (rt->cfg.hv == QUBES_HV_XEN && strcmp(s->virt_mode, "hvm") == 0)
        set_emulator(s, dom, net);
    if (uses_links(rt) && s->cmdline)
        append_net_cmdline(s, dom, net);
    if (rt->cfg.hv != QUBES_HV_XEN && rt->cfg.log_dir) {
        g_autofree char *f = g_strdup_printf("guest-%s.log", dom->name);
        s->console_log = g_build_filename(rt->cfg.log_dir, f, NULL);
    }
    return qubes_vm_spec_to_xml(s);
}

/* ---- stopping ---- */

static void complete_stop_waiters(DomRt *r, GError *error)
{
    GSList *w = r->stop_waiters;
    r->stop_waiters = NULL;
    for (GSList *l = w; l; l = l->next) {
        GTask *t = l->data;
        if (error)
            g_task_return_error(t, g_error_copy(error));
        else
            g_task_return_boolean(t, TRUE);
        g_object_unref(t);
    }
    g_slist_free(w);
}

static void maybe_forget(QubesRuntime *rt, DomRt *r)
{
    if (!r->starting && !r->start_waiters && !r->stop_waiters)
        g_hash_table_remove(rt->doms, r->dom);
}

typedef struct {
    QubesRuntime *rt;
    QubesDomain *dom; /* referenced */
} StopCtx;

static void stopped_storage_done(GObject *src, GAsyncResult *res, gpointer data)
{
    StopCtx *c = data;
    QubesDomain *dom = c->dom;
    g_autoptr(GError) err = NULL;
    if (!g_task_propagate_boolean(G_TASK(res), &err))
        g_warning("Failed to stop storage for domain %s: %s", dom->name,
                  err->message);
    if (dom->power == QUBES_POWER_DYING) {
        dom->power = QUBES_POWER_HALTED;
        dom->xid = -1;
        dom->start_time = 0;
    }
    /* The reference's order: domain-stopped (whose handler stopped the
     * storage and reset xid, stubdom_xid and start_time), then
     * domain-shutdown. */
    fire(dom, "domain-stopped", NULL);
    fire_state_resets(dom);
    fire(dom, "domain-shutdown", NULL);
    if (uses_links(c->rt)) {
        link_disconnect(c->rt, dom);
        links_gone_with(c->rt, dom);
        run_bridge(dom, FALSE, link_done,
                   g_strdup_printf("%s: removing its link", dom->name));
        nf_remove(c->rt, dom);
    }
    blocks_gone_with(c->rt, dom);
    qubes_runtime_auto_cleanup(c->rt, dom);
    DomRt *r = g_hash_table_lookup(c->rt->doms, dom);
    if (r) {
        complete_stop_waiters(r, NULL);
        maybe_forget(c->rt, r);
    }
    qubes_domain_unref(dom);
    g_free(c);
}

/* ---- DispVMs that remove themselves (dispvm.py's auto_cleanup) ----
 *
 * A DispVM with auto_cleanup goes once it stopped: out of the model at
 * once (so a `shutdown --wait` answered finds it gone), then out of
 * qubes.xml, then its files. qubes.xml forgets it before its files go: a
 * crash in between leaves unreferenced files, never a qube without its
 * disks (the same order as admin.vm.Remove). */

static void cleanup_thread(GTask *task, gpointer src, gpointer data,
                           GCancellable *cancel)
{
    GError *err = NULL;
    if (!qubes_domain_files_remove(data, &err)) {
        g_task_return_error(task, err);
        return;
    }
    g_task_return_boolean(task, TRUE);
}

static void cleanup_done(GObject *src, GAsyncResult *res, gpointer data)
{
    char *name = data;
    g_autoptr(GError) err = NULL;
    if (!g_task_propagate_boolean(G_TASK(res), &err))
        g_warning("Error while removing VM '%s' files: %s", name, err->message);
    else
        g_message("%s: removed (auto_cleanup)", name);
    g_free(name);
}

static void cleanup_saved(gpointer data, GError *error)
{
    QubesDomainFiles *c = data;
    if (error) {
        g_warning("%s: qubes.xml not saved, its files are kept: %s",
                  c->dom->name, error->message);
        qubes_domain_files_free(c);
        return;
    }
    char *name = g_strdup(c->dom->name);
    run_in_worker(cleanup_thread, c, (GDestroyNotify)qubes_domain_files_free,
                  cleanup_done, name);
}

static gboolean auto_cleanup_due(QubesDomain *dom)
{
    return strcmp(dom->klass->name, "DispVM") == 0 && !dom->removed &&
           qubes_domain_flag(dom, "auto_cleanup");
}

void qubes_runtime_auto_cleanup(QubesRuntime *rt, QubesDomain *dom)
{
    if (!auto_cleanup_due(dom))
        return;
    g_autoptr(GError) err = NULL;
    QubesDomainFiles *c = qubes_domain_files_new(dom);
    if (!qubes_app_remove_domain(rt->app, dom, &err)) {
        g_warning("%s: not removed: %s", dom->name, err->message);
        qubes_domain_files_free(c);
        return;
    }
    qubes_app_save_then(rt->app, cleanup_saved, c);
}

/* The qube is gone from the hypervisor: its storage is stopped (origins
 * committed, snapshots dropped), then the events. Duplicates (a resync
 * after a reconnect, a second event) are ignored. */
static void domain_gone(QubesRuntime *rt, QubesDomain *dom)
{
    DomRt *r = g_hash_table_lookup(rt->doms, dom);
    if (r && r->starting) {
        r->died = TRUE; /* the start in progress handles it */
        return;
    }
    if (dom->power == QUBES_POWER_HALTED || dom->power == QUBES_POWER_DYING)
        return;
    g_message("%s: stopped", dom->name);
    dom->power = QUBES_POWER_DYING;
    StopCtx *c = g_new0(StopCtx, 1);
    c->rt = rt;
    c->dom = qubes_domain_ref(dom);
    run_storage(dom, ST_STOP, stopped_storage_done, c);
}

/* ---- libvirt's events and the connection ---- */

static int on_lifecycle(virConnectPtr conn, virDomainPtr vdom, int event,
                        int detail, void *opaque)
{
    QubesRuntime *rt = opaque;
    char uuid[VIR_UUID_STRING_BUFLEN];
    if (virDomainGetUUIDString(vdom, uuid) < 0)
        return 0;
    QubesDomain *dom = find_by_uuid(rt, uuid);
    if (!dom)
        return 0; /* not a qube */
    DomRt *r = g_hash_table_lookup(rt->doms, dom);
    gboolean starting = r && r->starting;
    switch (event) {
    case VIR_DOMAIN_EVENT_STOPPED:
        domain_gone(rt, dom);
        break;
    case VIR_DOMAIN_EVENT_SUSPENDED:
        if (!starting && dom->power != QUBES_POWER_HALTED)
            dom->power = QUBES_POWER_PAUSED;
        fire(dom, "domain-paused", NULL);
        break;
    case VIR_DOMAIN_EVENT_RESUMED:
        if (!starting && dom->power != QUBES_POWER_HALTED)
            dom->power = QUBES_POWER_RUNNING;
        fire(dom, "domain-unpaused", NULL);
        break;
    case VIR_DOMAIN_EVENT_PMSUSPENDED:
        if (dom->power != QUBES_POWER_HALTED)
            dom->power = QUBES_POWER_SUSPENDED;
        break;
    case VIR_DOMAIN_EVENT_SHUTDOWN:
        if (dom->power == QUBES_POWER_RUNNING ||
            dom->power == QUBES_POWER_PAUSED)
            dom->power = QUBES_POWER_HALTING;
        break;
    case VIR_DOMAIN_EVENT_CRASHED:
        if (dom->power != QUBES_POWER_HALTED)
            dom->power = QUBES_POWER_CRASHED;
        break;
    default:
        break;
    }
    return 0;
}

static QubesPowerState power_of(int state)
{
    switch (state) {
    case VIR_DOMAIN_PAUSED:
        return QUBES_POWER_PAUSED;
    case VIR_DOMAIN_SHUTDOWN:
        return QUBES_POWER_HALTING;
    case VIR_DOMAIN_CRASHED:
        return QUBES_POWER_CRASHED;
    case VIR_DOMAIN_PMSUSPENDED:
        return QUBES_POWER_SUSPENDED;
    case VIR_DOMAIN_SHUTOFF:
        return QUBES_POWER_DYING;
    default:
        return QUBES_POWER_RUNNING;
    }
}

static gboolean autostart_begin(gpointer data);

/* Once qubesd knows which qubes run: the preloaded disposables. */
static gboolean preload_begin(gpointer data)
{
    QubesRuntime *rt = data;
    if (rt->doms && rt->preload)
        qubes_preload_startup(rt->preload);
    rt_unref(rt);
    return G_SOURCE_REMOVE;
}

/* Learns which qubes run: adopts them (state, id; their storage stays
 * started) and treats the others as stopped. Brings the storage of
 * halted qubes to rest the first time. Blocking, but short: one listing. */
static void resync(QubesRuntime *rt)
{
    virDomainPtr *list = NULL;
    int n = virConnectListAllDomains(rt->conn, &list,
                                     VIR_CONNECT_LIST_DOMAINS_ACTIVE);
    if (n < 0) {
        g_warning("cannot list the domains of %s: %s", rt->cfg.uri,
                  virGetLastErrorMessage());
        return;
    }
    g_autoptr(GHashTable) alive = g_hash_table_new(NULL, NULL);
    for (int i = 0; i < n; i++) {
        char uuid[VIR_UUID_STRING_BUFLEN];
        int state = 0, reason = 0;
        if (virDomainGetUUIDString(list[i], uuid) == 0) {
            QubesDomain *dom = find_by_uuid(rt, uuid);
            if (dom && virDomainGetState(list[i], &state, &reason, 0) == 0 &&
                state != VIR_DOMAIN_SHUTOFF) {
                g_hash_table_add(alive, dom);
                if (dom->power == QUBES_POWER_HALTED) {
                    g_message("%s: running, adopted", dom->name);
                    dom->start_time = g_get_real_time() / G_USEC_PER_SEC;
                }
                DomRt *r = g_hash_table_lookup(rt->doms, dom);
                if (!r || !r->starting) {
                    dom->power = power_of(state);
                    dom->xid = virDomainGetID(list[i]);
                }
                if (!rt->settled) {
                    char *xml = virDomainGetXMLDesc(list[i], 0);
                    if (xml)
                        blocks_adopt(rt, dom, xml);
                    free(xml);
                }
            }
        }
        virDomainFree(list[i]);
    }
    free(list);
    /* An adopted client's link was plugged by the qubesd that started
     * it (or when its netvm started): it is remembered, not re-plugged. */
    GHashTableIter it;
    gpointer k;
    g_hash_table_iter_init(&it, alive);
    while (uses_links(rt) && g_hash_table_iter_next(&it, &k, NULL)) {
        QubesDomain *net = qubes_domain_get_netvm(k);
        if (net && net->qid && g_hash_table_contains(alive, net) &&
            !g_hash_table_contains(rt->links, k))
            link_remember(rt, k, net);
    }
    g_autoptr(GPtrArray) leftover =
        g_ptr_array_new_with_free_func((GDestroyNotify)qubes_domain_unref);
    for (guint i = 0; i < rt->app->domains->len; i++) {
        QubesDomain *d = rt->app->domains->pdata[i];
        if (d && !rt->settled && d->power == QUBES_POWER_HALTED &&
            !g_hash_table_contains(alive, d) && auto_cleanup_due(d))
            g_ptr_array_add(leftover, qubes_domain_ref(d));
        if (!d || d->qid == 0 || g_hash_table_contains(alive, d) ||
            strcmp(d->klass->name, "RemoteVM") == 0)
            continue;
        if (d->power != QUBES_POWER_HALTED)
            domain_gone(rt, d);
        else if (!rt->settled)
            /* Storage left mid-operation by a crash is finished or rolled
             * back by the driver's next operation on each volume; stopping
             * the volumes of every halted qube is that operation, and it
             * commits (save_on_stop) or drops what a qube that died while
             * qubesd was away left behind. Blocking, once, at start. */
            for (guint j = 0; j < d->volumes->len; j++) {
                QubesVolume *v =
                    ((QubesDomainVolume *)d->volumes->pdata[j])->vol;
                g_autoptr(GError) err = NULL;
                if (!qubes_volume_stop(v, &err))
                    g_warning("%s: volume %s: %s", d->name, v->name,
                              err->message);
            }
    }
    /* DispVMs that stopped while no qubesd was there to remove them */
    for (guint i = 0; i < leftover->len; i++)
        qubes_runtime_auto_cleanup(rt, leftover->pdata[i]);
    if (!rt->settled && uses_links(rt))
        nf_reset(rt, alive);
    if (!rt->settled) {
        g_idle_add(preload_begin, rt_ref(rt));
        g_idle_add(autostart_begin, rt_ref(rt));
    }
    rt->settled = TRUE;
}

static gboolean try_connect(gpointer data);
static void on_close(virConnectPtr conn, int reason, void *opaque);

/* Drops the dead connection and starts reconnecting; from the main loop,
 * not from libvirt's close callback, which must not close it. */
static gboolean drop_connection(gpointer data)
{
    QubesRuntime *rt = data;
    g_mutex_lock(&rt->lock);
    virConnectPtr old = rt->conn;
    rt->conn = NULL;
    g_mutex_unlock(&rt->lock);
    if (old) {
        virConnectDomainEventDeregisterAny(old, rt->lifecycle_id);
        virConnectUnregisterCloseCallback(old, on_close);
        virConnectClose(old);
    }
    rt->warned = FALSE;
    if (!rt->retry_source)
        rt->retry_source = g_timeout_add_seconds(1, try_connect, rt);
    rt->drop_source = 0;
    return G_SOURCE_REMOVE;
}

static void on_close(virConnectPtr conn, int reason, void *opaque)
{
    QubesRuntime *rt = opaque;
    g_warning("lost the connection to %s (reason %d); reconnecting",
              rt->cfg.uri, reason);
    if (!rt->drop_source)
        rt->drop_source = g_idle_add(drop_connection, rt);
}

static gboolean connect_now(QubesRuntime *rt)
{
    virConnectPtr c = virConnectOpen(rt->cfg.uri);
    if (!c) {
        if (!rt->warned)
            g_warning("cannot connect to %s: %s; retrying", rt->cfg.uri,
                      virGetLastErrorMessage());
        rt->warned = TRUE;
        return FALSE;
    }
    rt->lifecycle_id = virConnectDomainEventRegisterAny(
        c, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
        VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), rt, NULL);
    virConnectRegisterCloseCallback(c, on_close, rt, NULL);
    /* Keepalive notices a libvirtd that hangs as well as one that died. */
    virConnectSetKeepAlive(c, 5, 3);
    g_mutex_lock(&rt->lock);
    rt->conn = c;
    g_mutex_unlock(&rt->lock);
    g_message("connected to %s (%s domains)", rt->cfg.uri,
              qubes_hv_type_name(rt->cfg.hv));
    resync(rt);
    return TRUE;
}

static gboolean try_connect(gpointer data)
{
    QubesRuntime *rt = data;
    if (connect_now(rt)) {
        rt->retry_source = 0;
        return G_SOURCE_REMOVE;
    }
    return G_SOURCE_CONTINUE;
}

const char *qubes_runtime_default_uri(void)
{
    return g_file_test("/proc/xen", G_FILE_TEST_EXISTS) ? "xen:///system"
                                                        : "qemu:///system";
}

QubesHvType qubes_runtime_default_hv(const char *uri)
{
    if (g_str_has_prefix(uri, "xen"))
        return QUBES_HV_XEN;
    return access("/dev/kvm", R_OK | W_OK) == 0 ? QUBES_HV_KVM : QUBES_HV_QEMU;
}

static void ignore_virt_error(void *data, virErrorPtr e)
{
    /* Errors are reported where they happen, with their qube. */
}

QubesRuntime *qubes_runtime_new(QubesApp *app, const QubesRuntimeConfig *cfg)
{
    static gsize once;
    if (g_once_init_enter(&once)) {
        gvir_event_register();
        g_once_init_leave(&once, 1);
    }
    virSetErrorFunc(NULL, ignore_virt_error);
    QubesRuntime *rt = g_new0(QubesRuntime, 1);
    rt->refs = 1;
    rt->app = app;
    rt->cfg.uri = g_strdup(cfg->uri);
    rt->cfg.hv = cfg->hv;
    rt->cfg.log_dir = g_strdup(cfg->log_dir);
    rt->cfg.qmemman_socket = g_strdup(cfg->qmemman_socket);
    rt->cfg.qmemman_status_socket = g_strdup(cfg->qmemman_status_socket);
    rt->cfg.qmemman_avail_mem_file = g_strdup(cfg->qmemman_avail_mem_file);
    rt->cfg.autostart_marker = g_strdup(cfg->autostart_marker);
    g_mutex_init(&rt->lock);
    rt->nf_pool = g_thread_pool_new(nf_thread, NULL, 1, FALSE, NULL);
    rt->blocks =
        g_ptr_array_new_with_free_func((GDestroyNotify)block_attachment_free);
    rt->doms =
        g_hash_table_new_full(NULL, NULL, NULL, (GDestroyNotify)dom_rt_free);
    rt->links =
        g_hash_table_new_full(NULL, NULL, (GDestroyNotify)qubes_domain_unref,
                              (GDestroyNotify)link_free);
    app->runtime = rt;
    register_netvm_handlers(rt);
    rt->preload = qubes_preload_new(rt, app, rt->cfg.qmemman_avail_mem_file);
    if (!connect_now(rt))
        rt->retry_source = g_timeout_add_seconds(2, try_connect, rt);
    return rt;
}

void qubes_runtime_free(QubesRuntime *rt)
{
    if (!rt)
        return;
    if (rt->retry_source)
        g_source_remove(rt->retry_source);
    if (rt->drop_source)
        g_source_remove(rt->drop_source);
    qubes_preload_free(rt->preload);
    rt->preload = NULL;
    if (rt->conn) {
        virConnectDomainEventDeregisterAny(rt->conn, rt->lifecycle_id);
        virConnectUnregisterCloseCallback(rt->conn, on_close);
        virConnectClose(rt->conn);
        rt->conn = NULL;
    }
    /* Whoever still waits learns that qubesd is going (the qubes keep
     * running). */
    GHashTableIter it;
    gpointer v;
    g_hash_table_iter_init(&it, rt->doms);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        DomRt *r = v;
        GError *e = g_error_new(QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                                "qubesd is exiting");
        complete_stop_waiters(r, e);
        for (GSList *l = r->start_waiters; l; l = l->next) {
            g_task_return_error(l->data, g_error_copy(e));
            g_object_unref(l->data);
        }
        g_slist_free(r->start_waiters);
        r->start_waiters = NULL;
        g_error_free(e);
    }
    g_hash_table_unref(rt->doms);
    rt->doms = NULL;
    for (guint i = 0; i < G_N_ELEMENTS(rt->handlers); i++)
        qubes_event_remove_class_handler(rt->app->registry, rt->handlers[i]);
    g_hash_table_unref(rt->links);
    rt->links = NULL;
    /* the firewall jobs asked for are done (a chain half-way is not) */
    g_thread_pool_free(rt->nf_pool, FALSE, TRUE);
    rt->nf_pool = NULL;
    g_ptr_array_unref(rt->blocks);
    rt->blocks = NULL;
    if (rt->app->runtime == rt)
        rt->app->runtime = NULL;
    rt_unref(rt);
}

gboolean qubes_runtime_connected(QubesRuntime *rt)
{
    return rt && rt->conn;
}

gboolean qubes_runtime_op_finish(GAsyncResult *res, GError **error)
{
    return g_task_propagate_boolean(G_TASK(res), error);
}

/* ---- start ---- */

typedef struct {
    QubesRuntime *rt;
    QubesDomain *dom; /* referenced */
    GTask *task;      /* the caller's */
    gboolean storage_started;
    GError *cause;              /* why it failed, while cleaning up */
    char *xml;                  /* the domain XML while its bridge is made */
    GSocketConnection *qmemman; /* the memory reserved until it exists */
    GPtrArray *devs;            /* StartDev: attached once it exists */
    guint dev_next;
} StartJob;

static void start_complete(StartJob *j, GError *error)
{
    DomRt *r = dom_rt(j->rt, j->dom);
    r->starting = FALSE;
    r->died = FALSE;
    GSList *w = r->start_waiters;
    r->start_waiters = NULL;
    w = g_slist_prepend(w, j->task);
    for (GSList *l = w; l; l = l->next) {
        GTask *t = l->data;
        if (error)
            g_task_return_error(t, g_error_copy(error));
        else
            g_task_return_boolean(t, TRUE);
        g_object_unref(t);
    }
    g_slist_free(w);
    maybe_forget(j->rt, r);
    if (error)
        g_error_free(error);
    qubes_domain_unref(j->dom);
    g_free(j->xml);
    g_clear_object(&j->qmemman);
    if (j->devs)
        g_ptr_array_unref(j->devs);
    g_free(j);
}

static void start_failed_stopped(GObject *src, GAsyncResult *res, gpointer data)
{
    StartJob *j = data;
    g_autoptr(GError) serr = NULL;
    if (!g_task_propagate_boolean(G_TASK(res), &serr))
        g_warning("%s: stopping storage after a failed start: %s", j->dom->name,
                  serr->message);
    start_complete(j, g_steal_pointer(&j->cause));
}

/* A failure before the domain exists: domain-start-failed, storage
 * stopped when it was started, the cause answered. */
static void start_fail(StartJob *j, GError *cause)
{
    g_warning("%s: Start failed: %s", j->dom->name, cause->message);
    fire(j->dom, "domain-start-failed", "reason", cause->message, NULL);
    if (uses_links(j->rt)) {
        run_bridge(j->dom, FALSE, link_done,
                   g_strdup_printf("%s: removing its link", j->dom->name));
        nf_remove(j->rt, j->dom);
    }
    if (j->storage_started) {
        j->cause = cause;
        run_storage(j->dom, ST_STOP, start_failed_stopped, j);
        return;
    }
    start_complete(j, cause);
}

static void start_fired_start(GObject *src, GAsyncResult *res, gpointer data)
{
    StartJob *j = data;
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) fx =
        qubes_emitter_fire_finish(&j->dom->emitter, res, &err);
    if (!fx)
        g_warning("%s: a domain-start handler failed: %s", j->dom->name,
                  err->message);
    /* The seed's order: a qube is connected to its netvm once it runs,
     * and a netvm that starts connects its running clients. */
    link_connect(j->rt, j->dom, qubes_domain_get_netvm(j->dom));
    if (qubes_domain_flag(j->dom, "provides_network"))
        link_clients(j->rt, j->dom);
    start_complete(j, NULL);
}

static void start_killed(GObject *src, GAsyncResult *res, gpointer data)
{
    StartJob *j = data;
    g_autoptr(GError) err = NULL;
    if (!g_task_propagate_boolean(G_TASK(res), &err))
        g_warning("%s: %s", j->dom->name, err->message);
    fire(j->dom, "domain-start-failed", "reason", j->cause->message, NULL);
    start_complete(j, g_steal_pointer(&j->cause));
}

/* A failure once the domain exists: it is killed (its storage is then
 * stopped as for any stop), and the start fails with the cause. */
static void start_fail_running(StartJob *j, GError *cause)
{
    g_warning("%s: Start failed: %s", j->dom->name, cause->message);
    DomRt *r = dom_rt(j->rt, j->dom);
    gboolean died = r->died;
    r->starting = FALSE;
    r->died = FALSE;
    j->cause = cause;
    r->stop_waiters = g_slist_append(r->stop_waiters,
                                     g_task_new(NULL, NULL, start_killed, j));
    if (died)
        domain_gone(j->rt, j->dom);
    else
        run_op(j->rt, OP_DESTROY, j->dom, NULL, NULL, NULL);
}

static void start_resumed(GObject *src, GAsyncResult *res, gpointer data)
{
    StartJob *j = data;
    GError *err = NULL;
    if (!g_task_propagate_boolean(G_TASK(res), &err) ||
        dom_rt(j->rt, j->dom)->died) {
        if (!err)
            err = g_error_new(QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                              "Domain %s died while starting", j->dom->name);
        start_fail_running(j, err);
        return;
    }
    j->dom->power = QUBES_POWER_RUNNING;
    g_message("%s: started", j->dom->name);
    const char *kw[] = {"start_guid", "True", NULL};
    qubes_emitter_fire_async(&j->dom->emitter, "domain-start", kw, NULL,
                             start_fired_start, j);
}

static void start_fired_spawn(GObject *src, GAsyncResult *res, gpointer data)
{
    StartJob *j = data;
    GError *err = NULL;
    g_autoptr(GPtrArray) fx =
        qubes_emitter_fire_finish(&j->dom->emitter, res, &err);
    if (!fx) {
        start_fail_running(j, err);
        return;
    }
    run_op(j->rt, OP_RESUME, j->dom, NULL, start_resumed, j);
}

/* ---- devices at start ----
 *
 * The qube's required and auto-attach assignments of dom0's devices
 * (the reference's ask-to-attach needs a user to ask: left to them).
 * They are found before anything starts: a required one that is not
 * there, is used by the host or attached to another qube fails the start
 * with the cause ("Block device dom0:loop7:* not available: ..."), an
 * auto-attach one is skipped, logged. Once the domain exists (paused)
 * they are attached in turn, each firing device-attach:CLASS; a required
 * one that libvirt refuses fails the start and the domain is killed. A
 * PCI device needs an IOMMU: without one (/sys/kernel/iommu_groups
 * empty) a required one fails the start saying so. */

typedef struct {
    char *devclass;
    QubesVDev dev; /* with the device's own id */
    char *path;    /* block: /dev/..; pci: the sysfs address */
    char *frontend_dev, *devtype;
    gboolean read_only, required;
    GPtrArray *options; /* the assignment's, for the event */
} StartDev;

static void start_dev_free(StartDev *d)
{
    g_free(d->devclass);
    qubes_vdev_clear(&d->dev);
    g_free(d->path);
    g_free(d->frontend_dev);
    g_free(d->devtype);
    g_ptr_array_unref(d->options);
    g_free(d);
}

static gboolean start_dev_refuse(QubesDevAssignment *a, QubesDomain *dom,
                                 const char *why, GError **error)
{
    gboolean required = a->mode == QUBES_DEV_REQUIRED;
    g_autofree char *v = qubes_vdev_str(&a->dev);
    g_autofree char *cls = strcmp(a->dev.devclass, "pci") == 0
                               ? g_strdup("PCI")
                               : g_strdup(a->dev.devclass);
    cls[0] = g_ascii_toupper(cls[0]);
    if (!required) {
        g_message("%s: %s device %s not attached at start: %s", dom->name, cls,
                  v, why);
        return TRUE;
    }
    g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                "%s device %s not available: %s", cls, v, why);
    return FALSE;
}

static gboolean is_bool_true(const char *v)
{
    return v && (g_ascii_strcasecmp(v, "yes") == 0 ||
                 g_ascii_strcasecmp(v, "true") == 0 ||
                 g_ascii_strcasecmp(v, "on") == 0 || strcmp(v, "1") == 0);
}

/* Whether assignment @a (of a dom0 block device) names @b: its port and
 * identity, each possibly "*" (the reference's matches()). */
static gboolean block_matches(const QubesDevAssignment *a,
                              const QubesHostBlock *b)
{
    return (strcmp(a->dev.port_id, "*") == 0 ||
            strcmp(a->dev.port_id, b->info->dev.port_id) == 0) &&
           (strcmp(a->dev.device_id, "*") == 0 ||
            strcmp(a->dev.device_id, b->info->dev.device_id) == 0);
}

static GPtrArray *start_devices(QubesRuntime *rt, QubesDomain *dom,
                                GError **error)
{
    GPtrArray *out =
        g_ptr_array_new_with_free_func((GDestroyNotify)start_dev_free);
    g_autoptr(GPtrArray) blocks = NULL;
    g_autoptr(GPtrArray) pcis = NULL;
    for (guint i = 0; i < dom->assignments->len; i++) {
        QubesDevAssignment *a = dom->assignments->pdata[i];
        if (a->mode != QUBES_DEV_REQUIRED && a->mode != QUBES_DEV_AUTO)
            continue;
        gboolean ok = TRUE;
        if (strcmp(a->dev.backend, "dom0") != 0) {
            ok = start_dev_refuse(a, dom,
                                  "devices of other qubes need their agents, "
                                  "which this system has not",
                                  error);
        } else if (strcmp(a->dev.devclass, "block") == 0) {
            if (!blocks)
                blocks = qubes_host_block_list();
            QubesHostBlock *b = NULL;
            for (guint k = 0; k < blocks->len && !b; k++)
                if (block_matches(a, blocks->pdata[k]))
                    b = blocks->pdata[k];
            const QubesBlockAttachment *used =
                b ? qubes_runtime_block_attached(rt, b->info->dev.port_id)
                  : NULL;
            if (!b) {
                ok = start_dev_refuse(a, dom, "no such device", error);
            } else if (b->in_use) {
                g_autofree char *why =
                    g_strdup_printf("the host uses it (%s)", b->in_use);
                ok = start_dev_refuse(a, dom, why, error);
            } else if (used) {
                g_autofree char *why =
                    g_strdup_printf("attached to '%s'", used->frontend->name);
                ok = start_dev_refuse(a, dom, why, error);
            } else {
                StartDev *d = g_new0(StartDev, 1);
                d->devclass = g_strdup("block");
                qubes_vdev_copy(&d->dev, &b->info->dev);
                d->path = g_strdup(b->path);
                d->frontend_dev =
                    g_strdup(qubes_dev_assignment_option(a, "frontend-dev"));
                d->devtype =
                    g_strdup(qubes_dev_assignment_option(a, "devtype"));
                d->read_only =
                    b->read_only ||
                    is_bool_true(qubes_dev_assignment_option(a, "read-only"));
                d->required = a->mode == QUBES_DEV_REQUIRED;
                d->options = g_ptr_array_ref(a->options);
                g_ptr_array_add(out, d);
            }
        } else if (strcmp(a->dev.devclass, "pci") == 0) {
            if (!pcis)
                pcis = qubes_host_pci_list();
            QubesHostPci *p = NULL;
            for (guint k = 0; k < pcis->len && !p; k++) {
                QubesHostPci *c = pcis->pdata[k];
                if (strcmp(a->dev.port_id, c->info->dev.port_id) == 0)
                    p = c;
            }
            if (!p)
                ok = start_dev_refuse(a, dom, "no such device", error);
            else if (!qubes_host_has_iommu())
                ok = start_dev_refuse(a, dom,
                                      "this host has no IOMMU "
                                      "(/sys/kernel/iommu_groups is empty), "
                                      "so it cannot be given to a qube",
                                      error);
            else {
                StartDev *d = g_new0(StartDev, 1);
                d->devclass = g_strdup("pci");
                qubes_vdev_copy(&d->dev, &p->info->dev);
                d->path = g_strdup(p->sysfs_name);
                d->required = a->mode == QUBES_DEV_REQUIRED;
                d->options = g_ptr_array_ref(a->options);
                g_ptr_array_add(out, d);
            }
        } else {
            ok = start_dev_refuse(a, dom, "this class is not served here",
                                  error);
        }
        if (!ok) {
            g_ptr_array_unref(out);
            return NULL;
        }
    }
    return out;
}

/* ---- a device appearing on the host ----
 *
 * The reference's device_list_change (ext/utils.py): a dom0 block
 * device that appears goes to the running qube whose assignment
 * (required or auto-attach) matches it, by the hot-plug Attach uses,
 * firing device-pre-attach and device-attach. When the assignments of
 * several running qubes match it, or the one that matches is
 * ask-to-attach, the reference asks the user through the GUI qube's
 * device agent; this system has none to ask, so the device is left for
 * the user to attach, and the log says why. */

typedef struct {
    QubesDomain *dom;
    char *device, *options;
} AppearJob;

static void appear_job_free(AppearJob *j)
{
    qubes_domain_unref(j->dom);
    g_free(j->device);
    g_free(j->options);
    g_free(j);
}

static void appeared_attached(GObject *src, GAsyncResult *res, gpointer data)
{
    AppearJob *j = data;
    GError *err = NULL;
    if (qubes_runtime_op_finish(res, &err)) {
        fire(j->dom, "device-attach:block", "device", j->device, "options",
             j->options, NULL);
    } else {
        g_warning("%s: block device %s not attached: %s", j->dom->name,
                  j->device, err->message);
        g_error_free(err);
    }
    appear_job_free(j);
}

/* 2: port and identity named, 1: one of them, 0: any device. */
static int specificity(const QubesDevAssignment *a)
{
    return (strcmp(a->dev.port_id, "*") != 0) +
           (strcmp(a->dev.device_id, "*") != 0);
}

static void block_appeared(QubesRuntime *rt, QubesHostBlock *b)
{
    const char *port = b->info->dev.port_id;
    if (b->in_use || qubes_runtime_block_attached(rt, port))
        return;
    QubesDomain *target = NULL;
    QubesDevAssignment *best = NULL;
    g_autoptr(GString) who = g_string_new(NULL);
    for (guint i = 0; i < rt->app->domains->len; i++) {
        QubesDomain *d = rt->app->domains->pdata[i];
        if (d->power != QUBES_POWER_RUNNING && d->power != QUBES_POWER_PAUSED &&
            d->power != QUBES_POWER_SUSPENDED)
            continue;
        QubesDevAssignment *mine = NULL;
        for (guint k = 0; k < d->assignments->len; k++) {
            QubesDevAssignment *a = d->assignments->pdata[k];
            if (a->mode != QUBES_DEV_MANUAL &&
                strcmp(a->dev.devclass, "block") == 0 &&
                strcmp(a->dev.backend, "dom0") == 0 && block_matches(a, b) &&
                (!mine || specificity(a) > specificity(mine)))
                mine = a;
        }
        if (!mine)
            continue;
        g_string_append_printf(who, "%s'%s'", who->len ? ", " : "", d->name);
        if (!target) {
            target = d;
            best = mine;
        }
    }
    if (!target)
        return;
    g_autofree char *v = qubes_vdev_str(&b->info->dev);
    if (strchr(who->str, ',')) {
        g_message("block device %s matches the assignments of %s: not "
                  "attached (there is no device agent here to ask the user "
                  "which qube gets it)",
                  v, who->str);
        return;
    }
    if (best->mode == QUBES_DEV_ASK) {
        g_message("%s: block device %s is ask-to-attach: not attached (there "
                  "is no device agent here to ask the user)",
                  target->name, v);
        return;
    }
    g_autofree char *opts = qubes_py_dict(best->options);
    const char *kw[] = {"device", v, "options", opts, NULL};
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) fx = qubes_emitter_fire(
        &target->emitter, "device-pre-attach:block", kw, &err);
    if (!fx) {
        g_warning("%s: block device %s not attached: %s", target->name, v,
                  err->message);
        return;
    }
    AppearJob *j = g_new0(AppearJob, 1);
    j->dom = qubes_domain_ref(target);
    j->device = g_strdup(v);
    j->options = g_steal_pointer(&opts);
    g_message("%s: attaching block device %s, which appeared", target->name, v);
    qubes_runtime_attach_block(
        rt, target, port, b->path,
        qubes_dev_assignment_option(best, "frontend-dev"),
        b->read_only ||
            is_bool_true(qubes_dev_assignment_option(best, "read-only")),
        qubes_dev_assignment_option(best, "devtype"), appeared_attached, j);
}

void qubes_runtime_blocks_appeared(QubesRuntime *rt, GPtrArray *blocks,
                                   GPtrArray *ports)
{
    for (guint i = 0; i < ports->len; i++)
        for (guint k = 0; k < blocks->len; k++) {
            QubesHostBlock *b = blocks->pdata[k];
            if (strcmp(b->info->dev.port_id, ports->pdata[i]) == 0)
                block_appeared(rt, b);
        }
}

static void start_spawn(StartJob *j);
static void start_next_device(StartJob *j);

static void start_device_done(GObject *src, GAsyncResult *res, gpointer data)
{
    StartJob *j = data;
    StartDev *d = j->devs->pdata[j->dev_next - 1];
    GError *err = NULL;
    if (!g_task_propagate_boolean(G_TASK(res), &err)) {
        g_autofree char *v = qubes_vdev_str(&d->dev);
        if (d->required) {
            g_prefix_error(&err, "Start failed: %s device %s: ", d->devclass,
                           v);
            start_fail_running(j, err);
            return;
        }
        g_warning("%s: %s device %s not attached at start: %s", j->dom->name,
                  d->devclass, v, err->message);
        g_error_free(err);
    } else {
        g_autofree char *v = qubes_vdev_str(&d->dev);
        g_autofree char *opts = qubes_py_dict(d->options);
        g_autofree char *ev = g_strdup_printf("device-attach:%s", d->devclass);
        fire(j->dom, ev, "device", v, "options", opts, NULL);
    }
    start_next_device(j);
}

static void start_next_device(StartJob *j)
{
    if (!j->devs || j->dev_next >= j->devs->len) {
        start_spawn(j);
        return;
    }
    StartDev *d = j->devs->pdata[j->dev_next++];
    if (strcmp(d->devclass, "block") == 0) {
        qubes_runtime_attach_block(j->rt, j->dom, d->dev.port_id, d->path,
                                   d->frontend_dev, d->read_only, d->devtype,
                                   start_device_done, j);
        return;
    }
    /* pci: a managed hostdev (libvirt binds it to vfio) */
    unsigned dom = 0, bus = 0, slot = 0, fn = 0;
    sscanf(d->path, "%4x:%2x:%2x.%1x", &dom, &bus, &slot, &fn);
    char *xml = g_strdup_printf(
        "<hostdev mode='subsystem' type='pci' managed='yes'><source>"
        "<address domain='0x%04x' bus='0x%02x' slot='0x%02x' "
        "function='0x%x'/></source></hostdev>",
        dom, bus, slot, fn);
    run_op(j->rt, OP_ATTACH_DISK, j->dom, xml, start_device_done, j);
}

static void start_created(GObject *src, GAsyncResult *res, gpointer data)
{
    StartJob *j = data;
    GError *err = NULL;
    /* the domain exists (or will not): qmemmand may balance again */
    if (j->qmemman)
        g_io_stream_close(G_IO_STREAM(j->qmemman), NULL, NULL);
    g_clear_object(&j->qmemman);
    if (!g_task_propagate_boolean(G_TASK(res), &err)) {
        g_prefix_error(&err, "Start failed: ");
        start_fail(j, err);
        return;
    }
    j->dom->xid = op_of(res)->id;
    j->dom->start_time = g_get_real_time() / G_USEC_PER_SEC;
    j->dom->power = QUBES_POWER_TRANSIENT;
    fire_state_resets(j->dom);
    if (dom_rt(j->rt, j->dom)->died) {
        start_fail_running(j, g_error_new(QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                                          "Domain %s died while starting",
                                          j->dom->name));
        return;
    }
    start_next_device(j);
}

static void start_spawn(StartJob *j)
{
    const char *kw[] = {"start_guid", "True", NULL};
    qubes_emitter_fire_async(&j->dom->emitter, "domain-spawn", kw, NULL,
                             start_fired_spawn, j);
}

/* ---- memory: qmemmand (the reference's request_memory) ----
 *
 * Before a qube is created, qmemmand is asked for its memory (the
 * reference's amount: memory, the stubdomain's on Xen hvm, 4 MiB and
 * 1.5 MiB per vCPU of overhead); the connection, which holds the
 * reservation, is closed once the domain exists. FAIL is the reference's
 * QubesMemoryError. Without qmemmand (no socket, refused) the start goes
 * on, logged once. */

typedef struct {
    char *socket;
    guint64 bytes;
    GSocketConnection *conn; /* OK: the reservation */
    gboolean absent;
    gboolean refused;
} MemJob;

static void mem_job_free(MemJob *m)
{
    g_free(m->socket);
    g_clear_object(&m->conn);
    g_free(m);
}

static void mem_thread(GTask *task, gpointer src, gpointer data,
                       GCancellable *cancel)
{
    MemJob *m = data;
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
    guint64 mib = prop_u64(dom, "memory");
    g_autofree char *mode = qubes_domain_prop(dom, "virt_mode");
    if (rt->cfg.hv == QUBES_HV_XEN && g_strcmp0(mode, "hvm") == 0) {
        guint64 stub = prop_u64(dom, "stubdom_mem");
        mib += stub ? stub : legacy_stubdom(dom) ? 28 : 128;
    }
    guint64 vcpus = MAX(prop_u64(dom, "vcpus"), 1);
    /* MEM_OVERHEAD_BASE + vcpus * MEM_OVERHEAD_PER_VCPU (1.5 MiB) */
    return mib * 1024 * 1024 + 4 * 1024 * 1024 + vcpus * 1572864;
}

static void start_create(StartJob *j, char *xml);

static void start_memory_done(GObject *src, GAsyncResult *res, gpointer data)
{
    StartJob *j = data;
    MemJob *m = g_task_get_task_data(G_TASK(res));
    GError *err = NULL;
    char *xml = g_steal_pointer(&j->xml);
    if (!g_task_propagate_boolean(G_TASK(res), &err)) {
        g_free(xml);
        g_prefix_error(&err, "Start failed: ");
        start_fail(j, err);
        return;
    }
    if (m->refused) {
        g_free(xml);
        start_fail(j, g_error_new(QUBES_ERROR, QUBES_ERROR_MEMORY,
                                  "Not enough memory to start domain '%s'",
                                  j->dom->name));
        return;
    }
    if (m->absent && !j->rt->warned_qmemman) {
        g_message("qmemmand does not answer at %s: qubes start without "
                  "memory balancing",
                  m->socket);
        j->rt->warned_qmemman = TRUE;
    } else if (!m->absent) {
        j->rt->warned_qmemman = FALSE;
    }
    j->qmemman = g_steal_pointer(&m->conn);
    run_op(j->rt, OP_CREATE, j->dom, xml, start_created, j);
}

static void start_create(StartJob *j, char *xml)
{
    if (!j->rt->cfg.qmemman_socket) {
        run_op(j->rt, OP_CREATE, j->dom, xml, start_created, j);
        return;
    }
    MemJob *m = g_new0(MemJob, 1);
    m->socket = g_strdup(j->rt->cfg.qmemman_socket);
    m->bytes = memory_required(j->rt, j->dom);
    j->xml = xml;
    run_in_worker(mem_thread, m, (GDestroyNotify)mem_job_free,
                  start_memory_done, j);
}

static void start_firewall_ready(GObject *src, GAsyncResult *res, gpointer data)
{
    StartJob *j = data;
    GError *err = NULL;
    if (!g_task_propagate_boolean(G_TASK(res), &err)) {
        g_prefix_error(&err, "Start failed: firewall: ");
        start_fail(j, err);
        return;
    }
    start_create(j, g_steal_pointer(&j->xml));
}

/* The link is there: the qube's rules guard its port before its NIC
 * exists. */
static void start_bridge_ready(GObject *src, GAsyncResult *res, gpointer data)
{
    StartJob *j = data;
    GError *err = NULL;
    if (!g_task_propagate_boolean(G_TASK(res), &err)) {
        g_prefix_error(&err, "Start failed: ");
        start_fail(j, err);
        return;
    }
    nf_apply(j->rt, j->dom, start_firewall_ready, j);
}

static void start_storage_started(GObject *src, GAsyncResult *res,
                                  gpointer data)
{
    StartJob *j = data;
    GError *err = NULL;
    if (!g_task_propagate_boolean(G_TASK(res), &err)) {
        start_fail(j, err); /* the worker stopped what it started */
        return;
    }
    j->storage_started = TRUE;
    j->devs = start_devices(j->rt, j->dom, &err);
    if (!j->devs) {
        g_prefix_error(&err, "Start failed: ");
        start_fail(j, err);
        return;
    }
    char *xml = qubes_runtime_domain_xml(j->rt, j->dom, &err);
    if (!xml) {
        start_fail(j, err);
        return;
    }
    g_debug("%s: domain XML:\n%s", j->dom->name, xml);
    if (uses_links(j->rt) && qubes_domain_get_netvm(j->dom)) {
        j->xml = xml;
        run_bridge(j->dom, TRUE, start_bridge_ready, j);
        return;
    }
    start_create(j, xml);
}

static void start_netvm_done(GObject *src, GAsyncResult *res, gpointer data)
{
    StartJob *j = data;
    GError *err = NULL;
    if (!qubes_runtime_op_finish(res, &err)) {
        start_fail(j, err);
        return;
    }
    run_storage(j->dom, ST_START, start_storage_started, j);
}

static void start_verified(GObject *src, GAsyncResult *res, gpointer data)
{
    StartJob *j = data;
    GError *err = NULL;
    if (!g_task_propagate_boolean(G_TASK(res), &err)) {
        start_fail(j, err);
        return;
    }
    QubesDomain *net = qubes_domain_get_netvm(j->dom);
    if (net && net->qid != 0 && qubes_domain_is_halted(net)) {
        qubes_runtime_start(j->rt, net, start_netvm_done, j);
        return;
    }
    run_storage(j->dom, ST_START, start_storage_started, j);
}

static void start_pre_fired(GObject *src, GAsyncResult *res, gpointer data)
{
    StartJob *j = data;
    GError *err = NULL;
    g_autoptr(GPtrArray) fx =
        qubes_emitter_fire_finish(&j->dom->emitter, res, &err);
    if (!fx) {
        start_fail(j, err);
        return;
    }
    g_autofree char *mode = qubes_domain_prop(j->dom, "virt_mode");
    g_autofree char *kernel = qubes_domain_prop(j->dom, "kernel");
    if (g_strcmp0(mode, "pvh") == 0 && !(kernel && *kernel)) {
        start_fail(j, g_error_new_literal(QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                                          "virt_mode PVH require kernel to "
                                          "be set"));
        return;
    }
    if (!qubes_runtime_connected(j->rt)) {
        start_fail(j, g_error_new(QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                                  "Start failed: not connected to the "
                                  "hypervisor (%s)",
                                  j->rt->cfg.uri));
        return;
    }
    run_storage(j->dom, ST_VERIFY, start_verified, j);
}

void qubes_runtime_start(QubesRuntime *rt, QubesDomain *dom,
                         GAsyncReadyCallback cb, gpointer data)
{
    GTask *task = g_task_new(NULL, NULL, cb, data);
    if (dom->removed) {
        g_task_return_new_error(task, QUBES_ERROR, QUBES_ERROR_VM_NOT_FOUND,
                                "No such domain: '%s'", dom->name);
        g_object_unref(task);
        return;
    }
    DomRt *r = dom_rt(rt, dom);
    if (r->starting) {
        r->start_waiters = g_slist_append(r->start_waiters, task);
        return;
    }
    /* As the reference: not halted (running, paused, ...) is done. */
    if (dom->power != QUBES_POWER_HALTED || dom->qid == 0) {
        g_task_return_boolean(task, TRUE);
        g_object_unref(task);
        maybe_forget(rt, r);
        return;
    }
    r->starting = TRUE;
    r->died = FALSE;
    StartJob *j = g_new0(StartJob, 1);
    j->rt = rt;
    j->dom = qubes_domain_ref(dom);
    j->task = task;
    g_message("Starting %s", dom->name);
    const char *kw[] = {"start_guid", "True", "mem_required", "None", NULL};
    qubes_emitter_fire_async(&dom->emitter, "domain-pre-start", kw, NULL,
                             start_pre_fired, j);
}

/* ---- shutdown and kill ---- */

/* Removes @waiter from the qube's stop waiters and fails it with a copy
 * of @err; nothing when the stop already completed it. */
static void drop_stop_waiter(QubesRuntime *rt, QubesDomain *dom, GTask *waiter,
                             const GError *err)
{
    DomRt *r = g_hash_table_lookup(rt->doms, dom);
    if (!r || !g_slist_find(r->stop_waiters, waiter))
        return;
    r->stop_waiters = g_slist_remove(r->stop_waiters, waiter);
    g_task_return_error(waiter, g_error_copy(err));
    g_object_unref(waiter);
    maybe_forget(rt, r);
}

static GTask *add_stop_waiter(QubesRuntime *rt, QubesDomain *dom,
                              GAsyncReadyCallback cb, gpointer data)
{
    GTask *w = g_task_new(NULL, NULL, cb, data);
    DomRt *r = dom_rt(rt, dom);
    r->stop_waiters = g_slist_append(r->stop_waiters, w);
    return w; /* owned by the list */
}

/* A shutdown: held by the libvirt request and, with wait, by the stop
 * waiter; the caller's task completes once (done). */
typedef struct {
    QubesRuntime *rt;
    QubesDomain *dom; /* referenced */
    GTask *task;
    gboolean wait;
    int timeout;
    guint timer;
    GTask *waiter;
    int refs;
    gboolean done;
} ShutJob;

static void shut_unref(ShutJob *j)
{
    if (--j->refs > 0)
        return;
    qubes_domain_unref(j->dom);
    g_free(j);
}

/* Answers the caller (@err taken, NULL for success); every failure fires
 * domain-shutdown-failed, as the reference's. */
static void shut_finish(ShutJob *j, GError *err)
{
    if (j->done) {
        if (err)
            g_error_free(err);
        return;
    }
    j->done = TRUE;
    if (j->timer) {
        g_source_remove(j->timer);
        j->timer = 0;
    }
    if (err) {
        fire(j->dom, "domain-shutdown-failed", "reason", err->message, NULL);
        g_task_return_error(j->task, err);
    } else {
        g_task_return_boolean(j->task, TRUE);
    }
    g_object_unref(j->task);
}

static void shut_stopped(GObject *src, GAsyncResult *res, gpointer data)
{
    ShutJob *j = data;
    GError *err = NULL;
    g_task_propagate_boolean(G_TASK(res), &err);
    shut_finish(j, err);
    shut_unref(j);
}

static gboolean shut_timeout(gpointer data)
{
    ShutJob *j = data;
    j->timer = 0;
    g_autoptr(GError) err =
        g_error_new(QUBES_ERROR, QUBES_ERROR_VM_SHUTDOWN_TIMEOUT,
                    "Domain shutdown timed out: '%s'", j->dom->name);
    drop_stop_waiter(j->rt, j->dom, j->waiter, err);
    return G_SOURCE_REMOVE;
}

static void shut_requested(GObject *src, GAsyncResult *res, gpointer data)
{
    ShutJob *j = data;
    GError *err = NULL;
    if (!g_task_propagate_boolean(G_TASK(res), &err)) {
        if (j->waiter)
            drop_stop_waiter(j->rt, j->dom, j->waiter, err);
        shut_finish(j, err);
    } else if (!j->wait) {
        shut_finish(j, NULL);
    } else if (!j->done && j->timeout >= 0) {
        j->timer = g_timeout_add_seconds((guint)j->timeout, shut_timeout, j);
    }
    shut_unref(j);
}

static void shut_pre_fired(GObject *src, GAsyncResult *res, gpointer data)
{
    ShutJob *j = data;
    GError *err = NULL;
    g_autoptr(GPtrArray) fx =
        qubes_emitter_fire_finish(&j->dom->emitter, res, &err);
    if (!fx) {
        shut_finish(j, err);
        shut_unref(j);
        return;
    }
    if (qubes_domain_is_halted(j->dom)) {
        shut_finish(j, NULL);
        shut_unref(j);
        return;
    }
    if (j->wait) {
        j->refs++;
        j->waiter = add_stop_waiter(j->rt, j->dom, shut_stopped, j);
    }
    run_op(j->rt, OP_SHUTDOWN, j->dom, NULL, shut_requested, j);
}

static void refuse(GTask *task, QubesErrorCode code, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);
static void refuse(GTask *task, QubesErrorCode code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_task_return_new_error(task, QUBES_ERROR, code, "%s", msg);
    g_object_unref(task);
}

/* Answers @task "@what 'NAME'" with @code when @dom is halted (or dom0,
 * which this runtime never stops); TRUE when it did. */
static gboolean refused_halted(GTask *task, QubesDomain *dom,
                               QubesErrorCode code, const char *what)
{
    if (dom->power != QUBES_POWER_HALTED && dom->qid != 0)
        return FALSE;
    refuse(task, code, "%s '%s'", what, dom->name);
    return TRUE;
}

#define POWERED_OFF "Domain is powered off:"
#define NOT_RUNNING "Domain not running (either powered off or paused):"

void qubes_runtime_shutdown(QubesRuntime *rt, QubesDomain *dom, gboolean force,
                            gboolean wait, int timeout, GAsyncReadyCallback cb,
                            gpointer data)
{
    GTask *task = g_task_new(NULL, NULL, cb, data);
    if (refused_halted(task, dom, QUBES_ERROR_VM_NOT_STARTED, POWERED_OFF))
        return;
    ShutJob *j = g_new0(ShutJob, 1);
    j->rt = rt;
    j->dom = qubes_domain_ref(dom);
    j->task = task;
    j->wait = wait;
    j->refs = 1;
    j->timeout =
        timeout >= 0 ? timeout : (int)prop_u64(dom, "shutdown_timeout");
    const char *kw[] = {"force", force ? "True" : "False", NULL};
    qubes_emitter_fire_async(&dom->emitter, "domain-pre-shutdown", kw, NULL,
                             shut_pre_fired, j);
}

/* A kill completes when the stop did. */
typedef struct {
    QubesRuntime *rt;
    QubesDomain *dom; /* referenced */
    GTask *task;
    GTask *waiter;
    int refs;
} KillJob;

static void kill_unref(KillJob *k)
{
    if (--k->refs > 0)
        return;
    qubes_domain_unref(k->dom);
    g_free(k);
}

static void kill_destroyed(GObject *src, GAsyncResult *res, gpointer data)
{
    KillJob *k = data;
    GError *err = NULL;
    if (!g_task_propagate_boolean(G_TASK(res), &err)) {
        if (g_error_matches(err, QUBES_ERROR, QUBES_ERROR_VM_NOT_STARTED)) {
            g_clear_error(&err);
            g_set_error(&err, QUBES_ERROR, QUBES_ERROR_VM_NOT_STARTED,
                        "Domain is powered off: '%s'", k->dom->name);
        }
        drop_stop_waiter(k->rt, k->dom, k->waiter, err);
        g_error_free(err);
    }
    kill_unref(k);
}

static void kill_stopped(GObject *src, GAsyncResult *res, gpointer data)
{
    KillJob *k = data;
    GError *err = NULL;
    if (!g_task_propagate_boolean(G_TASK(res), &err))
        g_task_return_error(k->task, err);
    else
        g_task_return_boolean(k->task, TRUE);
    g_object_unref(k->task);
    kill_unref(k);
}

void qubes_runtime_kill(QubesRuntime *rt, QubesDomain *dom,
                        GAsyncReadyCallback cb, gpointer data)
{
    GTask *task = g_task_new(NULL, NULL, cb, data);
    if (refused_halted(task, dom, QUBES_ERROR_VM_NOT_STARTED, POWERED_OFF))
        return;
    KillJob *k = g_new0(KillJob, 1);
    k->rt = rt;
    k->dom = qubes_domain_ref(dom);
    k->task = task;
    k->refs = 1;
    k->waiter = add_stop_waiter(rt, dom, kill_stopped, k);
    if (dom->power == QUBES_POWER_DYING)
        return; /* the stop in progress completes it */
    k->refs++;
    run_op(rt, OP_DESTROY, dom, NULL, kill_destroyed, k);
}

/* Pause, unpause, suspend and resume: one libvirt call, then the state. */
typedef struct {
    QubesDomain *dom;
    GTask *task;
    QubesPowerState after;
} SimpleJob;

static void simple_done(GObject *src, GAsyncResult *res, gpointer data)
{
    SimpleJob *s = data;
    GError *err = NULL;
    if (!g_task_propagate_boolean(G_TASK(res), &err)) {
        if (g_error_matches(err, QUBES_ERROR, QUBES_ERROR_VM_NOT_STARTED)) {
            g_clear_error(&err);
            g_set_error(&err, QUBES_ERROR, QUBES_ERROR_VM_NOT_RUNNING,
                        "Domain not running (either powered off or paused): "
                        "'%s'",
                        s->dom->name);
        }
        g_task_return_error(s->task, err);
    } else {
        if (s->dom->power != QUBES_POWER_HALTED &&
            s->dom->power != QUBES_POWER_DYING)
            s->dom->power = s->after;
        g_task_return_boolean(s->task, TRUE);
    }
    g_object_unref(s->task);
    qubes_domain_unref(s->dom);
    g_free(s);
}

static void simple_op(QubesRuntime *rt, QubesDomain *dom, OpKind kind,
                      QubesPowerState after, GTask *task)
{
    SimpleJob *s = g_new0(SimpleJob, 1);
    s->dom = qubes_domain_ref(dom);
    s->task = task;
    s->after = after;
    run_op(rt, kind, dom, NULL, simple_done, s);
}

void qubes_runtime_pause(QubesRuntime *rt, QubesDomain *dom,
                         GAsyncReadyCallback cb, gpointer data)
{
    GTask *task = g_task_new(NULL, NULL, cb, data);
    if (refused_halted(task, dom, QUBES_ERROR_VM_NOT_RUNNING, NOT_RUNNING))
        return;
    simple_op(rt, dom, OP_SUSPEND, QUBES_POWER_PAUSED, task);
}

void qubes_runtime_unpause(QubesRuntime *rt, QubesDomain *dom,
                           GAsyncReadyCallback cb, gpointer data)
{
    GTask *task = g_task_new(NULL, NULL, cb, data);
    if (dom->power != QUBES_POWER_PAUSED) {
        refuse(task, QUBES_ERROR_VM_NOT_PAUSED, "Domain is not paused: '%s'",
               dom->name);
        return;
    }
    simple_op(rt, dom, OP_RESUME, QUBES_POWER_RUNNING, task);
}

/* Without PCI devices attached the reference's suspend is a pause
 * (libvirt suspend), with the same refusal; with them it is ACPI S3. A
 * PCI device is attached only on a host with an IOMMU, where this has
 * not been run: every suspend is a pause here. */
void qubes_runtime_suspend(QubesRuntime *rt, QubesDomain *dom,
                           GAsyncReadyCallback cb, gpointer data)
{
    qubes_runtime_pause(rt, dom, cb, data);
}

void qubes_runtime_resume(QubesRuntime *rt, QubesDomain *dom,
                          GAsyncReadyCallback cb, gpointer data)
{
    if (dom->power == QUBES_POWER_SUSPENDED) {
        GTask *task = g_task_new(NULL, NULL, cb, data);
        simple_op(rt, dom, OP_PM_WAKEUP, QUBES_POWER_RUNNING, task);
        return;
    }
    qubes_runtime_unpause(rt, dom, cb, data);
}

/* ---- queries ---- */

static void info_done(GObject *src, GAsyncResult *res, gpointer data)
{
    GTask *task = data;
    GError *err = NULL;
    if (!g_task_propagate_boolean(G_TASK(res), &err)) {
        g_task_return_error(task, err);
    } else {
        QubesDomainInfo *info = g_new(QubesDomainInfo, 1);
        *info = op_of(res)->info;
        g_task_return_pointer(task, info, g_free);
    }
    g_object_unref(task);
}

void qubes_runtime_info(QubesRuntime *rt, QubesDomain *dom,
                        GAsyncReadyCallback cb, gpointer data)
{
    GTask *task = g_task_new(NULL, NULL, cb, data);
    run_op(rt, OP_INFO, dom, NULL, info_done, task);
}

gboolean qubes_runtime_info_finish(GAsyncResult *res, QubesDomainInfo *info,
                                   GError **error)
{
    g_autofree QubesDomainInfo *i =
        g_task_propagate_pointer(G_TASK(res), error);
    if (!i)
        return FALSE;
    *info = *i;
    return TRUE;
}

static void console_done(GObject *src, GAsyncResult *res, gpointer data)
{
    GTask *task = data;
    GError *err = NULL;
    if (!g_task_propagate_boolean(G_TASK(res), &err))
        g_task_return_error(task, err);
    else
        g_task_return_pointer(task, g_strdup(op_of(res)->tty), g_free);
    g_object_unref(task);
}

void qubes_runtime_console(QubesRuntime *rt, QubesDomain *dom,
                           GAsyncReadyCallback cb, gpointer data)
{
    GTask *task = g_task_new(NULL, NULL, cb, data);
    if (refused_halted(task, dom, QUBES_ERROR_VM_NOT_RUNNING, NOT_RUNNING))
        return;
    if (dom->power == QUBES_POWER_PAUSED) {
        refuse(task, QUBES_ERROR_VM_NOT_RUNNING, "%s '%s'", NOT_RUNNING,
               dom->name);
        return;
    }
    run_op(rt, OP_CONSOLE, dom, NULL, console_done, task);
}

char *qubes_runtime_console_finish(GAsyncResult *res, GError **error)
{
    return g_task_propagate_pointer(G_TASK(res), error);
}

/* ---- statistics (admin.vm.Stats) ---- */

typedef struct {
    QubesRuntime *rt;
    GArray *raw; /* RawStat */
} StatsJob;

typedef struct {
    char uuid[VIR_UUID_STRING_BUFLEN];
    int id;
    QubesDomainStat stat;
} RawStat;

static void stats_job_free(StatsJob *j)
{
    rt_unref(j->rt);
    g_array_unref(j->raw);
    g_free(j);
}

/* One virConnectGetAllDomainStats for every running domain: the balloon's
 * current size, the CPU time of all vCPUs, their number. */
static void stats_thread(GTask *task, gpointer src, gpointer data,
                         GCancellable *cancel)
{
    StatsJob *j = data;
    GError *err = NULL;
    virConnectPtr c = conn_get(j->rt, &err);
    if (!c) {
        g_task_return_error(task, err);
        return;
    }
    virDomainStatsRecordPtr *recs = NULL;
    int n = virConnectGetAllDomainStats(
        c,
        VIR_DOMAIN_STATS_CPU_TOTAL | VIR_DOMAIN_STATS_BALLOON |
            VIR_DOMAIN_STATS_VCPU,
        &recs, VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE);
    if (n < 0) {
        set_virt_error(&err, QUBES_ERROR_EXCEPTION, NULL);
        virConnectClose(c);
        g_task_return_error(task, err);
        return;
    }
    for (int i = 0; i < n; i++) {
        RawStat r = {0};
        if (virDomainGetUUIDString(recs[i]->dom, r.uuid) < 0)
            continue;
        r.id = virDomainGetID(recs[i]->dom);
        unsigned long long ull = 0;
        unsigned int ui = 0;
        if (virTypedParamsGetULLong(recs[i]->params, recs[i]->nparams,
                                    "balloon.current", &ull) == 1)
            r.stat.memory_kb = ull;
        if (virTypedParamsGetULLong(recs[i]->params, recs[i]->nparams,
                                    "cpu.time", &ull) == 1)
            r.stat.cpu_time_ns = ull;
        if (virTypedParamsGetUInt(recs[i]->params, recs[i]->nparams,
                                  "vcpu.current", &ui) == 1)
            r.stat.vcpus = ui;
        g_array_append_val(j->raw, r);
    }
    virDomainStatsRecordListFree(recs);
    virConnectClose(c);
    g_task_return_boolean(task, TRUE);
}

void qubes_runtime_stats(QubesRuntime *rt, GAsyncReadyCallback cb,
                         gpointer data)
{
    StatsJob *j = g_new0(StatsJob, 1);
    j->rt = rt_ref(rt);
    j->raw = g_array_new(FALSE, TRUE, sizeof(RawStat));
    run_in_worker(stats_thread, j, (GDestroyNotify)stats_job_free, cb, data);
}

GPtrArray *qubes_runtime_stats_finish(QubesRuntime *rt, GAsyncResult *res,
                                      GError **error)
{
    if (!g_task_propagate_boolean(G_TASK(res), error))
        return NULL;
    StatsJob *j = g_task_get_task_data(G_TASK(res));
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i < j->raw->len; i++) {
        RawStat *r = &g_array_index(j->raw, RawStat, i);
        /* Xen's Domain-0 is dom0; a domain qubesd does not know (a
         * stubdomain, another tool's) is left out, as the reference's. */
        QubesDomain *d = r->id == 0 && rt->cfg.hv == QUBES_HV_XEN
                             ? g_hash_table_lookup(rt->app->by_name, "dom0")
                             : find_by_uuid(rt, r->uuid);
        if (!d)
            continue;
        QubesDomainStat *s = g_memdup2(&r->stat, sizeof(r->stat));
        s->dom = d;
        g_ptr_array_add(out, s);
    }
    return out;
}

/* ---- autostart ----
 *
 * Once per boot (the first qubesd after it: a marker in /run, which a
 * boot empties), when the runtime first knows which qubes run, the qubes
 * whose autostart is True are started, one after the other in qid order
 * (a netvm is started first by its client's start anyway); a failure is
 * logged and the next goes on. The marker is written when all were
 * tried: a qubesd that dies in the middle leaves it absent, and the next
 * one starts those still halted.
 *
 * On Xen, as the seed asks, not before dom0 reported its memory use to
 * qmemmand (else dom0 holds all it had at boot and the qubes do not get
 * it): qubesd waits, up to a minute, until qmemmand's state shows dom0's
 * use (its status socket). Without qmemmand it does not wait. On
 * QEMU/KVM the host is not balanced: no wait. */

typedef struct {
    QubesRuntime *rt;
    GPtrArray *doms; /* QubesDomain refs, in order */
    guint next;
} Autostart;

static void autostart_next(Autostart *a);

static void autostart_free(Autostart *a)
{
    if (a->rt->doms && a->rt->cfg.autostart_marker) {
        g_autoptr(GError) err = NULL;
        g_autofree char *dir = g_path_get_dirname(a->rt->cfg.autostart_marker);
        g_mkdir_with_parents(dir, 0755);
        /* /run is a tmpfs: nothing to make durable, it goes at boot */
        if (!g_file_set_contents(a->rt->cfg.autostart_marker, "", 0, &err))
            g_warning("autostart: %s", err->message);
    }
    g_ptr_array_unref(a->doms);
    rt_unref(a->rt);
    g_free(a);
}

static void autostart_done(GObject *src, GAsyncResult *res, gpointer data)
{
    Autostart *a = data;
    QubesDomain *dom = a->doms->pdata[a->next - 1];
    g_autoptr(GError) err = NULL;
    if (!qubes_runtime_op_finish(res, &err))
        g_warning("%s: autostart failed: %s", dom->name, err->message);
    else
        g_message("%s: autostarted", dom->name);
    autostart_next(a);
}

static void autostart_next(Autostart *a)
{
    QubesRuntime *rt = a->rt;
    while (rt->doms && a->next < a->doms->len) {
        QubesDomain *dom = a->doms->pdata[a->next++];
        if (dom->power != QUBES_POWER_HALTED || dom->removed)
            continue;
        qubes_runtime_start(rt, dom, autostart_done, a);
        return;
    }
    autostart_free(a);
}

/* Whether qmemmand's state (its status socket at @path) shows dom0's
 * use; FALSE with @absent set when qmemmand does not answer. */
static gboolean dom0_reported(const char *path, gboolean *absent)
{
    g_autofree char *text = qm_status_ask(path, "state", 30, NULL);
    *absent = text == NULL;
    if (!text)
        return FALSE;
    g_autoptr(JsonParser) p = json_parser_new();
    if (!json_parser_load_from_data(p, text, -1, NULL) ||
        !JSON_NODE_HOLDS_OBJECT(json_parser_get_root(p)))
        return FALSE;
    JsonObject *state = json_node_get_object(json_parser_get_root(p));
    JsonArray *doms = json_object_has_member(state, "domains")
                          ? json_object_get_array_member(state, "domains")
                          : NULL;
    for (guint i = 0; doms && i < json_array_get_length(doms); i++) {
        JsonNode *node = json_array_get_element(doms, i);
        if (!JSON_NODE_HOLDS_OBJECT(node))
            continue;
        JsonObject *d = json_node_get_object(node);
        JsonNode *used = json_object_get_member(d, "mem_used");
        if (g_strcmp0(json_object_get_string_member_with_default(d, "id", ""),
                      "0") == 0)
            return used && JSON_NODE_HOLDS_VALUE(used);
    }
    return FALSE;
}

/* On a worker: until qmemmand's state shows dom0's use (or a minute
 * went, or qmemmand is not there). */
static void wait_dom0_reported(GTask *task, gpointer src, gpointer data,
                               GCancellable *c)
{
    const char *path = data;
    for (int i = 0; i < 60; i++, g_usleep(G_USEC_PER_SEC)) {
        gboolean absent;
        if (dom0_reported(path, &absent)) {
            g_message("autostart: dom0 reported its memory use to qmemmand");
            break;
        }
        if (absent) {
            g_message("autostart: qmemmand does not answer at %s: not "
                      "waiting for dom0's memory report",
                      path);
            break;
        }
        if (i == 59)
            g_warning("autostart: dom0 did not report its memory use to "
                      "qmemmand within a minute; starting anyway");
    }
    g_task_return_boolean(task, TRUE);
}

static void autostart_waited(GObject *src, GAsyncResult *res, gpointer data)
{
    autostart_next(data);
}

static gint by_qid(gconstpointer a, gconstpointer b)
{
    const QubesDomain *x = *(QubesDomain *const *)a;
    const QubesDomain *y = *(QubesDomain *const *)b;
    return (x->qid > y->qid) - (x->qid < y->qid);
}

static gboolean autostart_begin(gpointer data)
{
    QubesRuntime *rt = data;
    const char *marker = rt->cfg.autostart_marker;
    if (!rt->doms || !marker || g_file_test(marker, G_FILE_TEST_EXISTS)) {
        rt_unref(rt);
        return G_SOURCE_REMOVE;
    }
    Autostart *a = g_new0(Autostart, 1);
    a->rt = rt; /* the idle's reference, now the job's */
    a->doms =
        g_ptr_array_new_with_free_func((GDestroyNotify)qubes_domain_unref);
    for (guint i = 0; i < rt->app->domains->len; i++) {
        QubesDomain *d = rt->app->domains->pdata[i];
        if (!d || d->qid == 0 || strcmp(d->klass->name, "RemoteVM") == 0)
            continue;
        g_autofree char *v = qubes_domain_prop(d, "autostart");
        if (g_strcmp0(v, "True") == 0)
            g_ptr_array_add(a->doms, qubes_domain_ref(d));
    }
    g_ptr_array_sort(a->doms, by_qid);
    if (a->doms->len && rt->cfg.hv == QUBES_HV_XEN &&
        rt->cfg.qmemman_status_socket) {
        GTask *t = g_task_new(NULL, NULL, autostart_waited, a);
        g_task_set_task_data(t, g_strdup(rt->cfg.qmemman_status_socket),
                             g_free);
        g_task_run_in_thread(t, wait_dom0_reported);
        g_object_unref(t);
    } else {
        autostart_next(a);
    }
    return G_SOURCE_REMOVE;
}

QubesPreload *qubes_runtime_preload(QubesRuntime *rt)
{
    return rt ? rt->preload : NULL;
}
