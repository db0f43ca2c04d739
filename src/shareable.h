/* shareable.h: physical memory other processes can import, with the
 * FABRIC -> POSIX_FD fallback the buffer and the arena share (shareable.c). */
#ifndef GPUMEM_SRC_SHAREABLE_H
#define GPUMEM_SRC_SHAREABLE_H

#include <stdbool.h>
#include <stddef.h>

#include "gpumem/vmm.h"
#include "internal.h"

/* The handle types to create memory with for a
 * buffer's or arena's `requested` type: NONE and POSIX_FD as they are, FABRIC
 * together with POSIX_FD (the fallback). INVALID_ARGUMENT for any other
 * value. */
gpumem_status gm_shareable_types(gpumem_handle_type requested, unsigned *handle_types);

/* Create `bytes` of physical memory on `device` with the handle types in
 * *handle_types. With FABRIC, the device's fabric attribute is read first:
 * where it is 0 fabric is not asked for; where the creation with it fails with
 * NOT_PERMITTED, NOT_SUPPORTED or INVALID_ARGUMENT it is retried once without.
 * When a creation without fabric succeeds, *handle_types becomes POSIX_FD (the
 * caller keeps it for later creations) and an info line names `who`. */
gpumem_status gm_phys_create_shareable(int device, size_t bytes, bool compression,
                                       unsigned *handle_types, const char *who, gpumem_phys_t *out);

#endif
