/* mig.c: MIG facts, the MIG profiles of real GPUs, and CUDA_VISIBLE_DEVICES
 * read as the CUDA driver reads it.
 *
 * CUDA gives each device's UUID bytes but no MIG flag. NVML knows: asked for
 * a handle by UUID ("GPU-…" first, then "MIG-…", since the bytes are the same
 * and only the prefix differs), it says whether the handle is a MIG device,
 * which physical GPU holds it, and its GPU- and compute-instance ids and
 * slice counts. gm_mig_describe() fills those fields of a device's info;
 * gpumem_mig_layout() walks every physical GPU and its slices. Without NVML
 * the one thing left is the device's name: the driver names a MIG device
 * "<GPU name> MIG <profile>", so such a device is reported as a slice of an
 * unknown GPU rather than as "unknown".
 *
 * The host backend can emulate a node with MIG (GPUMEM_HOST_MIG). It then
 * stands in for NVML: both functions above ask the backend first (the seam's
 * mig_describe and mig_node operations, which the CUDA backend leaves to
 * NVML), and the
 * layout is written with the profiles of real GPUs, kept here in one table
 * (NVIDIA's MIG user guide, "Supported MIG Profiles"). Without such a layout
 * the host backend knows nothing of MIG and NVML is asked, as on a GPU; tests
 * use that to pair emulated devices with a simulated NVML.
 *
 * gm_visible_resolve() reads CUDA_VISIBLE_DEVICES entry by entry (indices,
 * GPU-<uuid> and unique prefixes, MIG-<uuid>, MIG-GPU-<uuid>/<gi>/<ci>)
 * against a node and applies the driver's rules (gpumem/mig.h): the list
 * ends at the first invalid entry, a device named twice hides every device,
 * an index is read like strtoul. It is the only parser: the public
 * gpumem_visible_devices_read() explains a list with it, and the host
 * backend uses it to decide which emulated devices a process sees. Which GPU
 * an index names follows CUDA_DEVICE_ORDER (index_order below).
 *
 * Nothing here needs a CUDA device: gpumem-info uses it to explain why a
 * process sees what it sees.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "log.h"
#include "mig.h"
#include "backend/nvml.h"
#include "uuid.h"

#define NVML_UUID_MAX 96
#define NVML_NAME_MAX 96

/* The backend's own node (the host backend's emulated GPUs), when it has
 * one: *from_layout says whether GPUMEM_HOST_MIG described it. False where
 * NVML is the source. */
static bool backend_node(gpumem_mig_gpu *gpus, size_t max, size_t *count, bool *from_layout) {
  if (gm_backend() == NULL) return false;
  if (gm_be_mig_node(gpus, max, count, from_layout) == GPUMEM_OK) return true;
  gm_error_discard();
  return false;
}

/* ---- a MIG device's name ---- */

static bool skip_digits(const char **p) {
  const char *start = *p;
  while (isdigit((unsigned char)**p))
    (*p)++;
  return *p > start;
}

const char *gm_mig_name_profile(const char *name) {
  if (name == NULL) return NULL;
  for (const char *m = strstr(name, " MIG "); m != NULL; m = strstr(m + 1, " MIG ")) {
    const char *profile = m + 5, *p = profile, *c = profile;
    if (skip_digits(&c) && c[0] == 'c' && c[1] == '.') p = c + 2; /* "1c.3g.20gb" */
    if (!skip_digits(&p) || p[0] != 'g' || p[1] != '.') continue;
    p += 2;
    if (skip_digits(&p) && strncmp(p, "gb", 2) == 0) return profile;
  }
  return NULL;
}

/* Copy the profile token (up to a space) into out. */
static void copy_profile(const char *profile, char *out, size_t len) {
  size_t n = strcspn(profile, " ");
  snprintf(out, len, "%.*s", (int)(n < len ? n : len - 1), profile);
}

/* ---- one device's MIG facts ---- */

/* nvmlDeviceGetUUID into a 48-byte field (NVML wants room for 96). */
static int nvml_uuid(const gm_nvml_ops *nv, gm_nvml_device dev, char out[48]) {
  char buf[NVML_UUID_MAX] = "";
  int rc = nv->device_get_uuid(dev, buf, sizeof buf);
  if (rc != GM_NVML_SUCCESS) return rc;
  size_t n = strnlen(buf, sizeof buf);
  if (n >= 48) n = 47;
  memcpy(out, buf, n);
  out[n] = '\0';
  return GM_NVML_SUCCESS;
}

static void set_unknown(gpumem_device_info *info, const char *why) {
  info->mig = GPUMEM_UNKNOWN;
  info->parent_mig_mode = GPUMEM_UNKNOWN;
  info->parent_uuid[0] = '\0';
  info->gpu_instance_id = info->compute_instance_id = -1;
  info->gpu_instance_slices = info->compute_instance_slices = 0;
  snprintf(info->mig_note, sizeof info->mig_note, "%s", why);
}

/* NVML is missing: all that is left is the name the driver gave the device. */
static void describe_without_nvml(gpumem_device_info *info, const char *why) {
  set_unknown(info, why);
  const char *profile = gm_mig_name_profile(info->name);
  if (profile == NULL) return;
  char p[16];
  copy_profile(profile, p, sizeof p);
  info->mig = GPUMEM_YES;
  info->parent_mig_mode = GPUMEM_YES;
  snprintf(info->mig_note, sizeof info->mig_note,
           "a MIG %s device by its CUDA name; its GPU and ids need NVML (%.60s)", p, why);
}

/* Log an NVML failure once per call site and describe it in `info`. */
static void nvml_failed(const gm_nvml_ops *nv, gpumem_device_info *info, const char *call, int rc) {
  char buf[32];
  char why[160];
  snprintf(why, sizeof why, "%s failed: %s", call, gm_nvml_error(nv, rc, buf, sizeof buf));
  gm_log(GPUMEM_LOG_WARN, "device %d: %s; MIG state unknown", info->ordinal, why);
  set_unknown(info, why);
}

static gpumem_tristate mig_mode_of(const gm_nvml_ops *nv, gm_nvml_device gpu) {
  unsigned int current = 0, pending = 0;
  int rc = nv->device_get_mig_mode(gpu, &current, &pending);
  if (rc == GM_NVML_ERROR_NOT_SUPPORTED) return GPUMEM_NO; /* a GPU without MIG */
  if (rc != GM_NVML_SUCCESS) return GPUMEM_UNKNOWN;
  return current ? GPUMEM_YES : GPUMEM_NO;
}

void gm_mig_describe(const unsigned char uuid[16], gpumem_device_info *info) {
  if (gm_backend() != NULL) { /* the backend's own facts first (an emulated MIG layout) */
    if (gm_be_mig_describe(info->ordinal, info) == GPUMEM_OK) return;
    gm_error_discard();
  }
  const char *why = NULL;
  const gm_nvml_ops *nv = gm_nvml(&why);
  if (nv == NULL) {
    describe_without_nvml(info, why);
    return;
  }
  char text[GM_UUID_TEXT_MAX];
  gm_nvml_device dev = NULL;
  gm_uuid_format(uuid, "GPU-", text, sizeof text);
  int rc = nv->device_get_handle_by_uuid(text, &dev);
  if (rc == GM_NVML_ERROR_NOT_FOUND) {
    gm_uuid_format(uuid, "MIG-", text, sizeof text);
    rc = nv->device_get_handle_by_uuid(text, &dev);
  }
  if (rc == GM_NVML_ERROR_NOT_FOUND) {
    set_unknown(info, "NVML does not know this device's UUID (a container or VM that hides it?)");
    return;
  }
  if (rc != GM_NVML_SUCCESS) return nvml_failed(nv, info, "nvmlDeviceGetHandleByUUID", rc);
  unsigned int is_mig = 0;
  rc = nv->device_is_mig_device_handle(dev, &is_mig);
  if (rc != GM_NVML_SUCCESS) return nvml_failed(nv, info, "nvmlDeviceIsMigDeviceHandle", rc);
  set_unknown(info, "");
  info->mig = is_mig ? GPUMEM_YES : GPUMEM_NO;
  snprintf(info->uuid, sizeof info->uuid, "%s", text);
  if (!is_mig) {
    snprintf(info->parent_uuid, sizeof info->parent_uuid, "%s", text);
    info->parent_mig_mode = mig_mode_of(nv, dev);
    return;
  }
  gm_nvml_device parent = NULL;
  char parent_uuid[48] = "";
  unsigned int gi = 0, ci = 0;
  gm_nvml_attributes attrs;
  memset(&attrs, 0, sizeof attrs);
  if ((rc = nv->device_get_device_handle_from_mig_device_handle(dev, &parent)) != 0)
    return nvml_failed(nv, info, "nvmlDeviceGetDeviceHandleFromMigDeviceHandle", rc);
  if ((rc = nvml_uuid(nv, parent, parent_uuid)) != 0)
    return nvml_failed(nv, info, "nvmlDeviceGetUUID", rc);
  if ((rc = nv->device_get_gpu_instance_id(dev, &gi)) != 0)
    return nvml_failed(nv, info, "nvmlDeviceGetGpuInstanceId", rc);
  if ((rc = nv->device_get_compute_instance_id(dev, &ci)) != 0)
    return nvml_failed(nv, info, "nvmlDeviceGetComputeInstanceId", rc);
  if ((rc = nv->device_get_attributes(dev, &attrs)) != 0)
    return nvml_failed(nv, info, "nvmlDeviceGetAttributes_v2", rc);
  info->mig = GPUMEM_YES;
  info->parent_mig_mode = GPUMEM_YES;
  memcpy(info->parent_uuid, parent_uuid, sizeof info->parent_uuid);
  info->gpu_instance_id = (int)gi;
  info->compute_instance_id = (int)ci;
  info->gpu_instance_slices = (int)attrs.gpuInstanceSliceCount;
  info->compute_instance_slices = (int)attrs.computeInstanceSliceCount;
}

/* ---- the node's layout ---- */

static gpumem_status nvml_error(const gm_nvml_ops *nv, const char *call, int rc) {
  char buf[32];
  return gm_error(GPUMEM_ERR_DRIVER, "%s failed: %s", call, gm_nvml_error(nv, rc, buf, sizeof buf));
}

static gpumem_status read_slice(const gm_nvml_ops *nv, gm_nvml_device mig, gpumem_mig_slice *s) {
  unsigned int gi = 0, ci = 0;
  gm_nvml_attributes a;
  memset(&a, 0, sizeof a);
  memset(s, 0, sizeof *s);
  int rc;
  if ((rc = nvml_uuid(nv, mig, s->uuid)) != 0) return nvml_error(nv, "nvmlDeviceGetUUID", rc);
  if ((rc = nv->device_get_gpu_instance_id(mig, &gi)) != 0)
    return nvml_error(nv, "nvmlDeviceGetGpuInstanceId", rc);
  if ((rc = nv->device_get_compute_instance_id(mig, &ci)) != 0)
    return nvml_error(nv, "nvmlDeviceGetComputeInstanceId", rc);
  if ((rc = nv->device_get_attributes(mig, &a)) != 0)
    return nvml_error(nv, "nvmlDeviceGetAttributes_v2", rc);
  s->gpu_instance_id = (int)gi;
  s->compute_instance_id = (int)ci;
  s->gpu_instance_slices = (int)a.gpuInstanceSliceCount;
  s->compute_instance_slices = (int)a.computeInstanceSliceCount;
  s->sm_count = (int)a.multiprocessorCount;
  s->memory_bytes = (size_t)a.memorySizeMB << 20;
  char name[NVML_NAME_MAX] = ""; /* "NVIDIA H100 80GB HBM3 MIG 3g.40gb": the profile, if said */
  if (nv->device_get_name(mig, name, sizeof name) == GM_NVML_SUCCESS) {
    const char *profile = gm_mig_name_profile(name);
    if (profile != NULL) copy_profile(profile, s->profile, sizeof s->profile);
  }
  return GPUMEM_OK;
}

static gpumem_status read_gpu(const gm_nvml_ops *nv, unsigned int index, gpumem_mig_gpu *g) {
  gm_nvml_device dev = NULL;
  int rc;
  memset(g, 0, sizeof *g);
  g->nvml_index = (int)index;
  if ((rc = nv->device_get_handle_by_index(index, &dev)) != 0)
    return nvml_error(nv, "nvmlDeviceGetHandleByIndex_v2", rc);
  if ((rc = nvml_uuid(nv, dev, g->uuid)) != 0) return nvml_error(nv, "nvmlDeviceGetUUID", rc);
  if ((rc = nv->device_get_name(dev, g->name, sizeof g->name)) != 0)
    return nvml_error(nv, "nvmlDeviceGetName", rc);
  unsigned int current = 0, pending = 0;
  rc = nv->device_get_mig_mode(dev, &current, &pending);
  g->mig_mode = rc == GM_NVML_SUCCESS ? (current ? GPUMEM_YES : GPUMEM_NO) : GPUMEM_UNKNOWN;
  if (g->mig_mode != GPUMEM_YES) return GPUMEM_OK;
  unsigned int max = 0;
  if ((rc = nv->device_get_max_mig_device_count(dev, &max)) != 0)
    return nvml_error(nv, "nvmlDeviceGetMaxMigDeviceCount", rc);
  for (unsigned int i = 0; i < max && g->slice_count < GPUMEM_MAX_MIG_SLICES; i++) {
    gm_nvml_device mig = NULL;
    rc = nv->device_get_mig_device_handle_by_index(dev, i, &mig);
    if (rc == GM_NVML_ERROR_NOT_FOUND) continue; /* an unused slot */
    if (rc != GM_NVML_SUCCESS) return nvml_error(nv, "nvmlDeviceGetMigDeviceHandleByIndex", rc);
    gpumem_status st = read_slice(nv, mig, &g->slices[g->slice_count]);
    if (st != GPUMEM_OK) return st;
    g->slice_count++;
  }
  return GPUMEM_OK;
}

static gpumem_status nvml_layout(gpumem_mig_gpu *gpus, size_t max, size_t *count) {
  const char *why = NULL;
  const gm_nvml_ops *nv = gm_nvml(&why);
  if (nv == NULL) return gm_error(GPUMEM_ERR_NOT_SUPPORTED, "NVML unavailable: %s", why);
  unsigned int n = 0;
  int rc = nv->device_get_count(&n);
  if (rc != GM_NVML_SUCCESS) return nvml_error(nv, "nvmlDeviceGetCount_v2", rc);
  for (unsigned int i = 0; i < n && i < max; i++) {
    gpumem_status st = read_gpu(nv, i, &gpus[i]);
    if (st != GPUMEM_OK) return st;
  }
  *count = n;
  return GPUMEM_OK;
}

static gpumem_status layout(gpumem_mig_gpu *gpus, size_t max, size_t *count) {
  if (count == NULL || (gpus == NULL && max > 0)) {
    return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "gpus or count is NULL");
  }
  bool from_layout = false;
  size_t n = 0;
  if (backend_node(gpus, max, &n, &from_layout) && from_layout) {
    *count = n;
    return GPUMEM_OK;
  }
  return nvml_layout(gpus, max, count);
}

GPUMEM_API gpumem_status gpumem_mig_layout(gpumem_mig_gpu *gpus, size_t max, size_t *count) {
  gm_error_discard();
  GM_RETURN(layout(gpus, max, count));
}

/* ---- MIG profiles of real GPUs ----
 *
 * NVIDIA's MIG user guide, "Supported MIG Profiles"
 * (docs.nvidia.com/datacenter/tesla/mig-user-guide/supported-mig-profiles.html):
 * on the A100-SXM4-40GB, 1g.5gb has 1/8 of the memory and 1/7 of the SMs (up
 * to 7 instances), 1g.10gb 2/8 and 1/7 (4), 2g.10gb 2/8 and 2/7 (3), 3g.20gb
 * 4/8 and 3/7 (2), 4g.20gb 4/8 and 4/7 (1), 7g.40gb all of both (1); on the
 * 80 GB A100 and the H100 the same profiles are named 1g.10gb, 1g.20gb,
 * 2g.20gb, 3g.40gb, 4g.40gb, 7g.80gb, and on the H200 141GB 1g.18gb,
 * 1g.35gb, 2g.35gb, 3g.71gb, 4g.71gb, 7g.141gb. An instance's memory is here
 * its fraction of the GPU's memory (the driver reports a little less: CUDA
 * shows 4864 MiB for an A100-40GB's 1g.5gb). SM counts are those
 * `nvidia-smi mig -lgip` reports: A100 14 per compute slice (98 for 7g); H100
 * 16, 26 (1g.20gb), 32, 60, 64 and 132. The H200 (the same GH100 die with 132
 * SMs) is given the H100's counts, unverified. Placements (first memory slice
 * an instance may start at) are those of `nvidia-smi mig -lgipp`: 1-slice
 * instances at 0..6, 2-slice at 0, 2, 4 (the 1g.10gb-like ones also at 6),
 * 4-slice at 0 and 4 (4g only at 0), 7g at 0. */

#define GIB                ((size_t)1 << 30)
#define AT_SLICES_0_TO_6   0x7fu /* memory slices 0..6 */
#define AT_EVEN_SLICES     0x55u /* 0, 2, 4, 6 */
#define AT_SLICES_0_2_4    0x15u
#define AT_HALVES          0x11u /* 0, 4 */
#define AT_START           0x01u
#define A100_SMS_PER_SLICE 14
#define A100_SMS           108 /* the whole A100 (98 of them in a 7g instance) */
#define GH100_SMS          132 /* H100 SXM5 and H200 */
#define MIG_PROFILE_COUNT  6
#define CC_AMPERE          8
#define CC_HOPPER          9
#define A100_SMS_7G        98
#define H100_SMS_1G        16
#define H100_SMS_1G_BIG    26
#define H100_SMS_2G        32
#define H100_SMS_3G        60
#define H100_SMS_4G        64
#define H200_MEMORY_GIB    141
#define A100_SMALL_GIB     40
#define A100_LARGE_GIB     80
#define H100_GIB           80

/* The six profiles of an A100/H100-class GPU, by name and SM count. */
#define MIG_PROFILES(n1, n1big, n2, n3, n4, n7, sm1, sm1big, sm2, sm3, sm4, sm7)    \
  {                                                                                 \
    {n1, 1, 1, sm1, 7, AT_SLICES_0_TO_6}, {n1big, 1, 2, sm1big, 4, AT_EVEN_SLICES}, \
        {n2, 2, 2, sm2, 3, AT_SLICES_0_2_4}, {n3, 3, 4, sm3, 2, AT_HALVES},         \
        {n4, 4, 4, sm4, 1, AT_START}, {n7, 7, 8, sm7, 1, AT_START},                 \
  }

static const gm_mig_profile a100_40_profiles[MIG_PROFILE_COUNT] =
    MIG_PROFILES("1g.5gb", "1g.10gb", "2g.10gb", "3g.20gb", "4g.20gb", "7g.40gb",
                 A100_SMS_PER_SLICE, A100_SMS_PER_SLICE, 2 * A100_SMS_PER_SLICE,
                 3 * A100_SMS_PER_SLICE, 4 * A100_SMS_PER_SLICE, A100_SMS_7G);
static const gm_mig_profile a100_80_profiles[MIG_PROFILE_COUNT] =
    MIG_PROFILES("1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb",
                 A100_SMS_PER_SLICE, A100_SMS_PER_SLICE, 2 * A100_SMS_PER_SLICE,
                 3 * A100_SMS_PER_SLICE, 4 * A100_SMS_PER_SLICE, A100_SMS_7G);
static const gm_mig_profile h100_profiles[MIG_PROFILE_COUNT] =
    MIG_PROFILES("1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb", H100_SMS_1G,
                 H100_SMS_1G_BIG, H100_SMS_2G, H100_SMS_3G, H100_SMS_4G, GH100_SMS);
static const gm_mig_profile h200_profiles[MIG_PROFILE_COUNT] =
    MIG_PROFILES("1g.18gb", "1g.35gb", "2g.35gb", "3g.71gb", "4g.71gb", "7g.141gb", H100_SMS_1G,
                 H100_SMS_1G_BIG, H100_SMS_2G, H100_SMS_3G, H100_SMS_4G, GH100_SMS);

static const gm_mig_model models[] = {
    {"a100-40", "NVIDIA A100-SXM4-40GB", CC_AMPERE, 0, A100_SMS, A100_SMALL_GIB *GIB,
     MIG_PROFILE_COUNT, a100_40_profiles},
    {"a100-80", "NVIDIA A100-SXM4-80GB", CC_AMPERE, 0, A100_SMS, A100_LARGE_GIB *GIB,
     MIG_PROFILE_COUNT, a100_80_profiles},
    {"h100", "NVIDIA H100 80GB HBM3", CC_HOPPER, 0, GH100_SMS, H100_GIB *GIB, MIG_PROFILE_COUNT,
     h100_profiles},
    {"h200", "NVIDIA H200", CC_HOPPER, 0, GH100_SMS, H200_MEMORY_GIB *GIB, MIG_PROFILE_COUNT,
     h200_profiles},
};

const gm_mig_model *gm_mig_models(size_t *count) {
  *count = sizeof models / sizeof models[0];
  return models;
}

#define GENERIC_GPU "gpu"
#define MAX_COUNT   7 /* "*N": at most a GPU's worth of instances */

/* The GPU instance id the driver gives an instance at this placement: 7 + s
 * for a one-memory-slice instance at slice s (an A100 split in seven
 * 1g.5gb shows ids 7..13), 3 + s/2 for two slices, 1 at slice 4 and 2 at
 * slice 0 for half a GPU (nvidia-smi mig -lgi on an A100 split 3g + 3g), 0
 * for the whole GPU. */
#define GI_ID_WHOLE_GPU    0
#define GI_ID_HALF_AT_4    1
#define GI_ID_HALF_AT_0    2
#define GI_ID_FIRST_2SLICE 3
#define GI_ID_FIRST_1SLICE 7
static int gpu_instance_id(int start, int memory_slices) {
  switch (memory_slices) {
  case GM_MIG_MEMORY_SLICES:
    return GI_ID_WHOLE_GPU;
  case GM_MIG_MEMORY_SLICES / 2:
    return start == 0 ? GI_ID_HALF_AT_0 : GI_ID_HALF_AT_4;
  case 2:
    return GI_ID_FIRST_2SLICE + start / 2;
  default:
    return GI_ID_FIRST_1SLICE + start;
  }
}

/* Place instances i.. of g on the memory slices not in `used` (first fit,
 * backtracking): true when every instance has a placement. */
static bool place(gm_mig_spec_gpu *g, int i, unsigned used) {
  if (i == g->slice_count) return true;
  const gm_mig_profile *p = g->slices[i];
  unsigned span = (1u << p->memory_slices) - 1;
  for (int s = 0; s < GM_MIG_MEMORY_SLICES; s++) {
    if (((p->placements >> s) & 1u) == 0 || (used & (span << s)) != 0) continue;
    g->start[i] = s;
    if (place(g, i + 1, used | (span << s))) return true;
  }
  return false;
}

/* Trim spaces at both ends of [*s, *s + *n). */
static void trim(const char **s, size_t *n) {
  while (*n > 0 && isspace((unsigned char)**s))
    (*s)++, (*n)--;
  while (*n > 0 && isspace((unsigned char)(*s)[*n - 1]))
    (*n)--;
}

static void profile_names(const gm_mig_model *m, char *out, size_t len) {
  size_t used = 0;
  out[0] = '\0';
  for (size_t i = 0; i < m->profile_count && used < len; i++) {
    used += (size_t)snprintf(out + used, len - used, "%s%s", i ? ", " : "", m->profiles[i].name);
  }
}

/* One "profile[*count]" item of a GPU's list. */
static bool parse_instances(const gm_mig_model *m, const char *s, size_t n, gm_mig_spec_gpu *g,
                            char *why, size_t len) {
  trim(&s, &n);
  const char *star = memchr(s, '*', n);
  size_t name_len = star ? (size_t)(star - s) : n;
  long count = 1;
  if (star != NULL) {
    char digits[8];
    const char *d = star + 1;
    size_t dn = n - name_len - 1;
    trim(&d, &dn);
    if (dn == 0 || dn >= sizeof digits || strspn(d, "0123456789") < dn) {
      snprintf(why, len, "'%.*s': the count after '*' is not a number", (int)n, s);
      return false;
    }
    memcpy(digits, d, dn);
    digits[dn] = '\0';
    count = strtol(digits, NULL, 10);
    if (count < 1 || count > MAX_COUNT) {
      snprintf(why, len, "'%.*s': the count must be 1..%d", (int)n, s, MAX_COUNT);
      return false;
    }
  }
  trim(&s, &name_len);
  const gm_mig_profile *p = NULL;
  for (size_t i = 0; i < m->profile_count && p == NULL; i++) {
    if (strlen(m->profiles[i].name) == name_len &&
        strncasecmp(m->profiles[i].name, s, name_len) == 0)
      p = &m->profiles[i];
  }
  if (p == NULL) {
    char names[96];
    profile_names(m, names, sizeof names);
    snprintf(why, len, "'%.*s' is not a MIG profile of the %s (%s)", (int)name_len, s, m->name,
             names);
    return false;
  }
  for (long k = 0; k < count; k++) {
    if (g->slice_count == GM_MIG_COMPUTE_SLICES) {
      snprintf(why, len, "more than %d GPU instances on one %s", GM_MIG_COMPUTE_SLICES, m->name);
      return false;
    }
    g->slices[g->slice_count++] = p;
  }
  return true;
}

/* One GPU: "gpu", "<model>" or "<model>:<instances>". */
static bool parse_gpu(const char *s, size_t n, gm_mig_spec_gpu *g, char *why, size_t len) {
  trim(&s, &n);
  memset(g, 0, sizeof *g);
  const char *colon = memchr(s, ':', n);
  size_t key_len = colon ? (size_t)(colon - s) : n;
  const char *key = s;
  trim(&key, &key_len);
  if (key_len == strlen(GENERIC_GPU) && strncasecmp(key, GENERIC_GPU, key_len) == 0) {
    if (colon == NULL) return true;
    snprintf(why, len, "'%.*s': a generic emulated gpu has no MIG profiles (name a model)", (int)n,
             s);
    return false;
  }
  for (size_t i = 0; i < GM_ARRAY_SIZE(models) && g->model == NULL; i++) {
    if (strlen(models[i].key) == key_len && strncasecmp(models[i].key, key, key_len) == 0)
      g->model = &models[i];
  }
  if (g->model == NULL) {
    snprintf(why, len, "'%.*s' is not gpu, a100-40, a100-80, h100 or h200", (int)key_len, key);
    return false;
  }
  if (colon == NULL) return true; /* a whole GPU, MIG disabled */
  g->mig = true;
  const char *list = colon + 1, *end = s + n;
  for (;;) {
    const char *comma = memchr(list, ',', (size_t)(end - list));
    size_t item = comma ? (size_t)(comma - list) : (size_t)(end - list);
    const char *t = list;
    size_t tn = item;
    trim(&t, &tn);
    if (tn == 0) {
      snprintf(why, len, "'%.*s': an empty GPU instance entry", (int)n, s);
      return false;
    }
    if (!parse_instances(g->model, list, item, g, why, len)) return false;
    if (comma == NULL) break;
    list = comma + 1;
  }
  int per_profile[MIG_PROFILE_COUNT] = {0}, compute = 0;
  for (int i = 0; i < g->slice_count; i++) {
    const gm_mig_profile *p = g->slices[i];
    compute += p->compute_slices;
    if (++per_profile[p - g->model->profiles] > p->max_instances) {
      snprintf(why, len, "'%.*s': at most %d %s instance(s) fit one %s", (int)n, s,
               p->max_instances, p->name, g->model->name);
      return false;
    }
  }
  if (compute > GM_MIG_COMPUTE_SLICES || !place(g, 0, 0)) {
    snprintf(why, len,
             "'%.*s' does not fit one %s (%d compute and %d memory slices, at the placements the "
             "driver allows)",
             (int)n, s, g->model->name, GM_MIG_COMPUTE_SLICES, GM_MIG_MEMORY_SLICES);
    return false;
  }
  for (int i = 0; i < g->slice_count; i++)
    g->gpu_instance_id[i] = gpu_instance_id(g->start[i], g->slices[i]->memory_slices);
  return true;
}

bool gm_mig_spec_parse(const char *text, gm_mig_spec *out, char *why, size_t len) {
  memset(out, 0, sizeof *out);
  const char *s = text;
  for (;;) {
    const char *semi = strchr(s, ';');
    size_t n = semi ? (size_t)(semi - s) : strlen(s);
    const char *t = s;
    size_t tn = n;
    trim(&t, &tn);
    if (tn == 0) {
      snprintf(why, len, "GPU %d is empty", out->gpu_count);
      return false;
    }
    if (out->gpu_count == GPUMEM_MAX_DEVICES) {
      snprintf(why, len, "more than %d GPUs", GPUMEM_MAX_DEVICES);
      return false;
    }
    gm_mig_spec_gpu *g = &out->gpus[out->gpu_count];
    char detail[192];
    if (!parse_gpu(s, n, g, detail, sizeof detail)) {
      snprintf(why, len, "GPU %d: %s", out->gpu_count, detail);
      return false;
    }
    out->gpu_count++;
    out->device_count += g->mig ? g->slice_count : 1;
    if (out->device_count > GPUMEM_MAX_DEVICES) {
      snprintf(why, len, "more than %d CUDA devices", GPUMEM_MAX_DEVICES);
      return false;
    }
    if (semi == NULL) return true;
    s = semi + 1;
  }
}

/* ---- CUDA_VISIBLE_DEVICES ---- */

#define INDEX_DIGITS_MAX 6

/* A UUID body (after the prefix): hex digits and dashes, at least one digit,
 * at most 32; `full` demands all 32. */
static bool uuid_body(const char *s, bool full) {
  int digits = 0;
  for (; *s; s++) {
    if (*s == '-') continue;
    if (!isxdigit((unsigned char)*s)) return false;
    digits++;
  }
  return full ? digits == 32 : digits > 0 && digits <= 32;
}

/* Parse one entry's syntax; false with `why` when it is not valid. An index
 * is its leading digits, as strtoul reads it ("1gpu" is 1), which is how
 * the driver reads it (PyTorch's torch/cuda/__init__.py, _parse_visible_devices:
 * "CUDA_VISIBLE_DEVICES uses something like strtoul"). */
static bool parse_entry(const char *text, gpumem_visible_entry *e, char *why, size_t len) {
  memset(e, 0, sizeof *e);
  snprintf(e->text, sizeof e->text, "%s", text);
  e->index = e->gpu_instance_id = e->compute_instance_id = -1;
  if (text[0] == '\0') {
    snprintf(why, len, "an empty entry");
    return false;
  }
  size_t digits = strspn(text, "0123456789");
  if (digits > 0) {
    long v = digits <= INDEX_DIGITS_MAX ? strtol(text, NULL, 10) : 0;
    if (digits > INDEX_DIGITS_MAX || v >= GPUMEM_MAX_DEVICES * 16) {
      snprintf(why, len, "index %.*s is out of range", (int)digits, text);
      return false;
    }
    e->kind = GPUMEM_VISIBLE_INDEX;
    e->index = (int)v;
    return true;
  }
  if (gm_starts_with_nocase(text, "MIG-GPU-")) {
    char uuid[64];
    unsigned gi = 0, ci = 0;
    char tail = 0;
    const char *slash = strchr(text, '/');
    size_t n = slash ? (size_t)(slash - text) : 0;
    if (slash == NULL || n >= sizeof uuid || sscanf(slash, "/%u/%u%c", &gi, &ci, &tail) != 2) {
      snprintf(why, len, "'%s' is not MIG-GPU-<uuid>/<gpu instance>/<compute instance>", text);
      return false;
    }
    memcpy(uuid, text + 8, n - 8);
    uuid[n - 8] = '\0';
    if (!uuid_body(uuid, true)) {
      snprintf(why, len, "'%s' does not hold a full GPU UUID", text);
      return false;
    }
    e->kind = GPUMEM_VISIBLE_MIG_LEGACY;
    e->gpu_instance_id = (int)gi;
    e->compute_instance_id = (int)ci;
    return true;
  }
  if (gm_starts_with_nocase(text, "MIG-")) {
    if (!uuid_body(text + 4, true)) {
      snprintf(why, len, "'%s' is not MIG- followed by a full UUID", text);
      return false;
    }
    e->kind = GPUMEM_VISIBLE_MIG_UUID;
    return true;
  }
  if (gm_starts_with_nocase(text, "GPU-")) {
    if (!uuid_body(text + 4, false)) {
      snprintf(why, len, "'%s' is not GPU- followed by a UUID or a prefix of one", text);
      return false;
    }
    e->kind = GPUMEM_VISIBLE_GPU_UUID;
    return true;
  }
  snprintf(why, len, "'%s' is not an index, GPU-<uuid>, MIG-<uuid> or MIG-GPU-<uuid>/<gi>/<ci>",
           text);
  return false;
}

/* The devices an entry names. */
typedef struct named_devices {
  size_t count;
  const char *uuid[GPUMEM_MAX_MIG_SLICES];
} named_devices;

/* A GPU's CUDA devices: its slices in MIG mode, else itself. */
static void devices_of(const gpumem_mig_gpu *g, named_devices *out) {
  out->count = 0;
  if (g->mig_mode != GPUMEM_YES) {
    out->uuid[out->count++] = g->uuid;
    return;
  }
  for (size_t k = 0; k < g->slice_count && k < GPUMEM_MAX_MIG_SLICES; k++)
    out->uuid[out->count++] = g->slices[k].uuid;
}

/* Check an entry against the node; fill e->resolved and `named`, or explain. */
static bool resolve_entry(const gpumem_mig_gpu *gpus, size_t n, const int *cuda_order,
                          gpumem_visible_entry *e, named_devices *named, char *why, size_t len) {
  size_t matches = 0, hit = 0;
  named->count = 0;
  switch (e->kind) {
  case GPUMEM_VISIBLE_INDEX:
    if ((size_t)e->index >= n) {
      snprintf(why, len, "index %d, but the node has %zu GPU(s)", e->index, n);
      return false;
    }
    hit = cuda_order ? (size_t)cuda_order[e->index] : (size_t)e->index;
    snprintf(e->resolved, sizeof e->resolved, "%s", gpus[hit].uuid);
    devices_of(&gpus[hit], named);
    return true;
  case GPUMEM_VISIBLE_GPU_UUID:
    for (size_t i = 0; i < n; i++) {
      if (gm_starts_with_nocase(gpus[i].uuid, e->text) && matches++ == 0) hit = i;
    }
    if (matches == 1) {
      snprintf(e->resolved, sizeof e->resolved, "%s", gpus[hit].uuid);
      devices_of(&gpus[hit], named);
      return true;
    }
    snprintf(why, len,
             matches == 0 ? "'%s' matches no GPU" : "'%s' matches %zu GPUs (ambiguous prefix)",
             e->text, matches);
    return false;
  case GPUMEM_VISIBLE_MIG_UUID:
  case GPUMEM_VISIBLE_MIG_LEGACY:
    for (size_t i = 0; i < n; i++) {
      bool gpu_ok = e->kind == GPUMEM_VISIBLE_MIG_UUID ||
                    strncasecmp(gpus[i].uuid, e->text + 4, strlen(gpus[i].uuid)) == 0;
      for (size_t k = 0; gpu_ok && k < gpus[i].slice_count; k++) {
        const gpumem_mig_slice *s = &gpus[i].slices[k];
        bool same = e->kind == GPUMEM_VISIBLE_MIG_UUID
                        ? strcasecmp(s->uuid, e->text) == 0
                        : s->gpu_instance_id == e->gpu_instance_id &&
                              s->compute_instance_id == e->compute_instance_id;
        if (same) {
          snprintf(e->resolved, sizeof e->resolved, "%s", s->uuid);
          named->uuid[named->count++] = s->uuid;
          return true;
        }
      }
    }
    snprintf(why, len, "'%s' matches no MIG device", e->text);
    return false;
  }
  return false;
}

#define NO_ENTRY ((size_t)-1)

/* The earlier entry that names a device `e` names too, or NO_ENTRY.
 * `owner[d]` is the entry that contributed out->devices[d]. */
static size_t named_before(const gpumem_visible_devices *out, const size_t *owner,
                           const gpumem_visible_entry *e, const named_devices *named) {
  for (size_t k = 0; k < out->count; k++) {
    const gpumem_visible_entry *f = &out->entries[k];
    if (!out->resolved) {
      bool same = e->kind == GPUMEM_VISIBLE_INDEX
                      ? f->kind == GPUMEM_VISIBLE_INDEX && f->index == e->index
                      : strcasecmp(f->text, e->text) == 0;
      if (same) return k;
    } else if (strcasecmp(f->resolved, e->resolved) == 0) {
      return k;
    }
  }
  for (size_t d = 0; d < out->device_count; d++) {
    for (size_t i = 0; i < named->count; i++) {
      if (strcasecmp(out->devices[d], named->uuid[i]) == 0) return owner[d];
    }
  }
  return NO_ENTRY;
}

void gm_visible_resolve(const char *text, const gpumem_mig_gpu *gpus, size_t n,
                        const int *cuda_order, gpumem_visible_devices *out) {
  out->resolved = gpus != NULL;
  if (n > GPUMEM_MAX_DEVICES) n = GPUMEM_MAX_DEVICES;
  size_t owner[GPUMEM_MAX_DEVICES];
  size_t pos = 0;
  const char *s = text;
  bool more = true;
  while (more) {
    const char *comma = strchr(s, ',');
    size_t len = comma ? (size_t)(comma - s) : strlen(s);
    more = comma != NULL;
    trim(&s, &len);
    char entry[64];
    bool fits = len < sizeof entry;
    snprintf(entry, sizeof entry, "%.*s", (int)(fits ? len : sizeof entry - 1), s);
    gpumem_visible_entry e;
    named_devices named = {0};
    char why[160] = "";
    bool ok = fits ? parse_entry(entry, &e, why, sizeof why) : false;
    if (!fits) snprintf(why, sizeof why, "an entry longer than %zu characters", sizeof entry - 1);
    if (ok && gpus != NULL) ok = resolve_entry(gpus, n, cuda_order, &e, &named, why, sizeof why);
    size_t twice = ok ? named_before(out, owner, &e, &named) : NO_ENTRY;
    if (twice != NO_ENTRY) {
      snprintf(why, sizeof why, "'%s' names the same device as entry %zu", entry, twice);
      ok = false;
    }
    if (ok && out->count == GPUMEM_MAX_DEVICES) {
      snprintf(why, sizeof why, "more than %d entries", GPUMEM_MAX_DEVICES);
      ok = false;
    }
    if (ok && out->device_count + named.count > GPUMEM_MAX_DEVICES) {
      snprintf(why, sizeof why, "more than %d devices", GPUMEM_MAX_DEVICES);
      ok = false;
    }
    if (!ok) {
      if (pos == 0 && len == 0 && !more) break; /* CUDA_VISIBLE_DEVICES="": no device, not a typo */
      out->stopped = true;
      out->stopped_at = pos;
      out->hides_all = twice != NO_ENTRY;
      if (out->hides_all) out->device_count = 0;
      snprintf(out->stopped_text, sizeof out->stopped_text, "%s", entry);
      snprintf(out->why, sizeof out->why, "%s", why);
      gm_log(GPUMEM_LOG_WARN, "CUDA_VISIBLE_DEVICES='%s': entry %zu: %s; %s", text, pos, why,
             out->hides_all ? "a device named twice makes CUDA show no device at all"
                            : "CUDA ignores it and every entry after it");
      break;
    }
    for (size_t i = 0; i < named.count; i++) {
      owner[out->device_count] = out->count;
      snprintf(out->devices[out->device_count++], sizeof out->devices[0], "%s", named.uuid[i]);
    }
    out->entries[out->count++] = e;
    pos++;
    s = comma ? comma + 1 : s + len;
  }
}

static bool pci_bus_order(void) {
  const char *order = getenv("CUDA_DEVICE_ORDER");
  return order != NULL && strcmp(order, "PCI_BUS_ID") == 0;
}

/* The GPU in `gpus` that holds the CUDA device with these UUID bytes, or -1. */
static int gpu_holding(const gpumem_mig_gpu *gpus, size_t n, const unsigned char uuid[16]) {
  char gpu[GM_UUID_TEXT_MAX], mig[GM_UUID_TEXT_MAX];
  gm_uuid_format(uuid, "GPU-", gpu, sizeof gpu);
  gm_uuid_format(uuid, "MIG-", mig, sizeof mig);
  for (size_t i = 0; i < n; i++) {
    if (strcasecmp(gpus[i].uuid, gpu) == 0) return (int)i;
    for (size_t k = 0; k < gpus[i].slice_count; k++) {
      if (strcasecmp(gpus[i].slices[k].uuid, mig) == 0) return (int)i;
    }
  }
  return -1;
}

/* The CUDA driver's own order of the node's GPUs: CUDA ordinal by ordinal,
 * each matched to NVML's GPU by UUID (a slice by its GPU); GPUs CUDA does
 * not show (MIG mode without instances) go last, in NVML's order. Needs the
 * CUDA backend seeing every device (the process's CUDA_VISIBLE_DEVICES
 * unset). Creates no context: device queries only. */
static bool cuda_enumeration(const gpumem_mig_gpu *gpus, size_t n, int *order) {
  int count = 0;
  bool seen[GPUMEM_MAX_DEVICES] = {false};
  size_t k = 0;
  if (gm_be_device_count(&count) != GPUMEM_OK) goto unknown;
  for (int d = 0; d < count; d++) {
    gm_device_props p;
    if (gm_be_device_props(d, &p) != GPUMEM_OK) goto unknown;
    int g = gpu_holding(gpus, n, p.uuid);
    if (g < 0) return false;
    if (!seen[g]) order[k++] = g;
    seen[g] = true;
  }
  for (size_t i = 0; i < n; i++) {
    if (!seen[i]) order[k++] = (int)i;
  }
  return true;
unknown:
  gm_error_discard();
  return false;
}

/* How indices map to NVML's GPUs under CUDA_DEVICE_ORDER (gpumem/mig.h). */
static gpumem_index_order index_order(const gpumem_mig_gpu *gpus, size_t n, int *order) {
  for (size_t i = 0; i < n; i++)
    order[i] = (int)i;
  if (pci_bus_order()) return GPUMEM_INDEX_ORDER_PCI_BUS_ID;
  const gm_backend_ops *be = gm_backend();
  if (be != NULL && be->kind == GM_BACKEND_CUDA && getenv("CUDA_VISIBLE_DEVICES") == NULL &&
      cuda_enumeration(gpus, n, order))
    return GPUMEM_INDEX_ORDER_CUDA;
  for (size_t i = 0; i < n; i++)
    order[i] = (int)i;
  for (size_t i = 1; i < n; i++) {
    if (strcmp(gpus[i].name, gpus[0].name) != 0) return GPUMEM_INDEX_ORDER_UNKNOWN;
  }
  return GPUMEM_INDEX_ORDER_ASSUMED;
}

static bool has_index_entry(const char *text) {
  for (const char *s = text; *s != '\0';) {
    while (isspace((unsigned char)*s))
      s++;
    if (isdigit((unsigned char)*s)) return true;
    const char *comma = strchr(s, ',');
    if (comma == NULL) break;
    s = comma + 1;
  }
  return false;
}

static gpumem_status visible_read(const char *text, gpumem_visible_devices *out) {
  if (out == NULL) return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "out is NULL");
  memset(out, 0, sizeof *out);
  if (text == NULL) text = getenv("CUDA_VISIBLE_DEVICES");
  if (text == NULL) return GPUMEM_OK;
  out->set = true;
  gpumem_mig_gpu *gpus = calloc(GPUMEM_MAX_DEVICES, sizeof *gpus);
  if (gpus == NULL) return gm_error(GPUMEM_ERR_OUT_OF_MEMORY, "no host memory for the GPU list");
  int order[GPUMEM_MAX_DEVICES];
  size_t ngpus = 0;
  bool known = false;
  bool from_layout = false;
  if (backend_node(gpus, GPUMEM_MAX_DEVICES, &ngpus, &from_layout)) {
    /* What the host backend applies: its emulated devices, in layout order. */
    known = true;
    out->index_order = pci_bus_order() ? GPUMEM_INDEX_ORDER_PCI_BUS_ID : GPUMEM_INDEX_ORDER_CUDA;
    for (size_t i = 0; i < GPUMEM_MAX_DEVICES; i++)
      order[i] = (int)i;
  } else if (nvml_layout(gpus, GPUMEM_MAX_DEVICES, &ngpus) == GPUMEM_OK) {
    if (ngpus > GPUMEM_MAX_DEVICES) ngpus = GPUMEM_MAX_DEVICES;
    out->index_order = index_order(gpus, ngpus, order);
    known = out->index_order != GPUMEM_INDEX_ORDER_UNKNOWN || !has_index_entry(text);
  } else {
    gm_error_discard(); /* without NVML the syntax is still checked */
  }
  gm_visible_resolve(text, known ? gpus : NULL, ngpus, known ? order : NULL, out);
  free(gpus);
  return GPUMEM_OK;
}

GPUMEM_API gpumem_status gpumem_visible_devices_read(const char *text,
                                                     gpumem_visible_devices *out) {
  gm_error_discard();
  GM_RETURN(visible_read(text, out));
}
