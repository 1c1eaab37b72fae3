/* vm-start.c: a qube's start, a small state machine on the main
 * context whose every blocking step runs on a worker (vm-start.h). */
#include "vm-start.h"

#include "domain-spec.h"
#include "firewall-run.h"
#include "hotplug.h"
#include "libvirt-ops.h"
#include "memory-request.h"
#include "net-links.h"
#include "storage-run.h"
#include "vm-stop.h"

#include <string.h>

typedef struct {
    QubesRuntime *rt;
    QubesDomain *dom; /* referenced */
    GTask *task;      /* the caller's */
    gboolean storage_started;
    GError *cause;              /* why it failed, while cleaning up */
    char *xml;                  /* the domain XML while its bridge is made */
    GSocketConnection *qmemman; /* the memory reserved until it exists */
    GPtrArray *devs;            /* StartDev: attached once it exists */
    guint dev_next;
} StartJob;

static void start_complete(StartJob *j, GError *error)
{
    DomRt *r = rt_dom(j->rt, j->dom);
    r->starting = FALSE;
    r->died = FALSE;
    GSList *w = r->start_waiters;
    r->start_waiters = NULL;
    rt_complete_tasks(g_slist_prepend(w, j->task), error);
    rt_maybe_forget(j->rt, r);
    if (error)
        g_error_free(error);
    qubes_domain_unref(j->dom);
    g_free(j->xml);
    g_clear_object(&j->qmemman);
    if (j->devs)
        g_ptr_array_unref(j->devs);
    g_free(j);
}

static void start_failed_stopped(GObject *src, GAsyncResult *res, gpointer data)
{
    StartJob *j = data;
    g_autoptr(GError) serr = NULL;
    if (!g_task_propagate_boolean(G_TASK(res), &serr))
        g_warning("%s: stopping storage after a failed start: %s", j->dom->name,
                  serr->message);
    start_complete(j, g_steal_pointer(&j->cause));
}

/* A failure before the domain exists: domain-start-failed, storage
 * stopped when it was started, the cause answered. */
static void start_fail(StartJob *j, GError *cause)
{
    g_warning("%s: Start failed: %s", j->dom->name, cause->message);
    rt_fire(j->dom, "domain-start-failed", "reason", cause->message, NULL);
    if (rt_uses_links(j->rt)) {
        rt_run_bridge(j->dom, FALSE, rt_link_done,
                      g_strdup_printf("%s: removing its link", j->dom->name));
        rt_nf_remove(j->rt, j->dom);
    }
    if (j->storage_started) {
        j->cause = cause;
        rt_run_storage(j->dom, ST_STOP, start_failed_stopped, j);
        return;
    }
    start_complete(j, cause);
}

static void start_fired_start(GObject *src, GAsyncResult *res, gpointer data)
{
    StartJob *j = data;
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) fx =
        qubes_emitter_fire_finish(&j->dom->emitter, res, &err);
    if (!fx)
        g_warning("%s: a domain-start handler failed: %s", j->dom->name,
                  err->message);
    /* The seed's order: a qube is connected to its netvm once it runs,
     * and a netvm that starts connects its running clients. */
    rt_link_connect(j->rt, j->dom, qubes_domain_get_netvm(j->dom));
    if (qubes_domain_flag(j->dom, "provides_network"))
        rt_link_clients(j->rt, j->dom);
    start_complete(j, NULL);
}

static void start_killed(GObject *src, GAsyncResult *res, gpointer data)
{
    StartJob *j = data;
    g_autoptr(GError) err = NULL;
    if (!g_task_propagate_boolean(G_TASK(res), &err))
        g_warning("%s: %s", j->dom->name, err->message);
    rt_fire(j->dom, "domain-start-failed", "reason", j->cause->message, NULL);
    start_complete(j, g_steal_pointer(&j->cause));
}

/* A failure once the domain exists: it is killed (its storage is then
 * stopped as for any stop), and the start fails with the cause. */
static void start_fail_running(StartJob *j, GError *cause)
{
    g_warning("%s: Start failed: %s", j->dom->name, cause->message);
    DomRt *r = rt_dom(j->rt, j->dom);
    gboolean died = r->died;
    r->starting = FALSE;
    r->died = FALSE;
    j->cause = cause;
    r->stop_waiters = g_slist_append(r->stop_waiters,
                                     g_task_new(NULL, NULL, start_killed, j));
    if (died)
        rt_domain_gone(j->rt, j->dom);
    else
        rt_run_op(j->rt, OP_DESTROY, j->dom, NULL, NULL, NULL);
}

static void start_resumed(GObject *src, GAsyncResult *res, gpointer data)
{
    StartJob *j = data;
    GError *err = NULL;
    if (!g_task_propagate_boolean(G_TASK(res), &err) ||
        rt_dom(j->rt, j->dom)->died) {
        if (!err)
            err = g_error_new(QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                              "Domain %s died while starting", j->dom->name);
        start_fail_running(j, err);
        return;
    }
    j->dom->power = QUBES_POWER_RUNNING;
    g_message("%s: started", j->dom->name);
    const char *kw[] = {"start_guid", "True", NULL};
    qubes_emitter_fire_async(&j->dom->emitter, "domain-start", kw, NULL,
                             start_fired_start, j);
}

static void start_fired_spawn(GObject *src, GAsyncResult *res, gpointer data)
{
    StartJob *j = data;
    GError *err = NULL;
    g_autoptr(GPtrArray) fx =
        qubes_emitter_fire_finish(&j->dom->emitter, res, &err);
    if (!fx) {
        start_fail_running(j, err);
        return;
    }
    rt_run_op(j->rt, OP_RESUME, j->dom, NULL, start_resumed, j);
}

static void start_spawn(StartJob *j);
static void start_next_device(StartJob *j);

static void start_device_done(GObject *src, GAsyncResult *res, gpointer data)
{
    StartJob *j = data;
    StartDev *d = j->devs->pdata[j->dev_next - 1];
    GError *err = NULL;
    if (!g_task_propagate_boolean(G_TASK(res), &err)) {
        g_autofree char *v = qubes_vdev_str(&d->dev);
        if (d->required) {
            g_prefix_error(&err, "Start failed: %s device %s: ", d->devclass,
                           v);
            start_fail_running(j, err);
            return;
        }
        g_warning("%s: %s device %s not attached at start: %s", j->dom->name,
                  d->devclass, v, err->message);
        g_error_free(err);
    } else {
        g_autofree char *v = qubes_vdev_str(&d->dev);
        g_autofree char *opts = qubes_py_dict(d->options);
        g_autofree char *ev = g_strdup_printf("device-attach:%s", d->devclass);
        rt_fire(j->dom, ev, "device", v, "options", opts, NULL);
    }
    start_next_device(j);
}

static void start_next_device(StartJob *j)
{
    if (!j->devs || j->dev_next >= j->devs->len) {
        start_spawn(j);
        return;
    }
    StartDev *d = j->devs->pdata[j->dev_next++];
    rt_start_dev_attach(j->rt, j->dom, d, start_device_done, j);
}

static void start_created(GObject *src, GAsyncResult *res, gpointer data)
{
    StartJob *j = data;
    GError *err = NULL;
    /* the domain exists (or will not): qmemmand may balance again */
    if (j->qmemman)
        g_io_stream_close(G_IO_STREAM(j->qmemman), NULL, NULL);
    g_clear_object(&j->qmemman);
    if (!g_task_propagate_boolean(G_TASK(res), &err)) {
        g_prefix_error(&err, "Start failed: ");
        start_fail(j, err);
        return;
    }
    j->dom->xid = rt_op_of(res)->id;
    j->dom->start_time = g_get_real_time() / G_USEC_PER_SEC;
    j->dom->power = QUBES_POWER_TRANSIENT;
    rt_fire_state_resets(j->dom);
    if (rt_dom(j->rt, j->dom)->died) {
        start_fail_running(j, g_error_new(QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                                          "Domain %s died while starting",
                                          j->dom->name));
        return;
    }
    start_next_device(j);
}

static void start_spawn(StartJob *j)
{
    const char *kw[] = {"start_guid", "True", NULL};
    qubes_emitter_fire_async(&j->dom->emitter, "domain-spawn", kw, NULL,
                             start_fired_spawn, j);
}

static void start_create(StartJob *j, char *xml);

static void start_memory_done(GObject *src, GAsyncResult *res, gpointer data)
{
    StartJob *j = data;
    QubesMemRequest *m = rt_memory_request_result(res);
    GError *err = NULL;
    char *xml = g_steal_pointer(&j->xml);
    if (!g_task_propagate_boolean(G_TASK(res), &err)) {
        g_free(xml);
        g_prefix_error(&err, "Start failed: ");
        start_fail(j, err);
        return;
    }
    if (m->refused) {
        g_free(xml);
        start_fail(j, g_error_new(QUBES_ERROR, QUBES_ERROR_MEMORY,
                                  "Not enough memory to start domain '%s'",
                                  j->dom->name));
        return;
    }
    if (m->absent && !j->rt->warned_qmemman) {
        g_message("qmemmand does not answer at %s: qubes start without "
                  "memory balancing",
                  m->socket);
        j->rt->warned_qmemman = TRUE;
    } else if (!m->absent) {
        j->rt->warned_qmemman = FALSE;
    }
    j->qmemman = g_steal_pointer(&m->conn);
    rt_run_op(j->rt, OP_CREATE, j->dom, xml, start_created, j);
}

static void start_create(StartJob *j, char *xml)
{
    if (!j->rt->cfg.qmemman_socket) {
        rt_run_op(j->rt, OP_CREATE, j->dom, xml, start_created, j);
        return;
    }
    j->xml = xml;
    rt_memory_request(j->rt, j->dom, start_memory_done, j);
}

static void start_firewall_ready(GObject *src, GAsyncResult *res, gpointer data)
{
    StartJob *j = data;
    GError *err = NULL;
    if (!g_task_propagate_boolean(G_TASK(res), &err)) {
        g_prefix_error(&err, "Start failed: firewall: ");
        start_fail(j, err);
        return;
    }
    start_create(j, g_steal_pointer(&j->xml));
}

/* The link is there: the qube's rules guard its port before its NIC
 * exists. */
static void start_bridge_ready(GObject *src, GAsyncResult *res, gpointer data)
{
    StartJob *j = data;
    GError *err = NULL;
    if (!g_task_propagate_boolean(G_TASK(res), &err)) {
        g_prefix_error(&err, "Start failed: ");
        start_fail(j, err);
        return;
    }
    rt_nf_apply(j->rt, j->dom, start_firewall_ready, j);
}

static void start_storage_started(GObject *src, GAsyncResult *res,
                                  gpointer data)
{
    StartJob *j = data;
    GError *err = NULL;
    if (!g_task_propagate_boolean(G_TASK(res), &err)) {
        start_fail(j, err); /* the worker stopped what it started */
        return;
    }
    j->storage_started = TRUE;
    j->devs = rt_start_devices(j->rt, j->dom, &err);
    if (!j->devs) {
        g_prefix_error(&err, "Start failed: ");
        start_fail(j, err);
        return;
    }
    char *xml = qubes_runtime_domain_xml(j->rt, j->dom, &err);
    if (!xml) {
        start_fail(j, err);
        return;
    }
    g_debug("%s: domain XML:\n%s", j->dom->name, xml);
    if (rt_uses_links(j->rt) && qubes_domain_get_netvm(j->dom)) {
        j->xml = xml;
        rt_run_bridge(j->dom, TRUE, start_bridge_ready, j);
        return;
    }
    start_create(j, xml);
}

static void start_netvm_done(GObject *src, GAsyncResult *res, gpointer data)
{
    StartJob *j = data;
    GError *err = NULL;
    if (!g_task_propagate_boolean(G_TASK(res), &err)) {
        start_fail(j, err);
        return;
    }
    rt_run_storage(j->dom, ST_START, start_storage_started, j);
}

static void start_verified(GObject *src, GAsyncResult *res, gpointer data)
{
    StartJob *j = data;
    GError *err = NULL;
    if (!g_task_propagate_boolean(G_TASK(res), &err)) {
        start_fail(j, err);
        return;
    }
    QubesDomain *net = qubes_domain_get_netvm(j->dom);
    if (net && net->qid != 0 && qubes_domain_is_halted(net)) {
        qubes_runtime_start(j->rt, net, start_netvm_done, j);
        return;
    }
    rt_run_storage(j->dom, ST_START, start_storage_started, j);
}

static void start_pre_fired(GObject *src, GAsyncResult *res, gpointer data)
{
    StartJob *j = data;
    GError *err = NULL;
    g_autoptr(GPtrArray) fx =
        qubes_emitter_fire_finish(&j->dom->emitter, res, &err);
    if (!fx) {
        start_fail(j, err);
        return;
    }
    g_autofree char *mode = qubes_domain_prop(j->dom, "virt_mode");
    g_autofree char *kernel = qubes_domain_prop(j->dom, "kernel");
    if (g_strcmp0(mode, "pvh") == 0 && !(kernel && *kernel)) {
        start_fail(j, g_error_new_literal(QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                                          "virt_mode PVH require kernel to "
                                          "be set"));
        return;
    }
    if (!j->rt->conn) {
        start_fail(j, g_error_new(QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                                  "Start failed: not connected to the "
                                  "hypervisor (%s)",
                                  j->rt->cfg.uri));
        return;
    }
    rt_run_storage(j->dom, ST_VERIFY, start_verified, j);
}

void qubes_runtime_start(QubesRuntime *rt, QubesDomain *dom,
                         GAsyncReadyCallback cb, gpointer data)
{
    GTask *task = g_task_new(NULL, NULL, cb, data);
    if (dom->removed) {
        g_task_return_new_error(task, QUBES_ERROR, QUBES_ERROR_VM_NOT_FOUND,
                                "No such domain: '%s'", dom->name);
        g_object_unref(task);
        return;
    }
    DomRt *r = rt_dom(rt, dom);
    if (r->starting) {
        r->start_waiters = g_slist_append(r->start_waiters, task);
        return;
    }
    /* As the reference: not halted (running, paused, ...) is done. */
    if (dom->power != QUBES_POWER_HALTED || dom->qid == 0) {
        g_task_return_boolean(task, TRUE);
        g_object_unref(task);
        rt_maybe_forget(rt, r);
        return;
    }
    r->starting = TRUE;
    r->died = FALSE;
    StartJob *j = g_new0(StartJob, 1);
    j->rt = rt;
    j->dom = qubes_domain_ref(dom);
    j->task = task;
    g_message("Starting %s", dom->name);
    const char *kw[] = {"start_guid", "True", "mem_required", "None", NULL};
    qubes_emitter_fire_async(&dom->emitter, "domain-pre-start", kw, NULL,
                             start_pre_fired, j);
}
