/* xen-real.c: xen-ops.h over Debian's libxenctrl and libxenstore.
 *
 * Watches: @introduceDomain and @releaseDomain, and each domain's
 * memory/meminfo (the keys the reference's XSWatcher watches), renewed
 * as domains come and go; wait() blocks on the xenstore connection's fd
 * until one fires or the time is up, then drains the events (their
 * content does not matter: the caller reads the state again).
 */
#include "xen-ops.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <xenctrl.h>
#include <xenstore.h>

#include <gio/gio.h>

typedef struct {
    QmXenOps ops;
    xc_interface *xc;
    struct xs_handle *xs;
    GHashTable *watched; /* meminfo paths watched */
} Real;

#define KIB_PER_PAGE (XC_PAGE_SIZE / 1024)

static gboolean r_physinfo(gpointer self, gint64 *total, gint64 *free)
{
    Real *r = self;
    xc_physinfo_t info = {0};
    if (xc_physinfo(r->xc, &info) != 0)
        return FALSE;
    *total = (gint64)info.total_pages * KIB_PER_PAGE;
    *free = (gint64)info.free_pages * KIB_PER_PAGE;
    return TRUE;
}

static GArray *r_domains(gpointer self)
{
    Real *r = self;
    GArray *out = g_array_new(FALSE, FALSE, sizeof(QmXenDomInfo));
    xc_domaininfo_t buf[256];
    guint32 first = 0;
    for (;;) {
        int n = xc_domain_getinfolist(r->xc, first, G_N_ELEMENTS(buf), buf);
        if (n < 0) {
            g_array_unref(out);
            return NULL;
        }
        for (int i = 0; i < n; i++) {
            QmXenDomInfo d = {buf[i].domain,
                              (gint64)buf[i].tot_pages * KIB_PER_PAGE,
                              (buf[i].flags & XEN_DOMINF_dying) != 0};
            g_array_append_val(out, d);
        }
        if (n < (int)G_N_ELEMENTS(buf))
            return out;
        first = (guint32)buf[n - 1].domain + 1;
    }
}

static gboolean r_setmaxmem(gpointer self, guint32 domid, gint64 kib)
{
    return xc_domain_setmaxmem(((Real *)self)->xc, domid, (uint64_t)kib) == 0;
}

/* xc.domain_set_target_mem(): the populate-on-demand target, in pages */
static gboolean r_set_target_mem(gpointer self, guint32 domid, gint64 kib)
{
    return xc_domain_set_pod_target(((Real *)self)->xc, domid,
                                    (uint64_t)kib / KIB_PER_PAGE, NULL, NULL,
                                    NULL) == 0;
}

static char *r_read(gpointer self, const char *path)
{
    unsigned int len = 0;
    char *v = xs_read(((Real *)self)->xs, XBT_NULL, path, &len);
    if (!v)
        return NULL;
    char *out = g_strndup(v, len);
    free(v);
    return out;
}

static gboolean r_write(gpointer self, const char *path, const char *value)
{
    return xs_write(((Real *)self)->xs, XBT_NULL, path, value,
                    (unsigned int)strlen(value));
}

static char **r_ls(gpointer self, const char *path)
{
    unsigned int n = 0;
    char **v = xs_directory(((Real *)self)->xs, XBT_NULL, path, &n);
    if (!v)
        return NULL;
    char **out = g_new0(char *, n + 1);
    for (unsigned int i = 0; i < n; i++)
        out[i] = g_strdup(v[i]);
    free(v); /* one block */
    return out;
}

/* Each domain's meminfo watched, the gone ones' unwatched. */
static void renew_watches(Real *r)
{
    g_auto(GStrv) ids = r_ls(r, "/local/domain");
    g_autoptr(GHashTable) now =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    for (char **id = ids; id && *id; id++) {
        char *path = g_strdup_printf("/local/domain/%s/memory/meminfo", *id);
        g_hash_table_add(now, path);
        if (!g_hash_table_contains(r->watched, path) &&
            xs_watch(r->xs, path, "meminfo"))
            g_hash_table_add(r->watched, g_strdup(path));
    }
    GHashTableIter it;
    gpointer k;
    g_hash_table_iter_init(&it, r->watched);
    while (g_hash_table_iter_next(&it, &k, NULL))
        if (!g_hash_table_contains(now, k)) {
            xs_unwatch(r->xs, k, "meminfo");
            g_hash_table_iter_remove(&it);
        }
}

static void r_wait(gpointer self, double seconds)
{
    Real *r = self;
    renew_watches(r);
    struct pollfd p = {xs_fileno(r->xs), POLLIN, 0};
    if (poll(&p, 1, (int)(seconds * 1000)) <= 0)
        return;
    char **ev;
    while ((ev = xs_check_watch(r->xs)))
        free(ev);
}

static void r_close(gpointer self)
{
    Real *r = self;
    xs_close(r->xs);
    xc_interface_close(r->xc);
    g_hash_table_unref(r->watched);
    g_free(r);
}

QmXenOps *qm_xen_ops_open(GError **error)
{
    xc_interface *xc = xc_interface_open(NULL, NULL, 0);
    if (!xc) {
        g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno),
                    "cannot open the Xen hypervisor: %s", g_strerror(errno));
        return NULL;
    }
    struct xs_handle *xs = xs_open(0);
    if (!xs) {
        int e = errno;
        xc_interface_close(xc);
        g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e),
                    "cannot open xenstore: %s", g_strerror(e));
        return NULL;
    }
    Real *r = g_new0(Real, 1);
    r->xc = xc;
    r->xs = xs;
    r->watched = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    if (!xs_watch(xs, "@introduceDomain", "list") ||
        !xs_watch(xs, "@releaseDomain", "list"))
        g_warning("cannot watch xenstore for domains: %s", g_strerror(errno));
    r->ops =
        (QmXenOps){r_physinfo, r_domains, r_setmaxmem, r_set_target_mem, r_read,
                   r_write,    r_ls,      r_wait,      r_close,          r};
    return &r->ops;
}
