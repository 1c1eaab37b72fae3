/* admin-lifecycle.c: admin.vm.Start, Shutdown, Kill, Pause, Unpause,
 * Suspend, Resume, Console and CurrentState: a qube's life through the
 * VM runtime (src/vm/runtime.h), with the reference's arguments, checks
 * and answers. */
#include "api-util.h"
#include "runtime.h"

#include "qubes-error.h"

#include <string.h>

/* Without a runtime (qubesd --offline) nothing runs: the reference's
 * offline mode answers every state as Halted, and a start cannot work. */
static gboolean need_runtime(Call *call, GError **error)
{
    if (call->app->runtime)
        return TRUE;
    g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                "Start failed: qubesd runs without a hypervisor (--offline)");
    return FALSE;
}

static void op_done(GObject *src, GAsyncResult *res, gpointer data)
{
    Call *call = data;
    GError *err = NULL;
    if (qubes_runtime_op_finish(res, &err))
        call_return(call, NULL);
    else
        call_fail(call, err);
}

static char *vm_start(Call *call, GError **error)
{
    if (!need_runtime(call, error))
        return NULL;
    qubes_runtime_start(call->app->runtime, call->dest, op_done, call);
    return CALL_ASYNC;
}

static char *vm_shutdown(Call *call, GError **error)
{
    gboolean force = FALSE, wait = FALSE;
    if (*call->arg) {
        g_auto(GStrv) args = g_strsplit(call->arg, "+", -1);
        for (char **a = args; *a; a++) {
            if (strcmp(*a, "force") == 0)
                force = TRUE;
            else if (strcmp(*a, "wait") == 0)
                wait = TRUE;
            else {
                api_enforce(FALSE, NULL, error);
                return NULL;
            }
        }
    }
    if (!call->app->runtime) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VM_NOT_STARTED,
                    "Domain is powered off: '%s'", call->dest->name);
        return NULL;
    }
    qubes_runtime_shutdown(call->app->runtime, call->dest, force, wait, -1,
                           op_done, call);
    return CALL_ASYNC;
}

typedef void (*RuntimeOp)(QubesRuntime *rt, QubesDomain *dom,
                          GAsyncReadyCallback cb, gpointer data);

/* An operation on a running qube. The runtime refuses a qube in the
 * wrong state; offline nothing runs, and @code is the answer. */
static char *running_op(Call *call, RuntimeOp op, QubesErrorCode code,
                        const char *message, GError **error)
{
    if (!call->app->runtime) {
        g_set_error(error, QUBES_ERROR, code, "%s '%s'", message,
                    call->dest->name);
        return NULL;
    }
    op(call->app->runtime, call->dest, op_done, call);
    return CALL_ASYNC;
}

#define POWERED_OFF "Domain is powered off:"
#define NOT_RUNNING "Domain not running (either powered off or paused):"

static char *vm_kill(Call *call, GError **error)
{
    return running_op(call, qubes_runtime_kill, QUBES_ERROR_VM_NOT_STARTED,
                      POWERED_OFF, error);
}

static char *vm_pause(Call *call, GError **error)
{
    return running_op(call, qubes_runtime_pause, QUBES_ERROR_VM_NOT_RUNNING,
                      NOT_RUNNING, error);
}

static char *vm_unpause(Call *call, GError **error)
{
    return running_op(call, qubes_runtime_unpause, QUBES_ERROR_VM_NOT_PAUSED,
                      "Domain is not paused:", error);
}

static char *vm_suspend(Call *call, GError **error)
{
    return running_op(call, qubes_runtime_suspend, QUBES_ERROR_VM_NOT_RUNNING,
                      NOT_RUNNING, error);
}

static char *vm_resume(Call *call, GError **error)
{
    return running_op(call, qubes_runtime_resume, QUBES_ERROR_VM_NOT_PAUSED,
                      "Domain is not paused:", error);
}

static void console_done(GObject *src, GAsyncResult *res, gpointer data)
{
    Call *call = data;
    GError *err = NULL;
    g_autofree char *tty = qubes_runtime_console_finish(res, &err);
    if (tty)
        call_return(call, tty);
    else
        call_fail(call, err);
}

static char *vm_console(Call *call, GError **error)
{
    if (!call->app->runtime) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VM_NOT_RUNNING, "%s '%s'",
                    NOT_RUNNING, call->dest->name);
        return NULL;
    }
    qubes_runtime_console(call->app->runtime, call->dest, console_done, call);
    return CALL_ASYNC;
}

/* ---- state ---- */

static char *state_line(QubesDomain *d, guint64 mem, guint64 max,
                        guint64 cputime)
{
    return g_strdup_printf("mem=%" G_GUINT64_FORMAT
                           " mem_static_max=%" G_GUINT64_FORMAT
                           " cputime=%" G_GUINT64_FORMAT " power_state=%s",
                           mem, max, cputime, qubes_domain_power_state(d));
}

static void state_done(GObject *src, GAsyncResult *res, gpointer data)
{
    Call *call = data;
    QubesDomainInfo info = {0};
    g_autoptr(GError) err = NULL;
    if (!qubes_runtime_info_finish(res, &info, &err)) {
        /* It stopped in the meantime: as the reference's get_mem() and
         * friends, which answer 0 for a domain libvirt no longer has. */
        memset(&info, 0, sizeof(info));
    }
    g_autofree char *line =
        state_line(call->dest, info.mem, info.mem_static_max, info.cputime);
    call_return(call, line);
}

static char *vm_current_state(Call *call, GError **error)
{
    QubesDomain *d = call->dest;
    if (d->qid == 0) {
        guint64 mem = call->app->host_memory;
        return state_line(d, mem, mem, 0);
    }
    if (qubes_domain_is_halted(d) || !call->app->runtime ||
        strcmp(d->klass->name, "RemoteVM") == 0) {
        /* Halted: no memory, and at most its maxmem (MiB) in KiB, as the
         * reference reports it. */
        g_autofree char *v = NULL;
        guint64 max = 0;
        if (qubes_props_get(&d->props, "maxmem", &v, NULL, NULL) && v)
            max = g_ascii_strtoull(v, NULL, 10) * 1024;
        return state_line(d, 0, max, 0);
    }
    qubes_runtime_info(call->app->runtime, d, state_done, call);
    return CALL_ASYNC;
}

#define NP M_NO_PAYLOAD
#define NA M_NO_ARG

const Method api_lifecycle_methods[] = {
    {"admin.vm.CurrentState", NP | NA, vm_current_state},
    {"admin.vm.Start", NP | NA, vm_start},
    {"admin.vm.Shutdown", NP, vm_shutdown},
    {"admin.vm.Kill", NP | NA, vm_kill},
    {"admin.vm.Pause", NP | NA, vm_pause},
    {"admin.vm.Unpause", NP | NA, vm_unpause},
    {"admin.vm.Suspend", NP | NA, vm_suspend},
    {"admin.vm.Resume", NP | NA, vm_resume},
    {"admin.vm.Console", NP | NA, vm_console},
    {NULL},
};
