/* test_fault.c: failure injection and the live-object counters, the tools
 * every rollback test relies on. Runs on both backends: injection happens in
 * the seam, before the backend is reached. */
#include <pthread.h>
#include <stdlib.h>

#include "backend.h"
#include "helpers.h"
#include "internal.h"

static size_t granularity(void) {
  gpumem_phys_props p = GPUMEM_PHYS_PROPS_INIT;
  size_t g = 0;
  assert_gpumem_ok(gpumem_vmm_granularity(&p, false, &g));
  return g;
}

static void test_nth_call_fails(void **state) {
  (void)state;
  size_t g = granularity();
  gpumem_phys_props props = GPUMEM_PHYS_PROPS_INIT;
  gpumem_phys_t h[3] = {0, 0, 0};
  gm_backend_counters c0, c1;
  gm_backend_get_counters(&c0);
  uint64_t calls = gm_backend_calls(GM_OP_phys_create);
  gm_fault_inject(GM_OP_phys_create, 2, GPUMEM_ERR_INJECTED);
  assert_gpumem_ok(gpumem_vmm_create(&props, g, &h[0]));
  assert_gpumem_status(gpumem_vmm_create(&props, g, &h[1]), GPUMEM_ERR_INJECTED);
  assert_last_error_contains("gpumem_vmm_create: injected failure: call ");
  assert_last_error_contains(" of backend operation phys_create");
  assert_int_equal(h[1], 0);
  assert_gpumem_ok(gpumem_vmm_create(&props, g, &h[2])); /* one-shot */
  assert_int_equal(gm_backend_calls(GM_OP_phys_create), calls + 3);
  gm_backend_get_counters(&c1);
  assert_int_equal(c1.phys_handles - c0.phys_handles, 2);
  assert_int_equal(c1.phys_bytes - c0.phys_bytes, 2 * g);
  assert_gpumem_ok(gpumem_vmm_release(h[0]));
  assert_gpumem_ok(gpumem_vmm_release(h[2]));
}

static void test_injected_status_is_chosen(void **state) {
  (void)state;
  void *va = NULL;
  gm_fault_inject(GM_OP_va_reserve, 1, GPUMEM_ERR_OUT_OF_MEMORY);
  assert_gpumem_status(gpumem_vmm_reserve(granularity(), 0, &va), GPUMEM_ERR_OUT_OF_MEMORY);
  assert_last_error_contains("(GPUMEM_ERR_OUT_OF_MEMORY)");
  assert_null(va);
  gm_backend_counters c;
  gm_backend_get_counters(&c);
  assert_int_equal(c.reservations, 0);
}

static void test_failed_map_leaves_nothing(void **state) {
  (void)state;
  size_t g = granularity();
  void *va = NULL;
  gpumem_phys_t h = 0;
  gpumem_phys_props props = GPUMEM_PHYS_PROPS_INIT;
  assert_gpumem_ok(gpumem_vmm_reserve(g, 0, &va));
  assert_gpumem_ok(gpumem_vmm_create(&props, g, &h));
  gm_fault_inject(GM_OP_map, 1, GPUMEM_ERR_INJECTED);
  assert_gpumem_status(gpumem_vmm_map(va, g, 0, h), GPUMEM_ERR_INJECTED);
  gm_backend_counters c;
  gm_backend_get_counters(&c);
  assert_int_equal(c.mapped_bytes, 0);
  /* Nothing was mapped: the same map now succeeds. */
  assert_gpumem_ok(gpumem_vmm_map(va, g, 0, h));
  assert_gpumem_ok(gpumem_vmm_unmap(va, g));
  assert_gpumem_ok(gpumem_vmm_release(h));
  assert_gpumem_ok(gpumem_vmm_free(va, g));
}

static void test_disarm(void **state) {
  (void)state;
  gpumem_phys_props props = GPUMEM_PHYS_PROPS_INIT;
  gpumem_phys_t h = 0;
  gm_fault_inject(GM_OP_phys_create, 1, GPUMEM_ERR_INJECTED);
  gm_fault_inject(GM_OP_phys_create, 0, GPUMEM_ERR_INJECTED);
  assert_gpumem_ok(gpumem_vmm_create(&props, granularity(), &h));
  assert_gpumem_ok(gpumem_vmm_release(h));
  gm_fault_inject(GM_OP_phys_release, 1, GPUMEM_ERR_INJECTED);
  gm_fault_clear();
  assert_gpumem_ok(gpumem_vmm_create(&props, granularity(), &h));
  assert_gpumem_ok(gpumem_vmm_release(h));
}

static void test_failed_release_keeps_handle_live(void **state) {
  (void)state;
  gpumem_phys_props props = GPUMEM_PHYS_PROPS_INIT;
  gpumem_phys_t h = 0;
  assert_gpumem_ok(gpumem_vmm_create(&props, granularity(), &h));
  gm_fault_inject(GM_OP_phys_release, 1, GPUMEM_ERR_INJECTED);
  assert_gpumem_status(gpumem_vmm_release(h), GPUMEM_ERR_INJECTED);
  assert_gpumem_ok(gpumem_vmm_release(h)); /* still live, not "released twice" */
}

static void test_op_names_and_parser(void **state) {
  (void)state;
  for (int op = 0; op < GM_OP_COUNT; op++) {
    const char *name = gm_op_name((gm_op)op);
    assert_non_null(name);
    assert_int_equal(gm_op_from_name(name), op);
  }
  assert_null(gm_op_name(GM_OP_COUNT));
  assert_int_equal(gm_op_from_name("launch_rocket"), GM_OP_COUNT);
  const char *bad[] = {"", "map", "map:", "map:0", "map:x", "nosuch:1", "map:1:2", ":3", NULL};
  for (size_t i = 0; i < GM_ARRAY_SIZE(bad); i++) {
    if (gm_fault_parse(bad[i])) fail_msg("'%s' should be rejected", bad[i] ? bad[i] : "NULL");
  }
  uint64_t before = gm_backend_calls(GM_OP_stream_create);
  assert_true(gm_fault_parse("stream_create:2,event_create:1"));
  gpumem_stream_t s = NULL, s2 = NULL;
  gpumem_event_t ev = NULL;
  assert_gpumem_ok(gpumem_stream_create(0, &s));
  assert_gpumem_status(gpumem_stream_create(0, &s2), GPUMEM_ERR_INJECTED);
  assert_gpumem_status(gpumem_event_create(0, &ev), GPUMEM_ERR_INJECTED);
  assert_int_equal(gm_backend_calls(GM_OP_stream_create), before + 2);
  assert_gpumem_ok(gpumem_stream_destroy(s));
}

/* N is decimal digits only: strtoull took "-1" as ULLONG_MAX (a fault that
 * never fires), and a blank or a plus sign, and clamped an overflow. */
static void test_fault_counts_parsed_strictly(void **state) {
  (void)state;
  const char *bad[] = {"map:-1",
                       "map:+1",
                       "map: 1",
                       "map:18446744073709551616",
                       "map:99999999999999999999999",
                       "map:1,unmap:-2"};
  for (size_t i = 0; i < GM_ARRAY_SIZE(bad); i++) {
    if (gm_fault_parse(bad[i])) fail_msg("'%s' should be rejected", bad[i]);
  }
  assert_true(gm_fault_parse("map:18446744073709551615")); /* the largest count */
  gm_fault_clear();
}

static void test_environment_arms_injection(void **state) {
  (void)state;
  assert_gpumem_ok(gpumem_finalize());
  setenv("GPUMEM_FAULT", "phys_create:1", 1);
  assert_gpumem_ok(gpumem_init(NULL));
  unsetenv("GPUMEM_FAULT");
  gpumem_phys_props props = GPUMEM_PHYS_PROPS_INIT;
  gpumem_phys_t h = 0;
  assert_gpumem_status(gpumem_vmm_create(&props, granularity(), &h), GPUMEM_ERR_INJECTED);
  assert_gpumem_ok(gpumem_vmm_create(&props, granularity(), &h));
  assert_gpumem_ok(gpumem_vmm_release(h));
}

typedef struct worker {
  int failures;
  int iterations;
} worker;

static void *create_release_loop(void *arg) {
  worker *w = arg;
  gpumem_phys_props props = GPUMEM_PHYS_PROPS_INIT;
  size_t g = 0;
  gm_test_ignore(gpumem_vmm_granularity(&props, false, &g));
  for (int i = 0; i < w->iterations; i++) {
    gpumem_phys_t h = 0;
    gpumem_status st = gpumem_vmm_create(&props, g, &h);
    if (st == GPUMEM_ERR_INJECTED)
      w->failures++;
    else if (st == GPUMEM_OK)
      gm_test_ignore(gpumem_vmm_release(h));
    else
      w->failures += 1000;
  }
  return NULL;
}

/* Exactly one call fails, whichever thread makes it. */
static void test_injection_across_threads(void **state) {
  (void)state;
  gm_fault_inject(GM_OP_phys_create, 50, GPUMEM_ERR_INJECTED);
  pthread_t t[4];
  worker w[4];
  for (int i = 0; i < 4; i++) {
    w[i] = (worker){0, 40};
    pthread_create(&t[i], NULL, create_release_loop, &w[i]);
  }
  for (int i = 0; i < 4; i++)
    pthread_join(t[i], NULL);
  int failures = 0;
  for (int i = 0; i < 4; i++)
    failures += w[i].failures;
  assert_int_equal(failures, 1);
}

int main(int argc, char **argv) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test(test_nth_call_fails),
      cmocka_unit_test(test_injected_status_is_chosen),
      cmocka_unit_test(test_failed_map_leaves_nothing),
      cmocka_unit_test(test_disarm),
      cmocka_unit_test(test_failed_release_keeps_handle_live),
      cmocka_unit_test(test_op_names_and_parser),
      cmocka_unit_test(test_fault_counts_parsed_strictly),
      cmocka_unit_test(test_environment_arms_injection),
      cmocka_unit_test(test_injection_across_threads),
  };
  return gm_test_run("fault", tests, GM_ARRAY_SIZE(tests), argc, argv, NULL);
}
