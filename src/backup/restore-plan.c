/* restore-plan.c: what a restore will do (see restore-plan.h). */
#include "restore-plan.h"

#include "qubes-error.h"
#include "qubesxml.h"

#include <string.h>

QubesRestoreHost *qubes_restore_host_new(void)
{
    QubesRestoreHost *h = g_new0(QubesRestoreHost, 1);
    h->classes = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    h->dispvm_tpls =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    h->networkers =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    return h;
}

void qubes_restore_host_free(QubesRestoreHost *h)
{
    if (!h)
        return;
    g_hash_table_unref(h->classes);
    g_hash_table_unref(h->dispvm_tpls);
    g_hash_table_unref(h->networkers);
    g_free(h->default_template);
    g_free(h->default_dispvm);
    g_free(h->local_user);
    g_free(h);
}

void qubes_restore_device_free(QubesRestoreDevice *d)
{
    g_free(d->devclass);
    g_free(d->backend);
    g_free(d->port);
    g_free(d->mode);
    g_ptr_array_unref(d->options);
    g_free(d);
}

QubesRestoreVM *qubes_restore_vm_new(const char *klass)
{
    QubesRestoreVM *vm = g_new0(QubesRestoreVM, 1);
    vm->klass = g_strdup(klass);
    vm->properties = g_ptr_array_new_with_free_func(g_free);
    vm->features = g_ptr_array_new_with_free_func(g_free);
    vm->tags = g_ptr_array_new_with_free_func(g_free);
    vm->devices = g_ptr_array_new_with_free_func(
        (GDestroyNotify)qubes_restore_device_free);
    return vm;
}

void qubes_restore_vm_free(QubesRestoreVM *vm)
{
    if (!vm)
        return;
    g_free(vm->name);
    g_free(vm->klass);
    g_free(vm->label);
    g_free(vm->template);
    g_ptr_array_unref(vm->properties);
    g_ptr_array_unref(vm->features);
    g_ptr_array_unref(vm->tags);
    g_ptr_array_unref(vm->devices);
    g_free(vm->backup_path);
    g_free(vm);
}

static void item_free(QubesRestoreItem *it)
{
    g_free(it->name);
    g_free(it->subdir);
    g_free(it->template);
    g_free(it->netvm);
    g_free(it->orig_template);
    g_free(it->username);
    g_free(it);
}

void qubes_restore_info_free(QubesRestoreInfo *info)
{
    if (!info)
        return;
    g_ptr_array_unref(info->items);
    g_ptr_array_unref(info->vms);
    g_free(info);
}

const char *qubes_restore_vm_prop(const QubesRestoreVM *vm, const char *name,
                                  gboolean *present)
{
    for (guint i = 0; i + 1 < vm->properties->len; i += 2) {
        if (strcmp(vm->properties->pdata[i], name) == 0) {
            if (present)
                *present = TRUE;
            return vm->properties->pdata[i + 1];
        }
    }
    if (present)
        *present = FALSE;
    return NULL;
}

/* Python's truth of a property's text as the client reads it: any
 * non-empty string (even "False": the client keeps qubes.xml's text). */
static gboolean prop_truthy(const QubesRestoreVM *vm, const char *name)
{
    const char *v = qubes_restore_vm_prop(vm, name, NULL);
    return v && *v;
}

static char *pop_prop(GPtrArray *props, const char *name, gboolean *found)
{
    for (guint i = 0; i + 1 < props->len; i += 2) {
        if (strcmp(props->pdata[i], name) == 0) {
            char *v = g_strdup(props->pdata[i + 1]);
            g_ptr_array_remove_range(props, i, 2);
            if (found)
                *found = TRUE;
            return v;
        }
    }
    if (found)
        *found = FALSE;
    return NULL;
}

static const char *label_name(const QubesXml *xml, const char *ref)
{
    for (guint i = 0; i < xml->labels->len; i++) {
        const QxLabel *l = xml->labels->pdata[i];
        g_autofree char *id = g_strdup_printf("label-%u", l->index);
        if (g_strcmp0(ref, id) == 0 || g_strcmp0(ref, l->name) == 0)
            return l->name;
    }
    return NULL;
}

static gboolean bad(GError **error, const char *why)
{
    g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                "Invalid qubes.xml in the backup: %s", why);
    return FALSE;
}

/* core3.py's import_core3_vm for one domain element. */
static QubesRestoreVM *read_vm(const QubesXml *xml, const QxDomain *d,
                               GError **error)
{
    QubesRestoreVM *vm = qubes_restore_vm_new(d->klass ? d->klass : "");
    for (guint i = 0; i < d->properties->len; i++) {
        const QxProperty *p = d->properties->pdata[i];
        g_ptr_array_add(vm->properties, g_strdup(p->name));
        g_ptr_array_add(vm->properties,
                        p->value && *p->value ? g_strdup(p->value) : NULL);
    }
    g_ptr_array_extend(vm->features, d->features, qx_copy_string, NULL);
    g_ptr_array_extend(vm->tags, d->tags, qx_copy_string, NULL);
    for (guint i = 0; i < d->devices->len; i++) {
        const QxDevice *x = d->devices->pdata[i];
        QubesRestoreDevice *dev = g_new0(QubesRestoreDevice, 1);
        dev->devclass = g_strdup(x->devclass);
        dev->backend = g_strdup(qx_attrs_get(x->attrs, "backend-domain"));
        dev->port = g_strdup(qx_attrs_get(x->attrs, "id"));
        /* the mode master writes; else the older "required" (yes when
         * absent, as the client reads it) */
        const char *mode = qx_attrs_get(x->attrs, "mode");
        const char *req = qx_attrs_get(x->attrs, "required");
        gboolean required = !req || g_ascii_strcasecmp(req, "yes") == 0 ||
                            g_ascii_strcasecmp(req, "true") == 0 ||
                            strcmp(req, "1") == 0;
        dev->mode = g_strdup(mode       ? mode
                             : required ? "required"
                                        : "auto-attach");
        dev->options = g_ptr_array_new_with_free_func(g_free);
        g_ptr_array_extend(dev->options, x->options, qx_copy_string, NULL);
        g_ptr_array_add(vm->devices, dev);
    }
    gboolean found;
    if (strcmp(vm->klass, "AdminVM") == 0) {
        vm->name = g_strdup("dom0");
        g_free(pop_prop(vm->properties, "name", NULL));
    } else {
        vm->name = pop_prop(vm->properties, "name", &found);
    }
    g_autofree char *label = pop_prop(vm->properties, "label", NULL);
    const char *lname = label_name(xml, label);
    vm->template = pop_prop(vm->properties, "template", NULL);
    g_free(pop_prop(vm->properties, "uuid", NULL));
    g_free(pop_prop(vm->properties, "qid", NULL));
    if (!vm->name || !lname) {
        qubes_restore_vm_free(vm);
        bad(error, "a domain without a name or a known label");
        return NULL;
    }
    vm->label = g_strdup(lname);
    /* backup-content, -path, -size: where it is (not restored as
     * features) */
    g_autofree char *content = pop_prop(vm->features, "backup-content", NULL);
    g_autofree char *path = pop_prop(vm->features, "backup-path", NULL);
    g_autofree char *size = pop_prop(vm->features, "backup-size", NULL);
    if (content && *content) {
        vm->included = TRUE;
        vm->backup_path = g_steal_pointer(&path);
        guint64 n = 0;
        if (size &&
            !g_ascii_string_to_unsigned(size, 10, 0, G_MAXUINT64, &n, NULL)) {
            qubes_restore_vm_free(vm);
            bad(error, "a backup-size that is not a number");
            return NULL;
        }
        vm->size = n;
    }
    return vm;
}

QubesRestoreItem *qubes_restore_item(const QubesRestoreInfo *info,
                                     const char *name)
{
    for (guint i = 0; name && i < info->items->len; i++) {
        QubesRestoreItem *it = info->items->pdata[i];
        if (strcmp(it->vm->name, name) == 0)
            return it;
    }
    return NULL;
}

gboolean qubes_restore_good(const QubesRestoreItem *item)
{
    return item->problems == 0;
}

static gboolean name_taken(const QubesRestoreInfo *info,
                           const QubesRestoreHost *host, const char *name)
{
    if (g_hash_table_contains(host->classes, name))
        return TRUE;
    for (guint i = 0; i < info->items->len; i++) {
        const QubesRestoreItem *it = info->items->pdata[i];
        if (strcmp(it->vm->name, name) == 0 || strcmp(it->name, name) == 0)
            return TRUE;
    }
    return FALSE;
}

/* new_name_for_conflicting_vm */
static char *new_name(const QubesRestoreInfo *info,
                      const QubesRestoreHost *host, const char *orig)
{
    g_autofree char *base = g_strndup(orig, 29);
    char *name = g_strdup(base);
    for (int n = 1; name_taken(info, host, name); n++) {
        g_free(name);
        if (n == 100)
            return NULL;
        name = g_strdup_printf("%s-%d", base, n);
    }
    return name;
}

static gboolean excluded(const QubesRestoreOptions *opts, const char *name)
{
    for (guint i = 0; opts->exclude && i < opts->exclude->len; i++)
        if (strcmp(opts->exclude->pdata[i], name) == 0)
            return TRUE;
    return FALSE;
}

void qubes_restore_info_verify(QubesRestoreInfo *info,
                               const QubesRestoreHost *host,
                               const QubesRestoreOptions *opts)
{
    for (guint i = 0; i < info->items->len; i++) {
        QubesRestoreItem *it = info->items->pdata[i];
        if (it->is_dom0)
            continue;
        it->problems = 0;
        if (excluded(opts, it->vm->name))
            it->problems |= QUBES_RESTORE_EXCLUDED;
        if (!opts->verify_only &&
            g_hash_table_contains(host->classes, it->name)) {
            g_autofree char *renamed = opts->rename_conflicting
                                           ? new_name(info, host, it->vm->name)
                                           : NULL;
            if (renamed) {
                g_free(it->name);
                it->name = g_steal_pointer(&renamed);
            } else {
                it->problems |= QUBES_RESTORE_ALREADY_EXISTS;
            }
        }
        gboolean dispvm = strcmp(it->vm->klass, "DispVM") == 0;
        if (it->template) {
            const char *host_class =
                g_hash_table_lookup(host->classes, it->template);
            gboolean on_host =
                host_class &&
                (dispvm ? g_hash_table_contains(host->dispvm_tpls, it->template)
                        : strcmp(host_class, "TemplateVM") == 0);
            const QubesRestoreItem *bak =
                qubes_restore_item(info, it->template);
            gboolean in_backup =
                bak && !bak->is_dom0 && qubes_restore_good(bak) &&
                (dispvm ? prop_truthy(bak->vm, "template_for_dispvms")
                        : strcmp(bak->vm->klass, "TemplateVM") == 0);
            if (!on_host && !in_backup) {
                const char *dflt =
                    dispvm ? host->default_dispvm : host->default_template;
                if (opts->use_default_template && dflt) {
                    if (!it->orig_template)
                        it->orig_template = g_strdup(it->template);
                    g_free(it->template);
                    it->template = g_strdup(dflt);
                } else {
                    it->problems |= QUBES_RESTORE_MISSING_TEMPLATE;
                }
            }
        }
        gboolean has_netvm;
        const char *netvm = qubes_restore_vm_prop(it->vm, "netvm", &has_netvm);
        if (netvm) {
            gboolean on_host =
                it->netvm && g_hash_table_contains(host->networkers, it->netvm);
            const QubesRestoreItem *bak = qubes_restore_item(info, it->netvm);
            gboolean in_backup = bak && !bak->is_dom0 &&
                                 qubes_restore_good(bak) &&
                                 prop_truthy(bak->vm, "provides_network");
            if (!on_host && !in_backup) {
                if (opts->use_default_netvm) {
                    /* del vm.properties['netvm']: the host's default */
                    g_free(pop_prop(it->vm->properties, "netvm", NULL));
                } else {
                    it->problems |= QUBES_RESTORE_MISSING_NETVM;
                }
            }
        }
    }
}

QubesRestoreInfo *qubes_restore_info_new(const char *untrusted, gsize len,
                                         const QubesRestoreHost *host,
                                         const QubesRestoreOptions *opts,
                                         GError **error)
{
    g_autoptr(QubesXml) xml =
        qubes_xml_parse(untrusted, len, "qubes.xml (backup)", error);
    if (!xml)
        return NULL;
    g_autoptr(GPtrArray) vms =
        g_ptr_array_new_with_free_func((GDestroyNotify)qubes_restore_vm_free);
    for (guint i = 0; i < xml->domains->len; i++) {
        QubesRestoreVM *vm = read_vm(xml, xml->domains->pdata[i], error);
        if (!vm)
            return NULL;
        g_ptr_array_add(vms, vm);
    }
    return qubes_restore_info_from_vms(g_steal_pointer(&vms), host, opts,
                                       error);
}

QubesRestoreInfo *qubes_restore_info_from_vms(GPtrArray *vms,
                                              const QubesRestoreHost *host,
                                              const QubesRestoreOptions *opts,
                                              GError **error)
{
    g_autoptr(QubesRestoreInfo) info = g_new0(QubesRestoreInfo, 1);
    info->vms = vms;
    info->items = g_ptr_array_new_with_free_func((GDestroyNotify)item_free);
    for (guint i = 0; i < vms->len; i++)
        for (guint j = 0; j < i; j++)
            if (strcmp(((QubesRestoreVM *)vms->pdata[j])->name,
                       ((QubesRestoreVM *)vms->pdata[i])->name) == 0) {
                bad(error, "a domain named twice");
                return NULL;
            }
    QubesRestoreVM *dom0 = NULL;
    for (guint i = 0; i < info->vms->len; i++) {
        QubesRestoreVM *vm = info->vms->pdata[i];
        if (strcmp(vm->klass, "AdminVM") == 0) {
            dom0 = vm;
            continue;
        }
        if (!vm->included)
            continue;
        QubesRestoreItem *it = g_new0(QubesRestoreItem, 1);
        it->vm = vm;
        it->name = g_strdup(vm->name);
        it->subdir = g_strdup(vm->backup_path);
        it->size = vm->size;
        it->template = g_strdup(vm->template);
        it->netvm = g_strdup(qubes_restore_vm_prop(vm, "netvm", NULL));
        g_ptr_array_add(info->items, it);
    }
    qubes_restore_info_verify(info, host, opts);
    if (opts->dom0_home && dom0 && dom0->backup_path) {
        QubesRestoreItem *it = g_new0(QubesRestoreItem, 1);
        it->vm = dom0;
        it->is_dom0 = TRUE;
        it->name = g_strdup("dom0");
        it->subdir = g_strdup(dom0->backup_path);
        it->size = dom0->size;
        it->username = g_path_get_basename(dom0->backup_path);
        const char *local = host->local_user ? host->local_user : it->username;
        if (strcmp(local, it->username) != 0 && !opts->ignore_username_mismatch)
            it->problems |= QUBES_RESTORE_USERNAME_MISMATCH;
        g_ptr_array_add(info->items, it);
    }
    return g_steal_pointer(&info);
}

/* ---- the summary ---- */

enum { F_NAME, F_TYPE, F_TEMPLATE, F_NETVM, F_LABEL, F_N };

static const char *field(const QubesRestoreVM *vm, int f)
{
    gboolean present;
    const char *netvm;
    switch (f) {
    case F_NAME:
        return vm->name;
    case F_TYPE:
        return vm->klass;
    case F_TEMPLATE:
        return vm->template ? vm->template : "n/a";
    case F_NETVM:
        netvm = qubes_restore_vm_prop(vm, "netvm", &present);
        return !present ? "(default)" : netvm ? netvm : "-";
    default:
        return vm->label;
    }
}

static void rule(GString *s, const gsize *width)
{
    for (int f = 0; f < F_N; f++) {
        for (gsize i = 0; i < width[f] + 1; i++)
            g_string_append_c(s, '-');
        g_string_append(s, "-+");
    }
    g_string_append_c(s, '\n');
}

static void cell(GString *s, gsize width, const char *text)
{
    glong n = g_utf8_strlen(text, -1);
    for (glong i = n; i < (glong)width + 1; i++)
        g_string_append_c(s, ' ');
    g_string_append_printf(s, "%s |", text);
}

char *qubes_restore_summary(const QubesRestoreInfo *info)
{
    static const char *const names[F_N] = {"name", "type", "template", "netvm",
                                           "label"};
    gsize width[F_N];
    for (int f = 0; f < F_N; f++) {
        width[f] = strlen(names[f]);
        for (guint i = 0; i < info->items->len; i++) {
            const QubesRestoreItem *it = info->items->pdata[i];
            width[f] =
                MAX(width[f], (gsize)g_utf8_strlen(field(it->vm, f), -1));
        }
    }
    GString *s = g_string_new("The following VMs are included in the "
                              "backup:\n\n");
    rule(s, width);
    for (int f = 0; f < F_N; f++)
        cell(s, width[f], names[f]);
    g_string_append_c(s, '\n');
    rule(s, width);
    for (guint i = 0; i < info->items->len; i++) {
        const QubesRestoreItem *it = info->items->pdata[i];
        for (int f = 0; f < F_N; f++)
            cell(s, width[f], field(it->vm, f));
        if (it->problems & QUBES_RESTORE_EXCLUDED)
            g_string_append(s, " <-- Excluded from restore");
        else if (it->problems & QUBES_RESTORE_ALREADY_EXISTS)
            g_string_append(s, " <-- A VM with the same name already exists "
                               "on the host!");
        else if (it->problems & QUBES_RESTORE_MISSING_TEMPLATE)
            g_string_append(s, " <-- No matching template on the host or in "
                               "the backup found!");
        else if (it->problems & QUBES_RESTORE_MISSING_NETVM)
            g_string_append(s, " <-- No matching netvm on the host or in the "
                               "backup found!");
        else if (it->is_dom0 &&
                 (it->problems & QUBES_RESTORE_USERNAME_MISMATCH))
            g_string_append(s, " <-- username in backup and dom0 mismatch");
        else {
            if (g_strcmp0(it->template, it->vm->template) != 0)
                g_string_append_printf(s, " <-- Template change to '%s'",
                                       it->template ? it->template : "None");
            if (strcmp(it->name, it->vm->name) != 0)
                g_string_append_printf(s, " <-- Will be renamed to '%s'",
                                       it->name);
        }
        g_string_append_c(s, '\n');
    }
    return g_string_free(s, FALSE);
}

static int templates_rank(const QubesRestoreItem *it)
{
    if (strcmp(it->vm->klass, "TemplateVM") == 0)
        return 0;
    if (prop_truthy(it->vm, "template_for_dispvms"))
        return 1;
    return 2;
}

static gint by_rank(gconstpointer a, gconstpointer b)
{
    return templates_rank(*(QubesRestoreItem *const *)a) -
           templates_rank(*(QubesRestoreItem *const *)b);
}

GPtrArray *qubes_restore_templates_first(const QubesRestoreInfo *info)
{
    GPtrArray *out = g_ptr_array_new();
    g_ptr_array_extend(out, info->items, NULL, NULL);
    /* g_ptr_array_sort is stable (a merge sort), as Python's sorted */
    g_ptr_array_sort(out, by_rank);
    return out;
}
