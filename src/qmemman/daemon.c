/* daemon.c: qmemmand's state and decisions (daemon.h), apart from its
 * sockets and threads so that the tests drive it over a fake hypervisor.
 */
#include "daemon.h"

#include <json-glib/json-glib.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    gint64 used;   /* the last use reported as a number (-1: none) */
    char *meminfo; /* or as text (NULL: none) */
} Last;

static void last_free(gpointer p)
{
    g_free(((Last *)p)->meminfo);
    g_free(p);
}

struct _QmDaemon {
    GMutex lock; /* everything below */
    GCond released;
    gboolean reserved;     /* a client holds the reservation */
    gboolean refresh_list; /* a reservation ended: re-list first */
    QmSystem *sys;
    QmHv *hv;
    GHashTable *domains; /* id -> Last */
    char *avail_path;
    /* for the status: the last decision's cause and time, the last
     * request and its answer */
    guint decisions_seen;
    char *decision_why;
    gint64 decision_time;
    char *request;
    char *request_answer;
    gint64 request_time;
    QmConfig cfg;
};

typedef QmDaemon Daemon;

/* After a call that may have balanced: remember why, for qvm-memory. */
static void note_cause(Daemon *d, const char *why)
{
    guint n = qm_system_decision_count(d->sys);
    if (n == d->decisions_seen)
        return;
    d->decisions_seen = n;
    g_free(d->decision_why);
    d->decision_why = g_strdup(why);
    d->decision_time = g_get_real_time();
}

/* master's qmemman_avail_mem_file: what is left to give after each
 * balance, for those that decide whether to start more. The file lives
 * in /var/run (a tmpfs): it is not kept over a crash and need not be
 * fsynced; the rename makes a reader see the old number or the new one,
 * never a part. */
static void write_available(gpointer data, gint64 avail)
{
    Daemon *d = data;
    if (!d->avail_path)
        return;
    char text[32];
    g_snprintf(text, sizeof text, "%" G_GINT64_FORMAT, avail);
    g_autoptr(GError) err = NULL;
    /* CONSISTENT: a temporary beside it, renamed over it */
    if (!g_file_set_contents_full(d->avail_path, text, -1,
                                  G_FILE_SET_CONTENTS_CONSISTENT, 0644, &err))
        g_warning("%s", err->message);
}

/* ---- watching the domains ---- */

/* The domains that appeared or went, then their reported use; under the
 * lock. */
static void watch_round(Daemon *d)
{
    g_autoptr(GPtrArray) seen = d->hv->list(d->hv);
    if (!seen)
        return;
    g_autoptr(GHashTable) there = g_hash_table_new(g_str_hash, g_str_equal);
    g_autoptr(GString) why = g_string_new("domain list changed:");
    gboolean changed = FALSE;
    for (guint i = 0; i < seen->len; i++) {
        QmSeen *s = seen->pdata[i];
        g_hash_table_add(there, s->id);
        gboolean reported = s->used >= 0 || s->untrusted_meminfo;
        if (g_hash_table_contains(d->domains, s->id) ||
            (d->hv->add_when_reported && !reported))
            continue;
        g_message("domain %s appeared", s->id);
        Last *l = g_new0(Last, 1);
        l->used = -1;
        g_hash_table_insert(d->domains, g_strdup(s->id), l);
        /* On libvirt its balloon's target is not known (libvirt reports
         * the size it reached): none yet, as a Xen domain without
         * memory/target; what it holds is its mem_actual until qmemmand
         * sets one. */
        qm_system_add(d->sys, s->id, s->target);
        g_string_append_printf(why, " +%s", s->id);
        changed = TRUE;
    }
    GHashTableIter it;
    gpointer k;
    g_hash_table_iter_init(&it, d->domains);
    while (g_hash_table_iter_next(&it, &k, NULL))
        if (!g_hash_table_contains(there, k)) {
            g_message("domain %s went", (char *)k);
            g_string_append_printf(why, " -%s", (char *)k);
            qm_system_remove(d->sys, k);
            g_hash_table_iter_remove(&it);
            changed = TRUE;
        }
    if (changed) {
        qm_system_balance(d->sys);
        note_cause(d, why->str);
    }
    /* meminfo: a change of what a domain uses */
    for (guint i = 0; i < seen->len; i++) {
        QmSeen *s = seen->pdata[i];
        Last *l = g_hash_table_lookup(d->domains, s->id);
        if (!l)
            continue;
        g_autofree char *cause = NULL;
        if (s->untrusted_meminfo) {
            if (g_strcmp0(s->untrusted_meminfo, l->meminfo) == 0)
                continue;
            g_free(l->meminfo);
            l->meminfo = g_strdup(s->untrusted_meminfo);
            qm_system_meminfo(d->sys, s->id, s->untrusted_meminfo);
        } else {
            if (s->used < 0 || s->used == l->used)
                continue;
            l->used = s->used;
            qm_system_used(d->sys, s->id, s->used);
        }
        cause = g_strdup_printf("dom %s reported its use", s->id);
        note_cause(d, cause);
    }
}

/* Python's int() of an ASCII word: an optional sign, then digits, single
 * underscores allowed between them; within 64 bits here. */
static gboolean py_int(const char *untrusted, gint64 *out)
{
    const char *p = untrusted;
    gboolean neg = *p == '-';
    if (*p == '-' || *p == '+')
        p++;
    if (!g_ascii_isdigit(*p))
        return FALSE;
    guint64 v = 0;
    for (; *p; p++) {
        if (*p == '_' && g_ascii_isdigit(p[1]) && g_ascii_isdigit(p[-1]))
            continue;
        if (!g_ascii_isdigit(*p) || v > (G_MAXINT64 - 9) / 10)
            return FALSE;
        v = v * 10 + (guint64)(*p - '0');
    }
    *out = neg ? -(gint64)v : (gint64)v;
    return TRUE;
}

/* master's per-domain form, "ID:BYTES ..." (split on whitespace, each
 * pair on its one colon): NULL when a pair is malformed (the reference
 * raises and drops the connection: INVALID_ARG here), else the answer. */
static const char *balloon_dom(Daemon *d, const char *untrusted)
{
    g_auto(GStrv) words = g_strsplit_set(untrusted, " \t\n\r\v\f", -1);
    g_autoptr(GPtrArray) ids = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GArray) mems = g_array_new(FALSE, FALSE, sizeof(gint64));
    gboolean unknown = FALSE;
    for (char **w = words; *w; w++) {
        if (!**w)
            continue;
        g_auto(GStrv) kv = g_strsplit(*w, ":", -1);
        gint64 mem;
        if (g_strv_length(kv) != 2 || !py_int(kv[1], &mem))
            return NULL;
        char *id = d->hv->resolve(d->hv, kv[0]);
        if (!id) {
            g_warning("no domain '%s' to balloon", kv[0]);
            unknown = TRUE;
            continue;
        }
        g_ptr_array_add(ids, id);
        g_array_append_val(mems, mem);
    }
    /* the reference raises on an unknown domain: refused (FAIL) here */
    if (unknown)
        return "FAIL\n";
    return qm_system_balloon_dom(d->sys, (const char *const *)ids->pdata,
                                 (const gint64 *)(void *)mems->data, ids->len)
               ? "OK\n"
               : "FAIL\n";
}

/* A client's request: waits for the reservation, takes it, answers. */
const char *qm_daemon_request(QmDaemon *d, const char *untrusted, gsize len)
{
    /* the reference decodes it as ASCII (anything else raises) and strips
     * the whitespace around it */
    g_autofree char *buf = g_strndup(untrusted, len);
    gboolean ascii = strlen(buf) == len;
    for (gsize i = 0; i < len; i++)
        ascii &= (guchar)untrusted[i] < 0x80;
    g_strstrip(buf);
    g_mutex_lock(&d->lock);
    while (d->reserved)
        g_cond_wait(&d->released, &d->lock);
    d->reserved = TRUE;
    if (d->refresh_list) {
        watch_round(d);
        d->refresh_list = FALSE;
    }
    gboolean digits = ascii && *buf;
    for (const char *p = buf; *p; p++)
        digits &= g_ascii_isdigit(*p);
    const char *answer = "INVALID_ARG\n";
    g_autofree char *first = g_strdup(buf);
    first[strcspn(first, " \t\n\r\v\f")] = '\0';
    if (digits) {
        gint64 want = 0;
        answer = "FAIL\n";
        if (g_ascii_string_to_signed(buf, 10, 0, G_MAXINT64, &want, NULL) &&
            qm_system_balloon(d->sys, want))
            answer = "OK\n";
    } else if (ascii && strchr(first, ':')) {
        answer = balloon_dom(d, buf);
        if (!answer)
            answer = "INVALID_ARG\n";
    }
    char *shown = g_strescape(buf, NULL);
    g_free(d->request);
    d->request = shown;
    g_free(d->request_answer);
    d->request_answer = g_strndup(answer, strlen(answer) - 1);
    d->request_time = g_get_real_time();
    g_message("request %s: %s", d->request, d->request_answer);
    g_mutex_unlock(&d->lock);
    return answer;
}

void qm_daemon_release(QmDaemon *d)
{
    g_mutex_lock(&d->lock);
    /* logged before the next client can be served: the log keeps the
     * order of what happened */
    g_message("client disconnected, resuming membalance");
    d->reserved = FALSE;
    d->refresh_list = TRUE;
    g_cond_broadcast(&d->released);
    g_mutex_unlock(&d->lock);
}

void qm_daemon_watch(QmDaemon *d)
{
    g_mutex_lock(&d->lock);
    if (!d->reserved)
        watch_round(d);
    g_mutex_unlock(&d->lock);
}

/* ---- the state ---- */

static void member_int(JsonBuilder *b, const char *name, gint64 v)
{
    json_builder_set_member_name(b, name);
    json_builder_add_int_value(b, v);
}

static void member_str(JsonBuilder *b, const char *name, const char *v)
{
    json_builder_set_member_name(b, name);
    if (v)
        json_builder_add_string_value(b, v);
    else
        json_builder_add_null_value(b);
}

static void member_bool(JsonBuilder *b, const char *name, gboolean v)
{
    json_builder_set_member_name(b, name);
    json_builder_add_boolean_value(b, v);
}

static void member_time(JsonBuilder *b, const char *name, gint64 usec)
{
    g_autoptr(GDateTime) t =
        usec ? g_date_time_new_from_unix_utc(usec / G_USEC_PER_SEC) : NULL;
    g_autofree char *text = t ? g_date_time_format_iso8601(t) : NULL;
    member_str(b, name, text);
}

/* The live state, under the lock: @as_case gives a qmemman-sim case line
 * (domains not seen yet by the hypervisor take no part and are left
 * out), else what qvm-memory shows. */
static char *dump(Daemon *d, gboolean as_case)
{
    const QmConfig *cfg = &d->cfg;
    QmSystem *sys = d->sys;
    qm_system_refresh(sys); /* the figures as a balance would see them */
    guint n;
    QmDom *doms = qm_system_doms(sys, &n);
    gint64 free = d->hv->be.free_mem(d->hv->be.self);
    g_autoptr(JsonBuilder) b = json_builder_new();
    json_builder_begin_object(b);
    if (as_case) {
        g_autoptr(GDateTime) now = g_date_time_new_now_utc();
        g_autofree char *id =
            g_date_time_format(now, "qmemmand-%Y%m%dT%H%M%SZ");
        member_str(b, "id", id);
        /* free: our extension, the assignable free memory as it is (no
         * per-page overhead to take off); xen_free the same for readers
         * that do not know it */
        member_int(b, "xen_free", free);
        member_int(b, "free", free);
    } else {
        member_str(b, "hypervisor", d->hv->name);
        member_int(b, "free", free);
        member_int(b, "free_for_domains", free - qm_assigned_unused(doms, n));
        member_bool(b, "request_held", d->reserved);
    }
    member_int(b, "total_mem", d->hv->total_mem(d->hv));
    json_builder_set_member_name(b, "domains");
    json_builder_begin_array(b);
    for (guint i = 0; i < n; i++) {
        const QmDom *q = &doms[i];
        if (as_case && q->unseen)
            continue;
        json_builder_begin_object(b);
        member_str(b, "id", q->id);
        if (!q->unseen) {
            member_int(b, "mem_current", q->mem_current);
            member_int(b, "mem_actual", q->mem_actual);
            member_int(b, "mem_max", q->mem_max);
        }
        json_builder_set_member_name(b, "mem_used");
        if (q->has_used)
            json_builder_add_int_value(b, q->mem_used);
        else
            json_builder_add_null_value(b);
        member_int(b, "last_target", q->last_target);
        member_bool(b, "no_progress", q->no_progress);
        member_bool(b, "slow_memset_react", q->slow_memset_react);
        if (!as_case) {
            member_bool(b, "seen", !q->unseen);
            if (q->has_used && !q->unseen) {
                member_int(b, "pref", qm_pref_mem(cfg, q));
                member_int(b, "needed", qm_needed_mem(cfg, q));
            }
        }
        json_builder_end_object(b);
    }
    json_builder_end_array(b);
    if (as_case) {
        member_str(b, "op", "balance");
    } else {
        json_builder_set_member_name(b, "last_decision");
        json_builder_begin_object(b);
        member_time(b, "time", d->decision_time);
        member_str(b, "mode", qm_system_last_mode(sys));
        member_str(b, "why", d->decision_why);
        member_str(b, "stats", qm_system_last_decision(sys));
        json_builder_end_object(b);
        json_builder_set_member_name(b, "last_request");
        json_builder_begin_object(b);
        member_time(b, "time", d->request_time);
        member_str(b, "request", d->request);
        member_str(b, "answer", d->request_answer);
        json_builder_end_object(b);
    }
    json_builder_end_object(b);
    g_autoptr(JsonGenerator) gen = json_generator_new();
    g_autoptr(JsonNode) root = json_builder_get_root(b);
    json_generator_set_root(gen, root);
    char *text = json_generator_to_data(gen, NULL);
    char *line = g_strconcat(text, "\n", NULL);
    g_free(text);
    return line;
}

char *qm_daemon_dump(QmDaemon *d, gboolean as_case)
{
    g_mutex_lock(&d->lock);
    char *text = dump(d, as_case);
    g_mutex_unlock(&d->lock);
    return text;
}

QmDaemon *qm_daemon_new(QmHv *hv, const QmConfig *cfg, const char *avail_path,
                        const char *inhibit_path)
{
    Daemon *d = g_new0(Daemon, 1);
    g_mutex_init(&d->lock);
    g_cond_init(&d->released);
    d->hv = hv;
    d->cfg = *cfg;
    d->avail_path = g_strdup(avail_path);
    d->domains =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, last_free);
    d->sys = qm_system_new(cfg, &hv->be);
    hv->sys = d->sys;
    if (inhibit_path)
        qm_system_set_inhibit_file(d->sys, inhibit_path);
    qm_system_on_balanced(d->sys, write_available, d);
    return d;
}

QmSystem *qm_daemon_system(QmDaemon *d)
{
    return d->sys;
}

void qm_daemon_free(QmDaemon *d)
{
    if (!d)
        return;
    qm_system_free(d->sys);
    g_hash_table_unref(d->domains);
    g_free(d->avail_path);
    g_free(d->decision_why);
    g_free(d->request);
    g_free(d->request_answer);
    g_mutex_clear(&d->lock);
    g_cond_clear(&d->released);
    g_free(d);
}
