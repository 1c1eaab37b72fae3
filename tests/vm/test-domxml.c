/* test-domxml: the domain XML of each hypervisor and boot mode against
 * expected files (tests/vm/expected/), written from the reference's
 * templates/libvirt/xen.xml for Xen. `test-domxml --print NAME` prints a
 * case's XML, to review a change. */
#include "domxml.h"

#include <stdio.h>
#include <string.h>

static QubesVmSpec *base_spec(QubesHvType hv, const char *mode)
{
    QubesVmSpec *s = qubes_vm_spec_new();
    s->hv = hv;
    s->name = g_strdup("work");
    s->uuid = g_strdup("3c1b9a0e-2f7d-4a55-9d33-5a0c1e9f7b21");
    s->memory = 400;
    s->maxmem = 4000;
    s->vcpus = 2;
    s->virt_mode = g_strdup(mode);
    if (strcmp(mode, "hvm") != 0) {
        s->kernel_dir = g_strdup("/var/lib/qubes/vm-kernels/6.1.0");
        s->initramfs = TRUE;
        s->cmdline = g_strdup("root=/dev/mapper/dmroot ro nomodeset "
                              "console=hvc0 rd_NO_PLYMOUTH "
                              "rd.plymouth.enable=0 plymouth.enable=0 "
                              "swiotlb=2048");
    }
    const char *dir = "/var/lib/qubes/appvms/work/";
    g_autofree char *root = g_strconcat(dir, "root-dirty.img", NULL);
    g_autofree char *priv = g_strconcat(dir, "private-dirty.img", NULL);
    g_autofree char *vol = g_strconcat(dir, "volatile-dirty.img", NULL);
    qubes_vm_spec_add_disk(s, "root", root, TRUE, FALSE, NULL);
    qubes_vm_spec_add_disk(s, "private", priv, TRUE, FALSE, NULL);
    qubes_vm_spec_add_disk(s, "volatile", vol, TRUE, FALSE, NULL);
    if (s->kernel_dir)
        qubes_vm_spec_add_disk(s, "kernel",
                               "/var/lib/qubes/vm-kernels/6.1.0/modules.img",
                               FALSE, FALSE, NULL);
    qubes_vm_spec_add_disk(s, "extra", "/dev/loop7", FALSE, TRUE, NULL);
    QubesVmNic *nic = g_new0(QubesVmNic, 1);
    nic->mac = g_strdup("00:16:3e:5e:6c:05");
    nic->ip = g_strdup("10.137.0.5");
    nic->backend_domain = g_strdup("sys-firewall");
    nic->bridge = g_strdup("qbr5");
    nic->tap = g_strdup("qcli5");
    s->nic = nic;
    if (hv != QUBES_HV_XEN)
        s->console_log = g_strdup("/var/log/qubes/guest-work.log");
    return s;
}

typedef struct {
    const char *name;
    QubesHvType hv;
    const char *mode;
} Case;

static const Case cases[] = {
    {"xen-pvh", QUBES_HV_XEN, "pvh"}, {"xen-hvm", QUBES_HV_XEN, "hvm"},
    {"xen-pv", QUBES_HV_XEN, "pv"},   {"qemu-pvh", QUBES_HV_QEMU, "pvh"},
    {"kvm-hvm", QUBES_HV_KVM, "hvm"},
};

static char *case_xml(const Case *c)
{
    g_autoptr(QubesVmSpec) s = base_spec(c->hv, c->mode);
    if (strcmp(c->name, "xen-hvm") == 0) {
        s->uefi = TRUE;
        s->timezone = g_strdup("3600");
        s->emulator_cmdline =
            qubes_vm_emulator_cmdline(FALSE, 0, TRUE, "10.137.0.5",
                                      "10.139.1.1", "10.139.1.2", "10.137.0.2");
        s->stubdom_mem = 128;
    }
    return qubes_vm_spec_to_xml(s);
}

static void test_case(gconstpointer data)
{
    const Case *c = data;
    g_autofree char *xml = case_xml(c);
    g_autofree char *file = g_strdup_printf("%s/%s.xml", EXPECTED_DIR, c->name);
    g_autofree char *want = NULL;
    g_autoptr(GError) err = NULL;
    g_assert_true(g_file_get_contents(file, &want, NULL, &err));
    if (strcmp(xml, want) != 0)
        g_printerr("%s: got\n%s", c->name, xml);
    g_assert_cmpstr(xml, ==, want);
}

static void test_escaping(void)
{
    g_autoptr(QubesVmSpec) s = base_spec(QUBES_HV_QEMU, "pvh");
    g_free(s->cmdline);
    s->cmdline = g_strdup("a<b & \"c\" 'd'");
    g_autofree char *xml = qubes_vm_spec_to_xml(s);
    g_assert_nonnull(strstr(xml, "<cmdline>a&lt;b &amp; \"c\" 'd'</cmdline>"));
}

/* A kernel without initramfs boots without <initrd>, as the reference's
 * template leaves it out when initramfs_path is None. */
static void test_no_initramfs(void)
{
    g_autoptr(QubesVmSpec) s = base_spec(QUBES_HV_QEMU, "pvh");
    s->initramfs = FALSE;
    g_autofree char *xml = qubes_vm_spec_to_xml(s);
    g_assert_nonnull(strstr(
        xml, "<kernel>/var/lib/qubes/vm-kernels/6.1.0/vmlinuz</kernel>"));
    g_assert_null(strstr(xml, "<initrd>"));
}

/* The reference's tests (qubes/tests/vm/qubesvm.py, hvm with a netvm):
 * with dom0 as audio domain, without one, and the legacy stubdomain. */
static void test_emulator_cmdline(void)
{
    g_autofree char *a = qubes_vm_emulator_cmdline(
        FALSE, 0, TRUE, "10.137.0.1", "10.139.1.1", "10.139.1.2", "10.137.0.2");
    g_assert_cmpstr(a, ==,
                    "-qubes-audio:audiovm_xid=0 -qubes-net:client_ip="
                    "10.137.0.1,dns_0=10.139.1.1,dns_1=10.139.1.2,gw="
                    "10.137.0.2,netmask=255.255.255.255");
    g_autofree char *b =
        qubes_vm_emulator_cmdline(FALSE, -1, TRUE, "10.137.0.1", "10.139.1.1",
                                  "10.139.1.2", "10.137.0.2");
    g_assert_cmpstr(b, ==,
                    "-qubes-net:client_ip=10.137.0.1,dns_0=10.139.1.1,"
                    "dns_1=10.139.1.2,gw=10.137.0.2,netmask=255.255.255.255");
    g_autofree char *c = qubes_vm_emulator_cmdline(
        TRUE, 0, TRUE, "10.137.0.1", "10.139.1.1", "10.139.1.2", "10.137.0.2");
    g_assert_cmpstr(c, ==,
                    "-net lwip,client_ip=10.137.0.1,server_ip=10.139.1.2,"
                    "dns=10.139.1.1,gw=10.137.0.2,netmask=255.255.255.255");
    g_assert_null(
        qubes_vm_emulator_cmdline(FALSE, -1, FALSE, NULL, NULL, NULL, NULL));
    g_autofree char *d =
        qubes_vm_emulator_cmdline(FALSE, 3, FALSE, NULL, NULL, NULL, NULL);
    g_assert_cmpstr(d, ==, "-qubes-audio:audiovm_xid=3");
}

static void test_targets(void)
{
    guint other = 0;
    g_autofree char *a = qubes_vm_disk_target(QUBES_HV_XEN, "private", &other);
    g_assert_cmpstr(a, ==, "xvdb");
    for (char c = 'e'; c <= 'y'; c++) {
        g_autofree char *t = qubes_vm_disk_target(QUBES_HV_XEN, "x", &other);
        g_autofree char *want = g_strdup_printf("xvd%c", c);
        g_assert_cmpstr(t, ==, want);
    }
    /* the reference stops at xvdy */
    g_assert_null(qubes_vm_disk_target(QUBES_HV_XEN, "x", &other));
    other = 0;
    g_autofree char *q = qubes_vm_disk_target(QUBES_HV_QEMU, "x", &other);
    g_assert_cmpstr(q, ==, "vde");
    QubesHvType hv;
    g_assert_true(qubes_hv_type_parse("kvm", &hv) && hv == QUBES_HV_KVM);
    g_assert_false(qubes_hv_type_parse("lxc", &hv));
}

/* An hvm qube with a kernel on QEMU boots it directly, its command line
 * with it (QEMU refuses -append without -kernel), and still has its
 * boot devices; without a kernel, neither. */
static void test_qemu_hvm_kernel(void)
{
    g_autoptr(QubesVmSpec) s = base_spec(QUBES_HV_QEMU, "hvm");
    g_autofree char *none = qubes_vm_spec_to_xml(s);
    g_assert_null(strstr(none, "<kernel>"));
    g_assert_null(strstr(none, "<cmdline>"));
    s->kernel_dir = g_strdup("/var/lib/qubes/vm-kernels/6.1.0");
    s->cmdline = g_strdup("console=hvc0");
    g_autofree char *xml = qubes_vm_spec_to_xml(s);
    g_assert_nonnull(strstr(
        xml, "<kernel>/var/lib/qubes/vm-kernels/6.1.0/vmlinuz</kernel>"));
    g_assert_nonnull(strstr(xml, "<cmdline>console=hvc0</cmdline>"));
    g_assert_nonnull(strstr(xml, "<boot dev=\"hd\"/>"));
}

/* A PCI device's hostdev, as the reference's libvirt/devices/pci.xml:
 * managed, its address in hex; pciback's options on Xen only. */
static void test_pci_hostdev(void)
{
    g_autofree char *q = qubes_vm_pci_hostdev_xml(QUBES_HV_QEMU, "0000:00:1f.2",
                                                  TRUE, TRUE, TRUE);
    g_assert_cmpstr(q, ==,
                    "<hostdev mode='subsystem' type='pci' managed='yes'>"
                    "<source><address domain='0x0000' bus='0x00' "
                    "slot='0x1f' function='0x2'/></source></hostdev>");
    g_autofree char *x = qubes_vm_pci_hostdev_xml(QUBES_HV_XEN, "0001:3a:00.7",
                                                  TRUE, TRUE, TRUE);
    g_assert_cmpstr(x, ==,
                    "<hostdev mode='subsystem' type='pci' managed='yes' "
                    "nostrictreset='yes'><source writeFiltering='no' "
                    "powerManagementFiltering='no'><address domain='0x0001' "
                    "bus='0x3a' slot='0x00' function='0x7'/></source>"
                    "</hostdev>");
    g_autofree char *plain = qubes_vm_pci_hostdev_xml(
        QUBES_HV_XEN, "0000:00:02.0", FALSE, FALSE, FALSE);
    g_assert_nonnull(strstr(plain, "managed='yes'><source><address"));
    /* not addresses: a slot past 31, a function past 7, a tail, text */
    const char *bad[] = {"0000:00:20.0", "0000:00:02.8", "0000:00:02.0x",
                         "00:02.0",      "../../x",      ""};
    for (guint i = 0; i < G_N_ELEMENTS(bad); i++)
        g_assert_null(qubes_vm_pci_hostdev_xml(QUBES_HV_QEMU, bad[i], FALSE,
                                               FALSE, FALSE));
}

/* The PCI devices of a running domain read back from its XML: the
 * hostdevs of type pci with a whole address, in order. */
static void test_pci_hostdevs(void)
{
    const char *xml =
        "<domain type='kvm'><name>work</name><devices>"
        "<disk type='file'><source file='/x'/></disk>"
        "<hostdev mode='subsystem' type='pci' managed='yes'><driver "
        "name='vfio'/><source><address domain='0x0000' bus='0x03' "
        "slot='0x00' function='0x0'/></source><alias name='hostdev0'/>"
        "<address type='pci' domain='0x0000' bus='0x00' slot='0x07' "
        "function='0x0'/></hostdev>"
        "<hostdev mode='subsystem' type='usb'><source><vendor id='0x1'/>"
        "</source></hostdev>"
        "<hostdev type='pci'><source><address domain='0x0000' bus='0x03' "
        "slot='0x00'/></source></hostdev>"
        "<hostdev type='pci'><source><address domain='0x0000' bus='0x300' "
        "slot='0x00' function='0x0'/></source></hostdev>"
        "<hostdev type='pci'><source><address domain='0x0002' bus='0xff' "
        "slot='0x1f' function='0x7'/></source></hostdev>"
        "</devices></domain>";
    g_autoptr(GPtrArray) got = qubes_vm_pci_hostdevs(xml);
    g_assert_cmpuint(got->len, ==, 2);
    g_assert_cmpstr(got->pdata[0], ==, "0000:03:00.0");
    g_assert_cmpstr(got->pdata[1], ==, "0002:ff:1f.7");
    g_autoptr(GPtrArray) none = qubes_vm_pci_hostdevs("<domain");
    g_assert_cmpuint(none->len, ==, 0);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--print") == 0) {
        for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
            if (strcmp(cases[i].name, argv[2]) == 0) {
                g_autofree char *xml = case_xml(&cases[i]);
                fputs(xml, stdout);
                return 0;
            }
        }
        return 2;
    }
    g_test_init(&argc, &argv, NULL);
    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *path = g_strdup_printf("/domxml/%s", cases[i].name);
        g_test_add_data_func(path, &cases[i], test_case);
    }
    g_test_add_func("/domxml/escaping", test_escaping);
    g_test_add_func("/domxml/no-initramfs", test_no_initramfs);
    g_test_add_func("/domxml/targets", test_targets);
    g_test_add_func("/domxml/emulator-cmdline", test_emulator_cmdline);
    g_test_add_func("/domxml/qemu-hvm-kernel", test_qemu_hvm_kernel);
    g_test_add_func("/domxml/pci-hostdev", test_pci_hostdev);
    g_test_add_func("/domxml/pci-hostdevs", test_pci_hostdevs);
    return g_test_run();
}
