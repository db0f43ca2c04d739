/* pool.h: the pool's operations for the rest of libgpumem (gm_pool_*).
 *
 * Each is the public gpumem_pool_* function without the public entry's
 * bookkeeping (initialising, clearing and composing the caller's last
 * error): gpumem_pool_* in pool.c are one-line forwarders to these, and
 * other modules (the allocator interface's adapters) call these, so that a
 * failure's detail reaches their own caller whole. Semantics and errors are
 * those of gpumem/pool.h.
 */
#ifndef GPUMEM_SRC_POOL_H
#define GPUMEM_SRC_POOL_H

#include "gpumem/pool.h"
#include "internal.h"

gpumem_status gm_pool_create(const gpumem_pool_config *config, gpumem_pool_t **out);
gpumem_status gm_pool_destroy(gpumem_pool_t *p);
gpumem_status gm_pool_alloc(gpumem_pool_t *p, size_t size, gpumem_stream_t stream, void **out);
gpumem_status gm_pool_free(gpumem_pool_t *p, void *ptr, gpumem_stream_t stream);
/* gm_pool_free, checking the size the allocator interface passes (0: not
 * checked): INVALID_ARGUMENT, naming both sizes, and nothing freed when `ptr`
 * was not allocated with `size` bytes (for a cached size class: a size of
 * that class). One table lookup serves the check and the free. */
gpumem_status gm_pool_free_sized(gpumem_pool_t *p, void *ptr, size_t size, gpumem_stream_t stream);
gpumem_status gm_pool_trim(gpumem_pool_t *p, size_t keep);
gpumem_status gm_pool_forget_stream(gpumem_pool_t *p, gpumem_stream_t stream);
gpumem_status gm_pool_get_stats(gpumem_pool_t *p, gpumem_pool_stats *out);
gpumem_status gm_pool_set_release_threshold(gpumem_pool_t *p, uint64_t bytes);
gpumem_status gm_pool_export(gpumem_pool_t *p, gpumem_shareable_handle *h);
gpumem_status gm_pool_import(const gpumem_shareable_handle *h, int device, gpumem_pool_t **out);
gpumem_status gm_pool_export_pointer(gpumem_pool_t *p, void *ptr, gpumem_pool_pointer *out);
gpumem_status gm_pool_import_pointer(gpumem_pool_t *p, const gpumem_pool_pointer *in, void **out);

/* The device whose memory the pool hands out (the pool must be live). */
int gm_pool_device(const gpumem_pool_t *pool);

#endif
