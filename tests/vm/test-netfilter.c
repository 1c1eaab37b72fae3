/* test-netfilter: a qube's firewall rules as nftables commands
 * (src/vm/netfilter.c), checked as text and run by the kernel in a
 * private network namespace (root: CI runs as root; elsewhere the
 * kernel cases skip unless CI=true, where they fail). */
#include "firewall.h"
#include "netfilter.h"

#include <sched.h>
#include <string.h>

#define NOW G_GINT64_CONSTANT(1700000000)

static gboolean have_netns;

static GPtrArray *rules_of(const char *const *lines)
{
    GPtrArray *rules =
        g_ptr_array_new_with_free_func((GDestroyNotify)qubes_fw_rule_free);
    for (guint i = 0; lines[i]; i++) {
        g_autoptr(GError) err = NULL;
        QubesFwRule *r = qubes_fw_rule_parse(lines[i], &err);
        g_assert_no_error(err);
        g_ptr_array_add(rules, r);
    }
    return rules;
}

static void client(QubesNfClient *c, guint qid, const char *const *lines,
                   const char *dns)
{
    memset(c, 0, sizeof *c);
    c->qid = qid;
    c->tap = qubes_nf_tap_name(qid);
    c->rules = rules_of(lines);
    c->dns = g_strsplit(dns, " ", -1);
}

/* The chain's rules as the script writes them: the lines after its
 * flush, up to its map element. */
static char *chain_rules(const char *script, guint qid)
{
    g_autofree char *prefix =
        g_strdup_printf("add rule bridge qubes-firewall qube-%u ", qid);
    g_auto(GStrv) lines = g_strsplit(script, "\n", -1);
    GString *out = g_string_new(NULL);
    for (guint i = 0; lines[i]; i++)
        if (g_str_has_prefix(lines[i], prefix))
            g_string_append_printf(out, "%s\n", lines[i] + strlen(prefix));
    return g_string_free(out, FALSE);
}

static void test_render(void)
{
    static const char *const lines[] = {
        "action=accept dst4=192.168.0.1 proto=tcp dstports=443",
        "action=accept dst6=2001:db8::/32 proto=udp dstports=53-60",
        "action=accept specialtarget=dns",
        "action=accept proto=udp specialtarget=dns",
        "action=accept proto=icmp icmptype=8",
        "action=drop proto=tcp dstports=65536",
        "action=drop proto=tcp dstports=1000-65536",
        "action=drop expire=1600000000 proto=udp",
        "action=accept expire=1800000000 proto=udp comment=later",
        "action=drop dst4=10.0.0.0/8",
        "action=accept",
        NULL,
    };
    QubesNfClient c;
    client(&c, 7, lines, "10.139.1.1 10.139.1.2");
    g_autoptr(GError) err = NULL;
    g_autofree char *script = qubes_nf_client_script(&c, NOW, &err);
    g_assert_no_error(err);
    g_autofree char *got = chain_rules(script, 7);
    g_assert_cmpstr(
        got, ==,
        "ether type arp accept\n"
        "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, "
        "nd-router-solicit } accept\n"
        "ip daddr { 192.168.0.1/32 } meta l4proto tcp th dport 443 accept\n"
        "ip6 daddr { 2001:db8::/32 } meta l4proto udp th dport 53-60 accept\n"
        "ip daddr { 10.139.1.1, 10.139.1.2 } meta l4proto { tcp, udp } th "
        "dport 53 accept\n"
        "ip daddr { 10.139.1.1, 10.139.1.2 } meta l4proto udp th dport 53 "
        "accept\n"
        "meta l4proto icmp icmp type 8 accept\n"
        "meta l4proto ipv6-icmp icmpv6 type 8 accept\n"
        /* port 65536 alone matches nothing; a range is cut at 65535 */
        "meta l4proto tcp th dport 1000-65535 drop\n"
        /* the expired rule is gone, the later one kept */
        "meta l4proto udp accept\n"
        "ip daddr { 10.0.0.0/8 } drop\n"
        "accept\n"
        "drop\n");
    g_assert_true(strstr(script, "add element bridge qubes-firewall clients { "
                                 "\"qcli7\" : jump qube-7 }\n"));
    qubes_nf_client_clear(&c);
}

static void test_unresolved_fails_closed(void)
{
    static const char *const lines[] = {
        "action=accept dsthost=example.com",
        "action=accept",
        NULL,
    };
    QubesNfClient c;
    client(&c, 9, lines, "");
    /* not resolved: drop-all, and the cause */
    g_autoptr(GError) err = NULL;
    g_autofree char *script = qubes_nf_client_script(&c, NOW, &err);
    g_assert_nonnull(err);
    g_assert_nonnull(strstr(err->message, "example.com"));
    g_autofree char *got = chain_rules(script, 9);
    g_assert_cmpstr(got, ==,
                    "ether type arp accept\n"
                    "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, "
                    "nd-router-solicit } accept\n"
                    "drop\n");
    /* resolved: its addresses, both families */
    c.resolved = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                       (GDestroyNotify)g_strfreev);
    const char *addrs[] = {"93.184.216.34", "2606:2800:220:1::1", NULL};
    g_hash_table_insert(c.resolved, g_strdup("example.com"),
                        g_strdupv((char **)addrs));
    g_autofree char *script2 = qubes_nf_client_script(&c, NOW, NULL);
    g_autofree char *got2 = chain_rules(script2, 9);
    g_assert_nonnull(strstr(got2, "ip daddr { 93.184.216.34 } accept\n"
                                  "ip6 daddr { 2606:2800:220:1::1 } accept\n"
                                  "accept\ndrop\n"));
    qubes_nf_client_clear(&c);
}

static void test_resolve(void)
{
    static const char *const lines[] = {"action=accept dsthost=localhost",
                                        NULL};
    QubesNfClient c;
    client(&c, 3, lines, "");
    g_autoptr(GError) err = NULL;
    g_assert_true(qubes_nf_resolve(&c, &err));
    g_assert_no_error(err);
    char **addrs = g_hash_table_lookup(c.resolved, "localhost");
    g_assert_nonnull(addrs);
    g_assert_true(g_strv_contains((const char *const *)addrs, "127.0.0.1"));
    qubes_nf_client_clear(&c);

    static const char *const bad[] = {
        "action=accept dsthost=no-such-host.invalid", NULL};
    client(&c, 3, bad, "");
    g_assert_false(qubes_nf_resolve(&c, &err));
    g_assert_nonnull(strstr(err->message, "no-such-host.invalid"));
    qubes_nf_client_clear(&c);
}

/* ---- in the kernel ---- */

static char *nft_list(void)
{
    g_autofree char *out = NULL;
    g_autofree char *errout = NULL;
    int status = 0;
    const char *argv[] = {"nft",    "list",           "table",
                          "bridge", "qubes-firewall", NULL};
    if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL,
                      NULL, &out, &errout, &status, NULL) ||
        !g_spawn_check_wait_status(status, NULL))
        return g_strdup("");
    return g_steal_pointer(&out);
}

static gboolean need_netns(void)
{
    if (have_netns)
        return TRUE;
    if (g_getenv("CI"))
        g_error("no private network namespace (root needed)");
    g_test_skip("no private network namespace (not root)");
    return FALSE;
}

static void test_kernel_takes_every_form(void)
{
    if (!need_netns())
        return;
    static const char *const lines[] = {
        "action=accept dst4=192.168.0.1 proto=tcp dstports=443",
        "action=accept dst4=10.1.2.3/8",
        "action=accept dst6=2001:db8::1/32 proto=udp dstports=53-60",
        "action=accept dst6=::1",
        "action=accept specialtarget=dns",
        "action=accept proto=tcp specialtarget=dns",
        "action=accept proto=icmp specialtarget=dns",
        "action=accept proto=icmp icmptype=8",
        "action=accept proto=icmp",
        "action=accept proto=icmp dst6=fe80::/10",
        "action=drop proto=tcp dstports=0-65536",
        "action=drop proto=udp",
        "action=accept dsthost=localhost",
        "action=drop",
        NULL,
    };
    QubesNfClient c;
    client(&c, 12, lines, "10.139.1.1 10.139.1.2 fd09:24ef:4179::a8b:1");
    g_autoptr(GError) err = NULL;
    g_assert_true(qubes_nf_resolve(&c, &err));
    g_autofree char *reset = qubes_nf_reset_script();
    g_assert_true(qubes_nf_run(reset, &err));
    g_assert_no_error(err);
    g_autofree char *script = qubes_nf_client_script(&c, NOW, &err);
    g_assert_no_error(err);
    g_assert_true(qubes_nf_run(script, &err));
    g_assert_no_error(err);
    /* again: the same chain, not a second one */
    g_assert_true(qubes_nf_run(script, &err));
    g_autofree char *list = nft_list();
    g_assert_nonnull(strstr(list, "\"qcli12\" : jump qube-12"));
    g_assert_nonnull(strstr(list, "iifname vmap @clients"));
    /* before br_netfilter (priority 0), which would hide bridged IPv4
     * frames from a chain of its priority */
    g_assert_nonnull(strstr(list, "hook forward priority filter;"));
    g_assert_nonnull(strstr(list, "ip daddr 10.0.0.0/8 accept"));
    g_assert_nonnull(strstr(list, "fd09:24ef:4179::a8b:1"));
    gchar *first = strstr(list, "chain qube-12");
    g_assert_nonnull(first);
    g_assert_null(strstr(first + 1, "chain qube-12"));
    g_assert_null(strstr(list, "th dport 0-65536"));
    /* removed, and removing again is no error */
    g_autofree char *rm = qubes_nf_remove_script(12);
    g_assert_true(qubes_nf_run(rm, &err));
    g_assert_no_error(err);
    g_assert_true(qubes_nf_run(rm, &err));
    g_free(list);
    list = nft_list();
    g_assert_null(strstr(list, "qube-12"));
    g_assert_null(strstr(list, "qcli12"));
    qubes_nf_client_clear(&c);
}

/* A huge list (what 64 KiB of Set can hold and more) is one transaction. */
static void test_kernel_huge_list(void)
{
    if (!need_netns())
        return;
    g_autoptr(GPtrArray) lines = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i < 5000; i++)
        g_ptr_array_add(lines, g_strdup_printf("action=drop dst4=10.%u.%u.%u "
                                               "proto=tcp dstports=%u",
                                               i >> 16, (i >> 8) & 255, i & 255,
                                               1 + i));
    g_ptr_array_add(lines, g_strdup("action=accept"));
    g_ptr_array_add(lines, NULL);
    QubesNfClient c;
    client(&c, 13, (const char *const *)lines->pdata, "");
    g_autoptr(GError) err = NULL;
    g_autofree char *script = qubes_nf_client_script(&c, NOW, &err);
    gint64 t0 = g_get_monotonic_time();
    g_assert_true(qubes_nf_run(script, &err));
    g_assert_no_error(err);
    g_test_message("5001 rules in %.1f ms",
                   (g_get_monotonic_time() - t0) / 1000.0);
    g_autofree char *list = nft_list();
    g_assert_nonnull(strstr(list, "ip daddr 10.0.19.135 tcp dport 5000 drop"));
    g_autofree char *rm = qubes_nf_remove_script(13);
    g_assert_true(qubes_nf_run(rm, &err));
    qubes_nf_client_clear(&c);
}

static void test_kernel_refusal_changes_nothing(void)
{
    if (!need_netns())
        return;
    static const char *const lines[] = {"action=drop proto=udp", NULL};
    QubesNfClient c;
    client(&c, 14, lines, "");
    g_autoptr(GError) err = NULL;
    g_autofree char *script = qubes_nf_client_script(&c, NOW, &err);
    g_assert_true(qubes_nf_run(script, &err));
    g_autofree char *before = nft_list();
    /* a transaction that fails at its end leaves what was */
    g_autofree char *bad = g_strconcat(script,
                                       "add rule bridge qubes-firewall "
                                       "no-such-chain drop\n",
                                       NULL);
    g_assert_false(qubes_nf_run(bad, &err));
    g_assert_nonnull(strstr(err->message, "nftables: "));
    g_autofree char *after = nft_list();
    g_assert_cmpstr(before, ==, after);
    g_autofree char *rm = qubes_nf_remove_script(14);
    g_assert_true(qubes_nf_run(rm, NULL));
    qubes_nf_client_clear(&c);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    /* the kernel cases run in a network namespace of their own */
    have_netns = unshare(CLONE_NEWNET) == 0;
    g_test_add_func("/netfilter/render", test_render);
    g_test_add_func("/netfilter/unresolved-fails-closed",
                    test_unresolved_fails_closed);
    g_test_add_func("/netfilter/resolve", test_resolve);
    g_test_add_func("/netfilter/kernel/every-form",
                    test_kernel_takes_every_form);
    g_test_add_func("/netfilter/kernel/huge-list", test_kernel_huge_list);
    g_test_add_func("/netfilter/kernel/refusal-changes-nothing",
                    test_kernel_refusal_changes_nothing);
    return g_test_run();
}
