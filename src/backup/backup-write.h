/* backup-write.h: writing a Qubes backup file (format 4), the layout
 * backup-read.h reads: `backup-header`, `backup-header.hmac`, then for
 * each file of the backup its chunks `FILE.000.enc`, `FILE.001.enc`, ...
 * of at most QUBES_BACKUP_CHUNK bytes of its (compressed) tar stream,
 * each a scrypt file (scrypt-file.h) under "BACKUP_ID!FILE.NNN!PASSPHRASE"
 * with a fresh salt, the header's .hmac under "backup-header!PASSPHRASE".
 *
 * The caller writes each file's tar stream (tar-write.h) into
 * qubes_backup_write_sink(); the writer compresses it (gzip in process
 * with GIO's zlib converter, or none), cuts it into chunks, encrypts each
 * and hands the outer stream to the caller's sink: one tar member per
 * chunk, a chunk held in memory until it is whole (its size goes first).
 * The key derivation's parameters are the caller's; the product passes
 * QUBES_SCRYPT_PARAMS_DEFAULT or more (tests may pass less).
 */
#pragma once

#include "header.h"
#include "scrypt-file.h"
#include "tar-write.h"

G_BEGIN_DECLS

/* The reference's chunk: 100 MiB of the file's stream. */
#define QUBES_BACKUP_CHUNK ((gsize)100 << 20)

typedef struct _QubesBackupWriter QubesBackupWriter;

/* Starts a backup on @out (the outer stream) with header @h (version 4,
 * encrypted, hmac scrypt, a backup id; compressed with gzip or not):
 * writes the header and its .hmac. @chunk: the chunk size (0: the
 * reference's). */
QubesBackupWriter *qubes_backup_writer_new(QubesTarSink out, gpointer data,
                                           const QubesBackupHeader *h,
                                           const char *passphrase,
                                           const QubesScryptParams *params,
                                           gsize chunk, GError **error);
/* The next file of the backup, named @file ("qubes.xml", "vm3/private.img",
 * ...): its stream goes to qubes_backup_write_sink() until _file_end. */
gboolean qubes_backup_writer_file_begin(QubesBackupWriter *w, const char *file,
                                        GError **error);
/* The sink of the current file's tar stream (@data: the writer). */
gboolean qubes_backup_write_sink(const guint8 *buf, gsize len, gpointer data,
                                 GError **error);
gboolean qubes_backup_writer_file_end(QubesBackupWriter *w, GError **error);
/* Ends the outer stream; frees @w. */
gboolean qubes_backup_writer_finish(QubesBackupWriter *w, GError **error);
void qubes_backup_writer_free(QubesBackupWriter *w);

G_END_DECLS
