/* wrapped_allocators.c: a pool, arena or buffer the caller configured,
 * behind the common allocator interface (gpumem_allocator_from_*). The pool
 * and arena use the registry's adapters (pool_allocators.c,
 * arena_allocators.c) on the caller's object; the buffer's stack is here.
 *
 * The registry's allocators are made with defaults; an application that
 * tuned a pool (its release threshold, cache bound, peers) or an arena (its
 * members, placement) wraps that very object instead, so that a library it
 * links allocates through it. The allocator does not own the object: its
 * destroy leaves it alive, and the caller destroys it after the allocator.
 *
 *   pool    alloc/free are gpumem_pool_alloc/free on the stream given:
 *           stream-ordered.
 *   arena   alloc from the device chosen at wrapping (or any member), free
 *           at once: not stream-ordered (synchronize before freeing memory
 *           that queued work still uses).
 *   buffer  a stack allocator over one growable buffer: blocks are carved
 *           from its end in allocation order (aligned to 256 bytes), the
 *           buffer growing as needed while its address never moves; frees
 *           may come in any order and a block's memory is reused once every
 *           block above it is freed (the buffer's size then shrinks; its
 *           capacity stays until gpumem_buffer_shrink_to_fit). Suited to
 *           scratch space that lives and dies with a phase of a solver. Not
 *           stream-ordered.
 */
#include <pthread.h>
#include <stdlib.h>

#include "allocator.h"
#include "api.h"
#include "arena.h"
#include "buffer.h"
#include "pool.h"
#include "pool.h"

#define STACK_ALIGN 256

/* ---- buffer: a stack ---- */

typedef struct stack_block {
  size_t offset, size;
  bool freed;
} stack_block;

typedef struct stack {
  gpumem_buffer_t *buffer;
  pthread_mutex_t lock;
  stack_block *blocks; /* in allocation order */
  size_t count, capacity;
} stack;

static gpumem_status stack_destroy(void *state) {
  stack *s = state; /* the buffer is the caller's: nothing to fail */
  pthread_mutex_destroy(&s->lock);
  free(s->blocks);
  free(s);
  return GPUMEM_OK;
}

static gpumem_status stack_alloc(void *state, size_t size, gpumem_stream_t stream, void **ptr) {
  GM_UNUSED(stream);
  stack *s = state;
  gpumem_status st = GPUMEM_OK;
  pthread_mutex_lock(&s->lock);
  size_t top = gpumem_buffer_size(s->buffer), offset = 0, end = 0;
  if (!gm_round_up(top, STACK_ALIGN, &offset) || gm_add_overflows(offset, size, &end)) {
    st = gm_error(GPUMEM_ERR_CAPACITY, "a block of %zu bytes does not fit the buffer", size);
  } else if (!gm_array_make_room((void **)&s->blocks, &s->capacity, s->count, sizeof *s->blocks,
                                 16)) {
    st = gm_error(GPUMEM_ERR_OUT_OF_MEMORY, "no host memory for a stack entry");
  } else {
    st = gm_buffer_resize(s->buffer, end); /* rolls back on failure */
  }
  if (st == GPUMEM_OK) {
    s->blocks[s->count++] = (stack_block){offset, size, false};
    *ptr = (char *)gpumem_buffer_data(s->buffer) + offset;
  }
  pthread_mutex_unlock(&s->lock);
  return st;
}

static gpumem_status stack_free(void *state, void *ptr, size_t size, gpumem_stream_t stream) {
  GM_UNUSED(stream);
  stack *s = state;
  gpumem_status st = GPUMEM_OK;
  pthread_mutex_lock(&s->lock);
  size_t offset = (size_t)((char *)ptr - (char *)gpumem_buffer_data(s->buffer));
  size_t i = s->count;
  while (i > 0 && s->blocks[i - 1].offset != offset)
    i--;
  if (i == 0 || (char *)ptr < (char *)gpumem_buffer_data(s->buffer)) {
    st = gm_error(GPUMEM_ERR_INVALID_POINTER, "%p is not a block of this stack", ptr);
  } else if (s->blocks[i - 1].freed) {
    st = gm_error(GPUMEM_ERR_DOUBLE_FREE, "%p was already freed", ptr);
  } else if (s->blocks[i - 1].size != size) {
    st = gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "%p was allocated with %zu bytes, not %zu", ptr,
                  s->blocks[i - 1].size, size);
  } else {
    s->blocks[i - 1].freed = true;
    size_t keep = s->count;
    while (keep > 0 && s->blocks[keep - 1].freed) /* pop what is free on top */
      keep--;
    size_t new_size = keep ? s->blocks[keep - 1].offset + s->blocks[keep - 1].size : 0;
    st = gm_buffer_resize(s->buffer, new_size); /* shrinking maps nothing: cannot fail */
    if (st == GPUMEM_OK)
      s->count = keep;
    else
      s->blocks[i - 1].freed = false;
  }
  pthread_mutex_unlock(&s->lock);
  return st;
}

static gpumem_status stack_reserved(void *state, size_t *current, size_t *peak) {
  gpumem_buffer_stats s = GPUMEM_BUFFER_STATS_INIT;
  gpumem_status st = gm_buffer_get_stats(((stack *)state)->buffer, &s);
  *current = s.base.bytes_reserved;
  *peak = s.base.peak_bytes_reserved;
  return st;
}

const gm_allocator_impl gm_allocator_wrapped_buffer = {
    "buffer",       "a stack allocator on a buffer configured by the caller",
    NULL,           stack_destroy,
    stack_alloc,    stack_free,
    stack_reserved, NULL,
    false,
};

/* ---- the public wrappers ---- */

static gpumem_status wrap_pool(gpumem_pool_t *pool, gpumem_allocator *out) {
  if (gpumem_pool_native(pool) == NULL)
    return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "%p is not a live pool", (void *)pool);
  return gm_allocator_make(&gm_allocator_wrapped_pool, pool, gm_pool_device(pool), out);
}

GPUMEM_API gpumem_status gpumem_allocator_from_pool(gpumem_pool_t *pool,
                                                    gpumem_allocator *allocator) {
  GM_API_FORWARD(wrap_pool(pool, allocator));
}

static gpumem_status wrap_arena(gpumem_arena_t *arena, int device, gpumem_allocator *out) {
  gpumem_status st = gm_arena_check_member(arena, device);
  if (st != GPUMEM_OK) return st;
  void *state = NULL;
  st = gm_arena_allocator_state(arena, device, &state);
  if (st == GPUMEM_OK) st = gm_allocator_make(&gm_allocator_wrapped_arena, state, device, out);
  if (st != GPUMEM_OK) free(state);
  return st;
}

GPUMEM_API gpumem_status gpumem_allocator_from_arena(gpumem_arena_t *arena, int device,
                                                     gpumem_allocator *allocator) {
  GM_API_FORWARD(wrap_arena(arena, device, allocator));
}

static gpumem_status wrap_buffer(gpumem_buffer_t *buffer, gpumem_allocator *out) {
  gpumem_buffer_stats bs = GPUMEM_BUFFER_STATS_INIT;
  gpumem_status st = gm_buffer_get_stats(buffer, &bs);
  if (st != GPUMEM_OK) return st;
  if (bs.imported)
    return gm_error(GPUMEM_ERR_NOT_SUPPORTED, "a received buffer has a fixed size: no stack on it");
  stack *s = calloc(1, sizeof *s);
  if (s == NULL) return gm_error(GPUMEM_ERR_OUT_OF_MEMORY, "no host memory for an allocator");
  s->buffer = buffer;
  pthread_mutex_init(&s->lock, NULL);
  st = gm_allocator_make(&gm_allocator_wrapped_buffer, s, bs.device, out);
  if (st != GPUMEM_OK) stack_destroy(s); /* always OK */
  return st;
}

GPUMEM_API gpumem_status gpumem_allocator_from_buffer(gpumem_buffer_t *buffer,
                                                      gpumem_allocator *allocator) {
  GM_API_FORWARD(wrap_buffer(buffer, allocator));
}
