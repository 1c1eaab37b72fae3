/* key-ahead.c: scrypt derivations on worker threads, two at once or one
 * a worker (see key-ahead.h). */
#include "key-ahead.h"

#include "kdf-memory.h"
#include "qubes-error.h"

#include <string.h>

/* Shared by the workers and the owner, counted: the owner's reference
 * and one a worker thread. Freed by the last. */
struct _QubesKeyAhead {
    gint refs;
    GMutex lock;
    GCond more;       /* a job queued, or closing */
    GQueue queue;     /* under lock: QubesKeyJob, not yet begun */
    gboolean closing; /* under lock */
    GPtrArray *threads;
    gboolean pairs; /* a worker takes two jobs at once */
    QubesScryptParams params;
};

/* Shared by a worker and the owner: two references until the
 * derivation ran (or was skipped) and the owner took or dropped it. */
struct _QubesKeyJob {
    gint refs;
    GMutex lock;
    GCond cond;
    gboolean done;    /* under lock */
    gboolean dropped; /* under lock: nobody will take it */
    gboolean ok;
    GError *error;
    char *passphrase;
    QubesScryptParams params;
    guint8 salt[QUBES_SCRYPT_SALT];
    guint8 key[QUBES_SCRYPT_KEY];
};

static void job_unref(QubesKeyJob *j)
{
    if (!g_atomic_int_dec_and_test(&j->refs))
        return;
    if (j->passphrase) {
        memset(j->passphrase, 0, strlen(j->passphrase));
        g_free(j->passphrase);
    }
    memset(j->key, 0, sizeof j->key);
    g_clear_error(&j->error);
    g_mutex_clear(&j->lock);
    g_cond_clear(&j->cond);
    g_free(j);
}

static gboolean job_dropped(QubesKeyJob *j)
{
    g_mutex_lock(&j->lock);
    gboolean d = j->dropped;
    g_mutex_unlock(&j->lock);
    return d;
}

static void job_done(QubesKeyJob *j, gboolean ok, const GError *error)
{
    g_mutex_lock(&j->lock);
    j->ok = ok;
    if (!ok)
        j->error = g_error_copy(error);
    j->done = TRUE;
    g_cond_signal(&j->cond);
    g_mutex_unlock(&j->lock);
    job_unref(j);
}

static gboolean same_cost(const QubesKeyJob *a, const QubesKeyJob *b)
{
    return a->params.log_n == b->params.log_n && a->params.r == b->params.r &&
           a->params.p == b->params.p;
}

static void ka_unref(QubesKeyAhead *ka)
{
    if (!g_atomic_int_dec_and_test(&ka->refs))
        return;
    /* the jobs still queued were dropped by their owners */
    g_queue_clear_full(&ka->queue, (GDestroyNotify)job_unref);
    g_ptr_array_unref(ka->threads);
    g_mutex_clear(&ka->lock);
    g_cond_clear(&ka->more);
    qubes_kdf_memory_unhold();
    g_free(ka);
}

/* The next job not dropped, or NULL once closing (under lock). */
static QubesKeyJob *next_job(QubesKeyAhead *ka)
{
    for (;;) {
        QubesKeyJob *j = g_queue_pop_head(&ka->queue);
        if (j && !job_dropped(j))
            return j;
        if (j) {
            job_unref(j); /* its worker's reference: it never runs */
            continue;
        }
        if (ka->closing)
            return NULL;
        g_cond_wait(&ka->more, &ka->lock);
    }
}

static gpointer worker(gpointer data)
{
    QubesKeyAhead *ka = data;
    g_mutex_lock(&ka->lock);
    QubesKeyJob *a;
    while ((a = next_job(ka)) != NULL) {
        /* a partner of the same cost, if one waits */
        QubesKeyJob *b = ka->pairs ? g_queue_peek_head(&ka->queue) : NULL;
        if (b && same_cost(a, b))
            g_queue_pop_head(&ka->queue);
        else
            b = NULL;
        g_mutex_unlock(&ka->lock);
        if (b && job_dropped(b)) {
            job_unref(b);
            b = NULL;
        }
        GError *err = NULL;
        gboolean ok;
        if (b) {
            const char *pass[2] = {a->passphrase, b->passphrase};
            const guint8 *salt[2] = {a->salt, b->salt};
            guint8 *key[2] = {a->key, b->key};
            ok = qubes_scrypt_derive2(pass, salt, &a->params, key, &err);
        } else {
            ok = qubes_scrypt_derive(a->passphrase, strlen(a->passphrase),
                                     a->salt, &a->params, a->key, &err);
        }
        job_done(a, ok, err);
        if (b)
            job_done(b, ok, err);
        g_clear_error(&err);
        g_mutex_lock(&ka->lock);
    }
    g_mutex_unlock(&ka->lock);
    ka_unref(ka);
    return NULL;
}

QubesKeyAhead *qubes_key_ahead_new(const QubesScryptParams *params,
                                   QubesKeyAheadMode mode)
{
    /* derivations one after another reuse their memory (kdf-memory.h) */
    qubes_scrypt_init();
    qubes_kdf_memory_hold();
    QubesKeyAhead *ka = g_new0(QubesKeyAhead, 1);
    ka->params = *params;
    g_mutex_init(&ka->lock);
    g_cond_init(&ka->more);
    g_queue_init(&ka->queue);
    /* two derivations at a time, either way */
    guint workers = 1;
    if (mode == QUBES_KEY_AHEAD_SPREAD && g_get_num_processors() >= 2)
        workers = 2;
    ka->pairs = workers == 1;
    ka->threads =
        g_ptr_array_new_with_free_func((GDestroyNotify)g_thread_unref);
    ka->refs = 1 + (gint)workers;
    for (guint i = 0; i < workers; i++)
        g_ptr_array_add(ka->threads, g_thread_new("scrypt", worker, ka));
    return ka;
}

guint qubes_key_ahead_depth(const QubesKeyAhead *ka)
{
    return 4 * ka->threads->len;
}

void qubes_key_ahead_free(QubesKeyAhead *ka, gboolean wait)
{
    if (!ka)
        return;
    /* queued jobs were dropped by their owners before this and are
     * skipped; a running derivation ends on its own (waited for, or
     * not: its worker holds a reference to the pool) */
    g_mutex_lock(&ka->lock);
    ka->closing = TRUE;
    g_cond_broadcast(&ka->more);
    g_mutex_unlock(&ka->lock);
    GPtrArray *threads = g_ptr_array_ref(ka->threads);
    if (wait)
        for (guint i = 0; i < threads->len; i++)
            g_thread_join(g_thread_ref(threads->pdata[i]));
    g_ptr_array_unref(threads);
    ka_unref(ka);
}

static QubesKeyJob *job_new(const char *passphrase)
{
    QubesKeyJob *j = g_new0(QubesKeyJob, 1);
    j->refs = 2;
    g_mutex_init(&j->lock);
    g_cond_init(&j->cond);
    j->passphrase = g_strdup(passphrase);
    return j;
}

static void push(QubesKeyAhead *ka, QubesKeyJob *j)
{
    g_mutex_lock(&ka->lock);
    g_queue_push_tail(&ka->queue, j);
    g_cond_signal(&ka->more);
    g_mutex_unlock(&ka->lock);
}

QubesKeyJob *qubes_key_ahead_start_for(QubesKeyAhead *ka,
                                       const char *passphrase,
                                       const QubesScryptParams *params,
                                       const guint8 salt[QUBES_SCRYPT_SALT])
{
    QubesKeyJob *j = job_new(passphrase);
    j->params = *params;
    memcpy(j->salt, salt, QUBES_SCRYPT_SALT);
    push(ka, j);
    return j;
}

QubesKeyJob *qubes_key_ahead_start(QubesKeyAhead *ka, const char *passphrase,
                                   GError **error)
{
    QubesKeyJob *j = job_new(passphrase);
    j->params = ka->params;
    if (!qubes_scrypt_salt(j->salt, error)) {
        j->refs = 1;
        job_unref(j);
        return NULL;
    }
    push(ka, j);
    return j;
}

gboolean qubes_key_job_take(QubesKeyJob *j, guint8 salt[QUBES_SCRYPT_SALT],
                            guint8 key[QUBES_SCRYPT_KEY], const gint *cancel,
                            GError **error)
{
    gboolean cancelled = FALSE;
    g_mutex_lock(&j->lock);
    while (!j->done) {
        if (cancel && g_atomic_int_get(cancel)) {
            cancelled = TRUE;
            j->dropped = TRUE;
            break;
        }
        g_cond_wait_until(&j->cond, &j->lock,
                          g_get_monotonic_time() + G_TIME_SPAN_SECOND / 10);
    }
    gboolean ok = !cancelled && j->ok;
    if (ok) {
        memcpy(salt, j->salt, QUBES_SCRYPT_SALT);
        memcpy(key, j->key, QUBES_SCRYPT_KEY);
    } else if (cancelled) {
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_BACKUP_CANCELLED,
                            "Backup cancelled");
    } else if (j->error) {
        g_propagate_error(error, g_steal_pointer(&j->error));
    }
    g_mutex_unlock(&j->lock);
    job_unref(j);
    return ok;
}

void qubes_key_job_drop(QubesKeyJob *j)
{
    if (!j)
        return;
    g_mutex_lock(&j->lock);
    j->dropped = TRUE;
    g_mutex_unlock(&j->lock);
    job_unref(j);
}
