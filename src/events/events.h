/* events.h: emitters, handlers and wildcard event names.
 *
 * An emitter (a domain, the app) fires named events with string arguments.
 * Handlers subscribe by exact name or by a pattern with '*' and '?'
 * ("*", "property-set:*", "domain-feature-*"), either on a class, for every
 * emitter of that class and its subclasses, or on one emitter.
 *
 * Order, as in Qubes: an emitter has a class chain, most specific first
 * (e.g. AppVM, QubesVM, BaseVM). For a pre-event (a name containing
 * "-pre-") the emitter's own handlers run first, then its class's, then
 * outwards to the base; any handler may veto by failing, and no handler
 * after it runs. For other events the order is reversed: base class first,
 * the emitter's own handlers last. Within one level, handlers run in the
 * order they were added, the ones marked QUBES_HANDLER_BOUND (the class's
 * own behaviour) before others (extensions).
 *
 * Synchronous handlers run in that order; asynchronous ones are started
 * after them, together, and the event completes when all have finished.
 * Handlers may add "effects" (strings) that the firer gets back.
 *
 * Class handlers live in a registry that the app owns (no global state).
 * Everything here runs on the thread of the main context; it is not
 * thread-safe.
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

typedef struct _QubesEventRegistry QubesEventRegistry;
typedef struct _QubesEmitter QubesEmitter;

/* One firing of an event, as handlers see it. */
typedef struct {
    QubesEmitter *subject;
    const char *name;          /* the event, e.g. "property-set:label" */
    const char *const *kwargs; /* key, value, key, value, ..., NULL */
    GPtrArray *effects;        /* handlers may append strings (owned) */
} QubesEvent;

/* Returns the value of @key in @event's arguments, or NULL. */
const char *qubes_event_get(const QubesEvent *event, const char *key);

/* A synchronous handler: returns FALSE with @error set to veto (pre-events)
 * or to fail the firing. */
typedef gboolean (*QubesEventFunc)(QubesEvent *event, gpointer user_data,
                                   GError **error);
/* An asynchronous handler: must call qubes_event_async_return() once on
 * @task (GTask), from the main context, when done. @event stays valid
 * until then. */
typedef void (*QubesEventAsyncFunc)(QubesEvent *event, gpointer user_data,
                                    GTask *task);
/* Finishes an asynchronous handler: @error NULL for success (the error is
 * taken). */
void qubes_event_async_return(GTask *task, GError *error);

typedef enum {
    QUBES_HANDLER_DEFAULT = 0,
    QUBES_HANDLER_BOUND = 1 << 0, /* the class's own: runs before others */
    /* a class handler that runs where the emitter's own handlers run (as
     * master's instance handlers, which admin.Events adds to every qube
     * and the app): last for an event, first for a pre-event, so that a
     * client sees what handlers fired before the event that caused it */
    QUBES_HANDLER_AS_INSTANCE = 1 << 1,
} QubesHandlerFlags;

QubesEventRegistry *qubes_event_registry_new(void);
void qubes_event_registry_free(QubesEventRegistry *registry);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QubesEventRegistry, qubes_event_registry_free)

/* Adds a handler for events matching @pattern on every emitter whose class
 * chain holds @class_name. Returns an id for qubes_event_remove_handler().
 * @destroy, if not NULL, frees @user_data when the handler goes. */
guint qubes_event_add_class_handler(QubesEventRegistry *registry,
                                    const char *class_name, const char *pattern,
                                    QubesEventFunc func,
                                    QubesHandlerFlags flags, gpointer user_data,
                                    GDestroyNotify destroy);
guint qubes_event_add_class_async_handler(
    QubesEventRegistry *registry, const char *class_name, const char *pattern,
    QubesEventAsyncFunc func, QubesHandlerFlags flags, gpointer user_data,
    GDestroyNotify destroy);
/* Removes a class handler; returns FALSE when there is no such id. */
gboolean qubes_event_remove_class_handler(QubesEventRegistry *registry,
                                          guint id);

/* An emitter is embedded in the object that fires events. */
struct _QubesEmitter {
    QubesEventRegistry *registry; /* not owned */
    const char *const *classes;   /* most specific first, NULL-terminated */
    char *name;                   /* subject name, e.g. the VM's; "" for app */
    gboolean enabled;             /* nothing fires while FALSE */
    /* private */
    GPtrArray *handlers;
};

/* Sets up @emitter (disabled; enable it once the object is loaded). */
void qubes_emitter_init(QubesEmitter *emitter, QubesEventRegistry *registry,
                        const char *const *classes, const char *name);
void qubes_emitter_clear(QubesEmitter *emitter);

/* Handlers for this emitter alone. */
guint qubes_emitter_add_handler(QubesEmitter *emitter, const char *pattern,
                                QubesEventFunc func, gpointer user_data,
                                GDestroyNotify destroy);
guint qubes_emitter_add_async_handler(QubesEmitter *emitter,
                                      const char *pattern,
                                      QubesEventAsyncFunc func,
                                      gpointer user_data,
                                      GDestroyNotify destroy);
gboolean qubes_emitter_remove_handler(QubesEmitter *emitter, guint id);

/* Fires @event with arguments @kwargs (key, value, ..., NULL; may be NULL)
 * through the synchronous handlers. Returns the effects (new array of
 * strings), or NULL with @error set when a handler failed (vetoed), or
 * when an asynchronous handler matches (use qubes_emitter_fire_async()).
 * A disabled emitter returns an empty array. */
GPtrArray *qubes_emitter_fire(QubesEmitter *emitter, const char *event,
                              const char *const *kwargs, GError **error);
/* Same with a NULL-terminated list of key, value arguments. */
GPtrArray *qubes_emitter_fire_va(QubesEmitter *emitter, GError **error,
                                 const char *event, ...) G_GNUC_NULL_TERMINATED;

/* Fires @event through all handlers, synchronous ones first, in order; a
 * failing synchronous handler stops the firing there. @callback gets the
 * result; collect it with qubes_emitter_fire_finish(). */
void qubes_emitter_fire_async(QubesEmitter *emitter, const char *event,
                              const char *const *kwargs,
                              GCancellable *cancellable,
                              GAsyncReadyCallback callback, gpointer user_data);
GPtrArray *qubes_emitter_fire_finish(QubesEmitter *emitter,
                                     GAsyncResult *result, GError **error);

/* TRUE when @name matches @pattern ('*' any run, '?' one character). */
gboolean qubes_event_name_matches(const char *pattern, const char *name);

G_END_DECLS
