/* fake_nvml.h: an NVML function table over a made-up node, installed with
 * gm_nvml_install() so that MIG layouts can be tested without MIG hardware.
 * The nodes the MIG tests use are defined here once. */
#ifndef GPUMEM_TEST_FAKE_NVML_H
#define GPUMEM_TEST_FAKE_NVML_H

#include <stddef.h>

#define FAKE_MAX_GPUS   8
#define FAKE_MAX_SLICES 7

typedef struct fake_slice {
  const char *uuid; /* "MIG-…" */
  unsigned gi, ci, gi_slices, ci_slices, sms;
  unsigned long long memory_mb;
} fake_slice;

typedef struct fake_gpu {
  const char *uuid; /* "GPU-…" */
  const char *name;
  int mig_mode; /* -1: the GPU cannot do MIG; 0: disabled; 1: enabled */
  size_t nslices;
  fake_slice slices[FAKE_MAX_SLICES];
} fake_gpu;

typedef struct fake_node {
  const char *what;
  size_t ngpus;
  fake_gpu gpus[FAKE_MAX_GPUS];
} fake_node;

/* An A100 split into seven 1g.10gb slices. */
extern const fake_node fake_a100_seven_slices;
/* An H100 split 3g.40gb + 2 x 2g.20gb. */
extern const fake_node fake_h100_split;
/* Eight GPUs without MIG. */
extern const fake_node fake_eight_gpus;
/* The H100 split above plus a whole H100 (MIG disabled). */
extern const fake_node fake_mixed;

/* Answer NVML calls from `node` from now on. `fail_call`, if not NULL, names
 * an NVML function ("nvmlDeviceGetAttributes_v2", ...) that fails with
 * NVML_ERROR_UNKNOWN (999). */
void fake_nvml_use(const fake_node *node, const char *fail_call);

/* The UUIDs CUDA would show for `node`, comma-separated, in CUDA's order:
 * each GPU's slices when MIG is enabled, else the GPU (for GPUMEM_HOST_UUIDS). */
const char *fake_cuda_uuids(const fake_node *node, char *buf, size_t len);
/* How many CUDA devices `node` shows. */
int fake_cuda_count(const fake_node *node);

#endif
