/* test_fit.c: gpumem-bench fit (bench/fit.c), the least device memory a
 * trace runs in.
 *
 * The claim under test is the target: for every allocator, fit's
 * bisection answers within one granule of the smallest capacity found by
 * trying every capacity from one granule upwards. A small trace of two
 * streams and sizes between 1 KiB and 1 MiB, on a host backend with a 64 KiB
 * granularity, keeps the scan short while the allocators still differ (the
 * ones that round each block up to a granule need more than the pools).
 * Besides: the answer fits and the granule below it does not, the reported
 * peaks are consistent, a trace that cannot fit under the limit is refused
 * with a message naming the capacity, and the MIG answer follows the profile
 * table (1g.5gb holds 5 GiB, not a byte more; the H200's 1g.18gb is an
 * eighth of 141 GiB).
 */
#include <stdio.h>
#include <stdlib.h>

#include "fit.h"
#include "helpers.h"

#define KIB        ((size_t)1 << 10)
#define MIB        ((size_t)1 << 20)
#define GIB        ((size_t)1 << 30)
#define GRANULE    (64 * KIB)
#define SCAN_LIMIT 512 /* granules the exhaustive scan may try */
#define TRACE_OPS  60
#define LIVE_MAX   12

/* Allocations of 1 KiB..1 MiB on two streams, at most LIVE_MAX live, each
 * freed later, all freed at the end; one slot per allocation, as the trace
 * reader makes them. */
static void small_trace(gb_plan *p) {
  memset(p, 0, sizeof *p);
  uint64_t x = 88172645463325252u;
  struct {
    uint32_t slot;
    uint16_t stream;
    size_t size;
  } live[LIVE_MAX];
  size_t nlive = 0;
  uint32_t slots = 0;
  for (int i = 0; i < TRACE_OPS; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    if (nlive == LIVE_MAX || (nlive > 0 && x % 3 == 0)) {
      size_t k = (size_t)(x >> 8) % nlive;
      assert_true(gb_plan_push(p, (gb_op){GB_FREE, live[k].stream, live[k].slot, live[k].size}));
      live[k] = live[--nlive];
    } else {
      live[nlive].slot = slots++;
      live[nlive].size = KIB + (size_t)((x >> 20) % MIB);
      live[nlive].stream = (uint16_t)((x >> 40) % 2);
      assert_true(gb_plan_push(
          p, (gb_op){GB_ALLOC, live[nlive].stream, live[nlive].slot, live[nlive].size}));
      nlive++;
    }
  }
  while (nlive > 0) {
    nlive--;
    assert_true(
        gb_plan_push(p, (gb_op){GB_FREE, live[nlive].stream, live[nlive].slot, live[nlive].size}));
  }
  p->slots = slots;
  p->streams = 2;
}

static bool fits_at(const char *allocator, const gb_plan *p, size_t capacity) {
  gb_fit_try t;
  char why[256] = "";
  if (!gb_fit_try_capacity(allocator, p, 0, capacity, &t, why, sizeof why))
    fail_msg("%s at %zu: %s", allocator, capacity, why);
  return t.fits;
}

static void test_bisection_matches_a_scan(void **state) {
  (void)state;
  gb_plan p;
  small_trace(&p);
  size_t live = gb_plan_live_curve(&p, NULL);
  assert_true(live > 2 * MIB); /* the trace is not trivial */
  gpumem_allocator_kind kinds[16];
  size_t n = gpumem_allocator_list(kinds, 16);
  assert_true(n >= 6);
  size_t least = SIZE_MAX, most = 0;
  for (size_t k = 0; k < n; k++) {
    const char *name = kinds[k].name;
    gb_fit_result r;
    char why[256] = "";
    if (!gb_fit_allocator(name, &p, 0, GIB, &r, why, sizeof why)) fail_msg("%s: %s", name, why);
    assert_int_equal(r.granularity, GRANULE);
    assert_int_equal(r.peak_live, live);
    assert_int_equal(r.min_capacity % GRANULE, 0);
    assert_true(r.min_capacity >= live);
    assert_true(r.peak_reserved >= live);
    assert_true(r.peak_reserved <= r.min_capacity);
    assert_true(r.tries >= 1);
    assert_true(r.waste >= 0.0);
    /* Every capacity from one granule up: the first that fits. */
    size_t scan = 0;
    for (size_t c = GRANULE; c <= SCAN_LIMIT * GRANULE && scan == 0; c += GRANULE)
      if (fits_at(name, &p, c)) scan = c;
    assert_true(scan != 0);
    size_t diff = scan > r.min_capacity ? scan - r.min_capacity : r.min_capacity - scan;
    if (diff > GRANULE)
      fail_msg("%s: fit says %zu, the scan %zu (granule %zu)", name, r.min_capacity, scan, GRANULE);
    /* The answer fits and, above the trace's live peak, the granule below does not. */
    assert_true(fits_at(name, &p, r.min_capacity));
    if (r.min_capacity - GRANULE >= live) assert_false(fits_at(name, &p, r.min_capacity - GRANULE));
    printf("  %-20s fit %7zu KiB, scan %7zu KiB, live %zu KiB, %d tries\n", name,
           r.min_capacity / KIB, scan / KIB, live / KIB, r.tries);
    if (r.min_capacity < least) least = r.min_capacity;
    if (r.min_capacity > most) most = r.min_capacity;
  }
  assert_true(most > least); /* the allocators differ: the test can tell them apart */
  gb_plan_free(&p);
}

static void test_limit_is_reported(void **state) {
  (void)state;
  gb_plan p = {0};
  assert_true(gb_plan_push(&p, (gb_op){GB_ALLOC, 0, 0, 3 * MIB}));
  assert_true(gb_plan_push(&p, (gb_op){GB_FREE, 0, 0, 3 * MIB}));
  p.slots = 1;
  p.streams = 1;
  gb_fit_result r;
  char why[256] = "";
  /* 3 MiB live, a limit of 2 MiB: the lower bound is already past it. */
  assert_false(gb_fit_allocator("cuda-malloc", &p, 0, 2 * MIB, &r, why, sizeof why));
  assert_string_equal(why, "does not fit in 2097152 bytes (the trace's live bytes alone are more)");
  /* With room, cuda-malloc needs exactly the 3 MiB (a multiple of 64 KiB). */
  assert_true(gb_fit_allocator("cuda-malloc", &p, 0, GIB, &r, why, sizeof why));
  assert_int_equal(r.min_capacity, 3 * MIB);
  assert_int_equal(r.peak_reserved, 3 * MIB);
  assert_true(r.waste == 0.0);
  assert_int_equal(r.tries, 1);
  assert_string_equal(r.profile[0], "1g.5gb");
  /* A failure that is not out of memory stops the search with its reason. */
  p.streams = GB_MAX_STREAMS + 1;
  assert_false(gb_fit_allocator("cuda-malloc", &p, 0, GIB, &r, why, sizeof why));
  assert_string_equal(why, "the trace uses 65 streams (at most 64)");
  gb_plan_free(&p);
}

static void test_mig_profiles(void **state) {
  (void)state;
  size_t mem = 0;
  assert_string_equal(gb_fit_gpu_name(0), "A100-40GB");
  assert_string_equal(gb_fit_gpu_name(3), "H200-141GB");
  assert_null(gb_fit_gpu_name(GB_FIT_GPUS));
  assert_string_equal(gb_fit_smallest_profile(0, 5 * GIB, &mem), "1g.5gb");
  assert_int_equal(mem, 5 * GIB);
  /* a byte more: the next memory size, the profile with fewer SMs */
  assert_string_equal(gb_fit_smallest_profile(0, 5 * GIB + 1, &mem), "1g.10gb");
  assert_int_equal(mem, 10 * GIB);
  assert_string_equal(gb_fit_smallest_profile(0, 11 * GIB, NULL), "3g.20gb");
  assert_string_equal(gb_fit_smallest_profile(0, 40 * GIB, NULL), "7g.40gb");
  assert_null(gb_fit_smallest_profile(0, 40 * GIB + 1, NULL));
  assert_string_equal(gb_fit_smallest_profile(1, 40 * GIB + 1, NULL), "7g.80gb");
  assert_string_equal(gb_fit_smallest_profile(2, 1, NULL), "1g.10gb");
  /* an eighth of the H200's 141 GiB is 17.625 GiB: 18 GiB needs 1g.35gb */
  assert_string_equal(gb_fit_smallest_profile(3, 141 * GIB / 8, &mem), "1g.18gb");
  assert_int_equal(mem, 141 * GIB / 8);
  assert_string_equal(gb_fit_smallest_profile(3, 18 * GIB, NULL), "1g.35gb");
  assert_null(gb_fit_smallest_profile(3, 142 * GIB, NULL));
}

int main(void) {
  setenv("GPUMEM_HOST_GRANULARITY", "65536", 1);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bisection_matches_a_scan),
      cmocka_unit_test(test_limit_is_reported),
      cmocka_unit_test(test_mig_profiles),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  if (gpumem_finalize() != GPUMEM_OK) return 1;
  return rc;
}
