/* admin-vm.c: admin.vmclass.List, admin.vm.List, Create, CreateInPool
 * and Remove. */
#include "api-util.h"
#include "policy.h"
#include "preload-run.h"
#include "runtime.h"

#include "qubes-error.h"

#include <string.h>

/* ---- classes and domains ---- */

static char *vmclass_list(Call *call, GError **error)
{
    GString *out = g_string_new(NULL);
    for (const QubesDomainClass *const *c = qubes_domain_classes(); *c; c++)
        g_string_append_printf(out, "%s\n", (*c)->name);
    return g_string_free(out, FALSE);
}

/* "NAME class=CLASS state=STATE uuid=UUID" (pieces appended: a line
 * each of a thousand qubes, in a call the tools make often). */
static void vm_line(GString *out, QubesDomain *d)
{
    /* the uuid is set at creation; a default only in a hand-made file */
    const char *uuid = g_hash_table_lookup(d->props.values, "uuid");
    g_autofree char *computed =
        uuid ? NULL : qubes_props_value(&d->props, "uuid");
    if (!uuid)
        uuid = computed ? computed : "";
    g_string_append(out, d->name);
    g_string_append(out, " class=");
    g_string_append(out, d->klass->name);
    g_string_append(out, " state=");
    g_string_append(out, qubes_domain_power_state(d));
    g_string_append(out, " uuid=");
    g_string_append(out, uuid);
    g_string_append_c(out, '\n');
}

static char *vm_list(Call *call, GError **error)
{
    GString *out = g_string_sized_new(96 * (gsize)call->app->domains->len);
    g_autoptr(GPtrArray) all = g_ptr_array_new();
    if (call->dest->qid != 0) {
        g_ptr_array_add(all, call->dest);
    } else {
        for (guint i = 0; i < call->app->domains->len; i++)
            g_ptr_array_add(all, call->app->domains->pdata[i]);
        g_ptr_array_sort(all, qubes_domain_cmp);
    }
    /* A source other than dom0 sees the qubes the qrexec policy lets it
     * list (the reference's ext/admin.py filter). */
    g_autoptr(QubesPolicy) policy =
        api_src_is_dom0(call) ? NULL
                              : qubes_policy_load(call->state->policy_dir);
    for (guint i = 0; i < all->len; i++) {
        QubesDomain *d = all->pdata[i];
        if (policy && !qubes_policy_allows(policy, call->app, "admin.vm.List",
                                           "+", call->src, d->name))
            continue;
        vm_line(out, d);
    }
    return g_string_free(out, FALSE);
}

/* ---- create and remove ---- */

typedef QubesDomainFiles DomJob;
#define dom_job_free qubes_domain_files_free

static gboolean create_work(gpointer data, GError **error)
{
    DomJob *j = data;
    return qubes_domain_files_create(j, error);
}

static char *create_done(Call *call, gboolean ok, GError **error, gpointer data)
{
    DomJob *j = data;
    if (!ok) {
        /* Nothing of it stays: the volumes were unmade by the worker. */
        if (!j->dom->removed)
            qubes_app_remove_domain(call->app, j->dom, NULL);
        return NULL;
    }
    /* A DispVM's copied rules expire as the template's would. */
    qubes_domain_firewall_watch(j->dom, j->firewall_next);
    /* The reference's event once a new qube's storage is made. */
    g_autoptr(GPtrArray) fx = qubes_emitter_fire(
        &j->dom->emitter, "domain-create-on-disk", NULL, NULL);
    return api_saved(call, error);
}

/* admin.vm.Create.CLASS and CreateInPool.CLASS: "name=N label=L" and,
 * in a pool, "pool=P" or "pool:VOLUME=P" (not both). The reference's
 * checks in its order and words. */
static char *vm_create(Call *call, gboolean allow_pool, GError **error)
{
    const QubesDomainClass *klass = qubes_domain_class_lookup(call->endpoint);
    if (!klass) {
        /* The reference registers one method per class. */
        g_autofree char *r = qubes_py_repr(call->method_name);
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_PROTOCOL,
                    "no such method: %s", r);
        return NULL;
    }
    const char *tpl = *call->arg ? call->arg : NULL;
    gboolean invalid_template = FALSE;
    if (tpl) {
        if (!klass->has_template) {
            g_set_error(error, QUBES_ERROR, QUBES_ERROR_PROTOCOL,
                        "%s cannot be based on template", klass->name);
            return NULL;
        }
        invalid_template = !g_hash_table_lookup(call->app->by_name, tpl);
    }
    g_autofree char *untrusted = api_payload_ascii(
        call, "Parameters contains non-ASCII characters", error);
    if (!untrusted)
        return NULL;
    g_autofree char *name = NULL, *label = NULL, *pool = NULL;
    gboolean have_pool = FALSE;
    g_autoptr(GError) pool_err = NULL; /* told after the checks, as master */
    g_autoptr(GHashTable) pools =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    static const char *const volumes[] = {"root", "private", "volatile",
                                          "kernel", NULL};
    g_auto(GStrv) params = g_strsplit(untrusted, " ", -1);
    for (char **p = params; *p; p++) {
        char *eq = strchr(*p, '=');
        /* master fails with an unhandled ValueError: no answer */
        if (!api_enforce(eq != NULL, "Invalid param, expected key=value",
                         error))
            return NULL;
        *eq = '\0';
        const char *key = *p, *value = eq + 1;
        if (!api_enforce(!((strcmp(key, "name") == 0 && name) ||
                           (strcmp(key, "label") == 0 && label)),
                         "Options must be unique", error))
            return NULL;
        if (strcmp(key, "name") == 0) {
            if (!qubes_validate_vm_name(value, error))
                return NULL;
            name = g_strdup(value);
        } else if (strcmp(key, "label") == 0) {
            /* validate_label_name(creation=True); an unknown label is left
             * out, so that the missing key is what is said */
            if (!api_label_name_ok(value, TRUE, error))
                return NULL;
            if (qubes_app_get_label(call->app, value, NULL))
                label = g_strdup(value);
        } else if (allow_pool && strcmp(key, "pool") == 0) {
            if (!api_enforce(!have_pool, "Option 'pool' must be unique", error))
                return NULL;
            have_pool = TRUE;
            if (qubes_app_get_pool(call->app, value,
                                   pool_err ? NULL : &pool_err))
                pool = g_strdup(value);
        } else if (allow_pool && g_str_has_prefix(key, "pool:")) {
            const char *vol = key + 5;
            if (!api_enforce(g_strv_contains(volumes, vol),
                             "Volume must be one of: root, private, "
                             "volatile, kernel",
                             error))
                return NULL;
            g_autofree char *why =
                g_strdup_printf("Option 'pool:%s' must be unique", vol);
            if (!api_enforce(!g_hash_table_contains(pools, vol), why, error))
                return NULL;
            if (qubes_app_get_pool(call->app, value,
                                   pool_err ? NULL : &pool_err))
                g_hash_table_insert(pools, g_strdup(vol), g_strdup(value));
            else
                g_hash_table_insert(pools, g_strdup(vol), NULL);
        } else if (!allow_pool && (strcmp(key, "pool") == 0 ||
                                   g_str_has_prefix(key, "pool:"))) {
            api_enforce(FALSE,
                        "Pool option specified but 'allow_pool' is False",
                        error);
            return NULL;
        } else {
            api_enforce(
                FALSE,
                "Options does not match: name, label, pool, pool:", error);
            return NULL;
        }
    }
    if (!api_enforce(name != NULL, "Creation requested without key: name",
                     error) ||
        !api_enforce(label != NULL, "Creation requested without key: label",
                     error) ||
        !api_enforce(!(have_pool && g_hash_table_size(pools)),
                     "Conflicting options specified: 'pool=', "
                     "'pool:volume='",
                     error))
        return NULL;
    if (g_hash_table_contains(call->app->by_name, name)) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VM_ALREADY_EXISTS,
                    "Qube already exists: %s", name);
        return NULL;
    }
    if (invalid_template) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VM_NOT_FOUND,
                    "No such domain: '%s'", tpl);
        return NULL;
    }
    if (pool_err) {
        g_propagate_error(error, g_steal_pointer(&pool_err));
        return NULL;
    }
    if (strcmp(klass->name, "AdminVM") == 0) {
        /* AdminVM's forbidden setters: qid is the first set */
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_PROPERTY_VALUE,
                    "property 'qid' on AdminVM instance cannot be set");
        return NULL;
    }
    QubesDomain *dom = qubes_app_add_new_domain(
        call->app, klass, name, label, tpl, pool,
        g_hash_table_size(pools) ? pools : NULL, error);
    if (!dom)
        return NULL;
    g_autofree char *tag = g_strconcat("created-by-", call->src->name, NULL);
    qubes_domain_tag_add(dom, tag, NULL);
    DomJob *j = qubes_domain_files_new(dom);
    call_run_worker(call, create_work, create_done, j,
                    (GDestroyNotify)dom_job_free);
    return CALL_ASYNC;
}

static char *vm_create_plain(Call *call, GError **error)
{
    return vm_create(call, FALSE, error);
}

static char *vm_create_in_pool(Call *call, GError **error)
{
    return vm_create(call, TRUE, error);
}

/* ---- admin.vm.CreateDisposable ----
 *
 * As master's: a DispVM of the destination (of the source's
 * default_dispvm when the destination is dom0), named dispDISPID, with
 * auto_cleanup (it removes itself when it stops), tagged created-by-SRC
 * and disp-created-by-SRC; the answer is its name, or "uuid:UUID" when
 * the payload is "uuid". A preloaded DispVM of the template, when one
 * is ready, is handed out instead of a new one (src/vm/preload-run.c);
 * the argument "preload" fills the template's preload list now. */

typedef struct {
    DomJob *job;
    gboolean uuid;
} DispJob;

static DispJob *disp_job_new(QubesDomain *dom, gboolean uuid)
{
    DispJob *j = g_new0(DispJob, 1);
    j->job = qubes_domain_files_new(dom);
    j->uuid = uuid;
    return j;
}

static void disp_job_free(DispJob *j)
{
    dom_job_free(j->job);
    g_free(j);
}

static gboolean disp_create_work(gpointer data, GError **error)
{
    DispJob *j = data;
    return create_work(j->job, error);
}

static char *disp_saved(Call *call, gboolean ok, GError **error, gpointer data)
{
    DispJob *j = data;
    if (!ok)
        return NULL;
    if (!j->uuid)
        return g_strdup(j->job->dom->name);
    g_autofree char *uuid = NULL;
    qubes_props_get(&j->job->dom->props, "uuid", &uuid, NULL, NULL);
    return g_strconcat("uuid:", uuid, NULL);
}

static char *disp_created(Call *call, gboolean ok, GError **error,
                          gpointer data)
{
    DispJob *j = data;
    if (!ok) {
        if (!j->job->dom->removed)
            qubes_app_remove_domain(call->app, j->job->dom, NULL);
        return NULL;
    }
    qubes_domain_firewall_watch(j->job->dom, j->job->firewall_next);
    g_autoptr(GPtrArray) fx = qubes_emitter_fire(
        &j->job->dom->emitter, "domain-create-on-disk", NULL, NULL);
    DispJob *k = disp_job_new(j->job->dom, j->uuid);
    call_save_then(call, disp_saved, k, (GDestroyNotify)disp_job_free);
    return CALL_ASYNC;
}

static void disp_tag(Call *call, QubesDomain *dom)
{
    g_autofree char *t1 = g_strconcat("created-by-", call->src->name, NULL);
    g_autofree char *t2 =
        g_strconcat("disp-created-by-", call->src->name, NULL);
    qubes_domain_tag_add(dom, t1, NULL);
    qubes_domain_tag_add(dom, t2, NULL);
}

/* A new DispVM of @appvm, tagged by the caller, answered once made and
 * saved. */
static char *disp_make(Call *call, QubesDomain *appvm, gboolean uuid,
                       GError **error)
{
    g_autofree char *label = NULL;
    qubes_props_get(&appvm->props, "label", &label, NULL, NULL);
    QubesDomain *dom =
        qubes_app_add_new_domain(call->app, qubes_domain_class_lookup("DispVM"),
                                 NULL, label, appvm->name, NULL, NULL, error);
    if (!dom)
        return NULL;
    if (!qubes_props_set(&dom->props, "auto_cleanup", "True", error)) {
        qubes_app_remove_domain(call->app, dom, NULL);
        return NULL;
    }
    disp_tag(call, dom);
    DispJob *j = disp_job_new(dom, uuid);
    call_run_worker(call, disp_create_work, disp_created, j,
                    (GDestroyNotify)disp_job_free);
    return CALL_ASYNC;
}

typedef struct {
    Call *call;
    QubesDomain *appvm; /* held */
    gboolean uuid;
} PreloadAsk;

/* A preloaded DispVM came (or none was ready: a new one is made). */
static void disp_preloaded(GObject *src, GAsyncResult *res, gpointer data)
{
    PreloadAsk *a = data;
    GError *err = NULL;
    QubesDomain *dom = qubes_preload_request_finish(res, &err);
    if (dom) {
        disp_tag(a->call, dom);
        DispJob *j = disp_job_new(dom, a->uuid);
        call_save_then(a->call, disp_saved, j, (GDestroyNotify)disp_job_free);
        qubes_domain_unref(dom);
    } else if (err || !disp_make(a->call, a->appvm, a->uuid, &err)) {
        call_fail(a->call, err);
    }
    qubes_domain_unref(a->appvm);
    g_free(a);
}

static char *vm_create_disposable(Call *call, GError **error)
{
    if (!api_enforce(!*call->arg || strcmp(call->arg, "preload") == 0, NULL,
                     error))
        return NULL;
    gsize len = 0;
    const char *untrusted = api_payload(call, &len);
    gboolean uuid = len == 4 && memcmp(untrusted, "uuid", 4) == 0;
    if (len && !uuid) {
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                            "Invalid payload for admin.vm.CreateDisposable: "
                            "expected the empty string or 'uuid'");
        return NULL;
    }
    QubesDomain *appvm = call->dest;
    g_autofree char *def = NULL;
    if (appvm->qid == 0) {
        qubes_props_get(&call->src->props, "default_dispvm", &def, NULL, NULL);
        appvm =
            def && *def ? g_hash_table_lookup(call->app->by_name, def) : NULL;
    }
    if (*call->arg && appvm) {
        /* master awaits domain-preload-dispvm-start, whose handler (a
         * disposable template class's) refuses a qube that cannot
         * preload and fills its list; offline, only the event */
        gboolean dvm_class = qubes_preload_class(appvm);
        if (dvm_class && !qubes_preload_check_supported(appvm, error))
            return NULL;
        QubesPreload *p = qubes_runtime_preload(call->app->runtime);
        if (p && dvm_class) {
            qubes_preload_start(p, appvm, "autostart was requested");
        } else {
            const char *kw[] = {"reason", "autostart was requested", NULL};
            g_autoptr(GPtrArray) fx = qubes_emitter_fire(
                &appvm->emitter, "domain-preload-dispvm-start", kw, NULL);
        }
        return g_strdup("");
    }
    if (!appvm ||
        !qubes_props_def(&appvm->props, "template_for_dispvms", NULL) ||
        !qubes_domain_flag(appvm, "template_for_dispvms")) {
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                            "Refusing to create disposable out of app qube "
                            "which has template_for_dispvms=False");
        return NULL;
    }
    /* master's from_appvm: a preloaded one when one is ready */
    QubesPreload *p = qubes_runtime_preload(call->app->runtime);
    if (p) {
        PreloadAsk *a = g_new0(PreloadAsk, 1);
        a->call = call;
        a->appvm = qubes_domain_ref(appvm);
        a->uuid = uuid;
        qubes_preload_request(p, appvm, disp_preloaded, a);
        return CALL_ASYNC;
    }
    return disp_make(call, appvm, uuid, error);
}

static gboolean remove_work(gpointer data, GError **error)
{
    DomJob *j = data;
    g_autoptr(GError) err = NULL;
    if (!qubes_domain_files_remove(j, &err))
        g_warning("Error while removing VM '%s' files: %s", j->dom->name,
                  err->message);
    return TRUE;
}

static char *remove_done(Call *call, gboolean ok, GError **error, gpointer data)
{
    return g_strdup("");
}

/* Owns the DomJob @data from here. */
static char *remove_saved(Call *call, gboolean ok, GError **error,
                          gpointer data)
{
    if (!ok) {
        dom_job_free(data);
        return NULL;
    }
    call_run_worker(call, remove_work, remove_done, data,
                    (GDestroyNotify)dom_job_free);
    return CALL_ASYNC;
}

static char *vm_remove(Call *call, GError **error)
{
    QubesDomain *dom = call->dest;
    if (dom->qid == 0) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VM_IN_USE,
                    "'dom0' cannot be removed");
        return NULL;
    }
    if (!api_dest_halted(call, error))
        return NULL;
    g_autofree char *rpm = NULL;
    qubes_props_get(&dom->props, "installed_by_rpm", &rpm, NULL, NULL);
    if (g_strcmp0(rpm, "True") == 0) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VM_IN_USE,
                    "VM installed by package manager: %s", dom->name);
        return NULL;
    }
    DomJob *j = qubes_domain_files_new(dom);
    if (!qubes_app_remove_domain(call->app, dom, error)) {
        dom_job_free(j);
        return NULL;
    }
    /* qubes.xml forgets the domain before its files go: a crash in
     * between leaves unreferenced files, never a domain without disks. */
    call_save_then(call, remove_saved, j, NULL);
    return CALL_ASYNC;
}

#define NP M_NO_PAYLOAD
#define NA M_NO_ARG
#define D0 M_DOM0

const Method api_vm_methods[] = {
    {"admin.vmclass.List", NP | NA | D0, vmclass_list},
    {"admin.vm.List", NP | NA, vm_list},
    {"admin.vm.Create.", D0 | M_PREFIX | M_PAYLOAD, vm_create_plain},
    {"admin.vm.CreateInPool.", D0 | M_PREFIX | M_PAYLOAD, vm_create_in_pool},
    {"admin.vm.CreateDisposable", 0, vm_create_disposable},
    {"admin.vm.Remove", NP | NA, vm_remove},
    {NULL},
};
