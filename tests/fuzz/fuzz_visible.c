/* fuzz_visible.c: libFuzzer target for the CUDA_VISIBLE_DEVICES reader
 * (src/mig.c: gm_visible_resolve, through gpumem_visible_devices_read).
 *
 * The input, up to its first NUL, is the variable's text. It is read twice:
 * for its syntax alone (no node), and against the node of the host backend,
 * which emulates a MIG layout (two H100s split into slices, an A100 whole, a
 * generic device) so that indices, GPU and MIG UUID prefixes and the legacy
 * MIG-GPU-<uuid>/gi/ci form all resolve against something. Beyond the
 * sanitizers, the reading is checked: counts within GPUMEM_MAX_DEVICES, every
 * text field terminated, a stop at the entry after the valid ones, and no
 * device list without a node. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/nvml.h"
#include "gpumem/init.h"
#include "gpumem/log.h"
#include "gpumem/mig.h"
#include "mig.h"

#define TEXT_MAX 1024
#define LAYOUT   "h100:3g.40gb,2g.20gb*2;h100:1g.10gb*7;a100-80;gpu"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  setenv("GPUMEM_HOST_MIG", LAYOUT, 1);
  unsetenv("CUDA_DEVICE_ORDER");
  gm_nvml_install(NULL, "no NVML in the fuzz target");
  gpumem_init_options o = GPUMEM_INIT_OPTIONS_INIT;
  o.backend = GPUMEM_BACKEND_HOST;
  if (gpumem_init(&o) != GPUMEM_OK) abort();
  if (gpumem_log_set_level(GPUMEM_LOG_OFF) != GPUMEM_OK) abort();
  /* The node is there: entries resolve against it (else the target tests
   * the syntax alone twice). */
  static gpumem_visible_devices v;
  if (gpumem_visible_devices_read("0,MIG-", &v) != GPUMEM_OK || !v.resolved || v.count != 1 ||
      v.device_count < 1 || !v.stopped)
    abort();
  return 0;
}

static void check(const gpumem_visible_devices *v, bool node) {
  if (v->count > GPUMEM_MAX_DEVICES || v->device_count > GPUMEM_MAX_DEVICES) abort();
  if (v->stopped && v->stopped_at != v->count) abort();
  if (!node && v->device_count != 0) abort();
  if (strnlen(v->why, sizeof v->why) == sizeof v->why) abort();
  if (strnlen(v->stopped_text, sizeof v->stopped_text) == sizeof v->stopped_text) abort();
  for (size_t i = 0; i < v->count; i++) {
    const gpumem_visible_entry *e = &v->entries[i];
    if (strnlen(e->text, sizeof e->text) == sizeof e->text) abort();
    if (strnlen(e->resolved, sizeof e->resolved) == sizeof e->resolved) abort();
  }
  for (size_t i = 0; i < v->device_count; i++)
    if (strnlen(v->devices[i], sizeof v->devices[i]) == sizeof v->devices[i]) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char text[TEXT_MAX + 1];
  size_t n = size < TEXT_MAX ? size : TEXT_MAX;
  memcpy(text, data, n);
  text[n] = '\0';
  static gpumem_visible_devices v; /* about 8 KiB */
  memset(&v, 0, sizeof v);
  v.set = true;
  gm_visible_resolve(text, NULL, 0, NULL, &v);
  check(&v, false);
  if (gpumem_visible_devices_read(text, &v) != GPUMEM_OK) abort();
  check(&v, true);
  return 0;
}
