/* vm-start.h: a qube's start (vm-start.c).
 *
 * The reference's QubesVM.start, in its order: domain-pre-start; the
 * storage verified; a halted netvm started first; the volumes started;
 * the devices to attach at start found (hotplug.h); the domain XML
 * (domain-spec.h); on QEMU the qube's bridge and firewall chain made
 * before its NIC exists (net-links.h, firewall-run.h); its memory asked
 * of qmemmand (memory-request.h); the domain created paused;
 * domain-spawn; the devices attached; resumed; domain-start; its link
 * plugged into its netvm, and a netvm's running clients plugged into it.
 * A failure before the domain exists fires domain-start-failed and stops
 * what was started; one after kills it (vm-stop.h) and fails the same
 * way. Further starts of a qube that is starting wait for that start. */
#pragma once

#include "app.h"

G_BEGIN_DECLS

/* As the reference's QubesVM.start (async; finish with
 * qubes_runtime_op_finish()). Start of a qube that is not halted does
 * nothing; a halted netvm is started first. */
void qubes_runtime_start(QubesRuntime *rt, QubesDomain *dom,
                         GAsyncReadyCallback cb, gpointer data);

G_END_DECLS
