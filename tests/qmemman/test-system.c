/* test-system: qmemman's do_balloon() and do_balance() loops over a fake
 * hypervisor whose guests move their balloon at a set speed (or not at
 * all) while the fake clock advances in the backend's sleep(). */
#include "system.h"

#include "quiet-log.h"

#include <glib/gstdio.h>
#include <string.h>

#define MiB (G_GINT64_CONSTANT(1024) * 1024)
#define GiB (1024 * MiB)

typedef struct {
    char *id;
    gint64 current, max, target;
    gint64 speed; /* bytes per second its balloon moves; 0: stuck */
    gboolean reported;
} FakeDom;

typedef struct {
    gint64 host;  /* assignable memory of the host */
    GArray *doms; /* FakeDom */
    double now;
    guint sets;
} Fake;

static gint64 fake_free(gpointer self)
{
    Fake *f = self;
    gint64 used = 0;
    for (guint i = 0; i < f->doms->len; i++)
        used += g_array_index(f->doms, FakeDom, i).current;
    return f->host - used;
}

static void fake_refresh(gpointer self, QmSystem *sys)
{
    Fake *f = self;
    for (guint i = 0; i < f->doms->len; i++) {
        FakeDom *d = &g_array_index(f->doms, FakeDom, i);
        QmDom *q = qm_system_dom(sys, d->id);
        if (!q || !d->reported)
            continue;
        q->mem_current = d->current;
        q->mem_max = d->max;
        q->unseen = FALSE;
    }
}

static FakeDom *fake_dom(Fake *f, const char *id)
{
    for (guint i = 0; i < f->doms->len; i++)
        if (strcmp(g_array_index(f->doms, FakeDom, i).id, id) == 0)
            return &g_array_index(f->doms, FakeDom, i);
    return NULL;
}

static void fake_set(gpointer self, const char *id, gint64 bytes)
{
    Fake *f = self;
    FakeDom *d = fake_dom(f, id);
    g_assert_nonnull(d);
    /* never above the domain's maximum, as the backends do */
    d->target = MIN(bytes, d->max);
    f->sets++;
}

static void fake_sleep(gpointer self, double seconds)
{
    Fake *f = self;
    f->now += seconds;
    for (guint i = 0; i < f->doms->len; i++) {
        FakeDom *d = &g_array_index(f->doms, FakeDom, i);
        gint64 step = (gint64)((double)d->speed * seconds);
        if (d->current > d->target)
            d->current = MAX(d->target, d->current - step);
        else if (d->current < d->target)
            /* growing takes free memory only */
            d->current = MIN(d->target, d->current + MIN(step, fake_free(f)));
    }
}

typedef struct {
    Fake fake;
    QmSystem *sys;
} Fixture;

static void add(Fixture *fx, const char *id, gint64 current, gint64 max,
                gint64 speed, gint64 used)
{
    FakeDom d = {g_strdup(id), current, max, current, speed, TRUE};
    g_array_append_val(fx->fake.doms, d);
    qm_system_add(fx->sys, id, current);
    if (used >= 0) { /* as if it reported @used */
        QmDom *q = qm_system_dom(fx->sys, id);
        q->has_used = TRUE;
        q->mem_used = used;
    }
}

static void setup(Fixture *fx, gconstpointer data)
{
    memset(fx, 0, sizeof(*fx));
    fx->fake.host = 8 * GiB;
    fx->fake.doms = g_array_new(FALSE, TRUE, sizeof(FakeDom));
    QmConfig cfg;
    qm_config_defaults(&cfg);
    QmBackend be = {fake_free, fake_refresh, fake_set, fake_sleep, &fx->fake};
    fx->sys = qm_system_new(&cfg, &be);
}

static void teardown(Fixture *fx, gconstpointer data)
{
    qm_system_free(fx->sys);
    for (guint i = 0; i < fx->fake.doms->len; i++)
        g_free(g_array_index(fx->fake.doms, FakeDom, i).id);
    g_array_unref(fx->fake.doms);
}

/* A request is met by donors that give memory back. */
static void test_balloon_from_donors(Fixture *fx, gconstpointer data)
{
    add(fx, "0", 3 * GiB, 8 * GiB, 500 * MiB, 1 * GiB);
    add(fx, "3", 3 * GiB, 4 * GiB, 500 * MiB, 400 * MiB);
    g_assert_cmpint(fake_free(&fx->fake), ==, 2 * GiB);
    g_assert_true(qm_system_balloon(fx->sys, 2500 * MiB));
    g_assert_cmpint(fake_free(&fx->fake), >=, 2500 * MiB + 25 * MiB);
    /* and nobody was asked for more than the request needed x 1.05 */
    g_assert_cmpint(fake_free(&fx->fake), <, 2500 * MiB + 200 * MiB);
}

/* A donor that does not move gets no_progress and the others give. */
static void test_balloon_stuck_donor(Fixture *fx, gconstpointer data)
{
    add(fx, "0", 3 * GiB, 8 * GiB, 500 * MiB, 1 * GiB);
    add(fx, "5", 3 * GiB, 4 * GiB, 0, 400 * MiB);
    g_assert_true(qm_system_balloon(fx->sys, 2500 * MiB));
    g_assert_true(qm_system_dom(fx->sys, "5")->no_progress);
    g_assert_false(qm_system_dom(fx->sys, "0")->no_progress);
    g_assert_cmpint(fake_dom(&fx->fake, "5")->current, ==, 3 * GiB);
}

/* Nothing moves: the request fails within CHECK_PERIOD rounds, and a
 * request larger than all donors hold fails at once. */
static void test_balloon_fails(Fixture *fx, gconstpointer data)
{
    add(fx, "0", 3 * GiB, 8 * GiB, 0, 1 * GiB);
    add(fx, "5", 3 * GiB, 4 * GiB, 0, 400 * MiB);
    g_assert_false(qm_system_balloon(fx->sys, 4 * GiB));
    g_assert_cmpfloat(fx->fake.now, <=, 0.1 * 31);
    fx->fake.now = 0;
    g_assert_false(qm_system_balloon(fx->sys, 7 * GiB));
    g_assert_cmpfloat(fx->fake.now, ==, 0);
}

/* A domain added and never seen by the hypervisor, or that has not
 * reported its use, is skipped: never a crash (the seed's fix). */
static void test_unseen_and_unreported(Fixture *fx, gconstpointer data)
{
    add(fx, "0", 3 * GiB, 8 * GiB, 500 * MiB, 1 * GiB);
    add(fx, "7", 1 * GiB, 4 * GiB, 500 * MiB, -1);
    qm_system_add(fx->sys, "9", 0); /* the hypervisor has not told */
    QmDom *q = qm_system_dom(fx->sys, "9");
    q->has_used = TRUE;
    q->mem_used = 300 * MiB;
    qm_system_meminfo(fx->sys, "7", NULL);
    g_assert_true(qm_system_balloon(fx->sys, 1 * GiB));
    qm_system_balance(fx->sys);
    g_assert_true(qm_system_dom(fx->sys, "9")->unseen);
    g_assert_cmpint(fake_dom(&fx->fake, "7")->target, ==, 1 * GiB);
}

/* A guest's report of more use gets it memory; the donor gives first
 * (quick guests here: a slow one ends the round early, as below). */
static void test_balance_gives_to_the_hungry(Fixture *fx, gconstpointer data)
{
    fx->fake.host = 6 * GiB;
    add(fx, "0", 2 * GiB, 8 * GiB, 20 * GiB, 1 * GiB);
    add(fx, "3", 3 * GiB, 4 * GiB, 20 * GiB, 300 * MiB);
    add(fx, "4", 500 * MiB, 4 * GiB, 20 * GiB, 300 * MiB);
    qm_system_meminfo(fx->sys, "4", "1048576"); /* 1 GiB used, in KiB */
    FakeDom *hungry = fake_dom(&fx->fake, "4");
    g_assert_cmpint(hungry->target, >, (gint64)(1.3 * GiB));
    g_assert_cmpint(fake_dom(&fx->fake, "3")->target, <, 3 * GiB);
    g_assert_nonnull(
        strstr(qm_system_last_decision(fx->sys), "stat: dom '4' act="));
    /* the free memory never went below 0.9 x XEN_FREE_MEM_LEFT */
    for (int i = 0; i < 50; i++)
        fake_sleep(&fx->fake, 0.1);
    g_assert_cmpint(fake_free(&fx->fake), >=, 45 * MiB);
}

/* A donor that does not give back in time is marked, and the acceptor
 * gets only what is free; a later round that finds it at its target
 * clears the flag. */
static void test_balance_stuck_donor(Fixture *fx, gconstpointer data)
{
    fx->fake.host = 6 * GiB;
    add(fx, "0", 2 * GiB, 8 * GiB, 500 * MiB, 1 * GiB);
    add(fx, "3", 3500 * MiB, 4 * GiB, 0, 300 * MiB);
    add(fx, "4", 400 * MiB, 4 * GiB, 500 * MiB, 300 * MiB);
    qm_system_meminfo(fx->sys, "4", "1048576");
    QmDom *d3 = qm_system_dom(fx->sys, "3");
    g_assert_true(d3->no_progress || d3->slow_memset_react);
    g_assert_cmpint(fake_free(&fx->fake) + (fake_dom(&fx->fake, "4")->current -
                                            fake_dom(&fx->fake, "4")->target),
                    >=, 0);
    /* it reaches its target after all: its flags go at the next round */
    FakeDom *f3 = fake_dom(&fx->fake, "3");
    f3->current = f3->target;
    qm_system_balance(fx->sys);
    g_assert_false(d3->no_progress || d3->slow_memset_react);
}

/* master's per-domain request: a domain asked down to an amount gets
 * there; 0 means its preferred memory; one that has not reported is left
 * alone; an unknown one is refused at once. */
static void test_balloon_dom(Fixture *fx, gconstpointer data)
{
    add(fx, "0", 3 * GiB, 8 * GiB, 500 * MiB, 1 * GiB);
    add(fx, "3", 3 * GiB, 4 * GiB, 500 * MiB, 400 * MiB);
    add(fx, "4", 2 * GiB, 4 * GiB, 500 * MiB, -1);
    const char *ids[] = {"3", "4"};
    gint64 mems[] = {1 * GiB, 0};
    g_assert_true(qm_system_balloon_dom(fx->sys, ids, mems, 2));
    g_assert_cmpint(fake_dom(&fx->fake, "3")->target, ==, 1 * GiB);
    g_assert_cmpint(fake_dom(&fx->fake, "3")->current, <=, (gint64)(1.1 * GiB));
    g_assert_cmpint(fake_dom(&fx->fake, "4")->target, ==, 2 * GiB);
    g_assert_cmpint(fake_dom(&fx->fake, "0")->target, ==, 3 * GiB);
    /* 0: down to its preference (400 MiB x 1.3) */
    const char *three[] = {"3"};
    gint64 zero[] = {0};
    g_assert_true(qm_system_balloon_dom(fx->sys, three, zero, 1));
    g_assert_cmpint(fake_dom(&fx->fake, "3")->target, ==,
                    (gint64)(400 * MiB * 1.3));
    /* unknown domain: refused, nothing set */
    guint sets = fx->fake.sets;
    const char *bad[] = {"3", "77"};
    gint64 two[] = {1 * GiB, 1 * GiB};
    g_assert_false(qm_system_balloon_dom(fx->sys, bad, two, 2));
    g_assert_cmpint(fx->fake.sets, ==, sets);
    g_assert_false(qm_system_balloon_dom(fx->sys, NULL, NULL, 0));
}

/* A domain whose balloon does not move fails the request within the
 * progress period (at the reference's timing and at qmemmand's). */
static void test_balloon_dom_stuck(Fixture *fx, gconstpointer data)
{
    add(fx, "5", 3 * GiB, 4 * GiB, 0, 400 * MiB);
    const char *ids[] = {"5"};
    gint64 mems[] = {1 * GiB};
    g_assert_false(qm_system_balloon_dom(fx->sys, ids, mems, 1));
    g_assert_cmpfloat(fx->fake.now, <=, 0.1 * 31);
    qm_system_set_timing(fx->sys, 2, 10, 10);
    fx->fake.now = 0;
    g_assert_false(qm_system_balloon_dom(fx->sys, ids, mems, 1));
    g_assert_cmpfloat(fx->fake.now, <=, 2 * 6);
    /* a slow one that moves at 20 MiB/s is met at qmemmand's timing */
    fake_dom(&fx->fake, "5")->speed = 20 * MiB;
    g_assert_true(qm_system_balloon_dom(fx->sys, ids, mems, 1));
}

static void note_available(gpointer data, gint64 avail)
{
    *(gint64 *)data = avail;
}

/* do-not-membalance stops balancing while it exists; a completed
 * balance tells what is left to give. */
static void test_inhibit_and_available(Fixture *fx, gconstpointer data)
{
    fx->fake.host = 10 * GiB;
    add(fx, "0", 2 * GiB, 8 * GiB, 20 * GiB, 1 * GiB);
    add(fx, "4", 500 * MiB, 4 * GiB, 20 * GiB, 300 * MiB);
    g_autofree char *dir = g_dir_make_tmp("qm-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "do-not-membalance", NULL);
    qm_system_set_inhibit_file(fx->sys, path);
    gint64 avail = G_MININT64;
    qm_system_on_balanced(fx->sys, note_available, &avail);
    g_assert_true(g_file_set_contents(path, "", 0, NULL));
    qm_system_meminfo(fx->sys, "4", "1048576");
    g_assert_cmpint(fx->fake.sets, ==, 0);
    g_assert_cmpint(avail, ==, G_MININT64);
    g_remove(path);
    g_rmdir(dir);
    qm_system_meminfo(fx->sys, "4", "1048570");
    g_assert_cmpint(fx->fake.sets, >, 0);
    /* told right after the targets were set, before the donors gave:
     * what the reference writes then */
    g_assert_cmpint(avail, !=, G_MININT64);
    g_assert_cmpint(avail, <, 10 * GiB);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    qm_test_quiet_log();
#define T(name, fn)                                                            \
    g_test_add("/qmemman/system/" name, Fixture, NULL, setup, fn, teardown)
    T("balloon-from-donors", test_balloon_from_donors);
    T("balloon-stuck-donor", test_balloon_stuck_donor);
    T("balloon-fails", test_balloon_fails);
    T("unseen-and-unreported", test_unseen_and_unreported);
    T("balance-gives-to-the-hungry", test_balance_gives_to_the_hungry);
    T("balance-stuck-donor", test_balance_stuck_donor);
    T("balloon-dom", test_balloon_dom);
    T("balloon-dom-stuck", test_balloon_dom_stuck);
    T("inhibit-and-available", test_inhibit_and_available);
    return g_test_run();
}
