/* domxml.h: a qube's libvirt domain XML, for Xen and for QEMU/KVM.
 *
 * One description of what a qube is made of (QubesVmSpec: memory, CPUs,
 * boot, disks, network link, console) turns into the XML of either
 * hypervisor. The Xen form follows the reference's
 * templates/libvirt/xen.xml (pvh, hvm, pv; xvda.. disks; a vif with its
 * backend domain); the QEMU form boots the same kernel and disks on
 * virtio with a balloon that reports statistics, a serial console on a
 * pty (admin.vm.Console hands its path out, as master does) logged to a
 * file, and the qube's network link as a NIC on the qube's own bridge.
 *
 * Beside it, a host PCI device's <hostdev> element, and the PCI devices
 * read back from a running domain's XML.
 *
 * Pure data in, text out (and back): no libvirt call, so that tests
 * compare it with expected XML on any machine.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum {
    QUBES_HV_XEN,
    QUBES_HV_KVM,  /* QEMU with /dev/kvm */
    QUBES_HV_QEMU, /* QEMU with TCG */
} QubesHvType;

/* "xen", "kvm" or "qemu" (libvirt's domain type). */
const char *qubes_hv_type_name(QubesHvType hv);
/* The type named @name; FALSE when there is none. */
gboolean qubes_hv_type_parse(const char *name, QubesHvType *hv);

typedef struct {
    char *name; /* the volume: root, private, volatile, kernel, other */
    char *path; /* the image (a file on QEMU, its block device on Xen) */
    gboolean rw;
    gboolean is_block;    /* a block device rather than a file */
    char *backend_domain; /* NULL: dom0 */
} QubesVmDisk;

typedef struct {
    char *mac;
    char *ip;             /* the qube's address as its netvm sees it */
    char *ip6;            /* NULL: none */
    char *backend_domain; /* the netvm (Xen's vif backend) */
    char *bridge;         /* QEMU: the qube's own link to its netvm */
    char *tap;            /* QEMU: the host's end of the NIC (its name is
                             what the firewall binds to: netfilter.h) */
} QubesVmNic;

typedef struct {
    QubesHvType hv;
    char *name;
    char *uuid;
    guint64 memory; /* MiB at start */
    guint64 maxmem; /* MiB the balloon may reach; 0: @memory, fixed */
    guint vcpus;
    char *virt_mode;    /* "pvh", "hvm" or "pv" */
    char *kernel_dir;   /* holds vmlinuz (and initramfs); NULL: none */
    gboolean initramfs; /* kernel_dir holds an initramfs: <initrd> (the
                           reference leaves it out without one) */
    char *cmdline;      /* NULL: none */
    gboolean uefi;      /* hvm: OVMF rather than SeaBIOS */
    char *timezone;     /* hvm clock: "localtime", seconds, or other (utc) */
    GPtrArray *disks;   /* QubesVmDisk*, in the order the reference lists */
    QubesVmNic *nic;    /* NULL: no network */
    char *console_log;  /* QEMU: where the serial console is logged */
    gboolean pci_e820_host; /* Xen: <e820_host> (PCI devices assigned) */
    /* Xen hvm: the device model's stubdomain, as the reference's
     * <emulator>: "stubdom-linux" or the legacy "stubdom" (the
     * linux-stubdom feature off), its command line (the network the
     * stubdomain gives the guest, its audio domain; NULL: none) and its
     * memory (MiB; 0: libxl's default). */
    gboolean stubdom_legacy;
    char *emulator_cmdline;
    guint64 stubdom_mem;
} QubesVmSpec;

QubesVmSpec *qubes_vm_spec_new(void);
void qubes_vm_spec_free(QubesVmSpec *spec);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QubesVmSpec, qubes_vm_spec_free)
/* Adds a disk (strings copied; @backend may be NULL). */
void qubes_vm_spec_add_disk(QubesVmSpec *spec, const char *name,
                            const char *path, gboolean rw, gboolean is_block,
                            const char *backend);

/* The disk name the guest sees for volume @name at position @index among
 * the volumes that are not root/private/volatile/kernel (the reference's
 * xvda, xvdb, xvdc, xvdd, then xvde..; vda.. on QEMU). New string. */
char *qubes_vm_disk_target(QubesHvType hv, const char *name, guint *other);

/* The Xen stubdomain's command line, as the reference's xen.xml: the
 * audio domain's xid (@audio_xid >= 0, the Linux stubdomain only), and
 * with a netvm the guest's network: "-qubes-net:client_ip=IP,dns_0=D0,
 * dns_1=D1,gw=GW,netmask=255.255.255.255" (Linux stubdomain) or "-net
 * lwip,client_ip=IP,server_ip=D1,dns=D0,gw=GW,netmask=255.255.255.255"
 * (legacy). NULL when there is nothing to say; NULL strings are empty. */
char *qubes_vm_emulator_cmdline(gboolean legacy, gint64 audio_xid,
                                gboolean networked, const char *ip,
                                const char *dns0, const char *dns1,
                                const char *gw);

/* The domain XML (new string, UTF-8, one element per line). */
char *qubes_vm_spec_to_xml(const QubesVmSpec *spec);

/* A host PCI device given to a qube: a managed <hostdev> (libvirt takes
 * the device from its host driver and gives it back when it is
 * detached) for @sbdf ("0000:00:1f.2"), as the reference's
 * libvirt/devices/pci.xml. The options that only Xen's pciback knows
 * (the assignment's no-strict-reset and permissive, dom0's suspend-s0ix
 * feature as @power_mgmt) are written for Xen only. NULL when @sbdf is
 * not an address. */
char *qubes_vm_pci_hostdev_xml(QubesHvType hv, const char *sbdf,
                               gboolean no_strict_reset, gboolean permissive,
                               gboolean power_mgmt);
/* The PCI devices a domain's XML @xml holds (its <devices><hostdev
 * type='pci'>), as addresses "0000:00:1f.2" in document order; an
 * element without a whole address is skipped. Empty for XML that does
 * not parse. */
GPtrArray *qubes_vm_pci_hostdevs(const char *xml);

G_END_DECLS
