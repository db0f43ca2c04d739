/* test_tlsf.c: the arena's sub-allocator alone (src/tlsf.c): a heap of
 * offsets with host-side block descriptors. Best fit for large requests,
 * exact fit once good fit fails,
 * alignment, coalescing, several regions, the pointer table, the
 * checker catching a corrupted heap, and holes cut into free blocks
 * (gm_tlsf_remove_range) and filled again. No backend is needed. */
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "tlsf.h"

/* Free bytes at the end of the region that ends at `end` (0 if none). */
static uint64_t tail_free(const gm_tlsf *t, uint64_t end) {
  for (size_t i = 0; i < t->nregions; i++) {
    const gm_tlsf_region *r = &t->regions[i];
    if (r->offset + r->size == end) return r->last != NULL && r->last->free ? r->last->size : 0;
  }
  return 0;
}

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
  assert_int_equal(tail_free(&t, 1024 * GM_TLSF_ALIGN), 1024 * GM_TLSF_ALIGN);
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

#define U GM_TLSF_ALIGN

static void assert_heap_valid(const gm_tlsf *t) {
  char why[256];
  if (!gm_tlsf_check(t, why, sizeof why)) fail_msg("heap check: %s", why);
}

/* gm_tlsf_remove_range cuts a hole into a free block: the two sides stay
 * free, the region splits in two, counters and labels follow; filling the
 * hole again with gm_tlsf_add closes the region and coalesces. Ranges that
 * are not wholly inside one free block are refused and change nothing. */
static void test_tlsf_remove_range(void **state) {
  (void)state;
  gm_tlsf t;
  gm_tlsf_init(&t);
  bool no_host = false;
  assert_true(gm_tlsf_add(&t, 0, 100 * U));
  gm_tlsf_block *a = gm_tlsf_alloc(&t, 10 * U, U, &no_host); /* [0, 10) */
  gm_tlsf_block *b = gm_tlsf_alloc(&t, 50 * U, U, &no_host); /* [10, 60) */
  gm_tlsf_block *c = gm_tlsf_alloc(&t, 10 * U, U, &no_host); /* [60, 70) */
  assert_non_null(c);
  assert_int_equal(c->offset, 60 * U);
  uint64_t b_off = b->offset;
  gm_tlsf_free(&t, b);
  /* Refusals: over an allocated block, across a block boundary, misaligned,
   * empty, outside every region. */
  assert_false(gm_tlsf_remove_range(&t, 0, U));
  assert_false(gm_tlsf_remove_range(&t, 55 * U, 10 * U));
  assert_false(gm_tlsf_remove_range(&t, 20 * U + 1, U));
  assert_false(gm_tlsf_remove_range(&t, 20 * U, 0));
  assert_false(gm_tlsf_remove_range(&t, 500 * U, U));
  assert_int_equal(t.bytes_total, 100 * U);
  assert_int_equal(t.nregions, 1);
  assert_heap_valid(&t);
  /* A hole in the middle of the free block [10, 60): [20, 30). */
  assert_true(gm_tlsf_remove_range(&t, 20 * U, 10 * U));
  assert_heap_valid(&t);
  assert_int_equal(t.nregions, 2);
  assert_int_equal(t.bytes_total, 90 * U);
  assert_int_equal(t.blocks_free, 3); /* [10, 20), [30, 60), [70, 100) */
  assert_int_equal(gm_tlsf_classify(&t, 25 * U), GM_TLSF_OUTSIDE);
  assert_int_equal(gm_tlsf_classify(&t, 15 * U), GM_TLSF_FREE);
  assert_int_equal(gm_tlsf_classify(&t, 30 * U), GM_TLSF_FREE);
  assert_int_equal(tail_free(&t, 20 * U), 10 * U);
  assert_ptr_equal(gm_tlsf_find(&t, 60 * U), c); /* c now in the second region */
  assert_int_equal(c->region, 1);
  /* A request larger than either side no longer fits. */
  assert_null(gm_tlsf_alloc(&t, 35 * U, U, &no_host));
  assert_false(no_host);
  /* The hole filled again: one region, one free block after the frees. */
  assert_true(gm_tlsf_add(&t, 20 * U, 10 * U));
  assert_heap_valid(&t);
  assert_int_equal(t.nregions, 1);
  assert_int_equal(t.bytes_total, 100 * U);
  gm_tlsf_block *big = gm_tlsf_alloc(&t, 50 * U, U, &no_host);
  assert_non_null(big);
  assert_int_equal(big->offset, b_off);
  gm_tlsf_free(&t, big);
  gm_tlsf_free(&t, a);
  gm_tlsf_free(&t, c);
  assert_heap_valid(&t);
  assert_int_equal(t.blocks_free, 1);
  /* Holes at a region's start and end shrink it; a hole that is the whole
   * region removes it. */
  assert_true(gm_tlsf_remove_range(&t, 0, 5 * U));
  assert_true(gm_tlsf_remove_range(&t, 95 * U, 5 * U));
  assert_heap_valid(&t);
  assert_int_equal(t.nregions, 1);
  assert_int_equal(t.regions[0].offset, 5 * U);
  assert_int_equal(t.regions[0].size, 90 * U);
  assert_true(gm_tlsf_add(&t, 200 * U, 8 * U)); /* a second region, to be moved */
  assert_true(gm_tlsf_remove_range(&t, 5 * U, 90 * U));
  assert_heap_valid(&t);
  assert_int_equal(t.nregions, 1);
  assert_int_equal(t.regions[0].offset, 200 * U);
  assert_int_equal(t.bytes_total, 8 * U);
  assert_int_equal(t.blocks_free, 1);
  gm_tlsf_destroy(&t);
}

/* Model-based: random allocations, frees, holes cut into free blocks and
 * holes filled again, against a byte map of what each unit is (outside,
 * free, allocated). After every step the heap's checker passes and every
 * unit classifies as the model says. */
static void test_tlsf_remove_range_model(void **state) {
  (void)state;
  enum { N = 512 };
  char model[N]; /* 'o' outside, 'f' free, 'a' allocated */
  gm_tlsf t;
  gm_tlsf_init(&t);
  assert_true(gm_tlsf_add(&t, 0, N * U));
  memset(model, 'f', sizeof model);
  gm_tlsf_block *live[64] = {0};
  bool no_host = false;
  uint64_t seed = 0x9e3779b97f4a7c15u;
  unsigned cut = 0, filled = 0;
  for (int step = 0; step < 4000; step++) {
    seed ^= seed << 13; /* xorshift64 */
    seed ^= seed >> 7;
    seed ^= seed << 17;
    unsigned r = (unsigned)(seed % 4), k = (unsigned)(seed >> 8) % 32;
    uint64_t at = (seed >> 16) % N, len = 1 + (seed >> 32) % 8;
    if (r == 0 && live[k] == NULL) {
      live[k] = gm_tlsf_alloc(&t, len * U, U, &no_host);
      if (live[k] != NULL) memset(model + live[k]->offset / U, 'a', len);
    } else if (r == 1 && live[k] != NULL) {
      memset(model + live[k]->offset / U, 'f', live[k]->size / U);
      gm_tlsf_free(&t, live[k]);
      live[k] = NULL;
    } else if (r == 2) {
      bool inside = at + len <= N;
      for (uint64_t u = at; inside && u < at + len; u++)
        inside = model[u] == 'f';
      /* contiguous free units are one block: frees coalesce and a filled
       * hole joins its regions */
      assert_int_equal(gm_tlsf_remove_range(&t, at * U, len * U), inside);
      if (inside) memset(model + at, 'o', len);
      cut += inside;
    } else if (r == 3) {
      bool hole = at + len <= N;
      for (uint64_t u = at; hole && u < at + len; u++)
        hole = model[u] == 'o';
      if (hole) {
        assert_true(gm_tlsf_add(&t, at * U, len * U));
        memset(model + at, 'f', len);
        filled++;
      }
    }
    assert_heap_valid(&t);
    uint64_t total = 0;
    for (int u = 0; u < N; u++) {
      gm_tlsf_where w = gm_tlsf_classify(&t, (uint64_t)u * U);
      char want = model[u];
      if (want == 'o') assert_int_equal(w, GM_TLSF_OUTSIDE);
      if (want == 'f') assert_int_equal(w, GM_TLSF_FREE);
      if (want == 'a') assert_true(w == GM_TLSF_USED_START || w == GM_TLSF_USED_INSIDE);
      total += want != 'o';
    }
    assert_int_equal(t.bytes_total, total * U);
  }
  /* The walk did cut and fill holes, often (not only refusals). */
  print_message("%u holes cut, %u filled\n", cut, filled);
  assert_true(cut > 100);
  assert_true(filled > 100);
  gm_tlsf_destroy(&t);
}

/* gm_tlsf_free_units: the longest run of whole aligned units inside one
 * free block, against a brute-force look at every free block, over random
 * heaps; and a few cases by hand. */
typedef struct best_run {
  uint64_t unit, units, offset;
} best_run;

static void brute_run(const gm_tlsf_block *b, void *user) {
  best_run *r = user;
  if (!b->free) return;
  uint64_t first = (b->offset + r->unit - 1) / r->unit * r->unit;
  uint64_t end = (b->offset + b->size) / r->unit * r->unit;
  if (end > first && (end - first) / r->unit > r->units) r->units = (end - first) / r->unit;
}

static void test_tlsf_free_units(void **state) {
  (void)state;
  gm_tlsf t;
  gm_tlsf_init(&t);
  bool no_host = false;
  uint64_t at = 0;
  assert_int_equal(gm_tlsf_free_units(&t, 8 * U, &at), 0); /* empty heap */
  assert_true(gm_tlsf_add(&t, 0, 64 * U));
  gm_tlsf_block *a = gm_tlsf_alloc(&t, 3 * U, U, &no_host);  /* [0, 3) */
  gm_tlsf_block *b = gm_tlsf_alloc(&t, 30 * U, U, &no_host); /* [3, 33) */
  gm_tlsf_block *c = gm_tlsf_alloc(&t, 20 * U, U, &no_host); /* [33, 53) */
  assert_non_null(c);
  /* Free: [53, 64), which holds one whole 8-unit run at 56. */
  assert_int_equal(gm_tlsf_free_units(&t, 8 * U, &at), 8 * U);
  assert_int_equal(at, 56 * U);
  assert_int_equal(gm_tlsf_free_units(&t, 16 * U, &at), 0); /* none of 16 */
  gm_tlsf_free(&t, b); /* [3, 33): whole units at 8, 16 and 24 */
  assert_int_equal(gm_tlsf_free_units(&t, 8 * U, &at), 24 * U);
  assert_int_equal(at, 8 * U);
  assert_int_equal(gm_tlsf_free_units(&t, 3, &at), 0); /* not a multiple of 256 */
  gm_tlsf_free(&t, a);
  gm_tlsf_free(&t, c);
  assert_int_equal(gm_tlsf_free_units(&t, 8 * U, &at), 64 * U);
  assert_int_equal(at, 0);
  gm_tlsf_destroy(&t);
  /* Random heaps against brute force. */
  uint64_t seed = 0x2545f4914f6cdd1du;
  unsigned nonzero = 0;
  for (int round = 0; round < 200; round++) {
    gm_tlsf_init(&t);
    assert_true(gm_tlsf_add(&t, 0, 4096 * U));
    gm_tlsf_block *live[128];
    size_t n = 0;
    for (int i = 0; i < 300; i++) {
      seed ^= seed << 13;
      seed ^= seed >> 7;
      seed ^= seed << 17;
      if (seed % 3 != 0 || n == 0) {
        gm_tlsf_block *x = gm_tlsf_alloc(&t, (1 + (seed >> 8) % 64) * U, U, &no_host);
        if (x != NULL && n < 128)
          live[n++] = x;
        else if (x != NULL)
          gm_tlsf_free(&t, x);
      } else {
        size_t k = (size_t)(seed >> 20) % n;
        gm_tlsf_free(&t, live[k]);
        live[k] = live[--n];
      }
    }
    for (uint64_t unit = U; unit <= 64 * U; unit *= 4) {
      best_run r = {unit, 0, 0};
      gm_tlsf_walk(&t, brute_run, &r);
      uint64_t got = gm_tlsf_free_units(&t, unit, &at);
      assert_int_equal(got, r.units * unit);
      nonzero += got != 0;
      if (got != 0) { /* the run lies in free memory, aligned */
        assert_int_equal(at % unit, 0);
        assert_int_equal(gm_tlsf_classify(&t, at), GM_TLSF_FREE);
        assert_int_equal(gm_tlsf_classify(&t, at + got - U), GM_TLSF_FREE);
      }
    }
    gm_tlsf_destroy(&t);
  }
  assert_true(nonzero > 100);
}

/* Requests of GM_TLSF_BEST_FIT_MIN or more take the smallest free block
 * that fits; smaller ones keep good fit (the rounded-up class, O(1)), which
 * may take a larger block. Layout: free blocks separated by allocated ones. */
static void test_tlsf_best_fit(void **state) {
  (void)state;
  const uint64_t K = 1024, M = 1024 * K;
  /* free sizes, in offset order: small ones, then large ones */
  const uint64_t sizes[] = {700 * K, 512 * K + U, 1400 * K, M + U, 1536 * K + U, 1536 * K};
  const size_t n = sizeof sizes / sizeof sizes[0];
  gm_tlsf t;
  gm_tlsf_init(&t);
  bool no_host = false;
  char why[256];
  assert_true(gm_tlsf_add(&t, 0, 64 * M));
  gm_tlsf_block *hole[6], *wall[6];
  uint64_t at[6];
  for (size_t i = 0; i < n; i++) {
    hole[i] = gm_tlsf_alloc(&t, sizes[i], U, &no_host);
    wall[i] = gm_tlsf_alloc(&t, U, U, &no_host);
    assert_non_null(hole[i]);
    assert_non_null(wall[i]);
    at[i] = hole[i]->offset;
  }
  gm_tlsf_block *rest = gm_tlsf_alloc(&t, 64 * M - at[n - 1] - sizes[n - 1] - U, U, &no_host);
  assert_non_null(rest); /* nothing else is free */
  for (size_t i = 0; i < n; i++)
    gm_tlsf_free(&t, hole[i]);
  assert_int_equal(t.blocks_free, n);
  /* Large: exactly the smallest that fits, whatever the order. */
  gm_tlsf_block *b = gm_tlsf_alloc(&t, M + U, U, &no_host);
  assert_non_null(b);
  assert_int_equal(b->offset, at[3]); /* not the 1400K block before it */
  b = gm_tlsf_alloc(&t, 1300 * K, U, &no_host);
  assert_int_equal(b->offset, at[2]); /* 1400K, not either 1.5M */
  b = gm_tlsf_alloc(&t, 1500 * K, U, &no_host);
  assert_int_equal(b->offset, at[5]); /* 1536K, not the one 256 bytes larger */
  b = gm_tlsf_alloc(&t, 1536 * K, U, &no_host);
  assert_int_equal(b->offset, at[4]);
  assert_null(gm_tlsf_alloc(&t, M, U, &no_host)); /* only small blocks remain free */
  assert_false(no_host);
  /* Alignment counts: a block that would fit by size but not aligned is
   * passed over. */
  assert_true(gm_tlsf_add(&t, 80 * M + U, 2 * M));
  assert_true(gm_tlsf_add(&t, 96 * M, 2 * M + 4 * U));
  b = gm_tlsf_alloc(&t, 2 * M, M, &no_host);
  assert_int_equal(b->offset, 96 * M);
  /* Small: good fit rounds 512K + 256 up past the class of the exact
   * block and takes the 700K one. */
  b = gm_tlsf_alloc(&t, 512 * K + U, U, &no_host);
  assert_int_equal(b->offset, at[0]);
  assert_true(gm_tlsf_check(&t, why, sizeof why));
  gm_tlsf_destroy(&t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tlsf_heap),
      cmocka_unit_test(test_tlsf_remove_range),
      cmocka_unit_test(test_tlsf_remove_range_model),
      cmocka_unit_test(test_tlsf_free_units),
      cmocka_unit_test(test_tlsf_best_fit),
  };
  return cmocka_run_group_tests_name("tlsf", tests, NULL, NULL);
}
