/* argparse-probe: builds a parser from a JSON description (the one
 * test-argparse.py also builds with Python's argparse), parses its
 * arguments and prints the namespace as JSON; --help, --version and
 * errors print what the parser prints. */
#include "argparse.h"

#include <json-glib/json-glib.h>
#include <stdio.h>
#include <string.h>

static const char *str(JsonObject *o, const char *k)
{
    if (!json_object_has_member(o, k) || json_object_get_null_member(o, k))
        return NULL;
    return json_object_get_string_member(o, k);
}

static int nargs_of(JsonObject *o)
{
    if (!json_object_has_member(o, "nargs"))
        return 0;
    JsonNode *n = json_object_get_member(o, "nargs");
    if (JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_INT64)
        return (int)json_node_get_int(n);
    const char *s = json_node_get_string(n);
    if (strcmp(s, "?") == 0)
        return ARGS_OPTIONAL;
    if (strcmp(s, "*") == 0)
        return ARGS_ZERO_OR_MORE;
    if (strcmp(s, "+") == 0)
        return ARGS_ONE_OR_MORE;
    if (strcmp(s, "...") == 0)
        return ARGS_REMAINDER;
    return 0;
}

static ArgsActionKind kind_of(const char *a)
{
    static const char *const names[] = {
        "store",        "store_const", "store_true", "store_false", "append",
        "append_const", "count",       "help",       "version"};
    for (guint i = 0; i < G_N_ELEMENTS(names); i++)
        if (g_strcmp0(a, names[i]) == 0)
            return (ArgsActionKind)i;
    return ARGS_STORE;
}

static ArgsFormatterKind fmt_of(JsonObject *o)
{
    const char *f = str(o, "formatter");
    if (g_strcmp0(f, "raw_text") == 0)
        return ARGS_FORMAT_RAW_TEXT;
    if (g_strcmp0(f, "raw_description") == 0)
        return ARGS_FORMAT_RAW_DESCRIPTION;
    return ARGS_FORMAT_DEFAULT;
}

static void fill(ArgsParser *p, JsonObject *o, GPtrArray *keep)
{
    JsonArray *secs = json_object_has_member(o, "sections")
                          ? json_object_get_array_member(o, "sections")
                          : NULL;
    for (guint i = 0; secs && i < json_array_get_length(secs); i++) {
        JsonObject *s = json_array_get_object_element(secs, i);
        args_add_section(p, str(s, "title"), str(s, "description"));
    }
    JsonArray *mx = json_object_has_member(o, "mutexes")
                        ? json_object_get_array_member(o, "mutexes")
                        : NULL;
    for (guint i = 0; mx && i < json_array_get_length(mx); i++) {
        JsonObject *m = json_array_get_object_element(mx, i);
        int sec = json_object_has_member(m, "section")
                      ? (int)json_object_get_int_member(m, "section")
                      : 0;
        args_add_mutex(p, sec ? sec + 1 : 0,
                       json_object_has_member(m, "required") &&
                           json_object_get_boolean_member(m, "required"));
    }
    if (str(o, "version"))
        args_parser_set_version(p, str(o, "version"));
    JsonArray *args = json_object_has_member(o, "arguments")
                          ? json_object_get_array_member(o, "arguments")
                          : NULL;
    for (guint i = 0; args && i < json_array_get_length(args); i++) {
        JsonObject *a = json_array_get_object_element(args, i);
        ArgsSpec sp = {0};
        sp.names = str(a, "names");
        sp.action = kind_of(str(a, "action"));
        sp.nargs = nargs_of(a);
        sp.dest = str(a, "dest");
        sp.metavar = str(a, "metavar");
        if (json_object_has_member(a, "metavars")) {
            /* a tuple metavar */
            JsonArray *mv = json_object_get_array_member(a, "metavars");
            GPtrArray *ms = g_ptr_array_new();
            for (guint k = 0; k < json_array_get_length(mv); k++)
                g_ptr_array_add(ms,
                                (gpointer)json_array_get_string_element(mv, k));
            g_ptr_array_add(ms, NULL);
            g_ptr_array_add(keep, g_ptr_array_free(ms, FALSE));
            sp.metavars = keep->pdata[keep->len - 1];
        }
        sp.help = str(a, "help");
        if (json_object_has_member(a, "help_suppress"))
            sp.help = ARGS_SUPPRESS;
        sp.konst = str(a, "const");
        if (json_object_has_member(a, "default") &&
            !json_object_get_null_member(a, "default")) {
            JsonNode *d = json_object_get_member(a, "default");
            if (JSON_NODE_HOLDS_ARRAY(d)) {
                sp.deflt_type = ARGV_LIST;
            } else if (json_node_get_value_type(d) == G_TYPE_BOOLEAN) {
                sp.deflt_type = ARGV_BOOL;
                sp.deflt = json_node_get_boolean(d) ? "True" : "False";
            } else if (json_node_get_value_type(d) == G_TYPE_INT64) {
                sp.deflt_type = ARGV_INT;
                char *v =
                    g_strdup_printf("%" G_GINT64_FORMAT, json_node_get_int(d));
                g_ptr_array_add(keep, v);
                sp.deflt = v;
            } else {
                sp.deflt = json_node_get_string(d);
            }
        }
        if (json_object_has_member(a, "choices")) {
            JsonArray *c = json_object_get_array_member(a, "choices");
            GPtrArray *cs = g_ptr_array_new();
            for (guint k = 0; k < json_array_get_length(c); k++)
                g_ptr_array_add(cs,
                                (gpointer)json_array_get_string_element(c, k));
            g_ptr_array_add(cs, NULL);
            g_ptr_array_add(keep, g_ptr_array_free(cs, FALSE));
            sp.choices = keep->pdata[keep->len - 1];
        }
        sp.required = json_object_has_member(a, "required") &&
                      json_object_get_boolean_member(a, "required");
        sp.is_int = g_strcmp0(str(a, "type"), "int") == 0;
        int sec = json_object_has_member(a, "section")
                      ? (int)json_object_get_int_member(a, "section")
                      : 0;
        int mutex = json_object_has_member(a, "mutex")
                        ? (int)json_object_get_int_member(a, "mutex")
                        : 0;
        args_add_in(p, sec ? sec + 1 : 0, mutex, &sp);
    }
    if (json_object_has_member(o, "defaults")) {
        JsonObject *d = json_object_get_object_member(o, "defaults");
        GList *ms = json_object_get_members(d);
        for (GList *m = ms; m; m = m->next) {
            JsonNode *n = json_object_get_member(d, m->data);
            if (JSON_NODE_HOLDS_VALUE(n) &&
                json_node_get_value_type(n) == G_TYPE_INT64) {
                ArgValue *v = args_value_new(ARGV_INT);
                v->i = json_node_get_int(n);
                args_set_default_value(p, m->data, v);
            } else if (JSON_NODE_HOLDS_VALUE(n) &&
                       json_node_get_value_type(n) == G_TYPE_BOOLEAN) {
                ArgValue *v = args_value_new(ARGV_BOOL);
                v->i = json_node_get_boolean(n);
                args_set_default_value(p, m->data, v);
            } else {
                args_set_default(p, m->data, str(d, m->data));
            }
        }
        g_list_free(ms);
    }
    if (json_object_has_member(o, "subparsers")) {
        JsonObject *s = json_object_get_object_member(o, "subparsers");
        ArgsAction *sp = args_add_subparsers(
            p, str(s, "dest"), str(s, "title"), str(s, "description"),
            str(s, "metavar"), str(s, "help"),
            json_object_has_member(s, "required") &&
                json_object_get_boolean_member(s, "required"));
        JsonArray *ps = json_object_get_array_member(s, "parsers");
        for (guint i = 0; i < json_array_get_length(ps); i++) {
            JsonObject *c = json_array_get_object_element(ps, i);
            GPtrArray *al = g_ptr_array_new();
            if (json_object_has_member(c, "aliases")) {
                JsonArray *a = json_object_get_array_member(c, "aliases");
                for (guint k = 0; k < json_array_get_length(a); k++)
                    g_ptr_array_add(
                        al, (gpointer)json_array_get_string_element(a, k));
            }
            g_ptr_array_add(al, NULL);
            ArgsParser *child = args_add_parser(
                sp, str(c, "name"), (const char *const *)al->pdata,
                str(c, "help"), str(c, "description"), str(c, "epilog"),
                fmt_of(c));
            g_ptr_array_unref(al);
            fill(child, c, keep);
        }
    }
}

static JsonNode *value_node(const ArgValue *v)
{
    JsonNode *n;
    switch (v->type) {
    case ARGV_STR:
        n = json_node_new(JSON_NODE_VALUE);
        json_node_set_string(n, v->s);
        return n;
    case ARGV_INT:
        n = json_node_new(JSON_NODE_VALUE);
        json_node_set_int(n, v->i);
        return n;
    case ARGV_BOOL:
        n = json_node_new(JSON_NODE_VALUE);
        json_node_set_boolean(n, v->i != 0);
        return n;
    case ARGV_LIST: {
        JsonArray *a = json_array_new();
        for (guint i = 0; i < v->list->len; i++)
            json_array_add_string_element(a, v->list->pdata[i]);
        n = json_node_new(JSON_NODE_ARRAY);
        json_node_take_array(n, a);
        return n;
    }
    default:
        return json_node_new(JSON_NODE_NULL);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: argparse-probe SPEC.json ARGS...\n");
        return 64;
    }
    g_autoptr(JsonParser) jp = json_parser_new();
    g_autoptr(GError) err = NULL;
    if (!json_parser_load_from_file(jp, argv[1], &err)) {
        fprintf(stderr, "%s\n", err->message);
        return 64;
    }
    JsonObject *o = json_object_get_object_member(
        json_node_get_object(json_parser_get_root(jp)), "parser");
    ArgsParser *p =
        args_parser_new(str(o, "prog"), str(o, "usage"), str(o, "description"),
                        str(o, "epilog"), fmt_of(o));
    g_autoptr(GPtrArray) keep = g_ptr_array_new_with_free_func(g_free);
    if (g_strcmp0(str(o, "argument_default"), "SUPPRESS") == 0)
        args_parser_suppress_defaults(p);
    if (json_object_has_member(o, "allow_abbrev") &&
        !json_object_get_boolean_member(o, "allow_abbrev"))
        args_parser_no_abbrev(p);
    fill(p, o, keep);
    argv[1] = argv[0];
    g_autoptr(ArgsNamespace) ns = args_parse(p, argc - 1, argv + 1);
    g_autoptr(JsonBuilder) b = json_builder_new();
    JsonObject *out = json_object_new();
    g_autoptr(GPtrArray) dests = args_dests(ns);
    for (guint i = 0; i < dests->len; i++)
        json_object_set_member(out, dests->pdata[i],
                               value_node(args_get(ns, dests->pdata[i])));
    JsonNode *root = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(root, out);
    g_autoptr(JsonGenerator) gen = json_generator_new();
    json_generator_set_root(gen, root);
    g_autofree char *text = json_generator_to_data(gen, NULL);
    printf("%s\n", text);
    json_node_unref(root);
    args_parser_free(p);
    return 0;
}
