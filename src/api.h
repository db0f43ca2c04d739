/* api.h: the shape of a public entry point that forwards to the backend. */
#ifndef GPUMEM_SRC_API_H
#define GPUMEM_SRC_API_H

#include "backend.h"

/* Initialise if needed, run `call` (a gm_be_* expression), and return its
 * status through GM_RETURN so that failures carry the public name. A detail
 * left over from an internal failure that was recovered from is dropped
 * first, so it cannot attach itself to this call. */
#define GM_API_FORWARD(call)                    \
  do {                                          \
    gm_error_discard();                         \
    gpumem_status api_st_ = gm_ensure_init();   \
    if (api_st_ == GPUMEM_OK) api_st_ = (call); \
    GM_RETURN(api_st_);                         \
  } while (0)

/* After an allocation failed with OUT_OF_MEMORY: ask the application's
 * handler (oom.c); true means retry once. When false, the first failure's
 * message is the one recorded. */
bool gm_oom_retry(size_t size, int device);

/* GM_API_FORWARD for an entry point that allocates `size` bytes on `device`
 * (pool and arena alloc, buffer resize and reserve): when `call` fails with
 * OUT_OF_MEMORY, the application's out-of-memory handler is asked, and
 * `call` is made once more if it says so (gpumem_set_oom_handler). */
#define GM_API_FORWARD_ALLOC(call, size, device)                                                 \
  do {                                                                                           \
    gm_error_discard();                                                                          \
    gpumem_status api_st_ = gm_ensure_init();                                                    \
    if (api_st_ == GPUMEM_OK) api_st_ = (call);                                                  \
    if (api_st_ == GPUMEM_ERR_OUT_OF_MEMORY && gm_oom_retry((size), (device))) api_st_ = (call); \
    GM_RETURN(api_st_);                                                                          \
  } while (0)

#endif
