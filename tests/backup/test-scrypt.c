/* test-scrypt: the scrypt file format of src/backup/scrypt-file.c against
 * the scrypt tool itself (Debian's `scrypt`): what we write it reads,
 * what it writes we read, with the same bytes out; and every change to
 * a file refused (a header byte, a data byte, the MAC, a cut, a wrong
 * passphrase, parameters past the limits before any work). Under
 * CI=true a missing scrypt tool is a failure. */
#include "kdf-memory.h"
#include "key-ahead.h"
#include "qubes-error.h"
#include "scrypt-file.h"
#include "scrypt-kdf.h"
#include "util.h"

#include <glib/gstdio.h>
#include <string.h>

static const QubesScryptParams small = {.log_n = 10, .r = 8, .p = 1};
static char *dir;

static char *path_of(const char *name)
{
    return g_build_filename(dir, name, NULL);
}

/* The scrypt file of @data under @pw, by us. */
static GByteArray *ours_enc(const char *pw, const guint8 *data, gsize len)
{
    guint8 salt[QUBES_SCRYPT_SALT], key[QUBES_SCRYPT_KEY];
    GError *err = NULL;
    g_assert_true(qubes_scrypt_salt(salt, &err));
    g_assert_true(qubes_scrypt_derive(pw, strlen(pw), salt, &small, key, &err));
    GByteArray *out = g_byte_array_sized_new(len + 128);
    guint8 header[QUBES_SCRYPT_HEADER], mac[QUBES_SCRYPT_MAC];
    QubesScryptEnc *enc = qubes_scrypt_enc_new(key, salt, &small, header);
    g_byte_array_append(out, header, sizeof header);
    /* in pieces of odd sizes, as a stream comes */
    guint8 *buf = g_malloc(len ? len : 1);
    for (gsize off = 0; off < len;) {
        gsize n = MIN(len - off, 1 + (off * 7919) % 70001);
        qubes_scrypt_enc_update(enc, data + off, buf + off, n);
        off += n;
    }
    g_byte_array_append(out, buf, (guint)len);
    g_free(buf);
    qubes_scrypt_enc_finish(enc, mac);
    g_byte_array_append(out, mac, sizeof mac);
    return out;
}

/* The data of the scrypt file @f under @pw, by us; NULL with @error. */
static GByteArray *ours_dec(const char *pw, const guint8 *f, gsize len,
                            GError **error)
{
    return qubes_scrypt_decrypt(f, len, pw, "the file", error);
}

static guint8 *sample(gsize len)
{
    guint8 *d = g_malloc(len ? len : 1);
    for (gsize i = 0; i < len; i++)
        d[i] = (guint8)(i * 131 + (i >> 9));
    return d;
}

static void test_tool_reads_ours(void)
{
    if (!bt_have("scrypt")) {
        g_test_skip("no scrypt tool");
        return;
    }
    const gsize sizes[] = {0, 1, 15, 16, 17, 4096, 1 << 20};
    g_autofree char *pw = path_of("pw");
    g_assert_true(g_file_set_contents(pw, "pass phrase\n", -1, NULL));
    for (guint i = 0; i < G_N_ELEMENTS(sizes); i++) {
        g_autofree guint8 *data = sample(sizes[i]);
        g_autoptr(GByteArray) f = ours_enc("pass phrase", data, sizes[i]);
        g_autofree char *enc = path_of("ours.enc");
        g_autofree char *dec = path_of("ours.dec");
        g_assert_true(g_file_set_contents(enc, (char *)f->data, f->len, NULL));
        g_autofree char *cmd = g_strdup_printf(
            "scrypt dec --passphrase file:%s %s %s", pw, enc, dec);
        bt_run(cmd);
        g_autofree char *back = NULL;
        gsize blen = 0;
        g_assert_true(g_file_get_contents(dec, &back, &blen, NULL));
        g_assert_cmpuint(blen, ==, sizes[i]);
        g_assert_true(memcmp(back, data, blen) == 0);
    }
}

static void test_ours_reads_tool(void)
{
    if (!bt_have("scrypt")) {
        g_test_skip("no scrypt tool");
        return;
    }
    g_autofree char *pw = path_of("pw");
    g_autofree char *plain = path_of("plain");
    g_autofree char *enc = path_of("tool.enc");
    g_assert_true(g_file_set_contents(pw, "another one\n", -1, NULL));
    g_autofree guint8 *data = sample(300000);
    g_assert_true(g_file_set_contents(plain, (char *)data, 300000, NULL));
    g_autofree char *cmd = g_strdup_printf(
        "scrypt enc --logN 11 -r 8 -p 2 --passphrase file:%s %s %s", pw, plain,
        enc);
    bt_run(cmd);
    g_autofree char *f = NULL;
    gsize flen = 0;
    g_assert_true(g_file_get_contents(enc, &f, &flen, NULL));
    GError *err = NULL;
    g_autoptr(GByteArray) back =
        ours_dec("another one", (guint8 *)f, flen, &err);
    g_assert_no_error(err);
    g_assert_cmpuint(back->len, ==, 300000);
    g_assert_true(memcmp(back->data, data, 300000) == 0);
    QubesScryptParams params;
    guint8 salt[QUBES_SCRYPT_SALT];
    g_assert_true(qubes_scrypt_header_parse((guint8 *)f, &params, salt, NULL));
    g_assert_cmpuint(params.log_n, ==, 11);
    g_assert_cmpuint(params.r, ==, 8);
    g_assert_cmpuint(params.p, ==, 2);
}

/* @f with @why changed is refused with a message holding @says. */
static void refused(GByteArray *f, const char *pw, const char *says)
{
    g_autoptr(GError) err = NULL;
    GByteArray *back = ours_dec(pw, f->data, f->len, &err);
    g_assert_null(back);
    g_assert_nonnull(err);
    if (!strstr(err->message, says))
        g_error("'%s' does not say '%s'", err->message, says);
}

static void test_changes_refused(void)
{
    g_autofree guint8 *data = sample(5000);
    g_autoptr(GByteArray) f = ours_enc("pw", data, 5000);
    g_autoptr(GByteArray) ok = ours_dec("pw", f->data, f->len, NULL);
    g_assert_nonnull(ok);
    refused(f, "wrong", "wrong passphrase");
    /* every byte of the header, some of the data, the MAC */
    for (guint i = 0; i < f->len; i += i < 96 ? 1 : 97) {
        g_autoptr(GByteArray) g = g_byte_array_new();
        g_byte_array_append(g, f->data, f->len);
        g->data[i] ^= 0x40;
        g_autoptr(GError) err = NULL;
        g_autoptr(GByteArray) back = ours_dec("pw", g->data, g->len, &err);
        if (back)
            g_error("a change at byte %u was not seen", i);
    }
    g_autoptr(GByteArray) cut = g_byte_array_new();
    g_byte_array_append(cut, f->data, f->len - 1);
    refused(cut, "pw", "MAC does not match");
    g_autoptr(GByteArray) tail = g_byte_array_new();
    g_byte_array_append(tail, f->data, f->len);
    tail->data[f->len - 1] ^= 1;
    refused(tail, "pw", "MAC does not match");
    g_autoptr(GByteArray) data_byte = g_byte_array_new();
    g_byte_array_append(data_byte, f->data, f->len);
    data_byte->data[2000] ^= 1;
    refused(data_byte, "pw", "MAC does not match");
    g_autoptr(GByteArray) header_byte = g_byte_array_new();
    g_byte_array_append(header_byte, f->data, f->len);
    header_byte->data[20] ^= 1; /* the salt: the checksum sees it */
    refused(header_byte, "pw", "checksum");
}

static void test_hostile_parameters_refused_before_work(void)
{
    const QubesScryptParams bad[] = {
        {.log_n = 0, .r = 8, .p = 1},
        {.log_n = 31, .r = 8, .p = 1},
        {.log_n = 63, .r = 8, .p = 1},
        {.log_n = 20, .r = 0, .p = 1},
        {.log_n = 20, .r = 8, .p = 0},
        {.log_n = 22, .r = 8, .p = 1},
        {.log_n = 10, .r = 1u << 25, .p = 1},
        {.log_n = 10, .r = 1u << 15, .p = 1u << 15},
        {.log_n = 20, .r = 8, .p = 64},      /* work 2^29 */
        {.log_n = 1, .r = 1, .p = 1u << 24}, /* B: 2 GiB */
    };
    for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(GError) err = NULL;
        g_assert_false(qubes_scrypt_params_check(&bad[i], &err));
        g_assert_nonnull(strstr(err->message, "out of bounds"));
        guint8 salt[QUBES_SCRYPT_SALT] = {0}, key[QUBES_SCRYPT_KEY];
        g_clear_error(&err);
        gint64 t0 = g_get_monotonic_time();
        g_assert_false(qubes_scrypt_derive("pw", 2, salt, &bad[i], key, &err));
        g_assert_cmpint(g_get_monotonic_time() - t0, <, G_USEC_PER_SEC);
    }
    /* a header saying so is refused at its parse */
    g_autofree guint8 *data = sample(10);
    g_autoptr(GByteArray) f = ours_enc("pw", data, 10);
    f->data[7] = 40;
    refused(f, "pw", "out of bounds");
    g_autoptr(GByteArray) g = ours_enc("pw", data, 10);
    memcpy(g->data, "scrypz", 6);
    refused(g, "pw", "not a file of the scrypt tool's format");
    /* the default, the tool's own calibration here, is within them */
    const QubesScryptParams def = QUBES_SCRYPT_PARAMS_DEFAULT;
    g_assert_true(qubes_scrypt_params_check(&def, NULL));
}

static char *hex_of(const guint8 *b, gsize n)
{
    GString *s = g_string_new(NULL);
    for (gsize i = 0; i < n; i++)
        g_string_append_printf(s, "%02x", b[i]);
    return g_string_free(s, FALSE);
}

/* Our scrypt (scrypt-kdf.c) gives RFC 7914's test vectors (section 12),
 * and libcrypto's EVP scrypt's keys over odd parameters. */
static void test_kdf_is_scrypt(void)
{
    static const struct {
        const char *pass, *salt;
        guint log_n;
        guint32 r, p;
        const char *key;
    } rfc[] = {
        {"", "", 4, 1, 1,
         "77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442"
         "fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906"},
        {"password", "NaCl", 10, 8, 16,
         "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162"
         "2eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640"},
        {"pleaseletmein", "SodiumChloride", 14, 8, 1,
         "7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2"
         "d5432955613f0fcf62d49705242a9af9e61e85dc0d651e40dfcf017b45575887"},
    };
    for (guint i = 0; i < G_N_ELEMENTS(rfc); i++) {
        guint8 key[64];
        g_assert_true(qubes_scrypt_kdf(
            (const guint8 *)rfc[i].pass, strlen(rfc[i].pass),
            (const guint8 *)rfc[i].salt, strlen(rfc[i].salt), rfc[i].log_n,
            rfc[i].r, rfc[i].p, key, sizeof key));
        g_autofree char *hex = hex_of(key, sizeof key);
        g_assert_cmpstr(hex, ==, rfc[i].key);
    }
    const struct {
        guint log_n;
        guint32 r, p;
        gsize len;
    } odd[] = {{1, 1, 1, 1},   {2, 3, 5, 17},  {7, 2, 3, 64},  {9, 5, 2, 100},
               {12, 1, 1, 32}, {5, 16, 1, 64}, {11, 8, 2, 64}, {3, 7, 9, 33}};
    for (guint i = 0; i < G_N_ELEMENTS(odd); i++) {
        guint8 pass[37], salt[29], ours[100], theirs[100];
        for (guint k = 0; k < sizeof pass; k++)
            pass[k] = (guint8)g_random_int();
        for (guint k = 0; k < sizeof salt; k++)
            salt[k] = (guint8)g_random_int();
        gsize plen = 1 + i * 4;
        g_assert_true(qubes_scrypt_kdf(pass, plen, salt, sizeof salt,
                                       odd[i].log_n, odd[i].r, odd[i].p, ours,
                                       odd[i].len));
        g_assert_cmpint(EVP_PBE_scrypt((const char *)pass, plen, salt,
                                       sizeof salt, (guint64)1 << odd[i].log_n,
                                       odd[i].r, odd[i].p, 0, theirs,
                                       odd[i].len),
                        ==, 1);
        g_assert_true(memcmp(ours, theirs, odd[i].len) == 0);
    }
}

/* Two derivations at once (qubes_scrypt_kdf2) give each the key it gives
 * alone, in every implementation this CPU has (x86-64 here: SSE2 always;
 * AVX-512VL where the CPU has it), over RFC 7914's parameters and odd
 * ones, with different passphrases, salts and lengths. */
static void test_kdf2_is_twice_scrypt(void)
{
    const struct {
        guint log_n;
        guint32 r, p;
    } cost[] = {{4, 1, 1}, {10, 8, 16}, {14, 8, 1}, {1, 1, 1},
                {7, 2, 3}, {9, 5, 2},   {16, 8, 1}};
    const QubesScryptImpl impls[] = {
        QUBES_SCRYPT_IMPL_BEST, QUBES_SCRYPT_IMPL_SCALAR,
        QUBES_SCRYPT_IMPL_SSE2, QUBES_SCRYPT_IMPL_AVX512};
#if defined(__x86_64__)
    g_assert_true(qubes_scrypt_impl_available(QUBES_SCRYPT_IMPL_SSE2));
#endif
    for (guint c = 0; c < G_N_ELEMENTS(cost); c++) {
        guint8 pass[2][40], salt[2][32], want[2][80];
        gsize plen[2] = {1 + c, 40 - c}, olen[2] = {64, 17 + c * 9};
        for (int k = 0; k < 2; k++) {
            for (guint i = 0; i < sizeof pass[k]; i++)
                pass[k][i] = (guint8)g_random_int();
            for (guint i = 0; i < sizeof salt[k]; i++)
                salt[k][i] = (guint8)g_random_int();
            g_assert_true(qubes_scrypt_kdf(pass[k], plen[k], salt[k], 32,
                                           cost[c].log_n, cost[c].r, cost[c].p,
                                           want[k], olen[k]));
        }
        for (guint m = 0; m < G_N_ELEMENTS(impls); m++) {
            if (!qubes_scrypt_impl_available(impls[m])) {
                g_test_message("scrypt implementation %u: not on this CPU",
                               impls[m]);
                continue;
            }
            guint8 got[2][80];
            QubesScryptInput in[2];
            for (int k = 0; k < 2; k++)
                in[k] = (QubesScryptInput){pass[k], plen[k], salt[k],
                                           32,      got[k],  olen[k]};
            g_assert_true(qubes_scrypt_kdf2(in, cost[c].log_n, cost[c].r,
                                            cost[c].p, impls[m]));
            for (int k = 0; k < 2; k++)
                g_assert_true(memcmp(got[k], want[k], olen[k]) == 0);
        }
    }
}

/* A derivation's 64 MiB (log2 N 16, r 8) comes from a mapping kept while
 * a key pool holds it, reused by the next, and unmapped with the pool
 * (hashlib.scrypt gives the expected key). */
static void test_kdf_memory_kept_and_released(void)
{
    static const char expected[] =
        "657f56af83f671077189450eacc1bafb5e6c95366feaea76cfeb429110072cb2"
        "63a9f191e0ee500d33d88352333f716d350e17b2fd07e0da061a60be12d17708";
    const QubesScryptParams p = {.log_n = 16, .r = 8, .p = 1};
    guint8 salt[QUBES_SCRYPT_SALT] = "SodiumChloride";
    g_assert_cmpuint(qubes_kdf_memory_mapped(), ==, 0);
    QubesKeyAhead *ka = qubes_key_ahead_new(&p, 1);
    for (int i = 0; i < 3; i++) {
        guint8 key[QUBES_SCRYPT_KEY];
        g_assert_true(
            qubes_scrypt_derive("pleaseletmein", 13, salt, &p, key, NULL));
        g_autofree char *hex = hex_of(key, sizeof key);
        g_assert_cmpstr(hex, ==, expected);
        g_assert_cmpuint(qubes_kdf_memory_mapped(), ==, 1); /* kept */
    }
    /* on the pool's thread too, the same block */
    QubesKeyJob *j = qubes_key_ahead_start_for(ka, "pleaseletmein", &p, salt);
    guint8 s2[QUBES_SCRYPT_SALT], key[QUBES_SCRYPT_KEY];
    g_assert_true(qubes_key_job_take(j, s2, key, NULL, NULL));
    g_autofree char *hex = hex_of(key, sizeof key);
    g_assert_cmpstr(hex, ==, expected);
    g_assert_cmpuint(qubes_kdf_memory_mapped(), ==, 1);
    qubes_key_ahead_free(ka, TRUE);
    g_assert_cmpuint(qubes_kdf_memory_mapped(), ==, 0);
    /* held by nobody: unmapped as soon as it is given back */
    g_assert_true(
        qubes_scrypt_derive("pleaseletmein", 13, salt, &p, key, NULL));
    g_assert_cmpuint(qubes_kdf_memory_mapped(), ==, 0);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    dir = g_dir_make_tmp("test-scrypt-XXXXXX", NULL);
    g_test_add_func("/scrypt/tool-reads-ours", test_tool_reads_ours);
    g_test_add_func("/scrypt/ours-reads-tool", test_ours_reads_tool);
    g_test_add_func("/scrypt/changes-refused", test_changes_refused);
    g_test_add_func("/scrypt/hostile-parameters",
                    test_hostile_parameters_refused_before_work);
    g_test_add_func("/scrypt/kdf-is-scrypt", test_kdf_is_scrypt);
    g_test_add_func("/scrypt/kdf2-is-twice-scrypt", test_kdf2_is_twice_scrypt);
    g_test_add_func("/scrypt/kdf-memory", test_kdf_memory_kept_and_released);
    return bt_finish(g_test_run(), dir);
}
