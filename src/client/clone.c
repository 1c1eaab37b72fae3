/* clone.c: QubesBase.clone_vm() of the Qubes client (see clone.h).
 *
 * The order is the client's, so that what a failure leaves and says is
 * the same: the new qube; its settings (properties, tags, features,
 * notes, firewall, menus), each failure logged and, unless
 * ignore_errors, fatal; the volumes' data, always fatal; the device
 * assignments, fatal unless ignore_errors. A fatal failure after the
 * qube exists removes it. */
#include "clone.h"

#include "devices.h"
#include "qubes-args.h"
#include "qubesadmin.h"
#include "tool.h"

#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* One line of an Assigned answer ("BACKEND+PORT:ID key='value' ...")
 * assigned again, to @dst, with its mode and options. */
static gboolean clone_assignment(const char *cls, const char *line,
                                 const char *dst, GError **error)
{
    const char *sp = strchr(line, ' ');
    if (!sp) {
        g_set_error(error, QA_ERROR, QA_ERROR_PROTOCOL,
                    "Unexpected assignment of a %s device: %s", cls, line);
        return FALSE;
    }
    const char *text = sp + 1;
    g_autoptr(GPtrArray) props = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GPtrArray) opts = g_ptr_array_new_with_free_func(g_free);
    if (!qubes_dev_unpack(text, strlen(text), props, opts, error))
        return FALSE;
    const char *id = qubes_dev_pairs_get(props, "device_id");
    QubesVDev dev = {
        .backend = (char *)qubes_dev_pairs_get(props, "backend_domain"),
        .port_id = (char *)qubes_dev_pairs_get(props, "port_id"),
        .devclass = (char *)cls,
        .device_id = (char *)(id ? id : "*"),
    };
    g_autoptr(QubesDevAssignment) a =
        qubes_dev_assignment_deserialize(text, strlen(text), &dev, error);
    if (!a)
        return FALSE;
    g_free(a->frontend);
    a->frontend = g_strdup(dst);
    g_autofree char *payload = qubes_dev_assignment_serialize(a, error);
    if (!payload)
        return FALSE;
    g_autofree char *arg = qubes_dev_repr_for_qarg(
        a->dev.backend, a->dev.port_id, a->dev.device_id);
    g_autofree char *m = g_strdup_printf("admin.vm.device.%s.Assign", cls);
    g_autofree char *done = qa_call(m, dst, arg, payload, error);
    return done != NULL;
}

typedef struct {
    ArgsNamespace *ns;
    gboolean ignore_errors;
    const char *const *ignore_volumes;
    const char *src, *dst;
} Clone;

/* A step of the settings failed: logged by @logger; TRUE when the
 * clone goes on (--ignore-errors), else FALSE with the cause kept in
 * @keep for the final error. */
static gboolean step_failed(Clone *c, const char *logger, GError **keep,
                            GError *err, const char *what)
{
    qubes_args_log(c->ns, logger, TRUE, "%s: %s", what,
                   tool_error_message(err));
    if (c->ignore_errors) {
        g_error_free(err);
        return TRUE;
    }
    g_propagate_error(keep, err);
    return FALSE;
}

/* The source's properties that are not default, set on the copy. */
static gboolean copy_properties(Clone *c, GError **error)
{
    static const char *const skip[] = {
        "name", "qid", "template", "label", "uuid", "installed_by_rpm", NULL};
    GError *err = NULL;
    g_autoptr(GPtrArray) props =
        tool_get_all("admin.vm.property.GetAll", c->src, &err);
    if (!props)
        return step_failed(c, c->dst, error, err, "Failed to read properties");
    for (guint i = 0; i < props->len; i++) {
        const ToolProp *p = props->pdata[i];
        if (p->is_default || g_strv_contains(skip, p->name))
            continue;
        g_free(
            qa_call("admin.vm.property.Set", c->dst, p->name, p->value, &err));
        if (err) {
            g_autofree char *what =
                g_strdup_printf("Failed to set %s property", p->name);
            if (!step_failed(c, c->dst, error, err, what))
                return FALSE;
            err = NULL;
        }
    }
    return TRUE;
}

static gboolean copy_tags(Clone *c, GError **error)
{
    GError *err = NULL;
    g_autofree char *tags =
        qa_call("admin.vm.tag.List", c->src, NULL, NULL, &err);
    if (!tags)
        return step_failed(c, c->dst, error, err, "Failed to read tags");
    g_auto(GStrv) names = g_strsplit(tags, "\n", -1);
    for (char **t = names; *t; t++) {
        if (!**t || g_str_has_prefix(*t, "created-by-"))
            continue;
        g_free(qa_call("admin.vm.tag.Set", c->dst, *t, NULL, &err));
        if (err) {
            g_autofree char *what = g_strdup_printf("Failed to add %s tag", *t);
            if (!step_failed(c, c->dst, error, err, what))
                return FALSE;
            err = NULL;
        }
    }
    return TRUE;
}

/* Features, less the source's own preloaded disposables (all the
 * preload-dispvm* but the maximum). */
static gboolean copy_features(Clone *c, GError **error)
{
    GError *err = NULL;
    g_autofree char *list =
        qa_call("admin.vm.feature.List", c->src, NULL, NULL, &err);
    if (!list)
        return step_failed(c, c->dst, error, err, "Failed to read features");
    g_auto(GStrv) names = g_strsplit(list, "\n", -1);
    for (char **f = names; *f; f++) {
        if (!**f || (g_str_has_prefix(*f, "preload-dispvm") &&
                     strcmp(*f, "preload-dispvm-max") != 0))
            continue;
        g_autofree char *v =
            qa_call("admin.vm.feature.Get", c->src, *f, NULL, &err);
        if (v)
            g_free(qa_call("admin.vm.feature.Set", c->dst, *f, v, &err));
        if (err) {
            g_autofree char *what =
                g_strdup_printf("Failed to set %s feature", *f);
            if (!step_failed(c, c->dst, error, err, what))
                return FALSE;
            err = NULL;
        }
    }
    return TRUE;
}

static gboolean copy_notes(Clone *c, GError **error)
{
    GError *err = NULL;
    g_autofree char *notes =
        qa_call("admin.vm.notes.Get", c->src, NULL, NULL, &err);
    if (notes && *notes)
        g_free(qa_call("admin.vm.notes.Set", c->dst, NULL, notes, &err));
    return !err ||
           step_failed(c, c->dst, error, err, "Failed to clone qube notes");
}

/* The rules, read from the source and set whole on the copy. */
static gboolean copy_firewall(Clone *c, GError **error)
{
    GError *err = NULL;
    g_autofree char *rules =
        qa_call("admin.vm.firewall.Get", c->src, NULL, NULL, &err);
    if (rules)
        g_free(qa_call("admin.vm.firewall.Set", c->dst, NULL, rules, &err));
    return !err || step_failed(c, "app", error, err, "Failed to set firewall");
}

/* The user qvm-appmenus runs as when we are root: the first member of
 * group qubes, as the client finds it (dom0 has no default_user). */
static char *menu_user(void)
{
    struct group *g = getgrnam("qubes");
    return g && g->gr_mem && g->gr_mem[0] ? g_strdup(g->gr_mem[0]) : NULL;
}

/* qvm-appmenus --init --update --source SRC DST (as the desktop's user
 * when we are root); FALSE when it fails, logged as the client logs it. */
static gboolean run_appmenus(Clone *c)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func(g_free);
    if (getuid() == 0) {
        char *user = menu_user();
        if (!user) {
            qubes_args_log(c->ns, "app", TRUE, "Failed to clone appmenus: %s",
                           "Failed to find local user account");
            return FALSE;
        }
        g_ptr_array_add(argv, g_strdup("runuser"));
        g_ptr_array_add(argv, g_strdup("-u"));
        g_ptr_array_add(argv, user);
        g_ptr_array_add(argv, g_strdup("--"));
    }
    const char *cmd[] = {"qvm-appmenus", "--init", "--update",
                         "--source",     c->src,   c->dst};
    for (size_t i = 0; i < G_N_ELEMENTS(cmd); i++)
        g_ptr_array_add(argv, g_strdup(cmd[i]));
    g_ptr_array_add(argv, NULL);
    g_autofree char *out = NULL;
    int status = 0;
    if (!g_spawn_sync(NULL, (char **)argv->pdata, NULL,
                      G_SPAWN_SEARCH_PATH | G_SPAWN_STDERR_TO_DEV_NULL, NULL,
                      NULL, &out, NULL, &status, NULL)) {
        qubes_args_log(c->ns, "app", TRUE,
                       "Failed to clone appmenus, qvm-appmenus missing");
        return FALSE;
    }
    if (!g_spawn_check_wait_status(status, NULL)) {
        qubes_args_log(c->ns, "app", TRUE, "Failed to clone appmenus: %s",
                       out ? out : "");
        return FALSE;
    }
    return TRUE;
}

/* The desktop menus, copied by qvm-appmenus when it is installed. */
static gboolean copy_menus(Clone *c, GError **error)
{
    g_autofree char *prog = g_find_program_in_path("qvm-appmenus");
    if (!prog || run_appmenus(c) || c->ignore_errors)
        return TRUE; /* none here (no desktop), copied, or ignored */
    g_set_error(error, QA_ERROR, QA_ERROR_PROTOCOL, "Failed to clone appmenus");
    return FALSE;
}

/* The data of every volume the copy saves on stop, by volume name. */
static gboolean copy_volumes(Clone *c, GError **error)
{
    g_autofree char *vols =
        qa_call("admin.vm.volume.List", c->dst, NULL, NULL, error);
    if (!vols)
        return FALSE;
    g_auto(GStrv) names = g_strsplit(vols, "\n", -1);
    g_autoptr(GPtrArray) sorted = g_ptr_array_new();
    for (char **v = names; *v; v++)
        if (**v)
            g_ptr_array_add(sorted, *v);
    g_ptr_array_sort(sorted, tool_str_cmp);
    for (guint i = 0; i < sorted->len; i++) {
        const char *v = sorted->pdata[i];
        g_autofree char *info =
            qa_call("admin.vm.volume.Info", c->dst, v, NULL, error);
        if (!info)
            return FALSE;
        g_autoptr(GHashTable) kv = qa_parse_kv(info, "\n");
        if (g_strcmp0(g_hash_table_lookup(kv, "save_on_stop"), "True") != 0 ||
            (c->ignore_volumes && g_strv_contains(c->ignore_volumes, v)))
            continue;
        qubes_args_log(c->ns, c->dst, FALSE, "Cloning %s volume", v);
        g_autofree char *token =
            qa_call("admin.vm.volume.CloneFrom", c->src, v, NULL, error);
        if (!token)
            return FALSE;
        g_autofree char *done =
            qa_call("admin.vm.volume.CloneTo", c->dst, v, token, error);
        if (!done)
            return FALSE;
    }
    return TRUE;
}

/* Every class's assignments (required, auto-attach, ask-to-attach);
 * attachments by hand are not the qube's configuration. */
static gboolean copy_devices(Clone *c, GError **error)
{
    g_autofree char *classes =
        qa_call("admin.deviceclass.List", "dom0", NULL, NULL, error);
    if (!classes)
        return FALSE;
    g_auto(GStrv) cls = g_strsplit(classes, "\n", -1);
    for (char **k = cls; *k; k++) {
        if (!**k)
            continue;
        g_autofree char *m = g_strdup_printf("admin.vm.device.%s.Assigned", *k);
        g_autofree char *list = qa_call(m, c->src, NULL, NULL, error);
        if (!list)
            return FALSE;
        g_auto(GStrv) lines = g_strsplit(list, "\n", -1);
        for (char **l = lines; *l; l++)
            if (**l && !clone_assignment(*k, *l, c->dst, error))
                return FALSE;
    }
    return TRUE;
}

gboolean qa_clone_vm(ArgsNamespace *ns, QaVm *src, const char *new_name,
                     const QaCloneOptions *o, GError **error)
{
    Clone c = {.ns = ns,
               .ignore_errors = o->ignore_errors,
               .ignore_volumes = o->ignore_volumes,
               .src = qa_vm_name(src),
               .dst = new_name};
    g_autoptr(GString) payload = g_string_new(NULL);
    g_string_printf(payload, "name=%s label=%s", c.dst,
                    qa_vm_prop_str(src, "label"));
    gboolean in_pool = FALSE;
    if (o->pool && *o->pool) {
        g_string_append_printf(payload, " pool=%s", o->pool);
        in_pool = TRUE;
    } else if (o->pools && g_hash_table_size(o->pools)) {
        GList *vols =
            g_list_sort(g_hash_table_get_keys(o->pools), (GCompareFunc)strcmp);
        for (GList *v = vols; v; v = v->next)
            g_string_append_printf(
                payload, " pool:%s=%s", (char *)v->data,
                (char *)g_hash_table_lookup(o->pools, v->data));
        g_list_free(vols);
        in_pool = TRUE;
    }
    g_autofree char *method =
        g_strdup_printf("admin.vm.%s.%s", in_pool ? "CreateInPool" : "Create",
                        o->cls ? o->cls : qa_vm_klass(src));
    g_autofree char *r = qa_call(
        method, "dom0", qa_vm_prop_str(src, "template"), payload->str, error);
    if (!r)
        return FALSE;
    if (!copy_properties(&c, error) || !copy_tags(&c, error) ||
        !copy_features(&c, error) || !copy_notes(&c, error) ||
        !copy_firewall(&c, error) || !copy_menus(&c, error) ||
        !copy_volumes(&c, error))
        goto undo;
    if (!copy_devices(&c, error)) {
        if (!c.ignore_errors)
            goto undo;
        g_clear_error(error);
    }
    return TRUE;
undo:
    g_free(qa_call("admin.vm.Remove", c.dst, NULL, NULL, NULL));
    return FALSE;
}
