/* lookup.c: finding things in the model (see lookup.h). */
#include "lookup.h"

#include "qubes-error.h"
#include "qubes-parse.h"

#include <string.h>

const QxLabel *qubes_app_get_label(QubesApp *app, const char *name,
                                   GError **error)
{
    /* app.get_label: a name, else an index written in digits. */
    for (guint i = 0; i < app->labels->len; i++) {
        const QxLabel *l = app->labels->pdata[i];
        if (strcmp(l->name, name) == 0)
            return l;
    }
    if (*name && strspn(name, "0123456789") == strlen(name) &&
        strlen(name) < 10) {
        guint64 index = g_ascii_strtoull(name, NULL, 10);
        for (guint i = 0; i < app->labels->len; i++) {
            const QxLabel *l = app->labels->pdata[i];
            if (l->index == index)
                return l;
        }
    }
    g_set_error(error, QUBES_ERROR, QUBES_ERROR_LABEL_NOT_FOUND,
                "Label does not exist: %s", name);
    return NULL;
}

QubesPool *qubes_app_get_pool(QubesApp *app, const char *name, GError **error)
{
    for (guint i = 0; i < app->pools->len; i++) {
        QubesPool *p = app->pools->pdata[i];
        if (strcmp(qubes_pool_get_name(p), name) == 0)
            return p;
    }
    g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                "Unknown storage pool %s", name);
    return NULL;
}

char *qubes_app_default_pool(QubesApp *app, const char *volume)
{
    g_autofree char *prop = g_strconcat("default_pool_", volume, NULL);
    if (!qubes_props_def(&app->props, prop, NULL))
        return qubes_props_value(&app->props, "default_pool");
    return qubes_props_value(&app->props, prop);
}

QubesDomain *qubes_app_get_domain(QubesApp *app, const char *name,
                                  GError **error)
{
    QubesDomain *d = g_hash_table_lookup(app->by_name, name);
    if (!d)
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VM_NOT_FOUND,
                    "No such domain: '%s'", name);
    return d;
}

/* The domains array is kept sorted by qid: a binary search. */
guint qubes_app_qid_position(QubesApp *app, guint qid)
{
    guint lo = 0, hi = app->domains->len;
    while (lo < hi) {
        guint mid = lo + (hi - lo) / 2;
        if (((QubesDomain *)app->domains->pdata[mid])->qid < qid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

QubesDomain *qubes_app_get_domain_by_qid(QubesApp *app, guint qid)
{
    guint i = qubes_app_qid_position(app, qid);
    if (i < app->domains->len &&
        ((QubesDomain *)app->domains->pdata[i])->qid == qid)
        return app->domains->pdata[i];
    return NULL;
}

gboolean qubes_app_kernel_installed(QubesApp *app, const char *kernel,
                                    GError **error)
{
    g_autofree char *dir =
        g_build_filename(app->base_dir, "vm-kernels", kernel, NULL);
    g_autofree char *vmlinuz = g_build_filename(dir, "vmlinuz", NULL);
    if (!g_file_test(dir, G_FILE_TEST_IS_DIR)) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_PROPERTY_VALUE,
                    "Kernel '%s' not installed", kernel);
        return FALSE;
    }
    if (!g_file_test(vmlinuz, G_FILE_TEST_IS_REGULAR)) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_PROPERTY_VALUE,
                    "Kernel '%s' not properly installed: missing 'vmlinuz' "
                    "file",
                    kernel);
        return FALSE;
    }
    return TRUE;
}

char *qubes_app_setter_kernel(QubesApp *app, QubesPropHolder *h,
                              const QubesPropDef *def, const char *value,
                              GError **error)
{
    if (strchr(value, '/') || strcmp(value, "..") == 0 ||
        strcmp(value, ".") == 0) {
        qubes_prop_error(error, h, def, value,
                         "Kernel name cannot contain '/'");
        return NULL;
    }
    if (*value && !app->loading && !app->checking &&
        !qubes_app_kernel_installed(app, value, error))
        return NULL;
    return g_strdup(value);
}

QubesDomain *qubes_prop_vm(QubesApp *app, QubesPropHolder *h,
                           const QubesPropDef *def, const char *value,
                           GError **error)
{
    /* VMProperty.__set__: "" is None, refused where none is allowed. */
    if (!*value) {
        g_autofree char *why =
            g_strdup_printf("Invalid value None for property '%s' of %s",
                            def->name, h->class_name);
        qubes_prop_error(error, h, def, value, why);
        return NULL;
    }
    if (!qubes_validate_vm_name(value, error))
        return NULL;
    QubesDomain *d = g_hash_table_lookup(app->by_name, value);
    if (!d) {
        g_autofree char *why = g_strdup_printf(
            "Can't set %s to non-existing qube %s", def->name, value);
        qubes_prop_error(error, h, def, value, why);
    } else if (strcmp(d->klass->name, "RemoteVM") == 0) {
        g_autofree char *why = g_strdup_printf(
            "wrong VM class: domains['%s'] is of type RemoteVM and not LocalVM",
            value);
        qubes_prop_error(error, h, def, value, why);
        return NULL;
    }
    return d;
}

gboolean qubes_domain_flag(QubesDomain *d, const char *prop)
{
    g_autofree char *v = qubes_props_value(&d->props, prop);
    return g_strcmp0(v, "True") == 0;
}

QubesDomain *qubes_domain_get_template(QubesDomain *dom)
{
    if (!dom->klass->has_template)
        return NULL;
    const char *t = g_hash_table_lookup(dom->props.values, "template");
    return t ? g_hash_table_lookup(dom->app->by_name, t) : NULL;
}

QubesDomain *qubes_domain_get_netvm(QubesDomain *dom)
{
    if (!qubes_props_def(&dom->props, "netvm", NULL))
        return NULL;
    g_autofree char *v = qubes_props_value(&dom->props, "netvm");
    return v && *v ? g_hash_table_lookup(dom->app->by_name, v) : NULL;
}

char *qubes_domain_prop(QubesDomain *dom, const char *name)
{
    return qubes_props_value(&dom->props, name);
}
