/* qube-features.c: a qube's features and tags (see qube-features.h). */
#include "qube-features.h"

#include "lookup.h"
#include "qubes-error.h"

#include <string.h>

static int feature_index(QubesDomain *dom, const char *name)
{
    for (guint i = 0; i + 1 < dom->features->len; i += 2) {
        if (strcmp(dom->features->pdata[i], name) == 0)
            return (int)i;
    }
    return -1;
}

const char *qubes_domain_feature_get(QubesDomain *dom, const char *name)
{
    int i = feature_index(dom, name);
    return i < 0 ? NULL : dom->features->pdata[i + 1];
}

static GPtrArray *fire(QubesEmitter *em, const char *prefix, const char *name,
                       const char *const *kwargs, GError **error)
{
    g_autofree char *event = g_strconcat(prefix, name, NULL);
    return qubes_emitter_fire(em, event, kwargs, error);
}

gboolean qubes_domain_feature_set(QubesDomain *dom, const char *name,
                                  const char *value, GError **error)
{
    const char *old = qubes_domain_feature_get(dom, name);
    g_autofree char *oldcopy = g_strdup(old);
    const char *kw[] = {
        "feature", name, "value", value, old ? "oldvalue" : NULL,
        oldcopy,   NULL};
    g_autoptr(GPtrArray) pre =
        fire(&dom->emitter, "domain-feature-pre-set:", name, kw, error);
    if (!pre)
        return FALSE;
    int i = feature_index(dom, name);
    if (i >= 0) {
        g_free(dom->features->pdata[i + 1]);
        dom->features->pdata[i + 1] = g_strdup(value);
    } else {
        g_ptr_array_add(dom->features, g_strdup(name));
        g_ptr_array_add(dom->features, g_strdup(value));
    }
    g_autoptr(GPtrArray) post =
        fire(&dom->emitter, "domain-feature-set:", name, kw, error);
    return post != NULL;
}

gboolean qubes_domain_feature_remove(QubesDomain *dom, const char *name,
                                     GError **error)
{
    int i = feature_index(dom, name);
    if (i < 0) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_FEATURE_NOT_FOUND,
                    "Feature not set for domain %s: %s", dom->name, name);
        return FALSE;
    }
    const char *kw[] = {"feature", name, NULL};
    g_autoptr(GPtrArray) pre =
        fire(&dom->emitter, "domain-feature-pre-delete:", name, kw, error);
    if (!pre)
        return FALSE;
    i = feature_index(dom, name);
    if (i >= 0)
        g_ptr_array_remove_range(dom->features, i, 2);
    g_autoptr(GPtrArray) post =
        fire(&dom->emitter, "domain-feature-delete:", name, kw, error);
    return post != NULL;
}

const char *qubes_domain_feature_check(QubesDomain *dom, const char *name,
                                       gboolean template, gboolean netvm,
                                       gboolean adminvm, GError **error)
{
    const char *v = qubes_domain_feature_get(dom, name);
    if (v)
        return v;
    if (template) {
        /* Along the chain of templates (a DispVM's AppVM, its template). */
        QubesDomain *cur = qubes_domain_get_template(dom);
        for (int hops = 0; cur && hops < 8; hops++) {
            if ((v = qubes_domain_feature_get(cur, name)))
                return v;
            cur = qubes_domain_get_template(cur);
        }
    }
    if (netvm) {
        /* Along the netvm chain, bounded: a loop (which the app refuses,
         * but a hand-written qubes.xml may hold until it is repaired)
         * cannot trap it. */
        QubesDomain *cur = qubes_domain_get_netvm(dom);
        for (guint hops = 0; cur && hops < dom->app->domains->len; hops++) {
            if ((v = qubes_domain_feature_get(cur, name)))
                return v;
            cur = qubes_domain_get_netvm(cur);
        }
    }
    if (adminvm) {
        QubesDomain *dom0 = qubes_app_get_domain_by_qid(dom->app, 0);
        if (dom0 && dom0 != dom && (v = qubes_domain_feature_get(dom0, name)))
            return v;
    }
    g_set_error(error, QUBES_ERROR, QUBES_ERROR_FEATURE_NOT_FOUND,
                "Feature not set for domain %s: %s", dom->name, name);
    return NULL;
}

gboolean qubes_tag_is_valid(const char *untrusted_tag)
{
    if (!*untrusted_tag)
        return FALSE;
    for (const char *p = untrusted_tag; *p; p++) {
        if (!g_ascii_isalnum(*p) && *p != '_' && *p != '-')
            return FALSE;
    }
    return TRUE;
}

gboolean qubes_domain_tag_add(QubesDomain *dom, const char *tag, GError **error)
{
    if (!qubes_tag_is_valid(tag)) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                    "Invalid character in tag");
        return FALSE;
    }
    if (g_hash_table_contains(dom->tags, tag))
        return TRUE;
    g_hash_table_add(dom->tags, g_strdup(tag));
    const char *kw[] = {"tag", tag, NULL};
    g_autoptr(GPtrArray) post =
        fire(&dom->emitter, "domain-tag-add:", tag, kw, error);
    return post != NULL;
}

gboolean qubes_domain_tag_remove(QubesDomain *dom, const char *tag,
                                 GError **error)
{
    if (!g_hash_table_remove(dom->tags, tag)) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_TAG_NOT_FOUND,
                    "Tag not set for domain %s: %s", dom->name, tag);
        return FALSE;
    }
    const char *kw[] = {"tag", tag, NULL};
    g_autoptr(GPtrArray) post =
        fire(&dom->emitter, "domain-tag-delete:", tag, kw, error);
    return post != NULL;
}

static gint str_cmp(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

GPtrArray *qubes_domain_tags(QubesDomain *dom)
{
    GPtrArray *out = g_ptr_array_new();
    GHashTableIter it;
    gpointer key;
    g_hash_table_iter_init(&it, dom->tags);
    while (g_hash_table_iter_next(&it, &key, NULL))
        g_ptr_array_add(out, key);
    g_ptr_array_sort(out, str_cmp);
    return out;
}
