/* 04_stream_ordered_pool.c: stream-ordered allocation with a pool.
 *
 * Course topic "stream-ordered memory allocation, cudaMallocAsync, memory
 * pools". cudaMallocAsync(size, stream) and cudaFreeAsync(ptr, stream) put the
 * allocation and the free into the stream's order, like kernels: memory freed
 * on a stream can be handed out again at once to later work on the same
 * stream, because that work cannot start before the free. Another stream may
 * reuse it only once the free is known complete (CUDA tracks this with
 * events), or after it waits for the first stream.
 *
 * The memory comes from a pool (cudaMemPool_t). Two settings matter most:
 * - the release threshold: how much freed memory the pool keeps across a
 *   synchronize. CUDA's default is 0, which returns everything at each
 *   synchronize, so the next allocation pays the driver again. Long-running
 *   codes raise it.
 * - peer access: which other devices may use the pool's memory.
 *
 * gpumem_pool_t wraps such a pool and adds a per-thread cache in front, so
 * that an alloc/free on the same stream costs tens of nanoseconds and
 * threads do not serialize on the pool. This tutorial shows the rules with
 * the pool's statistics.
 *
 * Run:  build/release/examples/04_stream_ordered_pool  (GPUMEM_BACKEND=host without a GPU)
 */
#include <stdio.h>
#include <stdlib.h>

#include <gpumem/gpumem.h>

#define CHECK(call)                                                           \
  do {                                                                        \
    gpumem_status s_ = (call);                                                \
    if (s_ != GPUMEM_OK) {                                                    \
      fprintf(stderr, "04_stream_ordered_pool: %s failed: %s\n  %s\n", #call, \
              gpumem_status_name(s_), gpumem_last_error());                   \
      exit(1);                                                                \
    }                                                                         \
  } while (0)

static void show(const char *when, gpumem_pool_t *pool) {
  gpumem_pool_stats s = GPUMEM_POOL_STATS_INIT;
  CHECK(gpumem_pool_get_stats(pool, &s));
  printf("  %-44s reserved %6.2f MiB, live %6.2f MiB, cached %6.2f MiB, hits %llu, misses %llu\n",
         when, (double)s.base.bytes_reserved / (1 << 20), (double)s.base.bytes_in_use / (1 << 20),
         (double)s.cached_bytes / (1 << 20), (unsigned long long)s.cache_hits,
         (unsigned long long)s.cache_misses);
}

int main(void) {
  int count = 0;
  gpumem_status st = gpumem_device_count(&count);
  if (st == GPUMEM_ERR_NO_DEVICE) {
    fprintf(
        stderr,
        "04_stream_ordered_pool: %s\n  (run with GPUMEM_BACKEND=host to use emulated devices)\n",
        gpumem_last_error());
    return 2;
  }
  CHECK(st);

  /* A pool of its own on device 0 that keeps freed memory (threshold: all). */
  gpumem_pool_config cfg = GPUMEM_POOL_CONFIG_INIT;
  cfg.device = 0;
  gpumem_pool_t *pool = NULL;
  CHECK(gpumem_pool_create(&cfg, &pool));
  gpumem_stream_t a = NULL, b = NULL;
  CHECK(gpumem_stream_create(0, &a));
  CHECK(gpumem_stream_create(0, &b));
  printf("step 1: allocate 4 x 256 KiB on stream A, use them, free them on A\n");
  void *blocks[4];
  for (int i = 0; i < 4; i++) {
    CHECK(gpumem_pool_alloc(pool, 256 << 10, a, &blocks[i]));
    CHECK(gpumem_memset(blocks[i], i, 256 << 10, a)); /* work on A that uses the block */
  }
  show("after the allocations", pool);
  for (int i = 0; i < 4; i++)
    CHECK(gpumem_pool_free(pool, blocks[i], a));
  show("after the frees on A (no synchronize needed)", pool);

  /* Same stream: the freed blocks come back at once; A's order keeps the new
   * work behind the old. */
  printf("step 2: allocate again on stream A\n");
  void *again = NULL;
  CHECK(gpumem_pool_alloc(pool, 256 << 10, a, &again));
  printf("  got %p, one of the blocks freed on A: %s\n", again,
         again == blocks[0] || again == blocks[1] || again == blocks[2] || again == blocks[3]
             ? "yes"
             : "no");
  show("after the same-stream allocation", pool);

  /* Another stream: the cache never hands it a block freed on A, since A's
   * work may still be running. The CUDA pool decides (it may reuse memory
   * whose free has completed, following its event dependencies). */
  printf("step 3: allocate on stream B\n");
  void *other = NULL;
  CHECK(gpumem_pool_alloc(pool, 256 << 10, b, &other));
  show("after the allocation on B", pool);

  /* To hand memory from A to B yourself, order B after A: record an event on
   * A and make B wait for it, then B may use what A freed. */
  gpumem_event_t done = NULL;
  CHECK(gpumem_event_create(0, &done));
  CHECK(gpumem_event_record(done, a));
  CHECK(gpumem_stream_wait_event(b, done));
  printf("step 4: B now waits for A's work (event), so B may use memory A freed\n");

  CHECK(gpumem_pool_free(pool, again, a));
  CHECK(gpumem_pool_free(pool, other, b));
  CHECK(gpumem_stream_synchronize(a));
  CHECK(gpumem_stream_synchronize(b));
  show("after freeing everything and synchronizing", pool);

  /* The release threshold kept the memory; trim gives it back (the caches
   * first, after waiting for the device). */
  printf("step 5: trim the pool to 0 bytes\n");
  CHECK(gpumem_pool_trim(pool, 0));
  show("after trim", pool);

  CHECK(gpumem_event_destroy(done));
  CHECK(gpumem_stream_destroy(a));
  CHECK(gpumem_stream_destroy(b));
  CHECK(gpumem_pool_destroy(pool));
  CHECK(gpumem_finalize());
  printf("ok\n");
  return 0;
}
