/* libvirt-ops.h: one blocking libvirt call on a qube's domain, run on a
 * worker (libvirt-ops.c). The worker finds the domain by the qube's
 * uuid (copied on the main context) and sees nothing else of it; a
 * domain libvirt does not know, or one that is not running, fails with
 * QubesVMNotStartedError (but a device refused to a domain that runs is
 * QubesException), any other failure with libvirt's message. */
#pragma once

#include "runtime-state.h"

G_BEGIN_DECLS

typedef enum {
    OP_CREATE, /* xml: the domain, created paused */
    OP_RESUME,
    OP_SUSPEND,
    OP_DESTROY,
    OP_SHUTDOWN,
    OP_PM_SUSPEND,
    OP_PM_WAKEUP,
    OP_INFO,
    OP_CONSOLE,
    OP_ATTACH_NIC, /* xml: an <interface>; detached first, errors ignored */
    OP_DETACH_NIC,
    OP_ATTACH_DISK, /* xml: a <disk> or a <hostdev> */
    OP_DETACH_DISK,
} OpKind;

typedef struct {
    QubesRuntime *rt;
    OpKind kind;
    char *uuid;
    char *xml;       /* OP_CREATE, attach and detach */
    gint64 id;       /* OP_CREATE: the new domain's id */
    guint64 mem;     /* OP_INFO: KiB */
    guint64 maxmem;  /* OP_INFO: KiB */
    guint64 cputime; /* OP_INFO: ns */
    int state;       /* OP_INFO: virDomainState */
    char *tty;       /* OP_CONSOLE */
} Op;

/* Runs @kind on @dom's domain (@xml taken), then @cb on the main
 * context; its result is a boolean task (qubes_runtime_op_finish). */
void rt_run_op(QubesRuntime *rt, OpKind kind, QubesDomain *dom, char *xml,
               GAsyncReadyCallback cb, gpointer data);
/* The finished call, for what it read (id, info, tty). */
Op *rt_op_of(GAsyncResult *res);

G_END_DECLS
