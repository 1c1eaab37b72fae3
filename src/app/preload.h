/* preload.h: a disposable template's preloaded disposables, as far as
 * the model keeps them (qubes/vm/mix/dvmtemplate.py, dispvm.py): the
 * preload-dispvm* features and their checks, the list of preloaded
 * DispVMs in a template's preload-dispvm feature, and the is_preload
 * property that follows it. Starting and handing them out is the
 * runtime's (src/vm/preload-run.c).
 */
#pragma once

#include "model.h"

G_BEGIN_DECLS

/* The preload-dispvm* features checked as master checks them, and
 * property-reset:is_preload when a template's list changes (app.c calls
 * it once, when it makes the app). */
void qubes_preload_register_handlers(QubesApp *app);
/* "True" when @dispvm's template lists it in preload-dispvm (new
 * string). */
char *qubes_preload_is_preload(QubesDomain *dispvm);
/* A DispVM that goes leaves its template's preload-dispvm list
 * (dispvm.py _preload_cleanup). */
void qubes_preload_forget(QubesDomain *dispvm);
/* QubesValueError (master's words) unless @dvm, or a template of it, has
 * supported-rpc.qubes.WaitForRunningSystem, which preloading waits for. */
gboolean qubes_preload_check_supported(QubesDomain *dvm, GError **error);
/* get_feat_preload_max: dom0's preload-dispvm-max for the system's
 * default_dispvm when dom0 has one, else the qube's own (0: none). */
gint64 qubes_preload_max(QubesDomain *dvm);
/* Whether @dom's class can preload (master's DVMTemplateMixin: AppVM and
 * StandaloneVM). */
gboolean qubes_preload_class(QubesDomain *dom);
/* The system's default_dispvm, whose maximum dom0's preload-dispvm-max
 * sets when present (NULL: none). */
QubesDomain *qubes_preload_global_dvm(QubesApp *app);
/* Whether @dvm follows dom0's preload-dispvm-max (is_global_preload_set). */
gboolean qubes_preload_global_set(QubesDomain *dvm);
/* get_feat_preload_threshold: dom0's preload-dispvm-threshold in bytes
 * (MiB in the feature; 0 when unset). */
gint64 qubes_preload_threshold(QubesApp *app);
/* get_feat_preload: the names in @dvm's preload-dispvm (new, maybe
 * empty). */
GStrv qubes_preload_list(QubesDomain *dvm);
/* Sets preload-dispvm to @names (char*), through its checks. */
void qubes_preload_list_set(QubesDomain *dvm, GPtrArray *names);
/* remove_preload_from_list: @name leaves @dvm's list, logged with
 * @reason; nothing when it is not listed. */
void qubes_preload_list_remove(QubesDomain *dvm, const char *name,
                               const char *reason);

G_END_DECLS
