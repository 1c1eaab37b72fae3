/* test-qubesxml.c: qubes.xml load, save and load again is lossless;
 * malformed files are refused with their line; saving is atomic, also
 * across a power cut at each of its steps. */
#include "qubesxml.h"

#include "harness.h"

#include "qubes-error.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

/* A qubes.xml as Qubes 4 writes it (names made up). */
static const char sample[] =
    "<?xml version='1.0' encoding='UTF-8'?>\n"
    "<qubes>\n"
    "  <labels>\n"
    "    <label id=\"label-1\" color=\"0xcc0000\">red</label>\n"
    "    <label id=\"label-8\" color=\"0x000000\">black</label>\n"
    "  </labels>\n"
    "  <pools>\n"
    "    <pool dir_path=\"/var/lib/qubes\" driver=\"file-reflink\" "
    "name=\"varlibqubes\" revisions_to_keep=\"1\"/>\n"
    "    <pool dir_path=\"/var/lib/qubes/vm-kernels\" driver=\"linux-kernel\" "
    "name=\"linux-kernel\"/>\n"
    "  </pools>\n"
    "  <properties>\n"
    "    <property name=\"default_template\">debian-12</property>\n"
    "    <property name=\"default_netvm\" ref=\"domain-2\"/>\n"
    "    <property name=\"default_kernel\"></property>\n"
    "  </properties>\n"
    "  <domains>\n"
    "    <domain id=\"domain-0\" class=\"AdminVM\">\n"
    "      <properties><property name=\"label\">black</property>"
    "</properties>\n"
    "      <features/><tags/>\n"
    "    </domain>\n"
    "    <domain id=\"domain-1\" class=\"TemplateVM\">\n"
    "      <properties>\n"
    "        <property name=\"qid\">1</property>\n"
    "        <property name=\"name\">debian-12</property>\n"
    "        <property name=\"label\">black</property>\n"
    "        <property name=\"backup_timestamp\">1514764800</property>\n"
    "      </properties>\n"
    "      <features>\n"
    "        <feature name=\"gui\">1</feature>\n"
    "        <feature name=\"empty\"></feature>\n"
    "      </features>\n"
    "      <devices class=\"pci\">\n"
    "        <device backend-domain=\"dom0\" id=\"01_23.4\">"
    "<option name=\"no-strict-reset\">True</option></device>\n"
    "      </devices>\n"
    "      <tags><tag name=\"created-by-dom0\"/><tag name=\"audit\"/></tags>\n"
    "      <volume-config>\n"
    "        <volume name=\"root\" pool=\"varlibqubes\" "
    "vid=\"vm-templates/debian-12/root\" size=\"10737418240\" rw=\"True\" "
    "save_on_stop=\"True\" snap_on_start=\"False\" revisions_to_keep=\"1\"/>\n"
    "        <volume name=\"kernel\" pool=\"linux-kernel\" vid=\"6.1.0\" "
    "rw=\"False\"/>\n"
    "      </volume-config>\n"
    "    </domain>\n"
    "  </domains>\n"
    "</qubes>\n";

static QubesXml *parse(const char *s, GError **error)
{
    return qubes_xml_parse(s, strlen(s), "qubes.xml", error);
}

static void test_parse(void)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(QubesXml) x = parse(sample, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(x->labels->len, ==, 2);
    QxLabel *black = x->labels->pdata[1];
    g_assert_cmpuint(black->index, ==, 8);
    g_assert_cmpstr(black->name, ==, "black");
    g_assert_cmpstr(black->color, ==, "0x000000");
    g_assert_cmpuint(x->pools->len, ==, 2);
    g_assert_cmpstr(qx_attrs_get(x->pools->pdata[0], "driver"), ==,
                    "file-reflink");
    const QxProperty *net = qx_properties_get(x->properties, "default_netvm");
    g_assert_true(net->is_ref);
    g_assert_cmpstr(net->value, ==, "domain-2");
    const QxProperty *kernel =
        qx_properties_get(x->properties, "default_kernel");
    g_assert_nonnull(kernel);
    g_assert_null(kernel->value); /* empty element */
    QxDomain *tpl = qubes_xml_find_domain(x, "debian-12");
    g_assert_nonnull(tpl);
    g_assert_cmpstr(tpl->klass, ==, "TemplateVM");
    g_assert_cmpuint(tpl->features->len, ==, 4);
    g_assert_cmpstr(tpl->features->pdata[3], ==, "");
    g_assert_cmpuint(tpl->tags->len, ==, 2);
    g_assert_cmpuint(tpl->volumes->len, ==, 2);
    g_assert_cmpstr(qx_attrs_get(tpl->volumes->pdata[0], "vid"), ==,
                    "vm-templates/debian-12/root");
    /* <devices>: each <device> with its attributes and options */
    g_assert_cmpuint(tpl->extra->len, ==, 0);
    g_assert_cmpuint(tpl->devices->len, ==, 1);
    const QxDevice *dev = tpl->devices->pdata[0];
    g_assert_cmpstr(dev->devclass, ==, "pci");
    g_assert_cmpstr(qx_attrs_get(dev->attrs, "backend-domain"), ==, "dom0");
    g_assert_cmpstr(qx_attrs_get(dev->attrs, "id"), ==, "01_23.4");
    g_assert_cmpuint(dev->options->len, ==, 2);
    g_assert_cmpstr(dev->options->pdata[0], ==, "no-strict-reset");
    g_assert_cmpstr(dev->options->pdata[1], ==, "True");
    g_assert_nonnull(qubes_xml_find_domain(x, "dom0"));
    g_assert_null(qubes_xml_find_domain(x, "nope"));
}

static void test_lossless(void)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(QubesXml) x = parse(sample, &error);
    g_assert_no_error(error);
    g_autofree char *once = qubes_xml_serialize(x, NULL);
    g_autoptr(QubesXml) y = parse(once, &error);
    g_assert_no_error(error);
    g_autofree char *twice = qubes_xml_serialize(y, NULL);
    g_assert_cmpstr(once, ==, twice);
    /* Everything the sample said is in the output. */
    const char *must[] = {
        "<label id=\"label-8\" color=\"0x000000\">black</label>",
        "name=\"linux-kernel\"",
        "<property name=\"default_netvm\" ref=\"domain-2\"/>",
        "<property name=\"backup_timestamp\">1514764800</property>",
        "<feature name=\"empty\"></feature>",
        "<option name=\"no-strict-reset\">True</option>",
        "<tag name=\"audit\"/>",
        "vid=\"vm-templates/debian-12/root\"",
        "<domain id=\"domain-0\" class=\"AdminVM\">",
    };
    for (size_t i = 0; i < G_N_ELEMENTS(must); i++) {
        if (!strstr(once, must[i]))
            g_error("output lacks %s:\n%s", must[i], once);
    }
    /* The reference's order: labels, pools, properties, domains. */
    const char *l = strstr(once, "<labels>"), *p = strstr(once, "<pools>"),
               *pr = strstr(once, "<properties>"),
               *d = strstr(once, "<domains>");
    g_assert_true(l < p && p < pr && pr < d);
}

/* A domain's properties split over two <properties> load as one list
 * and save as one element that loads again. */
static void test_split_properties(void)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(QubesXml) x =
        parse("<qubes><domains><domain id=\"domain-1\" class=\"AppVM\">"
              "<properties><property name=\"name\">work</property></properties>"
              "<tags/><properties><property name=\"label\">red</property>"
              "</properties></domain></domains></qubes>",
              &error);
    g_assert_no_error(error);
    QxDomain *d = qubes_xml_find_domain(x, "work");
    g_assert_nonnull(d);
    g_assert_cmpstr(qx_properties_get(d->properties, "label")->value, ==,
                    "red");
    g_autofree char *once = qubes_xml_serialize(x, NULL);
    const char *first = strstr(once, "<domain ");
    g_assert_nonnull(first);
    first = strstr(first, "<properties>");
    g_assert_nonnull(first);
    g_assert_null(strstr(first + 1, "<properties>"));
    g_autoptr(QubesXml) y = parse(once, &error);
    g_assert_no_error(error);
}

static void expect_refused(const char *doc, const char *needle)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(QubesXml) x = parse(doc, &error);
    g_assert_null(x);
    g_assert_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION);
    if (!strstr(error->message, needle))
        g_error("\"%s\" lacks \"%s\"", error->message, needle);
}

static void test_refused(void)
{
    expect_refused("<qubes>\n<labels>\n</qubes>\n", "qubes.xml:3:");
    expect_refused("", "qubes.xml:");
    expect_refused("<domains/>", "qubes.xml:1: the root element is not "
                                 "<qubes>");
    expect_refused("<qubes>\n<properties>\n<property>x</property>\n"
                   "</properties></qubes>",
                   "qubes.xml:3: <property> without a name");
    expect_refused("<qubes><domains>\n\n<domain id=\"domain-1\"/>"
                   "</domains></qubes>",
                   "qubes.xml:3: <domain> without a class");
    expect_refused("<qubes><labels><label id=\"red\">red</label></labels>"
                   "</qubes>",
                   "needs an id label-N");
    expect_refused("<qubes>\n<secrets/></qubes>",
                   "qubes.xml:2: unknown element <secrets>");
    expect_refused("<qubes><properties><property name=\"a\">1</property>"
                   "<property name=\"a\">2</property></properties></qubes>",
                   "property a given twice");
    /* Two <properties> are one list (master reads ./properties/property
     * across both), so a name in each is given twice, for the app and
     * for a domain. */
    expect_refused("<qubes><properties><property name=\"a\">1</property>"
                   "</properties><properties><property name=\"a\">2"
                   "</property></properties></qubes>",
                   "property a given twice");
    expect_refused("<qubes><domains><domain class=\"AppVM\"><properties>"
                   "<property name=\"label\">red</property></properties>"
                   "<tags/><properties><property name=\"label\">blue"
                   "</property></properties></domain></domains></qubes>",
                   "property label given twice");
    expect_refused("<qubes><domains><domain class=\"AppVM\">"
                   "<volume-config><volume pool=\"x\"/></volume-config>"
                   "</domain></domains></qubes>",
                   "<volume> without a name");
    /* No entities, no external resources: an XXE attempt is refused. */
    expect_refused("<?xml version=\"1.0\"?>\n<!DOCTYPE qubes [<!ENTITY x "
                   "SYSTEM \"file:///etc/shadow\">]>\n<qubes><properties>"
                   "<property name=\"a\">&x;</property></properties>"
                   "</qubes>",
                   "DOCTYPE is not allowed");
}

static char *tmpdir(void)
{
    char *dir = g_dir_make_tmp("qubesxml-XXXXXX", NULL);
    g_assert_nonnull(dir);
    return dir;
}

static void test_save_load(void)
{
    g_autofree char *dir = tmpdir();
    g_autofree char *path = g_build_filename(dir, "qubes.xml", NULL);
    g_autoptr(GError) error = NULL;
    g_autoptr(QubesXml) x = parse(sample, &error);
    g_assert_true(qubes_xml_save(x, path, &error));
    g_assert_no_error(error);
    struct stat st;
    g_assert_cmpint(stat(path, &st), ==, 0);
    g_assert_cmpint(st.st_mode & 0777, ==, 0660);
    g_autoptr(QubesXml) y = qubes_xml_load(path, &error);
    g_assert_no_error(error);
    g_autofree char *a = qubes_xml_serialize(x, NULL);
    g_autofree char *b = qubes_xml_serialize(y, NULL);
    g_assert_cmpstr(a, ==, b);
    /* Changes survive a save and load. */
    qx_properties_set(qubes_xml_find_domain(y, "debian-12")->properties,
                      "label", "red");
    g_assert_true(qubes_xml_save(y, path, &error));
    g_autoptr(QubesXml) z = qubes_xml_load(path, &error);
    g_assert_cmpstr(
        qx_properties_get(qubes_xml_find_domain(z, "debian-12")->properties,
                          "label")
            ->value,
        ==, "red");
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    g_assert_cmpstr(g_dir_read_name(d), ==, "qubes.xml");
    g_assert_null(g_dir_read_name(d)); /* no temporary left */
    unlink(path);
    rmdir(dir);
}

/* A save that runs out of space leaves the previous file whole. */
static void test_save_full_disk(void)
{
    if (geteuid() != 0) {
        /* Under CI a test that cannot get its filesystem fails. */
        if (g_strcmp0(g_getenv("CI"), "true") == 0)
            g_test_fail();
        g_test_skip("needs root to mount a small tmpfs");
        return;
    }
    g_autofree char *dir = tmpdir();
    g_assert_cmpint(mount("tmpfs", dir, "tmpfs", 0, "size=64k"), ==, 0);
    g_autofree char *path = g_build_filename(dir, "qubes.xml", NULL);
    g_autoptr(GError) error = NULL;
    g_autoptr(QubesXml) x = qubes_xml_new_default("/var/lib/qubes", TRUE);
    g_assert_true(qubes_xml_save(x, path, &error));
    g_autofree char *before = NULL;
    g_assert_true(g_file_get_contents(path, &before, NULL, NULL));
    /* Grow it far beyond 64 KiB. */
    for (int i = 1; i < 2000; i++) {
        g_autofree char *name = g_strdup_printf("feature-%d", i);
        qx_properties_set(x->properties, name,
                          "some long enough value for the disk to fill up");
    }
    g_assert_false(qubes_xml_save(x, path, &error));
    g_assert_nonnull(error);
    g_assert_nonnull(strstr(error->message, g_strerror(ENOSPC)));
    g_autofree char *after = NULL;
    g_assert_true(g_file_get_contents(path, &after, NULL, NULL));
    g_assert_cmpstr(after, ==, before);
    GDir *d = g_dir_open(dir, 0, NULL);
    g_assert_cmpstr(g_dir_read_name(d), ==, "qubes.xml");
    g_assert_null(g_dir_read_name(d)); /* the temporary was removed */
    g_dir_close(d);
    g_assert_cmpint(umount(dir), ==, 0);
    rmdir(dir);
}

typedef struct {
    const char *path;
    int which;
} Saver;

static gpointer saver(gpointer data)
{
    Saver *s = data;
    g_autoptr(QubesXml) x = qubes_xml_new_default("/var/lib/qubes", TRUE);
    g_autofree char *v = g_strdup_printf("%d", s->which);
    qx_properties_set(x->properties, "writer", v);
    for (int i = 0; i < 30; i++) {
        g_autoptr(GError) error = NULL;
        if (!qubes_xml_save(x, s->path, &error))
            return g_strdup(error->message);
    }
    return NULL;
}

static void test_concurrent_saves(void)
{
    g_autofree char *dir = tmpdir();
    g_autofree char *path = g_build_filename(dir, "qubes.xml", NULL);
    Saver s[4];
    GThread *t[4];
    for (int i = 0; i < 4; i++) {
        s[i] = (Saver){path, i};
        t[i] = g_thread_new("saver", saver, &s[i]);
    }
    for (int i = 0; i < 4; i++) {
        g_autofree char *err = g_thread_join(t[i]);
        g_assert_null(err);
    }
    g_autoptr(GError) error = NULL;
    g_autoptr(QubesXml) x = qubes_xml_load(path, &error);
    g_assert_no_error(error);
    g_assert_nonnull(qx_properties_get(x->properties, "writer"));
    unlink(path);
    rmdir(dir);
}

/* ---- a power cut at each step of a save ---- */

typedef struct {
    int target;
    int count;
    TestFs *cut;
    char *hit;
} Cut;

static gboolean cut_at(const char *step, const char *path, gpointer data)
{
    Cut *c = data;
    if (++c->count != c->target)
        return FALSE;
    c->hit = g_strdup_printf("%s %s", step, path);
    g_assert_true(testfs_shutdown(c->cut));
    return TRUE;
}

static QubesXml *with_writer(const char *writer)
{
    g_autoptr(GError) error = NULL;
    QubesXml *x = qubes_xml_parse(sample, strlen(sample), "sample", &error);
    g_assert_no_error(error);
    QxProperty *p = g_new0(QxProperty, 1);
    p->name = g_strdup("writer");
    p->value = g_strdup(writer);
    g_ptr_array_add(x->properties, p);
    return x;
}

static char *writer_of(const char *path)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(QubesXml) x = qubes_xml_load(path, &error);
    g_assert_no_error(error);
    const QxProperty *p = qx_properties_get(x->properties, "writer");
    return g_strdup(p ? p->value : "none");
}

/* Old qubes.xml durable; a save of a new one cut at step @k (0: no cut
 * during it, one right after it returns); then the journal replayed and
 * the temporaries removed as qubesd's start does. Returns the writer
 * found. */
static char *cut_trial(TestFs *fs, int k, int *steps)
{
    g_autofree char *dir = testfs_new_dir(fs, "xml");
    g_assert_cmpint(g_mkdir_with_parents(dir, 0755), ==, 0);
    g_autofree char *path = g_build_filename(dir, "qubes.xml", NULL);
    g_autoptr(QubesXml) old = with_writer("old");
    g_autoptr(QubesXml) new = with_writer("new");
    OK(qubes_xml_save(old, path, &err_));
    Cut c = {.target = k ? k : -1, .cut = fs};
    qubes_xml_set_failpoint(cut_at, &c);
    g_autoptr(GError) error = NULL;
    gboolean ok = qubes_xml_save(new, path, &error);
    qubes_xml_set_failpoint(NULL, NULL);
    if (k) {
        g_assert_false(ok);
        g_assert_nonnull(strstr(error->message, "failpoint"));
        g_assert_true(testfs_remount(fs));
    } else {
        g_assert_no_error(error);
        g_assert_true(testfs_power_cut(fs));
    }
    if (steps)
        *steps = c.count;
    OK(qubes_xml_remove_temporaries(path, &err_));
    g_autofree char *left = test_ls(dir);
    if (!g_str_equal(left, "qubes.xml"))
        g_error("cut at %s left %s", c.hit ? c.hit : "the end", left);
    g_free(c.hit);
    return writer_of(path);
}

static void test_save_power_cut(gconstpointer data)
{
    GET_FS(data);
    int steps = 0;
    g_autofree char *after = cut_trial(fs, 0, &steps);
    g_assert_cmpstr(after, ==, "new");
    g_assert_cmpint(steps, ==, 6);
    gboolean seen_new = FALSE;
    for (int k = 1; k <= steps; k++) {
        g_autofree char *w = cut_trial(fs, k, NULL);
        if (!g_str_equal(w, "old") && !g_str_equal(w, "new"))
            g_error("cut at step %d: qubes.xml by %s", k, w);
        seen_new |= g_str_equal(w, "new");
        /* Before the rename is made, nothing of the new file may show. */
        if (k <= 5)
            g_assert_cmpstr(w, ==, "old");
    }
    g_test_message("%s: %d cuts, all old or new (new seen: %d)", fs->type,
                   steps, seen_new);
}

static gboolean kill_at(const char *step, const char *path, gpointer data)
{
    int *left = data;
    if (--*left == 0)
        raise(SIGKILL);
    return FALSE;
}

/* qubesd killed at each step of a save: the old file or the new one, and
 * the temporary gone after the next start's cleanup. */
static void test_save_killed(void)
{
    g_autofree char *dir = tmpdir();
    g_autofree char *path = g_build_filename(dir, "qubes.xml", NULL);
    g_autoptr(QubesXml) old = with_writer("old");
    g_autoptr(QubesXml) new = with_writer("new");
    for (int k = 1; k <= 6; k++) {
        OK(qubes_xml_save(old, path, &err_));
        pid_t pid = fork();
        g_assert_cmpint(pid, >=, 0);
        if (pid == 0) {
            int left = k;
            qubes_xml_set_failpoint(kill_at, &left);
            qubes_xml_save(new, path, NULL);
            _exit(3);
        }
        int status;
        g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
        g_assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        OK(qubes_xml_remove_temporaries(path, &err_));
        g_autofree char *left = test_ls(dir);
        g_assert_cmpstr(left, ==, "qubes.xml");
        g_autofree char *w = writer_of(path);
        /* Killed before the rename: old; the rename is step 5. */
        g_assert_cmpstr(w, ==, k <= 5 ? "old" : "new");
    }
    unlink(path);
    rmdir(dir);
}

static void test_default(void)
{
    g_autoptr(QubesXml) x = qubes_xml_new_default("/srv/qubes", FALSE);
    g_assert_cmpuint(x->labels->len, ==, 8);
    const char *names[] = {"red",  "orange", "yellow", "green",
                           "gray", "blue",   "purple", "black"};
    for (guint i = 0; i < 8; i++) {
        QxLabel *l = x->labels->pdata[i];
        g_assert_cmpuint(l->index, ==, i + 1);
        g_assert_cmpstr(l->name, ==, names[i]);
    }
    g_assert_cmpuint(x->pools->len, ==, 2);
    QxAttrs *kernels = x->pools->pdata[1];
    g_assert_cmpstr(qx_attrs_get(kernels, "driver"), ==, "linux-kernel");
    g_assert_cmpstr(qx_attrs_get(kernels, "dir_path"), ==,
                    "/srv/qubes/vm-kernels");
    g_assert_cmpstr(
        qx_properties_get(x->properties, "default_pool_kernel")->value, ==,
        "linux-kernel");
    QxAttrs *pool = x->pools->pdata[0];
    g_assert_cmpstr(qx_attrs_get(pool, "name"), ==, "varlibqubes");
    g_assert_cmpstr(qx_attrs_get(pool, "driver"), ==, "file-reflink");
    g_assert_cmpstr(qx_attrs_get(pool, "dir_path"), ==, "/srv/qubes");
    g_assert_cmpstr(qx_attrs_get(pool, "setup_check"), ==, "False");
    QxDomain *dom0 = qubes_xml_find_domain(x, "dom0");
    g_assert_cmpstr(dom0->klass, ==, "AdminVM");
    g_assert_cmpstr(dom0->id, ==, "domain-0");
    g_autoptr(QubesXml) r = qubes_xml_new_default("/srv/qubes", TRUE);
    g_assert_null(qx_attrs_get(r->pools->pdata[0], "setup_check"));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qubesxml/parse", test_parse);
    g_test_add_func("/qubesxml/lossless", test_lossless);
    g_test_add_func("/qubesxml/refused", test_refused);
    g_test_add_func("/qubesxml/split-properties", test_split_properties);
    g_test_add_func("/qubesxml/save-load", test_save_load);
    g_test_add_func("/qubesxml/save-full-disk", test_save_full_disk);
    g_test_add_func("/qubesxml/concurrent-saves", test_concurrent_saves);
    g_test_add_func("/qubesxml/default", test_default);
    g_test_add_func("/qubesxml/save-killed", test_save_killed);
    g_test_add_data_func("/qubesxml/save-power-cut/xfs", "xfs",
                         test_save_power_cut);
    g_test_add_data_func("/qubesxml/save-power-cut/ext4", "ext4",
                         test_save_power_cut);
    return g_test_run();
}
