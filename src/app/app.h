/* app.h: the Qubes app (qubes/app.py Qubes): global properties, labels,
 * pools and the domain collection, loaded from and saved to qubes.xml;
 * the model's invariant checked after each change. The model's types are
 * in model.h, which lists the rooms below this one; this header includes
 * them all, so a caller outside src/app includes only app.h.
 *
 * Semantics follow qubes/app.py and the qubes/vm modules of qubes-core-admin:
 * the same property names, types, defaults and checks, the same events
 * (property-*, domain-feature-*, domain-tag-*, domain-add, domain-delete,
 * domain-pre-delete) with the same arguments.
 */
#pragma once

#include "model.h"

#include "domain-devices.h"
#include "domain.h"
#include "qube-features.h"
#include "firewall-file.h"
#include "lookup.h"
#include "net.h"
#include "preload.h"
#include "qube-files.h"
#include "qube-folder.h"
#include "qube-users.h"

G_BEGIN_DECLS

/* ---- the app ---- */

/* Opens @base_dir/qubes.xml, or makes a new system when it does not
 * exist (the eight labels, dom0, the pools "varlibqubes" and
 * "linux-kernel") and saves it. @xml_path NULL means the default place. */
QubesApp *qubes_app_open(const char *base_dir, const char *xml_path,
                         GError **error);
void qubes_app_free(QubesApp *app);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QubesApp, qubes_app_free)

/* The model's invariant (app.c): every explicitly set value passes its
 * setter, and the network, defaults followed, has no loop and every
 * netvm provides network. Runs after each property change; a failure
 * undoes the change. */
gboolean qubes_app_check(QubesApp *app, GError **error);

/* Writes the model to qubes.xml, atomically and durably (qubesxml.h). */
gboolean qubes_app_save(QubesApp *app, GError **error);
/* Through app->save_async when the daemon set it, else at once. */
void qubes_app_save_then(QubesApp *app, void (*done)(gpointer, GError *),
                         gpointer data);
/* The model as a QubesXml (new). */
QubesXml *qubes_app_to_xml(QubesApp *app);

/* ---- labels (found with lookup.h) ---- */
/* A new label after the default ones; @color "0xRRGGBB". */
gboolean qubes_app_add_label(QubesApp *app, const char *name, const char *color,
                             GError **error);
gboolean qubes_app_remove_label(QubesApp *app, const char *name,
                                GError **error);

/* ---- pools (found with lookup.h) ---- */
/* Creates, sets up and registers a pool from string options. */
QubesPool *qubes_app_add_pool(QubesApp *app, const char *driver,
                              const char *name, GHashTable *options,
                              GError **error);
/* Refused while a domain's volume lives in it (QubesPoolInUseError). */
gboolean qubes_app_remove_pool(QubesApp *app, const char *name, GError **error);

/* ---- domains (found with lookup.h) ---- */
/* Whether a domain of @app is named @name: one it serves, or one kept
 * verbatim (lost_domains). */
gboolean qubes_app_name_is_held(QubesApp *app, const char *name);

/* Adds a new domain of @klass named @name (for a DispVM, NULL names it
 * dispDISPID as the reference's) with @label, and for a
 * template-based class @template (NULL: the default), with volumes
 * configured (@pool, or per volume in @pools: name -> pool name, may be
 * NULL) but not created on disk. Fires domain-add. */
QubesDomain *qubes_app_add_new_domain(QubesApp *app,
                                      const QubesDomainClass *klass,
                                      const char *name, const char *label,
                                      const char *template, const char *pool,
                                      GHashTable *pools, GError **error);
/* Takes @dom out of the app (domain-pre-delete can veto: a domain in use
 * as a template, netvm or default is refused). The object lives on while
 * referenced. Fires domain-delete. */
gboolean qubes_app_remove_domain(QubesApp *app, QubesDomain *dom,
                                 GError **error);

G_END_DECLS
