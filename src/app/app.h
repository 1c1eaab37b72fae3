/* app.h: the Qubes app model: global properties, labels, pools and
 * domains, loaded from and saved to qubes.xml.
 *
 * The app owns every object. All functions here run on the thread of the
 * main context (the events library is single-threaded); the storage work
 * of a domain's volumes can run elsewhere through the volume references
 * (QubesVolume is thread-safe and refcounted), never through the domain.
 *
 * Semantics follow qubes/app.py and the qubes/vm modules of qubes-core-admin:
 * the same property names, types, defaults and checks, the same events
 * (property-*, domain-feature-*, domain-tag-*, domain-add, domain-delete,
 * domain-pre-delete) with the same arguments.
 */
#pragma once

#include <glib.h>

#include "devices.h"
#include "events.h"
#include "property.h"
#include "qubesxml.h"
#include "storage.h"

G_BEGIN_DECLS

typedef struct _QubesApp QubesApp;
typedef struct _QubesDomain QubesDomain;
typedef struct _QubesDomainClass QubesDomainClass;

/* Qubes stops at 254 (qubes.config.max_qid); we allow the 16 bits that
 * the IP scheme 10.137.(qid>>8).(qid&255) can address. New qids are the
 * lowest unused ones, as in Qubes, so a system of fewer than 255 qubes has
 * the same qids and its qubes.xml stays loadable by Qubes. */
#define QUBES_MAX_QID 65535

/* A domain class: AdminVM, TemplateVM, AppVM, StandaloneVM, DispVM. */
struct _QubesDomainClass {
    const char *name;
    const char *const *chain; /* event classes, most specific first */
    const QubesPropDef *const *props;
    const char *dir_prefix; /* "appvms", "vm-templates", NULL for none */
    gboolean has_template;  /* template-based (AppVM, DispVM) */
};

/* The classes, NULL-terminated, in the order admin.vmclass.List gives. */
const QubesDomainClass *const *qubes_domain_classes(void);
const QubesDomainClass *qubes_domain_class_lookup(const char *name);

/* The reference's power states (QubesVM.get_power_state()). */
typedef enum {
    QUBES_POWER_HALTED,
    QUBES_POWER_TRANSIENT, /* created, not yet resumed */
    QUBES_POWER_RUNNING,
    QUBES_POWER_PAUSED,
    QUBES_POWER_SUSPENDED, /* S3 */
    QUBES_POWER_HALTING,   /* shutting down */
    QUBES_POWER_DYING,     /* gone from the hypervisor, storage stopping */
    QUBES_POWER_CRASHED,
} QubesPowerState;

typedef struct _QubesRuntime QubesRuntime;

/* One volume of a domain. Its configuration is kept once, typed, in the
 * storage object; qubes.xml's <volume> attributes are read into it at
 * load and written from it at save. */
typedef struct {
    QubesVolume *vol; /* referenced; a kernel volume is re-pointed when the
                         kernel changes */
    QxAttrs *unknown; /* attributes of <volume> we do not interpret,
                         written back verbatim */
} QubesDomainVolume;

struct _QubesDomain {
    QubesApp *app;
    const QubesDomainClass *klass;
    QubesEmitter emitter;
    QubesPropHolder props;
    guint qid;
    char *name;
    GPtrArray *features;        /* char*: name, value, ... in insertion order */
    GHashTable *tags;           /* set of char* */
    GPtrArray *volumes;         /* QubesDomainVolume*, in qubes.xml order */
    GPtrArray *lost_volumes;    /* QxAttrs of volumes that could not load */
    GPtrArray *extra;           /* verbatim XML of elements we do not read */
    GPtrArray *assignments;     /* QubesDevAssignment*: devices assigned to it
                                   (devices.h), every class, in order */
    QubesPowerState power;      /* kept by the runtime (src/vm); dom0 runs */
    gint64 start_time;          /* seconds since the epoch; 0 when halted */
    gint64 xid;                 /* the hypervisor's id while it runs, else -1 */
    gboolean removed;           /* taken out of the app, freed when unused */
    gboolean preload_requested; /* a preloaded DispVM being handed out
                                   (preload-run.c; not saved) */
    guint fw_timer;             /* the firewall's next expiry (firewall.c) */
    /* The qube's folder and what qubesd keeps in it (notes.c): a writer
     * holds files_lock for its whole write, and so does the removal,
     * which sets files_gone; after it every writer fails. Only the
     * creation makes the folder. */
    GMutex files_lock;
    gboolean files_gone;
    gint refcount;
};

struct _QubesApp {
    char *base_dir;
    char *xml_path;
    QubesEventRegistry *registry;
    QubesEmitter emitter; /* class "Qubes", subject "" */
    QubesPropHolder props;
    GPtrArray *labels;   /* QxLabel*, by index */
    GPtrArray *pools;    /* QubesPool*, in qubes.xml order */
    GPtrArray *domains;  /* QubesDomain*, by qid */
    GHashTable *by_name; /* name -> QubesDomain* */
    guint64 host_memory; /* KiB, from /proc/meminfo */
    /* What qubes.xml held that could not be loaded (a pool whose driver
     * we lack, a domain of an unknown class, ...): kept verbatim and
     * written back, so that serving the rest loses nothing. */
    GPtrArray *lost_pools;   /* QxAttrs */
    GPtrArray *lost_domains; /* QxDomain */
    gboolean loading;
    gboolean checking;     /* qubes_app_check() re-runs every setter */
    QubesRuntime *runtime; /* the VM runtime (src/vm), NULL when none */
    /* Saves qubes.xml in the daemon's order (its group commit, so that
     * no older snapshot lands after this one), then @done with NULL or
     * the cause; set by the server, NULL without one. */
    void (*save_async)(QubesApp *app, void (*done)(gpointer, GError *),
                       gpointer data);
    gpointer save_async_data;
};

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
/* Makes @holder's changes subject to qubes_app_check(). */
void qubes_app_watch_holder(QubesPropHolder *holder);

/* Writes the model to qubes.xml, atomically and durably (qubesxml.h). */
gboolean qubes_app_save(QubesApp *app, GError **error);
/* Through app->save_async when the daemon set it, else at once. */
void qubes_app_save_then(QubesApp *app, void (*done)(gpointer, GError *),
                         gpointer data);
/* The model as a QubesXml (new). */
QubesXml *qubes_app_to_xml(QubesApp *app);

/* ---- labels ---- */
/* By name, or by "label-N" / N. NULL with QubesLabelNotFoundError. */
const QxLabel *qubes_app_get_label(QubesApp *app, const char *name,
                                   GError **error);
/* A new label after the default ones; @color "0xRRGGBB". */
gboolean qubes_app_add_label(QubesApp *app, const char *name, const char *color,
                             GError **error);
gboolean qubes_app_remove_label(QubesApp *app, const char *name,
                                GError **error);

/* ---- pools ---- */
QubesPool *qubes_app_get_pool(QubesApp *app, const char *name, GError **error);
/* Creates, sets up and registers a pool from string options. */
QubesPool *qubes_app_add_pool(QubesApp *app, const char *driver,
                              const char *name, GHashTable *options,
                              GError **error);
/* Refused while a domain's volume lives in it (QubesPoolInUseError). */
gboolean qubes_app_remove_pool(QubesApp *app, const char *name, GError **error);
/* The name of the pool new volumes named @volume go to by default. */
char *qubes_app_default_pool(QubesApp *app, const char *volume);

/* Whether base/vm-kernels/@kernel holds a vmlinuz (QubesPropertyValueError
 * "Kernel 'x' not installed" otherwise). */
gboolean qubes_app_kernel_installed(QubesApp *app, const char *kernel,
                                    GError **error);

/* The setter of `kernel` and `default_kernel`: a name without '/', of
 * an installed kernel (not checked while loading), or "" for none. */
char *qubes_app_setter_kernel(QubesApp *app, QubesPropHolder *holder,
                              const QubesPropDef *def, const char *value,
                              GError **error);

/* For the setters of qube-valued properties: the existing qube @value
 * names (QubesValueError for a bad name, QubesVMNotFoundError, or a
 * QubesPropertyValueError for "", which callers take as none first). */
QubesDomain *qubes_prop_vm(QubesApp *app, QubesPropHolder *holder,
                           const QubesPropDef *def, const char *value,
                           GError **error);
/* Whether the qube is a disposable template (template_for_dispvms). */
gboolean qubes_domain_is_dvm_template(QubesDomain *d);
/* A boolean property of @d is "True". */
gboolean qubes_domain_flag(QubesDomain *d, const char *prop);
/* The setter of default_dispvm and management_dispvm: none, or a
 * disposable template. */
char *qubes_setter_disposable_template(QubesApp *app, QubesPropHolder *holder,
                                       const QubesPropDef *def,
                                       const char *value, GError **error);
/* Refuses, as a value of @def, a qube that does not provide network. */
gboolean qubes_prop_vm_provides_network(QubesPropHolder *holder,
                                        const QubesPropDef *def,
                                        QubesDomain *vm, GError **error);

/* ---- domains ---- */
QubesDomain *qubes_app_get_domain(QubesApp *app, const char *name,
                                  GError **error);
QubesDomain *qubes_app_get_domain_by_qid(QubesApp *app, guint qid);
/* Whether a domain of @app is named @name: one it serves, or one kept
 * verbatim (lost_domains). */
gboolean qubes_app_name_is_held(QubesApp *app, const char *name);
/* Moves each folder base/PREFIX/NAME that no domain is named NAME for
 * to base/PREFIX/.orphaned/NAME@TIME, logged (orphans.c); qubesd does
 * it once, at start, before it serves anything. Returns how many. */
guint qubes_app_set_aside_orphans(QubesApp *app);

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

QubesDomain *qubes_domain_ref(QubesDomain *dom);
void qubes_domain_unref(QubesDomain *dom);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QubesDomain, qubes_domain_unref)

/* ---- one domain ---- */

/* The domain whose emitter @emitter is (class handlers on domain
 * classes get it as the event's subject). */
QubesDomain *qubes_domain_of_emitter(QubesEmitter *emitter);

/* ---- files in a qube's folder (notes.c) ---- */

/* The file @name in the qube's folder ("" when there is none; new
 * string, NUL-terminated, *@len its length or -1 when there is none);
 * refused when it is not a regular file or is larger than @max.
 * Blocking. */
char *qubes_domain_read_file(QubesDomain *dom, const char *name, gsize max,
                             gssize *len, GError **error);
/* Replaces it with @text, durably (temporary, fsync, rename, fsync the
 * folder; made 0664). Blocking. */
gboolean qubes_domain_write_file(QubesDomain *dom, const char *name,
                                 const char *text, GError **error);

/* The value of the qube's property @name as text (new), NULL when it
 * has none. */
char *qubes_domain_prop(QubesDomain *dom, const char *name);

/* ---- assigned devices (domain-devices.c; devices.h) ---- */

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

/* ---- firewall (firewall.c; rules in firewall.h) ---- */

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

/* ---- notes (notes.c) ---- */

/* The largest notes admin.vm.notes.Set takes, in bytes. */
#define QUBES_NOTES_MAX 256000

/* The qube's notes ("" when it has none; new string). Blocking. */
char *qubes_domain_read_notes(QubesDomain *dom, GError **error);
/* Replaces them, atomically and durably. Blocking. */
gboolean qubes_domain_write_notes(QubesDomain *dom, const char *text,
                                  GError **error);
/* Removes what qubesd keeps in the qube's folder: its notes and its
 * firewall.xml (with the qube). Blocking. */
gboolean qubes_domain_remove_own_files(QubesDomain *dom, GError **error);

/* A qube's files, for a worker that may outlive the qube's place in the
 * model: the domain and its volumes (held) and its folder. */
typedef struct {
    QubesDomain *dom;
    GPtrArray *volumes;
    char *dir;
    /* A new DispVM's template (held), whose firewall it starts with
     * (dispvm.py clones it); NULL for every other qube. */
    QubesDomain *firewall_from;
    gint64 firewall_next; /* the copied rules' nearest expiry, 0: none */
} QubesDomainFiles;
QubesDomainFiles *qubes_domain_files_new(QubesDomain *dom);
/* Makes the qube's storage and folder (and a DispVM's firewall.xml),
 * all or nothing. Blocking. */
gboolean qubes_domain_files_create(QubesDomainFiles *f, GError **error);
void qubes_domain_files_free(QubesDomainFiles *f);
/* Removes the qube's own files, volumes and folder. Blocking. */
gboolean qubes_domain_files_remove(QubesDomainFiles *f, GError **error);

/* ---- network (net.c) ---- */

/* The netvm the domain uses, its default followed (NULL: none). */
QubesDomain *qubes_domain_get_netvm(QubesDomain *dom);
/* Whether it has a netvm or provides network itself. */
gboolean qubes_domain_is_networked(QubesDomain *dom);
/* The domains whose netvm (default followed) is @netvm (new array). */
GPtrArray *qubes_domain_connected_vms(QubesDomain *netvm);
/* Whether @dom using @netvm would close a loop of netvm links. */
gboolean qubes_net_would_loop(QubesDomain *dom, QubesDomain *netvm);
/* The netvm setter's checks for @self using @net (NULL: none): provides
 * network, no loop (QubesValueError in the reference's words). */
gboolean qubes_net_check_netvm(QubesDomain *self, QubesDomain *net,
                               GError **error);
/* QubesValueError when any domain reaches itself through netvm links. */
gboolean qubes_net_check_loops(QubesApp *app, GError **error);
void qubes_net_register_handlers(QubesApp *app);
/* preload.c: the preload-dispvm* features checked as master checks them,
 * and property-reset:is_preload when a template's list changes. */
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
/* The network properties of every QubesVM class, and a TemplateVM's
 * netvm (which hides the other). */
extern const QubesPropDef qubes_net_props[];
extern const QubesPropDef qubes_template_net_props[];

gboolean qubes_domain_is_halted(QubesDomain *dom);
const char *qubes_domain_power_state(QubesDomain *dom); /* "Halted", ... */
/* The template (NULL when the class has none or it is unset). */
QubesDomain *qubes_domain_get_template(QubesDomain *dom);
/* Folder of the domain's files: base/appvms/NAME (NULL for dom0). */
char *qubes_domain_dir_path(QubesDomain *dom);

/* Features (as qubes.features.Features; values are strings, a boolean
 * False is stored as ""). */
const char *qubes_domain_feature_get(QubesDomain *dom, const char *name);
gboolean qubes_domain_feature_set(QubesDomain *dom, const char *name,
                                  const char *value, GError **error);
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
/* The domain's volumes (new array of new references), for a worker. */
GPtrArray *qubes_domain_volume_refs(QubesDomain *dom);

G_END_DECLS
