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
 *   stream / event        a queue run later by a worker thread per stream,
 *                         and points in it (host_stream.c)
 *   copy / memset         memmove / memset run by the stream's worker, after
 *                         checking that every byte touched inside a
 *                         reservation is mapped with access
 *   memory pool           a memfd of the pool's size with first-fit blocks
 *                         and stream-ordered frees (host_pool.c)
 *
 * The rules CUDA states that libgpumem relies on, each enforced here with the
 * error CUDA gives (or the nearest status where CUDA says only "an error"),
 * and where the rule comes from. Each has a test, named after the rule, that
 * runs on both backends (test_conformance, test_backend) unless it says host:
 *
 *  1. cuMemCreate, cuMemMap and cuMemSetAccess sizes and addresses are
 *     multiples of the granularity: cuda.h cuMemMap, "Both ptr, size, and
 *     offset must be a multiple of the value given via
 *     cuMemGetAllocationGranularity". INVALID_ARGUMENT. test_granularity_rules.
 *     (Reservations: CUDA asks only for the host page size; the host asks for
 *     the granularity, which is what the library always reserves in.)
 *  2. The offset into a handle is zero: cuda.h cuMemMap, offset "currently
 *     must be zero". INVALID_ARGUMENT. test_granularity_rules.
 *  3. A map lies inside one reservation and over nothing mapped:
 *     INVALID_ARGUMENT / ALREADY_MAPPED. test_granularity_rules.
 *  4. Unmap takes whole mappings: cuda.h cuMemUnmap, "The range must be the
 *     entire contiguous address range that was mapped to". INVALID_ARGUMENT.
 *     test_unmap_takes_whole_mappings. One call may cover several
 *     neighbouring whole mappings (cuda-samples' vectorAddMMAP unmaps its
 *     per-device stripes so); a range running into unmapped space is
 *     NOT_MAPPED. test_unmap_covers_several_mappings.
 *  5. Access is set only on fully mapped ranges: cuda.h cuMemSetAccess, "The
 *     range must be a fully mapped address range". NOT_MAPPED.
 *     test_set_access_needs_a_fully_mapped_range. A re-mapped range starts
 *     with no access (host: test_access_is_enforced).
 *  6. A release while mapped keeps the memory until the last unmap: cuda.h
 *     cuMemRelease. test_release_while_mapped, test_memory_freed_at_last_unmap
 *     (host).
 *  7. Only handle types requested at creation can be exported: cuda.h
 *     CUmemAllocationProp::requestedHandleTypes, cuMemExportToShareableHandle.
 *     INVALID_ARGUMENT. test_export_needs_the_type_asked_at_creation.
 *  8. Fabric handles only where CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_FABRIC_
 *     SUPPORTED says so (INVALID_ARGUMENT otherwise, as cuMemCreate answers
 *     an unsupported requestedHandleTypes), and NOT_PERMITTED where advertised
 *     but refused (no IMEX channel, measured on our H100: cuda-facts.md).
 *     test_fabric_follows_the_attribute.
 *  9. Stream work runs after the call that queued it, in order per stream;
 *     cudaStreamQuery / cudaEventQuery answer cudaErrorNotReady meanwhile, an
 *     answer that leaves no error behind; a stream waits for an event's work
 *     (cudaStreamWaitEvent); cudaStreamDestroy returns at once and "the
 *     resources ... will be released automatically once the device has
 *     completed all work". test_work_runs_later_and_queries_say_so,
 *     test_wait_event_orders_two_streams,
 *     test_destroy_returns_at_once_and_work_still_runs.
 * 10. The legacy default stream synchronises with blocking streams only;
 *     non-blocking and per-thread default streams do not (runtime API
 *     documentation, "stream synchronization behavior"); cudaStreamPerThread
 *     is one stream per thread. test_legacy_stream_synchronises_with_
 *     blocking_streams_only, test_default_streams_by_thread.
 * 11. Copies from pageable memory stage the source before returning, copies
 *     to pageable memory return when done, cudaFree synchronizes the device
 *     ("API synchronization behavior"). test_pageable_copies.
 * 12. A stream being captured refuses synchronize and query
 *     (cudaErrorStreamCaptureUnsupported: STATE) and says it is capturing
 *     (cudaStreamIsCapturing); the legacy stream cannot be captured.
 *     test_capture_is_visible_and_refuses_synchronize.
 * 13. An event is recorded on a stream of its own device
 *     (cudaErrorInvalidResourceHandle). test_event_and_stream_of_one_device.
 * 14. Pool frees are stream-ordered and reused by the rules of the three
 *     reuse policies (cudaMemPoolAttr in driver_types.h); trim and the
 *     release threshold return only frees the host observed (cudaMemPoolTrimTo:
 *     "... whose completion has not been observed on the host ... can count
 *     as outstanding"). test_pool_reuse_*, test_trim_keeps_frees_not_observed.
 * 15. Pool memory is usable from a device only with access
 *     (cudaMemPoolSetAccess; the pool's own device always), an imported pool
 *     from no device until access is set, and an imported pool cannot
 *     allocate (cuda.h cuMemPoolImportFromShareableHandle). A pool may
 *     allocate on a stream of another device (cudaMallocFromPoolAsync: "The
 *     specified memory pool may be from a device different than that of the
 *     specified hStream"). test_pool_memory_needs_access (host),
 *     test_stream_of_another_device.
 * 16. Contexts: calls that allocate or run work create their device's
 *     primary context, device queries none, and a thread that never chose a
 *     device gets device 0's (see the contexts section). test_contexts.
 * 17. CUDA_VISIBLE_DEVICES filters and renumbers the devices, and MIG slices
 *     have MIG- UUIDs and no peer access (see the configuration section).
 *     test_cuda_visible_devices_on_host, test_mig_no_peer_access (host).
 *
 * Where CUDA would fault later, the host is stricter and says so at once: a
 * copy into a range without access is an error, not a crash; work that finds
 * its memory unmapped when it runs is a sticky error of the device.
 *
 * Not emulated: kernels (host functions stand in), memory bandwidth and
 * timing (a stream item costs microseconds of thread hand-off here), graphs
 * beyond capture begin/end (a captured stream's work is discarded), managed
 * memory, and the driver's own placement choices (the pool is first fit).
 *
 * The emulated node can be a MIG one (GPUMEM_HOST_MIG): GPUs of real models
 * in MIG mode, each GPU instance a device with a "MIG-" UUID, its profile's
 * share of memory and SMs, and no peer access to or from it; the host backend
 * is then the source of MIG facts in place of NVML (mig.c asks it). Like the
 * driver, it shows the process only the devices CUDA_VISIBLE_DEVICES leaves,
 * renumbered, read by the same code that explains the variable to users
 * (gm_visible_resolve in mig.c; the rules are in gpumem/mig.h), and fails to
 * open with NO_DEVICE when none is left, as cudaGetDeviceCount then answers
 * cudaErrorNoDevice.
 *
 * Threading: one mutex guards the backend's state; stream work runs on the
 * streams' workers, outside it (host_stream.c has its own lock, taken after
 * this one when both are needed).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/host.h"
#include "hashmap.h"
#include "log.h"
#include "mig.h"
#include "options.h"
#include "uuid.h"

#define HOST_FABRIC_MAGIC "GMHOSTFB"
#define HOST_MEMFD_PREFIX "gpumem-host-dev"

enum { FABRIC_OFF = 0, FABRIC_REFUSED = 1, FABRIC_ON = 2 };
enum { HOST_VISIBLE_CUDA = 0, HOST_VISIBLE_ALL = 1 }; /* GPUMEM_HOST_VISIBLE */

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

#define HOST_NAME_MAX_LEN 96
#define HOST_GENERIC_SMS  1 /* a generic emulated device claims one SM */

/* One emulated CUDA device: a whole GPU, or a MIG slice of one. */
typedef struct host_device {
  char name[HOST_NAME_MAX_LEN];
  char profile[16]; /* a slice's MIG profile ("3g.40gb"), else "" */
  unsigned char uuid[16];
  bool slice; /* a MIG slice: a "MIG-" UUID and no peer access */
  int gpu;    /* its GPU (an index into H.gpus), also its PCI bus number here */
  int gpu_instance_id, compute_instance_id, instance_slices;
  int sm_count, cc_major, cc_minor;
  size_t capacity;
} host_device;

/* One emulated physical GPU. */
typedef struct host_gpu {
  char name[HOST_NAME_MAX_LEN];
  unsigned char uuid[16];
  gpumem_tristate mig_mode; /* YES: its slices are the devices; UNKNOWN: cannot do MIG */
} host_gpu;

static struct {
  pthread_mutex_t lock;
  int ndev;
  size_t granularity;
  size_t used[GPUMEM_MAX_DEVICES];
  bool peer[GPUMEM_MAX_DEVICES][GPUMEM_MAX_DEVICES];
  int fabric;
  bool mig_layout; /* GPUMEM_HOST_MIG gave the node: MIG facts come from here */
  int gpu_count, node_count;
  host_gpu gpus[GPUMEM_MAX_DEVICES];
  host_device node[GPUMEM_MAX_DEVICES]; /* every emulated device, in enumeration order */
  host_device dev[GPUMEM_MAX_DEVICES];  /* those CUDA_VISIBLE_DEVICES leaves, renumbered */
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
  size_t capacity = H.dev[device].capacity;
  /* Short: memory of destroyed pools whose frees have run goes back first,
   * as the driver releases it by itself. */
  if (bytes > capacity - H.used[device] && gm_host_pools_reap()) capacity = H.dev[device].capacity;
  if (bytes > capacity - H.used[device]) {
    char cap[32], used[32], want[32];
    return gm_error(GPUMEM_ERR_OUT_OF_MEMORY,
                    "%s: host device %d is out of memory (%s requested, %s of %s in use)", what,
                    device, gm_format_size(bytes, want, sizeof want),
                    gm_format_size(H.used[device], used, sizeof used),
                    gm_format_size(capacity, cap, sizeof cap));
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
static GM_TLS_FAST struct {
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

/* ---- configuration ----
 *
 * The node: GPUMEM_HOST_MIG's GPUs (gm_mig_spec_parse, mig.c), or
 * GPUMEM_HOST_DEVICES generic ones. Its devices, in enumeration order, are
 * each MIG GPU's slices and each other GPU; GPUMEM_HOST_UUIDS and
 * GPUMEM_HOST_PEERS number them in that order. The process then sees those
 * that CUDA_VISIBLE_DEVICES leaves, read by the same code that explains the
 * variable to users (gm_visible_resolve), renumbered from 0. */

/* Generated UUIDs are stable across runs: "gpumem-host-" then 0, 0, 0 and the
 * GPU's number for a GPU, or 'M', the GPU's number, the GPU and compute
 * instance ids for a slice. */
#define UUID_TAG_LEN    12
#define UUID_SLICE_MARK 'M'
static const unsigned char uuid_tag[UUID_TAG_LEN] = {'g', 'p', 'u', 'm', 'e', 'm',
                                                     '-', 'h', 'o', 's', 't', '-'};

static void generated_uuid(unsigned char out[16], bool slice, int gpu, int gi, int ci) {
  memcpy(out, uuid_tag, UUID_TAG_LEN);
  out[12] = slice ? UUID_SLICE_MARK : 0;
  out[13] = slice ? (unsigned char)gpu : 0;
  out[14] = slice ? (unsigned char)gi : 0;
  out[15] = slice ? (unsigned char)ci : (unsigned char)gpu;
}

static void format_uuid(const host_device *d, char *buf, size_t len) {
  gm_uuid_format(d->uuid, d->slice ? "MIG-" : "GPU-", buf, len);
}

/* Build H.gpus and H.node from a layout; a GPU without a model is a generic
 * device of `generic_capacity`. */
static void build_node(const gm_mig_spec *spec, size_t generic_capacity) {
  H.gpu_count = spec->gpu_count;
  H.node_count = 0;
  for (int g = 0; g < spec->gpu_count; g++) {
    const gm_mig_spec_gpu *sg = &spec->gpus[g];
    const gm_mig_model *m = sg->model;
    host_gpu *hg = &H.gpus[g];
    memset(hg, 0, sizeof *hg);
    generated_uuid(hg->uuid, false, g, 0, 0);
    hg->mig_mode = m == NULL ? GPUMEM_UNKNOWN : sg->mig ? GPUMEM_YES : GPUMEM_NO;
    if (m == NULL)
      snprintf(hg->name, sizeof hg->name, "libgpumem host device %d", H.node_count);
    else
      snprintf(hg->name, sizeof hg->name, "%s", m->name);
    if (!sg->mig) {
      host_device *d = &H.node[H.node_count++];
      memset(d, 0, sizeof *d);
      memcpy(d->name, hg->name, sizeof d->name);
      memcpy(d->uuid, hg->uuid, sizeof d->uuid);
      d->gpu = g;
      d->gpu_instance_id = d->compute_instance_id = -1;
      d->sm_count = m ? m->sm_count : HOST_GENERIC_SMS;
      d->cc_major = m ? m->cc_major : 0;
      d->cc_minor = m ? m->cc_minor : 0;
      d->capacity = m ? m->memory : generic_capacity;
      continue;
    }
    for (int i = 0; i < sg->slice_count; i++) {
      const gm_mig_profile *p = sg->slices[i];
      host_device *d = &H.node[H.node_count++];
      memset(d, 0, sizeof *d);
      d->slice = true;
      snprintf(d->name, sizeof d->name, "%s MIG %s", m->name, p->name);
      snprintf(d->profile, sizeof d->profile, "%s", p->name);
      d->gpu = g;
      d->gpu_instance_id = sg->gpu_instance_id[i];
      d->compute_instance_id = 0; /* one compute instance over the whole GPU instance */
      d->instance_slices = p->compute_slices;
      generated_uuid(d->uuid, true, g, d->gpu_instance_id, d->compute_instance_id);
      d->sm_count = p->sm_count;
      d->cc_major = m->cc_major;
      d->cc_minor = m->cc_minor;
      d->capacity = m->memory / GM_MIG_MEMORY_SLICES * (size_t)p->memory_slices;
    }
  }
}

/* GPUMEM_HOST_UUIDS: UUIDs for the node's devices in order; the others keep
 * their generated one. A whole GPU's UUID is its device's. */
static bool set_uuids(const char *list, char *why, size_t len) {
  char item[GM_UUID_TEXT_MAX + 8];
  bool ok = true;
  int d = 0;
  for (const char *s = list; *s != '\0' && d < H.node_count; d++) {
    const char *comma = strchr(s, ',');
    size_t n = comma ? (size_t)(comma - s) : strlen(s);
    if (n < sizeof item) {
      memcpy(item, s, n);
      item[n] = '\0';
    }
    if (n >= sizeof item || !gm_uuid_parse(item, H.node[d].uuid)) {
      if (ok) snprintf(why, len, "entry %d ('%.*s') is not a UUID", d, (int)n, s);
      ok = false;
      if (!gm_option_strict(GM_OPTION_HOST_UUIDS)) {
        gm_log(GPUMEM_LOG_WARN,
               "%s: entry %d ('%.*s') is not a UUID; device %d keeps a generated one",
               gm_option_env_name(GM_OPTION_HOST_UUIDS), d, (int)n, s, d);
      }
    }
    s = comma ? comma + 1 : s + n;
  }
  for (d = 0; d < H.node_count; d++) {
    if (!H.node[d].slice) memcpy(H.gpus[H.node[d].gpu].uuid, H.node[d].uuid, 16);
  }
  return ok;
}

/* Parse GPUMEM_HOST_PEERS over the node's devices: "all", "none" or links
 * "a-b,c-d" (both ways). A MIG slice has no peer access, to or from any other
 * device (the project's CUDA notes, MIG: no P2P between slices of different
 * GPUs, none at all on older drivers; gpumem/device.h, GPUMEM_PEER_MIG, takes
 * it for every pair), so "all" leaves slices out and a link naming one is
 * refused. */
static bool parse_peers(const char *spec, bool peer[GPUMEM_MAX_DEVICES][GPUMEM_MAX_DEVICES],
                        char *why, size_t len) {
  int n = H.node_count;
  bool all = strcmp(spec, "all") == 0;
  for (int a = 0; a < n; a++) {
    for (int b = 0; b < n; b++)
      peer[a][b] = all && a != b && !H.node[a].slice && !H.node[b].slice;
  }
  if (all || strcmp(spec, "none") == 0) return true;
  const char *s = spec;
  while (*s != '\0') {
    char *end = NULL;
    long a = strtol(s, &end, 10), b = -1;
    bool ok = end != s && *end == '-';
    if (ok) {
      s = end + 1;
      b = strtol(s, &end, 10);
      ok =
          end != s && (*end == ',' || *end == '\0') && a >= 0 && b >= 0 && a < n && b < n && a != b;
    }
    if (!ok) {
      snprintf(why, len, "is not all, none or links like 0-1,1-2 between devices 0..%d", n - 1);
      return false;
    }
    if (H.node[a].slice || H.node[b].slice) {
      snprintf(why, len, "links device %ld, a MIG slice: MIG slices have no peer access",
               H.node[a].slice ? a : b);
      return false;
    }
    peer[a][b] = peer[b][a] = true;
    s = *end == ',' ? end + 1 : end;
  }
  return true;
}

/* The node's GPUs as NVML would list them (lock held). */
static size_t node_gpus(gpumem_mig_gpu *gpus, size_t max) {
  int d = 0;
  for (int g = 0; g < H.gpu_count; g++) {
    gpumem_mig_gpu *out = (size_t)g < max ? &gpus[g] : NULL;
    if (out != NULL) {
      memset(out, 0, sizeof *out);
      out->nvml_index = g;
      gm_uuid_format(H.gpus[g].uuid, "GPU-", out->uuid, sizeof out->uuid);
      snprintf(out->name, sizeof out->name, "%s", H.gpus[g].name);
      out->mig_mode = H.gpus[g].mig_mode;
    }
    for (; d < H.node_count && H.node[d].gpu == g; d++) {
      const host_device *dev = &H.node[d];
      if (!dev->slice || out == NULL || out->slice_count == GPUMEM_MAX_MIG_SLICES) continue;
      gpumem_mig_slice *sl = &out->slices[out->slice_count++];
      format_uuid(dev, sl->uuid, sizeof sl->uuid);
      sl->gpu_instance_id = dev->gpu_instance_id;
      sl->compute_instance_id = dev->compute_instance_id;
      sl->gpu_instance_slices = sl->compute_instance_slices = dev->instance_slices;
      sl->sm_count = dev->sm_count;
      sl->memory_bytes = dev->capacity;
      snprintf(sl->profile, sizeof sl->profile, "%s", dev->profile);
    }
  }
  return (size_t)H.gpu_count;
}

/* Which of the node's devices the process sees: CUDA_VISIBLE_DEVICES read as
 * the driver reads it; no device left is NO_DEVICE, as cudaGetDeviceCount
 * answers cudaErrorNoDevice (lock held). */
static gpumem_status apply_visible(const bool peer[GPUMEM_MAX_DEVICES][GPUMEM_MAX_DEVICES]) {
  gpumem_status st = GPUMEM_OK;
  const char *text = getenv("CUDA_VISIBLE_DEVICES");
  int pick[GPUMEM_MAX_DEVICES];
  gpumem_mig_gpu *gpus = NULL;
  gpumem_visible_devices *v = NULL;
  H.ndev = 0;
  if (text == NULL || gm_option_word(GM_OPTION_HOST_VISIBLE) == HOST_VISIBLE_ALL) {
    for (int d = 0; d < H.node_count; d++)
      pick[H.ndev++] = d;
  } else {
    gpus = calloc((size_t)H.gpu_count, sizeof *gpus);
    v = calloc(1, sizeof *v);
    GM_REQUIRE(gpus != NULL && v != NULL, GPUMEM_ERR_OUT_OF_MEMORY,
               "no host memory to read CUDA_VISIBLE_DEVICES");
    node_gpus(gpus, (size_t)H.gpu_count);
    v->set = true;
    gm_visible_resolve(text, gpus, (size_t)H.gpu_count, NULL, v);
    for (size_t k = 0; k < v->device_count; k++) {
      for (int d = 0; d < H.node_count; d++) {
        char uuid[GM_UUID_TEXT_MAX];
        format_uuid(&H.node[d], uuid, sizeof uuid);
        if (strcasecmp(uuid, v->devices[k]) == 0) pick[H.ndev++] = d;
      }
    }
    GM_REQUIRE(H.ndev > 0, GPUMEM_ERR_NO_DEVICE,
               "CUDA_VISIBLE_DEVICES='%s' leaves none of the %d emulated devices visible%s%s", text,
               H.node_count, v->stopped ? " (" : "", v->stopped ? v->why : "");
  }
  for (int i = 0; i < H.ndev; i++) {
    H.dev[i] = H.node[pick[i]];
    for (int j = 0; j < H.ndev; j++)
      H.peer[i][j] = peer[pick[i]][pick[j]];
  }
fail:
  free(gpus);
  free(v);
  return st;
}

static gpumem_status host_open(void) {
  gpumem_status st = GPUMEM_OK;
  static gm_mig_spec spec; /* under the lock; about 8 KiB */
  static bool peer[GPUMEM_MAX_DEVICES][GPUMEM_MAX_DEVICES];
  char why[160];
  contexts_reset();
  gm_host_lock();
  H.granularity = gm_option_size(GM_OPTION_HOST_GRANULARITY);
  H.fabric = gm_option_word(GM_OPTION_HOST_FABRIC);
  memset(H.used, 0, sizeof H.used);
  const char *layout = gm_option_string(GM_OPTION_HOST_MIG);
  H.mig_layout = layout[0] != '\0' && gm_mig_spec_parse(layout, &spec, why, sizeof why);
  if (!H.mig_layout) { /* GPUMEM_HOST_DEVICES generic devices */
    memset(&spec, 0, sizeof spec);
    spec.gpu_count = spec.device_count = (int)gm_option_int(GM_OPTION_HOST_DEVICES);
  } else if (gm_option_is_set(GM_OPTION_HOST_DEVICES)) {
    gm_log(GPUMEM_LOG_WARN, "%s is ignored: %s decides the emulated devices",
           gm_option_env_name(GM_OPTION_HOST_DEVICES), gm_option_env_name(GM_OPTION_HOST_MIG));
  }
  build_node(&spec, gm_option_size(GM_OPTION_HOST_CAPACITY));
  for (int d = 0; d < H.node_count; d++) {
    host_device *dev = &H.node[d];
    size_t rounded = dev->capacity - dev->capacity % H.granularity;
    if (rounded != dev->capacity) {
      gm_log(GPUMEM_LOG_WARN,
             "host device capacity %zu is not a multiple of the granularity %zu; using %zu",
             dev->capacity, H.granularity, rounded);
      dev->capacity = rounded;
    }
    GM_REQUIRE(dev->capacity > 0, GPUMEM_ERR_INVALID_ARGUMENT,
               "host device capacity is smaller than the granularity");
  }
  /* Explicit gpumem_init options are refused when unusable (gpumem/init.h);
   * environment variables are warned about and replaced. */
  GM_REQUIRE(set_uuids(gm_option_string(GM_OPTION_HOST_UUIDS), why, sizeof why) ||
                 !gm_option_strict(GM_OPTION_HOST_UUIDS),
             GPUMEM_ERR_INVALID_ARGUMENT, "host_uuids '%s': %s",
             gm_option_string(GM_OPTION_HOST_UUIDS), why);
  const char *peers = gm_option_string(GM_OPTION_HOST_PEERS);
  bool peers_ok = parse_peers(peers, peer, why, sizeof why);
  GM_REQUIRE(peers_ok || !gm_option_strict(GM_OPTION_HOST_PEERS), GPUMEM_ERR_INVALID_ARGUMENT,
             "host_peers '%s' %s", peers, why);
  if (!peers_ok) {
    gm_log(GPUMEM_LOG_WARN, "%s='%s' %s; keeping the default all",
           gm_option_env_name(GM_OPTION_HOST_PEERS), peers, why);
    parse_peers("all", peer, why, sizeof why);
  }
  GM_TRY(apply_visible(peer));
  gm_host_streams_open();
  H.next_id = 1;
  char cap[32], gran[32];
  if (H.mig_layout) {
    gm_log(GPUMEM_LOG_INFO, "host backend: %d emulated devices (%s=%s), granularity %s, peers %s",
           H.ndev, gm_option_env_name(GM_OPTION_HOST_MIG), layout,
           gm_format_size(H.granularity, gran, sizeof gran), peers);
  } else {
    gm_log(GPUMEM_LOG_INFO, "host backend: %d emulated devices of %s, granularity %s, peers %s",
           H.ndev, gm_format_size(H.node[0].capacity, cap, sizeof cap),
           gm_format_size(H.granularity, gran, sizeof gran), peers);
  }
fail:
  if (st != GPUMEM_OK) H.ndev = 0;
  gm_host_unlock();
  return st;
}

static gpumem_status host_mig_describe(int device, gpumem_device_info *info) {
  gm_host_lock();
  bool known = H.mig_layout && gm_host_device_valid(device);
  if (known) {
    const host_device *d = &H.dev[device];
    const host_gpu *g = &H.gpus[d->gpu];
    info->mig = d->slice ? GPUMEM_YES : GPUMEM_NO;
    /* A GPU that cannot do MIG: NVML's NOT_SUPPORTED, which reads as "no". */
    info->parent_mig_mode = g->mig_mode == GPUMEM_YES ? GPUMEM_YES : GPUMEM_NO;
    format_uuid(d, info->uuid, sizeof info->uuid);
    gm_uuid_format(g->uuid, "GPU-", info->parent_uuid, sizeof info->parent_uuid);
    info->gpu_instance_id = d->gpu_instance_id;
    info->compute_instance_id = d->compute_instance_id;
    info->gpu_instance_slices = info->compute_instance_slices = d->instance_slices;
    info->mig_note[0] = '\0';
  }
  gm_host_unlock();
  return known ? GPUMEM_OK
               : gm_error(GPUMEM_ERR_NOT_SUPPORTED,
                          "no GPUMEM_HOST_MIG layout: the host backend has no MIG facts");
}

static gpumem_status host_mig_node(gpumem_mig_gpu *gpus, size_t max, size_t *count,
                                   bool *from_layout) {
  gm_host_lock();
  *count = node_gpus(gpus, max);
  *from_layout = H.mig_layout && H.ndev > 0;
  gm_host_unlock();
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
  H.node_count = H.gpu_count = 0;
  H.mig_layout = false;
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
  const host_device *d = &H.dev[device];
  memset(out, 0, sizeof *out);
  snprintf(out->name, sizeof out->name, "%s", d->name);
  memcpy(out->uuid, d->uuid, sizeof out->uuid);
  format_uuid(d, out->uuid_string, sizeof out->uuid_string);
  out->cc_major = d->cc_major;
  out->cc_minor = d->cc_minor;
  out->sm_count = d->sm_count;
  out->pci_bus = d->gpu; /* slices of a GPU share its PCI bus id, as on a GPU */
  out->total_memory = d->capacity;
  out->vmm = true;
  out->posix_fd = true;
  /* MIG slices do not advertise fabric handles (issue 12, item 7). */
  out->fabric = H.fabric != FABRIC_OFF && !d->slice;
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
  *free_bytes = H.dev[device].capacity - H.used[device];
  *total_bytes = H.dev[device].capacity;
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

/* Whether [a, a+an) and [b, b+bn) share a byte; no end is computed, so a
 * range reaching the top of the address space cannot wrap past the test. */
static bool overlaps(uintptr_t a, size_t an, uintptr_t b, size_t bn) {
  if (an == 0 || bn == 0) return false;
  return a <= b ? b - a < an : a - b < bn;
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
  /* A memfd, not a file that merely bears the name: only memfds have seals
   * to ask about (fcntl(2), F_GET_SEALS: EINVAL for any other file), and
   * their /proc/self/fd link reads "/memfd:<name> (deleted)". */
  if (fcntl(fd, F_GET_SEALS) < 0) return -1;
  char path[64], target[256], tag[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(path, target, sizeof target - 1);
  if (n < 0) return -1;
  target[n] = '\0';
  int tag_len = snprintf(tag, sizeof tag, "/memfd:%s", prefix);
  if (tag_len < 0 || (size_t)tag_len >= sizeof tag || strncmp(target, tag, (size_t)tag_len) != 0)
    return -1;
  const char *digits = target + tag_len, *end = digits;
  int device = 0;
  while (*end >= '0' && *end <= '9' && device < GPUMEM_MAX_DEVICES)
    device = device * 10 + (*end++ - '0');
  bool ends = *end == '\0' || strcmp(end, " (deleted)") == 0;
  return end == digits || !ends || device >= GPUMEM_MAX_DEVICES ? -1 : device;
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
    GM_REQUIRE(sb.st_size > 0 && (size_t)sb.st_size % H.granularity == 0,
               GPUMEM_ERR_INVALID_ARGUMENT,
               "import: fd %d holds %lld bytes, not a whole number of %zu-byte granules as an "
               "allocation does",
               in->fd, (long long)sb.st_size, H.granularity);
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
    uintptr_t hi = r->base + r->size; /* overlaps(): p + n need not fit, so compare lengths */
    if (n <= hi - p) hi = p + n;
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
    .mig_describe = host_mig_describe,
    .mig_node = host_mig_node,
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
    .stream_state = gm_host_stream_state,
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
