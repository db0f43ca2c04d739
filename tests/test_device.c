/* test_device.c: discovery with MIG, device selection per rank, and peer
 * queries, on MIG layouts simulated without MIG hardware: the host backend
 * presents the devices CUDA would show (their UUIDs set through
 * GPUMEM_HOST_UUIDS) and a fake NVML table describes the node (an A100 with
 * seven 1g.10gb slices, an H100 split 3g.40gb + 2 x 2g.20gb, eight GPUs
 * without MIG, and a split H100 next to a whole one). On the GPU the CUDA
 * variant checks discovery against the real NVML and nvidia-smi. */
#include <stdio.h>
#include <stdlib.h>

#include "fake_nvml.h"
#include "helpers.h"
#include "backend/nvml.h"

#define GiB ((size_t)1 << 30)

/* Bring the host backend up with the CUDA-visible devices of `node`. */
static void use_node(const fake_node *node, const char *peers, const char *fail_call) {
  if (!gm_test_on_host()) skip(); /* simulated layouts run on the host backend */
  char uuids[1024];
  fake_nvml_use(node, fail_call);
  gm_test_ignore(gpumem_finalize());
  gpumem_init_options o = GPUMEM_INIT_OPTIONS_INIT;
  o.backend = GPUMEM_BACKEND_HOST;
  o.host_devices = fake_cuda_count(node);
  o.host_capacity = 8 * GiB;
  o.host_uuids = fake_cuda_uuids(node, uuids, sizeof uuids);
  o.host_peers = peers;
  assert_gpumem_ok(gpumem_init(&o));
}

static int reset(void **state) {
  int rc = gm_test_teardown(state);
  unsetenv("SLURM_LOCALID");
  unsetenv("OMPI_COMM_WORLD_LOCAL_RANK");
  unsetenv("PMI_LOCAL_RANK");
  gm_nvml_reset();
  gm_test_ignore(gpumem_finalize());
  return rc;
}

static gpumem_device_info info_of(int d) {
  gpumem_device_info info;
  assert_gpumem_ok(gpumem_device_get_info(d, &info));
  return info;
}

static void test_discovery_a100_seven_slices(void **state) {
  (void)state;
  use_node(&fake_a100_seven_slices, "none", NULL);
  const fake_gpu *gpu = &fake_a100_seven_slices.gpus[0];
  for (int d = 0; d < 7; d++) {
    gpumem_device_info info = info_of(d);
    assert_string_equal(info.uuid, gpu->slices[d].uuid);
    assert_int_equal(info.mig, GPUMEM_YES);
    assert_int_equal(info.parent_mig_mode, GPUMEM_YES);
    assert_string_equal(info.parent_uuid, gpu->uuid);
    assert_int_equal(info.gpu_instance_id, 7 + d);
    assert_int_equal(info.compute_instance_id, 0);
    assert_int_equal(info.gpu_instance_slices, 1);
    assert_int_equal(info.compute_instance_slices, 1);
    assert_string_equal(info.mig_note, "");
  }
}

static void test_discovery_h100_split(void **state) {
  (void)state;
  use_node(&fake_h100_split, "none", NULL);
  const int slices[3] = {3, 2, 2}, gis[3] = {2, 3, 4};
  for (int d = 0; d < 3; d++) {
    gpumem_device_info info = info_of(d);
    assert_int_equal(info.mig, GPUMEM_YES);
    assert_int_equal(info.gpu_instance_id, gis[d]);
    assert_int_equal(info.gpu_instance_slices, slices[d]);
    assert_int_equal(info.compute_instance_slices, slices[d]);
    assert_string_equal(info.parent_uuid, fake_h100_split.gpus[0].uuid);
  }
}

static void test_discovery_without_mig(void **state) {
  (void)state;
  use_node(&fake_eight_gpus, "all", NULL);
  int count = 0;
  assert_gpumem_ok(gpumem_device_count(&count));
  assert_int_equal(count, 8);
  for (int d = 0; d < 8; d++) {
    gpumem_device_info info = info_of(d);
    assert_string_equal(info.uuid, fake_eight_gpus.gpus[d].uuid);
    assert_int_equal(info.mig, GPUMEM_NO);
    assert_int_equal(info.parent_mig_mode, GPUMEM_NO);
    assert_string_equal(info.parent_uuid, info.uuid);
    assert_int_equal(info.gpu_instance_id, -1);
    assert_int_equal(info.compute_instance_id, -1);
    assert_int_equal(info.gpu_instance_slices, 0);
  }
}

static void test_nvml_missing_means_unknown(void **state) {
  (void)state;
  use_node(&fake_a100_seven_slices, "none", NULL);
  gm_nvml_install(NULL, "libnvidia-ml.so.1 could not be loaded (test)");
  gpumem_device_info info = info_of(0);
  assert_int_equal(info.mig, GPUMEM_UNKNOWN);
  assert_int_equal(info.parent_mig_mode, GPUMEM_UNKNOWN);
  assert_string_equal(info.parent_uuid, "");
  assert_int_equal(info.gpu_instance_id, -1);
  assert_string_equal(info.mig_note, "libnvidia-ml.so.1 could not be loaded (test)");
  /* CUDA's bytes, written the only way CUDA can: with the GPU- prefix. */
  assert_string_equal(info.uuid, "GPU-a1000007-0000-4000-8000-000000000007");
  assert_true(info.vmm); /* the rest of the info is unaffected */
  gpumem_mig_gpu gpus[2];
  size_t n = 0;
  assert_gpumem_status(gpumem_mig_layout(gpus, 2, &n), GPUMEM_ERR_NOT_SUPPORTED);
  assert_last_error_contains("NVML unavailable: libnvidia-ml.so.1 could not be loaded (test)");
}

static void test_nvml_error_is_a_warning(void **state) {
  (void)state;
  use_node(&fake_h100_split, "none", "nvmlDeviceGetAttributes_v2");
  gm_test_log log = {0};
  assert_gpumem_ok(gpumem_log_set_callback(gm_test_log_capture, &log));
  gpumem_device_info info;
  gpumem_status st = gpumem_device_get_info(1, &info);
  assert_gpumem_ok(gpumem_log_set_callback(NULL, NULL));
  assert_gpumem_ok(st);
  assert_int_equal(info.mig, GPUMEM_UNKNOWN);
  assert_non_null(strstr(info.mig_note, "nvmlDeviceGetAttributes_v2 failed: Unknown Error (fake)"));
  assert_int_equal(log.count, 1);
  assert_non_null(strstr(log.line, "gpumem: warn: device 1: nvmlDeviceGetAttributes_v2 failed"));
}

static void test_mig_layout(void **state) {
  (void)state;
  use_node(&fake_mixed, "none", NULL);
  gpumem_mig_gpu gpus[4];
  size_t n = 0;
  assert_gpumem_ok(gpumem_mig_layout(gpus, 4, &n));
  assert_int_equal(n, 2);
  assert_int_equal(gpus[0].mig_mode, GPUMEM_YES);
  assert_int_equal(gpus[0].slice_count, 3);
  assert_string_equal(gpus[0].slices[0].uuid, "MIG-b1000002-0000-4000-8000-000000000002");
  assert_int_equal(gpus[0].slices[0].sm_count, 60);
  assert_int_equal(gpus[0].slices[0].memory_bytes, (size_t)40192 << 20);
  assert_int_equal(gpus[0].slices[2].gpu_instance_id, 4);
  assert_int_equal(gpus[1].mig_mode, GPUMEM_NO);
  assert_int_equal(gpus[1].slice_count, 0);
  assert_string_equal(gpus[1].name, "NVIDIA H100 80GB HBM3");
  /* `max` smaller than the node: the count still says how many there are. */
  assert_gpumem_ok(gpumem_mig_layout(gpus, 1, &n));
  assert_int_equal(n, 2);
  assert_gpumem_ok(gpumem_mig_layout(NULL, 0, &n));
  assert_gpumem_status(gpumem_mig_layout(gpus, 4, NULL), GPUMEM_ERR_INVALID_ARGUMENT);
}

static int select_rank(int rank) {
  gpumem_select_criteria c = GPUMEM_SELECT_CRITERIA_INIT;
  c.local_rank = rank;
  gpumem_selection s;
  assert_gpumem_ok(gpumem_device_select(&c, &s));
  assert_int_equal(s.local_rank, rank);
  return s.ordinal;
}

static void test_select_per_rank(void **state) {
  (void)state;
  use_node(&fake_eight_gpus, "all", NULL);
  for (int r = 0; r < 16; r++)
    assert_int_equal(select_rank(r), r % 8);
  use_node(&fake_a100_seven_slices, "none", NULL);
  for (int r = 0; r < 14; r++)
    assert_int_equal(select_rank(r), r % 7);
  /* Two GPUs, one split in three (devices 0-2), one whole (device 3): ranks
   * alternate between the GPUs before stacking on the slices. */
  use_node(&fake_mixed, "none", NULL);
  const int expect[8] = {0, 3, 1, 3, 2, 3, 0, 3};
  for (int r = 0; r < 8; r++)
    assert_int_equal(select_rank(r), expect[r]);
  gpumem_select_criteria c = GPUMEM_SELECT_CRITERIA_INIT;
  c.local_rank = 2;
  gpumem_selection s;
  assert_gpumem_ok(gpumem_device_select(&c, &s));
  assert_int_equal(s.candidates, 4);
  assert_non_null(strstr(s.reason, "rank 2: 2 physical GPU(s)"));
  assert_non_null(strstr(s.reason, "GPU-b1000000-0000-4000-8000-000000000000"));
  assert_non_null(strstr(s.reason, "device 1 (MIG-b1000003"));
}

static void test_select_rank_from_environment(void **state) {
  (void)state;
  use_node(&fake_eight_gpus, "all", NULL);
  gpumem_select_criteria c = GPUMEM_SELECT_CRITERIA_INIT;
  c.local_rank = GPUMEM_RANK_FROM_ENV;
  gpumem_selection s;
  assert_gpumem_ok(gpumem_device_select(&c, &s)); /* no variable: no rank */
  assert_int_equal(s.local_rank, -1);
  assert_null(s.rank_variable);
  assert_int_equal(s.ordinal, 0);
  setenv("OMPI_COMM_WORLD_LOCAL_RANK", "5", 1);
  assert_gpumem_ok(gpumem_device_select(&c, &s));
  assert_int_equal(s.ordinal, 5);
  assert_string_equal(s.rank_variable, "OMPI_COMM_WORLD_LOCAL_RANK");
  assert_non_null(strstr(s.reason, "rank from OMPI_COMM_WORLD_LOCAL_RANK"));
  setenv("SLURM_LOCALID", "3", 1); /* SLURM's comes first */
  assert_gpumem_ok(gpumem_device_select(&c, &s));
  assert_int_equal(s.ordinal, 3);
  assert_string_equal(s.rank_variable, "SLURM_LOCALID");
  setenv("SLURM_LOCALID", "three", 1);
  assert_gpumem_status(gpumem_device_select(&c, &s), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("SLURM_LOCALID='three' is not a node-local rank");
  setenv("SLURM_LOCALID", "-1", 1);
  int rank = 0;
  const char *var = NULL;
  assert_gpumem_status(gpumem_local_rank(&rank, &var), GPUMEM_ERR_INVALID_ARGUMENT);
  setenv("SLURM_LOCALID", " 12 ", 1);
  assert_gpumem_ok(gpumem_local_rank(&rank, &var));
  assert_int_equal(rank, 12);
  assert_string_equal(var, "SLURM_LOCALID");
}

static void test_select_by_criteria(void **state) {
  (void)state;
  use_node(&fake_mixed, "none", NULL);
  gpumem_select_criteria c = GPUMEM_SELECT_CRITERIA_INIT;
  gpumem_selection s;
  c.uuid = "MIG-b1000004";
  assert_gpumem_ok(gpumem_device_select(&c, &s));
  assert_int_equal(s.ordinal, 2);
  c.uuid = "gpu-c1000010"; /* case does not matter */
  assert_gpumem_ok(gpumem_device_select(&c, &s));
  assert_int_equal(s.ordinal, 3);
  c.uuid = "GPU-b1000000-0000-4000-8000-000000000000"; /* a GPU's UUID selects its slices */
  c.local_rank = 1;
  assert_gpumem_ok(gpumem_device_select(&c, &s));
  assert_int_equal(s.ordinal, 1);
  assert_int_equal(s.candidates, 3);
  c.local_rank = -1;
  c.uuid = "MIG-b100000";
  assert_gpumem_status(gpumem_device_select(&c, &s), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("matches two devices, 0 (MIG-b1000002");
  c.uuid = "GPU-ffff";
  assert_gpumem_status(gpumem_device_select(&c, &s), GPUMEM_ERR_NOT_FOUND);
  assert_last_error_contains("the UUID removed the last candidates");
  c.uuid = NULL;
  c.mig = GPUMEM_MIG_EXCLUDE;
  assert_gpumem_ok(gpumem_device_select(&c, &s));
  assert_int_equal(s.ordinal, 3);
  c.mig = GPUMEM_MIG_PREFER;
  c.local_rank = 3;
  assert_gpumem_ok(gpumem_device_select(&c, &s));
  assert_int_equal(s.ordinal, 0); /* rank 3 over the three slices only */
  assert_int_equal(s.candidates, 3);
  c.local_rank = -1;
  c.mig = GPUMEM_MIG_REQUIRE;
  assert_gpumem_ok(gpumem_device_select(&c, &s));
  assert_int_equal(s.ordinal, 0);
  c.mig = GPUMEM_MIG_EITHER;
  c.min_free_bytes = 9 * GiB;
  assert_gpumem_status(gpumem_device_select(&c, &s), GPUMEM_ERR_NOT_FOUND);
  assert_last_error_contains("the free memory required removed the last candidates");
  c.min_free_bytes = 0;
  c.required_caps = GPUMEM_CAP_VMM | GPUMEM_CAP_MULTICAST;
  assert_gpumem_status(gpumem_device_select(&c, &s), GPUMEM_ERR_NOT_FOUND);
  assert_last_error_contains("the required capabilities");
  c.required_caps = GPUMEM_CAP_VMM | GPUMEM_CAP_POSIX_FD | GPUMEM_CAP_POOLS;
  assert_gpumem_ok(gpumem_device_select(&c, &s));
  use_node(&fake_a100_seven_slices, "none", NULL);
  c.mig = GPUMEM_MIG_EXCLUDE;
  assert_gpumem_status(gpumem_device_select(&c, &s), GPUMEM_ERR_NOT_FOUND);
  assert_last_error_contains("excluding MIG slices");
}

static void test_select_bad_input(void **state) {
  (void)state;
  use_node(&fake_eight_gpus, "all", NULL);
  gpumem_select_criteria c = GPUMEM_SELECT_CRITERIA_INIT;
  gpumem_selection s;
  assert_gpumem_status(gpumem_device_select(NULL, &s), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_device_select(&c, NULL), GPUMEM_ERR_INVALID_ARGUMENT);
  c.mig = (gpumem_mig_policy)9;
  assert_gpumem_status(gpumem_device_select(&c, &s), GPUMEM_ERR_INVALID_ARGUMENT);
  c.mig = GPUMEM_MIG_EITHER;
  c.local_rank = -7;
  assert_gpumem_status(gpumem_device_select(&c, &s), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_local_rank(NULL, NULL), GPUMEM_ERR_INVALID_ARGUMENT);
}

static void test_peer_queries(void **state) {
  (void)state;
  gpumem_peer_info p;
  use_node(&fake_a100_seven_slices, "none", NULL);
  assert_gpumem_ok(gpumem_device_peer_info(0, 1, &p));
  assert_false(p.can_map);
  assert_int_equal(p.reason, GPUMEM_PEER_MIG);
  assert_non_null(strstr(p.why, "is a MIG slice"));
  assert_gpumem_ok(gpumem_device_peer_info(2, 2, &p));
  assert_true(p.can_map);
  assert_int_equal(p.reason, GPUMEM_PEER_SAME_DEVICE);
  /* Even where the driver would report a path, a slice never maps a peer. */
  use_node(&fake_mixed, "all", NULL);
  assert_gpumem_ok(gpumem_device_peer_info(3, 0, &p));
  assert_false(p.can_map);
  assert_int_equal(p.reason, GPUMEM_PEER_MIG);
  assert_non_null(strstr(p.why, "device 0 (MIG-b1000002"));
  use_node(&fake_eight_gpus, "0-1,2-3", NULL);
  assert_gpumem_ok(gpumem_device_peer_info(1, 0, &p));
  assert_true(p.can_map);
  assert_int_equal(p.reason, GPUMEM_PEER_P2P);
  assert_true(p.native_atomics);
  assert_gpumem_ok(gpumem_device_peer_info(0, 2, &p));
  assert_false(p.can_map);
  assert_int_equal(p.reason, GPUMEM_PEER_NO_PATH);
  assert_non_null(strstr(p.why, "no peer-to-peer path from device 0 to device 2"));
  assert_gpumem_status(gpumem_device_peer_info(0, 8, &p), GPUMEM_ERR_INVALID_DEVICE);
  assert_gpumem_status(gpumem_device_peer_info(0, 1, NULL), GPUMEM_ERR_INVALID_ARGUMENT);
}

/* On the GPU: the real NVML agrees with CUDA, and the UUID is the one
 * nvidia-smi -L prints. */
static void test_real_discovery(void **state) {
  (void)state;
  if (gm_test_on_host()) skip();
  gpumem_device_info info = info_of(0);
  if (info.mig == GPUMEM_UNKNOWN) {
    if (gm_test_gpu_required()) fail_msg("NVML is missing on the GPU machine: %s", info.mig_note);
    skip();
  }
  assert_int_equal(strncmp(info.uuid, info.mig == GPUMEM_YES ? "MIG-" : "GPU-", 4), 0);
  if (info.mig == GPUMEM_NO) assert_string_equal(info.parent_uuid, info.uuid);
  FILE *smi = popen("nvidia-smi -L 2>/dev/null", "r");
  char out[4096] = "";
  size_t n = smi ? fread(out, 1, sizeof out - 1, smi) : 0;
  if (smi) pclose(smi);
  out[n] = '\0';
  if (n == 0) {
    if (gm_test_gpu_required()) fail_msg("nvidia-smi -L printed nothing");
    skip();
  }
  if (strstr(out, info.uuid) == NULL) fail_msg("'%s' is not in nvidia-smi -L:\n%s", info.uuid, out);
  gpumem_mig_gpu gpus[GPUMEM_MAX_DEVICES];
  size_t count = 0;
  assert_gpumem_ok(gpumem_mig_layout(gpus, GPUMEM_MAX_DEVICES, &count));
  assert_true(count >= 1);
}

int main(int argc, char **argv) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_discovery_a100_seven_slices, gm_test_setup, reset),
      cmocka_unit_test_setup_teardown(test_discovery_h100_split, gm_test_setup, reset),
      cmocka_unit_test_setup_teardown(test_discovery_without_mig, gm_test_setup, reset),
      cmocka_unit_test_setup_teardown(test_nvml_missing_means_unknown, gm_test_setup, reset),
      cmocka_unit_test_setup_teardown(test_nvml_error_is_a_warning, gm_test_setup, reset),
      cmocka_unit_test_setup_teardown(test_mig_layout, gm_test_setup, reset),
      cmocka_unit_test_setup_teardown(test_select_per_rank, gm_test_setup, reset),
      cmocka_unit_test_setup_teardown(test_select_rank_from_environment, gm_test_setup, reset),
      cmocka_unit_test_setup_teardown(test_select_by_criteria, gm_test_setup, reset),
      cmocka_unit_test_setup_teardown(test_select_bad_input, gm_test_setup, reset),
      cmocka_unit_test_setup_teardown(test_peer_queries, gm_test_setup, reset),
      cmocka_unit_test(test_real_discovery),
  };
  return gm_test_run("device", tests, GM_ARRAY_SIZE(tests), argc, argv, NULL);
}
