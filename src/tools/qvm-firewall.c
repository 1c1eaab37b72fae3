/* qvm-firewall: show or change a qube's firewall rules
 * (admin.vm.firewall.*), with the reference client's syntax:
 *
 *   qvm-firewall [--raw] [--reload] VMNAME [list]
 *   qvm-firewall VMNAME add [--before N] RULE...
 *   qvm-firewall VMNAME del [--rule-no N | RULE...]
 *
 * A RULE is given as words, positional or KEY=VALUE, mixed:
 *   <action> [<dsthost> [<proto> [<dstports>|<icmptype>]]]
 *   action=accept|drop [dsthost=H] [dst4=A] [dst6=A] [proto=tcp|udp|icmp]
 *   [dstports=N[-M]] [icmptype=N] [specialtarget=dns]
 *   [expire=EPOCH|+SECONDS] [comment=TEXT]
 * Every rule is checked here as qubesd checks it (firewall.h), so a bad
 * one is refused before anything is sent; add and del send the whole
 * list back with admin.vm.firewall.Set.
 */
#include "firewall.h"
#include "tool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char prog[] = "qvm-firewall";

/* The words of a rule (the client's RuleAction) as one API line, checked
 * by the reference's rules; NULL with the reason. */
static QubesFwRule *rule_of_words(char **words, int n, GError **error)
{
    const char *order[] = {"action", "dsthost", "proto", "dstports",
                           "icmptype"};
    gboolean used[G_N_ELEMENTS(order)] = {FALSE};
    const char *keys[16] = {NULL};
    g_autoptr(GPtrArray) values = g_ptr_array_new_with_free_func(g_free);
    int nkeys = 0;
    for (int i = 0; i < n; i++) {
        g_auto(GStrv) kv = g_strsplit(words[i], "=", -1);
        guint parts = g_strv_length(kv);
        const char *key = NULL;
        const char *value = NULL;
        if (parts == 2) {
            key = kv[0];
            value = kv[1];
        } else if (parts == 1) {
            for (guint o = 0; o < G_N_ELEMENTS(order) && !key; o++)
                if (!used[o])
                    key = order[o];
            value = kv[0];
        }
        if (!key) {
            g_set_error(error, QA_ERROR, QA_ERROR_PROTOCOL,
                        "invalid rule description: %s", words[i]);
            return NULL;
        }
        if (strcmp(key, "dst4") == 0 || strcmp(key, "dst6") == 0)
            key = "dsthost";
        key = g_intern_string(key); /* kv goes with this word */
        static const char *const allowed[] = {
            "action",        "dsthost", "proto",  "dstports", "icmptype",
            "specialtarget", "comment", "expire", NULL};
        if (!g_strv_contains(allowed, key)) {
            g_set_error(error, QA_ERROR, QA_ERROR_PROTOCOL,
                        "Invalid rule element: %s", words[i]);
            return NULL;
        }
        g_autofree char *v = g_strdup(value);
        if (strcmp(key, "expire") == 0 && value[0] == '+') {
            char *end = NULL;
            gint64 secs = g_ascii_strtoll(value + 1, &end, 10);
            if (!*(value + 1) || *end || secs < 0) {
                g_set_error(error, QA_ERROR, QA_ERROR_PROTOCOL,
                            "invalid expire: %s", value);
                return NULL;
            }
            g_free(v);
            v = g_strdup_printf("%" G_GINT64_FORMAT,
                                g_get_real_time() / G_USEC_PER_SEC + secs);
        }
        /* a later word of the same key wins, as in the client's dict */
        int at = -1;
        for (int k = 0; k < nkeys; k++)
            if (strcmp(keys[k], key) == 0)
                at = k;
        if (at < 0) {
            if (nkeys == G_N_ELEMENTS(keys))
                break;
            keys[nkeys++] = key;
            g_ptr_array_add(values, g_steal_pointer(&v));
        } else {
            g_free(values->pdata[at]);
            values->pdata[at] = g_steal_pointer(&v);
        }
        for (guint o = 0; o < G_N_ELEMENTS(order); o++)
            if (strcmp(order[o], key) == 0)
                used[o] = TRUE;
        if (strcmp(key, "proto") == 0 &&
            (strcmp(value, "tcp") == 0 || strcmp(value, "udp") == 0))
            used[4] = TRUE; /* icmptype */
        else if (strcmp(key, "proto") == 0 && strcmp(value, "icmp") == 0)
            used[3] = TRUE; /* dstports */
    }
    /* one API line, the comment last (it may hold spaces) */
    GString *line = g_string_new(NULL);
    const char *comment = NULL;
    for (int k = 0; k < nkeys; k++) {
        if (strcmp(keys[k], "comment") == 0) {
            comment = values->pdata[k];
            continue;
        }
        g_string_append_printf(line, "%s%s=%s", line->len ? " " : "", keys[k],
                               (char *)values->pdata[k]);
    }
    if (comment)
        g_string_append_printf(line, "%scomment=%s", line->len ? " " : "",
                               comment);
    g_autofree char *text = g_string_free(line, FALSE);
    return qubes_fw_rule_parse(text, error);
}

static GPtrArray *get_rules(const char *vm, GError **error)
{
    g_autofree char *text =
        qa_call("admin.vm.firewall.Get", vm, NULL, NULL, error);
    if (!text)
        return NULL;
    GPtrArray *rules =
        g_ptr_array_new_with_free_func((GDestroyNotify)qubes_fw_rule_free);
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    for (guint i = 0; lines[i]; i++) {
        if (!*lines[i])
            continue;
        QubesFwRule *r = qubes_fw_rule_parse(lines[i], error);
        if (!r) {
            g_prefix_error(error, "qubesd's rule '%s': ", lines[i]);
            g_ptr_array_unref(rules);
            return NULL;
        }
        g_ptr_array_add(rules, r);
    }
    return rules;
}

static int set_rules(const char *vm, GPtrArray *rules)
{
    gint64 now = g_get_real_time() / G_USEC_PER_SEC;
    GString *payload = g_string_new(NULL);
    for (guint i = 0; i < rules->len; i++) {
        g_autofree char *line = qubes_fw_rule_api(rules->pdata[i], now);
        if (line)
            g_string_append_printf(payload, "%s\n", line);
    }
    g_autofree char *text = g_string_free(payload, FALSE);
    g_autoptr(GError) err = NULL;
    g_autofree char *r = qa_call("admin.vm.firewall.Set", vm, NULL, text, &err);
    return r ? 0 : qa_fail(prog, err);
}

/* The client's Rule.rule: its own order, the ports always a range. */
static char *raw_line(const QubesFwRule *r)
{
    GString *s = g_string_new("action=");
    g_string_append(s, r->action);
    if (r->proto)
        g_string_append_printf(s, " proto=%s", r->proto);
    if (r->dsthost) {
        const char *k = r->dsttype == QUBES_FW_DST4   ? "dst4"
                        : r->dsttype == QUBES_FW_DST6 ? "dst6"
                                                      : "dsthost";
        /* 0.0.0.0/0 and ::/0 limit nothing: the client leaves them out */
        if (r->dsttype == QUBES_FW_DSTHOST ||
            !g_str_has_suffix(r->dsthost, "/0"))
            g_string_append_printf(s, " %s=%s", k, r->dsthost);
    }
    if (r->dstports)
        g_string_append_printf(s, " dstports=%u-%u", r->port_lo, r->port_hi);
    if (r->icmptype)
        g_string_append_printf(s, " icmptype=%s", r->icmptype);
    if (r->specialtarget)
        g_string_append_printf(s, " specialtarget=%s", r->specialtarget);
    if (r->expire)
        g_string_append_printf(s, " expire=%s", r->expire);
    if (r->comment)
        g_string_append_printf(s, " comment=%s", r->comment);
    return g_string_free(s, FALSE);
}

static const char *or_dash(const char *v)
{
    return v ? v : "-";
}

static void list_table(GPtrArray *rules)
{
    g_autoptr(Table) t =
        table_new(9, "NO", "ACTION", "HOST", "PROTOCOL", "PORT(S)",
                  "SPECIAL TARGET", "ICMP TYPE", "EXPIRE", "COMMENT", NULL);
    gint64 now = g_get_real_time() / G_USEC_PER_SEC;
    for (guint i = 0; i < rules->len; i++) {
        const QubesFwRule *r = rules->pdata[i];
        g_autofree char *no = g_strdup_printf("%u", i);
        /* the client's pretty values: a single port as itself, the time
         * left before the rule expires as +Ns */
        g_autofree char *ports =
            !r->dstports ? NULL
            : r->port_lo == r->port_hi
                ? g_strdup_printf("%u", r->port_lo)
                : g_strdup_printf("%u-%u", r->port_lo, r->port_hi);
        g_autofree char *expire =
            r->expire
                ? g_strdup_printf("%+" G_GINT64_FORMAT "s", r->expire_at - now)
                : NULL;
        table_add(t, no, r->action, or_dash(r->dsthost), or_dash(r->proto),
                  or_dash(ports), or_dash(r->specialtarget),
                  or_dash(r->icmptype), or_dash(expire), or_dash(r->comment),
                  NULL);
    }
    table_print(t);
}

int main(int argc, char **argv)
{
    gboolean raw = FALSE, reload = FALSE;
    int before = -1, rule_no = -1;
    gboolean before_set = FALSE, rule_no_set = FALSE;
    g_autofree char *before_s = NULL, *rule_no_s = NULL;
    GOptionEntry entries[] = {
        {"raw", 0, 0, G_OPTION_ARG_NONE, &raw,
         "Output rules as raw strings, instead of nice table", NULL},
        {"reload", 'r', 0, G_OPTION_ARG_NONE, &reload,
         "Force reloading rules even when unchanged", NULL},
        {"before", 0, 0, G_OPTION_ARG_STRING, &before_s,
         "add: insert before the rule with this number, instead of at the end",
         "N"},
        {"rule-no", 0, 0, G_OPTION_ARG_STRING, &rule_no_s,
         "del: remove the rule with this number", "N"},
        {NULL},
    };
    tool_parse(&argc, &argv, entries, "VMNAME [list|add RULE...|del RULE...]",
               "Show or change the firewall rules of a qube.",
               "Rules can be given as positional arguments:\n"
               "    <action> [<dsthost> [<proto> [<dstports>|<icmptype>]]]\n"
               "\n"
               "And as keyword arguments:\n"
               "    action=<action> [specialtarget=dns] [dsthost=<dsthost>]\n"
               "    [proto=<proto>] [dstports=<dstports>] "
               "[icmptype=<icmptype>]\n"
               "    [expire=<expire>] [comment=<comment>]\n"
               "\n"
               "    action         accept or drop\n"
               "    dst4, dst6     synonyms for dsthost\n"
               "    dsthost        IP, network or hostname (10.5.3.2, "
               "192.168.0.0/16,\n"
               "                   www.example.com, fd00::/8)\n"
               "    dstports       port or port range (443 or 1200-1400)\n"
               "    icmptype       icmp type number (8 for echo requests)\n"
               "    proto          icmp, tcp or udp\n"
               "    specialtarget  dns: the qube's DNS servers\n"
               "    expire         when the rule goes, in seconds since "
               "1970, or +seconds\n"
               "                   (+300: in 5 minutes)\n"
               "    comment        text (one argument: quote it)\n");
    for (int pass = 0; pass < 2; pass++) {
        const char *s = pass ? rule_no_s : before_s;
        if (!s)
            continue;
        char *end = NULL;
        gint64 v = g_ascii_strtoll(s, &end, 10);
        if (!*s || *end || v < G_MININT || v > G_MAXINT)
            return tool_usage_error(prog,
                                    "argument --%s: invalid int value: '%s'",
                                    pass ? "rule-no" : "before", s);
        if (pass) {
            rule_no = (int)v;
            rule_no_set = TRUE;
        } else {
            before = (int)v;
            before_set = TRUE;
        }
    }
    if (argc < 2)
        return tool_usage_error(prog,
                                "the following arguments are required: VMNAME");
    const char *vm = argv[1];
    const char *command = argc > 2 ? argv[2] : "list";
    char **words = argv + 3;
    int nwords = argc > 3 ? argc - 3 : 0;
    if (strcmp(command, "list") != 0 && strcmp(command, "add") != 0 &&
        strcmp(command, "del") != 0)
        return tool_usage_error(
            prog,
            "argument command: invalid choice: '%s' (choose "
            "from 'add', 'del', 'list')",
            command);
    if (strcmp(command, "list") == 0 && nwords)
        return tool_usage_error(prog, "unrecognized arguments: %s", words[0]);
    if (before_set && strcmp(command, "add") != 0)
        return tool_usage_error(prog, "--before is an option of add");
    if (rule_no_set && strcmp(command, "del") != 0)
        return tool_usage_error(prog, "--rule-no is an option of del");

    g_autoptr(GError) err = NULL;
    g_autoptr(QubesFwRule) rule = NULL;
    if (nwords) {
        rule = rule_of_words(words, nwords, &err);
        if (!rule) {
            fprintf(stderr, "%s: error: %s\n", prog, err->message);
            return 2;
        }
    } else if (strcmp(command, "add") == 0) {
        return tool_usage_error(prog,
                                "the following arguments are required: rule");
    }
    g_autoptr(GPtrArray) rules = get_rules(vm, &err);
    if (!rules)
        return qa_fail(prog, err);

    if (strcmp(command, "add") == 0) {
        /* Python's list.insert(): clamped, negative from the end */
        gint64 at = rules->len;
        if (before_set) {
            at = before < 0 ? (gint64)rules->len + before : before;
            at = CLAMP(at, 0, (gint64)rules->len);
        }
        g_ptr_array_insert(rules, (gint)at, g_steal_pointer(&rule));
        return set_rules(vm, rules);
    }
    if (strcmp(command, "del") == 0) {
        gint64 now = g_get_real_time() / G_USEC_PER_SEC;
        if (rule_no_set) {
            gint64 at = rule_no < 0 ? (gint64)rules->len + rule_no : rule_no;
            if (at < 0 || at >= (gint64)rules->len) {
                fprintf(stderr, "%s: error: no rule number %d\n", prog,
                        rule_no);
                return 1;
            }
            g_ptr_array_remove_index(rules, (guint)at);
        } else if (rule) {
            g_autofree char *want = qubes_fw_rule_api(rule, now);
            guint i = 0;
            for (; i < rules->len; i++) {
                g_autofree char *have = qubes_fw_rule_api(rules->pdata[i], now);
                if (have && want && strcmp(have, want) == 0)
                    break;
            }
            if (i == rules->len) {
                fprintf(stderr, "%s: error: no such rule: %s\n", prog,
                        want ? want : "(expired)");
                return 1;
            }
            g_ptr_array_remove_index(rules, i);
        } else {
            return tool_usage_error(prog, "del needs a rule or --rule-no");
        }
        return set_rules(vm, rules);
    }
    if (raw) {
        for (guint i = 0; i < rules->len; i++) {
            g_autofree char *line = raw_line(rules->pdata[i]);
            printf("%s\n", line);
        }
    } else {
        list_table(rules);
    }
    if (reload) {
        g_autofree char *r =
            qa_call("admin.vm.firewall.Reload", vm, NULL, NULL, &err);
        if (!r)
            return qa_fail(prog, err);
    }
    return 0;
}
