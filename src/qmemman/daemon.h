/* daemon.h: qmemmand's state and decisions, apart from its sockets and
 * threads (qmemmand.c): the domains the hypervisor shows and what they
 * reported (a watcher round), the clients' requests and their
 * reservation, and the live state for qvm-memory or as a qmemman-sim
 * case. Every call takes the daemon's lock.
 */
#pragma once

#include "hv.h"

G_BEGIN_DECLS

typedef struct _QmDaemon QmDaemon;

/* Over @hv (which it does not take). @avail_path: where what is left to
 * give goes after each balance (NULL: nowhere); @inhibit_path: no
 * balancing while it exists (NULL: none). */
QmDaemon *qm_daemon_new(QmHv *hv, const QmConfig *cfg, const char *avail_path,
                        const char *inhibit_path);
void qm_daemon_free(QmDaemon *d);
QmSystem *qm_daemon_system(QmDaemon *d);

/* One watcher round: the domains that appeared or went (a balance), then
 * each one's reported use (a balance on a change). Skipped while a
 * client holds the reservation. */
void qm_daemon_watch(QmDaemon *d);

/* A client's request, @len bytes as received (not only whitespace):
 * waits until no other client holds the reservation, takes it and
 * answers "OK\n", "FAIL\n" or "INVALID_ARG\n" (the reference's
 * protocol: "N" bytes, or "ID:BYTES ..."). The client holds the
 * reservation until qm_daemon_release(). */
const char *qm_daemon_request(QmDaemon *d, const char *untrusted, gsize len);
void qm_daemon_release(QmDaemon *d);

/* The live state as JSON, one line: what qvm-memory shows, or with
 * @as_case a qmemman-sim case ("op": "balance"). */
char *qm_daemon_dump(QmDaemon *d, gboolean as_case);

G_END_DECLS
