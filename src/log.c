/* log.c: one line per event, to stderr, a file or a callback.
 *
 * A message is formatted into a buffer on the stack ("gpumem: warn: ...")
 * and handed to the sink in one write(2), so lines from different threads
 * do not interleave and nothing is allocated on the way (mimalloc reports
 * the same way). The level is an atomic read on every call, so a disabled
 * level costs one load. The sink (file descriptor or callback) is changed
 * under a mutex and copied out of it before use; the callback runs outside
 * the lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "internal.h"
#include "log.h"

static _Atomic int log_level = GPUMEM_LOG_WARN;

static pthread_mutex_t sink_lock = PTHREAD_MUTEX_INITIALIZER;
static gpumem_log_fn sink_fn;
static void *sink_user;
static int sink_fd = -1; /* -1: stderr */

static const char *const level_names[] = {"off", "error", "warn", "info", "debug", "trace"};

GPUMEM_API const char *gpumem_log_level_name(gpumem_log_level level) {
  if ((int)level < 0 || (size_t)level >= GM_ARRAY_SIZE(level_names)) return "?";
  return level_names[level];
}

bool gm_log_parse_level(const char *word, gpumem_log_level *out) {
  for (size_t i = 0; i < GM_ARRAY_SIZE(level_names); i++) {
    if (strcasecmp(word, level_names[i]) == 0) {
      *out = (gpumem_log_level)i;
      return true;
    }
  }
  if (strcasecmp(word, "warning") == 0) {
    *out = GPUMEM_LOG_WARN;
    return true;
  }
  if (strcasecmp(word, "none") == 0) {
    *out = GPUMEM_LOG_OFF;
    return true;
  }
  return false;
}

bool gm_log_enabled(gpumem_log_level level) {
  return level != GPUMEM_LOG_OFF &&
         (int)level <= atomic_load_explicit(&log_level, memory_order_relaxed);
}

GPUMEM_API gpumem_status gpumem_log_set_level(gpumem_log_level level) {
  if ((int)level < GPUMEM_LOG_OFF || (int)level > GPUMEM_LOG_TRACE) {
    GM_RETURN(gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "level %d is not a gpumem_log_level (0..5)",
                       (int)level));
  }
  atomic_store(&log_level, (int)level);
  return GPUMEM_OK;
}

GPUMEM_API gpumem_log_level gpumem_log_get_level(void) {
  return (gpumem_log_level)atomic_load(&log_level);
}

GPUMEM_API gpumem_status gpumem_log_set_callback(gpumem_log_fn fn, void *user) {
  pthread_mutex_lock(&sink_lock);
  sink_fn = fn;
  sink_user = fn ? user : NULL;
  pthread_mutex_unlock(&sink_lock);
  return GPUMEM_OK;
}

GPUMEM_API gpumem_status gpumem_log_set_file(const char *path) {
  int fd = -1;
  if (path != NULL && path[0] != '\0') {
    fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
      GM_RETURN(gm_error(GPUMEM_ERR_OS, "cannot open log file '%s': %s", path, strerror(errno)));
    }
  }
  pthread_mutex_lock(&sink_lock);
  int old = sink_fd;
  sink_fd = fd;
  pthread_mutex_unlock(&sink_lock);
  if (old >= 0) close(old);
  return GPUMEM_OK;
}

static void write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return; /* nowhere left to report a failing log sink */
    }
    buf += n;
    len -= (size_t)n;
  }
}

void gm_vlog(gpumem_log_level level, const char *fmt, va_list ap) {
  if (!gm_log_enabled(level)) return;
  char line[GPUMEM_LOG_LINE_MAX];
  int saved_errno = errno;
  int head = snprintf(line, sizeof line, "gpumem: %s: ", gpumem_log_level_name(level));
  int body = vsnprintf(line + head, sizeof line - (size_t)head - 1, fmt, ap);
  size_t len = (size_t)head + (body < 0 ? 0 : (size_t)body);
  if (len > sizeof line - 2) len = sizeof line - 2; /* cut, leaving room for '\n' */

  pthread_mutex_lock(&sink_lock);
  gpumem_log_fn fn = sink_fn;
  void *user = sink_user;
  int fd = sink_fd >= 0 ? sink_fd : STDERR_FILENO;
  if (fn == NULL) { /* write under the lock so a concurrent set_file cannot close fd */
    line[len] = '\n';
    write_all(fd, line, len + 1);
  }
  pthread_mutex_unlock(&sink_lock);
  if (fn != NULL) {
    line[len] = '\0';
    fn(level, line, user);
  }
  errno = saved_errno;
}

void gm_log(gpumem_log_level level, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  gm_vlog(level, fmt, ap);
  va_end(ap);
}
