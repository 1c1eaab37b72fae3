/* hotplug.h: dom0's devices attached to running qubes (hotplug.c).
 *
 * A host block device (hostdev.h) given to a running qube as a disk:
 * hot-plugged through libvirt (virtio on QEMU, with the port as its
 * serial so that the guest finds it as /dev/disk/by-id/virtio-PORT; a
 * phy disk on Xen, as the reference's block.xml), read-only when asked.
 * The runtime keeps which is attached where: made at attach, at start
 * (the required and auto-attach assignments) and, for qubes that run
 * when qubesd starts, read back from their domain XML.
 *
 * At start (vm-start.h), the qube's required and auto-attach
 * assignments of dom0's devices are found before anything starts (the
 * reference's ask-to-attach needs a user to ask: left to them): a
 * required one that is not there, is used by the host or attached to
 * another qube fails the start with the cause ("Block device
 * dom0:loop7:* not available: ..."), an auto-attach one is skipped,
 * logged. Once the domain exists (paused) they are attached in turn. A
 * PCI device needs an IOMMU: without one (/sys/kernel/iommu_groups
 * empty) a required one fails the start saying so.
 *
 * A dom0 block device that appears goes to the running qube whose
 * assignment matches it (the reference's device_list_change). */
#pragma once

#include "app.h"
#include "devices.h"

G_BEGIN_DECLS

typedef struct {
    QubesDomain *frontend; /* referenced */
    char *port_id;         /* "loop7" */
    char *path;            /* "/dev/loop7" */
    char *target;          /* "vdi", "xvdi" */
    char *devtype;         /* "disk" or "cdrom" */
    gboolean read_only;
} QubesBlockAttachment;

/* Every attachment (borrowed, in the order they were made). */
const GPtrArray *qubes_runtime_block_attachments(QubesRuntime *rt);
/* The attachment of dom0's port @port_id, NULL when it is free. */
const QubesBlockAttachment *qubes_runtime_block_attached(QubesRuntime *rt,
                                                         const char *port_id);
/* Attaches /dev/@path as port @port_id to the running @dom with the
 * (checked) options @frontend_dev (NULL: the first free), @read_only and
 * @devtype. Finish with qubes_runtime_op_finish(). */
void qubes_runtime_attach_block(QubesRuntime *rt, QubesDomain *dom,
                                const char *port_id, const char *path,
                                const char *frontend_dev, gboolean read_only,
                                const char *devtype, GAsyncReadyCallback cb,
                                gpointer data);
/* dom0's block devices on @ports (char*) appeared (@blocks: the host's
 * list now): each goes to the running qube whose required or
 * auto-attach assignment matches it (none asked: several matching or
 * ask-to-attach leave it, logged). */
void qubes_runtime_blocks_appeared(QubesRuntime *rt, GPtrArray *blocks,
                                   GPtrArray *ports);
/* Detaches it. */
void qubes_runtime_detach_block(QubesRuntime *rt, QubesDomain *dom,
                                const char *port_id, GAsyncReadyCallback cb,
                                gpointer data);

/* For the runtime's rooms: */

void rt_block_attachment_free(QubesBlockAttachment *a);
/* The qube stopped: its attachments went with it. */
void rt_blocks_gone_with(QubesRuntime *rt, QubesDomain *dom);
/* A qube that runs when qubesd starts: its attached host block devices,
 * read from its domain XML @xml. */
void rt_blocks_adopt(QubesRuntime *rt, QubesDomain *dom, const char *xml);

/* A device to attach at start. */
typedef struct {
    char *devclass;
    QubesVDev dev; /* with the device's own id */
    char *path;    /* block: /dev/..; pci: the sysfs address */
    char *frontend_dev, *devtype;
    gboolean read_only, required;
    gboolean no_strict_reset, permissive; /* pci */
    GPtrArray *options;                   /* the assignment's, for the event */
} StartDev;
/* @dom's devices to attach at start (StartDev*, in assignment order);
 * NULL with @error when a required one cannot be had. */
GPtrArray *rt_start_devices(QubesRuntime *rt, QubesDomain *dom, GError **error);
/* Attaches @d to the created (paused) @dom: a block device as
 * qubes_runtime_attach_block, a PCI device as qubes_runtime_attach_pci. */
void rt_start_dev_attach(QubesRuntime *rt, QubesDomain *dom, StartDev *d,
                         GAsyncReadyCallback cb, gpointer data);

G_END_DECLS
