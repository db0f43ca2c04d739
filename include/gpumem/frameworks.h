/* gpumem/frameworks.h: libgpumem under PyTorch, CuPy and Numba.
 *
 * Frameworks load allocators from a shared library by symbol name, so these
 * entry points take a device ordinal instead of an allocator: libgpumem keeps
 * one allocator per device, made the first time a device is asked for, of
 * the kind GPUMEM_ALLOC_CONF describes (libgpumem's stream-ordered pool,
 * "gpumem-pool", when it is unset). Every entry point below that takes a
 * device uses that device's allocator, so memory from PyTorch, CuPy and
 * Numba in one process comes from one place and shows in one set of
 * statistics.
 *
 * PyTorch: torch.cuda.memory.CUDAPluggableAllocator(path_to_libgpumem,
 * "gpumem_torch_malloc", "gpumem_torch_free"), then
 * torch.cuda.memory.change_current_allocator(...) before the first CUDA
 * allocation of the process (the Python package's gpumem.torch.use() does
 * both). CuPy and Numba reach gpumem_framework_alloc/free through ctypes
 * (the Python package's gpumem.cupy.use() and gpumem.numba.GpumemEMM).
 *
 * Streams. A free is ordered on the stream given: with a stream-ordered
 * allocator (the pool) the block is reused by later work on that stream at
 * once and by other streams only after the free is known complete, as CUDA's
 * cudaFreeAsync. An allocator that is not stream-ordered (the arena) makes a
 * freed block reusable at once by any stream, so these entry points first
 * synchronize `stream` (the host waits for the work queued on it) and then
 * free: correct for PyTorch's and CuPy's stream semantics, at the price of a
 * blocking free.
 *
 * Thread safety: every function may be called from many threads at once,
 * except gpumem_framework_release, which must not overlap the others. The
 * per-device allocator is made once even when many threads ask for it first
 * at the same time. After fork, a child may not use the allocators of its
 * parent (see init.h).
 */
#ifndef GPUMEM_FRAMEWORKS_H
#define GPUMEM_FRAMEWORKS_H

#include <stddef.h>
#include <sys/types.h> /* ssize_t */

#include "gpumem/allocator.h"
#include "gpumem/error.h"
#include "gpumem/export.h"
#include "gpumem/stats.h"
#include "gpumem/types.h"

GPUMEM_EXTERN_C_BEGIN

/** PyTorch's CUDAPluggableAllocator allocation function: `size` bytes on
 * `device`, ordered on `stream` (a cudaStream_t). Returns NULL for size 0
 * (what PyTorch's own allocator gives an empty tensor; not an error), and
 * NULL on failure: a negative size, a device out of range, the allocator
 * cannot be made, out of memory. Each failure is logged at error level with
 * its sentence (PyTorch's interface has no status) and is also the
 * thread's gpumem_last_error(). */
GPUMEM_API void *gpumem_torch_malloc(ssize_t size, int device, gpumem_stream_t stream);

/** PyTorch's CUDAPluggableAllocator free function: `ptr` of `size` bytes,
 * allocated by gpumem_torch_malloc on `device` with `stream`. NULL is a
 * no-op (the pointer of a 0-byte allocation). A pointer the device's
 * allocator did not give, a wrong size or a wrong device is not freed and
 * not a crash: the error is logged at error level and stored as the thread's
 * gpumem_last_error(), and the allocator is unchanged. */
GPUMEM_API void gpumem_torch_free(void *ptr, ssize_t size, int device, gpumem_stream_t stream);

/** Allocate `size` bytes on `device` from its framework allocator, ordered on
 * `stream`; the allocator is made on first use. Errors: INVALID_ARGUMENT
 * (ptr NULL, size 0), INVALID_DEVICE (negative, past GPUMEM_MAX_DEVICES or
 * past the devices there are), OUT_OF_MEMORY, NO_DEVICE, and those of making
 * the allocator GPUMEM_ALLOC_CONF describes. On failure *ptr is untouched. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_framework_alloc(int device, size_t size,
                                                                 gpumem_stream_t stream,
                                                                 void **ptr);

/** Free `ptr` (of the `size` asked for) on `device`, ordered on `stream` (see
 * the top of this file for allocators that are not stream-ordered). Errors:
 * INVALID_ARGUMENT (ptr NULL; a wrong size, naming both: for a pool size
 * class any size of the class is right), INVALID_POINTER (a pointer this
 * device's allocator did not give, such as one of another device),
 * DOUBLE_FREE, INVALID_DEVICE, NOT_FOUND (nothing was ever allocated on
 * `device` through these functions), and the stream's error when waiting
 * for it fails. On failure nothing is freed. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_framework_free(int device, void *ptr, size_t size,
                                                                gpumem_stream_t stream);

/** A copy of `device`'s framework allocator (its name, flags, functions and
 * context), made now if there is none yet: to call it directly, or to learn
 * which kind GPUMEM_ALLOC_CONF chose. The copy stays valid until
 * gpumem_framework_release; do not destroy it. Errors: INVALID_ARGUMENT
 * (NULL, struct_size not set), INVALID_DEVICE, and those of making it. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_framework_allocator(int device,
                                                                     gpumem_allocator *allocator);

/** Statistics of `device`'s framework allocator (bytes in use and reserved,
 * their peaks, call counts since it was made). Makes nothing. Errors:
 * INVALID_ARGUMENT (NULL, struct_size not set), INVALID_DEVICE, NOT_FOUND
 * (no allocator on that device yet: nothing was allocated there). */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_framework_stats(int device, gpumem_stats *stats);

/** Give the cached memory of `device`'s framework allocator back to the
 * device (torch.cuda.empty_cache's counterpart); -1: every device. A device
 * without an allocator has nothing cached: GPUMEM_OK. Errors:
 * INVALID_DEVICE, and the driver's when releasing fails. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_framework_trim(int device);

/** Destroy every framework allocator that has nothing allocated; the next
 * allocation on that device makes a new one (reading GPUMEM_ALLOC_CONF
 * again). gpumem_finalize calls it. Errors: BUSY when a device's allocator
 * still has blocks allocated (the message names the device and the bytes;
 * that allocator stays, usable, the others are destroyed); the driver's
 * error when destroying fails (that allocator stays; call again). Not
 * concurrent with the other functions of this file. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_framework_release(void);

GPUMEM_EXTERN_C_END

#endif
