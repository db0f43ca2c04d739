/* test_contexts.c: which devices get a CUDA primary context, and whose
 * current device changes, when the library is used.
 *
 * A context costs about 0.5 GiB of the GPU it is made on. Every MPI rank of a
 * node lists the devices and selects one, so a context made while looking
 * would put one context per rank on every GPU (56 wasted on an 8-GPU node),
 * and GPUs in EXCLUSIVE_PROCESS mode would refuse all ranks but one. The
 * rules tested here (src/backend.h, "Contexts"): looking (device count,
 * info, peer info, selection, what gpumem-info does) creates no context;
 * allocating on a device creates that device's context and no other; and the
 * calling thread's current device is left as it was, a thread with none
 * keeping none.
 *
 * On the host backend the emulated driver counts contexts as a GPU would
 * (src/backend/host.c, "contexts"). On the GPU (the .cuda run) the same
 * checks read the driver: cuDevicePrimaryCtxGetState for each device and
 * cuCtxGetCurrent for the thread. Contexts live until the process exits, so
 * there a test asserts only that no context appeared that was not there
 * before it started.
 */
#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_runtime_api.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "backend/host.h"
#include "helpers.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

#define DEVICES 4

/* ---- what the driver says (host: the emulation; GPU: the driver) ---- */

static PFN_cuDeviceGet_v2000 cu_device_get;
static PFN_cuDevicePrimaryCtxGetState_v7000 cu_state;
static PFN_cuCtxGetCurrent_v4000 cu_current;
static PFN_cuCtxGetDevice_v2000 cu_ctx_device;

static void *cu_entry(const char *symbol, int version) {
  void *fn = NULL;
  enum cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
  cudaError_t e = cudaGetDriverEntryPointByVersion(symbol, &fn, version, cudaEnableDefault, &q);
  if (e != cudaSuccess || q != cudaDriverEntryPointSuccess || fn == NULL)
    fail_msg("cannot resolve %s: %s", symbol, cudaGetErrorName(e));
  return fn;
}

static void cu_resolve(void) {
  if (cu_state != NULL) return;
  cu_device_get = (PFN_cuDeviceGet_v2000)cu_entry("cuDeviceGet", 2000);
  cu_state = (PFN_cuDevicePrimaryCtxGetState_v7000)cu_entry("cuDevicePrimaryCtxGetState", 7000);
  cu_current = (PFN_cuCtxGetCurrent_v4000)cu_entry("cuCtxGetCurrent", 4000);
  cu_ctx_device = (PFN_cuCtxGetDevice_v2000)cu_entry("cuCtxGetDevice", 2000);
}

static int device_count(void) {
  int n = 0;
  assert_gpumem_ok(gpumem_device_count(&n));
  return n;
}

/* Does `device` have its primary context? */
static bool context_exists(int device) {
  if (gm_test_on_host()) return gm_host_context_created(device);
  cu_resolve();
  unsigned int flags = 0;
  int active = 0;
  CUdevice dev = 0;
  assert_int_equal(cu_device_get(&dev, device), CUDA_SUCCESS);
  assert_int_equal(cu_state(dev, &flags, &active), CUDA_SUCCESS);
  return active != 0;
}

/* The calling thread's current device, or -1 when no context is current. */
static int thread_device(void) {
  if (gm_test_on_host()) return gm_host_thread_device();
  cu_resolve();
  CUcontext c = NULL;
  assert_int_equal(cu_current(&c), CUDA_SUCCESS);
  if (c == NULL) return -1;
  CUdevice d = 0, dev = 0;
  assert_int_equal(cu_ctx_device(&d), CUDA_SUCCESS);
  for (int i = 0, n = device_count(); i < n; i++) {
    assert_int_equal(cu_device_get(&dev, i), CUDA_SUCCESS);
    if (dev == d) return i;
  }
  fail_msg("the current context's device %d is not a visible device", (int)d);
  return -1;
}

/* What an application does to choose its device: cudaSetDevice. */
static void set_device(int device) {
  if (gm_test_on_host()) {
    gm_host_set_device(device);
  } else {
    assert_int_equal(cudaSetDevice(device), cudaSuccess);
  }
}

/* Which devices have a context now, as a bit set. */
static uint64_t contexts(void) {
  uint64_t set = 0;
  for (int d = 0, n = device_count(); d < n; d++)
    set |= context_exists(d) ? (uint64_t)1 << d : 0;
  return set;
}

/* Fail unless the contexts now are those of `before` plus `allowed`, and
 * every device in `required` has one. */
static void assert_contexts(uint64_t before, uint64_t allowed, uint64_t required,
                            const char *what) {
  uint64_t now = contexts();
  uint64_t extra = now & ~(before | allowed);
  uint64_t missing = required & ~now;
  if (extra != 0 || missing != 0) {
    fail_msg("%s: contexts before 0x%llx, now 0x%llx: unexpected 0x%llx, missing 0x%llx", what,
             (unsigned long long)before, (unsigned long long)now, (unsigned long long)extra,
             (unsigned long long)missing);
  }
}

#define BIT(d) ((uint64_t)1 << (d))

/* ---- fixtures ---- */

static int setup_devices(void **state) {
  gpumem_init_options o = GPUMEM_INIT_OPTIONS_INIT;
  o.host_devices = DEVICES;
  o.host_capacity = 256 * MiB;
  o.host_granularity = 64 * KiB;
  o.host_peers = "all";
  return gm_test_setup_host(state, o);
}

static int teardown_devices(void **state) {
  return gm_test_teardown_host(state);
}

/* The device the allocation tests work on: 1, so that device 0 getting a
 * context shows; 0 on a machine with one GPU (the thread checks still run). */
static int target(void) {
  return device_count() > 1 ? 1 : 0;
}

static void need_devices(int n) {
  if (device_count() < n) {
    printf("[  SKIPPED ] needs %d devices, %d visible\n", n, device_count());
    skip();
  }
}

/* ---- looking creates nothing ---- */

static void look_at_everything(void) {
  int n = device_count();
  for (int d = 0; d < n; d++) {
    gpumem_device_info info;
    assert_gpumem_ok(gpumem_device_get_info(d, &info));
    assert_int_equal(info.ordinal, d);
    assert_true(info.memory_total > 0);
    assert_true(info.memory_free <= info.memory_total);
    for (int p = 0; p < n; p++) {
      bool can = false;
      gpumem_peer_info peer;
      assert_gpumem_ok(gpumem_device_can_access_peer(d, p, &can));
      assert_gpumem_ok(gpumem_device_peer_info(d, p, &peer));
      assert_int_equal(peer.can_map, can || d == p);
    }
  }
}

static void test_listing_creates_no_context(void **state) {
  (void)state;
  uint64_t before = contexts();
  int current = thread_device();
  look_at_everything();
  assert_contexts(before, 0, 0, "count, get_info, can_access_peer and peer_info");
  assert_int_equal(thread_device(), current);
  if (gm_test_on_host()) {
    assert_int_equal(before, 0);
    assert_int_equal(current, -1);
    assert_int_equal(gm_host_current_device(), 0); /* what cudaGetDevice says with none */
  }
}

static void test_select_creates_no_context(void **state) {
  (void)state;
  uint64_t before = contexts();
  int current = thread_device();
  int n = device_count();
  for (int rank = -1; rank < 2 * n; rank++) {
    gpumem_select_criteria c = GPUMEM_SELECT_CRITERIA_INIT;
    gpumem_selection sel;
    c.local_rank = rank;
    c.required_caps = GPUMEM_CAP_VMM;
    c.min_free_bytes = rank % 2 == 0 ? 1 : 0; /* with and without reading free memory */
    assert_gpumem_ok(gpumem_device_select(&c, &sel));
    if (gm_test_on_host()) assert_int_equal(sel.ordinal, rank < 0 ? 0 : rank % n);
  }
  assert_contexts(before, 0, 0, "gpumem_device_select");
  assert_int_equal(thread_device(), current);
}

/* What apps/gpumem-info does, in this process, so its contexts can be read. */
static void test_gpumem_info_creates_no_context(void **state) {
  (void)state;
  uint64_t before = contexts();
  int current = thread_device();
  int driver = 0, runtime = 0;
  assert_non_null(gpumem_backend_name());
  gpumem_cuda_versions(&driver, &runtime);
  look_at_everything();
  gpumem_mig_gpu gpus[GPUMEM_MAX_DEVICES];
  size_t ngpus = 0;
  gpumem_status st = gpumem_mig_layout(gpus, GPUMEM_MAX_DEVICES, &ngpus);
  assert_true(st == GPUMEM_OK || st == GPUMEM_ERR_NOT_SUPPORTED); /* NOT_SUPPORTED: no NVML */
  gpumem_visible_devices vis;
  assert_gpumem_ok(gpumem_visible_devices_read("0,1", &vis));
  for (int rank = 0; rank < 3; rank++) {
    gpumem_select_criteria c = GPUMEM_SELECT_CRITERIA_INIT;
    gpumem_selection sel;
    c.local_rank = rank;
    assert_gpumem_ok(gpumem_device_select(&c, &sel));
  }
  assert_contexts(before, 0, 0, "what gpumem-info does");
  assert_int_equal(thread_device(), current);
}

/* gpumem_device_mem_info reads through the device's context (cudaMemGetInfo),
 * as documented: that device's context, no other, and the thread's current
 * device as it was. */
static void test_mem_info_creates_that_context_only(void **state) {
  (void)state;
  int last = device_count() - 1;
  uint64_t before = contexts();
  int current = thread_device();
  size_t free_bytes = 0, total = 0;
  assert_gpumem_ok(gpumem_device_mem_info(last, &free_bytes, &total));
  assert_true(free_bytes <= total && total > 0);
  assert_contexts(before, BIT(last), BIT(last), "gpumem_device_mem_info of the last device");
  assert_int_equal(thread_device(), current);
  /* Now that the device has a context, get_info reads it there: same figure. */
  gpumem_device_info info;
  assert_gpumem_ok(gpumem_device_get_info(last, &info));
  if (gm_test_on_host()) assert_int_equal(info.memory_free, free_bytes);
  assert_contexts(before, BIT(last), BIT(last), "get_info after mem_info");
}

/* Where free memory cannot be had without a context (the device has none,
 * NVML is missing), get_info reads it through the device's context: that
 * device's only, said once in an info line. */
static void test_get_info_without_nvml_falls_back(void **state) {
  (void)state;
  int dev = target();
  uint64_t before = contexts();
  if (before & BIT(dev)) skip(); /* it has its context: the fallback is not needed */
  gm_test_log log = {0};
  gpumem_log_level level = gpumem_log_get_level();
  assert_gpumem_ok(gpumem_log_set_level(GPUMEM_LOG_INFO));
  assert_gpumem_ok(gpumem_log_set_callback(gm_test_log_capture, &log));
  gm_fault_inject(GM_OP_mem_probe, 1, GPUMEM_ERR_NOT_SUPPORTED);
  uint64_t infos = gm_backend_calls(GM_OP_mem_info);
  gpumem_device_info info;
  gpumem_status st = gpumem_device_get_info(dev, &info);
  assert_gpumem_ok(gpumem_log_set_callback(NULL, NULL));
  assert_gpumem_ok(gpumem_log_set_level(level));
  assert_gpumem_ok(st);
  assert_true(info.memory_free > 0 && info.memory_free <= info.memory_total);
  assert_int_equal(gm_backend_calls(GM_OP_mem_info), infos + 1);
  assert_contexts(before, BIT(dev), BIT(dev), "get_info without mem_probe");
  if (gm_test_on_host()) { /* said once per process: the first time is here on the host */
    assert_int_equal(log.count, 1);
    assert_int_equal(log.level, GPUMEM_LOG_INFO);
    assert_non_null(strstr(log.line, "device 1: ")); /* the host has 4: dev is 1 */
    assert_non_null(strstr(log.line, "creates the device's context"));
  }
  /* Peer queries and selection without a free-memory criterion never read it. */
  uint64_t probes = gm_backend_calls(GM_OP_mem_probe);
  gpumem_peer_info peer;
  assert_gpumem_ok(gpumem_device_peer_info(0, dev, &peer));
  assert_int_equal(peer.reason == GPUMEM_PEER_SAME_DEVICE, dev == 0);
  gpumem_select_criteria c = GPUMEM_SELECT_CRITERIA_INIT;
  gpumem_selection sel;
  assert_gpumem_ok(gpumem_device_select(&c, &sel));
  assert_int_equal(gm_backend_calls(GM_OP_mem_probe), probes);
  assert_int_equal(gm_backend_calls(GM_OP_mem_info), infos + 1);
  assert_contexts(before, BIT(dev), 0, "peer_info and select after the fallback");
}

/* ---- allocating: that device's context only ---- */

static void grow_and_destroy_buffer(int device) {
  gpumem_buffer_config c = GPUMEM_BUFFER_CONFIG_INIT;
  c.device = device;
  c.max_size = 64 * MiB;
  gpumem_buffer_t *b = NULL;
  assert_gpumem_ok(gpumem_buffer_create(&c, &b));
  assert_gpumem_ok(gpumem_buffer_resize(b, 4 * MiB));
  assert_gpumem_ok(gpumem_buffer_resize(b, 12 * MiB));
  gpumem_buffer_stats bi = GPUMEM_BUFFER_STATS_INIT;
  assert_gpumem_ok(gpumem_buffer_get_stats(b, &bi));
  assert_int_equal(bi.device, device);
  assert_true(bi.base.bytes_reserved >= 12 * MiB);
  assert_gpumem_ok(gpumem_buffer_destroy(b));
}

static void test_buffer_creates_its_device_context_only(void **state) {
  (void)state;
  int dev = target();
  uint64_t before = contexts();
  int current = thread_device();
  grow_and_destroy_buffer(dev);
  /* Device 0 would get one only if CUDA made it: it must not. */
  assert_contexts(before, BIT(dev), BIT(dev), "a buffer on device 1");
  assert_int_equal(thread_device(), current);
}

static void test_arena_creates_its_members_contexts_only(void **state) {
  (void)state;
  need_devices(2);
  uint64_t before = contexts();
  int current = thread_device();
  const int first = device_count() > 2 ? 1 : 0;
  const int members[2] = {first, first + 1};
  gpumem_arena_config c = GPUMEM_ARENA_CONFIG_INIT;
  c.devices = members;
  c.device_count = 2;
  c.placement = GPUMEM_PLACE_INTERLEAVE;
  c.max_size = 64 * MiB;
  gpumem_arena_t *a = NULL;
  gpumem_status st = gpumem_arena_create(&c, &a);
  if (st == GPUMEM_ERR_PEER_UNSUPPORTED) skip(); /* GPUs 1 and 2 cannot map each other */
  assert_gpumem_ok(st);
  void *p = NULL;
  assert_gpumem_ok(gpumem_arena_alloc(a, 4 * MiB, 0, GPUMEM_ARENA_ANY_DEVICE, &p));
  assert_gpumem_ok(gpumem_arena_free(a, p));
  assert_gpumem_ok(gpumem_arena_destroy(a));
  uint64_t both = BIT(members[0]) | BIT(members[1]);
  assert_contexts(before, both, both, "an arena on devices 1 and 2");
  assert_int_equal(thread_device(), current);
}

/* An application on its device (the last one) that allocates on device 1
 * and reads device 0's memory keeps its device current. */
static void test_caller_device_unchanged(void **state) {
  (void)state;
  int home = device_count() - 1, dev = target();
  set_device(home);
  uint64_t before = contexts();
  assert_true(before & BIT(home));
  grow_and_destroy_buffer(dev);
  size_t free_bytes = 0, total = 0;
  assert_gpumem_ok(gpumem_device_mem_info(0, &free_bytes, &total));
  look_at_everything();
  assert_int_equal(thread_device(), home);
  if (gm_test_on_host()) assert_int_equal(gm_host_current_device(), home);
  uint64_t used = BIT(0) | BIT(dev);
  assert_contexts(before, used, used, "the last device current, work on 0 and 1");
}

/* A thread that never chose a device: the library's work on device 1 and
 * its queries leave it with no current context, and create nothing on 0. */
typedef struct cold_result {
  int device; /* to work on */
  int device_before, device_after;
  gpumem_status st;
  char error[GM_ERROR_SENTENCE_MAX];
} cold_result;

static void *cold_thread(void *arg) {
  cold_result *r = arg;
  r->device_before = thread_device();
  gpumem_buffer_config c = GPUMEM_BUFFER_CONFIG_INIT;
  c.device = r->device;
  c.max_size = 64 * MiB;
  gpumem_buffer_t *b = NULL;
  gpumem_device_info info;
  gpumem_select_criteria crit = GPUMEM_SELECT_CRITERIA_INIT;
  gpumem_selection sel;
  size_t free_bytes = 0, total = 0;
  crit.min_free_bytes = 1;
  r->st = gpumem_device_get_info(r->device, &info);
  if (r->st == GPUMEM_OK) r->st = gpumem_device_select(&crit, &sel);
  if (r->st == GPUMEM_OK) r->st = gpumem_buffer_create(&c, &b);
  if (r->st == GPUMEM_OK) r->st = gpumem_buffer_resize(b, 8 * MiB);
  if (r->st == GPUMEM_OK) r->st = gpumem_device_mem_info(r->device, &free_bytes, &total);
  if (b != NULL) {
    gpumem_status d = gpumem_buffer_destroy(b);
    if (r->st == GPUMEM_OK) r->st = d;
  }
  snprintf(r->error, sizeof r->error, "%s", gpumem_last_error());
  r->device_after = thread_device();
  return NULL;
}

static void test_thread_without_device_keeps_none(void **state) {
  (void)state;
  uint64_t before = contexts();
  cold_result r;
  memset(&r, 0, sizeof r);
  r.device = target();
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, cold_thread, &r), 0);
  assert_int_equal(pthread_join(t, NULL), 0);
  if (r.st != GPUMEM_OK) fail_msg("on the new thread: %s: %s", gpumem_status_name(r.st), r.error);
  assert_int_equal(r.device_before, -1);
  assert_int_equal(r.device_after, -1);
  assert_contexts(before, BIT(r.device), BIT(r.device),
                  "a thread without a device, working on device 1");
}

/* ---- calls on existing streams, events and pools ----
 *
 * Each such call runs in the thread's current context, whatever its device
 * (CUDA takes a stream, event or pool of another device), and on a thread
 * with none it binds its own object's context and unbinds it after: no
 * context on device 0, none left current (src/backend/cuda.c, "Contexts").
 * The host backend does as the CUDA backend must: its stream, event and pool
 * calls touch only their object's device, so on the host these tests
 * describe the target; on the GPU they read the driver, and fail if a
 * runtime call made device 0's context. */

typedef struct work_result {
  int device; /* to work on */
  gpumem_status st;
  const char *step; /* the call that failed */
  char error[GM_ERROR_SENTENCE_MAX];
  /* read back */
  size_t wrong;          /* bytes that did not hold the pattern */
  bool cache_hit_same;   /* the cached block came back on its stream */
  size_t reserved_kept;  /* the CUDA pool's bytes before trim */
  size_t reserved_trimd; /* after trim(0), nothing live */
  gpumem_access_flags own_access;
  int stream_device;
  bool capturing[3]; /* before, during, after a capture */
  uint64_t stream_ids[2];
  gpumem_status event_query, stream_query;
  atomic_int host_fn_ran;
} work_result;

/* Run `call` unless an earlier step failed; on failure keep which and why.
 * (Threads other than the test's own cannot use cmocka's asserts.) */
#define STEP(r, call)                                                      \
  do {                                                                     \
    if ((r)->st == GPUMEM_OK) {                                            \
      (r)->st = (call);                                                    \
      if ((r)->st != GPUMEM_OK) {                                          \
        (r)->step = #call;                                                 \
        snprintf((r)->error, sizeof(r)->error, "%s", gpumem_last_error()); \
      }                                                                    \
    }                                                                      \
  } while (0)

static size_t count_not(const unsigned char *p, size_t n, unsigned char value) {
  size_t wrong = 0;
  for (size_t i = 0; i < n; i++)
    wrong += p[i] != value;
  return wrong;
}

/* Every pool call of the seam but import, on r->device from the calling
 * thread: create (with a POSIX fd handle), alloc on a stream of the device
 * (a miss, then a cache hit, then a size past the cache), copies, export of
 * the pool and of a pointer, attributes, access, trim, destroy; then the
 * device's default pool, wrapped. */
static void pool_work(work_result *r) {
  const size_t small = 64 * KiB, large = 4 * MiB; /* the cache takes up to 1 MiB */
  unsigned char *host = malloc(small);
  gpumem_stream_t s = NULL;
  gpumem_pool_t *pool = NULL, *dflt = NULL;
  void *a = NULL, *b = NULL, *big = NULL, *d = NULL;
  gpumem_pool_config c = GPUMEM_POOL_CONFIG_INIT;
  c.device = r->device;
  c.handle_type = GPUMEM_HANDLE_POSIX_FD;
  gpumem_pool_stats stats = GPUMEM_POOL_STATS_INIT;
  gpumem_shareable_handle h = {.fd = -1};
  gpumem_pool_pointer exported;
  if (host == NULL) STEP(r, GPUMEM_ERR_OUT_OF_MEMORY);
  STEP(r, gpumem_stream_create(r->device, &s));
  STEP(r, gpumem_pool_create(&c, &pool));
  STEP(r, gpumem_pool_alloc(pool, small, s, &a)); /* a miss: the CUDA pool allocates */
  STEP(r, gpumem_memset(a, 0x5A, small, s));
  STEP(r, gpumem_memcpy(host, a, small, s));
  STEP(r, gpumem_stream_synchronize(s));
  if (r->st == GPUMEM_OK) r->wrong = count_not(host, small, 0x5A);
  STEP(r, gpumem_pool_free(pool, a, s)); /* into this thread's cache */
  STEP(r, gpumem_pool_alloc(pool, small, s, &b));
  r->cache_hit_same = b != NULL && b == a;
  a = NULL;
  STEP(r, gpumem_pool_alloc(pool, large, s, &big)); /* past the cache */
  STEP(r, gpumem_pool_export_pointer(pool, big, &exported));
  STEP(r, gpumem_pool_export(pool, &h));
  if (h.fd >= 0) close(h.fd);
  STEP(r, gpumem_pool_set_release_threshold(pool, 64 * MiB));
  STEP(r, gm_be_pool_get_access(gpumem_pool_native(pool), r->device, &r->own_access));
  if (big != NULL) STEP(r, gpumem_pool_free(pool, big, s));
  big = NULL;
  if (b != NULL) STEP(r, gpumem_pool_free(pool, b, s));
  b = NULL;
  STEP(r, gpumem_stream_synchronize(s));
  STEP(r, gpumem_pool_get_stats(pool, &stats));
  r->reserved_kept = stats.base.bytes_reserved;
  STEP(r, gpumem_pool_trim(pool, 0));
  STEP(r, gpumem_pool_get_stats(pool, &stats));
  r->reserved_trimd = stats.base.bytes_reserved;
  gpumem_pool_config dc = GPUMEM_POOL_CONFIG_INIT;
  dc.device = r->device;
  dc.use_default_pool = true;
  STEP(r, gpumem_pool_create(&dc, &dflt));
  STEP(r, gpumem_pool_alloc(dflt, large, s, &d));
  if (d != NULL) STEP(r, gpumem_pool_free(dflt, d, s));
  STEP(r, gpumem_stream_synchronize(s));
  /* Clean up after a failure too, so the leak check does not hide it. */
  if (a != NULL) gm_test_ignore(gpumem_pool_free(pool, a, s));
  if (b != NULL) gm_test_ignore(gpumem_pool_free(pool, b, s));
  if (big != NULL) gm_test_ignore(gpumem_pool_free(pool, big, s));
  if (dflt != NULL) STEP(r, gpumem_pool_destroy(dflt));
  if (pool != NULL) STEP(r, gpumem_pool_destroy(pool));
  if (s != NULL) STEP(r, gpumem_stream_destroy(s));
  free(host);
}

static void set_flag(void *arg) {
  atomic_store((atomic_int *)arg, 1);
}

/* Copies, events, host functions, queries and capture on streams of
 * r->device from the calling thread. */
static void event_work(work_result *r) {
  const size_t n = 256 * KiB;
  unsigned char *host = malloc(n);
  gpumem_buffer_t *buf = NULL;
  gpumem_stream_t a = NULL, b = NULL;
  gpumem_event_t ev = NULL;
  gpumem_buffer_config c = GPUMEM_BUFFER_CONFIG_INIT;
  c.device = r->device;
  c.max_size = 64 * MiB;
  if (host == NULL) STEP(r, GPUMEM_ERR_OUT_OF_MEMORY);
  STEP(r, gpumem_buffer_create(&c, &buf));
  STEP(r, gpumem_buffer_resize(buf, n));
  void *dev = buf != NULL ? gpumem_buffer_data(buf) : NULL;
  STEP(r, gpumem_stream_create(r->device, &a));
  STEP(r, gpumem_stream_create(r->device, &b));
  STEP(r, gpumem_event_create(r->device, &ev));
  STEP(r, gpumem_memset(dev, 0x3C, n, a));
  STEP(r, gpumem_event_record(ev, a));
  STEP(r, gpumem_stream_wait_event(b, ev)); /* b's copy comes after a's fill */
  STEP(r, gpumem_memcpy(host, dev, n, b));
  STEP(r, gpumem_launch_host_func(b, set_flag, &r->host_fn_ran));
  r->event_query = gpumem_event_query(ev); /* OK or NOT_READY: either is fine */
  r->stream_query = gpumem_stream_query(b);
  STEP(r, gpumem_event_synchronize(ev));
  STEP(r, gpumem_stream_synchronize(b));
  if (r->st == GPUMEM_OK) r->wrong = count_not(host, n, 0x3C);
  STEP(r, gm_be_stream_id(a, &r->stream_ids[0]));
  STEP(r, gm_be_stream_id(b, &r->stream_ids[1]));
  STEP(r, gm_be_stream_device(a, &r->stream_device));
  STEP(r, gm_be_stream_is_capturing(a, &r->capturing[0]));
  STEP(r, gm_be_stream_capture(a, true));
  STEP(r, gm_be_stream_is_capturing(a, &r->capturing[1]));
  STEP(r, gm_be_stream_capture(a, false));
  STEP(r, gm_be_stream_is_capturing(a, &r->capturing[2]));
  STEP(r, gpumem_stream_synchronize(a));
  if (ev != NULL) STEP(r, gpumem_event_destroy(ev));
  if (a != NULL) STEP(r, gpumem_stream_destroy(a));
  if (b != NULL) STEP(r, gpumem_stream_destroy(b));
  if (buf != NULL) STEP(r, gpumem_buffer_destroy(buf));
  free(host);
}

static void assert_pool_work(const work_result *r) {
  if (r->st != GPUMEM_OK) {
    fail_msg("%s returned %s: %s", r->step, gpumem_status_name(r->st), r->error);
  }
  assert_int_equal(r->wrong, 0);
  assert_true(r->cache_hit_same);
  assert_int_equal(r->own_access, GPUMEM_ACCESS_READWRITE);
  assert_true(r->reserved_kept > 0);
  assert_int_equal(r->reserved_trimd, 0);
}

static void assert_event_work(const work_result *r) {
  if (r->st != GPUMEM_OK) {
    fail_msg("%s returned %s: %s", r->step, gpumem_status_name(r->st), r->error);
  }
  assert_true(r->event_query == GPUMEM_OK || r->event_query == GPUMEM_ERR_NOT_READY);
  assert_true(r->stream_query == GPUMEM_OK || r->stream_query == GPUMEM_ERR_NOT_READY);
  assert_int_equal(r->wrong, 0);
  assert_int_equal(atomic_load(&r->host_fn_ran), 1);
  assert_int_equal(r->stream_device, r->device);
  assert_true(r->stream_ids[0] != 0 && r->stream_ids[0] != r->stream_ids[1]);
  assert_false(r->capturing[0]);
  assert_true(r->capturing[1]);
  assert_false(r->capturing[2]);
}

typedef struct cold_work {
  void (*work)(work_result *);
  work_result r;
  int device_before, device_after;
} cold_work;

static void *cold_work_thread(void *arg) {
  cold_work *w = arg;
  w->device_before = thread_device();
  w->work(&w->r);
  w->device_after = thread_device();
  return NULL;
}

/* Run `work` on device target() from a new thread, which has no current
 * context, and check that it kept none and that only target()'s context
 * was made. */
static void run_cold(void (*work)(work_result *), void (*check)(const work_result *),
                     const char *what) {
  uint64_t before = contexts();
  cold_work *w = calloc(1, sizeof *w);
  assert_non_null(w);
  w->work = work;
  w->r.device = target();
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, cold_work_thread, w), 0);
  assert_int_equal(pthread_join(t, NULL), 0);
  check(&w->r);
  assert_int_equal(w->device_before, -1);
  if (w->device_after != -1) {
    fail_msg("%s: the thread had no current device and ended with device %d current", what,
             w->device_after);
  }
  assert_contexts(before, BIT(w->r.device), BIT(w->r.device), what);
  free(w);
}

static void test_pool_from_thread_without_device(void **state) {
  (void)state;
  run_cold(pool_work, assert_pool_work, "a thread without a device, a pool on device 1");
}

static void test_events_from_thread_without_device(void **state) {
  (void)state;
  run_cold(event_work, assert_event_work,
           "a thread without a device, streams, events and copies on device 1");
}

/* A thread whose device is the last one works on device 1's pool, streams
 * and events: they run in its context (CUDA takes objects of another device
 * there), which stays current; device 0 gets no context. */
static void test_object_calls_keep_the_callers_device(void **state) {
  (void)state;
  int home = device_count() - 1;
  set_device(home);
  uint64_t before = contexts();
  work_result *r = calloc(2, sizeof *r);
  assert_non_null(r);
  r[0].device = r[1].device = target();
  pool_work(&r[0]);
  assert_int_equal(thread_device(), home);
  event_work(&r[1]);
  assert_int_equal(thread_device(), home);
  assert_pool_work(&r[0]);
  assert_event_work(&r[1]);
  assert_contexts(before, BIT(target()), BIT(target()),
                  "the last device current, a pool, streams and events on device 1");
  if (gm_test_on_host()) assert_int_equal(gm_host_current_device(), home);
  free(r);
}

int main(int argc, char **argv) {
  struct CMUnitTest tests[] = {
      /* The first ones run before any context exists, also on the GPU. */
      cmocka_unit_test_setup_teardown(test_listing_creates_no_context, setup_devices,
                                      teardown_devices),
      cmocka_unit_test_setup_teardown(test_select_creates_no_context, setup_devices,
                                      teardown_devices),
      cmocka_unit_test_setup_teardown(test_gpumem_info_creates_no_context, setup_devices,
                                      teardown_devices),
      cmocka_unit_test_setup_teardown(test_thread_without_device_keeps_none, setup_devices,
                                      teardown_devices),
      cmocka_unit_test_setup_teardown(test_pool_from_thread_without_device, setup_devices,
                                      teardown_devices),
      cmocka_unit_test_setup_teardown(test_events_from_thread_without_device, setup_devices,
                                      teardown_devices),
      cmocka_unit_test_setup_teardown(test_get_info_without_nvml_falls_back, setup_devices,
                                      teardown_devices),
      cmocka_unit_test_setup_teardown(test_buffer_creates_its_device_context_only, setup_devices,
                                      teardown_devices),
      cmocka_unit_test_setup_teardown(test_arena_creates_its_members_contexts_only, setup_devices,
                                      teardown_devices),
      cmocka_unit_test_setup_teardown(test_mem_info_creates_that_context_only, setup_devices,
                                      teardown_devices),
      cmocka_unit_test_setup_teardown(test_caller_device_unchanged, setup_devices,
                                      teardown_devices),
      cmocka_unit_test_setup_teardown(test_object_calls_keep_the_callers_device, setup_devices,
                                      teardown_devices),
  };
  return gm_test_run("test_contexts", tests, GM_ARRAY_SIZE(tests), argc, argv, NULL);
}
