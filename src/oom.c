/* oom.c: the application's out-of-memory handler (gpumem_set_oom_handler).
 *
 * RMM's failure_callback_resource_adaptor asks a callback whether to retry
 * an allocation that failed; PyTorch frees its cache and retries once. Here
 * one process-wide handler is asked when an allocation through a
 * gpumem_allocator (any allocator of gpumem_allocator_list, one made by
 * gpumem_allocator_from_*, the default allocator) fails with OUT_OF_MEMORY:
 * it gets the size and the device and may free memory (drop a cache, evict,
 * trim) through the library, then returns true to ask for one retry.
 *
 * Rules that keep it safe. The handler is read under a mutex and called
 * with no library lock held, so it may allocate and free through libgpumem.
 * A thread already inside the handler is not offered it again: an
 * allocation the handler makes that fails returns OUT_OF_MEMORY at once,
 * so handlers cannot recurse or loop. One retry per allocation at most;
 * when the handler declines (or none is set) the caller sees the first
 * failure's status and message, unchanged, even if the handler called the
 * library meanwhile.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "allocator.h"
#include "api.h"

static pthread_mutex_t oom_lock = PTHREAD_MUTEX_INITIALIZER;
static gpumem_oom_fn oom_fn;
static void *oom_user;
static _Thread_local bool in_handler;

static gpumem_status set_handler(gpumem_oom_fn fn, void *user) {
  pthread_mutex_lock(&oom_lock);
  oom_fn = fn;
  oom_user = fn != NULL ? user : NULL;
  pthread_mutex_unlock(&oom_lock);
  return GPUMEM_OK;
}

GPUMEM_API gpumem_status gpumem_set_oom_handler(gpumem_oom_fn fn, void *user) {
  gm_error_discard();
  GM_RETURN(set_handler(fn, user));
}

bool gm_oom_retry(size_t size, int device) {
  if (in_handler) return false;
  pthread_mutex_lock(&oom_lock);
  gpumem_oom_fn fn = oom_fn;
  void *user = oom_user;
  pthread_mutex_unlock(&oom_lock);
  if (fn == NULL) return false;
  char first[512]; /* the failure's message, kept across the handler's own calls */
  snprintf(first, sizeof first, "%s", gm_error_detail());
  in_handler = true;
  bool retry = fn(size, device, user);
  in_handler = false;
  gm_error_discard();
  if (!retry) (void)gm_error(GPUMEM_ERR_OUT_OF_MEMORY, "%s", first);
  return retry;
}
