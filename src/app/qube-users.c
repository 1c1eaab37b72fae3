/* qube-users.c: what a qube owes the qubes that use it (qube-users.h). */
#include "qube-users.h"

#include "domain.h"
#include "lookup.h"
#include "net.h"
#include "qubes-error.h"

#include <string.h>

/* The running qubes among @users (without the preloaded disposables
 * when @skip_preload), joined with ", " as master names them; NULL when
 * there are none. */
static char *running_names(GPtrArray *users, gboolean skip_preload)
{
    GString *s = NULL;
    for (guint i = 0; i < users->len; i++) {
        QubesDomain *d = users->pdata[i];
        if (!qubes_domain_is_running(d) ||
            (skip_preload && qubes_domain_flag(d, "is_preload")))
            continue;
        if (!s)
            s = g_string_new(NULL);
        else
            g_string_append(s, ", ");
        g_string_append(s, d->name);
    }
    return s ? g_string_free(s, FALSE) : NULL;
}

/* The qubes other than @vm whose property @prop (its default followed)
 * names @vm, in the app's order. */
static GPtrArray *users_by(QubesDomain *vm, const char *prop)
{
    GPtrArray *out = g_ptr_array_new();
    for (guint i = 0; i < vm->app->domains->len; i++) {
        QubesDomain *d = vm->app->domains->pdata[i];
        if (d == vm || !qubes_props_def(&d->props, prop, NULL))
            continue;
        g_autofree char *v = qubes_props_value(&d->props, prop);
        if (g_strcmp0(v, vm->name) == 0)
            g_ptr_array_add(out, d);
    }
    return out;
}

static gboolean forced(QubesEvent *ev)
{
    return g_strcmp0(qubes_event_get(ev, "force"), "True") == 0;
}

static gboolean on_pre_shutdown_net(QubesEvent *ev, gpointer data,
                                    GError **error)
{
    QubesDomain *vm = qubes_domain_of_emitter(ev->subject);
    if (!qubes_domain_flag(vm, "provides_network") || forced(ev))
        return TRUE;
    g_autoptr(GPtrArray) users = qubes_domain_connected_vms(vm);
    g_autofree char *names = running_names(users, TRUE);
    if (!names)
        return TRUE;
    g_set_error(error, QUBES_ERROR, QUBES_ERROR_VM_IN_USE,
                "There are other VMs connected to this VM: %s", names);
    return FALSE;
}

/* The users of an audio or a GUI qube: the property that names it, and
 * master's refusal. */
typedef struct {
    const char *prop;
    gboolean skip_preload;
    QubesErrorCode code;
    const char *as;
} UsedAs;

static const UsedAs audiovm = {"audiovm", TRUE, QUBES_ERROR_VM_IN_USE,
                               "AudioVM"};
static const UsedAs guivm = {"guivm", FALSE, QUBES_ERROR_VM, "GuiVM"};

static gboolean on_pre_shutdown_used_as(QubesEvent *ev, gpointer data,
                                        GError **error)
{
    const UsedAs *u = data;
    QubesDomain *vm = qubes_domain_of_emitter(ev->subject);
    if (forced(ev))
        return TRUE;
    g_autoptr(GPtrArray) users = users_by(vm, u->prop);
    g_autofree char *names = running_names(users, u->skip_preload);
    if (!names)
        return TRUE;
    g_set_error(error, QUBES_ERROR, u->code,
                "There are running VMs using this VM as %s: %s", u->as, names);
    return FALSE;
}

static gboolean on_keyboard_set(QubesEvent *ev, gpointer data, GError **error)
{
    QubesDomain *vm = qubes_domain_of_emitter(ev->subject);
    const char *old = qubes_event_get(ev, "oldvalue");
    if (g_strcmp0(qubes_event_get(ev, "newvalue"), old) == 0)
        return TRUE;
    g_autoptr(GPtrArray) users = users_by(vm, "guivm");
    for (guint i = 0; i < users->len; i++) {
        QubesDomain *d = users->pdata[i];
        if (qubes_props_is_default(&d->props, "keyboard_layout"))
            qubes_props_notify_reset(&d->props, "keyboard_layout", old);
    }
    return TRUE;
}

void qubes_qube_users_register(QubesApp *app)
{
    /* the network mixin's own, then the extensions' (audio before gui,
     * as master loads them) */
    qubes_event_add_class_handler(app->registry, "QubesVM",
                                  "domain-pre-shutdown", on_pre_shutdown_net,
                                  QUBES_HANDLER_BOUND, app, NULL);
    qubes_event_add_class_handler(
        app->registry, "BaseVM", "domain-pre-shutdown", on_pre_shutdown_used_as,
        0, (gpointer)&audiovm, NULL);
    qubes_event_add_class_handler(
        app->registry, "BaseVM", "domain-pre-shutdown", on_pre_shutdown_used_as,
        0, (gpointer)&guivm, NULL);
    qubes_event_add_class_handler(app->registry, "BaseVM",
                                  "property-set:keyboard_layout",
                                  on_keyboard_set, 0, app, NULL);
}
