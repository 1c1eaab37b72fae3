/* util.h: what the backup tests share: commands, tools that must be
 * there under CI=true, a temporary folder, hashing a file with holes. */
#pragma once

#include <glib.h>
#include <openssl/evp.h>

/* Whether the tests run in CI (CI=true): a missing tool is a failure. */
gboolean bt_in_ci(void);
/* Whether @program is on PATH; under CI=true its absence is fatal. */
gboolean bt_have(const char *program);
/* Runs the shell-free command line @cmd; fatal when it fails. */
void bt_run(const char *cmd);
/* The shell command @cmd (run by /bin/sh, in the folder @dir's files
 * "in" and "out") with @in on its stdin; its stdout. */
GBytes *bt_pipe(const char *dir, const char *cmd, const guint8 *in, gsize len);
/* The whole file @path. */
GBytes *bt_slurp(const char *path);
/* Adds zeros to @md from *@summed up to @upto (the holes of a file). */
void bt_sha256_zeros(EVP_MD_CTX *md, guint64 *summed, guint64 upto);
/* @a and @b hold the same bytes (compared through their extents only:
 * the holes are zeros) and @b keeps @a's holes (give or take 32 KiB). */
void bt_same_sparse(const char *a, const char *b);
/* Removes the folder @dir (g_test_run()'s result @rc, or 1 when the
 * removal fails). */
int bt_finish(int rc, char *dir);
