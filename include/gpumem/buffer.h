/* gpumem/buffer.h: a growable device buffer whose pointer never moves.
 *
 * A buffer reserves a large range of virtual addresses once (its maximum
 * size) and maps physical memory into it as it grows, like a std::vector
 * whose growth never copies: the device pointer from gpumem_buffer_data()
 * stays the same for the buffer's life, and bytes below the old size survive
 * every resize. Shrinking keeps the memory mapped (capacity stays) until
 * gpumem_buffer_shrink_to_fit(), which gives everything above the size
 * (rounded up to the chunk size) back to the device.
 *
 *   gpumem_buffer_config cfg = GPUMEM_BUFFER_CONFIG_INIT;
 *   cfg.device = 0;
 *   cfg.growth = GPUMEM_GROW_GEOMETRIC;
 *   gpumem_buffer_t *buf;
 *   gpumem_buffer_create(&cfg, &buf);
 *   gpumem_buffer_resize(buf, n * sizeof(double));   // data() unchanged ever after
 *
 * Each growth creates one physical allocation (a segment) for the added
 * capacity, maps it after the previous one, and grants access to every
 * device in the config. A growth that fails half way (out of memory, a driver
 * error) is undone: the buffer keeps its size, capacity and contents.
 *
 * Sharing: with handle type POSIX_FD (or FABRIC, which falls back to POSIX_FD
 * where the system refuses fabric handles), gpumem_buffer_send() passes the
 * buffer's layout and one file descriptor per segment over an AF_UNIX socket
 * and gpumem_buffer_receive() maps the same physical memory in the other
 * process.
 *
 * Thread safety: resize, reserve, shrink_to_fit and get_info of one buffer
 * may be called from several threads at once (they are serialized); size()
 * and data() never block and may be called at any time: data() is constant,
 * size() returns the size set by the last completed resize. Using memory
 * beyond the size another thread may be shrinking is the caller's race.
 */
#ifndef GPUMEM_BUFFER_H
#define GPUMEM_BUFFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gpumem/error.h"
#include "gpumem/export.h"
#include "gpumem/stats.h"
#include "gpumem/types.h"
#include "gpumem/vmm.h"

GPUMEM_EXTERN_C_BEGIN

/** How much capacity a growth adds. */
typedef enum gpumem_growth {
  GPUMEM_GROW_EXACT = 0,     /**< the request rounded up to the chunk size */
  GPUMEM_GROW_GEOMETRIC = 1, /**< at least growth_factor times the capacity, at most
                                  growth_max more, never past the maximum size; where
                                  that is out of memory, the exact size is tried once */
} gpumem_growth;

/** Creation settings; start from GPUMEM_BUFFER_CONFIG_INIT. A zero field means
 * the default given with it. */
typedef struct gpumem_buffer_config {
  size_t struct_size;        /**< sizeof(gpumem_buffer_config) as compiled: set by the INIT
                                  macro */
  int device;                /**< where the memory lives (default 0) */
  size_t max_size;           /**< the virtual reservation: the size can never exceed it
                                  (0: the device's total memory) */
  gpumem_growth growth;      /**< default EXACT */
  double growth_factor;      /**< GEOMETRIC: capacity multiplier, > 1 (0: 2.0) */
  size_t growth_max;         /**< GEOMETRIC: most capacity added by one growth (0: 1 GiB) */
  size_t chunk_size;         /**< capacity is a multiple of it; a multiple of the device's
                                  minimum granularity (0: the granularity) */
  const int *access_devices; /**< devices given read-write access to all of the buffer, now
                                  and after every growth (NULL: only `device`) */
  /** entries in access_devices, at most GPUMEM_MAX_DEVICES */
  size_t access_count;
  gpumem_handle_type handle_type; /**< NONE, POSIX_FD (shareable), or FABRIC (falls back
                                       to POSIX_FD where the device lacks fabric handles
                                       or the system refuses them) */
  bool compression;               /**< ask for compressible memory (a hint: see the info) */
} gpumem_buffer_config;

/** Initialiser of a gpumem_buffer_config: struct_size set, EXACT growth, no shareable
 * handles, every other field 0 (its default: device 0). */
#define GPUMEM_BUFFER_CONFIG_INIT                                             \
  {                                                                           \
    .struct_size = sizeof(gpumem_buffer_config), .growth = GPUMEM_GROW_EXACT, \
    .handle_type = GPUMEM_HANDLE_NONE                                         \
  }

/** What a buffer is now. In `base`: bytes_in_use, the size; bytes_reserved,
 * the capacity (bytes mapped); their peaks; allocs, the growths that mapped
 * memory; frees, the shrink_to_fit calls that released memory;
 * failed_allocs, growths refused (out of memory, capacity); largest_free,
 * capacity - size (what the size can grow by without mapping). */
typedef struct gpumem_buffer_stats {
  gpumem_stats base;    /**< the figures every allocator reports (see above) */
  int device;           /**< where the memory lives (received: the device it was mapped for) */
  size_t max_size;      /**< the virtual reservation: the most size and capacity can be */
  size_t chunk_size;    /**< capacity is a multiple of it (received: the first segment's size) */
  size_t segments;      /**< physical allocations mapped */
  gpumem_growth growth; /**< the growth policy */
  gpumem_handle_type handle_type; /**< what it really has (FABRIC may have fallen back) */
  bool compression_requested;     /**< the config asked for compressible memory */
  bool compressed;                /**< the driver's answer for the memory actually created */
  bool imported;                  /**< received from another process: a fixed-size view */
  size_t access_count;            /**< entries in access_devices */
  int access_devices[GPUMEM_MAX_DEVICES]; /**< devices with read-write access, each once,
                                               `device` first */
} gpumem_buffer_stats;

/** Initialiser of a gpumem_buffer_stats (sets struct_size). */
#define GPUMEM_BUFFER_STATS_INIT                          \
  {                                                       \
    .base = {.struct_size = sizeof(gpumem_buffer_stats) } \
  }

/** Create a buffer (size 0, nothing mapped yet). Errors: INVALID_ARGUMENT
 * (NULL, a bad factor, a chunk size that is not a multiple of the
 * granularity, a bad handle type), INVALID_DEVICE, NOT_SUPPORTED (no VMM on
 * the device), PEER_UNSUPPORTED (an access device cannot reach the memory),
 * OUT_OF_MEMORY (no address space for max_size), NO_DEVICE. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_buffer_create(const gpumem_buffer_config *config,
                                                               gpumem_buffer_t **buffer);

/** Wait for every device with access to the buffer (its own and the access
 * devices) to finish all work, then unmap and release everything. NULL is a
 * no-op. On failure the buffer is still valid and destroy may be retried:
 * segments already released are gone (the capacity, and the size if it was
 * above it, are cut to what is still mapped; the data below is intact), a
 * segment unmapped but not released stays recorded, and the next call
 * releases it first. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_buffer_destroy(gpumem_buffer_t *buffer);

/** Set the size, growing the capacity by the growth policy when needed.
 * Bytes below the old size are kept. Shrinking keeps the memory mapped.
 * Errors: INVALID_ARGUMENT (NULL), CAPACITY (past max_size; the message has
 * both sizes), OUT_OF_MEMORY, NOT_SUPPORTED (an imported buffer); on error
 * nothing changed. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_buffer_resize(gpumem_buffer_t *buffer,
                                                               size_t new_size);

/** Map at least `capacity` bytes without changing the size (exact growth).
 * Errors as for resize. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_buffer_reserve(gpumem_buffer_t *buffer,
                                                                size_t capacity);

/** Return the capacity above the size (rounded up to the chunk size) to the
 * device: the segments wholly above it are unmapped and released, and the
 * segment that reaches past it is cut: its kept bytes are copied (on
 * `stream`, device to device) into a new allocation of their size, mapped
 * at the same address; pointer and contents stay. Where the device has no
 * room for that copy, the segment stays whole and the call still succeeds.
 * It first waits for the work that may still touch the memory: all work on
 * `stream` when one is given (the caller promises no other stream uses that
 * memory), else all work on every device with access to the buffer.
 * Errors: INVALID_ARGUMENT, NOT_SUPPORTED (a received buffer), and driver
 * errors. On a driver failure the buffer keeps its size and contents:
 * segments released before the failure are gone; a failed cut leaves its
 * segment as it was; a segment unmapped but not released stays recorded
 * (beyond the capacity) and the next shrink_to_fit, growth or destroy
 * releases it first. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_buffer_shrink_to_fit(gpumem_buffer_t *buffer,
                                                                      gpumem_stream_t stream);

/** The device pointer: the same for the buffer's whole life (NULL for NULL). */
GPUMEM_API void *gpumem_buffer_data(const gpumem_buffer_t *buffer);
/** Bytes in use (0 for NULL). */
GPUMEM_API size_t gpumem_buffer_size(const gpumem_buffer_t *buffer);
/** Bytes mapped (0 for NULL). */
GPUMEM_API size_t gpumem_buffer_capacity(const gpumem_buffer_t *buffer);
/** The most the size can grow to (0 for NULL). */
GPUMEM_API size_t gpumem_buffer_max_size(const gpumem_buffer_t *buffer);
/** Fill `stats` (start it from GPUMEM_BUFFER_STATS_INIT). Errors:
 * INVALID_ARGUMENT (NULL, not a buffer, struct_size not set). Thread-safe. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_buffer_get_stats(gpumem_buffer_t *buffer,
                                                                  gpumem_buffer_stats *stats);

/** Send the buffer to another process over a connected AF_UNIX socket: its
 * layout and one file descriptor per segment (SCM_RIGHTS). Needs a buffer
 * created with handle type POSIX_FD or FABRIC. Errors: INVALID_ARGUMENT,
 * NOT_SUPPORTED (no shareable handles), OS (the socket). */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_buffer_send(gpumem_buffer_t *buffer, int socket);

/** Receive a buffer sent with gpumem_buffer_send and map the same memory in
 * this process with read-write access for `device`. The result is a view of
 * fixed size: resize, reserve and shrink_to_fit return NOT_SUPPORTED; destroy
 * unmaps it (the sender's memory lives on). An empty buffer (capacity 0, as
 * sending a fresh buffer gives) is received as an empty view that destroys
 * like any other. Errors: INVALID_DEVICE (`device` does not exist; checked
 * before anything is read, so the message stays on the socket),
 * INVALID_ARGUMENT (not a buffer message), NOT_READY (the whole message did
 * not arrive within GPUMEM_RECEIVE_TIMEOUT milliseconds, 30000 by default, 0
 * for no limit; nothing is created, and the socket may be left mid-message:
 * close it), OS, and those of mapping. Threads: any; one receiver per
 * socket at a time. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_buffer_receive(int socket, int device,
                                                                gpumem_buffer_t **buffer);

GPUMEM_EXTERN_C_END

#endif
