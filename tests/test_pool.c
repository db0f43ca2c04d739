/* test_pool.c: the stream-ordered pool and its cache. Same-stream reuse
 * comes from the cache and other streams do not get the block; frees from
 * other threads are cached for the freeing thread; foreign pointers and
 * double frees are refused; trim and the cache bound give memory back; out
 * of memory flushes the caches and retries once; a 16-thread stress run with
 * cross-thread frees keeps every block's contents (also under TSan); another
 * process reads and writes a pool allocation through IPC.
 *
 * The GPU-only ordering test (a kernel still writing on stream A while B
 * allocates) needs a kernel and a GPU; on the host backend streams complete
 * at once, so here the ordering rule is checked structurally: the cache never
 * hands a block freed on one stream to another. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "helpers.h"

static gpumem_pool_t *make_pool(bool cache, size_t cache_max_bytes) {
  gpumem_pool_config c = GPUMEM_POOL_CONFIG_INIT;
  c.cache = cache;
  c.cache_max_bytes = cache_max_bytes;
  gpumem_pool_t *p = NULL;
  assert_gpumem_ok(gpumem_pool_create(&c, &p));
  return p;
}

static gpumem_pool_stats stats_of(gpumem_pool_t *p) {
  gpumem_pool_stats s;
  assert_gpumem_ok(gpumem_pool_get_stats(p, &s));
  return s;
}

static void test_same_stream_reuse_comes_from_the_cache(void **state) {
  (void)state;
  gpumem_pool_t *p = make_pool(true, 0);
  gpumem_stream_t s1 = NULL, s2 = NULL;
  assert_gpumem_ok(gpumem_stream_create(0, &s1));
  assert_gpumem_ok(gpumem_stream_create(0, &s2));
  void *a = NULL, *b = NULL, *c = NULL;
  assert_gpumem_ok(gpumem_pool_alloc(p, 1000, s1, &a));
  assert_gpumem_ok(gpumem_memset(a, 1, 1000, s1));
  assert_gpumem_ok(gpumem_pool_free(p, a, s1));
  gpumem_pool_stats st = stats_of(p);
  assert_int_equal(st.cached_bytes, 1024); /* 1000 B is served from the 1 KiB class */
  assert_int_equal(st.live_bytes, 0);
  /* Another stream must not get the block freed on s1 from the cache. */
  assert_gpumem_ok(gpumem_pool_alloc(p, 900, s2, &b));
  assert_ptr_not_equal(b, a);
  /* The same stream gets it back at once, without the CUDA pool. */
  assert_gpumem_ok(gpumem_pool_alloc(p, 900, s1, &c));
  assert_ptr_equal(c, a);
  st = stats_of(p);
  assert_int_equal(st.cache_hits, 1);
  assert_int_equal(st.cache_misses, 2);
  assert_int_equal(st.allocs, 3);
  assert_int_equal(st.frees, 1);
  assert_int_equal(st.live_bytes, 2048);
  assert_gpumem_ok(gpumem_pool_free(p, b, s2));
  assert_gpumem_ok(gpumem_pool_free(p, c, s1));
  assert_gpumem_ok(gpumem_stream_synchronize(s1));
  assert_gpumem_ok(gpumem_stream_synchronize(s2));
  assert_gpumem_ok(gpumem_pool_destroy(p));
  assert_gpumem_ok(gpumem_stream_destroy(s1));
  assert_gpumem_ok(gpumem_stream_destroy(s2));
}

static void test_large_and_uncached_requests_bypass(void **state) {
  (void)state;
  gpumem_pool_t *p = make_pool(true, 0);
  void *a = NULL;
  assert_gpumem_ok(gpumem_pool_alloc(p, (2 << 20) + 1, NULL, &a)); /* above cache_max_size */
  assert_gpumem_ok(gpumem_pool_free(p, a, NULL));
  assert_int_equal(stats_of(p).cached_bytes, 0);
  assert_gpumem_ok(gpumem_pool_destroy(p));
  p = make_pool(false, 0);
  for (int i = 0; i < 3; i++) {
    assert_gpumem_ok(gpumem_pool_alloc(p, 4096, NULL, &a));
    assert_gpumem_ok(gpumem_pool_free(p, a, NULL));
  }
  gpumem_pool_stats st = stats_of(p);
  assert_int_equal(st.cache_hits, 0);
  assert_int_equal(st.cached_bytes, 0);
  assert_int_equal(st.allocs, 3);
  assert_gpumem_ok(gpumem_stream_synchronize(NULL));
  assert_gpumem_ok(gpumem_pool_destroy(p));
}

typedef struct handoff {
  gpumem_pool_t *pool;
  void *ptr;
  gpumem_stream_t stream;
  void *again;
} handoff;

static void *free_and_reuse(void *arg) {
  handoff *h = arg;
  if (gpumem_pool_free(h->pool, h->ptr, h->stream) != GPUMEM_OK) return NULL;
  gpumem_pool_alloc(h->pool, 3000, h->stream, &h->again);
  return NULL;
}

static void test_cross_thread_free(void **state) {
  (void)state;
  gpumem_pool_t *p = make_pool(true, 0);
  gpumem_stream_t s = NULL;
  assert_gpumem_ok(gpumem_stream_create(0, &s));
  handoff h = {p, NULL, s, NULL};
  assert_gpumem_ok(gpumem_pool_alloc(p, 3000, s, &h.ptr));
  pthread_t t;
  pthread_create(&t, NULL, free_and_reuse, &h);
  pthread_join(t, NULL);
  assert_ptr_equal(h.again, h.ptr); /* the freeing thread's cache served it */
  assert_gpumem_status(gpumem_pool_free(p, h.ptr, s), GPUMEM_OK);
  assert_gpumem_ok(gpumem_stream_synchronize(s));
  assert_gpumem_ok(gpumem_pool_destroy(p));
  assert_gpumem_ok(gpumem_stream_destroy(s));
}

static void test_bad_frees_and_input(void **state) {
  (void)state;
  gpumem_pool_t *p = make_pool(true, 0);
  void *a = NULL;
  assert_gpumem_ok(gpumem_pool_alloc(p, 100, NULL, &a));
  assert_gpumem_ok(gpumem_pool_free(p, a, NULL));
  assert_gpumem_status(gpumem_pool_free(p, a, NULL), GPUMEM_ERR_DOUBLE_FREE);
  assert_last_error_contains("was already freed");
  int local = 0;
  assert_gpumem_status(gpumem_pool_free(p, &local, NULL), GPUMEM_ERR_INVALID_POINTER);
  assert_last_error_contains("was not allocated from this pool");
  assert_gpumem_status(gpumem_pool_free(p, NULL, NULL), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_pool_alloc(p, 0, NULL, &a), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_pool_alloc(p, 16, NULL, NULL), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_gpumem_status(gpumem_pool_alloc(NULL, 16, NULL, &a), GPUMEM_ERR_INVALID_ARGUMENT);
  gpumem_status st = gpumem_pool_alloc(p, SIZE_MAX - 4096, NULL, &a);
  assert_true(st == GPUMEM_ERR_OUT_OF_MEMORY || st == GPUMEM_ERR_INVALID_ARGUMENT);
  /* Another pool's pointer is foreign here. */
  gpumem_pool_t *q = make_pool(true, 0);
  void *b = NULL;
  assert_gpumem_ok(gpumem_pool_alloc(q, 100, NULL, &b));
  assert_gpumem_status(gpumem_pool_free(p, b, NULL), GPUMEM_ERR_INVALID_POINTER);
  assert_gpumem_status(gpumem_pool_destroy(q), GPUMEM_ERR_BUSY);
  assert_last_error_contains("still has 256 bytes allocated");
  assert_gpumem_ok(gpumem_pool_free(q, b, NULL));
  assert_gpumem_ok(gpumem_pool_destroy(q));
  assert_gpumem_ok(gpumem_pool_destroy(p));
  assert_gpumem_ok(gpumem_pool_destroy(NULL));
  /* configuration */
  gpumem_pool_config c = GPUMEM_POOL_CONFIG_INIT;
  c.handle_type = GPUMEM_HANDLE_FABRIC;
  assert_gpumem_status(gpumem_pool_create(&c, &p), GPUMEM_ERR_INVALID_ARGUMENT);
  c.handle_type = GPUMEM_HANDLE_NONE;
  c.use_default_pool = true;
  c.max_size = 1 << 30;
  assert_gpumem_status(gpumem_pool_create(&c, &p), GPUMEM_ERR_INVALID_ARGUMENT);
  c = (gpumem_pool_config)GPUMEM_POOL_CONFIG_INIT;
  c.device = 77;
  assert_gpumem_status(gpumem_pool_create(&c, &p), GPUMEM_ERR_INVALID_DEVICE);
  assert_gpumem_status(gpumem_pool_create(NULL, &p), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_null(gpumem_pool_native(NULL));
}

static void test_stream_of_another_device(void **state) {
  (void)state;
  int count = 0;
  assert_gpumem_ok(gpumem_device_count(&count));
  if (count < 2) skip();
  gpumem_pool_t *p = make_pool(true, 0);
  gpumem_stream_t other = NULL;
  assert_gpumem_ok(gpumem_stream_create(1, &other));
  void *a = NULL;
  gpumem_status st = gpumem_pool_alloc(p, 4096, other, &a);
  assert_true(st != GPUMEM_OK);
  assert_null(a);
  assert_gpumem_ok(gpumem_stream_destroy(other));
  assert_gpumem_ok(gpumem_pool_destroy(p));
}

static void test_trim_and_cache_bound(void **state) {
  (void)state;
  gpumem_pool_t *p = make_pool(true, 64 << 10);
  void *blocks[100];
  for (int i = 0; i < 100; i++)
    assert_gpumem_ok(gpumem_pool_alloc(p, 4096, NULL, &blocks[i]));
  for (int i = 0; i < 100; i++)
    assert_gpumem_ok(gpumem_pool_free(p, blocks[i], NULL));
  gpumem_pool_stats st = stats_of(p);
  assert_int_equal(st.cached_bytes, 64 << 10); /* 16 blocks kept, the rest returned */
  assert_int_equal(st.frees, 100);
  assert_gpumem_ok(gpumem_pool_trim(p, 0));
  st = stats_of(p);
  assert_int_equal(st.cached_bytes, 0);
  assert_int_equal(st.reserved_current, 0);
  assert_true(st.reserved_high > 0);
  assert_gpumem_ok(gpumem_pool_destroy(p));
}

/* One emulated device of 16 MiB (host runs only). */
static int small_device(void **state) {
  gpumem_init_options o = GPUMEM_INIT_OPTIONS_INIT;
  o.host_devices = 1;
  o.host_capacity = 16 << 20;
  return gm_test_setup_host(state, o);
}

static void test_out_of_memory_flushes_and_retries(void **state) {
  (void)state;
  if (!gm_test_on_host()) skip(); /* needs a 16 MiB device */
  gpumem_pool_t *p = make_pool(true, 0);
  void *blocks[8], *big = NULL, *more = NULL;
  for (int i = 0; i < 8; i++)
    assert_gpumem_ok(gpumem_pool_alloc(p, 1 << 20, NULL, &blocks[i]));
  for (int i = 0; i < 8; i++)
    assert_gpumem_ok(gpumem_pool_free(p, blocks[i], NULL));
  assert_int_equal(stats_of(p).cached_bytes, 8 << 20);
  /* 12 MiB fits only once the cache gives its 8 MiB back. */
  assert_gpumem_ok(gpumem_pool_alloc(p, 12 << 20, NULL, &big));
  assert_int_equal(stats_of(p).cached_bytes, 0);
  assert_gpumem_status(gpumem_pool_alloc(p, 8 << 20, NULL, &more), GPUMEM_ERR_OUT_OF_MEMORY);
  assert_last_error_contains("cannot allocate 8388608 bytes on device 0");
  assert_last_error_contains("the caches were flushed");
  assert_gpumem_ok(gpumem_pool_free(p, big, NULL));
  assert_gpumem_ok(gpumem_pool_destroy(p));
}

#define STRESS_THREADS 16
#define STRESS_ITERS   400

typedef struct stress {
  gpumem_pool_t *pool;
  int id;
  int errors;
  pthread_mutex_t *exchange_lock;
  void **exchange; /* one slot: a block handed to whoever takes it */
  size_t *exchange_size;
} stress;

static void *stress_main(void *arg) {
  stress *s = arg;
  gpumem_stream_t stream = NULL;
  if (gpumem_stream_create(0, &stream) != GPUMEM_OK) {
    s->errors++;
    return NULL;
  }
  unsigned seed = (unsigned)s->id * 2654435761u + 1;
  void *live[8] = {0};
  size_t sizes[8] = {0};
  unsigned char check[64];
  for (int i = 0; i < STRESS_ITERS; i++) {
    seed = seed * 1103515245u + 12345u;
    int k = (int)((seed >> 8) % 8);
    if (live[k] != NULL) { /* check the pattern, then free on our stream */
      if (gpumem_memcpy(check, live[k], sizeof check, stream) != GPUMEM_OK ||
          gpumem_stream_synchronize(stream) != GPUMEM_OK)
        s->errors++;
      for (size_t b = 0; b < sizeof check; b++)
        s->errors += check[b] != (unsigned char)s->id;
      if (gpumem_pool_free(s->pool, live[k], stream) != GPUMEM_OK) s->errors++;
      live[k] = NULL;
    }
    sizes[k] = 64 + (seed >> 12) % (64 << 10);
    if (gpumem_pool_alloc(s->pool, sizes[k], stream, &live[k]) != GPUMEM_OK ||
        gpumem_memset(live[k], s->id, sizes[k], stream) != GPUMEM_OK) {
      s->errors++;
      live[k] = NULL;
    }
    if (i % 16 == 0) { /* hand a block to another thread, free one handed to us */
      pthread_mutex_lock(s->exchange_lock);
      void *theirs = *s->exchange;
      *s->exchange = live[k];
      live[k] = NULL;
      pthread_mutex_unlock(s->exchange_lock);
      if (theirs != NULL && gpumem_pool_free(s->pool, theirs, stream) != GPUMEM_OK) s->errors++;
    }
  }
  for (int k = 0; k < 8; k++) {
    if (live[k] != NULL && gpumem_pool_free(s->pool, live[k], stream) != GPUMEM_OK) s->errors++;
  }
  if (gpumem_stream_synchronize(stream) != GPUMEM_OK) s->errors++;
  gpumem_stream_destroy(stream);
  return NULL;
}

static void test_sixteen_threads(void **state) {
  (void)state;
  gpumem_pool_t *p = make_pool(true, 0);
  pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
  void *exchange = NULL;
  size_t exchange_size = 0;
  stress s[STRESS_THREADS];
  pthread_t t[STRESS_THREADS];
  for (int i = 0; i < STRESS_THREADS; i++) {
    s[i] = (stress){p, i + 1, 0, &lock, &exchange, &exchange_size};
    pthread_create(&t[i], NULL, stress_main, &s[i]);
  }
  for (int i = 0; i < STRESS_THREADS; i++)
    pthread_join(t[i], NULL);
  for (int i = 0; i < STRESS_THREADS; i++)
    assert_int_equal(s[i].errors, 0);
  if (exchange != NULL) assert_gpumem_ok(gpumem_pool_free(p, exchange, NULL));
  gpumem_pool_stats st = stats_of(p);
  assert_int_equal(st.live_bytes, 0);
  assert_int_equal(st.allocs, st.frees);
  assert_true(st.cache_hits > 0);
  assert_gpumem_ok(gpumem_pool_trim(p, 0));
  assert_int_equal(stats_of(p).reserved_current, 0);
  assert_gpumem_ok(gpumem_pool_destroy(p));
}

#define CHILD_SEED 0x2d

static int child_pool(const char *role, int sock) {
  (void)role;
  if (gpumem_init(NULL) != GPUMEM_OK) return 2;
  struct {
    gpumem_pool_pointer ptr;
    uint64_t size;
  } m;
  int fd = -1;
  if (!gm_test_recv(sock, &m, sizeof m, &fd) || fd < 0) return 10;
  gpumem_shareable_handle sh = {GPUMEM_HANDLE_POSIX_FD, fd, {0}};
  gpumem_pool_t *p = NULL;
  void *ptr = NULL;
  if (gpumem_pool_import(&sh, 0, &p) != GPUMEM_OK) return 11;
  close(fd);
  if (gpumem_pool_import_pointer(p, &m.ptr, &ptr) != GPUMEM_OK) return 12;
  unsigned char *host = malloc(m.size);
  if (gpumem_memcpy(host, ptr, m.size, NULL) || gpumem_stream_synchronize(NULL)) return 13;
  if (gm_test_mismatches(host, m.size, 9) != 0) return 14;
  void *other = NULL;
  if (gpumem_pool_alloc(p, 64, NULL, &other) != GPUMEM_ERR_NOT_SUPPORTED) return 15;
  gm_test_fill(host, m.size, CHILD_SEED);
  if (gpumem_memcpy(ptr, host, m.size, NULL) || gpumem_stream_synchronize(NULL)) return 16;
  free(host);
  if (gpumem_pool_free(p, ptr, NULL) != GPUMEM_OK || gpumem_stream_synchronize(NULL)) return 17;
  if (gpumem_pool_destroy(p) != GPUMEM_OK) return 18;
  return 0;
}

static int child_main(const char *role, int sock) {
  int rc = child_pool(role, sock);
  if (rc != 0) fprintf(stderr, "child failed with %d: %s\n", rc, gpumem_last_error());
  char ok = rc == 0;
  gm_test_send(sock, &ok, 1, -1);
  return rc;
}

static void test_shared_with_another_process(void **state) {
  (void)state;
  gpumem_device_info dev;
  assert_gpumem_ok(gpumem_device_get_info(0, &dev));
  if (!(dev.pool_handle_types & GPUMEM_HANDLE_POSIX_FD)) skip();
  gpumem_pool_config c = GPUMEM_POOL_CONFIG_INIT;
  c.handle_type = GPUMEM_HANDLE_POSIX_FD;
  gpumem_pool_t *p = NULL;
  assert_gpumem_ok(gpumem_pool_create(&c, &p));
  const size_t n = 100000;
  void *ptr = NULL;
  assert_gpumem_ok(gpumem_pool_alloc(p, n, NULL, &ptr));
  unsigned char *host = malloc(n);
  gm_test_fill(host, n, 9);
  assert_gpumem_ok(gpumem_memcpy(ptr, host, n, NULL));
  assert_gpumem_ok(gpumem_stream_synchronize(NULL));
  struct {
    gpumem_pool_pointer ptr;
    uint64_t size;
  } m = {{{0}}, n};
  assert_gpumem_ok(gpumem_pool_export_pointer(p, ptr, &m.ptr));
  gpumem_shareable_handle sh;
  assert_gpumem_ok(gpumem_pool_export(p, &sh));
  assert_int_equal(gm_test_exchange_with_child("pool", &m, sizeof m, sh.fd), 0);
  close(sh.fd);
  /* The child's writes are in our allocation. */
  assert_gpumem_ok(gpumem_memcpy(host, ptr, n, NULL));
  assert_gpumem_ok(gpumem_stream_synchronize(NULL));
  assert_int_equal(gm_test_mismatches(host, n, CHILD_SEED), 0);
  free(host);
  assert_gpumem_ok(gpumem_pool_free(p, ptr, NULL));
  assert_gpumem_ok(gpumem_stream_synchronize(NULL));
  assert_gpumem_ok(gpumem_pool_destroy(p));
}

int main(int argc, char **argv) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test(test_same_stream_reuse_comes_from_the_cache),
      cmocka_unit_test(test_large_and_uncached_requests_bypass),
      cmocka_unit_test(test_cross_thread_free),
      cmocka_unit_test(test_bad_frees_and_input),
      cmocka_unit_test(test_stream_of_another_device),
      cmocka_unit_test(test_trim_and_cache_bound),
      cmocka_unit_test_setup_teardown(test_out_of_memory_flushes_and_retries, small_device,
                                      gm_test_teardown_host),
      cmocka_unit_test(test_sixteen_threads),
      cmocka_unit_test(test_shared_with_another_process),
  };
  return gm_test_run("pool", tests, GM_ARRAY_SIZE(tests), argc, argv, child_main);
}
