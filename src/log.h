/* log.h: the library's internal logging calls (see gpumem/log.h). */
#ifndef GPUMEM_SRC_LOG_H
#define GPUMEM_SRC_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "gpumem/export.h"
#include "gpumem/log.h"

/* True when a message at `level` would be emitted (one atomic load). */
bool gm_log_enabled(gpumem_log_level level);

/* Emit one line at `level`. Never allocates; never writes to stdout. */
void gm_log(gpumem_log_level level, const char *fmt, ...) GPUMEM_PRINTF(2, 3);
void gm_vlog(gpumem_log_level level, const char *fmt, va_list ap);

/* Longest file name (terminating NUL included) that GPUMEM_LOG_FILE and
 * GPUMEM_TRACE may expand to (Linux's PATH_MAX). */
#define GM_LOG_PATH_MAX 4096

/* Copy `pattern` to `out`, replacing %h by the host name (up to its first
 * dot), %p by the pid and %% by %; any other character, a lone % included, is
 * kept. False when the result does not fit in `len` bytes. */
bool gm_log_expand_path(const char *pattern, char *out, size_t len);

/* The host name up to its first dot, read once ("unknown" without one). */
const char *gm_log_host_name(void);

/* Parse a level word (case-insensitive); false if it is not one. */
bool gm_log_parse_level(const char *word, gpumem_log_level *out);

#endif
