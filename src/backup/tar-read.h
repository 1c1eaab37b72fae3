/* tar-read.h: a streaming reader of the tar archives inside Qubes
 * backups, for untrusted input.
 *
 * Each file in a Qubes backup (a volume image, firewall.xml, notes.txt,
 * qubes.xml, dom0's home) is one tar stream made by GNU tar with
 * --sparse: GNU format headers, a sparse image as an old-GNU sparse member
 * (typeflag 'S', its map in the header and in extension blocks, holes not
 * stored), long names as 'L' members. This reads that, and POSIX ustar
 * and pax headers (path, linkpath, size), pushed in pieces of any size,
 * calling back for each member and for its data at their offsets in the
 * file (so a sparse image is written with its holes kept, never
 * expanded). Nothing is written by the reader itself.
 *
 * Everything in the stream is untrusted: header checksums are checked,
 * numbers parsed strictly (octal, or GNU's base-256) and bounded, a
 * sparse map must be ascending, within the file's size and add up to the
 * data stored, names are bounded (and NUL-free) and handed to the caller
 * raw, to validate: the reader does not judge paths, links or types, it
 * reports them (QubesTarMember.type). A stream cut inside a member is an
 * error at qubes_tar_reader_finish(). Errors are QubesException naming
 * the member and what is wrong.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum {
    QUBES_TAR_FILE,     /* a regular file, sparse or not */
    QUBES_TAR_DIR,      /* a folder */
    QUBES_TAR_SYMLINK,  /* a symbolic link (link: its target) */
    QUBES_TAR_HARDLINK, /* a hard link (link: the member it names) */
    QUBES_TAR_OTHER,    /* a device, a FIFO, ...: typeflag says which */
} QubesTarType;

typedef struct {
    guint64 offset; /* in the file */
    guint64 length;
} QubesTarExtent;

typedef struct {
    char *name; /* as stored, untrusted */
    char *link; /* for links, else NULL */
    QubesTarType type;
    char typeflag;
    guint32 mode;
    gint64 mtime;
    guint64 size;   /* the file's size (a sparse file's whole size) */
    guint64 stored; /* data bytes stored in the archive */
    GArray *sparse; /* QubesTarExtent, ascending; NULL: not sparse */
} QubesTarMember;

/* At most this many extents in one sparse member's map. */
#define QUBES_TAR_MAX_EXTENTS (1u << 20)
/* At most this long a name or link target. */
#define QUBES_TAR_MAX_NAME 4096

typedef struct {
    /* A member starts (its data follows). FALSE with @error stops. */
    gboolean (*begin)(const QubesTarMember *m, gpointer data, GError **error);
    /* @len bytes of its data at @offset in the file; for a sparse file
     * the holes between are not given: they are zeros. */
    gboolean (*data)(const QubesTarMember *m, guint64 offset, const guint8 *buf,
                     gsize len, gpointer data, GError **error);
    /* Its data ended. */
    gboolean (*end)(const QubesTarMember *m, gpointer data, GError **error);
} QubesTarCallbacks;

typedef struct _QubesTarReader QubesTarReader;

QubesTarReader *qubes_tar_reader_new(const QubesTarCallbacks *callbacks,
                                     gpointer data);
/* Reads @len more bytes of the stream. FALSE with @error (the reader is
 * then done: free it). */
gboolean qubes_tar_reader_feed(QubesTarReader *r, const guint8 *buf, gsize len,
                               GError **error);
/* The stream ended: FALSE when it ended inside a member or a header. */
gboolean qubes_tar_reader_finish(QubesTarReader *r, GError **error);
/* How many members were read whole. */
guint qubes_tar_reader_members(QubesTarReader *r);
void qubes_tar_reader_free(QubesTarReader *r);

/* One 512-byte header block looked at alone, for a caller that scans an
 * archive ahead (a hint, checked again when the reader comes to it):
 * *@zero for an end block; else its first name field, type and size.
 * FALSE when it is not a valid header. */
gboolean qubes_tar_header_peek(const guint8 *block, gboolean *zero,
                               char name[101], char *type, guint64 *size);

G_END_DECLS
