/* allocator.c: the common allocator interface and its registry.
 *
 * gpumem_allocator_create() finds an implementation by name and wraps it in
 * a base that every libgpumem allocator shares: statistics kept with atomics
 * (so alloc and free from many threads need no lock here; the peak is a
 * compare-and-swap maximum) and the allocation events of trace.c (GPUMEM_TRACE
 * lines, GPUMEM_LOG=trace lines), reported here with the caller's stream
 * while the pool's or arena's own events are muted, so that a call is one
 * event. With no one listening that costs one untaken branch per call.
 *
 * Adding an allocator is one gm_allocator_impl and one line in `registry`.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "abi.h"
#include "alloc_conf.h"
#include "allocator.h"
#include "api.h"
#include "log.h"
#include "options.h"
#include "trace.h"

static const gm_allocator_impl *const registry[] = {
    &gm_allocator_cuda_malloc,       &gm_allocator_cuda_async,          &gm_allocator_cuda_pool,
    &gm_allocator_gpumem_pool,       &gm_allocator_gpumem_pool_nocache, &gm_allocator_gpumem_arena,
    &gm_allocator_gpumem_arena_lean,
};

/* Call counters, striped by thread so that threads do not write one cache
 * line; the statistics add the stripes up. */
#define COUNTER_STRIPES 16

typedef struct counter_stripe {
  _Alignas(GM_CACHE_LINE) _Atomic uint64_t allocs;
  _Atomic uint64_t frees, failed;
} counter_stripe;

typedef struct gm_allocator_base {
  counter_stripe counters[COUNTER_STRIPES];
  const gm_allocator_impl *impl;
  void *state;
  int device;
  _Alignas(GM_CACHE_LINE) _Atomic size_t in_use; /* exact, and so is the peak: one line, shared */
  _Atomic size_t peak_in_use;
  struct gm_allocator_base *prev, *next; /* the live list, for GPUMEM_SHOW_STATS */
  bool listed;
} gm_allocator_base;

/* ---- the live allocators, printed at exit with GPUMEM_SHOW_STATS=1 ----
 *
 * Every allocator made here is listed while it lives (a mutex-guarded list:
 * creation and destruction are rare). The report is written once: at
 * gpumem_finalize (before the default allocator goes, while the pools and
 * arenas behind every allocator are still alive), or by an atexit handler
 * for a program that never finalizes. A forked child inherits the list but
 * not the right to report it: only the process that listed prints. */
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static gm_allocator_base *live_head;
static bool live_reported;
static pid_t live_pid;
static pthread_once_t live_atexit_once = PTHREAD_ONCE_INIT;

static void base_destroy(void *ctx);
static gpumem_status base_stats(void *ctx, gpumem_stats *out);

static void show_stats_now(void) {
  pthread_mutex_lock(&live_lock);
  if (!live_reported && live_pid == getpid()) {
    live_reported = true;
    for (gm_allocator_base *b = live_head; b != NULL; b = b->next) {
      gpumem_allocator a = {.struct_size = sizeof a,
                            .name = b->impl->name,
                            .device = b->device,
                            .ctx = b,
                            .stats = base_stats,
                            .destroy = base_destroy};
      if (gm_stats_print_file(&a, stderr, GPUMEM_STATS_TEXT) != GPUMEM_OK) gm_error_discard();
    }
  }
  pthread_mutex_unlock(&live_lock);
}

static void register_show_stats(void) {
  if (atexit(show_stats_now) != 0)
    gm_log(GPUMEM_LOG_WARN, "GPUMEM_SHOW_STATS: atexit failed: no report at exit");
}

static void live_add(gm_allocator_base *b) {
  if (!gm_option_bool(GM_OPTION_SHOW_STATS)) return;
  pthread_once(&live_atexit_once, register_show_stats);
  pthread_mutex_lock(&live_lock);
  live_pid = getpid();
  b->prev = NULL;
  b->next = live_head;
  if (live_head != NULL) live_head->prev = b;
  live_head = b;
  b->listed = true;
  pthread_mutex_unlock(&live_lock);
}

static void live_remove(gm_allocator_base *b) {
  if (!b->listed) return;
  pthread_mutex_lock(&live_lock);
  if (b->prev != NULL)
    b->prev->next = b->next;
  else
    live_head = b->next;
  if (b->next != NULL) b->next->prev = b->prev;
  b->prev = b->next = NULL;
  b->listed = false;
  pthread_mutex_unlock(&live_lock);
}

static void raise_peak(_Atomic size_t *peak, size_t value) {
  size_t seen = atomic_load_explicit(peak, memory_order_relaxed);
  while (value > seen && !atomic_compare_exchange_weak_explicit(
                             peak, &seen, value, memory_order_relaxed, memory_order_relaxed)) {
  }
}

/* An alloc while someone listens for allocation events (trace.h). */
static gpumem_status traced_alloc(gm_allocator_base *b, size_t size, gpumem_stream_t stream,
                                  void **ptr) {
  gm_trace_mute(true);
  gpumem_status st = b->impl->alloc(b->state, size, stream, ptr);
  gm_trace_mute(false);
  if (st == GPUMEM_OK) gm_trace_alloc(b->impl->name, b, *ptr, size, stream, b->device);
  return st;
}

/* A free while someone listens: the record is taken before the memory can be
 * reused, and put back if the free fails. */
static gpumem_status traced_free(gm_allocator_base *b, void *ptr, size_t size,
                                 gpumem_stream_t stream) {
  gm_trace_entry e = gm_trace_take(ptr);
  gm_trace_mute(true);
  gpumem_status st = b->impl->free(b->state, ptr, size, stream);
  gm_trace_mute(false);
  if (st == GPUMEM_OK)
    gm_trace_freed(b->impl->name, b, ptr, e, size, stream, b->device);
  else
    gm_trace_put_back(ptr, e);
  return st;
}

static gpumem_status base_alloc(void *ctx, size_t size, gpumem_stream_t stream, void **ptr) {
  gm_allocator_base *b = ctx;
  gm_error_discard();
  gpumem_status st = ptr == NULL ? gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "ptr is NULL")
                     : size == 0 ? gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "cannot allocate 0 bytes")
                     : GM_TRACE_HOOKED() ? traced_alloc(b, size, stream, ptr)
                                         : b->impl->alloc(b->state, size, stream, ptr);
  if (st == GPUMEM_ERR_OUT_OF_MEMORY && gm_oom_retry(size, b->device)) {
    st = GM_TRACE_HOOKED() ? traced_alloc(b, size, stream, ptr)
                           : b->impl->alloc(b->state, size, stream, ptr); /* once */
  }
  counter_stripe *c = &b->counters[gm_thread_slot() % COUNTER_STRIPES];
  if (st != GPUMEM_OK) {
    atomic_fetch_add_explicit(&c->failed, 1, memory_order_relaxed);
    return gm_api_return(b->impl->name, st);
  }
  atomic_fetch_add_explicit(&c->allocs, 1, memory_order_relaxed);
  raise_peak(&b->peak_in_use,
             atomic_fetch_add_explicit(&b->in_use, size, memory_order_relaxed) + size);
  return GPUMEM_OK;
}

static gpumem_status base_free(void *ctx, void *ptr, size_t size, gpumem_stream_t stream) {
  gm_allocator_base *b = ctx;
  gm_error_discard();
  if (ptr == NULL)
    return gm_api_return(b->impl->name, gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "ptr is NULL"));
  gpumem_status st = GM_TRACE_HOOKED() ? traced_free(b, ptr, size, stream)
                                       : b->impl->free(b->state, ptr, size, stream);
  if (st != GPUMEM_OK) return gm_api_return(b->impl->name, st);
  atomic_fetch_add_explicit(&b->counters[gm_thread_slot() % COUNTER_STRIPES].frees, 1,
                            memory_order_relaxed);
  atomic_fetch_sub_explicit(&b->in_use, size, memory_order_relaxed);
  return GPUMEM_OK;
}

static gpumem_status base_stats(void *ctx, gpumem_stats *out) {
  gm_allocator_base *b = ctx;
  gm_error_discard();
  gpumem_status st = gm_abi_check_out(out, sizeof *out, "stats (GPUMEM_STATS_INIT)");
  if (st != GPUMEM_OK) return gm_api_return(b->impl->name, st);
  gpumem_stats s = {
      .struct_size = sizeof s,
      .bytes_in_use = atomic_load(&b->in_use),
      .peak_bytes_in_use = atomic_load(&b->peak_in_use),
  };
  for (int i = 0; i < COUNTER_STRIPES; i++) {
    s.allocs += atomic_load(&b->counters[i].allocs);
    s.frees += atomic_load(&b->counters[i].frees);
    s.failed_allocs += atomic_load(&b->counters[i].failed);
  }
  s.bytes_reserved = s.bytes_in_use;
  s.peak_bytes_reserved = s.peak_bytes_in_use;
  if (b->impl->reserved != NULL) {
    st = b->impl->reserved(b->state, &s.bytes_reserved, &s.peak_bytes_reserved);
    if (st != GPUMEM_OK) return gm_api_return(b->impl->name, st);
  }
  gm_abi_write(out, &s, sizeof s);
  return GPUMEM_OK;
}

static gpumem_status base_trim(void *ctx) {
  gm_allocator_base *b = ctx;
  gm_error_discard();
  if (b->impl->trim == NULL) return GPUMEM_OK;
  return gm_api_return(b->impl->name, b->impl->trim(b->state));
}

/* Destroy, or report why not and leave the allocator as it was. An
 * allocator of the registry owns its memory: with blocks still allocated
 * it is BUSY (its pool or CUDA pool would go with them, or, for
 * cuda-malloc, they would be forgotten). */
static gpumem_status base_destroy_status(gm_allocator_base *b) {
  size_t live = atomic_load(&b->in_use);
  if (b->impl->create != NULL && live != 0) {
    return gm_error(GPUMEM_ERR_BUSY, "the allocator still has %zu bytes allocated: free them first",
                    live);
  }
  bool listed = b->listed;
  live_remove(b); /* first: a report at exit must not read a state being destroyed */
  gpumem_status st = b->impl->destroy(b->state);
  if (st != GPUMEM_OK) {
    if (listed) live_add(b); /* still alive */
    return st;
  }
  free(b);
  return GPUMEM_OK;
}

/* The struct's destroy member (void, for allocators the application fills
 * in); gpumem_allocator_destroy calls base_destroy_status instead. */
static void base_destroy(void *ctx) {
  if (base_destroy_status(ctx) != GPUMEM_OK)
    gm_log(GPUMEM_LOG_ERROR, "destroying an allocator: %s", gm_error_detail());
}

bool gm_allocator_inner(const gpumem_allocator *a, const gm_allocator_impl **impl, void **state) {
  if (a->destroy != base_destroy || a->ctx == NULL) return false;
  const gm_allocator_base *b = a->ctx;
  *impl = b->impl;
  *state = b->state;
  return true;
}

GPUMEM_API size_t gpumem_allocator_list(gpumem_allocator_kind *kinds, size_t max) {
  if (kinds == NULL) max = 0; /* only the count: nothing to write to */
  for (size_t i = 0; i < max && i < GM_ARRAY_SIZE(registry); i++) {
    kinds[i] = (gpumem_allocator_kind){registry[i]->name, registry[i]->description};
  }
  return GM_ARRAY_SIZE(registry);
}

static gpumem_status create(const char *name, int device, gpumem_allocator *out) {
  if (name == NULL) return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "name is NULL");
  gpumem_status st = gm_abi_check_out(out, sizeof *out, "allocator (GPUMEM_ALLOCATOR_INIT)");
  if (st != GPUMEM_OK) return st;
  const gm_allocator_impl *impl = NULL;
  char names[256] = "";
  for (size_t i = 0; i < GM_ARRAY_SIZE(registry); i++) {
    if (strcmp(registry[i]->name, name) == 0) impl = registry[i];
    size_t used = strlen(names);
    snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "", registry[i]->name);
  }
  if (impl == NULL) {
    return gm_error(GPUMEM_ERR_NOT_FOUND, "no allocator is called '%s' (there are: %s)", name,
                    names);
  }
  void *state = NULL;
  st = impl->create(device, &state);
  if (st == GPUMEM_OK) st = gm_allocator_make(impl, state, device, out);
  if (st != GPUMEM_OK && state != NULL && impl->destroy(state) != GPUMEM_OK)
    gm_error_discard(); /* the first error is the one to report */
  return st;
}

gpumem_status gm_allocator_make(const gm_allocator_impl *impl, void *state, int device,
                                gpumem_allocator *out) {
  gpumem_status st = gm_abi_check_out(out, sizeof *out, "allocator (GPUMEM_ALLOCATOR_INIT)");
  if (st != GPUMEM_OK) return st;
  gm_allocator_base *b = gm_aligned_zalloc(sizeof *b); /* the stripes are cache-line aligned */
  if (b == NULL) return gm_error(GPUMEM_ERR_OUT_OF_MEMORY, "no host memory for an allocator");
  b->impl = impl;
  b->state = state;
  b->device = device;
  live_add(b);
  gpumem_allocator a = {.struct_size = sizeof a,
                        .name = impl->name,
                        .device = device,
                        .ctx = b,
                        .alloc = base_alloc,
                        .free = base_free,
                        .stats = base_stats,
                        .trim = base_trim,
                        .destroy = base_destroy,
                        .flags = impl->stream_ordered ? GPUMEM_ALLOCATOR_STREAM_ORDERED : 0u};
  gm_abi_write(out, &a, sizeof a);
  return GPUMEM_OK;
}

gpumem_status gm_allocator_create_named(const char *name, int device, gpumem_allocator *out) {
  return create(name, device, out);
}

GPUMEM_API gpumem_status gpumem_allocator_create(const char *name, int device,
                                                 gpumem_allocator *allocator) {
  GM_API_FORWARD(create(name, device, allocator));
}

static gpumem_status destroy(gpumem_allocator *allocator) {
  if (allocator == NULL) return GPUMEM_OK;
  if (allocator->destroy == base_destroy) {
    gpumem_status st = base_destroy_status(allocator->ctx);
    if (st != GPUMEM_OK) return st; /* the struct stays as it was: usable, destroyable again */
  } else if (allocator->destroy != NULL) {
    allocator->destroy(allocator->ctx);
  }
  size_t n = allocator->struct_size; /* clear no more than the caller's struct */
  if (n > sizeof *allocator) n = sizeof *allocator;
  if (n > sizeof n) memset((char *)allocator + sizeof n, 0, n - sizeof n);
  return GPUMEM_OK;
}

GPUMEM_API gpumem_status gpumem_allocator_destroy(gpumem_allocator *allocator) {
  GM_API_FORWARD(destroy(allocator));
}

/* ---- the process-wide default allocator ---- */

static pthread_mutex_t default_lock = PTHREAD_MUTEX_INITIALIZER;
static gpumem_allocator default_allocator;
static bool default_set, default_owned; /* owned: made here, destroyed at finalize */

static gpumem_status set_default(const gpumem_allocator *a) {
  gpumem_allocator copy = GPUMEM_ALLOCATOR_INIT;
  if (a != NULL) {
    gpumem_status st =
        gm_abi_read(a, sizeof copy, &copy, &copy, "allocator (GPUMEM_ALLOCATOR_INIT)");
    if (st != GPUMEM_OK) return st;
    if (copy.alloc == NULL || copy.free == NULL) {
      return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "the allocator has no alloc or free function");
    }
  }
  pthread_mutex_lock(&default_lock);
  /* The one libgpumem made goes first; if it cannot, nothing changes. */
  gpumem_status st = default_set && default_owned ? destroy(&default_allocator) : GPUMEM_OK;
  if (st == GPUMEM_OK) {
    default_allocator = copy;
    default_set = a != NULL;
    default_owned = false;
  }
  pthread_mutex_unlock(&default_lock);
  return st;
}

GPUMEM_API gpumem_status gpumem_set_default_allocator(const gpumem_allocator *allocator) {
  GM_API_FORWARD(set_default(allocator));
}

static gpumem_status get_default(gpumem_allocator *out) {
  gpumem_status st = gm_abi_check_out(out, sizeof *out, "allocator (GPUMEM_ALLOCATOR_INIT)");
  if (st != GPUMEM_OK) return st;
  pthread_mutex_lock(&default_lock);
  if (!default_set) { /* none chosen: GPUMEM_ALLOC_CONF's (gpumem-pool) on device 0, once */
    gpumem_allocator made = GPUMEM_ALLOCATOR_INIT;
    st = gm_conf_allocator_create(0, &made);
    if (st == GPUMEM_OK) {
      default_allocator = made;
      default_set = default_owned = true;
    }
  }
  if (st == GPUMEM_OK) gm_abi_write(out, &default_allocator, sizeof default_allocator);
  pthread_mutex_unlock(&default_lock);
  return st;
}

GPUMEM_API gpumem_status gpumem_default_allocator(gpumem_allocator *allocator) {
  GM_API_FORWARD(get_default(allocator));
}

gpumem_status gm_allocator_release_default(void) {
  if (gm_option_bool(GM_OPTION_SHOW_STATS)) show_stats_now();
  pthread_mutex_lock(&default_lock);
  /* If it cannot be destroyed (blocks still allocated), it stays the default
   * and finalize reports what is alive. */
  gpumem_status st = default_set && default_owned ? destroy(&default_allocator) : GPUMEM_OK;
  if (st == GPUMEM_OK) {
    memset(&default_allocator, 0, sizeof default_allocator);
    default_set = default_owned = false;
  }
  pthread_mutex_unlock(&default_lock);
  return st;
}
