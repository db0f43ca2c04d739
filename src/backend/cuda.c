/* cuda.c: the backend contract on the CUDA driver and runtime.
 *
 * libgpumem.so links the CUDA runtime only. The driver's VMM calls (cuMem*)
 * and device queries come from cudaGetDriverEntryPointByVersion, resolved
 * once at open() into typed pointers (the PFN_*_vNNNN types of
 * cudaTypedefs.h), asking for the CUDA version that introduced each ABI, the
 * way NCCL's cudawrap and PyTorch's driver_api do. So the library loads on a
 * machine without a driver, and there every operation fails with
 * GPUMEM_ERR_NO_DEVICE and a sentence that says why, instead of the loader
 * refusing the program.
 *
 * Streams, events, copies and pools use the runtime, which owns the primary
 * contexts.
 *
 * Contexts. A primary context costs about 0.5 GiB of the GPU it lives on, and
 * a GPU in EXCLUSIVE_PROCESS compute mode refuses a second process one
 * (cudaErrorDevicesUnavailable), so each of the 8 MPI ranks of an 8-GPU node
 * must end up with a context on its own GPU only. Three rules follow.
 *  - Looking creates nothing. Device queries take a CUdevice, not a context
 *    (cuDeviceGet, cuDeviceGetAttribute, cuDeviceGetName, cuDeviceTotalMem,
 *    cuDeviceGetUuid, cuDeviceGetP2PAttribute, cuMemGetAllocationGranularity,
 *    cuDevicePrimaryCtxGetState), and the driver API never creates a context
 *    by itself: every driver-API program calls cuDeviceGet and
 *    cuDeviceGetAttribute before cuCtxCreate (cuda-samples' vectorAddMMAP
 *    checks VMM support and peer access that way). Free memory without a
 *    context comes from NVML (mem_probe: nvmlDeviceGetMemoryInfo), or from
 *    the device's primary context when cuDevicePrimaryCtxGetState says it is
 *    already active.
 *  - A runtime call that acts on "the current device" (stream and event
 *    creation, cudaMalloc, cudaFree, cudaMemGetInfo, cudaDeviceSynchronize)
 *    runs with the primary context of the device concerned made current
 *    (RT_ON_DEVICE). The context is created with cudaInitDevice, which
 *    initialises it "but the context will not be made current", retained
 *    once, and bound with cuCtxSetCurrent; afterwards the thread's previous
 *    context is bound again. cudaGetDevice cannot be used to save the
 *    caller's device: it answers 0 on a thread that has no context, and
 *    cudaSetDevice(0) to "restore" it would create device 0's context on
 *    every rank. cuCtxGetCurrent tells the two apart (NULL: none), and
 *    cuCtxSetCurrent(NULL) unbinds (cuda.h), so a thread with no context
 *    keeps none. Entering binds with cuCtxSetCurrent too, not cudaSetDevice,
 *    so that the switch touches nothing but the thread's current context,
 *    which is then put back. Pool creation and the default pool name their
 *    device too: they create its primary context (the pool allocates there)
 *    but bind it only on a thread with none (RT_FOR_DEVICE), as phys_create.
 *  - A call on an existing object (a stream, event, pool or pointer) leaves
 *    a thread that has a current context alone, whatever its device: CUDA
 *    takes objects of another device for these calls ("A memory copy will
 *    succeed even if it is issued to a stream that is not associated to the
 *    current device", cudaEventSynchronize and cudaEventQuery too, and
 *    cudaStreamWaitEvent "even if the input stream and input event are
 *    associated to different devices": CUDA C++ Programming Guide,
 *    Multi-Device System, Stream and Event Behavior, where only a kernel
 *    launch, which this backend makes none of, needs the stream's device
 *    current; a pool "may be from a device
 *    different than that of the specified hStream", cudaMallocFromPoolAsync).
 *    Memset, host functions and the pool calls are not named there:
 *    tests/test_contexts.c (test_object_calls_keep_the_callers_device) makes
 *    each from a thread current on another device. On a thread with none, the
 *    runtime would select device 0, create its context and leave it current
 *    ("If no CUcontext is current to the calling thread when a CUDA Runtime
 *    API call which requires an active context is made, then the primary
 *    context for a device will be selected, made current to the calling
 *    thread, and initialized", cuda_runtime_api.h, Interactions with the
 *    CUDA Driver API): PyTorch found this on cudaEventDestroy and
 *    cudaEventRecord (pytorch#9415, #13464) and torchcomms on its watchdog's
 *    cudaEventQuery (torchcomms#777: 534 MiB on GPU 0 per rank). So there,
 *    and only there, the call binds its object's own context and then
 *    unbinds it (RT_ON): a stream's (cuStreamGetCtx, which needs no current
 *    context for a stream that is not special: bind_stream), the primary
 *    context of the device an event or pool was made on (recorded at event
 *    create, pool create and default pool, since CUDA has no query for it
 *    without a context: bind_object), or of the device a pointer's memory is
 *    on (cuPointerGetAttribute DEVICE_ORDINAL: bind_pointer, and dev_free).
 *    Where the object's device is unknown (an imported pool, an event the
 *    application made) the device whose context this backend needed last is
 *    bound, else device 0. The special streams (NULL, cudaStreamLegacy,
 *    cudaStreamPerThread) mean "the current device", which on a thread with
 *    no context is device 0 to the runtime: for them nothing is bound, and
 *    CUDA creates device 0's context and leaves it current, as in any CUDA
 *    program (the host backend does the same, gm_host_runtime_device).
 *    Cost: the common case, a thread with a context, pays one
 *    cuCtxGetCurrent (it reads the thread's state), and stream_id and
 *    stream_is_capturing, which the pool calls on every allocation and
 *    free, cache hits included, pay nothing: on a stream that is not special
 *    they ask the driver (cuStreamGetId, cuStreamIsCapturing), which never
 *    creates a context and lists no CUDA_ERROR_INVALID_CONTEXT for them
 *    (cuda.h); the stream's context is bound only should a driver answer it
 *    (CU_ON_STREAM). The answer is not cached per thread: a thread seen with
 *    a context may lose it behind the library's back (cuCtxPopCurrent,
 *    cuCtxSetCurrent(NULL), as driver-API code does around its own work),
 *    and a stale "it has one" would bring back device 0's context, the very
 *    defect.
 *
 * Do the VMM calls need a current context? Decision: no, and the code does
 * not rely on it either way. Evidence: they name their device in the
 * allocation's location or the access descriptors instead of taking it from
 * the current context, as cuMemAlloc and cuMemGetInfo do; their return
 * lists in cuda.h (cuMemAddressReserve, cuMemCreate, cuMemMap, cuMemUnmap,
 * cuMemSetAccess, cuMemRelease, export and import) leave out
 * CUDA_ERROR_INVALID_CONTEXT, which cuMemAlloc and cuMemGetInfo list (weak
 * on its own: cuDeviceGet lists it too and needs no context);
 * NVIDIA's vectorAddMMAP sample (cuda-samples) creates one context, on the
 * mapping device, and cuMemCreate's physical memory on backing devices that
 * have none; with PyTorch's expandable segments (c10/cuda/
 * CUDACachingAllocator, cuMemCreate/cuMemMap/cuMemSetAccess through the
 * entry points of c10/cuda/driver_api.cpp), cuMemCreate is called on loader
 * threads whose cuCtxGetDevice answers CUDA_ERROR_INVALID_CONTEXT, that is,
 * with no context (HAMi-core#172, whose hook crashed on it). Either way:
 * phys_create retains the primary context of the device it allocates on
 * (the caller allocates there, so the context is wanted, and the host
 * backend counts it the same way) and binds it around cuMemCreate on a
 * thread that has no context; every other VMM call, should a driver answer
 * CUDA_ERROR_INVALID_CONTEXT on a thread with none, is retried once with the
 * primary context of its device bound (CU_VMM), and an info line reports it,
 * so that the first GPU run settles the question. A context is bound only on
 * the device a call concerns (for a call that names none, the device whose
 * context this backend needed last, else device 0, the runtime's own pick).
 *
 * Every failure records the CUDA call, its arguments and the CUDA error name
 * (CUDA_ERROR_* or cudaError*), and maps the error to the nearest
 * gpumem_status (out of memory, invalid value, not permitted, ...).
 */
#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_runtime_api.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "hashmap.h"
#include "log.h"
#include "mig.h"
#include "backend/nvml.h"
#include "uuid.h"

/* X(symbol, version that introduced the ABI we use) */
#define GM_CU_ENTRY_POINTS(X)                      \
  X(cuGetErrorName, 6000)                          \
  X(cuGetErrorString, 6000)                        \
  X(cuDeviceGet, 2000)                             \
  X(cuDeviceGetAttribute, 2000)                    \
  X(cuDeviceGetName, 2000)                         \
  X(cuDeviceGetUuid, 11040)                        \
  X(cuDeviceTotalMem, 3020)                        \
  X(cuDeviceGetP2PAttribute, 8000)                 \
  X(cuMemAddressReserve, 10020)                    \
  X(cuMemAddressFree, 10020)                       \
  X(cuMemCreate, 10020)                            \
  X(cuMemRelease, 10020)                           \
  X(cuMemMap, 10020)                               \
  X(cuMemUnmap, 10020)                             \
  X(cuMemSetAccess, 10020)                         \
  X(cuMemGetAccess, 10020)                         \
  X(cuMemGetAllocationGranularity, 10020)          \
  X(cuMemGetAllocationPropertiesFromHandle, 10020) \
  X(cuMemExportToShareableHandle, 10020)           \
  X(cuMemImportFromShareableHandle, 10020)         \
  X(cuCtxGetCurrent, 4000)                         \
  X(cuCtxSetCurrent, 4000)                         \
  X(cuDevicePrimaryCtxGetState, 7000)              \
  X(cuDevicePrimaryCtxRetain, 7000)                \
  X(cuDevicePrimaryCtxRelease, 11000)              \
  X(cuPointerGetAttribute, 4000)                   \
  X(cuStreamGetCtx, 9020)                          \
  X(cuStreamGetId, 12000)                          \
  X(cuStreamIsCapturing, 10000)                    \
  X(cuStreamQuery, 2000)                           \
  X(cuEventQuery, 2000)

#define GM_CU_PFN_DECLARE_(sym, ver) static PFN_##sym##_v##ver pfn_##sym;
GM_CU_ENTRY_POINTS(GM_CU_PFN_DECLARE_)
#undef GM_CU_PFN_DECLARE_

static int device_count;

/* ---- errors ---- */

static gpumem_status status_from_cu(CUresult r) {
  switch (r) {
  case CUDA_ERROR_OUT_OF_MEMORY:
    return GPUMEM_ERR_OUT_OF_MEMORY;
  case CUDA_ERROR_INVALID_VALUE:
  case CUDA_ERROR_INVALID_HANDLE:
    return GPUMEM_ERR_INVALID_ARGUMENT;
  case CUDA_ERROR_INVALID_DEVICE:
    return GPUMEM_ERR_INVALID_DEVICE;
  case CUDA_ERROR_NOT_SUPPORTED:
    return GPUMEM_ERR_NOT_SUPPORTED;
  case CUDA_ERROR_NOT_PERMITTED:
    return GPUMEM_ERR_NOT_PERMITTED;
  case CUDA_ERROR_NOT_READY:
    return GPUMEM_ERR_NOT_READY;
  case CUDA_ERROR_NOT_MAPPED:
    return GPUMEM_ERR_NOT_MAPPED;
  case CUDA_ERROR_ALREADY_MAPPED:
    return GPUMEM_ERR_ALREADY_MAPPED;
  case CUDA_ERROR_PEER_ACCESS_UNSUPPORTED:
    return GPUMEM_ERR_PEER_UNSUPPORTED;
  case CUDA_ERROR_NO_DEVICE:
  case CUDA_ERROR_NOT_INITIALIZED:
  case CUDA_ERROR_DEINITIALIZED:
  case CUDA_ERROR_STUB_LIBRARY:
    return GPUMEM_ERR_NO_DEVICE;
  default:
    return GPUMEM_ERR_DRIVER;
  }
}

static gpumem_status status_from_rt(cudaError_t e) {
  switch (e) {
  case cudaErrorMemoryAllocation:
    return GPUMEM_ERR_OUT_OF_MEMORY;
  case cudaErrorInvalidValue:
  case cudaErrorInvalidResourceHandle:
    return GPUMEM_ERR_INVALID_ARGUMENT;
  case cudaErrorInvalidDevice:
    return GPUMEM_ERR_INVALID_DEVICE;
  case cudaErrorNotSupported:
    return GPUMEM_ERR_NOT_SUPPORTED;
  case cudaErrorNotPermitted:
    return GPUMEM_ERR_NOT_PERMITTED;
  case cudaErrorNotReady:
    return GPUMEM_ERR_NOT_READY;
  case cudaErrorPeerAccessUnsupported:
    return GPUMEM_ERR_PEER_UNSUPPORTED;
  case cudaErrorStreamCaptureUnsupported:
  case cudaErrorStreamCaptureInvalidated:
  case cudaErrorStreamCaptureImplicit:
  case cudaErrorIllegalState:
    return GPUMEM_ERR_STATE;
  case cudaErrorInsufficientDriver:
  case cudaErrorNoDevice:
  case cudaErrorInitializationError:
  case cudaErrorStubLibrary:
  case cudaErrorCudartUnloading:
    return GPUMEM_ERR_NO_DEVICE;
  default:
    return GPUMEM_ERR_DRIVER;
  }
}

/* Record "<call>(<args>) failed: <CUDA_ERROR_NAME> (<description>)". */
static gpumem_status cu_fail(CUresult r, const char *call, const char *fmt, ...)
    GPUMEM_PRINTF(3, 4);
static gpumem_status cu_fail(CUresult r, const char *call, const char *fmt, ...) {
  char args[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(args, sizeof args, fmt, ap);
  va_end(ap);
  const char *name = NULL, *text = NULL;
  if (pfn_cuGetErrorName == NULL || pfn_cuGetErrorName(r, &name) != CUDA_SUCCESS) name = NULL;
  if (pfn_cuGetErrorString == NULL || pfn_cuGetErrorString(r, &text) != CUDA_SUCCESS) text = NULL;
  if (name == NULL) {
    return gm_error(status_from_cu(r), "%s(%s) failed: CUresult %d", call, args, (int)r);
  }
  return gm_error(status_from_cu(r), "%s(%s) failed: %s (%s)", call, args, name,
                  text ? text : "no description");
}

static gpumem_status rt_fail(cudaError_t e, const char *call, const char *fmt, ...)
    GPUMEM_PRINTF(3, 4);
static gpumem_status rt_fail(cudaError_t e, const char *call, const char *fmt, ...) {
  char args[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(args, sizeof args, fmt, ap);
  va_end(ap);
  /* The error stays the thread's last runtime error, for the application to
   * read with cudaGetLastError(): clearing it here would also clear an
   * earlier error the application had not read yet. */
  return gm_error(status_from_rt(e), "%s(%s) failed: %s (%s)", call, args, cudaGetErrorName(e),
                  cudaGetErrorString(e));
}

/* Call a driver entry point; on failure record the detail and return. */
#define CU(sym, args, ...)                                         \
  do {                                                             \
    CUresult r_ = pfn_##sym args;                                  \
    if (r_ != CUDA_SUCCESS) return cu_fail(r_, #sym, __VA_ARGS__); \
  } while (0)

/* Call a runtime function; on failure record the detail and return. */
#define RT(fn, args, ...)                                        \
  do {                                                           \
    cudaError_t e_ = fn args;                                    \
    if (e_ != cudaSuccess) return rt_fail(e_, #fn, __VA_ARGS__); \
  } while (0)

#define CHECK_DEVICE(d)                                                                        \
  do {                                                                                         \
    if ((d) < 0 || (d) >= device_count)                                                        \
      return gm_error(GPUMEM_ERR_INVALID_DEVICE, "device %d does not exist (%d visible)", (d), \
                      device_count);                                                           \
  } while (0)

/* ---- contexts (see the essay) ---- */

/* The primary context of each device once this backend has needed it, with
 * one reference held until close. */
static pthread_mutex_t primary_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic(CUcontext) primary[GPUMEM_MAX_DEVICES];
static _Atomic int last_primary = -1; /* the device whose context was needed last */

/* `device`'s primary context, created if the process has none there yet:
 * cudaInitDevice initialises it with the runtime's state, as cudaSetDevice
 * would, "but the context will not be made current" (cuda_runtime_api.h). */
static gpumem_status primary_context(int device, CUcontext *out) {
  CUcontext c = atomic_load_explicit(&primary[device], memory_order_acquire);
  gpumem_status st = GPUMEM_OK;
  if (c == NULL) {
    pthread_mutex_lock(&primary_lock);
    c = atomic_load_explicit(&primary[device], memory_order_acquire);
    if (c == NULL) {
      CUdevice dev = 0;
      CUresult r = CUDA_SUCCESS;
      cudaError_t e = cudaInitDevice(device, 0, 0);
      if (e != cudaSuccess) {
        st = rt_fail(e, "cudaInitDevice", "device=%d", device);
      } else if ((r = pfn_cuDeviceGet(&dev, device)) != CUDA_SUCCESS) {
        st = cu_fail(r, "cuDeviceGet", "ordinal=%d", device);
      } else if ((r = pfn_cuDevicePrimaryCtxRetain(&c, dev)) != CUDA_SUCCESS) {
        st = cu_fail(r, "cuDevicePrimaryCtxRetain", "device=%d", device);
      } else {
        atomic_store_explicit(&primary[device], c, memory_order_release);
      }
    }
    pthread_mutex_unlock(&primary_lock);
  }
  if (st == GPUMEM_OK) {
    atomic_store_explicit(&last_primary, device, memory_order_relaxed);
    *out = c;
  }
  return st;
}

/* Drop the references primary_context() took (at close). */
static void primary_release_all(void) {
  pthread_mutex_lock(&primary_lock);
  for (int d = 0; d < GPUMEM_MAX_DEVICES; d++) {
    CUdevice dev = 0;
    if (atomic_load(&primary[d]) != NULL && pfn_cuDeviceGet(&dev, d) == CUDA_SUCCESS)
      pfn_cuDevicePrimaryCtxRelease(dev);
    atomic_store(&primary[d], NULL);
  }
  atomic_store(&last_primary, -1);
  pthread_mutex_unlock(&primary_lock);
}

/* The calling thread's context before a switch, to put back after. */
typedef struct ctx_guard {
  CUcontext previous; /* NULL: the thread had no current context */
  bool switched;
} ctx_guard;

/* Make `device`'s primary context current on the calling thread, creating
 * it if need be. With `only_if_none`, leave a thread that has a current
 * context (any) alone and only bind one where there is none. */
static gpumem_status ctx_enter(int device, bool only_if_none, ctx_guard *g) {
  g->switched = false;
  g->previous = NULL;
  CUcontext want = NULL;
  CU(cuCtxGetCurrent, (&g->previous), "%s", "calling thread");
  gpumem_status st = primary_context(device, &want);
  if (st != GPUMEM_OK || g->previous == want || (only_if_none && g->previous != NULL)) return st;
  CU(cuCtxSetCurrent, (want), "primary context of device %d", device);
  g->switched = true;
  return GPUMEM_OK;
}

/* Put back what was current: the caller's context, or none (cuCtxSetCurrent
 * of NULL unbinds, cuda.h), never device 0's in place of none. */
static void ctx_exit(const ctx_guard *g) {
  if (g->switched) pfn_cuCtxSetCurrent(g->previous);
}

/* Run a runtime call with `device`'s primary context current; on failure
 * record and return. */
#define RT_ON_DEVICE(device, call, name, ...)                     \
  do {                                                            \
    ctx_guard g_;                                                 \
    gpumem_status s_ = ctx_enter((device), false, &g_);           \
    if (s_ != GPUMEM_OK) return s_;                               \
    cudaError_t e_ = (call);                                      \
    ctx_exit(&g_);                                                \
    if (e_ != cudaSuccess) return rt_fail(e_, name, __VA_ARGS__); \
  } while (0)

/* On a thread with no current context, bind the primary context of
 * `device`, or, for -1, of the device whose context this backend needed
 * last (else device 0's). Returns the device bound, or -1 when it bound
 * none. */
static int bind_if_none(int device, ctx_guard *g) {
  CUcontext current = NULL;
  if (pfn_cuCtxGetCurrent(&current) != CUDA_SUCCESS || current != NULL) return -1;
  if (device < 0 || device >= device_count) device = atomic_load(&last_primary);
  if (device < 0) device = 0;
  if (ctx_enter(device, true, g) != GPUMEM_OK) {
    gm_error_discard();
    return -1;
  }
  return device;
}

/* The VMM calls need no current context (see the essay). Should a driver
 * answer CUDA_ERROR_INVALID_CONTEXT all the same on a thread that has none,
 * bind the primary context of the device concerned (bind_if_none) and try
 * once more; say so once, since it contradicts cuda.h. */
static bool vmm_bind(int device, const char *call, ctx_guard *g) {
  static atomic_bool said;
  int bound = bind_if_none(device, g);
  if (bound < 0) return false;
  if (!atomic_exchange(&said, true)) {
    gm_log(GPUMEM_LOG_INFO,
           "%s wants a current context on a thread without one: binding device %d's primary "
           "context around such calls",
           call, bound);
  }
  return true;
}

/* A VMM driver call (see vmm_bind); `device` is evaluated only on a retry. */
#define CU_VMM(device, sym, args, ...)                                       \
  do {                                                                       \
    CUresult r_ = pfn_##sym args;                                            \
    ctx_guard g_;                                                            \
    if (r_ == CUDA_ERROR_INVALID_CONTEXT && vmm_bind((device), #sym, &g_)) { \
      r_ = pfn_##sym args;                                                   \
      ctx_exit(&g_);                                                         \
    }                                                                        \
    if (r_ != CUDA_SUCCESS) return cu_fail(r_, #sym, __VA_ARGS__);           \
  } while (0)

/* The device of a physical allocation, or -1. */
static int handle_device(CUmemGenericAllocationHandle h) {
  CUmemAllocationProp prop;
  memset(&prop, 0, sizeof prop);
  return pfn_cuMemGetAllocationPropertiesFromHandle(&prop, h) == CUDA_SUCCESS ? prop.location.id
                                                                              : -1;
}

/* ---- calls on an existing stream, event, pool or pointer (see the essay) ---- */

/* The device each event and pool was made on, recorded at creation (event
 * create, pool create, default pool), since CUDA cannot tell it without a
 * context: there is no driver query for an event's context or a pool's
 * location. Key: the handle; value: the device. Not found means unknown: an
 * event the application made itself, an imported pool, or a record that
 * could not be stored for want of host memory (the object works all the
 * same; only the context bound on a thread with none may be another's). */
static pthread_mutex_t owners_lock = PTHREAD_MUTEX_INITIALIZER;
static gm_hashmap owners = GM_HASHMAP_INIT;

static void owner_set(const void *obj, int device) {
  pthread_mutex_lock(&owners_lock);
  if (!gm_hashmap_put(&owners, (uint64_t)(uintptr_t)obj, (uint64_t)device)) {
    gm_log(GPUMEM_LOG_DEBUG, "no host memory to record the device (%d) of %p", device, obj);
  }
  pthread_mutex_unlock(&owners_lock);
}

/* The device `obj` was made on, or -1 when unknown. */
static int owner_get(const void *obj) {
  uint64_t v = 0;
  pthread_mutex_lock(&owners_lock);
  bool found = obj != NULL && gm_hashmap_get(&owners, (uint64_t)(uintptr_t)obj, &v);
  pthread_mutex_unlock(&owners_lock);
  return found ? (int)v : -1;
}

static void owner_forget(const void *obj) {
  pthread_mutex_lock(&owners_lock);
  gm_hashmap_remove(&owners, (uint64_t)(uintptr_t)obj);
  pthread_mutex_unlock(&owners_lock);
}

/* At close: the default pools' records (never destroyed) and any left. */
static void owners_clear(void) {
  pthread_mutex_lock(&owners_lock);
  gm_hashmap_free(&owners);
  pthread_mutex_unlock(&owners_lock);
}

/* Does the calling thread have no current context? The one check the common
 * case pays (cuCtxGetCurrent reads the thread's state). A failure counts as
 * "it has one": nothing is bound, and the runtime call reports the problem. */
static inline bool thread_has_no_context(void) {
  CUcontext c = NULL;
  return pfn_cuCtxGetCurrent(&c) == CUDA_SUCCESS && c == NULL;
}

/* NULL, cudaStreamLegacy and cudaStreamPerThread name the default streams of
 * "the current device", not one stream (driver_types.h). */
static inline bool special_stream(gpumem_stream_t s) {
  return s == NULL || s == cudaStreamLegacy || s == cudaStreamPerThread;
}

static inline void guard_none(ctx_guard *g) {
  g->switched = false;
  g->previous = NULL;
}

/* On a thread with no current context, bind the context stream `s` belongs
 * to: cuStreamGetCtx gives "the context that was active in the calling
 * thread when the stream was created" (cuda.h), for a stream made here the
 * primary context of its device, and needs no current context for a stream
 * that is not special. Nothing is bound for the special streams: on a thread
 * with no context "the current device" is device 0 to the runtime, which
 * then creates its context and leaves it current, as in any CUDA program. */
static void bind_stream(gpumem_stream_t s, ctx_guard *g) {
  guard_none(g);
  CUcontext own = NULL;
  if (special_stream(s) || !thread_has_no_context()) return;
  if (pfn_cuStreamGetCtx((CUstream)s, &own) == CUDA_SUCCESS && own != NULL)
    g->switched = pfn_cuCtxSetCurrent(own) == CUDA_SUCCESS;
}

/* On a thread with no current context, bind the primary context of the
 * device event or pool `obj` was made on (owners), or, when that is unknown,
 * of the device whose context this backend needed last (else device 0's). */
static void bind_object(const void *obj, ctx_guard *g) {
  guard_none(g);
  if (thread_has_no_context()) bind_if_none(owner_get(obj), g);
}

/* The device of the memory at `ptr` (cuPointerGetAttribute), or -1. The
 * query may want a current context (cuda.h lists CUDA_ERROR_INVALID_CONTEXT):
 * on a thread with none it is retried with one bound (bind_if_none). */
static int pointer_device(const void *ptr) {
  int device = -1;
  ctx_guard g;
  CUresult r =
      pfn_cuPointerGetAttribute(&device, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, (CUdeviceptr)ptr);
  if (r == CUDA_ERROR_INVALID_CONTEXT && bind_if_none(-1, &g) >= 0) {
    r = pfn_cuPointerGetAttribute(&device, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, (CUdeviceptr)ptr);
    ctx_exit(&g);
  }
  return r == CUDA_SUCCESS && device >= 0 && device < device_count ? device : -1;
}

/* On a thread with no current context, bind the primary context of the
 * device the memory at `ptr` lives on (else as bind_object for unknown). */
static void bind_pointer(const void *ptr, ctx_guard *g) {
  guard_none(g);
  if (thread_has_no_context()) bind_if_none(pointer_device(ptr), g);
}

/* A runtime call on an existing object `obj`, with bind (bind_stream,
 * bind_object or bind_pointer) around it; on failure record and return. */
#define RT_ON(bind, obj, call, name, ...)                         \
  do {                                                            \
    ctx_guard g_;                                                 \
    bind((obj), &g_);                                             \
    cudaError_t e_ = (call);                                      \
    ctx_exit(&g_);                                                \
    if (e_ != cudaSuccess) return rt_fail(e_, name, __VA_ARGS__); \
  } while (0)

/* A driver query of stream `s` (not a special one). The driver never creates
 * a context, and cuStreamGetId and cuStreamIsCapturing do not list
 * CUDA_ERROR_INVALID_CONTEXT (cuda.h), so no check is made first; should a
 * driver answer it all the same on a thread with none, the stream's context
 * is bound and the call made once more. */
#define CU_ON_STREAM(s, sym, args, ...)                            \
  do {                                                             \
    CUresult r_ = pfn_##sym args;                                  \
    if (r_ == CUDA_ERROR_INVALID_CONTEXT) {                        \
      ctx_guard g_;                                                \
      bind_stream((s), &g_);                                       \
      if (g_.switched) {                                           \
        r_ = pfn_##sym args;                                       \
        ctx_exit(&g_);                                             \
      }                                                            \
    }                                                              \
    if (r_ != CUDA_SUCCESS) return cu_fail(r_, #sym, __VA_ARGS__); \
  } while (0)

/* ---- opening ---- */

/* Why cudaGetDriverEntryPointByVersion gave no usable pointer, in words. The
 * query result is only meaningful when the call itself succeeded
 * (cuda_runtime_api.h: it "will also set the optional driverStatus"). */
static const char *entry_point_problem(cudaError_t e, enum cudaDriverEntryPointQueryResult q,
                                       char *buf, size_t len) {
  if (e != cudaSuccess) {
    snprintf(buf, len, "cudaGetDriverEntryPointByVersion returned %s (%s)", cudaGetErrorName(e),
             cudaGetErrorString(e));
  } else if (q == cudaDriverEntryPointSymbolNotFound) {
    snprintf(buf, len, "the driver does not have the symbol (cudaDriverEntryPointSymbolNotFound)");
  } else if (q == cudaDriverEntryPointVersionNotSufficent) {
    snprintf(buf, len,
             "the driver has the symbol but not for this version "
             "(cudaDriverEntryPointVersionNotSufficent)");
  } else if (q != cudaDriverEntryPointSuccess) {
    snprintf(buf, len, "unknown query result %d", (int)q);
  } else {
    snprintf(buf, len, "the symbol was found but the pointer is NULL");
  }
  return buf;
}

static gpumem_status cuda_open(void) {
  int driver = 0;
  cudaDriverGetVersion(&driver);
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    cudaGetLastError();
    const char *what =
        driver == 0 || e == cudaErrorInsufficientDriver ? "no CUDA driver" : "no CUDA device";
    const char *cvd = getenv("CUDA_VISIBLE_DEVICES");
    return gm_error(GPUMEM_ERR_NO_DEVICE, "%s: cudaGetDeviceCount returned %s (%s)%s%s%s", what,
                    cudaGetErrorName(e), cudaGetErrorString(e),
                    cvd ? "; CUDA_VISIBLE_DEVICES='" : "", cvd ? cvd : "", cvd ? "'" : "");
  }
  if (count == 0) {
    return gm_error(GPUMEM_ERR_NO_DEVICE, "no CUDA device: the driver reports none visible");
  }
  char why[GM_ERROR_DETAIL_MAX / 2];
#define GM_CU_RESOLVE_(sym, ver)                                                                  \
  {                                                                                               \
    void *fn = NULL;                                                                              \
    enum cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSuccess;                         \
    e = cudaGetDriverEntryPointByVersion(#sym, &fn, ver, cudaEnableDefault, &q);                  \
    if (e != cudaSuccess || q != cudaDriverEntryPointSuccess || fn == NULL) {                     \
      cudaGetLastError();                                                                         \
      return gm_error(GPUMEM_ERR_NO_DEVICE, "CUDA driver %d.%d lacks %s (ABI of CUDA %d.%d): %s", \
                      driver / 1000, driver % 1000 / 10, #sym, (ver) / 1000, (ver) % 1000 / 10,   \
                      entry_point_problem(e, q, why, sizeof why));                                \
    }                                                                                             \
    pfn_##sym = (PFN_##sym##_v##ver)fn;                                                           \
  }
  GM_CU_ENTRY_POINTS(GM_CU_RESOLVE_)
#undef GM_CU_RESOLVE_
  device_count = count;
  gm_log(GPUMEM_LOG_INFO, "cuda backend: driver %d.%d, %d device(s)", driver / 1000,
         driver % 1000 / 10, count);
  return GPUMEM_OK;
}

static void cuda_close(void) {
  /* Driver objects are owned by the library's objects, which are gone by now;
   * the runtime tears itself down at exit. The primary contexts stay for as
   * long as the runtime (or the application) holds them. */
  owners_clear();
  primary_release_all();
}

static void cuda_versions(int *driver, int *runtime) {
  *driver = 0;
  *runtime = 0;
  cudaDriverGetVersion(driver);
  cudaRuntimeGetVersion(runtime);
}

/* ---- devices ---- */

static gpumem_status cuda_device_count(int *count) {
  *count = device_count;
  return GPUMEM_OK;
}

static gpumem_status attr(CUdevice dev, CUdevice_attribute a, const char *name, int *out) {
  CU(cuDeviceGetAttribute, (out, a, dev), "%s, device=%d", name, (int)dev);
  return GPUMEM_OK;
}

#define ATTR(dev, a, out)                     \
  do {                                        \
    gpumem_status s_ = attr(dev, a, #a, out); \
    if (s_ != GPUMEM_OK) return s_;           \
  } while (0)

static CUmemAllocationProp make_prop(const gpumem_phys_props *p) {
  CUmemAllocationProp prop;
  memset(&prop, 0, sizeof prop);
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  prop.location.id = p->device;
  prop.requestedHandleTypes = (CUmemAllocationHandleType)p->handle_types;
  if (p->compression) prop.allocFlags.compressionType = CU_MEM_ALLOCATION_COMP_GENERIC;
  return prop;
}

static gpumem_status cuda_granularity(const gpumem_phys_props *props, bool recommended,
                                      size_t *out) {
  CHECK_DEVICE(props->device);
  CUmemAllocationProp prop = make_prop(props);
  CU(cuMemGetAllocationGranularity,
     (out, &prop,
      recommended ? CU_MEM_ALLOC_GRANULARITY_RECOMMENDED : CU_MEM_ALLOC_GRANULARITY_MINIMUM),
     "device=%d, handle types=0x%x, compression=%d, %s", props->device, props->handle_types,
     (int)props->compression, recommended ? "RECOMMENDED" : "MINIMUM");
  return GPUMEM_OK;
}

static gpumem_status cuda_device_props(int device, gm_device_props *out) {
  CHECK_DEVICE(device);
  memset(out, 0, sizeof *out);
  CUdevice dev;
  CU(cuDeviceGet, (&dev, device), "ordinal=%d", device);
  CU(cuDeviceGetName, (out->name, (int)sizeof out->name, dev), "device=%d", device);
  CUuuid uuid;
  CU(cuDeviceGetUuid, (&uuid, dev), "device=%d", device);
  memcpy(out->uuid, uuid.bytes, sizeof out->uuid);
  /* cuDeviceGetUuid (v2) gives a MIG slice's MIG UUID (`cuda.h`: "If the
   * device is in MIG mode, returns its MIG UUID"), but the bytes carry no
   * MIG flag. The driver names a MIG device "<GPU> MIG <profile>" ("NVIDIA
   * A100-SXM4-40GB MIG 1g.5gb"): that decides the prefix here; NVML, when
   * present, confirms it (mig.c). */
  gm_uuid_format(out->uuid, gm_mig_name_profile(out->name) ? "MIG-" : "GPU-", out->uuid_string,
                 sizeof out->uuid_string);
  CU(cuDeviceTotalMem, (&out->total_memory, dev), "device=%d", device);
  int v = 0;
  ATTR(dev, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, &out->cc_major);
  ATTR(dev, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, &out->cc_minor);
  ATTR(dev, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, &out->sm_count);
  ATTR(dev, CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID, &out->pci_domain);
  ATTR(dev, CU_DEVICE_ATTRIBUTE_PCI_BUS_ID, &out->pci_bus);
  ATTR(dev, CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID, &out->pci_device);
  ATTR(dev, CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, &v);
  out->vmm = v != 0;
  ATTR(dev, CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED, &v);
  out->posix_fd = v != 0;
  ATTR(dev, CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_FABRIC_SUPPORTED, &v);
  out->fabric = v != 0;
  ATTR(dev, CU_DEVICE_ATTRIBUTE_GENERIC_COMPRESSION_SUPPORTED, &v);
  out->compression = v != 0;
  ATTR(dev, CU_DEVICE_ATTRIBUTE_MULTICAST_SUPPORTED, &v);
  out->multicast = v != 0;
  ATTR(dev, CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED, &v);
  out->pools = v != 0;
  ATTR(dev, CU_DEVICE_ATTRIBUTE_MEMPOOL_SUPPORTED_HANDLE_TYPES, &v);
  out->pool_handle_types = (unsigned)v;
  if (out->vmm) {
    gpumem_phys_props p = {device, GPUMEM_HANDLE_NONE, false};
    gpumem_status st = cuda_granularity(&p, false, &out->granularity_min);
    if (st == GPUMEM_OK) st = cuda_granularity(&p, true, &out->granularity_recommended);
    if (st != GPUMEM_OK) return st;
  }
  return GPUMEM_OK;
}

static gpumem_status cuda_mem_info(int device, size_t *free_bytes, size_t *total_bytes) {
  CHECK_DEVICE(device);
  RT_ON_DEVICE(device, cudaMemGetInfo(free_bytes, total_bytes), "cudaMemGetInfo", "device=%d",
               device);
  return GPUMEM_OK;
}

/* NVML's handle for a CUDA device: by its UUID, "GPU-" first, then "MIG-"
 * (the bytes are the same; only the prefix differs). */
static int nvml_handle(const gm_nvml_ops *nv, const unsigned char uuid[16], gm_nvml_device *out) {
  char text[GM_UUID_TEXT_MAX];
  gm_uuid_format(uuid, "GPU-", text, sizeof text);
  int rc = nv->device_get_handle_by_uuid(text, out);
  if (rc == GM_NVML_ERROR_NOT_FOUND) {
    gm_uuid_format(uuid, "MIG-", text, sizeof text);
    rc = nv->device_get_handle_by_uuid(text, out);
  }
  return rc;
}

static gpumem_status cuda_mem_probe(int device, size_t *free_bytes, size_t *total_bytes) {
  CHECK_DEVICE(device);
  CUdevice dev;
  unsigned int flags = 0;
  int active = 0;
  CU(cuDeviceGet, (&dev, device), "ordinal=%d", device);
  CU(cuDevicePrimaryCtxGetState, (dev, &flags, &active), "device=%d", device);
  if (active) return cuda_mem_info(device, free_bytes, total_bytes); /* creates nothing */
  size_t total = 0;
  CUuuid uuid;
  CU(cuDeviceTotalMem, (&total, dev), "device=%d", device);
  CU(cuDeviceGetUuid, (&uuid, dev), "device=%d", device);
  const char *why = NULL;
  const gm_nvml_ops *nv = gm_nvml(&why);
  if (nv == NULL) {
    return gm_error(GPUMEM_ERR_NOT_SUPPORTED,
                    "free memory of device %d cannot be read without creating its CUDA context: "
                    "it has none yet and NVML is unavailable (%s)",
                    device, why);
  }
  gm_nvml_device h = NULL;
  gm_nvml_memory m;
  char buf[32];
  int rc = nvml_handle(nv, (const unsigned char *)uuid.bytes, &h);
  if (rc == GM_NVML_SUCCESS) rc = gm_nvml_device_memory(h, &m);
  if (rc != GM_NVML_SUCCESS) {
    return gm_error(GPUMEM_ERR_NOT_SUPPORTED,
                    "free memory of device %d cannot be read without creating its CUDA context: "
                    "it has none yet and NVML cannot tell (%s)",
                    device, gm_nvml_error(nv, rc, buf, sizeof buf));
  }
  *total_bytes = total;
  *free_bytes = m.free < total ? (size_t)m.free : total;
  return GPUMEM_OK;
}

static gpumem_status cuda_p2p_attrs(int src, int dst, gm_p2p_attrs *out) {
  CHECK_DEVICE(src);
  CHECK_DEVICE(dst);
  memset(out, 0, sizeof *out);
  if (src == dst) {
    out->access = out->native_atomics = true;
    return GPUMEM_OK;
  }
  CUdevice s, d;
  CU(cuDeviceGet, (&s, src), "ordinal=%d", src);
  CU(cuDeviceGet, (&d, dst), "ordinal=%d", dst);
  int v = 0;
  CU(cuDeviceGetP2PAttribute, (&v, CU_DEVICE_P2P_ATTRIBUTE_ACCESS_SUPPORTED, s, d),
     "ACCESS_SUPPORTED, %d, %d", src, dst);
  out->access = v != 0;
  CU(cuDeviceGetP2PAttribute, (&v, CU_DEVICE_P2P_ATTRIBUTE_NATIVE_ATOMIC_SUPPORTED, s, d),
     "NATIVE_ATOMIC_SUPPORTED, %d, %d", src, dst);
  out->native_atomics = v != 0;
  CU(cuDeviceGetP2PAttribute, (&v, CU_DEVICE_P2P_ATTRIBUTE_PERFORMANCE_RANK, s, d),
     "PERFORMANCE_RANK, %d, %d", src, dst);
  out->performance_rank = v;
  return GPUMEM_OK;
}

/* ---- virtual memory ---- */

/* Alignment 0 means "the granularity" to gm_be_va_reserve and
 * gpumem_vmm_reserve, but "default alignment" to cuMemAddressReserve (cuda.h:
 * "the alignment must be a power of two or zero for default alignment"),
 * which is not promised to be any device's granularity, while cuMemMap needs
 * "ptr ... a multiple of" it. So 0 becomes the largest minimum granularity of
 * the visible devices (a device whose granularity cannot be read, one without
 * VMM, cannot map there anyway and is left out). */
static gpumem_status cuda_va_reserve(size_t size, size_t alignment, uintptr_t *va) {
  if (alignment == 0) {
    for (int d = 0; d < device_count; d++) {
      gpumem_phys_props props = {d, GPUMEM_HANDLE_NONE, false};
      size_t g = 0;
      if (cuda_granularity(&props, false, &g) != GPUMEM_OK) {
        gm_error_discard();
        continue;
      }
      if (g > alignment) alignment = g;
    }
  }
  CUdeviceptr p = 0;
  CU_VMM(-1, cuMemAddressReserve, (&p, size, alignment, 0, 0), "size=%zu, alignment=%zu", size,
         alignment);
  *va = (uintptr_t)p;
  return GPUMEM_OK;
}

static gpumem_status cuda_va_free(uintptr_t va, size_t size) {
  CU_VMM(-1, cuMemAddressFree, ((CUdeviceptr)va, size), "0x%" PRIxPTR ", size=%zu", va, size);
  return GPUMEM_OK;
}

static gpumem_status cuda_phys_create(const gpumem_phys_props *props, size_t size,
                                      gpumem_phys_t *out) {
  CHECK_DEVICE(props->device);
  CUmemAllocationProp prop = make_prop(props);
  CUmemGenericAllocationHandle h = 0;
  /* The context of the device allocated on: created, and bound on a thread
   * that has none (see the essay). */
  ctx_guard g;
  gpumem_status st = ctx_enter(props->device, true, &g);
  if (st != GPUMEM_OK) return st;
  CUresult r = pfn_cuMemCreate(&h, size, &prop, 0);
  ctx_exit(&g);
  if (r != CUDA_SUCCESS) {
    return cu_fail(r, "cuMemCreate", "size=%zu, device=%d, handle types=0x%x, compression=%d", size,
                   props->device, props->handle_types, (int)props->compression);
  }
  *out = (gpumem_phys_t)h;
  return GPUMEM_OK;
}

static gpumem_status cuda_phys_release(gpumem_phys_t h) {
  CU_VMM(handle_device(h), cuMemRelease, ((CUmemGenericAllocationHandle)h), "0x%" PRIx64, h);
  return GPUMEM_OK;
}

static gpumem_status cuda_phys_props(gpumem_phys_t h, gpumem_phys_props *out) {
  CUmemAllocationProp prop;
  memset(&prop, 0, sizeof prop);
  CU_VMM(-1, cuMemGetAllocationPropertiesFromHandle, (&prop, (CUmemGenericAllocationHandle)h),
         "0x%" PRIx64, h);
  out->device = prop.location.id;
  out->handle_types = (unsigned)prop.requestedHandleTypes;
  out->compression = prop.allocFlags.compressionType == CU_MEM_ALLOCATION_COMP_GENERIC;
  return GPUMEM_OK;
}

static gpumem_status cuda_map(uintptr_t va, size_t size, size_t offset, gpumem_phys_t h) {
  CU_VMM(handle_device(h), cuMemMap,
         ((CUdeviceptr)va, size, offset, (CUmemGenericAllocationHandle)h, 0),
         "0x%" PRIxPTR ", size=%zu, offset=%zu, handle=0x%" PRIx64, va, size, offset, h);
  return GPUMEM_OK;
}

static gpumem_status cuda_unmap(uintptr_t va, size_t size) {
  CU_VMM(-1, cuMemUnmap, ((CUdeviceptr)va, size), "0x%" PRIxPTR ", size=%zu", va, size);
  return GPUMEM_OK;
}

static gpumem_status cuda_set_access(uintptr_t va, size_t size, const gpumem_access_desc *desc,
                                     size_t count) {
  CUmemAccessDesc d[GPUMEM_MAX_DEVICES];
  for (size_t i = 0; i < count; i++) {
    CHECK_DEVICE(desc[i].device);
    memset(&d[i], 0, sizeof d[i]);
    d[i].location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    d[i].location.id = desc[i].device;
    d[i].flags = (CUmemAccess_flags)desc[i].flags;
  }
  CU_VMM(desc[0].device, cuMemSetAccess, ((CUdeviceptr)va, size, d, count),
         "0x%" PRIxPTR ", size=%zu, %zu descriptor(s), first device %d", va, size, count,
         desc[0].device);
  return GPUMEM_OK;
}

static gpumem_status cuda_get_access(uintptr_t va, int device, gpumem_access_flags *out) {
  CHECK_DEVICE(device);
  CUmemLocation loc = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = device};
  unsigned long long flags = 0;
  CU_VMM(device, cuMemGetAccess, (&flags, &loc, (CUdeviceptr)va), "device=%d, 0x%" PRIxPTR, device,
         va);
  *out = (gpumem_access_flags)flags;
  return GPUMEM_OK;
}

static gpumem_status cuda_export(gpumem_phys_t h, gpumem_handle_type type,
                                 gpumem_shareable_handle *out) {
  memset(out, 0, sizeof *out);
  out->type = type;
  out->fd = -1;
  if (type == GPUMEM_HANDLE_POSIX_FD) {
    int fd = -1;
    CU_VMM(handle_device(h), cuMemExportToShareableHandle,
           (&fd, (CUmemGenericAllocationHandle)h, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, 0),
           "0x%" PRIx64 ", POSIX_FILE_DESCRIPTOR", h);
    out->fd = fd;
  } else {
    CUmemFabricHandle fh;
    CU_VMM(handle_device(h), cuMemExportToShareableHandle,
           (&fh, (CUmemGenericAllocationHandle)h, CU_MEM_HANDLE_TYPE_FABRIC, 0),
           "0x%" PRIx64 ", FABRIC", h);
    _Static_assert(sizeof fh.data == sizeof out->fabric, "fabric handle size");
    memcpy(out->fabric, fh.data, sizeof out->fabric);
  }
  return GPUMEM_OK;
}

static gpumem_status cuda_import(const gpumem_shareable_handle *in, gpumem_phys_t *out) {
  CUmemGenericAllocationHandle h = 0;
  if (in->type == GPUMEM_HANDLE_POSIX_FD) {
    CU_VMM(-1, cuMemImportFromShareableHandle,
           (&h, (void *)(uintptr_t)in->fd, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR),
           "fd=%d, POSIX_FILE_DESCRIPTOR", in->fd);
  } else {
    CUmemFabricHandle fh;
    memcpy(fh.data, in->fabric, sizeof fh.data);
    CU_VMM(-1, cuMemImportFromShareableHandle, (&h, &fh, CU_MEM_HANDLE_TYPE_FABRIC), "FABRIC");
  }
  *out = (gpumem_phys_t)h;
  return GPUMEM_OK;
}

/* ---- streams, events, copies ---- */

static gpumem_status cuda_stream_create(int device, unsigned flags, gpumem_stream_t *out) {
  CHECK_DEVICE(device);
  cudaStream_t s = NULL;
  unsigned f = flags & GM_STREAM_BLOCKING ? cudaStreamDefault : cudaStreamNonBlocking;
  RT_ON_DEVICE(device, cudaStreamCreateWithFlags(&s, f), "cudaStreamCreateWithFlags",
               "device=%d, flags=%u", device, f);
  *out = s;
  return GPUMEM_OK;
}

static gpumem_status cuda_stream_destroy(gpumem_stream_t s) {
  RT_ON(bind_stream, s, cudaStreamDestroy(s), "cudaStreamDestroy", "%p", (void *)s);
  return GPUMEM_OK;
}

static gpumem_status cuda_stream_synchronize(gpumem_stream_t s) {
  RT_ON(bind_stream, s, cudaStreamSynchronize(s), "cudaStreamSynchronize", "%p", (void *)s);
  return GPUMEM_OK;
}

/* A query's "not ready" is an answer, not an error. Asked through the
 * runtime, cudaErrorNotReady would become the thread's last runtime error
 * (the application's next cudaGetLastError() would report it), and clearing
 * it would also clear an earlier error the application had not read (the
 * runtime keeps one). So queries go through the driver (cuStreamQuery,
 * cuEventQuery), which leaves the runtime's error state alone. */
static gpumem_status cuda_stream_query(gpumem_stream_t s) {
  ctx_guard g;
  bind_stream(s, &g);
  CUresult r = pfn_cuStreamQuery((CUstream)s); /* cudaStreamLegacy/PerThread are CU_STREAM_* */
  ctx_exit(&g);
  if (r == CUDA_ERROR_NOT_READY) {
    return gm_error(GPUMEM_ERR_NOT_READY, "stream %p still has work in flight", (void *)s);
  }
  if (r != CUDA_SUCCESS) return cu_fail(r, "cuStreamQuery", "%p", (void *)s);
  return GPUMEM_OK;
}

/* On the stream's context: the event may be another device's (cuda_runtime_api.h,
 * cudaStreamWaitEvent: "event may be from a different device than stream"). */
static gpumem_status cuda_stream_wait_event(gpumem_stream_t s, gpumem_event_t ev) {
  RT_ON(bind_stream, s, cudaStreamWaitEvent(s, ev, 0), "cudaStreamWaitEvent", "%p, %p", (void *)s,
        (void *)ev);
  return GPUMEM_OK;
}

static gpumem_status cuda_event_create(int device, gpumem_event_t *out) {
  CHECK_DEVICE(device);
  cudaEvent_t ev = NULL;
  RT_ON_DEVICE(device, cudaEventCreateWithFlags(&ev, cudaEventDisableTiming),
               "cudaEventCreateWithFlags", "device=%d", device);
  owner_set(ev, device);
  *out = ev;
  return GPUMEM_OK;
}

static gpumem_status cuda_event_destroy(gpumem_event_t ev) {
  RT_ON(bind_object, ev, cudaEventDestroy(ev), "cudaEventDestroy", "%p", (void *)ev);
  owner_forget(ev);
  return GPUMEM_OK;
}

/* On the stream's context, which is the event's ("event and stream must be
 * on the same CUDA context", cuda_runtime_api.h, cudaEventRecord). */
static gpumem_status cuda_event_record(gpumem_event_t ev, gpumem_stream_t s) {
  RT_ON(bind_stream, s, cudaEventRecord(ev, s), "cudaEventRecord", "%p, %p", (void *)ev, (void *)s);
  return GPUMEM_OK;
}

static gpumem_status cuda_event_query(gpumem_event_t ev) {
  ctx_guard g;
  bind_object(ev, &g);
  CUresult r = pfn_cuEventQuery((CUevent)ev); /* as in cuda_stream_query */
  ctx_exit(&g);
  if (r == CUDA_ERROR_NOT_READY) {
    return gm_error(GPUMEM_ERR_NOT_READY, "the work captured by event %p is not complete",
                    (void *)ev);
  }
  if (r != CUDA_SUCCESS) return cu_fail(r, "cuEventQuery", "%p", (void *)ev);
  return GPUMEM_OK;
}

static gpumem_status cuda_event_synchronize(gpumem_event_t ev) {
  RT_ON(bind_object, ev, cudaEventSynchronize(ev), "cudaEventSynchronize", "%p", (void *)ev);
  return GPUMEM_OK;
}

static gpumem_status cuda_device_synchronize(int device) {
  CHECK_DEVICE(device);
  RT_ON_DEVICE(device, cudaDeviceSynchronize(), "cudaDeviceSynchronize", "device=%d", device);
  return GPUMEM_OK;
}

static gpumem_status cuda_memcpy(void *dst, const void *src, size_t size, gpumem_stream_t s) {
  RT_ON(bind_stream, s, cudaMemcpyAsync(dst, src, size, cudaMemcpyDefault, s), "cudaMemcpyAsync",
        "%p, %p, %zu, Default, %p", dst, src, size, (void *)s);
  return GPUMEM_OK;
}

static gpumem_status cuda_memset(void *dst, int value, size_t size, gpumem_stream_t s) {
  RT_ON(bind_stream, s, cudaMemsetAsync(dst, value, size, s), "cudaMemsetAsync", "%p, %d, %zu, %p",
        dst, value, size, (void *)s);
  return GPUMEM_OK;
}

static gpumem_status cuda_launch_host_func(gpumem_stream_t s, gpumem_host_fn fn, void *arg) {
  RT_ON(bind_stream, s, cudaLaunchHostFunc(s, fn, arg), "cudaLaunchHostFunc", "%p, %p", (void *)s,
        arg);
  return GPUMEM_OK;
}

/* stream_id and stream_is_capturing run on every pool allocation and free
 * (src/pool.c), cache hits included: for a stream that is not special they
 * ask the driver (CU_ON_STREAM), which creates no context and needs no check
 * first, and costs less than the runtime call; the runtime's
 * cudaStreamGetId and cudaStreamIsCapturing return what these return (the
 * runtime stream is the driver's CUstream). A failure there is not left as
 * the thread's last runtime error (pool.c probes streams that may be gone). */
static gpumem_status cuda_stream_id(gpumem_stream_t s, uint64_t *out) {
  unsigned long long id = 0;
  if (special_stream(s)) {
    RT(cudaStreamGetId, (s, &id), "%p", (void *)s);
  } else {
    CU_ON_STREAM(s, cuStreamGetId, ((CUstream)s, &id), "%p", (void *)s);
  }
  *out = (uint64_t)id;
  return GPUMEM_OK;
}

static gpumem_status cuda_stream_device(gpumem_stream_t s, int *out) {
  RT_ON(bind_stream, s, cudaStreamGetDevice(s, out), "cudaStreamGetDevice", "%p", (void *)s);
  return GPUMEM_OK;
}

static gpumem_status cuda_stream_capture(gpumem_stream_t s, bool begin) {
  if (begin) {
    RT_ON(bind_stream, s, cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal),
          "cudaStreamBeginCapture", "%p, Global", (void *)s);
    return GPUMEM_OK;
  }
  cudaGraph_t graph = NULL;
  ctx_guard g;
  bind_stream(s, &g);
  cudaError_t e = cudaStreamEndCapture(s, &graph);
  if (graph != NULL) cudaGraphDestroy(graph);
  ctx_exit(&g);
  if (e != cudaSuccess) return rt_fail(e, "cudaStreamEndCapture", "%p", (void *)s);
  return GPUMEM_OK;
}

static gpumem_status cuda_stream_is_capturing(gpumem_stream_t s, bool *out) {
  if (special_stream(s)) {
    enum cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
    RT(cudaStreamIsCapturing, (s, &status), "%p", (void *)s);
    *out = status != cudaStreamCaptureStatusNone;
    return GPUMEM_OK;
  }
  CUstreamCaptureStatus status = CU_STREAM_CAPTURE_STATUS_NONE;
  CU_ON_STREAM(s, cuStreamIsCapturing, ((CUstream)s, &status), "%p", (void *)s);
  *out = status != CU_STREAM_CAPTURE_STATUS_NONE;
  return GPUMEM_OK;
}

static gpumem_status cuda_stream_state(gpumem_stream_t s, uint64_t *id, bool *capturing) {
  gpumem_status st = cuda_stream_is_capturing(s, capturing);
  return st != GPUMEM_OK ? st : cuda_stream_id(s, id);
}

/* ---- plain device allocations ---- */

static gpumem_status cuda_dev_malloc(int device, size_t size, void **out) {
  CHECK_DEVICE(device);
  RT_ON_DEVICE(device, cudaMalloc(out, size), "cudaMalloc", "size=%zu, device=%d", size, device);
  return GPUMEM_OK;
}

static gpumem_status cuda_dev_free(void *ptr) {
  /* cudaFree on a thread without a context would bind device 0's (creating
   * it): free on the pointer's own device. */
  int device = pointer_device(ptr);
  if (device < 0) {
    RT(cudaFree, (ptr), "%p", ptr);
    return GPUMEM_OK;
  }
  RT_ON_DEVICE(device, cudaFree(ptr), "cudaFree", "%p", ptr);
  return GPUMEM_OK;
}

/* ---- pools ---- */

/* Run a runtime call that makes or finds a pool of `device`, with that
 * device's primary context created and, on a thread with none, bound
 * (as phys_create does); on failure record and return. */
#define RT_FOR_DEVICE(device, call, name, ...)                    \
  do {                                                            \
    ctx_guard g_;                                                 \
    gpumem_status s_ = ctx_enter((device), true, &g_);            \
    if (s_ != GPUMEM_OK) return s_;                               \
    cudaError_t e_ = (call);                                      \
    ctx_exit(&g_);                                                \
    if (e_ != cudaSuccess) return rt_fail(e_, name, __VA_ARGS__); \
  } while (0)

static gpumem_status cuda_pool_create(const gm_pool_props *props, gpumem_native_pool_t *out) {
  CHECK_DEVICE(props->device);
  struct cudaMemPoolProps p;
  memset(&p, 0, sizeof p);
  p.allocType = cudaMemAllocationTypePinned;
  p.handleTypes = (enum cudaMemAllocationHandleType)props->handle_types;
  p.location.type = cudaMemLocationTypeDevice;
  p.location.id = props->device;
  p.maxSize = props->max_size;
  cudaMemPool_t pool = NULL;
  RT_FOR_DEVICE(props->device, cudaMemPoolCreate(&pool, &p), "cudaMemPoolCreate",
                "device=%d, handle types=0x%x, max size=%zu", props->device, props->handle_types,
                props->max_size);
  owner_set(pool, props->device);
  *out = pool;
  return GPUMEM_OK;
}

static gpumem_status cuda_pool_destroy(gpumem_native_pool_t pool) {
  RT_ON(bind_object, pool, cudaMemPoolDestroy(pool), "cudaMemPoolDestroy", "%p", (void *)pool);
  owner_forget(pool);
  return GPUMEM_OK;
}

static gpumem_status cuda_pool_default(int device, gpumem_native_pool_t *out) {
  CHECK_DEVICE(device);
  cudaMemPool_t pool = NULL;
  RT_FOR_DEVICE(device, cudaDeviceGetDefaultMemPool(&pool, device), "cudaDeviceGetDefaultMemPool",
                "device=%d", device);
  owner_set(pool, device);
  *out = pool;
  return GPUMEM_OK;
}

static const enum cudaMemPoolAttr pool_attrs[GM_POOL_ATTR_COUNT] = {
    [GM_POOL_REUSE_FOLLOW_EVENT_DEPENDENCIES] = cudaMemPoolReuseFollowEventDependencies,
    [GM_POOL_REUSE_ALLOW_OPPORTUNISTIC] = cudaMemPoolReuseAllowOpportunistic,
    [GM_POOL_REUSE_ALLOW_INTERNAL_DEPENDENCIES] = cudaMemPoolReuseAllowInternalDependencies,
    [GM_POOL_RELEASE_THRESHOLD] = cudaMemPoolAttrReleaseThreshold,
    [GM_POOL_RESERVED_MEM_CURRENT] = cudaMemPoolAttrReservedMemCurrent,
    [GM_POOL_RESERVED_MEM_HIGH] = cudaMemPoolAttrReservedMemHigh,
    [GM_POOL_USED_MEM_CURRENT] = cudaMemPoolAttrUsedMemCurrent,
    [GM_POOL_USED_MEM_HIGH] = cudaMemPoolAttrUsedMemHigh,
};

/* The reuse policies are int-valued; the rest are cuuint64_t. */
static bool attr_is_int(gm_pool_attr a) {
  return a <= GM_POOL_REUSE_ALLOW_INTERNAL_DEPENDENCIES;
}

static gpumem_status cuda_pool_set_attr(gpumem_native_pool_t pool, gm_pool_attr a, uint64_t value) {
  int iv = (int)value;
  cuuint64_t uv = value;
  void *p = attr_is_int(a) ? (void *)&iv : (void *)&uv;
  RT_ON(bind_object, pool, cudaMemPoolSetAttribute(pool, pool_attrs[a], p),
        "cudaMemPoolSetAttribute", "%p, attribute %d, %" PRIu64, (void *)pool, (int)pool_attrs[a],
        value);
  return GPUMEM_OK;
}

static gpumem_status cuda_pool_get_attr(gpumem_native_pool_t pool, gm_pool_attr a,
                                        uint64_t *value) {
  int iv = 0;
  cuuint64_t uv = 0;
  void *p = attr_is_int(a) ? (void *)&iv : (void *)&uv;
  RT_ON(bind_object, pool, cudaMemPoolGetAttribute(pool, pool_attrs[a], p),
        "cudaMemPoolGetAttribute", "%p, attribute %d", (void *)pool, (int)pool_attrs[a]);
  *value = attr_is_int(a) ? (uint64_t)iv : (uint64_t)uv;
  return GPUMEM_OK;
}

static gpumem_status cuda_pool_set_access(gpumem_native_pool_t pool, const gpumem_access_desc *desc,
                                          size_t count) {
  struct cudaMemAccessDesc d[GPUMEM_MAX_DEVICES];
  for (size_t i = 0; i < count; i++) {
    CHECK_DEVICE(desc[i].device);
    memset(&d[i], 0, sizeof d[i]);
    d[i].location.type = cudaMemLocationTypeDevice;
    d[i].location.id = desc[i].device;
    d[i].flags = (enum cudaMemAccessFlags)desc[i].flags;
  }
  RT_ON(bind_object, pool, cudaMemPoolSetAccess(pool, d, count), "cudaMemPoolSetAccess",
        "%p, %zu descriptor(s)", (void *)pool, count);
  return GPUMEM_OK;
}

static gpumem_status cuda_pool_get_access(gpumem_native_pool_t pool, int device,
                                          gpumem_access_flags *out) {
  CHECK_DEVICE(device);
  struct cudaMemLocation loc = {.type = cudaMemLocationTypeDevice, .id = device};
  enum cudaMemAccessFlags flags = cudaMemAccessFlagsProtNone;
  RT_ON(bind_object, pool, cudaMemPoolGetAccess(&flags, pool, &loc), "cudaMemPoolGetAccess",
        "%p, device=%d", (void *)pool, device);
  *out = (gpumem_access_flags)flags;
  return GPUMEM_OK;
}

static gpumem_status cuda_pool_trim(gpumem_native_pool_t pool, size_t keep) {
  RT_ON(bind_object, pool, cudaMemPoolTrimTo(pool, keep), "cudaMemPoolTrimTo", "%p, keep=%zu",
        (void *)pool, keep);
  return GPUMEM_OK;
}

/* On the stream's context: "the specified memory pool may be from a device
 * different than that of the specified hStream" (cuda_runtime_api.h,
 * cudaMallocFromPoolAsync). */
static gpumem_status cuda_pool_alloc(gpumem_native_pool_t pool, size_t size, gpumem_stream_t s,
                                     void **out) {
  RT_ON(bind_stream, s, cudaMallocFromPoolAsync(out, size, pool, s), "cudaMallocFromPoolAsync",
        "size=%zu, pool=%p, stream=%p", size, (void *)pool, (void *)s);
  return GPUMEM_OK;
}

static gpumem_status cuda_pool_free(void *ptr, gpumem_stream_t s) {
  RT_ON(bind_stream, s, cudaFreeAsync(ptr, s), "cudaFreeAsync", "%p, stream=%p", ptr, (void *)s);
  return GPUMEM_OK;
}

static gpumem_status cuda_pool_export(gpumem_native_pool_t pool, gpumem_handle_type type,
                                      gpumem_shareable_handle *out) {
  if (type != GPUMEM_HANDLE_POSIX_FD) {
    return gm_error(GPUMEM_ERR_NOT_SUPPORTED, "pool export: only POSIX fd handles are supported");
  }
  memset(out, 0, sizeof *out);
  int fd = -1;
  RT_ON(bind_object, pool,
        cudaMemPoolExportToShareableHandle(&fd, pool, cudaMemHandleTypePosixFileDescriptor, 0),
        "cudaMemPoolExportToShareableHandle", "%p, PosixFileDescriptor", (void *)pool);
  out->type = GPUMEM_HANDLE_POSIX_FD;
  out->fd = fd;
  return GPUMEM_OK;
}

/* The seam gives no device here and CUDA none for an imported pool: its
 * calls bind, on a thread with none, the context this backend needed last
 * (bind_object of an unknown object). */
static gpumem_status cuda_pool_import(const gpumem_shareable_handle *in,
                                      gpumem_native_pool_t *out) {
  if (in->type != GPUMEM_HANDLE_POSIX_FD) {
    return gm_error(GPUMEM_ERR_NOT_SUPPORTED, "pool import: only POSIX fd handles are supported");
  }
  cudaMemPool_t pool = NULL;
  RT_ON(bind_object, NULL,
        cudaMemPoolImportFromShareableHandle(&pool, (void *)(uintptr_t)in->fd,
                                             cudaMemHandleTypePosixFileDescriptor, 0),
        "cudaMemPoolImportFromShareableHandle", "fd=%d", in->fd);
  *out = pool;
  return GPUMEM_OK;
}

static gpumem_status cuda_pool_export_ptr(void *ptr, gm_pool_ptr_export *out) {
  struct cudaMemPoolPtrExportData d;
  RT_ON(bind_pointer, ptr, cudaMemPoolExportPointer(&d, ptr), "cudaMemPoolExportPointer", "%p",
        ptr);
  _Static_assert(sizeof d == sizeof *out, "pointer export data size");
  memcpy(out, &d, sizeof d);
  return GPUMEM_OK;
}

static gpumem_status cuda_pool_import_ptr(gpumem_native_pool_t pool, const gm_pool_ptr_export *data,
                                          void **out) {
  struct cudaMemPoolPtrExportData d;
  memcpy(&d, data, sizeof d);
  RT_ON(bind_object, pool, cudaMemPoolImportPointer(out, pool, &d), "cudaMemPoolImportPointer",
        "pool=%p", (void *)pool);
  return GPUMEM_OK;
}

/* MIG facts come from NVML (mig.c), not from the CUDA driver. */
static gpumem_status cuda_mig_describe(int device, gpumem_device_info *info) {
  GM_UNUSED(device);
  GM_UNUSED(info);
  return gm_error(GPUMEM_ERR_NOT_SUPPORTED, "the CUDA backend's MIG facts come from NVML");
}

static gpumem_status cuda_mig_node(gpumem_mig_gpu *gpus, size_t max, size_t *count,
                                   bool *from_layout) {
  GM_UNUSED(gpus);
  GM_UNUSED(max);
  GM_UNUSED(count);
  GM_UNUSED(from_layout);
  return gm_error(GPUMEM_ERR_NOT_SUPPORTED, "the CUDA backend's GPU list comes from NVML");
}

const gm_backend_ops gm_backend_cuda = {
    .name = "cuda",
    .kind = GM_BACKEND_CUDA,
    .open = cuda_open,
    .close = cuda_close,
    .versions = cuda_versions,
    .device_count = cuda_device_count,
    .device_props = cuda_device_props,
    .mem_info = cuda_mem_info,
    .mig_describe = cuda_mig_describe,
    .mig_node = cuda_mig_node,
    .mem_probe = cuda_mem_probe,
    .granularity = cuda_granularity,
    .p2p_attrs = cuda_p2p_attrs,
    .va_reserve = cuda_va_reserve,
    .va_free = cuda_va_free,
    .phys_create = cuda_phys_create,
    .phys_release = cuda_phys_release,
    .phys_props = cuda_phys_props,
    .map = cuda_map,
    .unmap = cuda_unmap,
    .set_access = cuda_set_access,
    .get_access = cuda_get_access,
    .export_handle = cuda_export,
    .import_handle = cuda_import,
    .stream_create = cuda_stream_create,
    .stream_destroy = cuda_stream_destroy,
    .stream_synchronize = cuda_stream_synchronize,
    .stream_query = cuda_stream_query,
    .stream_wait_event = cuda_stream_wait_event,
    .event_create = cuda_event_create,
    .event_destroy = cuda_event_destroy,
    .event_record = cuda_event_record,
    .event_query = cuda_event_query,
    .event_synchronize = cuda_event_synchronize,
    .device_synchronize = cuda_device_synchronize,
    .memcpy = cuda_memcpy,
    .memset = cuda_memset,
    .launch_host_func = cuda_launch_host_func,
    .stream_id = cuda_stream_id,
    .stream_device = cuda_stream_device,
    .stream_capture = cuda_stream_capture,
    .stream_is_capturing = cuda_stream_is_capturing,
    .stream_state = cuda_stream_state,
    .dev_malloc = cuda_dev_malloc,
    .dev_free = cuda_dev_free,
    .pool_create = cuda_pool_create,
    .pool_destroy = cuda_pool_destroy,
    .pool_default = cuda_pool_default,
    .pool_set_attr = cuda_pool_set_attr,
    .pool_get_attr = cuda_pool_get_attr,
    .pool_set_access = cuda_pool_set_access,
    .pool_get_access = cuda_pool_get_access,
    .pool_trim = cuda_pool_trim,
    .pool_alloc = cuda_pool_alloc,
    .pool_free = cuda_pool_free,
    .pool_export = cuda_pool_export,
    .pool_import = cuda_pool_import,
    .pool_export_ptr = cuda_pool_export_ptr,
    .pool_import_ptr = cuda_pool_import_ptr,
};
