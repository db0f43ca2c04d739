/* host.h: what the host backend's files share (host.c, host_pool.c). */
#ifndef GPUMEM_SRC_BACKEND_HOST_H
#define GPUMEM_SRC_BACKEND_HOST_H

#include "backend.h"
#include "gpumem/mig.h"

/* The host backend has one lock; every function below needs it held unless
 * it says otherwise. */
void gm_host_lock(void);
void gm_host_unlock(void);

int gm_host_device_count(void);
bool gm_host_device_valid(int device);
size_t gm_host_granularity(void);
/* May `device` access memory that lives on `owner`? */
bool gm_host_can_access(int device, int owner);
/* Charge `bytes` against a device's capacity: OUT_OF_MEMORY when it is used up. */
gpumem_status gm_host_charge(int device, size_t bytes, const char *what);
void gm_host_uncharge(int device, size_t bytes);

/* The device in the name of a memfd the host backend made with `prefix`
 * (names are "<prefix><device>"), or -1 if `fd` is not such a memfd. Works on
 * descriptors received from another process. A regular file whose name only
 * looks like one (".../memfd:gpumem-host-dev0") is not one: the fd must be a
 * memfd (it has seals to ask about). No lock needed. */
int gm_host_memfd_device(int fd, const char *prefix);

/* ---- contexts (host.c): CUDA's primary contexts, as the GPU would count them ----
 *
 * On a GPU each process holds at most one primary context per device (about
 * 0.5 GiB of device memory on an H100), created by the first call that needs
 * one there, and each thread has at most one current context. The host
 * backend records both, so that tests can assert which devices a sequence of
 * library calls would have created a context on, and that the caller's
 * current device is left as it was. No lock needed for any of these. */

/* Record that `device`'s primary context exists (as cudaSetDevice,
 * cudaInitDevice, cudaMalloc, cudaStreamCreate, cudaMemGetInfo,
 * cudaMemPoolCreate, cudaDeviceGetDefaultMemPool or cudaDeviceSynchronize on
 * that device would have created it). Ignores an invalid device. Every host
 * operation that would create one on the GPU calls it. */
void gm_host_context_touch(int device);
/* Whether `device`'s primary context was created since the backend opened. */
bool gm_host_context_created(int device);
/* The calling thread's current device as cudaGetDevice reports it: the device
 * it made current, or 0 when it never made one current (cudaGetDevice then
 * says 0 although no context is bound). */
int gm_host_current_device(void);
/* The calling thread's current device, or -1 when no context is current on
 * it (cuCtxGetCurrent would give NULL): the distinction cudaGetDevice hides. */
int gm_host_thread_device(void);
/* What cudaSetDevice(device) does: create the device's primary context and
 * make it current on the calling thread (tests use it to play an
 * application that chose its device). Ignores an invalid device. */
void gm_host_set_device(int device);
/* What a runtime call that needs a context does on the calling thread (for
 * example cudaStreamSynchronize(NULL), or any call made where the CUDA
 * backend does not switch to the object's own device): it acts on the
 * thread's current device; on a thread with none, the runtime selects device
 * 0, creates its primary context and leaves it current. Returns the device
 * acted on. */
int gm_host_runtime_device(void);

/* Check that every byte of [ptr, ptr+size) that lies in a reservation is
 * mapped with the access needed (read, or read-write when `write`); bytes
 * outside reservations are ordinary host memory. Takes the lock itself. */
gpumem_status gm_host_check_accessible(const void *ptr, size_t size, bool write, const char *what);

/* Is `ptr` emulated device memory (a reservation, a pool, a dev_malloc
 * block), as opposed to ordinary (pageable) host memory? Takes the lock. */
bool gm_host_is_device_memory(const void *ptr);
/* Does a live pool's range hold `ptr` (lock held)? */
bool gm_host_pool_holds(const void *ptr);
/* OK unless `ptr` is pool memory that `device` has no access to (an imported
 * pool before cudaMemPoolSetAccess), or [ptr, ptr+n) runs past the end of
 * its pool's mapping (INVALID_ARGUMENT). Takes the lock. */
gpumem_status gm_host_pool_check_access(const void *ptr, size_t n, int device, const char *what);

/* ---- streams and events (host_stream.c; they take their own lock, which
 * may be taken while the host backend's lock is held, never the reverse) ---- */

/* The handles CUDA gives the default streams (driver_types.h:
 * cudaStreamLegacy ((cudaStream_t)0x1), cudaStreamPerThread ((cudaStream_t)0x2)). */
#define GM_HOST_STREAM_LEGACY     ((gpumem_stream_t)(uintptr_t)1)
#define GM_HOST_STREAM_PER_THREAD ((gpumem_stream_t)(uintptr_t)2)

/* A point in a stream's work: reached when `seq` items have run. A point
 * holds a reference on its stream until released. seq UINT64_MAX: never
 * (work captured into a graph). */
struct host_stream;
typedef struct gm_host_point {
  struct host_stream *stream;
  uint64_t seq;
} gm_host_point;

typedef enum gm_host_reuse {
  GM_HOST_REUSE_NO,         /* not by this stream, now */
  GM_HOST_REUSE_NOW,        /* ordered already, or known complete */
  GM_HOST_REUSE_AFTER_WAIT, /* after queueing a wait on the point (internal dependency) */
} gm_host_reuse;

void gm_host_streams_open(void);
/* Wait until every stream has run what it was given (no lock held). */
void gm_host_streams_drain(void);
/* Stop every worker and free every stream and event (at close, after drain). */
void gm_host_streams_close(void);
/* In a forked child (libgpumem's finalize there): the workers were the
 * parent's threads and did not come along; forget them and the work they had
 * queued, so that drain and close do not wait for them. */
void gm_host_streams_forget_workers(void);

gpumem_status gm_host_stream_create(int device, unsigned flags, gpumem_stream_t *out);
gpumem_status gm_host_stream_destroy(gpumem_stream_t stream);
gpumem_status gm_host_stream_synchronize(gpumem_stream_t stream);
gpumem_status gm_host_stream_query(gpumem_stream_t stream);
gpumem_status gm_host_stream_wait_event(gpumem_stream_t stream, gpumem_event_t event);
gpumem_status gm_host_event_create(int device, gpumem_event_t *out);
gpumem_status gm_host_event_destroy(gpumem_event_t event);
gpumem_status gm_host_event_record(gpumem_event_t event, gpumem_stream_t stream);
gpumem_status gm_host_event_query(gpumem_event_t event);
gpumem_status gm_host_event_synchronize(gpumem_event_t event);
gpumem_status gm_host_device_synchronize(int device);
gpumem_status gm_host_memcpy(void *dst, const void *src, size_t size, gpumem_stream_t stream);
gpumem_status gm_host_memset(void *dst, int value, size_t size, gpumem_stream_t stream);
gpumem_status gm_host_launch_host_func(gpumem_stream_t stream, gpumem_host_fn fn, void *arg);
gpumem_status gm_host_stream_id(gpumem_stream_t stream, uint64_t *out);
gpumem_status gm_host_stream_device(gpumem_stream_t stream, int *out);
/* Begin (begin true) or end the capture of a stream into a graph. */
gpumem_status gm_host_stream_capture(gpumem_stream_t stream, bool begin);
gpumem_status gm_host_stream_is_capturing(gpumem_stream_t stream, bool *out);
/* The stream's id and whether it is being captured, in one call, without the
 * lock when it can (the pool asks on every allocation and free). */
gpumem_status gm_host_stream_state(gpumem_stream_t stream, uint64_t *id, bool *capturing);

/* Queue a mark on `stream` (an item that does nothing, as a cudaFreeAsync
 * does nothing the host sees) and return the point where it runs (a new
 * reference): it completes after the work queued before it, and counts as
 * observed only after a synchronize or query. */
gpumem_status gm_host_stream_mark(gpumem_stream_t stream, gm_host_point *out);
void gm_host_point_release(gm_host_point *point);
/* Another reference to the point's stream, for a copy of the point. */
void gm_host_point_retain(const gm_host_point *point);
/* Has the point's work run (observed or not)? */
bool gm_host_point_done(const gm_host_point *point);
/* Has the host observed the point (a synchronize or a query that said done)? */
bool gm_host_point_observed(const gm_host_point *point);
/* May work on `stream` use memory freed at `point`, under the pool's reuse
 * policies (indexed by gm_pool_attr's three REUSE_ values)? */
gm_host_reuse gm_host_point_reuse(const gm_host_point *point, gpumem_stream_t stream,
                                  const uint64_t policy[3]);
/* Make later work on `stream` wait for `point` (an internal dependency). */
gpumem_status gm_host_stream_wait_point(gpumem_stream_t stream, const gm_host_point *point);

/* Pools (host_pool.c). */
gpumem_status gm_host_pool_create(const gm_pool_props *props, gpumem_native_pool_t *out);
gpumem_status gm_host_pool_destroy(gpumem_native_pool_t pool);
gpumem_status gm_host_pool_default(int device, gpumem_native_pool_t *out);
gpumem_status gm_host_pool_set_attr(gpumem_native_pool_t pool, gm_pool_attr attr, uint64_t value);
gpumem_status gm_host_pool_get_attr(gpumem_native_pool_t pool, gm_pool_attr attr, uint64_t *value);
gpumem_status gm_host_pool_set_access(gpumem_native_pool_t pool, const gpumem_access_desc *desc,
                                      size_t count);
gpumem_status gm_host_pool_get_access(gpumem_native_pool_t pool, int device,
                                      gpumem_access_flags *out);
gpumem_status gm_host_pool_trim(gpumem_native_pool_t pool, size_t keep_bytes);
gpumem_status gm_host_pool_alloc(gpumem_native_pool_t pool, size_t size, gpumem_stream_t stream,
                                 void **out);
gpumem_status gm_host_pool_free(void *ptr, gpumem_stream_t stream);
gpumem_status gm_host_pool_export(gpumem_native_pool_t pool, gpumem_handle_type type,
                                  gpumem_shareable_handle *out);
gpumem_status gm_host_pool_import(const gpumem_shareable_handle *in, gpumem_native_pool_t *out);
gpumem_status gm_host_pool_export_ptr(void *ptr, gm_pool_ptr_export *out);
gpumem_status gm_host_pool_import_ptr(gpumem_native_pool_t pool, const gm_pool_ptr_export *data,
                                      void **out);
/* Release cached pool memory above each pool's release threshold, as CUDA
 * does when a stream, event or device is synchronized (lock held). */
void gm_host_pools_synchronized(void);
/* Free the memory of destroyed pools whose last frees have run (the driver
 * does so by itself, without a synchronize); true if any was freed (lock
 * held). */
bool gm_host_pools_reap(void);
/* Destroy every pool, default pools included (lock held; at close). */
void gm_host_pools_close(void);

#endif
