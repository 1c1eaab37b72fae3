/* autostart.h: the qubes whose autostart is True, started once per boot
 * (autostart.c).
 *
 * The first qubesd after a boot (a marker in /run, which a boot
 * empties), when the runtime first knows which qubes run, starts them
 * one after the other in qid order (a netvm is started first by its
 * client's start anyway); a failure is logged and the next goes on. The
 * marker is written when all were tried: a qubesd that dies in the
 * middle leaves it absent, and the next one starts those still halted.
 * On Xen, not before dom0 reported its memory use to qmemmand (up to a
 * minute; without qmemmand, no wait). */
#pragma once

#include "runtime-state.h"

G_BEGIN_DECLS

/* A GSourceFunc, with a reference of the runtime (rt_ref) as @data,
 * which it takes. */
gboolean rt_autostart_begin(gpointer data);

G_END_DECLS
