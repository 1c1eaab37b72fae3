/* algo.h: qmemman's balancing, to the byte.
 *
 * The reference's qubes/qmemman/algo.py and the decisions of
 * systemstate.py (master), computed the same way: Python ints are int64
 * here (memory sizes stay far below 2^53, so every conversion to double
 * is exact), each float expression in the reference's association and
 * order, truncated toward zero where it calls int(). The file is built
 * with -ffp-contract=off: a fused multiply-add would change results.
 *
 * Domains keep the reference's order (its dict's insertion order), and
 * every list of targets comes out in the order the reference makes it.
 * A domain that has not reported its memory use (has_used FALSE) takes
 * no part, as there; nothing here asserts on it.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* systemstate.py's constants, bytes. */
#define QM_XEN_FREE_MEM_LEFT (G_GINT64_CONSTANT(50) * 1024 * 1024)
#define QM_XEN_FREE_MEM_MIN (G_GINT64_CONSTANT(25) * 1024 * 1024)
#define QM_MIN_TOTAL_MEMORY_TRANSFER (G_GINT64_CONSTANT(150) * 1024 * 1024)
#define QM_MIN_MEM_CHANGE_WHEN_UNDER_PREF (G_GINT64_CONSTANT(15) * 1024 * 1024)
/* The per-page overhead of Xen's structures: free and total physical
 * memory are divided by it to get what can be assigned. */
#define QM_MEM_OVERHEAD_FACTOR (1.0 / 1.00781)

/* algo.py's tunables, which qmemman.conf overrides. */
typedef struct {
    double cache_factor;   /* cache-margin-factor, 1.3 */
    gint64 min_prefmem;    /* vm-min-mem, 200 MiB */
    gint64 dom0_mem_boost; /* dom0-mem-boost, 350 MiB */
} QmConfig;

void qm_config_defaults(QmConfig *cfg);
/* qmemman.conf as the reference's qmemmand reads it: [global]
 * vm-min-mem and dom0-mem-boost as qubes.utils.parse_size() takes them
 * (bytes, or K/KB/M/MB/G/GB in powers of 1000, Ki/KiB/Mi/MiB/Gi/GiB in
 * powers of 1024, any case), cache-margin-factor a float. A missing
 * file or key keeps the default; a bad value is an error naming it. */
gboolean qm_config_load(QmConfig *cfg, const char *path, GError **error);
/* qubes.utils.parse_size(). */
gboolean qm_parse_size(const char *text, gint64 *out);

/* One domain, as DomainState. */
typedef struct {
    char *id;           /* the domain id as text; "0" is dom0 */
    gint64 mem_current; /* what the hypervisor reports now */
    gint64 mem_actual;  /* max(mem_current, last_target) after a refresh */
    gint64 mem_max;
    gboolean has_used; /* it reported its use */
    gint64 mem_used;
    gint64 last_target; /* 0: never set */
    gboolean no_progress;
    gboolean slow_memset_react;
    /* not yet seen by a refresh (mem_current, mem_actual and mem_max
     * unknown, None in the reference, which then crashed): skipped */
    gboolean unseen;
} QmDom;

/* A target for domain @dom (an index into the domains). */
typedef struct {
    guint dom;
    gint64 mem;
} QmTarget;

typedef enum { QM_OK, QM_ZERO_DIVISION } QmStatus;

gint64 qm_pref_mem(const QmConfig *cfg, const QmDom *d);
gint64 qm_needed_mem(const QmConfig *cfg, const QmDom *d);

/* balloon(): the targets that free @mem_size from the donors; empty
 * when they cannot. @targets is a GArray of QmTarget. */
QmStatus qm_balloon(const QmConfig *cfg, gint64 mem_size, const QmDom *doms,
                    guint n, GArray *targets);

/* mem_info(). */
typedef struct {
    gint64 total_available_mem;
    gint64 total_mem_pref;
    gint64 total_mem_pref_acceptors;
    GArray *donors;    /* guint indices */
    GArray *acceptors; /* guint indices */
} QmMemInfo;
void qm_mem_info(const QmConfig *cfg, gint64 xen_free_mem, const QmDom *doms,
                 guint n, QmMemInfo *info);
void qm_mem_info_clear(QmMemInfo *info);

QmStatus qm_balance_when_enough_mem(const QmConfig *cfg, const QmDom *doms,
                                    guint n, gint64 total_mem_pref,
                                    gint64 total_available_mem,
                                    GArray *targets);
QmStatus qm_balance_when_low_on_mem(const QmConfig *cfg, const QmDom *doms,
                                    guint n, gint64 xen_free_mem,
                                    gint64 total_mem_pref_acceptors,
                                    const GArray *donors,
                                    const GArray *acceptors, GArray *targets);
/* balance(): mem_info, then one of the two; *@enough says which. */
QmStatus qm_balance(const QmConfig *cfg, gint64 xen_free_mem, const QmDom *doms,
                    guint n, QmMemInfo *info, gboolean *enough,
                    GArray *targets);

/* sanitize_and_parse_meminfo(): what a VM wrote as its used memory (KiB
 * as decimal text), read as master reads it from xenstore, as bytes.
 * QM_MEMINFO_VALUE with @bytes the value x 1024 as decimal text (any
 * length, as Python's int), QM_MEMINFO_NONE when the reference answers
 * None: empty, or anything but the ASCII digits (bytes.isdigit()). */
typedef enum {
    QM_MEMINFO_VALUE,
    QM_MEMINFO_NONE,
} QmMeminfo;
QmMeminfo qm_parse_meminfo(const char *untrusted, gsize len, char **bytes);

/* ---- systemstate.py's decisions ---- */

/* refresh_mem_actual(): mem_actual = max(mem_current, last_target). */
void qm_refresh(QmDom *doms, guint n);
/* get_free_xen_mem(): @xen_free_bytes (the hypervisor's free memory) less
 * the overhead, less what domains were given and do not use yet. */
gint64 qm_free_mem(gint64 xen_free_bytes, const QmDom *doms, guint n);
/* What domains were given and do not use yet (last_target above
 * mem_current): not free, they may take it any time. */
gint64 qm_assigned_unused(const QmDom *doms, guint n);
/* all_phys_mem: @total_bytes less the overhead. */
gint64 qm_all_phys_mem(gint64 total_bytes);
/* clear_outdated_error_markers(): indices whose flags it cleared (a
 * flag was set) go to @cleared (guint), in order. */
void qm_clear_outdated(const QmConfig *cfg, QmDom *doms, guint n,
                       GArray *cleared);
/* is_balance_req_significant(). */
gboolean qm_significant(const QmConfig *cfg, const QmDom *doms,
                        const GArray *targets, gint64 xenfree);

G_END_DECLS
