/* vm-query.c: what the hypervisor says of running qubes (vm-query.h). */
#include "vm-query.h"

#include "libvirt-ops.h"

static void info_done(GObject *src, GAsyncResult *res, gpointer data)
{
    GTask *task = data;
    GError *err = NULL;
    if (!g_task_propagate_boolean(G_TASK(res), &err)) {
        g_task_return_error(task, err);
    } else {
        QubesDomainInfo *info = g_new(QubesDomainInfo, 1);
        Op *op = rt_op_of(res);
        info->mem = op->mem;
        info->mem_static_max = op->maxmem;
        info->cputime = op->cputime;
        g_task_return_pointer(task, info, g_free);
    }
    g_object_unref(task);
}

void qubes_runtime_info(QubesRuntime *rt, QubesDomain *dom,
                        GAsyncReadyCallback cb, gpointer data)
{
    GTask *task = g_task_new(NULL, NULL, cb, data);
    rt_run_op(rt, OP_INFO, dom, NULL, info_done, task);
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
        g_task_return_pointer(task, g_strdup(rt_op_of(res)->tty), g_free);
    g_object_unref(task);
}

void qubes_runtime_console(QubesRuntime *rt, QubesDomain *dom,
                           GAsyncReadyCallback cb, gpointer data)
{
    GTask *task = g_task_new(NULL, NULL, cb, data);
    if (rt_refused_halted(task, dom, QUBES_ERROR_VM_NOT_RUNNING,
                          RT_NOT_RUNNING))
        return;
    if (dom->power == QUBES_POWER_PAUSED) {
        rt_refuse(task, QUBES_ERROR_VM_NOT_RUNNING, "%s '%s'", RT_NOT_RUNNING,
                  dom->name);
        return;
    }
    rt_run_op(rt, OP_CONSOLE, dom, NULL, console_done, task);
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
    virConnectPtr c = rt_conn_get(j->rt, &err);
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
        rt_set_virt_error(&err, QUBES_ERROR_EXCEPTION, NULL);
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
    rt_run_in_worker(stats_thread, j, (GDestroyNotify)stats_job_free, cb, data);
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
                             : rt_find_by_uuid(rt, r->uuid);
        if (!d)
            continue;
        QubesDomainStat *s = g_memdup2(&r->stat, sizeof(r->stat));
        s->dom = d;
        g_ptr_array_add(out, s);
    }
    return out;
}
