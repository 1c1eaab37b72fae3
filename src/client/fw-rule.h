/* fw-rule.h: a firewall rule as the Qubes client holds it
 * (qubesadmin.firewall.Rule), for qvm-firewall: made from an
 * admin.vm.firewall.Get line or from the elements a command line gives,
 * each element checked as the client checks it, in its order and with
 * its words; written back as the client writes it (Rule.rule) and shown
 * as its table shows it (pretty_value).
 *
 * The client raises Python exceptions its tool does not catch; a
 * refusal here is that exception's last line ("ValueError: MESSAGE"),
 * for the tool to print as the client's traceback ends. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _QaFwRule QaFwRule;

/* Rule(rule=None, **elements): @keys and @values (char*) in the order
 * given; a key given twice keeps its last value. NULL with *@pyerr
 * (new) when the client raises. */
QaFwRule *qa_fw_rule_from_elements(GPtrArray *keys, GPtrArray *values,
                                   char **pyerr);
/* Rule(LINE): a line of admin.vm.firewall.Get. */
QaFwRule *qa_fw_rule_parse(const char *line, char **pyerr);
void qa_fw_rule_free(QaFwRule *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QaFwRule, qa_fw_rule_free)

/* Rule.rule: "action=... proto=... dst4=... dstports=A-B icmptype=...
 * specialtarget=... expire=... comment=..." (new). */
char *qa_fw_rule_api(const QaFwRule *r);
/* The table's cell for element @key (action, dsthost, proto, dstports,
 * specialtarget, icmptype, expire, comment): its pretty_value, "-" when
 * unset; an expiry as seconds from now, "+300s" (new). */
char *qa_fw_rule_pretty(const QaFwRule *r, const char *key);

G_END_DECLS
