/* preload-run.h: preloaded disposables, run (preload-run.c). */
#pragma once

#include "app.h"
#include "runtime-config.h"

G_BEGIN_DECLS

/* Made and freed with the runtime (qubes_runtime_preload()). */
/* @avail_file: qmemmand's available-memory file, which limits how many
 * are made (NULL: no limit). */
QubesPreload *qubes_preload_new(QubesRuntime *rt, QubesApp *app,
                                const char *avail_file);
void qubes_preload_free(QubesPreload *p);
/* Once the runtime knows which qubes run, when qubesd starts: the
 * interrupted preloads go, the lists are filled. */
void qubes_preload_startup(QubesPreload *p);
/* domain-preload-dispvm-start on @appvm with @reason, then its list is
 * brought to its maximum (the excess removed, the gap filled). */
void qubes_preload_start(QubesPreload *p, QubesDomain *appvm,
                         const char *reason);
/* The host's suspend (internal.SuspendPre and SuspendPost, as master's
 * get_preload_templates): every disposable template that preloads loses
 * all its preloaded DispVMs, logged with @reason; after the resume each
 * gets domain-preload-dispvm-start with @reason and is filled again. */
void qubes_preload_remove_all(QubesPreload *p, const char *reason);
void qubes_preload_start_all(QubesPreload *p, const char *reason);
/* A preloaded DispVM of @appvm for admin.vm.CreateDisposable: taken off
 * the list, unpaused, the user's. Finish gives it (a reference), or
 * NULL when none is ready: the caller makes a new one. */
void qubes_preload_request(QubesPreload *p, QubesDomain *appvm,
                           GAsyncReadyCallback cb, gpointer data);
QubesDomain *qubes_preload_request_finish(GAsyncResult *res, GError **error);

G_END_DECLS
