/* arena.h: the arena's operations for the rest of libgpumem (gm_arena_*).
 *
 * Each is the public gpumem_arena_* function without the public entry's
 * bookkeeping (initialising, clearing and composing the caller's last
 * error): gpumem_arena_* in arena.c are one-line forwarders to these, and
 * other modules (the allocator interface's adapters) call these, so that a
 * failure's detail reaches their own caller whole. Semantics and errors are
 * those of gpumem/arena.h. */
#ifndef GPUMEM_SRC_ARENA_H
#define GPUMEM_SRC_ARENA_H

#include "gpumem/arena.h"
#include "internal.h"

gpumem_status gm_arena_create(const gpumem_arena_config *config, gpumem_arena_t **out);
gpumem_status gm_arena_destroy(gpumem_arena_t *a);
gpumem_status gm_arena_owner(gpumem_arena_t *a, const void *ptr, int *device);
gpumem_status gm_arena_get_stats(gpumem_arena_t *a, gpumem_arena_stats *out);
gpumem_status gm_arena_check(gpumem_arena_t *a, char *why_out, size_t why_len);
gpumem_status gm_arena_trim(gpumem_arena_t *a, size_t *released);
gpumem_status gm_arena_alloc(gpumem_arena_t *a, size_t size, size_t alignment, int device,
                             void **ptr);
gpumem_status gm_arena_free(gpumem_arena_t *a, void *ptr);
/* gm_arena_free, but INVALID_ARGUMENT (naming both sizes, nothing freed) when
 * the block was not allocated with `size` bytes. For the allocator
 * interface's free, which is given the size. */
gpumem_status gm_arena_free_sized(gpumem_arena_t *a, void *ptr, size_t size);
/* OK if `a` is a live arena that can allocate for `device` (a member, or
 * GPUMEM_ARENA_ANY_DEVICE for an interleaved arena). */
gpumem_status gm_arena_check_member(const gpumem_arena_t *a, int device);

#endif
