/* test_allocator.c: the allocator interface over objects the caller
 * configured (gpumem_allocator_from_pool/arena/buffer) and the process-wide
 * default allocator. The registry's allocators are covered by test_bench. */
#include <stdio.h>

#include "helpers.h"

static void test_wrapped_pool_keeps_its_configuration(void **state) {
  (void)state;
  gpumem_pool_config c = GPUMEM_POOL_CONFIG_INIT;
  c.cache_max_size = 4096; /* the caller's tuning: 8 KiB requests bypass the cache */
  gpumem_pool_t *pool = NULL;
  assert_gpumem_ok(gpumem_pool_create(&c, &pool));
  gpumem_allocator a = GPUMEM_ALLOCATOR_INIT;
  assert_gpumem_ok(gpumem_allocator_from_pool(pool, &a));
  assert_string_equal(a.name, "pool");
  assert_int_equal(a.flags & GPUMEM_ALLOCATOR_STREAM_ORDERED, GPUMEM_ALLOCATOR_STREAM_ORDERED);
  void *x = NULL, *y = NULL;
  assert_gpumem_ok(a.alloc(a.ctx, 8192, NULL, &x));
  assert_gpumem_ok(a.free(a.ctx, x, 8192, NULL));
  assert_gpumem_ok(a.alloc(a.ctx, 1000, NULL, &y));
  assert_gpumem_ok(a.free(a.ctx, y, 1000, NULL));
  gpumem_pool_stats ps = GPUMEM_POOL_STATS_INIT;
  assert_gpumem_ok(gpumem_pool_get_stats(pool, &ps));
  assert_int_equal(ps.cached_bytes, 1024); /* only the small block was cached */
  gpumem_stats s = GPUMEM_STATS_INIT;
  assert_gpumem_ok(a.stats(a.ctx, &s));
  assert_int_equal(s.allocs, 2);
  assert_int_equal(s.frees, 2);
  assert_int_equal(s.peak_bytes_in_use, 8192);
  assert_true(s.bytes_reserved > 0);
  assert_gpumem_ok(gpumem_allocator_destroy(&a));
  assert_gpumem_ok(gpumem_pool_get_stats(pool, &ps)); /* still alive: the caller's */
  assert_gpumem_ok(gpumem_pool_destroy(pool));
  gpumem_allocator bad = GPUMEM_ALLOCATOR_INIT;
  static _Alignas(64) char not_a_pool[4096]; /* zeroes: no pool's magic */
  assert_gpumem_status(gpumem_allocator_from_pool((gpumem_pool_t *)(void *)not_a_pool, &bad),
                       GPUMEM_ERR_INVALID_ARGUMENT);
}

static void test_wrapped_arena_allocates_on_its_device(void **state) {
  (void)state;
  int count = 0;
  assert_gpumem_ok(gpumem_device_count(&count));
  int members[2] = {0, count > 1 ? 1 : 0};
  gpumem_arena_config c = GPUMEM_ARENA_CONFIG_INIT;
  c.devices = members;
  c.device_count = count > 1 ? 2 : 1;
  gpumem_arena_t *arena = NULL;
  assert_gpumem_ok(gpumem_arena_create(&c, &arena));
  gpumem_allocator a = GPUMEM_ALLOCATOR_INIT;
  assert_gpumem_status(gpumem_allocator_from_arena(arena, 7, &a), GPUMEM_ERR_INVALID_DEVICE);
  assert_gpumem_ok(gpumem_allocator_from_arena(arena, members[1], &a));
  assert_int_equal(a.flags & GPUMEM_ALLOCATOR_STREAM_ORDERED, 0);
  void *p = NULL;
  assert_gpumem_ok(a.alloc(a.ctx, 5000, NULL, &p));
  int owner = -1;
  assert_gpumem_ok(gpumem_arena_owner(arena, p, &owner));
  assert_int_equal(owner, members[1]);
  assert_gpumem_ok(a.free(a.ctx, p, 5000, NULL));
  assert_gpumem_ok(gpumem_allocator_destroy(&a));
  assert_gpumem_ok(gpumem_arena_destroy(arena));
}

static void test_buffer_stack(void **state) {
  (void)state;
  gpumem_buffer_config c = GPUMEM_BUFFER_CONFIG_INIT;
  gpumem_buffer_t *b = NULL;
  assert_gpumem_ok(gpumem_buffer_create(&c, &b));
  gpumem_allocator a = GPUMEM_ALLOCATOR_INIT;
  assert_gpumem_ok(gpumem_allocator_from_buffer(b, &a));
  char *base = gpumem_buffer_data(b);
  void *x = NULL, *y = NULL, *z = NULL;
  assert_gpumem_ok(a.alloc(a.ctx, 1000, NULL, &x));
  assert_gpumem_ok(a.alloc(a.ctx, 3 << 20, NULL, &y)); /* grows the buffer in place */
  assert_gpumem_ok(a.alloc(a.ctx, 100, NULL, &z));
  assert_ptr_equal(gpumem_buffer_data(b), base); /* never moves */
  assert_ptr_equal(x, base);
  assert_ptr_equal(y, base + 1024); /* 256-byte aligned */
  assert_ptr_equal(z, base + 1024 + (3 << 20));
  assert_int_equal(gpumem_buffer_size(b), 1024 + (3 << 20) + 100);
  assert_gpumem_status(a.free(a.ctx, y, 999, NULL), GPUMEM_ERR_INVALID_ARGUMENT); /* size */
  assert_gpumem_status(a.free(a.ctx, base + 8, 8, NULL), GPUMEM_ERR_INVALID_POINTER);
  /* Out of order: y's memory comes back only when z, above it, is freed. */
  assert_gpumem_ok(a.free(a.ctx, y, 3 << 20, NULL));
  assert_gpumem_status(a.free(a.ctx, y, 3 << 20, NULL), GPUMEM_ERR_DOUBLE_FREE);
  assert_int_equal(gpumem_buffer_size(b), 1024 + (3 << 20) + 100);
  assert_gpumem_ok(a.free(a.ctx, z, 100, NULL));
  assert_int_equal(gpumem_buffer_size(b), 1000);
  void *w = NULL;
  assert_gpumem_ok(a.alloc(a.ctx, 10, NULL, &w));
  assert_ptr_equal(w, base + 1024); /* reused */
  assert_gpumem_ok(a.free(a.ctx, w, 10, NULL));
  assert_gpumem_ok(a.free(a.ctx, x, 1000, NULL));
  assert_int_equal(gpumem_buffer_size(b), 0);
  gpumem_stats s = GPUMEM_STATS_INIT;
  assert_gpumem_ok(a.stats(a.ctx, &s));
  assert_int_equal(s.allocs, 4);
  assert_int_equal(s.bytes_in_use, 0);
  assert_true(s.peak_bytes_reserved >= (3u << 20));
  assert_gpumem_ok(gpumem_allocator_destroy(&a));
  assert_gpumem_ok(gpumem_buffer_destroy(b));
}

static void test_default_allocator(void **state) {
  (void)state;
  /* None chosen: libgpumem's pool, made once. */
  gpumem_allocator d1 = GPUMEM_ALLOCATOR_INIT, d2 = GPUMEM_ALLOCATOR_INIT;
  assert_gpumem_ok(gpumem_default_allocator(&d1));
  assert_gpumem_ok(gpumem_default_allocator(&d2));
  assert_string_equal(d1.name, "gpumem-pool");
  assert_ptr_equal(d1.ctx, d2.ctx);
  void *p = NULL;
  assert_gpumem_ok(d1.alloc(d1.ctx, 100, NULL, &p));
  assert_gpumem_ok(d2.free(d2.ctx, p, 100, NULL));
  /* The application chooses: a pool of its own. */
  gpumem_pool_config c = GPUMEM_POOL_CONFIG_INIT;
  gpumem_pool_t *pool = NULL;
  assert_gpumem_ok(gpumem_pool_create(&c, &pool));
  gpumem_allocator mine = GPUMEM_ALLOCATOR_INIT;
  assert_gpumem_ok(gpumem_allocator_from_pool(pool, &mine));
  assert_gpumem_ok(gpumem_set_default_allocator(&mine)); /* the library's own goes away */
  gpumem_allocator d3 = GPUMEM_ALLOCATOR_INIT;
  assert_gpumem_ok(gpumem_default_allocator(&d3));
  assert_ptr_equal(d3.ctx, mine.ctx);
  gpumem_allocator broken = GPUMEM_ALLOCATOR_INIT;
  assert_gpumem_status(gpumem_set_default_allocator(&broken), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_ok(gpumem_set_default_allocator(NULL));
  assert_gpumem_ok(gpumem_allocator_destroy(&mine));
  assert_gpumem_ok(gpumem_pool_destroy(pool));
  /* Made again on demand; choosing none destroys the one libgpumem made
   * (the teardown checks that no pool is left alive), as finalize does. */
  assert_gpumem_ok(gpumem_default_allocator(&d1));
  assert_string_equal(d1.name, "gpumem-pool");
  assert_gpumem_ok(gpumem_set_default_allocator(NULL));
}

/* One emulated device of 16 MiB (host runs only). */
static int small_device(void **state) {
  gpumem_init_options o = GPUMEM_INIT_OPTIONS_INIT;
  o.host_devices = 1;
  o.host_capacity = 16 << 20;
  return gm_test_setup_host(state, o);
}

/* Through the interface, a failure says as much as the object's own call:
 * the adapters call the modules' internal operations, whose detail the
 * interface composes with its name (issue 14 point 6). */
static void test_failures_keep_their_detail(void **state) {
  (void)state;
  if (!gm_test_on_host()) skip(); /* needs the 16 MiB device */
  gpumem_allocator a = GPUMEM_ALLOCATOR_INIT;
  assert_gpumem_ok(gpumem_allocator_create("gpumem-pool", 0, &a));
  void *p = NULL;
  assert_gpumem_status(a.alloc(a.ctx, 64 << 20, NULL, &p), GPUMEM_ERR_OUT_OF_MEMORY);
  assert_last_error_contains("gpumem-pool: cannot allocate 67108864 bytes on device 0");
  assert_last_error_contains("the caches were flushed");
  assert_gpumem_ok(gpumem_allocator_destroy(&a));
  assert_gpumem_ok(gpumem_allocator_create("gpumem-arena", 0, &a));
  assert_gpumem_status(a.alloc(a.ctx, 64 << 20, NULL, &p), GPUMEM_ERR_CAPACITY);
  assert_last_error_contains("gpumem-arena: cannot allocate 67108864 bytes: the arena's maximum "
                             "size is 16777216 bytes");
  assert_gpumem_ok(gpumem_allocator_destroy(&a));
}

/* Issue 15: gpumem_allocator_destroy returns a status. With a block still
 * allocated every registry allocator is BUSY and stays usable (before, a
 * pool-backed one leaked its whole pool and the CUDA baselines their
 * blocks, and nothing was reported); a failed driver release leaves it
 * destroyable again. */
static void test_destroy_reports_and_can_be_retried(void **state) {
  (void)state;
  gm_backend_counters before, now;
  gm_backend_get_counters(&before);
  size_t n = gpumem_allocator_list(NULL, 0);
  gpumem_allocator_kind kinds[16];
  assert_true(n <= 16);
  gpumem_allocator_list(kinds, n);
  for (size_t i = 0; i < n; i++) {
    gpumem_allocator a = GPUMEM_ALLOCATOR_INIT;
    assert_gpumem_ok(gpumem_allocator_create(kinds[i].name, 0, &a));
    void *p = NULL;
    assert_gpumem_ok(a.alloc(a.ctx, 4096, NULL, &p));
    assert_gpumem_status(gpumem_allocator_destroy(&a), GPUMEM_ERR_BUSY);
    assert_last_error_contains("free them first");
    assert_non_null(a.alloc); /* untouched, still usable */
    assert_gpumem_ok(a.free(a.ctx, p, 4096, NULL));
    assert_gpumem_ok(gpumem_stream_synchronize(NULL));
    assert_gpumem_ok(gpumem_allocator_destroy(&a));
    assert_null(a.alloc);
  }
  gm_backend_get_counters(&now);
  assert_int_equal(now.pools, before.pools);
  assert_int_equal(now.pool_allocations, before.pool_allocations);
  assert_int_equal(now.device_allocations, before.device_allocations);
  /* A failed pool destroy: reported, and the allocator destroyed by a retry. */
  gpumem_allocator a = GPUMEM_ALLOCATOR_INIT;
  assert_gpumem_ok(gpumem_allocator_create("cuda-pool", 0, &a));
  gm_fault_inject(GM_OP_pool_destroy, 1, GPUMEM_ERR_INJECTED);
  assert_gpumem_status(gpumem_allocator_destroy(&a), GPUMEM_ERR_INJECTED);
  assert_gpumem_ok(gpumem_allocator_destroy(&a));
  gm_backend_get_counters(&now);
  assert_int_equal(now.pools, before.pools);
}

/* gpumem_allocator_list(NULL, n) counts without writing: it once wrote the
 * kinds through the NULL pointer whenever n > 0. */
static void test_list_into_null_only_counts(void **state) {
  (void)state;
  assert_int_equal(gpumem_allocator_list(NULL, 8), 7);
  assert_int_equal(gpumem_allocator_list(NULL, SIZE_MAX), 7);
  gpumem_allocator_kind one[1] = {{NULL, NULL}};
  assert_int_equal(gpumem_allocator_list(one, 1), 7);
  assert_string_equal(one[0].name, "cuda-malloc");
}

/* A free with the wrong size is refused, naming both sizes, and frees
 * nothing: the pool and the arena know their blocks. It was once accepted
 * and counted (bytes_in_use went wrong). */
static void check_wrong_size_refused(const char *name, size_t size, size_t wrong,
                                     const char *message) {
  gpumem_allocator a = GPUMEM_ALLOCATOR_INIT;
  assert_gpumem_ok(gpumem_allocator_create(name, 0, &a));
  void *p = NULL;
  assert_gpumem_ok(a.alloc(a.ctx, size, NULL, &p));
  assert_gpumem_status(a.free(a.ctx, p, wrong, NULL), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains(message);
  gpumem_stats s = GPUMEM_STATS_INIT;
  assert_gpumem_ok(a.stats(a.ctx, &s));
  assert_int_equal(s.bytes_in_use, size); /* nothing freed, nothing counted */
  assert_int_equal(s.frees, 0);
  assert_gpumem_ok(a.free(a.ctx, p, size, NULL));
  assert_gpumem_ok(a.stats(a.ctx, &s));
  assert_int_equal(s.bytes_in_use, 0);
  assert_gpumem_ok(gpumem_allocator_destroy(&a));
}

static void test_free_with_the_wrong_size_refused(void **state) {
  (void)state;
  char want[160];
  /* a cached size class (300 bytes: the 257..320 class) */
  check_wrong_size_refused("gpumem-pool", 300, 4096,
                           "with size 4096: it was allocated with 257 to 320 bytes");
  /* uncached: the exact size */
  snprintf(want, sizeof want, "with size %zu: it was allocated with %zu bytes", (size_t)3 << 20,
           (size_t)2 << 20);
  check_wrong_size_refused("gpumem-pool-nocache", (size_t)2 << 20, (size_t)3 << 20, want);
  check_wrong_size_refused("gpumem-arena", 1000, 100,
                           "with size 100: it was allocated with 769 to 1024 bytes");
}

/* gpumem-arena's trim gives its free pages back to the device (the pages
 * of a block still allocated stay). */
static void test_arena_allocator_trim(void **state) {
  (void)state;
  gpumem_allocator a = GPUMEM_ALLOCATOR_INIT;
  assert_gpumem_ok(gpumem_allocator_create("gpumem-arena", 0, &a));
  assert_non_null(a.trim);
  void *big = NULL, *small = NULL;
  assert_gpumem_ok(a.alloc(a.ctx, (size_t)64 << 20, NULL, &big));
  assert_gpumem_ok(a.alloc(a.ctx, 4096, NULL, &small));
  assert_gpumem_ok(a.free(a.ctx, big, (size_t)64 << 20, NULL));
  gpumem_stats before = GPUMEM_STATS_INIT, after = GPUMEM_STATS_INIT;
  assert_gpumem_ok(a.stats(a.ctx, &before));
  assert_true(before.bytes_reserved >= ((size_t)64 << 20));
  assert_gpumem_ok(a.trim(a.ctx));
  assert_gpumem_ok(a.stats(a.ctx, &after));
  assert_true(after.bytes_reserved < ((size_t)8 << 20)); /* the small block's pages alone */
  assert_true(after.bytes_reserved >= 4096);
  assert_int_equal(after.bytes_in_use, before.bytes_in_use);
  if (gm_test_on_host()) memset(small, 0x5a, 4096); /* still mapped: host memory here */
  assert_gpumem_ok(a.free(a.ctx, small, 4096, NULL));
  assert_gpumem_ok(gpumem_allocator_destroy(&a));
}

int main(int argc, char **argv) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test(test_wrapped_pool_keeps_its_configuration),
      cmocka_unit_test(test_wrapped_arena_allocates_on_its_device),
      cmocka_unit_test(test_buffer_stack),
      cmocka_unit_test(test_default_allocator),
      cmocka_unit_test(test_destroy_reports_and_can_be_retried),
      cmocka_unit_test(test_list_into_null_only_counts),
      cmocka_unit_test(test_free_with_the_wrong_size_refused),
      cmocka_unit_test(test_arena_allocator_trim),
      cmocka_unit_test_setup_teardown(test_failures_keep_their_detail, small_device,
                                      gm_test_teardown_host),
  };
  return gm_test_run("allocator", tests, GM_ARRAY_SIZE(tests), argc, argv, NULL);
}
