/* runtime-config.h: what the runtime is made with (runtime.h), and the
 * name of its preloads' type: types only, for the runtime's rooms and
 * its users alike. */
#pragma once

#include "domxml.h"

#include <glib.h>

G_BEGIN_DECLS

/* The runtime's preloaded disposables (preload-run.h). */
typedef struct _QubesPreload QubesPreload;

typedef struct {
    char *uri; /* libvirt connection URI */
    QubesHvType hv;
    char *log_dir; /* guest console logs: LOG_DIR/guest-NAME.log */
    /* qmemmand's socket, asked for a qube's memory before it is created
     * (NULL: no balancer, the --no-memory-balancing path) */
    char *qmemman_socket;
    /* qmemmand's status socket: on Xen, autostart waits until dom0 has
     * reported its memory use there (NULL: no wait) */
    char *qmemman_status_socket;
    /* qmemmand's available-memory file (master's qmemman_avail_mem_file):
     * preloaded disposables are made only as far as it has room for them
     * (NULL: no balancer, preloads are not limited by memory) */
    char *qmemman_avail_mem_file;
    /* Autostart (qubes whose autostart is True, once the runtime knows
     * which qubes run) when this file is absent, which it then writes:
     * once per boot, the file being in /run (NULL: no autostart). */
    char *autostart_marker;
} QubesRuntimeConfig;

G_END_DECLS
