/* test_log.c: levels, sinks (callback, file, stderr), the line format, and
 * that nothing reaches stdout. Runs without a backend. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "helpers.h"
#include "internal.h"
#include "log.h"

static int reset(void **state) {
  (void)state;
  gm_test_ignore(gpumem_log_set_callback(NULL, NULL));
  gm_test_ignore(gpumem_log_set_file(NULL));
  gm_test_ignore(gpumem_log_set_level(GPUMEM_LOG_WARN));
  return 0;
}

static void test_level_names_and_parsing(void **state) {
  (void)state;
  const char *names[] = {"off", "error", "warn", "info", "debug", "trace"};
  for (int i = 0; i <= GPUMEM_LOG_TRACE; i++) {
    assert_string_equal(gpumem_log_level_name((gpumem_log_level)i), names[i]);
    gpumem_log_level l = GPUMEM_LOG_OFF;
    assert_true(gm_log_parse_level(names[i], &l));
    assert_int_equal(l, i);
  }
  gpumem_log_level l = GPUMEM_LOG_ERROR;
  assert_true(gm_log_parse_level("WARNING", &l));
  assert_int_equal(l, GPUMEM_LOG_WARN);
  assert_false(gm_log_parse_level("loud", &l));
  assert_false(gm_log_parse_level("", &l));
  assert_int_equal(l, GPUMEM_LOG_WARN);
  assert_string_equal(gpumem_log_level_name((gpumem_log_level)42), "?");
}

static void test_default_level_is_warn_and_filters(void **state) {
  (void)state;
  gm_test_log c = {0};
  assert_gpumem_ok(gpumem_log_set_callback(gm_test_log_capture, &c));
  assert_int_equal(gpumem_log_get_level(), GPUMEM_LOG_WARN);
  gm_log(GPUMEM_LOG_INFO, "not shown");
  gm_log(GPUMEM_LOG_DEBUG, "not shown");
  assert_int_equal(c.count, 0);
  gm_log(GPUMEM_LOG_WARN, "shown %d", 42);
  assert_int_equal(c.count, 1);
  assert_int_equal(c.level, GPUMEM_LOG_WARN);
  assert_string_equal(c.line, "gpumem: warn: shown 42");
  gm_log(GPUMEM_LOG_ERROR, "bad");
  assert_string_equal(c.line, "gpumem: error: bad");
  assert_gpumem_ok(gpumem_log_set_level(GPUMEM_LOG_TRACE));
  gm_log(GPUMEM_LOG_TRACE, "fine detail");
  assert_int_equal(c.count, 3);
  assert_gpumem_ok(gpumem_log_set_level(GPUMEM_LOG_OFF));
  gm_log(GPUMEM_LOG_ERROR, "silenced");
  assert_int_equal(c.count, 3);
}

static void test_invalid_level_rejected(void **state) {
  (void)state;
  assert_gpumem_status(gpumem_log_set_level((gpumem_log_level)6), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("gpumem_log_set_level: level 6");
  assert_gpumem_status(gpumem_log_set_level((gpumem_log_level)-1), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_int_equal(gpumem_log_get_level(), GPUMEM_LOG_WARN);
}

static void test_long_lines_are_cut(void **state) {
  (void)state;
  gm_test_log c = {0};
  assert_gpumem_ok(gpumem_log_set_callback(gm_test_log_capture, &c));
  char big[4000];
  memset(big, 'y', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  gm_log(GPUMEM_LOG_ERROR, "%s", big);
  assert_int_equal(c.count, 1);
  assert_true(strlen(c.line) <= GPUMEM_LOG_LINE_MAX - 2);
  assert_int_equal(strncmp(c.line, "gpumem: error: yyy", 18), 0);
}

static void test_file_sink_appends_lines(void **state) {
  (void)state;
  char path[] = "/tmp/gpumem-log-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  assert_gpumem_ok(gpumem_log_set_file(path));
  gm_log(GPUMEM_LOG_WARN, "first");
  gm_log(GPUMEM_LOG_ERROR, "second %s", "line");
  gm_log(GPUMEM_LOG_INFO, "filtered");
  assert_gpumem_ok(gpumem_log_set_file(NULL));
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  char text[256] = {0};
  size_t n = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  unlink(path);
  assert_true(n > 0);
  assert_string_equal(text, "gpumem: warn: first\ngpumem: error: second line\n");
}

static void test_file_sink_error_keeps_sink(void **state) {
  (void)state;
  assert_gpumem_status(gpumem_log_set_file("/nonexistent-dir/x.log"), GPUMEM_ERR_OS);
  assert_last_error_contains("cannot open log file '/nonexistent-dir/x.log'");
  gm_test_log c = {0};
  assert_gpumem_ok(gpumem_log_set_callback(gm_test_log_capture, &c));
  gm_log(GPUMEM_LOG_WARN, "still works");
  assert_int_equal(c.count, 1);
}

/* The library never writes to stdout: point stdout at a file, log at every
 * level through the default sink (stderr), and check the file is empty. */
static void test_never_writes_stdout(void **state) {
  (void)state;
  char path[] = "/tmp/gpumem-stdout-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  fflush(stdout);
  int saved = dup(STDOUT_FILENO);
  int saved_err = dup(STDERR_FILENO);
  int devnull = open("/dev/null", O_WRONLY);
  dup2(fd, STDOUT_FILENO);
  dup2(devnull, STDERR_FILENO);
  assert_gpumem_ok(gpumem_log_set_level(GPUMEM_LOG_TRACE));
  for (int l = GPUMEM_LOG_ERROR; l <= GPUMEM_LOG_TRACE; l++)
    gm_log((gpumem_log_level)l, "x");
  void *va = NULL;
  assert_int_not_equal(gpumem_vmm_reserve(0, 0, &va), GPUMEM_OK); /* a failure logs at debug */
  fflush(stdout);
  dup2(saved, STDOUT_FILENO);
  dup2(saved_err, STDERR_FILENO);
  close(saved);
  close(saved_err);
  close(devnull);
  off_t size = lseek(fd, 0, SEEK_END);
  close(fd);
  unlink(path);
  assert_int_equal(size, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_level_names_and_parsing, reset, reset),
      cmocka_unit_test_setup_teardown(test_default_level_is_warn_and_filters, reset, reset),
      cmocka_unit_test_setup_teardown(test_invalid_level_rejected, reset, reset),
      cmocka_unit_test_setup_teardown(test_long_lines_are_cut, reset, reset),
      cmocka_unit_test_setup_teardown(test_file_sink_appends_lines, reset, reset),
      cmocka_unit_test_setup_teardown(test_file_sink_error_keeps_sink, reset, reset),
      cmocka_unit_test_setup_teardown(test_never_writes_stdout, reset, reset),
  };
  return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
