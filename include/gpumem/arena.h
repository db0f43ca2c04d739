/* gpumem/arena.h: a multi-GPU arena, peer-mapped, with an O(1) sub-allocator.
 *
 * An arena is one range of virtual addresses shared by a set of member
 * devices. Physical memory is mapped into it in pages, each page on one
 * device (or, interleaved, striped over all of them), and every page is
 * mapped with read-write access for every member: a kernel on any member can
 * dereference any pointer from the arena, with no cudaDeviceEnablePeerAccess.
 *
 *   int gpus[2] = {0, 1};
 *   gpumem_arena_config cfg = GPUMEM_ARENA_CONFIG_INIT;
 *   cfg.devices = gpus;
 *   cfg.device_count = 2;
 *   gpumem_arena_t *arena;
 *   gpumem_arena_create(&cfg, &arena);
 *   void *halo;
 *   gpumem_arena_alloc(arena, bytes, 0, 1, &halo);  // memory on GPU 1, usable from GPU 0
 *   ...
 *   gpumem_arena_free(arena, halo);
 *   gpumem_arena_destroy(arena);
 *
 * Placement. LOCAL: each allocation lives on the device the call names
 * (gpumem_arena_owner says which). INTERLEAVE: the range is striped over the
 * members, `stripe_size` bytes on each in turn, so a large block spreads its
 * bandwidth over every member; the device argument of alloc is then ignored.
 *
 * Physical memory moves. The arena's memory is made of pages, each its
 * own physical allocation: one granule (LOCAL) or one stripe (INTERLEAVE).
 * When no free block fits a request, the arena maps pages at a new place
 * in its range (4 x max_size of address space): pages it holds unmapped
 * (the pool), then new pages from the device while the memory held stays
 * within `slack_percent` (5%) of the most the blocks have used, else free
 * pages unmapped from anywhere in the device's free memory. So free memory
 * in holes too small for a request still serves it, and the physical memory
 * held (bytes_reserved) stays close to what the blocks need. How many moves
 * the arena allows itself is `remap` (gpumem_arena_remap: a budget by
 * default, without limit for the least memory, none for the fewest driver
 * calls). max_size bounds that physical memory; at max_size or on a full
 * device free pages always move before a request fails.
 *
 * What growing costs: per page mapped, a map, plus a creation for a new
 * page or an unmap for a moved one; one access call per growth for all
 * members; destroy unmaps and releases every page. With a 2 MiB
 * granularity, an 8 MiB growth of new memory is 4 creations + 4 maps + 1
 * access call. A larger stripe_size (INTERLEAVE) means fewer calls per
 * growth and a coarser spread (a block smaller than members x stripe_size
 * does not reach every member).
 *
 * Sub-allocation is TLSF (two-level segregated fit) over offsets with all
 * metadata on the host: alloc and free are O(1) whatever the number of live
 * blocks, free neighbours coalesce, and alignment up to the granularity is
 * honoured. Blocks are multiples of 256 bytes. The arena grows by mapping
 * at least a chunk (on the named device, for LOCAL) while it holds less
 * than `max_size` of physical memory; free pages it unmaps to move them
 * stay its own until destroy.
 *
 * Free is immediate: a freed block can be handed out again by the next
 * alloc, from any thread. Free a block only when the work that uses it has
 * finished (synchronize its stream first), or use gpumem_pool_t, which
 * orders reuse on streams.
 *
 * Thread safety: alloc, free, owner, stats and check may be called from any
 * number of threads at once. Each member's heap is split into shards; a
 * thread allocates from its own shard (threads are spread over the shards
 * in turn), so threads do not wait for each other except when they share a
 * shard or free each other's blocks. A shard without a fitting block takes
 * one from the other shards of its device before it maps more memory, and
 * free pages of every shard of the device are moved before new memory is
 * created.
 */
#ifndef GPUMEM_ARENA_H
#define GPUMEM_ARENA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gpumem/error.h"
#include "gpumem/export.h"
#include "gpumem/stats.h"
#include "gpumem/types.h"
#include "gpumem/vmm.h"

GPUMEM_EXTERN_C_BEGIN

/** Where an arena's memory lives. */
typedef enum gpumem_placement {
  GPUMEM_PLACE_LOCAL = 0,      /**< on the device each allocation names */
  GPUMEM_PLACE_INTERLEAVE = 1, /**< striped over the members, stripe_size bytes each */
} gpumem_placement;

/** For alloc in an INTERLEAVE arena: no particular device. */
#define GPUMEM_ARENA_ANY_DEVICE (-1)

/** When an arena that needs new contiguous memory moves free pages (unmaps
 * them from free memory and maps them where the request goes) rather than
 * creating new ones. Moving keeps the physical memory held close to what the
 * blocks use, at a cost in driver calls: an unmap per run of free pages, a
 * map per page and an access call per growth (about 20, 1.1 and 30 us on an
 * H100). Whatever the setting, an arena at max_size or on a full device
 * moves pages before it reports OUT_OF_MEMORY. */
typedef enum gpumem_arena_remap {
  /** The default. New pages while the memory held stays within slack_percent
   * of the most the blocks have used; past that, free pages move, within a
   * budget: one turnover of the arena's pages, then one page per 64
   * allocations; past the budget, new pages again. Driver calls stay rare
   * (host replays: at most 0.012 us/op modelled); a workload whose blocks
   * keep changing size (continuous batching with a growing KV cache) can
   * then hold 15-20% more than it uses. */
  GPUMEM_ARENA_REMAP_BALANCED = 0,
  /** Least memory: free pages move whenever new ones would take the arena
   * past slack_percent over the most the blocks have used, however many
   * driver calls that takes (continuous batching: within 5%, at about 1 us
   * of modelled driver time per operation). For jobs that must fit a MIG
   * slice or share the device, and whose allocations are not on the
   * critical path. */
  GPUMEM_ARENA_REMAP_MEMORY = 1,
  /** Fewest driver calls: new pages whenever the device and max_size allow;
   * pages move only when they do not. For latency-critical loops that must
   * not wait for an unmap. */
  GPUMEM_ARENA_REMAP_CALLS = 2,
} gpumem_arena_remap;

/** Creation settings; start from GPUMEM_ARENA_CONFIG_INIT. Zero fields take
 * the default given with them. */
typedef struct gpumem_arena_config {
  size_t struct_size;  /**< sizeof(gpumem_arena_config) as compiled: set by the INIT macro */
  const int *devices;  /**< member devices, no duplicates (NULL: device 0 alone) */
  size_t device_count; /**< 1 to GPUMEM_MAX_DEVICES */
  /** LOCAL (INIT) or INTERLEAVE */
  gpumem_placement placement;
  size_t stripe_size;  /**< INTERLEAVE: bytes per device per stripe, a multiple of the
                            granularity (0: the granularity); each stripe is one
                            physical allocation and one mapping */
  size_t chunk_size;   /**< bytes mapped by one growth at least: LOCAL, a multiple of the
                            granularity; INTERLEAVE, of stripe_size x members (0: 8 MiB,
                            rounded up to that multiple) */
  size_t initial_size; /**< mapped at creation: on each member (LOCAL) or in all
                            (INTERLEAVE), rounded up to the chunk size (0: nothing).
                            It goes to the first shard (of each member), which serves
                            the first thread of the process that allocates from any
                            arena; other threads' shards map chunks when first used */
  size_t max_size;     /**< the virtual range, the most the arena can map over all members
                            (0: the members' total memory; INVALID_ARGUMENT if that
                            sum exceeds SIZE_MAX / 4) */
  gpumem_handle_type handle_type; /**< NONE, POSIX_FD, or FABRIC (falls back to POSIX_FD
                                       where the system refuses it) */
  unsigned shards;                /**< heaps per member (LOCAL) or in all (INTERLEAVE),
                                       1 to 64 (0: the CPUs online, at most 16, rounded
                                       down to a power of two) */
  gpumem_arena_remap remap;       /**< when free pages move (BALANCED, the INIT value) */
  unsigned slack_percent;         /**< memory the arena may hold over the most its blocks
                                       have used before free pages move instead of new
                                       ones being created, in percent of that use, 1 to
                                       100 (0: 5); not used by REMAP_CALLS */
} gpumem_arena_config;

/** Initialiser of a gpumem_arena_config: struct_size set, LOCAL, no shareable handles,
 * every other field 0 (its default). */
#define GPUMEM_ARENA_CONFIG_INIT                                                 \
  {                                                                              \
    .struct_size = sizeof(gpumem_arena_config), .placement = GPUMEM_PLACE_LOCAL, \
    .handle_type = GPUMEM_HANDLE_NONE                                            \
  }

/** One member's share of an arena. */
typedef struct gpumem_arena_device_stats {
  int device;           /**< the member's ordinal */
  size_t bytes_mapped;  /**< this device's memory mapped into the arena */
  size_t bytes_in_use;  /**< of it, inside allocated blocks */
  size_t largest_free;  /**< LOCAL: the largest free block on this device */
  size_t blocks_in_use; /**< LOCAL: allocated blocks on this device */
} gpumem_arena_device_stats;

/** What an arena holds now. In `base`: bytes_in_use, inside allocated blocks
 * (sizes rounded to 256); peak_bytes_in_use, the sum of each shard's peak (an
 * upper bound of the arena's; exact with one shard); bytes_reserved, the
 * physical memory the arena holds over all members, mapped or pooled, and
 * peak_bytes_reserved its peak; allocs, frees, failed_allocs; largest_free,
 * the largest block one allocation could get without growing. */
typedef struct gpumem_arena_stats {
  gpumem_stats base;          /**< the figures every allocator reports (see above) */
  gpumem_placement placement; /**< as configured */
  size_t max_size;            /**< the most physical memory it may hold (range: 4x) */
  /** @var gpumem_arena_stats::stripe_size
   * INTERLEAVE: bytes per member per stripe; 0 for LOCAL */
  /** bytes mapped by one growth at least (the configured chunk_size or its default) */
  size_t chunk_size, stripe_size, granularity; /**< the members' largest minimum granularity */
  size_t bytes_free;                           /**< mapped and not in use (pool excluded) */
  /** allocated blocks */
  size_t blocks_in_use, free_blocks; /**< free blocks (each one coalesced range) */
  double fragmentation;              /**< 1 - largest_free / bytes_free (0 when nothing is free) */
  uint64_t growths;                  /**< growths that mapped memory */
  unsigned shards;                   /**< heaps per member (LOCAL) or in all (INTERLEAVE) */
  size_t device_count; /**< members: the first device_count entries of `devices` are filled */
  gpumem_arena_device_stats devices[GPUMEM_MAX_DEVICES]; /**< each member's share, in the
                                                              order of the config's devices */
  size_t page_size;         /**< the unit physical memory moves in: granularity (LOCAL), stripe */
  size_t bytes_pooled;      /**< physical memory created and mapped nowhere (in bytes_reserved) */
  uint64_t pages_created;   /**< physical allocations made, one page each */
  uint64_t pages_released;  /**< pages given back to the device (trim, destroy) */
  uint64_t pages_remapped;  /**< pages mapped again at another address (moved from free memory) */
  gpumem_arena_remap remap; /**< as configured */
  unsigned slack_percent;   /**< as configured, or its default (5) */
} gpumem_arena_stats;

/** Initialiser of a gpumem_arena_stats (sets struct_size). */
#define GPUMEM_ARENA_STATS_INIT                          \
  {                                                      \
    .base = {.struct_size = sizeof(gpumem_arena_stats) } \
  }

/** Create an arena: reserve its range, check that every member can reach
 * every other member's memory, and map initial_size. Errors:
 * INVALID_ARGUMENT (NULL, duplicate members, sizes that are not multiples of
 * what they must be, initial_size > max_size), INVALID_DEVICE,
 * NOT_SUPPORTED (a member without VMM), PEER_UNSUPPORTED (two members that
 * cannot map each other's memory: the message names both and why, e.g. a
 * MIG slice or no P2P path), OUT_OF_MEMORY, NO_DEVICE. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_arena_create(const gpumem_arena_config *config,
                                                              gpumem_arena_t **arena);

/** Wait for every member to finish its work, then unmap and release all of
 * the arena's memory, live blocks included. NULL is a no-op. If a member's
 * synchronize fails, nothing has changed: the error is returned and the
 * arena is usable. If an unmap, a release or the freeing of the range
 * fails, everything else that can be is still unmapped and released, what
 * failed stays recorded, and the driver's error is returned; the arena is
 * then half destroyed: every other call refuses it (INVALID_ARGUMENT, "half
 * destroyed") and a second destroy goes on from where the first stopped. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_arena_destroy(gpumem_arena_t *arena);

/** Allocate `size` bytes aligned to `alignment` (0: 256; else a power of two
 * up to the granularity) on `device` (LOCAL: a member; INTERLEAVE: a member
 * or GPUMEM_ARENA_ANY_DEVICE). Grows the arena when no free block fits.
 * Errors: INVALID_ARGUMENT (NULL, size 0, a bad alignment), INVALID_DEVICE
 * (not a member), CAPACITY (larger than the arena could ever map),
 * OUT_OF_MEMORY (the arena is at max_size or the device is full: the message
 * has the request and each member's mapped, used and largest free bytes).
 * A failed growth may leave pages it unmapped from free memory in the pool
 * (bytes_pooled): still the arena's, used by the next growth. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_arena_alloc(gpumem_arena_t *arena, size_t size,
                                                             size_t alignment, int device,
                                                             void **ptr);

/** Free a block. Errors: INVALID_ARGUMENT (NULL), INVALID_POINTER (not the
 * start of a block of this arena: outside it, or inside a block),
 * DOUBLE_FREE (the block is free already). Nothing changes on error. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_arena_free(gpumem_arena_t *arena, void *ptr);

/** The device whose memory holds the byte at `ptr` (any address in the
 * mapped part of the arena). Errors: INVALID_ARGUMENT (NULL),
 * INVALID_POINTER (not in the arena's mapped memory). */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_arena_owner(gpumem_arena_t *arena, const void *ptr,
                                                             int *device);

/** Fill `stats` (start it from GPUMEM_ARENA_STATS_INIT; walks the free
 * lists: not for hot paths). Errors: INVALID_ARGUMENT (NULL, not an arena,
 * struct_size not set). Thread-safe. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_arena_get_stats(gpumem_arena_t *arena,
                                                                 gpumem_arena_stats *stats);

/** Give the physical memory that serves no block back to the devices:
 * every whole free page is unmapped and released, with the pool (pages a
 * failed growth left unmapped). Live blocks stay where they are; the next
 * growth creates or moves pages again. `*released` (may be NULL) gets the
 * bytes given back. Errors: INVALID_ARGUMENT (NULL, not an arena), a failed
 * unmap or release (the driver's error: that page stays, mapped and free
 * or pooled, and the arena stays consistent; trim may be called again).
 * Thread-safe; takes every shard's lock in turn. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_arena_trim(gpumem_arena_t *arena,
                                                            size_t *released);

/** Walk every invariant of the sub-allocator and the mapping (blocks tile
 * the mapped memory, free neighbours are coalesced, free lists and bitmaps
 * agree, counters match, every chunk has its owner and its access for every
 * member). GPUMEM_OK, or GPUMEM_ERR_INTERNAL with the first violation in
 * gpumem_last_error() and in `why` (may be NULL). A driver query that fails
 * (a handle's properties, a device's access) is not a violation: its own
 * error is returned, "arena check could not finish" and the query's detail
 * in the message and `why`. O(blocks): for tests and
 * debugging. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_arena_check(gpumem_arena_t *arena, char *why,
                                                             size_t len);

GPUMEM_EXTERN_C_END

#endif
