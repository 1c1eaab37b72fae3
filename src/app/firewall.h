/* firewall.h: a qube's firewall rules, as the reference's
 * qubes/firewall.py (master) parses, checks and writes them.
 *
 * A rule is what admin.vm.firewall.Set takes, one per line:
 *
 *   action=accept|drop [proto=tcp|udp|icmp] [dsthost=H|dst4=A|dst6=A|
 *   dstname=H] [dstports=N[-M]] [icmptype=N] [specialtarget=dns]
 *   [expire=EPOCH] [comment=TEXT...]
 *
 * Every value is checked where it enters (qubes_fw_rule_parse()); what
 * is kept is the normalized form the reference keeps (an address with
 * its prefix length, a port range as lo-hi or a single port).
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum {
    QUBES_FW_DST_NONE,
    QUBES_FW_DST4,    /* IPv4 address/prefix */
    QUBES_FW_DST6,    /* IPv6 address/prefix */
    QUBES_FW_DSTHOST, /* a host name */
} QubesFwDstType;

typedef struct {
    char *action;  /* "accept" or "drop" */
    char *proto;   /* "tcp", "udp", "icmp" or NULL */
    char *dsthost; /* normalized ("10.0.0.0/8", "::1/128", a name) */
    QubesFwDstType dsttype;
    char *dstports; /* "80" or "1024-2048", NULL: none */
    guint port_lo, port_hi;
    char *icmptype;      /* "0".."255", NULL: none */
    char *specialtarget; /* "dns" or NULL */
    char *expire;        /* epoch seconds as given, NULL: never */
    gint64 expire_at;
    char *comment; /* may hold spaces, NULL: none */
} QubesFwRule;

void qubes_fw_rule_free(QubesFwRule *rule);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QubesFwRule, qubes_fw_rule_free)

/* Rule.from_api_string(): one line of admin.vm.firewall.Set. NULL with
 * the reference's ValueError text in @error when it is not a rule. */
QubesFwRule *qubes_fw_rule_parse(const char *untrusted_line, GError **error);

/* The rule as admin.vm.firewall.Get shows it (api_rule: comment last,
 * expire included); NULL when it expired by @now (epoch seconds). */
char *qubes_fw_rule_api(const QubesFwRule *rule, gint64 now);

/* The rule as the netvm's firewall takes it (rule: no expire nor
 * comment, the destination as dst4=/dst6=/dsthost=); NULL when expired. */
char *qubes_fw_rule_text(const QubesFwRule *rule, gint64 now);

/* Whether @rules are a qube's rules without a firewall.xml: one rule,
 * action=accept and nothing else. */
gboolean qubes_fw_rules_are_default(GPtrArray *rules);

/* firewall.xml as master's Firewall.save() writes it (version 2: each
 * rule's set properties in the reference's order, expired rules left
 * out), UTF-8 with lxml's declaration and two-space indentation. */
char *qubes_fw_to_xml(GPtrArray *rules, gint64 now);

/* A firewall.xml (version 2, or 1 as Qubes before 4.0 wrote it) into
 * rules (QubesFwRule, owned); NULL with the cause naming @path when it is
 * not one: every value is checked as admin.vm.firewall.Set checks it. */
GPtrArray *qubes_fw_from_xml(const char *untrusted, gsize len, const char *path,
                             GError **error);

G_END_DECLS
