/* notes.c: the files a qube keeps in its folder: its notes, the free
 * text the reference keeps in notes.txt (admin.vm.notes.Get/Set), and its
 * firewall.xml (firewall.c). See app.h.
 *
 * Durability: a new text is written to a temporary in the qube's
 * folder, fsynced, renamed over notes.txt, and the folder fsynced: after
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
 * folder for a later qube of the same name to find. */
#include "app.h"
#include "firewall.h"

#include "qfile.h"
#include "qubes-error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NOTES_FILE "notes.txt"

static gboolean no_folder(QubesDomain *dom, GError **error)
{
    if (dom->klass->dir_prefix)
        return FALSE;
    g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                "%s keeps no notes: a %s has no folder", dom->name,
                dom->klass->name);
    return TRUE;
}

/* Opens base/prefix/name as a folder; -1 with errno (ENOENT: there is
 * none). */
static int open_qube_dir(QubesDomain *dom)
{
    const char *parts[] = {dom->klass->dir_prefix, dom->name};
    int fd = open(dom->app->base_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    for (guint i = 0; fd >= 0 && i < G_N_ELEMENTS(parts); i++) {
        int next = openat(fd, parts[i],
                          O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int e = errno;
        close(fd);
        fd = next;
        errno = e;
    }
    return fd;
}

char *qubes_domain_read_file(QubesDomain *dom, const char *name, gsize max,
                             gssize *len, GError **error)
{
    if (len)
        *len = -1;
    if (no_folder(dom, error))
        return NULL;
    int dfd = open_qube_dir(dom);
    if (dfd < 0 && errno == ENOENT)
        return g_strdup("");
    g_autofree char *path = qubes_domain_dir_path(dom);
    if (dfd < 0) {
        qubes_error_errno_code(error, QUBES_ERROR_EXCEPTION, errno,
                               "Cannot open %s", path);
        return NULL;
    }
    /* a planted FIFO, device or link is refused, as in the pools, and
     * so is a file larger than any Set makes */
    g_autoptr(GError) oerr = NULL;
    gsize n = 0;
    char *text = qfile_read_textat(dfd, path, name, max, &n, &oerr);
    int errsv = errno;
    close(dfd);
    if (!text && errsv == ENOENT)
        return g_strdup("");
    if (!text) { /* the message names the file and why */
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                            oerr->message);
        return NULL;
    }
    if (len)
        *len = (gssize)n;
    return text;
}

char *qubes_domain_read_notes(QubesDomain *dom, GError **error)
{
    return qubes_domain_read_file(dom, NOTES_FILE, QUBES_NOTES_MAX, NULL,
                                  error);
}

static gboolean write_file(QubesDomain *dom, const char *name, const char *text,
                           GError **error);

gboolean qubes_domain_write_file(QubesDomain *dom, const char *name,
                                 const char *text, GError **error)
{
    if (no_folder(dom, error))
        return FALSE;
    g_autoptr(GMutexLocker) l = g_mutex_locker_new(&dom->files_lock);
    if (dom->files_gone) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VM_NOT_FOUND,
                    "No such domain: '%s' (removed)", dom->name);
        return FALSE;
    }
    return write_file(dom, name, text, error);
}

/* With files_lock held. */
static gboolean write_file(QubesDomain *dom, const char *name, const char *text,
                           GError **error)
{
    g_autofree char *path = qubes_domain_dir_path(dom);
    int dfd = open_qube_dir(dom);
    if (dfd < 0 && errno == ENOENT)
        return qubes_error_errno_code(error, QUBES_ERROR_EXCEPTION, errno,
                                      "Cannot write %s/%s: the qube's folder "
                                      "is gone (only its creation makes it)",
                                      path, name);
    if (dfd < 0)
        return qubes_error_errno_code(error, QUBES_ERROR_EXCEPTION, errno,
                                      "Cannot open %s", path);
    char tmp[64];
    int fd = -1;
    for (int tries = 0; fd < 0 && tries < 16; tries++) {
        g_snprintf(tmp, sizeof tmp, "%.40s~%08x", name, g_random_int());
        fd = openat(dfd, tmp,
                    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0664);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    gboolean ok = fd >= 0;
    int errsv = errno;
    const char *what = "create";
    size_t len = strlen(text), done = 0;
    while (ok && done < len) {
        ssize_t n = write(fd, text + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        ok = n > 0;
        errsv = errno;
        what = "write";
        done += ok ? (size_t)n : 0;
    }
    /* The text is on disk before it gets the name; the folder after the
     * rename makes the name durable. */
    if (ok && !(ok = fsync(fd) == 0)) {
        errsv = errno;
        what = "fsync";
    }
    if (fd >= 0)
        close(fd);
    if (ok && !(ok = renameat(dfd, tmp, dfd, name) == 0)) {
        errsv = errno;
        what = "rename";
    }
    if (ok && !(ok = fsync(dfd) == 0)) {
        errsv = errno;
        what = "fsync the folder of";
    }
    if (!ok && fd >= 0)
        unlinkat(dfd, tmp, 0);
    close(dfd);
    if (!ok)
        return qubes_error_errno_code(error, QUBES_ERROR_EXCEPTION, errsv,
                                      "Cannot %s %s/%s", what, path, name);
    return TRUE;
}

gboolean qubes_domain_write_notes(QubesDomain *dom, const char *text,
                                  GError **error)
{
    return qubes_domain_write_file(dom, NOTES_FILE, text, error);
}

/* What qubesd itself keeps in a qube's folder (the volumes are the
 * storage's, the libvirt config the runtime's). */
static const char *const own_files[] = {NOTES_FILE, QUBES_FIREWALL_FILE, NULL};

static gboolean remove_own_files(QubesDomain *dom, GError **error)
{
    if (!dom->klass->dir_prefix)
        return TRUE;
    int dfd = open_qube_dir(dom);
    if (dfd < 0)
        return TRUE;
    int errsv = 0;
    const char *failed = NULL;
    for (guint i = 0; own_files[i]; i++)
        if (unlinkat(dfd, own_files[i], 0) != 0 && errno != ENOENT && !failed) {
            errsv = errno;
            failed = own_files[i];
        }
    close(dfd);
    if (failed) {
        g_autofree char *path = qubes_domain_dir_path(dom);
        return qubes_error_errno_code(error, QUBES_ERROR_EXCEPTION, errsv,
                                      "Cannot remove %s/%s", path, failed);
    }
    return TRUE;
}

gboolean qubes_domain_remove_own_files(QubesDomain *dom, GError **error)
{
    g_autoptr(GMutexLocker) l = g_mutex_locker_new(&dom->files_lock);
    return remove_own_files(dom, error);
}

QubesDomainFiles *qubes_domain_files_new(QubesDomain *dom)
{
    QubesDomainFiles *f = g_new0(QubesDomainFiles, 1);
    f->dom = qubes_domain_ref(dom);
    f->volumes = qubes_domain_volume_refs(dom);
    f->dir = qubes_domain_dir_path(dom);
    if (strcmp(dom->klass->name, "DispVM") == 0) {
        QubesDomain *tpl = qubes_domain_get_template(dom);
        f->firewall_from = tpl ? qubes_domain_ref(tpl) : NULL;
    }
    return f;
}

gboolean qubes_domain_files_create(QubesDomainFiles *f, GError **error)
{
    /* The template's rules are read first: one that cannot be read
     * fails the creation rather than give the DispVM no rules (which
     * would accept everything the template closed). */
    g_autoptr(GPtrArray) rules = NULL;
    if (f->firewall_from &&
        !(rules = qubes_domain_read_firewall(f->firewall_from, error)))
        return FALSE;
    /* A folder left by an earlier qube of this name (one a crash kept
     * from its removal) gives the new one none of its notes or rules. */
    if (!qubes_domain_remove_own_files(f->dom, error))
        return FALSE;
    if (!qubes_storage_create(f->volumes, f->dir, error))
        return FALSE;
    /* Without a firewall.xml a qube accepts everything: the default
     * rules need no file (and the DispVM's start no extra fsync).
     * Durability: the file is written (fsync, rename, fsync of the
     * folder) before the DispVM is put in qubes.xml, which happens only
     * once this returns; so a DispVM that qubes.xml holds after a crash
     * has its rules, and a crash before leaves only unreferenced files. */
    if (!rules || qubes_fw_rules_are_default(rules))
        return TRUE;
    if (!qubes_domain_write_firewall(f->dom, rules, error)) {
        g_autoptr(GError) e = NULL;
        if (!qubes_storage_remove(f->volumes, f->dir, &e))
            g_warning("%s: %s", f->dom->name, e->message);
        return FALSE;
    }
    f->firewall_next = qubes_fw_nearest_expire(rules);
    return TRUE;
}

void qubes_domain_files_free(QubesDomainFiles *f)
{
    qubes_domain_unref(f->dom);
    if (f->firewall_from)
        qubes_domain_unref(f->firewall_from);
    g_ptr_array_unref(f->volumes);
    g_free(f->dir);
    g_free(f);
}

gboolean qubes_domain_files_remove(QubesDomainFiles *f, GError **error)
{
    /* Waits for a writer in flight; every later one fails. */
    g_autoptr(GMutexLocker) l = g_mutex_locker_new(&f->dom->files_lock);
    f->dom->files_gone = TRUE;
    /* the storage goes even when a file of qubesd's could not */
    g_autoptr(GError) own = NULL;
    gboolean ok = remove_own_files(f->dom, &own);
    if (!qubes_storage_remove(f->volumes, f->dir, error))
        return FALSE;
    if (!ok)
        g_propagate_error(error, g_steal_pointer(&own));
    return ok;
}
