/* qvm-clone: copy a qube as the Qubes client's clone_vm does: its
 * class, template, label, properties, tags, features, notes, firewall,
 * the data of every volume saved on stop (through admin.vm.volume.
 * CloneFrom and CloneTo: reflinks where the pool can), then its device
 * assignments. A failure removes the new qube.
 *
 *   qvm-clone [-P POOL] [--class CLASS] SOURCE NEWNAME
 */
#include "devices.h"
#include "tool.h"

#include <stdio.h>
#include <string.h>

/* Properties never copied (identity and computed ones). */
static const char *const skip[] = {"name",     "qid",        "uuid", "klass",
                                   "icon",     "start_time", "xid",  "label",
                                   "template", "updateable", NULL};

/* The rules, read from the source and set whole on the copy. */
static gboolean clone_firewall(const char *src, const char *dst, GError **error)
{
    g_autofree char *rules =
        qa_call("admin.vm.firewall.Get", src, NULL, NULL, error);
    g_autofree char *done =
        rules ? qa_call("admin.vm.firewall.Set", dst, NULL, rules, error)
              : NULL;
    return done != NULL;
}

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
    g_autofree char *enc = qubes_dev_encode_id(a->dev.device_id);
    g_autofree char *arg =
        g_strdup_printf("%s+%s+%s", a->dev.backend, a->dev.port_id, enc);
    g_autofree char *m = g_strdup_printf("admin.vm.device.%s.Assign", cls);
    g_autofree char *done = qa_call(m, dst, arg, payload, error);
    return done != NULL;
}

/* Every class's assignments (required, auto-attach, ask-to-attach);
 * attachments by hand are not the qube's configuration. */
static gboolean clone_devices(const char *src, const char *dst, GError **error)
{
    g_autofree char *classes =
        qa_call("admin.deviceclass.List", "dom0", NULL, NULL, error);
    if (!classes)
        return FALSE;
    g_auto(GStrv) cls = g_strsplit(classes, "\n", -1);
    for (char **c = cls; *c; c++) {
        if (!**c)
            continue;
        g_autofree char *m = g_strdup_printf("admin.vm.device.%s.Assigned", *c);
        g_autofree char *list = qa_call(m, src, NULL, NULL, error);
        if (!list)
            return FALSE;
        g_auto(GStrv) lines = g_strsplit(list, "\n", -1);
        for (char **l = lines; *l; l++)
            if (**l && !clone_assignment(*c, *l, dst, error))
                return FALSE;
    }
    return TRUE;
}

/* Says why, removes the half-made copy, and gives the tool's status. */
static int undo(const char *dst, const char *what, GError *err)
{
    fprintf(stderr, "qvm-clone: error: %s: %s\n", what, err->message);
    g_free(qa_call("admin.vm.Remove", dst, NULL, NULL, NULL));
    return 1;
}

int main(int argc, char **argv)
{
    g_autofree char *pool = NULL, *klass = NULL;
    GOptionEntry entries[] = {
        {"pool", 'P', 0, G_OPTION_ARG_STRING, &pool,
         "The pool of the new qube's volumes", "POOL"},
        {"class", 'C', 0, G_OPTION_ARG_STRING, &klass,
         "The class of the new qube (default: the source's)", "CLASS"},
        {NULL},
    };
    tool_parse(&argc, &argv, entries, "SOURCE NEWNAME", "Clone a qube.", NULL);
    if (argc != 3) {
        fprintf(stderr, "qvm-clone: error: SOURCE and NEWNAME are required\n");
        return 2;
    }
    const char *src = argv[1], *dst = argv[2];
    g_autoptr(GError) err = NULL;
    g_autofree char *list = qa_call("admin.vm.List", src, NULL, NULL, &err);
    if (!list)
        return qa_fail("qvm-clone", err);
    g_autoptr(GHashTable) info = qa_parse_kv(list, " \n");
    if (!klass)
        klass = g_strdup(g_hash_table_lookup(info, "class"));
    g_autofree char *label_ans =
        qa_call("admin.vm.property.Get", src, "label", NULL, &err);
    if (!label_ans)
        return qa_fail("qvm-clone", err);
    g_autofree char *label = tool_prop_value(label_ans, NULL);
    g_autofree char *tpl_ans =
        qa_call("admin.vm.property.Get", src, "template", NULL, NULL);
    g_autofree char *tpl = tpl_ans ? tool_prop_value(tpl_ans, NULL) : NULL;
    g_autofree char *payload =
        g_strdup_printf("name=%s label=%s%s%s", dst, label,
                        pool ? " pool=" : "", pool ? pool : "");
    g_autofree char *method = g_strdup_printf(
        "admin.vm.%s.%s", pool ? "CreateInPool" : "Create", klass);
    g_autofree char *r =
        qa_call(method, "dom0", tpl && *tpl ? tpl : NULL, payload, &err);
    if (!r)
        return qa_fail("qvm-clone", err);

    /* Properties set on the source (not defaults). */
    g_autoptr(GPtrArray) props =
        tool_get_all("admin.vm.property.GetAll", src, &err);
    if (!props)
        return qa_fail("qvm-clone", err);
    for (guint i = 0; i < props->len; i++) {
        ToolProp *p = props->pdata[i];
        if (p->is_default || g_strv_contains(skip, p->name))
            continue;
        g_autoptr(GError) e = NULL;
        g_autofree char *s =
            qa_call("admin.vm.property.Set", dst, p->name, p->value, &e);
        if (!s)
            fprintf(stderr, "qvm-clone: warning: property %s not copied: %s\n",
                    p->name, e->message);
    }
    g_autofree char *features =
        qa_call("admin.vm.feature.List", src, NULL, NULL, NULL);
    g_auto(GStrv) fnames = g_strsplit(features ? features : "", "\n", -1);
    for (char **f = fnames; *f && **f; f++) {
        /* the source's own preloaded disposables, which are not the
         * copy's (qubesd refuses the list there) */
        if (strcmp(*f, "preload-dispvm") == 0)
            continue;
        g_autofree char *v =
            qa_call("admin.vm.feature.Get", src, *f, NULL, NULL);
        g_autofree char *s =
            v ? qa_call("admin.vm.feature.Set", dst, *f, v, NULL) : NULL;
    }
    g_autofree char *tags = qa_call("admin.vm.tag.List", src, NULL, NULL, NULL);
    g_auto(GStrv) tnames = g_strsplit(tags ? tags : "", "\n", -1);
    for (char **t = tnames; *t && **t; t++) {
        if (g_str_has_prefix(*t, "created-by-"))
            continue;
        g_autofree char *s = qa_call("admin.vm.tag.Set", dst, *t, NULL, NULL);
    }
    /* The notes, as the Qubes client's clone_vm copies them. */
    g_autofree char *notes =
        qa_call("admin.vm.notes.Get", src, NULL, NULL, &err);
    if (!notes) {
        g_free(qa_call("admin.vm.Remove", dst, NULL, NULL, NULL));
        return qa_fail("qvm-clone", err);
    }
    if (*notes) {
        g_autofree char *s =
            qa_call("admin.vm.notes.Set", dst, NULL, notes, &err);
        if (!s) {
            g_free(qa_call("admin.vm.Remove", dst, NULL, NULL, NULL));
            return qa_fail("qvm-clone", err);
        }
    }
    if (!clone_firewall(src, dst, &err))
        return undo(dst, "firewall", err);
    /* The data: every volume the source saves on stop. */
    g_autofree char *vols =
        qa_call("admin.vm.volume.List", src, NULL, NULL, &err);
    if (!vols)
        return qa_fail("qvm-clone", err);
    g_auto(GStrv) vnames = g_strsplit(vols, "\n", -1);
    for (char **v = vnames; *v && **v; v++) {
        g_autofree char *vi =
            qa_call("admin.vm.volume.Info", src, *v, NULL, &err);
        if (!vi)
            return qa_fail("qvm-clone", err);
        g_autoptr(GHashTable) kv = qa_parse_kv(vi, "\n");
        if (g_strcmp0(g_hash_table_lookup(kv, "save_on_stop"), "True") != 0)
            continue;
        g_autofree char *token =
            qa_call("admin.vm.volume.CloneFrom", src, *v, NULL, &err);
        g_autofree char *done =
            token ? qa_call("admin.vm.volume.CloneTo", dst, *v, token, &err)
                  : NULL;
        if (!done) {
            g_autofree char *what = g_strdup_printf("volume %s", *v);
            return undo(dst, what, err);
        }
    }
    if (!clone_devices(src, dst, &err))
        return undo(dst, "device assignments", err);
    return 0;
}
