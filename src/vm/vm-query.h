/* vm-query.h: what the hypervisor says of running qubes (vm-query.c):
 * a qube's memory and CPU time, every running qube's statistics in one
 * call (admin.vm.Stats), a qube's console pty (admin.vm.Console). */
#pragma once

#include "app.h"

G_BEGIN_DECLS

/* What the hypervisor says of a running qube (KiB, nanoseconds). */
typedef struct {
    guint64 mem;
    guint64 mem_static_max;
    guint64 cputime;
} QubesDomainInfo;
void qubes_runtime_info(QubesRuntime *rt, QubesDomain *dom,
                        GAsyncReadyCallback cb, gpointer data);
gboolean qubes_runtime_info_finish(GAsyncResult *res, QubesDomainInfo *info,
                                   GError **error);

/* What admin.vm.Stats sends of one running qube. */
typedef struct {
    QubesDomain *dom; /* not referenced: valid until the main loop runs */
    guint64 memory_kb;
    guint64 cpu_time_ns; /* all vCPUs together */
    guint vcpus;
} QubesDomainStat;
/* The statistics of every running qube libvirt knows (dom0 too on Xen),
 * in one call on a worker. Finish gives QubesDomainStat* (free). */
void qubes_runtime_stats(QubesRuntime *rt, GAsyncReadyCallback cb,
                         gpointer data);
GPtrArray *qubes_runtime_stats_finish(QubesRuntime *rt, GAsyncResult *res,
                                      GError **error);

/* The pty of the qube's console (admin.vm.Console), new string. */
void qubes_runtime_console(QubesRuntime *rt, QubesDomain *dom,
                           GAsyncReadyCallback cb, gpointer data);
char *qubes_runtime_console_finish(GAsyncResult *res, GError **error);

G_END_DECLS
