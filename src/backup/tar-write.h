/* tar-write.h: writing the tar streams of a Qubes backup, as GNU tar
 * --sparse writes them (the format tar-read.h reads): GNU headers, a
 * file with holes as an old-GNU sparse member ('S', its map in the header
 * and in extension blocks, only its data stored), a name past 100 bytes
 * as a GNU long name ('L'). GNU tar, and so the Qubes client's restore,
 * extracts it with its holes.
 *
 * The writer produces bytes into a sink the caller gives (the
 * compressor, then the encryption of the chunk); it holds no file open
 * and reads nothing itself but the extents of a descriptor
 * (qubes_tar_extents). Member data is written by the caller between
 * _begin and _end: exactly the bytes of each extent, in order.
 */
#pragma once

#include <glib.h>

#include "tar-read.h"

G_BEGIN_DECLS

/* Takes @len bytes; FALSE with @error stops the writing. */
typedef gboolean (*QubesTarSink)(const guint8 *buf, gsize len, gpointer data,
                                 GError **error);

typedef struct {
    const char *name; /* the member's path (its bytes are kept as given) */
    guint32 mode;
    gint64 mtime;
    guint64 size;          /* the file's size */
    const GArray *extents; /* QubesTarExtent: its data; NULL: all of it */
    char type;             /* 0: a regular file; '5' a folder, '2' a
                              symbolic link (size 0, no extents) */
    const char *linkname;  /* a link's target */
} QubesTarFile;

/* The extents of data of @fd (SEEK_DATA/SEEK_HOLE) up to @size, as GNU tar
 * --sparse finds them: ascending, and, where the file ends in a hole or
 * has no data, a last extent of length 0 at @size. New array. */
GArray *qubes_tar_extents(int fd, guint64 size, GError **error);

/* The header (and long name and sparse blocks) of @f. The caller then
 * gives the data: the sum of the extents' lengths (or @f->size). */
gboolean qubes_tar_write_begin(QubesTarSink sink, gpointer data,
                               const QubesTarFile *f, GError **error);
/* The padding after @stored data bytes. */
gboolean qubes_tar_write_end(QubesTarSink sink, gpointer data, guint64 stored,
                             GError **error);
/* The end of the archive: two zero blocks. */
gboolean qubes_tar_write_finish(QubesTarSink sink, gpointer data,
                                GError **error);
/* The data bytes a member of @f stores. */
guint64 qubes_tar_stored(const QubesTarFile *f);

/* The whole member @name for the open file @fd (its size, mode and
 * mtime from fstat): header, the data of its extents read with pread,
 * padding; its holes are not read. */
gboolean qubes_tar_write_fd(QubesTarSink sink, gpointer data, int fd,
                            const char *name, GError **error);

G_END_DECLS
