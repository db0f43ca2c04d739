/* fuzz_buffer_receive.c: libFuzzer target for the message that
 * gpumem_buffer_receive reads (src/buffer.c).
 *
 * The input is what a peer sent. Its first GM_WIRE_HEADER_BYTES go to
 * gm_buffer_parse_header and, when that accepts a layout, the next nsegs
 * 64-bit sizes to gm_buffer_parse_sizes: what receive checks before it
 * touches the backend. An accepted layout must be one receive can map
 * safely: size <= capacity, and the segments non-empty with a sum that is
 * the capacity without wrapping (each mapping lies inside the reservation).
 * Then the whole input is written to a socket pair, the writing end shut,
 * and gpumem_buffer_receive reads it on the host backend, with no file
 * descriptors attached: it must fail with a sentence (or, for a message of
 * an empty buffer, succeed and be destroyable) and never block or crash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buffer.h"
#include "gpumem/error.h"
#include "gpumem/init.h"
#include "gpumem/log.h"

#define INPUT_MAX 65536 /* well inside a socket pair's buffer */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  gpumem_init_options o = GPUMEM_INIT_OPTIONS_INIT;
  o.backend = GPUMEM_BACKEND_HOST;
  if (gpumem_init(&o) != GPUMEM_OK) abort();
  if (gpumem_log_set_level(GPUMEM_LOG_OFF) != GPUMEM_OK) abort();
  return 0;
}

static void check_layout(const uint8_t *data, size_t size) {
  gm_wire_layout l;
  size_t n = size < GM_WIRE_HEADER_BYTES ? size : GM_WIRE_HEADER_BYTES;
  if (gm_buffer_parse_header(data, n, &l) != GPUMEM_OK) {
    if (gm_error_detail()[0] == '\0') abort(); /* an error has its sentence */
    return;
  }
  if (n != GM_WIRE_HEADER_BYTES || l.size > l.capacity) abort();
  size_t rest = size - n;
  if (l.nsegs > rest / sizeof(uint64_t)) return; /* the peer would have closed early */
  uint64_t *sizes = malloc((l.nsegs + 1) * sizeof *sizes);
  if (sizes == NULL) abort();
  memcpy(sizes, data + n, l.nsegs * sizeof *sizes);
  if (gm_buffer_parse_sizes(&l, sizes) == GPUMEM_OK) {
    uint64_t total = 0;
    for (size_t i = 0; i < l.nsegs; i++) {
      if (sizes[i] == 0 || __builtin_add_overflow(total, sizes[i], &total)) abort();
    }
    if (total != l.capacity) abort();
  } else if (gm_error_detail()[0] == '\0') {
    abort();
  }
  free(sizes);
}

static void receive(const uint8_t *data, size_t size) {
  int sv[2];
  if (size > INPUT_MAX || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return;
  if (size > 0 && write(sv[0], data, size) != (ssize_t)size) abort();
  shutdown(sv[0], SHUT_WR);
  gpumem_buffer_t *b = NULL;
  gpumem_status st = gpumem_buffer_receive(sv[1], 0, &b);
  if (st == GPUMEM_OK) {
    if (b == NULL) abort();
    if (gpumem_buffer_destroy(b) != GPUMEM_OK) abort();
  } else if (gpumem_last_error()[0] == '\0') {
    abort();
  }
  close(sv[0]);
  close(sv[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  check_layout(data, size);
  receive(data, size);
  return 0;
}
