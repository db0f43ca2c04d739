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

#endif
