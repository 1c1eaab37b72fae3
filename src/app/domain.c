/* domain.c: the domain classes (qubes/vm/{adminvm,qubesvm,appvm,
 * templatevm,standalonevm,dispvm}.py): their property tables, the
 * object's life, and its volumes' configuration. See domain.h. */
#include "domain.h"
#include "domain-devices.h"
#include "qube-features.h"
#include "lookup.h"
#include "net.h"
#include "preload.h"

#include "qfile.h"
#include "qubes-error.h"
#include "qubes-parse.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>

#define GIB (G_GUINT64_CONSTANT(1) << 30)
#define ROOT_IMG_SIZE (10 * GIB) /* the reference's config.defaults */
#define PRIVATE_IMG_SIZE (2 * GIB)

static void domain_volume_free(QubesDomainVolume *dv);

static gint str_cmp(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static QubesDomain *owner_dom(QubesPropHolder *h)
{
    return h->owner;
}

/* ---- defaults ---- */

/* The template's value of the same property, else the static default. */
static char *default_from_template(QubesPropHolder *h, const QubesPropDef *def)
{
    QubesDomain *tpl = qubes_domain_get_template(owner_dom(h));
    if (tpl)
        return qubes_props_value(&tpl->props, def->name);
    return g_strdup(def->default_value);
}

/* The template's value, else the app's property named in default_value. */
static char *default_template_or_app(QubesPropHolder *h,
                                     const QubesPropDef *def)
{
    QubesDomain *tpl = qubes_domain_get_template(owner_dom(h));
    if (tpl)
        return qubes_props_value(&tpl->props, def->name);
    return qubes_props_value(&owner_dom(h)->app->props, def->default_value);
}

/* The app's property named in default_value. */
static char *default_app(QubesPropHolder *h, const QubesPropDef *def)
{
    return qubes_props_value(&owner_dom(h)->app->props, def->default_value);
}

static gboolean has_pci(QubesDomain *dom)
{
    return qubes_domain_has_assignment(dom, "pci");
}

/* pvh, or hvm when PCI devices are assigned (SPEC 3). */
static char *default_virt_mode(QubesPropHolder *h, const QubesPropDef *def)
{
    QubesDomain *dom = owner_dom(h);
    if (has_pci(dom))
        return g_strdup("hvm");
    QubesDomain *tpl = qubes_domain_get_template(dom);
    return tpl ? qubes_props_value(&tpl->props, "virt_mode") : g_strdup("pvh");
}

static char *default_maxmem(QubesPropHolder *h, const QubesPropDef *def)
{
    QubesDomain *dom = owner_dom(h);
    QubesDomain *tpl = qubes_domain_get_template(dom);
    if (tpl)
        return qubes_props_value(&tpl->props, "maxmem");
    g_autofree char *mode = qubes_props_value(h, "virt_mode");
    if (g_strcmp0(mode, "hvm") == 0 && has_pci(dom))
        return g_strdup("0"); /* no balancing with PCI passthrough */
    gint64 maxmem = 4000;
    if (g_strcmp0(qubes_domain_feature_get(dom, "os"), "Linux") == 0) {
        g_autofree char *mem = qubes_props_value(h, "memory");
        maxmem = g_ascii_strtoll(mem, NULL, 10) * 10;
    }
    gint64 half = (gint64)(dom->app->host_memory / 1024 / 2);
    if (half > 0 && maxmem > half)
        maxmem = half;
    return g_strdup_printf("%" G_GINT64_FORMAT, maxmem);
}

static char *default_kernelopts(QubesPropHolder *h, const QubesPropDef *def)
{
    QubesDomain *dom = owner_dom(h);
    g_autofree char *kernel = qubes_props_value(h, "kernel");
    if (!kernel || !*kernel)
        return g_strdup("");
    gboolean pci = has_pci(dom);
    QubesDomain *tpl = qubes_domain_get_template(dom);
    if (!pci && tpl)
        return qubes_props_value(&tpl->props, "kernelopts");
    /* on the main thread: a planted FIFO must not block it */
    g_autofree char *dir =
        g_build_filename(dom->app->base_dir, "vm-kernels", kernel, NULL);
    char *text = qfile_read_text(dir,
                                 pci ? "default-kernelopts-pci.txt"
                                     : "default-kernelopts-nopci.txt",
                                 4096, NULL);
    if (text)
        return g_strstrip(text);
    return g_strdup(pci ? "iommu=soft swiotlb=8192" : "swiotlb=2048");
}

static char *default_updateable(QubesPropHolder *h, const QubesPropDef *def)
{
    return g_strdup(owner_dom(h)->klass->has_template ? "False" : "True");
}

static char *default_klass(QubesPropHolder *h, const QubesPropDef *def)
{
    return g_strdup(owner_dom(h)->klass->name);
}

static char *default_start_time(QubesPropHolder *h, const QubesPropDef *def)
{
    QubesDomain *dom = owner_dom(h);
    if (dom->power == QUBES_POWER_HALTED || !dom->start_time)
        return g_strdup("");
    return g_strdup_printf("%" G_GINT64_FORMAT, dom->start_time);
}

static char *default_xid(QubesPropHolder *h, const QubesPropDef *def)
{
    QubesDomain *dom = owner_dom(h);
    if (dom->qid == 0)
        return g_strdup("0");
    return g_strdup_printf("%" G_GINT64_FORMAT,
                           dom->power == QUBES_POWER_HALTED ? -1 : dom->xid);
}

/* adminvm.py: dom0's memory in MiB. Master reads Xen's static maximum
 * of dom0; here dom0 is the host, so it is the host's memory
 * (/proc/meminfo); offline, master's 4096 (Xen's default). */
static char *default_dom0_maxmem(QubesPropHolder *h, const QubesPropDef *def)
{
    QubesApp *app = owner_dom(h)->app;
    if (!app->runtime || !app->host_memory)
        return g_strdup("4096");
    return g_strdup_printf("%" G_GUINT64_FORMAT, app->host_memory / 1024);
}

static char *default_icon(QubesPropHolder *h, const QubesPropDef *def)
{
    QubesDomain *dom = owner_dom(h);
    g_autofree char *label = qubes_props_value(h, "label");
    /* qubesvm.py, appvm.py and adminvm.py: a disposable template AppVM
     * looks like a template; a qube with the servicevm feature like a
     * service qube. */
    const char *kind = "appvm";
    const char *service = qubes_domain_feature_get(dom, "servicevm");
    if (strcmp(dom->klass->name, "AdminVM") == 0)
        kind = "adminvm";
    else if (strcmp(dom->klass->name, "TemplateVM") == 0 ||
             (strcmp(dom->klass->name, "AppVM") == 0 &&
              qubes_domain_flag(dom, "template_for_dispvms")))
        kind = "templatevm";
    else if (service && *service)
        kind = "servicevm";
    else if (strcmp(dom->klass->name, "DispVM") == 0)
        kind = "dispvm";
    else if (strcmp(dom->klass->name, "StandaloneVM") == 0)
        kind = "standalonevm";
    else if (strcmp(dom->klass->name, "RemoteVM") == 0)
        kind = "remotevm";
    return g_strdup_printf("%s-%s", kind, label ? label : "black");
}

/* A DispVM's defaults (dispvm.py): kept in backups unless it goes by
 * itself; its own disposables come from its template. */
static char *default_not_auto_cleanup(QubesPropHolder *h,
                                      const QubesPropDef *def)
{
    g_autofree char *ac = qubes_props_value(h, "auto_cleanup");
    return g_strdup(g_strcmp0(ac, "True") == 0 ? "False" : "True");
}

static char *default_is_preload(QubesPropHolder *h, const QubesPropDef *def)
{
    return qubes_preload_is_preload(owner_dom(h));
}

static char *default_own_template(QubesPropHolder *h, const QubesPropDef *def)
{
    QubesDomain *tpl = qubes_domain_get_template(owner_dom(h));
    return g_strdup(tpl ? tpl->name : "");
}

/* A boot mode is usable when boot-mode.kernelopts.MODE is set on the qube
 * or along its templates. */
static gboolean bootmode_usable(QubesDomain *dom, const char *mode)
{
    g_autofree char *f = g_strconcat("boot-mode.kernelopts.", mode, NULL);
    return qubes_domain_feature_check(dom, f, TRUE, FALSE, FALSE, NULL) != NULL;
}

/* qubesvm.py's _default_bootmode: the boot-mode.active feature when that
 * mode is usable, else the appvm_default_bootmode of the nearest
 * template that has one and whose mode is usable, else "default". */
static char *default_bootmode(QubesPropHolder *h, const QubesPropDef *def)
{
    QubesDomain *dom = owner_dom(h);
    const char *active = qubes_domain_feature_get(dom, "boot-mode.active");
    if (active) {
        if (strcmp(active, "default") == 0 || bootmode_usable(dom, active))
            return g_strdup(active);
    }
    QubesDomain *subject = dom;
    for (int depth = 0; depth < 8; depth++) { /* templates nest 2 deep */
        QubesDomain *tpl = qubes_domain_get_template(subject);
        if (!tpl)
            break;
        if (qubes_props_def(&tpl->props, "appvm_default_bootmode", NULL)) {
            g_autofree char *v =
                qubes_props_value(&tpl->props, "appvm_default_bootmode");
            if (v && strcmp(v, "default") == 0)
                return g_strdup("default");
            if (v && bootmode_usable(subject, v))
                return g_steal_pointer(&v);
        }
        subject = tpl;
    }
    return g_strdup("default");
}

static char *default_appvm_bootmode(QubesPropHolder *h, const QubesPropDef *def)
{
    const char *v =
        qubes_domain_feature_get(owner_dom(h), "boot-mode.appvm-default");
    return g_strdup(v ? v : "default");
}

/* The GUI qube's keyboard layout ("us++" without one). A chain of guivm
 * values is followed a bounded number of steps: a loop gives "us++". */
static char *default_kbd_layout(QubesPropHolder *h, const QubesPropDef *def)
{
    QubesDomain *dom = owner_dom(h);
    for (int depth = 0; depth < 16; depth++) {
        if (!qubes_props_def(&dom->props, "guivm", NULL))
            break;
        g_autofree char *g = qubes_props_value(&dom->props, "guivm");
        QubesDomain *gui =
            g && *g ? g_hash_table_lookup(dom->app->by_name, g) : NULL;
        if (!gui)
            break;
        const char *set =
            g_hash_table_lookup(gui->props.values, "keyboard_layout");
        if (set)
            return g_strdup(set);
        dom = gui;
    }
    return g_strdup("us++");
}

/* ---- setters ---- */

static char *setter_name(QubesPropHolder *h, const QubesPropDef *def,
                         const char *value, GError **error)
{
    return qubes_validate_vm_name(value, error) ? g_strdup(value) : NULL;
}

static char *setter_qid(QubesPropHolder *h, const QubesPropDef *def,
                        const char *value, GError **error)
{
    gint64 v = g_ascii_strtoll(value, NULL, 10);
    if (v < 0 || v > QUBES_MAX_QID) {
        g_autofree char *why =
            g_strdup_printf("qid must be between 0 and %d", QUBES_MAX_QID);
        qubes_prop_error(error, h, def, value, why);
        return NULL;
    }
    return g_strdup(value);
}

static char *setter_uuid(QubesPropHolder *h, const QubesPropDef *def,
                         const char *value, GError **error)
{
    if (!g_uuid_string_is_valid(value)) {
        qubes_prop_error(error, h, def, value, "not a UUID");
        return NULL;
    }
    return g_ascii_strdown(value, -1);
}

static char *setter_label(QubesPropHolder *h, const QubesPropDef *def,
                          const char *value, GError **error)
{
    /* "label-N" names the label of index N (setter_label). */
    if (g_str_has_prefix(value, "label-") && value[6] &&
        strspn(value + 6, "0123456789") == strlen(value + 6))
        value += 6;
    const QxLabel *l = qubes_app_get_label(owner_dom(h)->app, value, error);
    return l ? g_strdup(l->name) : NULL;
}

static char *setter_virt_mode(QubesPropHolder *h, const QubesPropDef *def,
                              const char *value, GError **error)
{
    g_autofree char *v = g_ascii_strdown(value, -1);
    if (strcmp(v, "hvm") && strcmp(v, "pv") && strcmp(v, "pvh")) {
        qubes_prop_error(
            error, h, def, value,
            "Invalid virtualization mode, supported values: hvm, pv, "
            "pvh");
        return NULL;
    }
    if (strcmp(v, "pvh") == 0 && has_pci(owner_dom(h))) {
        qubes_prop_error(error, h, def, value,
                         "pvh mode can't be set if pci devices are assigned");
        return NULL;
    }
    return g_steal_pointer(&v);
}

static char *setter_kernel(QubesPropHolder *h, const QubesPropDef *def,
                           const char *value, GError **error)
{
    return qubes_app_setter_kernel(owner_dom(h)->app, h, def, value, error);
}

static char *setter_kernelopts(QubesPropHolder *h, const QubesPropDef *def,
                               const char *value, GError **error)
{
    if (strlen(value) > 512) {
        qubes_prop_error(error, h, def, value,
                         "Kernelopts value too long (512 chars max)");
        return NULL;
    }
    return g_strdup(value);
}

static char *setter_default_user(QubesPropHolder *h, const QubesPropDef *def,
                                 const char *value, GError **error)
{
    for (const char *p = value; *p; p++) {
        if (!g_ascii_isalnum(*p) && !strchr("_-+,.", *p)) {
            qubes_prop_error(
                error, h, def, value,
                "Username can contain only those characters: "
                "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                "0123456789_-+,.");
            return NULL;
        }
    }
    return g_strdup(value);
}

static gboolean all_in(const char *s, const char *extra)
{
    for (const char *p = s; *p; p++) {
        if (!g_ascii_isalnum(*p) && !strchr(extra, *p))
            return FALSE;
    }
    return TRUE;
}

/* qubesvm.py's _setter_kbd_layout: LAYOUT+VARIANT+OPTIONS. */
static char *setter_kbd_layout(QubesPropHolder *h, const QubesPropDef *def,
                               const char *value, GError **error)
{
    const char *why = NULL;
    g_auto(GStrv) parts = g_strsplit(value, "+", -1);
    gboolean alpha = TRUE;
    for (const char *p = parts[0] ? parts[0] : ""; *p; p++)
        alpha = alpha && g_ascii_isalpha(*p);
    if (g_strv_length(parts) != 3)
        why = "invalid number of keyboard layout parameters";
    else if (!*parts[0] || !alpha)
        why = "Invalid keyboard layout provided";
    else if (!all_in(parts[1], "-_"))
        why = "Invalid layout variant provided";
    else if (!all_in(parts[2], "-_:,"))
        why = "Invalid layout options provided";
    if (why) {
        qubes_prop_error(error, h, def, value, why);
        return NULL;
    }
    return g_strdup(value);
}

/* qubesvm.py's _setter_denied_list: device interface codes, seven
 * characters each (a class letter, six hex digits or '*'), duplicates
 * dropped and the list sorted. */
static char *setter_devices_denied(QubesPropHolder *h, const QubesPropDef *def,
                                   const char *value, GError **error)
{
    gsize len = strlen(value);
    /* DeviceInterface.from_str_bulk, before the pattern */
    if (!qubes_dev_interfaces_length_ok(value, error))
        return NULL;
    gboolean ok = TRUE;
    for (gsize i = 0; ok && i < len; i++) {
        char c = value[i];
        ok = i % 7 == 0
                 ? strchr("bump*", c) != NULL
                 : (g_ascii_isxdigit(c) && !g_ascii_isupper(c)) || c == '*';
    }
    if (!ok) {
        qubes_prop_error(error, h, def, value,
                         "Interface code list should be in the form "
                         "chhhhhhchhhhhh...,where c is one of \"b\", \"u\", "
                         "\"m\", \"p\", \"*\" and h is a hexdigit or \"*\".");
        return NULL;
    }
    g_autoptr(GPtrArray) codes = g_ptr_array_new_with_free_func(g_free);
    for (gsize i = 0; i < len; i += 7) {
        g_autofree char *code = g_strndup(value + i, 7);
        gboolean dup = FALSE;
        for (guint j = 0; j < codes->len && !dup; j++)
            dup = strcmp(codes->pdata[j], code) == 0;
        if (!dup)
            g_ptr_array_add(codes, g_steal_pointer(&code));
    }
    g_ptr_array_sort(codes, str_cmp);
    GString *out = g_string_sized_new(len);
    for (guint j = 0; j < codes->len; j++)
        g_string_append(out, codes->pdata[j]);
    return g_string_free(out, FALSE);
}

gboolean qubes_domain_is_dvm_template(QubesDomain *d)
{
    return qubes_props_def(&d->props, "template_for_dispvms", NULL) &&
           !(qubes_props_def(&d->props, "template_for_dispvms", NULL)->flags &
             QUBES_PROP_READ_ONLY) &&
           qubes_domain_flag(d, "template_for_dispvms");
}

char *qubes_setter_disposable_template(QubesApp *app, QubesPropHolder *h,
                                       const QubesPropDef *def,
                                       const char *value, GError **error)
{
    if (!*value)
        return g_strdup("");
    QubesDomain *d = qubes_prop_vm(app, h, def, value, error);
    if (!d)
        return NULL;
    if (!qubes_domain_is_dvm_template(d)) {
        /* validate_disposable_template (vm/__init__.py) */
        g_autofree char *target =
            h == &app->props ? g_strdup("system")
                             : g_strdup_printf("qube '%s'", owner_dom(h)->name);
        g_autofree char *why =
            g_strdup_printf("Cannot set invalid property to %s, %s '%s' has "
                            "template_for_dispvms set to False",
                            target, def->name, value);
        qubes_prop_error(error, h, def, value, why);
        return NULL;
    }
    return g_strdup(value);
}

gboolean qubes_prop_vm_provides_network(QubesPropHolder *h,
                                        const QubesPropDef *def,
                                        QubesDomain *vm, GError **error)
{
    g_autofree char *v = qubes_props_value(&vm->props, "provides_network");
    if (g_strcmp0(v, "True") == 0)
        return TRUE;
    return qubes_prop_error(error, h, def, vm->name,
                            "The qube does not provide network");
}

static gboolean vm_is(QubesDomain *d, const char *klass)
{
    return strcmp(d->klass->name, klass) == 0;
}

static char *setter_template(QubesPropHolder *h, const QubesPropDef *def,
                             const char *value, GError **error)
{
    QubesDomain *self = owner_dom(h);
    QubesDomain *t = qubes_prop_vm(self->app, h, def, value, error);
    if (!t)
        return NULL;
    gboolean dispvm = vm_is(self, "DispVM");
    /* dispvm.py's setter looks at template_for_dispvms first */
    if (dispvm && !qubes_domain_is_dvm_template(t)) {
        qubes_prop_error(
            error, h, def, value,
            "template for disposable must have template_for_dispvms=True");
        return NULL;
    }
    gboolean right = dispvm ? vm_is(t, "AppVM") || vm_is(t, "StandaloneVM")
                            : vm_is(t, "TemplateVM");
    if (!right) {
        g_autofree char *why = g_strdup_printf(
            "wrong VM class: domains['%s'] is of type %s and not %s", value,
            t->klass->name, dispvm ? "AppVM" : "TemplateVM");
        qubes_prop_error(error, h, def, value, why);
        return NULL;
    }
    return g_strdup(value);
}

static char *setter_dvm(QubesPropHolder *h, const QubesPropDef *def,
                        const char *value, GError **error)
{
    return qubes_setter_disposable_template(owner_dom(h)->app, h, def, value,
                                            error);
}

static char *setter_vm_any(QubesPropHolder *h, const QubesPropDef *def,
                           const char *value, GError **error)
{
    QubesDomain *self = owner_dom(h);
    if (!*value)
        return g_strdup("");
    return qubes_prop_vm(self->app, h, def, value, error) ? g_strdup(value)
                                                          : NULL;
}

/* ---- the tables ---- */

/* What every class has. */
static const QubesPropDef base_props[] = {
    {.name = "label",
     .type = QUBES_PROP_LABEL,
     .setter = setter_label,
     .doc = "Colourful label assigned to VM. This is where the colour of "
            "the padlock is set."},
    {.name = "klass",
     .type = QUBES_PROP_STR,
     .flags = QUBES_PROP_READ_ONLY | QUBES_PROP_DONT_SAVE,
     .default_func = default_klass,
     .doc = "Domain class name"},
    {NULL},
};

/* BaseVM's icon (vm/__init__.py), which every class but RemoteVM
 * lists with the properties below. */
static const QubesPropDef icon_props[] = {
    {.name = "icon",
     .type = QUBES_PROP_STR,
     .flags = QUBES_PROP_READ_ONLY | QUBES_PROP_DONT_SAVE,
     .default_func = default_icon,
     .doc = "freedesktop icon name, suitable for use in "
            "PyQt4.QtGui.QIcon.fromTheme()"},
    {NULL},
};

/* appvm.py overrides the icon with a stateless property of no
 * docstring: its help is empty. */
static const QubesPropDef appvm_icon_props[] = {
    {.name = "icon",
     .type = QUBES_PROP_STR,
     .flags = QUBES_PROP_READ_ONLY | QUBES_PROP_DONT_SAVE,
     .default_func = default_icon,
     .doc = NULL},
    {NULL},
};

/* What dom0 and the local qubes have beyond BaseVM. */
static const QubesPropDef shared_props[] = {
    {.name = "keyboard_layout",
     .type = QUBES_PROP_STR,
     .default_value = "us++",
     .default_func = default_kbd_layout,
     .setter = setter_kbd_layout,
     .doc = "Keyboard layout for this VM"},
    {.name = "default_dispvm",
     .type = QUBES_PROP_VM,
     .load_stage = 4,
     .default_value = "default_dispvm",
     .default_func = default_app,
     .setter = setter_dvm,
     .doc = "Default disposable template to be used for spawning "
            "disposable qubes for service calls."},
    {NULL},
};

static const QubesPropDef adminvm_props[] = {
    {.name = "name",
     .type = QUBES_PROP_STR,
     .flags = QUBES_PROP_READ_ONLY | QUBES_PROP_DONT_SAVE,
     .default_value = "dom0",
     .doc = NULL /* the reference gives none */},
    {.name = "qid",
     .type = QUBES_PROP_INT,
     .flags = QUBES_PROP_READ_ONLY | QUBES_PROP_DONT_SAVE,
     .default_value = "0",
     .doc = NULL /* the reference gives none */},
    {.name = "uuid",
     .type = QUBES_PROP_STR,
     .flags = QUBES_PROP_READ_ONLY | QUBES_PROP_DONT_SAVE,
     .default_value = "00000000-0000-0000-0000-000000000000",
     .doc = NULL /* the reference gives none */},
    {.name = "include_in_backups",
     .type = QUBES_PROP_BOOL,
     .default_value = "True",
     .doc = "If this domain is to be included in default backup."},
    {.name = "updateable",
     .type = QUBES_PROP_BOOL,
     .flags = QUBES_PROP_READ_ONLY | QUBES_PROP_DONT_SAVE,
     .default_value = "True",
     .doc = "True if this machine may be updated on its own."},
    {.name = "devices_denied",
     .type = QUBES_PROP_STR,
     .default_value = "",
     .setter = setter_devices_denied,
     .doc = "List of device interface codes that are denied for this VM."},
    {.name = "maxmem",
     .type = QUBES_PROP_INT,
     .flags = QUBES_PROP_READ_ONLY | QUBES_PROP_DONT_SAVE,
     .default_func = default_dom0_maxmem,
     .doc = "Maximum amount of memory available for this VM"},
    {NULL},
};

/* BaseVM's identity, which dom0 has fixed. */
static const QubesPropDef identity_props[] = {
    {.name = "name",
     .type = QUBES_PROP_STR,
     .flags = QUBES_PROP_WRITE_ONCE | QUBES_PROP_NO_CLONE,
     .setter = setter_name,
     .doc = "User-specified name of the domain."},
    {.name = "qid",
     .type = QUBES_PROP_INT,
     .flags = QUBES_PROP_WRITE_ONCE | QUBES_PROP_NO_CLONE,
     .setter = setter_qid,
     .doc = "Internal, persistent identificator of particular domain. Note "
            "this is different from Xen domid."},
    {.name = "uuid",
     .type = QUBES_PROP_STR,
     .flags = QUBES_PROP_WRITE_ONCE | QUBES_PROP_NO_CLONE,
     .setter = setter_uuid,
     .doc = "UUID from libvirt."},
    {NULL},
};

static const QubesPropDef qubesvm_props[] = {
    {.name = "start_time",
     .type = QUBES_PROP_STR,
     .flags = QUBES_PROP_READ_ONLY | QUBES_PROP_DONT_SAVE,
     .default_func = default_start_time,
     .doc = "Tell when machine was started. :rtype: float or None"},
    {.name = "xid",
     .type = QUBES_PROP_INT,
     .flags = QUBES_PROP_READ_ONLY | QUBES_PROP_DONT_SAVE,
     .default_func = default_xid,
     .doc = "Xen ID. Or not Xen, but ID."},
    {.name = "stubdom_xid",
     .type = QUBES_PROP_INT,
     .flags = QUBES_PROP_READ_ONLY | QUBES_PROP_DONT_SAVE,
     .default_value = "-1",
     .doc = NULL},
    {.name = "stubdom_uuid",
     .type = QUBES_PROP_STR,
     .flags = QUBES_PROP_READ_ONLY | QUBES_PROP_DONT_SAVE,
     .default_value = "",
     .doc = NULL},
    {.name = "bootmode",
     .type = QUBES_PROP_STR,
     .load_stage = 4,
     .default_func = default_bootmode,
     .doc = "Active boot mode for this domain"},
    {.name = "devices_denied",
     .type = QUBES_PROP_STR,
     .default_value = "",
     .setter = setter_devices_denied,
     .doc = "List of device interface codes that are denied for this VM."},
    {.name = "guivm",
     .type = QUBES_PROP_VM,
     .load_stage = 4,
     .default_value = "default_guivm",
     .default_func = default_app,
     .setter = setter_vm_any,
     .doc = "VM used for Gui"},
    {.name = "audiovm",
     .type = QUBES_PROP_VM,
     .load_stage = 4,
     .default_value = "default_audiovm",
     .default_func = default_app,
     .setter = setter_vm_any,
     .doc = "VM used for Audio"},
    {.name = "virt_mode",
     .type = QUBES_PROP_STR,
     .default_func = default_virt_mode,
     .setter = setter_virt_mode,
     .doc = "Virtualisation mode: full virtualisation (\"HVM\"), or "
            "paravirtualisation (\"PV\"), or hybrid (\"PVH\"). "
            "TemplateBasedVMs use its template's value by default."},
    {.name = "installed_by_rpm",
     .type = QUBES_PROP_BOOL,
     .default_value = "False",
     .doc = "If this domain's image was installed from package tracked by "
            "package manager."},
    {.name = "memory",
     .type = QUBES_PROP_INT,
     .default_value = "400",
     .default_func = default_from_template,
     .setter = qubes_prop_setter_positive,
     .doc = "Memory currently available for this VM. TemplateBasedVMs use "
            "its template's value by default."},
    {.name = "maxmem",
     .type = QUBES_PROP_INT,
     .default_func = default_maxmem,
     .setter = qubes_prop_setter_non_negative,
     .doc = "Maximum amount of memory available for this VM (for the "
            "purpose of the memory balancer). Set to 0 to disable memory "
            "balancing for this qube. TemplateBasedVMs use its template's "
            "value by default (unless memory balancing not supported for "
            "this qube)."},
    {.name = "stubdom_mem",
     .flags = QUBES_PROP_DEFAULT_NONE,
     .type = QUBES_PROP_INT,
     .setter = qubes_prop_setter_positive,
     .doc = "Memory amount allocated for the stubdom"},
    {.name = "vcpus",
     .type = QUBES_PROP_INT,
     .default_value = "2",
     .default_func = default_from_template,
     .setter = qubes_prop_setter_positive,
     .doc = "Number of virtual CPUs for a qube. TemplateBasedVMs use its "
            "template's value by default."},
    {.name = "kernel",
     .type = QUBES_PROP_STR,
     .default_value = "default_kernel",
     .default_func = default_template_or_app,
     .setter = setter_kernel,
     .doc = "Kernel used by this domain. TemplateBasedVMs use its "
            "template's value by default."},
    {.name = "kernelopts",
     .type = QUBES_PROP_STR,
     .load_stage = 4,
     .default_func = default_kernelopts,
     .setter = setter_kernelopts,
     .doc = "Kernel command line passed to domain. TemplateBasedVMs use its "
            "template's value by default."},
    {.name = "debug",
     .type = QUBES_PROP_BOOL,
     .default_value = "False",
     .doc = "Turns on debugging features."},
    {.name = "default_user",
     .type = QUBES_PROP_STR,
     .default_value = "user",
     .default_func = default_from_template,
     .setter = setter_default_user,
     .doc = "Default user to start applications as. TemplateBasedVMs use "
            "its template's value by default."},
    {.name = "qrexec_timeout",
     .type = QUBES_PROP_INT,
     .default_value = "default_qrexec_timeout",
     .default_func = default_template_or_app,
     .setter = qubes_prop_setter_positive,
     .doc = "Time in seconds after which qrexec connection attempt is "
            "deemed failed. Operating system inside VM should be able to "
            "boot in this time."},
    {.name = "shutdown_timeout",
     .type = QUBES_PROP_INT,
     .default_value = "default_shutdown_timeout",
     .default_func = default_template_or_app,
     .setter = qubes_prop_setter_positive,
     .doc = "Time in seconds for shutdown of the VM, after which VM may be "
            "forcefully powered off. Operating system inside VM should be "
            "able to fully shutdown in this time."},
    {.name = "autostart",
     .type = QUBES_PROP_BOOL,
     .default_value = "False",
     .doc = "Setting this to True means that VM should be autostarted on "
            "dom0 boot."},
    {.name = "include_in_backups",
     .type = QUBES_PROP_BOOL,
     .default_value = "True",
     .doc = "If this domain is to be included in default backup."},
    {.name = "backup_timestamp",
     .flags = QUBES_PROP_DEFAULT_NONE,
     .type = QUBES_PROP_INT,
     .doc = "Time of last backup of the qube, in seconds since unix epoch"},
    {.name = "management_dispvm",
     .type = QUBES_PROP_VM,
     .load_stage = 4,
     .default_value = "management_dispvm",
     .default_func = default_template_or_app,
     .setter = setter_dvm,
     .doc = "Default disposable template to be used for spawning "
            "disposable qubes for managing this qube."},
    {.name = "updateable",
     .type = QUBES_PROP_BOOL,
     .flags = QUBES_PROP_READ_ONLY,
     .default_func = default_updateable,
     .doc = "True if this machine may be updated on its own."},
    {NULL},
};

static const QubesPropDef templatevm_props[] = {
    {.name = "appvm_default_bootmode",
     .type = QUBES_PROP_STR,
     .load_stage = 4,
     .default_func = default_appvm_bootmode,
     .doc = "Default active bootmode for AppVMs based on this template"},
    {NULL},
};

static const QubesPropDef dvm_template_props[] = {
    {.name = "template_for_dispvms",
     .type = QUBES_PROP_BOOL,
     .default_value = "False",
     .doc = "Should this VM be allowed to start as Disposable VM"},
    {NULL},
};

static const QubesPropDef appvm_props[] = {
    {.name = "template",
     .type = QUBES_PROP_VM,
     .load_stage = 4,
     .setter = setter_template,
     .doc = "Template, on which this AppVM is based."},
    {NULL},
};

static const QubesPropDef dispvm_props[] = {
    {.name = "template",
     .type = QUBES_PROP_VM,
     .load_stage = 4,
     .setter = setter_template,
     .doc = "AppVM, on which this disposable is based."},
    {.name = "dispid",
     .type = QUBES_PROP_INT,
     .flags = QUBES_PROP_WRITE_ONCE | QUBES_PROP_NO_CLONE,
     .setter = qubes_prop_setter_non_negative,
     .doc = "Internal, persistent identifier of particular disposable."},
    {.name = "auto_cleanup",
     .type = QUBES_PROP_BOOL,
     .default_value = "False",
     .doc = "automatically remove this qube upon shutdown"},
    {.name = "include_in_backups",
     .type = QUBES_PROP_BOOL,
     .default_func = default_not_auto_cleanup,
     .doc = "If this domain is to be included in default backup."},
    {.name = "default_dispvm",
     .type = QUBES_PROP_VM,
     .load_stage = 4,
     .default_func = default_own_template,
     .setter = setter_dvm,
     .doc = "Default disposable template to be used for spawning "
            "disposable qubes for service calls."},
    /* master's stateless_property, typed bool by its annotation */
    {.name = "is_preload",
     .type = QUBES_PROP_BOOL,
     .flags = QUBES_PROP_READ_ONLY | QUBES_PROP_DONT_SAVE,
     .default_func = default_is_preload,
     .doc = "Check if qube is a preloaded disposable. :rtype: bool"},
    {NULL},
};

static const char *const adminvm_chain[] = {"AdminVM", "BaseVM", NULL};
static const char *const templatevm_chain[] = {"TemplateVM", "QubesVM",
                                               "BaseVM", NULL};
static const char *const appvm_chain[] = {"AppVM", "QubesVM", "BaseVM", NULL};
static const char *const standalone_chain[] = {"StandaloneVM", "QubesVM",
                                               "BaseVM", NULL};
static const char *const dispvm_chain[] = {"DispVM", "QubesVM", "BaseVM", NULL};
static const char *const remotevm_chain[] = {"RemoteVM", "BaseVM", NULL};

static const QubesPropDef *const adminvm_tables[] = {
    adminvm_props, shared_props, icon_props, base_props, NULL};
static const QubesPropDef *const templatevm_tables[] = {
    templatevm_props,
    qubes_template_net_props,
    qubes_net_props,
    qubesvm_props,
    identity_props,
    shared_props,
    icon_props,
    base_props,
    NULL};
static const QubesPropDef *const appvm_tables[] = {
    appvm_props,      dvm_template_props, qubes_net_props,
    qubesvm_props,    identity_props,     shared_props,
    appvm_icon_props, base_props,         NULL};
static const QubesPropDef *const standalone_tables[] = {
    dvm_template_props, qubes_net_props, qubesvm_props, identity_props,
    shared_props,       icon_props,      base_props,    NULL};
static const QubesPropDef *const dispvm_tables[] = {
    dispvm_props, qubes_net_props, qubesvm_props, identity_props,
    shared_props, icon_props,      base_props,    NULL};
/* remotevm.py: a qube of another machine, reached through a relay (a
 * local qube, tagged relayvm-NAME by the relay extension); here it is
 * configuration only. */
static const QubesPropDef remotevm_props[] = {
    {.name = "include_in_backups",
     .type = QUBES_PROP_BOOL,
     .default_value = "False",
     .doc = "If this domain is to be included in default backup."},
    {.name = "relayvm",
     .flags = QUBES_PROP_DEFAULT_NONE,
     .type = QUBES_PROP_VM,
     .load_stage = 4,
     .setter = setter_vm_any,
     .doc = "Local qube used as relay."},
    {.name = "transport_rpc",
     .flags = QUBES_PROP_DEFAULT_NONE,
     .type = QUBES_PROP_STR,
     .doc = "Transport RPC used by the relay."},
    {.name = "remote_name",
     .flags = QUBES_PROP_DEFAULT_NONE,
     .type = QUBES_PROP_STR,
     .doc = "Name on the remote host."},
    {NULL},
};
static const QubesPropDef *const remotevm_tables[] = {
    remotevm_props, icon_props, identity_props, base_props, NULL};

static const QubesDomainClass class_adminvm = {"AdminVM", adminvm_chain,
                                               adminvm_tables, NULL, FALSE};
static const QubesDomainClass class_appvm = {"AppVM", appvm_chain, appvm_tables,
                                             "appvms", TRUE};
static const QubesDomainClass class_dispvm = {"DispVM", dispvm_chain,
                                              dispvm_tables, "appvms", TRUE};
static const QubesDomainClass class_standalone = {
    "StandaloneVM", standalone_chain, standalone_tables, "appvms", FALSE};
static const QubesDomainClass class_templatevm = {
    "TemplateVM", templatevm_chain, templatevm_tables, "vm-templates", FALSE};
static const QubesDomainClass class_remotevm = {"RemoteVM", remotevm_chain,
                                                remotevm_tables, NULL, FALSE};

/* In the order of the reference's qubes.vm entry points (setup.py), as
 * admin.vmclass.List gives them. */
static const QubesDomainClass *const all_classes[] = {&class_appvm,
                                                      &class_templatevm,
                                                      &class_standalone,
                                                      &class_adminvm,
                                                      &class_dispvm,
                                                      &class_remotevm,
                                                      NULL};

const QubesDomainClass *const *qubes_domain_classes(void)
{
    return all_classes;
}

const QubesDomainClass *qubes_domain_class_lookup(const char *name)
{
    for (const QubesDomainClass *const *c = all_classes; *c; c++) {
        if (strcmp((*c)->name, name) == 0)
            return *c;
    }
    return NULL;
}

/* ---- names ---- */

/* ---- state ---- */

gboolean qubes_domain_is_halted(QubesDomain *dom)
{
    return dom->power == QUBES_POWER_HALTED;
}

gboolean qubes_domain_is_running(QubesDomain *dom)
{
    return dom->power != QUBES_POWER_HALTED &&
           dom->power != QUBES_POWER_CRASHED && dom->power != QUBES_POWER_DYING;
}

gint qubes_domain_cmp(gconstpointer a, gconstpointer b)
{
    const QubesDomain *x = *(QubesDomain *const *)a;
    const QubesDomain *y = *(QubesDomain *const *)b;
    if ((x->qid == 0) != (y->qid == 0))
        return x->qid == 0 ? -1 : 1;
    return strcmp(x->name, y->name);
}

const char *qubes_domain_power_state(QubesDomain *dom)
{
    static const char *const names[] = {
        [QUBES_POWER_HALTED] = "Halted",
        [QUBES_POWER_TRANSIENT] = "Transient",
        [QUBES_POWER_RUNNING] = "Running",
        [QUBES_POWER_PAUSED] = "Paused",
        [QUBES_POWER_SUSPENDED] = "Suspended",
        [QUBES_POWER_HALTING] = "Halting",
        [QUBES_POWER_DYING] = "Dying",
        [QUBES_POWER_CRASHED] = "Crashed",
    };
    return names[dom->power];
}

char *qubes_domain_dir_path(QubesDomain *dom)
{
    if (!dom->klass->dir_prefix)
        return NULL;
    return g_build_filename(dom->app->base_dir, dom->klass->dir_prefix,
                            dom->name, NULL);
}

QubesDomain *qubes_domain_ref(QubesDomain *dom)
{
    g_atomic_int_inc(&dom->refcount);
    return dom;
}

void qubes_domain_unref(QubesDomain *dom)
{
    if (!dom || !g_atomic_int_dec_and_test(&dom->refcount))
        return;
    qubes_props_clear(&dom->props);
    qubes_emitter_clear(&dom->emitter);
    g_free(dom->name);
    g_ptr_array_unref(dom->features);
    g_hash_table_unref(dom->tags);
    g_ptr_array_unref(dom->volumes);
    g_ptr_array_unref(dom->extra);
    g_ptr_array_unref(dom->assignments);
    g_ptr_array_unref(dom->lost_volumes);
    g_mutex_clear(&dom->files_lock);
    g_free(dom);
}

/* A bare domain object: properties empty, events disabled. */
QubesDomain *qubes_domain_new_internal(QubesApp *app,
                                       const QubesDomainClass *klass, guint qid,
                                       const char *name)
{
    QubesDomain *dom = g_new0(QubesDomain, 1);
    dom->refcount = 1;
    g_mutex_init(&dom->files_lock);
    dom->app = app;
    dom->klass = klass;
    dom->qid = qid;
    dom->name = g_strdup(name);
    qubes_emitter_init(&dom->emitter, app->registry,
                       (const char *const *)klass->chain, name);
    qubes_props_init(&dom->props, &dom->emitter, klass->name, klass->props,
                     dom);
    dom->features = g_ptr_array_new_with_free_func(g_free);
    dom->tags = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    dom->volumes =
        g_ptr_array_new_with_free_func((GDestroyNotify)domain_volume_free);
    dom->extra = g_ptr_array_new_with_free_func(g_free);
    dom->assignments = g_ptr_array_new_with_free_func(
        (GDestroyNotify)qubes_dev_assignment_free);
    dom->lost_volumes =
        g_ptr_array_new_with_free_func((GDestroyNotify)g_ptr_array_unref);
    /* dom0 always runs; so does a RemoteVM, as far as the reference
     * knows (remotevm.py). */
    dom->power = qid == 0 || strcmp(klass->name, "RemoteVM") == 0
                     ? QUBES_POWER_RUNNING
                     : QUBES_POWER_HALTED;
    dom->xid = qid == 0 ? 0 : -1;
    return dom;
}

/* ---- features ---- */

/* ---- tags ---- */

/* ---- volumes ---- */

static void domain_volume_free(QubesDomainVolume *dv)
{
    qubes_volume_unref(dv->vol);
    if (dv->unknown)
        g_ptr_array_unref(dv->unknown);
    g_free(dv);
}

static QubesDomainVolume *find_volume(QubesDomain *dom, const char *name)
{
    for (guint i = 0; i < dom->volumes->len; i++) {
        QubesDomainVolume *dv = dom->volumes->pdata[i];
        if (strcmp(dv->vol->name, name) == 0)
            return dv;
    }
    return NULL;
}

GPtrArray *qubes_domain_volume_names(QubesDomain *dom)
{
    GPtrArray *out = g_ptr_array_new();
    for (guint i = 0; i < dom->volumes->len; i++)
        g_ptr_array_add(
            out, ((QubesDomainVolume *)dom->volumes->pdata[i])->vol->name);
    return out;
}

static gboolean is_kernel_pool(QubesPool *pool)
{
    return strcmp(qubes_pool_get_driver(pool), "linux-kernel") == 0;
}

/* The configuration @vol was made from, for making it again. */
static QubesVolumeConfig config_of(QubesDomain *dom, QubesVolume *vol)
{
    QubesVolumeConfig c = {0};
    c.name = vol->name;
    c.vid = vol->vid;
    c.vm_name = dom->name;
    c.vm_dir_prefix = dom->klass->dir_prefix;
    c.source = vol->source;
    c.size = vol->size;
    c.rw = vol->rw;
    c.save_on_stop = vol->save_on_stop;
    c.snap_on_start = vol->snap_on_start;
    c.ephemeral = vol->ephemeral;
    c.has_revisions_to_keep = TRUE;
    c.revisions_to_keep = vol->revisions_to_keep;
    return c;
}

QubesVolume *qubes_domain_get_volume(QubesDomain *dom, const char *name)
{
    QubesDomainVolume *dv = find_volume(dom, name);
    if (!dv || !is_kernel_pool(dv->vol->pool))
        return dv ? dv->vol : NULL;
    /* A kernel volume is the `kernel` property's folder, read at each use
     * as the reference's (whose vid is a callable), so that setting or
     * resetting the property, or the default it follows (the template's
     * kernel, default_kernel), re-points it. */
    g_autofree char *kernel = qubes_props_value(&dom->props, "kernel");
    if (g_strcmp0(kernel ? kernel : "", dv->vol->vid) == 0)
        return dv->vol;
    QubesVolumeConfig c = config_of(dom, dv->vol);
    c.vid = kernel ? kernel : "";
    g_autoptr(GError) err = NULL;
    QubesVolume *v = qubes_pool_init_volume(dv->vol->pool, &c, &err);
    if (!v) {
        g_warning("%s: cannot re-point volume %s to kernel %s: %s", dom->name,
                  name, kernel ? kernel : "(none)", err->message);
        return dv->vol;
    }
    qubes_volume_unref(dv->vol);
    dv->vol = v;
    return v;
}

const char *qubes_domain_volume_pool(QubesDomain *dom, const char *name)
{
    QubesDomainVolume *dv = find_volume(dom, name);
    return dv ? qubes_pool_get_name(dv->vol->pool) : NULL;
}

static const char *tf(gboolean b)
{
    return b ? "True" : "False";
}

/* The attributes we interpret; any other is kept verbatim. */
static const char *const known_attrs[] = {
    "name", "pool",         "vid",           "revisions_to_keep",
    "rw",   "save_on_stop", "snap_on_start", "ephemeral",
    "size", "source",       "internal",      NULL};

QxAttrs *qubes_domain_volume_attrs(QubesDomain *dom, guint index)
{
    QubesDomainVolume *dv = dom->volumes->pdata[index];
    QubesVolume *v = qubes_domain_get_volume(dom, dv->vol->name);
    QxAttrs *a = g_ptr_array_new_with_free_func(g_free);
    /* storage Volume.config, in its order. */
    g_autofree char *rtk = g_strdup_printf("%d", v->revisions_to_keep);
    g_autofree char *size = g_strdup_printf("%" G_GUINT64_FORMAT, v->size);
    qx_attrs_set(a, "name", v->name);
    qx_attrs_set(a, "pool", qubes_pool_get_name(v->pool));
    qx_attrs_set(a, "vid", v->vid);
    qx_attrs_set(a, "revisions_to_keep", rtk);
    qx_attrs_set(a, "rw", tf(v->rw));
    qx_attrs_set(a, "save_on_stop", tf(v->save_on_stop));
    qx_attrs_set(a, "snap_on_start", tf(v->snap_on_start));
    if (v->ephemeral != QUBES_EPHEMERAL_DEFAULT)
        qx_attrs_set(a, "ephemeral", tf(v->ephemeral));
    if (v->size)
        qx_attrs_set(a, "size", size);
    if (v->source)
        qx_attrs_set(a, "source", v->source);
    for (guint i = 0; dv->unknown && i + 1 < dv->unknown->len; i += 2)
        qx_attrs_set(a, dv->unknown->pdata[i], dv->unknown->pdata[i + 1]);
    return a;
}

static gboolean attr_bool(const QxAttrs *c, const char *name)
{
    const char *v = qx_attrs_get(c, name);
    return v && (strcmp(v, "True") == 0 || strcmp(v, "true") == 0 ||
                 strcmp(v, "1") == 0);
}

/* Makes the storage object of one volume from @cfg (name, vid, flags,
 * ...) in @pool_name and appends it to the domain (no disk work). A
 * kernel volume's vid is the kernel property. */
static gboolean add_volume(QubesDomain *dom, QubesVolumeConfig *cfg,
                           const char *pool_name, QxAttrs *unknown,
                           GError **error)
{
    if (!cfg->name || !qubes_name_is_valid_volume(cfg->name)) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                    "%s: a volume has no valid name", dom->name);
        return FALSE;
    }
    if (find_volume(dom, cfg->name)) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                    "%s: volume %s given twice", dom->name, cfg->name);
        return FALSE;
    }
    QubesPool *pool =
        pool_name ? qubes_app_get_pool(dom->app, pool_name, error) : NULL;
    if (!pool) {
        if (!pool_name)
            g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                        "%s: volume %s has no pool", dom->name, cfg->name);
        return FALSE;
    }
    g_autofree char *kernel = NULL;
    if (is_kernel_pool(pool)) {
        kernel = qubes_props_value(&dom->props, "kernel");
        cfg->vid = kernel ? kernel : "";
    }
    cfg->vm_name = dom->name;
    cfg->vm_dir_prefix = dom->klass->dir_prefix;
    QubesVolume *vol = qubes_pool_init_volume(pool, cfg, error);
    if (!vol) {
        g_prefix_error(error, "%s: volume %s: ", dom->name, cfg->name);
        return FALSE;
    }
    QubesDomainVolume *dv = g_new0(QubesDomainVolume, 1);
    dv->vol = vol;
    dv->unknown = unknown ? g_ptr_array_ref(unknown) : NULL;
    g_ptr_array_add(dom->volumes, dv);
    return TRUE;
}

gboolean qubes_domain_load_volume_internal(QubesDomain *dom, const QxAttrs *c,
                                           GError **error);

/* A <volume> of qubes.xml, read into the domain's typed configuration. */
gboolean qubes_domain_load_volume_internal(QubesDomain *dom, const QxAttrs *c,
                                           GError **error)
{
    QubesVolumeConfig cfg = {0};
    cfg.name = qx_attrs_get(c, "name");
    cfg.vid = qx_attrs_get(c, "vid");
    cfg.source = qx_attrs_get(c, "source");
    if (cfg.source && !*cfg.source)
        cfg.source = NULL;
    const char *size = qx_attrs_get(c, "size");
    if (size && !qubes_parse_uint64(size, "size", &cfg.size, error))
        return FALSE;
    cfg.rw = attr_bool(c, "rw");
    cfg.save_on_stop = attr_bool(c, "save_on_stop");
    cfg.snap_on_start = attr_bool(c, "snap_on_start");
    cfg.ephemeral = qx_attrs_get(c, "ephemeral") ? attr_bool(c, "ephemeral")
                                                 : QUBES_EPHEMERAL_DEFAULT;
    const char *rtk = qx_attrs_get(c, "revisions_to_keep");
    if (rtk) {
        gint64 v;
        if (!qubes_parse_int64(rtk, TRUE, "revisions_to_keep", &v, error))
            return FALSE;
        cfg.has_revisions_to_keep = TRUE;
        cfg.revisions_to_keep = (int)CLAMP(v, G_MININT, G_MAXINT);
    }
    g_autoptr(GPtrArray) unknown = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i + 1 < c->len; i += 2) {
        if (!g_strv_contains(known_attrs, c->pdata[i]))
            qx_attrs_set(unknown, c->pdata[i], c->pdata[i + 1]);
    }
    return add_volume(dom, &cfg, qx_attrs_get(c, "pool"),
                      unknown->len ? unknown : NULL, error);
}

GPtrArray *qubes_domain_volume_refs(QubesDomain *dom)
{
    GPtrArray *out =
        g_ptr_array_new_with_free_func((GDestroyNotify)qubes_volume_unref);
    for (guint i = 0; i < dom->volumes->len; i++) {
        QubesDomainVolume *dv = dom->volumes->pdata[i];
        g_ptr_array_add(
            out, qubes_volume_ref(qubes_domain_get_volume(dom, dv->vol->name)));
    }
    return out;
}

/* Class defaults (appvm.py, templatevm.py, standalonevm.py, dispvm.py). */
typedef struct {
    const char *name;
    gboolean snap_on_start, save_on_stop, rw;
    guint64 size;
    gboolean from_template; /* source (and pool) from the template */
} VolDefault;

static const VolDefault template_vols[] = {
    {"root", FALSE, TRUE, TRUE, ROOT_IMG_SIZE, FALSE},
    {"private", FALSE, TRUE, TRUE, PRIVATE_IMG_SIZE, FALSE},
    {"volatile", FALSE, FALSE, TRUE, ROOT_IMG_SIZE, FALSE},
    {"kernel", FALSE, FALSE, FALSE, 0, FALSE},
    {NULL},
};
static const VolDefault appvm_vols[] = {
    {"root", TRUE, FALSE, TRUE, 0, TRUE},
    {"private", FALSE, TRUE, TRUE, PRIVATE_IMG_SIZE, FALSE},
    {"volatile", FALSE, FALSE, TRUE, ROOT_IMG_SIZE, FALSE},
    {"kernel", FALSE, FALSE, FALSE, 0, FALSE},
    {NULL},
};
static const VolDefault dispvm_vols[] = {
    {"root", TRUE, FALSE, TRUE, 0, TRUE},
    {"private", TRUE, FALSE, TRUE, 0, TRUE},
    {"volatile", FALSE, FALSE, TRUE, ROOT_IMG_SIZE + PRIVATE_IMG_SIZE, FALSE},
    {"kernel", FALSE, FALSE, FALSE, 0, FALSE},
    {NULL},
};

gboolean qubes_domain_config_volumes_internal(QubesDomain *dom,
                                              const char *pool,
                                              GHashTable *pools,
                                              GError **error);

/* Configures the class's volumes for a new domain and makes the storage
 * objects. @pool: every volume there; @pools: per volume. */
gboolean qubes_domain_config_volumes_internal(QubesDomain *dom,
                                              const char *pool,
                                              GHashTable *pools, GError **error)
{
    const VolDefault *defs = NULL;
    if (vm_is(dom, "TemplateVM") || vm_is(dom, "StandaloneVM"))
        defs = template_vols;
    else if (vm_is(dom, "AppVM"))
        defs = appvm_vols;
    else if (vm_is(dom, "DispVM"))
        defs = dispvm_vols;
    if (!defs)
        return TRUE;
    QubesDomain *tpl = qubes_domain_get_template(dom);
    gboolean dispvm = vm_is(dom, "DispVM");
    for (const VolDefault *d = defs; d->name; d++) {
        QubesVolumeConfig cfg = {0};
        cfg.name = d->name;
        cfg.size = d->size;
        cfg.rw = d->rw;
        cfg.snap_on_start = d->snap_on_start;
        cfg.save_on_stop = d->save_on_stop;
        cfg.ephemeral = QUBES_EPHEMERAL_DEFAULT;
        const char *asked = pools ? g_hash_table_lookup(pools, d->name) : NULL;
        g_autofree char *pool_name = NULL;
        /* A DispVM takes its AppVM's live settings for the same volume:
         * its pool, rw, and ephemeral when set (dispvm.py). */
        QubesVolume *like =
            dispvm && tpl ? qubes_domain_get_volume(tpl, d->name) : NULL;
        if (like) {
            cfg.rw = like->rw;
            cfg.ephemeral = like->ephemeral;
        }
        if (d->from_template) {
            QubesVolume *src = like  ? like
                               : tpl ? qubes_domain_get_volume(tpl, d->name)
                                     : NULL;
            if (!src) {
                g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                            "%s: template has no %s volume to snapshot",
                            dom->name, d->name);
                return FALSE;
            }
            if (asked) { /* the reference's words, its typo included */
                g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                            "Snapshot volume %s must be in the same pool as "
                            "its origin (%s volume of template),cannot move "
                            "to pool %s ",
                            d->name, d->name, asked);
                return FALSE;
            }
            /* A snapshot lives in its source's pool; a snapshot of a
             * snapshot has the same source. */
            pool_name = g_strdup(qubes_pool_get_name(src->pool));
            cfg.source =
                src->snap_on_start && src->source ? src->source : src->vid;
            cfg.size = src->size;
        } else if (asked) {
            pool_name = g_strdup(asked);
        } else if (pool && cfg.rw) { /* pool= moves writable volumes */
            pool_name = g_strdup(pool);
        } else if (like) {
            pool_name = g_strdup(qubes_pool_get_name(like->pool));
        } else {
            pool_name = qubes_app_default_pool(dom->app, d->name);
        }
        if (!add_volume(dom, &cfg, pool_name, NULL, error))
            return FALSE;
    }
    return TRUE;
}

static void follow_template(QubesDomain *dom, QubesDomain *tpl)
{
    for (guint i = 0; i < dom->volumes->len; i++) {
        QubesDomainVolume *dv = dom->volumes->pdata[i];
        QubesVolume *vol = dv->vol;
        QubesVolume *src = qubes_domain_get_volume(tpl, vol->name);
        if (!vol->snap_on_start || !src)
            continue;
        const char *source =
            src->snap_on_start && src->source ? src->source : src->vid;
        if (src->pool == vol->pool) {
            qubes_volume_set_source(vol, source);
            continue;
        }
        /* The origin lives in another pool now: so does the snapshot.
         * Halted, a snapshot volume holds no data to move. */
        QubesVolumeConfig c = config_of(dom, vol);
        c.vid = NULL;
        c.source = source;
        g_autoptr(GError) err = NULL;
        QubesVolume *nv = qubes_pool_init_volume(src->pool, &c, &err);
        if (!nv) {
            g_warning("%s: volume %s cannot follow its template to pool %s: "
                      "%s",
                      dom->name, vol->name, qubes_pool_get_name(src->pool),
                      err->message);
            continue;
        }
        if (!qubes_volume_remove(vol, &err))
            g_warning("%s: volume %s left in pool %s: %s", dom->name, vol->name,
                      qubes_pool_get_name(vol->pool), err->message);
        qubes_volume_unref(vol);
        dv->vol = nv;
    }
}

void qubes_domain_follow_template(QubesDomain *dom)
{
    QubesDomain *tpl = qubes_domain_get_template(dom);
    if (!tpl)
        return;
    follow_template(dom, tpl);
    for (guint i = 0; i < dom->app->domains->len; i++) {
        QubesDomain *d = dom->app->domains->pdata[i];
        if (d != dom && qubes_domain_get_template(d) == dom)
            follow_template(d, dom);
    }
}

/* ---- storage work, for workers ---- */

gboolean qubes_storage_create(GPtrArray *volumes, const char *dir_path,
                              GError **error)
{
    /* The domain's folder may exist already (SPEC 3: create over an
     * existing folder succeeds). */
    if (dir_path && g_mkdir_with_parents(dir_path, 0775) != 0)
        return qubes_error_errno(error, errno, "Cannot create %s", dir_path);
    for (guint i = 0; i < volumes->len; i++) {
        if (!qubes_volume_create(volumes->pdata[i], error)) {
            for (guint j = 0; j < i; j++)
                qubes_volume_remove(volumes->pdata[j], NULL);
            return FALSE;
        }
    }
    return TRUE;
}

gboolean qubes_storage_remove(GPtrArray *volumes, const char *dir_path,
                              GError **error)
{
    gboolean ok = TRUE;
    for (guint i = 0; i < volumes->len; i++) {
        GError *e = NULL;
        if (!qubes_volume_remove(volumes->pdata[i], &e)) {
            if (ok)
                g_propagate_error(error, e);
            else
                g_error_free(e);
            ok = FALSE;
        }
    }
    /* The folder goes when nothing else is in it (libvirt config, icons
     * and the like are the VM runtime's; rmdir refuses a full folder). */
    if (dir_path && g_rmdir(dir_path) != 0 && errno != ENOENT &&
        errno != ENOTEMPTY)
        g_warning("cannot remove %s: %s", dir_path, g_strerror(errno));
    return ok;
}

gboolean qubes_storage_clone(GPtrArray *dst, GPtrArray *src, GError **error)
{
    for (guint i = 0; i < dst->len; i++) {
        QubesVolume *d = dst->pdata[i];
        for (guint j = 0; j < src->len; j++) {
            QubesVolume *s = src->pdata[j];
            if (strcmp(s->name, d->name) || !s->save_on_stop ||
                !d->save_on_stop)
                continue;
            if (!qubes_volume_import_volume(d, s, NULL, NULL, error))
                return FALSE;
        }
    }
    return TRUE;
}
