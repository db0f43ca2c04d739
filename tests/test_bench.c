/* test_bench.c: gpumem-bench's parts that figures depend on: the workload
 * plans (seeded determinism, every alloc freed, the cap honoured, sizes in
 * range), the trace reader (good and malformed lines, .gz, truncated and
 * corrupt .gz, the real trace in ../shared), the statistics, running a plan
 * through an allocator, trace recording (a run recorded with GPUMEM_TRACE
 * replays with the same live-bytes curve), and the program around them: the
 * command line, the workload table, the host yardsticks, the report (rows
 * written as they finish, output paths checked first) and the JSON writer
 * it shares with gpumem-info. The program end to end is tested by the
 * bench.* ctests (bench/CMakeLists.txt). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "bench.h"
#include "harness.h"
#include "helpers.h"
#include "json.h"

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

static void expect_bad_bytes(const char *bytes, size_t len, const char *message) {
  FILE *f = fmemopen((void *)bytes, len, "r");
  gb_plan p = {0};
  char why[256] = "";
  assert_false(gb_plan_parse_trace(&p, f, "t.csv", why, sizeof why));
  fclose(f);
  gb_plan_free(&p);
  if (strstr(why, message) == NULL) fail_msg("should say '%s', says '%s'", message, why);
}

/* Empty fields and NUL bytes are refused with the line number: strtok once
 * read "a,,1,,256,,0" as the four fields a,1,256,0, and a NUL ended the line
 * early ("a,1,10,0\0garbage" read as "a,1,10,0"). Through zlib as well. */
static void test_trace_empty_fields_and_nuls_refused(void **state) {
  (void)state;
  expect_bad("a,1,10,0\na,,1,,256,,0\n", "t.csv:2: a field is empty: 'a,,1,,256,,0'");
  expect_bad("a,1,10,\n", "t.csv:1: a field is empty");
  expect_bad(",a,1,10,0\n", "t.csv:1: a field is empty");
  static const char nul[] = "a,1,10,0\na,2,10,0\0garbage\n";
  expect_bad_bytes(nul, sizeof nul - 1, "t.csv:2: the line holds a NUL byte");
  char gz[] = "/tmp/gpumem-trace-XXXXXX.csv.gz";
  int fd = mkstemps(gz, 7);
  assert_true(fd >= 0);
  close(fd);
  char cmd[256];
  snprintf(cmd, sizeof cmd, "printf 'a,1,10,0\\na,2,10,0\\000x\\n' | gzip -c > %s", gz);
  assert_int_equal(system(cmd), 0);
  gb_plan p = {0};
  char why[256] = "";
  assert_false(gb_plan_read_trace(&p, gz, why, sizeof why));
  gb_plan_free(&p);
  unlink(gz);
  if (strstr(why, ":2: the line holds a NUL byte") == NULL) fail_msg("gzip: says '%s'", why);
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
  assert_gpumem_ok(gpumem_allocator_destroy(&a));
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
  assert_gpumem_ok(gpumem_allocator_destroy(&a));
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
  assert_int_equal(n, 7);
  assert_string_equal(kinds[0].name, "cuda-malloc");
  assert_string_equal(kinds[1].name, "cuda-async");
  assert_string_equal(kinds[2].name, "cuda-pool");
  assert_string_equal(kinds[3].name, "gpumem-pool");
  assert_string_equal(kinds[4].name, "gpumem-pool-nocache");
  assert_string_equal(kinds[5].name, "gpumem-arena");
  assert_string_equal(kinds[6].name, "gpumem-arena-lean");
  assert_int_equal(gpumem_allocator_list(NULL, 0), 7);
  gpumem_allocator a = GPUMEM_ALLOCATOR_INIT;
  assert_gpumem_status(gpumem_allocator_create("jemalloc", 0, &a), GPUMEM_ERR_NOT_FOUND);
  assert_last_error_contains(
      "no allocator is called 'jemalloc' (there are: cuda-malloc, "
      "cuda-async, cuda-pool, gpumem-pool, gpumem-pool-nocache, gpumem-arena, "
      "gpumem-arena-lean)");
  assert_gpumem_status(gpumem_allocator_create("cuda-pool", 99, &a), GPUMEM_ERR_INVALID_DEVICE);
  assert_gpumem_status(gpumem_allocator_create("cuda-malloc", -1, &a), GPUMEM_ERR_INVALID_DEVICE);
  assert_gpumem_status(gpumem_allocator_create(NULL, 0, &a), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_allocator_create("cuda-pool", 0, NULL), GPUMEM_ERR_INVALID_ARGUMENT);
  for (size_t k = 0; k < n; k++) {
    assert_gpumem_ok(gpumem_allocator_create(kinds[k].name, 0, &a));
    assert_string_equal(a.name, kinds[k].name);
    /* Only the arena makes memory reusable at free. */
    assert_int_equal(a.flags & GPUMEM_ALLOCATOR_STREAM_ORDERED,
                     strncmp(a.name, "gpumem-arena", 12) == 0 ? 0
                                                              : GPUMEM_ALLOCATOR_STREAM_ORDERED);
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
    /* The arena reuses (and its trim unmaps) memory at free: the memset
     * must have run first, as its contract says (allocator.h). */
    if (!(a.flags & GPUMEM_ALLOCATOR_STREAM_ORDERED))
      assert_gpumem_ok(gpumem_stream_synchronize(NULL));
    assert_gpumem_ok(a.free(a.ctx, p, 3 << 20, NULL));
    assert_gpumem_ok(a.trim(a.ctx));
    assert_gpumem_ok(gpumem_stream_synchronize(NULL));
    assert_gpumem_ok(a.stats(a.ctx, &s));
    assert_int_equal(s.frees, 1);
    assert_int_equal(s.bytes_in_use, 0);
    assert_int_equal(s.peak_bytes_in_use, 3 << 20);
    assert_gpumem_ok(gpumem_allocator_destroy(&a));
    assert_null(a.ctx);
  }
  assert_gpumem_ok(gpumem_allocator_destroy(NULL));
}

/* ---- gzip traces through zlib ---- */

/* Write `text` gzip-compressed to `path`; returns the file's size. */
static long write_gz(const char *path, const char *text) {
  gzFile f = gzopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(gzwrite(f, text, (unsigned)strlen(text)), (int)strlen(text));
  assert_int_equal(gzclose(f), Z_OK);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  return (long)st.st_size;
}

static void flip_byte(const char *path, long at) {
  FILE *f = fopen(path, "r+b");
  assert_non_null(f);
  assert_int_equal(fseek(f, at, SEEK_SET), 0);
  int c = fgetc(f);
  assert_true(c != EOF);
  assert_int_equal(fseek(f, at, SEEK_SET), 0);
  fputc(c ^ 0x5a, f);
  assert_int_equal(fclose(f), 0);
}

static void expect_trace_error(const char *path, const char *message) {
  gb_plan p = {0};
  char why[512] = "";
  bool ok = gb_plan_read_trace(&p, path, why, sizeof why);
  gb_plan_free(&p);
  if (ok) fail_msg("%s: read, should fail with '%s'", path, message);
  if (strstr(why, path) == NULL || strstr(why, message) == NULL)
    fail_msg("%s: should say '%s' and name the file, says '%s'", path, message, why);
}

static void test_trace_gz_truncated_and_corrupt(void **state) {
  (void)state;
  enum { PAIRS = 3000 };
  size_t cap = 64 * 2 * PAIRS + 32, used = 0;
  char *text = malloc(cap);
  assert_non_null(text);
  used += (size_t)snprintf(text, cap, "op,id,size,stream\n");
  for (int i = 0; i < PAIRS; i++) /* varied sizes: the deflate stream has real content */
    used += (size_t)snprintf(text + used, cap - used, "a,%d,%d,0\nf,%d,%d,0\n", i,
                             (i * 7919) % 100000 + 1, i, (i * 7919) % 100000 + 1);
  char gz[] = "/tmp/gpumem-trace-XXXXXX.csv.gz";
  int fd = mkstemps(gz, 7);
  assert_true(fd >= 0);
  close(fd);
  long size = write_gz(gz, text);
  gb_plan p = {0};
  char why[512] = "";
  assert_true(gb_plan_read_trace(&p, gz, why, sizeof why));
  assert_int_equal(p.count, 2 * PAIRS);
  gb_plan_free(&p);
  /* Cut in the middle of the deflate data, then just before the trailer:
   * zlib finds the end missing (gzip -dc's subprocess said only "failed"). */
  assert_int_equal(truncate(gz, size / 2), 0);
  expect_trace_error(gz, "the gzip file is truncated (zlib: unexpected end of file)");
  write_gz(gz, text);
  assert_int_equal(truncate(gz, size - 4), 0);
  expect_trace_error(gz, "the gzip file is truncated");
  /* The CRC in the trailer damaged: every line parses, the check fails. */
  write_gz(gz, text);
  flip_byte(gz, size - 8);
  expect_trace_error(gz, "the gzip data is corrupt (zlib: incorrect data check)");
  /* A byte in the middle of the compressed data: whatever text it inflates
   * to, zlib's verdict is what is reported. */
  write_gz(gz, text);
  flip_byte(gz, size / 2);
  expect_trace_error(gz, "the gzip data is corrupt");
  /* Plain text under a .gz name. */
  FILE *f = fopen(gz, "w");
  assert_non_null(f);
  fputs("op,id,size,stream\na,1,10,0\n", f);
  fclose(f);
  expect_trace_error(gz, "not gzip data, though the name ends in .gz");
  /* A .csv name holding gzip data is read (zlib reads either). */
  char csv[] = "/tmp/gpumem-trace-XXXXXX.csv";
  fd = mkstemps(csv, 4);
  assert_true(fd >= 0);
  close(fd);
  write_gz(csv, text);
  assert_true(gb_plan_read_trace(&p, csv, why, sizeof why));
  assert_int_equal(p.count, 2 * PAIRS);
  gb_plan_free(&p);
  unlink(csv);
  unlink(gz);
  free(text);
}

/* ---- the JSON writer shared with gpumem-info ---- */

static void test_json_writer(void **state) {
  (void)state;
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  gm_json j;
  gm_json_start(&j, f);
  gm_json_object(&j, NULL);
  gm_json_string(&j, "s", "q\"b\\s\nt\tc\x01 \xc3\xa9");
  gm_json_array(&j, "a");
  gm_json_int(&j, NULL, -3);
  gm_json_uint(&j, NULL, 18446744073709551615ULL);
  gm_json_number(&j, NULL, 1.25, 2);
  gm_json_number(&j, NULL, NAN, 1);
  gm_json_number(&j, NULL, INFINITY, 1);
  gm_json_bool(&j, NULL, true);
  gm_json_null(&j, NULL);
  gm_json_string(&j, NULL, NULL);
  gm_json_end(&j);
  gm_json_object(&j, "empty");
  gm_json_end(&j);
  gm_json_end(&j);
  assert_true(gm_json_finish(&j));
  fclose(f);
  assert_string_equal(buf, "{\"s\":\"q\\\"b\\\\s\\nt\\tc\\u0001 \xc3\xa9\",\"a\":[-3,"
                           "18446744073709551615,1.25,null,null,true,null,null],\"empty\":{}}\n");
  free(buf);
  /* Misuse is caught, not written: a key in an array, no key in an object,
   * a container left open, two values at the top, too deep a nesting. */
  for (int k = 0; k < 5; k++) {
    f = open_memstream(&buf, &len);
    gm_json_start(&j, f);
    if (k == 0) {
      gm_json_array(&j, NULL);
      gm_json_int(&j, "key", 1);
      gm_json_end(&j);
    } else if (k == 1) {
      gm_json_object(&j, NULL);
      gm_json_int(&j, NULL, 1);
      gm_json_end(&j);
    } else if (k == 2) {
      gm_json_object(&j, NULL);
    } else if (k == 3) {
      gm_json_int(&j, NULL, 1);
      gm_json_int(&j, NULL, 2);
    } else {
      for (int d = 0; d <= GM_JSON_MAX_DEPTH; d++)
        gm_json_array(&j, NULL);
    }
    assert_false(gm_json_finish(&j));
    fclose(f);
    free(buf);
  }
}

/* ---- the command line ---- */

/* Parse a command line given as NULL-terminated arguments. */
static gb_parse_result parse(gb_options *o, ...) {
  char *argv[32] = {"gpumem-bench"};
  int argc = 1;
  va_list ap;
  va_start(ap, o);
  for (char *a; argc < 31 && (a = va_arg(ap, char *)) != NULL;)
    argv[argc++] = a;
  va_end(ap);
  return gb_parse_args(argc, argv, o);
}

static uint32_t workload_bits(const char *names) {
  char buf[128];
  snprintf(buf, sizeof buf, "%s", names);
  uint32_t bits = 0;
  char *save = NULL;
  for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    int w = gb_workload_find(t);
    assert_true(w >= 0);
    bits |= 1u << w;
  }
  return bits;
}

static bool has_allocator(const gb_options *o, const char *name) {
  for (size_t i = 0; i < o->nallocators; i++)
    if (strcmp(o->allocators[i], name) == 0) return true;
  return false;
}

static void test_command_line(void **state) {
  (void)state;
  static gb_options o;
  assert_int_equal(parse(&o, NULL), GB_PARSE_RUN);
  assert_int_equal(o.reps, 5);
  assert_int_equal(o.nsizes, 7);
  assert_int_equal(o.sizes[6], (size_t)1 << 30);
  assert_int_equal(o.workloads, workload_bits("pairs,random,threads,streams,first,grow"));
  /* Every registered allocator and the malloc yardstick run by default. */
  assert_true(has_allocator(&o, "cuda-malloc") && has_allocator(&o, "gpumem-arena"));
  assert_true(has_allocator(&o, "malloc"));
  char why[160];
  assert_int_equal(has_allocator(&o, "mimalloc"),
                   gb_host_allocator_available("mimalloc", why, sizeof why));

  /* Options and workloads in any order, --opt=value, --quick for the rest. */
  assert_int_equal(parse(&o, "--reps=7", "pairs", "--sizes", "4K,1MiB", "random", "--quick",
                         "--allocators", "gpumem-pool,malloc", NULL),
                   GB_PARSE_RUN);
  assert_int_equal(o.reps, 7);    /* given: --quick leaves it */
  assert_int_equal(o.pairs, 200); /* not given: --quick's */
  assert_int_equal(o.ops, 4000);
  assert_int_equal(o.nthreads, 3);
  assert_int_equal(o.nsizes, 2);
  assert_int_equal(o.sizes[1], (size_t)1 << 20);
  assert_int_equal(o.workloads, workload_bits("pairs,random"));
  assert_int_equal(o.nallocators, 2);
  assert_string_equal(o.allocators[1], "malloc");
  assert_true(o.given & GB_BIT(GB_OPT_REPS));
  assert_false(o.given & GB_BIT(GB_OPT_PAIRS));
  assert_int_equal(parse(&o, "--trace", "t.csv", "pairs", NULL), GB_PARSE_RUN);
  assert_int_equal(o.workloads, workload_bits("pairs,replay"));
  assert_int_equal(
      parse(&o, "--dist", "LogNormal", "--thread-workload", "random", "--p-alloc", "1", NULL),
      GB_PARSE_RUN);
  assert_int_equal(o.dist, GB_LOGNORMAL);
  assert_int_equal(o.thread_workload, 1);

  /* Bad arguments: GB_PARSE_BAD (main's exit status 2). */
  const char *bad[][3] = {
      {"--reps", "0", NULL},         {"--reps", "1001", NULL},     {"--sizes", "4K,99999999999T"},
      {"--live", "10,-1", NULL},     {"--fast", NULL, NULL},       {"--reps", NULL, NULL},
      {"defrag", NULL, NULL},        {"--allocators", "jemalloc"}, {"replay", NULL, NULL},
      {"--p-alloc", "0", NULL},      {"--dist", "zipf", NULL},     {"--threads", "1,257"},
      {"--streams", "65", NULL},     {"--batch", "1", NULL},       {"-x", NULL, NULL},
      {"--sizes", "4K,,1M,x", NULL}, {"--device", "-1", NULL},     {"--seed", "1e3", NULL},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    if (parse(&o, bad[i][0], bad[i][1], NULL) != GB_PARSE_BAD)
      fail_msg("'%s %s' should be refused", bad[i][0], bad[i][1] ? bad[i][1] : "");
  }
  assert_int_equal(parse(&o, "--list", NULL), GB_PARSE_DONE);
  assert_int_equal(parse(&o, "-h", NULL), GB_PARSE_DONE);
}

static void test_parse_size(void **state) {
  (void)state;
  const struct {
    const char *text;
    size_t value;
  } good[] = {{"4096", 4096},
              {"64K", 64 << 10},
              {"64k", 64 << 10},
              {"1MiB", 1 << 20},
              {"2g", (size_t)2 << 30},
              {"1T", (size_t)1 << 40},
              {"512B", 512},
              {"0", 0},
              {"18446744073709551615", SIZE_MAX}};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    size_t v = 1;
    if (!gb_parse_size(good[i].text, &v) || v != good[i].value)
      fail_msg("'%s' should be %zu", good[i].text, good[i].value);
  }
  const char *bad[] = {"", "K", "-1", " 4K", "4K ", "1Ki", "4X", "17179869184G", "1.5M", NULL};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    size_t v = 0;
    if (gb_parse_size(bad[i], &v)) fail_msg("'%s' should be refused", bad[i] ? bad[i] : "NULL");
  }
}

/* ---- the workload table ---- */

static void test_workload_table(void **state) {
  (void)state;
  assert_int_equal(gb_workload_count, 8);
  for (size_t w = 0; w < gb_workload_count; w++) {
    const gb_workload *wl = &gb_workloads[w];
    assert_int_equal(gb_workload_find(wl->name), (int)w);
    assert_true(strlen(wl->help) > 10);
    assert_non_null(wl->rows);
    assert_true(wl->reads != 0 && wl->reads < GB_BIT(GB_OPT_COUNT));
    /* A runner of its own, or a plan builder for the generic one. */
    assert_true(wl->run != NULL || (wl->describe != NULL && wl->plan != NULL));
    if (wl->flags & GB_WL_ONCE) assert_non_null(wl->run);
  }
  assert_int_equal(gb_workload_find("defrag"), -1);
  /* Only pairs runs the host yardsticks. */
  assert_int_equal(gb_workloads[gb_workload_find("pairs")].flags & GB_WL_HOST, GB_WL_HOST);
  assert_int_equal(gb_workloads[gb_workload_find("threads")].flags & GB_WL_HOST, 0);

  /* The rows the run will make, from the table. */
  static gb_options o;
  assert_int_equal(parse(&o, "--quick", "--sizes", "4K,1M", "--live", "0,10", "--threads", "1,2",
                         "--allocators", "cuda-pool,malloc", "pairs", "threads", "first", NULL),
                   GB_PARSE_RUN);
  gb_bench b = {.o = &o, .cap_limit = SIZE_MAX};
  /* pairs 4 rows x 2 allocators, threads 2 x 1 (not malloc), first 2 x 1 */
  assert_int_equal(gb_rows_total(&b), 4 * 2 + 2 + 2);
  assert_int_equal(gb_allocator_width(&o), (int)strlen("allocator"));
  assert_int_equal(parse(&o, "--allocators", "gpumem-pool-nocache,malloc", "grow", NULL),
                   GB_PARSE_RUN);
  assert_int_equal(gb_allocator_width(&o), (int)strlen("gpumem-pool-nocache"));
  assert_int_equal(parse(&o, "--allocators", "malloc", "pairs", "grow", NULL), GB_PARSE_RUN);
  assert_int_equal(gb_allocator_width(&o), (int)strlen("buffer-geometric"));
}

/* --export-plans writes each planned row's plans and indexes them. */
static void test_export_plans(void **state) {
  (void)state;
  char dir[] = "/tmp/gpumem-plans-XXXXXX";
  assert_non_null(mkdtemp(dir));
  static gb_options o;
  assert_int_equal(parse(&o, "--quick", "--sizes", "4K", "--live", "0,10", "--threads", "2",
                         "--pairs", "7", "pairs", "threads", "streams", "first", NULL),
                   GB_PARSE_RUN);
  gb_bench b = {.o = &o, .cap_limit = SIZE_MAX};
  assert_int_equal(gb_export_plans(&b, dir), GB_EXIT_OK);
  char path[256], line[512];
  snprintf(path, sizeof path, "%s/plans.tsv", dir);
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  const char *expect[] = {
      "workload\tparams\tthreads\tper\ttouch\tfiles\n", "pairs\tsize=4K\t1\t7\t0\tpairs-0.csv\n",
      "threads\tT=2 pairs size=64K\t2\t2000\t0\tthreads-0-0.csv,threads-0-1.csv\n",
      "streams\tstreams=4 size=1M writes\t1\t1600\t1\tstreams-0.csv\n"};
  for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
    assert_non_null(fgets(line, sizeof line, f));
    assert_string_equal(line, expect[i]); /* live=10 and first have no plan a peer can replay */
  }
  assert_null(fgets(line, sizeof line, f));
  fclose(f);
  gb_plan p = {0};
  char why[256];
  snprintf(path, sizeof path, "%s/threads-0-1.csv", dir);
  assert_true(gb_plan_read_trace(&p, path, why, sizeof why));
  assert_int_equal(p.count, 1000); /* --quick: 500 pairs per thread */
  gb_plan_free(&p);
  const char *files[] = {"plans.tsv", "pairs-0.csv", "threads-0-0.csv", "threads-0-1.csv",
                         "streams-0.csv"};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, files[i]);
    assert_int_equal(unlink(path), 0);
  }
  assert_int_equal(rmdir(dir), 0);
}

/* ---- host yardsticks ---- */

static void check_host_allocator(const char *name) {
  gpumem_allocator a;
  char why[160] = "";
  assert_true(gb_host_allocator_create(name, &a, why, sizeof why));
  assert_string_equal(a.name, name);
  void *p = NULL;
  assert_gpumem_ok(a.alloc(a.ctx, 4096, NULL, &p));
  memset(p, 0x5a, 4096); /* host memory: the CPU writes it */
  gpumem_stats s;
  assert_gpumem_ok(a.stats(a.ctx, &s));
  assert_int_equal(s.allocs, 1);
  assert_int_equal(s.bytes_in_use, 4096);
  assert_gpumem_status(a.alloc(a.ctx, 0, NULL, &p), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_ok(a.free(a.ctx, p, 4096, NULL));
  assert_gpumem_ok(a.stats(a.ctx, &s));
  assert_int_equal(s.frees, 1);
  assert_int_equal(s.failed_allocs, 1);
  assert_int_equal(s.bytes_in_use, 0);
  assert_int_equal(s.peak_bytes_in_use, 4096);
  assert_int_equal(s.peak_bytes_reserved, 0); /* not known for host memory */
  assert_gpumem_ok(gpumem_allocator_destroy(&a));
  assert_null(a.ctx);
}

static void test_host_yardsticks(void **state) {
  (void)state;
  gpumem_allocator_kind kinds[4];
  assert_int_equal(gb_host_allocator_list(kinds, 4), 2);
  assert_string_equal(kinds[0].name, "malloc");
  assert_string_equal(kinds[1].name, "mimalloc");
  assert_non_null(strstr(kinds[0].description, "host memory"));
  check_host_allocator("malloc");
  char why[160] = "";
  if (gb_host_allocator_available("mimalloc", why, sizeof why)) {
    check_host_allocator("mimalloc");
  } else {
    gpumem_allocator a;
    assert_false(gb_host_allocator_create("mimalloc", &a, why, sizeof why));
    assert_non_null(strstr(why, "libmimalloc.so.2 is not installed"));
  }
  gpumem_allocator a;
  assert_false(gb_host_allocator_create("jemalloc", &a, why, sizeof why));
  assert_string_equal(why, "no host allocator is called 'jemalloc'");
  assert_false(gb_host_allocator_known("cuda-malloc"));
}

/* ---- the report ---- */

static char *read_file(const char *path) {
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  static char text[8192];
  size_t n = fread(text, 1, sizeof text - 1, f);
  text[n] = '\0';
  fclose(f);
  return text;
}

static void test_report(void **state) {
  (void)state;
  static gb_options o;
  static gb_report r;
  char why[256];
  /* A path that cannot be written is found before anything runs. */
  assert_int_equal(parse(&o, "--csv", "/nonexistent-dir/x.csv", NULL), GB_PARSE_RUN);
  assert_false(gb_report_open(&r, &o, why, sizeof why));
  assert_string_equal(why, "cannot write /nonexistent-dir/x.csv: No such file or directory");
  char csv[] = "/tmp/gpumem-report-XXXXXX.csv", json[] = "/tmp/gpumem-report-XXXXXX.json";
  int fd = mkstemps(csv, 4);
  assert_true(fd >= 0);
  close(fd);
  fd = mkstemps(json, 5);
  assert_true(fd >= 0);
  close(fd);
  assert_int_equal(parse(&o, "--json", json, "--csv", "/", NULL), GB_PARSE_RUN);
  assert_false(gb_report_open(&r, &o, why, sizeof why));
  assert_string_equal(why, "cannot write /: Is a directory");

  assert_int_equal(parse(&o, "--csv", csv, "--json", json, NULL), GB_PARSE_RUN);
  assert_true(gb_report_open(&r, &o, why, sizeof why));
  gb_header h = {.device = "dev \"0\"", .backend = "host", .date = "today"};
  gb_report_begin(&r, &h, 12, 2);
  gb_result row;
  gb_result_init(&row, "malloc", "pairs");
  snprintf(row.params, sizeof row.params, "size=4K");
  row.host_memory = true;
  row.ops = 10;
  row.reps = 1;
  row.peak_live = 4096;
  gb_report_row(&r, &row);
  /* The row is in the CSV before the run ends. */
  char *text = read_file(csv);
  assert_string_equal(
      text, "backend,device,date,allocator,workload,params,threads,ops,reps,median_ns,"
            "min_ns,max_ns,ops_per_s,scaling,peak_live_bytes,peak_reserved_bytes,"
            "driver_calls,status,memory,model_us_per_op\n"
            "host,\"dev \"\"0\"\"\",today,malloc,pairs,\"size=4K\",1,10,1,0.0,0.0,0.0,0.0,"
            "0.000,4096,0,,\"ok\",host,\n");
  /* A device row with the cost model's figure: in the CSV and the JSON. */
  gb_result_init(&row, "gpumem-arena", "replay");
  row.ops = 10;
  row.reps = 1;
  row.has_model = true;
  row.model_us = 1.25;
  gb_report_row(&r, &row);
  text = read_file(csv);
  assert_non_null(strstr(text, ",\"ok\",device,1.2500\n"));
  gb_result_init(&row, "cuda-pool", "replay");
  snprintf(row.status, sizeof row.status, "operation 3 of 9: out of memory");
  gb_report_row(&r, &row);
  assert_int_equal(gb_report_end(&r), GB_EXIT_FAILED); /* a row failed */
  text = read_file(csv);
  assert_non_null(strstr(text, ",cuda-pool,replay,\"\",1,0,0,"));
  assert_non_null(strstr(text, ",\"operation 3 of 9: out of memory\",device,\n"));
  text = read_file(json);
  assert_non_null(strstr(text, "{\"header\":{\"library\":"));
  assert_non_null(strstr(text, "\"device\":\"dev \\\"0\\\"\",\"backend\":\"host\""));
  assert_non_null(strstr(text, "\"status\":\"ok\",\"memory\":\"host\",\"model_us_per_op\":null}"));
  assert_non_null(strstr(text, "\"memory\":\"device\",\"model_us_per_op\":1.2500}"));
  assert_non_null(strstr(text, "\"driver_calls\":-1,\"status\":\"operation 3 of 9: out of "
                               "memory\",\"memory\":\"device\",\"model_us_per_op\":null}]}\n"));
  assert_non_null(strstr(text, "\"driver_cost_us\":{\"phys_create\":12.000,\"map\":1.100,"));
  unlink(csv);
  unlink(json);
}

/* ---- the driver cost model (driver_calls.c) ---- */

/* Known call counts give the table's arithmetic; the defaults are the
 * cuda-facts.md figures; overrides replace only the entries named. */
static void test_cost_model(void **state) {
  (void)state;
  double us[GB_COST_COUNT];
  gb_cost_defaults(us);
  assert_true(us[GB_COST_PHYS_CREATE] == 12.0 && us[GB_COST_MAP] == 1.1 &&
              us[GB_COST_SET_ACCESS] == 30.0 && us[GB_COST_UNMAP] == 20.0 &&
              us[GB_COST_PHYS_RELEASE] == 12.0 && us[GB_COST_DEV_MALLOC] == 42.0);
  uint64_t before[GB_COST_COUNT] = {0}, after[GB_COST_COUNT] = {0};
  before[GB_COST_MAP] = 5;
  after[GB_COST_MAP] = 15;        /* 10 maps: 11 us */
  after[GB_COST_SET_ACCESS] = 2;  /* 60 us */
  after[GB_COST_PHYS_CREATE] = 3; /* 36 us */
  assert_true(fabs(gb_cost_model_us(before, after, us) - 107.0) < 1e-9);
  char why[400];
  assert_true(gb_cost_parse("map=1.5,set_access=25", us, why, sizeof why));
  assert_true(us[GB_COST_MAP] == 1.5 && us[GB_COST_SET_ACCESS] == 25.0 &&
              us[GB_COST_UNMAP] == 20.0);
  assert_true(fabs(gb_cost_model_us(before, after, us) - (15.0 + 50.0 + 36.0)) < 1e-9);
  char text[400];
  gb_cost_text(us, text, sizeof text);
  assert_non_null(strstr(text, "phys_create=12 map=1.5 set_access=25 unmap=20"));
  /* Refused, the table unchanged, naming what was wrong. */
  assert_false(gb_cost_parse("map=2,mapp=1", us, why, sizeof why));
  assert_string_equal(why, "--driver-cost: unknown driver call 'mapp' (names: phys_create, map, "
                           "set_access, unmap, phys_release, va_reserve, va_free, dev_malloc, "
                           "dev_free, pool_alloc, pool_free, pool_trim)");
  assert_true(us[GB_COST_MAP] == 1.5);
  assert_false(gb_cost_parse("unmap=-3", us, why, sizeof why));
  assert_string_equal(why, "--driver-cost: unmap wants microseconds in 0..1e7, not '-3'");
  assert_false(gb_cost_parse("unmap=fast", us, why, sizeof why));
  assert_string_equal(why, "--driver-cost: unmap wants microseconds in 0..1e7, not 'fast'");
  assert_false(gb_cost_parse("unmap", us, why, sizeof why));
  assert_string_equal(why, "--driver-cost wants NAME=US, not 'unmap'");
  assert_false(gb_cost_parse("map=", us, why, sizeof why));
  assert_false(gb_cost_parse("", us, why, sizeof why));
  assert_true(us[GB_COST_UNMAP] == 20.0);
  /* The command line: --driver-cost sets gb_options' table. */
  static gb_options o;
  assert_int_equal(parse(&o, "--driver-cost", "dev_malloc=50", NULL), GB_PARSE_RUN);
  assert_true(o.driver_cost[GB_COST_DEV_MALLOC] == 50.0 && o.driver_cost[GB_COST_MAP] == 1.1);
  assert_int_equal(parse(&o, "--driver-cost", "bogus=1", NULL), GB_PARSE_BAD);
}

/* ---- synthetic traces (synth.c) ---- */

static void synth(gb_plan *p, gb_synth_family f, uint64_t seed) {
  gb_synth_config c;
  gb_synth_defaults(&c, f);
  c.seed = seed;
  char why[256] = "";
  memset(p, 0, sizeof *p);
  assert_true(gb_synth_plan(p, &c, why, sizeof why));
  assert_string_equal(why, "");
}

/* Same seed, same trace; another seed, another; every family well formed:
 * each free matches a live id with its size, all freed, sizes multiples of
 * 512, ~10k to ~30k operations, peaks of 512 MiB to 8 GiB. */
static void test_synth_deterministic_and_well_formed(void **state) {
  (void)state;
  for (int f = 0; f < GB_SYNTH_COUNT; f++) {
    gb_plan a, b, c;
    synth(&a, (gb_synth_family)f, 1);
    synth(&b, (gb_synth_family)f, 1);
    synth(&c, (gb_synth_family)f, 2);
    assert_true(plans_equal(&a, &b));
    assert_false(plans_equal(&a, &c));
    check_balanced(&a);
    check_balanced(&c);
    for (size_t i = 0; i < a.count; i++) {
      assert_true(a.ops[i].size >= 512);
      assert_int_equal(a.ops[i].size % 512, 0);
      assert_int_equal(a.ops[i].stream, 0);
    }
    assert_in_range(a.count, 10000, 30000);
    size_t peak = gb_plan_live_curve(&a, NULL);
    assert_in_range(peak, (size_t)512 << 20, (size_t)8 << 30);
    gb_plan_free(&a);
    gb_plan_free(&b);
    gb_plan_free(&c);
  }
}

/* training: the weights come first (fp32 masters: the embedding,
 * 32000*1024*4 bytes, then layer 0's qkv with bias), and backward frees each
 * layer's saved tensors in reverse layer order: autocast's fp16 copy of the
 * qkv weight ((3*1024^2 + 3*1024)*2 bytes, a size no activation takes) is
 * made once per layer in forward and freed in the other order. The weight
 * gradients are allocated in every micro-batch's backward. */
static void test_synth_training_frees_in_reverse(void **state) {
  (void)state;
  gb_plan p;
  synth(&p, GB_SYNTH_TRAINING, 7);
  assert_int_equal(p.ops[0].kind, GB_ALLOC);
  assert_int_equal(p.ops[0].size, (size_t)32000 * 1024 * 4);
  assert_int_equal(p.ops[1].size, ((size_t)3 * 1024 * 1024 + 3 * 1024) * 4);
  const size_t qkv16 = ((size_t)3 * 1024 * 1024 + 3 * 1024) * 2;
  uint32_t allocs[16], frees[16];
  size_t na = 0, nf = 0, copies = 0;
  for (size_t i = 0; i < p.count; i++) {
    if (p.ops[i].size != qkv16) continue;
    if (p.ops[i].kind == GB_ALLOC) {
      copies++;
      if (na < 16) allocs[na++] = p.ops[i].slot;
    } else if (nf < 16) {
      frees[nf++] = p.ops[i].slot;
    }
  }
  assert_int_equal(na, 16);
  assert_int_equal(nf, 16);
  for (size_t k = 0; k < 16; k++)
    assert_int_equal(frees[k], allocs[15 - k]);
  assert_int_equal(copies, 16 * 20); /* every layer, every one of 20 micro-batches */
  /* The gradient of the last layer's MLP down weight (4*1024^2*4 bytes) is
   * allocated in every step's backward: at least 20 such allocations beside
   * the weight and its two Adam moments. */
  size_t down32 = 0;
  for (size_t i = 0; i < p.count; i++)
    if (p.ops[i].kind == GB_ALLOC && p.ops[i].size == (size_t)4 * 1024 * 1024 * 4) down32++;
  assert_true(down32 >= 16 * (20 + 3));
  /* Gradient accumulation: two micro-batches per optimizer step, so the
   * first Adam moments (a pair of 4*1024^2*4 bytes for layer 0's MLP down
   * weight) come after two forwards: 32 autocast qkv copies before them. */
  size_t before = 0;
  for (size_t i = 98; i + 1 < p.count; i++) {
    if (p.ops[i].kind == GB_ALLOC && p.ops[i].size == qkv16) before++;
    if (p.ops[i].kind == GB_ALLOC && p.ops[i].size == (size_t)4 * 1024 * 1024 * 4 &&
        p.ops[i + 1].kind == GB_ALLOC && p.ops[i + 1].size == p.ops[i].size)
      break; /* the first moment pair */
  }
  assert_int_equal(before, 32);
  gb_plan_free(&p);
}

/* generation: a request's KV block (16 layers x K and V x 1024 x 2 bytes =
 * 64 KiB a token) is replaced by one a token larger, the old one freed
 * right after (torch.cat); and requests run concurrently (continuous
 * batching): consecutive growths mostly belong to different requests. */
static void test_synth_generation_kv_grows(void **state) {
  (void)state;
  gb_plan p;
  synth(&p, GB_SYNTH_GENERATION, 3);
  const size_t row = (size_t)16 * 2 * 1024 * 2;
  size_t grown = 0, switches = 0;
  uint32_t last_new = 0;
  for (size_t i = 0; i + 1 < p.count; i++) {
    const gb_op *a = &p.ops[i], *f = &p.ops[i + 1];
    if (a->kind == GB_ALLOC && f->kind == GB_FREE && a->size == f->size + row &&
        a->size % row == 0 && f->slot < a->slot) {
      if (grown > 0 && f->slot != last_new) switches++;
      last_new = a->slot;
      grown++;
      assert_true(a->size >= (size_t)17 * row); /* prompts of 16 tokens or more */
    }
  }
  /* 24 requests x at least 32 tokens (256/8) */
  assert_true(grown >= 24 * 32);
  assert_true(switches * 2 > grown);
  gb_plan_free(&p);
}

/* decode: every token replaces each layer's K and V (8 sequences x 1024 x 2
 * bytes = 16 KiB a token) with one a token longer, one layer after the
 * other, so 2 x 16 growths in a row have one size; and the prompts are
 * padded to at least seq/4 = 256 tokens. */
static void test_synth_decode_caches_grow_per_layer(void **state) {
  (void)state;
  gb_plan p;
  synth(&p, GB_SYNTH_DECODE, 2);
  const size_t row = (size_t)8 * 1024 * 2;
  size_t grown = 0, same = 0, last = 0;
  for (size_t i = 0; i + 1 < p.count; i++) {
    const gb_op *a = &p.ops[i], *f = &p.ops[i + 1];
    if (a->kind == GB_ALLOC && f->kind == GB_FREE && a->size == f->size + row &&
        a->size % row == 0 && f->slot < a->slot) {
      same += a->size == last;
      last = a->size;
      grown++;
      assert_true(a->size >= (size_t)257 * row);
    }
  }
  /* 4 calls x at least 24 tokens (48/2) x 16 layers x K and V */
  assert_true(grown >= (size_t)4 * 24 * 32);
  assert_true(same * 32 >= grown * 31 - 32 * 4); /* 31 of each token's 32 repeat a size */
  gb_plan_free(&p);
}

/* varlen: the layer activations (batch*len*H*2, len a multiple of 8) change
 * from batch to batch, and the lengths are long-tailed: more batches below
 * seq/4 (512) than above seq/2 (1024), and some above seq/2. */
static void test_synth_varlen_sizes_vary(void **state) {
  (void)state;
  gb_plan p;
  synth(&p, GB_SYNTH_VARLEN, 5);
  const size_t weights = 1 + 16 * 6 + 1;
  size_t distinct = 0, seen[64] = {0};
  for (size_t i = weights; i < p.count; i++) {
    size_t sz = p.ops[i].size;
    if (p.ops[i].kind != GB_ALLOC || sz % (1024 * 2 * 8) != 0 || sz > (size_t)8 << 20) continue;
    bool known = false;
    for (size_t k = 0; k < distinct; k++)
      if (seen[k] == sz) known = true;
    if (!known && distinct < 64) seen[distinct++] = sz;
  }
  assert_true(distinct >= 10);
  /* The attention scores (batch*16*len^2*2) come as a pair (scores, then
   * softmax) right after K and V; recover len from the first pair of each
   * batch and the batch's input x (batch*len*2048 bytes): a batch starts
   * with x, q, k, v of one size, then the pair. */
  size_t short_len = 0, long_len = 0, batches = 0;
  for (size_t i = weights; i + 5 < p.count; i++) {
    const gb_op *x = &p.ops[i];
    if (x->kind != GB_ALLOC) continue;
    /* a batch starts: x, q, k, v (all the same size), scores, softmax */
    bool same = true;
    for (size_t k = 1; k < 4; k++)
      if (p.ops[i + k].kind != GB_ALLOC || p.ops[i + k].size != x->size) same = false;
    if (!same || p.ops[i + 4].kind != GB_ALLOC || p.ops[i + 5].kind != GB_ALLOC ||
        p.ops[i + 4].size != p.ops[i + 5].size)
      continue;
    /* scores / act = heads*len / H = len / 64 */
    size_t len = p.ops[i + 4].size * 64 / x->size;
    batches++;
    if (len < 512) short_len++;
    if (len > 1024) long_len++;
  }
  assert_int_equal(batches, 60);
  assert_true(short_len > long_len);
  assert_true(long_len > 0);
  gb_plan_free(&p);
}

/* The trace written (plain and .gz) reads back as the same plan. */
static void test_synth_write_reads_back(void **state) {
  (void)state;
  gb_plan p;
  synth(&p, GB_SYNTH_MIXTURE, 2);
  const char *suffixes[] = {".csv", ".csv.gz"};
  for (int k = 0; k < 2; k++) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/gpumem-synth-%d%s", (int)getpid(), suffixes[k]);
    char why[512] = "";
    assert_true(gb_synth_write(&p, path, why, sizeof why));
    gb_plan back = {0};
    assert_true(gb_plan_read_trace(&back, path, why, sizeof why));
    assert_int_equal(back.count, p.count);
    for (size_t i = 0; i < p.count; i++) {
      assert_int_equal(back.ops[i].kind, p.ops[i].kind);
      assert_int_equal(back.ops[i].size, p.ops[i].size);
    }
    assert_int_equal(gb_plan_live_curve(&back, NULL), gb_plan_live_curve(&p, NULL));
    gb_plan_free(&back);
    unlink(path);
  }
  char why[512] = "";
  assert_false(gb_synth_write(&p, "/nonexistent-dir/x.csv", why, sizeof why));
  assert_non_null(strstr(why, "cannot write /nonexistent-dir/x.csv: No such file or directory"));
  gb_plan_free(&p);
}

/* Bad parameters and options are refused, naming them. */
static void test_synth_bad_input(void **state) {
  (void)state;
  gb_synth_config c;
  char why[256];
  gb_plan p = {0};
  gb_synth_defaults(&c, GB_SYNTH_TRAINING);
  c.layers = 300;
  assert_false(gb_synth_plan(&p, &c, why, sizeof why));
  assert_string_equal(why, "--layers 300 is out of range 1..256");
  gb_synth_defaults(&c, GB_SYNTH_VARLEN);
  c.heads = 0;
  assert_false(gb_synth_plan(&p, &c, why, sizeof why));
  assert_string_equal(why, "--heads must be at least 1");
  gb_synth_defaults(&c, GB_SYNTH_TRAINING);
  c.seq = (size_t)1 << 22;
  assert_false(gb_synth_plan(&p, &c, why, sizeof why));
  assert_non_null(strstr(why, "tensors over 1 TiB"));
  gb_synth_defaults(&c, GB_SYNTH_TRAINING);
  c.steps = 100000; /* ~47M operations */
  assert_false(gb_synth_plan(&p, &c, why, sizeof why));
  assert_string_equal(why, "over 10000000 operations: lower --steps (100000) or --layers (16)");
  assert_int_equal(p.count, 0); /* rolled back */
  gb_plan_free(&p);
  assert_int_equal(p.count, 0);
  const char *out;
  char *ok[] = {"synth", "--family", "generation", "--seed", "9", "--tokens", "8", "--out", "x"};
  assert_int_equal(gb_synth_parse(9, ok, &c, &out), 0);
  assert_int_equal(c.family, GB_SYNTH_GENERATION);
  assert_int_equal(c.seed, 9);
  assert_int_equal(c.tokens, 8);
  assert_int_equal(c.steps, 24);
  assert_int_equal(c.batch, 8);
  assert_string_equal(out, "x");
  char *bad_family[] = {"synth", "--family", "inference", "--out", "x"};
  assert_int_equal(gb_synth_parse(5, bad_family, &c, &out), 2);
  char *bad_number[] = {"synth", "--family", "training", "--steps", "-3", "--out", "x"};
  assert_int_equal(gb_synth_parse(7, bad_number, &c, &out), 2);
  char *no_out[] = {"synth", "--family", "training"};
  assert_int_equal(gb_synth_parse(3, no_out, &c, &out), 2);
  char *unknown[] = {"synth", "--family", "training", "--fast", "1", "--out", "x"};
  assert_int_equal(gb_synth_parse(7, unknown, &c, &out), 2);
}

int main(int argc, char **argv) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pairs_plan),
      cmocka_unit_test(test_random_is_seeded),
      cmocka_unit_test(test_random_balance_cap_and_sizes),
      cmocka_unit_test(test_summary),
      cmocka_unit_test(test_synth_deterministic_and_well_formed),
      cmocka_unit_test(test_synth_training_frees_in_reverse),
      cmocka_unit_test(test_synth_generation_kv_grows),
      cmocka_unit_test(test_synth_decode_caches_grow_per_layer),
      cmocka_unit_test(test_synth_varlen_sizes_vary),
      cmocka_unit_test(test_synth_write_reads_back),
      cmocka_unit_test(test_synth_bad_input),
      cmocka_unit_test(test_cost_model),
      cmocka_unit_test(test_trace_good),
      cmocka_unit_test(test_trace_bad_lines),
      cmocka_unit_test(test_trace_empty_fields_and_nuls_refused),
      cmocka_unit_test(test_trace_gz_and_real_trace),
      cmocka_unit_test(test_trace_gz_truncated_and_corrupt),
      cmocka_unit_test(test_json_writer),
      cmocka_unit_test(test_command_line),
      cmocka_unit_test(test_parse_size),
      cmocka_unit_test(test_workload_table),
      cmocka_unit_test(test_export_plans),
      cmocka_unit_test(test_host_yardsticks),
      cmocka_unit_test(test_report),
      cmocka_unit_test(test_allocator_registry),
      cmocka_unit_test(test_run_plan_through_an_allocator),
      cmocka_unit_test(test_recorded_trace_replays_the_same_curve),
  };
  return gm_test_run("bench", tests, GM_ARRAY_SIZE(tests), argc, argv, NULL);
}
