/* net-links.h: the links between qubes on QEMU (net-links.c).
 *
 * On QEMU there are no driver domains: each client qube gets its own
 * bridge, qbrQID, made by qubesd with no address and nothing routed by
 * the host. The client's NIC is on it from its start; its netvm gets a
 * NIC on it, hot-plugged while both run, whose MAC fe:ff:AA:BB:CC:DD
 * carries the client's address AA.BB.CC.DD so that a plain guest can
 * route to it. The bridge goes when the client stops. A netvm change on
 * a running qube moves its link (the reference's net.py). */
#pragma once

#include "runtime-state.h"

G_BEGIN_DECLS

/* Made and freed with the runtime: the table of links and the netvm
 * handlers (rt->handlers[0..3]). */
void rt_net_links_start(QubesRuntime *rt);
void rt_net_links_finish(QubesRuntime *rt);

/* Makes (@add) or removes @dom's bridge on a worker. */
void rt_run_bridge(QubesDomain *dom, gboolean add, GAsyncReadyCallback cb,
                   gpointer data);
/* A callback for a link step: logs "@data: done" or its failure
 * (@data: a string, freed). */
void rt_link_done(GObject *src, GAsyncResult *res, gpointer data);
/* Remembers that @client's link is plugged into @netvm (an adopted
 * qube's, plugged by the qubesd that started it). */
void rt_link_remember(QubesRuntime *rt, QubesDomain *client,
                      QubesDomain *netvm);
/* Connects @client to @netvm when both run; an error is logged and
 * stops nothing (the seed's rule). */
void rt_link_connect(QubesRuntime *rt, QubesDomain *client, QubesDomain *netvm);
/* Unplugs @client's link from the netvm it is plugged into, if any. */
void rt_link_disconnect(QubesRuntime *rt, QubesDomain *client);
/* A netvm just started: its running clients are connected. */
void rt_link_clients(QubesRuntime *rt, QubesDomain *netvm);
/* A netvm stopped: the links plugged into it went with it. */
void rt_links_gone_with(QubesRuntime *rt, QubesDomain *netvm);

G_END_DECLS
