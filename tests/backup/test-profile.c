/* test-profile: backup profiles (src/backup/profile.c) read as the
 * reference reads them (PyYAML's safe_load, then _load_backup_profile's
 * rules) and written as the Qubes client's qvm-backup writes them
 * (yaml.safe_dump): each written profile is compared byte for byte with
 * what PyYAML itself dumps for the same values. */
#include "profile.h"
#include "qubes-error.h"

#include <string.h>

static QubesBackupProfile *parse(const char *text, GError **error)
{
    return qubes_backup_profile_parse(text, strlen(text), "t.conf", error);
}

static const char *base = "destination_vm: dom0\ndestination_path: /b\n";

static QubesBackupProfile *with(const char *more)
{
    g_autofree char *text = g_strconcat(base, more, NULL);
    GError *err = NULL;
    QubesBackupProfile *p = parse(text, &err);
    g_assert_no_error(err);
    return p;
}

static void test_keys_and_defaults(void)
{
    g_autoptr(QubesBackupProfile) p =
        with("include:\n - work\n - $tag:x\n - '@type:TemplateVM'\n"
             "passphrase_text: a b c\n");
    g_assert_cmpstr(p->destination_vm, ==, "dom0");
    g_assert_cmpstr(p->destination_path, ==, "/b");
    g_assert_cmpuint(g_strv_length(p->include), ==, 3);
    g_assert_cmpstr(p->include[1], ==, "@tag:x"); /* the old spelling */
    g_assert_cmpstr(p->include[2], ==, "@type:TemplateVM");
    g_assert_nonnull(p->exclude);
    g_assert_cmpuint(g_strv_length(p->exclude), ==, 0);
    g_assert_true(p->compressed);
    g_assert_null(p->compression_filter);
    g_assert_cmpstr(p->passphrase_text, ==, "a b c");
    g_assert_null(p->passphrase_vm);
    g_autoptr(QubesBackupProfile) n = with("include: ~\nexclude: [a, b]\n");
    g_assert_null(n->include);
    g_assert_cmpstr(n->exclude[1], ==, "b");
}

/* compression: YAML 1.1 booleans, null, numbers, or a filter's name */
static void test_compression(void)
{
    static const struct {
        const char *yaml;
        gboolean compressed;
        const char *filter;
    } cases[] = {
        {"true", TRUE, NULL},     {"True", TRUE, NULL},
        {"yes", TRUE, NULL},      {"on", TRUE, NULL},
        {"false", FALSE, NULL},   {"No", FALSE, NULL},
        {"off", FALSE, NULL},     {"null", FALSE, NULL},
        {"~", FALSE, NULL},       {"0", FALSE, NULL},
        {"1", TRUE, NULL},        {"xz", TRUE, "xz"},
        {"'true'", TRUE, "true"}, {"''", FALSE, NULL},
        {"zstd", TRUE, "zstd"},
    };
    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *more =
            g_strdup_printf("include: null\ncompression: %s\n", cases[i].yaml);
        g_autoptr(QubesBackupProfile) p = with(more);
        g_assert_cmpint(p->compressed, ==, cases[i].compressed);
        g_assert_cmpstr(p->compression_filter, ==, cases[i].filter);
    }
}

/* the reference's KeyError order and words */
static void test_refusals(void)
{
    static const struct {
        const char *text;
        const char *message;
    } cases[] = {
        {"include: null\n",
         "Invalid backup profile - missing 'destination_vm'"},
        {"destination_vm: dom0\ninclude: null\n",
         "Invalid backup profile - missing 'destination_path'"},
        {"destination_vm: dom0\ndestination_path: /x\n",
         "Invalid backup profile - missing 'include'"},
        {"", NULL},
        {"- a\n- b\n", NULL},
        {"include: [\n", NULL},
        {"destination_vm: [a]\ndestination_path: /x\ninclude: null\n", NULL},
        {"destination_vm: dom0\ndestination_path: /x\ninclude: work\n", NULL},
        {"destination_vm: dom0\ndestination_path: /x\ninclude: [[a]]\n", NULL},
    };
    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        GError *err = NULL;
        QubesBackupProfile *p = parse(cases[i].text, &err);
        g_assert_null(p);
        g_assert_error(err, QUBES_ERROR, QUBES_ERROR_EXCEPTION);
        if (cases[i].message)
            g_assert_cmpstr(err->message, ==, cases[i].message);
        g_error_free(err);
    }
}

/* What PyYAML's safe_dump writes for @py (a Python dict literal). */
static char *pyyaml_dump(const char *py)
{
    g_autofree char *code =
        g_strdup_printf("import sys, yaml; yaml.safe_dump(%s, sys.stdout)", py);
    const char *argv[] = {"python3", "-c", code, NULL};
    char *out = NULL;
    int status = 0;
    GError *err = NULL;
    if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL,
                      NULL, &out, NULL, &status, &err) ||
        !g_spawn_check_wait_status(status, NULL))
        return NULL;
    return out;
}

static void test_written_as_qvm_backup_writes(void)
{
    g_autofree char *probe = pyyaml_dump("{}");
    if (!probe) {
        if (g_getenv("CI"))
            g_error("python3 with PyYAML (python3-yaml) is needed");
        g_test_skip("no PyYAML");
        return;
    }
    static const char *const names[] = {"work", "@tag:x", "a b",  "true",
                                        "123",  "-x",     "it's", NULL};
    static const char *const none[] = {NULL};
    static const struct {
        const char *const *include;
        const char *const *exclude;
        const char *pass;
        gboolean compressed;
        const char *filter;
        const char *py;
    } cases[] = {
        {NULL, none, NULL, TRUE, NULL,
         "{'include': None, 'compression': True, 'destination_vm': 'dom0', "
         "'destination_path': '/home/user/b k'}"},
        {names, names, "pass: word #1", FALSE, NULL,
         "{'include': ['work', '@tag:x', 'a b', 'true', '123', '-x', "
         "\"it's\"], 'exclude': ['work', '@tag:x', 'a b', 'true', '123', "
         "'-x', \"it's\"], 'passphrase_text': 'pass: word #1', "
         "'compression': False, 'destination_vm': 'dom0', "
         "'destination_path': '/home/user/b k'}"},
        {names, none, "simple", TRUE, "xz",
         "{'include': ['work', '@tag:x', 'a b', 'true', '123', '-x', "
         "\"it's\"], 'passphrase_text': 'simple', 'compression': 'xz', "
         "'destination_vm': 'dom0', 'destination_path': '/home/user/b k'}"},
    };
    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        QubesBackupProfile p = {
            .include = (GStrv)cases[i].include,
            .exclude = (GStrv)cases[i].exclude,
            .destination_vm = (char *)"dom0",
            .destination_path = (char *)"/home/user/b k",
            .passphrase_text = (char *)cases[i].pass,
            .compressed = cases[i].compressed,
            .compression_filter = (char *)cases[i].filter,
        };
        g_autofree char *ours = qubes_backup_profile_format(&p);
        g_autofree char *theirs = pyyaml_dump(cases[i].py);
        g_assert_cmpstr(ours, ==, theirs);
        /* and it reads back the same */
        GError *err = NULL;
        g_autoptr(QubesBackupProfile) back = parse(ours, &err);
        g_assert_no_error(err);
        g_assert_cmpstr(back->passphrase_text, ==, cases[i].pass);
        g_assert_cmpint(back->compressed, ==, cases[i].compressed);
        g_assert_cmpstr(back->compression_filter, ==, cases[i].filter);
        if (cases[i].include)
            g_assert_true(g_strv_equal((const char *const *)back->include,
                                       cases[i].include));
        else
            g_assert_null(back->include);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_set_nonfatal_assertions();
    g_test_add_func("/profile/keys-and-defaults", test_keys_and_defaults);
    g_test_add_func("/profile/compression", test_compression);
    g_test_add_func("/profile/refusals", test_refusals);
    g_test_add_func("/profile/written-as-qvm-backup",
                    test_written_as_qvm_backup_writes);
    return g_test_run();
}
