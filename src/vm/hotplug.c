/* hotplug.c: dom0's devices attached to running qubes (hotplug.h). */
#include "hotplug.h"

#include "hostdev.h"
#include "libvirt-ops.h"
#include "pci-run.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdio.h>
#include <string.h>

void rt_block_attachment_free(QubesBlockAttachment *a)
{
    qubes_domain_unref(a->frontend);
    g_free(a->port_id);
    g_free(a->path);
    g_free(a->target);
    g_free(a->devtype);
    g_free(a);
}

const GPtrArray *qubes_runtime_block_attachments(QubesRuntime *rt)
{
    return rt->blocks;
}

const QubesBlockAttachment *qubes_runtime_block_attached(QubesRuntime *rt,
                                                         const char *port_id)
{
    for (guint i = 0; i < rt->blocks->len; i++) {
        const QubesBlockAttachment *a = rt->blocks->pdata[i];
        if (strcmp(a->port_id, port_id) == 0)
            return a;
    }
    return NULL;
}

/* The reference's block.xml on Xen (a phy disk); on QEMU a virtio disk
 * with the port as its serial. A cdrom on QEMU is a read-only disk (the
 * virtio bus has no cdroms). */
static char *block_disk_xml(QubesRuntime *rt, const QubesBlockAttachment *a)
{
    g_autofree char *path = g_markup_escape_text(a->path, -1);
    g_autofree char *target = g_markup_escape_text(a->target, -1);
    gboolean ro = a->read_only || (rt->cfg.hv != QUBES_HV_XEN &&
                                   g_strcmp0(a->devtype, "cdrom") == 0);
    if (rt->cfg.hv == QUBES_HV_XEN)
        return g_strdup_printf("<disk type='block' device='%s'>"
                               "<driver name='phy'/><source dev='%s'/>"
                               "<target dev='%s'/>%s</disk>",
                               g_strcmp0(a->devtype, "cdrom") == 0 ? "cdrom"
                                                                   : "disk",
                               path, target, ro ? "<readonly/>" : "");
    g_autofree char *port = g_strndup(a->port_id, 20); /* virtio's limit */
    g_autofree char *serial = g_markup_escape_text(port, -1);
    return g_strdup_printf("<disk type='block' device='disk'>"
                           "<driver name='qemu' type='raw' cache='none'/>"
                           "<source dev='%s'/><target dev='%s' bus='virtio'/>"
                           "<serial>%s</serial>%s</disk>",
                           path, target, serial, ro ? "<readonly/>" : "");
}

/* The frontend device for a new disk of @dom: @hint (xvdX or sdX as the
 * reference takes them, vdX on QEMU too; a Xen name on QEMU becomes its
 * vdX), else the first free of ..i-z, then e-h, after the qube's own
 * disks. NULL when every name is taken. */
static char *block_target(QubesRuntime *rt, QubesDomain *dom, const char *hint)
{
    gboolean xen = rt->cfg.hv == QUBES_HV_XEN;
    const char *prefix = xen ? "xvd" : "vd";
    if (hint) {
        if (xen)
            return g_strdup(hint);
        const char *letters = g_str_has_prefix(hint, "xvd")  ? hint + 3
                              : g_str_has_prefix(hint, "vd") ? hint + 2
                              : g_str_has_prefix(hint, "sd") ? hint + 2
                                                             : hint;
        return g_strdup_printf("vd%s", letters);
    }
    const char *order = "ijklmnopqrstuvwxyzefgh";
    for (const char *c = order; *c; c++) {
        g_autofree char *t = g_strdup_printf("%s%c", prefix, *c);
        gboolean used = FALSE;
        for (guint i = 0; i < rt->blocks->len && !used; i++) {
            const QubesBlockAttachment *a = rt->blocks->pdata[i];
            used = a->frontend == dom && strcmp(a->target, t) == 0;
        }
        if (!used)
            return g_steal_pointer(&t);
    }
    return NULL;
}

typedef struct {
    QubesRuntime *rt;
    QubesBlockAttachment *a; /* owned until it is in the table */
    gboolean attach;
    GTask *task; /* the caller's */
} BlockJob;

static void block_job_done(GObject *src, GAsyncResult *res, gpointer data)
{
    BlockJob *j = data;
    GError *err = NULL;
    if (!g_task_propagate_boolean(G_TASK(res), &err)) {
        g_task_return_error(j->task, err);
    } else {
        if (j->attach) {
            g_ptr_array_add(j->rt->blocks, g_steal_pointer(&j->a));
        } else {
            for (guint i = 0; i < j->rt->blocks->len; i++) {
                QubesBlockAttachment *a = j->rt->blocks->pdata[i];
                if (a->frontend == j->a->frontend &&
                    strcmp(a->port_id, j->a->port_id) == 0)
                    g_ptr_array_remove_index(j->rt->blocks, i--);
            }
        }
        g_task_return_boolean(j->task, TRUE);
    }
    g_object_unref(j->task);
    if (j->a)
        rt_block_attachment_free(j->a);
    rt_unref(j->rt);
    g_free(j);
}

void qubes_runtime_attach_block(QubesRuntime *rt, QubesDomain *dom,
                                const char *port_id, const char *path,
                                const char *frontend_dev, gboolean read_only,
                                const char *devtype, GAsyncReadyCallback cb,
                                gpointer data)
{
    GTask *task = g_task_new(NULL, NULL, cb, data);
    g_autofree char *target = block_target(rt, dom, frontend_dev);
    if (!target) {
        g_task_return_new_error(task, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                                "No free frontend device in %s", dom->name);
        g_object_unref(task);
        return;
    }
    QubesBlockAttachment *a = g_new0(QubesBlockAttachment, 1);
    a->frontend = qubes_domain_ref(dom);
    a->port_id = g_strdup(port_id);
    a->path = g_strdup(path);
    a->target = g_steal_pointer(&target);
    a->devtype = g_strdup(devtype ? devtype : "disk");
    a->read_only = read_only;
    BlockJob *j = g_new0(BlockJob, 1);
    j->rt = rt_ref(rt);
    j->a = a;
    j->attach = TRUE;
    j->task = task;
    rt_run_op(rt, OP_ATTACH_DISK, dom, block_disk_xml(rt, a), block_job_done,
              j);
}

void qubes_runtime_detach_block(QubesRuntime *rt, QubesDomain *dom,
                                const char *port_id, GAsyncReadyCallback cb,
                                gpointer data)
{
    GTask *task = g_task_new(NULL, NULL, cb, data);
    const QubesBlockAttachment *found = NULL;
    for (guint i = 0; i < rt->blocks->len && !found; i++) {
        const QubesBlockAttachment *a = rt->blocks->pdata[i];
        if (a->frontend == dom && strcmp(a->port_id, port_id) == 0)
            found = a;
    }
    if (!found) {
        /* master's DeviceNotAssigned, a KeyError: its text's repr */
        g_task_return_new_error(
            task, QUBES_ERROR, QUBES_ERROR_DEVICE_NOT_ASSIGNED,
            "'block device %s not attached to %s'", port_id, dom->name);
        g_object_unref(task);
        return;
    }
    QubesBlockAttachment *copy = g_new0(QubesBlockAttachment, 1);
    copy->frontend = qubes_domain_ref(dom);
    copy->port_id = g_strdup(found->port_id);
    copy->path = g_strdup(found->path);
    copy->target = g_strdup(found->target);
    copy->devtype = g_strdup(found->devtype);
    copy->read_only = found->read_only;
    BlockJob *j = g_new0(BlockJob, 1);
    j->rt = rt_ref(rt);
    j->a = copy;
    j->task = task;
    rt_run_op(rt, OP_DETACH_DISK, dom, block_disk_xml(rt, copy), block_job_done,
              j);
}

/* The qube stopped: its attachments went with it. */
void rt_blocks_gone_with(QubesRuntime *rt, QubesDomain *dom)
{
    for (guint i = 0; i < rt->blocks->len; i++)
        if (((QubesBlockAttachment *)rt->blocks->pdata[i])->frontend == dom)
            g_ptr_array_remove_index(rt->blocks, i--);
}

/* A qube that runs when qubesd starts: its attached host block devices,
 * read from its domain XML (disks of type block whose source is a
 * /dev node and whose serial is not one of its volumes). */
void rt_blocks_adopt(QubesRuntime *rt, QubesDomain *dom, const char *xml)
{
    xmlDocPtr doc = xmlReadMemory(xml, (int)strlen(xml), "domain.xml", NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR |
                                      XML_PARSE_NOWARNING);
    if (!doc)
        return;
    xmlNodePtr root = xmlDocGetRootElement(doc);
    for (xmlNodePtr devs = root ? root->children : NULL; devs;
         devs = devs->next) {
        if (devs->type != XML_ELEMENT_NODE ||
            strcmp((const char *)devs->name, "devices") != 0)
            continue;
        for (xmlNodePtr d = devs->children; d; d = d->next) {
            if (d->type != XML_ELEMENT_NODE ||
                strcmp((const char *)d->name, "disk") != 0)
                continue;
            xmlChar *type = xmlGetProp(d, (const xmlChar *)"type");
            gboolean block = type && strcmp((char *)type, "block") == 0;
            xmlFree(type);
            if (!block)
                continue;
            g_autofree char *src = NULL, *target = NULL, *serial = NULL;
            gboolean ro = FALSE;
            for (xmlNodePtr c = d->children; c; c = c->next) {
                if (c->type != XML_ELEMENT_NODE)
                    continue;
                const char *n = (const char *)c->name;
                if (strcmp(n, "source") == 0) {
                    xmlChar *v = xmlGetProp(c, (const xmlChar *)"dev");
                    src = g_strdup((char *)v);
                    xmlFree(v);
                } else if (strcmp(n, "target") == 0) {
                    xmlChar *v = xmlGetProp(c, (const xmlChar *)"dev");
                    target = g_strdup((char *)v);
                    xmlFree(v);
                } else if (strcmp(n, "serial") == 0) {
                    xmlChar *v = xmlNodeGetContent(c);
                    serial = g_strdup((char *)v);
                    xmlFree(v);
                } else if (strcmp(n, "readonly") == 0) {
                    ro = TRUE;
                }
            }
            if (!src || !target || !g_str_has_prefix(src, "/dev/"))
                continue;
            /* the qube's own disks take a..d (root, private, volatile,
             * kernel modules) */
            const char *letter = g_str_has_prefix(target, "xvd")  ? target + 3
                                 : g_str_has_prefix(target, "vd") ? target + 2
                                                                  : NULL;
            if (letter && letter[0] >= 'a' && letter[0] <= 'd' && !letter[1])
                continue;
            gboolean own = FALSE;
            for (guint v = 0; serial && v < dom->volumes->len && !own; v++)
                own = strcmp(((QubesDomainVolume *)dom->volumes->pdata[v])
                                 ->vol->name,
                             serial) == 0;
            if (own)
                continue;
            QubesBlockAttachment *a = g_new0(QubesBlockAttachment, 1);
            a->frontend = qubes_domain_ref(dom);
            a->port_id = g_strdup(src + 5);
            for (char *p = a->port_id; *p; p++)
                if (*p == '/')
                    *p = '_';
            a->path = g_steal_pointer(&src);
            a->target = g_steal_pointer(&target);
            a->devtype = g_strdup("disk");
            a->read_only = ro;
            g_ptr_array_add(rt->blocks, a);
        }
    }
    xmlFreeDoc(doc);
}

/* ---- devices at start (hotplug.h) ---- */

static void start_dev_free(StartDev *d)
{
    g_free(d->devclass);
    qubes_vdev_clear(&d->dev);
    g_free(d->path);
    g_free(d->frontend_dev);
    g_free(d->devtype);
    g_ptr_array_unref(d->options);
    g_free(d);
}

static gboolean start_dev_refuse(QubesDevAssignment *a, QubesDomain *dom,
                                 const char *why, GError **error)
{
    gboolean required = a->mode == QUBES_DEV_REQUIRED;
    g_autofree char *v = qubes_vdev_str(&a->dev);
    g_autofree char *cls = strcmp(a->dev.devclass, "pci") == 0
                               ? g_strdup("PCI")
                               : g_strdup(a->dev.devclass);
    cls[0] = g_ascii_toupper(cls[0]);
    if (!required) {
        g_message("%s: %s device %s not attached at start: %s", dom->name, cls,
                  v, why);
        return TRUE;
    }
    g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                "%s device %s not available: %s", cls, v, why);
    return FALSE;
}

static gboolean is_bool_true(const char *v)
{
    return v && (g_ascii_strcasecmp(v, "yes") == 0 ||
                 g_ascii_strcasecmp(v, "true") == 0 ||
                 g_ascii_strcasecmp(v, "on") == 0 || strcmp(v, "1") == 0);
}

/* Whether assignment @a (of a dom0 block device) names @b: its port and
 * identity, each possibly "*" (the reference's matches()). */
static gboolean block_matches(const QubesDevAssignment *a,
                              const QubesHostBlock *b)
{
    return (strcmp(a->dev.port_id, "*") == 0 ||
            strcmp(a->dev.port_id, b->info->dev.port_id) == 0) &&
           (strcmp(a->dev.device_id, "*") == 0 ||
            strcmp(a->dev.device_id, b->info->dev.device_id) == 0);
}

GPtrArray *rt_start_devices(QubesRuntime *rt, QubesDomain *dom, GError **error)
{
    GPtrArray *out =
        g_ptr_array_new_with_free_func((GDestroyNotify)start_dev_free);
    g_autoptr(GPtrArray) blocks = NULL;
    g_autoptr(GPtrArray) pcis = NULL;
    for (guint i = 0; i < dom->assignments->len; i++) {
        QubesDevAssignment *a = dom->assignments->pdata[i];
        if (a->mode != QUBES_DEV_REQUIRED && a->mode != QUBES_DEV_AUTO)
            continue;
        gboolean ok = TRUE;
        if (strcmp(a->dev.backend, "dom0") != 0) {
            ok = start_dev_refuse(a, dom,
                                  "devices of other qubes need their agents, "
                                  "which this system has not",
                                  error);
        } else if (strcmp(a->dev.devclass, "block") == 0) {
            if (!blocks)
                blocks = qubes_host_block_list();
            QubesHostBlock *b = NULL;
            for (guint k = 0; k < blocks->len && !b; k++)
                if (block_matches(a, blocks->pdata[k]))
                    b = blocks->pdata[k];
            const QubesBlockAttachment *used =
                b ? qubes_runtime_block_attached(rt, b->info->dev.port_id)
                  : NULL;
            if (!b) {
                ok = start_dev_refuse(a, dom, "no such device", error);
            } else if (b->in_use) {
                g_autofree char *why =
                    g_strdup_printf("the host uses it (%s)", b->in_use);
                ok = start_dev_refuse(a, dom, why, error);
            } else if (used) {
                g_autofree char *why =
                    g_strdup_printf("attached to '%s'", used->frontend->name);
                ok = start_dev_refuse(a, dom, why, error);
            } else {
                StartDev *d = g_new0(StartDev, 1);
                d->devclass = g_strdup("block");
                qubes_vdev_copy(&d->dev, &b->info->dev);
                d->path = g_strdup(b->path);
                d->frontend_dev =
                    g_strdup(qubes_dev_assignment_option(a, "frontend-dev"));
                d->devtype =
                    g_strdup(qubes_dev_assignment_option(a, "devtype"));
                d->read_only =
                    b->read_only ||
                    is_bool_true(qubes_dev_assignment_option(a, "read-only"));
                d->required = a->mode == QUBES_DEV_REQUIRED;
                d->options = g_ptr_array_ref(a->options);
                g_ptr_array_add(out, d);
            }
        } else if (strcmp(a->dev.devclass, "pci") == 0) {
            if (!pcis)
                pcis = qubes_host_pci_list();
            QubesHostPci *p = NULL;
            for (guint k = 0; k < pcis->len && !p; k++) {
                QubesHostPci *c = pcis->pdata[k];
                if (strcmp(a->dev.port_id, c->info->dev.port_id) == 0)
                    p = c;
            }
            const QubesPciAttachment *used =
                p ? qubes_runtime_pci_attached(rt, p->info->dev.port_id) : NULL;
            if (!p) {
                ok = start_dev_refuse(a, dom, "no such device", error);
            } else if (used) {
                g_autofree char *why =
                    g_strdup_printf("attached to '%s'", used->frontend->name);
                ok = start_dev_refuse(a, dom, why, error);
            } else if (rt->cfg.hv != QUBES_HV_XEN && !qubes_host_has_iommu()) {
                /* VFIO needs one; Xen owns the IOMMU itself, so dom0's
                 * sysfs shows none there */
                ok = start_dev_refuse(a, dom,
                                      "this host has no IOMMU "
                                      "(/sys/kernel/iommu_groups is empty), "
                                      "so it cannot be given to a qube",
                                      error);
            } else {
                StartDev *d = g_new0(StartDev, 1);
                d->devclass = g_strdup("pci");
                qubes_vdev_copy(&d->dev, &p->info->dev);
                d->path = g_strdup(p->sysfs_name);
                d->no_strict_reset = is_bool_true(
                    qubes_dev_assignment_option(a, "no-strict-reset"));
                d->permissive =
                    is_bool_true(qubes_dev_assignment_option(a, "permissive"));
                d->required = a->mode == QUBES_DEV_REQUIRED;
                d->options = g_ptr_array_ref(a->options);
                g_ptr_array_add(out, d);
            }
        } else {
            ok = start_dev_refuse(a, dom, "this class is not served here",
                                  error);
        }
        if (!ok) {
            g_ptr_array_unref(out);
            return NULL;
        }
    }
    return out;
}

/* ---- a device appearing on the host ----
 *
 * The reference's device_list_change (ext/utils.py): a dom0 block
 * device that appears goes to the running qube whose assignment
 * (required or auto-attach) matches it, by the hot-plug Attach uses,
 * firing device-pre-attach and device-attach. When the assignments of
 * several running qubes match it, or the one that matches is
 * ask-to-attach, the reference asks the user through the GUI qube's
 * device agent; this system has none to ask, so the device is left for
 * the user to attach, and the log says why. */

typedef struct {
    QubesDomain *dom;
    char *device, *options;
} AppearJob;

static void appear_job_free(AppearJob *j)
{
    qubes_domain_unref(j->dom);
    g_free(j->device);
    g_free(j->options);
    g_free(j);
}

static void appeared_attached(GObject *src, GAsyncResult *res, gpointer data)
{
    AppearJob *j = data;
    GError *err = NULL;
    if (g_task_propagate_boolean(G_TASK(res), &err)) {
        rt_fire(j->dom, "device-attach:block", "device", j->device, "options",
                j->options, NULL);
    } else {
        g_warning("%s: block device %s not attached: %s", j->dom->name,
                  j->device, err->message);
        g_error_free(err);
    }
    appear_job_free(j);
}

/* 2: port and identity named, 1: one of them, 0: any device. */
static int specificity(const QubesDevAssignment *a)
{
    return (strcmp(a->dev.port_id, "*") != 0) +
           (strcmp(a->dev.device_id, "*") != 0);
}

static void block_appeared(QubesRuntime *rt, QubesHostBlock *b)
{
    const char *port = b->info->dev.port_id;
    if (b->in_use || qubes_runtime_block_attached(rt, port))
        return;
    QubesDomain *target = NULL;
    QubesDevAssignment *best = NULL;
    g_autoptr(GString) who = g_string_new(NULL);
    for (guint i = 0; i < rt->app->domains->len; i++) {
        QubesDomain *d = rt->app->domains->pdata[i];
        if (d->power != QUBES_POWER_RUNNING && d->power != QUBES_POWER_PAUSED &&
            d->power != QUBES_POWER_SUSPENDED)
            continue;
        QubesDevAssignment *mine = NULL;
        for (guint k = 0; k < d->assignments->len; k++) {
            QubesDevAssignment *a = d->assignments->pdata[k];
            if (a->mode != QUBES_DEV_MANUAL &&
                strcmp(a->dev.devclass, "block") == 0 &&
                strcmp(a->dev.backend, "dom0") == 0 && block_matches(a, b) &&
                (!mine || specificity(a) > specificity(mine)))
                mine = a;
        }
        if (!mine)
            continue;
        g_string_append_printf(who, "%s'%s'", who->len ? ", " : "", d->name);
        if (!target) {
            target = d;
            best = mine;
        }
    }
    if (!target)
        return;
    g_autofree char *v = qubes_vdev_str(&b->info->dev);
    if (strchr(who->str, ',')) {
        g_message("block device %s matches the assignments of %s: not "
                  "attached (there is no device agent here to ask the user "
                  "which qube gets it)",
                  v, who->str);
        return;
    }
    if (best->mode == QUBES_DEV_ASK) {
        g_message("%s: block device %s is ask-to-attach: not attached (there "
                  "is no device agent here to ask the user)",
                  target->name, v);
        return;
    }
    g_autofree char *opts = qubes_py_dict(best->options);
    const char *kw[] = {"device", v, "options", opts, NULL};
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) fx = qubes_emitter_fire(
        &target->emitter, "device-pre-attach:block", kw, &err);
    if (!fx) {
        g_warning("%s: block device %s not attached: %s", target->name, v,
                  err->message);
        return;
    }
    AppearJob *j = g_new0(AppearJob, 1);
    j->dom = qubes_domain_ref(target);
    j->device = g_strdup(v);
    j->options = g_steal_pointer(&opts);
    g_message("%s: attaching block device %s, which appeared", target->name, v);
    qubes_runtime_attach_block(
        rt, target, port, b->path,
        qubes_dev_assignment_option(best, "frontend-dev"),
        b->read_only ||
            is_bool_true(qubes_dev_assignment_option(best, "read-only")),
        qubes_dev_assignment_option(best, "devtype"), appeared_attached, j);
}

void qubes_runtime_blocks_appeared(QubesRuntime *rt, GPtrArray *blocks,
                                   GPtrArray *ports)
{
    for (guint i = 0; i < ports->len; i++)
        for (guint k = 0; k < blocks->len; k++) {
            QubesHostBlock *b = blocks->pdata[k];
            if (strcmp(b->info->dev.port_id, ports->pdata[i]) == 0)
                block_appeared(rt, b);
        }
}

void rt_start_dev_attach(QubesRuntime *rt, QubesDomain *dom, StartDev *d,
                         GAsyncReadyCallback cb, gpointer data)
{
    if (strcmp(d->devclass, "block") == 0) {
        qubes_runtime_attach_block(rt, dom, d->dev.port_id, d->path,
                                   d->frontend_dev, d->read_only, d->devtype,
                                   cb, data);
        return;
    }
    qubes_runtime_attach_pci(rt, dom, d->dev.port_id, d->path,
                             d->no_strict_reset, d->permissive, cb, data);
}
