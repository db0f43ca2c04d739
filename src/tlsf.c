/* tlsf.c: two-level segregated fit over offsets, metadata on the host.
 *
 * TLSF (Masmano et al., "TLSF: a new dynamic memory allocator for real-time
 * systems", 2004) keeps free blocks in lists by size class. A size falls in
 * first-level class f = floor(log2(size)) and, within it, in one of 32
 * second-level classes that split [2^f, 2^(f+1)) evenly; sizes below 32
 * units share class 0 linearly. Two bitmaps say which lists are non-empty,
 * so finding a list that can serve a request is two find-first-set
 * instructions: allocation and free are O(1), whatever the number of blocks.
 *
 * Sizes here are in units of 256 bytes, the alignment cudaMalloc promises.
 * An allocation rounds its size up to the next class boundary first ("good
 * fit"), so that any block in the list found is large enough; when that
 * finds nothing, the request's own list is searched block by block before
 * the heap reports that nothing fits, so a heap never asks for more memory
 * while a suitable block exists.
 *
 * Unlike the classic TLSF, which writes block headers into the memory it
 * manages, device memory holds nothing here: a block is a host descriptor
 * with its offset, size, physical neighbours and free-list links, and the
 * allocated blocks are found from their offset through a hash table of
 * block pointers (Fibonacci hashing of offset / 256, linear probing,
 * backward-shift deletion, at most half full). It is not hashmap.c's map on
 * purpose: that one maps a key to a value, so a free would look the offset
 * up there and then reach the block through a second pointer; storing the
 * block pointers themselves, keyed by the offset each block holds, makes a
 * free one probe, and the arena's profile showed the general map at 23% of
 * an alloc+free pair (about 90 ns -> 55 ns host-side when replaced). Block
 * descriptors come from slabs and are recycled, so the steady state makes no
 * malloc call. Every operation that can need a descriptor or a map slot gets
 * it before changing anything, so a shortage of host memory leaves the heap
 * as it was.
 *
 * Invariants (gm_tlsf_check walks them all): blocks tile every region in
 * offset order with consistent neighbour links; no two neighbours are both
 * free (frees coalesce); every free block is in the list its size maps to
 * and nowhere else, and the bitmaps say exactly which lists are non-empty;
 * every allocated block is in the map under its offset and nothing else is;
 * the byte and block counters match the walk.
 */
#include "tlsf.h"

#include "internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLAB_BLOCKS 256

/* ---- size classes ---- */

static int log2_floor(uint64_t x) {
  return 63 - __builtin_clzll(x);
}

static void mapping(uint64_t units, int *fl, int *sl) {
  if (units < GM_TLSF_SL_COUNT) {
    *fl = 0;
    *sl = (int)units;
    return;
  }
  int f = log2_floor(units);
  *sl = (int)((units >> (f - GM_TLSF_SL_LOG2)) ^ GM_TLSF_SL_COUNT);
  *fl = f - (GM_TLSF_SL_LOG2 - 1);
}

/* The class whose every block is at least `units` long. */
static void mapping_search(uint64_t units, int *fl, int *sl) {
  if (units >= GM_TLSF_SL_COUNT)
    units += ((uint64_t)1 << (log2_floor(units) - GM_TLSF_SL_LOG2)) - 1;
  mapping(units, fl, sl);
}

/* ---- the table of allocated blocks ---- */

static inline size_t slot_of(const gm_tlsf *t, uint64_t offset) {
  return (size_t)(((offset >> GM_TLSF_ALIGN_LOG2) * GM_FIB_MULTIPLIER) >> t->used_shift);
}

static void table_put(gm_tlsf_block **table, size_t cap, int shift, gm_tlsf_block *b) {
  size_t i = (size_t)(((b->offset >> GM_TLSF_ALIGN_LOG2) * GM_FIB_MULTIPLIER) >> shift);
  while (table[i] != NULL)
    i = (i + 1) & (cap - 1);
  table[i] = b;
}

/* Room for one more entry at most half full; false when memory is short. */
static bool table_reserve(gm_tlsf *t) {
  if ((t->blocks_used + 1) * 2 <= t->used_cap) return true;
  size_t cap = t->used_cap ? t->used_cap * 2 : 64;
  int shift = 64 - __builtin_ctzll(cap);
  gm_tlsf_block **n = calloc(cap, sizeof *n);
  if (n == NULL) return false;
  for (size_t i = 0; i < t->used_cap; i++)
    if (t->used[i] != NULL) table_put(n, cap, shift, t->used[i]);
  free(t->used);
  t->used = n;
  t->used_cap = cap;
  t->used_shift = shift;
  return true;
}

static inline size_t table_find(const gm_tlsf *t, uint64_t offset) {
  if (t->used_cap == 0) return SIZE_MAX;
  size_t mask = t->used_cap - 1;
  for (size_t i = slot_of(t, offset);; i = (i + 1) & mask) {
    const gm_tlsf_block *b = t->used[i];
    if (b == NULL) return SIZE_MAX;
    if (b->offset == offset) return i;
  }
}

static void table_remove(gm_tlsf *t, size_t i) {
  size_t mask = t->used_cap - 1, hole = i;
  for (size_t j = (i + 1) & mask; t->used[j] != NULL; j = (j + 1) & mask) {
    size_t home = slot_of(t, t->used[j]->offset);
    bool movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
    if (movable) {
      t->used[hole] = t->used[j];
      hole = j;
    }
  }
  t->used[hole] = NULL;
}

/* ---- free lists ---- */

static inline void list_insert(gm_tlsf *t, gm_tlsf_block *b) {
  int fl, sl;
  mapping(b->size >> GM_TLSF_ALIGN_LOG2, &fl, &sl);
  b->fl = (uint8_t)fl;
  b->sl = (uint8_t)sl;
  gm_tlsf_block *head = t->heads[fl][sl];
  b->prev_free = NULL;
  b->next_free = head;
  if (head != NULL) head->prev_free = b;
  t->heads[fl][sl] = b;
  t->fl_bitmap |= (uint64_t)1 << fl;
  t->sl_bitmap[fl] |= 1u << sl;
  b->free = true;
  t->blocks_free++;
}

static inline void list_remove(gm_tlsf *t, gm_tlsf_block *b) {
  int fl = b->fl, sl = b->sl; /* set by list_insert; the size has not changed since */
  if (b->prev_free != NULL) b->prev_free->next_free = b->next_free;
  if (b->next_free != NULL) b->next_free->prev_free = b->prev_free;
  if (t->heads[fl][sl] == b) {
    t->heads[fl][sl] = b->next_free;
    if (b->next_free == NULL) {
      t->sl_bitmap[fl] &= ~(1u << sl);
      if (t->sl_bitmap[fl] == 0) t->fl_bitmap &= ~((uint64_t)1 << fl);
    }
  }
  b->prev_free = b->next_free = NULL;
  b->free = false;
  t->blocks_free--;
}

/* First non-empty list at class (fl, sl) or above. */
static gm_tlsf_block *find_suitable(const gm_tlsf *t, int fl, int sl) {
  if (fl >= GM_TLSF_FL_COUNT) return NULL;
  uint32_t sl_map = t->sl_bitmap[fl] & (~0u << sl);
  if (sl_map == 0) {
    uint64_t fl_map = fl + 1 < 64 ? t->fl_bitmap & (~(uint64_t)0 << (fl + 1)) : 0;
    if (fl_map == 0) return NULL;
    fl = __builtin_ctzll(fl_map);
    sl_map = t->sl_bitmap[fl];
  }
  return t->heads[fl][__builtin_ctz(sl_map)];
}

static uint64_t align_up(uint64_t x, uint64_t a) {
  return (x + a - 1) & ~(a - 1);
}

static bool fits(const gm_tlsf_block *b, uint64_t size, uint64_t align) {
  uint64_t start = align_up(b->offset, align);
  return start - b->offset <= b->size && b->size - (start - b->offset) >= size;
}

/* ---- descriptors ---- */

static inline bool reserve_spares(gm_tlsf *t, size_t n) {
  if (t->nspare >= n) return true;
  if (!gm_array_make_room((void **)&t->slabs, &t->capslabs, t->nslabs, sizeof *t->slabs, 16))
    return false;
  gm_tlsf_block *slab = malloc(SLAB_BLOCKS * sizeof *slab);
  if (slab == NULL) return false;
  t->slabs[t->nslabs++] = slab;
  for (int i = 0; i < SLAB_BLOCKS; i++) {
    slab[i].next_free = t->spare;
    t->spare = &slab[i];
  }
  t->nspare += SLAB_BLOCKS;
  return true;
}

/* A descriptor from the spares (reserve_spares first); the caller sets
 * every field. */
static inline gm_tlsf_block *take_spare(gm_tlsf *t) {
  gm_tlsf_block *b = t->spare;
  t->spare = b->next_free;
  t->nspare--;
  return b;
}

static inline void give_spare(gm_tlsf *t, gm_tlsf_block *b) {
  b->next_free = t->spare;
  t->spare = b;
  t->nspare++;
}

/* ---- life ---- */

void gm_tlsf_init(gm_tlsf *t) {
  memset(t, 0, sizeof *t);
}

void gm_tlsf_destroy(gm_tlsf *t) {
  for (size_t i = 0; i < t->nslabs; i++)
    free(t->slabs[i]);
  free(t->slabs);
  free(t->regions);
  free(t->used);
  gm_tlsf_init(t);
}

/* ---- splitting and merging ---- */

/* Cut `b` at `at` bytes from its start; the new block after the cut is
 * returned, linked as b's next neighbour, neither free nor in a list. */
static gm_tlsf_block *split(gm_tlsf *t, gm_tlsf_block *b, uint64_t at) {
  gm_tlsf_block *n = take_spare(t);
  n->offset = b->offset + at;
  n->size = b->size - at;
  n->region = b->region;
  n->prev_phys = b;
  n->next_phys = b->next_phys;
  n->prev_free = n->next_free = NULL;
  n->free = false;
  if (b->next_phys != NULL) b->next_phys->prev_phys = n;
  b->next_phys = n;
  b->size = at;
  gm_tlsf_region *r = &t->regions[b->region];
  if (r->last == b) r->last = n;
  return n;
}

/* Absorb `b`'s next neighbour into `b`. */
static void absorb_next(gm_tlsf *t, gm_tlsf_block *b) {
  gm_tlsf_block *n = b->next_phys;
  b->size += n->size;
  b->next_phys = n->next_phys;
  if (n->next_phys != NULL) n->next_phys->prev_phys = b;
  gm_tlsf_region *r = &t->regions[b->region];
  if (r->last == n) r->last = b;
  give_spare(t, n);
}

/* Merge a block that just became free with its free neighbours and put the
 * result in its list. */
static void coalesce_and_insert(gm_tlsf *t, gm_tlsf_block *b) {
  if (b->next_phys != NULL && b->next_phys->free) {
    list_remove(t, b->next_phys);
    absorb_next(t, b);
  }
  if (b->prev_phys != NULL && b->prev_phys->free) {
    gm_tlsf_block *p = b->prev_phys;
    list_remove(t, p);
    absorb_next(t, p);
    b = p;
  }
  list_insert(t, b);
}

/* ---- regions ---- */

/* Set the region index of every block from `b` on to `i`. */
static void relabel(gm_tlsf_block *b, uint32_t i) {
  for (; b != NULL; b = b->next_phys)
    b->region = i;
}

/* Remove region `i`, emptied by the caller: the last region takes its
 * place (its blocks are relabelled). */
static void drop_region(gm_tlsf *t, size_t i) {
  size_t last = t->nregions - 1;
  if (i != last) {
    t->regions[i] = t->regions[last];
    relabel(t->regions[i].first, (uint32_t)i);
  }
  t->nregions--;
}

/* If a region starts where region `i` ends, append its blocks to region
 * `i` and drop it (the blocks at the seam are not coalesced here). */
static void join_next_region(gm_tlsf *t, size_t i) {
  gm_tlsf_region *r = &t->regions[i];
  uint64_t end = r->offset + r->size;
  for (size_t j = 0; j < t->nregions; j++) {
    gm_tlsf_region *n = &t->regions[j];
    if (j == i || n->offset != end) continue;
    relabel(n->first, (uint32_t)i);
    r->last->next_phys = n->first;
    n->first->prev_phys = r->last;
    r->last = n->last;
    r->size += n->size;
    drop_region(t, j);
    return;
  }
}

/* ---- adding memory ---- */

bool gm_tlsf_add(gm_tlsf *t, uint64_t offset, uint64_t size) {
  if (size == 0 || offset % GM_TLSF_ALIGN != 0 || size % GM_TLSF_ALIGN != 0) return false;
  if (!reserve_spares(t, 1)) return false;
  gm_tlsf_region *r = NULL;
  for (size_t i = t->nregions; i-- > 0;) {
    if (t->regions[i].offset + t->regions[i].size == offset) {
      r = &t->regions[i];
      break;
    }
  }
  if (r == NULL) {
    if (!gm_array_make_room((void **)&t->regions, &t->capregions, t->nregions, sizeof *t->regions,
                            8))
      return false;
    r = &t->regions[t->nregions++];
    *r = (gm_tlsf_region){offset, 0, NULL, NULL};
  }
  gm_tlsf_block *b = take_spare(t);
  b->offset = offset;
  b->size = size;
  b->region = (uint32_t)(r - t->regions);
  b->next_phys = b->prev_free = b->next_free = NULL;
  b->free = false;
  b->prev_phys = r->last;
  if (r->last != NULL) r->last->next_phys = b;
  if (r->first == NULL) r->first = b;
  r->last = b;
  r->size += size;
  t->bytes_total += size;
  join_next_region(t, b->region);
  coalesce_and_insert(t, b);
  return true;
}

/* ---- allocation ---- */

/* The smallest free block that fits (the lowest offset among equals), or
 * NULL: from the request's own class up, skipping empty lists through the
 * bitmaps; the first class holding a fitting block holds the best one, as
 * every block of a higher class is larger. A list is looked at for at most
 * BEST_FIT_LOOK blocks once one fits (the best of those), so that the
 * allocation path stays bounded however many free blocks share a class. */
#define BEST_FIT_LOOK 64
static gm_tlsf_block *best_fit(gm_tlsf *t, uint64_t size, uint64_t align) {
  int fl, sl;
  mapping(size >> GM_TLSF_ALIGN_LOG2, &fl, &sl);
  for (; fl < GM_TLSF_FL_COUNT; fl++, sl = 0) {
    uint32_t lists = t->sl_bitmap[fl] & (~0u << sl);
    for (; lists != 0; lists &= lists - 1) {
      gm_tlsf_block *best = NULL;
      unsigned looked = 0;
      for (gm_tlsf_block *b = t->heads[fl][__builtin_ctz(lists)];
           b != NULL && (best == NULL || looked < BEST_FIT_LOOK); b = b->next_free, looked++) {
        if (fits(b, size, align) && (best == NULL || b->size < best->size ||
                                     (b->size == best->size && b->offset < best->offset)))
          best = b;
      }
      if (best != NULL) return best;
    }
  }
  return NULL;
}

/* A free block that fits, or NULL: for large requests the best fit; else
 * the good-fit class first, then the request's own class block by block. */
static gm_tlsf_block *search(gm_tlsf *t, uint64_t size, uint64_t align) {
  if (size >= GM_TLSF_BEST_FIT_MIN) return best_fit(t, size, align);
  uint64_t need = size + (align > GM_TLSF_ALIGN ? align - GM_TLSF_ALIGN : 0);
  int rf, rs;
  mapping_search(need >> GM_TLSF_ALIGN_LOG2, &rf, &rs);
  if (rf >= GM_TLSF_FL_COUNT) return NULL;
  gm_tlsf_block *b = find_suitable(t, rf, rs);
  if (b != NULL) return b;
  /* Classes below the rounded one (which find_suitable covered with all
   * above it) may hold a block that fits: look at each one. */
  int fl, sl;
  mapping(size >> GM_TLSF_ALIGN_LOG2, &fl, &sl);
  while (fl < rf || (fl == rf && sl < rs)) {
    for (b = t->heads[fl][sl]; b != NULL; b = b->next_free) {
      if (fits(b, size, align)) return b;
    }
    if (++sl == GM_TLSF_SL_COUNT) {
      sl = 0;
      fl++;
    }
  }
  return NULL;
}

gm_tlsf_block *gm_tlsf_alloc(gm_tlsf *t, uint64_t size, uint64_t align, bool *no_host_memory) {
  *no_host_memory = false;
  if (size == 0 || size % GM_TLSF_ALIGN != 0 || align < GM_TLSF_ALIGN || (align & (align - 1)))
    return NULL;
  if (size > UINT64_MAX / 4 || align > UINT64_MAX / 4) return NULL;
  gm_tlsf_block *b = search(t, size, align);
  if (b == NULL) return NULL;
  /* Everything that can fail, before anything changes. */
  if (!reserve_spares(t, 2) || !table_reserve(t)) {
    *no_host_memory = true;
    return NULL;
  }
  list_remove(t, b);
  uint64_t gap = align_up(b->offset, align) - b->offset;
  if (gap > 0) { /* the front stays free */
    gm_tlsf_block *front = b;
    b = split(t, front, gap);
    list_insert(t, front);
  }
  if (b->size - size >= GM_TLSF_ALIGN) list_insert(t, split(t, b, size));
  table_put(t->used, t->used_cap, t->used_shift, b);
  t->bytes_used += b->size;
  t->blocks_used++;
  return b;
}

gm_tlsf_block *gm_tlsf_find(const gm_tlsf *t, uint64_t offset) {
  size_t i = table_find(t, offset);
  return i == SIZE_MAX ? NULL : t->used[i];
}

bool gm_tlsf_free_at(gm_tlsf *t, uint64_t offset) {
  size_t i = table_find(t, offset);
  if (i == SIZE_MAX) return false;
  gm_tlsf_block *b = t->used[i];
  table_remove(t, i);
  t->bytes_used -= b->size;
  t->blocks_used--;
  coalesce_and_insert(t, b);
  return true;
}

void gm_tlsf_free(gm_tlsf *t, gm_tlsf_block *b) {
  gm_tlsf_free_at(t, b->offset);
}

/* ---- queries ---- */

gm_tlsf_where gm_tlsf_classify(const gm_tlsf *t, uint64_t offset) {
  for (size_t i = 0; i < t->nregions; i++) {
    const gm_tlsf_region *r = &t->regions[i];
    if (offset < r->offset || offset - r->offset >= r->size) continue;
    for (const gm_tlsf_block *b = r->first; b != NULL; b = b->next_phys) {
      if (offset - b->offset >= b->size) continue;
      if (b->free) return GM_TLSF_FREE;
      return offset == b->offset ? GM_TLSF_USED_START : GM_TLSF_USED_INSIDE;
    }
  }
  return GM_TLSF_OUTSIDE;
}

bool gm_tlsf_remove_range(gm_tlsf *t, uint64_t offset, uint64_t size) {
  if (size == 0 || offset % GM_TLSF_ALIGN != 0 || size % GM_TLSF_ALIGN != 0 ||
      offset > UINT64_MAX - size)
    return false;
  size_t i = 0;
  while (i < t->nregions &&
         (offset < t->regions[i].offset || offset - t->regions[i].offset >= t->regions[i].size))
    i++;
  if (i == t->nregions) return false;
  gm_tlsf_block *b = t->regions[i].first;
  while (b != NULL && offset - b->offset >= b->size)
    b = b->next_phys;
  uint64_t end = offset + size;
  if (b == NULL || !b->free || end > b->offset + b->size) return false;
  bool front = offset > b->offset, back = end < b->offset + b->size;
  bool before = front || b->prev_phys != NULL, after = back || b->next_phys != NULL;
  /* Everything that can fail, before anything changes: a descriptor for the
   * back part, a region entry for the part after the hole. */
  if (!reserve_spares(t, 1)) return false;
  if (before && after &&
      !gm_array_make_room((void **)&t->regions, &t->capregions, t->nregions, sizeof *t->regions, 8))
    return false;
  gm_tlsf_region *r = &t->regions[i];
  uint64_t r_end = r->offset + r->size;
  list_remove(t, b);
  t->bytes_total -= size;
  gm_tlsf_block *first_after = b->next_phys, *last_after = r->last, *nb = NULL;
  if (back) { /* [end, b's end) stays free, the first block after the hole */
    nb = take_spare(t);
    nb->offset = end;
    nb->size = b->offset + b->size - end;
    nb->region = (uint32_t)i;
    nb->next_phys = b->next_phys;
    nb->prev_free = nb->next_free = NULL;
    if (b->next_phys != NULL) b->next_phys->prev_phys = nb;
    if (last_after == b) last_after = nb;
    first_after = nb;
  }
  gm_tlsf_block *last_before = front ? b : b->prev_phys;
  if (last_before != NULL) last_before->next_phys = NULL;
  if (first_after != NULL) first_after->prev_phys = NULL;
  if (front)
    b->size = offset - b->offset;
  else
    give_spare(t, b);
  if (before) {
    r->last = last_before;
    r->size = offset - r->offset;
  }
  if (after && before) { /* the part after the hole becomes a region of its own */
    size_t j = t->nregions++;
    t->regions[j] = (gm_tlsf_region){end, r_end - end, first_after, last_after};
    relabel(first_after, (uint32_t)j);
  } else if (after) {
    *r = (gm_tlsf_region){end, r_end - end, first_after, last_after};
  }
  if (front) list_insert(t, b);
  if (back) list_insert(t, nb);
  if (!before && !after) drop_region(t, i);
  return true;
}

/* The whole `unit`-aligned units inside free block `b`: their count, and
 * the offset of the first in *at. */
static uint64_t whole_units(const gm_tlsf_block *b, uint64_t unit, uint64_t *at) {
  uint64_t first = (b->offset + unit - 1) / unit * unit, end = (b->offset + b->size) / unit * unit;
  *at = first;
  return end > first ? (end - first) / unit : 0;
}

uint64_t gm_tlsf_free_units(const gm_tlsf *t, uint64_t unit, uint64_t *offset) {
  uint64_t best = 0;
  *offset = 0;
  if (unit == 0 || unit % GM_TLSF_ALIGN != 0) return 0;
  /* Classes from the largest down; a class whose blocks are all shorter
   * than best + 1 units cannot hold a better one, nor can any below it. */
  for (int fl = GM_TLSF_FL_COUNT - 1; fl >= 0; fl--) {
    if (!((t->fl_bitmap >> fl) & 1)) continue;
    for (int sl = GM_TLSF_SL_COUNT - 1; sl >= 0; sl--) {
      uint64_t upper =
          fl == 0 ? (uint64_t)(sl + 1) : (uint64_t)(GM_TLSF_SL_COUNT + sl + 1) << (fl - 1);
      if ((upper * GM_TLSF_ALIGN - GM_TLSF_ALIGN) / unit <= best) return best * unit;
      for (const gm_tlsf_block *b = t->heads[fl][sl]; b != NULL; b = b->next_free) {
        uint64_t at = 0, n = whole_units(b, unit, &at);
        if (n > best) {
          best = n;
          *offset = at;
        }
      }
    }
  }
  return best * unit;
}

uint64_t gm_tlsf_largest_free(const gm_tlsf *t) {
  if (t->fl_bitmap == 0) return 0;
  int fl = log2_floor(t->fl_bitmap);
  int sl = 31 - __builtin_clz(t->sl_bitmap[fl]);
  uint64_t best = 0;
  for (const gm_tlsf_block *b = t->heads[fl][sl]; b != NULL; b = b->next_free)
    if (b->size > best) best = b->size;
  return best;
}

void gm_tlsf_walk(const gm_tlsf *t, void (*fn)(const gm_tlsf_block *b, void *user), void *user) {
  for (size_t i = 0; i < t->nregions; i++)
    for (const gm_tlsf_block *b = t->regions[i].first; b != NULL; b = b->next_phys)
      fn(b, user);
}

/* ---- the checker ---- */

#define VIOLATION(...)               \
  do {                               \
    snprintf(why, len, __VA_ARGS__); \
    return false;                    \
  } while (0)

static bool in_list(const gm_tlsf *t, const gm_tlsf_block *b, int fl, int sl) {
  for (const gm_tlsf_block *x = t->heads[fl][sl]; x != NULL; x = x->next_free)
    if (x == b) return true;
  return false;
}

bool gm_tlsf_check(const gm_tlsf *t, char *why, size_t len) {
  uint64_t total = 0, used = 0;
  size_t nused = 0, nfree = 0;
  for (size_t i = 0; i < t->nregions; i++) {
    const gm_tlsf_region *r = &t->regions[i];
    uint64_t at = r->offset;
    const gm_tlsf_block *prev = NULL;
    if (r->first == NULL || r->first->prev_phys != NULL)
      VIOLATION("region %zu at offset %" PRIu64 " has no proper first block", i, r->offset);
    for (const gm_tlsf_block *b = r->first; b != NULL; prev = b, b = b->next_phys) {
      if (b->offset != at)
        VIOLATION("block at offset %" PRIu64 " should start at %" PRIu64 " (a gap or an overlap)",
                  b->offset, at);
      if (b->size == 0 || b->size % GM_TLSF_ALIGN != 0)
        VIOLATION("block at offset %" PRIu64 " has size %" PRIu64, b->offset, b->size);
      if (b->prev_phys != prev)
        VIOLATION("block at offset %" PRIu64 " has a wrong previous neighbour", b->offset);
      if (b->region != i)
        VIOLATION("block at offset %" PRIu64 " names region %u, is in %zu", b->offset, b->region,
                  i);
      int fl, sl;
      mapping(b->size >> GM_TLSF_ALIGN_LOG2, &fl, &sl);
      if (b->free) {
        nfree++;
        if (prev != NULL && prev->free)
          VIOLATION("free blocks at offsets %" PRIu64 " and %" PRIu64 " were not coalesced",
                    prev->offset, b->offset);
        if (!in_list(t, b, fl, sl))
          VIOLATION("free block at offset %" PRIu64 " (%" PRIu64 " bytes) is not in list (%d, %d)",
                    b->offset, b->size, fl, sl);
        if (gm_tlsf_find(t, b->offset) != NULL)
          VIOLATION("free block at offset %" PRIu64 " is in the allocated map", b->offset);
      } else {
        nused++;
        used += b->size;
        if (gm_tlsf_find(t, b->offset) != b)
          VIOLATION("allocated block at offset %" PRIu64 " is not in the map", b->offset);
      }
      at += b->size;
      if (b->next_phys == NULL && b != r->last)
        VIOLATION("region %zu's last block is not the block at offset %" PRIu64, i, b->offset);
    }
    if (at != r->offset + r->size)
      VIOLATION("blocks of region %zu end at %" PRIu64 ", the region at %" PRIu64, i, at,
                r->offset + r->size);
    total += r->size;
  }
  size_t listed = 0;
  for (int fl = 0; fl < GM_TLSF_FL_COUNT; fl++) {
    if (((t->fl_bitmap >> fl) & 1) != (t->sl_bitmap[fl] != 0))
      VIOLATION("first-level bit %d disagrees with its second-level bitmap", fl);
    for (int sl = 0; sl < GM_TLSF_SL_COUNT; sl++) {
      const gm_tlsf_block *h = t->heads[fl][sl];
      if (((t->sl_bitmap[fl] >> sl) & 1) != (h != NULL))
        VIOLATION("bitmap bit (%d, %d) disagrees with its list", fl, sl);
      const gm_tlsf_block *prev = NULL;
      for (const gm_tlsf_block *b = h; b != NULL; prev = b, b = b->next_free) {
        int f, s;
        mapping(b->size >> GM_TLSF_ALIGN_LOG2, &f, &s);
        if (!b->free)
          VIOLATION("allocated block at offset %" PRIu64 " is in a free list", b->offset);
        if (f != fl || s != sl)
          VIOLATION("block of %" PRIu64 " bytes is in list (%d, %d), belongs in (%d, %d)", b->size,
                    fl, sl, f, s);
        if (b->prev_free != prev)
          VIOLATION("free list (%d, %d) has a broken back link at offset %" PRIu64, fl, sl,
                    b->offset);
        if (++listed > nfree) VIOLATION("the free lists hold more blocks than the regions");
      }
    }
  }
  if (listed != nfree) VIOLATION("%zu free blocks in regions, %zu in lists", nfree, listed);
  if (total != t->bytes_total)
    VIOLATION("regions hold %" PRIu64 " bytes, the counter says %" PRIu64, total, t->bytes_total);
  if (used != t->bytes_used)
    VIOLATION("allocated blocks hold %" PRIu64 " bytes, the counter says %" PRIu64, used,
              t->bytes_used);
  size_t in_table = 0;
  for (size_t i = 0; i < t->used_cap; i++)
    in_table += t->used[i] != NULL;
  if (nused != t->blocks_used || nused != in_table)
    VIOLATION("%zu allocated blocks, counter %zu, table %zu", nused, t->blocks_used, in_table);
  if (nfree != t->blocks_free) VIOLATION("%zu free blocks, counter %zu", nfree, t->blocks_free);
  return true;
}
