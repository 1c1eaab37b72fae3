/* qvm-firewall: a qube's firewall rules, as the Qubes client's
 * qvm-firewall (qubesadmin/tools/qvm_firewall.py):
 *
 *   qvm-firewall [--raw] [--reload] VMNAME [list]
 *   qvm-firewall VMNAME add [--before N] RULE...
 *   qvm-firewall VMNAME del [--rule-no N | RULE...]
 *   qvm-firewall VMNAME reset
 *
 * A RULE is words, positional or KEY=VALUE, mixed (the client's
 * RuleAction): <action> [<dsthost> [<proto> [<dstports>|<icmptype>]]]
 * or action=, dsthost=/dst4=/dst6=, proto=, dstports=, icmptype=,
 * specialtarget=dns, expire=EPOCH|+SECONDS, comment=. The rule is
 * checked on the command line as the client checks it (fw-rule.h);
 * add, del and reset send the whole list back (admin.vm.firewall.Set),
 * where qubesd checks it again. The list is the client's table or, with
 * --raw, the API lines.
 *
 * Deliberately different: where the client ends in an uncaught Python
 * exception (a rule element its checks refuse, a rule number past the
 * list, a rule to delete that is not there) we print its last line and
 * exit 1. */
#include "argparse.h"
#include "fw-rule.h"
#include "qubes-app.h"
#include "qubes-args.h"
#include "qubesadmin.h"
#include "tool.h"

#include <stdio.h>
#include <string.h>

static const char epilog[] =
    "\n"
    "Rules can be given as positional arguments:\n"
    "    <action> [<dsthost> [<proto> [<dstports>|<icmptype>]]]\n"
    "\n"
    "And as keyword arguments:\n"
    "    action=<action> [specialtarget=dns] [dsthost=<dsthost>]\n"
    "    [proto=<proto>] [dstports=<dstports>] [icmptype=<icmptype>]\n"
    "    [expire=<expire>]\n"
    "\n"
    "Both formats, positional and keyword arguments, can be used\n"
    "interchangeably.\n"
    "\n"
    "Available matches:\n"
    "    action:        accept or drop\n"
    "    dst4           synonym for dsthost\n"
    "    dst6           synonym for dsthost\n"
    "    dsthost        IP, network or hostname\n"
    "                     (e.g. 10.5.3.2, 192.168.0.0/16,\n"
    "                     www.example.com, fd00::/8)\n"
    "    dstports       port or port range\n"
    "                     (e.g. 443 or 1200-1400)\n"
    "    icmptype       icmp type number (e.g. 8 for echo requests)\n"
    "    proto          icmp, tcp or udp\n"
    "    specialtarget  only the value dns is currently supported,\n"
    "                     it matches the configured dns servers of\n"
    "                     a VM\n"
    "    expire         the rule is automatically removed at the time given "
    "as\n"
    "                     seconds since 1/1/1970, or +seconds (e.g. +300 for "
    "a rule\n"
    "                     to expire in 5 minutes)\n"
    "\n"
    "Comments:\n"
    "    Rules can be annotated with free form text on creation using "
    "[comment=<text>]\n"
    "\n";

static void list_remove(GPtrArray *order, const char *key)
{
    if (!g_ptr_array_remove(order, (gpointer)g_intern_string(key)))
        qubes_args_exit_uncaught("ValueError: list.remove(x): x not in list");
}

/* RuleAction: the words of a rule as the client's Rule, kept in the
 * namespace as its API line (None for no words). */
static void rule_action(ArgsParser *parser, ArgsNamespace *ns,
                        const ArgsAction *action, GPtrArray *values,
                        const char *option_string, gpointer data)
{
    (void)option_string;
    (void)data;
    const char *dest = args_action_dest(action);
    if (!values->len) {
        args_set(ns, dest, args_value_new(ARGV_NONE));
        return;
    }
    static const char *const allowed[] = {
        "action",        "dsthost", "proto",  "dstports", "icmptype",
        "specialtarget", "comment", "expire", NULL};
    /* interned: the assumed order removes by identity */
    g_autoptr(GPtrArray) order = g_ptr_array_new();
    for (guint i = 0; i < 5; i++)
        g_ptr_array_add(order, (gpointer)g_intern_string(allowed[i]));
    g_autoptr(GPtrArray) keys = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GPtrArray) vals = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i < values->len; i++) {
        const char *opt = values->pdata[i];
        if (!*opt)
            qubes_args_exit_uncaught("IndexError: string index out of range");
        if (opt[strlen(opt) - 1] == '=')
            args_error(parser, "invalid rule description: %s", opt);
        g_auto(GStrv) parts = g_strsplit(opt, "=", -1);
        const char *key, *value;
        if (g_strv_length(parts) == 2) {
            key = parts[0];
            value = parts[1];
        } else if (g_strv_length(parts) == 1) {
            if (!order->len)
                qubes_args_exit_uncaught("IndexError: list index out of range");
            key = order->pdata[0];
            value = opt;
        } else {
            args_error(parser, "invalid rule description: %s", opt);
        }
        if (strcmp(key, "dst4") == 0 || strcmp(key, "dst6") == 0)
            key = "dsthost";
        if (!g_strv_contains(allowed, key))
            args_error(parser, "Invalid rule element: %s", opt);
        g_autofree char *v = g_strdup(value);
        if (strcmp(key, "expire") == 0 && value[0] == '+') {
            gint64 secs;
            if (!args_py_int(value + 1, &secs)) {
                g_autofree char *m = args_py_int_error(value + 1);
                qubes_args_exit_uncaught("ValueError: %s", m);
            }
            g_free(v);
            v = g_strdup_printf("%" G_GINT64_FORMAT,
                                g_get_real_time() / G_USEC_PER_SEC + secs);
        }
        g_ptr_array_add(keys, g_strdup(key));
        g_ptr_array_add(vals, g_steal_pointer(&v));
        g_ptr_array_remove(order, (gpointer)g_intern_string(key));
        if (strcmp(key, "proto") == 0 &&
            (strcmp(value, "tcp") == 0 || strcmp(value, "udp") == 0))
            list_remove(order, "icmptype");
        else if (strcmp(key, "proto") == 0 && strcmp(value, "icmp") == 0)
            list_remove(order, "dstports");
    }
    g_autofree char *pyerr = NULL;
    g_autoptr(QaFwRule) rule = qa_fw_rule_from_elements(keys, vals, &pyerr);
    if (!rule)
        qubes_args_exit_uncaught("%s", pyerr);
    ArgValue *line = args_value_new(ARGV_STR);
    line->s = qa_fw_rule_api(rule);
    args_set(ns, dest, line);
}

/* vm.firewall.rules: the rules qubesd holds, as the client reads them
 * (QaFwRule*). */
static GPtrArray *load_rules(const char *vm)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) lines =
        qa_call_lines("admin.vm.firewall.Get", vm, NULL, &err);
    if (!lines)
        qubes_args_print_exception(err);
    GPtrArray *rules =
        g_ptr_array_new_with_free_func((GDestroyNotify)qa_fw_rule_free);
    for (guint i = 0; i < lines->len; i++) {
        g_autofree char *pyerr = NULL;
        QaFwRule *r = qa_fw_rule_parse(lines->pdata[i], &pyerr);
        if (!r)
            qubes_args_exit_uncaught("%s", pyerr);
        g_ptr_array_add(rules, r);
    }
    return rules;
}

/* str.encode('ascii') of @text: the client's UnicodeEncodeError at its
 * first character past ASCII (a byte that is not UTF-8 as Python's
 * surrogate escape holds it). */
static void ascii_or_uncaught(const char *text)
{
    glong pos = 0;
    for (const char *p = text; *p; pos++) {
        if ((unsigned char)*p < 0x80) {
            p++;
            continue;
        }
        gunichar c = g_utf8_get_char_validated(p, -1);
        g_autofree char *ch = NULL;
        if (c == (gunichar)-1 || c == (gunichar)-2)
            ch = g_strdup_printf("\\udc%02x", (unsigned char)*p);
        else if (c < 0x100)
            ch = g_strdup_printf("\\x%02x", c);
        else if (c < 0x10000)
            ch = g_strdup_printf("\\u%04x", c);
        else
            ch = g_strdup_printf("\\U%08x", c);
        qubes_args_exit_uncaught("UnicodeEncodeError: 'ascii' codec can't "
                                 "encode character '%s' in position %ld: "
                                 "ordinal not in range(128)",
                                 ch, pos);
    }
}

/* save_rules(): every rule's API line (char*). */
static void save_rules(const char *vm, GPtrArray *lines)
{
    g_autoptr(GString) payload = g_string_new(NULL);
    for (guint i = 0; i < lines->len; i++)
        g_string_append_printf(payload, "%s\n", (char *)lines->pdata[i]);
    ascii_or_uncaught(payload->str);
    g_autoptr(GError) err = NULL;
    g_autofree char *r =
        qa_call("admin.vm.firewall.Set", vm, NULL, payload->str, &err);
    if (!r)
        qubes_args_print_exception(err);
}

static GPtrArray *api_lines(GPtrArray *rules)
{
    GPtrArray *lines = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i < rules->len; i++)
        g_ptr_array_add(lines, qa_fw_rule_api(rules->pdata[i]));
    return lines;
}

/* Python's list index @i (negative from the end) of a list of @len;
 * -1 when out of range. */
static gint64 py_index(gint64 i, guint len)
{
    if (i < 0)
        i += len;
    return i < 0 || i >= (gint64)len ? -1 : i;
}

static void list_table(GPtrArray *rules)
{
    static const char *const cols[] = {"action",   "dsthost",       "proto",
                                       "dstports", "specialtarget", "icmptype",
                                       "expire",   "comment",       NULL};
    g_autoptr(Table) t =
        table_new(9, "NO", "ACTION", "HOST", "PROTOCOL", "PORT(S)",
                  "SPECIAL TARGET", "ICMP TYPE", "EXPIRE", "COMMENT", NULL);
    for (guint i = 0; i < rules->len; i++) {
        g_autofree char *no = g_strdup_printf("%u", i);
        char *cell[8];
        for (guint c = 0; c < 8; c++)
            cell[c] = qa_fw_rule_pretty(rules->pdata[i], cols[c]);
        table_add(t, no, cell[0], cell[1], cell[2], cell[3], cell[4], cell[5],
                  cell[6], cell[7], NULL);
        for (guint c = 0; c < 8; c++)
            g_free(cell[c]);
    }
    table_print(t);
}

static ArgsParser *make_parser(void)
{
    ArgsParser *p =
        qubes_args_new("qvm-firewall", 1, NULL, epilog, ARGS_FORMAT_RAW_TEXT);
    ArgsAction *sub = args_add_subparsers(p, "command", NULL, NULL, NULL,
                                          "action to perform", FALSE);
    ArgsParser *add = args_add_parser(sub, "add", NULL, "add rule", NULL, NULL,
                                      ARGS_FORMAT_DEFAULT);
    qubes_args_add_common(add);
    args_add(add, &(ArgsSpec){.names = "--before",
                              .is_int = TRUE,
                              .help = "Add rule before rule with given number "
                                      "instead at the end"});
    args_add(add, &(ArgsSpec){.names = "rule",
                              .metavar = "match",
                              .nargs = ARGS_ONE_OR_MORE,
                              .action = ARGS_CALLBACK,
                              .callback = rule_action,
                              .help = "rule description"});
    ArgsParser *del = args_add_parser(sub, "del", NULL, "remove rule", NULL,
                                      NULL, ARGS_FORMAT_DEFAULT);
    qubes_args_add_common(del);
    args_add(del, &(ArgsSpec){.names = "--rule-no",
                              .dest = "rule_no",
                              .is_int = TRUE,
                              .help = "rule number"});
    args_add(del, &(ArgsSpec){.names = "rule",
                              .metavar = "match",
                              .nargs = ARGS_ZERO_OR_MORE,
                              .action = ARGS_CALLBACK,
                              .callback = rule_action,
                              .help = "rule to be removed"});
    ArgsParser *list = args_add_parser(sub, "list", NULL, "list rules", NULL,
                                       NULL, ARGS_FORMAT_DEFAULT);
    qubes_args_add_common(list);
    ArgsParser *reset = args_add_parser(
        sub, "reset", NULL,
        "remove all firewall rules and reset to default (accept all "
        "connections)",
        NULL, NULL, ARGS_FORMAT_DEFAULT);
    qubes_args_add_common(reset);
    args_add(p, &(ArgsSpec){.names = "--reload -r",
                            .action = ARGS_STORE_TRUE,
                            .deflt = "False",
                            .deflt_type = ARGV_BOOL,
                            .help = "force reload of rules even when "
                                    "unchanged"});
    args_add(p, &(ArgsSpec){.names = "--raw",
                            .action = ARGS_STORE_TRUE,
                            .deflt = "False",
                            .deflt_type = ARGV_BOOL,
                            .help = "output rules as raw strings, instead of "
                                    "nice table"});
    return p;
}

int main(int argc, char **argv)
{
    ArgsParser *p = make_parser();
    g_autoptr(ArgsNamespace) ns = args_parse(p, argc, argv);
    g_autoptr(QaApp) app = qubes_args_app(p);
    g_autoptr(GPtrArray) doms = qubes_args_domains(p, ns, app, 1);
    const char *vm = qa_vm_name(doms->pdata[0]);
    const char *command = args_str(ns, "command");
    command = command ? command : "list";
    g_autoptr(GPtrArray) rules = load_rules(vm);
    g_autoptr(GPtrArray) lines = api_lines(rules);
    if (strcmp(command, "add") == 0) {
        const ArgValue *before = args_get(ns, "before");
        char *line = g_strdup(args_str(ns, "rule"));
        if (before && before->type == ARGV_INT) {
            /* list.insert(): an index past either end is that end */
            gint64 at =
                before->i < 0 ? before->i + (gint64)lines->len : before->i;
            at = CLAMP(at, 0, (gint64)lines->len);
            g_ptr_array_insert(lines, (gint)at, line);
        } else {
            g_ptr_array_add(lines, line);
        }
        save_rules(vm, lines);
    } else if (strcmp(command, "del") == 0) {
        const ArgValue *no = args_get(ns, "rule_no");
        if (no && no->type == ARGV_INT) {
            gint64 at = py_index(no->i, lines->len);
            if (at < 0)
                qubes_args_exit_uncaught(
                    "%s", lines->len ? "IndexError: pop index out of range"
                                     : "IndexError: pop from empty list");
            g_ptr_array_remove_index(lines, (guint)at);
        } else {
            const char *want = args_str(ns, "rule");
            guint i = 0;
            while (i < lines->len && g_strcmp0(lines->pdata[i], want) != 0)
                i++;
            if (i == lines->len)
                qubes_args_exit_uncaught(
                    "ValueError: list.remove(x): x not in list");
            g_ptr_array_remove_index(lines, i);
        }
        save_rules(vm, lines);
    } else if (strcmp(command, "reset") == 0) {
        g_autoptr(GPtrArray) accept = g_ptr_array_new();
        g_ptr_array_add(accept, "action=accept");
        save_rules(vm, accept);
    } else {
        if (args_bool(ns, "raw")) {
            for (guint i = 0; i < lines->len; i++)
                printf("%s\n", (char *)lines->pdata[i]);
        } else {
            list_table(rules);
        }
        if (args_bool(ns, "reload")) {
            g_autoptr(GError) err = NULL;
            fflush(stdout);
            g_autofree char *r =
                qa_call("admin.vm.firewall.Reload", vm, NULL, NULL, &err);
            if (!r)
                qubes_args_print_exception(err);
        }
    }
    fflush(stdout);
    args_parser_free(p);
    return 0;
}
