/* backup-plan.h: what a backup holds, as the reference's qubes/backup.py
 * (Backup.get_files_to_backup, get_backup_summary, backup_do) decides it.
 *
 * The qubes: those an include list names (names, "@tag:T", "@type:CLASS"),
 * or without one every qube whose include_in_backups is true, less those
 * the exclude list names; in name order, dom0 last. Each qube's files go
 * under "vmQID/": every volume saved on stop as NAME.img (its committed
 * data), then firewall.xml and notes.txt where they exist; a qube with
 * none of these gets an empty file "empty", as the reference adds one, so
 * that its folder is in the backup. dom0 contributes its user's home
 * folder, under "dom0-home/USER".
 *
 * Building the plan runs on the main thread and touches only the model;
 * the plan itself holds no domain: names, flags, volume references and
 * paths. Measuring it (stat of files, the volumes' usage) and everything
 * after runs on a worker.
 */
#pragma once

#include "app.h"

G_BEGIN_DECLS

typedef struct {
    char *archive;    /* its name in the backup: "vm3/private.img" */
    QubesVolume *vol; /* a volume's committed data (referenced), or NULL */
    char *dir;        /* else a file or folder: its parent folder, */
    char *file;       /*   and its name there (dir NULL: an empty file) */
    gboolean tree;    /* a folder, whole (dom0's home) */
    gboolean present; /* it exists (measured) */
    guint64 size;     /* bytes it holds on disk (measured) */
} QubesBackupFile;

typedef struct {
    guint qid;
    char *name;
    char *klass;
    const char *kind; /* the summary's type: "VM", "VM + Sys", ... */
    char *subdir;     /* "vm3/", or "dom0-home/USER" */
    gboolean running;
    gboolean snapshots_disabled; /* a volume saved on stop keeps no
                                    revision (revisions_to_keep -1) */
    GPtrArray *files;            /* QubesBackupFile */
    guint64 size;
} QubesBackupQube;

typedef struct {
    GPtrArray *qubes;        /* QubesBackupQube, dom0 last */
    GPtrArray *not_selected; /* char*: the other qubes' names, sorted */
    guint64 total;           /* measured */
} QubesBackupPlan;

/* The plan for @include (NULL: include_in_backups) less @exclude.
 * @dom0_home: dom0's user's home folder, or NULL to look it up as the
 * reference does (the first member of the group "qubes"); only needed
 * when dom0 is in the backup, and a QubesException when it cannot be
 * found. */
QubesBackupPlan *qubes_backup_plan_new(QubesApp *app,
                                       const char *const *include,
                                       const char *const *exclude,
                                       const char *dom0_home, GError **error);
void qubes_backup_plan_free(QubesBackupPlan *plan);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QubesBackupPlan, qubes_backup_plan_free)

/* Finds which files exist and their sizes (a volume's usage, a file's
 * blocks, a folder's blocks summed as `du`). Blocking: a worker's. */
void qubes_backup_plan_measure(QubesBackupPlan *plan);

/* The reference's summary table (admin.backup.Info), byte for byte. */
char *qubes_backup_plan_summary(const QubesBackupPlan *plan);

/* The reference's size_to_human(): "512", "1.5 KiB", "12.0 MiB". */
char *qubes_size_to_human(guint64 size);

/* qubes.xml as the backup holds it (new, of @len bytes): the system as it
 * is saved, every qube's feature backup-content set ("1" for those in
 * the plan, "" for the others), and for those in it backup-path and
 * backup-size, and the preload-dispvm* features other than
 * preload-dispvm-max dropped. Call after measuring. */
char *qubes_backup_plan_qubes_xml(const QubesBackupPlan *plan, QubesApp *app,
                                  gsize *len);

G_END_DECLS
