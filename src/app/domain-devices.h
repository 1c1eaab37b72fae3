/* domain-devices.h: the devices assigned to a qube (devices.h's
 * QubesDevAssignment, in dom->assignments) and how qubes.xml keeps them
 * (its <devices> blocks; the forms read are in domain-devices.c).
 */
#pragma once

#include "model.h"

G_BEGIN_DECLS

/* The assignments of class @devclass (borrowed pointers, in order). */
GPtrArray *qubes_domain_assignments(QubesDomain *dom, const char *devclass);
/* Whether @dom has a device of @devclass assigned. */
gboolean qubes_domain_has_assignment(QubesDomain *dom, const char *devclass);
/* The assignments of other qubes whose backend is @dom: "PORT, PORT"
 * (new), NULL when none. */
char *qubes_domain_provided_assignments(QubesDomain *dom);
/* <devices> of qubes.xml into assignments (before the domain's
 * properties: a setter may look at them). */
void qubes_domain_load_devices(QubesDomain *dom, const GPtrArray *qx_devices);
/* Once every domain is loaded: an assignment whose backend qube does
 * not exist is logged and dropped. */
void qubes_app_drop_unknown_backends(QubesApp *app);
/* And back (QxDevice, appended to @out). */
void qubes_domain_save_devices(QubesDomain *dom, GPtrArray *out);

G_END_DECLS
