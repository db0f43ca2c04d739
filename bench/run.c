/* run.c: executing a plan against an allocator, and the clock.
 *
 * The timed loop does only what the plan says: alloc or free through the
 * allocator's function pointers, plus, for workloads that want work in
 * flight, a memset of the new block on its stream. The time includes a final
 * synchronize of every stream, so asynchronous allocators pay for what they
 * deferred.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

/* Bytes written to each block when a workload puts work in flight. */
#define TOUCH_BYTES ((size_t)1 << 20)

double gb_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

double gb_run_plan(const gpumem_allocator *a, const gb_plan *plan, gpumem_stream_t *streams,
                   int device, bool touch, char *err, size_t err_len) {
  (void)device;
  void **ptrs = calloc(plan->slots ? plan->slots : 1, sizeof *ptrs);
  if (ptrs == NULL) {
    snprintf(err, err_len, "out of host memory for %u slots", plan->slots);
    return -1;
  }
  double start = gb_now_ns();
  size_t i = 0;
  gpumem_status st = GPUMEM_OK;
  for (; i < plan->count; i++) {
    const gb_op *op = &plan->ops[i];
    gpumem_stream_t s = streams[op->stream];
    if (op->kind == GB_ALLOC) {
      st = a->alloc(a->ctx, op->size, s, &ptrs[op->slot]);
      if (st == GPUMEM_OK && touch) {
        st = gpumem_memset(ptrs[op->slot], 0, op->size < TOUCH_BYTES ? op->size : TOUCH_BYTES, s);
      }
    } else {
      /* The memset may still be running: an allocator that reuses memory at
       * once needs it done first (its real cost, so it is timed). */
      if (touch && !(a->flags & GPUMEM_ALLOCATOR_STREAM_ORDERED)) st = gpumem_stream_synchronize(s);
      if (st == GPUMEM_OK) st = a->free(a->ctx, ptrs[op->slot], op->size, s);
      ptrs[op->slot] = NULL;
    }
    if (st != GPUMEM_OK) break;
  }
  for (uint16_t k = 0; st == GPUMEM_OK && k < plan->streams; k++) {
    st = gpumem_stream_synchronize(streams[k]);
  }
  double elapsed = gb_now_ns() - start;
  if (st != GPUMEM_OK) {
    snprintf(err, err_len, "operation %zu of %zu: %s", i, plan->count, gpumem_last_error());
    for (uint32_t k = 0; k < plan->slots; k++) { /* give back what the failed run holds */
      if (ptrs[k] == NULL) continue;
      for (size_t j = 0; j < i; j++) {
        if (plan->ops[j].slot == k && plan->ops[j].kind == GB_ALLOC) {
          a->free(a->ctx, ptrs[k], plan->ops[j].size, streams[plan->ops[j].stream]);
          break;
        }
      }
    }
    for (uint16_t k = 0; k < plan->streams; k++) {
      if (gpumem_stream_synchronize(streams[k]) != GPUMEM_OK) /* the run failed already */
        fprintf(stderr, "gpumem-bench: after a failed run: %s\n", gpumem_last_error());
    }
    elapsed = -1;
  }
  free(ptrs);
  return elapsed;
}
