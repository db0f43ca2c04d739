/* frameworks.h: what the rest of the library calls of frameworks.c. */
#ifndef GPUMEM_SRC_FRAMEWORKS_H
#define GPUMEM_SRC_FRAMEWORKS_H

#include "gpumem/allocator.h"
#include "internal.h"

/* gpumem_framework_release without the public wrapper (gpumem_finalize
 * calls it before counting what is still alive). */
gpumem_status gm_frameworks_release(void);

/* How the per-device allocators are made: `make` instead of the allocator
 * GPUMEM_ALLOC_CONF describes (NULL: that one again). For tests, which
 * choose a kind or make the making fail; call it while no framework
 * allocator exists. */
typedef gpumem_status (*gm_frameworks_factory)(int device, gpumem_allocator *out);
void gm_frameworks_set_factory(gm_frameworks_factory make);

#endif
