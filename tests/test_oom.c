/* test_oom.c: gpumem_set_oom_handler. The host backend's capacity (1 GiB a
 * device) makes the device run out: a handler that frees a held block and
 * asks for a retry turns the failure into success; one that declines leaves
 * OUT_OF_MEMORY and today's message; none is today's behaviour; a handler
 * that allocates (and fails) inside itself is not called again; pool, arena
 * and buffer entry points ask it too. */
#include <stdio.h>

#include "helpers.h"

#define BIG ((size_t)768 << 20)
#define ASK ((size_t)512 << 20)

typedef struct victim {
  gpumem_allocator *a;
  void *held;
  size_t held_size; /* 0: BIG */
  int calls;
  size_t size;
  int device;
  bool retry;
  bool nested; /* allocate ASK again inside the handler */
  gpumem_status nested_status;
} victim;

static bool on_oom(size_t size, int device, void *user) {
  victim *v = user;
  v->calls++;
  v->size = size;
  v->device = device;
  if (v->nested) {
    void *p = NULL;
    v->nested_status = v->a->alloc(v->a->ctx, ASK, NULL, &p); /* fails: not offered again */
  }
  if (v->retry && v->held != NULL) {
    gm_test_ignore(v->a->free(v->a->ctx, v->held, v->held_size ? v->held_size : BIG, NULL));
    v->held = NULL;
  }
  return v->retry;
}

static int drop_handler(void **state) {
  gm_test_ignore(gpumem_set_oom_handler(NULL, NULL));
  return gm_test_teardown(state);
}

static void setup_victim(gpumem_allocator *a, victim *v) {
  assert_gpumem_ok(gpumem_allocator_create("cuda-malloc", 1, a));
  *v = (victim){.a = a};
  assert_gpumem_ok(a->alloc(a->ctx, BIG, NULL, &v->held));
}

static void test_handler_frees_and_retries(void **state) {
  (void)state;
  gpumem_allocator a = GPUMEM_ALLOCATOR_INIT;
  victim v;
  setup_victim(&a, &v);
  v.retry = true;
  assert_gpumem_ok(gpumem_set_oom_handler(on_oom, &v));
  void *p = NULL;
  assert_gpumem_ok(a.alloc(a.ctx, ASK, NULL, &p));
  assert_int_equal(v.calls, 1);
  assert_int_equal(v.size, ASK);
  assert_int_equal(v.device, 1);
  assert_null(v.held);
  gpumem_stats s = GPUMEM_STATS_INIT;
  assert_gpumem_ok(a.stats(a.ctx, &s));
  assert_int_equal(s.allocs, 2);
  assert_int_equal(s.failed_allocs, 0);
  assert_int_equal(s.bytes_in_use, ASK);
  assert_gpumem_ok(a.free(a.ctx, p, ASK, NULL));
  assert_gpumem_ok(gpumem_allocator_destroy(&a));
}

static void test_declined_and_none_keep_todays_failure(void **state) {
  (void)state;
  gpumem_allocator a = GPUMEM_ALLOCATOR_INIT;
  victim v;
  setup_victim(&a, &v);
  void *p = NULL;
  /* No handler: today's failure and message. */
  assert_gpumem_status(a.alloc(a.ctx, ASK, NULL, &p), GPUMEM_ERR_OUT_OF_MEMORY);
  char today[512];
  snprintf(today, sizeof today, "%s", gpumem_last_error());
  assert_non_null(strstr(today, "cuda-malloc"));
  /* A handler that declines (after calling the library): the same. */
  assert_gpumem_ok(gpumem_set_oom_handler(on_oom, &v));
  v.nested = true;
  assert_gpumem_status(a.alloc(a.ctx, ASK, NULL, &p), GPUMEM_ERR_OUT_OF_MEMORY);
  assert_string_equal(gpumem_last_error(), today);
  assert_int_equal(v.calls, 1); /* the nested failure was not offered again */
  assert_int_equal(v.nested_status, GPUMEM_ERR_OUT_OF_MEMORY);
  assert_non_null(v.held);
  gpumem_stats s = GPUMEM_STATS_INIT;
  assert_gpumem_ok(a.stats(a.ctx, &s));
  assert_int_equal(s.failed_allocs, 3);
  /* Removed: no call. */
  assert_gpumem_ok(gpumem_set_oom_handler(NULL, NULL));
  assert_gpumem_status(a.alloc(a.ctx, ASK, NULL, &p), GPUMEM_ERR_OUT_OF_MEMORY);
  assert_int_equal(v.calls, 1);
  assert_gpumem_ok(a.free(a.ctx, v.held, BIG, NULL));
  assert_gpumem_ok(gpumem_allocator_destroy(&a));
}

static void test_retry_fails_again(void **state) {
  (void)state;
  gpumem_allocator a = GPUMEM_ALLOCATOR_INIT;
  victim v;
  setup_victim(&a, &v);
  void *keep = v.held;
  v.held = NULL; /* nothing to free: the retry fails too, and only once */
  v.retry = true;
  assert_gpumem_ok(gpumem_set_oom_handler(on_oom, &v));
  void *p = NULL;
  assert_gpumem_status(a.alloc(a.ctx, ASK, NULL, &p), GPUMEM_ERR_OUT_OF_MEMORY);
  assert_int_equal(v.calls, 1);
  assert_gpumem_ok(a.free(a.ctx, keep, BIG, NULL));
  assert_gpumem_ok(gpumem_allocator_destroy(&a));
}

/* The entry points that allocate without an allocator struct ask the
 * handler too: pool alloc, arena alloc, buffer resize and reserve. Each
 * time, BIG held on device 1 leaves no room for ASK; the handler frees it
 * and the retry succeeds. */
static void test_direct_entry_points_retry(void **state) {
  (void)state;
  gpumem_allocator a = GPUMEM_ALLOCATOR_INIT;
  victim v;
  setup_victim(&a, &v);
  v.retry = true;
  assert_gpumem_ok(gpumem_set_oom_handler(on_oom, &v));
  void *p = NULL;

  int one = 1;
  gpumem_arena_config ac = GPUMEM_ARENA_CONFIG_INIT;
  ac.devices = &one;
  ac.device_count = 1;
  gpumem_arena_t *arena = NULL;
  assert_gpumem_ok(gpumem_arena_create(&ac, &arena));
  assert_gpumem_ok(gpumem_arena_alloc(arena, ASK, 0, 1, &p));
  assert_int_equal(v.calls, 1);
  assert_int_equal(v.size, ASK);
  assert_int_equal(v.device, 1);
  assert_gpumem_ok(gpumem_arena_free(arena, p));
  assert_gpumem_ok(gpumem_arena_destroy(arena));

  gpumem_buffer_config bc = GPUMEM_BUFFER_CONFIG_INIT;
  bc.device = 1;
  bc.max_size = (size_t)1 << 30;
  gpumem_buffer_t *buf = NULL;
  assert_gpumem_ok(gpumem_buffer_create(&bc, &buf));
  assert_gpumem_ok(a.alloc(a.ctx, BIG, NULL, &v.held));
  assert_gpumem_ok(gpumem_buffer_resize(buf, ASK));
  assert_int_equal(v.calls, 2);
  assert_int_equal(v.size, ASK);
  assert_int_equal(gpumem_buffer_size(buf), ASK);
  v.held_size = ASK; /* the device is full: the buffer's ASK and this ASK */
  assert_gpumem_ok(a.alloc(a.ctx, ASK, NULL, &v.held));
  assert_gpumem_ok(gpumem_buffer_reserve(buf, ASK + ASK / 2));
  assert_int_equal(v.calls, 3);
  assert_int_equal(v.size, ASK + ASK / 2);
  assert_null(v.held);
  assert_int_equal(gpumem_buffer_capacity(buf), ASK + ASK / 2);
  v.held_size = 0;
  assert_gpumem_ok(gpumem_buffer_destroy(buf));

  gpumem_pool_config pc = GPUMEM_POOL_CONFIG_INIT;
  pc.device = 1;
  gpumem_pool_t *pool = NULL;
  assert_gpumem_ok(a.alloc(a.ctx, BIG, NULL, &v.held));
  assert_gpumem_ok(gpumem_pool_create(&pc, &pool));
  assert_gpumem_ok(gpumem_pool_alloc(pool, ASK, NULL, &p));
  assert_int_equal(v.calls, 4);
  assert_int_equal(v.size, ASK);
  assert_int_equal(v.device, 1);
  assert_gpumem_ok(gpumem_pool_free(pool, p, NULL));
  assert_gpumem_ok(gpumem_pool_destroy(pool));

  assert_gpumem_ok(gpumem_allocator_destroy(&a));
}

int main(int argc, char **argv) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_handler_frees_and_retries, gm_test_setup, drop_handler),
      cmocka_unit_test_setup_teardown(test_declined_and_none_keep_todays_failure, gm_test_setup,
                                      drop_handler),
      cmocka_unit_test_setup_teardown(test_retry_fails_again, gm_test_setup, drop_handler),
      cmocka_unit_test_setup_teardown(test_direct_entry_points_retry, gm_test_setup, drop_handler),
  };
  return gm_test_run("oom", tests, GM_ARRAY_SIZE(tests), argc, argv, NULL);
}
