/* preload-run.c: preloaded disposables, run (master's dispvm.py and
 * mix/dvmtemplate.py).
 *
 * A disposable template with preload-dispvm-max N (or the system's
 * default_dispvm, when dom0 has the feature) keeps N DispVMs started in
 * the background and paused, listed in its preload-dispvm feature and
 * marked internal. admin.vm.CreateDisposable takes the first one listed:
 * it leaves the list, is unpaused, loses internal and is answered at
 * once, instead of a DispVM made and booted on request; then the list is
 * filled again after preload-dispvm-delay seconds (3 unless dom0 or the
 * template says otherwise; a negative delay refills only an empty list).
 *
 * Master pauses a preloaded qube once qubes.WaitForRunningSystem answered
 * through qrexec. There is no qrexec here: a preloaded qube is paused as
 * soon as the hypervisor runs it, and finishes booting after it is
 * handed out (README).
 *
 * The stages are kept as master keeps them, so that a qubesd that stops
 * in the middle finds where it was: a DispVM being preloaded or being
 * handed out has preload-dispvm-in-progress; once paused, it has
 * preload-dispvm-completed. A qubesd that starts removes those whose
 * preloading was interrupted, then fills the lists.
 *
 * Filling is a batch per disposable template, one DispVM at a time: the
 * next is made once the storage of the one before is (on a worker), so
 * the main loop answers calls and signals throughout, however large
 * preload-dispvm-max is (master's check: digits). A batch makes at most
 * what can run: the DispVMs that fit in the memory available (qmemmand's
 * figure, else the host's) less dom0's preload-dispvm-threshold, each
 * with the template's memory, and no more than the qids left.
 *
 * Everything runs on the main context. */
#include "preload-run.h"

#include "qfile.h"
#include "qubes-error.h"
#include "vm-pause.h"
#include "vm-start.h"
#include "vm-stop.h"

#include <errno.h>

#include <string.h>

#define DELAY_DEFAULT 3.0

struct _QubesPreload {
    QubesRuntime *rt;
    QubesApp *app;
    GHashTable *waiters;  /* QubesDomain* (held) -> GPtrArray of Request* */
    GPtrArray *timers;    /* Refill*: scheduled fills */
    GHashTable *starting; /* QubesDomain* -> Gen*: being made, started and
                             paused */
    GHashTable *filling;  /* QubesDomain* appvm (held) -> Fill*: batches */
    char *avail_file;     /* qmemmand's available memory; NULL: unlimited */
    guint handlers[12];
};

typedef struct {
    QubesPreload *p;
    QubesDomain *appvm; /* held */
    guint source;
} Refill;

/* ---- the list ---- */

static gboolean truthy(const char *v)
{
    return v && *v;
}

static void set_feature(QubesDomain *dom, const char *name, const char *value)
{
    g_autoptr(GError) err = NULL;
    if (!qubes_domain_feature_set(dom, name, value, &err))
        g_warning("%s: feature %s not set: %s", dom->name, name, err->message);
}

static void del_feature(QubesDomain *dom, const char *name)
{
    if (qubes_domain_feature_get(dom, name))
        qubes_domain_feature_remove(dom, name, NULL);
}

static gboolean can_preload(QubesDomain *appvm)
{
    g_auto(GStrv) list = qubes_preload_list(appvm);
    return (gint64)g_strv_length(list) < qubes_preload_max(appvm);
}

/* get_feat_preload_delay: preload-dispvm-delay of the qube, else dom0's,
 * else 3 seconds. */
static double delay_of(QubesDomain *appvm)
{
    const char *v = qubes_domain_feature_check(appvm, "preload-dispvm-delay",
                                               FALSE, FALSE, TRUE, NULL);
    if (!v)
        return DELAY_DEFAULT;
    return *v ? g_ascii_strtod(v, NULL) : 0;
}

/* A preloaded DispVM on its way: made, saved, started, paused. */
typedef struct {
    QubesPreload *p;
    QubesDomainFiles *files;
    gboolean discard;      /* no longer wanted: removed once it stands still */
    QubesDomain *fill_for; /* the appvm whose batch goes on once this one's
                              storage is made (held), else NULL */
} Gen;

/* A batch filling one disposable template's list. */
typedef struct {
    gint64 left;    /* still to make */
    gboolean again; /* a fill was asked for meanwhile: look again after */
} Fill;

static QubesDomain *subject(QubesEvent *ev)
{
    return qubes_domain_of_emitter(ev->subject);
}

/* ---- a preloaded DispVM leaving ---- */

static void saved_ignore(gpointer data, GError *error)
{
    if (error)
        g_warning("preload: qubes.xml not saved: %s", error->message);
}

static void killed(GObject *src, GAsyncResult *res, gpointer data)
{
    QubesDomain *dom = data;
    g_autoptr(GError) err = NULL;
    if (!g_task_propagate_boolean(G_TASK(res), &err) && !dom->removed &&
        dom->power == QUBES_POWER_HALTED)
        qubes_runtime_auto_cleanup(dom->app->runtime, dom);
    qubes_domain_unref(dom);
}

/* cleanup(): killed when it runs (its auto_cleanup removes it once it
 * stopped), removed the same way at once when it does not. */
static void cleanup(QubesPreload *p, QubesDomain *dom)
{
    if (dom->removed)
        return;
    Gen *g = g_hash_table_lookup(p->starting, dom);
    if (g) {
        /* not in the middle of its start: once it stands still */
        g->discard = TRUE;
        return;
    }
    if (dom->power == QUBES_POWER_HALTED) {
        qubes_runtime_auto_cleanup(p->rt, dom);
        return;
    }
    qubes_runtime_kill(p->rt, dom, killed, qubes_domain_ref(dom));
}

/* The list becomes @kept; @gone (names) are logged as removed (@what:
 * "excess " or "") because of @reason, and go. */
static void drop_listed(QubesPreload *p, QubesDomain *appvm, GPtrArray *kept,
                        GPtrArray *gone, const char *what, const char *reason)
{
    g_ptr_array_add(gone, NULL);
    g_autofree char *names = g_strjoinv(", ", (char **)gone->pdata);
    g_ptr_array_remove_index(gone, gone->len - 1);
    g_message("%s: removing %sqube(s) from preloaded list because %s: '%s'",
              appvm->name, what, reason, names);
    qubes_preload_list_set(appvm, kept);
    qubes_app_save_then(p->app, saved_ignore, NULL);
    for (guint i = 0; i < gone->len; i++) {
        QubesDomain *d = g_hash_table_lookup(p->app->by_name, gone->pdata[i]);
        if (d)
            cleanup(p, d);
    }
}

/* remove_preload_excess: the list keeps its first @max; the others go. */
static void remove_excess(QubesPreload *p, QubesDomain *appvm, gint64 max,
                          const char *reason)
{
    g_auto(GStrv) old = qubes_preload_list(appvm);
    if ((gint64)g_strv_length(old) <= max)
        return;
    g_autoptr(GPtrArray) kept = g_ptr_array_new();
    g_autoptr(GPtrArray) gone = g_ptr_array_new();
    for (guint i = 0; old[i]; i++)
        g_ptr_array_add((gint64)i < max ? kept : gone, old[i]);
    drop_listed(p, appvm, kept, gone, "excess ", reason);
}

/* ---- requests waiting for a preload to complete ---- */

typedef struct {
    QubesPreload *p;
    GTask *task; /* NULL once answered */
    QubesDomain *dom;
    guint timeout;
} Request;

static void request_free(Request *r)
{
    if (r->timeout)
        g_source_remove(r->timeout);
    if (r->task)
        g_object_unref(r->task);
    qubes_domain_unref(r->dom);
    g_free(r);
}

static void use_preload(QubesPreload *p, QubesDomain *dom, gboolean requested);

static void request_unpaused(GObject *src, GAsyncResult *res, gpointer data)
{
    Request *r = data;
    GError *err = NULL;
    if (!g_task_propagate_boolean(G_TASK(res), &err)) {
        g_task_return_error(r->task, err);
    } else {
        use_preload(r->p, r->dom, TRUE);
        g_task_return_pointer(r->task, qubes_domain_ref(r->dom),
                              (GDestroyNotify)qubes_domain_unref);
    }
    request_free(r);
}

/* The requested qube completed its preload: unpaused, used, answered. */
static void request_go(Request *r)
{
    if (r->timeout) {
        g_source_remove(r->timeout);
        r->timeout = 0;
    }
    if (r->dom->removed || (r->dom->power != QUBES_POWER_RUNNING &&
                            r->dom->power != QUBES_POWER_PAUSED)) {
        g_task_return_pointer(r->task, NULL, NULL);
        request_free(r);
        return;
    }
    if (r->dom->power == QUBES_POWER_PAUSED) {
        qubes_runtime_unpause(r->p->rt, r->dom, request_unpaused, r);
        return;
    }
    use_preload(r->p, r->dom, TRUE);
    g_task_return_pointer(r->task, qubes_domain_ref(r->dom),
                          (GDestroyNotify)qubes_domain_unref);
    request_free(r);
}

static void waiters_done(QubesPreload *p, QubesDomain *dom)
{
    GPtrArray *w = g_hash_table_lookup(p->waiters, dom);
    if (!w)
        return;
    g_hash_table_steal(p->waiters, dom);
    for (guint i = 0; i < w->len; i++)
        request_go(w->pdata[i]);
    g_ptr_array_unref(w);
    qubes_domain_unref(dom);
}

static gboolean request_timed_out(gpointer data)
{
    Request *r = data;
    r->timeout = 0;
    GPtrArray *w = g_hash_table_lookup(r->p->waiters, r->dom);
    if (w)
        g_ptr_array_remove(w, r);
    g_warning("%s: requested preloaded qube but failed to finish preloading "
              "in time, falling back to normal disposable",
              r->dom->name);
    cleanup(r->p, r->dom);
    g_task_return_pointer(r->task, NULL, NULL);
    request_free(r);
    return G_SOURCE_REMOVE;
}

/* ---- filling the list ---- */

static void fill_later(QubesPreload *p, QubesDomain *appvm, double delay);

static void cleanup(QubesPreload *p, QubesDomain *dom);

/* The preload of @g ends: a qube no longer wanted goes now. */
static void gen_free(Gen *g)
{
    QubesDomain *dom = g->files->dom;
    if (g->p) {
        g_hash_table_remove(g->p->starting, dom);
        if (g->discard && !dom->removed)
            cleanup(g->p, dom);
    }
    qubes_domain_files_free(g->files);
    if (g->fill_for)
        qubes_domain_unref(g->fill_for);
    g_free(g);
}

/* qubesd is exiting (its preload state freed): the step is dropped. */
static gboolean gen_orphaned(Gen *g)
{
    if (g->p)
        return FALSE;
    gen_free(g);
    return TRUE;
}

static void preload_paused(GObject *src, GAsyncResult *res, gpointer data)
{
    Gen *g = data;
    if (gen_orphaned(g))
        return;
    QubesDomain *dom = g->files->dom;
    g_autoptr(GError) err = NULL;
    gboolean paused = g_task_propagate_boolean(G_TASK(res), &err);
    if (!dom->removed) {
        if (!paused && !dom->preload_requested)
            g_warning("%s: preloaded qube not paused: %s", dom->name,
                      err->message);
        else
            g_message("%s: preloading completed", dom->name);
        set_feature(dom, "preload-dispvm-completed", "1");
        if (!dom->preload_requested) {
            set_feature(dom, "preload-dispvm-in-progress", "");
            qubes_app_save_then(dom->app, saved_ignore, NULL);
        }
        waiters_done(g->p, dom);
    }
    gen_free(g);
}

static void preload_started(GObject *src, GAsyncResult *res, gpointer data)
{
    Gen *g = data;
    if (gen_orphaned(g))
        return;
    QubesDomain *dom = g->files->dom;
    g_autoptr(GError) err = NULL;
    if (!g_task_propagate_boolean(G_TASK(res), &err)) {
        g_warning("%s: preloaded qube did not start: %s", dom->name,
                  err->message);
        QubesDomain *appvm = qubes_domain_get_template(dom);
        if (appvm)
            qubes_preload_list_remove(appvm, dom->name, "its start failed");
        cleanup(g->p, dom);
        waiters_done(g->p, dom); /* they fall back: it does not run */
        gen_free(g);
        return;
    }
    if (dom->removed || dom->preload_requested) {
        /* requested before it could be paused: it is not */
        set_feature(dom, "preload-dispvm-completed", "1");
        waiters_done(g->p, dom);
        gen_free(g);
        return;
    }
    qubes_runtime_pause(g->p->rt, dom, preload_paused, g);
}

static void preload_saved(gpointer data, GError *error)
{
    Gen *g = data;
    if (gen_orphaned(g))
        return;
    QubesDomain *dom = g->files->dom;
    if (error || dom->removed) {
        if (error)
            g_warning("%s: qubes.xml not saved: %s", dom->name, error->message);
        gen_free(g);
        return;
    }
    qubes_runtime_start(g->p->rt, dom, preload_started, g);
}

static void create_thread(GTask *task, gpointer src, gpointer data,
                          GCancellable *cancel)
{
    Gen *g = data;
    GError *err = NULL;
    if (!qubes_domain_files_create(g->files, &err))
        g_task_return_error(task, err);
    else
        g_task_return_boolean(task, TRUE);
}

static void fill_step(QubesPreload *p, QubesDomain *appvm);
static void fill_end(QubesPreload *p, QubesDomain *appvm);

static void preload_created(GObject *src, GAsyncResult *res, gpointer data)
{
    Gen *g = data;
    if (gen_orphaned(g))
        return;
    QubesDomain *dom = g->files->dom;
    QubesPreload *p = g->p;
    g_autoptr(QubesDomain) fill_for = g_steal_pointer(&g->fill_for);
    g_autoptr(GError) err = NULL;
    if (!g_task_propagate_boolean(G_TASK(res), &err)) {
        /* the batch stops: the next would most likely fail the same way */
        if (fill_for)
            fill_end(p, fill_for);
        g_warning("%s: preloaded qube not made: %s", dom->name, err->message);
        QubesDomain *appvm = qubes_domain_get_template(dom);
        if (appvm)
            qubes_preload_list_remove(appvm, dom->name,
                                      "its storage was not made");
        if (!dom->removed)
            qubes_app_remove_domain(dom->app, dom, NULL);
        qubes_app_save_then(dom->app, saved_ignore, NULL);
        gen_free(g);
        return;
    }
    qubes_domain_firewall_watch(dom, g->files->firewall_next);
    g_autoptr(GPtrArray) fx =
        qubes_emitter_fire(&dom->emitter, "domain-create-on-disk", NULL, NULL);
    qubes_app_save_then(dom->app, preload_saved, g);
    if (fill_for)
        fill_step(p, fill_for);
}

/* gen_disposable(preload=True): a DispVM marked as preloaded (listed,
 * in progress, internal), made on disk, saved, started, paused; the
 * batch of @appvm goes on once its storage is made. FALSE when none
 * could be made. */
static gboolean gen_preload(QubesPreload *p, QubesDomain *appvm)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *label = qubes_domain_prop(appvm, "label");
    QubesDomain *dom =
        qubes_app_add_new_domain(p->app, qubes_domain_class_lookup("DispVM"),
                                 NULL, label, appvm->name, NULL, NULL, &err);
    if (!dom) {
        g_warning("%s: no preloaded disposable: %s", appvm->name, err->message);
        return FALSE;
    }
    if (!qubes_props_set(&dom->props, "auto_cleanup", "True", &err)) {
        g_warning("%s: no preloaded disposable: %s", appvm->name, err->message);
        qubes_app_remove_domain(p->app, dom, NULL);
        return FALSE;
    }
    g_message("%s: marking preloaded qube", dom->name);
    set_feature(dom, "preload-dispvm-in-progress", "1");
    g_auto(GStrv) old = qubes_preload_list(appvm);
    g_autoptr(GPtrArray) now = g_ptr_array_new();
    for (guint i = 0; old[i]; i++)
        g_ptr_array_add(now, old[i]);
    g_ptr_array_add(now, dom->name);
    qubes_preload_list_set(appvm, now);
    set_feature(dom, "internal", "1");
    Gen *g = g_new0(Gen, 1);
    g->p = p;
    g->files = qubes_domain_files_new(dom);
    g->fill_for = qubes_domain_ref(appvm);
    g_hash_table_insert(p->starting, dom, g);
    GTask *task = g_task_new(NULL, NULL, preload_created, g);
    g_task_set_task_data(task, g, NULL);
    g_task_run_in_thread(task, create_thread);
    g_object_unref(task);
    return TRUE;
}

/* The bytes of memory preloaded DispVMs may take: what qmemmand reports
 * available (its avail-mem file), else (no balancer, or no file yet)
 * the host's; -1 when the file cannot be read (none then). */
static gint64 memory_available(QubesPreload *p, QubesDomain *appvm)
{
    gint64 host = (gint64)MIN(p->app->host_memory, (guint64)G_MAXINT64 >> 10)
                  << 10;
    if (!p->avail_file)
        return host;
    g_autoptr(GError) err = NULL;
    /* on the main thread: through the open that refuses a FIFO */
    g_autofree char *dir = g_path_get_dirname(p->avail_file);
    g_autofree char *file = g_path_get_basename(p->avail_file);
    g_autofree char *text = qfile_read_text(dir, file, 64, &err);
    if (!text) {
        if (errno == ENOENT) {
            g_warning("%s: file containing available memory was not found: "
                      "%s",
                      appvm->name, p->avail_file);
            return host;
        }
        g_warning("%s: not preloading: %s", appvm->name, err->message);
        return -1;
    }
    gint64 avail = 0;
    if (!g_ascii_string_to_signed(g_strstrip(text), 10, G_MININT64, G_MAXINT64,
                                  &avail, &err)) {
        g_warning("%s: not preloading: %s: %s", appvm->name, p->avail_file,
                  err->message);
        return -1;
    }
    return avail;
}

/* How many of @want preloaded DispVMs of @appvm can run: as many as fit
 * in memory_available() less dom0's preload-dispvm-threshold, each
 * taking @appvm's memory, and no more than the qids left. */
static gint64 room_for(QubesPreload *p, QubesDomain *appvm, gint64 want)
{
    gint64 qids = QUBES_MAX_QID - (gint64)p->app->domains->len;
    want = MIN(want, MAX(qids, 0));
    gint64 avail = memory_available(p, appvm);
    if (avail < 0)
        return 0;
    gint64 threshold = qubes_preload_threshold(p->app);
    avail = avail > threshold ? avail - threshold : 0;
    g_autofree char *m = qubes_domain_prop(appvm, "memory");
    guint64 mib = m ? g_ascii_strtoull(m, NULL, 10) : 0;
    if (mib == 0)
        return want;
    if (mib > (guint64)(G_MAXINT64 >> 20))
        return 0;
    return MIN(want, avail / (gint64)(mib << 20));
}

/* on_domain_preload_dispvm_used: whatever is over the maximum goes,
 * whatever is missing is made. */
static void fill_now(QubesPreload *p, QubesDomain *appvm)
{
    if (appvm->removed || !qubes_domain_flag(appvm, "template_for_dispvms"))
        return;
    g_autoptr(GError) err = NULL;
    if (!qubes_preload_check_supported(appvm, &err)) {
        g_warning("%s: %s", appvm->name, err->message);
        return;
    }
    gint64 max = qubes_preload_max(appvm);
    if (!can_preload(appvm)) {
        remove_excess(p, appvm, max, "there may be absent qubes");
        return;
    }
    Fill *busy = g_hash_table_lookup(p->filling, appvm);
    if (busy) {
        busy->again = TRUE; /* the batch under way looks again at its end */
        return;
    }
    g_auto(GStrv) list = qubes_preload_list(appvm);
    gint64 want = max - (gint64)g_strv_length(list);
    if (want <= 0) {
        g_message("%s: not preloading due to limit hit", appvm->name);
        return;
    }
    gint64 can = room_for(p, appvm, want);
    if (can < want)
        g_warning("%s: not preloading '%" G_GINT64_FORMAT "' disposable(s) "
                  "due to insufficient memory",
                  appvm->name, want - can);
    /* the gap is filled when a preloaded qube is used or a disposable is
     * made without one */
    if (can == 0)
        return;
    g_message("%s: preloading '%" G_GINT64_FORMAT "' qube(s)", appvm->name,
              can);
    /* one at a time; each is saved once its storage is made
     * (preload_created): qubes.xml never names a qube without its disks */
    Fill *f = g_new0(Fill, 1);
    f->left = can;
    g_hash_table_insert(p->filling, qubes_domain_ref(appvm), f);
    fill_step(p, appvm);
}

/* The next DispVM of @appvm's batch, or its end. */
static void fill_step(QubesPreload *p, QubesDomain *appvm)
{
    Fill *f = g_hash_table_lookup(p->filling, appvm);
    if (!f)
        return;
    if (f->left <= 0 || appvm->removed ||
        !qubes_domain_flag(appvm, "template_for_dispvms") ||
        !can_preload(appvm)) {
        fill_end(p, appvm);
        return;
    }
    f->left--;
    if (!gen_preload(p, appvm))
        fill_end(p, appvm);
}

static void fill_end(QubesPreload *p, QubesDomain *appvm)
{
    Fill *f = g_hash_table_lookup(p->filling, appvm);
    if (!f)
        return;
    gboolean again = f->again && !appvm->removed;
    g_hash_table_remove(p->filling, appvm); /* frees f, drops appvm */
    if (again)
        fill_later(p, appvm, 0);
}

static void refill_free(Refill *f)
{
    if (f->source)
        g_source_remove(f->source);
    qubes_domain_unref(f->appvm);
    g_free(f);
}

static gboolean refill_due(gpointer data)
{
    Refill *f = data;
    f->source = 0;
    QubesPreload *p = f->p;
    QubesDomain *appvm = qubes_domain_ref(f->appvm);
    g_ptr_array_remove(p->timers, f); /* frees f */
    fill_now(p, appvm);
    qubes_domain_unref(appvm);
    return G_SOURCE_REMOVE;
}

static void fill_later(QubesPreload *p, QubesDomain *appvm, double delay)
{
    Refill *f = g_new0(Refill, 1);
    f->p = p;
    f->appvm = qubes_domain_ref(appvm);
    guint ms = delay > 0 ? (guint)MIN(delay * 1000, 86400000.0) : 0;
    f->source = g_timeout_add(ms, refill_due, f);
    g_ptr_array_add(p->timers, f);
}

/* Fires @event (domain-preload-dispvm-start or -used) on @appvm with
 * master's arguments, then fills after @delay seconds. */
static void preload_event(QubesPreload *p, QubesDomain *appvm,
                          const char *event, const char *reason,
                          const char *dispvm, double delay)
{
    g_autofree char *d = delay ? g_strdup_printf("%g", delay) : NULL;
    const char *kw[7];
    int n = 0;
    if (dispvm) {
        kw[n++] = "dispvm";
        kw[n++] = dispvm;
    }
    if (reason) {
        kw[n++] = "reason";
        kw[n++] = reason;
    }
    if (d) {
        kw[n++] = "delay";
        kw[n++] = d;
    }
    kw[n] = NULL;
    g_autoptr(GPtrArray) fx =
        qubes_emitter_fire(&appvm->emitter, event, kw, NULL);
    if (reason)
        g_message("%s: preload event '%s' because %s", appvm->name,
                  event + strlen("domain-preload-dispvm-"), reason);
    fill_later(p, appvm, delay);
}

void qubes_preload_start(QubesPreload *p, QubesDomain *appvm,
                         const char *reason)
{
    preload_event(p, appvm, "domain-preload-dispvm-start", reason, NULL, 0);
}

/* get_preload_templates: the AppVMs made disposable templates whose
 * maximum (their own, or dom0's for the system's default_dispvm) is not
 * 0 (new array of held domains). */
static GPtrArray *preload_templates(QubesApp *app)
{
    GPtrArray *out =
        g_ptr_array_new_with_free_func((GDestroyNotify)qubes_domain_unref);
    for (guint i = 0; i < app->domains->len; i++) {
        QubesDomain *d = app->domains->pdata[i];
        if (strcmp(d->klass->name, "AppVM") == 0 &&
            qubes_domain_flag(d, "template_for_dispvms") &&
            qubes_preload_max(d) > 0)
            g_ptr_array_add(out, qubes_domain_ref(d));
    }
    return out;
}

void qubes_preload_remove_all(QubesPreload *p, const char *reason)
{
    g_autoptr(GPtrArray) all = preload_templates(p->app);
    for (guint i = 0; i < all->len; i++)
        remove_excess(p, all->pdata[i], 0, reason);
}

void qubes_preload_start_all(QubesPreload *p, const char *reason)
{
    g_autoptr(GPtrArray) all = preload_templates(p->app);
    for (guint i = 0; i < all->len; i++)
        qubes_preload_start(p, all->pdata[i], reason);
}

/* fill_preload_gap: after a request, the gap is filled (later, so as not
 * to slow the request down). */
static void fill_gap(QubesPreload *p, QubesDomain *appvm)
{
    if (!can_preload(appvm))
        return;
    double delay = delay_of(appvm);
    g_auto(GStrv) list = qubes_preload_list(appvm);
    if (delay < 0 && list[0])
        return;
    preload_event(p, appvm, "domain-preload-dispvm-start", "there is a gap",
                  NULL, MAX(5, delay));
}

/* is_preload_outdated, as far as volumes go: the private volume's size
 * is no longer the disposable template's, or a volume's source changed
 * since the DispVM was made from it (the template was updated). */
static gboolean outdated(QubesDomain *d, QubesDomain *appvm)
{
    QubesVolume *mine = qubes_domain_get_volume(d, "private");
    QubesVolume *tpl = qubes_domain_get_volume(appvm, "private");
    if (mine && tpl && mine->size != tpl->size)
        return TRUE;
    for (guint k = 0; k < d->volumes->len; k++)
        if (qubes_volume_is_outdated(
                ((QubesDomainVolume *)d->volumes->pdata[k])->vol))
            return TRUE;
    return FALSE;
}

/* refresh_outdated_preload: the listed DispVMs whose volumes are
 * outdated go, and new ones are made after @delay seconds. */
static void refresh_outdated(QubesPreload *p, QubesDomain *appvm, double delay)
{
    g_auto(GStrv) list = qubes_preload_list(appvm);
    g_autoptr(GPtrArray) kept = g_ptr_array_new();
    g_autoptr(GPtrArray) gone = g_ptr_array_new();
    for (guint i = 0; list[i]; i++) {
        QubesDomain *d = g_hash_table_lookup(p->app->by_name, list[i]);
        /* one still being made has nothing to compare yet */
        gboolean old = d && !d->removed &&
                       !g_hash_table_contains(p->starting, d) &&
                       outdated(d, appvm);
        g_ptr_array_add(old ? gone : kept, list[i]);
    }
    if (!gone->len)
        return;
    drop_listed(p, appvm, kept, gone, "",
                "of outdated volume(s) or property(ies)");
    preload_event(p, appvm, "domain-preload-dispvm-start",
                  "of outdated volume(s)", NULL, delay);
}

/* domain-shutdown of a disposable template: its private volume was just
 * committed, so what was preloaded from the old one is refreshed. */
static gboolean on_dvm_shutdown(QubesEvent *ev, gpointer data, GError **error)
{
    QubesPreload *p = data;
    QubesDomain *self = subject(ev);
    if (!self->removed)
        refresh_outdated(p, self, 4);
    return TRUE;
}

/* use_preload: the qube is the user's now. */
static void use_preload(QubesPreload *p, QubesDomain *dom, gboolean requested)
{
    QubesDomain *appvm = qubes_domain_get_template(dom);
    if (!appvm)
        return;
    if (!truthy(qubes_domain_feature_get(appvm, "internal")))
        del_feature(dom, "internal");
    if (requested) {
        g_message("%s: using preloaded qube", dom->name);
        dom->preload_requested = FALSE;
        qubes_props_notify_reset(&dom->props, "is_preload", NULL);
        del_feature(dom, "preload-dispvm-in-progress");
    } else {
        g_warning("%s: using a preloaded qube before requesting it", dom->name);
        qubes_preload_list_remove(appvm, dom->name,
                                  "qube was used without being requested");
        set_feature(dom, "preload-dispvm-in-progress", "");
    }
    qubes_app_save_then(p->app, saved_ignore, NULL);
    double delay = delay_of(appvm);
    g_auto(GStrv) list = qubes_preload_list(appvm);
    if (delay < 0 && list[0])
        return;
    preload_event(p, appvm, "domain-preload-dispvm-used", NULL, dom->name,
                  MAX(delay, 0));
}

/* ---- requests ---- */

void qubes_preload_request(QubesPreload *p, QubesDomain *appvm,
                           GAsyncReadyCallback cb, gpointer data)
{
    GTask *task = g_task_new(NULL, NULL, cb, data);
    fill_gap(p, appvm);
    g_auto(GStrv) list = qubes_preload_list(appvm);
    QubesDomain *dom = NULL;
    for (guint i = 0; list[i] && !dom; i++) {
        QubesDomain *d = g_hash_table_lookup(p->app->by_name, list[i]);
        if (!d || d->removed)
            continue;
        if (outdated(d, appvm)) {
            g_warning("%s: discarding preloaded disposable as it has "
                      "outdated volume(s)",
                      d->name);
            qubes_preload_list_remove(appvm, d->name, "of outdated volume(s)");
            cleanup(p, d);
            continue;
        }
        dom = d;
    }
    if (!dom) {
        g_task_return_pointer(task, NULL, NULL);
        g_object_unref(task);
        return;
    }
    /* mark_preload_requested */
    g_message("%s: requesting preloaded qube", dom->name);
    set_feature(dom, "preload-dispvm-in-progress", "1");
    qubes_preload_list_remove(appvm, dom->name, "qube was requested");
    dom->preload_requested = TRUE;
    qubes_props_notify_reset(&dom->props, "is_preload", NULL);
    Request *r = g_new0(Request, 1);
    r->p = p;
    r->task = task;
    r->dom = qubes_domain_ref(dom);
    if (truthy(qubes_domain_feature_get(dom, "preload-dispvm-completed"))) {
        request_go(r);
        return;
    }
    /* still starting: wait for it, up to 1.2 qrexec_timeout */
    g_autofree char *t = qubes_domain_prop(dom, "qrexec_timeout");
    guint secs = (guint)(g_ascii_strtoull(t ? t : "60", NULL, 10) * 12 / 10);
    r->timeout = g_timeout_add_seconds(MAX(secs, 1), request_timed_out, r);
    GPtrArray *w = g_hash_table_lookup(p->waiters, dom);
    if (!w) {
        w = g_ptr_array_new();
        g_hash_table_insert(p->waiters, qubes_domain_ref(dom), w);
    }
    g_ptr_array_add(w, r);
}

QubesDomain *qubes_preload_request_finish(GAsyncResult *res, GError **error)
{
    return g_task_propagate_pointer(G_TASK(res), error);
}

/* ---- what starts and stops preloading ---- */

/* domain-feature-set:preload-dispvm-max on a disposable template */
static gboolean on_max_set(QubesEvent *ev, gpointer data, GError **error)
{
    QubesPreload *p = data;
    QubesDomain *self = subject(ev);
    const char *v = qubes_event_get(ev, "value");
    if (g_strcmp0(v, qubes_event_get(ev, "oldvalue")) == 0 ||
        !qubes_domain_flag(self, "template_for_dispvms") ||
        qubes_preload_global_set(self))
        return TRUE;
    g_autofree char *reason =
        g_strdup_printf("local feature was set to '%s'", v ? v : "");
    qubes_preload_start(p, self, reason);
    return TRUE;
}

/* domain-feature-delete:preload-dispvm-max on a disposable template */
static gboolean on_max_delete(QubesEvent *ev, gpointer data, GError **error)
{
    QubesPreload *p = data;
    QubesDomain *self = subject(ev);
    if (!qubes_preload_global_set(self))
        remove_excess(p, self, 0, "local feature was deleted");
    return TRUE;
}

/* dom0's preload-dispvm-max: the system's default_dispvm follows it. */
static gboolean on_global_max(QubesEvent *ev, gpointer data, GError **error)
{
    QubesPreload *p = data;
    QubesDomain *d = qubes_preload_global_dvm(p->app);
    if (!d || !qubes_preload_class(d) ||
        !qubes_domain_flag(d, "template_for_dispvms"))
        return TRUE;
    const char *v = qubes_event_get(ev, "value");
    if (v && g_strcmp0(v, qubes_event_get(ev, "oldvalue")) == 0)
        return TRUE;
    g_autofree char *reason =
        v ? g_strdup_printf("global feature was set to '%s'", v)
          : g_strdup("global feature was deleted");
    qubes_preload_start(p, d, reason);
    return TRUE;
}

/* property-set:template of a disposable template: its preloaded
 * DispVMs, whose root came from the old template, go; new ones are made
 * from the new template. (Master removes them just before the change;
 * after it, a change refused by a later check keeps them.) */
static gboolean on_template_set(QubesEvent *ev, gpointer data, GError **error)
{
    QubesPreload *p = data;
    QubesDomain *self = subject(ev);
    if (g_strcmp0(qubes_event_get(ev, "newvalue"),
                  qubes_event_get(ev, "oldvalue")) == 0)
        return TRUE;
    remove_excess(p, self, 0, "template will change");
    if (qubes_domain_flag(self, "template_for_dispvms") && can_preload(self))
        qubes_preload_start(p, self, "template has changed");
    return TRUE;
}

/* property-set:template_for_dispvms True */
static gboolean on_dvm_on(QubesEvent *ev, gpointer data, GError **error)
{
    QubesPreload *p = data;
    QubesDomain *self = subject(ev);
    if (g_strcmp0(qubes_event_get(ev, "newvalue"), "True") == 0 &&
        g_strcmp0(qubes_event_get(ev, "oldvalue"), "True") != 0 &&
        can_preload(self))
        qubes_preload_start(p, self, "template_for_dispvms was set to True");
    return TRUE;
}

/* domain-unpaused of a preloaded DispVM that nobody requested (qvm-unpause
 * by hand): it is used, and leaves the list. */
static gboolean on_unpaused(QubesEvent *ev, gpointer data, GError **error)
{
    QubesPreload *p = data;
    QubesDomain *dom = subject(ev);
    QubesDomain *appvm = qubes_domain_get_template(dom);
    /* a start resumes the qube it made paused: that is no use */
    if (!appvm || dom->preload_requested ||
        g_hash_table_contains(p->starting, dom) ||
        !truthy(qubes_domain_feature_get(dom, "preload-dispvm-completed")))
        return TRUE;
    g_auto(GStrv) list = qubes_preload_list(appvm);
    if (g_strv_contains((const char *const *)list, dom->name))
        use_preload(p, dom, FALSE);
    return TRUE;
}

/* When qubesd starts (the runtime knows which qubes run): the lists
 * forget qubes that are gone, DispVMs whose preloading (or hand-out) was
 * interrupted go, and every disposable template that preloads is
 * filled (master's qubes-preload-dispvm service at boot). */
void qubes_preload_startup(QubesPreload *p)
{
    g_autoptr(GPtrArray) doms =
        g_ptr_array_new_with_free_func((GDestroyNotify)qubes_domain_unref);
    for (guint i = 0; i < p->app->domains->len; i++)
        g_ptr_array_add(doms, qubes_domain_ref(p->app->domains->pdata[i]));
    gboolean changed = FALSE;
    for (guint i = 0; i < doms->len; i++) {
        QubesDomain *appvm = doms->pdata[i];
        if (!qubes_preload_class(appvm) || appvm->removed)
            continue;
        g_auto(GStrv) list = qubes_preload_list(appvm);
        g_autoptr(GPtrArray) kept = g_ptr_array_new();
        for (guint k = 0; list[k]; k++)
            if (g_hash_table_lookup(p->app->by_name, list[k]))
                g_ptr_array_add(kept, list[k]);
        if (kept->len != g_strv_length(list)) {
            g_message("%s: removing absent preloaded qube(s)", appvm->name);
            qubes_preload_list_set(appvm, kept);
            changed = TRUE;
        }
        for (guint k = 0; k < doms->len; k++) {
            QubesDomain *d = doms->pdata[k];
            if (d->removed || strcmp(d->klass->name, "DispVM") != 0 ||
                qubes_domain_get_template(d) != appvm)
                continue;
            gboolean interrupted = truthy(qubes_domain_feature_get(
                                       d, "preload-dispvm-in-progress")) ||
                                   (d->power == QUBES_POWER_HALTED &&
                                    truthy(qubes_domain_feature_get(
                                        d, "preload-dispvm-completed")));
            if (!interrupted)
                continue;
            qubes_preload_list_remove(appvm, d->name,
                                      "their progress was interrupted");
            changed = TRUE;
            cleanup(p, d);
        }
    }
    if (changed)
        qubes_app_save_then(p->app, saved_ignore, NULL);
    for (guint i = 0; i < doms->len; i++) {
        QubesDomain *appvm = doms->pdata[i];
        if (!appvm->removed && qubes_preload_class(appvm) &&
            qubes_domain_flag(appvm, "template_for_dispvms") &&
            qubes_preload_max(appvm) > 0)
            qubes_preload_start(p, appvm, "autostart was requested");
    }
}

QubesPreload *qubes_preload_new(QubesRuntime *rt, QubesApp *app,
                                const char *avail_file)
{
    QubesPreload *p = g_new0(QubesPreload, 1);
    p->avail_file = g_strdup(avail_file);
    p->rt = rt;
    p->app = app;
    p->waiters = g_hash_table_new(NULL, NULL);
    p->starting = g_hash_table_new(NULL, NULL);
    p->filling = g_hash_table_new_full(
        NULL, NULL, (GDestroyNotify)qubes_domain_unref, g_free);
    p->timers = g_ptr_array_new_with_free_func((GDestroyNotify)refill_free);
    QubesEventRegistry *reg = app->registry;
    guint n = 0;
    static const char *const classes[] = {"AppVM", "StandaloneVM"};
    for (guint i = 0; i < G_N_ELEMENTS(classes); i++) {
        p->handlers[n++] = qubes_event_add_class_handler(
            reg, classes[i], "domain-feature-set:preload-dispvm-max",
            on_max_set, 0, p, NULL);
        p->handlers[n++] = qubes_event_add_class_handler(
            reg, classes[i], "domain-feature-delete:preload-dispvm-max",
            on_max_delete, 0, p, NULL);
        p->handlers[n++] = qubes_event_add_class_handler(
            reg, classes[i], "property-set:template_for_dispvms", on_dvm_on, 0,
            p, NULL);
    }
    p->handlers[n++] = qubes_event_add_class_handler(
        reg, "AdminVM", "domain-feature-set:preload-dispvm-max", on_global_max,
        0, p, NULL);
    p->handlers[n++] = qubes_event_add_class_handler(
        reg, "AdminVM", "domain-feature-delete:preload-dispvm-max",
        on_global_max, 0, p, NULL);
    p->handlers[n++] = qubes_event_add_class_handler(
        reg, "AppVM", "property-set:template", on_template_set, 0, p, NULL);
    for (guint i = 0; i < G_N_ELEMENTS(classes); i++)
        p->handlers[n++] = qubes_event_add_class_handler(
            reg, classes[i], "domain-shutdown", on_dvm_shutdown, 0, p, NULL);
    p->handlers[n++] = qubes_event_add_class_handler(
        reg, "DispVM", "domain-unpaused", on_unpaused, 0, p, NULL);
    g_assert(n == G_N_ELEMENTS(p->handlers));
    return p;
}

void qubes_preload_free(QubesPreload *p)
{
    if (!p)
        return;
    for (guint i = 0; i < G_N_ELEMENTS(p->handlers); i++)
        qubes_event_remove_class_handler(p->app->registry, p->handlers[i]);
    g_ptr_array_unref(p->timers);
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, p->waiters);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        GPtrArray *w = v;
        for (guint i = 0; i < w->len; i++) {
            Request *r = w->pdata[i];
            g_task_return_new_error(r->task, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                                    "qubesd is exiting");
            request_free(r);
        }
        g_ptr_array_unref(w);
        qubes_domain_unref(k);
    }
    g_hash_table_unref(p->waiters);
    /* the Gens in flight end with their workers and runtime operations,
     * which hold their qubes; they must not reach a freed table */
    GHashTableIter gi;
    g_hash_table_iter_init(&gi, p->starting);
    while (g_hash_table_iter_next(&gi, NULL, &v))
        ((Gen *)v)->p = NULL;
    g_hash_table_unref(p->starting);
    g_hash_table_unref(p->filling);
    g_free(p->avail_file);
    g_free(p);
}
