/* test-system: qmemman's do_balloon() and do_balance() loops over a fake
 * hypervisor whose guests move their balloon at a set speed (or not at
 * all) while the fake clock advances in the backend's sleep(). */
#include "system.h"

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

static void quiet(const char *domain, GLogLevelFlags level, const char *msg,
                  gpointer data)
{
    /* the decisions' log lines: on the test's stdout they would mix with
     * its TAP; what a test checks it reads from the state */
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_log_set_always_fatal(G_LOG_LEVEL_ERROR);
    g_log_set_handler("qmemman",
                      G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO |
                          G_LOG_LEVEL_DEBUG | G_LOG_LEVEL_WARNING |
                          G_LOG_LEVEL_CRITICAL,
                      quiet, NULL);
#define T(name, fn)                                                            \
    g_test_add("/qmemman/system/" name, Fixture, NULL, setup, fn, teardown)
    T("balloon-from-donors", test_balloon_from_donors);
    T("balloon-stuck-donor", test_balloon_stuck_donor);
    T("balloon-fails", test_balloon_fails);
    T("unseen-and-unreported", test_unseen_and_unreported);
    T("balance-gives-to-the-hungry", test_balance_gives_to_the_hungry);
    T("balance-stuck-donor", test_balance_stuck_donor);
    return g_test_run();
}
