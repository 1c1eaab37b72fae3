/* qdb-entries.c: a starting qube's QubesDB entries as master writes
 * them; see qdb-entries.h. */
#include "qdb-entries.h"

#include "domain.h"
#include "feature-checks.h"
#include "lookup.h"
#include "net.h"
#include "qube-features.h"
#include "qubes-error.h"

#include <string.h>

typedef struct {
    GPtrArray *kv; /* key, value, ... (owned) */
} Qdb;

static void qdb_write(Qdb *q, const char *key, const char *value)
{
    for (guint i = 0; i + 1 < q->kv->len; i += 2)
        if (strcmp(q->kv->pdata[i], key) == 0) {
            g_free(q->kv->pdata[i + 1]);
            q->kv->pdata[i + 1] = g_strdup(value ? value : "");
            return;
        }
    g_ptr_array_add(q->kv, g_strdup(key));
    g_ptr_array_add(q->kv, g_strdup(value ? value : ""));
}

static void qdb_rm(Qdb *q, const char *key)
{
    for (guint i = 0; i + 1 < q->kv->len; i += 2)
        if (strcmp(q->kv->pdata[i], key) == 0) {
            g_ptr_array_remove_range(q->kv, i, 2);
            return;
        }
}

/* Python's truthiness of a feature's string value */
static gboolean truthy(const char *v)
{
    return v && *v;
}

static QubesDomain *vm_prop(QubesDomain *vm, const char *name)
{
    if (!qubes_props_def(&vm->props, name, NULL))
        return NULL;
    g_autofree char *v = qubes_domain_prop(vm, name);
    return v && *v ? g_hash_table_lookup(vm->app->by_name, v) : NULL;
}

/* get_default_user: a boot mode's default user, else default_user */
static char *default_user(QubesDomain *vm)
{
    g_autofree char *mode = qubes_domain_prop(vm, "bootmode");
    if (mode && strcmp(mode, "default") != 0) {
        g_autofree char *f = g_strconcat("boot-mode.default-user.", mode, NULL);
        const char *u =
            qubes_domain_feature_check(vm, f, TRUE, FALSE, FALSE, NULL);
        if (u)
            return g_strdup(u);
    }
    return qubes_domain_prop(vm, "default_user");
}

static void base_entries(Qdb *q, QubesDomain *vm, const QubesQdbHost *host)
{
    qdb_write(q, "/name", vm->name);
    qdb_write(q, "/type", vm->klass->name);
    g_autofree char *user = default_user(vm);
    qdb_write(q, "/default-user", user);
    gboolean updateable = qubes_domain_flag(vm, "updateable");
    qdb_write(q, "/qubes-vm-updateable", updateable ? "True" : "False");
    qdb_write(q, "/qubes-vm-persistence", updateable ? "full" : "rw-only");
    qdb_write(q, "/qubes-debug-mode",
              qubes_domain_flag(vm, "debug") ? "1" : "0");
    QubesDomain *tpl = qubes_domain_get_template(vm);
    qdb_write(q, "/qubes-base-template", tpl ? tpl->name : "");
    g_autofree char *seed = g_base64_encode(host->seed, 64);
    qdb_write(q, "/qubes-random-seed", seed);

    g_auto(GStrv) dns = NULL;
    g_autofree char *dns_s = qubes_domain_prop(vm, "dns");
    dns = g_strsplit(dns_s ? dns_s : "", " ", 3);
    static const char *const order[] = {"primary", "secondary"};
    if (qubes_domain_flag(vm, "provides_network")) {
        g_autofree char *gw = qubes_domain_prop(vm, "gateway");
        g_autofree char *gw6 = qubes_domain_prop(vm, "gateway6");
        qdb_write(q, "/qubes-netvm-network", gw);
        qdb_write(q, "/qubes-netvm-gateway", gw);
        if (gw6 && *gw6)
            qdb_write(q, "/qubes-netvm-gateway6", gw6);
        qdb_write(q, "/qubes-netvm-netmask",
                  qubes_domain_is_networked(vm) ? "255.255.255.255" : "None");
        for (guint i = 0; i < 2 && dns[i] && *dns[i]; i++) {
            g_autofree char *k =
                g_strdup_printf("/qubes-netvm-%s-dns", order[i]);
            qdb_write(q, k, dns[i]);
        }
    }
    if (qubes_domain_get_netvm(vm)) {
        static const struct {
            const char *key, *prop;
        } net[] = {{"/qubes-mac", "mac"},
                   {"/qubes-ip", "visible_ip"},
                   {"/qubes-netmask", "visible_netmask"},
                   {"/qubes-gateway", "visible_gateway"}};
        for (guint i = 0; i < G_N_ELEMENTS(net); i++) {
            g_autofree char *v = qubes_domain_prop(vm, net[i].prop);
            qdb_write(q, net[i].key, v ? v : "None");
        }
        for (guint i = 0; i < 2 && dns[i] && *dns[i]; i++) {
            g_autofree char *k = g_strdup_printf("/qubes-%s-dns", order[i]);
            qdb_write(q, k, dns[i]);
        }
        g_autofree char *ip6 = qubes_domain_prop(vm, "visible_ip6");
        g_autofree char *gw6 = qubes_domain_prop(vm, "visible_gateway6");
        if (ip6 && *ip6)
            qdb_write(q, "/qubes-ip6", ip6);
        if (gw6 && *gw6)
            qdb_write(q, "/qubes-gateway6", gw6);
    }
    const char *anon = qubes_domain_feature_check(vm, "anon-timezone", TRUE,
                                                  FALSE, FALSE, NULL);
    if (host->timezone && *host->timezone && !truthy(anon))
        qdb_write(q, "/qubes-timezone", host->timezone);
    else
        qdb_rm(q, "/qubes-timezone");
    qdb_write(q, "/qubes-block-devices", "");
    qdb_write(q, "/qubes-usb-devices", "");
}

/* audio.py set_qubesdb_audiovm */
static void audio(Qdb *q, QubesDomain *vm)
{
    if (!qubes_domain_is_running(vm))
        return;
    QubesDomain *a = vm_prop(vm, "audiovm");
    if (a) {
        if (a != vm && qubes_domain_is_running(a)) {
            g_autofree char *xid =
                g_strdup_printf("%" G_GINT64_FORMAT, a->qid == 0 ? 0 : a->xid);
            qdb_write(q, "/qubes-audio-domain-xid", xid);
        }
    } else {
        qdb_rm(q, "/qubes-audio-domain-xid");
    }
}

/* custom_persist.py: each custom-persist.KEY as /persist/KEY, its value
 * checked again (a qubes.xml may hold one our setter never saw) */
static gboolean custom_persist(Qdb *q, QubesDomain *vm, GError **error)
{
    for (guint i = 0; i + 1 < vm->features->len; i += 2) {
        const char *f = vm->features->pdata[i];
        if (!g_str_has_prefix(f, "custom-persist."))
            continue;
        if (!qubes_feature_check_custom_persist(f, vm->features->pdata[i + 1],
                                                error))
            return FALSE;
        g_autofree char *key =
            g_strconcat("/persist/", f + strlen("custom-persist."), NULL);
        qdb_write(q, key, vm->features->pdata[i + 1]);
    }
    return TRUE;
}

/* gui.py on_domain_qdb_create */
static void gui(Qdb *q, QubesDomain *vm)
{
    static const char *const ram[] = {"gui-videoram-overhead",
                                      "gui-videoram-min"};
    for (guint i = 0; i < G_N_ELEMENTS(ram); i++) {
        const char *v =
            qubes_domain_feature_check(vm, ram[i], TRUE, FALSE, TRUE, NULL);
        if (v) {
            g_autofree char *key = g_strconcat("/qubes-", ram[i], NULL);
            qdb_write(q, key, v);
        }
    }
    QubesDomain *guivm = vm_prop(vm, "guivm");
    const char *gui_f = qubes_domain_feature_get(vm, "gui");
    gboolean gui_on = guivm && (!gui_f || truthy(gui_f));
    qdb_write(q, "/qubes-gui-enabled", gui_on ? "True" : "False");
    if (guivm && guivm != vm) {
        g_autofree char *kbd = qubes_domain_prop(vm, "keyboard_layout");
        qdb_write(q, "/keyboard-layout", kbd);
        if (qubes_domain_is_running(guivm)) {
            g_autofree char *xid = g_strdup_printf(
                "%" G_GINT64_FORMAT, guivm->qid == 0 ? 0 : guivm->xid);
            qdb_write(q, "/qubes-gui-domain-xid", xid);
        }
    }
    if (truthy(qubes_domain_feature_get(vm, "service.guivm"))) {
        const char *prefix =
            qubes_domain_feature_get(vm, "guivm-windows-prefix");
        qdb_write(q, "/guivm-windows-prefix", prefix ? prefix : "GuiVM");
    }
}

/* r3compatibility.py, but the iptables rules (qdb-entries.h) */
static void r3compat(Qdb *q, QubesDomain *vm)
{
    gboolean provides = qubes_domain_flag(vm, "provides_network");
    gboolean has_net = qubes_domain_get_netvm(vm) != NULL;
    const char *type = strcmp(vm->klass->name, "TemplateVM") == 0 ? "TemplateVM"
                       : has_net && provides                      ? "ProxyVM"
                       : !has_net && provides                     ? "NetVM"
                                                                  : "AppVM";
    qdb_write(q, "/qubes-vm-type", type);
    qdb_write(q, "/qubes-iptables-error", "");
    static const struct {
        const char *feature, *service;
    } legacy[] = {{"service.ntpd", "ntpd"},
                  {"check-updates", "qubes-update-check"},
                  {"dvm", "qubes-dvm"}};
    for (guint i = 0; i + 1 < vm->features->len; i += 2)
        for (guint k = 0; k < G_N_ELEMENTS(legacy); k++)
            if (strcmp(vm->features->pdata[i], legacy[k].feature) == 0) {
                g_autofree char *key =
                    g_strconcat("/qubes-service/", legacy[k].service, NULL);
                qdb_write(q, key,
                          truthy(vm->features->pdata[i + 1]) ? "1" : "0");
            }
    const char *proxy = qubes_domain_feature_get(vm, "updates-proxy-setup");
    if (proxy)
        qdb_write(q, "/qubes-service/yum-proxy-setup",
                  truthy(proxy) ? "1" : "0");
}

/* services.py: each service.NAME as /qubes-service/NAME ("1" or "0"), an
 * app-dispvm.* one as /hash-app-dispvm/HASH; meminfo-writer from maxmem */
static void services(Qdb *q, QubesDomain *vm)
{
    for (guint i = 0; i + 1 < vm->features->len; i += 2) {
        const char *f = vm->features->pdata[i];
        if (!g_str_has_prefix(f, "service."))
            continue;
        const char *service = f + strlen("service.");
        const char *value = vm->features->pdata[i + 1];
        if (!*service) {
            g_warning("vm.%s: Empty service name, ignoring: ", vm->name);
            continue;
        }
        if (g_str_has_prefix(service, "app-dispvm.")) {
            const char *app = service + strlen("app-dispvm.");
            guint8 digest[32];
            gsize dlen = sizeof digest;
            g_autoptr(GChecksum) sum = g_checksum_new(G_CHECKSUM_SHA256);
            g_checksum_update(sum, (const guchar *)app, (gssize)strlen(app));
            g_checksum_get_digest(sum, digest, &dlen);
            g_autofree char *b64 = g_base64_encode(digest, dlen);
            /* urlsafe, '=' stripped */
            for (char *c = b64; *c; c++)
                *c = *c == '+' ? '-' : *c == '/' ? '_' : *c;
            char *eq = strchr(b64, '=');
            if (eq)
                *eq = '\0';
            g_autofree char *key = g_strconcat("/hash-app-dispvm/", b64, NULL);
            if (truthy(value))
                qdb_write(q, key, app);
            else
                qdb_rm(q, key);
        }
        if (strlen(service) > 48) {
            if (!g_str_has_prefix(service, "app-dispvm."))
                g_warning("vm.%s: Too long service name, ignoring: %s",
                          vm->name, service);
            continue;
        }
        g_autofree char *key = g_strconcat("/qubes-service/", service, NULL);
        qdb_write(q, key, truthy(value) ? "1" : "0");
    }
    g_autofree char *maxmem = qubes_domain_prop(vm, "maxmem");
    qdb_write(q, "/qubes-service/meminfo-writer",
              maxmem && g_ascii_strtoll(maxmem, NULL, 10) > 0 ? "1" : "0");
}

/* vm_config.py: each vm-config.NAME as /vm-config/NAME */
static void vm_config(Qdb *q, QubesDomain *vm)
{
    for (guint i = 0; i + 1 < vm->features->len; i += 2) {
        const char *f = vm->features->pdata[i];
        if (!g_str_has_prefix(f, "vm-config."))
            continue;
        g_autofree char *key =
            g_strconcat("/vm-config/", f + strlen("vm-config."), NULL);
        qdb_write(q, key, vm->features->pdata[i + 1]);
    }
}

GPtrArray *qubes_qdb_entries(QubesDomain *vm, const QubesQdbHost *host,
                             GError **error)
{
    Qdb q = {g_ptr_array_new_with_free_func(g_free)};
    base_entries(&q, vm, host);
    audio(&q, vm);
    if (!custom_persist(&q, vm, error)) {
        g_ptr_array_unref(q.kv);
        return NULL;
    }
    gui(&q, vm);
    r3compat(&q, vm);
    services(&q, vm);
    vm_config(&q, vm);
    return q.kv;
}
