/* net.h: the network of qubes (qubes/vm/mix/net.py): the netvm
 * properties of every QubesVM class and their checks, which keep the
 * network a forest (no qube reaches itself through netvm links, followed
 * defaults included, and every netvm provides network).
 */
#pragma once

#include "model.h"

G_BEGIN_DECLS

/* The network properties of every QubesVM class, and a TemplateVM's
 * netvm (which hides the other); domain.c puts them in its classes. */
extern const QubesPropDef qubes_net_props[];
extern const QubesPropDef qubes_template_net_props[];

/* Whether it has a netvm or provides network itself. */
gboolean qubes_domain_is_networked(QubesDomain *dom);
/* The domains whose netvm (default followed) is @netvm (new array). */
GPtrArray *qubes_domain_connected_vms(QubesDomain *netvm);
/* Whether @dom using @netvm would close a loop of netvm links. */
gboolean qubes_net_would_loop(QubesDomain *dom, QubesDomain *netvm);
/* The netvm setter's checks for @self using @net (NULL: none): provides
 * network, no loop (QubesValueError in the reference's words). */
gboolean qubes_net_check_netvm(QubesDomain *self, QubesDomain *net,
                               GError **error);
/* QubesValueError when any domain reaches itself through netvm links. */
gboolean qubes_net_check_loops(QubesApp *app, GError **error);
/* The handlers that keep the network's events as master's (app.c calls
 * it once, when it makes the app). */
void qubes_net_register_handlers(QubesApp *app);

G_END_DECLS
