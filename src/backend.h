/* backend.h: the seam between libgpumem and a driver.
 *
 * Nothing above this header calls CUDA or the operating system's memory
 * calls directly. A backend is a table of functions (gm_backend_ops) with the
 * same contract on every implementation:
 *
 *   src/backend/cuda.c  the CUDA driver (entry points loaded at run time) and
 *                       runtime: the default;
 *   src/backend/host.c  N emulated devices on POSIX virtual memory, for
 *                       machines without a GPU and for tests.
 *
 * The library calls the active backend only through the gm_be_* functions
 * below (backend.c). They add what every backend needs and no backend should
 * repeat: argument checks that do not depend on the driver, a registry of
 * live physical handles (so a double release is an error, not a crash in the
 * driver), counters of live objects (tests prove rollback with them), and
 * failure injection: the Nth call of any operation can be made to fail.
 *
 * Conventions: every operation returns a gpumem_status and, on failure,
 * records the detail with gm_error() naming the driver call and its error.
 * Device addresses are uintptr_t. Sizes handed to VMM operations are
 * multiples of the granularity (checked here and again by the backend).
 *
 * Contexts: an operation that concerns a device may create that device's
 * primary context (physical allocation, streams, events, pools, plain
 * allocations, synchronization, mem_info) and no other, and leaves the
 * calling thread's current context as it found it: a thread with none keeps
 * none, except for work on the default streams (NULL, cudaStreamPerThread),
 * which is the current device's by definition: there, as in CUDA, a thread
 * with none gets device 0's context. Device queries (device_count, device_props, granularity,
 * p2p_attrs, mem_probe) create none. Each MPI rank of a node selects its device with these queries,
 * so a context created there would cost every rank about 0.5 GiB on every GPU, and fail on GPUs in
 * EXCLUSIVE_PROCESS mode.
 */
#ifndef GPUMEM_SRC_BACKEND_H
#define GPUMEM_SRC_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gpumem/device.h"
#include "gpumem/mig.h"
#include "gpumem/types.h"
#include "gpumem/vmm.h"
#include "internal.h"

#define GM_UUID_STRING_MAX 48
#define GM_DEVICE_NAME_MAX 256

/* What a device offers for allocation. */
typedef struct gm_device_props {
  char name[GM_DEVICE_NAME_MAX];
  unsigned char uuid[16];
  char uuid_string[GM_UUID_STRING_MAX]; /* "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" */
  int cc_major, cc_minor;
  int sm_count;
  int pci_domain, pci_bus, pci_device;
  size_t total_memory;
  bool vmm;                   /* virtual memory management */
  bool posix_fd;              /* POSIX fd shareable handles */
  bool fabric;                /* fabric handles advertised (creation may still be refused) */
  bool compression;           /* generic compressible memory */
  bool multicast;             /* multicast objects */
  bool pools;                 /* stream-ordered memory pools */
  unsigned pool_handle_types; /* gpumem_handle_type bits pools can export */
  size_t granularity_min;     /* for a plain allocation on this device */
  size_t granularity_recommended;
} gm_device_props;

/* Peer-to-peer attributes from src to dst. */
typedef struct gm_p2p_attrs {
  bool access; /* src may access dst's memory */
  bool native_atomics;
  int performance_rank; /* lower is better */
} gm_p2p_attrs;

/* Pool creation properties (cudaMemPoolProps). */
typedef struct gm_pool_props {
  int device;
  unsigned handle_types; /* gpumem_handle_type bits; NONE: not IPC-capable */
  size_t max_size;       /* 0: the driver's default (no limit below device memory) */
} gm_pool_props;

/* Pool attributes (cudaMemPoolAttr), all as uint64_t. */
typedef enum gm_pool_attr {
  GM_POOL_REUSE_FOLLOW_EVENT_DEPENDENCIES,
  GM_POOL_REUSE_ALLOW_OPPORTUNISTIC,
  GM_POOL_REUSE_ALLOW_INTERNAL_DEPENDENCIES,
  GM_POOL_RELEASE_THRESHOLD,
  GM_POOL_RESERVED_MEM_CURRENT,
  GM_POOL_RESERVED_MEM_HIGH, /* settable to 0 only */
  GM_POOL_USED_MEM_CURRENT,
  GM_POOL_USED_MEM_HIGH, /* settable to 0 only */
  GM_POOL_ATTR_COUNT
} gm_pool_attr;

/* Export data of a pool allocation (cudaMemPoolPtrExportData). */
typedef struct gm_pool_ptr_export {
  unsigned char reserved[64];
} gm_pool_ptr_export;

/* Stream creation flags (gm_backend_ops.stream_create). */
#define GM_STREAM_BLOCKING 1u

typedef enum gm_backend_kind { GM_BACKEND_CUDA = 0, GM_BACKEND_HOST = 1 } gm_backend_kind;

/* X(op): every backend operation, for failure injection and call counts. */
#define GM_BACKEND_OP_LIST(X) \
  X(device_count)             \
  X(device_props)             \
  X(mem_info)                 \
  X(mem_probe)                \
  X(mig_describe)             \
  X(mig_node)                 \
  X(granularity)              \
  X(p2p_attrs)                \
  X(va_reserve)               \
  X(va_free)                  \
  X(phys_create)              \
  X(phys_release)             \
  X(phys_props)               \
  X(map)                      \
  X(unmap)                    \
  X(set_access)               \
  X(get_access)               \
  X(export_handle)            \
  X(import_handle)            \
  X(stream_create)            \
  X(stream_destroy)           \
  X(stream_synchronize)       \
  X(stream_query)             \
  X(stream_wait_event)        \
  X(event_create)             \
  X(event_destroy)            \
  X(event_record)             \
  X(event_query)              \
  X(event_synchronize)        \
  X(device_synchronize)       \
  X(memcpy)                   \
  X(memset)                   \
  X(launch_host_func)         \
  X(stream_id)                \
  X(stream_device)            \
  X(stream_capture)           \
  X(stream_is_capturing)      \
  X(stream_state)             \
  X(dev_malloc)               \
  X(dev_free)                 \
  X(pool_create)              \
  X(pool_destroy)             \
  X(pool_default)             \
  X(pool_set_attr)            \
  X(pool_get_attr)            \
  X(pool_set_access)          \
  X(pool_get_access)          \
  X(pool_trim)                \
  X(pool_alloc)               \
  X(pool_free)                \
  X(pool_export)              \
  X(pool_import)              \
  X(pool_export_ptr)          \
  X(pool_import_ptr)

typedef enum gm_op {
#define GM_OP_ENUM_(op) GM_OP_##op,
  GM_BACKEND_OP_LIST(GM_OP_ENUM_)
#undef GM_OP_ENUM_
      GM_OP_COUNT
} gm_op;

/* The function table a backend provides. */
typedef struct gm_backend_ops {
  const char *name;
  gm_backend_kind kind;
  /* Bring the backend up; GPUMEM_ERR_NO_DEVICE with the reason when it cannot
   * work here (no driver, no device). Called once under the init lock. */
  gpumem_status (*open)(void);
  /* Tear down what open() created. Called with no live objects. */
  void (*close)(void);
  /* Versions as CUDA encodes them (1000 * major + 10 * minor); 0 if none. */
  void (*versions)(int *driver, int *runtime);

  gpumem_status (*device_count)(int *count);
  gpumem_status (*device_props)(int device, gm_device_props *out);
  /* Free and total memory as the device's context counts them
   * (cudaMemGetInfo): creates the device's primary context when it has none
   * yet, and leaves the calling thread's current context as it was. */
  gpumem_status (*mem_info)(int device, size_t *free_bytes, size_t *total_bytes);
  /* Free and total memory read without creating a context: through the
   * device's primary context when it is already active, else from NVML.
   * GPUMEM_ERR_NOT_SUPPORTED, with the reason, where neither can answer. */
  gpumem_status (*mem_probe)(int device, size_t *free_bytes, size_t *total_bytes);
  /* MIG facts the backend itself knows (the host backend's GPUMEM_HOST_MIG
   * layout): fill the MIG fields and UUID of `info` for `device`. NOT_SUPPORTED
   * when the backend has none of its own: mig.c then asks NVML (the CUDA
   * backend's answer). Creates no context. */
  gpumem_status (*mig_describe)(int device, gpumem_device_info *info);
  /* The node's GPUs, unfiltered, as NVML would list them (the host backend's
   * emulated node): at most `max` written, *count how many there are,
   * *from_layout whether GPUMEM_HOST_MIG described them. NOT_SUPPORTED where
   * NVML is the source (CUDA backend). */
  gpumem_status (*mig_node)(gpumem_mig_gpu *gpus, size_t max, size_t *count, bool *from_layout);
  gpumem_status (*granularity)(const gpumem_phys_props *props, bool recommended, size_t *out);
  gpumem_status (*p2p_attrs)(int src, int dst, gm_p2p_attrs *out);

  gpumem_status (*va_reserve)(size_t size, size_t alignment, uintptr_t *va);
  gpumem_status (*va_free)(uintptr_t va, size_t size);
  gpumem_status (*phys_create)(const gpumem_phys_props *props, size_t size, gpumem_phys_t *out);
  gpumem_status (*phys_release)(gpumem_phys_t phys);
  gpumem_status (*phys_props)(gpumem_phys_t phys, gpumem_phys_props *out);
  gpumem_status (*map)(uintptr_t va, size_t size, size_t offset, gpumem_phys_t phys);
  gpumem_status (*unmap)(uintptr_t va, size_t size);
  gpumem_status (*set_access)(uintptr_t va, size_t size, const gpumem_access_desc *desc,
                              size_t count);
  gpumem_status (*get_access)(uintptr_t va, int device, gpumem_access_flags *out);
  gpumem_status (*export_handle)(gpumem_phys_t phys, gpumem_handle_type type,
                                 gpumem_shareable_handle *out);
  gpumem_status (*import_handle)(const gpumem_shareable_handle *in, gpumem_phys_t *out);

  /* flags: GM_STREAM_BLOCKING for a stream that synchronises with the legacy
   * default stream (cudaStreamDefault); 0 for a non-blocking one. */
  gpumem_status (*stream_create)(int device, unsigned flags, gpumem_stream_t *out);
  gpumem_status (*stream_destroy)(gpumem_stream_t stream);
  gpumem_status (*stream_synchronize)(gpumem_stream_t stream);
  /* GPUMEM_OK when all work is done, GPUMEM_ERR_NOT_READY otherwise. */
  gpumem_status (*stream_query)(gpumem_stream_t stream);
  gpumem_status (*stream_wait_event)(gpumem_stream_t stream, gpumem_event_t event);
  gpumem_status (*event_create)(int device, gpumem_event_t *out);
  gpumem_status (*event_destroy)(gpumem_event_t event);
  gpumem_status (*event_record)(gpumem_event_t event, gpumem_stream_t stream);
  gpumem_status (*event_query)(gpumem_event_t event);
  gpumem_status (*event_synchronize)(gpumem_event_t event);
  gpumem_status (*device_synchronize)(int device);
  /* Stream-ordered copy and fill; either side of a copy may be host memory. */
  gpumem_status (*memcpy)(void *dst, const void *src, size_t size, gpumem_stream_t stream);
  gpumem_status (*memset)(void *dst, int value, size_t size, gpumem_stream_t stream);
  /* Run fn(arg) on the host after the work queued on `stream` so far
   * (cudaLaunchHostFunc); later work on the stream waits for it. */
  gpumem_status (*launch_host_func)(gpumem_stream_t stream, gpumem_host_fn fn, void *arg);
  /* The stream's process-unique id (cudaStreamGetId): unlike the handle, it is
   * never given to another stream, and NULL / cudaStreamPerThread resolve to
   * the calling thread's stream of its current device. */
  gpumem_status (*stream_id)(gpumem_stream_t stream, uint64_t *out);
  /* The device a stream belongs to (cudaStreamGetDevice); for NULL and
   * cudaStreamPerThread, the calling thread's current device. */
  gpumem_status (*stream_device)(gpumem_stream_t stream, int *out);
  /* Begin (true) or end (false) capturing `stream` into a graph
   * (cudaStreamBeginCapture in global mode / cudaStreamEndCapture, the graph
   * then destroyed): for tests of capture-aware callers. */
  gpumem_status (*stream_capture)(gpumem_stream_t stream, bool begin);
  /* Is `stream` being captured (cudaStreamIsCapturing)? */
  gpumem_status (*stream_is_capturing)(gpumem_stream_t stream, bool *out);
  /* stream_id and stream_is_capturing in one call: what the pool asks on
   * every allocation and free, so backends make it cheap. */
  gpumem_status (*stream_state)(gpumem_stream_t stream, uint64_t *id, bool *capturing);

  /* Plain device allocation: cudaMalloc / cudaFree (a baseline for the bench). */
  gpumem_status (*dev_malloc)(int device, size_t size, void **out);
  gpumem_status (*dev_free)(void *ptr);

  /* Stream-ordered pools: cudaMemPool_t. */
  gpumem_status (*pool_create)(const gm_pool_props *props, gpumem_native_pool_t *out);
  gpumem_status (*pool_destroy)(gpumem_native_pool_t pool);
  gpumem_status (*pool_default)(int device, gpumem_native_pool_t *out);
  gpumem_status (*pool_set_attr)(gpumem_native_pool_t pool, gm_pool_attr attr, uint64_t value);
  gpumem_status (*pool_get_attr)(gpumem_native_pool_t pool, gm_pool_attr attr, uint64_t *value);
  gpumem_status (*pool_set_access)(gpumem_native_pool_t pool, const gpumem_access_desc *desc,
                                   size_t count);
  gpumem_status (*pool_get_access)(gpumem_native_pool_t pool, int device, gpumem_access_flags *out);
  gpumem_status (*pool_trim)(gpumem_native_pool_t pool, size_t keep_bytes);
  gpumem_status (*pool_alloc)(gpumem_native_pool_t pool, size_t size, gpumem_stream_t stream,
                              void **out);
  gpumem_status (*pool_free)(void *ptr, gpumem_stream_t stream);
  gpumem_status (*pool_export)(gpumem_native_pool_t pool, gpumem_handle_type type,
                               gpumem_shareable_handle *out);
  gpumem_status (*pool_import)(const gpumem_shareable_handle *in, gpumem_native_pool_t *out);
  gpumem_status (*pool_export_ptr)(void *ptr, gm_pool_ptr_export *out);
  gpumem_status (*pool_import_ptr)(gpumem_native_pool_t pool, const gm_pool_ptr_export *data,
                                   void **out);
} gm_backend_ops;

/* The two implementations. */
extern const gm_backend_ops gm_backend_cuda;
extern const gm_backend_ops gm_backend_host;

/* The active backend, or NULL before initialisation (init.c). */
const gm_backend_ops *gm_backend(void);
/* Install `ops` as the active backend (init.c calls it under its lock; tests
 * may install a backend of their own). */
void gm_backend_install(const gm_backend_ops *ops);

/* Live objects created through the gm_be_* calls, for leak and rollback
 * checks. Counters only move on success. */
typedef struct gm_backend_counters {
  int64_t reservations, reserved_bytes;
  int64_t phys_handles, phys_bytes; /* bytes of created (not imported) handles */
  int64_t mapped_bytes;
  int64_t streams, events, pools, pool_allocations;
  int64_t device_allocations; /* dev_malloc minus dev_free */
} gm_backend_counters;

void gm_backend_get_counters(gm_backend_counters *out);
/* Number of calls made to `op` since initialisation (failed ones included). */
uint64_t gm_backend_calls(gm_op op);
/* Forget the registry and counters (at finalize). */
void gm_backend_reset_tracking(void);

/* Failure injection: the `nth` call of `op` from now (1 = the next one) fails
 * with `status` and a message naming the injection, without reaching the
 * backend. One injection per operation; nth 0 disarms it. */
void gm_fault_inject(gm_op op, uint64_t nth, gpumem_status status);
void gm_fault_clear(void);
/* In a forked child of an initialised process: every backend call is refused
 * with GPUMEM_ERR_STATE naming the parent (so paths that do not pass through
 * gm_ensure_init, such as the allocator interface's, are refused too) until
 * gm_backend_accept_calls(), which gpumem_finalize calls in the child. Safe in
 * a pthread_atfork child handler (atomics only). */
void gm_backend_refuse_forked(long parent_pid);
void gm_backend_accept_calls(void);
gpumem_status gm_backend_forked_error(long parent_pid);
/* Parse "op:N[,op:N...]" (the GPUMEM_FAULT syntax); false if malformed. */
bool gm_fault_parse(const char *spec);
/* "map", "phys_create", ... ; NULL for an out-of-range op. */
const char *gm_op_name(gm_op op);
/* Op by name, or GM_OP_COUNT. */
gm_op gm_op_from_name(const char *name);

/* The calls the rest of the library makes (see gm_backend_ops). */
gpumem_status gm_be_device_count(int *count);
gpumem_status gm_be_device_props(int device, gm_device_props *out);
gpumem_status gm_be_mem_info(int device, size_t *free_bytes, size_t *total_bytes);
gpumem_status gm_be_mem_probe(int device, size_t *free_bytes, size_t *total_bytes);
gpumem_status gm_be_mig_describe(int device, gpumem_device_info *info);
gpumem_status gm_be_mig_node(gpumem_mig_gpu *gpus, size_t max, size_t *count, bool *from_layout);
gpumem_status gm_be_granularity(const gpumem_phys_props *props, bool recommended, size_t *out);
gpumem_status gm_be_p2p_attrs(int src, int dst, gm_p2p_attrs *out);
gpumem_status gm_be_va_reserve(size_t size, size_t alignment, uintptr_t *va);
/* A reservation owned by a library object of kind `owner` ("buffer",
 * "arena"): the public VMM calls refuse to map, unmap, set access in or free
 * it (gm_be_va_check_public); the object's own gm_be_* calls are unaffected. */
gpumem_status gm_be_va_reserve_internal(size_t size, size_t alignment, const char *owner,
                                        uintptr_t *va);
/* INVALID_ARGUMENT, naming the owner kind, when `va` lies in a reservation
 * made by gm_be_va_reserve_internal; for the public calls (vmm.c), `what`
 * names the operation. */
gpumem_status gm_be_va_check_public(uintptr_t va, const char *what);
gpumem_status gm_be_va_free(uintptr_t va, size_t size);
gpumem_status gm_be_phys_create(const gpumem_phys_props *props, size_t size, gpumem_phys_t *out);
gpumem_status gm_be_phys_release(gpumem_phys_t phys);
gpumem_status gm_be_phys_props(gpumem_phys_t phys, gpumem_phys_props *out);
gpumem_status gm_be_map(uintptr_t va, size_t size, size_t offset, gpumem_phys_t phys);
gpumem_status gm_be_unmap(uintptr_t va, size_t size);
gpumem_status gm_be_set_access(uintptr_t va, size_t size, const gpumem_access_desc *desc,
                               size_t count);
gpumem_status gm_be_get_access(uintptr_t va, int device, gpumem_access_flags *out);
gpumem_status gm_be_export_handle(gpumem_phys_t phys, gpumem_handle_type type,
                                  gpumem_shareable_handle *out);
gpumem_status gm_be_import_handle(const gpumem_shareable_handle *in, gpumem_phys_t *out);
gpumem_status gm_be_stream_create(int device, unsigned flags, gpumem_stream_t *out);
gpumem_status gm_be_stream_destroy(gpumem_stream_t stream);
gpumem_status gm_be_stream_synchronize(gpumem_stream_t stream);
gpumem_status gm_be_stream_query(gpumem_stream_t stream);
gpumem_status gm_be_stream_wait_event(gpumem_stream_t stream, gpumem_event_t event);
gpumem_status gm_be_event_create(int device, gpumem_event_t *out);
gpumem_status gm_be_event_destroy(gpumem_event_t event);
gpumem_status gm_be_event_record(gpumem_event_t event, gpumem_stream_t stream);
gpumem_status gm_be_event_query(gpumem_event_t event);
gpumem_status gm_be_event_synchronize(gpumem_event_t event);
gpumem_status gm_be_device_synchronize(int device);
gpumem_status gm_be_memcpy(void *dst, const void *src, size_t size, gpumem_stream_t stream);
gpumem_status gm_be_memset(void *dst, int value, size_t size, gpumem_stream_t stream);
gpumem_status gm_be_launch_host_func(gpumem_stream_t stream, gpumem_host_fn fn, void *arg);
gpumem_status gm_be_stream_id(gpumem_stream_t stream, uint64_t *out);
gpumem_status gm_be_stream_device(gpumem_stream_t stream, int *out);
gpumem_status gm_be_stream_capture(gpumem_stream_t stream, bool begin);
gpumem_status gm_be_stream_is_capturing(gpumem_stream_t stream, bool *out);
gpumem_status gm_be_stream_state(gpumem_stream_t stream, uint64_t *id, bool *capturing);
gpumem_status gm_be_dev_malloc(int device, size_t size, void **out);
gpumem_status gm_be_dev_free(void *ptr);
gpumem_status gm_be_pool_create(const gm_pool_props *props, gpumem_native_pool_t *out);
gpumem_status gm_be_pool_destroy(gpumem_native_pool_t pool);
gpumem_status gm_be_pool_default(int device, gpumem_native_pool_t *out);
gpumem_status gm_be_pool_set_attr(gpumem_native_pool_t pool, gm_pool_attr attr, uint64_t value);
gpumem_status gm_be_pool_get_attr(gpumem_native_pool_t pool, gm_pool_attr attr, uint64_t *value);
gpumem_status gm_be_pool_set_access(gpumem_native_pool_t pool, const gpumem_access_desc *desc,
                                    size_t count);
gpumem_status gm_be_pool_get_access(gpumem_native_pool_t pool, int device,
                                    gpumem_access_flags *out);
gpumem_status gm_be_pool_trim(gpumem_native_pool_t pool, size_t keep_bytes);
gpumem_status gm_be_pool_alloc(gpumem_native_pool_t pool, size_t size, gpumem_stream_t stream,
                               void **out);
gpumem_status gm_be_pool_free(void *ptr, gpumem_stream_t stream);
gpumem_status gm_be_pool_export(gpumem_native_pool_t pool, gpumem_handle_type type,
                                gpumem_shareable_handle *out);
gpumem_status gm_be_pool_import(const gpumem_shareable_handle *in, gpumem_native_pool_t *out);
gpumem_status gm_be_pool_export_ptr(void *ptr, gm_pool_ptr_export *out);
gpumem_status gm_be_pool_import_ptr(gpumem_native_pool_t pool, const gm_pool_ptr_export *data,
                                    void **out);

#endif
