/* admin.vm.volume.Import and admin.vm.volume.ImportWithSize: the service
 * programs that stream a disk image from standard input into a volume,
 * as the reference's qubes-rpc scripts of the same names do.
 *
 *   QREXEC_REQUESTED_TARGET=VM [QREXEC_REMOTE_DOMAIN=SRC] \
 *       admin.vm.volume.Import VOLUME < image
 *   (printf 'SIZE\n'; cat image) | ... admin.vm.volume.ImportWithSize VOLUME
 *
 * They ask qubesd (internal.vm.volume.ImportBegin on the internal socket)
 * for a fresh image of the volume, fill it with exactly SIZE bytes from
 * standard input, skipping blocks of zeros so the image stays sparse,
 * flush it (fdatasync), and tell qubesd how it went
 * (internal.vm.volume.ImportEnd), whose answer they print: "0\0" on
 * success, an exception answer otherwise (exit status 1).
 */
#include "import.h"
#include "qubesadmin.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BLOCK (64 * 1024)

static gboolean all_zero(const guint8 *p, gsize n)
{
    for (gsize i = 0; i < n; i++) {
        if (p[i])
            return FALSE;
    }
    return TRUE;
}

/* Reads the "SIZE\n" header one byte at a time (no read-ahead into the
 * image data). */
static gboolean read_size_line(char *buf, gsize cap)
{
    gsize n = 0;
    while (n + 1 < cap) {
        ssize_t r = read(STDIN_FILENO, buf + n, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return FALSE;
        if (buf[n] == '\n') {
            buf[n] = '\0';
            return n > 0;
        }
        n++;
    }
    return FALSE;
}

/* Copies @size bytes of stdin into @fd, sparsely. */
static gboolean copy_in(int fd, guint64 size, GString *why)
{
    g_autofree guint8 *buf = g_malloc(BLOCK);
    guint64 done = 0;
    while (done < size) {
        gsize want = (gsize)MIN((guint64)BLOCK, size - done);
        gsize have = 0;
        while (have < want) {
            ssize_t r = read(STDIN_FILENO, buf + have, want - have);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                g_string_printf(why, "reading the image: %s",
                                g_strerror(errno));
                return FALSE;
            }
            if (r == 0) {
                g_string_printf(why,
                                "the image ended after %" G_GUINT64_FORMAT
                                " of %" G_GUINT64_FORMAT " bytes",
                                done + have, size);
                return FALSE;
            }
            have += (gsize)r;
        }
        /* The target is a fresh sparse image: zeros need no write. */
        if (!all_zero(buf, have)) {
            gsize off = 0;
            while (off < have) {
                ssize_t w =
                    pwrite(fd, buf + off, have - off, (off_t)(done + off));
                if (w < 0 && errno == EINTR)
                    continue;
                if (w <= 0) {
                    g_string_printf(why, "writing the volume: %s",
                                    g_strerror(errno));
                    return FALSE;
                }
                off += (gsize)w;
            }
        }
        done += have;
    }
    if (fdatasync(fd) != 0) {
        g_string_printf(why, "flushing the volume: %s", g_strerror(errno));
        return FALSE;
    }
    return TRUE;
}

int main(int argc, char **argv)
{
    g_autofree char *prog = g_path_get_basename(argv[0]);
    gboolean with_size = g_str_has_suffix(prog, "ImportWithSize");
    const char *target = g_getenv("QREXEC_REQUESTED_TARGET");
    const char *src = g_getenv("QREXEC_REMOTE_DOMAIN");
    if (argc != 2 || !target || !*target) {
        fprintf(stderr,
                "usage: QREXEC_REQUESTED_TARGET=VM %s VOLUME < IMAGE\n%s", prog,
                with_size ? "(standard input starts with the size in bytes "
                            "and a newline)\n"
                          : "");
        return 2;
    }
    if (!src || !*src)
        src = "dom0";
    const char *volume = argv[1];
    char size_line[32] = "";
    if (with_size && !read_size_line(size_line, sizeof size_line)) {
        fprintf(stderr, "%s: no size line on standard input\n", prog);
        return 1;
    }
    g_autoptr(GError) err = NULL;
    g_autoptr(GBytes) refusal = NULL;
    gboolean started = FALSE;
    guint64 size = 0;
    int fd = qa_import_begin(src, target, volume, size_line, &size, &refusal,
                             &started, &err);
    if (refusal) {
        /* qubesd refused: its answer is ours (nothing was started). */
        gsize blen;
        const char *b = g_bytes_get_data(refusal, &blen);
        fwrite(b, 1, blen, stdout);
        return 1;
    }
    if (!started)
        return qa_fail(prog, err);
    GString *why = g_string_new(NULL);
    gboolean ok = FALSE;
    if (fd < 0) {
        g_string_assign(why, err->message);
    } else {
        ok = copy_in(fd, size, why);
        close(fd);
    }
    g_autoptr(GError) eerr = NULL;
    g_autoptr(GBytes) answer =
        qa_import_end(src, target, volume, ok ? NULL : why->str, &eerr);
    g_string_free(why, TRUE);
    if (!answer)
        return qa_fail(prog, eerr);
    gsize n;
    const char *p = g_bytes_get_data(answer, &n);
    fwrite(p, 1, n, stdout);
    return n >= 2 && p[0] == '0' && p[1] == '\0' ? 0 : 1;
}
