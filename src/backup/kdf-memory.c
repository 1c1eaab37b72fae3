/* kdf-memory.c: libcrypto's big blocks from kept huge-page mappings (see
 * kdf-memory.h). */
#include "kdf-memory.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* One mapping: its address, its length, whether libcrypto has it now. */
typedef struct {
    void *addr;
    size_t len;
    gboolean used;
} Block;

/* A derivation thread per core, and one derivation on the caller's
 * thread: more blocks than this at once are not kept. */
#define MAX_BLOCKS 64

static GMutex lock;
static Block blocks[MAX_BLOCKS]; /* under lock */
static guint n_blocks;           /* under lock */
static guint holds;              /* under lock */
static gboolean installed;

static Block *find(void *addr)
{
    for (guint i = 0; i < n_blocks; i++)
        if (blocks[i].addr == addr)
            return &blocks[i];
    return NULL;
}

static void forget(Block *b)
{
    munmap(b->addr, b->len);
    *b = blocks[--n_blocks];
}

static void *big_alloc(size_t num)
{
    g_mutex_lock(&lock);
    for (guint i = 0; i < n_blocks; i++)
        if (!blocks[i].used && blocks[i].len == num) {
            blocks[i].used = TRUE;
            g_mutex_unlock(&lock);
            return blocks[i].addr;
        }
    g_mutex_unlock(&lock);
    void *p = mmap(NULL, num, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    madvise(p, num, MADV_HUGEPAGE); /* advice: refused is still correct */
    g_mutex_lock(&lock);
    if (n_blocks == MAX_BLOCKS) {
        g_mutex_unlock(&lock);
        munmap(p, num);
        return malloc(num);
    }
    blocks[n_blocks++] = (Block){p, num, TRUE};
    g_mutex_unlock(&lock);
    return p;
}

/* Whether @addr was one of ours (then it is kept or unmapped). */
static gboolean big_free(void *addr)
{
    g_mutex_lock(&lock);
    Block *b = n_blocks ? find(addr) : NULL;
    if (b) {
        if (holds)
            b->used = FALSE;
        else
            forget(b);
    }
    g_mutex_unlock(&lock);
    return b != NULL;
}

static void *kdf_malloc(size_t num, const char *file, int line)
{
    (void)file;
    (void)line;
    return num >= QUBES_KDF_BIG ? big_alloc(num) : malloc(num);
}

static void kdf_free(void *addr, const char *file, int line)
{
    (void)file;
    (void)line;
    if (addr && !big_free(addr))
        free(addr);
}

static void *kdf_realloc(void *addr, size_t num, const char *file, int line)
{
    if (!addr)
        return kdf_malloc(num, file, line);
    g_mutex_lock(&lock);
    Block *b = n_blocks ? find(addr) : NULL;
    size_t old = b ? b->len : 0;
    g_mutex_unlock(&lock);
    if (!b && num < QUBES_KDF_BIG)
        return realloc(addr, num);
    /* to or from a mapping: copied; what was in @addr beyond the old
     * size of a malloc'd block is not known here, so a malloc'd block
     * growing to a mapping goes through realloc first */
    if (!b) {
        void *grown = realloc(addr, num);
        if (!grown)
            return NULL;
        void *p = big_alloc(num);
        if (!p)
            return grown; /* still valid, just not ours */
        memcpy(p, grown, num);
        free(grown);
        return p;
    }
    void *p = kdf_malloc(num, file, line);
    if (!p)
        return NULL;
    memcpy(p, addr, MIN(old, num));
    kdf_free(addr, file, line);
    return p;
}

gboolean qubes_kdf_memory_install(void)
{
    static gsize once;
    if (g_once_init_enter(&once)) {
        installed =
            CRYPTO_set_mem_functions(kdf_malloc, kdf_realloc, kdf_free) == 1;
        g_once_init_leave(&once, 1);
    }
    return installed;
}

void qubes_kdf_memory_hold(void)
{
    g_mutex_lock(&lock);
    holds++;
    g_mutex_unlock(&lock);
}

void qubes_kdf_memory_unhold(void)
{
    g_mutex_lock(&lock);
    g_assert(holds > 0);
    if (--holds == 0)
        for (guint i = n_blocks; i-- > 0;)
            if (!blocks[i].used)
                forget(&blocks[i]);
    g_mutex_unlock(&lock);
}

guint qubes_kdf_memory_mapped(void)
{
    g_mutex_lock(&lock);
    guint n = n_blocks;
    g_mutex_unlock(&lock);
    return n;
}
