/* test_abi.c: public structs grow without breaking their callers.
 *
 * A caller compiled against an older libgpumem passes smaller structs (its
 * struct_size says how small); one compiled against a newer libgpumem passes
 * larger ones. Here such callers are simulated with structs that stop early
 * or carry extra bytes: the library must read what the caller has (defaults
 * for the rest), write no byte past the caller's struct, refuse a newer
 * caller's setting it does not know, and name the INIT macro when a struct
 * was not initialised at all. */
#include <stddef.h>

#include "helpers.h"

/* gpumem_pool_config as a caller built before the cache fields existed. */
typedef struct old_pool_config {
  size_t struct_size;
  int device;
  bool use_default_pool;
  uint64_t release_threshold;
  size_t max_size;
  bool reuse_follow_event_dependencies;
  bool reuse_allow_opportunistic;
  bool reuse_allow_internal_dependencies;
  gpumem_handle_type handle_type;
  const int *access_devices;
  size_t access_count;
} old_pool_config;

_Static_assert(offsetof(old_pool_config, access_count) ==
                   offsetof(gpumem_pool_config, access_count),
               "the old layout is a prefix of the current one");

static void test_an_older_config_gets_the_defaults(void **state) {
  (void)state;
  old_pool_config old = {sizeof old,         0,    false, UINT64_MAX, 0, true, true, true,
                         GPUMEM_HANDLE_NONE, NULL, 0};
  gpumem_pool_t *p = NULL;
  assert_gpumem_ok(gpumem_pool_create((const gpumem_pool_config *)(const void *)&old, &p));
  /* The fields it lacks took GPUMEM_POOL_CONFIG_INIT's values: the cache is on. */
  void *x = NULL, *y = NULL;
  assert_gpumem_ok(gpumem_pool_alloc(p, 4096, NULL, &x));
  assert_gpumem_ok(gpumem_pool_free(p, x, NULL));
  assert_gpumem_ok(gpumem_pool_alloc(p, 4096, NULL, &y));
  assert_ptr_equal(y, x);
  gpumem_pool_stats s = GPUMEM_POOL_STATS_INIT;
  assert_gpumem_ok(gpumem_pool_get_stats(p, &s));
  assert_int_equal(s.cache_hits, 1);
  assert_gpumem_ok(gpumem_pool_free(p, y, NULL));
  assert_gpumem_ok(gpumem_pool_destroy(p));
}

/* An arena config from before `remap` and `slack_percent`: whatever lies
 * past its struct_size is not read; the arena balances with 5% of slack. */
static void test_an_older_arena_config_balances(void **state) {
  (void)state;
  gpumem_arena_config c = GPUMEM_ARENA_CONFIG_INIT;
  c.struct_size = offsetof(gpumem_arena_config, remap);
  c.remap = (gpumem_arena_remap)99; /* past the old struct: garbage to ignore */
  c.slack_percent = 1000;
  gpumem_arena_t *a = NULL;
  assert_gpumem_ok(gpumem_arena_create(&c, &a));
  gpumem_arena_stats s = GPUMEM_ARENA_STATS_INIT;
  assert_gpumem_ok(gpumem_arena_get_stats(a, &s));
  assert_int_equal(s.remap, GPUMEM_ARENA_REMAP_BALANCED);
  assert_int_equal(s.slack_percent, 5);
  assert_gpumem_ok(gpumem_arena_destroy(a));
}

/* A newer caller: bytes this library does not know must be zero. */
typedef struct newer_buffer_config {
  gpumem_buffer_config now;
  uint64_t future_field;
} newer_buffer_config;

static void test_a_newer_config(void **state) {
  (void)state;
  newer_buffer_config c = {GPUMEM_BUFFER_CONFIG_INIT, 0};
  c.now.struct_size = sizeof c;
  gpumem_buffer_t *b = NULL;
  assert_gpumem_ok(gpumem_buffer_create(&c.now, &b));
  assert_gpumem_ok(gpumem_buffer_destroy(b));
  c.future_field = 1; /* asks for something this library cannot do */
  b = NULL;
  assert_gpumem_status(gpumem_buffer_create(&c.now, &b), GPUMEM_ERR_NOT_SUPPORTED);
  assert_last_error_contains("built against a newer libgpumem");
  assert_null(b);
}

static void test_uninitialised_structs_are_refused(void **state) {
  (void)state;
  gpumem_arena_config c = GPUMEM_ARENA_CONFIG_INIT;
  gpumem_arena_t *a = NULL;
  c.struct_size = 0;
  assert_gpumem_status(gpumem_arena_create(&c, &a), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("GPUMEM_ARENA_CONFIG_INIT");
  c.struct_size = (size_t)1 << 40; /* what stack garbage looks like */
  assert_gpumem_status(gpumem_arena_create(&c, &a), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_null(a);
  gpumem_init_options o = GPUMEM_INIT_OPTIONS_INIT;
  o.struct_size = 3;
  assert_int_not_equal(gpumem_init(&o), GPUMEM_OK); /* too small to be any version */
  gpumem_pool_t *p = NULL;
  gpumem_pool_config pc = GPUMEM_POOL_CONFIG_INIT;
  assert_gpumem_ok(gpumem_pool_create(&pc, &p));
  gpumem_pool_stats s = GPUMEM_POOL_STATS_INIT;
  s.base.struct_size = 0;
  assert_gpumem_status(gpumem_pool_get_stats(p, &s), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("GPUMEM_POOL_STATS_INIT");
  assert_gpumem_ok(gpumem_pool_destroy(p));
}

/* An older caller's stats struct: only gpumem_stats, then bytes the library
 * must not touch. */
typedef struct old_stats {
  gpumem_stats base;
  unsigned char canary[64];
} old_stats;

static void test_stats_written_no_further_than_the_caller_s_struct(void **state) {
  (void)state;
  gpumem_pool_config pc = GPUMEM_POOL_CONFIG_INIT;
  gpumem_pool_t *p = NULL;
  assert_gpumem_ok(gpumem_pool_create(&pc, &p));
  void *x = NULL;
  assert_gpumem_ok(gpumem_pool_alloc(p, 1000, NULL, &x));
  old_stats s;
  memset(&s, 0xee, sizeof s);
  s.base.struct_size = sizeof s.base;
  assert_gpumem_ok(gpumem_pool_get_stats(p, (gpumem_pool_stats *)(void *)&s));
  assert_int_equal(s.base.struct_size, sizeof s.base); /* the caller's, kept */
  assert_int_equal(s.base.bytes_in_use, 1024);         /* the one shape: what the base says */
  assert_int_equal(s.base.allocs, 1);
  for (size_t i = 0; i < sizeof s.canary; i++)
    assert_int_equal(s.canary[i], 0xee);
  /* The same for the arena's and the buffer's stats, and the interface's. */
  gpumem_arena_config ac = GPUMEM_ARENA_CONFIG_INIT;
  gpumem_arena_t *a = NULL;
  assert_gpumem_ok(gpumem_arena_create(&ac, &a));
  memset(&s, 0xee, sizeof s);
  s.base.struct_size = sizeof s.base;
  assert_gpumem_ok(gpumem_arena_get_stats(a, (gpumem_arena_stats *)(void *)&s));
  assert_int_equal(s.canary[0], 0xee);
  assert_gpumem_ok(gpumem_arena_destroy(a));
  gpumem_buffer_config bc = GPUMEM_BUFFER_CONFIG_INIT;
  gpumem_buffer_t *b = NULL;
  assert_gpumem_ok(gpumem_buffer_create(&bc, &b));
  assert_gpumem_ok(gpumem_buffer_resize(b, 1000));
  memset(&s, 0xee, sizeof s);
  s.base.struct_size = sizeof s.base;
  assert_gpumem_ok(gpumem_buffer_get_stats(b, (gpumem_buffer_stats *)(void *)&s));
  assert_int_equal(s.base.bytes_in_use, 1000);
  assert_int_equal(s.canary[sizeof s.canary - 1], 0xee);
  assert_gpumem_ok(gpumem_buffer_destroy(b));
  assert_gpumem_ok(gpumem_pool_free(p, x, NULL));
  assert_gpumem_ok(gpumem_stream_synchronize(NULL));
  assert_gpumem_ok(gpumem_pool_destroy(p));
}

/* gpumem_allocator as a caller built before `flags` existed: the library
 * fills only up to its struct_size. */
static void test_an_older_allocator_struct(void **state) {
  (void)state;
  gpumem_allocator a;
  memset(&a, 0xee, sizeof a);
  a.struct_size = offsetof(gpumem_allocator, flags);
  assert_gpumem_ok(gpumem_allocator_create("gpumem-pool", 0, &a));
  assert_string_equal(a.name, "gpumem-pool");
  assert_int_equal(a.flags, 0xeeeeeeeeu); /* past the caller's struct: untouched */
  void *p = NULL;
  assert_gpumem_ok(a.alloc(a.ctx, 100, NULL, &p));
  assert_gpumem_ok(a.free(a.ctx, p, 100, NULL));
  assert_gpumem_ok(gpumem_allocator_destroy(&a));
  assert_int_equal(a.struct_size, offsetof(gpumem_allocator, flags));
  assert_int_equal(a.flags, 0xeeeeeeeeu); /* destroy clears only the caller's part */
  assert_null(a.ctx);
}

int main(int argc, char **argv) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test(test_an_older_config_gets_the_defaults),
      cmocka_unit_test(test_an_older_arena_config_balances),
      cmocka_unit_test(test_a_newer_config),
      cmocka_unit_test(test_uninitialised_structs_are_refused),
      cmocka_unit_test(test_stats_written_no_further_than_the_caller_s_struct),
      cmocka_unit_test(test_an_older_allocator_struct),
  };
  return gm_test_run("abi", tests, GM_ARRAY_SIZE(tests), argc, argv, NULL);
}
