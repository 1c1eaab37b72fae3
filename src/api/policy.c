/* policy.c: see policy.h. */
#include "policy.h"

#include <string.h>

typedef struct {
    char *service; /* or "*" */
    char *arg;     /* "+..." or "*" */
    char *source;
    char *target;
    gboolean allow; /* the action is "allow" (deny and ask are not) */
} Rule;

struct _QubesPolicy {
    GPtrArray *rules; /* Rule, in evaluation order */
};

static void rule_free(Rule *r)
{
    g_free(r->service);
    g_free(r->arg);
    g_free(r->source);
    g_free(r->target);
    g_free(r);
}

/* Includes nest at most this deep (a loop of includes ends there). */
#define MAX_DEPTH 8

static void load_file(QubesPolicy *p, const char *dir, const char *path,
                      const char *service, const char *arg, int depth);

static char *resolve(const char *dir, const char *path)
{
    return g_path_is_absolute(path) ? g_strdup(path)
                                    : g_build_filename(dir, path, NULL);
}

static gint cmp_names(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void load_dir(QubesPolicy *p, const char *dir, int depth)
{
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    if (!d)
        return;
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    const char *n;
    while ((n = g_dir_read_name(d))) {
        if (g_str_has_suffix(n, ".policy"))
            g_ptr_array_add(names, g_strdup(n));
    }
    g_ptr_array_sort(names, cmp_names);
    for (guint i = 0; i < names->len; i++) {
        g_autofree char *path = g_build_filename(dir, names->pdata[i], NULL);
        load_file(p, dir, path, NULL, NULL, depth);
    }
}

static gboolean word_ok(const char *w)
{
    for (; *w; w++) {
        if ((unsigned char)*w <= 0x20 || (unsigned char)*w >= 0x7f)
            return FALSE;
    }
    return TRUE;
}

static void load_file(QubesPolicy *p, const char *dir, const char *path,
                      const char *service, const char *arg, int depth)
{
    if (depth > MAX_DEPTH) {
        g_warning("policy %s: includes nest too deep; not read", path);
        return;
    }
    g_autofree char *text = NULL;
    gsize len;
    if (!g_file_get_contents(path, &text, &len, NULL))
        return;
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    for (guint ln = 0; lines[ln]; ln++) {
        char *line = lines[ln];
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        g_auto(GStrv) w = g_strsplit_set(g_strstrip(line), " \t", -1);
        GPtrArray *words = g_ptr_array_new();
        for (char **x = w; *x; x++) {
            if (**x)
                g_ptr_array_add(words, *x);
        }
        guint n = words->len;
        char **v = (char **)words->pdata;
        gboolean ok = TRUE;
        for (guint i = 0; i < n; i++)
            ok = ok && word_ok(v[i]);
        if (!n) {
        } else if (!ok) {
            g_warning("policy %s:%u: unreadable line skipped", path, ln + 1);
        } else if (strcmp(v[0], "!include") == 0 && n == 2) {
            g_autofree char *inc = resolve(dir, v[1]);
            load_file(p, dir, inc, service, arg, depth + 1);
        } else if (strcmp(v[0], "!include-dir") == 0 && n == 2) {
            g_autofree char *inc = resolve(dir, v[1]);
            load_dir(p, inc, depth + 1);
        } else if (strcmp(v[0], "!include-service") == 0 && n == 4) {
            g_autofree char *inc = resolve(dir, v[3]);
            load_file(p, dir, inc, v[1], v[2], depth + 1);
        } else if (v[0][0] == '!') {
            /* !compat-4.0 and friends: nothing for us. */
        } else if ((service && n >= 3) || (!service && n >= 5)) {
            guint o = service ? 0 : 2;
            Rule *r = g_new0(Rule, 1);
            r->service = g_strdup(service ? service : v[0]);
            r->arg = g_strdup(service ? arg : v[1]);
            r->source = g_strdup(v[o]);
            r->target = g_strdup(v[o + 1]);
            r->allow = strcmp(v[o + 2], "allow") == 0;
            g_ptr_array_add(p->rules, r);
        } else {
            g_warning("policy %s:%u: unreadable line skipped", path, ln + 1);
        }
        g_ptr_array_free(words, TRUE);
    }
}

QubesPolicy *qubes_policy_load(const char *dir)
{
    QubesPolicy *p = g_new0(QubesPolicy, 1);
    p->rules = g_ptr_array_new_with_free_func((GDestroyNotify)rule_free);
    if (dir)
        load_dir(p, dir, 0);
    return p;
}

void qubes_policy_free(QubesPolicy *policy)
{
    if (!policy)
        return;
    g_ptr_array_unref(policy->rules);
    g_free(policy);
}

static gboolean has_tag(QubesDomain *d, const char *tag)
{
    return d && g_hash_table_contains(d->tags, tag);
}

/* Whether the policy token @tok matches the qube @d (NULL: dom0 when
 * @is_admin, else no qube). */
static gboolean token_matches(QubesApp *app, const char *tok, QubesDomain *d,
                              gboolean is_target)
{
    gboolean admin = d && d->qid == 0;
    if (strcmp(tok, "@adminvm") == 0 || strcmp(tok, "dom0") == 0)
        return admin;
    if (strcmp(tok, "@anyvm") == 0)
        return d && !(is_target && admin);
    if (!d)
        return FALSE;
    if (g_str_has_prefix(tok, "@tag:"))
        return has_tag(d, tok + 5);
    if (g_str_has_prefix(tok, "@type:"))
        return strcmp(d->klass->name, tok + 6) == 0;
    if (g_str_has_prefix(tok, "@dispvm:")) {
        const char *what = tok + 8;
        if (strcmp(d->klass->name, "DispVM") != 0)
            return FALSE;
        QubesDomain *t = qubes_domain_get_template(d);
        if (g_str_has_prefix(what, "@tag:"))
            return t && has_tag(t, what + 5);
        return t && strcmp(t->name, what) == 0;
    }
    if (tok[0] == '@')
        return FALSE; /* @default, @dispvm: no qube is that */
    return strcmp(tok, d->name) == 0;
}

gboolean qubes_policy_allows(QubesPolicy *policy, QubesApp *app,
                             const char *service, const char *arg,
                             QubesDomain *source, const char *target)
{
    QubesDomain *t = strcmp(target, "@adminvm") == 0
                         ? qubes_app_get_domain_by_qid(app, 0)
                         : g_hash_table_lookup(app->by_name, target);
    for (guint i = 0; i < policy->rules->len; i++) {
        Rule *r = policy->rules->pdata[i];
        if (strcmp(r->service, "*") && strcmp(r->service, service))
            continue;
        if (strcmp(r->arg, "*") && strcmp(r->arg, arg))
            continue;
        if (!token_matches(app, r->source, source, FALSE))
            continue;
        if (!token_matches(app, r->target, t, TRUE))
            continue;
        return r->allow;
    }
    return FALSE;
}
