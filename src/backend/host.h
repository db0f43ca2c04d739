/* host.h: what the host backend's files share (host.c, host_pool.c). */
#ifndef GPUMEM_SRC_BACKEND_HOST_H
#define GPUMEM_SRC_BACKEND_HOST_H

#include "backend.h"
#include "gpumem/mig.h"

/* The host backend has one lock; every function below needs it held unless
 * it says otherwise. */
void gm_host_lock(void);
void gm_host_unlock(void);

int gm_host_device_count(void);
bool gm_host_device_valid(int device);
size_t gm_host_granularity(void);
/* May `device` access memory that lives on `owner`? */
bool gm_host_can_access(int device, int owner);
/* Charge `bytes` against a device's capacity: OUT_OF_MEMORY when it is used up. */
gpumem_status gm_host_charge(int device, size_t bytes, const char *what);
void gm_host_uncharge(int device, size_t bytes);

/* The emulated node, for the MIG-aware code (mig.c). Each takes the lock
 * itself. The node is the unfiltered list of emulated GPUs; the devices the
 * process sees are those CUDA_VISIBLE_DEVICES leaves, renumbered. */
/* Whether GPUMEM_HOST_MIG gave a layout: then the host backend, not NVML,
 * is the source of MIG facts. */
bool gm_host_has_mig_layout(void);
/* Fill the MIG fields of `info` for emulated device `device` from the
 * layout, and its UUID; false (nothing written) without a layout. */
bool gm_host_mig_describe(int device, gpumem_device_info *info);
/* The node's GPUs, unfiltered, as NVML would list them (a generic emulated
 * device is a GPU that cannot do MIG): at most `max` written; returns how
 * many there are. */
size_t gm_host_node(gpumem_mig_gpu *gpus, size_t max);

/* The device in the name of a memfd the host backend made with `prefix`
 * (names are "<prefix><device>"), or -1 if `fd` is not such a memfd. Works on
 * descriptors received from another process. No lock needed. */
int gm_host_memfd_device(int fd, const char *prefix);

/* The device of a host-backend stream; -1 for the legacy stream (NULL). */
int gm_host_stream_device(gpumem_stream_t stream);

/* Pools (host_pool.c). */
gpumem_status gm_host_pool_create(const gm_pool_props *props, gpumem_native_pool_t *out);
gpumem_status gm_host_pool_destroy(gpumem_native_pool_t pool);
gpumem_status gm_host_pool_default(int device, gpumem_native_pool_t *out);
gpumem_status gm_host_pool_set_attr(gpumem_native_pool_t pool, gm_pool_attr attr, uint64_t value);
gpumem_status gm_host_pool_get_attr(gpumem_native_pool_t pool, gm_pool_attr attr, uint64_t *value);
gpumem_status gm_host_pool_set_access(gpumem_native_pool_t pool, const gpumem_access_desc *desc,
                                      size_t count);
gpumem_status gm_host_pool_get_access(gpumem_native_pool_t pool, int device,
                                      gpumem_access_flags *out);
gpumem_status gm_host_pool_trim(gpumem_native_pool_t pool, size_t keep_bytes);
gpumem_status gm_host_pool_alloc(gpumem_native_pool_t pool, size_t size, gpumem_stream_t stream,
                                 void **out);
gpumem_status gm_host_pool_free(void *ptr, gpumem_stream_t stream);
gpumem_status gm_host_pool_export(gpumem_native_pool_t pool, gpumem_handle_type type,
                                  gpumem_shareable_handle *out);
gpumem_status gm_host_pool_import(const gpumem_shareable_handle *in, gpumem_native_pool_t *out);
gpumem_status gm_host_pool_export_ptr(void *ptr, gm_pool_ptr_export *out);
gpumem_status gm_host_pool_import_ptr(gpumem_native_pool_t pool, const gm_pool_ptr_export *data,
                                      void **out);
/* Release cached pool memory above each pool's release threshold, as CUDA
 * does when a stream, event or device is synchronized (lock held). */
void gm_host_pools_synchronized(void);
/* Destroy every pool, default pools included (lock held; at close). */
void gm_host_pools_close(void);

#endif
