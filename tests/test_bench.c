/* test_bench.c: gpumem-bench's parts that figures depend on: the workload
 * plans (seeded determinism, every alloc freed, the cap honoured, sizes in
 * range), the trace reader (good and malformed lines, .gz, the real trace in
 * ../shared), the statistics, running a plan through an allocator, and trace
 * recording: a run recorded with GPUMEM_TRACE replays with the same
 * live-bytes curve. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "bench.h"
#include "helpers.h"

#ifndef GPUMEM_TEST_DATA
#error "GPUMEM_TEST_DATA must name tests/data"
#endif

static gb_random_config config(uint64_t seed, gb_dist dist) {
  return (gb_random_config){seed, 5000, dist, 1 << 20, 0.6, 8 << 20};
}

/* Every slot allocated once and freed once, sizes matching. */
static void check_balanced(const gb_plan *p) {
  size_t *alloc_size = calloc(p->slots + 1, sizeof *alloc_size);
  unsigned char *state = calloc(p->slots + 1, 1); /* 0 never, 1 live, 2 freed */
  for (size_t i = 0; i < p->count; i++) {
    const gb_op *op = &p->ops[i];
    assert_true(op->slot < p->slots);
    if (op->kind == GB_ALLOC) {
      assert_int_equal(state[op->slot], 0);
      state[op->slot] = 1;
      alloc_size[op->slot] = op->size;
    } else {
      assert_int_equal(state[op->slot], 1);
      assert_int_equal(alloc_size[op->slot], op->size);
      state[op->slot] = 2;
    }
  }
  for (uint32_t s = 0; s < p->slots; s++)
    assert_int_equal(state[s], 2);
  size_t *curve = malloc(p->count * sizeof *curve);
  gb_plan_live_curve(p, curve);
  assert_int_equal(curve[p->count - 1], 0);
  free(curve);
  free(alloc_size);
  free(state);
}

static void test_pairs_plan(void **state) {
  (void)state;
  gb_plan p = {0};
  assert_true(gb_plan_pairs(&p, 4096, 10));
  assert_int_equal(p.count, 20);
  assert_int_equal(p.streams, 1);
  assert_int_equal(p.ops[0].kind, GB_ALLOC);
  assert_int_equal(p.ops[1].kind, GB_FREE);
  assert_int_equal(gb_plan_live_curve(&p, NULL), 4096);
  gb_plan_free(&p);
  assert_null(p.ops);
}

/* Plans are equal when their ops are, field by field: gb_op has padding,
 * whose bytes an optimised build leaves as they happen to be, so a memcmp of
 * the arrays compares garbage. */
static bool plans_equal(const gb_plan *x, const gb_plan *y) {
  if (x->count != y->count || x->slots != y->slots || x->streams != y->streams) return false;
  for (size_t i = 0; i < x->count; i++) {
    const gb_op *p = &x->ops[i], *q = &y->ops[i];
    if (p->kind != q->kind || p->stream != q->stream || p->slot != q->slot || p->size != q->size)
      return false;
  }
  return true;
}

static void test_random_is_seeded(void **state) {
  (void)state;
  gb_random_config c = config(7, GB_UNIFORM);
  gb_plan a = {0}, b = {0}, d = {0};
  assert_true(gb_plan_random(&a, &c));
  assert_true(gb_plan_random(&b, &c));
  assert_int_equal(a.count, b.count);
  assert_true(plans_equal(&a, &b));
  c.seed = 8;
  assert_true(gb_plan_random(&d, &c));
  assert_false(plans_equal(&a, &d));
  gb_plan_free(&a);
  gb_plan_free(&b);
  gb_plan_free(&d);
}

static void test_random_balance_cap_and_sizes(void **state) {
  (void)state;
  for (int dist = GB_UNIFORM; dist <= GB_GEOMETRIC; dist++) {
    gb_random_config c = config(42, (gb_dist)dist);
    gb_plan p = {0};
    assert_true(gb_plan_random(&p, &c));
    check_balanced(&p);
    assert_true(gb_plan_live_curve(&p, NULL) <= c.cap);
    size_t allocs = 0, smallest = SIZE_MAX, largest = 0;
    for (size_t i = 0; i < p.count; i++) {
      if (p.ops[i].kind != GB_ALLOC) continue;
      allocs++;
      if (p.ops[i].size < smallest) smallest = p.ops[i].size;
      if (p.ops[i].size > largest) largest = p.ops[i].size;
    }
    assert_true(smallest >= 1 && largest <= c.max_size);
    assert_true(largest > c.max_size / 4); /* the range is really used */
    /* About p_alloc of the steps allocate (the cap turns some into frees). */
    assert_true(allocs > c.steps / 3 && allocs <= c.steps);
    gb_plan_free(&p);
  }
  /* p = 1: allocate until the cap, then free; still balanced and capped. */
  gb_random_config c = config(1, GB_UNIFORM);
  c.p_alloc = 1.0;
  gb_plan p = {0};
  assert_true(gb_plan_random(&p, &c));
  check_balanced(&p);
  assert_true(gb_plan_live_curve(&p, NULL) <= c.cap);
  gb_plan_free(&p);
  c.p_alloc = 1.5;
  assert_false(gb_plan_random(&p, &c));
  c.p_alloc = 0.5;
  c.cap = 0;
  assert_false(gb_plan_random(&p, &c));
  gb_plan_free(&p);
}

static void test_summary(void **state) {
  (void)state;
  double odd[] = {5, 1, 3};
  gb_summary s = gb_summarize(odd, 3);
  assert_true(s.median == 3 && s.min == 1 && s.max == 5);
  double even[] = {4, 1, 3, 2};
  s = gb_summarize(even, 4);
  assert_true(s.median == 2.5 && s.min == 1 && s.max == 4);
  s = gb_summarize(NULL, 0);
  assert_true(s.median == 0 && s.min == 0 && s.max == 0);
}

static void test_trace_good(void **state) {
  (void)state;
  gb_plan p = {0};
  char why[256] = "";
  assert_true(gb_plan_read_trace(&p, GPUMEM_TEST_DATA "/small_trace.csv", why, sizeof why));
  /* a1, a2 (stream 1, CRLF line), f1, a3, then a2 and a3 freed at the end */
  assert_int_equal(p.count, 6);
  assert_int_equal(p.streams, 2);
  assert_int_equal(p.slots, 3);
  assert_int_equal(p.ops[1].stream, 1);
  assert_int_equal(p.ops[1].size, 8192);
  assert_int_equal(p.ops[2].kind, GB_FREE);
  assert_int_equal(p.ops[2].slot, p.ops[0].slot);
  check_balanced(&p);
  assert_int_equal(gb_plan_live_curve(&p, NULL), 4096 + 8192);
  gb_plan_free(&p);
}

static void expect_bad(const char *text, const char *message) {
  FILE *f = fmemopen((void *)text, strlen(text), "r");
  gb_plan p = {0};
  char why[256] = "";
  assert_false(gb_plan_parse_trace(&p, f, "t.csv", why, sizeof why));
  fclose(f);
  gb_plan_free(&p);
  if (strstr(why, message) == NULL) fail_msg("'%s' should say '%s', says '%s'", text, message, why);
}

static void test_trace_bad_lines(void **state) {
  (void)state;
  expect_bad("op,id,size,stream\na,1,10\n",
             "t.csv:2: expected 4 fields: op,id,size,stream: 'a,1,10'");
  expect_bad("a,1,10,0,9\n", "t.csv:1: expected 4 fields");
  expect_bad("x,1,10,0\n", "t.csv:1: op must be a (alloc) or f (free): 'x,1,10,0'");
  expect_bad("a,one,10,0\n", "id is not a number");
  expect_bad("a,1,99999999999999999999,0\n", "size is not a number or overflows");
  expect_bad("a,1,-5,0\n", "size is not a number or overflows");
  expect_bad("a,1,0,0\n", "size is 0");
  expect_bad("a,1,10,5000\n", "stream is not a number below 1024");
  expect_bad("a,1,10,0\na,1,10,0\n", "t.csv:2: id allocated again while live");
  expect_bad("a,1,10,0\nf,2,10,0\n", "t.csv:2: free of an id that is not live: 'f,2,10,0'");
  expect_bad("a,1,10,0\nf,1,11,0\n", "free size differs from the allocation's");
  expect_bad("op,id,size,stream\n", "t.csv: no operations");
  gb_plan p = {0};
  char why[256];
  assert_false(gb_plan_read_trace(&p, GPUMEM_TEST_DATA "/bad_trace.csv", why, sizeof why));
  assert_non_null(strstr(why, "bad_trace.csv:3: size is not a number or overflows: 'a,2,oops,0'"));
  assert_false(gb_plan_read_trace(&p, "/nonexistent/trace.csv", why, sizeof why));
  assert_non_null(strstr(why, "/nonexistent/trace.csv: No such file or directory"));
  assert_false(gb_plan_read_trace(&p, "/nonexistent/trace.csv.gz", why, sizeof why));
  gb_plan_free(&p);
}

static void test_trace_gz_and_real_trace(void **state) {
  (void)state;
  char gz[] = "/tmp/gpumem-trace-XXXXXX.csv.gz";
  int fd = mkstemps(gz, 7);
  assert_true(fd >= 0);
  close(fd);
  char cmd[256];
  snprintf(cmd, sizeof cmd, "gzip -c %s/small_trace.csv > %s", GPUMEM_TEST_DATA, gz);
  assert_int_equal(system(cmd), 0);
  gb_plan p = {0};
  char why[256] = "";
  assert_true(gb_plan_read_trace(&p, gz, why, sizeof why));
  assert_int_equal(p.count, 6);
  gb_plan_free(&p);
  /* Not gzip data: the reader says so instead of replaying nothing. */
  snprintf(cmd, sizeof cmd, "cp %s/small_trace.csv %s", GPUMEM_TEST_DATA, gz);
  assert_int_equal(system(cmd), 0);
  assert_false(gb_plan_read_trace(&p, gz, why, sizeof why));
  gb_plan_free(&p);
  unlink(gz);

  const char *real = GPUMEM_TEST_DATA "/../../../shared/traces/resnet50_train.csv.gz";
  if (access(real, R_OK) != 0) skip(); /* ../shared is beside the checkout in CI */
  assert_true(gb_plan_read_trace(&p, real, why, sizeof why));
  assert_int_equal(p.count, 9200); /* 4600 allocs, 4597 frees, 3 left live */
  check_balanced(&p);
  assert_true(gb_plan_live_curve(&p, NULL) > ((size_t)1 << 30));
  gb_plan_free(&p);
}

static void test_run_plan_through_an_allocator(void **state) {
  (void)state;
  gpumem_allocator a = GPUMEM_ALLOCATOR_INIT;
  assert_gpumem_ok(gpumem_allocator_create("cuda-pool", 0, &a));
  gb_random_config c = config(3, GB_LOGNORMAL);
  gb_plan p = {0};
  assert_true(gb_plan_random(&p, &c));
  gpumem_stream_t s = NULL;
  assert_gpumem_ok(gpumem_stream_create(0, &s));
  char err[200] = "";
  double t = gb_run_plan(&a, &p, &s, 0, true, err, sizeof err);
  assert_true(t > 0);
  gpumem_stats st = GPUMEM_STATS_INIT;
  assert_gpumem_ok(a.stats(a.ctx, &st));
  size_t allocs = 0;
  for (size_t i = 0; i < p.count; i++)
    allocs += p.ops[i].kind == GB_ALLOC;
  assert_int_equal(st.allocs, allocs);
  assert_int_equal(st.frees, allocs);
  assert_int_equal(st.bytes_in_use, 0);
  assert_int_equal(st.peak_bytes_in_use, gb_plan_live_curve(&p, NULL));
  assert_true(st.peak_bytes_reserved >= st.peak_bytes_in_use);
  assert_gpumem_ok(gpumem_stream_destroy(s));
  gpumem_allocator_destroy(&a);
  gb_plan_free(&p);
}

static void test_recorded_trace_replays_the_same_curve(void **state) {
  (void)state;
  if (!gm_test_on_host()) skip();
  char path[] = "/tmp/gpumem-recorded-XXXXXX.csv";
  int fd = mkstemps(path, 4);
  assert_true(fd >= 0);
  close(fd);
  assert_gpumem_ok(gpumem_finalize());
  setenv("GPUMEM_TRACE", path, 1);
  assert_gpumem_ok(gpumem_init(NULL));
  unsetenv("GPUMEM_TRACE");
  gpumem_allocator a = GPUMEM_ALLOCATOR_INIT;
  assert_gpumem_ok(gpumem_allocator_create("cuda-async", 0, &a));
  gb_random_config c = config(11, GB_GEOMETRIC);
  gb_plan original = {0}, replayed = {0};
  assert_true(gb_plan_random(&original, &c));
  gpumem_stream_t s[2] = {NULL, NULL};
  assert_gpumem_ok(gpumem_stream_create(0, &s[1]));
  for (size_t i = 0; i < original.count; i++)
    original.ops[i].stream = (uint16_t)(i % 2);
  original.streams = 2;
  char err[200] = "";
  assert_true(gb_run_plan(&a, &original, s, 0, false, err, sizeof err) > 0);
  gpumem_allocator_destroy(&a);
  assert_gpumem_ok(gpumem_stream_destroy(s[1]));
  assert_gpumem_ok(gpumem_finalize()); /* closes the trace */
  char why[256] = "";
  assert_true(gb_plan_read_trace(&replayed, path, why, sizeof why));
  unlink(path);
  assert_int_equal(replayed.count, original.count);
  size_t *a1 = malloc(original.count * sizeof *a1), *a2 = malloc(original.count * sizeof *a2);
  gb_plan_live_curve(&original, a1);
  gb_plan_live_curve(&replayed, a2);
  assert_memory_equal(a1, a2, original.count * sizeof *a1);
  for (size_t i = 0; i < original.count; i++) {
    assert_int_equal(replayed.ops[i].kind, original.ops[i].kind);
    assert_int_equal(replayed.ops[i].stream, original.ops[i].stream);
  }
  free(a1);
  free(a2);
  gb_plan_free(&original);
  gb_plan_free(&replayed);
  assert_gpumem_ok(gpumem_init(NULL));
}

static void test_allocator_registry(void **state) {
  (void)state;
  gpumem_allocator_kind kinds[8];
  size_t n = gpumem_allocator_list(kinds, 8);
  assert_int_equal(n, 6);
  assert_string_equal(kinds[0].name, "cuda-malloc");
  assert_string_equal(kinds[1].name, "cuda-async");
  assert_string_equal(kinds[2].name, "cuda-pool");
  assert_string_equal(kinds[3].name, "gpumem-pool");
  assert_string_equal(kinds[4].name, "gpumem-pool-nocache");
  assert_string_equal(kinds[5].name, "gpumem-arena");
  assert_int_equal(gpumem_allocator_list(NULL, 0), 6);
  gpumem_allocator a = GPUMEM_ALLOCATOR_INIT;
  assert_gpumem_status(gpumem_allocator_create("jemalloc", 0, &a), GPUMEM_ERR_NOT_FOUND);
  assert_last_error_contains(
      "no allocator is called 'jemalloc' (there are: cuda-malloc, "
      "cuda-async, cuda-pool, gpumem-pool, gpumem-pool-nocache, gpumem-arena)");
  assert_gpumem_status(gpumem_allocator_create("cuda-pool", 99, &a), GPUMEM_ERR_INVALID_DEVICE);
  assert_gpumem_status(gpumem_allocator_create("cuda-malloc", -1, &a), GPUMEM_ERR_INVALID_DEVICE);
  assert_gpumem_status(gpumem_allocator_create(NULL, 0, &a), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_allocator_create("cuda-pool", 0, NULL), GPUMEM_ERR_INVALID_ARGUMENT);
  for (size_t k = 0; k < n; k++) {
    assert_gpumem_ok(gpumem_allocator_create(kinds[k].name, 0, &a));
    assert_string_equal(a.name, kinds[k].name);
    /* Only the arena makes memory reusable at free. */
    assert_int_equal(a.flags & GPUMEM_ALLOCATOR_STREAM_ORDERED,
                     strcmp(a.name, "gpumem-arena") == 0 ? 0 : GPUMEM_ALLOCATOR_STREAM_ORDERED);
    void *p = NULL;
    assert_gpumem_status(a.alloc(a.ctx, 0, NULL, &p), GPUMEM_ERR_INVALID_ARGUMENT);
    assert_gpumem_status(a.alloc(a.ctx, 16, NULL, NULL), GPUMEM_ERR_INVALID_ARGUMENT);
    assert_gpumem_status(a.free(a.ctx, NULL, 16, NULL), GPUMEM_ERR_INVALID_ARGUMENT);
    int local = 0;
    gpumem_status st = a.free(a.ctx, &local, 4, NULL); /* a foreign pointer */
    assert_true(st == GPUMEM_ERR_INVALID_POINTER || st == GPUMEM_ERR_INVALID_ARGUMENT);
    assert_gpumem_ok(a.alloc(a.ctx, 3 << 20, NULL, &p));
    assert_gpumem_ok(gpumem_memset(p, 7, 3 << 20, NULL));
    gpumem_stats s = GPUMEM_STATS_INIT;
    assert_gpumem_ok(a.stats(a.ctx, &s));
    assert_int_equal(s.allocs, 1);
    assert_int_equal(s.failed_allocs, 2);
    assert_int_equal(s.bytes_in_use, 3 << 20);
    assert_true(s.bytes_reserved >= 3 << 20);
    assert_gpumem_ok(a.free(a.ctx, p, 3 << 20, NULL));
    assert_gpumem_ok(a.trim(a.ctx));
    assert_gpumem_ok(gpumem_stream_synchronize(NULL));
    assert_gpumem_ok(a.stats(a.ctx, &s));
    assert_int_equal(s.frees, 1);
    assert_int_equal(s.bytes_in_use, 0);
    assert_int_equal(s.peak_bytes_in_use, 3 << 20);
    gpumem_allocator_destroy(&a);
    assert_null(a.ctx);
  }
  gpumem_allocator_destroy(NULL);
}

int main(int argc, char **argv) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pairs_plan),
      cmocka_unit_test(test_random_is_seeded),
      cmocka_unit_test(test_random_balance_cap_and_sizes),
      cmocka_unit_test(test_summary),
      cmocka_unit_test(test_trace_good),
      cmocka_unit_test(test_trace_bad_lines),
      cmocka_unit_test(test_trace_gz_and_real_trace),
      cmocka_unit_test(test_allocator_registry),
      cmocka_unit_test(test_run_plan_through_an_allocator),
      cmocka_unit_test(test_recorded_trace_replays_the_same_curve),
  };
  return gm_test_run("bench", tests, GM_ARRAY_SIZE(tests), argc, argv, NULL);
}
