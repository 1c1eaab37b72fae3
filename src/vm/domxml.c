/* domxml.c: QubesVmSpec to libvirt domain XML (domxml.h).
 *
 * Built as a libxml2 tree, so every value is escaped, then printed
 * indented. The Xen part follows the reference's templates/libvirt/xen.xml
 * element for element; the QEMU part is ours.
 */
#include "domxml.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdio.h>
#include <string.h>

const char *qubes_hv_type_name(QubesHvType hv)
{
    switch (hv) {
    case QUBES_HV_XEN:
        return "xen";
    case QUBES_HV_KVM:
        return "kvm";
    case QUBES_HV_QEMU:
        return "qemu";
    }
    return "qemu";
}

gboolean qubes_hv_type_parse(const char *name, QubesHvType *hv)
{
    static const QubesHvType all[] = {QUBES_HV_XEN, QUBES_HV_KVM,
                                      QUBES_HV_QEMU};
    for (guint i = 0; i < G_N_ELEMENTS(all); i++) {
        if (g_strcmp0(name, qubes_hv_type_name(all[i])) == 0) {
            *hv = all[i];
            return TRUE;
        }
    }
    return FALSE;
}

static void disk_free(QubesVmDisk *d)
{
    g_free(d->name);
    g_free(d->path);
    g_free(d->backend_domain);
    g_free(d);
}

QubesVmSpec *qubes_vm_spec_new(void)
{
    QubesVmSpec *s = g_new0(QubesVmSpec, 1);
    s->disks = g_ptr_array_new_with_free_func((GDestroyNotify)disk_free);
    s->vcpus = 1;
    return s;
}

void qubes_vm_spec_free(QubesVmSpec *s)
{
    if (!s)
        return;
    g_free(s->name);
    g_free(s->uuid);
    g_free(s->virt_mode);
    g_free(s->emulator_cmdline);
    g_free(s->kernel_dir);
    g_free(s->cmdline);
    g_free(s->timezone);
    g_ptr_array_unref(s->disks);
    if (s->nic) {
        g_free(s->nic->mac);
        g_free(s->nic->ip);
        g_free(s->nic->ip6);
        g_free(s->nic->backend_domain);
        g_free(s->nic->bridge);
        g_free(s->nic->tap);
        g_free(s->nic);
    }
    g_free(s->console_log);
    g_free(s);
}

void qubes_vm_spec_add_disk(QubesVmSpec *spec, const char *name,
                            const char *path, gboolean rw, gboolean is_block,
                            const char *backend)
{
    QubesVmDisk *d = g_new0(QubesVmDisk, 1);
    d->name = g_strdup(name);
    d->path = g_strdup(path);
    d->rw = rw;
    d->is_block = is_block;
    d->backend_domain = g_strdup(backend);
    g_ptr_array_add(spec->disks, d);
}

char *qubes_vm_disk_target(QubesHvType hv, const char *name, guint *other)
{
    static const char *const fixed[] = {"root", "private", "volatile",
                                        "kernel"};
    const char *prefix = hv == QUBES_HV_XEN ? "xvd" : "vd";
    for (guint i = 0; i < G_N_ELEMENTS(fixed); i++)
        if (strcmp(name, fixed[i]) == 0)
            return g_strdup_printf("%s%c", prefix, 'a' + i);
    /* The reference's other volumes take xvde..xvdy in turn. */
    guint n = (*other)++;
    if (n > 'y' - 'e')
        return NULL;
    return g_strdup_printf("%s%c", prefix, 'e' + n);
}

/* ---- small tree helpers ---- */

static xmlNodePtr child(xmlNodePtr parent, const char *name, const char *text)
{
    xmlNodePtr n = xmlNewChild(parent, NULL, BAD_CAST name, NULL);
    if (text)
        xmlNodeAddContent(n, BAD_CAST text);
    return n;
}

static void attr(xmlNodePtr n, const char *name, const char *value)
{
    xmlNewProp(n, BAD_CAST name, BAD_CAST value);
}

static xmlNodePtr child_attr(xmlNodePtr parent, const char *name,
                             const char *attr_name, const char *value)
{
    xmlNodePtr n = child(parent, name, NULL);
    attr(n, attr_name, value);
    return n;
}

static void memory_elements(xmlNodePtr dom, const QubesVmSpec *s)
{
    g_autofree char *max = g_strdup_printf("%" G_GUINT64_FORMAT,
                                           s->maxmem ? s->maxmem : s->memory);
    g_autofree char *cur = g_strdup_printf("%" G_GUINT64_FORMAT, s->memory);
    g_autofree char *vcpus = g_strdup_printf("%u", s->vcpus);
    attr(child(dom, "memory", max), "unit", "MiB");
    attr(child(dom, "currentMemory", cur), "unit", "MiB");
    attr(child(dom, "vcpu", vcpus), "placement", "static");
}

static void on_events(xmlNodePtr dom)
{
    child(dom, "on_poweroff", "destroy");
    child(dom, "on_reboot", "destroy");
    child(dom, "on_crash", "destroy");
}

static void kernel_boot(xmlNodePtr os, const QubesVmSpec *s)
{
    if (!s->kernel_dir)
        return;
    g_autofree char *k = g_build_filename(s->kernel_dir, "vmlinuz", NULL);
    g_autofree char *i = g_build_filename(s->kernel_dir, "initramfs", NULL);
    child(os, "kernel", k);
    if (s->initramfs)
        child(os, "initrd", i);
}

/* ---- Xen ---- */

static void xen_xml(xmlNodePtr dom, const QubesVmSpec *s)
{
    gboolean hvm = g_strcmp0(s->virt_mode, "hvm") == 0;
    gboolean pv = g_strcmp0(s->virt_mode, "pv") == 0;
    if (!pv) {
        xmlNodePtr cpu = child_attr(dom, "cpu", "mode", "host-passthrough");
        static const char *const off[] = {"vmx", "svm", "smap"};
        for (guint i = 0; i < G_N_ELEMENTS(off); i++) {
            xmlNodePtr f = child_attr(cpu, "feature", "name", off[i]);
            attr(f, "policy", "disable");
        }
    }
    xmlNodePtr os = child(dom, "os", NULL);
    xmlNodePtr type;
    if (hvm) {
        type = child(os, "type", "hvm");
        attr(type, "arch", "x86_64");
        attr(type, "machine", "xenfv");
        attr(child(os, "loader", "hvmloader"), "type",
             s->uefi ? "pflash" : "rom");
        child_attr(os, "boot", "dev", "cdrom");
        child_attr(os, "boot", "dev", "hd");
    } else {
        type = child(os, "type", pv ? "linux" : "xenpvh");
        attr(type, "arch", "x86_64");
        attr(type, "machine", pv ? "xenpv" : "xenpvh");
        kernel_boot(os, s);
    }
    if (s->cmdline)
        child(os, "cmdline", s->cmdline);

    xmlNodePtr feat = child(dom, "features", NULL);
    if (!pv) {
        child(feat, "pae", NULL);
        child(feat, "acpi", NULL);
        child(feat, "apic", NULL);
        child(feat, "viridian", NULL);
    }
    xmlNodePtr xen = child(feat, "xen", NULL);
    if (s->pci_e820_host)
        child_attr(xen, "e820_host", "state", "on");

    if (hvm) {
        const char *tz = s->timezone ? s->timezone : "localtime";
        xmlNodePtr clock = child_attr(dom, "clock", "offset", "variable");
        if (g_ascii_strcasecmp(tz, "localtime") == 0) {
            attr(clock, "adjustment", "0");
            attr(clock, "basis", "localtime");
        } else {
            gboolean digits = *tz != '\0';
            for (const char *p = tz; *p; p++)
                digits = digits && g_ascii_isdigit(*p);
            attr(clock, "adjustment", digits ? tz : "0");
            attr(clock, "basis", "utc");
        }
    } else {
        xmlNodePtr clock = child_attr(dom, "clock", "offset", "utc");
        attr(clock, "adjustment", "reset");
        xmlNodePtr timer = child_attr(clock, "timer", "name", "tsc");
        attr(timer, "mode", "native");
    }
    on_events(dom);

    xmlNodePtr devs = child(dom, "devices", NULL);
    guint other = 0;
    for (guint i = 0; i < s->disks->len; i++) {
        const QubesVmDisk *d = s->disks->pdata[i];
        g_autofree char *target = qubes_vm_disk_target(s->hv, d->name, &other);
        if (!target)
            continue;
        xmlNodePtr disk = child_attr(devs, "disk", "type", "block");
        attr(disk, "device", "disk");
        child_attr(disk, "driver", "name", "phy");
        child_attr(disk, "source", "dev", d->path);
        child_attr(disk, "target", "dev", target);
        if (!d->rw)
            child(disk, "readonly", NULL);
        if (d->backend_domain)
            child_attr(disk, "backenddomain", "name", d->backend_domain);
    }
    if (s->nic) {
        xmlNodePtr nic = child_attr(devs, "interface", "type", "ethernet");
        child_attr(nic, "mac", "address", s->nic->mac);
        child_attr(nic, "ip", "address", s->nic->ip);
        if (s->nic->ip6) {
            xmlNodePtr ip6 = child_attr(nic, "ip", "address", s->nic->ip6);
            attr(ip6, "family", "ipv6");
        }
        child_attr(nic, "backenddomain", "name", s->nic->backend_domain);
        child_attr(nic, "script", "path", "vif-route-qubes");
    }
    if (hvm) {
        xmlNodePtr emu =
            child_attr(devs, "emulator", "type",
                       s->stubdom_legacy ? "stubdom" : "stubdom-linux");
        if (s->emulator_cmdline)
            attr(emu, "cmdline", s->emulator_cmdline);
        if (s->stubdom_mem) {
            g_autofree char *kib =
                g_strdup_printf("%" G_GUINT64_FORMAT, s->stubdom_mem * 1024);
            attr(emu, "memory", kib);
        }
        xmlNodePtr input = child_attr(devs, "input", "type", "tablet");
        attr(input, "bus", "usb");
        xmlNodePtr video = child(devs, "video", NULL);
        child_attr(video, "model", "type", "vga");
        child_attr(devs, "graphics", "type", "qubes");
    }
    xmlNodePtr con = child_attr(devs, "console", "type", "pty");
    xmlNodePtr tgt = child_attr(con, "target", "type", "xen");
    attr(tgt, "port", "0");
}

char *qubes_vm_emulator_cmdline(gboolean legacy, gint64 audio_xid,
                                gboolean networked, const char *ip,
                                const char *dns0, const char *dns1,
                                const char *gw)
{
#define OR_EMPTY(x) ((x) ? (x) : "")
    GString *c = g_string_new(NULL);
    if (!legacy && audio_xid >= 0)
        g_string_append_printf(c, "-qubes-audio:audiovm_xid=%" G_GINT64_FORMAT,
                               audio_xid);
    if (networked) {
        if (c->len)
            g_string_append_c(c, ' ');
        if (legacy)
            g_string_append_printf(c,
                                   "-net lwip,client_ip=%s,server_ip=%s,"
                                   "dns=%s,gw=%s,netmask=255.255.255.255",
                                   OR_EMPTY(ip), OR_EMPTY(dns1), OR_EMPTY(dns0),
                                   OR_EMPTY(gw));
        else
            g_string_append_printf(c,
                                   "-qubes-net:client_ip=%s,dns_0=%s,"
                                   "dns_1=%s,gw=%s,netmask=255.255.255.255",
                                   OR_EMPTY(ip), OR_EMPTY(dns0), OR_EMPTY(dns1),
                                   OR_EMPTY(gw));
    }
#undef OR_EMPTY
    if (!c->len) {
        g_string_free(c, TRUE);
        return NULL;
    }
    return g_string_free(c, FALSE);
}

/* ---- QEMU/KVM ---- */

static void qemu_xml(xmlNodePtr dom, const QubesVmSpec *s)
{
    gboolean hvm = g_strcmp0(s->virt_mode, "hvm") == 0;
    if (s->hv == QUBES_HV_KVM) {
        xmlNodePtr cpu = child_attr(dom, "cpu", "mode", "host-passthrough");
        xmlNodePtr f = child_attr(cpu, "feature", "name", "vmx");
        attr(f, "policy", "disable");
        f = child_attr(cpu, "feature", "name", "svm");
        attr(f, "policy", "disable");
    }
    xmlNodePtr os = child(dom, "os", NULL);
    xmlNodePtr type = child(os, "type", "hvm");
    attr(type, "arch", "x86_64");
    attr(type, "machine", "pc");
    if (hvm) {
        if (s->uefi)
            attr(os, "firmware", "efi");
        child_attr(os, "boot", "dev", "cdrom");
        child_attr(os, "boot", "dev", "hd");
        /* a kernel set: booted directly, as Xen's stubdomain boots it
         * (QEMU refuses a command line without a kernel) */
        kernel_boot(os, s);
    } else {
        /* pvh and pv have no meaning here: both boot the qube's kernel
         * directly, as Xen's pvh does. */
        kernel_boot(os, s);
    }
    if (s->cmdline && s->kernel_dir)
        child(os, "cmdline", s->cmdline);
    xmlNodePtr feat = child(dom, "features", NULL);
    child(feat, "acpi", NULL);
    child(feat, "apic", NULL);
    child_attr(dom, "clock", "offset", "utc");
    on_events(dom);

    xmlNodePtr devs = child(dom, "devices", NULL);
    guint other = 0;
    for (guint i = 0; i < s->disks->len; i++) {
        const QubesVmDisk *d = s->disks->pdata[i];
        g_autofree char *target = qubes_vm_disk_target(s->hv, d->name, &other);
        if (!target)
            continue;
        xmlNodePtr disk =
            child_attr(devs, "disk", "type", d->is_block ? "block" : "file");
        attr(disk, "device", "disk");
        /* discard='unmap': a guest's TRIM punches holes in the image, so
         * that what it frees is freed on the host (online discard). The
         * host page cache is used (writeback): a guest's flush is an
         * fdatasync of the image, which is what makes its fsync durable. */
        xmlNodePtr drv = child_attr(disk, "driver", "name", "qemu");
        attr(drv, "type", "raw");
        attr(drv, "cache", "writeback");
        attr(drv, "discard", "unmap");
        child_attr(disk, "source", d->is_block ? "dev" : "file", d->path);
        xmlNodePtr t = child_attr(disk, "target", "dev", target);
        attr(t, "bus", "virtio");
        /* The guest finds each volume by name under /dev/disk/by-id
         * (virtio-root, virtio-private, ...), whatever the order. */
        g_autofree char *serial = g_strndup(d->name, 20);
        child(disk, "serial", serial);
        if (!d->rw)
            child(disk, "readonly", NULL);
    }
    if (s->nic) {
        xmlNodePtr nic = child_attr(devs, "interface", "type", "bridge");
        child_attr(nic, "mac", "address", s->nic->mac);
        child_attr(nic, "source", "bridge", s->nic->bridge);
        if (s->nic->tap)
            child_attr(nic, "target", "dev", s->nic->tap);
        child_attr(nic, "model", "type", "virtio");
    }
    xmlNodePtr serial = child_attr(devs, "serial", "type", "pty");
    if (s->console_log) {
        xmlNodePtr log = child_attr(serial, "log", "file", s->console_log);
        attr(log, "append", "on");
    }
    child_attr(serial, "target", "port", "0");
    xmlNodePtr con = child_attr(devs, "console", "type", "pty");
    xmlNodePtr tgt = child_attr(con, "target", "type", "serial");
    attr(tgt, "port", "0");
    /* The balloon reports the guest's memory every second, for the
     * balancer (not for a qube whose memory is fixed: qmemmand leaves a
     * domain that reports nothing alone, as the reference's leaves one
     * without meminfo-writer); a guest squeezed below what it needs
     * deflates it rather than dying (autodeflate). */
    xmlNodePtr balloon = child_attr(devs, "memballoon", "model", "virtio");
    attr(balloon, "autodeflate", "on");
    if (s->maxmem)
        child_attr(balloon, "stats", "period", "1");
}

char *qubes_vm_spec_to_xml(const QubesVmSpec *s)
{
    xmlDocPtr doc = xmlNewDoc(BAD_CAST "1.0");
    xmlNodePtr dom = xmlNewNode(NULL, BAD_CAST "domain");
    xmlDocSetRootElement(doc, dom);
    attr(dom, "type", qubes_hv_type_name(s->hv));
    child(dom, "name", s->name);
    child(dom, "uuid", s->uuid);
    memory_elements(dom, s);
    if (s->hv == QUBES_HV_XEN)
        xen_xml(dom, s);
    else
        qemu_xml(dom, s);

    xmlBufferPtr buf = xmlBufferCreate();
    xmlNodeDump(buf, doc, dom, 0, 1);
    char *out = g_strconcat((const char *)xmlBufferContent(buf), "\n", NULL);
    xmlBufferFree(buf);
    xmlFreeDoc(doc);
    return out;
}

/* ---- PCI devices ---- */

static gboolean parse_sbdf(const char *sbdf, unsigned *dom, unsigned *bus,
                           unsigned *slot, unsigned *fn)
{
    int end = 0;
    return sbdf &&
           sscanf(sbdf, "%4x:%2x:%2x.%1x%n", dom, bus, slot, fn, &end) == 4 &&
           sbdf[end] == '\0' && *slot < 32 && *fn < 8;
}

char *qubes_vm_pci_hostdev_xml(QubesHvType hv, const char *sbdf,
                               gboolean no_strict_reset, gboolean permissive,
                               gboolean power_mgmt)
{
    unsigned d = 0, b = 0, s = 0, f = 0;
    if (!parse_sbdf(sbdf, &d, &b, &s, &f))
        return NULL;
    gboolean xen = hv == QUBES_HV_XEN;
    return g_strdup_printf(
        "<hostdev mode='subsystem' type='pci' managed='yes'%s><source%s%s>"
        "<address domain='0x%04x' bus='0x%02x' slot='0x%02x' "
        "function='0x%x'/></source></hostdev>",
        xen && no_strict_reset ? " nostrictreset='yes'" : "",
        xen && permissive ? " writeFiltering='no'" : "",
        xen && power_mgmt ? " powerManagementFiltering='no'" : "", d, b, s, f);
}

static gboolean hex_attr(xmlNodePtr n, const char *name, unsigned max,
                         unsigned *out)
{
    xmlChar *v = xmlGetProp(n, BAD_CAST name);
    char *end = NULL;
    guint64 x = v ? g_ascii_strtoull((const char *)v, &end, 0) : G_MAXUINT64;
    gboolean ok = v && end != (char *)v && !*end && x <= max;
    xmlFree(v);
    *out = (unsigned)x;
    return ok;
}

static gboolean named(xmlNodePtr n, const char *name)
{
    return n->type == XML_ELEMENT_NODE &&
           strcmp((const char *)n->name, name) == 0;
}

GPtrArray *qubes_vm_pci_hostdevs(const char *xml)
{
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
    xmlDocPtr doc = xmlReadMemory(xml, (int)strlen(xml), "domain.xml", NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR |
                                      XML_PARSE_NOWARNING);
    xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;
    for (xmlNodePtr devs = root ? root->children : NULL; devs;
         devs = devs->next) {
        if (!named(devs, "devices"))
            continue;
        for (xmlNodePtr h = devs->children; h; h = h->next) {
            if (!named(h, "hostdev"))
                continue;
            xmlChar *type = xmlGetProp(h, BAD_CAST "type");
            gboolean pci = type && strcmp((const char *)type, "pci") == 0;
            xmlFree(type);
            for (xmlNodePtr src = pci ? h->children : NULL; src;
                 src = src->next) {
                if (!named(src, "source"))
                    continue;
                for (xmlNodePtr a = src->children; a; a = a->next) {
                    unsigned d, b, s, f;
                    if (named(a, "address") &&
                        hex_attr(a, "domain", 0xffff, &d) &&
                        hex_attr(a, "bus", 0xff, &b) &&
                        hex_attr(a, "slot", 0x1f, &s) &&
                        hex_attr(a, "function", 0x7, &f))
                        g_ptr_array_add(
                            out,
                            g_strdup_printf("%04x:%02x:%02x.%x", d, b, s, f));
                }
            }
        }
    }
    if (doc)
        xmlFreeDoc(doc);
    return out;
}
