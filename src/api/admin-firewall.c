/* admin-firewall.c: admin.vm.firewall.Get, Set and Reload: a qube's
 * firewall rules (firewall.xml in its folder; firewall.c). The file work
 * runs on a worker; firewall-changed is fired on the main thread. */
#include "api-util.h"

#include "firewall.h"
#include "qubes-error.h"

#include <string.h>

typedef struct {
    QubesDomain *dom;
    GPtrArray *rules;
} FwJob;

static void fw_job_free(FwJob *j)
{
    qubes_domain_unref(j->dom);
    if (j->rules)
        g_ptr_array_unref(j->rules);
    g_free(j);
}

static FwJob *fw_job(Call *call, GPtrArray *rules)
{
    FwJob *j = g_new0(FwJob, 1);
    j->dom = qubes_domain_ref(call->dest);
    j->rules = rules;
    return j;
}

static gboolean get_work(gpointer data, GError **error)
{
    FwJob *j = data;
    j->rules = qubes_domain_read_firewall(j->dom, error);
    return j->rules != NULL;
}

/* Each rule's API form on a line; expired ones are not shown. */
static char *get_done(Call *call, gboolean ok, GError **error, gpointer data)
{
    FwJob *j = data;
    if (!ok)
        return NULL;
    gint64 now = g_get_real_time() / G_USEC_PER_SEC;
    GString *out = g_string_new(NULL);
    for (guint i = 0; i < j->rules->len; i++) {
        g_autofree char *line = qubes_fw_rule_api(j->rules->pdata[i], now);
        if (line)
            g_string_append_printf(out, "%s\n", line);
    }
    return g_string_free(out, FALSE);
}

static char *firewall_get(Call *call, GError **error)
{
    call_run_worker(call, get_work, get_done, fw_job(call, NULL),
                    (GDestroyNotify)fw_job_free);
    return CALL_ASYNC;
}

static gboolean set_work(gpointer data, GError **error)
{
    FwJob *j = data;
    return qubes_domain_write_firewall(j->dom, j->rules, error);
}

static char *set_done(Call *call, gboolean ok, GError **error, gpointer data)
{
    FwJob *j = data;
    if (!ok)
        return NULL;
    /* Firewall.save(): firewall-changed, the timer of the next expiry */
    qubes_domain_firewall_saved(j->dom, j->rules);
    return g_strdup("");
}

/* The payload's lines as Python's str.splitlines() cuts ASCII text. */
static GPtrArray *split_lines(const char *text, gsize len)
{
    GPtrArray *lines = g_ptr_array_new_with_free_func(g_free);
    gsize start = 0;
    for (gsize i = 0; i < len; i++) {
        char c = text[i];
        if (c != '\n' && c != '\r' && c != '\v' && c != '\f' && c != 0x1c &&
            c != 0x1d && c != 0x1e)
            continue;
        g_ptr_array_add(lines, g_strndup(text + start, i - start));
        if (c == '\r' && i + 1 < len && text[i + 1] == '\n')
            i++;
        start = i + 1;
    }
    if (start < len)
        g_ptr_array_add(lines, g_strndup(text + start, len - start));
    return lines;
}

static char *firewall_set(Call *call, GError **error)
{
    gsize len = 0;
    const char *untrusted = api_payload(call, &len);
    for (gsize i = 0; i < len; i++)
        if ((guchar)untrusted[i] >= 0x80 || !untrusted[i]) {
            g_set_error(error, QUBES_ERROR, QUBES_ERROR_PROTOCOL,
                        "'ascii' codec can't decode byte 0x%02x in position "
                        "%zu: ordinal not in range(128)",
                        (guchar)untrusted[i], i);
            return NULL;
        }
    g_autoptr(GPtrArray) lines = split_lines(untrusted ? untrusted : "", len);
    GPtrArray *rules =
        g_ptr_array_new_with_free_func((GDestroyNotify)qubes_fw_rule_free);
    for (guint i = 0; i < lines->len; i++) {
        QubesFwRule *r = qubes_fw_rule_parse(lines->pdata[i], error);
        if (!r) {
            g_ptr_array_unref(rules);
            return NULL;
        }
        g_ptr_array_add(rules, r);
    }
    call_run_worker(call, set_work, set_done, fw_job(call, rules),
                    (GDestroyNotify)fw_job_free);
    return CALL_ASYNC;
}

static char *firewall_reload(Call *call, GError **error)
{
    qubes_domain_fire_firewall_changed(call->dest);
    return g_strdup("");
}

const Method api_firewall_methods[] = {
    {"admin.vm.firewall.Get", M_NO_PAYLOAD | M_NO_ARG | M_NOT_DOM0,
     firewall_get},
    {"admin.vm.firewall.Set", M_NO_ARG | M_NOT_DOM0 | M_PAYLOAD, firewall_set},
    {"admin.vm.firewall.Reload", M_NO_PAYLOAD | M_NO_ARG | M_NOT_DOM0,
     firewall_reload},
    {NULL},
};
