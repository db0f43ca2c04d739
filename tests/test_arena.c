/* test_arena.c: the multi-GPU peer-mapped arena and its TLSF heap.
 *
 * On the host backend the suite runs with four emulated devices (64 KiB
 * granularity, so growths are cheap and many): placement and owner(),
 * interleaving, access for every member as the backend records it, growth
 * with contents kept, the peer refusals (a missing link, a MIG slice from a
 * fake NVML layout), rollback of a growth failing at each driver step, a
 * model-based random test that compares every step with a reference model
 * and runs check() after each, and threads freeing each other's blocks. The
 * heap itself is tested directly too, including that its checker catches
 * corruption. On the CUDA backend the cases that need one device run on the
 * GPU; the four-device cases skip (they need emulated devices).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "fake_nvml.h"
#include "helpers.h"
#include "backend/nvml.h"
#include "tlsf.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

static int setup_four(void **state) {
  gpumem_init_options o = GPUMEM_INIT_OPTIONS_INIT;
  o.host_devices = 4;
  o.host_capacity = 256 * MiB;
  o.host_granularity = 64 * KiB;
  o.host_peers = "all";
  return gm_test_setup_host(state, o);
}

static int teardown_four(void **state) {
  gm_nvml_reset();
  return gm_test_teardown_host(state);
}

/* Members for the tests that run anywhere: 4 emulated devices, or the GPUs
 * (at most 4) when they can all reach each other, else GPU 0 alone. */
static size_t members(int *devs) {
  int count = 0;
  assert_gpumem_ok(gpumem_device_count(&count));
  size_t n = count < 4 ? (size_t)count : 4;
  for (size_t i = 0; i < n; i++)
    devs[i] = (int)i;
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++) {
      bool ok = true;
      if (i != j) assert_gpumem_ok(gpumem_device_can_access_peer((int)i, (int)j, &ok));
      if (!ok) return 1;
    }
  return n;
}

static size_t granularity(int device) {
  gpumem_phys_props p = {device, GPUMEM_HANDLE_NONE, false};
  size_t g = 0;
  assert_gpumem_ok(gpumem_vmm_granularity(&p, false, &g));
  return g;
}

static gpumem_arena_t *make(const int *devs, size_t n, gpumem_placement place, size_t chunk,
                            size_t max) {
  gpumem_arena_config c = GPUMEM_ARENA_CONFIG_INIT;
  c.devices = devs;
  c.device_count = n;
  c.placement = place;
  c.chunk_size = chunk;
  c.max_size = max;
  gpumem_arena_t *a = NULL;
  assert_gpumem_ok(gpumem_arena_create(&c, &a));
  return a;
}

static void assert_checked(gpumem_arena_t *a) {
  char why[256];
  gpumem_status st = gpumem_arena_check(a, why, sizeof why);
  if (st != GPUMEM_OK) fail_msg("arena check: %s", why);
}

static gpumem_arena_stats stats_of(gpumem_arena_t *a) {
  gpumem_arena_stats s = GPUMEM_ARENA_STATS_INIT;
  assert_gpumem_ok(gpumem_arena_get_stats(a, &s));
  return s;
}

static void write_block(void *p, size_t n, unsigned seed) {
  unsigned char *host = malloc(n);
  gm_test_fill(host, n, seed);
  assert_gpumem_ok(gpumem_memcpy(p, host, n, NULL));
  assert_gpumem_ok(gpumem_stream_synchronize(NULL));
  free(host);
}

static size_t block_mismatches(const void *p, size_t n, unsigned seed) {
  unsigned char *host = malloc(n);
  assert_gpumem_ok(gpumem_memcpy(host, p, n, NULL));
  assert_gpumem_ok(gpumem_stream_synchronize(NULL));
  size_t bad = gm_test_mismatches(host, n, seed);
  free(host);
  return bad;
}

static bool same_counters(gm_backend_counters a, gm_backend_counters b) {
  return memcmp(&a, &b, sizeof a) == 0;
}

/* ---- the heap on its own ---- */

static void assert_heap_ok(const gm_tlsf *t) {
  char why[256];
  if (!gm_tlsf_check(t, why, sizeof why)) fail_msg("heap check: %s", why);
}

/* gm_tlsf_remove_range takes free bytes off the end of a region (a page
 * the arena unmaps), and only free ones; an emptied region goes and the
 * last region takes its place. */
static void test_heap_remove_region_end(void **state) {
  (void)state;
  gm_tlsf t;
  gm_tlsf_init(&t);
  bool no_host = false;
  assert_true(gm_tlsf_add(&t, 0, 64 * KiB));
  assert_true(gm_tlsf_add(&t, 1024 * KiB, 64 * KiB)); /* a second region */
  gm_tlsf_block *b = gm_tlsf_alloc(&t, 16 * KiB, GM_TLSF_ALIGN, &no_host);
  assert_non_null(b);
  uint64_t at = b->offset;
  uint64_t end = at < 1024 * KiB ? 64 * KiB : 1088 * KiB, start = end - 64 * KiB;
  assert_int_equal(at, start);
  assert_true(gm_tlsf_remove_range(&t, end - 48 * KiB, 48 * KiB));
  assert_int_equal(t.bytes_total, 80 * KiB);
  assert_heap_ok(&t);
  assert_false(gm_tlsf_remove_range(&t, start, 16 * KiB));          /* allocated */
  assert_false(gm_tlsf_remove_range(&t, end - 16 * KiB, 16 * KiB)); /* taken already */
  assert_false(gm_tlsf_remove_range(&t, start + 16 * KiB, 0));
  assert_int_equal(t.bytes_total, 80 * KiB);
  gm_tlsf_free(&t, b);
  assert_true(gm_tlsf_remove_range(&t, start, 16 * KiB)); /* the region goes */
  assert_int_equal(t.nregions, 1);
  assert_int_equal(t.bytes_total, 64 * KiB);
  assert_heap_ok(&t);
  uint64_t other = start == 0 ? 1024 * KiB : 0;
  b = gm_tlsf_alloc(&t, 64 * KiB, GM_TLSF_ALIGN, &no_host);
  assert_non_null(b);
  assert_int_equal(b->offset, other);
  gm_tlsf_free(&t, b);
  assert_true(gm_tlsf_remove_range(&t, other, 64 * KiB));
  assert_int_equal(t.nregions, 0);
  assert_int_equal(t.bytes_total, 0);
  assert_heap_ok(&t);
  gm_tlsf_destroy(&t);
}

/* ---- bad input ---- */

static void test_create_bad_input(void **state) {
  (void)state;
  gpumem_arena_config c = GPUMEM_ARENA_CONFIG_INIT;
  gpumem_arena_t *a = NULL;
  int devs[3] = {0, 0, 1};
  assert_gpumem_status(gpumem_arena_create(NULL, &a), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_arena_create(&c, NULL), GPUMEM_ERR_INVALID_ARGUMENT);
  c.devices = devs;
  c.device_count = 0;
  assert_gpumem_status(gpumem_arena_create(&c, &a), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("1 to 64 member devices, not 0");
  c.device_count = 65;
  assert_gpumem_status(gpumem_arena_create(&c, &a), GPUMEM_ERR_INVALID_ARGUMENT);
  c.device_count = 2;
  assert_gpumem_status(gpumem_arena_create(&c, &a), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("device 0 is listed twice");
  devs[1] = 64;
  assert_gpumem_status(gpumem_arena_create(&c, &a), GPUMEM_ERR_INVALID_DEVICE);
  assert_last_error_contains("member device 64 does not exist");
  devs[1] = -1;
  assert_gpumem_status(gpumem_arena_create(&c, &a), GPUMEM_ERR_INVALID_DEVICE);
  c.device_count = 1;
  size_t g = granularity(0);
  c.placement = (gpumem_placement)7;
  assert_gpumem_status(gpumem_arena_create(&c, &a), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("placement 7");
  c.placement = GPUMEM_PLACE_LOCAL;
  c.handle_type = (gpumem_handle_type)5;
  assert_gpumem_status(gpumem_arena_create(&c, &a), GPUMEM_ERR_INVALID_ARGUMENT);
  c.handle_type = GPUMEM_HANDLE_NONE;
  c.shards = 65;
  assert_gpumem_status(gpumem_arena_create(&c, &a), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("at most 64");
  c.shards = 0;
  c.stripe_size = g;
  assert_gpumem_status(gpumem_arena_create(&c, &a), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("for a LOCAL arena");
  c.stripe_size = 0;
  c.chunk_size = g + 256;
  assert_gpumem_status(gpumem_arena_create(&c, &a), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("not a multiple of");
  c.chunk_size = g;
  c.max_size = 4 * g;
  c.initial_size = 5 * g;
  assert_gpumem_status(gpumem_arena_create(&c, &a), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("does not fit in the maximum size");
  c.initial_size = 0;
  c.max_size = 0;
  c.remap = (gpumem_arena_remap)3;
  assert_gpumem_status(gpumem_arena_create(&c, &a), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("remap 3 is not BALANCED, MEMORY or CALLS");
  c.remap = GPUMEM_ARENA_REMAP_CALLS;
  c.slack_percent = 101;
  assert_gpumem_status(gpumem_arena_create(&c, &a), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("slack_percent 101 is over 100");
  c.remap = GPUMEM_ARENA_REMAP_BALANCED;
  c.slack_percent = 0;
  c.max_size = SIZE_MAX - 5;
  assert_gpumem_status(gpumem_arena_create(&c, &a), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_null(a);
  assert_true(same_counters(gm_test_counters(), (gm_backend_counters){0}));
}

/* Four devices of 2^62 bytes: their memory sums to 2^64, which once wrapped
 * to a default max_size of 0 (and a reservation of 0 bytes refused). */
static int setup_four_huge(void **state) {
  gpumem_init_options o = GPUMEM_INIT_OPTIONS_INIT;
  o.host_devices = 4;
  o.host_capacity = (size_t)1 << 62;
  o.host_granularity = 64 * KiB;
  return gm_test_setup_host(state, o);
}

static void test_default_max_size_sum_does_not_wrap(void **state) {
  (void)state;
  if (!gm_test_on_host()) skip(); /* needs the four 2^62-byte devices */
  int devs[4] = {0, 1, 2, 3};
  gpumem_arena_config c = GPUMEM_ARENA_CONFIG_INIT;
  c.devices = devs;
  c.device_count = 4;
  c.placement = GPUMEM_PLACE_LOCAL;
  gpumem_arena_t *a = NULL;
  int64_t reservations = gm_test_counters().reservations;
  assert_gpumem_status(gpumem_arena_create(&c, &a), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("the default maximum size, the 4 members' memory, sums to more than");
  assert_last_error_contains("set max_size");
  assert_null(a);
  assert_int_equal(gm_test_counters().reservations, reservations);
  c.max_size = 64 * MiB; /* an explicit size still works */
  assert_gpumem_ok(gpumem_arena_create(&c, &a));
  assert_gpumem_ok(gpumem_arena_destroy(a));
}

/* The arena's reservation is its own: the public VMM calls refuse it. */
static void test_public_vmm_calls_refuse_its_reservation(void **state) {
  (void)state;
  int devs[1] = {0};
  gpumem_arena_config c = GPUMEM_ARENA_CONFIG_INIT;
  c.devices = devs;
  c.device_count = 1;
  c.max_size = 64 * MiB;
  gpumem_arena_t *a = NULL;
  assert_gpumem_ok(gpumem_arena_create(&c, &a));
  void *p = NULL;
  assert_gpumem_ok(gpumem_arena_alloc(a, 4096, 0, 0, &p));
  size_t g = granularity(0);
  char *granule = (char *)((uintptr_t)p & ~(uintptr_t)(g - 1));
  gpumem_phys_props props = GPUMEM_PHYS_PROPS_INIT;
  gpumem_phys_t h = 0;
  assert_gpumem_ok(gpumem_vmm_create(&props, g, &h));
  assert_gpumem_status(gpumem_vmm_unmap(granule, g), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("is inside the address range of a libgpumem arena");
  assert_gpumem_status(gpumem_vmm_map(granule + 32 * MiB, g, 0, h), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("libgpumem arena");
  assert_gpumem_ok(gpumem_vmm_release(h));
  assert_gpumem_ok(gpumem_arena_free(a, p));
  assert_gpumem_ok(gpumem_arena_destroy(a));
}

static void test_alloc_free_bad_input(void **state) {
  (void)state;
  int dev = 0;
  size_t g = granularity(0);
  gpumem_arena_t *a = make(&dev, 1, GPUMEM_PLACE_LOCAL, 4 * g, 16 * g);
  void *p = NULL, *q = NULL;
  assert_gpumem_status(gpumem_arena_alloc(NULL, 256, 0, 0, &p), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_arena_alloc(a, 256, 0, 0, NULL), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_arena_alloc(a, 0, 0, 0, &p), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("cannot allocate 0 bytes");
  assert_gpumem_status(gpumem_arena_alloc(a, 256, 3000, 0, &p), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("alignment 3000 is not a power of two");
  assert_gpumem_status(gpumem_arena_alloc(a, 256, 2 * g, 0, &p), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_arena_alloc(a, SIZE_MAX, 0, 0, &p), GPUMEM_ERR_CAPACITY);
  assert_gpumem_status(gpumem_arena_alloc(a, 17 * g, 0, 0, &p), GPUMEM_ERR_CAPACITY);
  assert_last_error_contains("maximum size");
  assert_gpumem_status(gpumem_arena_alloc(a, 256, 0, 1, &p), GPUMEM_ERR_INVALID_DEVICE);
  assert_last_error_contains("device 1 is not a member");
  assert_gpumem_status(gpumem_arena_alloc(a, 256, 0, GPUMEM_ARENA_ANY_DEVICE, &p),
                       GPUMEM_ERR_INVALID_DEVICE);
  assert_last_error_contains("LOCAL arena needs the device");
  assert_gpumem_status(gpumem_arena_alloc(a, 256, 0, 4000, &p), GPUMEM_ERR_INVALID_DEVICE);
  assert_int_equal(stats_of(a).base.bytes_reserved, 0); /* nothing was mapped for bad calls */

  assert_gpumem_ok(gpumem_arena_alloc(a, 1000, 0, 0, &p));
  assert_gpumem_ok(gpumem_arena_alloc(a, 300, 0, 0, &q));
  assert_int_equal((uintptr_t)p % 256, 0);
  int local = 0;
  char *inside = (char *)p + 256;
  assert_gpumem_status(gpumem_arena_free(NULL, p), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_arena_free(a, NULL), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_arena_free(a, &local), GPUMEM_ERR_INVALID_POINTER);
  assert_last_error_contains("not in the arena's mapped memory");
  assert_gpumem_status(gpumem_arena_free(a, inside), GPUMEM_ERR_INVALID_POINTER);
  assert_last_error_contains("inside an allocated block");
  assert_gpumem_ok(gpumem_arena_free(a, q));
  assert_gpumem_status(gpumem_arena_free(a, q), GPUMEM_ERR_DOUBLE_FREE);
  assert_last_error_contains("freed already");
  /* Nothing was lost: p is still allocated with its 1024 bytes. */
  gpumem_arena_stats s = stats_of(a);
  assert_int_equal(s.blocks_in_use, 1);
  assert_int_equal(s.base.bytes_in_use, 1024);
  assert_int_equal(s.base.frees, 1);
  int owner = -1;
  assert_gpumem_status(gpumem_arena_owner(a, NULL, &owner), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_arena_owner(a, p, NULL), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_arena_owner(a, &local, &owner), GPUMEM_ERR_INVALID_POINTER);
  assert_gpumem_status(gpumem_arena_owner(a, (char *)p + 4 * g, &owner),
                       GPUMEM_ERR_INVALID_POINTER); /* reserved, not mapped */
  assert_gpumem_status(gpumem_arena_get_stats(a, NULL), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_arena_get_stats(NULL, &s), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_arena_check(NULL, NULL, 0), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_checked(a);
  assert_gpumem_ok(gpumem_arena_destroy(a));
  assert_gpumem_ok(gpumem_arena_destroy(NULL));
}

/* ---- placement and access ---- */

static void assert_access_for_all(void *p, const int *devs, size_t n) {
  for (size_t m = 0; m < n; m++) {
    gpumem_access_flags f = GPUMEM_ACCESS_NONE;
    assert_gpumem_ok(gpumem_vmm_get_access(p, devs[m], &f));
    assert_int_equal(f, GPUMEM_ACCESS_READWRITE);
  }
}

static void test_local_placement(void **state) {
  (void)state;
  if (!gm_test_on_host()) skip(); /* four emulated devices */
  int devs[4] = {0, 1, 2, 3};
  size_t g = granularity(0);
  gpumem_arena_t *a = make(devs, 4, GPUMEM_PLACE_LOCAL, 4 * g, 256 * g);
  void *p[4][3];
  for (int d = 0; d < 4; d++) {
    for (int k = 0; k < 3; k++) {
      assert_gpumem_ok(gpumem_arena_alloc(a, (size_t)(k + 1) * 10000, 0, d, &p[d][k]));
      int owner = -1;
      assert_gpumem_ok(gpumem_arena_owner(a, p[d][k], &owner));
      assert_int_equal(owner, d);
      assert_gpumem_ok(gpumem_arena_owner(a, (char *)p[d][k] + 9999, &owner));
      assert_int_equal(owner, d);
      assert_access_for_all(p[d][k], devs, 4);
      write_block(p[d][k], (size_t)(k + 1) * 10000, (unsigned)(d * 3 + k));
    }
  }
  for (int d = 0; d < 4; d++)
    for (int k = 0; k < 3; k++)
      assert_int_equal(block_mismatches(p[d][k], (size_t)(k + 1) * 10000, (unsigned)(d * 3 + k)),
                       0);
  gpumem_arena_stats s = stats_of(a);
  assert_int_equal(s.device_count, 4);
  assert_int_equal(s.placement, GPUMEM_PLACE_LOCAL);
  for (int d = 0; d < 4; d++) {
    assert_int_equal(s.devices[d].device, d);
    assert_int_equal(s.devices[d].bytes_mapped, 4 * g); /* one chunk each */
    assert_int_equal(s.devices[d].bytes_in_use, 10240 + 20224 + 30208);
    assert_int_equal(s.devices[d].blocks_in_use, 3);
    assert_int_equal(s.devices[d].largest_free, 4 * g - (10240 + 20224 + 30208));
  }
  assert_int_equal(s.base.bytes_reserved, 16 * g);
  assert_int_equal(s.growths, 4);
  /* Each growth is one physical allocation per granule (a page, the unit
   * that moves) on its device. */
  assert_int_equal(gm_test_counters().phys_handles, 16);
  assert_int_equal(s.pages_created, 16);
  assert_int_equal(s.page_size, g);
  assert_int_equal(gm_test_counters().mapped_bytes, (int64_t)(16 * g));
  assert_checked(a);
  assert_gpumem_ok(gpumem_arena_destroy(a));
}

static void test_interleave(void **state) {
  (void)state;
  if (!gm_test_on_host()) skip(); /* four emulated devices */
  int devs[4] = {3, 1, 0, 2};     /* stripes go in member order */
  size_t g = granularity(0);
  gpumem_arena_config c = GPUMEM_ARENA_CONFIG_INIT;
  c.devices = devs;
  c.device_count = 4;
  c.placement = GPUMEM_PLACE_INTERLEAVE;
  c.stripe_size = g;
  c.chunk_size = 8 * g;
  c.max_size = 64 * g;
  c.initial_size = 1;
  gpumem_arena_t *a = NULL;
  assert_gpumem_ok(gpumem_arena_create(&c, &a));
  gpumem_arena_stats s = stats_of(a);
  assert_int_equal(s.base.bytes_reserved, 8 * g);
  assert_int_equal(s.stripe_size, g);
  /* One allocation per stripe, each mapped from its start (cuMemMap's
   * offset "currently must be zero"): 8 stripes, 8 allocations. */
  assert_int_equal(gm_test_counters().phys_handles, 8);
  assert_int_equal(gm_test_counters().phys_bytes, (int64_t)(8 * g));
  void *p = NULL;
  assert_gpumem_ok(gpumem_arena_alloc(a, 6 * g, g, GPUMEM_ARENA_ANY_DEVICE, &p));
  int first = -1;
  assert_gpumem_ok(gpumem_arena_owner(a, p, &first));
  size_t at = 0;
  while (devs[at] != first)
    at++;
  for (size_t k = 0; k < 6; k++) {
    int owner = -1;
    assert_gpumem_ok(gpumem_arena_owner(a, (char *)p + k * g + g / 2, &owner));
    assert_int_equal(owner, devs[(at + k) % 4]);
    assert_access_for_all((char *)p + k * g, devs, 4);
  }
  write_block(p, 6 * g, 9);
  /* A second block needs a growth: 8 more stripes, still in turn, for
   * 8 creations, 8 maps and one set-access over the whole growth. */
  uint64_t creates = gm_backend_calls(GM_OP_phys_create), maps = gm_backend_calls(GM_OP_map);
  uint64_t grants = gm_backend_calls(GM_OP_set_access);
  void *q = NULL;
  assert_gpumem_ok(gpumem_arena_alloc(a, 4 * g, 0, 1, &q));
  assert_int_equal(gm_backend_calls(GM_OP_phys_create) - creates, 8);
  assert_int_equal(gm_backend_calls(GM_OP_map) - maps, 8);
  assert_int_equal(gm_backend_calls(GM_OP_set_access) - grants, 1);
  assert_int_equal(gm_test_counters().phys_handles, 16);
  s = stats_of(a);
  assert_int_equal(s.base.bytes_reserved, 16 * g);
  assert_int_equal(s.growths, 2);
  size_t sum = 0;
  for (int m = 0; m < 4; m++) {
    assert_int_equal(s.devices[m].bytes_mapped, 4 * g);
    sum += s.devices[m].bytes_in_use;
  }
  assert_int_equal(sum, 10 * g);
  assert_int_equal(s.base.bytes_in_use, 10 * g);
  assert_int_equal(block_mismatches(p, 6 * g, 9), 0);
  assert_checked(a);
  assert_gpumem_status(gpumem_arena_alloc(a, 256, 0, 7, &q), GPUMEM_ERR_INVALID_DEVICE);
  /* Destroy unmaps every stripe and releases every allocation. */
  uint64_t unmaps = gm_backend_calls(GM_OP_unmap);
  uint64_t releases = gm_backend_calls(GM_OP_phys_release);
  assert_gpumem_ok(gpumem_arena_destroy(a));
  assert_int_equal(gm_backend_calls(GM_OP_unmap) - unmaps, 16);
  assert_int_equal(gm_backend_calls(GM_OP_phys_release) - releases, 16);
  assert_true(same_counters(gm_test_counters(), (gm_backend_counters){0}));
  /* Interleave geometry errors. */
  c.chunk_size = 6 * g; /* not a multiple of 4 stripes */
  assert_gpumem_status(gpumem_arena_create(&c, &a), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("stripe size x members");
  c.chunk_size = 0;
  c.stripe_size = g + 4096;
  assert_gpumem_status(gpumem_arena_create(&c, &a), GPUMEM_ERR_INVALID_ARGUMENT);
}

/* ---- growth ---- */

static void test_growth_keeps_blocks(void **state) {
  (void)state;
  int devs[4];
  size_t n = members(devs);
  size_t g = granularity(0), chunk = 4 * g;
  gpumem_arena_t *a = make(devs, n, GPUMEM_PLACE_LOCAL, chunk, 8 * chunk);
  void *small[8];
  for (int i = 0; i < 8; i++) {
    assert_gpumem_ok(gpumem_arena_alloc(a, chunk / 2, 0, devs[0], &small[i]));
    write_block(small[i], chunk / 2, (unsigned)i);
  }
  gpumem_arena_stats s = stats_of(a);
  assert_int_equal(s.base.bytes_reserved, 4 * chunk);
  assert_int_equal(s.growths, 4);
  /* A block larger than a chunk gets one contiguous growth. */
  void *big = NULL;
  assert_gpumem_ok(gpumem_arena_alloc(a, 3 * chunk - 100, 0, devs[0], &big));
  s = stats_of(a);
  assert_int_equal(s.base.bytes_reserved, 7 * chunk);
  assert_int_equal(s.growths, 5);
  write_block(big, 3 * chunk - 100, 99);
  for (int i = 0; i < 8; i++)
    assert_int_equal(block_mismatches(small[i], chunk / 2, (unsigned)i), 0);
  /* Full: the next block does not fit and the arena cannot grow. */
  void *p = NULL;
  gpumem_arena_stats before = stats_of(a);
  assert_gpumem_status(gpumem_arena_alloc(a, 2 * chunk, 0, devs[0], &p), GPUMEM_ERR_OUT_OF_MEMORY);
  assert_last_error_contains("no free block of ");
  assert_last_error_contains("the arena has mapped");
  assert_last_error_contains("device 0: ");
  assert_last_error_contains("largest free");
  gpumem_arena_stats after = stats_of(a);
  assert_int_equal(after.base.bytes_reserved, before.base.bytes_reserved);
  assert_int_equal(after.base.failed_allocs, 1);
  /* Freed memory is reused before growing. */
  assert_gpumem_ok(gpumem_arena_free(a, big));
  assert_gpumem_ok(gpumem_arena_alloc(a, 2 * chunk, 0, devs[0], &p));
  assert_int_equal(stats_of(a).base.bytes_reserved, 7 * chunk);
  assert_checked(a);
  assert_gpumem_ok(gpumem_arena_destroy(a));
  assert_int_equal(gm_test_counters().mapped_bytes, 0);
}

/* One growth that fails at a driver step leaves everything as it was. */
static void growth_fails_at(gpumem_arena_t *a, gm_op op, uint64_t nth, int device, size_t size) {
  gm_backend_counters before = gm_test_counters();
  gpumem_arena_stats sb = stats_of(a);
  gm_fault_inject(op, nth, GPUMEM_ERR_INJECTED);
  void *p = NULL;
  gpumem_status st = gpumem_arena_alloc(a, size, 0, device, &p);
  gm_fault_clear();
  if (st != GPUMEM_ERR_INJECTED)
    fail_msg("%s #%llu: alloc returned %s (%s)", gm_op_name(op), (unsigned long long)nth,
             gpumem_status_name(st), gpumem_last_error());
  assert_last_error_contains("injected");
  assert_true(same_counters(before, gm_test_counters()));
  gpumem_arena_stats sa = stats_of(a);
  assert_int_equal(sa.base.bytes_reserved, sb.base.bytes_reserved);
  assert_int_equal(sa.growths, sb.growths);
  assert_int_equal(sa.base.bytes_in_use, sb.base.bytes_in_use);
  assert_checked(a);
}

static void test_growth_rolls_back(void **state) {
  (void)state;
  if (!gm_test_on_host()) skip(); /* four emulated devices */
  int devs[4] = {0, 1, 2, 3};
  size_t g = granularity(0);
  gpumem_arena_t *a = make(devs, 4, GPUMEM_PLACE_LOCAL, 4 * g, 64 * g);
  void *keep = NULL;
  assert_gpumem_ok(gpumem_arena_alloc(a, 4 * g, 0, 2, &keep));
  write_block(keep, 4 * g, 5);
  growth_fails_at(a, GM_OP_phys_create, 1, 2, 256);
  growth_fails_at(a, GM_OP_map, 1, 2, 256);
  growth_fails_at(a, GM_OP_set_access, 1, 2, 256);
  assert_int_equal(block_mismatches(keep, 4 * g, 5), 0);
  void *p = NULL;
  assert_gpumem_ok(gpumem_arena_alloc(a, 256, 0, 2, &p)); /* and then it grows */
  assert_gpumem_ok(gpumem_arena_destroy(a));
  /* Interleaved: a growth of 8 stripes is 8 creations (one per stripe), 8
   * maps and one set-access; fail each of them, the first growth and the
   * second (with a block to keep). */
  gpumem_arena_config c = GPUMEM_ARENA_CONFIG_INIT;
  c.devices = devs;
  c.device_count = 4;
  c.placement = GPUMEM_PLACE_INTERLEAVE;
  c.chunk_size = 8 * g;
  c.max_size = 64 * g;
  assert_gpumem_ok(gpumem_arena_create(&c, &a));
  void *kept[2] = {NULL, NULL};
  for (int round = 0; round < 2; round++) {
    for (uint64_t nth = 1; nth <= 8; nth++) {
      growth_fails_at(a, GM_OP_phys_create, nth, GPUMEM_ARENA_ANY_DEVICE, 8 * g);
      growth_fails_at(a, GM_OP_map, nth, GPUMEM_ARENA_ANY_DEVICE, 8 * g);
    }
    growth_fails_at(a, GM_OP_set_access, 1, GPUMEM_ARENA_ANY_DEVICE, 8 * g);
    assert_gpumem_ok(gpumem_arena_alloc(a, 8 * g, 0, GPUMEM_ARENA_ANY_DEVICE, &kept[round]));
    write_block(kept[round], 8 * g, 6 + (unsigned)round);
    assert_int_equal(stats_of(a).base.bytes_reserved, (size_t)(round + 1) * 8 * g);
    assert_int_equal(gm_test_counters().phys_handles, (round + 1) * 8);
  }
  for (int round = 0; round < 2; round++)
    assert_int_equal(block_mismatches(kept[round], 8 * g, 6 + (unsigned)round), 0);
  assert_checked(a);
  assert_gpumem_ok(gpumem_arena_destroy(a));
  assert_true(same_counters(gm_test_counters(), (gm_backend_counters){0}));
  /* At creation: the initial mapping fails at each step, nothing is left
   * behind. */
  c.initial_size = 8 * g;
  const gm_op ops[3] = {GM_OP_phys_create, GM_OP_map, GM_OP_set_access};
  for (int o = 0; o < 3; o++) {
    for (uint64_t nth = 1; nth <= (ops[o] == GM_OP_set_access ? 1u : 8u); nth++) {
      gm_fault_inject(ops[o], nth, GPUMEM_ERR_INJECTED);
      a = NULL;
      assert_gpumem_status(gpumem_arena_create(&c, &a), GPUMEM_ERR_INJECTED);
      gm_fault_clear();
      assert_null(a);
      assert_true(same_counters(gm_test_counters(), (gm_backend_counters){0}));
    }
  }
}

static void test_device_out_of_memory(void **state) {
  (void)state;
  if (!gm_test_on_host()) skip(); /* the emulated devices have 256 MiB */
  int devs[2] = {0, 1};
  gpumem_arena_t *a = make(devs, 2, GPUMEM_PLACE_LOCAL, 64 * MiB, 1024 * MiB);
  void *p = NULL;
  for (int i = 0; i < 4; i++)
    assert_gpumem_ok(gpumem_arena_alloc(a, 64 * MiB, 0, 1, &p));
  gm_backend_counters before = gm_test_counters();
  assert_gpumem_status(gpumem_arena_alloc(a, 64 * MiB, 0, 1, &p), GPUMEM_ERR_OUT_OF_MEMORY);
  assert_last_error_contains("on device 1");
  assert_last_error_contains("out of memory");
  assert_last_error_contains("device 1: 268435456 mapped, 268435456 in use");
  assert_true(same_counters(before, gm_test_counters()));
  assert_gpumem_ok(gpumem_arena_alloc(a, 64 * MiB, 0, 0, &p)); /* device 0 still has room */
  assert_checked(a);
  assert_gpumem_ok(gpumem_arena_destroy(a));
}

/* ---- memory in other shards ---- */

typedef struct borrow_arg {
  gpumem_arena_t *arena;
  size_t size;
  bool free_it;
  void *p;
  gpumem_status st;
} borrow_arg;

static void *alloc_on_thread(void *arg) {
  borrow_arg *b = arg;
  b->st = gpumem_arena_alloc(b->arena, b->size, 0, 0, &b->p);
  if (b->st == GPUMEM_OK && b->free_it) b->st = gpumem_arena_free(b->arena, b->p);
  return NULL;
}

/* Allocate (and free) on a new thread: threads made one after the other
 * get consecutive slots, so shards of their own. */
static void *on_new_thread(gpumem_arena_t *a, size_t size, bool free_it) {
  borrow_arg arg = {a, size, free_it, NULL, GPUMEM_OK};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, alloc_on_thread, &arg), 0);
  pthread_join(t, NULL);
  assert_gpumem_ok(arg.st);
  return arg.p;
}

/* An arena on device 0 alone with this chunk size and shard count. */
static gpumem_arena_t *device0_arena(size_t chunk, unsigned shards) {
  int dev = 0;
  gpumem_arena_config c = GPUMEM_ARENA_CONFIG_INIT;
  c.devices = &dev;
  c.device_count = 1;
  c.chunk_size = chunk;
  c.shards = shards;
  gpumem_arena_t *a = NULL;
  assert_gpumem_ok(gpumem_arena_create(&c, &a));
  return a;
}

/* A shard without a fitting block takes one from a neighbour before it maps
 * more memory: a free block in another thread's shard is used, not
 * stranded. */
static void test_shard_borrows_before_growing(void **state) {
  (void)state;
  size_t g = granularity(0);
  gpumem_arena_t *a = device0_arena(4 * g, 4);
  /* One thread's shard maps a chunk and leaves it free. */
  on_new_thread(a, 2 * g, true);
  assert_int_equal(stats_of(a).base.bytes_reserved, 4 * g);
  /* The next thread's shard is empty: it takes 3g of that chunk. */
  int64_t mapped = gm_test_counters().mapped_bytes;
  uint64_t maps = gm_backend_calls(GM_OP_map);
  void *big = on_new_thread(a, 3 * g, false);
  assert_int_equal(gm_backend_calls(GM_OP_map), maps);
  assert_int_equal(gm_test_counters().mapped_bytes, mapped);
  assert_int_equal(stats_of(a).base.bytes_reserved, 4 * g);
  write_block(big, 3 * g, 9);
  assert_int_equal(block_mismatches(big, 3 * g, 9), 0);
  assert_checked(a);
  assert_gpumem_ok(gpumem_arena_free(a, big));
  assert_checked(a);
  assert_gpumem_ok(gpumem_arena_destroy(a));
}

/* One emulated device of 8 MiB in granules of 2 MiB. */
static int setup_small(void **state) {
  gpumem_init_options o = GPUMEM_INIT_OPTIONS_INIT;
  o.host_devices = 1;
  o.host_capacity = 8 * MiB;
  o.host_granularity = 2 * MiB;
  return gm_test_setup_host(state, o);
}

/* A one-device arena of four 2 MiB-chunk shards, each grown once by a 2 MiB
 * block allocated on its own thread: the blocks are in `held`. */
static gpumem_arena_t *four_shards_grown_once(void *held[4]) {
  gpumem_arena_t *a = device0_arena(2 * MiB, 4);
  for (int i = 0; i < 4; i++)
    held[i] = on_new_thread(a, 2 * MiB, false);
  return a;
}

/* The device's memory all mapped and all free, but in four shards of 2 MiB
 * each: a 4 MiB block is served by unmapping free pages (2 MiB each) and
 * mapping them where the block goes, with no memory created or released. */
static void test_free_pages_move_where_a_request_needs_them(void **state) {
  (void)state;
  if (!gm_test_on_host()) skip(); /* an 8 MiB device */
  void *held[4];
  gpumem_arena_t *a = four_shards_grown_once(held); /* four shards, one growth each */
  for (int i = 0; i < 4; i++)
    assert_gpumem_ok(gpumem_arena_free(a, held[i]));
  gpumem_arena_stats st = stats_of(a);
  assert_int_equal(st.base.bytes_reserved, 8 * MiB);
  assert_int_equal(st.base.bytes_in_use, 0);
  assert_int_equal(st.pages_created, 4);
  uint64_t unmaps = gm_backend_calls(GM_OP_unmap), releases = gm_backend_calls(GM_OP_phys_release);
  uint64_t creates = gm_backend_calls(GM_OP_phys_create), maps = gm_backend_calls(GM_OP_map);
  uint64_t grants = gm_backend_calls(GM_OP_set_access);
  void *big = on_new_thread(a, 4 * MiB, false);
  /* Two free pages moved: two unmaps, two maps, one access call. */
  assert_int_equal(gm_backend_calls(GM_OP_unmap) - unmaps, 2);
  assert_int_equal(gm_backend_calls(GM_OP_map) - maps, 2);
  assert_int_equal(gm_backend_calls(GM_OP_set_access) - grants, 1);
  assert_int_equal(gm_backend_calls(GM_OP_phys_release) - releases, 0);
  assert_int_equal(gm_backend_calls(GM_OP_phys_create) - creates, 0);
  st = stats_of(a);
  assert_int_equal(st.base.bytes_reserved, 8 * MiB);
  assert_int_equal(st.base.bytes_in_use, 4 * MiB);
  assert_int_equal(st.pages_remapped, 2);
  assert_int_equal(st.bytes_pooled, 0);
  assert_int_equal(gm_test_counters().mapped_bytes, 8 * MiB);
  write_block(big, 4 * MiB, 21);
  assert_int_equal(block_mismatches(big, 4 * MiB, 21), 0);
  assert_checked(a);
  /* Only 4 MiB free: an 8 MiB request fails; the free pages it took stay
   * in the pool (memory of the arena, mapped nowhere), nothing is lost. */
  gm_backend_counters before = gm_test_counters();
  void *p = NULL;
  assert_gpumem_status(gpumem_arena_alloc(a, 8 * MiB, 0, 0, &p), GPUMEM_ERR_OUT_OF_MEMORY);
  assert_last_error_contains("the arena cannot grow");
  assert_last_error_contains("(4194304 pooled)");
  assert_int_equal(gm_test_counters().phys_handles, before.phys_handles);
  assert_int_equal(gm_test_counters().mapped_bytes, 4 * MiB);
  st = stats_of(a);
  assert_int_equal(st.base.bytes_reserved, 8 * MiB);
  assert_int_equal(st.bytes_pooled, 4 * MiB);
  assert_checked(a);
  /* The pooled pages serve 2 MiB blocks without creating memory. */
  void *small[2];
  for (int i = 0; i < 2; i++)
    assert_gpumem_ok(gpumem_arena_alloc(a, 2 * MiB, 0, 0, &small[i]));
  assert_int_equal(gm_test_counters().phys_handles, before.phys_handles);
  assert_int_equal(gm_test_counters().mapped_bytes, 8 * MiB);
  assert_int_equal(stats_of(a).bytes_pooled, 0);
  for (int i = 0; i < 2; i++)
    assert_gpumem_ok(gpumem_arena_free(a, small[i]));
  assert_gpumem_ok(gpumem_arena_free(a, big));
  assert_checked(a);
  assert_gpumem_ok(gpumem_arena_destroy(a));
  assert_int_equal(gm_test_counters().phys_handles, 0);
}

/* A one-shard arena on device 0 that grows `chunk` pages at a time and
 * holds at most `pages` pages: every placement and driver call is
 * predictable. Its remap setting and slack, checked as the stats echo
 * them. */
static gpumem_arena_t *remap_arena(size_t pages, size_t chunk, gpumem_arena_remap remap,
                                   unsigned slack) {
  size_t g = granularity(0);
  int dev = 0;
  gpumem_arena_config c = GPUMEM_ARENA_CONFIG_INIT;
  c.devices = &dev;
  c.device_count = 1;
  c.chunk_size = chunk * g;
  c.max_size = pages * g;
  c.shards = 1;
  c.remap = remap;
  c.slack_percent = slack;
  gpumem_arena_t *a = NULL;
  assert_gpumem_ok(gpumem_arena_create(&c, &a));
  gpumem_arena_stats st = stats_of(a);
  assert_int_equal(st.remap, remap);
  assert_int_equal(st.slack_percent, slack ? slack : 5);
  return a;
}

/* The same with the default setting. */
static gpumem_arena_t *page_arena(size_t pages, size_t chunk) {
  return remap_arena(pages, chunk, GPUMEM_ARENA_REMAP_BALANCED, 0);
}

/* A free block followed by unmapped range (pages moved away from there)
 * grows in place: only the missing page is mapped, right after it, and
 * the new block starts where the freed one did (a growing KV cache). */
static void test_free_block_extends_in_place(void **state) {
  (void)state;
  size_t g = granularity(0);
  gpumem_arena_t *a = page_arena(8, 1);
  void *p[3], *d = NULL, *e = NULL;
  for (int i = 0; i < 3; i++) /* pages 0-1, 2-3, 4-5 */
    assert_gpumem_ok(gpumem_arena_alloc(a, 2 * g, 0, 0, &p[i]));
  write_block(p[2], 2 * g, 3);
  assert_gpumem_ok(gpumem_arena_free(a, p[1]));
  /* 3g: pages 2-3 move to the top (one unmap call for the run of two
   * pages), one page is created (7 of 8 held). */
  uint64_t unmaps = gm_backend_calls(GM_OP_unmap);
  assert_gpumem_ok(gpumem_arena_alloc(a, 3 * g, 0, 0, &d));
  assert_int_equal(gm_backend_calls(GM_OP_unmap) - unmaps, 1);
  assert_ptr_equal(d, (char *)p[2] + 2 * g);
  write_block(d, 3 * g, 4);
  gpumem_arena_stats s = stats_of(a);
  assert_int_equal(s.pages_remapped, 2);
  assert_int_equal(s.base.bytes_reserved, 7 * g);
  /* Free the first block: 2g free, then the unmapped hole. 3g grows it in
   * place by one new page. */
  assert_gpumem_ok(gpumem_arena_free(a, p[0]));
  uint64_t maps = gm_backend_calls(GM_OP_map), creates = gm_backend_calls(GM_OP_phys_create);
  unmaps = gm_backend_calls(GM_OP_unmap);
  assert_gpumem_ok(gpumem_arena_alloc(a, 3 * g, 0, 0, &e));
  assert_ptr_equal(e, p[0]);
  assert_int_equal(gm_backend_calls(GM_OP_map) - maps, 1);
  assert_int_equal(gm_backend_calls(GM_OP_phys_create) - creates, 1);
  assert_int_equal(gm_backend_calls(GM_OP_unmap) - unmaps, 0);
  write_block(e, 3 * g, 5);
  assert_int_equal(block_mismatches(p[2], 2 * g, 3), 0);
  assert_int_equal(block_mismatches(d, 3 * g, 4), 0);
  assert_int_equal(block_mismatches(e, 3 * g, 5), 0);
  assert_int_equal(stats_of(a).base.bytes_reserved, 8 * g);
  assert_checked(a);
  assert_gpumem_ok(gpumem_arena_destroy(a));
}

/* What one remap setting does with a KV cache grown by copying: a block of
 * s pages is replaced by one of s + 1 (allocated first, then the old one
 * freed), 12 times, in a one-shard arena of `max_pages`. Its peak reserved
 * bytes and pages moved are returned; the contents are checked after every
 * step. */
typedef struct remap_run {
  size_t peak_reserved, peak_live;
  uint64_t moved, created, allocs;
} remap_run;

/* What the arena reports at the end of a run, in pages. */
static void remap_result(gpumem_arena_t *a, remap_run *r) {
  size_t g = granularity(0);
  assert_checked(a);
  gpumem_arena_stats st = stats_of(a);
  r->peak_reserved = st.base.peak_bytes_reserved / g;
  r->moved = st.pages_remapped;
  r->created = st.pages_created;
}

static remap_run grow_by_copies(gpumem_arena_remap remap, unsigned slack, size_t max_pages,
                                int steps) {
  size_t g = granularity(0);
  gpumem_arena_t *a = remap_arena(max_pages, 1, remap, slack);
  remap_run r = {0};
  void *old = NULL;
  size_t pages = 1;
  assert_gpumem_ok(gpumem_arena_alloc(a, g, 0, 0, &old));
  write_block(old, g, 1);
  for (int step = 2; step <= steps; step++, pages++) {
    void *grown = NULL;
    assert_gpumem_ok(gpumem_arena_alloc(a, (pages + 1) * g, 0, 0, &grown));
    if (pages + pages + 1 > r.peak_live) r.peak_live = pages + pages + 1;
    assert_int_equal(block_mismatches(old, pages * g, step - 1), 0);
    write_block(grown, (pages + 1) * g, step);
    assert_gpumem_ok(gpumem_arena_free(a, old));
    old = grown;
  }
  assert_int_equal(block_mismatches(old, pages * g, steps), 0);
  remap_result(a, &r);
  assert_gpumem_ok(gpumem_arena_free(a, old));
  assert_gpumem_ok(gpumem_arena_destroy(a));
  return r;
}

/* Random churn: up to 6 live blocks of 1 to 8 pages (less 4 KiB), each
 * step allocating (two in three, when fewer than 6 live) or freeing a
 * random one, 3000 steps, a fixed seed; each block's first and last 4 KiB
 * are written and checked at its free. Almost every growth wants a new
 * window, so moves outrun the pages the arena holds. */
static remap_run random_churn(gpumem_arena_remap remap) {
  size_t g = granularity(0);
  gpumem_arena_t *a = remap_arena(256, 1, remap, 0);
  char *live[6] = {0};
  size_t size[6] = {0}, nlive = 0, bytes = 0, peak = 0;
  unsigned seed[6] = {0};
  remap_run r = {0};
  uint32_t x = 12345;
  for (unsigned step = 0; step < 3000; step++) {
    x = x * 1664525u + 1013904223u;
    if (nlive < 6 && (x >> 8) % 3 != 0) {
      size_t n = (1 + (x >> 16) % 8) * g - 4096;
      void *p = NULL;
      assert_gpumem_ok(gpumem_arena_alloc(a, n, 0, 0, &p));
      live[nlive] = p;
      size[nlive] = n;
      seed[nlive] = step;
      r.allocs++;
      write_block(p, 4096, step);
      write_block(live[nlive] + n - 4096, 4096, step + 1);
      bytes += n;
      nlive++;
      if (bytes > peak) peak = bytes;
    } else if (nlive > 0) {
      size_t k = (x >> 16) % nlive;
      assert_int_equal(block_mismatches(live[k], 4096, seed[k]), 0);
      assert_int_equal(block_mismatches(live[k] + size[k] - 4096, 4096, seed[k] + 1), 0);
      assert_gpumem_ok(gpumem_arena_free(a, live[k]));
      bytes -= size[k];
      nlive--;
      live[k] = live[nlive];
      size[k] = size[nlive];
      seed[k] = seed[nlive];
    }
  }
  r.peak_live = (peak + g - 1) / g;
  remap_result(a, &r);
  for (size_t k = 0; k < nlive; k++)
    assert_gpumem_ok(gpumem_arena_free(a, live[k]));
  assert_gpumem_ok(gpumem_arena_destroy(a));
  return r;
}

/* The remap setting trades memory for driver calls.
 *
 * A KV cache grown by copies (live memory peaks at 12 + 13 = 25 pages):
 * MEMORY holds that and no more; CALLS never moves a page while it may
 * create one, and holds 36 pages; BALANCED is within its budget of moves
 * here and does what MEMORY does. Random churn (6 blocks of 1-8 pages,
 * 3000 steps) needs a new window at nearly every growth: MEMORY stays
 * within 5% of peak live by moving pages again and again, BALANCED stops
 * moving once its budget (the pages it holds plus one per 64 allocations)
 * is spent and holds more, CALLS holds more still. A slack of 100% lets
 * MEMORY create instead of move; a CALLS arena at max_size moves pages
 * rather than fail. */
static void test_remap_trades_memory_for_calls(void **state) {
  (void)state;
  remap_run memory = grow_by_copies(GPUMEM_ARENA_REMAP_MEMORY, 0, 1024, 13);
  remap_run balanced = grow_by_copies(GPUMEM_ARENA_REMAP_BALANCED, 0, 1024, 13);
  remap_run calls = grow_by_copies(GPUMEM_ARENA_REMAP_CALLS, 0, 1024, 13);
  remap_run loose = grow_by_copies(GPUMEM_ARENA_REMAP_MEMORY, 100, 1024, 13);
  remap_run capped = grow_by_copies(GPUMEM_ARENA_REMAP_CALLS, 0, 30, 13);
  print_message("copies, peak reserved / pages moved: memory %zu / %llu, balanced %zu / %llu, "
                "calls %zu / %llu, memory at 100%% slack %zu / %llu, calls at 30 pages %zu / %llu "
                "(peak live %zu)\n",
                memory.peak_reserved, (unsigned long long)memory.moved, balanced.peak_reserved,
                (unsigned long long)balanced.moved, calls.peak_reserved,
                (unsigned long long)calls.moved, loose.peak_reserved,
                (unsigned long long)loose.moved, capped.peak_reserved,
                (unsigned long long)capped.moved, memory.peak_live);
  assert_int_equal(memory.peak_live, 25);
  assert_int_equal(memory.peak_reserved, 25);
  assert_true(memory.moved > 0);
  assert_int_equal(balanced.peak_reserved, 25);
  assert_int_equal(calls.moved, 0);
  assert_int_equal(calls.peak_reserved, 36);
  assert_true(loose.moved < memory.moved);
  assert_in_range(loose.peak_reserved, 26, 50);
  assert_true(capped.moved > 0);
  assert_in_range(capped.peak_reserved, 25, 30);

  remap_run m = random_churn(GPUMEM_ARENA_REMAP_MEMORY);
  remap_run b = random_churn(GPUMEM_ARENA_REMAP_BALANCED);
  remap_run c = random_churn(GPUMEM_ARENA_REMAP_CALLS);
  print_message("churn, peak reserved / pages moved / created: memory %zu / %llu / %llu, "
                "balanced %zu / %llu / %llu, calls %zu / %llu / %llu (peak live %zu, %llu "
                "allocations)\n",
                m.peak_reserved, (unsigned long long)m.moved, (unsigned long long)m.created,
                b.peak_reserved, (unsigned long long)b.moved, (unsigned long long)b.created,
                c.peak_reserved, (unsigned long long)c.moved, (unsigned long long)c.created,
                m.peak_live, (unsigned long long)m.allocs);
  assert_in_range(m.peak_reserved, m.peak_live, m.peak_live + m.peak_live / 20);
  assert_true(b.peak_reserved > m.peak_reserved);
  assert_true(c.peak_reserved > b.peak_reserved);
  assert_true(m.moved > b.moved);
  assert_true(b.moved > 0);
  assert_true(b.moved <= b.created + b.allocs / 64 + 8); /* the budget, and one last window */
  assert_int_equal(c.moved, 0);
  assert_int_equal(c.created, c.peak_reserved); /* never released, never moved */
}

/* A growth stitches its range from free memory and unmapped slots: the
 * window with the fewest pages to map, whatever mix of free blocks and
 * holes it is; the pages it needs are mapped into the holes, one access
 * call covers them (and the free page between them), and the whole window
 * becomes one free block. A failed map on the way leaves everything as it
 * was, and the request tried again lands in the same place. */
static void test_growth_stitches_free_and_unmapped(void **state) {
  (void)state;
  size_t g = granularity(0);
  gpumem_arena_t *a = page_arena(10, 1);
  void *A = NULL, *B = NULL, *C = NULL, *D = NULL, *E = NULL, *F = NULL, *G = NULL;
  assert_gpumem_ok(gpumem_arena_alloc(a, 2 * g, 0, 0, &A)); /* pages 0-1 */
  assert_gpumem_ok(gpumem_arena_alloc(a, 2 * g, 0, 0, &B)); /* 2-3 */
  assert_gpumem_ok(gpumem_arena_alloc(a, g, 0, 0, &C));     /* 4 */
  assert_gpumem_ok(gpumem_arena_alloc(a, g, 0, 0, &D));     /* 5 */
  assert_gpumem_ok(gpumem_arena_alloc(a, g, 0, 0, &E));     /* 6 */
  char *base = A;
  assert_ptr_equal(E, base + 6 * g);
  write_block(E, g, 1);
  assert_gpumem_ok(gpumem_arena_free(a, B));
  assert_gpumem_ok(gpumem_arena_free(a, D));
  /* 3g fits no free block: pages 2-3 (one unmap call) and 5 (another)
   * move to the top; nothing is created. */
  uint64_t unmaps = gm_backend_calls(GM_OP_unmap), creates = gm_backend_calls(GM_OP_phys_create);
  assert_gpumem_ok(gpumem_arena_alloc(a, 3 * g, 0, 0, &F));
  assert_ptr_equal(F, base + 7 * g);
  assert_int_equal(gm_backend_calls(GM_OP_unmap) - unmaps, 2);
  assert_int_equal(gm_backend_calls(GM_OP_phys_create) - creates, 0);
  write_block(F, 3 * g, 2);
  assert_int_equal(stats_of(a).pages_remapped, 3);
  /* Pages: A A - - C - E F F F. Free C: slots 2-5 are hole, free page,
   * hole: a 4g window needing 3 pages, where the top would need 4. */
  assert_gpumem_ok(gpumem_arena_free(a, C));
  for (int attempt = 0; attempt < 2; attempt++) {
    gm_backend_counters before = gm_test_counters();
    uint64_t maps = gm_backend_calls(GM_OP_map), grants = gm_backend_calls(GM_OP_set_access);
    creates = gm_backend_calls(GM_OP_phys_create);
    unmaps = gm_backend_calls(GM_OP_unmap);
    if (attempt == 0) { /* the second map fails: all undone */
      gm_fault_inject(GM_OP_map, 2, GPUMEM_ERR_INJECTED);
      assert_gpumem_status(gpumem_arena_alloc(a, 4 * g, 0, 0, &G), GPUMEM_ERR_INJECTED);
      gm_fault_clear();
      assert_int_equal(gm_test_counters().phys_handles, before.phys_handles);
      assert_int_equal(gm_test_counters().mapped_bytes, before.mapped_bytes);
      gpumem_arena_stats st = stats_of(a);
      assert_int_equal(st.base.bytes_in_use, 6 * g);
      assert_int_equal(st.base.bytes_reserved, 7 * g);
      assert_checked(a);
      continue;
    }
    assert_gpumem_ok(gpumem_arena_alloc(a, 4 * g, 0, 0, &G));
    assert_ptr_equal(G, base + 2 * g);
    assert_int_equal(gm_backend_calls(GM_OP_phys_create) - creates, 3);
    assert_int_equal(gm_backend_calls(GM_OP_map) - maps, 3);
    assert_int_equal(gm_backend_calls(GM_OP_set_access) - grants, 1);
    assert_int_equal(gm_backend_calls(GM_OP_unmap) - unmaps, 0);
  }
  write_block(G, 4 * g, 3); /* every page of it is accessible */
  assert_int_equal(block_mismatches(E, g, 1), 0);
  assert_int_equal(block_mismatches(F, 3 * g, 2), 0);
  assert_int_equal(block_mismatches(G, 4 * g, 3), 0);
  gpumem_arena_stats st = stats_of(a);
  assert_int_equal(st.base.bytes_reserved, 10 * g);
  assert_int_equal(st.base.bytes_in_use, 10 * g);
  assert_checked(a);
  /* Everything freed: one region of ten pages, all free. */
  void *all[] = {A, E, F, G};
  for (int i = 0; i < 4; i++)
    assert_gpumem_ok(gpumem_arena_free(a, all[i]));
  void *whole = NULL;
  assert_gpumem_ok(gpumem_arena_alloc(a, 10 * g, 0, 0, &whole));
  assert_ptr_equal(whole, base);
  assert_gpumem_ok(gpumem_arena_free(a, whole));
  assert_checked(a);
  assert_gpumem_ok(gpumem_arena_destroy(a));
}

/* A growth past the top is widened to a whole chunk only with pages the
 * pool or the device can give: on a full device a 2-page request that two
 * free pages can serve must not ask for a 4-page chunk and fail. */
static void test_full_device_grows_without_chunk_padding(void **state) {
  (void)state;
  size_t g = granularity(0);
  gpumem_arena_t *a = page_arena(8, 4);
  void *p[8], *big = NULL;
  for (int i = 0; i < 8; i++) /* two growths of a 4-page chunk: the device is full */
    assert_gpumem_ok(gpumem_arena_alloc(a, g, 0, 0, &p[i]));
  assert_int_equal(stats_of(a).pages_created, 8);
  char *base = p[0];
  write_block(p[7], g, 7);
  assert_gpumem_ok(gpumem_arena_free(a, p[1])); /* two lone free pages */
  assert_gpumem_ok(gpumem_arena_free(a, p[5]));
  uint64_t unmaps = gm_backend_calls(GM_OP_unmap), creates = gm_backend_calls(GM_OP_phys_create);
  assert_gpumem_ok(gpumem_arena_alloc(a, 2 * g, 0, 0, &big));
  assert_ptr_equal(big, base + 8 * g); /* past the top: two slots, not four */
  assert_int_equal(gm_backend_calls(GM_OP_unmap) - unmaps, 2);
  assert_int_equal(gm_backend_calls(GM_OP_phys_create) - creates, 0);
  write_block(big, 2 * g, 8);
  assert_int_equal(block_mismatches(p[7], g, 7), 0);
  gpumem_arena_stats st = stats_of(a);
  assert_int_equal(st.base.bytes_reserved, 8 * g);
  assert_int_equal(st.bytes_pooled, 0);
  assert_checked(a);
  assert_gpumem_ok(gpumem_arena_destroy(a));
}

/* Trim gives free pages back: what blocks use stays, contents intact;
 * a release that fails leaves the page pooled and a second trim finishes. */
static void test_trim_gives_free_pages_back(void **state) {
  (void)state;
  if (!gm_test_on_host()) skip(); /* an 8 MiB device */
  void *held[4];
  gpumem_arena_t *a = four_shards_grown_once(held);
  write_block(held[1], 2 * MiB, 7);
  assert_gpumem_ok(gpumem_arena_free(a, held[0]));
  assert_gpumem_ok(gpumem_arena_free(a, held[2]));
  assert_gpumem_ok(gpumem_arena_free(a, held[3]));
  uint64_t releases = gm_backend_calls(GM_OP_phys_release);
  gm_fault_inject(GM_OP_phys_release, 2, GPUMEM_ERR_INJECTED);
  size_t released = 0;
  assert_gpumem_status(gpumem_arena_trim(a, &released), GPUMEM_ERR_INJECTED);
  gm_fault_clear();
  assert_int_equal(released, 2 * MiB);
  gpumem_arena_stats st = stats_of(a);
  assert_int_equal(st.base.bytes_reserved, 6 * MiB);
  assert_int_equal(st.bytes_pooled, 4 * MiB);
  assert_checked(a);
  assert_gpumem_ok(gpumem_arena_trim(a, &released));
  assert_int_equal(released, 4 * MiB);
  assert_int_equal(gm_backend_calls(GM_OP_phys_release) - releases, 4); /* one failed */
  st = stats_of(a);
  assert_int_equal(st.base.bytes_reserved, 2 * MiB);
  assert_int_equal(st.base.peak_bytes_reserved, 8 * MiB);
  assert_int_equal(st.pages_released, 3);
  assert_int_equal(gm_test_counters().mapped_bytes, 2 * MiB);
  assert_int_equal(block_mismatches(held[1], 2 * MiB, 7), 0);
  assert_checked(a);
  /* The memory comes back when needed. */
  void *p = NULL;
  assert_gpumem_ok(gpumem_arena_alloc(a, 4 * MiB, 0, 0, &p));
  assert_checked(a);
  assert_gpumem_status(gpumem_arena_trim(NULL, NULL), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_ok(gpumem_arena_destroy(a));
}

/* A move that fails at a driver step (the unmap of a free page, the map at
 * its new place, the access call) leaves the arena consistent with no
 * memory lost: a page that could not be unmapped stays free in its heap,
 * pages already unmapped wait in the pool, and everything stays usable. */
static void test_failed_move_rolls_back(void **state) {
  (void)state;
  if (!gm_test_on_host()) skip(); /* an 8 MiB device */
  gm_op ops[4] = {GM_OP_unmap, GM_OP_unmap, GM_OP_map, GM_OP_set_access};
  uint64_t nth[4] = {1, 2, 1, 1};
  for (int k = 0; k < 4; k++) {
    void *held[4];
    gpumem_arena_t *a = four_shards_grown_once(held);
    write_block(held[3], 2 * MiB, 4);
    for (int i = 0; i < 4; i++)
      assert_gpumem_ok(gpumem_arena_free(a, held[i]));
    gm_backend_counters before = gm_test_counters();
    gm_fault_inject(ops[k], nth[k], GPUMEM_ERR_INJECTED);
    borrow_arg arg = {a, 4 * MiB, false, NULL, GPUMEM_OK};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, alloc_on_thread, &arg), 0);
    pthread_join(t, NULL);
    gm_fault_clear();
    if (arg.st != GPUMEM_ERR_INJECTED)
      fail_msg("%s #%llu: alloc returned %s (%s)", gm_op_name(ops[k]), (unsigned long long)nth[k],
               gpumem_status_name(arg.st), gpumem_last_error());
    assert_null(arg.p);
    gpumem_arena_stats st = stats_of(a);
    assert_int_equal(st.base.bytes_reserved, 8 * MiB);
    assert_int_equal(st.base.bytes_in_use, 0);
    gm_backend_counters after = gm_test_counters();
    assert_int_equal(after.phys_handles, before.phys_handles);
    assert_int_equal(after.mapped_bytes + (int64_t)st.bytes_pooled, 8 * MiB);
    if (k == 0) assert_int_equal(after.mapped_bytes, before.mapped_bytes); /* nothing moved */
    assert_checked(a);
    /* The memory is still usable: pooled pages are mapped again. */
    void *more[4];
    for (int i = 0; i < 4; i++) {
      assert_gpumem_ok(gpumem_arena_alloc(a, 2 * MiB, 0, 0, &more[i]));
      write_block(more[i], 2 * MiB, (unsigned)(10 + i));
    }
    for (int i = 0; i < 4; i++)
      assert_int_equal(block_mismatches(more[i], 2 * MiB, (unsigned)(10 + i)), 0);
    assert_int_equal(gm_test_counters().phys_handles, before.phys_handles);
    assert_int_equal(stats_of(a).bytes_pooled, 0);
    assert_checked(a);
    assert_gpumem_ok(gpumem_arena_destroy(a));
  }
}

/* ---- handle types and initial memory ---- */

static void test_handle_types_and_initial_size(void **state) {
  (void)state;
  if (!gm_test_on_host()) skip(); /* four emulated devices; fabric refused as configured */
  int devs[2] = {1, 3};
  size_t g = granularity(0);
  gpumem_arena_config c = GPUMEM_ARENA_CONFIG_INIT;
  c.devices = devs;
  c.device_count = 2;
  c.chunk_size = 2 * g;
  c.initial_size = 3 * g; /* rounded up to two chunks on each member */
  c.handle_type = GPUMEM_HANDLE_FABRIC;
  gm_test_log log = {0};
  gpumem_log_level level = gpumem_log_get_level();
  assert_gpumem_ok(gpumem_log_set_level(GPUMEM_LOG_INFO));
  assert_gpumem_ok(gpumem_log_set_callback(gm_test_log_capture, &log));
  gpumem_arena_t *a = NULL;
  gpumem_status st = gpumem_arena_create(&c, &a);
  assert_gpumem_ok(gpumem_log_set_callback(NULL, NULL));
  assert_gpumem_ok(gpumem_log_set_level(level));
  assert_gpumem_ok(st);
  /* The first creation (device 1) was refused fabric and fell back; the
   * second (device 3) used POSIX_FD at once, or the last line would name it. */
  assert_true(log.count >= 1);
  assert_non_null(strstr(log.line, "arena on device 1: fabric handles refused"));
  gpumem_arena_stats s = stats_of(a);
  assert_int_equal(s.devices[0].bytes_mapped, 4 * g);
  assert_int_equal(s.devices[1].bytes_mapped, 4 * g);
  assert_int_equal(s.growths, 2);
  assert_int_equal(gm_test_counters().phys_handles, 8); /* a page per granule */
  /* The memory is there already: a thread on the first shard allocates
   * without growing (the test's thread may have another slot; then its
   * shard grows, which is what the header says). */
  void *p = NULL;
  assert_gpumem_ok(gpumem_arena_alloc(a, g, 0, 3, &p));
  int owner = -1;
  assert_gpumem_ok(gpumem_arena_owner(a, p, &owner));
  assert_int_equal(owner, 3);
  assert_checked(a);
  assert_gpumem_ok(gpumem_arena_destroy(a));
  /* POSIX_FD: no fallback. */
  c.handle_type = GPUMEM_HANDLE_POSIX_FD;
  c.initial_size = 0;
  log = (gm_test_log){0};
  assert_gpumem_ok(gpumem_log_set_level(GPUMEM_LOG_INFO));
  assert_gpumem_ok(gpumem_log_set_callback(gm_test_log_capture, &log));
  st = gpumem_arena_create(&c, &a);
  if (st == GPUMEM_OK) st = gpumem_arena_alloc(a, 4096, 0, 1, &p);
  assert_gpumem_ok(gpumem_log_set_callback(NULL, NULL));
  assert_gpumem_ok(gpumem_log_set_level(level));
  assert_gpumem_ok(st);
  assert_null(strstr(log.line, "fabric"));
  assert_gpumem_ok(gpumem_arena_destroy(a));
}

/* Four emulated devices that do not advertise fabric handles (like PCIe GPUs
 * or MIG slices): an arena asked for FABRIC works with POSIX fds and never
 * asks the backend for fabric. */
static int setup_four_without_fabric(void **state) {
  setenv("GPUMEM_HOST_FABRIC", "off", 1);
  int rc = setup_four(state);
  unsetenv("GPUMEM_HOST_FABRIC");
  return rc;
}

static void test_fabric_not_asked_where_not_advertised(void **state) {
  (void)state;
  if (!gm_test_on_host()) skip(); /* GPUMEM_HOST_FABRIC=off */
  int devs[2] = {1, 3};
  size_t g = granularity(0);
  gpumem_arena_config c = GPUMEM_ARENA_CONFIG_INIT;
  c.devices = devs;
  c.device_count = 2;
  c.chunk_size = 2 * g;
  c.initial_size = 2 * g; /* one chunk on each member */
  c.handle_type = GPUMEM_HANDLE_FABRIC;
  gm_test_log log = {0};
  gpumem_log_level level = gpumem_log_get_level();
  assert_gpumem_ok(gpumem_log_set_level(GPUMEM_LOG_INFO));
  assert_gpumem_ok(gpumem_log_set_callback(gm_test_log_capture, &log));
  uint64_t creates = gm_backend_calls(GM_OP_phys_create);
  gpumem_arena_t *a = NULL;
  gpumem_status st = gpumem_arena_create(&c, &a);
  assert_gpumem_ok(gpumem_log_set_callback(NULL, NULL));
  assert_gpumem_ok(gpumem_log_set_level(level));
  assert_gpumem_ok(st);
  /* One creation per page (two granules on each member), none with fabric. */
  assert_int_equal(gm_backend_calls(GM_OP_phys_create) - creates, 4);
  /* The last line (an earlier one may say NVML is missing): device 1 fell
   * back, and device 3 used POSIX_FD at once. */
  assert_string_equal(log.line, "gpumem: info: arena on device 1: the device does not support "
                                "fabric handles; using POSIX file descriptors");
  assert_int_equal(stats_of(a).growths, 2);
  assert_int_equal(gm_test_counters().phys_handles, 4);
  void *p = NULL;
  assert_gpumem_ok(gpumem_arena_alloc(a, g, 0, 3, &p));
  assert_checked(a);
  assert_gpumem_ok(gpumem_arena_free(a, p));
  assert_gpumem_ok(gpumem_arena_destroy(a));
}

/* ---- peers ---- */

static void test_peer_refusal(void **state) {
  (void)state;
  if (!gm_test_on_host()) skip(); /* emulated links */
  assert_gpumem_ok(gpumem_finalize());
  gpumem_init_options o = GPUMEM_INIT_OPTIONS_INIT;
  o.backend = GPUMEM_BACKEND_HOST;
  o.host_devices = 4;
  o.host_granularity = 64 * KiB;
  o.host_peers = "0-1,1-2,2-3";
  assert_gpumem_ok(gpumem_init(&o));
  int devs[3] = {0, 1, 2};
  gpumem_arena_config c = GPUMEM_ARENA_CONFIG_INIT;
  c.devices = devs;
  c.device_count = 3;
  gpumem_arena_t *a = NULL;
  assert_gpumem_status(gpumem_arena_create(&c, &a), GPUMEM_ERR_PEER_UNSUPPORTED);
  assert_last_error_contains("devices 0 and 2 cannot share an arena");
  assert_last_error_contains("no peer-to-peer path");
  assert_null(a);
  c.device_count = 2; /* 0 and 1 are linked */
  assert_gpumem_ok(gpumem_arena_create(&c, &a));
  assert_gpumem_ok(gpumem_arena_destroy(a));

  /* A MIG slice cannot map a peer, whatever the links say. */
  assert_gpumem_ok(gpumem_finalize());
  char uuids[1024];
  fake_nvml_use(&fake_mixed, NULL);
  o.host_devices = fake_cuda_count(&fake_mixed);
  o.host_uuids = fake_cuda_uuids(&fake_mixed, uuids, sizeof uuids);
  o.host_peers = "all";
  assert_gpumem_ok(gpumem_init(&o));
  int mixed[2] = {3, 0};
  c.devices = mixed;
  c.device_count = 2;
  assert_gpumem_status(gpumem_arena_create(&c, &a), GPUMEM_ERR_PEER_UNSUPPORTED);
  assert_last_error_contains("devices 3 and 0 cannot share an arena");
  assert_last_error_contains("is a MIG slice");
  c.device_count = 1; /* a slice alone is a fine arena */
  c.devices = &mixed[1];
  assert_gpumem_ok(gpumem_arena_create(&c, &a));
  void *p = NULL;
  assert_gpumem_ok(gpumem_arena_alloc(a, 4096, 0, 0, &p));
  assert_gpumem_ok(gpumem_arena_destroy(a));
  assert_true(same_counters(gm_test_counters(), (gm_backend_counters){0}));
}

/* ---- the model-based test ---- */

typedef struct model_block {
  uintptr_t p;
  size_t size, rounded;
  int device;
  unsigned seed;
} model_block;

static uint64_t rng_next(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

static void assert_no_overlap(const model_block *live, size_t n, size_t k) {
  for (size_t i = 0; i < n; i++) {
    if (i == k) continue;
    bool apart =
        live[i].p + live[i].rounded <= live[k].p || live[k].p + live[k].rounded <= live[i].p;
    if (!apart)
      fail_msg("block %#lx (+%zu) overlaps %#lx (+%zu)", (unsigned long)live[k].p, live[k].rounded,
               (unsigned long)live[i].p, live[i].rounded);
  }
}

/* `tight`: physical memory capped near what is live (max_size 48 granules
 * per member, live bytes kept under 24), so that growths move free pages;
 * an OUT_OF_MEMORY (fragmentation) must change nothing. `remap` MEMORY,
 * with 1% of slack and half the blocks up to 3 granules (a tenth
 * otherwise), moves pages without a cap. Where pages move, every block is written
 * whole and read back whole when freed. */
static void run_model(gpumem_placement place, size_t steps, bool tight, gpumem_arena_remap remap) {
  bool moves = tight || remap == GPUMEM_ARENA_REMAP_MEMORY;
  int devs[4];
  size_t n = members(devs);
  size_t g = granularity(0);
  gpumem_arena_config c = GPUMEM_ARENA_CONFIG_INIT;
  c.devices = devs;
  c.device_count = n;
  c.placement = place;
  c.chunk_size = place == GPUMEM_PLACE_LOCAL ? 2 * g : 2 * g * n;
  c.max_size = (tight ? 48 : 512) * g * n;
  c.shards = 2;
  c.remap = remap;
  c.slack_percent = remap == GPUMEM_ARENA_REMAP_MEMORY ? 1 : 0; /* moves at nearly every growth */
  gpumem_arena_t *a = NULL;
  assert_gpumem_ok(gpumem_arena_create(&c, &a));
  model_block *live = calloc(steps, sizeof *live);
  size_t nlive = 0, in_use = 0, ooms = 0;
  uint64_t rng = 0x9e3779b97f4a7c15ULL;
  static const size_t aligns[5] = {0, 256, 512, 4096, 0};
  for (size_t step = 0; step < steps; step++) {
    uint64_t r = rng_next(&rng);
    bool do_alloc = nlive == 0 || (r % 100) < 55;
    if (moves && in_use > 24 * g * n) do_alloc = false;
    if (do_alloc) {
      size_t small = remap == GPUMEM_ARENA_REMAP_MEMORY ? 50 : 90; /* percent under 8 KiB */
      size_t size = (r >> 8) % 100 < small ? 1 + (r >> 16) % 8192 : 1 + (r >> 16) % (3 * g);
      size_t align = aligns[(r >> 40) % 4];
      if ((r >> 44) % 50 == 0) align = g;
      int device = devs[(r >> 48) % n];
      void *p = NULL;
      gpumem_status st = gpumem_arena_alloc(a, size, align, device, &p);
      if (tight && st == GPUMEM_ERR_OUT_OF_MEMORY) {
        ooms++;
        continue; /* the stats and check below still run at the next step */
      }
      if (st != GPUMEM_OK) fail_msg("step %zu: alloc(%zu): %s", step, size, gpumem_last_error());
      model_block *b = &live[nlive++];
      *b = (model_block){(uintptr_t)p, size, (size + 255) / 256 * 256, device, (unsigned)step};
      if (b->p % (align ? align : 256) != 0)
        fail_msg("step %zu: %#lx is not aligned to %zu", step, (unsigned long)b->p, align);
      if (place == GPUMEM_PLACE_LOCAL) {
        int owner = -1;
        assert_gpumem_ok(gpumem_arena_owner(a, p, &owner));
        assert_int_equal(owner, device);
      }
      assert_no_overlap(live, nlive, nlive - 1);
      in_use += b->rounded;
      if (moves) b->seed = (unsigned)step * 64;
      if (b->seed % 64 == 0) write_block(p, moves || size < 4096 ? size : 4096, b->seed);
    } else {
      size_t k = (size_t)(r >> 8) % nlive;
      model_block b = live[k];
      if (b.seed % 64 == 0) {
        size_t len = moves || b.size < 4096 ? b.size : 4096;
        if (block_mismatches((void *)b.p, len, b.seed) != 0)
          fail_msg("step %zu: block %#lx (%zu bytes) changed", step, (unsigned long)b.p, b.size);
      }
      assert_gpumem_ok(gpumem_arena_free(a, (void *)b.p));
      if ((r >> 20) % 16 == 0) { /* a double free changes nothing */
        gpumem_status st = gpumem_arena_free(a, (void *)b.p);
        if (st != GPUMEM_ERR_DOUBLE_FREE && st != GPUMEM_ERR_INVALID_POINTER)
          fail_msg("step %zu: double free returned %s", step, gpumem_status_name(st));
      }
      live[k] = live[--nlive];
      in_use -= b.rounded;
    }
    gpumem_arena_stats s = stats_of(a);
    if (s.base.bytes_in_use != in_use || s.blocks_in_use != nlive)
      fail_msg("step %zu: arena has %zu bytes in %zu blocks, the model %zu in %zu", step,
               s.base.bytes_in_use, s.blocks_in_use, in_use, nlive);
    char why[256];
    if (gpumem_arena_check(a, why, sizeof why) != GPUMEM_OK) fail_msg("step %zu: %s", step, why);
  }
  while (nlive > 0)
    assert_gpumem_ok(gpumem_arena_free(a, (void *)live[--nlive].p));
  gpumem_arena_stats s = stats_of(a);
  assert_int_equal(s.base.bytes_in_use, 0);
  assert_int_equal(s.base.allocs, s.base.frees);
  if (moves) { /* pages did move, and the cap held */
    if (s.pages_remapped == 0) fail_msg("no page moved (%zu out of memory)", ooms);
    assert_true(s.base.peak_bytes_reserved <= c.max_size);
    print_message("  %zu steps: %llu pages moved, %llu created, %zu out of memory\n", steps,
                  (unsigned long long)s.pages_remapped, (unsigned long long)s.pages_created, ooms);
  }
  assert_checked(a);
  free(live);
  assert_gpumem_ok(gpumem_arena_destroy(a));
}

static void test_model_local(void **state) {
  (void)state;
  run_model(GPUMEM_PLACE_LOCAL, 20000, false, GPUMEM_ARENA_REMAP_BALANCED);
}

static void test_model_local_moves(void **state) {
  (void)state;
  run_model(GPUMEM_PLACE_LOCAL, 4000, true, GPUMEM_ARENA_REMAP_BALANCED);
}

static void test_model_interleave_moves(void **state) {
  (void)state;
  run_model(GPUMEM_PLACE_INTERLEAVE, 3000, true, GPUMEM_ARENA_REMAP_BALANCED);
}

/* Memory first: pages move with no cap to force them, at every growth
 * that would pass the slack. */
static void test_model_local_memory_first(void **state) {
  (void)state;
  run_model(GPUMEM_PLACE_LOCAL, 4000, false, GPUMEM_ARENA_REMAP_MEMORY);
}

static void test_model_interleave_memory_first(void **state) {
  (void)state;
  run_model(GPUMEM_PLACE_INTERLEAVE, 3000, false, GPUMEM_ARENA_REMAP_MEMORY);
}

static void test_model_interleave(void **state) {
  (void)state;
  run_model(GPUMEM_PLACE_INTERLEAVE, 8000, false, GPUMEM_ARENA_REMAP_BALANCED);
}

/* ---- threads ---- */

#define THREADS    8
#define PER_THREAD 2000

typedef struct exchange {
  gpumem_arena_t *arena;
  int devices[4];
  size_t ndev;
  _Atomic(void *) mailbox[THREADS];
  atomic_int failures;
} exchange;

typedef struct worker {
  exchange *x;
  int id;
} worker;

static void *work(void *arg) {
  worker *w = arg;
  exchange *x = w->x;
  uint64_t rng = 77 + (uint64_t)w->id;
  void *mine[16] = {0};
  for (int i = 0; i < PER_THREAD; i++) {
    uint64_t r = rng_next(&rng);
    int slot = (int)(r % 16);
    if (mine[slot] != NULL) {
      /* Half the time, hand the block to a neighbour to free. */
      void *give = (r >> 8) % 2 ? atomic_exchange(&x->mailbox[(w->id + 1) % THREADS], mine[slot])
                                : mine[slot];
      if (give != NULL && gpumem_arena_free(x->arena, give) != GPUMEM_OK) x->failures++;
      mine[slot] = NULL;
    } else {
      int dev = x->devices[(r >> 16) % x->ndev];
      if (gpumem_arena_alloc(x->arena, 256 + (r >> 24) % 20000, 0, dev, &mine[slot]) != GPUMEM_OK)
        x->failures++;
    }
  }
  for (int s = 0; s < 16; s++)
    if (mine[s] != NULL && gpumem_arena_free(x->arena, mine[s]) != GPUMEM_OK) x->failures++;
  return NULL;
}

static void test_threads(void **state) {
  (void)state;
  exchange x = {0};
  x.ndev = members(x.devices);
  size_t g = granularity(0);
  gpumem_arena_config c = GPUMEM_ARENA_CONFIG_INIT;
  c.devices = x.devices;
  c.device_count = x.ndev;
  c.chunk_size = 4 * g;
  c.shards = 4;
  assert_gpumem_ok(gpumem_arena_create(&c, &x.arena));
  pthread_t t[THREADS];
  worker w[THREADS];
  for (int i = 0; i < THREADS; i++) {
    w[i] = (worker){&x, i};
    assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
  }
  for (int i = 0; i < THREADS; i++)
    pthread_join(t[i], NULL);
  assert_int_equal(x.failures, 0);
  for (int i = 0; i < THREADS; i++) {
    void *p = atomic_load(&x.mailbox[i]);
    if (p != NULL) assert_gpumem_ok(gpumem_arena_free(x.arena, p));
  }
  gpumem_arena_stats s = stats_of(x.arena);
  assert_int_equal(s.base.bytes_in_use, 0);
  assert_int_equal(s.blocks_in_use, 0);
  assert_int_equal(s.base.allocs, s.base.frees);
  assert_int_equal(s.shards, 4);
  assert_checked(x.arena);
  assert_gpumem_ok(gpumem_arena_destroy(x.arena));
}

/* The slow path under contention: threads on one device fill a small
 * arena (one granule per chunk, 8 granules in all), so allocations grow
 * it, run out of room, and give free growths at the top back, while
 * another thread checks the arena and reads its statistics over and over.
 * The growth mutex comes before any shard lock everywhere (the lock
 * order): this must neither deadlock nor see a broken invariant (TSan
 * runs it too). Only OUT_OF_MEMORY may fail an allocation. */
typedef struct contention {
  gpumem_arena_t *arena;
  size_t g;
  pthread_barrier_t start; /* every thread begins at once */
  atomic_int ids, done, other_failures, oom, check_failures, checks;
} contention;

static void *grow_worker(void *arg) {
  contention *c = arg;
  uint64_t rng = 1234 + (uint64_t)atomic_fetch_add(&c->ids, 1) * 7919;
  pthread_barrier_wait(&c->start);
  void *held[4] = {0};
  for (int i = 0; i < 3000; i++) {
    uint64_t r = rng_next(&rng);
    int k = (int)(r % 4);
    if (held[k] != NULL) {
      if (gpumem_arena_free(c->arena, held[k]) != GPUMEM_OK) c->other_failures++;
      held[k] = NULL;
      continue;
    }
    size_t size = 256 + (size_t)((r >> 8) % (4 * c->g));
    gpumem_status st = gpumem_arena_alloc(c->arena, size, 0, 0, &held[k]);
    if (st == GPUMEM_ERR_OUT_OF_MEMORY)
      c->oom++;
    else if (st != GPUMEM_OK)
      c->other_failures++;
  }
  for (int k = 0; k < 4; k++)
    if (held[k] != NULL && gpumem_arena_free(c->arena, held[k]) != GPUMEM_OK) c->other_failures++;
  c->done++;
  return NULL;
}

static void *check_worker(void *arg) {
  contention *c = arg;
  pthread_barrier_wait(&c->start);
  do {
    char why[256];
    if (gpumem_arena_check(c->arena, why, sizeof why) != GPUMEM_OK) c->check_failures++;
    gpumem_arena_stats s = GPUMEM_ARENA_STATS_INIT;
    if (gpumem_arena_get_stats(c->arena, &s) != GPUMEM_OK) c->check_failures++;
    c->checks++;
  } while (atomic_load(&c->done) < 4);
  return NULL;
}

static void test_threads_slow_path(void **state) {
  (void)state;
  if (!gm_test_on_host()) skip(); /* sized in granules of the emulated device */
  contention c = {0};
  c.g = granularity(0);
  gpumem_arena_config cfg = GPUMEM_ARENA_CONFIG_INIT;
  cfg.chunk_size = c.g;
  cfg.max_size = 8 * c.g;
  cfg.shards = 4;
  assert_gpumem_ok(gpumem_arena_create(&cfg, &c.arena));
  uint64_t unmaps = gm_backend_calls(GM_OP_unmap);
  assert_int_equal(pthread_barrier_init(&c.start, NULL, 5), 0);
  pthread_t t[5];
  for (int i = 0; i < 4; i++)
    assert_int_equal(pthread_create(&t[i], NULL, grow_worker, &c), 0);
  assert_int_equal(pthread_create(&t[4], NULL, check_worker, &c), 0);
  for (int i = 0; i < 5; i++)
    pthread_join(t[i], NULL);
  pthread_barrier_destroy(&c.start);
  print_message("%d out-of-memory answers, %d checks, %" PRIu64 " unmaps (pages moved)\n",
                atomic_load(&c.oom), atomic_load(&c.checks),
                gm_backend_calls(GM_OP_unmap) - unmaps);
  assert_int_equal(c.other_failures, 0);
  assert_int_equal(c.check_failures, 0);
  assert_true(c.checks > 0);
  assert_true(c.oom > 0); /* the arena was full at times (moves depend on timing) */
  gpumem_arena_stats s = stats_of(c.arena);
  assert_int_equal(s.base.bytes_in_use, 0);
  assert_true(s.growths > 0);
  assert_checked(c.arena);
  assert_gpumem_ok(gpumem_arena_destroy(c.arena));
}

/* ---- through the allocator interface ---- */

static void test_allocator_interface(void **state) {
  (void)state;
  gpumem_allocator al = GPUMEM_ALLOCATOR_INIT;
  assert_gpumem_ok(gpumem_allocator_create("gpumem-arena", 0, &al));
  void *p = NULL;
  assert_gpumem_ok(al.alloc(al.ctx, 5000, NULL, &p));
  write_block(p, 5000, 3);
  assert_int_equal(block_mismatches(p, 5000, 3), 0);
  gpumem_stats s = GPUMEM_STATS_INIT;
  assert_gpumem_ok(al.stats(al.ctx, &s));
  assert_int_equal(s.bytes_in_use, 5000);
  assert_true(s.bytes_reserved >= 5120);
  assert_gpumem_ok(al.free(al.ctx, p, 5000, NULL));
  assert_gpumem_status(al.free(al.ctx, p, 5000, NULL), GPUMEM_ERR_DOUBLE_FREE);
  assert_gpumem_ok(gpumem_allocator_destroy(&al));
}

/* Issue 15: a failed access query in check is the query's error, not a
 * broken invariant ("device 0 lacks read-write access", before). */
static void test_check_reports_a_failed_query(void **state) {
  (void)state;
  int devs[4] = {0, 1, 2, 3};
  size_t g = granularity(0);
  gpumem_arena_t *a = make(devs, 4, GPUMEM_PLACE_INTERLEAVE, 4 * g, 64 * g);
  void *p = NULL;
  assert_gpumem_ok(gpumem_arena_alloc(a, g, 0, GPUMEM_ARENA_ANY_DEVICE, &p));
  gm_fault_inject(GM_OP_get_access, 1, GPUMEM_ERR_INJECTED);
  char why[256];
  assert_gpumem_status(gpumem_arena_check(a, why, sizeof why), GPUMEM_ERR_INJECTED);
  assert_last_error_contains("could not finish");
  assert_checked(a);
  assert_gpumem_ok(gpumem_arena_free(a, p));
  assert_gpumem_ok(gpumem_arena_destroy(a));
}

/* Issue 15: a failed unmap, release or range free in destroy leaves the
 * rest recorded and a second destroy finishes (before, the arena was freed
 * on the first call and its mappings leaked); the half-destroyed arena
 * refuses other calls. */
static void test_failed_destroy_can_be_retried(void **state) {
  (void)state;
  int devs[4] = {0, 1, 2, 3};
  size_t g = granularity(0);
  gm_backend_counters before, now;
  gm_backend_get_counters(&before);
  gpumem_arena_t *a = make(devs, 4, GPUMEM_PLACE_INTERLEAVE, 4 * g, 64 * g);
  void *p = NULL;
  assert_gpumem_ok(gpumem_arena_alloc(a, 6 * g, 0, GPUMEM_ARENA_ANY_DEVICE, &p));
  assert_gpumem_ok(gpumem_arena_free(a, p));
  const gm_op ops[] = {GM_OP_unmap, GM_OP_phys_release, GM_OP_va_free};
  const uint64_t nth[] = {2, 2, 1};
  for (size_t i = 0; i < GM_ARRAY_SIZE(ops); i++) {
    gm_fault_inject(ops[i], nth[i], GPUMEM_ERR_INJECTED);
    assert_gpumem_status(gpumem_arena_destroy(a), GPUMEM_ERR_INJECTED);
    assert_last_error_contains("call gpumem_arena_destroy again");
    gm_fault_clear();
    assert_gpumem_status(gpumem_arena_alloc(a, g, 0, GPUMEM_ARENA_ANY_DEVICE, &p),
                         GPUMEM_ERR_INVALID_ARGUMENT);
    assert_last_error_contains("half destroyed");
  }
  assert_gpumem_ok(gpumem_arena_destroy(a));
  gm_backend_get_counters(&now);
  assert_int_equal(now.phys_handles, before.phys_handles);
  assert_int_equal(now.mapped_bytes, before.mapped_bytes);
  assert_int_equal(now.reservations, before.reservations);
}

int main(int argc, char **argv) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test(test_heap_remove_region_end),
      cmocka_unit_test_setup_teardown(test_create_bad_input, setup_four, teardown_four),
      cmocka_unit_test_setup_teardown(test_default_max_size_sum_does_not_wrap, setup_four_huge,
                                      teardown_four),
      cmocka_unit_test_setup_teardown(test_public_vmm_calls_refuse_its_reservation, setup_four,
                                      teardown_four),
      cmocka_unit_test_setup_teardown(test_alloc_free_bad_input, setup_four, teardown_four),
      cmocka_unit_test_setup_teardown(test_local_placement, setup_four, teardown_four),
      cmocka_unit_test_setup_teardown(test_interleave, setup_four, teardown_four),
      cmocka_unit_test_setup_teardown(test_growth_keeps_blocks, setup_four, teardown_four),
      cmocka_unit_test_setup_teardown(test_growth_rolls_back, setup_four, teardown_four),
      cmocka_unit_test_setup_teardown(test_device_out_of_memory, setup_four, teardown_four),
      cmocka_unit_test_setup_teardown(test_shard_borrows_before_growing, setup_four, teardown_four),
      cmocka_unit_test_setup_teardown(test_free_pages_move_where_a_request_needs_them, setup_small,
                                      teardown_four),
      cmocka_unit_test_setup_teardown(test_trim_gives_free_pages_back, setup_small, teardown_four),
      cmocka_unit_test_setup_teardown(test_free_block_extends_in_place, setup_four, teardown_four),
      cmocka_unit_test_setup_teardown(test_remap_trades_memory_for_calls, setup_four,
                                      teardown_four),
      cmocka_unit_test_setup_teardown(test_growth_stitches_free_and_unmapped, setup_four,
                                      teardown_four),
      cmocka_unit_test_setup_teardown(test_full_device_grows_without_chunk_padding, setup_four,
                                      teardown_four),
      cmocka_unit_test_setup_teardown(test_failed_move_rolls_back, setup_small, teardown_four),
      cmocka_unit_test_setup_teardown(test_handle_types_and_initial_size, setup_four,
                                      teardown_four),
      cmocka_unit_test_setup_teardown(test_fabric_not_asked_where_not_advertised,
                                      setup_four_without_fabric, teardown_four),
      cmocka_unit_test_setup_teardown(test_peer_refusal, setup_four, teardown_four),
      cmocka_unit_test_setup_teardown(test_model_local, setup_four, teardown_four),
      cmocka_unit_test_setup_teardown(test_model_interleave, setup_four, teardown_four),
      cmocka_unit_test_setup_teardown(test_model_local_moves, setup_four, teardown_four),
      cmocka_unit_test_setup_teardown(test_model_interleave_moves, setup_four, teardown_four),
      cmocka_unit_test_setup_teardown(test_model_local_memory_first, setup_four, teardown_four),
      cmocka_unit_test_setup_teardown(test_model_interleave_memory_first, setup_four,
                                      teardown_four),
      cmocka_unit_test_setup_teardown(test_threads, setup_four, teardown_four),
      cmocka_unit_test_setup_teardown(test_threads_slow_path, setup_four, teardown_four),
      cmocka_unit_test_setup_teardown(test_allocator_interface, setup_four, teardown_four),
      cmocka_unit_test_setup_teardown(test_check_reports_a_failed_query, setup_four, teardown_four),
      cmocka_unit_test_setup_teardown(test_failed_destroy_can_be_retried, setup_four,
                                      teardown_four),
  };
  return gm_test_run("test_arena", tests, GM_ARRAY_SIZE(tests), argc, argv, NULL);
}
