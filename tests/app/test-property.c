/* test-property.c: typed properties: defaults, sanitising, setters,
 * write-once and read-only, the event sequence, vetoes, load and save. */
#include "property.h"

#include "qubes-error.h"

#include <string.h>

static char *memory_default(QubesPropHolder *h, const QubesPropDef *def)
{
    /* Computed from another property, as maxmem from memory. */
    g_autofree char *mem = NULL;
    qubes_props_get(h, "memory", &mem, NULL, NULL);
    return g_strdup_printf("%d", 4 * atoi(mem));
}

static char *label_setter(QubesPropHolder *h, const QubesPropDef *def,
                          const char *value, GError **error)
{
    if (strcmp(value, "red") && strcmp(value, "black")) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_PROPERTY_VALUE,
                    "No such label: %s", value);
        return NULL;
    }
    return g_strdup(value);
}

static const QubesPropDef base_props[] = {
    {.name = "name",
     .type = QUBES_PROP_STR,
     .flags = QUBES_PROP_WRITE_ONCE | QUBES_PROP_NO_CLONE,
     .order = -1,
     .doc = "Name of the qube"},
    {.name = "label",
     .type = QUBES_PROP_LABEL,
     .setter = label_setter,
     .doc = "Colourful label"},
    {.name = "memory", .type = QUBES_PROP_INT, .default_value = "400"},
    {.name = "debug", .type = QUBES_PROP_BOOL, .default_value = "False"},
    {.name = "comment", .type = QUBES_PROP_STR, .default_value = "base"},
    {NULL},
};

static const QubesPropDef app_props[] = {
    {.name = "maxmem",
     .type = QUBES_PROP_INT,
     .load_stage = 4,
     .default_func = memory_default},
    {.name = "start_time",
     .type = QUBES_PROP_STR,
     .flags = QUBES_PROP_READ_ONLY | QUBES_PROP_DONT_SAVE},
    {.name = "comment", .type = QUBES_PROP_STR, .default_value = "app"},
    {.name = "template", .type = QUBES_PROP_VM, .load_stage = 4},
    {NULL},
};

static const QubesPropDef *const chain[] = {app_props, base_props, NULL};
static const char *const classes[] = {"AppVM", "QubesVM", NULL};

typedef struct {
    QubesEventRegistry *reg;
    QubesEmitter em;
    QubesPropHolder props;
    GString *log;
} Fixture;

static gboolean log_event(QubesEvent *ev, gpointer data, GError **error)
{
    GString *log = data;
    g_string_append(log, ev->name);
    for (const char *const *kv = ev->kwargs; kv && *kv; kv += 2)
        g_string_append_printf(log, " %s=%s", kv[0], kv[1]);
    g_string_append(log, "\n");
    return TRUE;
}

static gboolean no_black(QubesEvent *ev, gpointer data, GError **error)
{
    if (g_strcmp0(qubes_event_get(ev, "newvalue"), "black") == 0) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE, "black vetoed");
        return FALSE;
    }
    return TRUE;
}

static void setup(Fixture *f, gconstpointer data)
{
    f->reg = qubes_event_registry_new();
    qubes_emitter_init(&f->em, f->reg, classes, "work");
    f->em.enabled = TRUE;
    qubes_props_init(&f->props, &f->em, "AppVM", chain, NULL);
    f->log = g_string_new(NULL);
    qubes_emitter_add_handler(&f->em, "property-*", log_event, f->log, NULL);
}

static void teardown(Fixture *f, gconstpointer data)
{
    qubes_props_clear(&f->props);
    qubes_emitter_clear(&f->em);
    qubes_event_registry_free(f->reg);
    g_string_free(f->log, TRUE);
}

static char *get(Fixture *f, const char *name, gboolean *is_default)
{
    char *v = NULL;
    g_autoptr(GError) error = NULL;
    g_assert_true(qubes_props_get(&f->props, name, &v, is_default, &error));
    g_assert_no_error(error);
    return v;
}

static void test_defaults(Fixture *f, gconstpointer data)
{
    gboolean dflt;
    g_autofree char *mem = get(f, "memory", &dflt);
    g_assert_cmpstr(mem, ==, "400");
    g_assert_true(dflt);
    g_autofree char *max = get(f, "maxmem", NULL);
    g_assert_cmpstr(max, ==, "1600"); /* computed */
    g_autofree char *comment = get(f, "comment", NULL);
    g_assert_cmpstr(comment, ==, "app"); /* the subclass's wins */
    g_autofree char *tpl = get(f, "template", &dflt);
    g_assert_null(tpl); /* no value, no default */
    g_assert_true(dflt);
    /* Sorted by load stage, order, name: name first, maxmem late. */
    const GPtrArray *defs = qubes_props_list(&f->props);
    g_assert_cmpuint(defs->len, ==, 8);
    g_assert_cmpstr(((QubesPropDef *)defs->pdata[0])->name, ==, "name");
    g_assert_cmpstr(((QubesPropDef *)defs->pdata[7])->name, ==, "template");
    g_autoptr(GError) error = NULL;
    g_assert_null(qubes_props_def(&f->props, "nope", &error));
    g_assert_error(error, QUBES_ERROR, QUBES_ERROR_NO_SUCH_PROPERTY);
    g_assert_cmpstr(qubes_prop_type_name(QUBES_PROP_VM), ==, "vm");
}

static void test_set_and_events(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_assert_true(qubes_props_set(&f->props, "memory", "800", &error));
    g_autofree char *max = get(f, "maxmem", NULL);
    g_assert_cmpstr(max, ==, "3200");
    g_assert_true(qubes_props_set(&f->props, "debug", "ON", &error));
    g_autofree char *dbg = get(f, "debug", NULL);
    g_assert_cmpstr(dbg, ==, "True");
    g_assert_true(qubes_props_reset(&f->props, "memory", &error));
    g_assert_no_error(error);
    g_assert_cmpstr(f->log->str, ==,
                    "property-pre-set:memory name=memory newvalue=800 "
                    "oldvalue=400\n"
                    "property-set:memory name=memory newvalue=800 "
                    "oldvalue=400\n"
                    "property-pre-set:debug name=debug newvalue=True "
                    "oldvalue=False\n"
                    "property-set:debug name=debug newvalue=True "
                    "oldvalue=False\n"
                    "property-pre-reset:memory name=memory oldvalue=800\n"
                    "property-pre-del:memory name=memory oldvalue=800\n"
                    "property-reset:memory name=memory oldvalue=800\n"
                    "property-del:memory name=memory oldvalue=800\n");
    /* No old value: no oldvalue argument. */
    g_string_truncate(f->log, 0);
    g_assert_true(qubes_props_set(&f->props, "template", "debian-12", &error));
    g_assert_cmpstr(f->log->str, ==,
                    "property-pre-set:template name=template "
                    "newvalue=debian-12\n"
                    "property-set:template name=template "
                    "newvalue=debian-12\n");
}

static void expect_refused(Fixture *f, const char *name, const char *value,
                           int code, const char *needle)
{
    g_autofree char *before = get(f, name, NULL);
    g_string_truncate(f->log, 0);
    g_autoptr(GError) error = NULL;
    g_assert_false(qubes_props_set(&f->props, name, value, &error));
    g_assert_error(error, QUBES_ERROR, code);
    if (!strstr(error->message, needle))
        g_error("\"%s\" lacks \"%s\"", error->message, needle);
    g_autofree char *after = get(f, name, NULL);
    g_assert_cmpstr(after, ==, before); /* nothing changed */
}

static void test_refused(Fixture *f, gconstpointer data)
{
    /* The reference's property.sanitize: int() rules for integers, its
     * boolean words, printable ASCII (newlines included) for text. */
    expect_refused(f, "memory", "12a", QUBES_ERROR_VALUE, "");
    expect_refused(f, "memory", "1__0", QUBES_ERROR_VALUE, "");
    expect_refused(f, "debug", "maybe", QUBES_ERROR_VALUE,
                   "Invalid literal for boolean property: 'maybe'");
    expect_refused(f, "comment", "bell\a", QUBES_ERROR_VALUE,
                   "Invalid characters in property value");
    expect_refused(f, "comment", "caf\xc3\xa9", QUBES_ERROR_VALUE, "");
    expect_refused(f, "label", "green", QUBES_ERROR_PROPERTY_VALUE,
                   "No such label");
    expect_refused(f, "start_time", "1", QUBES_ERROR_PROPERTY_VALUE,
                   "property 'start_time' on AppVM instance cannot be set");
    g_assert_cmpstr(f->log->str, ==, ""); /* no event for a refusal */
    g_autoptr(GError) error = NULL;
    g_assert_false(qubes_props_set(&f->props, "nope", "1", &error));
    g_assert_error(error, QUBES_ERROR, QUBES_ERROR_NO_SUCH_PROPERTY);
    /* What int() takes is taken, in its canonical form. */
    g_clear_error(&error);
    g_assert_true(qubes_props_set(&f->props, "memory", " 0400 ", &error));
    g_autofree char *mem = get(f, "memory", NULL);
    g_assert_cmpstr(mem, ==, "400");
    g_assert_true(qubes_props_set(&f->props, "memory", "+1_000", &error));
    g_autofree char *mem2 = get(f, "memory", NULL);
    g_assert_cmpstr(mem2, ==, "1000");
    g_assert_true(qubes_props_set(&f->props, "comment", "two\nlines", &error));
}

static void test_veto_and_write_once(Fixture *f, gconstpointer data)
{
    qubes_emitter_add_handler(&f->em, "property-pre-set:label", no_black, NULL,
                              NULL);
    g_autoptr(GError) error = NULL;
    g_assert_true(qubes_props_set(&f->props, "label", "red", &error));
    g_assert_false(qubes_props_set(&f->props, "label", "black", &error));
    g_assert_error(error, QUBES_ERROR, QUBES_ERROR_VALUE);
    g_autofree char *label = get(f, "label", NULL);
    g_assert_cmpstr(label, ==, "red");
    g_clear_error(&error);
    /* Write-once: settable while unset, then never again. */
    g_assert_true(qubes_props_set(&f->props, "name", "work", &error));
    g_assert_false(qubes_props_set(&f->props, "name", "other", &error));
    g_assert_error(error, QUBES_ERROR, QUBES_ERROR_PROPERTY_VALUE);
    g_clear_error(&error);
    g_assert_false(qubes_props_reset(&f->props, "name", &error));
    g_autofree char *name = get(f, "name", NULL);
    g_assert_cmpstr(name, ==, "work");
}

static void test_load_save(Fixture *f, gconstpointer data)
{
    static const char doc[] =
        "<qubes><domains><domain id=\"domain-3\" class=\"AppVM\">"
        "<properties><property name=\"name\">work</property>"
        "<property name=\"memory\">1000</property>"
        "<property name=\"debug\">true</property>"
        "<property name=\"template\">debian-12</property>"
        "<property name=\"label\">red</property></properties>"
        "</domain></domains></qubes>";
    g_autoptr(GError) error = NULL;
    g_autoptr(QubesXml) x = qubes_xml_parse(doc, strlen(doc), "q", &error);
    g_assert_no_error(error);
    QxDomain *d = x->domains->pdata[0];
    /* Stage by stage, as the app loads; no events. */
    g_assert_true(
        qubes_props_load(&f->props, d->properties, 2, FALSE, NULL, &error));
    g_autofree char *tpl = get(f, "template", NULL);
    g_assert_null(tpl); /* stage 4 */
    g_assert_true(
        qubes_props_load(&f->props, d->properties, 4, FALSE, NULL, &error));
    g_assert_no_error(error);
    g_assert_cmpstr(f->log->str, ==, "");
    g_autofree char *dbg = get(f, "debug", NULL);
    g_assert_cmpstr(dbg, ==, "True");
    /* Saved: the set ones, canonical, in definition order; a computed
     * one is never saved. */
    g_autoptr(GPtrArray) saved = qubes_props_save(&f->props);
    GString *s = g_string_new(NULL);
    for (guint i = 0; i < saved->len; i++) {
        QxProperty *p = saved->pdata[i];
        g_string_append_printf(s, "%s=%s ", p->name, p->value);
    }
    g_autofree char *got = g_string_free(s, FALSE);
    g_assert_cmpstr(got, ==,
                    "name=work debug=True label=red memory=1000 "
                    "template=debian-12 ");
    /* A property the class does not have is an error. */
    static const char bad[] =
        "<qubes><domains><domain class=\"AppVM\"><properties>"
        "<property name=\"colour\">red</property></properties>"
        "</domain></domains></qubes>";
    g_autoptr(QubesXml) y = qubes_xml_parse(bad, strlen(bad), "q", &error);
    g_assert_false(qubes_props_load(
        &f->props, ((QxDomain *)y->domains->pdata[0])->properties, 0, FALSE,
        NULL, &error));
    g_assert_nonnull(
        strstr(error->message, "property colour not applicable to AppVM"));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
#define ADD(path, fn) g_test_add(path, Fixture, NULL, setup, fn, teardown)
    ADD("/property/defaults", test_defaults);
    ADD("/property/set-and-events", test_set_and_events);
    ADD("/property/refused", test_refused);
    ADD("/property/veto-and-write-once", test_veto_and_write_once);
    ADD("/property/load-save", test_load_save);
    return g_test_run();
}
