/* preload.c: a disposable template's preloaded-disposable bookkeeping,
 * as far as the reference answers it (qubes/vm/mix/dvmtemplate.py and
 * qubes/vm/dispvm.py on master):
 *
 * - the preload-dispvm-max, preload-dispvm and preload-dispvm-delay
 *   features are checked before they are set, in master's words, and
 *   so are dom0's preload-dispvm-max, -threshold and -delay (the
 *   system's: qubes/vm/adminvm.py);
 * - a DispVM's is_preload says whether its template's preload-dispvm
 *   list names it, and a change of that list tells each qube it adds or
 *   drops (property-reset:is_preload), as master does;
 * - admin.vm.CreateDisposable+preload is refused for a template that
 *   cannot preload (admin-vm.c asks qubes_preload_check_supported).
 *
 * Preloading itself (disposables started in the background, paused,
 * and handed out on request) is the runtime's: src/vm/preload-run.c. */
#include "preload.h"
#include "qube-features.h"
#include "lookup.h"

#include <string.h>

#define RPC_WAIT "qubes.WaitForRunningSystem"

/* get_feat_preload: the names in the preload-dispvm feature, split on
 * single spaces as Python's str.split(" ") does (so "a  b" holds an
 * empty name); none when it is unset or empty. */
static GStrv split_list(const char *value)
{
    if (!value || !*value)
        return g_new0(char *, 1);
    return g_strsplit(value, " ", -1);
}

/* Python's int(value or 0) for a feature that was checked when set; a
 * value a hand-written qubes.xml made invalid counts as 0. */
static gint64 feature_int(const char *value)
{
    if (!value || !*value)
        return 0;
    g_autofree char *v = g_strstrip(g_strdup(value));
    char *end = NULL;
    gint64 n = g_ascii_strtoll(v, &end, 10);
    return end && end != v && !*end && n > 0 ? n : 0;
}

gboolean qubes_preload_class(QubesDomain *dom)
{
    /* DVMTemplateMixin's: the classes that can be disposable templates */
    return strcmp(dom->klass->name, "AppVM") == 0 ||
           strcmp(dom->klass->name, "StandaloneVM") == 0;
}

QubesDomain *qubes_preload_global_dvm(QubesApp *app)
{
    g_autofree char *def = NULL;
    qubes_props_get(&app->props, "default_dispvm", &def, NULL, NULL);
    return def ? g_hash_table_lookup(app->by_name, def) : NULL;
}

gboolean qubes_preload_global_set(QubesDomain *self)
{
    QubesDomain *dom0 = qubes_app_get_domain_by_qid(self->app, 0);
    return dom0 && qubes_preload_global_dvm(self->app) == self &&
           qubes_domain_feature_get(dom0, "preload-dispvm-max");
}

gint64 qubes_preload_threshold(QubesApp *app)
{
    QubesDomain *dom0 = qubes_app_get_domain_by_qid(app, 0);
    gint64 mib = feature_int(
        dom0 ? qubes_domain_feature_get(dom0, "preload-dispvm-threshold")
             : NULL);
    /* past what bytes can count it is as invalid as a word: 0 */
    return mib <= G_MAXINT64 >> 20 ? mib << 20 : 0;
}

/* get_feat_preload_max: for the system's default_dispvm, dom0's
 * preload-dispvm-max when dom0 has one (the global setting), else the
 * qube's own. */
gint64 qubes_preload_max(QubesDomain *self)
{
    QubesDomain *owner = qubes_preload_global_set(self)
                             ? qubes_app_get_domain_by_qid(self->app, 0)
                             : self;
    return feature_int(qubes_domain_feature_get(owner, "preload-dispvm-max"));
}

GStrv qubes_preload_list(QubesDomain *dvm)
{
    return split_list(qubes_domain_feature_get(dvm, "preload-dispvm"));
}

void qubes_preload_list_set(QubesDomain *dvm, GPtrArray *names)
{
    g_ptr_array_add(names, NULL);
    g_autofree char *v = g_strjoinv(" ", (char **)names->pdata);
    g_ptr_array_remove_index(names, names->len - 1);
    g_autoptr(GError) err = NULL;
    if (!qubes_domain_feature_set(dvm, "preload-dispvm", v, &err))
        g_warning("%s: preload-dispvm not updated: %s", dvm->name,
                  err->message);
}

void qubes_preload_list_remove(QubesDomain *dvm, const char *name,
                               const char *reason)
{
    g_auto(GStrv) old = qubes_preload_list(dvm);
    if (!g_strv_contains((const char *const *)old, name))
        return;
    g_autoptr(GPtrArray) kept = g_ptr_array_new();
    for (guint i = 0; old[i]; i++)
        if (strcmp(old[i], name) != 0)
            g_ptr_array_add(kept, old[i]);
    g_message("%s: removing qube(s) from preloaded list because %s: '%s'",
              dvm->name, reason, name);
    qubes_preload_list_set(dvm, kept);
}

/* A feature value Python takes as true: set and not empty. */
static gboolean truthy(const char *v)
{
    return v && *v;
}

gboolean qubes_preload_check_supported(QubesDomain *dvm, GError **error)
{
    const char *v = qubes_domain_feature_check(dvm, "supported-rpc." RPC_WAIT,
                                               TRUE, FALSE, FALSE, NULL);
    if (truthy(v))
        return TRUE;
    g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                        "Qube does not support the RPC '" RPC_WAIT
                        "' but tried to preload, check if template is "
                        "outdated");
    return FALSE;
}

/* A count (preload-dispvm-max) or MiB (preload-dispvm-threshold): digits
 * only, as Python's str.isdigit() (an empty value is 0). */
static gboolean check_digits(QubesEvent *ev, GError **error)
{
    const char *value = qubes_event_get(ev, "value");
    const char *feature = qubes_event_get(ev, "feature");
    if (!value || !*value)
        value = "0";
    for (const char *p = value; *p; p++) {
        if (!g_ascii_isdigit(*p)) {
            g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                        "Invalid %s value: not a digit", feature);
            return FALSE;
        }
    }
    return TRUE;
}

/* AdminVM's domain-feature-pre-set:preload-dispvm-threshold: the memory
 * kept free of preloads, in MiB. */
static gboolean on_pre_set_threshold(QubesEvent *ev, gpointer data,
                                     GError **error)
{
    return check_digits(ev, error);
}

/* AdminVM's domain-feature-pre-set:preload-dispvm-max: the system's
 * default_dispvm's maximum, so that qube hears the same pre-set event
 * (master's adminvm.py) and refuses what it would refuse as its own
 * value (qrexec, the RPC, a count). The same value again asks nothing. */
static gboolean on_pre_set_global_max(QubesEvent *ev, gpointer data,
                                      GError **error)
{
    QubesApp *app = data;
    const char *value = qubes_event_get(ev, "value");
    const char *old = qubes_event_get(ev, "oldvalue");
    if (g_strcmp0(value, old) == 0)
        return TRUE;
    QubesDomain *d = qubes_preload_global_dvm(app);
    if (d) {
        const char *kw[] = {"feature", "preload-dispvm-max",    "value",
                            value,     old ? "oldvalue" : NULL, old,
                            NULL};
        g_autoptr(GPtrArray) fx = qubes_emitter_fire(
            &d->emitter, "domain-feature-pre-set:preload-dispvm-max", kw,
            error);
        if (!fx)
            return FALSE;
    }
    return check_digits(ev, error);
}

/* domain-feature-pre-set:preload-dispvm-max: the qube must run qrexec
 * and answer qubes.WaitForRunningSystem (master waits for it before it
 * pauses a preloaded disposable), and the value is a count. */
static gboolean on_pre_set_max(QubesEvent *ev, gpointer data, GError **error)
{
    QubesDomain *self = qubes_domain_of_emitter(ev->subject);
    if (!truthy(qubes_domain_feature_check(self, "qrexec", TRUE, FALSE, FALSE,
                                           NULL))) {
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                            "Qube does not support qrexec");
        return FALSE;
    }
    if (!truthy(qubes_domain_feature_check(self, "supported-rpc." RPC_WAIT,
                                           TRUE, FALSE, FALSE, NULL))) {
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                            "Qube does not support the RPC '" RPC_WAIT "'");
        return FALSE;
    }
    return check_digits(ev, error);
}

static gboolean in_list(char **list, const char *name)
{
    return g_strv_contains((const char *const *)list, name);
}

/* Joins @names as "'a, b'", the way master quotes the qubes it names. */
static char *quoted(GPtrArray *names)
{
    g_ptr_array_add(names, NULL);
    g_autofree char *j = g_strjoinv(", ", (char **)names->pdata);
    g_ptr_array_remove_index(names, names->len - 1);
    return g_strdup_printf("'%s'", j);
}

/* domain-feature-pre-set:preload-dispvm: the list may grow only up to
 * preload-dispvm-max, names each qube once, and what it adds must be
 * DispVMs of this template. */
static gboolean on_pre_set_list(QubesEvent *ev, gpointer data, GError **error)
{
    QubesDomain *self = qubes_domain_of_emitter(ev->subject);
    g_auto(GStrv) old = split_list(qubes_event_get(ev, "oldvalue"));
    g_auto(GStrv) now = split_list(qubes_event_get(ev, "value"));
    guint old_len = g_strv_length(old), new_len = g_strv_length(now);
    const char *prefix = "Invalid preload-dispvm value:";
    /* the same names in another order, or an empty list: nothing to
     * check */
    gboolean same = old_len == new_len;
    for (guint i = 0; same && i < new_len; i++) {
        guint here = 0, there = 0;
        for (guint k = 0; k < new_len; k++) {
            here += strcmp(now[k], now[i]) == 0;
            there += strcmp(old[k], now[i]) == 0;
        }
        same = here == there;
    }
    if (same || new_len == 0)
        return TRUE;
    gint64 max = qubes_preload_max(self);
    if ((gint64)new_len > MAX(max, (gint64)old_len)) {
        g_set_error(
            error, QUBES_ERROR, QUBES_ERROR_VALUE,
            "%s can't increment: qube count (%u) is either bigger "
            "than old count (%u) or preload-dispvm-max (%" G_GINT64_FORMAT ")",
            prefix, new_len, old_len, max);
        return FALSE;
    }
    g_autoptr(GPtrArray) dups = g_ptr_array_new();
    for (guint i = 0; i < new_len; i++) {
        gboolean again = FALSE;
        for (guint k = i + 1; k < new_len && !again; k++)
            again = strcmp(now[i], now[k]) == 0;
        gboolean listed = FALSE;
        for (guint k = 0; k < dups->len && !listed; k++)
            listed = strcmp(dups->pdata[k], now[i]) == 0;
        if (again && !listed)
            g_ptr_array_add(dups, now[i]);
    }
    if (dups->len) {
        g_autofree char *q = quoted(dups);
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                    "%s contain duplicates: %s", prefix, q);
        return FALSE;
    }
    g_autoptr(GPtrArray) absent = g_ptr_array_new();
    g_autoptr(GPtrArray) alien = g_ptr_array_new();
    for (guint i = 0; i < new_len; i++) {
        if (in_list(old, now[i]))
            continue;
        QubesDomain *d = g_hash_table_lookup(self->app->by_name, now[i]);
        if (!d)
            g_ptr_array_add(absent, now[i]);
        else if (qubes_domain_get_template(d) != self)
            g_ptr_array_add(alien, now[i]);
    }
    if (absent->len) {
        g_autofree char *q = quoted(absent);
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE, "%s non qube(s): %s",
                    prefix, q);
        return FALSE;
    }
    if (alien->len) {
        g_autofree char *q = quoted(alien);
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                    "%s qube(s) not based on %s: %s", prefix, self->name, q);
        return FALSE;
    }
    return TRUE;
}

/* domain-feature-set:preload-dispvm: each qube the list added or
 * dropped hears property-reset:is_preload. */
static gboolean on_set_list(QubesEvent *ev, gpointer data, GError **error)
{
    QubesDomain *self = qubes_domain_of_emitter(ev->subject);
    g_auto(GStrv) old = split_list(qubes_event_get(ev, "oldvalue"));
    g_auto(GStrv) now = split_list(qubes_event_get(ev, "value"));
    for (int pass = 0; pass < 2; pass++) {
        char **from = pass ? old : now, **other = pass ? now : old;
        for (guint i = 0; from[i]; i++) {
            QubesDomain *d = g_hash_table_lookup(self->app->by_name, from[i]);
            if (!d || in_list(other, from[i]))
                continue;
            qubes_props_notify_reset(&d->props, "is_preload", NULL);
        }
    }
    return TRUE;
}

/* property-pre-set:template on a disposable template (an AppVM): not
 * while a disposable based on it runs, its root coming from the old
 * template; preloaded ones do not hold the change back, they are
 * removed once it is made (preload-run.c). */
static gboolean on_pre_set_template(QubesEvent *ev, gpointer data,
                                    GError **error)
{
    QubesApp *app = data;
    QubesDomain *self = qubes_domain_of_emitter(ev->subject);
    if (g_strcmp0(qubes_event_get(ev, "newvalue"),
                  qubes_event_get(ev, "oldvalue")) == 0)
        return TRUE;
    g_auto(GStrv) list = qubes_preload_list(self);
    for (guint i = 0; i < app->domains->len; i++) {
        QubesDomain *d = app->domains->pdata[i];
        if (strcmp(d->klass->name, "DispVM") != 0 ||
            qubes_domain_get_template(d) != self ||
            d->power == QUBES_POWER_HALTED || d->power == QUBES_POWER_CRASHED ||
            in_list(list, d->name) || d->preload_requested)
            continue;
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VM_IN_USE,
                    "Cannot change template while there are running "
                    "disposables based on this disposable template");
        return FALSE;
    }
    return TRUE;
}

/* domain-feature-pre-set:preload-dispvm-delay: a number, as Python's
 * float() reads one (an empty value is 0). */
static gboolean on_pre_set_delay(QubesEvent *ev, gpointer data, GError **error)
{
    const char *value = qubes_event_get(ev, "value");
    if (g_strcmp0(value, qubes_event_get(ev, "oldvalue")) == 0 || !value ||
        !*value)
        return TRUE;
    g_autofree char *v = g_strstrip(g_strdup(value));
    char *end = NULL;
    /* strtod also reads hexadecimal, which float() does not */
    gboolean hex = strchr(v, 'x') || strchr(v, 'X');
    g_ascii_strtod(v, &end);
    if (!*v || hex || !end || *end) {
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                            "Invalid preload-dispvm-delay value: not an "
                            "integer or float");
        return FALSE;
    }
    return TRUE;
}

char *qubes_preload_is_preload(QubesDomain *dispvm)
{
    QubesDomain *tpl = qubes_domain_get_template(dispvm);
    g_auto(GStrv) list = tpl ? qubes_preload_list(tpl) : split_list(NULL);
    return g_strdup(in_list(list, dispvm->name) || dispvm->preload_requested
                        ? "True"
                        : "False");
}

void qubes_preload_forget(QubesDomain *dispvm)
{
    QubesDomain *tpl = qubes_domain_get_template(dispvm);
    if (tpl)
        qubes_preload_list_remove(tpl, dispvm->name,
                                  "automatic cleanup was called");
}

void qubes_preload_register_handlers(QubesApp *app)
{
    /* DVMTemplateMixin's: the classes that can be disposable templates */
    static const char *const classes[] = {"AppVM", "StandaloneVM"};
    for (guint i = 0; i < G_N_ELEMENTS(classes); i++) {
        qubes_event_add_class_handler(
            app->registry, classes[i],
            "domain-feature-pre-set:preload-dispvm-max", on_pre_set_max,
            QUBES_HANDLER_BOUND, app, NULL);
        qubes_event_add_class_handler(
            app->registry, classes[i], "domain-feature-pre-set:preload-dispvm",
            on_pre_set_list, QUBES_HANDLER_BOUND, app, NULL);
        qubes_event_add_class_handler(
            app->registry, classes[i], "domain-feature-set:preload-dispvm",
            on_set_list, QUBES_HANDLER_BOUND, app, NULL);
        qubes_event_add_class_handler(
            app->registry, classes[i],
            "domain-feature-pre-set:preload-dispvm-delay", on_pre_set_delay,
            QUBES_HANDLER_BOUND, app, NULL);
    }
    qubes_event_add_class_handler(
        app->registry, "AppVM", "property-pre-set:template",
        on_pre_set_template, QUBES_HANDLER_BOUND, app, NULL);
    /* dom0's: the global maximum, threshold and delay */
    qubes_event_add_class_handler(
        app->registry, "AdminVM", "domain-feature-pre-set:preload-dispvm-max",
        on_pre_set_global_max, QUBES_HANDLER_BOUND, app, NULL);
    qubes_event_add_class_handler(
        app->registry, "AdminVM",
        "domain-feature-pre-set:preload-dispvm-threshold", on_pre_set_threshold,
        QUBES_HANDLER_BOUND, app, NULL);
    qubes_event_add_class_handler(
        app->registry, "AdminVM", "domain-feature-pre-set:preload-dispvm-delay",
        on_pre_set_delay, QUBES_HANDLER_BOUND, app, NULL);
}
