/* log.c: one line per event, to stderr, a file or a callback.
 *
 * A message is formatted into a buffer on the stack and handed to the sink
 * in one write(2), so lines from different threads do not interleave and
 * nothing is allocated on the way (mimalloc reports the same way). Lines to
 * stderr and to the log file carry what a job's merged output needs to be
 * sorted and attributed, as NCCL_DEBUG's do:
 *
 *   gpumem: 2026-12-01T06:01:02.123456Z node17:4711 warn: <message>
 *
 * (UTC with microseconds, from clock_gettime and gmtime_r, which neither
 * allocates nor reads the time zone files that localtime_r may open; the host
 * name up to its first dot, read once; the pid read per line, so a forked
 * child's lines carry its own). A callback gets the line without the time
 * and host:pid ("gpumem: warn: <message>"): it hands lines to a logger of the
 * application's, which stamps them its own way.
 *
 * The level is an atomic read on every call, so a disabled level costs one
 * load; setting it also tells trace.c whether allocation events are to be
 * logged (GPUMEM_LOG=trace). The sink (file descriptor or callback) is
 * changed under a mutex and copied out of it before use; the callback runs
 * outside the lock. A log file's name may contain %h (host name) and %p
 * (pid), expanded when it is opened, as NCCL_DEBUG_FILE's may, so that the
 * ranks of a job write a file each.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "log.h"
#include "trace.h"

#define LOG_PREFIX    "gpumem: "
#define HOST_NAME_LEN 256 /* POSIX HOST_NAME_MAX is at least 255 */

static _Atomic int log_level = GPUMEM_LOG_WARN;

static pthread_mutex_t sink_lock = PTHREAD_MUTEX_INITIALIZER;
static gpumem_log_fn sink_fn;
static void *sink_user;
static int sink_fd = -1; /* -1: stderr */

static pthread_once_t host_once = PTHREAD_ONCE_INIT;
static char host_name[HOST_NAME_LEN];

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
  gm_trace_log_events(level == GPUMEM_LOG_TRACE);
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

/* The host name up to its first dot ("node17" for node17.cluster.org), as
 * NCCL names hosts in its lines and file names; "unknown" when there is none. */
static void read_host_name(void) {
  if (gethostname(host_name, sizeof host_name) != 0 || host_name[0] == '\0') {
    snprintf(host_name, sizeof host_name, "unknown");
  }
  host_name[sizeof host_name - 1] = '\0'; /* gethostname may not terminate a cut name */
  char *dot = strchr(host_name, '.');
  if (dot != NULL && dot != host_name) *dot = '\0';
}

const char *gm_log_host_name(void) {
  pthread_once(&host_once, read_host_name);
  return host_name;
}

bool gm_log_expand_path(const char *pattern, char *out, size_t len) {
  if (len == 0) return false;
  size_t n = 0;
  for (const char *c = pattern; *c != '\0'; c++) {
    char piece[HOST_NAME_LEN];
    if (c[0] == '%' && c[1] == 'h') {
      snprintf(piece, sizeof piece, "%s", gm_log_host_name());
      c++;
    } else if (c[0] == '%' && c[1] == 'p') {
      snprintf(piece, sizeof piece, "%ld", (long)getpid());
      c++;
    } else if (c[0] == '%' && c[1] == '%') {
      snprintf(piece, sizeof piece, "%%");
      c++;
    } else { /* anything else, a lone '%' included, is kept as written (NCCL does too) */
      piece[0] = *c;
      piece[1] = '\0';
    }
    size_t plen = strlen(piece);
    if (n + plen >= len) return false;
    memcpy(out + n, piece, plen);
    n += plen;
  }
  out[n] = '\0';
  return true;
}

GPUMEM_API gpumem_status gpumem_log_set_file(const char *path) {
  int fd = -1;
  if (path != NULL && path[0] != '\0') {
    char name[GM_LOG_PATH_MAX];
    if (!gm_log_expand_path(path, name, sizeof name)) {
      GM_RETURN(gm_error(GPUMEM_ERR_INVALID_ARGUMENT,
                         "the log file name is %d bytes or longer once %%h and %%p are expanded "
                         "in '%s'",
                         GM_LOG_PATH_MAX, path));
    }
    fd = open(name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
      GM_RETURN(gm_error(GPUMEM_ERR_OS, "cannot open log file '%s': %s", name, strerror(errno)));
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

/* "2026-12-01T06:01:02.123456Z node17:4711 " into buf; its length (0 if it
 * does not fit, which GPUMEM_LOG_LINE_MAX rules out). */
static size_t format_stamp(char *buf, size_t len) {
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  int n = snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ %s:%ld ", tm.tm_year + 1900,
                   tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000,
                   gm_log_host_name(), (long)getpid());
  return n > 0 && (size_t)n < len ? (size_t)n : 0;
}

void gm_vlog(gpumem_log_level level, const char *fmt, va_list ap) {
  if (!gm_log_enabled(level)) return;
  char line[GPUMEM_LOG_LINE_MAX];
  int saved_errno = errno;
  /* "gpumem: " STAMP "warn: " message; the callback's line is the same
   * without STAMP. */
  size_t prefix = sizeof LOG_PREFIX - 1;
  memcpy(line, LOG_PREFIX, prefix);
  size_t stamp = format_stamp(line + prefix, sizeof line - prefix);
  size_t head = prefix + stamp;
  int lvl = snprintf(line + head, sizeof line - head, "%s: ", gpumem_log_level_name(level));
  head += lvl > 0 ? (size_t)lvl : 0;
  int body = vsnprintf(line + head, sizeof line - head - 1, fmt, ap);
  size_t len = head + (body < 0 ? 0 : (size_t)body);
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
    memmove(line + prefix, line + prefix + stamp, len - prefix - stamp);
    len -= stamp;
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
