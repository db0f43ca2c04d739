/* 03_growable_vector.c: a device array that grows while work fills it.
 *
 * Course topic "build growable GPU data structures". The usual way to grow a
 * device array is realloc by hand: cudaMalloc a bigger block, copy the old
 * contents over, cudaFree the old one. Each growth copies everything so far,
 * and every pointer into the array changes, so kernels, graphs and peer
 * processes holding the old pointer must be told.
 *
 * With the virtual memory API the address comes first: reserve a range as
 * large as the array may ever get (it costs no memory), then create physical
 * memory and map it at the end of what is mapped, and grant access to it.
 * The pointer never changes and nothing is copied. gpumem_buffer_t does the
 * reserve / create / map / set-access sequence of examples/01_vmm_basics.c for
 * you, undoes a growth that fails half way, and with geometric growth maps
 * memory in doubling segments so that a million small appends cost a handful
 * of driver calls.
 *
 * This program appends blocks of records to a buffer. Each append grows the
 * buffer and then fills the new records with a memset on a stream (the work
 * a kernel would do), without waiting: the growth happens while earlier
 * fills are still in flight, because it never touches mapped memory. At the
 * end it checks every byte, shrinks, and gives the memory back.
 *
 * Run:  build/release/examples/03_growable_vector  (GPUMEM_BACKEND=host without a GPU)
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime in strict C11 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <gpumem/gpumem.h>

#define CHECK(call)                                                                               \
  do {                                                                                            \
    gpumem_status s_ = (call);                                                                    \
    if (s_ != GPUMEM_OK) {                                                                        \
      fprintf(stderr, "03_growable_vector: %s failed: %s\n  %s\n", #call, gpumem_status_name(s_), \
              gpumem_last_error());                                                               \
      exit(1);                                                                                    \
    }                                                                                             \
  } while (0)

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

int main(void) {
  int count = 0;
  gpumem_status st = gpumem_device_count(&count);
  if (st == GPUMEM_ERR_NO_DEVICE) {
    fprintf(stderr,
            "03_growable_vector: %s\n  (run with GPUMEM_BACKEND=host to use emulated devices)\n",
            gpumem_last_error());
    return 2;
  }
  CHECK(st);
  gpumem_device_info dev;
  CHECK(gpumem_device_get_info(0, &dev));

  /* A buffer that may grow to a quarter of the device, doubling its
   * capacity when it must grow. */
  gpumem_buffer_config cfg = GPUMEM_BUFFER_CONFIG_INIT;
  cfg.device = 0;
  cfg.max_size = dev.memory_total / 4;
  cfg.growth = GPUMEM_GROW_GEOMETRIC;
  gpumem_buffer_t *vec = NULL;
  CHECK(gpumem_buffer_create(&cfg, &vec));
  unsigned char *base = gpumem_buffer_data(vec);
  printf("reserved %zu MiB of addresses at %p (no memory yet)\n", gpumem_buffer_max_size(vec) >> 20,
         (void *)base);

  gpumem_stream_t stream = NULL;
  CHECK(gpumem_stream_create(0, &stream));
  const size_t record = 256, per_append = 50000; /* 12.5 MB per append */
  const int appends = 12;
  double start = now_ms();
  for (int i = 0; i < appends; i++) {
    size_t old = gpumem_buffer_size(vec);
    double t0 = now_ms();
    CHECK(gpumem_buffer_resize(vec, old + per_append * record)); /* may map a new segment */
    double grow_ms = now_ms() - t0;
    /* Fill the new records on the stream; we do not wait for it. */
    CHECK(gpumem_memset(base + old, (i + 1) & 0xff, per_append * record, stream));
    if (gpumem_buffer_data(vec) != base) {
      fprintf(stderr, "the pointer moved\n");
      return 1;
    }
    printf("append %2d: size %6.1f MiB, capacity %6.1f MiB, resize %.3f ms, pointer %p\n", i + 1,
           (double)gpumem_buffer_size(vec) / (1 << 20),
           (double)gpumem_buffer_capacity(vec) / (1 << 20), grow_ms, gpumem_buffer_data(vec));
  }
  CHECK(gpumem_stream_synchronize(stream));
  double total_ms = now_ms() - start;
  gpumem_buffer_stats info = GPUMEM_BUFFER_STATS_INIT;
  CHECK(gpumem_buffer_get_stats(vec, &info));
  printf("%d appends in %.2f ms: %llu growths mapped %zu segments; never a copy\n", appends,
         total_ms, (unsigned long long)info.base.allocs, info.segments);

  /* Every record holds the value of the append that wrote it. */
  size_t n = gpumem_buffer_size(vec), bad = 0;
  unsigned char *host = malloc(n);
  CHECK(gpumem_memcpy(host, base, n, stream));
  CHECK(gpumem_stream_synchronize(stream));
  for (size_t k = 0; k < n; k++)
    bad += host[k] != (unsigned char)(k / (per_append * record) + 1);
  free(host);
  printf("checked %zu bytes: %zu wrong\n", n, bad);

  /* Shrink to two appends: the memory stays mapped (like a vector) until
   * shrink_to_fit, which waits for the stream and gives it back. */
  size_t free_before = 0, total = 0, free_after = 0;
  CHECK(gpumem_buffer_resize(vec, 2 * per_append * record));
  CHECK(gpumem_device_mem_info(0, &free_before, &total));
  CHECK(gpumem_buffer_shrink_to_fit(vec, stream));
  CHECK(gpumem_device_mem_info(0, &free_after, &total));
  printf("shrink_to_fit: capacity now %.1f MiB, %.1f MiB returned to the device\n",
         (double)gpumem_buffer_capacity(vec) / (1 << 20),
         ((double)free_after - (double)free_before) / (1 << 20));

  CHECK(gpumem_stream_destroy(stream));
  CHECK(gpumem_buffer_destroy(vec));
  CHECK(gpumem_finalize());
  printf("%s\n", bad == 0 ? "ok" : "FAILED");
  return bad == 0 ? 0 : 1;
}
