/* import.h: the two halves of the volume import service, as a program in
 * dom0 runs them (the admin.vm.volume.Import service programs, and
 * qvm-backup-restore):
 *
 *   internal.vm.volume.ImportBegin  qubesd makes a fresh, sparse image of
 *                                   the size asked for and says where;
 *   ...                             the caller writes the data into it
 *                                   (only the data: holes stay holes),
 *                                   and flushes it;
 *   internal.vm.volume.ImportEnd    "ok" commits it like a stop (the old
 *                                   image becomes a revision), "fail"
 *                                   drops it.
 *
 * The image is opened with qfile_openat_file: refused if something else
 * (a FIFO, a hard link to a file elsewhere) took its name meanwhile.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Asks for a fresh image of @volume of @vm (@size_text: bytes, "" for
 * the volume's size) on behalf of @src. Returns its descriptor, open for
 * writing, and *@size; or -1 with @error (qubesd's refusal: *@refusal,
 * when given, gets its answer bytes; the import then never began). When
 * the image cannot be opened after qubesd made it, *@started is TRUE:
 * the caller still ends the import (as failed). */
int qa_import_begin(const char *src, const char *vm, const char *volume,
                    const char *size_text, guint64 *size, GBytes **refusal,
                    gboolean *started, GError **error);

/* Ends the import: @why NULL commits, else it fails with @why. Returns
 * qubesd's answer bytes ("0\0" on success), or NULL with @error when
 * qubesd could not be asked. */
GBytes *qa_import_end(const char *src, const char *vm, const char *volume,
                      const char *why, GError **error);

G_END_DECLS
