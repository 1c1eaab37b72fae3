/* connection.c: the runtime's connection to libvirt and its events
 * (connection.h). */
#include "connection.h"

#include "autostart.h"
#include "firewall-run.h"
#include "hotplug.h"
#include "net-links.h"
#include "pci-run.h"
#include "preload-run.h"
#include "vm-stop.h"

#include <libvirt/virterror.h>
#include <string.h>

static int on_lifecycle(virConnectPtr conn, virDomainPtr vdom, int event,
                        int detail, void *opaque)
{
    QubesRuntime *rt = opaque;
    char uuid[VIR_UUID_STRING_BUFLEN];
    if (virDomainGetUUIDString(vdom, uuid) < 0)
        return 0;
    QubesDomain *dom = rt_find_by_uuid(rt, uuid);
    if (!dom)
        return 0; /* not a qube */
    DomRt *r = g_hash_table_lookup(rt->doms, dom);
    gboolean starting = r && r->starting;
    switch (event) {
    case VIR_DOMAIN_EVENT_STOPPED:
        rt_domain_gone(rt, dom);
        break;
    case VIR_DOMAIN_EVENT_SUSPENDED:
        if (!starting && dom->power != QUBES_POWER_HALTED)
            dom->power = QUBES_POWER_PAUSED;
        rt_fire(dom, "domain-paused", NULL);
        break;
    case VIR_DOMAIN_EVENT_RESUMED:
        if (!starting && dom->power != QUBES_POWER_HALTED)
            dom->power = QUBES_POWER_RUNNING;
        rt_fire(dom, "domain-unpaused", NULL);
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
            QubesDomain *dom = rt_find_by_uuid(rt, uuid);
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
                    if (xml) {
                        rt_blocks_adopt(rt, dom, xml);
                        rt_pcis_adopt(rt, dom, xml);
                    }
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
    while (rt_uses_links(rt) && g_hash_table_iter_next(&it, &k, NULL)) {
        QubesDomain *net = qubes_domain_get_netvm(k);
        if (net && net->qid && g_hash_table_contains(alive, net) &&
            !g_hash_table_contains(rt->links, k))
            rt_link_remember(rt, k, net);
    }
    g_autoptr(GPtrArray) leftover =
        g_ptr_array_new_with_free_func((GDestroyNotify)qubes_domain_unref);
    for (guint i = 0; i < rt->app->domains->len; i++) {
        QubesDomain *d = rt->app->domains->pdata[i];
        if (d && !rt->settled && d->power == QUBES_POWER_HALTED &&
            !g_hash_table_contains(alive, d) && rt_auto_cleanup_due(d))
            g_ptr_array_add(leftover, qubes_domain_ref(d));
        if (!d || d->qid == 0 || g_hash_table_contains(alive, d) ||
            strcmp(d->klass->name, "RemoteVM") == 0)
            continue;
        if (d->power != QUBES_POWER_HALTED)
            rt_domain_gone(rt, d);
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
    if (!rt->settled && rt_uses_links(rt))
        rt_nf_reset(rt, alive);
    if (!rt->settled) {
        g_idle_add(preload_begin, rt_ref(rt));
        g_idle_add(rt_autostart_begin, rt_ref(rt));
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

void rt_connection_open(QubesRuntime *rt)
{
    if (!connect_now(rt))
        rt->retry_source = g_timeout_add_seconds(2, try_connect, rt);
}

void rt_connection_close(QubesRuntime *rt)
{
    if (rt->retry_source)
        g_source_remove(rt->retry_source);
    rt->retry_source = 0;
    if (rt->drop_source)
        g_source_remove(rt->drop_source);
    rt->drop_source = 0;
    if (rt->conn) {
        virConnectDomainEventDeregisterAny(rt->conn, rt->lifecycle_id);
        virConnectUnregisterCloseCallback(rt->conn, on_close);
        virConnectClose(rt->conn);
        rt->conn = NULL;
    }
}
