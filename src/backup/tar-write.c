/* tar-write.c: GNU tar's format for the streams of a backup (see
 * tar-write.h). */
#include "tar-write.h"

#include "qubes-error.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BLOCK 512
#define OCTAL_MAX(digits) (((guint64)1 << (3 * (digits))) - 1)

/* A number in a field of @n bytes: octal with a NUL where it fits, else
 * GNU's base-256 (the first byte's high bit set). */
static void put_number(guint8 *f, gsize n, guint64 v)
{
    if (v <= OCTAL_MAX(n - 1)) {
        char tmp[32];
        g_snprintf(tmp, sizeof tmp, "%0*" G_GINT64_MODIFIER "o", (int)(n - 1),
                   v);
        memcpy(f, tmp, n - 1);
        f[n - 1] = 0;
        return;
    }
    memset(f, 0, n);
    f[0] = 0x80;
    for (gsize i = n - 1; i > 0 && v; i--, v >>= 8)
        f[i] = (guint8)(v & 0xff);
}

static void put_text(guint8 *f, gsize n, const char *s)
{
    gsize len = MIN(strlen(s), n);
    memcpy(f, s, len);
}

static void put_checksum(guint8 *b)
{
    memset(b + 148, ' ', 8);
    guint sum = 0;
    for (int i = 0; i < BLOCK; i++)
        sum += b[i];
    char tmp[8];
    g_snprintf(tmp, sizeof tmp, "%06o", sum);
    memcpy(b + 148, tmp, 6);
    b[154] = 0;
    b[155] = ' ';
}

/* A GNU header of @typeflag for @name (its first 100 bytes). */
static void header_block(guint8 *b, const char *name, char typeflag,
                         guint32 mode, gint64 mtime, guint64 size)
{
    memset(b, 0, BLOCK);
    put_text(b, 100, name);
    put_number(b + 100, 8, mode & 07777);
    put_number(b + 108, 8, 0);
    put_number(b + 116, 8, 0);
    put_number(b + 124, 12, size);
    put_number(b + 136, 12, (guint64)MAX(mtime, 0));
    b[156] = (guint8)typeflag;
    memcpy(b + 257, "ustar  ", 8); /* GNU: "ustar  \0" */
    put_text(b + 265, 32, "root");
    put_text(b + 297, 32, "root");
}

static gboolean emit(QubesTarSink sink, gpointer data, const guint8 *b, gsize n,
                     GError **error)
{
    return sink(b, n, data, error);
}

static gboolean pad(QubesTarSink sink, gpointer data, guint64 n, GError **error)
{
    static const guint8 zeros[BLOCK];
    gsize k = (gsize)((BLOCK - n % BLOCK) % BLOCK);
    return !k || emit(sink, data, zeros, k, error);
}

guint64 qubes_tar_stored(const QubesTarFile *f)
{
    if (!f->extents)
        return f->size;
    guint64 sum = 0;
    for (guint i = 0; i < f->extents->len; i++)
        sum += g_array_index(f->extents, QubesTarExtent, i).length;
    return sum;
}

gboolean qubes_tar_write_begin(QubesTarSink sink, gpointer data,
                               const QubesTarFile *f, GError **error)
{
    guint8 b[BLOCK];
    gsize nlen = strlen(f->name);
    gsize llen = f->linkname ? strlen(f->linkname) : 0;
    if (llen > 100) {
        /* GNU's long link name, the same way */
        header_block(b, "././@LongLink", 'K', 0644, 0, llen + 1);
        put_checksum(b);
        if (!emit(sink, data, b, BLOCK, error) ||
            !emit(sink, data, (const guint8 *)f->linkname, llen + 1, error) ||
            !pad(sink, data, llen + 1, error))
            return FALSE;
    }
    if (nlen > 100) {
        /* GNU's long name: a member holding the name, NUL-ended */
        header_block(b, "././@LongLink", 'L', 0644, 0, nlen + 1);
        put_checksum(b);
        if (!emit(sink, data, b, BLOCK, error) ||
            !emit(sink, data, (const guint8 *)f->name, nlen + 1, error) ||
            !pad(sink, data, nlen + 1, error))
            return FALSE;
    }
    guint64 stored = qubes_tar_stored(f);
    const GArray *x = f->extents;
    header_block(b, f->name,
                 x         ? 'S'
                 : f->type ? f->type
                           : '0',
                 f->mode, f->mtime, stored);
    if (f->linkname)
        put_text(b + 157, 100, f->linkname);
    guint next = 0;
    if (x) {
        for (; next < x->len && next < 4; next++) {
            const QubesTarExtent *e = &g_array_index(x, QubesTarExtent, next);
            put_number(b + 386 + 24 * next, 12, e->offset);
            put_number(b + 386 + 24 * next + 12, 12, e->length);
        }
        b[482] = next < x->len;
        put_number(b + 483, 12, f->size);
    }
    put_checksum(b);
    if (!emit(sink, data, b, BLOCK, error))
        return FALSE;
    while (x && next < x->len) {
        memset(b, 0, BLOCK);
        for (guint i = 0; i < 21 && next < x->len; i++, next++) {
            const QubesTarExtent *e = &g_array_index(x, QubesTarExtent, next);
            put_number(b + 24 * i, 12, e->offset);
            put_number(b + 24 * i + 12, 12, e->length);
        }
        b[504] = next < x->len;
        if (!emit(sink, data, b, BLOCK, error))
            return FALSE;
    }
    return TRUE;
}

gboolean qubes_tar_write_end(QubesTarSink sink, gpointer data, guint64 stored,
                             GError **error)
{
    return pad(sink, data, stored, error);
}

gboolean qubes_tar_write_finish(QubesTarSink sink, gpointer data,
                                GError **error)
{
    static const guint8 zeros[2 * BLOCK];
    return emit(sink, data, zeros, sizeof zeros, error);
}

gboolean qubes_tar_write_fd(QubesTarSink sink, gpointer data, int fd,
                            const char *name, GError **error)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return qubes_error_errno_code(error, QUBES_ERROR_EXCEPTION, errno,
                                      "Cannot stat %s", name);
    g_autoptr(GArray) x = qubes_tar_extents(fd, (guint64)st.st_size, error);
    if (!x)
        return FALSE;
    QubesTarFile f = {.name = name,
                      .mode = st.st_mode,
                      .mtime = st.st_mtime,
                      .size = (guint64)st.st_size,
                      .extents = x};
    if (!qubes_tar_write_begin(sink, data, &f, error))
        return FALSE;
    g_autofree guint8 *buf = g_malloc(1 << 20);
    for (guint i = 0; i < x->len; i++) {
        const QubesTarExtent *e = &g_array_index(x, QubesTarExtent, i);
        for (guint64 done = 0; done < e->length;) {
            gsize want = (gsize)MIN(e->length - done, (guint64)(1 << 20));
            ssize_t n = pread(fd, buf, want, (off_t)(e->offset + done));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                return qubes_error_errno_code(error, QUBES_ERROR_EXCEPTION,
                                              n < 0 ? errno : EIO,
                                              "Cannot read %s", name);
            if (!sink(buf, (gsize)n, data, error))
                return FALSE;
            done += (guint64)n;
        }
    }
    return qubes_tar_write_end(sink, data, qubes_tar_stored(&f), error);
}

GArray *qubes_tar_extents(int fd, guint64 size, GError **error)
{
    GArray *x = g_array_new(FALSE, FALSE, sizeof(QubesTarExtent));
    off_t pos = 0;
    while ((guint64)pos < size) {
        off_t data = lseek(fd, pos, SEEK_DATA);
        if (data < 0 && errno == ENXIO)
            break; /* only a hole is left */
        if (data < 0 && errno == EINVAL && pos == 0) {
            /* no SEEK_DATA here: all of it is data */
            QubesTarExtent all = {0, size};
            g_array_append_val(x, all);
            return x;
        }
        off_t hole = data < 0 ? -1 : lseek(fd, data, SEEK_HOLE);
        if (data < 0 || hole < 0) {
            qubes_error_errno_code(error, QUBES_ERROR_EXCEPTION, errno,
                                   "Cannot find the data of a file");
            g_array_unref(x);
            return NULL;
        }
        if ((guint64)data >= size)
            break;
        QubesTarExtent e = {(guint64)data,
                            MIN((guint64)hole, size) - (guint64)data};
        g_array_append_val(x, e);
        pos = hole;
    }
    guint64 end = x->len
                      ? g_array_index(x, QubesTarExtent, x->len - 1).offset +
                            g_array_index(x, QubesTarExtent, x->len - 1).length
                      : 0;
    if (end < size || !x->len) {
        QubesTarExtent last = {size, 0};
        g_array_append_val(x, last);
    }
    return x;
}
