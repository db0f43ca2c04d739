/* allocator.h: how an allocator registers with the common interface.
 *
 * An implementation supplies raw alloc/free and what it knows about reserved
 * memory; allocator.c wraps it into a public gpumem_allocator that counts
 * the statistics and writes the GPUMEM_TRACE lines, so each allocator is one
 * registration (a gm_allocator_impl and a line in allocator.c's table).
 */
#ifndef GPUMEM_SRC_ALLOCATOR_H
#define GPUMEM_SRC_ALLOCATOR_H

#include "gpumem/allocator.h"
#include "internal.h"

typedef struct gm_allocator_impl {
  const char *name;
  const char *description;
  gpumem_status (*create)(int device, void **state);
  /* Release the state; on failure the state is as it was, still usable, and
   * destroy may be called again. */
  gpumem_status (*destroy)(void *state);
  gpumem_status (*alloc)(void *state, size_t size, gpumem_stream_t stream, void **ptr);
  gpumem_status (*free)(void *state, void *ptr, size_t size, gpumem_stream_t stream);
  /* Bytes held from the device, now and at most; NULL: the bytes in use. */
  gpumem_status (*reserved)(void *state, size_t *current, size_t *peak);
  /* Give cached memory back; NULL: nothing is cached. */
  gpumem_status (*trim)(void *state);
  /* free(ptr, stream) may be called while work queued on stream still uses
   * ptr (GPUMEM_ALLOCATOR_STREAM_ORDERED). */
  bool stream_ordered;
} gm_allocator_impl;

/* Wrap `state` (owned by the allocator: impl->destroy(state) at its destroy)
 * in the base every libgpumem allocator shares, and fill `out`. */
gpumem_status gm_allocator_make(const gm_allocator_impl *impl, void *state, int device,
                                gpumem_allocator *out);
/* gpumem_allocator_create without the API wrapper (alloc_conf.c). */
gpumem_status gm_allocator_create_named(const char *name, int device, gpumem_allocator *out);
/* For an allocator made by libgpumem (gpumem_allocator_create, from_*,
 * gm_conf_allocator_create): its implementation and state; false for one
 * the application filled in. */
bool gm_allocator_inner(const gpumem_allocator *a, const gm_allocator_impl **impl, void **state);
/* The arena behind a gpumem-arena or wrapped-arena state. */
gpumem_arena_t *gm_arena_allocator_arena(void *state);
/* gpumem_stats_print without the API wrapper (no initialisation: usable at
 * exit). */
gpumem_status gm_stats_print_file(const gpumem_allocator *a, FILE *out, gpumem_stats_format format);
/* Forget the default allocator, destroying it if libgpumem made it (at
 * finalize). */
gpumem_status gm_allocator_release_default(void);

/* The CUDA baselines (allocators/cuda_baselines.c). */
extern const gm_allocator_impl gm_allocator_cuda_malloc;
extern const gm_allocator_impl gm_allocator_cuda_async;
extern const gm_allocator_impl gm_allocator_cuda_pool;
/* libgpumem's pool (allocators/pool_allocators.c). */
extern const gm_allocator_impl gm_allocator_gpumem_pool;
extern const gm_allocator_impl gm_allocator_gpumem_pool_nocache;
/* libgpumem's arena (allocators/arena_allocators.c). */
extern const gm_allocator_impl gm_allocator_gpumem_arena;
extern const gm_allocator_impl gm_allocator_gpumem_arena_lean;
/* Objects the caller made and configured (allocators/wrapped_allocators.c). */
extern const gm_allocator_impl gm_allocator_wrapped_pool;
extern const gm_allocator_impl gm_allocator_wrapped_arena;
extern const gm_allocator_impl gm_allocator_wrapped_buffer;
/* The state gm_allocator_wrapped_arena works on: `arena`, allocating on
 * `device` (arena_allocators.c). */
gpumem_status gm_arena_allocator_state(gpumem_arena_t *arena, int device, void **state);

#endif
