/* backup-write.h: writing a Qubes backup file (format 4), the layout
 * backup-read.h reads: `backup-header`, `backup-header.hmac`, then for
 * each file of the backup its chunks `FILE.000.enc`, `FILE.001.enc`, ...
 * of at most QUBES_BACKUP_CHUNK bytes of its (compressed) tar stream,
 * each a scrypt file (scrypt-file.h) under "BACKUP_ID!FILE.NNN!PASSPHRASE"
 * with a fresh salt, the header's .hmac under "backup-header!PASSPHRASE".
 *
 * The caller writes each file's tar stream (tar-write.h) into
 * qubes_backup_write_sink(); the writer compresses it (gzip in process
 * with zlib, gzip-write.h, through a filter program such as xz or
 * zstd as the reference's tar --use-compress-program runs it, or none),
 * cuts it into chunks, encrypts each and hands the outer stream to the
 * caller's sink: one tar member per chunk, a chunk held in memory until it
 * is whole (its size goes first). The chunks' keys are derived ahead on
 * other cores (key-ahead.h): the chunk being filled, the file's next
 * chunks as far as its output is foreseen to go, and the first chunk of
 * each coming file, as many as the pool's depth.
 */
#pragma once

#include "header.h"
#include "scrypt-file.h"
#include "tar-write.h"

G_BEGIN_DECLS

/* The reference's chunk: 100 MiB of the file's stream. */
#define QUBES_BACKUP_CHUNK ((gsize)100 << 20)

typedef struct _QubesBackupWriter QubesBackupWriter;

typedef struct {
    /* the key derivation's cost: QUBES_SCRYPT_PARAMS_DEFAULT or more in
     * the product (tests may pass less) */
    const QubesScryptParams *params;
    gsize chunk; /* 0: the reference's */
    /* the files, in the order they will come (or NULL): their first
     * chunk's key is derived ahead while earlier files are written */
    const char *const *files;
    /* non-zero: stop (QUBES_ERROR_BACKUP_CANCELLED) */
    const gint *cancel;
} QubesBackupWriteOptions;

/* Starts a backup on @out (the outer stream) with header @h (version 4,
 * encrypted, hmac scrypt, a backup id; compressed by gzip in process, by
 * another filter program found in PATH, or not): writes the header and
 * its .hmac. */
QubesBackupWriter *qubes_backup_writer_new(QubesTarSink out, gpointer data,
                                           const QubesBackupHeader *h,
                                           const char *passphrase,
                                           const QubesBackupWriteOptions *opts,
                                           GError **error);
/* Whether @filter may compress a backup: a program's bare name (letters,
 * digits, "._+-"), found in PATH; a QubesException otherwise. */
gboolean qubes_backup_filter_check(const char *filter, GError **error);
/* The next file of the backup, named @file ("qubes.xml", "vm3/private.img",
 * ...): its stream goes to qubes_backup_write_sink() until _file_end.
 * @expected: about how many bytes its stream will have (0: not known):
 * the keys of its later chunks are derived ahead as far as its output is
 * foreseen to go (its output so far, and the rest at the ratio so far),
 * so that incompressible data never waits for a derivation. */
gboolean qubes_backup_writer_file_begin(QubesBackupWriter *w, const char *file,
                                        guint64 expected, GError **error);
/* The sink of the current file's tar stream (@data: the writer). */
gboolean qubes_backup_write_sink(const guint8 *buf, gsize len, gpointer data,
                                 GError **error);
gboolean qubes_backup_writer_file_end(QubesBackupWriter *w, GError **error);
/* Ends the outer stream; frees @w. */
gboolean qubes_backup_writer_finish(QubesBackupWriter *w, GError **error);
void qubes_backup_writer_free(QubesBackupWriter *w);

G_END_DECLS
