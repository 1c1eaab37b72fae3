/* runtime.h: qubes run under libvirt.
 *
 * The runtime owns the connection to the hypervisor (libvirt: Xen's
 * libxl driver, or QEMU/KVM) and drives each qube's life the way the
 * reference's QubesVM.start/shutdown/kill/pause do: the same checks,
 * the same order, the same events (domain-pre-start, domain-spawn,
 * domain-start, domain-start-failed, domain-pre-shutdown,
 * domain-shutdown-failed, domain-stopped, domain-shutdown, domain-paused,
 * domain-unpaused) and the same exceptions.
 *
 * Threads: everything here is called on the main context. libvirt's
 * events reach it through libvirt-glib's GMainContext integration; every
 * libvirt call that can block (create, destroy, shutdown, info, ...) and
 * all storage work runs on GLib's worker threads, which see only copies
 * (the domain XML, the uuid) and volume references, never a QubesDomain.
 *
 * Domains are transient in libvirt: created from XML at each start and
 * gone when they stop, so nothing stale is left defined. A qube is found
 * by its uuid. When qubesd starts, running domains are adopted (their
 * storage stays started); the qubes that stopped while it was away get
 * their storage stopped. When libvirtd goes away the runtime reconnects
 * and resyncs the same way.
 *
 * This header is the runtime's whole public face: it makes and frees
 * the runtime, and includes the headers of the rooms whose calls the
 * daemon and the Admin API make:
 *   vm-start.h      a qube's start
 *   vm-stop.h       its shutdown, kill, and a DispVM's auto cleanup
 *   vm-pause.h      pause, unpause, suspend, resume
 *   vm-query.h      what the hypervisor says of it: info, stats, console
 *   hotplug.h       dom0's block devices attached to running qubes,
 *                   and the devices attached at start
 *   pci-run.h       dom0's PCI devices in running qubes
 *   domain-spec.h   the domain XML a qube is created from
 * The rooms behind them, each with its header (runtime-state.h says who
 * calls whom): runtime-state (the shared state and small helpers),
 * libvirt-ops (libvirt calls on workers), storage-run (volumes on
 * workers), net-links (bridges and links between qubes), firewall-run
 * (nftables jobs), memory-request (qmemmand), connection (libvirt's
 * connection and events), autostart, and preload-run (preloaded
 * disposables).
 */
#pragma once

#include "app.h"
#include "domain-spec.h"
#include "hotplug.h"
#include "pci-run.h"
#include "runtime-config.h"
#include "vm-pause.h"
#include "vm-query.h"
#include "vm-start.h"
#include "vm-stop.h"

G_BEGIN_DECLS

/* The runtime's preloaded disposables (preload-run.h); NULL without. */
QubesPreload *qubes_runtime_preload(QubesRuntime *rt);

/* The default URI: xen:///system when /proc/xen exists, else
 * qemu:///system (static). */
const char *qubes_runtime_default_uri(void);
/* The default domain type for @uri: xen for a Xen URI; else kvm when
 * /dev/kvm exists, qemu (TCG) otherwise. */
QubesHvType qubes_runtime_default_hv(const char *uri);

/* Makes the runtime of @app (app->runtime) and connects. A connection
 * that fails is logged and retried in the background: until it comes,
 * every qube but dom0 is Halted and starts fail with the cause. Storage
 * of halted qubes is brought to rest once the running ones are known
 * (qubesd must not stop a running qube's volumes). */
QubesRuntime *qubes_runtime_new(QubesApp *app, const QubesRuntimeConfig *cfg);
/* Stops watching libvirt (running qubes keep running). */
void qubes_runtime_free(QubesRuntime *rt);

/* Whether libvirt answers now. */
gboolean qubes_runtime_connected(QubesRuntime *rt);
/* The end of any of the runtime's operations whose result is only
 * success or an error (start, shutdown, kill, pause, attach, ...). */
gboolean qubes_runtime_op_finish(GAsyncResult *res, GError **error);

G_END_DECLS
