/* qube-folder.h: a file in a qube's folder (base/PREFIX/NAME), read and
 * written durably; what qube-files.c (notes) and firewall-file.c
 * (firewall.xml) store there.
 *
 * Durability: a new text is written to a temporary in the qube's
 * folder, fsynced, renamed over the file, and the folder fsynced: after
 * a crash at any point the file holds the old text or the new one,
 * never a mix or nothing. The folder is reached from the base folder one
 * component at a time with O_NOFOLLOW, so a link planted in place of it
 * (or of the file, which is only ever replaced) leads nowhere else.
 *
 * Lifetime: only the creation makes the qube's folder (storage); a
 * writer never does. A writer holds the domain's files_lock for its
 * whole write and fails once the removal (which takes the same lock)
 * has set files_gone: a write racing admin.vm.Remove either lands before
 * the removal, which then deletes it, or fails; it never re-creates the
 * folder for a later qube of the same name to find. All blocking.
 */
#pragma once

#include "model.h"

G_BEGIN_DECLS

/* The file @name in the qube's folder ("" when there is none; new
 * string, NUL-terminated, *@len its length or -1 when there is none);
 * refused when it is not a regular file or is larger than @max. */
char *qubes_domain_read_file(QubesDomain *dom, const char *name, gsize max,
                             gssize *len, GError **error);
/* Replaces it with @text, durably (made 0664). */
gboolean qubes_domain_write_file(QubesDomain *dom, const char *name,
                                 const char *text, GError **error);
/* Removes the files @names (NULL-terminated) from the qube's folder, those
 * that exist; the caller holds files_lock. */
gboolean qubes_domain_unlink_files(QubesDomain *dom, const char *const *names,
                                   GError **error);

G_END_DECLS
