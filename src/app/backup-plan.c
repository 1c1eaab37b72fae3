/* backup-plan.c: what a backup holds (see backup-plan.h). */
#include "backup-plan.h"

#include "qubes-error.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ftw.h>

static void file_free(QubesBackupFile *f)
{
    g_free(f->archive);
    if (f->vol)
        qubes_volume_unref(f->vol);
    g_free(f->dir);
    g_free(f->file);
    g_free(f);
}

static void qube_free(QubesBackupQube *q)
{
    g_free(q->name);
    g_free(q->klass);
    g_free(q->subdir);
    g_ptr_array_unref(q->files);
    g_free(q);
}

void qubes_backup_plan_free(QubesBackupPlan *plan)
{
    if (!plan)
        return;
    g_ptr_array_unref(plan->qubes);
    g_ptr_array_unref(plan->not_selected);
    g_free(plan);
}

static QubesBackupFile *add_file(QubesBackupQube *q, const char *name)
{
    QubesBackupFile *f = g_new0(QubesBackupFile, 1);
    f->archive = g_strconcat(q->subdir, name, NULL);
    g_ptr_array_add(q->files, f);
    return f;
}

/* The reference's match_vm_name_with_special(). */
static gboolean matches(QubesDomain *d, const char *pattern)
{
    if (g_str_has_prefix(pattern, "@tag:"))
        return g_hash_table_contains(d->tags, pattern + 5);
    if (g_str_has_prefix(pattern, "@type:"))
        return strcmp(pattern + 6, d->klass->name) == 0;
    return strcmp(pattern, d->name) == 0;
}

static gboolean matches_any(QubesDomain *d, const char *const *patterns)
{
    for (; patterns && *patterns; patterns++)
        if (matches(d, *patterns))
            return TRUE;
    return FALSE;
}

static gint by_name(gconstpointer a, gconstpointer b)
{
    const QubesDomain *x = *(QubesDomain *const *)a;
    const QubesDomain *y = *(QubesDomain *const *)b;
    return strcmp(x->name, y->name);
}

/* The home folder of dom0's user: the first member of the group "qubes",
 * as the reference finds it. */
static char *find_dom0_home(GError **error)
{
    struct group *g = getgrnam("qubes");
    if (!g || !g->gr_mem || !g->gr_mem[0]) {
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                            "Cannot back up dom0: no user in the group "
                            "'qubes' to take the home folder of");
        return NULL;
    }
    struct passwd *pw = getpwnam(g->gr_mem[0]);
    if (!pw || !pw->pw_dir || pw->pw_dir[0] != '/') {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                    "Cannot back up dom0: user '%s' has no home folder",
                    g->gr_mem[0]);
        return NULL;
    }
    return g_strdup(pw->pw_dir);
}

static QubesBackupQube *plan_qube(QubesDomain *d)
{
    QubesBackupQube *q = g_new0(QubesBackupQube, 1);
    q->qid = d->qid;
    q->name = g_strdup(d->name);
    q->klass = g_strdup(d->klass->name);
    q->files = g_ptr_array_new_with_free_func((GDestroyNotify)file_free);
    q->running =
        d->power != QUBES_POWER_HALTED && d->power != QUBES_POWER_CRASHED;
    if (strcmp(d->klass->name, "TemplateVM") == 0)
        q->kind = "Template VM";
    else if (qubes_domain_flag(d, "updateable"))
        q->kind = "VM + Sys";
    else
        q->kind = "VM";
    q->subdir = g_strdup_printf("vm%u/", d->qid);
    for (guint i = 0; i < d->volumes->len; i++) {
        QubesDomainVolume *dv = d->volumes->pdata[i];
        QubesVolume *v = dv->vol;
        if (!v->save_on_stop)
            continue;
        if (v->revisions_to_keep == -1 && !v->snap_on_start)
            q->snapshots_disabled = TRUE;
        g_autofree char *img = g_strconcat(v->name, ".img", NULL);
        add_file(q, img)->vol = qubes_volume_ref(v);
    }
    g_autofree char *dir = qubes_domain_dir_path(d);
    if (dir) {
        static const char *const own[] = {QUBES_FIREWALL_FILE, "notes.txt"};
        for (guint i = 0; i < G_N_ELEMENTS(own); i++) {
            QubesBackupFile *f = add_file(q, own[i]);
            f->dir = g_strdup(dir);
            f->file = g_strdup(own[i]);
        }
    }
    return q;
}

/* The order CPython iterates a set of qubes in (master's include list is
 * a set, and its summary and backup follow it): a qube hashes to its qid,
 * the set starts with 8 slots, probes 9 slots on from the hash, then
 * perturbs, and grows to the next power of two above 4 x used once 3/5
 * full (setobject.c). @doms come in insertion order; sorted in place. */
/* The free slot a new entry of hash @qid takes (set_add_entry and
 * set_insert_clean probe alike when the keys are distinct). */
static QubesDomain **set_slot(QubesDomain **table, gsize size, guint qid)
{
    gsize mask = size - 1, i = qid & mask;
    guint64 perturb = qid;
    for (;;) {
        gsize probes = i + 9 <= mask ? 9 : 0;
        for (gsize j = 0; j <= probes; j++)
            if (!table[i + j])
                return &table[i + j];
        perturb >>= 5;
        i = (i * 5 + 1 + perturb) & mask;
    }
}

static void python_set_order(GPtrArray *doms)
{
    gsize size = 8;
    g_autofree QubesDomain **table = g_new0(QubesDomain *, size);
    for (guint n = 0; n < doms->len; n++) {
        *set_slot(table, size, ((QubesDomain *)doms->pdata[n])->qid) =
            doms->pdata[n];
        gsize fill = n + 1;
        if (fill * 5 < (size - 1) * 3)
            continue;
        /* grown to the next power of two above 4 x used, the entries
         * reinserted in table order */
        gsize newsize = 8;
        while (newsize <= fill * 4)
            newsize <<= 1;
        QubesDomain **old = table;
        table = g_new0(QubesDomain *, newsize);
        for (gsize k = 0; k < size; k++)
            if (old[k])
                *set_slot(table, newsize, old[k]->qid) = old[k];
        size = newsize;
        g_free(old);
    }
    g_ptr_array_set_size(doms, 0);
    for (gsize k = 0; k < size; k++)
        if (table[k])
            g_ptr_array_add(doms, table[k]);
}

QubesBackupPlan *qubes_backup_plan_new(QubesApp *app,
                                       const char *const *include,
                                       const char *const *exclude,
                                       const char *dom0_home, GError **error)
{
    g_autoptr(GPtrArray) all = g_ptr_array_new();
    for (guint i = 0; i < app->domains->len; i++)
        if (app->domains->pdata[i])
            g_ptr_array_add(all, app->domains->pdata[i]);
    g_ptr_array_sort(all, by_name);

    g_autoptr(QubesBackupPlan) plan = g_new0(QubesBackupPlan, 1);
    plan->qubes = g_ptr_array_new_with_free_func((GDestroyNotify)qube_free);
    plan->not_selected = g_ptr_array_new_with_free_func(g_free);
    QubesDomain *dom0 = NULL;
    g_autoptr(GPtrArray) chosen = g_ptr_array_new();
    for (guint i = 0; i < all->len; i++) {
        QubesDomain *d = all->pdata[i];
        gboolean in = include ? matches_any(d, include)
                              : qubes_domain_flag(d, "include_in_backups");
        if (in)
            g_ptr_array_add(chosen, d);
    }
    /* master: a set of the qubes an include list names (name order
     * without one), less the excluded, dom0 last */
    if (include)
        python_set_order(chosen);
    for (guint i = 0; i < all->len; i++) {
        QubesDomain *d = all->pdata[i];
        gboolean in = FALSE;
        for (guint j = 0; j < chosen->len && !in; j++)
            in = chosen->pdata[j] == d;
        if (!in || matches_any(d, exclude))
            g_ptr_array_add(plan->not_selected, g_strdup(d->name));
    }
    for (guint i = 0; i < chosen->len; i++) {
        QubesDomain *d = chosen->pdata[i];
        if (matches_any(d, exclude))
            continue;
        if (d->qid == 0)
            dom0 = d;
        else
            g_ptr_array_add(plan->qubes, plan_qube(d));
    }
    if (dom0) {
        g_autofree char *home =
            dom0_home ? g_strdup(dom0_home) : find_dom0_home(error);
        if (!home)
            return NULL;
        g_autofree char *base = g_path_get_basename(home);
        QubesBackupQube *q = g_new0(QubesBackupQube, 1);
        q->name = g_strdup(dom0->name);
        q->klass = g_strdup(dom0->klass->name);
        q->kind = "User home";
        q->subdir = g_build_filename("dom0-home", base, NULL);
        q->files = g_ptr_array_new_with_free_func((GDestroyNotify)file_free);
        QubesBackupFile *f = g_new0(QubesBackupFile, 1);
        f->archive = g_build_filename("dom0-home", base, NULL);
        f->dir = g_path_get_dirname(home);
        f->file = g_strdup(base);
        f->tree = TRUE;
        g_ptr_array_add(q->files, f);
        g_ptr_array_add(plan->qubes, q);
    }
    return g_steal_pointer(&plan);
}

/* ---- measuring (a worker's) ---- */

static guint64 tree_bytes;

static int tree_add(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
    (void)path, (void)flag, (void)ftw;
    tree_bytes += (guint64)st->st_blocks * 512;
    return 0;
}

/* `du` of a folder: the blocks of every entry, no link followed. One
 * walk at a time (nftw gives no user data). */
static guint64 tree_usage(const char *path)
{
    static GMutex lock;
    g_mutex_lock(&lock);
    tree_bytes = 0;
    nftw(path, tree_add, 16, FTW_PHYS);
    guint64 n = tree_bytes;
    g_mutex_unlock(&lock);
    return n;
}

void qubes_backup_plan_measure(QubesBackupPlan *plan)
{
    plan->total = 0;
    for (guint i = 0; i < plan->qubes->len; i++) {
        QubesBackupQube *q = plan->qubes->pdata[i];
        q->size = 0;
        guint present = 0;
        for (guint j = 0; j < q->files->len; j++) {
            QubesBackupFile *f = q->files->pdata[j];
            struct stat st;
            g_autofree char *path =
                f->dir ? g_build_filename(f->dir, f->file, NULL) : NULL;
            if (f->vol) {
                f->present = TRUE;
                f->size = qubes_volume_get_usage(f->vol);
            } else if (!path) {
                f->present = TRUE;
                f->size = 0;
            } else if (lstat(path, &st) == 0 &&
                       (f->tree ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode))) {
                f->present = TRUE;
                f->size =
                    f->tree ? tree_usage(path) : (guint64)st.st_blocks * 512;
            } else {
                f->present = FALSE;
                f->size = 0;
            }
            present += f->present;
            q->size += f->size;
        }
        if (!present && q->qid != 0) {
            /* the reference's empty file, so that the folder is there */
            QubesBackupFile *f = add_file(q, "empty");
            f->present = TRUE;
        }
        plan->total += q->size;
    }
}

/* ---- the summary ---- */

char *qubes_size_to_human(guint64 size)
{
    if (size < 1024)
        return g_strdup_printf("%" G_GUINT64_FORMAT, size);
    static const char *const units[] = {"KiB", "MiB", "GiB"};
    double v = (double)size / 1024.0;
    guint u = 0;
    for (guint64 lim = (guint64)1024 * 1024; u < 2 && size >= lim; lim <<= 10)
        v = (double)size / (double)lim, u++;
    /* Python's round(v, 1) and str(): the correctly rounded one-decimal
     * value, which %.1f gives */
    return g_strdup_printf("%.1f %s", v, units[u]);
}

static void rule(GString *s)
{
    g_string_append(s, "------------------+--------------+--------------+\n");
}

char *qubes_backup_plan_summary(const QubesBackupPlan *plan)
{
    GString *s = g_string_new(NULL);
    rule(s);
    g_string_append_printf(s, "%17s |%13s |%13s |\n", "VM", "type", "size");
    rule(s);
    for (guint i = 0; i < plan->qubes->len; i++) {
        const QubesBackupQube *q = plan->qubes->pdata[i];
        g_autofree char *size = qubes_size_to_human(q->size);
        g_string_append_printf(s, "%17s |%13s |%13s |", q->name, q->kind, size);
        if (q->qid != 0 && q->running)
            g_string_append(s, q->snapshots_disabled
                                   ? " <-- The VM is running and private "
                                     "volume snapshots are disabled. Backup "
                                     "will fail!"
                                   : " <-- The VM is running, backup will "
                                     "contain its state from before its "
                                     "start!");
        g_string_append_c(s, '\n');
    }
    rule(s);
    g_autofree char *total = qubes_size_to_human(plan->total);
    g_string_append_printf(s, "%17s |%28s |\n", "Total size:", total);
    rule(s);
    g_string_append(s, "VMs not selected for backup:\n - ");
    for (guint i = 0; i < plan->not_selected->len; i++) {
        if (i)
            g_string_append(s, "\n - ");
        g_string_append(s, plan->not_selected->pdata[i]);
    }
    g_string_append_c(s, '\n');
    return g_string_free(s, FALSE);
}

/* ---- qubes.xml inside ---- */

static void feature_set(GPtrArray *features, const char *name,
                        const char *value)
{
    for (guint i = 0; i + 1 < features->len; i += 2) {
        if (strcmp(features->pdata[i], name) == 0) {
            g_free(features->pdata[i + 1]);
            features->pdata[i + 1] = g_strdup(value);
            return;
        }
    }
    g_ptr_array_add(features, g_strdup(name));
    g_ptr_array_add(features, g_strdup(value));
}

static void drop_preload_features(GPtrArray *features)
{
    for (guint i = 0; i + 1 < features->len;) {
        const char *n = features->pdata[i];
        if (g_str_has_prefix(n, "preload-dispvm") &&
            strcmp(n, "preload-dispvm-max") != 0) {
            g_ptr_array_remove_range(features, i, 2);
        } else {
            i += 2;
        }
    }
}

static const QubesBackupQube *planned(const QubesBackupPlan *plan, guint qid)
{
    for (guint i = 0; i < plan->qubes->len; i++) {
        const QubesBackupQube *q = plan->qubes->pdata[i];
        if (q->qid == qid)
            return q;
    }
    return NULL;
}

/* A domain element's qid: its "domain-N" id (dom0's has no qid
 * property), -1 when it has none. */
static gint64 domain_qid(const QxDomain *d)
{
    guint64 qid;
    if (!d->id || !g_str_has_prefix(d->id, "domain-") ||
        !g_ascii_string_to_unsigned(d->id + 7, 10, 0, QUBES_MAX_QID, &qid,
                                    NULL))
        return -1;
    return (gint64)qid;
}

char *qubes_backup_plan_qubes_xml(const QubesBackupPlan *plan, QubesApp *app,
                                  gsize *len)
{
    g_autoptr(QubesXml) xml = qubes_app_to_xml(app);
    for (guint i = 0; i < xml->domains->len; i++) {
        QxDomain *d = xml->domains->pdata[i];
        gint64 qid = domain_qid(d);
        const QubesBackupQube *q = qid >= 0 ? planned(plan, (guint)qid) : NULL;
        feature_set(d->features, "backup-content", q ? "1" : "");
        if (!q)
            continue;
        g_autofree char *size = g_strdup_printf("%" G_GUINT64_FORMAT, q->size);
        feature_set(d->features, "backup-path", q->subdir);
        feature_set(d->features, "backup-size", size);
        drop_preload_features(d->features);
    }
    return qubes_xml_serialize(xml, len);
}
