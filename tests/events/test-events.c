/* test-events.c: names and wildcards, order along the class chain,
 * vetoes, enabling, removal, and asynchronous handlers. */
#include "events.h"

#include "qubes-error.h"

static const char *const appvm_chain[] = {"AppVM", "QubesVM", "BaseVM", NULL};

typedef struct {
    GString *log;
    const char *tag;
    gboolean veto;
} Rec;

static gboolean record(QubesEvent *ev, gpointer data, GError **error)
{
    Rec *r = data;
    const char *v = qubes_event_get(ev, "newvalue");
    g_string_append_printf(r->log, "%s%s%s%s ", r->tag, v ? "(" : "",
                           v ? v : "", v ? ")" : "");
    g_ptr_array_add(ev->effects, g_strdup(r->tag));
    if (r->veto) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE, "%s says no",
                    r->tag);
        return FALSE;
    }
    return TRUE;
}

typedef struct {
    QubesEventRegistry *reg;
    QubesEmitter vm;
    GString *log;
} Fixture;

static void setup(Fixture *f, gconstpointer data)
{
    f->reg = qubes_event_registry_new();
    qubes_emitter_init(&f->vm, f->reg, appvm_chain, "work");
    f->vm.enabled = TRUE;
    f->log = g_string_new(NULL);
}

static void teardown(Fixture *f, gconstpointer data)
{
    qubes_emitter_clear(&f->vm);
    qubes_event_registry_free(f->reg);
    g_string_free(f->log, TRUE);
}

static Rec *rec(Fixture *f, const char *tag)
{
    Rec *r = g_new0(Rec, 1);
    r->log = f->log;
    r->tag = tag;
    return r;
}

static char *fire(Fixture *f, const char *event, GError **error)
{
    g_string_truncate(f->log, 0);
    g_autoptr(GPtrArray) effects = qubes_emitter_fire_va(
        &f->vm, error, event, "name", "label", "newvalue", "red", NULL);
    if (!effects)
        return NULL;
    return g_strdup(g_strchomp(f->log->str));
}

static void test_patterns(void)
{
    g_assert_true(qubes_event_name_matches("*", "domain-start"));
    g_assert_true(
        qubes_event_name_matches("property-set:*", "property-set:label"));
    g_assert_false(
        qubes_event_name_matches("property-set:*", "property-pre-set:label"));
    g_assert_true(
        qubes_event_name_matches("domain-feature-*", "domain-feature-set:gui"));
    g_assert_true(qubes_event_name_matches("domain-feature-?et:gui",
                                           "domain-feature-set:gui"));
    g_assert_false(
        qubes_event_name_matches("domain-start", "domain-start-failed"));
    g_assert_true(qubes_event_name_matches("domain-start", "domain-start"));
}

static void test_exact_and_wildcards(Fixture *f, gconstpointer data)
{
    qubes_event_add_class_handler(f->reg, "QubesVM", "property-set:label",
                                  record, 0, rec(f, "exact"), g_free);
    qubes_event_add_class_handler(f->reg, "QubesVM", "property-set:*", record,
                                  0, rec(f, "wild"), g_free);
    qubes_event_add_class_handler(f->reg, "QubesVM", "*", record, 0,
                                  rec(f, "all"), g_free);
    qubes_event_add_class_handler(f->reg, "QubesVM", "domain-*", record, 0,
                                  rec(f, "domain"), g_free);
    g_autofree char *a = fire(f, "property-set:label", NULL);
    g_assert_cmpstr(a, ==, "exact(red) wild(red) all(red)");
    g_autofree char *b = fire(f, "property-set:netvm", NULL);
    g_assert_cmpstr(b, ==, "wild(red) all(red)");
    g_autofree char *c = fire(f, "domain-feature-set:gui", NULL);
    g_assert_cmpstr(c, ==, "all(red) domain(red)");
    /* A class outside the chain never hears it. */
    qubes_event_add_class_handler(f->reg, "TemplateVM", "*", record, 0,
                                  rec(f, "template"), g_free);
    g_autofree char *d = fire(f, "domain-start", NULL);
    g_assert_cmpstr(d, ==, "all(red) domain(red)");
}

static void add_chain(Fixture *f)
{
    qubes_event_add_class_handler(f->reg, "BaseVM", "*", record, 0,
                                  rec(f, "base"), g_free);
    qubes_event_add_class_handler(f->reg, "QubesVM", "*", record, 0,
                                  rec(f, "qubesvm-ext"), g_free);
    qubes_event_add_class_handler(f->reg, "QubesVM", "*", record,
                                  QUBES_HANDLER_BOUND, rec(f, "qubesvm"),
                                  g_free);
    qubes_event_add_class_handler(f->reg, "AppVM", "*", record, 0,
                                  rec(f, "appvm"), g_free);
    qubes_emitter_add_handler(&f->vm, "*", record, rec(f, "own"), g_free);
}

static void test_order(Fixture *f, gconstpointer data)
{
    add_chain(f);
    /* Post-events: from the base outwards to the emitter's own; within a
     * class the bound handler first. */
    g_autofree char *post = fire(f, "property-set:label", NULL);
    g_assert_cmpstr(post, ==,
                    "base(red) qubesvm(red) qubesvm-ext(red) appvm(red) "
                    "own(red)");
    /* Pre-events: the most specific first. */
    g_autofree char *pre = fire(f, "property-pre-set:label", NULL);
    g_assert_cmpstr(pre, ==,
                    "own(red) appvm(red) qubesvm(red) qubesvm-ext(red) "
                    "base(red)");
}

/* A class handler marked AS_INSTANCE (admin.Events' subscriber) runs
 * with the emitter's own handlers: last for an event, first for a
 * pre-event; a class outside the chain still never hears it. */
static void test_as_instance(Fixture *f, gconstpointer data)
{
    add_chain(f);
    qubes_event_add_class_handler(f->reg, "BaseVM", "*", record,
                                  QUBES_HANDLER_AS_INSTANCE, rec(f, "sub"),
                                  g_free);
    qubes_event_add_class_handler(f->reg, "TemplateVM", "*", record,
                                  QUBES_HANDLER_AS_INSTANCE, rec(f, "tpl"),
                                  g_free);
    g_autofree char *post = fire(f, "property-set:label", NULL);
    g_assert_cmpstr(post, ==,
                    "base(red) qubesvm(red) qubesvm-ext(red) appvm(red) "
                    "own(red) sub(red)");
    g_autofree char *pre = fire(f, "property-pre-set:label", NULL);
    g_assert_cmpstr(pre, ==,
                    "own(red) sub(red) appvm(red) qubesvm(red) "
                    "qubesvm-ext(red) base(red)");
}

static void test_veto(Fixture *f, gconstpointer data)
{
    add_chain(f);
    Rec *no = rec(f, "veto");
    no->veto = TRUE;
    qubes_event_add_class_handler(f->reg, "AppVM", "domain-pre-start", record,
                                  0, no, g_free);
    g_autoptr(GError) error = NULL;
    g_autofree char *r = fire(f, "domain-pre-start", &error);
    g_assert_null(r);
    g_assert_error(error, QUBES_ERROR, QUBES_ERROR_VALUE);
    g_assert_cmpstr(error->message, ==, "veto says no");
    /* Handlers after the veto did not run. */
    g_assert_cmpstr(f->log->str, ==, "own(red) appvm(red) veto(red) ");
}

static void test_effects_and_enabled(Fixture *f, gconstpointer data)
{
    qubes_event_add_class_handler(f->reg, "BaseVM", "*", record, 0,
                                  rec(f, "one"), g_free);
    qubes_event_add_class_handler(f->reg, "AppVM", "*", record, 0,
                                  rec(f, "two"), g_free);
    g_autoptr(GPtrArray) effects =
        qubes_emitter_fire(&f->vm, "domain-load", NULL, NULL);
    g_assert_cmpuint(effects->len, ==, 2);
    g_assert_cmpstr(effects->pdata[0], ==, "one");
    g_assert_cmpstr(effects->pdata[1], ==, "two");
    /* Nothing fires while loading (disabled). */
    f->vm.enabled = FALSE;
    g_string_truncate(f->log, 0);
    g_autoptr(GPtrArray) none =
        qubes_emitter_fire(&f->vm, "domain-load", NULL, NULL);
    g_assert_cmpuint(none->len, ==, 0);
    g_assert_cmpstr(f->log->str, ==, "");
}

static gboolean remove_self(QubesEvent *ev, gpointer data, GError **error)
{
    guint *id = data;
    g_assert_true(qubes_emitter_remove_handler(ev->subject, *id));
    return TRUE;
}

static void test_remove(Fixture *f, gconstpointer data)
{
    guint a = qubes_event_add_class_handler(f->reg, "QubesVM", "*", record, 0,
                                            rec(f, "a"), g_free);
    qubes_event_add_class_handler(f->reg, "QubesVM", "*", record, 0,
                                  rec(f, "b"), g_free);
    g_assert_true(qubes_event_remove_class_handler(f->reg, a));
    g_assert_false(qubes_event_remove_class_handler(f->reg, a));
    g_autofree char *r = fire(f, "x", NULL);
    g_assert_cmpstr(r, ==, "b(red)");
    /* A handler may remove itself while the event is being fired. */
    guint *id = g_new(guint, 1);
    *id = qubes_emitter_add_handler(&f->vm, "x", remove_self, id, g_free);
    g_autofree char *r2 = fire(f, "x", NULL);
    g_autofree char *r3 = fire(f, "x", NULL);
    g_assert_cmpstr(r3, ==, "b(red)");
}

typedef struct {
    GString *log;
    const char *tag;
    guint delay_ms;
    gboolean fail;
} Slow;

typedef struct {
    Slow *s;
    GTask *task;
    QubesEvent *ev;
} Pending;

static gboolean slow_done(gpointer data)
{
    Pending *p = data;
    g_string_append_printf(p->s->log, "%s-done ", p->s->tag);
    g_ptr_array_add(p->ev->effects, g_strdup(p->s->tag));
    qubes_event_async_return(
        p->task, p->s->fail ? g_error_new(QUBES_ERROR, QUBES_ERROR_VALUE,
                                          "%s failed", p->s->tag)
                            : NULL);
    g_free(p);
    return G_SOURCE_REMOVE;
}

static void slow_handler(QubesEvent *ev, gpointer data, GTask *task)
{
    Slow *s = data;
    g_string_append_printf(s->log, "%s-start ", s->tag);
    Pending *p = g_new0(Pending, 1);
    p->s = s;
    p->task = task;
    p->ev = ev;
    g_timeout_add(s->delay_ms, slow_done, p);
}

static void got_result(GObject *src, GAsyncResult *res, gpointer data)
{
    gpointer *out = data;
    GError *error = NULL;
    out[0] = qubes_emitter_fire_finish(NULL, res, &error);
    out[1] = error;
}

static void test_async(Fixture *f, gconstpointer data)
{
    Slow s1 = {f->log, "slow", 60, FALSE}, s2 = {f->log, "fast", 10, FALSE};
    qubes_event_add_class_async_handler(f->reg, "QubesVM", "domain-start",
                                        slow_handler, 0, &s1, NULL);
    qubes_event_add_class_async_handler(f->reg, "AppVM", "domain-*",
                                        slow_handler, 0, &s2, NULL);
    qubes_event_add_class_handler(f->reg, "BaseVM", "*", record, 0,
                                  rec(f, "sync"), g_free);
    /* The synchronous path refuses an event with asynchronous handlers. */
    g_autoptr(GError) error = NULL;
    g_assert_null(qubes_emitter_fire(&f->vm, "domain-start", NULL, &error));
    g_assert_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION);

    g_string_truncate(f->log, 0);
    gpointer out[2] = {NULL, NULL};
    qubes_emitter_fire_async(&f->vm, "domain-start", NULL, NULL, got_result,
                             out);
    while (!out[0] && !out[1])
        g_main_context_iteration(NULL, TRUE);
    g_assert_null(out[1]);
    g_autoptr(GPtrArray) effects = out[0];
    /* Sync first, then both async ones start together and finish in their
     * own time. */
    g_assert_cmpstr(f->log->str, ==,
                    "sync slow-start fast-start fast-done slow-done ");
    g_assert_cmpuint(effects->len, ==, 3);

    /* A failing asynchronous handler fails the firing, after all ended. */
    s2.fail = TRUE;
    out[0] = out[1] = NULL;
    qubes_emitter_fire_async(&f->vm, "domain-start", NULL, NULL, got_result,
                             out);
    while (!out[0] && !out[1])
        g_main_context_iteration(NULL, TRUE);
    g_autoptr(GError) failed = out[1];
    g_assert_error(failed, QUBES_ERROR, QUBES_ERROR_VALUE);
    g_assert_cmpstr(failed->message, ==, "fast failed");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/events/patterns", test_patterns);
#define ADD(path, fn) g_test_add(path, Fixture, NULL, setup, fn, teardown)
    ADD("/events/exact-and-wildcards", test_exact_and_wildcards);
    ADD("/events/order", test_order);
    ADD("/events/as-instance", test_as_instance);
    ADD("/events/veto", test_veto);
    ADD("/events/effects-and-enabled", test_effects_and_enabled);
    ADD("/events/remove", test_remove);
    ADD("/events/async", test_async);
    return g_test_run();
}
