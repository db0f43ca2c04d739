/* gpumem/init.h: choosing the backend, initialising and finalising.
 *
 * libgpumem initialises itself on the first call that needs a device, from
 * the environment: GPUMEM_BACKEND=cuda (default) or host, GPUMEM_LOG,
 * GPUMEM_LOG_FILE, GPUMEM_HOST_* for the emulated devices, GPUMEM_FAULT for
 * failure injection. Call gpumem_init() before anything else to choose in
 * code instead; what it sets wins over the environment. The two differ on a
 * value that cannot be used: an environment variable is warned about (log
 * level WARN) and its default used, an explicit gpumem_init option is
 * refused with GPUMEM_ERR_INVALID_ARGUMENT and nothing changes.
 *
 * The CUDA backend is the default and is never replaced silently: on a
 * machine without a driver or GPU every call that needs one returns
 * GPUMEM_ERR_NO_DEVICE, and gpumem_last_error() says why (for example "no CUDA
 * driver: cudaGetDeviceCount returned cudaErrorInsufficientDriver"). The host
 * backend emulates devices on POSIX memory and is chosen explicitly.
 *
 * Fork: a child forked from a process that initialised libgpumem cannot use
 * CUDA (the driver's state does not survive fork). In such a child every call
 * that needs the backend, gpumem_init included, returns GPUMEM_ERR_STATE with
 * "libgpumem was initialised in process P; a forked child cannot use CUDA
 * (use exec, or initialise after fork)"; so does every driver call made
 * through an allocator created in the parent (the refusal is at the backend
 * seam); the host backend refuses the same way. A child that execs, or that forks before libgpumem is initialised, is
 * unaffected. gpumem_finalize() in the child forgets the parent's state and
 * lets the child gpumem_init() afresh.
 */
#ifndef GPUMEM_INIT_H
#define GPUMEM_INIT_H

#include <stddef.h>

#include "gpumem/error.h"
#include "gpumem/export.h"

GPUMEM_EXTERN_C_BEGIN

/** The backends libgpumem can run on (gpumem_init_options.backend, gpumem_backend). */
typedef enum gpumem_backend_kind {
  GPUMEM_BACKEND_DEFAULT = 0, /**< GPUMEM_BACKEND from the environment, else CUDA */
  GPUMEM_BACKEND_CUDA = 1,    /**< the GPU through the CUDA driver and runtime */
  GPUMEM_BACKEND_HOST = 2,    /**< emulated devices on POSIX virtual memory */
} gpumem_backend_kind;

/** Initialisation options; a zero field keeps the environment's value or the
 * documented default. */
typedef struct gpumem_init_options {
  size_t struct_size; /**< sizeof(gpumem_init_options) as compiled: set by the INIT macro */
  /** which backend (INIT: DEFAULT) */
  gpumem_backend_kind backend;
  int host_devices;        /**< host backend: number of devices, 1..64 (default 2) */
  size_t host_capacity;    /**< host backend: memory of each device (default 1 GiB) */
  size_t host_granularity; /**< host backend: granularity, a power of two >= 4 KiB (2 MiB) */
  const char *host_peers;  /**< host backend: "all" (default), "none", or links "0-1,1-2" */
  const char *host_uuids;  /**< host backend: device UUIDs, comma-separated (GPUMEM_HOST_UUIDS) */
} gpumem_init_options;

/** Initialiser of a gpumem_init_options: struct_size set, the DEFAULT backend, every other
 * field 0 (the environment's value or the default). */
#define GPUMEM_INIT_OPTIONS_INIT \
  { .struct_size = sizeof(gpumem_init_options), .backend = GPUMEM_BACKEND_DEFAULT }

/** Initialise with `options` (NULL: the environment only). Errors:
 * STATE (already initialised: call gpumem_finalize first), INVALID_ARGUMENT
 * (an option out of range or unusable, such as host_peers naming a device
 * that does not exist or host_uuids with an entry that is not a UUID;
 * nothing changes), NO_DEVICE (the CUDA backend
 * cannot work here; the library stays uninitialised and a later call may
 * try again); STATE also in a forked child of an initialised process until it
 * calls gpumem_finalize (see the top of this file). Not to be called concurrently with other libgpumem calls. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_init(const gpumem_init_options *options);

/** Shut the backend down so that gpumem_init can choose again. Errors: BUSY
 * when objects made through the library (reservations, allocations, streams,
 * events, pools) are still alive; the message counts them and nothing is torn
 * down. A no-op when not initialised. In a forked child of an initialised
 * process it always succeeds: the parent's objects are forgotten without a
 * driver call (the host backend frees its copies of their memory; under CUDA
 * nothing is released, they are the parent's), every handle the child
 * inherited becomes invalid, and the library is uninitialised. The default
 * allocator libgpumem made in the parent is not forgotten: do not use
 * gpumem_default_allocator in such a child. Not concurrent with other calls. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_finalize(void);

/** The active backend (DEFAULT when not initialised). */
GPUMEM_API gpumem_backend_kind gpumem_backend(void);

/** "cuda", "host", or "none" when not initialised. */
GPUMEM_API const char *gpumem_backend_name(void);

/** The library's version, GPUMEM_VERSION of the build (may differ from the
 * headers an application compiled against). */
GPUMEM_API int gpumem_version(void);
/** The library's version as text, "major.minor.patch" (GPUMEM_VERSION_STRING
 * of the build). Never NULL; thread-safe; needs no initialisation. */
GPUMEM_API const char *gpumem_version_string(void);

/** CUDA driver and runtime versions (1000 * major + 10 * minor); 0 where there
 * is none, as under the host backend. Needs no initialisation. */
GPUMEM_API void gpumem_cuda_versions(int *driver, int *runtime);

GPUMEM_EXTERN_C_END

#endif
