/* system.c: the reference's SystemState over a backend (system.h). */
#include "system.h"

#include <string.h>

/* systemstate.py's timing: BALLOON_DELAY between rounds; a request
 * fails when CHECK_PERIOD_S seconds brought less than CHECK_MB_S MB/s. */
#define BALLOON_DELAY 0.1
#define CHECK_PERIOD_S 3.0
#define CHECK_MB_S 100

struct _QmSystem {
    QmConfig cfg;
    QmBackend be;
    GArray *doms;      /* QmDom, in the order they came */
    GString *decision; /* reused: a round over 1000 domains writes 80 KB */
    const char *mode;  /* of the last decision: "enough" or "low" */
    guint decisions;
    double delay;       /* BALLOON_DELAY */
    guint check_period; /* rounds: max(1, int(CHECK_PERIOD_S / delay)) */
    gint64 check_delta; /* bytes expected in that time */
    gint64 mb_s;        /* CHECK_MB_S */
    /* LAST_SECOND: rounds in a second, max(1, int(1 / delay)) */
    guint last_second;
    char *inhibit_path; /* do-not-membalance; NULL: none */
    QmBalanced balanced;
    gpointer balanced_data;
    /* qm_assigned_unused() of the domains, from the last refresh on,
     * kept by mem_set(): do_balance() reads the free memory before each
     * target it sets, and the sum would make a round quadratic. */
    gint64 unused;
};

QmSystem *qm_system_new(const QmConfig *cfg, const QmBackend *backend)
{
    QmSystem *s = g_new0(QmSystem, 1);
    s->cfg = *cfg;
    s->be = *backend;
    s->doms = g_array_new(FALSE, TRUE, sizeof(QmDom));
    s->decision = g_string_new(NULL);
    qm_system_set_timing(s, BALLOON_DELAY, CHECK_PERIOD_S, CHECK_MB_S);
    return s;
}

void qm_system_set_timing(QmSystem *s, double delay, double period_s,
                          gint64 mb_s)
{
    s->delay = delay;
    /* 3 / 0.1 is 30.000000000000004: 30 rounds, as the reference's */
    s->check_period = (guint)MAX(1, (gint64)(period_s / delay));
    s->check_delta = (gint64)period_s * mb_s * 1024 * 1024;
    s->mb_s = mb_s;
    s->last_second = (guint)MAX(1, (gint64)(1 / delay));
}

void qm_system_set_inhibit_file(QmSystem *s, const char *path)
{
    g_free(s->inhibit_path);
    s->inhibit_path = g_strdup(path);
}

void qm_system_on_balanced(QmSystem *s, QmBalanced fn, gpointer data)
{
    s->balanced = fn;
    s->balanced_data = data;
}

void qm_system_free(QmSystem *s)
{
    if (!s)
        return;
    for (guint i = 0; i < s->doms->len; i++)
        g_free(g_array_index(s->doms, QmDom, i).id);
    g_array_unref(s->doms);
    g_string_free(s->decision, TRUE);
    g_free(s->inhibit_path);
    g_free(s);
}

static gint find(QmSystem *s, const char *id)
{
    for (guint i = 0; i < s->doms->len; i++)
        if (strcmp(g_array_index(s->doms, QmDom, i).id, id) == 0)
            return (gint)i;
    return -1;
}

void qm_system_add(QmSystem *s, const char *id, gint64 last_target)
{
    if (find(s, id) >= 0)
        return;
    QmDom d = {0};
    d.id = g_strdup(id);
    d.last_target = last_target;
    d.unseen = TRUE;
    g_array_append_val(s->doms, d);
}

void qm_system_remove(QmSystem *s, const char *id)
{
    gint i = find(s, id);
    if (i < 0)
        return;
    g_free(g_array_index(s->doms, QmDom, i).id);
    g_array_remove_index(s->doms, (guint)i);
}

QmDom *qm_system_dom(QmSystem *s, const char *id)
{
    gint i = find(s, id);
    return i < 0 ? NULL : &g_array_index(s->doms, QmDom, i);
}

QmDom *qm_system_doms(QmSystem *s, guint *n)
{
    *n = s->doms->len;
    return (QmDom *)(void *)s->doms->data;
}

const char *qm_system_last_decision(QmSystem *s)
{
    return s->decision->str;
}

const char *qm_system_last_mode(QmSystem *s)
{
    return s->mode ? s->mode : "";
}

guint qm_system_decision_count(QmSystem *s)
{
    return s->decisions;
}

#define DOMS(s) ((QmDom *)(void *)(s)->doms->data)

/* refresh_mem_actual(): the backend's figures, then what each domain
 * uses or may use, max(mem_current, last_target). */
void qm_system_refresh(QmSystem *s)
{
    s->be.refresh(s->be.self, s);
    qm_refresh(DOMS(s), s->doms->len);
    s->unused = qm_assigned_unused(DOMS(s), s->doms->len);
}

/* get_free_xen_mem(). */
static gint64 free_mem(QmSystem *s)
{
    gint64 free = s->be.free_mem(s->be.self);
    gint64 unused = s->unused;
    if (free < QM_XEN_FREE_MEM_MIN)
        g_warning("free memory %" G_GINT64_FORMAT " below acceptable value! "
                  "assigned_but_unused=%" G_GINT64_FORMAT,
                  free, unused);
    else if (free < unused + QM_XEN_FREE_MEM_MIN)
        g_warning("free memory %" G_GINT64_FORMAT " too small to satisfy "
                  "assignments! assigned_but_unused=%" G_GINT64_FORMAT,
                  free, unused);
    return free - unused;
}

/* mem_set(). */
static void mem_set(QmSystem *s, guint i, gint64 val)
{
    QmDom *d = &DOMS(s)[i];
    /* info, as the reference logs it; formatted only when shown (a round
     * over 1000 domains sets as many targets) */
    if (!g_log_writer_default_would_drop(G_LOG_LEVEL_INFO, G_LOG_DOMAIN))
        g_info("mem-set domain %s to %" G_GINT64_FORMAT, d->id, val);
    if (!d->unseen)
        s->unused += MAX(0, val - d->mem_current) -
                     MAX(0, d->last_target - d->mem_current);
    d->last_target = val;
    s->be.set_target(s->be.self, d->id, val);
}

/* print_stats(), kept as the last decision too. */
static void note_decision(QmSystem *s, gint64 xenfree, const GArray *reqs,
                          gboolean enough)
{
    s->mode = enough ? "enough" : "low";
    s->decisions++;
    GString *out = s->decision;
    g_string_truncate(out, 0);
    for (guint i = 0; i < s->doms->len; i++) {
        const QmDom *d = &DOMS(s)[i];
        if (!d->has_used || d->unseen)
            continue;
        g_string_append_printf(
            out,
            "stat: dom '%s' act=%" G_GINT64_FORMAT " pref=%" G_GINT64_FORMAT
            " last_target=%" G_GINT64_FORMAT "%s%s\n",
            d->id, d->mem_actual, qm_pref_mem(&s->cfg, d), d->last_target,
            d->no_progress ? " no_progress" : "",
            d->slow_memset_react ? " slow_memset_react" : "");
    }
    g_string_append_printf(
        out, "stat: xenfree=%" G_GINT64_FORMAT " memset_reqs=[", xenfree);
    for (guint k = 0; k < reqs->len; k++) {
        const QmTarget *t = &g_array_index(reqs, QmTarget, k);
        g_string_append_printf(out, "%s('%s', %" G_GINT64_FORMAT ")",
                               k ? ", " : "", DOMS(s)[t->dom].id, t->mem);
    }
    g_string_append(out, "]");
    g_message("%s", out->str);
}

void qm_system_used(QmSystem *s, const char *id, gint64 used)
{
    QmDom *d = qm_system_dom(s, id);
    if (!d)
        return;
    d->has_used = used >= 0;
    d->mem_used = d->has_used ? used : 0;
    qm_system_balance(s);
}

void qm_system_meminfo(QmSystem *s, const char *id, const char *untrusted)
{
    g_autofree char *bytes = NULL;
    QmMeminfo r = untrusted
                      ? qm_parse_meminfo(untrusted, strlen(untrusted), &bytes)
                      : QM_MEMINFO_NONE;
    gint64 v = -1;
    if (r != QM_MEMINFO_VALUE ||
        !g_ascii_string_to_signed(bytes, 10, 0, G_MAXINT64, &v, NULL))
        v = -1;
    qm_system_used(s, id, v);
}

/* debug_stuck_balance(): the donors before @stuck that still hold more
 * than asked: no_progress when they did not move at all, else
 * slow_memset_react. */
static void stuck(QmSystem *s, guint stuck_dom, const GArray *reqs,
                  const gint64 *prev)
{
    for (guint k = 0; k < reqs->len; k++) {
        const QmTarget *t = &g_array_index(reqs, QmTarget, k);
        if (t->dom == stuck_dom)
            break;
        QmDom *d = &DOMS(s)[t->dom];
        if ((double)d->mem_actual <=
            (double)d->last_target + (double)QM_XEN_FREE_MEM_LEFT / 4)
            continue;
        if (prev[t->dom] == d->mem_actual) {
            g_warning("dom '%s' did not react to memory request (holds "
                      "%" G_GINT64_FORMAT
                      ", requested balloon down to %" G_GINT64_FORMAT ")",
                      d->id, d->mem_actual, t->mem);
            d->no_progress = TRUE;
        } else {
            g_warning("dom '%s' still holds more memory than assigned "
                      "(%" G_GINT64_FORMAT " > %" G_GINT64_FORMAT ")",
                      d->id, d->mem_actual, t->mem);
            d->slow_memset_react = TRUE;
        }
    }
}

gboolean qm_system_balance(QmSystem *s)
{
    if (s->inhibit_path && g_file_test(s->inhibit_path, G_FILE_TEST_EXISTS)) {
        g_debug("%s present, not balancing", s->inhibit_path);
        return FALSE;
    }
    qm_system_refresh(s);
    qm_clear_outdated(&s->cfg, DOMS(s), s->doms->len, NULL);
    gint64 xenfree = free_mem(s);
    g_autoptr(GArray) reqs = g_array_new(FALSE, FALSE, sizeof(QmTarget));
    QmMemInfo mi = {0};
    gboolean enough;
    QmStatus st = qm_balance(&s->cfg, xenfree - QM_XEN_FREE_MEM_LEFT, DOMS(s),
                             s->doms->len, &mi, &enough, reqs);
    qm_mem_info_clear(&mi);
    if (st != QM_OK) {
        g_warning("balance: nothing to share by (all preferences are 0)");
        return FALSE;
    }
    if (!qm_significant(&s->cfg, DOMS(s), reqs, xenfree))
        return FALSE;
    note_decision(s, xenfree, reqs, enough);
    g_autofree gint64 *prev = g_new(gint64, s->doms->len + 1);
    for (guint i = 0; i < s->doms->len; i++)
        prev[i] = DOMS(s)[i].mem_actual;
    for (guint k = 0; k < reqs->len; k++) {
        const QmTarget *t = &g_array_index(reqs, QmTarget, k);
        /* Keep at least 0.9 x XEN_FREE_MEM_LEFT free: before giving a
         * domain memory, the donors must have given theirs back. */
        for (int ntries = 5;
             (double)(free_mem(s) - (t->mem - DOMS(s)[t->dom].mem_actual)) <
             0.9 * (double)QM_XEN_FREE_MEM_LEFT;) {
            s->be.sleep(s->be.self, s->delay);
            qm_system_refresh(s);
            if (--ntries <= 0) {
                /* Waiting did not help: mark who is stuck and give this
                 * one what there is. */
                stuck(s, t->dom, reqs, prev);
                mem_set(s, t->dom,
                        free_mem(s) + DOMS(s)[t->dom].mem_actual -
                            QM_XEN_FREE_MEM_LEFT);
                return TRUE;
            }
        }
        mem_set(s, t->dom, t->mem);
    }
    /* What is left to give, for those that decide whether to start more
     * (master's qmemman_avail_mem_file). */
    if (s->balanced) {
        QmMemInfo after = {0};
        qm_mem_info(&s->cfg, free_mem(s) - QM_XEN_FREE_MEM_LEFT, DOMS(s),
                    s->doms->len, &after);
        s->balanced(s->balanced_data, after.total_available_mem);
        qm_mem_info_clear(&after);
    }
    return TRUE;
}

/* inhibit_balloon_up(): after a request is met, targets set above what
 * a domain holds would eat the freed memory back. */
static void inhibit_balloon_up(QmSystem *s)
{
    for (guint i = 0; i < s->doms->len; i++) {
        QmDom *d = &DOMS(s)[i];
        if (!d->unseen && d->mem_actual + 200 * 1024 < d->last_target) {
            g_message("Preventing balloon up to %" G_GINT64_FORMAT,
                      d->last_target);
            mem_set(s, i, d->mem_actual);
        }
    }
}

gboolean qm_system_balloon(QmSystem *s, gint64 mem_size)
{
    g_message("do_balloon(mem_size=%" G_GINT64_FORMAT ")", mem_size);
    for (guint i = 0; i < s->doms->len; i++)
        DOMS(s)[i].no_progress = FALSE;
    g_autofree gint64 *ring = g_new0(gint64, s->check_period);
    g_autoptr(GArray) prev = g_array_new(FALSE, FALSE, sizeof(QmTarget));
    for (guint niter = 0;; niter++) {
        qm_system_refresh(s);
        gint64 xenfree = free_mem(s);
        if (xenfree >= mem_size + QM_XEN_FREE_MEM_MIN) {
            inhibit_balloon_up(s);
            return TRUE;
        }
        /* less than CHECK_MB_S MB/s over the last CHECK_PERIOD_S: fail */
        guint slot = niter % s->check_period;
        if (niter >= s->check_period && xenfree < ring[slot] + s->check_delta)
            return FALSE;
        ring[slot] = xenfree;
        for (guint k = 0; k < prev->len; k++) {
            const QmTarget *p = &g_array_index(prev, QmTarget, k);
            QmDom *d = &DOMS(s)[p->dom];
            if (p->mem == d->mem_actual) {
                d->no_progress = TRUE;
                g_message("domain %s stuck at %" G_GINT64_FORMAT, d->id,
                          d->mem_actual);
            }
        }
        g_autoptr(GArray) reqs = g_array_new(FALSE, FALSE, sizeof(QmTarget));
        if (qm_balloon(&s->cfg, mem_size + QM_XEN_FREE_MEM_LEFT - xenfree,
                       DOMS(s), s->doms->len, reqs) != QM_OK ||
            reqs->len == 0)
            return FALSE;
        g_array_set_size(prev, 0);
        for (guint k = 0; k < reqs->len; k++) {
            const QmTarget *t = &g_array_index(reqs, QmTarget, k);
            mem_set(s, t->dom, t->mem);
            QmTarget p = {t->dom, DOMS(s)[t->dom].mem_actual};
            g_array_append_val(prev, p);
        }
        s->be.sleep(s->be.self, s->delay);
    }
}

/* Python's round(x, 2): the exact value of @x rounded to two decimals
 * (glibc's printf rounds the exact binary value, as CPython does). */
static double round2(double x)
{
    char buf[G_ASCII_DTOSTR_BUF_SIZE + 400];
    g_snprintf(buf, sizeof buf, "%.2f", x);
    return g_ascii_strtod(buf, NULL);
}

/* The speed at which domain memory went down over the last second, MiB/s
 * (do_balloon_dom's transfer_speed_mib): the reference's rounds are 0.1
 * s apart and it takes the change between the entries LAST_SECOND apart;
 * with rounds of half a second or more that is the same entry (always
 * 0), so the last round's change is taken per second instead. */
static gint64 speed_mib(const QmSystem *s, const GArray *ring)
{
    const gint64 *r = (const gint64 *)(const void *)ring->data;
    guint len = ring->len;
    if (s->last_second >= 2) {
        guint back = MIN(s->last_second, len);
        return (gint64)((double)(r[len - back] - r[len - 1]) / (1024.0 * 1024));
    }
    if (len < 2)
        return 0;
    return (gint64)((double)(r[len - 2] - r[len - 1]) / s->delay /
                    (1024.0 * 1024));
}

gboolean qm_system_balloon_dom(QmSystem *s, const char *const *ids,
                               const gint64 *mems, guint n)
{
    GString *what = g_string_new(NULL);
    for (guint k = 0; k < n; k++)
        g_string_append_printf(what, "%s'%s': %" G_GINT64_FORMAT, k ? ", " : "",
                               ids[k], mems[k]);
    g_message("do_balloon_dom(dom_memset={%s})", what->str);
    g_string_free(what, TRUE);
    if (n == 0)
        return FALSE;
    qm_system_refresh(s); /* a domain added since the last round is seen now */
    /* The domains asked for, in the system's order; a domain named twice
     * keeps the last amount, as a dict built from the pairs. */
    guint nd = s->doms->len;
    g_autofree gint64 *want = g_new0(gint64, nd + 1);
    g_autofree gint64 *req = g_new0(gint64, nd + 1);
    g_autofree gboolean *asked = g_new0(gboolean, nd + 1);
    g_autofree gboolean *done = g_new0(gboolean, nd + 1);
    g_autofree guint *order = g_new0(guint, n + 1); /* request order */
    guint norder = 0;
    for (guint k = 0; k < n; k++) {
        gint i = find(s, ids[k]);
        if (i < 0 || DOMS(s)[i].unseen) {
            /* the reference raises on it (no answer): refused */
            g_warning("do_balloon_dom: no domain '%s' to balloon", ids[k]);
            return FALSE;
        }
        if (!asked[i])
            order[norder++] = (guint)i;
        asked[i] = TRUE;
        want[i] = mems[k];
    }
    for (guint i = 0; i < nd; i++)
        if (asked[i])
            DOMS(s)[i].no_progress = FALSE;
    for (guint k = 0; k < norder; k++) {
        guint i = order[k];
        QmDom *d = &DOMS(s)[i];
        if (want[i] == 0 && !d->has_used) {
            /* still at its initial size: nothing to go by yet */
            g_message("mem requested for dom '%s' is 0 but meminfo was not "
                      "reported back, skipping ballooning",
                      d->id);
            done[i] = TRUE;
            continue;
        }
        req[i] = want[i] ? want[i] : qm_pref_mem(&s->cfg, d);
        if (req[i] == 0) {
            g_warning("do_balloon_dom: a preference of 0 for '%s'", d->id);
            return FALSE; /* the reference divides by it and raises */
        }
        g_message("mem requested for dom '%s' is '%" G_GINT64_FORMAT
                  "'%s while actual mem is '%" G_GINT64_FORMAT "' (%.2fx)",
                  d->id, req[i], want[i] ? "" : " (its pref)", d->mem_actual,
                  round2((double)d->mem_actual / (double)req[i]));
    }
    g_autoptr(GPtrArray) rings =
        g_ptr_array_new_with_free_func((GDestroyNotify)g_array_unref);
    for (guint i = 0; i < nd; i++)
        g_ptr_array_add(rings, g_array_new(FALSE, FALSE, sizeof(gint64)));
    for (guint niter = 0;; niter++) {
        qm_system_refresh(s);
        gboolean all = TRUE;
        for (guint i = 0; i < nd; i++) {
            QmDom *d = &DOMS(s)[i];
            if (!asked[i] || done[i])
                continue;
            if (niter > 0 && niter % 10 == 0 && want[i] == 0) {
                gint64 pref = qm_pref_mem(&s->cfg, d);
                if (pref != req[i] && pref != 0) {
                    req[i] = pref;
                    g_message("adjusted pref to '%" G_GINT64_FORMAT "'", pref);
                }
            }
            if (round2((double)d->mem_actual / (double)req[i]) <= 1.1)
                done[i] = TRUE;
            else
                all = FALSE;
        }
        if (all)
            return TRUE;
        for (guint i = 0; i < nd; i++) {
            if (!asked[i] || done[i])
                continue;
            GArray *ring = rings->pdata[i];
            g_array_append_val(ring, DOMS(s)[i].mem_actual);
            if (niter >= s->check_period) {
                gint64 mib = speed_mib(s, ring);
                if (mib < s->mb_s) {
                    g_warning("slow transfer speed of %" G_GINT64_FORMAT
                              "MiB/s on the last second (dom '%s')",
                              mib, DOMS(s)[i].id);
                    return FALSE;
                }
            }
        }
        for (guint k = 0; k < norder; k++)
            if (!done[order[k]])
                mem_set(s, order[k], req[order[k]]);
        s->be.sleep(s->be.self, s->delay);
    }
}
