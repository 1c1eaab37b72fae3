/* hostdev.h: the host's own devices, which dom0 exposes (the reference's
 * ext/block.py and ext/pci.py, for the AdminVM as backend).
 *
 * block: every block device of /sys/class/block (disks, partitions,
 * loop devices with a backing file, device-mapper and md devices), its
 * port the kernel's name ("loop7", "sda1"; a '/' in it as '_'). A device
 * the host uses (mounted, swap, held by another block device such as
 * device-mapper, or a disk one of whose partitions is so used) is not
 * available; why is told.
 *
 * pci: every device of /sys/bus/pci/devices, its port the address
 * "BB_DD.F" (the domain first when it is not 0000), its identity
 * "VVVV:PPPP::pCCCCCC", names from pci.ids when installed.
 *
 * Everything is read from sysfs and /proc, blocking (microseconds). The
 * root of sysfs and /proc can be moved for tests (QUBES_SYSFS,
 * QUBES_PROCFS).
 */
#pragma once

#include "devices.h"

G_BEGIN_DECLS

typedef struct {
    QubesDevInfo *info; /* owned */
    char *path;         /* "/dev/loop7" */
    char *in_use;       /* why the host uses it; NULL: free */
    gboolean read_only;
    guint64 size; /* bytes */
    guint major, minor;
} QubesHostBlock;

void qubes_host_block_free(QubesHostBlock *b);

/* The host's block devices (QubesHostBlock*, sorted by port), dom0
 * their backend. */
GPtrArray *qubes_host_block_list(void);

typedef struct {
    QubesDevInfo *info; /* owned */
    char *sysfs_name;   /* "0000:00:1f.2" */
} QubesHostPci;

void qubes_host_pci_free(QubesHostPci *p);

/* The host's PCI devices (QubesHostPci*, sorted by port). */
GPtrArray *qubes_host_pci_list(void);

/* The port of the PCI device at @sbdf ("0000:00:1f.2" gives "00_1f.2",
 * "0001:3a:00.7" gives "0001_3a_00.7"); NULL when it is not an address. */
char *qubes_host_pci_port(const char *sbdf);

/* A fingerprint of the host's block devices (their names and sizes):
 * when it changes, the list did (new string). Cheap: no device opened. */
char *qubes_host_block_fingerprint(void);

/* Whether the host has an IOMMU the kernel uses (a PCI device can then
 * be given to a qube): /sys/kernel/iommu_groups holds a group. */
gboolean qubes_host_has_iommu(void);

G_END_DECLS
