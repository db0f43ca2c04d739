/* helpers.h: what every test suite shares.
 *
 * - assert_gpumem_ok(call): fails the test with the status name and
 *   gpumem_last_error() when the call does not return GPUMEM_OK.
 * - assert_gpumem_status(call, expected) and assert_last_error_contains().
 * - gm_test_run(): runs a suite on the backend that GPUMEM_BACKEND names (ctest
 *   registers each suite once per backend). When the CUDA backend has no
 *   device the suite is skipped as a whole (exit 77, which ctest reports as
 *   skipped), unless GPUMEM_TEST_REQUIRE_GPU=1, which turns it into failures.
 * - gm_test_setup/teardown: per-test fixtures that (re)initialise the library
 *   and, after the test, fail it if any backend object is still alive.
 * - SCM_RIGHTS helpers and a child-process launcher for sharing tests.
 */
#ifndef GPUMEM_TEST_HELPERS_H
#define GPUMEM_TEST_HELPERS_H

#include <setjmp.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "backend.h"
#include "gpumem/gpumem.h"
#include "internal.h"

#define assert_gpumem_ok(call)                                                            \
  do {                                                                                    \
    gpumem_status s_ = (call);                                                            \
    if (s_ != GPUMEM_OK)                                                                  \
      fail_msg("%s returned %s: %s", #call, gpumem_status_name(s_), gpumem_last_error()); \
  } while (0)

#define assert_gpumem_status(call, expected)                                                  \
  do {                                                                                        \
    gpumem_status s_ = (call);                                                                \
    if (s_ != (expected))                                                                     \
      fail_msg("%s returned %s, expected %s (last error: %s)", #call, gpumem_status_name(s_), \
               gpumem_status_name(expected), gpumem_last_error());                            \
  } while (0)

/* Call a libgpumem function whose status does not matter here (cleanup in a
 * thread or after a failure already reported): GPUMEM_NODISCARD wants the
 * status looked at; a failure is dropped with its sentence. */
#define gm_test_ignore(call)                            \
  do {                                                  \
    if ((call) != GPUMEM_OK) gpumem_clear_last_error(); \
  } while (0)

#define assert_last_error_contains(text)                                              \
  do {                                                                                \
    if (strstr(gpumem_last_error(), (text)) == NULL)                                  \
      fail_msg("last error '%s' does not contain '%s'", gpumem_last_error(), (text)); \
  } while (0)

/* For internal calls (gm_be_*), which record a detail but no sentence. */
#define assert_detail_contains(text)                                                  \
  do {                                                                                \
    if (strstr(gm_error_detail(), (text)) == NULL)                                    \
      fail_msg("error detail '%s' does not contain '%s'", gm_error_detail(), (text)); \
  } while (0)

/* True when GPUMEM_TEST_REQUIRE_GPU=1. */
bool gm_test_gpu_required(void);
/* True when the suite runs on the host backend. */
bool gm_test_on_host(void);

/* Run `count` tests, each wrapped in gm_test_setup/gm_test_teardown unless it
 * has its own. Returns the process exit status. If argv asks for a child
 * role ("--child ROLE FD"), runs `child(role, fd)` instead. */
typedef int (*gm_test_child_fn)(const char *role, int fd);
int gm_test_run(const char *suite, struct CMUnitTest *tests, size_t count, int argc, char **argv,
                gm_test_child_fn child);

int gm_test_setup(void **state);
int gm_test_teardown(void **state);

/* Re-initialise the library on the host backend with `options` (their
 * backend field is forced to host); 0 on success. */
int gm_test_reinit_host(gpumem_init_options options);
/* Setup for tests that need emulated devices of a given shape: when the suite
 * runs on the host backend (GPUMEM_BACKEND=host), re-initialise with
 * `options`; otherwise set up as usual and let the test skip itself. */
int gm_test_setup_host(void **state, gpumem_init_options options);
/* The matching teardown: the leak check, then finalize, so that the next
 * test starts from the environment again. */
int gm_test_teardown_host(void **state);

/* Start this test program again as a child with role `role`, handing it
 * `fd` (one end of a socketpair). Returns the child's pid. */
int gm_test_spawn_child(const char *role, int fd);
/* Wait for a child and return its exit status (or 128 + signal). */
int gm_test_wait_child(int pid);
/* Send / receive `len` bytes with an optional file descriptor (-1: none). */
bool gm_test_send(int sock, const void *data, size_t len, int fd);
bool gm_test_recv(int sock, void *data, size_t len, int *fd);

/* Start a child with `role`, send it `len` bytes of `msg` and the descriptor
 * `fd` over a socketpair, and wait for its one-byte acknowledgement and its
 * exit. Returns 0 when the child acknowledged and exited with 0, else the
 * child's exit status (or -1). The child side: gm_test_recv, then send one
 * byte with gm_test_send. */
int gm_test_exchange_with_child(const char *role, const void *msg, size_t len, int fd);

/* A log sink for gpumem_log_set_callback that keeps the last line. */
typedef struct gm_test_log {
  int count;
  gpumem_log_level level;
  char line[GPUMEM_LOG_LINE_MAX];
} gm_test_log;
void gm_test_log_capture(gpumem_log_level level, const char *line, void *user);

/* The backend's live-object counters now. */
gm_backend_counters gm_test_counters(void);

/* A backend pool attribute, asserting the call succeeds. */
uint64_t gm_test_pool_attr(gpumem_native_pool_t pool, gm_pool_attr attr);

/* Fill / check a position-dependent byte pattern. */
void gm_test_fill(void *p, size_t n, unsigned seed);
size_t gm_test_mismatches(const void *p, size_t n, unsigned seed);

/* A gate: host functions queued on a stream (gpumem_launch_host_func) wait
 * at it until the test opens it, so that work stays in flight as long as the
 * test needs (a kernel whose timing it controls). */
typedef struct gm_test_gate {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool open;
} gm_test_gate;

#define GM_TEST_GATE_INIT \
  { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false }

void gm_test_gate_open(gm_test_gate *g);
void gm_test_gate_wait(gm_test_gate *g);

#endif
