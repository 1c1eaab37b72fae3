/* profile.h: a backup profile, /etc/qubes/backup/NAME.conf, as the
 * reference's admin.backup.* methods read it (qubes/api/admin.py,
 * _load_backup_profile), parsed with libyaml:
 *
 *   include:             # a list of names, @tag:T and @type:CLASS;
 *     - work             #   null: every qube whose include_in_backups
 *   exclude: [vault]     # the same; optional
 *   destination_vm: dom0
 *   destination_path: /backups
 *   passphrase_text: secret     # or passphrase_vm: NAME
 *   compression: true           # a YAML boolean, or a filter program
 *
 * The file is read as YAML 1.1 (PyYAML's safe_load): `true`, `yes`, `on`
 * and their capitalisations are booleans, `~` and `null` are null. A
 * missing key is refused in the reference's words ("Invalid backup
 * profile - missing 'include'"); the old "$tag:" spelling of names becomes
 * "@tag:". Nothing here looks at the qubes the names mean (backup-plan.h
 * does). Errors are QubesException (QUBES_ERROR_EXCEPTION).
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct {
    GStrv include; /* NULL: the qubes whose include_in_backups is true */
    GStrv exclude; /* never NULL */
    char *destination_vm;
    char *destination_path;
    char *passphrase_text; /* NULL when not given */
    char *passphrase_vm;   /* NULL when not given */
    gboolean compressed;
    char *compression_filter; /* NULL: the default (gzip) */
} QubesBackupProfile;

void qubes_backup_profile_free(QubesBackupProfile *p);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QubesBackupProfile, qubes_backup_profile_free)

/* Parses @untrusted (@len bytes; @name names the file in messages). */
QubesBackupProfile *qubes_backup_profile_parse(const char *untrusted, gsize len,
                                               const char *name,
                                               GError **error);

/* The profile's text (new), as the Qubes client's qvm-backup writes it
 * (yaml.safe_dump: keys sorted, lists in block style, strings quoted
 * where YAML would read them otherwise). */
char *qubes_backup_profile_format(const QubesBackupProfile *p);

G_END_DECLS
