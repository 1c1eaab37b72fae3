/* libvirt-ops.c: one blocking libvirt call on a worker (libvirt-ops.h). */
#include "libvirt-ops.h"

#include <libvirt/virterror.h>
#include <string.h>

static void op_free(Op *op)
{
    rt_unref(op->rt);
    g_free(op->uuid);
    g_free(op->xml);
    g_free(op->tty);
    g_free(op);
}

static char *console_tty(const char *xml)
{
    /* /domain/devices/console/@tty, as master reads it. */
    const char *c = strstr(xml, "<console ");
    const char *t = c ? strstr(c, "tty='") : NULL;
    if (!t)
        return g_strdup("");
    t += 5;
    const char *e = strchr(t, '\'');
    return e ? g_strndup(t, (gsize)(e - t)) : g_strdup("");
}

static void op_thread(GTask *task, gpointer src, gpointer data,
                      GCancellable *cancel)
{
    Op *op = data;
    GError *err = NULL;
    virConnectPtr c = rt_conn_get(op->rt, &err);
    if (!c) {
        g_task_return_error(task, err);
        return;
    }
    virDomainPtr d = NULL;
    int rc = 0;
    if (op->kind == OP_CREATE) {
        d = virDomainCreateXML(c, op->xml, VIR_DOMAIN_START_PAUSED);
        if (!d)
            rc = -1;
        else
            op->id = virDomainGetID(d);
    } else {
        d = virDomainLookupByUUIDString(c, op->uuid);
        if (!d) {
            g_set_error(&err, QUBES_ERROR, QUBES_ERROR_VM_NOT_STARTED,
                        "no such domain in libvirt");
            virConnectClose(c);
            g_task_return_error(task, err);
            return;
        }
        switch (op->kind) {
        case OP_RESUME:
            rc = virDomainResume(d);
            break;
        case OP_SUSPEND:
            rc = virDomainSuspend(d);
            break;
        case OP_DESTROY:
            rc = virDomainDestroy(d);
            break;
        case OP_SHUTDOWN:
            rc = virDomainShutdown(d);
            break;
        case OP_PM_SUSPEND:
            rc = virDomainPMSuspendForDuration(d, VIR_NODE_SUSPEND_TARGET_MEM,
                                               0, 0);
            break;
        case OP_PM_WAKEUP:
            rc = virDomainPMWakeup(d, 0);
            break;
        case OP_INFO: {
            virDomainInfo info;
            rc = virDomainGetInfo(d, &info);
            if (rc == 0) {
                op->mem = info.memory;
                op->maxmem = info.maxMem;
                op->cputime = info.cpuTime;
                op->state = info.state;
            }
            break;
        }
        case OP_CONSOLE: {
            char *xml = virDomainGetXMLDesc(d, 0);
            if (!xml)
                rc = -1;
            else
                op->tty = console_tty(xml);
            free(xml);
            break;
        }
        case OP_ATTACH_NIC:
            /* The seed's rule: detach first (ignoring its error), so that
             * a NIC left from an earlier attach never doubles. */
            virDomainDetachDeviceFlags(d, op->xml, VIR_DOMAIN_AFFECT_LIVE);
            virResetLastError();
            rc = virDomainAttachDeviceFlags(d, op->xml, VIR_DOMAIN_AFFECT_LIVE);
            break;
        case OP_DETACH_NIC:
        case OP_DETACH_DISK:
            rc = virDomainDetachDeviceFlags(d, op->xml, VIR_DOMAIN_AFFECT_LIVE);
            break;
        case OP_ATTACH_DISK:
            rc = virDomainAttachDeviceFlags(d, op->xml, VIR_DOMAIN_AFFECT_LIVE);
            break;
        case OP_CREATE:
            break;
        }
    }
    if (rc < 0) {
        virErrorPtr e = virGetLastError();
        QubesErrorCode code = QUBES_ERROR_EXCEPTION;
        if (e && (e->code == VIR_ERR_OPERATION_INVALID ||
                  e->code == VIR_ERR_NO_DOMAIN))
            code = QUBES_ERROR_VM_NOT_STARTED;
        rt_set_virt_error(&err, code, NULL);
        /* "operation invalid" on a device of a domain that still runs is
         * about the device (a PCI device another domain holds), not the
         * domain (asking resets libvirt's error: the message is kept) */
        if (code == QUBES_ERROR_VM_NOT_STARTED && d &&
            (op->kind == OP_ATTACH_DISK || op->kind == OP_DETACH_DISK ||
             op->kind == OP_ATTACH_NIC || op->kind == OP_DETACH_NIC) &&
            virDomainIsActive(d) == 1)
            err->code = QUBES_ERROR_EXCEPTION;
    }
    if (d)
        virDomainFree(d);
    virConnectClose(c);
    if (err)
        g_task_return_error(task, err);
    else
        g_task_return_boolean(task, TRUE);
}

void rt_run_op(QubesRuntime *rt, OpKind kind, QubesDomain *dom, char *xml,
               GAsyncReadyCallback cb, gpointer data)
{
    Op *op = g_new0(Op, 1);
    op->rt = rt_ref(rt);
    op->kind = kind;
    op->uuid = qubes_domain_prop(dom, "uuid");
    op->xml = xml;
    rt_run_in_worker(op_thread, op, (GDestroyNotify)op_free, cb, data);
}

Op *rt_op_of(GAsyncResult *res)
{
    return g_task_get_task_data(G_TASK(res));
}
