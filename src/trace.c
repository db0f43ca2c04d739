/* trace.c: allocation traces in the replay format.
 *
 * GPUMEM_TRACE=FILE makes every allocator created through
 * gpumem_allocator_create append one line per alloc and free:
 *
 *   op,id,size,stream        (header, written when the file is empty)
 *   a,17,1048576,0           (allocation 17 of 1 MiB on stream 0)
 *   f,17,1048576,0
 *
 * the format gpumem-bench replays and ../shared/traces uses. Ids are unique in
 * the process; streams are numbered in the order they are first seen, with
 * the legacy stream (NULL) as 0. Lines are formatted on the stack and
 * written with one write(2) under a mutex, so concurrent allocators
 * interleave whole lines. Tracing costs nothing when the variable is unset.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "options.h"
#include "trace.h"

#define MAX_TRACED_STREAMS 1024

static pthread_mutex_t trace_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int trace_state; /* 0: not tried, 1: open, 2: off */
static int trace_fd = -1;
static _Atomic uint64_t next_id;
static gpumem_stream_t streams[MAX_TRACED_STREAMS];
static size_t nstreams;

bool gm_trace_enabled(void) {
  int s = atomic_load_explicit(&trace_state, memory_order_acquire);
  if (s != 0) return s == 1;
  pthread_mutex_lock(&trace_lock);
  if (atomic_load(&trace_state) == 0) {
    const char *path = gm_option_string(GM_OPTION_TRACE);
    int state = 2;
    if (path[0] != '\0') {
      trace_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      struct stat sb;
      if (trace_fd < 0) {
        gm_log(GPUMEM_LOG_WARN, "GPUMEM_TRACE: cannot open '%s': %s; not tracing", path,
               strerror(errno));
      } else {
        if (fstat(trace_fd, &sb) == 0 && sb.st_size == 0) {
          static const char header[] = "op,id,size,stream\n";
          if (write(trace_fd, header, sizeof header - 1) < 0) { /* reported by the next write */
          }
        }
        gm_log(GPUMEM_LOG_INFO, "tracing allocations to %s", path);
        state = 1;
      }
    }
    atomic_store_explicit(&trace_state, state, memory_order_release);
  }
  pthread_mutex_unlock(&trace_lock);
  return atomic_load(&trace_state) == 1;
}

uint64_t gm_trace_next_id(void) {
  return atomic_fetch_add(&next_id, 1);
}

/* The stream's number (lock held). */
static size_t stream_number(gpumem_stream_t s) {
  if (s == NULL) return 0;
  for (size_t i = 0; i < nstreams; i++) {
    if (streams[i] == s) return i + 1;
  }
  if (nstreams == MAX_TRACED_STREAMS) return MAX_TRACED_STREAMS; /* all the rest share one */
  streams[nstreams++] = s;
  return nstreams;
}

void gm_trace_record(char op, uint64_t id, size_t size, gpumem_stream_t stream) {
  char line[96];
  pthread_mutex_lock(&trace_lock);
  int n = snprintf(line, sizeof line, "%c,%llu,%zu,%zu\n", op, (unsigned long long)id, size,
                   stream_number(stream));
  if (trace_fd >= 0 && write(trace_fd, line, (size_t)n) != n) {
    gm_log(GPUMEM_LOG_WARN, "GPUMEM_TRACE: write failed: %s; tracing stops", strerror(errno));
    close(trace_fd);
    trace_fd = -1;
    atomic_store(&trace_state, 2);
  }
  pthread_mutex_unlock(&trace_lock);
}

void gm_trace_close(void) {
  pthread_mutex_lock(&trace_lock);
  if (trace_fd >= 0) close(trace_fd);
  trace_fd = -1;
  nstreams = 0;
  atomic_store(&trace_state, 0);
  pthread_mutex_unlock(&trace_lock);
}
