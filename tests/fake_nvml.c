/* fake_nvml.c: see fake_nvml.h. Handles are pointers into the node's GPU
 * and slice records. */
#include "fake_nvml.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "backend/nvml.h"

#define UNKNOWN_ERROR              999
#define NVML_NO_PERMISSION_OR_SIZE 7

const fake_node fake_a100_seven_slices = {
    "A100 with seven 1g.10gb slices",
    1,
    {{"GPU-a1000000-0000-4000-8000-000000000000",
      "NVIDIA A100-SXM4-80GB",
      1,
      7,
      {{"MIG-a1000007-0000-4000-8000-000000000007", 7, 0, 1, 1, 14, 9728},
       {"MIG-a1000008-0000-4000-8000-000000000008", 8, 0, 1, 1, 14, 9728},
       {"MIG-a1000009-0000-4000-8000-000000000009", 9, 0, 1, 1, 14, 9728},
       {"MIG-a100000a-0000-4000-8000-00000000000a", 10, 0, 1, 1, 14, 9728},
       {"MIG-a100000b-0000-4000-8000-00000000000b", 11, 0, 1, 1, 14, 9728},
       {"MIG-a100000c-0000-4000-8000-00000000000c", 12, 0, 1, 1, 14, 9728},
       {"MIG-a100000d-0000-4000-8000-00000000000d", 13, 0, 1, 1, 14, 9728}}}}};

#define H100_SPLIT_GPU                                                           \
  {                                                                              \
    "GPU-b1000000-0000-4000-8000-000000000000", "NVIDIA H100 80GB HBM3", 1, 3, { \
      {"MIG-b1000002-0000-4000-8000-000000000002", 2, 0, 3, 3, 60, 40192},       \
          {"MIG-b1000003-0000-4000-8000-000000000003", 3, 0, 2, 2, 32, 20096}, { \
        "MIG-b1000004-0000-4000-8000-000000000004", 4, 0, 2, 2, 32, 20096        \
      }                                                                          \
    }                                                                            \
  }

const fake_node fake_h100_split = {"H100 split 3g.40gb + 2 x 2g.20gb", 1, {H100_SPLIT_GPU}};

#define WHOLE(n)                                                                      \
  {                                                                                   \
    "GPU-c10000" #n "-0000-4000-8000-0000000000" #n, "NVIDIA H100 80GB HBM3", 0, 0, { \
      { 0 }                                                                           \
    }                                                                                 \
  }

const fake_node fake_eight_gpus = {
    "eight GPUs without MIG",
    8,
    {WHOLE(00), WHOLE(01), WHOLE(02), WHOLE(03), WHOLE(04), WHOLE(05), WHOLE(06), WHOLE(07)}};

const fake_node fake_mixed = {
    "an H100 split in three plus a whole H100", 2, {H100_SPLIT_GPU, WHOLE(10)}};

static const fake_node *node;
static const char *failing;

static int fails(const char *call) {
  return failing != NULL && strcmp(failing, call) == 0;
}

typedef struct found {
  const fake_gpu *gpu;
  const fake_slice *slice; /* NULL for a GPU handle */
} found;

static found lookup(gm_nvml_device h) {
  for (size_t g = 0; g < node->ngpus; g++) {
    if ((const void *)h == (const void *)&node->gpus[g]) return (found){&node->gpus[g], NULL};
    for (size_t s = 0; s < node->gpus[g].nslices; s++) {
      if ((const void *)h == (const void *)&node->gpus[g].slices[s])
        return (found){&node->gpus[g], &node->gpus[g].slices[s]};
    }
  }
  return (found){NULL, NULL};
}

static int f_init(void) {
  return 0;
}
static int f_shutdown(void) {
  return 0;
}
static const char *f_error_string(int rc) {
  return rc == UNKNOWN_ERROR ? "Unknown Error (fake)" : rc == 6 ? "Not Found" : "fake NVML error";
}
static int f_count(unsigned int *n) {
  *n = (unsigned int)node->ngpus;
  return 0;
}
static int f_by_index(unsigned int i, gm_nvml_device *out) {
  if (i >= node->ngpus) return 2; /* INVALID_ARGUMENT */
  *out = (gm_nvml_device)(void *)&node->gpus[i];
  return 0;
}
static int f_by_uuid(const char *uuid, gm_nvml_device *out) {
  if (fails("nvmlDeviceGetHandleByUUID")) return UNKNOWN_ERROR;
  for (size_t g = 0; g < node->ngpus; g++) {
    if (strcasecmp(node->gpus[g].uuid, uuid) == 0) {
      *out = (gm_nvml_device)(void *)&node->gpus[g];
      return 0;
    }
    for (size_t s = 0; s < node->gpus[g].nslices; s++) {
      if (strcasecmp(node->gpus[g].slices[s].uuid, uuid) == 0) {
        *out = (gm_nvml_device)(void *)&node->gpus[g].slices[s];
        return 0;
      }
    }
  }
  return GM_NVML_ERROR_NOT_FOUND;
}
static int f_uuid(gm_nvml_device h, char *buf, unsigned int len) {
  found f = lookup(h);
  if (f.gpu == NULL) return 2;
  const char *u = f.slice ? f.slice->uuid : f.gpu->uuid;
  if (strlen(u) + 1 > len) return NVML_NO_PERMISSION_OR_SIZE;
  snprintf(buf, len, "%s", u);
  return 0;
}
static int f_name(gm_nvml_device h, char *buf, unsigned int len) {
  found f = lookup(h);
  if (f.gpu == NULL) return 2;
  snprintf(buf, len, "%s%s", f.gpu->name, f.slice ? " MIG" : "");
  return 0;
}
static int f_mig_mode(gm_nvml_device h, unsigned int *cur, unsigned int *pend) {
  found f = lookup(h);
  if (f.gpu == NULL || f.slice != NULL) return 2;
  if (f.gpu->mig_mode < 0) return GM_NVML_ERROR_NOT_SUPPORTED;
  *cur = *pend = (unsigned int)f.gpu->mig_mode;
  return 0;
}
static int f_is_mig(gm_nvml_device h, unsigned int *is) {
  found f = lookup(h);
  if (f.gpu == NULL) return 2;
  *is = f.slice != NULL;
  return 0;
}
static int f_parent(gm_nvml_device h, gm_nvml_device *out) {
  found f = lookup(h);
  if (f.slice == NULL) return 2;
  *out = (gm_nvml_device)(void *)f.gpu;
  return 0;
}
static int f_gi(gm_nvml_device h, unsigned int *v) {
  found f = lookup(h);
  if (f.slice == NULL) return GM_NVML_ERROR_NOT_SUPPORTED;
  *v = f.slice->gi;
  return 0;
}
static int f_ci(gm_nvml_device h, unsigned int *v) {
  found f = lookup(h);
  if (f.slice == NULL) return GM_NVML_ERROR_NOT_SUPPORTED;
  *v = f.slice->ci;
  return 0;
}
static int f_attributes(gm_nvml_device h, gm_nvml_attributes *a) {
  if (fails("nvmlDeviceGetAttributes_v2")) return UNKNOWN_ERROR;
  found f = lookup(h);
  if (f.slice == NULL) return GM_NVML_ERROR_NOT_SUPPORTED;
  memset(a, 0, sizeof *a);
  a->multiprocessorCount = f.slice->sms;
  a->gpuInstanceSliceCount = f.slice->gi_slices;
  a->computeInstanceSliceCount = f.slice->ci_slices;
  a->memorySizeMB = f.slice->memory_mb;
  return 0;
}
static int f_max_mig(gm_nvml_device h, unsigned int *n) {
  found f = lookup(h);
  if (f.gpu == NULL || f.slice != NULL) return 2;
  *n = 7;
  return 0;
}
static int f_mig_by_index(gm_nvml_device h, unsigned int i, gm_nvml_device *out) {
  found f = lookup(h);
  if (f.gpu == NULL || f.slice != NULL) return 2;
  if (i >= f.gpu->nslices) return GM_NVML_ERROR_NOT_FOUND;
  *out = (gm_nvml_device)(void *)&f.gpu->slices[i];
  return 0;
}

static const gm_nvml_ops fake_ops = {
    f_init, f_shutdown,   f_error_string, f_count,        f_by_index, f_by_uuid,
    f_uuid, f_name,       f_mig_mode,     f_is_mig,       f_parent,   f_gi,
    f_ci,   f_attributes, f_max_mig,      f_mig_by_index,
};

void fake_nvml_use(const fake_node *n, const char *fail_call) {
  node = n;
  failing = fail_call;
  gm_nvml_install(&fake_ops, NULL);
}

const char *fake_cuda_uuids(const fake_node *n, char *buf, size_t len) {
  size_t used = 0;
  buf[0] = '\0';
  for (size_t g = 0; g < n->ngpus; g++) {
    const fake_gpu *gpu = &n->gpus[g];
    if (gpu->mig_mode == 1) {
      for (size_t s = 0; s < gpu->nslices; s++) {
        used +=
            (size_t)snprintf(buf + used, len - used, "%s%s", used ? "," : "", gpu->slices[s].uuid);
      }
    } else {
      used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? "," : "", gpu->uuid);
    }
  }
  return buf;
}

int fake_cuda_count(const fake_node *n) {
  int count = 0;
  for (size_t g = 0; g < n->ngpus; g++) {
    count += n->gpus[g].mig_mode == 1 ? (int)n->gpus[g].nslices : 1;
  }
  return count;
}
