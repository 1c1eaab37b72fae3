/* net.c: the network properties of a qube (qubes/vm/mix/net.py): its
 * netvm and MAC, the addresses it gets and those it serves, and the
 * checks that keep the network a forest (no qube reaches itself through
 * netvm links, followed defaults included). See net.h. */
#include "net.h"
#include "qube-features.h"
#include "lookup.h"

#include "qubes-error.h"

#include <string.h>

#define QUBES_IPV6_PREFIX "fd09:24ef:4179:0000"

static QubesDomain *owner_dom(QubesPropHolder *h)
{
    return h->owner;
}

/* Each qube's netvm, followed defaults included: qube -> netvm. */
static GHashTable *netvm_map(QubesApp *app)
{
    GHashTable *map = g_hash_table_new(NULL, NULL);
    for (guint i = 0; i < app->domains->len; i++) {
        QubesDomain *d = app->domains->pdata[i];
        QubesDomain *n = qubes_domain_get_netvm(d);
        if (n)
            g_hash_table_insert(map, d, n);
    }
    return map;
}

/* Whether following netvm links from @from (in @map) reaches @to.
 * Bounded by the number of qubes: a loop elsewhere cannot trap it. */
static gboolean reaches(GHashTable *map, QubesDomain *from, QubesDomain *to,
                        guint limit)
{
    QubesDomain *cur = from;
    for (guint hops = 0; cur && hops <= limit; hops++) {
        if (cur == to)
            return TRUE;
        cur = g_hash_table_lookup(map, cur);
    }
    return FALSE;
}

gboolean qubes_net_would_loop(QubesDomain *dom, QubesDomain *netvm)
{
    /* get_vms_connected_to(dom) holds netvm exactly when netvm's chain
     * reaches dom. */
    g_autoptr(GHashTable) map = netvm_map(dom->app);
    return reaches(map, netvm, dom, dom->app->domains->len);
}

GPtrArray *qubes_domain_connected_vms(QubesDomain *netvm)
{
    GPtrArray *out = g_ptr_array_new();
    QubesApp *app = netvm->app;
    for (guint i = 0; i < app->domains->len; i++) {
        QubesDomain *d = app->domains->pdata[i];
        if (qubes_domain_get_netvm(d) == netvm)
            g_ptr_array_add(out, d);
    }
    return out;
}

gboolean qubes_net_check_loops(QubesApp *app, GError **error)
{
    g_autoptr(GHashTable) map = netvm_map(app);
    for (guint i = 0; i < app->domains->len; i++) {
        QubesDomain *d = app->domains->pdata[i];
        QubesDomain *n = g_hash_table_lookup(map, d);
        if (n && reaches(map, n, d, app->domains->len)) {
            g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                        "Loops in network are unsupported (qube %s reaches "
                        "itself through netvm)",
                        d->name);
            return FALSE;
        }
    }
    return TRUE;
}

/* ---- addresses ---- */

/* vmid_to_ipv4: low ids keep the historic address, others skip .0 and
 * .255 in the last byte. */
static char *vmid_to_ipv4(const char *prefix, guint vmid)
{
    if (vmid < 255)
        return g_strdup_printf("%s.%u.%u", prefix, (vmid >> 8) & 0xff,
                               vmid & 0xff);
    vmid -= 1;
    return g_strdup_printf("%s.%u.%u", prefix, vmid / 254, vmid % 254 + 1);
}

static gboolean is_dispvm(QubesDomain *d)
{
    return strcmp(d->klass->name, "DispVM") == 0;
}

static guint dispid_of(QubesDomain *d)
{
    g_autofree char *v = qubes_props_value(&d->props, "dispid");
    return v ? (guint)g_ascii_strtoull(v, NULL, 10) : 0;
}

/* The address a netvm gives @vm (get_ip_for_vm). */
static char *ip_for(QubesDomain *vm)
{
    if (is_dispvm(vm))
        return vmid_to_ipv4("10.138", dispid_of(vm));
    return vmid_to_ipv4("10.137", vm->qid);
}

static char *ip6_for(QubesDomain *vm)
{
    g_autofree char *s =
        is_dispvm(vm)
            ? g_strdup_printf(QUBES_IPV6_PREFIX "::a8a:%x", dispid_of(vm))
            : g_strdup_printf(QUBES_IPV6_PREFIX "::a89:%x", vm->qid);
    g_autoptr(GInetAddress) a = g_inet_address_new_from_string(s);
    return g_inet_address_to_string(a);
}

gboolean qubes_domain_is_networked(QubesDomain *dom)
{
    return qubes_domain_flag(dom, "provides_network") ||
           qubes_domain_get_netvm(dom);
}

static char *default_ip(QubesPropHolder *h, const QubesPropDef *def)
{
    QubesDomain *dom = owner_dom(h);
    return qubes_domain_is_networked(dom) ? ip_for(dom) : NULL;
}

/* The "ipv6" feature, along the netvm chain (check_with_netvm). */
static gboolean ipv6_enabled(QubesDomain *dom)
{
    const char *v =
        qubes_domain_feature_check(dom, "ipv6", FALSE, TRUE, FALSE, NULL);
    return v && *v;
}

static char *default_ip6(QubesPropHolder *h, const QubesPropDef *def)
{
    QubesDomain *dom = owner_dom(h);
    if (!qubes_domain_is_networked(dom) || !ipv6_enabled(dom))
        return NULL;
    return ip6_for(dom);
}

static char *default_netvm(QubesPropHolder *h, const QubesPropDef *def)
{
    /* TemplateVM has no default netvm; the others follow the app's. */
    if (strcmp(owner_dom(h)->klass->name, "TemplateVM") == 0)
        return g_strdup("");
    return qubes_props_value(&owner_dom(h)->app->props, "default_netvm");
}

static char *feature_with_template(QubesDomain *dom, const char *name)
{
    const char *v =
        qubes_domain_feature_check(dom, name, TRUE, FALSE, FALSE, NULL);
    return v && *v ? g_strdup(v) : NULL;
}

static char *visible_ip(QubesPropHolder *h, const QubesPropDef *def)
{
    QubesDomain *dom = owner_dom(h);
    char *fake = feature_with_template(dom, "net.fake-ip");
    return fake ? fake : qubes_props_value(h, "ip");
}

static char *visible_ip6(QubesPropHolder *h, const QubesPropDef *def)
{
    return qubes_props_value(h, "ip6");
}

static char *visible_gateway(QubesPropHolder *h, const QubesPropDef *def)
{
    QubesDomain *dom = owner_dom(h);
    char *fake = feature_with_template(dom, "net.fake-gateway");
    if (fake)
        return fake;
    QubesDomain *net = qubes_domain_get_netvm(dom);
    return net ? qubes_props_value(&net->props, "gateway") : NULL;
}

static char *visible_gateway6(QubesPropHolder *h, const QubesPropDef *def)
{
    QubesDomain *dom = owner_dom(h);
    QubesDomain *net = qubes_domain_get_netvm(dom);
    if (!ipv6_enabled(dom) || !net)
        return NULL;
    return qubes_props_value(&net->props, "gateway6");
}

static char *netmask_of(QubesDomain *dom)
{
    return qubes_domain_is_networked(dom) ? g_strdup("255.255.255.255") : NULL;
}

static char *visible_netmask(QubesPropHolder *h, const QubesPropDef *def)
{
    QubesDomain *dom = owner_dom(h);
    char *fake = feature_with_template(dom, "net.fake-netmask");
    if (fake)
        return fake;
    QubesDomain *net = qubes_domain_get_netvm(dom);
    return net ? netmask_of(net) : NULL;
}

static char *gateway(QubesPropHolder *h, const QubesPropDef *def)
{
    return qubes_domain_flag(owner_dom(h), "provides_network")
               ? qubes_props_value(h, "visible_ip")
               : NULL;
}

static char *gateway6(QubesPropHolder *h, const QubesPropDef *def)
{
    QubesDomain *dom = owner_dom(h);
    if (!ipv6_enabled(dom) || !qubes_domain_flag(dom, "provides_network"))
        return NULL;
    return qubes_props_value(h, "visible_ip6");
}

static char *dns(QubesPropHolder *h, const QubesPropDef *def)
{
    QubesDomain *dom = owner_dom(h);
    if (qubes_domain_get_netvm(dom) ||
        qubes_domain_flag(dom, "provides_network"))
        return g_strdup("10.139.1.1 10.139.1.2");
    return NULL;
}

/* ---- setters ---- */

static char *setter_mac(QubesPropHolder *h, const QubesPropDef *def,
                        const char *value, GError **error)
{
    gboolean ok = strlen(value) == 17;
    for (int i = 0; ok && i < 17; i++)
        ok = (i % 3 == 2) ? value[i] == ':' : g_ascii_isxdigit(value[i]);
    if (!ok) {
        /* The reference raises a bare ValueError with these words. */
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                            "Invalid MAC address value");
        return NULL;
    }
    return g_ascii_strdown(value, -1);
}

/* _setter_netvm: a qube that provides network, and no loop. */
gboolean qubes_net_check_netvm(QubesDomain *self, QubesDomain *net,
                               GError **error)
{
    if (!net)
        return TRUE;
    if (!qubes_domain_flag(net, "provides_network")) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                    "The %s qube does not provide network", net->name);
        return FALSE;
    }
    /* While loading (and when the app re-checks everything at once) the
     * loops are looked for globally. */
    if (!self->app->loading && !self->app->checking &&
        (net == self || qubes_net_would_loop(self, net))) {
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                            "Loops in network are unsupported");
        return FALSE;
    }
    return TRUE;
}

static char *setter_netvm(QubesPropHolder *h, const QubesPropDef *def,
                          const char *value, GError **error)
{
    QubesDomain *self = owner_dom(h);
    if (!*value)
        return g_strdup("");
    QubesDomain *net = qubes_prop_vm(self->app, h, def, value, error);
    if (!net || !qubes_net_check_netvm(self, net, error))
        return NULL;
    return g_strdup(value);
}

static char *setter_provides_network(QubesPropHolder *h,
                                     const QubesPropDef *def, const char *value,
                                     GError **error)
{
    QubesDomain *self = owner_dom(h);
    if (strcmp(value, "False") == 0 && !self->app->loading) {
        g_autoptr(GPtrArray) users = qubes_domain_connected_vms(self);
        if (users->len) {
            g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                                "The qube is still used by other qubes, "
                                "change theirs 'netvm' first");
            return NULL;
        }
    }
    return g_strdup(value);
}

/* property-pre-reset:netvm: the default it goes back to must not make a
 * loop either. */
static gboolean on_pre_reset_netvm(QubesEvent *ev, gpointer data,
                                   GError **error)
{
    QubesDomain *dom = qubes_domain_of_emitter(ev->subject);
    g_autofree char *def = default_netvm(&dom->props, NULL);
    QubesDomain *net =
        def && *def ? g_hash_table_lookup(dom->app->by_name, def) : NULL;
    return qubes_net_check_netvm(dom, net, error);
}

/* core_features' servicevm: a qube that provides network has the
 * feature servicevm (its icon follows), one that stops providing it loses
 * it. */
static gboolean on_provides_network(QubesEvent *ev, gpointer data,
                                    GError **error)
{
    QubesDomain *d = qubes_domain_of_emitter(ev->subject);
    gboolean changed = TRUE;
    if (qubes_domain_flag(d, "provides_network")) {
        if (!qubes_domain_feature_set(d, "servicevm", "1", error))
            return FALSE;
    } else if (qubes_domain_feature_get(d, "servicevm")) {
        if (!qubes_domain_feature_remove(d, "servicevm", error))
            return FALSE;
    } else {
        changed = FALSE;
    }
    if (changed)
        qubes_props_notify_reset(&d->props, "icon", NULL);
    return TRUE;
}

/* net.py: what follows a network qube's address, told to the qubes that
 * read it (their stateless properties change). */
static gboolean unchanged(QubesEvent *ev)
{
    return g_strcmp0(qubes_event_get(ev, "newvalue"),
                     qubes_event_get(ev, "oldvalue")) == 0;
}

static gboolean on_provides_set(QubesEvent *ev, gpointer data, GError **error)
{
    QubesDomain *d = qubes_domain_of_emitter(ev->subject);
    if (unchanged(ev))
        return TRUE;
    qubes_props_notify_reset(&d->props, "gateway", NULL);
    qubes_props_notify_reset(&d->props, "gateway6", NULL);
    return TRUE;
}

static gboolean on_ip_set(QubesEvent *ev, gpointer data, GError **error)
{
    QubesDomain *d = qubes_domain_of_emitter(ev->subject);
    gboolean six = g_str_has_suffix(ev->name, "6");
    if (unchanged(ev))
        return TRUE;
    if (qubes_domain_flag(d, "provides_network"))
        qubes_props_notify_reset(&d->props, six ? "gateway6" : "gateway", NULL);
    qubes_props_notify_reset(&d->props, six ? "visible_ip6" : "visible_ip",
                             NULL);
    g_autoptr(GPtrArray) users = qubes_domain_connected_vms(d);
    for (guint i = 0; i < users->len; i++)
        qubes_props_notify_reset(&((QubesDomain *)users->pdata[i])->props,
                                 six ? "visible_gateway6" : "visible_gateway",
                                 NULL);
    return TRUE;
}

void qubes_net_register_handlers(QubesApp *app)
{
    /* core_features, an extension: on the base class */
    static const char *const provides[] = {"property-set:provides_network",
                                           "property-reset:provides_network"};
    for (guint i = 0; i < G_N_ELEMENTS(provides); i++)
        qubes_event_add_class_handler(app->registry, "BaseVM", provides[i],
                                      on_provides_network, 0, app, NULL);
    /* the network mixin's own (master listens for ip6's reset under the
     * name "property-reset:ipv6", which nothing fires) */
    qubes_event_add_class_handler(
        app->registry, "QubesVM", "property-set:provides_network",
        on_provides_set, QUBES_HANDLER_BOUND, app, NULL);
    static const char *const ips[] = {"property-set:ip", "property-reset:ip",
                                      "property-set:ip6"};
    for (guint i = 0; i < G_N_ELEMENTS(ips); i++)
        qubes_event_add_class_handler(app->registry, "QubesVM", ips[i],
                                      on_ip_set, QUBES_HANDLER_BOUND, app,
                                      NULL);
    qubes_event_add_class_handler(app->registry, "QubesVM",
                                  "property-pre-reset:netvm",
                                  on_pre_reset_netvm, 0, app, NULL);
}

#define STATELESS(n, f, d)                                                     \
    {                                                                          \
        .name = n, .type = QUBES_PROP_STR,                                     \
        .flags = QUBES_PROP_READ_ONLY | QUBES_PROP_DONT_SAVE,                  \
        .default_func = f, .doc = d                                            \
    }

const QubesPropDef qubes_net_props[] = {
    {.name = "mac",
     .type = QUBES_PROP_STR,
     .default_value = "00:16:3e:5e:6c:00",
     .setter = setter_mac,
     .doc = "MAC address of the NIC emulated inside VM"},
    {.name = "ip",
     .type = QUBES_PROP_IP4,
     .default_func = default_ip,
     .doc = "IP address of this domain."},
    {.name = "ip6",
     .type = QUBES_PROP_IP6,
     .default_func = default_ip6,
     .doc = "IPv6 address of this domain."},
    {.name = "netvm",
     .type = QUBES_PROP_VM,
     .load_stage = 4,
     .default_func = default_netvm,
     .setter = setter_netvm,
     .doc = "VM that provides network connection to this domain. When None, "
            "machine is disconnected. When absent, domain uses default "
            "NetVM."},
    {.name = "provides_network",
     .type = QUBES_PROP_BOOL,
     .default_value = "False",
     .setter = setter_provides_network,
     .doc = "If this domain can act as network provider (formerly known as "
            "NetVM or ProxyVM)"},
    STATELESS("visible_ip", visible_ip,
              "IP address of this domain as seen by the domain."),
    STATELESS("visible_ip6", visible_ip6,
              "IPv6 address of this domain as seen by the domain."),
    STATELESS("visible_gateway", visible_gateway,
              "Default gateway of this domain as seen by the domain."),
    STATELESS("visible_gateway6", visible_gateway6,
              "Default (IPv6) gateway of this domain as seen by the domain."),
    STATELESS("visible_netmask", visible_netmask,
              "Netmask as seen by the domain."),
    STATELESS("gateway", gateway,
              "Gateway for other domains that use this domain as netvm."),
    STATELESS("gateway6", gateway6,
              "Gateway (IPv6) for other domains that use this domain as "
              "netvm."),
    STATELESS("dns", dns, "DNS servers set up for this domain."),
    {NULL},
};

/* A TemplateVM's netvm: none by default, and its own help text. */
const QubesPropDef qubes_template_net_props[] = {
    {.name = "netvm",
     .type = QUBES_PROP_VM,
     .load_stage = 4,
     .default_func = default_netvm,
     .setter = setter_netvm,
     .doc = "VM that provides network connection to this domain. When None, "
            "machine is disconnected."},
    {NULL},
};
