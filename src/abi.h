/* abi.h: public structs that grow without breaking their callers.
 *
 * Every public config and stats struct, and gpumem_allocator, starts with
 * `size_t struct_size`, which the caller's GPUMEM_*_INIT macro sets to the
 * size of the struct the caller was compiled against. A caller built against
 * an older libgpumem hands a smaller struct; one built against a newer one a
 * larger struct. The library:
 *
 *   reads a config   with gm_abi_read: the caller's bytes up to the smaller
 *                    of the two sizes, this library's defaults for the
 *                    fields the caller does not know; bytes this library
 *                    does not know must be zero (a newer caller asking for
 *                    something this library cannot do is refused);
 *   writes stats     with gm_abi_write: at most the caller's struct_size
 *                    bytes, the caller's struct_size kept.
 *
 * A struct_size of 0 or beyond any plausible growth (a struct the caller did
 * not initialise) is INVALID_ARGUMENT, naming the *_INIT macro to use.
 */
#ifndef GPUMEM_SRC_ABI_H
#define GPUMEM_SRC_ABI_H

#include <stddef.h>

#include "internal.h"

/* Most bytes a newer caller's struct may add to this library's. */
#define GM_ABI_GROWTH_MAX 4096

/* Read the caller's struct `in` (NULL: INVALID_ARGUMENT) into `out`, a struct
 * of `full` bytes, over the `defaults` of the same size. `what` names the
 * struct and its macro for the message ("pool config (GPUMEM_POOL_CONFIG_INIT)"). */
gpumem_status gm_abi_read(const void *in, size_t full, const void *defaults, void *out,
                          const char *what);

/* Check that the caller's output struct `out` has a plausible struct_size. */
gpumem_status gm_abi_check_out(const void *out, size_t full, const char *what);

/* Write `value` (a struct of `full` bytes) into the caller's `out`, at most
 * out's struct_size bytes, keeping out's struct_size. Check first. */
void gm_abi_write(void *out, const void *value, size_t full);

#endif
