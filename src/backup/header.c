/* header.c: the backup-header file (see header.h). */
#include "header.h"

#include "qubes-error.h"

#include <string.h>

void qubes_backup_header_clear(QubesBackupHeader *h)
{
    g_free(h->compression_filter);
    g_free(h->hmac_algorithm);
    g_free(h->crypto_algorithm);
    g_free(h->backup_id);
    memset(h, 0, sizeof *h);
}

static gboolean refuse(GError **error, const char *msg)
{
    g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION, msg);
    return FALSE;
}

static gboolean alnum_dash(const char *s)
{
    for (; *s; s++)
        if (!g_ascii_isalnum(*s) && *s != '-')
            return FALSE;
    return TRUE;
}

static const char *const known_filters[] = {"gzip", "bzip2", "xz", NULL};
/* the client's KNOWN_HMAC_ALGORITHMS and crypto algorithms that a
 * version 2 or 3 backup may name (openssl's names; "scrypt" for 4) */
static const char *const hmac_algorithms[] = {"scrypt", "sha512", "sha256",
                                              "sha1", NULL};
static const char *const crypto_algorithms[] = {"aes-256-cbc", "aes-256-ctr",
                                                "aes-128-cbc", "scrypt", NULL};

static gboolean in_list(const char *const *list, const char *v)
{
    g_autofree char *low = g_ascii_strdown(v, -1);
    return g_strv_contains(list, low);
}

gboolean qubes_backup_header_parse(const char *untrusted, gsize len,
                                   const char *allow_filter,
                                   QubesBackupHeader *h, GError **error)
{
    for (gsize i = 0; i < len; i++)
        if ((guchar)untrusted[i] >= 0x80)
            return refuse(error, "Non-ASCII characters in backup header");
    g_autofree char *text = g_strndup(untrusted, len);
    if (strlen(text) != len)
        return refuse(error, "Invalid backup header");
    g_auto(GStrv) lines = g_strsplit_set(text, "\n", -1);
    gboolean seen[7] = {FALSE};
    static const char *const keys[] = {"version",        "encrypted",
                                       "compressed",     "compression-filter",
                                       "hmac-algorithm", "crypto-algorithm",
                                       "backup-id",      NULL};
    for (guint i = 0; lines[i]; i++) {
        char *line = g_strstrip(lines[i]);
        if (!*line && !lines[i + 1])
            break; /* the last newline */
        char *eq = strchr(line, '=');
        if (!eq || strchr(eq + 1, '='))
            return refuse(error, "Invalid backup header");
        *eq = 0;
        const char *key = line, *value = eq + 1;
        if (!alnum_dash(key))
            return refuse(error, "Invalid backup header (key)");
        int k = -1;
        for (int j = 0; keys[j]; j++)
            if (strcmp(keys[j], key) == 0)
                k = j;
        if (k < 0)
            continue; /* unknown: ignored, as the client does */
        if (seen[k]) {
            g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                        "Duplicated header line: %s", key);
            return FALSE;
        }
        seen[k] = TRUE;
        if (!alnum_dash(value))
            return refuse(error, "Invalid backup header (value)");
        g_autofree char *low = g_ascii_strdown(value, -1);
        gboolean b = strcmp(low, "1") == 0 || strcmp(low, "true") == 0 ||
                     strcmp(low, "yes") == 0;
        gboolean ok = TRUE;
        switch (k) {
        case 0: {
            guint64 v;
            ok = g_ascii_string_to_unsigned(value, 10, 1, 4, &v, NULL);
            h->version = ok ? (int)v : 0;
            break;
        }
        case 1:
            h->encrypted = b;
            break;
        case 2:
            h->compressed = b;
            break;
        case 3:
            if (!g_strv_contains(known_filters, value) &&
                g_strcmp0(allow_filter, value) != 0) {
                g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                            "Unusual compression filter '%s' found. Use "
                            "--compression-filter=%s to use it anyway.",
                            value, value);
                return FALSE;
            }
            h->compression_filter = g_strdup(value);
            break;
        case 4:
            ok = in_list(hmac_algorithms, value);
            h->hmac_algorithm = g_strdup(value);
            break;
        case 5:
            ok = in_list(crypto_algorithms, value);
            h->crypto_algorithm = g_strdup(value);
            break;
        case 6:
            ok = *value && value[0] != '-';
            h->backup_id = g_strdup(value);
            break;
        }
        if (!ok) {
            g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                        "Invalid value for header: %s", key);
            return FALSE;
        }
    }
    if (h->version < 2 || h->version > 4) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                    "Unsupported backup version %d", h->version);
        return FALSE;
    }
    const struct {
        const char *field;
        gboolean need;
        gboolean have;
    } need[] = {
        {"version", TRUE, seen[0]},
        {"encrypted", TRUE, seen[1]},
        {"compressed", TRUE, seen[2]},
        {"hmac_algorithm", TRUE, seen[4]},
        {"crypto_algorithm", h->encrypted && h->version < 4, seen[5]},
        {"compression_filter", h->version >= 3 && h->compressed, seen[3]},
        {"backup_id", h->version >= 4, seen[6]},
    };
    for (guint i = 0; i < G_N_ELEMENTS(need); i++)
        if (need[i].need && !need[i].have) {
            g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                        "Backup header lack '%s' info", need[i].field);
            return FALSE;
        }
    return TRUE;
}

char *qubes_backup_header_format(const QubesBackupHeader *h)
{
    GString *s = g_string_new(NULL);
    g_string_append_printf(s, "version=%d\n", h->version);
    g_string_append_printf(s, "encrypted=%s\n",
                           h->encrypted ? "True" : "False");
    g_string_append_printf(s, "compressed=%s\n",
                           h->compressed ? "True" : "False");
    if (h->compression_filter)
        g_string_append_printf(s, "compression-filter=%s\n",
                               h->compression_filter);
    if (h->crypto_algorithm)
        g_string_append_printf(s, "crypto-algorithm=%s\n", h->crypto_algorithm);
    if (h->hmac_algorithm)
        g_string_append_printf(s, "hmac-algorithm=%s\n", h->hmac_algorithm);
    if (h->backup_id)
        g_string_append_printf(s, "backup-id=%s\n", h->backup_id);
    return g_string_free(s, FALSE);
}
