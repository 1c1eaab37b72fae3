/* qvm-device, qvm-block, qvm-pci: list, attach, detach, assign and
 * unassign devices (admin.vm.device.*), with the Qubes client's syntax:
 *
 *   qvm-device CLASS [list|ls|l] [-a|--all] [--exclude VM] [VMNAME...]
 *   qvm-device CLASS attach|at|a [-o OPT=VALUE]... [--ro] [-p]
 *              VMNAME BACKEND:PORT[:DEVICE_ID]
 *   qvm-device CLASS detach|dt|d VMNAME [BACKEND:PORT]
 *   qvm-device CLASS assign|s [-o OPT=VALUE]... [--ro] [--required|--ask]
 *              VMNAME BACKEND:PORT[:DEVICE_ID]
 *   qvm-device CLASS unassign|u VMNAME [BACKEND:PORT[:DEVICE_ID]]
 *   qvm-device CLASS info|i BACKEND:PORT
 *   qvm-device --list-device-classes
 *
 * qvm-block and qvm-pci are the same program with the class taken from
 * its name. The device is sent as the client sends it: the argument
 * BACKEND+PORT+ID (an id's ':' as '+', other characters qrexec refuses
 * as '_'), the payload the assignment's key='value' form.
 */
#include "devices.h"
#include "tool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *prog = "qvm-device";

/* One line of Available/Assigned/Attached: the key, then key='value'
 * pairs (properties and _options). */
typedef struct {
    char *key;
    GPtrArray *props;
    GPtrArray *opts;
} Entry;

static void entry_free(Entry *e)
{
    g_free(e->key);
    g_ptr_array_unref(e->props);
    g_ptr_array_unref(e->opts);
    g_free(e);
}

static GPtrArray *entries(const char *method, const char *vm, const char *arg,
                          GError **error)
{
    g_autofree char *text = qa_call(method, vm, arg, NULL, error);
    if (!text)
        return NULL;
    GPtrArray *out = g_ptr_array_new_with_free_func((GDestroyNotify)entry_free);
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    for (guint i = 0; lines[i]; i++) {
        if (!*lines[i])
            continue;
        char *sp = strchr(lines[i], ' ');
        Entry *e = g_new0(Entry, 1);
        e->key = sp ? g_strndup(lines[i], (gsize)(sp - lines[i]))
                    : g_strdup(lines[i]);
        e->props = g_ptr_array_new_with_free_func(g_free);
        e->opts = g_ptr_array_new_with_free_func(g_free);
        if (sp && !qubes_dev_unpack(sp + 1, strlen(sp + 1), e->props, e->opts,
                                    error)) {
            entry_free(e);
            g_ptr_array_unref(out);
            return NULL;
        }
        g_ptr_array_add(out, e);
    }
    return out;
}

static GPtrArray *domains(GError **error)
{
    g_autofree char *text = qa_call("admin.vm.List", "dom0", NULL, NULL, error);
    if (!text)
        return NULL;
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    for (guint i = 0; lines[i]; i++) {
        char *sp = strchr(lines[i], ' ');
        if (sp)
            g_ptr_array_add(out, g_strndup(lines[i], (gsize)(sp - lines[i])));
    }
    return out;
}

/* DeviceCategory.from_str(): the best-scoring pattern of the
 * reference's categories for an interface code. */
static const char *category(const char *code)
{
    static const struct {
        const char *name;
        const char *patterns[6];
    } cats[] = {
        {"Communication", {"u02****", "p07****"}},
        {"Input", {"u03****", "p09****"}},
        {"Keyboard", {"u03**01", "p0900**"}},
        {"Mouse", {"u03**02", "p0902**"}},
        {"Printer", {"u07****"}},
        {"Scanner", {"p0903**"}},
        {"Microphone", {"m******"}},
        {"Multimedia",
         {"u01****", "u0e****", "u06****", "u10****", "p03****", "p04****"}},
        {"Wireless", {"ue0****", "p0d****"}},
        {"Bluetooth", {"ue00101", "p0d11**"}},
        {"Mass_Data", {"b******", "u08****", "p01****"}},
        {"Network", {"p02****"}},
        {"Memory", {"p05****"}},
        {"PCI_Bridge", {"p06****"}},
        {"Docking_Station", {"p0a****"}},
        {"Processor", {"p0b****", "p40****"}},
        {"PCI_Serial_Bus", {"p0c****"}},
        {"PCI_USB", {"p0c03**"}},
    };
    const char *best = "Other";
    int best_score = 0;
    if (!code || strlen(code) != 7)
        return best;
    for (guint c = 0; c < G_N_ELEMENTS(cats); c++)
        for (guint p = 0; p < 6 && cats[c].patterns[p]; p++) {
            int score = 0;
            for (guint k = 0; k < 7; k++) {
                if (code[k] == cats[c].patterns[p][k])
                    score++;
                else if (cats[c].patterns[p][k] != '*') {
                    score = -1;
                    break;
                }
            }
            if (score > best_score) {
                best_score = score;
                best = cats[c].name;
            }
        }
    return best;
}

/* DeviceInfo.description, as the client makes it from the listing:
 * "CATEGORY: VENDOR PRODUCT". */
static char *description(Entry *e, const char *cls)
{
    const char *product = qubes_dev_pairs_get(e->props, "product");
    const char *name = qubes_dev_pairs_get(e->props, "name");
    const char *serial = qubes_dev_pairs_get(e->props, "serial");
    const char *vendor = qubes_dev_pairs_get(e->props, "vendor");
    const char *manufacturer = qubes_dev_pairs_get(e->props, "manufacturer");
    const char *ifs = qubes_dev_pairs_get(e->props, "interfaces");
    const char *parent = qubes_dev_pairs_get(e->props, "parent_port_id");
    const char *prod = product ? product : name ? name : serial;
    if (!prod && parent)
        return g_strdup_printf("sub-device of %s:%s",
                               qubes_dev_pairs_get(e->props, "backend_domain"),
                               parent);
    g_autofree char *unknown = g_strdup_printf("unknown %s device", cls);
    const char *who = vendor         ? vendor
                      : manufacturer ? manufacturer
                                     : "unknown vendor";
    g_autofree char *first = ifs ? g_strndup(ifs, 7) : g_strdup("?******");
    const char *cat = category(first);
    return g_strdup_printf("%s: %s %s", strcmp(cat, "Other") ? cat : first, who,
                           prod ? prod : unknown);
}

/* "BACKEND:PORT[:ID]" -> argument "BACKEND+PORT[+ENCODED_ID]" */
static char *qarg(const char *spec, GError **error)
{
    const char *c = strchr(spec, ':');
    if (!c || c == spec || !c[1]) {
        g_set_error(error, QA_ERROR, QA_ERROR_PROTOCOL,
                    "expected a backend vm & device id combination like "
                    "foo:bar got %s",
                    spec);
        return NULL;
    }
    g_autofree char *backend = g_strndup(spec, (gsize)(c - spec));
    const char *rest = c + 1;
    const char *c2 = strchr(rest, ':');
    g_autofree char *port =
        c2 ? g_strndup(rest, (gsize)(c2 - rest)) : g_strdup(rest);
    if (!c2)
        return g_strdup_printf("%s+%s", backend, port);
    g_autofree char *enc = qubes_dev_encode_id(c2 + 1);
    return g_strdup_printf("%s+%s+%s", backend, port, enc);
}

static int fail(GError *err)
{
    /* the client prints the exception's message alone */
    const char *m = err->message;
    const char *colon = qa_error_type(err) ? strstr(m, ": ") : NULL;
    fprintf(stderr, "%s\n", colon ? colon + 2 : m);
    return 1;
}

static char *options_payload(const char *mode, char **opts, gboolean ro,
                             GError **error)
{
    GString *s = g_string_new(NULL);
    if (mode && !qubes_dev_pack(s, "mode", mode, error))
        goto bad;
    for (guint i = 0; opts && opts[i]; i++) {
        const char *eq = strchr(opts[i], '=');
        if (!eq) {
            g_set_error(error, QA_ERROR, QA_ERROR_PROTOCOL,
                        "option %s is not OPT=VALUE", opts[i]);
            goto bad;
        }
        g_autofree char *k = g_strndup(opts[i], (gsize)(eq - opts[i]));
        g_autofree char *key = g_strconcat("_", k, NULL);
        if (ro && strcmp(k, "read-only") == 0)
            continue; /* --ro takes precedence */
        if (!qubes_dev_pack(s, key, eq + 1, error))
            goto bad;
    }
    if (ro && !qubes_dev_pack(s, "_read-only", "yes", error))
        goto bad;
    return g_string_free(s, FALSE);
bad:
    g_string_free(s, TRUE);
    return NULL;
}

static gint cmp_str(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int list(const char *cls, char **vms, gboolean all, char **exclude)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) doms = domains(&err);
    if (!doms)
        return fail(err);
    g_autofree char *avail_m =
        g_strdup_printf("admin.vm.device.%s.Available", cls);
    g_autofree char *assigned_m =
        g_strdup_printf("admin.vm.device.%s.Assigned", cls);
    g_autofree char *attached_m =
        g_strdup_printf("admin.vm.device.%s.Attached", cls);
    /* port key "BACKEND:PORT" -> (description, used by) */
    g_autoptr(GHashTable) desc =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    g_autoptr(GHashTable) used = g_hash_table_new_full(
        g_str_hash, g_str_equal, g_free, (GDestroyNotify)g_ptr_array_unref);
    for (guint i = 0; i < doms->len; i++) {
        const char *vm = doms->pdata[i];
        g_autoptr(GPtrArray) av = entries(avail_m, vm, NULL, &err);
        if (!av)
            return fail(err);
        for (guint k = 0; k < av->len; k++) {
            Entry *e = av->pdata[k];
            char *colon = strchr(e->key, ':');
            g_autofree char *port =
                colon ? g_strndup(e->key, (gsize)(colon - e->key))
                      : g_strdup(e->key);
            g_hash_table_insert(desc, g_strdup_printf("%s:%s", vm, port),
                                description(e, cls));
        }
    }
    for (guint i = 0; i < doms->len; i++) {
        const char *vm = doms->pdata[i];
        const char *methods[] = {attached_m, assigned_m};
        for (guint m = 0; m < 2; m++) {
            g_autoptr(GPtrArray) es = entries(methods[m], vm, NULL, &err);
            if (!es)
                return fail(err);
            for (guint k = 0; k < es->len; k++) {
                Entry *e = es->pdata[k];
                const char *backend =
                    qubes_dev_pairs_get(e->props, "backend_domain");
                const char *port = qubes_dev_pairs_get(e->props, "port_id");
                const char *mode = qubes_dev_pairs_get(e->props, "mode");
                if (!backend || !port)
                    continue;
                g_autofree char *key = g_strdup_printf("%s:%s", backend, port);
                GPtrArray *u = g_hash_table_lookup(used, key);
                if (!u) {
                    u = g_ptr_array_new_with_free_func(g_free);
                    g_hash_table_insert(used, g_strdup(key), u);
                }
                GString *what = g_string_new(m == 0 ? "attached" : mode);
                for (guint o = 0; o + 1 < e->opts->len; o += 2)
                    if (strcmp(e->opts->pdata[o], "frontend-dev") != 0)
                        g_string_append_printf(what, ", %s=%s",
                                               (char *)e->opts->pdata[o],
                                               (char *)e->opts->pdata[o + 1]);
                g_ptr_array_add(u, g_strdup_printf("%s (%s)", vm, what->str));
                g_string_free(what, TRUE);
                if (!g_hash_table_contains(desc, key))
                    g_hash_table_insert(
                        desc, g_strdup(key),
                        g_strdup(strcmp(port, "*") == 0 ? "any device" : "?"));
            }
        }
    }
    g_autoptr(GPtrArray) keys = g_ptr_array_new();
    GHashTableIter it;
    gpointer k;
    g_hash_table_iter_init(&it, desc);
    while (g_hash_table_iter_next(&it, &k, NULL))
        g_ptr_array_add(keys, k);
    g_ptr_array_sort(keys, cmp_str);
    g_autoptr(Table) t =
        table_new(3, "BACKEND:DEVID", "DESCRIPTION", "USED BY", NULL);
    for (guint i = 0; i < keys->len; i++) {
        const char *key = keys->pdata[i];
        GPtrArray *u = g_hash_table_lookup(used, key);
        gboolean shown = all || !vms || !vms[0];
        for (guint v = 0; vms && vms[v] && !shown; v++) {
            gsize n = strlen(vms[v]);
            shown = strncmp(key, vms[v], n) == 0 && key[n] == ':';
            for (guint j = 0; u && j < u->len && !shown; j++)
                shown = g_str_has_prefix(u->pdata[j], vms[v]) &&
                        ((char *)u->pdata[j])[n] == ' ';
        }
        for (guint x = 0; exclude && exclude[x] && shown; x++) {
            gsize n = strlen(exclude[x]);
            shown = !(strncmp(key, exclude[x], n) == 0 && key[n] == ':');
        }
        if (!shown)
            continue;
        g_autofree char *users = NULL;
        if (u) {
            g_ptr_array_add(u, NULL);
            users = g_strjoinv(", ", (char **)u->pdata);
            g_ptr_array_remove_index(u, u->len - 1);
        }
        table_add(t, key, (char *)g_hash_table_lookup(desc, key),
                  users ? users : "", NULL);
    }
    /* the client's header only on a terminal */
    if (qa_isatty())
        table_print(t);
    else
        table_print_body(t);
    return 0;
}

static int info(const char *cls, const char *spec)
{
    g_autoptr(GError) err = NULL;
    const char *c = strchr(spec, ':');
    if (!c)
        return tool_usage_error(prog, "expected BACKEND:PORT, got %s", spec);
    g_autofree char *backend = g_strndup(spec, (gsize)(c - spec));
    g_autofree char *port = g_strdup(c + 1);
    char *c2 = strchr(port, ':');
    if (c2)
        *c2 = 0;
    g_autofree char *m = g_strdup_printf("admin.vm.device.%s.Available", cls);
    g_autoptr(GPtrArray) es = entries(m, backend, port, &err);
    if (!es)
        return fail(err);
    if (!es->len) {
        fprintf(stderr, "backend vm '%s' doesn't expose device '%s'\n", backend,
                port);
        return 1;
    }
    Entry *e = es->pdata[0];
    g_autofree char *d = description(e, cls);
    printf("%s:%s\n  description: %s\n", backend, port, d);
    const char *sep = strchr(e->key, ':');
    printf("  device_id: %s\n", sep ? sep + 1 : "");
    for (guint i = 0; i + 1 < e->props->len; i += 2) {
        const char *key = e->props->pdata[i];
        if (!strcmp(key, "device_id") || !strcmp(key, "port_id") ||
            !strcmp(key, "devclass") || !strcmp(key, "backend_domain"))
            continue;
        printf("  %s: %s\n", key, (char *)e->props->pdata[i + 1]);
    }
    for (guint i = 0; i + 1 < e->opts->len; i += 2)
        printf("  %s: %s\n", (char *)e->opts->pdata[i],
               (char *)e->opts->pdata[i + 1]);
    return 0;
}

int main(int argc, char **argv)
{
    g_autofree char *base = g_path_get_basename(argv[0]);
    const char *cls = NULL;
    if (g_str_has_prefix(base, "qvm-") && strcmp(base, "qvm-device") != 0)
        cls = base + 4;
    prog = base;
    gboolean all = FALSE, ro = FALSE, persistent = FALSE, required = FALSE,
             ask = FALSE, classes = FALSE;
    g_auto(GStrv) options = NULL, exclude = NULL;
    GOptionEntry entries_[] = {
        {"all", 'a', 0, G_OPTION_ARG_NONE, &all,
         "list: the devices of every qube", NULL},
        {"exclude", 0, 0, G_OPTION_ARG_STRING_ARRAY, &exclude,
         "list: leave out the devices of VM (repeatable)", "VM"},
        {"option", 'o', 0, G_OPTION_ARG_STRING_ARRAY, &options,
         "attach, assign: set option OPT=VALUE (repeatable; block: "
         "read-only, frontend-dev, devtype; pci: no-strict-reset, "
         "permissive)",
         "OPT=VALUE"},
        {"ro", 0, 0, G_OPTION_ARG_NONE, &ro,
         "attach, assign: read-only (the read-only=yes option)", NULL},
        {"persistent", 'p', 0, G_OPTION_ARG_NONE, &persistent,
         "attach: assign it too (attached at each start)", NULL},
        {"required", 0, 0, G_OPTION_ARG_NONE, &required,
         "assign: the qube starts only with the device", NULL},
        {"ask", 0, 0, G_OPTION_ARG_NONE, &ask,
         "assign: ask-to-attach rather than auto-attach", NULL},
        {"list-device-classes", 0, 0, G_OPTION_ARG_NONE, &classes,
         "List the device classes", NULL},
        {NULL},
    };
    tool_parse(&argc, &argv, entries_,
               cls ? "[list|attach|detach|assign|unassign|info] ARGS..."
                   : "DEVICE_CLASS [list|attach|detach|assign|unassign|info] "
                     "ARGS...",
               "List, attach, detach, assign and unassign devices.",
               "Devices are named BACKEND:PORT (dom0:loop7, dom0:00_1f.2), "
               "or\nBACKEND:PORT:DEVICE_ID for one device on that port.");
    g_autoptr(GError) err = NULL;
    if (classes) {
        g_autofree char *c =
            qa_call("admin.deviceclass.List", "dom0", NULL, NULL, &err);
        if (!c)
            return fail(err);
        fputs(c, stdout);
        return 0;
    }
    int at = 1;
    if (!cls) {
        if (argc < 2)
            return tool_usage_error(prog,
                                    "the following arguments are required: "
                                    "DEVICE_CLASS");
        cls = argv[at++];
    }
    const char *cmd = at < argc ? argv[at++] : "list";
    char **rest = argv + at;
    int nrest = argc - at;
    if (!strcmp(cmd, "list") || !strcmp(cmd, "ls") || !strcmp(cmd, "l"))
        return list(cls, rest, all, exclude);
    if (!strcmp(cmd, "info") || !strcmp(cmd, "i")) {
        if (nrest != 1)
            return tool_usage_error(prog, "info takes BACKEND:PORT");
        return info(cls, rest[0]);
    }
    gboolean attach =
        !strcmp(cmd, "attach") || !strcmp(cmd, "at") || !strcmp(cmd, "a");
    gboolean detach =
        !strcmp(cmd, "detach") || !strcmp(cmd, "dt") || !strcmp(cmd, "d");
    gboolean assign = !strcmp(cmd, "assign") || !strcmp(cmd, "s");
    gboolean unassign = !strcmp(cmd, "unassign") || !strcmp(cmd, "u");
    if (!attach && !detach && !assign && !unassign)
        return tool_usage_error(prog, "argument command: invalid choice: '%s'",
                                cmd);
    if (nrest < 1 || nrest > 2 || ((attach || assign) && nrest != 2))
        return tool_usage_error(prog, "%s takes VMNAME%s", cmd,
                                attach || assign ? " BACKEND:DEVICE_ID"
                                                 : " [BACKEND:DEVICE_ID]");
    const char *vm = rest[0];
    g_autofree char *arg = nrest == 2 ? qarg(rest[1], &err) : NULL;
    if (nrest == 2 && !arg) {
        fprintf(stderr, "%s: error: %s\n", prog, err->message);
        return 2;
    }
    if (attach || assign) {
        const char *mode = attach     ? NULL
                           : required ? "required"
                           : ask      ? "ask-to-attach"
                                      : "auto-attach";
        g_autofree char *payload = options_payload(mode, options, ro, &err);
        if (!payload) {
            fprintf(stderr, "%s: error: %s\n", prog, err->message);
            return 2;
        }
        g_autofree char *m = g_strdup_printf("admin.vm.device.%s.%s", cls,
                                             attach ? "Attach" : "Assign");
        g_autofree char *r = qa_call(m, vm, arg, payload, &err);
        if (!r)
            return fail(err);
        if (attach && persistent) {
            g_autofree char *p2 =
                options_payload("required", options, ro, &err);
            g_autofree char *m2 =
                g_strdup_printf("admin.vm.device.%s.Assign", cls);
            g_autofree char *r2 = p2 ? qa_call(m2, vm, arg, p2, &err) : NULL;
            if (!r2)
                return fail(err);
        }
        return 0;
    }
    /* detach, unassign: one, or every one of the class */
    g_autofree char *list_m = g_strdup_printf("admin.vm.device.%s.%s", cls,
                                              detach ? "Attached" : "Assigned");
    g_autofree char *m = g_strdup_printf("admin.vm.device.%s.%s", cls,
                                         detach ? "Detach" : "Unassign");
    if (arg) {
        g_autofree char *r = qa_call(m, vm, arg, NULL, &err);
        return r ? 0 : fail(err);
    }
    g_autoptr(GPtrArray) es = entries(list_m, vm, NULL, &err);
    if (!es)
        return fail(err);
    for (guint i = 0; i < es->len; i++) {
        Entry *e = es->pdata[i];
        const char *devid = qubes_dev_pairs_get(e->props, "device_id");
        g_autofree char *spec = g_strdup_printf(
            "%s:%s:%s", qubes_dev_pairs_get(e->props, "backend_domain"),
            qubes_dev_pairs_get(e->props, "port_id"), devid ? devid : "*");
        g_autofree char *a = qarg(spec, &err);
        g_autofree char *r = a ? qa_call(m, vm, a, NULL, &err) : NULL;
        if (!r)
            return fail(err);
    }
    return 0;
}
