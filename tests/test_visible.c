/* test_visible.c: CUDA_VISIBLE_DEVICES read as CUDA reads it: every form of
 * entry, CUDA's rule that the list ends at the first invalid entry, and,
 * with a (fake) NVML, entries checked against the node: unique prefixes,
 * indices that exist, MIG UUIDs and the legacy MIG-GPU-<uuid>/<gi>/<ci>
 * form, duplicates. Needs no device. */
#include <stdio.h>
#include <stdlib.h>

#include "fake_nvml.h"
#include "helpers.h"
#include "nvml.h"

static gpumem_visible_devices v;

static int no_nvml(void **state) {
  (void)state;
  gm_nvml_install(NULL, "no NVML in this test");
  gpumem_log_set_level(GPUMEM_LOG_OFF);
  return 0;
}

static int reset(void **state) {
  (void)state;
  gm_nvml_reset();
  gpumem_log_set_level(GPUMEM_LOG_WARN);
  unsetenv("CUDA_VISIBLE_DEVICES");
  return 0;
}

static void read_ok(const char *text) {
  assert_gpumem_ok(gpumem_visible_devices_read(text, &v));
}

static void expect_stop(const char *text, size_t count, size_t at, const char *why) {
  read_ok(text);
  assert_true(v.set);
  if (!v.stopped) fail_msg("'%s' should stop at entry %zu", text, at);
  assert_int_equal(v.count, count);
  assert_int_equal(v.stopped_at, at);
  if (strstr(v.why, why) == NULL) fail_msg("'%s': why '%s' lacks '%s'", text, v.why, why);
}

static void test_unset_and_empty(void **state) {
  (void)state;
  unsetenv("CUDA_VISIBLE_DEVICES");
  read_ok(NULL);
  assert_false(v.set);
  assert_int_equal(v.count, 0);
  setenv("CUDA_VISIBLE_DEVICES", "", 1);
  read_ok(NULL);
  assert_true(v.set);
  assert_int_equal(v.count, 0);
  assert_false(v.stopped); /* "" hides every device on purpose */
  assert_gpumem_status(gpumem_visible_devices_read("0", NULL), GPUMEM_ERR_INVALID_ARGUMENT);
}

static void test_forms(void **state) {
  (void)state;
  read_ok(" 0 , 2,1 ");
  assert_int_equal(v.count, 3);
  assert_false(v.stopped);
  assert_false(v.resolved);
  assert_int_equal(v.entries[0].kind, GPUMEM_VISIBLE_INDEX);
  assert_int_equal(v.entries[1].index, 2);
  assert_string_equal(v.entries[2].text, "1");
  read_ok("GPU-8b2f,MIG-a1000007-0000-4000-8000-000000000007,"
          "MIG-GPU-a1000000-0000-4000-8000-000000000000/7/0");
  assert_int_equal(v.count, 3);
  assert_int_equal(v.entries[0].kind, GPUMEM_VISIBLE_GPU_UUID);
  assert_int_equal(v.entries[1].kind, GPUMEM_VISIBLE_MIG_UUID);
  assert_int_equal(v.entries[2].kind, GPUMEM_VISIBLE_MIG_LEGACY);
  assert_int_equal(v.entries[2].gpu_instance_id, 7);
  assert_int_equal(v.entries[2].compute_instance_id, 0);
  assert_int_equal(v.entries[0].index, -1);
}

static void test_list_stops_at_first_invalid(void **state) {
  (void)state;
  expect_stop("1,foo,2", 1, 1, "is not an index, GPU-<uuid>, MIG-<uuid>");
  assert_string_equal(v.stopped_text, "foo");
  expect_stop("0,,1", 1, 1, "an empty entry");
  expect_stop("-1", 0, 0, "'-1' is not an index");
  expect_stop("0,GPU-xyz", 1, 1, "is not GPU- followed by a UUID");
  expect_stop("MIG-abc", 0, 0, "is not MIG- followed by a full UUID");
  expect_stop("MIG-GPU-a1000000-0000-4000-8000-000000000000/7", 0, 0, "is not MIG-GPU-<uuid>");
  expect_stop("MIG-GPU-a100/7/0", 0, 0, "does not hold a full GPU UUID");
  expect_stop("3,99999999", 1, 1, "out of range");
  expect_stop("2,1,2", 2, 2, "names the same device as entry 0");
  char many[400] = "";
  for (int i = 0; i < GPUMEM_MAX_DEVICES + 1; i++) {
    snprintf(many + strlen(many), sizeof many - strlen(many), "%s%d", i ? "," : "", i);
  }
  expect_stop(many, GPUMEM_MAX_DEVICES, GPUMEM_MAX_DEVICES, "more than 64 entries");
}

static void test_invalid_entry_is_warned(void **state) {
  (void)state;
  gm_test_log log = {0};
  gpumem_log_set_level(GPUMEM_LOG_WARN);
  gpumem_log_set_callback(gm_test_log_capture, &log);
  read_ok("0,bogus");
  gpumem_log_set_callback(NULL, NULL);
  assert_int_equal(log.count, 1);
  assert_non_null(strstr(log.line, "CUDA_VISIBLE_DEVICES='0,bogus': entry 1:"));
  assert_non_null(strstr(log.line, "CUDA ignores it and every entry after it"));
}

static void test_resolved_against_the_node(void **state) {
  (void)state;
  fake_nvml_use(&fake_eight_gpus, NULL);
  read_ok("GPU-c1000003,7");
  assert_true(v.resolved);
  assert_int_equal(v.count, 2);
  assert_string_equal(v.entries[0].resolved, "GPU-c1000003-0000-4000-8000-000000000003");
  assert_string_equal(v.entries[1].resolved, "GPU-c1000007-0000-4000-8000-000000000007");
  expect_stop("0,GPU-c1", 1, 1, "matches 8 GPUs (ambiguous prefix)");
  expect_stop("GPU-dead", 0, 0, "matches no GPU");
  expect_stop("1,8", 1, 1, "index 8, but the node has 8 GPU(s)");
  expect_stop("3,GPU-c1000003", 1, 1, "names the same device as entry 0");

  fake_nvml_use(&fake_a100_seven_slices, NULL);
  read_ok("MIG-A1000009-0000-4000-8000-000000000009,"
          "MIG-GPU-a1000000-0000-4000-8000-000000000000/12/0");
  assert_int_equal(v.count, 2);
  assert_string_equal(v.entries[0].resolved, "MIG-a1000009-0000-4000-8000-000000000009");
  assert_string_equal(v.entries[1].resolved, "MIG-a100000c-0000-4000-8000-00000000000c");
  expect_stop("MIG-a1000009-0000-4000-8000-00000000000f", 0, 0, "matches no MIG device");
  expect_stop("MIG-GPU-a1000000-0000-4000-8000-000000000000/99/0", 0, 0, "matches no MIG device");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_unset_and_empty, no_nvml, reset),
      cmocka_unit_test_setup_teardown(test_forms, no_nvml, reset),
      cmocka_unit_test_setup_teardown(test_list_stops_at_first_invalid, no_nvml, reset),
      cmocka_unit_test_setup_teardown(test_invalid_entry_is_warned, no_nvml, reset),
      cmocka_unit_test_setup_teardown(test_resolved_against_the_node, no_nvml, reset),
  };
  return cmocka_run_group_tests_name("visible", tests, NULL, NULL);
}
