/* test_error.c: status table, last-error sentences, thread locality. */
#include <pthread.h>
#include <stdio.h>

#include "helpers.h"
#include "internal.h"

static void test_every_status_has_name_and_message(void **state) {
  (void)state;
  for (int s = 0; s < GPUMEM_STATUS_COUNT; s++) {
    const char *name = gpumem_status_name((gpumem_status)s);
    const char *msg = gpumem_status_string((gpumem_status)s);
    assert_non_null(strstr(name, "GPUMEM_"));
    assert_string_not_equal(name, "GPUMEM_UNKNOWN_STATUS");
    assert_true(strlen(msg) > 3);
    for (int t = 0; t < s; t++) {
      assert_string_not_equal(name, gpumem_status_name((gpumem_status)t));
    }
  }
  assert_string_equal(gpumem_status_name(GPUMEM_OK), "GPUMEM_OK");
  assert_string_equal(gpumem_status_name(GPUMEM_ERR_NO_DEVICE), "GPUMEM_ERR_NO_DEVICE");
  assert_string_equal(gpumem_status_string(GPUMEM_ERR_OUT_OF_MEMORY), "out of device memory");
  assert_int_equal(GPUMEM_ERR_NOT_FOUND, GPUMEM_STATUS_COUNT - 1);
}

static void test_unknown_status(void **state) {
  (void)state;
  assert_string_equal(gpumem_status_name((gpumem_status)-1), "GPUMEM_UNKNOWN_STATUS");
  assert_string_equal(gpumem_status_name((gpumem_status)GPUMEM_STATUS_COUNT),
                      "GPUMEM_UNKNOWN_STATUS");
  assert_string_equal(gpumem_status_string((gpumem_status)9999), "unknown status");
}

static void test_last_error_names_function_and_detail(void **state) {
  (void)state;
  void *va = NULL;
  assert_gpumem_status(gpumem_vmm_reserve(0, 0, &va), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_string_equal(gpumem_last_error(), "gpumem_vmm_reserve: cannot reserve 0 bytes");
  assert_int_equal(gpumem_last_status(), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_null(va);
}

static void test_success_keeps_last_error(void **state) {
  (void)state;
  assert_gpumem_status(gpumem_vmm_release(0), GPUMEM_ERR_INVALID_POINTER);
  char before[256];
  snprintf(before, sizeof before, "%s", gpumem_last_error());
  int count = 0;
  assert_gpumem_ok(gpumem_device_count(&count));
  assert_string_equal(gpumem_last_error(), before);
  gpumem_clear_last_error();
  assert_string_equal(gpumem_last_error(), "");
  assert_int_equal(gpumem_last_status(), GPUMEM_OK);
}

/* A public function that fails without recording a detail gets its status
 * message; a detail recorded and then discarded does not leak into it. */
static gpumem_status fake_public_call(bool with_detail) {
  if (with_detail) gm_error(GPUMEM_ERR_BUSY, "stale detail");
  gm_error_discard();
  GM_RETURN(GPUMEM_ERR_NOT_SUPPORTED);
}

static void test_status_message_without_detail(void **state) {
  (void)state;
  assert_int_equal(fake_public_call(true), GPUMEM_ERR_NOT_SUPPORTED);
  assert_string_equal(gpumem_last_error(),
                      "fake_public_call: not supported by this device, driver or backend");
}

static void *other_thread(void *arg) {
  char *out = arg;
  assert_int_equal(gpumem_vmm_free(NULL, 4096), GPUMEM_ERR_INVALID_ARGUMENT);
  snprintf(out, 256, "%s", gpumem_last_error());
  return NULL;
}

static void test_last_error_is_per_thread(void **state) {
  (void)state;
  void *va = NULL;
  assert_gpumem_status(gpumem_vmm_reserve(0, 0, &va), GPUMEM_ERR_INVALID_ARGUMENT);
  char theirs[256] = {0};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, other_thread, theirs), 0);
  pthread_join(t, NULL);
  assert_string_equal(theirs, "gpumem_vmm_free: address is NULL");
  assert_string_equal(gpumem_last_error(), "gpumem_vmm_reserve: cannot reserve 0 bytes");
}

static void test_long_detail_is_cut_not_overflowed(void **state) {
  (void)state;
  char big[2048];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  gm_error(GPUMEM_ERR_INTERNAL, "%s", big);
  assert_int_equal(gm_api_return("caller", GPUMEM_ERR_INTERNAL), GPUMEM_ERR_INTERNAL);
  assert_int_equal(strncmp(gpumem_last_error(), "caller: xxx", 11), 0);
  assert_true(strlen(gpumem_last_error()) < GM_ERROR_SENTENCE_MAX);
}

int main(int argc, char **argv) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_status_has_name_and_message),
      cmocka_unit_test(test_unknown_status),
      cmocka_unit_test(test_last_error_names_function_and_detail),
      cmocka_unit_test(test_success_keeps_last_error),
      cmocka_unit_test(test_status_message_without_detail),
      cmocka_unit_test(test_last_error_is_per_thread),
      cmocka_unit_test(test_long_detail_is_cut_not_overflowed),
  };
  return gm_test_run("error", tests, GM_ARRAY_SIZE(tests), argc, argv, NULL);
}
