/* test_seam.c: what the seam (backend.c) guarantees whatever backend is
 * behind it, checked with a fake backend installed in place of the host one:
 * bad arguments and dead handles never reach the backend, and a handle the
 * backend hands out twice (CUDA may return the same handle when an allocation
 * is imported again in the exporting process) is tracked as two references. */
#include "backend.h"
#include "helpers.h"
#include "internal.h"

#define FAKE_HANDLE 0x1000u

static struct { int create, import, release, set_access, map; } calls;

static gpumem_status fake_create(const gpumem_phys_props *p, size_t size, gpumem_phys_t *out) {
  (void)p;
  (void)size;
  calls.create++;
  *out = FAKE_HANDLE;
  return GPUMEM_OK;
}

static gpumem_status fake_import(const gpumem_shareable_handle *in, gpumem_phys_t *out) {
  (void)in;
  calls.import++;
  *out = FAKE_HANDLE; /* the same handle again */
  return GPUMEM_OK;
}

static gpumem_status fake_release(gpumem_phys_t h) {
  (void)h;
  calls.release++;
  return GPUMEM_OK;
}

static gpumem_status fake_set_access(uintptr_t va, size_t size, const gpumem_access_desc *d,
                                     size_t n) {
  (void)va;
  (void)size;
  (void)d;
  (void)n;
  calls.set_access++;
  return GPUMEM_OK;
}

static gpumem_status fake_map(uintptr_t va, size_t size, size_t off, gpumem_phys_t h) {
  (void)va;
  (void)size;
  (void)off;
  (void)h;
  calls.map++;
  return GPUMEM_OK;
}

static gm_backend_ops fake;
static const gm_backend_ops *original;

static int install_fake(void **state) {
  if (gm_test_setup(state) != 0) return -1;
  fake = gm_backend_host;
  fake.name = "fake";
  fake.phys_create = fake_create;
  fake.import_handle = fake_import;
  fake.phys_release = fake_release;
  fake.set_access = fake_set_access;
  fake.map = fake_map;
  memset(&calls, 0, sizeof calls);
  original = gm_backend();
  gm_backend_install(&fake);
  return 0;
}

static int restore_host(void **state) {
  gm_backend_install(original);
  return gm_test_teardown(state);
}

static void test_same_handle_imported_counts_twice(void **state) {
  (void)state;
  gpumem_phys_props props = GPUMEM_PHYS_PROPS_INIT;
  gpumem_phys_t a = 0, b = 0;
  assert_gpumem_ok(gpumem_vmm_create(&props, 2 << 20, &a));
  gpumem_shareable_handle sh = {GPUMEM_HANDLE_POSIX_FD, 0, {0}};
  assert_gpumem_ok(gpumem_vmm_import(&sh, &b));
  assert_int_equal(a, b);
  gm_backend_counters c;
  gm_backend_get_counters(&c);
  assert_int_equal(c.phys_handles, 2);
  assert_int_equal(c.phys_bytes, 2 << 20);
  assert_gpumem_ok(gpumem_vmm_release(b));
  assert_gpumem_ok(gpumem_vmm_release(a)); /* each reference is released once */
  assert_int_equal(calls.release, 2);
  assert_gpumem_status(gpumem_vmm_release(a), GPUMEM_ERR_DOUBLE_FREE);
  assert_int_equal(calls.release, 2); /* the third never reached the backend */
  gm_backend_get_counters(&c);
  assert_int_equal(c.phys_handles, 0);
  assert_int_equal(c.phys_bytes, 0);
}

static void test_bad_input_never_reaches_backend(void **state) {
  (void)state;
  gpumem_phys_props props = GPUMEM_PHYS_PROPS_INIT;
  gpumem_phys_t h = 0;
  gpumem_access_desc bad = {0, (gpumem_access_flags)2};
  assert_gpumem_status(gpumem_vmm_create(&props, 0, &h), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_vmm_set_access((void *)0x200000, 2 << 20, &bad, 1),
                       GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_vmm_map((void *)0x200000, 2 << 20, 0, 77),
                       GPUMEM_ERR_INVALID_POINTER);
  assert_gpumem_ok(gpumem_vmm_create(&props, 2 << 20, &h));
  /* A live handle, but no reservation there: refused by the seam. */
  assert_gpumem_status(gpumem_vmm_map((void *)0x200000, 2 << 20, 0, h),
                       GPUMEM_ERR_INVALID_ARGUMENT);
  assert_int_equal(calls.map, 0);
  assert_int_equal(calls.set_access, 0);
  assert_int_equal(calls.create, 1);
  assert_gpumem_ok(gpumem_vmm_release(h));
}

int main(int argc, char **argv) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_same_handle_imported_counts_twice, install_fake,
                                      restore_host),
      cmocka_unit_test_setup_teardown(test_bad_input_never_reaches_backend, install_fake,
                                      restore_host),
  };
  return gm_test_run("seam", tests, GM_ARRAY_SIZE(tests), argc, argv, NULL);
}
