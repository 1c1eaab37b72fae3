/* storage-run.c: a qube's volumes on workers (storage-run.h). */
#include "storage-run.h"

typedef struct {
    StorageKind kind;
    GPtrArray *volumes;
} StorageJob;

static void storage_job_free(StorageJob *j)
{
    g_ptr_array_unref(j->volumes);
    g_free(j);
}

typedef struct {
    StorageKind kind;
    QubesVolume *vol;
    GError *error;
} VolStep;

static gpointer vol_step_thread(gpointer data)
{
    VolStep *s = data;
    gboolean ok = s->kind == ST_VERIFY  ? qubes_volume_verify(s->vol, &s->error)
                  : s->kind == ST_START ? qubes_volume_start(s->vol, &s->error)
                                        : qubes_volume_stop(s->vol, &s->error);
    (void)ok;
    return NULL;
}

/* Every volume at once, each on its own thread; the first error wins. A
 * start that fails stops the volumes that did start. */
static void storage_thread(GTask *task, gpointer src, gpointer data,
                           GCancellable *cancel)
{
    StorageJob *j = data;
    guint n = j->volumes->len;
    g_autofree VolStep *steps = g_new0(VolStep, n);
    g_autofree GThread **threads = g_new0(GThread *, n);
    for (guint i = 0; i < n; i++) {
        steps[i].kind = j->kind;
        steps[i].vol = j->volumes->pdata[i];
        threads[i] = g_thread_new("volume", vol_step_thread, &steps[i]);
    }
    GError *first = NULL;
    for (guint i = 0; i < n; i++) {
        g_thread_join(threads[i]);
        if (steps[i].error && !first) {
            first = steps[i].error;
            g_prefix_error(&first, "volume %s: ", steps[i].vol->name);
        } else if (steps[i].error) {
            g_warning("volume %s: %s", steps[i].vol->name,
                      steps[i].error->message);
            g_clear_error(&steps[i].error);
        }
    }
    if (first && j->kind == ST_START) {
        for (guint i = 0; i < n; i++) {
            g_autoptr(GError) e = NULL;
            if (!qubes_volume_stop(steps[i].vol, &e))
                g_warning("volume %s: %s", steps[i].vol->name, e->message);
        }
    }
    if (first)
        g_task_return_error(task, first);
    else
        g_task_return_boolean(task, TRUE);
}

void rt_run_storage(QubesDomain *dom, StorageKind kind, GAsyncReadyCallback cb,
                    gpointer data)
{
    StorageJob *j = g_new0(StorageJob, 1);
    j->kind = kind;
    j->volumes = qubes_domain_volume_refs(dom);
    rt_run_in_worker(storage_thread, j, (GDestroyNotify)storage_job_free, cb,
                     data);
}
