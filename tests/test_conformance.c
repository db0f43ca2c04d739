/* test_conformance.c: the CUDA rules libgpumem relies on, one test each, run
 * on both backends. On the host backend they prove that the emulation
 * refuses what CUDA refuses and runs stream work as a GPU does; on the CUDA
 * backend they record what the GPU does, for the first GPU run (where CUDA
 * documents only "an error", the test asserts only that the call failed and
 * changed nothing; the host's exact status and message are asserted on the
 * host). Host functions (gpumem_launch_host_func, cudaLaunchHostFunc on a
 * GPU) stand in for kernels whose timing the test controls with a gate.
 *
 * The VMM rules of the list in src/backend/host.c that test_backend.c
 * already checks on both backends (granularity, map offset zero, map inside
 * a reservation, release while mapped) are not repeated here. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "backend/host.h"
#include "helpers.h"

/* ---- a job run on a stream (helpers.h has the gate it may wait at) ---- */

/* A job: wait for the gate (if any), fill memory (if any), then take a
 * ticket from a shared counter (so tests see the order jobs ran in). */
typedef struct job {
  gm_test_gate *gate;
  unsigned char *ptr;
  size_t size;
  int value;
  _Atomic int *counter;
  int ticket; /* 0 until run */
} job;

static void job_fn(void *arg) {
  job *j = arg;
  if (j->gate != NULL) gm_test_gate_wait(j->gate);
  if (j->ptr != NULL) memset(j->ptr, j->value, j->size);
  if (j->counter != NULL) j->ticket = atomic_fetch_add(j->counter, 1) + 1;
}

static size_t granularity(int device) {
  gpumem_phys_props props = {device, GPUMEM_HANDLE_NONE, false};
  size_t g = 0;
  assert_gpumem_ok(gpumem_vmm_granularity(&props, false, &g));
  return g;
}

/* ---- VMM ---- */

/* cuda.h, cuMemUnmap: "The range must be the entire contiguous address range
 * that was mapped to." */
static void test_unmap_takes_whole_mappings(void **state) {
  (void)state;
  size_t g = granularity(0);
  void *va = NULL;
  gpumem_phys_t h = 0;
  gpumem_phys_props props = {0, GPUMEM_HANDLE_NONE, false};
  assert_gpumem_ok(gpumem_vmm_reserve(2 * g, 0, &va));
  assert_gpumem_ok(gpumem_vmm_create(&props, 2 * g, &h));
  assert_gpumem_ok(gpumem_vmm_map(va, 2 * g, 0, h));
  gpumem_status st = gpumem_vmm_unmap(va, g);
  assert_int_not_equal(st, GPUMEM_OK);
  if (gm_test_on_host()) {
    assert_int_equal(st, GPUMEM_ERR_INVALID_ARGUMENT);
    assert_last_error_contains("would split the mapping");
  }
  assert_int_equal(gm_test_counters().mapped_bytes, (int64_t)(2 * g)); /* nothing unmapped */
  assert_gpumem_ok(gpumem_vmm_unmap(va, 2 * g));
  assert_gpumem_ok(gpumem_vmm_release(h));
  assert_gpumem_ok(gpumem_vmm_free(va, 2 * g));
}

/* One unmap may cover several adjacent whole mappings: cuda-samples'
 * vectorAddMMAP maps one allocation per device stripe and unmaps the
 * whole range in one cuMemUnmap; the arena moves a run of free pages
 * with one call the same way. On a GPU this checks that the driver
 * agrees. */
static void test_unmap_covers_several_mappings(void **state) {
  (void)state;
  size_t g = granularity(0);
  void *va = NULL;
  gpumem_phys_t h[3] = {0, 0, 0};
  gpumem_phys_props props = {0, GPUMEM_HANDLE_NONE, false};
  assert_gpumem_ok(gpumem_vmm_reserve(4 * g, 0, &va));
  for (int i = 0; i < 3; i++) {
    assert_gpumem_ok(gpumem_vmm_create(&props, g, &h[i]));
    assert_gpumem_ok(gpumem_vmm_map((char *)va + (size_t)i * g, g, 0, h[i]));
  }
  gpumem_access_desc rw = {0, GPUMEM_ACCESS_READWRITE};
  assert_gpumem_ok(gpumem_vmm_set_access(va, 3 * g, &rw, 1)); /* one call, three mappings */
  if (gm_test_on_host()) { /* a range running past the mappings into nothing is refused */
    assert_int_equal(gpumem_vmm_unmap(va, 4 * g), GPUMEM_ERR_NOT_MAPPED);
    assert_int_equal(gm_test_counters().mapped_bytes, (int64_t)(3 * g));
  }
  /* The first two whole mappings go in one call, the last one stays. */
  assert_gpumem_ok(gpumem_vmm_unmap(va, 2 * g));
  assert_int_equal(gm_test_counters().mapped_bytes, (int64_t)g);
  gpumem_access_flags f = GPUMEM_ACCESS_NONE;
  assert_gpumem_ok(gpumem_vmm_get_access((char *)va + 2 * g, 0, &f));
  assert_int_equal(f, GPUMEM_ACCESS_READWRITE);
  assert_gpumem_ok(gpumem_vmm_unmap((char *)va + 2 * g, g));
  for (int i = 0; i < 3; i++)
    assert_gpumem_ok(gpumem_vmm_release(h[i]));
  assert_gpumem_ok(gpumem_vmm_free(va, 4 * g));
}

/* cuda.h, cuMemSetAccess: "The range must be a fully mapped address range
 * containing all allocations created by cuMemMap / cuMemCreate." */
static void test_set_access_needs_a_fully_mapped_range(void **state) {
  (void)state;
  size_t g = granularity(0);
  void *va = NULL;
  gpumem_phys_t h = 0;
  gpumem_phys_props props = {0, GPUMEM_HANDLE_NONE, false};
  assert_gpumem_ok(gpumem_vmm_reserve(2 * g, 0, &va));
  assert_gpumem_ok(gpumem_vmm_create(&props, g, &h));
  assert_gpumem_ok(gpumem_vmm_map(va, g, 0, h));
  gpumem_access_desc rw = {0, GPUMEM_ACCESS_READWRITE};
  gpumem_status st = gpumem_vmm_set_access(va, 2 * g, &rw, 1);
  assert_int_not_equal(st, GPUMEM_OK);
  if (gm_test_on_host()) {
    assert_int_equal(st, GPUMEM_ERR_NOT_MAPPED);
    assert_last_error_contains("are not mapped");
  }
  gpumem_access_flags f = GPUMEM_ACCESS_READWRITE;
  assert_gpumem_ok(gpumem_vmm_get_access(va, 0, &f));
  assert_int_equal(f, GPUMEM_ACCESS_NONE); /* the mapped half was not given access either */
  assert_gpumem_ok(gpumem_vmm_set_access(va, g, &rw, 1));
  assert_gpumem_ok(gpumem_vmm_unmap(va, g));
  assert_gpumem_ok(gpumem_vmm_release(h));
  assert_gpumem_ok(gpumem_vmm_free(va, 2 * g));
}

/* cuda.h, cuMemSetAccess: the range must contain "all allocations created
 * by cuMemMap / cuMemCreate" in it, i.e. one call may cover several
 * mappings, each of its own allocation (what the arena does for a growth
 * of several pieces, and will do for pages moved next to each other).
 * Then one cuMemUnmap over both mappings: accepted on the host; on a GPU
 * the test records what the driver says (cuda.h asks for "the entire
 * contiguous address range that was mapped to", which does not say
 * whether two mappings may go in one call) and falls back to one call
 * each. */
static void test_set_access_covers_several_mappings(void **state) {
  (void)state;
  size_t g = granularity(0);
  void *va = NULL;
  gpumem_phys_t h[2] = {0, 0};
  gpumem_phys_props props = {0, GPUMEM_HANDLE_NONE, false};
  assert_gpumem_ok(gpumem_vmm_reserve(2 * g, 0, &va));
  char *lo = va, *hi = lo + g;
  for (int i = 0; i < 2; i++) {
    assert_gpumem_ok(gpumem_vmm_create(&props, g, &h[i]));
    assert_gpumem_ok(gpumem_vmm_map(i == 0 ? lo : hi, g, 0, h[i]));
  }
  gpumem_access_desc rw = {0, GPUMEM_ACCESS_READWRITE};
  assert_gpumem_ok(gpumem_vmm_set_access(va, 2 * g, &rw, 1));
  for (int i = 0; i < 2; i++) {
    gpumem_access_flags f = GPUMEM_ACCESS_NONE;
    assert_gpumem_ok(gpumem_vmm_get_access(i == 0 ? lo : hi + g - 1, 0, &f));
    assert_int_equal(f, GPUMEM_ACCESS_READWRITE);
  }
  /* Both mappings hold data across the seam. */
  unsigned char out[512], back[512];
  gm_test_fill(out, sizeof out, 9);
  assert_gpumem_ok(gpumem_memcpy(hi - 256, out, sizeof out, NULL));
  assert_gpumem_ok(gpumem_memcpy(back, hi - 256, sizeof back, NULL));
  assert_gpumem_ok(gpumem_stream_synchronize(NULL));
  assert_int_equal(gm_test_mismatches(back, sizeof back, 9), 0);
  gpumem_status st = gpumem_vmm_unmap(va, 2 * g);
  if (gm_test_on_host()) {
    assert_gpumem_ok(st);
    assert_int_equal(gm_test_counters().mapped_bytes, 0);
  } else {
    print_message("one unmap over two mappings: %s\n", gpumem_status_string(st));
    if (st != GPUMEM_OK) {
      assert_gpumem_ok(gpumem_vmm_unmap(lo, g));
      assert_gpumem_ok(gpumem_vmm_unmap(hi, g));
    }
  }
  for (int i = 0; i < 2; i++)
    assert_gpumem_ok(gpumem_vmm_release(h[i]));
  assert_gpumem_ok(gpumem_vmm_free(va, 2 * g));
}

/* cuda.h, CUmemAllocationProp::requestedHandleTypes and
 * cuMemExportToShareableHandle: only a handle type asked for at creation
 * can be exported. */
static void test_export_needs_the_type_asked_at_creation(void **state) {
  (void)state;
  size_t g = granularity(0);
  gpumem_phys_t h = 0;
  gpumem_phys_props props = {0, GPUMEM_HANDLE_NONE, false};
  assert_gpumem_ok(gpumem_vmm_create(&props, g, &h));
  gpumem_shareable_handle sh;
  gpumem_status st = gpumem_vmm_export(h, GPUMEM_HANDLE_POSIX_FD, &sh);
  assert_int_not_equal(st, GPUMEM_OK);
  if (gm_test_on_host()) {
    assert_int_equal(st, GPUMEM_ERR_INVALID_ARGUMENT);
    assert_last_error_contains("created without handle type POSIX_FD");
  }
  assert_gpumem_ok(gpumem_vmm_release(h));
}

/* Fabric handles: asked only where HANDLE_TYPE_FABRIC_SUPPORTED says so; a
 * device that advertises them may still refuse (NOT_PERMITTED without an
 * IMEX channel, as on our H100: cuda-facts.md). */
static void test_fabric_follows_the_attribute(void **state) {
  (void)state;
  gpumem_device_info info;
  assert_gpumem_ok(gpumem_device_get_info(0, &info));
  size_t g = granularity(0);
  gpumem_phys_props props = {0, GPUMEM_HANDLE_FABRIC, false};
  gpumem_phys_t h = 0;
  gpumem_status st = gpumem_vmm_create(&props, g, &h);
  if (!info.fabric) {
    assert_int_equal(st, GPUMEM_ERR_INVALID_ARGUMENT);
  } else if (st == GPUMEM_OK) {
    assert_gpumem_ok(gpumem_vmm_release(h));
  } else {
    assert_int_equal(st, GPUMEM_ERR_NOT_PERMITTED);
  }
}

/* ---- streams ---- */

/* Work runs after the call that queued it returned; queries say NOT_READY
 * until it has run, synchronize waits for it (cudaLaunchHostFunc,
 * cudaStreamQuery, cudaEventQuery). */
static void test_work_runs_later_and_queries_say_so(void **state) {
  (void)state;
  gpumem_stream_t s = NULL;
  gpumem_event_t e = NULL;
  assert_gpumem_ok(gpumem_stream_create(0, &s));
  assert_gpumem_ok(gpumem_event_create(0, &e));
  assert_gpumem_ok(gpumem_event_query(e)); /* never recorded: complete */
  gm_test_gate g = GM_TEST_GATE_INIT;
  _Atomic int counter = 0;
  job j = {&g, NULL, 0, 0, &counter, 0};
  assert_gpumem_ok(gpumem_launch_host_func(s, job_fn, &j));
  assert_gpumem_ok(gpumem_event_record(e, s));
  assert_int_equal(gpumem_stream_query(s), GPUMEM_ERR_NOT_READY);
  assert_int_equal(gpumem_event_query(e), GPUMEM_ERR_NOT_READY);
  /* NOT_READY is an answer, not an error that stays: the next call works. */
  gpumem_stream_t other = NULL;
  assert_gpumem_ok(gpumem_stream_create(0, &other));
  assert_gpumem_ok(gpumem_stream_query(other));
  assert_int_equal(j.ticket, 0);
  gm_test_gate_open(&g);
  assert_gpumem_ok(gpumem_event_synchronize(e));
  assert_int_equal(j.ticket, 1);
  assert_gpumem_ok(gpumem_stream_query(s));
  assert_gpumem_ok(gpumem_event_query(e));
  assert_gpumem_ok(gpumem_event_destroy(e));
  assert_gpumem_ok(gpumem_stream_destroy(s));
  assert_gpumem_ok(gpumem_stream_destroy(other));
}

/* cudaStreamWaitEvent: later work on B waits for the work A had queued when
 * the event was recorded. */
static void test_wait_event_orders_two_streams(void **state) {
  (void)state;
  gpumem_stream_t a = NULL, b = NULL;
  gpumem_event_t e = NULL;
  assert_gpumem_ok(gpumem_stream_create(0, &a));
  assert_gpumem_ok(gpumem_stream_create(0, &b));
  assert_gpumem_ok(gpumem_event_create(0, &e));
  gm_test_gate g = GM_TEST_GATE_INIT;
  _Atomic int counter = 0;
  job first = {&g, NULL, 0, 0, &counter, 0}, second = {NULL, NULL, 0, 0, &counter, 0};
  assert_gpumem_ok(gpumem_launch_host_func(a, job_fn, &first));
  assert_gpumem_ok(gpumem_event_record(e, a));
  assert_gpumem_ok(gpumem_stream_wait_event(b, e));
  assert_gpumem_ok(gpumem_launch_host_func(b, job_fn, &second));
  usleep(20000);
  assert_int_equal(gpumem_stream_query(b), GPUMEM_ERR_NOT_READY); /* held by A's gate */
  gm_test_gate_open(&g);
  assert_gpumem_ok(gpumem_stream_synchronize(b));
  assert_int_equal(first.ticket, 1);
  assert_int_equal(second.ticket, 2);
  assert_gpumem_ok(gpumem_event_destroy(e));
  assert_gpumem_ok(gpumem_stream_destroy(a));
  assert_gpumem_ok(gpumem_stream_destroy(b));
}

/* cudaStreamDestroy: "the function will return immediately and the resources
 * associated with stream will be released automatically once the device has
 * completed all work in stream". */
static void test_destroy_returns_at_once_and_work_still_runs(void **state) {
  (void)state;
  gpumem_stream_t s = NULL;
  assert_gpumem_ok(gpumem_stream_create(0, &s));
  gm_test_gate g = GM_TEST_GATE_INIT;
  _Atomic int counter = 0;
  job j = {&g, NULL, 0, 0, &counter, 0};
  assert_gpumem_ok(gpumem_launch_host_func(s, job_fn, &j));
  assert_gpumem_ok(gpumem_stream_destroy(s));
  assert_int_equal(j.ticket, 0);
  gm_test_gate_open(&g);
  assert_gpumem_ok(gpumem_device_synchronize(0));
  assert_int_equal(j.ticket, 1);
}

/* The legacy default stream (NULL) synchronises with blocking streams: its
 * work waits for theirs, theirs for its; non-blocking streams
 * (cudaStreamNonBlocking, what gpumem_stream_create makes) and the
 * per-thread default stream do not (the runtime API documentation, "stream
 * synchronization behavior"). */
static void test_legacy_stream_synchronises_with_blocking_streams_only(void **state) {
  (void)state;
  gpumem_stream_t blocking = NULL, nonblocking = NULL;
  assert_gpumem_ok(gm_be_stream_create(0, GM_STREAM_BLOCKING, &blocking));
  assert_gpumem_ok(gpumem_stream_create(0, &nonblocking));
  _Atomic int counter = 0;
  /* Non-blocking: NULL's work runs while the gated work still waits. */
  gm_test_gate g1 = GM_TEST_GATE_INIT;
  job held = {&g1, NULL, 0, 0, &counter, 0}, free_run = {NULL, NULL, 0, 0, &counter, 0};
  assert_gpumem_ok(gpumem_launch_host_func(nonblocking, job_fn, &held));
  assert_gpumem_ok(gpumem_launch_host_func(NULL, job_fn, &free_run));
  assert_gpumem_ok(gpumem_stream_synchronize(NULL));
  assert_int_equal(free_run.ticket, 1);
  assert_int_equal(held.ticket, 0);
  /* The per-thread default stream does not wait for the legacy one either. */
  gm_test_gate g2 = GM_TEST_GATE_INIT;
  job legacy_held = {&g2, NULL, 0, 0, &counter, 0}, per_thread = {NULL, NULL, 0, 0, &counter, 0};
  assert_gpumem_ok(gpumem_launch_host_func(NULL, job_fn, &legacy_held));
  assert_gpumem_ok(gpumem_launch_host_func(GPUMEM_STREAM_PER_THREAD, job_fn, &per_thread));
  assert_gpumem_ok(gpumem_stream_synchronize(GPUMEM_STREAM_PER_THREAD));
  assert_int_equal(per_thread.ticket, 2);
  gm_test_gate_open(&g2);
  assert_gpumem_ok(gpumem_stream_synchronize(NULL));
  gm_test_gate_open(&g1);
  assert_gpumem_ok(gpumem_stream_synchronize(nonblocking));
  /* Blocking: NULL's work waits for the blocking stream's, and the blocking
   * stream's later work waits for NULL's. */
  gm_test_gate g3 = GM_TEST_GATE_INIT;
  job b1 = {&g3, NULL, 0, 0, &counter, 0}, l1 = {NULL, NULL, 0, 0, &counter, 0},
      b2 = {NULL, NULL, 0, 0, &counter, 0};
  assert_gpumem_ok(gpumem_launch_host_func(blocking, job_fn, &b1));
  assert_gpumem_ok(gpumem_launch_host_func(NULL, job_fn, &l1));
  assert_gpumem_ok(gpumem_launch_host_func(blocking, job_fn, &b2));
  usleep(20000);
  assert_int_equal(l1.ticket, 0); /* waiting for b1 */
  gm_test_gate_open(&g3);
  assert_gpumem_ok(gpumem_stream_synchronize(blocking));
  assert_true(b1.ticket < l1.ticket && l1.ticket < b2.ticket);
  assert_gpumem_ok(gpumem_stream_destroy(blocking));
  assert_gpumem_ok(gpumem_stream_destroy(nonblocking));
}

static void *other_thread_stream_id(void *arg) {
  uint64_t *id = arg;
  if (gm_be_stream_id(GPUMEM_STREAM_PER_THREAD, id) != GPUMEM_OK) *id = 0;
  return NULL;
}

/* cudaStreamPerThread is one stream per thread (and device); NULL names the
 * same legacy stream in every thread. Stream ids (cudaStreamGetId) tell them
 * apart. */
static void test_default_streams_by_thread(void **state) {
  (void)state;
  uint64_t mine = 0, theirs = 0, legacy = 0, legacy_again = 0;
  assert_gpumem_ok(gm_be_stream_id(GPUMEM_STREAM_PER_THREAD, &mine));
  assert_gpumem_ok(gm_be_stream_id(NULL, &legacy));
  assert_gpumem_ok(gm_be_stream_id(GPUMEM_STREAM_LEGACY, &legacy_again));
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, other_thread_stream_id, &theirs), 0);
  pthread_join(t, NULL);
  assert_true(theirs != 0);
  assert_true(mine != theirs);
  assert_true(mine != legacy);
  assert_int_equal(legacy, legacy_again);
}

/* Copies and pageable host memory (the runtime API documentation, "API
 * synchronization behavior"): from pageable memory the source is staged
 * before the call returns, so the caller may reuse it at once; to pageable
 * memory the call returns once the copy is done. */
static void test_pageable_copies(void **state) {
  (void)state;
  gpumem_stream_t s = NULL;
  assert_gpumem_ok(gpumem_stream_create(0, &s));
  gpumem_pool_config c = GPUMEM_POOL_CONFIG_INIT;
  gpumem_pool_t *p = NULL;
  assert_gpumem_ok(gpumem_pool_create(&c, &p));
  unsigned char *dev = NULL, host[4096];
  assert_gpumem_ok(gpumem_pool_alloc(p, sizeof host, s, (void **)&dev));
  gm_test_gate g = GM_TEST_GATE_INIT;
  job held = {&g, NULL, 0, 0, NULL, 0};
  assert_gpumem_ok(gpumem_launch_host_func(s, job_fn, &held));
  gm_test_gate_open(&g); /* the host-to-device copy synchronizes the stream first */
  memset(host, 7, sizeof host);
  assert_gpumem_ok(gpumem_memcpy(dev, host, sizeof host, s));
  memset(host, 9, sizeof host); /* reused at once: the copy took the 7s */
  assert_gpumem_ok(gpumem_memcpy(host, dev, sizeof host, s));
  for (size_t i = 0; i < sizeof host; i++) /* no synchronize needed */
    assert_int_equal(host[i], 7);
  assert_gpumem_ok(gpumem_pool_free(p, dev, s));
  assert_gpumem_ok(gpumem_pool_destroy(p));
  assert_gpumem_ok(gpumem_stream_destroy(s));
}

/* Capture (cudaStreamBeginCapture): synchronizing or querying a stream being
 * captured is refused (cudaErrorStreamCaptureUnsupported), and capture is
 * visible to a capture-aware caller (cudaStreamIsCapturing). */
static void test_capture_is_visible_and_refuses_synchronize(void **state) {
  (void)state;
  gpumem_stream_t s = NULL;
  assert_gpumem_ok(gpumem_stream_create(0, &s));
  bool capturing = true;
  assert_gpumem_ok(gm_be_stream_is_capturing(s, &capturing));
  assert_false(capturing);
  assert_gpumem_ok(gm_be_stream_capture(s, true));
  assert_gpumem_ok(gm_be_stream_is_capturing(s, &capturing));
  assert_true(capturing);
  assert_int_equal(gpumem_stream_synchronize(s), GPUMEM_ERR_STATE);
  assert_int_equal(gpumem_stream_query(s), GPUMEM_ERR_STATE);
  assert_gpumem_ok(gm_be_stream_capture(s, false));
  assert_gpumem_ok(gpumem_stream_synchronize(s));
  assert_int_not_equal(gm_be_stream_capture(NULL, true), GPUMEM_OK); /* not the legacy stream */
  assert_gpumem_ok(gpumem_stream_destroy(s));
}

/* cudaEventRecord: event and stream must belong to the same device. */
static void test_event_and_stream_of_one_device(void **state) {
  (void)state;
  int count = 0;
  assert_gpumem_ok(gpumem_device_count(&count));
  if (count < 2) skip();
  gpumem_stream_t s = NULL;
  gpumem_event_t e = NULL;
  assert_gpumem_ok(gpumem_stream_create(1, &s));
  assert_gpumem_ok(gpumem_event_create(0, &e));
  assert_int_not_equal(gpumem_event_record(e, s), GPUMEM_OK);
  assert_gpumem_ok(gpumem_event_destroy(e));
  assert_gpumem_ok(gpumem_stream_destroy(s));
}

/* ---- stream-ordered pools ---- */

typedef struct reuse_case {
  gpumem_native_pool_t pool;
  gpumem_stream_t a, b;
  void *x;
  size_t block;
  gm_test_gate g;
  job held;
} reuse_case;

/* A pool of one block X, with only the given reuse policies on; X freed on A
 * behind a gated job, so its free has not run yet. Any other allocation of
 * a block must take X or fail. */
static void reuse_setup(reuse_case *r, bool follow, bool opportunistic, bool internal) {
  r->block = granularity(0);
  gm_pool_props props = {0, GPUMEM_HANDLE_NONE, r->block};
  assert_gpumem_ok(gm_be_pool_create(&props, &r->pool));
  assert_gpumem_ok(gm_be_pool_set_attr(r->pool, GM_POOL_RELEASE_THRESHOLD, UINT64_MAX));
  assert_gpumem_ok(gm_be_pool_set_attr(r->pool, GM_POOL_REUSE_FOLLOW_EVENT_DEPENDENCIES, follow));
  assert_gpumem_ok(gm_be_pool_set_attr(r->pool, GM_POOL_REUSE_ALLOW_OPPORTUNISTIC, opportunistic));
  assert_gpumem_ok(
      gm_be_pool_set_attr(r->pool, GM_POOL_REUSE_ALLOW_INTERNAL_DEPENDENCIES, internal));
  assert_gpumem_ok(gpumem_stream_create(0, &r->a));
  assert_gpumem_ok(gpumem_stream_create(0, &r->b));
  r->g = (gm_test_gate)GM_TEST_GATE_INIT;
  r->held = (job){&r->g, NULL, 0, 0, NULL, 0};
  assert_gpumem_ok(gm_be_pool_alloc(r->pool, r->block, r->a, &r->x));
  assert_gpumem_ok(gpumem_launch_host_func(r->a, job_fn, &r->held));
  assert_gpumem_ok(gm_be_pool_free(r->x, r->a));
}

static void reuse_teardown(reuse_case *r, void *y) {
  gm_test_gate_open(&r->g);
  if (y != NULL) assert_gpumem_ok(gm_be_pool_free(y, r->b));
  assert_gpumem_ok(gpumem_stream_synchronize(r->a));
  assert_gpumem_ok(gpumem_stream_synchronize(r->b));
  assert_gpumem_ok(gm_be_pool_destroy(r->pool));
  assert_gpumem_ok(gpumem_stream_destroy(r->a));
  assert_gpumem_ok(gpumem_stream_destroy(r->b));
}

/* B's allocation must wait for X (fail here: the pool holds nothing else). */
static void b_cannot_have_x(reuse_case *r) {
  void *y = NULL;
  assert_int_equal(gm_be_pool_alloc(r->pool, r->block, r->b, &y), GPUMEM_ERR_OUT_OF_MEMORY);
  assert_null(y);
}

/* With every policy off, memory freed on A and not yet seen complete is not
 * handed to B; on A itself it is, at once (stream order). */
static void test_pool_reuse_without_policies(void **state) {
  (void)state;
  reuse_case r;
  reuse_setup(&r, false, false, false);
  b_cannot_have_x(&r);
  void *z = NULL;
  assert_gpumem_ok(gm_be_pool_alloc(r.pool, r.block, r.a, &z));
  assert_ptr_equal(z, r.x);
  assert_gpumem_ok(gm_be_pool_free(z, r.a));
  reuse_teardown(&r, NULL);
}

/* cudaMemPoolReuseFollowEventDependencies: B may reuse X once it waited on
 * an event recorded on A after the free. */
static void test_pool_reuse_follows_event_dependencies(void **state) {
  (void)state;
  reuse_case r;
  reuse_setup(&r, true, false, false);
  b_cannot_have_x(&r); /* no dependency yet */
  gpumem_event_t e = NULL;
  assert_gpumem_ok(gpumem_event_create(0, &e));
  assert_gpumem_ok(gpumem_event_record(e, r.a));
  assert_gpumem_ok(gpumem_stream_wait_event(r.b, e));
  void *w = NULL;
  assert_gpumem_ok(gm_be_pool_alloc(r.pool, r.block, r.b, &w));
  assert_ptr_equal(w, r.x);
  assert_gpumem_ok(gpumem_event_destroy(e));
  reuse_teardown(&r, w);
}

/* cudaMemPoolReuseAllowOpportunistic: B may reuse X once the free has run,
 * even if no one observed it. */
static void test_pool_reuse_opportunistic(void **state) {
  (void)state;
  reuse_case r;
  reuse_setup(&r, false, true, false);
  b_cannot_have_x(&r); /* the free has not run */
  _Atomic int counter = 0;
  job after = {NULL, NULL, 0, 0, &counter, 0};
  assert_gpumem_ok(gpumem_launch_host_func(r.a, job_fn, &after));
  gm_test_gate_open(&r.g);
  while (atomic_load(&counter) == 0) /* the free ran; nobody synchronized */
    usleep(100);
  void *w = NULL;
  assert_gpumem_ok(gm_be_pool_alloc(r.pool, r.block, r.b, &w));
  assert_ptr_equal(w, r.x);
  reuse_teardown(&r, w);
}

/* cudaMemPoolReuseAllowInternalDependencies: B may get X at once, but its
 * later work then waits for A's free: B's writes land after A's. */
static void test_pool_reuse_with_internal_dependencies(void **state) {
  (void)state;
  reuse_case r;
  reuse_setup(&r, false, false, true);
  unsigned char *y = NULL;
  assert_gpumem_ok(gm_be_pool_alloc(r.pool, r.block, r.b, (void **)&y));
  assert_ptr_equal(y, r.x);
  job mine = {NULL, y, r.block, 0x5a, NULL, 0};
  assert_gpumem_ok(gpumem_launch_host_func(r.b, job_fn, &mine));
  usleep(20000);
  assert_int_equal(gpumem_stream_query(r.b), GPUMEM_ERR_NOT_READY); /* behind A's free */
  gm_test_gate_open(&r.g);
  assert_gpumem_ok(gpumem_stream_synchronize(r.b));
  unsigned char host[4096];
  assert_gpumem_ok(gpumem_memcpy(host, y, sizeof host, r.b));
  for (size_t i = 0; i < sizeof host; i++)
    assert_int_equal(host[i], 0x5a);
  reuse_teardown(&r, y);
}

/* cudaMemPoolTrimTo: "Allocations that have been asynchronously freed but
 * whose completion has not been observed on the host (eg. by a synchronize)
 * can count as outstanding." The host counts them always; a synchronize makes
 * them trimmable on both. */
static void test_trim_keeps_frees_not_observed(void **state) {
  (void)state;
  gm_pool_props props = {0, GPUMEM_HANDLE_NONE, 0};
  gpumem_native_pool_t pool = NULL;
  assert_gpumem_ok(gm_be_pool_create(&props, &pool));
  assert_gpumem_ok(gm_be_pool_set_attr(pool, GM_POOL_RELEASE_THRESHOLD, UINT64_MAX));
  gpumem_stream_t s = NULL;
  assert_gpumem_ok(gpumem_stream_create(0, &s));
  void *x = NULL;
  assert_gpumem_ok(gm_be_pool_alloc(pool, 1 << 20, s, &x));
  assert_gpumem_ok(gm_be_pool_free(x, s));
  assert_gpumem_ok(gm_be_pool_trim(pool, 0));
  if (gm_test_on_host()) assert_true(gm_test_pool_attr(pool, GM_POOL_RESERVED_MEM_CURRENT) > 0);
  assert_gpumem_ok(gpumem_stream_synchronize(s));
  assert_gpumem_ok(gm_be_pool_trim(pool, 0));
  assert_int_equal(gm_test_pool_attr(pool, GM_POOL_RESERVED_MEM_CURRENT), 0);
  assert_gpumem_ok(gm_be_pool_destroy(pool));
  assert_gpumem_ok(gpumem_stream_destroy(s));
}

/* Pool memory is usable from a device only with access (cudaMemPoolSetAccess;
 * the pool's own device always has it), and an imported pool from no
 * device of the importing process until access is set. */
static void test_pool_memory_needs_access(void **state) {
  (void)state;
  int count = 0;
  assert_gpumem_ok(gpumem_device_count(&count));
  if (count < 2 || !gm_test_on_host()) skip(); /* a GPU would fault, not refuse */
  gm_pool_props props = {0, GPUMEM_HANDLE_POSIX_FD, 0};
  gpumem_native_pool_t pool = NULL, imported = NULL;
  assert_gpumem_ok(gm_be_pool_create(&props, &pool));
  gpumem_stream_t s1 = NULL;
  assert_gpumem_ok(gpumem_stream_create(1, &s1));
  void *x = NULL, *y = NULL;
  assert_gpumem_ok(gm_be_pool_alloc(pool, 4096, s1, &x));
  assert_int_equal(gpumem_memset(x, 1, 4096, s1), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("device 1 has no access");
  gpumem_access_desc rw1 = {1, GPUMEM_ACCESS_READWRITE};
  assert_gpumem_ok(gm_be_pool_set_access(pool, &rw1, 1));
  assert_gpumem_ok(gpumem_memset(x, 1, 4096, s1));
  assert_gpumem_ok(gpumem_stream_synchronize(s1));
  /* Imported (in this process, as the host backend allows): no access at all. */
  gpumem_shareable_handle sh;
  gm_pool_ptr_export data;
  assert_gpumem_ok(gm_be_pool_export(pool, GPUMEM_HANDLE_POSIX_FD, &sh));
  assert_gpumem_ok(gm_be_pool_import(&sh, &imported));
  close(sh.fd);
  assert_gpumem_ok(gm_be_pool_export_ptr(x, &data));
  assert_gpumem_ok(gm_be_pool_import_ptr(imported, &data, &y));
  unsigned char host[4096];
  assert_int_equal(gpumem_memcpy(host, y, sizeof host, NULL), GPUMEM_ERR_INVALID_ARGUMENT);
  gpumem_access_desc rw0 = {0, GPUMEM_ACCESS_READWRITE};
  assert_gpumem_ok(gm_be_pool_set_access(imported, &rw0, 1));
  assert_gpumem_ok(gpumem_memcpy(host, y, sizeof host, NULL));
  assert_int_equal(host[0], 1);
  assert_gpumem_ok(gm_be_pool_free(y, NULL));
  assert_gpumem_ok(gpumem_stream_synchronize(NULL));
  assert_gpumem_ok(gm_be_pool_destroy(imported));
  assert_gpumem_ok(gm_be_pool_free(x, s1));
  assert_gpumem_ok(gpumem_stream_synchronize(s1));
  assert_gpumem_ok(gm_be_pool_destroy(pool));
  assert_gpumem_ok(gpumem_stream_destroy(s1));
}

int main(int argc, char **argv) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test(test_unmap_takes_whole_mappings),
      cmocka_unit_test(test_unmap_covers_several_mappings),
      cmocka_unit_test(test_set_access_needs_a_fully_mapped_range),
      cmocka_unit_test(test_set_access_covers_several_mappings),
      cmocka_unit_test(test_export_needs_the_type_asked_at_creation),
      cmocka_unit_test(test_fabric_follows_the_attribute),
      cmocka_unit_test(test_work_runs_later_and_queries_say_so),
      cmocka_unit_test(test_wait_event_orders_two_streams),
      cmocka_unit_test(test_destroy_returns_at_once_and_work_still_runs),
      cmocka_unit_test(test_legacy_stream_synchronises_with_blocking_streams_only),
      cmocka_unit_test(test_default_streams_by_thread),
      cmocka_unit_test(test_pageable_copies),
      cmocka_unit_test(test_capture_is_visible_and_refuses_synchronize),
      cmocka_unit_test(test_event_and_stream_of_one_device),
      cmocka_unit_test(test_pool_reuse_without_policies),
      cmocka_unit_test(test_pool_reuse_follows_event_dependencies),
      cmocka_unit_test(test_pool_reuse_opportunistic),
      cmocka_unit_test(test_pool_reuse_with_internal_dependencies),
      cmocka_unit_test(test_trim_keeps_frees_not_observed),
      cmocka_unit_test(test_pool_memory_needs_access),
  };
  return gm_test_run("conformance", tests, GM_ARRAY_SIZE(tests), argc, argv, NULL);
}
