/* report.c: what gpumem-bench writes.
 *
 * Rows are written as they finish, not at the end: a line of the table on
 * stdout and a line of the CSV, both flushed, so that a long run shows its
 * progress, can be followed with `tail -f`, and leaves every finished row
 * behind if it is stopped. The table's first column is as wide as the
 * longest allocator or grower name of the run. A failed row says FAILED and
 * why in the table and in the CSV's status column.
 *
 * The --csv and --json files are opened before anything runs, so that a path
 * that cannot be written ends the run at once (exit status 2) rather than
 * after it. The JSON (header and every row) is written at the end through
 * the JSON writer shared with gpumem-info (src/json.h). Last, stderr gets a
 * summary: how many rows ran, and each failed row with its reason, so that a
 * run whose table went to a file still says what went wrong.
 *
 * CSV columns (tools/gpu-check and bench/plot.py read them by name; new
 * columns are added at the end): backend, device, date, allocator, workload,
 * params, threads, ops, reps, median_ns, min_ns, max_ns, ops_per_s, scaling,
 * peak_live_bytes, peak_reserved_bytes, driver_calls, status, memory
 * ("device", or "host" for the malloc and mimalloc yardsticks).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "json.h"

#define PROGRESS_WIDTH 30
#define PROGRESS_LINE  100 /* characters a progress line may take */

const char *const gb_csv_columns[] = {"backend",
                                      "device",
                                      "date",
                                      "allocator",
                                      "workload",
                                      "params",
                                      "threads",
                                      "ops",
                                      "reps",
                                      "median_ns",
                                      "min_ns",
                                      "max_ns",
                                      "ops_per_s",
                                      "scaling",
                                      "peak_live_bytes",
                                      "peak_reserved_bytes",
                                      "driver_calls",
                                      "status",
                                      "memory",
                                      "model_us_per_op",
                                      NULL};

void gb_result_init(gb_result *r, const char *allocator, const char *workload) {
  memset(r, 0, sizeof *r);
  snprintf(r->allocator, sizeof r->allocator, "%s", allocator);
  snprintf(r->workload, sizeof r->workload, "%s", workload);
  snprintf(r->status, sizeof r->status, "ok");
  r->threads = 1;
}

static bool row_ok(const gb_result *r) {
  return strcmp(r->status, "ok") == 0;
}

bool gb_report_open(gb_report *r, const gb_options *o, char *why, size_t len) {
  memset(r, 0, sizeof *r);
  r->o = o;
  const char *paths[2] = {o->csv, o->json};
  FILE **files[2] = {&r->csv, &r->json};
  for (int i = 0; i < 2; i++) {
    if (paths[i] == NULL) continue;
    *files[i] = fopen(paths[i], "w");
    if (*files[i] == NULL) {
      snprintf(why, len, "cannot write %s: %s", paths[i], strerror(errno));
      if (r->csv != NULL) fclose(r->csv);
      r->csv = NULL;
      return false;
    }
  }
  return true;
}

/* ---- progress on stderr (a terminal only) ---- */

static bool progress_shown(const gb_report *r) {
  return r->o->progress && r->total > 0;
}

static void progress_clear(const gb_report *r) {
  if (progress_shown(r)) fprintf(stderr, "\r%*s\r", PROGRESS_LINE, "");
}

static void progress_draw(const gb_report *r, const gb_result *last) {
  if (!progress_shown(r) || r->done >= r->total) return;
  int filled = (int)(r->done * PROGRESS_WIDTH / r->total);
  fprintf(stderr, "\r[%.*s%*s] %zu/%zu %-12.12s %-8s %-28.28s", filled,
          "##############################", PROGRESS_WIDTH - filled, "", r->done, r->total,
          last->allocator, last->workload, last->params);
}

void gb_note(gb_report *r, const char *format, ...) {
  if (r != NULL) progress_clear(r);
  va_list ap;
  va_start(ap, format);
  fprintf(stderr, "gpumem-bench: ");
  vfprintf(stderr, format, ap);
  fputc('\n', stderr);
  va_end(ap);
}

/* ---- the table ---- */

static const char *memory_name(const gb_result *row) {
  return row->host_memory ? "host" : "device";
}

void gb_report_begin(gb_report *r, const gb_header *h, int width, size_t total_rows) {
  r->header = *h;
  r->begun = true;
  r->allocator_width = width;
  r->total = total_rows;
  printf("gpumem-bench %s | %s | CUDA driver %d.%d, runtime %d.%d | backend %s | %s\n",
         gpumem_version_string(), h->device, h->driver / 1000, h->driver % 1000 / 10,
         h->runtime / 1000, h->runtime % 1000 / 10, h->backend, h->date);
  if (h->note[0]) printf("%s\n", h->note);
  printf("method: %zu warm-up + %zu timed repetitions, median [min, max] ns per operation "
         "(pairs: per alloc+free pair), each repetition ending in a synchronize\n",
         r->o->warmup, r->o->reps);
  char host[64] = "";
  size_t nhost = 0;
  for (size_t i = 0; i < r->o->nallocators; i++) {
    if (!gb_host_allocator_known(r->o->allocators[i])) continue;
    size_t used = strlen(host);
    snprintf(host + used, sizeof host - used, "%s%s", nhost++ ? " and " : "", r->o->allocators[i]);
  }
  if (nhost > 0 && (r->o->workloads & (1u << gb_workload_find("pairs")))) {
    printf("memory host: the %s rows allocate host memory, the yardstick for the host-side cost "
           "of a pair\n",
           host);
  }
  char costs[400];
  gb_cost_text(r->o->driver_cost, costs, sizeof costs);
  printf("model us/op: a MODEL, not measured: the driver calls of the timed repetitions times "
         "us per call (%s; --driver-cost overrides), divided by the operations\n",
         costs);
  printf("\n%-*s %-8s %-32s %9s %12s %12s %12s %12s %9s %10s %10s %6s %7s %11s %s\n", width,
         "allocator", "workload", "params", "ops/rep", "median ns", "min ns", "max ns", "ops/s",
         "scaling", "peak live", "peak rsvd", "r/l", "calls", "model us/op", "memory");
  fflush(stdout);
  if (r->csv != NULL) {
    for (int i = 0; gb_csv_columns[i] != NULL; i++)
      fprintf(r->csv, "%s%s", i ? "," : "", gb_csv_columns[i]);
    fputc('\n', r->csv);
    fflush(r->csv);
  }
}

static void print_row(const gb_report *r, const gb_result *row) {
  int w = r->allocator_width;
  if (!row_ok(row)) {
    printf("%-*s %-8s %-32s FAILED: %s\n", w, row->allocator, row->workload, row->params,
           row->status);
    return;
  }
  char live[16], rsvd[16] = "-", ratio[16] = "-", scaling[16] = "", calls[24] = "";
  gb_size_text(row->peak_live, live, sizeof live);
  if (!row->host_memory) { /* a host allocator's reserved bytes are not known */
    gb_size_text(row->peak_reserved, rsvd, sizeof rsvd);
    double rl = row->peak_live ? (double)row->peak_reserved / (double)row->peak_live : 0.0;
    /* fewer decimals as it grows, so that the column keeps its width */
    snprintf(ratio, sizeof ratio, "%.*f", rl < 100 ? 2 : rl < 1000 ? 1 : 0, rl);
  }
  if (strcmp(row->workload, "threads") == 0)
    snprintf(scaling, sizeof scaling, "%.2fx", row->scaling);
  if (row->has_calls) snprintf(calls, sizeof calls, "%llu", (unsigned long long)row->calls);
  char model[24] = "-";
  if (row->has_model && !row->host_memory) snprintf(model, sizeof model, "%.3f", row->model_us);
  printf("%-*s %-8s %-32s %9zu %12.0f %12.0f %12.0f %12.0f %9s %10s %10s %6s %7s %11s %s\n", w,
         row->allocator, row->workload, row->params, row->ops, row->ns.median, row->ns.min,
         row->ns.max, row->ops_per_s, scaling, live, rsvd, ratio, calls, model, memory_name(row));
}

/* A CSV field in double quotes, inner quotes doubled. */
static void csv_quoted(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    if (*s == '"') fputc('"', f);
    fputc(*s, f);
  }
  fputc('"', f);
}

static void csv_row(const gb_report *r, const gb_result *row) {
  FILE *f = r->csv;
  const gb_header *h = &r->header;
  fprintf(f, "%s,", h->backend);
  csv_quoted(f, h->device);
  fprintf(f, ",%s,%s,%s,", h->date, row->allocator, row->workload);
  csv_quoted(f, row->params);
  fprintf(f, ",%d,%zu,%d,%.1f,%.1f,%.1f,%.1f,%.3f,%zu,%zu,", row->threads, row->ops, row->reps,
          row->ns.median, row->ns.min, row->ns.max, row->ops_per_s, row->scaling, row->peak_live,
          row->peak_reserved);
  if (row->has_calls) fprintf(f, "%llu", (unsigned long long)row->calls);
  fputc(',', f);
  csv_quoted(f, row->status);
  fprintf(f, ",%s,", memory_name(row));
  if (row->has_model && !row->host_memory) fprintf(f, "%.4f", row->model_us);
  fputc('\n', f);
  fflush(f);
}

void gb_report_row(gb_report *r, const gb_result *row) {
  if (r->count == r->capacity) {
    size_t cap = r->capacity ? r->capacity * 2 : 64;
    gb_result *grown = realloc(r->rows, cap * sizeof *grown);
    if (grown == NULL) {
      gb_note(r, "out of host memory: the JSON and the summary lack rows");
      r->write_failed = true;
    } else {
      r->rows = grown;
      r->capacity = cap;
    }
  }
  if (r->count < r->capacity) r->rows[r->count++] = *row;
  r->done++;
  progress_clear(r);
  print_row(r, row);
  fflush(stdout);
  if (r->csv != NULL) csv_row(r, row);
  progress_draw(r, row);
}

static bool write_json(const gb_report *r) {
  const gb_header *h = &r->header;
  gm_json j;
  gm_json_start(&j, r->json);
  gm_json_object(&j, NULL);
  gm_json_object(&j, "header");
  gm_json_string(&j, "library", gpumem_version_string());
  gm_json_string(&j, "device", h->device);
  gm_json_string(&j, "backend", h->backend);
  gm_json_string(&j, "date", h->date);
  gm_json_int(&j, "cuda_driver", h->driver);
  gm_json_int(&j, "cuda_runtime", h->runtime);
  gm_json_uint(&j, "warmup", r->o->warmup);
  gm_json_uint(&j, "reps", r->o->reps);
  gm_json_string(&j, "note", h->note);
  gm_json_object(&j, "driver_cost_us"); /* the cost model's table */
  for (int i = 0; i < GB_COST_COUNT; i++)
    gm_json_number(&j, gb_cost_name((gb_cost_op)i), r->o->driver_cost[i], 3);
  gm_json_end(&j);
  gm_json_end(&j);
  gm_json_array(&j, "results");
  for (size_t i = 0; i < r->count; i++) {
    const gb_result *row = &r->rows[i];
    gm_json_object(&j, NULL);
    gm_json_string(&j, "allocator", row->allocator);
    gm_json_string(&j, "workload", row->workload);
    gm_json_string(&j, "params", row->params);
    gm_json_int(&j, "threads", row->threads);
    gm_json_uint(&j, "ops", row->ops);
    gm_json_int(&j, "reps", row->reps);
    gm_json_number(&j, "median_ns", row->ns.median, 1);
    gm_json_number(&j, "min_ns", row->ns.min, 1);
    gm_json_number(&j, "max_ns", row->ns.max, 1);
    gm_json_number(&j, "ops_per_s", row->ops_per_s, 1);
    gm_json_number(&j, "scaling", row->scaling, 3);
    gm_json_uint(&j, "peak_live_bytes", row->peak_live);
    gm_json_uint(&j, "peak_reserved_bytes", row->peak_reserved);
    gm_json_int(&j, "driver_calls", row->has_calls ? (long long)row->calls : -1);
    gm_json_string(&j, "status", row->status);
    gm_json_string(&j, "memory", memory_name(row));
    if (row->has_model && !row->host_memory)
      gm_json_number(&j, "model_us_per_op", row->model_us, 4);
    else
      gm_json_null(&j, "model_us_per_op");
    gm_json_end(&j);
  }
  gm_json_end(&j);
  gm_json_end(&j);
  return gm_json_finish(&j);
}

int gb_report_end(gb_report *r) {
  int rc = GB_EXIT_OK;
  progress_clear(r);
  if (r->json != NULL) {
    bool ok = write_json(r);
    if (fclose(r->json) != 0) ok = false;
    if (!ok) {
      gb_note(r, "cannot write %s: %s", r->o->json, strerror(errno));
      rc = GB_EXIT_FAILED;
    }
  }
  if (r->csv != NULL) {
    bool bad = ferror(r->csv) != 0;
    if (fclose(r->csv) != 0) bad = true;
    if (bad) {
      gb_note(r, "cannot write %s: %s", r->o->csv, strerror(errno));
      rc = GB_EXIT_FAILED;
    }
  }
  size_t failed = 0;
  for (size_t i = 0; i < r->count; i++)
    failed += !row_ok(&r->rows[i]);
  if (!r->begun) {
    /* nothing ran: the caller has said why */
  } else if (failed == 0) {
    gb_note(r, "%zu row%s, none failed", r->count, r->count == 1 ? "" : "s");
  } else {
    gb_note(r, "%zu row%s, %zu failed:", r->count, r->count == 1 ? "" : "s", failed);
    for (size_t i = 0; i < r->count; i++) {
      const gb_result *row = &r->rows[i];
      if (!row_ok(row))
        fprintf(stderr, "  %s %s %s: %s\n", row->allocator, row->workload, row->params,
                row->status);
    }
    rc = GB_EXIT_FAILED;
  }
  if (r->write_failed) rc = GB_EXIT_FAILED;
  free(r->rows);
  r->rows = NULL;
  return rc;
}
