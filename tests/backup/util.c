/* util.c: see util.h. */
#include "util.h"

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
