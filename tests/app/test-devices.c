/* test-devices: the reference's device protocol (src/app/devices.c):
 * serialization as master's device_protocol.py writes it, its parser
 * (unpack_properties) on what it writes and on hostile input, the
 * assignment a payload makes against the device an argument names, the
 * qrexec form of arguments, interface lists. */
#include "devices.h"

#include "qubes-error.h"

#include <string.h>

static GPtrArray *pairs(void)
{
    return g_ptr_array_new_with_free_func(g_free);
}

static void assert_pairs(GPtrArray *got, const char *const *want)
{
    guint n = 0;
    while (want[n])
        n++;
    g_assert_cmpuint(got->len, ==, n);
    for (guint i = 0; i < n; i++)
        g_assert_cmpstr(got->pdata[i], ==, want[i]);
}

static void test_serialize(void)
{
    QubesVDev v = {"test-vm1", "1234", "testclass", "*"};
    g_autofree char *s = qubes_vdev_serialize(&v);
    /* test_470 */
    g_assert_cmpstr(s, ==,
                    "device_id='*' port_id='1234' devclass='testclass' "
                    "backend_domain='test-vm1'");
    g_autoptr(QubesDevAssignment) a =
        qubes_dev_assignment_new(&v, QUBES_DEV_REQUIRED);
    qubes_dev_assignment_set_option(a, "opt1", "value");
    g_autofree char *sa = qubes_dev_assignment_serialize(a, NULL);
    /* test_471 */
    g_assert_cmpstr(sa, ==,
                    "device_id='*' port_id='1234' devclass='testclass' "
                    "backend_domain='test-vm1' mode='required' "
                    "_opt1='value'");
    /* test_472: an attachment */
    QubesVDev v2 = {"test-vm1", "1234", "testclass", "0000:0000::?******"};
    g_autoptr(QubesDevAssignment) m =
        qubes_dev_assignment_new(&v2, QUBES_DEV_MANUAL);
    m->frontend = g_strdup("test-vm1");
    qubes_dev_assignment_set_option(m, "attach_opt", "value");
    g_autofree char *sm = qubes_dev_assignment_serialize(m, NULL);
    g_assert_cmpstr(sm, ==,
                    "device_id='0000:0000::?******' port_id='1234' "
                    "devclass='testclass' backend_domain='test-vm1' "
                    "mode='manual' frontend_domain='test-vm1' "
                    "_attach_opt='value'");
    /* DeviceInfo: no description -> two spaces; a quote escaped */
    g_autoptr(QubesDevInfo) i = qubes_dev_info_new("dom0", "sda", "block");
    g_autofree char *si = qubes_dev_info_serialize(i, NULL);
    g_assert_cmpstr(si, ==,
                    "device_id='0000:0000::?******' port_id='sda' "
                    "devclass='block' backend_domain='dom0'  "
                    "interfaces='?******'");
    i->product = g_strdup("It's a disk");
    g_free(si);
    si = qubes_dev_info_serialize(i, NULL);
    g_assert_nonnull(strstr(si, " product='It\\'s a disk' "));
    /* attached: the reference's serialize() starts over */
    i->attachment = g_strdup("work");
    g_free(si);
    si = qubes_dev_info_serialize(i, NULL);
    g_assert_cmpstr(si, ==, "attachment='work' interfaces='?******'");
    /* a value outside printable ASCII is refused */
    g_free(i->product);
    i->product = g_strdup("bad\x01");
    g_clear_pointer(&i->attachment, g_free);
    g_autoptr(GError) err = NULL;
    g_assert_null(qubes_dev_info_serialize(i, &err));
    g_assert_error(err, QUBES_ERROR, QUBES_ERROR_PROTOCOL);
    g_free(i->product);
    i->product = NULL;
}

static void test_unpack(void)
{
    static const struct {
        const char *in;
        const char *const props[12];
        const char *const opts[6];
    } cases[] = {
        {"", {NULL}, {NULL}},
        {"  mode='required'  ", {"mode", "required", NULL}, {NULL}},
        {"a='1' b='x y' _o='v'",
         {"a", "1", "b", "x y", NULL},
         {"o", "v", NULL}},
        /* two spaces (a DeviceInfo without description) */
        {"backend_domain='dom0'  interfaces='b******'",
         {"backend_domain", "dom0", "interfaces", "b******", NULL},
         {NULL}},
        {"p='It\\'s'", {"p", "It's", NULL}, {NULL}},
        /* a value holding "' " and "='": split where the reference does */
        {"a='x' y' b='z'", {"a", "x' y", "b", "z", NULL}, {NULL}},
        /* a later key wins (a dict) */
        {"a='1' a='2'", {"a", "2", NULL}, {NULL}},
    };
    for (guint c = 0; c < G_N_ELEMENTS(cases); c++) {
        g_autoptr(GPtrArray) p = pairs();
        g_autoptr(GPtrArray) o = pairs();
        g_autoptr(GError) err = NULL;
        g_assert_true(
            qubes_dev_unpack(cases[c].in, strlen(cases[c].in), p, o, &err));
        g_assert_no_error(err);
        assert_pairs(p, cases[c].props);
        assert_pairs(o, cases[c].opts);
    }
    static const char *const bad[] = {
        "mo de='x'",
        "mode='x\x01'",
        "m\xc3\xa9='x'",
        "a\tb='x'",
    };
    for (guint c = 0; c < G_N_ELEMENTS(bad); c++) {
        g_autoptr(GPtrArray) p = pairs();
        g_autoptr(GPtrArray) o = pairs();
        g_autoptr(GError) err = NULL;
        g_assert_false(qubes_dev_unpack(bad[c], strlen(bad[c]), p, o, &err));
        g_assert_error(err, QUBES_ERROR, QUBES_ERROR_PROTOCOL);
    }
    /* every DeviceInfo serialization parses back */
    g_autoptr(QubesDevInfo) i = qubes_dev_info_new("dom0", "loop7", "block");
    i->name = g_strdup("/var/tmp/it's here.img");
    g_ptr_array_add(i->data, g_strdup("size"));
    g_ptr_array_add(i->data, g_strdup("8"));
    g_autofree char *s = qubes_dev_info_serialize(i, NULL);
    g_autoptr(GPtrArray) p = pairs();
    g_autoptr(GPtrArray) o = pairs();
    g_assert_true(qubes_dev_unpack(s, strlen(s), p, o, NULL));
    static const char *const want[] = {"device_id",
                                       "0000:0000::?******",
                                       "port_id",
                                       "loop7",
                                       "devclass",
                                       "block",
                                       "backend_domain",
                                       "dom0",
                                       "name",
                                       "/var/tmp/it's here.img",
                                       "interfaces",
                                       "?******",
                                       NULL};
    assert_pairs(p, want);
}

static void test_deserialize(void)
{
    QubesVDev expected = {"dom0", "loop7", "block", "*"};
    g_autoptr(GError) err = NULL;
    const char *pl = "device_id='abc' port_id='loop7' devclass='block' "
                     "backend_domain='dom0' mode='auto-attach' "
                     "frontend_domain='work' _read-only='yes'";
    g_autoptr(QubesDevAssignment) a =
        qubes_dev_assignment_deserialize(pl, strlen(pl), &expected, &err);
    g_assert_no_error(err);
    g_assert_cmpstr(a->dev.device_id, ==, "abc");
    g_assert_cmpint(a->mode, ==, QUBES_DEV_AUTO);
    g_assert_cmpstr(a->frontend, ==, "work");
    g_assert_cmpstr(qubes_dev_assignment_option(a, "read-only"), ==, "yes");
    /* empty: manual, the expected device */
    g_autoptr(QubesDevAssignment) m =
        qubes_dev_assignment_deserialize("", 0, &expected, &err);
    g_assert_cmpint(m->mode, ==, QUBES_DEV_MANUAL);
    g_assert_cmpstr(m->dev.device_id, ==, "*");
    QubesVDev fixed = {"dom0", "loop7", "block", "abc"};
    static const char *const bad[] = {
        "backend_domain='sys-usb'", "port_id='loop8'",  "devclass='pci'",
        "device_id='xyz'",          "mode='sometimes'", "colour='red'",
    };
    for (guint c = 0; c < G_N_ELEMENTS(bad); c++) {
        g_autoptr(GError) e2 = NULL;
        g_assert_null(qubes_dev_assignment_deserialize(bad[c], strlen(bad[c]),
                                                       &fixed, &e2));
        g_assert_error(e2, QUBES_ERROR, QUBES_ERROR_PROTOCOL);
    }
}

static void test_arg(void)
{
    QubesDevArg a;
    g_autoptr(GError) err = NULL;
    g_assert_true(
        qubes_dev_arg_parse("test-vm1+1234+dead+beef+cafe", &a, &err));
    g_assert_cmpstr(a.backend, ==, "test-vm1");
    g_assert_cmpstr(a.port_id, ==, "1234");
    g_autofree char *id = qubes_dev_arg_device_id(&a);
    g_assert_cmpstr(id, ==, "dead:beef:cafe");
    qubes_dev_arg_clear(&a);
    g_assert_true(qubes_dev_arg_parse("test-vm1+_+dead", &a, &err));
    g_assert_cmpstr(a.port_id, ==, "*");
    qubes_dev_arg_clear(&a);
    g_assert_true(qubes_dev_arg_parse("test-vm1+1234+_", &a, &err));
    g_autofree char *any = qubes_dev_arg_device_id(&a);
    g_assert_cmpstr(any, ==, "*");
    qubes_dev_arg_clear(&a);
    /* dom0's own form with ':' */
    g_assert_true(qubes_dev_arg_parse("dom0+loop7:/var/tmp/x.img", &a, &err));
    g_assert_cmpstr(a.port_id, ==, "loop7");
    g_assert_cmpstr(a.encoded_device_id, ==, "/var/tmp/x.img");
    qubes_dev_arg_clear(&a);
    static const char *const bad[] = {"dom0",       "dom0+",   "+loop7",
                                      "dom0+../x",  "dom0+..", "dom0+a/b",
                                      "dom0+lo op", "do/m0+x"};
    for (guint c = 0; c < G_N_ELEMENTS(bad); c++) {
        g_autoptr(GError) e2 = NULL;
        g_assert_false(qubes_dev_arg_parse(bad[c], &a, &e2));
        g_assert_error(e2, QUBES_ERROR, QUBES_ERROR_PROTOCOL);
    }
    g_autofree char *enc = qubes_dev_encode_id("0000:0000::?******");
    g_assert_cmpstr(enc, ==, "0000+0000++_______");
}

static void test_interfaces(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) ifs =
        qubes_dev_interfaces_parse("b******u03**01", &err);
    g_assert_no_error(err);
    g_assert_cmpuint(ifs->len, ==, 2);
    g_assert_cmpstr(ifs->pdata[0], ==, "b******");
    g_assert_cmpstr(ifs->pdata[1], ==, "u03**01");
    /* DeviceInterface.from_str_bulk: seven characters each */
    g_autoptr(GPtrArray) bad =
        qubes_dev_interfaces_parse("b******u03**01p0c", &err);
    g_assert_null(bad);
    g_assert_error(err, QUBES_ERROR, QUBES_ERROR_VALUE);
    g_assert_cmpstr(err->message, ==,
                    "Invalid length of interfaces='b******u03**01p0c' (is 17, "
                    "expected multiple of 7)");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/devices/serialize", test_serialize);
    g_test_add_func("/devices/unpack", test_unpack);
    g_test_add_func("/devices/deserialize", test_deserialize);
    g_test_add_func("/devices/arg", test_arg);
    g_test_add_func("/devices/interfaces", test_interfaces);
    return g_test_run();
}
