/* firewall.c: firewall rules as the reference's qubes/firewall.py
 * (master) parses and shows them (firewall.h). */
#include "firewall.h"

#include "qubes-error.h"

#include <arpa/inet.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <string.h>

void qubes_fw_rule_free(QubesFwRule *r)
{
    if (!r)
        return;
    g_free(r->action);
    g_free(r->proto);
    g_free(r->dsthost);
    g_free(r->dstports);
    g_free(r->icmptype);
    g_free(r->specialtarget);
    g_free(r->expire);
    g_free(r->comment);
    g_free(r);
}

/* the reference raises ValueError */
#define fail(error, ...) qubes_error_fail(error, QUBES_ERROR_VALUE, __VA_ARGS__)

/* RuleOption's check: letters, digits and ':;,./-_[]' (a comment may
 * also hold spaces). */
static gboolean safe_chars(const char *untrusted, gboolean comment)
{
    for (const char *p = untrusted; *p; p++)
        if (!g_ascii_isalnum(*p) && !strchr(":;,./-_[]", *p) &&
            !(comment && *p == ' '))
            return FALSE;
    return TRUE;
}

/* Python's int() of ASCII text: whitespace around, a sign, digits with
 * single underscores between them. FALSE when it raises; a number past
 * 64 bits saturates (every caller then finds it out of its range). */
static gboolean py_int(const char *untrusted, gint64 *out, GError **error)
{
    const char *p = untrusted;
    while (g_ascii_isspace(*p))
        p++;
    gboolean neg = *p == '-';
    if (*p == '-' || *p == '+')
        p++;
    const char *digits = p;
    guint64 v = 0;
    gboolean big = FALSE;
    for (; g_ascii_isdigit(*p) || *p == '_'; p++) {
        if (*p == '_') {
            if (p == digits || !g_ascii_isdigit(p[1]))
                break;
            continue;
        }
        if (v > (G_MAXINT64 - 9) / 10)
            big = TRUE;
        else
            v = v * 10 + (guint64)(*p - '0');
    }
    const char *end = p;
    while (g_ascii_isspace(*p))
        p++;
    if (end == digits || *p)
        return fail(error, "invalid literal for int() with base 10: '%s'",
                    untrusted);
    gint64 n = big ? G_MAXINT64 : (gint64)v;
    *out = neg ? -n : n;
    return TRUE;
}

/* DstHost(): an IPv4 or IPv6 address (a prefix length added when bare)
 * or a host name. */
static gboolean parse_dsthost(QubesFwRule *r, const char *untrusted,
                              GError **error)
{
    guchar buf[16];
    const char *slash = strchr(untrusted, '/');
    if (slash && strchr(slash + 1, '/'))
        return fail(error, "Too many /: %s", untrusted);
    if (!slash) {
        if (inet_pton(AF_INET6, untrusted, buf) == 1) {
            r->dsthost = g_strconcat(untrusted, "/128", NULL);
            r->dsttype = QUBES_FW_DST6;
        } else if (inet_pton(AF_INET, untrusted, buf) == 1) {
            r->dsthost = g_strconcat(untrusted, "/32", NULL);
            r->dsttype = QUBES_FW_DST4;
        } else {
            for (const char *p = untrusted; *p; p++)
                if (!g_ascii_islower(*p) && !g_ascii_isdigit(*p) &&
                    !strchr("-._", *p))
                    return fail(error, "Invalid hostname");
            r->dsthost = g_strdup(untrusted);
            r->dsttype = QUBES_FW_DSTHOST;
        }
    } else {
        g_autofree char *host =
            g_strndup(untrusted, (gsize)(slash - untrusted));
        gint64 prefix;
        if (!py_int(slash + 1, &prefix, error))
            return FALSE;
        if (prefix < 0)
            return fail(error, "netmask must be non-negative");
        if (inet_pton(AF_INET6, host, buf) == 1) {
            if (prefix > 128)
                return fail(error, "netmask for IPv6 must be <= 128");
            r->dsttype = QUBES_FW_DST6;
        } else if (inet_pton(AF_INET, host, buf) == 1) {
            if (prefix > 32)
                return fail(error, "netmask for IPv4 must be <= 32");
            r->dsttype = QUBES_FW_DST4;
        } else {
            return fail(error, "Invalid IP address: %s", host);
        }
        r->dsthost = g_strdup(untrusted);
    }
    if (!safe_chars(r->dsthost, FALSE))
        return fail(error, "strange characters in rule");
    return TRUE;
}

/* DstPorts(): N or LO-HI, 0 to 65536 (as the reference allows). */
static gboolean parse_dstports(QubesFwRule *r, const char *untrusted,
                               GError **error)
{
    const char *dash = strchr(untrusted, '-');
    gint64 lo, hi;
    if (dash && strchr(dash + 1, '-'))
        return fail(error, "%s", untrusted);
    if (dash) {
        g_autofree char *first =
            g_strndup(untrusted, (gsize)(dash - untrusted));
        if (!py_int(first, &lo, error) || !py_int(dash + 1, &hi, error))
            return FALSE;
    } else {
        if (!py_int(untrusted, &lo, error))
            return FALSE;
        hi = lo;
    }
    if (lo < 0 || lo > 65536 || hi < 0 || hi > 65536)
        return fail(error, "Ports out of range");
    if (lo > hi)
        return fail(error, "Invalid port range");
    r->port_lo = (guint)lo;
    r->port_hi = (guint)hi;
    r->dstports = lo == hi ? g_strdup_printf("%u", r->port_lo)
                           : g_strdup_printf("%u-%u", r->port_lo, r->port_hi);
    return TRUE;
}

static gboolean choice(const char *untrusted, const char *const *allowed,
                       char **out, GError **error)
{
    if (!safe_chars(untrusted, FALSE))
        return fail(error, "strange characters in rule");
    for (const char *const *a = allowed; *a; a++)
        if (strcmp(untrusted, *a) == 0) {
            *out = g_strdup(untrusted);
            return TRUE;
        }
    return fail(error, "%s", untrusted);
}

/* One option KEY=VALUE into @r. */
static gboolean parse_option(QubesFwRule *r, const char *key,
                             const char *untrusted, GError **error)
{
    static const char *const actions[] = {"accept", "drop", NULL};
    static const char *const protos[] = {"tcp", "udp", "icmp", NULL};
    static const char *const targets[] = {"dns", NULL};
    if (strcmp(key, "action") == 0)
        return choice(untrusted, actions, &r->action, error);
    if (strcmp(key, "proto") == 0)
        return choice(untrusted, protos, &r->proto, error);
    if (strcmp(key, "specialtarget") == 0)
        return choice(untrusted, targets, &r->specialtarget, error);
    if (strcmp(key, "dsthost") == 0 || strcmp(key, "dst4") == 0 ||
        strcmp(key, "dst6") == 0 || strcmp(key, "dstname") == 0)
        return parse_dsthost(r, untrusted, error);
    if (strcmp(key, "dstports") == 0)
        return parse_dstports(r, untrusted, error);
    if (strcmp(key, "icmptype") == 0) {
        gint64 t;
        if (!py_int(untrusted, &t, error))
            return FALSE;
        if (t < 0 || t > 255)
            return fail(error, "ICMP type out of range");
        r->icmptype = g_strdup_printf("%" G_GINT64_FORMAT, t);
        return TRUE;
    }
    if (strcmp(key, "expire") == 0) {
        if (!safe_chars(untrusted, FALSE))
            return fail(error, "strange characters in rule");
        if (!py_int(untrusted, &r->expire_at, error))
            return FALSE;
        r->expire = g_strdup(untrusted);
        return TRUE;
    }
    return fail(error, "Unknown firewall option");
}

QubesFwRule *qubes_fw_rule_parse(const char *untrusted_line, GError **error)
{
    g_autoptr(QubesFwRule) r = g_new0(QubesFwRule, 1);
    /* the comment may hold spaces: everything after the first comment= */
    const char *c = strstr(untrusted_line, "comment=");
    g_autofree char *options =
        c ? g_strndup(untrusted_line, (gsize)(c - untrusted_line))
          : g_strdup(untrusted_line);
    if (c && c[8]) {
        if (!safe_chars(c + 8, TRUE)) {
            fail(error, "strange characters comment");
            return NULL;
        }
        r->comment = g_strdup(c + 8);
    }
    /* options.strip().split(' '): single spaces; an empty one is not
     * KEY=VALUE */
    g_strstrip(options);
    if (!*options) { /* ''.split(' ') is [''] */
        fail(error, "not enough values to unpack (expected 2, got 1)");
        return NULL;
    }
    g_auto(GStrv) words = g_strsplit(options, " ", -1);
    g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);
    for (char **w = words; *w; w++) {
        char *eq = strchr(*w, '=');
        if (!eq) {
            fail(error, "not enough values to unpack (expected 2, got 1)");
            return NULL;
        }
        *eq = '\0';
        const char *key = *w;
        gboolean dst = strcmp(key, "dst4") == 0 || strcmp(key, "dst6") == 0 ||
                       strcmp(key, "dstname") == 0;
        const char *slot = dst ? "dsthost" : key;
        if (g_hash_table_contains(seen, slot)) {
            fail(error, "Option '%s' already set", slot);
            return NULL;
        }
        if (!parse_option(r, key, eq + 1, error))
            return NULL;
        g_hash_table_add(seen, (gpointer)(dst ? "dsthost" : key));
    }
    if (!r->action) {
        fail(error, "Required property 'action' not set");
        return NULL;
    }
    if (r->dstports && g_strcmp0(r->proto, "tcp") != 0 &&
        g_strcmp0(r->proto, "udp") != 0) {
        fail(error, "dstports valid only for 'tcp' and 'udp' protocols");
        return NULL;
    }
    if (r->icmptype && g_strcmp0(r->proto, "icmp") != 0) {
        fail(error, "icmptype valid only for 'icmp' protocol");
        return NULL;
    }
    return g_steal_pointer(&r);
}

static const char *dst_key(const QubesFwRule *r)
{
    switch (r->dsttype) {
    case QUBES_FW_DST4:
        return "dst4";
    case QUBES_FW_DST6:
        return "dst6";
    default:
        return "dsthost";
    }
}

/* The properties in the reference's order (load stage, order, name):
 * action, comment, expire (order 0); dsthost, proto, specialtarget (1);
 * dstports, icmptype (2); the API's form puts the comment last. The
 * destination is always dst4=/dst6=/dsthost=, the ports a range. */
static char *render(const QubesFwRule *r, gint64 now, gboolean api)
{
    if (r->expire && r->expire_at < now)
        return NULL;
    GString *s = g_string_new("action=");
    g_string_append(s, r->action);
    if (api && r->expire)
        g_string_append_printf(s, " expire=%s", r->expire);
    if (r->dsthost)
        g_string_append_printf(s, " %s=%s", dst_key(r), r->dsthost);
    if (r->proto)
        g_string_append_printf(s, " proto=%s", r->proto);
    if (r->specialtarget)
        g_string_append_printf(s, " specialtarget=%s", r->specialtarget);
    if (r->dstports) /* always as a range, as the reference shows it */
        g_string_append_printf(s, " dstports=%u-%u", r->port_lo, r->port_hi);
    if (r->icmptype)
        g_string_append_printf(s, " icmptype=%s", r->icmptype);
    if (api && r->comment)
        g_string_append_printf(s, " comment=%s", r->comment);
    return g_string_free(s, FALSE);
}

char *qubes_fw_rule_api(const QubesFwRule *rule, gint64 now)
{
    return render(rule, now, TRUE);
}

char *qubes_fw_rule_text(const QubesFwRule *rule, gint64 now)
{
    return render(rule, now, FALSE);
}

/* ---- firewall.xml ---- */

static void xml_property(GString *s, const char *name, const char *value)
{
    if (!value)
        return;
    g_autofree char *escaped = g_markup_escape_text(value, -1);
    g_string_append_printf(s, "        <property name=\"%s\">%s</property>\n",
                           name, escaped);
}

char *qubes_fw_to_xml(GPtrArray *rules, gint64 now)
{
    GString *s = g_string_new("<?xml version='1.0' encoding='UTF-8'?>\n"
                              "<firewall version=\"2\">\n");
    guint kept = 0;
    for (guint i = 0; i < rules->len; i++) {
        const QubesFwRule *r = rules->pdata[i];
        if (r->expire && r->expire_at < now)
            continue;
        if (!kept++)
            g_string_append(s, "  <rules>\n");
        g_string_append(s, "    <rule>\n      <properties>\n");
        /* (load stage, order, name): the values as the reference keeps
         * them (str() of each option) */
        xml_property(s, "action", r->action);
        xml_property(s, "comment", r->comment);
        xml_property(s, "expire", r->expire);
        xml_property(s, "dsthost", r->dsthost);
        xml_property(s, "proto", r->proto);
        xml_property(s, "specialtarget", r->specialtarget);
        xml_property(s, "dstports", r->dstports);
        xml_property(s, "icmptype", r->icmptype);
        g_string_append(s, "      </properties>\n    </rule>\n");
    }
    /* lxml writes an empty element as <rules/> */
    g_string_append(s, kept ? "  </rules>\n" : "  <rules/>\n");
    g_string_append(s, "</firewall>\n");
    return g_string_free(s, FALSE);
}

static char *xml_text(xmlNodePtr n)
{
    xmlChar *t = xmlNodeGetContent(n);
    char *out = g_strdup(t ? (const char *)t : "");
    xmlFree(t);
    return out;
}

static char *xml_attr(xmlNodePtr n, const char *name)
{
    xmlChar *v = xmlGetProp(n, (const xmlChar *)name);
    char *out = v ? g_strdup((const char *)v) : NULL;
    xmlFree(v);
    return out;
}

/* A version 2 <rule>: its properties, checked as the API's options
 * are (a value holding a space would be two options: refused as the
 * reference's character check refuses it; only a comment may). */
static QubesFwRule *rule_v2(xmlNodePtr rule, GError **error)
{
    g_autoptr(GString) line = g_string_new(NULL);
    g_autofree char *comment = NULL;
    for (xmlNodePtr props = rule->children; props; props = props->next) {
        if (props->type != XML_ELEMENT_NODE ||
            strcmp((const char *)props->name, "properties") != 0)
            continue;
        for (xmlNodePtr p = props->children; p; p = p->next) {
            if (p->type != XML_ELEMENT_NODE)
                continue;
            g_autofree char *name = xml_attr(p, "name");
            g_autofree char *value = xml_text(p);
            if (g_strcmp0(name, "comment") == 0) {
                g_free(comment);
                comment = g_steal_pointer(&value);
                continue;
            }
            if (!name || !*name || strchr(name, '=') || strchr(name, ' ')) {
                fail(error, "Unknown firewall option");
                return NULL;
            }
            if (strchr(value, ' ')) {
                fail(error, "strange characters in rule");
                return NULL;
            }
            g_string_append_printf(line, "%s%s=%s", line->len ? " " : "", name,
                                   value);
        }
    }
    if (!line->len) { /* no action (PropertyHolder.property_require) */
        fail(error, "Required property 'action' not set");
        return NULL;
    }
    if (comment)
        g_string_append_printf(line, " comment=%s", comment);
    return qubes_fw_rule_parse(line->str, error);
}

/* Qubes before 4.0: <QubesFirewallRules policy="allow|deny" dns="..."
 * icmp="..."><rule address= netmask= proto= port= toport= expire=/>. */
static gboolean load_v1(xmlNodePtr root, GPtrArray *out, GError **error)
{
    g_autofree char *policy = xml_attr(root, "policy");
    if (g_strcmp0(policy, "allow") != 0 && g_strcmp0(policy, "deny") != 0)
        return fail(error, "policy must be allow or deny");
    gboolean accept = strcmp(policy, "allow") == 0;
    const char *keys[] = {"dns", "icmp"};
    for (guint k = 0; k < 2; k++) {
        g_autofree char *v = xml_attr(root, keys[k]);
        const char *action =
            g_strcmp0(v ? v : policy, "allow") == 0 ? "accept" : "drop";
        g_autofree char *line = g_strdup_printf(
            k ? "action=%s proto=icmp" : "action=%s specialtarget=dns", action);
        QubesFwRule *r = qubes_fw_rule_parse(line, error);
        if (!r)
            return FALSE;
        g_ptr_array_add(out, r);
    }
    for (xmlNodePtr n = root->children; n; n = n->next) {
        if (n->type != XML_ELEMENT_NODE)
            continue;
        g_autofree char *address = xml_attr(n, "address");
        g_autofree char *netmask = xml_attr(n, "netmask");
        g_autofree char *proto = xml_attr(n, "proto");
        g_autofree char *port = xml_attr(n, "port");
        g_autofree char *toport = xml_attr(n, "toport");
        g_autofree char *expire = xml_attr(n, "expire");
        GString *line = g_string_new(accept ? "action=drop" : "action=accept");
        if (address && *address)
            g_string_append_printf(line, " dsthost=%s/%s", address,
                                   netmask ? netmask : "32");
        if (port && *port && !(proto && *proto))
            proto = g_strdup("tcp"); /* ports without a protocol: tcp */
        if (proto && *proto && strcmp(proto, "any") != 0)
            g_string_append_printf(line, " proto=%s", proto);
        if (port && *port)
            g_string_append_printf(line, " dstports=%s%s%s", port,
                                   toport && *toport ? "-" : "",
                                   toport && *toport ? toport : "");
        if (expire && *expire)
            g_string_append_printf(line, " expire=%s", expire);
        QubesFwRule *r = qubes_fw_rule_parse(line->str, error);
        g_string_free(line, TRUE);
        if (!r)
            return FALSE;
        g_ptr_array_add(out, r);
    }
    if (accept) {
        QubesFwRule *r = qubes_fw_rule_parse("action=accept", error);
        g_ptr_array_add(out, r);
    }
    return TRUE;
}

GPtrArray *qubes_fw_from_xml(const char *untrusted, gsize len, const char *path,
                             GError **error)
{
    if (len > 16 * 1024 * 1024) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION, "%s: too large",
                    path);
        return NULL;
    }
    /* no network, no entities, no DTD */
    xmlDocPtr doc = xmlReadMemory(untrusted, (int)len, path, NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR |
                                      XML_PARSE_NOWARNING);
    xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;
    g_autoptr(GPtrArray) out =
        g_ptr_array_new_with_free_func((GDestroyNotify)qubes_fw_rule_free);
    g_autoptr(GError) err = NULL;
    if (!root) {
        g_set_error_literal(&err, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                            "not XML");
    } else {
        g_autofree char *version = xml_attr(root, "version");
        if (!version || strcmp(version, "1") == 0) {
            load_v1(root, out, &err);
        } else if (strcmp(version, "2") == 0) {
            for (xmlNodePtr rules = root->children; rules && !err;
                 rules = rules->next) {
                if (rules->type != XML_ELEMENT_NODE ||
                    strcmp((const char *)rules->name, "rules") != 0)
                    continue;
                for (xmlNodePtr n = rules->children; n && !err; n = n->next) {
                    if (n->type != XML_ELEMENT_NODE)
                        continue;
                    QubesFwRule *r = rule_v2(n, &err);
                    if (r)
                        g_ptr_array_add(out, r);
                }
                break; /* the first <rules>, as find() */
            }
        } else {
            g_set_error(&err, QUBES_ERROR, QUBES_ERROR_VM,
                        "Unsupported firewall.xml version: %s", version);
        }
    }
    if (doc)
        xmlFreeDoc(doc);
    if (err) {
        g_set_error(error, err->domain, err->code, "%s: %s", path,
                    err->message);
        return NULL;
    }
    return g_steal_pointer(&out);
}

gboolean qubes_fw_rules_are_default(GPtrArray *rules)
{
    if (rules->len != 1)
        return FALSE;
    const QubesFwRule *r = rules->pdata[0];
    return strcmp(r->action, "accept") == 0 && !r->proto && !r->dsthost &&
           !r->dstports && !r->icmptype && !r->specialtarget && !r->expire &&
           !r->comment;
}
