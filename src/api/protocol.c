/* protocol.c: see protocol.h. Follows qubes/api/__init__.py
 * (QubesDaemonProtocol) byte for byte. */
#include "protocol.h"

#include "qubes-error.h"

#include <string.h>

void qubes_request_free(QubesRequest *req)
{
    if (!req)
        return;
    g_free(req->untrusted_method);
    g_free(req->untrusted_arg);
    g_free(req->untrusted_src);
    g_free(req->untrusted_dest);
    if (req->untrusted_payload)
        g_bytes_unref(req->untrusted_payload);
    g_free(req);
}

static gboolean framing(GError **error, const char *why)
{
    g_set_error(error, QUBES_ERROR, QUBES_ERROR_PROTOCOL, "framing error: %s",
                why);
    return FALSE;
}

QubesRequest *qubes_request_parse(const guint8 *untrusted_data, gsize len,
                                  GError **error)
{
    if (len > QUBES_REQUEST_MAX) {
        framing(error, "request too long");
        return NULL;
    }
    const guint8 *nul = len ? memchr(untrusted_data, 0, len) : NULL;
    if (!nul) {
        framing(error, "no NUL after the header");
        return NULL;
    }
    gsize hlen = (gsize)(nul - untrusted_data);
    for (gsize i = 0; i < hlen; i++) {
        if (untrusted_data[i] < 0x20 || untrusted_data[i] > 0x7e) {
            framing(error, "header is not printable ASCII");
            return NULL;
        }
    }
    g_autofree char *untrusted_header =
        g_strndup((const char *)untrusted_data, hlen);
    g_auto(GStrv) parts = g_strsplit(untrusted_header, " ", 4);
    if (g_strv_length(parts) != 4) {
        framing(error, "header has fewer than four fields");
        return NULL;
    }
    const char *untrusted_dest_type = parts[2];
    const char *untrusted_dest = parts[3];
    if (strcmp(untrusted_dest_type, "keyword") == 0 &&
        strcmp(untrusted_dest, "adminvm") == 0) {
        untrusted_dest_type = "name";
        untrusted_dest = "dom0";
    }
    if (strcmp(untrusted_dest_type, "name") != 0) {
        framing(error, "only explicit destination names are supported");
        return NULL;
    }
    QubesRequest *req = g_new0(QubesRequest, 1);
    char *plus = strchr(parts[0], '+');
    req->untrusted_method = plus ? g_strndup(parts[0], (gsize)(plus - parts[0]))
                                 : g_strdup(parts[0]);
    req->untrusted_arg = g_strdup(plus ? plus + 1 : "");
    req->untrusted_src = g_strdup(parts[1]);
    req->untrusted_dest = g_strdup(untrusted_dest);
    req->untrusted_payload = g_bytes_new(nul + 1, len - hlen - 1);
    return req;
}

GBytes *qubes_response_ok(const char *content, gsize len)
{
    GByteArray *out = g_byte_array_sized_new((guint)len + 2);
    g_byte_array_append(out, (const guint8 *)"0\0", 2);
    if (content)
        g_byte_array_append(out, (const guint8 *)content, (guint)len);
    return g_byte_array_free_to_bytes(out);
}

static void put(GByteArray *out, const char *s)
{
    g_byte_array_append(out, (const guint8 *)s, (guint)strlen(s) + 1);
}

GBytes *qubes_response_event(const char *subject, const char *event,
                             const char *const *kwargs)
{
    GByteArray *out = g_byte_array_new();
    g_byte_array_append(out, (const guint8 *)"1\0", 2);
    put(out, subject ? subject : "");
    put(out, event);
    for (const char *const *kv = kwargs; kv && kv[0] && kv[1]; kv += 2) {
        put(out, kv[0]);
        put(out, kv[1]);
    }
    g_byte_array_append(out, (const guint8 *)"", 1);
    return g_byte_array_free_to_bytes(out);
}

GBytes *qubes_response_exception(const char *type, const char *traceback,
                                 const char *message)
{
    GByteArray *out = g_byte_array_new();
    g_byte_array_append(out, (const guint8 *)"2\0", 2);
    put(out, type);
    put(out, traceback ? traceback : "");
    put(out, message ? message : "");
    return g_byte_array_free_to_bytes(out);
}
