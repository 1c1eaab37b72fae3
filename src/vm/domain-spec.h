/* domain-spec.h: what a qube is created from (domain-spec.c): its
 * domain XML, from its properties, features, volumes and netvm, through
 * domxml.h. The kernel command line is the reference's
 * kernelopts_common (or the kernel folder's
 * default-kernelopts-common.txt) and the qube's kernelopts; on QEMU the
 * addresses the reference writes to qubesdb go on it (ip=..., and
 * qubes.gateway= for a netvm), and the console goes to a log file. On
 * Xen hvm, the stubdomain's kind, memory and command line. */
#pragma once

#include "app.h"

G_BEGIN_DECLS

/* The domain XML the qube would start with now; NULL with @error set
 * when it cannot start. */
char *qubes_runtime_domain_xml(QubesRuntime *rt, QubesDomain *dom,
                               GError **error);

/* For the runtime's rooms: whether a Xen hvm @dom uses the legacy
 * (mini-os) stubdomain rather than the Linux one (the linux-stubdom
 * feature, the template's too, set off). */
gboolean rt_legacy_stubdom(QubesDomain *dom);

G_END_DECLS
