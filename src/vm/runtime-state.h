/* runtime-state.h: the runtime's shared state and its small helpers
 * (runtime-state.c), for the runtime's rooms only.
 *
 * The rooms of src/vm and who calls whom (each calls only rooms below
 * it, and this one; nothing calls up):
 *   runtime.c        makes and frees the runtime; the connection, the
 *                    net links, the firewall and the preloads with it
 *   connection.c     libvirt's connection and lifecycle events; adopts
 *                    running qubes -> autostart, preload-run, vm-stop,
 *                    hotplug, pci-run, net-links, firewall-run
 *   preload-run.c    preloaded disposables -> vm-start, vm-stop, vm-pause
 *   autostart.c      -> vm-start
 *   vm-start.c       -> vm-stop, memory-request, hotplug, net-links,
 *                    firewall-run, domain-spec, storage-run, libvirt-ops
 *   vm-stop.c        -> hotplug, pci-run, net-links, firewall-run,
 *                    storage-run, libvirt-ops
 *   vm-pause.c, vm-query.c -> libvirt-ops
 *   net-links.c      bridges, links, a netvm change -> firewall-run,
 *                    libvirt-ops
 *   hotplug.c        -> pci-run, libvirt-ops
 *   pci-run.c        -> libvirt-ops
 *   firewall-run.c, memory-request.c, storage-run.c, domain-spec.c,
 *   libvirt-ops.c    -> this room only
 *
 * Threads: the state is the main context's; workers see only rt->cfg
 * and, under rt->lock, rt->conn (rt_conn_get). */
#pragma once

#include "app.h"
#include "qubes-error.h"
#include "runtime-config.h"

#include <libvirt/libvirt.h>

G_BEGIN_DECLS

/* What the runtime keeps per qube while something is going on. */
typedef struct {
    QubesDomain *dom;      /* referenced */
    gboolean starting;     /* a start is between its checks and its end */
    gboolean died;         /* stopped while starting */
    GSList *start_waiters; /* GTask*: further starts, completed together */
    GSList *stop_waiters;  /* GTask*: kill, shutdown --wait */
} DomRt;

struct _QubesRuntime {
    gint refs; /* the owner's and one per operation on a worker */
    QubesApp *app;
    QubesRuntimeConfig cfg;
    GMutex lock;        /* guards conn, for workers */
    virConnectPtr conn; /* NULL while disconnected */
    int lifecycle_id;
    guint retry_source;
    guint drop_source;
    gboolean warned;         /* the connection failure was logged */
    gboolean warned_qmemman; /* qmemmand's absence was logged */
    gboolean settled;        /* halted qubes' storage brought to rest */
    GHashTable *doms;        /* QubesDomain* -> DomRt* */
    GHashTable *links;       /* client QubesDomain* (held) -> where its link
                                is plugged (QEMU; net-links.c) */
    guint handlers[5];       /* net-links.c's four netvm handlers,
                                firewall-run.c's firewall-changed */
    GThreadPool *nf_pool;    /* firewall jobs, one at a time, in order */
    GPtrArray *blocks;       /* QubesBlockAttachment: dom0's block devices
                                attached to running qubes */
    GPtrArray *pcis;         /* QubesPciAttachment: dom0's PCI devices in
                                running qubes (pci-run.c) */
    QubesPreload *preload;   /* preloaded disposables (preload-run.c) */
};

/* A reference for an operation on a worker; the last unref (the
 * owner's, or a worker's finishing after qubesd stopped watching) frees
 * what is left. */
QubesRuntime *rt_ref(QubesRuntime *rt);
void rt_unref(QubesRuntime *rt);

/* @dom's entry, made when there is none. */
DomRt *rt_dom(QubesRuntime *rt, QubesDomain *dom);
void rt_dom_free(DomRt *r);
/* Answers each GTask of @tasks (@error copied, NULL: success), unrefs
 * it and frees the list. */
void rt_complete_tasks(GSList *tasks, const GError *error);
/* Answers the stop waiters (@error copied, NULL: success). */
void rt_complete_stop_waiters(DomRt *r, GError *error);
/* Drops @r when nothing is going on any more. */
void rt_maybe_forget(QubesRuntime *rt, DomRt *r);

/* Fires @event on @dom with NULL-terminated key, value pairs; a
 * handler's failure is logged. */
void rt_fire(QubesDomain *dom, const char *event, ...) G_GNUC_NULL_TERMINATED;
/* property-reset of xid, stubdom_xid and start_time. */
void rt_fire_state_resets(QubesDomain *dom);

/* A property as a number (0 when unset). */
guint64 rt_prop_u64(QubesDomain *d, const char *name);
/* Whether feature @name (the template's too) is set true. */
gboolean rt_feature_with_template(QubesDomain *d, const char *name);
/* Running, paused or transient. */
gboolean rt_is_up(QubesDomain *d);
/* Whether qubes are linked by bridges (QEMU/KVM; not Xen). */
gboolean rt_uses_links(QubesRuntime *rt);
/* The qube whose uuid is @uuid; NULL for another domain. */
QubesDomain *rt_find_by_uuid(QubesRuntime *rt, const char *uuid);

/* The connection for a worker (a reference: virConnectClose it), or
 * NULL with @error while disconnected. */
virConnectPtr rt_conn_get(QubesRuntime *rt, GError **error);
/* @error from the libvirt call that just failed on this thread,
 * prefixed with @what (NULL: none). */
void rt_set_virt_error(GError **error, QubesErrorCode code, const char *what);

/* Runs @func on a worker with @data (freed by @free with the task),
 * then @cb on the main context. */
void rt_run_in_worker(GTaskThreadFunc func, gpointer data, GDestroyNotify free,
                      GAsyncReadyCallback cb, gpointer cb_data);

/* Answers @task with a QUBES_ERROR @code and message (and unrefs it). */
void rt_refuse(GTask *task, QubesErrorCode code, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);
/* Answers @task "@what 'NAME'" with @code when @dom is halted (or dom0,
 * which this runtime never stops); TRUE when it did. */
gboolean rt_refused_halted(GTask *task, QubesDomain *dom, QubesErrorCode code,
                           const char *what);
#define RT_POWERED_OFF "Domain is powered off:"
#define RT_NOT_RUNNING "Domain not running (either powered off or paused):"

G_END_DECLS
