/* test_pool.c: the stream-ordered pool and its cache. Same-stream reuse
 * comes from the cache and other streams do not get the block; frees from
 * other threads are cached for the freeing thread; foreign pointers and
 * double frees are refused; trim and the cache bound give memory back; out
 * of memory flushes the caches and retries once; a 16-thread stress run with
 * cross-thread frees keeps every block's contents (also under TSan); another
 * process reads and writes a pool allocation through IPC.
 *
 * Stream order: the host backend runs stream work later, on worker threads,
 * as a GPU does, and gpumem_launch_host_func stands in for a kernel whose
 * timing the test controls (a gate). So the tests below show what a GPU
 * would: a writer still running on stream A when its block is freed and
 * handed to stream B (through the cache, the CUDA pool, or the out-of-memory
 * flush) must never be seen by B; trim must observe the frees it makes; a
 * destroyed stream's reissued handle must not inherit its cached blocks; a
 * stream being captured bypasses the cache; wrapping the default pool
 * leaves its settings as they were. test_pool_order.cu does the same with a
 * real kernel on a GPU. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend/host.h"
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
  gpumem_pool_stats s = GPUMEM_POOL_STATS_INIT;
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
  assert_int_equal(st.base.bytes_in_use, 0);
  /* Another stream must not get the block freed on s1 from the cache. */
  assert_gpumem_ok(gpumem_pool_alloc(p, 900, s2, &b));
  assert_ptr_not_equal(b, a);
  /* The same stream gets it back at once, without the CUDA pool. */
  assert_gpumem_ok(gpumem_pool_alloc(p, 900, s1, &c));
  assert_ptr_equal(c, a);
  st = stats_of(p);
  assert_int_equal(st.cache_hits, 1);
  assert_int_equal(st.cache_misses, 2);
  assert_int_equal(st.base.allocs, 3);
  assert_int_equal(st.base.frees, 1);
  assert_int_equal(st.base.bytes_in_use, 2048);
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
  assert_int_equal(st.base.allocs, 3);
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
  gm_test_ignore(gpumem_pool_alloc(h->pool, 3000, h->stream, &h->again));
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

/* Issue 15: inputs once accepted that must be refused. */
static void test_access_count_over_max_devices_refused(void **state) {
  (void)state;
  int devices[100] = {0};
  gpumem_pool_config c = GPUMEM_POOL_CONFIG_INIT;
  c.access_devices = devices;
  c.access_count = 100;
  int64_t pools = gm_test_counters().pools;
  gpumem_pool_t *p = NULL;
  assert_gpumem_status(gpumem_pool_create(&c, &p), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_last_error_contains("access_count 100 exceeds GPUMEM_MAX_DEVICES");
  assert_null(p);
  assert_int_equal(gm_test_counters().pools, pools);
}

static void test_import_on_missing_device_refused_before_importing(void **state) {
  (void)state;
  gpumem_pool_config c = GPUMEM_POOL_CONFIG_INIT;
  c.handle_type = GPUMEM_HANDLE_POSIX_FD;
  gpumem_pool_t *p = NULL;
  assert_gpumem_ok(gpumem_pool_create(&c, &p));
  gpumem_shareable_handle sh;
  assert_gpumem_ok(gpumem_pool_export(p, &sh));
  uint64_t imports = gm_backend_calls(GM_OP_pool_import);
  gpumem_pool_t *q = NULL;
  assert_gpumem_status(gpumem_pool_import(&sh, 99, &q), GPUMEM_ERR_INVALID_DEVICE);
  assert_last_error_contains("device 99 does not exist");
  assert_null(q);
  assert_int_equal(gm_backend_calls(GM_OP_pool_import), imports); /* refused before importing */
  assert_gpumem_status(gpumem_pool_import(&sh, -1, &q), GPUMEM_ERR_INVALID_DEVICE);
  close(sh.fd);
  assert_gpumem_ok(gpumem_pool_destroy(p));
}

static void test_export_of_a_cached_pointer_refused(void **state) {
  (void)state;
  gpumem_pool_config c = GPUMEM_POOL_CONFIG_INIT;
  c.handle_type = GPUMEM_HANDLE_POSIX_FD;
  gpumem_pool_t *p = NULL;
  assert_gpumem_ok(gpumem_pool_create(&c, &p));
  void *a = NULL;
  assert_gpumem_ok(gpumem_pool_alloc(p, 1000, NULL, &a));
  gpumem_pool_pointer out;
  assert_gpumem_ok(gpumem_pool_export_pointer(p, a, &out));
  assert_gpumem_ok(gpumem_pool_free(p, a, NULL));
  assert_int_equal(stats_of(p).cached_bytes > 0, true); /* the block sits in the cache */
  assert_gpumem_status(gpumem_pool_export_pointer(p, a, &out), GPUMEM_ERR_INVALID_POINTER);
  assert_last_error_contains("was freed");
  int local = 0;
  assert_gpumem_status(gpumem_pool_export_pointer(p, &local, &out), GPUMEM_ERR_INVALID_POINTER);
  assert_last_error_contains("was not allocated from this pool");
  assert_gpumem_ok(gpumem_pool_destroy(p));
}

static void test_max_size_beyond_the_device_refused(void **state) {
  (void)state;
  size_t free_b = 0, total = 0;
  assert_gpumem_ok(gpumem_device_mem_info(0, &free_b, &total));
  gpumem_pool_config c = GPUMEM_POOL_CONFIG_INIT;
  c.max_size = SIZE_MAX - 4096;
  int64_t pools = gm_test_counters().pools;
  gpumem_pool_t *p = NULL;
  assert_gpumem_status(gpumem_pool_create(&c, &p), GPUMEM_ERR_INVALID_ARGUMENT);
  char want[96];
  snprintf(want, sizeof want, "max_size %zu exceeds device 0's %zu bytes", c.max_size, total);
  assert_last_error_contains(want);
  c.max_size = total + 1;
  assert_gpumem_status(gpumem_pool_create(&c, &p), GPUMEM_ERR_INVALID_ARGUMENT);
  assert_int_equal(gm_test_counters().pools, pools);
  c.max_size = total; /* the whole device is a size that fits */
  assert_gpumem_ok(gpumem_pool_create(&c, &p));
  assert_gpumem_ok(gpumem_pool_destroy(p));
}

/* cudaMallocFromPoolAsync takes a stream of any device: the memory is the
 * pool's device's, ordered on that stream (cuda_runtime_api.h: "The
 * specified memory pool may be from a device different than that of the
 * specified hStream"). */
static void test_stream_of_another_device(void **state) {
  (void)state;
  int count = 0;
  assert_gpumem_ok(gpumem_device_count(&count));
  if (count < 2) skip();
  gpumem_pool_config c = GPUMEM_POOL_CONFIG_INIT;
  int peers[1] = {1};
  c.access_devices = peers; /* device 1's stream touches device 0's memory */
  c.access_count = 1;
  gpumem_pool_t *p = NULL;
  assert_gpumem_ok(gpumem_pool_create(&c, &p));
  gpumem_stream_t other = NULL;
  assert_gpumem_ok(gpumem_stream_create(1, &other));
  void *a = NULL;
  assert_gpumem_ok(gpumem_pool_alloc(p, 4096, other, &a));
  assert_non_null(a);
  unsigned char host[4096];
  assert_gpumem_ok(gpumem_memset(a, 0x3c, sizeof host, other));
  assert_gpumem_ok(gpumem_memcpy(host, a, sizeof host, other));
  for (size_t i = 0; i < sizeof host; i++)
    assert_int_equal(host[i], 0x3c);
  assert_gpumem_ok(gpumem_pool_free(p, a, other));
  assert_gpumem_ok(gpumem_pool_forget_stream(p, other));
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
  assert_int_equal(st.base.frees, 100);
  assert_gpumem_ok(gpumem_pool_trim(p, 0));
  st = stats_of(p);
  assert_int_equal(st.cached_bytes, 0);
  assert_int_equal(st.base.bytes_reserved, 0);
  assert_true(st.base.peak_bytes_reserved > 0);
  assert_gpumem_ok(gpumem_pool_destroy(p));
}

/* Blocks over 256 KiB are cached up to four of the largest cached size
 * (cache_max_size, 1 MiB by default) per thread: a size that follows the
 * data would otherwise leave its earlier sizes cached, splitting the CUDA
 * pool's free ranges. Smaller blocks are not counted against it; blocks
 * taken from the cache and flushed ones free their share. */
static void test_wide_blocks_bounded_per_thread(void **state) {
  (void)state;
  gpumem_pool_t *p = make_pool(true, 0);
  void *wide[6], *small[20], *mib[5];
  for (int i = 0; i < 6; i++)
    assert_gpumem_ok(gpumem_pool_alloc(p, 768 << 10, NULL, &wide[i]));
  for (int i = 0; i < 20; i++)
    assert_gpumem_ok(gpumem_pool_alloc(p, 4096, NULL, &small[i]));
  for (int i = 0; i < 6; i++)
    assert_gpumem_ok(gpumem_pool_free(p, wide[i], NULL));
  for (int i = 0; i < 20; i++)
    assert_gpumem_ok(gpumem_pool_free(p, small[i], NULL));
  /* five of 768 KiB fit in 4 MiB, the sixth went back to the CUDA pool */
  assert_int_equal(stats_of(p).cached_bytes, 5 * (768 << 10) + 20 * 4096);
  void *one = NULL, *again = NULL;
  assert_gpumem_ok(gpumem_pool_alloc(p, 1 << 20, NULL, &one)); /* a miss */
  assert_gpumem_ok(gpumem_pool_free(p, one, NULL));            /* 4.75 MiB: not cached */
  assert_int_equal(stats_of(p).cached_bytes, 5 * (768 << 10) + 20 * 4096);
  assert_gpumem_ok(gpumem_pool_alloc(p, 700 << 10, NULL, &again)); /* a hit frees 768 KiB */
  assert_ptr_equal(again, wide[4]);                                /* LIFO */
  assert_gpumem_ok(gpumem_pool_alloc(p, 1 << 20, NULL, &one));
  assert_gpumem_ok(gpumem_pool_free(p, one, NULL)); /* exactly 4 MiB: cached */
  gpumem_pool_stats st = stats_of(p);
  assert_int_equal(st.cached_bytes, 4 * (768 << 10) + (1 << 20) + 20 * 4096);
  assert_int_equal(st.cache_hits, 1);
  assert_gpumem_ok(gpumem_pool_free(p, again, NULL)); /* 4.75 MiB again: not cached */
  assert_int_equal(stats_of(p).cached_bytes, 4 * (768 << 10) + (1 << 20) + 20 * 4096);
  assert_gpumem_ok(gpumem_pool_trim(p, 0)); /* a flush gives the share back */
  assert_int_equal(stats_of(p).cached_bytes, 0);
  for (int i = 0; i < 5; i++)
    assert_gpumem_ok(gpumem_pool_alloc(p, 1 << 20, NULL, &mib[i]));
  for (int i = 0; i < 5; i++)
    assert_gpumem_ok(gpumem_pool_free(p, mib[i], NULL));
  assert_int_equal(stats_of(p).cached_bytes, 4 << 20);
  assert_gpumem_ok(gpumem_stream_synchronize(NULL));
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
  void *blocks[32], *big = NULL, *more = NULL;
  for (int i = 0; i < 32; i++) /* 256 KiB: not wide, so all of them stay cached */
    assert_gpumem_ok(gpumem_pool_alloc(p, 256 << 10, NULL, &blocks[i]));
  for (int i = 0; i < 32; i++)
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
      /* Our stream's memset into it must be done before another thread frees
       * it on its own stream: nothing else orders the two streams. */
      if (gpumem_stream_synchronize(stream) != GPUMEM_OK) s->errors++;
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
  if (gpumem_pool_forget_stream(s->pool, stream) != GPUMEM_OK) s->errors++;
  gm_test_ignore(gpumem_stream_destroy(stream));
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
  assert_int_equal(st.base.bytes_in_use, 0);
  assert_int_equal(st.base.allocs, st.base.frees);
  assert_true(st.cache_hits > 0);
  assert_gpumem_ok(gpumem_pool_trim(p, 0));
  assert_int_equal(stats_of(p).base.bytes_reserved, 0);
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

/* ---- stream order (the host backend runs stream work later, as a GPU) ---- */

/* A host function that waits for a gate, then fills a block: a kernel whose
 * timing the test controls. */
typedef struct fill_job {
  gm_test_gate *gate; /* NULL: run at once */
  unsigned char *ptr;
  size_t size;
  int value;
  unsigned sleep_us; /* after filling, before checking */
  int *wrong;        /* if set: count bytes that changed during the sleep */
} fill_job;

static void fill_fn(void *arg) {
  fill_job *j = arg;
  if (j->gate != NULL) gm_test_gate_wait(j->gate);
  memset(j->ptr, j->value, j->size);
  if (j->sleep_us > 0) usleep(j->sleep_us);
  if (j->wrong != NULL) {
    for (size_t i = 0; i < j->size; i++)
      *j->wrong += j->ptr[i] != (unsigned char)j->value;
  }
}

/* What the issue of the faithful host backend asks for: a host function
 * queued on A before the block is freed on A still writes into it when the
 * host frees it and allocates on B. Whatever path the block takes (the
 * cache, the CUDA pool), B must not see A's late writes: B's own pattern
 * must survive. */
static void check_late_writer(gpumem_pool_t *p, size_t size) {
  gpumem_stream_t a = NULL, b = NULL;
  assert_gpumem_ok(gpumem_stream_create(0, &a));
  assert_gpumem_ok(gpumem_stream_create(0, &b));
  gm_test_gate g = GM_TEST_GATE_INIT;
  void *x = NULL, *y = NULL;
  assert_gpumem_ok(gpumem_pool_alloc(p, size, a, &x));
  fill_job late = {&g, x, size, 0xa5, 0, NULL};
  assert_gpumem_ok(gpumem_launch_host_func(a, fill_fn, &late));
  assert_gpumem_ok(gpumem_pool_free(p, x, a));
  assert_gpumem_ok(gpumem_pool_forget_stream(p, a)); /* the cache gives it to the CUDA pool */
  assert_gpumem_ok(gpumem_pool_alloc(p, size, b, &y));
  fill_job mine = {NULL, y, size, 0x5a, 0, NULL};
  assert_gpumem_ok(gpumem_launch_host_func(b, fill_fn, &mine));
  gm_test_gate_open(&g);
  unsigned char *host = malloc(size);
  assert_non_null(host);
  assert_gpumem_ok(gpumem_memcpy(host, y, size, b));
  size_t wrong = 0;
  for (size_t i = 0; i < size; i++)
    wrong += host[i] != 0x5a;
  assert_int_equal(wrong, 0);
  free(host);
  assert_gpumem_ok(gpumem_pool_free(p, y, b));
  assert_gpumem_ok(gpumem_stream_synchronize(a));
  assert_gpumem_ok(gpumem_stream_synchronize(b));
  assert_gpumem_ok(gpumem_pool_forget_stream(p, a));
  assert_gpumem_ok(gpumem_pool_forget_stream(p, b));
  assert_gpumem_ok(gpumem_stream_destroy(a));
  assert_gpumem_ok(gpumem_stream_destroy(b));
}

static void test_late_writer_on_another_stream(void **state) {
  (void)state;
  if (!gm_test_on_host()) skip(); /* host functions only: test_pool_order has the GPU version */
  gpumem_pool_t *p = make_pool(true, 0);
  check_late_writer(p, 4096);    /* through the cache */
  check_late_writer(p, 4 << 20); /* above cache_max_size: the CUDA pool alone */
  assert_gpumem_ok(gpumem_pool_destroy(p));
  p = make_pool(false, 0);
  check_late_writer(p, 4096);
  assert_gpumem_ok(gpumem_pool_destroy(p));
}

/* Issue 12 item 4: a flush that synchronized the pool's device and then freed
 * the cached blocks on the legacy stream gave a block no order after the
 * work of the stream it was cached for (here a stream of another device,
 * whose work the device synchronize does not wait for; the same happens to a
 * block cached by another thread just after the synchronize). The block
 * goes to stream B through the out-of-memory flush while A's gated writer
 * still has to run; B's pattern must survive. Repeated with random delays
 * on every stream item. */
#define FLUSH_ROUNDS 40

static void test_flush_keeps_the_cached_streams_order(void **state) {
  (void)state;
  if (!gm_test_on_host()) skip(); /* host functions stand in for kernels */
  int count = 0;
  assert_gpumem_ok(gpumem_device_count(&count));
  if (count < 2) skip();
  const size_t block = (size_t)2 << 20; /* one granule: the pool holds one block */
  gpumem_pool_config c = GPUMEM_POOL_CONFIG_INIT;
  c.max_size = block;
  c.cache_max_size = block;
  int peers[1] = {1};
  c.access_devices = peers; /* A's writer runs on device 1 */
  c.access_count = 1;
  gpumem_pool_t *p = NULL;
  assert_gpumem_ok(gpumem_pool_create(&c, &p));
  gpumem_stream_t a = NULL, b = NULL;
  assert_gpumem_ok(gpumem_stream_create(1, &a)); /* another device than the pool's */
  assert_gpumem_ok(gpumem_stream_create(0, &b));
  unsigned char *host = malloc(block);
  assert_non_null(host);
  size_t corrupted = 0;
  for (int round = 0; round < FLUSH_ROUNDS; round++) {
    gm_test_gate g = GM_TEST_GATE_INIT;
    void *x = NULL, *y = NULL;
    assert_gpumem_ok(gpumem_pool_alloc(p, block, a, &x));
    fill_job late = {&g, x, block, 0xa5, 0, NULL};
    assert_gpumem_ok(gpumem_launch_host_func(a, fill_fn, &late));
    assert_gpumem_ok(gpumem_pool_free(p, x, a)); /* cached for a */
    /* The pool is full: the allocation flushes the cache and retries. */
    assert_gpumem_ok(gpumem_pool_alloc(p, block, b, &y));
    assert_ptr_equal(y, x);
    fill_job mine = {NULL, y, block, 0x5a, 0, NULL};
    assert_gpumem_ok(gpumem_launch_host_func(b, fill_fn, &mine));
    gm_test_gate_open(&g);
    assert_gpumem_ok(gpumem_memcpy(host, y, block, b));
    for (size_t i = 0; i < block; i++)
      corrupted += host[i] != 0x5a;
    assert_gpumem_ok(gpumem_pool_free(p, y, b));
    assert_gpumem_ok(gpumem_pool_trim(p, 0));
  }
  assert_int_equal(corrupted, 0);
  free(host);
  assert_gpumem_ok(gpumem_pool_destroy(p));
  assert_gpumem_ok(gpumem_stream_destroy(a));
  assert_gpumem_ok(gpumem_stream_destroy(b));
}

/* Streams with random delays on every item. */
static int delayed_streams(void **state) {
  setenv("GPUMEM_HOST_STREAM_DELAY", "200", 1);
  gpumem_init_options o = GPUMEM_INIT_OPTIONS_INIT;
  int rc = gm_test_setup_host(state, o);
  unsetenv("GPUMEM_HOST_STREAM_DELAY");
  return rc;
}

/* Issue 12 item 1: trim must see the flushed frees complete, or the CUDA pool
 * counts them as outstanding and keeps the memory. */
static void test_trim_returns_flushed_blocks(void **state) {
  (void)state;
  gpumem_pool_t *p = make_pool(true, 0);
  gpumem_stream_t s = NULL;
  assert_gpumem_ok(gpumem_stream_create(0, &s));
  void *blocks[8];
  for (int i = 0; i < 8; i++)
    assert_gpumem_ok(gpumem_pool_alloc(p, 64 << 10, s, &blocks[i]));
  for (int i = 0; i < 8; i++)
    assert_gpumem_ok(gpumem_pool_free(p, blocks[i], s));
  assert_int_equal(stats_of(p).cached_bytes, 8 * (64 << 10));
  assert_true(stats_of(p).base.bytes_reserved > 0);
  assert_gpumem_ok(gpumem_pool_trim(p, 0));
  gpumem_pool_stats st = stats_of(p);
  assert_int_equal(st.cached_bytes, 0);
  assert_int_equal(st.used_current, 0);
  assert_int_equal(st.base.bytes_reserved, 0);
  assert_gpumem_ok(gpumem_pool_destroy(p));
  assert_gpumem_ok(gpumem_stream_destroy(s));
}

/* Issue 12 item 5b: a destroyed stream's handle value may name the next
 * stream created while the old one's work still runs; blocks cached for the
 * old stream must not go to the new one. */
static void test_reissued_stream_handle_gets_no_cached_block(void **state) {
  (void)state;
  if (!gm_test_on_host()) skip(); /* needs a handle value reissued, which the host does */
  gpumem_pool_t *p = make_pool(true, 0);
  gpumem_stream_t old = NULL, fresh = NULL;
  assert_gpumem_ok(gpumem_stream_create(0, &old));
  gm_test_gate g = GM_TEST_GATE_INIT;
  void *x = NULL, *y = NULL;
  assert_gpumem_ok(gpumem_pool_alloc(p, 4096, old, &x));
  fill_job late = {&g, x, 4096, 0xa5, 0, NULL};
  assert_gpumem_ok(gpumem_launch_host_func(old, fill_fn, &late));
  assert_gpumem_ok(gpumem_pool_free(p, x, old));
  assert_gpumem_ok(gpumem_stream_destroy(old)); /* returns at once; the work is pending */
  assert_gpumem_ok(gpumem_stream_create(0, &fresh));
  assert_ptr_equal(fresh, old); /* the host backend reissues the last handle freed */
  assert_gpumem_ok(gpumem_pool_alloc(p, 4096, fresh, &y));
  assert_ptr_not_equal(y, x);
  assert_int_equal(stats_of(p).cache_hits, 0);
  gm_test_gate_open(&g);
  assert_gpumem_ok(gpumem_pool_free(p, y, fresh));
  /* The flush sees that the cached handle now names another stream and
   * orders the old block's free after the device instead. */
  assert_gpumem_ok(gpumem_pool_trim(p, 0));
  assert_int_equal(stats_of(p).base.bytes_reserved, 0);
  assert_gpumem_ok(gpumem_stream_destroy(fresh));
  assert_gpumem_ok(gpumem_pool_destroy(p));
}

/* Issue 12 item 5a: NULL names the legacy stream of the calling thread's
 * current device, a different stream on each device: a block freed on NULL
 * while device 0 was current is not NULL's after the thread switched to
 * device 1. */
static void test_null_stream_is_per_device(void **state) {
  (void)state;
  int count = 0;
  assert_gpumem_ok(gpumem_device_count(&count));
  if (!gm_test_on_host() || count < 2) skip(); /* gm_host_set_device plays cudaSetDevice */
  gpumem_pool_t *p = make_pool(true, 0);
  void *x = NULL, *y = NULL;
  gm_host_set_device(0);
  assert_gpumem_ok(gpumem_pool_alloc(p, 4096, NULL, &x));
  assert_gpumem_ok(gpumem_pool_free(p, x, NULL)); /* cached for device 0's legacy stream */
  gm_host_set_device(1);
  assert_gpumem_ok(gpumem_pool_alloc(p, 4096, NULL, &y));
  assert_ptr_not_equal(y, x);
  assert_int_equal(stats_of(p).cache_hits, 0);
  assert_gpumem_ok(gpumem_pool_free(p, y, NULL));
  gm_host_set_device(0);
  assert_gpumem_ok(gpumem_pool_alloc(p, 4096, NULL, &y));
  assert_ptr_equal(y, x); /* back on device 0: its block */
  assert_gpumem_ok(gpumem_pool_free(p, y, NULL));
  assert_gpumem_ok(gpumem_pool_destroy(p));
}

/* Issue 12 item 5c: while a stream is captured into a graph, allocations and
 * frees must reach the CUDA pool (allocation and free nodes), never the
 * cache. */
static void test_capture_bypasses_the_cache(void **state) {
  (void)state;
  gpumem_pool_t *p = make_pool(true, 0);
  gpumem_stream_t s = NULL;
  assert_gpumem_ok(gpumem_stream_create(0, &s));
  void *x = NULL, *y = NULL;
  assert_gpumem_ok(gpumem_pool_alloc(p, 4096, s, &x));
  assert_gpumem_ok(gpumem_pool_free(p, x, s)); /* cached for s */
  assert_int_equal(stats_of(p).cached_bytes, 4096);
  assert_gpumem_ok(gm_be_stream_capture(s, true));
  bool capturing = false;
  assert_gpumem_ok(gm_be_stream_is_capturing(s, &capturing));
  assert_true(capturing);
  uint64_t allocs = gm_backend_calls(GM_OP_pool_alloc), frees = gm_backend_calls(GM_OP_pool_free);
  assert_gpumem_ok(gpumem_pool_alloc(p, 4096, s, &y));
  assert_int_equal(gm_backend_calls(GM_OP_pool_alloc), allocs + 1); /* an allocation node */
  assert_int_equal(stats_of(p).cache_hits, 0);
  assert_gpumem_ok(gpumem_pool_free(p, y, s));
  assert_int_equal(gm_backend_calls(GM_OP_pool_free), frees + 1); /* a free node */
  assert_int_equal(stats_of(p).cached_bytes, 4096);               /* only the earlier block */
  assert_gpumem_ok(gm_be_stream_capture(s, false));
  assert_gpumem_ok(gpumem_pool_alloc(p, 4096, s, &y));
  assert_ptr_equal(y, x); /* outside capture the cache serves again */
  assert_gpumem_ok(gpumem_pool_free(p, y, s));
  assert_gpumem_ok(gpumem_pool_destroy(p));
  assert_gpumem_ok(gpumem_stream_destroy(s));
}

/* Issue 12 item 8: wrapping the default pool changes process-wide settings;
 * destroy puts them back. */
static void test_default_pool_settings_restored(void **state) {
  (void)state;
  int count = 0;
  assert_gpumem_ok(gpumem_device_count(&count));
  gpumem_native_pool_t def = NULL;
  assert_gpumem_ok(gm_be_pool_default(0, &def));
  uint64_t before[4];
  for (int a = 0; a <= GM_POOL_RELEASE_THRESHOLD; a++)
    before[a] = gm_test_pool_attr(def, (gm_pool_attr)a);
  gpumem_access_flags peer_before = GPUMEM_ACCESS_NONE;
  if (count > 1) assert_gpumem_ok(gm_be_pool_get_access(def, 1, &peer_before));
  gpumem_pool_config c = GPUMEM_POOL_CONFIG_INIT;
  c.use_default_pool = true;
  c.release_threshold = 12345;
  c.reuse_allow_opportunistic = !before[GM_POOL_REUSE_ALLOW_OPPORTUNISTIC];
  int peers[1] = {1};
  c.access_devices = peers;
  c.access_count = count > 1 ? 1 : 0;
  gpumem_pool_t *p = NULL;
  assert_gpumem_ok(gpumem_pool_create(&c, &p));
  assert_int_equal(gm_test_pool_attr(def, GM_POOL_RELEASE_THRESHOLD), 12345);
  assert_int_equal(gm_test_pool_attr(def, GM_POOL_REUSE_ALLOW_OPPORTUNISTIC),
                   !before[GM_POOL_REUSE_ALLOW_OPPORTUNISTIC]);
  assert_gpumem_ok(gpumem_pool_destroy(p));
  for (int a = 0; a <= GM_POOL_RELEASE_THRESHOLD; a++)
    assert_int_equal(gm_test_pool_attr(def, (gm_pool_attr)a), before[a]);
  if (count > 1) {
    gpumem_access_flags peer_after = GPUMEM_ACCESS_READWRITE;
    assert_gpumem_ok(gm_be_pool_get_access(def, 1, &peer_after));
    assert_int_equal(peer_after, peer_before);
  }
}

/* Issue 15: a failed backend free leaves the block allocated and in the
 * table, so the free can be retried and destroy finishes; a failed flush in
 * trim keeps the cached block; a destroy that fails at any step can be
 * called again and frees everything. */
static void test_failed_release_can_be_retried(void **state) {
  (void)state;
  gm_backend_counters before, after;
  gm_backend_get_counters(&before);
  gpumem_pool_t *p = make_pool(false, 0);
  void *a = NULL;
  assert_gpumem_ok(gpumem_pool_alloc(p, 4096, NULL, &a));
  gm_fault_inject(GM_OP_pool_free, 1, GPUMEM_ERR_INJECTED);
  assert_gpumem_status(gpumem_pool_free(p, a, NULL), GPUMEM_ERR_INJECTED);
  assert_true(gpumem_last_error()[0] != '\0');
  assert_int_equal(stats_of(p).base.bytes_in_use, 4096);
  assert_gpumem_status(gpumem_pool_destroy(p), GPUMEM_ERR_BUSY);
  assert_gpumem_ok(gpumem_pool_free(p, a, NULL)); /* was INVALID_POINTER */
  assert_gpumem_ok(gpumem_pool_destroy(p));

  p = make_pool(true, 0);
  assert_gpumem_ok(gpumem_pool_alloc(p, 4096, NULL, &a));
  assert_gpumem_ok(gpumem_pool_free(p, a, NULL)); /* cached */
  gm_fault_inject(GM_OP_pool_free, 1, GPUMEM_ERR_INJECTED);
  assert_gpumem_status(gpumem_pool_trim(p, 0), GPUMEM_ERR_INJECTED);
  assert_int_equal(stats_of(p).cached_bytes, 4096);
  const gm_op ops[] = {GM_OP_pool_free, GM_OP_device_synchronize, GM_OP_stream_destroy,
                       GM_OP_pool_destroy};
  for (size_t i = 0; i < GM_ARRAY_SIZE(ops); i++) {
    gm_fault_inject(ops[i], 1, GPUMEM_ERR_INJECTED);
    assert_gpumem_status(gpumem_pool_destroy(p), GPUMEM_ERR_INJECTED);
    gm_fault_clear();
  }
  assert_gpumem_ok(gpumem_pool_destroy(p));
  gm_backend_get_counters(&after);
  assert_int_equal(after.pools, before.pools);
  assert_int_equal(after.pool_allocations, before.pool_allocations);
  assert_int_equal(after.streams, before.streams);
}

int main(int argc, char **argv) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test(test_same_stream_reuse_comes_from_the_cache),
      cmocka_unit_test(test_large_and_uncached_requests_bypass),
      cmocka_unit_test(test_cross_thread_free),
      cmocka_unit_test(test_bad_frees_and_input),
      cmocka_unit_test(test_access_count_over_max_devices_refused),
      cmocka_unit_test(test_import_on_missing_device_refused_before_importing),
      cmocka_unit_test(test_export_of_a_cached_pointer_refused),
      cmocka_unit_test(test_max_size_beyond_the_device_refused),
      cmocka_unit_test(test_stream_of_another_device),
      cmocka_unit_test(test_trim_and_cache_bound),
      cmocka_unit_test(test_wide_blocks_bounded_per_thread),
      cmocka_unit_test_setup_teardown(test_out_of_memory_flushes_and_retries, small_device,
                                      gm_test_teardown_host),
      cmocka_unit_test(test_sixteen_threads),
      cmocka_unit_test(test_shared_with_another_process),
      cmocka_unit_test(test_late_writer_on_another_stream),
      cmocka_unit_test_setup_teardown(test_flush_keeps_the_cached_streams_order, delayed_streams,
                                      gm_test_teardown_host),
      cmocka_unit_test(test_trim_returns_flushed_blocks),
      cmocka_unit_test(test_reissued_stream_handle_gets_no_cached_block),
      cmocka_unit_test(test_null_stream_is_per_device),
      cmocka_unit_test(test_capture_bypasses_the_cache),
      cmocka_unit_test(test_default_pool_settings_restored),
      cmocka_unit_test(test_failed_release_can_be_retried),
  };
  return gm_test_run("pool", tests, GM_ARRAY_SIZE(tests), argc, argv, child_main);
}
