/* test-xen: qmemmand's Xen hypervisor (hv-xen.c) and the daemon's core
 * (daemon.c) over a fake of libxenctrl and xenstore (xen-ops.h): this
 * machine has no Xen. The fake keeps xenstore as a table of paths and
 * its domains' pages; a domain's balloon meets its target at once when
 * the memory is there (Xen's is quick), or not at all when it is stuck.
 */
#include "daemon.h"
#include "hv-xen.h"

#include "quiet-log.h"

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <string.h>

#define KiB G_GINT64_CONSTANT(1024)
#define MiB (1024 * KiB)
#define GiB (1024 * MiB)

typedef struct {
    guint32 domid;
    gint64 kib;
    gboolean stuck;
} FakeDom;

typedef struct {
    QmXenOps ops;
    gint64 total_kib;
    GArray *doms;       /* FakeDom */
    GHashTable *store;  /* path -> value */
    GHashTable *maxmem; /* "domid" -> KiB as text */
    guint target_calls;
    gboolean closed;
} Fake;

static FakeDom *fake_dom(Fake *f, guint32 domid)
{
    for (guint i = 0; i < f->doms->len; i++)
        if (g_array_index(f->doms, FakeDom, i).domid == domid)
            return &g_array_index(f->doms, FakeDom, i);
    return NULL;
}

static gint64 fake_free_kib(Fake *f)
{
    gint64 used = 0;
    for (guint i = 0; i < f->doms->len; i++)
        used += g_array_index(f->doms, FakeDom, i).kib;
    return f->total_kib - used;
}

static gboolean f_physinfo(gpointer self, gint64 *total, gint64 *free)
{
    Fake *f = self;
    *total = f->total_kib;
    *free = fake_free_kib(f);
    return TRUE;
}

static GArray *f_domains(gpointer self)
{
    Fake *f = self;
    GArray *out = g_array_new(FALSE, FALSE, sizeof(QmXenDomInfo));
    for (guint i = 0; i < f->doms->len; i++) {
        FakeDom *d = &g_array_index(f->doms, FakeDom, i);
        QmXenDomInfo info = {d->domid, d->kib, FALSE};
        g_array_append_val(out, info);
    }
    return out;
}

static gboolean f_setmaxmem(gpointer self, guint32 domid, gint64 kib)
{
    Fake *f = self;
    g_hash_table_insert(f->maxmem, g_strdup_printf("%u", domid),
                        g_strdup_printf("%" G_GINT64_FORMAT, kib));
    return fake_dom(f, domid) != NULL;
}

static gboolean f_set_target_mem(gpointer self, guint32 domid, gint64 kib)
{
    Fake *f = self;
    f->target_calls++;
    FakeDom *d = fake_dom(f, domid);
    if (!d)
        return FALSE;
    if (!d->stuck)
        d->kib =
            kib <= d->kib ? kib : d->kib + MIN(kib - d->kib, fake_free_kib(f));
    return TRUE;
}

static char *f_read(gpointer self, const char *path)
{
    return g_strdup(g_hash_table_lookup(((Fake *)self)->store, path));
}

static gboolean f_write(gpointer self, const char *path, const char *value)
{
    g_hash_table_insert(((Fake *)self)->store, g_strdup(path), g_strdup(value));
    return TRUE;
}

static gint by_name(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The children of @path, in the order xenstore gives them (sorted). */
static char **f_ls(gpointer self, const char *path)
{
    Fake *f = self;
    g_autoptr(GHashTable) names =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    g_autofree char *prefix = g_strconcat(path, "/", NULL);
    GHashTableIter it;
    gpointer k;
    g_hash_table_iter_init(&it, f->store);
    while (g_hash_table_iter_next(&it, &k, NULL)) {
        if (!g_str_has_prefix(k, prefix))
            continue;
        const char *rest = (const char *)k + strlen(prefix);
        g_hash_table_add(names, g_strndup(rest, strcspn(rest, "/")));
    }
    GPtrArray *out = g_ptr_array_new();
    g_hash_table_iter_init(&it, names);
    while (g_hash_table_iter_next(&it, &k, NULL))
        g_ptr_array_add(out, g_strdup(k));
    g_ptr_array_sort(out, by_name);
    g_ptr_array_add(out, NULL);
    return (char **)g_ptr_array_free(out, FALSE);
}

static void f_wait(gpointer self, double seconds)
{
}

static void f_close(gpointer self)
{
    ((Fake *)self)->closed = TRUE;
}

static void put(Fake *f, guint32 domid, const char *key, const char *value)
{
    g_autofree char *path =
        key ? g_strdup_printf("/local/domain/%u/%s", domid, key)
            : g_strdup_printf("/local/domain/%u/domid", domid);
    if (value)
        g_hash_table_insert(f->store, g_steal_pointer(&path), g_strdup(value));
    else
        g_hash_table_remove(f->store, path);
}

static const char *get(Fake *f, guint32 domid, const char *key)
{
    g_autofree char *path = g_strdup_printf("/local/domain/%u/%s", domid, key);
    return g_hash_table_lookup(f->store, path);
}

/* A domain of @mib MiB (static-max @max_mib, 0: none, as dom0) that
 * reported @used_kib KiB (NULL: nothing yet). */
static void add_dom(Fake *f, guint32 domid, gint64 mib, gint64 max_mib,
                    const char *used_kib)
{
    FakeDom d = {domid, mib * 1024, FALSE};
    g_array_append_val(f->doms, d);
    char v[32];
    g_snprintf(v, sizeof v, "%u", domid);
    put(f, domid, NULL, v);
    if (max_mib) {
        g_snprintf(v, sizeof v, "%" G_GINT64_FORMAT, max_mib * 1024);
        put(f, domid, "memory/static-max", v);
    }
    g_snprintf(v, sizeof v, "%" G_GINT64_FORMAT, mib * 1024);
    put(f, domid, "memory/target", v);
    put(f, domid, "memory/meminfo", used_kib);
}

typedef struct {
    Fake fake;
    QmHv *hv;
    QmDaemon *d;
    char *dir;
} Fixture;

static void setup(Fixture *fx, gconstpointer data)
{
    memset(fx, 0, sizeof(*fx));
    Fake *f = &fx->fake;
    f->total_kib = 16 * GiB / KiB;
    f->doms = g_array_new(FALSE, TRUE, sizeof(FakeDom));
    f->store = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    f->maxmem = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    f->ops =
        (QmXenOps){f_physinfo, f_domains, f_setmaxmem, f_set_target_mem, f_read,
                   f_write,    f_ls,      f_wait,      f_close,          f};
    fx->hv = qm_hv_xen_new(&f->ops);
    fx->dir = g_dir_make_tmp("qm-xen-XXXXXX", NULL);
    g_autofree char *avail = g_build_filename(fx->dir, "avail", NULL);
    g_autofree char *inhibit = g_build_filename(fx->dir, "inhibit", NULL);
    QmConfig cfg;
    qm_config_defaults(&cfg);
    fx->d = qm_daemon_new(fx->hv, &cfg, avail, inhibit);
    /* no real sleeping: the fake's balloons move at once */
    qm_system_set_timing(qm_daemon_system(fx->d), 0.001, 0.03, 100);
}

static void teardown(Fixture *fx, gconstpointer data)
{
    qm_daemon_free(fx->d);
    fx->hv->free(fx->hv);
    g_assert_true(fx->fake.closed);
    g_array_unref(fx->fake.doms);
    g_hash_table_unref(fx->fake.store);
    g_hash_table_unref(fx->fake.maxmem);
    g_autofree char *avail = g_build_filename(fx->dir, "avail", NULL);
    g_remove(avail);
    g_rmdir(fx->dir);
    g_free(fx->dir);
}

static QmDom *dom(Fixture *fx, const char *id)
{
    return qm_system_dom(qm_daemon_system(fx->d), id);
}

/* What the reference reads: domains with a domid key, their target
 * from memory/target, their maximum from static-max (dom0: the host's
 * assignable memory), their use from meminfo; and what it writes for a
 * target: memory/target 16 MiB lower than what Xen is told, maxmem 1024
 * KiB above, in KiB. */
static void test_read_and_write(Fixture *fx, gconstpointer data)
{
    Fake *f = &fx->fake;
    add_dom(f, 0, 4096, 0, "1048576");
    add_dom(f, 3, 1000, 4000, "307200");
    /* an empty directory left behind: no domid key, not a domain */
    put(f, 9, "memory/target", "1");
    g_hash_table_remove(f->store, "/local/domain/9/domid");
    qm_daemon_watch(fx->d);
    QmDom *d0 = dom(fx, "0"), *d3 = dom(fx, "3");
    g_assert_nonnull(d0);
    g_assert_nonnull(d3);
    g_assert_null(dom(fx, "9"));
    g_assert_cmpint(d0->mem_max, ==, qm_all_phys_mem(16 * GiB));
    g_assert_cmpint(d3->mem_max, ==, 4000 * MiB);
    g_assert_true(d0->has_used);
    g_assert_cmpint(d0->mem_used, ==, 1 * GiB);
    g_assert_cmpint(d3->mem_used, ==, 300 * MiB);
    /* 11 GiB free: both were given more than they prefer, each target
     * written as the reference writes it */
    gint64 t3 = d3->last_target;
    g_assert_cmpint(t3, >, 1000 * MiB);
    g_assert_cmpint(t3, <=, 4000 * MiB);
    g_autofree char *want_target =
        g_strdup_printf("%" G_GINT64_FORMAT, (gint64)(t3 / 1024 - 16 * 1024));
    g_assert_cmpstr(get(f, 3, "memory/target"), ==, want_target);
    g_autofree char *want_max =
        g_strdup_printf("%" G_GINT64_FORMAT, t3 / 1024 + 1024);
    g_assert_cmpstr(g_hash_table_lookup(f->maxmem, "3"), ==, want_max);
    g_assert_cmpint(fake_dom(f, 3)->kib, ==, t3 / 1024);
    /* static-max is the toolstack's, left alone without hotplug */
    g_assert_cmpstr(get(f, 3, "memory/static-max"), ==, "4096000");
    /* the balance told what is left to give */
    g_autofree char *avail = g_build_filename(fx->dir, "avail", NULL);
    g_autofree char *text = NULL;
    g_assert_true(g_file_get_contents(avail, &text, NULL, NULL));
    gint64 left;
    g_assert_true(g_ascii_string_to_signed(text, 10, G_MININT64, G_MAXINT64,
                                           &left, NULL));
}

/* A domain with memory hotplug: its maximum from hotplug-max, and a
 * target moves static-max too. */
static void test_hotplug(Fixture *fx, gconstpointer data)
{
    Fake *f = &fx->fake;
    add_dom(f, 0, 4096, 0, "1048576");
    add_dom(f, 5, 800, 800, "204800");
    put(f, 5, "memory/hotplug-max", "8388608");
    qm_daemon_watch(fx->d);
    QmDom *d5 = dom(fx, "5");
    g_assert_cmpint(d5->mem_max, ==, 8 * GiB);
    g_autofree char *want =
        g_strdup_printf("%" G_GINT64_FORMAT, d5->last_target / 1024);
    g_assert_cmpint(d5->last_target, >, 800 * MiB);
    g_assert_cmpstr(get(f, 5, "memory/static-max"), ==, want);
}

/* The socket's requests over Xen: N bytes freed from the donors; the
 * per-domain form; garbage answered and nothing changed. */
static void test_requests(Fixture *fx, gconstpointer data)
{
    Fake *f = &fx->fake;
    f->total_kib = 6 * GiB / KiB;
    add_dom(f, 0, 3000, 0, "1048576");
    add_dom(f, 3, 2500, 4000, "307200");
    qm_daemon_watch(fx->d);
    gint64 before = fake_free_kib(f);
    const char *ok = "1500000000\n";
    g_assert_cmpstr(qm_daemon_request(fx->d, ok, strlen(ok)), ==, "OK\n");
    g_assert_cmpint(fake_free_kib(f) * KiB, >=, 1500000000 + 25 * MiB);
    g_assert_cmpint(fake_free_kib(f), >, before);
    qm_daemon_release(fx->d);
    const char *too_much = "60000000000";
    g_assert_cmpstr(qm_daemon_request(fx->d, too_much, strlen(too_much)), ==,
                    "FAIL\n");
    qm_daemon_release(fx->d);
    /* per-domain: dom 3 down to 600 MiB */
    const char *per = " 3:629145600 \n";
    g_assert_cmpstr(qm_daemon_request(fx->d, per, strlen(per)), ==, "OK\n");
    g_assert_cmpint(fake_dom(f, 3)->kib, ==, 600 * 1024);
    qm_daemon_release(fx->d);
    guint calls = f->target_calls;
    const char *bad[] = {"abc", "3:x",   "3:1:2",    "3:5 7",     "3:1e6",
                         "-5",  "12 34", "\xc3\xa9", "3:\xc3\xa9"};
    for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_assert_cmpstr(qm_daemon_request(fx->d, bad[i], strlen(bad[i])), ==,
                        "INVALID_ARG\n");
        qm_daemon_release(fx->d);
    }
    /* unknown domain: refused */
    const char *unknown = "3:629145600 77:1";
    g_assert_cmpstr(qm_daemon_request(fx->d, unknown, strlen(unknown)), ==,
                    "FAIL\n");
    qm_daemon_release(fx->d);
    g_assert_cmpint(f->target_calls, ==, calls);
    /* Python's int(): underscores between digits, a sign */
    const char *py = "3:+629_145_600";
    g_assert_cmpstr(qm_daemon_request(fx->d, py, strlen(py)), ==, "OK\n");
    qm_daemon_release(fx->d);
}

/* A stuck guest gets no_progress on a request; it goes when the guest
 * asks for more than it has. Garbage in meminfo is "not reported". */
static void test_stuck_and_garbage(Fixture *fx, gconstpointer data)
{
    Fake *f = &fx->fake;
    f->total_kib = 6 * GiB / KiB;
    add_dom(f, 0, 3000, 0, "1048576");
    add_dom(f, 3, 2500, 4000, "307200");
    qm_daemon_watch(fx->d);
    fake_dom(f, 3)->stuck = TRUE;
    const char *req = "2500000000";
    qm_daemon_request(fx->d, req, strlen(req));
    qm_daemon_release(fx->d);
    g_assert_true(dom(fx, "3")->no_progress);
    /* it asks for more than it has: the flag is cleared */
    fake_dom(f, 3)->stuck = FALSE;
    put(f, 3, "memory/meminfo", "3145728");
    qm_daemon_watch(fx->d);
    g_assert_false(dom(fx, "3")->no_progress);
    /* garbage: not reported, no crash, no balance on it */
    put(f, 3, "memory/meminfo", "12abc");
    qm_daemon_watch(fx->d);
    g_assert_false(dom(fx, "3")->has_used);
    /* digits other than ASCII ones (Arabic-Indic, superscript, full
     * width): master's bytes.isdigit() refuses them, so do we */
    static const char *const not_ascii[] = {"\xd9\xa1\xd9\xa2",
                                            "2\xc2\xb2",
                                            "\xef\xbc\x91\xef\xbc\x92",
                                            " 123",
                                            "123\n",
                                            "+1"};
    for (guint i = 0; i < G_N_ELEMENTS(not_ascii); i++) {
        put(f, 3, "memory/meminfo", "3145728");
        qm_daemon_watch(fx->d);
        g_assert_true(dom(fx, "3")->has_used);
        put(f, 3, "memory/meminfo", not_ascii[i]);
        qm_daemon_watch(fx->d);
        g_assert_false(dom(fx, "3")->has_used);
    }
    /* and it goes with its directory */
    g_hash_table_remove(f->store, "/local/domain/3/domid");
    qm_daemon_watch(fx->d);
    g_assert_null(dom(fx, "3"));
}

/* do-not-membalance stops the balancing while it exists. */
static void test_inhibit(Fixture *fx, gconstpointer data)
{
    Fake *f = &fx->fake;
    g_autofree char *inhibit = g_build_filename(fx->dir, "inhibit", NULL);
    g_assert_true(g_file_set_contents(inhibit, "", 0, NULL));
    add_dom(f, 0, 4096, 0, "1048576");
    add_dom(f, 3, 1000, 4000, "307200");
    qm_daemon_watch(fx->d);
    g_assert_cmpint(f->target_calls, ==, 0);
    g_remove(inhibit);
    put(f, 3, "memory/meminfo", "307201");
    qm_daemon_watch(fx->d);
    g_assert_cmpint(f->target_calls, >, 0);
}

/* The state for qvm-memory, and as a qmemman-sim case. */
static void test_dump(Fixture *fx, gconstpointer data)
{
    Fake *f = &fx->fake;
    add_dom(f, 0, 4096, 0, "1048576");
    add_dom(f, 3, 1000, 4000, NULL);
    qm_daemon_watch(fx->d);
    g_autofree char *state = qm_daemon_dump(fx->d, FALSE);
    g_autoptr(JsonParser) p = json_parser_new();
    g_assert_true(json_parser_load_from_data(p, state, -1, NULL));
    JsonObject *o = json_node_get_object(json_parser_get_root(p));
    g_assert_cmpstr(json_object_get_string_member(o, "hypervisor"), ==, "xen");
    JsonArray *doms = json_object_get_array_member(o, "domains");
    g_assert_cmpint(json_array_get_length(doms), ==, 2);
    JsonObject *d0 = json_array_get_object_element(doms, 0);
    g_assert_cmpstr(json_object_get_string_member(d0, "id"), ==, "0");
    g_assert_cmpint(json_object_get_int_member(d0, "pref"), ==,
                    (gint64)(1 * GiB * 1.3) + 350 * MiB);
    JsonObject *d3 = json_array_get_object_element(doms, 1);
    g_assert_true(json_object_get_null_member(d3, "mem_used"));
    JsonObject *last = json_object_get_object_member(o, "last_decision");
    /* added first (with no use reported, nothing to balance), then dom0's
     * report, as the reference's watches come */
    g_assert_cmpstr(json_object_get_string_member(last, "why"), ==,
                    "dom 0 reported its use");
    g_assert_cmpstr(json_object_get_string_member(last, "mode"), ==, "enough");

    g_autofree char *c = qm_daemon_dump(fx->d, TRUE);
    g_assert_nonnull(strchr(c, '\n'));
    g_assert_cmpint(strchr(c, '\n')[1], ==, '\0');
    g_autoptr(JsonParser) pc = json_parser_new();
    g_assert_true(json_parser_load_from_data(pc, c, -1, NULL));
    JsonObject *co = json_node_get_object(json_parser_get_root(pc));
    g_assert_cmpstr(json_object_get_string_member(co, "op"), ==, "balance");
    g_assert_cmpint(json_object_get_int_member(co, "free"), ==,
                    qm_all_phys_mem(fake_free_kib(f) * 1024));
    g_assert_cmpint(json_object_get_int_member(co, "total_mem"), ==,
                    qm_all_phys_mem(16 * GiB));
    JsonArray *cd = json_object_get_array_member(co, "domains");
    g_assert_cmpint(json_array_get_length(cd), ==, 2);
    g_assert_cmpint(json_object_get_int_member(
                        json_array_get_object_element(cd, 1), "last_target"),
                    ==, dom(fx, "3")->last_target);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    qm_test_quiet_log();
#define T(name, fn)                                                            \
    g_test_add("/qmemman/xen/" name, Fixture, NULL, setup, fn, teardown)
    T("read-and-write", test_read_and_write);
    T("hotplug", test_hotplug);
    T("requests", test_requests);
    T("stuck-and-garbage", test_stuck_and_garbage);
    T("inhibit", test_inhibit);
    T("dump", test_dump);
    return g_test_run();
}
