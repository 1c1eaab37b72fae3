/* key-ahead.h: the scrypt key derivations of a backup, run ahead on other
 * cores.
 *
 * Each chunk of a backup is encrypted under its own passphrase with a
 * fresh salt, and each key costs a derivation of about a second and 512
 * MiB (log2 N 19, r 8). The writer knows which chunks come next, and the
 * reader sees their headers, so they start those derivations here while
 * they compress or write. The derivations run on worker threads, at most
 * two at a time (1 GiB at the backup's cost), in one of two ways:
 * - QUBES_KEY_AHEAD_BESIDE: one worker, taking two queued jobs of the
 *   same cost at once and deriving both together (qubes_scrypt_kdf2:
 *   nearly twice the keys a core makes one by one). It leaves every
 *   other core to the caller: the backup, whose compression wants one.
 * - QUBES_KEY_AHEAD_SPREAD: two workers (one on a single core), each
 *   deriving one key at a time, on two cores: the restore, whose reader
 *   mostly waits for keys (a chunk takes a quarter of a key's time to
 *   decrypt, inflate and write), so the keys come about 1.3 times as
 *   fast as from one worker deriving pairs.
 * Callers keep qubes_key_ahead_depth() jobs queued or running, so that a
 * worker finishing finds the next job waiting.
 *
 * Waiting for a key checks a cancel flag every 100 ms, so that a
 * cancelled backup stops within a second even in the middle of a
 * derivation (which then ends on its own and is thrown away).
 *
 * Memory: the derivations' (2 * 512 MiB at the backup's cost), kept
 * between derivations (kdf-memory.h) and unmapped when the pool is freed.
 */
#pragma once

#include "scrypt-file.h"

G_BEGIN_DECLS

typedef struct _QubesKeyAhead QubesKeyAhead;
typedef struct _QubesKeyJob QubesKeyJob;

typedef enum {
    QUBES_KEY_AHEAD_BESIDE, /* one worker, two derivations at once */
    QUBES_KEY_AHEAD_SPREAD, /* two workers, one derivation each */
} QubesKeyAheadMode;

QubesKeyAhead *qubes_key_ahead_new(const QubesScryptParams *params,
                                   QubesKeyAheadMode mode);
/* How many jobs a caller keeps queued or running: four a worker (the
 * keys of chunks further on are cheap to hold, and keep the workers going
 * while the caller is busy elsewhere). */
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
