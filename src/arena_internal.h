/* arena_internal.h: the arena's alloc and free without the public entry's
 * bookkeeping (clearing and composing the last error, checking that the
 * library is initialised), for callers that do it themselves: the arena's
 * registration with the allocator interface, whose wrapper already does. */
#ifndef GPUMEM_SRC_ARENA_INTERNAL_H
#define GPUMEM_SRC_ARENA_INTERNAL_H

#include "gpumem/arena.h"
#include "internal.h"

gpumem_status gm_arena_alloc(gpumem_arena_t *a, size_t size, size_t alignment, int device,
                             void **ptr);
gpumem_status gm_arena_free(gpumem_arena_t *a, void *ptr);
/* OK if `a` is a live arena that can allocate for `device` (a member, or
 * GPUMEM_ARENA_ANY_DEVICE for an interleaved arena). */
gpumem_status gm_arena_check_member(const gpumem_arena_t *a, int device);

#endif
