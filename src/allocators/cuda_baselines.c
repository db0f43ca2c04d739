/* cuda_baselines.c: CUDA's own allocators behind the common interface.
 *
 * These are what libgpumem's allocators are measured against, registered
 * like any other allocator so that gpumem-bench drives them the same way:
 *
 *   cuda-malloc  cudaMalloc / cudaFree: synchronous, no caching; it holds
 *                exactly what it hands out (the driver's rounding is not
 *                counted), so reserved equals in use.
 *   cuda-async   cudaMallocAsync / cudaFreeAsync on the device's default
 *                pool, with the release threshold raised to keep freed memory
 *                cached (the default of 0 returns it at every synchronize,
 *                which is not how applications run it). At destroy the pool
 *                is trimmed and its previous threshold restored.
 *   cuda-pool    a cudaMemPool_t of its own with cudaMallocFromPoolAsync,
 *                same threshold, destroyed with the allocator.
 *
 * They go through the backend seam, so they run on the host backend too,
 * where the bench uses them without a GPU.
 */
#include <stdlib.h>

#include "allocator.h"
#include "backend.h"

/* ---- cuda-malloc ---- */

typedef struct malloc_state {
  int device;
} malloc_state;

static gpumem_status malloc_create(int device, void **state) {
  int count = 0;
  gpumem_status st = gm_be_device_count(&count);
  if (st != GPUMEM_OK) return st;
  if (device < 0 || device >= count) {
    return gm_error(GPUMEM_ERR_INVALID_DEVICE, "device %d does not exist (%d visible)", device,
                    count);
  }
  malloc_state *s = calloc(1, sizeof *s);
  if (s == NULL) return gm_error(GPUMEM_ERR_OUT_OF_MEMORY, "no host memory for an allocator");
  s->device = device;
  *state = s;
  return GPUMEM_OK;
}

static gpumem_status free_state(void *state) {
  free(state); /* no block is left: the base refuses with blocks allocated */
  return GPUMEM_OK;
}

static gpumem_status malloc_alloc(void *state, size_t size, gpumem_stream_t stream, void **ptr) {
  GM_UNUSED(stream);
  return gm_be_dev_malloc(((malloc_state *)state)->device, size, ptr);
}

static gpumem_status malloc_free(void *state, void *ptr, size_t size, gpumem_stream_t stream) {
  GM_UNUSED(state);
  GM_UNUSED(size);
  GM_UNUSED(stream);
  return gm_be_dev_free(ptr);
}

const gm_allocator_impl gm_allocator_cuda_malloc = {
    "cuda-malloc", "cudaMalloc / cudaFree (synchronous, no cache)",
    malloc_create, free_state,
    malloc_alloc,  malloc_free,
    NULL,          NULL,
    true, /* cudaFree waits for the device */
};

/* ---- cuda-async and cuda-pool: stream-ordered pools ---- */

typedef struct pool_state {
  gpumem_native_pool_t pool;
  bool owned;                  /* cuda-pool: destroy the pool with the allocator */
  uint64_t previous_threshold; /* cuda-async: restored at destroy */
} pool_state;

static gpumem_status pool_setup(pool_state *s) {
  gpumem_status st =
      gm_be_pool_get_attr(s->pool, GM_POOL_RELEASE_THRESHOLD, &s->previous_threshold);
  if (st == GPUMEM_OK) st = gm_be_pool_set_attr(s->pool, GM_POOL_RELEASE_THRESHOLD, UINT64_MAX);
  /* Reset the high-water marks so that the peaks are this allocator's. */
  if (st == GPUMEM_OK) st = gm_be_pool_set_attr(s->pool, GM_POOL_RESERVED_MEM_HIGH, 0);
  if (st == GPUMEM_OK) st = gm_be_pool_set_attr(s->pool, GM_POOL_USED_MEM_HIGH, 0);
  return st;
}

static gpumem_status pool_open(int device, bool own, void **state) {
  gm_device_props props;
  gpumem_status st = gm_be_device_props(device, &props);
  if (st != GPUMEM_OK) return st;
  if (!props.pools) {
    return gm_error(GPUMEM_ERR_NOT_SUPPORTED, "device %d does not support memory pools", device);
  }
  pool_state *s = calloc(1, sizeof *s);
  if (s == NULL) return gm_error(GPUMEM_ERR_OUT_OF_MEMORY, "no host memory for an allocator");
  s->owned = own;
  if (own) {
    gm_pool_props p = {device, GPUMEM_HANDLE_NONE, 0};
    st = gm_be_pool_create(&p, &s->pool);
  } else {
    st = gm_be_pool_default(device, &s->pool);
  }
  if (st == GPUMEM_OK) st = pool_setup(s);
  if (st != GPUMEM_OK) {
    if (own && s->pool != NULL) gm_be_pool_destroy(s->pool);
    free(s);
    return st;
  }
  *state = s;
  return GPUMEM_OK;
}

static gpumem_status async_create(int device, void **state) {
  return pool_open(device, false, state);
}

static gpumem_status own_pool_create(int device, void **state) {
  return pool_open(device, true, state);
}

/* Each step is redone by a retry only if it failed: the pool destroyed, or
 * the default pool trimmed and its threshold restored (both may be redone). */
static gpumem_status pool_close(void *state) {
  pool_state *s = state;
  gpumem_status st = GPUMEM_OK;
  if (s->owned) {
    st = gm_be_pool_destroy(s->pool);
  } else { /* leave the shared default pool as it was found, its cache emptied */
    st = gm_be_pool_trim(s->pool, 0);
    if (st == GPUMEM_OK)
      st = gm_be_pool_set_attr(s->pool, GM_POOL_RELEASE_THRESHOLD, s->previous_threshold);
  }
  if (st != GPUMEM_OK) return st;
  free(s);
  return GPUMEM_OK;
}

static gpumem_status pool_alloc(void *state, size_t size, gpumem_stream_t stream, void **ptr) {
  return gm_be_pool_alloc(((pool_state *)state)->pool, size, stream, ptr);
}

static gpumem_status pool_free(void *state, void *ptr, size_t size, gpumem_stream_t stream) {
  GM_UNUSED(state);
  GM_UNUSED(size);
  return gm_be_pool_free(ptr, stream);
}

static gpumem_status pool_reserved(void *state, size_t *current, size_t *peak) {
  pool_state *s = state;
  uint64_t cur = 0, high = 0;
  gpumem_status st = gm_be_pool_get_attr(s->pool, GM_POOL_RESERVED_MEM_CURRENT, &cur);
  if (st == GPUMEM_OK) st = gm_be_pool_get_attr(s->pool, GM_POOL_RESERVED_MEM_HIGH, &high);
  *current = (size_t)cur;
  *peak = (size_t)high;
  return st;
}

static gpumem_status pool_trim(void *state) {
  return gm_be_pool_trim(((pool_state *)state)->pool, 0);
}

const gm_allocator_impl gm_allocator_cuda_async = {
    "cuda-async",
    "cudaMallocAsync / cudaFreeAsync on the device's default pool (release threshold: keep all)",
    async_create,
    pool_close,
    pool_alloc,
    pool_free,
    pool_reserved,
    pool_trim,
    true,
};

const gm_allocator_impl gm_allocator_cuda_pool = {
    "cuda-pool",
    "cudaMallocFromPoolAsync on a cudaMemPool_t of its own (release threshold: keep all)",
    own_pool_create,
    pool_close,
    pool_alloc,
    pool_free,
    pool_reserved,
    pool_trim,
    true,
};
