/* alloc_conf.h: the allocator GPUMEM_ALLOC_CONF describes.
 *
 * GPUMEM_ALLOC_CONF is a comma-separated list of key:value pairs, read like
 * PyTorch's PYTORCH_CUDA_ALLOC_CONF, for example
 *   GPUMEM_ALLOC_CONF=kind:pool,cache_max_bytes:512M,release_threshold:1G
 * It configures the default allocator (gpumem_default_allocator) and the
 * framework hooks (one allocator per device). See alloc_conf.c for the keys.
 */
#ifndef GPUMEM_SRC_ALLOC_CONF_H
#define GPUMEM_SRC_ALLOC_CONF_H

#include <stdbool.h>

#include "gpumem/allocator.h"

/* The allocator GPUMEM_ALLOC_CONF describes (kind and settings) for
 * `device`: gpumem-pool when unset. A bad key or value is a warning naming
 * the variable, the key, the value and what was expected, and that key keeps
 * its default (logged once per distinct GPUMEM_ALLOC_CONF text). Errors:
 * those of creating it (gpumem_allocator_create's, gpumem_pool_create's,
 * gpumem_arena_create's). */
gpumem_status gm_conf_allocator_create(int device, gpumem_allocator *out);

/* Parse `text` as GPUMEM_ALLOC_CONF (warnings logged when `warn`) and return
 * the allocator kind it names (a gpumem_allocator_list name, static text):
 * the parser alone, for tests/fuzz/fuzz_options.c. */
const char *gm_conf_parse_kind(const char *text, bool warn);

#endif
