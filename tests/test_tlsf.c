/* test_tlsf.c: the arena's sub-allocator alone (src/tlsf.c): a heap of
 * offsets with host-side block descriptors. Exact fit once good fit fails,
 * alignment, coalescing, several regions, the pointer table, and the
 * checker catching a corrupted heap. No backend is needed. */
#include <stdlib.h>

#include "helpers.h"
#include "tlsf.h"

static void test_tlsf_heap(void **state) {
  (void)state;
  gm_tlsf t;
  gm_tlsf_init(&t);
  char why[256];
  bool no_host = false;
  /* One region of exactly 1000 units: a request for all of it must be
   * served (the good-fit class rounds past it; the exact class is searched). */
  assert_true(gm_tlsf_add(&t, 0, 1000 * GM_TLSF_ALIGN));
  gm_tlsf_block *all = gm_tlsf_alloc(&t, 1000 * GM_TLSF_ALIGN, GM_TLSF_ALIGN, &no_host);
  assert_non_null(all);
  assert_int_equal(all->offset, 0);
  assert_null(gm_tlsf_alloc(&t, GM_TLSF_ALIGN, GM_TLSF_ALIGN, &no_host));
  assert_false(no_host);
  gm_tlsf_free(&t, all);
  assert_true(gm_tlsf_check(&t, why, sizeof why));
  /* Splits, alignment, coalescing back to one block. */
  gm_tlsf_block *a = gm_tlsf_alloc(&t, 3 * GM_TLSF_ALIGN, GM_TLSF_ALIGN, &no_host);
  gm_tlsf_block *b = gm_tlsf_alloc(&t, GM_TLSF_ALIGN, 4096, &no_host);
  gm_tlsf_block *c = gm_tlsf_alloc(&t, 5 * GM_TLSF_ALIGN, GM_TLSF_ALIGN, &no_host);
  assert_non_null(a);
  assert_non_null(b);
  assert_non_null(c);
  assert_int_equal(b->offset % 4096, 0);
  assert_true(gm_tlsf_check(&t, why, sizeof why));
  assert_ptr_equal(gm_tlsf_find(&t, b->offset), b);
  assert_int_equal(gm_tlsf_classify(&t, b->offset + 1), GM_TLSF_USED_INSIDE);
  uint64_t b_off = b->offset;
  gm_tlsf_free(&t, b);
  assert_null(gm_tlsf_find(&t, b_off));
  assert_int_equal(gm_tlsf_classify(&t, b_off), GM_TLSF_FREE);
  gm_tlsf_free(&t, a);
  gm_tlsf_free(&t, c);
  assert_true(gm_tlsf_check(&t, why, sizeof why));
  assert_int_equal(t.blocks_free, 1);
  assert_int_equal(gm_tlsf_largest_free(&t), 1000 * GM_TLSF_ALIGN);
  /* A contiguous range extends the region and merges with its free tail. */
  assert_true(gm_tlsf_add(&t, 1000 * GM_TLSF_ALIGN, 24 * GM_TLSF_ALIGN));
  assert_int_equal(t.nregions, 1);
  assert_int_equal(gm_tlsf_tail_free(&t, 1024 * GM_TLSF_ALIGN), 1024 * GM_TLSF_ALIGN);
  assert_int_equal(t.blocks_free, 1);
  /* A separate range is a second region; blocks never span the gap. */
  assert_true(gm_tlsf_add(&t, 4096 * GM_TLSF_ALIGN, 8 * GM_TLSF_ALIGN));
  assert_int_equal(t.nregions, 2);
  assert_int_equal(gm_tlsf_classify(&t, 2048 * GM_TLSF_ALIGN), GM_TLSF_OUTSIDE);
  assert_false(gm_tlsf_add(&t, 7, GM_TLSF_ALIGN)); /* misaligned */
  assert_true(gm_tlsf_check(&t, why, sizeof why));
  /* The checker sees corruption: a size that no longer tiles the region. */
  gm_tlsf_block *x = gm_tlsf_alloc(&t, 2 * GM_TLSF_ALIGN, GM_TLSF_ALIGN, &no_host);
  assert_non_null(x);
  x->size += GM_TLSF_ALIGN;
  assert_false(gm_tlsf_check(&t, why, sizeof why));
  assert_non_null(strstr(why, "should start at"));
  x->size -= GM_TLSF_ALIGN;
  /* ... and a free block missing from its list. */
  gm_tlsf_block *f = t.regions[0].first;
  assert_true(f->free);
  f->free = false;
  assert_false(gm_tlsf_check(&t, why, sizeof why));
  f->free = true;
  assert_true(gm_tlsf_check(&t, why, sizeof why));
  gm_tlsf_destroy(&t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tlsf_heap),
  };
  return cmocka_run_group_tests_name("tlsf", tests, NULL, NULL);
}
