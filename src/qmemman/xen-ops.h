/* xen-ops.h: the few libxenctrl and xenstore calls qmemmand's Xen
 * hypervisor makes (hv-xen.c), behind a table so that it runs against a
 * fake in the tests (this machine has no Xen) and against the real
 * libraries (xen-real.c, built when Debian's libxen-dev is there).
 * Memory is in KiB, as on the wire.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct {
    guint32 domid;
    gint64 mem_kb; /* the pages it has, in KiB (domain_getinfo's mem_kb) */
    gboolean dying;
} QmXenDomInfo;

typedef struct {
    /* xc.physinfo(): total and free memory, KiB; FALSE on error. */
    gboolean (*physinfo)(gpointer self, gint64 *total_kib, gint64 *free_kib);
    /* xc.domain_getinfo(): every domain; NULL on error. */
    GArray *(*domains)(gpointer self); /* QmXenDomInfo */
    /* xc.domain_setmaxmem() and xc.domain_set_target_mem(); FALSE on
     * error (a domain going away). */
    gboolean (*setmaxmem)(gpointer self, guint32 domid, gint64 kib);
    gboolean (*set_target_mem)(gpointer self, guint32 domid, gint64 kib);
    /* xenstore: read (NULL: no such key), write, directory (NULL: none). */
    char *(*read)(gpointer self, const char *path);
    gboolean (*write)(gpointer self, const char *path, const char *value);
    char **(*ls)(gpointer self, const char *path);
    /* Sets the watches (@introduceDomain, @releaseDomain and each
     * /local/domain/ID/memory/meminfo) and returns after @seconds or as
     * soon as one fires. */
    void (*wait)(gpointer self, double seconds);
    void (*close)(gpointer self);
    gpointer self;
} QmXenOps;

/* The real libraries; NULL (with the cause in @error) when Xen is not
 * running or qmemmand was built without them. */
QmXenOps *qm_xen_ops_open(GError **error);

G_END_DECLS
