/* qube-features.h: a qube's features and tags (qubes/features.py Features,
 * qubes/vm/__init__.py Tags), with their events.
 *
 * Features are strings by name in insertion order (a boolean False is
 * stored as ""); setting one fires domain-feature-pre-set:NAME (which
 * can veto) and domain-feature-set:NAME, removing one
 * domain-feature-pre-delete:NAME and domain-feature-delete:NAME, with
 * master's arguments. Tags are a set of names; adding and removing fire
 * domain-tag-add:TAG and domain-tag-delete:TAG.
 */
#pragma once

#include "model.h"

G_BEGIN_DECLS

const char *qubes_domain_feature_get(QubesDomain *dom, const char *name);
gboolean qubes_domain_feature_set(QubesDomain *dom, const char *name,
                                  const char *value, GError **error);
/* QubesFeatureNotFoundError when it is not set. */
gboolean qubes_domain_feature_remove(QubesDomain *dom, const char *name,
                                     GError **error);
/* Feature lookups along the template, the netvm and dom0; NULL with
 * QubesFeatureNotFoundError when none has it. */
const char *qubes_domain_feature_check(QubesDomain *dom, const char *name,
                                       gboolean template, gboolean netvm,
                                       gboolean adminvm, GError **error);

/* Tags: ASCII letters, digits, '_' and '-'. */
gboolean qubes_tag_is_valid(const char *untrusted_tag);
gboolean qubes_domain_tag_add(QubesDomain *dom, const char *tag,
                              GError **error);
gboolean qubes_domain_tag_remove(QubesDomain *dom, const char *tag,
                                 GError **error);
/* Sorted (new array of borrowed strings). */
GPtrArray *qubes_domain_tags(QubesDomain *dom);

G_END_DECLS
