/* qubes-app.c: the qubes as the client's tools see them (qubes-app.h). */
#include "qubes-app.h"

#include "qubesadmin.h"

#include <string.h>

struct _QaVm {
    QaApp *app;
    char *name, *klass, *state;
    GHashTable *props;    /* name -> QaProp*; NULL until fetched */
    GHashTable *features; /* name -> value (NULL value: not set) */
    GPtrArray *tags;
    GPtrArray *volumes;
    GHashTable *volume_info; /* volume -> GHashTable* (NULL: none) */
    gboolean mem_known;
    gint64 mem;
};

struct _QaApp {
    GPtrArray *domains; /* QaVm*, sorted by name */
    GHashTable *by_name;
};

void qa_prop_free(QaProp *p)
{
    g_free(p->type);
    g_free(p->value);
    g_free(p);
}

static void vm_free(QaVm *vm)
{
    g_free(vm->name);
    g_free(vm->klass);
    g_free(vm->state);
    if (vm->props)
        g_hash_table_unref(vm->props);
    g_hash_table_unref(vm->features);
    if (vm->tags)
        g_ptr_array_unref(vm->tags);
    if (vm->volumes)
        g_ptr_array_unref(vm->volumes);
    g_hash_table_unref(vm->volume_info);
    g_free(vm);
}

static void info_free(gpointer info)
{
    if (info)
        g_hash_table_unref(info);
}

static gint by_name(gconstpointer a, gconstpointer b)
{
    const QaVm *x = *(QaVm *const *)a, *y = *(QaVm *const *)b;
    return strcmp(x->name, y->name);
}

QaApp *qa_app_new(GError **error)
{
    g_autofree char *list = qa_call("admin.vm.List", "dom0", NULL, NULL, error);
    if (!list)
        return NULL;
    QaApp *app = g_new0(QaApp, 1);
    app->domains = g_ptr_array_new_with_free_func((GDestroyNotify)vm_free);
    app->by_name = g_hash_table_new(g_str_hash, g_str_equal);
    g_auto(GStrv) lines = g_strsplit(list, "\n", -1);
    for (char **l = lines; *l; l++) {
        if (!**l)
            continue;
        g_auto(GStrv) words = g_strsplit(*l, " ", 2);
        g_autoptr(GHashTable) kv = qa_parse_kv(words[1] ? words[1] : "", " ");
        QaVm *vm = g_new0(QaVm, 1);
        vm->app = app;
        vm->name = g_strdup(words[0]);
        vm->klass = g_strdup(g_hash_table_lookup(kv, "class"));
        vm->state = g_strdup(g_hash_table_lookup(kv, "state"));
        vm->features =
            g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        vm->volume_info =
            g_hash_table_new_full(g_str_hash, g_str_equal, g_free, info_free);
        g_ptr_array_add(app->domains, vm);
        g_hash_table_insert(app->by_name, vm->name, vm);
    }
    g_ptr_array_sort(app->domains, by_name);
    return app;
}

void qa_app_free(QaApp *app)
{
    if (!app)
        return;
    g_hash_table_unref(app->by_name);
    g_ptr_array_unref(app->domains);
    g_free(app);
}

GPtrArray *qa_app_domains(QaApp *app)
{
    return app->domains;
}

QaVm *qa_app_domain(QaApp *app, const char *name)
{
    return g_hash_table_lookup(app->by_name, name);
}

const char *qa_vm_name(const QaVm *vm)
{
    return vm->name;
}

const char *qa_vm_klass(const QaVm *vm)
{
    return vm->klass;
}

const char *qa_vm_state(const QaVm *vm)
{
    return vm->state;
}

/* GetAll's value: "\n" and "\\" escaped. */
static char *unescape(const char *s)
{
    GString *o = g_string_new(NULL);
    for (; *s; s++) {
        if (*s == '\\' && s[1] == 'n') {
            g_string_append_c(o, '\n');
            s++;
        } else if (*s == '\\' && s[1] == '\\') {
            g_string_append_c(o, '\\');
            s++;
        } else {
            g_string_append_c(o, *s);
        }
    }
    return g_string_free(o, FALSE);
}

/* "default=X type=T VALUE" as the client deserializes it. */
QaProp *qa_prop_parse(const char *text)
{
    QaProp *p = g_new0(QaProp, 1);
    g_auto(GStrv) parts = g_strsplit(text, " ", 3);
    if (!parts[0] || !parts[1]) {
        p->kind = QA_PROP_MISSING;
        return p;
    }
    p->is_default = strcmp(parts[0], "default=True") == 0;
    p->type =
        g_strdup(g_str_has_prefix(parts[1], "type=") ? parts[1] + 5 : parts[1]);
    const char *v = parts[2] ? parts[2] : "";
    p->kind = QA_PROP_VALUE;
    if (strcmp(p->type, "bool") == 0 || strcmp(p->type, "int") == 0) {
        if (!*v)
            p->kind = QA_PROP_MISSING;
        else if (strcmp(p->type, "bool") == 0)
            p->value = g_strdup(strcmp(v, "True") == 0 ? "True" : "False");
        else
            p->value = g_strdup(v);
    } else if (strcmp(p->type, "vm") == 0 || strcmp(p->type, "label") == 0) {
        if (!*v)
            p->kind = QA_PROP_NONE;
        else
            p->value = g_strdup(v);
    } else {
        p->value = g_strdup(v);
    }
    return p;
}

GHashTable *qa_props_get_all(const char *method, const char *dest)
{
    g_autofree char *all = qa_call(method, dest, NULL, NULL, NULL);
    if (!all)
        return NULL;
    GHashTable *props = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                              (GDestroyNotify)qa_prop_free);
    g_auto(GStrv) lines = g_strsplit(all, "\n", -1);
    for (char **l = lines; *l; l++) {
        char *sp = strchr(*l, ' ');
        if (!sp)
            continue;
        *sp = '\0';
        g_autofree char *text = unescape(sp + 1);
        g_hash_table_replace(props, g_strdup(*l), qa_prop_parse(text));
    }
    return props;
}

static void fetch_props(QaVm *vm)
{
    if (vm->props)
        return;
    vm->props = qa_props_get_all("admin.vm.property.GetAll", vm->name);
    if (!vm->props)
        vm->props = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                          (GDestroyNotify)qa_prop_free);
}

const QaProp *qa_vm_prop(QaVm *vm, const char *name)
{
    static const QaProp missing = {.kind = QA_PROP_MISSING};
    fetch_props(vm);
    const QaProp *p = g_hash_table_lookup(vm->props, name);
    return p ? p : &missing;
}

const char *qa_vm_prop_str(QaVm *vm, const char *name)
{
    const QaProp *p = qa_vm_prop(vm, name);
    return p->kind == QA_PROP_VALUE ? p->value : NULL;
}

gboolean qa_vm_prop_true(QaVm *vm, const char *name)
{
    const QaProp *p = qa_vm_prop(vm, name);
    if (p->kind != QA_PROP_VALUE)
        return FALSE;
    if (g_strcmp0(p->type, "bool") == 0)
        return strcmp(p->value, "True") == 0;
    if (g_strcmp0(p->type, "int") == 0)
        return g_ascii_strtoll(p->value, NULL, 10) != 0;
    return *p->value != '\0';
}

const char *qa_vm_feature(QaVm *vm, const char *name)
{
    gpointer v;
    if (g_hash_table_lookup_extended(vm->features, name, NULL, &v))
        return v;
    g_autoptr(GError) err = NULL;
    char *value = qa_call("admin.vm.feature.Get", vm->name, name, NULL, &err);
    g_hash_table_insert(vm->features, g_strdup(name), value);
    return value;
}

GPtrArray *qa_vm_tags(QaVm *vm)
{
    if (vm->tags)
        return vm->tags;
    vm->tags = qa_call_lines("admin.vm.tag.List", vm->name, NULL, NULL);
    if (!vm->tags)
        vm->tags = g_ptr_array_new_with_free_func(g_free);
    return vm->tags;
}

GPtrArray *qa_vm_volumes(QaVm *vm)
{
    if (vm->volumes)
        return vm->volumes;
    vm->volumes = qa_call_lines("admin.vm.volume.List", vm->name, NULL, NULL);
    if (!vm->volumes)
        vm->volumes = g_ptr_array_new_with_free_func(g_free);
    return vm->volumes;
}

GHashTable *qa_vm_volume_info(QaVm *vm, const char *volume)
{
    gpointer v;
    if (g_hash_table_lookup_extended(vm->volume_info, volume, NULL, &v))
        return v;
    GPtrArray *names = qa_vm_volumes(vm);
    GHashTable *info = NULL;
    for (guint i = 0; i < names->len && !info; i++) {
        if (strcmp(names->pdata[i], volume) != 0)
            continue;
        g_autofree char *text =
            qa_call("admin.vm.volume.Info", vm->name, volume, NULL, NULL);
        info = qa_parse_kv(text ? text : "", "\n");
    }
    g_hash_table_insert(vm->volume_info, g_strdup(volume), info);
    return info;
}

gint64 qa_vm_mem(QaVm *vm)
{
    if (vm->mem_known)
        return vm->mem;
    vm->mem_known = TRUE;
    vm->mem = -1;
    g_autofree char *text =
        qa_call("admin.vm.CurrentState", vm->name, NULL, NULL, NULL);
    if (text) {
        g_autoptr(GHashTable) kv = qa_parse_kv(text, " ");
        const char *m = g_hash_table_lookup(kv, "mem");
        if (m)
            vm->mem = g_ascii_strtoll(m, NULL, 10);
    }
    return vm->mem;
}

GPtrArray *qa_vm_connected(QaApp *app, QaVm *vm)
{
    GPtrArray *out = g_ptr_array_new();
    for (guint i = 0; i < app->domains->len; i++) {
        QaVm *d = app->domains->pdata[i];
        if (g_strcmp0(qa_vm_prop_str(d, "netvm"), vm->name) == 0)
            g_ptr_array_add(out, d);
    }
    return out;
}
