/* domain-spec.c: the domain XML a qube is created from (domain-spec.h). */
#include "domain-spec.h"

#include "netfilter.h"
#include "runtime-state.h"

#include <string.h>
#include <sys/stat.h>

/* The reference's config.defaults['kernelopts_common'], with the console
 * on the serial port on QEMU (there is no Xen console there). */
#define KERNELOPTS_COMMON_XEN                                                  \
    "root=/dev/mapper/dmroot ro nomodeset console=hvc0 rd_NO_PLYMOUTH "        \
    "rd.plymouth.enable=0 plymouth.enable=0 "
#define KERNELOPTS_COMMON_QEMU                                                 \
    "root=/dev/mapper/dmroot ro nomodeset console=ttyS0 rd_NO_PLYMOUTH "       \
    "rd.plymouth.enable=0 plymouth.enable=0 "
static char *kernel_dir(QubesDomain *dom)
{
    QubesVolume *k = qubes_domain_get_volume(dom, "kernel");
    if (!k)
        return NULL;
    g_autofree char *modules = qubes_volume_get_path(k);
    return modules ? g_path_get_dirname(modules) : NULL;
}

static char *kernelopts_common(QubesRuntime *rt, const char *kdir)
{
    g_autofree char *path =
        g_build_filename(kdir, "default-kernelopts-common.txt", NULL);
    char *text = NULL;
    if (g_file_get_contents(path, &text, NULL, NULL)) {
        g_strchomp(text);
        return text;
    }
    return g_strdup(rt->cfg.hv == QUBES_HV_XEN ? KERNELOPTS_COMMON_XEN
                                               : KERNELOPTS_COMMON_QEMU);
}

/* On QEMU there is no qubesdb: the addresses the reference writes there
 * go on the kernel command line, for a guest without Qubes agents.
 * `ip=IP::GATEWAY:NETMASK:NAME:eth0:off:DNS1:DNS2` (the kernel's and
 * initramfs-tools' syntax) for a qube with a netvm, its values the
 * reference's visible_ip, visible_gateway, visible_netmask and dns (the
 * netmask is 255.255.255.255: the gateway is reached with an on-link
 * route, as in Qubes); `qubes.gateway=IP` for a qube that provides
 * network, the address it answers its clients on. */
static void append_net_cmdline(QubesVmSpec *s, QubesDomain *dom,
                               QubesDomain *net)
{
    GString *c = g_string_new(s->cmdline);
    if (net) {
        g_autofree char *ip = qubes_domain_prop(dom, "visible_ip");
        g_autofree char *gw = qubes_domain_prop(dom, "visible_gateway");
        g_autofree char *mask = qubes_domain_prop(dom, "visible_netmask");
        g_autofree char *dns = qubes_domain_prop(dom, "dns");
        g_auto(GStrv) d = g_strsplit(dns ? dns : "", " ", 3);
        g_string_append_printf(c, " ip=%s::%s:%s:%s:eth0:off:%s:%s",
                               ip ? ip : "", gw ? gw : "", mask ? mask : "",
                               dom->name, d[0] ? d[0] : "",
                               d[0] && d[1] ? d[1] : "");
    }
    if (qubes_domain_flag(dom, "provides_network")) {
        g_autofree char *gw = qubes_domain_prop(dom, "gateway");
        if (gw && *gw)
            g_string_append_printf(c, " qubes.gateway=%s", gw);
    }
    g_free(s->cmdline);
    s->cmdline = g_string_free(c, FALSE);
}

/* Xen hvm: the legacy (mini-os) stubdomain rather than the Linux one,
 * when the linux-stubdom feature (the template's too) is set off. */
gboolean rt_legacy_stubdom(QubesDomain *dom)
{
    const char *ls = qubes_domain_feature_check(dom, "linux-stubdom", TRUE,
                                                FALSE, FALSE, NULL);
    return ls && !rt_feature_with_template(dom, "linux-stubdom");
}

/* Xen hvm: the stubdomain's kind, memory and command line (domxml.h),
 * from the linux-stubdom feature, stubdom_mem, the audio domain when it
 * runs, and the network: the qube's ip and dns, its netvm's gateway. */
static void set_emulator(QubesVmSpec *s, QubesDomain *dom, QubesDomain *net)
{
    s->stubdom_legacy = rt_legacy_stubdom(dom);
    s->stubdom_mem = rt_prop_u64(dom, "stubdom_mem");
    g_autofree char *audio = qubes_domain_prop(dom, "audiovm");
    QubesDomain *a =
        audio && *audio ? g_hash_table_lookup(dom->app->by_name, audio) : NULL;
    gint64 audio_xid = !a ? -1 : a->qid == 0 ? 0 : a->xid;
    g_autofree char *ip = net ? qubes_domain_prop(dom, "ip") : NULL;
    g_autofree char *gw = net ? qubes_domain_prop(net, "gateway") : NULL;
    g_autofree char *dns = net ? qubes_domain_prop(dom, "dns") : NULL;
    g_auto(GStrv) d = g_strsplit(dns ? dns : "", " ", 3);
    s->emulator_cmdline =
        qubes_vm_emulator_cmdline(s->stubdom_legacy, audio_xid, net != NULL, ip,
                                  d[0], d[0] ? d[1] : NULL, gw);
}

char *qubes_runtime_domain_xml(QubesRuntime *rt, QubesDomain *dom,
                               GError **error)
{
    g_autoptr(QubesVmSpec) s = qubes_vm_spec_new();
    s->hv = rt->cfg.hv;
    s->name = g_strdup(dom->name);
    s->uuid = qubes_domain_prop(dom, "uuid");
    s->memory = rt_prop_u64(dom, "memory");
    s->maxmem = rt_prop_u64(dom, "maxmem");
    s->vcpus = (guint)MAX(rt_prop_u64(dom, "vcpus"), 1);
    s->virt_mode = qubes_domain_prop(dom, "virt_mode");
    if (!s->virt_mode)
        s->virt_mode = g_strdup("pvh");
    /* The reference fixes the memory of a qube that cannot balloon:
     * maxmem 0, or PCI devices assigned (a device's DMA cannot follow a
     * balloon; qmemmand then leaves the qube alone, as it has no
     * balloon to read). */
    if (s->maxmem < s->memory || qubes_domain_has_assignment(dom, "pci"))
        s->maxmem = 0;
    g_autofree char *kernel = qubes_domain_prop(dom, "kernel");
    if (kernel && *kernel) {
        s->kernel_dir = kernel_dir(dom);
        if (s->kernel_dir) {
            g_autofree char *initramfs =
                g_build_filename(s->kernel_dir, "initramfs", NULL);
            s->initramfs = g_file_test(initramfs, G_FILE_TEST_IS_REGULAR);
        }
        if (!s->kernel_dir) {
            g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                        "Kernel %s of %s has no files", kernel, dom->name);
            return NULL;
        }
        g_autofree char *opts = qubes_domain_prop(dom, "kernelopts");
        if (rt_feature_with_template(dom, "no-default-kernelopts")) {
            s->cmdline = g_strdup(opts ? opts : "");
        } else {
            g_autofree char *common = kernelopts_common(rt, s->kernel_dir);
            s->cmdline = g_strconcat(common, opts ? opts : "", NULL);
        }
    }
    s->uefi = rt_feature_with_template(dom, "uefi");
    const char *tz =
        qubes_domain_feature_check(dom, "timezone", TRUE, FALSE, FALSE, NULL);
    s->timezone = g_strdup(tz);

    g_autoptr(GPtrArray) vols = qubes_domain_volume_refs(dom);
    for (guint i = 0; i < vols->len; i++) {
        QubesVolume *v = vols->pdata[i];
        g_autofree char *path = qubes_volume_get_path(v);
        if (!path)
            continue; /* a kernel volume of "no kernel" */
        /* modules.img is attached only when the kernel has one
         * (master's LinuxModules.block_device) */
        if (strcmp(v->name, "kernel") == 0 &&
            !g_file_test(path, G_FILE_TEST_EXISTS))
            continue;
        struct stat st;
        gboolean block = stat(path, &st) == 0 && S_ISBLK(st.st_mode);
        qubes_vm_spec_add_disk(s, v->name, path, v->rw, block, NULL);
    }

    QubesDomain *net = qubes_domain_get_netvm(dom);
    if (net) {
        QubesVmNic *nic = g_new0(QubesVmNic, 1);
        nic->mac = qubes_domain_prop(dom, "mac");
        nic->ip = qubes_domain_prop(dom, "ip");
        nic->ip6 = qubes_domain_prop(dom, "ip6");
        if (nic->ip6 && !*nic->ip6)
            g_clear_pointer(&nic->ip6, g_free);
        nic->backend_domain = g_strdup(net->name);
        nic->bridge = g_strdup_printf("qbr%u", dom->qid);
        if (rt_uses_links(rt))
            nic->tap = qubes_nf_tap_name(dom->qid);
        s->nic = nic;
    }
    if (rt->cfg.hv == QUBES_HV_XEN && strcmp(s->virt_mode, "hvm") == 0)
        set_emulator(s, dom, net);
    if (rt_uses_links(rt) && s->cmdline)
        append_net_cmdline(s, dom, net);
    if (rt->cfg.hv != QUBES_HV_XEN && rt->cfg.log_dir) {
        g_autofree char *f = g_strdup_printf("guest-%s.log", dom->name);
        s->console_log = g_build_filename(rt->cfg.log_dir, f, NULL);
    }
    return qubes_vm_spec_to_xml(s);
}
