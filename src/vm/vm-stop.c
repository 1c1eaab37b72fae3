/* vm-stop.c: a qube's stop: shutdown, kill, what follows a stop, and
 * DispVMs that remove themselves (vm-stop.h). */
#include "vm-stop.h"

#include "firewall-run.h"
#include "hotplug.h"
#include "libvirt-ops.h"
#include "net-links.h"
#include "pci-run.h"
#include "storage-run.h"

#include <string.h>

typedef struct {
    QubesRuntime *rt;
    QubesDomain *dom; /* referenced */
} StopCtx;

static void stopped_storage_done(GObject *src, GAsyncResult *res, gpointer data)
{
    StopCtx *c = data;
    QubesDomain *dom = c->dom;
    g_autoptr(GError) err = NULL;
    if (!g_task_propagate_boolean(G_TASK(res), &err))
        g_warning("Failed to stop storage for domain %s: %s", dom->name,
                  err->message);
    if (dom->power == QUBES_POWER_DYING) {
        dom->power = QUBES_POWER_HALTED;
        dom->xid = -1;
        dom->start_time = 0;
    }
    /* The reference's order: domain-stopped (whose handler stopped the
     * storage and reset xid, stubdom_xid and start_time), then
     * domain-shutdown. */
    rt_fire(dom, "domain-stopped", NULL);
    rt_fire_state_resets(dom);
    rt_fire(dom, "domain-shutdown", NULL);
    if (rt_uses_links(c->rt)) {
        rt_link_disconnect(c->rt, dom);
        rt_links_gone_with(c->rt, dom);
        rt_run_bridge(dom, FALSE, rt_link_done,
                      g_strdup_printf("%s: removing its link", dom->name));
        rt_nf_remove(c->rt, dom);
    }
    rt_blocks_gone_with(c->rt, dom);
    rt_pcis_gone_with(c->rt, dom);
    qubes_runtime_auto_cleanup(c->rt, dom);
    DomRt *r = g_hash_table_lookup(c->rt->doms, dom);
    if (r) {
        rt_complete_stop_waiters(r, NULL);
        rt_maybe_forget(c->rt, r);
    }
    qubes_domain_unref(dom);
    g_free(c);
}

/* ---- DispVMs that remove themselves (dispvm.py's auto_cleanup) ----
 *
 * A DispVM with auto_cleanup goes once it stopped: out of the model at
 * once (so a `shutdown --wait` answered finds it gone), then out of
 * qubes.xml, then its files. qubes.xml forgets it before its files go: a
 * crash in between leaves unreferenced files, never a qube without its
 * disks (the same order as admin.vm.Remove). */

static void cleanup_thread(GTask *task, gpointer src, gpointer data,
                           GCancellable *cancel)
{
    GError *err = NULL;
    if (!qubes_domain_files_remove(data, &err)) {
        g_task_return_error(task, err);
        return;
    }
    g_task_return_boolean(task, TRUE);
}

static void cleanup_done(GObject *src, GAsyncResult *res, gpointer data)
{
    char *name = data;
    g_autoptr(GError) err = NULL;
    if (!g_task_propagate_boolean(G_TASK(res), &err))
        g_warning("Error while removing VM '%s' files: %s", name, err->message);
    else
        g_message("%s: removed (auto_cleanup)", name);
    g_free(name);
}

static void cleanup_saved(gpointer data, GError *error)
{
    QubesDomainFiles *c = data;
    if (error) {
        g_warning("%s: qubes.xml not saved, its files are kept: %s",
                  c->dom->name, error->message);
        qubes_domain_files_free(c);
        return;
    }
    char *name = g_strdup(c->dom->name);
    rt_run_in_worker(cleanup_thread, c, (GDestroyNotify)qubes_domain_files_free,
                     cleanup_done, name);
}

gboolean rt_auto_cleanup_due(QubesDomain *dom)
{
    return strcmp(dom->klass->name, "DispVM") == 0 && !dom->removed &&
           qubes_domain_flag(dom, "auto_cleanup");
}

void qubes_runtime_auto_cleanup(QubesRuntime *rt, QubesDomain *dom)
{
    if (!rt_auto_cleanup_due(dom))
        return;
    g_autoptr(GError) err = NULL;
    QubesDomainFiles *c = qubes_domain_files_new(dom);
    if (!qubes_app_remove_domain(rt->app, dom, &err)) {
        g_warning("%s: not removed: %s", dom->name, err->message);
        qubes_domain_files_free(c);
        return;
    }
    qubes_app_save_then(rt->app, cleanup_saved, c);
}

/* The qube is gone from the hypervisor: its storage is stopped (origins
 * committed, snapshots dropped), then the events. Duplicates (a resync
 * after a reconnect, a second event) are ignored. */
void rt_domain_gone(QubesRuntime *rt, QubesDomain *dom)
{
    DomRt *r = g_hash_table_lookup(rt->doms, dom);
    if (r && r->starting) {
        r->died = TRUE; /* the start in progress handles it */
        return;
    }
    if (dom->power == QUBES_POWER_HALTED || dom->power == QUBES_POWER_DYING)
        return;
    g_message("%s: stopped", dom->name);
    dom->power = QUBES_POWER_DYING;
    StopCtx *c = g_new0(StopCtx, 1);
    c->rt = rt;
    c->dom = qubes_domain_ref(dom);
    rt_run_storage(dom, ST_STOP, stopped_storage_done, c);
}

/* ---- shutdown and kill ---- */

/* Removes @waiter from the qube's stop waiters and fails it with a copy
 * of @err; nothing when the stop already completed it. */
static void drop_stop_waiter(QubesRuntime *rt, QubesDomain *dom, GTask *waiter,
                             const GError *err)
{
    DomRt *r = g_hash_table_lookup(rt->doms, dom);
    if (!r || !g_slist_find(r->stop_waiters, waiter))
        return;
    r->stop_waiters = g_slist_remove(r->stop_waiters, waiter);
    g_task_return_error(waiter, g_error_copy(err));
    g_object_unref(waiter);
    rt_maybe_forget(rt, r);
}

static GTask *add_stop_waiter(QubesRuntime *rt, QubesDomain *dom,
                              GAsyncReadyCallback cb, gpointer data)
{
    GTask *w = g_task_new(NULL, NULL, cb, data);
    DomRt *r = rt_dom(rt, dom);
    r->stop_waiters = g_slist_append(r->stop_waiters, w);
    return w; /* owned by the list */
}

/* A shutdown: held by the libvirt request and, with wait, by the stop
 * waiter; the caller's task completes once (done). */
typedef struct {
    QubesRuntime *rt;
    QubesDomain *dom; /* referenced */
    GTask *task;
    gboolean wait;
    int timeout;
    guint timer;
    GTask *waiter;
    int refs;
    gboolean done;
} ShutJob;

static void shut_unref(ShutJob *j)
{
    if (--j->refs > 0)
        return;
    qubes_domain_unref(j->dom);
    g_free(j);
}

/* Answers the caller (@err taken, NULL for success); every failure fires
 * domain-shutdown-failed, as the reference's. */
static void shut_finish(ShutJob *j, GError *err)
{
    if (j->done) {
        if (err)
            g_error_free(err);
        return;
    }
    j->done = TRUE;
    if (j->timer) {
        g_source_remove(j->timer);
        j->timer = 0;
    }
    if (err) {
        rt_fire(j->dom, "domain-shutdown-failed", "reason", err->message, NULL);
        g_task_return_error(j->task, err);
    } else {
        g_task_return_boolean(j->task, TRUE);
    }
    g_object_unref(j->task);
}

static void shut_stopped(GObject *src, GAsyncResult *res, gpointer data)
{
    ShutJob *j = data;
    GError *err = NULL;
    g_task_propagate_boolean(G_TASK(res), &err);
    shut_finish(j, err);
    shut_unref(j);
}

static gboolean shut_timeout(gpointer data)
{
    ShutJob *j = data;
    j->timer = 0;
    g_autoptr(GError) err =
        g_error_new(QUBES_ERROR, QUBES_ERROR_VM_SHUTDOWN_TIMEOUT,
                    "Domain shutdown timed out: '%s'", j->dom->name);
    drop_stop_waiter(j->rt, j->dom, j->waiter, err);
    return G_SOURCE_REMOVE;
}

static void shut_requested(GObject *src, GAsyncResult *res, gpointer data)
{
    ShutJob *j = data;
    GError *err = NULL;
    if (!g_task_propagate_boolean(G_TASK(res), &err)) {
        if (j->waiter)
            drop_stop_waiter(j->rt, j->dom, j->waiter, err);
        shut_finish(j, err);
    } else if (!j->wait) {
        shut_finish(j, NULL);
    } else if (!j->done && j->timeout >= 0) {
        j->timer = g_timeout_add_seconds((guint)j->timeout, shut_timeout, j);
    }
    shut_unref(j);
}

static void shut_pre_fired(GObject *src, GAsyncResult *res, gpointer data)
{
    ShutJob *j = data;
    GError *err = NULL;
    g_autoptr(GPtrArray) fx =
        qubes_emitter_fire_finish(&j->dom->emitter, res, &err);
    if (!fx) {
        shut_finish(j, err);
        shut_unref(j);
        return;
    }
    if (qubes_domain_is_halted(j->dom)) {
        shut_finish(j, NULL);
        shut_unref(j);
        return;
    }
    if (j->wait) {
        j->refs++;
        j->waiter = add_stop_waiter(j->rt, j->dom, shut_stopped, j);
    }
    rt_run_op(j->rt, OP_SHUTDOWN, j->dom, NULL, shut_requested, j);
}

void qubes_runtime_shutdown(QubesRuntime *rt, QubesDomain *dom, gboolean force,
                            gboolean wait, int timeout, GAsyncReadyCallback cb,
                            gpointer data)
{
    GTask *task = g_task_new(NULL, NULL, cb, data);
    if (rt_refused_halted(task, dom, QUBES_ERROR_VM_NOT_STARTED,
                          RT_POWERED_OFF))
        return;
    ShutJob *j = g_new0(ShutJob, 1);
    j->rt = rt;
    j->dom = qubes_domain_ref(dom);
    j->task = task;
    j->wait = wait;
    j->refs = 1;
    j->timeout =
        timeout >= 0 ? timeout : (int)rt_prop_u64(dom, "shutdown_timeout");
    const char *kw[] = {"force", force ? "True" : "False", NULL};
    qubes_emitter_fire_async(&dom->emitter, "domain-pre-shutdown", kw, NULL,
                             shut_pre_fired, j);
}

/* A kill completes when the stop did. */
typedef struct {
    QubesRuntime *rt;
    QubesDomain *dom; /* referenced */
    GTask *task;
    GTask *waiter;
    int refs;
} KillJob;

static void kill_unref(KillJob *k)
{
    if (--k->refs > 0)
        return;
    qubes_domain_unref(k->dom);
    g_free(k);
}

static void kill_destroyed(GObject *src, GAsyncResult *res, gpointer data)
{
    KillJob *k = data;
    GError *err = NULL;
    if (!g_task_propagate_boolean(G_TASK(res), &err)) {
        if (g_error_matches(err, QUBES_ERROR, QUBES_ERROR_VM_NOT_STARTED)) {
            g_clear_error(&err);
            g_set_error(&err, QUBES_ERROR, QUBES_ERROR_VM_NOT_STARTED,
                        "Domain is powered off: '%s'", k->dom->name);
        }
        drop_stop_waiter(k->rt, k->dom, k->waiter, err);
        g_error_free(err);
    }
    kill_unref(k);
}

static void kill_stopped(GObject *src, GAsyncResult *res, gpointer data)
{
    KillJob *k = data;
    GError *err = NULL;
    if (!g_task_propagate_boolean(G_TASK(res), &err))
        g_task_return_error(k->task, err);
    else
        g_task_return_boolean(k->task, TRUE);
    g_object_unref(k->task);
    kill_unref(k);
}

void qubes_runtime_kill(QubesRuntime *rt, QubesDomain *dom,
                        GAsyncReadyCallback cb, gpointer data)
{
    GTask *task = g_task_new(NULL, NULL, cb, data);
    if (rt_refused_halted(task, dom, QUBES_ERROR_VM_NOT_STARTED,
                          RT_POWERED_OFF))
        return;
    KillJob *k = g_new0(KillJob, 1);
    k->rt = rt;
    k->dom = qubes_domain_ref(dom);
    k->task = task;
    k->refs = 1;
    k->waiter = add_stop_waiter(rt, dom, kill_stopped, k);
    if (dom->power == QUBES_POWER_DYING)
        return; /* the stop in progress completes it */
    k->refs++;
    rt_run_op(rt, OP_DESTROY, dom, NULL, kill_destroyed, k);
}
