/* spinlock.h: the library's one spin lock, for short critical sections on
 * hot paths where a mutex's system call would cost more than the wait.
 *
 * A test-and-test-and-set lock on a cache line of its own: waiters spin on a
 * plain load (no line ping-pong), pause between tries, and after
 * GM_SPIN_TRIES tries yield the CPU, since the holder may be in a slow path
 * (an arena growth makes driver calls that take microseconds). Not fair, not
 * recursive. The arena's shards use it; everything that can block for long
 * uses a pthread mutex instead.
 */
#ifndef GPUMEM_SRC_SPINLOCK_H
#define GPUMEM_SRC_SPINLOCK_H

#include <sched.h>
#include <stdatomic.h>

#include "internal.h"

#define GM_SPIN_TRIES 128 /* pauses before a waiter yields */

typedef struct gm_spinlock {
  _Alignas(GM_CACHE_LINE) atomic_int held;
} gm_spinlock;

static inline void gm_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

static inline void gm_spin_lock(gm_spinlock *l) {
  unsigned tries = 0;
  while (atomic_exchange_explicit(&l->held, 1, memory_order_acquire)) {
    while (atomic_load_explicit(&l->held, memory_order_relaxed)) {
      if (++tries < GM_SPIN_TRIES)
        gm_cpu_relax();
      else
        sched_yield();
    }
  }
}

static inline void gm_spin_unlock(gm_spinlock *l) {
  atomic_store_explicit(&l->held, 0, memory_order_release);
}

#endif
