/* api.h: the Admin API methods and what they need of the server.
 *
 * Each area of the API (qubes/api/admin.py of the reference) has its
 * file here with its table of methods: admin-vm.c (classes, the domain
 * list, create, remove), admin-lifecycle.c (start, stop, state),
 * admin-property.c, admin-feature.c, admin-tag.c, admin-label.c, admin-pool.c,
 * admin-volume.c, admin-notes.c, admin-events.c, admin-backup.c (with
 * backup-run.c, the writing of one backup); on the internal socket,
 * admin-volume.c's import methods and internal.c (the system's summary
 * for qrexec's policy, the host's suspend); on the misc socket, misc.c
 * (what qubes report about themselves). api.c joins the tables and finds a
 * method by name.
 *
 * A method runs on the main thread with a Call: the request's validated
 * header (source and destination domains, method name, argument) and its
 * untrusted payload. It returns its answer text (new), CALL_ASYNC when it
 * completes later with call_return()/call_fail(), or NULL with @error
 * set. A method must not block: storage work goes to a worker thread
 * through call_run_worker() (touching only volume references), and a
 * change to the model answers once qubes.xml holds it (call_save_then()).
 *
 * The transport (src/daemon/server.c) implements the call_* functions.
 */
#pragma once

#include <glib.h>

#include "app.h"
#include "system-info.h"

G_BEGIN_DECLS

typedef struct _Call Call;
typedef struct _Method Method;
typedef struct _ApiState ApiState;

/* What a method's result is: text (new), or CALL_ASYNC when the method
 * completes later with call_return()/call_fail(). NULL with @error set
 * is a failure. */
extern char call_async_marker[];
#define CALL_ASYNC (call_async_marker)

typedef char *(*MethodFunc)(Call *call, GError **error);

/* The reference's qubes.api.method() options, checked before the method
 * runs with the reference's ProtocolError messages. */
typedef enum {
    M_NO_PAYLOAD = 1 << 0, /* payload must be empty ("unexpected payload") */
    M_DOM0 = 1 << 1,       /* destination must be dom0 */
    M_NO_ARG = 1 << 2,     /* argument must be empty */
    M_INTERNAL = 1 << 3,   /* on the internal socket (not the admin one) */
    M_PREFIX = 1 << 4,     /* name is a prefix: admin.vm.Create.<class> */
    M_NOT_DOM0 = 1 << 5,   /* destination must not be dom0 */
    M_ARG = 1 << 6,        /* argument must not be empty */
    M_PAYLOAD = 1 << 7,    /* payload must not be empty */
    M_MISC = 1 << 8,       /* on the misc socket (not the admin one) */
} MethodFlags;

/* qubesd's sockets; each serves its own methods only, as the
 * reference's (qubes/api/admin.py, internal.py, misc.py). */
typedef enum {
    API_SOCKET_ADMIN,    /* qubesd.sock: admin.* */
    API_SOCKET_INTERNAL, /* qubesd.internal.sock: internal.* (dom0's
                            components: qrexec's policy, the importers) */
    API_SOCKET_MISC,     /* qubesd.misc.sock: qubes.* (what qubes report
                            through qrexec services) */
    API_N_SOCKETS
} ApiSocket;

struct _Method {
    const char *name;
    MethodFlags flags;
    MethodFunc func;
};

/* State the API keeps between calls (not saved): clone tokens, and
 * where the qrexec policy is (policy.h). */
struct _ApiState {
    GHashTable *clone_tokens; /* token -> QubesVolume* (ref) */
    char *policy_dir;
    /* backups (admin-backup.c): where the profiles are, dom0's home
     * folder (NULL: the reference's lookup), the running ones by profile
     * (-> QubesBackupRun*, owned by their job) */
    char *backup_dir;
    char *dom0_home;
    GHashTable *backups;
    /* the folder of the qubes' QubesDB entries (qube-db.h) */
    char *qubesdb_dir;
    /* the qubes paused before the host's suspend (internal.c) */
    char *paused_list;
    /* internal.GetSystemInfo's cache, made at its first call */
    QubesSystemInfo *system_info;
};

ApiState *api_state_new(void);
void api_state_free(ApiState *state);

struct _Call {
    QubesApp *app;
    ApiState *state;
    gpointer transport; /* the server's connection, for call_* */
    const Method *method;
    char *method_name; /* full name, e.g. admin.vm.Create.AppVM */
    char *endpoint;    /* for M_PREFIX methods: the part after the prefix */
    char *arg;         /* validated printable ASCII, "" when none */
    QubesDomain *src;  /* referenced */
    QubesDomain *dest; /* referenced */
    GBytes *untrusted_payload;
    gpointer data; /* the method's, freed with the call */
    GDestroyNotify data_free;
};

/* Whether @call's source is dom0 (the AdminVM), whose calls the
 * reference never filters. */
gboolean api_src_is_dom0(Call *call);

/* The method called @name that @socket serves (NULL when none).
 * *@endpoint is set (new) for an M_PREFIX method. */
const Method *api_find_method(const char *name, ApiSocket socket,
                              char **endpoint);

/* The tables of each area, ended by a NULL name. */
extern const Method api_vm_methods[];
extern const Method api_lifecycle_methods[];
extern const Method api_property_methods[];
extern const Method api_feature_methods[];
extern const Method api_tag_methods[];
extern const Method api_label_methods[];
extern const Method api_pool_methods[];
extern const Method api_volume_methods[];
extern const Method api_notes_methods[];
extern const Method api_firewall_methods[];
extern const Method api_device_methods[];
extern const Method api_events_methods[];
extern const Method api_backup_methods[];
extern const Method api_import_methods[];
extern const Method api_internal_methods[];
extern const Method api_misc_methods[];

/* ---- provided by the transport ---- */

/* Completes an async call; @result may be NULL (empty answer). */
void call_return(Call *call, const char *result);
/* Fails an async call (takes @error). */
void call_fail(Call *call, GError *error);

/* Runs @work(@data) on a worker thread, then @done(call, ok, error,
 * @data) on the main thread, whose return value completes the call as a
 * MethodFunc's would (CALL_ASYNC to chain further). @free frees @data
 * after @done. */
typedef gboolean (*WorkerFunc)(gpointer data, GError **error);
typedef char *(*WorkerDone)(Call *call, gboolean ok, GError **error,
                            gpointer data);
void call_run_worker(Call *call, WorkerFunc work, WorkerDone done,
                     gpointer data, GDestroyNotify free);

/* Saves qubes.xml with every change made so far, then calls @done(call,
 * ok, error, @data) on the main thread, whose return value completes the
 * call as a WorkerDone's does; @free frees @data after @done. Saves run
 * on a worker thread and are grouped (server.c). */
void call_save_then(Call *call, WorkerDone done, gpointer data,
                    GDestroyNotify free);

/* A call that streams events until its client leaves (admin.Events,
 * admin.vm.Stats): sends connection-established; the call is freed (its
 * data too) when the connection closes. */
void call_stream_begin(Call *call);
/* A stream may end with call_fail() (its exception after the events).
 * Sends one event of a stream; FALSE when the connection is closed (the
 * call is freed then, or was already). */
gboolean call_stream_send(Call *call, const char *subject, const char *event,
                          const char *const *kwargs);

/* How an admin.Events subscription filters and words the events
 * (admin-events.c gives it; the transport only streams them). */
typedef struct {
    /* Whether @event may go to @call's source. */
    gboolean (*visible)(Call *call, const QubesEvent *event);
    /* @event's arguments as sent (new NULL-terminated vector). */
    char **(*wire_kwargs)(QubesApp *app, const QubesEvent *event);
} CallEventsView;

/* admin.Events: subscribes @call's connection to the app's events (all,
 * or those of @dest only), as @view lets @call->src see them, until the
 * client leaves. @view is static. */
void call_subscribe_events(Call *call, const CallEventsView *view);

G_END_DECLS
