/* qubesxml.h: the qubes.xml format, read and written losslessly.
 *
 * This is the format layer under the app model: it knows the elements of
 * qubes.xml (labels, pools, global properties, domains with properties,
 * features, tags, devices and volume configs) but not what the values
 * mean; the typed properties and domain classes build on it.
 *
 * Loading refuses a malformed file with "PATH:LINE: reason". Whatever it
 * does not know (a <devices> block, a future element) is kept verbatim
 * and written back, so load + save changes nothing. Saving writes the
 * reference's layout: labels, pools, properties, domains.
 *
 * The parser reads no network resource and expands no entity (qubes.xml
 * is untrusted input until loaded).
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* A property: text, or (older files) a reference to another element. */
typedef struct {
    char *name;
    char *value;     /* NULL for an empty <property/> */
    gboolean is_ref; /* written as ref="value" */
} QxProperty;

void qx_property_free(QxProperty *prop);

typedef struct {
    guint index; /* from id="label-N" */
    char *color; /* "0xcc0000" */
    char *name;
} QxLabel;

QxLabel *qx_label_new(guint index, const char *color, const char *name);
void qx_label_free(QxLabel *label);

/* Ordered name/value pairs: a pool's or a volume's attributes. */
typedef GPtrArray QxAttrs; /* of char*: name, value, name, value... */

/* One <device> of a <devices class="..."> block: a device assigned to
 * the domain (devices.h). */
typedef struct {
    char *devclass;
    QxAttrs *attrs;     /* the element's attributes, in order */
    GPtrArray *options; /* char*: name, value, ... of its <option>s */
} QxDevice;

QxDevice *qx_device_new(const char *devclass);
void qx_device_free(QxDevice *d);

typedef struct {
    char *id;              /* "domain-3" */
    char *klass;           /* "AppVM" */
    GPtrArray *properties; /* QxProperty */
    GPtrArray *features;   /* char*: name, value, ... (value "" allowed) */
    GPtrArray *tags;       /* char*: tag names */
    GPtrArray *volumes;    /* QxAttrs, one per <volume> in volume-config */
    GPtrArray *devices;    /* QxDevice, of all <devices> blocks in order */
    GPtrArray *extra;      /* char*: other child elements, verbatim XML */
} QxDomain;

typedef struct {
    GPtrArray *labels;     /* QxLabel */
    GPtrArray *pools;      /* QxAttrs */
    GPtrArray *properties; /* QxProperty */
    GPtrArray *domains;    /* QxDomain */
} QubesXml;

/* A domain element with no properties, features, tags or volumes yet. */
QxDomain *qx_domain_new(const char *id, const char *klass);
QxDomain *qx_domain_copy(const QxDomain *d);
void qx_domain_free(QxDomain *d);

/* GCopyFunc for g_ptr_array_extend(): a string, or a QxAttrs. */
gpointer qx_copy_string(gconstpointer src, gpointer unused);
gpointer qx_copy_attrs(gconstpointer src, gpointer unused);

QubesXml *qubes_xml_new(void);
void qubes_xml_free(QubesXml *xml);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QubesXml, qubes_xml_free)

/* Parses @untrusted_data (named @path in messages). */
QubesXml *qubes_xml_parse(const char *untrusted_data, gsize len,
                          const char *path, GError **error);
/* Serialises @xml (new string, UTF-8, pretty printed). */
char *qubes_xml_serialize(const QubesXml *xml, gsize *len);
/* The same bytes through libxml2's tree (what qubes_xml_serialize falls
 * back to where its direct writer does not reproduce libxml2; the fuzz
 * target compares the two). */
char *qubes_xml_serialize_tree(const QubesXml *xml, gsize *len);

/* Reads @path (no lock needed: writers rename whole files over it). */
QubesXml *qubes_xml_load(const char *path, GError **error);
/* Writes @xml to @path atomically and durably, under an exclusive lockf
 * on @path (the reference's protocol, so its tools and we exclude each
 * other): a temporary in the same folder, written and fsynced, renamed
 * over @path, and the folder fsynced. A failure at any point leaves the
 * previous file as it was. Mode 0660. */
gboolean qubes_xml_save(const QubesXml *xml, const char *path, GError **error);
/* Removes, under the writers' lock, the temporaries an interrupted save
 * left beside @path (it is created empty when missing). */
gboolean qubes_xml_remove_temporaries(const char *path, GError **error);

/* Tests: @func is called before each step of a save ("lock", "create",
 * "write", "fsync", "rename", "fsync-dir") and fails it by returning
 * TRUE. NULL turns it off. Process-wide; not for concurrent saves. */
typedef gboolean (*QubesXmlFailpoint)(const char *step, const char *path,
                                      gpointer data);
void qubes_xml_set_failpoint(QubesXmlFailpoint func, gpointer data);

/* A new system's qubes.xml: the eight standard labels, dom0 (AdminVM, qid
 * 0, label black), the pool "varlibqubes" (file-reflink in @base_dir;
 * with setup_check off when @reflinks is FALSE) and the pool
 * "linux-kernel" (@base_dir/vm-kernels), the default for kernels. */
QubesXml *qubes_xml_new_default(const char *base_dir, gboolean reflinks);

/* Lookups. */
const char *qx_attrs_get(const QxAttrs *attrs, const char *name);
void qx_attrs_set(QxAttrs *attrs, const char *name, const char *value);
const QxProperty *qx_properties_get(const GPtrArray *props, const char *name);
void qx_properties_set(GPtrArray *props, const char *name, const char *value);
QxDomain *qubes_xml_find_domain(const QubesXml *xml, const char *name);

G_END_DECLS
