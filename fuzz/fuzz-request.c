/* fuzz-request: the Admin API request framing (qubes_request_parse) and
 * the number validation applied to arguments and payloads. Properties:
 * no crash or sanitizer report; a parsed request came from at most 64 KiB
 * with a NUL, its header fields are printable ASCII (spaces only in the
 * destination; any may be empty, for the method and qube lookups to
 * refuse), and
 * the payload is exactly what followed the NUL; a refusal is a
 * ProtocolError. */
#include "protocol.h"
#include "qubes-error.h"
#include "qubes-parse.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Printable ASCII; spaces only in the destination, the last field. Any
 * field may be empty. As in the reference, which splits the header at its
 * first three spaces and leaves the checks of the method, source and
 * destination names to the method lookup and the qube lookup. */
static void check_field(const char *s, gboolean may_have_space)
{
    for (const char *p = s; *p; p++)
        if (*p < ' ' || *p > '~' || (*p == ' ' && !may_have_space))
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    GError *error = NULL;
    QubesRequest *r = qubes_request_parse(data, size, &error);
    if (!r) {
        if (!error || error->domain != QUBES_ERROR ||
            error->code != QUBES_ERROR_PROTOCOL)
            abort();
        g_error_free(error);
        return 0;
    }
    const uint8_t *nul = memchr(data, 0, size);
    if (size > QUBES_REQUEST_MAX || !nul)
        abort();
    check_field(r->untrusted_method, FALSE);
    check_field(r->untrusted_arg, FALSE);
    check_field(r->untrusted_src, FALSE);
    check_field(r->untrusted_dest, TRUE);
    gsize plen;
    const void *p = g_bytes_get_data(r->untrusted_payload, &plen);
    if (plen != size - (size_t)(nul + 1 - data) ||
        (plen && memcmp(p, nul + 1, plen) != 0))
        abort();
    /* Numbers as the methods take them from the argument and payload. */
    gint64 v;
    if (qubes_parse_number(r->untrusted_arg, FALSE, "Size",
                           QUBES_ERROR_PROTOCOL, &v, NULL) &&
        v < 0)
        abort();
    g_autofree char *payload = plen ? g_strndup(p, plen) : g_strdup("");
    qubes_parse_number(payload, TRUE, "Value", QUBES_ERROR_PROTOCOL, &v, NULL);
    qubes_request_free(r);
    return 0;
}
