/* The NBD server's contents: procedural where never written (fl_fill(seed,
 * offset), as everywhere in faultlab), and written 4 KiB pages in a hash map,
 * so a region of any size costs memory only for the pages written to it.
 * Used by the server's one event-loop thread alone, so it takes no lock. */
#ifndef FAULTLAB_NBD_STORE_H
#define FAULTLAB_NBD_STORE_H
#include <stddef.h>
#include <stdint.h>

#define NBD_STORE_PAGE 4096u

struct nbd_store {
    uint64_t size, seed;
    uint64_t max_pages; /* written pages it may hold (store_cap) */
    uint64_t *keys; /* page index + 1; 0 = empty slot */
    uint8_t **pages;
    size_t cap, n; /* slots (a power of two), pages held */
    const uint8_t *mem; /* set: the contents are this memory (read-only; a migrate source's, serving post-copy) */
};

void nbd_store_init(struct nbd_store *st, uint64_t size, uint64_t seed, uint64_t max_bytes);
/* [off, off+len) into dst; the caller checked the range. */
void nbd_store_read(const struct nbd_store *st, uint64_t off, uint64_t len, uint8_t *dst);
/* Write [off, off+len); a page written in part keeps its procedural bytes
 * elsewhere. 0, or an NBD error (NBD_ENOSPC past max_bytes, NBD_ENOMEM);
 * pages before the failing one stay written, as NBD allows for a failed write. */
uint32_t nbd_store_write(struct nbd_store *st, uint64_t off, const uint8_t *src, uint64_t len);
void nbd_store_free(struct nbd_store *st);

#endif
