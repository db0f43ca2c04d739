/* gpumem/mig.h: the node's MIG layout and what CUDA_VISIBLE_DEVICES selects.
 *
 * Multi-Instance GPU (MIG) splits an A100 or H100 into up to seven slices,
 * each with its own memory and SMs. A process sees a slice as an ordinary CUDA
 * device, but CUDA itself cannot tell it is one: there is no CUDA attribute
 * for MIG. libgpumem asks NVML (loaded at run time, never linked) and reports
 * "unknown" where NVML is missing. What a slice cannot do matters to an
 * allocator: no peer mapping between slices, no CUDA IPC across GPU
 * instances, memory limited to its share.
 *
 * CUDA_VISIBLE_DEVICES decides which devices a process sees, written as
 * indices, "GPU-<uuid>" (a unique prefix is enough), "MIG-<uuid>", or the
 * older "MIG-GPU-<uuid>/<gi>/<ci>", comma-separated. CUDA stops reading the
 * list at the first invalid entry and ignores the rest: a typo can hide
 * devices silently. gpumem_visible_devices_read() explains a list entry by
 * entry. Indices are checked against NVML's order, which is CUDA's when
 * CUDA_DEVICE_ORDER=PCI_BUS_ID (CUDA's default order puts the fastest first).
 *
 * Thread safety: all calls may be made from any thread.
 */
#ifndef GPUMEM_MIG_H
#define GPUMEM_MIG_H

#include <stdbool.h>
#include <stddef.h>

#include "gpumem/device.h"
#include "gpumem/error.h"
#include "gpumem/export.h"
#include "gpumem/types.h"

GPUMEM_EXTERN_C_BEGIN

#define GPUMEM_MAX_MIG_SLICES 16

/** One MIG device (a compute instance of a GPU instance). */
typedef struct gpumem_mig_slice {
  char uuid[48]; /**< "MIG-…" */
  int gpu_instance_id, compute_instance_id;
  int gpu_instance_slices, compute_instance_slices;
  int sm_count;
  size_t memory_bytes;
} gpumem_mig_slice;

/** One physical GPU of the node, with its slices when MIG is enabled. */
typedef struct gpumem_mig_gpu {
  int nvml_index;
  char uuid[48]; /**< "GPU-…" */
  char name[96];
  gpumem_tristate mig_mode; /**< current MIG mode; UNKNOWN when the GPU cannot do MIG */
  size_t slice_count;
  gpumem_mig_slice slices[GPUMEM_MAX_MIG_SLICES];
} gpumem_mig_gpu;

/** The node's physical GPUs as NVML lists them (whatever CUDA_VISIBLE_DEVICES
 * says) and the MIG slices of each; at most `max` GPUs are written, `*count`
 * says how many exist. Errors: INVALID_ARGUMENT (NULL), NOT_SUPPORTED (NVML
 * unavailable; the message says why). Needs no CUDA device. */
GPUMEM_API gpumem_status gpumem_mig_layout(gpumem_mig_gpu *gpus, size_t max, size_t *count);

typedef enum gpumem_visible_kind {
  GPUMEM_VISIBLE_INDEX,      /**< "2" */
  GPUMEM_VISIBLE_GPU_UUID,   /**< "GPU-8b2f…", a full UUID or a unique prefix */
  GPUMEM_VISIBLE_MIG_UUID,   /**< "MIG-1a2b…", a full UUID */
  GPUMEM_VISIBLE_MIG_LEGACY, /**< "MIG-GPU-<uuid>/<gi>/<ci>" (drivers before R470) */
} gpumem_visible_kind;

typedef struct gpumem_visible_entry {
  gpumem_visible_kind kind;
  char text[64];           /**< the entry as written, spaces trimmed */
  int index;               /**< INDEX: the index; otherwise -1 */
  int gpu_instance_id;     /**< MIG_LEGACY: the GPU instance; otherwise -1 */
  int compute_instance_id; /**< MIG_LEGACY: the compute instance; otherwise -1 */
  char resolved[48];       /**< UUID of the device it names, when checked against NVML, else "" */
} gpumem_visible_entry;

/** A reading of CUDA_VISIBLE_DEVICES. */
typedef struct gpumem_visible_devices {
  bool set;      /**< the variable is set (unset: every device is visible) */
  bool resolved; /**< entries were checked against NVML's device list */
  size_t count;  /**< entries in effect, in `entries` */
  gpumem_visible_entry entries[GPUMEM_MAX_DEVICES];
  bool stopped;          /**< an invalid entry ended the list: it and all after it are ignored */
  size_t stopped_at;     /**< its position, from 0 */
  char stopped_text[64]; /**< the invalid entry as written */
  char why[160];         /**< why it is invalid */
} gpumem_visible_devices;

/** Read `text` as CUDA would read CUDA_VISIBLE_DEVICES (NULL: the process's
 * own variable). Entries are checked against NVML's devices when NVML is
 * available (a UUID prefix must match exactly one GPU, an index must exist).
 * An invalid entry is not an error of this call: `stopped` and `why` report
 * it, and a warning is logged. Errors: INVALID_ARGUMENT (NULL out). */
GPUMEM_API gpumem_status gpumem_visible_devices_read(const char *text, gpumem_visible_devices *out);

GPUMEM_EXTERN_C_END

#endif
