/* fuzz-qubesxml: loading an untrusted qubes.xml (qubes_xml_parse).
 * Properties: no crash, no sanitizer report, no external entity or
 * network access (libxml2 runs with XML_PARSE_NONET and no entity
 * substitution); what it accepts serialises to a document that parses
 * again and serialises to the same bytes (load, save, load is lossless);
 * the direct writer gives the bytes of libxml2's tree. */
#include "qubesxml.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void quiet(const char *domain, GLogLevelFlags level, const char *msg,
                  gpointer data)
{
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static gboolean once;
    if (!once) {
        g_log_set_default_handler(quiet, NULL);
        once = TRUE;
    }
    GError *error = NULL;
    QubesXml *x = qubes_xml_parse((const char *)data, size, "fuzz", &error);
    if (!x) {
        if (!error)
            abort();
        g_error_free(error);
        return 0;
    }
    gsize len1, len2;
    g_autofree char *s1 = qubes_xml_serialize(x, &len1);
    gsize len_tree;
    g_autofree char *tree = qubes_xml_serialize_tree(x, &len_tree);
    if (len1 != len_tree || memcmp(s1, tree, len1) != 0) {
        fprintf(stderr, "direct writer differs:\n%s\n---\n%s\n", s1, tree);
        abort();
    }
    QubesXml *y = qubes_xml_parse(s1, len1, "saved", &error);
    if (!y) {
        fprintf(stderr, "saved file refused: %s\n%s\n", error->message, s1);
        abort();
    }
    g_autofree char *s2 = qubes_xml_serialize(y, &len2);
    if (len1 != len2 || memcmp(s1, s2, len1) != 0) {
        fprintf(stderr, "not stable:\n%s\n---\n%s\n", s1, s2);
        abort();
    }
    qubes_xml_free(y);
    qubes_xml_free(x);
    return 0;
}
