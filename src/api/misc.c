/* misc.c: the misc socket's methods (qubes/api/misc.py), what a qube
 * reports about itself through qrexec services (the source is the qube,
 * the destination dom0):
 *
 *   qubes.FeaturesRequest  the qube's QubesDB /features-request/ entries
 *                          (qube-db.h), each value of
 *                          [A-Za-z0-9-.,_= ] only, or nothing is taken;
 *                          then features-request.h handles them
 *   qubes.NotifyTools      the legacy form (Qubes Windows Tools): the
 *                          qube's /qubes-tools/ qrexec, gui, gui-emulated,
 *                          default-user and os, of [A-Za-z0-9] only
 *   qubes.NotifyUpdates    payload: a count of updates (digits, blanks
 *                          around); an updateable qube records its own
 *                          updates-available, last-updates-check (and
 *                          last-update when updates went); a template-based
 *                          one hints its nearest updateable template of
 *                          new updates, unless that template runs (it
 *                          reports itself) or the qube's volumes are
 *                          outdated (its template was already updated)
 *
 * Every check happens before anything changes; a refusal is a
 * ProtocolError with master's reason. Where master fails on a value that
 * is not ASCII with no answer at all (an unhandled UnicodeDecodeError),
 * ours answers the same ProtocolError as any value outside the safe set.
 * A change is answered once qubes.xml holds it. */
#include "api-util.h"
#include "features-request.h"
#include "qube-db.h"

#include "qubes-error.h"

#include <string.h>

#define FEATURES_SAFE                                                          \
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.,_= "
#define TOOLS_SAFE                                                             \
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

/* @untrusted (@len bytes) is of @safe's characters only. */
static gboolean in_safe_set(const char *untrusted, gsize len, const char *safe)
{
    for (gsize i = 0; i < len; i++)
        if (!untrusted[i] || !strchr(safe, untrusted[i]))
            return FALSE;
    return TRUE;
}

static gboolean outside_safe_set(const char *safe, GError **error)
{
    g_autofree char *why = g_strconcat("Value outside safe set: ", safe, NULL);
    return api_enforce(FALSE, why, error);
}

/* The entries of @all (name -> GBytes) named in @only (NULL: all), each
 * checked against @safe: a new table of name -> value (borrowed from
 * @all), or NULL with master's ProtocolError. */
static GHashTable *checked(GHashTable *all, const char *const *only,
                           const char *safe, GError **error)
{
    g_autoptr(GHashTable) out = g_hash_table_new(g_str_hash, g_str_equal);
    GHashTableIter it;
    gpointer name, value;
    g_hash_table_iter_init(&it, all);
    while (g_hash_table_iter_next(&it, &name, &value)) {
        if (only && !g_strv_contains(only, name))
            continue;
        gsize len;
        const char *v = g_bytes_get_data(value, &len);
        if (!in_safe_set(v, len, safe)) {
            outside_safe_set(safe, error);
            return NULL;
        }
        g_hash_table_insert(out, name, (char *)v); /* NUL-terminated */
    }
    return g_steal_pointer(&out);
}

/* The request's values checked, then handled and saved. */
static char *request(Call *call, GHashTable *untrusted, GError **error)
{
    if (!qubes_features_request(call->src, untrusted, error))
        return NULL;
    return api_saved(call, error);
}

static char *features_request(Call *call, GError **error)
{
    g_autoptr(GHashTable) all = qubes_qdb_list(
        call->state->qubesdb_dir, call->src->name, "features-request", error);
    if (!all)
        return NULL;
    g_autoptr(GHashTable) untrusted = checked(all, NULL, FEATURES_SAFE, error);
    return untrusted ? request(call, untrusted, error) : NULL;
}

static char *notify_tools(Call *call, GError **error)
{
    static const char *const expected[] = {
        "qrexec", "gui", "gui-emulated", "default-user", "os", NULL};
    g_autoptr(GHashTable) all = qubes_qdb_list(
        call->state->qubesdb_dir, call->src->name, "qubes-tools", error);
    if (!all)
        return NULL;
    /* master: an empty entry is none */
    GHashTableIter it;
    gpointer value;
    g_hash_table_iter_init(&it, all);
    while (g_hash_table_iter_next(&it, NULL, &value))
        if (g_bytes_get_size(value) == 0)
            g_hash_table_iter_remove(&it);
    g_autoptr(GHashTable) untrusted = checked(all, expected, TOOLS_SAFE, error);
    return untrusted ? request(call, untrusted, error) : NULL;
}

static gboolean has_outdated_volume(QubesDomain *d)
{
    for (guint i = 0; i < d->volumes->len; i++)
        if (qubes_volume_is_outdated(
                ((QubesDomainVolume *)d->volumes->pdata[i])->vol))
            return TRUE;
    return FALSE;
}

/* _feature_of_update: the time is local, as master's datetime.today(). */
static gboolean note_updates(QubesDomain *q, gboolean available, GError **error)
{
    g_autoptr(GDateTime) now = g_date_time_new_now_local();
    g_autofree char *when = g_date_time_format(now, "%Y-%m-%d %H:%M:%S");
    const char *old = qubes_domain_feature_get(q, "updates-available");
    if (old && *old && !available &&
        !qubes_domain_feature_set(q, "last-update", when, error))
        return FALSE;
    return qubes_domain_feature_set(q, "updates-available",
                                    available ? "1" : "", error) &&
           qubes_domain_feature_set(q, "last-updates-check", when, error);
}

static char *notify_updates(Call *call, GError **error)
{
    gsize len;
    const char *p = api_payload(call, &len);
    /* bytes.strip(): ASCII blanks at both ends */
    static const char blanks[] = " \t\n\r\v\f";
    while (len && memchr(blanks, p[len - 1], sizeof blanks - 1))
        len--;
    while (len && memchr(blanks, *p, sizeof blanks - 1)) {
        p++;
        len--;
    }
    gboolean digits = len > 0;
    for (gsize i = 0; i < len; i++)
        digits = digits && g_ascii_isdigit(p[i]);
    if (!api_enforce(digits, "Update count is not a digit", error))
        return NULL;
    gboolean some = FALSE; /* only whether it is 0 matters */
    for (gsize i = 0; i < len; i++)
        some = some || p[i] != '0';

    QubesDomain *src = call->src;
    QubesDomain *tpl = qubes_domain_get_template(src);
    while (tpl && !qubes_domain_flag(tpl, "updateable"))
        tpl = qubes_domain_get_template(tpl);
    if (qubes_domain_flag(src, "updateable")) {
        if (!note_updates(src, some, error))
            return NULL;
        return api_saved(call, error);
    }
    /* a hint for the template: only of new updates, only when it does
     * not run (then it reports itself), only when this qube is not
     * outdated (the updates were probably installed already) */
    if (!tpl || qubes_domain_is_running(tpl) || !some ||
        has_outdated_volume(src))
        return g_strdup("");
    if (!note_updates(tpl, TRUE, error))
        return NULL;
    return api_saved(call, error);
}

#define NP M_NO_PAYLOAD
#define NA M_NO_ARG
#define D0 M_DOM0
#define MI M_MISC

const Method api_misc_methods[] = {
    {"qubes.FeaturesRequest", MI | NP | NA | D0, features_request},
    {"qubes.NotifyTools", MI | NP | NA | D0, notify_tools},
    {"qubes.NotifyUpdates", MI | M_PAYLOAD | NA | D0, notify_updates},
    {NULL},
};
