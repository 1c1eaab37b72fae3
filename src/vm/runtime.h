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
 */
#pragma once

#include "app.h"
#include "domxml.h"

G_BEGIN_DECLS

typedef struct _QubesPreload QubesPreload;
/* The runtime's preloaded disposables (preload-run.h); NULL without. */
QubesPreload *qubes_runtime_preload(QubesRuntime *rt);

typedef struct {
    char *uri; /* libvirt connection URI */
    QubesHvType hv;
    char *log_dir; /* guest console logs: LOG_DIR/guest-NAME.log */
    /* qmemmand's socket, asked for a qube's memory before it is created
     * (NULL: no balancer, the --no-memory-balancing path) */
    char *qmemman_socket;
    /* qmemmand's status socket: on Xen, autostart waits until dom0 has
     * reported its memory use there (NULL: no wait) */
    char *qmemman_status_socket;
    /* qmemmand's available-memory file (master's qmemman_avail_mem_file):
     * preloaded disposables are made only as far as it has room for them
     * (NULL: no balancer, preloads are not limited by memory) */
    char *qmemman_avail_mem_file;
    /* Autostart (qubes whose autostart is True, once the runtime knows
     * which qubes run) when this file is absent, which it then writes:
     * once per boot, the file being in /run (NULL: no autostart). */
    char *autostart_marker;
} QubesRuntimeConfig;

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

/* The lifecycle, as the reference's QubesVM methods (async; finish with
 * qubes_runtime_op_finish()). Start of a qube that is not halted does
 * nothing; a halted netvm is started first. Shutdown asks the guest
 * (ACPI); with @wait it completes when the qube stopped, failing with
 * QubesVMShutdownTimeoutError after @timeout seconds (<0: the qube's
 * shutdown_timeout). Kill completes when the qube stopped. */
void qubes_runtime_start(QubesRuntime *rt, QubesDomain *dom,
                         GAsyncReadyCallback cb, gpointer data);
void qubes_runtime_shutdown(QubesRuntime *rt, QubesDomain *dom, gboolean force,
                            gboolean wait, int timeout, GAsyncReadyCallback cb,
                            gpointer data);
void qubes_runtime_kill(QubesRuntime *rt, QubesDomain *dom,
                        GAsyncReadyCallback cb, gpointer data);
void qubes_runtime_pause(QubesRuntime *rt, QubesDomain *dom,
                         GAsyncReadyCallback cb, gpointer data);
void qubes_runtime_unpause(QubesRuntime *rt, QubesDomain *dom,
                           GAsyncReadyCallback cb, gpointer data);
void qubes_runtime_suspend(QubesRuntime *rt, QubesDomain *dom,
                           GAsyncReadyCallback cb, gpointer data);
void qubes_runtime_resume(QubesRuntime *rt, QubesDomain *dom,
                          GAsyncReadyCallback cb, gpointer data);
gboolean qubes_runtime_op_finish(GAsyncResult *res, GError **error);
/* A halted DispVM with auto_cleanup goes (dispvm.py _auto_cleanup): out
 * of the model, then of qubes.xml, then its files. Nothing for another
 * qube. */
void qubes_runtime_auto_cleanup(QubesRuntime *rt, QubesDomain *dom);

/* What the hypervisor says of a running qube (KiB, nanoseconds). */
typedef struct {
    guint64 mem;
    guint64 mem_static_max;
    guint64 cputime;
} QubesDomainInfo;
void qubes_runtime_info(QubesRuntime *rt, QubesDomain *dom,
                        GAsyncReadyCallback cb, gpointer data);
gboolean qubes_runtime_info_finish(GAsyncResult *res, QubesDomainInfo *info,
                                   GError **error);

/* What admin.vm.Stats sends of one running qube. */
typedef struct {
    QubesDomain *dom; /* not referenced: valid until the main loop runs */
    guint64 memory_kb;
    guint64 cpu_time_ns; /* all vCPUs together */
    guint vcpus;
} QubesDomainStat;
/* The statistics of every running qube libvirt knows (dom0 too on Xen),
 * in one call on a worker. Finish gives QubesDomainStat* (free). */
void qubes_runtime_stats(QubesRuntime *rt, GAsyncReadyCallback cb,
                         gpointer data);
GPtrArray *qubes_runtime_stats_finish(QubesRuntime *rt, GAsyncResult *res,
                                      GError **error);

/* The pty of the qube's console (admin.vm.Console), new string. */
void qubes_runtime_console(QubesRuntime *rt, QubesDomain *dom,
                           GAsyncReadyCallback cb, gpointer data);
char *qubes_runtime_console_finish(GAsyncResult *res, GError **error);

/* ---- dom0's block devices attached to running qubes ----
 *
 * A host block device (hostdev.h) given to a running qube as a disk:
 * hot-plugged through libvirt (virtio on QEMU, with the port as its
 * serial so that the guest finds it as /dev/disk/by-id/virtio-PORT; a
 * phy disk on Xen, as the reference's block.xml), read-only when asked.
 * The runtime keeps which is attached where: made at attach, at start
 * (the required and auto-attach assignments) and, for qubes that run
 * when qubesd starts, read back from their domain XML. */
typedef struct {
    QubesDomain *frontend; /* referenced */
    char *port_id;         /* "loop7" */
    char *path;            /* "/dev/loop7" */
    char *target;          /* "vdi", "xvdi" */
    char *devtype;         /* "disk" or "cdrom" */
    gboolean read_only;
} QubesBlockAttachment;

/* Every attachment (borrowed, in the order they were made). */
const GPtrArray *qubes_runtime_block_attachments(QubesRuntime *rt);
/* The attachment of dom0's port @port_id, NULL when it is free. */
const QubesBlockAttachment *qubes_runtime_block_attached(QubesRuntime *rt,
                                                         const char *port_id);
/* Attaches /dev/@path as port @port_id to the running @dom with the
 * (checked) options @frontend_dev (NULL: the first free), @read_only and
 * @devtype. Finish with qubes_runtime_op_finish(). */
void qubes_runtime_attach_block(QubesRuntime *rt, QubesDomain *dom,
                                const char *port_id, const char *path,
                                const char *frontend_dev, gboolean read_only,
                                const char *devtype, GAsyncReadyCallback cb,
                                gpointer data);
/* dom0's block devices on @ports (char*) appeared (@blocks: the host's
 * list now): each goes to the running qube whose required or
 * auto-attach assignment matches it (none asked: several matching or
 * ask-to-attach leave it, logged). */
void qubes_runtime_blocks_appeared(QubesRuntime *rt, GPtrArray *blocks,
                                   GPtrArray *ports);
/* Detaches it. */
void qubes_runtime_detach_block(QubesRuntime *rt, QubesDomain *dom,
                                const char *port_id, GAsyncReadyCallback cb,
                                gpointer data);

/* The domain XML the qube would start with now; NULL with @error set
 * when it cannot start. */
char *qubes_runtime_domain_xml(QubesRuntime *rt, QubesDomain *dom,
                               GError **error);

G_END_DECLS
