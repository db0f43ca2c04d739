/* gpumem_fortran.c: the C side of the Fortran module (fortran/gpumem.f90).
 *
 * Most of libgpumem's API binds to Fortran as it is: handles are pointers
 * (type(c_ptr)), sizes are size_t (integer(c_size_t)), statuses are ints.
 * What does not bind well are the configuration structs: each starts with
 * struct_size, mixes bool, enums, size_t and pointers, and grows at the end
 * from one release to the next. A Fortran bind(C) copy of each would have to
 * track every field and every padding byte of every release, and a copy that
 * is one field short would still compile and silently hand the library a
 * struct_size that claims the old layout, or worse, one that claims the new
 * layout with the last fields missing.
 *
 * So the module never builds a config struct: it calls these shims with the
 * few settings Fortran programs need, as plain arguments, and each shim
 * starts from the INIT macro of the headers it was compiled with, so
 * struct_size and every default are right by construction. The shims are
 * built and installed with the library (libgpumem_fortran), from the same
 * headers, so they cannot drift from it. A setting a Fortran program needs
 * later is one more argument here, not a new mirrored layout.
 *
 * One struct is mirrored: gpumem_stats, the figures every allocator reports,
 * made only of size_t and uint64_t, so its bind(C) twin has no padding or
 * bool to get wrong. The shims copy the `base` of the pool's, arena's and
 * buffer's own stats into it, and gpumem_f_sizeof_stats lets the tests check
 * c_sizeof of the Fortran type against sizeof here.
 *
 * Errors are the library's: each shim returns the status of the call it
 * wraps, with gpumem_last_error() set by that call; a shim checks nothing
 * itself (a NULL out-pointer reaches the library, which refuses it).
 */
#include <string.h>

#include <gpumem/gpumem.h>

/* Exported from libgpumem_fortran for the module's interfaces (the library
 * itself is built with hidden visibility; this one is not, but say so). */
#define GPUMEM_F_API __attribute__((visibility("default")))

GPUMEM_F_API int gpumem_f_init(int backend, int host_devices, size_t host_capacity);
GPUMEM_F_API int gpumem_f_device_select(int local_rank, unsigned required_caps, int *ordinal,
                                        char *reason, size_t reason_len);
GPUMEM_F_API int gpumem_f_pool_create(int device, gpumem_pool_t **pool);
GPUMEM_F_API int gpumem_f_pool_stats(gpumem_pool_t *pool, gpumem_stats *stats);
GPUMEM_F_API int gpumem_f_arena_create(const int *devices, size_t count, int placement,
                                       size_t chunk_size, gpumem_arena_t **arena);
GPUMEM_F_API int gpumem_f_arena_create_remap(const int *devices, size_t count, int placement,
                                             size_t chunk_size, int remap, unsigned slack_percent,
                                             gpumem_arena_t **arena);
GPUMEM_F_API int gpumem_f_arena_stats(gpumem_arena_t *arena, gpumem_stats *stats);
GPUMEM_F_API int gpumem_f_buffer_create(int device, size_t max_size, int growth, int handle_type,
                                        gpumem_buffer_t **buffer);
GPUMEM_F_API int gpumem_f_buffer_stats(gpumem_buffer_t *buffer, gpumem_stats *stats);
GPUMEM_F_API size_t gpumem_f_sizeof_stats(void);

/* Options left 0 keep the environment's value or the default, as in C. */
int gpumem_f_init(int backend, int host_devices, size_t host_capacity) {
  gpumem_init_options opt = GPUMEM_INIT_OPTIONS_INIT;
  opt.backend = (gpumem_backend_kind)backend;
  opt.host_devices = host_devices;
  opt.host_capacity = host_capacity;
  return gpumem_init(&opt);
}

/* reason: the selection's sentence, cut to reason_len - 1 bytes and
 * NUL-terminated (the module turns it into a Fortran string). */
int gpumem_f_device_select(int local_rank, unsigned required_caps, int *ordinal, char *reason,
                           size_t reason_len) {
  gpumem_select_criteria crit = GPUMEM_SELECT_CRITERIA_INIT;
  crit.local_rank = local_rank;
  crit.required_caps = required_caps;
  gpumem_selection sel;
  gpumem_status st = gpumem_device_select(&crit, &sel);
  if (st != GPUMEM_OK) return st;
  if (ordinal) *ordinal = sel.ordinal;
  if (reason && reason_len > 0) {
    size_t n = strlen(sel.reason);
    if (n >= reason_len) n = reason_len - 1;
    memcpy(reason, sel.reason, n);
    reason[n] = '\0';
  }
  return GPUMEM_OK;
}

int gpumem_f_pool_create(int device, gpumem_pool_t **pool) {
  gpumem_pool_config cfg = GPUMEM_POOL_CONFIG_INIT;
  cfg.device = device;
  return gpumem_pool_create(&cfg, pool);
}

int gpumem_f_pool_stats(gpumem_pool_t *pool, gpumem_stats *stats) {
  gpumem_pool_stats s = GPUMEM_POOL_STATS_INIT;
  gpumem_status st = gpumem_pool_get_stats(pool, stats ? &s : NULL);
  if (st == GPUMEM_OK) {
    *stats = s.base;
    stats->struct_size = sizeof *stats;
  }
  return st;
}

/* count is size_t: a negative Fortran size() cannot arrive; devices NULL
 * with count 0 is the library's default (device 0 alone). */
int gpumem_f_arena_create_remap(const int *devices, size_t count, int placement, size_t chunk_size,
                                int remap, unsigned slack_percent, gpumem_arena_t **arena) {
  gpumem_arena_config cfg = GPUMEM_ARENA_CONFIG_INIT;
  cfg.devices = count ? devices : NULL;
  cfg.device_count = count;
  cfg.placement = (gpumem_placement)placement;
  cfg.chunk_size = chunk_size;
  cfg.remap = (gpumem_arena_remap)remap;
  cfg.slack_percent = slack_percent;
  return gpumem_arena_create(&cfg, arena);
}

/* The entry point of modules built before `remap`: kept, the default
 * setting. */
int gpumem_f_arena_create(const int *devices, size_t count, int placement, size_t chunk_size,
                          gpumem_arena_t **arena) {
  return gpumem_f_arena_create_remap(devices, count, placement, chunk_size,
                                     GPUMEM_ARENA_REMAP_BALANCED, 0, arena);
}

int gpumem_f_arena_stats(gpumem_arena_t *arena, gpumem_stats *stats) {
  gpumem_arena_stats s = GPUMEM_ARENA_STATS_INIT;
  gpumem_status st = gpumem_arena_get_stats(arena, stats ? &s : NULL);
  if (st == GPUMEM_OK) {
    *stats = s.base;
    stats->struct_size = sizeof *stats;
  }
  return st;
}

int gpumem_f_buffer_create(int device, size_t max_size, int growth, int handle_type,
                           gpumem_buffer_t **buffer) {
  gpumem_buffer_config cfg = GPUMEM_BUFFER_CONFIG_INIT;
  cfg.device = device;
  cfg.max_size = max_size;
  cfg.growth = (gpumem_growth)growth;
  cfg.handle_type = (gpumem_handle_type)handle_type;
  return gpumem_buffer_create(&cfg, buffer);
}

int gpumem_f_buffer_stats(gpumem_buffer_t *buffer, gpumem_stats *stats) {
  gpumem_buffer_stats s = GPUMEM_BUFFER_STATS_INIT;
  gpumem_status st = gpumem_buffer_get_stats(buffer, stats ? &s : NULL);
  if (st == GPUMEM_OK) {
    *stats = s.base;
    stats->struct_size = sizeof *stats;
  }
  return st;
}

size_t gpumem_f_sizeof_stats(void) {
  return sizeof(gpumem_stats);
}
