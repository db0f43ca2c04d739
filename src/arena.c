/* arena.c: the multi-GPU peer-mapped arena (gpumem/arena.h).
 *
 * Physical memory not tied to an address (issue 16). The arena reserves
 * one virtual range of VA_FACTOR (4) x max_size bytes at creation; max_size
 * bounds the physical memory it holds, the range is 4x larger because
 * address space is cheap and memory that moves leaves unmapped holes
 * behind. Physical memory comes in pages: one physical allocation of one
 * granule (LOCAL) or one stripe (INTERLEAVE), always mapped whole at
 * offset 0 of the allocation (cuMemMap's offset "currently must be zero",
 * cuda.h; the host backend refuses it too), so a page can be unmapped from
 * one place and mapped at any other page slot. A table with one handle per
 * page slot says what is mapped where (0: nothing); a table with one entry
 * per granule (a power of two, so the lookup is a shift) says which heap
 * (shard) owns it. INTERLEAVE: slot k holds memory of member k % members,
 * so any address's device follows from its offset, and a page of member m
 * only ever goes to a slot of member m. Each member has a pool of pages
 * created and mapped nowhere. Every page is mapped with read-write access
 * for every member, which is what lets a kernel on any member use any block
 * without peer enabling.
 *
 * A growth (the slow path, under the growth mutex, when no shard of the
 * device has a fitting block) needs `need` contiguous bytes for shard s.
 * Where: the window (best_window) with the fewest pages to map, among the
 * stretches of the range made only of s's free blocks and unmapped slots
 * (GMLake's stitching, done by moving pages rather than by mapping them
 * twice): a free block and the hole after it (a growing KV cache grows
 * where it is), holes on both sides of a free block, the free tail at
 * `top` and the unmapped range beyond it (widened there to a multiple of
 * the chunk, so that small requests do not grow one page at a time, when
 * the pool or the device can give the padding: on a full device padding
 * that had to be moved could fail a request free pages can serve), or a
 * hole alone. Its free blocks leave the heap while pages are found (so
 * that reclaim leaves them); then each unmapped slot of the window gets a
 * page, in this order: (a) the member's pool; (b) reclaim: whole free
 * pages anywhere in the heaps that can serve s (its member's shards; every
 * shard for INTERLEAVE), s's own first, the longest free run first
 * (gm_tlsf_free_units, found from the free lists with no per-granule
 * counters on the alloc/free paths), each run cut out of its heap
 * (gm_tlsf_remove_range) and unmapped with ONE call however many pages it
 * holds (unmap_run: a range of several whole mappings, as cuda-samples'
 * vectorAddMMAP unmaps its stripes; the conformance suite checks the
 * driver agrees), then pooled; (c) new pages from the device, while the
 * arena holds less than max_size. Pure reclaim-first keeps reserved
 * memory at what the blocks need, but a workload that needs new
 * contiguous memory again and again (each training step, each token of a
 * growing KV cache, random sizes under a cap) then pays an unmap (20 us
 * modelled) per moved run and a map (1.1 us) per page at every growth. So
 * (c) comes before (b) while the memory held stays within slack_percent
 * (5% by default) of the most the blocks have used, or when moves have
 * spent their budget (prefer_create). That is the default remap setting,
 * BALANCED; MEMORY has no budget (moves whenever creating would pass the
 * slack: the least memory, at any number of driver calls), CALLS no slack
 * (creates while max_size and the device allow). Each page is then mapped
 * at its slot, ONE cuMemSetAccess covers the span of the new pages for every member (cuda.h
 * allows a range over several mappings; the free pages between them are
 * mapped already; the host backend accepts exactly that), and the whole
 * window joins s's heap as one free block (gm_tlsf_add joins it to free
 * neighbours on both sides). Large requests (1 MiB and up) take the
 * smallest free block that fits (tlsf.c), so the big holes stay whole.
 *
 * Measured (host backend, gpumem-bench replay, peak reserved / peak live,
 * modelled driver us/op in the steady state): the earlier growth (extend
 * at the top, a free block followed by a hole, or a hole; good fit; one
 * unmap per page) against this one: generation 1.34/1.31/1.30 ->
 * 1.17/1.15/1.20, variable-length batches 1.04/1.14/1.05 (0.24, 0,
 * 0.25 us/op) -> 1.035/1.033/1.024 (0, 0.01, 0), training, mixture and
 * resnet50_train unchanged (1.005-1.017). Generation stays above 1.05:
 * a KV block is freed only after its larger copy exists, so at 5% slack
 * nearly every token needs a new window and moves |difference of two
 * requests' blocks| of pages; with unlimited moves it reaches 1.05 at
 * 0.8-1.2 us/op modelled, past the 0.2 us/op that moves may cost. Why no
 * placement avoids that: continuous batching visits the requests in one
 * order every step, so the free space a request's new block can use is
 * mostly the block the previous request just left; with requests of
 * different sizes, the blocks rotate through the slots, and a rotation
 * that never needs a new window wants every slot (n + 1 of them) as large
 * as the largest block, far over 5%. So the windows keep coming (about
 * 160-250 per replay of 9400 allocations with unlimited moves, even when
 * each takes every free page it can), and their access calls alone (30 us
 * each) cost 0.26-0.4 us/op. Which side of that trade a job wants is the
 * user's to say: remap MEMORY (gpumem-arena-lean in gpumem-bench) is the
 * unlimited-moves arena.
 * Measured, not only argued: free unmaps (what mapping pages twice, as
 * GMLake does, could save at best) still leave 0.34-0.47 us/op, and a
 * budget of 0.2 us/op counted in modelled time gives r/l 1.13-1.19. The
 * same growth on blocks of one size (the decode family: a K and a V per
 * layer, as Hugging Face's dynamic cache) stays within 1.05 at 0.01 us/op.
 *
 * Rollback. A failed unmap during reclaim puts the page back into its heap
 * as free memory; a failed map or access call unmaps what this growth
 * mapped into the pools; pages this growth created are released again;
 * pages reclaimed stay pooled (memory of the arena, counted in
 * bytes_reserved and bytes_pooled, used by the next growth). So a failure
 * at any driver step leaves the arena consistent, nothing lost, and the
 * same request tried again succeeds when the failure was transient (the
 * sweep checks that at every call). The device out of memory on create is
 * OUT_OF_MEMORY only after the pool and every free page have been used:
 * the special case "give back the newest free growth" of the earlier
 * layout is subsumed.
 *
 * What it costs. LOCAL: a growth of p pages is p creates + p maps + 1 set
 * access when nothing is pooled or free (the earlier layout: 1 + 1 + 1);
 * destroy p unmaps + p releases. INTERLEAVE was already one allocation per
 * stripe. Pages are paid once each; what moves costs one unmap per run of
 * neighbouring free pages and a map per page. Finding the window looks
 * at s's free blocks (from its free lists, sorted) and the slot table up to
 * `top`, O(free blocks x log + top / page) per growth; the alloc and free
 * paths are unchanged but for best fit from 1 MiB (tlsf.c, at most 64
 * blocks looked at per list). Destroy unmaps every page into the pools (newest slot first,
 * stopping at a failure), releases the pools, then frees the range; what a
 * failure left stays recorded and a second destroy goes on from there.
 *
 * Sub-allocation. Each shard is a TLSF heap (tlsf.c) over offsets of the
 * range, with a spin lock. LOCAL arenas have `shards` heaps per member,
 * INTERLEAVE arenas `shards` in all. A thread gets a slot number the first
 * time it needs one (gm_thread_slot) and uses shard slot % shards (of the
 * named device), so up to `shards` threads allocate without touching each
 * other's cache lines. A shard that has no fitting block first tries the
 * other shards of the same device (taking the parked block of each back into
 * its heap first), so that free memory a thread left in its shard serves
 * another thread's request instead of being stranded while the arena maps
 * more; only when none fits does it grow by at least a chunk (only what is
 * missing when its last free block ends at `top`, since the growth then
 * extends that block). Free finds the shard from the unit table without a
 * lock, then the block from the shard's map. A reclaim changes the unit
 * table only for granules in free memory, which no valid free touches.
 *
 * Locks: the growth mutex comes first, a shard's lock after it, never the
 * other way round: a thread without the mutex holds at most one shard
 * lock and takes no other lock while holding it. The fast paths (alloc
 * from the thread's shard or a neighbour, free, stats) hold one shard lock
 * at a time. The slow path (alloc_or_grow) lets go of every shard lock,
 * takes the mutex, then the shard it grows, and looks at that shard's heap
 * again before growing; reclaim then locks the other shards one at a time
 * while holding it. Two shard locks at once is safe only for the mutex's
 * holder: no one else waits for a second lock. gm_arena_check() takes the
 * mutex, then every shard in ascending order. A growth's driver calls are
 * made with the mutex and the growing shard's lock held.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "abi.h"
#include "arena.h"
#include "gpumem/device.h"
#include "log.h"
#include "shareable.h"
#include "spinlock.h"
#include "tlsf.h"
#include "trace.h"

#define ARENA_MAGIC   0x67617265u /* "gare" */
#define ARENA_DYING   0x67617264u /* "gard": a destroy failed part way; only destroy is allowed */
#define DEFAULT_CHUNK ((size_t)8 << 20)
#define MAX_SHARDS    64
#define VA_FACTOR     4  /* range reserved per byte of physical memory allowed */
#define SLACK_PCT     5  /* default slack_percent: memory over use a growth may create */
#define MOVE_OPS      64 /* allocations per moved page that moves may cost (prefer_create) */

typedef struct shard {
  gm_spinlock lock; /* on a cache line of its own */
  int member;       /* index in members (LOCAL), -1 (INTERLEAVE) */
  gm_tlsf heap;
  uint64_t allocs, frees; /* under the lock */
  size_t peak_used;       /* the most heap.bytes_used has been (under the lock) */
  gm_tlsf_block *parked;  /* the last block freed here, kept whole (see park()) */
} shard;

struct gpumem_arena {
  uint32_t magic;
  gpumem_placement placement;
  size_t nmembers;
  int members[GPUMEM_MAX_DEVICES];
  int8_t member_of[GPUMEM_MAX_DEVICES]; /* device ordinal -> member index, -1 */
  gpumem_access_desc access[GPUMEM_MAX_DEVICES];
  size_t granularity, chunk, stripe, max_size;
  size_t va_size; /* the range reserved: VA_FACTOR x max_size */
  unsigned handle_types;
  uintptr_t base;
  unsigned shards_per; /* per member (LOCAL) or in all (INTERLEAVE) */
  unsigned shard_mask; /* shards_per - 1 when a power of two, else 0 (use %) */
  unsigned nshards;
  shard *shards;
  _Atomic uint16_t *unit_owner; /* per granule: shard index + 1, 0 while unmapped */
  size_t nunits;
  int unit_shift; /* log2(granularity): granule of an offset */
  pthread_mutex_t grow_lock;
  size_t top;           /* the end of the highest page ever mapped (grow_lock) */
  size_t page;          /* bytes per page: the granularity (LOCAL), the stripe (INTERLEAVE) */
  gpumem_phys_t *pages; /* per page slot: the allocation mapped there, 0 if none (grow_lock) */
  size_t nslots;
  gpumem_phys_t *pool[GPUMEM_MAX_DEVICES]; /* per member: created pages mapped nowhere */
  size_t npool[GPUMEM_MAX_DEVICES];
  size_t member_mapped[GPUMEM_MAX_DEVICES];  /* bytes of the member's pages mapped */
  size_t member_created[GPUMEM_MAX_DEVICES]; /* mapped + pooled */
  size_t created, peak_created;              /* over all members */
  size_t peak_used;         /* the most the heaps used, seen by growths (prefer_create) */
  gpumem_arena_remap remap; /* when free pages move rather than new ones are made */
  unsigned slack_pct;       /* memory over peak_used that growths may create (percent) */
  uint64_t growths, pages_created, pages_released, pages_remapped;
  _Atomic uint64_t failed;
};

/* ---- shard locks ---- */

static inline void shard_lock(shard *s) {
  gm_spin_lock(&s->lock);
}

static inline void shard_unlock(shard *s) {
  gm_spin_unlock(&s->lock);
}

static gpumem_status check_arena(const gpumem_arena_t *a) {
  if (a == NULL) return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "arena is NULL");
  if (a->magic == ARENA_DYING)
    return gm_error(GPUMEM_ERR_INVALID_ARGUMENT,
                    "arena %p is half destroyed (a destroy failed): call gpumem_arena_destroy "
                    "again",
                    (const void *)a);
  if (a->magic != ARENA_MAGIC)
    return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "%p is not a live gpumem arena", (const void *)a);
  return GPUMEM_OK;
}

/* The member index of `device` (-1 for GPUMEM_ARENA_ANY_DEVICE on an
 * interleaved arena), or INVALID_DEVICE. */
static gpumem_status member_for(const gpumem_arena_t *a, int device, int *member) {
  *member = device >= 0 && device < GPUMEM_MAX_DEVICES ? a->member_of[device] : -1;
  bool local = a->placement == GPUMEM_PLACE_LOCAL;
  if (*member < 0 && !(device == GPUMEM_ARENA_ANY_DEVICE && !local)) {
    return gm_error(GPUMEM_ERR_INVALID_DEVICE, "device %d is not a member of the arena%s", device,
                    local ? " (a LOCAL arena needs the device the memory goes on)" : "");
  }
  return GPUMEM_OK;
}

gpumem_status gm_arena_check_member(const gpumem_arena_t *a, int device) {
  gpumem_status st = check_arena(a);
  int member = -1;
  return st != GPUMEM_OK ? st : member_for(a, device, &member);
}

/* ---- creation ---- */

/* Members, their VMM support, the largest granularity, and every pair. */
static gpumem_status set_members(gpumem_arena_t *a, const gpumem_arena_config *c) {
  static const int device_zero = 0;
  const int *devs = c->devices ? c->devices : &device_zero;
  size_t n = c->devices ? c->device_count : 1;
  if (n == 0 || n > GPUMEM_MAX_DEVICES) {
    return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "an arena needs 1 to %d member devices, not %zu",
                    GPUMEM_MAX_DEVICES, n);
  }
  int count = 0;
  gpumem_status st = gm_be_device_count(&count);
  if (st != GPUMEM_OK) return st;
  memset(a->member_of, -1, sizeof a->member_of);
  for (size_t i = 0; i < n; i++) {
    int d = devs[i];
    if (d < 0 || d >= count) {
      return gm_error(GPUMEM_ERR_INVALID_DEVICE, "member device %d does not exist (%d visible)", d,
                      count);
    }
    if (a->member_of[d] >= 0)
      return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "device %d is listed twice", d);
    gm_device_props props;
    if ((st = gm_be_device_props(d, &props)) != GPUMEM_OK) return st;
    if (!props.vmm) {
      return gm_error(GPUMEM_ERR_NOT_SUPPORTED,
                      "device %d (%s) does not support virtual memory management", d, props.name);
    }
    gpumem_phys_props pp = {d, GPUMEM_HANDLE_NONE, false};
    size_t g = 0;
    if ((st = gm_be_granularity(&pp, false, &g)) != GPUMEM_OK) return st;
    if (g > a->granularity) a->granularity = g;
    a->member_of[d] = (int8_t)i;
    a->members[i] = d;
    a->access[i] = (gpumem_access_desc){d, GPUMEM_ACCESS_READWRITE};
  }
  a->nmembers = n;
  for (size_t i = 0; i < n; i++) {
    for (size_t j = 0; j < n; j++) {
      if (i == j) continue;
      gpumem_peer_info p;
      if ((st = gm_peer_info(a->members[i], a->members[j], &p)) != GPUMEM_OK) return st;
      if (!p.can_map) {
        return gm_error(GPUMEM_ERR_PEER_UNSUPPORTED,
                        "devices %d and %d cannot share an arena: device %d cannot map memory of "
                        "device %d: %s",
                        a->members[i], a->members[j], a->members[i], a->members[j], p.why);
      }
    }
  }
  return GPUMEM_OK;
}

/* The CPUs online, at most 16, rounded down to a power of two (a mask
 * then picks the shard). */
static unsigned default_shards(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  unsigned s = 1;
  while (s * 2 <= (unsigned)(n > 16 ? 16 : n < 1 ? 1 : n))
    s *= 2;
  return s;
}

/* Sizes and shards from the config. */
static gpumem_status set_geometry(gpumem_arena_t *a, const gpumem_arena_config *c) {
  gpumem_status st = GPUMEM_OK;
  size_t g = a->granularity, n = a->nmembers;
  GM_REQUIRE(c->placement == GPUMEM_PLACE_LOCAL || c->placement == GPUMEM_PLACE_INTERLEAVE,
             GPUMEM_ERR_INVALID_ARGUMENT, "placement %d is not LOCAL or INTERLEAVE",
             (int)c->placement);
  a->placement = c->placement;
  GM_REQUIRE(c->remap == GPUMEM_ARENA_REMAP_BALANCED || c->remap == GPUMEM_ARENA_REMAP_MEMORY ||
                 c->remap == GPUMEM_ARENA_REMAP_CALLS,
             GPUMEM_ERR_INVALID_ARGUMENT, "remap %d is not BALANCED, MEMORY or CALLS",
             (int)c->remap);
  GM_REQUIRE(c->slack_percent <= 100, GPUMEM_ERR_INVALID_ARGUMENT, "slack_percent %u is over 100",
             c->slack_percent);
  a->remap = c->remap;
  a->slack_pct = c->slack_percent ? c->slack_percent : SLACK_PCT;
  GM_TRY(gm_shareable_types(c->handle_type, &a->handle_types));
  GM_REQUIRE(c->shards <= MAX_SHARDS, GPUMEM_ERR_INVALID_ARGUMENT,
             "%u shards asked for; at most %d", c->shards, MAX_SHARDS);
  a->shards_per = c->shards ? c->shards : default_shards();
  a->shard_mask = gm_is_pow2(a->shards_per) ? a->shards_per - 1 : 0;
  a->nshards = a->placement == GPUMEM_PLACE_LOCAL ? a->shards_per * (unsigned)n : a->shards_per;
  size_t unit = g; /* what the chunk must be a multiple of */
  if (a->placement == GPUMEM_PLACE_INTERLEAVE) {
    a->stripe = c->stripe_size ? c->stripe_size : g;
    GM_REQUIRE(a->stripe % g == 0 && a->stripe <= SIZE_MAX / 2 / n, GPUMEM_ERR_INVALID_ARGUMENT,
               "stripe size %zu is not a multiple of the granularity %zu", c->stripe_size, g);
    unit = a->stripe * n;
  } else {
    GM_REQUIRE(c->stripe_size == 0, GPUMEM_ERR_INVALID_ARGUMENT,
               "stripe size %zu given for a LOCAL arena (stripes are for INTERLEAVE)",
               c->stripe_size);
  }
  if (c->chunk_size) {
    a->chunk = c->chunk_size;
    GM_REQUIRE(a->chunk % unit == 0, GPUMEM_ERR_INVALID_ARGUMENT,
               "chunk size %zu is not a multiple of %zu (%s)", c->chunk_size, unit,
               a->placement == GPUMEM_PLACE_LOCAL ? "the granularity" : "stripe size x members");
  } else {
    GM_REQUIRE(gm_round_up(DEFAULT_CHUNK, unit, &a->chunk), GPUMEM_ERR_INVALID_ARGUMENT,
               "stripe too large");
  }
  size_t max = c->max_size;
  if (max == 0) { /* the members' memory, summed without wrapping */
    bool wraps = false;
    for (size_t i = 0; i < n; i++) {
      size_t free_b = 0, total = 0;
      GM_TRY(gm_be_mem_info(a->members[i], &free_b, &total));
      wraps = wraps || gm_add_overflows(max, total, &max);
    }
    GM_REQUIRE(!wraps && max <= SIZE_MAX / 4, GPUMEM_ERR_INVALID_ARGUMENT,
               "the default maximum size, the %zu members' memory, sums to more than %zu bytes: "
               "set max_size",
               n, SIZE_MAX / 4);
  }
  GM_REQUIRE(max <= SIZE_MAX / 4 && gm_round_up(max, a->chunk, &a->max_size),
             GPUMEM_ERR_INVALID_ARGUMENT, "maximum size %zu is too large", c->max_size);
  GM_REQUIRE(a->max_size / g <= ((size_t)1 << 26), GPUMEM_ERR_INVALID_ARGUMENT,
             "maximum size %zu is more than 2^26 granules of %zu bytes (the arena reserves %d "
             "times as much address range)",
             a->max_size, g, VA_FACTOR);
  a->va_size = a->max_size * VA_FACTOR;
  size_t initial = 0, total_initial = 0;
  GM_REQUIRE(
      gm_round_up(c->initial_size, a->chunk, &initial) &&
          !gm_mul_overflows(initial, a->placement == GPUMEM_PLACE_LOCAL ? n : 1, &total_initial) &&
          total_initial <= a->max_size,
      GPUMEM_ERR_INVALID_ARGUMENT, "initial size %zu%s does not fit in the maximum size %zu",
      c->initial_size, a->placement == GPUMEM_PLACE_LOCAL ? " per member" : "", a->max_size);
fail:
  return st;
}

/* ---- pages ---- */

/* The member whose memory the page slot at `offset` holds: fixed by its
 * stripe (INTERLEAVE), else the member of the heap it serves. */
static size_t slot_member(const gpumem_arena_t *a, size_t offset, const shard *s) {
  return a->placement == GPUMEM_PLACE_LOCAL ? (size_t)s->member : offset / a->page % a->nmembers;
}

static inline void unpark(shard *s);

/* Hand the granules of [offset, offset + size) to heap `owner` (index + 1;
 * 0: unmapped). */
static void set_owner(gpumem_arena_t *a, size_t offset, size_t size, uint16_t owner) {
  for (size_t u = offset >> a->unit_shift; u < (offset + size) >> a->unit_shift; u++)
    atomic_store_explicit(&a->unit_owner[u], owner, memory_order_release);
}

/* Unmap the `n` pages from `offset` on, which heap `v` no longer
 * manages, into their members' pools: ONE call for the whole run (a range
 * of several whole mappings, as cuda-samples' vectorAddMMAP unmaps its
 * stripes; the host backend checks that it takes whole mappings), so that
 * moving k neighbouring pages costs one unmap, not k. A failed call is
 * taken to have unmapped nothing: the host backend checks the whole range
 * before it changes a mapping (an OS failure half way is the exception),
 * and the driver validates its arguments first too. */
static gpumem_status unmap_run(gpumem_arena_t *a, size_t offset, size_t n, const shard *v) {
  gpumem_status st = gm_be_unmap(a->base + offset, n * a->page);
  if (st != GPUMEM_OK) return st;
  for (size_t k = 0; k < n; k++) {
    size_t at = offset + k * a->page, slot = at / a->page, m = slot_member(a, at, v);
    a->pool[m][a->npool[m]++] = a->pages[slot];
    a->pages[slot] = 0;
    a->member_mapped[m] -= a->page;
  }
  set_owner(a, offset, n * a->page, 0);
  return GPUMEM_OK;
}

/* Reclaim: take whole free pages out of heap `v` (locked) and unmap them
 * into the pools until each member m's pool holds want[m] pages or `v` has
 * no whole free page of a member still short. The longest free run first
 * (gm_tlsf_free_units): the memory no block will miss soonest; the pages
 * of a run that are taken leave in one unmap call (unmap_run). */
static gpumem_status reclaim_from(gpumem_arena_t *a, shard *v, const size_t *want) {
  unpark(v); /* a parked block is free memory too */
  for (;;) {
    uint64_t off = 0, len = gm_tlsf_free_units(&v->heap, a->page, &off);
    bool took = false;
    for (size_t at = (size_t)off; at < off + len;) {
      size_t n = 0, taken[GPUMEM_MAX_DEVICES] = {0};
      for (; at + n * a->page < off + len; n++) { /* the next pages of members still short */
        size_t m = slot_member(a, at + n * a->page, v);
        if (a->npool[m] + taken[m] >= want[m]) break;
        taken[m]++;
      }
      if (n == 0) {
        at += a->page;
        continue;
      }
      if (!gm_tlsf_remove_range(&v->heap, at, n * a->page))
        return gm_error(GPUMEM_ERR_OUT_OF_MEMORY, "no host memory for the heap's bookkeeping");
      gpumem_status st = unmap_run(a, at, n, v);
      if (st != GPUMEM_OK) {
        if (!gm_tlsf_add(&v->heap, at, n * a->page)) /* bookkeeping only: a spare descriptor */
          gm_log(GPUMEM_LOG_ERROR, "arena: %zu pages at offset %zu are lost to their heap", n, at);
        return st;
      }
      took = true;
      at += n * a->page;
    }
    if (!took) return GPUMEM_OK;
  }
}

/* Reclaim from every heap whose pages may serve shard `s` (its member's
 * for LOCAL, all for INTERLEAVE), `s` first. The caller holds the mutex
 * and `s`'s lock; the others are locked one at a time (the lock order). */
static gpumem_status reclaim(gpumem_arena_t *a, shard *s, const size_t *want) {
  unsigned first = s->member >= 0 ? (unsigned)s->member * a->shards_per : 0;
  unsigned count = s->member >= 0 ? a->shards_per : a->nshards;
  unsigned mine = (unsigned)(s - a->shards) - first;
  gpumem_status st = GPUMEM_OK;
  for (unsigned k = 0; k < count && st == GPUMEM_OK; k++) {
    bool short_any = false;
    for (size_t m = 0; m < a->nmembers; m++)
      short_any = short_any || a->npool[m] < want[m];
    if (!short_any) break;
    shard *v = &a->shards[first + (mine + k) % count];
    if (v != s) shard_lock(v);
    st = reclaim_from(a, v, want);
    if (v != s) shard_unlock(v);
  }
  return st;
}

/* Whether a growth should create `bytes` of new pages rather than move
 * free ones. CALLS: always (while max_size allows). Otherwise when the
 * memory held stays within slack_pct percent of the most the blocks have
 * used (all heaps' used bytes, the request `need` included, as seen by
 * growths; the peak, not the use now: between peaks the arena holds what
 * the next peak will need), or, BALANCED only, when moves have already
 * cost their budget: as many moved pages as the arena holds (one turnover,
 * while it finds its layout), then a moved page (a map, 1.1 us modelled,
 * and its share of its run's unmap, 20 us) per MOVE_OPS allocations.
 * Counted in pages, not calls: budgets in growths or in unmap calls were
 * tried and did no better on generation (r/l 1.12-1.27, noisy). A workload
 * that needs new contiguous memory over and over (random sizes under a
 * cap) would otherwise move pages at every growth; past the budget it
 * grows as the arena did before pages moved. Never past max_size (the
 * caller falls back to moving when creation fails). The caller holds the
 * mutex and `s`'s lock; the other shards are locked one at a time.
 *
 * What MEMORY cannot reach: the free memory left in pages that are partly
 * used. A window is whole pages and its block rarely ends on a page
 * boundary, so each live block may leave part of a page free beside it,
 * which no move can take. On generation seed 1 at the peak of a timed
 * replay: 27 free blocks, 46 MiB, none holding a whole page (5.5% of peak
 * live), so new pages are created past the slack (r/l 1.057). */
static bool prefer_create(gpumem_arena_t *a, shard *s, size_t need, size_t pages) {
  size_t used = need;
  uint64_t allocs = 0;
  for (unsigned i = 0; i < a->nshards; i++) {
    shard *v = &a->shards[i];
    if (v != s) shard_lock(v);
    used += (size_t)v->heap.bytes_used;
    allocs += v->allocs;
    if (v != s) shard_unlock(v);
  }
  if (used > a->peak_used) a->peak_used = used;
  size_t bytes = pages * a->page;
  if (a->created + bytes > a->max_size) return false;
  if (a->remap == GPUMEM_ARENA_REMAP_CALLS) return true;
  if (a->created + bytes <= a->peak_used + a->peak_used / 100 * a->slack_pct) return true;
  return a->remap == GPUMEM_ARENA_REMAP_BALANCED &&
         a->pages_remapped + pages > allocs / MOVE_OPS + a->created / a->page;
}

static size_t pooled_bytes(const gpumem_arena_t *a) {
  size_t n = 0;
  for (size_t m = 0; m < a->nmembers; m++)
    n += a->npool[m];
  return n * a->page;
}

/* Release up to n[m] pooled pages of each member m (the undo of
 * create_pages; trim): the first error is returned, what failed stays
 * pooled. */
static gpumem_status release_pages(gpumem_arena_t *a, const size_t *n) {
  gpumem_status st = GPUMEM_OK;
  for (size_t m = 0; m < a->nmembers; m++) {
    for (size_t k = 0; k < n[m] && a->npool[m] > 0; k++) {
      gpumem_status rs = gm_be_phys_release(a->pool[m][a->npool[m] - 1]);
      if (rs != GPUMEM_OK) {
        if (st == GPUMEM_OK) st = rs;
        break;
      }
      a->npool[m]--;
      a->member_created[m] -= a->page;
      a->created -= a->page;
      a->pages_released++;
    }
  }
  return st;
}

/* Pages created, one driver allocation each, into member m's pool until it
 * holds want[m] (made[m] counts them); OUT_OF_MEMORY past max_size. */
static gpumem_status create_pages(gpumem_arena_t *a, const size_t *want, size_t *made) {
  for (size_t m = 0; m < a->nmembers; m++) {
    while (a->npool[m] < want[m]) {
      if (a->created + a->page > a->max_size) {
        return gm_error(GPUMEM_ERR_OUT_OF_MEMORY,
                        "the arena has mapped %zu of its maximum %zu bytes (%zu pooled) and "
                        "has no more free pages to move",
                        a->created, a->max_size, pooled_bytes(a));
      }
      gpumem_phys_t h = 0;
      gpumem_status st =
          gm_phys_create_shareable(a->members[m], a->page, false, &a->handle_types, "arena", &h);
      if (st != GPUMEM_OK) return st;
      a->pool[m][a->npool[m]++] = h;
      made[m]++;
      a->member_created[m] += a->page;
      a->created += a->page;
      a->pages_created++;
      if (a->created > a->peak_created) a->peak_created = a->created;
    }
  }
  return GPUMEM_OK;
}

/* ---- growth windows ---- */

/* A piece of the range a growth may use: a free block of the growing
 * shard (mapped) or a run of unmapped page slots. */
typedef struct seg {
  size_t off, len;
  size_t before; /* unmapped pages in the segments before this one */
  bool unmapped;
} seg;

typedef struct seg_list {
  seg *v;
  size_t n, cap;
} seg_list;

static bool push_seg(seg_list *l, size_t page, size_t off, size_t len, bool unmapped) {
  if (len == 0) return true;
  if (l->n > 0 && l->v[l->n - 1].unmapped && unmapped &&
      l->v[l->n - 1].off + l->v[l->n - 1].len == off) {
    l->v[l->n - 1].len += len; /* one run of unmapped slots */
    return true;
  }
  if (!gm_array_make_room((void **)&l->v, &l->cap, l->n, sizeof *l->v, 64)) return false;
  size_t before = 0;
  if (l->n > 0) {
    const seg *p = &l->v[l->n - 1];
    before = p->before + (p->unmapped ? p->len / page : 0);
  }
  l->v[l->n++] = (seg){off, len, before, unmapped};
  return true;
}

static int by_offset(const void *x, const void *y) {
  const gm_tlsf_block *b = *(const gm_tlsf_block *const *)x, *c = *(const gm_tlsf_block *const *)y;
  return b->offset < c->offset ? -1 : b->offset > c->offset;
}

/* Every piece of the range that shard `s` may grow into, in offset order:
 * its free blocks (from its free lists: no walk of the blocks in use) and
 * the unmapped slots up to `top` (a scan of the slot table), merged, then
 * the rest of the range as one segment. Pieces that touch form the runs a
 * window lies in. O(free blocks x log + top / page). */
static bool list_segments(const gpumem_arena_t *a, const shard *s, seg_list *l) {
  const gm_tlsf *h = &s->heap;
  const gm_tlsf_block **free_blocks = malloc((h->blocks_free + 1) * sizeof *free_blocks);
  if (free_blocks == NULL) return false;
  size_t nfree = 0;
  for (int fl = 0; fl < GM_TLSF_FL_COUNT; fl++)
    for (uint32_t lists = h->sl_bitmap[fl]; lists != 0; lists &= lists - 1)
      for (const gm_tlsf_block *b = h->heads[fl][__builtin_ctz(lists)];
           b != NULL && nfree < h->blocks_free; b = b->next_free)
        free_blocks[nfree++] = b;
  qsort(free_blocks, nfree, sizeof *free_blocks, by_offset);
  bool ok = true;
  size_t f = 0, top_slot = a->top / a->page;
  for (size_t k = 0; k < top_slot && ok; k++) {
    for (; f < nfree && free_blocks[f]->offset < k * a->page && ok; f++)
      ok =
          push_seg(l, a->page, (size_t)free_blocks[f]->offset, (size_t)free_blocks[f]->size, false);
    if (ok && a->pages[k] == 0) ok = push_seg(l, a->page, k * a->page, a->page, true);
  }
  for (; f < nfree && ok; f++)
    ok = push_seg(l, a->page, (size_t)free_blocks[f]->offset, (size_t)free_blocks[f]->size, false);
  free(free_blocks);
  if (ok && a->top < a->va_size) ok = push_seg(l, a->page, a->top, a->va_size - a->top, true);
  return ok;
}

/* The segment of v[i, j) that holds `at` (v[i].off <= at). */
static size_t seg_at(const seg *v, size_t i, size_t j, size_t at) {
  while (j - i > 1) {
    size_t m = i + (j - i) / 2;
    if (v[m].off <= at)
      i = m;
    else
      j = m;
  }
  return i;
}

/* Unmapped pages of segment g that [x, y) overlaps. */
static size_t pages_in(const gpumem_arena_t *a, const seg *g, size_t x, size_t y) {
  if (!g->unmapped) return 0;
  size_t lo = g->off > x ? g->off : x, hi = g->off + g->len < y ? g->off + g->len : y;
  return (hi + a->page - 1) / a->page - lo / a->page;
}

/* Unmapped pages that [start, end) overlaps in the run v[i, j): the edge
 * segments by hand, those between from the running count. O(log run). */
static size_t window_cost(const gpumem_arena_t *a, const seg *v, size_t i, size_t j, size_t start,
                          size_t end) {
  size_t f = seg_at(v, i, j, start), g = seg_at(v, f, j, end - 1);
  if (f == g) return pages_in(a, &v[f], start, end);
  return pages_in(a, &v[f], start, end) + (v[g].before - v[f + 1].before) +
         pages_in(a, &v[g], start, end);
}

/* The window for a growth of `need` bytes: a stretch of the range made only
 * of free blocks of `s` and unmapped slots, with the fewest unmapped pages
 * (the pages that must be mapped there), the lowest first. Each run of
 * touching segments is tried with the window starting at a segment's start
 * and ending at a segment's end (the cost is piecewise linear in the
 * position, so an optimum lies at one of them): O(segments x log run).
 * False when none fits. */
static bool best_window(const gpumem_arena_t *a, const seg_list *l, size_t need, size_t *start) {
  size_t best = SIZE_MAX;
  for (size_t i = 0; i < l->n;) {
    size_t j = i + 1;
    while (j < l->n && l->v[j - 1].off + l->v[j - 1].len == l->v[j].off)
      j++;
    size_t lo = l->v[i].off, hi = l->v[j - 1].off + l->v[j - 1].len;
    for (size_t k = i; k < j && hi - lo >= need; k++) {
      size_t end = l->v[k].off + l->v[k].len;
      size_t cand[2] = {l->v[k].off, end >= lo + need ? end - need : lo};
      for (int c = 0; c < 2; c++) {
        size_t w = cand[c] / GM_TLSF_ALIGN * GM_TLSF_ALIGN;
        if (w < lo || w + need > hi) continue;
        size_t cost = window_cost(a, l->v, i, j, w, w + need);
        if (cost < best || (cost == best && w < *start)) {
          best = cost;
          *start = w;
        }
      }
    }
    i = j;
  }
  return best != SIZE_MAX;
}

/* Unmapped page slots that [from, to) touches. */
static size_t unmapped_slots(const gpumem_arena_t *a, size_t from, size_t to) {
  size_t n = 0;
  for (size_t k = from / a->page; k < (to + a->page - 1) / a->page; k++)
    n += a->pages[k] == 0;
  return n;
}

/* The sentence for OUT_OF_MEMORY: the request and each member's state. */
static void describe_members(gpumem_arena_t *a, char *buf, size_t len);

/* Map at least `need` more contiguous bytes for shard `s`. The caller
 * holds the growth mutex, then the shard's lock (the lock order). The new
 * free range is the best window (best_window): its free blocks are taken
 * out of the heap while pages are found (so that reclaim leaves them), its
 * unmapped slots get pages from the pools, then from free pages anywhere
 * (reclaim), then from the device; each page is mapped at its slot, one
 * access call opens the span of the new pages for every member, and the
 * whole window joins s's heap as one free block. On failure the pages
 * taken go to the pools and the heaps are as they were. */
static gpumem_status grow(gpumem_arena_t *a, shard *s, size_t need) {
  gpumem_status st = GPUMEM_OK;
  seg_list l = {0};
  size_t *slots = NULL, nslots = 0, mapped = 0, npieces = 0, removed = 0, w = 0;
  size_t want_pages[GPUMEM_MAX_DEVICES] = {0};
  size_t made[GPUMEM_MAX_DEVICES] = {0}; /* pages created here: released again on failure */
  GM_REQUIRE(list_segments(a, s, &l), GPUMEM_ERR_OUT_OF_MEMORY,
             "no host memory for the arena's growth");
  if (!best_window(a, &l, need, &w)) {
    free(l.v);
    return gm_error(GPUMEM_ERR_OUT_OF_MEMORY,
                    "the arena has mapped %zu of its maximum %zu bytes and its range of %zu "
                    "bytes has no %zu free or unmapped bytes in a row",
                    a->created - pooled_bytes(a), a->max_size, a->va_size, need);
  }
  /* [lo, hi): the window, widened to whole pages where it ends in
   * unmapped slots, and past the top by a multiple of the chunk (fewer
   * growths for small requests). */
  size_t end = w + need, lo = w, hi = end;
  if (a->pages[w / a->page] == 0) lo = w / a->page * a->page;
  if (a->pages[(end - 1) / a->page] == 0) {
    gm_round_up(end, a->page, &hi);
    size_t past = 0;
    if (end > a->top && gm_round_up(end - a->top, a->chunk, &past)) {
      size_t wide = a->top + past < a->va_size ? a->top + past : a->va_size;
      /* Only with pages the pool or the device can give: padding that had
       * to be moved would turn a request free pages can serve into
       * OUT_OF_MEMORY once the device is full. */
      if (unmapped_slots(a, lo, wide) * a->page <= pooled_bytes(a) + (a->max_size - a->created))
        hi = wide;
    }
  }
  for (size_t i = 0; i < l.n; i++) { /* the free blocks in the window, clipped */
    const seg *g = &l.v[i];
    if (g->unmapped || g->off + g->len <= lo || g->off >= hi) continue;
    size_t from = g->off > lo ? g->off : lo, to = g->off + g->len < hi ? g->off + g->len : hi;
    l.v[npieces++] = (seg){from, to - from, 0, false};
  }
  slots = malloc((unmapped_slots(a, lo, hi) + 1) * sizeof *slots);
  GM_REQUIRE(slots != NULL, GPUMEM_ERR_OUT_OF_MEMORY, "no host memory for the arena's growth");
  for (size_t k = lo / a->page; k < (hi + a->page - 1) / a->page; k++) {
    if (a->pages[k] != 0) continue;
    slots[nslots++] = k;
    want_pages[slot_member(a, k * a->page, s)]++;
  }
  /* The window's free blocks leave the heap while others are reclaimed,
   * so that no page of them is. */
  for (; removed < npieces; removed++)
    GM_REQUIRE(gm_tlsf_remove_range(&s->heap, l.v[removed].off, l.v[removed].len),
               GPUMEM_ERR_OUT_OF_MEMORY, "no host memory for the heap's bookkeeping");
  size_t missing = 0;
  for (size_t m = 0; m < a->nmembers; m++)
    missing += want_pages[m] > a->npool[m] ? want_pages[m] - a->npool[m] : 0;
  bool create_first = missing > 0 && prefer_create(a, s, need, missing);
  if (missing > 0 && !create_first) GM_TRY(reclaim(a, s, want_pages));
  st = create_pages(a, want_pages, made);
  if (st == GPUMEM_ERR_OUT_OF_MEMORY && create_first) { /* the device is full: move after all */
    GM_TRY(reclaim(a, s, want_pages));
    st = create_pages(a, want_pages, made);
  }
  if (st != GPUMEM_OK) goto fail;
  uint64_t from_pool = 0;
  for (size_t m = 0; m < a->nmembers; m++) /* pages not created here were mapped before */
    from_pool += want_pages[m] - made[m];
  for (; mapped < nslots; mapped++) {
    size_t at = slots[mapped] * a->page, m = slot_member(a, at, s);
    gpumem_phys_t h = a->pool[m][--a->npool[m]];
    a->pages[slots[mapped]] = h;
    st = gm_be_map(a->base + at, a->page, 0, h);
    if (st != GPUMEM_OK) {
      a->pages[slots[mapped]] = 0;
      a->npool[m]++;
      goto fail;
    }
    a->member_mapped[m] += a->page;
  }
  if (nslots > 0) { /* one call: the span holds only pages of this window */
    size_t first = slots[0] * a->page, last = (slots[nslots - 1] + 1) * a->page;
    GM_TRY(gm_be_set_access(a->base + first, last - first, a->access, a->nmembers));
  }
  GM_REQUIRE(gm_tlsf_add(&s->heap, lo, hi - lo), GPUMEM_ERR_OUT_OF_MEMORY,
             "no host memory for the heap's bookkeeping");
  for (size_t i = 0; i < nslots; i++)
    set_owner(a, slots[i] * a->page, a->page, (uint16_t)(s - a->shards + 1));
  if (hi > a->top) a->top = hi;
  a->growths++;
  a->pages_remapped += from_pool;
  if (nslots > 0) /* the pages mapped, from the first (free ones between them were mapped) */
    GM_TRACE_MAPPING("arena", a, true, (void *)(a->base + slots[0] * a->page), nslots * a->page,
                     a->created, s->member >= 0 ? a->members[s->member] : -1);
  free(slots);
  free(l.v);
  return GPUMEM_OK;
fail:
  while (mapped-- > 0) { /* back to the pools */
    size_t at = slots[mapped] * a->page;
    if (unmap_run(a, at, 1, s) != GPUMEM_OK) { /* stays mapped, s's: destroy unmaps it */
      set_owner(a, at, a->page, (uint16_t)(s - a->shards + 1));
      gm_log(GPUMEM_LOG_ERROR, "arena: unmap failed, a page is lost to its heap: %s",
             gm_error_detail());
    }
  }
  if (release_pages(a, made) != GPUMEM_OK)
    gm_log(GPUMEM_LOG_ERROR, "arena: release failed: %s", gm_error_detail());
  while (removed-- > 0)
    if (!gm_tlsf_add(&s->heap, l.v[removed].off, l.v[removed].len))
      gm_log(GPUMEM_LOG_ERROR, "arena: %zu free bytes are lost to their heap", l.v[removed].len);
  free(slots);
  free(l.v);
  return st;
}

/* Release every pooled page (trim, destroy). */
static gpumem_status release_pool(gpumem_arena_t *a) {
  size_t all[GPUMEM_MAX_DEVICES];
  for (size_t m = 0; m < GPUMEM_MAX_DEVICES; m++)
    all[m] = SIZE_MAX;
  return release_pages(a, all);
}

/* ---- creation and destruction ---- */

static void free_arena(gpumem_arena_t *a) {
  if (a->shards != NULL) {
    for (unsigned i = 0; i < a->nshards; i++)
      gm_tlsf_destroy(&a->shards[i].heap);
  }
  for (size_t m = 0; m < GPUMEM_MAX_DEVICES; m++)
    free(a->pool[m]);
  free(a->pages);
  free((void *)a->unit_owner);
  free(a->shards);
  free(a);
}

/* Unmap every page into its pool, newest slot first, stopping at the first
 * failure, then release the pools and return the range: as much as can be,
 * recording what was done, so that a second call finishes what a failure
 * left. The range is freed only once nothing is mapped in it
 * (cuMemAddressFree of a range with mappings fails). */
static gpumem_status release_all(gpumem_arena_t *a) {
  gpumem_status st = GPUMEM_OK;
  for (size_t i = a->nslots; i-- > 0 && st == GPUMEM_OK;) {
    if (a->pages[i] == 0) continue;
    size_t at = i * a->page;
    uint16_t o = atomic_load_explicit(&a->unit_owner[at >> a->unit_shift], memory_order_relaxed);
    st = unmap_run(a, at, 1, &a->shards[o - 1]);
  }
  gpumem_status rs = release_pool(a);
  if (st == GPUMEM_OK) st = rs;
  if (st == GPUMEM_OK && a->base != 0) {
    st = gm_be_va_free(a->base, a->va_size);
    if (st == GPUMEM_OK) a->base = 0;
  }
  return st;
}

gpumem_status gm_arena_create(const gpumem_arena_config *config, gpumem_arena_t **out) {
  gpumem_status st = GPUMEM_OK;
  gpumem_arena_t *a = NULL;
  gpumem_arena_config cfg;
  const gpumem_arena_config *c = &cfg;
  GM_REQUIRE(out != NULL, GPUMEM_ERR_INVALID_ARGUMENT, "arena is NULL");
  GM_TRY(gm_abi_read(config, sizeof cfg, &(gpumem_arena_config)GPUMEM_ARENA_CONFIG_INIT, &cfg,
                     "arena config (GPUMEM_ARENA_CONFIG_INIT)"));
  a = calloc(1, sizeof *a);
  GM_REQUIRE(a != NULL, GPUMEM_ERR_OUT_OF_MEMORY, "no host memory for an arena");
  GM_TRY(set_members(a, c));
  GM_TRY(set_geometry(a, c));
  GM_REQUIRE(gm_is_pow2(a->granularity), GPUMEM_ERR_NOT_SUPPORTED,
             "granularity %zu is not a power of two", a->granularity);
  a->unit_shift = __builtin_ctzll(a->granularity);
  a->nunits = a->va_size >> a->unit_shift;
  a->page = a->placement == GPUMEM_PLACE_LOCAL ? a->granularity : a->stripe;
  a->nslots = a->va_size / a->page;
  a->shards = gm_aligned_zalloc(a->nshards * sizeof *a->shards);
  a->unit_owner = calloc(a->nunits, sizeof *a->unit_owner);
  a->pages = calloc(a->nslots, sizeof *a->pages);
  bool pools = true;
  for (size_t m = 0; m < a->nmembers; m++) /* room for every page: a push never fails */
    pools = pools && (a->pool[m] = malloc(a->max_size / a->page * sizeof *a->pool[m])) != NULL;
  GM_REQUIRE(a->shards != NULL && a->unit_owner != NULL && a->pages != NULL && pools,
             GPUMEM_ERR_OUT_OF_MEMORY, "no host memory for %u heaps and %zu page entries",
             a->nshards, a->nslots);
  for (unsigned i = 0; i < a->nshards; i++) {
    atomic_init(&a->shards[i].lock.held, 0);
    a->shards[i].member = a->placement == GPUMEM_PLACE_LOCAL ? (int)(i / a->shards_per) : -1;
    gm_tlsf_init(&a->shards[i].heap);
  }
  GM_TRY(gm_be_va_reserve_internal(a->va_size, a->granularity, "arena", &a->base));
  pthread_mutex_init(&a->grow_lock, NULL);
  if (c->initial_size > 0) {
    size_t initial = 0;
    gm_round_up(c->initial_size, a->chunk, &initial);
    size_t heaps = a->placement == GPUMEM_PLACE_LOCAL ? a->nmembers : 1;
    for (size_t m = 0; m < heaps; m++) {
      shard *s = &a->shards[m * a->shards_per];
      pthread_mutex_lock(&a->grow_lock);
      shard_lock(s);
      st = grow(a, s, initial);
      shard_unlock(s);
      pthread_mutex_unlock(&a->grow_lock);
      if (st != GPUMEM_OK) goto fail;
    }
  }
  a->magic = ARENA_MAGIC;
  *out = a;
  return GPUMEM_OK;
fail:
  if (a != NULL) {
    if (a->base) {
      release_all(a);
      pthread_mutex_destroy(&a->grow_lock);
    }
    free_arena(a);
  }
  return st;
}

GPUMEM_API gpumem_status gpumem_arena_create(const gpumem_arena_config *config,
                                             gpumem_arena_t **arena) {
  GM_API_FORWARD(gm_arena_create(config, arena));
}

gpumem_status gm_arena_destroy(gpumem_arena_t *a) {
  if (a == NULL) return GPUMEM_OK;
  gpumem_status st = a->magic == ARENA_DYING ? GPUMEM_OK : check_arena(a);
  if (st != GPUMEM_OK) return st;
  for (size_t i = 0; i < a->nmembers && a->magic == ARENA_MAGIC; i++) {
    /* Work still queued may use the memory; until it finishes, keep it. */
    if ((st = gm_be_device_synchronize(a->members[i])) != GPUMEM_OK) return st;
  }
  /* From the first unmap on, the arena cannot serve allocations; if a step
   * fails, what is still mapped or held stays recorded and the next destroy
   * goes on from there. */
  a->magic = ARENA_DYING;
  st = release_all(a);
  if (st != GPUMEM_OK) {
    char detail[GM_ERROR_DETAIL_MAX];
    snprintf(detail, sizeof detail, "%s", gm_error_detail());
    return gm_error(st,
                    "destroying the arena: %s (what is left stays recorded: call "
                    "gpumem_arena_destroy again)",
                    detail);
  }
  a->magic = 0;
  pthread_mutex_destroy(&a->grow_lock);
  free_arena(a);
  return GPUMEM_OK;
}

GPUMEM_API gpumem_status gpumem_arena_destroy(gpumem_arena_t *arena) {
  GM_API_FORWARD(gm_arena_destroy(arena));
}

/* ---- alloc and free ---- */

/* An allocation succeeded on `s` (locked). */
static inline void count_alloc(shard *s) {
  s->allocs++;
  if (s->heap.bytes_used > s->peak_used) s->peak_used = s->heap.bytes_used;
}

/* The parked block: the last block freed on a shard stays allocated in the
 * heap, unsplit and uncoalesced, until the next allocation of a different
 * size or alignment, the next free, or a borrowing shard's need frees it for
 * real. An allocation of the same size then takes it back without touching
 * the heap's lists, which turns the common alloc/free of one size into two
 * table-free operations (the heap's split, list updates and coalescing were
 * 60% of a pair's profile). It is memory in no one's hands: the statistics
 * count it as free, and a second free of it is a double free. */
static inline void unpark(shard *s) {
  if (s->parked == NULL) return;
  gm_tlsf_free(&s->heap, s->parked);
  s->parked = NULL;
}

/* The parked block if it fits `size` and `align` exactly (taken), else NULL
 * after freeing it, so that it can serve the heap's search. */
static inline gm_tlsf_block *take_parked(shard *s, size_t size, size_t align) {
  gm_tlsf_block *b = s->parked;
  if (b != NULL && b->size == size && (b->offset & (align - 1)) == 0) {
    s->parked = NULL;
    return b;
  }
  unpark(s);
  return NULL;
}

static gm_tlsf_block *try_shard(shard *s, size_t size, size_t align, bool *no_host) {
  shard_lock(s);
  gm_tlsf_block *b = take_parked(s, size, align);
  if (b == NULL) b = gm_tlsf_alloc(&s->heap, size, align, no_host);
  if (b != NULL) count_alloc(s);
  shard_unlock(s);
  return b;
}

/* Under the growth mutex, then the shard's lock (the lock order): its
 * parked block, its heap, or a growth of the arena for this shard (`*st`
 * says why a growth failed). The shard is looked at again under the mutex,
 * so that memory freed since the caller's first look is used. */
static gm_tlsf_block *alloc_or_grow(gpumem_arena_t *a, shard *s, size_t bytes, size_t align,
                                    bool *no_host, gpumem_status *st) {
  pthread_mutex_lock(&a->grow_lock);
  shard_lock(s);
  gm_tlsf_block *b = take_parked(s, bytes, align);
  if (b == NULL) b = gm_tlsf_alloc(&s->heap, bytes, align, no_host);
  if (b == NULL && !*no_host) {
    *st = grow(a, s, bytes + (align - GM_TLSF_ALIGN));
    if (*st == GPUMEM_OK) b = gm_tlsf_alloc(&s->heap, bytes, align, no_host);
  }
  if (b != NULL) count_alloc(s);
  shard_unlock(s);
  pthread_mutex_unlock(&a->grow_lock);
  return b;
}

gpumem_status gm_arena_alloc(gpumem_arena_t *a, size_t size, size_t alignment, int device,
                             void **ptr) {
  gpumem_status st = check_arena(a);
  if (st != GPUMEM_OK) return st;
  if (ptr == NULL) return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "ptr is NULL");
  if (size == 0) return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "cannot allocate 0 bytes");
  size_t align = alignment < GM_TLSF_ALIGN ? GM_TLSF_ALIGN : alignment;
  if (alignment != 0 && (!gm_is_pow2(alignment) || alignment > a->granularity)) {
    return gm_error(GPUMEM_ERR_INVALID_ARGUMENT,
                    "alignment %zu is not a power of two up to the granularity %zu", alignment,
                    a->granularity);
  }
  size_t bytes = 0;
  if (size > a->max_size || !gm_round_up(size, GM_TLSF_ALIGN, &bytes) || bytes > a->max_size) {
    return gm_error(GPUMEM_ERR_CAPACITY,
                    "cannot allocate %zu bytes: the arena's maximum size is %zu bytes", size,
                    a->max_size);
  }
  int member = -1;
  if ((st = member_for(a, device, &member)) != GPUMEM_OK) return st;
  bool local = a->placement == GPUMEM_PLACE_LOCAL;
  unsigned first = local ? (unsigned)member * a->shards_per : 0;
  unsigned slot = gm_thread_slot();
  unsigned mine = first + (a->shard_mask ? slot & a->shard_mask : slot % a->shards_per);
  shard *s = &a->shards[mine];
  bool no_host = false;
  gm_tlsf_block *b = try_shard(s, bytes, align, &no_host);
  /* Free memory in the device's other shards is used before more is mapped:
   * a growth would strand it (and may not fit in the device). */
  for (unsigned k = 1; b == NULL && !no_host && k < a->shards_per; k++) {
    b = try_shard(&a->shards[first + (mine - first + k) % a->shards_per], bytes, align, &no_host);
  }
  if (b == NULL && !no_host) {
    b = alloc_or_grow(a, s, bytes, align, &no_host, &st); /* frees since the first look too */
  }
  if (b != NULL) {
    *ptr = (void *)(a->base + b->offset);
    GM_TRACE_ALLOC("arena", a, *ptr, size, GM_TRACE_NO_STREAM, local ? device : -1);
    return GPUMEM_OK;
  }
  atomic_fetch_add_explicit(&a->failed, 1, memory_order_relaxed);
  if (no_host)
    return gm_error(GPUMEM_ERR_OUT_OF_MEMORY, "no host memory for the heap's bookkeeping");
  char why[GM_ERROR_DETAIL_MAX], state[GM_ERROR_DETAIL_MAX];
  snprintf(why, sizeof why, "%s", gm_error_detail());
  describe_members(a, state, sizeof state);
  char where[32] = "";
  if (local) snprintf(where, sizeof where, " on device %d", device);
  return gm_error(st == GPUMEM_OK ? GPUMEM_ERR_OUT_OF_MEMORY : st,
                  "no free block of %zu bytes (alignment %zu)%s and the arena cannot grow: %s; "
                  "%s",
                  size, align, where, why, state);
}

GPUMEM_API gpumem_status gpumem_arena_alloc(gpumem_arena_t *arena, size_t size, size_t alignment,
                                            int device, void **ptr) {
  GM_API_FORWARD_ALLOC(gm_arena_alloc(arena, size, alignment, device, ptr), size, device);
}

/* The shard owning the unit of `offset`, or NULL (unmapped / outside). */
static shard *shard_of(const gpumem_arena_t *a, uintptr_t p, size_t *offset) {
  if (p < a->base || p - a->base >= a->va_size) return NULL;
  *offset = p - a->base;
  uint16_t o = atomic_load_explicit(&a->unit_owner[*offset >> a->unit_shift], memory_order_acquire);
  return o ? &a->shards[o - 1] : NULL;
}

/* Free `ptr`; with `check_size`, only if it was allocated with `size` bytes
 * (a block is exactly the request rounded up to GM_TLSF_ALIGN: TLSF splits
 * off any rest of that size or more, and a parked block is reused only at
 * its own size). */
static gpumem_status free_block(gpumem_arena_t *a, void *ptr, bool check_size, size_t size) {
  gpumem_status st = check_arena(a);
  if (st != GPUMEM_OK) return st;
  if (ptr == NULL) return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "ptr is NULL");
  size_t off = 0;
  shard *s = shard_of(a, (uintptr_t)ptr, &off);
  if (s == NULL) {
    return gm_error(GPUMEM_ERR_INVALID_POINTER, "%p is not in the arena's mapped memory", ptr);
  }
  shard_lock(s);
  gm_tlsf_block *b = gm_tlsf_find(&s->heap, off);
  size_t bytes = 0;
  if (check_size && b != NULL && b != s->parked &&
      (!gm_round_up(size, GM_TLSF_ALIGN, &bytes) || bytes != b->size)) {
    size_t block = (size_t)b->size;
    shard_unlock(s);
    return gm_error(GPUMEM_ERR_INVALID_ARGUMENT,
                    "free of %p with size %zu: it was allocated with %zu to %zu bytes (a block of "
                    "%zu)",
                    ptr, size, (size_t)(block - GM_TLSF_ALIGN + 1), block, block);
  }
  if (b != NULL && b != s->parked) {
    s->frees++;
    GM_TRACE_FREE("arena", a, ptr, GM_TRACE_NO_STREAM, s->member >= 0 ? a->members[s->member] : -1);
    unpark(s); /* the one before goes back to the heap; this one waits */
    s->parked = b;
    shard_unlock(s);
    return GPUMEM_OK;
  }
  gm_tlsf_where w = b != NULL ? GM_TLSF_FREE : gm_tlsf_classify(&s->heap, off);
  shard_unlock(s);
  if (w == GM_TLSF_FREE) {
    return gm_error(GPUMEM_ERR_DOUBLE_FREE, "%p lies in free memory of the arena: freed already",
                    ptr);
  }
  return gm_error(GPUMEM_ERR_INVALID_POINTER,
                  "%p is inside an allocated block of the arena, not at its start", ptr);
}

gpumem_status gm_arena_free(gpumem_arena_t *a, void *ptr) {
  return free_block(a, ptr, false, 0);
}

gpumem_status gm_arena_free_sized(gpumem_arena_t *a, void *ptr, size_t size) {
  return free_block(a, ptr, true, size);
}

GPUMEM_API gpumem_status gpumem_arena_free(gpumem_arena_t *arena, void *ptr) {
  GM_API_FORWARD(gm_arena_free(arena, ptr));
}

gpumem_status gm_arena_owner(gpumem_arena_t *a, const void *ptr, int *device) {
  gpumem_status st = check_arena(a);
  if (st != GPUMEM_OK) return st;
  if (ptr == NULL || device == NULL)
    return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "ptr or device is NULL");
  size_t off = 0;
  const shard *s = shard_of(a, (uintptr_t)ptr, &off);
  if (s == NULL) {
    return gm_error(GPUMEM_ERR_INVALID_POINTER, "%p is not in the arena's mapped memory", ptr);
  }
  *device = a->placement == GPUMEM_PLACE_LOCAL ? a->members[s->member]
                                               : a->members[off / a->stripe % a->nmembers];
  return GPUMEM_OK;
}

GPUMEM_API gpumem_status gpumem_arena_owner(gpumem_arena_t *arena, const void *ptr, int *device) {
  GM_API_FORWARD(gm_arena_owner(arena, ptr, device));
}

/* ---- trim ---- */

gpumem_status gm_arena_trim(gpumem_arena_t *a, size_t *released) {
  gpumem_status st = check_arena(a);
  if (st != GPUMEM_OK) return st;
  size_t all[GPUMEM_MAX_DEVICES];
  for (size_t m = 0; m < GPUMEM_MAX_DEVICES; m++)
    all[m] = SIZE_MAX;
  pthread_mutex_lock(&a->grow_lock);
  size_t before = a->created;
  /* Every whole free page of every heap into the pools (one shard lock at
   * a time, under the mutex: the lock order), then the pools to the
   * devices. A failure stops there: what was done stays done. */
  for (unsigned i = 0; i < a->nshards && st == GPUMEM_OK; i++) {
    shard *v = &a->shards[i];
    shard_lock(v);
    st = reclaim_from(a, v, all);
    shard_unlock(v);
  }
  gpumem_status rs = release_pool(a);
  if (st == GPUMEM_OK) st = rs;
  a->peak_used = 0; /* the slack is measured from here on */
  if (released != NULL) *released = before - a->created;
  pthread_mutex_unlock(&a->grow_lock);
  return st;
}

GPUMEM_API gpumem_status gpumem_arena_trim(gpumem_arena_t *arena, size_t *released) {
  GM_API_FORWARD(gm_arena_trim(arena, released));
}

/* ---- statistics ---- */

typedef struct interleave_use {
  const gpumem_arena_t *a;
  size_t *in_use;              /* per member */
  const gm_tlsf_block *parked; /* the walked shard's: free for the caller */
} interleave_use;

/* Spread an allocated block's bytes over the members its stripes are on. */
static void count_stripes(const gm_tlsf_block *b, void *user) {
  interleave_use *u = user;
  if (b->free || b == u->parked) return;
  size_t stripe = u->a->stripe;
  for (size_t at = b->offset; at < b->offset + b->size;) {
    size_t end = (at / stripe + 1) * stripe;
    if (end > b->offset + b->size) end = b->offset + b->size;
    u->in_use[at / stripe % u->a->nmembers] += end - at;
    at = end;
  }
}

static void collect(gpumem_arena_t *a, gpumem_arena_stats *out) {
  memset(out, 0, sizeof *out);
  out->base.struct_size = sizeof *out;
  out->placement = a->placement;
  out->max_size = a->max_size;
  out->chunk_size = a->chunk;
  out->stripe_size = a->stripe;
  out->granularity = a->granularity;
  out->shards = a->shards_per;
  out->device_count = a->nmembers;
  out->base.failed_allocs = atomic_load(&a->failed);
  size_t in_use[GPUMEM_MAX_DEVICES] = {0};
  interleave_use use = {a, in_use, NULL};
  for (unsigned i = 0; i < a->nshards; i++) {
    shard *s = &a->shards[i];
    shard_lock(s);
    size_t largest = (size_t)gm_tlsf_largest_free(&s->heap);
    size_t parked = s->parked != NULL ? s->parked->size : 0; /* free, for the caller */
    out->base.bytes_reserved += s->heap.bytes_total;
    out->base.bytes_in_use += s->heap.bytes_used - parked;
    out->base.peak_bytes_in_use += s->peak_used;
    out->blocks_in_use += s->heap.blocks_used - (s->parked != NULL);
    out->free_blocks += s->heap.blocks_free;
    out->base.allocs += s->allocs;
    out->base.frees += s->frees;
    if (largest > out->base.largest_free) out->base.largest_free = largest;
    if (s->member >= 0) {
      gpumem_arena_device_stats *d = &out->devices[s->member];
      d->bytes_in_use += s->heap.bytes_used - parked;
      d->blocks_in_use += s->heap.blocks_used - (s->parked != NULL);
      if (largest > d->largest_free) d->largest_free = largest;
    } else {
      use.parked = s->parked;
      gm_tlsf_walk(&s->heap, count_stripes, &use);
    }
    shard_unlock(s);
  }
  size_t mapped = out->base.bytes_reserved; /* the heaps manage what is mapped */
  pthread_mutex_lock(&a->grow_lock);
  out->growths = a->growths;
  out->pages_created = a->pages_created;
  out->pages_released = a->pages_released;
  out->pages_remapped = a->pages_remapped;
  out->remap = a->remap;
  out->slack_percent = a->slack_pct;
  out->page_size = a->page;
  out->base.bytes_reserved = a->created;
  out->base.peak_bytes_reserved = a->peak_created;
  for (size_t m = 0; m < a->nmembers; m++) {
    out->bytes_pooled += a->npool[m] * a->page;
    out->devices[m].device = a->members[m];
    out->devices[m].bytes_mapped = a->member_mapped[m];
    if (a->placement == GPUMEM_PLACE_INTERLEAVE) out->devices[m].bytes_in_use = in_use[m];
  }
  pthread_mutex_unlock(&a->grow_lock);
  out->bytes_free = mapped - out->base.bytes_in_use;
  out->fragmentation =
      out->bytes_free ? 1.0 - (double)out->base.largest_free / (double)out->bytes_free : 0.0;
}

static void describe_members(gpumem_arena_t *a, char *buf, size_t len) {
  gpumem_arena_stats s;
  collect(a, &s);
  size_t at = (size_t)snprintf(buf, len, "arena: %zu of %zu bytes mapped", s.base.bytes_reserved,
                               s.max_size);
  for (size_t m = 0; m < s.device_count && at < len; m++) {
    const gpumem_arena_device_stats *d = &s.devices[m];
    at += (size_t)snprintf(buf + at, len - at, "; device %d: %zu mapped, %zu in use", d->device,
                           d->bytes_mapped, d->bytes_in_use);
    if (a->placement == GPUMEM_PLACE_LOCAL && at < len)
      at += (size_t)snprintf(buf + at, len - at, ", largest free %zu", d->largest_free);
  }
}

gpumem_status gm_arena_get_stats(gpumem_arena_t *a, gpumem_arena_stats *out) {
  gpumem_status st = check_arena(a);
  if (st == GPUMEM_OK)
    st = gm_abi_check_out(out, sizeof *out, "arena stats (GPUMEM_ARENA_STATS_INIT)");
  if (st != GPUMEM_OK) return st;
  gpumem_arena_stats *s = malloc(sizeof *s); /* about 2.6 KiB: not on the stack */
  if (s == NULL) return gm_error(GPUMEM_ERR_OUT_OF_MEMORY, "no host memory for arena stats");
  collect(a, s);
  gm_abi_write(out, s, sizeof *s);
  free(s);
  return GPUMEM_OK;
}

GPUMEM_API gpumem_status gpumem_arena_get_stats(gpumem_arena_t *arena, gpumem_arena_stats *stats) {
  GM_API_FORWARD(gm_arena_get_stats(arena, stats));
}

/* ---- the checker ---- */

#define VIOLATION(...)               \
  do {                               \
    snprintf(why, len, __VA_ARGS__); \
    return false;                    \
  } while (0)

/* The page at `offset` (slot `i`): a live allocation of one page on the
 * member its slot serves, read-write for every member. */
static bool check_page(gpumem_arena_t *a, size_t i, size_t m, gpumem_status *query, char *why,
                       size_t len) {
  size_t at = i * a->page;
  gpumem_phys_props props;
  if ((*query = gm_be_phys_props(a->pages[i], &props)) != GPUMEM_OK)
    VIOLATION("querying the page at offset %zu: %s", at, gm_error_detail());
  if (props.device != a->members[m])
    VIOLATION("the page at offset %zu is memory of device %d, expected device %d", at, props.device,
              a->members[m]);
  for (size_t d = 0; d < a->nmembers; d++) {
    gpumem_access_flags f = GPUMEM_ACCESS_NONE;
    if ((*query = gm_be_get_access(a->base + at, a->members[d], &f)) != GPUMEM_OK)
      VIOLATION("querying device %d's access at offset %zu: %s", a->members[d], at,
                gm_error_detail());
    if (f != GPUMEM_ACCESS_READWRITE)
      VIOLATION("device %d lacks read-write access at offset %zu", a->members[d], at);
  }
  return true;
}

/* The mapping: a slot has a page exactly where its granules have an owner
 * (one owner per page), below `top`; each page is memory of the right
 * member with access for every member; the pools hold pages mapped nowhere
 * of their member; the counters add up. */
static bool check_mapping(gpumem_arena_t *a, gpumem_status *query, char *why, size_t len) {
  size_t per_member[GPUMEM_MAX_DEVICES] = {0}, created = 0, units = a->page >> a->unit_shift;
  for (size_t i = 0; i < a->nslots; i++) {
    size_t u0 = (i * a->page) >> a->unit_shift;
    uint16_t owner = atomic_load(&a->unit_owner[u0]);
    for (size_t u = u0; u < u0 + units; u++)
      if (atomic_load(&a->unit_owner[u]) != owner)
        VIOLATION("granule %zu has owner %u, the page it is in %u", u,
                  (unsigned)atomic_load(&a->unit_owner[u]), owner);
    if ((a->pages[i] != 0) != (owner != 0))
      VIOLATION("page slot %zu %s a page but its granules %s an owner", i,
                a->pages[i] ? "has" : "has no", owner ? "have" : "have no");
    if (a->pages[i] == 0) continue;
    if (owner > a->nshards) VIOLATION("granule %zu has owner %u of %u", u0, owner, a->nshards);
    if ((i + 1) * a->page > a->top)
      VIOLATION("page slot %zu is mapped above the top %zu", i, a->top);
    size_t m = slot_member(a, i * a->page, &a->shards[owner - 1]);
    if (!check_page(a, i, m, query, why, len)) return false;
    per_member[m] += a->page;
  }
  for (size_t m = 0; m < a->nmembers; m++) {
    if (per_member[m] != a->member_mapped[m])
      VIOLATION("member %d: %zu bytes of pages are mapped, the counter says %zu", a->members[m],
                per_member[m], a->member_mapped[m]);
    for (size_t k = 0; k < a->npool[m]; k++) {
      gpumem_phys_props props;
      if ((*query = gm_be_phys_props(a->pool[m][k], &props)) != GPUMEM_OK)
        VIOLATION("querying pooled page %zu of device %d: %s", k, a->members[m], gm_error_detail());
      if (props.device != a->members[m])
        VIOLATION("pooled page %zu of device %d is memory of device %d", k, a->members[m],
                  props.device);
    }
    if (a->member_mapped[m] + a->npool[m] * a->page != a->member_created[m])
      VIOLATION("member %d: %zu bytes mapped and %zu pooled, but %zu created", a->members[m],
                a->member_mapped[m], a->npool[m] * a->page, a->member_created[m]);
    created += a->member_created[m];
  }
  if (created != a->created || created > a->max_size || a->created > a->peak_created)
    VIOLATION("%zu bytes created over the members, the arena says %zu (peak %zu, maximum %zu)",
              created, a->created, a->peak_created, a->max_size);
  return true;
}

static bool check_shard(gpumem_arena_t *a, unsigned i, size_t *total, char *why, size_t len) {
  shard *s = &a->shards[i];
  char inner[GM_ERROR_DETAIL_MAX / 2];
  if (!gm_tlsf_check(&s->heap, inner, sizeof inner)) VIOLATION("heap %u: %s", i, inner);
  for (size_t r = 0; r < s->heap.nregions; r++) {
    const gm_tlsf_region *reg = &s->heap.regions[r];
    for (size_t u = reg->offset >> a->unit_shift; u < (reg->offset + reg->size) >> a->unit_shift;
         u++)
      if (atomic_load(&a->unit_owner[u]) != i + 1)
        VIOLATION("heap %u manages granule %zu, which the unit table gives to heap %u", i, u,
                  (unsigned)atomic_load(&a->unit_owner[u]) - 1);
  }
  *total += s->heap.bytes_total;
  return true;
}

gpumem_status gm_arena_check(gpumem_arena_t *a, char *why_out, size_t why_len) {
  gpumem_status st = check_arena(a);
  if (st != GPUMEM_OK) return st;
  char why[GM_ERROR_DETAIL_MAX] = "";
  size_t len = sizeof why, total = 0;
  bool ok = true;
  /* A consistent picture: the growth mutex, then every shard in ascending
   * order (see the lock rules above). */
  pthread_mutex_lock(&a->grow_lock);
  for (unsigned i = 0; i < a->nshards; i++)
    shard_lock(&a->shards[i]);
  for (unsigned i = 0; ok && i < a->nshards; i++)
    ok = check_shard(a, i, &total, why, len);
  gpumem_status query = GPUMEM_OK; /* a driver query that failed: not a broken invariant */
  if (ok) ok = check_mapping(a, &query, why, len);
  size_t mapped = 0;
  for (size_t m = 0; m < a->nmembers; m++)
    mapped += a->member_mapped[m];
  if (ok && total != mapped)
    ok = (snprintf(why, len, "heaps manage %zu bytes, %zu are mapped", total, mapped), false);
  for (unsigned i = a->nshards; i-- > 0;)
    shard_unlock(&a->shards[i]);
  pthread_mutex_unlock(&a->grow_lock);
  if (why_out != NULL && why_len > 0) snprintf(why_out, why_len, "%s", ok ? "" : why);
  if (query != GPUMEM_OK) return gm_error(query, "arena check could not finish: %s", why);
  return ok ? GPUMEM_OK : gm_error(GPUMEM_ERR_INTERNAL, "arena check failed: %s", why);
}

GPUMEM_API gpumem_status gpumem_arena_check(gpumem_arena_t *arena, char *why, size_t len) {
  GM_API_FORWARD(gm_arena_check(arena, why, len));
}
