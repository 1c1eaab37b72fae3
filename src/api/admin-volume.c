/* admin-volume.c: admin.vm.volume.* (a qube's volumes: info,
 * revisions, revert, resize, settings, clear and clone), and the internal
 * socket's internal.vm.volume.ImportBegin and ImportEnd that the import
 * service programs drive. */
#include "api-util.h"

#include "qubes-error.h"

#include <string.h>

static QubesVolume *volume_arg(Call *call, GError **error)
{
    QubesVolume *v = qubes_domain_get_volume(call->dest, call->arg);
    if (!v) {
        g_autofree char *where =
            g_strdup_printf("%s volumes", call->dest->name);
        api_enforce_arg(FALSE, where, error);
    }
    return v;
}

static char *volume_list(Call *call, GError **error)
{
    g_autoptr(GPtrArray) names = qubes_domain_volume_names(call->dest);
    return api_join_lines(names);
}

typedef struct {
    QubesVolume *vol;
    char *pool;
    guint64 size, usage;
    gboolean outdated;
    gboolean ephemeral;
    GPtrArray *space;
    GPtrArray *revisions;
    char *revision;
    guint64 new_size;
    gboolean flag;
    char *path;
    QubesVolume *src;
    char *dom_name;
} VolJob;

static void vol_job_free(VolJob *j)
{
    qubes_volume_unref(j->vol);
    if (j->src)
        qubes_volume_unref(j->src);
    g_free(j->pool);
    g_free(j->dom_name);
    g_free(j->revision);
    g_free(j->path);
    if (j->space)
        g_ptr_array_unref(j->space);
    if (j->revisions)
        g_ptr_array_unref(j->revisions);
    g_free(j);
}

static VolJob *vol_job(Call *call, QubesVolume *v)
{
    VolJob *j = g_new0(VolJob, 1);
    j->vol = qubes_volume_ref(v);
    j->pool = g_strdup(qubes_domain_volume_pool(call->dest, call->arg));
    j->dom_name = g_strdup(call->dest->name);
    return j;
}

static gboolean volume_info_work(gpointer data, GError **error)
{
    VolJob *j = data;
    QubesVolumeState st;
    qubes_volume_get_state(j->vol, &st); /* space: NULL before it exists */
    j->size = st.size;
    j->usage = st.usage;
    j->outdated = st.outdated;
    j->space = g_steal_pointer(&st.space);
    j->ephemeral = qubes_volume_get_ephemeral(j->vol);
    j->path = qubes_volume_get_path(j->vol);
    return TRUE;
}

static char *volume_info_done(Call *call, gboolean ok, GError **error,
                              gpointer data)
{
    VolJob *j = data;
    QubesVolume *v = j->vol;
    GString *out = g_string_new(NULL);
    g_string_append_printf(out, "pool=%s\n", j->pool ? j->pool : "");
    g_string_append_printf(out, "vid=%s\n", v->vid);
    g_string_append_printf(out, "size=%" G_GUINT64_FORMAT "\n", j->size);
    g_string_append_printf(out, "usage=%" G_GUINT64_FORMAT "\n", j->usage);
    g_string_append_printf(out, "rw=%s\n", v->rw ? "True" : "False");
    g_string_append_printf(out, "source=%s\n", v->source ? v->source : "");
    g_string_append_printf(out, "path=%s\n", j->path ? j->path : "");
    g_string_append_printf(out, "save_on_stop=%s\n",
                           v->save_on_stop ? "True" : "False");
    g_string_append_printf(out, "snap_on_start=%s\n",
                           v->snap_on_start ? "True" : "False");
    g_string_append_printf(out, "revisions_to_keep=%d\n", v->revisions_to_keep);
    g_string_append_printf(out, "ephemeral=%s\n",
                           j->ephemeral ? "True" : "False");
    g_string_append_printf(out, "is_outdated=%s\n",
                           j->outdated ? "True" : "False");
    /* Ours: what the current image shares with others and holds alone. */
    if (j->space && j->space->len) {
        QubesVolumeSpace *cur = j->space->pdata[0];
        g_string_append_printf(out, "shared=%" G_GUINT64_FORMAT "\n",
                               cur->shared);
        g_string_append_printf(out, "exclusive=%" G_GUINT64_FORMAT "\n",
                               cur->exclusive);
    }
    return g_string_free(out, FALSE);
}

static char *volume_info(Call *call, GError **error)
{
    QubesVolume *v = volume_arg(call, error);
    if (!v)
        return NULL;
    call_run_worker(call, volume_info_work, volume_info_done, vol_job(call, v),
                    (GDestroyNotify)vol_job_free);
    return CALL_ASYNC;
}

static gboolean revisions_work(gpointer data, GError **error)
{
    VolJob *j = data;
    j->revisions = qubes_volume_list_revisions(j->vol, error);
    return j->revisions != NULL;
}

static char *list_snapshots_done(Call *call, gboolean ok, GError **error,
                                 gpointer data)
{
    VolJob *j = data;
    if (!ok)
        return NULL;
    GString *out = g_string_new(NULL);
    for (guint i = 0; i < j->revisions->len; i++)
        g_string_append_printf(out, "%s\n",
                               ((QubesRevision *)j->revisions->pdata[i])->id);
    return g_string_free(out, FALSE);
}

static char *volume_list_snapshots(Call *call, GError **error)
{
    QubesVolume *v = volume_arg(call, error);
    if (!v)
        return NULL;
    call_run_worker(call, revisions_work, list_snapshots_done, vol_job(call, v),
                    (GDestroyNotify)vol_job_free);
    return CALL_ASYNC;
}

/* Saves after a storage change of @call's volume, if its domain is
 * still there. */
static char *volume_changed(Call *call, VolJob *j, GError **error)
{
    if (call->dest->removed)
        return g_strdup("");
    return api_saved(call, error);
}

static gboolean revert_work(gpointer data, GError **error)
{
    VolJob *j = data;
    g_autoptr(GPtrArray) revs = qubes_volume_list_revisions(j->vol, error);
    if (!revs)
        return FALSE;
    gboolean found = FALSE;
    for (guint i = 0; i < revs->len; i++)
        found = found ||
                strcmp(((QubesRevision *)revs->pdata[i])->id, j->revision) == 0;
    if (*j->revision && !found) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_REVISION_NOT_FOUND,
                    "No such revision of volume %s of %s: '%s'", j->vol->name,
                    j->dom_name, j->revision);
        return FALSE;
    }
    return qubes_volume_revert(j->vol, *j->revision ? j->revision : NULL,
                               error);
}

static char *changed_done(Call *call, gboolean ok, GError **error,
                          gpointer data)
{
    return ok ? volume_changed(call, data, error) : NULL;
}

static char *volume_revert(Call *call, GError **error)
{
    QubesVolume *v = volume_arg(call, error);
    if (!v)
        return NULL;
    g_autofree char *untrusted = api_payload_text(call, TRUE, error);
    if (!untrusted)
        return NULL;
    g_strstrip(untrusted);
    /* master's safe set for a revision name: never a path */
    for (const char *p = untrusted; *p; p++) {
        if (!api_enforce(g_ascii_isalnum(*p) || strchr(":-_.", *p),
                         "Revision name must be in safe set: "
                         "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                         "0123456789:-_.",
                         error))
            return NULL;
    }
    if (!api_dest_halted(call, error))
        return NULL;
    VolJob *j = vol_job(call, v);
    j->revision = g_steal_pointer(&untrusted);
    call_run_worker(call, revert_work, changed_done, j,
                    (GDestroyNotify)vol_job_free);
    return CALL_ASYNC;
}

static gboolean resize_work(gpointer data, GError **error)
{
    VolJob *j = data;
    return qubes_volume_resize(j->vol, j->new_size, error);
}

static char *volume_resize(Call *call, GError **error)
{
    QubesVolume *v = volume_arg(call, error);
    gint64 size;
    if (!v || !api_payload_number(call, "volume size", FALSE, &size, error))
        return NULL;
    VolJob *j = vol_job(call, v);
    j->new_size = (guint64)size;
    call_run_worker(call, resize_work, changed_done, j,
                    (GDestroyNotify)vol_job_free);
    return CALL_ASYNC;
}

static char *volume_set_revisions(Call *call, GError **error)
{
    QubesVolume *v = volume_arg(call, error);
    gint64 n;
    if (!v || !api_payload_number(call, "revisions to keep", TRUE, &n, error))
        return NULL;
    if (n > G_MAXINT) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                    "revisions_to_keep is too big");
        return NULL;
    }
    if (!qubes_volume_set_revisions_to_keep(v, (int)n, error))
        return NULL;
    return api_saved(call, error);
}

static char *volume_set_rw(Call *call, GError **error)
{
    QubesVolume *v = volume_arg(call, error);
    gboolean rw;
    if (!v || !api_payload_bool(call, &rw, error) ||
        !api_dest_halted(call, error) || !qubes_volume_set_rw(v, rw, error))
        return NULL;
    return api_saved(call, error);
}

static char *volume_set_ephemeral(Call *call, GError **error)
{
    QubesVolume *v = volume_arg(call, error);
    gboolean e;
    if (!v || !api_payload_bool(call, &e, error) ||
        !api_dest_halted(call, error) ||
        !qubes_volume_set_ephemeral(v, e, error))
        return NULL;
    return api_saved(call, error);
}

static gboolean clear_work(gpointer data, GError **error)
{
    VolJob *j = data;
    /* Import nothing: a new sparse image of the same size, all zeros. */
    g_autofree char *path =
        qubes_volume_import_data(j->vol, qubes_volume_get_size(j->vol), error);
    if (!path)
        return FALSE;
    return qubes_volume_import_data_end(j->vol, TRUE, error);
}

static char *volume_clear(Call *call, GError **error)
{
    QubesVolume *v = volume_arg(call, error);
    if (!v)
        return NULL;
    call_run_worker(call, clear_work, changed_done, vol_job(call, v),
                    (GDestroyNotify)vol_job_free);
    return CALL_ASYNC;
}

static char *volume_clone_from(Call *call, GError **error)
{
    QubesVolume *v = volume_arg(call, error);
    if (!v)
        return NULL;
    /* 32 random letters and digits, as qubes.utils.random_string. */
    static const char chars[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    char token[33];
    for (int i = 0; i < 32; i++)
        token[i] = chars[g_random_int_range(0, sizeof chars - 1)];
    token[32] = '\0';
    if (!api_enforce(!g_hash_table_contains(call->state->clone_tokens, token),
                     NULL, error))
        return NULL;
    g_hash_table_insert(call->state->clone_tokens, g_strdup(token),
                        qubes_volume_ref(v));
    return g_strdup(token);
}

static gboolean clone_to_work(gpointer data, GError **error)
{
    VolJob *j = data;
    return qubes_volume_import_volume(j->vol, j->src, NULL, NULL, error);
}

static char *volume_clone_to(Call *call, GError **error)
{
    QubesVolume *v = volume_arg(call, error);
    if (!v)
        return NULL;
    g_autofree char *untrusted = api_payload_text(call, TRUE, error);
    if (!untrusted)
        return NULL;
    g_strstrip(untrusted);
    QubesVolume *src = NULL;
    gpointer key = NULL;
    if (!g_hash_table_steal_extended(call->state->clone_tokens, untrusted, &key,
                                     (gpointer *)&src)) {
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_CLONE_TOKEN,
                            /* a KeyError: its text's repr */
                            "'Token to clone volume of qube was not found'");
        return NULL;
    }
    g_free(key);
    /* The token is used up either way. Its volume must still be one: its
     * pool in the app and the volume registered in it (its qube may have
     * been removed, or its pool, since CloneFrom; the reference holds the
     * volume object and checks the same). The reference kept the pool
     * alive through the volume either way, so no memory goes wrong. */
    gboolean pool_alive = FALSE, alive = FALSE;
    for (guint i = 0; i < call->app->pools->len; i++)
        pool_alive = pool_alive || call->app->pools->pdata[i] == src->pool;
    if (pool_alive) {
        g_autoptr(QubesVolume) reg = qubes_pool_get_volume(src->pool, src->vid);
        alive = reg == src;
    }
    if (!alive) {
        g_set_error(error, QUBES_ERROR,
                    pool_alive ? QUBES_ERROR_VOLUME_NOT_FOUND
                               : QUBES_ERROR_POOL_NOT_FOUND,
                    pool_alive ? "Volume to clone from no longer exists: %s"
                               : "Pool of the volume to clone from no longer "
                                 "exists: %s",
                    pool_alive ? src->vid : qubes_pool_get_name(src->pool));
        qubes_volume_unref(src);
        return NULL;
    }
    VolJob *j = vol_job(call, v);
    j->src = src; /* the token's reference */
    call_run_worker(call, clone_to_work, changed_done, j,
                    (GDestroyNotify)vol_job_free);
    return CALL_ASYNC;
}

#include <string.h>

/* ---- import (internal socket; the service programs drive it) ---- */

static gboolean import_begin_work(gpointer data, GError **error)
{
    VolJob *j = data;
    j->path = qubes_volume_import_data(j->vol, j->new_size, error);
    return j->path != NULL;
}

static char *import_begin_done(Call *call, gboolean ok, GError **error,
                               gpointer data)
{
    VolJob *j = data;
    if (!ok)
        return NULL;
    /* The service program splits the answer at the first space. */
    if (!api_enforce(strchr(j->path, ' ') == NULL, NULL, error))
        return NULL;
    const char *kw[] = {"volume", call->arg, "size", NULL, NULL};
    g_autofree char *size = g_strdup_printf("%" G_GUINT64_FORMAT, j->new_size);
    kw[3] = size;
    g_autoptr(GPtrArray) fx = qubes_emitter_fire(
        &call->dest->emitter, "domain-volume-import-begin", kw, NULL);
    return g_strdup_printf("%" G_GUINT64_FORMAT " %s", j->new_size, j->path);
}

/* internal.vm.volume.ImportBegin: payload the size in bytes, or empty for
 * the volume's size; answers "SIZE PATH" of the image to fill. */
static char *import_begin(Call *call, GError **error)
{
    QubesVolume *v = volume_arg(call, error);
    if (!v || !api_dest_halted(call, error))
        return NULL;
    VolJob *j = vol_job(call, v);
    gsize len;
    if (api_payload(call, &len) && len) {
        gint64 size;
        if (!api_payload_number(call, "size of new data", FALSE, &size,
                                error)) {
            vol_job_free(j);
            return NULL;
        }
        j->new_size = (guint64)size;
    } else {
        j->new_size = v->size;
    }
    call_run_worker(call, import_begin_work, import_begin_done, j,
                    (GDestroyNotify)vol_job_free);
    return CALL_ASYNC;
}

static gboolean import_end_work(gpointer data, GError **error)
{
    VolJob *j = data;
    return qubes_volume_import_data_end(j->vol, j->flag, error);
}

static char *import_end_done(Call *call, gboolean ok, GError **error,
                             gpointer data)
{
    VolJob *j = data;
    const char *kw[] = {"volume", call->arg, "success",
                        ok && j->flag ? "True" : "False", NULL};
    g_autoptr(GPtrArray) fx = qubes_emitter_fire(
        &call->dest->emitter, "domain-volume-import-end", kw, NULL);
    if (!ok)
        return NULL;
    if (!j->flag) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                    "Data import failed: %s", j->revision);
        return NULL;
    }
    return volume_changed(call, j, error);
}

/* internal.vm.volume.ImportEnd: payload "ok", or "fail\nMESSAGE". */
static char *import_end(Call *call, GError **error)
{
    QubesVolume *v = volume_arg(call, error);
    if (!v)
        return NULL;
    gsize len;
    const char *p = api_payload(call, &len);
    VolJob *j = vol_job(call, v);
    j->flag = len == 2 && memcmp(p, "ok", 2) == 0;
    /* The failure message is shown to the user: printable text only. */
    const char *nl = len ? memchr(p, '\n', len) : NULL;
    GString *msg = g_string_new(NULL);
    for (const char *c = nl ? nl + 1 : p + len; c < p + len; c++)
        g_string_append_c(msg, (*c >= 0x20 && *c < 0x7f) ? *c : '?');
    j->revision = g_string_free(msg, FALSE);
    call_run_worker(call, import_end_work, import_end_done, j,
                    (GDestroyNotify)vol_job_free);
    return CALL_ASYNC;
}

#define NP M_NO_PAYLOAD
#define NA M_NO_ARG

const Method api_volume_methods[] = {
    {"admin.vm.volume.List", NP | NA, volume_list},
    {"admin.vm.volume.Info", NP | M_ARG, volume_info},
    {"admin.vm.volume.ListSnapshots", NP | M_ARG, volume_list_snapshots},
    {"admin.vm.volume.Revert", M_ARG | M_PAYLOAD, volume_revert},
    {"admin.vm.volume.Resize", M_ARG | M_PAYLOAD, volume_resize},
    {"admin.vm.volume.Set.revisions_to_keep", M_ARG | M_PAYLOAD,
     volume_set_revisions},
    {"admin.vm.volume.Set.rw", M_ARG | M_PAYLOAD, volume_set_rw},
    {"admin.vm.volume.Set.ephemeral", M_ARG | M_PAYLOAD, volume_set_ephemeral},
    {"admin.vm.volume.Clear", NP | M_ARG, volume_clear},
    {"admin.vm.volume.CloneFrom", NP | M_ARG, volume_clone_from},
    {"admin.vm.volume.CloneTo", M_ARG | M_PAYLOAD, volume_clone_to},
    {NULL},
};

const Method api_import_methods[] = {
    {"internal.vm.volume.ImportBegin", M_INTERNAL | M_ARG, import_begin},
    {"internal.vm.volume.ImportEnd", M_INTERNAL | M_ARG | M_PAYLOAD,
     import_end},
    {NULL},
};
