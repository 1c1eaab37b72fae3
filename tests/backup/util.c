/* util.c: see util.h. */
#include "util.h"

#include "tar-write.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stdlib.h>

gboolean bt_in_ci(void)
{
    return g_strcmp0(g_getenv("CI"), "true") == 0;
}

gboolean bt_have(const char *program)
{
    g_autofree char *p = g_find_program_in_path(program);
    if (!p && bt_in_ci())
        g_error("%s is missing (scripts/install-deps installs it)", program);
    return p != NULL;
}

void bt_run(const char *cmd)
{
    int status = -1;
    g_autofree char *out = NULL, *err = NULL;
    g_assert_true(g_spawn_command_line_sync(cmd, &out, &err, &status, NULL));
    if (!g_spawn_check_wait_status(status, NULL))
        g_error("%s: %s", cmd, err);
}

GBytes *bt_pipe(const char *dir, const char *cmd, const guint8 *in, gsize len)
{
    g_autofree char *path = g_build_filename(dir, "in", NULL);
    g_autofree char *opath = g_build_filename(dir, "out", NULL);
    g_assert_true(
        g_file_set_contents(path, (const char *)in, (gssize)len, NULL));
    g_autofree char *sh =
        g_strdup_printf("/bin/sh -c '%s < %s > %s'", cmd, path, opath);
    bt_run(sh);
    return bt_slurp(opath);
}

GBytes *bt_slurp(const char *path)
{
    char *d = NULL;
    gsize n = 0;
    g_assert_true(g_file_get_contents(path, &d, &n, NULL));
    return g_bytes_new_take(d, n);
}

void bt_sha256_zeros(EVP_MD_CTX *md, guint64 *summed, guint64 upto)
{
    static const guint8 zeros[1 << 20];
    while (*summed < upto) {
        gsize k = (gsize)MIN(upto - *summed, (guint64)sizeof zeros);
        EVP_DigestUpdate(md, zeros, k);
        *summed += k;
    }
}

int bt_finish(int rc, char *dir)
{
    g_autofree char *cmd = g_strdup_printf("rm -rf %s", dir);
    if (system(cmd) != 0)
        rc = 1;
    g_free(dir);
    return rc;
}

/* @a and @b hold the same bytes (read through their extents only: the
 * holes are zeros), and @b keeps @a's holes. */
void bt_same_sparse(const char *a, const char *b)
{
    int fa = open(a, O_RDONLY | O_CLOEXEC), fb = open(b, O_RDONLY | O_CLOEXEC);
    g_assert_cmpint(fa, >=, 0);
    g_assert_cmpint(fb, >=, 0);
    struct stat sa, sb;
    g_assert_cmpint(fstat(fa, &sa), ==, 0);
    g_assert_cmpint(fstat(fb, &sb), ==, 0);
    g_assert_cmpint(sa.st_size, ==, sb.st_size);
    g_assert_cmpint(sb.st_blocks, <=, sa.st_blocks + 64);
    g_autoptr(GArray) xa = qubes_tar_extents(fa, (guint64)sa.st_size, NULL);
    g_autoptr(GArray) xb = qubes_tar_extents(fb, (guint64)sb.st_size, NULL);
    GArray *both[] = {xa, xb};
    guint8 *p = g_malloc(1 << 16), *q = g_malloc(1 << 16);
    for (guint w = 0; w < 2; w++)
        for (guint i = 0; i < both[w]->len; i++) {
            QubesTarExtent *e = &g_array_index(both[w], QubesTarExtent, i);
            for (guint64 done = 0; done < e->length;) {
                gsize k = (gsize)MIN(e->length - done, (guint64)(1 << 16));
                off_t at = (off_t)(e->offset + done);
                g_assert_cmpint(pread(fa, p, k, at), ==, (ssize_t)k);
                g_assert_cmpint(pread(fb, q, k, at), ==, (ssize_t)k);
                g_assert_true(memcmp(p, q, k) == 0);
                done += k;
            }
        }
    g_free(p);
    g_free(q);
    close(fa);
    close(fb);
}
