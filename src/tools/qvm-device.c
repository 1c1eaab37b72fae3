/* qvm-device, qvm-block, qvm-pci: devices of qubes, as the Qubes
 * client's qvm-device (qubesadmin/tools/qvm_device.py with the
 * client's device_protocol and DeviceCollection):
 *
 *   qvm-device DEVICE_CLASS [list|ls|l] [-s] [--with-sbdf] [--all |
 *              VMNAME...]
 *   qvm-device DEVICE_CLASS attach|at|a [-o OPT=VALUE]... [--ro] [-p]
 *              VMNAME BACKEND:PORT[:DEVICE_ID]
 *   qvm-device DEVICE_CLASS detach|d|dt VMNAME [BACKEND:PORT[:DEVICE_ID]]
 *   qvm-device DEVICE_CLASS assign|s [-o OPT=VALUE]... [--ro]
 *              [--ask | --required] [--port | --device]
 *              VMNAME BACKEND:PORT[:DEVICE_ID]
 *   qvm-device DEVICE_CLASS unassign|u [--port | --device] VMNAME
 *              [BACKEND:PORT[:DEVICE_ID]]
 *   qvm-device DEVICE_CLASS info|i [BACKEND:PORT]
 *   qvm-device --list-device-classes
 *
 * qvm-block, qvm-pci (and any qvm-CLASS) are this program with the
 * class taken from its name. A device named on the command line is
 * looked up among those its backend exposes before anything is done,
 * with the client's refusals; a device is described as the client
 * describes it ("CATEGORY: VENDOR PRODUCT", the category from the
 * client's table of interface patterns, else the class names of the
 * PCI or USB id database); qubesd's refusal is "Error: MESSAGE", exit 1.
 *
 * Deliberately different: where the client ends in an uncaught Python
 * exception (an option without '=', an unknown read-only value) we
 * print its last line and exit 1. */
#include "argparse.h"
#include "devices.h"
#include "qubes-app.h"
#include "qubes-args.h"
#include "qubesadmin.h"
#include "tool.h"

#include <stdio.h>
#include <string.h>

static ArgsParser *main_parser;
static const char *devclass;
static QaApp *app;

/* A device as the client holds one: a VirtualDevice (port and device
 * id), or a DeviceInfo from a backend's listing, or an UnknownDevice
 * (a DeviceInfo of nothing the backend lists). */
typedef struct {
    char *backend; /* "*": any */
    char *port;    /* "*": any */
    char *devid;   /* NULL: not set */
    gboolean info, unknown;
    GPtrArray *props, *data; /* name, value pairs (a listed DeviceInfo) */
} Dev;

static void dev_free(gpointer p)
{
    Dev *d = p;
    if (!d)
        return;
    g_free(d->backend);
    g_free(d->port);
    g_free(d->devid);
    if (d->props)
        g_ptr_array_unref(d->props);
    if (d->data)
        g_ptr_array_unref(d->data);
    g_free(d);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Dev, dev_free)

static Dev *dev_new(const char *backend, const char *port, const char *devid,
                    gboolean info, gboolean unknown)
{
    Dev *d = g_new0(Dev, 1);
    d->backend = g_strdup(backend ? backend : "*");
    d->port = g_strdup(port ? port : "*");
    d->devid = g_strdup(devid);
    d->info = info;
    d->unknown = unknown;
    return d;
}

static const char unknown_id[] = "0000:0000::?******";

/* .device_id: a DeviceInfo without one has the unknown id, a virtual
 * device "*". */
static const char *dev_id(const Dev *d)
{
    if (d->info)
        return d->devid && *d->devid ? d->devid : unknown_id;
    return d->devid ? d->devid : "*";
}

/* VirtualDevice __eq__: the same port and device id. */
static gboolean dev_equal(const Dev *a, const Dev *b)
{
    return strcmp(a->backend, b->backend) == 0 &&
           strcmp(a->port, b->port) == 0 && strcmp(dev_id(a), dev_id(b)) == 0;
}

static char *dev_str(const Dev *d)
{
    return g_strdup_printf("%s:%s:%s", d->backend, d->port, dev_id(d));
}

/* repr_for_qarg */
static char *dev_qarg(const Dev *d)
{
    return qubes_dev_repr_for_qarg(d->backend, d->port, dev_id(d));
}

/* ---- the id databases' class names (DeviceInterface._load_classes) ---- */

static GHashTable *load_classes(const char *bus)
{
    static GHashTable *cache[2];
    int which = strcmp(bus, "usb") == 0;
    if (cache[which])
        return cache[which];
    GHashTable *out =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    cache[which] = out;
    /* the client reads /usr/share/hwdata; Debian keeps them in misc */
    g_autofree char *a = g_strdup_printf("/usr/share/hwdata/%s.ids", bus);
    g_autofree char *b = g_strdup_printf("/usr/share/misc/%s.ids", bus);
    g_autofree char *text = NULL;
    if (!g_file_get_contents(a, &text, NULL, NULL) &&
        !g_file_get_contents(b, &text, NULL, NULL))
        return out;
    g_autofree char *klass = NULL, *sub = NULL;
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    for (char **l = lines; *l; l++) {
        g_strchomp(*l);
        if (g_str_has_prefix(*l, "\t\t") && klass && sub) {
            g_auto(GStrv) f = g_strsplit(*l + 2, " ", 3);
            if (g_strv_length(f) == 3)
                g_hash_table_replace(
                    out, g_strdup_printf("%s%s%s", klass, sub, f[0]),
                    g_strdup(f[2]));
        } else if ((*l)[0] == '\t' && klass) {
            g_auto(GStrv) f = g_strsplit(*l + 1, " ", 3);
            if (g_strv_length(f) == 3) {
                g_free(sub);
                sub = g_strdup(f[0]);
                g_hash_table_replace(out, g_strdup_printf("%s%s**", klass, sub),
                                     g_strdup(f[2]));
            }
        } else if (g_str_has_prefix(*l, "C ")) {
            g_auto(GStrv) f = g_strsplit(*l, " ", 4);
            if (g_strv_length(f) == 4) {
                g_free(klass);
                klass = g_strdup(f[1]);
                g_hash_table_replace(out, g_strdup_printf("%s****", klass),
                                     g_strdup(f[3]));
                g_clear_pointer(&sub, g_free);
            }
        }
    }
    return out;
}

static gboolean meaningless(const char *name, gboolean subclass)
{
    static const char *const words[] = {"none", "unused", "undefined", NULL};
    if (!name)
        return TRUE;
    g_autofree char *l = g_ascii_strdown(name, -1);
    return g_strv_contains(words, l) ||
           (subclass && (strcmp(l, "no subclass") == 0 ||
                         strcmp(l, "vendor specific subclass") == 0));
}

/* str(DeviceInterface) of a 7-character code (new). */
static char *interface_str(const char *code)
{
    char c = code[0];
    if (c == 'b')
        return g_strdup("Block Device");
    if (c == 'm')
        return g_strdup("Microphone");
    if (c != 'p' && c != 'u')
        return g_strdup(code);
    const char *bus = c == 'p' ? "pci" : "usb";
    GHashTable *names = load_classes(bus);
    g_autofree char *k1 = g_strdup_printf("%.4s**", code + 1);
    const char *r = g_hash_table_lookup(names, k1);
    if (meaningless(r, TRUE)) {
        r = g_hash_table_lookup(names, code + 1);
        if (meaningless(r, FALSE)) {
            g_autofree char *k3 = g_strdup_printf("%.2s****", code + 1);
            r = g_hash_table_lookup(names, k3);
            if (meaningless(r, FALSE) ||
                g_ascii_strcasecmp(r, "vendor specific class") == 0)
                r = NULL;
        }
    }
    if (!r)
        return g_strdup_printf("%s device", c == 'p' ? "PCI" : "USB");
    return g_strdup(r);
}

/* DeviceCategory.from_str(): the best-scoring of the client's patterns,
 * in its order. */
static const char *category(const char *code)
{
    static const struct {
        const char *name;
        const char *patterns[4];
    } cats[] = {
        {"Network", {"u02****", "p0703**", "p02****", "ue0****"}},
        {"Keyboard", {"u03**01", "p0900**"}},
        {"Mouse", {"u03**02", "p0902**"}},
        {"Input", {"u03****", "p09****"}},
        {"Printer", {"u07****"}},
        {"Camera", {"p0903**", "u06****", "u0e****"}},
        {"Microphone", {"m******"}},
        {"Audio", {"p0403**", "p0401**", "p0408**", "u01****"}},
        {"Multimedia", {"u10****", "p03****", "p04****"}},
        {"USB_Storage", {"u08****"}},
        {"Block_Storage", {"b******"}},
        {"Storage", {"b******", "u08****", "p01****"}},
        {"Bluetooth", {"ue00101", "p0d11**"}},
        {"Smart_Card_Readers", {"u0b****"}},
        {"Display", {"p0300**", "p0380**"}},
        {"Memory", {"p05****"}},
        {"PCI_Bridge", {"p06****"}},
        {"Docking_Station", {"p0a****"}},
        {"Processor", {"p0b****", "p40****"}},
        {"PCI_Serial_Bus", {"p0c****"}},
        {"PCI_USB", {"p0c03**"}},
    };
    const char *best = "Other";
    int best_score = 0;
    if (strlen(code) != 7)
        return best;
    for (guint c = 0; c < G_N_ELEMENTS(cats); c++)
        for (guint p = 0; p < 4 && cats[c].patterns[p]; p++) {
            int score = 0;
            for (guint k = 0; k < 7; k++) {
                if (code[k] == cats[c].patterns[p][k]) {
                    score++;
                } else if (cats[c].patterns[p][k] != '*') {
                    score = -1;
                    break;
                }
            }
            if (score > best_score) {
                best_score = score;
                best = cats[c].name;
            }
        }
    return best;
}

static const char *prop(const Dev *d, const char *name)
{
    const char *v = d->props ? qubes_dev_pairs_get(d->props, name) : NULL;
    return v && *v && strcmp(v, "unknown") != 0 ? v : NULL;
}

/* .description */
static char *dev_description(const Dev *d)
{
    if (!d->info)
        return g_strdup(d->devid && strcmp(d->devid, "*") && *d->devid
                            ? d->devid
                            : "any device");
    const char *prod = prop(d, "product");
    if (!prod)
        prod = prop(d, "name");
    if (!prod)
        prod = prop(d, "serial");
    const char *parent =
        d->props ? qubes_dev_pairs_get(d->props, "parent_port_id") : NULL;
    if (!prod && parent)
        return g_strdup_printf("sub-device of %s:%s", d->backend, parent);
    g_autofree char *unknown = g_strdup_printf("unknown %s device", devclass);
    const char *vendor = prop(d, "vendor");
    if (!vendor)
        vendor = prop(d, "manufacturer");
    if (!vendor)
        vendor = "unknown vendor";
    const char *ifs =
        d->props ? qubes_dev_pairs_get(d->props, "interfaces") : NULL;
    g_autoptr(GPtrArray) codes = g_ptr_array_new_with_free_func(g_free);
    for (gsize i = 0; ifs && i + 7 <= strlen(ifs); i += 7)
        g_ptr_array_add(codes, g_strndup(ifs + i, 7));
    if (!codes->len)
        g_ptr_array_add(codes, g_strdup("?******"));
    g_autofree char *cat = NULL;
    for (guint i = 0; i < codes->len && !cat; i++)
        if (strcmp(category(codes->pdata[i]), "Other") != 0)
            cat = g_strdup(category(codes->pdata[i]));
    g_autofree char *plain = g_strdup_printf("%s device", devclass);
    for (char *p = plain; *p && *p != ' '; p++)
        *p = g_ascii_toupper(*p);
    for (guint i = 0; i < codes->len && !cat; i++) {
        g_autofree char *s = interface_str(codes->pdata[i]);
        if (strcmp(s, plain) != 0) {
            cat = g_strdup(s);
            for (char *p = cat; *p; p++)
                if (*p == '_')
                    *p = ' ';
        }
    }
    return g_strdup_printf("%s: %s %s", cat ? cat : plain, vendor,
                           prod ? prod : unknown);
}

/* ---- what qubesd says ---- */

static GPtrArray *call_lines(const char *what, const char *vm)
{
    g_autofree char *m =
        g_strdup_printf("admin.vm.device.%s.%s", devclass, what);
    g_autoptr(GError) err = NULL;
    GPtrArray *lines = qa_call_lines(m, vm, NULL, &err);
    if (!lines)
        qubes_args_print_exception(err);
    return lines;
}

/* get_exposed_devices() of @backend, once (Dev*). */
static GPtrArray *exposed(const char *backend)
{
    static GHashTable *cache;
    if (!cache)
        cache = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                      (GDestroyNotify)g_ptr_array_unref);
    GPtrArray *out = g_hash_table_lookup(cache, backend);
    if (out)
        return out;
    out = g_ptr_array_new_with_free_func(dev_free);
    g_hash_table_insert(cache, g_strdup(backend), out);
    g_autoptr(GPtrArray) lines = call_lines("Available", backend);
    for (guint i = 0; i < lines->len; i++) {
        const char *line = lines->pdata[i];
        const char *sp = strchr(line, ' ');
        g_autofree char *head =
            sp ? g_strndup(line, (gsize)(sp - line)) : g_strdup(line);
        const char *colon = strchr(head, ':');
        g_autofree char *port =
            colon ? g_strndup(head, (gsize)(colon - head)) : g_strdup(head);
        Dev *d = dev_new(backend, port, colon ? colon + 1 : NULL, TRUE, FALSE);
        d->props = g_ptr_array_new_with_free_func(g_free);
        d->data = g_ptr_array_new_with_free_func(g_free);
        g_autoptr(GError) err = NULL;
        if (sp && !qubes_dev_unpack(sp + 1, strlen(sp + 1), d->props, d->data,
                                    &err)) {
            /* the client prints why and takes it as unknown */
            fprintf(stderr, "%s\n", tool_error_message(err));
            d->unknown = TRUE;
            g_ptr_array_set_size(d->props, 0);
            g_ptr_array_set_size(d->data, 0);
        }
        const char *id = qubes_dev_pairs_get(d->props, "device_id");
        if (id) {
            g_free(d->devid);
            d->devid = g_strdup(id);
        }
        g_ptr_array_add(out, d);
    }
    return out;
}

/* backend.devices[devclass][port]: the listed device, else a new
 * UnknownDevice of the port. */
static Dev *lookup(const char *backend, const char *port, gboolean *is_new)
{
    GPtrArray *devs = exposed(backend);
    for (guint i = 0; i < devs->len; i++)
        if (strcmp(((Dev *)devs->pdata[i])->port, port) == 0) {
            *is_new = FALSE;
            return devs->pdata[i];
        }
    *is_new = TRUE;
    return dev_new(backend, port, NULL, TRUE, TRUE);
}

/* An assignment: its virtual device, mode and options. */
typedef struct {
    Dev *dev;
    char *mode;
    GPtrArray *opts; /* name, value pairs */
    const char *frontend;
} Assign;

static void assign_free(gpointer p)
{
    Assign *a = p;
    dev_free(a->dev);
    g_free(a->mode);
    g_ptr_array_unref(a->opts);
    g_free(a);
}

/* get_attached_devices() / get_assigned_devices() of @vm (Assign*). */
static GPtrArray *assignments(const char *what, const char *vm)
{
    GPtrArray *out = g_ptr_array_new_with_free_func(assign_free);
    g_autoptr(GPtrArray) lines = call_lines(what, vm);
    for (guint i = 0; i < lines->len; i++) {
        const char *line = lines->pdata[i];
        const char *sp = strchr(line, ' ');
        g_autofree char *head =
            sp ? g_strndup(line, (gsize)(sp - line)) : g_strdup(line);
        /* VirtualDevice.from_qarg: BACKEND+PORT+ID */
        char *plus = strchr(head, '+');
        if (!plus)
            continue;
        *plus = '\0';
        char *ident = plus + 1;
        for (char *p = ident; *p; p++)
            if (*p == '+')
                *p = ':';
        char *c = strchr(ident, ':');
        if (c)
            *c = '\0';
        const char *port = strcmp(ident, "_") ? ident : "*";
        const char *devid = c && strcmp(c + 1, "_") ? c + 1 : c ? "*" : NULL;
        Assign *a = g_new0(Assign, 1);
        a->dev = dev_new(strcmp(head, "_") ? head : "*", port,
                         devid && *devid ? devid : NULL, FALSE, FALSE);
        a->opts = g_ptr_array_new_with_free_func(g_free);
        a->frontend = vm;
        g_autoptr(GPtrArray) props = g_ptr_array_new_with_free_func(g_free);
        g_autoptr(GError) err = NULL;
        if (sp &&
            !qubes_dev_unpack(sp + 1, strlen(sp + 1), props, a->opts, &err)) {
            assign_free(a);
            qubes_args_print_exception(err);
        }
        const char *id = qubes_dev_pairs_get(props, "device_id");
        if (id) {
            g_free(a->dev->devid);
            a->dev->devid = g_strdup(id);
        }
        const char *mode = qubes_dev_pairs_get(props, "mode");
        a->mode = g_strdup(mode ? mode : "manual");
        g_ptr_array_add(out, a);
    }
    return out;
}

/* DeviceAssignment.matches() */
static gboolean assign_matches(const Dev *a, const Dev *d)
{
    return strcmp(a->backend, d->backend) == 0 &&
           (strcmp(a->port, "*") == 0 || strcmp(a->port, d->port) == 0) &&
           (strcmp(dev_id(a), "*") == 0 || strcmp(dev_id(a), dev_id(d)) == 0);
}

/* DeviceAssignment.devices: what @a stands for among the devices its
 * backend lists (new array of borrowed or owned Dev*, see @owned). */
static GPtrArray *assign_devices(const Dev *a, GPtrArray *owned)
{
    GPtrArray *out = g_ptr_array_new();
    if (strcmp(a->backend, "*") == 0)
        return out;
    if (strcmp(a->port, "*") != 0) {
        gboolean is_new;
        Dev *d = lookup(a->backend, a->port, &is_new);
        if (is_new)
            g_ptr_array_add(owned, d);
        if (d->unknown || strcmp(dev_id(a), dev_id(d)) == 0 ||
            strcmp(dev_id(a), "*") == 0) {
            g_ptr_array_add(out, d);
            return out;
        }
    }
    if (strcmp(dev_id(a), unknown_id) == 0)
        return out;
    GPtrArray *devs = exposed(a->backend);
    for (guint i = 0; i < devs->len; i++)
        if (assign_matches(a, devs->pdata[i]))
            g_ptr_array_add(out, devs->pdata[i]);
    return out;
}

/* _frontend_desc(): "VM (MODE)" or "VM (MODE: K=V, ...)". */
static char *frontend_desc(const Assign *a, gboolean virtual)
{
    const char *mode = virtual ? a->mode : "attached";
    if (!a->opts->len)
        return g_strdup_printf("%s (%s)", a->frontend, mode);
    GString *s = g_string_new(NULL);
    g_string_printf(s, "%s (%s: ", a->frontend, mode);
    for (guint i = 0; i + 1 < a->opts->len; i += 2)
        g_string_append_printf(s, "%s%s=%s", i ? ", " : "",
                               (char *)a->opts->pdata[i],
                               (char *)a->opts->pdata[i + 1]);
    g_string_append_c(s, ')');
    return g_string_free(s, FALSE);
}

/* ---- list ---- */

typedef struct {
    Dev *dev;
    gboolean assignment;
    GPtrArray *frontends; /* char* */
} Line;

static void line_free(gpointer p)
{
    Line *l = p;
    g_ptr_array_unref(l->frontends);
    g_free(l);
}

/* _load_lines(): the devices of @domains (NULL: every qube), present
 * (@actual) or assigned, each with the qubes that have it. */
static void load_lines(GPtrArray *domains, gboolean actual, GPtrArray *lines,
                       GPtrArray *owned)
{
    GPtrArray *all = qa_app_domains(app);
    GPtrArray *from = domains && domains->len ? domains : all;
    g_autoptr(GPtrArray) devs = g_ptr_array_new();
    g_autoptr(GPtrArray) keep =
        g_ptr_array_new_with_free_func((GDestroyNotify)g_ptr_array_unref);
    for (guint i = 0; i < from->len; i++) {
        const char *vm = qa_vm_name(from->pdata[i]);
        if (actual) {
            GPtrArray *att = assignments("Attached", vm);
            g_ptr_array_add(keep, att);
            for (guint k = 0; k < att->len; k++) {
                g_autoptr(GPtrArray) ds =
                    assign_devices(((Assign *)att->pdata[k])->dev, owned);
                /* assignment.device: one, else unknown */
                Dev *d = ds->len == 1 ? ds->pdata[0] : NULL;
                if (!d) {
                    Dev *a = ((Assign *)att->pdata[k])->dev;
                    d = dev_new(a->backend, a->port, dev_id(a), TRUE, TRUE);
                    g_ptr_array_add(owned, d);
                }
                g_ptr_array_add(devs, d);
            }
            GPtrArray *ex = exposed(vm);
            for (guint k = 0; k < ex->len; k++)
                g_ptr_array_add(devs, ex->pdata[k]);
        } else {
            GPtrArray *as = assignments("Assigned", vm);
            g_ptr_array_add(keep, as);
            for (guint k = 0; k < as->len; k++) {
                /* the line outlives the listing: a copy */
                Dev *a = ((Assign *)as->pdata[k])->dev;
                Dev *d = dev_new(a->backend, a->port, a->devid, FALSE, FALSE);
                g_ptr_array_add(owned, d);
                g_ptr_array_add(devs, d);
            }
        }
    }
    /* a set: one line per (port, device id) */
    g_autoptr(GPtrArray) uniq = g_ptr_array_new();
    for (guint i = 0; i < devs->len; i++) {
        gboolean seen = FALSE;
        for (guint k = 0; k < uniq->len && !seen; k++)
            seen = dev_equal(uniq->pdata[k], devs->pdata[i]);
        if (!seen)
            g_ptr_array_add(uniq, devs->pdata[i]);
    }
    for (guint i = 0; i < uniq->len; i++) {
        Line *l = g_new0(Line, 1);
        l->dev = uniq->pdata[i];
        l->assignment = !actual;
        l->frontends = g_ptr_array_new_with_free_func(g_free);
        for (guint v = 0; v < all->len; v++) {
            const char *vm = qa_vm_name(all->pdata[v]);
            if (strcmp(vm, l->dev->backend) == 0)
                continue;
            g_autoptr(GPtrArray) as =
                assignments(actual ? "Attached" : "Assigned", vm);
            for (guint k = 0; k < as->len; k++) {
                Assign *a = as->pdata[k];
                gboolean hit = FALSE;
                if (actual) {
                    g_autoptr(GPtrArray) ds = assign_devices(a->dev, owned);
                    for (guint j = 0; j < ds->len && !hit; j++)
                        hit = dev_equal(ds->pdata[j], l->dev);
                } else {
                    hit = assign_matches(a->dev, l->dev);
                }
                if (hit)
                    g_ptr_array_add(l->frontends, frontend_desc(a, !actual));
            }
        }
        g_ptr_array_add(lines, l);
    }
}

static gint row_cmp(gconstpointer a, gconstpointer b)
{
    char *const *x = *(char **const *)a, *const *y = *(char **const *)b;
    for (guint i = 0; x[i] && y[i]; i++) {
        int c = strcmp(x[i], y[i]);
        if (c)
            return c;
    }
    return 0;
}

static void cmd_list(ArgsNamespace *ns, GPtrArray *domains)
{
    gboolean sbdf = args_bool(ns, "with_sbdf") && strcmp(devclass, "pci") == 0;
    g_autoptr(GPtrArray) owned = g_ptr_array_new_with_free_func(dev_free);
    g_autoptr(GPtrArray) lines = g_ptr_array_new_with_free_func(line_free);
    load_lines(domains, TRUE, lines, owned);
    if (args_bool(ns, "assignments"))
        load_lines(NULL, FALSE, lines, owned);
    g_autoptr(GPtrArray) rows =
        g_ptr_array_new_with_free_func((GDestroyNotify)g_strfreev);
    for (guint i = 0; i < lines->len; i++) {
        Line *l = lines->pdata[i];
        GPtrArray *cells = g_ptr_array_new();
        g_ptr_array_add(
            cells, g_strdup_printf("%s:%s", l->dev->backend, l->dev->port));
        if (sbdf) {
            const char *s =
                l->dev->data ? qubes_dev_pairs_get(l->dev->data, "sbdf") : NULL;
            g_ptr_array_add(cells, g_strdup(s)); /* NULL: Python's None */
        }
        g_ptr_array_add(cells, dev_description(l->dev));
        GString *u = g_string_new(NULL);
        for (guint k = 0; k < l->frontends->len; k++)
            g_string_append_printf(u, "%s%s%s", k ? ", " : "",
                                   l->assignment ? "*" : "",
                                   (char *)l->frontends->pdata[k]);
        g_ptr_array_add(cells, g_string_free(u, FALSE));
        g_ptr_array_add(cells, NULL);
        g_ptr_array_add(rows, g_ptr_array_free(cells, FALSE));
    }
    if (sbdf) {
        /* an assignment's line has no SBDF: Python's sort meets the None
         * beside a device's line of the same port, else its join does */
        gboolean none = FALSE, clash = FALSE;
        for (guint i = 0; i < rows->len; i++) {
            char **r = rows->pdata[i];
            if (r[1])
                continue;
            none = TRUE;
            for (guint k = 0; k < i; k++)
                clash =
                    clash || strcmp(((char **)rows->pdata[k])[0], r[0]) == 0;
        }
        if (clash)
            qubes_args_exit_uncaught(
                "TypeError: '<' not supported between instances of "
                "'NoneType' and 'str'");
        if (none)
            qubes_args_exit_uncaught(
                "TypeError: sequence item 1: expected str instance, "
                "NoneType found");
    }
    g_ptr_array_sort(rows, row_cmp);
    guint ncol = sbdf ? 4 : 3;
    g_autoptr(Table) t =
        qa_isatty() ? (sbdf ? table_new(4, "BACKEND:DEVID", "SBDF",
                                        "DESCRIPTION", "USED BY", NULL)
                            : table_new(3, "BACKEND:DEVID", "DESCRIPTION",
                                        "USED BY", NULL))
                    : table_new(ncol, NULL);
    for (guint i = 0; i < rows->len; i++) {
        char **r = rows->pdata[i];
        if (sbdf)
            table_add(t, r[0], r[1], r[2], r[3], NULL);
        else
            table_add(t, r[0], r[1], r[2], NULL);
    }
    table_print(t);
}

/* ---- the device a command line names (DeviceAction) ---- */

static Dev *resolve_device(const char *rep, gboolean allow_unknown,
                           gboolean only_port)
{
    const char *colon = strchr(rep, ':');
    if (!colon)
        args_error(main_parser,
                   "expected a backend vm, port id and [optional] device id "
                   "combination like foo:bar[:baz] got %s",
                   rep);
    g_autofree char *backend = g_strndup(rep, (gsize)(colon - rep));
    if (strcmp(backend, "_") == 0 || strcmp(backend, "*") == 0)
        qubes_args_exit_uncaught(
            "AttributeError: 'NoneType' object has no attribute "
            "'devices'");
    if (!qa_app_domain(app, backend))
        qubes_args_error_runtime(main_parser, 1, "no such backend vm!");
    const char *ident = colon + 1;
    const char *c2 = strchr(ident, ':');
    g_autofree char *port =
        c2 ? g_strndup(ident, (gsize)(c2 - ident)) : g_strdup(ident);
    g_autofree char *devid = c2 ? g_strdup(c2 + 1) : NULL;
    if (strcmp(port, "_") == 0) {
        g_free(port);
        port = g_strdup("*");
    }
    if (devid && strcmp(devid, "_") == 0) {
        g_free(devid);
        devid = g_strdup("*");
    }
    if (devid && !*devid)
        g_clear_pointer(&devid, g_free); /* "" is None */
    gboolean is_new;
    Dev *found = lookup(backend, port, &is_new);
    Dev *dev;
    if (!devid || strcmp(devid, dev_id(found)) == 0) {
        dev = is_new ? found
                     : dev_new(found->backend, found->port, found->devid, TRUE,
                               found->unknown);
        if (!is_new) {
            dev->props = g_ptr_array_ref(found->props);
            dev->data = g_ptr_array_ref(found->data);
        }
    } else if (only_port) {
        qubes_args_error_runtime(main_parser, 1,
                                 "this option works only for explicitly "
                                 "given port ID and does not support "
                                 "device ID");
    } else {
        if (is_new)
            dev_free(found);
        dev = dev_new(backend, port, devid, TRUE, TRUE);
    }
    if (!allow_unknown && dev->unknown) {
        g_autofree char *r = args_py_repr(dev->port);
        qubes_args_error_runtime(main_parser, 1,
                                 "backend vm %s doesn't expose %s device %s",
                                 dev->backend, devclass, r);
    }
    return dev;
}

/* ---- attach, detach, assign, unassign, info ---- */

/* dict(opt.split('=', 1) ...), --ro, and the older ro=: name, value
 * pairs in insertion order. */
static GPtrArray *options(ArgsNamespace *ns)
{
    GPtrArray *o = g_ptr_array_new_with_free_func(g_free);
    GPtrArray *given = args_list(ns, "option");
    for (guint i = 0; given && i < given->len; i++) {
        const char *opt = given->pdata[i];
        const char *eq = strchr(opt, '=');
        if (!eq)
            qubes_args_exit_uncaught(QUBES_ARGS_DICT_ERROR, i);
        g_autofree char *k = g_strndup(opt, (gsize)(eq - opt));
        tool_pairs_set(o, k, eq + 1);
    }
    if (args_bool(ns, "ro"))
        tool_pairs_set(o, "read-only", "yes");
    /* parse_ro_option_as_read_only() */
    for (guint j = 0; j + 1 < o->len; j += 2) {
        if (strcmp(o->pdata[j], "ro") != 0)
            continue;
        g_autofree char *v = g_ascii_strdown(o->pdata[j + 1], -1);
        const char *ro = NULL;
        if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes"))
            ro = "yes";
        else if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no"))
            ro = "no";
        if (!ro)
            qubes_args_exit_uncaught(
                "ValueError: Unknown `read-only` option value: %s",
                (char *)o->pdata[j + 1]);
        g_ptr_array_remove_range(o, j, 2);
        tool_pairs_set(o, "read-only", ro);
        break;
    }
    return o;
}

/* DeviceAssignment.serialize(): the virtual device, the mode, the
 * frontend, the options. */
static char *assignment_payload(const Dev *d, const char *mode,
                                const char *frontend, GPtrArray *opts)
{
    GString *s = g_string_new(NULL);
    g_autoptr(GError) err = NULL;
    gboolean ok = qubes_dev_pack(s, "device_id", dev_id(d), &err) &&
                  qubes_dev_pack(s, "port_id", d->port, &err) &&
                  qubes_dev_pack(s, "devclass", devclass, &err) &&
                  qubes_dev_pack(s, "backend_domain", d->backend, &err) &&
                  qubes_dev_pack(s, "mode", mode, &err) &&
                  qubes_dev_pack(s, "frontend_domain", frontend, &err);
    for (guint i = 0; ok && i + 1 < opts->len; i += 2) {
        g_autofree char *k = g_strconcat("_", (char *)opts->pdata[i], NULL);
        ok = qubes_dev_pack(s, k, opts->pdata[i + 1], &err);
    }
    if (!ok) {
        /* the client's sanitize_str() raises ProtocolError */
        qubes_args_exit_uncaught("qubesadmin.device_protocol.ProtocolError: %s",
                                 tool_error_message(err));
    }
    return g_string_free(s, FALSE);
}

static void call(const char *what, const char *vm, const Dev *d,
                 const char *payload)
{
    g_autofree char *m =
        g_strdup_printf("admin.vm.device.%s.%s", devclass, what);
    g_autofree char *arg = dev_qarg(d);
    g_autoptr(GError) err = NULL;
    g_autofree char *r = qa_call(m, vm, arg, payload, &err);
    if (!r)
        qubes_args_print_exception(err);
}

/* DeviceCollection.assign()'s checks, then Assign. */
static void do_assign(const char *vm, const Dev *d, const char *mode,
                      GPtrArray *opts)
{
    gboolean required = strcmp(mode, "required") == 0;
    gboolean automatic = required || strcmp(mode, "auto-attach") == 0 ||
                         strcmp(mode, "ask-to-attach") == 0;
    static const char *const can_require[] = {"pci", "testclass", "block",
                                              NULL};
    static const char *const can_auto[] = {"testclass", "usb", "block",
                                           "mic",       "pci", NULL};
    if (!g_strv_contains(can_require, devclass) && required)
        qubes_args_print_error(
            "%s", "Only pci and block devices can be assigned as required.");
    if (strcmp(devclass, "pci") == 0 && !required)
        qubes_args_print_error(
            "%s", "PCI devices cannot be assigned as not required.");
    if (!g_strv_contains(can_auto, devclass) && automatic) {
        qubes_args_print_error(
            "%s devices cannot be assigned to be automatically attached.",
            devclass);
    }
    g_autofree char *payload = assignment_payload(d, mode, vm, opts);
    call("Assign", vm, d, payload);
}

static void cmd_attach(ArgsNamespace *ns, const char *vm, Dev *dev)
{
    gboolean required = args_bool(ns, "required");
    const char *mode = required ? "required" : "manual";
    g_autoptr(GPtrArray) opts = options(ns);
    /* the assignment's device: the one its port holds */
    Dev virt = {.backend = dev->backend,
                .port = dev->port,
                .devid = (char *)dev_id(dev)};
    g_autofree char *s = dev_str(&virt);
    g_autofree char *why = NULL;
    g_autoptr(GPtrArray) owned = g_ptr_array_new_with_free_func(dev_free);
    g_autoptr(GPtrArray) ds = assign_devices(&virt, owned);
    if (ds->len > 1)
        why = g_strdup("Too many devices matches to assignment");
    else if (!ds->len || ((Dev *)ds->pdata[0])->unknown)
        why = g_strdup_printf("Unknown device, skipping attachment of device "
                              "from the port %s",
                              s);
    else if (!assign_matches(&virt, ds->pdata[0]))
        why = g_strdup_printf("Unrecognized identity, skipping attachment of "
                              "device from the port %s",
                              s);
    else if (strcmp(devclass, "pci") == 0)
        why = g_strdup("PCI devices cannot be attached manually, did you "
                       "mean `qvm-pci assign --required ...`");
    if (why && !required)
        qubes_args_print_error("%s", why);
    if (!why) {
        g_autofree char *payload = assignment_payload(&virt, mode, vm, opts);
        g_autofree char *m =
            g_strdup_printf("admin.vm.device.%s.Attach", devclass);
        g_autofree char *arg = dev_qarg(&virt);
        g_autoptr(GError) err = NULL;
        g_autofree char *r = qa_call(m, vm, arg, payload, &err);
        if (!r && !required)
            qubes_args_print_exception(err);
    }
    if (required)
        do_assign(vm, &virt, "required", opts);
}

static void cmd_detach(const char *vm, Dev *dev)
{
    g_autoptr(GPtrArray) owned = g_ptr_array_new_with_free_func(dev_free);
    if (dev && strcmp(dev->port, "*") != 0) {
        Dev virt = {.backend = dev->backend,
                    .port = dev->port,
                    .devid = (char *)dev_id(dev)};
        g_autofree char *s = dev_str(dev);
        g_autoptr(GPtrArray) ds = assign_devices(&virt, owned);
        if (ds->len > 1)
            qubes_args_print_error("%s",
                                   "Too many devices matches to assignment");
        Dev *actual = ds->len ? ds->pdata[0] : NULL;
        if (!actual) {
            actual =
                dev_new(virt.backend, virt.port, dev_id(&virt), TRUE, TRUE);
            g_ptr_array_add(owned, actual);
        }
        if (!assign_matches(&virt, actual)) {
            qubes_args_print_error("%s is not attached.", s);
        }
        if (actual->unknown) {
            qubes_args_print_error("%s not found.", s);
        }
        call("Detach", vm, &virt, NULL);
        return;
    }
    g_autoptr(GPtrArray) att = assignments("Attached", vm);
    gboolean none = TRUE;
    for (guint i = 0; i < att->len; i++) {
        Assign *a = att->pdata[i];
        if (dev) {
            g_autoptr(GPtrArray) ds = assign_devices(a->dev, owned);
            Dev *d = ds->len == 1 ? ds->pdata[0] : NULL;
            Dev virt = {.backend = dev->backend,
                        .port = dev->port,
                        .devid = (char *)dev_id(dev)};
            if (!d || !assign_matches(&virt, d))
                continue;
        }
        call("Detach", vm, a->dev, NULL);
        none = FALSE;
    }
    if (dev && none) {
        g_autofree char *s = dev_str(dev);
        qubes_args_print_error("%s is not attached.", s);
    }
}

/* Whether any interface of @d is on @vm's devices_denied list. */
static gboolean denied(QaVm *vm, const Dev *d)
{
    const char *list = qa_vm_prop_str(vm, "devices_denied");
    if (!list || strlen(list) % 7)
        return FALSE;
    const char *ifs =
        d->props ? qubes_dev_pairs_get(d->props, "interfaces") : NULL;
    if (!ifs || !*ifs)
        ifs = "?******";
    for (gsize i = 0; i + 7 <= strlen(list); i += 7)
        for (gsize j = 0; j + 7 <= strlen(ifs); j += 7) {
            gboolean m = TRUE;
            for (gsize k = 0; k < 7 && m; k++)
                m = list[i + k] == '*' || list[i + k] == ifs[j + k];
            if (m)
                return TRUE;
        }
    return FALSE;
}

static void cmd_assign(ArgsNamespace *ns, QaVm *vm, Dev *dev)
{
    const char *name = qa_vm_name(vm);
    Dev virt = {.backend = dev->backend,
                .port = dev->port,
                .devid = (char *)dev_id(dev)};
    if (args_bool(ns, "only_port")) {
        virt.devid = "*";
    } else if (strcmp(dev_id(dev), unknown_id) == 0) {
        g_autofree char *r = args_py_repr(dev->port);
        qubes_args_print_error("backend vm %s doesn't expose %s device %s",
                               dev->backend, devclass, r);
    }
    if (args_bool(ns, "only_device"))
        virt.port = "*";
    g_autoptr(GPtrArray) opts = options(ns);
    const char *mode = args_bool(ns, "ask")        ? "ask-to-attach"
                       : args_bool(ns, "required") ? "required"
                                                   : "auto-attach";
    do_assign(name, &virt, mode, opts);
    gboolean quiet = args_int(ns, "quiet") != 0;
    if (denied(vm, dev) && !quiet)
        printf("Warning: The assigned device is on the denied list.\n"
               "           Auto-attach will work, but make sure that the "
               "assignment is correct.\n");
    if (strcmp(qa_vm_state(vm), "Halted") == 0 || quiet ||
        strcmp(devclass, "pci") == 0)
        return;
    /* the attach hint: the devices it stands for not attached yet */
    Dev full = {.backend = dev->backend,
                .port = dev->port,
                .devid = (char *)dev_id(dev)};
    g_autoptr(GPtrArray) owned = g_ptr_array_new_with_free_func(dev_free);
    g_autoptr(GPtrArray) ds = assign_devices(&full, owned);
    g_autoptr(GPtrArray) att = assignments("Attached", name);
    GString *hint = g_string_new(NULL);
    for (guint i = 0; i + 1 < opts->len; i += 2)
        g_string_append_printf(hint, " -o %s=%s", (char *)opts->pdata[i],
                               (char *)opts->pdata[i + 1]);
    g_autoptr(GPtrArray) ports = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i < ds->len; i++) {
        Dev *d = ds->pdata[i];
        gboolean in = FALSE;
        for (guint k = 0; k < att->len && !in; k++)
            in = dev_equal(((Assign *)att->pdata[k])->dev, d);
        if (!in && !d->unknown)
            g_ptr_array_add(ports, g_strdup_printf("\tqvm-%s attach%s %s %s:%s",
                                                   devclass, hint->str, name,
                                                   dev->backend, d->port));
    }
    g_string_free(hint, TRUE);
    if (ports->len) {
        printf("Assigned. To attach you can now restart domain or run: \n");
        for (guint i = 0; i < ports->len; i++)
            printf("%s%s", i ? "\n" : "", (char *)ports->pdata[i]);
        printf("\n");
    }
}

static void unassign_one(ArgsNamespace *ns, const char *vm, const Dev *a)
{
    call("Unassign", vm, a, NULL);
    g_autoptr(GPtrArray) owned = g_ptr_array_new_with_free_func(dev_free);
    g_autoptr(GPtrArray) ds = assign_devices(a, owned);
    g_autoptr(GPtrArray) att = assignments("Attached", vm);
    g_autoptr(GPtrArray) ports = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i < ds->len; i++) {
        Dev *d = ds->pdata[i];
        gboolean in = FALSE;
        for (guint k = 0; k < att->len && !in; k++)
            in = dev_equal(((Assign *)att->pdata[k])->dev, d);
        if (in)
            g_ptr_array_add(ports,
                            g_strdup_printf("\tqvm-%s detach %s %s:%s",
                                            devclass, vm, a->backend, d->port));
    }
    if (ports->len && args_int(ns, "quiet") == 0) {
        /* print(A, B): a space between */
        printf("Unassigned. To detach you can now restart domain or run: \n ");
        for (guint i = 0; i < ports->len; i++)
            printf("%s%s", i ? "\n" : "", (char *)ports->pdata[i]);
        printf("\n");
    }
}

static void cmd_unassign(ArgsNamespace *ns, const char *vm, Dev *dev)
{
    if (dev) {
        Dev virt = {.backend = dev->backend,
                    .port = dev->port,
                    .devid = (char *)dev_id(dev)};
        if (args_bool(ns, "only_port"))
            virt.devid = "*";
        if (args_bool(ns, "only_device"))
            virt.port = "*";
        unassign_one(ns, vm, &virt);
        return;
    }
    g_autoptr(GPtrArray) as = assignments("Assigned", vm);
    for (guint i = 0; i < as->len; i++)
        unassign_one(ns, vm, ((Assign *)as->pdata[i])->dev);
}

static void cmd_info(Dev *dev)
{
    if (!dev)
        return;
    g_autofree char *d = dev_description(dev);
    printf("%s\ndevice ID: %s\n", d, dev_id(dev));
    for (guint i = 0; dev->data && i + 1 < dev->data->len; i += 2) {
        g_autofree char *k = g_strdup(dev->data->pdata[i]);
        for (char *p = k; *p; p++)
            if (*p == '_')
                *p = ' ';
        printf("%s: %s\n", k, (char *)dev->data->pdata[i + 1]);
    }
}

/* ---- the command line ---- */

static ArgsParser *add_command(ArgsAction *sub, const char *name,
                               const char *const *aliases, const char *help)
{
    ArgsParser *c = args_add_parser(sub, name, aliases, help, NULL, NULL,
                                    ARGS_FORMAT_DEFAULT);
    qubes_args_add_common(c);
    args_set_default(c, "func", name);
    return c;
}

static void add_vmname(ArgsParser *c)
{
    args_add(
        c, &(ArgsSpec){.names = "VMNAME", .nargs = 1, .help = "a domain name"});
}

static void add_device(ArgsParser *c, int nargs)
{
    args_add(c, &(ArgsSpec){.names = "device",
                            .metavar = "BACKEND:DEVICE_ID",
                            .nargs = nargs,
                            .help = "A backend, port & device id "
                                    "combination"});
}

static void add_options(ArgsParser *c)
{
    args_add(c, &(ArgsSpec){.names = "--option -o",
                            .action = ARGS_APPEND,
                            .help = "Set option for the device in opt=value "
                                    "form (can be specified multiple times), "
                                    "see man qvm-device for details"});
    args_add(c, &(ArgsSpec){.names = "--ro",
                            .action = ARGS_STORE_TRUE,
                            .deflt = "False",
                            .deflt_type = ARGV_BOOL,
                            .help = "Attach device read-only (alias for "
                                    "read-only=yes option, takes "
                                    "precedence)"});
}

static void add_port_or_device(ArgsParser *c)
{
    int mx = args_add_mutex(c, 0, FALSE);
    args_add_in(c, 0, mx,
                &(ArgsSpec){.names = "--port --only-port",
                            .dest = "only_port",
                            .action = ARGS_STORE_TRUE,
                            .deflt = "False",
                            .deflt_type = ARGV_BOOL,
                            .help = "Ignore device presented identity"});
    args_add_in(c, 0, mx,
                &(ArgsSpec){.names = "--device --only-device",
                            .dest = "only_device",
                            .action = ARGS_STORE_TRUE,
                            .deflt = "False",
                            .deflt_type = ARGV_BOOL,
                            .help = "Ignore current port identity"});
}

static ArgsParser *make_parser(const char *prog, const char *cls)
{
    ArgsParser *p =
        qubes_args_new(prog, 0, "Qubes volume and block device management",
                       NULL, ARGS_FORMAT_DEFAULT);
    args_parser_no_abbrev(p);
    if (cls)
        args_add(p, &(ArgsSpec){.names = "devclass",
                                .action = ARGS_STORE_CONST,
                                .konst = cls,
                                .help = ARGS_SUPPRESS});
    else
        args_add(p, &(ArgsSpec){.names = "devclass",
                                .metavar = "DEVICE_CLASS",
                                .help = "Device class to manage ('pci', "
                                        "'usb', etc)"});
    args_set_default(p, "func", "list");
    ArgsAction *sub = args_add_subparsers(
        p, "command", "commands",
        "For more information see qvm-device command -h", NULL, NULL, FALSE);
    args_subparsers_qubes_aliases(sub);
    static const char *const
        a_list[] = {"ls", "l", NULL},
        *const a_attach[] = {"at", "a", NULL},
        *const a_detach[] = {"d", "dt", NULL}, *const a_assign[] = {"s", NULL},
        *const a_unassign[] = {"u", NULL}, *const a_info[] = {"i", NULL};
    ArgsParser *list = add_command(sub, "list", a_list, "list devices");
    args_add(list, &(ArgsSpec){.names = "--assignments -s",
                               .action = ARGS_STORE_TRUE,
                               .deflt = "False",
                               .deflt_type = ARGV_BOOL,
                               .help = "Include info about device "
                                       "assignments, indicated by '*' before "
                                       "qube name."});
    args_add(list, &(ArgsSpec){.names = "--with-sbdf --resolve-paths",
                               .action = ARGS_STORE_TRUE,
                               .deflt = "False",
                               .deflt_type = ARGV_BOOL,
                               .help = "Include resolved PCI path (SBDF) "
                                       "identifier of the PCI devices; "
                                       "ignored for non-PCI devices"});
    qubes_args_add_vmname_group(list, FALSE,
                                "list devices assigned to specific domain(s)");
    ArgsParser *attach =
        add_command(sub, "attach", a_attach, "Attach device to domain");
    ArgsParser *detach =
        add_command(sub, "detach", a_detach, "Detach device from domain");
    ArgsParser *assign =
        add_command(sub, "assign", a_assign,
                    "Assign device to domain or edit existing assignment");
    ArgsParser *unassign = add_command(
        sub, "unassign", a_unassign, "Remove assignment of device from domain");
    ArgsParser *info =
        add_command(sub, "info", a_info, "Show info about device from domain");
    add_vmname(attach);
    add_vmname(detach);
    add_vmname(assign);
    add_vmname(unassign);
    add_device(attach, 0);
    add_device(detach, ARGS_OPTIONAL);
    add_device(assign, 0);
    add_device(unassign, ARGS_OPTIONAL);
    add_device(info, ARGS_OPTIONAL);
    add_options(attach);
    add_options(assign);
    args_add(attach, &(ArgsSpec){.names = "--persistent -p",
                                 .dest = "required",
                                 .action = ARGS_STORE_TRUE,
                                 .deflt = "False",
                                 .deflt_type = ARGV_BOOL,
                                 .help = "Alias to `assign --required` for "
                                         "backward compatibility"});
    int mode = args_add_mutex(assign, 0, FALSE);
    args_add_in(assign, 0, mode,
                &(ArgsSpec){.names = "--ask --ask-to-attach",
                            .action = ARGS_STORE_TRUE,
                            .deflt = "False",
                            .deflt_type = ARGV_BOOL,
                            .help = "Always ask before auto-attachment"});
    args_add_in(assign, 0, mode,
                &(ArgsSpec){.names = "--required -r",
                            .dest = "required",
                            .action = ARGS_STORE_TRUE,
                            .deflt = "False",
                            .deflt_type = ARGV_BOOL,
                            .help = "Mark device as required so it will be "
                                    "required to the qube's startup and then "
                                    "automatically attached)"});
    add_port_or_device(assign);
    add_port_or_device(unassign);
    args_add(p, &(ArgsSpec){.names = "--list-device-classes",
                            .action = ARGS_STORE_TRUE,
                            .deflt = "False",
                            .deflt_type = ARGV_BOOL});
    return p;
}

int main(int argc, char **argv)
{
    g_autofree char *base = g_path_get_basename(argv[0]);
    const char *cls = NULL;
    if (g_str_has_prefix(base, "qvm-") && strcmp(base, "qvm-device") != 0)
        cls = base + 4;
    /* --list-device-classes (or --list-classes) anywhere, before all */
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--list-device-classes") ||
            !strcmp(argv[i], "--list-classes")) {
            g_autoptr(GError) err = NULL;
            g_autoptr(GPtrArray) c =
                qa_call_lines("admin.deviceclass.List", "dom0", NULL, &err);
            if (!c)
                qubes_args_print_exception(err);
            g_ptr_array_sort(c, tool_str_cmp);
            for (guint k = 0; k < c->len; k++)
                printf("%s\n", (char *)c->pdata[k]);
            return 0;
        }
    ArgsParser *p = make_parser(base, cls);
    main_parser = p;
    g_autoptr(ArgsNamespace) ns = args_parse(p, argc, argv);
    g_autoptr(QaApp) the_app = qubes_args_app(p);
    app = the_app;
    devclass = args_str(ns, "devclass");
    const char *func = args_str(ns, "func");
    const char *command = args_str(ns, "command");
    /* the subcommand's qubes and device, in its order */
    g_autoptr(GPtrArray) doms = NULL;
    if (!command || strcmp(func, "list") == 0)
        doms = args_get(ns, "VMNAME")
                   ? qubes_args_domains(p, ns, app, ARGS_ZERO_OR_MORE)
                   : g_ptr_array_new();
    else if (strcmp(func, "info") != 0)
        doms = qubes_args_domains(p, ns, app, 1);
    g_autoptr(Dev) dev = NULL;
    const char *rep = args_str(ns, "device");
    if (rep && strcmp(func, "list") != 0)
        dev = resolve_device(
            rep, strcmp(func, "attach") != 0 && strcmp(func, "info") != 0,
            strcmp(func, "info") == 0);
    if (strcmp(func, "list") == 0)
        cmd_list(ns, doms);
    else if (strcmp(func, "info") == 0)
        cmd_info(dev);
    else if (strcmp(func, "attach") == 0)
        cmd_attach(ns, qa_vm_name(doms->pdata[0]), dev);
    else if (strcmp(func, "detach") == 0)
        cmd_detach(qa_vm_name(doms->pdata[0]), dev);
    else if (strcmp(func, "assign") == 0)
        cmd_assign(ns, doms->pdata[0], dev);
    else if (strcmp(func, "unassign") == 0)
        cmd_unassign(ns, qa_vm_name(doms->pdata[0]), dev);
    fflush(stdout);
    args_parser_free(p);
    return 0;
}
