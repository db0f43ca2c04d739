/* test_backend.c: the backend contract, the same cases on every backend.
 *
 * ctest runs this suite twice: test_backend.host (emulated devices, any
 * machine) and test_backend.cuda (the GPU; skipped without one unless
 * GPUMEM_TEST_REQUIRE_GPU=1). It goes through the public API, so it checks
 * the seam's argument checks and handle registry as well as each backend:
 * reserve / create / map / set access / write / read back / unmap / release /
 * free, the granularity rules, shareable handles inside the process and with
 * a child process, out of memory, bad arguments, streams and events, and the
 * stream-ordered pool primitives. The fixture fails any test that leaves a
 * backend object alive.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "backend.h"
#include "helpers.h"
#include "internal.h"

/* Some misuses are reported with a different code by the driver than by the
 * host emulation (which can be more precise); accept either there. */
#define assert_status_in(call, a, b)                                                    \
  do {                                                                                  \
    gpumem_status s_ = (call);                                                          \
    if (s_ != (a) && s_ != (b))                                                         \
      fail_msg("%s returned %s, expected %s or %s (%s)", #call, gpumem_status_name(s_), \
               gpumem_status_name(a), gpumem_status_name(b), gpumem_last_error());      \
  } while (0)

static size_t granularity(int device) {
  gpumem_phys_props p = GPUMEM_PHYS_PROPS_INIT;
  p.device = device;
  size_t g = 0;
  assert_gpumem_ok(gpumem_vmm_granularity(&p, false, &g));
  return g;
}

/* Round trip `n` bytes through device memory at `va` and check them. */
static void check_roundtrip(void *va, size_t n, unsigned seed) {
  unsigned char *in = malloc(n), *out = malloc(n);
  assert_non_null(in);
  assert_non_null(out);
  gm_test_fill(in, n, seed);
  memset(out, 0, n);
  assert_gpumem_ok(gpumem_memcpy(va, in, n, NULL));
  assert_gpumem_ok(gpumem_memcpy(out, va, n, NULL));
  assert_gpumem_ok(gpumem_stream_synchronize(NULL));
  assert_int_equal(gm_test_mismatches(out, n, seed), 0);
  free(in);
  free(out);
}

static void read_back(const void *va, size_t n, unsigned char *out) {
  assert_gpumem_ok(gpumem_memcpy(out, va, n, NULL));
  assert_gpumem_ok(gpumem_stream_synchronize(NULL));
}

static void test_devices(void **state) {
  (void)state;
  int count = 0;
  assert_gpumem_ok(gpumem_device_count(&count));
  assert_true(count >= 1);
  for (int d = 0; d < count; d++) {
    gpumem_device_info info;
    assert_gpumem_ok(gpumem_device_get_info(d, &info));
    assert_int_equal(info.ordinal, d);
    assert_true(strlen(info.name) > 0);
    assert_int_equal(strlen(info.uuid), 40);
    /* A MIG slice's UUID is MIG-…, a GPU's GPU-… (where NVML cannot tell,
     * either). */
    bool mig_prefix = strncmp(info.uuid, "MIG-", 4) == 0;
    assert_true(mig_prefix || strncmp(info.uuid, "GPU-", 4) == 0);
    if (info.mig != GPUMEM_UNKNOWN) assert_int_equal(mig_prefix, info.mig == GPUMEM_YES);
    assert_true(info.vmm);
    assert_true(gm_is_pow2(info.granularity_min));
    assert_true(info.granularity_recommended >= info.granularity_min);
    assert_int_equal(info.granularity_recommended % info.granularity_min, 0);
    assert_int_equal(granularity(d), info.granularity_min);
    size_t free_bytes = 0, total = 0;
    assert_gpumem_ok(gpumem_device_mem_info(d, &free_bytes, &total));
    assert_int_equal(total, info.memory_total);
    assert_true(free_bytes <= total && free_bytes > 0);
    bool self = false;
    assert_gpumem_ok(gpumem_device_can_access_peer(d, d, &self));
    assert_true(self);
  }
  gpumem_device_info info;
  assert_gpumem_status(gpumem_device_get_info(count, &info), GPUMEM_ERR_INVALID_DEVICE);
  assert_gpumem_status(gpumem_device_get_info(-1, &info), GPUMEM_ERR_INVALID_DEVICE);
  assert_gpumem_status(gpumem_device_get_info(0, NULL), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_device_count(NULL), GPUMEM_ERR_INVALID_ARGUMENT);
}

static void test_map_write_read_unmap(void **state) {
  (void)state;
  size_t g = granularity(0);
  gm_backend_counters c0 = gm_test_counters();
  void *va = NULL;
  assert_gpumem_ok(gpumem_vmm_reserve(4 * g, 0, &va));
  assert_non_null(va);
  assert_int_equal((uintptr_t)va % g, 0);
  gpumem_phys_props props = GPUMEM_PHYS_PROPS_INIT;
  gpumem_phys_t h = 0;
  assert_gpumem_ok(gpumem_vmm_create(&props, 2 * g, &h));
  assert_true(h != 0);
  assert_gpumem_ok(gpumem_vmm_map(va, 2 * g, 0, h));
  gm_backend_counters c1 = gm_test_counters();
  assert_int_equal(c1.reservations - c0.reservations, 1);
  assert_int_equal(c1.reserved_bytes - c0.reserved_bytes, 4 * g);
  assert_int_equal(c1.phys_handles - c0.phys_handles, 1);
  assert_int_equal(c1.phys_bytes - c0.phys_bytes, 2 * g);
  assert_int_equal(c1.mapped_bytes - c0.mapped_bytes, 2 * g);

  gpumem_access_flags f = GPUMEM_ACCESS_READWRITE;
  assert_gpumem_ok(gpumem_vmm_get_access(va, 0, &f));
  assert_int_equal(f, GPUMEM_ACCESS_NONE);
  gpumem_access_desc rw = {0, GPUMEM_ACCESS_READWRITE};
  assert_gpumem_ok(gpumem_vmm_set_access(va, 2 * g, &rw, 1));
  assert_gpumem_ok(gpumem_vmm_get_access((char *)va + g, 0, &f));
  assert_int_equal(f, GPUMEM_ACCESS_READWRITE);
  check_roundtrip(va, 2 * g, 1);
  /* Unaligned offsets and lengths inside the mapping work like any memory. */
  check_roundtrip((char *)va + 4097, g - 8191, 2);

  gpumem_phys_props got;
  assert_gpumem_ok(gpumem_vmm_get_props(h, &got));
  assert_int_equal(got.device, 0);
  assert_int_equal(got.handle_types, GPUMEM_HANDLE_NONE);

  assert_gpumem_ok(gpumem_vmm_unmap(va, 2 * g));
  assert_gpumem_ok(gpumem_vmm_release(h));
  assert_gpumem_ok(gpumem_vmm_free(va, 4 * g));
  gm_backend_counters c2 = gm_test_counters();
  assert_int_equal(c2.reservations, c0.reservations);
  assert_int_equal(c2.phys_handles, c0.phys_handles);
  assert_int_equal(c2.mapped_bytes, c0.mapped_bytes);
}

static void test_grow_in_place_keeps_contents(void **state) {
  (void)state;
  size_t g = granularity(0);
  void *va = NULL;
  assert_gpumem_ok(gpumem_vmm_reserve(8 * g, 0, &va));
  gpumem_phys_props props = GPUMEM_PHYS_PROPS_INIT;
  gpumem_phys_t h[3];
  gpumem_access_desc rw = {0, GPUMEM_ACCESS_READWRITE};
  unsigned char *expect = malloc(3 * g), *got = malloc(3 * g);
  gm_test_fill(expect, 3 * g, 9);
  for (int i = 0; i < 3; i++) {
    char *at = (char *)va + (size_t)i * g;
    assert_gpumem_ok(gpumem_vmm_create(&props, g, &h[i]));
    assert_gpumem_ok(gpumem_vmm_map(at, g, 0, h[i]));
    assert_gpumem_ok(gpumem_vmm_set_access(at, g, &rw, 1));
    assert_gpumem_ok(gpumem_memcpy(at, expect + (size_t)i * g, g, NULL));
    read_back(va, (size_t)(i + 1) * g, got);
    assert_memory_equal(got, expect, (size_t)(i + 1) * g);
  }
  /* One unmap may cover several whole mappings. */
  assert_gpumem_ok(gpumem_vmm_unmap(va, 3 * g));
  for (int i = 0; i < 3; i++)
    assert_gpumem_ok(gpumem_vmm_release(h[i]));
  assert_gpumem_ok(gpumem_vmm_free(va, 8 * g));
  free(expect);
  free(got);
}

static void test_granularity_rules(void **state) {
  (void)state;
  size_t g = granularity(0);
  gpumem_phys_props props = GPUMEM_PHYS_PROPS_INIT;
  gpumem_phys_t h = 0;
  gm_backend_counters c0 = gm_test_counters();
  assert_gpumem_status(gpumem_vmm_create(&props, g / 2, &h), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_vmm_create(&props, g + 4096, &h), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_int_equal(h, 0);
  void *va = NULL;
  assert_gpumem_ok(gpumem_vmm_reserve(4 * g, 0, &va));
  assert_gpumem_ok(gpumem_vmm_create(&props, 2 * g, &h));
  char *base = va;
  assert_gpumem_status(gpumem_vmm_map(base + g / 2, g, 0, h), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_vmm_map(base, g, g / 2, h), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_vmm_map(base, g / 2, 0, h), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_vmm_map(base, 3 * g, 0, h), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_vmm_map(base, g, 2 * g, h), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_vmm_map(base, 0, 0, h), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_int_equal(gm_test_counters().mapped_bytes, c0.mapped_bytes);
  /* A second map over a mapped range is refused. */
  assert_gpumem_ok(gpumem_vmm_map(base, 2 * g, 0, h));
  assert_status_in(gpumem_vmm_map(base + g, g, 0, h), GPUMEM_ERR_ALREADY_MAPPED,
                   GPUMEM_ERR_INVALID_ARGUMENT);
  assert_int_equal(gm_test_counters().mapped_bytes, c0.mapped_bytes + (int64_t)(2 * g));
  /* Freeing a reservation that still has mappings, or mapping outside one, is
   * refused before the driver sees it. */
  assert_gpumem_status(gpumem_vmm_free(va, 4 * g), GPUMEM_ERR_BUSY);
  assert_last_error_contains("bytes mapped: unmap them before freeing it");
  assert_gpumem_status(gpumem_vmm_map(base + 4 * g, g, 0, h), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_vmm_map(base + 3 * g, 2 * g, 0, h), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("is not inside an address reservation");
  assert_gpumem_status(gpumem_vmm_unmap(base + 8 * g, g), GPUMEM_ERR_NOT_MAPPED);
  /* cuMemMap's offset "currently must be zero" (cuda.h, cuMemMap): an
   * aligned, in-bounds offset into the allocation is refused, nothing is
   * mapped; the same allocation from its start at a second place is fine. */
  assert_gpumem_status(gpumem_vmm_map(base + 2 * g, g, g, h), GPUMEM_ERR_INVALID_ARGUMENT);
  if (gm_test_on_host()) {
    char what[96];
    snprintf(what, sizeof what, "offset %zu): the offset into the allocation must be 0", g);
    assert_last_error_contains(what);
    assert_last_error_contains("(cuda.h, cuMemMap: \"currently must be zero\")");
  }
  assert_int_equal(gm_test_counters().mapped_bytes, c0.mapped_bytes + (int64_t)(2 * g));
  assert_gpumem_ok(gpumem_vmm_map(base + 2 * g, g, 0, h));
  assert_int_equal(gm_test_counters().mapped_bytes, c0.mapped_bytes + (int64_t)(3 * g));
  assert_gpumem_ok(gpumem_vmm_unmap(base + 2 * g, g));
  assert_gpumem_ok(gpumem_vmm_unmap(base, 2 * g));
  assert_gpumem_ok(gpumem_vmm_release(h));
  assert_gpumem_ok(gpumem_vmm_free(va, 4 * g));
}

static void test_bad_arguments(void **state) {
  (void)state;
  size_t g = granularity(0);
  gpumem_phys_props props = GPUMEM_PHYS_PROPS_INIT;
  gpumem_phys_t h = 0;
  void *va = NULL;
  size_t n = 0;
  gm_backend_counters c0 = gm_test_counters();
  /* NULL outputs and inputs */
  assert_gpumem_status(gpumem_vmm_granularity(NULL, false, &n), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_vmm_granularity(&props, false, NULL), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_vmm_reserve(g, 0, NULL), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("gpumem_vmm_reserve: va is NULL");
  assert_gpumem_status(gpumem_vmm_create(NULL, g, &h), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_vmm_create(&props, g, NULL), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_vmm_get_props(1, NULL), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_vmm_export(1, GPUMEM_HANDLE_POSIX_FD, NULL),
                       GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_vmm_import(NULL, &h), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_vmm_set_access(va, g, NULL, 1), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_vmm_get_access(va, 0, NULL), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_vmm_free(NULL, g), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_vmm_map(NULL, g, 0, 1), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_vmm_unmap(NULL, g), GPUMEM_ERR_INVALID_ARGUMENT);
  /* zero and overflowing sizes */
  assert_gpumem_status(gpumem_vmm_reserve(0, 0, &va), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_vmm_create(&props, 0, &h), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_status_in(gpumem_vmm_create(&props, SIZE_MAX - g + 1, &h), GPUMEM_ERR_OUT_OF_MEMORY,
                   GPUMEM_ERR_INVALID_ARGUMENT);
  assert_status_in(gpumem_vmm_reserve(SIZE_MAX - g + 1, 0, &va), GPUMEM_ERR_OUT_OF_MEMORY,
                   GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_vmm_reserve(g, 3 * g, &va), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("is not a power of two");
  assert_null(va);
  assert_int_equal(h, 0);
  /* wrong devices and handle types */
  props.device = 4096;
  assert_gpumem_status(gpumem_vmm_create(&props, g, &h), GPUMEM_ERR_INVALID_DEVICE);
  props.device = -1;
  assert_gpumem_status(gpumem_vmm_granularity(&props, false, &n), GPUMEM_ERR_INVALID_DEVICE);
  props.device = 0;
  props.handle_types = 0x40;
  assert_gpumem_status(gpumem_vmm_create(&props, g, &h), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("unknown handle type bits 0x40");
  props.handle_types = GPUMEM_HANDLE_NONE;
  /* handles that are not live */
  assert_gpumem_status(gpumem_vmm_release(0), GPUMEM_ERR_INVALID_POINTER);
  assert_gpumem_status(gpumem_vmm_release(0xdead0000), GPUMEM_ERR_INVALID_POINTER);
  assert_last_error_contains("not a live physical handle");
  assert_gpumem_ok(gpumem_vmm_create(&props, g, &h));
  assert_gpumem_ok(gpumem_vmm_release(h));
  assert_gpumem_status(gpumem_vmm_release(h), GPUMEM_ERR_DOUBLE_FREE);
  assert_last_error_contains("already released");
  assert_gpumem_status(gpumem_vmm_map((void *)(uintptr_t)(64 * g), g, 0, h),
                       GPUMEM_ERR_DOUBLE_FREE);
  gpumem_shareable_handle sh;
  assert_gpumem_status(gpumem_vmm_export(h, GPUMEM_HANDLE_POSIX_FD, &sh), GPUMEM_ERR_DOUBLE_FREE);
  sh = (gpumem_shareable_handle){GPUMEM_HANDLE_POSIX_FD, -1, {0}};
  assert_gpumem_status(gpumem_vmm_import(&sh, &h), GPUMEM_ERR_INVALID_ARGUMENT);
  sh.type = (gpumem_handle_type)3;
  assert_gpumem_status(gpumem_vmm_import(&sh, &h), GPUMEM_ERR_INVALID_ARGUMENT);
  /* unmapping what is not mapped, freeing what is not reserved */
  assert_gpumem_ok(gpumem_vmm_reserve(2 * g, 0, &va));
  assert_status_in(gpumem_vmm_unmap(va, g), GPUMEM_ERR_NOT_MAPPED, GPUMEM_ERR_INVALID_ARGUMENT);
  gpumem_access_desc rw = {0, GPUMEM_ACCESS_READWRITE};
  assert_status_in(gpumem_vmm_set_access(va, g, &rw, 1), GPUMEM_ERR_NOT_MAPPED,
                   GPUMEM_ERR_INVALID_ARGUMENT);
  gpumem_access_desc bad = {0, (gpumem_access_flags)7};
  assert_gpumem_status(gpumem_vmm_set_access(va, g, &bad, 1), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_vmm_set_access(va, g, &rw, 0), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_vmm_free((char *)va + g, g), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("is not the start of a live address reservation");
  assert_gpumem_status(gpumem_vmm_free(va, g), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("free it whole");
  assert_gpumem_ok(gpumem_vmm_free(va, 2 * g));
  gm_backend_counters c1 = gm_test_counters();
  assert_int_equal(c1.reservations, c0.reservations);
  assert_int_equal(c1.phys_handles, c0.phys_handles);
}

static void test_out_of_memory(void **state) {
  (void)state;
  size_t g = granularity(0);
  gpumem_device_info info;
  assert_gpumem_ok(gpumem_device_get_info(0, &info));
  size_t too_big = (info.memory_total / g + 1) * g;
  gpumem_phys_props props = GPUMEM_PHYS_PROPS_INIT;
  gpumem_phys_t h = 0;
  gm_backend_counters c0 = gm_test_counters();
  assert_gpumem_status(gpumem_vmm_create(&props, too_big, &h), GPUMEM_ERR_OUT_OF_MEMORY);
  assert_last_error_contains("gpumem_vmm_create: ");
  assert_int_equal(h, 0);
  assert_int_equal(gm_test_counters().phys_handles, c0.phys_handles);
  /* The device still works afterwards. */
  assert_gpumem_ok(gpumem_vmm_create(&props, g, &h));
  assert_gpumem_ok(gpumem_vmm_release(h));
}

static void test_release_while_mapped(void **state) {
  (void)state;
  size_t g = granularity(0);
  void *va = NULL;
  gpumem_phys_props props = GPUMEM_PHYS_PROPS_INIT;
  gpumem_phys_t h = 0;
  gpumem_access_desc rw = {0, GPUMEM_ACCESS_READWRITE};
  assert_gpumem_ok(gpumem_vmm_reserve(g, 0, &va));
  assert_gpumem_ok(gpumem_vmm_create(&props, g, &h));
  assert_gpumem_ok(gpumem_vmm_map(va, g, 0, h));
  assert_gpumem_ok(gpumem_vmm_release(h)); /* the mapping keeps the memory alive */
  assert_gpumem_ok(gpumem_vmm_set_access(va, g, &rw, 1));
  check_roundtrip(va, g, 3);
  assert_gpumem_ok(gpumem_vmm_unmap(va, g));
  assert_gpumem_ok(gpumem_vmm_free(va, g));
}

/* Map `h` at a fresh reservation with read-write access for device 0. */
static void *map_fresh(gpumem_phys_t h, size_t size) {
  void *va = NULL;
  gpumem_access_desc rw = {0, GPUMEM_ACCESS_READWRITE};
  assert_gpumem_ok(gpumem_vmm_reserve(size, 0, &va));
  assert_gpumem_ok(gpumem_vmm_map(va, size, 0, h));
  assert_gpumem_ok(gpumem_vmm_set_access(va, size, &rw, 1));
  return va;
}

static void unmap_fresh(void *va, size_t size) {
  assert_gpumem_ok(gpumem_vmm_unmap(va, size));
  assert_gpumem_ok(gpumem_vmm_free(va, size));
}

static bool posix_fd_supported(void) {
  gpumem_device_info info;
  assert_gpumem_ok(gpumem_device_get_info(0, &info));
  return info.posix_fd;
}

static void test_export_import_in_process(void **state) {
  (void)state;
  if (!posix_fd_supported()) skip();
  size_t g = granularity(0);
  gpumem_phys_props props = GPUMEM_PHYS_PROPS_INIT;
  props.handle_types = GPUMEM_HANDLE_POSIX_FD;
  gpumem_phys_t h = 0, imported = 0;
  assert_gpumem_ok(gpumem_vmm_create(&props, g, &h));
  gpumem_phys_props got;
  assert_gpumem_ok(gpumem_vmm_get_props(h, &got));
  assert_int_equal(got.handle_types, GPUMEM_HANDLE_POSIX_FD);
  gpumem_shareable_handle sh;
  assert_gpumem_ok(gpumem_vmm_export(h, GPUMEM_HANDLE_POSIX_FD, &sh));
  assert_int_equal(sh.type, GPUMEM_HANDLE_POSIX_FD);
  assert_true(sh.fd >= 0);
  assert_gpumem_ok(gpumem_vmm_import(&sh, &imported));
  close(sh.fd);
  void *a = map_fresh(h, g), *b = map_fresh(imported, g);
  unsigned char *in = malloc(g), *out = malloc(g);
  gm_test_fill(in, g, 4);
  assert_gpumem_ok(gpumem_memcpy(a, in, g, NULL));
  read_back(b, g, out);
  assert_int_equal(gm_test_mismatches(out, g, 4), 0);
  unmap_fresh(a, g);
  unmap_fresh(b, g);
  assert_gpumem_ok(gpumem_vmm_release(h));
  assert_gpumem_ok(gpumem_vmm_release(imported));
  free(in);
  free(out);

  /* A handle created without the POSIX fd type cannot be exported as one. */
  props.handle_types = GPUMEM_HANDLE_NONE;
  assert_gpumem_ok(gpumem_vmm_create(&props, g, &h));
  assert_status_in(gpumem_vmm_export(h, GPUMEM_HANDLE_POSIX_FD, &sh), GPUMEM_ERR_INVALID_ARGUMENT,
                   GPUMEM_ERR_NOT_SUPPORTED);
  assert_gpumem_ok(gpumem_vmm_release(h));
}

/* What the parent tells the child. */
typedef struct share_msg {
  uint64_t size;
  unsigned seed;
  gm_pool_ptr_export ptr; /* pool role only */
} share_msg;

#define CHILD_SEED 0x5a

/* Child: import the fd, map it, check the parent's pattern, write its own in
 * the first half, report, exit. */
static int child_vmm(int sock) {
  share_msg m;
  int fd = -1;
  if (!gm_test_recv(sock, &m, sizeof m, &fd) || fd < 0) return 10;
  gpumem_shareable_handle sh = {GPUMEM_HANDLE_POSIX_FD, fd, {0}};
  gpumem_phys_t h = 0;
  if (gpumem_vmm_import(&sh, &h) != GPUMEM_OK) return 11;
  close(fd);
  void *va = NULL;
  gpumem_access_desc rw = {0, GPUMEM_ACCESS_READWRITE};
  if (gpumem_vmm_reserve(m.size, 0, &va) || gpumem_vmm_map(va, m.size, 0, h) ||
      gpumem_vmm_set_access(va, m.size, &rw, 1))
    return 12;
  unsigned char *buf = malloc(m.size);
  if (gpumem_memcpy(buf, va, m.size, NULL) || gpumem_stream_synchronize(NULL)) return 13;
  if (gm_test_mismatches(buf, m.size, m.seed) != 0) return 14;
  gm_test_fill(buf, m.size / 2, CHILD_SEED);
  if (gpumem_memcpy(va, buf, m.size / 2, NULL) || gpumem_stream_synchronize(NULL)) return 15;
  free(buf);
  if (gpumem_vmm_unmap(va, m.size) || gpumem_vmm_release(h) || gpumem_vmm_free(va, m.size))
    return 16;
  char ok = 1;
  return gm_test_send(sock, &ok, 1, -1) ? 0 : 17;
}

/* Child: import the pool and the pointer, check the parent's pattern, write
 * its own over it, free the imported pointer. */
static int child_pool(int sock) {
  share_msg m;
  int fd = -1;
  if (!gm_test_recv(sock, &m, sizeof m, &fd) || fd < 0) return 20;
  gpumem_shareable_handle sh = {GPUMEM_HANDLE_POSIX_FD, fd, {0}};
  gpumem_native_pool_t pool = NULL;
  if (gm_be_pool_import(&sh, &pool) != GPUMEM_OK) return 21;
  close(fd);
  /* An imported pool is accessible from no device of this process until told. */
  gpumem_access_desc rw = {0, GPUMEM_ACCESS_READWRITE};
  if (gm_be_pool_set_access(pool, &rw, 1) != GPUMEM_OK) return 28;
  void *p = NULL;
  if (gm_be_pool_import_ptr(pool, &m.ptr, &p) != GPUMEM_OK) return 22;
  unsigned char *buf = malloc(m.size);
  if (gpumem_memcpy(buf, p, m.size, NULL) || gpumem_stream_synchronize(NULL)) return 23;
  if (gm_test_mismatches(buf, m.size, m.seed) != 0) return 24;
  gm_test_fill(buf, m.size, CHILD_SEED);
  if (gpumem_memcpy(p, buf, m.size, NULL) || gpumem_stream_synchronize(NULL)) return 25;
  free(buf);
  if (gm_be_pool_free(p, NULL) || gpumem_stream_synchronize(NULL)) return 26;
  if (gm_be_pool_destroy(pool) != GPUMEM_OK) return 27;
  char ok = 1;
  return gm_test_send(sock, &ok, 1, -1) ? 0 : 28;
}

static int child_main(const char *role, int sock) {
  if (gpumem_init(NULL) != GPUMEM_OK) {
    fprintf(stderr, "child: %s\n", gpumem_last_error());
    return 2;
  }
  int rc = strcmp(role, "vmm") == 0    ? child_vmm(sock)
           : strcmp(role, "pool") == 0 ? child_pool(sock)
                                       : 3;
  if (rc != 0) fprintf(stderr, "child %s failed with %d: %s\n", role, rc, gpumem_last_error());
  return rc;
}

static void test_share_with_child_process(void **state) {
  (void)state;
  if (!posix_fd_supported()) skip();
  size_t g = granularity(0);
  gpumem_phys_props props = GPUMEM_PHYS_PROPS_INIT;
  props.handle_types = GPUMEM_HANDLE_POSIX_FD;
  gpumem_phys_t h = 0;
  assert_gpumem_ok(gpumem_vmm_create(&props, 2 * g, &h));
  void *va = map_fresh(h, 2 * g);
  unsigned char *buf = malloc(2 * g);
  gm_test_fill(buf, 2 * g, 77);
  assert_gpumem_ok(gpumem_memcpy(va, buf, 2 * g, NULL));
  assert_gpumem_ok(gpumem_stream_synchronize(NULL));
  gpumem_shareable_handle sh;
  assert_gpumem_ok(gpumem_vmm_export(h, GPUMEM_HANDLE_POSIX_FD, &sh));

  share_msg m = {2 * g, 77, {{0}}};
  assert_int_equal(gm_test_exchange_with_child("vmm", &m, sizeof m, sh.fd), 0);
  close(sh.fd);

  /* The child's writes are in our mapping: the same physical memory. */
  read_back(va, 2 * g, buf);
  assert_int_equal(gm_test_mismatches(buf, g, CHILD_SEED), 0);
  unsigned char *expect = malloc(2 * g);
  gm_test_fill(expect, 2 * g, 77);
  assert_memory_equal(buf + g, expect + g, g);
  free(expect);
  free(buf);
  unmap_fresh(va, 2 * g);
  assert_gpumem_ok(gpumem_vmm_release(h));
}

static void test_streams_and_events(void **state) {
  (void)state;
  size_t g = granularity(0);
  gpumem_phys_props props = GPUMEM_PHYS_PROPS_INIT;
  gpumem_phys_t h = 0;
  assert_gpumem_ok(gpumem_vmm_create(&props, g, &h));
  void *va = map_fresh(h, g);
  gpumem_stream_t s1 = NULL, s2 = NULL;
  gpumem_event_t ev = NULL;
  assert_gpumem_ok(gpumem_stream_create(0, &s1));
  assert_gpumem_ok(gpumem_stream_create(0, &s2));
  assert_gpumem_ok(gpumem_event_create(0, &ev));
  assert_non_null(s1);
  assert_true(s1 != s2);
  assert_gpumem_ok(gpumem_memset(va, 0xab, g, s1));
  assert_gpumem_ok(gpumem_event_record(ev, s1));
  assert_gpumem_ok(gpumem_stream_wait_event(s2, ev));
  unsigned char *out = malloc(g);
  assert_gpumem_ok(gpumem_memcpy(out, va, g, s2));
  assert_gpumem_ok(gpumem_stream_synchronize(s2));
  for (size_t i = 0; i < g; i += 4093)
    assert_int_equal(out[i], 0xab);
  assert_gpumem_ok(gpumem_event_synchronize(ev));
  assert_gpumem_ok(gpumem_event_query(ev));
  assert_gpumem_ok(gpumem_stream_query(s1));
  assert_gpumem_ok(gpumem_device_synchronize(0));
  assert_gpumem_ok(gpumem_memcpy(out, va, 0, s1)); /* size 0 is a no-op */
  assert_gpumem_status(gpumem_memcpy(NULL, va, 16, s1), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_memset(NULL, 0, 16, s1), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_ok(gpumem_event_destroy(ev));
  assert_gpumem_ok(gpumem_stream_destroy(s1));
  assert_gpumem_ok(gpumem_stream_destroy(s2));
  free(out);
  /* bad arguments */
  assert_gpumem_status(gpumem_stream_create(0, NULL), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_stream_create(999, &s1), GPUMEM_ERR_INVALID_DEVICE);
  assert_gpumem_status(gpumem_stream_destroy(NULL), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_event_create(999, &ev), GPUMEM_ERR_INVALID_DEVICE);
  assert_gpumem_status(gpumem_event_record(NULL, NULL), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_stream_wait_event(NULL, NULL), GPUMEM_ERR_INVALID_ARGUMENT);
  unmap_fresh(va, g);
  assert_gpumem_ok(gpumem_vmm_release(h));
}

/* A size that wraps the address space (SIZE_MAX, or dst + size past the
 * top) is refused by the seam before any backend: the host's overlap test
 * once computed dst + size, wrapped, found no reservation in the way and
 * really wrote (SIGSEGV). */
static void test_wrapping_ranges_refused(void **state) {
  (void)state;
  size_t g = granularity(0);
  gpumem_phys_props props = GPUMEM_PHYS_PROPS_INIT;
  gpumem_phys_t h = 0;
  assert_gpumem_ok(gpumem_vmm_create(&props, g, &h));
  void *va = map_fresh(h, g);
  assert_gpumem_ok(gpumem_memset(va, 0x5a, g, NULL));
  assert_gpumem_ok(gpumem_device_synchronize(0));
  uint64_t memsets = gm_backend_calls(GM_OP_memset), memcpys = gm_backend_calls(GM_OP_memcpy);
  assert_gpumem_status(gpumem_memset(va, 0, SIZE_MAX, NULL), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("memset destination");
  assert_last_error_contains("wraps past the top of the address space");
  size_t past_top = (size_t)(UINTPTR_MAX - (uintptr_t)va) + 2; /* va + past_top wraps to 1 */
  assert_gpumem_status(gpumem_memset(va, 0, past_top, NULL), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("wraps past the top");
  unsigned char out[64];
  assert_gpumem_status(gpumem_memcpy(va, out, SIZE_MAX, NULL), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("copy destination");
  assert_gpumem_status(gpumem_memcpy(out, va, past_top, NULL), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("wraps past the top");
  assert_int_equal(gm_backend_calls(GM_OP_memset), memsets); /* no backend saw them */
  assert_int_equal(gm_backend_calls(GM_OP_memcpy), memcpys);
  assert_gpumem_ok(gpumem_device_synchronize(0));
  unsigned char back[64];
  assert_gpumem_ok(gpumem_memcpy(back, va, sizeof back, NULL));
  assert_gpumem_ok(gpumem_device_synchronize(0));
  for (size_t i = 0; i < sizeof back; i++)
    assert_int_equal(back[i], 0x5a);
  unmap_fresh(va, g);
  assert_gpumem_ok(gpumem_vmm_release(h));
}

static void test_pool_primitives(void **state) {
  (void)state;
  gpumem_device_info info;
  assert_gpumem_ok(gpumem_device_get_info(0, &info));
  if (!info.pools) skip();
  gm_pool_props props = {0, GPUMEM_HANDLE_NONE, 0};
  gpumem_native_pool_t pool = NULL;
  assert_gpumem_ok(gm_be_pool_create(&props, &pool));
  assert_int_equal(gm_test_pool_attr(pool, GM_POOL_REUSE_FOLLOW_EVENT_DEPENDENCIES), 1);
  assert_int_equal(gm_test_pool_attr(pool, GM_POOL_RELEASE_THRESHOLD), 0);
  assert_gpumem_ok(gm_be_pool_set_attr(pool, GM_POOL_RELEASE_THRESHOLD, UINT64_MAX));
  assert_int_equal(gm_test_pool_attr(pool, GM_POOL_RELEASE_THRESHOLD), UINT64_MAX);
  gpumem_stream_t s = NULL;
  assert_gpumem_ok(gpumem_stream_create(0, &s));
  const size_t n = 3 << 20;
  void *p = NULL;
  assert_gpumem_ok(gm_be_pool_alloc(pool, n, s, &p));
  assert_non_null(p);
  assert_int_equal((uintptr_t)p % 256, 0);
  unsigned char *buf = malloc(n);
  gm_test_fill(buf, n, 12);
  assert_gpumem_ok(gpumem_memcpy(p, buf, n, s));
  memset(buf, 0, n);
  assert_gpumem_ok(gpumem_memcpy(buf, p, n, s));
  assert_gpumem_ok(gpumem_stream_synchronize(s));
  assert_int_equal(gm_test_mismatches(buf, n, 12), 0);
  assert_true(gm_test_pool_attr(pool, GM_POOL_USED_MEM_CURRENT) >= n);
  assert_true(gm_test_pool_attr(pool, GM_POOL_RESERVED_MEM_CURRENT) >=
              gm_test_pool_attr(pool, GM_POOL_USED_MEM_CURRENT));
  assert_gpumem_ok(gm_be_pool_free(p, s));
  assert_gpumem_ok(gpumem_stream_synchronize(s));
  assert_int_equal(gm_test_pool_attr(pool, GM_POOL_USED_MEM_CURRENT), 0);
  assert_true(gm_test_pool_attr(pool, GM_POOL_USED_MEM_HIGH) >= n);
  /* The release threshold keeps the memory in the pool after a synchronize. */
  assert_true(gm_test_pool_attr(pool, GM_POOL_RESERVED_MEM_CURRENT) >= n);
  assert_gpumem_ok(gm_be_pool_trim(pool, 0));
  assert_int_equal(gm_test_pool_attr(pool, GM_POOL_RESERVED_MEM_CURRENT), 0);
  assert_true(gm_test_pool_attr(pool, GM_POOL_RESERVED_MEM_HIGH) >= n);
  assert_gpumem_ok(gm_be_pool_set_attr(pool, GM_POOL_RESERVED_MEM_HIGH, 0));
  assert_int_equal(gm_test_pool_attr(pool, GM_POOL_RESERVED_MEM_HIGH), 0);
  assert_gpumem_status(gm_be_pool_set_attr(pool, GM_POOL_USED_MEM_HIGH, 5),
                       GPUMEM_ERR_INVALID_ARGUMENT);
  gpumem_access_flags f = GPUMEM_ACCESS_NONE;
  assert_gpumem_ok(gm_be_pool_get_access(pool, 0, &f));
  assert_int_equal(f, GPUMEM_ACCESS_READWRITE);
  /* bad arguments */
  assert_gpumem_status(gm_be_pool_alloc(pool, 0, s, &p), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gm_be_pool_alloc(pool, 1, s, NULL), GPUMEM_ERR_INVALID_ARGUMENT);
  uint64_t value = 0;
  assert_gpumem_status(gm_be_pool_get_attr(pool, GM_POOL_ATTR_COUNT, &value),
                       GPUMEM_ERR_INVALID_ARGUMENT);
  gm_pool_props bad = {999, GPUMEM_HANDLE_NONE, 0};
  gpumem_native_pool_t other = NULL;
  assert_status_in(gm_be_pool_create(&bad, &other), GPUMEM_ERR_INVALID_DEVICE,
                   GPUMEM_ERR_INVALID_ARGUMENT);
  /* the default pool exists and cannot be destroyed */
  gpumem_native_pool_t def = NULL;
  assert_gpumem_ok(gm_be_pool_default(0, &def));
  assert_non_null(def);
  assert_true(def != pool);
  assert_gpumem_status(gm_be_pool_destroy(def), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_ok(gm_be_pool_destroy(pool));
  assert_gpumem_ok(gpumem_stream_destroy(s));
  free(buf);
}

static void test_pool_share_with_child_process(void **state) {
  (void)state;
  gpumem_device_info info;
  assert_gpumem_ok(gpumem_device_get_info(0, &info));
  if (!info.pools || !(info.pool_handle_types & GPUMEM_HANDLE_POSIX_FD)) skip();
  gm_pool_props props = {0, GPUMEM_HANDLE_POSIX_FD, 0};
  gpumem_native_pool_t pool = NULL;
  assert_gpumem_ok(gm_be_pool_create(&props, &pool));
  const size_t n = 1 << 20;
  void *p = NULL;
  assert_gpumem_ok(gm_be_pool_alloc(pool, n, NULL, &p));
  unsigned char *buf = malloc(n);
  gm_test_fill(buf, n, 31);
  assert_gpumem_ok(gpumem_memcpy(p, buf, n, NULL));
  assert_gpumem_ok(gpumem_stream_synchronize(NULL));
  share_msg m = {n, 31, {{0}}};
  assert_gpumem_ok(gm_be_pool_export_ptr(p, &m.ptr));
  gpumem_shareable_handle sh;
  assert_gpumem_ok(gm_be_pool_export(pool, GPUMEM_HANDLE_POSIX_FD, &sh));
  assert_int_equal(gm_test_exchange_with_child("pool", &m, sizeof m, sh.fd), 0);
  close(sh.fd);
  read_back(p, n, buf);
  assert_int_equal(gm_test_mismatches(buf, n, CHILD_SEED), 0);
  assert_gpumem_ok(gm_be_pool_free(p, NULL));
  assert_gpumem_ok(gpumem_stream_synchronize(NULL));
  assert_gpumem_ok(gm_be_pool_destroy(pool));
  free(buf);
}

int main(int argc, char **argv) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test(test_devices),
      cmocka_unit_test(test_map_write_read_unmap),
      cmocka_unit_test(test_grow_in_place_keeps_contents),
      cmocka_unit_test(test_granularity_rules),
      cmocka_unit_test(test_bad_arguments),
      cmocka_unit_test(test_out_of_memory),
      cmocka_unit_test(test_release_while_mapped),
      cmocka_unit_test(test_export_import_in_process),
      cmocka_unit_test(test_share_with_child_process),
      cmocka_unit_test(test_streams_and_events),
      cmocka_unit_test(test_wrapping_ranges_refused),
      cmocka_unit_test(test_pool_primitives),
      cmocka_unit_test(test_pool_share_with_child_process),
  };
  return gm_test_run("backend", tests, GM_ARRAY_SIZE(tests), argc, argv, child_main);
}
