/* gpumem/mig.h: the node's MIG layout and what CUDA_VISIBLE_DEVICES selects.
 *
 * Multi-Instance GPU (MIG) splits an A100, H100 or H200 into up to seven GPU
 * instances, each with its own memory and SMs. A process sees a slice as an
 * ordinary CUDA device, but CUDA itself cannot tell it is one: there is no
 * CUDA attribute for MIG. libgpumem asks NVML (loaded at run time, never
 * linked) and, where NVML is missing, reports "unknown" except that a device
 * whose CUDA name marks it as a MIG device ("NVIDIA H100 80GB HBM3 MIG
 * 1g.10gb", the driver's naming) is reported as a slice of an unknown GPU.
 * Under the host backend with a GPUMEM_HOST_MIG layout the facts come from
 * the emulated layout instead of NVML. What a slice cannot do matters to an
 * allocator: no peer mapping between slices, no CUDA IPC across GPU
 * instances, memory limited to its share.
 *
 * CUDA_VISIBLE_DEVICES decides which devices a process sees, written as
 * indices, "GPU-<uuid>" (a unique prefix is enough), "MIG-<uuid>", or the
 * older "MIG-GPU-<uuid>/<gi>/<ci>", comma-separated. The rules the driver
 * follows, and gpumem_visible_devices_read() and the host backend apply:
 *   - the list ends at the first invalid entry (a typo hides the devices
 *     after it, silently);
 *   - an index is read like strtoul: its leading digits ("1gpu" is 1);
 *   - a device named twice (2,2 or an index and its UUID) makes CUDA show
 *     no device at all (PyTorch's torch/cuda/__init__.py models the driver
 *     the same way: "Repeated ordinal results in empty set");
 *   - an index or GPU- UUID naming a GPU in MIG mode selects its MIG devices
 *     (an assumption of libgpumem: the drivers from R570 show every MIG
 *     device of such a GPU when nothing is filtered);
 *   - the devices are renumbered 0..N-1 in the order of the list.
 *
 * Which GPU an index names depends on CUDA_DEVICE_ORDER. With PCI_BUS_ID,
 * index k is NVML's GPU k (NVML enumerates by PCI bus id). Without it CUDA
 * numbers the GPUs fastest first, an order NVML cannot give: libgpumem then
 * takes the order from the CUDA driver itself (each CUDA ordinal's UUID,
 * matched to NVML's GPUs) when the CUDA backend is running and the process's
 * own CUDA_VISIBLE_DEVICES is unset, so that the driver sees every device.
 * Otherwise, when every GPU has the same name, the fastest-first order is
 * taken to be the PCI order (the GPUs are equally fast); when they differ,
 * index entries cannot be checked and the reading is syntax only. The
 * reading's index_order says which applied. The host backend enumerates its
 * emulated GPUs in layout order under either setting.
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

/** Most slices listed per GPU in gpumem_mig_gpu (further ones are left out). */
#define GPUMEM_MAX_MIG_SLICES 16

/** One MIG device (a compute instance of a GPU instance). */
typedef struct gpumem_mig_slice {
  char uuid[48]; /**< "MIG-…" */
  /** its GPU instance on the GPU */
  int gpu_instance_id, compute_instance_id; /**< its compute instance in that GPU instance */
  /** memory/SM slices of its GPU instance (1g: 1) */
  int gpu_instance_slices, compute_instance_slices; /**< SM slices of its compute instance */
  int sm_count;                                     /**< streaming multiprocessors */
  size_t memory_bytes;                              /**< its memory, in bytes */
  char profile[16]; /**< "3g.40gb", from the device's name; "" when the name does not say */
} gpumem_mig_slice;

/** One physical GPU of the node, with its slices when MIG is enabled. */
typedef struct gpumem_mig_gpu {
  int nvml_index; /**< NVML's index (PCI bus order); under the host backend, the layout's */
  char uuid[48];  /**< "GPU-…" */
  char name[96];  /**< its name, as NVML gives it */
  gpumem_tristate mig_mode; /**< current MIG mode; UNKNOWN when the GPU cannot do MIG */
  size_t slice_count;       /**< entries in `slices`: 0 unless mig_mode is YES */
  gpumem_mig_slice slices[GPUMEM_MAX_MIG_SLICES]; /**< its MIG devices */
} gpumem_mig_gpu;

/** The node's physical GPUs as NVML lists them (whatever CUDA_VISIBLE_DEVICES
 * says) and the MIG slices of each; at most `max` GPUs are written, `*count`
 * says how many exist. Under the host backend with a GPUMEM_HOST_MIG layout:
 * the emulated GPUs, in layout order. Errors: INVALID_ARGUMENT (NULL),
 * NOT_SUPPORTED (NVML unavailable; the message says why). Needs no CUDA
 * device. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_mig_layout(gpumem_mig_gpu *gpus, size_t max,
                                                            size_t *count);

/** What an entry of CUDA_VISIBLE_DEVICES is written as. */
typedef enum gpumem_visible_kind {
  GPUMEM_VISIBLE_INDEX,      /**< "2" */
  GPUMEM_VISIBLE_GPU_UUID,   /**< "GPU-8b2f…", a full UUID or a unique prefix */
  GPUMEM_VISIBLE_MIG_UUID,   /**< "MIG-1a2b…", a full UUID */
  GPUMEM_VISIBLE_MIG_LEGACY, /**< "MIG-GPU-<uuid>/<gi>/<ci>" (drivers before R470) */
} gpumem_visible_kind;

/** One entry of CUDA_VISIBLE_DEVICES, as read. */
typedef struct gpumem_visible_entry {
  /** how it is written */
  gpumem_visible_kind kind;
  char text[64];           /**< the entry as written, spaces trimmed */
  int index;               /**< INDEX: the index; otherwise -1 */
  int gpu_instance_id;     /**< MIG_LEGACY: the GPU instance; otherwise -1 */
  int compute_instance_id; /**< MIG_LEGACY: the compute instance; otherwise -1 */
  char resolved[48];       /**< UUID of the GPU or slice it names, when checked, else "" */
} gpumem_visible_entry;

/** How index entries were matched to GPUs (see CUDA_DEVICE_ORDER above). */
typedef enum gpumem_index_order {
  GPUMEM_INDEX_ORDER_NONE = 0,   /**< not checked against a node */
  GPUMEM_INDEX_ORDER_PCI_BUS_ID, /**< CUDA_DEVICE_ORDER=PCI_BUS_ID: NVML's order */
  GPUMEM_INDEX_ORDER_CUDA,       /**< fastest first, as the CUDA driver (or the host backend)
                                      enumerates the node */
  GPUMEM_INDEX_ORDER_ASSUMED,    /**< fastest first, not asked of the driver: the GPUs all have
                                      the same name, so the PCI order is assumed */
  GPUMEM_INDEX_ORDER_UNKNOWN,    /**< fastest first, not asked of the driver, different GPUs:
                                      index entries cannot be checked (syntax only) */
} gpumem_index_order;

/** A reading of CUDA_VISIBLE_DEVICES. */
typedef struct gpumem_visible_devices {
  bool set;      /**< the variable is set (unset: every device is visible) */
  bool resolved; /**< entries were checked against the node (NVML, or the host backend) */
  size_t count;  /**< valid entries before the end of the list, in `entries` */
  gpumem_visible_entry entries[GPUMEM_MAX_DEVICES]; /**< the valid entries, in the order written */
  bool stopped;          /**< an invalid entry ended the list: it and all after it are ignored */
  size_t stopped_at;     /**< its position, from 0 (== count) */
  char stopped_text[64]; /**< the invalid entry as written */
  char why[160];         /**< why it is invalid */
  bool hides_all;        /**< the stopping entry names a device already named: CUDA then shows no
                              device at all, not even those of `entries` */
  gpumem_index_order index_order;       /**< how index entries were matched to GPUs */
  size_t device_count;                  /**< resolved: how many devices the process sees */
  char devices[GPUMEM_MAX_DEVICES][48]; /**< resolved: their UUIDs, ordinal 0 first */
} gpumem_visible_devices;

/** Read `text` as CUDA would read CUDA_VISIBLE_DEVICES (NULL: the process's
 * own variable). Entries are checked against the node when it can be known:
 * under the host backend its emulated devices, otherwise NVML's (a UUID
 * prefix must match exactly one GPU, an index must exist); the devices the
 * process then sees are listed. An invalid entry is not an error of this
 * call: `stopped` and `why` report it, and a warning is logged. Errors:
 * INVALID_ARGUMENT (NULL out). */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_visible_devices_read(const char *text,
                                                                      gpumem_visible_devices *out);

GPUMEM_EXTERN_C_END

#endif
