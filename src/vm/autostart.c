/* autostart.c: the qubes whose autostart is True, once per boot
 * (autostart.h). */
#include "autostart.h"

#include "status.h"
#include "vm-start.h"

#include <json-glib/json-glib.h>
#include <string.h>

/* Once per boot (the first qubesd after it: a marker in /run, which a
 * boot empties), when the runtime first knows which qubes run, the qubes
 * whose autostart is True are started, one after the other in qid order
 * (a netvm is started first by its client's start anyway); a failure is
 * logged and the next goes on. The marker is written when all were
 * tried: a qubesd that dies in the middle leaves it absent, and the next
 * one starts those still halted.
 *
 * On Xen, as the seed asks, not before dom0 reported its memory use to
 * qmemmand (else dom0 holds all it had at boot and the qubes do not get
 * it): qubesd waits, up to a minute, until qmemmand's state shows dom0's
 * use (its status socket). Without qmemmand it does not wait. On
 * QEMU/KVM the host is not balanced: no wait. */

typedef struct {
    QubesRuntime *rt;
    GPtrArray *doms; /* QubesDomain refs, in order */
    guint next;
} Autostart;

static void autostart_next(Autostart *a);

static void autostart_free(Autostart *a)
{
    if (a->rt->doms && a->rt->cfg.autostart_marker) {
        g_autoptr(GError) err = NULL;
        g_autofree char *dir = g_path_get_dirname(a->rt->cfg.autostart_marker);
        g_mkdir_with_parents(dir, 0755);
        /* /run is a tmpfs: nothing to make durable, it goes at boot */
        if (!g_file_set_contents(a->rt->cfg.autostart_marker, "", 0, &err))
            g_warning("autostart: %s", err->message);
    }
    g_ptr_array_unref(a->doms);
    rt_unref(a->rt);
    g_free(a);
}

static void autostart_done(GObject *src, GAsyncResult *res, gpointer data)
{
    Autostart *a = data;
    QubesDomain *dom = a->doms->pdata[a->next - 1];
    g_autoptr(GError) err = NULL;
    if (!g_task_propagate_boolean(G_TASK(res), &err))
        g_warning("%s: autostart failed: %s", dom->name, err->message);
    else
        g_message("%s: autostarted", dom->name);
    autostart_next(a);
}

static void autostart_next(Autostart *a)
{
    QubesRuntime *rt = a->rt;
    while (rt->doms && a->next < a->doms->len) {
        QubesDomain *dom = a->doms->pdata[a->next++];
        if (dom->power != QUBES_POWER_HALTED || dom->removed)
            continue;
        qubes_runtime_start(rt, dom, autostart_done, a);
        return;
    }
    autostart_free(a);
}

/* Whether qmemmand's state (its status socket at @path) shows dom0's
 * use; FALSE with @absent set when qmemmand does not answer. */
static gboolean dom0_reported(const char *path, gboolean *absent)
{
    g_autofree char *text = qm_status_ask(path, "state", 30, NULL);
    *absent = text == NULL;
    if (!text)
        return FALSE;
    g_autoptr(JsonParser) p = json_parser_new();
    if (!json_parser_load_from_data(p, text, -1, NULL) ||
        !JSON_NODE_HOLDS_OBJECT(json_parser_get_root(p)))
        return FALSE;
    JsonObject *state = json_node_get_object(json_parser_get_root(p));
    JsonArray *doms = json_object_has_member(state, "domains")
                          ? json_object_get_array_member(state, "domains")
                          : NULL;
    for (guint i = 0; doms && i < json_array_get_length(doms); i++) {
        JsonNode *node = json_array_get_element(doms, i);
        if (!JSON_NODE_HOLDS_OBJECT(node))
            continue;
        JsonObject *d = json_node_get_object(node);
        JsonNode *used = json_object_get_member(d, "mem_used");
        if (g_strcmp0(json_object_get_string_member_with_default(d, "id", ""),
                      "0") == 0)
            return used && JSON_NODE_HOLDS_VALUE(used);
    }
    return FALSE;
}

/* On a worker: until qmemmand's state shows dom0's use (or a minute
 * went, or qmemmand is not there). */
static void wait_dom0_reported(GTask *task, gpointer src, gpointer data,
                               GCancellable *c)
{
    const char *path = data;
    for (int i = 0; i < 60; i++, g_usleep(G_USEC_PER_SEC)) {
        gboolean absent;
        if (dom0_reported(path, &absent)) {
            g_message("autostart: dom0 reported its memory use to qmemmand");
            break;
        }
        if (absent) {
            g_message("autostart: qmemmand does not answer at %s: not "
                      "waiting for dom0's memory report",
                      path);
            break;
        }
        if (i == 59)
            g_warning("autostart: dom0 did not report its memory use to "
                      "qmemmand within a minute; starting anyway");
    }
    g_task_return_boolean(task, TRUE);
}

static void autostart_waited(GObject *src, GAsyncResult *res, gpointer data)
{
    autostart_next(data);
}

static gint by_qid(gconstpointer a, gconstpointer b)
{
    const QubesDomain *x = *(QubesDomain *const *)a;
    const QubesDomain *y = *(QubesDomain *const *)b;
    return (x->qid > y->qid) - (x->qid < y->qid);
}

gboolean rt_autostart_begin(gpointer data)
{
    QubesRuntime *rt = data;
    const char *marker = rt->cfg.autostart_marker;
    if (!rt->doms || !marker || g_file_test(marker, G_FILE_TEST_EXISTS)) {
        rt_unref(rt);
        return G_SOURCE_REMOVE;
    }
    Autostart *a = g_new0(Autostart, 1);
    a->rt = rt; /* the idle's reference, now the job's */
    a->doms =
        g_ptr_array_new_with_free_func((GDestroyNotify)qubes_domain_unref);
    for (guint i = 0; i < rt->app->domains->len; i++) {
        QubesDomain *d = rt->app->domains->pdata[i];
        if (!d || d->qid == 0 || strcmp(d->klass->name, "RemoteVM") == 0)
            continue;
        g_autofree char *v = qubes_domain_prop(d, "autostart");
        if (g_strcmp0(v, "True") == 0)
            g_ptr_array_add(a->doms, qubes_domain_ref(d));
    }
    g_ptr_array_sort(a->doms, by_qid);
    if (a->doms->len && rt->cfg.hv == QUBES_HV_XEN &&
        rt->cfg.qmemman_status_socket) {
        GTask *t = g_task_new(NULL, NULL, autostart_waited, a);
        g_task_set_task_data(t, g_strdup(rt->cfg.qmemman_status_socket),
                             g_free);
        g_task_run_in_thread(t, wait_dom0_reported);
        g_object_unref(t);
    } else {
        autostart_next(a);
    }
    return G_SOURCE_REMOVE;
}
