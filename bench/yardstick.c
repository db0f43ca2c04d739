/* yardstick.c: host-memory allocators, the yardstick for host-side cost.
 *
 * A device allocator's pair (alloc + free served from its cache) costs CPU
 * time only, so the fair question is how it compares with a good CPU
 * allocator doing the same pair in the same run on the same machine. Two
 * are offered to the `pairs` workload through the ordinary allocator
 * interface (gpumem_allocator filled by hand, as allocator.h allows):
 *
 *   malloc     glibc malloc/free
 *   mimalloc   mimalloc's mi_malloc/mi_free, loaded with dlopen from
 *              libmimalloc.so.2 (Debian: libmimalloc2.0) when it is there;
 *              without it the row is left out of the default run, and asked
 *              for by name it fails saying why
 *
 * They allocate host memory, not device memory: every report marks their rows
 * `memory host`, and their reserved bytes are unknown (reported as 0). Their
 * statistics are plain counters: the `pairs` workload calls an allocator from
 * one thread, and the yardstick should cost what the allocator costs.
 */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define MIMALLOC_LIBRARY "libmimalloc.so.2"

typedef void *(*malloc_fn)(size_t);
typedef void (*free_fn)(void *);

typedef struct host_ctx {
  malloc_fn alloc;
  free_fn release;
  gpumem_stats stats;
} host_ctx;

static const gpumem_allocator_kind yardsticks[] = {
    {"malloc", "host memory: glibc malloc/free, the host-side yardstick (pairs only)"},
    {"mimalloc", "host memory: mimalloc via dlopen(" MIMALLOC_LIBRARY "), the host-side yardstick "
                 "(pairs only)"},
};
#define YARDSTICK_COUNT (sizeof yardsticks / sizeof yardsticks[0])

size_t gb_host_allocator_list(gpumem_allocator_kind *kinds, size_t max) {
  for (size_t i = 0; i < YARDSTICK_COUNT && i < max; i++)
    kinds[i] = yardsticks[i];
  return YARDSTICK_COUNT;
}

bool gb_host_allocator_known(const char *name) {
  for (size_t i = 0; i < YARDSTICK_COUNT; i++)
    if (strcmp(name, yardsticks[i].name) == 0) return true;
  return false;
}

/* mimalloc's entry points, loaded once (the library stays loaded). */
static bool load_mimalloc(malloc_fn *alloc, free_fn *release, char *why, size_t len) {
  static void *lib;
  static malloc_fn mi_malloc;
  static free_fn mi_free;
  if (lib == NULL) {
    lib = dlopen(MIMALLOC_LIBRARY, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
      snprintf(why, len, "mimalloc: %s is not installed (Debian: apt-get install libmimalloc2.0)",
               MIMALLOC_LIBRARY);
      return false;
    }
    /* POSIX: dlsym's void * converts to a function pointer. */
    *(void **)&mi_malloc = dlsym(lib, "mi_malloc");
    *(void **)&mi_free = dlsym(lib, "mi_free");
  }
  if (mi_malloc == NULL || mi_free == NULL) {
    snprintf(why, len, "mimalloc: %s lacks mi_malloc or mi_free", MIMALLOC_LIBRARY);
    return false;
  }
  *alloc = mi_malloc;
  *release = mi_free;
  return true;
}

bool gb_host_allocator_available(const char *name, char *why, size_t len) {
  malloc_fn a;
  free_fn f;
  if (strcmp(name, "mimalloc") == 0) return load_mimalloc(&a, &f, why, len);
  return gb_host_allocator_known(name);
}

static gpumem_status host_alloc(void *ctx, size_t size, gpumem_stream_t stream, void **ptr) {
  (void)stream;
  host_ctx *c = ctx;
  if (size == 0 || ptr == NULL) {
    c->stats.failed_allocs++;
    return GPUMEM_ERR_INVALID_ARGUMENT;
  }
  *ptr = c->alloc(size);
  if (*ptr == NULL) {
    c->stats.failed_allocs++;
    return GPUMEM_ERR_OUT_OF_MEMORY;
  }
  c->stats.allocs++;
  c->stats.bytes_in_use += size;
  if (c->stats.bytes_in_use > c->stats.peak_bytes_in_use)
    c->stats.peak_bytes_in_use = c->stats.bytes_in_use;
  return GPUMEM_OK;
}

static gpumem_status host_free(void *ctx, void *ptr, size_t size, gpumem_stream_t stream) {
  (void)stream;
  host_ctx *c = ctx;
  if (ptr == NULL) return GPUMEM_ERR_INVALID_ARGUMENT;
  c->release(ptr);
  c->stats.frees++;
  c->stats.bytes_in_use -= size;
  return GPUMEM_OK;
}

static gpumem_status host_stats(void *ctx, gpumem_stats *stats) {
  *stats = ((host_ctx *)ctx)->stats;
  return GPUMEM_OK;
}

static void host_destroy(void *ctx) {
  free(ctx);
}

bool gb_host_allocator_create(const char *name, gpumem_allocator *out, char *why, size_t len) {
  malloc_fn alloc = malloc;
  free_fn release = free;
  if (!gb_host_allocator_known(name)) {
    snprintf(why, len, "no host allocator is called '%s'", name);
    return false;
  }
  if (strcmp(name, "mimalloc") == 0 && !load_mimalloc(&alloc, &release, why, len)) return false;
  host_ctx *c = calloc(1, sizeof *c);
  if (c == NULL) {
    snprintf(why, len, "%s: out of host memory", name);
    return false;
  }
  c->alloc = alloc;
  c->release = release;
  c->stats = (gpumem_stats)GPUMEM_STATS_INIT;
  for (size_t i = 0; i < YARDSTICK_COUNT; i++)
    if (strcmp(name, yardsticks[i].name) == 0) name = yardsticks[i].name; /* static storage */
  *out = (gpumem_allocator){.struct_size = sizeof *out,
                            .name = name,
                            .device = -1,
                            .ctx = c,
                            .alloc = host_alloc,
                            .free = host_free,
                            .stats = host_stats,
                            .destroy = host_destroy};
  return true;
}
