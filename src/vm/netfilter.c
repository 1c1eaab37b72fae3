/* netfilter.c: a qube's firewall rules as nftables commands on its link,
 * run with libnftables. See netfilter.h. */
#include "netfilter.h"

#include "firewall.h"
#include "qubes-error.h"

#include <netdb.h>
#include <nftables/libnftables.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>

#define T "bridge " QUBES_NF_TABLE

char *qubes_nf_tap_name(guint qid)
{
    return g_strdup_printf("qcli%u", qid);
}

void qubes_nf_client_clear(QubesNfClient *c)
{
    g_free(c->tap);
    if (c->rules)
        g_ptr_array_unref(c->rules);
    g_strfreev(c->dns);
    if (c->resolved)
        g_hash_table_unref(c->resolved);
    memset(c, 0, sizeof *c);
}

/* ---- host names ---- */

static GStrv resolve_one(const char *name, GError **error)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(name, NULL, &hints, &res);
    if (rc != 0) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                    "cannot resolve %s: %s", name, gai_strerror(rc));
        return NULL;
    }
    g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func(g_free);
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        char buf[INET6_ADDRSTRLEN];
        const void *addr =
            a->ai_family == AF_INET
                ? (const void *)&((struct sockaddr_in *)a->ai_addr)->sin_addr
                : (const void *)&((struct sockaddr_in6 *)a->ai_addr)->sin6_addr;
        if ((a->ai_family != AF_INET && a->ai_family != AF_INET6) ||
            !inet_ntop(a->ai_family, addr, buf, sizeof buf))
            continue;
        gboolean seen = FALSE;
        for (guint i = 0; i < out->len && !seen; i++)
            seen = strcmp(out->pdata[i], buf) == 0;
        if (!seen)
            g_ptr_array_add(out, g_strdup(buf));
    }
    freeaddrinfo(res);
    g_ptr_array_add(out, NULL);
    return (GStrv)g_ptr_array_free(g_steal_pointer(&out), FALSE);
}

gboolean qubes_nf_resolve(QubesNfClient *c, GError **error)
{
    if (!c->resolved)
        c->resolved = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                            (GDestroyNotify)g_strfreev);
    for (guint i = 0; c->rules && i < c->rules->len; i++) {
        const QubesFwRule *r = c->rules->pdata[i];
        if (r->dsttype != QUBES_FW_DSTHOST ||
            g_hash_table_contains(c->resolved, r->dsthost))
            continue;
        GStrv addrs = resolve_one(r->dsthost, error);
        if (!addrs)
            return FALSE;
        g_hash_table_insert(c->resolved, g_strdup(r->dsthost), addrs);
    }
    return TRUE;
}

/* ---- the commands ---- */

/* The base chains at the bridge family's filter priority (-200): before
 * br_netfilter (0), which takes a bridged IPv4 frame at its priority
 * and hands it on to the hooks after it only, so that a chain of its
 * priority registered after its own would never see the frame. */
static const char base[] =
    "add table " T "\n"
    "add map " T " clients { type ifname : verdict ; }\n"
    "add chain " T " forward { type filter hook forward priority -200 ; "
    "policy accept ; }\n"
    "add chain " T " input { type filter hook input priority -200 ; "
    "policy accept ; }\n"
    "flush chain " T " forward\n"
    "add rule " T " forward iifname vmap @clients\n"
    "flush chain " T " input\n"
    "add rule " T " input iifname vmap @clients\n";

char *qubes_nf_reset_script(void)
{
    /* "add" first so that "delete" finds a table to delete */
    return g_strconcat("add table " T "\ndelete table " T "\n", base, NULL);
}

char *qubes_nf_remove_script(guint qid)
{
    g_autofree char *tap = qubes_nf_tap_name(qid);
    /* made first, so that the deletions find what they delete */
    return g_strdup_printf("%s"
                           "add chain " T " qube-%u\n"
                           "add element " T " clients { \"%s\" : jump "
                           "qube-%u }\n"
                           "delete element " T " clients { \"%s\" }\n"
                           "flush chain " T " qube-%u\n"
                           "delete chain " T " qube-%u\n",
                           base, qid, tap, qid, tap, qid, qid);
}

/* The addresses of @addrs of one family (v6: those with a ':') as an
 * nft set, or NULL when there is none. */
static char *addr_set(const char *const *addrs, gboolean v6)
{
    g_autoptr(GPtrArray) pick = g_ptr_array_new();
    for (guint i = 0; addrs && addrs[i]; i++)
        if (*addrs[i] && (strchr(addrs[i], ':') != NULL) == v6)
            g_ptr_array_add(pick, (gpointer)addrs[i]);
    if (!pick->len)
        return NULL;
    GString *s = g_string_new("{ ");
    for (guint i = 0; i < pick->len; i++)
        g_string_append_printf(s, "%s%s", i ? ", " : "",
                               (char *)pick->pdata[i]);
    g_string_append(s, " }");
    return g_string_free(s, FALSE);
}

/* " th dport ..." for @r's ports (the reference allows 65536, which no
 * packet has: a range is cut at 65535). */
static void add_ports(GString *out, const QubesFwRule *r)
{
    guint hi = MIN(r->port_hi, 65535);
    if (r->port_lo == hi)
        g_string_append_printf(out, " th dport %u", hi);
    else
        g_string_append_printf(out, " th dport %u-%u", r->port_lo, hi);
}

/* @r in one family (IPv6 when @v6) toward @dst (an nft set of that
 * family's addresses, NULL: anywhere), appended to @out. */
static void add_family_rule(GString *out, guint qid, const QubesFwRule *r,
                            gboolean v6, const char *dst)
{
    g_string_append_printf(out, "add rule " T " qube-%u", qid);
    if (dst)
        g_string_append_printf(out, " %s daddr %s", v6 ? "ip6" : "ip", dst);
    if (r->proto && strcmp(r->proto, "icmp") == 0) {
        g_string_append(out,
                        v6 ? " meta l4proto ipv6-icmp" : " meta l4proto icmp");
        if (r->icmptype)
            g_string_append_printf(out, " %s type %s", v6 ? "icmpv6" : "icmp",
                                   r->icmptype);
    } else if (r->proto) {
        g_string_append_printf(out, " meta l4proto %s", r->proto);
    } else if (r->specialtarget) {
        g_string_append(out, " meta l4proto { tcp, udp }");
    }
    gboolean ports = !r->proto || strcmp(r->proto, "icmp") != 0;
    if (r->specialtarget && ports)
        g_string_append(out, " th dport 53");
    else if (r->dstports)
        add_ports(out, r);
    g_string_append_printf(out, " %s\n", r->action);
}

/* The rule @r for both families; FALSE when it names a host that was not
 * resolved. */
static gboolean add_rule(GString *out, const QubesNfClient *c,
                         const QubesFwRule *r, GError **error)
{
    const char *const *addrs = NULL;
    const char *one[2] = {r->dsthost, NULL};
    if (r->specialtarget) {
        /* the qube's DNS servers, port 53 (the reference's agent: the
         * netvm's resolv.conf, which the qube's DNS addresses reach) */
        addrs = (const char *const *)c->dns;
        if (!addrs || !addrs[0])
            return TRUE; /* no DNS: matches nothing */
    } else if (r->dsttype == QUBES_FW_DSTHOST) {
        addrs =
            c->resolved ? g_hash_table_lookup(c->resolved, r->dsthost) : NULL;
        if (!addrs) {
            g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                        "%s not resolved", r->dsthost);
            return FALSE;
        }
    } else if (r->dsttype == QUBES_FW_DST4 || r->dsttype == QUBES_FW_DST6) {
        addrs = one;
    }
    if (r->dstports && r->port_lo > 65535)
        return TRUE; /* port 65536: matches no packet */
    gboolean icmp = r->proto && strcmp(r->proto, "icmp") == 0;
    if (!addrs && !icmp) {
        /* no destination, not ICMP: one rule for every family */
        g_string_append_printf(out, "add rule " T " qube-%u", c->qid);
        if (r->proto)
            g_string_append_printf(out, " meta l4proto %s", r->proto);
        if (r->dstports)
            add_ports(out, r);
        g_string_append_printf(out, " %s\n", r->action);
        return TRUE;
    }
    for (int v6 = 0; v6 <= 1; v6++) {
        g_autofree char *set = addrs ? addr_set(addrs, v6) : NULL;
        if (addrs && !set)
            continue; /* none of this family */
        add_family_rule(out, c->qid, r, v6, set);
    }
    return TRUE;
}

char *qubes_nf_client_script(const QubesNfClient *c, gint64 now, GError **error)
{
    g_autofree char *tap = qubes_nf_tap_name(c->qid);
    GString *out = g_string_new(base);
    g_string_append_printf(out,
                           "add chain " T " qube-%u\n"
                           "flush chain " T " qube-%u\n"
                           "add rule " T " qube-%u ether type arp accept\n"
                           "add rule " T " qube-%u icmpv6 type { "
                           "nd-neighbor-solicit, nd-neighbor-advert, "
                           "nd-router-solicit } accept\n",
                           c->qid, c->qid, c->qid, c->qid);
    gsize rules_at = out->len;
    GError *err = NULL;
    for (guint i = 0; c->rules && i < c->rules->len && !err; i++) {
        const QubesFwRule *r = c->rules->pdata[i];
        if (r->expire && r->expire_at < now)
            continue;
        add_rule(out, c, r, &err);
    }
    if (err) { /* fail closed: nothing but the link's own traffic */
        g_string_truncate(out, rules_at);
        g_propagate_error(error, err);
    }
    /* the reference's policy: always drop */
    g_string_append_printf(out,
                           "add rule " T " qube-%u drop\n"
                           "add element " T " clients { \"%s\" : jump "
                           "qube-%u }\n",
                           c->qid, tap, c->qid);
    return g_string_free(out, FALSE);
}

/* ---- running them ---- */

static GMutex nf_lock;

gboolean qubes_nf_run(const char *script, GError **error)
{
    g_mutex_lock(&nf_lock);
    struct nft_ctx *nft = nft_ctx_new(NFT_CTX_DEFAULT);
    gboolean ok = FALSE;
    if (!nft) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                    "nftables: cannot make a context");
    } else {
        nft_ctx_buffer_output(nft);
        nft_ctx_buffer_error(nft);
        ok = nft_run_cmd_from_buffer(nft, script) == 0;
        if (!ok) {
            const char *msg = nft_ctx_get_error_buffer(nft);
            g_autofree char *m = g_strstrip(g_strdup(msg ? msg : ""));
            g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                        "nftables: %s", *m ? m : "the transaction failed");
        }
        nft_ctx_free(nft);
    }
    g_mutex_unlock(&nf_lock);
    return ok;
}

void qubes_nf_drop_table(void)
{
    g_autoptr(GError) err = NULL;
    if (!qubes_nf_run("delete table " T "\n", &err))
        g_debug("no firewall table to drop: %s", err->message);
}
