/* runtime-state.c: the runtime's shared state and small helpers
 * (runtime-state.h). */
#include "runtime-state.h"

#include <libvirt/virterror.h>
#include <string.h>

guint64 rt_prop_u64(QubesDomain *d, const char *name)
{
    g_autofree char *v = qubes_domain_prop(d, name);
    return v ? g_ascii_strtoull(v, NULL, 10) : 0;
}

gboolean rt_feature_with_template(QubesDomain *d, const char *name)
{
    const char *v =
        qubes_domain_feature_check(d, name, TRUE, FALSE, FALSE, NULL);
    return v && *v && strcmp(v, "0") != 0 && strcmp(v, "False") != 0;
}

DomRt *rt_dom(QubesRuntime *rt, QubesDomain *dom)
{
    DomRt *r = g_hash_table_lookup(rt->doms, dom);
    if (!r) {
        r = g_new0(DomRt, 1);
        r->dom = qubes_domain_ref(dom);
        g_hash_table_insert(rt->doms, dom, r);
    }
    return r;
}

void rt_dom_free(DomRt *r)
{
    qubes_domain_unref(r->dom);
    g_free(r);
}

QubesRuntime *rt_ref(QubesRuntime *rt)
{
    g_atomic_int_inc(&rt->refs);
    return rt;
}

/* The last reference (the owner's, or a worker's finishing after qubesd
 * stopped watching) frees what is left. */
void rt_unref(QubesRuntime *rt)
{
    if (!g_atomic_int_dec_and_test(&rt->refs))
        return;
    g_mutex_clear(&rt->lock);
    g_free(rt->cfg.uri);
    g_free(rt->cfg.log_dir);
    g_free(rt->cfg.qmemman_socket);
    g_free(rt->cfg.qmemman_status_socket);
    g_free(rt->cfg.qmemman_avail_mem_file);
    g_free(rt->cfg.autostart_marker);
    g_free(rt);
}

void rt_fire(QubesDomain *dom, const char *event, ...)
{
    g_autoptr(GPtrArray) kw = g_ptr_array_new();
    va_list ap;
    va_start(ap, event);
    for (const char *k; (k = va_arg(ap, const char *));) {
        g_ptr_array_add(kw, (gpointer)k);
        g_ptr_array_add(kw, va_arg(ap, char *));
    }
    va_end(ap);
    g_ptr_array_add(kw, NULL);
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) fx = qubes_emitter_fire(
        &dom->emitter, event, (const char *const *)kw->pdata, &err);
    if (!fx)
        g_warning("%s: handler of %s failed: %s", dom->name, event,
                  err->message);
}

void rt_fire_state_resets(QubesDomain *dom)
{
    rt_fire(dom, "property-reset:xid", "name", "xid", NULL);
    rt_fire(dom, "property-reset:stubdom_xid", "name", "stubdom_xid", NULL);
    rt_fire(dom, "property-reset:start_time", "name", "start_time", NULL);
}

/* The error of the libvirt call that just failed on this thread. */
void rt_set_virt_error(GError **error, QubesErrorCode code, const char *what)
{
    const char *msg = virGetLastErrorMessage();
    g_set_error(error, QUBES_ERROR, code, "%s%s", what ? what : "",
                msg ? msg : "unknown libvirt error");
}

QubesDomain *rt_find_by_uuid(QubesRuntime *rt, const char *uuid)
{
    for (guint i = 0; i < rt->app->domains->len; i++) {
        QubesDomain *d = rt->app->domains->pdata[i];
        if (!d || d->qid == 0)
            continue;
        g_autofree char *u = qubes_domain_prop(d, "uuid");
        if (u && g_ascii_strcasecmp(u, uuid) == 0)
            return d;
    }
    return NULL;
}

virConnectPtr rt_conn_get(QubesRuntime *rt, GError **error)
{
    g_mutex_lock(&rt->lock);
    virConnectPtr c = rt->conn;
    if (c)
        virConnectRef(c);
    g_mutex_unlock(&rt->lock);
    if (!c)
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                    "Not connected to the hypervisor (%s)", rt->cfg.uri);
    return c;
}

void rt_complete_tasks(GSList *tasks, const GError *error)
{
    for (GSList *l = tasks; l; l = l->next) {
        GTask *t = l->data;
        if (error)
            g_task_return_error(t, g_error_copy(error));
        else
            g_task_return_boolean(t, TRUE);
        g_object_unref(t);
    }
    g_slist_free(tasks);
}

void rt_complete_stop_waiters(DomRt *r, GError *error)
{
    GSList *w = r->stop_waiters;
    r->stop_waiters = NULL;
    rt_complete_tasks(w, error);
}

void rt_maybe_forget(QubesRuntime *rt, DomRt *r)
{
    if (!r->starting && !r->start_waiters && !r->stop_waiters)
        g_hash_table_remove(rt->doms, r->dom);
}

void rt_refuse(GTask *task, QubesErrorCode code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_task_return_new_error(task, QUBES_ERROR, code, "%s", msg);
    g_object_unref(task);
}

/* Answers @task "@what 'NAME'" with @code when @dom is halted (or dom0,
 * which this runtime never stops); TRUE when it did. */
gboolean rt_refused_halted(GTask *task, QubesDomain *dom, QubesErrorCode code,
                           const char *what)
{
    if (dom->power != QUBES_POWER_HALTED && dom->qid != 0)
        return FALSE;
    rt_refuse(task, code, "%s '%s'", what, dom->name);
    return TRUE;
}

gboolean rt_uses_links(QubesRuntime *rt)
{
    return rt->cfg.hv != QUBES_HV_XEN;
}

gboolean rt_is_up(QubesDomain *d)
{
    return d->power == QUBES_POWER_RUNNING || d->power == QUBES_POWER_PAUSED ||
           d->power == QUBES_POWER_TRANSIENT;
}

/* Runs @func on a worker with @data (freed by @free with the task),
 * then @cb on the main context. */
void rt_run_in_worker(GTaskThreadFunc func, gpointer data, GDestroyNotify free,
                      GAsyncReadyCallback cb, gpointer cb_data)
{
    GTask *task = g_task_new(NULL, NULL, cb, cb_data);
    g_task_set_task_data(task, data, free);
    g_task_run_in_thread(task, func);
    g_object_unref(task);
}
