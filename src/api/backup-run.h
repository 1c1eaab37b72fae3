/* backup-run.h: one backup written, start to end, on a worker thread
 * (admin.backup.Execute, admin-backup.c).
 *
 * The file: the destination path itself, or "qubes-YYYY-MM-DDTHHMMSS" in
 * it when it is a folder (the reference's name), whose parent folder must
 * exist. It is written as an unnamed file in that folder (qfile.h's
 * QFileNew: O_TMPFILE, or "NAME~XXXXXX" where the filesystem has none,
 * removed on failure), synced, given a temporary name, renamed over the final
 * name, and the folder synced. A failed or cancelled backup, or a crash,
 * never leaves a file under the final name, and leaves nothing at all but
 * on a filesystem without O_TMPFILE after a crash.
 *
 * What is read: qubes.xml as the plan made it, then each qube's files in
 * the plan's order: a volume from a reflink of its committed image
 * (qubes_volume_export_snapshot), taken when its turn comes; a qube's own
 * file through qfile_openat_file (no link followed, regular files only);
 * dom0's home folder walked without following links (folders, regular
 * files with their holes, symbolic links; sockets, pipes and devices left
 * out). Progress counts the bytes read against the plan's measured total,
 * capped at 100 % and never going back.
 */
#pragma once

#include "backup-plan.h"
#include "scrypt-file.h"

G_BEGIN_DECLS

typedef struct {
    /* set before the run */
    QubesBackupPlan *plan; /* measured; owned */
    char *qubes_xml;       /* the plan's qubes.xml */
    gsize qubes_xml_len;
    char *destination; /* a folder, or a file's path */
    char *passphrase;
    gboolean compressed;
    char *compression_filter; /* "gzip", or a program's name */
    QubesScryptParams params;
    char *backup_id;
    /* shared while it runs */
    gint cancel;   /* set to stop */
    guint64 done;  /* bytes read so far (atomic) */
    char *written; /* after success: the file's path */
} QubesBackupRun;

QubesBackupRun *qubes_backup_run_new(void);
void qubes_backup_run_free(QubesBackupRun *run);

/* Writes the backup. Blocking. */
gboolean qubes_backup_run(QubesBackupRun *run, GError **error);
/* 0 to 100; safe from any thread. */
double qubes_backup_run_progress(QubesBackupRun *run);

G_END_DECLS
