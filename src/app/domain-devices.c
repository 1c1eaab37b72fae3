/* domain-devices.c: the devices assigned to a qube, and how qubes.xml
 * keeps them (domain-devices.h, devices.h).
 *
 * qubes.xml holds them as the reference writes them, one block per
 * class:
 *
 *   <devices class="block">
 *     <device backend-domain="dom0" id="loop7" device_id="*"
 *             mode="required">
 *       <option name="read-only">yes</option>
 *     </device>
 *   </devices>
 *
 * Read as well: "port_id" for the port, "identity" for the device id,
 * and the Qubes 4.0-4.2 form without a mode (a persistent assignment:
 * attached at each start, hence required; required="no" there is
 * auto-attach).
 */
#include "domain-devices.h"
#include "lookup.h"

#include <string.h>

GPtrArray *qubes_domain_assignments(QubesDomain *dom, const char *devclass)
{
    GPtrArray *out = g_ptr_array_new();
    for (guint i = 0; i < dom->assignments->len; i++) {
        QubesDevAssignment *a = dom->assignments->pdata[i];
        if (!devclass || strcmp(a->dev.devclass, devclass) == 0)
            g_ptr_array_add(out, a);
    }
    return out;
}

gboolean qubes_domain_has_assignment(QubesDomain *dom, const char *devclass)
{
    for (guint i = 0; i < dom->assignments->len; i++) {
        QubesDevAssignment *a = dom->assignments->pdata[i];
        if (strcmp(a->dev.devclass, devclass) == 0)
            return TRUE;
    }
    return FALSE;
}

char *qubes_domain_provided_assignments(QubesDomain *dom)
{
    GString *s = NULL;
    for (guint i = 0; i < dom->app->domains->len; i++) {
        QubesDomain *d = dom->app->domains->pdata[i];
        if (!d || d == dom)
            continue;
        for (guint j = 0; j < d->assignments->len; j++) {
            QubesDevAssignment *a = d->assignments->pdata[j];
            if (strcmp(a->dev.backend, dom->name) != 0)
                continue;
            if (!s)
                s = g_string_new(NULL);
            else
                g_string_append(s, ", ");
            g_string_append(s, a->dev.port_id);
        }
    }
    return s ? g_string_free(s, FALSE) : NULL;
}

static const char *attr_of(const QxAttrs *a, const char *name,
                           const char *other)
{
    const char *v = qx_attrs_get(a, name);
    return v ? v : (other ? qx_attrs_get(a, other) : NULL);
}

void qubes_domain_load_devices(QubesDomain *dom, const GPtrArray *qx_devices)
{
    for (guint i = 0; i < qx_devices->len; i++) {
        const QxDevice *x = qx_devices->pdata[i];
        const char *backend = qx_attrs_get(x->attrs, "backend-domain");
        const char *port = attr_of(x->attrs, "id", "port_id");
        const char *devid = attr_of(x->attrs, "device_id", "identity");
        const char *mode_s = qx_attrs_get(x->attrs, "mode");
        const char *required = qx_attrs_get(x->attrs, "required");
        QubesDevMode mode = QUBES_DEV_REQUIRED;
        const char *why = NULL;
        if (!backend || !port || !*port)
            why = "no backend-domain or id";
        else if (mode_s && !qubes_dev_mode_parse(mode_s, &mode))
            why = "its mode is not one";
        else if (mode == QUBES_DEV_MANUAL)
            why = "a manual attachment is not kept";
        if (why) {
            g_warning("%s: domain %s: %s device %s+%s left out: %s",
                      dom->app->xml_path, dom->name, x->devclass,
                      backend ? backend : "?", port ? port : "?", why);
            continue;
        }
        if (!mode_s && required && g_ascii_strcasecmp(required, "no") == 0)
            mode = QUBES_DEV_AUTO;
        QubesVDev v = {.backend = (char *)backend,
                       .port_id = (char *)port,
                       .devclass = x->devclass,
                       .device_id = (char *)(devid && *devid ? devid : "*")};
        QubesDevAssignment *a = qubes_dev_assignment_new(&v, mode);
        for (guint k = 0; k + 1 < x->options->len; k += 2)
            qubes_dev_assignment_set_option(a, x->options->pdata[k],
                                            x->options->pdata[k + 1]);
        g_ptr_array_add(dom->assignments, a);
    }
}

void qubes_domain_save_devices(QubesDomain *dom, GPtrArray *out)
{
    for (guint i = 0; i < dom->assignments->len; i++) {
        const QubesDevAssignment *a = dom->assignments->pdata[i];
        QxDevice *x = qx_device_new(a->dev.devclass);
        qx_attrs_set(x->attrs, "backend-domain", a->dev.backend);
        qx_attrs_set(x->attrs, "id", a->dev.port_id);
        qx_attrs_set(x->attrs, "device_id", a->dev.device_id);
        qx_attrs_set(x->attrs, "mode", qubes_dev_mode_name(a->mode));
        for (guint k = 0; k + 1 < a->options->len; k += 2) {
            g_ptr_array_add(x->options, g_strdup(a->options->pdata[k]));
            g_ptr_array_add(x->options, g_strdup(a->options->pdata[k + 1]));
        }
        g_ptr_array_add(out, x);
    }
}

void qubes_app_drop_unknown_backends(QubesApp *app)
{
    for (guint i = 0; i < app->domains->len; i++) {
        QubesDomain *d = app->domains->pdata[i];
        for (guint j = 0; d && j < d->assignments->len; j++) {
            QubesDevAssignment *a = d->assignments->pdata[j];
            if (strcmp(a->dev.backend, "*") == 0 ||
                g_hash_table_lookup(app->by_name, a->dev.backend))
                continue;
            g_warning("%s: domain %s: %s device %s+%s left out: its backend "
                      "qube does not exist",
                      app->xml_path, d->name, a->dev.devclass, a->dev.backend,
                      a->dev.port_id);
            g_ptr_array_remove_index(d->assignments, j--);
        }
    }
}
