/* net-links.c: bridges and links between qubes on QEMU, and a netvm
 * change on a running qube (net-links.h). */
#include "net-links.h"

#include "firewall-run.h"
#include "libvirt-ops.h"

#include <stdio.h>
#include <string.h>

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

void rt_run_bridge(QubesDomain *dom, gboolean add, GAsyncReadyCallback cb,
                   gpointer data)
{
    BridgeJob *b = g_new0(BridgeJob, 1);
    b->name = bridge_name(dom);
    b->add = add;
    rt_run_in_worker(bridge_thread, b, (GDestroyNotify)bridge_job_free, cb,
                     data);
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

void rt_link_done(GObject *src, GAsyncResult *res, gpointer data)
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

void rt_link_remember(QubesRuntime *rt, QubesDomain *client, QubesDomain *netvm)
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
void rt_link_connect(QubesRuntime *rt, QubesDomain *client, QubesDomain *netvm)
{
    if (!rt_uses_links(rt) || !netvm || netvm->qid == 0 || !rt_is_up(netvm) ||
        !rt_is_up(client))
        return;
    rt_link_remember(rt, client, netvm);
    rt_run_op(rt, OP_ATTACH_NIC, netvm, netvm_nic_xml(client), rt_link_done,
              g_strdup_printf("%s: plugging its link into its netvm %s",
                              client->name, netvm->name));
}

/* Unplugs @client's link from the netvm it is plugged into, if any. */
void rt_link_disconnect(QubesRuntime *rt, QubesDomain *client)
{
    Link *l = g_hash_table_lookup(rt->links, client);
    if (!l)
        return;
    if (rt_is_up(l->netvm))
        rt_run_op(rt, OP_DETACH_NIC, l->netvm, g_strdup(l->nic_xml),
                  rt_link_done,
                  g_strdup_printf("%s: unplugging its link from %s",
                                  client->name, l->netvm->name));
    g_hash_table_remove(rt->links, client);
}

/* A netvm just started: its running clients are connected. */
void rt_link_clients(QubesRuntime *rt, QubesDomain *netvm)
{
    if (!rt_uses_links(rt))
        return;
    g_autoptr(GPtrArray) clients = qubes_domain_connected_vms(netvm);
    for (guint i = 0; i < clients->len; i++)
        rt_link_connect(rt, clients->pdata[i], netvm);
}

/* A netvm stopped: the links plugged into it went with it. */
void rt_links_gone_with(QubesRuntime *rt, QubesDomain *netvm)
{
    GHashTableIter it;
    gpointer v;
    g_hash_table_iter_init(&it, rt->links);
    while (g_hash_table_iter_next(&it, NULL, &v))
        if (((Link *)v)->netvm == netvm)
            g_hash_table_iter_remove(&it);
}

/* A netvm change on a running qube (the reference's net.py).
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
    if (!rt_is_up(self) || !net || rt_is_up(net))
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
    if (!rt_uses_links(rt) || !rt_is_up(self) || linked_netvm(rt, self) == now)
        return TRUE;
    /* its DNS servers follow the netvm */
    if (rt_nf_guarded(rt, self))
        rt_nf_apply(rt, self, NULL, NULL);
    rt_link_disconnect(rt, self);
    if (now && rt_is_up(now)) {
        rt_link_connect(rt, self, now);
        rt_fire(now, "net-domain-connect", "vm", self->name, NULL);
    }
    return TRUE;
}

void rt_net_links_start(QubesRuntime *rt)
{
    rt->links =
        g_hash_table_new_full(NULL, NULL, (GDestroyNotify)qubes_domain_unref,
                              (GDestroyNotify)link_free);
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
}

void rt_net_links_finish(QubesRuntime *rt)
{
    g_hash_table_unref(rt->links);
    rt->links = NULL;
}
