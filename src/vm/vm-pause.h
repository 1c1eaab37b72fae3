/* vm-pause.h: pause, unpause, suspend and resume (vm-pause.c): one
 * libvirt call each, then the qube's state, with the reference's
 * refusals (QubesVMNotRunningError, QubesVMNotPausedError). */
#pragma once

#include "app.h"

G_BEGIN_DECLS

/* Async; finish with qubes_runtime_op_finish(). Without PCI devices the
 * reference's suspend is a pause; resume of a suspended qube wakes it,
 * else unpauses it. */
void qubes_runtime_pause(QubesRuntime *rt, QubesDomain *dom,
                         GAsyncReadyCallback cb, gpointer data);
void qubes_runtime_unpause(QubesRuntime *rt, QubesDomain *dom,
                           GAsyncReadyCallback cb, gpointer data);
void qubes_runtime_suspend(QubesRuntime *rt, QubesDomain *dom,
                           GAsyncReadyCallback cb, gpointer data);
void qubes_runtime_resume(QubesRuntime *rt, QubesDomain *dom,
                          GAsyncReadyCallback cb, gpointer data);

G_END_DECLS
