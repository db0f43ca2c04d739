/* test_host_backend.c: what only the host backend promises, since the
 * layers above rely on it to stand in for a GPU: capacity really enforced,
 * the granularity and peer matrix configurable, access really enforced (a
 * copy into memory without access is an error, not a crash), CUDA's rules
 * for unmapping and freeing, fabric handles refused like on a GPU without an
 * IMEX channel, and the cudaMemPool_t emulation (release threshold, trim,
 * out-of-memory retry, bad frees). The MIG section: GPUMEM_HOST_MIG layouts
 * (devices with the real profiles' UUIDs, memory, SMs and instance ids; MIG
 * facts from the layout; no peer access to or from a slice; strict parsing
 * with a warning per bad value), device selection on them, and
 * CUDA_VISIBLE_DEVICES applied the way the driver applies it. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backend.h"
#include "helpers.h"
#include "internal.h"

#define MiB ((size_t)1 << 20)
#define GiB ((size_t)1 << 30)

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

/* From the environment a malformed peer list is warned about and the
 * default used; as an explicit gpumem_init option it is refused
 * (test_init: test_unusable_explicit_host_options_refused). */
static void test_malformed_peer_list_warns(void **state) {
  (void)state;
  gm_test_log c = {0};
  assert_gpumem_ok(gpumem_log_set_callback(gm_test_log_capture, &c));
  gpumem_init_options o = GPUMEM_INIT_OPTIONS_INIT;
  o.host_devices = 2;
  setenv("GPUMEM_HOST_PEERS", "0-5", 1);
  int rc = gm_test_reinit_host(o);
  unsetenv("GPUMEM_HOST_PEERS");
  assert_int_equal(rc, 0);
  assert_gpumem_ok(gpumem_log_set_callback(NULL, NULL));
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

/* An import verifies what it receives: a regular file whose name merely
 * looks like one of ours (its /proc/self/fd link contains "memfd:gpumem-...")
 * is no memfd, and a memfd of ours whose size is not whole granules (3 bytes)
 * is no allocation or pool. Both were once accepted. */
static void test_import_verifies_what_it_receives(void **state) {
  (void)state;
  gm_backend_counters before = gm_test_counters();
  char dir[] = "/tmp/gpumem-import-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[128];
  snprintf(path, sizeof path, "%s/memfd:gpumem-host-dev0", dir);
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  assert_true(fd >= 0);
  assert_int_equal(ftruncate(fd, 2 << 20), 0);
  gpumem_shareable_handle sh = {GPUMEM_HANDLE_POSIX_FD, fd, {0}};
  gpumem_phys_t h = 0;
  assert_gpumem_status(gpumem_vmm_import(&sh, &h), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("is not an allocation exported by the host backend");
  close(fd);
  unlink(path);
  snprintf(path, sizeof path, "%s/memfd:gpumem-host-pool-dev0", dir);
  fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  assert_true(fd >= 0);
  assert_int_equal(ftruncate(fd, 2 << 20), 0);
  sh.fd = fd;
  gpumem_pool_t *pool = NULL;
  assert_gpumem_status(gpumem_pool_import(&sh, 0, &pool), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("is not a pool exported by the host backend");
  close(fd);
  unlink(path);
  rmdir(dir);
  /* our names, but 3 bytes */
  fd = memfd_create("gpumem-host-dev0", MFD_CLOEXEC);
  assert_true(fd >= 0);
  assert_int_equal(ftruncate(fd, 3), 0);
  sh.fd = fd;
  assert_gpumem_status(gpumem_vmm_import(&sh, &h), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("holds 3 bytes, not a whole number of");
  close(fd);
  fd = memfd_create("gpumem-host-pool-dev0", MFD_CLOEXEC);
  assert_true(fd >= 0);
  assert_int_equal(ftruncate(fd, 3), 0);
  sh.fd = fd;
  assert_gpumem_status(gpumem_pool_import(&sh, 0, &pool), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("holds 3 bytes, not a whole number of");
  close(fd);
  assert_int_equal(h, 0);
  assert_null(pool);
  assert_int_equal(gm_test_counters().phys_handles, before.phys_handles);
  assert_int_equal(gm_test_counters().pools, before.pools);
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

/* A copy or memset that starts in a pool's memory must end in it: the pool
 * is one mapping of max_size bytes, and a size running past its end once
 * passed every check (pools are not reservations) and was really written. */
static void test_copy_past_the_pool_refused(void **state) {
  (void)state;
  gm_pool_props props = {0, GPUMEM_HANDLE_NONE, 4 * MiB};
  gpumem_native_pool_t pool = NULL;
  assert_gpumem_ok(gm_be_pool_create(&props, &pool));
  void *p = NULL;
  assert_gpumem_ok(gm_be_pool_alloc(pool, 1 * MiB, NULL, &p));
  uint64_t memsets = gm_backend_calls(GM_OP_memset);
  assert_gpumem_status(gpumem_memset(p, 0, 8 * MiB, NULL), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("runs past the end of its pool's 4194304 bytes");
  assert_int_equal(gm_backend_calls(GM_OP_memset), memsets + 1); /* the backend refused it */
  char *host = malloc(8 * MiB);
  assert_non_null(host);
  assert_gpumem_status(gpumem_memcpy(host, p, 8 * MiB, NULL), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("copy source");
  assert_gpumem_status(gpumem_memcpy(p, host, SIZE_MAX / 2, NULL), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("runs past the end");
  /* a range inside the pool still works */
  assert_gpumem_ok(gpumem_memset(p, 0x11, 1 * MiB, NULL));
  assert_gpumem_ok(gpumem_memcpy(host, p, 1 * MiB, NULL));
  assert_gpumem_ok(gpumem_stream_synchronize(NULL));
  assert_int_equal(host[1 * MiB - 1], 0x11);
  free(host);
  assert_gpumem_ok(gm_be_pool_free(p, NULL));
  assert_gpumem_ok(gpumem_stream_synchronize(NULL));
  assert_gpumem_ok(gm_be_pool_destroy(pool));
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

/* ---- MIG layouts and CUDA_VISIBLE_DEVICES ---- */

/* An H100 split 3g.40gb + 2 x 2g.20gb, a generic device, an A100-40GB in
 * seven 1g.5gb: CUDA devices 0-2, 3, 4-10. */
#define MIXED_NODE      "h100:3g.40gb,2g.20gb*2;gpu;a100-40:1g.5gb*7"
#define HOST_UUID(tail) "6770756d-656d-2d68-6f73-742d" tail /* "gpumem-host-" ... */

static int clear_mig_env(void) {
  unsetenv("GPUMEM_HOST_MIG");
  unsetenv("GPUMEM_HOST_PEERS");
  unsetenv("GPUMEM_HOST_VISIBLE");
  unsetenv("CUDA_VISIBLE_DEVICES");
  unsetenv("CUDA_DEVICE_ORDER");
  return 0;
}

/* Bring the host backend up on `layout` with CUDA_VISIBLE_DEVICES `visible`
 * (NULL: unset); returns gpumem_init's status. */
static gpumem_status host_with(const char *layout, const char *visible) {
  gm_test_ignore(gpumem_finalize());
  if (layout)
    setenv("GPUMEM_HOST_MIG", layout, 1);
  else
    unsetenv("GPUMEM_HOST_MIG");
  if (visible)
    setenv("CUDA_VISIBLE_DEVICES", visible, 1);
  else
    unsetenv("CUDA_VISIBLE_DEVICES");
  gpumem_init_options o = GPUMEM_INIT_OPTIONS_INIT;
  o.backend = GPUMEM_BACKEND_HOST;
  o.host_capacity = 64 * MiB; /* the generic devices */
  return gpumem_init(&o);
}

static int mixed_node(void **state) {
  clear_mig_env();
  if (host_with(MIXED_NODE, NULL) != GPUMEM_OK) return -1;
  return gm_test_setup(state);
}

static int mig_teardown(void **state) {
  clear_mig_env();
  return gm_test_teardown_host(state);
}

static int count_devices(void) {
  int n = -1;
  assert_gpumem_ok(gpumem_device_count(&n));
  return n;
}

static gpumem_device_info info_of(int d) {
  gpumem_device_info info;
  assert_gpumem_ok(gpumem_device_get_info(d, &info));
  return info;
}

static void test_mig_layout_devices(void **state) {
  (void)state;
  assert_int_equal(count_devices(), 11);
  gpumem_device_info d = info_of(0);
  assert_string_equal(d.name, "NVIDIA H100 80GB HBM3 MIG 3g.40gb");
  assert_string_equal(d.uuid, "MIG-" HOST_UUID("4d000100"));
  assert_int_equal(d.mig, GPUMEM_YES);
  assert_int_equal(d.parent_mig_mode, GPUMEM_YES);
  assert_string_equal(d.parent_uuid, "GPU-" HOST_UUID("00000000"));
  /* 3g at memory slice 4 (so that the 2g instances fit at 0 and 2): id 1. */
  assert_int_equal(d.gpu_instance_id, 1);
  assert_int_equal(d.compute_instance_id, 0);
  assert_int_equal(d.gpu_instance_slices, 3);
  assert_int_equal(d.compute_instance_slices, 3);
  assert_string_equal(d.mig_note, "");
  assert_int_equal(d.sm_count, 60);
  assert_int_equal(d.memory_total, 40 * GiB);
  assert_int_equal(d.memory_free, 40 * GiB);
  assert_int_equal(d.cc_major, 9);
  assert_int_equal(d.pci_bus, 0);
  assert_false(d.fabric); /* slices do not advertise fabric handles */
  for (int i = 1; i <= 2; i++) {
    d = info_of(i);
    assert_string_equal(d.name, "NVIDIA H100 80GB HBM3 MIG 2g.20gb");
    assert_int_equal(d.gpu_instance_id, 2 + i);
    assert_int_equal(d.sm_count, 32);
    assert_int_equal(d.memory_total, 20 * GiB);
  }
  d = info_of(3);
  assert_string_equal(d.name, "libgpumem host device 3");
  assert_string_equal(d.uuid, "GPU-" HOST_UUID("00000001"));
  assert_int_equal(d.mig, GPUMEM_NO);
  assert_int_equal(d.parent_mig_mode, GPUMEM_NO);
  assert_string_equal(d.parent_uuid, d.uuid);
  assert_int_equal(d.gpu_instance_id, -1);
  assert_int_equal(d.memory_total, 64 * MiB);
  assert_int_equal(d.pci_bus, 1);
  assert_true(d.fabric);
  for (int i = 4; i <= 10; i++) {
    d = info_of(i);
    assert_string_equal(d.name, "NVIDIA A100-SXM4-40GB MIG 1g.5gb");
    assert_int_equal(d.gpu_instance_id, 7 + (i - 4)); /* as the driver numbers them */
    assert_int_equal(d.sm_count, 14);
    assert_int_equal(d.cc_major, 8);
    assert_int_equal(d.memory_total, 5 * GiB);
    assert_string_equal(d.parent_uuid, "GPU-" HOST_UUID("00000002"));
  }

  gpumem_mig_gpu gpus[4];
  size_t n = 0;
  assert_gpumem_ok(gpumem_mig_layout(gpus, 4, &n));
  assert_int_equal(n, 3);
  assert_string_equal(gpus[0].name, "NVIDIA H100 80GB HBM3");
  assert_int_equal(gpus[0].mig_mode, GPUMEM_YES);
  assert_int_equal(gpus[0].slice_count, 3);
  assert_string_equal(gpus[0].slices[0].profile, "3g.40gb");
  assert_string_equal(gpus[0].slices[0].uuid, "MIG-" HOST_UUID("4d000100"));
  assert_int_equal(gpus[0].slices[0].memory_bytes, 40 * GiB);
  assert_int_equal(gpus[0].slices[0].sm_count, 60);
  assert_int_equal(gpus[0].slices[2].gpu_instance_id, 4);
  assert_int_equal(gpus[1].mig_mode, GPUMEM_UNKNOWN); /* a generic device cannot do MIG */
  assert_int_equal(gpus[1].slice_count, 0);
  assert_string_equal(gpus[1].uuid, "GPU-" HOST_UUID("00000001"));
  assert_int_equal(gpus[2].slice_count, 7);
  assert_string_equal(gpus[2].slices[6].profile, "1g.5gb");

  /* A slice's capacity is its share, really enforced. */
  gpumem_phys_props props = GPUMEM_PHYS_PROPS_INIT;
  props.device = 4;
  gpumem_phys_t h = 0, more = 0;
  assert_gpumem_ok(gpumem_vmm_create(&props, 5 * GiB, &h));
  assert_gpumem_status(gpumem_vmm_create(&props, 2 * MiB, &more), GPUMEM_ERR_OUT_OF_MEMORY);
  assert_last_error_contains(
      "host device 4 is out of memory (2 MiB requested, 5 GiB of 5 GiB in use)");
  props.device = 5; /* the other slices are untouched */
  assert_gpumem_ok(gpumem_vmm_create(&props, 2 * MiB, &more));
  assert_gpumem_ok(gpumem_vmm_release(more));
  assert_gpumem_ok(gpumem_vmm_release(h));
}

/* The other models, whole GPUs among slices, and the H200's profiles. */
static void test_mig_layout_models(void **state) {
  (void)state;
  assert_gpumem_ok(host_with("a100-80:4g.40gb,3g.40gb;h200:1g.18gb,1g.35gb,3g.71gb; H100 ;"
                             "a100-40:1g.10gb * 4",
                             NULL));
  assert_int_equal(count_devices(), 10);
  const struct {
    const char *name;
    size_t memory;
    int sms, gi;
  } want[] = {
      {"NVIDIA A100-SXM4-80GB MIG 4g.40gb", 40 * GiB, 56, 2},
      {"NVIDIA A100-SXM4-80GB MIG 3g.40gb", 40 * GiB, 42, 1},
      {"NVIDIA H200 MIG 1g.18gb", 141 * GiB / 8, 16, 7},
      {"NVIDIA H200 MIG 1g.35gb", 141 * GiB / 4, 26, 4},
      {"NVIDIA H200 MIG 3g.71gb", 141 * GiB / 2, 60, 1},
      {"NVIDIA H100 80GB HBM3", 80 * GiB, 132, -1},
      {"NVIDIA A100-SXM4-40GB MIG 1g.10gb", 10 * GiB, 14, 3},
  };
  for (int i = 0; i < 7; i++) {
    gpumem_device_info d = info_of(i);
    assert_string_equal(d.name, want[i].name);
    assert_int_equal(d.memory_total, want[i].memory);
    assert_int_equal(d.sm_count, want[i].sms);
    assert_int_equal(d.gpu_instance_id, want[i].gi);
  }
  gpumem_device_info whole = info_of(5);
  assert_int_equal(whole.mig, GPUMEM_NO);
  assert_int_equal(whole.parent_mig_mode, GPUMEM_NO); /* MIG-capable, MIG disabled */
  assert_int_equal(info_of(9).gpu_instance_id, 6);    /* the fourth 1g.10gb, at slice 6 */
}

/* No peer access between slices, nor between a slice and a whole GPU;
 * whole GPUs keep GPUMEM_HOST_PEERS' links. */
static void test_mig_no_peer_access(void **state) {
  (void)state;
  assert_gpumem_ok(host_with("h100;h100:7g.80gb;h100;a100-80:3g.40gb,4g.40gb", NULL));
  bool can = true;
  assert_gpumem_ok(gpumem_device_can_access_peer(0, 2, &can));
  assert_true(can);
  const int pairs[][2] = {{0, 1}, {1, 0}, {1, 3}, {3, 4}, {4, 3}, {2, 4}};
  for (size_t i = 0; i < GM_ARRAY_SIZE(pairs); i++) {
    assert_gpumem_ok(gpumem_device_can_access_peer(pairs[i][0], pairs[i][1], &can));
    if (can) fail_msg("device %d may access device %d", pairs[i][0], pairs[i][1]);
  }
  gpumem_peer_info p;
  assert_gpumem_ok(gpumem_device_peer_info(3, 4, &p));
  assert_false(p.can_map);
  assert_int_equal(p.reason, GPUMEM_PEER_MIG);
  gpumem_phys_props props = GPUMEM_PHYS_PROPS_INIT; /* on device 0, a whole H100 */
  gpumem_phys_t h = 0;
  void *va = NULL;
  assert_gpumem_ok(gpumem_vmm_reserve(2 * MiB, 0, &va));
  assert_gpumem_ok(gpumem_vmm_create(&props, 2 * MiB, &h));
  assert_gpumem_ok(gpumem_vmm_map(va, 2 * MiB, 0, h));
  gpumem_access_desc desc[2] = {{0, GPUMEM_ACCESS_READWRITE}, {1, GPUMEM_ACCESS_READWRITE}};
  assert_gpumem_status(gpumem_vmm_set_access(va, 2 * MiB, desc, 2), GPUMEM_ERR_PEER_UNSUPPORTED);
  assert_last_error_contains("device 1 cannot access memory of device 0");
  desc[1].device = 2;
  assert_gpumem_ok(gpumem_vmm_set_access(va, 2 * MiB, desc, 2));
  assert_gpumem_ok(gpumem_vmm_unmap(va, 2 * MiB));
  assert_gpumem_ok(gpumem_vmm_release(h));
  assert_gpumem_ok(gpumem_vmm_free(va, 2 * MiB));

  /* A link to a slice is refused with a warning; the default stays. */
  gm_test_log log = {0};
  setenv("GPUMEM_HOST_PEERS", "0-2,2-3", 1);
  assert_gpumem_ok(gpumem_log_set_callback(gm_test_log_capture, &log));
  gpumem_status st = host_with("h100;h100:7g.80gb;h100;a100-80:3g.40gb,4g.40gb", NULL);
  assert_gpumem_ok(gpumem_log_set_callback(NULL, NULL));
  assert_gpumem_ok(st);
  assert_int_equal(log.count, 1);
  assert_non_null(strstr(log.line, "GPUMEM_HOST_PEERS='0-2,2-3' links device 3, a MIG slice: MIG "
                                   "slices have no peer access; keeping the default all"));
  setenv("GPUMEM_HOST_PEERS", "none", 1);
  assert_gpumem_ok(host_with("h100;h100:7g.80gb;h100", NULL));
  assert_gpumem_ok(gpumem_device_can_access_peer(0, 2, &can));
  assert_false(can);
}

/* Each bad layout is a warning naming the variable, the value and what is
 * wrong, and the default (GPUMEM_HOST_DEVICES generic devices) stays. */
static void test_mig_layout_rejected(void **state) {
  (void)state;
  char many[400] = "gpu";
  for (int i = 1; i <= GPUMEM_MAX_DEVICES; i++)
    strcat(many, ";gpu");
  const struct {
    const char *layout, *why;
  } bad[] = {
      {"x100", "GPU 0: 'x100' is not gpu, a100-40, a100-80, h100 or h200"},
      {"h100:3g.20gb", "GPU 0: '3g.20gb' is not a MIG profile of the NVIDIA H100 80GB HBM3 "
                       "(1g.10gb, 1g.20gb, 2g.20gb, 3g.40gb, 4g.40gb, 7g.80gb)"},
      {"gpu;a100-40:4g.20gb*2",
       "GPU 1: 'a100-40:4g.20gb*2': at most 1 4g.20gb instance(s) fit one NVIDIA A100-SXM4-40GB"},
      {"h100:3g.40gb*2,1g.10gb", "GPU 0: 'h100:3g.40gb*2,1g.10gb' does not fit one NVIDIA H100 "
                                 "80GB HBM3 (7 compute and 8 memory slices"},
      {"a100-40:4g.20gb,2g.10gb*2", "does not fit one NVIDIA A100-SXM4-40GB"},
      {"h100:1g.10gb*8", "'1g.10gb*8': the count must be 1..7"},
      {"h100:1g.10gb*x", "'1g.10gb*x': the count after '*' is not a number"},
      {"a100-40:1g.5gb*7,1g.10gb", "more than 7 GPU instances on one NVIDIA A100-SXM4-40GB"},
      {"gpu:1g.5gb", "a generic emulated gpu has no MIG profiles"},
      {"h100;;gpu", "GPU 1 is empty"},
      {"h100:", "GPU 0: 'h100:': an empty GPU instance entry"},
      {"h100:2g.20gb,", "an empty GPU instance entry"},
      {many, "more than 64 GPUs"},
  };
  for (size_t i = 0; i < GM_ARRAY_SIZE(bad); i++) {
    gm_test_log log = {0};
    assert_gpumem_ok(gpumem_log_set_callback(gm_test_log_capture, &log));
    gpumem_status st = host_with(bad[i].layout, NULL);
    assert_gpumem_ok(gpumem_log_set_callback(NULL, NULL));
    assert_gpumem_ok(st);
    char head[600];
    snprintf(head, sizeof head, "GPUMEM_HOST_MIG='%s' is not a layout: ", bad[i].layout);
    if (log.count != 1 || strstr(log.line, head) == NULL || strstr(log.line, bad[i].why) == NULL)
      fail_msg("'%s': %d warning(s), the last '%s'", bad[i].layout, log.count, log.line);
    assert_int_equal(count_devices(), 2); /* the default: two generic devices */
    assert_int_equal(info_of(0).mig, GPUMEM_UNKNOWN);
  }
  /* The layout decides the devices: GPUMEM_HOST_DEVICES is ignored, and said so. */
  gm_test_log log = {0};
  assert_gpumem_ok(gpumem_finalize());
  setenv("GPUMEM_HOST_MIG", "h100:7g.80gb", 1);
  gpumem_init_options o = GPUMEM_INIT_OPTIONS_INIT;
  o.backend = GPUMEM_BACKEND_HOST;
  o.host_devices = 5;
  assert_gpumem_ok(gpumem_log_set_callback(gm_test_log_capture, &log));
  assert_gpumem_ok(gpumem_init(&o));
  assert_gpumem_ok(gpumem_log_set_callback(NULL, NULL));
  assert_int_equal(count_devices(), 1);
  assert_int_equal(log.count, 1);
  assert_non_null(strstr(log.line, "GPUMEM_HOST_DEVICES is ignored: GPUMEM_HOST_MIG decides"));
}

/* Selection sees the slices through the host backend's layout. */
static void test_select_on_mig_layout(void **state) {
  (void)state;
  assert_gpumem_ok(host_with("h100:3g.40gb,2g.20gb*2;h100", NULL));
  gpumem_select_criteria c = GPUMEM_SELECT_CRITERIA_INIT;
  gpumem_selection s;
  c.mig = GPUMEM_MIG_REQUIRE;
  c.min_free_bytes = 30 * GiB;
  assert_gpumem_ok(gpumem_device_select(&c, &s));
  assert_int_equal(s.ordinal, 0);
  c.mig = GPUMEM_MIG_EXCLUDE;
  assert_gpumem_ok(gpumem_device_select(&c, &s));
  assert_int_equal(s.ordinal, 3);
  c = (gpumem_select_criteria)GPUMEM_SELECT_CRITERIA_INIT;
  c.uuid = "GPU-" HOST_UUID("00000000"); /* the split GPU: its slices qualify */
  assert_gpumem_ok(gpumem_device_select(&c, &s));
  assert_int_equal(s.candidates, 3);
  /* Ranks go to GPUs first: rank 1 takes the whole H100, rank 2 the next slice. */
  const int expect[4] = {0, 3, 1, 3};
  for (int r = 0; r < 4; r++) {
    c = (gpumem_select_criteria)GPUMEM_SELECT_CRITERIA_INIT;
    c.local_rank = r;
    assert_gpumem_ok(gpumem_device_select(&c, &s));
    if (s.ordinal != expect[r]) fail_msg("rank %d: device %d (%s)", r, s.ordinal, s.reason);
  }
}

static void test_cuda_visible_devices_on_host(void **state) {
  (void)state;
  /* A MIG UUID, then an index naming the second GPU (a generic one). */
  assert_gpumem_ok(host_with(MIXED_NODE, "MIG-" HOST_UUID("4d020900") ",1"));
  assert_int_equal(count_devices(), 2);
  gpumem_device_info d = info_of(0);
  assert_string_equal(d.uuid, "MIG-" HOST_UUID("4d020900"));
  assert_int_equal(d.memory_total, 5 * GiB);
  assert_int_equal(d.gpu_instance_id, 9);
  assert_string_equal(info_of(1).uuid, "GPU-" HOST_UUID("00000001"));
  gpumem_peer_info p;
  assert_gpumem_ok(gpumem_device_peer_info(1, 0, &p));
  assert_int_equal(p.reason, GPUMEM_PEER_MIG);
  assert_gpumem_status(gpumem_device_get_info(2, &d), GPUMEM_ERR_INVALID_DEVICE);
  /* The explanation agrees with what the backend applied. */
  gpumem_visible_devices v;
  assert_gpumem_ok(gpumem_visible_devices_read(NULL, &v));
  assert_true(v.resolved);
  assert_int_equal(v.index_order, GPUMEM_INDEX_ORDER_CUDA);
  assert_int_equal(v.device_count, 2);
  assert_string_equal(v.devices[1], "GPU-" HOST_UUID("00000001"));

  /* An index naming a GPU in MIG mode: its slices. */
  assert_gpumem_ok(host_with(MIXED_NODE, "2,0"));
  assert_int_equal(count_devices(), 10);
  assert_string_equal(info_of(0).name, "NVIDIA A100-SXM4-40GB MIG 1g.5gb");
  assert_string_equal(info_of(7).name, "NVIDIA H100 80GB HBM3 MIG 3g.40gb");

  /* The list ends at the first invalid entry; an index is read like strtoul. */
  gm_test_log log = {0};
  assert_gpumem_ok(gpumem_log_set_callback(gm_test_log_capture, &log));
  gpumem_status st = host_with(MIXED_NODE, "1gpu, bogus, 0");
  assert_gpumem_ok(gpumem_log_set_callback(NULL, NULL));
  assert_gpumem_ok(st);
  assert_int_equal(count_devices(), 1);
  assert_string_equal(info_of(0).uuid, "GPU-" HOST_UUID("00000001"));
  assert_int_equal(log.count, 1);
  assert_non_null(strstr(log.line, "entry 1: 'bogus' is not an index"));

  /* A device named twice hides every device; so does "". */
  assert_gpumem_ok(gpumem_log_set_level(GPUMEM_LOG_OFF));
  st = host_with(MIXED_NODE, "1,GPU-" HOST_UUID("00000001"));
  assert_gpumem_ok(gpumem_log_set_level(GPUMEM_LOG_WARN));
  assert_gpumem_status(st, GPUMEM_ERR_NO_DEVICE);
  assert_last_error_contains("CUDA_VISIBLE_DEVICES='1,GPU-" HOST_UUID(
      "00000001") "' leaves none of the 11 emulated "
                  "devices visible ('GPU-" HOST_UUID("00000001") "' names the same "
                                                                 "device as entry 0");
  assert_gpumem_status(host_with(NULL, ""), GPUMEM_ERR_NO_DEVICE);
  assert_last_error_contains("CUDA_VISIBLE_DEVICES='' leaves none of the 2 emulated devices");
  /* ... unless GPUMEM_HOST_VISIBLE=all says to ignore it. */
  setenv("GPUMEM_HOST_VISIBLE", "all", 1);
  assert_gpumem_ok(host_with(NULL, ""));
  assert_int_equal(count_devices(), 2);
  unsetenv("GPUMEM_HOST_VISIBLE");

  /* Generic devices: UUID prefixes must be unique; CUDA_DEVICE_ORDER does not
   * reorder the emulated node. */
  assert_gpumem_ok(gpumem_finalize());
  unsetenv("GPUMEM_HOST_MIG");
  setenv("CUDA_VISIBLE_DEVICES", "GPU-bb,2", 1);
  setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID", 1);
  gpumem_init_options o = GPUMEM_INIT_OPTIONS_INIT;
  o.backend = GPUMEM_BACKEND_HOST;
  o.host_devices = 3;
  o.host_uuids = "GPU-aa000000-0000-4000-8000-000000000000,GPU-bb000000-0000-4000-8000-"
                 "000000000000,GPU-ab000000-0000-4000-8000-000000000000";
  assert_gpumem_ok(gpumem_init(&o));
  assert_int_equal(count_devices(), 2);
  assert_string_equal(info_of(0).uuid, "GPU-bb000000-0000-4000-8000-000000000000");
  assert_string_equal(info_of(0).name, "libgpumem host device 1");
  assert_string_equal(info_of(1).uuid, "GPU-ab000000-0000-4000-8000-000000000000");
  assert_gpumem_ok(gpumem_finalize());
  setenv("CUDA_VISIBLE_DEVICES", "GPU-a", 1);
  assert_gpumem_ok(gpumem_log_set_level(GPUMEM_LOG_OFF));
  st = gpumem_init(&o);
  assert_gpumem_ok(gpumem_log_set_level(GPUMEM_LOG_WARN));
  assert_gpumem_status(st, GPUMEM_ERR_NO_DEVICE);
  assert_last_error_contains("'GPU-a' matches 2 GPUs (ambiguous prefix)");
  /* Memory is charged to the device the process sees. */
  setenv("CUDA_VISIBLE_DEVICES", "2", 1);
  assert_gpumem_ok(gpumem_init(&o));
  assert_int_equal(count_devices(), 1);
  assert_string_equal(info_of(0).uuid, "GPU-ab000000-0000-4000-8000-000000000000");
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
      cmocka_unit_test_setup_teardown(test_import_verifies_what_it_receives, small_device,
                                      gm_test_teardown_host),
      cmocka_unit_test_setup_teardown(test_compression_recorded, small_device,
                                      gm_test_teardown_host),
      cmocka_unit_test_setup_teardown(test_copy_past_the_pool_refused, small_device,
                                      gm_test_teardown_host),
      cmocka_unit_test_setup_teardown(test_pool_release_threshold_and_trim, small_device,
                                      gm_test_teardown_host),
      cmocka_unit_test_setup_teardown(test_pool_gives_cache_back_when_device_is_full, small_device,
                                      gm_test_teardown_host),
      cmocka_unit_test_setup_teardown(test_pool_bad_frees, small_device, gm_test_teardown_host),
      cmocka_unit_test_setup_teardown(test_pool_access_follows_peers, three_devices,
                                      gm_test_teardown_host),
      cmocka_unit_test_setup_teardown(test_mig_layout_devices, mixed_node, mig_teardown),
      cmocka_unit_test_setup_teardown(test_mig_layout_models, NULL, mig_teardown),
      cmocka_unit_test_setup_teardown(test_mig_no_peer_access, NULL, mig_teardown),
      cmocka_unit_test_setup_teardown(test_mig_layout_rejected, NULL, mig_teardown),
      cmocka_unit_test_setup_teardown(test_select_on_mig_layout, NULL, mig_teardown),
      cmocka_unit_test_setup_teardown(test_cuda_visible_devices_on_host, NULL, mig_teardown),
  };
  return gm_test_run("host_backend", tests, GM_ARRAY_SIZE(tests), argc, argv, NULL);
}
