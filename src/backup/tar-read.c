/* tar-read.c: the streaming tar reader (see tar-read.h). A push parser:
 * headers and the blocks that extend them are gathered into 512-byte
 * blocks; member data goes from the input to the data callback without a
 * copy. */
#include "tar-read.h"

#include "qubes-error.h"

#include <string.h>

#define BLOCK 512
#define MAX_PAX (64 * 1024)

typedef enum {
    ST_HEADER,     /* gathering a header block */
    ST_SPARSE_EXT, /* gathering a sparse extension block */
    ST_META,       /* gathering a long name, long link or pax body */
    ST_DATA,       /* a member's data */
    ST_PAD,        /* the padding after a body or data */
    ST_FAILED,
} State;

struct _QubesTarReader {
    QubesTarCallbacks cb;
    gpointer data;
    State st;
    guint8 block[BLOCK];
    gsize have;       /* bytes in block (headers) */
    gboolean zeros;   /* the last header block was all zeros */
    QubesTarMember m; /* the member being read */
    gboolean in_member;
    guint64 left;   /* data or body bytes still to come */
    guint64 pad;    /* padding bytes still to skip */
    guint ext;      /* sparse: the extent being filled */
    guint64 in_ext; /* sparse: bytes of it given so far */
    char meta_type; /* 'L', 'K' or 'x' for ST_META */
    GString *meta;
    char *next_name; /* from 'L' or pax path, for the next member */
    char *next_link; /* from 'K' or pax linkpath */
    gboolean next_size_set;
    guint64 next_size; /* from pax size */
    guint members;
};

static gboolean fail(QubesTarReader *r, GError **error, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);

static gboolean fail(QubesTarReader *r, GError **error, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_autofree char *who =
        r->in_member && r->m.name ? g_strescape(r->m.name, NULL) : NULL;
    if (who)
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                    "tar member '%s': %s", who, msg);
    else
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION, "tar: %s", msg);
    r->st = ST_FAILED;
    return FALSE;
}

/* A numeric field: octal (leading spaces, then digits to a NUL, a space
 * or the end), or GNU's base-256 (the first byte's high bit). */
static gboolean number(const guint8 *f, gsize n, guint64 *out)
{
    guint64 v = 0;
    if (f[0] & 0x80) {
        if (f[0] & 0x40)
            return FALSE; /* negative */
        v = f[0] & 0x3f;
        for (gsize i = 1; i < n; i++) {
            if (v >> 55)
                return FALSE;
            v = v << 8 | f[i];
        }
        *out = v;
        return v <= (guint64)G_MAXINT64;
    }
    gsize i = 0;
    while (i < n && f[i] == ' ')
        i++;
    for (; i < n && f[i] >= '0' && f[i] <= '7'; i++) {
        if (v >> 60)
            return FALSE;
        v = v << 3 | (guint64)(f[i] - '0');
    }
    for (; i < n; i++)
        if (f[i] != ' ' && f[i] != 0)
            return FALSE;
    *out = v;
    return TRUE;
}

/* A NUL-padded text field (new string). */
static char *text(const guint8 *f, gsize n)
{
    gsize len = 0;
    while (len < n && f[len])
        len++;
    return g_strndup((const char *)f, len);
}

static void member_clear(QubesTarMember *m)
{
    g_clear_pointer(&m->name, g_free);
    g_clear_pointer(&m->link, g_free);
    g_clear_pointer(&m->sparse, g_array_unref);
    memset(m, 0, sizeof *m);
}

static gboolean all_zero(const guint8 *b, gsize n)
{
    for (gsize i = 0; i < n; i++)
        if (b[i])
            return FALSE;
    return TRUE;
}

static gboolean checksum_ok(const guint8 *b)
{
    guint64 want;
    if (!number(b + 148, 8, &want))
        return FALSE;
    guint64 u = 0;
    gint64 s = 0;
    for (gsize i = 0; i < BLOCK; i++) {
        guint8 c = i >= 148 && i < 156 ? ' ' : b[i];
        u += c;
        s += (gint8)c;
    }
    return u == want || (guint64)s == want;
}

/* Appends the (offset, numbytes) pairs of a sparse map area of @count
 * entries; *@more from the flag byte after it (for the header, passed
 * apart). */
static gboolean add_extents(QubesTarReader *r, const guint8 *area, guint count,
                            GError **error)
{
    for (guint i = 0; i < count; i++) {
        const guint8 *e = area + 24 * i;
        if (all_zero(e, 24))
            break;
        QubesTarExtent x;
        if (!number(e, 12, &x.offset) || !number(e + 12, 12, &x.length))
            return fail(r, error, "a bad number in its sparse map");
        if (r->m.sparse->len >= QUBES_TAR_MAX_EXTENTS)
            return fail(r, error, "more than %u extents in its sparse map",
                        QUBES_TAR_MAX_EXTENTS);
        g_array_append_val(r->m.sparse, x);
    }
    return TRUE;
}

/* The sparse map is whole: ascending, within the size, adding up to what
 * is stored. */
static gboolean check_extents(QubesTarReader *r, GError **error)
{
    guint64 end = 0, sum = 0;
    for (guint i = 0; i < r->m.sparse->len; i++) {
        QubesTarExtent *x = &g_array_index(r->m.sparse, QubesTarExtent, i);
        if (x->offset < end || x->offset > r->m.size ||
            x->length > r->m.size - x->offset)
            return fail(r, error,
                        "its sparse map is out of order or past its size "
                        "(%" G_GUINT64_FORMAT " bytes at %" G_GUINT64_FORMAT
                        ", size %" G_GUINT64_FORMAT ")",
                        x->length, x->offset, r->m.size);
        end = x->offset + x->length;
        sum += x->length;
    }
    if (sum != r->m.stored)
        return fail(r, error,
                    "its sparse map holds %" G_GUINT64_FORMAT
                    " bytes, its data %" G_GUINT64_FORMAT,
                    sum, r->m.stored);
    return TRUE;
}

static guint64 padding(guint64 n)
{
    return (BLOCK - n % BLOCK) % BLOCK;
}

/* Its data is read (r->pad: the padding still to skip). */
static gboolean end_member(QubesTarReader *r, GError **error)
{
    if (r->cb.end && !r->cb.end(&r->m, r->data, error)) {
        r->st = ST_FAILED;
        return FALSE;
    }
    r->members++;
    r->in_member = FALSE;
    member_clear(&r->m);
    r->st = r->pad ? ST_PAD : ST_HEADER;
    return TRUE;
}

/* The member's header and its extensions are read: begin, then data. */
static gboolean begin_member(QubesTarReader *r, GError **error)
{
    if (r->m.sparse && !check_extents(r, error))
        return FALSE;
    if (r->cb.begin && !r->cb.begin(&r->m, r->data, error)) {
        r->st = ST_FAILED;
        return FALSE;
    }
    r->left = r->m.stored;
    r->ext = 0;
    r->in_ext = 0;
    r->pad = padding(r->m.stored);
    if (!r->m.stored)
        return end_member(r, error);
    r->st = ST_DATA;
    return TRUE;
}

/* One "LEN KEY=VALUE\n" record after another. */
static gboolean parse_pax(QubesTarReader *r, GError **error)
{
    const char *p = r->meta->str, *end = p + r->meta->len;
    while (p < end) {
        const char *sp = memchr(p, ' ', (gsize)MIN(end - p, 12));
        g_autofree char *digits = sp ? g_strndup(p, (gsize)(sp - p)) : NULL;
        guint64 len = 0;
        if (!sp || sp == p ||
            !g_ascii_string_to_unsigned(digits, 10, 1, (guint64)(end - p), &len,
                                        NULL) ||
            len <= (guint64)(sp - p) + 1 || p[len - 1] != '\n')
            return fail(r, error, "a malformed pax record");
        const char *kv = sp + 1, *rec_end = p + len - 1;
        const char *eq = memchr(kv, '=', (gsize)(rec_end - kv));
        if (!eq)
            return fail(r, error, "a pax record without '='");
        g_autofree char *key = g_strndup(kv, (gsize)(eq - kv));
        gsize vlen = (gsize)(rec_end - eq - 1);
        if (memchr(eq + 1, 0, vlen))
            return fail(r, error, "a NUL in a pax value");
        if (strcmp(key, "path") == 0 || strcmp(key, "linkpath") == 0) {
            if (vlen == 0 || vlen > QUBES_TAR_MAX_NAME)
                return fail(r, error, "a pax %s of %zu bytes", key, vlen);
            char **slot = key[0] == 'p' ? &r->next_name : &r->next_link;
            g_free(*slot);
            *slot = g_strndup(eq + 1, vlen);
        } else if (strcmp(key, "size") == 0) {
            g_autofree char *v = g_strndup(eq + 1, vlen);
            if (!g_ascii_string_to_unsigned(v, 10, 0, G_MAXINT64, &r->next_size,
                                            NULL))
                return fail(r, error, "a bad pax size");
            r->next_size_set = TRUE;
        } else if (g_str_has_prefix(key, "GNU.sparse.")) {
            return fail(r, error,
                        "a pax sparse member (GNU tar --format=posix): not "
                        "the format of Qubes backups");
        }
        p += len;
    }
    return TRUE;
}

static gboolean meta_done(QubesTarReader *r, GError **error)
{
    if (r->meta_type == 'x')
        return parse_pax(r, error);
    if (r->meta_type == 'g')
        return TRUE; /* global pax settings: none matter here */
    gsize len = strnlen(r->meta->str, r->meta->len);
    if (len == 0)
        return fail(r, error, "an empty long name");
    char **slot = r->meta_type == 'L' ? &r->next_name : &r->next_link;
    g_free(*slot);
    *slot = g_strndup(r->meta->str, len);
    return TRUE;
}

static gboolean header(QubesTarReader *r, GError **error)
{
    const guint8 *b = r->block;
    if (all_zero(b, BLOCK)) {
        r->zeros = TRUE; /* the end of an archive; another may follow */
        return TRUE;
    }
    r->zeros = FALSE;
    gboolean gnu = memcmp(b + 257, "ustar  \0", 8) == 0;
    gboolean posix = memcmp(b + 257,
                            "ustar\0"
                            "00",
                            8) == 0;
    if (!gnu && !posix)
        return fail(r, error, "not a ustar or GNU tar header");
    if (!checksum_ok(b))
        return fail(r, error, "a header whose checksum does not match");
    char tf = (char)b[156];
    guint64 size, mode, mtime;
    if (!number(b + 124, 12, &size) || !number(b + 100, 8, &mode) ||
        !number(b + 136, 12, &mtime))
        return fail(r, error, "a bad number in a header");
    if (tf == 'L' || tf == 'K' || tf == 'x' || tf == 'g') {
        guint64 max = tf == 'x' || tf == 'g' ? MAX_PAX : QUBES_TAR_MAX_NAME + 1;
        if (size > max)
            return fail(r, error,
                        "an extended header of %" G_GUINT64_FORMAT " bytes",
                        size);
        r->meta_type = tf;
        g_string_truncate(r->meta, 0);
        r->left = size;
        r->pad = padding(size);
        r->st = ST_META;
        if (size == 0)
            r->st = ST_PAD;
        return TRUE;
    }
    member_clear(&r->m);
    r->in_member = TRUE;
    QubesTarMember *m = &r->m;
    m->typeflag = tf;
    if (r->next_name) {
        m->name = g_steal_pointer(&r->next_name);
    } else {
        g_autofree char *name = text(b, 100);
        g_autofree char *prefix = posix ? text(b + 345, 155) : NULL;
        m->name = prefix && *prefix ? g_strconcat(prefix, "/", name, NULL)
                                    : g_steal_pointer(&name);
    }
    if (!*m->name)
        return fail(r, error, "a member without a name");
    m->mode = (guint32)(mode & 07777);
    m->mtime = (gint64)MIN(mtime, (guint64)G_MAXINT64);
    m->stored = r->next_size_set ? r->next_size : size;
    m->size = m->stored;
    r->next_size_set = FALSE;
    switch (tf) {
    case '0':
    case '\0':
    case '7':
    case 'S':
        m->type = QUBES_TAR_FILE;
        break;
    case '5':
        m->type = QUBES_TAR_DIR;
        break;
    case '1':
    case '2':
        m->type = tf == '1' ? QUBES_TAR_HARDLINK : QUBES_TAR_SYMLINK;
        m->link =
            r->next_link ? g_steal_pointer(&r->next_link) : text(b + 157, 100);
        break;
    case '3':
    case '4':
    case '6':
        m->type = QUBES_TAR_OTHER;
        break;
    default:
        return fail(r, error, "an unsupported member type '%c'",
                    g_ascii_isprint(tf) ? tf : '?');
    }
    g_clear_pointer(&r->next_link, g_free);
    if (m->type != QUBES_TAR_FILE && m->stored)
        return fail(r, error, "data in a member that holds none");
    if (tf != 'S')
        return begin_member(r, error);
    if (!gnu)
        return fail(r, error, "a sparse member in a non-GNU header");
    m->sparse = g_array_new(FALSE, FALSE, sizeof(QubesTarExtent));
    if (!number(b + 483, 12, &m->size))
        return fail(r, error, "a bad sparse size");
    if (!add_extents(r, b + 386, 4, error))
        return FALSE;
    if (b[482]) {
        r->st = ST_SPARSE_EXT;
        return TRUE;
    }
    return begin_member(r, error);
}

static gboolean sparse_ext(QubesTarReader *r, GError **error)
{
    if (!add_extents(r, r->block, 21, error))
        return FALSE;
    if (r->block[504])
        return TRUE; /* another follows */
    r->st = ST_HEADER;
    return begin_member(r, error);
}

/* Gives @n bytes of data at the current place. */
static gboolean give(QubesTarReader *r, const guint8 *p, gsize n,
                     GError **error)
{
    if (!r->m.sparse) {
        guint64 off = r->m.stored - r->left;
        r->left -= n;
        if (r->cb.data && !r->cb.data(&r->m, off, p, n, r->data, error)) {
            r->st = ST_FAILED;
            return FALSE;
        }
        return TRUE;
    }
    while (n) {
        QubesTarExtent *x = &g_array_index(r->m.sparse, QubesTarExtent, r->ext);
        guint64 room = x->length - r->in_ext;
        if (!room) {
            r->ext++;
            r->in_ext = 0;
            continue;
        }
        gsize k = (gsize)MIN((guint64)n, room);
        if (r->cb.data &&
            !r->cb.data(&r->m, x->offset + r->in_ext, p, k, r->data, error)) {
            r->st = ST_FAILED;
            return FALSE;
        }
        r->in_ext += k;
        r->left -= k;
        p += k;
        n -= k;
    }
    return TRUE;
}

gboolean qubes_tar_reader_feed(QubesTarReader *r, const guint8 *buf, gsize len,
                               GError **error)
{
    while (len) {
        switch (r->st) {
        case ST_FAILED:
            return fail(r, error, "read after an error");
        case ST_PAD: {
            gsize k = (gsize)MIN((guint64)len, r->pad);
            r->pad -= k;
            buf += k;
            len -= k;
            if (!r->pad)
                r->st = ST_HEADER;
            break;
        }
        case ST_HEADER:
        case ST_SPARSE_EXT: {
            gsize k = MIN(len, (gsize)BLOCK - r->have);
            memcpy(r->block + r->have, buf, k);
            r->have += k;
            buf += k;
            len -= k;
            if (r->have < BLOCK)
                break;
            r->have = 0;
            if (!(r->st == ST_HEADER ? header(r, error) : sparse_ext(r, error)))
                return FALSE;
            break;
        }
        case ST_META: {
            gsize k = (gsize)MIN((guint64)len, r->left);
            g_string_append_len(r->meta, (const char *)buf, (gssize)k);
            r->left -= k;
            buf += k;
            len -= k;
            if (!r->left) {
                if (!meta_done(r, error))
                    return FALSE;
                r->st = r->pad ? ST_PAD : ST_HEADER;
            }
            break;
        }
        case ST_DATA: {
            gsize k = (gsize)MIN((guint64)len, r->left);
            if (!give(r, buf, k, error))
                return FALSE;
            buf += k;
            len -= k;
            if (!r->left && !end_member(r, error))
                return FALSE;
            break;
        }
        }
    }
    return TRUE;
}

gboolean qubes_tar_reader_finish(QubesTarReader *r, GError **error)
{
    if (r->st == ST_FAILED)
        return fail(r, error, "read after an error");
    if (r->in_member)
        return fail(r, error, "the archive ends inside its %s",
                    r->st == ST_DATA ? "data" : "sparse map");
    if (r->st != ST_HEADER || r->next_name || r->next_link || r->next_size_set)
        return fail(r, error, "the archive ends inside %s",
                    r->st == ST_PAD ? "a member's padding"
                                    : "an extended header");
    if (r->have && !(r->zeros && all_zero(r->block, r->have)))
        return fail(r, error, "the archive ends inside a header");
    return TRUE;
}

guint qubes_tar_reader_members(QubesTarReader *r)
{
    return r->members;
}

QubesTarReader *qubes_tar_reader_new(const QubesTarCallbacks *callbacks,
                                     gpointer data)
{
    QubesTarReader *r = g_new0(QubesTarReader, 1);
    r->cb = *callbacks;
    r->data = data;
    r->meta = g_string_new(NULL);
    return r;
}

void qubes_tar_reader_free(QubesTarReader *r)
{
    if (!r)
        return;
    member_clear(&r->m);
    g_string_free(r->meta, TRUE);
    g_free(r->next_name);
    g_free(r->next_link);
    g_free(r);
}

gboolean qubes_tar_header_peek(const guint8 *block, gboolean *zero,
                               char name[101], char *type, guint64 *size)
{
    *zero = all_zero(block, BLOCK);
    if (*zero)
        return TRUE;
    if ((memcmp(block + 257, "ustar  \0", 8) != 0 && memcmp(block + 257,
                                                            "ustar\0"
                                                            "00",
                                                            8) != 0) ||
        !checksum_ok(block) || !number(block + 124, 12, size))
        return FALSE;
    memcpy(name, block, 100);
    name[100] = '\0';
    *type = (char)block[156];
    return TRUE;
}
