/* host_pool.c: cudaMemPool_t emulated on a memfd.
 *
 * A host pool is one memfd of the pool's maximum size, mapped once
 * (read-write, shared) so that a forked or importing process sees the same
 * bytes. Allocations are first-fit over offsets in an address-ordered block
 * list, with neighbours coalesced on free; this is an emulator, so clarity
 * wins over speed (the library's own pool puts its fast cache in front).
 *
 * Memory is charged to the device in granules, as a CUDA pool reserves
 * physical memory in chunks: a granule becomes "reserved" when an allocation
 * first touches it and stays reserved after the allocation is freed (the
 * pool's cache) until trim, or until a synchronize finds the pool holding
 * more than its release threshold (default 0, as in CUDA), or until the
 * device runs out of memory and the pool gives its cache back to retry once.
 * Releasing a granule punches a hole in the memfd, so the memory really goes
 * back to the system. Used and reserved bytes, current and high, follow
 * CUDA's attribute definitions.
 *
 * Frees are stream-ordered, as cudaFreeAsync's are: a freed block remembers
 * the point of its stream's work at the free (host_stream.c) and stays
 * pending until the host has observed that point (a synchronize, or a query
 * that said done). A pending block is reusable
 *   - at once by allocations on the stream that freed it (stream order);
 *   - by another stream that has waited on an event recorded after the free
 *     (cudaMemPoolReuseFollowEventDependencies);
 *   - by any stream once the free has run, observed or not
 *     (cudaMemPoolReuseAllowOpportunistic);
 *   - by any stream after a wait on the free is queued on it
 *     (cudaMemPoolReuseAllowInternalDependencies), tried last;
 * each policy switchable as on the GPU. A pending block keeps its granules
 * reserved: trim and the release threshold give back only memory whose frees
 * the host has observed ("Allocations that have been asynchronously freed but
 * whose completion has not been observed on the host (eg. by a synchronize)
 * can count as outstanding", cuda_runtime_api.h, cudaMemPoolTrimTo). Pending
 * blocks do not coalesce until observed. A pool destroyed while frees are
 * still to run keeps its memory until they have (cudaMemPoolDestroy: "the
 * resources associated with the pool will be released automatically once
 * there are no more outstanding allocations"). A pool may allocate on a
 * stream of another device (cudaMallocFromPoolAsync allows it).
 *
 * Every function runs under the host backend's lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/host.h"
#include "options.h"

#define HOST_POOL_MAGIC        0x67736d50u /* "gsmP" */
#define HOST_POOL_ALIGN        512         /* alignment of every pool allocation */
#define HOST_POOL_PTR_MAGIC    0x67736d58u
#define HOST_POOL_MEMFD_PREFIX "gpumem-host-pool-dev"

typedef struct pool_block {
  size_t off, size;
  bool used;
  gm_host_point freed; /* a free not yet observed; .stream NULL when none */
} pool_block;

struct CUmemPoolHandle_st {
  uint32_t magic;
  int device;
  int fd;
  uint8_t *base;
  size_t max_size;
  unsigned handle_types;
  bool imported, is_default, dead; /* dead: destroyed, memory kept for pending frees */
  pool_block *blocks;              /* address-ordered; covers [0, max_size) unless imported */
  size_t nblocks, cap_blocks;
  uint32_t *granule_refs; /* live allocations touching each granule */
  bool *granule_charged;
  size_t ngranules, granularity;
  size_t reserved, reserved_high, used, used_high;
  uint64_t reuse[3];
  uint64_t release_threshold;
  uint8_t access[GPUMEM_MAX_DEVICES];
  struct CUmemPoolHandle_st *next;
};

typedef struct host_pool_ptr_data {
  uint32_t magic;
  uint64_t offset, size;
} host_pool_ptr_data;

static gpumem_native_pool_t all_pools;
static gpumem_native_pool_t dead_pools; /* destroyed with frees still to run */
static gpumem_native_pool_t default_pools[GPUMEM_MAX_DEVICES];

static gpumem_status check_pool(gpumem_native_pool_t p) {
  for (gpumem_native_pool_t q = all_pools; q != NULL; q = q->next) {
    if (q == p) return GPUMEM_OK;
  }
  return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "%p is not a live host-backend pool", (void *)p);
}

static bool blocks_reserve(gpumem_native_pool_t p, size_t n) {
  if (n <= p->cap_blocks) return true;
  size_t cap = p->cap_blocks ? p->cap_blocks * 2 : 16;
  while (cap < n)
    cap *= 2;
  pool_block *b = realloc(p->blocks, cap * sizeof *b);
  if (b == NULL) return false;
  p->blocks = b;
  p->cap_blocks = cap;
  return true;
}

static void blocks_insert(gpumem_native_pool_t p, size_t at, pool_block b) {
  memmove(&p->blocks[at + 1], &p->blocks[at], (p->nblocks - at) * sizeof b);
  p->blocks[at] = b;
  p->nblocks++;
}

static void blocks_erase(gpumem_native_pool_t p, size_t at) {
  memmove(&p->blocks[at], &p->blocks[at + 1], (p->nblocks - at - 1) * sizeof(pool_block));
  p->nblocks--;
}

/* Index of the block starting at `off`, or nblocks. */
static size_t block_at(gpumem_native_pool_t p, size_t off) {
  size_t lo = 0, hi = p->nblocks;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (p->blocks[mid].off < off)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < p->nblocks && p->blocks[lo].off == off ? lo : p->nblocks;
}

static void release_granule(gpumem_native_pool_t p, size_t g) {
  fallocate(p->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(g * p->granularity),
            (off_t)p->granularity);
  p->granule_charged[g] = false;
  p->reserved -= p->granularity;
  gm_host_uncharge(p->device, p->granularity);
}

/* Give cached granules back until at most `keep` bytes stay reserved. */
static void release_to(gpumem_native_pool_t p, size_t keep) {
  for (size_t g = p->ngranules; g-- > 0 && p->reserved > keep;) {
    if (p->granule_charged[g] && p->granule_refs[g] == 0) release_granule(p, g);
  }
}

/* Charge the granules of [off, off+size) not yet charged; all or nothing. */
static gpumem_status charge_range(gpumem_native_pool_t p, size_t off, size_t size) {
  size_t first = off / p->granularity, last = (off + size - 1) / p->granularity;
  for (size_t g = first; g <= last; g++) {
    if (p->granule_charged[g]) continue;
    gpumem_status st = gm_host_charge(p->device, p->granularity, "pool allocation");
    if (st != GPUMEM_OK) {
      for (size_t u = first; u < g; u++) {
        if (p->granule_charged[u] && p->granule_refs[u] == 0) release_granule(p, u);
      }
      return st;
    }
    p->granule_charged[g] = true;
    p->reserved += p->granularity;
  }
  if (p->reserved > p->reserved_high) p->reserved_high = p->reserved;
  return GPUMEM_OK;
}

static void ref_range(gpumem_native_pool_t p, size_t off, size_t size, int delta) {
  size_t first = off / p->granularity, last = (off + size - 1) / p->granularity;
  for (size_t g = first; g <= last; g++)
    p->granule_refs[g] += (uint32_t)delta;
}

/* Merge block i with block i+1 if both are free and either neither has a
 * pending free or both were freed on the same stream (the merged block then
 * waits for the later free; the stream itself may reuse it at once). */
static bool merge(gpumem_native_pool_t p, size_t i) {
  pool_block *a = &p->blocks[i], *b = &p->blocks[i + 1];
  if (a->used || b->used || a->freed.stream != b->freed.stream) return false;
  if (a->freed.stream != NULL) {
    /* both blocks' granule references stay; drop the double one on a shared granule */
    size_t g = p->granularity;
    if ((a->off + a->size - 1) / g == b->off / g) ref_range(p, b->off, 1, -1);
    if (b->freed.seq > a->freed.seq) a->freed.seq = b->freed.seq;
    gm_host_point_release(&b->freed);
  }
  a->size += b->size;
  blocks_erase(p, i + 1);
  return true;
}

/* Blocks whose frees the host has observed become plain free memory and
 * coalesce with free neighbours. */
static void sweep(gpumem_native_pool_t p) {
  for (size_t i = 0; i < p->nblocks; i++) {
    pool_block *b = &p->blocks[i];
    if (b->used || b->freed.stream == NULL || !gm_host_point_observed(&b->freed)) continue;
    gm_host_point_release(&b->freed);
    ref_range(p, b->off, b->size, -1);
  }
  for (size_t i = 0; i + 1 < p->nblocks;) {
    if (!merge(p, i)) i++;
  }
}

static bool frees_pending(gpumem_native_pool_t p) {
  for (size_t i = 0; i < p->nblocks; i++) {
    if (p->blocks[i].freed.stream != NULL && !gm_host_point_done(&p->blocks[i].freed)) return true;
  }
  return false;
}

static void pool_free_memory(gpumem_native_pool_t p) {
  for (size_t i = 0; i < p->nblocks; i++)
    gm_host_point_release(&p->blocks[i].freed);
  if (!p->imported) {
    for (size_t g = 0; g < p->ngranules; g++) {
      if (p->granule_charged[g]) gm_host_uncharge(p->device, p->granularity);
    }
  }
  if (p->base != NULL) munmap(p->base, p->max_size);
  if (p->fd >= 0) close(p->fd);
  free(p->blocks);
  free(p->granule_refs);
  free(p->granule_charged);
  free(p);
}

static gpumem_status pool_new(int device, unsigned handle_types, size_t max_size, int import_fd,
                              gpumem_native_pool_t *out) {
  gpumem_status st = GPUMEM_OK;
  gpumem_native_pool_t p = calloc(1, sizeof *p);
  if (p == NULL) return gm_error(GPUMEM_ERR_OUT_OF_MEMORY, "no host memory for a pool");
  p->magic = HOST_POOL_MAGIC;
  p->device = device;
  p->fd = -1;
  p->handle_types = handle_types;
  p->imported = import_fd >= 0;
  p->granularity = gm_host_granularity();
  p->max_size = max_size;
  p->reuse[0] = p->reuse[1] = p->reuse[2] = 1;
  /* An imported pool is accessible from no device of the importing process
   * until it sets access (cudaMemPoolSetAccess), as the importers in NVIDIA's
   * streamOrderedAllocationIPC sample do; the creator's own device always. */
  if (import_fd < 0) p->access[device] = GPUMEM_ACCESS_READWRITE;
  if (p->imported) {
    p->fd = fcntl(import_fd, F_DUPFD_CLOEXEC, 0);
    GM_REQUIRE(p->fd >= 0, GPUMEM_ERR_OS, "pool import: dup failed: %s", strerror(errno));
  } else {
    char name[48];
    snprintf(name, sizeof name, HOST_POOL_MEMFD_PREFIX "%d", device);
    p->fd = memfd_create(name, MFD_CLOEXEC);
    GM_REQUIRE(p->fd >= 0, GPUMEM_ERR_OS, "memfd_create for a pool failed: %s", strerror(errno));
    GM_REQUIRE(ftruncate(p->fd, (off_t)max_size) == 0, GPUMEM_ERR_OS,
               "ftruncate(pool, %zu) failed: %s", max_size, strerror(errno));
    p->ngranules = max_size / p->granularity;
    p->granule_refs = calloc(p->ngranules, sizeof *p->granule_refs);
    p->granule_charged = calloc(p->ngranules, sizeof *p->granule_charged);
    GM_REQUIRE(p->granule_refs && p->granule_charged && blocks_reserve(p, 1),
               GPUMEM_ERR_OUT_OF_MEMORY, "no host memory for a pool's records");
    blocks_insert(p, 0, (pool_block){0, max_size, false, {NULL, 0}});
  }
  void *base = mmap(NULL, max_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, p->fd, 0);
  GM_REQUIRE(base != MAP_FAILED, GPUMEM_ERR_OS, "mmap of a pool of %zu bytes failed: %s", max_size,
             strerror(errno));
  p->base = base;
  p->next = all_pools;
  all_pools = p;
  *out = p;
  return GPUMEM_OK;
fail:
  pool_free_memory(p);
  return st;
}

gpumem_status gm_host_pool_create(const gm_pool_props *props, gpumem_native_pool_t *out) {
  gpumem_status st = GPUMEM_OK;
  gm_host_lock();
  GM_REQUIRE(gm_host_device_valid(props->device), GPUMEM_ERR_INVALID_DEVICE,
             "pool: device %d does not exist (host backend has %d)", props->device,
             gm_host_device_count());
  GM_REQUIRE((props->handle_types & ~(unsigned)GPUMEM_HANDLE_POSIX_FD) == 0,
             GPUMEM_ERR_NOT_SUPPORTED, "pool: host pools export POSIX fds only (asked 0x%x)",
             props->handle_types);
  gm_host_context_touch(props->device);
  size_t gran = gm_host_granularity();
  size_t capacity = gm_option_size(GM_OPTION_HOST_CAPACITY) / gran * gran;
  size_t max_size = props->max_size ? props->max_size : capacity;
  GM_REQUIRE(gm_round_up(max_size, gran, &max_size), GPUMEM_ERR_INVALID_ARGUMENT,
             "pool: maximum size %zu overflows", props->max_size);
  st = pool_new(props->device, props->handle_types, max_size, -1, out);
fail:
  gm_host_unlock();
  return st;
}

gpumem_status gm_host_pool_destroy(gpumem_native_pool_t pool) {
  gpumem_status st = GPUMEM_OK;
  gm_host_lock();
  GM_TRY(check_pool(pool));
  GM_REQUIRE(!pool->is_default, GPUMEM_ERR_INVALID_ARGUMENT,
             "the device's default pool cannot be destroyed");
  size_t live = 0;
  for (size_t i = 0; i < pool->nblocks; i++)
    live += pool->blocks[i].used;
  GM_REQUIRE(live == 0, GPUMEM_ERR_BUSY, "pool still has %zu live allocations (%zu bytes)", live,
             pool->used);
  gpumem_native_pool_t *link = &all_pools;
  while (*link != pool)
    link = &(*link)->next;
  *link = pool->next;
  if (frees_pending(pool)) { /* its memory goes once they have run */
    pool->dead = true;
    pool->next = dead_pools;
    dead_pools = pool;
  } else {
    pool_free_memory(pool);
  }
fail:
  gm_host_unlock();
  return st;
}

gpumem_status gm_host_pool_default(int device, gpumem_native_pool_t *out) {
  gpumem_status st = GPUMEM_OK;
  gm_host_lock();
  GM_REQUIRE(gm_host_device_valid(device), GPUMEM_ERR_INVALID_DEVICE,
             "pool: device %d does not exist (host backend has %d)", device,
             gm_host_device_count());
  gm_host_context_touch(device);
  if (default_pools[device] == NULL) {
    size_t gran = gm_host_granularity();
    size_t capacity = gm_option_size(GM_OPTION_HOST_CAPACITY) / gran * gran;
    GM_TRY(pool_new(device, GPUMEM_HANDLE_NONE, capacity, -1, &default_pools[device]));
    default_pools[device]->is_default = true;
  }
  *out = default_pools[device];
fail:
  gm_host_unlock();
  return st;
}

gpumem_status gm_host_pool_set_attr(gpumem_native_pool_t pool, gm_pool_attr attr, uint64_t value) {
  gpumem_status st = GPUMEM_OK;
  gm_host_lock();
  GM_TRY(check_pool(pool));
  switch (attr) {
  case GM_POOL_REUSE_FOLLOW_EVENT_DEPENDENCIES:
  case GM_POOL_REUSE_ALLOW_OPPORTUNISTIC:
  case GM_POOL_REUSE_ALLOW_INTERNAL_DEPENDENCIES:
    GM_REQUIRE(value <= 1, GPUMEM_ERR_INVALID_ARGUMENT, "reuse policy must be 0 or 1, not %" PRIu64,
               value);
    pool->reuse[attr] = value;
    break;
  case GM_POOL_RELEASE_THRESHOLD:
    pool->release_threshold = value;
    break;
  case GM_POOL_RESERVED_MEM_HIGH:
  case GM_POOL_USED_MEM_HIGH:
    GM_REQUIRE(value == 0, GPUMEM_ERR_INVALID_ARGUMENT,
               "a high-water mark can only be reset (set to 0), not set to %" PRIu64, value);
    if (attr == GM_POOL_RESERVED_MEM_HIGH)
      pool->reserved_high = pool->reserved;
    else
      pool->used_high = pool->used;
    break;
  default:
    GM_REQUIRE(false, GPUMEM_ERR_INVALID_ARGUMENT, "pool attribute %d is read-only", (int)attr);
  }
fail:
  gm_host_unlock();
  return st;
}

gpumem_status gm_host_pool_get_attr(gpumem_native_pool_t pool, gm_pool_attr attr, uint64_t *value) {
  gpumem_status st = GPUMEM_OK;
  gm_host_lock();
  GM_TRY(check_pool(pool));
  switch (attr) {
  case GM_POOL_REUSE_FOLLOW_EVENT_DEPENDENCIES:
  case GM_POOL_REUSE_ALLOW_OPPORTUNISTIC:
  case GM_POOL_REUSE_ALLOW_INTERNAL_DEPENDENCIES:
    *value = pool->reuse[attr];
    break;
  case GM_POOL_RELEASE_THRESHOLD:
    *value = pool->release_threshold;
    break;
  case GM_POOL_RESERVED_MEM_CURRENT:
    *value = pool->reserved;
    break;
  case GM_POOL_RESERVED_MEM_HIGH:
    *value = pool->reserved_high;
    break;
  case GM_POOL_USED_MEM_CURRENT:
    *value = pool->used;
    break;
  case GM_POOL_USED_MEM_HIGH:
    *value = pool->used_high;
    break;
  default:
    GM_REQUIRE(false, GPUMEM_ERR_INVALID_ARGUMENT, "pool attribute %d", (int)attr);
  }
fail:
  gm_host_unlock();
  return st;
}

gpumem_status gm_host_pool_set_access(gpumem_native_pool_t pool, const gpumem_access_desc *desc,
                                      size_t count) {
  gpumem_status st = GPUMEM_OK;
  gm_host_lock();
  GM_TRY(check_pool(pool));
  for (size_t i = 0; i < count; i++) {
    int d = desc[i].device;
    GM_REQUIRE(gm_host_device_valid(d), GPUMEM_ERR_INVALID_DEVICE,
               "pool access: device %d does not exist", d);
    GM_REQUIRE(d != pool->device || pool->imported || desc[i].flags == GPUMEM_ACCESS_READWRITE,
               GPUMEM_ERR_INVALID_ARGUMENT,
               "pool access: the pool's own device %d always has read-write access", d);
    GM_REQUIRE(desc[i].flags == GPUMEM_ACCESS_NONE || gm_host_can_access(d, pool->device),
               GPUMEM_ERR_PEER_UNSUPPORTED,
               "pool access: device %d cannot access memory of device %d (no peer link)", d,
               pool->device);
  }
  for (size_t i = 0; i < count; i++)
    pool->access[desc[i].device] = (uint8_t)desc[i].flags;
fail:
  gm_host_unlock();
  return st;
}

gpumem_status gm_host_pool_get_access(gpumem_native_pool_t pool, int device,
                                      gpumem_access_flags *out) {
  gpumem_status st = GPUMEM_OK;
  gm_host_lock();
  GM_TRY(check_pool(pool));
  GM_REQUIRE(gm_host_device_valid(device), GPUMEM_ERR_INVALID_DEVICE,
             "pool access: device %d does not exist", device);
  *out = (gpumem_access_flags)pool->access[device];
fail:
  gm_host_unlock();
  return st;
}

gpumem_status gm_host_pool_trim(gpumem_native_pool_t pool, size_t keep_bytes) {
  gpumem_status st = GPUMEM_OK;
  gm_host_lock();
  GM_TRY(check_pool(pool));
  if (!pool->imported) {
    sweep(pool);
    release_to(pool, keep_bytes);
  }
fail:
  gm_host_unlock();
  return st;
}

gpumem_status gm_host_pool_alloc(gpumem_native_pool_t pool, size_t size, gpumem_stream_t stream,
                                 void **out) {
  gpumem_status st = GPUMEM_OK;
  gm_host_lock();
  GM_TRY(check_pool(pool));
  GM_REQUIRE(!pool->imported, GPUMEM_ERR_NOT_SUPPORTED, "an imported pool cannot allocate");
  size_t need;
  GM_REQUIRE(gm_round_up(size, HOST_POOL_ALIGN, &need) && need <= pool->max_size,
             GPUMEM_ERR_OUT_OF_MEMORY,
             "pool allocation of %zu bytes exceeds the pool's maximum %zu", size, pool->max_size);
  uint64_t stream_id = 0;
  GM_TRY(gm_host_stream_id(stream, &stream_id)); /* a live stream of some device */
  sweep(pool);
  /* First fit among blocks this stream may use now; then among those it may
   * use after waiting for their free (internal dependencies). */
  size_t i = pool->nblocks;
  gm_host_reuse how = GM_HOST_REUSE_NO;
  for (int pass = 0; pass < 2 && i == pool->nblocks; pass++) {
    for (i = 0; i < pool->nblocks; i++) {
      pool_block *b = &pool->blocks[i];
      if (b->used || b->size < need) continue;
      how = b->freed.stream == NULL ? GM_HOST_REUSE_NOW
                                    : gm_host_point_reuse(&b->freed, stream, pool->reuse);
      if (how == (pass == 0 ? GM_HOST_REUSE_NOW : GM_HOST_REUSE_AFTER_WAIT)) break;
    }
  }
  GM_REQUIRE(i < pool->nblocks, GPUMEM_ERR_OUT_OF_MEMORY,
             "pool on host device %d has no free range of %zu bytes this stream may use (%zu "
             "of %zu in use)",
             pool->device, need, pool->used, pool->max_size);
  GM_REQUIRE(blocks_reserve(pool, pool->nblocks + 1), GPUMEM_ERR_OUT_OF_MEMORY,
             "no host memory for a pool block record");
  size_t off = pool->blocks[i].off;
  st = charge_range(pool, off, need);
  if (st == GPUMEM_ERR_OUT_OF_MEMORY) { /* give this pool's cache back, retry once */
    release_to(pool, 0);
    st = charge_range(pool, off, need);
  }
  if (st != GPUMEM_OK) goto fail;
  if (how == GM_HOST_REUSE_AFTER_WAIT)
    GM_TRY(gm_host_stream_wait_point(stream, &pool->blocks[i].freed));
  gm_host_point freed = pool->blocks[i].freed; /* the pending free taken over, if any */
  size_t whole = pool->blocks[i].size;
  if (whole > need) {
    pool_block rest = {off + need, whole - need, false, freed};
    if (freed.stream != NULL) gm_host_point_retain(&freed);
    blocks_insert(pool, i + 1, rest);
    pool->blocks[i].size = need;
  }
  pool->blocks[i].used = true;
  pool->blocks[i].freed = (gm_host_point){NULL, 0};
  ref_range(pool, off, need, +1);
  if (freed.stream != NULL) { /* the pending block held its own references */
    if (whole > need) ref_range(pool, off + need, whole - need, +1);
    ref_range(pool, off, whole, -1);
    gm_host_point_release(&freed);
  }
  pool->used += need;
  if (pool->used > pool->used_high) pool->used_high = pool->used;
  *out = pool->base + off;
fail:
  gm_host_unlock();
  return st;
}

/* The pool whose mapping holds `ptr`, or NULL. */
static gpumem_native_pool_t pool_of(const void *ptr) {
  for (gpumem_native_pool_t p = all_pools; p != NULL; p = p->next) {
    if ((const uint8_t *)ptr >= p->base && (const uint8_t *)ptr < p->base + p->max_size) return p;
  }
  return NULL;
}

bool gm_host_pool_holds(const void *ptr) {
  return pool_of(ptr) != NULL;
}

gpumem_status gm_host_pool_check_access(const void *ptr, size_t n, int device, const char *what) {
  gm_host_lock();
  gpumem_native_pool_t p = pool_of(ptr);
  size_t room = p != NULL ? p->max_size - (size_t)((const uint8_t *)ptr - p->base) : SIZE_MAX;
  bool ok = p == NULL || p->access[device] != GPUMEM_ACCESS_NONE;
  size_t max_size = p != NULL ? p->max_size : 0;
  gm_host_unlock();
  if (n > room) { /* compared as lengths: ptr + n need not fit */
    return gm_error(GPUMEM_ERR_INVALID_ARGUMENT,
                    "%s: [%p, +%zu) runs past the end of its pool's %zu bytes (%zu left)", what,
                    ptr, n, max_size, room);
  }
  if (ok) return GPUMEM_OK;
  return gm_error(GPUMEM_ERR_INVALID_ARGUMENT,
                  "%s: %p is memory of an imported pool that device %d has no access to (call "
                  "cudaMemPoolSetAccess in the importing process first; a GPU would fault)",
                  what, ptr, device);
}

gpumem_status gm_host_pool_free(void *ptr, gpumem_stream_t stream) {
  gpumem_status st = GPUMEM_OK;
  gm_host_lock();
  gpumem_native_pool_t p = pool_of(ptr);
  GM_REQUIRE(p != NULL, GPUMEM_ERR_INVALID_POINTER, "free: %p was not allocated from a pool", ptr);
  size_t off = (size_t)((uint8_t *)ptr - p->base);
  size_t i = block_at(p, off);
  GM_REQUIRE(i < p->nblocks, GPUMEM_ERR_INVALID_POINTER,
             "free: %p is inside a pool but not the start of an allocation", ptr);
  GM_REQUIRE(p->blocks[i].used, GPUMEM_ERR_DOUBLE_FREE, "free: %p was already freed", ptr);
  if (p->imported) {
    blocks_erase(p, i);
    goto fail;
  }
  gm_host_point at;
  GM_TRY(gm_host_stream_mark(stream, &at)); /* the free runs when the stream gets there */
  pool_block *b = &p->blocks[i];
  b->used = false;
  b->freed = at; /* keeps the block's granule references until observed */
  p->used -= b->size;
  if (i + 1 < p->nblocks) merge(p, i);
  if (i > 0) merge(p, i - 1);
fail:
  gm_host_unlock();
  return st;
}

gpumem_status gm_host_pool_export(gpumem_native_pool_t pool, gpumem_handle_type type,
                                  gpumem_shareable_handle *out) {
  gpumem_status st = GPUMEM_OK;
  gm_host_lock();
  GM_TRY(check_pool(pool));
  GM_REQUIRE(type == GPUMEM_HANDLE_POSIX_FD && (pool->handle_types & GPUMEM_HANDLE_POSIX_FD),
             GPUMEM_ERR_INVALID_ARGUMENT,
             "pool export: the pool was not created with the POSIX fd handle type");
  memset(out, 0, sizeof *out);
  out->type = GPUMEM_HANDLE_POSIX_FD;
  out->fd = fcntl(pool->fd, F_DUPFD_CLOEXEC, 0);
  GM_REQUIRE(out->fd >= 0, GPUMEM_ERR_OS, "pool export: dup failed: %s", strerror(errno));
fail:
  gm_host_unlock();
  return st;
}

gpumem_status gm_host_pool_import(const gpumem_shareable_handle *in, gpumem_native_pool_t *out) {
  gpumem_status st = GPUMEM_OK;
  gm_host_lock();
  GM_REQUIRE(in->type == GPUMEM_HANDLE_POSIX_FD && in->fd >= 0, GPUMEM_ERR_INVALID_ARGUMENT,
             "pool import: host pools are shared as POSIX fds");
  int device = gm_host_memfd_device(in->fd, HOST_POOL_MEMFD_PREFIX);
  GM_REQUIRE(device >= 0, GPUMEM_ERR_INVALID_ARGUMENT,
             "pool import: fd %d is not a pool exported by the host backend", in->fd);
  GM_REQUIRE(gm_host_device_valid(device), GPUMEM_ERR_INVALID_DEVICE,
             "pool import: the pool lives on host device %d, which this process does not emulate",
             device);
  struct stat sb;
  GM_REQUIRE(fstat(in->fd, &sb) == 0, GPUMEM_ERR_OS, "pool import: fstat failed: %s",
             strerror(errno));
  size_t gran = gm_host_granularity(); /* a pool is max_size bytes, rounded to granules */
  GM_REQUIRE(sb.st_size > 0 && (size_t)sb.st_size % gran == 0, GPUMEM_ERR_INVALID_ARGUMENT,
             "pool import: fd %d holds %lld bytes, not a whole number of %zu-byte granules as a "
             "pool does",
             in->fd, (long long)sb.st_size, gran);
  st = pool_new(device, GPUMEM_HANDLE_POSIX_FD, (size_t)sb.st_size, in->fd, out);
fail:
  gm_host_unlock();
  return st;
}

gpumem_status gm_host_pool_export_ptr(void *ptr, gm_pool_ptr_export *out) {
  gpumem_status st = GPUMEM_OK;
  gm_host_lock();
  gpumem_native_pool_t p = pool_of(ptr);
  GM_REQUIRE(p != NULL, GPUMEM_ERR_INVALID_POINTER, "export: %p is not pool memory", ptr);
  size_t i = block_at(p, (size_t)((uint8_t *)ptr - p->base));
  GM_REQUIRE(i < p->nblocks && p->blocks[i].used, GPUMEM_ERR_INVALID_POINTER,
             "export: %p is not a live pool allocation", ptr);
  host_pool_ptr_data d = {HOST_POOL_PTR_MAGIC, p->blocks[i].off, p->blocks[i].size};
  memset(out, 0, sizeof *out);
  memcpy(out->reserved, &d, sizeof d);
fail:
  gm_host_unlock();
  return st;
}

gpumem_status gm_host_pool_import_ptr(gpumem_native_pool_t pool, const gm_pool_ptr_export *data,
                                      void **out) {
  gpumem_status st = GPUMEM_OK;
  gm_host_lock();
  GM_TRY(check_pool(pool));
  GM_REQUIRE(pool->imported, GPUMEM_ERR_INVALID_ARGUMENT, "pointer import needs an imported pool");
  host_pool_ptr_data d;
  memcpy(&d, data->reserved, sizeof d);
  GM_REQUIRE(d.magic == HOST_POOL_PTR_MAGIC && d.offset < pool->max_size &&
                 d.size <= pool->max_size - d.offset,
             GPUMEM_ERR_INVALID_ARGUMENT, "pointer import: export data is not valid for this pool");
  size_t i = 0;
  while (i < pool->nblocks && pool->blocks[i].off < d.offset)
    i++;
  GM_REQUIRE(i == pool->nblocks || pool->blocks[i].off != d.offset, GPUMEM_ERR_ALREADY_MAPPED,
             "pointer import: offset %" PRIu64 " is already imported", d.offset);
  GM_REQUIRE(blocks_reserve(pool, pool->nblocks + 1), GPUMEM_ERR_OUT_OF_MEMORY,
             "no host memory for a block record");
  blocks_insert(pool, i, (pool_block){d.offset, d.size, true, {NULL, 0}});
  *out = pool->base + d.offset;
fail:
  gm_host_unlock();
  return st;
}

void gm_host_pools_synchronized(void) {
  for (gpumem_native_pool_t p = all_pools; p != NULL; p = p->next) {
    if (p->imported) continue;
    sweep(p);
    release_to(p, p->release_threshold);
  }
  gm_host_pools_reap();
}

bool gm_host_pools_reap(void) {
  bool freed = false;
  for (gpumem_native_pool_t *link = &dead_pools; *link != NULL;) {
    gpumem_native_pool_t p = *link;
    if (frees_pending(p)) {
      link = &p->next;
      continue;
    }
    *link = p->next;
    pool_free_memory(p);
    freed = true;
  }
  return freed;
}

void gm_host_pools_close(void) {
  while (all_pools != NULL) {
    gpumem_native_pool_t p = all_pools;
    all_pools = p->next;
    pool_free_memory(p);
  }
  while (dead_pools != NULL) {
    gpumem_native_pool_t p = dead_pools;
    dead_pools = p->next;
    pool_free_memory(p);
  }
  memset(default_pools, 0, sizeof default_pools);
}
