/* test_log.c: levels, sinks (callback, file, stderr), the line formats
 * (time, host and pid in file lines; none in callback lines), %h and %p in
 * the log file's name, that nothing reaches stdout, and the trace level's
 * lines for real pool, arena, buffer and allocator calls. Only the last
 * needs a backend: it initialises the host backend itself. */
#include <fcntl.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
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

/* Read a whole small file into `text`. */
static void read_file(const char *path, char *text, size_t len) {
  FILE *f = fopen(path, "r");
  if (f == NULL) fail_msg("cannot open %s", path);
  size_t n = fread(text, 1, len - 1, f);
  text[n] = '\0';
  fclose(f);
}

/* The short host name, as the library writes it. */
static void short_host(char *host, size_t len) {
  assert_int_equal(gethostname(host, len), 0);
  host[len - 1] = '\0';
  char *dot = strchr(host, '.');
  if (dot != NULL && dot != host) *dot = '\0';
}

/* A file line: "gpumem: <UTC time with microseconds> <host>:<pid> <rest>",
 * the time within a minute of now. */
static void check_stamped(const char *line, const char *rest) {
  char host[256], re_text[512];
  short_host(host, sizeof host);
  snprintf(re_text, sizeof re_text,
           "^gpumem: ([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})\\.[0-9]{6}Z "
           "%s:%ld %s$",
           host, (long)getpid(), rest);
  regex_t re;
  regmatch_t m[7];
  assert_int_equal(regcomp(&re, re_text, REG_EXTENDED), 0);
  int rc = regexec(&re, line, 7, m, 0);
  regfree(&re);
  if (rc != 0) fail_msg("'%s' does not match '%s'", line, re_text);
  int f[6];
  for (int i = 0; i < 6; i++)
    f[i] = atoi(line + m[i + 1].rm_so);
  struct tm tm = {.tm_year = f[0] - 1900,
                  .tm_mon = f[1] - 1,
                  .tm_mday = f[2],
                  .tm_hour = f[3],
                  .tm_min = f[4],
                  .tm_sec = f[5]};
  double age = difftime(time(NULL), timegm(&tm));
  if (age < -1 || age > 60) fail_msg("'%s': the time is %.0f s from now (UTC)", line, age);
}

static void test_file_sink_appends_stamped_lines(void **state) {
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
  char text[1024];
  read_file(path, text, sizeof text);
  unlink(path);
  char *second = strchr(text, '\n');
  assert_non_null(second);
  *second++ = '\0';
  char *end = strchr(second, '\n');
  assert_non_null(end);
  *end = '\0';
  assert_string_equal(end + 1, ""); /* two lines, nothing else */
  check_stamped(text, "warn: first");
  check_stamped(second, "error: second line");
}

/* The same line to a callback has no time, host or pid: the application's
 * logger adds its own. */
static void test_callback_lines_are_not_stamped(void **state) {
  (void)state;
  gm_test_log c = {0};
  assert_gpumem_ok(gpumem_log_set_callback(gm_test_log_capture, &c));
  gm_log(GPUMEM_LOG_ERROR, "plain %d", 7);
  assert_string_equal(c.line, "gpumem: error: plain 7");
}

/* %h and %p in the file name, as in NCCL_DEBUG_FILE; %% is one %, anything
 * else stays as written. */
static void test_file_name_expands_host_and_pid(void **state) {
  (void)state;
  char dir[] = "/tmp/gpumem-logdir-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char pattern[256], expected[512], host[256];
  short_host(host, sizeof host);
  snprintf(pattern, sizeof pattern, "%s/gm.%%h.%%p.%%%%p.%%x.log%%", dir);
  snprintf(expected, sizeof expected, "%s/gm.%s.%ld.%%p.%%x.log%%", dir, host, (long)getpid());
  assert_gpumem_ok(gpumem_log_set_file(pattern));
  gm_log(GPUMEM_LOG_WARN, "to the expanded name");
  assert_gpumem_ok(gpumem_log_set_file(NULL));
  struct stat sb;
  if (stat(expected, &sb) != 0) fail_msg("%s was not created (from %s)", expected, pattern);
  char text[512];
  read_file(expected, text, sizeof text);
  assert_non_null(strstr(text, " warn: to the expanded name\n"));
  unlink(expected);
  rmdir(dir);
  /* The error names the file the pattern became. */
  assert_gpumem_status(gpumem_log_set_file("/nonexistent-dir/%p.log"), GPUMEM_ERR_OS);
  snprintf(expected, sizeof expected, "cannot open log file '/nonexistent-dir/%ld.log'",
           (long)getpid());
  assert_last_error_contains(expected);
  /* A name that %h and %p make too long is refused. */
  char pid[24];
  snprintf(pid, sizeof pid, "%ld", (long)getpid());
  size_t n = 4096 / (strlen(host) + strlen(pid)) + 1, len = 8 + 4 * n;
  char *longer = malloc(len);
  snprintf(longer, len, "/tmp/");
  for (size_t i = 0; i < n; i++)
    strcat(longer, "%h%p");
  assert_gpumem_status(gpumem_log_set_file(longer), GPUMEM_ERR_INVALID_ARGUMENT);
  free(longer);
  assert_last_error_contains("4096 bytes or longer once %h and %p are expanded");
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

/* ---- GPUMEM_LOG=trace: allocation events ---- */

#define MAX_LINES 64

typedef struct captured {
  int count;
  char lines[MAX_LINES][GPUMEM_LOG_LINE_MAX];
} captured;

static captured cap;

static void capture(gpumem_log_level level, const char *line, void *user) {
  captured *c = user;
  assert_int_equal(level, GPUMEM_LOG_TRACE);
  if (c->count < MAX_LINES) snprintf(c->lines[c->count], sizeof c->lines[0], "%s", line);
  c->count++;
}

/* Line i is `prefix` followed by a trace id; returns the id. */
static unsigned long line_with_id(int i, const char *prefix) {
  if (i >= cap.count) fail_msg("line %d missing: expected '%s'", i, prefix);
  const char *l = cap.lines[i];
  size_t n = strlen(prefix);
  if (strncmp(l, prefix, n) != 0 || strncmp(l + n, " (id ", 5) != 0 || l[strlen(l) - 1] != ')') {
    fail_msg("line %d is '%s', expected '%s (id N)'", i, l, prefix);
  }
  return strtoul(l + n + 5, NULL, 10);
}

static void expect_line(int i, const char *text) {
  if (i >= cap.count) fail_msg("line %d missing: expected '%s'", i, text);
  assert_string_equal(cap.lines[i], text);
}

static int init_host(void **state) {
  reset(state);
  gpumem_init_options o = GPUMEM_INIT_OPTIONS_INIT;
  o.backend = GPUMEM_BACKEND_HOST;
  gm_test_ignore(gpumem_finalize());
  return gpumem_init(&o) == GPUMEM_OK ? 0 : -1;
}

static int finalize_host(void **state) {
  reset(state);
  return gpumem_finalize() == GPUMEM_OK ? 0 : -1;
}

/* Pool, arena and buffer calls, each one line at trace level, with size,
 * pointer, stream or device and the trace id that pairs an alloc with its
 * free; growths and shrinks of mapped memory one line each. */
static void test_trace_level_logs_allocations(void **state) {
  (void)state;
  char want[GPUMEM_LOG_LINE_MAX];
  gpumem_pool_config pc = GPUMEM_POOL_CONFIG_INIT;
  gpumem_pool_t *pool = NULL;
  assert_gpumem_ok(gpumem_pool_create(&pc, &pool));
  gpumem_stream_t s = NULL;
  assert_gpumem_ok(gpumem_stream_create(0, &s));
  gpumem_arena_config ac = GPUMEM_ARENA_CONFIG_INIT;
  gpumem_arena_t *arena = NULL;
  assert_gpumem_ok(gpumem_arena_create(&ac, &arena));
  gpumem_buffer_config bc = GPUMEM_BUFFER_CONFIG_INIT;
  gpumem_buffer_t *buf = NULL;
  assert_gpumem_ok(gpumem_buffer_create(&bc, &buf));
  void *base = gpumem_buffer_data(buf);
  char *bp = base;

  memset(&cap, 0, sizeof cap);
  assert_gpumem_ok(gpumem_log_set_callback(capture, &cap));
  assert_gpumem_ok(gpumem_log_set_level(GPUMEM_LOG_TRACE));

  void *p1 = NULL, *p2 = NULL, *a1 = NULL;
  assert_gpumem_ok(gpumem_pool_alloc(pool, 4096, s, &p1));
  assert_gpumem_ok(gpumem_pool_free(pool, p1, s));
  assert_gpumem_ok(gpumem_pool_alloc(pool, 4000, s, &p2)); /* a hit in the thread's cache */
  assert_ptr_equal(p2, p1);
  assert_gpumem_ok(gpumem_pool_free(pool, p2, NULL));
  int l = 0;
  snprintf(want, sizeof want, "gpumem: trace: pool %p: alloc 4096 B at %p on stream %p, device 0",
           (void *)pool, p1, (void *)s);
  unsigned long id = line_with_id(l++, want);
  snprintf(want, sizeof want, "gpumem: trace: pool %p: free 4096 B at %p on stream %p, device 0",
           (void *)pool, p1, (void *)s);
  assert_int_equal(line_with_id(l++, want), id);
  snprintf(want, sizeof want, "gpumem: trace: pool %p: alloc 4000 B at %p on stream %p, device 0",
           (void *)pool, p2, (void *)s);
  unsigned long id2 = line_with_id(l++, want);
  assert_true(id2 > id);
  snprintf(want, sizeof want, "gpumem: trace: pool %p: free 4000 B at %p on stream %p, device 0",
           (void *)pool, p2, (void *)NULL);
  assert_int_equal(line_with_id(l++, want), id2);

  /* The arena: its first allocation maps a chunk (8 MiB). */
  assert_gpumem_ok(gpumem_arena_alloc(arena, 300, 0, 0, &a1));
  assert_gpumem_ok(gpumem_arena_free(arena, a1));
  snprintf(want, sizeof want,
           "gpumem: trace: arena %p: mapped 8388608 B at %p, 8388608 B mapped now on device 0",
           (void *)arena, a1);
  expect_line(l++, want);
  snprintf(want, sizeof want, "gpumem: trace: arena %p: alloc 300 B at %p on device 0",
           (void *)arena, a1);
  id = line_with_id(l++, want);
  snprintf(want, sizeof want, "gpumem: trace: arena %p: free 300 B at %p on device 0",
           (void *)arena, a1);
  assert_int_equal(line_with_id(l++, want), id);

  /* The buffer: growth (a 2 MiB segment), resizes, shrink_to_fit, destroy. */
  assert_gpumem_ok(gpumem_buffer_resize(buf, 4096));
  assert_gpumem_ok(gpumem_buffer_resize(buf, 4096)); /* no change: no line */
  assert_gpumem_ok(gpumem_buffer_resize(buf, 3 << 20));
  assert_gpumem_ok(gpumem_buffer_resize(buf, 100));
  assert_gpumem_ok(gpumem_buffer_shrink_to_fit(buf, NULL));
  assert_gpumem_ok(gpumem_buffer_destroy(buf));
  snprintf(want, sizeof want,
           "gpumem: trace: buffer %p: mapped 2097152 B at %p, 2097152 B mapped now on device 0",
           (void *)buf, base);
  expect_line(l++, want);
  snprintf(want, sizeof want, "gpumem: trace: buffer %p: resize 0 -> 4096 B at %p on device 0",
           (void *)buf, base);
  line_with_id(l++, want);
  snprintf(want, sizeof want,
           "gpumem: trace: buffer %p: mapped 2097152 B at %p, 4194304 B mapped now on device 0",
           (void *)buf, (void *)(bp + (2 << 20)));
  expect_line(l++, want);
  snprintf(want, sizeof want,
           "gpumem: trace: buffer %p: resize 4096 -> 3145728 B at %p on device 0", (void *)buf,
           base);
  line_with_id(l++, want);
  snprintf(want, sizeof want, "gpumem: trace: buffer %p: resize 3145728 -> 100 B at %p on device 0",
           (void *)buf, base);
  line_with_id(l++, want);
  snprintf(want, sizeof want,
           "gpumem: trace: buffer %p: unmapped 2097152 B at %p, 2097152 B mapped now on device 0",
           (void *)buf, (void *)(bp + (2 << 20)));
  expect_line(l++, want);
  snprintf(want, sizeof want,
           "gpumem: trace: buffer %p: unmapped 2097152 B at %p, 0 B mapped now on device 0",
           (void *)buf, base);
  expect_line(l++, want);
  snprintf(want, sizeof want, "gpumem: trace: buffer %p: resize 100 -> 0 B at %p on device 0",
           (void *)buf, base);
  expect_line(l++, want);
  assert_int_equal(cap.count, l);

  /* Through the allocator interface a call is one line, with the caller's
   * stream, not one from the interface and one from the pool under it. */
  gpumem_allocator a = GPUMEM_ALLOCATOR_INIT;
  assert_gpumem_ok(gpumem_allocator_create("gpumem-pool", 0, &a));
  void *q = NULL;
  assert_gpumem_ok(a.alloc(a.ctx, 1000, s, &q));
  assert_gpumem_ok(a.free(a.ctx, q, 1000, s));
  assert_int_equal(cap.count, l + 2);
  assert_non_null(strstr(cap.lines[l], ": alloc 1000 B at "));
  assert_non_null(strstr(cap.lines[l + 1], ": free 1000 B at "));
  assert_int_equal(strncmp(cap.lines[l], "gpumem: trace: gpumem-pool ", 27), 0);

  /* Below trace: no event lines at all. */
  assert_gpumem_ok(gpumem_log_set_level(GPUMEM_LOG_DEBUG));
  assert_gpumem_ok(gpumem_pool_alloc(pool, 4096, s, &p1));
  assert_gpumem_ok(gpumem_pool_free(pool, p1, s));
  assert_gpumem_ok(a.alloc(a.ctx, 1000, s, &q));
  assert_gpumem_ok(a.free(a.ctx, q, 1000, s));
  assert_int_equal(cap.count, l + 2);

  assert_gpumem_ok(gpumem_log_set_callback(NULL, NULL));
  assert_gpumem_ok(gpumem_allocator_destroy(&a));
  assert_gpumem_ok(gpumem_arena_destroy(arena));
  assert_gpumem_ok(gpumem_stream_destroy(s));
  assert_gpumem_ok(gpumem_pool_destroy(pool));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_level_names_and_parsing, reset, reset),
      cmocka_unit_test_setup_teardown(test_default_level_is_warn_and_filters, reset, reset),
      cmocka_unit_test_setup_teardown(test_invalid_level_rejected, reset, reset),
      cmocka_unit_test_setup_teardown(test_long_lines_are_cut, reset, reset),
      cmocka_unit_test_setup_teardown(test_file_sink_appends_stamped_lines, reset, reset),
      cmocka_unit_test_setup_teardown(test_callback_lines_are_not_stamped, reset, reset),
      cmocka_unit_test_setup_teardown(test_file_name_expands_host_and_pid, reset, reset),
      cmocka_unit_test_setup_teardown(test_file_sink_error_keeps_sink, reset, reset),
      cmocka_unit_test_setup_teardown(test_never_writes_stdout, reset, reset),
      cmocka_unit_test_setup_teardown(test_trace_level_logs_allocations, init_host, finalize_host),
  };
  return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
