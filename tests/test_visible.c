/* test_visible.c: CUDA_VISIBLE_DEVICES read as the CUDA driver reads it:
 * every form of entry, the list ending at the first invalid entry, an index
 * read like strtoul, a device named twice hiding every device, and, with a
 * (fake) NVML, entries checked against the node: unique prefixes, indices
 * that exist, MIG UUIDs and the legacy MIG-GPU-<uuid>/<gi>/<ci> form, a GPU
 * in MIG mode standing for its slices, and which GPU an index names under
 * CUDA_DEVICE_ORDER (PCI order, the driver's own fastest-first order through
 * a fake CUDA backend, or unknown). Also the MIG facts a device's CUDA name
 * gives when NVML is missing. Needs no device. */
#include <stdio.h>
#include <stdlib.h>

#include "backend.h"
#include "fake_nvml.h"
#include "helpers.h"
#include "mig.h"
#include "backend/nvml.h"
#include "uuid.h"

static gpumem_visible_devices v;

static int no_nvml(void **state) {
  (void)state;
  gm_nvml_install(NULL, "no NVML in this test");
  gm_test_ignore(gpumem_log_set_level(GPUMEM_LOG_OFF));
  return 0;
}

static int reset(void **state) {
  (void)state;
  gm_nvml_reset();
  gm_backend_install(NULL);
  gm_test_ignore(gpumem_log_set_level(GPUMEM_LOG_WARN));
  unsetenv("CUDA_VISIBLE_DEVICES");
  unsetenv("CUDA_DEVICE_ORDER");
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
  assert_true(v.hides_all);
  char many[400] = "";
  for (int i = 0; i < GPUMEM_MAX_DEVICES + 1; i++) {
    snprintf(many + strlen(many), sizeof many - strlen(many), "%s%d", i ? "," : "", i);
  }
  expect_stop(many, GPUMEM_MAX_DEVICES, GPUMEM_MAX_DEVICES, "more than 64 entries");
}

static void test_invalid_entry_is_warned(void **state) {
  (void)state;
  gm_test_log log = {0};
  assert_gpumem_ok(gpumem_log_set_level(GPUMEM_LOG_WARN));
  assert_gpumem_ok(gpumem_log_set_callback(gm_test_log_capture, &log));
  read_ok("0,bogus");
  assert_gpumem_ok(gpumem_log_set_callback(NULL, NULL));
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

/* An index is its leading digits, as strtoul reads it. */
static void test_index_read_like_strtoul(void **state) {
  (void)state;
  read_ok("1gpu2, 0x");
  assert_false(v.stopped);
  assert_int_equal(v.count, 2);
  assert_int_equal(v.entries[0].kind, GPUMEM_VISIBLE_INDEX);
  assert_int_equal(v.entries[0].index, 1);
  assert_string_equal(v.entries[0].text, "1gpu2");
  assert_int_equal(v.entries[1].index, 0);
  expect_stop("0,gpu1", 1, 1, "'gpu1' is not an index");
}

/* A device named twice: CUDA shows no device at all, not the entries before
 * it (the end of the list at an invalid entry keeps those). */
static void test_device_named_twice_hides_all(void **state) {
  (void)state;
  expect_stop("0,00", 1, 1, "'00' names the same device as entry 0");
  assert_true(v.hides_all);
  expect_stop("0,1,x", 2, 2, "'x' is not an index");
  assert_false(v.hides_all);

  fake_nvml_use(&fake_eight_gpus, NULL);
  read_ok("2,1");
  assert_int_equal(v.device_count, 2);
  assert_string_equal(v.devices[0], "GPU-c1000002-0000-4000-8000-000000000002");
  expect_stop("5,2,GPU-c1000005", 2, 2, "names the same device as entry 0");
  assert_true(v.hides_all);
  assert_int_equal(v.device_count, 0);
  gm_test_log log = {0};
  assert_gpumem_ok(gpumem_log_set_level(GPUMEM_LOG_WARN));
  assert_gpumem_ok(gpumem_log_set_callback(gm_test_log_capture, &log));
  read_ok("4,4");
  assert_gpumem_ok(gpumem_log_set_callback(NULL, NULL));
  assert_int_equal(log.count, 1);
  assert_non_null(strstr(log.line, "a device named twice makes CUDA show no device at all"));
}

/* An index or GPU- UUID naming a GPU in MIG mode stands for its slices. */
static void test_mig_gpu_stands_for_its_slices(void **state) {
  (void)state;
  fake_nvml_use(&fake_mixed, NULL);
  read_ok("1,0");
  assert_true(v.resolved);
  assert_int_equal(v.index_order, GPUMEM_INDEX_ORDER_ASSUMED); /* two alike H100s */
  assert_int_equal(v.device_count, 4);
  assert_string_equal(v.entries[1].resolved, "GPU-b1000000-0000-4000-8000-000000000000");
  assert_string_equal(v.devices[0], "GPU-c1000010-0000-4000-8000-000000000010");
  assert_string_equal(v.devices[1], "MIG-b1000002-0000-4000-8000-000000000002");
  assert_string_equal(v.devices[3], "MIG-b1000004-0000-4000-8000-000000000004");
  read_ok("MIG-b1000003-0000-4000-8000-000000000003,1");
  assert_int_equal(v.device_count, 2);
  expect_stop("GPU-b1,MIG-b1000003-0000-4000-8000-000000000003", 1, 1,
              "names the same device as entry 0");
  assert_true(v.hides_all);
}

/* An A100 at the lower PCI bus id, an H100 after it: CUDA's default order
 * (fastest first) need not be NVML's. */
static const fake_node two_models = {
    "an A100 and an H100",
    2,
    {{"GPU-d1000000-0000-4000-8000-000000000000", "NVIDIA A100-SXM4-80GB", 0, 0, {{0}}},
     {"GPU-d2000000-0000-4000-8000-000000000000", "NVIDIA H100 80GB HBM3", 0, 0, {{0}}}}};

/* A CUDA driver that enumerates the H100 first. */
static gpumem_status fast_first_count(int *count) {
  *count = 2;
  return GPUMEM_OK;
}
static gpumem_status fast_first_props(int device, gm_device_props *out) {
  memset(out, 0, sizeof *out);
  const char *uuid = two_models.gpus[device == 0 ? 1 : 0].uuid;
  assert_true(gm_uuid_parse(uuid, out->uuid));
  return GPUMEM_OK;
}

static void test_index_order_follows_cuda_device_order(void **state) {
  (void)state;
  fake_nvml_use(&two_models, NULL);
  /* No driver to ask and the GPUs differ: index entries cannot be checked. */
  read_ok("0,GPU-d2");
  assert_int_equal(v.index_order, GPUMEM_INDEX_ORDER_UNKNOWN);
  assert_false(v.resolved);
  assert_int_equal(v.count, 2);
  read_ok("GPU-d2"); /* without an index the node is still checked */
  assert_true(v.resolved);
  assert_string_equal(v.devices[0], "GPU-d2000000-0000-4000-8000-000000000000");
  /* PCI_BUS_ID: NVML's order. */
  setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID", 1);
  read_ok("0");
  assert_int_equal(v.index_order, GPUMEM_INDEX_ORDER_PCI_BUS_ID);
  assert_string_equal(v.entries[0].resolved, "GPU-d1000000-0000-4000-8000-000000000000");
  /* Fastest first, from the CUDA driver's own enumeration. */
  static gm_backend_ops driver;
  memset(&driver, 0, sizeof driver);
  driver.name = "fake-cuda";
  driver.kind = GM_BACKEND_CUDA;
  driver.device_count = fast_first_count;
  driver.device_props = fast_first_props;
  gm_backend_install(&driver);
  setenv("CUDA_DEVICE_ORDER", "FASTEST_FIRST", 1);
  read_ok("0,1");
  assert_int_equal(v.index_order, GPUMEM_INDEX_ORDER_CUDA);
  assert_string_equal(v.entries[0].resolved, "GPU-d2000000-0000-4000-8000-000000000000");
  assert_string_equal(v.entries[1].resolved, "GPU-d1000000-0000-4000-8000-000000000000");
  /* The process's own list filters what the driver shows: it cannot be asked. */
  setenv("CUDA_VISIBLE_DEVICES", "1", 1);
  read_ok(NULL);
  assert_int_equal(v.index_order, GPUMEM_INDEX_ORDER_UNKNOWN);
  assert_false(v.resolved);
}

/* The driver names a MIG device "<GPU> MIG <profile>". */
static void test_mig_device_name(void **state) {
  (void)state;
  const char *p = gm_mig_name_profile("NVIDIA A100-SXM4-40GB MIG 1g.5gb");
  assert_non_null(p);
  assert_string_equal(p, "1g.5gb");
  assert_non_null(gm_mig_name_profile("NVIDIA H100 80GB HBM3 MIG 1c.3g.40gb"));
  assert_non_null(gm_mig_name_profile("NVIDIA H100 80GB HBM3 MIG 1g.10gb+me"));
  assert_null(gm_mig_name_profile("NVIDIA H100 80GB HBM3"));
  assert_null(gm_mig_name_profile("NVIDIA H100 MIG"));
  assert_null(gm_mig_name_profile("MIG 1g.5gb")); /* no GPU name before it */
  assert_null(gm_mig_name_profile("NVIDIA A100 MIG 1g.5"));

  /* Without NVML the name still tells a slice (of an unknown GPU). */
  gpumem_device_info info;
  memset(&info, 0, sizeof info);
  snprintf(info.name, sizeof info.name, "NVIDIA A100-SXM4-80GB MIG 1g.10gb");
  snprintf(info.uuid, sizeof info.uuid, "MIG-a1000007-0000-4000-8000-000000000007");
  unsigned char bytes[16];
  assert_true(gm_uuid_parse(info.uuid, bytes));
  gm_mig_describe(bytes, &info);
  assert_int_equal(info.mig, GPUMEM_YES);
  assert_int_equal(info.parent_mig_mode, GPUMEM_YES);
  assert_string_equal(info.parent_uuid, "");
  assert_int_equal(info.gpu_instance_id, -1);
  assert_non_null(strstr(info.mig_note, "a MIG 1g.10gb device by its CUDA name"));
  assert_non_null(strstr(info.mig_note, "no NVML in this test"));
  snprintf(info.name, sizeof info.name, "NVIDIA A100-SXM4-80GB");
  gm_mig_describe(bytes, &info);
  assert_int_equal(info.mig, GPUMEM_UNKNOWN);
  assert_string_equal(info.mig_note, "no NVML in this test");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_unset_and_empty, no_nvml, reset),
      cmocka_unit_test_setup_teardown(test_forms, no_nvml, reset),
      cmocka_unit_test_setup_teardown(test_list_stops_at_first_invalid, no_nvml, reset),
      cmocka_unit_test_setup_teardown(test_invalid_entry_is_warned, no_nvml, reset),
      cmocka_unit_test_setup_teardown(test_resolved_against_the_node, no_nvml, reset),
      cmocka_unit_test_setup_teardown(test_index_read_like_strtoul, no_nvml, reset),
      cmocka_unit_test_setup_teardown(test_device_named_twice_hides_all, no_nvml, reset),
      cmocka_unit_test_setup_teardown(test_mig_gpu_stands_for_its_slices, no_nvml, reset),
      cmocka_unit_test_setup_teardown(test_index_order_follows_cuda_device_order, no_nvml, reset),
      cmocka_unit_test_setup_teardown(test_mig_device_name, no_nvml, reset),
  };
  return cmocka_run_group_tests_name("visible", tests, NULL, NULL);
}
