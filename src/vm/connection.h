/* connection.h: the runtime's connection to libvirt (connection.c).
 *
 * libvirt's lifecycle events set each qube's state (a stop becomes
 * vm-stop.h's rt_domain_gone). On each connection the runtime resyncs:
 * running qubes are adopted (state, id, their attached host devices and
 * links; their storage stays started), the others are treated as
 * stopped; the first time, the storage of halted qubes is brought to
 * rest, DispVMs left by a crash go, the firewall table is made anew,
 * and then the preloads and the autostart begin. A lost connection
 * (libvirtd gone or hanging: keepalive) is dropped and retried every
 * second. */
#pragma once

#include "runtime-state.h"

G_BEGIN_DECLS

/* Connects now, or keeps retrying in the background (logged once). */
void rt_connection_open(QubesRuntime *rt);
/* Stops retrying and closes the connection. */
void rt_connection_close(QubesRuntime *rt);

G_END_DECLS
