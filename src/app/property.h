/* property.h: typed properties of the app and of domains.
 *
 * A class declares its properties as a table of QubesPropDef; an object
 * (the app, a domain) holds a QubesPropHolder with the values explicitly
 * set, as canonical strings: what qubes.xml stores and what the Admin API
 * sends ("True"/"False" for booleans, decimal for integers, a name for a
 * domain or a label, "" for none). A property not set reads as its
 * default, static or computed from the object.
 *
 * Setting and resetting fire the reference's events on the holder's
 * emitter, so handlers can veto (pre-events) and watch:
 *   set:   property-pre-set:NAME, property-set:NAME
 *          (name, newvalue[, oldvalue])
 *   reset: property-pre-reset:NAME, property-pre-del:NAME,
 *          property-reset:NAME, property-del:NAME (name[, oldvalue])
 * oldvalue is there when the property had a value, set or default.
 * Loading from qubes.xml fires nothing.
 */
#pragma once

#include <glib.h>

#include "events.h"
#include "qubes-parse.h"
#include "qubesxml.h"

G_BEGIN_DECLS

typedef enum {
    QUBES_PROP_STR,
    QUBES_PROP_INT,
    QUBES_PROP_BOOL,
    QUBES_PROP_VM,    /* a domain's name, "" for none */
    QUBES_PROP_LABEL, /* a label's name */
    QUBES_PROP_IP4,   /* an IPv4 address (the API calls it "str") */
    QUBES_PROP_IP6,   /* an IPv6 address, canonical form ("str") */
    QUBES_PROP_UUID,  /* a UUID, lower case ("str") */
} QubesPropType;

typedef struct _QubesPropHolder QubesPropHolder;
typedef struct _QubesPropDef QubesPropDef;

/* Checks and normalises a value already sanitised for its type; returns
 * the canonical string (new) or NULL with @error set. */
typedef char *(*QubesPropSetter)(QubesPropHolder *holder,
                                 const QubesPropDef *def, const char *value,
                                 GError **error);
/* Computes a default (new string), or NULL when there is none now. */
typedef char *(*QubesPropDefaultFunc)(QubesPropHolder *holder,
                                      const QubesPropDef *def);

typedef enum {
    QUBES_PROP_WRITE_ONCE = 1 << 0, /* only while not set */
    QUBES_PROP_READ_ONLY = 1 << 1,  /* never set through the API */
    QUBES_PROP_DONT_SAVE = 1 << 2,  /* computed, not stored */
    QUBES_PROP_NO_CLONE = 1 << 3,   /* not copied by clone */
    QUBES_PROP_SAVE_VIA_REF = 1 << 4,
    QUBES_PROP_DEFAULT_NONE = 1 << 5, /* default None: GetDefault says
                                         "type=T " (without it and without a
                                         default, it answers nothing) */
} QubesPropFlags;

struct _QubesPropDef {
    const char *name;
    QubesPropType type;
    QubesPropFlags flags;
    int load_stage; /* 2 (or 0): with the domain, 3: global, 4: the rest */
    int order;
    const char *default_value; /* static default, or NULL */
    QubesPropDefaultFunc default_func;
    QubesPropSetter setter;
    const char *doc;
};

/* Called after a value of @holder changed (set or reset), before the
 * post-events: FALSE with @error undoes the change. The app checks there
 * that the whole system stays loadable. */
typedef gboolean (*QubesPropCheck)(QubesPropHolder *holder, const char *name,
                                   GError **error);

struct _QubesPropHolder {
    QubesEmitter *emitter; /* not owned */
    const char *class_name;
    gpointer owner;       /* the app or domain, for setters and defaults */
    QubesPropCheck check; /* may be NULL */
    /* private */
    const struct _QubesPropSchema *schema; /* the class's definitions:
                                              shared, never freed */
    GHashTable *values;                    /* name -> canonical string */
};

/* @tables: the class's own table first, then its parents'; each table
 * ends with an entry whose name is NULL. A name in an earlier table hides
 * the same name in later ones. @tables is static (it lives as long as
 * the process, and its content never changes): the sorted definitions
 * made from it are kept, by its address, for every later holder. */
void qubes_props_init(QubesPropHolder *holder, QubesEmitter *emitter,
                      const char *class_name, const QubesPropDef *const *tables,
                      gpointer owner);
void qubes_props_clear(QubesPropHolder *holder);

/* The definitions, sorted by load stage, order and name (static array). */
const GPtrArray *qubes_props_list(QubesPropHolder *holder);
/* NULL with QubesNoSuchPropertyError when @name is not a property. */
const QubesPropDef *qubes_props_def(QubesPropHolder *holder, const char *name,
                                    GError **error);
/* "str", "int", "bool", "vm" or "label", as admin.vm.property.Get says. */
const char *qubes_prop_type_name(QubesPropType type);

/* Reads @name: *value the canonical string, or NULL when it is neither
 * set nor has a default; *is_default whether it was not set. */
gboolean qubes_props_get(QubesPropHolder *holder, const char *name,
                         char **value, gboolean *is_default, GError **error);
/* The value of @name as qubes_props_get reads it (new string), NULL when
 * it has none or there is no such property. */
char *qubes_props_value(QubesPropHolder *holder, const char *name);
/* The default of @name (new string, NULL when none). */
char *qubes_props_get_default(QubesPropHolder *holder, const char *name,
                              GError **error);
gboolean qubes_props_is_default(QubesPropHolder *holder, const char *name);

/* Fires property-reset:@name on @holder with master's arguments (name,
 * and oldvalue when not NULL): what master tells a holder whose value
 * follows something that changed (its template's, a default, the label
 * behind its icon). A handler's refusal is ignored, as there. */
void qubes_props_notify_reset(QubesPropHolder *holder, const char *name,
                              const char *oldvalue);

/* Sets @name from an untrusted string (an API payload, qubes.xml text):
 * sanitised for its type, then the setter, then the events. A veto or a
 * bad value changes nothing. */
gboolean qubes_props_set(QubesPropHolder *holder, const char *name,
                         const char *untrusted_value, GError **error);
/* Back to the default. */
gboolean qubes_props_reset(QubesPropHolder *holder, const char *name,
                           GError **error);

/* Sets @error to a QubesPropertyValueError: @why, as the reference's
 * setters give it, or without one "Invalid value 'V' for property 'P' of
 * HOLDER"; returns FALSE. */
gboolean qubes_prop_error(GError **error, QubesPropHolder *holder,
                          const QubesPropDef *def, const char *value,
                          const char *why);
/* Setters several classes share: an integer above zero, or not below. */
char *qubes_prop_setter_positive(QubesPropHolder *holder,
                                 const QubesPropDef *def, const char *value,
                                 GError **error);
char *qubes_prop_setter_non_negative(QubesPropHolder *holder,
                                     const QubesPropDef *def, const char *value,
                                     GError **error);

/* Loads the properties of @load_stage (0: all) from qubes.xml, without
 * events. A name the class does not have, or a value its setter refuses,
 * is an error; with @tolerant it is logged (naming @who and the
 * property) and left out instead, so that the property keeps its
 * default. */
gboolean qubes_props_load(QubesPropHolder *holder, const GPtrArray *props,
                          int load_stage, gboolean tolerant, const char *who,
                          GError **error);
/* Runs the setter of every explicitly set value of @holder again, as a
 * load would: FALSE with the first refusal. */
gboolean qubes_props_check_all(QubesPropHolder *holder, GError **error);

/* str() of a dict of strings from @pairs (name, value, ...), as an
 * event's argument carries it: {'k': 'v', ...} (new). */
char *qubes_py_dict(const GPtrArray *pairs);
/* The explicitly set values, for qubes.xml (new array of QxProperty). */
GPtrArray *qubes_props_save(QubesPropHolder *holder);

G_END_DECLS
