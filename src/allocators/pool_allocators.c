/* pool_allocators.c: libgpumem's pool behind the common allocator interface.
 *
 *   gpumem-pool          gpumem_pool_t with its per-thread cache, on a pool of
 *                        its own (release threshold: keep all)
 *   gpumem-pool-nocache  the same without the cache: the wrapper's own cost
 *                        over cudaMallocFromPoolAsync, for comparison
 *   (pool)               a pool the caller made and configured
 *                        (gpumem_allocator_from_pool): the same functions on
 *                        it, not destroyed with the allocator
 */
#include "allocator.h"
#include "log.h"
#include "backend.h"
#include "pool.h"

static gpumem_status open_pool(int device, bool cache, void **state) {
  gpumem_pool_config c = GPUMEM_POOL_CONFIG_INIT;
  c.device = device;
  c.cache = cache;
  gpumem_pool_t *p = NULL;
  gpumem_status st = gm_pool_create(&c, &p);
  if (st == GPUMEM_OK) *state = p;
  return st;
}

static gpumem_status open_cached(int device, void **state) {
  return open_pool(device, true, state);
}

static gpumem_status open_uncached(int device, void **state) {
  return open_pool(device, false, state);
}

/* A failure (BUSY with blocks allocated, or the driver's) leaves the pool
 * as it was: gpumem_allocator_destroy reports it and may be called again. */
static gpumem_status close_pool(void *state) {
  return gm_pool_destroy(state);
}

static gpumem_status pool_alloc(void *state, size_t size, gpumem_stream_t stream, void **ptr) {
  return gm_pool_alloc(state, size, stream, ptr);
}

static gpumem_status pool_free(void *state, void *ptr, size_t size, gpumem_stream_t stream) {
  return gm_pool_free_sized(state, ptr, size, stream); /* a wrong size: refused */
}

static gpumem_status pool_reserved(void *state, size_t *current, size_t *peak) {
  gpumem_pool_stats s = GPUMEM_POOL_STATS_INIT;
  gpumem_status st = gm_pool_get_stats(state, &s);
  *current = s.base.bytes_reserved;
  *peak = s.base.peak_bytes_reserved;
  return st;
}

static gpumem_status pool_trim(void *state) {
  return gm_pool_trim(state, 0);
}

const gm_allocator_impl gm_allocator_gpumem_pool = {
    "gpumem-pool", "libgpumem's stream-ordered pool with its per-thread cache",
    open_cached,   close_pool,
    pool_alloc,    pool_free,
    pool_reserved, pool_trim,
    true,
};

const gm_allocator_impl gm_allocator_gpumem_pool_nocache = {
    "gpumem-pool-nocache",
    "libgpumem's stream-ordered pool without the cache",
    open_uncached,
    close_pool,
    pool_alloc,
    pool_free,
    pool_reserved,
    pool_trim,
    true,
};

static gpumem_status keep_pool(void *state) {
  GM_UNUSED(state); /* the caller's: it destroys the pool after the allocator */
  return GPUMEM_OK;
}

const gm_allocator_impl gm_allocator_wrapped_pool = {
    "pool",        "a pool configured by the caller",
    NULL,          keep_pool,
    pool_alloc,    pool_free,
    pool_reserved, pool_trim,
    true,
};
