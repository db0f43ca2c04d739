/* backend.c: what every backend call goes through.
 *
 * The gm_be_* functions are the only way the library reaches a backend. Each
 * one counts the call, fires an injected failure when one is armed for that
 * call, checks what can be checked without a driver, calls the active
 * backend, and on success updates the live-object counters. Tests read the
 * counters to prove that a failed operation left nothing behind, and arm
 * failures to make any step of a multi-step operation fail (gm_fault_inject,
 * or GPUMEM_FAULT=op:N from the environment).
 *
 * Physical handles are also registered here: the driver cannot be trusted to
 * diagnose a handle released twice or never created (it may crash), so the
 * registry answers first, with INVALID_POINTER or DOUBLE_FREE. Recently
 * released handles are remembered in a small ring to tell the two apart.
 *
 * Cost: one relaxed atomic increment per call, one acquire load for the
 * injection check, and a mutex-protected hash lookup on the VMM handle calls,
 * which cost microseconds in the driver anyway.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "hashmap.h"

static _Atomic(const gm_backend_ops *) active_backend;

const gm_backend_ops *gm_backend(void) {
  return atomic_load_explicit(&active_backend, memory_order_acquire);
}

void gm_backend_install(const gm_backend_ops *ops) {
  atomic_store_explicit(&active_backend, ops, memory_order_release);
}

/* ---- operation names and failure injection ---- */

static const char *const op_names[GM_OP_COUNT] = {
#define GM_OP_NAME_(op) [GM_OP_##op] = #op,
    GM_BACKEND_OP_LIST(GM_OP_NAME_)
#undef GM_OP_NAME_
};

const char *gm_op_name(gm_op op) {
  return (int)op >= 0 && op < GM_OP_COUNT ? op_names[op] : NULL;
}

gm_op gm_op_from_name(const char *name) {
  for (int i = 0; i < GM_OP_COUNT; i++) {
    if (strcmp(op_names[i], name) == 0) return (gm_op)i;
  }
  return GM_OP_COUNT;
}

typedef struct gm_fault {
  _Atomic uint64_t calls;
  _Atomic uint64_t fail_at; /* absolute call number that fails; 0: none */
  _Atomic int status;
} gm_fault;

static gm_fault faults[GM_OP_COUNT];
/* Nonzero when enter() must look further than its counter: an armed fault,
 * or a forked child (which counts as one, so the fast path stays one load). */
static _Atomic int faults_armed;
static _Atomic long forked_from; /* the parent's pid in a forked child; else 0 */

void gm_backend_refuse_forked(long parent_pid) {
  long none = 0;
  if (atomic_compare_exchange_strong(&forked_from, &none, parent_pid))
    atomic_fetch_add(&faults_armed, 1);
}

void gm_backend_accept_calls(void) {
  if (atomic_exchange(&forked_from, 0) != 0) atomic_fetch_sub(&faults_armed, 1);
}

gpumem_status gm_backend_forked_error(long parent_pid) {
  return gm_error(GPUMEM_ERR_STATE,
                  "libgpumem was initialised in process %ld; a forked child cannot use CUDA "
                  "(use exec, or initialise after fork)",
                  parent_pid);
}

void gm_fault_inject(gm_op op, uint64_t nth, gpumem_status status) {
  if ((int)op < 0 || op >= GM_OP_COUNT) return;
  gm_fault *f = &faults[op];
  atomic_store(&f->status, (int)status);
  bool was_armed = atomic_load(&f->fail_at) != 0;
  uint64_t calls = atomic_load(&f->calls); /* calls + nth saturates: no wrap to a near call */
  atomic_store(&f->fail_at, nth == 0 ? 0 : nth > UINT64_MAX - calls ? UINT64_MAX : calls + nth);
  if (nth != 0 && !was_armed) atomic_fetch_add(&faults_armed, 1);
  if (nth == 0 && was_armed) atomic_fetch_sub(&faults_armed, 1);
}

void gm_fault_clear(void) {
  for (int i = 0; i < GM_OP_COUNT; i++)
    atomic_store(&faults[i].fail_at, 0);
  atomic_store(&faults_armed, atomic_load(&forked_from) != 0 ? 1 : 0);
}

bool gm_fault_parse(const char *spec) {
  char buf[256];
  if (spec == NULL || strlen(spec) >= sizeof buf) return false;
  strcpy(buf, spec);
  gm_op ops[GM_OP_COUNT];
  unsigned long long nths[GM_OP_COUNT];
  int n = 0;
  char *save = NULL;
  for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
    char *colon = strchr(item, ':');
    if (colon == NULL || n == GM_OP_COUNT) return false;
    *colon = '\0';
    gm_op op = gm_op_from_name(item);
    /* N: decimal digits only. strtoull alone would take a sign ("-1" is
     * ULLONG_MAX), leading blanks, and clamp an overflow to ULLONG_MAX. */
    if (op == GM_OP_COUNT || colon[1] < '0' || colon[1] > '9') return false;
    char *end = NULL;
    errno = 0;
    unsigned long long nth = strtoull(colon + 1, &end, 10);
    if (errno == ERANGE || *end != '\0' || nth == 0) return false;
    ops[n] = op;
    nths[n++] = nth;
  }
  if (n == 0) return false;
  for (int i = 0; i < n; i++)
    gm_fault_inject(ops[i], nths[i], GPUMEM_ERR_INJECTED);
  return true;
}

uint64_t gm_backend_calls(gm_op op) {
  return (int)op >= 0 && op < GM_OP_COUNT ? atomic_load(&faults[op].calls) : 0;
}

/* Count the call; GPUMEM_OK, or the injected status when this call fails. */
static gpumem_status enter(gm_op op, const gm_backend_ops **be) {
  gm_fault *f = &faults[op];
  uint64_t n = atomic_fetch_add_explicit(&f->calls, 1, memory_order_relaxed) + 1;
  if (atomic_load_explicit(&faults_armed, memory_order_acquire) != 0) {
    long parent = atomic_load(&forked_from);
    if (parent != 0) return gm_backend_forked_error(parent); /* every path, the allocators' too */
    uint64_t at = atomic_load(&f->fail_at);
    if (at != 0 && n == at && atomic_compare_exchange_strong(&f->fail_at, &at, 0)) {
      atomic_fetch_sub(&faults_armed, 1);
      gpumem_status st = (gpumem_status)atomic_load(&f->status);
      return gm_error(st, "injected failure: call %" PRIu64 " of backend operation %s (%s)", n,
                      op_names[op], gpumem_status_name(st));
    }
  }
  *be = gm_backend();
  if (*be == NULL) return gm_error(GPUMEM_ERR_STATE, "libgpumem is not initialised");
  return GPUMEM_OK;
}

/* ---- live-object tracking ---- */

#define RELEASED_RING 256

/* A live address reservation, how many of its bytes are mapped, and the
 * kind of library object that owns it (NULL: the caller's, made through
 * gpumem_vmm_reserve). */
typedef struct gm_reservation {
  uintptr_t base;
  size_t size;
  size_t mapped;
  const char *owner;
} gm_reservation;

static struct {
  pthread_mutex_t lock;
  gm_reservation *res; /* sorted by base */
  size_t nres, capres;
  gm_hashmap phys;       /* handle -> bytes (0 for imported) */
  gm_hashmap extra_refs; /* handle -> references beyond the first (same handle imported again) */
  gpumem_phys_t released[RELEASED_RING];
  size_t released_next;
  gm_backend_counters counters;
} track = {
    .lock = PTHREAD_MUTEX_INITIALIZER, .phys = GM_HASHMAP_INIT, .extra_refs = GM_HASHMAP_INIT};

static void count(int64_t *field, int64_t delta) {
  pthread_mutex_lock(&track.lock);
  *field += delta;
  pthread_mutex_unlock(&track.lock);
}

void gm_backend_get_counters(gm_backend_counters *out) {
  pthread_mutex_lock(&track.lock);
  *out = track.counters;
  pthread_mutex_unlock(&track.lock);
}

void gm_backend_reset_tracking(void) {
  pthread_mutex_lock(&track.lock);
  gm_hashmap_free(&track.phys);
  gm_hashmap_free(&track.extra_refs);
  free(track.res);
  track.res = NULL;
  track.nres = track.capres = 0;
  memset(track.released, 0, sizeof track.released);
  track.released_next = 0;
  memset(&track.counters, 0, sizeof track.counters);
  pthread_mutex_unlock(&track.lock);
  for (int i = 0; i < GM_OP_COUNT; i++)
    atomic_store(&faults[i].calls, 0);
  gm_fault_clear();
}

/* Register a handle the backend returned. An import may return a handle that
 * is already live in this process (CUDA does not promise a new value); it is
 * then counted as one more reference, each to be released once. */
static gpumem_status phys_register(gpumem_phys_t h, size_t bytes) {
  pthread_mutex_lock(&track.lock);
  uint64_t refs = 0;
  bool ok;
  if (gm_hashmap_get(&track.phys, h, NULL)) {
    gm_hashmap_get(&track.extra_refs, h, &refs);
    ok = gm_hashmap_put(&track.extra_refs, h, refs + 1);
  } else {
    ok = gm_hashmap_put(&track.phys, h, bytes);
  }
  if (ok) {
    for (size_t i = 0; i < RELEASED_RING; i++) {
      if (track.released[i] == h) track.released[i] = 0; /* the driver reused the value */
    }
    track.counters.phys_handles++;
    track.counters.phys_bytes += (int64_t)bytes;
  }
  pthread_mutex_unlock(&track.lock);
  return ok ? GPUMEM_OK : gm_error(GPUMEM_ERR_OUT_OF_MEMORY, "no host memory to track a handle");
}

/* GPUMEM_OK if `h` is live; otherwise the status and detail that say why. */
static gpumem_status phys_check(gpumem_phys_t h, const char *what) {
  pthread_mutex_lock(&track.lock);
  bool live = gm_hashmap_get(&track.phys, h, NULL);
  bool released = false;
  for (size_t i = 0; !live && h != 0 && i < RELEASED_RING; i++)
    released |= track.released[i] == h;
  pthread_mutex_unlock(&track.lock);
  if (live) return GPUMEM_OK;
  if (released) {
    return gm_error(GPUMEM_ERR_DOUBLE_FREE,
                    "cannot %s physical handle 0x%" PRIx64 ": it was already released", what, h);
  }
  return gm_error(GPUMEM_ERR_INVALID_POINTER,
                  "cannot %s 0x%" PRIx64 ": not a live physical handle of this process", what, h);
}

static void phys_unregister(gpumem_phys_t h) {
  pthread_mutex_lock(&track.lock);
  uint64_t bytes = 0, refs = 0;
  if (gm_hashmap_get(&track.extra_refs, h, &refs)) {
    if (refs > 1)
      gm_hashmap_put(&track.extra_refs, h, refs - 1);
    else
      gm_hashmap_remove(&track.extra_refs, h);
    track.counters.phys_handles--;
  } else if (gm_hashmap_get(&track.phys, h, &bytes)) {
    gm_hashmap_remove(&track.phys, h);
    track.released[track.released_next] = h;
    track.released_next = (track.released_next + 1) % RELEASED_RING;
    track.counters.phys_handles--;
    track.counters.phys_bytes -= (int64_t)bytes;
  }
  pthread_mutex_unlock(&track.lock);
}

/* ---- the calls ---- */

/* Enter `op`, returning early on an injected failure or no backend. */
#define GM_BE_ENTER(op)                      \
  const gm_backend_ops *be = NULL;           \
  gpumem_status st = enter(GM_OP_##op, &be); \
  if (st != GPUMEM_OK) return st

/* Operations with nothing to track: enter, then forward. */
#define GM_BE_FORWARD(op, ...) \
  GM_BE_ENTER(op);             \
  return be->op(__VA_ARGS__)

/* Optional operations: a backend (a test's fake one) may leave them NULL. */
#define GM_BE_FORWARD_OPTIONAL(op, ...)                                                   \
  GM_BE_ENTER(op);                                                                        \
  if (be->op == NULL)                                                                     \
    return gm_error(GPUMEM_ERR_NOT_SUPPORTED, "the %s backend has no %s", be->name, #op); \
  return be->op(__VA_ARGS__)

/* Operations that create or destroy a counted object: enter, forward, and on
 * success move `field` by `delta`. */
#define GM_BE_COUNTED(op, field, delta, ...)                  \
  GM_BE_ENTER(op);                                            \
  st = be->op(__VA_ARGS__);                                   \
  if (st == GPUMEM_OK) count(&track.counters.field, (delta)); \
  return st

#define GM_NULL_ARG(p)                                                               \
  do {                                                                               \
    if ((p) == NULL) return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "%s is NULL", #p); \
  } while (0)

gpumem_status gm_be_device_count(int *count_out) {
  GM_NULL_ARG(count_out);
  GM_BE_FORWARD(device_count, count_out);
}

gpumem_status gm_be_device_props(int device, gm_device_props *out) {
  GM_NULL_ARG(out);
  GM_BE_FORWARD(device_props, device, out);
}

gpumem_status gm_be_mem_info(int device, size_t *free_bytes, size_t *total_bytes) {
  GM_NULL_ARG(free_bytes);
  GM_NULL_ARG(total_bytes);
  GM_BE_FORWARD(mem_info, device, free_bytes, total_bytes);
}

gpumem_status gm_be_mig_describe(int device, gpumem_device_info *info) {
  GM_NULL_ARG(info);
  GM_BE_FORWARD_OPTIONAL(mig_describe, device, info);
}

gpumem_status gm_be_mig_node(gpumem_mig_gpu *gpus, size_t max, size_t *count, bool *from_layout) {
  GM_NULL_ARG(count);
  GM_NULL_ARG(from_layout);
  GM_BE_FORWARD_OPTIONAL(mig_node, gpus, max, count, from_layout);
}

gpumem_status gm_be_mem_probe(int device, size_t *free_bytes, size_t *total_bytes) {
  GM_NULL_ARG(free_bytes);
  GM_NULL_ARG(total_bytes);
  GM_BE_FORWARD(mem_probe, device, free_bytes, total_bytes);
}

gpumem_status gm_be_granularity(const gpumem_phys_props *props, bool recommended, size_t *out) {
  GM_NULL_ARG(props);
  GM_NULL_ARG(out);
  GM_BE_FORWARD(granularity, props, recommended, out);
}

gpumem_status gm_be_p2p_attrs(int src, int dst, gm_p2p_attrs *out) {
  GM_NULL_ARG(out);
  GM_BE_FORWARD(p2p_attrs, src, dst, out);
}

/* Index of the reservation holding [va, va+size), or nres (lock held). */
static size_t res_find(uintptr_t va, size_t size) {
  size_t lo = 0, hi = track.nres;
  while (lo < hi) { /* first reservation with base > va */
    size_t mid = lo + (hi - lo) / 2;
    if (track.res[mid].base <= va)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo == 0) return track.nres;
  gm_reservation *r = &track.res[lo - 1];
  size_t off = va - r->base;
  return off < r->size && size <= r->size - off ? lo - 1 : track.nres;
}

static bool res_insert(uintptr_t base, size_t size, const char *owner) {
  if (track.nres == track.capres) {
    size_t cap = track.capres ? track.capres * 2 : 16;
    gm_reservation *r = realloc(track.res, cap * sizeof *r);
    if (r == NULL) return false;
    track.res = r;
    track.capres = cap;
  }
  size_t i = track.nres;
  while (i > 0 && track.res[i - 1].base > base)
    i--;
  memmove(&track.res[i + 1], &track.res[i], (track.nres - i) * sizeof *track.res);
  track.res[i] = (gm_reservation){base, size, 0, owner};
  track.nres++;
  track.counters.reservations++;
  track.counters.reserved_bytes += (int64_t)size;
  return true;
}

gpumem_status gm_be_va_reserve(size_t size, size_t alignment, uintptr_t *va) {
  return gm_be_va_reserve_internal(size, alignment, NULL, va);
}

gpumem_status gm_be_va_reserve_internal(size_t size, size_t alignment, const char *owner,
                                        uintptr_t *va) {
  GM_NULL_ARG(va);
  if (size == 0) return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "cannot reserve 0 bytes");
  if (alignment != 0 && !gm_is_pow2(alignment)) {
    return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "alignment %zu is not a power of two", alignment);
  }
  GM_BE_ENTER(va_reserve);
  uintptr_t base = 0;
  st = be->va_reserve(size, alignment, &base);
  if (st != GPUMEM_OK) return st;
  pthread_mutex_lock(&track.lock);
  bool ok = res_insert(base, size, owner);
  pthread_mutex_unlock(&track.lock);
  if (!ok) {
    be->va_free(base, size);
    return gm_error(GPUMEM_ERR_OUT_OF_MEMORY, "no host memory to track a reservation");
  }
  *va = base;
  return GPUMEM_OK;
}

/* The registry answers for the driver: freeing anything but a whole live
 * reservation, or one that still has mappings, is refused before the driver
 * sees it. */
gpumem_status gm_be_va_free(uintptr_t va, size_t size) {
  if (va == 0) return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "address is NULL");
  pthread_mutex_lock(&track.lock);
  size_t i = res_find(va, 1);
  gm_reservation r = i < track.nres ? track.res[i] : (gm_reservation){0, 0, 0, NULL};
  pthread_mutex_unlock(&track.lock);
  if (i == track.nres || r.base != va) {
    return gm_error(GPUMEM_ERR_INVALID_ARGUMENT,
                    "0x%" PRIxPTR " is not the start of a live address reservation", va);
  }
  if (r.size != size) {
    return gm_error(GPUMEM_ERR_INVALID_ARGUMENT,
                    "the reservation at 0x%" PRIxPTR " is %zu bytes, not %zu: free it whole", va,
                    r.size, size);
  }
  if (r.mapped != 0) {
    return gm_error(GPUMEM_ERR_BUSY,
                    "the reservation at 0x%" PRIxPTR " still has %zu bytes mapped: unmap them "
                    "before freeing it",
                    va, r.mapped);
  }
  GM_BE_ENTER(va_free);
  st = be->va_free(va, size);
  if (st == GPUMEM_OK) {
    pthread_mutex_lock(&track.lock);
    i = res_find(va, size);
    memmove(&track.res[i], &track.res[i + 1], (track.nres - i - 1) * sizeof *track.res);
    track.nres--;
    track.counters.reservations--;
    track.counters.reserved_bytes -= (int64_t)size;
    pthread_mutex_unlock(&track.lock);
  }
  return st;
}

gpumem_status gm_be_va_check_public(uintptr_t va, const char *what) {
  pthread_mutex_lock(&track.lock);
  size_t i = res_find(va, 1);
  const char *owner = i < track.nres ? track.res[i].owner : NULL;
  pthread_mutex_unlock(&track.lock);
  if (owner == NULL) return GPUMEM_OK;
  return gm_error(GPUMEM_ERR_INVALID_ARGUMENT,
                  "%s: 0x%" PRIxPTR " is inside the address range of a libgpumem %s, which maps "
                  "and frees that range itself",
                  what, va, owner);
}

/* Check that [va, va+size) lies in one reservation (so that the driver never
 * sees a range outside the library's own), then run the map or unmap and
 * account its bytes to that reservation. */
static gpumem_status in_reservation(uintptr_t va, size_t size, const char *what) {
  pthread_mutex_lock(&track.lock);
  bool inside = res_find(va, size) < track.nres;
  pthread_mutex_unlock(&track.lock);
  if (inside) return GPUMEM_OK;
  return gm_error(what[0] == 'm' ? GPUMEM_ERR_INVALID_ARGUMENT : GPUMEM_ERR_NOT_MAPPED,
                  "%s: [0x%" PRIxPTR ", +%zu) is not inside an address reservation", what, va,
                  size);
}

static void account_mapped(uintptr_t va, size_t size, bool mapped) {
  pthread_mutex_lock(&track.lock);
  size_t i = res_find(va, size);
  if (i < track.nres) {
    if (mapped)
      track.res[i].mapped += size;
    else
      track.res[i].mapped -= size;
  }
  track.counters.mapped_bytes += mapped ? (int64_t)size : -(int64_t)size;
  pthread_mutex_unlock(&track.lock);
}

gpumem_status gm_be_phys_create(const gpumem_phys_props *props, size_t size, gpumem_phys_t *out) {
  GM_NULL_ARG(props);
  GM_NULL_ARG(out);
  if (size == 0) return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "cannot create 0 bytes");
  unsigned known = GPUMEM_HANDLE_POSIX_FD | GPUMEM_HANDLE_FABRIC;
  if (props->handle_types & ~known) {
    return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "unknown handle type bits 0x%x",
                    props->handle_types & ~known);
  }
  GM_BE_ENTER(phys_create);
  gpumem_phys_t h = 0;
  st = be->phys_create(props, size, &h);
  if (st != GPUMEM_OK) return st;
  st = phys_register(h, size);
  if (st != GPUMEM_OK) {
    be->phys_release(h);
    return st;
  }
  *out = h;
  return GPUMEM_OK;
}

gpumem_status gm_be_phys_release(gpumem_phys_t phys) {
  gpumem_status st = phys_check(phys, "release");
  if (st != GPUMEM_OK) return st;
  const gm_backend_ops *be = NULL;
  st = enter(GM_OP_phys_release, &be);
  if (st != GPUMEM_OK) return st;
  st = be->phys_release(phys);
  if (st == GPUMEM_OK) phys_unregister(phys);
  return st;
}

gpumem_status gm_be_phys_props(gpumem_phys_t phys, gpumem_phys_props *out) {
  GM_NULL_ARG(out);
  gpumem_status st = phys_check(phys, "get properties of");
  if (st != GPUMEM_OK) return st;
  const gm_backend_ops *be = NULL;
  st = enter(GM_OP_phys_props, &be);
  if (st != GPUMEM_OK) return st;
  return be->phys_props(phys, out);
}

gpumem_status gm_be_map(uintptr_t va, size_t size, size_t offset, gpumem_phys_t phys) {
  if (va == 0) return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "cannot map at address 0");
  if (size == 0) return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "cannot map 0 bytes");
  gpumem_status st = phys_check(phys, "map");
  if (st == GPUMEM_OK) st = in_reservation(va, size, "map");
  if (st != GPUMEM_OK) return st;
  const gm_backend_ops *be = NULL;
  st = enter(GM_OP_map, &be);
  if (st != GPUMEM_OK) return st;
  st = be->map(va, size, offset, phys);
  if (st == GPUMEM_OK) account_mapped(va, size, true);
  return st;
}

gpumem_status gm_be_unmap(uintptr_t va, size_t size) {
  if (va == 0) return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "cannot unmap address 0");
  if (size == 0) return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "cannot unmap 0 bytes");
  gpumem_status st = in_reservation(va, size, "unmap");
  if (st != GPUMEM_OK) return st;
  const gm_backend_ops *be = NULL;
  st = enter(GM_OP_unmap, &be);
  if (st != GPUMEM_OK) return st;
  st = be->unmap(va, size);
  if (st == GPUMEM_OK) account_mapped(va, size, false);
  return st;
}

gpumem_status gm_be_set_access(uintptr_t va, size_t size, const gpumem_access_desc *desc,
                               size_t count_) {
  GM_NULL_ARG(desc);
  if (count_ == 0) return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "no access descriptor given");
  if (count_ > GPUMEM_MAX_DEVICES) {
    return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "%zu access descriptors (at most %d)", count_,
                    GPUMEM_MAX_DEVICES);
  }
  for (size_t i = 0; i < count_; i++) {
    gpumem_access_flags f = desc[i].flags;
    if (f != GPUMEM_ACCESS_NONE && f != GPUMEM_ACCESS_READ && f != GPUMEM_ACCESS_READWRITE) {
      return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "descriptor %zu: access flags %d are not valid",
                      i, (int)f);
    }
  }
  GM_BE_FORWARD(set_access, va, size, desc, count_);
}

gpumem_status gm_be_get_access(uintptr_t va, int device, gpumem_access_flags *out) {
  GM_NULL_ARG(out);
  GM_BE_FORWARD(get_access, va, device, out);
}

gpumem_status gm_be_export_handle(gpumem_phys_t phys, gpumem_handle_type type,
                                  gpumem_shareable_handle *out) {
  GM_NULL_ARG(out);
  if (type != GPUMEM_HANDLE_POSIX_FD && type != GPUMEM_HANDLE_FABRIC) {
    return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "handle type %d cannot be exported", (int)type);
  }
  gpumem_status st = phys_check(phys, "export");
  if (st != GPUMEM_OK) return st;
  const gm_backend_ops *be = NULL;
  st = enter(GM_OP_export_handle, &be);
  if (st != GPUMEM_OK) return st;
  return be->export_handle(phys, type, out);
}

gpumem_status gm_be_import_handle(const gpumem_shareable_handle *in, gpumem_phys_t *out) {
  GM_NULL_ARG(in);
  GM_NULL_ARG(out);
  if (in->type == GPUMEM_HANDLE_POSIX_FD && in->fd < 0) {
    return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "file descriptor %d is not valid", in->fd);
  }
  if (in->type != GPUMEM_HANDLE_POSIX_FD && in->type != GPUMEM_HANDLE_FABRIC) {
    return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "handle type %d cannot be imported",
                    (int)in->type);
  }
  GM_BE_ENTER(import_handle);
  gpumem_phys_t h = 0;
  st = be->import_handle(in, &h);
  if (st != GPUMEM_OK) return st;
  st = phys_register(h, 0);
  if (st != GPUMEM_OK) {
    be->phys_release(h);
    return st;
  }
  *out = h;
  return GPUMEM_OK;
}

gpumem_status gm_be_stream_create(int device, unsigned flags, gpumem_stream_t *out) {
  GM_NULL_ARG(out);
  GM_BE_COUNTED(stream_create, streams, 1, device, flags, out);
}

gpumem_status gm_be_stream_destroy(gpumem_stream_t stream) {
  if (stream == NULL)
    return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "cannot destroy the default stream");
  GM_BE_COUNTED(stream_destroy, streams, -1, stream);
}

gpumem_status gm_be_stream_synchronize(gpumem_stream_t stream) {
  GM_BE_FORWARD(stream_synchronize, stream);
}

gpumem_status gm_be_stream_query(gpumem_stream_t stream) {
  GM_BE_FORWARD(stream_query, stream);
}

gpumem_status gm_be_stream_wait_event(gpumem_stream_t stream, gpumem_event_t event) {
  GM_NULL_ARG(event);
  GM_BE_FORWARD(stream_wait_event, stream, event);
}

gpumem_status gm_be_event_create(int device, gpumem_event_t *out) {
  GM_NULL_ARG(out);
  GM_BE_COUNTED(event_create, events, 1, device, out);
}

gpumem_status gm_be_event_destroy(gpumem_event_t event) {
  GM_NULL_ARG(event);
  GM_BE_COUNTED(event_destroy, events, -1, event);
}

gpumem_status gm_be_event_record(gpumem_event_t event, gpumem_stream_t stream) {
  GM_NULL_ARG(event);
  GM_BE_FORWARD(event_record, event, stream);
}

gpumem_status gm_be_event_query(gpumem_event_t event) {
  GM_NULL_ARG(event);
  GM_BE_FORWARD(event_query, event);
}

gpumem_status gm_be_event_synchronize(gpumem_event_t event) {
  GM_NULL_ARG(event);
  GM_BE_FORWARD(event_synchronize, event);
}

gpumem_status gm_be_device_synchronize(int device) {
  GM_BE_FORWARD(device_synchronize, device);
}

/* Refuse a range [p, p+size) that wraps past the top of the address space:
 * no backend sees it, so no range check downstream has to survive the
 * overflow (an overlap test computing p + size would pass it). */
static gpumem_status range_fits(const void *p, size_t size, const char *what) {
  uintptr_t a = (uintptr_t)p;
  if (size - 1 <= UINTPTR_MAX - a) return GPUMEM_OK;
  return gm_error(GPUMEM_ERR_INVALID_ARGUMENT,
                  "%s: [0x%" PRIxPTR ", +%zu) wraps past the top of the address space", what, a,
                  size);
}

gpumem_status gm_be_memcpy(void *dst, const void *src, size_t size, gpumem_stream_t stream) {
  if (size == 0) return GPUMEM_OK;
  GM_NULL_ARG(dst);
  GM_NULL_ARG(src);
  gpumem_status range = range_fits(dst, size, "copy destination");
  if (range == GPUMEM_OK) range = range_fits(src, size, "copy source");
  if (range != GPUMEM_OK) return range;
  GM_BE_FORWARD(memcpy, dst, src, size, stream);
}

gpumem_status gm_be_memset(void *dst, int value, size_t size, gpumem_stream_t stream) {
  if (size == 0) return GPUMEM_OK;
  GM_NULL_ARG(dst);
  gpumem_status range = range_fits(dst, size, "memset destination");
  if (range != GPUMEM_OK) return range;
  GM_BE_FORWARD(memset, dst, value, size, stream);
}

gpumem_status gm_be_launch_host_func(gpumem_stream_t stream, gpumem_host_fn fn, void *arg) {
  GM_NULL_ARG(fn);
  GM_BE_FORWARD(launch_host_func, stream, fn, arg);
}

gpumem_status gm_be_stream_id(gpumem_stream_t stream, uint64_t *out) {
  GM_NULL_ARG(out);
  GM_BE_FORWARD(stream_id, stream, out);
}

gpumem_status gm_be_stream_device(gpumem_stream_t stream, int *out) {
  GM_NULL_ARG(out);
  GM_BE_FORWARD(stream_device, stream, out);
}

gpumem_status gm_be_stream_capture(gpumem_stream_t stream, bool begin) {
  GM_BE_FORWARD(stream_capture, stream, begin);
}

/* The pool asks this on every allocation and free: a pure query, so it is
 * neither counted nor open to failure injection (a shared counter per call
 * would be the one write two threads share on the pool's hot path). */
gpumem_status gm_be_stream_state(gpumem_stream_t stream, uint64_t *id, bool *capturing) {
  GM_NULL_ARG(id);
  GM_NULL_ARG(capturing);
  const gm_backend_ops *be = gm_backend();
  if (be == NULL) return gm_error(GPUMEM_ERR_STATE, "libgpumem is not initialised");
  return be->stream_state(stream, id, capturing);
}

gpumem_status gm_be_stream_is_capturing(gpumem_stream_t stream, bool *out) {
  GM_NULL_ARG(out);
  GM_BE_FORWARD(stream_is_capturing, stream, out);
}

gpumem_status gm_be_dev_malloc(int device, size_t size, void **out) {
  GM_NULL_ARG(out);
  if (size == 0) return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "cannot allocate 0 bytes");
  GM_BE_COUNTED(dev_malloc, device_allocations, 1, device, size, out);
}

gpumem_status gm_be_dev_free(void *ptr) {
  GM_NULL_ARG(ptr);
  GM_BE_COUNTED(dev_free, device_allocations, -1, ptr);
}

gpumem_status gm_be_pool_create(const gm_pool_props *props, gpumem_native_pool_t *out) {
  GM_NULL_ARG(props);
  GM_NULL_ARG(out);
  GM_BE_COUNTED(pool_create, pools, 1, props, out);
}

gpumem_status gm_be_pool_destroy(gpumem_native_pool_t pool) {
  GM_NULL_ARG(pool);
  GM_BE_COUNTED(pool_destroy, pools, -1, pool);
}

gpumem_status gm_be_pool_default(int device, gpumem_native_pool_t *out) {
  GM_NULL_ARG(out);
  GM_BE_FORWARD(pool_default, device, out);
}

gpumem_status gm_be_pool_set_attr(gpumem_native_pool_t pool, gm_pool_attr attr, uint64_t value) {
  GM_NULL_ARG(pool);
  if ((int)attr < 0 || attr >= GM_POOL_ATTR_COUNT) {
    return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "pool attribute %d is not valid", (int)attr);
  }
  GM_BE_FORWARD(pool_set_attr, pool, attr, value);
}

gpumem_status gm_be_pool_get_attr(gpumem_native_pool_t pool, gm_pool_attr attr, uint64_t *value) {
  GM_NULL_ARG(pool);
  GM_NULL_ARG(value);
  if ((int)attr < 0 || attr >= GM_POOL_ATTR_COUNT) {
    return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "pool attribute %d is not valid", (int)attr);
  }
  GM_BE_FORWARD(pool_get_attr, pool, attr, value);
}

gpumem_status gm_be_pool_set_access(gpumem_native_pool_t pool, const gpumem_access_desc *desc,
                                    size_t count_) {
  GM_NULL_ARG(pool);
  GM_NULL_ARG(desc);
  if (count_ == 0 || count_ > GPUMEM_MAX_DEVICES) {
    return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "%zu access descriptors (1..%d)", count_,
                    GPUMEM_MAX_DEVICES);
  }
  GM_BE_FORWARD(pool_set_access, pool, desc, count_);
}

gpumem_status gm_be_pool_get_access(gpumem_native_pool_t pool, int device,
                                    gpumem_access_flags *out) {
  GM_NULL_ARG(pool);
  GM_NULL_ARG(out);
  GM_BE_FORWARD(pool_get_access, pool, device, out);
}

gpumem_status gm_be_pool_trim(gpumem_native_pool_t pool, size_t keep_bytes) {
  GM_NULL_ARG(pool);
  GM_BE_FORWARD(pool_trim, pool, keep_bytes);
}

gpumem_status gm_be_pool_alloc(gpumem_native_pool_t pool, size_t size, gpumem_stream_t stream,
                               void **out) {
  GM_NULL_ARG(pool);
  GM_NULL_ARG(out);
  if (size == 0) return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "cannot allocate 0 bytes");
  GM_BE_COUNTED(pool_alloc, pool_allocations, 1, pool, size, stream, out);
}

gpumem_status gm_be_pool_free(void *ptr, gpumem_stream_t stream) {
  GM_NULL_ARG(ptr);
  GM_BE_COUNTED(pool_free, pool_allocations, -1, ptr, stream);
}

gpumem_status gm_be_pool_export(gpumem_native_pool_t pool, gpumem_handle_type type,
                                gpumem_shareable_handle *out) {
  GM_NULL_ARG(pool);
  GM_NULL_ARG(out);
  GM_BE_FORWARD(pool_export, pool, type, out);
}

gpumem_status gm_be_pool_import(const gpumem_shareable_handle *in, gpumem_native_pool_t *out) {
  GM_NULL_ARG(in);
  GM_NULL_ARG(out);
  GM_BE_COUNTED(pool_import, pools, 1, in, out);
}

gpumem_status gm_be_pool_export_ptr(void *ptr, gm_pool_ptr_export *out) {
  GM_NULL_ARG(ptr);
  GM_NULL_ARG(out);
  GM_BE_FORWARD(pool_export_ptr, ptr, out);
}

gpumem_status gm_be_pool_import_ptr(gpumem_native_pool_t pool, const gm_pool_ptr_export *data,
                                    void **out) {
  GM_NULL_ARG(pool);
  GM_NULL_ARG(data);
  GM_NULL_ARG(out);
  GM_BE_COUNTED(pool_import_ptr, pool_allocations, 1, pool, data, out);
}
