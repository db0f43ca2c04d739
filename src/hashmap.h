/* hashmap.h: an open-addressing map from non-zero uint64_t keys to uint64_t
 * values. Not thread-safe: the owner locks around it. */
#ifndef GPUMEM_SRC_HASHMAP_H
#define GPUMEM_SRC_HASHMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gm_hashmap {
  uint64_t *keys; /* 0 marks an empty slot */
  uint64_t *values;
  size_t capacity; /* a power of two, or 0 */
  size_t count;
} gm_hashmap;

#define GM_HASHMAP_INIT \
  { NULL, NULL, 0, 0 }

/* Insert or replace. False when memory for growing cannot be had (the map is
 * then unchanged) or the key is 0. */
bool gm_hashmap_put(gm_hashmap *map, uint64_t key, uint64_t value);
/* Make room for `count` entries, so that puts up to that count cannot fail.
 * False when memory cannot be had (the map is then unchanged). */
bool gm_hashmap_reserve(gm_hashmap *map, size_t count);
/* True and *value when found (value may be NULL). */
bool gm_hashmap_get(const gm_hashmap *map, uint64_t key, uint64_t *value);
/* True when the key was present and is now gone. */
bool gm_hashmap_remove(gm_hashmap *map, uint64_t key);
void gm_hashmap_free(gm_hashmap *map);

#endif
