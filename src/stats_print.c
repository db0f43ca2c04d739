/* stats_print.c: gpumem_stats_print, an allocator's statistics for people
 * and for programs.
 *
 * Like mimalloc's mi_stats_print, one call prints what an allocator knows:
 * the gpumem_stats every allocator reports and, for libgpumem's own pools
 * and arenas (recognised through allocator.c's gm_allocator_inner, never by
 * trusting the name an application may have set), the richer
 * gpumem_pool_stats or gpumem_arena_stats. Text lines give each size as a
 * binary unit and the exact bytes ("4 MiB (4194304 bytes)"); JSON is one
 * object written by the library's JSON writer (json.h, shared with
 * gpumem-info and gpumem-bench), sizes in bytes.
 *
 * The report is built in memory first (open_memstream) and handed over in
 * one piece: to the caller's FILE with one fwrite, or to the caller's
 * output function (mi_stats_print_out's idea, for programs without stdio,
 * such as a Python hook writing to its logger), and concurrent reports do
 * not interleave line by line. The allocator's stats function is called
 * without any library lock held here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allocator.h"
#include "api.h"
#include "arena.h"
#include "json.h"
#include "options.h"
#include "pool.h"

typedef struct report {
  gpumem_stats base;
  bool has_pool, has_arena;
  gpumem_pool_stats pool;
  gpumem_arena_stats arena;
} report;

static gpumem_status collect(const gpumem_allocator *a, report *r) {
  *r = (report){
      .base = GPUMEM_STATS_INIT, .pool = GPUMEM_POOL_STATS_INIT, .arena = GPUMEM_ARENA_STATS_INIT};
  gpumem_status st = a->stats(a->ctx, &r->base);
  if (st != GPUMEM_OK) return st;
  const gm_allocator_impl *impl = NULL;
  void *state = NULL;
  if (!gm_allocator_inner(a, &impl, &state)) return GPUMEM_OK;
  if (impl == &gm_allocator_gpumem_pool || impl == &gm_allocator_gpumem_pool_nocache ||
      impl == &gm_allocator_wrapped_pool) {
    r->has_pool = true;
    return gm_pool_get_stats(state, &r->pool);
  }
  if (impl == &gm_allocator_gpumem_arena || impl == &gm_allocator_gpumem_arena_lean ||
      impl == &gm_allocator_wrapped_arena) {
    r->has_arena = true;
    return gm_arena_get_stats(gm_arena_allocator_arena(state), &r->arena);
  }
  return GPUMEM_OK;
}

static void text_size(FILE *f, const char *label, size_t bytes) {
  char human[32];
  fprintf(f, "  %-20s %s (%zu bytes)\n", label, gm_format_size(bytes, human, sizeof human), bytes);
}

static void text_count(FILE *f, const char *label, unsigned long long n) {
  fprintf(f, "  %-20s %llu\n", label, n);
}

/* The word GPUMEM_ALLOC_CONF's remap key takes for a setting. */
static const char *remap_name(gpumem_arena_remap remap) {
  return remap == GPUMEM_ARENA_REMAP_MEMORY  ? "memory"
         : remap == GPUMEM_ARENA_REMAP_CALLS ? "calls"
                                             : "balanced";
}

static void write_text(FILE *f, const gpumem_allocator *a, const report *r) {
  const char *name = a->name != NULL ? a->name : "(unnamed)";
  fprintf(f, "gpumem stats: %s on device %d\n", name, a->device);
  text_size(f, "in use", r->base.bytes_in_use);
  text_size(f, "peak in use", r->base.peak_bytes_in_use);
  text_size(f, "reserved", r->base.bytes_reserved);
  text_size(f, "peak reserved", r->base.peak_bytes_reserved);
  text_count(f, "allocs", r->base.allocs);
  text_count(f, "frees", r->base.frees);
  text_count(f, "failed allocs", r->base.failed_allocs);
  if (r->has_pool) {
    text_size(f, "pool used", r->pool.used_current);
    text_size(f, "pool used high", r->pool.used_high);
    text_size(f, "cached", r->pool.cached_bytes);
    text_count(f, "cache hits", r->pool.cache_hits);
    text_count(f, "cache misses", r->pool.cache_misses);
  }
  if (r->has_arena) {
    text_size(f, "arena max size", r->arena.max_size);
    text_size(f, "chunk size", r->arena.chunk_size);
    text_size(f, "free (mapped)", r->arena.bytes_free);
    text_size(f, "largest free", r->arena.base.largest_free);
    text_count(f, "blocks in use", r->arena.blocks_in_use);
    text_count(f, "free blocks", r->arena.free_blocks);
    fprintf(f, "  %-20s %.3f\n", "fragmentation", r->arena.fragmentation);
    text_count(f, "growths", r->arena.growths);
    text_count(f, "shards", r->arena.shards);
    text_count(f, "pages moved", r->arena.pages_remapped);
    fprintf(f, "  %-20s %s, slack %u%%\n", "remap", remap_name(r->arena.remap),
            r->arena.slack_percent);
  }
}

static void write_json(FILE *f, const gpumem_allocator *a, const report *r, gm_json *j) {
  gm_json_start(j, f);
  gm_json_object(j, NULL);
  gm_json_string(j, "name", a->name);
  gm_json_int(j, "device", a->device);
  gm_json_object(j, "stats");
  gm_json_uint(j, "bytes_in_use", r->base.bytes_in_use);
  gm_json_uint(j, "peak_bytes_in_use", r->base.peak_bytes_in_use);
  gm_json_uint(j, "bytes_reserved", r->base.bytes_reserved);
  gm_json_uint(j, "peak_bytes_reserved", r->base.peak_bytes_reserved);
  gm_json_uint(j, "allocs", r->base.allocs);
  gm_json_uint(j, "frees", r->base.frees);
  gm_json_uint(j, "failed_allocs", r->base.failed_allocs);
  gm_json_uint(j, "largest_free", r->base.largest_free);
  gm_json_end(j);
  if (r->has_pool) {
    gm_json_object(j, "pool");
    gm_json_uint(j, "used_current", r->pool.used_current);
    gm_json_uint(j, "used_high", r->pool.used_high);
    gm_json_uint(j, "cached_bytes", r->pool.cached_bytes);
    gm_json_uint(j, "cache_hits", r->pool.cache_hits);
    gm_json_uint(j, "cache_misses", r->pool.cache_misses);
    gm_json_end(j);
  }
  if (r->has_arena) {
    gm_json_object(j, "arena");
    gm_json_uint(j, "max_size", r->arena.max_size);
    gm_json_uint(j, "chunk_size", r->arena.chunk_size);
    gm_json_uint(j, "bytes_free", r->arena.bytes_free);
    gm_json_uint(j, "largest_free", r->arena.base.largest_free);
    gm_json_uint(j, "blocks_in_use", r->arena.blocks_in_use);
    gm_json_uint(j, "free_blocks", r->arena.free_blocks);
    gm_json_number(j, "fragmentation", r->arena.fragmentation, 3);
    gm_json_uint(j, "growths", r->arena.growths);
    gm_json_uint(j, "shards", r->arena.shards);
    gm_json_uint(j, "pages_remapped", r->arena.pages_remapped);
    gm_json_string(j, "remap", remap_name(r->arena.remap));
    gm_json_uint(j, "slack_percent", r->arena.slack_percent);
    gm_json_end(j);
  }
  gm_json_end(j);
}

/* The whole report in a malloc'ed string (*text, the caller frees it). */
static gpumem_status render(const gpumem_allocator *a, gpumem_stats_format format, char **text) {
  if (a == NULL) return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "allocator is NULL");
  if (a->stats == NULL)
    return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "the allocator has no stats function");
  if (format != GPUMEM_STATS_TEXT && format != GPUMEM_STATS_JSON) {
    return gm_error(GPUMEM_ERR_INVALID_ARGUMENT,
                    "format %d is neither GPUMEM_STATS_TEXT (0) nor GPUMEM_STATS_JSON (1)",
                    (int)format);
  }
  report r;
  gpumem_status st = collect(a, &r);
  if (st != GPUMEM_OK) return st;
  size_t len = 0;
  FILE *f = open_memstream(text, &len);
  if (f == NULL) return gm_error(GPUMEM_ERR_OUT_OF_MEMORY, "no host memory for the stats report");
  gm_json j;
  bool ok = true;
  if (format == GPUMEM_STATS_TEXT) {
    write_text(f, a, &r);
  } else {
    write_json(f, a, &r, &j);
    ok = gm_json_finish(&j);
  }
  ok = !ferror(f) && ok;
  if (fclose(f) != 0 || !ok) {
    free(*text);
    *text = NULL;
    return gm_error(GPUMEM_ERR_OUT_OF_MEMORY, "no host memory for the stats report");
  }
  return GPUMEM_OK;
}

gpumem_status gm_stats_print_file(const gpumem_allocator *a, FILE *out,
                                  gpumem_stats_format format) {
  char *text = NULL;
  gpumem_status st = render(a, format, &text);
  if (st != GPUMEM_OK) return st;
  if (out == NULL) out = stderr;
  size_t n = strlen(text);
  bool ok = fwrite(text, 1, n, out) == n && fflush(out) == 0;
  free(text);
  return ok ? GPUMEM_OK : gm_error(GPUMEM_ERR_OS, "writing the stats report failed");
}

static gpumem_status print_out(const gpumem_allocator *a, gpumem_output_fn fn, void *user,
                               gpumem_stats_format format) {
  if (fn == NULL) return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "output function is NULL");
  char *text = NULL;
  gpumem_status st = render(a, format, &text);
  if (st != GPUMEM_OK) return st;
  fn(text, user);
  free(text);
  return GPUMEM_OK;
}

GPUMEM_API gpumem_status gpumem_stats_print(const gpumem_allocator *allocator, FILE *out,
                                            gpumem_stats_format format) {
  GM_API_FORWARD(gm_stats_print_file(allocator, out, format));
}

GPUMEM_API gpumem_status gpumem_stats_print_out(const gpumem_allocator *allocator,
                                                gpumem_output_fn fn, void *user,
                                                gpumem_stats_format format) {
  GM_API_FORWARD(print_out(allocator, fn, user, format));
}
