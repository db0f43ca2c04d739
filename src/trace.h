/* trace.h: allocation tracing to GPUMEM_TRACE (trace.c). */
#ifndef GPUMEM_SRC_TRACE_H
#define GPUMEM_SRC_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gpumem/types.h"

/* True when GPUMEM_TRACE names a file that is open for writing. */
bool gm_trace_enabled(void);
/* A new allocation id, unique in the process. */
uint64_t gm_trace_next_id(void);
/* Append "a,id,size,stream" or "f,id,size,stream". Streams are numbered in
 * the order they are first seen (the legacy stream NULL is 0). */
void gm_trace_record(char op, uint64_t id, size_t size, gpumem_stream_t stream);
/* Close the file (at finalize); a later gm_trace_enabled() reopens it. */
void gm_trace_close(void);

#endif
