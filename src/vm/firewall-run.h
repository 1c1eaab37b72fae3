/* firewall-run.h: each qube's firewall in the kernel, on QEMU
 * (firewall-run.c; the rules as nftables commands: netfilter.h).
 *
 * A client's rules are written into the kernel before its NIC exists
 * (at its start, before the domain is made), again when they change
 * (firewall-changed: a Set, a Reload, an expiry) or its DNS servers do
 * (a netvm change), and dropped when it stops. When qubesd starts, the
 * table is made anew in one transaction with the chains of the clients
 * that run. The jobs run on one worker, in the order they were asked:
 * each reads firewall.xml when it runs, so the last one writes the
 * current rules. A firewall.xml that cannot be read or a host name that
 * does not resolve leaves the qube with nothing allowed (fail closed),
 * logged; only nftables refusing the transaction fails a start. */
#pragma once

#include "runtime-state.h"

G_BEGIN_DECLS

/* Made and freed with the runtime: the worker and the firewall-changed
 * handler (rt->handlers[4]); the finish waits for the jobs asked. */
void rt_firewall_start(QubesRuntime *rt);
void rt_firewall_finish(QubesRuntime *rt);

/* Writes @dom's chain; @cb (NULL: the outcome is logged). */
void rt_nf_apply(QubesRuntime *rt, QubesDomain *dom, GAsyncReadyCallback cb,
                 gpointer data);
/* Drops @dom's chain (logged). */
void rt_nf_remove(QubesRuntime *rt, QubesDomain *dom);
/* Whether @dom has a link whose port its chain guards (or is starting:
 * its chain may have been written before the change). */
gboolean rt_nf_guarded(QubesRuntime *rt, QubesDomain *dom);
/* The table anew with the chains of the running clients in @alive
 * (QubesDomain* set), at qubesd's start; nothing is made when no qube
 * runs and no table is left. */
void rt_nf_reset(QubesRuntime *rt, GHashTable *alive);

G_END_DECLS
