/* domain.h: a domain (qubes/vm/{adminvm,qubesvm,appvm,templatevm,
 * standalonevm,dispvm}.py): the classes and their property tables (the
 * network's from net.h among them), a domain's life as an object, its
 * power state as the model keeps it, its folder's place, and its
 * volumes' configuration. Making the volumes on disk is blocking work
 * for a worker, on references taken here; the domain itself stays on
 * the main thread.
 */
#pragma once

#include "model.h"

G_BEGIN_DECLS

/* The classes, NULL-terminated, in the order admin.vmclass.List gives. */
const QubesDomainClass *const *qubes_domain_classes(void);
const QubesDomainClass *qubes_domain_class_lookup(const char *name);

/* For app.c, which alone makes domains and puts them in the app:
 * a bare domain object (properties empty, events disabled), one
 * <volume> of qubes.xml loaded into it, and a new domain's volumes
 * configured (@pool, or per volume in @pools: name -> pool name). */
QubesDomain *qubes_domain_new_internal(QubesApp *app,
                                       const QubesDomainClass *klass, guint qid,
                                       const char *name);
gboolean qubes_domain_load_volume_internal(QubesDomain *dom, const QxAttrs *c,
                                           GError **error);
gboolean qubes_domain_config_volumes_internal(QubesDomain *dom,
                                              const char *pool,
                                              GHashTable *pools,
                                              GError **error);

QubesDomain *qubes_domain_ref(QubesDomain *dom);
void qubes_domain_unref(QubesDomain *dom);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QubesDomain, qubes_domain_unref)

gboolean qubes_domain_is_halted(QubesDomain *dom);
/* Master's is_running(): libvirt has the domain (any state but Halted,
 * Crashed and Dying); dom0 always. */
gboolean qubes_domain_is_running(QubesDomain *dom);
/* For g_ptr_array_sort of QubesDomain*: dom0 first, then by name
 * (QubesVM.__lt__, the order of master's domain lists). */
gint qubes_domain_cmp(gconstpointer a, gconstpointer b);
const char *qubes_domain_power_state(QubesDomain *dom); /* "Halted", ... */
/* Folder of the domain's files: base/appvms/NAME (NULL for dom0). */
char *qubes_domain_dir_path(QubesDomain *dom);

/* Whether the qube is a disposable template (template_for_dispvms). */
gboolean qubes_domain_is_dvm_template(QubesDomain *d);
/* The setter of default_dispvm and management_dispvm: none, or a
 * disposable template. */
char *qubes_setter_disposable_template(QubesApp *app, QubesPropHolder *holder,
                                       const QubesPropDef *def,
                                       const char *value, GError **error);
/* Refuses, as a value of @def, a qube that does not provide network. */
gboolean qubes_prop_vm_provides_network(QubesPropHolder *holder,
                                        const QubesPropDef *def,
                                        QubesDomain *vm, GError **error);

/* Volumes: names in class order (new array of borrowed strings). */
GPtrArray *qubes_domain_volume_names(QubesDomain *dom);
QubesVolume *qubes_domain_get_volume(QubesDomain *dom, const char *name);
/* After @dom's template changed: each snapshot volume is taken from the
 * new template's volume of the same name (its source, and its pool when
 * that lives in another), as the reference's
 * template_changed_update_storage; the DispVMs based on @dom follow. */
void qubes_domain_follow_template(QubesDomain *dom);
/* The pool name a volume is in. */
const char *qubes_domain_volume_pool(QubesDomain *dom, const char *name);
/* The <volume> attributes qubes.xml stores for the volume at @index of
 * dom->volumes, in the reference's order (new). */
QxAttrs *qubes_domain_volume_attrs(QubesDomain *dom, guint index);
/* The domain's volumes (new array of new references), for a worker. */
GPtrArray *qubes_domain_volume_refs(QubesDomain *dom);

/* Creates every volume on disk and the domain's folder (which may exist
 * already). Blocking: call from a worker with @volumes from
 * qubes_domain_volume_refs(). On failure nothing created stays. */
gboolean qubes_storage_create(GPtrArray *volumes, const char *dir_path,
                              GError **error);
/* Removes the volumes and the folder (best effort: all are tried, the
 * first error is returned). Blocking. */
gboolean qubes_storage_remove(GPtrArray *volumes, const char *dir_path,
                              GError **error);
/* Copies each volume of @src into the same-named one of @dst. Blocking. */
gboolean qubes_storage_clone(GPtrArray *dst, GPtrArray *src, GError **error);

G_END_DECLS
