/* stream.c: the public stream, event and copy calls (gpumem/stream.h), each
 * a checked forward to the active backend through the seam. */
#include "api.h"
#include "gpumem/stream.h"

GPUMEM_API gpumem_status gpumem_stream_create(int device, gpumem_stream_t *stream) {
  GM_API_FORWARD(gm_be_stream_create(device, 0, stream));
}

GPUMEM_API gpumem_status gpumem_stream_destroy(gpumem_stream_t stream) {
  GM_API_FORWARD(gm_be_stream_destroy(stream));
}

GPUMEM_API gpumem_status gpumem_stream_synchronize(gpumem_stream_t stream) {
  GM_API_FORWARD(gm_be_stream_synchronize(stream));
}

GPUMEM_API gpumem_status gpumem_stream_query(gpumem_stream_t stream) {
  GM_API_FORWARD(gm_be_stream_query(stream));
}

GPUMEM_API gpumem_status gpumem_stream_wait_event(gpumem_stream_t stream, gpumem_event_t event) {
  GM_API_FORWARD(gm_be_stream_wait_event(stream, event));
}

GPUMEM_API gpumem_status gpumem_event_create(int device, gpumem_event_t *event) {
  GM_API_FORWARD(gm_be_event_create(device, event));
}

GPUMEM_API gpumem_status gpumem_event_destroy(gpumem_event_t event) {
  GM_API_FORWARD(gm_be_event_destroy(event));
}

GPUMEM_API gpumem_status gpumem_event_record(gpumem_event_t event, gpumem_stream_t stream) {
  GM_API_FORWARD(gm_be_event_record(event, stream));
}

GPUMEM_API gpumem_status gpumem_event_query(gpumem_event_t event) {
  GM_API_FORWARD(gm_be_event_query(event));
}

GPUMEM_API gpumem_status gpumem_event_synchronize(gpumem_event_t event) {
  GM_API_FORWARD(gm_be_event_synchronize(event));
}

GPUMEM_API gpumem_status gpumem_device_synchronize(int device) {
  GM_API_FORWARD(gm_be_device_synchronize(device));
}

GPUMEM_API gpumem_status gpumem_memcpy(void *dst, const void *src, size_t size,
                                       gpumem_stream_t stream) {
  GM_API_FORWARD(gm_be_memcpy(dst, src, size, stream));
}

GPUMEM_API gpumem_status gpumem_memset(void *dst, int value, size_t size, gpumem_stream_t stream) {
  GM_API_FORWARD(gm_be_memset(dst, value, size, stream));
}

GPUMEM_API gpumem_status gpumem_launch_host_func(gpumem_stream_t stream, gpumem_host_fn fn,
                                                 void *arg) {
  GM_API_FORWARD(gm_be_launch_host_func(stream, fn, arg));
}
