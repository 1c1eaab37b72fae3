/* header.h: the `backup-header` file of a Qubes backup, as the Qubes
 * client's BackupHeader reads and writes it (qubesadmin/backup/restore.py):
 *
 *   version=4
 *   encrypted=True
 *   compressed=True
 *   compression-filter=gzip
 *   hmac-algorithm=scrypt
 *   backup-id=20261205T181356-14823
 *
 * Reading takes the untrusted bytes: ASCII only, each line one KEY=VALUE
 * with both of [A-Za-z0-9-]*, unknown keys ignored, a key twice refused,
 * booleans as the client reads them ("1", "true", "yes", any case, are
 * true), the version 1 to 4, then the keys each version needs; every
 * refusal is a QubesException in the client's words.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct {
    int version;
    gboolean encrypted;
    gboolean compressed;
    char *compression_filter; /* NULL: none given */
    char *hmac_algorithm;
    char *crypto_algorithm; /* versions 2 and 3 */
    char *backup_id;        /* version 4 */
} QubesBackupHeader;

void qubes_backup_header_clear(QubesBackupHeader *h);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(QubesBackupHeader, qubes_backup_header_clear)

/* Parses @untrusted (@len bytes) into @h (initialised {0}). Compression
 * filters other than gzip, bzip2 and xz are refused as the client refuses
 * them ("Unusual compression filter ...") unless @allow_filter names the
 * one found (its --compression-filter). */
gboolean qubes_backup_header_parse(const char *untrusted, gsize len,
                                   const char *allow_filter,
                                   QubesBackupHeader *h, GError **error);

/* The file's text for @h (new), keys in the client's order. */
char *qubes_backup_header_format(const QubesBackupHeader *h);

G_END_DECLS
