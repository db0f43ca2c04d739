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

#endif
