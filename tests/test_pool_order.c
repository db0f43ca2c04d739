/* test_pool_order.c: the stream-ordering rule on a real GPU. A kernel spins
 * on stream A, then writes a pattern into a pool block; the block is freed
 * on A while the kernel still runs, and stream B allocates at once. The pool
 * must not hand B the block A's kernel is about to write: B writes its own
 * pattern, and after everything finishes B's bytes must be intact. Once A is
 * done, an allocation on A gets the block back from the cache. Needs the
 * CUDA backend and a GPU (skipped otherwise, failed under
 * GPUMEM_TEST_REQUIRE_GPU=1). */
#include <stdlib.h>

#include "helpers.h"

int gm_test_spin_then_write(void *dst, size_t n, unsigned char value, long long cycles,
                            void *stream);

#define N           (1 << 20)
#define SPIN_CYCLES 200000000LL /* about 0.1 s at 1.8 GHz */

static void test_no_reuse_while_the_kernel_runs(void **state) {
  (void)state;
  if (gm_test_on_host()) skip(); /* host streams complete at once: nothing in flight */
  gpumem_pool_config c = GPUMEM_POOL_CONFIG_INIT;
  gpumem_pool_t *pool = NULL;
  assert_gpumem_ok(gpumem_pool_create(&c, &pool));
  gpumem_stream_t a = NULL, b = NULL;
  assert_gpumem_ok(gpumem_stream_create(0, &a));
  assert_gpumem_ok(gpumem_stream_create(0, &b));
  void *x = NULL, *y = NULL, *z = NULL;
  assert_gpumem_ok(gpumem_pool_alloc(pool, N, a, &x));
  assert_int_equal(gm_test_spin_then_write(x, N, 0xAB, SPIN_CYCLES, a), 0);
  assert_gpumem_ok(gpumem_pool_free(pool, x, a)); /* the kernel is still spinning */
  assert_int_equal(gpumem_stream_query(a), GPUMEM_ERR_NOT_READY);
  assert_gpumem_ok(gpumem_pool_alloc(pool, N, b, &y));
  assert_gpumem_ok(gpumem_memset(y, 0x11, N, b));
  assert_gpumem_ok(gpumem_stream_synchronize(b));
  assert_gpumem_ok(gpumem_stream_synchronize(a));
  unsigned char *host = malloc(N);
  assert_gpumem_ok(gpumem_memcpy(host, y, N, b));
  assert_gpumem_ok(gpumem_stream_synchronize(b));
  size_t wrong = 0;
  for (size_t i = 0; i < N; i++)
    wrong += host[i] != 0x11;
  free(host);
  assert_int_equal(wrong, 0); /* A's kernel never wrote into B's block */
  /* A is done: on A the block comes back. */
  assert_gpumem_ok(gpumem_pool_alloc(pool, N, a, &z));
  assert_ptr_equal(z, x);
  assert_gpumem_ok(gpumem_pool_free(pool, y, b));
  assert_gpumem_ok(gpumem_pool_free(pool, z, a));
  assert_gpumem_ok(gpumem_device_synchronize(0));
  assert_gpumem_ok(gpumem_pool_destroy(pool));
  assert_gpumem_ok(gpumem_stream_destroy(a));
  assert_gpumem_ok(gpumem_stream_destroy(b));
}

int main(int argc, char **argv) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test(test_no_reuse_while_the_kernel_runs),
  };
  return gm_test_run("pool_order", tests, GM_ARRAY_SIZE(tests), argc, argv, NULL);
}
