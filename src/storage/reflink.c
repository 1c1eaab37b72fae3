/* reflink.c: the file-reflink driver.
 *
 * VM disk images are plain files in the pool folder; snapshots are
 * reflinks (FICLONE) where the filesystem has them (btrfs, XFS) and sparse
 * copies where it does not. For vid "appvms/work/private" the folder is
 * "appvms/work" and the images are:
 *
 *   private.img                    committed ("clean") image
 *   private-dirty.img              image of the running VM
 *   private-precache.img           reflink of clean, so start is a rename
 *   private-import.img             data being imported
 *   private.img.7@2018-01-02T03:04:05Z   revision 7 (UTC mtime of the
 *                                        clean image it preserves)
 *   private.img@2018-01-02T03:04:05Z     seed-era revision
 *   NAME~XXXXXXXX                  incomplete temporary
 *
 * The volume's lock file is not in the pool (see qfile_lock()).
 *
 * Invariants the operations keep:
 *   - A clean image's inode is never written after it is committed: a new
 *     state is always a new inode renamed over it. So a revision can be a
 *     hardlink of the outgoing clean image (no data is copied), and a
 *     snapshot volume's hardlink of its source tells by inode whether the
 *     source has committed since (is_outdated).
 *   - A revision file with the clean image's inode is a commit that was
 *     interrupted between its two steps (link, then rename over clean): it
 *     is not listed, and the next operation removes it.
 *   - Only the newest revisions_to_keep revisions are listed; older ones
 *     are already pruned as far as anyone can tell, and their files go at
 *     the next prune. So the rename that commits is the one instant at
 *     which the listed revisions change.
 *
 * See qfile.c for the three durability rules every fsync below refers to.
 */
#include "driver.h"

#include "qfile.h"
#include "qubes-parse.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/statvfs.h>
#include <unistd.h>

static const char *const required[] = {"dir_path", NULL};
/* In the order of the reference's ReflinkPool.__init__ signature, which
 * is the order admin.pool.ListDrivers gives. */
static const char *const parameters[] = {
    "revisions_to_keep", "dir_path", "setup_check", "ephemeral_volatile", NULL,
};

static const char *const known_prefixes[] = {"appvms", "vm-templates"};

typedef struct {
    QFileCtx *ctx;
    gboolean setup_check;
} ReflinkPool;

typedef struct {
    char *dir_rel; /* folder of the images, relative to the pool */
    char *base;    /* last component of the vid */
    char *clean, *dirty, *precache, *import, *lock;
    char *src_dir_rel, *src_clean; /* snap_on_start only */
    /* while locked */
    QDir *dir;         /* NULL when the folder does not exist */
    GHashTable *names; /* what the folder holds, kept current by img_*() */
    int lock_fd;
} ReflinkVolume;

typedef struct {
    char *name;
    char *id;
    char *timestamp;
    guint64 number; /* 0 for seed-era revisions */
    int have;       /* qfile_stat's answer when it was looked at, else 0 */
    struct stat st; /* then, when @have is 1 */
} Rev;

static void rev_free(Rev *r)
{
    g_free(r->name);
    g_free(r->id);
    g_free(r->timestamp);
    g_free(r);
}

static ReflinkPool *rpool(QubesVolume *vol)
{
    return qubes_pool_get_driver_data(vol->pool);
}

static ReflinkVolume *rvol(QubesVolume *vol)
{
    return vol->driver_data;
}

static gboolean is_origin(QubesVolume *vol)
{
    return vol->save_on_stop && !vol->snap_on_start;
}

static gboolean snapshots_disabled(QubesVolume *vol)
{
    return vol->revisions_to_keep == -1;
}

/* ---- pool ---- */

static gboolean pool_init(QubesPool *pool, GHashTable *options, GError **error)
{
    const char *untrusted_check = g_hash_table_lookup(options, "setup_check");
    g_autofree char *canon = qubes_pool_option_dir_path(pool, options, error);
    if (!canon)
        return FALSE;
    gboolean check = TRUE;
    if (untrusted_check &&
        !qubes_parse_bool(untrusted_check, "setup_check", &check, error))
        return FALSE;
    ReflinkPool *rp = g_new0(ReflinkPool, 1);
    rp->ctx = qfile_ctx_new(canon);
    rp->setup_check = check;
    qubes_pool_set_driver_data(pool, rp);
    return TRUE;
}

static void pool_free(QubesPool *pool)
{
    ReflinkPool *rp = qubes_pool_get_driver_data(pool);
    qfile_ctx_free(rp->ctx);
    g_free(rp);
}

static gboolean pool_setup(QubesPool *pool, GError **error)
{
    ReflinkPool *rp = qubes_pool_get_driver_data(pool);
    const char *root = qfile_ctx_root_path(rp->ctx);
    gboolean created;
    if (!qfile_ctx_open_root(rp->ctx, TRUE, &created, error))
        return FALSE;
    g_autoptr(QDir) top = qdir_open(rp->ctx, "", FALSE, error);
    if (!top)
        return FALSE;
    if (rp->setup_check) {
        GError *err = NULL;
        if (!qfile_reflink_supported(top, &err)) {
            if (created) {
                qfile_ctx_close_root(rp->ctx);
                rmdir(root);
            }
            if (err) {
                g_propagate_error(error, err);
                return FALSE;
            }
            g_set_error(error, QUBES_ERROR, QUBES_ERROR_STORAGE_POOL,
                        "The filesystem for %s does not support reflinks. If "
                        "you can live with VM startup delays and wasted disk "
                        "space, pass the \"setup_check=False\" option.",
                        root);
            return FALSE;
        }
    }
    for (size_t i = 0; i < G_N_ELEMENTS(known_prefixes); i++) {
        g_autoptr(QDir) d = qdir_open(rp->ctx, known_prefixes[i], TRUE, error);
        if (!d)
            return FALSE;
    }
    return TRUE;
}

static void pool_config(QubesPool *pool, GHashTable *config)
{
    ReflinkPool *rp = qubes_pool_get_driver_data(pool);
    g_hash_table_insert(config, g_strdup("dir_path"),
                        g_strdup(qfile_ctx_root_path(rp->ctx)));
    if (!rp->setup_check)
        g_hash_table_insert(config, g_strdup("setup_check"), g_strdup("False"));
}

static gboolean pool_usage(QubesPool *pool, QubesPoolUsage *usage,
                           GError **error)
{
    ReflinkPool *rp = qubes_pool_get_driver_data(pool);
    g_autoptr(QDir) top = qdir_open(rp->ctx, "", FALSE, error);
    if (!top)
        return FALSE;
    struct statvfs sv;
    if (fstatvfs(qdir_fd(top), &sv) < 0)
        return qubes_error_errno(error, errno, "Cannot statvfs %s",
                                 qdir_path(top));
    usage->data_size = (guint64)sv.f_frsize * sv.f_blocks;
    usage->data_usage = (guint64)sv.f_frsize * (sv.f_blocks - sv.f_bfree);
    return TRUE;
}

static guint64 pool_fsync_count(QubesPool *pool)
{
    ReflinkPool *rp = qubes_pool_get_driver_data(pool);
    return qfile_ctx_fsync_count(rp->ctx);
}

static void pool_set_failpoint(QubesPool *pool, QubesFailpointFunc func,
                               gpointer user_data)
{
    ReflinkPool *rp = qubes_pool_get_driver_data(pool);
    qfile_ctx_set_failpoint(rp->ctx, func, user_data);
}

/* ---- volume objects ---- */

static void split_vid(const char *vid, char **dir, char **base)
{
    const char *slash = strrchr(vid, '/');
    *dir = slash ? g_strndup(vid, (gsize)(slash - vid)) : g_strdup("");
    *base = g_strdup(slash ? slash + 1 : vid);
}

static gboolean volume_init(QubesVolume *vol, const QubesVolumeConfig *config,
                            GError **error)
{
    if (!vol->vid) {
        gboolean known = FALSE;
        for (size_t i = 0; i < G_N_ELEMENTS(known_prefixes); i++)
            known |= g_strcmp0(config->vm_dir_prefix, known_prefixes[i]) == 0;
        if (!known || !config->vm_name ||
            !qfile_name_is_safe(config->vm_name)) {
            g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                        "Volume %s: cannot derive a vid from VM %s in %s",
                        vol->name, config->vm_name ? config->vm_name : "(none)",
                        config->vm_dir_prefix ? config->vm_dir_prefix
                                              : "(none)");
            return FALSE;
        }
        vol->vid = g_strdup_printf("%s/%s/%s", config->vm_dir_prefix,
                                   config->vm_name, vol->name);
    }
    if (!qfile_relpath_is_safe(vol->vid) ||
        (vol->source && !qfile_relpath_is_safe(vol->source))) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_VALUE,
                    "Unsafe vid for volume %s: %s", vol->name,
                    qfile_relpath_is_safe(vol->vid) ? vol->source : vol->vid);
        return FALSE;
    }
    ReflinkVolume *rv = g_new0(ReflinkVolume, 1);
    split_vid(vol->vid, &rv->dir_rel, &rv->base);
    rv->clean = g_strconcat(rv->base, ".img", NULL);
    rv->dirty = g_strconcat(rv->base, "-dirty.img", NULL);
    rv->precache = g_strconcat(rv->base, "-precache.img", NULL);
    rv->import = g_strconcat(rv->base, "-import.img", NULL);
    /* The vid, flattened: '%' is not a character a vid can hold. */
    g_autofree char *flat = g_strdup(vol->vid);
    g_strdelimit(flat, "/", '%');
    rv->lock = g_strconcat(flat, ".lock", NULL);
    if (vol->source) {
        g_autofree char *src_base = NULL;
        split_vid(vol->source, &rv->src_dir_rel, &src_base);
        rv->src_clean = g_strconcat(src_base, ".img", NULL);
    }
    rv->lock_fd = -1;
    vol->driver_data = rv;
    return TRUE;
}

static void volume_free(QubesVolume *vol)
{
    ReflinkVolume *rv = rvol(vol);
    g_free(rv->dir_rel);
    g_free(rv->base);
    g_free(rv->clean);
    g_free(rv->dirty);
    g_free(rv->precache);
    g_free(rv->import);
    g_free(rv->lock);
    g_free(rv->src_dir_rel);
    g_free(rv->src_clean);
    g_free(rv);
}

static QDir *open_dir(QubesVolume *vol, const char *rel, gboolean create,
                      GError **error)
{
    return qdir_open(rpool(vol)->ctx, rel, create, error);
}

/* Opens the volume's folder when it exists: returns TRUE with *dir NULL
 * when it does not. */
static gboolean open_dir_if_exists(QubesVolume *vol, const char *rel,
                                   QDir **dir, GError **error)
{
    GError *err = NULL;
    *dir = open_dir(vol, rel, FALSE, &err);
    if (*dir)
        return TRUE;
    /* Find out whether it is missing, or there is another problem (an
     * I/O error must not pass for a missing folder: a stop would then
     * report success having committed nothing). */
    if (!*rel) {
        g_propagate_error(error, err);
        return FALSE;
    }
    g_autofree char *parent = NULL, *name = NULL;
    split_vid(rel, &parent, &name);
    g_autoptr(QDir) p = NULL;
    if (!open_dir_if_exists(vol, parent, &p, NULL)) {
        g_propagate_error(error, err);
        return FALSE;
    }
    struct stat st;
    if (!p || qfile_stat(p, name, &st, NULL) == 0) {
        g_error_free(err);
        return TRUE; /* the parent or the folder itself is missing */
    }
    g_propagate_error(error, err);
    return FALSE;
}

static gboolean volume_lock(QubesVolume *vol, gboolean may_create,
                            GError **error)
{
    ReflinkVolume *rv = rvol(vol);
    ReflinkPool *rp = rpool(vol);
    if (!qfile_ctx_open_root(rp->ctx, FALSE, NULL, error))
        return FALSE;
    int fd = qfile_lock(rp->ctx, rv->lock, error);
    if (fd < 0)
        return FALSE;
    QDir *dir = NULL;
    gboolean ok = may_create
                      ? (dir = open_dir(vol, rv->dir_rel, TRUE, error)) != NULL
                      : open_dir_if_exists(vol, rv->dir_rel, &dir, error);
    if (!ok) {
        qfile_unlock(fd);
        return FALSE;
    }
    rv->names = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    g_autoptr(GPtrArray) names = dir ? qfile_list(dir, error) : NULL;
    if (dir && !names) {
        qdir_close(dir);
        g_clear_pointer(&rv->names, g_hash_table_unref);
        qfile_unlock(fd);
        return FALSE;
    }
    for (guint i = 0; names && i < names->len; i++)
        g_hash_table_add(rv->names, g_steal_pointer(&names->pdata[i]));
    rv->dir = dir;
    rv->lock_fd = fd;
    return TRUE;
}

static void volume_unlock(QubesVolume *vol)
{
    ReflinkVolume *rv = rvol(vol);
    g_clear_pointer(&rv->dir, qdir_close);
    g_clear_pointer(&rv->names, g_hash_table_unref);
    if (rv->lock_fd >= 0)
        qfile_unlock(rv->lock_fd);
    rv->lock_fd = -1;
}

/* ---- names ---- */

static gboolean is_timestamp(const char *s)
{
    /* YYYY-MM-DDTHH:MM:SS */
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    if (strlen(s) != sizeof shape - 1)
        return FALSE;
    for (size_t i = 0; i < sizeof shape - 1; i++) {
        if (shape[i] == 'd' ? !g_ascii_isdigit(s[i]) : s[i] != shape[i])
            return FALSE;
    }
    return TRUE;
}

/* Parses @name as a revision of the volume; NULL when it is not one. */
static Rev *parse_revision(ReflinkVolume *rv, const char *name)
{
    if (!g_str_has_prefix(name, rv->clean) || !g_str_has_suffix(name, "Z"))
        return NULL;
    const char *p = name + strlen(rv->clean);
    g_autofree char *number = NULL;
    if (*p == '.') {
        const char *at = strchr(p, '@');
        if (!at)
            return NULL;
        number = g_strndup(p + 1, (gsize)(at - p - 1));
        p = at;
    }
    if (*p != '@')
        return NULL;
    g_autofree char *ts = g_strndup(p + 1, strlen(p + 1) - 1);
    if (!is_timestamp(ts))
        return NULL;
    guint64 n = 0;
    if (number && (!qubes_parse_uint64(number, "revision", &n, NULL) || n == 0))
        return NULL;
    Rev *r = g_new0(Rev, 1);
    r->name = g_strdup(name);
    r->number = n;
    r->id = number ? g_steal_pointer(&number) : g_strdup(p + 1);
    r->timestamp = g_steal_pointer(&ts);
    return r;
}

static gint rev_cmp(gconstpointer a, gconstpointer b)
{
    const Rev *x = *(Rev *const *)a, *y = *(Rev *const *)b;
    if (x->number != y->number)
        return x->number < y->number ? -1 : 1;
    return strcmp(x->timestamp, y->timestamp);
}

/* Is @name an image of this volume other than a revision? */
static gboolean is_plain_image(ReflinkVolume *rv, const char *name)
{
    return strcmp(name, rv->clean) == 0 || strcmp(name, rv->dirty) == 0 ||
           strcmp(name, rv->precache) == 0 || strcmp(name, rv->import) == 0;
}

/* Is @name an incomplete temporary of this volume ("IMAGE~...")? */
static gboolean is_temporary(ReflinkVolume *rv, const char *name)
{
    const char *tilde = strchr(name, '~');
    if (!tilde)
        return FALSE;
    g_autofree char *image = g_strndup(name, (gsize)(tilde - name));
    if (is_plain_image(rv, image))
        return TRUE;
    Rev *r = parse_revision(rv, image);
    if (r)
        rev_free(r);
    return r != NULL;
}

static gboolean same_inode(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* The revisions among @names in @dir, oldest first. A name that is not a
 * regular file is no revision (a link or a folder planted in the pool),
 * unless @any_kind (to number a new revision past every name); with
 * @skip_clean, one that shares the clean image's inode (an interrupted
 * commit) is left out too. */
static GPtrArray *revisions_among(ReflinkVolume *rv, QDir *dir, gpointer *names,
                                  guint n, gboolean any_kind,
                                  gboolean skip_clean)
{
    GPtrArray *revs = g_ptr_array_new_with_free_func((GDestroyNotify)rev_free);
    struct stat clean;
    int have_clean = skip_clean ? qfile_stat(dir, rv->clean, &clean, NULL) : 0;
    for (guint i = 0; i < n; i++) {
        Rev *r = parse_revision(rv, names[i]);
        if (r && !any_kind &&
            (r->have = qfile_stat(dir, r->name, &r->st, NULL)) == 1 &&
            (!S_ISREG(r->st.st_mode) ||
             (have_clean == 1 && same_inode(&r->st, &clean))))
            g_clear_pointer(&r, rev_free);
        if (r)
            g_ptr_array_add(revs, r);
    }
    g_ptr_array_sort(revs, rev_cmp);
    return revs;
}

/* Lists the revision files in a folder read without the lock. */
static GPtrArray *scan_revisions(QubesVolume *vol, QDir *dir, GError **error)
{
    if (!dir)
        return g_ptr_array_new_with_free_func((GDestroyNotify)rev_free);
    g_autoptr(GPtrArray) names = qfile_list(dir, error);
    if (!names)
        return NULL;
    return revisions_among(rvol(vol), dir, names->pdata, names->len, FALSE,
                           TRUE);
}

static int keep_count(QubesVolume *vol)
{
    return MAX(vol->revisions_to_keep, 0);
}

/* The listed revisions: the newest keep_count() of the files. */
static GPtrArray *visible_revisions(QubesVolume *vol, QDir *dir, GError **error)
{
    GPtrArray *revs = scan_revisions(vol, dir, error);
    if (revs && revs->len > (guint)keep_count(vol))
        g_ptr_array_remove_range(revs, 0, revs->len - (guint)keep_count(vol));
    return revs;
}

/* ---- changes to the locked folder ----
 *
 * While a volume is locked, its folder was listed once (volume_lock) and
 * these wrappers keep that list current, so that an operation never lists
 * the folder again or removes what is not there. Only this volume's names
 * are looked at, and only this process changes them while it holds the
 * lock. */

static gboolean has(ReflinkVolume *rv, const char *name)
{
    return rv->names && g_hash_table_contains(rv->names, name);
}

static void now_has(ReflinkVolume *rv, const char *name)
{
    g_hash_table_add(rv->names, g_strdup(name));
}

static gboolean img_unlink(ReflinkVolume *rv, const char *name, GError **error)
{
    if (!has(rv, name))
        return TRUE;
    if (!qfile_unlink(rv->dir, name, error))
        return FALSE;
    g_hash_table_remove(rv->names, name);
    return TRUE;
}

static gboolean img_rename(ReflinkVolume *rv, const char *from, const char *to,
                           GError **error)
{
    if (!qfile_rename(rv->dir, from, rv->dir, to, error))
        return FALSE;
    g_hash_table_remove(rv->names, from);
    now_has(rv, to);
    return TRUE;
}

static gboolean img_link(QDir *src_dir, const char *src, ReflinkVolume *rv,
                         const char *dst, GError **error)
{
    if (!qfile_link(src_dir, src, rv->dir, dst, error))
        return FALSE;
    now_has(rv, dst);
    return TRUE;
}

static gboolean img_copy(ReflinkVolume *rv, const char *src, const char *dst,
                         const QFileCopyOpts *opts, GError **error)
{
    if (!qfile_copy(rv->dir, src, rv->dir, dst, opts, NULL, error))
        return FALSE;
    now_has(rv, dst);
    return TRUE;
}

static gboolean img_create_sparse(ReflinkVolume *rv, const char *name,
                                  guint64 size, GError **error)
{
    if (!qfile_create_sparse(rv->dir, name, size, error))
        return FALSE;
    now_has(rv, name);
    return TRUE;
}

/* The revision files in the locked folder (revisions_among). */
static GPtrArray *locked_revisions(ReflinkVolume *rv, gboolean any_kind)
{
    guint n = 0;
    g_autofree gpointer *names =
        rv->names ? g_hash_table_get_keys_as_array(rv->names, &n) : NULL;
    return revisions_among(rv, rv->dir, names, n, any_kind, FALSE);
}

/* ---- building blocks of the operations ---- */

/* Removes revision files beyond @keep, oldest first. */
static gboolean prune_revisions(QubesVolume *vol, int keep, GError **error)
{
    ReflinkVolume *rv = rvol(vol);
    g_autoptr(GPtrArray) revs = locked_revisions(rv, FALSE);
    for (guint i = 0; i + (guint)keep < revs->len; i++) {
        Rev *r = revs->pdata[i];
        if (!img_unlink(rv, r->name, error))
            return FALSE;
    }
    return TRUE;
}

/* Removes what an interrupted operation left: temporaries, a revision
 * that is still the clean image, revisions beyond revisions_to_keep (no
 * longer listed) and an unfinished import. No sync: a leftover that comes
 * back after a crash is removed again. */
static gboolean remove_incomplete(QubesVolume *vol, GError **error)
{
    ReflinkVolume *rv = rvol(vol);
    if (!rv->dir)
        return TRUE;
    g_autoptr(GPtrArray) temporaries = g_ptr_array_new_with_free_func(g_free);
    GHashTableIter it;
    gpointer name;
    g_hash_table_iter_init(&it, rv->names);
    while (g_hash_table_iter_next(&it, &name, NULL)) {
        if (is_temporary(rv, name))
            g_ptr_array_add(temporaries, g_strdup(name));
    }
    for (guint i = 0; i < temporaries->len; i++) {
        if (!img_unlink(rv, temporaries->pdata[i], error))
            return FALSE;
    }
    /* A revision with the clean image's inode: an interrupted commit.
     * Each revision is looked at once (locked_revisions kept its stat),
     * and those left are pruned as prune_revisions would. */
    struct stat clean, st;
    gboolean with_clean = has(rv, rv->clean);
    if (with_clean && qfile_stat(rv->dir, rv->clean, &clean, error) < 0)
        return FALSE;
    g_autoptr(GPtrArray) revs = locked_revisions(rv, FALSE);
    g_autoptr(GPtrArray) left = g_ptr_array_new();
    for (guint i = 0; i < revs->len; i++) {
        Rev *r = revs->pdata[i];
        /* its stat failed: again, for the cause */
        if (with_clean && r->have < 0 &&
            qfile_stat(rv->dir, r->name, &st, error) < 0)
            return FALSE;
        if (with_clean && r->have == 1 && same_inode(&r->st, &clean)) {
            if (!img_unlink(rv, r->name, error))
                return FALSE;
        } else {
            g_ptr_array_add(left, r);
        }
    }
    for (guint i = 0; i + (guint)keep_count(vol) < left->len; i++) {
        Rev *r = left->pdata[i];
        if (!img_unlink(rv, r->name, error))
            return FALSE;
    }
    return img_unlink(rv, rv->import, error);
}

/* Keeps the current clean image as the next revision, by hardlink. Until
 * the caller renames a new image over the clean one, this revision shares
 * the clean inode and is therefore not listed (see the top of the file). */
static gboolean add_revision(QubesVolume *vol, GError **error)
{
    ReflinkVolume *rv = rvol(vol);
    if (vol->revisions_to_keep <= 0)
        return TRUE;
    struct stat clean;
    if (!has(rv, rv->clean))
        return TRUE;
    if (qfile_stat(rv->dir, rv->clean, &clean, error) < 0)
        return FALSE;
    if (!S_ISREG(clean.st_mode)) {
        g_autofree char *path = qdir_child_path(rv->dir, rv->clean);
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_STORAGE_POOL,
                    "Refusing %s: not a regular file (links are not "
                    "followed in a pool)",
                    path);
        return FALSE;
    }
    g_autoptr(GPtrArray) revs = locked_revisions(rv, TRUE);
    guint64 next = 1;
    for (guint i = 0; i < revs->len; i++)
        next = MAX(next, ((Rev *)revs->pdata[i])->number + 1);
    g_autoptr(GDateTime) t = g_date_time_new_from_unix_utc(clean.st_mtime);
    g_autofree char *ts = g_date_time_format(t, "%Y-%m-%dT%H:%M:%S");
    g_autofree char *name =
        g_strdup_printf("%s.%" G_GUINT64_FORMAT "@%sZ", rv->clean, next, ts);
    return img_link(rv->dir, rv->clean, rv, name, error);
}

/* A fresh precache: a reflink of the clean image with its mtime, so that
 * the next start is one rename. Not synced (rule 2); a precache lost to a
 * crash only costs that start a reflink. */
static gboolean refresh_precache(QubesVolume *vol, GError **error)
{
    ReflinkVolume *rv = rvol(vol);
    if (snapshots_disabled(vol))
        return TRUE;
    QFileCopyOpts opts = QFILE_COPY_OPTS_INIT;
    opts.keep_mtime = TRUE;
    return img_unlink(rv, rv->precache, error) &&
           img_copy(rv, rv->clean, rv->precache, &opts, error);
}

/* Makes @from (the dirty or the import image) the new clean image.
 *
 * Order and durability:
 *   1. fsync @from: what the VM or the importer wrote is durable before
 *      any name says it is committed (rule 1).
 *   2. hardlink clean as the next revision (not listed yet).
 *   3. remove the precache, which is about to be stale.
 *   4. rename @from over clean: the commit point. Before it, a crash
 *      leaves the volume as it was (the unfinished revision is removed
 *      next time); after it, as committed.
 *   5. prune revisions beyond revisions_to_keep (already not listed).
 *   6. a new precache.
 *   7. fsync the folder: the rename, the prune and the precache are
 *      durable when we return (rule 3).
 */
static gboolean commit(QubesVolume *vol, const char *from, GError **error)
{
    ReflinkVolume *rv = rvol(vol);
    return qfile_fsync(rv->dir, from, error) && add_revision(vol, error) &&
           img_unlink(rv, rv->precache, error) &&
           img_rename(rv, from, rv->clean, error) &&
           prune_revisions(vol, keep_count(vol), error) &&
           refresh_precache(vol, error) && qfile_fsync_dir(rv->dir, error);
}

static gboolean missing_image(QubesVolume *vol, QDir *dir, const char *name,
                              GError **error)
{
    g_autofree char *path =
        dir ? qdir_child_path(dir, name)
            : g_strdup_printf("%s/%s/%s", qfile_ctx_root_path(rpool(vol)->ctx),
                              rvol(vol)->dir_rel, name);
    g_set_error(error, QUBES_ERROR, QUBES_ERROR_STORAGE_POOL,
                "Missing image file %s for volume %s", path, vol->vid);
    return FALSE;
}

static gboolean require_stopped(QubesVolume *vol, const char *what,
                                GError **error)
{
    ReflinkVolume *rv = rvol(vol);
    if (has(rv, rv->dirty) && vol->save_on_stop) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_STORAGE_POOL,
                    "Cannot %s: %s is not cleanly stopped", what, vol->vid);
        return FALSE;
    }
    return TRUE;
}

static gboolean require_save_on_stop(QubesVolume *vol, const char *what,
                                     GError **error)
{
    if (vol->save_on_stop)
        return TRUE;
    g_set_error(error, QUBES_ERROR, QUBES_ERROR_NOT_IMPLEMENTED,
                "Cannot %s: %s is not save_on_stop", what, vol->vid);
    return FALSE;
}

/* Removes every image of the volume (not the lock file). The committed
 * image goes last: until then, an interrupted remove has lost nothing
 * but what the caller asked to delete anyway, and can simply be retried. */
static gboolean remove_all_images(QubesVolume *vol, GError **error)
{
    ReflinkVolume *rv = rvol(vol);
    return remove_incomplete(vol, error) && img_unlink(rv, rv->dirty, error) &&
           img_unlink(rv, rv->precache, error) &&
           prune_revisions(vol, 0, error) && img_unlink(rv, rv->clean, error);
}

/* ---- operations ---- */

/* create: an origin gets an empty sparse clean image (and its precache).
 * The folder is synced: the caller records the volume as created, so its
 * image must survive a crash (rule 3). */
static gboolean vol_create(QubesVolume *vol, GError **error)
{
    ReflinkVolume *rv = rvol(vol);
    if (!remove_all_images(vol, error))
        return FALSE;
    if (is_origin(vol) &&
        (!img_create_sparse(rv, rv->clean, vol->size, error) ||
         !refresh_precache(vol, error)))
        return FALSE;
    return qfile_fsync_dir(rv->dir, error);
}

static gboolean vol_remove(QubesVolume *vol, GError **error)
{
    ReflinkVolume *rv = rvol(vol);
    if (!rv->dir)
        return TRUE;
    /* Synced so that removed images do not come back as orphans. */
    if (!remove_all_images(vol, error) || !qfile_fsync_dir(rv->dir, error))
        return FALSE;
    /* The VM folder goes when this was its last volume. */
    g_autofree char *parent = NULL, *name = NULL;
    split_vid(rv->dir_rel, &parent, &name);
    if (!*rv->dir_rel)
        return TRUE;
    g_autoptr(QDir) p = open_dir(vol, parent, FALSE, error);
    return p && qfile_rmdir_if_empty(p, name, error);
}

/* Stale precache: one made before the clean image changed behind our back
 * (e.g. by an older driver without precache support). */
static gboolean remove_stale_precache(QubesVolume *vol, GError **error)
{
    ReflinkVolume *rv = rvol(vol);
    struct stat clean, pre;
    if (!has(rv, rv->precache))
        return TRUE;
    if (qfile_stat(rv->dir, rv->precache, &pre, error) < 0 ||
        qfile_stat(rv->dir, rv->clean, &clean, error) < 0)
        return FALSE;
    if (clean.st_size == pre.st_size &&
        clean.st_mtim.tv_sec == pre.st_mtim.tv_sec &&
        clean.st_mtim.tv_nsec == pre.st_mtim.tv_nsec &&
        !same_inode(&clean, &pre))
        return TRUE;
    g_autofree char *path = qdir_child_path(rv->dir, rv->precache);
    g_warning("Removing stale file: %s", path);
    return img_unlink(rv, rv->precache, error);
}

/* start, by kind:
 *   snapshot kinds: hardlink the source's clean image as our clean image
 *     (for is_outdated), reflink it to dirty;
 *   origin: rename the precache to dirty, or reflink clean to dirty;
 *     with snapshots disabled, rename clean to dirty;
 *   volatile: a new sparse dirty image.
 * An origin that is still dirty keeps its dirty image.
 * Durability: for volumes saved on stop the folder is synced, so that
 * after a crash the data the VM flushed into the dirty image is found
 * under that name (rule 3). Images discarded at stop need no sync: after
 * a crash they are discarded anyway. */
static gboolean vol_start(QubesVolume *vol, GError **error)
{
    ReflinkVolume *rv = rvol(vol);
    if (!remove_incomplete(vol, error))
        return FALSE;
    if (has(rv, rv->dirty) && vol->save_on_stop)
        return TRUE;
    if (vol->snap_on_start) {
        g_autoptr(QDir) src = open_dir(vol, rv->src_dir_rel, FALSE, error);
        if (!src)
            return FALSE;
        struct stat sst;
        int have = qfile_stat(src, rv->src_clean, &sst, error);
        if (have <= 0)
            return have == 0 ? missing_image(vol, src, rv->src_clean, error)
                             : FALSE;
        QFileCopyOpts opts = QFILE_COPY_OPTS_INIT;
        opts.size = (gint64)MAX((guint64)sst.st_size, vol->size);
        opts.discardable = !vol->save_on_stop;
        if (!img_unlink(rv, rv->dirty, error) ||
            !img_unlink(rv, rv->clean, error) ||
            !img_link(src, rv->src_clean, rv, rv->clean, error))
            return FALSE;
        if (!img_copy(rv, rv->clean, rv->dirty, &opts, error)) {
            /* Back to stopped: the marker link alone would claim a start. */
            img_unlink(rv, rv->clean, NULL);
            return FALSE;
        }
    } else if (vol->save_on_stop) {
        if (!has(rv, rv->clean))
            return missing_image(vol, rv->dir, rv->clean, error);
        if (snapshots_disabled(vol)) {
            if (!img_unlink(rv, rv->precache, error) ||
                !img_rename(rv, rv->clean, rv->dirty, error))
                return FALSE;
        } else {
            if (!remove_stale_precache(vol, error))
                return FALSE;
            if (has(rv, rv->precache)
                    ? !img_rename(rv, rv->precache, rv->dirty, error)
                    : !img_copy(rv, rv->clean, rv->dirty, NULL, error))
                return FALSE;
        }
    } else {
        if (!img_unlink(rv, rv->dirty, error) ||
            !img_create_sparse(rv, rv->dirty, vol->size, error))
            return FALSE;
    }
    return !vol->save_on_stop || qfile_fsync_dir(rv->dir, error);
}

/* stop: commit a dirty origin; discard the images of the other kinds (a
 * volatile keeps the size it was resized to). Nothing to sync for the
 * discards: an image that comes back after a crash is discarded again by
 * the next start or stop. */
static gboolean vol_stop(QubesVolume *vol, GError **error)
{
    ReflinkVolume *rv = rvol(vol);
    if (!rv->dir)
        return TRUE;
    if (!remove_incomplete(vol, error))
        return FALSE;
    if (vol->save_on_stop) {
        if (!has(rv, rv->dirty))
            return TRUE;
        if (snapshots_disabled(vol) && !vol->snap_on_start) {
            /* fsync the data (rule 1), rename back, sync the folder. */
            return qfile_fsync(rv->dir, rv->dirty, error) &&
                   img_rename(rv, rv->dirty, rv->clean, error) &&
                   qfile_fsync_dir(rv->dir, error);
        }
        return commit(vol, rv->dirty, error);
    }
    struct stat st;
    if (!vol->snap_on_start && has(rv, rv->dirty)) {
        if (qfile_stat(rv->dir, rv->dirty, &st, error) < 0)
            return FALSE;
        vol->size = (guint64)st.st_size;
    }
    return img_unlink(rv, rv->dirty, error) &&
           (!vol->snap_on_start || img_unlink(rv, rv->clean, error));
}

/* revert: the chosen revision becomes the clean image, the current clean
 * image the newest revision. Same commit point and sync as commit(). */
static gboolean vol_revert(QubesVolume *vol, const char *revision,
                           GError **error)
{
    ReflinkVolume *rv = rvol(vol);
    if (!require_stopped(vol, "revert", error))
        return FALSE;
    if (rv->dir && !remove_incomplete(vol, error))
        return FALSE;
    g_autoptr(GPtrArray) revs = locked_revisions(rv, FALSE);
    Rev *target = NULL;
    for (guint i = 0; i < revs->len; i++) {
        Rev *r = revs->pdata[i];
        if (!revision || strcmp(r->id, revision) == 0)
            target = r;
    }
    if (!target) {
        if (revision)
            g_set_error(error, QUBES_ERROR, QUBES_ERROR_STORAGE_POOL,
                        "Missing revision %s for volume %s", revision,
                        vol->vid);
        else
            g_set_error(error, QUBES_ERROR, QUBES_ERROR_STORAGE_POOL,
                        "No revision of volume %s to revert to", vol->vid);
        return FALSE;
    }
    return add_revision(vol, error) && img_unlink(rv, rv->precache, error) &&
           img_rename(rv, target->name, rv->clean, error) &&
           prune_revisions(vol, keep_count(vol), error) &&
           refresh_precache(vol, error) && qfile_fsync_dir(rv->dir, error);
}

/* resize: grow the running image in place (and any loop device on it), or
 * give a stopped origin a new, larger clean image. */
static gboolean vol_resize(QubesVolume *vol, guint64 size, GError **error)
{
    ReflinkVolume *rv = rvol(vol);
    if (!vol->rw) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_STORAGE_POOL,
                    "Cannot resize: %s is read-only", vol->vid);
        return FALSE;
    }
    guint64 current = qubes_volume_get_size(vol);
    if (size < current) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_STORAGE_POOL,
                    "For your own safety, shrinking of %s is disabled "
                    "(%" G_GUINT64_FORMAT " < %" G_GUINT64_FORMAT
                    "). If you really know what you are doing, use "
                    "\"truncate\" manually.",
                    vol->vid, size, current);
        return FALSE;
    }
    if (rv->dir && !remove_incomplete(vol, error))
        return FALSE;
    if (has(rv, rv->dirty)) {
        /* qfile_truncate syncs: the VM may be told its new size now. */
        if (!qfile_truncate(rv->dir, rv->dirty, size, error))
            return FALSE;
        int fd = qfile_open_read(rv->dir, rv->dirty, error);
        if (fd < 0)
            return FALSE;
        g_autofree char *path = qdir_child_path(rv->dir, rv->dirty);
        int n = qfile_update_loop_devices(fd, path, error);
        close(fd);
        if (n < 0)
            return FALSE;
    } else if (is_origin(vol)) {
        if (!has(rv, rv->clean))
            return missing_image(vol, rv->dir, rv->clean, error);
        /* A new inode (clean images are never changed in place), replaced
         * atomically; synced with the folder like a commit. */
        QFileCopyOpts opts = QFILE_COPY_OPTS_INIT;
        opts.size = (gint64)size;
        opts.replace = TRUE;
        if (!img_unlink(rv, rv->precache, error) ||
            !img_copy(rv, rv->clean, rv->clean, &opts, error) ||
            !refresh_precache(vol, error) || !qfile_fsync_dir(rv->dir, error))
            return FALSE;
    }
    vol->size = size;
    return TRUE;
}

static char *vol_import_data(QubesVolume *vol, guint64 size, GError **error)
{
    ReflinkVolume *rv = rvol(vol);
    if (!require_save_on_stop(vol, "import_data", error) ||
        !require_stopped(vol, "import data", error) ||
        !remove_incomplete(vol, error) ||
        !img_create_sparse(rv, rv->import, size, error))
        return NULL;
    return qdir_child_path(rv->dir, rv->import);
}

static gboolean vol_import_data_end(QubesVolume *vol, gboolean success,
                                    GError **error)
{
    ReflinkVolume *rv = rvol(vol);
    struct stat st;
    if (!success)
        return img_unlink(rv, rv->import, error);
    if (!has(rv, rv->import)) {
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_STORAGE_POOL,
                    "No import in progress for volume %s", vol->vid);
        return FALSE;
    }
    if (qfile_stat(rv->dir, rv->import, &st, error) < 0 ||
        !commit(vol, rv->import, error))
        return FALSE;
    vol->size = (guint64)st.st_size;
    return TRUE;
}

static gboolean vol_import_volume(QubesVolume *vol, int src_fd,
                                  const char *src_desc,
                                  QubesProgressFunc progress,
                                  gpointer progress_data, GError **error)
{
    ReflinkVolume *rv = rvol(vol);
    if (!require_save_on_stop(vol, "import_volume", error) ||
        !require_stopped(vol, "import a volume", error) ||
        !remove_incomplete(vol, error))
        return FALSE;
    QFileCopyOpts opts = QFILE_COPY_OPTS_INIT;
    opts.progress = progress;
    opts.progress_data = progress_data;
    if (!qfile_copy_fd(src_fd, src_desc, rv->dir, rv->import, &opts, NULL,
                       error))
        return FALSE;
    now_has(rv, rv->import);
    return vol_import_data_end(vol, TRUE, error);
}

static gboolean vol_verify(QubesVolume *vol, GError **error)
{
    ReflinkVolume *rv = rvol(vol);
    const char *dir_rel, *name;
    if (vol->snap_on_start) {
        dir_rel = rv->src_dir_rel;
        name = rv->src_clean;
    } else if (vol->save_on_stop) {
        dir_rel = rv->dir_rel;
        name = rv->clean;
    } else {
        return TRUE;
    }
    QDir *dir = NULL;
    if (!open_dir_if_exists(vol, dir_rel, &dir, error))
        return FALSE;
    g_autoptr(QDir) d = dir;
    struct stat st;
    int have = d ? qfile_stat(d, name, &st, error) : 0;
    if (have < 0)
        return FALSE;
    if (!have) {
        g_autofree char *path =
            g_strdup_printf("%s/%s%s%s", qfile_ctx_root_path(rpool(vol)->ctx),
                            dir_rel, *dir_rel ? "/" : "", name);
        g_set_error(error, QUBES_ERROR, QUBES_ERROR_STORAGE_POOL,
                    "Missing image file %s for volume %s", path, vol->vid);
        return FALSE;
    }
    return TRUE;
}

static char *image_path(QubesVolume *vol, const char *name)
{
    ReflinkVolume *rv = rvol(vol);
    return g_strdup_printf("%s/%s%s%s", qfile_ctx_root_path(rpool(vol)->ctx),
                           rv->dir_rel, *rv->dir_rel ? "/" : "", name);
}

static char *vol_export_path(QubesVolume *vol, GError **error)
{
    if (!require_save_on_stop(vol, "export", error))
        return NULL;
    return image_path(vol, rvol(vol)->clean);
}

static int vol_export_open(QubesVolume *vol, GError **error)
{
    ReflinkVolume *rv = rvol(vol);
    if (!require_save_on_stop(vol, "export", error))
        return -1;
    g_autoptr(QDir) dir = open_dir(vol, rv->dir_rel, FALSE, error);
    return dir ? qfile_open_read(dir, rv->clean, error) : -1;
}

/* A reflink of the committed image into an unnamed file (O_TMPFILE) in
 * its folder: what a long reader (a backup) reads stays as it was even if
 * something wrote the image in place, and nothing is left to clean after
 * a crash. Where the filesystem has no reflinks, the committed image
 * itself: qubesd only ever replaces it by a rename, so the open
 * descriptor keeps reading the same inode. */
static int vol_export_snapshot(QubesVolume *vol, GError **error)
{
    ReflinkVolume *rv = rvol(vol);
    if (!require_save_on_stop(vol, "export", error))
        return -1;
    g_autoptr(QDir) dir = open_dir(vol, rv->dir_rel, FALSE, error);
    int fd = dir ? qfile_open_read(dir, rv->clean, error) : -1;
    if (fd < 0)
        return -1;
    int copy = openat(qdir_fd(dir), ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (copy >= 0 && ioctl(copy, FICLONE, fd) == 0) {
        close(fd);
        return copy;
    }
    if (copy >= 0)
        close(copy);
    return fd;
}

static char *vol_get_path(QubesVolume *vol)
{
    return image_path(vol, rvol(vol)->dirty);
}

/* Stats @name in the volume's folder without the lock (queries). */
static gboolean stat_image(QubesVolume *vol, const char *dir_rel,
                           const char *name, struct stat *st)
{
    QDir *dir = NULL;
    if (!open_dir_if_exists(vol, dir_rel, &dir, NULL) || !dir)
        return FALSE;
    int have = qfile_stat(dir, name, st, NULL);
    qdir_close(dir);
    return have == 1;
}

static gboolean vol_is_dirty(QubesVolume *vol)
{
    struct stat st;
    return vol->save_on_stop &&
           stat_image(vol, rvol(vol)->dir_rel, rvol(vol)->dirty, &st);
}

static gboolean vol_is_outdated(QubesVolume *vol)
{
    ReflinkVolume *rv = rvol(vol);
    struct stat mine, src;
    /* The marker link without a running image is what a crash during a
     * stop leaves (the next start or stop removes it): not running, so
     * not outdated. */
    return vol->snap_on_start &&
           stat_image(vol, rv->dir_rel, rv->dirty, &mine) &&
           stat_image(vol, rv->dir_rel, rv->clean, &mine) &&
           stat_image(vol, rv->src_dir_rel, rv->src_clean, &src) &&
           !same_inode(&mine, &src);
}

static gboolean vol_get_size(QubesVolume *vol, guint64 *size)
{
    ReflinkVolume *rv = rvol(vol);
    struct stat st;
    if (stat_image(vol, rv->dir_rel, rv->dirty, &st) ||
        stat_image(vol, rv->dir_rel, rv->clean, &st)) {
        *size = (guint64)st.st_size;
        return TRUE;
    }
    return FALSE;
}

static guint64 vol_get_usage(QubesVolume *vol)
{
    ReflinkVolume *rv = rvol(vol);
    struct stat st;
    if (stat_image(vol, rv->dir_rel, rv->dirty, &st) ||
        stat_image(vol, rv->dir_rel, rv->clean, &st))
        return (guint64)st.st_blocks * 512;
    return 0;
}

static GPtrArray *vol_list_revisions(QubesVolume *vol, GError **error)
{
    ReflinkVolume *rv = rvol(vol);
    QDir *dir = NULL;
    if (!open_dir_if_exists(vol, rv->dir_rel, &dir, error))
        return NULL;
    g_autoptr(QDir) d = dir;
    g_autoptr(GPtrArray) revs = visible_revisions(vol, d, error);
    if (!revs)
        return NULL;
    GPtrArray *out =
        g_ptr_array_new_with_free_func((GDestroyNotify)qubes_revision_free);
    for (guint i = 0; i < revs->len; i++) {
        Rev *r = revs->pdata[i];
        QubesRevision *qr = g_new0(QubesRevision, 1);
        qr->id = g_strdup(r->id);
        qr->timestamp = g_strdup(r->timestamp);
        g_ptr_array_add(out, qr);
    }
    return out;
}

static gboolean add_space(GPtrArray *out, QDir *dir, const char *name,
                          const char *what, GError **error)
{
    int fd = qfile_open_read(dir, name, error);
    if (fd < 0)
        return FALSE;
    g_autofree char *path = qdir_child_path(dir, name);
    QubesVolumeSpace *s = g_new0(QubesVolumeSpace, 1);
    struct stat st;
    gboolean ok =
        fstat(fd, &st) == 0 &&
        qfile_extent_usage(fd, path, &s->shared, &s->exclusive, error);
    close(fd);
    if (!ok) {
        qubes_volume_space_free(s);
        return FALSE;
    }
    s->what = g_strdup(what);
    s->size = (guint64)st.st_size;
    g_ptr_array_add(out, s);
    return TRUE;
}

/* The space held by the image @current (NULL: none) and by each listed
 * revision, in @d (NULL: the folder does not exist: none). */
static GPtrArray *space_in(QubesVolume *vol, QDir *d, const char *current,
                           GError **error)
{
    g_autoptr(GPtrArray) out =
        g_ptr_array_new_with_free_func((GDestroyNotify)qubes_volume_space_free);
    if (!d)
        return g_steal_pointer(&out);
    if (current && !add_space(out, d, current, "current", error))
        return NULL;
    g_autoptr(GPtrArray) revs = visible_revisions(vol, d, error);
    if (!revs)
        return NULL;
    for (guint i = 0; i < revs->len; i++) {
        Rev *r = revs->pdata[i];
        if (!add_space(out, d, r->name, r->id, error))
            return NULL;
    }
    return g_steal_pointer(&out);
}

static GPtrArray *vol_get_space(QubesVolume *vol, GError **error)
{
    ReflinkVolume *rv = rvol(vol);
    QDir *dir = NULL;
    if (!open_dir_if_exists(vol, rv->dir_rel, &dir, error))
        return NULL;
    g_autoptr(QDir) d = dir;
    struct stat st;
    const char *current = !d                                         ? NULL
                          : qfile_stat(d, rv->dirty, &st, NULL) == 1 ? rv->dirty
                          : qfile_stat(d, rv->clean, &st, NULL) == 1 ? rv->clean
                                                                     : NULL;
    return space_in(vol, d, current, error);
}

/* The four reads of admin.vm.volume.Info with the folder opened once and
 * each image looked at once (vol_get_size, vol_get_usage,
 * vol_is_outdated and vol_get_space say the same, one by one). */
static void vol_get_state(QubesVolume *vol, QubesVolumeState *out)
{
    ReflinkVolume *rv = rvol(vol);
    *out = (QubesVolumeState){.size = vol->size};
    QDir *dir = NULL;
    if (!open_dir_if_exists(vol, rv->dir_rel, &dir, NULL))
        return;
    g_autoptr(QDir) d = dir;
    struct stat dirty, clean, src;
    gboolean has_dirty = d && qfile_stat(d, rv->dirty, &dirty, NULL) == 1;
    gboolean has_clean = d && qfile_stat(d, rv->clean, &clean, NULL) == 1;
    const struct stat *cur = has_dirty ? &dirty : has_clean ? &clean : NULL;
    if (cur) {
        out->size = (guint64)cur->st_size;
        out->usage = (guint64)cur->st_blocks * 512;
    }
    if (vol->snap_on_start && has_dirty && has_clean) {
        QDir *sdir = NULL;
        if (open_dir_if_exists(vol, rv->src_dir_rel, &sdir, NULL) && sdir) {
            out->outdated = qfile_stat(sdir, rv->src_clean, &src, NULL) == 1 &&
                            !same_inode(&clean, &src);
            qdir_close(sdir);
        }
    }
    out->space = space_in(vol, d,
                          has_dirty   ? rv->dirty
                          : has_clean ? rv->clean
                                      : NULL,
                          NULL);
}

const QubesStorageDriver qubes_driver_file_reflink = {
    .name = "file-reflink",
    .parameters = parameters,
    .required = required,
    .pool_init = pool_init,
    .pool_free = pool_free,
    .pool_setup = pool_setup,
    .pool_config = pool_config,
    .pool_usage = pool_usage,
    .pool_fsync_count = pool_fsync_count,
    .pool_set_failpoint = pool_set_failpoint,
    .volume_init = volume_init,
    .volume_free = volume_free,
    .volume_lock = volume_lock,
    .volume_unlock = volume_unlock,
    .create = vol_create,
    .remove = vol_remove,
    .start = vol_start,
    .stop = vol_stop,
    .revert = vol_revert,
    .resize = vol_resize,
    .import_data = vol_import_data,
    .import_data_end = vol_import_data_end,
    .import_volume = vol_import_volume,
    .verify = vol_verify,
    .export_path = vol_export_path,
    .export_open = vol_export_open,
    .export_snapshot = vol_export_snapshot,
    .get_path = vol_get_path,
    .get_state = vol_get_state,
    .is_dirty = vol_is_dirty,
    .is_outdated = vol_is_outdated,
    .get_size = vol_get_size,
    .get_usage = vol_get_usage,
    .list_revisions = vol_list_revisions,
    .get_space = vol_get_space,
};
