/* qubes-error.h: the project's single GError domain.
 *
 * Every error the core reports carries one of these codes; the Admin API
 * turns the code into the Qubes exception name a client expects
 * (qubes_error_exception_name()). Messages name the path, volume or
 * property involved and the cause.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define QUBES_ERROR (qubes_error_quark())
GQuark qubes_error_quark(void);

typedef enum {
    QUBES_ERROR_EXCEPTION,           /* QubesException */
    QUBES_ERROR_STORAGE_POOL,        /* StoragePoolException */
    QUBES_ERROR_VALUE,               /* QubesValueError */
    QUBES_ERROR_NOT_IMPLEMENTED,     /* QubesNotImplementedError */
    QUBES_ERROR_VM_NOT_FOUND,        /* QubesVMNotFoundError */
    QUBES_ERROR_VM_NOT_HALTED,       /* QubesVMNotHaltedError */
    QUBES_ERROR_PROTOCOL,            /* ProtocolError */
    QUBES_ERROR_PERMISSION_DENIED,   /* PermissionDenied */
    QUBES_ERROR_NO_SUCH_PROPERTY,    /* QubesNoSuchPropertyError */
    QUBES_ERROR_PROPERTY_VALUE,      /* QubesPropertyValueError */
    QUBES_ERROR_VM_IN_USE,           /* QubesVMInUseError */
    QUBES_ERROR_FEATURE_NOT_FOUND,   /* QubesFeatureNotFoundError */
    QUBES_ERROR_TAG_NOT_FOUND,       /* QubesTagNotFoundError */
    QUBES_ERROR_LABEL_NOT_FOUND,     /* QubesLabelNotFoundError */
    QUBES_ERROR_POOL_IN_USE,         /* QubesPoolInUseError */
    QUBES_ERROR_VM_NOT_RUNNING,      /* QubesVMNotRunningError */
    QUBES_ERROR_VM_ALREADY_EXISTS,   /* QubesVMAlreadyExistsError */
    QUBES_ERROR_VM_INVALID_UUID,     /* QubesVMInvalidUUIDError */
    QUBES_ERROR_VM,                  /* QubesVMError */
    QUBES_ERROR_VM_NOT_STARTED,      /* QubesVMNotStartedError */
    QUBES_ERROR_NO_TEMPLATE,         /* QubesNoTemplateError */
    QUBES_ERROR_MEMORY,              /* QubesMemoryError */
    QUBES_ERROR_LABEL_IN_USE,        /* QubesLabelInUseError */
    QUBES_ERROR_VM_NOT_PAUSED,       /* QubesVMNotPausedError */
    QUBES_ERROR_VM_NOT_SUSPENDED,    /* QubesVMNotSuspendedError */
    QUBES_ERROR_VM_SHUTDOWN_TIMEOUT, /* QubesVMShutdownTimeoutError */
    /* The reference's ProtocolError subclasses: answered like it. */
    QUBES_ERROR_INVALID_TAG,         /* QubesInvalidTagError */
    QUBES_ERROR_INVALID_LABEL,       /* QubesInvalidLabelError */
    QUBES_ERROR_INVALID_LABEL_VALUE, /* QubesInvalidLabelValueError */
    QUBES_ERROR_CLONE_TOKEN,         /* QubesVolumeCopyTokenNotFoundError */
    /* KeyError subclasses there (a dropped connection): answered here. */
    QUBES_ERROR_REVISION_NOT_FOUND, /* QubesVolumeRevisionNotFoundError */
    QUBES_ERROR_POOL_NOT_FOUND,     /* QubesPoolNotFoundError */
    QUBES_ERROR_VOLUME_NOT_FOUND,   /* QubesVolumeNotFoundError */
    /* devices (qubes/exc.py; KeyError/ValueError subclasses there too) */
    QUBES_ERROR_DEVICE_NOT_ASSIGNED,     /* DeviceNotAssigned */
    QUBES_ERROR_DEVICE_ALREADY_ASSIGNED, /* DeviceAlreadyAssigned */
    QUBES_ERROR_DEVICE_ALREADY_ATTACHED, /* DeviceAlreadyAttached */
    QUBES_ERROR_UNRECOGNIZED_DEVICE,     /* UnrecognizedDevice */
    /* backups (QubesException subclasses there) */
    QUBES_ERROR_BACKUP_PROFILE_NOT_FOUND, /* QubesBackupProfileNotFoundError */
    QUBES_ERROR_BACKUP_CANCELLED,         /* BackupCancelledError */
    QUBES_ERROR_BACKUP_ALREADY_RUNNING,   /* BackupAlreadyRunningError */
    /* A system call of the storage file layer failed (StoragePoolException;
     * the storage API adds the pool's name and makes it STORAGE_POOL). */
    QUBES_ERROR_STORAGE_IO,
} QubesErrorCode;

/* Returns the Qubes exception class name for @code (static string). */
const char *qubes_error_exception_name(QubesErrorCode code);

/* Sets @error to a QUBES_ERROR_STORAGE_POOL error whose message is the
 * formatted text followed by ": " and strerror(@errsv). Returns FALSE so
 * callers can write `return qubes_error_errno(...)`. */
gboolean qubes_error_errno(GError **error, int errsv, const char *format, ...)
    G_GNUC_PRINTF(3, 4);
/* The same with @code. */
gboolean qubes_error_errno_code(GError **error, int code, int errsv,
                                const char *format, ...) G_GNUC_PRINTF(4, 5);
/* Sets @error to a QUBES_ERROR error of @code with the formatted text;
 * returns FALSE (`return qubes_error_fail(...)`). */
gboolean qubes_error_fail(GError **error, int code, const char *format, ...)
    G_GNUC_PRINTF(3, 4);

G_END_DECLS
