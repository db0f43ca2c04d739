/* host_stream.c: streams, events and stream-ordered work on the host backend.
 *
 * A GPU runs the work queued on a stream later than the call that queued it,
 * in order on that stream, concurrently with other streams and with the host.
 * A host backend that completed work as it was issued could show no
 * stream-ordering bug at all, so this one does what the GPU does:
 *
 * - Every stream has a FIFO queue and a worker thread (started with the
 *   first work item) that runs the items in order after the queueing call
 *   has returned: copies, fills, host functions (gpumem_launch_host_func, the
 *   tests' stand-in for a kernel that reads and writes device memory) and
 *   waits on other streams' progress. Items are numbered per stream: `issued`
 *   counts what was queued, `completed` what has run. Streams run
 *   concurrently with each other.
 *
 * - An event is a point (stream, item number): recording it copies the
 *   stream's `issued` count, and it has completed when the stream's
 *   `completed` count reaches that number; it needs no queue item. A wait on
 *   an event queues an item that blocks its stream until the point is
 *   reached; waiting on an event never recorded does nothing (as in CUDA).
 *   Each stream also remembers the furthest point of each other stream that
 *   it has waited for: the emulated memory pool reads this to follow event
 *   dependencies (host_pool.c).
 *
 * - The host observes completion only through a synchronize or a query that
 *   says done; the stream's `observed` count records it, and the pool treats
 *   frees up to it as observed (cudaMemPoolTrimTo counts frees "whose
 *   completion has not been observed on the host" as outstanding).
 *
 * - Default streams as CUDA defines them: NULL and cudaStreamLegacy name the
 *   legacy default stream of the calling thread's current device, which
 *   synchronises with every blocking stream of that device (work on it waits
 *   for work already queued on them, and their work waits for its work);
 *   non-blocking streams (gpumem_stream_create) do not. cudaStreamPerThread
 *   names a stream of the calling thread and current device that synchronises
 *   with nothing; it goes away when the thread exits.
 *
 * - Destroying a stream with pending work returns at once; the work still
 *   runs, then the stream goes (cudaStreamDestroy: "the resources associated
 *   with stream will be released automatically once the device has
 *   completed all work in stream"). Its handle value is given to the next
 *   stream created, even while the old stream's work runs (a GPU driver may
 *   reissue it too), so objects must not key on handles.
 *
 * - Capture: a stream being captured into a graph (cudaStreamBeginCapture)
 *   queues nothing; synchronizing or querying it is refused
 *   (cudaErrorStreamCaptureUnsupported), and a pool free on it never
 *   completes, since graph launch is not emulated.
 *
 * - A copy or fill that finds its memory unmapped or without access when it
 *   runs is the emulated illegal-address fault: nothing is written, the
 *   device keeps a sticky error, and every later synchronize or query on
 *   that device reports it, as a CUDA context does after
 *   cudaErrorIllegalAddress, until the backend is opened again.
 *
 * GPUMEM_HOST_STREAM_DELAY=max_us delays each item by a random time up to
 * that many microseconds (seeded by GPUMEM_HOST_STREAM_SEED, per stream), so
 * that a race between the host and a stream, or between two streams, shows
 * in a few runs instead of one in a thousand.
 *
 * Locking: one mutex (S.lock) guards every stream and event; workers run
 * items without it. The host backend's lock (host.c) is taken before S.lock
 * when both are needed (the pool asks about stream progress under it), and
 * never while S.lock is held.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/host.h"
#include "hashmap.h"
#include "log.h"
#include "options.h"

#define HOST_STREAM_MAGIC 0x67736d53u /* "gsmS" */
#define HOST_EVENT_MAGIC  0x67736d45u /* "gsmE" */
#define FAULT_TEXT_MAX    320

typedef enum stream_kind {
  KIND_NON_BLOCKING, /* gpumem_stream_create: no implicit ordering */
  KIND_BLOCKING,     /* synchronises with the legacy default stream */
  KIND_LEGACY,       /* NULL / cudaStreamLegacy, one per device */
  KIND_PER_THREAD,   /* cudaStreamPerThread, one per thread and device */
} stream_kind;

typedef enum work_kind {
  WORK_COPY,
  WORK_MEMSET,
  WORK_HOST_FUNC,
  WORK_WAIT,
  WORK_MARK, /* does nothing: a point that completes in order (a pool free) */
} work_kind;

typedef struct work {
  work_kind kind;
  uint64_t seq;
  union {
    struct {
      void *dst;
      const void *src;
      size_t size;
      void *staged; /* freed after the copy: pageable source staged at the call */
    } copy;
    struct {
      void *dst;
      int value;
      size_t size;
    } fill;
    struct {
      gpumem_host_fn fn;
      void *arg;
    } call;
    gm_host_point wait;
  } u;
  struct work *next;
} work;

/* The furthest point of another stream this stream has waited for. */
typedef struct known_point {
  uint64_t stream_id, seq;
} known_point;

/* What the caller holds: a handle, freed when the stream is destroyed (so
 * its address may be given to the next stream created, as a GPU driver may
 * reissue a handle value) while the stream itself lives until its work has
 * run. */
struct CUstream_st {
  _Atomic uint32_t magic;     /* read without the lock by gm_host_stream_state */
  struct host_stream *stream; /* NULL while on the free list */
  struct CUstream_st *next_free;
};

struct host_stream {
  int device;
  stream_kind kind;
  uint64_t id; /* never reused in a process (cudaStreamGetId) */
  int refs;    /* owner (until destroyed), worker, points held by events, waits, pools */
  bool destroyed, worker;
  _Atomic bool capturing; /* read without the lock by gm_host_stream_state */
  uint64_t issued, completed, observed;
  work *head, *tail;
  pthread_cond_t wake; /* work queued or stream destroyed */
  uint64_t rng;
  known_point *known;
  size_t nknown, capknown;
  struct host_stream *next; /* S.streams */
};

struct CUevent_st {
  uint32_t magic;
  int device;
  gm_host_point point; /* the last record; .stream NULL when never recorded */
};

static struct {
  pthread_mutex_t lock;
  pthread_cond_t progress;     /* some stream completed work, or a worker stopped */
  struct host_stream *streams; /* every stream not yet freed */
  gm_hashmap live;             /* handle -> 1: streams and events the caller may name */
  struct host_stream *_Atomic legacy[GPUMEM_MAX_DEVICES]; /* read without the lock too */
  struct CUstream_st *free_handles; /* the next stream created gets the last handle freed */
  uint64_t next_id;
  _Atomic uint64_t generation; /* bumped at close (per-thread streams) */
  int workers;
  unsigned delay_us;
  uint64_t seed;
  bool faulted[GPUMEM_MAX_DEVICES];
  char fault[GPUMEM_MAX_DEVICES][FAULT_TEXT_MAX];
  pthread_once_t key_once;
  pthread_key_t key;
} S = {.lock = PTHREAD_MUTEX_INITIALIZER,
       .progress = PTHREAD_COND_INITIALIZER,
       .live = GM_HASHMAP_INIT,
       .key_once = PTHREAD_ONCE_INIT};

/* The calling thread's per-thread default streams, valid for one generation. */
static _Thread_local struct {
  uint64_t generation;
  struct host_stream *stream[GPUMEM_MAX_DEVICES];
} per_thread;

/* ---- stream objects (S.lock held) ---- */

static uint64_t next_random(uint64_t *x) {
  *x ^= *x << 13;
  *x ^= *x >> 7;
  *x ^= *x << 17;
  return *x;
}

static struct host_stream *stream_new(int device, stream_kind kind) {
  struct host_stream *s = calloc(1, sizeof *s);
  if (s == NULL) return NULL;
  s->device = device;
  s->kind = kind;
  s->id = ++S.next_id;
  s->refs = 1;
  s->rng = (S.seed ^ (s->id * GM_FIB_MULTIPLIER)) | 1u;
  pthread_cond_init(&s->wake, NULL);
  s->next = S.streams;
  S.streams = s;
  return s;
}

static void stream_unref(struct host_stream *s) {
  if (--s->refs > 0) return;
  for (struct host_stream **link = &S.streams; *link != NULL; link = &(*link)->next) {
    if (*link == s) {
      *link = s->next;
      break;
    }
  }
  pthread_cond_destroy(&s->wake);
  free(s->known);
  free(s);
}

/* Mark a stream destroyed: its worker runs what is queued, then it goes. */
static void stream_retire(struct host_stream *s) {
  s->destroyed = true;
  pthread_cond_signal(&s->wake);
  stream_unref(s);
}

static void per_thread_exit(void *unused) {
  GM_UNUSED(unused);
  pthread_mutex_lock(&S.lock);
  if (per_thread.generation == S.generation) {
    for (int d = 0; d < GPUMEM_MAX_DEVICES; d++) {
      if (per_thread.stream[d] != NULL) stream_retire(per_thread.stream[d]);
      per_thread.stream[d] = NULL;
    }
  }
  pthread_mutex_unlock(&S.lock);
}

static void make_key(void) {
  pthread_key_create(&S.key, per_thread_exit);
}

static gpumem_status no_memory(const char *what) {
  return gm_error(GPUMEM_ERR_OUT_OF_MEMORY, "no host memory for %s", what);
}

/* The stream a handle names for the calling thread (S.lock held). */
static gpumem_status resolve(gpumem_stream_t handle, struct host_stream **out) {
  if (handle == NULL || handle == GM_HOST_STREAM_LEGACY || handle == GM_HOST_STREAM_PER_THREAD) {
    int device = gm_host_runtime_device(); /* a thread with none gets device 0, as CUDA does */
    if (!gm_host_device_valid(device)) {
      return gm_error(GPUMEM_ERR_INVALID_DEVICE, "the current device %d does not exist", device);
    }
    struct host_stream **slot;
    if (handle == GM_HOST_STREAM_PER_THREAD) {
      if (per_thread.generation != S.generation) {
        memset(&per_thread, 0, sizeof per_thread);
        per_thread.generation = S.generation;
      }
      slot = &per_thread.stream[device];
    } else {
      slot = (struct host_stream **)&S.legacy[device]; /* written under the lock only */
    }
    if (*slot == NULL) {
      *slot =
          stream_new(device, handle == GM_HOST_STREAM_PER_THREAD ? KIND_PER_THREAD : KIND_LEGACY);
      if (*slot == NULL) return no_memory("a default stream");
      gm_host_context_touch(device);
      if (handle == GM_HOST_STREAM_PER_THREAD) {
        pthread_once(&S.key_once, make_key);
        pthread_setspecific(S.key, &per_thread); /* any non-NULL value runs the destructor */
      }
    }
    *out = *slot;
    return GPUMEM_OK;
  }
  if (!gm_hashmap_get(&S.live, (uint64_t)(uintptr_t)handle, NULL) ||
      handle->magic != HOST_STREAM_MAGIC) {
    return gm_error(GPUMEM_ERR_INVALID_ARGUMENT,
                    "%p is not a live host-backend stream (cudaErrorInvalidResourceHandle)",
                    (void *)handle);
  }
  *out = handle->stream;
  return GPUMEM_OK;
}

static gpumem_status check_event(gpumem_event_t e) {
  if (!gm_hashmap_get(&S.live, (uint64_t)(uintptr_t)e, NULL) || e->magic != HOST_EVENT_MAGIC) {
    return gm_error(GPUMEM_ERR_INVALID_ARGUMENT,
                    "%p is not a live host-backend event (cudaErrorInvalidResourceHandle)",
                    (void *)e);
  }
  return GPUMEM_OK;
}

static gpumem_status not_while_capturing(const struct host_stream *s, const char *what) {
  if (!s->capturing) return GPUMEM_OK;
  return gm_error(GPUMEM_ERR_STATE,
                  "%s: stream %" PRIu64 " is being captured into a graph "
                  "(cudaErrorStreamCaptureUnsupported)",
                  what, s->id);
}

/* The sticky error of a device whose stream work faulted, or OK. */
static gpumem_status sticky(int device) {
  if (!S.faulted[device]) return GPUMEM_OK;
  return gm_error(GPUMEM_ERR_DRIVER, "%s", S.fault[device]);
}

/* ---- the workers ---- */

static void fault(int device, const char *what, const char *detail) {
  pthread_mutex_lock(&S.lock);
  if (!S.faulted[device]) {
    S.faulted[device] = true;
    snprintf(S.fault[device], sizeof S.fault[device],
             "an earlier %s on host device %d faulted when it ran (emulated "
             "cudaErrorIllegalAddress, sticky): %s",
             what, device, detail);
    gm_log(GPUMEM_LOG_ERROR, "%s", S.fault[device]);
  }
  pthread_mutex_unlock(&S.lock);
}

static void run(struct host_stream *s, work *w) {
  gpumem_status st = GPUMEM_OK;
  switch (w->kind) {
  case WORK_COPY:
    st = gm_host_check_accessible(w->u.copy.src, w->u.copy.size, false, "copy source");
    if (st == GPUMEM_OK)
      st = gm_host_check_accessible(w->u.copy.dst, w->u.copy.size, true, "copy destination");
    if (st == GPUMEM_OK) memmove(w->u.copy.dst, w->u.copy.src, w->u.copy.size);
    if (st != GPUMEM_OK) fault(s->device, "copy", gm_error_detail());
    free(w->u.copy.staged);
    break;
  case WORK_MEMSET:
    st = gm_host_check_accessible(w->u.fill.dst, w->u.fill.size, true, "memset destination");
    if (st == GPUMEM_OK) memset(w->u.fill.dst, w->u.fill.value, w->u.fill.size);
    if (st != GPUMEM_OK) fault(s->device, "memset", gm_error_detail());
    break;
  case WORK_HOST_FUNC:
    w->u.call.fn(w->u.call.arg);
    break;
  case WORK_WAIT:
  case WORK_MARK:
    break;
  }
  gm_error_discard();
}

static void *worker_main(void *arg) {
  struct host_stream *s = arg;
  pthread_mutex_lock(&S.lock);
  for (;;) {
    while (s->head == NULL && !s->destroyed)
      pthread_cond_wait(&s->wake, &S.lock);
    work *w = s->head;
    if (w == NULL) break; /* destroyed and drained */
    if (w->kind == WORK_WAIT) {
      while (w->u.wait.stream->completed < w->u.wait.seq)
        pthread_cond_wait(&S.progress, &S.lock);
    }
    unsigned delay = S.delay_us;
    uint64_t r = delay ? next_random(&s->rng) % ((uint64_t)delay + 1) : 0;
    pthread_mutex_unlock(&S.lock);
    if (r > 0) {
      struct timespec ts = {(time_t)(r / 1000000u), (long)(r % 1000000u) * 1000L};
      while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
      }
    }
    run(s, w);
    pthread_mutex_lock(&S.lock);
    s->head = w->next;
    if (s->head == NULL) s->tail = NULL;
    s->completed = w->seq;
    if (w->kind == WORK_WAIT) stream_unref(w->u.wait.stream);
    free(w);
    pthread_cond_broadcast(&S.progress);
  }
  s->worker = false;
  S.workers--;
  pthread_cond_broadcast(&S.progress);
  stream_unref(s);
  pthread_mutex_unlock(&S.lock);
  return NULL;
}

/* Append an item (numbered here) and make sure a worker runs it. */
static gpumem_status push(struct host_stream *s, work *w) {
  if (!s->worker) {
    pthread_attr_t attr;
    pthread_t t;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    s->refs++;
    int rc = pthread_create(&t, &attr, worker_main, s);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
      s->refs--;
      free(w);
      return gm_error(GPUMEM_ERR_OS, "cannot start the worker of a host stream: %s", strerror(rc));
    }
    s->worker = true;
    S.workers++;
  }
  w->seq = ++s->issued;
  w->next = NULL;
  if (s->tail != NULL)
    s->tail->next = w;
  else
    s->head = w;
  s->tail = w;
  pthread_cond_signal(&s->wake);
  return GPUMEM_OK;
}

static gpumem_status push_wait(struct host_stream *s, struct host_stream *on, uint64_t seq) {
  work *w = calloc(1, sizeof *w);
  if (w == NULL) return no_memory("a stream wait");
  w->kind = WORK_WAIT;
  w->u.wait = (gm_host_point){on, seq};
  on->refs++;
  gpumem_status st = push(s, w);
  if (st != GPUMEM_OK) on->refs--;
  return st;
}

/* The legacy default stream's implicit ordering: before new work on the
 * legacy stream, wait for what the device's blocking streams have queued;
 * before new work on a blocking stream, wait for the legacy stream. */
static gpumem_status implicit_waits(struct host_stream *s) {
  gpumem_status st = GPUMEM_OK;
  if (s->kind == KIND_LEGACY) {
    for (struct host_stream *b = S.streams; b != NULL && st == GPUMEM_OK; b = b->next) {
      if (b->kind == KIND_BLOCKING && b->device == s->device && b->completed < b->issued)
        st = push_wait(s, b, b->issued);
    }
  } else if (s->kind == KIND_BLOCKING) {
    struct host_stream *l = S.legacy[s->device];
    if (l != NULL && l->completed < l->issued) st = push_wait(s, l, l->issued);
  }
  return st;
}

/* Queue `w` on the stream `handle` names; a captured stream discards it. */
static gpumem_status enqueue(gpumem_stream_t handle, work *w) {
  pthread_mutex_lock(&S.lock);
  struct host_stream *s = NULL;
  gpumem_status st = resolve(handle, &s);
  if (st == GPUMEM_OK && s->capturing) {
    if (w->kind == WORK_COPY) free(w->u.copy.staged);
    free(w); /* recorded into the graph, which is never launched here */
    w = NULL;
  } else if (st == GPUMEM_OK) {
    st = implicit_waits(s);
    if (st == GPUMEM_OK) {
      st = push(s, w);
      w = NULL; /* push owns it now, even on failure */
    }
  }
  pthread_mutex_unlock(&S.lock);
  free(w);
  return st;
}

/* Record that the host saw `s` complete up to `seq`. */
static void observe(struct host_stream *s, uint64_t seq) {
  if (seq > s->observed) s->observed = seq;
}

static void wait_for(struct host_stream *s, uint64_t seq) {
  while (s->completed < seq)
    pthread_cond_wait(&S.progress, &S.lock);
  observe(s, seq);
}

/* After a synchronize: the pools give back what exceeds their threshold. */
static void synchronized(void) {
  gm_host_lock();
  gm_host_pools_synchronized();
  gm_host_unlock();
}

/* ---- the backend operations ---- */

gpumem_status gm_host_stream_create(int device, unsigned flags, gpumem_stream_t *out) {
  if (!gm_host_device_valid(device)) {
    return gm_error(GPUMEM_ERR_INVALID_DEVICE, "device %d does not exist (host backend has %d)",
                    device, gm_host_device_count());
  }
  pthread_mutex_lock(&S.lock);
  gpumem_stream_t h = S.free_handles;
  if (h != NULL)
    S.free_handles = h->next_free;
  else
    h = calloc(1, sizeof *h);
  if (h == NULL) {
    pthread_mutex_unlock(&S.lock);
    return no_memory("a stream handle");
  }
  gpumem_status st = GPUMEM_OK;
  struct host_stream *s =
      stream_new(device, flags & GM_STREAM_BLOCKING ? KIND_BLOCKING : KIND_NON_BLOCKING);
  if (s == NULL) {
    st = no_memory("a stream");
  } else if (!gm_hashmap_put(&S.live, (uint64_t)(uintptr_t)h, 1)) {
    stream_unref(s);
    st = no_memory("a stream record");
  } else {
    h->stream = s;
    h->next_free = NULL;
    atomic_store_explicit(&h->magic, HOST_STREAM_MAGIC, memory_order_release);
    gm_host_context_touch(device);
    *out = h;
    h = NULL;
  }
  if (h != NULL) {
    h->next_free = S.free_handles;
    S.free_handles = h;
  }
  pthread_mutex_unlock(&S.lock);
  return st;
}

gpumem_status gm_host_stream_destroy(gpumem_stream_t handle) {
  pthread_mutex_lock(&S.lock);
  struct host_stream *s = NULL;
  gpumem_status st = resolve(handle, &s);
  if (st == GPUMEM_OK && (s->kind == KIND_LEGACY || s->kind == KIND_PER_THREAD)) {
    st = gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "a default stream cannot be destroyed");
  }
  if (st == GPUMEM_OK) { /* the handle dies now; queued work still runs */
    gm_hashmap_remove(&S.live, (uint64_t)(uintptr_t)handle);
    atomic_store_explicit(&handle->magic, 0, memory_order_release);
    handle->next_free = S.free_handles; /* handle->stream stays: read only with the magic */
    S.free_handles = handle;
    stream_retire(s);
  }
  pthread_mutex_unlock(&S.lock);
  return st;
}

gpumem_status gm_host_stream_synchronize(gpumem_stream_t handle) {
  pthread_mutex_lock(&S.lock);
  struct host_stream *s = NULL;
  gpumem_status st = resolve(handle, &s);
  if (st == GPUMEM_OK) st = not_while_capturing(s, "synchronize");
  if (st == GPUMEM_OK) {
    wait_for(s, s->issued);
    st = sticky(s->device);
  }
  pthread_mutex_unlock(&S.lock);
  if (st == GPUMEM_OK) synchronized();
  return st;
}

gpumem_status gm_host_stream_query(gpumem_stream_t handle) {
  pthread_mutex_lock(&S.lock);
  struct host_stream *s = NULL;
  gpumem_status st = resolve(handle, &s);
  if (st == GPUMEM_OK) st = not_while_capturing(s, "query");
  if (st == GPUMEM_OK) st = sticky(s->device);
  if (st == GPUMEM_OK) {
    if (s->completed < s->issued) {
      st = gm_error(GPUMEM_ERR_NOT_READY,
                    "stream %" PRIu64 " still has %" PRIu64 " item(s) of work in flight", s->id,
                    s->issued - s->completed);
    } else {
      observe(s, s->issued);
    }
  }
  pthread_mutex_unlock(&S.lock);
  return st;
}

static void know(struct host_stream *s, const gm_host_point *p) {
  for (size_t i = 0; i < s->nknown; i++) {
    if (s->known[i].stream_id == p->stream->id) {
      if (p->seq > s->known[i].seq) s->known[i].seq = p->seq;
      return;
    }
  }
  if (gm_array_make_room((void **)&s->known, &s->capknown, s->nknown, sizeof *s->known, 4))
    s->known[s->nknown++] = (known_point){p->stream->id, p->seq};
  /* without memory the dependency is simply not followed: the pool then
   * reuses less, never wrongly */
}

gpumem_status gm_host_stream_wait_event(gpumem_stream_t handle, gpumem_event_t e) {
  pthread_mutex_lock(&S.lock);
  struct host_stream *s = NULL;
  gpumem_status st = resolve(handle, &s);
  if (st == GPUMEM_OK) st = check_event(e);
  gm_host_point p = st == GPUMEM_OK ? e->point : (gm_host_point){NULL, 0};
  if (p.stream != NULL && !s->capturing) {
    know(s, &p);
    if (p.stream != s && p.stream->completed < p.seq) {
      st = implicit_waits(s);
      if (st == GPUMEM_OK) st = push_wait(s, p.stream, p.seq);
    }
  }
  pthread_mutex_unlock(&S.lock);
  return st;
}

gpumem_status gm_host_event_create(int device, gpumem_event_t *out) {
  if (!gm_host_device_valid(device)) {
    return gm_error(GPUMEM_ERR_INVALID_DEVICE, "device %d does not exist (host backend has %d)",
                    device, gm_host_device_count());
  }
  gpumem_event_t e = calloc(1, sizeof *e);
  if (e == NULL) return no_memory("an event");
  *e = (struct CUevent_st){HOST_EVENT_MAGIC, device, {NULL, 0}};
  pthread_mutex_lock(&S.lock);
  bool ok = gm_hashmap_put(&S.live, (uint64_t)(uintptr_t)e, 1);
  if (ok) gm_host_context_touch(device);
  pthread_mutex_unlock(&S.lock);
  if (!ok) {
    free(e);
    return no_memory("an event record");
  }
  *out = e;
  return GPUMEM_OK;
}

gpumem_status gm_host_event_destroy(gpumem_event_t e) {
  pthread_mutex_lock(&S.lock);
  gpumem_status st = check_event(e);
  if (st == GPUMEM_OK) {
    gm_hashmap_remove(&S.live, (uint64_t)(uintptr_t)e);
    if (e->point.stream != NULL) stream_unref(e->point.stream);
    e->magic = 0;
    free(e);
  }
  pthread_mutex_unlock(&S.lock);
  return st;
}

/* The point that work queued on `s` so far reaches (S.lock held). */
static gpumem_status current_point(struct host_stream *s, gm_host_point *out) {
  gpumem_status st = implicit_waits(s);
  if (st != GPUMEM_OK) return st;
  s->refs++;
  *out = (gm_host_point){s, s->capturing ? UINT64_MAX : s->issued};
  return GPUMEM_OK;
}

gpumem_status gm_host_event_record(gpumem_event_t e, gpumem_stream_t handle) {
  pthread_mutex_lock(&S.lock);
  struct host_stream *s = NULL;
  gpumem_status st = check_event(e);
  if (st == GPUMEM_OK) st = resolve(handle, &s);
  if (st == GPUMEM_OK && s->device != e->device) {
    st = gm_error(GPUMEM_ERR_INVALID_ARGUMENT,
                  "event of device %d recorded on a stream of device %d "
                  "(cudaErrorInvalidResourceHandle)",
                  e->device, s->device);
  }
  gm_host_point p;
  if (st == GPUMEM_OK && !s->capturing && (st = current_point(s, &p)) == GPUMEM_OK) {
    if (e->point.stream != NULL) stream_unref(e->point.stream);
    e->point = p;
  }
  pthread_mutex_unlock(&S.lock);
  return st;
}

gpumem_status gm_host_event_query(gpumem_event_t e) {
  pthread_mutex_lock(&S.lock);
  gpumem_status st = check_event(e);
  if (st == GPUMEM_OK) st = sticky(e->device);
  gm_host_point p = st == GPUMEM_OK ? e->point : (gm_host_point){NULL, 0};
  if (p.stream != NULL) {
    if (p.stream->completed < p.seq) {
      st = gm_error(GPUMEM_ERR_NOT_READY, "the work captured by event %p is not complete",
                    (void *)e);
    } else {
      observe(p.stream, p.seq);
    }
  }
  pthread_mutex_unlock(&S.lock);
  return st;
}

gpumem_status gm_host_event_synchronize(gpumem_event_t e) {
  pthread_mutex_lock(&S.lock);
  gpumem_status st = check_event(e);
  if (st == GPUMEM_OK && e->point.stream != NULL) wait_for(e->point.stream, e->point.seq);
  if (st == GPUMEM_OK) st = sticky(e->device);
  pthread_mutex_unlock(&S.lock);
  if (st == GPUMEM_OK) synchronized();
  return st;
}

gpumem_status gm_host_device_synchronize(int device) {
  if (!gm_host_device_valid(device)) {
    return gm_error(GPUMEM_ERR_INVALID_DEVICE, "device %d does not exist (host backend has %d)",
                    device, gm_host_device_count());
  }
  gm_host_context_touch(device);
  pthread_mutex_lock(&S.lock);
  gpumem_status st = GPUMEM_OK;
  for (struct host_stream *s = S.streams; s != NULL && st == GPUMEM_OK; s = s->next) {
    if (s->device == device && s->capturing) st = not_while_capturing(s, "device synchronize");
  }
  /* Wait for each stream of the device up to what it had queued when the
   * call was made; a stream may be freed while we wait, so hold it. */
  size_t n = 0;
  for (struct host_stream *s = S.streams; s != NULL; s = s->next)
    n += s->device == device;
  gm_host_point *points = st == GPUMEM_OK && n > 0 ? calloc(n, sizeof *points) : NULL;
  if (st == GPUMEM_OK && n > 0 && points == NULL) st = no_memory("a synchronize");
  size_t k = 0;
  for (struct host_stream *s = S.streams; points != NULL && s != NULL; s = s->next) {
    if (s->device != device) continue;
    s->refs++;
    points[k++] = (gm_host_point){s, s->issued};
  }
  for (size_t i = 0; i < k; i++) {
    wait_for(points[i].stream, points[i].seq);
    stream_unref(points[i].stream);
  }
  free(points);
  if (st == GPUMEM_OK) st = sticky(device);
  pthread_mutex_unlock(&S.lock);
  if (st == GPUMEM_OK) synchronized();
  return st;
}

/* Copies follow CUDA's "API synchronization behavior" for pageable host
 * memory (the runtime API documentation): from pageable host memory the
 * stream is synchronized and the source staged before the call returns, the
 * copy itself running later; to pageable host memory the call returns once
 * the copy is done; between two pageable buffers it is a plain copy. Device
 * to device copies run later, in stream order. */
gpumem_status gm_host_memcpy(void *dst, const void *src, size_t size, gpumem_stream_t handle) {
  int device = -1;
  gpumem_status st = gm_host_stream_device(handle, &device);
  if (st == GPUMEM_OK) st = gm_host_check_accessible(src, size, false, "copy source");
  if (st == GPUMEM_OK) st = gm_host_check_accessible(dst, size, true, "copy destination");
  if (st == GPUMEM_OK) st = gm_host_pool_check_access(src, size, device, "copy source");
  if (st == GPUMEM_OK) st = gm_host_pool_check_access(dst, size, device, "copy destination");
  if (st != GPUMEM_OK) return st;
  bool src_host = !gm_host_is_device_memory(src), dst_host = !gm_host_is_device_memory(dst);
  if (src_host && dst_host) {
    memmove(dst, src, size);
    return GPUMEM_OK;
  }
  work *w = calloc(1, sizeof *w);
  void *staged = NULL;
  if (w == NULL) return no_memory("a copy");
  if (src_host) {
    st = gm_host_stream_synchronize(handle);
    staged = st == GPUMEM_OK ? malloc(size) : NULL;
    if (st == GPUMEM_OK && staged == NULL) st = no_memory("a staged copy");
    if (st != GPUMEM_OK) {
      free(w);
      return st;
    }
    memcpy(staged, src, size);
  }
  w->kind = WORK_COPY;
  w->u.copy.dst = dst;
  w->u.copy.src = staged != NULL ? staged : src;
  w->u.copy.size = size;
  w->u.copy.staged = staged;
  st = enqueue(handle, w);
  if (st != GPUMEM_OK) {
    free(staged);
    return st;
  }
  return dst_host ? gm_host_stream_synchronize(handle) : GPUMEM_OK;
}

gpumem_status gm_host_memset(void *dst, int value, size_t size, gpumem_stream_t handle) {
  int device = -1;
  gpumem_status st = gm_host_stream_device(handle, &device);
  if (st == GPUMEM_OK) st = gm_host_check_accessible(dst, size, true, "memset destination");
  if (st == GPUMEM_OK) st = gm_host_pool_check_access(dst, size, device, "memset destination");
  if (st != GPUMEM_OK) return st;
  work *w = calloc(1, sizeof *w);
  if (w == NULL) return no_memory("a memset");
  w->kind = WORK_MEMSET;
  w->u.fill.dst = dst;
  w->u.fill.value = value;
  w->u.fill.size = size;
  return enqueue(handle, w);
}

gpumem_status gm_host_launch_host_func(gpumem_stream_t handle, gpumem_host_fn fn, void *arg) {
  work *w = calloc(1, sizeof *w);
  if (w == NULL) return no_memory("a host function");
  w->kind = WORK_HOST_FUNC;
  w->u.call.fn = fn;
  w->u.call.arg = arg;
  return enqueue(handle, w);
}

gpumem_status gm_host_stream_id(gpumem_stream_t handle, uint64_t *out) {
  pthread_mutex_lock(&S.lock);
  struct host_stream *s = NULL;
  gpumem_status st = resolve(handle, &s);
  if (st == GPUMEM_OK) *out = s->id;
  pthread_mutex_unlock(&S.lock);
  return st;
}

gpumem_status gm_host_stream_device(gpumem_stream_t handle, int *out) {
  pthread_mutex_lock(&S.lock);
  struct host_stream *s = NULL;
  gpumem_status st = resolve(handle, &s);
  if (st == GPUMEM_OK) *out = s->device;
  pthread_mutex_unlock(&S.lock);
  return st;
}

gpumem_status gm_host_stream_capture(gpumem_stream_t handle, bool begin) {
  pthread_mutex_lock(&S.lock);
  struct host_stream *s = NULL;
  gpumem_status st = resolve(handle, &s);
  if (st == GPUMEM_OK && begin && s->kind == KIND_LEGACY) {
    st = gm_error(
        GPUMEM_ERR_STATE,
        "the legacy default stream cannot be captured (cudaErrorStreamCaptureUnsupported)");
  } else if (st == GPUMEM_OK && s->capturing == begin) {
    st = gm_error(GPUMEM_ERR_STATE,
                  "stream %" PRIu64 " is %s being captured (cudaErrorIllegalState)", s->id,
                  begin ? "already" : "not");
  }
  if (st == GPUMEM_OK) atomic_store(&s->capturing, begin);
  pthread_mutex_unlock(&S.lock);
  return st;
}

gpumem_status gm_host_stream_is_capturing(gpumem_stream_t handle, bool *out) {
  pthread_mutex_lock(&S.lock);
  struct host_stream *s = NULL;
  gpumem_status st = resolve(handle, &s);
  if (st == GPUMEM_OK) *out = s->capturing;
  pthread_mutex_unlock(&S.lock);
  return st;
}

/* The stream a handle names, without the lock, when that is safe: the
 * default streams once made for this thread and device, and a caller's live
 * handle (handles are recycled, never freed, until close, so reading one is
 * safe even for a dead handle, which the magic then refuses). NULL: take the
 * slow path under the lock. */
static struct host_stream *resolve_fast(gpumem_stream_t handle) {
  if (handle == NULL || handle == GM_HOST_STREAM_LEGACY || handle == GM_HOST_STREAM_PER_THREAD) {
    int device = gm_host_thread_device();
    if (device < 0 || device >= GPUMEM_MAX_DEVICES) return NULL; /* the runtime picks one */
    if (handle != GM_HOST_STREAM_PER_THREAD) return atomic_load(&S.legacy[device]);
    if (per_thread.generation != atomic_load_explicit(&S.generation, memory_order_relaxed))
      return NULL;
    return per_thread.stream[device];
  }
  if (atomic_load_explicit(&handle->magic, memory_order_acquire) != HOST_STREAM_MAGIC) return NULL;
  return handle->stream;
}

gpumem_status gm_host_stream_state(gpumem_stream_t handle, uint64_t *id, bool *capturing) {
  struct host_stream *s = resolve_fast(handle);
  if (s != NULL) {
    *id = s->id; /* set once, at creation */
    *capturing = atomic_load_explicit(&s->capturing, memory_order_relaxed);
    return GPUMEM_OK;
  }
  pthread_mutex_lock(&S.lock);
  gpumem_status st = resolve(handle, &s);
  if (st == GPUMEM_OK) {
    *id = s->id;
    *capturing = s->capturing;
  }
  pthread_mutex_unlock(&S.lock);
  return st;
}

/* ---- points, for the emulated pool ---- */

gpumem_status gm_host_stream_mark(gpumem_stream_t handle, gm_host_point *out) {
  work *w = calloc(1, sizeof *w);
  if (w == NULL) return no_memory("a stream mark");
  w->kind = WORK_MARK;
  pthread_mutex_lock(&S.lock);
  struct host_stream *s = NULL;
  gpumem_status st = resolve(handle, &s);
  if (st == GPUMEM_OK && !s->capturing) {
    st = implicit_waits(s);
    if (st == GPUMEM_OK) st = push(s, w);
    w = NULL; /* push owns it, even on failure */
  }
  if (st == GPUMEM_OK) {
    s->refs++;
    *out = (gm_host_point){s, s->capturing ? UINT64_MAX : s->issued};
  }
  pthread_mutex_unlock(&S.lock);
  free(w);
  return st;
}

void gm_host_point_release(gm_host_point *p) {
  if (p->stream == NULL) return;
  pthread_mutex_lock(&S.lock);
  stream_unref(p->stream);
  pthread_mutex_unlock(&S.lock);
  p->stream = NULL;
}

void gm_host_point_retain(const gm_host_point *p) {
  pthread_mutex_lock(&S.lock);
  p->stream->refs++;
  pthread_mutex_unlock(&S.lock);
}

bool gm_host_point_done(const gm_host_point *p) {
  pthread_mutex_lock(&S.lock);
  bool done = p->stream->completed >= p->seq;
  pthread_mutex_unlock(&S.lock);
  return done;
}

bool gm_host_point_observed(const gm_host_point *p) {
  pthread_mutex_lock(&S.lock);
  bool seen = p->stream->observed >= p->seq;
  pthread_mutex_unlock(&S.lock);
  return seen;
}

gm_host_reuse gm_host_point_reuse(const gm_host_point *p, gpumem_stream_t handle,
                                  const uint64_t policy[3]) {
  pthread_mutex_lock(&S.lock);
  struct host_stream *s = NULL;
  gm_host_reuse r = GM_HOST_REUSE_NO;
  if (resolve(handle, &s) != GPUMEM_OK) {
    gm_error_discard();
  } else if (p->stream == s || p->stream->observed >= p->seq) {
    r = GM_HOST_REUSE_NOW; /* stream order, or the host saw the free complete */
  } else if (policy[GM_POOL_REUSE_FOLLOW_EVENT_DEPENDENCIES]) {
    for (size_t i = 0; i < s->nknown; i++) {
      if (s->known[i].stream_id == p->stream->id && s->known[i].seq >= p->seq) {
        r = GM_HOST_REUSE_NOW;
        break;
      }
    }
  }
  if (r == GM_HOST_REUSE_NO && s != NULL && p->seq != UINT64_MAX) {
    if (policy[GM_POOL_REUSE_ALLOW_OPPORTUNISTIC] && p->stream->completed >= p->seq)
      r = GM_HOST_REUSE_NOW;
    else if (policy[GM_POOL_REUSE_ALLOW_INTERNAL_DEPENDENCIES] && !s->capturing)
      r = GM_HOST_REUSE_AFTER_WAIT;
  }
  pthread_mutex_unlock(&S.lock);
  return r;
}

gpumem_status gm_host_stream_wait_point(gpumem_stream_t handle, const gm_host_point *p) {
  pthread_mutex_lock(&S.lock);
  struct host_stream *s = NULL;
  gpumem_status st = resolve(handle, &s);
  if (st == GPUMEM_OK && p->stream != s && p->stream->completed < p->seq) {
    st = implicit_waits(s);
    if (st == GPUMEM_OK) st = push_wait(s, p->stream, p->seq);
  }
  pthread_mutex_unlock(&S.lock);
  return st;
}

/* ---- opening and closing ---- */

void gm_host_streams_open(void) {
  pthread_mutex_lock(&S.lock);
  S.delay_us = (unsigned)gm_option_int(GM_OPTION_HOST_STREAM_DELAY);
  S.seed = (uint64_t)gm_option_int(GM_OPTION_HOST_STREAM_SEED);
  memset(S.faulted, 0, sizeof S.faulted);
  pthread_mutex_unlock(&S.lock);
  if (S.delay_us > 0) {
    gm_log(GPUMEM_LOG_INFO, "host streams: each item delayed by up to %u us (seed %" PRIu64 ")",
           S.delay_us, S.seed);
  }
}

void gm_host_streams_drain(void) {
  pthread_mutex_lock(&S.lock);
  for (struct host_stream *s = S.streams; s != NULL; s = s->next)
    wait_for(s, s->issued);
  pthread_mutex_unlock(&S.lock);
}

void gm_host_streams_forget_workers(void) {
  pthread_mutex_lock(&S.lock);
  for (struct host_stream *s = S.streams; s != NULL; s = s->next) {
    s->worker = false;
    s->head = s->tail = NULL; /* the parent's work, not run here (left to the child's exit) */
    s->completed = s->issued;
    /* Its copied condition variable still counts the parent's waiting worker
     * (pthread_cond_destroy would wait for it forever): a fresh one. */
    pthread_cond_init(&s->wake, NULL);
  }
  pthread_cond_init(&S.progress, NULL);
  S.workers = 0;
  pthread_mutex_unlock(&S.lock);
}

void gm_host_streams_close(void) {
  pthread_mutex_lock(&S.lock);
  /* Every stream still here is retired: the caller's (never destroyed), the
   * default ones, and those kept alive by events. Workers stop, then go. */
  for (struct host_stream *s = S.streams; s != NULL; s = s->next) {
    s->destroyed = true;
    pthread_cond_signal(&s->wake);
  }
  while (S.workers > 0)
    pthread_cond_wait(&S.progress, &S.lock);
  for (size_t i = 0; i < S.live.capacity; i++) { /* handles and events never destroyed */
    if (S.live.keys[i] != 0) free((void *)(uintptr_t)S.live.keys[i]);
  }
  while (S.streams != NULL) {
    struct host_stream *s = S.streams;
    S.streams = s->next;
    pthread_cond_destroy(&s->wake);
    free(s->known);
    free(s);
  }
  gm_hashmap_free(&S.live);
  while (S.free_handles != NULL) {
    struct CUstream_st *h = S.free_handles;
    S.free_handles = h->next_free;
    free(h);
  }
  for (int d = 0; d < GPUMEM_MAX_DEVICES; d++)
    atomic_store(&S.legacy[d], NULL);
  S.generation++;
  pthread_mutex_unlock(&S.lock);
}
