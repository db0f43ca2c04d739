/* tlsf.h: a two-level segregated-fit sub-allocator over offsets.
 *
 * The heap hands out ranges of an abstract offset space (the arena maps
 * device memory behind them); every piece of metadata lives here, on the
 * host, because the memory being managed may not be readable by the CPU.
 * Not thread-safe: the owner locks around it (the arena keeps one heap per
 * shard). See tlsf.c for the algorithm and its invariants.
 */
#ifndef GPUMEM_SRC_TLSF_H
#define GPUMEM_SRC_TLSF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GM_TLSF_ALIGN_LOG2 8 /* the smallest block and alignment: 256 bytes, as cudaMalloc */
#define GM_TLSF_ALIGN      ((uint64_t)1 << GM_TLSF_ALIGN_LOG2)
#define GM_TLSF_SL_LOG2    5 /* 32 second-level lists per power of two */
#define GM_TLSF_SL_COUNT   (1 << GM_TLSF_SL_LOG2)
#define GM_TLSF_FL_COUNT   48 /* first-level classes: blocks up to 2^56 bytes */
/* Requests of this size or more take the smallest free block that fits
 * (best fit) instead of the first block of the rounded-up class (good
 * fit): see tlsf.c. */
#define GM_TLSF_BEST_FIT_MIN ((uint64_t)1 << 20)

/* One block: a range [offset, offset + size) that is either free or handed
 * out. Descriptors are recycled through the heap's spare list. */
typedef struct gm_tlsf_block {
  uint64_t offset, size;
  struct gm_tlsf_block *prev_phys, *next_phys; /* contiguous neighbours in the same region */
  struct gm_tlsf_block *prev_free, *next_free; /* free list of its size class */
  uint32_t region;                             /* index in the heap's region table */
  uint8_t fl, sl;                              /* its list while free */
  bool free;
} gm_tlsf_block;

/* A contiguous run of offsets the heap manages; blocks tile it exactly. */
typedef struct gm_tlsf_region {
  uint64_t offset, size;
  gm_tlsf_block *first, *last;
} gm_tlsf_region;

typedef struct gm_tlsf {
  uint64_t fl_bitmap;                   /* bit f: some list of class f is non-empty */
  uint32_t sl_bitmap[GM_TLSF_FL_COUNT]; /* bit s of [f]: list (f, s) is non-empty */
  gm_tlsf_block *heads[GM_TLSF_FL_COUNT][GM_TLSF_SL_COUNT];
  gm_tlsf_block **used; /* allocated blocks by offset: open addressing */
  size_t used_cap;      /* a power of two, or 0 */
  int used_shift;       /* 64 - log2(used_cap) */
  gm_tlsf_block *spare; /* recycled descriptors, linked by next_free */
  size_t nspare;
  void **slabs; /* descriptor slabs, freed by gm_tlsf_destroy */
  size_t nslabs, capslabs;
  gm_tlsf_region *regions;
  size_t nregions, capregions;
  uint64_t bytes_total, bytes_used;
  size_t blocks_used, blocks_free;
} gm_tlsf;

/* What an offset is, for error messages (gm_tlsf_classify). */
typedef enum gm_tlsf_where {
  GM_TLSF_OUTSIDE = 0,     /* not in any region */
  GM_TLSF_USED_START = 1,  /* the start of an allocated block */
  GM_TLSF_USED_INSIDE = 2, /* inside an allocated block, not its start */
  GM_TLSF_FREE = 3,        /* in a free block */
} gm_tlsf_where;

void gm_tlsf_init(gm_tlsf *t);
/* Forget everything and free the descriptors. */
void gm_tlsf_destroy(gm_tlsf *t);

/* Hand [offset, offset + size) to the heap as free space (both multiples of
 * GM_TLSF_ALIGN). A range that starts where a region ends extends it and
 * merges with a free block at its end; a range that ends where a region
 * starts joins that region too (a hole left by gm_tlsf_remove_range that is
 * filled again closes up: its free neighbours on both sides merge). False when host memory for the
 * bookkeeping is short; the heap is then unchanged. */
bool gm_tlsf_add(gm_tlsf *t, uint64_t offset, uint64_t size);

/* Allocate `size` bytes (a multiple of GM_TLSF_ALIGN, > 0) whose offset is
 * a multiple of `align` (a power of two >= GM_TLSF_ALIGN). NULL when no
 * free block fits, or when host memory for the bookkeeping is short
 * (*no_host_memory is then set); the heap is unchanged either way. */
gm_tlsf_block *gm_tlsf_alloc(gm_tlsf *t, uint64_t size, uint64_t align, bool *no_host_memory);

/* The allocated block starting at `offset`, or NULL. */
gm_tlsf_block *gm_tlsf_find(const gm_tlsf *t, uint64_t offset);

/* Free the allocated block starting at `offset`, merging it with free
 * neighbours; false (and nothing changes) when no allocated block starts
 * there. */
bool gm_tlsf_free_at(gm_tlsf *t, uint64_t offset);
/* The same for a block from gm_tlsf_find / gm_tlsf_alloc. */
void gm_tlsf_free(gm_tlsf *t, gm_tlsf_block *b);

/* Where `offset` falls (a walk of the regions: for error paths only). */
gm_tlsf_where gm_tlsf_classify(const gm_tlsf *t, uint64_t offset);

/* Take [offset, offset + size) (multiples of GM_TLSF_ALIGN, size > 0) out
 * of the heap; it must lie inside one free block. What was left of that
 * block on either side stays free, and a region cut in two becomes two
 * regions (the blocks after the hole are relabelled: O(blocks) there). For
 * taking memory that is about to be unmapped out of a heap. False, and
 * nothing changes, when the range is not wholly inside one free block or
 * host memory for the bookkeeping is short. */
bool gm_tlsf_remove_range(gm_tlsf *t, uint64_t offset, uint64_t size);

/* The longest run of whole `unit`-aligned units (`unit` a multiple of
 * GM_TLSF_ALIGN, e.g. the arena's granule) lying inside one free block:
 * its length in bytes (a multiple of unit; 0 if no free block holds a
 * whole unit) and its start in *offset. Memory there serves no block: the
 * arena can unmap it and map it where it is needed. Looks at the free
 * lists from the largest class down and stops at the first class that
 * cannot beat what it has found: no per-granule bookkeeping on the alloc
 * and free paths. */
uint64_t gm_tlsf_free_units(const gm_tlsf *t, uint64_t unit, uint64_t *offset);

/* The largest free block's size and the number of free blocks. */
uint64_t gm_tlsf_largest_free(const gm_tlsf *t);

/* Walk every invariant; false with the first violation described in `why`. */
bool gm_tlsf_check(const gm_tlsf *t, char *why, size_t len);

/* Call `fn` for every block in offset order within each region. */
void gm_tlsf_walk(const gm_tlsf *t, void (*fn)(const gm_tlsf_block *b, void *user), void *user);

#endif
