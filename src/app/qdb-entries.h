/* qdb-entries.h: the QubesDB entries master writes for a qube as it
 * starts (qubes/vm/qubesvm.py create_qdb_entries, then the
 * domain-qdb-create handlers of the extensions audio, custom_persist,
 * gui, r3compatibility, services and vm_config, in that order), computed
 * from the model in one place: key, value, ... in master's order of
 * writing, a later write of a key replacing its value where it stands
 * and a removal dropping it.
 *
 * What comes from the host is given: the timezone's name (NULL: none,
 * as master without /etc/localtime) and the 64 random bytes of
 * /qubes-random-seed. What depends on other qubes running (the xids of a
 * running guivm and audiovm) is read from the model's power states.
 *
 * Not here: the network mixin's firewall entries of a network qube
 * (/qubes-firewall/..., /mapped-ip/..., /connected-ips: our firewall is
 * nftables on the host, src/vm/netfilter.c), r3compatibility's iptables
 * rules for agents older than the qubes-firewall feature, and the
 * entries written later while the qube runs. A bridge to the qube's
 * qubesdb-daemon writes these entries; it is not built yet (README).
 *
 * Errors: custom_persist refuses a custom-persist.* value that a
 * qubes.xml holds but its checks refuse (QubesValueError, master's
 * words), as master fails the start.
 */
#pragma once

#include "model.h"

G_BEGIN_DECLS

typedef struct {
    const char *timezone; /* e.g. "Europe/Warsaw"; NULL: none */
    const guint8 *seed;   /* 64 bytes */
} QubesQdbHost;

/* New array of strings: key, value, key, value, ... (NULL with @error). */
GPtrArray *qubes_qdb_entries(QubesDomain *vm, const QubesQdbHost *host,
                             GError **error);

G_END_DECLS
