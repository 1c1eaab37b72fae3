/* test-protocol.c: request framing edge cases, number validation and the
 * exact bytes of each kind of answer. */
#include "protocol.h"

#include "qubes-error.h"
#include "qubes-parse.h"

#include <string.h>

static QubesRequest *parse(const char *data, gsize len, GError **error)
{
    return qubes_request_parse((const guint8 *)data, len, error);
}

#define REQ(lit) parse(lit, sizeof(lit) - 1, &error)

static void test_parse_ok(void)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(QubesRequest) r =
        REQ("admin.vm.property.Get+label dom0 name work\0");
    g_assert_no_error(error);
    g_assert_cmpstr(r->untrusted_method, ==, "admin.vm.property.Get");
    g_assert_cmpstr(r->untrusted_arg, ==, "label");
    g_assert_cmpstr(r->untrusted_src, ==, "dom0");
    g_assert_cmpstr(r->untrusted_dest, ==, "work");
    g_assert_cmpuint(g_bytes_get_size(r->untrusted_payload), ==, 0);

    /* No argument; a payload holding NULs is kept whole. */
    g_autoptr(QubesRequest) r2 = REQ("admin.vm.List dom0 name dom0\0a\0b\0");
    g_assert_cmpstr(r2->untrusted_method, ==, "admin.vm.List");
    g_assert_cmpstr(r2->untrusted_arg, ==, "");
    gsize n;
    const char *p = g_bytes_get_data(r2->untrusted_payload, &n);
    g_assert_cmpuint(n, ==, 4);
    g_assert_cmpint(memcmp(p, "a\0b\0", 4), ==, 0);

    /* Only the first '+' splits; the keyword adminvm means dom0. */
    g_autoptr(QubesRequest) r3 =
        REQ("admin.vm.feature.Set+a+b dom0 keyword adminvm\0x");
    g_assert_cmpstr(r3->untrusted_arg, ==, "a+b");
    g_assert_cmpstr(r3->untrusted_dest, ==, "dom0");

    /* The destination keeps any further spaces (and fails validation
     * later, as a name). */
    g_autoptr(QubesRequest) r4 = REQ("admin.vm.List dom0 name a b\0");
    g_assert_cmpstr(r4->untrusted_dest, ==, "a b");
}

static void expect_framing_error(const char *data, gsize len,
                                 const char *needle)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(QubesRequest) r = parse(data, len, &error);
    g_assert_null(r);
    g_assert_error(error, QUBES_ERROR, QUBES_ERROR_PROTOCOL);
    if (!strstr(error->message, needle))
        g_error("\"%s\" lacks \"%s\"", error->message, needle);
}

#define BAD(lit, needle) expect_framing_error(lit, sizeof(lit) - 1, needle)

static void test_parse_bad(void)
{
    BAD("admin.vm.List dom0 name dom0", "no NUL");
    BAD("", "no NUL");
    BAD("admin.vm.List dom0 name\0", "fewer than four");
    BAD("admin.vm.List\0", "fewer than four");
    BAD("\0", "fewer than four");
    BAD("admin.vm.List dom0 uuid 1234\0", "explicit destination names");
    BAD("admin.vm.List dom0 keyword dom0\0", "explicit destination names");
    BAD("admin.vm.List dom\xc3\xa9 name dom0\0", "printable ASCII");
    BAD("admin.vm.List dom0\tx name dom0\0", "printable ASCII");

    /* Over 64 KiB is dropped; exactly 64 KiB is read. */
    gsize max = QUBES_REQUEST_MAX;
    g_autofree char *big = g_malloc0(max + 1);
    const char *head = "admin.vm.List dom0 name dom0";
    memcpy(big, head, strlen(head));
    expect_framing_error(big, max + 1, "too long");
    g_autoptr(GError) error = NULL;
    g_autoptr(QubesRequest) r = parse(big, max, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(g_bytes_get_size(r->untrusted_payload), ==,
                     max - strlen(head) - 1);
}

static void expect_number(const char *in, gboolean neg, gint64 want)
{
    g_autoptr(GError) error = NULL;
    gint64 v = 0;
    g_assert_true(
        qubes_parse_number(in, neg, "size", QUBES_ERROR_PROTOCOL, &v, &error));
    g_assert_no_error(error);
    g_assert_cmpint(v, ==, want);
}

static void expect_bad_number(const char *in, gboolean neg, const char *message)
{
    g_autoptr(GError) error = NULL;
    gint64 v = 0;
    g_assert_false(
        qubes_parse_number(in, neg, "size", QUBES_ERROR_PROTOCOL, &v, &error));
    g_assert_error(error, QUBES_ERROR, QUBES_ERROR_PROTOCOL);
    g_assert_cmpstr(error->message, ==, message);
}

static void test_numbers(void)
{
    expect_number("0", FALSE, 0);
    expect_number("1073741824", FALSE, 1073741824);
    expect_number("9223372036854775807", FALSE, G_MAXINT64);
    expect_number("-1", TRUE, -1);
    expect_bad_number("", FALSE, "Size contains non ASCII digits");
    expect_bad_number("-1", FALSE, "Size contains non ASCII digits");
    expect_bad_number("12a", FALSE, "Size contains non ASCII digits");
    expect_bad_number("+1", FALSE, "Size contains non ASCII digits");
    expect_bad_number(" 1", FALSE, "Size contains non ASCII digits");
    expect_bad_number("\xd9\xa1", FALSE, "Size contains non ASCII digits");
    expect_bad_number("01", FALSE, "Size contains spurious leading zeros");
    expect_bad_number("-00", TRUE, "Size contains spurious leading zeros");
    expect_bad_number("12345678901234567890", FALSE,
                      "Size is bigger than 19 decimal digits");
    expect_bad_number("9999999999999999999", FALSE, "size is out of range");
}

static void expect_bytes(GBytes *got, const char *want, gsize len)
{
    gsize n;
    const char *p = g_bytes_get_data(got, &n);
    g_assert_cmpuint(n, ==, len);
    g_assert_cmpint(memcmp(p, want, len), ==, 0);
    g_bytes_unref(got);
}

#define BYTES(got, lit) expect_bytes(got, lit, sizeof(lit) - 1)

static void test_responses(void)
{
    BYTES(qubes_response_ok("red", 3), "0\0red");
    BYTES(qubes_response_ok(NULL, 0), "0\0");
    const char *kw[] = {"name", "label", "newvalue", "red", NULL};
    BYTES(qubes_response_event("work", "property-set:label", kw),
          "1\0work\0property-set:label\0name\0label\0newvalue\0red\0\0");
    BYTES(qubes_response_event("", "domain-add", NULL), "1\0\0domain-add\0\0");
    BYTES(qubes_response_exception("QubesVMNotFoundError", NULL, "nope"),
          "2\0QubesVMNotFoundError\0\0nope\0");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/protocol/parse", test_parse_ok);
    g_test_add_func("/protocol/parse-bad", test_parse_bad);
    g_test_add_func("/protocol/numbers", test_numbers);
    g_test_add_func("/protocol/responses", test_responses);
    return g_test_run();
}
