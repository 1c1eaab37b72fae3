/* admin-device.c: admin.deviceclass.List, admin.vm.device.CLASS.*
 * (Available, Assigned, Attached, Assign, Unassign, Attach, Detach,
 * Set.assignment) and admin.vm.device.denied.*, as master's
 * qubes/api/admin.py answers them, for the classes served here: block
 * and pci, exposed by dom0 (hostdev.h). Devices of other backends need
 * the qubes' agents (qubesdb, udev scripts), which this system has not:
 * such a backend exposes nothing, and an assignment naming one is kept
 * but not attached.
 *
 * The wire forms are devices.h's. Attach hot-plugs a block or PCI
 * device into a running qube through the runtime (hotplug.h,
 * pci-run.h); Detach unplugs it.
 * Assign and Unassign change the qube's configuration (qubes.xml); the
 * runtime attaches the required and auto-attach ones at start. */
#include "api-util.h"

#include "hostdev.h"
#include "qubes-error.h"
#include "runtime.h"

#include <stdarg.h>
#include <string.h>

/* A KeyError's message as master answers it: str() of a KeyError is
 * the repr of its text (DeviceNotAssigned, DeviceAlreadyAttached, ...
 * derive from KeyError without their own __str__). */
static void key_error(GError **error, QubesErrorCode code, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);
static void key_error(GError **error, QubesErrorCode code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *text = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_autofree char *r = qubes_py_repr(text);
    g_set_error_literal(error, QUBES_ERROR, code, r);
}

static const char *const classes[] = {"pci", "block", NULL};

/* "admin.vm.device.CLASS.X" -> CLASS (new) */
static char *class_of(Call *call)
{
    const char *p = call->method_name + strlen("admin.vm.device.");
    const char *dot = strchr(p, '.');
    return g_strndup(p, dot ? (gsize)(dot - p) : strlen(p));
}

static void fire_dev(QubesDomain *dom, const char *event, const char *cls,
                     const char *const *kw)
{
    g_autofree char *name = g_strdup_printf("%s:%s", event, cls);
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) fx = qubes_emitter_fire(&dom->emitter, name, kw, &err);
    if (!fx)
        g_warning("%s: a %s handler failed: %s", dom->name, name, err->message);
}

/* ---- what a backend exposes ---- */

typedef struct {
    GPtrArray *infos;  /* QubesDevInfo* (borrowed from the lists below) */
    GPtrArray *blocks; /* QubesHostBlock */
    GPtrArray *pcis;   /* QubesHostPci */
} Exposed;

static void exposed_clear(Exposed *e)
{
    g_clear_pointer(&e->infos, g_ptr_array_unref);
    g_clear_pointer(&e->blocks, g_ptr_array_unref);
    g_clear_pointer(&e->pcis, g_ptr_array_unref);
}
/* Every Exposed, QubesVDev and QubesDevArg here is declared
 * g_auto(...) x = {0}: initialised where declared, cleared on every way
 * out, never by hand. */
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(Exposed, exposed_clear)

/* The devices of class @cls that @backend exposes (@all: those the host
 * uses too), attachments filled in. */
static void exposed(Call *call, QubesDomain *backend, const char *cls,
                    gboolean all, Exposed *e)
{
    exposed_clear(e);
    e->infos = g_ptr_array_new();
    if (backend->qid != 0)
        return;
    QubesRuntime *rt = call->app->runtime;
    if (strcmp(cls, "block") == 0) {
        e->blocks = qubes_host_block_list();
        for (guint i = 0; i < e->blocks->len; i++) {
            QubesHostBlock *b = e->blocks->pdata[i];
            if (b->in_use && !all)
                continue;
            const QubesBlockAttachment *at =
                rt ? qubes_runtime_block_attached(rt, b->info->dev.port_id)
                   : NULL;
            g_free(b->info->attachment);
            b->info->attachment = at ? g_strdup(at->frontend->name) : NULL;
            g_ptr_array_add(e->infos, b->info);
        }
    } else if (strcmp(cls, "pci") == 0) {
        e->pcis = qubes_host_pci_list();
        for (guint i = 0; i < e->pcis->len; i++) {
            QubesDevInfo *info = ((QubesHostPci *)e->pcis->pdata[i])->info;
            const QubesPciAttachment *at =
                rt ? qubes_runtime_pci_attached(rt, info->dev.port_id) : NULL;
            g_free(info->attachment);
            info->attachment = at ? g_strdup(at->frontend->name) : NULL;
            g_ptr_array_add(e->infos, info);
        }
    }
}

static QubesHostPci *exposed_pci(Exposed *e, const char *port)
{
    for (guint i = 0; e->pcis && i < e->pcis->len; i++) {
        QubesHostPci *p = e->pcis->pdata[i];
        if (strcmp(p->info->dev.port_id, port) == 0)
            return p;
    }
    return NULL;
}

static QubesHostBlock *exposed_block(Exposed *e, const char *port)
{
    for (guint i = 0; e->blocks && i < e->blocks->len; i++) {
        QubesHostBlock *b = e->blocks->pdata[i];
        if (strcmp(b->info->dev.port_id, port) == 0)
            return b;
    }
    return NULL;
}

static QubesDevInfo *exposed_info(Exposed *e, const char *port)
{
    for (guint i = 0; i < e->infos->len; i++) {
        QubesDevInfo *d = e->infos->pdata[i];
        if (strcmp(d->dev.port_id, port) == 0)
            return d;
    }
    return NULL;
}

/* ---- the argument: the reference's load_device_info() ---- */

/* The device the argument names, with the device id of what is on the
 * port when it is that one (its id written the qrexec way). @e and @out
 * are initialised ({0}) by the caller, who clears them, also on
 * failure. */
static gboolean load_device(Call *call, const char *cls, Exposed *e,
                            QubesVDev *out, GError **error)
{
    g_auto(QubesDevArg) a = {0};
    if (!qubes_dev_arg_parse(call->arg, &a, error))
        return FALSE;
    QubesDomain *backend = NULL;
    if (strcmp(a.backend, "*") != 0) {
        backend = g_hash_table_lookup(call->app->by_name, a.backend);
        if (!backend) {
            g_autofree char *r = qubes_py_repr(a.backend);
            g_set_error(error, QUBES_ERROR, QUBES_ERROR_VM_NOT_FOUND,
                        "No such domain: %s", r);
            return FALSE;
        }
    }
    qubes_vdev_clear(out);
    out->backend = g_strdup(a.backend);
    out->port_id = g_strdup(a.port_id);
    out->devclass = g_strdup(cls);
    out->device_id = qubes_dev_arg_device_id(&a);
    if (backend)
        exposed(call, backend, cls, TRUE, e);
    QubesDevInfo *info = e->infos && strcmp(out->port_id, "*") != 0
                             ? exposed_info(e, out->port_id)
                             : NULL;
    if (info && a.encoded_device_id && strcmp(out->device_id, "*") != 0) {
        g_autofree char *enc = qubes_dev_encode_id(info->dev.device_id);
        if (strcmp(enc, a.encoded_device_id) == 0 ||
            strcmp(info->dev.device_id, a.encoded_device_id) == 0) {
            g_free(out->device_id);
            out->device_id = g_strdup(info->dev.device_id);
        }
    }
    /* an assignment's id written the qrexec way */
    for (guint i = 0; a.encoded_device_id && i < call->dest->assignments->len;
         i++) {
        QubesDevAssignment *as = call->dest->assignments->pdata[i];
        g_autofree char *enc = qubes_dev_encode_id(as->dev.device_id);
        if (strcmp(as->dev.devclass, cls) == 0 &&
            strcmp(as->dev.backend, out->backend) == 0 &&
            strcmp(as->dev.port_id, out->port_id) == 0 &&
            strcmp(enc, a.encoded_device_id) == 0) {
            g_free(out->device_id);
            out->device_id = g_strdup(as->dev.device_id);
        }
    }
    return TRUE;
}

/* ---- listing ---- */

static char *deviceclass_list(Call *call, GError **error)
{
    GString *s = g_string_new(NULL);
    for (guint i = 0; classes[i]; i++)
        g_string_append_printf(s, "%s\n", classes[i]);
    return g_string_free(s, FALSE);
}

typedef struct {
    char *key;
    char *line;
} Line;

static gint by_key(gconstpointer a, gconstpointer b)
{
    return strcmp((*(Line *const *)a)->key, (*(Line *const *)b)->key);
}

static void line_free(Line *l)
{
    g_free(l->key);
    g_free(l->line);
    g_free(l);
}

/* "KEY SERIALIZATION\n" for each, sorted by key, one per key (a dict). */
static char *sorted_lines(GPtrArray *lines)
{
    g_ptr_array_sort(lines, by_key);
    GString *s = g_string_new(NULL);
    for (guint i = 0; i < lines->len; i++) {
        Line *l = lines->pdata[i];
        if (i + 1 < lines->len &&
            strcmp(l->key, ((Line *)lines->pdata[i + 1])->key) == 0)
            continue; /* the last one wins */
        g_string_append_printf(s, "%s %s\n", l->key, l->line);
    }
    return g_string_free(s, FALSE);
}

static char *device_available(Call *call, GError **error)
{
    g_autofree char *cls = class_of(call);
    g_auto(Exposed) e = {0};
    exposed(call, call->dest, cls, FALSE, &e);
    g_autoptr(GPtrArray) lines =
        g_ptr_array_new_with_free_func((GDestroyNotify)line_free);
    for (guint i = 0; i < e.infos->len; i++) {
        QubesDevInfo *d = e.infos->pdata[i];
        if (*call->arg && strcmp(d->dev.port_id, call->arg) != 0)
            continue;
        char *ser = qubes_dev_info_serialize(d, error);
        if (!ser)
            return NULL;
        Line *l = g_new0(Line, 1);
        l->key = g_strdup_printf("%s:%s", d->dev.port_id, d->dev.device_id);
        l->line = ser;
        g_ptr_array_add(lines, l);
    }
    return sorted_lines(lines);
}

/* The argument of Assigned and Attached: "BACKEND+PORT" selects one. */
static gboolean selected(Call *call, const QubesVDev *v)
{
    if (!*call->arg)
        return TRUE;
    const char *plus = strchr(call->arg, '+');
    if (!plus)
        return FALSE;
    return strlen(v->backend) == (gsize)(plus - call->arg) &&
           strncmp(v->backend, call->arg, (gsize)(plus - call->arg)) == 0 &&
           strcmp(v->port_id, plus + 1) == 0;
}

/* The listing of assignments or attachments @as, those the argument
 * selects, keyed BACKEND+PORT:ID. */
static char *assignment_lines(Call *call, GPtrArray *as, GError **error)
{
    if (*call->arg && !api_enforce(strchr(call->arg, '+') != NULL, NULL, error))
        return NULL;
    g_autoptr(GPtrArray) lines =
        g_ptr_array_new_with_free_func((GDestroyNotify)line_free);
    for (guint i = 0; i < as->len; i++) {
        QubesDevAssignment *a = as->pdata[i];
        if (!selected(call, &a->dev))
            continue;
        char *ser = qubes_dev_assignment_serialize(a, error);
        if (!ser)
            return NULL;
        Line *l = g_new0(Line, 1);
        l->key = g_strdup_printf("%s+%s:%s", a->dev.backend, a->dev.port_id,
                                 a->dev.device_id);
        l->line = ser;
        g_ptr_array_add(lines, l);
    }
    return sorted_lines(lines);
}

static char *device_assigned(Call *call, GError **error)
{
    g_autofree char *cls = class_of(call);
    g_autoptr(GPtrArray) as = qubes_domain_assignments(call->dest, cls);
    return assignment_lines(call, as, error);
}

/* An attachment of dom0's device on @port_id (@device_id: its identity
 * when known) to @dest, as master's get_attached_devices lists it: the
 * assignment of @dest that names exactly that port and identity, else a
 * manual one with @dest as frontend. */
static QubesDevAssignment *attachment(QubesDomain *dest, const char *cls,
                                      const char *port_id,
                                      const char *device_id)
{
    QubesVDev v = {.backend = "dom0",
                   .port_id = (char *)port_id,
                   .devclass = (char *)cls,
                   .device_id =
                       (char *)(device_id ? device_id : "0000:0000::?******")};
    for (guint i = 0; i < dest->assignments->len; i++) {
        QubesDevAssignment *a = dest->assignments->pdata[i];
        if (qubes_vdev_equal(&a->dev, &v))
            return qubes_dev_assignment_copy(a);
    }
    QubesDevAssignment *a = qubes_dev_assignment_new(&v, QUBES_DEV_MANUAL);
    a->frontend = g_strdup(dest->name);
    return a;
}

/* The identity of dom0's device on @port in @devs (QubesHostPci* when
 * @pci, else QubesHostBlock*), or NULL. */
static const char *identity_in(GPtrArray *devs, gboolean pci, const char *port)
{
    for (guint k = 0; k < devs->len; k++) {
        const QubesDevInfo *i = pci ? ((QubesHostPci *)devs->pdata[k])->info
                                    : ((QubesHostBlock *)devs->pdata[k])->info;
        if (strcmp(i->dev.port_id, port) == 0)
            return i->dev.device_id;
    }
    return NULL;
}

/* The attachments of @dest (QubesDevAssignment) of class @cls. */
static GPtrArray *attached_of(Call *call, QubesDomain *dest, const char *cls)
{
    GPtrArray *out = g_ptr_array_new_with_free_func(
        (GDestroyNotify)qubes_dev_assignment_free);
    QubesRuntime *rt = call->app->runtime;
    if (!rt)
        return out;
    if (strcmp(cls, "pci") == 0) {
        const GPtrArray *all = qubes_runtime_pci_attachments(rt);
        g_autoptr(GPtrArray) pcis = NULL;
        for (guint i = 0; i < all->len; i++) {
            const QubesPciAttachment *at = all->pdata[i];
            if (at->frontend != dest)
                continue;
            if (!pcis)
                pcis = qubes_host_pci_list();
            g_ptr_array_add(out,
                            attachment(dest, cls, at->port_id,
                                       identity_in(pcis, TRUE, at->port_id)));
        }
        return out;
    }
    if (strcmp(cls, "block") != 0)
        return out;
    const GPtrArray *all = qubes_runtime_block_attachments(rt);
    g_autoptr(GPtrArray) blocks = NULL;
    for (guint i = 0; i < all->len; i++) {
        const QubesBlockAttachment *at = all->pdata[i];
        if (at->frontend != dest)
            continue;
        if (!blocks)
            blocks = qubes_host_block_list();
        QubesDevAssignment *a = attachment(
            dest, cls, at->port_id, identity_in(blocks, FALSE, at->port_id));
        if (a->mode == QUBES_DEV_MANUAL) {
            /* ext/block.py's device-list-attached options */
            qubes_dev_assignment_set_option(a, "read-only",
                                            at->read_only ? "yes" : "no");
            qubes_dev_assignment_set_option(a, "frontend-dev", at->target);
            if (g_strcmp0(at->devtype, "disk") != 0)
                qubes_dev_assignment_set_option(a, "devtype", at->devtype);
        }
        g_ptr_array_add(out, a);
    }
    return out;
}

static char *device_attached(Call *call, GError **error)
{
    g_autofree char *cls = class_of(call);
    g_autoptr(GPtrArray) as = attached_of(call, call->dest, cls);
    return assignment_lines(call, as, error);
}

/* ---- options ---- */

/* The options of @cls as the reference's extensions check them (block:
 * frontend-dev, read-only, devtype; pci: no-strict-reset, permissive);
 * read-only and the pci flags normalized. */
static gboolean check_options(const char *cls, QubesDevAssignment *a,
                              GError **error)
{
    for (guint i = 0; i + 1 < a->options->len; i += 2) {
        const char *k = a->options->pdata[i];
        char **v = (char **)&a->options->pdata[i + 1];
        gboolean known = TRUE;
        if (strcmp(cls, "block") == 0 && strcmp(k, "frontend-dev") == 0) {
            if (!g_str_has_prefix(*v, "xvd") && !g_str_has_prefix(*v, "sd") &&
                !g_str_has_prefix(*v, "vd")) {
                g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                            "Invalid frontend-dev option value: %s", *v);
                return FALSE;
            }
            for (const char *p = *v; *p; p++)
                if (!g_ascii_islower(*p)) {
                    g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                                "Invalid frontend-dev option value: %s", *v);
                    return FALSE;
                }
        } else if ((strcmp(cls, "block") == 0 && strcmp(k, "read-only") == 0) ||
                   (strcmp(cls, "pci") == 0 &&
                    (strcmp(k, "no-strict-reset") == 0 ||
                     strcmp(k, "permissive") == 0))) {
            gboolean b;
            if (!qubes_parse_bool(*v, k, &b, NULL)) {
                g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                            "Invalid literal for boolean property: %s", *v);
                return FALSE;
            }
            g_free(*v);
            *v = g_strdup(strcmp(cls, "block") == 0 ? (b ? "yes" : "no")
                                                    : (b ? "True" : "False"));
        } else if (strcmp(cls, "block") == 0 && strcmp(k, "devtype") == 0) {
            if (strcmp(*v, "disk") != 0 && strcmp(*v, "cdrom") != 0) {
                g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                            "devtype option can only have 'disk' or 'cdrom' "
                            "value");
                return FALSE;
            }
        } else {
            known = FALSE;
        }
        if (!known) {
            g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                        "Unsupported option %s", k);
            return FALSE;
        }
    }
    return TRUE;
}

/* The deny list of @dest covers one of @info's interfaces. */
static gboolean denied(QubesDomain *dest, const QubesDevInfo *info,
                       GError **error)
{
    g_autofree char *list = qubes_domain_prop(dest, "devices_denied");
    const char *ifs = info->interfaces ? info->interfaces : "?******";
    for (gsize i = 0; list && i + 7 <= strlen(list); i += 7)
        for (gsize j = 0; j + 7 <= strlen(ifs); j += 7) {
            gboolean match = TRUE;
            for (gsize k = 0; k < 7 && match; k++)
                match = list[i + k] == '*' || list[i + k] == ifs[j + k];
            if (match) {
                g_set_error(error, QUBES_ERROR, QUBES_ERROR_PERMISSION_DENIED,
                            "Device %s:%s has an interface (%.7s) denied for "
                            "'%s'",
                            info->dev.backend, info->dev.port_id, ifs + j,
                            dest->name);
                return TRUE;
            }
        }
    return FALSE;
}

/* ---- assign, unassign, set.assignment ---- */

/* The assignment of Assign and Attach: the payload checked against the
 * device the argument names (@e: what its backend exposes, kept for
 * the caller; cleared on failure). */
/* @dom's assignment of @v (same port and identity; @index: where), or
 * NULL. */
static QubesDevAssignment *assignment_of(QubesDomain *dom, const QubesVDev *v,
                                         guint *index)
{
    for (guint i = 0; i < dom->assignments->len; i++) {
        QubesDevAssignment *a = dom->assignments->pdata[i];
        if (qubes_vdev_equal(&a->dev, v)) {
            *index = i;
            return a;
        }
    }
    return NULL;
}

static QubesDevAssignment *payload_assignment(Call *call, const char *cls,
                                              Exposed *e, GError **error)
{
    g_auto(QubesVDev) dev = {0};
    if (!load_device(call, cls, e, &dev, error))
        return NULL;
    gsize len = 0;
    const char *payload = api_payload(call, &len);
    return qubes_dev_assignment_deserialize(payload, len, &dev, error);
}

static char *device_assign(Call *call, GError **error)
{
    g_autofree char *cls = class_of(call);
    g_auto(Exposed) e = {0};
    g_autoptr(QubesDevAssignment) a = payload_assignment(call, cls, &e, error);
    if (!a)
        return NULL;
    if (a->frontend && strcmp(a->frontend, call->dest->name) != 0) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_PROTOCOL,
                    "Trying to assign device belonging to other domain: %s",
                    a->frontend);
        return NULL;
    }
    if (a->mode == QUBES_DEV_MANUAL) {
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                            "Only the required, auto-attach and ask-to-attach "
                            "modes can be assigned (manual is Attach)");
        return NULL;
    }
    if (call->dest->qid == 0) {
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                            "Devices cannot be assigned to dom0");
        return NULL;
    }
    if (!check_options(cls, a, error))
        return NULL;
    if (strcmp(cls, "pci") == 0) {
        g_autofree char *vm = qubes_domain_prop(call->dest, "virt_mode");
        if (g_strcmp0(vm, "pvh") == 0 &&
            !qubes_props_is_default(&call->dest->props, "virt_mode")) {
            g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                                "pvh mode can't be set if pci devices are "
                                "attached");
            return NULL;
        }
    }
    guint at = 0;
    if (assignment_of(call->dest, &a->dev, &at)) {
        g_autofree char *d = qubes_vdev_str(&a->dev);
        key_error(error, QUBES_ERROR_DEVICE_ALREADY_ASSIGNED,
                  "%s device %s already assigned to %s", cls, d,
                  call->dest->name);
        return NULL;
    }
    g_autofree char *v = qubes_vdev_str(&a->dev);
    g_autofree char *opts = qubes_py_dict(a->options);
    /* kept without its frontend: it is the qube's (qubes.xml does not
     * say it either, so that what is listed is the same after a load) */
    g_clear_pointer(&a->frontend, g_free);
    g_ptr_array_add(call->dest->assignments, qubes_dev_assignment_copy(a));
    const char *kw[] = {"device", v, "options", opts, NULL};
    fire_dev(call->dest, "device-assign", cls, kw);
    return api_saved(call, error);
}

static gboolean vdev_from_arg(Call *call, const char *cls, QubesVDev *out,
                              GError **error)
{
    g_auto(Exposed) e = {0};
    return load_device(call, cls, &e, out, error);
}

/* The argument's device among the destination's assignments (@index:
 * where), or NULL with master's refusal: for an update (Set.assignment)
 * QubesValueError, else DeviceNotAssigned; @str gets the device as the
 * events name it. */
static QubesDevAssignment *arg_assignment(Call *call, const char *cls,
                                          gboolean update, guint *index,
                                          char **str, GError **error)
{
    g_auto(QubesVDev) v = {0};
    if (!vdev_from_arg(call, cls, &v, error))
        return NULL;
    QubesDevAssignment *a = assignment_of(call->dest, &v, index);
    if (a) {
        *str = qubes_vdev_str(&v);
    } else if (update) {
        g_autofree char *d = qubes_vdev_str(&v);
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                    "Device %s not assigned to %s", d, call->dest->name);
    } else {
        g_autofree char *r = qubes_vdev_repr(&v);
        key_error(error, QUBES_ERROR_DEVICE_NOT_ASSIGNED,
                  "%s device %s not assigned to %s", v.devclass, r,
                  call->dest->name);
    }
    return a;
}

static char *device_unassign(Call *call, GError **error)
{
    g_autofree char *cls = class_of(call);
    guint at = 0;
    g_autofree char *str = NULL;
    QubesDevAssignment *a = arg_assignment(call, cls, FALSE, &at, &str, error);
    if (!a)
        return NULL;
    g_ptr_array_remove_index(call->dest->assignments, at);
    const char *kw[] = {"device", str, NULL};
    fire_dev(call->dest, "device-unassign", cls, kw);
    return api_saved(call, error);
}

static char *device_set_assignment(Call *call, GError **error)
{
    g_autofree char *cls = class_of(call);
    gsize len = 0;
    const char *p = api_payload(call, &len);
    g_autofree char *untrusted = g_strndup(p, len);
    QubesDevMode mode;
    if (strlen(untrusted) != len || !qubes_dev_mode_parse(untrusted, &mode) ||
        mode == QUBES_DEV_MANUAL) {
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_PERMISSION_DENIED,
                            "");
        return NULL;
    }
    guint at = 0;
    g_autofree char *str = NULL;
    QubesDevAssignment *a = arg_assignment(call, cls, TRUE, &at, &str, error);
    if (!a)
        return NULL;
    a->mode = mode;
    const char *kw[] = {"device", str, "mode", qubes_dev_mode_name(mode), NULL};
    fire_dev(call->dest, "device-assignment-changed", cls, kw);
    return api_saved(call, error);
}

/* ---- attach, detach ---- */

typedef struct {
    QubesDomain *dom;
    char *cls;
    char *device; /* str() for the event */
    char *port;   /* str() of the port */
    char *options;
} AttachJob;

static void attach_job_free(AttachJob *j)
{
    qubes_domain_unref(j->dom);
    g_free(j->cls);
    g_free(j->device);
    g_free(j->port);
    g_free(j->options);
    g_free(j);
}

static void attached_done(GObject *src, GAsyncResult *res, gpointer data)
{
    Call *call = data;
    AttachJob *j = call->data;
    GError *err = NULL;
    if (!qubes_runtime_op_finish(res, &err)) {
        call_fail(call, err);
        return;
    }
    const char *kw[] = {"device", j->device, "options", j->options, NULL};
    fire_dev(j->dom, "device-attach", j->cls, kw);
    call_return(call, "");
}

static void attach_job_start(Call *call, const char *cls, const char *v,
                             const char *opts)
{
    AttachJob *j = g_new0(AttachJob, 1);
    j->dom = qubes_domain_ref(call->dest);
    j->cls = g_strdup(cls);
    j->device = g_strdup(v);
    j->options = g_strdup(opts);
    call->data = j;
    call->data_free = (GDestroyNotify)attach_job_free;
}

/* ext/pci.py's device-pre-attach: the hot-plug of a running qube's new
 * PCI device @p (@v its str(), @opts the options' dict). */
static char *attach_pci(Call *call, QubesDevAssignment *a, QubesHostPci *p,
                        const char *v, const char *opts, GError **error)
{
    QubesRuntime *rt = call->app->runtime;
    const QubesPciAttachment *used =
        qubes_runtime_pci_attached(rt, a->dev.port_id);
    if (used) {
        key_error(error, QUBES_ERROR_DEVICE_ALREADY_ATTACHED,
                  "device %s of class pci already attached to %s", v,
                  used->frontend->name);
        return NULL;
    }
    g_autofree char *vm = qubes_domain_prop(call->dest, "virt_mode");
    if (g_strcmp0(vm, "pvh") == 0) {
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                            "Can't attach PCI device to VM in pvh mode");
        return NULL;
    }
    const char *kw[] = {"device", v, "options", opts, NULL};
    g_autoptr(GPtrArray) fx = qubes_emitter_fire(
        &call->dest->emitter, "device-pre-attach:pci", kw, error);
    if (!fx)
        return NULL;
    attach_job_start(call, "pci", v, opts);
    qubes_runtime_attach_pci(
        rt, call->dest, a->dev.port_id, p->sysfs_name,
        /* check_options made them True or False */
        g_strcmp0(qubes_dev_assignment_option(a, "no-strict-reset"), "True") ==
            0,
        g_strcmp0(qubes_dev_assignment_option(a, "permissive"), "True") == 0,
        attached_done, call);
    return CALL_ASYNC;
}

static char *device_attach(Call *call, GError **error)
{
    g_autofree char *cls = class_of(call);
    g_auto(Exposed) e = {0};
    g_autoptr(QubesDevAssignment) a = payload_assignment(call, cls, &e, error);
    if (!a)
        return NULL;
    char *result = NULL;
    g_autofree char *opts = NULL, *v = NULL, *pre = NULL;
    g_autoptr(GPtrArray) fx = NULL;
    QubesRuntime *rt = call->app->runtime;
    if (a->mode != QUBES_DEV_MANUAL) {
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                            "Attach takes a manual assignment (the others "
                            "are Assign)");
        goto out;
    }
    if (qubes_domain_is_halted(call->dest) || !rt) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VM_NOT_RUNNING,
                    "VM not running, cannot attach device, do you mean "
                    "`assign`?");
        goto out;
    }
    /* a port is one device (any identity: the one plugged there) */
    if (strcmp(a->dev.port_id, "*") == 0) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_PROTOCOL,
                    "Cannot attach ambiguous %s device.", cls);
        goto out;
    }
    QubesDevInfo *info = exposed_info(&e, a->dev.port_id);
    if (info && strcmp(a->dev.device_id, "*") == 0) {
        g_free(a->dev.device_id);
        a->dev.device_id = g_strdup(info->dev.device_id);
    }
    if (!info || strcmp(info->dev.device_id, a->dev.device_id) != 0) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_PROTOCOL,
                    "%s device not recognized in %s port.", cls,
                    a->dev.port_id);
        goto out;
    }
    if (call->dest->qid == 0) {
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                            "Devices cannot be attached to dom0");
        goto out;
    }
    if (!check_options(cls, a, error) || denied(call->dest, info, error))
        goto out;
    opts = qubes_py_dict(a->options);
    v = qubes_vdev_str(&a->dev);
    if (strcmp(cls, "pci") == 0) {
        result = attach_pci(call, a, exposed_pci(&e, a->dev.port_id), v, opts,
                            error);
        goto out;
    }
    QubesHostBlock *b = exposed_block(&e, a->dev.port_id);
    if (b->in_use) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                    "Device %s is used by the host: %s", v, b->in_use);
        goto out;
    }
    const QubesBlockAttachment *used =
        qubes_runtime_block_attached(rt, a->dev.port_id);
    if (used) {
        key_error(error, QUBES_ERROR_DEVICE_ALREADY_ATTACHED,
                  "device %s of class block already attached to %s", v,
                  used->frontend->name);
        goto out;
    }
    const char *ro_opt = qubes_dev_assignment_option(a, "read-only");
    if (b->read_only && g_strcmp0(ro_opt, "no") == 0) {
        g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                            "This device can be attached only read-only");
        goto out;
    }
    const char *kw[] = {"device", v, "options", opts, NULL};
    pre = g_strdup_printf("device-pre-attach:%s", cls);
    fx = qubes_emitter_fire(&call->dest->emitter, pre, kw, error);
    if (!fx)
        goto out;
    attach_job_start(call, cls, v, opts);
    qubes_runtime_attach_block(rt, call->dest, a->dev.port_id, b->path,
                               qubes_dev_assignment_option(a, "frontend-dev"),
                               b->read_only || g_strcmp0(ro_opt, "yes") == 0,
                               qubes_dev_assignment_option(a, "devtype"),
                               attached_done, call);
    result = CALL_ASYNC;
out:
    return result;
}

static void detached_done(GObject *src, GAsyncResult *res, gpointer data)
{
    Call *call = data;
    AttachJob *j = call->data;
    GError *err = NULL;
    if (!qubes_runtime_op_finish(res, &err)) {
        call_fail(call, err);
        return;
    }
    const char *kw[] = {"port", j->port, NULL};
    fire_dev(j->dom, "device-detach", j->cls, kw);
    call_return(call, "");
}

static char *device_detach(Call *call, GError **error)
{
    g_autofree char *cls = class_of(call);
    g_auto(QubesVDev) v = {0};
    if (!vdev_from_arg(call, cls, &v, error))
        return NULL;
    g_autoptr(GPtrArray) as = attached_of(call, call->dest, cls);
    const QubesDevAssignment *found = NULL;
    for (guint i = 0; i < as->len && !found; i++) {
        QubesDevAssignment *a = as->pdata[i];
        if (strcmp(a->dev.backend, v.backend) == 0 &&
            strcmp(a->dev.port_id, v.port_id) == 0)
            found = a;
    }
    g_autofree char *port = g_strdup_printf("%s:%s", v.backend, v.port_id);
    if (!found) {
        key_error(error, QUBES_ERROR_DEVICE_NOT_ASSIGNED,
                  "%s device %s not attached to %s", cls, v.port_id,
                  call->dest->name);
        return NULL;
    }
    /* master: a required assignment that matches the attached device
     * (its port and identity, each possibly "*") */
    for (guint i = 0; i < call->dest->assignments->len; i++) {
        QubesDevAssignment *a = call->dest->assignments->pdata[i];
        if (a->mode == QUBES_DEV_REQUIRED &&
            strcmp(a->dev.devclass, cls) == 0 &&
            strcmp(a->dev.backend, found->dev.backend) == 0 &&
            (strcmp(a->dev.port_id, found->dev.port_id) == 0 ||
             strcmp(a->dev.port_id, "*") == 0) &&
            (strcmp(a->dev.device_id, found->dev.device_id) == 0 ||
             strcmp(a->dev.device_id, "*") == 0)) {
            g_set_error_literal(
                error, QUBES_ERROR, QUBES_ERROR_VM_NOT_HALTED,
                "Can not detach a required device from a non halted qube. "
                "You need to unassign device first.");
            return NULL;
        }
    }
    const char *kw[] = {"port", port, NULL};
    g_autofree char *pre = g_strdup_printf("device-pre-detach:%s", cls);
    g_autoptr(GPtrArray) fx =
        qubes_emitter_fire(&call->dest->emitter, pre, kw, error);
    if (!fx) {
        return NULL;
    }
    AttachJob *j = g_new0(AttachJob, 1);
    j->dom = qubes_domain_ref(call->dest);
    j->cls = g_strdup(cls);
    j->port = g_strdup(port);
    call->data = j;
    call->data_free = (GDestroyNotify)attach_job_free;
    if (strcmp(cls, "pci") == 0)
        qubes_runtime_detach_pci(call->app->runtime, call->dest, v.port_id,
                                 detached_done, call);
    else
        qubes_runtime_detach_block(call->app->runtime, call->dest, v.port_id,
                                   detached_done, call);
    return CALL_ASYNC;
}

/* ---- the deny list ---- */

static char *denied_list(Call *call, GError **error)
{
    g_autofree char *list = qubes_domain_prop(call->dest, "devices_denied");
    g_autoptr(GPtrArray) ifs =
        qubes_dev_interfaces_parse(list ? list : "", error);
    if (!ifs)
        return NULL;
    g_ptr_array_add(ifs, NULL);
    return g_strjoinv("\n", (char **)ifs->pdata);
}

static gboolean no_duplicates(GPtrArray *ifs, GError **error)
{
    for (guint i = 0; i < ifs->len; i++)
        for (guint j = i + 1; j < ifs->len; j++)
            if (strcmp(ifs->pdata[i], ifs->pdata[j]) == 0) {
                g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                                    "Duplicated device interfaces in "
                                    "payload.");
                return FALSE;
            }
    return TRUE;
}

static char *set_denied(Call *call, const char *value, GError **error)
{
    g_autofree char *prev = qubes_domain_prop(call->dest, "devices_denied");
    if (!qubes_props_set(&call->dest->props, "devices_denied", value, error))
        return NULL;
    g_autofree char *now = qubes_domain_prop(call->dest, "devices_denied");
    if (g_strcmp0(prev, now) == 0)
        return g_strdup(""); /* nothing changed: not saved */
    return api_saved(call, error);
}

static char *denied_add(Call *call, GError **error)
{
    g_autofree char *untrusted = api_payload_ascii(
        call, "Device interface contains non-ASCII characters", error);
    if (!untrusted)
        return NULL;
    g_autoptr(GPtrArray) ifs = qubes_dev_interfaces_parse(untrusted, error);
    if (!ifs || !no_duplicates(ifs, error))
        return NULL;
    g_autofree char *prev = qubes_domain_prop(call->dest, "devices_denied");
    GString *v = g_string_new(prev ? prev : "");
    for (guint i = 0; i < ifs->len; i++)
        g_string_append(v, ifs->pdata[i]);
    g_autofree char *value = g_string_free(v, FALSE);
    return set_denied(call, value, error);
}

static char *denied_remove(Call *call, GError **error)
{
    g_autofree char *untrusted = api_payload_ascii(
        call, "Device interface contains non-ASCII characters", error);
    if (!untrusted)
        return NULL;
    g_autofree char *list = qubes_domain_prop(call->dest, "devices_denied");
    g_autoptr(GPtrArray) cur =
        qubes_dev_interfaces_parse(list ? list : "", error);
    if (!cur)
        return NULL;
    g_autoptr(GPtrArray) rm =
        strcmp(untrusted, "all") == 0
            ? g_ptr_array_ref(cur)
            : qubes_dev_interfaces_parse(untrusted, error);
    if (!rm || !no_duplicates(rm, error))
        return NULL;
    GString *v = g_string_new(NULL);
    for (guint i = 0; i < cur->len; i++) {
        gboolean drop = FALSE;
        for (guint j = 0; j < rm->len && !drop; j++)
            drop = strcmp(cur->pdata[i], rm->pdata[j]) == 0;
        if (!drop)
            g_string_append(v, cur->pdata[i]);
    }
    g_autofree char *value = g_string_free(v, FALSE);
    return set_denied(call, value, error);
}

#define NP M_NO_PAYLOAD
#define NA M_NO_ARG
#define DEVICE_METHODS(cls)                                                    \
    {"admin.vm.device." cls ".Available", NP, device_available},               \
        {"admin.vm.device." cls ".Assigned", NP, device_assigned},             \
        {"admin.vm.device." cls ".Attached", NP, device_attached},             \
        {"admin.vm.device." cls ".Assign", M_ARG, device_assign},              \
        {"admin.vm.device." cls ".Unassign", NP | M_ARG, device_unassign},     \
        {"admin.vm.device." cls ".Attach", M_ARG, device_attach},              \
        {"admin.vm.device." cls ".Detach", NP | M_ARG, device_detach},         \
    {                                                                          \
        "admin.vm.device." cls ".Set.assignment", M_ARG, device_set_assignment \
    }

const Method api_device_methods[] = {
    {"admin.deviceclass.List", NP | NA | M_DOM0, deviceclass_list},
    DEVICE_METHODS("pci"),
    DEVICE_METHODS("block"),
    {"admin.vm.device.denied.List", NP | NA, denied_list},
    {"admin.vm.device.denied.Add", NA, denied_add},
    {"admin.vm.device.denied.Remove", NA, denied_remove},
    {NULL},
};
