/* gpumem/pool.h: a stream-ordered pool with a fast per-thread cache.
 *
 * gpumem_pool_t wraps a cudaMemPool_t (its own, or the device's default) and
 * keeps CUDA's stream-ordered semantics: gpumem_pool_alloc(size, stream) and
 * gpumem_pool_free(ptr, stream) behave like cudaMallocAsync/cudaFreeAsync. In
 * front of the pool sits a cache: each thread keeps, per stream, lists of
 * freed blocks by size class. A block freed on stream S is handed out again
 * only to an allocation on S (stream order makes that safe at once); every
 * other reuse goes through the CUDA pool, which follows its event
 * dependencies. So the common case (alloc and free on the same stream, a
 * size seen before) touches only the calling thread's cache: no driver call,
 * no lock shared with other threads beyond a short one on a hashed shard of
 * the pointer table (which detects foreign pointers and double frees).
 *
 * Streams are told apart by their id (cudaStreamGetId), not their handle,
 * so NULL and cudaStreamPerThread mean the calling thread's stream of its
 * current device, and a new stream that gets a destroyed stream's handle
 * value does not inherit its blocks. Allocations and frees on a stream that
 * is being captured into a CUDA graph bypass the cache, so that the graph
 * gets its allocation and free nodes.
 *
 * Cached memory goes back to the CUDA pool on gpumem_pool_trim(), on
 * destroy, on gpumem_pool_forget_stream(), when a thread exits (at the next
 * trim), and when the CUDA pool runs out of memory (the caches are flushed
 * and the allocation retried). Each cached block is returned with
 * cudaFreeAsync on the stream it was cached for, so the CUDA pool orders its
 * reuse after the work queued before its free; blocks cached for a default
 * stream are returned after their device is synchronized. Requests above
 * cache_max_size bypass the cache; blocks over 256 KiB are cached up to
 * four times cache_max_size per thread (sizes that follow the data would
 * otherwise stay cached and split the CUDA pool's free ranges).
 *
 * Before destroying a stream that freed blocks into the cache, call
 * gpumem_pool_forget_stream() (a flush names the stream).
 *
 * Thread safety: every call may be made from any thread; a block may be freed
 * by another thread than the one that allocated it. Destroying a pool while
 * other threads still use it is the caller's error (their calls then return
 * INVALID_ARGUMENT at best).
 */
#ifndef GPUMEM_POOL_H
#define GPUMEM_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gpumem/error.h"
#include "gpumem/export.h"
#include "gpumem/stats.h"
#include "gpumem/types.h"
#include "gpumem/vmm.h"

GPUMEM_EXTERN_C_BEGIN

/** Creation settings; start from GPUMEM_POOL_CONFIG_INIT. */
typedef struct gpumem_pool_config {
  size_t struct_size; /**< sizeof(gpumem_pool_config) as compiled: set by the INIT macro */
  /** whose memory the pool holds (INIT: 0) */
  int device;
  bool use_default_pool;      /**< wrap the device's default pool instead of creating one */
  uint64_t release_threshold; /**< bytes the CUDA pool keeps across synchronizes
                                   (INIT: UINT64_MAX, keep all; CUDA's own default is 0) */
  size_t max_size;            /**< most the CUDA pool may reserve (0: the driver's default;
                                   more than the device's memory: INVALID_ARGUMENT) */
  bool reuse_follow_event_dependencies;   /**< reuse memory freed on another stream when the
                                               allocating stream is already ordered after the
                                               free, by an event or the legacy default stream
                                               (cudaMemPoolReuseFollowEventDependencies; INIT:
                                               true, as in CUDA) */
  bool reuse_allow_opportunistic;         /**< reuse frees that have completed, with no order
                                               between them and the allocation
                                               (cudaMemPoolReuseAllowOpportunistic; INIT: true) */
  bool reuse_allow_internal_dependencies; /**< let an allocation make its stream wait for a
                                               free on another stream, to reuse that memory
                                               (cudaMemPoolReuseAllowInternalDependencies;
                                               INIT: true) */
  gpumem_handle_type handle_type; /**< NONE, or POSIX_FD to share the pool with other processes */
  const int *access_devices;      /**< peers given read-write access to the pool's memory */
  /** entries in access_devices (at most GPUMEM_MAX_DEVICES) */
  size_t access_count;
  bool cache;             /**< the per-thread cache in front (INIT: true) */
  size_t cache_max_bytes; /**< most bytes all threads' caches hold (0: 256 MiB) */
  size_t cache_max_size;  /**< largest request served from the cache (0: 1 MiB) */
} gpumem_pool_config;

/** Initialiser of a gpumem_pool_config: struct_size set, device 0, keep all memory
 * (release_threshold UINT64_MAX), CUDA's three reuse policies on, no shareable handles, the
 * cache on; every other field 0 (its default). */
#define GPUMEM_POOL_CONFIG_INIT                                                                 \
  {                                                                                             \
    .struct_size = sizeof(gpumem_pool_config), .release_threshold = UINT64_MAX,                 \
    .reuse_follow_event_dependencies = true, .reuse_allow_opportunistic = true,                 \
    .reuse_allow_internal_dependencies = true, .handle_type = GPUMEM_HANDLE_NONE, .cache = true \
  }

/** What a pool holds and has done. In `base`: bytes_in_use, the bytes
 * allocated through this pool and not freed (class-rounded); peak_bytes_in_use,
 * the CUDA pool's high-water mark of bytes handed out (cached blocks count,
 * so an upper bound of the true peak); bytes_reserved and its peak, the CUDA
 * pool's (cudaMemPoolAttrReservedMem*); allocs, frees, failed_allocs through
 * this pool; largest_free 0 (the CUDA pool does not say). */
typedef struct gpumem_pool_stats {
  gpumem_stats base; /**< the figures every allocator reports (see above) */
  /** bytes the CUDA pool has handed out (cudaMemPoolAttrUsedMemCurrent; the cache's blocks
   * count as used) */
  size_t used_current, used_high; /**< the most used_current has been
                                       (cudaMemPoolAttrUsedMemHigh) */
  size_t cached_bytes;            /**< bytes in the caches */
  /** allocations served by the cache */
  uint64_t cache_hits, cache_misses; /**< allocations that looked in the cache and found no
                                          block (those that bypass it count in neither) */
} gpumem_pool_stats;

/** Initialiser of a gpumem_pool_stats (sets struct_size). */
#define GPUMEM_POOL_STATS_INIT                          \
  {                                                     \
    .base = {.struct_size = sizeof(gpumem_pool_stats) } \
  }

/** Create a pool. Errors: INVALID_ARGUMENT, INVALID_DEVICE, NOT_SUPPORTED (no
 * memory pools on the device, or a handle type they cannot export),
 * PEER_UNSUPPORTED, NO_DEVICE. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_pool_create(const gpumem_pool_config *config,
                                                             gpumem_pool_t **pool);

/** Flush the caches (each block freed on its own stream), wait until those
 * frees have run (the devices of their streams are synchronized), then
 * destroy the CUDA pool if this pool created it, so its memory is back on
 * the device when the call returns, or put back the default pool's release
 * threshold, reuse policies and peer access if it wrapped that one. BUSY,
 * with nothing destroyed, while allocations made through it are still live.
 * NULL is a no-op. On a driver failure (a flushed free, a synchronize, the
 * pool's own streams, the CUDA pool's destroy) the error is returned and
 * nothing is forgotten: blocks whose free failed stay cached, each step that
 * succeeded is recorded, and the pool stays usable; a second destroy goes on
 * from where the first stopped. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_pool_destroy(gpumem_pool_t *pool);

/** Allocate `size` bytes ordered on `stream` (a stream of any device: the
 * memory is the pool's device's, as with cudaMallocFromPoolAsync). Errors:
 * INVALID_ARGUMENT (NULL, size 0, not a stream), OUT_OF_MEMORY (after
 * flushing the caches and retrying; the message has the size and the bytes
 * reserved and in use). */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_pool_alloc(gpumem_pool_t *pool, size_t size,
                                                            gpumem_stream_t stream, void **ptr);

/** Free `ptr` ordered on `stream` (any stream; work queued on `stream` before
 * the free may still use the block; work on other streams that used it must
 * be ordered before the free by the caller, as with cudaFreeAsync). Errors:
 * INVALID_POINTER (not from this pool), DOUBLE_FREE, INVALID_ARGUMENT (not
 * a stream), and the driver's error when the free reaches the CUDA pool and
 * fails: the block is then still allocated, still in the pool's table, and
 * the free may be retried (the pool's destroy says BUSY until it is). */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_pool_free(gpumem_pool_t *pool, void *ptr,
                                                           gpumem_stream_t stream);

/** Flush every thread's cache to the CUDA pool (each block freed on its own
 * stream), wait until those frees have run (the streams are synchronized),
 * then trim the CUDA pool to `keep_bytes` (cudaMemPoolTrimTo): memory not
 * in use beyond that goes back to the device. On a driver failure the error
 * is returned: blocks whose free failed stay cached (and usable), devices
 * not yet synchronized are remembered, and a retry finishes the work. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_pool_trim(gpumem_pool_t *pool, size_t keep_bytes);
/** Return to the CUDA pool every block that any thread cached for `stream`
 * (freed on it, so still ordered after its work) and forget the stream. Call
 * it before destroying a stream that was used with the pool: the cache names
 * streams by handle when it flushes. Errors: INVALID_ARGUMENT (not a pool or
 * stream), and the driver's. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_pool_forget_stream(gpumem_pool_t *pool,
                                                                    gpumem_stream_t stream);

/** Fill `stats` (start it from GPUMEM_POOL_STATS_INIT): the caches' counters
 * added up and the CUDA pool's attributes. Errors: INVALID_ARGUMENT (NULL,
 * not a pool, struct_size not set), and the driver's. Thread-safe; the
 * figures of a pool in use are a moment's. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_pool_get_stats(gpumem_pool_t *pool,
                                                                gpumem_pool_stats *stats);

/** The wrapped cudaMemPool_t, for interop (do not destroy it). */
GPUMEM_API gpumem_native_pool_t gpumem_pool_native(const gpumem_pool_t *pool);

/** Set the CUDA pool's release threshold. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_pool_set_release_threshold(gpumem_pool_t *pool,
                                                                            uint64_t bytes);

/** Export the pool for another process (handle type POSIX_FD at creation);
 * the caller owns and closes handle->fd after passing it on. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_pool_export(gpumem_pool_t *pool,
                                                             gpumem_shareable_handle *handle);

/** Import a pool exported by another process: it can import pointers and
 * free them, not allocate. `device` is given read-write access to the pool's
 * memory in this process (an imported pool is accessible from no device
 * until cudaMemPoolSetAccess says so). Errors: INVALID_ARGUMENT (not a pool
 * handle), INVALID_DEVICE, PEER_UNSUPPORTED (`device` cannot reach the
 * pool's device), NO_DEVICE. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_pool_import(const gpumem_shareable_handle *handle,
                                                             int device, gpumem_pool_t **pool);

/** 64 bytes that name one allocation for another process. */
typedef struct gpumem_pool_pointer {
  unsigned char data[64]; /**< opaque: CUDA's cudaMemPoolPtrExportData, copied as it is */
} gpumem_pool_pointer;

/** Describe the live allocation `ptr` of this pool for another process,
 * which maps it with gpumem_pool_import_pointer on the pool it imported
 * (cudaMemPoolExportPointer). The pool needs handle type POSIX_FD. Errors:
 * INVALID_ARGUMENT (NULL, not a pool), INVALID_POINTER (not a live
 * allocation of this pool), and the driver's. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_pool_export_pointer(gpumem_pool_t *pool, void *ptr,
                                                                     gpumem_pool_pointer *out);
/** Map an exported allocation in an imported pool; free it with
 * gpumem_pool_free before the exporter frees it. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_pool_import_pointer(gpumem_pool_t *pool,
                                                                     const gpumem_pool_pointer *in,
                                                                     void **ptr);

GPUMEM_EXTERN_C_END

#endif
