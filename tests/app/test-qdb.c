/* test-qdb.c: a starting qube's QubesDB entries, as master's
 * create_qdb_entries and its extensions' domain-qdb-create handlers write
 * them (the expected lists are read from their sources). */
#include "app.h"
#include "qdb-entries.h"

#include <glib/gstdio.h>
#include <string.h>

typedef struct {
    char *dir;
    QubesApp *app;
} Fixture;

static void setup(Fixture *f, gconstpointer data)
{
    f->dir = g_dir_make_tmp("test-qdb-XXXXXX", NULL);
    g_autofree char *k = g_build_filename(f->dir, "vm-kernels", "6.1", NULL);
    g_mkdir_with_parents(k, 0755);
    g_autofree char *vmlinuz = g_build_filename(k, "vmlinuz", NULL);
    g_assert_true(g_file_set_contents(vmlinuz, "k", 1, NULL));
    g_autoptr(GError) err = NULL;
    f->app = qubes_app_open(f->dir, NULL, &err);
    g_assert_no_error(err);
}

static void teardown(Fixture *f, gconstpointer data)
{
    qubes_app_free(f->app);
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", f->dir);
    g_assert_cmpint(system(cmd), ==, 0);
    g_free(f->dir);
}

static QubesDomain *add(Fixture *f, const char *klass, const char *name,
                        const char *tpl)
{
    g_autoptr(GError) err = NULL;
    QubesDomain *d =
        qubes_app_add_new_domain(f->app, qubes_domain_class_lookup(klass), name,
                                 "red", tpl, NULL, NULL, &err);
    g_assert_no_error(err);
    return d;
}

static void set(QubesDomain *d, const char *prop, const char *value)
{
    g_autoptr(GError) err = NULL;
    g_assert_true(qubes_props_set(&d->props, prop, value, &err));
    g_assert_no_error(err);
}

static void feature(QubesDomain *d, const char *name, const char *value)
{
    g_autoptr(GError) err = NULL;
    g_assert_true(qubes_domain_feature_set(d, name, value, &err));
    g_assert_no_error(err);
}

/* Checks @got (key, value, ...) against @want (key, value, ..., NULL). */
static void check(GPtrArray *got, const char *const *want)
{
    guint n = 0;
    while (want[n])
        n++;
    for (guint i = 0; i + 1 < got->len && i + 1 < n; i += 2) {
        g_assert_cmpstr(got->pdata[i], ==, want[i]);
        g_assert_cmpstr(got->pdata[i + 1], ==, want[i + 1]);
    }
    g_assert_cmpuint(got->len, ==, n);
}

static void test_appvm(Fixture *f, gconstpointer data)
{
    QubesDomain *tpl = add(f, "TemplateVM", "tpl", NULL);
    QubesDomain *net = add(f, "AppVM", "net", "tpl");
    set(net, "provides_network", "True");
    QubesDomain *work = add(f, "AppVM", "work", "tpl");
    set(work, "netvm", "net");
    feature(tpl, "gui-videoram-min", "1024");
    feature(work, "service.foo", "1");
    feature(work, "service.bar", "");
    feature(work, "service.app-dispvm.xterm", "1");
    feature(work, "vm-config.kbd", "us");
    feature(work, "custom-persist.home", "/home");
    feature(work, "check-updates", "1");
    feature(work, "updates-proxy-setup", "");

    guint8 seed[64] = {0};
    QubesQdbHost host = {"Europe/Warsaw", seed};
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) got = qubes_qdb_entries(work, &host, &err);
    g_assert_no_error(err);
    g_autofree char *b64 = g_base64_encode(seed, 64);
    g_autofree char *mac = qubes_domain_prop(work, "mac");
    g_autofree char *ip = qubes_domain_prop(work, "visible_ip");
    g_autofree char *gw = qubes_domain_prop(work, "visible_gateway");
    const char *const want[] = {
        /* qubesvm.py create_qdb_entries */
        "/name", "work", "/type", "AppVM", "/default-user", "user",
        "/qubes-vm-updateable", "False", "/qubes-vm-persistence", "rw-only",
        "/qubes-debug-mode", "0", "/qubes-base-template", "tpl",
        "/qubes-random-seed", b64, "/qubes-mac", mac, "/qubes-ip", ip,
        "/qubes-netmask", "255.255.255.255", "/qubes-gateway", gw,
        "/qubes-primary-dns", "10.139.1.1", "/qubes-secondary-dns",
        "10.139.1.2", "/qubes-timezone", "Europe/Warsaw",
        "/qubes-block-devices", "", "/qubes-usb-devices", "",
        /* custom_persist.py */
        "/persist/home", "/home",
        /* gui.py: videoram from the template, guivm dom0 (running) */
        "/qubes-gui-videoram-min", "1024", "/qubes-gui-enabled", "True",
        "/keyboard-layout", "us++", "/qubes-gui-domain-xid", "0",
        /* r3compatibility.py */
        "/qubes-vm-type", "AppVM", "/qubes-iptables-error", "",
        "/qubes-service/qubes-update-check", "1",
        "/qubes-service/yum-proxy-setup", "0",
        /* services.py */
        "/qubes-service/foo", "1", "/qubes-service/bar", "0",
        "/hash-app-dispvm/34qeZXWf4Q7wEhp5b8de92tJSLzignXPWSoGCVKxLTM", "xterm",
        "/qubes-service/app-dispvm.xterm", "1", "/qubes-service/meminfo-writer",
        "1",
        /* vm_config.py */
        "/vm-config/kbd", "us", NULL};
    check(got, want);

    /* a network qube with no netvm of its own; anon-timezone from its
     * template; maxmem 0; gui off */
    feature(tpl, "anon-timezone", "1");
    set(net, "maxmem", "0");
    set(net, "netvm", "");
    feature(net, "gui", "");
    g_autoptr(GPtrArray) n = qubes_qdb_entries(net, &host, &err);
    g_assert_no_error(err);
    g_autofree char *ngw = qubes_domain_prop(net, "gateway");
    const char *const want_net[] = {"/name",
                                    "net",
                                    "/type",
                                    "AppVM",
                                    "/default-user",
                                    "user",
                                    "/qubes-vm-updateable",
                                    "False",
                                    "/qubes-vm-persistence",
                                    "rw-only",
                                    "/qubes-debug-mode",
                                    "0",
                                    "/qubes-base-template",
                                    "tpl",
                                    "/qubes-random-seed",
                                    b64,
                                    "/qubes-netvm-network",
                                    ngw,
                                    "/qubes-netvm-gateway",
                                    ngw,
                                    "/qubes-netvm-netmask",
                                    "255.255.255.255",
                                    "/qubes-netvm-primary-dns",
                                    "10.139.1.1",
                                    "/qubes-netvm-secondary-dns",
                                    "10.139.1.2",
                                    "/qubes-block-devices",
                                    "",
                                    "/qubes-usb-devices",
                                    "",
                                    "/qubes-gui-videoram-min",
                                    "1024",
                                    "/qubes-gui-enabled",
                                    "False",
                                    "/keyboard-layout",
                                    "us++",
                                    "/qubes-gui-domain-xid",
                                    "0",
                                    "/qubes-vm-type",
                                    "NetVM",
                                    "/qubes-iptables-error",
                                    "",
                                    "/qubes-service/meminfo-writer",
                                    "0",
                                    NULL};
    check(n, want_net);
}

static void test_bad_custom_persist(Fixture *f, gconstpointer data)
{
    /* a value a hand-written qubes.xml holds: the start is refused */
    add(f, "TemplateVM", "tpl", NULL);
    QubesDomain *work = add(f, "AppVM", "work", "tpl");
    g_ptr_array_add(work->features, g_strdup("custom-persist.x"));
    g_ptr_array_add(work->features, g_strdup("relative"));
    guint8 seed[64] = {0};
    QubesQdbHost host = {NULL, seed};
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) got = qubes_qdb_entries(work, &host, &err);
    g_assert_null(got);
    g_assert_error(err, QUBES_ERROR, QUBES_ERROR_VALUE);
    g_assert_cmpstr(err->message, ==, "invalid value format: 'relative'");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_log_set_always_fatal(G_LOG_LEVEL_CRITICAL);
    g_test_add("/qdb/appvm-and-netvm", Fixture, NULL, setup, test_appvm,
               teardown);
    g_test_add("/qdb/bad-custom-persist", Fixture, NULL, setup,
               test_bad_custom_persist, teardown);
    return g_test_run();
}
