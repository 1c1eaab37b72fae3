/* fuzz-names: the untrusted names of the API: VM, pool, volume, tag and
 * revision names, and file names in a pool. Properties: a name accepted
 * as a VM, pool or volume name is a safe single path component, a tag is
 * letters, digits, '_' and '-' (no '/',
 * not "." or "..", no control bytes, at most 255 bytes); a revision that
 * does not exist is refused by a revert, which touches no file. The
 * revert runs on a real volume in a pool made once under $TMPDIR. */
#include "app.h"
#include "qfile.h"
#include "qubes-parse.h"
#include "storage.h"

#include <glib/gstdio.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static QubesPool *pool;
static QubesVolume *vol;
static char *vm_dir;
static char *listing;
static char *tmp_dir;

/* At a normal exit; after a crash the pool stays for inspection. */
static void remove_tmp(void)
{
    const char *argv[] = {"rm", "-rf", tmp_dir, NULL};
    g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL,
                 NULL, NULL, NULL, NULL);
}

static void quiet(const char *domain, GLogLevelFlags level, const char *msg,
                  gpointer data)
{
}

static gint cmp_names(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *list_dir(void)
{
    g_autoptr(GDir) d = g_dir_open(vm_dir, 0, NULL);
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    const char *n;
    while (d && (n = g_dir_read_name(d)) != NULL)
        g_ptr_array_add(names, g_strdup(n));
    g_ptr_array_sort(names, cmp_names);
    GString *s = g_string_new(NULL);
    for (guint i = 0; i < names->len; i++) {
        GStatBuf st;
        g_autofree char *p = g_build_filename(vm_dir, names->pdata[i], NULL);
        g_stat(p, &st);
        g_string_append_printf(s, "%s:%ld:%ld ", (char *)names->pdata[i],
                               (long)st.st_ino, (long)st.st_mtime);
    }
    return g_string_free(s, FALSE);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    g_log_set_default_handler(quiet, NULL);
    g_autoptr(GError) error = NULL;
    char *dir = g_dir_make_tmp("qubes-fuzz-names-XXXXXX", &error);
    if (!dir)
        abort();
    g_setenv("QUBES_LOCK_DIR", dir, TRUE);
    g_autofree char *pool_dir = g_build_filename(dir, "pool", NULL);
    g_autoptr(GHashTable) opts = g_hash_table_new(g_str_hash, g_str_equal);
    g_hash_table_insert(opts, "dir_path", pool_dir);
    g_hash_table_insert(opts, "setup_check", "no");
    pool = qubes_pool_new("file-reflink", "fuzz", opts, &error);
    if (!pool || !qubes_pool_setup(pool, &error))
        abort();
    QubesVolumeConfig cfg = {.name = "private",
                             .vm_name = "vm",
                             .vm_dir_prefix = "appvms",
                             .size = 1 << 20,
                             .rw = TRUE,
                             .save_on_stop = TRUE,
                             .has_revisions_to_keep = TRUE,
                             .revisions_to_keep = 2};
    vol = qubes_pool_init_volume(pool, &cfg, &error);
    if (!vol || !qubes_volume_create(vol, &error))
        abort();
    for (int i = 0; i < 2; i++)
        if (!qubes_volume_start(vol, &error) || !qubes_volume_stop(vol, &error))
            abort();
    vm_dir = g_build_filename(pool_dir, "appvms", "vm", NULL);
    listing = list_dir();
    fprintf(stderr, "fuzz-names: pool in %s\n", dir);
    tmp_dir = dir;
    atexit(remove_tmp);
    return 0;
}

static void check_component(const char *s)
{
    if (strchr(s, '/') || !strcmp(s, ".") || !strcmp(s, "..") ||
        strlen(s) > 255 || !qfile_name_is_safe(s))
        abort();
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < ' ' || *p == 0x7f)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autofree char *s = g_strndup((const char *)data, size);
    if (qubes_validate_vm_name(s, NULL))
        check_component(s);
    if (qubes_name_is_valid_pool(s))
        check_component(s);
    if (qubes_name_is_valid_volume(s))
        check_component(s);
    if (qubes_tag_is_valid(s)) /* never a file name: its alphabet only */
        for (const char *p = s; *p; p++)
            if (!g_ascii_isalnum(*p) && *p != '_' && *p != '-')
                abort();
    /* A revert to a revision id from the request payload. */
    g_autoptr(GPtrArray) revs = qubes_volume_list_revisions(vol, NULL);
    gboolean exists = FALSE;
    for (guint i = 0; revs && i < revs->len; i++)
        exists |= strcmp(((QubesRevision *)revs->pdata[i])->id, s) == 0;
    if (!exists && *s) {
        GError *error = NULL;
        if (qubes_volume_revert(vol, s, &error) || !error)
            abort();
        g_error_free(error);
        g_autofree char *now = list_dir();
        if (strcmp(now, listing) != 0) {
            fprintf(stderr, "revert to \"%s\" changed\n  %s\nto\n  %s\n", s,
                    listing, now);
            abort();
        }
    }
    return 0;
}
