/* buffer.h: the buffer's operations for the rest of libgpumem
 * (gm_buffer_*): the public gpumem_buffer_* functions without the public
 * entry's bookkeeping, which those are one-line forwarders to. Semantics and
 * errors are those of gpumem/buffer.h. */
#ifndef GPUMEM_SRC_BUFFER_H
#define GPUMEM_SRC_BUFFER_H

#include "gpumem/buffer.h"
#include "internal.h"

gpumem_status gm_buffer_create(const gpumem_buffer_config *config, gpumem_buffer_t **out);
gpumem_status gm_buffer_resize(gpumem_buffer_t *b, size_t new_size);
gpumem_status gm_buffer_reserve(gpumem_buffer_t *b, size_t capacity);
gpumem_status gm_buffer_shrink_to_fit(gpumem_buffer_t *b, gpumem_stream_t stream);
gpumem_status gm_buffer_destroy(gpumem_buffer_t *b);
gpumem_status gm_buffer_get_stats(gpumem_buffer_t *b, gpumem_buffer_stats *out);
gpumem_status gm_buffer_send(gpumem_buffer_t *b, int sock);
gpumem_status gm_buffer_receive(int sock, int device, gpumem_buffer_t **out);

/* What gm_buffer_receive checks of a gpumem_buffer_send message before it
 * touches the backend, separate so that tests/fuzz can feed it bytes: the
 * header (the first GM_WIRE_HEADER_BYTES bytes) and then the `nsegs` segment
 * sizes. Both return INVALID_ARGUMENT with a sentence for anything that is
 * not a valid layout. */
#define GM_WIRE_HEADER_BYTES 40
typedef struct gm_wire_layout {
  uint64_t size, capacity, nsegs;
} gm_wire_layout;
gpumem_status gm_buffer_parse_header(const void *bytes, size_t len, gm_wire_layout *out);
gpumem_status gm_buffer_parse_sizes(const gm_wire_layout *layout, const uint64_t *sizes);

#endif
