/* pci-run.h: dom0's PCI devices in running qubes (pci-run.c).
 *
 * The reference's ext/pci.py for a running qube: a host PCI device is
 * hot-plugged into it as a managed <hostdev> (domxml.h), so that libvirt
 * takes the device from its host driver first (VFIO on QEMU/KVM,
 * pciback on Xen) and gives it back when it is detached or when the
 * hot-plug fails; nothing here touches sysfs. On QEMU/KVM that needs an
 * IOMMU; libvirt refuses before it takes the device when there is none,
 * and the error then says so.
 *
 * The runtime keeps which device is in which qube: added when libvirt
 * has the device in the domain (a hot-plug, or a start's required and
 * auto-attach assignments, hotplug.h), removed at a detach and when the
 * qube stops, and for the qubes that run when qubesd starts read back
 * from their domain XML (the reference reads the live XML at each
 * listing; the table answers the same without a libvirt call). */
#pragma once

#include "app.h"

G_BEGIN_DECLS

typedef struct {
    QubesDomain *frontend; /* referenced */
    char *port_id;         /* "00_1f.2" */
    char *sbdf;            /* "0000:00:1f.2" */
} QubesPciAttachment;

/* Every attachment (borrowed, in the order they were made). */
const GPtrArray *qubes_runtime_pci_attachments(QubesRuntime *rt);
/* The attachment of dom0's PCI port @port_id, NULL when it is free. */
const QubesPciAttachment *qubes_runtime_pci_attached(QubesRuntime *rt,
                                                     const char *port_id);
/* Hot-plugs the host's PCI device @sbdf (port @port_id) into the running
 * @dom with the assignment's options @no_strict_reset and @permissive
 * (Xen's pciback only). A failure is QubesException "Failed to attach
 * PCI device dom0:PORT to 'NAME': CAUSE" (QubesVMNotStartedError when
 * the qube stopped), and the device stays where it was. Finish with
 * qubes_runtime_op_finish(). */
void qubes_runtime_attach_pci(QubesRuntime *rt, QubesDomain *dom,
                              const char *port_id, const char *sbdf,
                              gboolean no_strict_reset, gboolean permissive,
                              GAsyncReadyCallback cb, gpointer data);
/* Unplugs it (the guest is asked to let it go; libvirt gives the
 * device back to its host driver). DeviceNotAssigned when @dom does not
 * have it. */
void qubes_runtime_detach_pci(QubesRuntime *rt, QubesDomain *dom,
                              const char *port_id, GAsyncReadyCallback cb,
                              gpointer data);

/* For the runtime's rooms: */

void rt_pci_attachment_free(QubesPciAttachment *a);
/* The qube stopped: its devices went back with it. */
void rt_pcis_gone_with(QubesRuntime *rt, QubesDomain *dom);
/* A qube that runs when qubesd starts: its PCI devices, read from its
 * domain XML @xml. */
void rt_pcis_adopt(QubesRuntime *rt, QubesDomain *dom, const char *xml);

G_END_DECLS
