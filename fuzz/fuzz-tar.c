/* fuzz-tar: the tar reader of backups (src/backup/tar-read.h) on untrusted
 * streams fed in pieces (the first byte chooses their size). Properties:
 * no crash or sanitizer report; every member begun is ended before the
 * next begins; data comes at ascending offsets within the member's size,
 * in total exactly the bytes it stores; only a file holds data; names
 * and links are NUL-free and at most QUBES_TAR_MAX_NAME bytes. */
#include "tar-read.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    gboolean open;
    guint64 next; /* the lowest offset the next data may have */
    guint64 given;
} Check;

static gboolean on_begin(const QubesTarMember *m, gpointer data, GError **e)
{
    Check *c = data;
    if (c->open || !m->name || strlen(m->name) > QUBES_TAR_MAX_NAME ||
        (m->link && strlen(m->link) > QUBES_TAR_MAX_NAME) ||
        (m->type != QUBES_TAR_FILE && m->stored))
        abort();
    *c = (Check){.open = TRUE};
    return TRUE;
}

static gboolean on_data(const QubesTarMember *m, guint64 offset,
                        const guint8 *buf, gsize len, gpointer data, GError **e)
{
    Check *c = data;
    if (!c->open || m->type != QUBES_TAR_FILE || offset < c->next ||
        offset > m->size || len > m->size - offset || !len)
        abort();
    c->next = offset + len;
    c->given += len;
    return TRUE;
}

static gboolean on_end(const QubesTarMember *m, gpointer data, GError **e)
{
    Check *c = data;
    if (!c->open || c->given != m->stored)
        abort();
    c->open = FALSE;
    return TRUE;
}

static const QubesTarCallbacks callbacks = {on_begin, on_data, on_end};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!size)
        return 0;
    gsize piece = 1 + (gsize)data[0] * 37;
    data++;
    size--;
    Check c = {0};
    QubesTarReader *r = qubes_tar_reader_new(&callbacks, &c);
    gboolean ok = TRUE;
    for (gsize off = 0; ok && off < size; off += piece)
        ok = qubes_tar_reader_feed(r, data + off, MIN(piece, size - off), NULL);
    if (ok && qubes_tar_reader_finish(r, NULL) && c.open)
        abort(); /* a whole archive with a member left open */
    qubes_tar_reader_free(r);
    return 0;
}
