/* nvml.h: the NVIDIA Management Library, loaded at run time.
 *
 * CUDA has no attribute for MIG; NVML knows which devices are MIG slices, of
 * which GPU, and with how many slices. libgpumem never links NVML: it opens
 * libnvidia-ml.so.1 with dlopen and fills a table of the few functions it uses
 * (the NCCL nvmlwrap pattern). Where NVML is missing or fails, everything
 * still works and the MIG fields say "unknown".
 *
 * The types below are NVML's ABI, declared here because nvml.h is not part
 * of every CUDA toolkit installation. Tests install a table of their own
 * (gm_nvml_install) to simulate MIG layouts on machines without them.
 */
#ifndef GPUMEM_SRC_NVML_H
#define GPUMEM_SRC_NVML_H

#include <stdbool.h>

typedef struct nvmlDevice_st *gm_nvml_device;

/* nvmlReturn_t values we act on. */
enum {
  GM_NVML_SUCCESS = 0,
  GM_NVML_ERROR_NOT_SUPPORTED = 3,
  GM_NVML_ERROR_NOT_FOUND = 6,
};

/* nvmlDeviceAttributes_t (nvmlDeviceGetAttributes_v2). */
typedef struct gm_nvml_attributes {
  unsigned int multiprocessorCount;
  unsigned int sharedCopyEngineCount;
  unsigned int sharedDecoderCount;
  unsigned int sharedEncoderCount;
  unsigned int sharedJpegCount;
  unsigned int sharedOfaCount;
  unsigned int gpuInstanceSliceCount;
  unsigned int computeInstanceSliceCount;
  unsigned long long memorySizeMB;
} gm_nvml_attributes;

/* X(member, NVML symbol, parameters) */
#define GM_NVML_FUNCTIONS(X)                                                                       \
  X(init, "nvmlInit_v2", (void))                                                                   \
  X(shutdown, "nvmlShutdown", (void))                                                              \
  X(error_string, "nvmlErrorString", (int))                                                        \
  X(device_get_count, "nvmlDeviceGetCount_v2", (unsigned int *))                                   \
  X(device_get_handle_by_index, "nvmlDeviceGetHandleByIndex_v2", (unsigned int, gm_nvml_device *)) \
  X(device_get_handle_by_uuid, "nvmlDeviceGetHandleByUUID", (const char *, gm_nvml_device *))      \
  X(device_get_uuid, "nvmlDeviceGetUUID", (gm_nvml_device, char *, unsigned int))                  \
  X(device_get_name, "nvmlDeviceGetName", (gm_nvml_device, char *, unsigned int))                  \
  X(device_get_mig_mode, "nvmlDeviceGetMigMode", (gm_nvml_device, unsigned int *, unsigned int *)) \
  X(device_is_mig_device_handle, "nvmlDeviceIsMigDeviceHandle", (gm_nvml_device, unsigned int *))  \
  X(device_get_device_handle_from_mig_device_handle,                                               \
    "nvmlDeviceGetDeviceHandleFromMigDeviceHandle", (gm_nvml_device, gm_nvml_device *))            \
  X(device_get_gpu_instance_id, "nvmlDeviceGetGpuInstanceId", (gm_nvml_device, unsigned int *))    \
  X(device_get_compute_instance_id, "nvmlDeviceGetComputeInstanceId",                              \
    (gm_nvml_device, unsigned int *))                                                              \
  X(device_get_attributes, "nvmlDeviceGetAttributes_v2", (gm_nvml_device, gm_nvml_attributes *))   \
  X(device_get_max_mig_device_count, "nvmlDeviceGetMaxMigDeviceCount",                             \
    (gm_nvml_device, unsigned int *))                                                              \
  X(device_get_mig_device_handle_by_index, "nvmlDeviceGetMigDeviceHandleByIndex",                  \
    (gm_nvml_device, unsigned int, gm_nvml_device *))

/* error_string returns const char *; every other function returns nvmlReturn_t. */
typedef struct gm_nvml_ops {
  int (*init)(void);
  int (*shutdown)(void);
  const char *(*error_string)(int);
  int (*device_get_count)(unsigned int *);
  int (*device_get_handle_by_index)(unsigned int, gm_nvml_device *);
  int (*device_get_handle_by_uuid)(const char *, gm_nvml_device *);
  int (*device_get_uuid)(gm_nvml_device, char *, unsigned int);
  int (*device_get_name)(gm_nvml_device, char *, unsigned int);
  int (*device_get_mig_mode)(gm_nvml_device, unsigned int *, unsigned int *);
  int (*device_is_mig_device_handle)(gm_nvml_device, unsigned int *);
  int (*device_get_device_handle_from_mig_device_handle)(gm_nvml_device, gm_nvml_device *);
  int (*device_get_gpu_instance_id)(gm_nvml_device, unsigned int *);
  int (*device_get_compute_instance_id)(gm_nvml_device, unsigned int *);
  int (*device_get_attributes)(gm_nvml_device, gm_nvml_attributes *);
  int (*device_get_max_mig_device_count)(gm_nvml_device, unsigned int *);
  int (*device_get_mig_device_handle_by_index)(gm_nvml_device, unsigned int, gm_nvml_device *);
} gm_nvml_ops;

/* The NVML table, loading and initialising it on first use (thread-safe).
 * NULL when NVML cannot be used; `why`, if given, then says why. */
const gm_nvml_ops *gm_nvml(const char **why);

/* Replace the table (tests): `ops` is used from now on, or, when NULL, NVML
 * counts as missing with reason `why`. Not thread-safe. gm_nvml_reset()
 * returns to loading the real library. */
void gm_nvml_install(const gm_nvml_ops *ops, const char *why);
void gm_nvml_reset(void);

/* nvmlMemory_t (nvmlDeviceGetMemoryInfo), in bytes. */
typedef struct gm_nvml_memory {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
} gm_nvml_memory;

/* nvmlDeviceGetMemoryInfo of the real library: an nvmlReturn_t, or
 * GM_NVML_ERROR_NOT_SUPPORTED where the real library is not the active table
 * (missing, or a test table installed) or lacks the symbol. Free memory
 * without a CUDA context (cuda.c). Kept out of gm_nvml_ops so that the tables
 * tests install stay valid. */
int gm_nvml_device_memory(gm_nvml_device dev, gm_nvml_memory *out);

/* NVML's name for an error code ("Not Found"), or the number. */
const char *gm_nvml_error(const gm_nvml_ops *ops, int code, char *buf, unsigned int len);

#endif
