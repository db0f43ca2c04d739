/* test_alloc_conf.c: GPUMEM_ALLOC_CONF. The kind and settings it names
 * reach the allocator (its name, the chunk it maps, the limit it keeps), bad
 * keys and values are warnings naming the variable, key and value while the
 * rest applies, the warnings come once per text, and the default allocator
 * follows the variable. */
#include <stdio.h>

#include "alloc_conf.h"
#include "allocator.h"
#include "helpers.h"
#include "options.h"

/* Every warning line, concatenated. */
typedef struct lines {
  int count;
  char text[8192];
} lines;

static void keep_line(gpumem_log_level level, const char *line, void *user) {
  lines *l = user;
  if (level != GPUMEM_LOG_WARN) return;
  l->count++;
  size_t used = strlen(l->text);
  snprintf(l->text + used, sizeof l->text - used, "%s\n", line);
}

static void use_conf(const char *text) {
  assert_true(gm_option_set(GM_OPTION_ALLOC_CONF, text, "test"));
}

static int reset(void **state) {
  use_conf("");
  gm_test_ignore(gpumem_log_set_callback(NULL, NULL));
  return gm_test_teardown(state);
}

static void test_unset_is_the_cached_pool(void **state) {
  (void)state;
  use_conf("");
  gpumem_allocator a = GPUMEM_ALLOCATOR_INIT;
  assert_gpumem_ok(gm_conf_allocator_create(0, &a));
  assert_string_equal(a.name, "gpumem-pool");
  assert_int_equal(a.device, 0);
  assert_int_equal(a.flags, GPUMEM_ALLOCATOR_STREAM_ORDERED);
  assert_gpumem_ok(gpumem_allocator_destroy(&a));
}

static void test_arena_settings_apply(void **state) {
  (void)state;
  lines l = {0};
  assert_gpumem_ok(gpumem_log_set_callback(keep_line, &l));
  use_conf(" chunk_size : 4M , kind:arena,max_size:16M");
  gpumem_allocator a = GPUMEM_ALLOCATOR_INIT;
  assert_gpumem_ok(gm_conf_allocator_create(1, &a));
  assert_int_equal(l.count, 0);
  assert_string_equal(a.name, "gpumem-arena");
  assert_int_equal(a.device, 1);
  void *p = NULL, *q = NULL;
  assert_gpumem_ok(a.alloc(a.ctx, 1000, NULL, &p));
  gpumem_stats s = GPUMEM_STATS_INIT;
  assert_gpumem_ok(a.stats(a.ctx, &s));
  assert_int_equal(s.bytes_reserved, (size_t)4 << 20); /* one 4 MiB chunk, not the 8 MiB default */
  /* max_size: 16 MiB of range, so 20 MiB cannot fit. */
  assert_gpumem_status(a.alloc(a.ctx, (size_t)20 << 20, NULL, &q), GPUMEM_ERR_CAPACITY);
  assert_last_error_contains("the arena's maximum size is 16777216 bytes");
  assert_gpumem_ok(a.free(a.ctx, p, 1000, NULL));
  assert_gpumem_ok(gpumem_allocator_destroy(&a));
}

/* The arena behind an allocator made from the variable, and its stats. */
static gpumem_arena_stats arena_stats_of(const gpumem_allocator *a) {
  const gm_allocator_impl *impl = NULL;
  void *inner = NULL;
  assert_true(gm_allocator_inner(a, &impl, &inner));
  gpumem_arena_stats s = GPUMEM_ARENA_STATS_INIT;
  assert_gpumem_ok(gpumem_arena_get_stats(gm_arena_allocator_arena(inner), &s));
  return s;
}

/* kind:arena-lean is the arena with remap:memory (gpumem-arena-lean);
 * remap and slack_percent reach the arena, a later remap overrides the
 * kind's, and bad values warn and keep the default. */
static void test_arena_remap_settings(void **state) {
  (void)state;
  lines l = {0};
  assert_gpumem_ok(gpumem_log_set_callback(keep_line, &l));
  use_conf("kind:arena-lean");
  gpumem_allocator a = GPUMEM_ALLOCATOR_INIT;
  assert_gpumem_ok(gm_conf_allocator_create(0, &a));
  assert_string_equal(a.name, "gpumem-arena-lean");
  assert_int_equal(a.flags & GPUMEM_ALLOCATOR_STREAM_ORDERED, 0);
  gpumem_arena_stats s = arena_stats_of(&a);
  assert_int_equal(s.remap, GPUMEM_ARENA_REMAP_MEMORY);
  assert_int_equal(s.slack_percent, 5);
  assert_gpumem_ok(gpumem_allocator_destroy(&a));

  use_conf("remap:calls,kind:arena-lean,slack_percent:12");
  assert_gpumem_ok(gm_conf_allocator_create(0, &a));
  assert_string_equal(a.name, "gpumem-arena"); /* no longer memory first */
  s = arena_stats_of(&a);
  assert_int_equal(s.remap, GPUMEM_ARENA_REMAP_CALLS);
  assert_int_equal(s.slack_percent, 12);
  assert_gpumem_ok(gpumem_allocator_destroy(&a));

  use_conf("kind:arena,remap:memory");
  assert_gpumem_ok(gm_conf_allocator_create(0, &a));
  assert_string_equal(a.name, "gpumem-arena-lean");
  assert_gpumem_ok(gpumem_allocator_destroy(&a));
  assert_int_equal(l.count, 0);

  use_conf("kind:arena,remap:fast,slack_percent:0,shards:1");
  assert_gpumem_ok(gm_conf_allocator_create(0, &a));
  assert_string_equal(a.name, "gpumem-arena");
  s = arena_stats_of(&a);
  assert_int_equal(s.remap, GPUMEM_ARENA_REMAP_BALANCED);
  assert_int_equal(s.slack_percent, 5);
  assert_int_equal(s.shards, 1); /* the rest applied */
  assert_int_equal(l.count, 2);
  assert_non_null(strstr(l.text, "GPUMEM_ALLOC_CONF: remap:'fast' is not balanced, memory or "
                                 "calls; keeping the default"));
  assert_non_null(strstr(l.text, "GPUMEM_ALLOC_CONF: slack_percent:'0' is not an integer in "
                                 "1..100; keeping the default"));
  assert_gpumem_ok(gpumem_allocator_destroy(&a));
}

static void test_pool_kinds_and_settings(void **state) {
  (void)state;
  use_conf("kind:pool,cache:off,cache_max_bytes:1M,release_threshold:1G");
  gpumem_allocator a = GPUMEM_ALLOCATOR_INIT;
  assert_gpumem_ok(gm_conf_allocator_create(0, &a));
  assert_string_equal(a.name, "gpumem-pool-nocache"); /* cache:off is the uncached pool */
  assert_gpumem_ok(gpumem_allocator_destroy(&a));

  use_conf("kind:pool-nocache");
  assert_gpumem_ok(gm_conf_allocator_create(0, &a));
  assert_string_equal(a.name, "gpumem-pool-nocache");
  assert_gpumem_ok(gpumem_allocator_destroy(&a));

  use_conf("kind:gpumem-pool,max_size:64M");
  assert_gpumem_ok(gm_conf_allocator_create(0, &a));
  assert_string_equal(a.name, "gpumem-pool");
  void *p = NULL;
  assert_gpumem_status(a.alloc(a.ctx, (size_t)128 << 20, NULL, &p), GPUMEM_ERR_OUT_OF_MEMORY);
  assert_gpumem_ok(a.alloc(a.ctx, (size_t)32 << 20, NULL, &p));
  assert_gpumem_ok(a.free(a.ctx, p, (size_t)32 << 20, NULL));
  assert_gpumem_ok(gpumem_allocator_destroy(&a));
}

static void test_other_kinds_take_no_settings(void **state) {
  (void)state;
  lines l = {0};
  assert_gpumem_ok(gpumem_log_set_callback(keep_line, &l));
  use_conf("kind:cuda-async,cache_max_bytes:1M");
  gpumem_allocator a = GPUMEM_ALLOCATOR_INIT;
  assert_gpumem_ok(gm_conf_allocator_create(0, &a));
  assert_string_equal(a.name, "cuda-async");
  assert_int_equal(l.count, 1);
  assert_non_null(strstr(l.text, "GPUMEM_ALLOC_CONF: key 'cache_max_bytes' (value '1M') does not "
                                 "apply to kind cuda-async (it takes no settings); ignored"));
  assert_gpumem_ok(gpumem_allocator_destroy(&a));
}

static void test_bad_keys_warn_once_and_keep_defaults(void **state) {
  (void)state;
  lines l = {0};
  assert_gpumem_ok(gpumem_log_set_callback(keep_line, &l));
  use_conf("kind:weird,cache_max_bytes:12X,chunk_size:4M,bogus:1,shards,cache:maybe,"
           "max_size:32M");
  gpumem_allocator a = GPUMEM_ALLOCATOR_INIT;
  assert_gpumem_ok(gm_conf_allocator_create(0, &a));
  assert_string_equal(a.name, "gpumem-pool"); /* the default kind stays */
  assert_int_equal(l.count, 6);
  const char *expected[] = {
      "GPUMEM_ALLOC_CONF: kind:'weird' is not one of pool, pool-nocache, arena, arena-lean, "
      "cuda-malloc",
      "keeping the default kind gpumem-pool",
      "GPUMEM_ALLOC_CONF: cache_max_bytes:'12X' is not a size (examples: 4096, 512K, 64MiB, 2G); "
      "keeping the default",
      "GPUMEM_ALLOC_CONF: key 'chunk_size' (value '4M') does not apply to kind gpumem-pool (its "
      "keys: cache, cache_max_bytes, cache_max_size, release_threshold, max_size); ignored",
      "GPUMEM_ALLOC_CONF: unknown key 'bogus' (value '1'); expected kind or one of:",
      "GPUMEM_ALLOC_CONF: 'shards' is not key:value; ignored",
      "GPUMEM_ALLOC_CONF: cache:'maybe' is not on/off",
  };
  for (size_t i = 0; i < GM_ARRAY_SIZE(expected); i++) {
    if (strstr(l.text, expected[i]) == NULL) fail_msg("no '%s' in:\n%s", expected[i], l.text);
  }
  /* The valid key still applied: max_size 32 MiB. */
  void *p = NULL;
  assert_gpumem_status(a.alloc(a.ctx, (size_t)64 << 20, NULL, &p), GPUMEM_ERR_OUT_OF_MEMORY);
  assert_gpumem_ok(gpumem_allocator_destroy(&a));
  /* Same text again (another device's hook): no second round of warnings. */
  l.count = 0;
  assert_gpumem_ok(gm_conf_allocator_create(1, &a));
  assert_int_equal(l.count, 0);
  assert_gpumem_ok(gpumem_allocator_destroy(&a));
}

static void test_creation_errors_pass_through(void **state) {
  (void)state;
  use_conf("kind:arena,shards:3");
  gpumem_allocator a = GPUMEM_ALLOCATOR_INIT;
  assert_gpumem_status(gm_conf_allocator_create(9, &a), GPUMEM_ERR_INVALID_DEVICE);
  assert_null(a.ctx);
  assert_gpumem_status(gm_conf_allocator_create(0, NULL), GPUMEM_ERR_INVALID_ARGUMENT);
}

static void test_default_allocator_follows_the_variable(void **state) {
  (void)state;
  use_conf("kind:arena,chunk_size:2M");
  assert_gpumem_ok(gpumem_set_default_allocator(NULL));
  gpumem_allocator a = GPUMEM_ALLOCATOR_INIT;
  assert_gpumem_ok(gpumem_default_allocator(&a));
  assert_string_equal(a.name, "gpumem-arena");
  void *p = NULL;
  assert_gpumem_ok(a.alloc(a.ctx, 100, NULL, &p));
  gpumem_stats s = GPUMEM_STATS_INIT;
  assert_gpumem_ok(a.stats(a.ctx, &s));
  assert_int_equal(s.bytes_reserved, (size_t)2 << 20);
  assert_gpumem_ok(a.free(a.ctx, p, 100, NULL));
  assert_gpumem_ok(gpumem_set_default_allocator(NULL)); /* destroys the one made here */
}

int main(int argc, char **argv) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_unset_is_the_cached_pool, gm_test_setup, reset),
      cmocka_unit_test_setup_teardown(test_arena_settings_apply, gm_test_setup, reset),
      cmocka_unit_test_setup_teardown(test_arena_remap_settings, gm_test_setup, reset),
      cmocka_unit_test_setup_teardown(test_pool_kinds_and_settings, gm_test_setup, reset),
      cmocka_unit_test_setup_teardown(test_other_kinds_take_no_settings, gm_test_setup, reset),
      cmocka_unit_test_setup_teardown(test_bad_keys_warn_once_and_keep_defaults, gm_test_setup,
                                      reset),
      cmocka_unit_test_setup_teardown(test_creation_errors_pass_through, gm_test_setup, reset),
      cmocka_unit_test_setup_teardown(test_default_allocator_follows_the_variable, gm_test_setup,
                                      reset),
  };
  return gm_test_run("alloc_conf", tests, GM_ARRAY_SIZE(tests), argc, argv, NULL);
}
