/* test_sweep.c: the failure-injection sweep (issue 15). Every scenario below
 * (a buffer's life with resizes, shrink and destroy; a pool with cache hits
 * and misses, an uncached block, trim and destroy; LOCAL and INTERLEAVE
 * arenas over 4 emulated devices with growths and destroy; each allocator of
 * gpumem_allocator_list through the interface; a buffer sent and received
 * over a socket) is first run clean, counting the calls it makes to each
 * backend operation (gm_backend_calls). Then, for every operation and every
 * call number N it reached, a forked child initialises the library afresh,
 * makes the Nth call of that operation fail (gm_fault_inject, nothing
 * reaches the backend) and runs the scenario. Each step of a scenario goes
 * through STEP(): when a step fails, its status must come with a sentence
 * (gpumem_last_error), the objects must be unchanged and usable (the
 * scenario's verify(): sizes, contents read back, gpumem_arena_check), and
 * the same step, tried again, must succeed. A failure absorbed inside the
 * library (a retry on another stream) is fine: the step succeeds. At the end
 * every object is destroyed and the backend's live counters must be back to
 * zero, and gpumem_finalize must succeed; under ASan, LeakSanitizer runs at
 * the child's exit and a leak fails the case.
 *
 * Sampling: an operation a scenario calls more than SAMPLE_ABOVE times is
 * tried at call numbers 1, 1 + k, 1 + 2k, ... and its last call, with k
 * chosen so that about SAMPLE_ABOVE numbers are tried; the counts (cases
 * run, passed, sampled away) are printed per scenario. The host backend
 * only: the injection is the backend seam's, the same on a GPU, and each
 * case reinitialises the library, which a GPU run would pay in seconds. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

#define SAMPLE_ABOVE  50 /* call numbers tried per operation, at most (about) */
#define CASE_TIMEOUT  30 /* seconds a case may take before it counts as hung */
#define DEVICES       4
#define MAX_LIVE      16 /* blocks a scenario holds at once */
#define EXIT_FAILED   1
#define EXIT_NOT_USED 3 /* the injected call was never reached */

/* ---- the child's side: steps, failures, checks ---- */

static void (*verify)(void); /* the scenario's check that its objects are intact */
static int failed_steps;     /* steps that failed in this run */

static _Noreturn void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "    ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  exit(EXIT_FAILED);
}

static void failed_step(gpumem_status st, const char *what, int line) {
  failed_steps++;
  if (failed_steps > 1)
    die("line %d: %s failed a second time (%s)", line, what, gpumem_status_name(st));
  if (gpumem_last_error()[0] == '\0')
    die("line %d: %s returned %s without a sentence", line, what, gpumem_status_name(st));
  if (verify != NULL) verify();
}

/* Run `call`; if it fails, check the failure and run it again. */
#define STEP(call)                                                                   \
  do {                                                                               \
    gpumem_status s_ = (call);                                                       \
    if (s_ != GPUMEM_OK) {                                                           \
      failed_step(s_, #call, __LINE__);                                              \
      s_ = (call);                                                                   \
      if (s_ != GPUMEM_OK)                                                           \
        die("line %d: retrying %s: %s: %s", __LINE__, #call, gpumem_status_name(s_), \
            gpumem_last_error());                                                    \
    }                                                                                \
  } while (0)

/* A check inside verify(): it must hold whatever failed. */
#define HOLDS(cond, ...)           \
  do {                             \
    if (!(cond)) die(__VA_ARGS__); \
  } while (0)

static size_t gran;

/* Write the pattern `seed` to n device bytes at p (steps). */
static void fill(void *p, size_t n, unsigned seed) {
  unsigned char *host = malloc(n);
  gm_test_fill(host, n, seed);
  STEP(gpumem_memcpy(p, host, n, NULL));
  STEP(gpumem_stream_synchronize(NULL));
  free(host);
}

/* Whether n device bytes at p hold the pattern (inside verify: no steps). */
static bool intact(const void *p, size_t n, unsigned seed) {
  unsigned char *host = malloc(n);
  gpumem_status st = gpumem_memcpy(host, p, n, NULL);
  if (st == GPUMEM_OK) st = gpumem_stream_synchronize(NULL);
  if (st != GPUMEM_OK) die("reading back: %s", gpumem_last_error());
  bool ok = gm_test_mismatches(host, n, seed) == 0;
  free(host);
  return ok;
}

/* Check n device bytes at p in a scenario (steps: reading may fail too). */
static void expect_intact(const void *p, size_t n, unsigned seed) {
  unsigned char *host = malloc(n);
  STEP(gpumem_memcpy(host, p, n, NULL));
  STEP(gpumem_stream_synchronize(NULL));
  HOLDS(gm_test_mismatches(host, n, seed) == 0, "contents differ");
  free(host);
}

/* ---- scenario: a buffer ---- */

static gpumem_buffer_t *sb;
static size_t sb_size, sb_valid; /* the size; the bytes holding the pattern */
static bool sb_dying; /* in destroy: a failure may leave a smaller buffer (of the same data) */

static void verify_buffer(void) {
  if (sb == NULL) return;
  if (sb_dying) {
    size_t size = gpumem_buffer_size(sb);
    HOLDS(size <= gpumem_buffer_capacity(sb), "a failed destroy left the size past the capacity");
    HOLDS(intact(gpumem_buffer_data(sb), sb_valid < size ? sb_valid : size, 11),
          "buffer contents changed");
    return;
  }
  HOLDS(gpumem_buffer_size(sb) == sb_size, "buffer size %zu, expected %zu", gpumem_buffer_size(sb),
        sb_size);
  HOLDS(gpumem_buffer_capacity(sb) >= sb_size, "capacity below the size");
  HOLDS(intact(gpumem_buffer_data(sb), sb_valid, 11), "buffer contents changed");
}

static void resize(size_t n) {
  STEP(gpumem_buffer_resize(sb, n));
  sb_size = n;
  if (sb_valid > n) sb_valid = n;
}

static void scenario_buffer(int arg) {
  (void)arg;
  verify = verify_buffer;
  gpumem_buffer_config c = GPUMEM_BUFFER_CONFIG_INIT;
  c.max_size = 64 * gran;
  int peers[] = {0, 1};
  c.access_devices = peers;
  c.access_count = 2;
  STEP(gpumem_buffer_create(&c, &sb));
  resize(gran);
  resize(3 * gran);
  fill(gpumem_buffer_data(sb), 3 * gran, 11);
  sb_valid = 3 * gran;
  STEP(gpumem_buffer_reserve(sb, 6 * gran));
  resize(2 * gran);
  STEP(gpumem_buffer_shrink_to_fit(sb, NULL));
  resize(5 * gran);
  resize(gran);
  STEP(gpumem_buffer_shrink_to_fit(sb, NULL));
  resize(4 * gran);
  sb_dying = true;
  STEP(gpumem_buffer_destroy(sb));
  sb = NULL;
}

/* ---- scenario: a pool ---- */

static gpumem_pool_t *sp;
static void *sp_live[MAX_LIVE];
static size_t sp_size[MAX_LIVE];

static void verify_pool(void) {
  for (int i = 0; sp != NULL && i < MAX_LIVE; i++)
    if (sp_live[i] != NULL && sp_size[i] != 0)
      HOLDS(intact(sp_live[i], sp_size[i], 20 + i), "pool block %d changed", i);
}

static void pool_get(int i, size_t size, gpumem_stream_t s) {
  STEP(gpumem_pool_alloc(sp, size, s, &sp_live[i]));
  sp_size[i] = 0; /* checked once filled */
  fill(sp_live[i], size, 20 + i);
  sp_size[i] = size;
}

static void pool_put(int i, gpumem_stream_t s) {
  STEP(gpumem_pool_free(sp, sp_live[i], s));
  sp_live[i] = NULL;
  sp_size[i] = 0;
}

static void scenario_pool(int cached) {
  verify = verify_pool;
  gpumem_pool_config c = GPUMEM_POOL_CONFIG_INIT;
  c.cache = cached != 0;
  c.cache_max_bytes = 8 << 10; /* small: frees past it miss the cache */
  STEP(gpumem_pool_create(&c, &sp));
  gpumem_stream_t s = NULL;
  STEP(gpumem_stream_create(0, &s));
  for (int i = 0; i < 6; i++)
    pool_get(i, 1024 << (i % 3), i % 2 ? s : NULL);
  pool_get(6, 2 << 20, s); /* large: never cached */
  for (int i = 0; i < 6; i += 2)
    pool_put(i, i % 2 ? s : NULL);
  pool_put(6, s);
  pool_get(0, 1024, NULL); /* a hit where cached */
  STEP(gpumem_pool_trim(sp, 0));
  for (int i = 0; i < 6; i++)
    if (sp_live[i] != NULL) pool_put(i, i % 2 ? s : NULL);
  STEP(gpumem_stream_synchronize(s));
  STEP(gpumem_stream_destroy(s));
  STEP(gpumem_pool_destroy(sp));
  sp = NULL;
}

/* ---- scenario: an arena ---- */

static gpumem_arena_t *sa;
static void *sa_live[MAX_LIVE];
static size_t sa_size[MAX_LIVE];

static bool sa_dying; /* in destroy: a failure leaves it half destroyed, as documented */

static void verify_arena(void) {
  if (sa == NULL) return;
  char why[256];
  if (sa_dying && gpumem_arena_check(sa, why, sizeof why) == GPUMEM_ERR_INVALID_ARGUMENT &&
      strstr(gpumem_last_error(), "half destroyed") != NULL)
    return; /* a failed unmap or release: only destroy is allowed now, as documented */
  HOLDS(gpumem_arena_check(sa, why, sizeof why) == GPUMEM_OK, "arena check: %s",
        gpumem_last_error());
  for (int i = 0; i < MAX_LIVE; i++)
    if (sa_live[i] != NULL && sa_size[i] != 0)
      HOLDS(intact(sa_live[i], sa_size[i], 40 + i), "arena block %d changed", i);
}

static void scenario_arena(int placement) {
  verify = verify_arena;
  int devs[DEVICES] = {0, 1, 2, 3};
  gpumem_arena_config c = GPUMEM_ARENA_CONFIG_INIT;
  c.devices = devs;
  c.device_count = DEVICES;
  c.placement = (gpumem_placement)placement;
  c.chunk_size = 4 * gran;
  c.max_size = 256 * gran;
  STEP(gpumem_arena_create(&c, &sa));
  for (int i = 0; i < 8; i++) {
    int dev = placement == GPUMEM_PLACE_LOCAL ? i % DEVICES : GPUMEM_ARENA_ANY_DEVICE;
    size_t size = (size_t)(i % 3 + 1) * 3 * gran; /* past a chunk: growths */
    STEP(gpumem_arena_alloc(sa, size, 0, dev, &sa_live[i]));
    fill(sa_live[i], size, 40 + i);
    sa_size[i] = size; /* checked once filled */
  }
  for (int i = 0; i < 8; i += 3) {
    STEP(gpumem_arena_free(sa, sa_live[i]));
    sa_live[i] = NULL;
    sa_size[i] = 0;
  }
  sa_dying = true;
  STEP(gpumem_arena_destroy(sa));
  sa = NULL;
}

/* ---- scenario: an arena whose free pages move ---- */

/* Physical memory capped at 16 granules: after frees, a larger block is
 * served by unmapping free pages and mapping them at its place (reclaim),
 * then a smaller one by creating pages again, then one stitched from the
 * holes the moves left and a free block between them; every driver step of
 * a move (unmap, map, access) fails in turn. */
static void scenario_arena_moves(int placement) {
  verify = verify_arena;
  int devs[DEVICES] = {0, 1, 2, 3};
  gpumem_arena_config c = GPUMEM_ARENA_CONFIG_INIT;
  c.devices = devs;
  c.device_count = placement == GPUMEM_PLACE_LOCAL ? 1 : DEVICES;
  c.placement = (gpumem_placement)placement;
  c.chunk_size = placement == GPUMEM_PLACE_LOCAL ? gran : DEVICES * gran;
  c.max_size = 16 * gran;
  c.shards = 1;
  STEP(gpumem_arena_create(&c, &sa));
  int dev = placement == GPUMEM_PLACE_LOCAL ? 0 : GPUMEM_ARENA_ANY_DEVICE;
  for (int i = 0; i < 4; i++) {
    size_t size = 3 * gran;
    STEP(gpumem_arena_alloc(sa, size, 0, dev, &sa_live[i]));
    fill(sa_live[i], size, 40 + i);
    sa_size[i] = size;
  }
  for (int i = 0; i < 4; i += 2) {
    STEP(gpumem_arena_free(sa, sa_live[i]));
    sa_live[i] = NULL;
    sa_size[i] = 0;
  }
  STEP(gpumem_arena_alloc(sa, 7 * gran, 0, dev, &sa_live[4])); /* moves free pages */
  fill(sa_live[4], 7 * gran, 44);
  sa_size[4] = 7 * gran;
  STEP(gpumem_arena_alloc(sa, gran, 0, dev, &sa_live[5]));
  fill(sa_live[5], gran, 45);
  sa_size[5] = gran;
  STEP(gpumem_arena_free(sa, sa_live[1]));
  sa_live[1] = NULL;
  sa_size[1] = 0;
  /* stitched: the holes the moves left and the free block between them */
  STEP(gpumem_arena_alloc(sa, 5 * gran, 0, dev, &sa_live[6]));
  fill(sa_live[6], 5 * gran, 46);
  sa_size[6] = 5 * gran;
  sa_dying = true;
  STEP(gpumem_arena_destroy(sa));
  sa = NULL;
}

/* ---- scenario: an allocator of the registry ---- */

static gpumem_allocator sl;
static bool sl_made;
static void *sl_live[MAX_LIVE];
static bool sl_filled[MAX_LIVE];

static void verify_allocator(void) {
  for (int i = 0; sl_made && i < MAX_LIVE; i++)
    if (sl_live[i] != NULL && sl_filled[i])
      HOLDS(intact(sl_live[i], 4096, 60 + i), "block %d changed", i);
}

static gpumem_status trim_allocator(void) {
  return sl.trim != NULL ? sl.trim(sl.ctx) : GPUMEM_OK;
}

static void scenario_allocator(int index) {
  verify = verify_allocator;
  gpumem_allocator_kind kinds[16];
  size_t n = gpumem_allocator_list(kinds, 16);
  HOLDS((size_t)index < n, "no allocator %d", index);
  sl = (gpumem_allocator)GPUMEM_ALLOCATOR_INIT;
  STEP(gpumem_allocator_create(kinds[index].name, 0, &sl));
  sl_made = true;
  for (int i = 0; i < 6; i++) {
    STEP(sl.alloc(sl.ctx, 4096, NULL, &sl_live[i]));
    fill(sl_live[i], 4096, 60 + i);
    sl_filled[i] = true;
  }
  for (int i = 0; i < 6; i += 2) {
    STEP(sl.free(sl.ctx, sl_live[i], 4096, NULL));
    sl_live[i] = NULL;
    sl_filled[i] = false;
  }
  STEP(trim_allocator());
  for (int i = 1; i < 6; i += 2) {
    STEP(sl.free(sl.ctx, sl_live[i], 4096, NULL));
    sl_live[i] = NULL;
    sl_filled[i] = false;
  }
  STEP(gpumem_stream_synchronize(NULL));
  sl_made = false;
  STEP(gpumem_allocator_destroy(&sl));
}

/* ---- scenario: a buffer sent and received ---- */

static gpumem_buffer_t *si;

static bool si_filled;

static void verify_ipc(void) {
  if (si == NULL || !si_filled) return;
  size_t n = gpumem_buffer_size(si); /* a failed destroy may leave less (of the same data) */
  HOLDS(intact(gpumem_buffer_data(si), n < 2 * gran ? n : 2 * gran, 80), "sent buffer changed");
}

/* Send `b` over a fresh socket pair and receive it (one step: a failed
 * send leaves half a message, which a retry must not read). */
static gpumem_status send_and_receive(gpumem_buffer_t *b, gpumem_buffer_t **out) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) die("socketpair failed");
  gpumem_status st = gpumem_buffer_send(b, sv[0]);
  close(sv[0]);
  if (st == GPUMEM_OK) st = gpumem_buffer_receive(sv[1], 1, out);
  close(sv[1]);
  return st;
}

static void scenario_ipc(int arg) {
  (void)arg;
  verify = verify_ipc;
  gpumem_buffer_config c = GPUMEM_BUFFER_CONFIG_INIT;
  c.max_size = 16 * gran;
  c.handle_type = GPUMEM_HANDLE_POSIX_FD;
  STEP(gpumem_buffer_create(&c, &si));
  STEP(gpumem_buffer_resize(si, 2 * gran));
  fill(gpumem_buffer_data(si), 2 * gran, 80);
  si_filled = true;
  gpumem_buffer_t *r = NULL;
  STEP(send_and_receive(si, &r));
  expect_intact(gpumem_buffer_data(r), 2 * gran, 80);
  STEP(gpumem_buffer_destroy(r));
  STEP(gpumem_buffer_destroy(si));
  si = NULL;
}

/* ---- the parent's side: count, then fork a case per call ---- */

typedef struct scenario {
  const char *name;
  void (*run)(int arg);
  int arg;
} scenario;

static gpumem_status start_library(void) {
  gpumem_init_options o = GPUMEM_INIT_OPTIONS_INIT;
  o.backend = GPUMEM_BACKEND_HOST;
  o.host_devices = DEVICES;
  o.host_capacity = (size_t)256 << 20;
  o.host_granularity = (size_t)64 << 10;
  o.host_peers = "all";
  gpumem_status st = gpumem_init(&o);
  if (st != GPUMEM_OK) return st;
  gpumem_phys_props p = GPUMEM_PHYS_PROPS_INIT;
  return gpumem_vmm_granularity(&p, false, &gran);
}

/* In a child: run the scenario (with `op`'s `nth` call failing, unless op
 * is GM_OP_COUNT), check that everything is gone, write the call counts to
 * `out` (>= 0), and exit. */
static _Noreturn void run_case(const scenario *sc, gm_op op, uint64_t nth, int out) {
  alarm(CASE_TIMEOUT);
  if (start_library() != GPUMEM_OK) die("gpumem_init: %s", gpumem_last_error());
  uint64_t before[GM_OP_COUNT];
  for (int i = 0; i < GM_OP_COUNT; i++)
    before[i] = gm_backend_calls((gm_op)i);
  if (op != GM_OP_COUNT) gm_fault_inject(op, nth, GPUMEM_ERR_INJECTED);
  sc->run(sc->arg);
  uint64_t calls[GM_OP_COUNT];
  for (int i = 0; i < GM_OP_COUNT; i++)
    calls[i] = gm_backend_calls((gm_op)i) - before[i];
  gm_fault_clear();
  gm_backend_counters c;
  gm_backend_get_counters(&c);
  if (c.reservations || c.phys_handles || c.mapped_bytes || c.streams || c.events || c.pools ||
      c.pool_allocations || c.device_allocations)
    die("left alive: %lld reservations, %lld handles, %lld mapped bytes, %lld streams, %lld "
        "events, %lld pools, %lld pool allocations, %lld device allocations",
        (long long)c.reservations, (long long)c.phys_handles, (long long)c.mapped_bytes,
        (long long)c.streams, (long long)c.events, (long long)c.pools,
        (long long)c.pool_allocations, (long long)c.device_allocations);
  if (gpumem_finalize() != GPUMEM_OK) die("gpumem_finalize: %s", gpumem_last_error());
  if (op != GM_OP_COUNT && calls[op] < nth) exit(EXIT_NOT_USED);
  if (out >= 0 && write(out, calls, sizeof calls) != (ssize_t)sizeof calls) die("write failed");
  exit(0); /* exit, not _exit: LeakSanitizer checks the child */
}

static int wait_for(pid_t pid) {
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Sweep one scenario; the number of cases that failed. */
static unsigned sweep(const scenario *sc) {
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    run_case(sc, GM_OP_COUNT, 0, fds[1]);
  }
  close(fds[1]);
  uint64_t calls[GM_OP_COUNT] = {0};
  ssize_t got = read(fds[0], calls, sizeof calls);
  close(fds[0]);
  int rc = wait_for(pid);
  if (rc != 0 || got != (ssize_t)sizeof calls)
    fail_msg("%s: the clean run failed (%d)", sc->name, rc);
  unsigned run = 0, passed = 0, sampled = 0, unused = 0;
  for (int op = 0; op < GM_OP_COUNT; op++) {
    uint64_t n = calls[op];
    uint64_t k = n > SAMPLE_ABOVE ? (n + SAMPLE_ABOVE - 1) / SAMPLE_ABOVE : 1;
    for (uint64_t nth = 1; nth <= n; nth++) {
      if (k > 1 && (nth - 1) % k != 0 && nth != n) {
        sampled++;
        continue;
      }
      fflush(NULL);
      pid_t child = fork();
      assert_true(child >= 0);
      if (child == 0) run_case(sc, (gm_op)op, nth, -1);
      rc = wait_for(child);
      run++;
      if (rc == 0) {
        passed++;
      } else if (rc == EXIT_NOT_USED) {
        unused++; /* the clean run reached it; an absorbed failure can shorten a run */
        passed++;
      } else {
        printf("    FAILED %s: %s call %llu (exit %d)\n", sc->name, gm_op_name((gm_op)op),
               (unsigned long long)nth, rc);
      }
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("[  SWEEP   ] %-22s cases run %4u, passed %4u, sampled away %4u, not reached %u, %.1f s\n",
         sc->name, run, passed, sampled, unused, s);
  fflush(stdout);
  return run - passed;
}

/* The parent holds no library state while it forks: each child starts its
 * own (the host backend's stream threads do not survive a fork). */
static int parent_setup(void **state) {
  (void)state;
  return gpumem_finalize() == GPUMEM_OK ? 0 : -1;
}

static int parent_teardown(void **state) {
  (void)state;
  return gpumem_init(NULL) == GPUMEM_OK ? 0 : -1;
}

static const scenario scenarios[] = {
    {"buffer", scenario_buffer, 0},
    {"pool (cached)", scenario_pool, 1},
    {"pool (no cache)", scenario_pool, 0},
    {"arena LOCAL", scenario_arena, GPUMEM_PLACE_LOCAL},
    {"arena INTERLEAVE", scenario_arena, GPUMEM_PLACE_INTERLEAVE},
    {"arena LOCAL, pages moved", scenario_arena_moves, GPUMEM_PLACE_LOCAL},
    {"arena INTERLEAVE, pages moved", scenario_arena_moves, GPUMEM_PLACE_INTERLEAVE},
    {"buffer send/receive", scenario_ipc, 0},
};

static void test_sweep_objects(void **state) {
  (void)state;
  unsigned failed = 0; /* every scenario runs, whatever failed before */
  for (size_t i = 0; i < GM_ARRAY_SIZE(scenarios); i++)
    failed += sweep(&scenarios[i]);
  if (failed != 0) fail_msg("%u cases failed", failed);
}

static void test_sweep_allocators(void **state) {
  (void)state;
  gpumem_allocator_kind kinds[16];
  size_t n = gpumem_allocator_list(kinds, 16);
  unsigned failed = 0;
  for (size_t i = 0; i < n && i < 16; i++) {
    char name[64];
    snprintf(name, sizeof name, "allocator %s", kinds[i].name);
    scenario sc = {name, scenario_allocator, (int)i};
    failed += sweep(&sc);
  }
  if (failed != 0) fail_msg("%u cases failed", failed);
}

int main(int argc, char **argv) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_sweep_objects, parent_setup, parent_teardown),
      cmocka_unit_test_setup_teardown(test_sweep_allocators, parent_setup, parent_teardown),
  };
  return gm_test_run("sweep", tests, GM_ARRAY_SIZE(tests), argc, argv, NULL);
}
