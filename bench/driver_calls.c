/* driver_calls.c: the one place where gpumem-bench reaches past the public
 * API. The `grow` workload's `calls` column counts the driver calls each way
 * of growing an array makes (VMM steps and plain allocations), and only the
 * backend seam knows them: its per-operation counters (gm_backend_calls in
 * src/backend.h) count every call that reaches the driver, or the host
 * backend's emulation of it. This file alone is compiled with src/ on its
 * include path (bench/CMakeLists.txt); everything else in bench/ uses
 * include/gpumem/ only.
 */
#include "backend.h"
#include "bench.h"

uint64_t gb_driver_calls(void) {
  const gm_op ops[] = {GM_OP_phys_create, GM_OP_phys_release, GM_OP_map,     GM_OP_unmap,
                       GM_OP_set_access,  GM_OP_dev_malloc,   GM_OP_dev_free};
  uint64_t n = 0;
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
    n += gm_backend_calls(ops[i]);
  return n;
}
