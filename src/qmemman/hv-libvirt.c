/* hv-libvirt.c: qmemmand's hypervisor for domains under libvirt with a
 * virtio balloon (QEMU/KVM).
 *
 * Each domain's size and use come from its balloon statistics, all
 * domains in one virConnectGetAllDomainStats() call: current and maximum,
 * and used = available - unused - disk caches (what the reference's
 * meminfo-writer reports), less what the balloon holds when the guest's
 * MemTotal keeps it (autodeflate). Targets are set live with
 * virDomainSetMemoryFlags(), never above the domain's maximum. The host
 * is what dom0 is on Xen, but not balanced: its free memory is
 * MemAvailable less the reserve, and with a total limit the domains
 * together never get more than that.
 */
#include "hv.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <string.h>

typedef struct {
    QmHv hv;
    char *uri;
    virConnectPtr conn;
    gint64 reserve;
    gint64 total_limit;
    gint64 guests_current; /* sum of balloon.current, last refresh */
} Lv;

static void ignore_error(void *data, virErrorPtr e)
{
}

static virConnectPtr conn_get(Lv *lv)
{
    if (lv->conn && virConnectIsAlive(lv->conn) == 1)
        return lv->conn;
    if (lv->conn) {
        virConnectClose(lv->conn);
        lv->conn = NULL;
    }
    lv->conn = virConnectOpen(lv->uri);
    if (!lv->conn)
        g_warning("cannot connect to %s: %s", lv->uri,
                  virGetLastErrorMessage());
    return lv->conn;
}

/* A field of the host's /proc/meminfo ("MemAvailable:"), bytes; 0 when
 * it cannot be read. */
static gint64 host_meminfo(const char *field)
{
    g_autofree char *meminfo = NULL;
    if (!g_file_get_contents("/proc/meminfo", &meminfo, NULL, NULL))
        return 0;
    const char *a = strstr(meminfo, field);
    return a ? (gint64)g_ascii_strtoull(a + strlen(field), NULL, 10) * 1024 : 0;
}

static gint64 lv_free_mem(gpointer self)
{
    Lv *lv = self;
    gint64 free = host_meminfo("MemAvailable:") - lv->reserve;
    if (lv->total_limit)
        free = MIN(free, lv->total_limit - lv->guests_current);
    return free;
}

typedef struct {
    QmSeen seen;
    gint64 current, maximum; /* bytes */
} Stat;

static void stat_free(gpointer p)
{
    g_free(((Stat *)p)->seen.id);
    g_free(p);
}

/* Every running domain's balloon, in one call; NULL when libvirt cannot
 * be read. */
static GPtrArray *poll_stats(Lv *lv)
{
    virConnectPtr c = conn_get(lv);
    if (!c)
        return NULL;
    virDomainStatsRecordPtr *recs = NULL;
    int n =
        virConnectGetAllDomainStats(c, VIR_DOMAIN_STATS_BALLOON, &recs,
                                    VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE);
    if (n < 0) {
        g_warning("cannot read the domains' balloons: %s",
                  virGetLastErrorMessage());
        return NULL;
    }
    GPtrArray *out = g_ptr_array_new_with_free_func(stat_free);
    for (int i = 0; i < n; i++) {
        virTypedParameterPtr p = recs[i]->params;
        int np = recs[i]->nparams;
        unsigned long long cur = 0, max = 0, avail = 0, unused = 0, caches = 0;
        if (virTypedParamsGetULLong(p, np, "balloon.current", &cur) != 1 ||
            virTypedParamsGetULLong(p, np, "balloon.maximum", &max) != 1)
            continue;
        Stat *s = g_new0(Stat, 1);
        s->seen.id = g_strdup(virDomainGetName(recs[i]->dom));
        s->current = (gint64)cur * 1024;
        s->maximum = (gint64)max * 1024;
        s->seen.used = -1;
        if (virTypedParamsGetULLong(p, np, "balloon.available", &avail) == 1 &&
            virTypedParamsGetULLong(p, np, "balloon.unused", &unused) == 1) {
            virTypedParamsGetULLong(p, np, "balloon.disk_caches", &caches);
            long long ballooned = avail > cur && max > cur ? max - cur : 0;
            long long used = (long long)avail - (long long)unused -
                             (long long)caches - ballooned;
            /* a guest using next to nothing can come out a little below 0
             * (its reserved pages move between the figures) */
            s->seen.used = (gint64)MAX(used, 0) * 1024;
        }
        g_ptr_array_add(out, s);
    }
    virDomainStatsRecordListFree(recs);
    return out;
}

static GPtrArray *lv_list(QmHv *hv)
{
    /* a Stat begins with its QmSeen: the array serves as one of QmSeen */
    return poll_stats((Lv *)hv);
}

static void lv_refresh(gpointer self, QmSystem *sys)
{
    Lv *lv = self;
    g_autoptr(GPtrArray) stats = poll_stats(lv);
    if (!stats)
        return;
    lv->guests_current = 0;
    for (guint i = 0; i < stats->len; i++) {
        Stat *s = stats->pdata[i];
        lv->guests_current += s->current;
        QmDom *q = qm_system_dom(sys, s->seen.id);
        if (!q)
            continue;
        q->mem_current = s->current;
        q->mem_max = s->maximum;
        q->unseen = FALSE;
    }
}

static void lv_set_target(gpointer self, const char *id, gint64 bytes)
{
    Lv *lv = self;
    virConnectPtr c = conn_get(lv);
    virDomainPtr dom = c ? virDomainLookupByName(c, id) : NULL;
    if (!dom)
        return; /* going away in the middle, as the reference allows */
    QmDom *q = lv->hv.sys ? qm_system_dom(lv->hv.sys, id) : NULL;
    gint64 kib = bytes / 1024;
    if (q && q->mem_max && kib > q->mem_max / 1024)
        kib = q->mem_max / 1024; /* never above the domain's memory */
    if (kib > 0 && virDomainSetMemoryFlags(dom, (unsigned long)kib,
                                           VIR_DOMAIN_AFFECT_LIVE) < 0)
        g_warning("%s: cannot set its balloon to %" G_GINT64_FORMAT " KiB: %s",
                  id, kib, virGetLastErrorMessage());
    virDomainFree(dom);
}

static void lv_sleep(gpointer self, double seconds)
{
    g_usleep((gulong)(seconds * G_USEC_PER_SEC));
}

/* libvirt has no event for a balloon's statistics: poll. */
static void lv_wait(QmHv *hv, double seconds)
{
    lv_sleep(hv, seconds);
}

/* A domain's name, or its libvirt id (what the reference's clients send:
 * a number). */
static char *lv_resolve(QmHv *hv, const char *untrusted_key)
{
    Lv *lv = (Lv *)hv;
    if (qm_system_dom(hv->sys, untrusted_key))
        return g_strdup(untrusted_key);
    guint64 id;
    virConnectPtr c = conn_get(lv);
    if (!c || !g_ascii_string_to_unsigned(untrusted_key, 10, 0, G_MAXINT32, &id,
                                          NULL))
        return NULL;
    virDomainPtr dom = virDomainLookupByID(c, (int)id);
    if (!dom)
        return NULL;
    char *name = g_strdup(virDomainGetName(dom));
    virDomainFree(dom);
    return name;
}

static gint64 lv_total_mem(QmHv *hv)
{
    Lv *lv = (Lv *)hv;
    gint64 total = host_meminfo("MemTotal:") - lv->reserve;
    return lv->total_limit ? MIN(total, lv->total_limit) : total;
}

static void lv_free(QmHv *hv)
{
    Lv *lv = (Lv *)hv;
    if (lv->conn)
        virConnectClose(lv->conn);
    g_free(lv->uri);
    g_free(lv);
}

QmHv *qm_hv_libvirt_new(const char *uri, gint64 reserve, gint64 total_limit)
{
    virSetErrorFunc(NULL, ignore_error);
    Lv *lv = g_new0(Lv, 1);
    lv->uri = g_strdup(uri);
    lv->reserve = reserve;
    lv->total_limit = total_limit;
    lv->hv.name = "libvirt";
    lv->hv.add_when_reported = TRUE;
    lv->hv.be =
        (QmBackend){lv_free_mem, lv_refresh, lv_set_target, lv_sleep, lv};
    lv->hv.list = lv_list;
    lv->hv.wait = lv_wait;
    lv->hv.resolve = lv_resolve;
    lv->hv.total_mem = lv_total_mem;
    lv->hv.free = lv_free;
    return &lv->hv;
}
