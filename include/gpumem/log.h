/* gpumem/log.h: where the library's messages go.
 *
 * libgpumem never prints to stdout. It writes one line per event to stderr,
 * to the file named by GPUMEM_LOG_FILE, or to a callback. Lines to stderr and
 * to the file carry the time (UTC, microseconds), the host name and the pid,
 * so that the merged output of a job's ranks can be sorted and attributed:
 *
 *   gpumem: 2026-12-01T06:01:02.123456Z node17:4711 warn: <message>
 *
 * A callback gets "gpumem: warn: <message>" (its logger adds its own time).
 * The level comes from GPUMEM_LOG=off|error|warn|info|debug|trace (default
 * warn) or gpumem_log_set_level(). At trace, every allocation, free and
 * buffer resize of the pool, arena, buffer and allocator interface is a line
 * (size, pointer, stream or device, and the id GPUMEM_TRACE gives it), and so
 * is every growth or shrink of mapped memory. Formatting uses a fixed buffer
 * on the stack: logging never allocates, so it is safe when memory is short
 * (the trace level keeps a table of live pointers, in host memory, to name
 * the size and id of each free; without room in it a free is logged bare).
 * Lines longer than GPUMEM_LOG_LINE_MAX are cut.
 */
#ifndef GPUMEM_LOG_H
#define GPUMEM_LOG_H

#include "gpumem/error.h"
#include "gpumem/export.h"

GPUMEM_EXTERN_C_BEGIN

/** Longest line delivered, terminating newline included. */
#define GPUMEM_LOG_LINE_MAX 1024

/** Severity; a message is emitted when its level <= the configured level. */
typedef enum gpumem_log_level {
  GPUMEM_LOG_OFF = 0,   /**< nothing */
  GPUMEM_LOG_ERROR = 1, /**< failures no status reports, such as a clean-up step that failed */
  GPUMEM_LOG_WARN = 2,  /**< problems worked around, such as an unusable option (the default) */
  GPUMEM_LOG_INFO = 3,  /**< what was chosen: the backend at initialisation, fallbacks taken */
  GPUMEM_LOG_DEBUG = 4, /**< detail for debugging, such as every error sentence as it is set */
  GPUMEM_LOG_TRACE = 5, /**< everything, the most detailed level */
} gpumem_log_level;

/** A log sink. `line` is the line with its "gpumem: <level>: " prefix, without
 * the time, host and pid that stderr and file lines carry, and without a
 * trailing newline; it is valid only during the call. Called from
 * whichever thread logs, possibly from several at once. It must not call back
 * into libgpumem. */
typedef void (*gpumem_log_fn)(gpumem_log_level level, const char *line, void *user);

/** Set the level (overrides GPUMEM_LOG). GPUMEM_ERR_INVALID_ARGUMENT for a
 * value outside the enum. Thread-safe. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_log_set_level(gpumem_log_level level);

/** The current level. Thread-safe. */
GPUMEM_API gpumem_log_level gpumem_log_get_level(void);

/** Send lines to `fn` instead of stderr or the log file; NULL restores the
 * default sink. Thread-safe; a line being written by another thread during the
 * call may still reach the previous sink. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_log_set_callback(gpumem_log_fn fn, void *user);

/** Append lines to the file at `path` (created if missing), as
 * GPUMEM_LOG_FILE does; NULL or "" returns to stderr. In `path`, %h stands for
 * the host name up to its first dot, %p for the pid and %% for %, as in
 * NCCL_DEBUG_FILE ("gpumem.%h.%p.log": a file per rank); other characters,
 * a lone % included, are kept. GPUMEM_ERR_OS with the reason when the file
 * cannot be opened, GPUMEM_ERR_INVALID_ARGUMENT when the expanded name is
 * 4096 bytes or longer; the sink is then unchanged. Thread-safe. */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_log_set_file(const char *path);

/** "off", "error", "warn", "info", "debug" or "trace"; "?" otherwise. */
GPUMEM_API const char *gpumem_log_level_name(gpumem_log_level level);

GPUMEM_EXTERN_C_END

#endif
