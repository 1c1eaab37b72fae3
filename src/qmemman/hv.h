/* hv.h: what qmemmand needs of a hypervisor, beyond the balancing
 * backend (system.h): which domains are there, what each reported, and a
 * way to wait for the next change. Two implementations: libvirt with
 * virtio-balloon (hv-libvirt.c) and Xen (hv-xen.c, over xen-ops.h).
 */
#pragma once

#include "system.h"

G_BEGIN_DECLS

/* One domain as the hypervisor shows it now. */
typedef struct {
    char *id;
    /* The target it was given before qmemmand knew it (bytes; 0: none),
     * taken when it is added. */
    gint64 target;
    /* Its use, as a number (bytes; -1: not reported) ... */
    gint64 used;
    /* ... or as the text the guest wrote (Xen's memory/meminfo, KiB;
     * NULL: nothing written yet). Untrusted: the guest writes it. */
    char *untrusted_meminfo;
} QmSeen;

void qm_seen_free(gpointer seen);

typedef struct _QmHv QmHv;
struct _QmHv {
    const char *name; /* "libvirt", "xen" */
    /* A domain takes part once it reported its use (libvirt: before, a
     * balloon's size is the domain's maximum, not what it will have);
     * else as soon as it is there (Xen, as the reference). */
    gboolean add_when_reported;
    QmBackend be; /* be.self is the hypervisor's own state */
    /* The domains there now that take part (QmSeen); NULL when the
     * hypervisor cannot be read (nothing is added or removed then). */
    GPtrArray *(*list)(QmHv *hv);
    /* Returns after @seconds, or earlier when something may have changed
     * (Xen's watches). */
    void (*wait)(QmHv *hv, double seconds);
    /* The id the balancer knows for a client's name of a domain in the
     * per-domain request (NULL: no such domain); free with g_free. */
    char *(*resolve)(QmHv *hv, const char *untrusted_key);
    /* Total memory for the domains (bytes), for the state's dump. */
    gint64 (*total_mem)(QmHv *hv);
    void (*free)(QmHv *hv);
    QmSystem *sys; /* set by qmemmand once the system exists */
};

/* libvirt (QEMU/KVM): @uri; the host keeps @reserve bytes; with
 * @total_limit (0: none) the domains never get more than that. */
QmHv *qm_hv_libvirt_new(const char *uri, gint64 reserve, gint64 total_limit);

G_END_DECLS
