/* algo.c: qmemman's balancing (algo.h). Each function says which of the
 * reference's it computes; the comments give the float expressions in
 * the reference's order where it matters. */
#include "algo.h"

#include <string.h>

void qm_config_defaults(QmConfig *cfg)
{
    cfg->cache_factor = 1.3;
    cfg->min_prefmem = G_GINT64_CONSTANT(200) * 1024 * 1024;
    cfg->dom0_mem_boost = G_GINT64_CONSTANT(350) * 1024 * 1024;
}

/* int() of what parse_size() leaves: optional spaces, a sign, ASCII
 * digits with single underscores between them. */
static gboolean py_int(const char *s, gint64 *out)
{
    while (g_ascii_isspace(*s))
        s++;
    gboolean neg = *s == '-';
    if (*s == '-' || *s == '+')
        s++;
    if (!g_ascii_isdigit(*s))
        return FALSE;
    guint64 v = 0;
    for (; *s; s++) {
        if (*s == '_' && g_ascii_isdigit(s[1]))
            continue;
        if (!g_ascii_isdigit(*s))
            break;
        if (v > (G_MAXINT64 - 9) / 10)
            return FALSE;
        v = v * 10 + (guint64)(*s - '0');
    }
    while (g_ascii_isspace(*s))
        s++;
    if (*s)
        return FALSE;
    *out = neg ? -(gint64)v : (gint64)v;
    return TRUE;
}

gboolean qm_parse_size(const char *text, gint64 *out)
{
    static const struct {
        const char *unit;
        gint64 mult;
    } units[] = {
        {"K", 1000},      {"KB", 1000},       {"M", 1000000},
        {"MB", 1000000},  {"G", 1000000000},  {"GB", 1000000000},
        {"KI", 1024},     {"KIB", 1024},      {"MI", 1048576},
        {"MIB", 1048576}, {"GI", 1073741824}, {"GIB", 1073741824},
    };
    g_autofree char *s = g_ascii_strup(text, -1);
    g_strstrip(s);
    gboolean digits = *s != '\0';
    for (const char *p = s; *p; p++)
        digits &= g_ascii_isdigit(*p);
    if (digits)
        return py_int(s, out);
    gsize len = strlen(s);
    for (gsize i = 0; i < G_N_ELEMENTS(units); i++) {
        gsize ul = strlen(units[i].unit);
        if (len < ul || strcmp(s + len - ul, units[i].unit) != 0)
            continue;
        s[len - ul] = '\0';
        gint64 v;
        if (!py_int(s, &v) || v > G_MAXINT64 / units[i].mult ||
            v < G_MININT64 / units[i].mult)
            return FALSE;
        *out = v * units[i].mult;
        return TRUE;
    }
    return FALSE;
}

gboolean qm_config_load(QmConfig *cfg, const char *path, GError **error)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autoptr(GError) err = NULL;
    if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, &err)) {
        if (g_error_matches(err, G_FILE_ERROR, G_FILE_ERROR_NOENT))
            return TRUE;
        g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_PARSE, "%s: %s",
                    path, err->message);
        return FALSE;
    }
    static const char *const sizes[] = {"vm-min-mem", "dom0-mem-boost"};
    gint64 *into[] = {&cfg->min_prefmem, &cfg->dom0_mem_boost};
    for (int i = 0; i < 2; i++) {
        g_autofree char *v = g_key_file_get_value(kf, "global", sizes[i], NULL);
        if (v && !qm_parse_size(v, into[i])) {
            g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                        "%s: [global] %s: Invalid size: %s.", path, sizes[i],
                        v);
            return FALSE;
        }
    }
    g_autofree char *f =
        g_key_file_get_value(kf, "global", "cache-margin-factor", NULL);
    if (f) {
        char *end = NULL;
        g_strstrip(f);
        double d = g_ascii_strtod(f, &end);
        if (!*f || *end) {
            g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                        "%s: [global] cache-margin-factor: could not convert "
                        "string to float: '%s'",
                        path, f);
            return FALSE;
        }
        cfg->cache_factor = d;
    }
    return TRUE;
}

/* algo.py REQ_SAFETY_NET_FACTOR: a donor gives a bit more than asked, so
 * that rounding never leaves a request short. */
#define REQ_SAFETY_NET_FACTOR 1.05

static gboolean takes_part(const QmDom *d)
{
    return d->has_used && !d->no_progress && !d->unseen;
}

static gboolean is_dom0(const QmDom *d)
{
    return strcmp(d->id, "0") == 0;
}

/* pref_mem: used x cache_factor (a float), dom0 + its boost and at most
 * mem_max, the others between min_prefmem and mem_max; int() of it. */
gint64 qm_pref_mem(const QmConfig *cfg, const QmDom *d)
{
    double used = (double)d->mem_used * cfg->cache_factor;
    if (is_dom0(d)) {
        used += (double)cfg->dom0_mem_boost;
        /* min(used, mem_max) */
        return (double)d->mem_max < used ? d->mem_max : (gint64)used;
    }
    double m = (double)d->mem_max < used ? (double)d->mem_max : used;
    /* max(m, min_prefmem) */
    if ((double)cfg->min_prefmem > m)
        return cfg->min_prefmem;
    return (gint64)m;
}

gint64 qm_needed_mem(const QmConfig *cfg, const QmDom *d)
{
    return qm_pref_mem(cfg, d) - d->mem_actual;
}

static void add_target(GArray *targets, guint dom, gint64 mem)
{
    QmTarget t = {dom, mem};
    g_array_append_val(targets, t);
}

/* balloon(): the donors (needing less than they have) give in proportion
 * of what they can spare, x 1.05. */
QmStatus qm_balloon(const QmConfig *cfg, gint64 mem_size, const QmDom *doms,
                    guint n, GArray *targets)
{
    g_autoptr(GArray) donors = g_array_new(FALSE, FALSE, sizeof(QmTarget));
    gint64 available = 0;
    for (guint i = 0; i < n; i++) {
        if (!takes_part(&doms[i]))
            continue;
        gint64 need = qm_needed_mem(cfg, &doms[i]);
        if (need < 0) {
            add_target(donors, i, -need);
            available -= need;
        }
    }
    if (available < mem_size)
        return QM_OK;
    if (available == 0)
        return QM_ZERO_DIVISION; /* 1.0 * mem_size / available */
    double scale = (double)mem_size / (double)available;
    for (guint k = 0; k < donors->len; k++) {
        QmTarget *dn = &g_array_index(donors, QmTarget, k);
        double borrowed = (double)dn->mem * scale * REQ_SAFETY_NET_FACTOR;
        add_target(targets, dn->dom,
                   (gint64)((double)doms[dn->dom].mem_actual - borrowed));
    }
    return QM_OK;
}

void qm_mem_info(const QmConfig *cfg, gint64 xen_free_mem, const QmDom *doms,
                 guint n, QmMemInfo *info)
{
    gint64 total_needed = 0;
    info->total_mem_pref = 0;
    info->total_mem_pref_acceptors = 0;
    info->donors = g_array_new(FALSE, FALSE, sizeof(guint));
    info->acceptors = g_array_new(FALSE, FALSE, sizeof(guint));
    for (guint i = 0; i < n; i++) {
        const QmDom *d = &doms[i];
        if (!takes_part(d))
            continue;
        gint64 need = qm_needed_mem(cfg, d);
        if (need < 0 || d->mem_actual >= d->mem_max) {
            g_array_append_val(info->donors, i);
        } else {
            g_array_append_val(info->acceptors, i);
            info->total_mem_pref_acceptors += qm_pref_mem(cfg, d);
        }
        total_needed += need;
        info->total_mem_pref += qm_pref_mem(cfg, d);
    }
    info->total_available_mem = xen_free_mem - total_needed;
}

void qm_mem_info_clear(QmMemInfo *info)
{
    g_clear_pointer(&info->donors, g_array_unref);
    g_clear_pointer(&info->acceptors, g_array_unref);
}

/* Donors first (targets below what they have), then acceptors, each in
 * the domains' order: memory is taken before it is given. */
static void donors_then_acceptors(const QmDom *doms, const GArray *all,
                                  GArray *targets)
{
    for (int pass = 0; pass < 2; pass++)
        for (guint k = 0; k < all->len; k++) {
            const QmTarget *t = &g_array_index(all, QmTarget, k);
            gboolean donor = t->mem < doms[t->dom].mem_actual;
            if (donor == (pass == 0))
                add_target(targets, t->dom, t->mem);
        }
}

/* balance_when_enough_mem(): everyone gets its preference plus a share
 * of what is available in proportion of it (x 0.999 against rounding),
 * capped at mem_max; what the caps leave is shared among the others
 * until none is left or none can take more. */
QmStatus qm_balance_when_enough_mem(const QmConfig *cfg, const QmDom *doms,
                                    guint n, gint64 total_mem_pref,
                                    gint64 total_available_mem, GArray *targets)
{
    g_autoptr(GArray) all = g_array_new(FALSE, FALSE, sizeof(QmTarget));
    gint64 mem_left = 0;
    gint64 acceptors = 0;
    for (guint i = 0; i < n; i++) {
        const QmDom *d = &doms[i];
        if (!takes_part(d))
            continue;
        if (total_mem_pref == 0)
            return QM_ZERO_DIVISION;
        gint64 pref = qm_pref_mem(cfg, d);
        /* scale = 1.0 * pref / total_mem_pref
         * target_nonint = pref + scale * total_available_mem */
        double scale = (double)pref / (double)total_mem_pref;
        double nonint = (double)pref + scale * (double)total_available_mem;
        gint64 target = (gint64)(0.999 * nonint);
        if (target > d->mem_max) {
            mem_left += target - d->mem_max;
            target = d->mem_max;
        } else {
            acceptors++;
        }
        add_target(all, i, target);
    }
    while (mem_left > 0 && acceptors > 0) {
        gint64 new_left = 0, new_acceptors = acceptors;
        for (guint k = 0; k < all->len; k++) {
            QmTarget *t = &g_array_index(all, QmTarget, k);
            gint64 max = doms[t->dom].mem_max;
            if (t->mem >= max)
                continue;
            /* int(0.999 * (mem_left / acceptors_count)) */
            gint64 bonus =
                (gint64)(0.999 * ((double)mem_left / (double)acceptors));
            if (t->mem + bonus >= max) {
                new_left += t->mem + bonus - max;
                t->mem = max;
                new_acceptors--;
            } else {
                t->mem += bonus;
            }
        }
        mem_left = new_left;
        acceptors = new_acceptors;
    }
    donors_then_acceptors(doms, all, targets);
    return QM_OK;
}

/* balance_when_low_on_mem(): donors go down to their preference (unless
 * within 10 MiB of it already: tried before), and what that and the free
 * memory give is shared among the acceptors in proportion of their
 * preference, capped at mem_max; with less than nothing to share, only
 * the donors move. */
QmStatus qm_balance_when_low_on_mem(const QmConfig *cfg, const QmDom *doms,
                                    guint n, gint64 xen_free_mem,
                                    gint64 total_mem_pref_acceptors,
                                    const GArray *donors,
                                    const GArray *acceptors, GArray *targets)
{
    gint64 squeezed = xen_free_mem;
    for (guint k = 0; k < donors->len; k++) {
        guint i = g_array_index(donors, guint, k);
        gint64 avail = -qm_needed_mem(cfg, &doms[i]);
        if (avail < G_GINT64_CONSTANT(10) * 1024 * 1024)
            continue;
        squeezed -= avail;
        add_target(targets, i, qm_pref_mem(cfg, &doms[i]));
    }
    if (squeezed < 0)
        return QM_OK;
    for (guint k = 0; k < acceptors->len; k++) {
        guint i = g_array_index(acceptors, guint, k);
        const QmDom *d = &doms[i];
        if (total_mem_pref_acceptors == 0)
            return QM_ZERO_DIVISION;
        /* scale = 1.0 * pref / total_mem_pref_acceptors
         * target_nonint = mem_actual + scale * squeezed_mem */
        double scale =
            (double)qm_pref_mem(cfg, d) / (double)total_mem_pref_acceptors;
        double nonint = (double)d->mem_actual + scale * (double)squeezed;
        gint64 target = (gint64)(0.999 * nonint);
        add_target(targets, i, MIN(target, d->mem_max));
    }
    return QM_OK;
}

QmStatus qm_balance(const QmConfig *cfg, gint64 xen_free_mem, const QmDom *doms,
                    guint n, QmMemInfo *info, gboolean *enough, GArray *targets)
{
    qm_mem_info(cfg, xen_free_mem, doms, n, info);
    *enough = info->total_available_mem > 0;
    if (*enough)
        return qm_balance_when_enough_mem(cfg, doms, n, info->total_mem_pref,
                                          info->total_available_mem, targets);
    return qm_balance_when_low_on_mem(cfg, doms, n, xen_free_mem,
                                      info->total_mem_pref_acceptors,
                                      info->donors, info->acceptors, targets);
}

/* ---- meminfo ---- */

QmMeminfo qm_parse_meminfo(const char *untrusted, gsize len, char **bytes)
{
    *bytes = NULL;
    /* master reads the xenstore key as bytes: bytes.isdigit() takes the
     * ASCII digits only, and int() of them never fails */
    if (len == 0)
        return QM_MEMINFO_NONE;
    for (gsize i = 0; i < len; i++)
        if (untrusted[i] < '0' || untrusted[i] > '9')
            return QM_MEMINFO_NONE;
    /* int(text) * 1024, in decimal, of any length */
    GString *out = g_string_new(NULL);
    guint carry = 0;
    for (gsize i = len; i-- > 0;) {
        guint v = (guint)(untrusted[i] - '0') * 1024 + carry;
        g_string_prepend_c(out, (char)('0' + v % 10));
        carry = v / 10;
    }
    for (; carry; carry /= 10)
        g_string_prepend_c(out, (char)('0' + carry % 10));
    gsize z = 0;
    while (z + 1 < out->len && out->str[z] == '0')
        z++;
    g_string_erase(out, 0, (gssize)z);
    *bytes = g_string_free(out, FALSE);
    return QM_MEMINFO_VALUE;
}

/* ---- systemstate.py ---- */

void qm_refresh(QmDom *doms, guint n)
{
    for (guint i = 0; i < n; i++)
        if (!doms[i].unseen)
            doms[i].mem_actual = MAX(doms[i].mem_current, doms[i].last_target);
}

gint64 qm_all_phys_mem(gint64 total_bytes)
{
    return (gint64)((double)total_bytes * QM_MEM_OVERHEAD_FACTOR);
}

gint64 qm_free_mem(gint64 xen_free_bytes, const QmDom *doms, guint n)
{
    gint64 xen_free = (gint64)((double)xen_free_bytes * QM_MEM_OVERHEAD_FACTOR);
    return xen_free - qm_assigned_unused(doms, n);
}

gint64 qm_assigned_unused(const QmDom *doms, guint n)
{
    gint64 unused = 0;
    for (guint i = 0; i < n; i++)
        if (!doms[i].unseen)
            unused += MAX(0, doms[i].last_target - doms[i].mem_current);
    return unused;
}

/* The flags that keep a domain out of balancing go once it reached its
 * last target (within half of XEN_FREE_MEM_LEFT) or has less than it
 * prefers (it would starve). */
void qm_clear_outdated(const QmConfig *cfg, QmDom *doms, guint n,
                       GArray *cleared)
{
    for (guint i = 0; i < n; i++) {
        QmDom *d = &doms[i];
        if (!d->has_used || d->unseen)
            continue;
        /* mem_actual <= last_target + XEN_FREE_MEM_LEFT / 2 (a float) */
        double reached =
            (double)d->last_target + (double)QM_XEN_FREE_MEM_LEFT / 2;
        if ((double)d->mem_actual <= reached ||
            d->mem_actual < qm_pref_mem(cfg, d)) {
            if ((d->slow_memset_react || d->no_progress) && cleared)
                g_array_append_val(cleared, i);
            d->slow_memset_react = FALSE;
            d->no_progress = FALSE;
        }
    }
}

gboolean qm_significant(const QmConfig *cfg, const QmDom *doms,
                        const GArray *targets, gint64 xenfree)
{
    if (QM_XEN_FREE_MEM_LEFT - xenfree > QM_MIN_MEM_CHANGE_WHEN_UNDER_PREF)
        return TRUE;
    gint64 transfer = 0;
    for (guint k = 0; k < targets->len; k++) {
        const QmTarget *t = &g_array_index(targets, QmTarget, k);
        const QmDom *d = &doms[t->dom];
        gint64 change = t->mem - d->last_target;
        transfer += change < 0 ? -change : change;
        gint64 pref = qm_pref_mem(cfg, d);
        if (0 < d->last_target && d->last_target < pref &&
            change > QM_MIN_MEM_CHANGE_WHEN_UNDER_PREF)
            return TRUE;
    }
    gint64 off = xenfree - QM_XEN_FREE_MEM_LEFT;
    return transfer + (off < 0 ? -off : off) > QM_MIN_TOTAL_MEMORY_TRANSFER;
}
