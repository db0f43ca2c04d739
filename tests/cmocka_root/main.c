/* main.c: one CMocka test, linked against the CMocka that CMOCKA_ROOT names;
 * it prints the path of the libcmocka the process loaded, which run.cmake
 * checks is the one under CMOCKA_ROOT (found through the build RPATH). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

static void adds(void **state) {
  (void)state;
  assert_int_equal(2 + 2, 4);
}

int main(void) {
  Dl_info info;
  if (dladdr((void *)_cmocka_run_group_tests, &info) && info.dli_fname != NULL) {
    printf("libcmocka loaded from %s\n", info.dli_fname);
  }
  const struct CMUnitTest tests[] = {cmocka_unit_test(adds)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
