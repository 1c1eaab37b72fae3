/* qubesxml.c: see qubesxml.h. The layout follows qubes/app.py
 * (Qubes.__xml__, load) and qubes/vm (BaseVM.__xml__). */
#include "qubesxml.h"

#include "qubes-error.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct {
    const char *color, *name;
} default_labels[] = {
    {"0xcc0000", "red"},    {"0xf57900", "orange"}, {"0xedd400", "yellow"},
    {"0x73d216", "green"},  {"0x555555", "gray"},   {"0x3465a4", "blue"},
    {"0x75507b", "purple"}, {"0x000000", "black"},
};

void qx_property_free(QxProperty *p)
{
    g_free(p->name);
    g_free(p->value);
    g_free(p);
}

QxLabel *qx_label_new(guint index, const char *color, const char *name)
{
    QxLabel *l = g_new0(QxLabel, 1);
    l->index = index;
    l->color = g_strdup(color);
    l->name = g_strdup(name);
    return l;
}

void qx_label_free(QxLabel *l)
{
    g_free(l->color);
    g_free(l->name);
    g_free(l);
}

static GPtrArray *strings(void)
{
    return g_ptr_array_new_with_free_func(g_free);
}

gpointer qx_copy_string(gconstpointer src, gpointer unused)
{
    return g_strdup(src);
}

gpointer qx_copy_attrs(gconstpointer src, gpointer unused)
{
    GPtrArray *copy = strings();
    g_ptr_array_extend(copy, (GPtrArray *)src, qx_copy_string, NULL);
    return copy;
}

QxDevice *qx_device_new(const char *devclass)
{
    QxDevice *d = g_new0(QxDevice, 1);
    d->devclass = g_strdup(devclass);
    d->attrs = strings();
    d->options = strings();
    return d;
}

void qx_device_free(QxDevice *d)
{
    g_free(d->devclass);
    g_ptr_array_unref(d->attrs);
    g_ptr_array_unref(d->options);
    g_free(d);
}

static gpointer copy_device(gconstpointer src, gpointer unused)
{
    const QxDevice *d = src;
    QxDevice *c = qx_device_new(d->devclass);
    g_ptr_array_extend(c->attrs, d->attrs, qx_copy_string, NULL);
    g_ptr_array_extend(c->options, d->options, qx_copy_string, NULL);
    return c;
}

void qx_domain_free(QxDomain *d)
{
    g_free(d->id);
    g_free(d->klass);
    g_ptr_array_unref(d->properties);
    g_ptr_array_unref(d->features);
    g_ptr_array_unref(d->tags);
    g_ptr_array_unref(d->volumes);
    g_ptr_array_unref(d->devices);
    g_ptr_array_unref(d->extra);
    g_free(d);
}

QxDomain *qx_domain_new(const char *id, const char *klass)
{
    QxDomain *d = g_new0(QxDomain, 1);
    d->id = g_strdup(id);
    d->klass = g_strdup(klass);
    d->properties =
        g_ptr_array_new_with_free_func((GDestroyNotify)qx_property_free);
    d->features = strings();
    d->tags = strings();
    d->volumes =
        g_ptr_array_new_with_free_func((GDestroyNotify)g_ptr_array_unref);
    d->devices = g_ptr_array_new_with_free_func((GDestroyNotify)qx_device_free);
    d->extra = strings();
    return d;
}

static gpointer copy_property(gconstpointer src, gpointer unused)
{
    const QxProperty *p = src;
    QxProperty *c = g_new0(QxProperty, 1);
    c->name = g_strdup(p->name);
    c->value = g_strdup(p->value);
    c->is_ref = p->is_ref;
    return c;
}

QxDomain *qx_domain_copy(const QxDomain *d)
{
    QxDomain *c = qx_domain_new(d->id, d->klass);
    g_ptr_array_extend(c->properties, d->properties, copy_property, NULL);
    g_ptr_array_extend(c->features, d->features, qx_copy_string, NULL);
    g_ptr_array_extend(c->tags, d->tags, qx_copy_string, NULL);
    g_ptr_array_extend(c->volumes, d->volumes, qx_copy_attrs, NULL);
    g_ptr_array_extend(c->devices, d->devices, copy_device, NULL);
    g_ptr_array_extend(c->extra, d->extra, qx_copy_string, NULL);
    return c;
}

QubesXml *qubes_xml_new(void)
{
    QubesXml *x = g_new0(QubesXml, 1);
    x->labels = g_ptr_array_new_with_free_func((GDestroyNotify)qx_label_free);
    x->pools =
        g_ptr_array_new_with_free_func((GDestroyNotify)g_ptr_array_unref);
    x->properties =
        g_ptr_array_new_with_free_func((GDestroyNotify)qx_property_free);
    x->domains = g_ptr_array_new_with_free_func((GDestroyNotify)qx_domain_free);
    return x;
}

void qubes_xml_free(QubesXml *xml)
{
    if (!xml)
        return;
    g_ptr_array_unref(xml->labels);
    g_ptr_array_unref(xml->pools);
    g_ptr_array_unref(xml->properties);
    g_ptr_array_unref(xml->domains);
    g_free(xml);
}

/* ---- lookups ---- */

const char *qx_attrs_get(const QxAttrs *attrs, const char *name)
{
    for (guint i = 0; i + 1 < attrs->len; i += 2) {
        if (strcmp(attrs->pdata[i], name) == 0)
            return attrs->pdata[i + 1];
    }
    return NULL;
}

void qx_attrs_set(QxAttrs *attrs, const char *name, const char *value)
{
    for (guint i = 0; i + 1 < attrs->len; i += 2) {
        if (strcmp(attrs->pdata[i], name) == 0) {
            g_free(attrs->pdata[i + 1]);
            attrs->pdata[i + 1] = g_strdup(value);
            return;
        }
    }
    g_ptr_array_add(attrs, g_strdup(name));
    g_ptr_array_add(attrs, g_strdup(value));
}

const QxProperty *qx_properties_get(const GPtrArray *props, const char *name)
{
    for (guint i = 0; i < props->len; i++) {
        const QxProperty *p = props->pdata[i];
        if (strcmp(p->name, name) == 0)
            return p;
    }
    return NULL;
}

void qx_properties_set(GPtrArray *props, const char *name, const char *value)
{
    for (guint i = 0; i < props->len; i++) {
        QxProperty *p = props->pdata[i];
        if (strcmp(p->name, name) == 0) {
            g_free(p->value);
            p->value = g_strdup(value);
            p->is_ref = FALSE;
            return;
        }
    }
    QxProperty *p = g_new0(QxProperty, 1);
    p->name = g_strdup(name);
    p->value = g_strdup(value);
    g_ptr_array_add(props, p);
}

QxDomain *qubes_xml_find_domain(const QubesXml *xml, const char *name)
{
    for (guint i = 0; i < xml->domains->len; i++) {
        QxDomain *d = xml->domains->pdata[i];
        const QxProperty *p = qx_properties_get(d->properties, "name");
        const char *n =
            p ? p->value : (strcmp(d->klass, "AdminVM") == 0 ? "dom0" : NULL);
        if (g_strcmp0(n, name) == 0)
            return d;
    }
    return NULL;
}

/* ---- parsing ---- */

typedef struct {
    const char *path;
    GError **error;
} Parse;

static gboolean fail_at(Parse *ps, xmlNodePtr node, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);

static gboolean fail_at(Parse *ps, xmlNodePtr node, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *why = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(ps->error, QUBES_ERROR, QUBES_ERROR_EXCEPTION, "%s:%ld: %s",
                ps->path, node ? xmlGetLineNo(node) : 0L, why);
    return FALSE;
}

static gboolean is_element(xmlNodePtr n, const char *name)
{
    return n->type == XML_ELEMENT_NODE &&
           strcmp((const char *)n->name, name) == 0;
}

/* The text of @children (an attribute's value, an element's content):
 * one copy, straight from the single text node libxml2 makes of it;
 * libxml2's own getter for anything else (entity references, mixed
 * content). */
static char *text_of(xmlNodePtr owner, xmlNodePtr children, gboolean element)
{
    if (!children)
        return g_strdup("");
    if (children->type == XML_TEXT_NODE && !children->next)
        return g_strdup(children->content ? (const char *)children->content
                                          : "");
    xmlChar *v = element ? xmlNodeGetContent(owner)
                         : xmlNodeListGetString(owner->doc, children, 1);
    char *s = g_strdup(v ? (const char *)v : "");
    xmlFree(v);
    return s;
}

/* The attribute @name of @n (new string), or NULL. */
static char *attr(xmlNodePtr n, const char *name)
{
    for (xmlAttrPtr at = n->properties; at; at = at->next)
        if (!at->ns && strcmp((const char *)at->name, name) == 0)
            return text_of((xmlNodePtr)at, at->children, FALSE);
    return NULL;
}

/* Text content of @n (new string; "" when empty). */
static char *text(xmlNodePtr n)
{
    return text_of(n, n->children, TRUE);
}

static char *verbatim(xmlNodePtr n)
{
    xmlBufferPtr buf = xmlBufferCreate();
    xmlNodeDump(buf, n->doc, n, 0, 0);
    char *s = g_strdup((const char *)xmlBufferContent(buf));
    xmlBufferFree(buf);
    return s;
}

/* Checks that @n holds only elements named @child (and blank text). */
static gboolean only_children(Parse *ps, xmlNodePtr n, const char *child)
{
    for (xmlNodePtr c = n->children; c; c = c->next) {
        if (c->type == XML_ELEMENT_NODE && !is_element(c, child))
            return fail_at(ps, c, "unexpected <%s> in <%s>", c->name, n->name);
        if (c->type == XML_TEXT_NODE && !xmlIsBlankNode(c))
            return fail_at(ps, c, "unexpected text in <%s>", n->name);
    }
    return TRUE;
}

/* The names already seen are in @seen, shared by every <properties> of
 * one owner: master reads ./properties/property across all of them, so
 * two such elements are one list, and a name in both is given twice
 * (the saved file, with one <properties>, must load again). A set, as
 * a linear search per property is quadratic in a hostile file. */
static gboolean parse_properties(Parse *ps, xmlNodePtr n, GHashTable *seen,
                                 GPtrArray *out)
{
    if (!only_children(ps, n, "property"))
        return FALSE;
    for (xmlNodePtr c = n->children; c; c = c->next) {
        if (c->type != XML_ELEMENT_NODE)
            continue;
        g_autofree char *name = attr(c, "name");
        if (!name || !*name)
            return fail_at(ps, c, "<property> without a name");
        if (!g_hash_table_add(seen, g_strdup(name)))
            return fail_at(ps, c, "property %s given twice", name);
        QxProperty *p = g_new0(QxProperty, 1);
        p->name = g_steal_pointer(&name);
        p->value = attr(c, "ref");
        p->is_ref = p->value != NULL;
        if (!p->is_ref && c->children)
            p->value = text(c);
        g_ptr_array_add(out, p);
    }
    return TRUE;
}

static QxAttrs *attrs_of(xmlNodePtr n)
{
    QxAttrs *a = strings();
    for (xmlAttrPtr at = n->properties; at; at = at->next) {
        g_ptr_array_add(a, g_strdup((const char *)at->name));
        g_ptr_array_add(a, text_of((xmlNodePtr)at, at->children, FALSE));
    }
    return a;
}

static gboolean parse_named(Parse *ps, xmlNodePtr n, const char *child,
                            GPtrArray *out, gboolean with_value)
{
    if (!only_children(ps, n, child))
        return FALSE;
    for (xmlNodePtr c = n->children; c; c = c->next) {
        if (c->type != XML_ELEMENT_NODE)
            continue;
        char *name = attr(c, "name");
        if (!name || !*name) {
            g_free(name);
            return fail_at(ps, c, "<%s> without a name", child);
        }
        g_ptr_array_add(out, name);
        if (with_value)
            g_ptr_array_add(out, text(c));
    }
    return TRUE;
}

/* <devices class="C"><device A="..."><option name="N">V</option>...
 * </device>...</devices>; FALSE (nothing added) when it holds anything
 * else: the caller keeps it verbatim. */
static gboolean parse_devices(xmlNodePtr n, GPtrArray *out)
{
    g_autofree char *devclass = attr(n, "class");
    if (!devclass || !*devclass)
        return FALSE;
    g_autoptr(GPtrArray) got =
        g_ptr_array_new_with_free_func((GDestroyNotify)qx_device_free);
    for (xmlNodePtr c = n->children; c; c = c->next) {
        if (c->type == XML_TEXT_NODE && xmlIsBlankNode(c))
            continue;
        if (c->type == XML_COMMENT_NODE)
            continue;
        if (c->type != XML_ELEMENT_NODE || !is_element(c, "device"))
            return FALSE;
        QxDevice *d = qx_device_new(devclass);
        g_ptr_array_add(got, d);
        g_ptr_array_unref(d->attrs);
        d->attrs = attrs_of(c);
        for (xmlNodePtr o = c->children; o; o = o->next) {
            if ((o->type == XML_TEXT_NODE && xmlIsBlankNode(o)) ||
                o->type == XML_COMMENT_NODE)
                continue;
            if (o->type != XML_ELEMENT_NODE || !is_element(o, "option"))
                return FALSE;
            char *name = attr(o, "name");
            if (!name)
                return FALSE;
            g_ptr_array_add(d->options, name);
            g_ptr_array_add(d->options, text(o));
        }
    }
    for (guint i = 0; i < got->len; i++)
        g_ptr_array_add(out, g_steal_pointer(&got->pdata[i]));
    g_ptr_array_set_free_func(got, NULL);
    return TRUE;
}

static gboolean parse_domain(Parse *ps, xmlNodePtr n, QubesXml *x)
{
    g_autofree char *id = attr(n, "id");
    g_autofree char *klass = attr(n, "class");
    if (!klass || !*klass)
        return fail_at(ps, n, "<domain> without a class");
    QxDomain *d = qx_domain_new(id, klass);
    g_ptr_array_add(x->domains, d);
    g_autoptr(GHashTable) seen =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    for (xmlNodePtr c = n->children; c; c = c->next) {
        if (c->type == XML_TEXT_NODE && !xmlIsBlankNode(c))
            return fail_at(ps, c, "unexpected text in <domain>");
        if (c->type != XML_ELEMENT_NODE)
            continue;
        gboolean ok = TRUE;
        if (is_element(c, "properties")) {
            ok = parse_properties(ps, c, seen, d->properties);
        } else if (is_element(c, "features")) {
            ok = parse_named(ps, c, "feature", d->features, TRUE);
        } else if (is_element(c, "tags")) {
            ok = parse_named(ps, c, "tag", d->tags, FALSE);
        } else if (is_element(c, "volume-config")) {
            ok = only_children(ps, c, "volume");
            for (xmlNodePtr v = c->children; ok && v; v = v->next) {
                if (v->type != XML_ELEMENT_NODE)
                    continue;
                QxAttrs *a = attrs_of(v);
                g_ptr_array_add(d->volumes, a);
                if (!qx_attrs_get(a, "name"))
                    ok = fail_at(ps, v, "<volume> without a name");
            }
        } else if (!is_element(c, "devices") || !parse_devices(c, d->devices)) {
            g_ptr_array_add(d->extra, verbatim(c));
        }
        if (!ok)
            return FALSE;
    }
    return TRUE;
}

static gboolean parse_label(Parse *ps, xmlNodePtr c, QubesXml *x)
{
    g_autofree char *id = attr(c, "id");
    guint64 index = 0;
    if (!id || !g_str_has_prefix(id, "label-") ||
        !g_ascii_string_to_unsigned(id + 6, 10, 1, G_MAXUINT, &index, NULL))
        return fail_at(ps, c, "<label> needs an id label-N, not %s",
                       id ? id : "none");
    QxLabel *l = g_new0(QxLabel, 1);
    l->index = (guint)index;
    l->color = attr(c, "color");
    l->name = text(c);
    g_ptr_array_add(x->labels, l);
    if (!*l->name)
        return fail_at(ps, c, "<label> without a name");
    return TRUE;
}

static gboolean parse_root(Parse *ps, xmlNodePtr root, QubesXml *x)
{
    if (!root || !is_element(root, "qubes"))
        return fail_at(ps, root, "the root element is not <qubes>");
    g_autoptr(GHashTable) seen =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    for (xmlNodePtr n = root->children; n; n = n->next) {
        if (n->type == XML_TEXT_NODE && !xmlIsBlankNode(n))
            return fail_at(ps, n, "unexpected text in <qubes>");
        if (n->type != XML_ELEMENT_NODE)
            continue;
        if (is_element(n, "labels")) {
            if (!only_children(ps, n, "label"))
                return FALSE;
            for (xmlNodePtr c = n->children; c; c = c->next) {
                if (c->type == XML_ELEMENT_NODE && !parse_label(ps, c, x))
                    return FALSE;
            }
        } else if (is_element(n, "pools")) {
            if (!only_children(ps, n, "pool"))
                return FALSE;
            for (xmlNodePtr c = n->children; c; c = c->next) {
                if (c->type != XML_ELEMENT_NODE)
                    continue;
                QxAttrs *a = attrs_of(c);
                g_ptr_array_add(x->pools, a);
                if (!qx_attrs_get(a, "name"))
                    return fail_at(ps, c, "<pool> without a name");
            }
        } else if (is_element(n, "properties")) {
            if (!parse_properties(ps, n, seen, x->properties))
                return FALSE;
        } else if (is_element(n, "domains")) {
            if (!only_children(ps, n, "domain"))
                return FALSE;
            for (xmlNodePtr c = n->children; c; c = c->next) {
                if (c->type == XML_ELEMENT_NODE && !parse_domain(ps, c, x))
                    return FALSE;
            }
        } else {
            return fail_at(ps, n, "unknown element <%s> in <qubes>", n->name);
        }
    }
    return TRUE;
}

typedef struct {
    char *message;
    int line;
} FirstError;

static void keep_first_error(void *data, xmlErrorPtr e)
{
    xmlParserCtxtPtr ctxt = data;
    FirstError *first = ctxt->_private;
    if (first->message || e->level < XML_ERR_ERROR)
        return;
    first->message = g_strdup(e->message ? e->message : "error");
    first->line = e->line;
}

/* libxml2 checks an element's attributes for duplicates in quadratic
 * time (200,000 attributes take minutes), so the raw text is scanned
 * first, in linear time: no start tag may carry more attributes than
 * qubes.xml ever needs. The scan follows quotes, comments, CDATA and
 * processing instructions so that text inside them is not counted. */
#define QUBES_XML_MAX_ATTRIBUTES 256

static gboolean scan_attributes(const char *d, gsize len, const char *path,
                                GError **error)
{
    int line = 1;
    for (gsize i = 0; i < len; i++) {
        if (d[i] == '\n')
            line++;
        if (d[i] != '<')
            continue;
        const char *end = NULL;
        if (i + 4 <= len && memcmp(d + i, "<!--", 4) == 0)
            end = "-->";
        else if (i + 9 <= len && memcmp(d + i, "<![CDATA[", 9) == 0)
            end = "]]>";
        else if (i + 2 <= len && d[i + 1] == '?')
            end = "?>";
        if (end) {
            size_t el = strlen(end);
            for (i++; i + el <= len && memcmp(d + i, end, el) != 0; i++)
                line += d[i] == '\n';
            continue;
        }
        int start_line = line;
        guint attrs = 0;
        char quote = 0;
        for (i++; i < len && (quote || d[i] != '>'); i++) {
            line += d[i] == '\n';
            if (quote) {
                if (d[i] == quote)
                    quote = 0;
            } else if (d[i] == '"' || d[i] == '\'') {
                quote = d[i];
            } else if (d[i] == '=' && ++attrs > QUBES_XML_MAX_ATTRIBUTES) {
                g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                            "%s:%d: an element with more than %d attributes",
                            path, start_line, QUBES_XML_MAX_ATTRIBUTES);
                return FALSE;
            }
        }
    }
    return TRUE;
}

QubesXml *qubes_xml_parse(const char *untrusted_data, gsize len,
                          const char *path, GError **error)
{
    Parse ps = {path, error};
    if (len > G_MAXINT) {
        fail_at(&ps, NULL, "file too large");
        return NULL;
    }
    if (!scan_attributes(untrusted_data, len, path, error))
        return NULL;
    xmlParserCtxtPtr ctxt = xmlNewParserCtxt();
    /* Keep the first error: later ones follow from it ("premature end"). */
    FirstError first = {0};
    ctxt->_private = &first;
    ctxt->sax->serror = keep_first_error;
    /* No network, no entity expansion, no DTD loading. */
    xmlDocPtr doc =
        xmlCtxtReadMemory(ctxt, untrusted_data, (int)len, path, NULL,
                          XML_PARSE_NONET | XML_PARSE_NOERROR |
                              XML_PARSE_NOWARNING | XML_PARSE_COMPACT);
    if (!doc || first.message) {
        g_autofree char *msg =
            g_strdup(first.message ? first.message : "not XML");
        g_strchomp(msg);
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION, "%s:%d: %s",
                    path, first.line, msg);
        g_free(first.message);
        if (doc)
            xmlFreeDoc(doc);
        xmlFreeParserCtxt(ctxt);
        return NULL;
    }
    xmlFreeParserCtxt(ctxt);
    QubesXml *x = qubes_xml_new();
    gboolean ok;
    if (doc->intSubset || doc->extSubset)
        ok = fail_at(&ps, (xmlNodePtr)doc->intSubset,
                     "a DOCTYPE is not allowed in qubes.xml");
    else
        ok = parse_root(&ps, xmlDocGetRootElement(doc), x);
    xmlFreeDoc(doc);
    if (!ok) {
        qubes_xml_free(x);
        return NULL;
    }
    return x;
}

/* ---- writing ---- */

static xmlNodePtr add(xmlNodePtr parent, const char *name, const char *txt)
{
    return xmlNewTextChild(parent, NULL, (const xmlChar *)name,
                           (const xmlChar *)txt);
}

static void set(xmlNodePtr n, const char *name, const char *value)
{
    xmlSetProp(n, (const xmlChar *)name, (const xmlChar *)value);
}

static void write_properties(xmlNodePtr parent, const GPtrArray *props)
{
    xmlNodePtr n = add(parent, "properties", NULL);
    for (guint i = 0; i < props->len; i++) {
        const QxProperty *p = props->pdata[i];
        xmlNodePtr c = add(n, "property", p->is_ref ? NULL : p->value);
        set(c, "name", p->name);
        if (p->is_ref)
            set(c, "ref", p->value);
    }
}

static void write_attrs(xmlNodePtr n, const QxAttrs *a)
{
    for (guint i = 0; i + 1 < a->len; i += 2)
        set(n, a->pdata[i], a->pdata[i + 1]);
}

static void write_verbatim(xmlNodePtr parent, const char *xml)
{
    xmlDocPtr frag = xmlReadMemory(xml, (int)strlen(xml), "fragment", NULL,
                                   XML_PARSE_NONET | XML_PARSE_NOERROR |
                                       XML_PARSE_NOWARNING);
    if (!frag)
        return; /* came from a parsed document: cannot happen */
    xmlNodePtr copy =
        xmlDocCopyNode(xmlDocGetRootElement(frag), parent->doc, 1);
    xmlAddChild(parent, copy);
    xmlFreeDoc(frag);
}

/* Whether the class of @devices[@i] is that of an earlier one: the
 * devices are written one <devices> block per class, in the order the
 * classes first appear. */
static gboolean class_seen_before(const GPtrArray *devices, guint i)
{
    const char *devclass = ((const QxDevice *)devices->pdata[i])->devclass;
    for (guint j = 0; j < i; j++)
        if (strcmp(((const QxDevice *)devices->pdata[j])->devclass, devclass) ==
            0)
            return TRUE;
    return FALSE;
}

static void write_domain(xmlNodePtr parent, const QxDomain *d)
{
    xmlNodePtr n = add(parent, "domain", NULL);
    if (d->id)
        set(n, "id", d->id);
    set(n, "class", d->klass);
    write_properties(n, d->properties);
    xmlNodePtr f = add(n, "features", NULL);
    for (guint i = 0; i + 1 < d->features->len; i += 2) {
        xmlNodePtr c = add(f, "feature", d->features->pdata[i + 1]);
        set(c, "name", d->features->pdata[i]);
    }
    /* the assigned devices, one <devices> block per class in the order
     * the classes first appear */
    for (guint i = 0; i < d->devices->len; i++) {
        const QxDevice *first = d->devices->pdata[i];
        if (class_seen_before(d->devices, i))
            continue;
        xmlNodePtr block = add(n, "devices", NULL);
        set(block, "class", first->devclass);
        for (guint j = i; j < d->devices->len; j++) {
            const QxDevice *dev = d->devices->pdata[j];
            if (strcmp(dev->devclass, first->devclass) != 0)
                continue;
            xmlNodePtr e = add(block, "device", NULL);
            write_attrs(e, dev->attrs);
            for (guint k = 0; k + 1 < dev->options->len; k += 2)
                set(add(e, "option", dev->options->pdata[k + 1]), "name",
                    dev->options->pdata[k]);
        }
    }
    for (guint i = 0; i < d->extra->len; i++)
        write_verbatim(n, d->extra->pdata[i]);
    xmlNodePtr t = add(n, "tags", NULL);
    for (guint i = 0; i < d->tags->len; i++)
        set(add(t, "tag", NULL), "name", d->tags->pdata[i]);
    if (d->volumes->len) {
        xmlNodePtr vc = add(n, "volume-config", NULL);
        for (guint i = 0; i < d->volumes->len; i++)
            write_attrs(add(vc, "volume", NULL), d->volumes->pdata[i]);
    }
}

char *qubes_xml_serialize_tree(const QubesXml *xml, gsize *len)
{
    xmlDocPtr doc = xmlNewDoc((const xmlChar *)"1.0");
    xmlNodePtr root = xmlNewNode(NULL, (const xmlChar *)"qubes");
    xmlDocSetRootElement(doc, root);
    xmlNodePtr labels = add(root, "labels", NULL);
    for (guint i = 0; i < xml->labels->len; i++) {
        const QxLabel *l = xml->labels->pdata[i];
        xmlNodePtr c = add(labels, "label", l->name);
        g_autofree char *id = g_strdup_printf("label-%u", l->index);
        set(c, "id", id);
        if (l->color)
            set(c, "color", l->color);
    }
    xmlNodePtr pools = add(root, "pools", NULL);
    for (guint i = 0; i < xml->pools->len; i++)
        write_attrs(add(pools, "pool", NULL), xml->pools->pdata[i]);
    write_properties(root, xml->properties);
    xmlNodePtr domains = add(root, "domains", NULL);
    for (guint i = 0; i < xml->domains->len; i++)
        write_domain(domains, xml->domains->pdata[i]);
    xmlChar *buf = NULL;
    int size = 0;
    xmlDocDumpFormatMemoryEnc(doc, &buf, &size, "UTF-8", 1);
    char *out = g_strndup((const char *)buf, (gsize)size);
    if (len)
        *len = (gsize)size;
    xmlFree(buf);
    xmlFreeDoc(doc);
    return out;
}

/* ---- writing, directly ----
 *
 * The same bytes as the tree above, written straight into one buffer:
 * building libxml2's tree and dumping it was most of a save's time.
 * The tree's bytes are those of libxml2's formatted dump: two spaces of
 * indent a level, an element without children closed as <x/>, one with
 * text on one line; in an attribute & < > " and tab, LF, CR escaped, in
 * text & < > and CR. What this writer does not reproduce, it leaves to
 * the tree (it returns NULL): a byte outside printable ASCII other than
 * tab, LF and CR (libxml2 writes non-ASCII in attributes as character
 * references, and passes control bytes on), a name with a ':' (a
 * namespace prefix), an element kept verbatim. fuzz-qubesxml checks
 * that both give the same bytes. */

typedef struct {
    GString *s;
    gboolean odd; /* something only the tree writes as libxml2 does */
} Out;

static void put_escaped(Out *o, const char *v, gboolean attr)
{
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        switch (*p) {
        case '&':
            g_string_append(o->s, "&amp;");
            break;
        case '<':
            g_string_append(o->s, "&lt;");
            break;
        case '>':
            g_string_append(o->s, "&gt;");
            break;
        case '\r':
            g_string_append(o->s, "&#13;");
            break;
        case '"':
            g_string_append(o->s, attr ? "&quot;" : "\"");
            break;
        case '\n':
            g_string_append(o->s, attr ? "&#10;" : "\n");
            break;
        case '\t':
            g_string_append(o->s, attr ? "&#9;" : "\t");
            break;
        default:
            if (*p < 0x20 || *p >= 0x7f)
                o->odd = TRUE;
            g_string_append_c(o->s, (char)*p);
        }
    }
}

static void put_name(Out *o, const char *name)
{
    if (strchr(name, ':'))
        o->odd = TRUE;
    put_escaped(o, name, TRUE);
}

/* "<name" at @level's indent. */
static void open_el(Out *o, int level, const char *name)
{
    for (int i = 0; i < level; i++)
        g_string_append(o->s, "  ");
    g_string_append_c(o->s, '<');
    put_name(o, name);
}

static void put_attr(Out *o, const char *name, const char *value)
{
    g_string_append_c(o->s, ' ');
    put_name(o, name);
    g_string_append(o->s, "=\"");
    put_escaped(o, value, TRUE);
    g_string_append_c(o->s, '"');
}

/* Ends an element's start tag: with @text (NULL: none) and its end tag
 * on the same line, or <x/>, or (@children) a line of its own. */
static void end_start(Out *o, const char *name, const char *text,
                      gboolean children)
{
    if (children) {
        g_string_append(o->s, ">\n");
    } else if (text) {
        g_string_append_c(o->s, '>');
        put_escaped(o, text, FALSE);
        g_string_append(o->s, "</");
        put_name(o, name);
        g_string_append(o->s, ">\n");
    } else {
        g_string_append(o->s, "/>\n");
    }
}

static void close_el(Out *o, int level, const char *name)
{
    for (int i = 0; i < level; i++)
        g_string_append(o->s, "  ");
    g_string_append(o->s, "</");
    put_name(o, name);
    g_string_append(o->s, ">\n");
}

static void put_attrs(Out *o, const QxAttrs *a)
{
    for (guint i = 0; i + 1 < a->len; i += 2) {
        /* xmlSetProp of a name given twice replaces its value in place */
        for (guint j = 0; j < i; j += 2)
            if (strcmp(a->pdata[j], a->pdata[i]) == 0)
                o->odd = TRUE;
        put_attr(o, a->pdata[i], a->pdata[i + 1]);
    }
}

static void put_properties(Out *o, int level, const GPtrArray *props)
{
    open_el(o, level, "properties");
    end_start(o, "properties", NULL, props->len > 0);
    for (guint i = 0; i < props->len; i++) {
        const QxProperty *p = props->pdata[i];
        open_el(o, level + 1, "property");
        put_attr(o, "name", p->name);
        if (p->is_ref)
            put_attr(o, "ref", p->value);
        end_start(o, "property", p->is_ref ? NULL : p->value, FALSE);
    }
    if (props->len)
        close_el(o, level, "properties");
}

static void put_domain(Out *o, const QxDomain *d)
{
    if (d->extra->len)
        o->odd = TRUE;
    open_el(o, 2, "domain");
    if (d->id)
        put_attr(o, "id", d->id);
    put_attr(o, "class", d->klass);
    end_start(o, "domain", NULL, TRUE);
    put_properties(o, 3, d->properties);
    open_el(o, 3, "features");
    end_start(o, "features", NULL, d->features->len > 1);
    for (guint i = 0; i + 1 < d->features->len; i += 2) {
        open_el(o, 4, "feature");
        put_attr(o, "name", d->features->pdata[i]);
        end_start(o, "feature", d->features->pdata[i + 1], FALSE);
    }
    if (d->features->len > 1)
        close_el(o, 3, "features");
    /* the devices as write_domain groups them */
    for (guint i = 0; i < d->devices->len; i++) {
        const QxDevice *first = d->devices->pdata[i];
        if (class_seen_before(d->devices, i))
            continue;
        open_el(o, 3, "devices");
        put_attr(o, "class", first->devclass);
        end_start(o, "devices", NULL, TRUE);
        for (guint j = i; j < d->devices->len; j++) {
            const QxDevice *dev = d->devices->pdata[j];
            if (strcmp(dev->devclass, first->devclass) != 0)
                continue;
            gboolean options = dev->options->len > 1;
            open_el(o, 4, "device");
            put_attrs(o, dev->attrs);
            end_start(o, "device", NULL, options);
            for (guint k = 0; k + 1 < dev->options->len; k += 2) {
                open_el(o, 5, "option");
                put_attr(o, "name", dev->options->pdata[k]);
                end_start(o, "option", dev->options->pdata[k + 1], FALSE);
            }
            if (options)
                close_el(o, 4, "device");
        }
        close_el(o, 3, "devices");
    }
    open_el(o, 3, "tags");
    end_start(o, "tags", NULL, d->tags->len > 0);
    for (guint i = 0; i < d->tags->len; i++) {
        open_el(o, 4, "tag");
        put_attr(o, "name", d->tags->pdata[i]);
        end_start(o, "tag", NULL, FALSE);
    }
    if (d->tags->len)
        close_el(o, 3, "tags");
    if (d->volumes->len) {
        open_el(o, 3, "volume-config");
        end_start(o, "volume-config", NULL, TRUE);
        for (guint i = 0; i < d->volumes->len; i++) {
            open_el(o, 4, "volume");
            put_attrs(o, d->volumes->pdata[i]);
            end_start(o, "volume", NULL, FALSE);
        }
        close_el(o, 3, "volume-config");
    }
    close_el(o, 2, "domain");
}

/* NULL when the tree must write it (see above). */
static char *serialize_direct(const QubesXml *xml, gsize *len)
{
    Out o = {g_string_sized_new(4096 + 1536 * (gsize)xml->domains->len), FALSE};
    g_string_append(o.s, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                         "<qubes>\n");
    open_el(&o, 1, "labels");
    end_start(&o, "labels", NULL, xml->labels->len > 0);
    for (guint i = 0; i < xml->labels->len; i++) {
        const QxLabel *l = xml->labels->pdata[i];
        char id[32];
        g_snprintf(id, sizeof id, "label-%u", l->index);
        open_el(&o, 2, "label");
        put_attr(&o, "id", id);
        if (l->color)
            put_attr(&o, "color", l->color);
        end_start(&o, "label", l->name, FALSE);
    }
    if (xml->labels->len)
        close_el(&o, 1, "labels");
    open_el(&o, 1, "pools");
    end_start(&o, "pools", NULL, xml->pools->len > 0);
    for (guint i = 0; i < xml->pools->len; i++) {
        open_el(&o, 2, "pool");
        put_attrs(&o, xml->pools->pdata[i]);
        end_start(&o, "pool", NULL, FALSE);
    }
    if (xml->pools->len)
        close_el(&o, 1, "pools");
    put_properties(&o, 1, xml->properties);
    open_el(&o, 1, "domains");
    end_start(&o, "domains", NULL, xml->domains->len > 0);
    for (guint i = 0; i < xml->domains->len && !o.odd; i++)
        put_domain(&o, xml->domains->pdata[i]);
    if (xml->domains->len)
        close_el(&o, 1, "domains");
    g_string_append(o.s, "</qubes>\n");
    if (o.odd) {
        g_string_free(o.s, TRUE);
        return NULL;
    }
    if (len)
        *len = o.s->len;
    return g_string_free(o.s, FALSE);
}

char *qubes_xml_serialize(const QubesXml *xml, gsize *len)
{
    char *out = serialize_direct(xml, len);
    return out ? out : qubes_xml_serialize_tree(xml, len);
}

QubesXml *qubes_xml_load(const char *path, GError **error)
{
    g_autofree char *data = NULL;
    gsize len;
    if (!g_file_get_contents(path, &data, &len, error))
        return NULL;
    return qubes_xml_parse(data, len, path, error);
}

static QubesXmlFailpoint failpoint_func;
static gpointer failpoint_data;

void qubes_xml_set_failpoint(QubesXmlFailpoint func, gpointer data)
{
    failpoint_func = func;
    failpoint_data = data;
}

/* FALSE with an error when a test's failpoint fails @step on @path. */
static gboolean step_ok(const char *step, const char *path, GError **error)
{
    if (failpoint_func && failpoint_func(step, path, failpoint_data)) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                    "failpoint at %s of %s", step, path);
        return FALSE;
    }
    return TRUE;
}

/* Opens and lockf's @path (creating it empty when missing), the writers'
 * lock of the reference's protocol. A writer before us may rename a new
 * file over the one we locked: then we lock the new one. */
static int lock_xml(const char *path, GError **error)
{
    if (!step_ok("lock", path, error))
        return -1;
    for (;;) {
        int lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0660);
        if (lock_fd < 0) {
            qubes_error_errno(error, errno, "Cannot open %s", path);
            return -1;
        }
        if (lockf(lock_fd, F_LOCK, 0) < 0) {
            int errsv = errno;
            close(lock_fd);
            qubes_error_errno(error, errsv, "Cannot lock %s", path);
            return -1;
        }
        struct stat a, b;
        if (fstat(lock_fd, &a) == 0 && stat(path, &b) == 0 &&
            a.st_dev == b.st_dev && a.st_ino == b.st_ino)
            return lock_fd;
        close(lock_fd);
    }
}

/* Our temporaries: @base followed by '~' and six characters. */
static gboolean is_temporary(const char *name, const char *base)
{
    size_t n = strlen(base);
    return strncmp(name, base, n) == 0 && name[n] == '~' &&
           strlen(name + n + 1) == 6;
}

gboolean qubes_xml_remove_temporaries(const char *path, GError **error)
{
    int lock_fd = lock_xml(path, error);
    if (lock_fd < 0)
        return FALSE;
    /* Under the lock no save of ours is running: every temporary is one
     * a crash left. */
    g_autofree char *dir = g_path_get_dirname(path);
    g_autofree char *base = g_path_get_basename(path);
    gboolean ok = TRUE, removed = FALSE;
    g_autoptr(GDir) d = g_dir_open(dir, 0, error);
    if (!d) {
        close(lock_fd);
        return FALSE;
    }
    const char *name;
    while ((name = g_dir_read_name(d)) != NULL) {
        if (!is_temporary(name, base))
            continue;
        g_autofree char *p = g_build_filename(dir, name, NULL);
        if (unlink(p) < 0 && errno != ENOENT) {
            ok = qubes_error_errno(error, errno, "Cannot remove %s", p);
            break;
        }
        g_message("removed %s, left by an interrupted save", p);
        removed = TRUE;
    }
    if (ok && removed) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 || fsync(dfd) < 0)
            ok = qubes_error_errno(error, errno, "Cannot fsync %s", dir);
        if (dfd >= 0)
            close(dfd);
    }
    close(lock_fd);
    return ok;
}

/* Durability: the new content is written to a temporary in the same
 * folder and fsynced before the rename makes it qubes.xml, and the folder
 * is fsynced after, so after a crash qubes.xml is the old file or the
 * whole new one (test-qubesxml cuts the power at each step). A crash
 * leaves at most a temporary, which qubes_xml_remove_temporaries() drops
 * at the next start. Readers need no lock: the rename is atomic. The
 * first save of a new system creates qubes.xml empty to lock it; a crash
 * before its rename leaves that empty file, which qubes_app_open() takes
 * as no file. */
gboolean qubes_xml_save(const QubesXml *xml, const char *path, GError **error)
{
    int lock_fd = lock_xml(path, error);
    if (lock_fd < 0)
        return FALSE;
    gsize len;
    g_autofree char *data = qubes_xml_serialize(xml, &len);
    g_autofree char *tmp = g_strconcat(path, "~XXXXXX", NULL);
    g_autofree char *dir = g_path_get_dirname(path);
    gboolean ok = FALSE;
    int fd = step_ok("create", tmp, error)
                 ? g_mkstemp_full(tmp, O_RDWR | O_CLOEXEC, 0660)
                 : -2;
    if (fd == -2)
        goto out;
    if (fd < 0) {
        qubes_error_errno(error, errno, "Cannot create %s", tmp);
        goto out;
    }
    if (!step_ok("write", tmp, error))
        goto out;
    for (gsize off = 0; off < len;) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            qubes_error_errno(error, errno, "Cannot write %s", tmp);
            goto out;
        }
        off += (gsize)n;
    }
    struct group *qubes = getgrnam("qubes");
    if (fchmod(fd, 0660) < 0 ||
        (qubes && fchown(fd, (uid_t)-1, qubes->gr_gid) < 0)) {
        qubes_error_errno(error, errno, "Cannot set the mode of %s", tmp);
        goto out;
    }
    if (!step_ok("fsync", tmp, error))
        goto out;
    if (fsync(fd) < 0) {
        qubes_error_errno(error, errno, "Cannot fsync %s", tmp);
        goto out;
    }
    if (!step_ok("rename", tmp, error))
        goto out;
    if (rename(tmp, path) < 0) {
        qubes_error_errno(error, errno, "Cannot rename %s to %s", tmp, path);
        goto out;
    }
    g_clear_pointer(&tmp, g_free);
    if (!step_ok("fsync-dir", dir, error))
        goto out;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) < 0) {
        qubes_error_errno(error, errno, "Cannot fsync %s", dir);
        if (dfd >= 0)
            close(dfd);
        goto out;
    }
    close(dfd);
    ok = TRUE;
out:
    if (fd >= 0)
        close(fd);
    if (tmp && fd >= 0)
        unlink(tmp);
    close(lock_fd);
    return ok;
}

QubesXml *qubes_xml_new_default(const char *base_dir, gboolean reflinks)
{
    QubesXml *x = qubes_xml_new();
    for (guint i = 0; i < G_N_ELEMENTS(default_labels); i++) {
        g_ptr_array_add(x->labels, qx_label_new(i + 1, default_labels[i].color,
                                                default_labels[i].name));
    }
    QxAttrs *pool = strings();
    qx_attrs_set(pool, "name", "varlibqubes");
    qx_attrs_set(pool, "dir_path", base_dir);
    qx_attrs_set(pool, "driver", "file-reflink");
    qx_attrs_set(pool, "revisions_to_keep", "1");
    qx_attrs_set(pool, "ephemeral_volatile", "False");
    if (!reflinks)
        qx_attrs_set(pool, "setup_check", "False");
    g_ptr_array_add(x->pools, pool);
    QxAttrs *kernels = strings();
    g_autofree char *kdir = g_build_filename(base_dir, "vm-kernels", NULL);
    qx_attrs_set(kernels, "name", "linux-kernel");
    qx_attrs_set(kernels, "dir_path", kdir);
    qx_attrs_set(kernels, "driver", "linux-kernel");
    g_ptr_array_add(x->pools, kernels);
    qx_properties_set(x->properties, "default_pool_kernel", "linux-kernel");
    QxDomain *dom0 = qx_domain_new("domain-0", "AdminVM");
    qx_properties_set(dom0->properties, "label", "black");
    g_ptr_array_add(x->domains, dom0);
    return x;
}
