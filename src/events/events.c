/* events.c: see events.h for the contract. */
#include "events.h"

#include "qubes-error.h"

#include <string.h>

typedef struct {
    gint refcount;
    guint id;
    char *class_name; /* NULL: an emitter's own handler */
    GPatternSpec *spec;
    QubesEventFunc func;
    QubesEventAsyncFunc async_func;
    QubesHandlerFlags flags;
    gpointer user_data;
    GDestroyNotify destroy;
    gboolean removed;
} Handler;

struct _QubesEventRegistry {
    GPtrArray *handlers; /* Handler, in the order added */
    guint next_id;
};

static Handler *handler_ref(Handler *h)
{
    h->refcount++;
    return h;
}

static void handler_unref(Handler *h)
{
    if (--h->refcount > 0)
        return;
    if (h->destroy)
        h->destroy(h->user_data);
    g_pattern_spec_free(h->spec);
    g_free(h->class_name);
    g_free(h);
}

/* Marks @h removed (a firing in progress skips it) and drops the list's
 * reference. */
static void handler_remove(gpointer data)
{
    Handler *h = data;
    h->removed = TRUE;
    handler_unref(h);
}

static Handler *handler_new(guint id, const char *class_name,
                            const char *pattern, QubesEventFunc func,
                            QubesEventAsyncFunc async_func,
                            QubesHandlerFlags flags, gpointer user_data,
                            GDestroyNotify destroy)
{
    Handler *h = g_new0(Handler, 1);
    h->refcount = 1;
    h->id = id;
    h->class_name = g_strdup(class_name);
    h->spec = g_pattern_spec_new(pattern);
    h->func = func;
    h->async_func = async_func;
    h->flags = flags;
    h->user_data = user_data;
    h->destroy = destroy;
    return h;
}

gboolean qubes_event_name_matches(const char *pattern, const char *name)
{
    g_autoptr(GPatternSpec) spec = g_pattern_spec_new(pattern);
    return g_pattern_spec_match_string(spec, name);
}

const char *qubes_event_get(const QubesEvent *event, const char *key)
{
    for (const char *const *kv = event->kwargs; kv && kv[0] && kv[1]; kv += 2) {
        if (strcmp(kv[0], key) == 0)
            return kv[1];
    }
    return NULL;
}

/* ---- registry ---- */

QubesEventRegistry *qubes_event_registry_new(void)
{
    QubesEventRegistry *r = g_new0(QubesEventRegistry, 1);
    r->handlers = g_ptr_array_new_with_free_func(handler_remove);
    r->next_id = 1;
    return r;
}

void qubes_event_registry_free(QubesEventRegistry *registry)
{
    if (!registry)
        return;
    g_ptr_array_unref(registry->handlers);
    g_free(registry);
}

static guint add_class(QubesEventRegistry *r, const char *class_name,
                       const char *pattern, QubesEventFunc func,
                       QubesEventAsyncFunc async_func, QubesHandlerFlags flags,
                       gpointer user_data, GDestroyNotify destroy)
{
    g_return_val_if_fail(class_name && pattern, 0);
    guint id = r->next_id++;
    g_ptr_array_add(r->handlers,
                    handler_new(id, class_name, pattern, func, async_func,
                                flags, user_data, destroy));
    return id;
}

guint qubes_event_add_class_handler(QubesEventRegistry *registry,
                                    const char *class_name, const char *pattern,
                                    QubesEventFunc func,
                                    QubesHandlerFlags flags, gpointer user_data,
                                    GDestroyNotify destroy)
{
    return add_class(registry, class_name, pattern, func, NULL, flags,
                     user_data, destroy);
}

guint qubes_event_add_class_async_handler(
    QubesEventRegistry *registry, const char *class_name, const char *pattern,
    QubesEventAsyncFunc func, QubesHandlerFlags flags, gpointer user_data,
    GDestroyNotify destroy)
{
    return add_class(registry, class_name, pattern, NULL, func, flags,
                     user_data, destroy);
}

static gboolean remove_by_id(GPtrArray *handlers, guint id)
{
    for (guint i = 0; handlers && i < handlers->len; i++) {
        Handler *h = handlers->pdata[i];
        if (h->id == id) {
            g_ptr_array_remove_index(handlers, i);
            return TRUE;
        }
    }
    return FALSE;
}

gboolean qubes_event_remove_class_handler(QubesEventRegistry *registry,
                                          guint id)
{
    return remove_by_id(registry->handlers, id);
}

/* ---- emitters ---- */

void qubes_emitter_init(QubesEmitter *emitter, QubesEventRegistry *registry,
                        const char *const *classes, const char *name)
{
    emitter->registry = registry;
    emitter->classes = classes;
    emitter->name = g_strdup(name ? name : "");
    emitter->enabled = FALSE;
    emitter->handlers = g_ptr_array_new_with_free_func(handler_remove);
}

void qubes_emitter_clear(QubesEmitter *emitter)
{
    g_clear_pointer(&emitter->handlers, g_ptr_array_unref);
    g_clear_pointer(&emitter->name, g_free);
    emitter->enabled = FALSE;
}

static guint add_own(QubesEmitter *e, const char *pattern, QubesEventFunc func,
                     QubesEventAsyncFunc async_func, gpointer user_data,
                     GDestroyNotify destroy)
{
    guint id = e->registry->next_id++;
    g_ptr_array_add(e->handlers,
                    handler_new(id, NULL, pattern, func, async_func,
                                QUBES_HANDLER_DEFAULT, user_data, destroy));
    return id;
}

guint qubes_emitter_add_handler(QubesEmitter *emitter, const char *pattern,
                                QubesEventFunc func, gpointer user_data,
                                GDestroyNotify destroy)
{
    return add_own(emitter, pattern, func, NULL, user_data, destroy);
}

guint qubes_emitter_add_async_handler(QubesEmitter *emitter,
                                      const char *pattern,
                                      QubesEventAsyncFunc func,
                                      gpointer user_data,
                                      GDestroyNotify destroy)
{
    return add_own(emitter, pattern, NULL, func, user_data, destroy);
}

gboolean qubes_emitter_remove_handler(QubesEmitter *emitter, guint id)
{
    return remove_by_id(emitter->handlers, id);
}

/* ---- firing ---- */

static gboolean is_pre_event(const char *event)
{
    return strstr(event, "-pre-") != NULL;
}

/* Appends the handlers of one level matching @event: bound ones first,
 * then the rest, each in the order added. */
static void collect_level(GPtrArray *out, GPtrArray *handlers,
                          const char *class_name, const char *event)
{
    for (int pass = 0; pass < 2; pass++) {
        for (guint i = 0; i < handlers->len; i++) {
            Handler *h = handlers->pdata[i];
            gboolean bound = (h->flags & QUBES_HANDLER_BOUND) != 0;
            if (bound != (pass == 0) ||
                (class_name && (h->flags & QUBES_HANDLER_AS_INSTANCE)) ||
                g_strcmp0(h->class_name, class_name) != 0 ||
                !g_pattern_spec_match_string(h->spec, event))
                continue;
            g_ptr_array_add(out, handler_ref(h));
        }
    }
}

/* The handlers to run for @event, in order (new array of references). */
static GPtrArray *collect(QubesEmitter *e, const char *event)
{
    GPtrArray *levels =
        g_ptr_array_new_with_free_func((GDestroyNotify)g_ptr_array_unref);
    GPtrArray *own =
        g_ptr_array_new_with_free_func((GDestroyNotify)handler_unref);
    collect_level(own, e->handlers, NULL, event);
    /* class handlers that run as the emitter's own, after those */
    for (guint i = 0; i < e->registry->handlers->len; i++) {
        Handler *h = e->registry->handlers->pdata[i];
        if (!(h->flags & QUBES_HANDLER_AS_INSTANCE) ||
            !g_pattern_spec_match_string(h->spec, event))
            continue;
        for (const char *const *c = e->classes; c && *c; c++)
            if (strcmp(*c, h->class_name) == 0) {
                g_ptr_array_add(own, handler_ref(h));
                break;
            }
    }
    g_ptr_array_add(levels, own);
    for (const char *const *c = e->classes; c && *c; c++) {
        GPtrArray *lvl =
            g_ptr_array_new_with_free_func((GDestroyNotify)handler_unref);
        collect_level(lvl, e->registry->handlers, *c, event);
        g_ptr_array_add(levels, lvl);
    }
    GPtrArray *order =
        g_ptr_array_new_with_free_func((GDestroyNotify)handler_unref);
    gboolean pre = is_pre_event(event);
    for (guint i = 0; i < levels->len; i++) {
        GPtrArray *lvl = levels->pdata[pre ? i : levels->len - 1 - i];
        for (guint j = 0; j < lvl->len; j++)
            g_ptr_array_add(order, handler_ref(lvl->pdata[j]));
    }
    g_ptr_array_unref(levels);
    return order;
}

/* Runs the synchronous handlers of @order; returns FALSE at the first
 * failure. */
static gboolean run_sync(GPtrArray *order, QubesEvent *ev, GError **error)
{
    for (guint i = 0; i < order->len; i++) {
        Handler *h = order->pdata[i];
        if (h->removed || !h->func)
            continue;
        GError *err = NULL;
        if (!h->func(ev, h->user_data, &err)) {
            if (!err)
                err = g_error_new(QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                                  "Handler of %s refused it", ev->name);
            g_propagate_error(error, err);
            return FALSE;
        }
    }
    return TRUE;
}

static gboolean has_async(GPtrArray *order)
{
    for (guint i = 0; i < order->len; i++) {
        Handler *h = order->pdata[i];
        if (!h->removed && h->async_func)
            return TRUE;
    }
    return FALSE;
}

GPtrArray *qubes_emitter_fire(QubesEmitter *emitter, const char *event,
                              const char *const *kwargs, GError **error)
{
    GPtrArray *effects = g_ptr_array_new_with_free_func(g_free);
    if (!emitter->enabled)
        return effects;
    g_autoptr(GPtrArray) order = collect(emitter, event);
    if (has_async(order)) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                    "Unexpected asynchronous handler for synchronous event "
                    "%s",
                    event);
        g_ptr_array_unref(effects);
        return NULL;
    }
    QubesEvent ev = {emitter, event, kwargs, effects};
    if (!run_sync(order, &ev, error)) {
        g_ptr_array_unref(effects);
        return NULL;
    }
    return effects;
}

GPtrArray *qubes_emitter_fire_va(QubesEmitter *emitter, GError **error,
                                 const char *event, ...)
{
    g_autoptr(GPtrArray) kwargs = g_ptr_array_new();
    va_list ap;
    va_start(ap, event);
    const char *s;
    while ((s = va_arg(ap, const char *)) != NULL)
        g_ptr_array_add(kwargs, (gpointer)s);
    va_end(ap);
    g_ptr_array_add(kwargs, NULL);
    return qubes_emitter_fire(emitter, event,
                              (const char *const *)kwargs->pdata, error);
}

/* State of one asynchronous firing. */
typedef struct {
    QubesEvent ev;
    char *name;
    char **kwargs;
    GTask *task; /* the caller's */
    guint pending;
    GError *error; /* the first failure */
} Firing;

static void firing_free(Firing *f)
{
    g_free(f->name);
    g_strfreev(f->kwargs);
    if (f->ev.effects)
        g_ptr_array_unref(f->ev.effects);
    g_clear_error(&f->error);
    g_free(f);
}

static void firing_done(Firing *f)
{
    GTask *task = f->task;
    if (f->error) {
        g_task_return_error(task, g_steal_pointer(&f->error));
    } else {
        g_task_return_pointer(task, g_steal_pointer(&f->ev.effects),
                              (GDestroyNotify)g_ptr_array_unref);
    }
    g_object_unref(task);
}

static void async_handler_done(GObject *source, GAsyncResult *result,
                               gpointer data)
{
    Firing *f = data;
    GError *err = NULL;
    if (!g_task_propagate_boolean(G_TASK(result), &err)) {
        if (!f->error)
            f->error = err;
        else
            g_error_free(err);
    }
    if (--f->pending == 0)
        firing_done(f);
}

void qubes_event_async_return(GTask *task, GError *error)
{
    if (error)
        g_task_return_error(task, error);
    else
        g_task_return_boolean(task, TRUE);
    g_object_unref(task);
}

void qubes_emitter_fire_async(QubesEmitter *emitter, const char *event,
                              const char *const *kwargs,
                              GCancellable *cancellable,
                              GAsyncReadyCallback callback, gpointer user_data)
{
    GTask *task = g_task_new(NULL, cancellable, callback, user_data);
    g_task_set_source_tag(task, qubes_emitter_fire_async);
    Firing *f = g_new0(Firing, 1);
    f->name = g_strdup(event);
    f->kwargs = g_strdupv((char **)kwargs);
    f->task = task;
    f->ev = (QubesEvent){emitter, f->name, (const char *const *)f->kwargs,
                         g_ptr_array_new_with_free_func(g_free)};
    g_task_set_task_data(task, f, (GDestroyNotify)firing_free);
    if (!emitter->enabled) {
        firing_done(f);
        return;
    }
    g_autoptr(GPtrArray) order = collect(emitter, event);
    GError *err = NULL;
    if (!run_sync(order, &f->ev, &err)) {
        f->error = err;
        firing_done(f);
        return;
    }
    /* One count for ourselves, so handlers that finish at once cannot
     * complete the firing before all have started. */
    f->pending = 1;
    for (guint i = 0; i < order->len; i++) {
        Handler *h = order->pdata[i];
        if (h->removed || !h->async_func)
            continue;
        f->pending++;
        GTask *sub = g_task_new(NULL, cancellable, async_handler_done, f);
        h->async_func(&f->ev, h->user_data, sub);
    }
    if (--f->pending == 0)
        firing_done(f);
}

GPtrArray *qubes_emitter_fire_finish(QubesEmitter *emitter,
                                     GAsyncResult *result, GError **error)
{
    g_return_val_if_fail(g_task_is_valid(result, NULL), NULL);
    return g_task_propagate_pointer(G_TASK(result), error);
}
