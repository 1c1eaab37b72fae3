/* vm-pause.c: pause, unpause, suspend and resume (vm-pause.h). */
#include "vm-pause.h"

#include "libvirt-ops.h"

/* Pause, unpause, suspend and resume: one libvirt call, then the state. */
typedef struct {
    QubesDomain *dom;
    GTask *task;
    QubesPowerState after;
} SimpleJob;

static void simple_done(GObject *src, GAsyncResult *res, gpointer data)
{
    SimpleJob *s = data;
    GError *err = NULL;
    if (!g_task_propagate_boolean(G_TASK(res), &err)) {
        if (g_error_matches(err, QUBES_ERROR, QUBES_ERROR_VM_NOT_STARTED)) {
            g_clear_error(&err);
            g_set_error(&err, QUBES_ERROR, QUBES_ERROR_VM_NOT_RUNNING,
                        "Domain not running (either powered off or paused): "
                        "'%s'",
                        s->dom->name);
        }
        g_task_return_error(s->task, err);
    } else {
        if (s->dom->power != QUBES_POWER_HALTED &&
            s->dom->power != QUBES_POWER_DYING)
            s->dom->power = s->after;
        g_task_return_boolean(s->task, TRUE);
    }
    g_object_unref(s->task);
    qubes_domain_unref(s->dom);
    g_free(s);
}

static void simple_op(QubesRuntime *rt, QubesDomain *dom, OpKind kind,
                      QubesPowerState after, GTask *task)
{
    SimpleJob *s = g_new0(SimpleJob, 1);
    s->dom = qubes_domain_ref(dom);
    s->task = task;
    s->after = after;
    rt_run_op(rt, kind, dom, NULL, simple_done, s);
}

void qubes_runtime_pause(QubesRuntime *rt, QubesDomain *dom,
                         GAsyncReadyCallback cb, gpointer data)
{
    GTask *task = g_task_new(NULL, NULL, cb, data);
    if (rt_refused_halted(task, dom, QUBES_ERROR_VM_NOT_RUNNING,
                          RT_NOT_RUNNING))
        return;
    simple_op(rt, dom, OP_SUSPEND, QUBES_POWER_PAUSED, task);
}

void qubes_runtime_unpause(QubesRuntime *rt, QubesDomain *dom,
                           GAsyncReadyCallback cb, gpointer data)
{
    GTask *task = g_task_new(NULL, NULL, cb, data);
    if (dom->power != QUBES_POWER_PAUSED) {
        rt_refuse(task, QUBES_ERROR_VM_NOT_PAUSED, "Domain is not paused: '%s'",
                  dom->name);
        return;
    }
    simple_op(rt, dom, OP_RESUME, QUBES_POWER_RUNNING, task);
}

/* Without PCI devices attached the reference's suspend is a pause
 * (libvirt suspend), with the same refusal; with them it is ACPI S3. A
 * PCI device is attached only on a host with an IOMMU, where this has
 * not been run: every suspend is a pause here. */
void qubes_runtime_suspend(QubesRuntime *rt, QubesDomain *dom,
                           GAsyncReadyCallback cb, gpointer data)
{
    qubes_runtime_pause(rt, dom, cb, data);
}

void qubes_runtime_resume(QubesRuntime *rt, QubesDomain *dom,
                          GAsyncReadyCallback cb, gpointer data)
{
    if (dom->power == QUBES_POWER_SUSPENDED) {
        GTask *task = g_task_new(NULL, NULL, cb, data);
        simple_op(rt, dom, OP_PM_WAKEUP, QUBES_POWER_RUNNING, task);
        return;
    }
    qubes_runtime_unpause(rt, dom, cb, data);
}
