/* gpumem/vmm.h: the virtual-memory primitives, checked and portable.
 *
 * These calls mirror CUDA's virtual memory management API one to one
 * (cuMemAddressReserve, cuMemCreate, cuMemMap, cuMemSetAccess, cuMemUnmap,
 * cuMemRelease, cuMemAddressFree, cuMemExportToShareableHandle,
 * cuMemImportFromShareableHandle) and run on the active backend: the GPU by
 * default, or emulated devices on POSIX memory with GPUMEM_BACKEND=host. They
 * are the layer the buffer, pool and arena are built on, and a safer way to
 * use VMM directly: every failure is a status with a sentence in
 * gpumem_last_error(), every argument is checked, and handles released twice
 * or ranges unmapped twice are reported instead of reaching the driver.
 *
 * The rules are CUDA's: sizes and mapped addresses are multiples of the
 * minimum granularity for the properties used (gpumem_vmm_granularity), a
 * map starts at offset 0 of its allocation;
 * a fresh mapping grants no access until gpumem_vmm_set_access; an unmap
 * covers whole mappings; a physical allocation lives until it is released
 * and no longer mapped. See examples/01_vmm_basics.c for the whole sequence.
 * The address ranges that libgpumem's own buffers and arenas reserve are
 * theirs: map, unmap, set_access and free refuse any address inside one
 * (INVALID_ARGUMENT, naming the kind of object).
 *
 * Thread safety: every function may be called from any thread. Operations on
 * overlapping ranges from different threads at once are the caller's race, as
 * with the driver.
 */
#ifndef GPUMEM_VMM_H
#define GPUMEM_VMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gpumem/error.h"
#include "gpumem/export.h"
#include "gpumem/types.h"

GPUMEM_EXTERN_C_BEGIN

/** A physical allocation (CUmemGenericAllocationHandle). 0 is never valid. */
typedef uint64_t gpumem_phys_t;

/** Shareable handle kinds; a bit mask where several may be requested. The
 * values are CUDA's CUmemAllocationHandleType. */
typedef enum gpumem_handle_type {
  GPUMEM_HANDLE_NONE = 0,     /**< none: not shareable */
  GPUMEM_HANDLE_POSIX_FD = 1, /**< a file descriptor, passed with SCM_RIGHTS */
  GPUMEM_HANDLE_FABRIC = 8,   /**< 64 bytes, valid across a NVLink fabric (IMEX) */
} gpumem_handle_type;

/** Access a device has to a mapped range (CUDA's CUmemAccess_flags). */
typedef enum gpumem_access_flags {
  GPUMEM_ACCESS_NONE = 0,      /**< no access (what a fresh mapping grants) */
  GPUMEM_ACCESS_READ = 1,      /**< read only */
  GPUMEM_ACCESS_READWRITE = 3, /**< read and write */
} gpumem_access_flags;

/** One device's access, for gpumem_vmm_set_access. */
typedef struct gpumem_access_desc {
  int device;                /**< the device given access */
  gpumem_access_flags flags; /**< the access it gets */
} gpumem_access_desc;

/** What a physical allocation is (the parts of CUmemAllocationProp we use). */
typedef struct gpumem_phys_props {
  int device;            /**< ordinal of the device whose memory it is */
  unsigned handle_types; /**< gpumem_handle_type bits it may be exported as */
  bool compression;      /**< ask for compressible memory (a hint; see get_props) */
} gpumem_phys_props;

/** Initialiser of a gpumem_phys_props: device 0, not shareable, no compression. */
#define GPUMEM_PHYS_PROPS_INIT \
  { 0, GPUMEM_HANDLE_NONE, false }

/** A handle that another process can import. For POSIX_FD the caller owns
 * `fd` and closes it after passing it on; for FABRIC the 64 bytes are copied
 * as they are. */
typedef struct gpumem_shareable_handle {
  gpumem_handle_type type;  /**< POSIX_FD or FABRIC: which of the two below holds the handle */
  int fd;                   /**< POSIX_FD: the file descriptor; -1 for FABRIC */
  unsigned char fabric[64]; /**< FABRIC: CUDA's CUmemFabricHandle */
} gpumem_shareable_handle;

/** Granularity for `props`: the minimum (every size, offset and address must
 * be a multiple of it) or, with `recommended`, the one that performs best.
 * Errors: INVALID_ARGUMENT (NULL), INVALID_DEVICE, NO_DEVICE. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_vmm_granularity(const gpumem_phys_props *props,
                                                                 bool recommended,
                                                                 size_t *granularity);

/** Reserve `size` bytes of virtual address space (no memory behind it).
 * `alignment` is 0 (the largest minimum granularity of the devices for a
 * plain allocation, so that any of them can map there) or a power of two.
 * Errors: INVALID_ARGUMENT (NULL out, size 0 or not a multiple of the
 * granularity, bad alignment), OUT_OF_MEMORY (no address space). */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_vmm_reserve(size_t size, size_t alignment,
                                                             void **va);

/** Return a reservation made by gpumem_vmm_reserve (exact base and size).
 * Errors: INVALID_ARGUMENT (not a reservation, or a buffer's or arena's),
 * BUSY (still mapped). */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_vmm_free(void *va, size_t size);

/** Create `size` bytes of physical memory on `props->device`. Errors:
 * INVALID_ARGUMENT (also FABRIC on a device whose info says no fabric: the
 * host backend answers so, and CUDA does not document which code it gives),
 * INVALID_DEVICE, OUT_OF_MEMORY, NOT_SUPPORTED (a handle type or compression
 * the device lacks), NOT_PERMITTED (fabric advertised but refused by the
 * system, e.g. no IMEX channel). */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_vmm_create(const gpumem_phys_props *props,
                                                            size_t size, gpumem_phys_t *phys);

/** Release a physical allocation; its memory is freed once no mapping uses
 * it. Errors: INVALID_POINTER (not a live handle), DOUBLE_FREE (released
 * already). */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_vmm_release(gpumem_phys_t phys);

/** The properties a physical allocation really has (compression included:
 * the driver may ignore the hint). */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_vmm_get_props(gpumem_phys_t phys,
                                                               gpumem_phys_props *props);

/** Map `size` bytes of `phys`, from `offset`, at `va` inside a reservation.
 * `offset` must be 0 for now (cuda.h, cuMemMap: "currently must be zero"):
 * to map pieces at different places, give each its own allocation. The
 * mapping starts with no access. Errors: INVALID_ARGUMENT (a non-zero
 * offset, alignment, bounds, not in a reservation, in a buffer's or arena's
 * reservation), ALREADY_MAPPED,
 * INVALID_POINTER. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_vmm_map(void *va, size_t size, size_t offset,
                                                         gpumem_phys_t phys);

/** Unmap whole mappings covering exactly [va, va+size). Errors: NOT_MAPPED
 * (some byte is not mapped), INVALID_ARGUMENT (the range splits a mapping,
 * or lies in a buffer's or arena's reservation). */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_vmm_unmap(void *va, size_t size);

/** Grant each listed device its access to the mapped range. Errors:
 * NOT_MAPPED, INVALID_DEVICE, PEER_UNSUPPORTED (a device that cannot reach
 * the memory's device), INVALID_ARGUMENT (a buffer's or arena's range). */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_vmm_set_access(void *va, size_t size,
                                                                const gpumem_access_desc *desc,
                                                                size_t count);

/** The access `device` has at `va`. Errors: NOT_MAPPED, INVALID_DEVICE. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_vmm_get_access(const void *va, int device,
                                                                gpumem_access_flags *flags);

/** Export `phys` as a shareable handle of one type it was created with.
 * Errors: INVALID_ARGUMENT (type not requested at creation), NOT_SUPPORTED. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_vmm_export(gpumem_phys_t phys,
                                                            gpumem_handle_type type,
                                                            gpumem_shareable_handle *handle);

/** Import a handle exported by this or another process. The caller still
 * owns (and closes) a POSIX fd it passed in. Release the result with
 * gpumem_vmm_release. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_vmm_import(const gpumem_shareable_handle *handle,
                                                            gpumem_phys_t *phys);

GPUMEM_EXTERN_C_END

#endif
