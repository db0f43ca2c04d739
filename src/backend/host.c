/* host.c: the backend contract on POSIX virtual memory.
 *
 * The host backend lets every layer above the seam run, and be tested, on a
 * machine without a GPU. It emulates N devices (GPUMEM_HOST_DEVICES), each
 * with a capacity (GPUMEM_HOST_CAPACITY) that is really enforced, a
 * granularity (GPUMEM_HOST_GRANULARITY) that is really required, and a peer
 * matrix (GPUMEM_HOST_PEERS) that decides which device may be given access to
 * which device's memory. It is chosen explicitly (GPUMEM_BACKEND=host or the
 * init options), never as a silent substitute for the GPU.
 *
 * The CUDA objects map onto POSIX ones:
 *   address reservation   mmap(PROT_NONE, MAP_NORESERVE) of the range
 *   physical allocation   a memfd of the size, charged to its device
 *   map                   mmap(MAP_SHARED | MAP_FIXED) of the memfd into the
 *                         reservation, with no access (PROT_NONE)
 *   set access            a per-granule, per-device access record; the page
 *                         protection is the union over devices (mprotect)
 *   unmap                 the range goes back to PROT_NONE anonymous memory
 *   POSIX fd export       dup() of the memfd: the importer, in this or a forked
 *                         process, maps the very same pages
 *   stream / event        keys: work completes when it is issued, so queries
 *                         always report completion
 *   copy / memset         memcpy / memset, after checking that every byte
 *                         touched inside a reservation is mapped with access
 *
 * The checks follow CUDA's rules (alignment to the granularity, unmapping
 * whole mappings, releasing before unmapping keeps the memory until the last
 * unmap) and are stricter where CUDA would fault later: a copy into a range
 * without access is an error here, not a crash.
 *
 * Threading: one mutex guards the backend's state; copies run outside it.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/host.h"
#include "hashmap.h"
#include "log.h"
#include "options.h"
#include "uuid.h"

#define HOST_STREAM_MAGIC 0x67736d53u /* "gsmS" */
#define HOST_EVENT_MAGIC  0x67736d45u /* "gsmE" */
#define HOST_FABRIC_MAGIC "GMHOSTFB"
#define HOST_MEMFD_PREFIX "gpumem-host-dev"

enum { FABRIC_OFF = 0, FABRIC_REFUSED = 1, FABRIC_ON = 2 };

typedef struct host_phys {
  uint64_t id;
  int fd;
  size_t size;
  int device;
  unsigned handle_types;
  bool compression;
  bool imported; /* not charged here: the exporter's device paid for it */
  bool released;
  int map_count;
} host_phys;

typedef struct host_mapping {
  uintptr_t va;
  size_t size;
  size_t offset;
  host_phys *phys;
  uint8_t *access; /* [granule][device] gpumem_access_flags */
  struct host_mapping *next;
} host_mapping;

typedef struct host_reservation {
  uintptr_t base;
  size_t size;
  host_mapping *maps;
  struct host_reservation *next;
} host_reservation;

struct CUstream_st {
  uint32_t magic;
  int device;
};

struct CUevent_st {
  uint32_t magic;
  int device;
  bool recorded;
};

static struct {
  pthread_mutex_t lock;
  int ndev;
  size_t granularity;
  size_t capacity;
  size_t used[GPUMEM_MAX_DEVICES];
  bool peer[GPUMEM_MAX_DEVICES][GPUMEM_MAX_DEVICES];
  int fabric;
  unsigned char uuid[GPUMEM_MAX_DEVICES][16];
  host_reservation *reservations;
  gm_hashmap phys;    /* id -> host_phys* (live, not yet released) */
  gm_hashmap mallocs; /* address -> size << 8 | device, for dev_malloc */
  uint64_t next_id;
} H = {.lock = PTHREAD_MUTEX_INITIALIZER, .phys = GM_HASHMAP_INIT, .mallocs = GM_HASHMAP_INIT};

void gm_host_lock(void) {
  pthread_mutex_lock(&H.lock);
}
void gm_host_unlock(void) {
  pthread_mutex_unlock(&H.lock);
}
int gm_host_device_count(void) {
  return H.ndev;
}
bool gm_host_device_valid(int device) {
  return device >= 0 && device < H.ndev;
}
size_t gm_host_granularity(void) {
  return H.granularity;
}
bool gm_host_can_access(int device, int owner) {
  return device == owner || H.peer[device][owner];
}

gpumem_status gm_host_charge(int device, size_t bytes, const char *what) {
  if (bytes > H.capacity - H.used[device]) {
    char cap[32], used[32], want[32];
    return gm_error(GPUMEM_ERR_OUT_OF_MEMORY,
                    "%s: host device %d is out of memory (%s requested, %s of %s in use)", what,
                    device, gm_format_size(bytes, want, sizeof want),
                    gm_format_size(H.used[device], used, sizeof used),
                    gm_format_size(H.capacity, cap, sizeof cap));
  }
  H.used[device] += bytes;
  return GPUMEM_OK;
}

void gm_host_uncharge(int device, size_t bytes) {
  H.used[device] -= bytes;
}

/* ---- contexts ----
 *
 * What a GPU would count: which devices have their primary context (created
 * by the first call that needs one there, kept until the process exits, about
 * 0.5 GiB each on an H100) and which device is current on each thread. Calls
 * that only describe a device (cuDeviceGetAttribute, cuDeviceGetName,
 * cuDeviceTotalMem, cuDeviceGetUuid, cuDeviceGetP2PAttribute,
 * cuMemGetAllocationGranularity, NVML) create none: they take a CUdevice, not
 * a context, and the driver API never creates one by itself (driver-API
 * programs query devices before cuCtxCreate). The VMM calls create none
 * either, but the CUDA backend retains the primary context of the device a
 * physical allocation is made on (see cuda.c), so phys_create counts as
 * creating it. Calls that allocate or run work on a device create its context:
 * the runtime initialises the primary context "at the first CUDA Runtime API
 * call which requires an active context" (cuda_runtime_api.h, "Interactions
 * with the CUDA Driver API"), and cudaSetDevice "initializes the primary
 * context ... and makes it current". A thread that never made a device
 * current has no context; a runtime call made there "selects" a primary
 * context, device 0's, creates it and leaves it current, which is how each
 * rank of an 8-GPU node ends up holding a context on GPU 0. The CUDA backend
 * switches to the device an operation concerns and back to the caller's
 * context (none stays none), so a host operation marks its device's context
 * created and leaves the thread's current device alone.
 *
 * State starts afresh at each open: a new generation makes every thread's
 * record stale, since the emulated devices are new. */

static struct {
  _Atomic bool created[GPUMEM_MAX_DEVICES];
  _Atomic unsigned generation; /* bumped at each open */
} C;

/* The calling thread's current device + 1 (0: none) in generation `gen`. */
static _Thread_local struct {
  unsigned gen;
  int device_plus_one;
} T;

static void contexts_reset(void) {
  for (int d = 0; d < GPUMEM_MAX_DEVICES; d++)
    atomic_store(&C.created[d], false);
  atomic_fetch_add(&C.generation, 1);
}

void gm_host_context_touch(int device) {
  if (device >= 0 && device < GPUMEM_MAX_DEVICES) atomic_store(&C.created[device], true);
}

bool gm_host_context_created(int device) {
  return device >= 0 && device < GPUMEM_MAX_DEVICES && atomic_load(&C.created[device]);
}

int gm_host_thread_device(void) {
  return T.gen == atomic_load(&C.generation) ? T.device_plus_one - 1 : -1;
}

int gm_host_current_device(void) {
  int d = gm_host_thread_device();
  return d < 0 ? 0 : d;
}

void gm_host_set_device(int device) {
  if (!gm_host_device_valid(device)) return;
  gm_host_context_touch(device);
  T.gen = atomic_load(&C.generation);
  T.device_plus_one = device + 1;
}

int gm_host_runtime_device(void) {
  int d = gm_host_thread_device();
  if (d >= 0) return d;
  gm_host_set_device(0);
  return 0;
}

/* ---- configuration ---- */

/* Parse GPUMEM_HOST_PEERS: "all", "none" or links "a-b,c-d" (both ways). */
static bool parse_peers(const char *spec, int ndev,
                        bool peer[GPUMEM_MAX_DEVICES][GPUMEM_MAX_DEVICES]) {
  bool all = strcmp(spec, "all") == 0;
  for (int a = 0; a < ndev; a++) {
    for (int b = 0; b < ndev; b++)
      peer[a][b] = all && a != b;
  }
  if (all || strcmp(spec, "none") == 0) return true;
  const char *s = spec;
  while (*s != '\0') {
    char *end = NULL;
    long a = strtol(s, &end, 10);
    if (end == s || *end != '-') return false;
    s = end + 1;
    long b = strtol(s, &end, 10);
    if (end == s || (*end != ',' && *end != '\0')) return false;
    if (a < 0 || b < 0 || a >= ndev || b >= ndev || a == b) return false;
    peer[a][b] = peer[b][a] = true;
    s = *end == ',' ? end + 1 : end;
  }
  return true;
}

/* Device UUIDs: those listed in GPUMEM_HOST_UUIDS, generated ones for the
 * rest ("gpumem-host-" and the ordinal, so they are stable across runs). */
static void set_uuids(const char *list) {
  static const unsigned char base[16] = {'g', 'p', 'u', 'm', 'e', 'm', '-', 'h',
                                         'o', 's', 't', '-', 0,   0,   0,   0};
  for (int d = 0; d < H.ndev; d++) {
    memcpy(H.uuid[d], base, sizeof base);
    H.uuid[d][15] = (unsigned char)d;
  }
  char item[GM_UUID_TEXT_MAX + 8];
  int d = 0;
  for (const char *s = list; *s != '\0' && d < H.ndev; d++) {
    const char *comma = strchr(s, ',');
    size_t n = comma ? (size_t)(comma - s) : strlen(s);
    if (n < sizeof item) {
      memcpy(item, s, n);
      item[n] = '\0';
    }
    if (n >= sizeof item || !gm_uuid_parse(item, H.uuid[d])) {
      gm_log(GPUMEM_LOG_WARN,
             "%s: entry %d ('%.*s') is not a UUID; device %d keeps a generated one",
             gm_option_env_name(GM_OPTION_HOST_UUIDS), d, (int)n, s, d);
    }
    s = comma ? comma + 1 : s + n;
  }
}

static gpumem_status host_open(void) {
  contexts_reset();
  gm_host_lock();
  H.ndev = (int)gm_option_int(GM_OPTION_HOST_DEVICES);
  H.granularity = gm_option_size(GM_OPTION_HOST_GRANULARITY);
  H.capacity = gm_option_size(GM_OPTION_HOST_CAPACITY);
  H.fabric = gm_option_word(GM_OPTION_HOST_FABRIC);
  memset(H.used, 0, sizeof H.used);
  const char *peers = gm_option_string(GM_OPTION_HOST_PEERS);
  if (!parse_peers(peers, H.ndev, H.peer)) {
    gm_log(GPUMEM_LOG_WARN,
           "%s='%s' is not all, none or links like 0-1,1-2 between devices 0..%d; keeping the "
           "default all",
           gm_option_env_name(GM_OPTION_HOST_PEERS), peers, H.ndev - 1);
    parse_peers("all", H.ndev, H.peer);
  }
  if (H.capacity % H.granularity != 0) {
    size_t rounded = H.capacity - H.capacity % H.granularity;
    gm_log(GPUMEM_LOG_WARN,
           "host device capacity %zu is not a multiple of the granularity %zu; "
           "using %zu",
           H.capacity, H.granularity, rounded);
    H.capacity = rounded;
  }
  set_uuids(gm_option_string(GM_OPTION_HOST_UUIDS));
  gm_host_streams_open();
  H.next_id = 1;
  char cap[32], gran[32];
  gm_log(GPUMEM_LOG_INFO, "host backend: %d emulated devices of %s, granularity %s, peers %s",
         H.ndev, gm_format_size(H.capacity, cap, sizeof cap),
         gm_format_size(H.granularity, gran, sizeof gran), peers);
  gm_host_unlock();
  if (H.capacity == 0) {
    return gm_error(GPUMEM_ERR_INVALID_ARGUMENT,
                    "host device capacity is smaller than the granularity");
  }
  return GPUMEM_OK;
}

static void phys_destroy(host_phys *p) {
  if (!p->imported) gm_host_uncharge(p->device, p->size);
  close(p->fd);
  free(p);
}

static void host_close(void) {
  gm_host_streams_drain(); /* queued work may still touch pools and mappings */
  gm_host_lock();
  gm_host_pools_close();
  for (host_reservation *r = H.reservations, *rn; r != NULL; r = rn) {
    rn = r->next;
    for (host_mapping *m = r->maps, *mn; m != NULL; m = mn) {
      mn = m->next;
      if (--m->phys->map_count == 0 && m->phys->released) phys_destroy(m->phys);
      free(m->access);
      free(m);
    }
    munmap((void *)r->base, r->size);
    free(r);
  }
  H.reservations = NULL;
  for (size_t i = 0; i < H.phys.capacity; i++) {
    if (H.phys.keys[i] != 0) phys_destroy((host_phys *)(uintptr_t)H.phys.values[i]);
  }
  gm_hashmap_free(&H.phys);
  for (size_t i = 0; i < H.mallocs.capacity; i++) {
    if (H.mallocs.keys[i] != 0)
      munmap((void *)(uintptr_t)H.mallocs.keys[i], H.mallocs.values[i] >> 8);
  }
  gm_hashmap_free(&H.mallocs);
  H.ndev = 0;
  gm_host_unlock();
  gm_host_streams_close();
}

static void host_versions(int *driver, int *runtime) {
  *driver = 0;
  *runtime = 0;
}

/* ---- devices ---- */

#define CHECK_DEVICE(d)                                                                            \
  do {                                                                                             \
    if (!gm_host_device_valid(d))                                                                  \
      return gm_error(GPUMEM_ERR_INVALID_DEVICE, "device %d does not exist (host backend has %d)", \
                      (d), H.ndev);                                                                \
  } while (0)

static gpumem_status host_device_count(int *count) {
  *count = H.ndev;
  return GPUMEM_OK;
}

static gpumem_status host_device_props(int device, gm_device_props *out) {
  CHECK_DEVICE(device);
  memset(out, 0, sizeof *out);
  snprintf(out->name, sizeof out->name, "libgpumem host device %d", device);
  memcpy(out->uuid, H.uuid[device], sizeof out->uuid);
  gm_uuid_format(out->uuid, "GPU-", out->uuid_string, sizeof out->uuid_string);
  out->sm_count = 1;
  out->pci_bus = device;
  out->total_memory = H.capacity;
  out->vmm = true;
  out->posix_fd = true;
  out->fabric = H.fabric != FABRIC_OFF;
  out->compression = true;
  out->multicast = false;
  out->pools = true;
  out->pool_handle_types = GPUMEM_HANDLE_POSIX_FD;
  out->granularity_min = H.granularity;
  out->granularity_recommended = H.granularity;
  return GPUMEM_OK;
}

/* Free memory of an emulated device: what the GPU's context (or NVML) would say. */
static void read_mem(int device, size_t *free_bytes, size_t *total_bytes) {
  gm_host_lock();
  *free_bytes = H.capacity - H.used[device];
  *total_bytes = H.capacity;
  gm_host_unlock();
}

/* cudaMemGetInfo on the device: creates its context. */
static gpumem_status host_mem_info(int device, size_t *free_bytes, size_t *total_bytes) {
  CHECK_DEVICE(device);
  gm_host_context_touch(device);
  read_mem(device, free_bytes, total_bytes);
  return GPUMEM_OK;
}

/* NVML, or the context the device already has: creates none. */
static gpumem_status host_mem_probe(int device, size_t *free_bytes, size_t *total_bytes) {
  CHECK_DEVICE(device);
  read_mem(device, free_bytes, total_bytes);
  return GPUMEM_OK;
}

static gpumem_status host_granularity(const gpumem_phys_props *props, bool recommended,
                                      size_t *out) {
  GM_UNUSED(recommended);
  CHECK_DEVICE(props->device);
  *out = H.granularity;
  return GPUMEM_OK;
}

static gpumem_status host_p2p_attrs(int src, int dst, gm_p2p_attrs *out) {
  CHECK_DEVICE(src);
  CHECK_DEVICE(dst);
  out->access = gm_host_can_access(src, dst);
  out->native_atomics = out->access;
  out->performance_rank = 0;
  return GPUMEM_OK;
}

/* ---- address reservations ---- */

static bool aligned(size_t x) {
  return x % H.granularity == 0;
}

/* The reservation holding all of [va, va+size), or NULL (lock held). */
static host_reservation *find_reservation(uintptr_t va, size_t size) {
  for (host_reservation *r = H.reservations; r != NULL; r = r->next) {
    if (va >= r->base && va - r->base <= r->size && size <= r->size - (va - r->base)) return r;
  }
  return NULL;
}

static gpumem_status host_va_reserve(size_t size, size_t alignment, uintptr_t *va) {
  if (!aligned(size)) {
    return gm_error(GPUMEM_ERR_INVALID_ARGUMENT,
                    "reserve size %zu is not a multiple of the granularity %zu", size,
                    H.granularity);
  }
  if (alignment < H.granularity) alignment = H.granularity;
  size_t span;
  if (gm_add_overflows(size, alignment, &span)) {
    return gm_error(GPUMEM_ERR_OUT_OF_MEMORY, "cannot reserve %zu bytes: size overflows", size);
  }
  void *p = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    return gm_error(errno == ENOMEM ? GPUMEM_ERR_OUT_OF_MEMORY : GPUMEM_ERR_OS,
                    "mmap(PROT_NONE, %zu bytes) to reserve address space failed: %s", span,
                    strerror(errno));
  }
  uintptr_t raw = (uintptr_t)p;
  uintptr_t base = (raw + alignment - 1) & ~(uintptr_t)(alignment - 1);
  if (base > raw) munmap(p, base - raw);
  size_t tail = span - (base - raw) - size;
  if (tail > 0) munmap((void *)(base + size), tail);
  host_reservation *r = calloc(1, sizeof *r);
  if (r == NULL) {
    munmap((void *)base, size);
    return gm_error(GPUMEM_ERR_OUT_OF_MEMORY, "no host memory for a reservation record");
  }
  r->base = base;
  r->size = size;
  gm_host_lock();
  r->next = H.reservations;
  H.reservations = r;
  gm_host_unlock();
  *va = base;
  return GPUMEM_OK;
}

static gpumem_status host_va_free(uintptr_t va, size_t size) {
  gpumem_status st = GPUMEM_OK;
  gm_host_lock();
  host_reservation **link = &H.reservations;
  while (*link != NULL && ((*link)->base != va || (*link)->size != size))
    link = &(*link)->next;
  host_reservation *r = *link;
  GM_REQUIRE(r != NULL, GPUMEM_ERR_INVALID_ARGUMENT,
             "[0x%" PRIxPTR ", +%zu) is not an address reservation (free needs its exact base "
             "and size)",
             va, size);
  GM_REQUIRE(r->maps == NULL, GPUMEM_ERR_BUSY,
             "reservation 0x%" PRIxPTR " still has mappings: unmap them before freeing it", va);
  *link = r->next;
  munmap((void *)r->base, r->size);
  free(r);
fail:
  gm_host_unlock();
  return st;
}

/* ---- physical memory ---- */

static host_phys *phys_lookup(gpumem_phys_t h) {
  uint64_t v = 0;
  return gm_hashmap_get(&H.phys, h, &v) ? (host_phys *)(uintptr_t)v : NULL;
}

static gpumem_status register_phys(host_phys *p, gpumem_phys_t *out) {
  p->id = H.next_id++;
  if (!gm_hashmap_put(&H.phys, p->id, (uint64_t)(uintptr_t)p)) {
    return gm_error(GPUMEM_ERR_OUT_OF_MEMORY, "no host memory for a handle record");
  }
  *out = p->id;
  return GPUMEM_OK;
}

static gpumem_status host_phys_create(const gpumem_phys_props *props, size_t size,
                                      gpumem_phys_t *out) {
  gpumem_status st = GPUMEM_OK;
  host_phys *p = NULL;
  int fd = -1;
  bool charged = false;
  CHECK_DEVICE(props->device);
  gm_host_context_touch(props->device); /* cuda.c retains it before cuMemCreate */
  gm_host_lock();
  GM_REQUIRE(aligned(size), GPUMEM_ERR_INVALID_ARGUMENT,
             "size %zu is not a multiple of the granularity %zu", size, H.granularity);
  if (props->handle_types & GPUMEM_HANDLE_FABRIC) {
    /* A device without CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_FABRIC_SUPPORTED: cuda.h
     * names no code for it; INVALID_VALUE is cuMemCreate's answer to a handle
     * type the location cannot have ("requestedHandleTypes must be 0, any
     * other value will result in ::CUDA_ERROR_INVALID_VALUE"), and the one a
     * careful caller must expect here (issue 12, item 7). */
    GM_REQUIRE(H.fabric != FABRIC_OFF, GPUMEM_ERR_INVALID_ARGUMENT,
               "host device %d does not support fabric handles (GPUMEM_HOST_FABRIC=off)",
               props->device);
    GM_REQUIRE(H.fabric != FABRIC_REFUSED, GPUMEM_ERR_NOT_PERMITTED,
               "fabric handle refused on host device %d: the emulated system has no IMEX channel "
               "(GPUMEM_HOST_FABRIC=refused), as on a GPU without one",
               props->device);
  }
  GM_TRY(gm_host_charge(props->device, size, "create"));
  charged = true;
  char name[32];
  snprintf(name, sizeof name, HOST_MEMFD_PREFIX "%d", props->device);
  fd = memfd_create(name, MFD_CLOEXEC);
  GM_REQUIRE(fd >= 0, GPUMEM_ERR_OS, "memfd_create failed: %s", strerror(errno));
  GM_REQUIRE(ftruncate(fd, (off_t)size) == 0, GPUMEM_ERR_OS, "ftruncate(memfd, %zu) failed: %s",
             size, strerror(errno));
  p = calloc(1, sizeof *p);
  GM_REQUIRE(p != NULL, GPUMEM_ERR_OUT_OF_MEMORY, "no host memory for a handle record");
  *p = (host_phys){.fd = fd,
                   .size = size,
                   .device = props->device,
                   .handle_types = props->handle_types,
                   .compression = props->compression};
  GM_TRY(register_phys(p, out));
  gm_host_unlock();
  return GPUMEM_OK;
fail:
  free(p);
  if (fd >= 0) close(fd);
  if (charged) gm_host_uncharge(props->device, size);
  gm_host_unlock();
  return st;
}

static gpumem_status host_phys_release(gpumem_phys_t h) {
  gm_host_lock();
  host_phys *p = phys_lookup(h);
  if (p == NULL) {
    gm_host_unlock();
    return gm_error(GPUMEM_ERR_INVALID_POINTER, "0x%" PRIx64 " is not a live host allocation", h);
  }
  gm_hashmap_remove(&H.phys, h);
  p->released = true;
  if (p->map_count == 0) phys_destroy(p);
  gm_host_unlock();
  return GPUMEM_OK;
}

static gpumem_status host_phys_props(gpumem_phys_t h, gpumem_phys_props *out) {
  gm_host_lock();
  host_phys *p = phys_lookup(h);
  if (p != NULL) {
    *out = (gpumem_phys_props){p->device, p->handle_types, p->compression};
  }
  gm_host_unlock();
  return p ? GPUMEM_OK
           : gm_error(GPUMEM_ERR_INVALID_POINTER, "0x%" PRIx64 " is not a live host allocation", h);
}

/* ---- mappings ---- */

static bool overlaps(uintptr_t a, size_t an, uintptr_t b, size_t bn) {
  return a < b + bn && b < a + an;
}

/* Map [va, va+size) to the start of allocation `h`. CUDA's rule, enforced
 * here so that code mapping pieces of one allocation fails on the host as it
 * would on the GPU: cuMemMap's offset "currently must be zero" (cuda.h,
 * cuMemMap, \param offset). The header does not name the error for this
 * case; CUDA_ERROR_INVALID_VALUE, its code for a bad argument, is what the
 * CUDA backend reports as INVALID_ARGUMENT, and so does this one
 * (test_backend.cuda checks the status on the GPU). A mapping may still
 * cover less than the allocation, and one allocation may be mapped at
 * several places. */
static gpumem_status host_map(uintptr_t va, size_t size, size_t offset, gpumem_phys_t h) {
  gpumem_status st = GPUMEM_OK;
  host_mapping *m = NULL;
  gm_host_lock();
  GM_REQUIRE(offset == 0, GPUMEM_ERR_INVALID_ARGUMENT,
             "map(0x%" PRIxPTR ", %zu, offset %zu): the offset into the allocation must be 0 "
             "(cuda.h, cuMemMap: \"currently must be zero\"); map each piece from its own "
             "allocation",
             va, size, offset);
  GM_REQUIRE(aligned(va) && aligned(size), GPUMEM_ERR_INVALID_ARGUMENT,
             "map(0x%" PRIxPTR ", %zu): address and size must be multiples of the granularity "
             "%zu",
             va, size, H.granularity);
  host_reservation *r = find_reservation(va, size);
  GM_REQUIRE(r != NULL, GPUMEM_ERR_INVALID_ARGUMENT,
             "map: [0x%" PRIxPTR ", +%zu) is not inside an address reservation", va, size);
  host_phys *p = phys_lookup(h);
  GM_REQUIRE(p != NULL, GPUMEM_ERR_INVALID_POINTER, "map: 0x%" PRIx64 " is not a live allocation",
             h);
  size_t end;
  GM_REQUIRE(!gm_add_overflows(offset, size, &end) && end <= p->size, GPUMEM_ERR_INVALID_ARGUMENT,
             "map: offset %zu + size %zu exceeds the allocation's %zu bytes", offset, size,
             p->size);
  for (host_mapping *o = r->maps; o != NULL; o = o->next) {
    GM_REQUIRE(!overlaps(va, size, o->va, o->size), GPUMEM_ERR_ALREADY_MAPPED,
               "map: [0x%" PRIxPTR ", +%zu) overlaps the mapping at 0x%" PRIxPTR " (+%zu)", va,
               size, o->va, o->size);
  }
  m = calloc(1, sizeof *m);
  uint8_t *access = calloc(size / H.granularity, (size_t)H.ndev);
  if (m == NULL || access == NULL) free(access);
  GM_REQUIRE(m != NULL && access != NULL, GPUMEM_ERR_OUT_OF_MEMORY,
             "no host memory for a mapping record");
  void *q = mmap((void *)va, size, PROT_NONE, MAP_SHARED | MAP_FIXED, p->fd, (off_t)offset);
  if (q == MAP_FAILED) free(access);
  GM_REQUIRE(q != MAP_FAILED, GPUMEM_ERR_OS, "mmap(MAP_FIXED) of the allocation failed: %s",
             strerror(errno));
  *m = (host_mapping){va, size, offset, p, access, r->maps};
  r->maps = m;
  p->map_count++;
  gm_host_unlock();
  return GPUMEM_OK;
fail:
  free(m);
  gm_host_unlock();
  return st;
}

/* Check that [va, va+size) inside `r` is covered by mappings. If `whole`,
 * each mapping touched must also lie entirely inside the range. */
static gpumem_status check_covered(host_reservation *r, uintptr_t va, size_t size, bool whole,
                                   const char *what) {
  size_t covered = 0;
  for (host_mapping *m = r->maps; m != NULL; m = m->next) {
    if (!overlaps(va, size, m->va, m->size)) continue;
    if (whole && (m->va < va || m->va + m->size > va + size)) {
      return gm_error(GPUMEM_ERR_INVALID_ARGUMENT,
                      "%s: [0x%" PRIxPTR ", +%zu) would split the mapping at 0x%" PRIxPTR
                      " (+%zu); unmap whole mappings",
                      what, va, size, m->va, m->size);
    }
    uintptr_t lo = m->va > va ? m->va : va;
    uintptr_t hi = m->va + m->size < va + size ? m->va + m->size : va + size;
    covered += hi - lo;
  }
  if (covered != size) {
    return gm_error(GPUMEM_ERR_NOT_MAPPED,
                    "%s: %zu of the %zu bytes at 0x%" PRIxPTR " are not mapped", what,
                    size - covered, size, va);
  }
  return GPUMEM_OK;
}

static gpumem_status host_unmap(uintptr_t va, size_t size) {
  gpumem_status st = GPUMEM_OK;
  gm_host_lock();
  host_reservation *r = find_reservation(va, size);
  GM_REQUIRE(r != NULL, GPUMEM_ERR_NOT_MAPPED,
             "unmap: [0x%" PRIxPTR ", +%zu) is not inside an address reservation", va, size);
  GM_TRY(check_covered(r, va, size, true, "unmap"));
  for (host_mapping **link = &r->maps; *link != NULL;) {
    host_mapping *m = *link;
    if (!overlaps(va, size, m->va, m->size)) {
      link = &m->next;
      continue;
    }
    void *q = mmap((void *)m->va, m->size, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
    GM_REQUIRE(q != MAP_FAILED, GPUMEM_ERR_OS, "unmap: mmap(PROT_NONE) failed: %s",
               strerror(errno));
    *link = m->next;
    if (--m->phys->map_count == 0 && m->phys->released) phys_destroy(m->phys);
    free(m->access);
    free(m);
  }
fail:
  gm_host_unlock();
  return st;
}

/* Page protection of one granule: the union of every device's access. */
static int granule_prot(const host_mapping *m, size_t g) {
  int prot = PROT_NONE;
  for (int d = 0; d < H.ndev; d++) {
    uint8_t f = m->access[g * (size_t)H.ndev + (size_t)d];
    if (f & GPUMEM_ACCESS_READ) prot |= PROT_READ;
    if (f == GPUMEM_ACCESS_READWRITE) prot |= PROT_WRITE;
  }
  return prot;
}

static gpumem_status host_set_access(uintptr_t va, size_t size, const gpumem_access_desc *desc,
                                     size_t count) {
  gpumem_status st = GPUMEM_OK;
  gm_host_lock();
  GM_REQUIRE(aligned(va) && aligned(size) && size > 0, GPUMEM_ERR_INVALID_ARGUMENT,
             "set_access(0x%" PRIxPTR ", %zu): address and size must be non-zero multiples of "
             "the granularity %zu",
             va, size, H.granularity);
  host_reservation *r = find_reservation(va, size);
  GM_REQUIRE(r != NULL, GPUMEM_ERR_NOT_MAPPED,
             "set_access: [0x%" PRIxPTR ", +%zu) is not inside an address reservation", va, size);
  GM_TRY(check_covered(r, va, size, false, "set_access"));
  for (size_t i = 0; i < count; i++) {
    GM_REQUIRE(gm_host_device_valid(desc[i].device), GPUMEM_ERR_INVALID_DEVICE,
               "set_access: device %d does not exist (host backend has %d)", desc[i].device,
               H.ndev);
    for (host_mapping *m = r->maps; m != NULL; m = m->next) {
      if (!overlaps(va, size, m->va, m->size) || desc[i].flags == GPUMEM_ACCESS_NONE) continue;
      GM_REQUIRE(gm_host_can_access(desc[i].device, m->phys->device), GPUMEM_ERR_PEER_UNSUPPORTED,
                 "set_access: device %d cannot access memory of device %d (no peer link in "
                 "GPUMEM_HOST_PEERS)",
                 desc[i].device, m->phys->device);
    }
  }
  for (host_mapping *m = r->maps; m != NULL; m = m->next) {
    if (!overlaps(va, size, m->va, m->size)) continue;
    uintptr_t lo = m->va > va ? m->va : va;
    uintptr_t hi = m->va + m->size < va + size ? m->va + m->size : va + size;
    for (uintptr_t a = lo; a < hi; a += H.granularity) {
      size_t g = (a - m->va) / H.granularity;
      for (size_t i = 0; i < count; i++) {
        m->access[g * (size_t)H.ndev + (size_t)desc[i].device] = (uint8_t)desc[i].flags;
      }
      GM_REQUIRE(mprotect((void *)a, H.granularity, granule_prot(m, g)) == 0, GPUMEM_ERR_OS,
                 "set_access: mprotect failed: %s", strerror(errno));
    }
  }
fail:
  gm_host_unlock();
  return st;
}

/* The mapping holding address `va`, or NULL (lock held). */
static host_mapping *find_mapping(uintptr_t va) {
  host_reservation *r = find_reservation(va, 1);
  if (r == NULL) return NULL;
  for (host_mapping *m = r->maps; m != NULL; m = m->next) {
    if (va >= m->va && va - m->va < m->size) return m;
  }
  return NULL;
}

static gpumem_status host_get_access(uintptr_t va, int device, gpumem_access_flags *out) {
  CHECK_DEVICE(device);
  gm_host_lock();
  host_mapping *m = find_mapping(va);
  if (m != NULL) {
    size_t g = (va - m->va) / H.granularity;
    *out = (gpumem_access_flags)m->access[g * (size_t)H.ndev + (size_t)device];
  }
  gm_host_unlock();
  return m ? GPUMEM_OK
           : gm_error(GPUMEM_ERR_NOT_MAPPED, "get_access: 0x%" PRIxPTR " is not mapped", va);
}

/* ---- shareable handles ---- */

typedef struct host_fabric_handle {
  char magic[8];
  int64_t pid;
  uint64_t id;
} host_fabric_handle;

static gpumem_status host_export(gpumem_phys_t h, gpumem_handle_type type,
                                 gpumem_shareable_handle *out) {
  gpumem_status st = GPUMEM_OK;
  gm_host_lock();
  host_phys *p = phys_lookup(h);
  GM_REQUIRE(p != NULL, GPUMEM_ERR_INVALID_POINTER, "export: 0x%" PRIx64 " is not live", h);
  GM_REQUIRE(p->handle_types & (unsigned)type, GPUMEM_ERR_INVALID_ARGUMENT,
             "export: the allocation was created without handle type %s",
             type == GPUMEM_HANDLE_FABRIC ? "FABRIC" : "POSIX_FD");
  memset(out, 0, sizeof *out);
  out->type = type;
  out->fd = -1;
  if (type == GPUMEM_HANDLE_POSIX_FD) {
    out->fd = fcntl(p->fd, F_DUPFD_CLOEXEC, 0);
    GM_REQUIRE(out->fd >= 0, GPUMEM_ERR_OS, "export: dup of the memfd failed: %s", strerror(errno));
  } else {
    host_fabric_handle fh = {.pid = (int64_t)getpid(), .id = p->id};
    memcpy(fh.magic, HOST_FABRIC_MAGIC, sizeof fh.magic);
    memcpy(out->fabric, &fh, sizeof fh);
  }
fail:
  gm_host_unlock();
  return st;
}

int gm_host_memfd_device(int fd, const char *prefix) {
  char path[64], target[256], tag[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(path, target, sizeof target - 1);
  if (n < 0) return -1;
  target[n] = '\0';
  snprintf(tag, sizeof tag, "memfd:%s", prefix);
  const char *at = strstr(target, tag);
  if (at == NULL) return -1;
  char *end = NULL;
  long device = strtol(at + strlen(tag), &end, 10);
  return end == at + strlen(tag) || device < 0 || device >= GPUMEM_MAX_DEVICES ? -1 : (int)device;
}

static gpumem_status host_import(const gpumem_shareable_handle *in, gpumem_phys_t *out) {
  gpumem_status st = GPUMEM_OK;
  int fd = -1;
  host_phys *p = NULL;
  gm_host_lock();
  if (in->type == GPUMEM_HANDLE_POSIX_FD) {
    int device = gm_host_memfd_device(in->fd, HOST_MEMFD_PREFIX);
    GM_REQUIRE(device >= 0, GPUMEM_ERR_INVALID_ARGUMENT,
               "import: fd %d is not an allocation exported by the host backend", in->fd);
    GM_REQUIRE(gm_host_device_valid(device), GPUMEM_ERR_INVALID_DEVICE,
               "import: the allocation belongs to host device %d, which this process does not "
               "emulate (GPUMEM_HOST_DEVICES=%d)",
               device, H.ndev);
    struct stat sb;
    GM_REQUIRE(fstat(in->fd, &sb) == 0, GPUMEM_ERR_OS, "import: fstat failed: %s", strerror(errno));
    fd = fcntl(in->fd, F_DUPFD_CLOEXEC, 0);
    GM_REQUIRE(fd >= 0, GPUMEM_ERR_OS, "import: dup failed: %s", strerror(errno));
    p = calloc(1, sizeof *p);
    GM_REQUIRE(p != NULL, GPUMEM_ERR_OUT_OF_MEMORY, "no host memory for a handle record");
    *p = (host_phys){.fd = fd,
                     .size = (size_t)sb.st_size,
                     .device = device,
                     .handle_types = GPUMEM_HANDLE_POSIX_FD,
                     .imported = true};
  } else {
    host_fabric_handle fh;
    memcpy(&fh, in->fabric, sizeof fh);
    GM_REQUIRE(memcmp(fh.magic, HOST_FABRIC_MAGIC, sizeof fh.magic) == 0,
               GPUMEM_ERR_INVALID_ARGUMENT, "import: not a host-backend fabric handle");
    GM_REQUIRE(fh.pid == (int64_t)getpid(), GPUMEM_ERR_NOT_SUPPORTED,
               "import: host-backend fabric handles work only within the exporting process");
    host_phys *src = phys_lookup(fh.id);
    GM_REQUIRE(src != NULL, GPUMEM_ERR_INVALID_POINTER,
               "import: the fabric handle's allocation was released");
    fd = fcntl(src->fd, F_DUPFD_CLOEXEC, 0);
    GM_REQUIRE(fd >= 0, GPUMEM_ERR_OS, "import: dup failed: %s", strerror(errno));
    p = calloc(1, sizeof *p);
    GM_REQUIRE(p != NULL, GPUMEM_ERR_OUT_OF_MEMORY, "no host memory for a handle record");
    *p = (host_phys){.fd = fd,
                     .size = src->size,
                     .device = src->device,
                     .handle_types = src->handle_types,
                     .imported = true};
  }
  GM_TRY(register_phys(p, out));
  gm_host_unlock();
  return GPUMEM_OK;
fail:
  free(p);
  if (fd >= 0) close(fd);
  gm_host_unlock();
  return st;
}

bool gm_host_is_device_memory(const void *ptr) {
  uintptr_t p = (uintptr_t)ptr;
  gm_host_lock();
  bool device = find_reservation(p, 1) != NULL || gm_host_pool_holds(ptr);
  for (size_t i = 0; !device && i < H.mallocs.capacity; i++) {
    uint64_t base = H.mallocs.keys[i];
    device = base != 0 && p >= base && p - base < (H.mallocs.values[i] >> 8);
  }
  gm_host_unlock();
  return device;
}

gpumem_status gm_host_check_accessible(const void *ptr, size_t n, bool write, const char *what) {
  uintptr_t p = (uintptr_t)ptr;
  gpumem_status st = GPUMEM_OK;
  gm_host_lock();
  for (host_reservation *r = H.reservations; r != NULL && st == GPUMEM_OK; r = r->next) {
    if (!overlaps(p, n, r->base, r->size)) continue;
    uintptr_t lo = p > r->base ? p : r->base;
    uintptr_t hi = p + n < r->base + r->size ? p + n : r->base + r->size;
    st = check_covered(r, lo, hi - lo, false, what);
    for (uintptr_t a = lo & ~(uintptr_t)(H.granularity - 1); st == GPUMEM_OK && a < hi;
         a += H.granularity) {
      host_mapping *m = find_mapping(a);
      int prot = granule_prot(m, (a - m->va) / H.granularity);
      if (!(prot & PROT_READ) || (write && !(prot & PROT_WRITE))) {
        st = gm_error(GPUMEM_ERR_INVALID_ARGUMENT,
                      "%s: 0x%" PRIxPTR " is mapped without %s access for any device (call "
                      "set_access first)",
                      what, a > p ? a : p, write ? "read-write" : "read");
      }
    }
  }
  gm_host_unlock();
  return st;
}

/* ---- plain device allocations: anonymous memory charged to the device ---- */

static gpumem_status host_dev_malloc(int device, size_t size, void **out) {
  gpumem_status st = GPUMEM_OK;
  CHECK_DEVICE(device);
  gm_host_context_touch(device); /* cudaMalloc on the device */
  size_t rounded;
  if (!gm_round_up(size, H.granularity, &rounded)) {
    return gm_error(GPUMEM_ERR_OUT_OF_MEMORY, "malloc: %zu bytes overflow", size);
  }
  gm_host_lock();
  GM_TRY(gm_host_charge(device, rounded, "malloc"));
  void *p = mmap(NULL, rounded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                 -1, 0);
  if (p == MAP_FAILED) gm_host_uncharge(device, rounded);
  GM_REQUIRE(p != MAP_FAILED, GPUMEM_ERR_OUT_OF_MEMORY, "malloc: mmap of %zu bytes failed: %s",
             rounded, strerror(errno));
  if (!gm_hashmap_put(&H.mallocs, (uint64_t)(uintptr_t)p,
                      ((uint64_t)rounded << 8) | (unsigned)device)) {
    munmap(p, rounded);
    gm_host_uncharge(device, rounded);
    GM_REQUIRE(false, GPUMEM_ERR_OUT_OF_MEMORY, "no host memory for an allocation record");
  }
  *out = p;
fail:
  gm_host_unlock();
  return st;
}

/* cudaFree synchronizes the device before it frees (the runtime API's
 * "API synchronization behavior"), so work queued on the memory completes. */
static gpumem_status host_dev_free(void *ptr) {
  uint64_t v = 0;
  gm_host_lock();
  bool found = gm_hashmap_get(&H.mallocs, (uint64_t)(uintptr_t)ptr, &v);
  gm_host_unlock();
  if (found) {
    gpumem_status st = gm_host_device_synchronize((int)(v & 0xff));
    if (st != GPUMEM_OK) return st;
  }
  gm_host_lock();
  found = gm_hashmap_get(&H.mallocs, (uint64_t)(uintptr_t)ptr, &v);
  if (found) {
    gm_hashmap_remove(&H.mallocs, (uint64_t)(uintptr_t)ptr);
    munmap(ptr, (size_t)(v >> 8));
    gm_host_uncharge((int)(v & 0xff), (size_t)(v >> 8));
  }
  gm_host_unlock();
  return found ? GPUMEM_OK
               : gm_error(GPUMEM_ERR_INVALID_POINTER, "free: %p was not allocated by malloc", ptr);
}

const gm_backend_ops gm_backend_host = {
    .name = "host",
    .kind = GM_BACKEND_HOST,
    .open = host_open,
    .close = host_close,
    .versions = host_versions,
    .device_count = host_device_count,
    .device_props = host_device_props,
    .mem_info = host_mem_info,
    .mem_probe = host_mem_probe,
    .granularity = host_granularity,
    .p2p_attrs = host_p2p_attrs,
    .va_reserve = host_va_reserve,
    .va_free = host_va_free,
    .phys_create = host_phys_create,
    .phys_release = host_phys_release,
    .phys_props = host_phys_props,
    .map = host_map,
    .unmap = host_unmap,
    .set_access = host_set_access,
    .get_access = host_get_access,
    .export_handle = host_export,
    .import_handle = host_import,
    .stream_create = gm_host_stream_create,
    .stream_destroy = gm_host_stream_destroy,
    .stream_synchronize = gm_host_stream_synchronize,
    .stream_query = gm_host_stream_query,
    .stream_wait_event = gm_host_stream_wait_event,
    .event_create = gm_host_event_create,
    .event_destroy = gm_host_event_destroy,
    .event_record = gm_host_event_record,
    .event_query = gm_host_event_query,
    .event_synchronize = gm_host_event_synchronize,
    .device_synchronize = gm_host_device_synchronize,
    .memcpy = gm_host_memcpy,
    .memset = gm_host_memset,
    .launch_host_func = gm_host_launch_host_func,
    .stream_id = gm_host_stream_id,
    .stream_device = gm_host_stream_device,
    .stream_capture = gm_host_stream_capture,
    .stream_is_capturing = gm_host_stream_is_capturing,
    .dev_malloc = host_dev_malloc,
    .dev_free = host_dev_free,
    .pool_create = gm_host_pool_create,
    .pool_destroy = gm_host_pool_destroy,
    .pool_default = gm_host_pool_default,
    .pool_set_attr = gm_host_pool_set_attr,
    .pool_get_attr = gm_host_pool_get_attr,
    .pool_set_access = gm_host_pool_set_access,
    .pool_get_access = gm_host_pool_get_access,
    .pool_trim = gm_host_pool_trim,
    .pool_alloc = gm_host_pool_alloc,
    .pool_free = gm_host_pool_free,
    .pool_export = gm_host_pool_export,
    .pool_import = gm_host_pool_import,
    .pool_export_ptr = gm_host_pool_export_ptr,
    .pool_import_ptr = gm_host_pool_import_ptr,
};
