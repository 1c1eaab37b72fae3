/* policy.h: the qrexec policy, as far as the Admin API consults it.
 *
 * When a qube other than dom0 calls admin.vm.List or admin.Events on
 * dom0, the reference (qubes/ext/admin.py) shows it only the qubes the
 * qrexec policy would let it call the same service on: it evaluates, for
 * each qube (or event subject), the request "SERVICE +ARG SOURCE TARGET"
 * and keeps it when the first matching rule says allow ("ask" counts as
 * no: the answer must not need a person).
 *
 * This reads the policy files of the current qrexec format (policy.d:
 * "*.policy" files in name order; lines "SERVICE ARGUMENT SOURCE TARGET
 * ACTION [OPTIONS]", "!include FILE", "!include-dir DIR",
 * "!include-service SERVICE ARGUMENT FILE" with "SOURCE TARGET ACTION"
 * lines). Sources and targets: a name, @anyvm, @adminvm, @tag:TAG,
 * @type:CLASS, @dispvm:NAME and @dispvm:@tag:TAG (a DispVM of that
 * template); for a target also @default and @dispvm. A line it cannot
 * read is logged and skipped (it can only deny more). Rules are read
 * when the policy is loaded; the files are untrusted text.
 */
#pragma once

#include <glib.h>

#include "app.h"

G_BEGIN_DECLS

typedef struct _QubesPolicy QubesPolicy;

/* Loads the policy in @dir (a missing folder is an empty policy: every
 * request denied). */
QubesPolicy *qubes_policy_load(const char *dir);
void qubes_policy_free(QubesPolicy *policy);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QubesPolicy, qubes_policy_free)

/* Whether @source may call @service with @arg ("+..." or "+") on
 * @target (a domain's name, "dom0", or "@adminvm"). */
gboolean qubes_policy_allows(QubesPolicy *policy, QubesApp *app,
                             const char *service, const char *arg,
                             QubesDomain *source, const char *target);

G_END_DECLS
