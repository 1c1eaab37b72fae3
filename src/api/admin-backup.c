/* admin-backup.c: admin.backup.Execute, Info and Cancel (the reference's
 * qubes/api/admin.py backup_*): a profile (profile.h) read from the
 * backup folder, what it selects (backup-plan.h) measured on a worker,
 * then the backup written on a worker (backup-run.h) while the main
 * thread fires backup-progress about once a second.
 *
 * This system has no qrexec: a profile whose destination_vm is not dom0,
 * or that takes its passphrase from a passphrase_vm, is refused by
 * Execute before anything is written, naming the reason. Info still
 * answers for them, as it needs neither.
 */
#include "api-util.h"

#include "backup-run.h"
#include "backup-write.h"
#include "profile.h"
#include "qfile.h"
#include "qubes-error.h"

#include <string.h>
#include <unistd.h>

/* Profiles are small: anything bigger is not one. */
#define PROFILE_MAX (1 << 20)

static gboolean check_name(Call *call, GError **error)
{
    return api_enforce(strchr(call->arg, '/') == NULL,
                       "Backup profile ID must not contain forward slash "
                       "character",
                       error);
}

/* The profile @name from the backup folder. */
static QubesBackupProfile *load_profile(Call *call, GError **error)
{
    ApiState *s = call->state;
    g_autofree char *file = g_strconcat(call->arg, ".conf", NULL);
    g_autofree char *path = g_build_filename(s->backup_dir, file, NULL);
    if (!g_file_test(path, G_FILE_TEST_EXISTS)) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_BACKUP_PROFILE_NOT_FOUND,
                    "Backup profile does not exist: %s", call->arg);
        return NULL;
    }
    GError *err = NULL;
    g_autofree char *untrusted =
        qfile_read_text(s->backup_dir, file, PROFILE_MAX, &err);
    if (!untrusted) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                    "Cannot read backup profile %s: %s", call->arg,
                    err->message);
        g_error_free(err);
        return NULL;
    }
    return qubes_backup_profile_parse(untrusted, strlen(untrusted), path,
                                      error);
}

/* The checks the reference makes while loading a profile: its
 * destination qube, and (for Execute) its passphrase. */
static gboolean check_profile(Call *call, QubesBackupProfile *p,
                              gboolean want_passphrase, GError **error)
{
    QubesDomain *dest =
        qubes_app_get_domain(call->app, p->destination_vm, NULL);
    if (!dest) {
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                            "Invalid destination_vm specified in backup "
                            "profile");
        return FALSE;
    }
    if (!want_passphrase || p->passphrase_text)
        return TRUE;
    if (p->passphrase_vm) {
        if (!qubes_app_get_domain(call->app, p->passphrase_vm, NULL)) {
            g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                                "Invalid backup profile - invalid "
                                "passphrase_vm");
            return FALSE;
        }
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                    "Cannot get the backup passphrase from '%s': that needs "
                    "qrexec (qubes.BackupPassphrase), which this system does "
                    "not have; give passphrase_text in the profile",
                    p->passphrase_vm);
        return FALSE;
    }
    g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                        "Invalid backup profile - you need to specify "
                        "passphrase_text or passphrase_vm");
    return FALSE;
}

static QubesBackupPlan *make_plan(Call *call, QubesBackupProfile *p,
                                  GError **error)
{
    return qubes_backup_plan_new(call->app, (const char *const *)p->include,
                                 (const char *const *)p->exclude,
                                 call->state->dom0_home, error);
}

/* ---- Info ---- */

static gboolean measure_work(gpointer data, GError **error)
{
    qubes_backup_plan_measure(data);
    return TRUE;
}

static char *info_done(Call *call, gboolean ok, GError **error, gpointer data)
{
    return qubes_backup_plan_summary(data);
}

static char *backup_info(Call *call, GError **error)
{
    if (!check_name(call, error))
        return NULL;
    g_autoptr(QubesBackupProfile) p = load_profile(call, error);
    if (!p || !check_profile(call, p, FALSE, error))
        return NULL;
    QubesBackupPlan *plan = make_plan(call, p, error);
    if (!plan)
        return NULL;
    call_run_worker(call, measure_work, info_done, plan,
                    (GDestroyNotify)qubes_backup_plan_free);
    return CALL_ASYNC;
}

/* ---- Execute ---- */

typedef struct {
    char *profile;
    ApiState *state;
    QubesApp *app;
    QubesBackupRun *run;
    guint timer;
    double last; /* the progress last fired */
} Running;

static void running_free(Running *r)
{
    if (r->timer)
        g_source_remove(r->timer);
    /* the profile's entry goes with the job, whatever ended it */
    g_hash_table_remove(r->state->backups, r->profile);
    qubes_backup_run_free(r->run);
    g_free(r->profile);
    g_free(r);
}

/* Python's str() of a float: the shortest text that reads back the
 * same, with ".0" when it would look like an integer. */
static char *py_float(double v)
{
    char buf[G_ASCII_DTOSTR_BUF_SIZE];
    for (int digits = 1; digits <= 17; digits++) {
        char fmt[8];
        g_snprintf(fmt, sizeof fmt, "%%.%dg", digits);
        g_ascii_formatd(buf, sizeof buf, fmt, v);
        if (g_ascii_strtod(buf, NULL) == v)
            break;
    }
    if (!strpbrk(buf, ".en"))
        g_strlcat(buf, ".0", sizeof buf);
    return g_strdup(buf);
}

static gboolean progress_tick(gpointer data)
{
    Running *r = data;
    double now = qubes_backup_run_progress(r->run);
    if (now > r->last) {
        r->last = now;
        g_autofree char *value = py_float(now);
        const char *kw[] = {"backup_profile", r->profile, "progress", value,
                            NULL};
        g_autoptr(GPtrArray) fx =
            qubes_emitter_fire(&r->app->emitter, "backup-progress", kw, NULL);
    }
    return G_SOURCE_CONTINUE;
}

static gboolean run_work(gpointer data, GError **error)
{
    Running *r = data;
    return qubes_backup_run(r->run, error);
}

static char *run_done(Call *call, gboolean ok, GError **error, gpointer data)
{
    Running *r = data;
    if (!ok)
        return NULL;
    g_message("backup %s written to %s", r->profile, r->run->written);
    /* backup_timestamp of every qube in it, as the reference sets it */
    g_autofree char *now = g_strdup_printf("%" G_GINT64_FORMAT,
                                           g_get_real_time() / G_USEC_PER_SEC);
    const QubesBackupPlan *plan = r->run->plan;
    for (guint i = 0; i < plan->qubes->len; i++) {
        const QubesBackupQube *q = plan->qubes->pdata[i];
        QubesDomain *d =
            q->qid ? qubes_app_get_domain(call->app, q->name, NULL) : NULL;
        if (d && d->qid == q->qid)
            qubes_props_set(&d->props, "backup_timestamp", now, NULL);
    }
    return api_saved(call, error);
}

/* After measuring (on the main thread): the checks that need sizes, the
 * qubes.xml inside, then the writing. @r goes on to the writing's job,
 * or is freed here. */
static char *measured(Call *call, gboolean ok, GError **error, gpointer data)
{
    Running *r = data;
    QubesBackupRun *run = r->run;
    /* the reference's backup_do: a running qube that keeps no revision
     * cannot be read consistently */
    for (guint i = 0; i < run->plan->qubes->len; i++) {
        const QubesBackupQube *q = run->plan->qubes->pdata[i];
        if (q->qid && q->running && q->snapshots_disabled) {
            g_set_error(error, QUBES_ERROR, QUBES_ERROR_VM_NOT_HALTED,
                        "Domain is not powered off: '%s'", q->name);
            running_free(r);
            return NULL;
        }
    }
    if (g_atomic_int_get(&run->cancel)) {
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_BACKUP_CANCELLED,
                            "Backup cancelled");
        running_free(r);
        return NULL;
    }
    run->qubes_xml =
        qubes_backup_plan_qubes_xml(run->plan, call->app, &run->qubes_xml_len);
    r->timer = g_timeout_add_seconds(1, progress_tick, r);
    call_run_worker(call, run_work, run_done, r, (GDestroyNotify)running_free);
    return CALL_ASYNC;
}

static gboolean measure_run_work(gpointer data, GError **error)
{
    Running *r = data;
    qubes_backup_plan_measure(r->run->plan);
    return TRUE;
}

static char *backup_execute(Call *call, GError **error)
{
    ApiState *s = call->state;
    if (!check_name(call, error))
        return NULL;
    g_autoptr(QubesBackupProfile) p = load_profile(call, error);
    if (!p || !check_profile(call, p, TRUE, error))
        return NULL;
    g_autoptr(QubesBackupPlan) plan = make_plan(call, p, error);
    if (!plan)
        return NULL;
    if (g_hash_table_contains(s->backups, call->arg)) {
        g_set_error_literal(error, QUBES_ERROR,
                            QUBES_ERROR_BACKUP_ALREADY_RUNNING,
                            "Backup already running");
        return NULL;
    }
    QubesDomain *dest =
        qubes_app_get_domain(call->app, p->destination_vm, NULL);
    if (dest->qid != 0) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                    "Cannot send the backup to '%s': writing a backup to a "
                    "qube needs qrexec (qubes.Backup), which this system "
                    "does not have; use destination_vm dom0",
                    dest->name);
        return NULL;
    }
    if (p->compressed && p->compression_filter &&
        strcmp(p->compression_filter, "gzip") != 0 &&
        !qubes_backup_filter_check(p->compression_filter, error))
        return NULL;
    QubesBackupRun *run = qubes_backup_run_new();
    run->plan = g_steal_pointer(&plan);
    run->destination = g_strdup(p->destination_path);
    run->passphrase = g_strdup(p->passphrase_text);
    run->compressed = p->compressed;
    run->compression_filter =
        g_strdup(p->compression_filter ? p->compression_filter : "gzip");
    g_autoptr(GDateTime) now = g_date_time_new_now_local();
    g_autofree char *stamp = g_date_time_format(now, "%Y%m%dT%H%M%S");
    run->backup_id = g_strdup_printf("%s-%d", stamp, (int)getpid());
    Running *r = g_new0(Running, 1);
    r->profile = g_strdup(call->arg);
    r->state = s;
    r->app = call->app;
    r->run = run;
    /* taken now: a second Execute of it is refused from here on */
    g_hash_table_replace(s->backups, g_strdup(call->arg), run);
    call_run_worker(call, measure_run_work, measured, r, NULL);
    return CALL_ASYNC;
}

/* ---- Cancel ---- */

static char *backup_cancel(Call *call, GError **error)
{
    if (!check_name(call, error))
        return NULL;
    QubesBackupRun *run = g_hash_table_lookup(call->state->backups, call->arg);
    if (!run) {
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                            "Backup operation not running");
        return NULL;
    }
    g_atomic_int_set(&run->cancel, 1);
    return g_strdup("");
}

const Method api_backup_methods[] = {
    {"admin.backup.Execute", M_NO_PAYLOAD | M_DOM0 | M_ARG, backup_execute},
    {"admin.backup.Info", M_NO_PAYLOAD | M_DOM0 | M_ARG, backup_info},
    {"admin.backup.Cancel", M_NO_PAYLOAD | M_DOM0 | M_ARG, backup_cancel},
    {NULL},
};
