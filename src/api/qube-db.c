/* qube-db.c: a qube's QubesDB entries, read as untrusted; see qube-db.h. */
#include "qube-db.h"

#include "qfile.h"
#include "qubes-error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static GHashTable *refuse(GError **error, const char *qube, const char *what)
{
    g_set_error(error, QUBES_ERROR, QUBES_ERROR_PROTOCOL, "QubesDB of %s: %s",
                qube, what);
    return NULL;
}

GHashTable *qubes_qdb_list(const char *qdb_dir, const char *qube,
                           const char *folder, GError **error)
{
    g_autoptr(GHashTable) out = g_hash_table_new_full(
        g_str_hash, g_str_equal, g_free, (GDestroyNotify)g_bytes_unref);
    /* DIR is trusted configuration; below it, nothing is followed */
    int root = open(qdb_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root < 0 && errno == ENOENT)
        return g_steal_pointer(&out); /* no qube wrote anything */
    if (root < 0) {
        qubes_error_errno(error, errno, "Cannot open %s", qdb_dir);
        return NULL;
    }
    g_autofree char *rel = g_build_filename(qube, folder, NULL);
    g_autofree char *path = g_build_filename(qdb_dir, rel, NULL);
    struct open_how how = {.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
                           .resolve = RESOLVE_NO_SYMLINKS |
                                      RESOLVE_NO_MAGICLINKS | RESOLVE_BENEATH};
    int fd = (int)syscall(SYS_openat2, root, rel, &how, sizeof how);
    int errsv = errno;
    close(root);
    if (fd < 0 && errsv == ENOENT)
        return g_steal_pointer(&out);
    if (fd < 0)
        return refuse(error, qube, g_strerror(errsv));
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return refuse(error, qube, g_strerror(errno));
    }
    g_autoptr(GError) err = NULL;
    struct dirent *e;
    guint n = 0;
    while ((errno = 0, e = readdir(d))) {
        const char *name = e->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;
        if (++n > QUBES_QDB_MAX_ENTRIES || strlen(name) > QUBES_QDB_MAX_NAME ||
            !qfile_name_is_safe(name)) {
            closedir(d);
            return refuse(error, qube,
                          n > QUBES_QDB_MAX_ENTRIES
                              ? "too many entries"
                              : "an entry's name is not allowed");
        }
        gsize len = 0;
        char *value = qfile_read_textat(dirfd(d), path, name,
                                        QUBES_QDB_MAX_VALUE, &len, &err);
        if (!value) {
            closedir(d);
            return refuse(error, qube, err->message);
        }
        g_hash_table_insert(out, g_strdup(name), g_bytes_new_take(value, len));
    }
    int rerr = errno;
    closedir(d);
    if (rerr)
        return refuse(error, qube, g_strerror(rerr));
    return g_steal_pointer(&out);
}
