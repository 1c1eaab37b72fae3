/* qube-users.h: what a qube owes the qubes that use it: a network, GUI
 * or audio qube is not shut down while running qubes use it, and a GUI
 * qube's keyboard layout reaches the qubes that follow it
 * (qube-users.c).
 *
 * Semantics: domain-pre-shutdown of the network mixin
 * (qubes/vm/mix/net.py: QubesVMInUseError "There are other VMs
 * connected to this VM: A, B"), of ext/audio.py (QubesVMInUseError
 * "There are running VMs using this VM as AudioVM: A, B") and of
 * ext/gui.py (QubesVMError "There are running VMs using this VM as
 * GuiVM: A, B"), in that order, each skipped by a forced shutdown; the
 * running preloaded disposables do not count for the first two, as
 * there. ext/gui.py's property-set:keyboard_layout: a changed layout
 * fires property-reset:keyboard_layout on every qube whose guivm it is
 * and whose own layout is the default (which follows the GUI qube's).
 */
#pragma once

#include "model.h"

G_BEGIN_DECLS

/* The handlers (app.c calls it once, when it makes the app). */
void qubes_qube_users_register(QubesApp *app);

G_END_DECLS
