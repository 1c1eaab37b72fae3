/* devices.h: devices and their assignments, as the reference's device
 * protocol (qubes/device_protocol.py, shared by qubesd and qubesadmin)
 * and qubes/devices.py define them.
 *
 * A *port* is where a backend qube exposes a device of a class (block,
 * pci, ...): (backend, port_id, devclass). A *virtual device* is a port
 * and the identity of what is plugged into it (device_id), either part
 * possibly "*" (any). A *device info* is what a backend says of the
 * device on a port (vendor, product, interfaces, ...). An *assignment*
 * ties a virtual device to a frontend qube with a mode (required,
 * auto-attach, ask-to-attach; manual for a plain attachment) and
 * options; it is kept in qubes.xml.
 *
 * The wire form is the reference's: space-separated key='value' pairs,
 * a "'" inside a value escaped as \', keys and values checked against
 * the reference's character sets, options as _key='value'.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum {
    QUBES_DEV_MANUAL,   /* "manual": attached by hand, not kept */
    QUBES_DEV_ASK,      /* "ask-to-attach" */
    QUBES_DEV_AUTO,     /* "auto-attach" */
    QUBES_DEV_REQUIRED, /* "required": attached at start, or no start */
} QubesDevMode;

const char *qubes_dev_mode_name(QubesDevMode mode);
gboolean qubes_dev_mode_parse(const char *name, QubesDevMode *mode);

/* A virtual device: "*" stands for any. */
typedef struct {
    char *backend; /* the backend qube's name, or "*" */
    char *port_id;
    char *devclass;
    char *device_id;
} QubesVDev;

void qubes_vdev_clear(QubesVDev *v);
/* g_auto(QubesVDev) v = {0}: cleared when it leaves scope. */
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(QubesVDev, qubes_vdev_clear)
void qubes_vdev_copy(QubesVDev *dst, const QubesVDev *src);
/* Same port and identity (the reference's __eq__). */
gboolean qubes_vdev_equal(const QubesVDev *a, const QubesVDev *b);
/* repr(): "backend+port:device_id" */
char *qubes_vdev_repr(const QubesVDev *v);
/* str(): "backend:port:device_id" (an event's device= argument) */
char *qubes_vdev_str(const QubesVDev *v);

/* What a backend exposes on one port. */
typedef struct {
    QubesVDev dev; /* device_id "0000:0000::?******" when unknown */
    char *vendor, *product, *manufacturer, *name, *serial; /* NULL: unknown */
    char *interfaces; /* 7-character codes, concatenated; NULL: "?******" */
    char *parent_port_id, *parent_devclass;
    char *attachment; /* the frontend it is attached to, NULL: none */
    GPtrArray *data;  /* char*: key, value, ... (serialized as _key) */
} QubesDevInfo;

QubesDevInfo *qubes_dev_info_new(const char *backend, const char *port_id,
                                 const char *devclass);
void qubes_dev_info_free(QubesDevInfo *info);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QubesDevInfo, qubes_dev_info_free)

/* An assignment of a device to a frontend. */
typedef struct {
    QubesVDev dev;
    QubesDevMode mode;
    char *frontend;     /* NULL: none given */
    GPtrArray *options; /* char*: name, value, ... in order */
} QubesDevAssignment;

QubesDevAssignment *qubes_dev_assignment_new(const QubesVDev *dev,
                                             QubesDevMode mode);
QubesDevAssignment *qubes_dev_assignment_copy(const QubesDevAssignment *a);
void qubes_dev_assignment_free(QubesDevAssignment *a);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QubesDevAssignment, qubes_dev_assignment_free)
const char *qubes_dev_assignment_option(const QubesDevAssignment *a,
                                        const char *name);
void qubes_dev_assignment_set_option(QubesDevAssignment *a, const char *name,
                                     const char *value);

/* ---- the wire form ---- */

/* key='value' (the reference's pack_property), appended to @out after a
 * space when @out is not empty; FALSE (ProtocolError) on a character
 * outside the reference's sets. */
gboolean qubes_dev_pack(GString *out, const char *key, const char *value,
                        GError **error);
/* VirtualDevice.serialize() */
char *qubes_vdev_serialize(const QubesVDev *v);
/* DeviceInfo.serialize() */
char *qubes_dev_info_serialize(const QubesDevInfo *info, GError **error);
/* DeviceAssignment.serialize() */
char *qubes_dev_assignment_serialize(const QubesDevAssignment *a,
                                     GError **error);

/* The reference's unpack_properties(): @properties and @options get
 * name, value pairs (char*, in order). FALSE (ProtocolError) when the
 * payload is not ASCII or holds a forbidden character. */
gboolean qubes_dev_unpack(const char *untrusted, gsize len,
                          GPtrArray *properties, GPtrArray *options,
                          GError **error);

/* The value of @name in name, value pairs (as qubes_dev_unpack() gives
 * them), or NULL. */
const char *qubes_dev_pairs_get(GPtrArray *pairs, const char *name);

/* DeviceAssignment.deserialize(untrusted, expected_device): the payload
 * of Assign and Attach checked against the device the argument named
 * (@expected; its "*" device_id filled from the payload). A new
 * assignment, or NULL with a ProtocolError. */
QubesDevAssignment *qubes_dev_assignment_deserialize(const char *untrusted,
                                                     gsize len,
                                                     const QubesVDev *expected,
                                                     GError **error);

/* ---- the argument of the device methods ----
 *
 * BACKEND+PORT[+DEVICE_ID]: qrexec arguments hold no ':' nor '*', so
 * the reference's clients write a device_id's ':' as '+' and "*" (any)
 * as "_"; a port or a device id "_" is any. */
typedef struct {
    char *backend;
    char *port_id;
    char *encoded_device_id; /* NULL: none given (any) */
} QubesDevArg;

gboolean qubes_dev_arg_parse(const char *arg, QubesDevArg *out, GError **error);
void qubes_dev_arg_clear(QubesDevArg *a);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(QubesDevArg, qubes_dev_arg_clear)
/* @device_id as a qrexec argument writes it. */
char *qubes_dev_encode_id(const char *device_id);
/* The client's repr_for_qarg: BACKEND+PORT+DEVICE_ID, a ':' as '+',
 * the unknown interface "?******" and any "*" as '_' (new); other
 * characters as they are, which the socket carries and qubesd matches
 * against the payload's device_id. */
char *qubes_dev_repr_for_qarg(const char *backend, const char *port_id,
                              const char *device_id);
/* The device id the argument means: "*" for none or "_", else its ':'
 * restored (an id written with other characters replaced is matched
 * against the known ones by the caller first). */
char *qubes_dev_arg_device_id(const QubesDevArg *a);

/* ---- interfaces (the deny list) ---- */

/* DeviceInterface.from_str_bulk(): 7-character codes; FALSE
 * (QubesValueError) when the text is not a list of them. */
GPtrArray *qubes_dev_interfaces_parse(const char *untrusted, GError **error);
/* DeviceInterface.from_str_bulk's first check: seven characters each
 * (QubesValueError "Invalid length of interfaces=..." otherwise). */
gboolean qubes_dev_interfaces_length_ok(const char *untrusted, GError **error);

G_END_DECLS
