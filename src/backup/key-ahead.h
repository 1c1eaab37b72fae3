/* key-ahead.h: the scrypt key derivations of a backup, run ahead on other
 * cores.
 *
 * Each chunk of a backup is encrypted under its own passphrase with a
 * fresh salt, and each key costs a derivation of about a second and 512
 * MiB (log2 N 19, r 8). The writer knows which chunks come next, and the
 * reader sees their headers, so they start those derivations here while
 * they compress or write. The derivations run on worker threads, one per
 * two cores: a worker takes two queued jobs of the same cost at once and
 * derives both together (qubes_scrypt_kdf2: nearly twice the keys a core
 * makes one by one), which leaves the other core to the caller. Callers
 * keep qubes_key_ahead_depth() jobs queued or running, so that a worker
 * finishing a pair finds the next pair waiting.
 *
 * Waiting for a key checks a cancel flag every 100 ms, so that a
 * cancelled backup stops within a second even in the middle of a
 * derivation (which then ends on its own and is thrown away).
 *
 * Memory: two derivations' (2 * 512 MiB) a worker, kept between
 * derivations (kdf-memory.h) and unmapped when the pool is freed.
 */
#pragma once

#include "scrypt-file.h"

G_BEGIN_DECLS

typedef struct _QubesKeyAhead QubesKeyAhead;
typedef struct _QubesKeyJob QubesKeyJob;

/* @workers 0: one per two cores (at least one). */
QubesKeyAhead *qubes_key_ahead_new(const QubesScryptParams *params,
                                   guint workers);
/* How many jobs a caller keeps queued or running: two pairs a worker. */
guint qubes_key_ahead_depth(const QubesKeyAhead *ka);
/* Frees @ka once its jobs were taken or dropped: the dropped ones not
 * begun never run; with @wait, returns once the running derivations
 * ended (at most one derivation's time), else at once (they end on their
 * threads: for a cancel that must answer now). */
void qubes_key_ahead_free(QubesKeyAhead *ka, gboolean wait);

/* Starts deriving the key of @passphrase (copied) under a fresh salt. */
QubesKeyJob *qubes_key_ahead_start(QubesKeyAhead *ka, const char *passphrase,
                                   GError **error);
/* Starts deriving the key of a file being read: under its own @params
 * and @salt (from its header, checked by the caller). */
QubesKeyJob *qubes_key_ahead_start_for(QubesKeyAhead *ka,
                                       const char *passphrase,
                                       const QubesScryptParams *params,
                                       const guint8 salt[QUBES_SCRYPT_SALT]);
/* Waits for @job and frees it: its salt and key, or FALSE with @error
 * (the derivation failed, or *@cancel became non-zero: then
 * QUBES_ERROR_BACKUP_CANCELLED). */
gboolean qubes_key_job_take(QubesKeyJob *job, guint8 salt[QUBES_SCRYPT_SALT],
                            guint8 key[QUBES_SCRYPT_KEY], const gint *cancel,
                            GError **error);
/* Frees @job unused (a derivation not yet begun never runs). */
void qubes_key_job_drop(QubesKeyJob *job);

G_END_DECLS
