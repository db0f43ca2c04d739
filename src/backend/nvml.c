/* nvml.c: NVML through dlopen, once.
 *
 * The first caller opens libnvidia-ml.so.1, resolves every symbol of
 * GM_NVML_FUNCTIONS and calls nvmlInit_v2; the outcome (a table, or the
 * reason there is none) is kept for the process. A missing library or symbol
 * is not an error for libgpumem: it is logged at info and MIG information
 * becomes "unknown". The library handle stays open until exit, as NCCL does,
 * since NVML keeps threads of its own.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "backend/nvml.h"

static pthread_mutex_t nvml_lock = PTHREAD_MUTEX_INITIALIZER;
static bool nvml_tried;
static const gm_nvml_ops *nvml_active;
static gm_nvml_ops nvml_real;
static char nvml_why[256];
static int (*nvml_memory_info)(gm_nvml_device, gm_nvml_memory *); /* optional */

static void load(void) {
  void *lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (lib == NULL) {
    const char *e = dlerror();
    snprintf(nvml_why, sizeof nvml_why, "libnvidia-ml.so.1 could not be loaded (%s)",
             e ? e : "no reason given");
    return;
  }
#define GM_NVML_RESOLVE_(member, symbol, params)                                                  \
  {                                                                                               \
    void *fn = dlsym(lib, symbol);                                                                \
    if (fn == NULL) {                                                                             \
      snprintf(nvml_why, sizeof nvml_why, "libnvidia-ml.so.1 lacks %s (driver too old)", symbol); \
      return;                                                                                     \
    }                                                                                             \
    memcpy(&nvml_real.member, &fn, sizeof fn);                                                    \
  }
  GM_NVML_FUNCTIONS(GM_NVML_RESOLVE_)
#undef GM_NVML_RESOLVE_
  void *memory_fn = dlsym(lib, "nvmlDeviceGetMemoryInfo");
  memcpy(&nvml_memory_info, &memory_fn, sizeof memory_fn);
  int rc = nvml_real.init();
  if (rc != GM_NVML_SUCCESS) {
    snprintf(nvml_why, sizeof nvml_why, "nvmlInit_v2 failed: %s", nvml_real.error_string(rc));
    return;
  }
  nvml_active = &nvml_real;
}

const gm_nvml_ops *gm_nvml(const char **why) {
  pthread_mutex_lock(&nvml_lock);
  if (!nvml_tried) {
    nvml_tried = true;
    load();
    if (nvml_active == NULL)
      gm_log(GPUMEM_LOG_INFO, "NVML unavailable: %s; MIG state unknown", nvml_why);
  }
  const gm_nvml_ops *ops = nvml_active;
  pthread_mutex_unlock(&nvml_lock);
  if (ops == NULL && why != NULL) *why = nvml_why;
  return ops;
}

void gm_nvml_install(const gm_nvml_ops *ops, const char *why) {
  pthread_mutex_lock(&nvml_lock);
  nvml_tried = true;
  nvml_active = ops;
  snprintf(nvml_why, sizeof nvml_why, "%s", why ? why : "");
  pthread_mutex_unlock(&nvml_lock);
}

void gm_nvml_reset(void) {
  pthread_mutex_lock(&nvml_lock);
  nvml_tried = false;
  nvml_active = NULL;
  nvml_why[0] = '\0';
  pthread_mutex_unlock(&nvml_lock);
}

int gm_nvml_device_memory(gm_nvml_device dev, gm_nvml_memory *out) {
  pthread_mutex_lock(&nvml_lock);
  bool real = nvml_active == &nvml_real && nvml_memory_info != NULL;
  pthread_mutex_unlock(&nvml_lock);
  return real ? nvml_memory_info(dev, out) : GM_NVML_ERROR_NOT_SUPPORTED;
}

const char *gm_nvml_error(const gm_nvml_ops *ops, int code, char *buf, unsigned int len) {
  const char *s = ops && ops->error_string ? ops->error_string(code) : NULL;
  if (s != NULL) return s;
  snprintf(buf, len, "NVML error %d", code);
  return buf;
}
