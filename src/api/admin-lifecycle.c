/* admin-lifecycle.c: admin.vm.Start, Shutdown, Kill, Pause, Unpause,
 * Suspend, Resume, Console and CurrentState: a qube's life through the
 * VM runtime (src/vm/runtime.h), with the reference's arguments, checks
 * and answers. */
#include "api-util.h"
#include "runtime.h"

#include "qubes-error.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

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

/* adminvm.py and remotevm.py: dom0 and a RemoteVM refuse to be started,
 * suspended, shut down or killed, in master's words (@verb: "start",
 * ...). FALSE with @error for them. */
static gboolean not_fake(Call *call, const char *verb, GError **error)
{
    QubesDomain *d = call->dest;
    gboolean dom0 = d->qid == 0;
    if (!dom0 && strcmp(d->klass->name, "RemoteVM") != 0)
        return TRUE;
    QubesErrorCode code =
        strcmp(verb, "start") == 0 ? QUBES_ERROR_VM_NOT_HALTED : QUBES_ERROR_VM;
    if (dom0)
        g_set_error(error, QUBES_ERROR, code, "Cannot %s Dom0 fake domain!",
                    verb);
    else
        g_set_error(error, QUBES_ERROR, code, "Cannot %s a RemoteVM.", verb);
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
    if (!not_fake(call, "start", error) || !need_runtime(call, error))
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
    if (!not_fake(call, "shutdown", error))
        return NULL;
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
    if (!not_fake(call, "kill", error))
        return NULL;
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
    if (!not_fake(call, "suspend", error))
        return NULL;
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

/* dom0 on a host that is not Xen is the host itself: its CPU time and
 * what it uses, from /proc. */
static gboolean host_stat(QubesDomainStat *s)
{
    g_autofree char *stat = NULL, *meminfo = NULL;
    if (!g_file_get_contents("/proc/stat", &stat, NULL, NULL) ||
        !g_file_get_contents("/proc/meminfo", &meminfo, NULL, NULL))
        return FALSE;
    guint64 f[8] = {0};
    if (sscanf(stat,
               "cpu %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT
               " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT
               " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT
               " %" G_GUINT64_FORMAT,
               &f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6], &f[7]) != 8)
        return FALSE;
    /* busy time: user nice system irq softirq steal, in clock ticks */
    guint64 ticks = f[0] + f[1] + f[2] + f[5] + f[6] + f[7];
    s->cpu_time_ns = ticks * (G_GUINT64_CONSTANT(1000000000) /
                              (guint64)sysconf(_SC_CLK_TCK));
    guint64 total = 0, avail = 0;
    const char *t = strstr(meminfo, "MemTotal:");
    const char *a = strstr(meminfo, "MemAvailable:");
    if (t)
        total = g_ascii_strtoull(t + 9, NULL, 10);
    if (a)
        avail = g_ascii_strtoull(a + 13, NULL, 10);
    s->memory_kb = total > avail ? total - avail : 0;
    s->vcpus = g_get_num_processors();
    return TRUE;
}

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
    /* get_mem_static_max of dom0 and of a qube that does not run: its
     * maxmem (MiB) in KiB (none for a RemoteVM) */
    g_autofree char *maxmem = qubes_props_value(&d->props, "maxmem");
    guint64 max = maxmem ? g_ascii_strtoull(maxmem, NULL, 10) * 1024 : 0;
    if (d->qid == 0) {
        /* adminvm.py: the memory dom0 has (here the host's) and the CPU
         * time it burned since it started */
        QubesDomainStat host = {0};
        host_stat(&host);
        return state_line(d, call->app->host_memory, max, host.cpu_time_ns);
    }
    if (qubes_domain_is_halted(d) || !call->app->runtime ||
        strcmp(d->klass->name, "RemoteVM") == 0)
        return state_line(d, 0, max, 0); /* no memory */
    qubes_runtime_info(call->app->runtime, d, state_done, call);
    return CALL_ASYNC;
}

/* ---- admin.vm.Stats ----
 *
 * As the reference's: connection-established, then every stats_interval
 * seconds one vm-stats event per running qube (only the destination's
 * when it is not dom0) with memory_kb, cpu_time (ms), cpu_usage_raw (%
 * of one CPU since the last round, 0 in the first) and cpu_usage (that,
 * per vCPU), until the client leaves. dom0 on a host that is not Xen is
 * the host itself, read from /proc. */

typedef struct {
    gint refs;
    Call *call; /* NULL once the call is gone */
    guint timer;
    GHashTable *prev; /* qube name -> guint64* cpu_time_ns */
    gint64 prev_time; /* µs, monotonic; 0 before the first round */
} Stats;

static void stats_unref(Stats *st)
{
    if (!g_atomic_int_dec_and_test(&st->refs))
        return;
    g_hash_table_unref(st->prev);
    g_free(st);
}

/* The call is freed: no further round. */
static void stats_call_gone(Stats *st)
{
    st->call = NULL;
    if (st->timer)
        g_source_remove(st->timer);
    st->timer = 0;
    stats_unref(st);
}

static void stats_round(Stats *st, GPtrArray *stats);

static gboolean stats_tick(gpointer data);

static void stats_schedule(Stats *st)
{
    g_autofree char *v = NULL;
    qubes_props_get(&st->call->app->props, "stats_interval", &v, NULL, NULL);
    guint64 secs = v ? g_ascii_strtoull(v, NULL, 10) : 3;
    st->timer = g_timeout_add_seconds(secs ? (guint)MIN(secs, 86400) : 1,
                                      stats_tick, st);
}

static void stats_collected(GObject *src, GAsyncResult *res, gpointer data)
{
    Stats *st = data;
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) stats = NULL;
    if (st->call && st->call->app->runtime) {
        stats = qubes_runtime_stats_finish(st->call->app->runtime, res, &err);
        if (!stats)
            g_debug("admin.vm.Stats: %s", err->message);
    }
    if (st->call) {
        stats_round(st, stats);
        if (st->call)
            stats_schedule(st);
    }
    stats_unref(st);
}

static gboolean stats_tick(gpointer data)
{
    Stats *st = data;
    st->timer = 0;
    QubesRuntime *rt = st->call->app->runtime;
    g_atomic_int_inc(&st->refs);
    if (rt) {
        qubes_runtime_stats(rt, stats_collected, st);
        return G_SOURCE_REMOVE;
    }
    stats_round(st, NULL);
    if (st->call)
        stats_schedule(st);
    stats_unref(st);
    return G_SOURCE_REMOVE;
}

static gboolean stats_send(Stats *st, GHashTable *now, gint64 t,
                           QubesDomainStat *s)
{
    Call *call = st->call;
    QubesDomain *only = call->dest->qid ? call->dest : NULL;
    if (only && s->dom != only)
        return TRUE;
    guint64 raw = 0;
    guint64 *before = g_hash_table_lookup(st->prev, s->dom->name);
    if (before && st->prev_time && t > st->prev_time &&
        s->cpu_time_ns > *before)
        /* % of one CPU: ns / 1e9 * 100 / seconds */
        raw = (guint64)((double)(s->cpu_time_ns - *before) / 1e7 /
                        ((double)(t - st->prev_time) / 1e6));
    guint64 *keep = g_new(guint64, 1);
    *keep = s->cpu_time_ns;
    g_hash_table_replace(now, g_strdup(s->dom->name), keep);
    g_autofree char *mem = g_strdup_printf("%" G_GUINT64_FORMAT, s->memory_kb);
    g_autofree char *cpu =
        g_strdup_printf("%" G_GUINT64_FORMAT, s->cpu_time_ns / 1000000);
    g_autofree char *use =
        g_strdup_printf("%" G_GUINT64_FORMAT, raw / MAX(s->vcpus, 1));
    g_autofree char *use_raw = g_strdup_printf("%" G_GUINT64_FORMAT, raw);
    const char *kw[] = {"memory_kb", mem, "cpu_time",      cpu,
                        "cpu_usage", use, "cpu_usage_raw", use_raw,
                        NULL};
    return call_stream_send(call, s->dom->name, "vm-stats", kw);
}

/* One round: dom0 first (Xen's from libvirt, else the host's), then the
 * qubes in the order libvirt lists them. */
static void stats_round(Stats *st, GPtrArray *stats)
{
    Call *call = st->call;
    QubesDomain *only = call->dest->qid ? call->dest : NULL;
    if (only && qubes_domain_is_halted(only)) {
        /* the reference's get_vm_stats() raises for a qube not running;
         * the stream ends with it */
        call_fail(call, g_error_new(QUBES_ERROR, QUBES_ERROR_VM_NOT_RUNNING,
                                    "Domain not running (either powered off "
                                    "or paused): '%s'",
                                    only->name));
        return;
    }
    gint64 t = g_get_monotonic_time();
    g_autoptr(GHashTable) now =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    QubesDomainStat host = {0};
    gboolean have_dom0 = FALSE;
    for (guint i = 0; stats && i < stats->len; i++)
        have_dom0 |= ((QubesDomainStat *)stats->pdata[i])->dom->qid == 0;
    if (!have_dom0 && host_stat(&host)) {
        host.dom = g_hash_table_lookup(call->app->by_name, "dom0");
        if (host.dom && !stats_send(st, now, t, &host))
            return;
    }
    for (guint i = 0; stats && i < stats->len; i++)
        if (!stats_send(st, now, t, stats->pdata[i]))
            return;
    g_hash_table_unref(st->prev);
    st->prev = g_steal_pointer(&now);
    st->prev_time = t;
}

static char *vm_stats(Call *call, GError **error)
{
    Stats *st = g_new0(Stats, 1);
    st->refs = 1;
    st->call = call;
    st->prev = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    call->data = st;
    call->data_free = (GDestroyNotify)stats_call_gone;
    call_stream_begin(call);
    stats_tick(st);
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
    {"admin.vm.Stats", NP | NA, vm_stats},
    {NULL},
};
