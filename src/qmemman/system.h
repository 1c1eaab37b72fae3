/* system.h: qmemman's SystemState: the domains it balances, and the
 * reference's do_balance() and do_balloon() loops over a backend (the
 * hypervisor: Xen, or libvirt with virtio-balloon; a fake in the tests).
 *
 * Synchronous, as the reference's: qmemmand runs them on one worker
 * thread under its lock, and the backend's sleep() is where time passes.
 */
#pragma once

#include "algo.h"

G_BEGIN_DECLS

typedef struct _QmSystem QmSystem;

typedef struct {
    /* Assignable free memory of the host (bytes): Xen's free memory less
     * its per-page overhead; on libvirt the host's available memory less
     * what the host keeps for itself. */
    gint64 (*free_mem)(gpointer self);
    /* Fills mem_current and mem_max of the domains the system knows
     * (qm_system_dom()); a domain the backend no longer has keeps its
     * values (its removal comes separately). */
    void (*refresh)(gpointer self, QmSystem *sys);
    /* Gives domain @id the target @bytes (the hypervisor's view; a Xen
     * guest is told 16 MiB less, which it sees). */
    void (*set_target)(gpointer self, const char *id, gint64 bytes);
    void (*sleep)(gpointer self, double seconds);
    gpointer self;
} QmBackend;

QmSystem *qm_system_new(const QmConfig *cfg, const QmBackend *backend);
void qm_system_free(QmSystem *sys);

/* add_domain(): a new domain, with the target it already has (0: none),
 * appended (the reference's dict order). */
void qm_system_add(QmSystem *sys, const char *id, gint64 last_target);
void qm_system_remove(QmSystem *sys, const char *id);
/* The domain @id, NULL when unknown; valid until the next add/remove. */
QmDom *qm_system_dom(QmSystem *sys, const char *id);
QmDom *qm_system_doms(QmSystem *sys, guint *n);

/* refresh_mem_actual(): the backend's current figures, and each
 * domain's mem_actual from them (what a balance starts from). */
void qm_system_refresh(QmSystem *sys);

/* refresh_meminfo(): @id reported its use (NULL text: not a number, as
 * sanitize_and_parse_meminfo), then do_balance(). */
void qm_system_meminfo(QmSystem *sys, const char *id, const char *untrusted);
/* The same for a backend that reads the use as a number (bytes; -1: not
 * reported). */
void qm_system_used(QmSystem *sys, const char *id, gint64 used);

/* do_balance(): one round; FALSE when it found nothing significant to do
 * (or balancing is off). */
gboolean qm_system_balance(QmSystem *sys);
/* do_balloon(): frees @mem_size bytes for a domain about to start; TRUE
 * when the host has them (plus XEN_FREE_MEM_MIN). */
gboolean qm_system_balloon(QmSystem *sys, gint64 mem_size);

/* do_balloon_dom() (master's per-domain request, for preloaded
 * disposables): balloons each domain @ids[k] down to @mems[k] bytes (0:
 * its preferred memory; a domain that has not reported its use yet is
 * left as it is); TRUE once each holds at most 1.1 times that, FALSE
 * when one is unknown or moves slower than the progress rate. */
gboolean qm_system_balloon_dom(QmSystem *sys, const char *const *ids,
                               const gint64 *mems, guint n);

/* do_balance() does nothing while @path exists (the reference's
 * /var/run/qubes/do-not-membalance); NULL: no such file. */
void qm_system_set_inhibit_file(QmSystem *sys, const char *path);

/* Called at the end of each completed balance with what is left to give
 * (mem_info()'s total_available_mem): master writes it to
 * qmemman_avail_mem_file for those that decide whether to start more. */
typedef void (*QmBalanced)(gpointer data, gint64 total_available_mem);
void qm_system_on_balanced(QmSystem *sys, QmBalanced fn, gpointer data);

/* The loops' timing: @delay seconds between rounds (a domain whose
 * memory did not move in a round of do_balloon() is taken as stuck; do_balance
 * waits 5 rounds for donors), and do_balloon()'s progress check: a
 * request fails when @period_s seconds freed less than @mb_s MiB/s. The
 * reference's 0.1 s, 3 s and 100 fit Xen, whose figures move at once;
 * libvirt reports a virtio balloon's size about once a second, and it
 * moves at 25-140 MiB/s here (../shared/RUNTIME-NOTES.md): qmemmand. */
void qm_system_set_timing(QmSystem *sys, double delay, double period_s,
                          gint64 mb_s);

/* The last decision, for the log and qvm-memory: a line in the
 * reference's print_stats() words. */
const char *qm_system_last_decision(QmSystem *sys);
/* Its mode ("enough": all get their preference and share the rest;
 * "low": donors give to the acceptors in proportion; "" before the
 * first), and how many significant balances there were. */
const char *qm_system_last_mode(QmSystem *sys);
guint qm_system_decision_count(QmSystem *sys);

G_END_DECLS
