/* pool.c: the stream-ordered pool and its per-thread cache (gpumem/pool.h).
 *
 * Below: a cudaMemPool_t reached through the backend seam, which provides
 * the stream-ordered semantics, cross-stream reuse through event
 * dependencies, IPC and statistics. Above it, three structures:
 *
 * - The pointer table: every block the pool has handed out, in 64 shards
 *   keyed by a hash of the pointer, each with its own spin lock (held for a
 *   hash-table step; a mutex's lock and unlock cost more than that). A free looks the
 *   pointer up (foreign pointers are refused, not forwarded to the driver)
 *   and moves the block's state LIVE -> CACHED or LIVE -> gone under the
 *   shard lock, so a double free is detected even when it races.
 *
 * - Per-thread caches. A thread using a pool gets a cache for it (found
 *   through a short thread-local array keyed by the pool's id, never reused),
 *   holding up to CACHE_STREAMS streams, each with a LIFO list per size class
 *   (four classes per power of two from 256 bytes). A block freed on stream S
 *   goes to the calling thread's list for S and class; an allocation on S of
 *   that class pops it. Same-stream reuse is what stream order makes safe
 *   immediately; reuse on any other stream is left to the CUDA pool.
 *
 *   A stream is named by its id (cudaStreamGetId), not by its handle: NULL
 *   and cudaStreamPerThread are a different stream on each device and
 *   thread, and a destroyed stream's handle value may be given to a new
 *   stream while the old one's work still runs. A stream being captured into
 *   a graph bypasses the cache (a cache hit would add no allocation node, and
 *   the graph would replay with memory it does not own). So the hot path is:
 *   one stream query (id and capture state together), the thread's own
 *   cache lock (a spin lock, uncontended except while a flush or the stats
 *   read it) and one shard lock.
 *
 * - The cache bound: all caches of a pool together hold at most
 *   cache_max_bytes; a free that would exceed it goes to the CUDA pool. Each
 *   cache reserves credit against the bound in steps of a sixteenth and
 *   keeps its own counters (allocations, frees, live and cached bytes) under
 *   its own lock; statistics add them up. Only the paths that reach the
 *   driver anyway (large blocks, no cache, a full cache) count on shared
 *   atomics. Blocks over 256 KiB ("wide") have a bound of their own, per
 *   thread: four blocks of the largest cached size (wide_room), since a
 *   cached block the next request's size misses stays where it is and
 *   keeps the CUDA pool's free ranges around it from merging.
 *
 * Flushing (trim, destroy, out of memory, gpumem_pool_forget_stream)
 * returns each cached block with cudaFreeAsync on the stream it was cached
 * for, so the CUDA pool orders its reuse after the work queued before the
 * block's free, as if the cache had never held it. Blocks cached for a
 * default stream (NULL, cudaStreamPerThread) cannot be named from another
 * thread: their device is synchronized while their cache is locked (no block
 * can join it meanwhile), and they are freed on a stream of the pool's own
 * on that device. trim then synchronizes the devices of the streams it freed on
 * (which also covers streams destroyed meanwhile) before cudaMemPoolTrimTo,
 * because frees "whose completion has not been observed on the host ... can
 * count as outstanding" (cuda_runtime_api.h), which would keep the memory
 * reserved. A block leaves the pointer table only once its free has been
 * accepted. Caches of threads that exited stay listed with the pool until it
 * flushes them.
 *
 * Wrapping the device's default pool changes process-wide settings (release
 * threshold, reuse policies, peer access); they are read at creation and put
 * back at destroy, as the CUDA baselines do.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "abi.h"
#include "api.h"
#include "gpumem/pool.h"
#include "gpumem/stream.h"
#include "hashmap.h"
#include "log.h"
#include "options.h"
#include "pool.h"
#include "spinlock.h"
#include "trace.h"

#define POOL_MAGIC             0x67706f6fu /* "gpoo" */
#define SHARD_BITS             6
#define SHARDS                 (1 << SHARD_BITS)
#define CACHE_STREAMS          8
#define THREAD_POOLS           8   /* pools a thread caches for at once */
#define MIN_CLASS_SIZE         256 /* smallest size class (and the pool's alignment) */
#define SUBCLASSES             4   /* classes per power of two */
#define MAX_CLASSES            64
#define DEFAULT_CACHE_BYTES    ((size_t)256 << 20)
#define DEFAULT_CACHE_MAX_SIZE ((size_t)1 << 20)
#define LARGE_CLASS            UINT32_MAX
#define CREDIT_STEPS           16                  /* a cache takes the cache bound in 1/16 steps */
#define WIDE_CLASS_MIN         ((size_t)256 << 10) /* classes above it: "wide" (see wide_room) */
#define WIDE_BLOCKS            4 /* a cache holds this many largest blocks' worth of wide ones */

enum { BLOCK_LIVE = 1, BLOCK_CACHED = 2 };

typedef struct block {
  void *ptr;
  size_t size; /* bytes asked of the CUDA pool */
  uint32_t cls;
  _Atomic int state; /* BLOCK_LIVE or BLOCK_CACHED */
  struct block *next;
} block;

typedef struct shard {
  gm_spinlock lock; /* on a cache line of its own: no false sharing */
  gm_hashmap map;   /* ptr -> block* */
} shard;

typedef struct bin {
  uint64_t stream_id;     /* the stream's process-unique id */
  gpumem_stream_t stream; /* the handle its blocks were freed on */
  int device;             /* the stream's device */
  block *heads[MAX_CLASSES];
} bin;

/* A thread's cache. Its counters (under its lock) count what went through
 * it: allocations served from it, frees into it, the bytes of both, and the
 * share of the cache bound it holds (credit, taken from the pool in steps so
 * that threads rarely touch the pool's shared line). */
typedef struct tcache {
  gm_spinlock lock; /* uncontended but for a flush or the stats */
  bin bins[CACHE_STREAMS];
  int nbins;
  uint64_t hits, misses;
  uint64_t allocs, frees;
  int64_t live;          /* bytes allocated minus bytes freed through this cache */
  size_t cached, credit; /* bytes held; bytes of the bound reserved (>= cached) */
  size_t cached_wide;    /* of cached: bytes in blocks over WIDE_CLASS_MIN */
  struct tcache *next;   /* in the pool's list */
} tcache;

/* The default pool's settings before this pool changed them. */
typedef struct saved_defaults {
  uint64_t attrs[GM_POOL_RELEASE_THRESHOLD + 1]; /* reuse policies and threshold */
  int access_devices[GPUMEM_MAX_DEVICES];
  gpumem_access_flags access[GPUMEM_MAX_DEVICES];
  size_t access_count;
} saved_defaults;

struct gpumem_pool {
  uint32_t magic;
  uint64_t id;
  int device;
  gpumem_native_pool_t native;
  bool owned, imported, cache, wraps_default;
  gpumem_stream_t flush_streams[GPUMEM_MAX_DEVICES]; /* see flush_stream() */
  saved_defaults defaults;                           /* when wraps_default */
  size_t cache_max_bytes, cache_max_size;
  uint32_t nclasses;
  shard shards[SHARDS];
  pthread_mutex_t caches_lock; /* the list of thread caches */
  tcache *caches;
  _Atomic size_t credit_taken; /* of cache_max_bytes, held by the thread caches */
  /* Allocations and frees that did not go through a cache (large blocks, no
   * cache, cache full): they pay a driver call, so a shared line costs
   * nothing there. */
  _Atomic int64_t live_bytes;
  _Atomic uint64_t allocs, frees;
  _Atomic uint64_t failed;     /* allocations that returned an error (a cold path) */
  _Atomic uint64_t unobserved; /* device_set: flushed frees whose synchronize failed */
};

/* The bytes of a block of `size` that count against the wide bound
 * (wide_room): all of them over WIDE_CLASS_MIN, none below. */
static inline size_t wide_part(size_t size) {
  return size > WIDE_CLASS_MIN ? size : 0;
}

/* ---- size classes: 256 B, then four per power of two ---- */

static uint32_t class_of(size_t size) {
  if (size <= MIN_CLASS_SIZE) return 0;
  unsigned top = 63u - (unsigned)__builtin_clzll((unsigned long long)(size - 1)); /* 2^top < size */
  size_t base = (size_t)1 << top, step = base / SUBCLASSES;
  uint32_t sub = (uint32_t)((size - 1 - base) / step);
  return (top - 8u) * SUBCLASSES + sub + 1u; /* top >= 8 since size > 256 */
}

static size_t class_size(uint32_t cls) {
  if (cls == 0) return MIN_CLASS_SIZE;
  unsigned top = (cls - 1u) / SUBCLASSES + 8u;
  size_t base = (size_t)1 << top;
  return base + (base / SUBCLASSES) * ((cls - 1u) % SUBCLASSES + 1u);
}

/* ---- thread caches ---- */

typedef struct tls_entry {
  uint64_t pool_id;
  tcache *cache;
} tls_entry;

static GM_TLS_FAST tls_entry tls_caches[THREAD_POOLS];
static _Atomic uint64_t next_pool_id = 1;

/* Ids of live pools, so that a thread can reuse the slot of a pool that was
 * destroyed (its entry's cache pointer is never followed). */
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static gm_hashmap live_ids = GM_HASHMAP_INIT;

static bool pool_id_live(uint64_t id) {
  pthread_mutex_lock(&live_lock);
  bool live = gm_hashmap_get(&live_ids, id, NULL);
  pthread_mutex_unlock(&live_lock);
  return live;
}

/* The calling thread's cache for `p`, made on first use; NULL when the thread
 * already caches for THREAD_POOLS other live pools. */
static GM_TLS_FAST tls_entry tls_last; /* the pool this thread used last */

static tcache *thread_cache(gpumem_pool_t *p) {
  if (tls_last.pool_id == p->id) return tls_last.cache;
  tls_entry *free_slot = NULL;
  for (int i = 0; i < THREAD_POOLS; i++) {
    if (tls_caches[i].pool_id == p->id) {
      tls_last = tls_caches[i];
      return tls_caches[i].cache;
    }
    if (tls_caches[i].pool_id == 0 && free_slot == NULL) free_slot = &tls_caches[i];
  }
  for (int i = 0; free_slot == NULL && i < THREAD_POOLS; i++) { /* reclaim a dead pool's slot */
    if (!pool_id_live(tls_caches[i].pool_id)) free_slot = &tls_caches[i];
  }
  if (free_slot == NULL) return NULL;
  tcache *c = gm_aligned_zalloc(sizeof *c); /* its lock has a cache line of its own */
  if (c == NULL) return NULL;
  pthread_mutex_lock(&p->caches_lock);
  c->next = p->caches;
  p->caches = c;
  pthread_mutex_unlock(&p->caches_lock);
  *free_slot = (tls_entry){p->id, c};
  tls_last = *free_slot;
  return c;
}

/* Forget this thread's entry for a pool (its cache is freed with the pool). */
static void forget_thread_cache(uint64_t id) {
  if (tls_last.pool_id == id) tls_last = (tls_entry){0, NULL};
  for (int i = 0; i < THREAD_POOLS; i++) {
    if (tls_caches[i].pool_id == id) tls_caches[i] = (tls_entry){0, NULL};
  }
}

static bin *find_bin(tcache *c, uint64_t stream_id) {
  for (int i = 0; i < c->nbins; i++) {
    if (c->bins[i].stream_id == stream_id) return &c->bins[i];
  }
  return NULL;
}

static bin *new_bin(tcache *c, uint64_t stream_id, gpumem_stream_t stream, int device) {
  if (c->nbins == CACHE_STREAMS) return NULL;
  bin *b = &c->bins[c->nbins++];
  memset(b, 0, sizeof *b);
  b->stream_id = stream_id;
  b->stream = stream;
  b->device = device;
  return b;
}

/* NULL, cudaStreamLegacy and cudaStreamPerThread name a different stream
 * in each thread (and device). */
static bool default_stream(gpumem_stream_t s) {
  return s == NULL || s == GPUMEM_STREAM_LEGACY || s == GPUMEM_STREAM_PER_THREAD;
}

/* ---- the pointer table ---- */

static shard *shard_of(gpumem_pool_t *p, const void *ptr) {
  uint64_t h = (uint64_t)(uintptr_t)ptr / MIN_CLASS_SIZE; /* blocks are that far apart */
  return &p->shards[gm_fib_hash(h ^ (h >> 17), SHARD_BITS)];
}

/* ---- flushing ---- */

/* Devices whose streams a flush freed on (bit d: device d), for trim to
 * synchronize: a device synchronize also covers streams destroyed since. */
typedef uint64_t device_set;
_Static_assert(GPUMEM_MAX_DEVICES <= 64, "a device set is one 64-bit word");

/* The pool's own stream on `device`, made on first use (caches_lock held):
 * blocks whose stream cannot be named are freed on it once their device has
 * been synchronized. Not the legacy stream: NULL names the flushing thread's
 * current device, and on a thread with none it would create device 0's
 * context. */
static gpumem_status flush_stream(gpumem_pool_t *p, int device, gpumem_stream_t *out) {
  if (device < 0 || device >= GPUMEM_MAX_DEVICES) {
    return gm_error(GPUMEM_ERR_INTERNAL, "a cached block's stream has no device (%d)", device);
  }
  if (p->flush_streams[device] == NULL) {
    gpumem_status st = gm_be_stream_create(device, 0, &p->flush_streams[device]);
    if (st != GPUMEM_OK) return st;
  }
  *out = p->flush_streams[device];
  return GPUMEM_OK;
}

/* Return the blocks of one bin to the CUDA pool (its cache locked). Each is
 * freed on the bin's stream, or, for a default stream or a stream that is no
 * longer the one cached for (destroyed; its handle perhaps reissued), on the
 * pool's own stream of the bin's device after synchronizing that device. A block stays cached, and
 * in the table, if its free fails. */
static gpumem_status flush_bin(gpumem_pool_t *p, tcache *c, bin *bn, device_set *freed_on) {
  gpumem_status st = GPUMEM_OK;
  bool synced = false;
  /* Is the handle still the stream the blocks were cached for? A destroyed
   * stream's handle may name another stream now, or nothing. */
  uint64_t id = 0;
  if (!default_stream(bn->stream) &&
      (gm_be_stream_id(bn->stream, &id) != GPUMEM_OK || id != bn->stream_id)) {
    gm_error_discard();
    bn->stream = NULL; /* its device is synchronized below, as for a default stream */
  }
  for (uint32_t k = 0; k < p->nclasses; k++) {
    block **link = &bn->heads[k];
    while (*link != NULL) {
      block *b = *link;
      gpumem_stream_t on = bn->stream;
      gpumem_status fs = GPUMEM_ERR_INVALID_ARGUMENT;
      if (!default_stream(on)) {
        fs = gm_be_pool_free(b->ptr, on);
        if (fs != GPUMEM_OK) gm_error_discard(); /* retried below on the pool's own stream */
      }
      int on_device = bn->device;
      if (fs != GPUMEM_OK) {
        if (!synced) fs = gm_be_device_synchronize(bn->device);
        synced = synced || fs == GPUMEM_OK;
        if (synced) fs = flush_stream(p, bn->device, &on);
        if (fs == GPUMEM_OK) fs = gm_be_pool_free(b->ptr, on);
      }
      if (fs != GPUMEM_OK) {
        if (st == GPUMEM_OK) st = fs;
        link = &b->next;
        continue;
      }
      *freed_on |= (device_set)1 << on_device;
      *link = b->next;
      c->cached -= b->size;
      c->cached_wide -= wide_part(b->size);
      shard *s = shard_of(p, b->ptr);
      gm_spin_lock(&s->lock);
      gm_hashmap_remove(&s->map, (uint64_t)(uintptr_t)b->ptr);
      gm_spin_unlock(&s->lock);
      free(b);
    }
  }
  return st;
}

static bool bin_empty(const gpumem_pool_t *p, const bin *bn) {
  for (uint32_t k = 0; k < p->nclasses; k++) {
    if (bn->heads[k] != NULL) return false;
  }
  return true;
}

/* Flush the bins of every thread's cache for which `match` (a stream id, or
 * 0 for all); the caches are locked one at a time. */
static gpumem_status flush_caches_for(gpumem_pool_t *p, uint64_t match, device_set *freed_on) {
  gpumem_status st = GPUMEM_OK;
  pthread_mutex_lock(&p->caches_lock);
  for (tcache *c = p->caches; c != NULL; c = c->next) {
    gm_spin_lock(&c->lock);
    for (int i = 0; i < c->nbins;) {
      bin *bn = &c->bins[i];
      if (match != 0 && bn->stream_id != match) {
        i++;
        continue;
      }
      gpumem_status fs = flush_bin(p, c, bn, freed_on);
      if (fs != GPUMEM_OK && st == GPUMEM_OK) st = fs;
      if (bin_empty(p, bn)) {
        c->bins[i] = c->bins[--c->nbins];
      } else {
        i++;
      }
    }
    if (c->cached == 0 && c->nbins == 0) { /* give the credit back */
      atomic_fetch_sub(&p->credit_taken, c->credit);
      c->credit = 0;
    }
    gm_spin_unlock(&c->lock);
  }
  pthread_mutex_unlock(&p->caches_lock);
  return st;
}

static gpumem_status flush_caches(gpumem_pool_t *p, device_set *freed_on) {
  return flush_caches_for(p, 0, freed_on);
}

/* Wait until the frees a flush made have run, so that the CUDA pool counts
 * them as returned (cudaMemPoolTrimTo): synchronize each device they were
 * queued on (their streams may have been destroyed since). The devices not
 * synchronized because one failed are remembered, and synchronized by the
 * next call (a retried trim or destroy), whose flush may free nothing. */
static gpumem_status observe_frees(gpumem_pool_t *p, device_set freed_on) {
  gpumem_status st = GPUMEM_OK;
  device_set left = freed_on | atomic_exchange(&p->unobserved, 0);
  for (int d = 0; d < GPUMEM_MAX_DEVICES && st == GPUMEM_OK; d++) {
    if (!(left & ((device_set)1 << d))) continue;
    st = gm_be_device_synchronize(d);
    if (st == GPUMEM_OK) left &= ~((device_set)1 << d);
  }
  if (left != 0) atomic_fetch_or(&p->unobserved, left);
  return st;
}

/* ---- the cache bound and the counters ---- */

/* Make room in c's credit for `size` more cached bytes (c locked): the
 * caches together never hold more than cache_max_bytes because each holds at
 * most its credit and the credits add up to credit_taken <= cache_max_bytes.
 * Credit is taken in steps of a sixteenth of the bound, so the pool's shared
 * line is touched once per many frees, and given back when the caches are
 * flushed. False when the bound leaves no room. */
static inline bool take_credit(gpumem_pool_t *p, tcache *c, size_t size) {
  if (c->cached + size <= c->credit) return true;
  size_t need = c->cached + size - c->credit, step = p->cache_max_bytes / CREDIT_STEPS;
  size_t want = need > step ? need : step;
  size_t taken = atomic_load_explicit(&p->credit_taken, memory_order_relaxed);
  for (;;) {
    size_t room = p->cache_max_bytes - taken;
    if (room < need) return false;
    size_t get = want < room ? want : room;
    if (atomic_compare_exchange_weak_explicit(&p->credit_taken, &taken, taken + get,
                                              memory_order_relaxed, memory_order_relaxed)) {
      c->credit += get;
      return true;
    }
  }
}

/* Whether c (locked) may cache a block of `size` bytes as far as wide
 * blocks go: those over WIDE_CLASS_MIN (256 KiB) are cached only up to
 * WIDE_BLOCKS (4) blocks of the largest cached size, 4 MiB by default, per
 * thread. Blocks of these sizes are mostly tensors whose size follows the
 * data (a batch's sequence length, the number of running requests): the next
 * batch asks another class, misses, and the blocks of the classes before
 * stay cached where the CUDA pool had put them, between larger blocks, so its
 * free ranges cannot merge around them. Measured on the host backend
 * (gpumem-bench replay, peak reserved / peak live, variable-length batches at
 * seeds 1-3): 1.170/1.220/1.238 with no such bound, 1.027/1.036/1.121 with
 * it, where the pool without its cache gives 1.019/1.023/1.121; training,
 * mixture and resnet50_train move by 0.012 or less, and a loop over one size
 * (pairs, up to 1 MiB) is still served from the cache. Small blocks are
 * not bounded this way: bounds on them too (from 0, 16 or 64 KiB) moved
 * generation's figures up and down by run, not down. */
static inline bool wide_room(const gpumem_pool_t *p, const tcache *c, size_t size) {
  return c->cached_wide + wide_part(size) <= WIDE_BLOCKS * p->cache_max_size;
}

typedef struct pool_totals {
  int64_t live;
  size_t cached;
  uint64_t allocs, frees, hits, misses;
} pool_totals;

/* The counters of every cache and the shared ones, added up. */
static pool_totals totals(gpumem_pool_t *p) {
  pool_totals t = {atomic_load(&p->live_bytes), 0, atomic_load(&p->allocs),
                   atomic_load(&p->frees),      0, 0};
  pthread_mutex_lock(&p->caches_lock);
  for (tcache *c = p->caches; c != NULL; c = c->next) {
    gm_spin_lock(&c->lock);
    t.live += c->live;
    t.cached += c->cached;
    t.allocs += c->allocs;
    t.frees += c->frees;
    t.hits += c->hits;
    t.misses += c->misses;
    gm_spin_unlock(&c->lock);
  }
  pthread_mutex_unlock(&p->caches_lock);
  return t;
}

/* ---- creation ---- */

static gpumem_status check_pool(const gpumem_pool_t *p) {
  if (p == NULL) return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "pool is NULL");
  if (p->magic != POOL_MAGIC) {
    return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "%p is not a live gpumem pool", (const void *)p);
  }
  return GPUMEM_OK;
}

static gpumem_pool_t *pool_new(int device) {
  gpumem_pool_t *p = gm_aligned_zalloc(sizeof *p); /* the shards are cache-line aligned */
  if (p == NULL) return NULL;
  p->magic = POOL_MAGIC;
  p->id = atomic_fetch_add(&next_pool_id, 1);
  p->device = device;
  for (int i = 0; i < SHARDS; i++) {
    p->shards[i].map = (gm_hashmap)GM_HASHMAP_INIT;
  }
  pthread_mutex_init(&p->caches_lock, NULL);
  pthread_mutex_lock(&live_lock);
  bool ok = gm_hashmap_put(&live_ids, p->id, 1);
  pthread_mutex_unlock(&live_lock);
  if (!ok) {
    free(p);
    return NULL;
  }
  return p;
}

static void pool_delete(gpumem_pool_t *p) {
  for (int d = 0; d < GPUMEM_MAX_DEVICES; d++) { /* their frees still run */
    if (p->flush_streams[d] != NULL && gm_be_stream_destroy(p->flush_streams[d]) != GPUMEM_OK)
      gm_error_discard(); /* the stream is the driver's to reclaim at exit */
  }
  for (int i = 0; i < SHARDS; i++) {
    gm_hashmap *m = &p->shards[i].map;
    for (size_t k = 0; k < m->capacity; k++) {
      if (m->keys[k] != 0) free((block *)(uintptr_t)m->values[k]);
    }
    gm_hashmap_free(m);
  }
  for (tcache *c = p->caches, *n; c != NULL; c = n) {
    n = c->next;
    free(c);
  }
  forget_thread_cache(p->id);
  pthread_mutex_lock(&live_lock);
  gm_hashmap_remove(&live_ids, p->id);
  pthread_mutex_unlock(&live_lock);
  pthread_mutex_destroy(&p->caches_lock);
  p->magic = 0;
  free(p);
}

static gpumem_status set_attrs(gpumem_pool_t *p, const gpumem_pool_config *c) {
  gpumem_status st =
      gm_be_pool_set_attr(p->native, GM_POOL_RELEASE_THRESHOLD, c->release_threshold);
  if (st == GPUMEM_OK)
    st = gm_be_pool_set_attr(p->native, GM_POOL_REUSE_FOLLOW_EVENT_DEPENDENCIES,
                             c->reuse_follow_event_dependencies);
  if (st == GPUMEM_OK)
    st = gm_be_pool_set_attr(p->native, GM_POOL_REUSE_ALLOW_OPPORTUNISTIC,
                             c->reuse_allow_opportunistic);
  if (st == GPUMEM_OK)
    st = gm_be_pool_set_attr(p->native, GM_POOL_REUSE_ALLOW_INTERNAL_DEPENDENCIES,
                             c->reuse_allow_internal_dependencies);
  if (st == GPUMEM_OK && c->access_count > 0) {
    gpumem_access_desc d[GPUMEM_MAX_DEVICES];
    size_t n = 0;
    for (size_t i = 0; i < c->access_count && n < GPUMEM_MAX_DEVICES; i++) {
      if (c->access_devices[i] != p->device)
        d[n++] = (gpumem_access_desc){c->access_devices[i], GPUMEM_ACCESS_READWRITE};
    }
    if (n > 0) st = gm_be_pool_set_access(p->native, d, n);
  }
  return st;
}

/* Read what set_attrs will change in the device's default pool. */
static gpumem_status save_defaults(gpumem_pool_t *p, const gpumem_pool_config *c) {
  saved_defaults *d = &p->defaults;
  for (int a = 0; a <= GM_POOL_RELEASE_THRESHOLD; a++) {
    gpumem_status st = gm_be_pool_get_attr(p->native, (gm_pool_attr)a, &d->attrs[a]);
    if (st != GPUMEM_OK) return st;
  }
  d->access_count = 0;
  for (size_t i = 0; i < c->access_count && d->access_count < GPUMEM_MAX_DEVICES; i++) {
    int dev = c->access_devices[i];
    if (dev == p->device) continue;
    gpumem_status st = gm_be_pool_get_access(p->native, dev, &d->access[d->access_count]);
    if (st != GPUMEM_OK) return st;
    d->access_devices[d->access_count++] = dev;
  }
  return GPUMEM_OK;
}

/* Put the default pool's settings back; the first failure is returned, the
 * rest still tried. */
static gpumem_status restore_defaults(gpumem_pool_t *p) {
  const saved_defaults *d = &p->defaults;
  gpumem_status st = GPUMEM_OK;
  for (int a = 0; a <= GM_POOL_RELEASE_THRESHOLD; a++) {
    gpumem_status s2 = gm_be_pool_set_attr(p->native, (gm_pool_attr)a, d->attrs[a]);
    if (st == GPUMEM_OK) st = s2;
  }
  for (size_t i = 0; i < d->access_count; i++) {
    gpumem_access_desc desc = {d->access_devices[i], d->access[i]};
    gpumem_status s2 = gm_be_pool_set_access(p->native, &desc, 1);
    if (st == GPUMEM_OK) st = s2;
  }
  return st;
}

gpumem_status gm_pool_create(const gpumem_pool_config *config, gpumem_pool_t **out) {
  gpumem_status st = GPUMEM_OK;
  gpumem_pool_t *p = NULL;
  gpumem_pool_config cfg;
  const gpumem_pool_config *c = &cfg;
  GM_REQUIRE(out != NULL, GPUMEM_ERR_INVALID_ARGUMENT, "pool is NULL");
  GM_TRY(gm_abi_read(config, sizeof cfg, &(gpumem_pool_config)GPUMEM_POOL_CONFIG_INIT, &cfg,
                     "pool config (GPUMEM_POOL_CONFIG_INIT)"));
  GM_REQUIRE(c->handle_type == GPUMEM_HANDLE_NONE || c->handle_type == GPUMEM_HANDLE_POSIX_FD,
             GPUMEM_ERR_INVALID_ARGUMENT, "pool handle type %d is not NONE or POSIX_FD",
             (int)c->handle_type);
  GM_REQUIRE(c->access_count == 0 || c->access_devices != NULL, GPUMEM_ERR_INVALID_ARGUMENT,
             "access_devices is NULL");
  GM_REQUIRE(c->access_count <= GPUMEM_MAX_DEVICES, GPUMEM_ERR_INVALID_ARGUMENT,
             "access_count %zu exceeds GPUMEM_MAX_DEVICES (%d)", c->access_count,
             GPUMEM_MAX_DEVICES);
  GM_REQUIRE(!(c->use_default_pool && (c->handle_type != GPUMEM_HANDLE_NONE || c->max_size)),
             GPUMEM_ERR_INVALID_ARGUMENT,
             "the default pool has its own handle type and size: set neither with it");
  gm_device_props props;
  GM_TRY(gm_be_device_props(c->device, &props));
  GM_REQUIRE(props.pools, GPUMEM_ERR_NOT_SUPPORTED, "device %d does not support memory pools",
             c->device);
  GM_REQUIRE(c->handle_type == GPUMEM_HANDLE_NONE || (props.pool_handle_types & c->handle_type),
             GPUMEM_ERR_NOT_SUPPORTED, "device %d's pools cannot export POSIX fds", c->device);
  if (c->max_size != 0) { /* a pool larger than the device could never be filled */
    size_t free_b = 0, total = 0;
    GM_TRY(gm_be_mem_info(c->device, &free_b, &total));
    GM_REQUIRE(c->max_size <= total, GPUMEM_ERR_INVALID_ARGUMENT,
               "max_size %zu exceeds device %d's %zu bytes of memory", c->max_size, c->device,
               total);
  }
  p = pool_new(c->device);
  GM_REQUIRE(p != NULL, GPUMEM_ERR_OUT_OF_MEMORY, "no host memory for a pool");
  p->cache = c->cache;
  p->cache_max_bytes = c->cache_max_bytes ? c->cache_max_bytes : DEFAULT_CACHE_BYTES;
  p->cache_max_size = c->cache_max_size ? c->cache_max_size : DEFAULT_CACHE_MAX_SIZE;
  p->nclasses = class_of(p->cache_max_size) + 1;
  GM_REQUIRE(p->nclasses <= MAX_CLASSES, GPUMEM_ERR_INVALID_ARGUMENT,
             "cache_max_size %zu is too large for the cache", c->cache_max_size);
  if (c->use_default_pool) {
    GM_TRY(gm_be_pool_default(c->device, &p->native));
    GM_TRY(save_defaults(p, c));
    p->wraps_default = true;
  } else {
    gm_pool_props pp = {c->device, c->handle_type, c->max_size};
    GM_TRY(gm_be_pool_create(&pp, &p->native));
    p->owned = true;
  }
  GM_TRY(set_attrs(p, c));
  *out = p;
  return GPUMEM_OK;
fail:
  if (p != NULL) {
    if (p->owned) gm_be_pool_destroy(p->native);
    if (p->wraps_default) restore_defaults(p);
    pool_delete(p);
  }
  return st;
}

GPUMEM_API gpumem_status gpumem_pool_create(const gpumem_pool_config *config,
                                            gpumem_pool_t **pool) {
  GM_API_FORWARD(gm_pool_create(config, pool));
}

gpumem_status gm_pool_destroy(gpumem_pool_t *p) {
  if (p == NULL) return GPUMEM_OK;
  gpumem_status st = check_pool(p);
  if (st != GPUMEM_OK) return st;
  int64_t live = totals(p).live;
  if (live != 0) {
    return gm_error(GPUMEM_ERR_BUSY, "the pool still has %lld bytes allocated: free them first",
                    (long long)live);
  }
  device_set freed_on = 0;
  if (!p->imported) st = flush_caches(p, &freed_on);
  /* The flushed frees run before the pool goes, so its memory is back on the
   * device when destroy returns (cudaMemPoolDestroy would release it only
   * once they have run, later). */
  if (st == GPUMEM_OK && p->owned) st = observe_frees(p, freed_on);
  /* Every step below is undone by nothing and redone by nothing: each one
   * that succeeds is recorded (a stream handle cleared, owned cleared), so a
   * destroy that failed part way leaves a pool that a second destroy
   * finishes. */
  for (int d = 0; st == GPUMEM_OK && d < GPUMEM_MAX_DEVICES; d++) {
    if (p->flush_streams[d] == NULL) continue;
    st = gm_be_stream_destroy(p->flush_streams[d]); /* their frees still run */
    if (st == GPUMEM_OK) p->flush_streams[d] = NULL;
  }
  if (st == GPUMEM_OK && p->owned) st = gm_be_pool_destroy(p->native);
  if (st == GPUMEM_OK) p->owned = false;
  if (st == GPUMEM_OK && p->wraps_default) st = restore_defaults(p);
  if (st != GPUMEM_OK) return st;
  pool_delete(p);
  return GPUMEM_OK;
}

GPUMEM_API gpumem_status gpumem_pool_destroy(gpumem_pool_t *pool) {
  GM_API_FORWARD(gm_pool_destroy(pool));
}

/* ---- alloc and free ---- */

static gpumem_status out_of_memory(gpumem_pool_t *p, size_t size) {
  uint64_t reserved = 0, used = 0;
  gm_be_pool_get_attr(p->native, GM_POOL_RESERVED_MEM_CURRENT, &reserved);
  gm_be_pool_get_attr(p->native, GM_POOL_USED_MEM_CURRENT, &used);
  return gm_error(GPUMEM_ERR_OUT_OF_MEMORY,
                  "cannot allocate %zu bytes on device %d: the pool holds %llu bytes, %llu in "
                  "use, and the caches were flushed",
                  size, p->device, (unsigned long long)reserved, (unsigned long long)used);
}

static gpumem_status alloc_checked(gpumem_pool_t *p, size_t size, gpumem_stream_t stream,
                                   void **out);

gpumem_status gm_pool_alloc(gpumem_pool_t *p, size_t size, gpumem_stream_t stream, void **out) {
  gpumem_status st = check_pool(p);
  if (st != GPUMEM_OK) return st;
  st = alloc_checked(p, size, stream, out);
  if (st != GPUMEM_OK) atomic_fetch_add_explicit(&p->failed, 1, memory_order_relaxed);
  return st;
}

static gpumem_status alloc_checked(gpumem_pool_t *p, size_t size, gpumem_stream_t stream,
                                   void **out) {
  gpumem_status st = GPUMEM_OK;
  if (out == NULL) return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "ptr is NULL");
  if (size == 0) return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "cannot allocate 0 bytes");
  if (p->imported) return gm_error(GPUMEM_ERR_NOT_SUPPORTED, "an imported pool cannot allocate");
  bool small = p->cache && size <= p->cache_max_size;
  uint64_t sid = 0;
  if (small) {
    bool capturing = false;
    st = gm_be_stream_state(stream, &sid, &capturing);
    if (st != GPUMEM_OK) return st;
    small = !capturing; /* a graph's allocation must reach the CUDA pool, and never be cached */
  }
  uint32_t cls = small ? class_of(size) : LARGE_CLASS;
  tcache *c = small ? thread_cache(p) : NULL;
  if (c != NULL) {
    gm_spin_lock(&c->lock);
    bin *b = find_bin(c, sid);
    block *blk = b ? b->heads[cls] : NULL;
    if (blk != NULL) {
      b->heads[cls] = blk->next;
      c->hits++;
      c->allocs++;
      c->live += (int64_t)blk->size;
      c->cached -= blk->size;
      c->cached_wide -= wide_part(blk->size);
    } else {
      c->misses++;
    }
    gm_spin_unlock(&c->lock);
    if (blk != NULL) {
      /* Only this thread holds a cached block: no one else writes its state. */
      atomic_store_explicit(&blk->state, BLOCK_LIVE, memory_order_release);
      *out = blk->ptr;
      GM_TRACE_ALLOC("pool", p, blk->ptr, size, stream, p->device);
      return GPUMEM_OK;
    }
  }
  size_t bytes = small ? class_size(cls) : size;
  block *blk = malloc(sizeof *blk);
  if (blk == NULL) return gm_error(GPUMEM_ERR_OUT_OF_MEMORY, "no host memory for a block record");
  void *ptr = NULL;
  st = gm_be_pool_alloc(p->native, bytes, stream, &ptr);
  if (st == GPUMEM_ERR_OUT_OF_MEMORY) { /* give the caches back and try again */
    gm_error_discard();
    device_set freed_on = 0;
    st = flush_caches(p, &freed_on);
    if (st == GPUMEM_OK) st = gm_be_pool_alloc(p->native, bytes, stream, &ptr);
    if (st == GPUMEM_ERR_OUT_OF_MEMORY && freed_on != 0) {
      /* the returned blocks may be reusable by this stream only once their
       * frees have run (reuse policies off): wait for them, once */
      gm_error_discard();
      st = observe_frees(p, freed_on);
      if (st == GPUMEM_OK) st = gm_be_pool_alloc(p->native, bytes, stream, &ptr);
    }
    if (st == GPUMEM_ERR_OUT_OF_MEMORY) st = out_of_memory(p, size);
  }
  if (st != GPUMEM_OK) {
    free(blk);
    return st;
  }
  blk->ptr = ptr;
  blk->size = bytes;
  blk->cls = cls;
  atomic_init(&blk->state, BLOCK_LIVE);
  blk->next = NULL;
  shard *s = shard_of(p, ptr);
  gm_spin_lock(&s->lock);
  bool ok = gm_hashmap_put(&s->map, (uint64_t)(uintptr_t)ptr, (uint64_t)(uintptr_t)blk);
  gm_spin_unlock(&s->lock);
  if (!ok) {
    gm_be_pool_free(ptr, stream);
    free(blk);
    return gm_error(GPUMEM_ERR_OUT_OF_MEMORY, "no host memory for the pointer table");
  }
  atomic_fetch_add_explicit(&p->live_bytes, (int64_t)bytes, memory_order_relaxed);
  atomic_fetch_add_explicit(&p->allocs, 1, memory_order_relaxed);
  *out = ptr;
  GM_TRACE_ALLOC("pool", p, ptr, size, stream, p->device);
  return GPUMEM_OK;
}

GPUMEM_API gpumem_status gpumem_pool_alloc(gpumem_pool_t *pool, size_t size, gpumem_stream_t stream,
                                           void **ptr) {
  GM_API_FORWARD_ALLOC(gm_pool_alloc(pool, size, stream, ptr), size, pool->device);
}

/* The smallest size a request for `blk` may have asked: a cached size class
 * serves every request of (class below, class] bytes; a large block was
 * allocated at the size asked. */
static size_t smallest_request(const block *blk) {
  if (blk->cls == LARGE_CLASS) return blk->size;
  return blk->cls == 0 ? 1 : class_size(blk->cls - 1) + 1;
}

static gpumem_status wrong_size(const void *ptr, size_t size, size_t low, size_t bytes) {
  if (low == bytes)
    return gm_error(GPUMEM_ERR_INVALID_ARGUMENT,
                    "free of %p with size %zu: it was allocated with %zu bytes", ptr, size, bytes);
  return gm_error(GPUMEM_ERR_INVALID_ARGUMENT,
                  "free of %p with size %zu: it was allocated with %zu to %zu bytes (a block of "
                  "%zu)",
                  ptr, size, low, bytes, bytes);
}

gpumem_status gm_pool_free(gpumem_pool_t *p, void *ptr, gpumem_stream_t stream) {
  return gm_pool_free_sized(p, ptr, 0, stream);
}

gpumem_status gm_pool_free_sized(gpumem_pool_t *p, void *ptr, size_t size, gpumem_stream_t stream) {
  gpumem_status st = check_pool(p);
  if (st != GPUMEM_OK) return st;
  if (ptr == NULL) return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "ptr is NULL");
  uint64_t sid = 0;
  bool capturing = false;
  if (p->cache) { /* which stream, and may a block freed on it be cached? */
    st = gm_be_stream_state(stream, &sid, &capturing);
    if (st != GPUMEM_OK) return st;
  }
  shard *s = shard_of(p, ptr);
  gm_spin_lock(&s->lock);
  uint64_t v = 0;
  block *blk = gm_hashmap_get(&s->map, (uint64_t)(uintptr_t)ptr, &v) ? (block *)(uintptr_t)v : NULL;
  int state = 0;
  /* Cache it, or take it out of the table to return it to the CUDA pool. */
  tcache *c = NULL;
  bool cache_it = blk != NULL && blk->cls != LARGE_CLASS; /* the bound: see take_credit */
  cache_it = cache_it && !capturing;                      /* a graph needs its free node */
  size_t low = blk != NULL && size != 0 ? smallest_request(blk) : 0;
  if (low != 0 && (size < low || size > blk->size)) { /* a wrong size: nothing freed */
    size_t bytes = blk->size;
    gm_spin_unlock(&s->lock);
    return wrong_size(ptr, size, low, bytes);
  }
  if (blk != NULL) {
    /* LIVE -> CACHED (or gone) atomically: of two racing frees one wins. */
    int expected = BLOCK_LIVE;
    bool won = atomic_compare_exchange_strong(&blk->state, &expected, BLOCK_CACHED);
    state = won ? BLOCK_LIVE : expected;
    if (won && !cache_it) gm_hashmap_remove(&s->map, (uint64_t)(uintptr_t)ptr);
  }
  gm_spin_unlock(&s->lock);
  if (blk == NULL) {
    return gm_error(GPUMEM_ERR_INVALID_POINTER, "%p was not allocated from this pool", ptr);
  }
  if (state != BLOCK_LIVE) {
    return gm_error(GPUMEM_ERR_DOUBLE_FREE, "%p was already freed", ptr);
  }
  GM_TRACE_FREE("pool", p, ptr, stream, p->device); /* before any other thread can reuse ptr */
  if (cache_it && (c = thread_cache(p)) != NULL) {
    gm_spin_lock(&c->lock);
    bool credit = wide_room(p, c, blk->size) && take_credit(p, c, blk->size);
    bin *b = credit ? find_bin(c, sid) : NULL;
    if (credit && b == NULL && c->nbins < CACHE_STREAMS) { /* a stream new to this cache */
      int device = -1;
      if (gm_be_stream_device(stream, &device) == GPUMEM_OK)
        b = new_bin(c, sid, stream, device);
      else
        gm_error_discard(); /* not cached: freed below */
    }
    if (b != NULL) {
      blk->next = b->heads[blk->cls];
      b->heads[blk->cls] = blk;
      c->cached += blk->size;
      c->cached_wide += wide_part(blk->size);
      c->frees++;
      c->live -= (int64_t)blk->size;
    }
    gm_spin_unlock(&c->lock);
    if (b != NULL) return GPUMEM_OK;
  }
  if (cache_it) { /* no room in this thread's cache after all: take it out of the table */
    gm_spin_lock(&s->lock);
    gm_hashmap_remove(&s->map, (uint64_t)(uintptr_t)ptr);
    gm_spin_unlock(&s->lock);
  }
  st = gm_be_pool_free(ptr, stream);
  if (st != GPUMEM_OK) {
    /* Nothing was freed: the block is live again and in the table (its
     * address cannot have been handed out meanwhile, and the slot it left
     * is still there), so a retry or the pool's destroy finds it. */
    gm_spin_lock(&s->lock);
    bool ok = gm_hashmap_put(&s->map, (uint64_t)(uintptr_t)ptr, (uint64_t)(uintptr_t)blk);
    if (ok) atomic_store_explicit(&blk->state, BLOCK_LIVE, memory_order_release);
    gm_spin_unlock(&s->lock);
    if (!ok) gm_log(GPUMEM_LOG_ERROR, "pool: %p could not be put back in the table", ptr);
    return st;
  }
  atomic_fetch_sub_explicit(&p->live_bytes, (int64_t)blk->size, memory_order_relaxed);
  atomic_fetch_add_explicit(&p->frees, 1, memory_order_relaxed);
  free(blk);
  return st;
}

GPUMEM_API gpumem_status gpumem_pool_free(gpumem_pool_t *pool, void *ptr, gpumem_stream_t stream) {
  GM_API_FORWARD(gm_pool_free(pool, ptr, stream));
}

/* ---- the rest of the interface ---- */

/* Flush, wait for the flushed frees to run, then trim: a free the host has
 * not seen complete still counts as outstanding for cudaMemPoolTrimTo. */
gpumem_status gm_pool_trim(gpumem_pool_t *p, size_t keep) {
  gpumem_status st = check_pool(p);
  device_set freed_on = 0;
  if (st == GPUMEM_OK && !p->imported) st = flush_caches(p, &freed_on);
  if (st == GPUMEM_OK) st = observe_frees(p, freed_on);
  if (st == GPUMEM_OK) st = gm_be_pool_trim(p->native, keep);
  return st;
}

GPUMEM_API gpumem_status gpumem_pool_trim(gpumem_pool_t *pool, size_t keep_bytes) {
  GM_API_FORWARD(gm_pool_trim(pool, keep_bytes));
}

gpumem_status gm_pool_forget_stream(gpumem_pool_t *p, gpumem_stream_t stream) {
  gpumem_status st = check_pool(p);
  uint64_t sid = 0;
  if (st == GPUMEM_OK) st = gm_be_stream_id(stream, &sid);
  device_set freed_on = 0;
  if (st == GPUMEM_OK && !p->imported) st = flush_caches_for(p, sid, &freed_on);
  return st;
}

GPUMEM_API gpumem_status gpumem_pool_forget_stream(gpumem_pool_t *pool, gpumem_stream_t stream) {
  GM_API_FORWARD(gm_pool_forget_stream(pool, stream));
}

gpumem_status gm_pool_get_stats(gpumem_pool_t *p, gpumem_pool_stats *out) {
  gpumem_status st = check_pool(p);
  if (st == GPUMEM_OK)
    st = gm_abi_check_out(out, sizeof *out, "pool stats (GPUMEM_POOL_STATS_INIT)");
  if (st != GPUMEM_OK) return st;
  uint64_t v[4] = {0, 0, 0, 0};
  const gm_pool_attr attrs[4] = {GM_POOL_RESERVED_MEM_CURRENT, GM_POOL_RESERVED_MEM_HIGH,
                                 GM_POOL_USED_MEM_CURRENT, GM_POOL_USED_MEM_HIGH};
  for (int i = 0; i < 4 && st == GPUMEM_OK; i++)
    st = gm_be_pool_get_attr(p->native, attrs[i], &v[i]);
  if (st != GPUMEM_OK) return st;
  pool_totals t = totals(p);
  gpumem_pool_stats s = {.base = {.struct_size = sizeof s,
                                  .bytes_in_use = (size_t)t.live,
                                  .peak_bytes_in_use = (size_t)v[3],
                                  .bytes_reserved = (size_t)v[0],
                                  .peak_bytes_reserved = (size_t)v[1],
                                  .allocs = t.allocs,
                                  .frees = t.frees,
                                  .failed_allocs = atomic_load(&p->failed),
                                  .largest_free = 0},
                         .used_current = (size_t)v[2],
                         .used_high = (size_t)v[3],
                         .cached_bytes = t.cached,
                         .cache_hits = t.hits,
                         .cache_misses = t.misses};
  gm_abi_write(out, &s, sizeof s);
  return GPUMEM_OK;
}

GPUMEM_API gpumem_status gpumem_pool_get_stats(gpumem_pool_t *pool, gpumem_pool_stats *stats) {
  GM_API_FORWARD(gm_pool_get_stats(pool, stats));
}

int gm_pool_device(const gpumem_pool_t *pool) {
  return pool->device;
}

GPUMEM_API gpumem_native_pool_t gpumem_pool_native(const gpumem_pool_t *pool) {
  return pool != NULL && pool->magic == POOL_MAGIC ? pool->native : NULL;
}

gpumem_status gm_pool_set_release_threshold(gpumem_pool_t *p, uint64_t bytes) {
  gpumem_status st = check_pool(p);
  return st != GPUMEM_OK ? st : gm_be_pool_set_attr(p->native, GM_POOL_RELEASE_THRESHOLD, bytes);
}

GPUMEM_API gpumem_status gpumem_pool_set_release_threshold(gpumem_pool_t *pool, uint64_t bytes) {
  GM_API_FORWARD(gm_pool_set_release_threshold(pool, bytes));
}

gpumem_status gm_pool_export(gpumem_pool_t *p, gpumem_shareable_handle *h) {
  gpumem_status st = check_pool(p);
  return st != GPUMEM_OK ? st : gm_be_pool_export(p->native, GPUMEM_HANDLE_POSIX_FD, h);
}

GPUMEM_API gpumem_status gpumem_pool_export(gpumem_pool_t *pool, gpumem_shareable_handle *handle) {
  GM_API_FORWARD(gm_pool_export(pool, handle));
}

gpumem_status gm_pool_import(const gpumem_shareable_handle *h, int device, gpumem_pool_t **out) {
  if (out == NULL) return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "pool is NULL");
  int count = 0;
  gpumem_status st = gm_be_device_count(&count);
  if (st != GPUMEM_OK) return st;
  if (device < 0 || device >= count) {
    return gm_error(GPUMEM_ERR_INVALID_DEVICE, "pool import: device %d does not exist (%d devices)",
                    device, count);
  }
  gpumem_pool_t *p = pool_new(device);
  if (p == NULL) return gm_error(GPUMEM_ERR_OUT_OF_MEMORY, "no host memory for a pool");
  p->imported = true;
  p->owned = true; /* the imported handle is ours to destroy */
  st = gm_be_pool_import(h, &p->native);
  if (st == GPUMEM_OK) { /* an imported pool is accessible from no device until told */
    gpumem_access_desc d = {device, GPUMEM_ACCESS_READWRITE};
    st = gm_be_pool_set_access(p->native, &d, 1);
    if (st != GPUMEM_OK) gm_be_pool_destroy(p->native);
  }
  if (st != GPUMEM_OK) {
    pool_delete(p);
    return st;
  }
  *out = p;
  return GPUMEM_OK;
}

GPUMEM_API gpumem_status gpumem_pool_import(const gpumem_shareable_handle *handle, int device,
                                            gpumem_pool_t **pool) {
  GM_API_FORWARD(gm_pool_import(handle, device, pool));
}

gpumem_status gm_pool_export_pointer(gpumem_pool_t *p, void *ptr, gpumem_pool_pointer *out) {
  gpumem_status st = check_pool(p);
  if (st != GPUMEM_OK) return st;
  if (out == NULL) return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "out is NULL");
  /* Only a LIVE block of this pool: a freed one may sit in the cache, still
   * allocated in the CUDA pool, where the backend would export it. */
  shard *s = shard_of(p, ptr);
  gm_spin_lock(&s->lock);
  uint64_t v = 0;
  block *blk = gm_hashmap_get(&s->map, (uint64_t)(uintptr_t)ptr, &v) ? (block *)(uintptr_t)v : NULL;
  int state = blk != NULL ? atomic_load(&blk->state) : 0;
  gm_spin_unlock(&s->lock);
  if (blk == NULL) {
    return gm_error(GPUMEM_ERR_INVALID_POINTER, "export: %p was not allocated from this pool", ptr);
  }
  if (state != BLOCK_LIVE) {
    return gm_error(GPUMEM_ERR_INVALID_POINTER,
                    "export: %p was freed (it sits in the pool's cache)", ptr);
  }
  _Static_assert(sizeof(gm_pool_ptr_export) == sizeof(gpumem_pool_pointer), "export data size");
  return gm_be_pool_export_ptr(ptr, (gm_pool_ptr_export *)(void *)out);
}

GPUMEM_API gpumem_status gpumem_pool_export_pointer(gpumem_pool_t *pool, void *ptr,
                                                    gpumem_pool_pointer *out) {
  GM_API_FORWARD(gm_pool_export_pointer(pool, ptr, out));
}

gpumem_status gm_pool_import_pointer(gpumem_pool_t *p, const gpumem_pool_pointer *in, void **out) {
  gpumem_status st = check_pool(p);
  if (st != GPUMEM_OK) return st;
  if (in == NULL || out == NULL) return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "in or ptr is NULL");
  void *ptr = NULL;
  st = gm_be_pool_import_ptr(p->native, (const gm_pool_ptr_export *)(const void *)in, &ptr);
  if (st != GPUMEM_OK) return st;
  block *blk = malloc(sizeof *blk);
  shard *s = shard_of(p, ptr);
  bool ok = blk != NULL;
  if (ok) {
    blk->ptr = ptr;
    blk->size = 0;
    blk->cls = LARGE_CLASS;
    atomic_init(&blk->state, BLOCK_LIVE);
    blk->next = NULL;
    gm_spin_lock(&s->lock);
    ok = gm_hashmap_put(&s->map, (uint64_t)(uintptr_t)ptr, (uint64_t)(uintptr_t)blk);
    gm_spin_unlock(&s->lock);
  }
  if (!ok) {
    free(blk);
    gm_be_pool_free(ptr, NULL);
    return gm_error(GPUMEM_ERR_OUT_OF_MEMORY, "no host memory for the pointer table");
  }
  *out = ptr;
  return GPUMEM_OK;
}

GPUMEM_API gpumem_status gpumem_pool_import_pointer(gpumem_pool_t *pool,
                                                    const gpumem_pool_pointer *in, void **ptr) {
  GM_API_FORWARD(gm_pool_import_pointer(pool, in, ptr));
}
