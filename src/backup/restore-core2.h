/* restore-core2.h: the qubes.xml of a format 3 backup (Qubes R3's
 * QubesVmCollection), read into restore-plan.h's qubes as the Qubes
 * client's qubesadmin/backup/core2.py reads it:
 *
 * - the classes QubesAdminVm, QubesTemplateVm, QubesTemplateHVm,
 *   QubesAppVm, QubesHVm, QubesNetVm and QubesProxyVm, in that order
 *   (each in the file's order), become AdminVM, TemplateVM, StandaloneVM
 *   (no template) and AppVM, with dom0 first when the file has none;
 * - the properties R3 had are kept when they are not R3's default
 *   (include_in_backups, qrexec_timeout, vcpus, memory, maxmem,
 *   default_user, debug, mac, autostart; kernel and kernelopts when not
 *   "uses_default"); an HVM gets virt_mode hvm, no kernel and the feature
 *   linux-stubdom off; NetVm and ProxyVm provide network, a NetVm has no
 *   netvm; templates and standalone qubes get the features qrexec and
 *   gui; internal, the services (a Python dict literal: ntpd,
 *   qubes-update-check and meminfo-writer under their R4 feature names,
 *   the others under their own) and the PCI devices (a Python list
 *   literal, "00:19.0" as port "00_19.0", required) follow;
 * - netvm when not the default, and the netvm of a qube's disposables
 *   when it differs from the default netvm: default_dispvm becomes
 *   "disp-NETVM" (or "disp-no-netvm"), a disposable template made for it
 *   (label red, no data);
 * - a qube is in the backup when backup_content is True; backup_path and
 *   backup_size say where and how much.
 *
 * The file is untrusted: parsed by libxml2 without network or DTD, every
 * reference to a qid checked, the Python literals read by a parser of
 * their few forms (strings, True, False, None, numbers), anything else
 * refused with a QubesException naming the qube.
 */
#pragma once

#include "restore-plan.h"

G_BEGIN_DECLS

/* The qubes of @untrusted (@len bytes), QubesRestoreVM in the client's
 * order, for qubes_restore_info_from_vms(); NULL with a QubesException
 * "qubes.xml (backup): WHY". */
GPtrArray *qubes_restore_core2_vms(const char *untrusted, gsize len,
                                   GError **error);

/* A qube's firewall.xml of format 3 (R3's QubesFirewallRules: a policy,
 * dns and icmp, and rules of address/netmask, proto, port/toport and
 * expire), as core2.py's handle_firewall_xml turns it into R4 rules: the
 * admin.vm.firewall.Set payload, one rule a line (new); NULL with a
 * QubesException naming @vm when it does not parse. */
char *qubes_restore_core2_firewall(const char *untrusted, gsize len,
                                   const char *vm, GError **error);

G_END_DECLS
