/* firewall-file.h: a qube's firewall.xml (read, written durably through
 * qube-folder.h) and the expiry of its rules (the reference's
 * Firewall.save() and _expire_rules()). The rules themselves, parsed
 * and printed: firewall.h.
 */
#pragma once

#include "model.h"

G_BEGIN_DECLS

#define QUBES_FIREWALL_FILE "firewall.xml"

/* The qube's firewall rules (QubesFwRule) from firewall.xml; without
 * one, the reference's default (accept everything). Blocking. */
GPtrArray *qubes_domain_read_firewall(QubesDomain *dom, GError **error);
/* Writes them to firewall.xml (expired rules left out). Blocking. */
gboolean qubes_domain_write_firewall(QubesDomain *dom, GPtrArray *rules,
                                     GError **error);
/* The earliest expire of @rules (epoch seconds), 0 when none expires. */
gint64 qubes_fw_nearest_expire(GPtrArray *rules);
/* Fires firewall-changed on @dom (a handler's failure is logged). */
void qubes_domain_fire_firewall_changed(QubesDomain *dom);
/* After firewall.xml was written with @rules: firewall-changed, and the
 * expiry timer set to their nearest expire. */
void qubes_domain_firewall_saved(QubesDomain *dom, GPtrArray *rules);
/* Sets @dom's expiry timer to @next (epoch seconds; 0: none): then the
 * expired rules are dropped from firewall.xml and firewall-changed
 * fires. */
void qubes_domain_firewall_watch(QubesDomain *dom, gint64 next);
/* Cancels it (a removed qube, the app's end). */
void qubes_domain_firewall_unwatch(QubesDomain *dom);
/* Reads every qube's firewall.xml on a worker and sets their timers. */
void qubes_app_firewall_watch(QubesApp *app);

G_END_DECLS
