/* gpumem/types.h: handle types shared by every header.
 *
 * Streams and events are CUDA's own: gpumem_stream_t is the same type as
 * cudaStream_t and CUstream (a pointer to struct CUstream_st), so a CUDA
 * stream is passed without a cast and these headers need no CUDA header.
 * NULL is the legacy default stream. Under the host backend the same types
 * name the backend's emulated streams and events.
 */
#ifndef GPUMEM_TYPES_H
#define GPUMEM_TYPES_H

#include <stddef.h>
#include <stdint.h>

/** A stream: cudaStream_t / CUstream. */
typedef struct CUstream_st *gpumem_stream_t;
/** An event: cudaEvent_t / CUevent. */
typedef struct CUevent_st *gpumem_event_t;
/** A function a stream runs on the host (cudaHostFn_t). */
typedef void (*gpumem_host_fn)(void *arg);
/** A CUDA memory pool: cudaMemPool_t / CUmemoryPool. */
typedef struct CUmemPoolHandle_st *gpumem_native_pool_t;

/** A stream-ordered pool (pool.h), opaque. */
typedef struct gpumem_pool gpumem_pool_t;
/** A multi-GPU arena (arena.h), opaque. */
typedef struct gpumem_arena gpumem_arena_t;
/** A growable buffer (buffer.h), opaque. */
typedef struct gpumem_buffer gpumem_buffer_t;

/** Most devices the library addresses (ordinals 0..GPUMEM_MAX_DEVICES-1). */
#define GPUMEM_MAX_DEVICES 64

#endif
