/* fit.h: gpumem-bench fit, the smallest device memory a trace runs in, for
 * each allocator, and the MIG slices of common GPUs that hold it (fit.c). */
#ifndef GPUMEM_BENCH_FIT_H
#define GPUMEM_BENCH_FIT_H

#include <stdbool.h>
#include <stddef.h>

#include "harness.h"

/* The GPUs whose MIG profiles fit reports, in its column order. */
#define GB_FIT_GPUS 4

/* One trial: the trace replayed once on a fresh allocator on a host backend
 * re-initialised with devices of `capacity` bytes. */
typedef struct gb_fit_try {
  bool fits;            /* the whole trace ran without an allocation failure */
  size_t peak_reserved; /* the allocator's peak of reserved bytes (fits only) */
  char why[200];        /* !fits: the failure, as gb_run_plan or the allocator said it */
} gb_fit_try;

/* Run the trial. False (with the reason in `why`) when the trial could not
 * be made (the library could not be re-initialised, a stream could not be
 * made) or failed other than out of memory; true otherwise, with t->fits
 * saying whether the trace fit (an allocator that cannot be created at
 * this capacity does not fit). Leaves the library initialised
 * on the host backend at `capacity`. */
bool gb_fit_try_capacity(const char *allocator, const gb_plan *plan, int device, size_t capacity,
                         gb_fit_try *t, char *why, size_t len);

/* The answer for one allocator. */
typedef struct gb_fit_result {
  size_t granularity;   /* the host backend's granularity: the bisection's step */
  size_t min_capacity;  /* the smallest multiple of it at which the trace fits */
  size_t peak_live;     /* the trace's most live bytes */
  size_t peak_reserved; /* the allocator's peak of reserved bytes at min_capacity */
  double waste;         /* min_capacity / peak_live - 1 */
  int tries;            /* trials made */
  /* For each GPU of gb_fit_gpu_name, the smallest MIG profile whose memory
   * is at least min_capacity, or NULL when not even the whole GPU holds it. */
  const char *profile[GB_FIT_GPUS];
} gb_fit_result;

/* Bisect the device capacity for `allocator` on `plan`: a lower bound (the
 * peak live bytes rounded up to the granularity), an upper bound found by
 * doubling (at most `limit` bytes), then bisection on multiples of the
 * granularity, assuming a trace that fits at some capacity fits at every
 * larger one. False with the reason in `why` when the trace does not fit at
 * `limit` or a trial could not be made. */
bool gb_fit_allocator(const char *allocator, const gb_plan *plan, int device, size_t limit,
                      gb_fit_result *out, char *why, size_t len);

/* "A100-40GB", ... for column g of the MIG answer; the memory fit counts
 * for a profile (bytes) is gb_fit_profile_memory. */
const char *gb_fit_gpu_name(int g);
/* The smallest profile of GPU g with at least `bytes` of memory (its
 * memory in *memory), or NULL. */
const char *gb_fit_smallest_profile(int g, size_t bytes, size_t *memory);

/* The workload table's entry points: one row per device allocator. */
size_t gb_fit_rows(gb_bench *b);
void gb_fit_run(gb_bench *b, const gb_workload *w, const char *allocator);

#endif
