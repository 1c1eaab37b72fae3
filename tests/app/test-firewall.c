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

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/firewall/good", test_good);
    g_test_add_func("/firewall/bad", test_bad);
    g_test_add_func("/firewall/expired", test_expired);
    return g_test_run();
}
