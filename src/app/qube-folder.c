/* qube-folder.c: a file in a qube's folder, read and written durably
 * (the durability and lifetime arguments: qube-folder.h). */
#include "qube-folder.h"

#include "domain.h"
#include "qfile.h"
#include "qubes-error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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

gboolean qubes_domain_unlink_files(QubesDomain *dom, const char *const *names,
                                   GError **error)
{
    if (!dom->klass->dir_prefix)
        return TRUE;
    int dfd = open_qube_dir(dom);
    if (dfd < 0)
        return TRUE;
    int errsv = 0;
    const char *failed = NULL;
    for (guint i = 0; names[i]; i++)
        if (unlinkat(dfd, names[i], 0) != 0 && errno != ENOENT && !failed) {
            errsv = errno;
            failed = names[i];
        }
    close(dfd);
    if (failed) {
        g_autofree char *path = qubes_domain_dir_path(dom);
        return qubes_error_errno_code(error, QUBES_ERROR_EXCEPTION, errsv,
                                      "Cannot remove %s/%s", path, failed);
    }
    return TRUE;
}
