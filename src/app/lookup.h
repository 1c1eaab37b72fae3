/* lookup.h: finding things in the model: a qube by name or qid, a label,
 * a pool, the default pool of a volume, an installed kernel, a property's
 * value as text, and the qube a property names (a template, a netvm, the
 * value of a qube-valued property being set).
 *
 * Reads only: nothing here changes the model or fires an event. A
 * property's value is read through the property system, so a default
 * is followed (its function lives in the room that defines the
 * property). Semantics: qubes/app.py (get_label, get_pool, domains[...]),
 * qubes/vm/__init__.py (VMProperty).
 */
#pragma once

#include "model.h"

G_BEGIN_DECLS

/* By name, or by "label-N" / N. NULL with QubesLabelNotFoundError. */
const QxLabel *qubes_app_get_label(QubesApp *app, const char *name,
                                   GError **error);
/* NULL with "Unknown storage pool NAME". */
QubesPool *qubes_app_get_pool(QubesApp *app, const char *name, GError **error);
/* The name of the pool new volumes named @volume go to by default. */
char *qubes_app_default_pool(QubesApp *app, const char *volume);

/* NULL with QubesVMNotFoundError. */
QubesDomain *qubes_app_get_domain(QubesApp *app, const char *name,
                                  GError **error);
QubesDomain *qubes_app_get_domain_by_qid(QubesApp *app, guint qid);
/* Where @qid is, or would go, in app->domains (kept sorted by qid). */
guint qubes_app_qid_position(QubesApp *app, guint qid);

/* Whether base/vm-kernels/@kernel holds a vmlinuz (QubesPropertyValueError
 * "Kernel 'x' not installed" otherwise). */
gboolean qubes_app_kernel_installed(QubesApp *app, const char *kernel,
                                    GError **error);
/* The setter of `kernel` and `default_kernel`: a name without '/', of
 * an installed kernel (not checked while loading), or "" for none. */
char *qubes_app_setter_kernel(QubesApp *app, QubesPropHolder *holder,
                              const QubesPropDef *def, const char *value,
                              GError **error);

/* The value of the qube's property @name as text (new), NULL when it
 * has none. */
char *qubes_domain_prop(QubesDomain *dom, const char *name);
/* A boolean property of @d is "True". */
gboolean qubes_domain_flag(QubesDomain *d, const char *prop);
/* The template (NULL when the class has none or it is unset). */
QubesDomain *qubes_domain_get_template(QubesDomain *dom);
/* The netvm the domain uses, its default followed (NULL: none). */
QubesDomain *qubes_domain_get_netvm(QubesDomain *dom);

/* For the setters of qube-valued properties: the existing qube @value
 * names (QubesValueError for a bad name, QubesVMNotFoundError, or a
 * QubesPropertyValueError for "", which callers take as none first). */
QubesDomain *qubes_prop_vm(QubesApp *app, QubesPropHolder *holder,
                           const QubesPropDef *def, const char *value,
                           GError **error);

G_END_DECLS
