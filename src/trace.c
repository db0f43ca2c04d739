/* trace.c: allocation events, as trace lines and as log lines.
 *
 * Every allocation, free and buffer resize of libgpumem's pool, arena and
 * buffer, called directly or through the allocator interface, and every
 * alloc and free of the CUDA baselines behind that interface, is an event.
 * Events go two ways:
 *
 * - GPUMEM_TRACE=FILE appends one line per allocation and free, in the format
 *   gpumem-bench replays and ../shared/traces uses:
 *
 *     op,id,size,stream        (header, written when the file is empty)
 *     a,17,1048576,0           (allocation 17 of 1 MiB on stream 0)
 *     f,17,1048576,0
 *
 *   Ids are unique in the process; streams are numbered in the order they
 *   are first seen, with the legacy stream (NULL) as 0; the arena and the
 *   buffer have no stream and record 0. The name may contain %h and %p, as
 *   GPUMEM_LOG_FILE's may, so that each rank of a job writes a trace of its
 *   own (ids restart in every process: two processes appending to one file
 *   make a trace that does not replay).
 *
 *   A buffer resize is a free of the old size followed by an allocation of
 *   the new size under a new id (a growth from 0 is only the allocation, a
 *   shrink to 0 or a destroy only the free). The live bytes after each pair
 *   are the buffer's size, and in that order (free first) the replayed curve
 *   never rises above anything the buffer held: its peak is the buffer's.
 *   What a replay cannot reproduce is the buffer's own advantage, growth
 *   without a copy; an allocator replaying the trace gets a new block each
 *   time, as a program without growable buffers would. Growths and shrinks of
 *   the mapped capacity (arena chunks, buffer segments) are not allocations
 *   and are only logged. Blocks still allocated when their pool or arena is
 *   destroyed stay live in the trace, as they do in the pool's counters.
 *
 * - GPUMEM_LOG=trace logs one line per event: the object, the size, the
 *   pointer, the stream or device and the id, and one per growth or shrink of
 *   mapped memory.
 *
 * While neither is on, an event costs its caller one relaxed load and an
 * untaken branch (GM_TRACE_HOOKED in trace.h): gm_trace_hooks is zero. Its
 * bits say who listens (log, file) and, after initialisation, that
 * GPUMEM_TRACE has not been looked at yet: the first event opens the file
 * then, so no hot path opens anything and initialisation need not know
 * about tracing.
 *
 * A free names only its pointer, so the events keep a table of live
 * pointers (pointer -> id, pointer -> size) while anyone listens. It is
 * updated under one mutex with the file write, so that the table and the
 * file agree; the hooks run where the memory cannot yet be handed out again
 * (a free before its block returns to a cache or a heap; the arena's, under
 * its shard's lock), so another thread's allocation of the same address is
 * always the later event. A
 * pointer the table cannot take (no host memory) is traced allocated and
 * never freed, and logged without a size at its free; a pointer allocated
 * before tracing began is freed without a trace line. Log lines are written
 * after the mutex is let go; formatting them allocates nothing (log.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hashmap.h"
#include "internal.h"
#include "log.h"
#include "options.h"
#include "trace.h"

#define MAX_TRACED_STREAMS 1024
#define TRACE_LINE_MAX     96 /* "a,<20 digits>,<20 digits>,<4 digits>\n" with room */
#define WHERE_MAX          64 /* " on stream 0x..., device N" */

_Atomic unsigned gm_trace_hooks = GM_HOOK_CHECK;

static pthread_mutex_t trace_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int trace_state; /* 0: not tried, 1: open, 2: off */
static int trace_fd = -1;
static uint64_t next_id; /* under trace_lock */
static gpumem_stream_t streams[MAX_TRACED_STREAMS];
static size_t nstreams;
static gm_hashmap live_ids = GM_HASHMAP_INIT;   /* pointer -> id + 1 */
static gm_hashmap live_sizes = GM_HASHMAP_INIT; /* pointer -> size */
static GM_TLS_FAST int muted;

/* Forget the live table once no one listens (lock held): a later listener
 * must not match its frees against allocations it did not see. */
static void drop_table_if_unheard(void) {
  if ((atomic_load(&gm_trace_hooks) & (GM_HOOK_LOG | GM_HOOK_FILE)) != 0) return;
  gm_hashmap_free(&live_ids);
  gm_hashmap_free(&live_sizes);
}

bool gm_trace_enabled(void) {
  int s = atomic_load_explicit(&trace_state, memory_order_acquire);
  if (s != 0) return s == 1;
  pthread_mutex_lock(&trace_lock);
  if (atomic_load(&trace_state) == 0) {
    const char *pattern = gm_option_string(GM_OPTION_TRACE);
    char path[GM_LOG_PATH_MAX];
    int state = 2;
    if (pattern[0] == '\0') {
      /* not asked for */
    } else if (!gm_log_expand_path(pattern, path, sizeof path)) {
      gm_log(GPUMEM_LOG_WARN,
             "GPUMEM_TRACE='%s' is too long once %%h and %%p are expanded; "
             "not tracing",
             pattern);
    } else if ((trace_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) < 0) {
      gm_log(GPUMEM_LOG_WARN, "GPUMEM_TRACE: cannot open '%s': %s; not tracing", path,
             strerror(errno));
    } else {
      struct stat sb;
      if (fstat(trace_fd, &sb) == 0 && sb.st_size == 0) {
        static const char header[] = "op,id,size,stream\n";
        if (write(trace_fd, header, sizeof header - 1) < 0) { /* reported by the next write */
        }
      }
      gm_log(GPUMEM_LOG_INFO, "tracing allocations to %s", path);
      state = 1;
    }
    if (state == 1) atomic_fetch_or(&gm_trace_hooks, GM_HOOK_FILE);
    atomic_fetch_and(&gm_trace_hooks, ~GM_HOOK_CHECK);
    atomic_store_explicit(&trace_state, state, memory_order_release);
  }
  pthread_mutex_unlock(&trace_lock);
  return atomic_load(&trace_state) == 1;
}

void gm_trace_log_events(bool on) {
  pthread_mutex_lock(&trace_lock);
  if (on) {
    atomic_fetch_or(&gm_trace_hooks, GM_HOOK_LOG);
  } else {
    atomic_fetch_and(&gm_trace_hooks, ~GM_HOOK_LOG);
    drop_table_if_unheard();
  }
  pthread_mutex_unlock(&trace_lock);
}

void gm_trace_close(void) {
  pthread_mutex_lock(&trace_lock);
  if (trace_fd >= 0) close(trace_fd);
  trace_fd = -1;
  nstreams = 0;
  atomic_fetch_and(&gm_trace_hooks, ~GM_HOOK_FILE);
  drop_table_if_unheard();
  atomic_fetch_or(&gm_trace_hooks, GM_HOOK_CHECK);
  atomic_store(&trace_state, 0);
  pthread_mutex_unlock(&trace_lock);
}

void gm_trace_mute(bool mute) {
  muted += mute ? 1 : -1;
}

/* Whether this event is wanted: not muted, and someone listens (after a
 * first look at GPUMEM_TRACE). */
static bool wanted(void) {
  if (muted) return false;
  unsigned h = atomic_load_explicit(&gm_trace_hooks, memory_order_relaxed);
  if (h & GM_HOOK_CHECK) {
    gm_trace_enabled();
    h = atomic_load(&gm_trace_hooks);
  }
  return (h & (GM_HOOK_LOG | GM_HOOK_FILE)) != 0;
}

/* The stream's number (lock held). */
static size_t stream_number(gpumem_stream_t s) {
  if (s == NULL || s == GM_TRACE_NO_STREAM) return 0;
  for (size_t i = 0; i < nstreams; i++) {
    if (streams[i] == s) return i + 1;
  }
  if (nstreams == MAX_TRACED_STREAMS) return MAX_TRACED_STREAMS; /* all the rest share one */
  streams[nstreams++] = s;
  return nstreams;
}

/* Append "a,id,size,stream" or "f,..." (lock held). */
static void record(char op, uint64_t id, size_t size, gpumem_stream_t stream) {
  if (trace_fd < 0) return;
  char line[TRACE_LINE_MAX];
  int n = snprintf(line, sizeof line, "%c,%llu,%zu,%zu\n", op, (unsigned long long)id, size,
                   stream_number(stream));
  if (write(trace_fd, line, (size_t)n) != n) {
    gm_log(GPUMEM_LOG_WARN, "GPUMEM_TRACE: write failed: %s; tracing stops", strerror(errno));
    close(trace_fd);
    trace_fd = -1;
    atomic_store(&trace_state, 2);
    atomic_fetch_and(&gm_trace_hooks, ~GM_HOOK_FILE);
    drop_table_if_unheard();
  }
}

/* A new id for ptr, remembered with its size (lock held). */
static uint64_t remember(const void *ptr, size_t size) {
  uint64_t id = next_id++;
  uint64_t key = (uint64_t)(uintptr_t)ptr;
  if (!gm_hashmap_put(&live_ids, key, id + 1)) return id;
  if (!gm_hashmap_put(&live_sizes, key, size)) gm_hashmap_remove(&live_ids, key);
  return id;
}

/* Take ptr's record out of the table (lock held). */
static gm_trace_entry forget(const void *ptr) {
  gm_trace_entry e = {0, 0, false};
  uint64_t key = (uint64_t)(uintptr_t)ptr, id = 0, size = 0;
  if (gm_hashmap_get(&live_ids, key, &id) && gm_hashmap_get(&live_sizes, key, &size)) {
    e = (gm_trace_entry){id - 1, (size_t)size, true};
  }
  gm_hashmap_remove(&live_ids, key);
  gm_hashmap_remove(&live_sizes, key);
  return e;
}

/* " on stream 0x..., device N", " on device N" or " on any device". */
static const char *where(gpumem_stream_t stream, int device, char *buf, size_t len) {
  char dev[24] = "any device";
  if (device >= 0) snprintf(dev, sizeof dev, "device %d", device);
  if (stream == GM_TRACE_NO_STREAM) {
    snprintf(buf, len, " on %s", dev);
  } else {
    snprintf(buf, len, " on stream %p, %s", (void *)stream, dev);
  }
  return buf;
}

void gm_trace_alloc(const char *what, const void *owner, const void *ptr, size_t size,
                    gpumem_stream_t stream, int device) {
  if (!wanted()) return;
  pthread_mutex_lock(&trace_lock);
  uint64_t id = remember(ptr, size);
  record('a', id, size, stream);
  pthread_mutex_unlock(&trace_lock);
  char w[WHERE_MAX];
  gm_log(GPUMEM_LOG_TRACE, "%s %p: alloc %zu B at %p%s (id %llu)", what, owner, size, ptr,
         where(stream, device, w, sizeof w), (unsigned long long)id);
}

gm_trace_entry gm_trace_take(const void *ptr) {
  gm_trace_entry e = {0, 0, false};
  if (!wanted()) return e;
  pthread_mutex_lock(&trace_lock);
  e = forget(ptr);
  pthread_mutex_unlock(&trace_lock);
  return e;
}

void gm_trace_put_back(const void *ptr, gm_trace_entry e) {
  if (!e.known) return;
  uint64_t key = (uint64_t)(uintptr_t)ptr;
  pthread_mutex_lock(&trace_lock);
  if (gm_hashmap_put(&live_ids, key, e.id + 1) && !gm_hashmap_put(&live_sizes, key, e.size)) {
    gm_hashmap_remove(&live_ids, key);
  }
  pthread_mutex_unlock(&trace_lock);
}

void gm_trace_freed(const char *what, const void *owner, const void *ptr, gm_trace_entry e,
                    size_t size, gpumem_stream_t stream, int device) {
  if (!wanted()) return;
  if (e.known) {
    pthread_mutex_lock(&trace_lock);
    record('f', e.id, e.size, stream);
    pthread_mutex_unlock(&trace_lock);
  }
  char w[WHERE_MAX], sz[32] = "";
  if (e.known || size != 0) snprintf(sz, sizeof sz, " %zu B", e.known ? e.size : size);
  char id[48] = " (allocated before tracing began)";
  if (e.known) snprintf(id, sizeof id, " (id %llu)", (unsigned long long)e.id);
  gm_log(GPUMEM_LOG_TRACE, "%s %p: free%s at %p%s%s", what, owner, sz, ptr,
         where(stream, device, w, sizeof w), id);
}

void gm_trace_free(const char *what, const void *owner, const void *ptr, gpumem_stream_t stream,
                   int device) {
  if (!wanted()) return;
  pthread_mutex_lock(&trace_lock);
  gm_trace_entry e = forget(ptr);
  pthread_mutex_unlock(&trace_lock);
  gm_trace_freed(what, owner, ptr, e, 0, stream, device);
}

void gm_trace_resize(const char *what, const void *owner, const void *ptr, size_t old_size,
                     size_t new_size, int device) {
  if (old_size == new_size || !wanted()) return;
  pthread_mutex_lock(&trace_lock);
  gm_trace_entry e = forget(ptr);
  if (e.known) record('f', e.id, e.size, GM_TRACE_NO_STREAM);
  uint64_t id = new_size > 0 ? remember(ptr, new_size) : 0;
  if (new_size > 0) record('a', id, new_size, GM_TRACE_NO_STREAM);
  pthread_mutex_unlock(&trace_lock);
  char w[WHERE_MAX], ids[48] = "";
  if (new_size > 0) snprintf(ids, sizeof ids, " (id %llu)", (unsigned long long)id);
  gm_log(GPUMEM_LOG_TRACE, "%s %p: resize %zu -> %zu B at %p%s%s", what, owner, old_size, new_size,
         ptr, where(GM_TRACE_NO_STREAM, device, w, sizeof w), ids);
}

void gm_trace_mapping(const char *what, const void *owner, bool grew, const void *at, size_t bytes,
                      size_t mapped, int device) {
  if (!wanted()) return;
  char w[WHERE_MAX];
  gm_log(GPUMEM_LOG_TRACE, "%s %p: %s %zu B at %p, %zu B mapped now%s", what, owner,
         grew ? "mapped" : "unmapped", bytes, at, mapped,
         where(GM_TRACE_NO_STREAM, device, w, sizeof w));
}
