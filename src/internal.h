/* internal.h: what every source file of libgpumem shares.
 *
 * Error handling follows one pattern. A function that can fail declares
 * `gpumem_status st = GPUMEM_OK;`, checks each step with GM_TRY / GM_REQUIRE,
 * and unwinds through a single `fail:` label that undoes the completed steps
 * in reverse order. Code that detects a failure describes it once with
 * gm_error() (the detail: which call, which arguments, which CUDA error); the
 * public entry point returns through GM_RETURN, which prefixes the detail with
 * its own name and stores the sentence for gpumem_last_error().
 */
#ifndef GPUMEM_INTERNAL_H
#define GPUMEM_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gpumem/error.h"
#include "gpumem/export.h"

/* Size of the thread-local error detail and sentence buffers. */
#define GM_ERROR_DETAIL_MAX   512
#define GM_ERROR_SENTENCE_MAX 768

/* Record the detail of a failure for the calling thread and return `status`.
 * The public entry point adds its name when it returns (GM_RETURN). */
gpumem_status gm_error(gpumem_status status, const char *fmt, ...) GPUMEM_PRINTF(2, 3);
gpumem_status gm_verror(gpumem_status status, const char *fmt, va_list ap);

/* Drop a detail recorded by gm_error() after the caller recovered from it
 * (e.g. a fallback that succeeded). */
void gm_error_discard(void);

/* The detail recorded by the last gm_error() on this thread that no public
 * function has consumed yet ("" if none). Internal code uses it to wrap a
 * callee's detail in its own context. */
const char *gm_error_detail(void);

/* Finish a public call: on failure, compose "<func>: <detail>" (or the status
 * message when no detail was recorded), store it as the thread's last error and
 * log it at debug level. Returns `status`. */
gpumem_status gm_api_return(const char *func, gpumem_status status);

#define GM_RETURN(status) return gm_api_return(__func__, (status))

/* Check a step; on failure jump to the function's `fail:` label. */
#define GM_TRY(expr)                \
  do {                              \
    st = (expr);                    \
    if (st != GPUMEM_OK) goto fail; \
  } while (0)

/* Check a condition; on failure record the detail and jump to `fail:`. */
#define GM_REQUIRE(cond, status, ...)       \
  do {                                      \
    if (!(cond)) {                          \
      st = gm_error((status), __VA_ARGS__); \
      goto fail;                            \
    }                                       \
  } while (0)

#define GM_UNUSED(x)     (void)(x)
#define GM_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Overflow-checked arithmetic on sizes. */
static inline bool gm_add_overflows(size_t a, size_t b, size_t *out) {
  return __builtin_add_overflow(a, b, out);
}
static inline bool gm_mul_overflows(size_t a, size_t b, size_t *out) {
  return __builtin_mul_overflow(a, b, out);
}
static inline bool gm_is_pow2(size_t x) {
  return x != 0 && (x & (x - 1)) == 0;
}
/* Round up to a multiple of `align` (any non-zero value); false on overflow. */
static inline bool gm_round_up(size_t x, size_t align, size_t *out) {
  size_t r = x % align;
  if (r == 0) {
    *out = x;
    return true;
  }
  return !gm_add_overflows(x, align - r, out);
}

/* gpumem_device_peer_info without the public entry's bookkeeping
 * (device.c), for objects that check peers at creation. */
struct gpumem_peer_info;
gpumem_status gm_peer_info(int device, int peer, struct gpumem_peer_info *out);

/* Make room in a growable array: when *count == *capacity, double the
 * capacity (or take `first`) and reallocate *items. False when memory cannot
 * be had (the array is then unchanged). */
static inline bool gm_array_make_room(void **items, size_t *capacity, size_t count,
                                      size_t item_size, size_t first) {
  if (count < *capacity) return true;
  size_t cap = *capacity ? *capacity * 2 : first;
  void *n = realloc(*items, cap * item_size);
  if (n == NULL) return false;
  *items = n;
  *capacity = cap;
  return true;
}

/* A small number for the calling thread, given out in turn (0, 1, 2, ...)
 * the first time a thread asks (init.c). Objects that split state by thread
 * (the arena's shards, the allocator interface's counters) take it modulo
 * their number of parts, so consecutive threads land on different parts. */
unsigned gm_thread_slot(void);

/* Thread-local variables read on hot paths. They use the default (dynamic)
 * TLS model, not initial-exec: one initial-exec variable marks the whole
 * library DF_STATIC_TLS, and the loader must then place *all* of its
 * thread-locals (the error sentence buffers too, about 2 KiB) in the static
 * TLS surplus, which is a few hundred bytes once a process runs; dlopen of
 * libgpumem.so (Python's ctypes, PyTorch's CUDAPluggableAllocator) then
 * failed with "cannot allocate memory in static TLS block". The dynamic
 * model costs a __tls_get_addr call on first touch and a short lookup after. */
#define GM_TLS_FAST _Thread_local

/* The cache line: parts of a structure that different threads write are
 * _Alignas(GM_CACHE_LINE), so that they never share one. */
#define GM_CACHE_LINE 64

/* Fibonacci hashing (Knuth): the top `bits` bits of key * 2^64 / phi spread
 * consecutive keys evenly. */
#define GM_FIB_MULTIPLIER 0x9e3779b97f4a7c15ULL
static inline uint64_t gm_fib_hash(uint64_t key, unsigned bits) {
  return bits == 0 ? 0 : (key * GM_FIB_MULTIPLIER) >> (64u - bits);
}

/* Zeroed memory aligned to a cache line, for structures whose parts are
 * _Alignas(GM_CACHE_LINE) (`size` is then a multiple of GM_CACHE_LINE). Free
 * with free(). */
static inline void *gm_aligned_zalloc(size_t size) {
  void *p = aligned_alloc(GM_CACHE_LINE, size);
  if (p != NULL) memset(p, 0, size);
  return p;
}

/* Library initialisation (init.c). Every public function that needs the
 * backend calls gm_ensure_init() first; it is cheap after the first call. */
gpumem_status gm_ensure_init(void);

#endif
