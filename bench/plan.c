/* plan.c: workloads as plans of operations, fixed before timing starts.
 *
 * A plan is the list of allocs and frees a workload makes, each naming a
 * slot (one allocation from alloc to free) and a stream. Generating it up
 * front keeps random-number generation and bookkeeping out of the timed loop,
 * makes every run from a seed identical for every allocator, and lets tests
 * check the workloads themselves: that they are deterministic, that every
 * alloc has its free, that a cap is honoured.
 *
 * `random` follows RMM's random_allocations benchmark: at each step allocate
 * with probability p (else free a uniformly chosen live block), sizes from a
 * uniform, log-normal or geometric (log-uniform powers of two) distribution
 * up to a maximum, and a cap on live bytes.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

void gb_plan_free(gb_plan *plan) {
  free(plan->ops);
  memset(plan, 0, sizeof *plan);
}

bool gb_plan_push(gb_plan *plan, gb_op op) {
  if (plan->count == plan->capacity) {
    size_t cap = plan->capacity ? plan->capacity * 2 : 1024;
    gb_op *ops = realloc(plan->ops, cap * sizeof *ops);
    if (ops == NULL) return false;
    plan->ops = ops;
    plan->capacity = cap;
  }
  plan->ops[plan->count++] = op;
  if (op.slot + 1 > plan->slots) plan->slots = op.slot + 1;
  if ((uint16_t)(op.stream + 1) > plan->streams) plan->streams = (uint16_t)(op.stream + 1);
  return true;
}

bool gb_plan_pairs(gb_plan *plan, size_t size, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (!gb_plan_push(plan, (gb_op){GB_ALLOC, 0, 0, size}) ||
        !gb_plan_push(plan, (gb_op){GB_FREE, 0, 0, size}))
      return false;
  }
  if (plan->streams == 0) plan->streams = 1;
  return true;
}

/* splitmix64: small, fast, and the same everywhere. */
static uint64_t next_random(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static double uniform01(uint64_t *state) {
  return (double)(next_random(state) >> 11) * 0x1.0p-53;
}

static size_t draw_size(uint64_t *rng, gb_dist dist, size_t max) {
  double x;
  switch (dist) {
  case GB_LOGNORMAL: {
    /* Box-Muller; median sqrt(max), so that about 95% fall in [1, max]. */
    double u1 = uniform01(rng), u2 = uniform01(rng);
    double z = sqrt(-2.0 * log(u1 > 0 ? u1 : 1e-300)) * cos(2.0 * M_PI * u2);
    double mu = log((double)max) / 2.0, sigma = mu / 2.0;
    x = exp(mu + sigma * z);
    break;
  }
  case GB_GEOMETRIC: {
    int top = 0;
    while (((size_t)2 << top) <= max && top < 62)
      top++;
    x = (double)((size_t)1 << (next_random(rng) % (uint64_t)(top + 1)));
    break;
  }
  default:
    x = 1.0 + uniform01(rng) * (double)(max - 1);
    break;
  }
  if (x < 1.0) x = 1.0;
  if (x > (double)max) x = (double)max;
  return (size_t)x;
}

bool gb_plan_random(gb_plan *plan, const gb_random_config *c) {
  if (c->max_size == 0 || c->cap == 0 || c->p_alloc < 0 || c->p_alloc > 1) return false;
  uint64_t rng = c->seed;
  uint32_t *live = malloc((c->steps + 1) * sizeof *live);
  size_t *sizes = malloc((c->steps + 1) * sizeof *sizes);
  bool ok = live != NULL && sizes != NULL;
  size_t nlive = 0, live_bytes = 0;
  uint32_t next_slot = 0;
  for (size_t i = 0; ok && i < c->steps; i++) {
    bool do_alloc = nlive == 0 || uniform01(&rng) < c->p_alloc;
    size_t size = do_alloc ? draw_size(&rng, c->dist, c->max_size) : 0;
    if (do_alloc && size > c->cap - live_bytes) {
      if (nlive == 0) continue; /* larger than the cap on its own: skip it */
      do_alloc = false;
    }
    if (do_alloc) {
      sizes[next_slot] = size;
      live[nlive++] = next_slot;
      live_bytes += size;
      ok = gb_plan_push(plan, (gb_op){GB_ALLOC, 0, next_slot++, size});
    } else {
      size_t k = (size_t)(next_random(&rng) % nlive);
      uint32_t slot = live[k];
      live[k] = live[--nlive];
      live_bytes -= sizes[slot];
      ok = gb_plan_push(plan, (gb_op){GB_FREE, 0, slot, sizes[slot]});
    }
  }
  while (ok && nlive > 0) { /* every alloc gets its free */
    uint32_t slot = live[--nlive];
    ok = gb_plan_push(plan, (gb_op){GB_FREE, 0, slot, sizes[slot]});
  }
  if (plan->streams == 0) plan->streams = 1;
  free(live);
  free(sizes);
  return ok;
}

size_t gb_plan_live_curve(const gb_plan *plan, size_t *curve) {
  size_t live = 0, peak = 0;
  for (size_t i = 0; i < plan->count; i++) {
    if (plan->ops[i].kind == GB_ALLOC)
      live += plan->ops[i].size;
    else
      live -= plan->ops[i].size;
    if (live > peak) peak = live;
    if (curve != NULL) curve[i] = live;
  }
  return peak;
}

gb_summary gb_summarize(double *s, size_t n) {
  gb_summary out = {0, 0, 0};
  if (n == 0) return out;
  for (size_t i = 1; i < n; i++) { /* insertion sort: n is a handful of repetitions */
    double v = s[i];
    size_t j = i;
    while (j > 0 && s[j - 1] > v) {
      s[j] = s[j - 1];
      j--;
    }
    s[j] = v;
  }
  out.min = s[0];
  out.max = s[n - 1];
  out.median = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2.0;
  return out;
}
