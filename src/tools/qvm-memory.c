/* qvm-memory: what the memory balancer (qmemmand) holds and decided.
 *
 *   qvm-memory            each domain's actual, current, used, preferred,
 *                         target and maximum memory (MiB), its flags, the
 *                         host's free memory, the last decision (its mode
 *                         and why) and the last request
 *   qvm-memory --case     the live state as a qmemman-sim case line, to
 *                         replay: qvm-memory --case | qmemman-sim
 *   qvm-memory --json     the state as qmemmand gives it
 *
 * It reads qmemmand's status socket (--status-socket, default
 * /var/run/qubes/qmemman-status.sock).
 */
#include "status.h"

#include <json-glib/json-glib.h>
#include <locale.h>
#include <stdio.h>
#include <string.h>

/* A member in MiB, "-" when absent or null. */
static void mib(JsonObject *o, const char *name, char *out, gsize size)
{
    JsonNode *n = json_object_get_member(o, name);
    if (!n || JSON_NODE_HOLDS_NULL(n))
        g_strlcpy(out, "-", size);
    else
        g_snprintf(out, size, "%" G_GINT64_FORMAT,
                   json_node_get_int(n) / (1024 * 1024));
}

static const char *str(JsonObject *o, const char *name)
{
    JsonNode *n = o ? json_object_get_member(o, name) : NULL;
    return n && JSON_NODE_HOLDS_VALUE(n) ? json_node_get_string(n) : NULL;
}

static int show(const char *text)
{
    g_autoptr(JsonParser) p = json_parser_new();
    g_autoptr(GError) err = NULL;
    if (!json_parser_load_from_data(p, text, -1, &err) ||
        !JSON_NODE_HOLDS_OBJECT(json_parser_get_root(p))) {
        fprintf(stderr, "qvm-memory: qmemmand's answer is not its state: %s\n",
                err ? err->message : text);
        return 1;
    }
    JsonObject *o = json_node_get_object(json_parser_get_root(p));
    char free[32], for_doms[32], total[32];
    mib(o, "free", free, sizeof free);
    mib(o, "free_for_domains", for_doms, sizeof for_doms);
    mib(o, "total_mem", total, sizeof total);
    printf("hypervisor %s: %s MiB for domains in all, %s MiB free (%s MiB "
           "once the targets given are taken)\n",
           str(o, "hypervisor") ? str(o, "hypervisor") : "?", total, free,
           for_doms);
    if (json_object_get_boolean_member_with_default(o, "request_held", FALSE))
        printf("a request holds memory now (a domain is being started): no "
               "balancing until it is made\n");
    printf("%-24s %8s %8s %8s %8s %8s %8s  %s\n", "DOMAIN", "ACTUAL", "CURRENT",
           "USED", "PREF", "TARGET", "MAX", "FLAGS");
    JsonArray *doms = json_object_get_array_member(o, "domains");
    gboolean flagged = FALSE, unreported = FALSE;
    for (guint i = 0; doms && i < json_array_get_length(doms); i++) {
        JsonObject *d = json_array_get_object_element(doms, i);
        char act[32], cur[32], used[32], pref[32], target[32], max[32];
        mib(d, "mem_actual", act, sizeof act);
        mib(d, "mem_current", cur, sizeof cur);
        mib(d, "mem_used", used, sizeof used);
        mib(d, "pref", pref, sizeof pref);
        mib(d, "last_target", target, sizeof target);
        mib(d, "mem_max", max, sizeof max);
        if (json_object_get_int_member_with_default(d, "last_target", 0) == 0)
            g_strlcpy(target, "-", sizeof target);
        GString *flags = g_string_new(NULL);
        if (!json_object_get_boolean_member_with_default(d, "seen", TRUE))
            g_string_append(flags, " not-seen");
        if (json_object_get_boolean_member_with_default(d, "no_progress",
                                                        FALSE))
            g_string_append(flags, " no_progress");
        if (json_object_get_boolean_member_with_default(d, "slow_memset_react",
                                                        FALSE))
            g_string_append(flags, " slow_memset_react");
        if (strcmp(used, "-") == 0) {
            g_string_append(flags, " unreported");
            unreported = TRUE;
        }
        flagged |= strstr(flags->str, "no_progress") ||
                   strstr(flags->str, "slow_memset_react");
        printf("%-24s %8s %8s %8s %8s %8s %8s  %s\n",
               str(d, "id") ? str(d, "id") : "?", act, cur, used, pref, target,
               max, flags->len ? flags->str + 1 : "-");
        g_string_free(flags, TRUE);
    }
    if (flagged)
        printf("no_progress: did not give memory back when asked; "
               "slow_memset_react: gave it back too slowly. Either keeps the "
               "domain out of balancing until it reaches its target or needs "
               "more than it has.\n");
    if (unreported)
        printf("unreported: has not told its use yet (no balloon driver or "
               "memory reporting): not balanced.\n");
    JsonObject *last = json_object_get_object_member(o, "last_decision");
    if (last && str(last, "time"))
        printf("last decision: %s, mode %s (%s), because %s\n%s\n",
               str(last, "time"), str(last, "mode"),
               g_strcmp0(str(last, "mode"), "enough") == 0
                   ? "all get their preference and share the rest"
                   : "too little: donors give to the others in proportion",
               str(last, "why") ? str(last, "why") : "?",
               str(last, "stats") ? str(last, "stats") : "");
    else
        printf("last decision: none yet\n");
    JsonObject *req = json_object_get_object_member(o, "last_request");
    if (req && str(req, "time"))
        printf("last request: %s, \"%s\": %s\n", str(req, "time"),
               str(req, "request"), str(req, "answer"));
    return 0;
}

int main(int argc, char **argv)
{
    setlocale(LC_ALL, "");
    g_autofree char *path = NULL; /* given, or the default after parsing */
    gboolean as_case = FALSE, as_json = FALSE, version = FALSE;
    GOptionEntry entries[] = {
        {"case", 0, 0, G_OPTION_ARG_NONE, &as_case,
         "Print the live state as a qmemman-sim case line", NULL},
        {"json", 0, 0, G_OPTION_ARG_NONE, &as_json,
         "Print the state as qmemmand gives it (JSON)", NULL},
        {"status-socket", 0, 0, G_OPTION_ARG_FILENAME, &path,
         "qmemmand's status socket (default "
         "/var/run/qubes/qmemman-status.sock)",
         "PATH"},
        {"version", 0, 0, G_OPTION_ARG_NONE, &version, "Print the version",
         NULL},
        {NULL},
    };
    g_autoptr(GOptionContext) ctx =
        g_option_context_new("- what the memory balancer holds and decided");
    g_option_context_add_main_entries(ctx, entries, NULL);
    g_autoptr(GError) err = NULL;
    if (!g_option_context_parse(ctx, &argc, &argv, &err) || argc != 1) {
        fprintf(stderr, "qvm-memory: %s\n",
                err ? err->message : "no arguments expected");
        return 2;
    }
    if (version) {
        printf("qvm-memory " QUBES_VERSION "\n");
        return 0;
    }
    if (!path)
        path = g_strdup("/var/run/qubes/qmemman-status.sock");
    g_autofree char *text =
        qm_status_ask(path, as_case ? "case" : "state", 60, &err);
    if (!text) {
        fprintf(stderr, "qvm-memory: cannot reach qmemmand at %s: %s\n", path,
                err->message);
        return 1;
    }
    if (as_case || as_json) {
        fputs(text, stdout);
        return 0;
    }
    return show(text);
}
