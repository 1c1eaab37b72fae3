#include "qubes-error.h"

#include <stdarg.h>

G_DEFINE_QUARK(qubes - error - quark, qubes_error)

const char *qubes_error_exception_name(QubesErrorCode code)
{
    switch (code) {
    case QUBES_ERROR_STORAGE_POOL:
    case QUBES_ERROR_STORAGE_IO:
        return "StoragePoolException";
    case QUBES_ERROR_VALUE:
        return "QubesValueError";
    case QUBES_ERROR_NOT_IMPLEMENTED:
        return "QubesNotImplementedError";
    case QUBES_ERROR_VM_NOT_FOUND:
        return "QubesVMNotFoundError";
    case QUBES_ERROR_VM_NOT_HALTED:
        return "QubesVMNotHaltedError";
    case QUBES_ERROR_PROTOCOL:
        return "ProtocolError";
    case QUBES_ERROR_PERMISSION_DENIED:
        return "PermissionDenied";
    case QUBES_ERROR_NO_SUCH_PROPERTY:
        return "QubesNoSuchPropertyError";
    case QUBES_ERROR_PROPERTY_VALUE:
        return "QubesPropertyValueError";
    case QUBES_ERROR_VM_IN_USE:
        return "QubesVMInUseError";
    case QUBES_ERROR_FEATURE_NOT_FOUND:
        return "QubesFeatureNotFoundError";
    case QUBES_ERROR_TAG_NOT_FOUND:
        return "QubesTagNotFoundError";
    case QUBES_ERROR_LABEL_NOT_FOUND:
        return "QubesLabelNotFoundError";
    case QUBES_ERROR_POOL_IN_USE:
        return "QubesPoolInUseError";
    case QUBES_ERROR_VM_NOT_RUNNING:
        return "QubesVMNotRunningError";
    case QUBES_ERROR_VM_ALREADY_EXISTS:
        return "QubesVMAlreadyExistsError";
    case QUBES_ERROR_VM_INVALID_UUID:
        return "QubesVMInvalidUUIDError";
    case QUBES_ERROR_VM:
        return "QubesVMError";
    case QUBES_ERROR_VM_NOT_STARTED:
        return "QubesVMNotStartedError";
    case QUBES_ERROR_NO_TEMPLATE:
        return "QubesNoTemplateError";
    case QUBES_ERROR_MEMORY:
        return "QubesMemoryError";
    case QUBES_ERROR_LABEL_IN_USE:
        return "QubesLabelInUseError";
    case QUBES_ERROR_VM_NOT_PAUSED:
        return "QubesVMNotPausedError";
    case QUBES_ERROR_VM_NOT_SUSPENDED:
        return "QubesVMNotSuspendedError";
    case QUBES_ERROR_VM_SHUTDOWN_TIMEOUT:
        return "QubesVMShutdownTimeoutError";
    case QUBES_ERROR_INVALID_TAG:
        return "QubesInvalidTagError";
    case QUBES_ERROR_INVALID_LABEL:
        return "QubesInvalidLabelError";
    case QUBES_ERROR_INVALID_LABEL_VALUE:
        return "QubesInvalidLabelValueError";
    case QUBES_ERROR_CLONE_TOKEN:
        return "QubesVolumeCopyTokenNotFoundError";
    case QUBES_ERROR_REVISION_NOT_FOUND:
        return "QubesVolumeRevisionNotFoundError";
    case QUBES_ERROR_POOL_NOT_FOUND:
        return "QubesPoolNotFoundError";
    case QUBES_ERROR_VOLUME_NOT_FOUND:
        return "QubesVolumeNotFoundError";
    case QUBES_ERROR_DEVICE_NOT_ASSIGNED:
        return "DeviceNotAssigned";
    case QUBES_ERROR_DEVICE_ALREADY_ASSIGNED:
        return "DeviceAlreadyAssigned";
    case QUBES_ERROR_DEVICE_ALREADY_ATTACHED:
        return "DeviceAlreadyAttached";
    case QUBES_ERROR_UNRECOGNIZED_DEVICE:
        return "UnrecognizedDevice";
    case QUBES_ERROR_BACKUP_PROFILE_NOT_FOUND:
        return "QubesBackupProfileNotFoundError";
    case QUBES_ERROR_BACKUP_CANCELLED:
        return "BackupCancelledError";
    case QUBES_ERROR_BACKUP_ALREADY_RUNNING:
        return "BackupAlreadyRunningError";
    case QUBES_ERROR_EXCEPTION:
    default:
        return "QubesException";
    }
}

static void set_errno(GError **error, int code, int errsv, const char *format,
                      va_list ap) G_GNUC_PRINTF(4, 0);

static void set_errno(GError **error, int code, int errsv, const char *format,
                      va_list ap)
{
    g_autofree char *what = g_strdup_vprintf(format, ap);
    g_set_error(error, QUBES_ERROR, code, "%s: %s", what, g_strerror(errsv));
}

gboolean qubes_error_errno(GError **error, int errsv, const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    set_errno(error, QUBES_ERROR_STORAGE_POOL, errsv, format, ap);
    va_end(ap);
    return FALSE;
}

gboolean qubes_error_errno_code(GError **error, int code, int errsv,
                                const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    set_errno(error, code, errsv, format, ap);
    va_end(ap);
    return FALSE;
}

gboolean qubes_error_fail(GError **error, int code, const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    g_autofree char *msg = g_strdup_vprintf(format, ap);
    va_end(ap);
    g_set_error_literal(error, QUBES_ERROR, code, msg);
    return FALSE;
}
