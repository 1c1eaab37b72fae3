/* qube-files.h: what a qube keeps beside its volumes: its notes (the
 * free text the reference keeps in notes.txt, admin.vm.notes.Get/Set),
 * and its files as a whole: the folder and storage made at its creation
 * (with a new DispVM's copy of its template's firewall.xml) and removed
 * with it. Written durably through qube-folder.h. All blocking.
 */
#pragma once

#include "model.h"

G_BEGIN_DECLS

/* The largest notes admin.vm.notes.Set takes, in bytes. */
#define QUBES_NOTES_MAX 256000

/* The qube's notes ("" when it has none; new string). */
char *qubes_domain_read_notes(QubesDomain *dom, GError **error);
/* Replaces them, atomically and durably. */
gboolean qubes_domain_write_notes(QubesDomain *dom, const char *text,
                                  GError **error);
/* Removes what qubesd keeps in the qube's folder: its notes and its
 * firewall.xml (with the qube). */
gboolean qubes_domain_remove_own_files(QubesDomain *dom, GError **error);

/* A qube's files, for a worker that may outlive the qube's place in the
 * model: the domain and its volumes (held) and its folder. */
typedef struct {
    QubesDomain *dom;
    GPtrArray *volumes;
    char *dir;
    /* A new DispVM's template (held), whose firewall it starts with
     * (dispvm.py clones it); NULL for every other qube. */
    QubesDomain *firewall_from;
    gint64 firewall_next; /* the copied rules' nearest expiry, 0: none */
} QubesDomainFiles;
QubesDomainFiles *qubes_domain_files_new(QubesDomain *dom);
/* Makes the qube's storage and folder (and a DispVM's firewall.xml),
 * all or nothing. */
gboolean qubes_domain_files_create(QubesDomainFiles *f, GError **error);
void qubes_domain_files_free(QubesDomainFiles *f);
/* Removes the qube's own files, volumes and folder. */
gboolean qubes_domain_files_remove(QubesDomainFiles *f, GError **error);

G_END_DECLS
