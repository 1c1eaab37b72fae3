/* model.h: the model's types: the app (qubes/app.py Qubes), a domain
 * (qubes/vm), a domain class, a domain's volume and power state. Types
 * only, and the one accessor every room needs; the functions live in the
 * rooms below, each with its header:
 *
 *   lookup.h          finding a qube, label, pool or kernel; a qube a
 *                     property names (its template, its netvm)
 *   qube-features.h   a qube's features and tags
 *   feature-checks.h  the extensions' checks of vm-config.* and
 *                     custom-persist.* features
 *   net.h             the network properties and their checks
 *   preload.h         a disposable template's preloaded disposables
 *   domain-devices.h  the devices assigned to a qube
 *   domain.h          the domain classes, their properties and volumes
 *   qube-users.h      a network, GUI or audio qube's stop refused while
 *                     qubes use it; a GUI qube's keyboard layout
 *                     told to the qubes that follow it
 *   qube-folder.h     a file in a qube's folder, read and written durably
 *   firewall-file.h   a qube's firewall.xml and the expiry of its rules
 *   qube-files.h      a qube's notes, its folder made and removed
 *   app.h             the app: loading, checking and saving qubes.xml,
 *                     labels, pools, adding and removing qubes
 *   features-request.h  what a qube asks to have recorded about itself
 *                     (master's extensions' features-request handlers)
 *   qdb-entries.h     the QubesDB entries of a starting qube
 *
 * Each room calls only rooms above it in this list (app.h includes them
 * all, for the callers outside src/app). All functions run on the thread
 * of the main context (the events library is single-threaded); the
 * storage work of a domain's volumes can run elsewhere through the volume
 * references (QubesVolume is thread-safe and refcounted), never through
 * the domain.
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
    guint fw_timer; /* the firewall's next expiry (firewall-file.c) */
    /* The qube's folder and what qubesd keeps in it (qube-folder.c): a writer
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
    char *bulk_kernel;     /* the default kernel during a load or save */
    QubesRuntime *runtime; /* the VM runtime (src/vm), NULL when none */
    /* Saves qubes.xml in the daemon's order (its group commit, so that
     * no older snapshot lands after this one), then @done with NULL or
     * the cause; set by the server, NULL without one. */
    void (*save_async)(QubesApp *app, void (*done)(gpointer, GError *),
                       gpointer data);
    gpointer save_async_data;
};

/* The domain whose emitter @emitter is (class handlers on domain
 * classes get it as the event's subject). */
static inline QubesDomain *qubes_domain_of_emitter(QubesEmitter *emitter)
{
    return (QubesDomain *)((char *)emitter -
                           G_STRUCT_OFFSET(QubesDomain, emitter));
}

G_END_DECLS
