/* profile.c: backup profiles (see profile.h). */
#include "profile.h"

#include "qubes-error.h"

#include <string.h>
#include <yaml.h>

void qubes_backup_profile_free(QubesBackupProfile *p)
{
    if (!p)
        return;
    g_strfreev(p->include);
    g_strfreev(p->exclude);
    g_free(p->destination_vm);
    g_free(p->destination_path);
    if (p->passphrase_text) {
        memset(p->passphrase_text, 0, strlen(p->passphrase_text));
        g_free(p->passphrase_text);
    }
    g_free(p->passphrase_vm);
    g_free(p->compression_filter);
    g_free(p);
}

static gboolean refuse(GError **error, const char *name, const char *why)
{
    g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                "Invalid backup profile %s: %s", name, why);
    return FALSE;
}

/* YAML 1.1's implicit null and booleans, as PyYAML resolves a plain
 * scalar. */
static gboolean plain_is(const yaml_node_t *n, const char *const *words)
{
    if (n->type != YAML_SCALAR_NODE ||
        n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE ||
        (n->tag && strcmp((const char *)n->tag, YAML_STR_TAG) != 0 &&
         strcmp((const char *)n->tag, YAML_DEFAULT_SCALAR_TAG) != 0))
        return FALSE;
    const char *v = (const char *)n->data.scalar.value;
    return g_strv_contains(words, v);
}

static const char *const null_words[] = {"", "~", "null", "Null", "NULL", NULL};
static const char *const true_words[] = {"yes",  "Yes", "YES", "true", "True",
                                         "TRUE", "on",  "On",  "ON",   NULL};
static const char *const false_words[] = {
    "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF", NULL};

static gboolean is_null(const yaml_node_t *n)
{
    return plain_is(n, null_words);
}

/* A scalar's text: NUL-free UTF-8 (libyaml checked the encoding). */
static char *scalar_text(const yaml_node_t *n, const char *name,
                         const char *key, GError **error)
{
    if (n->type != YAML_SCALAR_NODE) {
        g_autofree char *why = g_strdup_printf("'%s' is not a value", key);
        refuse(error, name, why);
        return NULL;
    }
    const char *v = (const char *)n->data.scalar.value;
    if (strlen(v) != n->data.scalar.length) {
        g_autofree char *why = g_strdup_printf("'%s' holds a NUL", key);
        refuse(error, name, why);
        return NULL;
    }
    return g_strdup(v);
}

/* A list of names (null: NULL with no error, when @null_ok). */
static gboolean name_list(yaml_document_t *doc, const yaml_node_t *n,
                          const char *name, const char *key, GStrv *out,
                          GError **error)
{
    *out = NULL;
    if (is_null(n))
        return TRUE;
    if (n->type != YAML_SEQUENCE_NODE) {
        g_autofree char *why = g_strdup_printf("'%s' is not a list", key);
        return refuse(error, name, why);
    }
    g_autoptr(GStrvBuilder) b = g_strv_builder_new();
    for (yaml_node_item_t *i = n->data.sequence.items.start;
         i < n->data.sequence.items.top; i++) {
        const yaml_node_t *item = yaml_document_get_node(doc, *i);
        g_autofree char *v = item ? scalar_text(item, name, key, error) : NULL;
        if (!v)
            return item ? FALSE : refuse(error, name, "a broken list");
        /* the old keywords: $tag:, $type: */
        g_strdelimit(v, "$", '@');
        g_strv_builder_add(b, v);
    }
    *out = g_strv_builder_end(b);
    return TRUE;
}

static const yaml_node_t *lookup(yaml_document_t *doc, const yaml_node_t *map,
                                 const char *key)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start;
         p < map->data.mapping.pairs.top; p++) {
        const yaml_node_t *k = yaml_document_get_node(doc, p->key);
        if (k && k->type == YAML_SCALAR_NODE &&
            strcmp((const char *)k->data.scalar.value, key) == 0)
            return yaml_document_get_node(doc, p->value);
    }
    return NULL;
}

static gboolean missing(GError **error, const char *key)
{
    g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                "Invalid backup profile - missing '%s'", key);
    return FALSE;
}

static gboolean fill(yaml_document_t *doc, const char *name,
                     QubesBackupProfile *p, GError **error)
{
    const yaml_node_t *root = yaml_document_get_root_node(doc);
    if (!root || root->type != YAML_MAPPING_NODE)
        return refuse(error, name, "not a mapping of keys to values");
    /* the reference's order of checks: destination_vm, destination_path,
     * include (each a KeyError there), then the optional keys */
    const yaml_node_t *n = lookup(doc, root, "destination_vm");
    if (!n)
        return missing(error, "destination_vm");
    if (!(p->destination_vm = scalar_text(n, name, "destination_vm", error)))
        return FALSE;
    if (!(n = lookup(doc, root, "destination_path")))
        return missing(error, "destination_path");
    if (!(p->destination_path =
              scalar_text(n, name, "destination_path", error)))
        return FALSE;
    if (!(n = lookup(doc, root, "include")))
        return missing(error, "include");
    if (!name_list(doc, n, name, "include", &p->include, error))
        return FALSE;
    if ((n = lookup(doc, root, "exclude")) &&
        !name_list(doc, n, name, "exclude", &p->exclude, error))
        return FALSE;
    if (!p->exclude)
        p->exclude = g_new0(char *, 1);
    /* compression: a boolean, or a filter's name (the reference: any
     * string is a filter, and an empty one means none) */
    p->compressed = TRUE;
    if ((n = lookup(doc, root, "compression"))) {
        if (is_null(n) || plain_is(n, false_words)) {
            p->compressed = FALSE;
        } else if (n->type == YAML_SCALAR_NODE &&
                   n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                   g_regex_match_simple("^[-+]?[0-9]+$",
                                        (const char *)n->data.scalar.value, 0,
                                        0)) {
            /* a number: its truth, the default filter */
            p->compressed = g_ascii_strtoll((const char *)n->data.scalar.value,
                                            NULL, 10) != 0;
        } else if (!plain_is(n, true_words)) {
            g_autofree char *v = scalar_text(n, name, "compression", error);
            if (!v)
                return FALSE;
            p->compressed = *v != '\0';
            if (*v)
                p->compression_filter = g_steal_pointer(&v);
        }
    }
    if ((n = lookup(doc, root, "passphrase_text")) &&
        !(p->passphrase_text = scalar_text(n, name, "passphrase_text", error)))
        return FALSE;
    if ((n = lookup(doc, root, "passphrase_vm")) &&
        !(p->passphrase_vm = scalar_text(n, name, "passphrase_vm", error)))
        return FALSE;
    return TRUE;
}

QubesBackupProfile *qubes_backup_profile_parse(const char *untrusted, gsize len,
                                               const char *name, GError **error)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        refuse(error, name, "out of memory");
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)untrusted,
                                 len);
    if (!yaml_parser_load(&parser, &doc)) {
        g_autofree char *why =
            g_strdup_printf("line %zu: %s", parser.problem_mark.line + 1,
                            parser.problem ? parser.problem : "not YAML");
        refuse(error, name, why);
        yaml_parser_delete(&parser);
        return NULL;
    }
    g_autoptr(QubesBackupProfile) p = g_new0(QubesBackupProfile, 1);
    gboolean ok = fill(&doc, name, p, error);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return ok ? g_steal_pointer(&p) : NULL;
}

/* ---- writing, as yaml.safe_dump ---- */

/* What PyYAML's resolver reads a plain scalar as, other than a string
 * (YAML 1.1: integers in every base, sexagesimals, floats, timestamps,
 * the merge and value keys). */
static gboolean resolves_to_other(const char *s)
{
    static const char *const patterns[] = {
        "^[-+]?0b[0-1_]+$",
        "^[-+]?0[0-7_]+$",
        "^[-+]?(0|[1-9][0-9_]*)$",
        "^[-+]?0x[0-9a-fA-F_]+$",
        "^[-+]?[1-9][0-9_]*(:[0-5]?[0-9])+$",
        "^[-+]?([0-9][0-9_]*)\\.[0-9_]*([eE][-+][0-9]+)?$",
        "^\\.[0-9_]+([eE][-+][0-9]+)?$",
        "^[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+\\.[0-9_]*$",
        "^[-+]?\\.(inf|Inf|INF)$",
        "^\\.(nan|NaN|NAN)$",
        "^[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?"
        "([Tt]|[ \\t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](\\.[0-9]*)?"
        "(([ \\t]*)Z|[-+][0-9][0-9]?(:[0-9][0-9])?)?$",
        "^[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]$",
        "^<<$",
        "^=$",
    };
    if (g_strv_contains(null_words, s) || g_strv_contains(true_words, s) ||
        g_strv_contains(false_words, s))
        return TRUE;
    for (guint i = 0; i < G_N_ELEMENTS(patterns); i++)
        if (g_regex_match_simple(patterns[i], s, 0, 0))
            return TRUE;
    return FALSE;
}

/* Whether PyYAML's emitter writes @s plain in block context
 * (Emitter.analyze_scalar's rules, ASCII only as safe_dump leaves
 * allow_unicode off, then the resolver's). */
static gboolean plain_ok(const char *s)
{
    gsize n = strlen(s);
    if (!n || s[0] == ' ' || s[n - 1] == ' ')
        return FALSE;
    if (strchr("#,[]{}&*!|>'\"%@`", s[0]))
        return FALSE;
    if (strchr("?:-", s[0]) && (s[1] == '\0' || s[1] == ' '))
        return FALSE;
    for (gsize i = 0; i < n; i++) {
        guchar c = (guchar)s[i];
        if (c < 0x20 || c >= 0x7f)
            return FALSE;
        if (c == ':' && (s[i + 1] == '\0' || s[i + 1] == ' '))
            return FALSE;
        if (c == '#' && i > 0 && s[i - 1] == ' ')
            return FALSE;
    }
    return !resolves_to_other(s);
}

static void put_string(GString *out, const char *s)
{
    if (plain_ok(s)) {
        g_string_append(out, s);
        return;
    }
    gboolean printable = TRUE;
    for (const char *c = s; *c; c++)
        if ((guchar)*c < 0x20 || *c == 0x7f)
            printable = FALSE;
    if (printable) {
        g_string_append_c(out, '\'');
        for (const char *c = s; *c; c++) {
            if (*c == '\'')
                g_string_append_c(out, '\'');
            g_string_append_c(out, *c);
        }
        g_string_append_c(out, '\'');
        return;
    }
    g_string_append_c(out, '"');
    for (const char *c = s; *c; c++) {
        if ((guchar)*c < 0x20 || *c == 0x7f)
            g_string_append_printf(out, "\\x%02x", (guchar)*c);
        else if (*c == '"' || *c == '\\')
            g_string_append_printf(out, "\\%c", *c);
        else
            g_string_append_c(out, *c);
    }
    g_string_append_c(out, '"');
}

static void put_list(GString *out, const char *key, GStrv list)
{
    g_string_append_printf(out, "%s:", key);
    if (!list) {
        g_string_append(out, " null\n");
        return;
    }
    if (!*list) {
        g_string_append(out, " []\n");
        return;
    }
    g_string_append_c(out, '\n');
    for (GStrv i = list; *i; i++) {
        g_string_append(out, "- ");
        put_string(out, *i);
        g_string_append_c(out, '\n');
    }
}

char *qubes_backup_profile_format(const QubesBackupProfile *p)
{
    GString *out = g_string_new(NULL);
    g_string_append(out, "compression: ");
    if (p->compression_filter)
        put_string(out, p->compression_filter);
    else
        g_string_append(out, p->compressed ? "true" : "false");
    g_string_append(out, "\ndestination_path: ");
    put_string(out, p->destination_path);
    g_string_append(out, "\ndestination_vm: ");
    put_string(out, p->destination_vm);
    g_string_append_c(out, '\n');
    if (p->exclude && *p->exclude)
        put_list(out, "exclude", p->exclude);
    put_list(out, "include", p->include);
    if (p->passphrase_text) {
        g_string_append(out, "passphrase_text: ");
        put_string(out, p->passphrase_text);
        g_string_append_c(out, '\n');
    }
    if (p->passphrase_vm) {
        g_string_append(out, "passphrase_vm: ");
        put_string(out, p->passphrase_vm);
        g_string_append_c(out, '\n');
    }
    return g_string_free(out, FALSE);
}
