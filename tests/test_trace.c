/* test_trace.c: GPUMEM_TRACE records direct pool, arena and buffer calls, not
 * only calls through the allocator interface, in a form gpumem-bench
 * replays: a seeded mix of direct pool allocs and frees on two streams,
 * direct arena allocs and frees, buffer resizes, and allocs and frees
 * through the gpumem-pool and gpumem-arena allocators, recorded and read
 * back with the bench's trace reader, gives the same operations (kind,
 * size, stream) and the same live-bytes curve as the run itself. Also: a
 * buffer resize is a free of the old size and an allocation of the new
 * one; %p in GPUMEM_TRACE is the pid; and with nothing listening the hooks
 * read one word that is zero. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"
#include "helpers.h"
#include "trace.h"

#define STEPS    600
#define MAX_LIVE 256
#define BUFFERS  2

typedef enum source { POOL, ARENA, VIA_POOL, VIA_ARENA, SOURCES } source;

typedef struct live_block {
  source from;
  void *ptr;
  size_t size;
  gpumem_stream_t stream;
  uint32_t slot;
} live_block;

typedef struct run {
  gpumem_pool_t *pool;
  gpumem_arena_t *arena;
  gpumem_allocator via[2]; /* gpumem-pool, gpumem-arena */
  gpumem_buffer_t *buffers[BUFFERS];
  uint32_t buffer_slot[BUFFERS];
  size_t buffer_size[BUFFERS];
  gpumem_stream_t streams[2]; /* NULL, and a stream of the test's own */
  live_block live[MAX_LIVE];
  size_t nlive;
  uint32_t next_slot;
  gb_plan expected; /* what the trace should say */
} run;

static uint64_t rng = 88172645463325252ull;

static uint64_t next_random(void) { /* xorshift64 */
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* The trace numbers streams as first seen, NULL as 0; this run's only other
 * stream is the test's own, so it is 1. The arena and buffers record 0. */
static uint16_t stream_number(gpumem_stream_t s) {
  return s == NULL ? 0 : 1;
}

static void expect(run *r, uint8_t kind, gpumem_stream_t s, uint32_t slot, size_t size) {
  assert_true(gb_plan_push(&r->expected, (gb_op){kind, stream_number(s), slot, size}));
}

static void do_alloc(run *r) {
  if (r->nlive == MAX_LIVE) return;
  live_block b = {(source)(next_random() % SOURCES), NULL, 1 + next_random() % (256 << 10),
                  r->streams[next_random() % 2], r->next_slot++};
  switch (b.from) {
  case POOL:
    assert_gpumem_ok(gpumem_pool_alloc(r->pool, b.size, b.stream, &b.ptr));
    break;
  case ARENA:
    b.stream = NULL; /* the arena has no stream: 0 in the trace */
    assert_gpumem_ok(gpumem_arena_alloc(r->arena, b.size, 0, 0, &b.ptr));
    break;
  default: {
    gpumem_allocator *a = &r->via[b.from - VIA_POOL];
    assert_gpumem_ok(a->alloc(a->ctx, b.size, b.stream, &b.ptr));
  }
  }
  expect(r, GB_ALLOC, b.stream, b.slot, b.size);
  r->live[r->nlive++] = b;
}

static void free_block(run *r, size_t i) {
  live_block b = r->live[i];
  r->live[i] = r->live[--r->nlive];
  gpumem_stream_t on = b.stream;
  switch (b.from) {
  case POOL:
    on = r->streams[next_random() % 2]; /* freed on either stream */
    assert_gpumem_ok(gpumem_pool_free(r->pool, b.ptr, on));
    break;
  case ARENA:
    assert_gpumem_ok(gpumem_arena_free(r->arena, b.ptr));
    break;
  default: {
    gpumem_allocator *a = &r->via[b.from - VIA_POOL];
    if (!(a->flags & GPUMEM_ALLOCATOR_STREAM_ORDERED) && on != NULL)
      assert_gpumem_ok(gpumem_stream_synchronize(on));
    assert_gpumem_ok(a->free(a->ctx, b.ptr, b.size, on));
  }
  }
  expect(r, GB_FREE, on, b.slot, b.size);
}

/* A free of the old size (if any), then an allocation of the new one. */
static void do_resize(run *r, int k, size_t size) {
  assert_gpumem_ok(gpumem_buffer_resize(r->buffers[k], size));
  if (size == r->buffer_size[k]) return;
  if (r->buffer_size[k] > 0) expect(r, GB_FREE, NULL, r->buffer_slot[k], r->buffer_size[k]);
  if (size > 0) {
    r->buffer_slot[k] = r->next_slot++;
    expect(r, GB_ALLOC, NULL, r->buffer_slot[k], size);
  }
  r->buffer_size[k] = size;
}

/* Record with GPUMEM_TRACE=pattern from a fresh initialisation. */
static void start_tracing(const char *pattern) {
  assert_gpumem_ok(gpumem_finalize());
  setenv("GPUMEM_TRACE", pattern, 1);
  assert_gpumem_ok(gpumem_init(NULL));
  unsetenv("GPUMEM_TRACE");
}

static void test_direct_calls_replay_the_same_curve(void **state) {
  (void)state;
  char dir[] = "/tmp/gpumem-trace-XXXXXX", pattern[128], path[128];
  assert_non_null(mkdtemp(dir));
  snprintf(pattern, sizeof pattern, "%s/run.%%p.csv", dir);
  snprintf(path, sizeof path, "%s/run.%ld.csv", dir, (long)getpid());
  start_tracing(pattern);

  run *r = calloc(1, sizeof *r);
  gpumem_pool_config pc = GPUMEM_POOL_CONFIG_INIT;
  assert_gpumem_ok(gpumem_pool_create(&pc, &r->pool));
  gpumem_arena_config ac = GPUMEM_ARENA_CONFIG_INIT;
  assert_gpumem_ok(gpumem_arena_create(&ac, &r->arena));
  r->via[0] = (gpumem_allocator)GPUMEM_ALLOCATOR_INIT;
  r->via[1] = (gpumem_allocator)GPUMEM_ALLOCATOR_INIT;
  assert_gpumem_ok(gpumem_allocator_create("gpumem-pool", 0, &r->via[0]));
  assert_gpumem_ok(gpumem_allocator_create("gpumem-arena", 0, &r->via[1]));
  gpumem_buffer_config bc = GPUMEM_BUFFER_CONFIG_INIT;
  bc.max_size = 64 << 20;
  for (int k = 0; k < BUFFERS; k++)
    assert_gpumem_ok(gpumem_buffer_create(&bc, &r->buffers[k]));
  assert_gpumem_ok(gpumem_stream_create(0, &r->streams[1]));

  for (int i = 0; i < STEPS; i++) {
    uint64_t what = next_random() % 10;
    if (what < 5)
      do_alloc(r);
    else if (what < 8 && r->nlive > 0)
      free_block(r, next_random() % r->nlive);
    else if (what < 9) /* sizes up to 12 MiB: growths, and 0 now and then */
      do_resize(r, (int)(next_random() % BUFFERS), next_random() % 7 * (next_random() % (2 << 20)));
  }
  do_resize(r, 0, 5000);
  do_resize(r, 0, 5000); /* the same size: nothing recorded */
  while (r->nlive > 0)
    free_block(r, r->nlive - 1);
  for (int k = 0; k < BUFFERS; k++) { /* destroy records the free of the size left */
    assert_gpumem_ok(gpumem_buffer_destroy(r->buffers[k]));
    if (r->buffer_size[k] > 0) expect(r, GB_FREE, NULL, r->buffer_slot[k], r->buffer_size[k]);
  }
  assert_gpumem_ok(gpumem_stream_destroy(r->streams[1]));
  assert_gpumem_ok(gpumem_allocator_destroy(&r->via[0]));
  assert_gpumem_ok(gpumem_allocator_destroy(&r->via[1]));
  assert_gpumem_ok(gpumem_arena_destroy(r->arena));
  assert_gpumem_ok(gpumem_pool_destroy(r->pool));
  assert_gpumem_ok(gpumem_finalize()); /* closes the trace */

  gb_plan replayed = {0};
  char why[256] = "";
  bool read = gb_plan_read_trace(&replayed, path, why, sizeof why);
  unlink(path);
  rmdir(dir);
  if (!read) fail_msg("the recorded trace does not read back: %s", why);
  const gb_plan *want = &r->expected;
  assert_true(want->count > STEPS / 2);
  assert_int_equal(replayed.count, want->count);
  for (size_t i = 0; i < want->count; i++) {
    const gb_op *got = &replayed.ops[i], *exp = &want->ops[i];
    if (got->kind != exp->kind || got->size != exp->size || got->stream != exp->stream)
      fail_msg("op %zu: got %c size %zu stream %u, expected %c size %zu stream %u", i,
               got->kind == GB_ALLOC ? 'a' : 'f', got->size, got->stream,
               exp->kind == GB_ALLOC ? 'a' : 'f', exp->size, exp->stream);
  }
  size_t *c1 = malloc(want->count * sizeof *c1), *c2 = malloc(want->count * sizeof *c2);
  size_t peak = gb_plan_live_curve(want, c1);
  assert_int_equal(gb_plan_live_curve(&replayed, c2), peak);
  assert_memory_equal(c1, c2, want->count * sizeof *c1);
  assert_int_equal(c2[want->count - 1], 0);
  free(c1);
  free(c2);
  gb_plan_free(&replayed);
  gb_plan_free(&r->expected);
  free(r);
  assert_gpumem_ok(gpumem_init(NULL));
}

/* The exact lines of a buffer's life: growth from 0 is an allocation, each
 * resize a free and an allocation under a new id, destroy a free. */
static void test_buffer_resize_lines(void **state) {
  (void)state;
  char path[] = "/tmp/gpumem-trace-buffer-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  start_tracing(path);
  gpumem_buffer_config bc = GPUMEM_BUFFER_CONFIG_INIT;
  gpumem_buffer_t *b = NULL;
  assert_gpumem_ok(gpumem_buffer_create(&bc, &b));
  assert_gpumem_ok(gpumem_buffer_resize(b, 4096));
  assert_gpumem_ok(gpumem_buffer_reserve(b, 8 << 20)); /* capacity only: no line */
  assert_gpumem_ok(gpumem_buffer_resize(b, 8192));
  assert_gpumem_ok(gpumem_buffer_resize(b, 100));
  assert_gpumem_ok(gpumem_buffer_shrink_to_fit(b, NULL)); /* capacity only: no line */
  assert_gpumem_ok(gpumem_buffer_resize(b, 0));
  assert_gpumem_ok(gpumem_buffer_resize(b, 50));
  assert_gpumem_ok(gpumem_buffer_destroy(b));
  assert_gpumem_ok(gpumem_finalize());
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  char text[512] = {0};
  assert_true(fread(text, 1, sizeof text - 1, f) > 0);
  fclose(f);
  unlink(path);
  unsigned long id = 0;
  assert_int_equal(sscanf(text, "op,id,size,stream\na,%lu,", &id), 1);
  char want[512];
  snprintf(want, sizeof want,
           "op,id,size,stream\n"
           "a,%lu,4096,0\nf,%lu,4096,0\n"
           "a,%lu,8192,0\nf,%lu,8192,0\n"
           "a,%lu,100,0\nf,%lu,100,0\n"
           "a,%lu,50,0\nf,%lu,50,0\n",
           id, id, id + 1, id + 1, id + 2, id + 2, id + 3, id + 3);
  assert_string_equal(text, want);
  assert_gpumem_ok(gpumem_init(NULL));
}

/* With neither GPUMEM_TRACE nor the trace log level, the word every hook
 * reads is zero once the first event has found no GPUMEM_TRACE. */
static void test_hooks_off_read_zero(void **state) {
  (void)state;
  assert_gpumem_ok(gpumem_finalize());
  assert_gpumem_ok(gpumem_init(NULL));
  assert_int_equal(atomic_load(&gm_trace_hooks), GM_HOOK_CHECK);
  gpumem_pool_config pc = GPUMEM_POOL_CONFIG_INIT;
  gpumem_pool_t *pool = NULL;
  void *p = NULL;
  assert_gpumem_ok(gpumem_pool_create(&pc, &pool));
  assert_gpumem_ok(gpumem_pool_alloc(pool, 64, NULL, &p));
  assert_int_equal(atomic_load(&gm_trace_hooks), 0);
  assert_gpumem_ok(gpumem_log_set_level(GPUMEM_LOG_TRACE));
  assert_int_equal(atomic_load(&gm_trace_hooks), GM_HOOK_LOG);
  assert_gpumem_ok(gpumem_log_set_level(GPUMEM_LOG_WARN));
  assert_int_equal(atomic_load(&gm_trace_hooks), 0);
  assert_gpumem_ok(gpumem_pool_free(pool, p, NULL));
  assert_gpumem_ok(gpumem_pool_destroy(pool));
}

int main(int argc, char **argv) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test(test_direct_calls_replay_the_same_curve),
      cmocka_unit_test(test_buffer_resize_lines),
      cmocka_unit_test(test_hooks_off_read_zero),
  };
  return gm_test_run("trace", tests, GM_ARRAY_SIZE(tests), argc, argv, NULL);
}
