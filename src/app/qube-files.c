/* qube-files.c: a qube's notes, and its files as a whole: made at its
 * creation, removed with it (see qube-files.h). The writes go through
 * qube-folder.c, whose header holds their durability argument; the
 * removal holds files_lock, so no write lands after it. */
#include "qube-files.h"

#include "domain.h"
#include "firewall-file.h"
#include "firewall.h"
#include "lookup.h"
#include "qube-folder.h"

#include <string.h>

#define NOTES_FILE "notes.txt"

char *qubes_domain_read_notes(QubesDomain *dom, GError **error)
{
    return qubes_domain_read_file(dom, NOTES_FILE, QUBES_NOTES_MAX, NULL,
                                  error);
}

gboolean qubes_domain_write_notes(QubesDomain *dom, const char *text,
                                  GError **error)
{
    return qubes_domain_write_file(dom, NOTES_FILE, text, error);
}

/* What qubesd itself keeps in a qube's folder (the volumes are the
 * storage's, the libvirt config the runtime's). */
static const char *const own_files[] = {NOTES_FILE, QUBES_FIREWALL_FILE, NULL};

static gboolean remove_own_files(QubesDomain *dom, GError **error)
{
    return qubes_domain_unlink_files(dom, own_files, error);
}

gboolean qubes_domain_remove_own_files(QubesDomain *dom, GError **error)
{
    g_autoptr(GMutexLocker) l = g_mutex_locker_new(&dom->files_lock);
    return remove_own_files(dom, error);
}

QubesDomainFiles *qubes_domain_files_new(QubesDomain *dom)
{
    QubesDomainFiles *f = g_new0(QubesDomainFiles, 1);
    f->dom = qubes_domain_ref(dom);
    f->volumes = qubes_domain_volume_refs(dom);
    f->dir = qubes_domain_dir_path(dom);
    if (strcmp(dom->klass->name, "DispVM") == 0) {
        QubesDomain *tpl = qubes_domain_get_template(dom);
        f->firewall_from = tpl ? qubes_domain_ref(tpl) : NULL;
    }
    return f;
}

gboolean qubes_domain_files_create(QubesDomainFiles *f, GError **error)
{
    /* The template's rules are read first: one that cannot be read
     * fails the creation rather than give the DispVM no rules (which
     * would accept everything the template closed). */
    g_autoptr(GPtrArray) rules = NULL;
    if (f->firewall_from &&
        !(rules = qubes_domain_read_firewall(f->firewall_from, error)))
        return FALSE;
    /* A folder left by an earlier qube of this name (one a crash kept
     * from its removal) gives the new one none of its notes or rules. */
    if (!qubes_domain_remove_own_files(f->dom, error))
        return FALSE;
    if (!qubes_storage_create(f->volumes, f->dir, error))
        return FALSE;
    /* Without a firewall.xml a qube accepts everything: the default
     * rules need no file (and the DispVM's start no extra fsync).
     * Durability: the file is written (fsync, rename, fsync of the
     * folder) before the DispVM is put in qubes.xml, which happens only
     * once this returns; so a DispVM that qubes.xml holds after a crash
     * has its rules, and a crash before leaves only unreferenced files. */
    if (!rules || qubes_fw_rules_are_default(rules))
        return TRUE;
    if (!qubes_domain_write_firewall(f->dom, rules, error)) {
        g_autoptr(GError) e = NULL;
        if (!qubes_storage_remove(f->volumes, f->dir, &e))
            g_warning("%s: %s", f->dom->name, e->message);
        return FALSE;
    }
    f->firewall_next = qubes_fw_nearest_expire(rules);
    return TRUE;
}

void qubes_domain_files_free(QubesDomainFiles *f)
{
    qubes_domain_unref(f->dom);
    if (f->firewall_from)
        qubes_domain_unref(f->firewall_from);
    g_ptr_array_unref(f->volumes);
    g_free(f->dir);
    g_free(f);
}

gboolean qubes_domain_files_remove(QubesDomainFiles *f, GError **error)
{
    /* Waits for a writer in flight; every later one fails. */
    g_autoptr(GMutexLocker) l = g_mutex_locker_new(&f->dom->files_lock);
    f->dom->files_gone = TRUE;
    /* the storage goes even when a file of qubesd's could not */
    g_autoptr(GError) own = NULL;
    gboolean ok = remove_own_files(f->dom, &own);
    if (!qubes_storage_remove(f->volumes, f->dir, error))
        return FALSE;
    if (!ok)
        g_propagate_error(error, g_steal_pointer(&own));
    return ok;
}
