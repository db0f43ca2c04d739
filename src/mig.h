/* mig.h: what NVML says about a device's MIG state (mig.c). */
#ifndef GPUMEM_SRC_MIG_H
#define GPUMEM_SRC_MIG_H

#include "gpumem/device.h"
#include "gpumem/mig.h"

/* Fill the MIG fields of `info` (mig, parent_mig_mode, parent_uuid, instance
 * ids and slices, mig_note) for the device whose CUDA UUID bytes are
 * `uuid`, and rewrite info->uuid as NVML names it ("MIG-…" on a slice).
 * Never fails: what cannot be learned is UNKNOWN, with the reason in
 * mig_note, and NVML errors are logged as warnings. */
void gm_mig_describe(const unsigned char uuid[16], gpumem_device_info *info);

#endif
