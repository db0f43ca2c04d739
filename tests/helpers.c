/* helpers.c: see helpers.h. */
#include "helpers.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

bool gm_test_gpu_required(void) {
  const char *v = getenv("GPUMEM_TEST_REQUIRE_GPU");
  return v != NULL && strcmp(v, "1") == 0;
}

bool gm_test_on_host(void) {
  return gpumem_backend() == GPUMEM_BACKEND_HOST;
}

/* Backend counters when the current test started: a test is blamed only for
 * what it leaves behind itself, not for what an earlier failed test left. */
static gm_backend_counters baseline;

int gm_test_setup(void **state) {
  (void)state;
  if (gpumem_backend() == GPUMEM_BACKEND_DEFAULT) {
    gpumem_status st = gpumem_init(NULL);
    if (st != GPUMEM_OK) {
      print_error("setup: gpumem_init failed: %s: %s\n", gpumem_status_name(st),
                  gpumem_last_error());
      return -1;
    }
  }
  gm_backend_get_counters(&baseline);
  return 0;
}

int gm_test_teardown(void **state) {
  (void)state;
  gm_fault_clear();
  gm_backend_counters now, c;
  gm_backend_get_counters(&now);
  c.reservations = now.reservations - baseline.reservations;
  c.phys_handles = now.phys_handles - baseline.phys_handles;
  c.mapped_bytes = now.mapped_bytes - baseline.mapped_bytes;
  c.streams = now.streams - baseline.streams;
  c.events = now.events - baseline.events;
  c.pools = now.pools - baseline.pools;
  c.pool_allocations = now.pool_allocations - baseline.pool_allocations;
  c.device_allocations = now.device_allocations - baseline.device_allocations;
  memset(&baseline, 0, sizeof baseline);
  if (c.reservations || c.phys_handles || c.mapped_bytes || c.streams || c.events || c.pools ||
      c.pool_allocations || c.device_allocations) {
    print_error("teardown: the test leaked backend objects: %" PRId64 " reservations, %" PRId64
                " handles, %" PRId64 " mapped bytes, %" PRId64 " streams, %" PRId64
                " events, %" PRId64 " pools, %" PRId64 " pool allocations, %" PRId64
                " device allocations\n",
                c.reservations, c.phys_handles, c.mapped_bytes, c.streams, c.events, c.pools,
                c.pool_allocations, c.device_allocations);
    return -1;
  }
  return 0;
}

int gm_test_reinit_host(gpumem_init_options options) {
  if (gpumem_finalize() != GPUMEM_OK) { /* objects left alive by a failed test */
    print_error("gpumem_finalize: %s\n", gpumem_last_error());
    return -1;
  }
  options.backend = GPUMEM_BACKEND_HOST;
  gpumem_status st = gpumem_init(&options);
  if (st != GPUMEM_OK) print_error("gpumem_init (host): %s\n", gpumem_last_error());
  return st == GPUMEM_OK ? 0 : -1;
}

int gm_test_setup_host(void **state, gpumem_init_options options) {
  const char *backend = getenv("GPUMEM_BACKEND");
  if (backend == NULL || strcmp(backend, "host") != 0) return gm_test_setup(state);
  return gm_test_reinit_host(options) == 0 ? gm_test_setup(state) : -1;
}

int gm_test_teardown_host(void **state) {
  int rc = gm_test_teardown(state);
  if (gpumem_backend() == GPUMEM_BACKEND_HOST && gpumem_finalize() != GPUMEM_OK) {
    print_error("gpumem_finalize: %s\n", gpumem_last_error());
    rc = -1;
  }
  return rc;
}

int gm_test_run(const char *suite, struct CMUnitTest *tests, size_t count, int argc, char **argv,
                gm_test_child_fn child) {
  if (argc == 4 && strcmp(argv[1], "--child") == 0 && child != NULL) {
    return child(argv[2], atoi(argv[3]));
  }
  gpumem_status st = gpumem_init(NULL);
  if (st == GPUMEM_ERR_NO_DEVICE) {
    if (!gm_test_gpu_required()) {
      printf("[  SKIPPED ] %s: %s\n", suite, gpumem_last_error());
      printf("             (GPUMEM_TEST_REQUIRE_GPU=1 makes this a failure)\n");
      return 77;
    }
    printf("[  FAILED  ] %s: a GPU is required (GPUMEM_TEST_REQUIRE_GPU=1): %s\n", suite,
           gpumem_last_error());
  } else if (st != GPUMEM_OK) {
    printf("[  FAILED  ] %s: gpumem_init: %s\n", suite, gpumem_last_error());
    return 1;
  }
  for (size_t i = 0; i < count; i++) {
    if (tests[i].setup_func == NULL) tests[i].setup_func = gm_test_setup;
    if (tests[i].teardown_func == NULL) tests[i].teardown_func = gm_test_teardown;
  }
  int failed = _cmocka_run_group_tests(suite, tests, count, NULL, NULL);
  if (gpumem_finalize() != GPUMEM_OK) { /* objects left alive */
    printf("[  FAILED  ] %s: gpumem_finalize: %s\n", suite, gpumem_last_error());
    failed++;
  }
  return failed == 0 ? 0 : 1;
}

int gm_test_spawn_child(const char *role, int fd) {
  char fdtext[16];
  snprintf(fdtext, sizeof fdtext, "%d", fd);
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n < 0) _exit(126);
    exe[n] = '\0';
    execl(exe, exe, "--child", role, fdtext, (char *)NULL);
    _exit(127);
  }
  return (int)pid;
}

int gm_test_wait_child(int pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

bool gm_test_send(int sock, const void *data, size_t len, int fd) {
  struct iovec iov = {(void *)data, len};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } u;
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
  if (fd >= 0) {
    memset(&u, 0, sizeof u);
    msg.msg_control = u.buf;
    msg.msg_controllen = sizeof u.buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  return sendmsg(sock, &msg, 0) == (ssize_t)len;
}

bool gm_test_recv(int sock, void *data, size_t len, int *fd) {
  struct iovec iov = {data, len};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } u;
  struct msghdr msg = {
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
  if (recvmsg(sock, &msg, MSG_WAITALL) != (ssize_t)len) return false;
  if (fd != NULL) {
    *fd = -1;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (c != NULL && c->cmsg_type == SCM_RIGHTS) memcpy(fd, CMSG_DATA(c), sizeof *fd);
  }
  return true;
}

int gm_test_exchange_with_child(const char *role, const void *msg, size_t len, int fd) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return -1;
  int pid = gm_test_spawn_child(role, sv[1]);
  close(sv[1]);
  char ack = 0;
  bool sent = pid > 0 && gm_test_send(sv[0], msg, len, fd);
  bool acked = sent && gm_test_recv(sv[0], &ack, 1, NULL) && ack == 1;
  close(sv[0]);
  int rc = pid > 0 ? gm_test_wait_child(pid) : -1;
  return rc != 0 ? rc : acked ? 0 : -1;
}

void gm_test_log_capture(gpumem_log_level level, const char *line, void *user) {
  gm_test_log *c = user;
  c->count++;
  c->level = level;
  snprintf(c->line, sizeof c->line, "%s", line);
}

uint64_t gm_test_pool_attr(gpumem_native_pool_t pool, gm_pool_attr attr) {
  uint64_t v = 0;
  assert_gpumem_ok(gm_be_pool_get_attr(pool, attr, &v));
  return v;
}

void gm_test_fill(void *p, size_t n, unsigned seed) {
  unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    b[i] = (unsigned char)((i * 2654435761u) >> 13 ^ seed);
}

size_t gm_test_mismatches(const void *p, size_t n, unsigned seed) {
  const unsigned char *b = p;
  size_t bad = 0;
  for (size_t i = 0; i < n; i++)
    bad += b[i] != (unsigned char)((i * 2654435761u) >> 13 ^ seed);
  return bad;
}

gm_backend_counters gm_test_counters(void) {
  gm_backend_counters c;
  gm_backend_get_counters(&c);
  return c;
}

void gm_test_gate_open(gm_test_gate *g) {
  pthread_mutex_lock(&g->lock);
  g->open = true;
  pthread_cond_broadcast(&g->cond);
  pthread_mutex_unlock(&g->lock);
}

void gm_test_gate_wait(gm_test_gate *g) {
  pthread_mutex_lock(&g->lock);
  while (!g->open)
    pthread_cond_wait(&g->cond, &g->lock);
  pthread_mutex_unlock(&g->lock);
}
