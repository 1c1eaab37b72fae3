/* internal.c: the internal socket's methods for dom0's components
 * (qubes/api/internal.py): internal.GetSystemInfo, which qrexec's policy
 * daemon asks before every call between qubes, and internal.SuspendPre
 * and SuspendPost, which the host's suspend runs around its sleep.
 *
 * The suspend, as master's:
 *   SuspendPre:  every preloaded disposable goes; the qubes already
 *                paused or suspended are written to the paused list (one
 *                name a line, ApiState.paused_list); every other running
 *                local qube (not dom0, not a RemoteVM) is suspended,
 *                together; failures are answered together as
 *                "Failed to suspend some qubes: \nCAUSE\nCAUSE".
 *   SuspendPost: the paused list is read and removed; every paused or
 *                suspended local qube not on it is resumed (a failure is
 *                logged: the host is awake whatever happens); every
 *                disposable template that preloads is filled again.
 * Master also runs qubes.SuspendPreAll and qubes.SuspendPostAll in each
 * qube that has the qrexec feature; there is no qrexec here, so they are
 * not run (README, "Differences from master").
 *
 * The paused list is in /run (a tmpfs): it lives for one boot, which is
 * all it is for; it is replaced whole (g_file_set_contents: a temporary
 * file renamed over it), so a reader never sees half of it. */
#include "api-util.h"
#include "preload-run.h"
#include "runtime.h"

#include "qubes-error.h"

#include <errno.h>
#include <string.h>

static char *get_system_info(Call *call, GError **error)
{
    ApiState *s = call->state;
    if (!s->system_info)
        s->system_info = qubes_system_info_new(call->app);
    return qubes_system_info_json(s->system_info);
}

/* The local qubes: not dom0, not a RemoteVM (master's LocalVM). */
static gboolean is_local(QubesDomain *d)
{
    return d->qid != 0 && strcmp(d->klass->name, "RemoteVM") != 0;
}

static gboolean is_paused(QubesDomain *d)
{
    return d->power == QUBES_POWER_PAUSED || d->power == QUBES_POWER_SUSPENDED;
}

/* libvirt's active domains that are not paused. */
static gboolean is_active(QubesDomain *d)
{
    return d->power == QUBES_POWER_RUNNING ||
           d->power == QUBES_POWER_TRANSIENT || d->power == QUBES_POWER_HALTING;
}

typedef struct {
    Call *call;
    guint pending;
    GString *failed; /* "\nCAUSE" for each qube that failed */
    gboolean resume;
} SuspendJob;

static void job_finish(SuspendJob *job)
{
    if (job->failed->len && !job->resume) {
        call_fail(job->call, g_error_new(QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                                         "Failed to suspend some qubes: %s",
                                         job->failed->str));
    } else {
        if (job->resume) {
            QubesPreload *p = qubes_runtime_preload(job->call->app->runtime);
            if (p)
                qubes_preload_start_all(p, "system resumed");
        }
        call_return(job->call, NULL);
    }
    g_string_free(job->failed, TRUE);
    g_free(job);
}

static void one_done(GObject *src, GAsyncResult *res, gpointer data)
{
    SuspendJob *job = data;
    g_autoptr(GError) err = NULL;
    if (!qubes_runtime_op_finish(res, &err)) {
        if (job->resume)
            g_warning("resume after the host's suspend: %s", err->message);
        g_string_append_printf(job->failed, "\n%s", err->message);
    }
    if (--job->pending == 0)
        job_finish(job);
}

/* Suspends (or resumes) each of @targets together; the call completes
 * when all have finished. */
static char *run_all(Call *call, GPtrArray *targets, gboolean resume)
{
    SuspendJob *job = g_new0(SuspendJob, 1);
    job->call = call;
    job->failed = g_string_new(NULL);
    job->resume = resume;
    job->pending = 1; /* until every operation has begun */
    QubesRuntime *rt = call->app->runtime;
    for (guint i = 0; rt && i < targets->len; i++) {
        job->pending++;
        if (resume)
            qubes_runtime_resume(rt, targets->pdata[i], one_done, job);
        else
            qubes_runtime_suspend(rt, targets->pdata[i], one_done, job);
    }
    if (--job->pending == 0)
        job_finish(job);
    return CALL_ASYNC;
}

static char *suspend_pre(Call *call, GError **error)
{
    QubesApp *app = call->app;
    QubesPreload *p = qubes_runtime_preload(call->app->runtime);
    if (p)
        qubes_preload_remove_all(p, "system wants to suspend");
    g_autoptr(GString) list = g_string_new(NULL);
    g_autoptr(GPtrArray) targets = g_ptr_array_new();
    for (guint i = 0; i < app->domains->len; i++) {
        QubesDomain *d = app->domains->pdata[i];
        if (is_paused(d)) {
            if (list->len)
                g_string_append_c(list, '\n');
            g_string_append(list, d->name);
        } else if (is_local(d) && is_active(d)) {
            g_ptr_array_add(targets, d);
        }
    }
    GError *err = NULL;
    if (!g_file_set_contents(call->state->paused_list, list->str,
                             (gssize)list->len, &err)) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                    "Cannot write %s: %s", call->state->paused_list,
                    err->message);
        g_error_free(err);
        return NULL;
    }
    return run_all(call, targets, FALSE);
}

static char *suspend_post(Call *call, GError **error)
{
    QubesApp *app = call->app;
    const char *path = call->state->paused_list;
    g_autofree char *text = NULL;
    g_auto(GStrv) before = NULL;
    /* as master: a list that cannot be read is no list */
    if (g_file_get_contents(path, &text, NULL, NULL)) {
        before = g_strsplit(text, "\n", -1);
        if (unlink(path) != 0 && errno != ENOENT)
            g_warning("cannot remove %s: %s", path, g_strerror(errno));
    }
    g_autoptr(GPtrArray) targets = g_ptr_array_new();
    for (guint i = 0; i < app->domains->len; i++) {
        QubesDomain *d = app->domains->pdata[i];
        if (is_local(d) && is_paused(d) &&
            !(before && g_strv_contains((const char *const *)before, d->name)))
            g_ptr_array_add(targets, d);
    }
    return run_all(call, targets, TRUE);
}

#define NP M_NO_PAYLOAD
#define NA M_NO_ARG
#define D0 M_DOM0
#define IN M_INTERNAL

const Method api_internal_methods[] = {
    {"internal.GetSystemInfo", IN | NP | NA | D0, get_system_info},
    {"internal.SuspendPre", IN | NP | NA | D0, suspend_pre},
    {"internal.SuspendPost", IN | NP | NA | D0, suspend_post},
    {NULL},
};
