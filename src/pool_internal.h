/* pool_internal.h: what other parts of libgpumem need of a pool beyond
 * gpumem/pool.h. */
#ifndef GPUMEM_SRC_POOL_INTERNAL_H
#define GPUMEM_SRC_POOL_INTERNAL_H

#include "gpumem/pool.h"
#include "internal.h"

/* The device whose memory the pool hands out (the pool must be live). */
int gm_pool_device(const gpumem_pool_t *pool);

#endif
