/* hashmap.c: linear probing with backward-shift deletion.
 *
 * The library keeps registries of live objects (physical handles, emulated
 * allocations) keyed by 64-bit handles or addresses. Keys are mixed with a
 * 64-bit finaliser so that aligned addresses spread over the table; the
 * table doubles at 50% load, and deletion shifts the following run back
 * instead of leaving tombstones, so lookups stay short however long the map
 * lives.
 */
#include <stdlib.h>

#include "hashmap.h"

static uint64_t mix(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return k;
}

static bool grow(gm_hashmap *map) {
  size_t cap = map->capacity ? map->capacity * 2 : 64;
  uint64_t *keys = calloc(cap, sizeof *keys);
  uint64_t *values = calloc(cap, sizeof *values);
  if (keys == NULL || values == NULL) {
    free(keys);
    free(values);
    return false;
  }
  for (size_t i = 0; i < map->capacity; i++) {
    if (map->keys[i] == 0) continue;
    size_t j = mix(map->keys[i]) & (cap - 1);
    while (keys[j] != 0)
      j = (j + 1) & (cap - 1);
    keys[j] = map->keys[i];
    values[j] = map->values[i];
  }
  free(map->keys);
  free(map->values);
  map->keys = keys;
  map->values = values;
  map->capacity = cap;
  return true;
}

static size_t find(const gm_hashmap *map, uint64_t key, bool *found) {
  size_t mask = map->capacity - 1;
  size_t i = mix(key) & mask;
  while (map->keys[i] != 0 && map->keys[i] != key)
    i = (i + 1) & mask;
  *found = map->keys[i] == key;
  return i;
}

bool gm_hashmap_reserve(gm_hashmap *map, size_t count) {
  while (count * 2 > map->capacity)
    if (!grow(map)) return false;
  return true;
}

bool gm_hashmap_put(gm_hashmap *map, uint64_t key, uint64_t value) {
  if (key == 0) return false;
  if (!gm_hashmap_reserve(map, map->count + 1)) return false;
  bool found;
  size_t i = find(map, key, &found);
  if (!found) {
    map->keys[i] = key;
    map->count++;
  }
  map->values[i] = value;
  return true;
}

bool gm_hashmap_get(const gm_hashmap *map, uint64_t key, uint64_t *value) {
  if (key == 0 || map->capacity == 0) return false;
  bool found;
  size_t i = find(map, key, &found);
  if (found && value != NULL) *value = map->values[i];
  return found;
}

bool gm_hashmap_remove(gm_hashmap *map, uint64_t key) {
  if (key == 0 || map->capacity == 0) return false;
  bool found;
  size_t i = find(map, key, &found);
  if (!found) return false;
  size_t mask = map->capacity - 1;
  /* Backward shift: move each later entry of the run into the hole when its
   * home slot does not lie (cyclically) between the hole and itself. */
  size_t hole = i;
  for (size_t j = (i + 1) & mask; map->keys[j] != 0; j = (j + 1) & mask) {
    size_t home = mix(map->keys[j]) & mask;
    bool movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
    if (movable) {
      map->keys[hole] = map->keys[j];
      map->values[hole] = map->values[j];
      hole = j;
    }
  }
  map->keys[hole] = 0;
  map->values[hole] = 0;
  map->count--;
  return true;
}

void gm_hashmap_free(gm_hashmap *map) {
  free(map->keys);
  free(map->values);
  *map = (gm_hashmap)GM_HASHMAP_INIT;
}
