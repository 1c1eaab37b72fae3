/* kdf-memory.h: the working memory of scrypt, kept between derivations.
 *
 * A derivation at the backup's cost (log2 N 19, r 8) takes 512 MiB, which
 * libcrypto allocates and frees on every call. Fresh pages cost the
 * kernel's page faults and zeroing (a third of a derivation's time on
 * this machine class), and small pages cost TLB misses in scrypt's random
 * walk over them. This module gives libcrypto (CRYPTO_set_mem_functions)
 * an allocator that serves every block of at least QUBES_KDF_BIG bytes
 * from an anonymous mapping advised for transparent huge pages, and,
 * while someone holds the cache, keeps such a block mapped when libcrypto
 * frees it, for the next derivation of the same size. Smaller blocks go
 * to malloc as before.
 *
 * libcrypto clears a block before freeing it (OPENSSL_clear_free), so a
 * kept block holds no key material. The cache never holds more blocks
 * than were in use at once (one per derivation thread), and the last
 * qubes_kdf_memory_unhold() unmaps them all: a daemon keeps no memory
 * after its backup.
 *
 * qubes_kdf_memory_install() must run before libcrypto's first
 * allocation in the process: scrypt-file.c calls it before any of its
 * own use of libcrypto, and nothing else in this project uses libcrypto.
 * If it comes too late, libcrypto keeps its own allocator (derivations
 * are only slower). Thread-safe.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* The smallest block served from its own mapping: 32 MiB. */
#define QUBES_KDF_BIG ((gsize)32 << 20)

/* Installs the allocator into libcrypto, once; whether it is in use. */
gboolean qubes_kdf_memory_install(void);
/* Keeps freed big blocks mapped until the matching unhold (nested). */
void qubes_kdf_memory_hold(void);
void qubes_kdf_memory_unhold(void);
/* Big blocks mapped now, in use or kept (tests). */
guint qubes_kdf_memory_mapped(void);

G_END_DECLS
