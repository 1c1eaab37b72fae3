/* pci-run.c: dom0's PCI devices in running qubes (pci-run.h). */
#include "pci-run.h"

#include "domxml.h"
#include "hostdev.h"
#include "libvirt-ops.h"

#include <string.h>

void rt_pci_attachment_free(QubesPciAttachment *a)
{
    qubes_domain_unref(a->frontend);
    g_free(a->port_id);
    g_free(a->sbdf);
    g_free(a);
}

static QubesPciAttachment *attachment_new(QubesDomain *dom, const char *port_id,
                                          const char *sbdf)
{
    QubesPciAttachment *a = g_new0(QubesPciAttachment, 1);
    a->frontend = qubes_domain_ref(dom);
    a->port_id = g_strdup(port_id);
    a->sbdf = g_strdup(sbdf);
    return a;
}

const GPtrArray *qubes_runtime_pci_attachments(QubesRuntime *rt)
{
    return rt->pcis;
}

const QubesPciAttachment *qubes_runtime_pci_attached(QubesRuntime *rt,
                                                     const char *port_id)
{
    for (guint i = 0; i < rt->pcis->len; i++) {
        const QubesPciAttachment *a = rt->pcis->pdata[i];
        if (strcmp(a->port_id, port_id) == 0)
            return a;
    }
    return NULL;
}

typedef struct {
    QubesRuntime *rt;
    QubesPciAttachment *a; /* owned until it is in the table */
    gboolean attach;
    GTask *task; /* the caller's */
} PciJob;

static void pci_job_done(GObject *src, GAsyncResult *res, gpointer data)
{
    PciJob *j = data;
    GError *err = NULL;
    QubesDomain *dom = j->a->frontend;
    if (!g_task_propagate_boolean(G_TASK(res), &err)) {
        /* on QEMU/KVM libvirt's own words do not name the cause when
         * the host has no IOMMU: the error adds it */
        gboolean no_iommu = j->attach && j->rt->cfg.hv != QUBES_HV_XEN &&
                            !qubes_host_has_iommu();
        g_prefix_error(&err, "Failed to %s PCI device dom0:%s %s '%s': ",
                       j->attach ? "attach" : "detach", j->a->port_id,
                       j->attach ? "to" : "from", dom->name);
        if (no_iommu) {
            g_autofree char *m = g_strdup_printf(
                "%s (this host has no IOMMU: /sys/kernel/iommu_groups is "
                "empty)",
                err->message);
            g_free(err->message);
            err->message = g_steal_pointer(&m);
        }
        g_task_return_error(j->task, err);
    } else {
        if (j->attach) {
            g_ptr_array_add(j->rt->pcis, g_steal_pointer(&j->a));
        } else {
            for (guint i = 0; i < j->rt->pcis->len; i++) {
                QubesPciAttachment *a = j->rt->pcis->pdata[i];
                if (a->frontend == dom &&
                    strcmp(a->port_id, j->a->port_id) == 0)
                    g_ptr_array_remove_index(j->rt->pcis, i--);
            }
        }
        g_task_return_boolean(j->task, TRUE);
    }
    g_object_unref(j->task);
    if (j->a)
        rt_pci_attachment_free(j->a);
    rt_unref(j->rt);
    g_free(j);
}

/* The hostdev of @sbdf for @rt's hypervisor; dom0's suspend-s0ix
 * feature (any value but "") turns pciback's power management filter
 * off, as the reference's pci.xml. */
static char *hostdev_xml(QubesRuntime *rt, const char *sbdf,
                         gboolean no_strict_reset, gboolean permissive)
{
    QubesDomain *dom0 = qubes_app_get_domain_by_qid(rt->app, 0);
    const char *s0ix =
        dom0 ? qubes_domain_feature_get(dom0, "suspend-s0ix") : NULL;
    return qubes_vm_pci_hostdev_xml(rt->cfg.hv, sbdf, no_strict_reset,
                                    permissive, s0ix && *s0ix);
}

static void run(QubesRuntime *rt, QubesDomain *dom, QubesPciAttachment *a,
                gboolean attach, char *xml, GTask *task)
{
    PciJob *j = g_new0(PciJob, 1);
    j->rt = rt_ref(rt);
    j->a = a;
    j->attach = attach;
    j->task = task;
    rt_run_op(rt, attach ? OP_ATTACH_DISK : OP_DETACH_DISK, dom, xml,
              pci_job_done, j);
}

void qubes_runtime_attach_pci(QubesRuntime *rt, QubesDomain *dom,
                              const char *port_id, const char *sbdf,
                              gboolean no_strict_reset, gboolean permissive,
                              GAsyncReadyCallback cb, gpointer data)
{
    GTask *task = g_task_new(NULL, NULL, cb, data);
    char *xml = hostdev_xml(rt, sbdf, no_strict_reset, permissive);
    if (!xml) {
        g_task_return_new_error(task, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                                "Invalid PCI device: %s", port_id);
        g_object_unref(task);
        return;
    }
    run(rt, dom, attachment_new(dom, port_id, sbdf), TRUE, xml, task);
}

void qubes_runtime_detach_pci(QubesRuntime *rt, QubesDomain *dom,
                              const char *port_id, GAsyncReadyCallback cb,
                              gpointer data)
{
    GTask *task = g_task_new(NULL, NULL, cb, data);
    const QubesPciAttachment *found = NULL;
    for (guint i = 0; i < rt->pcis->len && !found; i++) {
        const QubesPciAttachment *a = rt->pcis->pdata[i];
        if (a->frontend == dom && strcmp(a->port_id, port_id) == 0)
            found = a;
    }
    if (!found) {
        /* master's DeviceNotAssigned, a KeyError: its text's repr */
        g_task_return_new_error(
            task, QUBES_ERROR, QUBES_ERROR_DEVICE_NOT_ASSIGNED,
            "'pci device %s not attached to %s'", port_id, dom->name);
        g_object_unref(task);
        return;
    }
    run(rt, dom, attachment_new(dom, found->port_id, found->sbdf), FALSE,
        hostdev_xml(rt, found->sbdf, FALSE, FALSE), task);
}

void rt_pcis_gone_with(QubesRuntime *rt, QubesDomain *dom)
{
    for (guint i = 0; i < rt->pcis->len; i++)
        if (((QubesPciAttachment *)rt->pcis->pdata[i])->frontend == dom)
            g_ptr_array_remove_index(rt->pcis, i--);
}

void rt_pcis_adopt(QubesRuntime *rt, QubesDomain *dom, const char *xml)
{
    g_autoptr(GPtrArray) sbdfs = qubes_vm_pci_hostdevs(xml);
    for (guint i = 0; i < sbdfs->len; i++) {
        g_autofree char *port = qubes_host_pci_port(sbdfs->pdata[i]);
        if (port && !qubes_runtime_pci_attached(rt, port))
            g_ptr_array_add(rt->pcis,
                            attachment_new(dom, port, sbdfs->pdata[i]));
    }
}
