/* trace.h: allocation events, for GPUMEM_TRACE and GPUMEM_LOG=trace (trace.c).
 *
 * The pool, the arena, the buffer and the allocator interface report each
 * allocation, free, resize and growth with one hook line:
 *
 *   GM_TRACE_ALLOC("pool", p, ptr, size, stream, p->device);
 *
 * Each macro is one relaxed load of gm_trace_hooks and a branch predicted
 * not taken while neither GPUMEM_TRACE nor GPUMEM_LOG=trace asks for
 * events; its arguments are evaluated only when the branch is taken.
 */
#ifndef GPUMEM_SRC_TRACE_H
#define GPUMEM_SRC_TRACE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gpumem/types.h"

/* Who wants events: bits of gm_trace_hooks. */
#define GM_HOOK_LOG   1u /* the log level is trace */
#define GM_HOOK_FILE  2u /* GPUMEM_TRACE is open */
#define GM_HOOK_CHECK 4u /* GPUMEM_TRACE not looked at since initialisation */

/* Zero while nothing wants events; the only thing a hook reads when so. */
extern _Atomic unsigned gm_trace_hooks;

#define GM_TRACE_HOOKED() \
  __builtin_expect(atomic_load_explicit(&gm_trace_hooks, memory_order_relaxed) != 0, 0)

/* The `stream` of an object that has none (arena, buffer): no stream in the
 * log line, the legacy stream (0) in the trace. */
#define GM_TRACE_NO_STREAM ((gpumem_stream_t)(uintptr_t)UINTPTR_MAX)

/* `what` names the kind of object ("pool", "arena", "buffer", an allocator's
 * name), `owner` the object; `device` < 0: any member of an interleaved arena. */
#define GM_TRACE_ALLOC(what, owner, ptr, size, stream, device) \
  (GM_TRACE_HOOKED() ? gm_trace_alloc(what, owner, ptr, size, stream, device) : (void)0)
/* Call before the memory can be handed out again (another thread's
 * allocation of the same address must come later in the trace). */
#define GM_TRACE_FREE(what, owner, ptr, stream, device) \
  (GM_TRACE_HOOKED() ? gm_trace_free(what, owner, ptr, stream, device) : (void)0)
/* A buffer's size changed from old_size to new_size (0 at destroy). */
#define GM_TRACE_RESIZE(what, owner, ptr, old_size, new_size, device) \
  (GM_TRACE_HOOKED() ? gm_trace_resize(what, owner, ptr, old_size, new_size, device) : (void)0)
/* Memory mapped (grew) or unmapped at `at`; `mapped` is the total after. */
#define GM_TRACE_MAPPING(what, owner, grew, at, bytes, mapped, device) \
  (GM_TRACE_HOOKED() ? gm_trace_mapping(what, owner, grew, at, bytes, mapped, device) : (void)0)

void gm_trace_alloc(const char *what, const void *owner, const void *ptr, size_t size,
                    gpumem_stream_t stream, int device);
void gm_trace_free(const char *what, const void *owner, const void *ptr, gpumem_stream_t stream,
                   int device);
void gm_trace_resize(const char *what, const void *owner, const void *ptr, size_t old_size,
                     size_t new_size, int device);
void gm_trace_mapping(const char *what, const void *owner, bool grew, const void *at, size_t bytes,
                      size_t mapped, int device);

/* The allocator interface (allocator.c) reports its own calls, with the
 * stream its caller gave, and mutes the events of the pool or arena it calls
 * meanwhile (a thread-local flag), so that each call is one event. A free
 * takes the pointer's record before the memory is freed and reports it after
 * (or puts it back when the free failed). */
typedef struct gm_trace_entry {
  uint64_t id;
  size_t size;
  bool known;
} gm_trace_entry;
void gm_trace_mute(bool mute);
gm_trace_entry gm_trace_take(const void *ptr);
void gm_trace_put_back(const void *ptr, gm_trace_entry entry);
void gm_trace_freed(const char *what, const void *owner, const void *ptr, gm_trace_entry entry,
                    size_t size, gpumem_stream_t stream, int device);

/* True when GPUMEM_TRACE names a file that is open for writing (opening it
 * on the first call after initialisation). */
bool gm_trace_enabled(void);
/* log.c: whether the log level is trace. */
void gm_trace_log_events(bool on);
/* Close the file (at finalize); the first event after the next
 * initialisation looks at GPUMEM_TRACE again. */
void gm_trace_close(void);

#endif
