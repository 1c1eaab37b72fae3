/* orphans.c: qube folders that qubes.xml does not name, set aside at
 * start (see orphans.h).
 *
 * Such a folder is what a crash leaves: qubesd killed during a creation
 * not yet saved, or between the save that forgot a removed qube and the
 * removal of its files. Left in place, a later qube of the same name
 * would find the old notes, firewall rules or images in "its" folder.
 * So at start each one is moved, whole, to PREFIX/.orphaned/NAME@TIME
 * (nothing is deleted: the user may want the data back), and logged.
 *
 * Only names no domain holds are moved: a domain of any class, or one
 * kept verbatim because its class is unknown here, keeps every folder
 * of its name. Only folders with a valid qube name are looked at.
 *
 * Durability: one rename per folder, then an fsync of the .orphaned
 * folder and of PREFIX. A crash before the fsyncs leaves the folder in
 * one place or the other, both of which the next start handles: in
 * place, it is moved then. */
#include "orphans.h"

#include "qubes-error.h"
#include "qubes-parse.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ORPHANS ".orphaned"

/* Moves @name (a folder in @pfd, base/@prefix) aside; FALSE with
 * @error. */
static gboolean set_aside(QubesApp *app, int pfd, const char *prefix,
                          const char *name, GError **error)
{
    if (mkdirat(pfd, ORPHANS, 0750) != 0 && errno != EEXIST)
        return qubes_error_errno(error, errno, "Cannot make %s/%s/%s",
                                 app->base_dir, prefix, ORPHANS);
    int ofd =
        openat(pfd, ORPHANS, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (ofd < 0)
        return qubes_error_errno(error, errno, "Cannot open %s/%s/%s",
                                 app->base_dir, prefix, ORPHANS);
    g_autoptr(GDateTime) now = g_date_time_new_now_utc();
    g_autofree char *stamp = g_date_time_format(now, "%Y-%m-%dT%H:%M:%SZ");
    g_autofree char *to = NULL;
    int rc = -1;
    for (int n = 0; rc != 0 && n < 100; n++) {
        g_free(to);
        to = n ? g_strdup_printf("%s@%s.%d", name, stamp, n)
               : g_strdup_printf("%s@%s", name, stamp);
        rc = renameat2(pfd, name, ofd, to, RENAME_NOREPLACE);
        if (rc != 0 && errno != EEXIST)
            break;
    }
    int errsv = errno;
    gboolean ok = rc == 0 && fsync(ofd) == 0 && fsync(pfd) == 0;
    errsv = ok ? 0 : rc == 0 ? errno : errsv;
    close(ofd);
    if (!ok)
        return qubes_error_errno(error, errsv, "Cannot move %s/%s/%s aside",
                                 app->base_dir, prefix, name);
    g_warning("%s/%s/%s: no qube of that name in qubes.xml (left by a crash "
              "during a creation or a removal); moved to %s/%s/%s/%s",
              app->base_dir, prefix, name, app->base_dir, prefix, ORPHANS, to);
    return TRUE;
}

static guint sweep_prefix(QubesApp *app, const char *prefix)
{
    g_autofree char *dir = g_build_filename(app->base_dir, prefix, NULL);
    int pfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (pfd < 0)
        return 0; /* no such folder: nothing left there */
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    for (const char *n; d && (n = g_dir_read_name(d));) {
        struct stat st;
        if (!qubes_validate_vm_name(n, NULL) ||
            fstatat(pfd, n, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISDIR(st.st_mode) || qubes_app_name_is_held(app, n))
            continue;
        g_ptr_array_add(names, g_strdup(n));
    }
    guint moved = 0;
    for (guint i = 0; i < names->len; i++) {
        g_autoptr(GError) err = NULL;
        if (set_aside(app, pfd, prefix, names->pdata[i], &err))
            moved++;
        else
            g_warning("%s", err->message);
    }
    close(pfd);
    return moved;
}

guint qubes_app_set_aside_orphans(QubesApp *app)
{
    g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);
    guint moved = 0;
    for (const QubesDomainClass *const *k = qubes_domain_classes(); *k; k++) {
        const char *prefix = (*k)->dir_prefix;
        if (!prefix || !g_hash_table_add(seen, (gpointer)prefix))
            continue;
        moved += sweep_prefix(app, prefix);
    }
    return moved;
}
