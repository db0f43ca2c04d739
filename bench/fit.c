/* fit.c: gpumem-bench fit, the smallest device memory a trace runs in.
 *
 * "Which MIG slice does my job need?" is a question asked before a job is
 * submitted, and the honest answer depends on the allocator: a caching pool
 * that rounds sizes up, or keeps freed blocks for one stream while another
 * wants memory, needs more than the trace's live bytes. fit answers it by
 * trial: for each allocator, the trace is replayed on a fresh allocator over
 * a host backend whose devices have exactly C bytes, and C is searched.
 *
 * The search. A trace cannot fit below its most live bytes, so the lower
 * bound is that peak rounded up to the host backend's granularity (every
 * physical allocation is a multiple of it, so no capacity between two
 * multiples behaves differently from the multiple below). The upper bound is
 * found by doubling from the lower bound until the trace fits (or a limit,
 * 1 TiB, is passed: then the row fails). Between them the answer is bisected
 * on multiples of the granularity, on the assumption that a trace that fits
 * at C fits at every larger capacity. That holds for the allocators here as
 * far as the test can tell (it compares the answer with a scan of every
 * capacity), but it is an assumption: an allocator whose policy depends on
 * the device's size (a pool sized as a fraction of it) could break it, and
 * the scan would show that.
 *
 * Timing. Whether a block freed on one stream can serve an allocation on
 * another depends, for the stream-ordered pools (cudaMallocAsync's
 * opportunistic reuse), on whether the free has completed: on timing. On the
 * host backend, whose streams run their work on a thread as a GPU does, a
 * plain replay made the answer for cuda-async vary by a dozen granules from
 * run to run. fit therefore replays "settled": each free is followed by a
 * synchronize of its stream (the trace has no kernels, so this waits for
 * nothing but the free itself). The answer is deterministic and is the
 * least memory the allocator needs when its frees complete in time; a run
 * whose frees lag behind kernels can need more.
 *
 * Each trial re-initialises the library (gpumem_finalize, gpumem_init with
 * the host backend and host_capacity = C), so no state of one trial, cached
 * memory in particular, reaches the next. fit always bisects on the host
 * backend, also on a machine with a GPU: a real device's memory cannot be
 * made smaller, and the host backend enforces CUDA's rules on the same
 * calls. The CUDA baselines whose pools the host backend emulates
 * (cuda-async, cuda-pool) are labelled "(host emulation)": their answer is
 * that of the emulated pool's policy, not of the driver's.
 *
 * cuda-malloc is charged by the host backend per call, rounded up to the
 * granularity, so a trace of many small blocks needs more than its peak of
 * reserved bytes (which counts the bytes asked for) says; a real cudaMalloc
 * packs small blocks more tightly, so its answer is pessimistic.
 *
 * Waste is min capacity / peak live - 1: the device memory the allocator
 * needs beyond what the trace holds at its peak, as a fraction of that peak
 * (a perfect allocator still shows up to one granule of it).
 *
 * MIG. For the A100 40 GB, A100 80 GB, H100 80 GB and H200 141 GB, the
 * smallest GPU instance profile whose memory is at least the min capacity.
 * The profiles and their memory come from the table the host backend's MIG
 * emulation uses (src/mig.c, after NVIDIA's MIG user guide, "Supported MIG
 * Profiles"): an instance has its eighths of the GPU's memory (1g.10gb of an
 * H100: 10 GiB). The driver reports a little less than that (CUDA shows
 * 4864 MiB, not 5120, for an A100-40GB's 1g.5gb, about 5% less), so an
 * answer within 5% of a profile's size is marginal on real hardware.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fit.h"
#include "mig.h"

#define MIB       ((size_t)1 << 20)
#define GIB       ((size_t)1 << 30)
#define FIT_LIMIT ((size_t)1 << 40) /* doubling stops here: the row fails */

/* The GPUs of the MIG answer: a model key of src/mig.c's table each. */
static const struct {
  const char *key, *name;
} fit_gpus[GB_FIT_GPUS] = {
    {"a100-40", "A100-40GB"},
    {"a100-80", "A100-80GB"},
    {"h100", "H100-80GB"},
    {"h200", "H200-141GB"},
};

const char *gb_fit_gpu_name(int g) {
  return g >= 0 && g < GB_FIT_GPUS ? fit_gpus[g].name : NULL;
}

const char *gb_fit_smallest_profile(int g, size_t bytes, size_t *memory) {
  if (g < 0 || g >= GB_FIT_GPUS) return NULL;
  size_t count = 0;
  const gm_mig_model *models = gm_mig_models(&count);
  const gm_mig_model *m = NULL;
  for (size_t i = 0; i < count && m == NULL; i++)
    if (strcmp(models[i].key, fit_gpus[g].key) == 0) m = &models[i];
  if (m == NULL) return NULL;
  const gm_mig_profile *best = NULL;
  size_t best_memory = 0;
  for (size_t i = 0; i < m->profile_count; i++) {
    const gm_mig_profile *p = &m->profiles[i];
    size_t mem = m->memory / GM_MIG_MEMORY_SLICES * (size_t)p->memory_slices;
    /* the smallest memory; of two equal, the fewer SMs (1g.10gb before 2g.10gb) */
    bool better = best == NULL || mem < best_memory ||
                  (mem == best_memory && p->compute_slices < best->compute_slices);
    if (mem >= bytes && better) {
      best = p;
      best_memory = mem;
    }
  }
  if (best != NULL && memory != NULL) *memory = best_memory;
  return best ? best->name : NULL;
}

/* Finalize and initialise the host backend with devices of `capacity`. */
static bool reinit(size_t capacity, char *why, size_t len) {
  if (gpumem_finalize() != GPUMEM_OK) {
    snprintf(why, len, "cannot re-initialise libgpumem: %s", gpumem_last_error());
    return false;
  }
  gpumem_init_options o = GPUMEM_INIT_OPTIONS_INIT;
  o.backend = GPUMEM_BACKEND_HOST;
  o.host_capacity = capacity;
  if (gpumem_init(&o) != GPUMEM_OK) {
    snprintf(why, len, "cannot initialise the host backend with %zu bytes: %s", capacity,
             gpumem_last_error());
    return false;
  }
  return true;
}

/* Replay `plan` on `a`, each free followed by a synchronize of its stream
 * (see the top of this file). Returns the first failure's status (GPUMEM_OK
 * when the whole plan ran), with the failure in `why`, after giving back
 * what the run holds. */
static gpumem_status replay_settled(const gpumem_allocator *a, const gb_plan *plan,
                                    gpumem_stream_t *streams, char *why, size_t len) {
  size_t nslots = plan->slots ? plan->slots : 1;
  void **ptrs = calloc(nslots, sizeof *ptrs);
  size_t *sizes = calloc(nslots, sizeof *sizes);
  uint16_t *on = calloc(nslots, sizeof *on);
  if (ptrs == NULL || sizes == NULL || on == NULL) {
    snprintf(why, len, "out of host memory for %zu slots", nslots);
    free(ptrs);
    free(sizes);
    free(on);
    return GPUMEM_ERR_OUT_OF_MEMORY;
  }
  gpumem_status st = GPUMEM_OK;
  size_t i = 0;
  for (; i < plan->count && st == GPUMEM_OK; i++) {
    const gb_op *op = &plan->ops[i];
    gpumem_stream_t s = streams[op->stream];
    if (op->kind == GB_ALLOC) {
      st = a->alloc(a->ctx, op->size, s, &ptrs[op->slot]);
      sizes[op->slot] = op->size;
      on[op->slot] = op->stream;
      if (st != GPUMEM_OK) ptrs[op->slot] = NULL;
    } else {
      st = a->free(a->ctx, ptrs[op->slot], op->size, s);
      ptrs[op->slot] = NULL;
      if (st == GPUMEM_OK) st = gpumem_stream_synchronize(s);
    }
  }
  if (st != GPUMEM_OK) {
    snprintf(why, len, "operation %zu of %zu: %s", i - 1, plan->count, gpumem_last_error());
    for (size_t k = 0; k < nslots; k++) /* give back what the failed run holds */
      if (ptrs[k] != NULL) GB_CHECKED(a->free(a->ctx, ptrs[k], sizes[k], streams[on[k]]));
  }
  for (uint16_t k = 0; k < plan->streams; k++)
    GB_CHECKED(gpumem_stream_synchronize(streams[k]));
  free(ptrs);
  free(sizes);
  free(on);
  return st;
}

bool gb_fit_try_capacity(const char *allocator, const gb_plan *plan, int device, size_t capacity,
                         gb_fit_try *t, char *why, size_t len) {
  memset(t, 0, sizeof *t);
  if (!reinit(capacity, why, len)) return false;
  gpumem_allocator a = GPUMEM_ALLOCATOR_INIT;
  if (gpumem_allocator_create(allocator, device, &a) != GPUMEM_OK) {
    /* an allocator that cannot start on so small a device does not fit */
    snprintf(t->why, sizeof t->why, "%s", gpumem_last_error());
    return true;
  }
  gpumem_stream_t streams[GB_MAX_STREAMS];
  int ns = plan->streams ? plan->streams : 1;
  int made = 0;
  bool ok = ns <= GB_MAX_STREAMS;
  if (!ok) snprintf(why, len, "the trace uses %d streams (at most %d)", ns, GB_MAX_STREAMS);
  for (; ok && made < ns; made++) {
    if (gpumem_stream_create(device, &streams[made]) != GPUMEM_OK) {
      snprintf(why, len, "stream: %s", gpumem_last_error());
      ok = false;
      break;
    }
  }
  if (ok) {
    gpumem_status st = replay_settled(&a, plan, streams, t->why, sizeof t->why);
    t->fits = st == GPUMEM_OK;
    /* Out of memory is the answer "does not fit"; any other failure is not
     * a capacity's doing and stops the search. */
    if (st != GPUMEM_OK && st != GPUMEM_ERR_OUT_OF_MEMORY) {
      snprintf(why, len, "%s", t->why);
      ok = false;
    }
    gpumem_stats stats = GPUMEM_STATS_INIT;
    if (t->fits && a.stats(a.ctx, &stats) == GPUMEM_OK)
      t->peak_reserved = stats.peak_bytes_reserved;
  }
  for (int i = 0; i < made; i++)
    GB_CHECKED(gpumem_stream_destroy(streams[i]));
  GB_CHECKED(gpumem_allocator_destroy(&a));
  return ok;
}

/* The host backend's granularity (GPUMEM_HOST_GRANULARITY or its default). */
static bool host_granularity(int device, size_t *out, char *why, size_t len) {
  if (!reinit(GIB, why, len)) return false;
  gpumem_device_info info;
  if (gpumem_device_get_info(device, &info) != GPUMEM_OK) {
    snprintf(why, len, "%s", gpumem_last_error());
    return false;
  }
  *out = info.granularity_min;
  return true;
}

bool gb_fit_allocator(const char *allocator, const gb_plan *plan, int device, size_t limit,
                      gb_fit_result *out, char *why, size_t len) {
  memset(out, 0, sizeof *out);
  size_t g = 0;
  if (!host_granularity(device, &g, why, len)) return false;
  out->granularity = g;
  out->peak_live = gb_plan_live_curve(plan, NULL);
  size_t low = (out->peak_live + g - 1) / g * g;
  if (low == 0) low = g;
  gb_fit_try t;
  /* [bad, good]: bad does not fit (0: none known), good fits */
  size_t bad = 0, good = low, good_reserved = 0;
  for (;;) {
    if (good > limit) {
      snprintf(why, len, "does not fit in %zu bytes (%s)", limit,
               bad ? t.why : "the trace's live bytes alone are more");
      return false;
    }
    out->tries++;
    if (!gb_fit_try_capacity(allocator, plan, device, good, &t, why, len)) return false;
    if (t.fits) {
      good_reserved = t.peak_reserved;
      break;
    }
    bad = good;
    good = good > limit / 2 && good < limit ? limit / g * g : good * 2;
  }
  while (bad != 0 && good - bad > g) {
    size_t mid = bad + (good - bad) / g / 2 * g;
    out->tries++;
    if (!gb_fit_try_capacity(allocator, plan, device, mid, &t, why, len)) return false;
    if (t.fits) {
      good = mid;
      good_reserved = t.peak_reserved;
    } else {
      bad = mid;
    }
  }
  out->min_capacity = good;
  out->peak_reserved = good_reserved;
  out->waste = out->peak_live ? (double)good / (double)out->peak_live - 1.0 : 0.0;
  for (int k = 0; k < GB_FIT_GPUS; k++)
    out->profile[k] = gb_fit_smallest_profile(k, good, NULL);
  return true;
}

/* ---- the workload ---- */

static bool emulated(const char *allocator) {
  return strcmp(allocator, "cuda-async") == 0 || strcmp(allocator, "cuda-pool") == 0;
}

size_t gb_fit_rows(gb_bench *b) {
  size_t n = 0;
  for (size_t i = 0; i < b->o->nallocators; i++)
    if (!gb_host_allocator_known(b->o->allocators[i])) n++;
  return n;
}

/* Bytes in MiB, exact: "5824M", "9143.2M" (the table's 5.7G hides granules). */
static void mib_text(size_t bytes, char *buf, size_t len) {
  if (bytes % MIB == 0)
    snprintf(buf, len, "%zuM", bytes / MIB);
  else
    snprintf(buf, len, "%.1fM", (double)bytes / (double)MIB);
}

static void print_table(const gb_bench *b, const gb_fit_result *res, const bool *ok, size_t n) {
  int w = gb_allocator_width(b->o);
  size_t granularity = 0;
  for (size_t k = 0; k < n && granularity == 0; k++)
    if (ok[k]) granularity = res[k].granularity;
  printf("\nfit: the smallest device memory each allocator replays %s in (host backend, "
         "frees settled, bisected to the granularity, %zu bytes); waste = min / peak live - 1; "
         "MIG: the "
         "smallest profile with that much memory (its eighths of the GPU's, src/mig.c)\n",
         b->o->trace, granularity);
  printf("%-*s %10s %10s %10s %7s", w, "allocator", "min", "peak live", "peak rsvd", "waste");
  for (int g = 0; g < GB_FIT_GPUS; g++)
    printf(" %-*s", g + 1 < GB_FIT_GPUS ? 10 : 0, gb_fit_gpu_name(g));
  printf("\n");
  size_t k = 0;
  for (size_t i = 0; i < b->o->nallocators; i++) {
    const char *name = b->o->allocators[i];
    if (gb_host_allocator_known(name)) continue;
    const gb_fit_result *r = &res[k];
    if (!ok[k++]) {
      printf("%-*s FAILED (see above)\n", w, name);
      continue;
    }
    char min[16], live[16], rsvd[16];
    mib_text(r->min_capacity, min, sizeof min);
    mib_text(r->peak_live, live, sizeof live);
    mib_text(r->peak_reserved, rsvd, sizeof rsvd);
    printf("%-*s %10s %10s %10s %6.1f%%", w, name, min, live, rsvd, r->waste * 100.0);
    for (int g = 0; g < GB_FIT_GPUS; g++)
      printf(" %-*s", g + 1 < GB_FIT_GPUS ? 10 : 0, r->profile[g] ? r->profile[g] : "none");
    printf("%s\n", emulated(name) ? " (host emulation)" : "");
  }
  fflush(stdout);
}

void gb_fit_run(gb_bench *b, const gb_workload *w, const char *allocator) {
  (void)allocator;
  size_t n = gb_fit_rows(b);
  gb_fit_result *res = calloc(n ? n : 1, sizeof *res);
  bool *ok = calloc(n ? n : 1, sizeof *ok);
  if (res == NULL || ok == NULL) {
    gb_note(b->report, "fit: out of host memory");
    free(res);
    free(ok);
    return;
  }
  size_t k = 0;
  for (size_t i = 0; i < b->o->nallocators; i++) {
    const char *name = b->o->allocators[i];
    if (gb_host_allocator_known(name)) continue;
    gb_result row;
    gb_result_init(&row, name, w->name);
    char why[200] = "";
    gb_fit_result *r = &res[k];
    double start = gb_now_ns();
    ok[k] = gb_fit_allocator(name, &b->trace, b->device, FIT_LIMIT, r, why, sizeof why);
    double took = gb_now_ns() - start;
    if (!ok[k]) {
      snprintf(row.status, sizeof row.status, "%s", why);
    } else {
      char min[16];
      mib_text(r->min_capacity, min, sizeof min);
      snprintf(row.params, sizeof row.params, "min=%s waste=%.1f%% mig=%s/%s/%s/%s%s", min,
               r->waste * 100.0, r->profile[0] ? r->profile[0] : "none",
               r->profile[1] ? r->profile[1] : "none", r->profile[2] ? r->profile[2] : "none",
               r->profile[3] ? r->profile[3] : "none", emulated(name) ? " (host emulation)" : "");
      row.ops = (size_t)r->tries; /* trials; the time is per trial */
      row.reps = 1;
      row.ns.median = row.ns.min = row.ns.max = took / r->tries;
      row.ops_per_s = row.ns.median > 0 ? 1e9 / row.ns.median : 0;
      row.peak_live = r->peak_live;
      row.peak_reserved = r->peak_reserved;
    }
    gb_report_row(b->report, &row);
    k++;
  }
  if (n > 0) print_table(b, res, ok, n);
  free(res);
  free(ok);
}
