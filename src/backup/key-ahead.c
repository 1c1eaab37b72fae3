/* key-ahead.c: scrypt derivations on a pool of threads (see key-ahead.h). */
#include "key-ahead.h"

#include "kdf-memory.h"
#include "qubes-error.h"

#include <string.h>

struct _QubesKeyAhead {
    GThreadPool *pool;
    QubesScryptParams params;
};

/* Shared by the pool's thread and the owner: two references until the
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

static void derive(gpointer data, gpointer unused)
{
    QubesKeyJob *j = data;
    g_mutex_lock(&j->lock);
    gboolean skip = j->dropped;
    g_mutex_unlock(&j->lock);
    GError *err = NULL;
    gboolean ok =
        !skip && qubes_scrypt_derive(j->passphrase, strlen(j->passphrase),
                                     j->salt, &j->params, j->key, &err);
    g_mutex_lock(&j->lock);
    j->ok = ok;
    j->error = err;
    j->done = TRUE;
    g_cond_signal(&j->cond);
    g_mutex_unlock(&j->lock);
    job_unref(j);
}

QubesKeyAhead *qubes_key_ahead_new(const QubesScryptParams *params,
                                   guint threads)
{
    /* derivations one after another reuse their memory (kdf-memory.h) */
    qubes_scrypt_init();
    qubes_kdf_memory_hold();
    QubesKeyAhead *ka = g_new0(QubesKeyAhead, 1);
    ka->params = *params;
    if (!threads)
        threads = MAX(1, g_get_num_processors());
    ka->pool = g_thread_pool_new(derive, NULL, (gint)threads, FALSE, NULL);
    return ka;
}

void qubes_key_ahead_free(QubesKeyAhead *ka, gboolean wait)
{
    if (!ka)
        return;
    /* queued jobs were dropped by their owners before this and are
     * skipped; a running derivation ends on its own (waited for, or
     * not: it holds its own reference) */
    g_thread_pool_free(ka->pool, FALSE, wait);
    qubes_kdf_memory_unhold();
    g_free(ka);
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

QubesKeyJob *qubes_key_ahead_start_for(QubesKeyAhead *ka,
                                       const char *passphrase,
                                       const QubesScryptParams *params,
                                       const guint8 salt[QUBES_SCRYPT_SALT])
{
    QubesKeyJob *j = job_new(passphrase);
    j->params = *params;
    memcpy(j->salt, salt, QUBES_SCRYPT_SALT);
    g_thread_pool_push(ka->pool, j, NULL);
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
    g_thread_pool_push(ka->pool, j, NULL);
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
