/* mig.h: MIG facts (NVML, or the host backend's emulated layout), the MIG
 * profiles of real GPUs, and CUDA_VISIBLE_DEVICES read as the driver reads it
 * (mig.c). */
#ifndef GPUMEM_SRC_MIG_H
#define GPUMEM_SRC_MIG_H

#include <stdbool.h>
#include <stddef.h>

#include "gpumem/device.h"
#include "gpumem/mig.h"

/* Fill the MIG fields of `info` (mig, parent_mig_mode, parent_uuid, instance
 * ids and slices, mig_note) for the device whose CUDA UUID bytes are
 * `uuid`, and rewrite info->uuid as NVML names it ("MIG-…" on a slice).
 * Under the host backend with a GPUMEM_HOST_MIG layout the facts come from
 * the layout; otherwise from NVML. Without NVML, a device whose CUDA name
 * marks it as a MIG device (gm_mig_name_profile) is reported as a slice of
 * an unknown GPU. Never fails: what cannot be learned is UNKNOWN, with the
 * reason in mig_note, and NVML errors are logged as warnings. */
void gm_mig_describe(const unsigned char uuid[16], gpumem_device_info *info);

/* The MIG profile in a device name as the CUDA driver and NVML write it for a
 * MIG device ("NVIDIA A100-SXM4-40GB MIG 1g.5gb", also "... MIG 1c.3g.20gb"):
 * a pointer to the profile ("1g.5gb") inside `name`, or NULL when the name
 * does not mark a MIG device. */
const char *gm_mig_name_profile(const char *name);

/* ---- MIG profiles of real GPUs (the host backend's emulated layouts) ---- */

#define GM_MIG_MEMORY_SLICES  8 /* a MIG-capable GPU's memory is cut in eighths */
#define GM_MIG_COMPUTE_SLICES 7 /* and its SMs in sevenths */

/* One GPU instance profile with a single compute instance ("3g.40gb"). */
typedef struct gm_mig_profile {
  const char *name;
  int compute_slices;  /* the "3g": sevenths of the SMs */
  int memory_slices;   /* eighths of the memory */
  int sm_count;        /* SMs of the instance, as nvidia-smi mig -lgip reports */
  int max_instances;   /* per GPU */
  unsigned placements; /* bit s: the instance may start at memory slice s */
} gm_mig_profile;

/* A MIG-capable GPU model. */
typedef struct gm_mig_model {
  const char *key;  /* as written in GPUMEM_HOST_MIG: "a100-40", "h100", ... */
  const char *name; /* the CUDA device name */
  int cc_major, cc_minor;
  int sm_count;  /* the whole GPU */
  size_t memory; /* bytes, the whole GPU */
  size_t profile_count;
  const gm_mig_profile *profiles;
} gm_mig_model;

/* The MIG-capable GPU models of the table in mig.c (A100 40/80 GB, H100,
 * H200), `*count` of them; gpumem-bench fit reads their profiles. */
const gm_mig_model *gm_mig_models(size_t *count);

/* One physical GPU of a GPUMEM_HOST_MIG layout. */
typedef struct gm_mig_spec_gpu {
  const gm_mig_model *model; /* NULL: a generic emulated GPU ("gpu") */
  bool mig;                  /* MIG mode enabled: its slices are the CUDA devices */
  int slice_count;
  const gm_mig_profile *slices[GM_MIG_COMPUTE_SLICES]; /* in the order written */
  int start[GM_MIG_COMPUTE_SLICES];                    /* placement: first memory slice */
  int gpu_instance_id[GM_MIG_COMPUTE_SLICES];
} gm_mig_spec_gpu;

typedef struct gm_mig_spec {
  int gpu_count;
  int device_count; /* CUDA devices: slices of MIG GPUs and the other GPUs */
  gm_mig_spec_gpu gpus[GPUMEM_MAX_DEVICES];
} gm_mig_spec;

/* Parse a GPUMEM_HOST_MIG layout (syntax in README, "Options"): GPUs
 * separated by ';', each "gpu" (a generic emulated device), a model ("h100",
 * a whole GPU with MIG disabled) or a model and its GPU instances
 * ("h100:3g.40gb,2g.20gb*2"). Every instance must be a profile of the model,
 * within its instance limit, and the instances must fit the GPU (a placement
 * is searched as the driver's placement table allows). False, with `why`
 * naming the bad part, for anything else; `out` may be NULL to validate. */
bool gm_mig_spec_parse(const char *text, gm_mig_spec *out, char *why, size_t why_len);

/* ---- CUDA_VISIBLE_DEVICES ---- */

/* Read `text` as CUDA_VISIBLE_DEVICES against a node: `gpus` (n of them, in
 * NVML/PCI order) and `cuda_order` (cuda_order[k] is the index in `gpus` of
 * the GPU that index k names; NULL for the identity). With gpus NULL only the
 * syntax is checked. Fills `out` (which the caller has set up: `set`,
 * `index_order`), including the devices the process sees. This is the one
 * parser: gpumem_visible_devices_read and the host backend use it. */
void gm_visible_resolve(const char *text, const gpumem_mig_gpu *gpus, size_t n,
                        const int *cuda_order, gpumem_visible_devices *out);

#endif
