/* gpumem/device.h: the devices the active backend sees, and what each one
 * offers for allocation.
 *
 * Ordinals are the CUDA runtime's (after CUDA_VISIBLE_DEVICES) under the CUDA
 * backend, and 0..N-1 for the host backend's emulated devices.
 *
 * Thread safety: all calls may be made from any thread.
 */
#ifndef GPUMEM_DEVICE_H
#define GPUMEM_DEVICE_H

#include <stdbool.h>
#include <stddef.h>

#include "gpumem/error.h"
#include "gpumem/export.h"

GPUMEM_EXTERN_C_BEGIN

/** A device and its allocation capabilities. */
typedef struct gpumem_device_info {
  int ordinal;
  char name[256];
  char uuid[48]; /**< "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" */
  int cc_major, cc_minor;
  int sm_count;
  int pci_domain, pci_bus, pci_device;
  size_t memory_total;            /**< bytes */
  size_t memory_free;             /**< bytes, when the info was read */
  bool vmm;                       /**< virtual memory management (cuMemCreate/cuMemMap) */
  bool pools;                     /**< stream-ordered pools (cudaMallocAsync) */
  bool posix_fd;                  /**< POSIX fd shareable handles */
  bool fabric;                    /**< fabric handles advertised (creation may still be refused) */
  bool compression;               /**< generic compressible memory */
  bool multicast;                 /**< multicast objects */
  unsigned pool_handle_types;     /**< gpumem_handle_type bits pools can export */
  size_t granularity_min;         /**< bytes: sizes and offsets must be multiples */
  size_t granularity_recommended; /**< bytes: the granularity that performs best */
} gpumem_device_info;

/** Number of devices. Errors: INVALID_ARGUMENT (NULL), NO_DEVICE. */
GPUMEM_API gpumem_status gpumem_device_count(int *count);

/** Fill `info` for device `ordinal`. Errors: INVALID_ARGUMENT (NULL),
 * INVALID_DEVICE, NO_DEVICE. */
GPUMEM_API gpumem_status gpumem_device_get_info(int ordinal, gpumem_device_info *info);

/** Free and total memory of a device, in bytes. */
GPUMEM_API gpumem_status gpumem_device_mem_info(int ordinal, size_t *free_bytes,
                                                size_t *total_bytes);

/** Whether `device` can be given access to memory that lives on `peer`. */
GPUMEM_API gpumem_status gpumem_device_can_access_peer(int device, int peer, bool *can_access);

GPUMEM_EXTERN_C_END

#endif
