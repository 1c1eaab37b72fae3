/* feature-checks.h: the checks master's extensions make of a feature as
 * it is set (qubes/ext/vm_config.py and custom_persist.py), made here
 * before the feature changes (a veto of domain-feature-pre-set:NAME), so
 * that a refused value leaves nothing behind. Master checks after the
 * value is in (its handlers run on domain-feature-set), so that a
 * refused value stays in memory until the next restart; the words and
 * exception types are master's.
 *
 *   vm-config.NAME      NAME: 1 to 52 bytes (master's message says 46),
 *                       starting with an ASCII letter (it becomes the
 *                       QubesDB key /vm-config/NAME)
 *   custom-persist.KEY  KEY: 1 to 54 bytes (/persist/KEY within QubesDB's
 *                       63); the value an absolute path, or
 *                       "file|dir:USER:GROUP:MODE:/PATH" with MODE octal
 *                       up to 7777
 *   service.NAME        NAME: not empty, no slash, not "." or "..", at
 *                       most 48 bytes unless app-dispvm.* (services.py)
 *
 * And the services extension's rule: service.meminfo-writer, once set,
 * becomes maxmem (its default when true, 0 when false) and goes.
 */
#pragma once

#include "model.h"

G_BEGIN_DECLS

/* custom_persist.py _check_key and _check_value of @feature
 * (custom-persist.KEY) set to @value: FALSE with QubesValueError. */
gboolean qubes_feature_check_custom_persist(const char *feature,
                                            const char *value, GError **error);

/* Registers the checks (app.c calls it once, when it makes the app). */
void qubes_feature_checks_register(QubesApp *app);

G_END_DECLS
