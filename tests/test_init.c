/* test_init.c: choosing the backend, lazy and explicit initialisation,
 * finalize, and the no-device path: with the CUDA backend and no usable
 * device (no driver on a CPU machine; CUDA_VISIBLE_DEVICES="" on a GPU one,
 * which ctest sets for this suite) every call that needs a device returns
 * GPUMEM_ERR_NO_DEVICE with a sentence naming the call and the reason, and
 * the library never falls back to host memory. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend.h"
#include "helpers.h"

static int fresh(void **state) {
  (void)state;
  gm_test_ignore(gpumem_finalize());
  unsetenv("GPUMEM_BACKEND");
  unsetenv("GPUMEM_LOG_FILE");
  return 0;
}

static void expect_no_device(gpumem_status st, const char *call) {
  if (st != GPUMEM_ERR_NO_DEVICE) {
    fail_msg("%s returned %s, expected GPUMEM_ERR_NO_DEVICE", call, gpumem_status_name(st));
  }
  const char *e = gpumem_last_error();
  if (strncmp(e, call, strlen(call)) != 0 ||
      (strstr(e, "no CUDA driver") == NULL && strstr(e, "no CUDA device") == NULL)) {
    fail_msg("%s: last error '%s' should name the call and say why", call, e);
  }
}

#define NO_DEVICE(fn, ...) expect_no_device(fn(__VA_ARGS__), #fn)

static void test_no_device_everywhere(void **state) {
  (void)state;
  /* Hide the GPUs of a GPU machine (read when the CUDA runtime starts, which
   * is in this test: nothing before it touched CUDA). */
  setenv("CUDA_VISIBLE_DEVICES", "", 1);
  setenv("GPUMEM_BACKEND", "cuda", 1);
  int count = -1;
  void *va = NULL;
  gpumem_phys_t h = 0;
  gpumem_phys_props props = GPUMEM_PHYS_PROPS_INIT;
  gpumem_device_info info;
  size_t a = 0, b = 0;
  bool can = false;
  gpumem_access_desc desc = {0, GPUMEM_ACCESS_READWRITE};
  gpumem_access_flags flags;
  gpumem_shareable_handle sh = {GPUMEM_HANDLE_POSIX_FD, 0, {0}};
  gpumem_stream_t s = NULL;
  gpumem_event_t ev = NULL;
  char buf[16];
  NO_DEVICE(gpumem_device_count, &count);
  assert_int_equal(count, -1);
  /* No driver (CPU machine) or no visible device (GPU machine, CUDA_VISIBLE_DEVICES=""). */
  assert_last_error_contains("cudaGetDeviceCount returned cudaError");
  NO_DEVICE(gpumem_device_get_info, 0, &info);
  NO_DEVICE(gpumem_device_mem_info, 0, &a, &b);
  NO_DEVICE(gpumem_device_can_access_peer, 0, 0, &can);
  NO_DEVICE(gpumem_vmm_granularity, &props, false, &a);
  NO_DEVICE(gpumem_vmm_reserve, 2 << 20, 0, &va);
  NO_DEVICE(gpumem_vmm_free, (void *)0x1000, 2 << 20);
  NO_DEVICE(gpumem_vmm_create, &props, 2 << 20, &h);
  NO_DEVICE(gpumem_vmm_release, 1);
  NO_DEVICE(gpumem_vmm_get_props, 1, &props);
  NO_DEVICE(gpumem_vmm_map, (void *)0x200000, 2 << 20, 0, 1);
  NO_DEVICE(gpumem_vmm_unmap, (void *)0x200000, 2 << 20);
  NO_DEVICE(gpumem_vmm_set_access, (void *)0x200000, 2 << 20, &desc, 1);
  NO_DEVICE(gpumem_vmm_get_access, (void *)0x200000, 0, &flags);
  NO_DEVICE(gpumem_vmm_export, 1, GPUMEM_HANDLE_POSIX_FD, &sh);
  NO_DEVICE(gpumem_vmm_import, &sh, &h);
  NO_DEVICE(gpumem_stream_create, 0, &s);
  NO_DEVICE(gpumem_stream_synchronize, NULL);
  NO_DEVICE(gpumem_stream_query, NULL);
  NO_DEVICE(gpumem_event_create, 0, &ev);
  NO_DEVICE(gpumem_device_synchronize, 0);
  NO_DEVICE(gpumem_memcpy, buf, buf, sizeof buf, NULL);
  NO_DEVICE(gpumem_memset, buf, 0, sizeof buf, NULL);
  assert_null(va);
  assert_int_equal(h, 0);
  assert_null(s);
  /* Never silently the host backend. */
  assert_int_equal(gpumem_backend(), GPUMEM_BACKEND_DEFAULT);
  assert_string_equal(gpumem_backend_name(), "none");
  /* Explicit init says the same, and a later explicit host init works. */
  gpumem_init_options o = GPUMEM_INIT_OPTIONS_INIT;
  o.backend = GPUMEM_BACKEND_CUDA;
  assert_gpumem_status(gpumem_init(&o), GPUMEM_ERR_NO_DEVICE);
  assert_last_error_contains("gpumem_init: no CUDA");
  o.backend = GPUMEM_BACKEND_HOST;
  assert_gpumem_ok(gpumem_init(&o));
  assert_string_equal(gpumem_backend_name(), "host");
  assert_gpumem_ok(gpumem_finalize());
}

static void test_environment_chooses_host_lazily(void **state) {
  (void)state;
  setenv("GPUMEM_BACKEND", "host", 1);
  assert_string_equal(gpumem_backend_name(), "none");
  int count = 0;
  assert_gpumem_ok(gpumem_device_count(&count));
  assert_int_equal(count, 2);
  assert_int_equal(gpumem_backend(), GPUMEM_BACKEND_HOST);
  int driver = -1, runtime = -1;
  gpumem_cuda_versions(&driver, &runtime);
  assert_int_equal(driver, 0);
  assert_int_equal(runtime, 0);
}

static void test_init_options_configure_host(void **state) {
  (void)state;
  gpumem_init_options o = GPUMEM_INIT_OPTIONS_INIT;
  o.backend = GPUMEM_BACKEND_HOST;
  o.host_devices = 3;
  o.host_capacity = 64 << 20;
  o.host_granularity = 64 << 10;
  o.host_peers = "none";
  assert_gpumem_ok(gpumem_init(&o));
  int count = 0;
  assert_gpumem_ok(gpumem_device_count(&count));
  assert_int_equal(count, 3);
  gpumem_device_info info;
  assert_gpumem_ok(gpumem_device_get_info(2, &info));
  assert_int_equal(info.memory_total, 64 << 20);
  assert_int_equal(info.memory_free, 64 << 20);
  assert_int_equal(info.granularity_min, 64 << 10);
  assert_int_equal(info.ordinal, 2);
  bool can = true;
  assert_gpumem_ok(gpumem_device_can_access_peer(0, 1, &can));
  assert_false(can);
  assert_gpumem_status(gpumem_device_get_info(3, &info), GPUMEM_ERR_INVALID_DEVICE);
  assert_last_error_contains("gpumem_device_get_info: device 3 does not exist");
}

static void test_init_twice_is_an_error(void **state) {
  (void)state;
  gpumem_init_options o = GPUMEM_INIT_OPTIONS_INIT;
  o.backend = GPUMEM_BACKEND_HOST;
  assert_gpumem_ok(gpumem_init(&o));
  assert_gpumem_status(gpumem_init(&o), GPUMEM_ERR_STATE);
  assert_last_error_contains("already initialised with the host backend");
  assert_string_equal(gpumem_backend_name(), "host");
}

static void test_invalid_options_change_nothing(void **state) {
  (void)state;
  gpumem_init_options o = GPUMEM_INIT_OPTIONS_INIT;
  o.backend = (gpumem_backend_kind)7;
  assert_gpumem_status(gpumem_init(&o), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("backend 7");
  o.backend = GPUMEM_BACKEND_HOST;
  o.host_devices = 65;
  assert_gpumem_status(gpumem_init(&o), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("host_devices 65 is outside 1..64");
  o.host_devices = 0;
  o.host_granularity = 3000;
  assert_gpumem_status(gpumem_init(&o), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("host_granularity 3000");
  assert_string_equal(gpumem_backend_name(), "none");
}

/* Explicit host_peers and host_uuids that cannot be used are refused; the
 * same values from the environment are warned about and replaced. They were
 * once accepted with a warning and "all" (or generated UUIDs) used. */
static void test_unusable_explicit_host_options_refused(void **state) {
  (void)state;
  gpumem_init_options o = GPUMEM_INIT_OPTIONS_INIT;
  o.backend = GPUMEM_BACKEND_HOST;
  o.host_peers = "0-1,7-8";
  assert_gpumem_status(gpumem_init(&o), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("host_peers '0-1,7-8'");
  assert_string_equal(gpumem_backend_name(), "none");
  o.host_peers = NULL;
  o.host_uuids = "not-a-uuid";
  assert_gpumem_status(gpumem_init(&o), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("host_uuids 'not-a-uuid': entry 0 ('not-a-uuid') is not a UUID");
  assert_string_equal(gpumem_backend_name(), "none");
  /* nothing changed: a valid init afterwards gets the defaults */
  o.host_uuids = NULL;
  assert_gpumem_ok(gpumem_init(&o));
  bool can = false;
  assert_gpumem_ok(gpumem_device_can_access_peer(0, 1, &can));
  assert_true(can);
  assert_gpumem_ok(gpumem_finalize());
  /* from the environment: a warning, and the default */
  gm_test_log log = {0};
  assert_gpumem_ok(gpumem_log_set_callback(gm_test_log_capture, &log));
  setenv("GPUMEM_HOST_PEERS", "0-1,7-8", 1);
  o.host_peers = NULL;
  gpumem_status st = gpumem_init(&o);
  unsetenv("GPUMEM_HOST_PEERS");
  assert_gpumem_ok(gpumem_log_set_callback(NULL, NULL));
  assert_gpumem_ok(st);
  assert_true(log.count > 0);
  assert_int_equal(log.level, GPUMEM_LOG_WARN);
  assert_non_null(strstr(log.line, "keeping the default all"));
}

static void test_finalize_refuses_with_live_objects(void **state) {
  (void)state;
  gpumem_init_options o = GPUMEM_INIT_OPTIONS_INIT;
  o.backend = GPUMEM_BACKEND_HOST;
  assert_gpumem_ok(gpumem_init(&o));
  void *va = NULL;
  gpumem_stream_t s = NULL;
  assert_gpumem_ok(gpumem_vmm_reserve(4 << 20, 0, &va));
  assert_gpumem_ok(gpumem_stream_create(1, &s));
  assert_gpumem_status(gpumem_finalize(), GPUMEM_ERR_BUSY);
  assert_last_error_contains("1 reservations");
  assert_last_error_contains("1 streams");
  assert_string_equal(gpumem_backend_name(), "host");
  assert_gpumem_ok(gpumem_vmm_free(va, 4 << 20));
  assert_gpumem_ok(gpumem_stream_destroy(s));
  assert_gpumem_ok(gpumem_finalize());
  assert_string_equal(gpumem_backend_name(), "none");
  assert_gpumem_ok(gpumem_finalize()); /* a no-op when not initialised */
}

static void test_log_file_from_environment(void **state) {
  (void)state;
  char path[] = "/tmp/gpumem-init-log-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  setenv("GPUMEM_LOG_FILE", path, 1);
  setenv("GPUMEM_LOG", "info", 1);
  setenv("GPUMEM_BACKEND", "host", 1);
  int count = 0;
  assert_gpumem_ok(gpumem_device_count(&count));
  unsetenv("GPUMEM_LOG");
  assert_gpumem_ok(gpumem_log_set_file(NULL));
  assert_gpumem_ok(gpumem_log_set_level(GPUMEM_LOG_WARN));
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  char text[4096] = {0};
  assert_true(fread(text, 1, sizeof text - 1, f) > 0);
  fclose(f);
  unlink(path);
  /* file lines: "gpumem: <time> <host>:<pid> info: ..." (test_log checks the stamp) */
  assert_int_equal(strncmp(text, "gpumem: ", 8), 0);
  assert_non_null(strstr(text, " info: host backend: 2 emulated devices of 1 GiB"));
  assert_non_null(strstr(text, " info: libgpumem 0.1.0 initialised with the host backend"));
}

static void *count_devices(void *arg) {
  int *out = arg;
  if (gpumem_device_count(out) != GPUMEM_OK) *out = -1;
  return NULL;
}

static void test_concurrent_lazy_init(void **state) {
  (void)state;
  setenv("GPUMEM_BACKEND", "host", 1);
  pthread_t t[8];
  int counts[8];
  for (int i = 0; i < 8; i++)
    pthread_create(&t[i], NULL, count_devices, &counts[i]);
  for (int i = 0; i < 8; i++)
    pthread_join(t[i], NULL);
  for (int i = 0; i < 8; i++)
    assert_int_equal(counts[i], 2);
  assert_int_equal(gm_backend_calls(GM_OP_device_count), 8);
}

/* What the forked child checks; its exit status is the number of the first
 * check that failed (0: all passed), so that the parent can name it. */
static int forked_child_checks(pid_t parent, gpumem_buffer_t *inherited, gpumem_allocator *a) {
  char expect[160];
  snprintf(expect, sizeof expect,
           "libgpumem was initialised in process %ld; a forked child cannot use CUDA "
           "(use exec, or initialise after fork)",
           (long)parent);
  int count = 0;
  if (gpumem_device_count(&count) != GPUMEM_ERR_STATE) return 1;
  if (strstr(gpumem_last_error(), expect) == NULL) return 2;
  if (gpumem_buffer_resize(inherited, 8 << 20) != GPUMEM_ERR_STATE) return 3;
  if (strstr(gpumem_last_error(), expect) == NULL) return 4;
  /* The allocator interface does not pass through gm_ensure_init: the seam
   * refuses it (a fresh pool has nothing cached, so this reaches the driver). */
  void *p = NULL;
  if (a->alloc(a->ctx, 4096, NULL, &p) != GPUMEM_ERR_STATE || p != NULL) return 16;
  if (strstr(gpumem_last_error(), expect) == NULL) return 17;
  gpumem_init_options o = GPUMEM_INIT_OPTIONS_INIT;
  o.backend = GPUMEM_BACKEND_HOST;
  if (gpumem_init(&o) != GPUMEM_ERR_STATE) return 5; /* not before finalize */
  if (strstr(gpumem_last_error(), expect) == NULL) return 6;
  /* finalize forgets the parent's state (the buffer is live there) ... */
  if (gpumem_finalize() != GPUMEM_OK) return 7;
  if (strcmp(gpumem_backend_name(), "none") != 0) return 8;
  /* ... and the child starts afresh. */
  o.host_devices = 1;
  if (gpumem_init(&o) != GPUMEM_OK) return 9;
  if (gpumem_device_count(&count) != GPUMEM_OK || count != 1) return 10;
  gpumem_buffer_config cfg = GPUMEM_BUFFER_CONFIG_INIT;
  gpumem_buffer_t *b = NULL;
  if (gpumem_buffer_create(&cfg, &b) != GPUMEM_OK) return 11;
  if (gpumem_buffer_resize(b, 1 << 20) != GPUMEM_OK) return 12;
  if (gpumem_memset(gpumem_buffer_data(b), 7, 1 << 20, NULL) != GPUMEM_OK) return 13;
  if (gpumem_buffer_destroy(b) != GPUMEM_OK) return 14;
  if (gpumem_finalize() != GPUMEM_OK) return 15;
  return 0;
}

/* A child forked from an initialised process (host backend, with a stream
 * whose worker thread the child does not have and a live buffer) is refused
 * with GPUMEM_ERR_STATE and a sentence naming the parent, gpumem_init too;
 * gpumem_finalize resets it and it may initialise afresh. The parent is not
 * disturbed. */
static void test_forked_child_is_refused(void **state) {
  (void)state;
#if defined(__SANITIZE_THREAD__)
  /* ThreadSanitizer cannot follow a fork made while threads run (the stream's
   * worker: "starting new threads after multi-threaded fork is not
   * supported"); the normal, Release and ASan builds run this test. */
  skip();
#endif
  gpumem_init_options o = GPUMEM_INIT_OPTIONS_INIT;
  o.backend = GPUMEM_BACKEND_HOST;
  assert_gpumem_ok(gpumem_init(&o));
  gpumem_stream_t s = NULL;
  assert_gpumem_ok(gpumem_stream_create(0, &s));
  gpumem_buffer_config cfg = GPUMEM_BUFFER_CONFIG_INIT;
  gpumem_buffer_t *b = NULL;
  assert_gpumem_ok(gpumem_buffer_create(&cfg, &b));
  assert_gpumem_ok(gpumem_buffer_resize(b, 4 << 20));
  assert_gpumem_ok(gpumem_memset(gpumem_buffer_data(b), 1, 4 << 20, s));
  assert_gpumem_ok(gpumem_stream_synchronize(s));
  gpumem_allocator a = GPUMEM_ALLOCATOR_INIT;
  assert_gpumem_ok(gpumem_allocator_create("gpumem-pool", 0, &a));
  pid_t parent = getpid();
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) _exit(forked_child_checks(parent, b, &a));
  int code = gm_test_wait_child((int)pid);
  if (code != 0) fail_msg("the forked child failed its check %d", code);
  /* The parent still works. */
  assert_gpumem_ok(gpumem_buffer_resize(b, 8 << 20));
  assert_gpumem_ok(gpumem_memset(gpumem_buffer_data(b), 2, 8 << 20, s));
  assert_gpumem_ok(gpumem_stream_synchronize(s));
  void *p = NULL;
  assert_gpumem_ok(a.alloc(a.ctx, 4096, NULL, &p));
  assert_gpumem_ok(a.free(a.ctx, p, 4096, NULL));
  assert_gpumem_ok(gpumem_allocator_destroy(&a));
  assert_gpumem_ok(gpumem_buffer_destroy(b));
  assert_gpumem_ok(gpumem_stream_destroy(s));
  assert_gpumem_ok(gpumem_finalize());
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_no_device_everywhere, fresh, fresh),
      cmocka_unit_test_setup_teardown(test_environment_chooses_host_lazily, fresh, fresh),
      cmocka_unit_test_setup_teardown(test_init_options_configure_host, fresh, fresh),
      cmocka_unit_test_setup_teardown(test_init_twice_is_an_error, fresh, fresh),
      cmocka_unit_test_setup_teardown(test_invalid_options_change_nothing, fresh, fresh),
      cmocka_unit_test_setup_teardown(test_unusable_explicit_host_options_refused, fresh, fresh),
      cmocka_unit_test_setup_teardown(test_finalize_refuses_with_live_objects, fresh, fresh),
      cmocka_unit_test_setup_teardown(test_log_file_from_environment, fresh, fresh),
      cmocka_unit_test_setup_teardown(test_concurrent_lazy_init, fresh, fresh),
      cmocka_unit_test_setup_teardown(test_forked_child_is_refused, fresh, fresh),
  };
  return cmocka_run_group_tests_name("init", tests, NULL, NULL);
}
