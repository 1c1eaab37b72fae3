/* orphans.h: qube folders that qubes.xml does not name, set aside at
 * start (the reasons and the durability argument: orphans.c).
 */
#pragma once

#include "app.h"

G_BEGIN_DECLS

/* Moves each folder base/PREFIX/NAME that no domain is named NAME for
 * to base/PREFIX/.orphaned/NAME@TIME, logged; qubesd does it once, at
 * start, before it serves anything. Returns how many. */
guint qubes_app_set_aside_orphans(QubesApp *app);

G_END_DECLS
