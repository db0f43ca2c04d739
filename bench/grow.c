/* grow.c: the `grow` workload: making a device array larger, four ways.
 *
 *   buffer-exact      gpumem_buffer_t, exact growth (one segment per step)
 *   buffer-geometric  gpumem_buffer_t, geometric growth (factor 2)
 *   realloc           what codes do without VMM: cudaMalloc the new size, copy
 *                     the old contents on the device, cudaFree the old block
 *   vmm-floor         the raw VMM floor: per step one create, one map and one
 *                     set-access (gpumem_vmm_*, which add only their argument
 *                     checks to the driver calls), nothing else
 *
 * Two patterns: growing from 0 to a target in fixed steps, and "batch N+-1",
 * a size that goes one byte above and below N, over and over (a batch that
 * gains or loses one item), where a vector-like buffer should make no driver
 * call at all after its first growth. Driver calls are counted from the
 * seam's per-operation counters (gb_driver_calls, driver_calls.c: the only
 * use of anything but the public API), so the claim is checked, not assumed.
 */
#include <stdlib.h>
#include <string.h>

#include "bench.h"

static const struct {
  const char *name, *description;
} growers[GB_GROWER_COUNT] = {
    {"buffer-exact", "gpumem_buffer_t, exact growth (one segment per step)"},
    {"buffer-geometric", "gpumem_buffer_t, geometric growth (factor 2)"},
    {"realloc", "cudaMalloc the new size, copy on the device, cudaFree the old"},
    {"vmm-floor", "per step one VMM create + map + set-access, nothing else"},
};

const char *gb_grower_name(gb_grower g) {
  return (int)g >= 0 && g < GB_GROWER_COUNT ? growers[g].name : "?";
}

const char *gb_grower_description(gb_grower g) {
  return (int)g >= 0 && g < GB_GROWER_COUNT ? growers[g].description : "?";
}

static bool fail_with(char *err, size_t len, const char *what) {
  snprintf(err, len, "%s: %s", what, gpumem_last_error());
  return false;
}

/* ---- one grower's state, whatever it is ---- */

typedef struct grower {
  gb_grower kind;
  int device;
  gpumem_buffer_t *buffer;
  gpumem_allocator malloc_;
  void *block;
  size_t block_size;
  char *va; /* vmm-floor: the reservation */
  size_t va_size;
  size_t chunk;
  gpumem_phys_t *handles; /* vmm-floor: one per mapped segment, in address order */
  size_t *sizes;
  size_t nhandles, mapped;
  size_t peak; /* most bytes held */
} grower;

static bool grower_open(grower *g, gb_grower kind, int device, size_t max, size_t chunk, char *err,
                        size_t len) {
  memset(g, 0, sizeof *g);
  g->kind = kind;
  g->device = device;
  g->chunk = chunk;
  if (kind == GB_BUFFER_EXACT || kind == GB_BUFFER_GEOMETRIC) {
    gpumem_buffer_config c = GPUMEM_BUFFER_CONFIG_INIT;
    c.device = device;
    c.max_size = max;
    c.growth = kind == GB_BUFFER_EXACT ? GPUMEM_GROW_EXACT : GPUMEM_GROW_GEOMETRIC;
    c.growth_max = max;
    return gpumem_buffer_create(&c, &g->buffer) == GPUMEM_OK || fail_with(err, len, "buffer");
  }
  if (kind == GB_REALLOC) {
    g->malloc_ = (gpumem_allocator)GPUMEM_ALLOCATOR_INIT;
    return gpumem_allocator_create("cuda-malloc", device, &g->malloc_) == GPUMEM_OK ||
           fail_with(err, len, "cuda-malloc");
  }
  g->va_size = max;
  g->handles = calloc(max / chunk + 2, sizeof *g->handles);
  g->sizes = calloc(max / chunk + 2, sizeof *g->sizes);
  if (g->handles == NULL || g->sizes == NULL) {
    snprintf(err, len, "out of host memory");
    return false;
  }
  void *va = NULL;
  if (gpumem_vmm_reserve(max, 0, &va) != GPUMEM_OK) return fail_with(err, len, "reserve");
  g->va = va;
  return true;
}

/* Make the array `size` bytes (it holds `old` bytes of contents). */
static bool grower_resize(grower *g, size_t size, char *err, size_t len) {
  switch (g->kind) {
  case GB_BUFFER_EXACT:
  case GB_BUFFER_GEOMETRIC:
    if (gpumem_buffer_resize(g->buffer, size) != GPUMEM_OK) return fail_with(err, len, "resize");
    if (gpumem_buffer_capacity(g->buffer) > g->peak) g->peak = gpumem_buffer_capacity(g->buffer);
    return true;
  case GB_REALLOC: {
    void *fresh = NULL;
    if (g->malloc_.alloc(g->malloc_.ctx, size, NULL, &fresh) != GPUMEM_OK)
      return fail_with(err, len, "cudaMalloc");
    if (g->block != NULL) {
      size_t keep = g->block_size < size ? g->block_size : size;
      if (gpumem_memcpy(fresh, g->block, keep, NULL) != GPUMEM_OK ||
          gpumem_stream_synchronize(NULL) != GPUMEM_OK)
        return fail_with(err, len, "copy");
      if (g->block_size + size > g->peak) g->peak = g->block_size + size;
      g->malloc_.free(g->malloc_.ctx, g->block, g->block_size, NULL);
    }
    g->block = fresh;
    g->block_size = size;
    if (size > g->peak) g->peak = size;
    return true;
  }
  default: { /* vmm-floor: map or unmap whole chunks, eagerly */
    size_t want = (size + g->chunk - 1) / g->chunk * g->chunk;
    while (g->mapped < want) {
      size_t bytes = want - g->mapped;
      gpumem_phys_props p = {g->device, GPUMEM_HANDLE_NONE, false};
      gpumem_access_desc rw = {g->device, GPUMEM_ACCESS_READWRITE};
      gpumem_phys_t h = 0;
      if (gpumem_vmm_create(&p, bytes, &h) != GPUMEM_OK) return fail_with(err, len, "vmm step");
      g->sizes[g->nhandles] = bytes;
      if (gpumem_vmm_map(g->va + g->mapped, bytes, 0, h) != GPUMEM_OK) {
        fail_with(err, len, "vmm step"); /* before the release replaces the error */
        GB_CHECKED(gpumem_vmm_release(h));
        return false;
      }
      g->handles[g->nhandles++] = h; /* mapped: grower_close unmaps and releases it */
      if (gpumem_vmm_set_access(g->va + g->mapped, bytes, &rw, 1) != GPUMEM_OK) {
        g->mapped += bytes;
        return fail_with(err, len, "vmm step");
      }
      g->mapped += bytes;
    }
    /* Shrink eagerly: drop the last segments while they lie wholly above. */
    while (g->nhandles > 0 && g->mapped - g->sizes[g->nhandles - 1] >= want) {
      size_t bytes = g->sizes[--g->nhandles];
      if (gpumem_vmm_unmap(g->va + g->mapped - bytes, bytes) != GPUMEM_OK ||
          gpumem_vmm_release(g->handles[g->nhandles]) != GPUMEM_OK)
        return fail_with(err, len, "vmm shrink");
      g->mapped -= bytes;
    }
    if (g->mapped > g->peak) g->peak = g->mapped;
    return true;
  }
  }
}

static void grower_close(grower *g) {
  if (gpumem_device_synchronize(g->device) != GPUMEM_OK ||
      (g->buffer != NULL && gpumem_buffer_destroy(g->buffer) != GPUMEM_OK))
    fprintf(stderr, "gpumem-bench: cleaning up a grower: %s\n", gpumem_last_error());
  if (g->block != NULL) g->malloc_.free(g->malloc_.ctx, g->block, g->block_size, NULL);
  if (g->malloc_.destroy != NULL) GB_CHECKED(gpumem_allocator_destroy(&g->malloc_));
  if (g->va != NULL) {
    for (size_t i = g->nhandles; i-- > 0;) {
      g->mapped -= g->sizes[i]; /* every listed handle is mapped */
      GB_CHECKED(gpumem_vmm_unmap(g->va + g->mapped, g->sizes[i]));
      GB_CHECKED(gpumem_vmm_release(g->handles[i]));
    }
    GB_CHECKED(gpumem_vmm_free(g->va, g->va_size));
  }
  free(g->handles);
  free(g->sizes);
}

double gb_grow_steps(gb_grower kind, int device, size_t target, size_t step, size_t chunk,
                     uint64_t *calls, size_t *peak, char *err, size_t len) {
  grower g;
  if (!grower_open(&g, kind, device, target, chunk, err, len)) return -1;
  uint64_t calls0 = gb_driver_calls();
  double t0 = gb_now_ns();
  bool ok = true;
  for (size_t size = step; ok && size <= target; size += step)
    ok = grower_resize(&g, size, err, len);
  ok = ok && gpumem_device_synchronize(device) == GPUMEM_OK;
  double elapsed = gb_now_ns() - t0;
  *calls = gb_driver_calls() - calls0;
  *peak = g.peak;
  grower_close(&g);
  return ok ? elapsed : -1;
}

double gb_grow_batch(gb_grower kind, int device, size_t n, size_t iterations, size_t chunk,
                     uint64_t *calls_after_first, size_t *peak, char *err, size_t len) {
  grower g;
  if (!grower_open(&g, kind, device, n + chunk, chunk, err, len)) return -1;
  bool ok = grower_resize(&g, n, err, len);
  uint64_t calls1 = 0;
  double t0 = gb_now_ns();
  for (size_t i = 0; ok && i < iterations; i++) {
    ok = grower_resize(&g, n + 1, err, len) && grower_resize(&g, n - 1, err, len);
    if (i == 0) calls1 = gb_driver_calls();
  }
  ok = ok && gpumem_device_synchronize(device) == GPUMEM_OK;
  double elapsed = gb_now_ns() - t0;
  *calls_after_first = gb_driver_calls() - calls1;
  *peak = g.peak;
  grower_close(&g);
  return ok ? elapsed : -1;
}
