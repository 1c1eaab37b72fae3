/* runtime.c: the runtime made and freed (runtime.h). */
#include "runtime.h"

#include "connection.h"
#include "firewall-run.h"
#include "net-links.h"
#include "pci-run.h"
#include "preload-run.h"
#include "runtime-state.h"

#include <libvirt-glib/libvirt-glib.h>
#include <libvirt/virterror.h>
#include <unistd.h>

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
    rt->blocks = g_ptr_array_new_with_free_func(
        (GDestroyNotify)rt_block_attachment_free);
    rt->pcis =
        g_ptr_array_new_with_free_func((GDestroyNotify)rt_pci_attachment_free);
    rt->doms =
        g_hash_table_new_full(NULL, NULL, NULL, (GDestroyNotify)rt_dom_free);
    app->runtime = rt;
    rt_net_links_start(rt);
    rt_firewall_start(rt);
    rt->preload = qubes_preload_new(rt, app, rt->cfg.qmemman_avail_mem_file);
    rt_connection_open(rt);
    return rt;
}

void qubes_runtime_free(QubesRuntime *rt)
{
    if (!rt)
        return;
    qubes_preload_free(rt->preload);
    rt->preload = NULL;
    rt_connection_close(rt);
    /* Whoever still waits learns that qubesd is going (the qubes keep
     * running). */
    GHashTableIter it;
    gpointer v;
    g_hash_table_iter_init(&it, rt->doms);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        DomRt *r = v;
        GError *e = g_error_new(QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                                "qubesd is exiting");
        rt_complete_stop_waiters(r, e);
        rt_complete_tasks(r->start_waiters, e);
        r->start_waiters = NULL;
        g_error_free(e);
    }
    g_hash_table_unref(rt->doms);
    rt->doms = NULL;
    for (guint i = 0; i < G_N_ELEMENTS(rt->handlers); i++)
        qubes_event_remove_class_handler(rt->app->registry, rt->handlers[i]);
    rt_net_links_finish(rt);
    rt_firewall_finish(rt);
    g_ptr_array_unref(rt->blocks);
    rt->blocks = NULL;
    g_ptr_array_unref(rt->pcis);
    rt->pcis = NULL;
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

QubesPreload *qubes_runtime_preload(QubesRuntime *rt)
{
    return rt ? rt->preload : NULL;
}
