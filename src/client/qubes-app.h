/* qubes-app.h: the qubes as the Qubes client's tools see them
 * (qubesadmin.app.QubesBase and qubesadmin.vm.QubesVM with its cache
 * enabled, as qvm-ls enables it): one admin.vm.List gives every qube
 * with its class and power state; a qube's properties come with one
 * admin.vm.property.GetAll the first time one is asked for, typed as
 * the client types them; features, tags, volumes and memory are asked
 * for when wanted and kept.
 *
 * Values are given as Python's str() of the client's value (a VM or a
 * label as its name, a bool as True/False), or NULL where the client
 * has None or raises AttributeError (an unset int or bool, a property
 * the qube has not). */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _QaApp QaApp;
typedef struct _QaVm QaVm;

typedef enum {
    QA_PROP_MISSING, /* the client raises AttributeError */
    QA_PROP_NONE,    /* None: a vm or label property set to nothing */
    QA_PROP_VALUE,
} QaPropKind;

typedef struct {
    QaPropKind kind;
    gboolean is_default;
    char *type;  /* "str", "int", "bool", "vm", "label" */
    char *value; /* str() of the value (QA_PROP_VALUE) */
} QaProp;

/* A property answer "default=X type=T VALUE" as the client reads it
 * (new; free with qa_prop_free). */
QaProp *qa_prop_parse(const char *text);
void qa_prop_free(QaProp *p);
/* @method (admin.vm.property.GetAll or admin.property.GetAll) on @dest:
 * name -> QaProp* (new), or NULL when the call fails. */
GHashTable *qa_props_get_all(const char *method, const char *dest);

/* The qubes, from one admin.vm.List; NULL with @error when qubesd
 * answers nothing or refuses. */
QaApp *qa_app_new(GError **error);
void qa_app_free(QaApp *app);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QaApp, qa_app_free)

/* Every qube, sorted by name (borrowed). */
GPtrArray *qa_app_domains(QaApp *app);
/* The qube named @name, or NULL. */
QaVm *qa_app_domain(QaApp *app, const char *name);

const char *qa_vm_name(const QaVm *vm);
const char *qa_vm_klass(const QaVm *vm);
/* The power state admin.vm.List gave ("Running", "Halted", ...). */
const char *qa_vm_state(const QaVm *vm);
/* Property @name (its GetAll fetched once); a missing one is kind
 * QA_PROP_MISSING. Borrowed. */
const QaProp *qa_vm_prop(QaVm *vm, const char *name);
/* str() of property @name's value, or NULL for None or AttributeError. */
const char *qa_vm_prop_str(QaVm *vm, const char *name);
/* Whether property @name is a true bool (getattr(vm, name, False)). */
gboolean qa_vm_prop_true(QaVm *vm, const char *name);
/* The value of feature @name, or NULL when it is not set. */
const char *qa_vm_feature(QaVm *vm, const char *name);
/* The qube's tags (borrowed char*). */
GPtrArray *qa_vm_tags(QaVm *vm);
/* The qube's volumes' names, in the order qubesd lists them (borrowed). */
GPtrArray *qa_vm_volumes(QaVm *vm);
/* admin.vm.volume.Info of @volume as KEY -> VALUE (borrowed), or NULL
 * when the qube has no such volume. */
GHashTable *qa_vm_volume_info(QaVm *vm, const char *volume);
/* The memory admin.vm.CurrentState reports (KiB), -1 when it fails. */
gint64 qa_vm_mem(QaVm *vm);
/* The qubes whose netvm is @vm, sorted by name (new array). */
GPtrArray *qa_vm_connected(QaApp *app, QaVm *vm);

G_END_DECLS
