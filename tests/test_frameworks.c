/* test_frameworks.c: the per-device allocators behind PyTorch, CuPy and Numba.
 *
 * PyTorch's two entry points (values written and read back through them,
 * statistics, 0 and negative sizes, bad frees that change nothing), the
 * status-returning functions CuPy and Numba use (device checks, foreign,
 * double and wrong-size frees), one allocator per device even when many
 * threads ask for it first at once, a failed making of the allocator that
 * leaves nothing behind and is retried, release with blocks still out, and
 * the arena kind's free, which waits for work queued on the stream.
 */
#include <stdatomic.h>
#include <time.h>

#include "frameworks.h"
#include "helpers.h"

static int teardown(void **state) {
  gm_frameworks_set_factory(NULL);
  if (gpumem_framework_release() != GPUMEM_OK) {
    print_error("gpumem_framework_release: %s\n", gpumem_last_error());
    gm_test_teardown(state);
    return -1;
  }
  return gm_test_teardown(state);
}

static gpumem_stats stats_of(int device) {
  gpumem_stats s = GPUMEM_STATS_INIT;
  assert_gpumem_ok(gpumem_framework_stats(device, &s));
  return s;
}

static void test_torch_entry_points(void **state) {
  (void)state;
  unsigned char *p = gpumem_torch_malloc(3000, 0, NULL);
  assert_non_null(p);
  memset(p, 0x5a, 3000); /* host backend memory is host-addressable */
  unsigned char *q = gpumem_torch_malloc(5000, 0, NULL);
  assert_non_null(q);
  memset(q, 0xa5, 5000);
  for (int i = 0; i < 3000; i++)
    assert_int_equal(p[i], 0x5a);
  gpumem_stats s = stats_of(0);
  assert_int_equal(s.bytes_in_use, 8000);
  assert_int_equal(s.allocs, 2);
  assert_true(s.bytes_reserved >= 8000);
  gpumem_torch_free(p, 3000, 0, NULL);
  gpumem_torch_free(q, 5000, 0, NULL);
  s = stats_of(0);
  assert_int_equal(s.bytes_in_use, 0);
  assert_int_equal(s.frees, 2);
  assert_int_equal(s.peak_bytes_in_use, 8000);
  assert_gpumem_ok(gpumem_stream_synchronize(NULL));
}

static void test_torch_sizes(void **state) {
  (void)state;
  gpumem_clear_last_error();
  assert_null(gpumem_torch_malloc(0, 0, NULL)); /* an empty tensor: no error */
  assert_string_equal(gpumem_last_error(), "");
  gpumem_torch_free(NULL, 0, 0, NULL); /* its free: a no-op */
  assert_string_equal(gpumem_last_error(), "");
  assert_null(gpumem_torch_malloc(-4096, 0, NULL));
  assert_int_equal(gpumem_last_status(), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("gpumem_torch_malloc: size -4096 is negative");
  assert_null(gpumem_torch_malloc(4096, 7, NULL));
  assert_int_equal(gpumem_last_status(), GPUMEM_ERR_INVALID_DEVICE);
  assert_last_error_contains("device 7 does not exist (2 devices)");
  assert_null(gpumem_torch_malloc(4096, -1, NULL));
  assert_last_error_contains("device -1 is out of range (0..63)");
  gpumem_stats s = GPUMEM_STATS_INIT; /* nothing was made for those */
  assert_gpumem_status(gpumem_framework_stats(0, &s), GPUMEM_ERR_NOT_FOUND);
  assert_last_error_contains("device 0 has no framework allocator");
  /* A size no device has: NULL, counted as a failed allocation. */
  assert_null(gpumem_torch_malloc((ssize_t)1 << 50, 1, NULL));
  assert_int_equal(gpumem_last_status(), GPUMEM_ERR_OUT_OF_MEMORY);
  s = stats_of(1);
  assert_int_equal(s.failed_allocs, 1);
  assert_int_equal(s.bytes_in_use, 0);
}

/* Bad frees through PyTorch's void entry point: reported, nothing freed, the
 * block still usable and freed properly afterwards. */
static void test_torch_bad_frees_change_nothing(void **state) {
  (void)state;
  char *p = gpumem_torch_malloc(1 << 20, 0, NULL);
  assert_non_null(p);
  gpumem_torch_free(p + 256, 1 << 20, 0, NULL); /* not a block's start */
  assert_int_equal(gpumem_last_status(), GPUMEM_ERR_INVALID_POINTER);
  assert_last_error_contains("gpumem_torch_free: device 0: gpumem-pool:");
  gpumem_torch_free(p, 1 << 20, 1, NULL); /* the wrong device: none made there */
  assert_int_equal(gpumem_last_status(), GPUMEM_ERR_NOT_FOUND);
  assert_last_error_contains("device 1 has no framework allocator");
  void *other = gpumem_torch_malloc(4096, 1, NULL);
  assert_non_null(other);
  gpumem_torch_free(p, 1 << 20, 1, NULL); /* the wrong device: it has one */
  assert_int_equal(gpumem_last_status(), GPUMEM_ERR_INVALID_POINTER);
  gpumem_torch_free(p, 4096, 0, NULL); /* the wrong size */
  assert_int_equal(gpumem_last_status(), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("with size 4096");
  gpumem_torch_free(p, -1, 0, NULL);
  assert_last_error_contains("size -1 of");
  gpumem_torch_free(p, 1 << 20, 64, NULL);
  assert_int_equal(gpumem_last_status(), GPUMEM_ERR_INVALID_DEVICE);
  assert_int_equal(stats_of(0).bytes_in_use, 1 << 20);
  assert_int_equal(stats_of(0).frees, 0);
  memset(p, 1, 1 << 20); /* still ours */
  gpumem_torch_free(p, 1 << 20, 0, NULL);
  gpumem_torch_free(other, 4096, 1, NULL);
  assert_int_equal(stats_of(0).bytes_in_use, 0);
  assert_int_equal(stats_of(1).bytes_in_use, 0);
  assert_gpumem_ok(gpumem_stream_synchronize(NULL));
}

static void test_status_functions(void **state) {
  (void)state;
  void *p = NULL;
  assert_gpumem_status(gpumem_framework_alloc(0, 4096, NULL, NULL), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("gpumem_framework_alloc: ptr is NULL");
  assert_gpumem_status(gpumem_framework_alloc(0, 0, NULL, &p), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("cannot allocate 0 bytes");
  assert_gpumem_status(gpumem_framework_alloc(64, 16, NULL, &p), GPUMEM_ERR_INVALID_DEVICE);
  assert_null(p);
  gpumem_stream_t s = NULL;
  assert_gpumem_ok(gpumem_stream_create(1, &s));
  assert_gpumem_ok(gpumem_framework_alloc(1, 100000, s, &p));
  assert_non_null(p);
  assert_gpumem_status(gpumem_framework_free(1, NULL, 100000, s), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_framework_free(0, p, 100000, s), GPUMEM_ERR_NOT_FOUND);
  assert_last_error_contains("was not allocated on it");
  assert_gpumem_ok(gpumem_framework_free(1, p, 100000, s));
  assert_gpumem_status(gpumem_framework_free(1, p, 100000, s), GPUMEM_ERR_DOUBLE_FREE);
  assert_last_error_contains("gpumem_framework_free: device 1: gpumem-pool:");
  gpumem_allocator a = GPUMEM_ALLOCATOR_INIT;
  assert_gpumem_ok(gpumem_framework_allocator(1, &a));
  assert_string_equal(a.name, "gpumem-pool"); /* GPUMEM_ALLOC_CONF unset */
  assert_int_equal(a.device, 1);
  assert_true(a.flags & GPUMEM_ALLOCATOR_STREAM_ORDERED);
  gpumem_allocator bad = {0};
  assert_gpumem_status(gpumem_framework_allocator(1, &bad), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_framework_stats(1, NULL), GPUMEM_ERR_INVALID_ARGUMENT);
  gm_fault_inject(GM_OP_pool_trim, 1, GPUMEM_ERR_INJECTED); /* reported with its device */
  assert_gpumem_status(gpumem_framework_trim(-1), GPUMEM_ERR_INJECTED);
  assert_last_error_contains("gpumem_framework_trim: device 1: gpumem-pool: injected failure");
  assert_gpumem_ok(gpumem_framework_trim(1));
  assert_gpumem_ok(gpumem_framework_trim(-1));
  assert_gpumem_ok(gpumem_framework_trim(0)); /* none there: nothing cached */
  assert_gpumem_status(gpumem_framework_trim(-2), GPUMEM_ERR_INVALID_DEVICE);
  assert_gpumem_ok(gpumem_stream_synchronize(s));
  assert_gpumem_ok(gpumem_stream_destroy(s));
}

/* Release keeps an allocator with blocks out (BUSY, naming it) and destroys
 * the others; finalize does the same. */
static void test_release(void **state) {
  (void)state;
  void *p = gpumem_torch_malloc(4096, 0, NULL), *q = gpumem_torch_malloc(4096, 1, NULL);
  assert_non_null(p);
  assert_non_null(q);
  gpumem_torch_free(q, 4096, 1, NULL);
  assert_gpumem_ok(gpumem_stream_synchronize(NULL));
  assert_gpumem_status(gpumem_framework_release(), GPUMEM_ERR_BUSY);
  assert_last_error_contains("device 0:");
  assert_last_error_contains("4096 bytes allocated");
  gpumem_stats s = GPUMEM_STATS_INIT;
  assert_gpumem_status(gpumem_framework_stats(1, &s), GPUMEM_ERR_NOT_FOUND); /* gone */
  assert_int_equal(stats_of(0).bytes_in_use, 4096);                          /* stays */
  assert_gpumem_status(gpumem_finalize(), GPUMEM_ERR_BUSY);
  gpumem_torch_free(p, 4096, 0, NULL);
  assert_gpumem_ok(gpumem_stream_synchronize(NULL));
  assert_gpumem_ok(gpumem_framework_release());
  assert_gpumem_status(gpumem_framework_stats(0, &s), GPUMEM_ERR_NOT_FOUND);
  /* The next allocation makes a new one, with fresh statistics. */
  p = gpumem_torch_malloc(512, 0, NULL);
  assert_non_null(p);
  assert_int_equal(stats_of(0).allocs, 1);
  gpumem_torch_free(p, 512, 0, NULL);
  assert_gpumem_ok(gpumem_stream_synchronize(NULL));
}

#define RACERS 8

static atomic_int start_line;

static void *racer(void *arg) {
  void **out = arg;
  while (!atomic_load(&start_line)) {
  }
  *out = gpumem_torch_malloc(65536, 1, NULL);
  return NULL;
}

static atomic_int made;

static gpumem_status counting_factory(int device, gpumem_allocator *out) {
  atomic_fetch_add(&made, 1);
  struct timespec nap = {0, 2000000}; /* widen the window the others race into */
  nanosleep(&nap, NULL);
  return gpumem_allocator_create("gpumem-pool", device, out);
}

/* Many threads ask for device 1's allocator first at the same time: one is
 * made, every block comes from it. */
static void test_one_allocator_under_a_race(void **state) {
  (void)state;
  gm_frameworks_set_factory(counting_factory);
  atomic_store(&made, 0);
  pthread_t t[RACERS];
  void *p[RACERS] = {0};
  for (int i = 0; i < RACERS; i++)
    assert_int_equal(pthread_create(&t[i], NULL, racer, &p[i]), 0);
  atomic_store(&start_line, 1);
  for (int i = 0; i < RACERS; i++)
    assert_int_equal(pthread_join(t[i], NULL), 0);
  atomic_store(&start_line, 0);
  assert_int_equal(atomic_load(&made), 1);
  gpumem_stats s = stats_of(1);
  assert_int_equal(s.allocs, RACERS);
  assert_int_equal(s.bytes_in_use, RACERS * 65536);
  for (int i = 0; i < RACERS; i++) {
    assert_non_null(p[i]);
    for (int j = 0; j < i; j++)
      assert_ptr_not_equal(p[i], p[j]);
    gpumem_torch_free(p[i], 65536, 1, NULL);
  }
  assert_int_equal(stats_of(1).bytes_in_use, 0);
  assert_gpumem_ok(gpumem_stream_synchronize(NULL));
}

/* Making the allocator fails (the pool cannot be created): nothing is kept,
 * nothing leaks (the teardown counts pools), and the next call makes it. */
static void test_failed_making_is_retried(void **state) {
  (void)state;
  gm_fault_inject(GM_OP_pool_create, 1, GPUMEM_ERR_INJECTED);
  void *p = NULL;
  assert_gpumem_status(gpumem_framework_alloc(0, 4096, NULL, &p), GPUMEM_ERR_INJECTED);
  assert_null(p);
  assert_last_error_contains("gpumem_framework_alloc:");
  gpumem_stats s = GPUMEM_STATS_INIT;
  assert_gpumem_status(gpumem_framework_stats(0, &s), GPUMEM_ERR_NOT_FOUND);
  assert_gpumem_ok(gpumem_framework_alloc(0, 4096, NULL, &p));
  assert_non_null(p);
  /* A failed allocation from a made allocator: counted, nothing changed. */
  gm_fault_inject(GM_OP_pool_alloc, 1, GPUMEM_ERR_INJECTED);
  void *q = NULL;
  assert_null(gpumem_torch_malloc(8 << 20, 0, NULL)); /* past the cache: reaches the pool */
  assert_int_equal(gpumem_last_status(), GPUMEM_ERR_INJECTED);
  assert_null(q);
  s = stats_of(0);
  assert_int_equal(s.failed_allocs, 1);
  assert_int_equal(s.bytes_in_use, 4096);
  assert_gpumem_ok(gpumem_framework_free(0, p, 4096, NULL));
  assert_gpumem_ok(gpumem_stream_synchronize(NULL));
}

static gpumem_status arena_factory(int device, gpumem_allocator *out) {
  return gpumem_allocator_create("gpumem-arena", device, out);
}

static atomic_int kernel_done;

static void slow_kernel(void *arg) {
  struct timespec nap = {0, 50000000};
  nanosleep(&nap, NULL);
  memset(arg, 0x77, 4096); /* still using the block */
  atomic_store(&kernel_done, 1);
}

/* The arena is not stream-ordered: a free waits for the work queued on its
 * stream before the block can be handed out again. */
static void test_arena_free_waits_for_the_stream(void **state) {
  (void)state;
  gm_frameworks_set_factory(arena_factory);
  gpumem_allocator a = GPUMEM_ALLOCATOR_INIT;
  assert_gpumem_ok(gpumem_framework_allocator(0, &a));
  assert_string_equal(a.name, "gpumem-arena");
  assert_false(a.flags & GPUMEM_ALLOCATOR_STREAM_ORDERED);
  gpumem_stream_t s = NULL;
  assert_gpumem_ok(gpumem_stream_create(0, &s));
  void *p = gpumem_torch_malloc(4096, 0, s);
  assert_non_null(p);
  atomic_store(&kernel_done, 0);
  assert_gpumem_ok(gpumem_launch_host_func(s, slow_kernel, p));
  gpumem_torch_free(p, 4096, 0, s);
  assert_int_equal(atomic_load(&kernel_done), 1); /* the free returned after the work */
  assert_int_equal(stats_of(0).bytes_in_use, 0);
  /* A stream that is not one: the free fails and frees nothing. */
  p = gpumem_torch_malloc(4096, 0, s);
  assert_non_null(p);
  gpumem_torch_free(p, 4096, 0, (gpumem_stream_t)(uintptr_t)0x1000);
  assert_last_error_contains("waiting for stream 0x1000 before gpumem-arena frees");
  assert_last_error_contains("is not a live host-backend stream");
  assert_int_equal(stats_of(0).bytes_in_use, 4096);
  gpumem_torch_free(p, 4096, 0, s);
  assert_int_equal(stats_of(0).bytes_in_use, 0);
  assert_gpumem_ok(gpumem_stream_destroy(s));
}

int main(int argc, char **argv) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_torch_entry_points, gm_test_setup, teardown),
      cmocka_unit_test_setup_teardown(test_torch_sizes, gm_test_setup, teardown),
      cmocka_unit_test_setup_teardown(test_torch_bad_frees_change_nothing, gm_test_setup, teardown),
      cmocka_unit_test_setup_teardown(test_status_functions, gm_test_setup, teardown),
      cmocka_unit_test_setup_teardown(test_release, gm_test_setup, teardown),
      cmocka_unit_test_setup_teardown(test_one_allocator_under_a_race, gm_test_setup, teardown),
      cmocka_unit_test_setup_teardown(test_failed_making_is_retried, gm_test_setup, teardown),
      cmocka_unit_test_setup_teardown(test_arena_free_waits_for_the_stream, gm_test_setup,
                                      teardown),
  };
  return gm_test_run("frameworks", tests, GM_ARRAY_SIZE(tests), argc, argv, NULL);
}
