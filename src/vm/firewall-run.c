/* firewall-run.c: each qube's firewall in the kernel (firewall-run.h). */
#include "firewall-run.h"

#include "firewall.h"
#include "netfilter.h"

typedef enum { NF_APPLY, NF_REMOVE, NF_RESET, NF_DROP } NfKind;

typedef struct {
    NfKind kind;
    GPtrArray *clients; /* QubesDomain* (referenced): NF_APPLY one, NF_RESET
                           the running ones */
    GPtrArray *dns;     /* GStrv per client */
    guint qid;          /* NF_REMOVE */
    char *what;         /* for the log */
} NfJob;

static void nf_job_free(NfJob *j)
{
    if (j->clients)
        g_ptr_array_unref(j->clients);
    if (j->dns)
        g_ptr_array_unref(j->dns);
    g_free(j->what);
    g_free(j);
}

/* @dom's chain; NULL only when nothing can be written. A soft failure
 * (the rules unreadable, a name unresolved) gives the drop-all chain and
 * is logged. */
static char *nf_client_script(QubesDomain *dom, GStrv dns)
{
    QubesNfClient c = {.qid = dom->qid};
    g_autoptr(GError) err = NULL;
    c.rules = qubes_domain_read_firewall(dom, &err);
    if (!c.rules) {
        g_warning("%s: firewall: %s; nothing is allowed until it is fixed",
                  dom->name, err->message);
        c.rules = g_ptr_array_new();
        g_clear_error(&err);
    } else if (!qubes_nf_resolve(&c, &err)) {
        /* qubes_nf_client_script() then fails closed, naming it */
        g_clear_error(&err);
    }
    c.dns = g_strdupv(dns);
    char *script =
        qubes_nf_client_script(&c, g_get_real_time() / G_USEC_PER_SEC, &err);
    if (err)
        g_warning("%s: firewall: %s; nothing is allowed", dom->name,
                  err->message);
    qubes_nf_client_clear(&c);
    return script;
}

static void nf_thread(gpointer data, gpointer pool_data)
{
    GTask *task = data;
    NfJob *j = g_task_get_task_data(task);
    GError *err = NULL;
    g_autoptr(GString) script = g_string_new(NULL);
    if (j->kind == NF_DROP) {
        qubes_nf_drop_table();
        g_task_return_boolean(task, TRUE);
        g_object_unref(task);
        return;
    }
    if (j->kind == NF_REMOVE) {
        g_autofree char *s = qubes_nf_remove_script(j->qid);
        g_string_append(script, s);
    } else {
        if (j->kind == NF_RESET) {
            g_autofree char *s = qubes_nf_reset_script();
            g_string_append(script, s);
        }
        for (guint i = 0; i < j->clients->len; i++) {
            g_autofree char *s =
                nf_client_script(j->clients->pdata[i], j->dns->pdata[i]);
            g_string_append(script, s);
        }
    }
    if (qubes_nf_run(script->str, &err))
        g_task_return_boolean(task, TRUE);
    else
        g_task_return_error(task, err);
    g_object_unref(task);
}

static void nf_push(QubesRuntime *rt, NfJob *j, GAsyncReadyCallback cb,
                    gpointer data)
{
    GTask *task = g_task_new(NULL, NULL, cb, data);
    g_task_set_task_data(task, j, (GDestroyNotify)nf_job_free);
    g_thread_pool_push(rt->nf_pool, task, NULL);
}

static GStrv dns_of(QubesDomain *dom)
{
    g_autofree char *dns = qubes_domain_prop(dom, "dns");
    return g_strsplit(dns ? dns : "", " ", -1);
}

static NfJob *nf_job(NfKind kind, const char *what)
{
    NfJob *j = g_new0(NfJob, 1);
    j->kind = kind;
    j->clients =
        g_ptr_array_new_with_free_func((GDestroyNotify)qubes_domain_unref);
    j->dns = g_ptr_array_new_with_free_func((GDestroyNotify)g_strfreev);
    j->what = g_strdup(what);
    return j;
}

static void nf_add_client(NfJob *j, QubesDomain *dom)
{
    g_ptr_array_add(j->clients, qubes_domain_ref(dom));
    g_ptr_array_add(j->dns, dns_of(dom));
}

static void nf_logged(GObject *src, GAsyncResult *res, gpointer data)
{
    NfJob *j = g_task_get_task_data(G_TASK(res));
    g_autoptr(GError) err = NULL;
    if (!g_task_propagate_boolean(G_TASK(res), &err))
        g_warning("%s: %s", j->what, err->message);
}

/* Writes @dom's chain; @cb (NULL: the outcome is logged). */
void rt_nf_apply(QubesRuntime *rt, QubesDomain *dom, GAsyncReadyCallback cb,
                 gpointer data)
{
    g_autofree char *what =
        g_strdup_printf("%s: applying its firewall", dom->name);
    NfJob *j = nf_job(NF_APPLY, what);
    nf_add_client(j, dom);
    nf_push(rt, j, cb ? cb : nf_logged, data);
}

void rt_nf_remove(QubesRuntime *rt, QubesDomain *dom)
{
    g_autofree char *what =
        g_strdup_printf("%s: removing its firewall", dom->name);
    NfJob *j = nf_job(NF_REMOVE, what);
    j->qid = dom->qid;
    nf_push(rt, j, nf_logged, NULL);
}

/* Whether @dom has a link whose port its chain guards (or is starting:
 * its chain may have been written before the change). */
gboolean rt_nf_guarded(QubesRuntime *rt, QubesDomain *dom)
{
    DomRt *r = g_hash_table_lookup(rt->doms, dom);
    return rt_uses_links(rt) && dom->qid != 0 &&
           (rt_is_up(dom) || (r && r->starting)) &&
           qubes_domain_get_netvm(dom) != NULL;
}

/* The table anew with the running clients' chains (qubesd's start). On a
 * host where no qube runs and no table is left there is nothing to do,
 * and nothing is made. */
void rt_nf_reset(QubesRuntime *rt, GHashTable *alive)
{
    NfJob *j = nf_job(NF_RESET, "firewall: making its table anew");
    GHashTableIter it;
    gpointer k;
    g_hash_table_iter_init(&it, alive);
    while (g_hash_table_iter_next(&it, &k, NULL))
        if (rt_nf_guarded(rt, k))
            nf_add_client(j, k);
    if (!j->clients->len) /* only what a previous qubesd left, if any */
        j->kind = NF_DROP;
    nf_push(rt, j, nf_logged, NULL);
}

static gboolean on_firewall_changed(QubesEvent *ev, gpointer data,
                                    GError **error)
{
    QubesRuntime *rt = data;
    QubesDomain *dom = qubes_domain_of_emitter(ev->subject);
    if (rt_nf_guarded(rt, dom))
        rt_nf_apply(rt, dom, NULL, NULL);
    return TRUE;
}

void rt_firewall_start(QubesRuntime *rt)
{
    rt->nf_pool = g_thread_pool_new(nf_thread, NULL, 1, FALSE, NULL);
    rt->handlers[4] = qubes_event_add_class_handler(
        rt->app->registry, "QubesVM", "firewall-changed", on_firewall_changed,
        0, rt, NULL);
}

void rt_firewall_finish(QubesRuntime *rt)
{
    /* the firewall jobs asked for are done (a chain half-way is not) */
    g_thread_pool_free(rt->nf_pool, FALSE, TRUE);
    rt->nf_pool = NULL;
}
