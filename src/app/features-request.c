/* features-request.c: a qube's features request, as master's extensions
 * handle it; see features-request.h. */
#include "features-request.h"

#include "lookup.h"
#include "qube-features.h"

#include <string.h>

static gboolean set(QubesDomain *vm, const char *name, const char *value,
                    GError **error)
{
    return qubes_domain_feature_set(vm, name, value, error);
}

static gboolean has_feature(QubesDomain *vm, const char *name)
{
    return qubes_domain_feature_get(vm, name) != NULL;
}

static gboolean truthy(const char *v)
{
    return v && *v;
}

static int str_cmp(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The request's names, sorted (new array of borrowed strings). */
static GPtrArray *sorted_keys(GHashTable *t)
{
    GPtrArray *keys = g_ptr_array_new();
    GHashTableIter it;
    gpointer k;
    g_hash_table_iter_init(&it, t);
    while (g_hash_table_iter_next(&it, &k, NULL))
        g_ptr_array_add(keys, k);
    g_ptr_array_sort(keys, str_cmp);
    return keys;
}

static gboolean template_based(QubesDomain *vm)
{
    return qubes_domain_get_template(vm) != NULL;
}

static gboolean only_chars(const char *s, const char *allowed)
{
    return strspn(s, allowed) == strlen(s);
}

static gboolean valid_date(const char *s)
{
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return FALSE;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && !g_ascii_isdigit(s[i]))
            return FALSE;
    int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
    return y >= 1 && g_date_valid_dmy((GDateDay)d, (GDateMonth)m, (GDateYear)y);
}

static gboolean valid_version(const char *s)
{
    /* [0-9]{1,3}\.[0-9]{1,3}, whole */
    const char *dot = strchr(s, '.');
    if (!dot)
        return FALSE;
    size_t a = (size_t)(dot - s), b = strlen(dot + 1);
    return a >= 1 && a <= 3 && b >= 1 && b <= 3 &&
           strspn(s, "0123456789") == a && strspn(dot + 1, "0123456789") == b;
}

/* boot-mode.KIND.NAME split; NULL unless it has exactly three parts. */
static char **bootmode_parts(const char *key)
{
    char **parts = g_strsplit(key, ".", -1);
    if (g_strv_length(parts) != 3) {
        g_strfreev(parts);
        return NULL;
    }
    return parts;
}

static gboolean bootmode_known(QubesDomain *vm, const char *name)
{
    if (strcmp(name, "default") == 0)
        return TRUE;
    g_autofree char *key = g_strconcat("boot-mode.kernelopts.", name, NULL);
    return has_feature(vm, key);
}

static gboolean is_bootmode_info(const char *key)
{
    return g_str_has_prefix(key, "boot-mode.kernelopts.") ||
           g_str_has_prefix(key, "boot-mode.name.") ||
           g_str_has_prefix(key, "boot-mode.default-user.");
}

/* The boot modes the qube announces replace the ones it had, when they
 * are at most 64, not none, and their names are unique. */
static gboolean boot_modes(QubesDomain *vm, GHashTable *untrusted,
                           GPtrArray *keys, GError **error)
{
    g_autoptr(GHashTable) fresh =
        g_hash_table_new(g_str_hash, g_str_equal); /* borrowed */
    g_autoptr(GPtrArray) order = g_ptr_array_new();
    g_autoptr(GHashTable) names = g_hash_table_new(g_str_hash, g_str_equal);
    gboolean dup = FALSE;
    for (guint i = 0; i < keys->len; i++) {
        const char *key = keys->pdata[i];
        if (!g_str_has_prefix(key, "boot-mode.kernelopts."))
            continue;
        g_auto(GStrv) parts = bootmode_parts(key);
        if (!parts || !*parts[2] || strcmp(parts[2], "default") == 0)
            continue;
        g_hash_table_insert(fresh, (char *)key,
                            g_hash_table_lookup(untrusted, key));
        g_ptr_array_add(order, (char *)key);
    }
    for (guint i = 0; i < keys->len; i++) {
        const char *key = keys->pdata[i];
        if (!g_str_has_prefix(key, "boot-mode."))
            continue;
        g_auto(GStrv) parts = bootmode_parts(key);
        if (!parts || !*parts[2])
            continue;
        g_autofree char *opts =
            g_strconcat("boot-mode.kernelopts.", parts[2], NULL);
        gboolean is_default = strcmp(parts[2], "default") == 0;
        if (!g_hash_table_contains(fresh, opts) && !is_default)
            continue;
        gboolean user = g_str_has_prefix(key, "boot-mode.default-user.");
        if (!user && !g_str_has_prefix(key, "boot-mode.name."))
            continue;
        if (user && is_default)
            continue;
        const char *value = g_hash_table_lookup(untrusted, key);
        g_hash_table_insert(fresh, (char *)key, (char *)value);
        g_ptr_array_add(order, (char *)key);
        if (!g_hash_table_add(names, (char *)value))
            dup = TRUE;
    }
    guint n = g_hash_table_size(fresh);
    if (!dup && n <= 64 && n > 0) {
        g_autoptr(GPtrArray) old = g_ptr_array_new_with_free_func(g_free);
        for (guint i = 0; i + 1 < vm->features->len; i += 2) {
            const char *k = vm->features->pdata[i];
            if (is_bootmode_info(k) && !g_hash_table_contains(fresh, k))
                g_ptr_array_add(old, g_strdup(k));
        }
        for (guint i = 0; i < old->len; i++)
            if (!qubes_domain_feature_remove(vm, old->pdata[i], error))
                return FALSE;
        for (guint i = 0; i < order->len; i++)
            if (!set(vm, order->pdata[i],
                     g_hash_table_lookup(fresh, order->pdata[i]), error))
                return FALSE;
    }
    static const char *const chosen[] = {"boot-mode.active",
                                         "boot-mode.appvm-default",
                                         "boot-mode.standalone-default", NULL};
    for (const char *const *c = chosen; *c; c++) {
        const char *v = g_hash_table_lookup(untrusted, *c);
        if (!v || !bootmode_known(vm, v))
            continue;
        if (strcmp(*c, "boot-mode.appvm-default") == 0 &&
            !qubes_props_def(&vm->props, "appvm_default_bootmode", NULL))
            continue;
        if (!set(vm, *c, v, error))
            return FALSE;
    }
    return TRUE;
}

static gboolean core_features(QubesDomain *vm, GHashTable *untrusted,
                              GPtrArray *keys, GError **error)
{
    if (template_based(vm)) {
        g_warning("vm.%s: Ignoring qubes.NotifyTools for template-based VM",
                  vm->name);
        return TRUE;
    }
    static const char *const os_names[] = {"os-distribution",
                                           "os-distribution-like", NULL};
    for (const char *const *f = os_names; *f; f++) {
        const char *v = g_hash_table_lookup(untrusted, *f);
        if (truthy(v) && !set(vm, *f, v, error))
            return FALSE;
    }
    const char *version = g_hash_table_lookup(untrusted, "os-version");
    if (truthy(version)) {
        if (only_chars(version, "0123456789.-") &&
            g_ascii_isdigit(version[0])) {
            if (!set(vm, "os-version", version, error))
                return FALSE;
        } else {
            g_warning("vm.%s: Invalid 'os-version' value '%s', must start "
                      "with a digit and only digits and _ or . are allowed",
                      vm->name, version);
        }
    }
    const char *eol = g_hash_table_lookup(untrusted, "os-eol");
    if (truthy(eol)) {
        if (valid_date(eol)) {
            if (!set(vm, "os-eol", eol, error))
                return FALSE;
        } else {
            g_warning("vm.%s: Invalid 'os-eol' value '%s', expected "
                      "YYYY-MM-DD",
                      vm->name, eol);
        }
    }
    /* qrexec, gui, gui-emulated, qubes-firewall, vmexec: "1" or "0" */
    static const char *const flags[] = {"qrexec", "gui", "gui-emulated",
                                        "qubes-firewall", "vmexec"};
    const char *requested[G_N_ELEMENTS(flags)] = {NULL};
    for (guint i = 0; i < G_N_ELEMENTS(flags); i++) {
        const char *v = g_hash_table_lookup(untrusted, flags[i]);
        if (g_strcmp0(v, "1") == 0 || g_strcmp0(v, "0") == 0)
            requested[i] = *v == '1' ? "1" : "";
    }
    const char *agent = g_hash_table_lookup(untrusted, "qubes-agent-version");
    if (agent && valid_version(agent) &&
        !set(vm, "qubes-agent-version", agent, error))
        return FALSE;
    if (!boot_modes(vm, untrusted, keys, error))
        return FALSE;
    if (g_strcmp0(g_hash_table_lookup(untrusted, "anon-timezone"), "1") == 0 &&
        !set(vm, "anon-timezone", "1", error))
        return FALSE;

    gboolean qrexec_before = truthy(qubes_domain_feature_get(vm, "qrexec"));
    for (guint i = 0; i < G_N_ELEMENTS(flags); i++) {
        if (!requested[i])
            continue;
        /* the first three only when not set some other way */
        if (i < 3 && has_feature(vm, flags[i]))
            continue;
        if (!set(vm, flags[i], requested[i], error))
            return FALSE;
    }
    if (!qrexec_before && truthy(qubes_domain_feature_get(vm, "qrexec"))) {
        /* the template's setup can finish now */
        g_autoptr(GPtrArray) fx = qubes_emitter_fire(
            &vm->emitter, "template-postinstall", NULL, error);
        if (!fx)
            return FALSE;
    }
    return TRUE;
}

/* A supported-* list: the names under @prefix announced "1" replace the
 * ones set; @also (or NULL) is a feature set with @trigger when new and
 * not set yet (services: apparmor). */
/* Whether the request announces @name (one of @prefix's) as supported. */
static gboolean announced(GHashTable *untrusted, const char *prefix,
                          const char *name)
{
    return g_str_has_prefix(name, prefix) &&
           g_strcmp0(g_hash_table_lookup(untrusted, name), "1") == 0;
}

static gboolean supported(QubesDomain *vm, GHashTable *untrusted,
                          GPtrArray *keys, const char *prefix,
                          const char *trigger, const char *also, GError **error)
{
    gboolean any = FALSE;
    for (guint i = 0; i < keys->len && !any; i++)
        any = announced(untrusted, prefix, keys->pdata[i]);
    if (!any)
        return TRUE; /* an empty request clears nothing */
    /* the ones set before that the request leaves out go, after */
    g_autoptr(GPtrArray) gone = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i + 1 < vm->features->len; i += 2) {
        const char *k = vm->features->pdata[i];
        if (g_str_has_prefix(k, prefix) && truthy(vm->features->pdata[i + 1]) &&
            !announced(untrusted, prefix, k))
            g_ptr_array_add(gone, g_strdup(k));
    }
    g_ptr_array_sort(gone, str_cmp);
    for (guint i = 0; i < keys->len; i++) {
        const char *k = keys->pdata[i];
        if (!announced(untrusted, prefix, k) ||
            truthy(qubes_domain_feature_get(vm, k)))
            continue;
        if (!set(vm, k, "1", error))
            return FALSE;
        if (trigger && strcmp(k, trigger) == 0 && !has_feature(vm, also) &&
            !set(vm, also, "1", error))
            return FALSE;
    }
    for (guint i = 0; i < gone->len; i++)
        if (!qubes_domain_feature_remove(vm, gone->pdata[i], error))
            return FALSE;
    return TRUE;
}

static gboolean unset_along_template(QubesDomain *vm, const char *name)
{
    return !qubes_domain_feature_check(vm, name, TRUE, FALSE, FALSE, NULL);
}

static gboolean windows(QubesDomain *vm, GHashTable *untrusted, GError **error)
{
    if (template_based(vm)) {
        g_warning("vm.%s: Ignoring qubes.NotifyTools for template-based VM",
                  vm->name);
        return TRUE;
    }
    const char *os = g_hash_table_lookup(untrusted, "os");
    if (g_strcmp0(os, "Windows") != 0 && g_strcmp0(os, "Linux") != 0)
        os = NULL;
    gboolean qrexec =
        g_strcmp0(g_hash_table_lookup(untrusted, "qrexec"), "1") == 0;
    if (os && !set(vm, "os", os, error))
        return FALSE;
    if (g_strcmp0(os, "Windows") != 0 || !qrexec)
        return TRUE;
    if (!set(vm, "rpc-clipboard", "1", error) ||
        !qubes_props_set(&vm->props, "maxmem", "0", error) ||
        !qubes_props_set(&vm->props, "qrexec_timeout", "6000", error))
        return FALSE;
    static const struct {
        const char *name, *value;
    } defaults[] = {{"stubdom-qrexec", "1"},
                    {"audio-model", "ich6"},
                    {"timezone", "localtime"},
                    {"no-monitor-layout", "1"}};
    for (guint i = 0; i < G_N_ELEMENTS(defaults); i++)
        if (unset_along_template(vm, defaults[i].name) &&
            !set(vm, defaults[i].name, defaults[i].value, error))
            return FALSE;
    return TRUE;
}

gboolean qubes_features_request(QubesDomain *vm, GHashTable *untrusted,
                                GError **error)
{
    g_autoptr(GPtrArray) keys = sorted_keys(untrusted);
    if (!core_features(vm, untrusted, keys, error))
        return FALSE;
    if (!template_based(vm)) {
        if (!supported(vm, untrusted, keys, "supported-service.",
                       "supported-service.apparmor", "apparmor", error) ||
            !supported(vm, untrusted, keys, "supported-feature.", NULL, NULL,
                       error))
            return FALSE;
    } else {
        g_warning("vm.%s: Ignoring qubes.FeaturesRequest from template-based "
                  "VM",
                  vm->name);
    }
    if (!supported(vm, untrusted, keys, "supported-rpc.", NULL, NULL, error))
        return FALSE;
    return windows(vm, untrusted, error);
}
