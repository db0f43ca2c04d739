/* test_hashmap.c: the registry map against a reference array, through long
 * random sequences of put/get/remove that force growth and wrap-around. */
#include <stdlib.h>

#include "hashmap.h"
#include "helpers.h"
#include "internal.h"

static void test_basic(void **state) {
  (void)state;
  gm_hashmap m = GM_HASHMAP_INIT;
  uint64_t v = 0;
  assert_false(gm_hashmap_get(&m, 5, &v));
  assert_false(gm_hashmap_remove(&m, 5));
  assert_false(gm_hashmap_put(&m, 0, 1)); /* key 0 is reserved */
  assert_true(gm_hashmap_put(&m, 5, 50));
  assert_true(gm_hashmap_put(&m, 5, 51));
  assert_int_equal(m.count, 1);
  assert_true(gm_hashmap_get(&m, 5, &v));
  assert_int_equal(v, 51);
  assert_true(gm_hashmap_remove(&m, 5));
  assert_false(gm_hashmap_get(&m, 5, NULL));
  assert_int_equal(m.count, 0);
  gm_hashmap_free(&m);
}

#define KEYS 3000

static void test_against_reference(void **state) {
  (void)state;
  gm_hashmap m = GM_HASHMAP_INIT;
  static uint64_t ref[KEYS]; /* value+1 for present, 0 absent; key i+1 (times a stride) */
  memset(ref, 0, sizeof ref);
  srand(12345);
  for (int step = 0; step < 200000; step++) {
    size_t k = (size_t)rand() % KEYS;
    uint64_t key = (k + 1) * 0x200000u; /* aligned like addresses */
    int op = rand() % 3;
    if (op == 0) {
      uint64_t val = (uint64_t)rand();
      assert_true(gm_hashmap_put(&m, key, val));
      ref[k] = val + 1;
    } else if (op == 1) {
      assert_int_equal(gm_hashmap_remove(&m, key), ref[k] != 0);
      ref[k] = 0;
    } else {
      uint64_t v = 0;
      bool found = gm_hashmap_get(&m, key, &v);
      assert_int_equal(found, ref[k] != 0);
      if (found) assert_int_equal(v + 1, ref[k]);
    }
  }
  size_t live = 0;
  for (size_t k = 0; k < KEYS; k++) {
    live += ref[k] != 0;
    assert_int_equal(gm_hashmap_get(&m, (k + 1) * 0x200000u, NULL), ref[k] != 0);
  }
  assert_int_equal(m.count, live);
  gm_hashmap_free(&m);
  assert_null(m.keys);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_basic),
      cmocka_unit_test(test_against_reference),
  };
  return cmocka_run_group_tests_name("hashmap", tests, NULL, NULL);
}
