/* backup-read.h: reading a Qubes backup file (formats 4 and 3) in one
 * pass.
 *
 * The file is one tar member after another: `backup-header`,
 * `backup-header.hmac` (the header encrypted under
 * "backup-header!PASSPHRASE"), then for each file of the backup
 * (`qubes.xml`, `vmN/private.img`, `vmN/firewall.xml`, `dom0-home/USER`,
 * ...) its chunks `FILE.000.enc`, `FILE.001.enc`, ... in order, each the
 * scrypt file (scrypt-file.h) of up to 100 MiB of one stream under
 * "BACKUP_ID!FILE.NNN!PASSPHRASE": the file's tar stream (tar-read.h),
 * compressed by the header's filter when `compressed=True`.
 *
 * This reads it from a descriptor, verifies the header against its .hmac
 * and parses it (header.h), then decrypts each chunk once, checks its MAC
 * before anything of it goes further (a chunk is held in memory, at most
 * QUBES_BACKUP_MAX_CHUNK bytes), decompresses the file's stream (gzip in
 * process with GIO's zlib converter; bzip2, xz and any other filter the
 * caller allows through "FILTER -d" as the Qubes client runs it) and hands
 * each member of its tar stream to the callbacks with the file's name.
 * Nothing is written to disk and nothing is unpacked whole.
 *
 * Format 3 (Qubes R3) is read too, as the client reads it: its
 * `backup-header.hmac` and each chunk's `FILE.NNN.hmac` are `openssl dgst
 * -ALGORITHM -hmac` texts (openssl-enc.h), checked before anything of the
 * chunk is used; a file's chunks `FILE.000`, `FILE.001`, ... are one
 * `openssl enc` stream when the backup is encrypted, and then the same
 * compressed tar stream as format 4's. Its file names are paths of R3's
 * folders ("appvms/NAME/private.img", "vm5/private.img", ...).
 *
 * Everything is untrusted: member names must have the format's shape,
 * chunks must come in order with none missing, sizes are bounded, and a
 * refusal names the file or chunk and the cause (QubesException). A
 * callback returning FALSE stops the read with its error.
 */
#pragma once

#include "header.h"
#include "tar-read.h"

G_BEGIN_DECLS

/* The largest chunk read: the client's 100 MiB of data and the scrypt
 * frame around it, and some room. */
#define QUBES_BACKUP_MAX_CHUNK ((guint64)101 << 20)

typedef struct {
    /* the header was verified and parsed (may be NULL) */
    gboolean (*header)(const QubesBackupHeader *h, gpointer data,
                       GError **error);
    /* a member of @file's tar stream; its data; its end (as tar-read.h) */
    gboolean (*begin)(const char *file, const QubesTarMember *m, gpointer data,
                      GError **error);
    gboolean (*data)(const char *file, const QubesTarMember *m, guint64 offset,
                     const guint8 *buf, gsize len, gpointer data,
                     GError **error);
    gboolean (*end)(const char *file, const QubesTarMember *m, gpointer data,
                    GError **error);
    /* @file's stream ended whole (every chunk read and checked) */
    gboolean (*file_done)(const char *file, gpointer data, GError **error);
} QubesBackupReadCallbacks;

/* Reads the backup from @fd. @allow_filter: a compression filter beyond
 * gzip, bzip2 and xz that the user allows (NULL: none). */
gboolean qubes_backup_read(int fd, const char *passphrase,
                           const char *allow_filter,
                           const QubesBackupReadCallbacks *callbacks,
                           gpointer data, GError **error);

G_END_DECLS
