/* vm-stop.h: a qube's stop (vm-stop.c): shutdown, kill, what follows a
 * stop, and DispVMs that remove themselves.
 *
 * Whatever stopped a qube (a shutdown, a kill, the guest powering off,
 * QEMU killed, a failed start), once libvirt says it is gone its
 * volumes are stopped (origins committed, snapshots dropped), then come
 * domain-stopped and domain-shutdown, its link, bridge and firewall chain
 * go (net-links.h, firewall-run.h), its attached devices are forgotten
 * (hotplug.h), a DispVM with auto_cleanup is removed, and whoever waited
 * for the stop is answered. */
#pragma once

#include "app.h"

G_BEGIN_DECLS

/* As the reference's QubesVM methods (async; finish with
 * qubes_runtime_op_finish()). Shutdown asks the guest (ACPI); with @wait
 * it completes when the qube stopped, failing with
 * QubesVMShutdownTimeoutError after @timeout seconds (<0: the qube's
 * shutdown_timeout). Kill completes when the qube stopped. */
void qubes_runtime_shutdown(QubesRuntime *rt, QubesDomain *dom, gboolean force,
                            gboolean wait, int timeout, GAsyncReadyCallback cb,
                            gpointer data);
void qubes_runtime_kill(QubesRuntime *rt, QubesDomain *dom,
                        GAsyncReadyCallback cb, gpointer data);
/* A halted DispVM with auto_cleanup goes (dispvm.py _auto_cleanup): out
 * of the model, then of qubes.xml, then its files. Nothing for another
 * qube. */
void qubes_runtime_auto_cleanup(QubesRuntime *rt, QubesDomain *dom);

/* For the runtime's rooms: */

/* The qube is gone from the hypervisor (a lifecycle event, a resync, a
 * start that failed once the domain existed): the stop as above.
 * Duplicates are ignored; during a start, the start handles it. */
void rt_domain_gone(QubesRuntime *rt, QubesDomain *dom);
/* Whether @dom is a DispVM that goes once halted. */
gboolean rt_auto_cleanup_due(QubesDomain *dom);

G_END_DECLS
