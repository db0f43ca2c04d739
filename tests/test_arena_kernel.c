/* test_arena_kernel.c: a one-device arena end to end on a real GPU. Blocks
 * of many sizes (256 B to 24 MiB, so the arena grows several times and
 * serves blocks across chunk boundaries) are written by a kernel, word by
 * word, then every block is read back by a second kernel that counts the
 * words that are wrong; half the blocks are freed, others allocated in the
 * holes, and everything is checked again. Blocks written after a growth
 * prove that new chunks get access; blocks that survive the frees prove
 * that neighbours never overlap. The multi-device paths (peer access,
 * interleaving) run in test_arena on the host backend: they need a
 * multi-GPU machine for hardware proof. Needs the CUDA backend and a GPU. */
#include <stdlib.h>

#include "helpers.h"

int gm_test_fill_words(void *dst, size_t words, unsigned seed, void *stream);
int gm_test_count_wrong_words(const void *src, size_t words, unsigned seed,
                              unsigned long long *wrong, void *stream);

#define BLOCKS 96

static size_t size_of(int i) {
  static const size_t sizes[8] = {256, 4096, 65536, 1000000, 3 << 20, 256 * 3, 24 << 20, 77777};
  return sizes[i % 8] / 4 * 4;
}

static void fill_all(void **p, int from, int step, unsigned salt) {
  for (int i = from; i < BLOCKS; i += step)
    assert_int_equal(gm_test_fill_words(p[i], size_of(i) / 4, (unsigned)i + salt, NULL), 0);
}

static unsigned long long wrong_words(gpumem_arena_t *a, void **p, unsigned salt_even,
                                      unsigned salt_odd) {
  void *counter = NULL;
  assert_gpumem_ok(gpumem_arena_alloc(a, sizeof(unsigned long long), 0, 0, &counter));
  assert_gpumem_ok(gpumem_memset(counter, 0, sizeof(unsigned long long), NULL));
  for (int i = 0; i < BLOCKS; i++) {
    unsigned seed = (unsigned)i + (i % 2 ? salt_odd : salt_even);
    assert_int_equal(gm_test_count_wrong_words(p[i], size_of(i) / 4, seed, counter, NULL), 0);
  }
  unsigned long long wrong = 0;
  assert_gpumem_ok(gpumem_memcpy(&wrong, counter, sizeof wrong, NULL));
  assert_gpumem_ok(gpumem_stream_synchronize(NULL));
  assert_gpumem_ok(gpumem_arena_free(a, counter));
  return wrong;
}

static void test_kernels_read_back_every_block(void **state) {
  (void)state;
  if (gm_test_on_host()) skip(); /* kernels need the GPU */
  int dev = 0;
  gpumem_arena_config c = GPUMEM_ARENA_CONFIG_INIT;
  c.devices = &dev;
  c.device_count = 1;
  c.chunk_size = 0; /* the default: 8 MiB */
  gpumem_arena_t *a = NULL;
  assert_gpumem_ok(gpumem_arena_create(&c, &a));
  void *p[BLOCKS];
  for (int i = 0; i < BLOCKS; i++) {
    assert_gpumem_ok(gpumem_arena_alloc(a, size_of(i), 0, 0, &p[i]));
    int owner = -1;
    assert_gpumem_ok(gpumem_arena_owner(a, p[i], &owner));
    assert_int_equal(owner, 0);
  }
  fill_all(p, 0, 1, 0);
  assert_int_equal(wrong_words(a, p, 0, 0), 0);
  /* Free the odd blocks, allocate them again (into the holes or new
   * chunks), write them with another pattern: the even ones must be intact. */
  for (int i = 1; i < BLOCKS; i += 2)
    assert_gpumem_ok(gpumem_arena_free(a, p[i]));
  for (int i = 1; i < BLOCKS; i += 2)
    assert_gpumem_ok(gpumem_arena_alloc(a, size_of(i), 0, 0, &p[i]));
  fill_all(p, 1, 2, 1000);
  assert_int_equal(wrong_words(a, p, 0, 1000), 0);
  gpumem_arena_stats s = GPUMEM_ARENA_STATS_INIT;
  assert_gpumem_ok(gpumem_arena_get_stats(a, &s));
  assert_true(s.growths >= 2);
  assert_int_equal(s.blocks_in_use, BLOCKS);
  char why[256];
  assert_gpumem_ok(gpumem_arena_check(a, why, sizeof why));
  for (int i = 0; i < BLOCKS; i++)
    assert_gpumem_ok(gpumem_arena_free(a, p[i]));
  assert_gpumem_ok(gpumem_arena_destroy(a));
}

int main(int argc, char **argv) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test(test_kernels_read_back_every_block),
  };
  return gm_test_run("arena_kernel", tests, GM_ARRAY_SIZE(tests), argc, argv, NULL);
}
