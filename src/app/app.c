/* app.c: the app object (qubes/app.py Qubes): global properties, labels,
 * pools, the domain collection, and loading and saving qubes.xml. See
 * app.h. */
#include "app.h"

#include "feature-checks.h"

#include "qubes-error.h"
#include "qubes-parse.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <string.h>

#define MAX_DEFAULT_LABEL 8

static QubesDomain *new_domain(QubesApp *app, const QubesDomainClass *klass,
                               guint qid, const char *name);

static QubesApp *owner_app(QubesPropHolder *h)
{
    return h->owner;
}

/* ---- global property defaults and setters ---- */

/* The newest kernel installed in base/vm-kernels (version order); once
 * per load or save (app->bulk_kernel), where every qube's kernel volume
 * asks for it: a folder scan each would be most of a load's time. */
static char *scan_default_kernel(QubesApp *app)
{
    g_autofree char *dir = g_build_filename(app->base_dir, "vm-kernels", NULL);
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    char *best = NULL;
    const char *name;
    while (d && (name = g_dir_read_name(d))) {
        g_autofree char *vmlinuz = g_build_filename(dir, name, "vmlinuz", NULL);
        if (!g_file_test(vmlinuz, G_FILE_TEST_IS_REGULAR))
            continue;
        if (!best || strverscmp(name, best) > 0) {
            g_free(best);
            best = g_strdup(name);
        }
    }
    return best ? best : g_strdup("");
}

static char *default_kernel(QubesPropHolder *h, const QubesPropDef *def)
{
    QubesApp *app = owner_app(h);
    if (app->bulk_kernel)
        return g_strdup(app->bulk_kernel);
    return scan_default_kernel(app);
}

/* Between these, the default kernel is read once: no kernel is
 * installed or removed inside a load or a save (both run on the main
 * thread, which alone changes the model). */
static void bulk_begin(QubesApp *app)
{
    app->bulk_kernel = scan_default_kernel(app);
}

static void bulk_end(QubesApp *app)
{
    g_clear_pointer(&app->bulk_kernel, g_free);
}

static char *default_pool(QubesPropHolder *h, const QubesPropDef *def)
{
    QubesApp *app = owner_app(h);
    if (strcmp(def->name, "default_pool") != 0)
        return qubes_props_value(&app->props, "default_pool");
    const char *first = NULL;
    for (guint i = 0; i < app->pools->len; i++) {
        QubesPool *p = app->pools->pdata[i];
        if (strcmp(qubes_pool_get_name(p), "varlibqubes") == 0)
            return g_strdup("varlibqubes");
        if (!first && strcmp(qubes_pool_get_driver(p), "linux-kernel") != 0)
            first = qubes_pool_get_name(p);
    }
    return g_strdup(first ? first : "");
}

static char *default_pool_kernel(QubesPropHolder *h, const QubesPropDef *def)
{
    QubesApp *app = owner_app(h);
    for (guint i = 0; i < app->pools->len; i++) {
        QubesPool *p = app->pools->pdata[i];
        if (strcmp(qubes_pool_get_driver(p), "linux-kernel") == 0)
            return g_strdup(qubes_pool_get_name(p));
    }
    return g_strdup("");
}

static char *default_dom0(QubesPropHolder *h, const QubesPropDef *def)
{
    return g_strdup("dom0");
}

static char *setter_pool(QubesPropHolder *h, const QubesPropDef *def,
                         const char *value, GError **error)
{
    if (!*value && strcmp(def->name, "default_pool_kernel") == 0)
        return g_strdup("");
    if (!qubes_app_get_pool(owner_app(h), value, NULL)) {
        qubes_prop_error(error, h, def, value, "No such storage pool");
        return NULL;
    }
    return g_strdup(value);
}

static char *setter_app_kernel(QubesPropHolder *h, const QubesPropDef *def,
                               const char *value, GError **error)
{
    return qubes_app_setter_kernel(owner_app(h), h, def, value, error);
}

/* _setter_default_netvm: no qube that follows the default may then
 * reach itself through netvm links. */
static gboolean default_netvm_ok(QubesApp *app, QubesPropHolder *h,
                                 const QubesPropDef *def, QubesDomain *net,
                                 GError **error)
{
    if (app->loading || app->checking)
        return TRUE;
    for (guint i = 0; i < app->domains->len; i++) {
        QubesDomain *vm = app->domains->pdata[i];
        if (!qubes_props_def(&vm->props, "netvm", NULL) ||
            !qubes_props_is_default(&vm->props, "netvm") ||
            strcmp(vm->klass->name, "TemplateVM") == 0)
            continue;
        if (net == vm || qubes_net_would_loop(vm, net)) {
            g_autofree char *why =
                g_strdup_printf("Network loop on '%s'", vm->name);
            return qubes_prop_error(error, h, def, net->name, why);
        }
    }
    return TRUE;
}

static char *setter_app_vm(QubesPropHolder *h, const QubesPropDef *def,
                           const char *value, GError **error)
{
    QubesApp *app = owner_app(h);
    if (strcmp(def->name, "default_dispvm") == 0 ||
        strcmp(def->name, "management_dispvm") == 0)
        return qubes_setter_disposable_template(app, h, def, value, error);
    if (!*value)
        return g_strdup("");
    QubesDomain *d = qubes_prop_vm(app, h, def, value, error);
    if (!d)
        return NULL;
    const char *want = NULL;
    if (strcmp(def->name, "default_template") == 0 &&
        strcmp(d->klass->name, "TemplateVM") != 0)
        want = "TemplateVM";
    if (want) {
        g_autofree char *why = g_strdup_printf(
            "wrong VM class: domains['%s'] is of type %s and not %s", value,
            d->klass->name, want);
        qubes_prop_error(error, h, def, value, why);
        return NULL;
    }
    /* master's _setter_default_netvm checks the loops; that it provides
     * network is ours (README) and comes after */
    if (strcmp(def->name, "default_netvm") == 0 &&
        (!default_netvm_ok(app, h, def, d, error) ||
         !qubes_prop_vm_provides_network(h, def, d, error)))
        return NULL;
    return g_strdup(value);
}

#define VM_PROP(n, d)                                                          \
    {                                                                          \
        .name = n, .type = QUBES_PROP_VM, .load_stage = 3,                     \
        .setter = setter_app_vm, .default_value = "", .doc = d                 \
    }
#define POOL_PROP(n, f, d)                                                     \
    {                                                                          \
        .name = n, .type = QUBES_PROP_STR, .load_stage = 3, .default_func = f, \
        .setter = setter_pool, .doc = d                                        \
    }

/* The host's memory in MiB, and its CPUs (the reference's host.*). */
static char *default_host_maxmem(QubesPropHolder *h, const QubesPropDef *def)
{
    QubesApp *app = h->owner;
    return g_strdup_printf("%" G_GUINT64_FORMAT, app->host_memory / 1024);
}

static char *default_no_cpus(QubesPropHolder *h, const QubesPropDef *def)
{
    return g_strdup_printf("%u", g_get_num_processors());
}

static const QubesPropDef app_props[] = {
    VM_PROP("clockvm", "Which VM to use as NTP proxy for updating AdminVM"),
    VM_PROP("updatevm", "Which VM to use as yum proxy for updating AdminVM "
                        "and TemplateVMs"),
    /* No default: GetDefault answers nothing, as the reference's. */
    {.name = "default_template",
     .type = QUBES_PROP_VM,
     .load_stage = 3,
     .setter = setter_app_vm,
     .doc = "Default template for new AppVMs"},
    VM_PROP("default_netvm", "Default NetVM for AppVMs. Initial state is "
                             "None, which means that AppVMs are not "
                             "connected to the Internet."),
    VM_PROP("default_dispvm",
            "Default disposable template to be used for spawning "
            "disposable qubes for service calls in this system."),
    VM_PROP("management_dispvm",
            "Default disposable template to be used for spawning "
            "disposable qubes for managing a qube in this system."),
    {.name = "default_guivm",
     .type = QUBES_PROP_VM,
     .load_stage = 3,
     .default_func = default_dom0,
     .setter = setter_app_vm,
     .doc = "Default GuiVM for VMs."},
    {.name = "default_audiovm",
     .type = QUBES_PROP_VM,
     .load_stage = 3,
     .default_func = default_dom0,
     .setter = setter_app_vm,
     .doc = "Default AudioVM for VMs."},
    POOL_PROP("default_pool", default_pool, "Default storage pool"),
    POOL_PROP("default_pool_private", default_pool,
              "Default storage pool for private volumes"),
    POOL_PROP("default_pool_root", default_pool,
              "Default storage pool for root volumes"),
    POOL_PROP("default_pool_volatile", default_pool,
              "Default storage pool for volatile volumes"),
    POOL_PROP("default_pool_kernel", default_pool_kernel,
              "Default storage pool for kernel volumes"),
    {.name = "default_kernel",
     .type = QUBES_PROP_STR,
     .load_stage = 3,
     .default_func = default_kernel,
     .setter = setter_app_kernel,
     .doc = "Which kernel to use when not overriden in VM"},
    {.name = "default_qrexec_timeout",
     .type = QUBES_PROP_INT,
     .load_stage = 3,
     .default_value = "60",
     .doc = "Default time in seconds after which qrexec connection attempt "
            "is deemed failed"},
    {.name = "default_shutdown_timeout",
     .type = QUBES_PROP_INT,
     .load_stage = 3,
     .default_value = "60",
     .doc = "Default time in seconds for VM shutdown to complete"},
    {.name = "maxmem",
     .type = QUBES_PROP_INT,
     .flags = QUBES_PROP_READ_ONLY,
     .load_stage = 3,
     .default_func = default_host_maxmem,
     .doc = "Maximum system memory."},
    {.name = "no_cpus",
     .type = QUBES_PROP_INT,
     .flags = QUBES_PROP_READ_ONLY,
     .load_stage = 3,
     .default_func = default_no_cpus,
     .doc = "Quantity of CPUs"},
    {.name = "stats_interval",
     .type = QUBES_PROP_INT,
     .load_stage = 3,
     .default_value = "3",
     .doc = "Interval in seconds for VM stats reporting (memory, CPU usage)"},
    {.name = "check_updates_vm",
     .type = QUBES_PROP_BOOL,
     .load_stage = 3,
     .default_value = "True",
     .doc = "Check for updates inside qubes"},
    {NULL},
};

static const QubesPropDef *const app_tables[] = {app_props, NULL};
static const char *const app_chain[] = {"Qubes", NULL};

/* ---- labels ---- */

gboolean qubes_app_add_label(QubesApp *app, const char *name, const char *color,
                             GError **error)
{
    if (qubes_app_get_label(app, name, NULL)) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                    "label already exists");
        return FALSE;
    }
    guint index = MAX_DEFAULT_LABEL;
    for (guint i = 0; i < app->labels->len; i++)
        index = MAX(index, ((QxLabel *)app->labels->pdata[i])->index);
    g_ptr_array_add(app->labels, qx_label_new(index + 1, color, name));
    return TRUE;
}

gboolean qubes_app_remove_label(QubesApp *app, const char *name, GError **error)
{
    const QxLabel *l = qubes_app_get_label(app, name, error);
    if (!l)
        return FALSE;
    if (l->index <= MAX_DEFAULT_LABEL) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                    "Label %s is a default label and cannot be removed",
                    l->name);
        return FALSE;
    }
    for (guint i = 0; i < app->domains->len; i++) {
        QubesDomain *d = app->domains->pdata[i];
        g_autofree char *label = NULL;
        qubes_props_get(&d->props, "label", &label, NULL, NULL);
        if (g_strcmp0(label, l->name) == 0) {
            /* master formats the Label object: its repr */
            g_autofree char *c = qubes_py_repr(l->color);
            g_autofree char *n = qubes_py_repr(l->name);
            g_set_error(error, QUBES_ERROR, QUBES_ERROR_LABEL_IN_USE,
                        "Label is still in use: Label(%u, %s, %s)", l->index, c,
                        n);
            return FALSE;
        }
    }
    g_ptr_array_remove(app->labels, (gpointer)l);
    return TRUE;
}

/* ---- pools ---- */

static QubesPool *pool_from_attrs(const QxAttrs *a, GError **error)
{
    const char *name = qx_attrs_get(a, "name");
    const char *driver = qx_attrs_get(a, "driver");
    if (!name || !driver) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                    "a pool in qubes.xml has no %s", name ? "driver" : "name");
        return NULL;
    }
    if (strcmp(driver, "file") == 0) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_STORAGE_POOL,
                    "pool %s: the \"file\" driver is not supported; with its "
                    "qubes halted and the *-cow.img files removed, change "
                    "driver=\"file\" to driver=\"file-reflink\"",
                    name);
        return NULL;
    }
    g_autoptr(GHashTable) opts =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    for (guint i = 0; i + 1 < a->len; i += 2) {
        if (strcmp(a->pdata[i], "name") && strcmp(a->pdata[i], "driver"))
            g_hash_table_insert(opts, g_strdup(a->pdata[i]),
                                g_strdup(a->pdata[i + 1]));
    }
    return qubes_pool_new(driver, name, opts, error);
}

QubesPool *qubes_app_add_pool(QubesApp *app, const char *driver,
                              const char *name, GHashTable *options,
                              GError **error)
{
    if (qubes_app_get_pool(app, name, NULL)) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                    "pool named %s already exists", name);
        return NULL;
    }
    g_autoptr(QubesPool) pool = qubes_pool_new(driver, name, options, error);
    if (!pool || !qubes_pool_setup(pool, error))
        return NULL;
    g_ptr_array_add(app->pools, pool);
    const char *kw[] = {"pool", name, NULL};
    g_autoptr(GPtrArray) fx =
        qubes_emitter_fire(&app->emitter, "pool-add", kw, NULL);
    return g_steal_pointer(&pool);
}

gboolean qubes_app_remove_pool(QubesApp *app, const char *name, GError **error)
{
    QubesPool *pool = qubes_app_get_pool(app, name, error);
    if (!pool)
        return FALSE;
    for (guint i = 0; i < app->domains->len; i++) {
        QubesDomain *d = app->domains->pdata[i];
        g_autoptr(GPtrArray) names = qubes_domain_volume_names(d);
        for (guint j = 0; j < names->len; j++) {
            if (g_strcmp0(qubes_domain_volume_pool(d, names->pdata[j]), name) ==
                0) {
                g_set_error(error, QUBES_ERROR, QUBES_ERROR_POOL_IN_USE,
                            "Storage pool is in use: '%s' (volume %s of %s)",
                            name, (char *)names->pdata[j], d->name);
                return FALSE;
            }
        }
    }
    /* The effective defaults count, as the reference's getattr(): on a
     * fresh system varlibqubes is default_pool without being set. */
    static const char *const suffixes[] = {"", "_kernel", "_private", "_root",
                                           "_volatile"};
    for (guint i = 0; i < G_N_ELEMENTS(suffixes); i++) {
        g_autofree char *prop = g_strconcat("default_pool", suffixes[i], NULL);
        g_autofree char *v = qubes_props_value(&app->props, prop);
        if (g_strcmp0(v, name) == 0) {
            g_set_error(error, QUBES_ERROR, QUBES_ERROR_POOL_IN_USE,
                        "Storage pool is in use: set as %s", prop);
            return FALSE;
        }
    }
    /* Volumes still registered: those of a qube being removed or made
     * right now, whose storage work runs on a worker. */
    if (qubes_pool_count_volumes(pool)) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_POOL_IN_USE,
                    "Storage pool is in use: '%s' (volumes are being created "
                    "or removed in it)",
                    name);
        return FALSE;
    }
    if (!qubes_pool_destroy(pool, error))
        return FALSE;
    g_ptr_array_remove(app->pools, pool);
    const char *kw[] = {"pool", name, NULL};
    g_autoptr(GPtrArray) fx =
        qubes_emitter_fire(&app->emitter, "pool-delete", kw, NULL);
    return TRUE;
}

/* ---- domains ---- */

static void insert_domain(QubesApp *app, QubesDomain *dom)
{
    g_ptr_array_insert(app->domains,
                       (gint)qubes_app_qid_position(app, dom->qid), dom);
    g_hash_table_insert(app->by_name, dom->name, dom);
}

/* The qids and names of domains kept verbatim (app->lost_domains) stay
 * theirs: a new qube must not take them. */
static gboolean lost_qid(QubesApp *app, guint qid)
{
    for (guint i = 0; i < app->lost_domains->len; i++) {
        const QxDomain *x = app->lost_domains->pdata[i];
        const QxProperty *p = qx_properties_get(x->properties, "qid");
        const char *v = p && p->value ? p->value
                        : x->id && g_str_has_prefix(x->id, "domain-")
                            ? x->id + 7
                            : NULL;
        if (v && g_ascii_strtoull(v, NULL, 10) == qid)
            return TRUE;
    }
    return FALSE;
}

static gboolean lost_name(QubesApp *app, const char *name)
{
    for (guint i = 0; i < app->lost_domains->len; i++) {
        const QxDomain *x = app->lost_domains->pdata[i];
        const QxProperty *p = qx_properties_get(x->properties, "name");
        if (p && g_strcmp0(p->value, name) == 0)
            return TRUE;
    }
    return FALSE;
}

gboolean qubes_app_name_is_held(QubesApp *app, const char *name)
{
    return g_hash_table_contains(app->by_name, name) || lost_name(app, name);
}

static gboolean set_initial(QubesDomain *dom, const char *name,
                            const char *value, GError **error)
{
    /* Before events are on: plain sanitising and setter. */
    QxProperty p = {.name = (char *)name, .value = (char *)value};
    g_autoptr(GPtrArray) one = g_ptr_array_new();
    g_ptr_array_add(one, &p);
    return qubes_props_load(&dom->props, one, 0, FALSE, NULL, error);
}

/* The tag naming a qube's GUI or audio qube ("guivm-dom0"), or a
 * RemoteVM's relay ("relayvm-sys-net"), as the reference's gui, audio and
 * relay extensions keep it: on creation and load (if
 * missing) and whenever the property is set or reset, the old tag goes
 * and the new one comes. */
static void sync_vm_tag(QubesDomain *dom, const char *prop, gboolean if_missing)
{
    if (!qubes_props_def(&dom->props, prop, NULL))
        return;
    g_autofree char *value = qubes_props_value(&dom->props, prop);
    g_autofree char *prefix = g_strconcat(prop, "-", NULL);
    g_autofree char *want =
        value && *value ? g_strconcat(prefix, value, NULL) : NULL;
    if (if_missing && (!want || g_hash_table_contains(dom->tags, want)))
        return;
    g_autoptr(GPtrArray) tags = qubes_domain_tags(dom);
    for (guint i = 0; i < tags->len; i++) {
        if (g_str_has_prefix(tags->pdata[i], prefix)) {
            g_autofree char *t = g_strdup(tags->pdata[i]);
            qubes_domain_tag_remove(dom, t, NULL);
        }
    }
    if (want)
        qubes_domain_tag_add(dom, want, NULL);
}

static gboolean on_vm_tag_prop(QubesEvent *ev, gpointer data, GError **error)
{
    const char *name = qubes_event_get(ev, "name");
    if (name)
        sync_vm_tag(qubes_domain_of_emitter(ev->subject), name, FALSE);
    return TRUE;
}

/* A dispid no DispVM holds, at random below 10000 (the reference's
 * get_new_unused_dispid; its DispVM IPs are 10.138.x.y from it). */
static gboolean new_dispid(QubesApp *app, guint *out, GError **error)
{
    for (int tries = 0; tries < 10000; tries++) {
        guint id = g_random_int_range(0, 10000);
        gboolean used = FALSE;
        for (guint i = 0; i < app->domains->len && !used; i++) {
            QubesDomain *d = app->domains->pdata[i];
            const char *v = g_hash_table_lookup(d->props.values, "dispid");
            used = v && g_ascii_strtoull(v, NULL, 10) == id;
        }
        if (!used) {
            *out = id;
            return TRUE;
        }
    }
    g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                        "No unused dispid left");
    return FALSE;
}

/* A new DispVM: its dispid, then what its template has (dispvm.py): the
 * properties set there that the DispVM leaves at their default (not
 * those naming the qube itself or its addresses), its features (but
 * preload-dispvm*) and its tags; its firewall is copied with its
 * storage (qubes_domain_files_create). */
static gboolean init_dispvm(QubesApp *app, QubesDomain *dom, QubesDomain *tpl,
                            guint id, GError **error)
{
    g_autofree char *id_s = g_strdup_printf("%u", id);
    if (!set_initial(dom, "dispid", id_s, error))
        return FALSE;
    if (!tpl)
        return TRUE;
    static const char *const own[] = {
        "name", "qid", "uuid", "template", "dispid", "mac", "ip", "ip6", NULL};
    const GPtrArray *defs = qubes_props_list(&dom->props);
    for (guint i = 0; i < defs->len; i++) {
        const QubesPropDef *def = defs->pdata[i];
        const char *v = g_hash_table_lookup(tpl->props.values, def->name);
        if (!v || g_strv_contains(own, def->name) ||
            (def->flags & (QUBES_PROP_READ_ONLY | QUBES_PROP_NO_CLONE)) ||
            g_hash_table_contains(dom->props.values, def->name))
            continue;
        g_autoptr(GError) err = NULL;
        if (!set_initial(dom, def->name, v, &err))
            g_debug("%s: %s not taken from %s: %s", dom->name, def->name,
                    tpl->name, err->message);
    }
    /* not the template's bookkeeping of its preloaded DispVMs */
    for (guint i = 0; i + 1 < tpl->features->len; i += 2)
        if (!g_str_has_prefix(tpl->features->pdata[i], "preload-dispvm"))
            qubes_domain_feature_set(dom, tpl->features->pdata[i],
                                     tpl->features->pdata[i + 1], NULL);
    g_autoptr(GPtrArray) tags = qubes_domain_tags(tpl);
    for (guint i = 0; i < tags->len; i++)
        qubes_domain_tag_add(dom, tags->pdata[i], NULL);
    return TRUE;
}

QubesDomain *qubes_app_add_new_domain(QubesApp *app,
                                      const QubesDomainClass *klass,
                                      const char *name, const char *label,
                                      const char *template, const char *pool,
                                      GHashTable *pools, GError **error)
{
    if (strcmp(klass->name, "AdminVM") == 0) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                    "an AdminVM cannot be created");
        return NULL;
    }
    gboolean dispvm = strcmp(klass->name, "DispVM") == 0;
    guint dispid = 0;
    g_autofree char *disp_name = NULL;
    for (int tries = 0; dispvm && tries < 100; tries++) {
        if (!new_dispid(app, &dispid, error))
            return NULL;
        if (name)
            break;
        /* dispvm.py: a DispVM without a name is dispDISPID */
        g_free(disp_name);
        disp_name = g_strdup_printf("disp%u", dispid);
        if (!g_hash_table_contains(app->by_name, disp_name)) {
            name = disp_name;
            break;
        }
    }
    if (!name) {
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                            "A qube needs a name");
        return NULL;
    }
    if (!qubes_validate_vm_name(name, error))
        return NULL;
    if (g_hash_table_contains(app->by_name, name) || lost_name(app, name)) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VM_ALREADY_EXISTS,
                    "VM %s already exists", name);
        return NULL;
    }
    if (!qubes_app_get_label(app, label, error))
        return NULL;
    guint qid = 1;
    while (qid <= QUBES_MAX_QID &&
           (qubes_app_get_domain_by_qid(app, qid) || lost_qid(app, qid)))
        qid++;
    if (qid > QUBES_MAX_QID) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                    "No unused qid left (the limit is %d qubes)",
                    QUBES_MAX_QID);
        return NULL;
    }
    g_autofree char *tpl = NULL;
    if (klass->has_template) {
        tpl = g_strdup(template);
        if (!tpl)
            tpl = qubes_props_value(&app->props,
                                    strcmp(klass->name, "DispVM") == 0
                                        ? "default_dispvm"
                                        : "default_template");
        if (!tpl || !*tpl) {
            g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                                "Template for the qube not specified, nor "
                                "default template set.");
            return NULL;
        }
    } else if (template) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                    "%s cannot be based on template", klass->name);
        return NULL;
    }
    /* dispvm.py __init__: checked before any property is set */
    QubesDomain *base = tpl ? g_hash_table_lookup(app->by_name, tpl) : NULL;
    if (dispvm && base && !qubes_domain_is_dvm_template(base)) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                    "template for disposable (%s) needs to be an AppVM with "
                    "template_for_dispvms=True",
                    tpl);
        return NULL;
    }
    g_autoptr(QubesDomain) dom = new_domain(app, klass, qid, name);
    g_autofree char *qid_s = g_strdup_printf("%u", qid);
    g_autofree char *uuid = g_uuid_string_random();
    if (!set_initial(dom, "qid", qid_s, error) ||
        !set_initial(dom, "name", name, error) ||
        !set_initial(dom, "uuid", uuid, error) ||
        !set_initial(dom, "label", label, error) ||
        (tpl && !set_initial(dom, "template", tpl, error)))
        return NULL;
    if (!qubes_domain_config_volumes_internal(dom, pool, pools, error)) {
        /* Unregister what was made. */
        for (guint i = 0; i < dom->volumes->len; i++)
            qubes_volume_remove(
                ((QubesDomainVolume *)dom->volumes->pdata[i])->vol, NULL);
        return NULL;
    }
    if (dispvm &&
        !init_dispvm(app, dom, qubes_domain_get_template(dom), dispid, error))
        return NULL;
    sync_vm_tag(dom, "guivm", FALSE);
    sync_vm_tag(dom, "audiovm", FALSE);
    sync_vm_tag(dom, "relayvm", FALSE);
    if (!app->loading) {
        g_autofree char *check =
            qubes_props_value(&app->props, "check_updates_vm");
        if (g_strcmp0(check, "False") == 0)
            qubes_domain_feature_set(dom, "check-updates", "", NULL);
    }
    insert_domain(app, qubes_domain_ref(dom));
    dom->emitter.enabled = TRUE;
    const char *kw[] = {"vm", name, NULL};
    g_autoptr(GPtrArray) fx =
        qubes_emitter_fire(&app->emitter, "domain-add", kw, NULL);
    return dom; /* the app's reference */
}

/* Whether @dom cannot go (the reference's get_qube_prop_deps): a global
 * property names it (by default too), or another qube's explicit
 * property does. The refusal is in the reference's words; who uses it
 * goes to the log, as there. */
static gboolean check_unused(QubesApp *app, QubesDomain *dom, GError **error)
{
    GString *deps = g_string_new(NULL);
    const GPtrArray *adefs = qubes_props_list(&app->props);
    for (guint j = 0; j < adefs->len; j++) {
        const QubesPropDef *def = adefs->pdata[j];
        if (def->type != QUBES_PROP_VM)
            continue;
        g_autofree char *v = qubes_props_value(&app->props, def->name);
        if (g_strcmp0(v, dom->name) == 0)
            g_string_append_printf(deps, "%s@GLOBAL:%s", deps->len ? ", " : "",
                                   def->name);
    }
    for (guint i = 0; i < app->domains->len; i++) {
        QubesDomain *d = app->domains->pdata[i];
        if (d == dom)
            continue;
        const GPtrArray *defs = qubes_props_list(&d->props);
        for (guint j = 0; j < defs->len; j++) {
            const QubesPropDef *def = defs->pdata[j];
            const char *v = g_hash_table_lookup(d->props.values, def->name);
            if (def->type == QUBES_PROP_VM && g_strcmp0(v, dom->name) == 0)
                g_string_append_printf(deps, "%s%s:%s", deps->len ? ", " : "",
                                       d->name, def->name);
        }
    }
    g_autofree char *provided = qubes_domain_provided_assignments(dom);
    if (provided) { /* app.py on_domain_pre_deleted */
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VM_IN_USE,
                    "VM has devices assigned to other VMs: %s", provided);
        g_string_free(deps, TRUE);
        return FALSE;
    }
    gboolean ok = deps->len == 0;
    if (!ok) {
        g_warning("Cannot remove %s as it is used by %s", dom->name, deps->str);
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VM_IN_USE,
                    "Domain is in use: '%s';  see 'journalctl -u qubesd -e' "
                    "in dom0 for details",
                    dom->name);
    }
    g_string_free(deps, TRUE);
    return ok;
}

gboolean qubes_app_remove_domain(QubesApp *app, QubesDomain *dom,
                                 GError **error)
{
    if (dom->qid == 0) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VM_IN_USE,
                    "'dom0' cannot be removed");
        return FALSE;
    }
    if (!check_unused(app, dom, error))
        return FALSE;
    const char *kw[] = {"vm", dom->name, NULL};
    g_autoptr(GPtrArray) pre =
        qubes_emitter_fire(&app->emitter, "domain-pre-delete", kw, error);
    if (!pre)
        return FALSE;
    qubes_domain_ref(dom); /* until the end of this function */
    g_hash_table_remove(app->by_name, dom->name);
    g_ptr_array_remove(app->domains, dom); /* drops the app's reference */
    dom->removed = TRUE;
    qubes_domain_firewall_unwatch(dom);
    if (strcmp(dom->klass->name, "DispVM") == 0)
        qubes_preload_forget(dom);
    g_autofree char *name = g_strdup(dom->name);
    const char *kw2[] = {"vm", name, NULL};
    g_autoptr(GPtrArray) post =
        qubes_emitter_fire(&app->emitter, "domain-delete", kw2, NULL);
    qubes_domain_unref(dom);
    return TRUE;
}

/* ---- consistency ----
 *
 * The invariant: whatever sequence of changes was answered, the model
 * (and so the qubes.xml saved from it) loads again with every value
 * valid. The setters check each change in the reference's words; this
 * is the net under them for what a change does to other values (a qube
 * that a default made someone's netvm turned into one that provides no
 * network, a disposable template in use losing template_for_dispvms):
 * after every property change of the app or a domain, every explicitly
 * set value of every holder goes through its setter again (as a load
 * would), and the network, defaults followed, must stay loop-free with
 * every netvm providing network. A failure undoes the change
 * (property.c). */

gboolean qubes_app_check(QubesApp *app, GError **error)
{
    gboolean ok = TRUE;
    g_autoptr(GError) err = NULL;
    const char *who = NULL;
    app->checking = TRUE;
    if (!qubes_props_check_all(&app->props, &err))
        who = "the system";
    for (guint i = 0; !err && i < app->domains->len; i++) {
        QubesDomain *d = app->domains->pdata[i];
        if (!qubes_props_check_all(&d->props, &err))
            who = d->name;
    }
    app->checking = FALSE;
    if (err) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                    "This change would leave a value of %s invalid: %s", who,
                    err->message);
        ok = FALSE;
    }
    if (ok && !qubes_net_check_loops(app, error))
        ok = FALSE;
    for (guint i = 0; ok && i < app->domains->len; i++) {
        QubesDomain *d = app->domains->pdata[i];
        QubesDomain *n = qubes_domain_get_netvm(d);
        if (n && !qubes_domain_flag(n, "provides_network")) {
            g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                        "This change would leave %s with netvm %s, which "
                        "does not provide network",
                        d->name, n->name);
            ok = FALSE;
        }
    }
    return ok;
}

static gboolean check_hook(QubesPropHolder *holder, const char *name,
                           GError **error)
{
    QubesApp *app = strcmp(holder->class_name, "Qubes") == 0
                        ? holder->owner
                        : ((QubesDomain *)holder->owner)->app;
    if (app->loading)
        return TRUE;
    return qubes_app_check(app, error);
}

static void watch_holder(QubesPropHolder *holder)
{
    holder->check = check_hook;
}

/* A bare domain (domain.c) whose changes the model's invariant checks. */
static QubesDomain *new_domain(QubesApp *app, const QubesDomainClass *klass,
                               guint qid, const char *name)
{
    QubesDomain *dom = qubes_domain_new_internal(app, klass, qid, name);
    watch_holder(&dom->props);
    return dom;
}

/* DVMTemplateMixin: template_for_dispvms cannot go off while a DispVM
 * is based on the qube, nor while the qube is someone's default_dispvm
 * or management_dispvm (a value that would then be invalid). */
static gboolean on_dvm_template_off(QubesEvent *ev, gpointer data,
                                    GError **error)
{
    QubesApp *app = data;
    QubesDomain *self = qubes_domain_of_emitter(ev->subject);
    const char *nv = qubes_event_get(ev, "newvalue");
    const char *ov = qubes_event_get(ev, "oldvalue");
    if (g_strcmp0(nv, "True") == 0 || g_strcmp0(ov, "True") != 0)
        return TRUE;
    /* get_qube_prop_deps: the system's default_dispvm or
     * management_dispvm (its value), then a qube's default_dispvm,
     * management_dispvm or template set to it. Master leaves out the
     * preloaded DispVMs and removes them after; here they count (README). */
    static const char *const sys_props[] = {"default_dispvm",
                                            "management_dispvm"};
    for (guint k = 0; k < G_N_ELEMENTS(sys_props); k++) {
        g_autofree char *v = qubes_props_value(&app->props, sys_props[k]);
        if (g_strcmp0(v, self->name) == 0) {
            g_set_error_literal(
                error, QUBES_ERROR, QUBES_ERROR_VM_IN_USE,
                "Cannot change template_for_dispvms to False while it is in "
                "use by the system by any of these properties: "
                "default_dispvm, management_dispvm");
            return FALSE;
        }
    }
    static const char *const qube_props[] = {"default_dispvm",
                                             "management_dispvm", "template"};
    for (guint i = 0; i < app->domains->len; i++) {
        QubesDomain *d = app->domains->pdata[i];
        if (d == self)
            continue;
        for (guint k = 0; k < G_N_ELEMENTS(qube_props); k++) {
            const char *v = g_hash_table_lookup(d->props.values, qube_props[k]);
            if (g_strcmp0(v, self->name) != 0)
                continue;
            g_set_error_literal(
                error, QUBES_ERROR, QUBES_ERROR_VM_IN_USE,
                "Cannot change template_for_dispvms to False while it is the "
                "disposable template of a qube by any of these properties: "
                "default_dispvm, management_dispvm, template");
            return FALSE;
        }
    }
    return TRUE;
}

/* ext/admin.py on_tag_add: a qube tagged created-by-X also gets, as a
 * DispVM, disp-created-by-X, and every tag X's feature
 * tag-created-vm-with lists. */
static gboolean on_created_by(QubesEvent *ev, gpointer data, GError **error)
{
    QubesApp *app = data;
    QubesDomain *vm = qubes_domain_of_emitter(ev->subject);
    const char *tag = qubes_event_get(ev, "tag");
    QubesDomain *creator =
        tag ? g_hash_table_lookup(app->by_name, tag + strlen("created-by-"))
            : NULL;
    if (!creator)
        return TRUE;
    if (strcmp(vm->klass->name, "DispVM") == 0) {
        g_autofree char *t =
            g_strconcat("disp-created-by-", creator->name, NULL);
        if (!qubes_domain_tag_add(vm, t, error))
            return FALSE;
    }
    const char *with = qubes_domain_feature_get(creator, "tag-created-vm-with");
    g_auto(GStrv) words = g_strsplit_set(with ? with : "", " \t\n", -1);
    for (char **w = words; *w; w++) {
        if (!**w)
            continue;
        if (!qubes_tag_is_valid(*w)) {
            g_warning("%s: tag-created-vm-with of %s: '%s' is not a valid "
                      "tag; left out",
                      vm->name, creator->name, *w);
            continue;
        }
        if (!qubes_domain_tag_add(vm, *w, error))
            return FALSE;
    }
    /* gui.py set_guivm_on_created_by: the creator's set-created-guivm
     * names the new qube's guivm. Master fails the creation when it names
     * no qube (a KeyError after the qube was added); here that is logged
     * and the qube keeps its default. */
    const char *guivm = qubes_domain_feature_get(creator, "set-created-guivm");
    if (guivm && *guivm && qubes_props_def(&vm->props, "guivm", NULL)) {
        g_autoptr(GError) err = NULL;
        if (!qubes_props_set(&vm->props, "guivm", guivm, &err))
            g_warning("%s: set-created-guivm of %s: guivm %s not set: %s",
                      vm->name, creator->name, guivm, err->message);
    }
    return TRUE;
}

/* ---- the reference's events about values that follow others ----
 *
 * When a value that others follow by default changes, the reference
 * tells each follower with an event of its own (clients watching
 * admin.Events refresh their copy): property-reset:NAME on the qubes of
 * a template (templatevm.py), property-pre-set:netvm and
 * property-reset:netvm on the qubes following default_netvm, and
 * property-reset:default_dispvm on those following default_dispvm
 * (app.py); property-reset:icon when the label or template_for_dispvms
 * changes (qubesvm.py). */

static gboolean follows(QubesDomain *d, const char *prop)
{
    return qubes_props_def(&d->props, prop, NULL) &&
           qubes_props_is_default(&d->props, prop);
}

static gboolean on_template_child_prop(QubesEvent *ev, gpointer data,
                                       GError **error)
{
    QubesApp *app = data;
    QubesDomain *self = qubes_domain_of_emitter(ev->subject);
    const char *name = qubes_event_get(ev, "name");
    if (!name || g_strcmp0(qubes_event_get(ev, "newvalue"),
                           qubes_event_get(ev, "oldvalue")) == 0)
        return TRUE;
    for (guint i = 0; i < app->domains->len; i++) {
        QubesDomain *d = app->domains->pdata[i];
        if (qubes_domain_get_template(d) == self && follows(d, name))
            qubes_props_notify_reset(&d->props, name, NULL);
    }
    return TRUE;
}

static gboolean on_default_netvm_pre_set(QubesEvent *ev, gpointer data,
                                         GError **error)
{
    QubesApp *app = data;
    const char *nv = qubes_event_get(ev, "newvalue");
    const char *ov = qubes_event_get(ev, "oldvalue");
    for (guint i = 0; i < app->domains->len; i++) {
        QubesDomain *d = app->domains->pdata[i];
        if (!follows(d, "netvm"))
            continue;
        const char *kw[] = {
            "name", "netvm", "newvalue", nv ? nv : "", ov ? "oldvalue" : NULL,
            ov,     NULL};
        g_autoptr(GPtrArray) fx = qubes_emitter_fire(
            &d->emitter, "property-pre-set:netvm", kw, error);
        if (!fx)
            return FALSE;
    }
    return TRUE;
}

static gboolean on_default_followed(QubesEvent *ev, gpointer data,
                                    GError **error)
{
    QubesApp *app = data;
    const char *name = qubes_event_get(ev, "name");
    /* default_netvm -> netvm, default_guivm -> guivm, default_audiovm ->
     * audiovm; default_dispvm -> default_dispvm */
    const char *prop = name;
    if (g_str_has_prefix(name, "default_") && strcmp(name, "default_dispvm"))
        prop = name + strlen("default_");
    for (guint i = 0; i < app->domains->len; i++) {
        QubesDomain *d = app->domains->pdata[i];
        if (follows(d, prop))
            qubes_props_notify_reset(&d->props, prop,
                                     qubes_event_get(ev, "oldvalue"));
    }
    return TRUE;
}

static gboolean on_icon_input(QubesEvent *ev, gpointer data, GError **error)
{
    qubes_props_notify_reset(&qubes_domain_of_emitter(ev->subject)->props,
                             "icon", NULL);
    return TRUE;
}

/* clockvm (app.py): the new one gets service.clocksync unless it has the
 * feature already; the old one loses it. */
static gboolean on_clockvm_pre_set(QubesEvent *ev, gpointer data,
                                   GError **error)
{
    QubesApp *app = data;
    const char *nv = qubes_event_get(ev, "newvalue");
    QubesDomain *d = nv && *nv ? g_hash_table_lookup(app->by_name, nv) : NULL;
    if (d && !qubes_domain_feature_get(d, "service.clocksync"))
        return qubes_domain_feature_set(d, "service.clocksync", "1", error);
    return TRUE;
}

static gboolean on_clockvm_set(QubesEvent *ev, gpointer data, GError **error)
{
    QubesApp *app = data;
    const char *nv = qubes_event_get(ev, "newvalue");
    const char *ov = qubes_event_get(ev, "oldvalue");
    QubesDomain *d = ov && *ov ? g_hash_table_lookup(app->by_name, ov) : NULL;
    const char *f = d ? qubes_domain_feature_get(d, "service.clocksync") : NULL;
    if (d && g_strcmp0(nv, ov) != 0 && f && *f)
        qubes_domain_feature_remove(d, "service.clocksync", NULL);
    return TRUE;
}

/* property-pre-reset:template: a qube based on a template keeps one. */
static gboolean on_template_reset(QubesEvent *ev, gpointer data, GError **error)
{
    QubesApp *app = data;
    QubesDomain *self = qubes_domain_of_emitter(ev->subject);
    g_autofree char *def = qubes_props_value(&app->props, "default_template");
    if (strcmp(self->klass->name, "AppVM") == 0 && def && *def)
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                    "Cannot unset template. You can set it to the current "
                    "default (%s) instead",
                    def);
    else
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                            "Cannot unset template");
    return FALSE;
}

static gboolean on_template_set(QubesEvent *ev, gpointer data, GError **error)
{
    qubes_domain_follow_template(qubes_domain_of_emitter(ev->subject));
    return TRUE;
}

static void register_handlers(QubesApp *app)
{
    static const char *const template_children[] = {
        "default_user",   "kernel",           "kernelopts",
        "vcpus",          "memory",           "maxmem",
        "qrexec_timeout", "shutdown_timeout", "management_dispvm"};
    for (guint i = 0; i < G_N_ELEMENTS(template_children); i++) {
        g_autofree char *ev =
            g_strconcat("property-set:", template_children[i], NULL);
        qubes_event_add_class_handler(app->registry, "TemplateVM", ev,
                                      on_template_child_prop,
                                      QUBES_HANDLER_BOUND, app, NULL);
    }
    qubes_event_add_class_handler(
        app->registry, "Qubes", "property-pre-set:default_netvm",
        on_default_netvm_pre_set, QUBES_HANDLER_BOUND, app, NULL);
    /* The gui and audio extensions tell the followers of default_guivm
     * and default_audiovm too (their guivm-/audiovm- tags follow). */
    static const char *const followed[] = {
        "property-set:default_netvm",    "property-set:default_dispvm",
        "property-reset:default_dispvm", "property-set:default_guivm",
        "property-reset:default_guivm",  "property-set:default_audiovm",
        "property-reset:default_audiovm"};
    for (guint i = 0; i < G_N_ELEMENTS(followed); i++)
        qubes_event_add_class_handler(app->registry, "Qubes", followed[i],
                                      on_default_followed, QUBES_HANDLER_BOUND,
                                      app, NULL);
    qubes_event_add_class_handler(
        app->registry, "Qubes", "property-pre-set:clockvm", on_clockvm_pre_set,
        QUBES_HANDLER_BOUND, app, NULL);
    qubes_event_add_class_handler(app->registry, "Qubes",
                                  "property-set:clockvm", on_clockvm_set,
                                  QUBES_HANDLER_BOUND, app, NULL);
    qubes_event_add_class_handler(app->registry, "QubesVM",
                                  "property-set:label", on_icon_input,
                                  QUBES_HANDLER_BOUND, app, NULL);
    qubes_event_add_class_handler(
        app->registry, "QubesVM", "property-set:template_for_dispvms",
        on_icon_input, QUBES_HANDLER_BOUND, app, NULL);
    static const char *const tag_events[] = {
        "property-set:guivm", "property-reset:guivm", "property-set:audiovm",
        "property-reset:audiovm"};
    for (guint i = 0; i < G_N_ELEMENTS(tag_events); i++)
        qubes_event_add_class_handler(app->registry, "QubesVM", tag_events[i],
                                      on_vm_tag_prop, QUBES_HANDLER_BOUND, app,
                                      NULL);
    static const char *const relay_events[] = {"property-set:relayvm",
                                               "property-reset:relayvm"};
    for (guint i = 0; i < G_N_ELEMENTS(relay_events); i++)
        qubes_event_add_class_handler(app->registry, "RemoteVM",
                                      relay_events[i], on_vm_tag_prop,
                                      QUBES_HANDLER_BOUND, app, NULL);
    static const char *const based[] = {"AppVM", "DispVM"};
    for (guint i = 0; i < G_N_ELEMENTS(based); i++) {
        qubes_event_add_class_handler(
            app->registry, based[i], "property-pre-reset:template",
            on_template_reset, QUBES_HANDLER_BOUND, app, NULL);
        qubes_event_add_class_handler(app->registry, based[i],
                                      "property-set:template", on_template_set,
                                      QUBES_HANDLER_BOUND, app, NULL);
    }
    qubes_event_add_class_handler(app->registry, "BaseVM",
                                  "domain-tag-add:created-by-*", on_created_by,
                                  QUBES_HANDLER_BOUND, app, NULL);
    static const char *const dvm_classes[] = {"AppVM", "StandaloneVM"};
    for (guint i = 0; i < G_N_ELEMENTS(dvm_classes); i++) {
        qubes_event_add_class_handler(app->registry, dvm_classes[i],
                                      "property-pre-set:template_for_dispvms",
                                      on_dvm_template_off, QUBES_HANDLER_BOUND,
                                      app, NULL);
        qubes_event_add_class_handler(app->registry, dvm_classes[i],
                                      "property-pre-reset:template_for_dispvms",
                                      on_dvm_template_off, QUBES_HANDLER_BOUND,
                                      app, NULL);
    }
    qubes_net_register_handlers(app);
    qubes_preload_register_handlers(app);
    qubes_feature_checks_register(app);
    qubes_qube_users_register(app);
}

/* ---- load ----
 *
 * A qubes.xml that holds an inconsistency (written by hand, by another
 * version, or by a bug of ours) must not lock its user out of every
 * qube. Whatever cannot be interpreted is logged with the qube and
 * property it concerns and left out of the model: a property value is
 * dropped (its default applies, and the next save forgets it), and a
 * whole element (a pool, a domain, a volume) is kept verbatim and written
 * back, so that nothing of it is lost and a newer version or a person can
 * repair it. The file is refused as a whole only when it is not qubes.xml
 * at all (qubesxml.c: syntax, structure). */

static gboolean parse_qid(const QxDomain *x, guint *qid, GError **error)
{
    const QxProperty *p = qx_properties_get(x->properties, "qid");
    const char *s = p && p->value ? p->value : NULL;
    if (!s && x->id && g_str_has_prefix(x->id, "domain-"))
        s = x->id + 7;
    guint64 v;
    if (!s || !qubes_parse_uint64(s, "qid", &v, NULL) || v > QUBES_MAX_QID) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                    "domain %s of class %s has no valid qid",
                    x->id ? x->id : "(no id)", x->klass);
        return FALSE;
    }
    *qid = (guint)v;
    return TRUE;
}

/* Logs why @x (or the app) cannot be loaded and keeps it verbatim. */
static void lose_domain(QubesApp *app, const QxDomain *x, const char *why)
{
    g_warning("%s: domain %s (class %s) cannot be loaded and is kept as it "
              "is in the file: %s",
              app->xml_path, x->id ? x->id : "(no id)", x->klass, why);
    g_ptr_array_add(app->lost_domains, qx_domain_copy(x));
}

/* Stage 2: a domain with its own properties, features and tags; NULL
 * when it cannot be loaded (then kept verbatim). */
static QubesDomain *load_domain(QubesApp *app, const QxDomain *x)
{
    g_autoptr(GError) err = NULL;
    const QubesDomainClass *klass = qubes_domain_class_lookup(x->klass);
    if (!klass) {
        lose_domain(app, x, "unknown class");
        return NULL;
    }
    guint qid;
    if (!parse_qid(x, &qid, &err)) {
        lose_domain(app, x, err->message);
        return NULL;
    }
    gboolean admin = strcmp(klass->name, "AdminVM") == 0;
    const QxProperty *np = qx_properties_get(x->properties, "name");
    const char *name = np && np->value ? np->value : admin ? "dom0" : NULL;
    if (!name || !qubes_validate_vm_name(name, NULL) || admin != (qid == 0)) {
        lose_domain(app, x, "missing or invalid name, or qid 0 not an AdminVM");
        return NULL;
    }
    if (g_hash_table_contains(app->by_name, name) ||
        qubes_app_get_domain_by_qid(app, qid)) {
        lose_domain(app, x, "a domain of the same name or qid comes first");
        return NULL;
    }
    QubesDomain *dom = new_domain(app, klass, qid, name);
    insert_domain(app, dom);
    g_autofree char *who =
        g_strdup_printf("%s: domain %s", app->xml_path, name);
    qubes_domain_load_devices(dom, x->devices);
    qubes_props_load(&dom->props, x->properties, 2, TRUE, who, NULL);
    g_ptr_array_extend(dom->features, x->features, qx_copy_string, NULL);
    for (guint i = 0; i < x->tags->len; i++) {
        if (!qubes_tag_is_valid(x->tags->pdata[i])) {
            g_warning("%s: tag '%s' left out: invalid character in tag", who,
                      (char *)x->tags->pdata[i]);
            continue;
        }
        g_hash_table_add(dom->tags, g_strdup(x->tags->pdata[i]));
    }
    g_ptr_array_extend(dom->extra, x->extra, qx_copy_string, NULL);
    return dom;
}

/* The reference's load fix-ups (app.py _migrate_global_properties, the
 * netvm loop breaking of mix/net.py on domain-load), with a log line for
 * each: a default_dispvm or management_dispvm that is not a disposable
 * template is cleared, and a qube whose netvm leads back to itself (or
 * to a qube that provides no network) is disconnected. */
static void repair_loaded(QubesApp *app)
{
    static const char *const dvm_props[] = {"default_dispvm",
                                            "management_dispvm"};
    for (guint k = 0; k < G_N_ELEMENTS(dvm_props); k++) {
        for (guint i = 0; i <= app->domains->len; i++) {
            QubesPropHolder *h =
                i < app->domains->len
                    ? &((QubesDomain *)app->domains->pdata[i])->props
                    : &app->props;
            const char *v = g_hash_table_lookup(h->values, dvm_props[k]);
            QubesDomain *d =
                v && *v ? g_hash_table_lookup(app->by_name, v) : NULL;
            if (!v || !*v || (d && qubes_domain_is_dvm_template(d)))
                continue;
            g_warning("%s: %s's %s '%s' is not a disposable template; "
                      "cleared",
                      app->xml_path,
                      i < app->domains->len
                          ? ((QubesDomain *)app->domains->pdata[i])->name
                          : "the system",
                      dvm_props[k], v);
            g_hash_table_replace(h->values, g_strdup(dvm_props[k]),
                                 g_strdup(""));
        }
    }
    for (guint i = 0; i < app->domains->len; i++) {
        QubesDomain *d = app->domains->pdata[i];
        QubesDomain *n = qubes_domain_get_netvm(d);
        const char *why = NULL;
        if (!n)
            continue;
        if (!qubes_domain_flag(n, "provides_network"))
            why = "it does not provide network";
        else if (n == d)
            why = "it is the qube itself";
        else if (qubes_net_would_loop(d, n))
            why = "its netvm chain leads back to the qube";
        if (!why)
            continue;
        g_warning("%s: domain %s: netvm %s: %s; disconnected (netvm set to "
                  "none)",
                  app->xml_path, d->name, n->name, why);
        g_hash_table_replace(d->props.values, g_strdup("netvm"), g_strdup(""));
    }
}

static void load_model(QubesApp *app, const QubesXml *xml)
{
    for (guint i = 0; i < xml->labels->len; i++) {
        const QxLabel *l = xml->labels->pdata[i];
        g_ptr_array_add(app->labels, qx_label_new(l->index, l->color, l->name));
    }
    for (guint i = 0; i < xml->pools->len; i++) {
        g_autoptr(GError) err = NULL;
        const QxAttrs *a = xml->pools->pdata[i];
        const char *name = qx_attrs_get(a, "name");
        QubesPool *p = NULL;
        if (name && qubes_app_get_pool(app, name, NULL))
            g_set_error(&err, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                        "a pool of the same name comes first");
        else
            p = pool_from_attrs(a, &err);
        if (!p) {
            g_warning("%s: pool %s cannot be loaded and is kept as it is in "
                      "the file: %s",
                      app->xml_path, name ? name : "(no name)", err->message);
            g_ptr_array_add(app->lost_pools, qx_copy_attrs(a, NULL));
            continue;
        }
        g_ptr_array_add(app->pools, p);
    }
    /* Stage 2: the domains with their own properties. */
    g_autoptr(GPtrArray) loaded = g_ptr_array_new();
    for (guint i = 0; i < xml->domains->len; i++) {
        const QxDomain *x = xml->domains->pdata[i];
        QubesDomain *dom = load_domain(app, x);
        if (dom) {
            g_ptr_array_add(loaded, dom);
            g_ptr_array_add(loaded, (gpointer)x);
        }
    }
    qubes_app_drop_unknown_backends(app);
    if (!qubes_app_get_domain_by_qid(app, 0)) {
        /* As the reference: the AdminVM is always there. */
        g_warning("%s: no AdminVM (qid 0); adding dom0", app->xml_path);
        QubesDomain *dom0 =
            new_domain(app, qubes_domain_class_lookup("AdminVM"), 0, "dom0");
        insert_domain(app, dom0);
        g_hash_table_insert(dom0->props.values, g_strdup("label"),
                            g_strdup("black"));
    }
    /* Stage 3: global properties (they may name domains). */
    g_autofree char *who = g_strdup_printf("%s: global", app->xml_path);
    qubes_props_load(&app->props, xml->properties, 0, TRUE, who, NULL);
    /* Stage 4: the domains' references to each other, then volumes
     * (the kernel volume follows the kernel property). */
    for (guint i = 0; i < loaded->len; i += 2) {
        QubesDomain *dom = loaded->pdata[i];
        const QxDomain *x = loaded->pdata[i + 1];
        g_autofree char *dwho =
            g_strdup_printf("%s: domain %s", app->xml_path, dom->name);
        qubes_props_load(&dom->props, x->properties, 4, TRUE, dwho, NULL);
    }
    repair_loaded(app);
    for (guint i = 0; i < app->domains->len; i++) {
        sync_vm_tag(app->domains->pdata[i], "guivm", TRUE);
        sync_vm_tag(app->domains->pdata[i], "audiovm", TRUE);
        sync_vm_tag(app->domains->pdata[i], "relayvm", TRUE);
    }
    for (guint i = 0; i < loaded->len; i += 2) {
        QubesDomain *dom = loaded->pdata[i];
        const QxDomain *x = loaded->pdata[i + 1];
        if (dom->klass->has_template && !qubes_domain_get_template(dom))
            g_warning("%s: domain %s: %s without a template", app->xml_path,
                      dom->name, dom->klass->name);
        for (guint j = 0; j < x->volumes->len; j++) {
            g_autoptr(GError) err = NULL;
            if (qubes_domain_load_volume_internal(dom, x->volumes->pdata[j],
                                                  &err))
                continue;
            g_warning("%s: domain %s: a volume cannot be loaded and is kept "
                      "as it is in the file: %s",
                      app->xml_path, dom->name, err->message);
            g_ptr_array_add(dom->lost_volumes,
                            qx_copy_attrs(x->volumes->pdata[j], NULL));
        }
    }
}

static void read_host_memory(QubesApp *app)
{
    g_autofree char *info = NULL;
    if (!g_file_get_contents("/proc/meminfo", &info, NULL, NULL))
        return;
    const char *p = strstr(info, "MemTotal:");
    if (p)
        app->host_memory = g_ascii_strtoull(p + 9, NULL, 10);
}

static QubesApp *app_new(const char *base_dir, const char *xml_path)
{
    QubesApp *app = g_new0(QubesApp, 1);
    app->base_dir = g_strdup(base_dir);
    app->xml_path = xml_path ? g_strdup(xml_path)
                             : g_build_filename(base_dir, "qubes.xml", NULL);
    app->registry = qubes_event_registry_new();
    qubes_emitter_init(&app->emitter, app->registry, app_chain, "");
    qubes_props_init(&app->props, &app->emitter, "Qubes", app_tables, app);
    watch_holder(&app->props);
    app->labels = g_ptr_array_new_with_free_func((GDestroyNotify)qx_label_free);
    app->pools =
        g_ptr_array_new_with_free_func((GDestroyNotify)qubes_pool_free);
    app->domains =
        g_ptr_array_new_with_free_func((GDestroyNotify)qubes_domain_unref);
    app->by_name = g_hash_table_new(g_str_hash, g_str_equal);
    app->lost_pools =
        g_ptr_array_new_with_free_func((GDestroyNotify)g_ptr_array_unref);
    app->lost_domains =
        g_ptr_array_new_with_free_func((GDestroyNotify)qx_domain_free);
    read_host_memory(app);
    register_handlers(app);
    return app;
}

/* Whether the default pool's folder can hold reflinks; a new system on
 * another filesystem gets setup_check off and a warning (issue 3). */
static gboolean base_has_reflinks(const char *base_dir)
{
    g_autoptr(GHashTable) opts =
        g_hash_table_new_full(g_str_hash, g_str_equal, NULL, NULL);
    g_hash_table_insert(opts, "dir_path", (gpointer)base_dir);
    g_autoptr(GError) err = NULL;
    g_autoptr(QubesPool) p =
        qubes_pool_new("file-reflink", "varlibqubes", opts, &err);
    if (p && qubes_pool_setup(p, &err))
        return TRUE;
    g_warning("%s has no reflinks (%s); the pool varlibqubes is made with "
              "setup_check=no and copies images instead of sharing them",
              base_dir, err ? err->message : "?");
    return FALSE;
}

QubesApp *qubes_app_open(const char *base_dir, const char *xml_path,
                         GError **error)
{
    g_autoptr(QubesApp) app = app_new(base_dir, xml_path);
    g_autoptr(QubesXml) xml = NULL;
    GStatBuf st;
    gboolean fresh = g_stat(app->xml_path, &st) != 0;
    if (!fresh) {
        if (!qubes_xml_remove_temporaries(app->xml_path, error))
            return NULL;
        if (st.st_size == 0) {
            /* Only a first save cut short leaves it so (qubesxml.c):
             * nothing was ever committed. */
            g_warning("%s is empty (the first save of a new system was "
                      "interrupted); making a new system",
                      app->xml_path);
            fresh = TRUE;
        }
    }
    if (fresh) {
        if (g_mkdir_with_parents(base_dir, 0775) != 0) {
            qubes_error_errno(error, errno, "Cannot create %s", base_dir);
            return NULL;
        }
        g_autofree char *kdir = g_build_filename(base_dir, "vm-kernels", NULL);
        g_mkdir_with_parents(kdir, 0775);
        xml = qubes_xml_new_default(base_dir, base_has_reflinks(base_dir));
    } else {
        xml = qubes_xml_load(app->xml_path, error);
        if (!xml)
            return NULL;
    }
    app->loading = TRUE;
    bulk_begin(app);
    load_model(app, xml);
    bulk_end(app);
    if (fresh) {
        for (guint i = 0; i < app->pools->len; i++) {
            if (!qubes_pool_setup(app->pools->pdata[i], error))
                return NULL;
        }
    }
    app->loading = FALSE;
    app->emitter.enabled = TRUE;
    for (guint i = 0; i < app->domains->len; i++)
        ((QubesDomain *)app->domains->pdata[i])->emitter.enabled = TRUE;
    if (fresh && !qubes_app_save(app, error))
        return NULL;
    return g_steal_pointer(&app);
}

void qubes_app_free(QubesApp *app)
{
    if (!app)
        return;
    /* Domains first: their volumes belong to the pools. */
    for (guint i = 0; i < app->domains->len; i++)
        if (app->domains->pdata[i])
            qubes_domain_firewall_unwatch(app->domains->pdata[i]);
    g_hash_table_unref(app->by_name);
    g_ptr_array_unref(app->domains);
    g_ptr_array_unref(app->pools);
    g_ptr_array_unref(app->labels);
    g_ptr_array_unref(app->lost_pools);
    g_ptr_array_unref(app->lost_domains);
    qubes_props_clear(&app->props);
    qubes_emitter_clear(&app->emitter);
    qubes_event_registry_free(app->registry);
    g_free(app->base_dir);
    g_free(app->xml_path);
    g_free(app);
}

/* ---- save ---- */

void qubes_app_save_then(QubesApp *app, void (*done)(gpointer, GError *),
                         gpointer data)
{
    if (app->save_async) {
        app->save_async(app, done, data);
        return;
    }
    GError *err = NULL;
    qubes_app_save(app, &err);
    done(data, err);
    g_clear_error(&err);
}

QubesXml *qubes_app_to_xml(QubesApp *app)
{
    bulk_begin(app);
    QubesXml *x = qubes_xml_new();
    for (guint i = 0; i < app->labels->len; i++) {
        const QxLabel *l = app->labels->pdata[i];
        g_ptr_array_add(x->labels, qx_label_new(l->index, l->color, l->name));
    }
    for (guint i = 0; i < app->pools->len; i++) {
        g_autoptr(GHashTable) cfg = qubes_pool_get_config(app->pools->pdata[i]);
        QxAttrs *a = g_ptr_array_new_with_free_func(g_free);
        qx_attrs_set(a, "name", g_hash_table_lookup(cfg, "name"));
        qx_attrs_set(a, "driver", g_hash_table_lookup(cfg, "driver"));
        GList *keys =
            g_list_sort(g_hash_table_get_keys(cfg), (GCompareFunc)strcmp);
        for (GList *k = keys; k; k = k->next) {
            if (strcmp(k->data, "name") && strcmp(k->data, "driver"))
                qx_attrs_set(a, k->data, g_hash_table_lookup(cfg, k->data));
        }
        g_list_free(keys);
        g_ptr_array_add(x->pools, a);
    }
    g_ptr_array_extend(x->pools, app->lost_pools, qx_copy_attrs, NULL);
    g_ptr_array_unref(x->properties);
    x->properties = qubes_props_save(&app->props);
    for (guint i = 0; i < app->domains->len; i++) {
        QubesDomain *d = app->domains->pdata[i];
        g_autofree char *id = g_strdup_printf("domain-%u", d->qid);
        QxDomain *xd = qx_domain_new(id, d->klass->name);
        g_ptr_array_unref(xd->properties);
        xd->properties = qubes_props_save(&d->props);
        g_ptr_array_extend(xd->features, d->features, qx_copy_string, NULL);
        g_autoptr(GPtrArray) tags = qubes_domain_tags(d);
        g_ptr_array_extend(xd->tags, tags, qx_copy_string, NULL);
        for (guint j = 0; j < d->volumes->len; j++)
            g_ptr_array_add(xd->volumes, qubes_domain_volume_attrs(d, j));
        g_ptr_array_extend(xd->volumes, d->lost_volumes, qx_copy_attrs, NULL);
        qubes_domain_save_devices(d, xd->devices);
        g_ptr_array_extend(xd->extra, d->extra, qx_copy_string, NULL);
        g_ptr_array_add(x->domains, xd);
    }
    for (guint i = 0; i < app->lost_domains->len; i++)
        g_ptr_array_add(x->domains,
                        qx_domain_copy(app->lost_domains->pdata[i]));
    bulk_end(app);
    return x;
}

gboolean qubes_app_save(QubesApp *app, GError **error)
{
    g_autoptr(QubesXml) x = qubes_app_to_xml(app);
    return qubes_xml_save(x, app->xml_path, error);
}
