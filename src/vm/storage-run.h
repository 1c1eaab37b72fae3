/* storage-run.h: a qube's volumes verified, started or stopped on a
 * worker (storage-run.c), every volume at once, each on its own thread;
 * the first error wins, prefixed with the volume's name. A start that
 * fails stops the volumes that did start. */
#pragma once

#include "runtime-state.h"

G_BEGIN_DECLS

typedef enum { ST_VERIFY, ST_START, ST_STOP } StorageKind;

/* A boolean task (qubes_runtime_op_finish). */
void rt_run_storage(QubesDomain *dom, StorageKind kind, GAsyncReadyCallback cb,
                    gpointer data);

G_END_DECLS
