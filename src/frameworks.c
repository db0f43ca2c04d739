/* frameworks.c: one allocator per device for PyTorch, CuPy and Numba.
 *
 * A framework loads its allocator by symbol name and calls it with a device
 * ordinal and a stream, never with an allocator handle. So this file keeps
 * a table, indexed by device, of the allocators it made: a slot is an atomic
 * pointer, NULL until the first call for its device. The fast path is one
 * acquire load and a call through the allocator; the first call for a
 * device takes `make_lock`, looks again (another thread may have made it
 * meanwhile), makes the allocator GPUMEM_ALLOC_CONF describes for that
 * device (gm_conf_allocator_create) and publishes it with a release store.
 * A failure to make one publishes nothing, so the next call tries again.
 *
 * The allocators stay until gpumem_framework_release (gpumem_finalize calls
 * it), which destroys each one with nothing allocated. It is the one call
 * that must not overlap the others: a slot is emptied while nothing can be
 * in flight through it.
 *
 * Stream order. The allocator interface's free is stream-ordered for the
 * pool and immediate for the arena (allocator.h). PyTorch and CuPy free a
 * block while kernels queued on its stream may still read it, so for an
 * allocator without GPUMEM_ALLOCATOR_STREAM_ORDERED the free first waits for
 * the stream (gm_be_stream_synchronize): a blocking free, but never a block
 * handed out again under running work. The pool needs no wait.
 *
 * PyTorch's two entry points return no status: their failures are logged at
 * error level (the default log level shows them) and left as the thread's
 * last error; a bad free changes nothing, as for every other bad input.
 */
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include "gpumem/frameworks.h"

#include "abi.h"
#include "alloc_conf.h"
#include "api.h"
#include "frameworks.h"
#include "log.h"

typedef struct fw_slot {
  gpumem_allocator allocator;
} fw_slot;

static _Atomic(fw_slot *) slots[GPUMEM_MAX_DEVICES];
static pthread_mutex_t make_lock = PTHREAD_MUTEX_INITIALIZER;
static gm_frameworks_factory factory = gm_conf_allocator_create; /* make_lock held */

void gm_frameworks_set_factory(gm_frameworks_factory make) {
  pthread_mutex_lock(&make_lock);
  factory = make != NULL ? make : gm_conf_allocator_create;
  pthread_mutex_unlock(&make_lock);
}

static gpumem_status check_device(int device) {
  if (device < 0 || device >= GPUMEM_MAX_DEVICES) {
    return gm_error(GPUMEM_ERR_INVALID_DEVICE, "device %d is out of range (0..%d)", device,
                    GPUMEM_MAX_DEVICES - 1);
  }
  return GPUMEM_OK;
}

/* The slot of `device`, or NULL when none was made (no error recorded). */
static fw_slot *find(int device) {
  return atomic_load_explicit(&slots[device], memory_order_acquire);
}

/* The slot of `device`, made now if needed (device checked by the caller). */
static gpumem_status get(int device, fw_slot **out) {
  fw_slot *s = find(device);
  if (s != NULL) {
    *out = s;
    return GPUMEM_OK;
  }
  gpumem_status st = gm_ensure_init();
  if (st != GPUMEM_OK) return st;
  int count = 0;
  st = gm_be_device_count(&count);
  if (st != GPUMEM_OK) return st;
  if (device >= count) {
    return gm_error(GPUMEM_ERR_INVALID_DEVICE, "device %d does not exist (%d device%s)", device,
                    count, count == 1 ? "" : "s");
  }
  pthread_mutex_lock(&make_lock);
  s = atomic_load_explicit(&slots[device], memory_order_relaxed);
  if (s == NULL) {
    fw_slot *made = calloc(1, sizeof *made);
    if (made == NULL) {
      st = gm_error(GPUMEM_ERR_OUT_OF_MEMORY, "no host memory for device %d's allocator", device);
    } else {
      made->allocator = (gpumem_allocator)GPUMEM_ALLOCATOR_INIT;
      st = factory(device, &made->allocator);
      if (st != GPUMEM_OK) {
        free(made);
      } else {
        gm_log(GPUMEM_LOG_INFO, "frameworks: device %d allocates through %s%s", device,
               made->allocator.name,
               made->allocator.flags & GPUMEM_ALLOCATOR_STREAM_ORDERED
                   ? " (stream-ordered)"
                   : " (not stream-ordered: a free waits for its stream)");
        atomic_store_explicit(&slots[device], made, memory_order_release);
        s = made;
      }
    }
  }
  pthread_mutex_unlock(&make_lock);
  if (st == GPUMEM_OK) *out = s;
  return st;
}

static gpumem_status fw_alloc(int device, size_t size, gpumem_stream_t stream, void **ptr) {
  if (ptr == NULL) return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "ptr is NULL");
  if (size == 0) return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "cannot allocate 0 bytes");
  gpumem_status st = check_device(device);
  fw_slot *s = NULL;
  if (st == GPUMEM_OK) st = get(device, &s);
  if (st != GPUMEM_OK) return st;
  void *p = NULL;
  st = s->allocator.alloc(s->allocator.ctx, size, stream, &p);
  if (st != GPUMEM_OK) return gm_error(st, "%s", gpumem_last_error());
  *ptr = p;
  return GPUMEM_OK;
}

static gpumem_status fw_free(int device, void *ptr, size_t size, gpumem_stream_t stream) {
  if (ptr == NULL) return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "ptr is NULL");
  gpumem_status st = check_device(device);
  if (st != GPUMEM_OK) return st;
  fw_slot *s = find(device);
  if (s == NULL) {
    return gm_error(GPUMEM_ERR_NOT_FOUND,
                    "device %d has no framework allocator: %p of %zu bytes was not allocated on it",
                    device, ptr, size);
  }
  if (!(s->allocator.flags & GPUMEM_ALLOCATOR_STREAM_ORDERED)) {
    st = gm_be_stream_synchronize(stream);
    if (st != GPUMEM_OK) {
      char why[GM_ERROR_DETAIL_MAX]; /* the detail is rewritten below: copy it first */
      snprintf(why, sizeof why, "%s", gm_error_detail());
      return gm_error(st, "waiting for stream %p before %s frees %p: %s", (void *)stream,
                      s->allocator.name, ptr, why);
    }
  }
  st = s->allocator.free(s->allocator.ctx, ptr, size, stream);
  if (st != GPUMEM_OK) return gm_error(st, "device %d: %s", device, gpumem_last_error());
  return GPUMEM_OK;
}

GPUMEM_API gpumem_status gpumem_framework_alloc(int device, size_t size, gpumem_stream_t stream,
                                                void **ptr) {
  gm_error_discard();
  GM_RETURN(fw_alloc(device, size, stream, ptr));
}

GPUMEM_API gpumem_status gpumem_framework_free(int device, void *ptr, size_t size,
                                               gpumem_stream_t stream) {
  gm_error_discard();
  GM_RETURN(fw_free(device, ptr, size, stream));
}

GPUMEM_API void *gpumem_torch_malloc(ssize_t size, int device, gpumem_stream_t stream) {
  gm_error_discard();
  if (size == 0) return NULL;
  void *p = NULL;
  gpumem_status st = size < 0 ? gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "size %zd is negative", size)
                              : fw_alloc(device, (size_t)size, stream, &p);
  if (st != GPUMEM_OK) {
    gm_api_return(__func__, st);
    gm_log(GPUMEM_LOG_ERROR, "%s", gpumem_last_error());
    return NULL;
  }
  return p;
}

GPUMEM_API void gpumem_torch_free(void *ptr, ssize_t size, int device, gpumem_stream_t stream) {
  gm_error_discard();
  if (ptr == NULL) return;
  gpumem_status st = size < 0 ? gm_error(GPUMEM_ERR_INVALID_ARGUMENT,
                                         "size %zd of %p is negative: not freed", size, ptr)
                              : fw_free(device, ptr, (size_t)size, stream);
  if (st != GPUMEM_OK) {
    gm_api_return(__func__, st);
    gm_log(GPUMEM_LOG_ERROR, "%s", gpumem_last_error());
  }
}

static gpumem_status fw_allocator(int device, gpumem_allocator *out) {
  gpumem_status st = gm_abi_check_out(out, sizeof *out, "allocator (GPUMEM_ALLOCATOR_INIT)");
  if (st == GPUMEM_OK) st = check_device(device);
  fw_slot *s = NULL;
  if (st == GPUMEM_OK) st = get(device, &s);
  if (st == GPUMEM_OK) gm_abi_write(out, &s->allocator, sizeof s->allocator);
  return st;
}

GPUMEM_API gpumem_status gpumem_framework_allocator(int device, gpumem_allocator *allocator) {
  gm_error_discard();
  GM_RETURN(fw_allocator(device, allocator));
}

static gpumem_status fw_stats(int device, gpumem_stats *out) {
  gpumem_status st = gm_abi_check_out(out, sizeof *out, "stats (GPUMEM_STATS_INIT)");
  if (st == GPUMEM_OK) st = check_device(device);
  if (st != GPUMEM_OK) return st;
  fw_slot *s = find(device);
  if (s == NULL) {
    return gm_error(GPUMEM_ERR_NOT_FOUND,
                    "device %d has no framework allocator (nothing was allocated on it)", device);
  }
  st = s->allocator.stats(s->allocator.ctx, out);
  return st == GPUMEM_OK ? st : gm_error(st, "%s", gpumem_last_error());
}

GPUMEM_API gpumem_status gpumem_framework_stats(int device, gpumem_stats *stats) {
  gm_error_discard();
  GM_RETURN(fw_stats(device, stats));
}

static gpumem_status trim_one(int device) {
  fw_slot *s = find(device);
  if (s == NULL || s->allocator.trim == NULL) return GPUMEM_OK;
  gpumem_status st = s->allocator.trim(s->allocator.ctx);
  return st == GPUMEM_OK ? st : gm_error(st, "device %d: %s", device, gpumem_last_error());
}

static gpumem_status fw_trim(int device) {
  if (device != -1) {
    gpumem_status st = check_device(device);
    return st == GPUMEM_OK ? trim_one(device) : st;
  }
  gpumem_status first = GPUMEM_OK; /* every device is tried; the first failure is reported */
  char detail[GM_ERROR_DETAIL_MAX] = "";
  for (int d = 0; d < GPUMEM_MAX_DEVICES; d++) {
    gpumem_status st = trim_one(d);
    if (st == GPUMEM_OK) continue;
    if (first == GPUMEM_OK) {
      first = st;
      snprintf(detail, sizeof detail, "%s", gm_error_detail());
    } else {
      gm_log(GPUMEM_LOG_WARN, "trim: %s", gm_error_detail());
    }
  }
  return first == GPUMEM_OK ? first : gm_error(first, "%s", detail);
}

GPUMEM_API gpumem_status gpumem_framework_trim(int device) {
  gm_error_discard();
  GM_RETURN(fw_trim(device));
}

gpumem_status gm_frameworks_release(void) {
  gpumem_status first = GPUMEM_OK;
  char detail[GM_ERROR_DETAIL_MAX] = "";
  pthread_mutex_lock(&make_lock);
  for (int d = 0; d < GPUMEM_MAX_DEVICES; d++) {
    fw_slot *s = atomic_load_explicit(&slots[d], memory_order_relaxed);
    if (s == NULL) continue;
    gpumem_status st = gpumem_allocator_destroy(&s->allocator);
    if (st != GPUMEM_OK) { /* still there, unchanged: reported, tried again next time */
      gm_log(GPUMEM_LOG_DEBUG, "frameworks: device %d's allocator stays: %s", d,
             gpumem_last_error());
      if (first == GPUMEM_OK) {
        first = st;
        snprintf(detail, sizeof detail, "device %d: %s", d, gpumem_last_error());
      }
      continue;
    }
    atomic_store_explicit(&slots[d], NULL, memory_order_release);
    free(s);
  }
  pthread_mutex_unlock(&make_lock);
  return first == GPUMEM_OK ? first : gm_error(first, "%s", detail);
}

GPUMEM_API gpumem_status gpumem_framework_release(void) {
  gm_error_discard();
  GM_RETURN(gm_frameworks_release());
}
