/* admin-notes.c: admin.vm.notes.Get and Set: a qube's free-text notes
 * (notes.txt in its folder; notes.c). The file work runs on a worker. */
#include "api-util.h"

#include "qubes-error.h"

#include <string.h>

typedef struct {
    QubesDomain *dom;
    char *text;
} NotesJob;

static void notes_job_free(NotesJob *j)
{
    qubes_domain_unref(j->dom);
    g_free(j->text);
    g_free(j);
}

static NotesJob *notes_job(Call *call, char *text)
{
    NotesJob *j = g_new0(NotesJob, 1);
    j->dom = qubes_domain_ref(call->dest);
    j->text = text;
    return j;
}

static gboolean get_work(gpointer data, GError **error)
{
    NotesJob *j = data;
    j->text = qubes_domain_read_notes(j->dom, error);
    return j->text != NULL;
}

static char *get_done(Call *call, gboolean ok, GError **error, gpointer data)
{
    NotesJob *j = data;
    return ok ? g_strdup(j->text) : NULL;
}

static char *notes_get(Call *call, GError **error)
{
    call_run_worker(call, get_work, get_done, notes_job(call, NULL),
                    (GDestroyNotify)notes_job_free);
    return CALL_ASYNC;
}

static gboolean set_work(gpointer data, GError **error)
{
    NotesJob *j = data;
    return qubes_domain_write_notes(j->dom, j->text, error);
}

static char *set_done(Call *call, gboolean ok, GError **error, gpointer data)
{
    return ok ? g_strdup("") : NULL;
}

static char *notes_set(Call *call, GError **error)
{
    gsize len = g_bytes_get_size(call->untrusted_payload);
    if (len > QUBES_NOTES_MAX) {
        g_autofree char *why =
            g_strdup_printf("Maximum note size is %d bytes (%" G_GSIZE_FORMAT
                            " bytes received)",
                            QUBES_NOTES_MAX, len);
        api_enforce(FALSE, why, error);
        return NULL;
    }
    /* Text as the client sends it: printable ASCII, lines, tabs. */
    char *text = api_payload_text(call, TRUE, error);
    if (!text)
        return NULL;
    call_run_worker(call, set_work, set_done, notes_job(call, text),
                    (GDestroyNotify)notes_job_free);
    return CALL_ASYNC;
}

const Method api_notes_methods[] = {
    {"admin.vm.notes.Get", M_NO_PAYLOAD | M_NO_ARG | M_NOT_DOM0, notes_get},
    {"admin.vm.notes.Set", M_NO_ARG | M_NOT_DOM0, notes_set},
    {NULL},
};
