/* qube-db.h: what a qube wrote in its QubesDB, as qubesd reads it for the
 * misc socket's methods (master's vm.untrusted_qdb): qubes.FeaturesRequest
 * reads the qube's /features-request/ entries, qubes.NotifyTools its
 * /qubes-tools/ ones.
 *
 * Here a qube's QubesDB is a folder: DIR/QUBE/ holds an entry /A/B as the
 * file A/B (DIR is qubesd's --qubesdb-dir; a bridge to the qube's
 * qubesdb-daemon writes it, the tests write it as a qube would). Every
 * entry is untrusted: the folders are opened below DIR without following
 * a link, an entry is a regular file of at most QUBES_QDB_MAX_VALUE bytes
 * (QubesDB's own limit), an entry name is a safe file name
 * (qfile_name_is_safe) of at most QUBES_QDB_MAX_NAME bytes, and a listing
 * takes at most QUBES_QDB_MAX_ENTRIES; past a limit the read fails and
 * nothing of it is used. The reads are made on the main thread: DIR is
 * in /run (a tmpfs), and a request reads at most 1024 files of 3 KiB.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define QUBES_QDB_MAX_VALUE 3072
#define QUBES_QDB_MAX_NAME 63
#define QUBES_QDB_MAX_ENTRIES 1024

/* The entries directly in @qube's folder @folder ("features-request"):
 * a new table of name (char*) -> value (GBytes, untrusted, maybe holding
 * NULs); an empty table when the qube wrote none. NULL with
 * @error (ProtocolError) when an entry breaks a limit or cannot be read. */
GHashTable *qubes_qdb_list(const char *qdb_dir, const char *qube,
                           const char *folder, GError **error);

G_END_DECLS
