/* gpumem/stream.h: streams, events, copies and fills on the active backend.
 *
 * These are the asynchronous primitives the library's allocators order their
 * work with, exposed so that tests, the benchmark and portable programs can
 * drive either backend: a stream here is a cudaStream_t under the CUDA
 * backend (created non-blocking on the named device), and an emulated stream
 * under the host backend, whose work runs later, on a worker thread, in
 * stream order, as on a GPU (see README, "The host backend"). Streams made by
 * the application with CUDA itself may be passed to every call. NULL (or
 * GPUMEM_STREAM_LEGACY) is the legacy default stream of the calling thread's
 * current device; GPUMEM_STREAM_PER_THREAD is cudaStreamPerThread.
 *
 * Thread safety: all calls may be made from any thread.
 */
#ifndef GPUMEM_STREAM_H
#define GPUMEM_STREAM_H

#include <stddef.h>

#include "gpumem/error.h"
#include "gpumem/export.h"
#include "gpumem/types.h"

GPUMEM_EXTERN_C_BEGIN

/** The legacy default stream, named explicitly (cudaStreamLegacy). */
#define GPUMEM_STREAM_LEGACY ((gpumem_stream_t)0x1)
/** The calling thread's default stream of its current device, which does not
 * synchronise with other streams (cudaStreamPerThread). */
#define GPUMEM_STREAM_PER_THREAD ((gpumem_stream_t)0x2)

/** Create a non-blocking stream on `device`. Errors: INVALID_ARGUMENT (NULL),
 * INVALID_DEVICE, NO_DEVICE. The caller's current device is unchanged. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_stream_create(int device, gpumem_stream_t *stream);
/** Destroy a stream made by gpumem_stream_create (not NULL). */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_stream_destroy(gpumem_stream_t stream);
/** Wait until all work on `stream` is done. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_stream_synchronize(gpumem_stream_t stream);
/** GPUMEM_OK when all work on `stream` is done, GPUMEM_ERR_NOT_READY if not. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_stream_query(gpumem_stream_t stream);
/** Make later work on `stream` wait for `event`. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_stream_wait_event(gpumem_stream_t stream,
                                                                   gpumem_event_t event);

/** Create an event (no timing) on `device`. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_event_create(int device, gpumem_event_t *event);
/** Destroy an event. Work it captured still completes; a stream waiting on
 * it still waits. Errors: INVALID_ARGUMENT (NULL or not an event). */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_event_destroy(gpumem_event_t event);
/** Capture the work queued on `stream` so far. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_event_record(gpumem_event_t event,
                                                              gpumem_stream_t stream);
/** GPUMEM_OK when the captured work is done, GPUMEM_ERR_NOT_READY if not. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_event_query(gpumem_event_t event);
/** Wait until the work captured by the event is done (at once for an event
 * never recorded). Errors: INVALID_ARGUMENT, and an error of that work. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_event_synchronize(gpumem_event_t event);

/** Wait until all work on `device` is done. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_device_synchronize(int device);

/** Copy `size` bytes on `stream`; either side may be host or device memory.
 * Asynchronous with respect to the host where the backend allows it:
 * synchronize the stream before reading the destination. size 0 is a no-op.
 * Errors: INVALID_ARGUMENT (NULL pointers; under the host backend also a range
 * not mapped or without access), NO_DEVICE. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_memcpy(void *dst, const void *src, size_t size,
                                                        gpumem_stream_t stream);
/** Set `size` bytes at `dst` to `value` on `stream`. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_memset(void *dst, int value, size_t size,
                                                        gpumem_stream_t stream);

/** Run `fn(arg)` on a host thread once the work queued on `stream` before it
 * is done; work queued after it waits for it to return (cudaLaunchHostFunc).
 * `fn` must not call libgpumem or CUDA. Tests use it as a kernel whose timing
 * they do not control: under the host backend it may read and write device
 * memory. Errors: INVALID_ARGUMENT (fn NULL, not a live stream), NO_DEVICE. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_launch_host_func(gpumem_stream_t stream,
                                                                  gpumem_host_fn fn, void *arg);

GPUMEM_EXTERN_C_END

#endif
