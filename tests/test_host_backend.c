/* test_host_backend.c: what only the host backend promises, since the
 * layers above rely on it to stand in for a GPU: capacity really enforced,
 * the granularity and peer matrix configurable, access really enforced (a
 * copy into memory without access is an error, not a crash), CUDA's rules
 * for unmapping and freeing, fabric handles refused like on a GPU without an
 * IMEX channel, and the cudaMemPool_t emulation (release threshold, trim,
 * out-of-memory retry, bad frees). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backend.h"
#include "helpers.h"
#include "internal.h"

#define MiB ((size_t)1 << 20)

/* One device of 16 MiB, granularity 2 MiB. */
static int small_device(void **state) {
  gpumem_init_options o = GPUMEM_INIT_OPTIONS_INIT;
  o.host_devices = 1;
  o.host_capacity = 16 * MiB;
  return gm_test_setup_host(state, o);
}

/* Three devices; only 0 and 1 are linked. */
static int three_devices(void **state) {
  gpumem_init_options o = GPUMEM_INIT_OPTIONS_INIT;
  o.host_devices = 3;
  o.host_capacity = 64 * MiB;
  o.host_peers = "0-1";
  return gm_test_setup_host(state, o);
}

static size_t device_free(int d) {
  size_t f = 0, t = 0;
  assert_gpumem_ok(gpumem_device_mem_info(d, &f, &t));
  return f;
}

static void test_capacity_enforced_exactly(void **state) {
  (void)state;
  gpumem_phys_props props = GPUMEM_PHYS_PROPS_INIT;
  gpumem_phys_t h[9] = {0};
  for (int i = 0; i < 8; i++)
    assert_gpumem_ok(gpumem_vmm_create(&props, 2 * MiB, &h[i]));
  assert_int_equal(device_free(0), 0);
  assert_gpumem_status(gpumem_vmm_create(&props, 2 * MiB, &h[8]), GPUMEM_ERR_OUT_OF_MEMORY);
  assert_last_error_contains(
      "host device 0 is out of memory (2 MiB requested, 16 MiB of 16 MiB in use)");
  assert_gpumem_ok(gpumem_vmm_release(h[3]));
  assert_int_equal(device_free(0), 2 * MiB);
  assert_gpumem_ok(gpumem_vmm_create(&props, 2 * MiB, &h[8]));
  for (int i = 0; i < 9; i++) {
    if (i != 3) assert_gpumem_ok(gpumem_vmm_release(h[i]));
  }
  assert_int_equal(device_free(0), 16 * MiB);
}

static void test_memory_freed_at_last_unmap(void **state) {
  (void)state;
  gpumem_phys_props props = GPUMEM_PHYS_PROPS_INIT;
  gpumem_phys_t h = 0;
  void *va = NULL;
  assert_gpumem_ok(gpumem_vmm_reserve(4 * MiB, 0, &va));
  assert_gpumem_ok(gpumem_vmm_create(&props, 2 * MiB, &h));
  assert_gpumem_ok(gpumem_vmm_map(va, 2 * MiB, 0, h));
  assert_gpumem_ok(gpumem_vmm_map((char *)va + 2 * MiB, 2 * MiB, 0, h));
  assert_gpumem_ok(gpumem_vmm_release(h));
  assert_int_equal(device_free(0), 14 * MiB);
  assert_gpumem_ok(gpumem_vmm_unmap(va, 2 * MiB));
  assert_int_equal(device_free(0), 14 * MiB);
  assert_gpumem_ok(gpumem_vmm_unmap((char *)va + 2 * MiB, 2 * MiB));
  assert_int_equal(device_free(0), 16 * MiB);
  assert_gpumem_ok(gpumem_vmm_free(va, 4 * MiB));
}

static void test_peer_matrix(void **state) {
  (void)state;
  bool can = false;
  assert_gpumem_ok(gpumem_device_can_access_peer(1, 0, &can));
  assert_true(can);
  assert_gpumem_ok(gpumem_device_can_access_peer(0, 1, &can));
  assert_true(can);
  assert_gpumem_ok(gpumem_device_can_access_peer(2, 0, &can));
  assert_false(can);
  gm_p2p_attrs a;
  assert_gpumem_ok(gm_be_p2p_attrs(0, 2, &a));
  assert_false(a.access);
  assert_false(a.native_atomics);

  gpumem_phys_props props = GPUMEM_PHYS_PROPS_INIT; /* memory on device 0 */
  gpumem_phys_t h = 0;
  void *va = NULL;
  assert_gpumem_ok(gpumem_vmm_reserve(2 * MiB, 0, &va));
  assert_gpumem_ok(gpumem_vmm_create(&props, 2 * MiB, &h));
  assert_gpumem_ok(gpumem_vmm_map(va, 2 * MiB, 0, h));
  gpumem_access_desc desc[3] = {
      {0, GPUMEM_ACCESS_READWRITE}, {1, GPUMEM_ACCESS_READWRITE}, {2, GPUMEM_ACCESS_READWRITE}};
  assert_gpumem_status(gpumem_vmm_set_access(va, 2 * MiB, desc, 3), GPUMEM_ERR_PEER_UNSUPPORTED);
  assert_last_error_contains("device 2 cannot access memory of device 0");
  gpumem_access_flags f = GPUMEM_ACCESS_READWRITE;
  assert_gpumem_ok(gpumem_vmm_get_access(va, 0, &f));
  assert_int_equal(f, GPUMEM_ACCESS_NONE); /* the failed call changed nothing */
  assert_gpumem_ok(gpumem_vmm_set_access(va, 2 * MiB, desc, 2));
  assert_gpumem_ok(gpumem_vmm_get_access(va, 1, &f));
  assert_int_equal(f, GPUMEM_ACCESS_READWRITE);
  assert_gpumem_ok(gpumem_vmm_get_access(va, 2, &f));
  assert_int_equal(f, GPUMEM_ACCESS_NONE);
  desc[2].flags = GPUMEM_ACCESS_NONE; /* granting nothing is always allowed */
  assert_gpumem_ok(gpumem_vmm_set_access(va, 2 * MiB, &desc[2], 1));
  gpumem_access_desc nodev = {7, GPUMEM_ACCESS_READWRITE};
  assert_gpumem_status(gpumem_vmm_set_access(va, 2 * MiB, &nodev, 1), GPUMEM_ERR_INVALID_DEVICE);
  assert_gpumem_ok(gpumem_vmm_unmap(va, 2 * MiB));
  assert_gpumem_ok(gpumem_vmm_release(h));
  assert_gpumem_ok(gpumem_vmm_free(va, 2 * MiB));
}

static void test_malformed_peer_list_warns(void **state) {
  (void)state;
  gm_test_log c = {0};
  gpumem_log_set_callback(gm_test_log_capture, &c);
  gpumem_init_options o = GPUMEM_INIT_OPTIONS_INIT;
  o.host_devices = 2;
  o.host_peers = "0-5";
  assert_int_equal(gm_test_reinit_host(o), 0);
  gpumem_log_set_callback(NULL, NULL);
  assert_int_equal(c.count, 1);
  assert_non_null(strstr(c.line, "GPUMEM_HOST_PEERS='0-5' is not all, none or links"));
  bool can = false;
  assert_gpumem_ok(gpumem_device_can_access_peer(1, 0, &can));
  assert_true(can); /* the default, all, stays */
}

static void test_access_is_enforced(void **state) {
  (void)state;
  gpumem_phys_props props = GPUMEM_PHYS_PROPS_INIT;
  gpumem_phys_t h = 0;
  void *va = NULL;
  char buf[64] = "payload";
  assert_gpumem_ok(gpumem_vmm_reserve(4 * MiB, 0, &va));
  assert_gpumem_status(gpumem_memcpy(va, buf, sizeof buf, NULL), GPUMEM_ERR_NOT_MAPPED);
  assert_gpumem_ok(gpumem_vmm_create(&props, 2 * MiB, &h));
  assert_gpumem_ok(gpumem_vmm_map(va, 2 * MiB, 0, h));
  assert_gpumem_status(gpumem_memcpy(va, buf, sizeof buf, NULL), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("without read-write access for any device (call set_access first)");
  gpumem_access_desc ro = {0, GPUMEM_ACCESS_READ};
  assert_gpumem_ok(gpumem_vmm_set_access(va, 2 * MiB, &ro, 1));
  assert_gpumem_ok(gpumem_memcpy(buf, va, sizeof buf, NULL)); /* reading is allowed */
  assert_gpumem_status(gpumem_memset(va, 0, 16, NULL), GPUMEM_ERR_INVALID_ARGUMENT);
  gpumem_access_desc rw = {0, GPUMEM_ACCESS_READWRITE};
  assert_gpumem_ok(gpumem_vmm_set_access(va, 2 * MiB, &rw, 1));
  assert_gpumem_ok(gpumem_memset(va, 1, 2 * MiB, NULL));
  /* A copy that runs past the mapping into the unmapped rest is refused whole. */
  assert_gpumem_status(gpumem_memset((char *)va + 2 * MiB - 8, 0, 16, NULL), GPUMEM_ERR_NOT_MAPPED);
  unsigned char tail[8];
  assert_gpumem_ok(gpumem_memcpy(tail, (char *)va + 2 * MiB - 8, 8, NULL));
  for (int i = 0; i < 8; i++)
    assert_int_equal(tail[i], 1);
  gpumem_access_desc none = {0, GPUMEM_ACCESS_NONE};
  assert_gpumem_ok(gpumem_vmm_set_access(va, 2 * MiB, &none, 1));
  assert_gpumem_status(gpumem_memcpy(buf, va, 8, NULL), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_ok(gpumem_vmm_unmap(va, 2 * MiB));
  assert_gpumem_ok(gpumem_vmm_release(h));
  assert_gpumem_ok(gpumem_vmm_free(va, 4 * MiB));
}

static void test_unmap_and_free_rules(void **state) {
  (void)state;
  gpumem_phys_props props = GPUMEM_PHYS_PROPS_INIT;
  gpumem_phys_t h = 0;
  void *va = NULL;
  assert_gpumem_status(gpumem_vmm_reserve(3 * MiB, 0, &va), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("not a multiple of the granularity");
  assert_gpumem_ok(gpumem_vmm_reserve(8 * MiB, 64 * MiB, &va));
  assert_int_equal((uintptr_t)va % (64 * MiB), 0);
  char *base = va;
  assert_gpumem_ok(gpumem_vmm_create(&props, 4 * MiB, &h));
  assert_gpumem_ok(gpumem_vmm_map(base, 4 * MiB, 0, h));
  assert_gpumem_status(gpumem_vmm_unmap(base, 2 * MiB), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("would split the mapping");
  assert_gpumem_status(gpumem_vmm_unmap(base, 6 * MiB), GPUMEM_ERR_NOT_MAPPED);
  assert_last_error_contains("2097152 of the 6291456 bytes");
  assert_gpumem_status(gpumem_vmm_unmap(base + 64 * MiB, 2 * MiB), GPUMEM_ERR_NOT_MAPPED);
  assert_gpumem_status(gpumem_vmm_free(va, 8 * MiB), GPUMEM_ERR_BUSY);
  assert_last_error_contains("still has 4194304 bytes mapped");
  assert_gpumem_status(gpumem_vmm_map(base + 6 * MiB, 4 * MiB, 0, h), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("not inside an address reservation");
  assert_gpumem_ok(gpumem_vmm_unmap(base, 4 * MiB));
  assert_gpumem_ok(gpumem_vmm_release(h));
  assert_gpumem_ok(gpumem_vmm_free(va, 8 * MiB));
}

static void test_fabric_refused_like_a_gpu_without_imex(void **state) {
  (void)state;
  gpumem_device_info info;
  assert_gpumem_ok(gpumem_device_get_info(0, &info));
  assert_true(info.fabric); /* advertised... */
  gpumem_phys_props props = GPUMEM_PHYS_PROPS_INIT;
  props.handle_types = GPUMEM_HANDLE_POSIX_FD | GPUMEM_HANDLE_FABRIC;
  gpumem_phys_t h = 0;
  assert_gpumem_status(gpumem_vmm_create(&props, 2 * MiB, &h), GPUMEM_ERR_NOT_PERMITTED);
  assert_last_error_contains("no IMEX channel"); /* ...but refused */
  assert_int_equal(device_free(0), 16 * MiB);
}

static void test_fabric_off_and_on(void **state) {
  (void)state;
  setenv("GPUMEM_HOST_FABRIC", "off", 1);
  gpumem_init_options o = GPUMEM_INIT_OPTIONS_INIT;
  assert_int_equal(gm_test_reinit_host(o), 0);
  gpumem_phys_props props = GPUMEM_PHYS_PROPS_INIT;
  props.handle_types = GPUMEM_HANDLE_FABRIC;
  gpumem_phys_t h = 0, imported = 0;
  assert_gpumem_status(gpumem_vmm_create(&props, 2 * MiB, &h), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("does not support fabric handles (GPUMEM_HOST_FABRIC=off)");
  setenv("GPUMEM_HOST_FABRIC", "on", 1);
  assert_int_equal(gm_test_reinit_host(o), 0);
  unsetenv("GPUMEM_HOST_FABRIC");
  assert_gpumem_ok(gpumem_vmm_create(&props, 2 * MiB, &h));
  gpumem_shareable_handle sh;
  assert_gpumem_ok(gpumem_vmm_export(h, GPUMEM_HANDLE_FABRIC, &sh));
  assert_int_equal(sh.type, GPUMEM_HANDLE_FABRIC);
  assert_gpumem_ok(gpumem_vmm_import(&sh, &imported));
  gpumem_phys_props got;
  assert_gpumem_ok(gpumem_vmm_get_props(imported, &got));
  assert_int_equal(got.handle_types, GPUMEM_HANDLE_FABRIC);
  assert_gpumem_ok(gpumem_vmm_release(h));
  assert_gpumem_ok(gpumem_vmm_release(imported));
  assert_gpumem_status(gpumem_vmm_import(&sh, &imported), GPUMEM_ERR_INVALID_POINTER);
  memset(sh.fabric, 0, sizeof sh.fabric);
  assert_gpumem_status(gpumem_vmm_import(&sh, &imported), GPUMEM_ERR_INVALID_ARGUMENT);
}

static void test_import_of_foreign_fd_refused(void **state) {
  (void)state;
  int fd = memfd_create("not-ours", 0);
  assert_true(fd >= 0);
  gpumem_shareable_handle sh = {GPUMEM_HANDLE_POSIX_FD, fd, {0}};
  gpumem_phys_t h = 0;
  assert_gpumem_status(gpumem_vmm_import(&sh, &h), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("is not an allocation exported by the host backend");
  close(fd);
  sh.fd = 1000000;
  assert_gpumem_status(gpumem_vmm_import(&sh, &h), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_int_equal(h, 0);
}

static void test_compression_recorded(void **state) {
  (void)state;
  gpumem_phys_props props = GPUMEM_PHYS_PROPS_INIT;
  props.compression = true;
  gpumem_phys_t h = 0;
  assert_gpumem_ok(gpumem_vmm_create(&props, 2 * MiB, &h));
  gpumem_phys_props got;
  assert_gpumem_ok(gpumem_vmm_get_props(h, &got));
  assert_true(got.compression);
  assert_gpumem_ok(gpumem_vmm_release(h));
}

static void test_pool_release_threshold_and_trim(void **state) {
  (void)state;
  gm_pool_props props = {0, GPUMEM_HANDLE_NONE, 0};
  gpumem_native_pool_t pool = NULL;
  assert_gpumem_ok(gm_be_pool_create(&props, &pool));
  void *p = NULL;
  assert_gpumem_ok(gm_be_pool_alloc(pool, 3 * MiB, NULL, &p));
  assert_int_equal(gm_test_pool_attr(pool, GM_POOL_RESERVED_MEM_CURRENT),
                   4 * MiB); /* two granules */
  assert_int_equal(gm_test_pool_attr(pool, GM_POOL_USED_MEM_CURRENT), 3 * MiB);
  assert_int_equal(device_free(0), 12 * MiB);
  assert_gpumem_ok(gm_be_pool_free(p, NULL));
  assert_int_equal(gm_test_pool_attr(pool, GM_POOL_RESERVED_MEM_CURRENT),
                   4 * MiB); /* cached until sync */
  assert_gpumem_ok(gpumem_stream_synchronize(NULL));
  assert_int_equal(gm_test_pool_attr(pool, GM_POOL_RESERVED_MEM_CURRENT), 0); /* threshold 0 */
  assert_int_equal(device_free(0), 16 * MiB);

  assert_gpumem_ok(gm_be_pool_set_attr(pool, GM_POOL_RELEASE_THRESHOLD, 2 * MiB));
  assert_gpumem_ok(gm_be_pool_alloc(pool, 6 * MiB, NULL, &p));
  assert_gpumem_ok(gm_be_pool_free(p, NULL));
  assert_gpumem_ok(gpumem_device_synchronize(0));
  assert_int_equal(gm_test_pool_attr(pool, GM_POOL_RESERVED_MEM_CURRENT), 2 * MiB);
  assert_gpumem_ok(gm_be_pool_trim(pool, 0));
  assert_int_equal(gm_test_pool_attr(pool, GM_POOL_RESERVED_MEM_CURRENT), 0);
  assert_int_equal(gm_test_pool_attr(pool, GM_POOL_RESERVED_MEM_HIGH), 6 * MiB);
  assert_int_equal(gm_test_pool_attr(pool, GM_POOL_USED_MEM_HIGH), 6 * MiB);
  assert_gpumem_ok(gm_be_pool_destroy(pool));
}

static void test_pool_gives_cache_back_when_device_is_full(void **state) {
  (void)state;
  gm_pool_props props = {0, GPUMEM_HANDLE_NONE, 32 * MiB}; /* larger than the device */
  gpumem_native_pool_t pool = NULL;
  assert_gpumem_ok(gm_be_pool_create(&props, &pool));
  assert_gpumem_ok(gm_be_pool_set_attr(pool, GM_POOL_RELEASE_THRESHOLD, UINT64_MAX));
  void *a = NULL, *b = NULL, *x = NULL, *c = NULL, *d = NULL, *e = NULL;
  assert_gpumem_ok(gm_be_pool_alloc(pool, 4 * MiB, NULL, &a));
  assert_gpumem_ok(gm_be_pool_alloc(pool, 8 * MiB, NULL, &b));
  assert_gpumem_ok(gm_be_pool_alloc(pool, 4 * MiB, NULL, &x));
  assert_int_equal(device_free(0), 0);
  assert_gpumem_ok(gm_be_pool_free(a, NULL));
  assert_gpumem_ok(gm_be_pool_free(x, NULL));
  assert_gpumem_ok(gpumem_stream_synchronize(NULL)); /* threshold: the 8 MiB stay cached */
  assert_int_equal(gm_test_pool_attr(pool, GM_POOL_RESERVED_MEM_CURRENT), 16 * MiB);
  /* 6 MiB does not fit a's 4 MiB hole; at x's place it needs one granule more
   * than is cached, the device is full, so the pool gives its cache back and
   * retries. */
  assert_gpumem_ok(gm_be_pool_alloc(pool, 6 * MiB, NULL, &c));
  assert_ptr_equal(c, x);
  assert_int_equal(gm_test_pool_attr(pool, GM_POOL_RESERVED_MEM_CURRENT), 14 * MiB);
  assert_gpumem_ok(gm_be_pool_alloc(pool, 2 * MiB, NULL, &d));
  assert_ptr_equal(d, a);
  assert_gpumem_status(gm_be_pool_alloc(pool, 2 * MiB, NULL, &e), GPUMEM_ERR_OUT_OF_MEMORY);
  assert_detail_contains("host device 0 is out of memory");
  assert_null(e);
  assert_int_equal(gm_test_pool_attr(pool, GM_POOL_USED_MEM_CURRENT), 16 * MiB);
  assert_gpumem_ok(gm_be_pool_free(b, NULL));
  assert_gpumem_ok(gm_be_pool_free(c, NULL));
  assert_gpumem_ok(gm_be_pool_free(d, NULL));
  /* The frees run later, on the stream; a pool destroyed before they have
   * keeps its memory until they have (cudaMemPoolDestroy). */
  assert_gpumem_ok(gm_be_pool_destroy(pool));
  assert_gpumem_ok(gpumem_stream_synchronize(NULL));
  assert_int_equal(device_free(0), 16 * MiB);
}

static void test_pool_bad_frees(void **state) {
  (void)state;
  gm_pool_props props = {0, GPUMEM_HANDLE_POSIX_FD, 4 * MiB};
  gpumem_native_pool_t pool = NULL;
  assert_gpumem_ok(gm_be_pool_create(&props, &pool));
  void *p = NULL, *q = NULL;
  assert_gpumem_ok(gm_be_pool_alloc(pool, 1000, NULL, &p));
  assert_gpumem_status(gm_be_pool_alloc(pool, 5 * MiB, NULL, &q), GPUMEM_ERR_OUT_OF_MEMORY);
  assert_detail_contains("exceeds the pool's maximum");
  int local = 0;
  assert_gpumem_status(gm_be_pool_free(&local, NULL), GPUMEM_ERR_INVALID_POINTER);
  assert_gpumem_status(gm_be_pool_free((char *)p + 8, NULL), GPUMEM_ERR_INVALID_POINTER);
  assert_gpumem_status(gm_be_pool_destroy(pool), GPUMEM_ERR_BUSY);
  assert_detail_contains("1 live allocations");
  assert_gpumem_ok(gm_be_pool_free(p, NULL));
  assert_gpumem_status(gm_be_pool_free(p, NULL), GPUMEM_ERR_DOUBLE_FREE);
  /* In-process import of a host pool: it maps the same memory, cannot allocate. */
  gpumem_shareable_handle sh;
  assert_gpumem_ok(gm_be_pool_export(pool, GPUMEM_HANDLE_POSIX_FD, &sh));
  gpumem_native_pool_t imported = NULL;
  assert_gpumem_ok(gm_be_pool_import(&sh, &imported));
  close(sh.fd);
  assert_gpumem_status(gm_be_pool_alloc(imported, 4096, NULL, &q), GPUMEM_ERR_NOT_SUPPORTED);
  assert_gpumem_ok(gm_be_pool_destroy(imported));
  gpumem_native_pool_t bogus = (gpumem_native_pool_t)(uintptr_t)&local;
  assert_gpumem_status(gm_be_pool_destroy(bogus), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_ok(gm_be_pool_destroy(pool));
}

static void test_pool_access_follows_peers(void **state) {
  (void)state;
  gm_pool_props props = {0, GPUMEM_HANDLE_NONE, 0};
  gpumem_native_pool_t pool = NULL;
  assert_gpumem_ok(gm_be_pool_create(&props, &pool));
  gpumem_access_desc d1 = {1, GPUMEM_ACCESS_READWRITE}, d2 = {2, GPUMEM_ACCESS_READWRITE};
  assert_gpumem_ok(gm_be_pool_set_access(pool, &d1, 1));
  assert_gpumem_status(gm_be_pool_set_access(pool, &d2, 1), GPUMEM_ERR_PEER_UNSUPPORTED);
  gpumem_access_flags f = GPUMEM_ACCESS_NONE;
  assert_gpumem_ok(gm_be_pool_get_access(pool, 1, &f));
  assert_int_equal(f, GPUMEM_ACCESS_READWRITE);
  assert_gpumem_ok(gm_be_pool_get_access(pool, 2, &f));
  assert_int_equal(f, GPUMEM_ACCESS_NONE);
  assert_gpumem_ok(gm_be_pool_destroy(pool));
}

int main(int argc, char **argv) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_capacity_enforced_exactly, small_device,
                                      gm_test_teardown_host),
      cmocka_unit_test_setup_teardown(test_memory_freed_at_last_unmap, small_device,
                                      gm_test_teardown_host),
      cmocka_unit_test_setup_teardown(test_peer_matrix, three_devices, gm_test_teardown_host),
      cmocka_unit_test_setup_teardown(test_malformed_peer_list_warns, NULL, gm_test_teardown_host),
      cmocka_unit_test_setup_teardown(test_access_is_enforced, small_device, gm_test_teardown_host),
      cmocka_unit_test_setup_teardown(test_unmap_and_free_rules, small_device,
                                      gm_test_teardown_host),
      cmocka_unit_test_setup_teardown(test_fabric_refused_like_a_gpu_without_imex, small_device,
                                      gm_test_teardown_host),
      cmocka_unit_test_setup_teardown(test_fabric_off_and_on, NULL, gm_test_teardown_host),
      cmocka_unit_test_setup_teardown(test_import_of_foreign_fd_refused, small_device,
                                      gm_test_teardown_host),
      cmocka_unit_test_setup_teardown(test_compression_recorded, small_device,
                                      gm_test_teardown_host),
      cmocka_unit_test_setup_teardown(test_pool_release_threshold_and_trim, small_device,
                                      gm_test_teardown_host),
      cmocka_unit_test_setup_teardown(test_pool_gives_cache_back_when_device_is_full, small_device,
                                      gm_test_teardown_host),
      cmocka_unit_test_setup_teardown(test_pool_bad_frees, small_device, gm_test_teardown_host),
      cmocka_unit_test_setup_teardown(test_pool_access_follows_peers, three_devices,
                                      gm_test_teardown_host),
  };
  return gm_test_run("host_backend", tests, GM_ARRAY_SIZE(tests), argc, argv, NULL);
}
