/* gpumem/device.h: the devices the active backend sees, and what each one
 * offers for allocation.
 *
 * Ordinals are the CUDA runtime's (after CUDA_VISIBLE_DEVICES) under the CUDA
 * backend. The host backend emulates a node (GPUMEM_HOST_DEVICES generic
 * devices, or the GPUs and MIG slices of GPUMEM_HOST_MIG) and, like the
 * driver, numbers 0..N-1 the devices CUDA_VISIBLE_DEVICES leaves of it.
 *
 * CUDA contexts: nothing here changes the calling thread's current device,
 * and nothing here except gpumem_device_mem_info creates a CUDA context.
 * Every rank of an MPI job lists and selects devices, and a context costs
 * about 0.5 GiB on the GPU it is made on (and is refused on a GPU in
 * EXCLUSIVE_PROCESS mode that another process holds), so looking at a device
 * must not take one. Descriptions come from the driver's device queries and
 * free memory from NVML, or from the device's context when the process
 * already has one. The one exception: where NVML is unavailable
 * (libnvidia-ml.so.1 missing) and the device has no context yet, free memory
 * can only be read through CUDA, which creates that device's context (an
 * info line says so, once).
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

/** Yes, no, or unknown (MIG facts come from NVML, which may be missing, or
 * from the host backend's emulated layout). */
typedef enum gpumem_tristate {
  GPUMEM_UNKNOWN = -1, /**< not known (each field says when) */
  GPUMEM_NO = 0,       /**< no */
  GPUMEM_YES = 1,      /**< yes */
} gpumem_tristate;

/** A device and its allocation capabilities. */
typedef struct gpumem_device_info {
  /** its ordinal under the active backend */
  int ordinal;
  /** the driver's name for it (cuDeviceGetName); the emulated name under the host backend */
  char name[256];
  char uuid[48]; /**< "GPU-xxxxxxxx-…" or, for a MIG slice, "MIG-xxxxxxxx-…" */
  /** compute capability, major version */
  int cc_major, cc_minor; /**< compute capability, minor version */
  int sm_count;           /**< streaming multiprocessors */
  /** @var gpumem_device_info::pci_bus
   * PCI bus id (CU_DEVICE_ATTRIBUTE_PCI_BUS_ID) */
  /** @var gpumem_device_info::pci_device
   * PCI device id (CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID) */
  /** PCI domain id (CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID) */
  int pci_domain, pci_bus, pci_device;
  size_t memory_total;            /**< bytes */
  size_t memory_free;             /**< bytes, when the info was read (NVML's figure where the
                                       process has no context on the device) */
  bool vmm;                       /**< virtual memory management (cuMemCreate/cuMemMap) */
  bool pools;                     /**< stream-ordered pools (cudaMallocAsync) */
  bool posix_fd;                  /**< POSIX fd shareable handles */
  bool fabric;                    /**< fabric handles advertised (creation may still be refused) */
  bool compression;               /**< generic compressible memory */
  bool multicast;                 /**< multicast objects */
  unsigned pool_handle_types;     /**< gpumem_handle_type bits pools can export */
  size_t granularity_min;         /**< bytes: sizes and offsets must be multiples */
  size_t granularity_recommended; /**< bytes: the granularity that performs best */
  /* MIG, from NVML (under the host backend with GPUMEM_HOST_MIG: from the emulated layout);
   * UNKNOWN / -1 / "" where NVML is missing or failed (see mig_note). Without NVML a device
   * the driver names "<GPU> MIG <profile>" is still a slice (mig YES, parent unknown). */
  gpumem_tristate mig;             /**< this device is a MIG slice */
  gpumem_tristate parent_mig_mode; /**< MIG mode of the physical GPU it belongs to */
  char parent_uuid[48];            /**< the physical GPU ("GPU-…"); its own UUID if not a slice */
  int gpu_instance_id;             /**< GPU instance of a slice, else -1 */
  int compute_instance_id;         /**< compute instance of a slice, else -1 */
  int gpu_instance_slices;         /**< memory/SM slices of its GPU instance (1g: 1), else 0 */
  int compute_instance_slices;     /**< SM slices of its compute instance, else 0 */
  char mig_note[160];              /**< why MIG fields are unknown, or "" */
} gpumem_device_info;

/** Number of devices; creates no context. Errors: INVALID_ARGUMENT (NULL),
 * NO_DEVICE. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_device_count(int *count);

/** Fill `info` for device `ordinal`. Creates no context (but see the note on
 * NVML above). Errors: INVALID_ARGUMENT (NULL), INVALID_DEVICE, NO_DEVICE. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_device_get_info(int ordinal,
                                                                 gpumem_device_info *info);

/** Free and total memory of a device, in bytes, as its CUDA context counts
 * them (cudaMemGetInfo): this creates the device's primary context when the
 * process has none there yet; the calling thread's current device stays as
 * it was. For a figure that creates no context, read memory_free from
 * gpumem_device_get_info. Errors: INVALID_ARGUMENT (NULL), INVALID_DEVICE,
 * NO_DEVICE, DRIVER. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_device_mem_info(int ordinal, size_t *free_bytes,
                                                                 size_t *total_bytes);

/** Whether `device` can be given access to memory that lives on `peer`.
 * Creates no context. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_device_can_access_peer(int device, int peer,
                                                                        bool *can_access);

/** Why a device can or cannot map a peer's memory. */
typedef enum gpumem_peer_reason {
  GPUMEM_PEER_SAME_DEVICE = 0, /**< the same device: always */
  GPUMEM_PEER_P2P = 1,         /**< a peer-to-peer path exists (NVLink or PCIe) */
  GPUMEM_PEER_MIG = 2,         /**< one of them is a MIG slice: slices cannot map peers */
  GPUMEM_PEER_NO_PATH = 3,     /**< no peer-to-peer path between the two GPUs */
} gpumem_peer_reason;

/** Peer-to-peer facts for one ordered pair of devices. */
typedef struct gpumem_peer_info {
  bool can_map; /**< `device` may be granted access to memory of `peer` */
  /** why it can or cannot */
  gpumem_peer_reason reason;
  bool native_atomics;  /**< atomics on peer memory are native */
  int performance_rank; /**< the driver's relative rank of the link (lower is better) */
  char why[192];        /**< the reason in a sentence */
} gpumem_peer_info;

/** Can `device` map memory that lives on `peer`, and why (not). Creates no
 * context. Errors: INVALID_ARGUMENT (NULL), INVALID_DEVICE, NO_DEVICE. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_device_peer_info(int device, int peer,
                                                                  gpumem_peer_info *info);

/** Allocation capabilities a selection may require (bits). */
typedef enum gpumem_capability {
  GPUMEM_CAP_VMM = 1 << 0,         /**< gpumem_device_info.vmm */
  GPUMEM_CAP_POOLS = 1 << 1,       /**< gpumem_device_info.pools */
  GPUMEM_CAP_POSIX_FD = 1 << 2,    /**< gpumem_device_info.posix_fd */
  GPUMEM_CAP_FABRIC = 1 << 3,      /**< gpumem_device_info.fabric */
  GPUMEM_CAP_COMPRESSION = 1 << 4, /**< gpumem_device_info.compression */
  GPUMEM_CAP_MULTICAST = 1 << 5,   /**< gpumem_device_info.multicast */
} gpumem_capability;

/** What a selection does with MIG slices. */
typedef enum gpumem_mig_policy {
  GPUMEM_MIG_EITHER = 0,  /**< slices and whole GPUs alike */
  GPUMEM_MIG_PREFER = 1,  /**< slices when any qualifies, else whole GPUs */
  GPUMEM_MIG_EXCLUDE = 2, /**< whole GPUs only (and devices whose MIG state is unknown) */
  GPUMEM_MIG_REQUIRE = 3, /**< slices only */
} gpumem_mig_policy;

/** Pass as local_rank to read the rank from the launcher's environment. */
#define GPUMEM_RANK_FROM_ENV (-2)

/** What gpumem_device_select looks for. Zero / NULL fields do not filter. */
typedef struct gpumem_select_criteria {
  size_t struct_size;     /**< sizeof(gpumem_select_criteria) as compiled: set by the INIT
                               macro */
  const char *uuid;       /**< a full UUID or a unique prefix ("GPU-…", "MIG-…"); a slice also
                               matches the UUID of its GPU */
  size_t min_free_bytes;  /**< at least this much free memory now */
  unsigned required_caps; /**< gpumem_capability bits that must all be present */
  /** what to do with MIG slices (INIT: EITHER) */
  gpumem_mig_policy mig;
  int local_rank; /**< -1: no rank (first qualifying device); >= 0: this node-local rank;
                       GPUMEM_RANK_FROM_ENV: from SLURM_LOCALID, OMPI_COMM_WORLD_LOCAL_RANK,
                       MPI_LOCALRANKID, MV2_COMM_WORLD_LOCAL_RANK, PMI_LOCAL_RANK,
                       PALS_LOCAL_RANKID, LOCAL_RANK (the first one set) */
} gpumem_select_criteria;

/** Initialiser of a gpumem_select_criteria: struct_size set, MIG_EITHER, no rank (-1),
 * no other criterion. */
#define GPUMEM_SELECT_CRITERIA_INIT \
  { .struct_size = sizeof(gpumem_select_criteria), .mig = GPUMEM_MIG_EITHER, .local_rank = -1 }

/** The device chosen and why. */
typedef struct gpumem_selection {
  int ordinal;               /**< the chosen device's ordinal */
  int local_rank;            /**< the rank used, or -1 */
  const char *rank_variable; /**< the environment variable it came from, or NULL */
  int candidates;            /**< devices that met the criteria */
  char reason[256];          /**< why this device, in a sentence */
} gpumem_selection;

/** Choose a device. With a rank, ranks are spread over physical GPUs first:
 * rank r takes GPU r mod G of the G GPUs that have a qualifying device, and
 * slices of one GPU (which share it) are handed out in turn to the ranks that
 * land on it. Creates no context (free memory is read only when
 * min_free_bytes asks for it; see the note on NVML above) and does not make
 * the chosen device current: call cudaSetDevice(selection.ordinal) for that.
 * Errors: INVALID_ARGUMENT (NULL, a malformed rank variable, a
 * UUID prefix matching two devices), NOT_FOUND (no device qualifies; the
 * message says which criterion removed the last ones), NO_DEVICE. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status
gpumem_device_select(const gpumem_select_criteria *criteria, gpumem_selection *selection);

/** The node-local rank from the launcher's environment (see local_rank
 * above): *rank is -1 and *variable NULL when none is set. Errors:
 * INVALID_ARGUMENT when the first variable set is not a non-negative integer
 * (the message names it and its value). */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_local_rank(int *rank, const char **variable);

GPUMEM_EXTERN_C_END

#endif
