/* fuzz-backup-meta: what a backup says of itself, as untrusted input:
 * its `backup-header` (header.h), the `qubes.xml` it holds as a restore
 * reads it (restore-plan.h: the qubes, their properties, features, tags
 * and devices, checked against a host, and the summary table; the same
 * text read as a format 3 collection too, restore-core2.h), and a
 * backup profile (profile.h). The first byte picks which. Properties: no
 * crash or sanitizer report; a header that parses formats to text that
 * parses to the same; a plan's summary names each of its qubes; a profile
 * that parses formats to text that parses to the same values. */
#include "header.h"
#include "profile.h"
#include "restore-core2.h"
#include "restore-plan.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void header(const char *text, size_t len)
{
    g_auto(QubesBackupHeader) h = {0};
    if (!qubes_backup_header_parse(text, len, "zstd", &h, NULL))
        return;
    if (h.version != 4)
        return;
    g_autofree char *again = qubes_backup_header_format(&h);
    g_auto(QubesBackupHeader) h2 = {0};
    if (!qubes_backup_header_parse(again, strlen(again), "zstd", &h2, NULL) ||
        h2.version != h.version || h2.encrypted != h.encrypted ||
        h2.compressed != h.compressed ||
        g_strcmp0(h2.backup_id, h.backup_id) != 0)
        abort();
}

static void plan(const char *text, size_t len)
{
    QubesRestoreHost *host = qubes_restore_host_new();
    g_hash_table_insert(host->classes, g_strdup("dom0"), g_strdup("AdminVM"));
    g_hash_table_insert(host->classes, g_strdup("work"), g_strdup("AppVM"));
    g_hash_table_insert(host->classes, g_strdup("tpl"), g_strdup("TemplateVM"));
    g_hash_table_add(host->networkers, g_strdup("work"));
    host->default_template = g_strdup("tpl");
    QubesRestoreOptions opts = {.dom0_home = TRUE,
                                .rename_conflicting = (len & 1) != 0,
                                .use_default_template = (len & 2) != 0,
                                .use_default_netvm = (len & 2) != 0};
    QubesRestoreInfo *infos[2] = {
        qubes_restore_info_new(text, len, host, &opts, NULL), NULL};
    GPtrArray *core2 = qubes_restore_core2_vms(text, len, NULL);
    if (core2)
        infos[1] = qubes_restore_info_from_vms(core2, host, &opts, NULL);
    for (int k = 0; k < 2; k++) {
        QubesRestoreInfo *info = infos[k];
        if (!info)
            continue;
        g_autofree char *summary = qubes_restore_summary(info);
        for (guint i = 0; i < info->items->len; i++) {
            QubesRestoreItem *it = info->items->pdata[i];
            if (!strstr(summary, it->vm->name))
                abort();
        }
        g_autoptr(GPtrArray) order = qubes_restore_templates_first(info);
        if (order->len != info->items->len)
            abort();
        qubes_restore_info_free(info);
    }
    qubes_restore_host_free(host);
}

static gboolean same(GStrv a, GStrv b)
{
    if (!a || !b)
        return a == b;
    return g_strv_equal((const char *const *)a, (const char *const *)b);
}

static void profile(const char *text, size_t len)
{
    g_autoptr(QubesBackupProfile) p =
        qubes_backup_profile_parse(text, len, "fuzz", NULL);
    if (!p)
        return;
    g_autofree char *again = qubes_backup_profile_format(p);
    g_autoptr(QubesBackupProfile) q =
        qubes_backup_profile_parse(again, strlen(again), "again", NULL);
    if (!q || !same(p->include, q->include) || !same(p->exclude, q->exclude) ||
        g_strcmp0(p->destination_vm, q->destination_vm) != 0 ||
        g_strcmp0(p->destination_path, q->destination_path) != 0 ||
        g_strcmp0(p->passphrase_text, q->passphrase_text) != 0 ||
        p->compressed != q->compressed ||
        g_strcmp0(p->compression_filter, q->compression_filter) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1 << 16)
        return 0;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    switch (data[0] % 3) {
    case 0:
        header(text, len);
        break;
    case 1:
        plan(text, len);
        break;
    default:
        profile(text, len);
        break;
    }
    return 0;
}
