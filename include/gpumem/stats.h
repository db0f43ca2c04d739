/* gpumem/stats.h: the one statistics shape every allocator reports.
 *
 * gpumem_stats is what the allocator interface returns (allocator.h), and the
 * first member, `base`, of the pool's, arena's and buffer's own stats
 * (gpumem_pool_stats, gpumem_arena_stats, gpumem_buffer_stats), so a tool
 * that knows only gpumem_stats reads any of them. Like every public struct
 * that can grow, it starts with struct_size: start a stats struct from its
 * INIT macro, and the library writes no more than the caller's struct holds.
 */
#ifndef GPUMEM_STATS_H
#define GPUMEM_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "gpumem/export.h"

GPUMEM_EXTERN_C_BEGIN

/** What every allocator reports, in one shape: the allocator interface's
 * stats, and the first member (`base`) of the pool's, arena's and buffer's
 * own stats structs, whose headers say what each field means there. Bytes
 * and calls since creation. */
typedef struct gpumem_stats {
  size_t struct_size;         /**< sizeof the whole stats struct as compiled (set by its INIT
                                   macro); the library writes no more than that */
  size_t bytes_in_use;        /**< bytes allocated and not yet freed */
  size_t peak_bytes_in_use;   /**< the most bytes_in_use has been */
  size_t bytes_reserved;      /**< bytes held from the device */
  size_t peak_bytes_reserved; /**< the most bytes_reserved has been */
  uint64_t allocs;            /**< successful allocations */
  uint64_t frees;             /**< successful frees */
  uint64_t failed_allocs;     /**< allocations that returned an error */
  size_t largest_free;        /**< the largest block one allocation could get without
                                   reserving more from the device; 0 where the allocator
                                   cannot tell */
} gpumem_stats;

/** Initialiser of a gpumem_stats (sets struct_size). */
#define GPUMEM_STATS_INIT \
  { .struct_size = sizeof(gpumem_stats) }

GPUMEM_EXTERN_C_END

#endif
