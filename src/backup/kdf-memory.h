/* kdf-memory.h: the working memory of scrypt (scrypt-kdf.h), kept
 * between derivations.
 *
 * A derivation at the backup's cost (log2 N 19, r 8) walks 512 MiB.
 * Fresh pages cost the kernel's page faults and zeroing (about half of a
 * derivation's time on this machine class, where libcrypto's scrypt
 * allocates and frees its block on every call), and small pages cost TLB
 * misses in scrypt's random walk over them. So a block comes from an
 * anonymous mapping advised for transparent huge pages and left out of
 * core dumps, and while someone holds the cache (a key pool does, for its
 * life) a block given back stays mapped for the next derivation of the
 * same size.
 *
 * The cache never holds more blocks than were in use at once (one per
 * derivation thread), and the last qubes_kdf_memory_unhold() unmaps them
 * all: a daemon keeps no memory after its backup. A kept block holds the
 * last derivation's intermediate state, in this process only, until it is
 * reused or unmapped. Thread-safe.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* A block of @len bytes (contents undefined), or NULL when it cannot be
 * mapped (errno set). */
void *qubes_kdf_memory_get(gsize len);
/* Gives back a block of qubes_kdf_memory_get(@len): kept while held,
 * unmapped otherwise. */
void qubes_kdf_memory_put(void *block, gsize len);
/* Keeps given-back blocks mapped until the matching unhold (nested). */
void qubes_kdf_memory_hold(void);
void qubes_kdf_memory_unhold(void);
/* Blocks mapped now, in use or kept (tests). */
guint qubes_kdf_memory_mapped(void);

G_END_DECLS
