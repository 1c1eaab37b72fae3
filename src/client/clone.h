/* clone.h: a qube copied as the Qubes client's QubesBase.clone_vm()
 * copies it (qvm-clone, and qvm-create for a StandaloneVM from a
 * template): the new qube made in the given pools with the source's
 * class, template and label; then its properties that are not default,
 * tags (not created-by-*), features (not the preloaded disposables'
 * own), notes, firewall rules and desktop menus (by qvm-appmenus, when
 * installed); then the data of each volume it saves on stop (CloneFrom
 * and CloneTo, reflinks where the pool can); then the device
 * assignments. Failures are logged on standard error as the client's
 * loggers log them (qubes_args_log). */
#pragma once

#include "argparse.h"
#include "qubes-app.h"

#include <glib.h>

G_BEGIN_DECLS

typedef struct {
    const char *cls;        /* the class, NULL: the source's */
    const char *pool;       /* one pool for every volume, NULL or "": none */
    GHashTable *pools;      /* VOLUME -> POOL, NULL: none; not with @pool */
    gboolean ignore_errors; /* a setting or an assignment that fails is
                               logged and skipped */
    const char *const *ignore_volumes; /* volumes left empty (NULL-ended) */
} QaCloneOptions;

/* TRUE when @new_name is a copy of @src. FALSE with qubesd's refusal
 * in @error; a copy begun is removed then. */
gboolean qa_clone_vm(ArgsNamespace *ns, QaVm *src, const char *new_name,
                     const QaCloneOptions *o, GError **error);

G_END_DECLS
