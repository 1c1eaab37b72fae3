/* qvm-backup-restore: restore qubes from a Qubes backup (format 4) into
 * qubesd, as the Qubes client's qvm-backup-restore does: the same
 * options, the same summary table and refusals (restore-plan.h), the
 * same Admin API calls in the same order (create, template_for_dispvms,
 * properties, features, tags, device assignments, then netvm and
 * default_dispvm), each volume's data imported through the import
 * service's calls (internal.vm.volume.ImportBegin/End: the image is
 * written here at each extent's offset, its holes never written),
 * firewall rules and notes.
 *
 * The backup is read once (backup-read.h) on a thread: it stops after
 * qubes.xml until the plan is made and confirmed, then each chunk is
 * decrypted and checked once and goes straight to its qube. Nothing is
 * unpacked to a folder first.
 *
 * When the backup turns out broken (a changed byte, a cut, a chunk out of
 * order, a hostile member), the qubes this run created whose data did not
 * arrive whole are removed again, and the message names the file or
 * chunk; qubes already restored whole stay.
 */
#include "backup-read.h"
#include "devices.h"
#include "firewall.h"
#include "import.h"
#include "qubes-error.h"
#include "qfile.h"
#include "restore-core2.h"
#include "restore-plan.h"
#include "tool.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *prog = "qvm-backup-restore";
static int verbosity; /* -v: info messages; the client's default is
                         warnings and errors only */

static void log_info(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
static void log_info(const char *fmt, ...)
{
    if (verbosity < 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void log_warn(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
static void log_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static int runtime_error(const char *msg)
{
    fprintf(stderr, "%s: error: %s\n", prog, msg);
    return 1;
}

/* ---- the host ---- */

static char *prop_value(const char *dest, const char *prop, gboolean global)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *r =
        qa_call(global ? "admin.property.Get" : "admin.vm.property.Get",
                global ? "dom0" : dest, prop, NULL, &err);
    return r ? tool_prop_value(r, NULL) : NULL;
}

static QubesRestoreHost *host_info(GError **error)
{
    g_autofree char *list = qa_call("admin.vm.List", "dom0", NULL, NULL, error);
    if (!list)
        return NULL;
    QubesRestoreHost *h = qubes_restore_host_new();
    g_auto(GStrv) lines = g_strsplit(list, "\n", -1);
    for (GStrv l = lines; *l && **l; l++) {
        g_autofree char *name = g_strndup(*l, strcspn(*l, " "));
        const char *k = strstr(*l, " class=");
        g_autofree char *klass =
            k ? g_strndup(k + 7, strcspn(k + 7, " ")) : g_strdup("");
        if (strcmp(klass, "AdminVM") != 0) {
            g_autofree char *dvm =
                prop_value(name, "template_for_dispvms", FALSE);
            g_autofree char *net = prop_value(name, "provides_network", FALSE);
            if (g_strcmp0(dvm, "True") == 0)
                g_hash_table_add(h->dispvm_tpls, g_strdup(name));
            if (g_strcmp0(net, "True") == 0)
                g_hash_table_add(h->networkers, g_strdup(name));
        }
        g_hash_table_insert(h->classes, g_steal_pointer(&name),
                            g_steal_pointer(&klass));
    }
    h->default_template = prop_value(NULL, "default_template", TRUE);
    h->default_dispvm = prop_value(NULL, "default_dispvm", TRUE);
    if (h->default_template && !*h->default_template)
        g_clear_pointer(&h->default_template, g_free);
    if (h->default_dispvm && !*h->default_dispvm)
        g_clear_pointer(&h->default_dispvm, g_free);
    struct group *g = getgrnam("qubes");
    if (g && g->gr_mem && g->gr_mem[0])
        h->local_user = g_strdup(g->gr_mem[0]);
    return h;
}

/* ---- the reading thread ---- */

typedef enum {
    F_SKIP,
    F_VOLUME,
    F_FIREWALL,
    F_NOTES,
    F_HOME,
    F_APPMENUS, /* format 3's whitelisted-appmenus.list */
} Kind;

/* What a file of the backup goes to. */
typedef struct {
    Kind kind;
    char *vm;     /* the qube made for it */
    char *volume; /* F_VOLUME */
    int fd;
    guint64 unsynced;  /* written since writeback was last started */
    char *error;       /* the first failure of its import */
    gboolean started;  /* ImportBegin answered */
    gboolean finished; /* its data arrived whole and was taken */
    GByteArray *bytes; /* F_FIREWALL, F_NOTES, F_APPMENUS */
    int home_fd;       /* F_HOME: home-restore-DATE */
    uid_t uid;         /* F_HOME: its owner */
    gid_t gid;
} Target;

typedef struct {
    /* the reader's: shared under lock */
    GMutex lock;
    GCond cond;
    GByteArray *qubes_xml;
    int format; /* the backup's format (its header's version) */
    gboolean xml_ready;
    gboolean decided; /* the main thread said go (or stop) */
    gboolean go;
    gboolean reader_done;
    gboolean reader_ok;
    GError *reader_error;
    /* set before go, read by the reader only */
    GHashTable *targets; /* file -> Target */
    guint64 total, done;
    gboolean progress;
} Restore;

#define XML_MAX (16u << 20)
#define SMALL_MAX (1u << 20)

static void target_free(Target *t)
{
    if (t->fd >= 0)
        close(t->fd);
    if (t->kind == F_HOME && t->home_fd >= 0)
        close(t->home_fd);
    g_free(t->vm);
    g_free(t->volume);
    g_free(t->error);
    if (t->bytes)
        g_byte_array_unref(t->bytes);
    g_free(t);
}

static Target *target_new(Kind kind, const char *vm, const char *volume)
{
    Target *t = g_new0(Target, 1);
    t->kind = kind;
    t->vm = g_strdup(vm);
    t->volume = g_strdup(volume);
    t->fd = -1;
    t->home_fd = -1;
    if (kind == F_FIREWALL || kind == F_NOTES || kind == F_APPMENUS)
        t->bytes = g_byte_array_new();
    return t;
}

static void target_fail(Target *t, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void target_fail(Target *t, const char *fmt, ...)
{
    if (t->error)
        return;
    va_list ap;
    va_start(ap, fmt);
    t->error = g_strdup_vprintf(fmt, ap);
    va_end(ap);
}

/* ---- dom0's home: extracted under home-restore-DATE, never following
 * a link and never leaving it ---- */

/* The folder of @name's last component under @root (made as needed,
 * each component opened with O_NOFOLLOW); its fd, and *@leaf the last
 * component. -1 for a name that is absolute, empty, or has "." or "..". */
static int home_parent(Target *t, const char *name, char **leaf)
{
    g_auto(GStrv) parts = g_strsplit(name, "/", -1);
    guint n = g_strv_length(parts);
    while (n > 1 && !*parts[n - 1]) /* a folder's trailing slash */
        n--;
    if (!n || !*parts[0])
        return -1;
    for (guint i = 0; i < n; i++)
        if (!*parts[i] || !strcmp(parts[i], ".") || !strcmp(parts[i], ".."))
            return -1;
    int fd = dup(t->home_fd);
    for (guint i = 0; fd >= 0 && i + 1 < n; i++) {
        if (mkdirat(fd, parts[i], 0700) == 0)
            fchownat(fd, parts[i], t->uid, t->gid, AT_SYMLINK_NOFOLLOW);
        int next = openat(fd, parts[i],
                          O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        close(fd);
        fd = next;
    }
    *leaf = g_strdup(parts[n - 1]);
    return fd;
}

static void home_begin(Target *t, const QubesTarMember *m)
{
    g_autofree char *leaf = NULL;
    int dfd = home_parent(t, m->name, &leaf);
    if (dfd < 0) {
        log_warn("dom0 home: '%s' left out: not a safe name", m->name);
        return;
    }
    mode_t mode = m->mode & 0777;
    if (m->type == QUBES_TAR_DIR) {
        if (mkdirat(dfd, leaf, mode | 0700) == 0)
            fchownat(dfd, leaf, t->uid, t->gid, AT_SYMLINK_NOFOLLOW);
    } else if (m->type == QUBES_TAR_SYMLINK) {
        if (symlinkat(m->link, dfd, leaf) == 0)
            fchownat(dfd, leaf, t->uid, t->gid, AT_SYMLINK_NOFOLLOW);
    } else if (m->type == QUBES_TAR_FILE) {
        t->fd =
            openat(dfd, leaf,
                   O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
        if (t->fd >= 0) {
            if (fchown(t->fd, t->uid, t->gid) != 0 ||
                ftruncate(t->fd, (off_t)m->size) != 0)
                log_warn("dom0 home: %s: %s", m->name, g_strerror(errno));
        } else {
            log_warn("dom0 home: '%s' left out: %s", m->name,
                     g_strerror(errno));
        }
    } else {
        log_warn("dom0 home: '%s' left out: not a file, folder or link",
                 m->name);
    }
    close(dfd);
}

static gboolean wait_decision(Restore *r)
{
    g_mutex_lock(&r->lock);
    r->xml_ready = TRUE;
    g_cond_broadcast(&r->cond);
    while (!r->decided)
        g_cond_wait(&r->cond, &r->lock);
    gboolean go = r->go;
    g_mutex_unlock(&r->lock);
    return go;
}

static gboolean stop_here(GError **error)
{
    g_set_error_literal(error, QUBES_ERROR, QUBES_ERROR_BACKUP_CANCELLED,
                        "Restore cancelled");
    return FALSE;
}

static Target *target_of(Restore *r, const char *file)
{
    return r->targets ? g_hash_table_lookup(r->targets, file) : NULL;
}

static gboolean rd_begin(const char *file, const QubesTarMember *m,
                         gpointer data, GError **error)
{
    Restore *r = data;
    if (strcmp(file, "qubes.xml") == 0)
        return TRUE;
    Target *t = target_of(r, file);
    if (t && t->kind == F_HOME) {
        if (t->fd >= 0)
            close(t->fd);
        t->fd = -1;
        home_begin(t, m);
        return TRUE;
    }
    if (!t || t->kind != F_VOLUME)
        return TRUE;
    if (m->type != QUBES_TAR_FILE || strcmp(m->name, file) != 0) {
        target_fail(t, "unexpected member %s in %s", m->name, file);
        return TRUE;
    }
    if (t->started) {
        target_fail(t, "%s holds more than one image", file);
        return TRUE;
    }
    /* the import service's first half: a fresh image of this size */
    g_autofree char *size = g_strdup_printf("%" G_GUINT64_FORMAT, m->size);
    g_autoptr(GError) err = NULL;
    guint64 got;
    t->fd = qa_import_begin("dom0", t->vm, t->volume, size, &got, NULL,
                            &t->started, &err);
    if (t->fd < 0)
        target_fail(t, "cannot import %s:%s: %s", t->vm, t->volume,
                    tool_error_message(err));
    return TRUE;
}

static gboolean rd_data(const char *file, const QubesTarMember *m,
                        guint64 offset, const guint8 *buf, gsize len,
                        gpointer data, GError **error)
{
    Restore *r = data;
    if (strcmp(file, "qubes.xml") == 0) {
        if (r->qubes_xml->len + len > XML_MAX) {
            g_set_error(error, QUBES_ERROR, QUBES_ERROR_EXCEPTION,
                        "qubes.xml in the backup is larger than %u bytes",
                        XML_MAX);
            return FALSE;
        }
        g_byte_array_append(r->qubes_xml, buf, (guint)len);
        return TRUE;
    }
    r->done += len;
    if (r->progress && r->total)
        fprintf(stderr, "\rRestoring... %.2f%%",
                MIN(100.0, 100.0 * (double)r->done / (double)r->total));
    Target *t = target_of(r, file);
    if (!t || t->error)
        return TRUE;
    if (t->kind == F_VOLUME || (t->kind == F_HOME && t->fd >= 0)) {
        /* only the data is written: the holes stay holes */
        while (len) {
            ssize_t n = pwrite(t->fd, buf, len, (off_t)offset);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                target_fail(t, "writing %s:%s: %s", t->vm, t->volume,
                            g_strerror(n < 0 ? errno : EIO));
                return TRUE;
            }
            buf += n, len -= (gsize)n, offset += (guint64)n;
            qfile_writeback_step(t->fd, &t->unsynced, (gsize)n);
        }
    } else if (t->bytes) {
        if (t->bytes->len + len > SMALL_MAX)
            target_fail(t, "%s is too large", file);
        else
            g_byte_array_append(t->bytes, buf, (guint)len);
    }
    return TRUE;
}

static gboolean rd_end(const char *file, const QubesTarMember *m, gpointer data,
                       GError **error)
{
    return TRUE;
}

/* The whole file arrived (every chunk checked): its target takes it. */
static gboolean rd_file_done(const char *file, gpointer data, GError **error)
{
    Restore *r = data;
    if (strcmp(file, "qubes.xml") == 0)
        return wait_decision(r) || stop_here(error);
    Target *t = target_of(r, file);
    if (!t)
        return TRUE;
    g_autoptr(GError) err = NULL;
    if (t->kind == F_VOLUME) {
        if (!t->started && !t->error)
            target_fail(t, "%s holds no image", file);
        if (t->fd >= 0 && !t->error && fdatasync(t->fd) != 0)
            target_fail(t, "flushing %s:%s: %s", t->vm, t->volume,
                        g_strerror(errno));
        if (!t->started)
            return TRUE;
        g_autoptr(GBytes) raw =
            qa_import_end("dom0", t->vm, t->volume, t->error, &err);
        g_autofree char *a =
            raw ? qa_answer_text(raw, "internal.vm.volume.ImportEnd", t->volume,
                                 NULL, &err)
                : NULL;
        if (!a)
            target_fail(t, "%s", tool_error_message(err));
        t->finished = !t->error;
    } else if (t->kind == F_FIREWALL && r->format == 3) {
        /* R3's rules, as the client's core2.py turns them into R4's */
        g_autofree char *text = qubes_restore_core2_firewall(
            (const char *)t->bytes->data, t->bytes->len, t->vm, &err);
        g_autofree char *a =
            text ? qa_call("admin.vm.firewall.Set", t->vm, NULL, text, &err)
                 : NULL;
        if (!a)
            log_warn("Failed to set firewall of %s: %s", t->vm,
                     tool_error_message(err));
        t->finished = TRUE;
    } else if (t->kind == F_APPMENUS) {
        /* the menu's entries, one a line, as the feature menu-items */
        g_autofree char *list =
            g_strndup((const char *)t->bytes->data, t->bytes->len);
        g_auto(GStrv) lines = g_strsplit(list, "\n", -1);
        GString *items = g_string_new(NULL);
        for (GStrv l = lines; *l; l++)
            if (**l)
                g_string_append_printf(items, "%s%s", items->len ? " " : "",
                                       *l);
        g_autofree char *a = qa_call("admin.vm.feature.Set", t->vm,
                                     "menu-items", items->str, &err);
        g_string_free(items, TRUE);
        if (!a)
            log_warn("Failed to set application list for %s: %s", t->vm,
                     tool_error_message(err));
        t->finished = TRUE;
    } else if (t->kind == F_FIREWALL) {
        g_autoptr(GPtrArray) rules = qubes_fw_from_xml(
            (const char *)t->bytes->data, t->bytes->len, file, &err);
        GString *text = g_string_new(NULL);
        gint64 now = g_get_real_time() / G_USEC_PER_SEC;
        for (guint i = 0; rules && i < rules->len; i++) {
            g_autofree char *line = qubes_fw_rule_api(rules->pdata[i], now);
            g_string_append_printf(text, "%s\n", line);
        }
        g_autofree char *a = rules ? qa_call("admin.vm.firewall.Set", t->vm,
                                             NULL, text->str, &err)
                                   : NULL;
        g_string_free(text, TRUE);
        if (!a)
            log_warn("Failed to set firewall of %s: %s", t->vm,
                     tool_error_message(err));
        t->finished = TRUE;
    } else if (t->kind == F_HOME) {
        t->finished = TRUE;
    } else if (t->kind == F_NOTES) {
        g_autofree char *a =
            qa_call_full(NULL, NULL, "admin.vm.notes.Set", t->vm, NULL,
                         t->bytes->data, t->bytes->len, NULL, &err);
        if (!a)
            log_warn("Failed to set notes of %s: %s", t->vm,
                     tool_error_message(err));
        t->finished = TRUE;
    }
    return TRUE;
}

typedef struct {
    Restore *r;
    int fd;
    char *passphrase;
    char *filter;
} ReaderArgs;

static gboolean rd_header(const QubesBackupHeader *h, gpointer data,
                          GError **error)
{
    Restore *r = data;
    r->format = h->version; /* before qubes.xml, which the main thread
                             * waits for under the lock */
    return TRUE;
}

static gpointer reader_thread(gpointer data)
{
    ReaderArgs *a = data;
    Restore *r = a->r;
    static const QubesBackupReadCallbacks cb = {
        .header = rd_header,
        .begin = rd_begin,
        .data = rd_data,
        .end = rd_end,
        .file_done = rd_file_done,
    };
    GError *err = NULL;
    gboolean ok =
        qubes_backup_read(a->fd, a->passphrase, a->filter, &cb, r, &err);
    g_mutex_lock(&r->lock);
    r->reader_done = TRUE;
    r->reader_ok = ok;
    r->reader_error = err;
    g_cond_broadcast(&r->cond);
    g_mutex_unlock(&r->lock);
    return NULL;
}

/* ---- making the qubes ---- */

typedef struct {
    GPtrArray *created; /* char*: names this run made */
} Made;

static gboolean call_ok(const char *method, const char *dest, const char *arg,
                        const char *payload, GError **error)
{
    g_autofree char *r = qa_call(method, dest, arg, payload, error);
    return r != NULL;
}

static void set_prop(const char *vm, const char *prop, const char *value)
{
    g_autoptr(GError) err = NULL;
    if (!call_ok("admin.vm.property.Set", vm, prop, value ? value : "", &err))
        log_warn("Error setting %s.%s to %s: %s", vm, prop,
                 value ? value : "None", tool_error_message(err));
}

/* _restore_vms_metadata */
static void restore_metadata(QubesRestoreInfo *info,
                             const QubesRestoreOptions *opts, Made *made)
{
    g_autoptr(GPtrArray) order = qubes_restore_templates_first(info);
    for (guint i = 0; i < order->len; i++) {
        QubesRestoreItem *it = order->pdata[i];
        if (it->is_dom0 || !qubes_restore_good(it))
            continue;
        log_info("-> %s %s...", opts->verify_only ? "Verifying" : "Restoring",
                 it->vm->name);
        if (opts->verify_only)
            continue;
        const char *tpl = it->vm->template ? it->template : NULL;
        QubesRestoreItem *ti = qubes_restore_item(info, tpl);
        if (ti && !ti->is_dom0 && qubes_restore_good(ti))
            tpl = ti->name;
        g_autofree char *method =
            g_strconcat("admin.vm.Create.", it->vm->klass, NULL);
        g_autofree char *payload =
            g_strdup_printf("name=%s label=%s", it->name, it->vm->label);
        g_autoptr(GError) err = NULL;
        gboolean ok = call_ok(method, "dom0", tpl, payload, &err);
        if (!ok && qa_error_type(err) &&
            strcmp(qa_error_type(err), "QubesLabelNotFoundError") == 0) {
            g_clear_error(&err);
            g_free(payload);
            payload = g_strdup_printf("name=%s label=red", it->name);
            ok = call_ok(method, "dom0", tpl, payload, &err);
        }
        if (!ok) {
            log_warn("Error restoring VM %s, skipping: %s", it->vm->name,
                     tool_error_message(err));
            it->problems |= QUBES_RESTORE_EXCLUDED; /* not made */
            continue;
        }
        g_ptr_array_add(made->created, g_strdup(it->name));
        /* early, for the disposables that depend on it */
        const char *dvm =
            qubes_restore_vm_prop(it->vm, "template_for_dispvms", NULL);
        if (dvm)
            set_prop(it->name, "template_for_dispvms", dvm);
    }
    if (opts->verify_only)
        return;
    for (guint i = 0; i < info->items->len; i++) {
        QubesRestoreItem *it = info->items->pdata[i];
        if (it->is_dom0 || !qubes_restore_good(it))
            continue;
        const QubesRestoreVM *vm = it->vm;
        for (guint p = 0; p + 1 < vm->properties->len; p += 2) {
            const char *name = vm->properties->pdata[p];
            static const char *const skip[] = {
                "dispid",         "template_for_dispvms", "template", "netvm",
                "default_dispvm", "installed_by_rpm",     NULL};
            if (!g_strv_contains(skip, name))
                set_prop(it->name, name, vm->properties->pdata[p + 1]);
        }
        for (guint f = 0; f + 1 < vm->features->len; f += 2) {
            g_autoptr(GError) err = NULL;
            if (!call_ok("admin.vm.feature.Set", it->name,
                         vm->features->pdata[f], vm->features->pdata[f + 1],
                         &err))
                log_warn("Error setting %s.features[%s] to %s: %s", vm->name,
                         (char *)vm->features->pdata[f],
                         (char *)vm->features->pdata[f + 1],
                         tool_error_message(err));
        }
        for (guint t = 0; t < vm->tags->len; t++) {
            g_autoptr(GError) err = NULL;
            if (!call_ok("admin.vm.tag.Set", it->name, vm->tags->pdata[t], NULL,
                         &err))
                log_warn("Error adding tag %s to %s: %s",
                         (char *)vm->tags->pdata[t], vm->name,
                         tool_error_message(err));
        }
        for (guint d = 0; d < vm->devices->len; d++) {
            const QubesRestoreDevice *dev = vm->devices->pdata[d];
            /* the client's assignment: any device at that port */
            g_autofree char *arg =
                g_strdup_printf("%s+%s", dev->backend, dev->port);
            GString *pl = g_string_new(NULL);
            g_autoptr(GError) err = NULL;
            gboolean ok = qubes_dev_pack(pl, "mode", dev->mode, &err);
            for (guint o = 0; ok && o + 1 < dev->options->len; o += 2) {
                g_autofree char *key =
                    g_strconcat("_", (char *)dev->options->pdata[o], NULL);
                ok = qubes_dev_pack(pl, key, dev->options->pdata[o + 1], &err);
            }
            g_autofree char *method =
                g_strdup_printf("admin.vm.device.%s.Assign", dev->devclass);
            if (!ok || !call_ok(method, it->name, arg, pl->str, &err))
                log_warn("Error assigning device %s:%s to %s: %s",
                         dev->devclass, dev->port, vm->name,
                         tool_error_message(err));
            g_string_free(pl, TRUE);
        }
    }
    /* dependencies last: netvm and default_dispvm, renamed ones followed */
    for (guint i = 0; i < info->items->len; i++) {
        QubesRestoreItem *it = info->items->pdata[i];
        if (it->is_dom0 || !qubes_restore_good(it))
            continue;
        static const char *const deps[] = {"netvm", "default_dispvm"};
        for (guint k = 0; k < G_N_ELEMENTS(deps); k++) {
            gboolean present;
            const char *v = qubes_restore_vm_prop(it->vm, deps[k], &present);
            if (!present)
                continue;
            if (k == 0)
                v = it->netvm;
            /* the rename of a qube restored with it (the client follows
             * the rename of an excluded one too, naming a qube it did
             * not make) */
            QubesRestoreItem *to = qubes_restore_item(info, v);
            set_prop(it->name, deps[k],
                     to && !to->is_dom0 && qubes_restore_good(to) ? to->name
                                                                  : v);
        }
    }
}

/* The volumes of @vm saved on stop: their data comes from the backup. */
static GPtrArray *saved_volumes(const char *vm)
{
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GError) err = NULL;
    g_autofree char *list =
        qa_call("admin.vm.volume.List", vm, NULL, NULL, &err);
    g_auto(GStrv) names = list ? g_strsplit(list, "\n", -1) : NULL;
    for (GStrv n = names; n && *n && **n; n++) {
        g_autofree char *inf =
            qa_call("admin.vm.volume.Info", vm, *n, NULL, NULL);
        if (inf && strstr(inf, "\nsave_on_stop=True"))
            g_ptr_array_add(out, g_strdup(*n));
    }
    return out;
}

/* _handle_dom0's folder: home-restore-DATE in the home of dom0's user
 * (the first member of the group qubes, else ours), owned by that user. */
static Target *home_target(void)
{
    struct group *g = getgrnam("qubes");
    struct passwd *pw =
        g && g->gr_mem && g->gr_mem[0] ? getpwnam(g->gr_mem[0]) : NULL;
    /* else ours: $HOME, as Python's expanduser('~') */
    const char *home = pw && pw->pw_dir ? pw->pw_dir : g_get_home_dir();
    g_autoptr(GDateTime) now = g_date_time_new_now_local();
    g_autofree char *name =
        g_date_time_format(now, "home-restore-%Y-%m-%d-%H%M%S");
    log_info("Restoring home of user '%s' to '%s' directory...",
             pw ? pw->pw_name : g_get_user_name(), name);
    int hfd = open(home, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (hfd < 0 || mkdirat(hfd, name, 0700) != 0) {
        log_warn("Cannot make %s/%s: %s", home, name, g_strerror(errno));
        if (hfd >= 0)
            close(hfd);
        return NULL;
    }
    Target *t = target_new(F_HOME, "dom0", NULL);
    t->uid = pw ? pw->pw_uid : getuid();
    t->gid = pw ? pw->pw_gid : getgid();
    t->home_fd =
        openat(hfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fchownat(hfd, name, t->uid, t->gid, AT_SYMLINK_NOFOLLOW) != 0)
        log_warn("*** Error while setting restore directory owner");
    close(hfd);
    return t;
}

static void build_targets(Restore *r, QubesRestoreInfo *info,
                          const QubesRestoreOptions *opts)
{
    r->targets = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                       (GDestroyNotify)target_free);
    for (guint i = 0; i < info->items->len; i++) {
        QubesRestoreItem *it = info->items->pdata[i];
        if (!qubes_restore_good(it) || !it->subdir)
            continue;
        r->total += it->size;
        if (opts->verify_only)
            continue;
        if (it->is_dom0) {
            Target *t = home_target();
            if (t)
                g_hash_table_insert(r->targets, g_strdup(it->subdir), t);
            continue;
        }
        g_autoptr(GPtrArray) vols = saved_volumes(it->name);
        for (guint v = 0; v < vols->len; v++) {
            g_autofree char *img = g_strconcat(vols->pdata[v], ".img", NULL);
            g_hash_table_insert(r->targets,
                                g_build_filename(it->subdir, img, NULL),
                                target_new(F_VOLUME, it->name, vols->pdata[v]));
        }
        g_hash_table_insert(r->targets,
                            g_build_filename(it->subdir, "firewall.xml", NULL),
                            target_new(F_FIREWALL, it->name, NULL));
        g_hash_table_insert(r->targets,
                            g_build_filename(it->subdir, "notes.txt", NULL),
                            target_new(F_NOTES, it->name, NULL));
        g_hash_table_insert(
            r->targets,
            g_build_filename(it->subdir, "whitelisted-appmenus.list", NULL),
            target_new(F_APPMENUS, it->name, NULL));
    }
}

/* After a broken read: the qubes this run made whose data did not all
 * arrive go again. */
static void remove_unfinished(Restore *r, Made *made)
{
    for (guint i = 0; i < made->created->len; i++) {
        const char *vm = made->created->pdata[i];
        gboolean whole = TRUE;
        GHashTableIter it;
        gpointer k, v;
        g_hash_table_iter_init(&it, r->targets);
        while (g_hash_table_iter_next(&it, &k, &v)) {
            Target *t = v;
            if (strcmp(t->vm, vm) == 0 && t->kind == F_VOLUME && !t->finished)
                whole = FALSE;
        }
        if (whole)
            continue;
        g_autoptr(GError) err = NULL;
        if (call_ok("admin.vm.Remove", vm, NULL, NULL, &err))
            log_warn("Removed %s: its data in the backup is not whole", vm);
        else
            log_warn("Cannot remove %s: %s", vm, tool_error_message(err));
    }
}

/* ---- the command ---- */

/* handle_broken: the refusals in the client's words; FALSE to stop. */
static gboolean handle_broken(QubesRestoreInfo *info,
                              const QubesRestoreOptions *opts,
                              gboolean skip_conflicting, gboolean skip_broken,
                              gboolean ignore_missing, const char **why)
{
    gboolean conflicting = FALSE, templates = FALSE, netvms = FALSE,
             mismatch = FALSE, dom0 = FALSE;
    for (guint i = 0; i < info->items->len; i++) {
        const QubesRestoreItem *it = info->items->pdata[i];
        dom0 |= it->is_dom0;
        if (it->problems & QUBES_RESTORE_EXCLUDED)
            continue;
        templates |= !!(it->problems & QUBES_RESTORE_MISSING_TEMPLATE);
        netvms |= !!(it->problems & QUBES_RESTORE_MISSING_NETVM);
        conflicting |= !!(it->problems & QUBES_RESTORE_ALREADY_EXISTS);
        mismatch |= !!(it->problems & QUBES_RESTORE_USERNAME_MISMATCH);
    }
    if (conflicting) {
        log_warn("*** There are VMs with conflicting names on the host! ***");
        if (!skip_conflicting) {
            *why = "Remove VMs with conflicting names from the host before "
                   "proceeding.\nOr use --skip-conflicting to restore only "
                   "those VMs that do not exist on the host.\nOr use "
                   "--rename-conflicting to restore those VMs under modified "
                   "names (with numbers at the end).";
            return FALSE;
        }
        log_warn("Those VMs will not be restored. The host VMs will NOT be "
                 "overwritten.");
    }
    if (opts->verify_only) {
        log_info("The above VM archive(s) will be verified.");
        log_info("Existing VMs will NOT be removed or altered.");
    } else {
        log_info("The above VMs will be copied and added to your system.");
        log_info("Existing VMs will NOT be removed.");
    }
    const char *kinds[] = {"TemplateVMs", "NetVMs"};
    gboolean missing[] = {templates, netvms};
    for (guint k = 0; k < 2; k++) {
        if (!missing[k])
            continue;
        log_warn("*** One or more %s are missing on the host! ***", kinds[k]);
        if (!skip_broken && !ignore_missing) {
            *why = "Install them before proceeding with the restore.Or pass: "
                   "--skip-broken or --ignore-missing.";
            return FALSE;
        }
        if (skip_broken)
            log_warn("Skipping broken entries: VMs that depend on missing %s "
                     "will NOT be restored.",
                     kinds[k]);
        else
            log_warn("Ignoring missing entries: VMs that depend on missing "
                     "%s will have default value assigned.",
                     kinds[k]);
    }
    if (dom0 && opts->dom0_home && !opts->verify_only) {
        if (mismatch) {
            log_warn("*** Dom0 username mismatch! This can break some "
                     "settings! ***");
            if (!opts->ignore_username_mismatch) {
                *why = "Skip restoring the dom0 home directory "
                       "(--skip-dom0-home), or pass "
                       "--ignore-username-mismatch to continue anyway.";
                return FALSE;
            }
            log_warn("Continuing as directed.");
        }
        log_warn("NOTE: The archived dom0 home directory will be restored to "
                 "a new directory 'home-restore-<current-time>' created "
                 "inside the dom0 home directory. Restored files should be "
                 "copied or moved out of the new directory before using "
                 "them.");
    }
    return TRUE;
}

int main(int argc, char **argv)
{
    gboolean verify_only = FALSE, skip_broken = FALSE, ignore_missing = FALSE;
    gboolean skip_conflicting = FALSE, rename_conflicting = FALSE;
    gboolean skip_dom0_home = FALSE, ignore_username = FALSE;
    gboolean ignore_size = FALSE, verbose = FALSE, quiet = FALSE;
    gboolean auto_close = FALSE, location_is_service = FALSE, paranoid = FALSE;
    static const char paranoid_help[] =
        "Isolate restore process in a DispVM, defend against untrusted "
        "backup;implies --skip-dom0-home";
    g_auto(GStrv) exclude = NULL;
    g_autofree char *filter = NULL, *dest_vm = NULL, *pass_file = NULL;
    GOptionEntry entries[] = {
        {"verify-only", 0, 0, G_OPTION_ARG_NONE, &verify_only,
         "Verify backup integrity without restoring any data", NULL},
        {"skip-broken", 0, 0, G_OPTION_ARG_NONE, &skip_broken,
         "Do not restore VMs that have missing TemplateVMs or NetVMs", NULL},
        {"ignore-missing", 0, 0, G_OPTION_ARG_NONE, &ignore_missing,
         "Restore VMs even if their associated TemplateVMs and NetVMs are "
         "missing",
         NULL},
        {"skip-conflicting", 0, 0, G_OPTION_ARG_NONE, &skip_conflicting,
         "Do not restore VMs that are already present on the host", NULL},
        {"rename-conflicting", 0, 0, G_OPTION_ARG_NONE, &rename_conflicting,
         "Restore VMs that are already present on the host under different "
         "names",
         NULL},
        {"exclude", 'x', 0, G_OPTION_ARG_STRING_ARRAY, &exclude,
         "Skip restore of specified VM (may be repeated)", "EXCLUDE"},
        {"skip-dom0-home", 0, 0, G_OPTION_ARG_NONE, &skip_dom0_home,
         "Do not restore dom0 user home directory", NULL},
        {"ignore-username-mismatch", 0, 0, G_OPTION_ARG_NONE, &ignore_username,
         "Ignore dom0 username mismatch when restoring home directory", NULL},
        {"ignore-size-limit", 0, 0, G_OPTION_ARG_NONE, &ignore_size,
         "Ignore size limit calculated from backup metadata", NULL},
        {"compression-filter", 'Z', 0, G_OPTION_ARG_STRING, &filter,
         "Force specific compression filter program, instead of the one from "
         "the backup header",
         "COMPRESSION"},
        {"dest-vm", 'd', 0, G_OPTION_ARG_STRING, &dest_vm,
         "Specify VM containing the backup to be restored", "APPVM"},
        {"passphrase-file", 'p', 0, G_OPTION_ARG_FILENAME, &pass_file,
         "Read passphrase from file, or use '-' to read from stdin",
         "PASS_FILE"},
        {"auto-close", 0, 0, G_OPTION_ARG_NONE, &auto_close,
         "Auto-close restore window and display log on the stdout (applies "
         "to --paranoid-mode)",
         NULL},
        {"location-is-service", 0, 0, G_OPTION_ARG_NONE, &location_is_service,
         "Interpret backup location as a qrexec service name,possibly with "
         "an argument separated by +.Requires -d option.",
         NULL},
        /* one option under two names, as the client's */
        {"paranoid-mode", 0, 0, G_OPTION_ARG_NONE, &paranoid, paranoid_help,
         NULL},
        {"plan-b", 0, 0, G_OPTION_ARG_NONE, &paranoid, paranoid_help, NULL},
        {"verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose, "increase verbosity",
         NULL},
        {"quiet", 'q', 0, G_OPTION_ARG_NONE, &quiet, "decrease verbosity",
         NULL},
        {NULL},
    };
    tool_parse(&argc, &argv, entries, "backup_location [vms ...]",
               "Restore qubes from a Qubes backup.", NULL);
    verbosity = verbose - quiet;
    if (argc < 2)
        return tool_usage_error(prog, "the following arguments are required: "
                                      "backup_location");
    const char *location = argv[1];
    (void)auto_close; /* it only changes --paranoid-mode's output */
    if (location_is_service && !dest_vm)
        return tool_usage_error(prog,
                                "--location-is-service option requires -d");
    /* what needs qrexec is refused before anything is read */
    if (paranoid)
        return runtime_error("Restoring in a disposable qube (--paranoid-mode) "
                             "needs qrexec, which this system does not have");
    if (location_is_service)
        return runtime_error("A backup location that is a qrexec service "
                             "(--location-is-service) needs qrexec, which "
                             "this system does not have");
    if (dest_vm && strcmp(dest_vm, "dom0") != 0)
        return runtime_error("Restoring from a qube needs qrexec "
                             "(qubes.Restore), which this system does not "
                             "have: copy the backup to dom0");
    g_autoptr(GError) perr = NULL;
    g_autofree char *pass =
        pass_file ? tool_read_passphrase_file(pass_file, &perr)
                  : tool_getpass("Please enter the passphrase to verify and "
                                 "(if encrypted) decrypt the backup: ");
    if (!pass)
        return runtime_error(perr->message);
    log_info("Checking backup content...");
    int fd = open(location, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        g_autofree char *m =
            g_strdup_printf("Cannot open %s: %s", location, g_strerror(errno));
        return runtime_error(m);
    }
    g_autoptr(GError) err = NULL;
    QubesRestoreHost *host = host_info(&err);
    if (!host)
        return qa_fail(prog, err);
    Restore r = {0};
    g_mutex_init(&r.lock);
    g_cond_init(&r.cond);
    r.qubes_xml = g_byte_array_new();
    r.progress = isatty(STDERR_FILENO);
    ReaderArgs ra = {.r = &r, .fd = fd, .passphrase = pass, .filter = filter};
    GThread *reader = g_thread_new("reader", reader_thread, &ra);
    /* until qubes.xml is read and checked */
    g_mutex_lock(&r.lock);
    while (!r.xml_ready && !r.reader_done)
        g_cond_wait(&r.cond, &r.lock);
    gboolean have_xml = r.xml_ready;
    g_mutex_unlock(&r.lock);
    int rc = 0;
    QubesRestoreOptions opts = {
        .verify_only = verify_only,
        .rename_conflicting = rename_conflicting,
        .use_default_template = ignore_missing,
        .use_default_netvm = ignore_missing,
        .dom0_home = !skip_dom0_home,
        .ignore_username_mismatch = ignore_username,
        .exclude = g_ptr_array_new_with_free_func(g_free),
    };
    for (GStrv x = exclude; x && *x; x++)
        g_ptr_array_add(opts.exclude, g_strdup(*x));
    g_autoptr(QubesRestoreInfo) info = NULL;
    Made made = {.created = g_ptr_array_new_with_free_func(g_free)};
    gboolean go = FALSE;
    g_autofree char *summary = NULL;
    if (!have_xml)
        goto finish;
    if (r.format == 3) {
        /* Qubes R3's collection, as the client's core2.py reads it */
        GPtrArray *vms = qubes_restore_core2_vms(
            (const char *)r.qubes_xml->data, r.qubes_xml->len, &err);
        info = vms ? qubes_restore_info_from_vms(vms, host, &opts, &err) : NULL;
    } else {
        info = qubes_restore_info_new((const char *)r.qubes_xml->data,
                                      r.qubes_xml->len, host, &opts, &err);
    }
    if (!info) {
        rc = runtime_error(err->message);
        goto decide;
    }
    if (argc > 2) {
        for (guint i = 0; i < info->items->len; i++) {
            QubesRestoreItem *it = info->items->pdata[i];
            if (!g_strv_contains((const char *const *)argv + 2, it->vm->name))
                g_ptr_array_add(opts.exclude, g_strdup(it->vm->name));
        }
        qubes_restore_info_verify(info, host, &opts);
    }
    summary = qubes_restore_summary(info);
    printf("%s\n", summary);
    fflush(stdout);
    const char *why = NULL;
    if (!handle_broken(info, &opts, skip_conflicting, skip_broken,
                       ignore_missing, &why)) {
        rc = runtime_error(why);
        goto decide;
    }
    if (!pass_file) {
        printf("Do you want to proceed? [y/N] ");
        fflush(stdout);
        char line[64] = "";
        if (!fgets(line, sizeof line, stdin) ||
            g_ascii_strcasecmp(g_strstrip(line), "y") != 0)
            goto decide;
    }
    /* restore_do */
    qubes_restore_info_verify(info, host, &opts);
    gboolean any = FALSE;
    for (guint i = 0; i < info->items->len; i++)
        any |= qubes_restore_good(info->items->pdata[i]);
    if (!any && !verify_only) {
        /* nothing to restore: the rest of the backup is not read */
        log_info("-> Done.");
        goto decide;
    }
    restore_metadata(info, &opts, &made);
    build_targets(&r, info, &opts);
    go = TRUE;
decide:
    g_mutex_lock(&r.lock);
    r.decided = TRUE;
    r.go = go;
    g_cond_broadcast(&r.cond);
    g_mutex_unlock(&r.lock);
finish:
    g_thread_join(reader);
    close(fd);
    if (r.progress && go)
        fputc('\n', stderr);
    if (go || !have_xml) {
        if (!r.reader_ok) {
            fprintf(stderr, "%s: error: %s\n", prog,
                    r.reader_error ? r.reader_error->message : "read failed");
            if (r.targets)
                remove_unfinished(&r, &made);
            rc = 1;
        } else if (go) {
            GHashTableIter it;
            gpointer k, v;
            g_hash_table_iter_init(&it, r.targets);
            while (g_hash_table_iter_next(&it, &k, &v)) {
                Target *t = v;
                if (t->kind == F_VOLUME && t->error) {
                    log_warn("Failed to restore volume %s of VM %s: %s",
                             t->volume, t->vm, t->error);
                    rc = 1;
                }
            }
            if (rc)
                remove_unfinished(&r, &made);
            log_info("-> Done.");
            if (!verify_only)
                log_info("-> Please install updates for all the restored "
                         "templates.");
        }
    }
    g_clear_error(&r.reader_error);
    if (r.targets)
        g_hash_table_unref(r.targets);
    g_byte_array_unref(r.qubes_xml);
    g_ptr_array_unref(made.created);
    g_ptr_array_unref(opts.exclude);
    qubes_restore_host_free(host);
    memset(pass, 0, strlen(pass));
    return rc;
}
