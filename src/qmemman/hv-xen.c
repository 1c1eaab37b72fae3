/* hv-xen.c: qmemmand's hypervisor on Xen, as the reference's
 * systemstate.py and XSWatcher read and write it (xen-ops.h):
 *
 *  - free memory: physinfo's free_memory (KiB) x 1024 x MEM_OVERHEAD_FACTOR;
 *  - a domain's current memory: domain_getinfo's mem_kb x 1024; its
 *    maximum: memory/hotplug-max (then targets also move static-max), else
 *    memory/static-max, else all the host's assignable memory (dom0);
 *  - the domains: /local/domain/ID that have a domid key; a new one's
 *    target from memory/target; its use: the text it wrote in
 *    memory/meminfo (untrusted, parsed by the algorithm's
 *    sanitize_and_parse_meminfo);
 *  - a target: setmaxmem(target + LIBXL_MAXMEM_CONSTANT), set_target_mem,
 *    and memory/target 16 MiB lower (the guest sees that much less than
 *    Xen counts; the seed's margin), KiB on the wire.
 */
#include "hv-xen.h"

#include <string.h>

typedef struct {
    QmHv hv;
    QmXenOps *ops;
    gint64 all_phys_mem;
    GHashTable *hotplug; /* domid -> domid: uses memory hotplug */
} Xen;

static char *key(const char *domid, const char *name)
{
    return g_strdup_printf("/local/domain/%s/memory/%s", domid, name);
}

/* A number written by the toolstack (KiB, decimal); -1 when absent or
 * not a number. */
static gint64 read_kib(Xen *x, const char *domid, const char *name)
{
    g_autofree char *path = key(domid, name);
    g_autofree char *v = x->ops->read(x->ops->self, path);
    gint64 n;
    if (!v || !*v ||
        !g_ascii_string_to_signed(v, 10, 0, G_MAXINT64 / 1024, &n, NULL))
        return -1;
    return n;
}

static gint64 xen_free_mem(gpointer self)
{
    Xen *x = self;
    gint64 total, free;
    if (!x->ops->physinfo(x->ops->self, &total, &free)) {
        g_warning("cannot read Xen's physinfo");
        return 0;
    }
    return qm_all_phys_mem(free * 1024);
}

static void xen_refresh(gpointer self, QmSystem *sys)
{
    Xen *x = self;
    g_autoptr(GArray) doms = x->ops->domains(x->ops->self);
    if (!doms) {
        g_warning("cannot list Xen's domains");
        return;
    }
    for (guint i = 0; i < doms->len; i++) {
        const QmXenDomInfo *info = &g_array_index(doms, QmXenDomInfo, i);
        char domid[16];
        g_snprintf(domid, sizeof domid, "%" G_GUINT32_FORMAT, info->domid);
        QmDom *q = qm_system_dom(sys, domid);
        if (!q)
            continue;
        q->mem_current = info->mem_kb * 1024;
        q->unseen = FALSE;
        gint64 hotplug_max = read_kib(x, domid, "hotplug-max");
        gint64 static_max = read_kib(x, domid, "static-max");
        if (hotplug_max >= 0) {
            q->mem_max = hotplug_max * 1024;
            g_hash_table_add(x->hotplug, g_strdup(domid));
        } else {
            g_hash_table_remove(x->hotplug, domid);
            /* no static-max: dom0 (its maxmem moves with mem_set) */
            q->mem_max = static_max >= 0 ? static_max * 1024 : x->all_phys_mem;
        }
    }
}

static void xen_set_target(gpointer self, const char *id, gint64 bytes)
{
    Xen *x = self;
    guint64 domid;
    if (!g_ascii_string_to_unsigned(id, 10, 0, G_MAXUINT32, &domid, NULL))
        return;
    /* int(val / 1024): float division truncated toward zero */
    gint64 kib = (gint64)((double)bytes / 1024);
    /* errors: a domain in the middle of its shutdown, as the reference
     * lets them pass */
    if (!x->ops->setmaxmem(x->ops->self, (guint32)domid, kib + 1024) ||
        !x->ops->set_target_mem(x->ops->self, (guint32)domid, kib))
        g_debug("dom %s: cannot set its memory to %" G_GINT64_FORMAT " KiB", id,
                kib);
    char value[32];
    g_autofree char *target = key(id, "target");
    g_snprintf(value, sizeof value, "%" G_GINT64_FORMAT,
               (gint64)((double)bytes / 1024 - 16 * 1024));
    x->ops->write(x->ops->self, target, value);
    if (g_hash_table_contains(x->hotplug, id)) {
        g_autofree char *smax = key(id, "static-max");
        g_snprintf(value, sizeof value, "%" G_GINT64_FORMAT, kib);
        x->ops->write(x->ops->self, smax, value);
    }
}

static void xen_sleep(gpointer self, double seconds)
{
    g_usleep((gulong)(seconds * G_USEC_PER_SEC));
}

static GPtrArray *xen_list(QmHv *hv)
{
    Xen *x = (Xen *)hv;
    g_auto(GStrv) ids = x->ops->ls(x->ops->self, "/local/domain");
    if (!ids)
        return NULL;
    GPtrArray *out = g_ptr_array_new_with_free_func(qm_seen_free);
    for (char **id = ids; *id; id++) {
        /* empty directories can be left behind in xenstore */
        g_autofree char *domid_key =
            g_strdup_printf("/local/domain/%s/domid", *id);
        g_autofree char *domid = x->ops->read(x->ops->self, domid_key);
        if (!domid)
            continue;
        QmSeen *s = g_new0(QmSeen, 1);
        s->id = g_strdup(*id);
        s->used = -1;
        gint64 target = read_kib(x, *id, "target");
        s->target = target >= 0 ? target * 1024 : 0;
        g_autofree char *mi = key(*id, "meminfo");
        s->untrusted_meminfo = x->ops->read(x->ops->self, mi);
        if (s->untrusted_meminfo && !*s->untrusted_meminfo)
            g_clear_pointer(&s->untrusted_meminfo, g_free);
        g_ptr_array_add(out, s);
    }
    return out;
}

static void xen_wait(QmHv *hv, double seconds)
{
    Xen *x = (Xen *)hv;
    x->ops->wait(x->ops->self, seconds);
}

static char *xen_resolve(QmHv *hv, const char *untrusted_key)
{
    return qm_system_dom(hv->sys, untrusted_key) ? g_strdup(untrusted_key)
                                                 : NULL;
}

static gint64 xen_total_mem(QmHv *hv)
{
    return ((Xen *)hv)->all_phys_mem;
}

static void xen_free(QmHv *hv)
{
    Xen *x = (Xen *)hv;
    x->ops->close(x->ops->self);
    g_hash_table_unref(x->hotplug);
    g_free(x);
}

QmHv *qm_hv_xen_new(QmXenOps *ops)
{
    Xen *x = g_new0(Xen, 1);
    x->ops = ops;
    x->hotplug = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    gint64 total = 0, free = 0;
    if (ops->physinfo(ops->self, &total, &free))
        x->all_phys_mem = qm_all_phys_mem(total * 1024);
    x->hv.name = "xen";
    x->hv.add_when_reported = FALSE;
    x->hv.be =
        (QmBackend){xen_free_mem, xen_refresh, xen_set_target, xen_sleep, x};
    x->hv.list = xen_list;
    x->hv.wait = xen_wait;
    x->hv.resolve = xen_resolve;
    x->hv.total_mem = xen_total_mem;
    x->hv.free = xen_free;
    return &x->hv;
}
