/* test-restore-core2: src/backup/restore-core2.c, a format 3 backup's
 * qubes.xml read as the client's core2.py reads it. A collection of our
 * own making, with every rule in it: the class order, dom0 added, the
 * properties kept only when not R3's default, kernel and kernelopts by
 * their uses_default, HVMs, network qubes, the features of templates and
 * standalones, internal, the services under their R4 names and values,
 * PCI devices, netvm when not the default, disposable templates made for
 * a differing dispvm netvm, and what is in the backup. Then hostile ones:
 * a DOCTYPE, a qid that names nobody, literals that are not, a size that
 * is not a number, another root; each refused naming the qube. And a
 * qube's R3 firewall.xml into R4 rules, with its refusals.
 * (By hand, this reading also matched the client's own Core2Qubes on the
 * client's test collections, line for line.) */
#include "qubes-error.h"
#include "restore-core2.h"

#include <string.h>

static const char *collection =
    "<?xml version='1.0' encoding='UTF-8'?>\n"
    "<QubesVmCollection default_netvm='3' default_template='1'>"
    "<QubesAppVm qid='5' name='work' label='green' template_qid='1'"
    " uses_default_netvm='True' memory='400' maxmem='4000' vcpus='4'"
    " services=\"{'ntpd': True, 'cups': False, 'meminfo-writer': None,"
    " 'n': 3, 's': 'x'}\" backup_content='True' backup_path='appvms/work'"
    " backup_size='1048576'/>"
    "<QubesTemplateVm qid='1' name='fedora' label='black' template_qid='none'"
    " kernel='4.4' uses_default_kernel='False' kernelopts='None'"
    " uses_default_kernelopts='false' backup_content='True'"
    " backup_path='vm-templates/fedora'/>"
    "<QubesNetVm qid='2' name='net' label='red' template_qid='1'"
    " pcidevs=\"['00:19.0', '03:00.0']\" internal='True'/>"
    "<QubesProxyVm qid='3' name='fw' label='green' template_qid='1'"
    " uses_default_netvm='False' netvm_qid='2'/>"
    "<QubesAppVm qid='6' name='solo' label='blue' template_qid='none'"
    " uses_default_netvm='False' netvm_qid='none' backup_content='True'"
    " backup_path='appvms/solo'/>"
    "<QubesHVm qid='7' name='win' label='purple' template_qid='none'"
    " uses_default_dispvm_netvm='False' dispvm_netvm_qid='2'"
    " backup_content='False'/>"
    "</QubesVmCollection>\n";

/* One line a qube, as the client's reading prints it. */
static char *dump(GPtrArray *vms)
{
    GString *s = g_string_new(NULL);
    for (guint i = 0; i < vms->len; i++) {
        const QubesRestoreVM *vm = vms->pdata[i];
        g_string_append_printf(
            s, "%s %s %s t=%s in=%d path=%s size=%" G_GUINT64_FORMAT "\n",
            vm->name, vm->klass, vm->label, vm->template ? vm->template : "-",
            vm->included, vm->backup_path ? vm->backup_path : "-", vm->size);
        for (guint p = 0; p + 1 < vm->properties->len; p += 2)
            g_string_append_printf(s, " p %s=%s\n",
                                   (char *)vm->properties->pdata[p],
                                   vm->properties->pdata[p + 1]
                                       ? (char *)vm->properties->pdata[p + 1]
                                       : "");
        for (guint p = 0; p + 1 < vm->features->len; p += 2)
            g_string_append_printf(s, " f %s=%s\n",
                                   (char *)vm->features->pdata[p],
                                   (char *)vm->features->pdata[p + 1]);
        for (guint p = 0; p < vm->devices->len; p++) {
            const QubesRestoreDevice *d = vm->devices->pdata[p];
            g_string_append_printf(s, " d %s %s %s %s\n", d->devclass,
                                   d->backend, d->port, d->mode);
        }
    }
    return g_string_free(s, FALSE);
}

static void test_reads_as_core2(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) vms =
        qubes_restore_core2_vms(collection, strlen(collection), &err);
    g_assert_no_error(err);
    g_autofree char *got = dump(vms);
    g_assert_cmpstr(got, ==,
                    /* no dom0 in the file: one is made, first */
                    "dom0 AdminVM black t=- in=0 path=- size=0\n"
                    /* templates before the rest */
                    "fedora TemplateVM black t=- in=1 "
                    "path=vm-templates/fedora size=0\n"
                    " p kernel=4.4\n"
                    " p kernelopts=\n"
                    " f qrexec=1\n"
                    " f gui=1\n"
                    "work AppVM green t=fedora in=1 path=appvms/work "
                    "size=1048576\n"
                    " p vcpus=4\n"
                    " f service.ntpd=1\n"
                    " f cups=\n"
                    " f service.meminfo-writer=None\n"
                    " f n=3\n"
                    " f s=x\n"
                    "solo StandaloneVM blue t=- in=1 path=appvms/solo size=0\n"
                    " p netvm=\n"
                    " p default_dispvm=disp-no-netvm\n"
                    " f qrexec=1\n"
                    " f gui=1\n"
                    "win StandaloneVM purple t=- in=0 path=- size=0\n"
                    " p virt_mode=hvm\n"
                    " p kernel=\n"
                    " p default_dispvm=disp-net\n"
                    " f linux-stubdom=\n"
                    "net AppVM red t=fedora in=0 path=- size=0\n"
                    " p provides_network=True\n"
                    " p netvm=\n"
                    " p default_dispvm=disp-no-netvm\n"
                    " f internal=1\n"
                    " d pci dom0 00_19.0 required\n"
                    " d pci dom0 03_00.0 required\n"
                    "fw AppVM green t=fedora in=0 path=- size=0\n"
                    " p provides_network=True\n"
                    " p netvm=net\n"
                    " p default_dispvm=disp-net\n"
                    /* the disposable templates, in the order first met */
                    "disp-no-netvm AppVM red t=- in=1 path=- size=0\n"
                    " p netvm=\n"
                    " p template_for_dispvms=True\n"
                    "disp-net AppVM red t=- in=1 path=- size=0\n"
                    " p netvm=net\n"
                    " p template_for_dispvms=True\n");
    /* and as a plan: the qubes in the backup, dom0's home not */
    QubesRestoreHost *host = qubes_restore_host_new();
    g_hash_table_insert(host->classes, g_strdup("dom0"), g_strdup("AdminVM"));
    QubesRestoreOptions opts = {.exclude = g_ptr_array_new()};
    g_autoptr(QubesRestoreInfo) info =
        qubes_restore_info_from_vms(g_steal_pointer(&vms), host, &opts, &err);
    g_assert_no_error(err);
    GString *names = g_string_new(NULL);
    for (guint i = 0; i < info->items->len; i++)
        g_string_append_printf(
            names, "%s ", ((QubesRestoreItem *)info->items->pdata[i])->name);
    g_assert_cmpstr(names->str, ==, "fedora work solo disp-no-netvm disp-net ");
    g_string_free(names, TRUE);
    g_ptr_array_unref(opts.exclude);
    qubes_restore_host_free(host);
}

static void test_hostile(void)
{
    const struct {
        const char *xml, *why;
    } cases[] = {
        {"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY e 'x'>]>"
         "<QubesVmCollection/>",
         "qubes.xml (backup): a DOCTYPE is not allowed"},
        {"<QubesVmCollection><QubesAppVm qid='5' name='a' "
         "template_qid='9'/></QubesVmCollection>",
         "qubes.xml (backup): a: no qube has the qid 9"},
        {"<QubesVmCollection><QubesAppVm qid='5' name='a'/>"
         "</QubesVmCollection>",
         "qubes.xml (backup): a: no template_qid"},
        {"<QubesVmCollection><QubesAppVm qid='x' name='a' "
         "template_qid='none'/></QubesVmCollection>",
         "qubes.xml (backup): a: a qid that is not a number"},
        {"<QubesVmCollection><QubesAppVm qid='5' name='a' template_qid='none'"
         " services=\"__import__('os')\"/></QubesVmCollection>",
         "qubes.xml (backup): a: services is not a Python dict literal"},
        {"<QubesVmCollection><QubesAppVm qid='5' name='a' template_qid='none'"
         " services=\"{'a': True,\"/></QubesVmCollection>",
         "qubes.xml (backup): a: services is not a Python dict literal"},
        {"<QubesVmCollection><QubesAppVm qid='5' name='a' template_qid='none'"
         " pcidevs=\"['00:19.0' + 'x']\"/></QubesVmCollection>",
         "qubes.xml (backup): a: pcidevs is not a Python list literal"},
        {"<QubesVmCollection><QubesAppVm qid='5' name='a' template_qid='none'"
         " backup_size='1e9'/></QubesVmCollection>",
         "qubes.xml (backup): a: a backup_size that is not a number"},
        {"<QubesVmCollection><QubesAppVm qid='5' template_qid='none'/>"
         "</QubesVmCollection>",
         "qubes.xml (backup): a qube without a name"},
        {"<QubesVmCollection default_netvm='7'/>",
         "qubes.xml (backup): no qube has the qid 7"},
        {"<qubes/>", "qubes.xml (backup): not a QubesVmCollection"},
        {"<QubesVmCollection>", "qubes.xml (backup): not XML"},
    };
    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GError) err = NULL;
        g_assert_null(
            qubes_restore_core2_vms(cases[i].xml, strlen(cases[i].xml), &err));
        g_assert_error(err, QUBES_ERROR, QUBES_ERROR_EXCEPTION);
        g_assert_cmpstr(err->message, ==, cases[i].why);
    }
}

/* R3's firewall.xml as core2.py turns it into R4 rules (the same rules
 * as the client's own reading, by hand, field order aside). */
static void test_firewall(void)
{
    const char *allow =
        "<QubesFirewallRules policy='allow' icmp='deny'>"
        "<rule address='fe80::1' netmask='64' port='22'/>"
        "<rule address='1.2.3.4' proto='any' expire='1700000000'/>"
        "<rule proto='udp' port='5' toport='6'/></QubesFirewallRules>";
    g_autoptr(GError) err = NULL;
    g_autofree char *a =
        qubes_restore_core2_firewall(allow, strlen(allow), "vm", &err);
    g_assert_no_error(err);
    g_assert_cmpstr(a, ==,
                    "action=accept specialtarget=dns\n"
                    "action=drop proto=icmp\n"
                    "action=drop dst6=fe80::1/64 proto=tcp dstports=22-22\n"
                    "action=drop dst4=1.2.3.4/32 expire=1700000000\n"
                    "action=drop proto=udp dstports=5-6\n"
                    "action=accept\n");
    const char *deny = "<QubesFirewallRules policy='deny' dns='allow'>"
                       "<rule address='example.org' port='443'/>"
                       "</QubesFirewallRules>";
    g_autofree char *d =
        qubes_restore_core2_firewall(deny, strlen(deny), "vm", &err);
    g_assert_cmpstr(d, ==,
                    "action=accept specialtarget=dns\n"
                    "action=drop proto=icmp\n"
                    "action=accept dsthost=example.org proto=tcp "
                    "dstports=443-443\n"
                    "action=drop\n");
    const struct {
        const char *xml, *why;
    } bad[] = {
        {"<QubesFirewallRules policy='maybe'/>",
         "qubes.xml (backup): vm: firewall.xml: a policy neither allow nor "
         "deny"},
        {"<QubesFirewallRules policy='deny'><rule port='x'/>"
         "</QubesFirewallRules>",
         "qubes.xml (backup): vm: firewall.xml: a rule with a bad number"},
        {"<QubesFirewallRules policy='deny'><rule address='1.2.3.4' "
         "netmask='33'/></QubesFirewallRules>",
         "qubes.xml (backup): vm: firewall.xml: a rule with a bad netmask"},
        {"<QubesFirewallRules policy='deny'><rule address='a b'/>"
         "</QubesFirewallRules>",
         "qubes.xml (backup): vm: firewall.xml: a rule with a bad address"},
        {"<QubesFirewallRules policy='deny'><rule proto='gre'/>"
         "</QubesFirewallRules>",
         "qubes.xml (backup): vm: firewall.xml: a rule with an unknown "
         "proto"},
        {"<x", "qubes.xml (backup): vm: firewall.xml does not parse"},
    };
    for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_clear_error(&err);
        g_assert_null(qubes_restore_core2_firewall(
            bad[i].xml, strlen(bad[i].xml), "vm", &err));
        g_assert_cmpstr(err->message, ==, bad[i].why);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/restore-core2/reads-as-core2", test_reads_as_core2);
    g_test_add_func("/restore-core2/hostile", test_hostile);
    g_test_add_func("/restore-core2/firewall", test_firewall);
    return g_test_run();
}
