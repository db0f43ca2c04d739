/* mig.c: MIG state from NVML, and CUDA_VISIBLE_DEVICES read as CUDA reads it.
 *
 * CUDA gives each device's UUID bytes but no MIG flag. NVML knows: asked for
 * a handle by UUID ("GPU-…" first, then "MIG-…", since the bytes are the same
 * and only the prefix differs), it says whether the handle is a MIG device,
 * which physical GPU holds it, and its GPU- and compute-instance ids and
 * slice counts. gm_mig_describe() fills those fields of a device's info;
 * gpumem_mig_layout() walks every physical GPU and its slices.
 *
 * gpumem_visible_devices_read() parses CUDA_VISIBLE_DEVICES entry by entry
 * (indices, GPU-<uuid> and unique prefixes, MIG-<uuid>, MIG-GPU-<uuid>/<gi>/
 * <ci>) and, with NVML's layout, checks that each names exactly one device,
 * applying CUDA's rule that the list ends at the first invalid entry.
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
#include "nvml.h"
#include "uuid.h"

#define NVML_UUID_MAX 96
#define NVML_NAME_MAX 96

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
  const char *why = NULL;
  const gm_nvml_ops *nv = gm_nvml(&why);
  if (nv == NULL) {
    set_unknown(info, why);
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

static gpumem_status layout(gpumem_mig_gpu *gpus, size_t max, size_t *count) {
  if (count == NULL || (gpus == NULL && max > 0)) {
    return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "gpus or count is NULL");
  }
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

GPUMEM_API gpumem_status gpumem_mig_layout(gpumem_mig_gpu *gpus, size_t max, size_t *count) {
  gm_error_discard();
  GM_RETURN(layout(gpus, max, count));
}

/* ---- CUDA_VISIBLE_DEVICES ---- */

static bool all_digits(const char *s) {
  if (*s == '\0') return false;
  for (; *s; s++) {
    if (!isdigit((unsigned char)*s)) return false;
  }
  return true;
}

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

/* Parse one entry's syntax; false with `why` when it is not valid. */
static bool parse_entry(const char *text, gpumem_visible_entry *e, char *why, size_t len) {
  memset(e, 0, sizeof *e);
  snprintf(e->text, sizeof e->text, "%s", text);
  e->index = e->gpu_instance_id = e->compute_instance_id = -1;
  if (text[0] == '\0') {
    snprintf(why, len, "an empty entry");
    return false;
  }
  if (all_digits(text)) {
    long v = strtol(text, NULL, 10);
    if (strlen(text) > 6 || v >= GPUMEM_MAX_DEVICES * 16) {
      snprintf(why, len, "index %s is out of range", text);
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

/* Check an entry against the layout; fill e->resolved or explain. */
static bool resolve_entry(const gpumem_mig_gpu *gpus, size_t n, gpumem_visible_entry *e, char *why,
                          size_t len) {
  size_t matches = 0;
  switch (e->kind) {
  case GPUMEM_VISIBLE_INDEX:
    if ((size_t)e->index >= n) {
      snprintf(why, len, "index %d, but the node has %zu GPU(s)", e->index, n);
      return false;
    }
    snprintf(e->resolved, sizeof e->resolved, "%s", gpus[e->index].uuid);
    return true;
  case GPUMEM_VISIBLE_GPU_UUID:
    for (size_t i = 0; i < n; i++) {
      if (gm_starts_with_nocase(gpus[i].uuid, e->text)) {
        if (matches++ == 0) snprintf(e->resolved, sizeof e->resolved, "%s", gpus[i].uuid);
      }
    }
    if (matches == 1) return true;
    e->resolved[0] = '\0';
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
        bool hit = e->kind == GPUMEM_VISIBLE_MIG_UUID
                       ? strcasecmp(s->uuid, e->text) == 0
                       : s->gpu_instance_id == e->gpu_instance_id &&
                             s->compute_instance_id == e->compute_instance_id;
        if (hit) {
          snprintf(e->resolved, sizeof e->resolved, "%s", s->uuid);
          return true;
        }
      }
    }
    snprintf(why, len, "'%s' matches no MIG device", e->text);
    return false;
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
  size_t ngpus = 0;
  gpumem_status st = layout(gpus, GPUMEM_MAX_DEVICES, &ngpus);
  if (st == GPUMEM_OK)
    out->resolved = true;
  else
    gm_error_discard(); /* without NVML the syntax is still checked */
  if (ngpus > GPUMEM_MAX_DEVICES) ngpus = GPUMEM_MAX_DEVICES;
  size_t pos = 0;
  const char *s = text;
  bool more = true;
  while (more) {
    const char *comma = strchr(s, ',');
    size_t n = comma ? (size_t)(comma - s) : strlen(s);
    more = comma != NULL;
    while (n > 0 && isspace((unsigned char)*s))
      s++, n--;
    while (n > 0 && isspace((unsigned char)s[n - 1]))
      n--;
    char entry[64];
    bool fits = n < sizeof entry;
    snprintf(entry, sizeof entry, "%.*s", (int)(fits ? n : sizeof entry - 1), s);
    gpumem_visible_entry e;
    char why[160] = "";
    bool ok = fits ? parse_entry(entry, &e, why, sizeof why) : false;
    if (!fits) snprintf(why, sizeof why, "an entry longer than %zu characters", sizeof entry - 1);
    if (ok && out->resolved) ok = resolve_entry(gpus, ngpus, &e, why, sizeof why);
    for (size_t k = 0; ok && k < out->count; k++) {
      bool same = out->resolved ? strcmp(out->entries[k].resolved, e.resolved) == 0
                                : strcasecmp(out->entries[k].text, e.text) == 0;
      if (same) {
        snprintf(why, sizeof why, "'%s' names the same device as entry %zu", entry, k);
        ok = false;
      }
    }
    if (ok && out->count == GPUMEM_MAX_DEVICES) {
      snprintf(why, sizeof why, "more than %d entries", GPUMEM_MAX_DEVICES);
      ok = false;
    }
    if (!ok) {
      if (pos == 0 && n == 0 && !more) break; /* CUDA_VISIBLE_DEVICES="": no device, not a typo */
      out->stopped = true;
      out->stopped_at = pos;
      snprintf(out->stopped_text, sizeof out->stopped_text, "%s", entry);
      snprintf(out->why, sizeof out->why, "%s", why);
      gm_log(GPUMEM_LOG_WARN,
             "CUDA_VISIBLE_DEVICES='%s': entry %zu: %s; CUDA ignores it and every entry after it",
             text, pos, why);
      break;
    }
    out->entries[out->count++] = e;
    pos++;
    s = comma ? comma + 1 : s + n;
  }
  free(gpus);
  return GPUMEM_OK;
}

GPUMEM_API gpumem_status gpumem_visible_devices_read(const char *text,
                                                     gpumem_visible_devices *out) {
  gm_error_discard();
  GM_RETURN(visible_read(text, out));
}
