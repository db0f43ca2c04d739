/* gpumem/allocator.h: one alloc/free interface over every allocator.
 *
 * A gpumem_allocator is a small struct of function pointers and a context:
 * applications and framework shims (a PyTorch CUDAPluggableAllocator, a CuPy
 * allocator) hold one and never care which allocator is behind it, and
 * gpumem-bench drives them all the same way. Create one by name:
 *
 *   gpumem_allocator a;
 *   gpumem_allocator_create("cuda-async", 0, &a);
 *   void *p;
 *   a.alloc(a.ctx, 1 << 20, stream, &p);
 *   ...
 *   a.free(a.ctx, p, 1 << 20, stream);
 *   gpumem_allocator_destroy(&a);
 *
 * The allocators libgpumem provides (gpumem_allocator_list) all count the
 * same statistics and honour GPUMEM_TRACE=FILE, which appends every alloc and
 * free to FILE as "op,id,size,stream" lines, the format gpumem-bench replays.
 * An application may also fill the struct with its own functions.
 *
 * Thread safety: alloc, free and stats of one allocator may be called from
 * many threads at once; create and destroy may not overlap other calls on the
 * same allocator. Stream-ordered allocators (flags has
 * GPUMEM_ALLOCATOR_STREAM_ORDERED) follow CUDA's rules: memory freed on a
 * stream may be reused by later work on that stream, and by other streams
 * only once ordered after the free; the others make memory reusable at free.
 */
#ifndef GPUMEM_ALLOCATOR_H
#define GPUMEM_ALLOCATOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "gpumem/error.h"
#include "gpumem/export.h"
#include "gpumem/stats.h"
#include "gpumem/types.h"

GPUMEM_EXTERN_C_BEGIN

/** An allocator: functions and the context they are called with. */
typedef struct gpumem_allocator {
  size_t struct_size; /**< sizeof(gpumem_allocator) as compiled: set by GPUMEM_ALLOCATOR_INIT;
                           the library fills no more than that */
  const char *name;   /**< for messages and listings: libgpumem's allocators set their
                           gpumem_allocator_list name, or "pool", "arena" or "buffer" when made
                           by gpumem_allocator_from_* (static text, never freed) */
  int device;         /**< the device it allocates on (a wrapped arena: the device given,
                           perhaps GPUMEM_ARENA_ANY_DEVICE) */
  void *ctx;          /**< the allocator's state, passed as the first argument of every
                           function below */
  /** Allocate `size` bytes ordered on `stream`. */
  gpumem_status (*alloc)(void *ctx, size_t size, gpumem_stream_t stream, void **ptr);
  /** Free a pointer this allocator returned, with the size it was asked for.
   * libgpumem's pool and arena allocators check the size against the block
   * and refuse a wrong one with INVALID_ARGUMENT naming both sizes (nothing
   * freed); for a cached pool size class, any size of that class is right. */
  gpumem_status (*free)(void *ctx, void *ptr, size_t size, gpumem_stream_t stream);
  /** Fill `stats`. */
  gpumem_status (*stats)(void *ctx, gpumem_stats *stats);
  /** Give cached memory back to the device (may be NULL: nothing cached). */
  gpumem_status (*trim)(void *ctx);
  /** Release everything; called by gpumem_allocator_destroy. Returns
   * nothing (the struct's layout is stable): libgpumem's own allocators report
   * a failure through gpumem_allocator_destroy's status instead. */
  void (*destroy)(void *ctx);
  /** GPUMEM_ALLOCATOR_* bits. */
  unsigned flags;
} gpumem_allocator;

/** Initialiser of a gpumem_allocator to be filled by the library. */
#define GPUMEM_ALLOCATOR_INIT \
  { .struct_size = sizeof(gpumem_allocator) }

/** free(ptr, stream) may be called while work queued on `stream` still uses
 * ptr: the memory is reused only after that work (cudaFreeAsync's rule; also
 * cudaFree, which waits for the device). Without it, free makes the memory
 * reusable at once by any stream: synchronize the stream first. */
#define GPUMEM_ALLOCATOR_STREAM_ORDERED 1u

/** A registered allocator's name and a one-line description. */
typedef struct gpumem_allocator_kind {
  const char *name;        /**< what gpumem_allocator_create takes, such as "cuda-async" */
  const char *description; /**< what it is, in one line */
} gpumem_allocator_kind;

/** The allocators libgpumem provides: writes up to `max` entries and returns
 * how many exist (with `kinds` NULL, writes none whatever `max` says). Never
 * fails. */
GPUMEM_API size_t gpumem_allocator_list(gpumem_allocator_kind *kinds, size_t max);

/** Create the allocator called `name` (see gpumem_allocator_list) for
 * `device`. Errors: INVALID_ARGUMENT (NULL), NOT_FOUND (no such name; the
 * message lists the names), INVALID_DEVICE, NOT_SUPPORTED (the device lacks
 * what it needs), NO_DEVICE, OUT_OF_MEMORY. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_allocator_create(const char *name, int device,
                                                                  gpumem_allocator *allocator);

/** Wrap a pool the caller created and configured as an allocator (its
 * alloc/free are gpumem_pool_alloc/free; stream-ordered). The allocator does
 * not own the pool: destroy the allocator first, then the pool. Errors:
 * INVALID_ARGUMENT (not a pool; allocator struct_size not set). */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_allocator_from_pool(gpumem_pool_t *pool,
                                                                     gpumem_allocator *allocator);

/** Wrap an arena the caller created as an allocator that allocates on
 * `device` (a member; GPUMEM_ARENA_ANY_DEVICE for an interleaved arena).
 * Not stream-ordered: free makes memory reusable at once. Not owned, as for
 * a pool. Errors: INVALID_ARGUMENT, INVALID_DEVICE (not a member). */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_allocator_from_arena(gpumem_arena_t *arena,
                                                                      int device,
                                                                      gpumem_allocator *allocator);

/** A stack allocator on a buffer the caller created: blocks are carved from
 * its end in allocation order (256-byte aligned), the buffer growing as
 * needed while its address never moves; frees may come in any order, and a
 * block's memory is reused once every block above it is freed (the buffer's
 * size shrinks then). For scratch space of a solver phase. Not
 * stream-ordered; the buffer is not owned and must not be resized by others
 * meanwhile. Errors: INVALID_ARGUMENT, NOT_SUPPORTED (a received buffer). */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_allocator_from_buffer(gpumem_buffer_t *buffer,
                                                                       gpumem_allocator *allocator);

/** Make `allocator` the process-wide default (copied; NULL: none, and the
 * next gpumem_default_allocator makes libgpumem's own again). A library
 * inside an application allocates through gpumem_default_allocator, so it
 * uses whatever the application chose. The allocator stays the caller's:
 * keep it alive while it is the default. Thread-safe. Errors:
 * INVALID_ARGUMENT (struct_size not set, no alloc or free function). */
GPUMEM_API GPUMEM_NODISCARD gpumem_status
gpumem_set_default_allocator(const gpumem_allocator *allocator);

/** The process-wide default allocator (a copy of the struct: its functions
 * and context are shared). If the application chose none, libgpumem makes
 * its stream-ordered pool ("gpumem-pool") on device 0 the first time, and
 * destroys it at gpumem_finalize. Thread-safe. Errors: INVALID_ARGUMENT
 * (struct_size not set), and those of creating the pool. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_default_allocator(gpumem_allocator *allocator);

/** Destroy an allocator made by gpumem_allocator_create or
 * gpumem_allocator_from_* (or one whose destroy function is set) and clear
 * the struct. NULL is a no-op. Errors: BUSY when an allocator of
 * gpumem_allocator_list still has blocks allocated (free them first: its
 * pool, arena or CUDA pool would go with them); the driver's error when
 * releasing its pool, arena or CUDA pool fails. On failure the allocator is
 * left as it was, usable, its struct untouched, and destroy may be called
 * again. A wrapped pool, arena or buffer is never destroyed with it. An
 * allocator whose destroy member the application set cannot fail (the
 * member returns nothing). Not to be called while other calls use the
 * allocator. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_allocator_destroy(gpumem_allocator *allocator);

/** An out-of-memory handler: `size` bytes could not be had on `device`.
 * It may free memory (drop a cache, evict, trim) through libgpumem; return
 * true to retry the allocation once, false to let it fail. */
typedef bool (*gpumem_oom_fn)(size_t size, int device, void *user);

/** Set the process-wide out-of-memory handler (NULL: none, the default:
 * failures return OUT_OF_MEMORY at once). It is called when an allocation
 * fails with OUT_OF_MEMORY: one through a gpumem_allocator
 * (gpumem_allocator_create's, from_*'s, the default allocator), and
 * gpumem_pool_alloc, gpumem_arena_alloc (with the device asked, which is
 * GPUMEM_ARENA_ANY_DEVICE for an interleaved arena), gpumem_buffer_resize
 * and gpumem_buffer_reserve (with the size or capacity asked for the whole
 * buffer). It runs on the allocating thread,
 * with no library lock held. One retry at most per allocation. A failing
 * allocation made by the handler itself is not offered to it again (it
 * returns OUT_OF_MEMORY at once): no recursion, no loop. When the handler
 * returns false, the status and message are the original failure's.
 * Thread-safe. Errors: none. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_set_oom_handler(gpumem_oom_fn fn, void *user);

/** What gpumem_stats_print writes. */
typedef enum gpumem_stats_format {
  GPUMEM_STATS_TEXT = 0, /**< lines for people: sizes as KiB/MiB/GiB with the exact bytes */
  GPUMEM_STATS_JSON = 1, /**< one JSON object on one line */
} gpumem_stats_format;

/** Where gpumem_stats_print_out sends its text (once, the whole report). */
typedef void (*gpumem_output_fn)(const char *text, void *user);

/** Print `allocator`'s statistics to `out` (NULL: stderr). Every allocator
 * reports gpumem_stats; libgpumem's pools ("gpumem-pool",
 * "gpumem-pool-nocache", "pool") add gpumem_pool_stats' fields and its
 * arenas ("gpumem-arena", "gpumem-arena-lean", "arena") gpumem_arena_stats'
 * (the text ends with the pages moved and the remap setting). JSON: {"name":...,
 * "device":..., "stats":{...}, "pool":{...} or "arena":{...}}, sizes in
 * bytes. The report is built in host memory and written at once. Errors:
 * INVALID_ARGUMENT (NULL allocator, no stats function, unknown format),
 * those of the allocator's stats functions, OUT_OF_MEMORY (no host memory
 * for the report), OS (writing to `out` failed). */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_stats_print(const gpumem_allocator *allocator,
                                                             FILE *out, gpumem_stats_format format);

/** gpumem_stats_print for programs without a FILE: the report is passed to
 * `fn` as one NUL-terminated text. Errors: as gpumem_stats_print
 * (INVALID_ARGUMENT also for a NULL fn). */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_stats_print_out(const gpumem_allocator *allocator,
                                                                 gpumem_output_fn fn, void *user,
                                                                 gpumem_stats_format format);

GPUMEM_EXTERN_C_END

#endif
