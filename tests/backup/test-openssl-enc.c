/* test-openssl-enc: src/backup/openssl-enc.c against the `openssl` tool,
 * as format 3 backups were made with it. What `openssl enc -e -CIPHER -md
 * MD5 -pass pass:P` writes we decrypt to the same bytes, fed in pieces of
 * any size (the salt split too), for CBC and CTR ciphers and sizes around
 * the block; a stream that is not one, cut, or under a wrong passphrase is
 * refused, as are unknown and AEAD ciphers and names that are not names.
 * What `openssl dgst -ALGO -hmac P` prints we accept (OpenSSL 3's
 * "SHA2-512(stdin)= " and 1.0's "(stdin)= "); a changed byte, a wrong
 * passphrase, a text without "=", non-ASCII, a NUL or more than 4096
 * bytes is refused in the client's words. */
#include "openssl-enc.h"
#include "qubes-error.h"
#include "util.h"

#include <string.h>

static char *dir;

/* @len bytes of a repeating pattern with a counter (not constant). */
static guint8 *pattern(gsize len)
{
    guint8 *b = g_malloc(len + 1);
    for (gsize i = 0; i < len; i++)
        b[i] = (guint8)(i * 7 + (i >> 9));
    return b;
}

/* @enc decrypted by us under @cipher and @pass, fed in pieces from
 * @step (0: whole); NULL with @error set when refused. */
static GByteArray *ours(const char *cipher, const char *pass, GBytes *enc,
                        gsize step, GError **error)
{
    gsize len = 0;
    const guint8 *p = g_bytes_get_data(enc, &len);
    g_autoptr(QubesEncReader) r = qubes_enc_reader_new(cipher, pass, error);
    if (!r)
        return NULL;
    GByteArray *out = g_byte_array_new();
    for (gsize off = 0, k = 1; off < len; k++) {
        gsize n = step ? MIN(len - off, 1 + (k * step) % (3 * step)) : len;
        if (!qubes_enc_reader_update(r, p + off, n, out, "f.000", error)) {
            g_byte_array_unref(out);
            return NULL;
        }
        off += n;
    }
    if (!qubes_enc_reader_finish(r, out, "f.000", error)) {
        g_byte_array_unref(out);
        return NULL;
    }
    return out;
}

static void test_decrypts_openssl(void)
{
    if (!bt_have("openssl"))
        return;
    const char *ciphers[] = {"aes-256-cbc", "aes-128-cbc", "aes-256-ctr"};
    const gsize sizes[] = {0, 1, 15, 16, 17, 4096, 100003, 3 << 20};
    const gsize steps[] = {0, 1, 5, 4099};
    for (guint c = 0; c < G_N_ELEMENTS(ciphers); c++)
        for (guint s = 0; s < G_N_ELEMENTS(sizes); s++) {
            g_autofree guint8 *data = pattern(sizes[s]);
            g_autofree char *cmd = g_strdup_printf(
                "openssl enc -e -%s -md MD5 -pass pass:pass-%u", ciphers[c], s);
            g_autoptr(GBytes) enc = bt_pipe(dir, cmd, data, sizes[s]);
            g_autofree char *pass = g_strdup_printf("pass-%u", s);
            for (guint k = 0; k < G_N_ELEMENTS(steps); k++) {
                if (sizes[s] > 200000 && steps[k] == 1)
                    continue;
                g_autoptr(GError) err = NULL;
                g_autoptr(GByteArray) out =
                    ours(ciphers[c], pass, enc, steps[k], &err);
                g_assert_no_error(err);
                g_assert_cmpuint(out->len, ==, sizes[s]);
                g_assert_true(sizes[s] == 0 ||
                              memcmp(out->data, data, sizes[s]) == 0);
            }
        }
}

static void test_refusals(void)
{
    if (!bt_have("openssl"))
        return;
    g_autofree guint8 *data = pattern(1000);
    g_autoptr(GBytes) enc =
        bt_pipe(dir, "openssl enc -e -aes-256-cbc -md MD5 -pass pass:right",
                data, 1000);
    /* a wrong passphrase: the padding is wrong, or (1 in 256) the text */
    for (int i = 0; i < 4; i++) {
        g_autofree char *wrong = g_strdup_printf("wrong-%d", i);
        g_autoptr(GError) err = NULL;
        g_autoptr(GByteArray) out = ours("aes-256-cbc", wrong, enc, 0, &err);
        if (out) {
            g_assert_false(out->len == 1000 &&
                           memcmp(out->data, data, 1000) == 0);
            continue;
        }
        g_assert_error(err, QUBES_ERROR, QUBES_ERROR_EXCEPTION);
        g_assert_nonnull(strstr(err->message, "f.000: bad decrypt"));
    }
    /* cut: in the salt, and inside a block */
    gsize len = 0;
    const guint8 *p = g_bytes_get_data(enc, &len);
    const gsize cuts[] = {10, len - 5};
    for (guint i = 0; i < G_N_ELEMENTS(cuts); i++) {
        g_autoptr(GBytes) cut = g_bytes_new(p, cuts[i]);
        g_autoptr(GError) err = NULL;
        g_assert_null(ours("aes-256-cbc", "right", cut, 0, &err));
        g_assert_error(err, QUBES_ERROR, QUBES_ERROR_EXCEPTION);
        g_assert_true(g_str_has_prefix(err->message, "f.000: "));
    }
    /* not an openssl enc stream */
    g_autoptr(GBytes) plain = g_bytes_new(data, 1000);
    g_autoptr(GError) err = NULL;
    g_assert_null(ours("aes-256-cbc", "right", plain, 7, &err));
    g_assert_cmpstr(err->message, ==,
                    "f.000: not an openssl enc stream (no \"Salted__\" "
                    "header)");
    /* ciphers: unknown, AEAD, not a name */
    const char *bad[] = {"nope-256", "aes-256-gcm", "../aes", "",
                         "aes 256 cbc"};
    for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_clear_error(&err);
        g_assert_null(qubes_enc_reader_new(bad[i], "x", &err));
        g_assert_error(err, QUBES_ERROR, QUBES_ERROR_EXCEPTION);
        g_assert_true(
            g_str_has_prefix(err->message, "Unsupported encryption algorithm"));
    }
}

static void test_hmac_texts(void)
{
    if (!bt_have("openssl"))
        return;
    g_autofree guint8 *data = pattern(70000);
    const char *algos[] = {"SHA512", "sha512", "sha256", "SHA1"};
    for (guint a = 0; a < G_N_ELEMENTS(algos); a++) {
        g_autofree char *cmd =
            g_strdup_printf("openssl dgst -%s -hmac pw", algos[a]);
        g_autoptr(GBytes) text = bt_pipe(dir, cmd, data, 70000);
        gsize tlen = 0;
        const char *t = g_bytes_get_data(text, &tlen);
        g_autoptr(GError) err = NULL;
        g_assert_true(qubes_hmac_text_check(algos[a], "pw", data, 70000, t,
                                            tlen, "f.000", &err));
        g_assert_no_error(err);
        /* ours, as OpenSSL 1.0 printed it */
        g_autofree char *mine =
            qubes_hmac_text(algos[a], "pw", data, 70000, &err);
        g_assert_true(g_str_has_prefix(mine, "(stdin)= "));
        g_assert_true(qubes_hmac_text_check(algos[a], "pw", data, 70000, mine,
                                            strlen(mine), "f.000", &err));
        /* a changed byte, a wrong passphrase */
        data[69999] ^= 1;
        g_assert_false(qubes_hmac_text_check(algos[a], "pw", data, 70000, t,
                                             tlen, "f.000", &err));
        g_assert_true(g_str_has_prefix(err->message,
                                       "ERROR: invalid hmac for file f.000: "));
        g_assert_true(
            g_str_has_suffix(err->message, ". Is the passphrase correct?"));
        data[69999] ^= 1;
        g_clear_error(&err);
        g_assert_false(qubes_hmac_text_check(algos[a], "pW", data, 70000, t,
                                             tlen, "f.000", &err));
        g_assert_true(g_str_has_prefix(err->message,
                                       "ERROR: invalid hmac for file f.000: "));
        /* the right hex with something after a NUL is not the right hex */
        g_autoptr(GByteArray) nul = g_byte_array_new();
        g_byte_array_append(nul, (const guint8 *)t, (guint)tlen - 1);
        g_byte_array_append(nul, (const guint8 *)"\0x\n", 3);
        g_clear_error(&err);
        g_assert_false(qubes_hmac_text_check(algos[a], "pw", data, 70000,
                                             (const char *)nul->data, nul->len,
                                             "f.000", &err));
        g_assert_cmpstr(err->message, ==, "Invalid content of f.000.hmac");
    }
    g_autoptr(GError) err = NULL;
    const char *odd[] = {"no equals sign here\n", "(stdin)= caf\xc3\xa9\n"};
    const char *why[] = {"ERROR: invalid hmac file content",
                         "Invalid content of f.000.hmac"};
    for (guint i = 0; i < G_N_ELEMENTS(odd); i++) {
        g_clear_error(&err);
        g_assert_false(qubes_hmac_text_check("SHA512", "pw", data, 10, odd[i],
                                             strlen(odd[i]), "f.000", &err));
        g_assert_cmpstr(err->message, ==, why[i]);
    }
    g_autofree char *big = g_strnfill(4097, 'a');
    g_clear_error(&err);
    g_assert_false(qubes_hmac_text_check("SHA512", "pw", data, 10, big, 4097,
                                         "f.000", &err));
    g_assert_cmpstr(err->message, ==, "HMAC file f.000.hmac too large");
    g_clear_error(&err);
    g_assert_false(qubes_hmac_text_check("NOPE", "pw", data, 10, "(stdin)= 00",
                                         11, "f.000", &err));
    g_assert_cmpstr(err->message, ==, "Unsupported hmac algorithm: NOPE");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    dir = g_dir_make_tmp("test-openssl-enc-XXXXXX", NULL);
    g_test_add_func("/openssl-enc/decrypts-openssl", test_decrypts_openssl);
    g_test_add_func("/openssl-enc/refusals", test_refusals);
    g_test_add_func("/openssl-enc/hmac-texts", test_hmac_texts);
    return bt_finish(g_test_run(), dir);
}
