/* driver_calls.c: the one place where gpumem-bench reaches past the public
 * API: driver calls, counted, and what they would cost on a GPU.
 *
 * Only the backend seam knows how many driver calls an allocator makes: its
 * per-operation counters (gm_backend_calls in src/backend.h) count every call
 * that reaches the driver, or the host backend's emulation of it. This file
 * alone is compiled with src/ on its include path (bench/CMakeLists.txt);
 * everything else in bench/ uses include/gpumem/ only.
 *
 * The cost model. On the host backend a driver call costs what the emulation
 * costs, a few hundred nanoseconds, while on a GPU the VMM calls cost
 * microseconds to tens of microseconds each. So that an allocator that trades
 * waste for remapping shows that price without a GPU, each row multiplies the
 * calls made in its timed repetitions by a table of microseconds per call and
 * divides by the operations: "model us/op". It is a model, not a measurement:
 * the defaults are figures measured on an H100 (../shared/notes/cuda-facts.md),
 * the calls are taken to cost the same whatever their size (nearly so up to
 * 64 MiB there; a 1 GiB release costs 374 us) and whatever number of
 * mappings one call covers (the arena unmaps a run of pages, and opens a
 * growth, with one call each), and overlap with GPU work is ignored.
 * `gpumem-bench costs` (costs.c) measures the table and both assumptions
 * on the machine at hand. The defaults, in us per call:
 *   phys_create 12, map 1.1, set_access 30, unmap 20, phys_release 12
 *       (cuMemCreate ... cuMemRelease of a 2 MiB chunk, measured);
 *   va_reserve 2, va_free 2 (a 64 GiB reserve+free pair measured 4 us);
 *   dev_malloc 42, dev_free 42 (a cudaMalloc+cudaFree pair, 72-96 us up to
 *       64 MiB: its middle, split evenly);
 *   pool_alloc 0.6, pool_free 0.6 (a cudaMallocAsync+cudaFreeAsync pair on
 *       one stream, 0.7-1.8 us: about its lower middle, split evenly; these
 *       run mostly in the driver's user-space pool, so per call they are the
 *       cheap ones);
 *   pool_trim 12 (cudaMemPoolTrimTo releases physical memory like
 *       cuMemRelease; not measured, taken as one release).
 * `--driver-cost map=1.5,set_access=25` overrides entries.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "bench.h"

static const struct {
  const char *name;
  gm_op op;
  double us; /* the default */
} costs[GB_COST_COUNT] = {
    [GB_COST_PHYS_CREATE] = {"phys_create", GM_OP_phys_create, 12.0},
    [GB_COST_MAP] = {"map", GM_OP_map, 1.1},
    [GB_COST_SET_ACCESS] = {"set_access", GM_OP_set_access, 30.0},
    [GB_COST_UNMAP] = {"unmap", GM_OP_unmap, 20.0},
    [GB_COST_PHYS_RELEASE] = {"phys_release", GM_OP_phys_release, 12.0},
    [GB_COST_VA_RESERVE] = {"va_reserve", GM_OP_va_reserve, 2.0},
    [GB_COST_VA_FREE] = {"va_free", GM_OP_va_free, 2.0},
    [GB_COST_DEV_MALLOC] = {"dev_malloc", GM_OP_dev_malloc, 42.0},
    [GB_COST_DEV_FREE] = {"dev_free", GM_OP_dev_free, 42.0},
    [GB_COST_POOL_ALLOC] = {"pool_alloc", GM_OP_pool_alloc, 0.6},
    [GB_COST_POOL_FREE] = {"pool_free", GM_OP_pool_free, 0.6},
    [GB_COST_POOL_TRIM] = {"pool_trim", GM_OP_pool_trim, 12.0},
};

uint64_t gb_driver_calls(void) {
  const gm_op ops[] = {GM_OP_phys_create, GM_OP_phys_release, GM_OP_map,     GM_OP_unmap,
                       GM_OP_set_access,  GM_OP_dev_malloc,   GM_OP_dev_free};
  uint64_t n = 0;
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
    n += gm_backend_calls(ops[i]);
  return n;
}

const char *gb_cost_name(gb_cost_op op) {
  return (unsigned)op < GB_COST_COUNT ? costs[op].name : "?";
}

void gb_cost_defaults(double *us) {
  for (int i = 0; i < GB_COST_COUNT; i++)
    us[i] = costs[i].us;
}

void gb_cost_counts(uint64_t *counts) {
  for (int i = 0; i < GB_COST_COUNT; i++)
    counts[i] = gm_backend_calls(costs[i].op);
}

double gb_cost_model_us(const uint64_t *before, const uint64_t *after, const double *us) {
  double total = 0;
  for (int i = 0; i < GB_COST_COUNT; i++)
    total += (double)(after[i] - before[i]) * us[i];
  return total;
}

bool gb_cost_parse(const char *text, double *us, char *why, size_t len) {
  double out[GB_COST_COUNT];
  memcpy(out, us, sizeof out);
  const char *p = text;
  if (*p == '\0') {
    snprintf(why, len, "--driver-cost wants NAME=US,... (names: %s)", gb_cost_names());
    return false;
  }
  while (*p != '\0') {
    const char *comma = strchr(p, ',');
    size_t n = comma ? (size_t)(comma - p) : strlen(p);
    const char *eq = memchr(p, '=', n);
    if (eq == NULL) {
      snprintf(why, len, "--driver-cost wants NAME=US, not '%.*s'", (int)n, p);
      return false;
    }
    int found = -1;
    for (int i = 0; i < GB_COST_COUNT; i++)
      if (strlen(costs[i].name) == (size_t)(eq - p) && strncmp(p, costs[i].name, eq - p) == 0)
        found = i;
    if (found < 0) {
      snprintf(why, len, "--driver-cost: unknown driver call '%.*s' (names: %s)", (int)(eq - p), p,
               gb_cost_names());
      return false;
    }
    char value[64];
    size_t vn = n - (size_t)(eq + 1 - p);
    char *end = NULL;
    double v = -1;
    if (vn > 0 && vn < sizeof value) {
      memcpy(value, eq + 1, vn);
      value[vn] = '\0';
      v = strtod(value, &end);
    }
    if (vn == 0 || vn >= sizeof value || *end != '\0' || !(v >= 0 && v <= 1e7)) {
      snprintf(why, len, "--driver-cost: %s wants microseconds in 0..1e7, not '%.*s'",
               costs[found].name, (int)vn, eq + 1);
      return false;
    }
    out[found] = v;
    p += n;
    if (*p == ',') p++;
  }
  memcpy(us, out, sizeof out);
  return true;
}

const char *gb_cost_names(void) {
  return "phys_create, map, set_access, unmap, phys_release, va_reserve, va_free, dev_malloc, "
         "dev_free, pool_alloc, pool_free, pool_trim";
}

void gb_cost_text(const double *us, char *buf, size_t len) {
  size_t used = 0;
  buf[0] = '\0';
  for (int i = 0; i < GB_COST_COUNT && used < len; i++) {
    int n = snprintf(buf + used, len - used, "%s%s=%g", i ? " " : "", costs[i].name, us[i]);
    if (n < 0) break;
    used += (size_t)n;
  }
}
