/* kdf-memory.c: scrypt's blocks from kept huge-page mappings (see
 * kdf-memory.h). */
#include "kdf-memory.h"

#include <sys/mman.h>

/* One mapping: its address, its length, whether a derivation has it. */
typedef struct {
    void *addr;
    gsize len;
    gboolean used;
} Block;

/* Blocks at once past this are unmapped when given back, held or not. */
#define MAX_KEPT 64

static GMutex lock;
static Block blocks[MAX_KEPT]; /* under lock: the kept ones and those out */
static guint n_blocks;         /* under lock */
static guint n_out;            /* under lock: out, but not in blocks[] */
static guint holds;            /* under lock */

void *qubes_kdf_memory_get(gsize len)
{
    g_mutex_lock(&lock);
    for (guint i = 0; i < n_blocks; i++)
        if (!blocks[i].used && blocks[i].len == len) {
            blocks[i].used = TRUE;
            g_mutex_unlock(&lock);
            return blocks[i].addr;
        }
    g_mutex_unlock(&lock);
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    /* advice: where refused, the block is only slower or dumped */
    madvise(p, len, MADV_HUGEPAGE);
    madvise(p, len, MADV_DONTDUMP);
    g_mutex_lock(&lock);
    if (n_blocks < MAX_KEPT)
        blocks[n_blocks++] = (Block){p, len, TRUE};
    else
        n_out++;
    g_mutex_unlock(&lock);
    return p;
}

void qubes_kdf_memory_put(void *block, gsize len)
{
    if (!block)
        return;
    g_mutex_lock(&lock);
    Block *b = NULL;
    for (guint i = 0; i < n_blocks && !b; i++)
        if (blocks[i].addr == block)
            b = &blocks[i];
    if (b && holds) {
        b->used = FALSE;
        block = NULL; /* kept */
    } else if (b) {
        *b = blocks[--n_blocks];
    } else {
        n_out--;
    }
    g_mutex_unlock(&lock);
    if (block)
        munmap(block, len);
}

void qubes_kdf_memory_hold(void)
{
    g_mutex_lock(&lock);
    holds++;
    g_mutex_unlock(&lock);
}

void qubes_kdf_memory_unhold(void)
{
    Block gone[MAX_KEPT];
    guint n_gone = 0;
    g_mutex_lock(&lock);
    g_assert(holds > 0);
    if (--holds == 0)
        for (guint i = n_blocks; i-- > 0;)
            if (!blocks[i].used) {
                gone[n_gone++] = blocks[i];
                blocks[i] = blocks[--n_blocks];
            }
    g_mutex_unlock(&lock);
    for (guint i = 0; i < n_gone; i++)
        munmap(gone[i].addr, gone[i].len);
}

guint qubes_kdf_memory_mapped(void)
{
    g_mutex_lock(&lock);
    guint n = n_blocks + n_out;
    g_mutex_unlock(&lock);
    return n;
}
