/* test_stats_print.c: gpumem_stats_print and gpumem_stats_print_out. Exact
 * text and JSON for an application's allocator with known figures; the
 * pool's and arena's own fields for libgpumem's allocators, compared with
 * what their stats functions return; bad arguments refused with messages. */
#include <stdio.h>
#include <stdlib.h>

#include "helpers.h"

static gpumem_status fixed_stats(void *ctx, gpumem_stats *s) {
  (void)ctx;
  *s = (gpumem_stats){.struct_size = sizeof *s,
                      .bytes_in_use = 3u << 20,
                      .peak_bytes_in_use = 1536,
                      .bytes_reserved = (size_t)2 << 30,
                      .peak_bytes_reserved = 512,
                      .allocs = 7,
                      .frees = 4,
                      .failed_allocs = 1,
                      .largest_free = 0};
  return GPUMEM_OK;
}

static gpumem_status failing_stats(void *ctx, gpumem_stats *s) {
  (void)ctx;
  (void)s;
  return GPUMEM_ERR_STATE;
}

static gpumem_status no_alloc(void *ctx, size_t size, gpumem_stream_t stream, void **ptr) {
  (void)ctx, (void)size, (void)stream, (void)ptr;
  return GPUMEM_ERR_OUT_OF_MEMORY;
}

static gpumem_status no_free(void *ctx, void *ptr, size_t size, gpumem_stream_t stream) {
  (void)ctx, (void)ptr, (void)size, (void)stream;
  return GPUMEM_OK;
}

typedef struct captured {
  int calls;
  char text[4096];
} captured;

static void capture(const char *text, void *user) {
  captured *c = user;
  c->calls++;
  snprintf(c->text, sizeof c->text, "%s", text);
}

static gpumem_allocator app_allocator(void) {
  gpumem_allocator a = GPUMEM_ALLOCATOR_INIT;
  a.name = "mine";
  a.device = 1;
  a.alloc = no_alloc;
  a.free = no_free;
  a.stats = fixed_stats;
  return a;
}

static void test_text_exact(void **state) {
  (void)state;
  gpumem_allocator a = app_allocator();
  captured c = {0};
  assert_gpumem_ok(gpumem_stats_print_out(&a, capture, &c, GPUMEM_STATS_TEXT));
  assert_int_equal(c.calls, 1);
  assert_string_equal(c.text, "gpumem stats: mine on device 1\n"
                              "  in use               3 MiB (3145728 bytes)\n"
                              "  peak in use          1.50 KiB (1536 bytes)\n"
                              "  reserved             2 GiB (2147483648 bytes)\n"
                              "  peak reserved        512 B (512 bytes)\n"
                              "  allocs               7\n"
                              "  frees                4\n"
                              "  failed allocs        1\n");
}

static void test_json_exact(void **state) {
  (void)state;
  gpumem_allocator a = app_allocator();
  captured c = {0};
  assert_gpumem_ok(gpumem_stats_print_out(&a, capture, &c, GPUMEM_STATS_JSON));
  assert_string_equal(c.text, "{\"name\":\"mine\",\"device\":1,\"stats\":{\"bytes_in_use\":3145728,"
                              "\"peak_bytes_in_use\":1536,\"bytes_reserved\":2147483648,"
                              "\"peak_bytes_reserved\":512,\"allocs\":7,\"frees\":4,"
                              "\"failed_allocs\":1,\"largest_free\":0}}\n");
  /* The FILE variant writes the same bytes. */
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  assert_non_null(f);
  assert_gpumem_ok(gpumem_stats_print(&a, f, GPUMEM_STATS_JSON));
  fclose(f);
  assert_string_equal(buf, c.text);
  free(buf);
}

static void test_pool_fields(void **state) {
  (void)state;
  gpumem_pool_t *pool = NULL;
  gpumem_pool_config cfg = GPUMEM_POOL_CONFIG_INIT;
  assert_gpumem_ok(gpumem_pool_create(&cfg, &pool));
  gpumem_allocator a = GPUMEM_ALLOCATOR_INIT;
  assert_gpumem_ok(gpumem_allocator_from_pool(pool, &a));
  void *p = NULL;
  assert_gpumem_ok(a.alloc(a.ctx, 1000, NULL, &p));
  assert_gpumem_ok(a.free(a.ctx, p, 1000, NULL));
  assert_gpumem_ok(a.alloc(a.ctx, 1000, NULL, &p)); /* a cache hit */
  gpumem_pool_stats ps = GPUMEM_POOL_STATS_INIT;
  assert_gpumem_ok(gpumem_pool_get_stats(pool, &ps));
  captured c = {0};
  assert_gpumem_ok(gpumem_stats_print_out(&a, capture, &c, GPUMEM_STATS_JSON));
  char want[512];
  snprintf(want, sizeof want,
           ",\"pool\":{\"used_current\":%zu,\"used_high\":%zu,\"cached_bytes\":%zu,"
           "\"cache_hits\":1,\"cache_misses\":1}}\n",
           ps.used_current, ps.used_high, ps.cached_bytes);
  if (strstr(c.text, want) == NULL) fail_msg("no '%s' in '%s'", want, c.text);
  assert_non_null(
      strstr(c.text, "{\"name\":\"pool\",\"device\":0,\"stats\":{\"bytes_in_use\":1000,"));
  assert_gpumem_ok(gpumem_stats_print_out(&a, capture, &c, GPUMEM_STATS_TEXT));
  assert_non_null(strstr(c.text, "  cache hits           1\n  cache misses         1\n"));
  assert_gpumem_ok(a.free(a.ctx, p, 1000, NULL));
  assert_gpumem_ok(gpumem_allocator_destroy(&a));
  assert_gpumem_ok(gpumem_pool_destroy(pool));
}

static void test_arena_fields(void **state) {
  (void)state;
  gpumem_allocator a = GPUMEM_ALLOCATOR_INIT;
  assert_gpumem_ok(gpumem_allocator_create("gpumem-arena", 0, &a));
  void *p = NULL;
  assert_gpumem_ok(a.alloc(a.ctx, 4096, NULL, &p));
  captured c = {0};
  assert_gpumem_ok(gpumem_stats_print_out(&a, capture, &c, GPUMEM_STATS_TEXT));
  assert_non_null(strstr(c.text, "gpumem stats: gpumem-arena on device 0\n"));
  assert_non_null(strstr(c.text, "  chunk size           8 MiB (8388608 bytes)\n"));
  assert_non_null(strstr(c.text, "  blocks in use        1\n"));
  assert_non_null(strstr(c.text, "  growths              1\n"));
  assert_non_null(
      strstr(c.text, "  pages moved          0\n  remap                balanced, slack 5%\n"));
  assert_gpumem_ok(gpumem_stats_print_out(&a, capture, &c, GPUMEM_STATS_JSON));
  assert_non_null(strstr(c.text, "\"arena\":{\"max_size\":"));
  assert_non_null(strstr(c.text, "\"chunk_size\":8388608,\"bytes_free\":8384512,"));
  assert_non_null(
      strstr(c.text, "\"pages_remapped\":0,\"remap\":\"balanced\",\"slack_percent\":5}"));
  assert_gpumem_ok(a.free(a.ctx, p, 4096, NULL));
  assert_gpumem_ok(gpumem_allocator_destroy(&a));
  /* The memory-first arena says so. */
  assert_gpumem_ok(gpumem_allocator_create("gpumem-arena-lean", 0, &a));
  assert_gpumem_ok(gpumem_stats_print_out(&a, capture, &c, GPUMEM_STATS_TEXT));
  assert_non_null(strstr(c.text, "gpumem stats: gpumem-arena-lean on device 0\n"));
  assert_non_null(strstr(c.text, "  remap                memory, slack 5%\n"));
  assert_gpumem_ok(gpumem_stats_print_out(&a, capture, &c, GPUMEM_STATS_JSON));
  assert_non_null(strstr(c.text, "\"remap\":\"memory\""));
  assert_gpumem_ok(gpumem_allocator_destroy(&a));
}

static void test_bad_arguments(void **state) {
  (void)state;
  gpumem_allocator a = app_allocator();
  captured c = {0};
  assert_gpumem_status(gpumem_stats_print(NULL, NULL, GPUMEM_STATS_TEXT),
                       GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("allocator is NULL");
  assert_gpumem_status(gpumem_stats_print_out(&a, NULL, NULL, GPUMEM_STATS_TEXT),
                       GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("output function is NULL");
  assert_gpumem_status(gpumem_stats_print_out(&a, capture, &c, (gpumem_stats_format)7),
                       GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("format 7 is neither GPUMEM_STATS_TEXT (0) nor GPUMEM_STATS_JSON (1)");
  a.stats = NULL;
  assert_gpumem_status(gpumem_stats_print_out(&a, capture, &c, GPUMEM_STATS_TEXT),
                       GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("the allocator has no stats function");
  a.stats = failing_stats;
  assert_gpumem_status(gpumem_stats_print_out(&a, capture, &c, GPUMEM_STATS_TEXT),
                       GPUMEM_ERR_STATE);
  assert_int_equal(c.calls, 0);
}

/* Run with GPUMEM_SHOW_STATS=1 (ctest test_stats_print.show*): make two
 * allocators, destroy one, leave the other alive with a block, and exit (or
 * finalize first): the report at exit names the live one only, once. */
static int child(const char *role, int fd) {
  (void)fd;
  if (gpumem_init(NULL) != GPUMEM_OK) return 1;
  gpumem_allocator gone = GPUMEM_ALLOCATOR_INIT, kept = GPUMEM_ALLOCATOR_INIT;
  void *p = NULL;
  if (gpumem_allocator_create("gpumem-pool-nocache", 0, &gone) != GPUMEM_OK ||
      gpumem_allocator_destroy(&gone) != GPUMEM_OK ||
      gpumem_allocator_create("gpumem-arena", 1, &kept) != GPUMEM_OK ||
      kept.alloc(kept.ctx, 5000, NULL, &p) != GPUMEM_OK)
    return 1;
  if (strcmp(role, "finalize") == 0) {
    gm_test_ignore(gpumem_finalize()); /* BUSY: the arena is alive; reported first */
    fprintf(stderr, "finalized\n");
  }
  return 0; /* atexit prints, unless finalize already did */
}

int main(int argc, char **argv) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test(test_text_exact),    cmocka_unit_test(test_json_exact),
      cmocka_unit_test(test_pool_fields),   cmocka_unit_test(test_arena_fields),
      cmocka_unit_test(test_bad_arguments),
  };
  return gm_test_run("stats_print", tests, GM_ARRAY_SIZE(tests), argc, argv, child);
}
