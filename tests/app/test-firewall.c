/* test-firewall: firewall rules parsed, refused and shown as the
 * reference's qubes/firewall.py (master) does. */
#include "firewall.h"

#include <string.h>

#define NOW G_GINT64_CONSTANT(1700000000)

typedef struct {
    const char *line;
    const char *api;  /* admin.vm.firewall.Get's form */
    const char *text; /* the netvm's form */
} Good;

static const Good good[] = {
    {"action=accept", "action=accept", "action=accept"},
    {"action=drop proto=tcp dstports=80 dsthost=10.0.0.0/8",
     "action=drop dst4=10.0.0.0/8 proto=tcp dstports=80-80",
     "action=drop dst4=10.0.0.0/8 proto=tcp dstports=80-80"},
    {"action=accept dst4=192.168.1.1", "action=accept dst4=192.168.1.1/32",
     "action=accept dst4=192.168.1.1/32"},
    {"action=accept dst6=::1", "action=accept dst6=::1/128",
     "action=accept dst6=::1/128"},
    {"action=accept dstname=example.com", "action=accept dsthost=example.com",
     "action=accept dsthost=example.com"},
    {"action=accept specialtarget=dns", "action=accept specialtarget=dns",
     "action=accept specialtarget=dns"},
    {"action=accept proto=icmp icmptype=8",
     "action=accept proto=icmp icmptype=8",
     "action=accept proto=icmp icmptype=8"},
    {"action=accept proto=udp dstports=1024-2048 comment=my rule, here",
     "action=accept proto=udp dstports=1024-2048 comment=my rule, here",
     "action=accept proto=udp dstports=1024-2048"},
    {"action=drop expire=1800000000", "action=drop expire=1800000000",
     "action=drop"},
    /* Python's int(): a sign, underscores; the normalized value kept */
    {"action=drop proto=tcp dstports=+8_0",
     "action=drop proto=tcp "
     "dstports=80-80",
     "action=drop proto=tcp dstports=80-80"},
    /* the reference allows 65536 */
    {"action=drop proto=tcp dstports=65536",
     "action=drop proto=tcp "
     "dstports=65536-65536",
     "action=drop proto=tcp dstports=65536-65536"},
};

typedef struct {
    const char *line;
    const char *error;
} Bad;

static const Bad bad[] = {
    {"", "not enough values to unpack (expected 2, got 1)"},
    {"proto=tcp", "Required property 'action' not set"},
    {"action=allow", "allow"},
    {"action=accept  proto=tcp", "not enough values to unpack (expected 2, "
                                 "got 1)"},
    {"action=accept action=drop", "Option 'action' already set"},
    {"action=accept dst4=1.2.3.4 dsthost=x.org", "Option 'dsthost' already "
                                                 "set"},
    {"action=accept dsthost=x.org dst6=::1", "Option 'dsthost' already set"},
    {"action=accept foo=bar", "Unknown firewall option"},
    {"action=accept dstports=80", "dstports valid only for 'tcp' and 'udp' "
                                  "protocols"},
    {"action=accept proto=tcp icmptype=3", "icmptype valid only for 'icmp' "
                                           "protocol"},
    {"action=accept proto=tcp dstports=70000", "Ports out of range"},
    {"action=accept proto=tcp dstports=90-80", "Invalid port range"},
    {"action=accept proto=tcp dstports=1-2-3", "1-2-3"},
    {"action=accept proto=tcp dstports=-5",
     "invalid literal for int() with base 10: ''"},
    {"action=accept proto=icmp icmptype=256", "ICMP type out of range"},
    {"action=accept dsthost=1.2.3.4/33", "netmask for IPv4 must be <= 32"},
    {"action=accept dsthost=::1/129", "netmask for IPv6 must be <= 128"},
    {"action=accept dsthost=1.2.3.4/-1", "netmask must be non-negative"},
    {"action=accept dsthost=1.2.3/8", "Invalid IP address: 1.2.3"},
    {"action=accept dsthost=a/b/c", "Too many /: a/b/c"},
    {"action=accept dsthost=Example.com", "Invalid hostname"},
    {"action=accept dsthost=../etc",
     "invalid literal for int() with base 10: 'etc'"},
    /* everything after comment= is the comment ('=' is not allowed in
     * it), checked first */
    {"comment=first action=drop", "strange characters comment"},
    {"comment=first", "not enough values to unpack (expected 2, got 1)"},
    {"action=accept comment=a\tb", "strange characters comment"},
    {"action=accept expire=1$", "strange characters in rule"},
    {"action=acc\x01ept", "strange characters in rule"},
};

static void test_good(void)
{
    for (guint i = 0; i < G_N_ELEMENTS(good); i++) {
        g_autoptr(GError) err = NULL;
        g_autoptr(QubesFwRule) r = qubes_fw_rule_parse(good[i].line, &err);
        g_assert_no_error(err);
        g_assert_nonnull(r);
        g_autofree char *api = qubes_fw_rule_api(r, NOW);
        g_autofree char *text = qubes_fw_rule_text(r, NOW);
        g_assert_cmpstr(api, ==, good[i].api);
        g_assert_cmpstr(text, ==, good[i].text);
        /* what Get shows parses back to the same rule */
        g_autoptr(QubesFwRule) again = qubes_fw_rule_parse(api, &err);
        g_assert_no_error(err);
        g_autofree char *api2 = qubes_fw_rule_api(again, NOW);
        g_assert_cmpstr(api2, ==, api);
    }
}

static void test_bad(void)
{
    for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(GError) err = NULL;
        g_autoptr(QubesFwRule) r = qubes_fw_rule_parse(bad[i].line, &err);
        g_assert_null(r);
        g_assert_nonnull(err);
        g_assert_cmpstr(err->message, ==, bad[i].error);
    }
}

static void test_expired(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(QubesFwRule) r =
        qubes_fw_rule_parse("action=drop expire=1600000000", &err);
    g_assert_no_error(err);
    g_assert_null(qubes_fw_rule_api(r, NOW));
    g_assert_null(qubes_fw_rule_text(r, NOW));
}

static GPtrArray *rules_of(const char *const *lines)
{
    GPtrArray *rules =
        g_ptr_array_new_with_free_func((GDestroyNotify)qubes_fw_rule_free);
    for (const char *const *l = lines; *l; l++) {
        g_autoptr(GError) err = NULL;
        QubesFwRule *r = qubes_fw_rule_parse(*l, &err);
        g_assert_no_error(err);
        g_ptr_array_add(rules, r);
    }
    return rules;
}

/* firewall.xml as master writes it, and read back; expired rules are
 * not written. */
static void test_xml(void)
{
    const char *lines[] = {
        "action=accept proto=tcp dstports=443 dsthost=example.com "
        "comment=web: port 443 [x]",
        "action=drop expire=1600000000",
        "action=accept expire=1800000000 dst4=10.1.0.0/16", "action=drop",
        NULL};
    g_autoptr(GPtrArray) rules = rules_of(lines);
    g_autofree char *xml = qubes_fw_to_xml(rules, NOW);
    g_assert_cmpstr(
        xml, ==,
        "<?xml version='1.0' encoding='UTF-8'?>\n"
        "<firewall version=\"2\">\n"
        "  <rules>\n"
        "    <rule>\n"
        "      <properties>\n"
        "        <property name=\"action\">accept</property>\n"
        "        <property name=\"comment\">web: port 443 "
        "[x]</property>\n"
        "        <property name=\"dsthost\">example.com</property>\n"
        "        <property name=\"proto\">tcp</property>\n"
        "        <property name=\"dstports\">443</property>\n"
        "      </properties>\n"
        "    </rule>\n"
        "    <rule>\n"
        "      <properties>\n"
        "        <property name=\"action\">accept</property>\n"
        "        <property name=\"expire\">1800000000</property>\n"
        "        <property name=\"dsthost\">10.1.0.0/16</property>\n"
        "      </properties>\n"
        "    </rule>\n"
        "    <rule>\n"
        "      <properties>\n"
        "        <property name=\"action\">drop</property>\n"
        "      </properties>\n"
        "    </rule>\n"
        "  </rules>\n"
        "</firewall>\n");
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) back =
        qubes_fw_from_xml(xml, strlen(xml), "firewall.xml", &err);
    g_assert_no_error(err);
    g_assert_cmpint(back->len, ==, 3);
    g_autofree char *a0 = qubes_fw_rule_api(back->pdata[0], NOW);
    g_assert_cmpstr(a0, ==,
                    "action=accept dsthost=example.com proto=tcp "
                    "dstports=443-443 comment=web: port 443 [x]");
}

/* Qubes before 4.0: policy, dns and icmp attributes, rules of the other
 * action; a planted file that is not one is refused naming it. */
static void test_xml_v1_and_bad(void)
{
    const char *v1 = "<QubesFirewallRules policy=\"deny\" dns=\"allow\" "
                     "icmp=\"deny\"><rule address=\"1.2.3.4\" "
                     "port=\"22\"/><rule address=\"10.0.0.0\" "
                     "netmask=\"8\" proto=\"udp\" port=\"53\" "
                     "toport=\"54\"/></QubesFirewallRules>";
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) rules =
        qubes_fw_from_xml(v1, strlen(v1), "firewall.xml", &err);
    g_assert_no_error(err);
    const char *want[] = {
        "action=accept specialtarget=dns",
        "action=drop proto=icmp",
        "action=accept dst4=1.2.3.4/32 proto=tcp dstports=22-22",
        "action=accept dst4=10.0.0.0/8 proto=udp dstports=53-54",
    };
    g_assert_cmpint(rules->len, ==, G_N_ELEMENTS(want));
    for (guint i = 0; i < rules->len; i++) {
        g_autofree char *api = qubes_fw_rule_api(rules->pdata[i], NOW);
        g_assert_cmpstr(api, ==, want[i]);
    }
    const char *planted[] = {
        "not xml",
        "<firewall version=\"3\"/>",
        "<firewall version=\"2\"><rules><rule><properties><property "
        "name=\"action\">maybe</property></properties></rule></rules>"
        "</firewall>",
        "<firewall version=\"2\"><rules><rule><properties><property "
        "name=\"dsthost\">../../etc</property></properties></rule></rules>"
        "</firewall>",
        "<!DOCTYPE x [<!ENTITY e SYSTEM \"/etc/passwd\">]><firewall "
        "version=\"2\"><rules><rule><properties><property "
        "name=\"action\">&e;</property></properties></rule></rules>"
        "</firewall>",
    };
    for (guint i = 0; i < G_N_ELEMENTS(planted); i++) {
        g_autoptr(GError) e = NULL;
        g_assert_null(qubes_fw_from_xml(planted[i], strlen(planted[i]),
                                        "/q/firewall.xml", &e));
        g_assert_nonnull(e);
        g_assert_true(g_str_has_prefix(e->message, "/q/firewall.xml: "));
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/firewall/good", test_good);
    g_test_add_func("/firewall/bad", test_bad);
    g_test_add_func("/firewall/expired", test_expired);
    g_test_add_func("/firewall/xml", test_xml);
    g_test_add_func("/firewall/xml-v1-and-bad", test_xml_v1_and_bad);
    return g_test_run();
}
