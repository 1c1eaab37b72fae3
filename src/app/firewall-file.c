/* firewall-file.c: a qube's firewall.xml (read, written durably) and
 * the expiry of its rules (the reference's Firewall.save() and
 * _expire_rules()). The rules themselves: firewall.c. See
 * firewall-file.h. */
#include "firewall-file.h"
#include "domain.h"
#include "qube-folder.h"
#include "firewall.h"

#include "qubes-error.h"

#include <string.h>

/* ---- a qube's firewall.xml ---- */

#define FIREWALL_MAX (16 * 1024 * 1024)

GPtrArray *qubes_domain_read_firewall(QubesDomain *dom, GError **error)
{
    gssize len = -1;
    g_autofree char *text = qubes_domain_read_file(dom, QUBES_FIREWALL_FILE,
                                                   FIREWALL_MAX, &len, error);
    if (!text)
        return NULL;
    if (len < 0) { /* none: accept everything */
        GPtrArray *rules =
            g_ptr_array_new_with_free_func((GDestroyNotify)qubes_fw_rule_free);
        g_ptr_array_add(rules, qubes_fw_rule_parse("action=accept", NULL));
        return rules;
    }
    g_autofree char *dir = qubes_domain_dir_path(dom);
    g_autofree char *path = g_build_filename(dir, QUBES_FIREWALL_FILE, NULL);
    return qubes_fw_from_xml(text, (gsize)len, path, error);
}

/* firewall.xml is replaced whole by admin.vm.firewall.Set and rewritten
 * by the expiry (read, drop what expired, write): the lock keeps an
 * expiry from writing back rules that a Set replaced meanwhile. */
static GMutex fw_file_lock;

gboolean qubes_domain_write_firewall(QubesDomain *dom, GPtrArray *rules,
                                     GError **error)
{
    g_autofree char *xml =
        qubes_fw_to_xml(rules, g_get_real_time() / G_USEC_PER_SEC);
    g_mutex_lock(&fw_file_lock);
    gboolean ok = qubes_domain_write_file(dom, QUBES_FIREWALL_FILE, xml, error);
    g_mutex_unlock(&fw_file_lock);
    return ok;
}

gint64 qubes_fw_nearest_expire(GPtrArray *rules)
{
    gint64 next = 0;
    for (guint i = 0; i < rules->len; i++) {
        const QubesFwRule *r = rules->pdata[i];
        if (r->expire && (!next || r->expire_at < next))
            next = r->expire_at;
    }
    return next;
}

/* ---- expiry (the reference's Firewall._expire_rules) ----
 *
 * A qube whose rules expire has a timer at the nearest expiry (one
 * second after it: a rule expires once its time is past). It then
 * rewrites firewall.xml without the expired rules, fires
 * firewall-changed, and waits for the next (not offline: nothing runs
 * that would take the change, as in master). Master starts the timer
 * only when it saves; here every qube's is started when qubesd starts
 * (qubes_app_firewall_watch()), so a rule that expired while qubesd was
 * away goes at once. The timer holds a reference on its qube, dropped
 * when the qube is removed or the app freed. */

void qubes_domain_fire_firewall_changed(QubesDomain *dom)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) fx =
        qubes_emitter_fire(&dom->emitter, "firewall-changed", NULL, &err);
    if (!fx)
        g_warning("%s: handler of firewall-changed failed: %s", dom->name,
                  err->message);
}

void qubes_domain_firewall_unwatch(QubesDomain *dom)
{
    if (!dom->fw_timer)
        return;
    g_source_remove(dom->fw_timer);
    dom->fw_timer = 0;
    qubes_domain_unref(dom);
}

typedef struct {
    QubesDomain *dom;
    gint64 next;
    gboolean changed;
} ExpireJob;

static void expire_job_free(ExpireJob *j)
{
    qubes_domain_unref(j->dom);
    g_free(j);
}

static void expire_thread(GTask *task, gpointer src, gpointer data,
                          GCancellable *cancel)
{
    ExpireJob *j = data;
    GError *err = NULL;
    g_mutex_lock(&fw_file_lock);
    g_autoptr(GPtrArray) rules = qubes_domain_read_firewall(j->dom, &err);
    gint64 now = g_get_real_time() / G_USEC_PER_SEC;
    gboolean ok = rules != NULL;
    if (rules) {
        for (guint i = 0; i < rules->len; i++) {
            QubesFwRule *r = rules->pdata[i];
            if (r->expire && r->expire_at < now) {
                g_ptr_array_remove_index(rules, i--);
                j->changed = TRUE;
            }
        }
        g_autofree char *xml = j->changed ? qubes_fw_to_xml(rules, now) : NULL;
        if (xml)
            ok =
                qubes_domain_write_file(j->dom, QUBES_FIREWALL_FILE, xml, &err);
        j->next = qubes_fw_nearest_expire(rules);
    }
    g_mutex_unlock(&fw_file_lock);
    if (ok)
        g_task_return_boolean(task, TRUE);
    else
        g_task_return_error(task, err);
}

static void expire_done(GObject *src, GAsyncResult *res, gpointer data)
{
    ExpireJob *j = g_task_get_task_data(G_TASK(res));
    g_autoptr(GError) err = NULL;
    if (!g_task_propagate_boolean(G_TASK(res), &err)) {
        g_warning("%s: expiring firewall rules: %s", j->dom->name,
                  err->message);
        return;
    }
    if (j->dom->removed)
        return;
    if (j->changed) {
        g_message("%s: expired firewall rules removed", j->dom->name);
        qubes_domain_fire_firewall_changed(j->dom);
    }
    qubes_domain_firewall_watch(j->dom, j->next);
}

static void run_expire(QubesDomain *dom)
{
    ExpireJob *j = g_new0(ExpireJob, 1);
    j->dom = qubes_domain_ref(dom);
    g_autoptr(GTask) task = g_task_new(NULL, NULL, expire_done, NULL);
    g_task_set_task_data(task, j, (GDestroyNotify)expire_job_free);
    g_task_run_in_thread(task, expire_thread);
}

static gboolean expire_due(gpointer data)
{
    QubesDomain *dom = data;
    dom->fw_timer = 0;
    if (!dom->removed)
        run_expire(dom);
    qubes_domain_unref(dom); /* the timer's */
    return G_SOURCE_REMOVE;
}

void qubes_domain_firewall_watch(QubesDomain *dom, gint64 next)
{
    qubes_domain_firewall_unwatch(dom);
    /* as master, not in offline mode: no qube runs to take the change */
    if (!next || dom->removed || !dom->app->runtime)
        return;
    gint64 now = g_get_real_time() / G_USEC_PER_SEC;
    gint64 delay = next + 1 - now;
    if (delay < 0)
        delay = 0;
    if (delay > G_MAXUINT / 1000)
        delay = G_MAXUINT / 1000; /* ~50 days: it then looks again */
    dom->fw_timer =
        g_timeout_add_seconds((guint)delay, expire_due, qubes_domain_ref(dom));
}

void qubes_domain_firewall_saved(QubesDomain *dom, GPtrArray *rules)
{
    qubes_domain_fire_firewall_changed(dom);
    qubes_domain_firewall_watch(dom, qubes_fw_nearest_expire(rules));
}

/* At start: each qube's firewall.xml read on a worker for its nearest
 * expiry. */
typedef struct {
    GPtrArray *doms; /* referenced */
    GArray *nexts;   /* gint64, one per domain */
} WatchJob;

static void watch_job_free(WatchJob *w)
{
    g_ptr_array_unref(w->doms);
    g_array_unref(w->nexts);
    g_free(w);
}

static void watch_thread(GTask *task, gpointer src, gpointer data,
                         GCancellable *cancel)
{
    WatchJob *w = data;
    for (guint i = 0; i < w->doms->len; i++) {
        g_autoptr(GError) err = NULL;
        g_autoptr(GPtrArray) rules =
            qubes_domain_read_firewall(w->doms->pdata[i], &err);
        gint64 next = rules ? qubes_fw_nearest_expire(rules) : 0;
        if (!rules)
            g_warning("%s", err->message);
        g_array_append_val(w->nexts, next);
    }
    g_task_return_boolean(task, TRUE);
}

static void watch_done(GObject *src, GAsyncResult *res, gpointer data)
{
    WatchJob *w = g_task_get_task_data(G_TASK(res));
    for (guint i = 0; i < w->doms->len; i++) {
        QubesDomain *dom = w->doms->pdata[i];
        gint64 next = g_array_index(w->nexts, gint64, i);
        if (next && !dom->removed && !dom->fw_timer)
            qubes_domain_firewall_watch(dom, next);
    }
}

void qubes_app_firewall_watch(QubesApp *app)
{
    WatchJob *w = g_new0(WatchJob, 1);
    w->doms =
        g_ptr_array_new_with_free_func((GDestroyNotify)qubes_domain_unref);
    w->nexts = g_array_new(FALSE, FALSE, sizeof(gint64));
    for (guint i = 0; i < app->domains->len; i++) {
        QubesDomain *d = app->domains->pdata[i];
        if (d && d->qid != 0)
            g_ptr_array_add(w->doms, qubes_domain_ref(d));
    }
    g_autoptr(GTask) task = g_task_new(NULL, NULL, watch_done, NULL);
    g_task_set_task_data(task, w, (GDestroyNotify)watch_job_free);
    g_task_run_in_thread(task, watch_thread);
}
