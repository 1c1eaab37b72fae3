/* devices.c: the reference's device protocol (devices.h). */
#include "devices.h"

#include "qubes-error.h"
#include "qubes-parse.h"

#include <string.h>

static const char *const mode_names[] = {"manual", "ask-to-attach",
                                         "auto-attach", "required"};

const char *qubes_dev_mode_name(QubesDevMode mode)
{
    return mode_names[mode];
}

gboolean qubes_dev_mode_parse(const char *name, QubesDevMode *mode)
{
    for (guint i = 0; i < G_N_ELEMENTS(mode_names); i++)
        if (strcmp(name, mode_names[i]) == 0) {
            *mode = (QubesDevMode)i;
            return TRUE;
        }
    return FALSE;
}

/* ---- virtual devices ---- */

void qubes_vdev_clear(QubesVDev *v)
{
    g_clear_pointer(&v->backend, g_free);
    g_clear_pointer(&v->port_id, g_free);
    g_clear_pointer(&v->devclass, g_free);
    g_clear_pointer(&v->device_id, g_free);
}

void qubes_vdev_copy(QubesVDev *dst, const QubesVDev *src)
{
    dst->backend = g_strdup(src->backend);
    dst->port_id = g_strdup(src->port_id);
    dst->devclass = g_strdup(src->devclass);
    dst->device_id = g_strdup(src->device_id);
}

gboolean qubes_vdev_equal(const QubesVDev *a, const QubesVDev *b)
{
    return g_strcmp0(a->backend, b->backend) == 0 &&
           g_strcmp0(a->port_id, b->port_id) == 0 &&
           g_strcmp0(a->devclass, b->devclass) == 0 &&
           g_strcmp0(a->device_id, b->device_id) == 0;
}

char *qubes_vdev_repr(const QubesVDev *v)
{
    return g_strdup_printf("%s+%s:%s", v->backend, v->port_id, v->device_id);
}

char *qubes_vdev_str(const QubesVDev *v)
{
    return g_strdup_printf("%s:%s:%s", v->backend, v->port_id, v->device_id);
}

/* ---- device info ---- */

QubesDevInfo *qubes_dev_info_new(const char *backend, const char *port_id,
                                 const char *devclass)
{
    QubesDevInfo *i = g_new0(QubesDevInfo, 1);
    i->dev.backend = g_strdup(backend);
    i->dev.port_id = g_strdup(port_id);
    i->dev.devclass = g_strdup(devclass);
    i->dev.device_id = g_strdup("0000:0000::?******");
    i->data = g_ptr_array_new_with_free_func(g_free);
    return i;
}

void qubes_dev_info_free(QubesDevInfo *info)
{
    if (!info)
        return;
    qubes_vdev_clear(&info->dev);
    g_free(info->vendor);
    g_free(info->product);
    g_free(info->manufacturer);
    g_free(info->name);
    g_free(info->serial);
    g_free(info->interfaces);
    g_free(info->parent_port_id);
    g_free(info->parent_devclass);
    g_free(info->attachment);
    g_ptr_array_unref(info->data);
    g_free(info);
}

/* ---- assignments ---- */

QubesDevAssignment *qubes_dev_assignment_new(const QubesVDev *dev,
                                             QubesDevMode mode)
{
    QubesDevAssignment *a = g_new0(QubesDevAssignment, 1);
    qubes_vdev_copy(&a->dev, dev);
    a->mode = mode;
    a->options = g_ptr_array_new_with_free_func(g_free);
    return a;
}

QubesDevAssignment *qubes_dev_assignment_copy(const QubesDevAssignment *a)
{
    QubesDevAssignment *c = qubes_dev_assignment_new(&a->dev, a->mode);
    c->frontend = g_strdup(a->frontend);
    for (guint i = 0; i < a->options->len; i++)
        g_ptr_array_add(c->options, g_strdup(a->options->pdata[i]));
    return c;
}

void qubes_dev_assignment_free(QubesDevAssignment *a)
{
    if (!a)
        return;
    qubes_vdev_clear(&a->dev);
    g_free(a->frontend);
    g_ptr_array_unref(a->options);
    g_free(a);
}

const char *qubes_dev_assignment_option(const QubesDevAssignment *a,
                                        const char *name)
{
    for (guint i = 0; i + 1 < a->options->len; i += 2)
        if (strcmp(a->options->pdata[i], name) == 0)
            return a->options->pdata[i + 1];
    return NULL;
}

void qubes_dev_assignment_set_option(QubesDevAssignment *a, const char *name,
                                     const char *value)
{
    for (guint i = 0; i + 1 < a->options->len; i += 2)
        if (strcmp(a->options->pdata[i], name) == 0) {
            g_free(a->options->pdata[i + 1]);
            a->options->pdata[i + 1] = g_strdup(value);
            return;
        }
    g_ptr_array_add(a->options, g_strdup(name));
    g_ptr_array_add(a->options, g_strdup(value));
}

/* ---- the wire form ---- */

/* DeviceSerializer.ALLOWED_CHARS_KEY: letters, digits and
 * !#$%&()*+,-./:;<>?@[\]^_{|}~ ; ALLOWED_CHARS_PARAM: those, the rest of
 * string.punctuation and the space (printable ASCII). */
static gboolean key_char(char c)
{
    return g_ascii_isalnum(c) ||
           (c && strchr("!#$%&()*+,-./:;<>?@[\\]^_{|}~", c) != NULL);
}

static gboolean param_char(char c)
{
    return c >= 0x20 && c <= 0x7e;
}

/* sanitize_str(): the characters not allowed, as the reference names them
 * in its message (a set's repr). */
static gboolean sanitize(const char *s, gsize len, gboolean key,
                         const char *what, GError **error)
{
    GString *bad = NULL;
    for (gsize i = 0; i < len; i++) {
        char c = s[i];
        if (key ? key_char(c) : param_char(c))
            continue;
        if (!bad)
            bad = g_string_new("{");
        else if (strchr(bad->str + 1, c))
            continue;
        else
            g_string_append(bad, ", ");
        if (c == '\'')
            g_string_append(bad, "\"'\"");
        else if (c == '\\')
            g_string_append(bad, "'\\\\'");
        else if ((guchar)c >= 0x20 && (guchar)c < 0x7f)
            g_string_append_printf(bad, "'%c'", c);
        else
            g_string_append_printf(bad, "'\\x%02x'", (guchar)c);
    }
    if (!bad)
        return TRUE;
    g_string_append(bad, "}");
    g_set_error(error, QUBES_ERROR, QUBES_ERROR_PROTOCOL,
                "Invalid chars in %s: %s", what, bad->str);
    g_string_free(bad, TRUE);
    return FALSE;
}

gboolean qubes_dev_pack(GString *out, const char *key, const char *value,
                        GError **error)
{
    if (!sanitize(key, strlen(key), TRUE, "property name", error) ||
        !sanitize(value, strlen(value), FALSE, "property value", error))
        return FALSE;
    if (out->len)
        g_string_append_c(out, ' ');
    g_string_append_printf(out, "%s='", key);
    for (const char *p = value; *p; p++) {
        if (*p == '\'')
            g_string_append_c(out, '\\');
        g_string_append_c(out, *p);
    }
    g_string_append_c(out, '\'');
    return TRUE;
}

/* The properties of a virtual device: their values are names and ids the
 * daemon checked, so they pack; a failure is a bug, logged. */
static void pack_vdev(GString *out, const QubesVDev *v)
{
    GError *err = NULL;
    if (!qubes_dev_pack(out, "device_id", v->device_id, &err) ||
        !qubes_dev_pack(out, "port_id", v->port_id, &err) ||
        !qubes_dev_pack(out, "devclass", v->devclass, &err) ||
        !qubes_dev_pack(out, "backend_domain", v->backend, &err)) {
        g_warning("device %s+%s: %s", v->backend, v->port_id, err->message);
        g_error_free(err);
    }
}

char *qubes_vdev_serialize(const QubesVDev *v)
{
    GString *out = g_string_new(NULL);
    pack_vdev(out, v);
    return g_string_free(out, FALSE);
}

char *qubes_dev_info_serialize(const QubesDevInfo *info, GError **error)
{
    g_autoptr(GString) out = g_string_new(NULL);
    pack_vdev(out, &info->dev);
    /* The reference joins the descriptive ones that differ from
     * "unknown" after a space: with none, two spaces follow. */
    g_autoptr(GString) desc = g_string_new(NULL);
    const struct {
        const char *key;
        const char *value;
    } fields[] = {{"vendor", info->vendor},
                  {"product", info->product},
                  {"manufacturer", info->manufacturer},
                  {"name", info->name},
                  {"serial", info->serial}};
    for (guint i = 0; i < G_N_ELEMENTS(fields); i++)
        if (fields[i].value && *fields[i].value &&
            strcmp(fields[i].value, "unknown") != 0 &&
            !qubes_dev_pack(desc, fields[i].key, fields[i].value, error))
            return NULL;
    g_string_append_printf(out, " %s", desc->str);
    if (info->attachment) {
        /* The reference's DeviceInfo.serialize() starts over here (it
         * assigns rather than appends): a device attached somewhere is
         * told by its attachment, interfaces and what follows, the rest
         * coming from the line's head. Kept, so that the same client
         * code reads both. */
        g_string_truncate(out, 0);
        if (!qubes_dev_pack(out, "attachment", info->attachment, error))
            return NULL;
    }
    if (!qubes_dev_pack(out, "interfaces",
                        info->interfaces ? info->interfaces : "?******", error))
        return NULL;
    if (info->parent_port_id &&
        (!qubes_dev_pack(out, "parent_port_id", info->parent_port_id, error) ||
         !qubes_dev_pack(out, "parent_devclass",
                         info->parent_devclass ? info->parent_devclass : "",
                         error)))
        return NULL;
    for (guint i = 0; i + 1 < info->data->len; i += 2) {
        g_autofree char *k = g_strconcat("_", info->data->pdata[i], NULL);
        if (!qubes_dev_pack(out, k, info->data->pdata[i + 1], error))
            return NULL;
    }
    return g_string_free(g_steal_pointer(&out), FALSE);
}

char *qubes_dev_assignment_serialize(const QubesDevAssignment *a,
                                     GError **error)
{
    g_autoptr(GString) out = g_string_new(NULL);
    pack_vdev(out, &a->dev);
    if (!qubes_dev_pack(out, "mode", qubes_dev_mode_name(a->mode), error))
        return NULL;
    if (a->frontend &&
        !qubes_dev_pack(out, "frontend_domain", a->frontend, error))
        return NULL;
    for (guint i = 0; i + 1 < a->options->len; i += 2) {
        g_autofree char *k = g_strconcat("_", a->options->pdata[i], NULL);
        if (!qubes_dev_pack(out, k, a->options->pdata[i + 1], error))
            return NULL;
    }
    return g_string_free(g_steal_pointer(&out), FALSE);
}

/* deserialize_str(): \' back to ' */
static char *unescape(const char *s, gsize len)
{
    GString *out = g_string_sized_new(len);
    for (gsize i = 0; i < len; i++) {
        if (s[i] == '\\' && i + 1 < len && s[i + 1] == '\'') {
            g_string_append_c(out, '\'');
            i++;
            continue;
        }
        g_string_append_c(out, s[i]);
    }
    return g_string_free(out, FALSE);
}

static const char *find(const char *s, const char *end, const char *what)
{
    gsize n = strlen(what);
    for (const char *p = s; p + n <= end; p++)
        if (memcmp(p, what, n) == 0)
            return p;
    return NULL;
}

static const char *rfind(const char *s, const char *end, const char *what)
{
    gsize n = strlen(what);
    for (const char *p = end - n; p >= s; p--)
        if (memcmp(p, what, n) == 0)
            return p;
    return NULL;
}

/* A key as the reference takes it: stripped of blanks, then checked. */
static char *take_key(const char *s, const char *end, GError **error)
{
    while (s < end && g_ascii_isspace(*s))
        s++;
    while (end > s && g_ascii_isspace(end[-1]))
        end--;
    if (!sanitize(s, (gsize)(end - s), TRUE, "property name", error))
        return NULL;
    return g_strndup(s, (gsize)(end - s));
}

static char *take_value(const char *s, const char *end, GError **error)
{
    g_autofree char *v = unescape(s, (gsize)(end - s));
    if (!sanitize(v, strlen(v), FALSE, "property value", error))
        return NULL;
    return g_steal_pointer(&v);
}

static void put(GPtrArray *props, GPtrArray *opts, char *key, char *value)
{
    GPtrArray *to = key[0] == '_' ? opts : props;
    const char *name = key[0] == '_' ? key + 1 : key;
    for (guint i = 0; i + 1 < to->len; i += 2) /* a dict: the last wins */
        if (strcmp(to->pdata[i], name) == 0) {
            g_free(to->pdata[i + 1]);
            to->pdata[i + 1] = value;
            g_free(key);
            return;
        }
    g_ptr_array_add(to, g_strdup(name));
    g_ptr_array_add(to, value);
    g_free(key);
}

gboolean qubes_dev_unpack(const char *untrusted, gsize len,
                          GPtrArray *properties, GPtrArray *options,
                          GError **error)
{
    for (gsize i = 0; i < len; i++)
        if ((guchar)untrusted[i] >= 0x80) {
            g_set_error(error, QUBES_ERROR, QUBES_ERROR_PROTOCOL,
                        "'ascii' codec can't decode byte 0x%02x in position "
                        "%zu: ordinal not in range(128)",
                        (guchar)untrusted[i], i);
            return FALSE;
        }
    /* str.strip() */
    const char *s = untrusted, *end = untrusted + len;
    while (s < end && (g_ascii_isspace(*s) || *s == 0x1c || *s == 0x1d ||
                       *s == 0x1e || *s == 0x1f))
        s++;
    while (end > s && (g_ascii_isspace(end[-1]) || end[-1] == 0x1c ||
                       end[-1] == 0x1d || end[-1] == 0x1e || end[-1] == 0x1f))
        end--;
    if (s == end)
        return TRUE;
    /* key, then ='value' key ='value' ... split as the reference splits:
     * at each "='", a value running to the last "' " before it */
    const char *sep = find(s, end, "='");
    const char *rest = sep ? sep + 2 : end;
    g_autofree char *key = take_key(s, sep ? sep : end, error);
    if (!key)
        return FALSE;
    for (;;) {
        const char *next = find(rest, end, "='");
        if (!next)
            break;
        const char *cut = rfind(rest, next, "' ");
        const char *vend = cut ? cut : rest;
        const char *kstart = cut ? cut + 2 : rest;
        char *value = take_value(rest, cut ? vend : rest, error);
        if (!value)
            return FALSE;
        char *nkey = take_key(kstart, next, error);
        if (!nkey) {
            g_free(value);
            return FALSE;
        }
        put(properties, options, g_steal_pointer(&key), value);
        key = nkey;
        rest = next + 2;
    }
    /* the last value, without its closing quote */
    const char *vend = rest < end ? end - 1 : rest;
    char *value = take_value(rest, vend, error);
    if (!value)
        return FALSE;
    put(properties, options, g_steal_pointer(&key), value);
    return TRUE;
}

const char *qubes_dev_pairs_get(GPtrArray *props, const char *name)
{
    for (guint i = 0; i + 1 < props->len; i += 2)
        if (strcmp(props->pdata[i], name) == 0)
            return props->pdata[i + 1];
    return NULL;
}

static void prop_del(GPtrArray *props, const char *name)
{
    for (guint i = 0; i + 1 < props->len; i += 2)
        if (strcmp(props->pdata[i], name) == 0) {
            g_ptr_array_remove_range(props, i, 2);
            return;
        }
}

QubesDevAssignment *qubes_dev_assignment_deserialize(const char *untrusted,
                                                     gsize len,
                                                     const QubesVDev *expected,
                                                     GError **error)
{
    g_autoptr(GPtrArray) props = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GPtrArray) opts = g_ptr_array_new_with_free_func(g_free);
    if (!qubes_dev_unpack(untrusted, len, props, opts, error))
        return NULL;
    /* parse_basic_device_properties(): what the payload says of the
     * device must be what the argument named */
    const char *v = qubes_dev_pairs_get(props, "backend_domain");
    if (v && strcmp(v, expected->backend) != 0) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_PROTOCOL,
                    "Got device exposed by %swhen expected devices from %s.", v,
                    expected->backend);
        return NULL;
    }
    v = qubes_dev_pairs_get(props, "port_id");
    if (v && strcmp(v, expected->port_id) != 0) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_PROTOCOL,
                    "Got device from port: %s when expected port: %s.", v,
                    expected->port_id);
        return NULL;
    }
    v = qubes_dev_pairs_get(props, "devclass");
    if (v && strcmp(v, expected->devclass) != 0) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_PROTOCOL,
                    "Got %s device when expected %s.", v, expected->devclass);
        return NULL;
    }
    const char *devid = qubes_dev_pairs_get(props, "device_id");
    if (strcmp(expected->device_id, "*") != 0 && devid &&
        strcmp(devid, expected->device_id) != 0) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_PROTOCOL,
                    "Unrecognized device identity '%s' expected '%s'", devid,
                    expected->device_id);
        return NULL;
    }
    g_auto(QubesVDev) dev = {0};
    qubes_vdev_copy(&dev, expected);
    if (devid) {
        g_free(dev.device_id);
        dev.device_id = g_strdup(devid);
    }
    QubesDevMode mode = QUBES_DEV_MANUAL;
    const char *m = qubes_dev_pairs_get(props, "mode");
    if (m && !qubes_dev_mode_parse(m, &mode)) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_PROTOCOL,
                    "'%s' is not a valid AssignmentMode", m);
        return NULL;
    }
    g_autoptr(QubesDevAssignment) a = qubes_dev_assignment_new(&dev, mode);
    const char *fe = qubes_dev_pairs_get(props, "frontend_domain");
    a->frontend = g_strdup(fe);
    for (const char *const *k =
             (const char *const[]){"backend_domain", "port_id", "devclass",
                                   "device_id", "mode", "frontend_domain",
                                   NULL};
         *k; k++)
        prop_del(props, *k);
    if (props->len) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_PROTOCOL,
                    "DeviceAssignment.__init__() got an unexpected keyword "
                    "argument '%s'",
                    (char *)props->pdata[0]);
        return NULL;
    }
    for (guint i = 0; i + 1 < opts->len; i += 2)
        qubes_dev_assignment_set_option(a, opts->pdata[i], opts->pdata[i + 1]);
    return g_steal_pointer(&a);
}

/* ---- the argument ---- */

gboolean qubes_dev_arg_parse(const char *arg, QubesDevArg *out, GError **error)
{
    memset(out, 0, sizeof *out);
    const char *plus = strchr(arg, '+');
    if (!plus || plus == arg || !plus[1]) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_PROTOCOL,
                    "Invalid device representation: '%s' (expected "
                    "BACKEND+PORT[+DEVICE_ID])",
                    arg);
        return FALSE;
    }
    out->backend = g_strndup(arg, (gsize)(plus - arg));
    const char *port = plus + 1;
    const char *colon = strchr(port, ':');
    const char *dev_plus = strchr(port, '+');
    /* the dom0 form BACKEND+PORT:DEVICE_ID as well */
    const char *cut =
        colon && (!dev_plus || colon < dev_plus) ? colon : dev_plus;
    out->port_id = cut ? g_strndup(port, (gsize)(cut - port)) : g_strdup(port);
    if (cut)
        out->encoded_device_id = g_strdup(cut + 1);
    if (strcmp(out->port_id, "_") == 0) {
        g_free(out->port_id);
        out->port_id = g_strdup("*");
    }
    if (strcmp(out->backend, "_") == 0) {
        g_free(out->backend);
        out->backend = g_strdup("*");
    }
    /* what qrexec lets through, and a name's characters: a port is a
     * kernel's or a bus's name, never a path */
    gboolean ok = strlen(out->port_id) <= 64 && *out->port_id;
    for (const char *p = out->port_id; ok && *p; p++)
        ok = g_ascii_isalnum(*p) || strchr("_.-", *p) ||
             (*p == '*' && !p[1] && p == out->port_id);
    ok =
        ok && strcmp(out->port_id, ".") != 0 && strcmp(out->port_id, "..") != 0;
    for (const char *p = out->backend; ok && *p; p++)
        ok = g_ascii_isalnum(*p) || strchr("_.-*", *p);
    for (const char *p = out->encoded_device_id; ok && p && *p; p++)
        ok = (guchar)*p > 0x20 && (guchar)*p < 0x7f;
    if (!ok) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_PROTOCOL,
                    "Invalid device representation: '%s'", arg);
        qubes_dev_arg_clear(out);
        return FALSE;
    }
    return TRUE;
}

void qubes_dev_arg_clear(QubesDevArg *a)
{
    g_free(a->backend);
    g_free(a->port_id);
    g_free(a->encoded_device_id);
    memset(a, 0, sizeof *a);
}

char *qubes_dev_encode_id(const char *device_id)
{
    GString *s = g_string_new(NULL);
    for (const char *p = device_id; *p; p++) {
        if (*p == ':')
            g_string_append_c(s, '+');
        else if (g_ascii_isalnum(*p) || strchr("._-+", *p))
            g_string_append_c(s, *p);
        else
            g_string_append_c(s, '_');
    }
    return g_string_free(s, FALSE);
}

char *qubes_dev_repr_for_qarg(const char *backend, const char *port_id,
                              const char *device_id)
{
    g_autofree char *r =
        g_strdup_printf("%s+%s+%s", backend, port_id, device_id);
    GString *s = g_string_new(NULL);
    for (const char *p = r; *p;) {
        if (g_str_has_prefix(p, "?******")) {
            g_string_append(s, "_______");
            p += 7;
            continue;
        }
        g_string_append_c(s, *p == ':' ? '+' : *p == '*' ? '_' : *p);
        p++;
    }
    return g_string_free(s, FALSE);
}

char *qubes_dev_arg_device_id(const QubesDevArg *a)
{
    const char *e = a->encoded_device_id;
    if (!e || !*e || strcmp(e, "_") == 0 || strcmp(e, "*") == 0)
        return g_strdup("*");
    char *id = g_strdup(e);
    for (char *p = id; *p; p++)
        if (*p == '+')
            *p = ':';
    return id;
}

/* ---- interfaces ---- */

gboolean qubes_dev_interfaces_length_ok(const char *untrusted, GError **error)
{
    gsize len = strlen(untrusted);
    if (len % 7 == 0)
        return TRUE;
    g_autofree char *r = qubes_py_repr(untrusted);
    g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                "Invalid length of interfaces=%s (is %" G_GSIZE_FORMAT
                ", expected multiple of 7)",
                r, len);
    return FALSE;
}

GPtrArray *qubes_dev_interfaces_parse(const char *untrusted, GError **error)
{
    gsize len = strlen(untrusted);
    if (!qubes_dev_interfaces_length_ok(untrusted, error))
        return NULL;
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
    for (gsize i = 0; i < len; i += 7) {
        /* DeviceInterface(): padded to six with '*', a class of '?'
         * before six characters */
        g_autofree char *chunk = g_strndup(untrusted + i, 7);
        GString *code = g_string_new(chunk);
        while (code->len < 6)
            g_string_append_c(code, '*');
        if (code->len == 6)
            g_string_prepend_c(code, '?');
        for (gsize j = 0; j < code->len; j++)
            if (!param_char(code->str[j])) {
                g_string_free(code, TRUE);
                g_ptr_array_unref(out);
                g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                            "Invalid device interface code");
                return NULL;
            }
        g_ptr_array_add(out, g_string_free(code, FALSE));
    }
    return out;
}
