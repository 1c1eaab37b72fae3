/* qmemman-sim: the balancer's decisions for replayed states, one JSON
 * case per line in, one answer per line out (../shared/QMEMMAN-SIM.md),
 * with the code qmemmand uses (algo.h).
 *
 *   qmemman-sim [--config qmemman.conf] < cases.jsonl
 */
#include "algo.h"

#include <json-glib/json-glib.h>
#include <locale.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    QmDom *doms;
    guint n;
    gint64 xen_free;
    gint64 total_mem;
    /* our extension: the assignable free memory as it is (no Xen
     * per-page overhead applied), as qmemmand's dump on libvirt gives it */
    gboolean has_free;
    gint64 free;
} Case;

/* get_free_xen_mem() of the case. */
static gint64 case_free(const Case *c)
{
    if (c->has_free)
        return c->free - qm_assigned_unused(c->doms, c->n);
    return qm_free_mem(c->xen_free, c->doms, c->n);
}

static void case_clear(Case *c)
{
    for (guint i = 0; i < c->n; i++)
        g_free(c->doms[i].id);
    g_free(c->doms);
}

static gboolean get_int(JsonObject *o, const char *key, gint64 *out,
                        gboolean *is_null)
{
    JsonNode *n = json_object_get_member(o, key);
    if (is_null)
        *is_null = n == NULL || JSON_NODE_HOLDS_NULL(n);
    if (!n || JSON_NODE_HOLDS_NULL(n))
        return FALSE;
    if (!JSON_NODE_HOLDS_VALUE(n))
        return FALSE;
    GType t = json_node_get_value_type(n);
    if (t == G_TYPE_INT64)
        *out = json_node_get_int(n);
    else if (t == G_TYPE_DOUBLE)
        *out = (gint64)json_node_get_double(n);
    else
        return FALSE;
    return TRUE;
}

static gboolean get_bool(JsonObject *o, const char *key)
{
    JsonNode *n = json_object_get_member(o, key);
    return n && JSON_NODE_HOLDS_VALUE(n) &&
           json_node_get_value_type(n) == G_TYPE_BOOLEAN &&
           json_node_get_boolean(n);
}

/* The case's domains; @daemon: the operation refreshes mem_actual as the
 * reference's refresh_mem_actual() does. */
static gboolean load_case(JsonObject *o, gboolean daemon, Case *c, char **why)
{
    memset(c, 0, sizeof(*c));
    get_int(o, "xen_free", &c->xen_free, NULL);
    get_int(o, "total_mem", &c->total_mem, NULL);
    gboolean free_null = TRUE;
    c->has_free = get_int(o, "free", &c->free, &free_null) && !free_null;
    JsonNode *dn = json_object_get_member(o, "domains");
    if (dn && !JSON_NODE_HOLDS_ARRAY(dn)) {
        *why = g_strdup("domains is not an array");
        return FALSE;
    }
    JsonArray *arr = dn ? json_node_get_array(dn) : NULL;
    c->n = arr ? json_array_get_length(arr) : 0;
    c->doms = g_new0(QmDom, c->n ? c->n : 1);
    for (guint i = 0; i < c->n; i++) {
        JsonNode *e = json_array_get_element(arr, i);
        if (!JSON_NODE_HOLDS_OBJECT(e)) {
            *why = g_strdup_printf("domain %u is not an object", i);
            return FALSE;
        }
        JsonObject *d = json_node_get_object(e);
        QmDom *q = &c->doms[i];
        const char *id =
            json_object_get_string_member_with_default(d, "id", NULL);
        if (!id) {
            *why = g_strdup_printf("domain %u has no id", i);
            return FALSE;
        }
        q->id = g_strdup(id);
        gboolean actual = get_int(d, "mem_actual", &q->mem_actual, NULL);
        if (!get_int(d, "mem_current", &q->mem_current, NULL))
            q->mem_current = actual ? q->mem_actual : 0;
        get_int(d, "last_target", &q->last_target, NULL);
        gboolean max_null = TRUE;
        if (!get_int(d, "mem_max", &q->mem_max, &max_null))
            q->mem_max = qm_all_phys_mem(c->total_mem);
        q->has_used = get_int(d, "mem_used", &q->mem_used, NULL);
        q->no_progress = get_bool(d, "no_progress");
        q->slow_memset_react = get_bool(d, "slow_memset_react");
        if (daemon || !actual)
            q->mem_actual = MAX(q->mem_current, q->last_target);
    }
    return TRUE;
}

static void add_targets(JsonBuilder *b, const Case *c, const GArray *t)
{
    json_builder_set_member_name(b, "targets");
    json_builder_begin_array(b);
    for (guint k = 0; k < t->len; k++) {
        const QmTarget *x = &g_array_index(t, QmTarget, k);
        json_builder_begin_array(b);
        json_builder_add_string_value(b, c->doms[x->dom].id);
        json_builder_add_int_value(b, x->mem);
        json_builder_end_array(b);
    }
    json_builder_end_array(b);
}

static void add_ids(JsonBuilder *b, const char *name, const Case *c,
                    const GArray *idx)
{
    json_builder_set_member_name(b, name);
    json_builder_begin_array(b);
    for (guint k = 0; k < idx->len; k++)
        json_builder_add_string_value(b,
                                      c->doms[g_array_index(idx, guint, k)].id);
    json_builder_end_array(b);
}

static void add_int(JsonBuilder *b, const char *name, gint64 v)
{
    json_builder_set_member_name(b, name);
    json_builder_add_int_value(b, v);
}

static void add_str(JsonBuilder *b, const char *name, const char *v)
{
    json_builder_set_member_name(b, name);
    json_builder_add_string_value(b, v);
}

static void add_mode(JsonBuilder *b, const Case *c, gboolean enough,
                     const QmMemInfo *mi)
{
    add_str(b, "mode", enough ? "enough" : "low");
    if (enough) {
        add_int(b, "total_mem_pref", mi->total_mem_pref);
        add_int(b, "total_available_mem", mi->total_available_mem);
    } else {
        add_int(b, "total_mem_pref_acceptors", mi->total_mem_pref_acceptors);
        add_ids(b, "donors", c, mi->donors);
        add_ids(b, "acceptors", c, mi->acceptors);
    }
}

static void zero_division(JsonBuilder *b)
{
    /* where the reference raises ZeroDivisionError */
    add_str(b, "exception", "float division by zero");
}

/* "balance": one round of do_balance(). */
static void op_balance(JsonBuilder *b, const QmConfig *cfg, Case *c)
{
    g_autoptr(GArray) cleared = g_array_new(FALSE, FALSE, sizeof(guint));
    qm_clear_outdated(cfg, c->doms, c->n, cleared);
    add_ids(b, "cleared", c, cleared);
    gint64 xenfree = case_free(c);
    gint64 algo_free = xenfree - QM_XEN_FREE_MEM_LEFT;
    g_autoptr(GArray) t = g_array_new(FALSE, FALSE, sizeof(QmTarget));
    QmMemInfo mi = {0};
    gboolean enough = FALSE;
    QmStatus st = qm_balance(cfg, algo_free, c->doms, c->n, &mi, &enough, t);
    add_int(b, "xenfree", xenfree);
    if (st != QM_OK) {
        zero_division(b);
        qm_mem_info_clear(&mi);
        return;
    }
    json_builder_set_member_name(b, "significant");
    json_builder_add_boolean_value(b, qm_significant(cfg, c->doms, t, xenfree));
    add_int(b, "algo_free", algo_free);
    add_mode(b, c, enough, &mi);
    add_targets(b, c, t);
    qm_mem_info_clear(&mi);
}

/* {"request": N}: the first pass of do_balloon(N). */
static void op_request(JsonBuilder *b, const QmConfig *cfg, Case *c,
                       gint64 size)
{
    for (guint i = 0; i < c->n; i++)
        c->doms[i].no_progress = FALSE;
    gint64 xenfree = case_free(c);
    add_int(b, "xenfree", xenfree);
    g_autoptr(GArray) t = g_array_new(FALSE, FALSE, sizeof(QmTarget));
    if (xenfree >= size + QM_XEN_FREE_MEM_MIN) {
        add_str(b, "first", "OK");
        add_targets(b, c, t);
        return;
    }
    gint64 balloon = size + QM_XEN_FREE_MEM_LEFT - xenfree;
    if (qm_balloon(cfg, balloon, c->doms, c->n, t) != QM_OK) {
        zero_division(b);
        return;
    }
    add_str(b, "first", t->len ? "memset" : "FAIL");
    add_int(b, "balloon_size", balloon);
    add_targets(b, c, t);
}

static gboolean op_algo(JsonBuilder *b, const QmConfig *cfg, Case *c,
                        JsonObject *op, const char *algo, const char **name)
{
    g_autoptr(GArray) t = g_array_new(FALSE, FALSE, sizeof(QmTarget));
    gint64 v = 0;
    if (strcmp(algo, "balance") == 0 && get_int(op, "free", &v, NULL)) {
        *name = "algo_balance";
        QmMemInfo mi = {0};
        gboolean enough = FALSE;
        if (qm_balance(cfg, v, c->doms, c->n, &mi, &enough, t) != QM_OK) {
            zero_division(b);
        } else {
            add_targets(b, c, t);
            add_mode(b, c, enough, &mi);
        }
        qm_mem_info_clear(&mi);
        return TRUE;
    }
    if (strcmp(algo, "balloon") == 0 && get_int(op, "size", &v, NULL)) {
        *name = "algo_balloon";
        if (qm_balloon(cfg, v, c->doms, c->n, t) != QM_OK) {
            zero_division(b);
        } else {
            add_targets(b, c, t);
            add_str(b, "first", t->len ? "memset" : "FAIL");
        }
        return TRUE;
    }
    gint64 pref = 0, avail = 0;
    if (strcmp(algo, "enough") == 0 &&
        get_int(op, "total_mem_pref", &pref, NULL) &&
        get_int(op, "total_available_mem", &avail, NULL)) {
        *name = "algo_enough";
        if (qm_balance_when_enough_mem(cfg, c->doms, c->n, pref, avail, t) !=
            QM_OK)
            zero_division(b);
        else
            add_targets(b, c, t);
        return TRUE;
    }
    if (strcmp(algo, "low") == 0 && get_int(op, "free", &v, NULL) &&
        get_int(op, "total_mem_pref_acceptors", &pref, NULL)) {
        *name = "algo_low";
        g_autoptr(GArray) don = g_array_new(FALSE, FALSE, sizeof(guint));
        g_autoptr(GArray) acc = g_array_new(FALSE, FALSE, sizeof(guint));
        const char *lists[] = {"donors", "acceptors"};
        GArray *into[] = {don, acc};
        for (int l = 0; l < 2; l++) {
            JsonNode *ln = json_object_get_member(op, lists[l]);
            JsonArray *a = ln && JSON_NODE_HOLDS_ARRAY(ln)
                               ? json_node_get_array(ln)
                               : NULL;
            for (guint k = 0; a && k < json_array_get_length(a); k++) {
                JsonNode *e = json_array_get_element(a, k);
                const char *id =
                    JSON_NODE_HOLDS_VALUE(e) &&
                            json_node_get_value_type(e) == G_TYPE_STRING
                        ? json_node_get_string(e)
                        : NULL;
                for (guint i = 0; id && i < c->n; i++)
                    if (strcmp(c->doms[i].id, id) == 0) {
                        g_array_append_val(into[l], i);
                        break;
                    }
            }
        }
        if (qm_balance_when_low_on_mem(cfg, c->doms, c->n, v, pref, don, acc,
                                       t) != QM_OK)
            zero_division(b);
        else
            add_targets(b, c, t);
        return TRUE;
    }
    if (strcmp(algo, "prefs") == 0) {
        *name = "algo_prefs";
        json_builder_set_member_name(b, "prefs");
        json_builder_begin_array(b);
        for (guint i = 0; i < c->n; i++) {
            if (!c->doms[i].has_used)
                continue;
            json_builder_begin_array(b);
            json_builder_add_string_value(b, c->doms[i].id);
            json_builder_add_int_value(b, qm_pref_mem(cfg, &c->doms[i]));
            json_builder_add_int_value(b, qm_needed_mem(cfg, &c->doms[i]));
            json_builder_end_array(b);
        }
        json_builder_end_array(b);
        return TRUE;
    }
    return FALSE;
}

static char *to_line(JsonBuilder *b)
{
    g_autoptr(JsonGenerator) g = json_generator_new();
    g_autoptr(JsonNode) root = json_builder_get_root(b);
    json_generator_set_root(g, root);
    return json_generator_to_data(g, NULL);
}

static void begin_answer(JsonBuilder *b, JsonNode *id)
{
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "id");
    if (id)
        json_builder_add_value(b, json_node_copy(id));
    else
        json_builder_add_null_value(b);
}

/* {"meminfo": "text"}: the answer is written by hand, as mem_used may be
 * a Python int beyond 64 bits. */
static char *op_meminfo(JsonNode *id, JsonNode *text)
{
    gsize len = 0;
    const char *s = json_node_get_string(text);
    len = s ? strlen(s) : 0;
    g_autofree char *bytes = NULL;
    QmMeminfo r = qm_parse_meminfo(s ? s : "", len, &bytes);
    g_autoptr(JsonGenerator) g = json_generator_new();
    g_autoptr(JsonNode) idc =
        id ? json_node_copy(id) : json_node_new(JSON_NODE_NULL);
    json_generator_set_root(g, idc);
    g_autofree char *idtext = json_generator_to_data(g, NULL);
    const char *decision = "\"mem_used\":null";
    if (r == QM_MEMINFO_VALUE)
        return g_strdup_printf("{\"id\":%s,\"op\":\"meminfo\",\"decision\":{"
                               "\"mem_used\":%s}}",
                               idtext, bytes);
    return g_strdup_printf("{\"id\":%s,\"op\":\"meminfo\",\"decision\":{%s}}",
                           idtext, decision);
}

static char *answer(const QmConfig *cfg, const char *line)
{
    g_autoptr(JsonParser) p = json_parser_new();
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonBuilder) b = json_builder_new();
    if (!json_parser_load_from_data(p, line, -1, &err) ||
        !JSON_NODE_HOLDS_OBJECT(json_parser_get_root(p))) {
        begin_answer(b, NULL);
        add_str(b, "input_error", err ? err->message : "not a JSON object");
        json_builder_end_object(b);
        return to_line(b);
    }
    JsonObject *o = json_node_get_object(json_parser_get_root(p));
    JsonNode *id = json_object_get_member(o, "id");
    JsonNode *op = json_object_get_member(o, "op");
    if (op && JSON_NODE_HOLDS_OBJECT(op)) {
        JsonNode *mi =
            json_object_get_member(json_node_get_object(op), "meminfo");
        if (mi && JSON_NODE_HOLDS_VALUE(mi) &&
            json_node_get_value_type(mi) == G_TYPE_STRING)
            return op_meminfo(id, mi);
    }
    gboolean daemon =
        (op && JSON_NODE_HOLDS_VALUE(op) &&
         json_node_get_value_type(op) == G_TYPE_STRING) ||
        (op && JSON_NODE_HOLDS_OBJECT(op) &&
         json_object_has_member(json_node_get_object(op), "request"));
    Case c;
    g_autofree char *why = NULL;
    if (!load_case(o, daemon, &c, &why)) {
        case_clear(&c);
        begin_answer(b, id);
        add_str(b, "input_error", why);
        json_builder_end_object(b);
        return to_line(b);
    }
    /* the decision is built apart: its operation's name comes first */
    g_autoptr(JsonBuilder) d = json_builder_new();
    json_builder_begin_object(d);
    const char *name = NULL;
    if (op && JSON_NODE_HOLDS_VALUE(op) &&
        json_node_get_value_type(op) == G_TYPE_STRING &&
        strcmp(json_node_get_string(op), "balance") == 0) {
        name = "balance";
        op_balance(d, cfg, &c);
    } else if (op && JSON_NODE_HOLDS_OBJECT(op)) {
        JsonObject *oo = json_node_get_object(op);
        gint64 size = 0;
        const char *algo =
            json_object_get_string_member_with_default(oo, "algo", NULL);
        if (get_int(oo, "request", &size, NULL)) {
            name = "request";
            op_request(d, cfg, &c, size);
        } else if (algo && op_algo(d, cfg, &c, oo, algo, &name)) {
            /* done */
        }
    }
    json_builder_end_object(d);
    case_clear(&c);
    begin_answer(b, id);
    if (!name) {
        json_builder_set_member_name(b, "unsupported");
        json_builder_add_boolean_value(b, TRUE);
    } else {
        add_str(b, "op", name);
        json_builder_set_member_name(b, "decision");
        json_builder_add_value(b, json_builder_get_root(d));
    }
    json_builder_end_object(b);
    return to_line(b);
}

int main(int argc, char **argv)
{
    setlocale(LC_ALL, "C");
    QmConfig cfg;
    qm_config_defaults(&cfg);
    g_autofree char *config = NULL;
    GOptionEntry entries[] = {
        {"config", 0, 0, G_OPTION_ARG_FILENAME, &config,
         "qmemman.conf to take vm-min-mem, dom0-mem-boost and "
         "cache-margin-factor from (default: the reference's defaults)",
         "FILE"},
        {NULL},
    };
    g_autoptr(GOptionContext) ctx = g_option_context_new(
        "- the balancer's decisions for the JSON cases on standard input");
    g_option_context_add_main_entries(ctx, entries, NULL);
    g_autoptr(GError) err = NULL;
    if (!g_option_context_parse(ctx, &argc, &argv, &err) ||
        (config && !qm_config_load(&cfg, config, &err))) {
        fprintf(stderr, "qmemman-sim: %s\n", err->message);
        return 2;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n == 0)
            continue;
        g_autofree char *out = answer(&cfg, line);
        fputs(out, stdout);
        fputc('\n', stdout);
        fflush(stdout);
    }
    free(line);
    return 0;
}
