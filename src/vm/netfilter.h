/* netfilter.h: a qube's firewall rules enforced on the host (QEMU/KVM).
 *
 * On QEMU each client qube has its own link to its netvm (net-links.c): a
 * bridge qbrQID whose port on the host side of the qube's NIC is the tap
 * qcliQID. Every frame the qube sends crosses that port before its
 * netvm sees it, so the qube's rules (firewall.h) are enforced there,
 * in the host's kernel, with nftables: a compromised netvm cannot open
 * what the user closed, and a compromised qube cannot step around its
 * rules (they bind to the port, not to an address it could change).
 *
 * One table, bridge qubes-firewall: the base chains forward and input
 * send a frame that entered by a qube's port (map "clients", tap name
 * to verdict) to that qube's chain qube-QID, which holds its rules in
 * order and ends with the reference's policy, drop. ARP and IPv6
 * neighbour discovery pass first (the link needs them; in Qubes they
 * never reach the netvm's forward chain either). The kernel here has
 * no connection tracking on bridges, so the filter is stateless: the
 * rules decide every packet the qube sends, a change applies to
 * connections already open, and a reply the qube sends to a connection
 * opened toward it needs its destination allowed too.
 *
 * Each change is one nftables transaction (libnftables): the kernel
 * takes all of it or none, so a qube's chain is never seen half
 * written. Calls are serialized and blocking: run them on a worker.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define QUBES_NF_TABLE "qubes-firewall"

/* A client qube as its chain is written. */
typedef struct {
    guint qid;
    char *tap;        /* the host's end of its NIC: qcliQID */
    GPtrArray *rules; /* QubesFwRule, in order */
    GStrv dns;        /* its DNS servers (specialtarget=dns), may be empty */
    /* dsthost names -> GStrv of their addresses, filled by
     * qubes_nf_resolve() */
    GHashTable *resolved;
} QubesNfClient;

/* The tap name of @qid's NIC. */
char *qubes_nf_tap_name(guint qid);

/* Resolves the host names of @c's rules (getaddrinfo, blocking); FALSE
 * with the name that did not resolve. */
gboolean qubes_nf_resolve(QubesNfClient *c, GError **error);

/* The nft commands that (re)write @c's chain and map it to its tap, base
 * chains included (idempotent). Expired rules (@now) are left out; a
 * rule naming a host not resolved matches nothing it could mean: the
 * whole chain is then drop-all (the reference's agent does the same
 * when it cannot resolve) and @error says why, with the script still
 * returned. */
char *qubes_nf_client_script(const QubesNfClient *c, gint64 now,
                             GError **error);

/* The commands that drop @qid's chain and its map element (idempotent). */
char *qubes_nf_remove_script(guint qid);

/* The commands that make the table anew: no client chain in it. The
 * caller appends the running clients' scripts to have it all in one
 * transaction. */
char *qubes_nf_reset_script(void);

/* Drops the table, if there is one. */
void qubes_nf_drop_table(void);

/* Runs @script as one transaction; FALSE with nft's message. */
gboolean qubes_nf_run(const char *script, GError **error);

void qubes_nf_client_clear(QubesNfClient *c);

G_END_DECLS
