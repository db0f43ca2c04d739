/* log.h: the library's internal logging calls (see gpumem/log.h). */
#ifndef GPUMEM_SRC_LOG_H
#define GPUMEM_SRC_LOG_H

#include <stdarg.h>
#include <stdbool.h>

#include "gpumem/export.h"
#include "gpumem/log.h"

/* True when a message at `level` would be emitted (one atomic load). */
bool gm_log_enabled(gpumem_log_level level);

/* Emit one line at `level`. Never allocates; never writes to stdout. */
void gm_log(gpumem_log_level level, const char *fmt, ...) GPUMEM_PRINTF(2, 3);
void gm_vlog(gpumem_log_level level, const char *fmt, va_list ap);

/* Parse a level word (case-insensitive); false if it is not one. */
bool gm_log_parse_level(const char *word, gpumem_log_level *out);

#endif
