/* restore-plan.h: what a restore will do, as the Qubes client's
 * qubesadmin/backup/restore.py decides it: the qubes of a backup's
 * qubes.xml (core3.py's reading: a qube is in the backup when its feature
 * backup-content is set; backup-path and backup-size say where and how
 * much), checked against the host (restore_info_verify: exclusions, names
 * taken, templates and netvms missing on the host and in the backup,
 * renames, default templates), dom0's home, and the summary table
 * (get_restore_summary) byte for byte.
 *
 * Nothing here calls qubesd: the host is described by the caller
 * (QubesRestoreHost), so the same rules run for a tool and for tests.
 * The backup's qubes.xml is untrusted; it is parsed by qubesxml.h (no
 * entity, no network) and every name it gives is checked before use.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* A qube as the backup describes it. */
typedef struct {
    char *name;
    char *klass;
    char *label;
    char *template;        /* NULL: none */
    GPtrArray *properties; /* char*: name, value (NULL: an empty one) */
    GPtrArray *features;   /* char*: name, value */
    GPtrArray *tags;       /* char* */
    GPtrArray *devices;    /* QubesRestoreDevice */
    gboolean included;     /* in the backup (restored when chosen) */
    char *backup_path;     /* where its files are (NULL: none) */
    guint64 size;
} QubesRestoreVM;

typedef struct {
    char *devclass;
    char *backend;
    char *port;
    char *mode;         /* "required", "auto-attach", "ask-to-attach" */
    GPtrArray *options; /* char*: name, value */
} QubesRestoreDevice;

/* Problems (restore.py's VMToRestore and Dom0ToRestore constants) */
enum {
    QUBES_RESTORE_EXCLUDED = 1 << 0,
    QUBES_RESTORE_ALREADY_EXISTS = 1 << 1,
    QUBES_RESTORE_MISSING_NETVM = 1 << 2,
    QUBES_RESTORE_MISSING_TEMPLATE = 1 << 3,
    QUBES_RESTORE_USERNAME_MISMATCH = 1 << 4,
};

typedef struct {
    QubesRestoreVM *vm;
    char *name; /* the name it gets (renamed when conflicting) */
    char *subdir;
    guint64 size;
    guint problems;
    char *template;      /* may become the host's default */
    char *netvm;         /* NULL: none */
    char *orig_template; /* before that */
    gboolean is_dom0;
    char *username; /* dom0's, from its backup path */
} QubesRestoreItem;

/* What the host has (from the Admin API). */
typedef struct {
    GHashTable *classes;     /* name -> class of every qube */
    GHashTable *dispvm_tpls; /* set: template_for_dispvms True */
    GHashTable *networkers;  /* set: provides_network True */
    char *default_template;  /* NULL: none */
    char *default_dispvm;
    char *local_user; /* dom0's user (NULL: assume the backup's) */
} QubesRestoreHost;

QubesRestoreHost *qubes_restore_host_new(void);
void qubes_restore_host_free(QubesRestoreHost *h);

typedef struct {
    gboolean verify_only;
    gboolean rename_conflicting;
    gboolean use_default_template;
    gboolean use_default_netvm;
    gboolean dom0_home;
    gboolean ignore_username_mismatch;
    GPtrArray *exclude; /* char* */
} QubesRestoreOptions;

typedef struct {
    GPtrArray *vms;   /* QubesRestoreVM: every domain of the backup */
    GPtrArray *items; /* QubesRestoreItem, restore_info's order */
} QubesRestoreInfo;

void qubes_restore_info_free(QubesRestoreInfo *info);
/* A qube of class @klass with empty lists, for a reader of qubes.xml. */
QubesRestoreVM *qubes_restore_vm_new(const char *klass);
void qubes_restore_vm_free(QubesRestoreVM *vm);
void qubes_restore_device_free(QubesRestoreDevice *d);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QubesRestoreInfo, qubes_restore_info_free)

/* Reads the backup's qubes.xml (@untrusted, @len bytes) and builds
 * restore_info as get_restore_info does (verified against @host). */
QubesRestoreInfo *qubes_restore_info_new(const char *untrusted, gsize len,
                                         const QubesRestoreHost *host,
                                         const QubesRestoreOptions *opts,
                                         GError **error);
/* The same from the qubes a reader made (@vms, taken: the client's
 * order, restore-core2.h's for a format 3 backup). */
QubesRestoreInfo *qubes_restore_info_from_vms(GPtrArray *vms,
                                              const QubesRestoreHost *host,
                                              const QubesRestoreOptions *opts,
                                              GError **error);
/* restore_info_verify: the problems again (after a change of @opts). */
void qubes_restore_info_verify(QubesRestoreInfo *info,
                               const QubesRestoreHost *host,
                               const QubesRestoreOptions *opts);
/* get_restore_summary, byte for byte. */
char *qubes_restore_summary(const QubesRestoreInfo *info);
/* The item restored under backup name @name (NULL: none). */
QubesRestoreItem *qubes_restore_item(const QubesRestoreInfo *info,
                                     const char *name);
/* Whether @item has no problem (good_to_go). */
gboolean qubes_restore_good(const QubesRestoreItem *item);
/* The items with templates first, then disposable templates, then the
 * rest (the client's _templates_first, a stable sort); new array of
 * borrowed items. */
GPtrArray *qubes_restore_templates_first(const QubesRestoreInfo *info);
/* A property's value in the backup (NULL: absent or empty; *present
 * whether it is there at all). */
const char *qubes_restore_vm_prop(const QubesRestoreVM *vm, const char *name,
                                  gboolean *present);

G_END_DECLS
