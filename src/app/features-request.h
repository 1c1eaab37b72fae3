/* features-request.h: what a qube asks to have recorded about itself
 * (qubes.FeaturesRequest, qubes.NotifyTools), handled as master's
 * extensions handle the features-request event, in their order:
 *
 *   core_features       os-distribution, os-distribution-like,
 *                       os-version (a digit, then digits . -), os-eol
 *                       (a real YYYY-MM-DD), qubes-agent-version (N.N),
 *                       the boot modes (boot-mode.*), anon-timezone
 *                       (only switched on); qrexec, gui and gui-emulated
 *                       only when the qube has no such feature yet,
 *                       qubes-firewall and vmexec freely ("1" or "0");
 *                       the first qrexec fires template-postinstall
 *   services            supported-service.* (and apparmor with
 *                       supported-service.apparmor)
 *   supported_features  supported-feature.*, then supported-rpc.*
 *   windows             os (Windows or Linux); a Windows qube with qrexec
 *                       gets rpc-clipboard, maxmem 0, qrexec_timeout 6000
 *                       and the defaults it lacks
 *
 * A template-based qube may only announce supported-rpc.* (its template
 * speaks for it); the rest is ignored with master's warning. Anything
 * not named above is ignored. A supported-* list that is announced
 * replaces the previous one; an empty one changes nothing.
 *
 * The values were checked against master's safe set where they entered
 * (src/api/misc.c). Features change in sorted order (master iterates
 * Python sets, whose order varies).
 */
#pragma once

#include "model.h"

G_BEGIN_DECLS

/* Handles @untrusted (name -> value) from @vm. FALSE with @error when a
 * change was refused (a feature's or a property's own check): what was
 * changed before it stays, as in master. */
gboolean qubes_features_request(QubesDomain *vm, GHashTable *untrusted,
                                GError **error);

G_END_DECLS
