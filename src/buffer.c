/* buffer.c: the growable buffer (gpumem/buffer.h).
 *
 * A buffer owns one virtual reservation of max_size bytes, made at creation,
 * and a list of segments: physical allocations mapped back to back from the
 * start of the reservation. The device pointer is the reservation's base, so
 * it never moves; growing appends a segment, and nothing already mapped is
 * touched, so contents survive without a copy.
 *
 * A growth is three driver steps, each undone if a later one fails:
 *
 *   create  one physical allocation for the added capacity (handle types and
 *           compression from the config; FABRIC is asked together with
 *           POSIX_FD where the device advertises fabric handles and, if the
 *           system refuses it, retried once with POSIX_FD alone; without the
 *           attribute POSIX_FD alone is asked at once; the buffer then keeps
 *           using POSIX_FD)
 *   map     it at base + capacity
 *   access  read-write for every access device, in one call
 *
 * The segment array is grown before the first driver step, so the commit at
 * the end cannot fail: on any error the buffer has exactly its old size,
 * capacity, segments and contents, and the backend counters show nothing
 * leaked. The growth policy decides the added capacity: `exact` rounds the
 * request up to the chunk size; `geometric` multiplies the capacity by the
 * growth factor (bounded by growth_max and max_size), so a sequence of small
 * growths costs a logarithmic number of driver calls. When the geometric
 * capacity does not fit in the device (OUT_OF_MEMORY), the growth is retried
 * once with the exact (chunk-rounded) size, so the policy never refuses a
 * size that would fit.
 *
 * Shrinking only lowers the size; shrink_to_fit releases the segments wholly
 * above the (chunk-rounded) size after waiting for the stream given or, with
 * none, for every device with access (a peer's kernel may be reading it), as
 * destroy does. The segment that holds the end of the kept bytes is then
 * cut at the chunk after them, so that a buffer grown in one step and
 * resized down gives back all but what it keeps. A mapped allocation cannot
 * be cut in place: cuMemUnmap's range "must be the entire contiguous
 * address range that was mapped to" and cuMemMap's offset "currently must
 * be zero" (cuda.h). So the cut makes a new allocation of the kept size,
 * maps it in a temporary reservation, copies the kept bytes into it (on the
 * stream given, device to device), unmaps the old segment and maps the new
 * one at the same address; the old allocation goes last. The trade-off is
 * that copy (kept bytes, at device bandwidth: a millisecond per few GB on
 * current GPUs) and, for its duration, the kept bytes twice on the device;
 * when there is no room for the second copy (OUT_OF_MEMORY), the segment
 * stays whole and shrink_to_fit still succeeds. Any other failure maps the
 * old allocation back where it was: the buffer keeps its capacity and
 * contents.
 *
 * Sharing: gpumem_buffer_send writes a header, the segment sizes, and one
 * POSIX fd per segment in SCM_RIGHTS batches; gpumem_buffer_receive imports
 * them and maps them back to back in a reservation of its own: the same
 * physical memory at another address, as a fixed-size view. The device is
 * checked before anything is read, so a wrong one leaves the message on the
 * socket; an empty buffer (a fresh one sent) is received without a
 * reservation, and destroy frees a reservation only where there is one.
 * A receive waits at most GPUMEM_RECEIVE_TIMEOUT (30 s by default) for the
 * whole message: poll() before every read, one deadline for all of them, so a
 * silent peer gives NOT_READY with nothing created instead of a hang. An
 * option rather than an argument keeps the call's signature, and the
 * setting is one a job sets once for all its receives.
 *
 * Locking: a mutex serializes the operations that change the mapping; size
 * and capacity are atomics so size()/capacity() never block, and data() reads
 * a field that never changes.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "abi.h"
#include "api.h"
#include "buffer.h"
#include "gpumem/buffer.h"
#include "log.h"
#include "shareable.h"
#include "options.h"
#include "trace.h"

#define BUFFER_MAGIC          0x67627566u /* "gbuf" */
#define DEFAULT_GROWTH_FACTOR 2.0
#define MAX_GROWTH_FACTOR     16.0
#define DEFAULT_GROWTH_MAX    ((size_t)1 << 30)
#define WIRE_MAGIC            0x4755424d454d5047ULL /* "GPMEMBUG" */
#define WIRE_VERSION          1u
#define FDS_PER_MESSAGE       128 /* below the kernel's SCM_MAX_FD of 253 */
#define MS_PER_S              1000
#define NS_PER_MS             1000000L
#define NS_PER_S              1000000000L

typedef struct segment {
  size_t offset, size;
  gpumem_phys_t handle;
  bool unmapped; /* unmapped, its release failed: only the last segments, past capacity */
} segment;

struct gpumem_buffer {
  uint32_t magic;
  pthread_mutex_t lock;
  int device;
  uintptr_t base;
  size_t max_size; /* bytes reserved */
  size_t chunk;
  gpumem_growth growth;
  double factor;
  size_t growth_max;
  gpumem_access_desc access[GPUMEM_MAX_DEVICES];
  size_t naccess;
  unsigned handle_types; /* what new segments are created with (after any fallback) */
  bool compression_requested, compressed, compression_known;
  bool imported;
  _Atomic size_t size;
  _Atomic size_t capacity;
  segment *segs;
  size_t nsegs, capsegs;
  uint64_t growths, releases, failed; /* under the lock */
  size_t peak_size, peak_capacity;    /* under the lock */
};

static gpumem_status check_buffer(const gpumem_buffer_t *b) {
  if (b == NULL) return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "buffer is NULL");
  if (b->magic != BUFFER_MAGIC) {
    return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "%p is not a live gpumem buffer", (const void *)b);
  }
  return GPUMEM_OK;
}

static gpumem_status check_mutable(const gpumem_buffer_t *b) {
  gpumem_status st = check_buffer(b);
  if (st == GPUMEM_OK && b->imported) {
    st = gm_error(GPUMEM_ERR_NOT_SUPPORTED,
                  "a received buffer is a fixed-size view of another process's buffer");
  }
  return st;
}

/* ---- creation ---- */

static gpumem_status set_access_list(gpumem_buffer_t *b, const gpumem_buffer_config *c) {
  int count = 0;
  gpumem_status st = gm_be_device_count(&count);
  if (st != GPUMEM_OK) return st;
  if (c->access_count > GPUMEM_MAX_DEVICES || (c->access_count > 0 && c->access_devices == NULL)) {
    return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "access list of %zu devices at %p is not valid",
                    c->access_count, (const void *)c->access_devices);
  }
  b->access[0] = (gpumem_access_desc){b->device, GPUMEM_ACCESS_READWRITE};
  b->naccess = 1;
  for (size_t i = 0; i < c->access_count; i++) {
    int d = c->access_devices[i];
    if (d < 0 || d >= count) {
      return gm_error(GPUMEM_ERR_INVALID_DEVICE, "access device %d does not exist (%d visible)", d,
                      count);
    }
    bool seen = false;
    for (size_t k = 0; k < b->naccess; k++)
      seen |= b->access[k].device == d;
    if (seen) continue;
    gm_p2p_attrs p2p;
    st = gm_be_p2p_attrs(d, b->device, &p2p);
    if (st != GPUMEM_OK) return st;
    if (!p2p.access) {
      return gm_error(GPUMEM_ERR_PEER_UNSUPPORTED,
                      "device %d cannot access memory of device %d (no peer-to-peer path)", d,
                      b->device);
    }
    b->access[b->naccess++] = (gpumem_access_desc){d, GPUMEM_ACCESS_READWRITE};
  }
  return GPUMEM_OK;
}

gpumem_status gm_buffer_create(const gpumem_buffer_config *config, gpumem_buffer_t **out) {
  gpumem_status st = GPUMEM_OK;
  gpumem_buffer_t *b = NULL;
  gpumem_buffer_config cfg;
  const gpumem_buffer_config *c = &cfg;
  GM_REQUIRE(out != NULL, GPUMEM_ERR_INVALID_ARGUMENT, "buffer is NULL");
  GM_TRY(gm_abi_read(config, sizeof cfg, &(gpumem_buffer_config)GPUMEM_BUFFER_CONFIG_INIT, &cfg,
                     "buffer config (GPUMEM_BUFFER_CONFIG_INIT)"));
  GM_REQUIRE(c->growth == GPUMEM_GROW_EXACT || c->growth == GPUMEM_GROW_GEOMETRIC,
             GPUMEM_ERR_INVALID_ARGUMENT, "growth policy %d is not valid", (int)c->growth);
  double factor = c->growth_factor == 0.0 ? DEFAULT_GROWTH_FACTOR : c->growth_factor;
  GM_REQUIRE(factor > 1.0 && factor <= MAX_GROWTH_FACTOR, GPUMEM_ERR_INVALID_ARGUMENT,
             "growth factor %g is not in (1, %g]", c->growth_factor, MAX_GROWTH_FACTOR);
  unsigned handle_types = 0;
  GM_TRY(gm_shareable_types(c->handle_type, &handle_types));
  gm_device_props props;
  GM_TRY(gm_be_device_props(c->device, &props));
  GM_REQUIRE(props.vmm, GPUMEM_ERR_NOT_SUPPORTED,
             "device %d (%s) does not support virtual memory management", c->device, props.name);
  b = calloc(1, sizeof *b);
  GM_REQUIRE(b != NULL, GPUMEM_ERR_OUT_OF_MEMORY, "no host memory for a buffer");
  b->device = c->device;
  b->growth = c->growth;
  b->factor = factor;
  b->growth_max = c->growth_max ? c->growth_max : DEFAULT_GROWTH_MAX;
  b->compression_requested = c->compression;
  b->handle_types = handle_types;
  GM_TRY(set_access_list(b, c));
  gpumem_phys_props pp = {b->device, GPUMEM_HANDLE_NONE, c->compression};
  size_t gran = 0;
  GM_TRY(gm_be_granularity(&pp, false, &gran));
  b->chunk = c->chunk_size ? c->chunk_size : gran;
  GM_REQUIRE(b->chunk % gran == 0, GPUMEM_ERR_INVALID_ARGUMENT,
             "chunk size %zu is not a multiple of the device's granularity %zu", b->chunk, gran);
  size_t max = c->max_size ? c->max_size : props.total_memory;
  GM_REQUIRE(max <= SIZE_MAX / 2 && gm_round_up(max, b->chunk, &b->max_size),
             GPUMEM_ERR_INVALID_ARGUMENT, "maximum size %zu is too large", max);
  GM_TRY(gm_be_va_reserve_internal(b->max_size, gran, "buffer",
                                   &b->base)); /* maps must start on a granule */
  pthread_mutex_init(&b->lock, NULL);
  b->magic = BUFFER_MAGIC;
  *out = b;
  return GPUMEM_OK;
fail:
  free(b);
  return st;
}

GPUMEM_API gpumem_status gpumem_buffer_create(const gpumem_buffer_config *config,
                                              gpumem_buffer_t **buffer) {
  GM_API_FORWARD(gm_buffer_create(config, buffer));
}

/* ---- growth ---- */

static gpumem_status finish_release(gpumem_buffer_t *b);

/* Map [capacity, new_capacity) as one new segment; all or nothing. Lock held. */
static gpumem_status grow_to(gpumem_buffer_t *b, size_t new_capacity) {
  size_t cap = atomic_load(&b->capacity);
  if (new_capacity <= cap) return GPUMEM_OK;
  /* A segment whose release failed still lies past the capacity: release
   * it before mapping there. */
  gpumem_status pending = finish_release(b);
  if (pending != GPUMEM_OK) return pending;
  size_t bytes = new_capacity - cap;
  uintptr_t at = b->base + cap;
  gpumem_phys_t h = 0;
  bool mapped = false;
  gpumem_status st = GPUMEM_OK;
  GM_REQUIRE(gm_array_make_room((void **)&b->segs, &b->capsegs, b->nsegs, sizeof *b->segs, 8),
             GPUMEM_ERR_OUT_OF_MEMORY, "no host memory for the segment list");
  GM_TRY(gm_phys_create_shareable(b->device, bytes, b->compression_requested, &b->handle_types,
                                  "buffer", &h));
  GM_TRY(gm_be_map(at, bytes, 0, h));
  mapped = true;
  GM_TRY(gm_be_set_access(at, bytes, b->access, b->naccess));
  if (b->compression_requested && !b->compression_known) {
    gpumem_phys_props got;
    if (gm_be_phys_props(h, &got) == GPUMEM_OK) {
      b->compressed = got.compression;
      b->compression_known = true;
      if (!got.compression) {
        gm_log(GPUMEM_LOG_INFO, "buffer on device %d: compression was asked for but not granted",
               b->device);
      }
    } else {
      gm_error_discard();
    }
  }
  b->segs[b->nsegs++] = (segment){cap, bytes, h, false};
  atomic_store(&b->capacity, new_capacity);
  if (new_capacity > b->peak_capacity) b->peak_capacity = new_capacity;
  b->growths++;
  GM_TRACE_MAPPING("buffer", b, true, (void *)at, bytes, new_capacity, b->device);
  return GPUMEM_OK;
fail : {
  char detail[GM_ERROR_DETAIL_MAX];
  snprintf(detail, sizeof detail, "%s", gm_error_detail());
  if (mapped && gm_be_unmap(at, bytes) != GPUMEM_OK) {
    gm_log(GPUMEM_LOG_ERROR, "buffer rollback: unmap failed: %s", gm_error_detail());
  }
  if (h != 0 && gm_be_phys_release(h) != GPUMEM_OK) {
    gm_log(GPUMEM_LOG_ERROR, "buffer rollback: release failed: %s", gm_error_detail());
  }
  return gm_error(st, "growing the capacity from %zu to %zu bytes: %s", cap, new_capacity, detail);
}
}

/* The capacity the policy wants for `size` (> capacity, <= max_size). */
static size_t target_capacity(const gpumem_buffer_t *b, size_t size) {
  size_t need = 0;
  gm_round_up(size, b->chunk, &need); /* cannot overflow: size <= max_size <= SIZE_MAX / 2 */
  if (b->growth == GPUMEM_GROW_EXACT) return need;
  size_t cap = atomic_load(&b->capacity);
  double grown = (double)cap * b->factor;
  size_t want = grown > (double)(b->max_size) ? b->max_size : (size_t)grown;
  if (want - cap > b->growth_max) want = cap + b->growth_max;
  gm_round_up(want, b->chunk, &want);
  if (want < need) want = need;
  return want > b->max_size ? b->max_size : want;
}

static gpumem_status check_limit(const gpumem_buffer_t *b, size_t bytes, const char *what) {
  if (bytes <= b->max_size) return GPUMEM_OK;
  return gm_error(GPUMEM_ERR_CAPACITY,
                  "cannot %s %zu bytes: the buffer's maximum size is %zu bytes (set max_size "
                  "when creating it)",
                  what, bytes, b->max_size);
}

gpumem_status gm_buffer_resize(gpumem_buffer_t *b, size_t new_size) {
  gpumem_status st = check_mutable(b);
  if (st == GPUMEM_OK) st = check_limit(b, new_size, "resize to");
  if (st != GPUMEM_OK) return st;
  pthread_mutex_lock(&b->lock);
  if (new_size > atomic_load(&b->capacity)) {
    size_t want = target_capacity(b, new_size), need = 0;
    gm_round_up(new_size, b->chunk, &need); /* cannot overflow: new_size <= max_size */
    st = grow_to(b, want);
    if (st == GPUMEM_ERR_OUT_OF_MEMORY && want > need) {
      gm_error_discard(); /* the policy's extra was too much: the exact size may fit */
      st = grow_to(b, need);
    }
  }
  if (st == GPUMEM_OK) GM_TRACE_RESIZE("buffer", b, (void *)b->base, b->size, new_size, b->device);
  if (st == GPUMEM_OK) atomic_store(&b->size, new_size);
  if (st == GPUMEM_OK && new_size > b->peak_size) b->peak_size = new_size;
  if (st != GPUMEM_OK) b->failed++;
  pthread_mutex_unlock(&b->lock);
  return st;
}

GPUMEM_API gpumem_status gpumem_buffer_resize(gpumem_buffer_t *buffer, size_t new_size) {
  GM_API_FORWARD_ALLOC(gm_buffer_resize(buffer, new_size), new_size, buffer->device);
}

gpumem_status gm_buffer_reserve(gpumem_buffer_t *b, size_t capacity) {
  gpumem_status st = check_mutable(b);
  if (st == GPUMEM_OK) st = check_limit(b, capacity, "reserve");
  if (st != GPUMEM_OK) return st;
  size_t want = 0;
  gm_round_up(capacity, b->chunk, &want);
  pthread_mutex_lock(&b->lock);
  st = grow_to(b, want);
  if (st != GPUMEM_OK) b->failed++;
  pthread_mutex_unlock(&b->lock);
  return st;
}

GPUMEM_API gpumem_status gpumem_buffer_reserve(gpumem_buffer_t *buffer, size_t capacity) {
  GM_API_FORWARD_ALLOC(gm_buffer_reserve(buffer, capacity), capacity, buffer->device);
}

/* ---- releasing ---- */

/* Unmap and release segments from the last down to index `keep` (lock held).
 * Stops at the first failure, leaving a consistent, smaller buffer. A
 * segment stays recorded until both steps have succeeded: one whose unmap
 * worked but whose release failed is marked unmapped (the capacity already
 * ends before it) and its release is retried by the next call that
 * releases or grows (finish_release). */
static gpumem_status release_from(gpumem_buffer_t *b, size_t keep) {
  while (b->nsegs > keep) {
    segment *s = &b->segs[b->nsegs - 1];
    gpumem_status st = GPUMEM_OK;
    if (!s->unmapped) {
      st = gm_be_unmap(b->base + s->offset, s->size);
      if (st != GPUMEM_OK) return st;
      s->unmapped = true;
      atomic_store(&b->capacity, s->offset);
      GM_TRACE_MAPPING("buffer", b, false, (void *)(b->base + s->offset), s->size, s->offset,
                       b->device);
    }
    st = gm_be_phys_release(s->handle);
    if (st != GPUMEM_OK) return st; /* kept: the next call retries the release */
    b->nsegs--;
  }
  return GPUMEM_OK;
}

/* Release the segments a failed release left unmapped (lock held). */
static gpumem_status finish_release(gpumem_buffer_t *b) {
  size_t keep = b->nsegs;
  while (keep > 0 && b->segs[keep - 1].unmapped)
    keep--;
  return release_from(b, keep);
}

/* The segments mapped (those a failed release left unmapped excluded). */
static size_t mapped_segments(const gpumem_buffer_t *b) {
  size_t n = b->nsegs;
  while (n > 0 && b->segs[n - 1].unmapped)
    n--;
  return n;
}

/* Wait for all work on every device with access to the buffer (lock held):
 * a kernel on a peer device may still be using memory about to be unmapped,
 * and would fault. */
static gpumem_status synchronize_access_devices(const gpumem_buffer_t *b) {
  for (size_t i = 0; i < b->naccess; i++) {
    gpumem_status st = gm_be_device_synchronize(b->access[i].device);
    if (st != GPUMEM_OK) return st;
  }
  return GPUMEM_OK;
}

/* Replace the last segment (lock held, work on it finished) by a smaller
 * allocation holding its first `kept` bytes, at the same address with the
 * same contents: create, map at a temporary reservation, copy, then swap
 * the mappings at the segment's address (see the essay). All or nothing:
 * on failure the old allocation is mapped where it was. */
static gpumem_status split_last_segment(gpumem_buffer_t *b, size_t kept, gpumem_stream_t stream) {
  segment *s = &b->segs[b->nsegs - 1];
  uintptr_t at = b->base + s->offset, tmp = 0;
  gpumem_phys_t h = 0;
  bool tmp_mapped = false, old_unmapped = false, new_mapped = false, copying = false;
  unsigned types = b->handle_types;
  size_t gran = 0;
  gpumem_status st = GPUMEM_OK;
  gpumem_phys_props pp = {b->device, GPUMEM_HANDLE_NONE, b->compression_requested};
  GM_TRY(gm_be_granularity(&pp, false, &gran));
  GM_TRY(gm_phys_create_shareable(b->device, kept, b->compression_requested, &types, "buffer", &h));
  GM_TRY(gm_be_va_reserve(kept, gran, &tmp));
  GM_TRY(gm_be_map(tmp, kept, 0, h));
  tmp_mapped = true;
  GM_TRY(gm_be_set_access(tmp, kept, b->access, b->naccess));
  copying = true;
  GM_TRY(gm_be_memcpy((void *)tmp, (const void *)at, kept, stream));
  GM_TRY(gm_be_stream_synchronize(stream));
  copying = false;
  GM_TRY(gm_be_unmap(tmp, kept));
  tmp_mapped = false;
  GM_TRY(gm_be_va_free(tmp, kept));
  tmp = 0;
  GM_TRY(gm_be_unmap(at, s->size));
  old_unmapped = true;
  GM_TRY(gm_be_map(at, kept, 0, h));
  new_mapped = true;
  GM_TRY(gm_be_set_access(at, kept, b->access, b->naccess));
  GM_TRY(gm_be_phys_release(s->handle));
  GM_TRACE_MAPPING("buffer", b, false, (void *)(at + kept), s->size - kept, s->offset + kept,
                   b->device);
  s->handle = h;
  s->size = kept;
  b->handle_types = types;
  atomic_store(&b->capacity, s->offset + kept);
  return GPUMEM_OK;
fail : {
  char detail[GM_ERROR_DETAIL_MAX];
  snprintf(detail, sizeof detail, "%s", gm_error_detail());
  if (copying && gm_be_device_synchronize(b->device) != GPUMEM_OK) {
    /* The copy may still be writing into the temporary mapping: leave it. */
    gm_log(GPUMEM_LOG_ERROR,
           "buffer rollback: the copy's end is unknown (%s): %zu bytes left mapped at %p",
           gm_error_detail(), kept, (void *)tmp);
    tmp_mapped = false;
    tmp = 0;
    h = 0;
  }
  if (new_mapped && gm_be_unmap(at, kept) != GPUMEM_OK)
    gm_log(GPUMEM_LOG_ERROR, "buffer rollback: unmap failed: %s", gm_error_detail());
  if (old_unmapped && (gm_be_map(at, s->size, 0, s->handle) != GPUMEM_OK ||
                       gm_be_set_access(at, s->size, b->access, b->naccess) != GPUMEM_OK))
    gm_log(GPUMEM_LOG_ERROR, "buffer rollback: mapping the segment back failed: %s",
           gm_error_detail());
  if (tmp_mapped && gm_be_unmap(tmp, kept) != GPUMEM_OK)
    gm_log(GPUMEM_LOG_ERROR, "buffer rollback: unmap failed: %s", gm_error_detail());
  if (tmp != 0 && gm_be_va_free(tmp, kept) != GPUMEM_OK)
    gm_log(GPUMEM_LOG_ERROR, "buffer rollback: freeing a reservation failed: %s",
           gm_error_detail());
  if (h != 0 && gm_be_phys_release(h) != GPUMEM_OK)
    gm_log(GPUMEM_LOG_ERROR, "buffer rollback: release failed: %s", gm_error_detail());
  return gm_error(st, "releasing the last %zu bytes of a %zu-byte segment: %s", s->size - kept,
                  s->size, detail);
}
}

gpumem_status gm_buffer_shrink_to_fit(gpumem_buffer_t *b, gpumem_stream_t stream) {
  gpumem_status st = check_mutable(b);
  if (st != GPUMEM_OK) return st;
  pthread_mutex_lock(&b->lock);
  size_t keep_bytes = 0;
  gm_round_up(atomic_load(&b->size), b->chunk, &keep_bytes);
  size_t keep = b->nsegs;
  while (keep > 0 && b->segs[keep - 1].offset >= keep_bytes)
    keep--;
  /* The segment holding the end of the kept bytes may reach past them. */
  size_t tail_start = keep > 0 ? b->segs[keep - 1].offset : 0;
  bool split = keep > 0 && tail_start + b->segs[keep - 1].size > keep_bytes;
  if (keep < b->nsegs || split) {
    /* Work queued before this call may still touch the memory: wait for it. */
    st = stream != NULL ? gm_be_stream_synchronize(stream) : synchronize_access_devices(b);
    if (st == GPUMEM_OK) st = release_from(b, keep);
    if (st == GPUMEM_OK && split) {
      st = split_last_segment(b, keep_bytes - tail_start, stream);
      if (st == GPUMEM_ERR_OUT_OF_MEMORY) { /* no room for the copy: the segment stays whole */
        gm_log(GPUMEM_LOG_INFO, "buffer on device %d: shrink_to_fit keeps a whole segment: %s",
               b->device, gm_error_detail());
        gm_error_discard();
        st = GPUMEM_OK;
      }
    }
    if (st == GPUMEM_OK) b->releases++;
  }
  pthread_mutex_unlock(&b->lock);
  return st;
}

GPUMEM_API gpumem_status gpumem_buffer_shrink_to_fit(gpumem_buffer_t *buffer,
                                                     gpumem_stream_t stream) {
  GM_API_FORWARD(gm_buffer_shrink_to_fit(buffer, stream));
}

gpumem_status gm_buffer_destroy(gpumem_buffer_t *b) {
  if (b == NULL) return GPUMEM_OK;
  gpumem_status st = check_buffer(b);
  if (st != GPUMEM_OK) return st;
  pthread_mutex_lock(&b->lock);
  st = synchronize_access_devices(b);
  if (st == GPUMEM_OK) st = release_from(b, 0);
  /* A received empty buffer has no reservation (there is nothing to map). */
  if (st == GPUMEM_OK && b->base != 0) st = gm_be_va_free(b->base, b->max_size);
  if (st != GPUMEM_OK && atomic_load(&b->size) > atomic_load(&b->capacity))
    atomic_store(&b->size, atomic_load(&b->capacity)); /* no size past what is mapped */
  pthread_mutex_unlock(&b->lock);
  if (st != GPUMEM_OK) return st; /* still a valid (smaller) buffer: destroy may be retried */
  GM_TRACE_RESIZE("buffer", b, (void *)b->base, b->size, 0, b->device);
  b->magic = 0;
  pthread_mutex_destroy(&b->lock);
  free(b->segs);
  free(b);
  return GPUMEM_OK;
}

GPUMEM_API gpumem_status gpumem_buffer_destroy(gpumem_buffer_t *buffer) {
  GM_API_FORWARD(gm_buffer_destroy(buffer));
}

/* ---- queries ---- */

GPUMEM_API void *gpumem_buffer_data(const gpumem_buffer_t *b) {
  return b ? (void *)b->base : NULL;
}

GPUMEM_API size_t gpumem_buffer_size(const gpumem_buffer_t *b) {
  return b ? atomic_load(&((gpumem_buffer_t *)b)->size) : 0;
}

GPUMEM_API size_t gpumem_buffer_capacity(const gpumem_buffer_t *b) {
  return b ? atomic_load(&((gpumem_buffer_t *)b)->capacity) : 0;
}

GPUMEM_API size_t gpumem_buffer_max_size(const gpumem_buffer_t *b) {
  return b ? b->max_size : 0;
}

gpumem_status gm_buffer_get_stats(gpumem_buffer_t *b, gpumem_buffer_stats *out) {
  gpumem_status st = check_buffer(b);
  if (st == GPUMEM_OK)
    st = gm_abi_check_out(out, sizeof *out, "buffer stats (GPUMEM_BUFFER_STATS_INIT)");
  if (st != GPUMEM_OK) return st;
  gpumem_buffer_stats s, *info = &s;
  pthread_mutex_lock(&b->lock);
  memset(info, 0, sizeof *info);
  size_t size = atomic_load(&b->size), capacity = atomic_load(&b->capacity);
  info->base = (gpumem_stats){.struct_size = sizeof *info,
                              .bytes_in_use = size,
                              .peak_bytes_in_use = b->peak_size,
                              .bytes_reserved = capacity,
                              .peak_bytes_reserved = b->peak_capacity,
                              .allocs = b->growths,
                              .frees = b->releases,
                              .failed_allocs = b->failed,
                              .largest_free = capacity - size};
  info->device = b->device;
  info->max_size = b->max_size;
  info->chunk_size = b->chunk;
  info->segments = mapped_segments(b);
  info->growth = b->growth;
  info->handle_type = (b->handle_types & GPUMEM_HANDLE_FABRIC)
                          ? GPUMEM_HANDLE_FABRIC
                          : (gpumem_handle_type)b->handle_types;
  info->compression_requested = b->compression_requested;
  info->compressed = b->compressed;
  info->imported = b->imported;
  info->access_count = b->naccess;
  for (size_t i = 0; i < b->naccess; i++)
    info->access_devices[i] = b->access[i].device;
  pthread_mutex_unlock(&b->lock);
  gm_abi_write(out, &s, sizeof s);
  return GPUMEM_OK;
}

GPUMEM_API gpumem_status gpumem_buffer_get_stats(gpumem_buffer_t *buffer,
                                                 gpumem_buffer_stats *stats) {
  GM_API_FORWARD(gm_buffer_get_stats(buffer, stats));
}

/* ---- sharing with another process ---- */

typedef struct wire_header {
  uint64_t magic;
  uint32_t version;
  uint32_t reserved;
  uint64_t size, capacity, nsegs;
} wire_header;

static gpumem_status send_all(int sock, const void *data, size_t len, const int *fds, size_t nfds) {
  union {
    char buf[CMSG_SPACE(sizeof(int) * FDS_PER_MESSAGE)];
    struct cmsghdr align;
  } u;
  struct iovec iov = {(void *)data, len};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
  if (nfds > 0) {
    memset(&u, 0, sizeof u);
    msg.msg_control = u.buf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  }
  ssize_t n;
  do {
    n = sendmsg(sock, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n != (ssize_t)len) {
    return gm_error(GPUMEM_ERR_OS, "sending on socket %d failed: %s", sock,
                    n < 0 ? strerror(errno) : "short write");
  }
  return GPUMEM_OK;
}

/* When a receive gives up: GPUMEM_RECEIVE_TIMEOUT milliseconds from its start
 * (0: never). One deadline covers the whole message, so a peer that stops
 * halfway cannot hold the receiver longer than a silent one. */
typedef struct receive_deadline {
  int64_t timeout_ms; /* 0: none */
  struct timespec at;
} receive_deadline;

static receive_deadline deadline_start(void) {
  receive_deadline d = {gm_option_int(GM_OPTION_RECEIVE_TIMEOUT), {0, 0}};
  clock_gettime(CLOCK_MONOTONIC, &d.at);
  d.at.tv_sec += (time_t)(d.timeout_ms / MS_PER_S);
  d.at.tv_nsec += (long)(d.timeout_ms % MS_PER_S) * NS_PER_MS;
  if (d.at.tv_nsec >= NS_PER_S) {
    d.at.tv_sec++;
    d.at.tv_nsec -= NS_PER_S;
  }
  return d;
}

/* Milliseconds left before the deadline (rounded up; -1: no deadline). */
static int deadline_left_ms(const receive_deadline *d) {
  if (d->timeout_ms == 0) return -1;
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  int64_t ns =
      (int64_t)(d->at.tv_sec - now.tv_sec) * NS_PER_S + (int64_t)(d->at.tv_nsec - now.tv_nsec);
  if (ns <= 0) return 0;
  return (int)((ns + NS_PER_MS - 1) / NS_PER_MS);
}

/* Wait until the socket has data, or the deadline passes (NOT_READY). */
static gpumem_status wait_readable(int sock, const receive_deadline *d) {
  for (;;) {
    int left = deadline_left_ms(d);
    if (left == 0) break;
    struct pollfd p = {sock, POLLIN, 0};
    int n = poll(&p, 1, left);
    if (n > 0) return GPUMEM_OK; /* readable, closed or in error: recvmsg tells which */
    if (n < 0 && errno != EINTR) {
      return gm_error(GPUMEM_ERR_OS, "waiting on socket %d failed: %s", sock, strerror(errno));
    }
  }
  return gm_error(GPUMEM_ERR_NOT_READY,
                  "no complete buffer message on socket %d within %lld ms "
                  "(GPUMEM_RECEIVE_TIMEOUT); the socket is left mid-message: close it",
                  sock, (long long)d->timeout_ms);
}

/* Receive exactly `len` bytes and up to `max_fds` descriptors, waiting with
 * poll() before each read so that the deadline holds. */
static gpumem_status recv_all(int sock, void *data, size_t len, int *fds, size_t max_fds,
                              size_t *nfds, const receive_deadline *d) {
  union {
    char buf[CMSG_SPACE(sizeof(int) * FDS_PER_MESSAGE)];
    struct cmsghdr align;
  } u;
  if (nfds != NULL) *nfds = 0;
  size_t done = 0;
  while (done < len) {
    gpumem_status st = wait_readable(sock, d);
    if (st != GPUMEM_OK) return st;
    struct iovec iov = {(char *)data + done, len - done};
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
    ssize_t n;
    do {
      n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); n >= 0 && c != NULL; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t got = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      int *in = (int *)CMSG_DATA(c);
      for (size_t i = 0; i < got; i++) {
        if (nfds != NULL && *nfds < max_fds)
          fds[(*nfds)++] = in[i];
        else
          close(in[i]); /* unexpected descriptors are not leaked */
      }
    }
    if (n <= 0) {
      return gm_error(GPUMEM_ERR_OS, "receiving on socket %d failed: %s", sock,
                      n < 0 ? strerror(errno) : "the peer closed the connection");
    }
    done += (size_t)n;
  }
  return GPUMEM_OK;
}

gpumem_status gm_buffer_send(gpumem_buffer_t *b, int sock) {
  gpumem_status st = check_buffer(b);
  if (st != GPUMEM_OK) return st;
  if (sock < 0) return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "socket %d is not valid", sock);
  if (!(b->handle_types & GPUMEM_HANDLE_POSIX_FD) || b->imported) {
    return gm_error(GPUMEM_ERR_NOT_SUPPORTED,
                    "the buffer was not created shareable (handle type POSIX_FD or FABRIC)");
  }
  pthread_mutex_lock(&b->lock);
  size_t nsegs = mapped_segments(b);
  wire_header h = {WIRE_MAGIC, WIRE_VERSION, 0, atomic_load(&b->size), atomic_load(&b->capacity),
                   nsegs};
  uint64_t *sizes = calloc(nsegs + 1, sizeof *sizes);
  if (sizes == NULL) st = gm_error(GPUMEM_ERR_OUT_OF_MEMORY, "no host memory for the layout");
  for (size_t i = 0; sizes != NULL && i < nsegs; i++)
    sizes[i] = b->segs[i].size;
  if (st == GPUMEM_OK) st = send_all(sock, &h, sizeof h, NULL, 0);
  if (st == GPUMEM_OK && nsegs > 0) st = send_all(sock, sizes, nsegs * sizeof *sizes, NULL, 0);
  for (size_t first = 0; st == GPUMEM_OK && first < nsegs; first += FDS_PER_MESSAGE) {
    size_t n = nsegs - first < FDS_PER_MESSAGE ? nsegs - first : FDS_PER_MESSAGE;
    int fds[FDS_PER_MESSAGE];
    size_t made = 0;
    for (; made < n && st == GPUMEM_OK; made++) {
      gpumem_shareable_handle sh;
      st = gm_be_export_handle(b->segs[first + made].handle, GPUMEM_HANDLE_POSIX_FD, &sh);
      fds[made] = sh.fd;
    }
    if (st != GPUMEM_OK) made--;
    uint32_t count = (uint32_t)n;
    if (st == GPUMEM_OK) st = send_all(sock, &count, sizeof count, fds, n);
    for (size_t i = 0; i < made; i++)
      close(fds[i]);
  }
  pthread_mutex_unlock(&b->lock);
  free(sizes);
  return st;
}

GPUMEM_API gpumem_status gpumem_buffer_send(gpumem_buffer_t *buffer, int socket) {
  GM_API_FORWARD(gm_buffer_send(buffer, socket));
}

_Static_assert(sizeof(wire_header) == GM_WIRE_HEADER_BYTES, "the wire header is 40 bytes");

gpumem_status gm_buffer_parse_header(const void *bytes, size_t len, gm_wire_layout *out) {
  gpumem_status st = GPUMEM_OK;
  wire_header h;
  GM_REQUIRE(len == sizeof h, GPUMEM_ERR_INVALID_ARGUMENT,
             "the message header is %zu bytes, not %zu", len, sizeof h);
  memcpy(&h, bytes, sizeof h);
  GM_REQUIRE(h.magic == WIRE_MAGIC && h.version == WIRE_VERSION, GPUMEM_ERR_INVALID_ARGUMENT,
             "the message is not a gpumem buffer (version %u)", WIRE_VERSION);
  GM_REQUIRE(h.nsegs <= (1u << 20) && h.size <= h.capacity && h.capacity <= SIZE_MAX / 2,
             GPUMEM_ERR_INVALID_ARGUMENT, "the buffer layout is not valid");
  *out = (gm_wire_layout){h.size, h.capacity, h.nsegs};
fail:
  return st;
}

gpumem_status gm_buffer_parse_sizes(const gm_wire_layout *layout, const uint64_t *sizes) {
  gpumem_status st = GPUMEM_OK;
  uint64_t total = 0;
  for (size_t i = 0; i < layout->nsegs; i++) {
    /* Found by tests/fuzz (fuzz_buffer_receive): empty segments were
     * accepted, and a sum that wraps past 2^64 could equal the capacity. */
    GM_REQUIRE(sizes[i] > 0 && sizes[i] <= layout->capacity - total, GPUMEM_ERR_INVALID_ARGUMENT,
               "segment %zu of %llu bytes does not fit the capacity of %llu bytes", i,
               (unsigned long long)sizes[i], (unsigned long long)layout->capacity);
    total += sizes[i];
  }
  GM_REQUIRE(total == layout->capacity, GPUMEM_ERR_INVALID_ARGUMENT,
             "segments of %llu bytes do not make the capacity of %llu bytes",
             (unsigned long long)total, (unsigned long long)layout->capacity);
fail:
  return st;
}

gpumem_status gm_buffer_receive(int sock, int device, gpumem_buffer_t **out) {
  gpumem_status st = GPUMEM_OK;
  gpumem_buffer_t *b = NULL;
  uint64_t *sizes = NULL;
  int *fds = NULL;
  size_t nfds = 0;
  GM_REQUIRE(out != NULL, GPUMEM_ERR_INVALID_ARGUMENT, "buffer is NULL");
  GM_REQUIRE(sock >= 0, GPUMEM_ERR_INVALID_ARGUMENT, "socket %d is not valid", sock);
  /* Checked before reading: a wrong device consumes nothing, creates nothing. */
  int visible = 0;
  GM_TRY(gm_be_device_count(&visible));
  GM_REQUIRE(device >= 0 && device < visible, GPUMEM_ERR_INVALID_DEVICE,
             "device %d does not exist (%d visible)", device, visible);
  receive_deadline deadline = deadline_start();
  unsigned char bytes[GM_WIRE_HEADER_BYTES];
  gm_wire_layout h = {0};
  GM_TRY(recv_all(sock, bytes, sizeof bytes, NULL, 0, NULL, &deadline));
  GM_TRY(gm_buffer_parse_header(bytes, sizeof bytes, &h));
  sizes = calloc(h.nsegs + 1, sizeof *sizes);
  fds = malloc((h.nsegs + 1) * sizeof *fds);
  GM_REQUIRE(sizes != NULL && fds != NULL, GPUMEM_ERR_OUT_OF_MEMORY,
             "no host memory for %llu "
             "segments",
             (unsigned long long)h.nsegs);
  if (h.nsegs > 0) GM_TRY(recv_all(sock, sizes, h.nsegs * sizeof *sizes, NULL, 0, NULL, &deadline));
  while (nfds < h.nsegs) {
    uint32_t count = 0;
    size_t got = 0;
    GM_TRY(recv_all(sock, &count, sizeof count, fds + nfds, h.nsegs - nfds, &got, &deadline));
    nfds += got;
    GM_REQUIRE(got == count && got > 0, GPUMEM_ERR_INVALID_ARGUMENT,
               "expected %u file descriptors, received %zu", count, got);
  }
  GM_TRY(gm_buffer_parse_sizes(&h, sizes));
  b = calloc(1, sizeof *b);
  GM_REQUIRE(b != NULL, GPUMEM_ERR_OUT_OF_MEMORY, "no host memory for a buffer");
  b->segs = calloc(h.nsegs + 1, sizeof *b->segs);
  GM_REQUIRE(b->segs != NULL, GPUMEM_ERR_OUT_OF_MEMORY, "no host memory for segments");
  b->device = device;
  b->imported = true;
  b->handle_types = GPUMEM_HANDLE_POSIX_FD;
  b->access[0] = (gpumem_access_desc){device, GPUMEM_ACCESS_READWRITE};
  b->naccess = 1;
  b->max_size = h.capacity;
  b->chunk = h.nsegs ? (size_t)sizes[0] : 0;
  if (h.capacity > 0) {
    gpumem_phys_props pp = {device, GPUMEM_HANDLE_POSIX_FD, false};
    size_t gran = 0;
    GM_TRY(gm_be_granularity(&pp, false, &gran));
    GM_TRY(gm_be_va_reserve_internal(h.capacity, gran, "buffer", &b->base));
  }
  for (size_t i = 0; i < h.nsegs; i++) {
    gpumem_shareable_handle sh = {GPUMEM_HANDLE_POSIX_FD, fds[i], {0}};
    size_t off = b->nsegs ? b->segs[b->nsegs - 1].offset + b->segs[b->nsegs - 1].size : 0;
    gpumem_phys_t handle = 0;
    GM_TRY(gm_be_import_handle(&sh, &handle));
    b->segs[b->nsegs] = (segment){off, (size_t)sizes[i], handle, false};
    st = gm_be_map(b->base + off, (size_t)sizes[i], 0, handle);
    bool mapped = st == GPUMEM_OK;
    if (mapped) st = gm_be_set_access(b->base + off, (size_t)sizes[i], b->access, 1);
    if (st != GPUMEM_OK) {
      char detail[GM_ERROR_DETAIL_MAX];
      snprintf(detail, sizeof detail, "%s", gm_error_detail());
      if (mapped) gm_be_unmap(b->base + off, (size_t)sizes[i]);
      gm_be_phys_release(handle);
      st = gm_error(st, "mapping segment %zu: %s", i, detail);
      goto fail;
    }
    b->nsegs++;
    atomic_store(&b->capacity, off + (size_t)sizes[i]);
  }
  atomic_store(&b->size, (size_t)h.size);
  b->peak_size = (size_t)h.size;
  b->peak_capacity = atomic_load(&b->capacity);
  pthread_mutex_init(&b->lock, NULL);
  b->magic = BUFFER_MAGIC;
  for (size_t i = 0; i < nfds; i++)
    close(fds[i]);
  free(fds);
  free(sizes);
  *out = b;
  return GPUMEM_OK;
fail : {
  char detail[GM_ERROR_DETAIL_MAX];
  snprintf(detail, sizeof detail, "%s", gm_error_detail());
  if (b != NULL) {
    release_from(b, 0);
    if (b->base != 0) gm_be_va_free(b->base, b->max_size);
    free(b->segs);
    free(b);
  }
  for (size_t i = 0; i < nfds; i++)
    close(fds[i]);
  free(fds);
  free(sizes);
  return gm_error(st, "%s", detail);
}
}

GPUMEM_API gpumem_status gpumem_buffer_receive(int socket, int device, gpumem_buffer_t **buffer) {
  GM_API_FORWARD(gm_buffer_receive(socket, device, buffer));
}
