/* import.c: the volume import service's two halves (see import.h). */
#include "import.h"

#include "qfile.h"
#include "qubesadmin.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

int qa_import_begin(const char *src, const char *vm, const char *volume,
                    const char *size_text, guint64 *size, GBytes **refusal,
                    gboolean *started, GError **error)
{
    *started = FALSE;
    g_autofree char *internal = qa_internal_socket_path();
    g_autoptr(GBytes) raw =
        qa_call_raw(internal, src, "internal.vm.volume.ImportBegin", vm, volume,
                    size_text, strlen(size_text), error);
    if (!raw)
        return -1;
    gsize n;
    const char *p = g_bytes_get_data(raw, &n);
    if (n < 2 || p[0] != '0' || p[1] != '\0') {
        g_set_error(error, QA_ERROR, QA_ERROR_EXCEPTION,
                    "qubesd refused to import %s:%s", vm, volume);
        if (refusal)
            *refusal = g_bytes_ref(raw);
        return -1;
    }
    *started = TRUE;
    g_autofree char *answer = g_strndup(p + 2, n - 2);
    *size = g_ascii_strtoull(answer, NULL, 10);
    const char *path = strchr(answer, ' ');
    if (!path) {
        g_set_error(error, QA_ERROR, QA_ERROR_PROTOCOL,
                    "qubesd gave no image path for %s:%s", vm, volume);
        return -1;
    }
    path++;
    g_autofree char *dir = g_path_get_dirname(path);
    g_autofree char *base = g_path_get_basename(path);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        g_set_error(error, QA_ERROR, QA_ERROR_PROTOCOL, "cannot open %s: %s",
                    dir, g_strerror(errno));
        return -1;
    }
    int fd = qfile_openat_file(dfd, dir, base, O_WRONLY, error);
    close(dfd);
    return fd;
}

GBytes *qa_import_end(const char *src, const char *vm, const char *volume,
                      const char *why, GError **error)
{
    g_autofree char *internal = qa_internal_socket_path();
    g_autofree char *status =
        why ? g_strdup_printf("fail\n%s", why) : g_strdup("ok");
    return qa_call_raw(internal, src, "internal.vm.volume.ImportEnd", vm,
                       volume, status, strlen(status), error);
}
