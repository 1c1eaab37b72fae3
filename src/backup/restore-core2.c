/* restore-core2.c: a format 3 backup's qubes.xml, as core2.py reads it
 * (see restore-core2.h). */
#include "restore-core2.h"

#include "qubes-error.h"
#include "qubesxml.h"

#include <gio/gio.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <string.h>

#define WHERE "qubes.xml (backup)"

static const char *const classes[] = {
    "AdminVm", "TemplateVm", "TemplateHVm", "AppVm", "HVm", "NetVm", "ProxyVm"};

/* R3's defaults of the plain properties (kept when they differ) */
static const struct {
    const char *name, *dflt;
} simple_props[] = {
    {"include_in_backups", "True"},
    {"qrexec_timeout", "60"},
    {"vcpus", "2"},
    {"memory", "400"},
    {"maxmem", "4000"},
    {"default_user", "user"},
    {"debug", "False"},
    {"mac", NULL},
    {"autostart", "False"},
};

static const struct {
    const char *service, *feature;
} service_features[] = {
    {"ntpd", "service.ntpd"},
    {"qubes-update-check", "check-updates"},
    {"meminfo-writer", "service.meminfo-writer"},
};

typedef struct {
    GHashTable *qids; /* qid (decimal text) -> name */
    GPtrArray *vms;   /* QubesRestoreVM, the client's order */
    char *default_netvm;
    GError **error;
} Core2;

static gboolean bad(Core2 *c, const char *vm, const char *why)
{
    if (vm)
        g_set_error(c->error, QUBES_ERROR, QUBES_ERROR_EXCEPTION, "%s: %s: %s",
                    WHERE, vm, why);
    else
        g_set_error(c->error, QUBES_ERROR, QUBES_ERROR_EXCEPTION, "%s: %s",
                    WHERE, why);
    return FALSE;
}

/* An attribute's value (new), or NULL. */
static char *attr(xmlNodePtr n, const char *name)
{
    xmlChar *v = xmlGetNoNsProp(n, (const xmlChar *)name);
    char *s = v ? g_strdup((const char *)v) : NULL;
    xmlFree(v);
    return s;
}

static QubesRestoreVM *find(Core2 *c, const char *name)
{
    for (guint i = 0; i < c->vms->len; i++) {
        QubesRestoreVM *vm = c->vms->pdata[i];
        if (strcmp(vm->name, name) == 0)
            return vm;
    }
    return NULL;
}

/* A qid's canonical text ("3" for "03"), new; NULL when not a number. */
static char *qid_key(const char *untrusted)
{
    if (!untrusted)
        return NULL;
    g_autofree char *t = g_strstrip(g_strdup(untrusted));
    guint64 q = 0;
    return g_ascii_string_to_unsigned(t, 10, 0, 1 << 16, &q, NULL)
               ? g_strdup_printf("%" G_GUINT64_FORMAT, q)
               : NULL;
}

/* The name of qid @untrusted ("3"), or NULL with the error set. */
static const char *by_qid(Core2 *c, const char *vm, const char *untrusted)
{
    g_autofree char *key = qid_key(untrusted);
    const char *name = key ? g_hash_table_lookup(c->qids, key) : NULL;
    if (!name) {
        g_autofree char *why = g_strdup_printf(
            "no qube has the qid %s", untrusted ? untrusted : "(none)");
        bad(c, vm, why);
    }
    return name;
}

/* ---- Python literals (ast.literal_eval's few forms found here) ---- */

typedef struct {
    const char *p;
} Lit;

static void skip_space(Lit *l)
{
    while (*l->p == ' ' || *l->p == '\t' || *l->p == '\n')
        l->p++;
}

/* A quoted string (' or ", the escapes \\ \' \" \n \t), new; NULL when it
 * is not one. */
static char *lit_string(Lit *l)
{
    char q = *l->p;
    if (q != '\'' && q != '"')
        return NULL;
    GString *s = g_string_new(NULL);
    for (const char *p = l->p + 1; *p; p++) {
        if (*p == q) {
            l->p = p + 1;
            return g_string_free(s, FALSE);
        }
        if (*p == '\\') {
            p++;
            char e = *p == 'n' ? '\n' : *p == 't' ? '\t' : *p;
            if (!strchr("\\'\"nt", *p) || !*p)
                break;
            g_string_append_c(s, e);
            continue;
        }
        g_string_append_c(s, *p);
    }
    g_string_free(s, TRUE);
    return NULL;
}

/* A value: a string, True, False, None or a decimal integer; *@text gets
 * the feature's text for it as the client sets it (True "1", False "",
 * None "None", else itself). */
static gboolean lit_value(Lit *l, char **text)
{
    if ((*text = lit_string(l)))
        return TRUE;
    const char *const words[] = {"True", "False", "None"};
    const char *const texts[] = {"1", "", "None"};
    for (guint i = 0; i < G_N_ELEMENTS(words); i++)
        if (g_str_has_prefix(l->p, words[i]) &&
            !g_ascii_isalnum(l->p[strlen(words[i])])) {
            l->p += strlen(words[i]);
            *text = g_strdup(texts[i]);
            return TRUE;
        }
    const char *start = l->p;
    if (*l->p == '-')
        l->p++;
    while (g_ascii_isdigit(*l->p))
        l->p++;
    if (l->p == start || (l->p == start + 1 && *start == '-'))
        return FALSE;
    *text = g_strndup(start, (gsize)(l->p - start));
    return TRUE;
}

/* An item of a dict or list literal, read into @out. */
typedef gboolean (*LitItem)(Lit *l, GPtrArray *out);

/* "KEY: VALUE": @out gets the key and the value's text. */
static gboolean dict_item(Lit *l, GPtrArray *out)
{
    g_autofree char *key = lit_string(l);
    skip_space(l);
    if (!key || *l->p++ != ':')
        return FALSE;
    skip_space(l);
    g_autofree char *value = NULL;
    if (!lit_value(l, &value))
        return FALSE;
    qx_attrs_set(out, key, value);
    return TRUE;
}

/* A string: @out gets it. */
static gboolean list_item(Lit *l, GPtrArray *out)
{
    char *str = lit_string(l);
    if (str)
        g_ptr_array_add(out, str);
    return str != NULL;
}

/* @open ITEM, ITEM, ... @close (a trailing comma allowed, as Python's),
 * and nothing after; FALSE when it is not. */
static gboolean lit_items(const char *untrusted, char open, char close,
                          LitItem item, GPtrArray *out)
{
    Lit l = {untrusted};
    skip_space(&l);
    if (*l.p++ != open)
        return FALSE;
    for (;;) {
        skip_space(&l);
        if (*l.p == close)
            break;
        if (!item(&l, out))
            return FALSE;
        skip_space(&l);
        if (*l.p == ',')
            l.p++;
        else if (*l.p != close)
            return FALSE;
    }
    l.p++;
    skip_space(&l);
    return *l.p == '\0';
}

/* ---- the qubes ---- */

/* core2.py's import_core2_vm: a qube from its element @n of class @cls. */
static gboolean import_vm(Core2 *c, xmlNodePtr n, const char *cls)
{
    g_autofree char *name = attr(n, "name");
    if (!name || !*name)
        return bad(c, NULL, "a qube without a name");
    g_autofree char *label = attr(n, "label");
    g_autofree char *qid_text = attr(n, "qid");
    g_autofree char *qid = qid_key(qid_text);
    const char *klass;
    const char *template = NULL;
    if (strcmp(cls, "TemplateVm") == 0 || strcmp(cls, "TemplateHVm") == 0) {
        klass = "TemplateVM";
    } else if (g_strcmp0(qid, "0") == 0) {
        klass = "AdminVM";
    } else {
        g_autofree char *tq = attr(n, "template_qid");
        if (!tq)
            return bad(c, name, "no template_qid");
        if (g_ascii_strcasecmp(tq, "none") == 0) {
            klass = "StandaloneVM";
        } else {
            klass = "AppVM";
            if (!(template = by_qid(c, name, tq)))
                return FALSE;
        }
    }
    QubesRestoreVM *vm = qubes_restore_vm_new(klass);
    vm->name = g_strdup(name);
    vm->label = g_strdup(label ? label : "red");
    vm->template = g_strdup(template);
    g_autofree char *content = attr(n, "backup_content");
    vm->included = g_strcmp0(content, "True") == 0;
    vm->backup_path = attr(n, "backup_path");
    g_autofree char *size = attr(n, "backup_size");
    if (size && !g_ascii_string_to_unsigned(size, 10, 0, G_MAXUINT64, &vm->size,
                                            NULL)) {
        qubes_restore_vm_free(vm);
        return bad(c, name, "a backup_size that is not a number");
    }
    /* the same name again takes the first one's place */
    QubesRestoreVM *old = find(c, name);
    if (old) {
        guint at = 0;
        g_ptr_array_find(c->vms, old, &at);
        qubes_restore_vm_free(old);
        c->vms->pdata[at] = vm;
    } else {
        g_ptr_array_add(c->vms, vm);
    }
    if (strcmp(klass, "AdminVM") == 0)
        return TRUE; /* nothing else of dom0's */
    for (guint i = 0; i < G_N_ELEMENTS(simple_props); i++) {
        g_autofree char *v = attr(n, simple_props[i].name);
        if (v && *v && g_strcmp0(v, simple_props[i].dflt) != 0)
            qx_attrs_set(vm->properties, simple_props[i].name, v);
    }
    const char *kprops[] = {"kernel", "kernelopts"};
    for (guint i = 0; i < G_N_ELEMENTS(kprops); i++) {
        g_autofree char *v = attr(n, kprops[i]);
        g_autofree char *uses = g_strconcat("uses_default_", kprops[i], NULL);
        g_autofree char *dflt = attr(n, uses);
        if (dflt && g_ascii_strcasecmp(dflt, "true") != 0)
            qx_attrs_set(vm->properties, kprops[i],
                         v && *v && g_ascii_strcasecmp(v, "none") != 0 ? v
                                                                       : NULL);
    }
    if (strstr(cls, "HVm")) {
        qx_attrs_set(vm->properties, "virt_mode", "hvm");
        qx_attrs_set(vm->properties, "kernel", NULL);
        /* R3's MiniOS stubdomain, kept (a change of hardware some
         * guests do not survive) */
        qx_attrs_set(vm->features, "linux-stubdom", "");
    }
    if (strcmp(cls, "NetVm") == 0 || strcmp(cls, "ProxyVm") == 0)
        qx_attrs_set(vm->properties, "provides_network", "True");
    if (strcmp(cls, "NetVm") == 0)
        qx_attrs_set(vm->properties, "netvm", NULL);
    if (strcmp(cls, "TemplateVm") == 0 ||
        (strcmp(cls, "AppVm") == 0 && !vm->template)) {
        qx_attrs_set(vm->features, "qrexec", "1");
        qx_attrs_set(vm->features, "gui", "1");
    }
    g_autofree char *internal = attr(n, "internal");
    if (g_strcmp0(internal, "True") == 0)
        qx_attrs_set(vm->features, "internal", "1");
    g_autofree char *services = attr(n, "services");
    if (services && *services) {
        g_autoptr(GPtrArray) pairs = g_ptr_array_new_with_free_func(g_free);
        if (!lit_items(services, '{', '}', dict_item, pairs))
            return bad(c, name, "services is not a Python dict literal");
        for (guint i = 0; i + 1 < pairs->len; i += 2) {
            const char *feature = pairs->pdata[i];
            for (guint k = 0; k < G_N_ELEMENTS(service_features); k++)
                if (strcmp(feature, service_features[k].service) == 0)
                    feature = service_features[k].feature;
            qx_attrs_set(vm->features, feature, pairs->pdata[i + 1]);
        }
    }
    g_autofree char *pcidevs = attr(n, "pcidevs");
    if (pcidevs && *pcidevs) {
        g_autoptr(GPtrArray) devs = g_ptr_array_new_with_free_func(g_free);
        if (!lit_items(pcidevs, '[', ']', list_item, devs))
            return bad(c, name, "pcidevs is not a Python list literal");
        for (guint i = 0; i < devs->len; i++) {
            QubesRestoreDevice *d = g_new0(QubesRestoreDevice, 1);
            d->devclass = g_strdup("pci");
            d->backend = g_strdup("dom0");
            d->port = g_strdelimit(g_strdup(devs->pdata[i]), ":", '_');
            d->mode = g_strdup("required");
            d->options = g_ptr_array_new_with_free_func(g_free);
            g_ptr_array_add(vm->devices, d);
        }
    }
    return TRUE;
}

/* core2.py's set_netvm_dependency for the element @n. */
static gboolean netvm_dependency(Core2 *c, xmlNodePtr n)
{
    g_autofree char *name = attr(n, "name");
    QubesRestoreVM *vm = name ? find(c, name) : NULL;
    if (!vm)
        return TRUE;
    g_autofree char *uses = attr(n, "uses_default_netvm");
    if (uses && strcmp(uses, "True") != 0) {
        g_autofree char *q = attr(n, "netvm_qid");
        const char *netvm = NULL;
        if (q && strcmp(q, "none") != 0 && !(netvm = by_qid(c, name, q)))
            return FALSE;
        qx_attrs_set(vm->properties, "netvm", netvm);
    }
    g_autofree char *dispvm_netvm = NULL;
    g_autofree char *uses_d = attr(n, "uses_default_dispvm_netvm");
    if (uses_d && strcmp(uses_d, "True") != 0) {
        g_autofree char *q = attr(n, "dispvm_netvm_qid");
        if (q && strcmp(q, "none") != 0) {
            const char *nv = by_qid(c, name, q);
            if (!nv)
                return FALSE;
            dispvm_netvm = g_strdup(nv);
        }
    } else {
        gboolean has = FALSE;
        const char *nv = qubes_restore_vm_prop(vm, "netvm", &has);
        dispvm_netvm = g_strdup(has ? nv : c->default_netvm);
    }
    if (g_strcmp0(dispvm_netvm, c->default_netvm) == 0)
        return TRUE;
    g_autofree char *tpl = dispvm_netvm
                               ? g_strdup_printf("disp-%s", dispvm_netvm)
                               : g_strdup("disp-no-netvm");
    qx_attrs_set(vm->properties, "default_dispvm", tpl);
    if (find(c, tpl))
        return TRUE;
    QubesRestoreVM *d = qubes_restore_vm_new("AppVM");
    d->name = g_strdup(tpl);
    d->label = g_strdup("red");
    qx_attrs_set(d->properties, "netvm", dispvm_netvm);
    qx_attrs_set(d->properties, "template_for_dispvms", "True");
    d->included = TRUE;
    g_ptr_array_add(c->vms, d);
    return TRUE;
}

/* The elements of class @cls under the root, in the file's order. */
static GPtrArray *of_class(xmlNodePtr root, const char *cls)
{
    g_autofree char *tag = g_strconcat("Qubes", cls, NULL);
    GPtrArray *out = g_ptr_array_new();
    for (xmlNodePtr n = root->children; n; n = n->next)
        if (n->type == XML_ELEMENT_NODE &&
            strcmp((const char *)n->name, tag) == 0)
            g_ptr_array_add(out, n);
    return out;
}

static gboolean load(Core2 *c, xmlNodePtr root)
{
    /* the qids first */
    for (guint k = 0; k < G_N_ELEMENTS(classes); k++) {
        g_autoptr(GPtrArray) els = of_class(root, classes[k]);
        for (guint i = 0; i < els->len; i++) {
            g_autofree char *qid = attr(els->pdata[i], "qid");
            g_autofree char *name = attr(els->pdata[i], "name");
            if (!qid || !*qid || !name || !*name)
                continue;
            char *key = qid_key(qid);
            if (!key)
                return bad(c, name, "a qid that is not a number");
            g_hash_table_replace(c->qids, key, g_strdup(name));
        }
    }
    /* R2 had no dom0 in qubes.xml */
    if (!g_hash_table_contains(c->qids, "0")) {
        QubesRestoreVM *dom0 = qubes_restore_vm_new("AdminVM");
        dom0->name = g_strdup("dom0");
        dom0->label = g_strdup("black");
        g_ptr_array_add(c->vms, dom0);
        g_hash_table_replace(c->qids, g_strdup("0"), g_strdup("dom0"));
    }
    for (guint k = 0; k < G_N_ELEMENTS(classes); k++) {
        g_autoptr(GPtrArray) els = of_class(root, classes[k]);
        for (guint i = 0; i < els->len; i++)
            if (!import_vm(c, els->pdata[i], classes[k]))
                return FALSE;
    }
    g_autofree char *dn = attr(root, "default_netvm");
    if (dn && strcmp(dn, "None") != 0) {
        const char *name = by_qid(c, NULL, dn);
        if (!name)
            return FALSE;
        c->default_netvm = g_strdup(name);
    }
    for (guint k = 0; k < G_N_ELEMENTS(classes); k++) {
        g_autoptr(GPtrArray) els = of_class(root, classes[k]);
        for (guint i = 0; i < els->len; i++)
            if (!netvm_dependency(c, els->pdata[i]))
                return FALSE;
    }
    return TRUE;
}

GPtrArray *qubes_restore_core2_vms(const char *untrusted, gsize len,
                                   GError **error)
{
    if (len > G_MAXINT) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                    "%s: file too large", WHERE);
        return NULL;
    }
    /* no network, no entity expansion, no DTD loading */
    xmlDocPtr doc = xmlReadMemory(untrusted, (int)len, WHERE, NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR |
                                      XML_PARSE_NOWARNING);
    Core2 c = {
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free),
        g_ptr_array_new_with_free_func((GDestroyNotify)qubes_restore_vm_free),
        NULL, error};
    gboolean ok;
    if (!doc)
        ok = bad(&c, NULL, "not XML");
    else if (doc->intSubset || doc->extSubset)
        ok = bad(&c, NULL, "a DOCTYPE is not allowed");
    else if (!xmlDocGetRootElement(doc) ||
             strcmp((const char *)xmlDocGetRootElement(doc)->name,
                    "QubesVmCollection") != 0)
        ok = bad(&c, NULL, "not a QubesVmCollection");
    else
        ok = load(&c, xmlDocGetRootElement(doc));
    if (doc)
        xmlFreeDoc(doc);
    g_hash_table_unref(c.qids);
    g_free(c.default_netvm);
    if (!ok) {
        g_ptr_array_unref(c.vms);
        return NULL;
    }
    return c.vms;
}

/* ---- a qube's firewall.xml ---- */

/* One R3 rule (rule_from_xml_v1) as an API line, its fields in the order
 * master's admin.vm.firewall.Get gives them. */
static gboolean fw_rule(xmlNodePtr n, const char *action, GString *out,
                        Core2 *c, const char *vm)
{
    g_autofree char *address = attr(n, "address");
    g_autofree char *netmask = attr(n, "netmask");
    g_autofree char *proto = attr(n, "proto");
    g_autofree char *port = attr(n, "port");
    g_autofree char *toport = attr(n, "toport");
    g_autofree char *expire = attr(n, "expire");
    guint64 mask = 32, p1 = 0, p2 = 0, exp = 0;
    if ((netmask &&
         !g_ascii_string_to_unsigned(netmask, 10, 0, 128, &mask, NULL)) ||
        (port && *port &&
         !g_ascii_string_to_unsigned(port, 10, 0, 65535, &p1, NULL)) ||
        (toport && *toport &&
         !g_ascii_string_to_unsigned(toport, 10, 0, 65535, &p2, NULL)) ||
        (expire && *expire &&
         !g_ascii_string_to_unsigned(expire, 10, 0, G_MAXINT64, &exp, NULL)))
        return bad(c, vm, "firewall.xml: a rule with a bad number");
    gboolean ports = port && *port;
    if (ports && (!proto || !*proto)) {
        g_free(proto);
        proto = g_strdup("tcp");
    }
    if (proto && strcmp(proto, "any") == 0)
        g_clear_pointer(&proto, g_free);
    if (proto && strcmp(proto, "tcp") != 0 && strcmp(proto, "udp") != 0 &&
        strcmp(proto, "icmp") != 0)
        return bad(c, vm, "firewall.xml: a rule with an unknown proto");
    g_string_append_printf(out, "action=%s", action);
    if (address && *address) {
        for (const char *q = address; *q; q++)
            if (!g_ascii_isalnum(*q) && !strchr(".-:_", *q))
                return bad(c, vm, "firewall.xml: a rule with a bad address");
        g_autoptr(GInetAddress) ip = g_inet_address_new_from_string(address);
        gboolean v4 =
            ip && g_inet_address_get_family(ip) == G_SOCKET_FAMILY_IPV4;
        if (v4 && mask > 32)
            return bad(c, vm, "firewall.xml: a rule with a bad netmask");
        if (v4)
            g_string_append_printf(out, " dst4=%s/%" G_GUINT64_FORMAT, address,
                                   mask);
        else if (ip)
            g_string_append_printf(out, " dst6=%s/%" G_GUINT64_FORMAT, address,
                                   mask);
        else
            g_string_append_printf(out, " dsthost=%s", address);
    }
    if (proto && *proto)
        g_string_append_printf(out, " proto=%s", proto);
    if (ports)
        g_string_append_printf(
            out, " dstports=%" G_GUINT64_FORMAT "-%" G_GUINT64_FORMAT, p1,
            toport && *toport ? p2 : p1);
    if (expire && *expire)
        g_string_append_printf(out, " expire=%" G_GUINT64_FORMAT, exp);
    g_string_append_c(out, '\n');
    return TRUE;
}

char *qubes_restore_core2_firewall(const char *untrusted, gsize len,
                                   const char *vm, GError **error)
{
    Core2 c = {.error = error};
    if (len > G_MAXINT) {
        bad(&c, vm, "firewall.xml: too large");
        return NULL;
    }
    xmlDocPtr doc = xmlReadMemory(untrusted, (int)len, "firewall.xml", NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR |
                                      XML_PARSE_NOWARNING);
    xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;
    g_autofree char *policy = root ? attr(root, "policy") : NULL;
    GString *out = g_string_new(NULL);
    gboolean ok;
    if (!root || doc->intSubset || doc->extSubset)
        ok = bad(&c, vm, "firewall.xml does not parse");
    else if (g_strcmp0(policy, "allow") != 0 && g_strcmp0(policy, "deny") != 0)
        ok = bad(&c, vm, "firewall.xml: a policy neither allow nor deny");
    else {
        /* dns and icmp as their own attribute says, else as the policy */
        const char *keys[] = {"dns", "icmp"};
        const char *what[] = {"specialtarget=dns", "proto=icmp"};
        for (guint k = 0; k < 2; k++) {
            g_autofree char *v = attr(root, keys[k]);
            const char *a = v ? v : policy;
            g_string_append_printf(out, "action=%s %s\n",
                                   strcmp(a, "allow") == 0 ? "accept" : "drop",
                                   what[k]);
        }
        gboolean allow = strcmp(policy, "allow") == 0;
        ok = TRUE;
        for (xmlNodePtr n = root->children; ok && n; n = n->next)
            if (n->type == XML_ELEMENT_NODE)
                ok = fw_rule(n, allow ? "drop" : "accept", out, &c, vm);
        g_string_append_printf(out, "action=%s\n", allow ? "accept" : "drop");
    }
    if (doc)
        xmlFreeDoc(doc);
    if (!ok) {
        g_string_free(out, TRUE);
        return NULL;
    }
    return g_string_free(out, FALSE);
}
