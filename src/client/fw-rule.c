/* fw-rule.c: the Qubes client's firewall Rule (fw-rule.h).
 *
 * Each element is set through the client's setter, in the order its
 * Rule() sets them (action, proto, dsthost, dst4, dst6, specialtarget,
 * dstports, icmptype, expire, comment), so that of two faults the one
 * the client names first is the one named here. */
#include "fw-rule.h"

#include "argparse.h"
#include "qubes-args.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

struct _QaFwRule {
    char *action, *proto, *specialtarget, *comment;
    char *dsthost;       /* str(DstHost): the value, a bare address's
                            prefix length added */
    const char *dsttype; /* "dst4", "dst6", "dsthost" */
    gint64 prefixlen;
    gboolean has_ports;
    gint64 port_lo, port_hi;
    char *icmptype; /* as given */
    char *expire;   /* as given */
    gint64 expire_at;
};

void qa_fw_rule_free(QaFwRule *r)
{
    if (!r)
        return;
    g_free(r->action);
    g_free(r->proto);
    g_free(r->specialtarget);
    g_free(r->comment);
    g_free(r->dsthost);
    g_free(r->icmptype);
    g_free(r->expire);
    g_free(r);
}

/* A ValueError's last line. */
static gboolean value_error(char **pyerr, const char *fmt, ...)
    G_GNUC_PRINTF(2, 3);
static gboolean value_error(char **pyerr, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    *pyerr = g_strdup_printf("ValueError: %s", msg);
    return FALSE;
}

static gboolean py_int(const char *s, gint64 *out, char **pyerr)
{
    if (args_py_int(s, out))
        return TRUE;
    g_autofree char *m = args_py_int_error(s);
    return value_error(pyerr, "%s", m);
}

/* RuleChoice: @value one of @allowed, else ValueError(value). */
static gboolean choice(const char *value, const char *const *allowed,
                       char **slot, char **pyerr)
{
    if (!g_strv_contains(allowed, value))
        return value_error(pyerr, "%s", value);
    g_free(*slot);
    *slot = g_strdup(value);
    return TRUE;
}

static gboolean is_ip(int family, const char *s)
{
    unsigned char buf[16];
    return inet_pton(family, s, buf) == 1;
}

static guint count_char(const char *s, char c)
{
    guint n = 0;
    for (; *s; s++)
        n += *s == c;
    return n;
}

/* DstHost(value) */
static gboolean set_dsthost(QaFwRule *r, const char *value, char **pyerr)
{
    guint slashes = count_char(value, '/');
    if (slashes > 1)
        return value_error(pyerr, "Too many /: %s", value);
    if (!slashes) {
        if (is_ip(AF_INET6, value)) {
            r->prefixlen = 128;
            r->dsttype = "dst6";
        } else if (is_ip(AF_INET, value)) {
            if (count_char(value, '.') != 3)
                return value_error(pyerr,
                                   "Invalid number of dots in IPv4 address");
            r->prefixlen = 32;
            r->dsttype = "dst4";
        } else {
            for (const char *p = value; *p; p++)
                if (!(g_ascii_islower(*p) || g_ascii_isdigit(*p) ||
                      strchr("-._", *p)))
                    return value_error(pyerr, "Invalid hostname");
            r->prefixlen = 0;
            r->dsttype = "dsthost";
            g_free(r->dsthost);
            r->dsthost = g_strdup(value);
            return TRUE;
        }
        g_free(r->dsthost);
        r->dsthost =
            g_strdup_printf("%s/%" G_GINT64_FORMAT, value, r->prefixlen);
        return TRUE;
    }
    const char *slash = strchr(value, '/');
    g_autofree char *host = g_strndup(value, (gsize)(slash - value));
    gint64 prefixlen;
    if (!py_int(slash + 1, &prefixlen, pyerr))
        return FALSE;
    if (prefixlen < 0)
        return value_error(pyerr, "netmask must be non-negative");
    if (is_ip(AF_INET6, host)) {
        if (prefixlen > 128)
            return value_error(pyerr, "netmask for IPv6 must be <= 128");
        r->dsttype = "dst6";
    } else if (is_ip(AF_INET, host)) {
        if (prefixlen > 32)
            return value_error(pyerr, "netmask for IPv4 must be <= 32");
        if (count_char(host, '.') != 3)
            return value_error(pyerr, "Invalid number of dots in IPv4 address");
        r->dsttype = "dst4";
    } else {
        return value_error(pyerr, "Invalid IP address: %s", host);
    }
    r->prefixlen = prefixlen;
    g_free(r->dsthost);
    r->dsthost = g_strdup(value);
    return TRUE;
}

static gboolean proto_is(const QaFwRule *r, const char *a, const char *b)
{
    return r->proto &&
           (g_strcmp0(r->proto, a) == 0 || g_strcmp0(r->proto, b) == 0);
}

/* DstPorts(value), for tcp and udp only */
static gboolean set_dstports(QaFwRule *r, const char *value, char **pyerr)
{
    if (!proto_is(r, "tcp", "udp"))
        return value_error(pyerr,
                           "dstports valid only for 'tcp' and 'udp' protocols");
    guint dashes = count_char(value, '-');
    gint64 lo, hi;
    if (dashes == 1) {
        const char *dash = strchr(value, '-');
        g_autofree char *first = g_strndup(value, (gsize)(dash - value));
        if (!py_int(first, &lo, pyerr) || !py_int(dash + 1, &hi, pyerr))
            return FALSE;
    } else if (!dashes) {
        if (!py_int(value, &lo, pyerr))
            return FALSE;
        hi = lo;
    } else {
        return value_error(pyerr, "%s", value);
    }
    if (lo < 0 || lo > 65536 || hi < 0 || hi > 65536)
        return value_error(pyerr, "Ports out of range");
    if (lo > hi)
        return value_error(pyerr, "Invalid port range");
    r->has_ports = TRUE;
    r->port_lo = lo;
    r->port_hi = hi;
    return TRUE;
}

static gboolean set_icmptype(QaFwRule *r, const char *value, char **pyerr)
{
    if (!proto_is(r, "icmp", NULL))
        return value_error(pyerr, "icmptype valid only for 'icmp' protocol");
    gint64 v;
    if (!py_int(value, &v, pyerr))
        return FALSE;
    if (v < 0 || v > 255)
        return value_error(pyerr, "ICMP type out of range");
    g_free(r->icmptype);
    r->icmptype = g_strdup(value);
    return TRUE;
}

/* The proleptic Gregorian year of a day count from 1970-01-01. */
static gint64 year_of_days(gint64 z)
{
    z += 719468;
    gint64 era = (z >= 0 ? z : z - 146096) / 146097;
    gint64 doe = z - era * 146097;
    gint64 yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    gint64 doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    gint64 mp = (5 * doy + 2) / 153;
    return yoe + era * 400 + (mp >= 10);
}

/* Expire(value): datetime.fromtimestamp(int(value)), years 1 to 9999 */
static gboolean set_expire(QaFwRule *r, const char *value, char **pyerr)
{
    gint64 v;
    if (!py_int(value, &v, pyerr))
        return FALSE;
    gint64 days = v >= 0 ? v / 86400 : -((-v + 86399) / 86400);
    gint64 year = year_of_days(days);
    if (year < 1 || year > 9999)
        return value_error(pyerr, "year %" G_GINT64_FORMAT " is out of range",
                           year);
    g_free(r->expire);
    r->expire = g_strdup(value);
    r->expire_at = v;
    return TRUE;
}

static gboolean set_element(QaFwRule *r, const char *key, const char *value,
                            char **pyerr)
{
    static const char *const actions[] = {"accept", "drop", NULL};
    static const char *const protos[] = {"tcp", "udp", "icmp", NULL};
    static const char *const targets[] = {"dns", NULL};
    if (strcmp(key, "action") == 0)
        return choice(value, actions, &r->action, pyerr);
    if (strcmp(key, "proto") == 0) {
        if (!choice(value, protos, &r->proto, pyerr))
            return FALSE;
        /* the setter drops what the new protocol cannot have */
        if (!proto_is(r, "tcp", "udp"))
            r->has_ports = FALSE;
        if (!proto_is(r, "icmp", NULL))
            g_clear_pointer(&r->icmptype, g_free);
        return TRUE;
    }
    if (strcmp(key, "dsthost") == 0 || strcmp(key, "dst4") == 0 ||
        strcmp(key, "dst6") == 0)
        return set_dsthost(r, value, pyerr);
    if (strcmp(key, "specialtarget") == 0)
        return choice(value, targets, &r->specialtarget, pyerr);
    if (strcmp(key, "dstports") == 0)
        return set_dstports(r, value, pyerr);
    if (strcmp(key, "icmptype") == 0)
        return set_icmptype(r, value, pyerr);
    if (strcmp(key, "expire") == 0)
        return set_expire(r, value, pyerr);
    g_free(r->comment);
    r->comment = g_strdup(value);
    return TRUE;
}

/* Rule.__init__ over a dict: KEY -> VALUE, in insertion order (@keys). */
static QaFwRule *from_dict(GPtrArray *keys, GHashTable *dict, char **pyerr)
{
    static const char *const order[] = {
        "action",   "proto",    "dsthost", "dst4",    "dst6", "specialtarget",
        "dstports", "icmptype", "expire",  "comment", NULL};
    g_autoptr(QaFwRule) r = g_new0(QaFwRule, 1);
    for (const char *const *k = order; *k; k++) {
        const char *v = g_hash_table_lookup(dict, *k);
        if (v && !set_element(r, *k, v, pyerr))
            return NULL;
    }
    g_autoptr(GString) rest = g_string_new(NULL);
    for (guint i = 0; i < keys->len; i++) {
        if (g_strv_contains(order, keys->pdata[i]))
            continue;
        g_autofree char *rk = args_py_repr(keys->pdata[i]);
        g_autofree char *rv =
            args_py_repr(g_hash_table_lookup(dict, keys->pdata[i]));
        g_string_append_printf(rest, "%s%s: %s", rest->len ? ", " : "", rk, rv);
    }
    if (rest->len) {
        value_error(pyerr, "Unknown rule elements: {%s}", rest->str);
        return NULL;
    }
    if (!r->action) {
        value_error(pyerr, "missing action=");
        return NULL;
    }
    return g_steal_pointer(&r);
}

/* A dict's insert: a key keeps its first place, takes its last value. */
static void dict_set(GPtrArray *keys, GHashTable *dict, const char *k,
                     const char *v)
{
    if (!g_hash_table_contains(dict, k))
        g_ptr_array_add(keys, g_strdup(k));
    g_hash_table_replace(dict, g_strdup(k), g_strdup(v));
}

QaFwRule *qa_fw_rule_from_elements(GPtrArray *keys, GPtrArray *values,
                                   char **pyerr)
{
    g_autoptr(GPtrArray) order = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GHashTable) dict =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    for (guint i = 0; i < keys->len; i++)
        dict_set(order, dict, keys->pdata[i], values->pdata[i]);
    return from_dict(order, dict, pyerr);
}

QaFwRule *qa_fw_rule_parse(const char *line, char **pyerr)
{
    const char *c = strstr(line, "comment=");
    g_autofree char *opts =
        c ? g_strndup(line, (gsize)(c - line)) : g_strdup(line);
    g_autoptr(GPtrArray) order = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GHashTable) dict =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    g_auto(GStrv) words = g_strsplit(opts, " ", -1);
    guint n = 0;
    for (char **w = words; *w; w++) {
        if (!**w)
            continue;
        const char *eq = strchr(*w, '=');
        if (!eq) {
            *pyerr = g_strdup_printf(QUBES_ARGS_DICT_ERROR, n);
            return NULL;
        }
        g_autofree char *k = g_strndup(*w, (gsize)(eq - *w));
        dict_set(order, dict, k, eq + 1);
        n++;
    }
    if (c && c[strlen("comment=")])
        dict_set(order, dict, "comment", c + strlen("comment="));
    return from_dict(order, dict, pyerr);
}

char *qa_fw_rule_api(const QaFwRule *r)
{
    GString *s = g_string_new(NULL);
#define ADD(...)                                                               \
    do {                                                                       \
        if (s->len)                                                            \
            g_string_append_c(s, ' ');                                         \
        g_string_append_printf(s, __VA_ARGS__);                                \
    } while (0)
    ADD("action=%s", r->action);
    if (r->proto)
        ADD("proto=%s", r->proto);
    /* 0.0.0.0/0 and ::/0 limit nothing: left out */
    if (r->dsthost && !(r->prefixlen == 0 && strcmp(r->dsttype, "dsthost")))
        ADD("%s=%s", r->dsttype, r->dsthost);
    if (r->has_ports)
        ADD("dstports=%" G_GINT64_FORMAT "-%" G_GINT64_FORMAT, r->port_lo,
            r->port_hi);
    if (r->icmptype)
        ADD("icmptype=%s", r->icmptype);
    if (r->specialtarget)
        ADD("specialtarget=%s", r->specialtarget);
    if (r->expire)
        ADD("expire=%s", r->expire);
    if (r->comment)
        ADD("comment=%s", r->comment);
#undef ADD
    return g_string_free(s, FALSE);
}

char *qa_fw_rule_pretty(const QaFwRule *r, const char *key)
{
    const char *v = NULL;
    if (strcmp(key, "action") == 0)
        v = r->action;
    else if (strcmp(key, "dsthost") == 0)
        v = r->dsthost;
    else if (strcmp(key, "proto") == 0)
        v = r->proto;
    else if (strcmp(key, "specialtarget") == 0)
        v = r->specialtarget;
    else if (strcmp(key, "icmptype") == 0)
        v = r->icmptype;
    else if (strcmp(key, "comment") == 0)
        v = r->comment;
    else if (strcmp(key, "dstports") == 0 && r->has_ports)
        return r->port_lo == r->port_hi
                   ? g_strdup_printf("%" G_GINT64_FORMAT, r->port_lo)
                   : g_strdup_printf("%" G_GINT64_FORMAT "-%" G_GINT64_FORMAT,
                                     r->port_lo, r->port_hi);
    else if (strcmp(key, "expire") == 0 && r->expire)
        return g_strdup_printf("%+.0fs", (double)r->expire_at -
                                             (double)g_get_real_time() / 1e6);
    return g_strdup(v ? v : "-");
}
