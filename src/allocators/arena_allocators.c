/* arena_allocators.c: libgpumem's arena behind the common allocator interface.
 *
 *   gpumem-arena   a LOCAL arena with the one device the allocator is made
 *                  for as its member, default chunk and shards
 *   gpumem-arena-lean
 *                  the same with GPUMEM_ARENA_REMAP_MEMORY: free pages move
 *                  whenever that keeps the memory held within 5% of the
 *                  most the blocks have used, whatever it costs in driver
 *                  calls (the other side of the default's trade-off, so that
 *                  gpumem-bench shows both)
 *   (arena)        an arena the caller made (gpumem_allocator_from_arena),
 *                  allocating on the member chosen then; not destroyed with
 *                  the allocator
 *
 * The arena is not stream-ordered: free makes the block reusable at once, by
 * any thread and stream, so the allocator does not carry
 * GPUMEM_ALLOCATOR_STREAM_ORDERED and a caller with work still queued on a
 * block synchronizes its stream before freeing it (gpumem-bench does, in the
 * workloads that write their blocks; the faithful host backend showed the
 * race when it did not).
 */
#include <stdlib.h>

#include "allocator.h"
#include "log.h"
#include "arena.h"

typedef struct arena_state {
  gpumem_arena_t *arena;
  int device;
} arena_state;

static gpumem_status open_with(int device, gpumem_arena_remap remap, void **state) {
  arena_state *s = calloc(1, sizeof *s);
  if (s == NULL) return gm_error(GPUMEM_ERR_OUT_OF_MEMORY, "no host memory for an arena");
  gpumem_arena_config c = GPUMEM_ARENA_CONFIG_INIT;
  c.devices = &device;
  c.device_count = 1;
  c.remap = remap;
  s->device = device;
  gpumem_status st = gm_arena_create(&c, &s->arena);
  if (st != GPUMEM_OK) {
    free(s);
    return st;
  }
  *state = s;
  return GPUMEM_OK;
}

static gpumem_status open_arena(int device, void **state) {
  return open_with(device, GPUMEM_ARENA_REMAP_BALANCED, state);
}

static gpumem_status open_lean(int device, void **state) {
  return open_with(device, GPUMEM_ARENA_REMAP_MEMORY, state);
}

/* A failed destroy leaves the arena recorded (half destroyed: see
 * gm_arena_destroy); the next call goes on from there. */
static gpumem_status close_arena(void *state) {
  arena_state *s = state;
  gpumem_status st = gm_arena_destroy(s->arena);
  if (st != GPUMEM_OK) return st;
  free(s);
  return GPUMEM_OK;
}

static gpumem_status arena_alloc(void *state, size_t size, gpumem_stream_t stream, void **ptr) {
  GM_UNUSED(stream);
  arena_state *s = state;
  return gm_arena_alloc(s->arena, size, 0, s->device, ptr); /* the wrapper does the rest */
}

static gpumem_status arena_free(void *state, void *ptr, size_t size, gpumem_stream_t stream) {
  GM_UNUSED(stream);
  return gm_arena_free_sized(((arena_state *)state)->arena, ptr, size); /* a wrong size: refused */
}

static gpumem_status arena_reserved(void *state, size_t *current, size_t *peak) {
  gpumem_arena_stats s = GPUMEM_ARENA_STATS_INIT;
  gpumem_status st = gm_arena_get_stats(((arena_state *)state)->arena, &s);
  *current = s.base.bytes_reserved;
  *peak = s.base.peak_bytes_reserved;
  return st;
}

/* Give the free pages back (gpumem_arena_trim); for a wrapped arena too:
 * the memory is free, whoever owns the arena. */
static gpumem_status arena_trim(void *state) {
  return gm_arena_trim(((arena_state *)state)->arena, NULL);
}

const gm_allocator_impl gm_allocator_gpumem_arena = {
    "gpumem-arena", "libgpumem's peer-mapped arena (TLSF over VMM pages that move), on one device",
    open_arena,     close_arena,
    arena_alloc,    arena_free,
    arena_reserved, arena_trim,
    false,
};

const gm_allocator_impl gm_allocator_gpumem_arena_lean = {
    "gpumem-arena-lean",
    "the arena with REMAP_MEMORY: pages move whenever that keeps it within 5% of peak use",
    open_lean,
    close_arena,
    arena_alloc,
    arena_free,
    arena_reserved,
    arena_trim,
    false,
};

static gpumem_status keep_arena(void *state) {
  free(state); /* the arena itself is the caller's */
  return GPUMEM_OK;
}

const gm_allocator_impl gm_allocator_wrapped_arena = {
    "arena",        "an arena configured by the caller",
    NULL,           keep_arena,
    arena_alloc,    arena_free,
    arena_reserved, arena_trim,
    false,
};

gpumem_status gm_arena_allocator_state(gpumem_arena_t *arena, int device, void **state) {
  arena_state *s = malloc(sizeof *s);
  if (s == NULL) return gm_error(GPUMEM_ERR_OUT_OF_MEMORY, "no host memory for an allocator");
  *s = (arena_state){arena, device};
  *state = s;
  return GPUMEM_OK;
}

gpumem_arena_t *gm_arena_allocator_arena(void *state) {
  return ((arena_state *)state)->arena;
}
