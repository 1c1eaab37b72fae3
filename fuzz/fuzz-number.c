/* fuzz-number: the untrusted number parser (qubes_parse_number and its
 * uint64/int64 forms). Properties: what it accepts is ASCII digits (and a
 * leading '-' where allowed), at most 19 of them, no spurious leading
 * zero, and prints back to the same text; a refusal carries a message. */
#include "qubes-error.h"
#include "qubes-parse.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autofree char *s = g_strndup((const char *)data, size);
    for (int neg = 0; neg <= 1; neg++) {
        gint64 v;
        GError *error = NULL;
        if (qubes_parse_number(s, neg, "Number", QUBES_ERROR_PROTOCOL, &v,
                               &error)) {
            if (error || (!neg && v < 0))
                abort();
            g_autofree char *back = g_strdup_printf("%" G_GINT64_FORMAT, v);
            /* "-0" is accepted as 0, as the reference does. */
            if (strcmp(back, s) != 0 && strcmp(s, "-0") != 0)
                abort();
            const char *digits = s[0] == '-' ? s + 1 : s;
            if (strlen(digits) > 19 || (digits[0] == '0' && digits[1]))
                abort();
        } else {
            if (!error || !error->message[0])
                abort();
            g_error_free(error);
        }
    }
    guint64 u;
    if (qubes_parse_uint64(s, "number", &u, NULL)) {
        g_autofree char *back = g_strdup_printf("%" G_GUINT64_FORMAT, u);
        if (strcmp(back, s) != 0)
            abort();
    }
    return 0;
}
