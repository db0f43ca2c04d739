/* gpumem-bench: compare allocators on the same work.
 *
 * Every allocator registered with the common interface (gpumem_allocator_list)
 * and, in `pairs`, the host-memory yardsticks (malloc, mimalloc) run the same
 * workloads, generated as plans from a seed before timing starts. The parts:
 * cli.c reads the command line, workloads.c holds the workload table and
 * runs it, report.c writes the table, CSV and JSON (harness.h says more).
 * This file chooses the backend and runs them in order.
 *
 * Without a GPU, and unless GPUMEM_BACKEND chose a backend, gpumem-bench runs
 * on the host backend and says so in its header: those timings are CPU
 * timings of the emulation, not GPU figures. On the host backend (chosen or
 * fallen back to) the emulated devices are GPUMEM_HOST_CAPACITY large when
 * that is set; otherwise gpumem-bench sizes them: HOST_CAPACITY_MIN, or
 * three times the most live bytes of the trace to replay, rounded up to a
 * GiB, when that is more (a replay on a device smaller than its trace fails
 * every row out of memory and measures nothing). The header says which.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "harness.h"

#define GIB ((size_t)1 << 30)
/* The emulated devices' size when neither GPUMEM_HOST_CAPACITY nor a trace
 * asks for more. */
#define HOST_CAPACITY_MIN ((size_t)4 << 30)
/* Room for a replay: this many times the trace's most live bytes. An
 * allocator reserves more than is live, and memory an earlier row's
 * allocator held may not be back yet when the next row starts (seen on the
 * host backend after a gpumem-pool row: a gpumem-pool then gpumem-arena
 * replay of the resnet50 trace fails at 7 GiB and at 12 GiB now and then,
 * each alone fits in 7; at three times, 17 GiB, every row passed). */
#define HOST_CAPACITY_TRACE_FACTOR 3

static bool env_set(const char *name) {
  const char *v = getenv(name);
  return v != NULL && v[0] != '\0';
}

/* The emulated devices' size gpumem-bench chooses, and the reason. */
static size_t host_capacity(const gb_bench *b, const char **why) {
  size_t want = b->trace_peak * HOST_CAPACITY_TRACE_FACTOR;
  want = (want + GIB - 1) / GIB * GIB;
  if (want > HOST_CAPACITY_MIN) {
    *why = "sized by gpumem-bench: three times the trace's most live bytes";
    return want;
  }
  *why = "gpumem-bench's default";
  return HOST_CAPACITY_MIN;
}

static gpumem_status init_host(size_t capacity) {
  gpumem_init_options o = GPUMEM_INIT_OPTIONS_INIT;
  o.backend = GPUMEM_BACKEND_HOST;
  o.host_capacity = capacity; /* 0: GPUMEM_HOST_CAPACITY's */
  return gpumem_init(&o);
}

/* Initialise the library; without a usable GPU, and unless GPUMEM_BACKEND
 * chose a backend, fall back to the host backend and say so. Returns the
 * exit status (GB_EXIT_OK to go on). */
static int start(gb_bench *b, gb_header *h) {
  memset(h, 0, sizeof *h);
  const char *sized = "GPUMEM_HOST_CAPACITY";
  size_t capacity = env_set("GPUMEM_HOST_CAPACITY") ? 0 : host_capacity(b, &sized);
  const char *backend = getenv("GPUMEM_BACKEND");
  char no_gpu[320] = "";
  gpumem_status st = GPUMEM_OK;
  int count = 0;
  if (backend != NULL && strcasecmp(backend, "host") == 0) {
    st = init_host(capacity);
  } else {
    st = gpumem_device_count(&count);
    if (st == GPUMEM_ERR_NO_DEVICE && !env_set("GPUMEM_BACKEND")) {
      snprintf(no_gpu, sizeof no_gpu, "%s", gpumem_last_error());
      st = init_host(capacity);
    }
  }
  if (st == GPUMEM_OK) st = gpumem_device_count(&count);
  if (st != GPUMEM_OK) {
    fprintf(stderr, "gpumem-bench: %s\n", gpumem_last_error());
    return st == GPUMEM_ERR_NO_DEVICE ? GB_EXIT_USAGE : GB_EXIT_FAILED;
  }
  gpumem_device_info info;
  if (gpumem_device_get_info(b->device, &info) != GPUMEM_OK) {
    fprintf(stderr, "gpumem-bench: %s\n", gpumem_last_error());
    return GB_EXIT_USAGE;
  }
  snprintf(h->device, sizeof h->device, "%.200s (%.48s)", info.name, info.uuid);
  snprintf(h->backend, sizeof h->backend, "%s", gpumem_backend_name());
  gpumem_cuda_versions(&h->driver, &h->runtime);
  time_t now = time(NULL);
  strftime(h->date, sizeof h->date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
  b->memory_free = info.memory_free;
  b->granularity = info.granularity_min;
  b->cap_limit = info.memory_free / 2; /* the random cap must fit a MIG slice, a small GPU */
  if (gpumem_backend() == GPUMEM_BACKEND_HOST) {
    char total[16];
    gb_size_text(info.memory_total, total, sizeof total);
    if (no_gpu[0] != '\0') {
      snprintf(h->note, sizeof h->note,
               "NOTE: no GPU here (%.200s); running on the host backend's emulated devices (%s "
               "each, %s): these are CPU timings of the emulation, not GPU figures",
               no_gpu, total, sized);
    } else {
      snprintf(h->note, sizeof h->note,
               "NOTE: host backend (emulated devices of %s each, %s): CPU timings of the "
               "emulation, not GPU figures",
               total, sized);
    }
  }
  return GB_EXIT_OK;
}

/* `--trace synth:FAMILY:SEED`: the family's trace with its defaults,
 * generated in memory (what `synth --family FAMILY --seed SEED` writes). */
static bool synth_trace(gb_plan *plan, const char *spec, char *why, size_t len) {
  char family[32];
  const char *colon = strchr(spec, ':');
  size_t n = colon ? (size_t)(colon - spec) : strlen(spec);
  gb_synth_family f;
  snprintf(family, sizeof family, "%.*s", (int)(n < sizeof family ? n : sizeof family - 1), spec);
  if (!gb_synth_family_parse(family, &f)) {
    snprintf(why, len, "synth:%s: unknown family (training, varlen, generation, mixture, decode)",
             spec);
    return false;
  }
  gb_synth_config c;
  gb_synth_defaults(&c, f);
  if (colon != NULL) {
    char *end = NULL;
    errno = 0;
    unsigned long long seed = strtoull(colon + 1, &end, 10);
    if (colon[1] < '0' || colon[1] > '9' || *end != '\0' || errno != 0) {
      snprintf(why, len, "synth:%s: the seed is not a whole number", spec);
      return false;
    }
    c.seed = seed;
  }
  return gb_synth_plan(plan, &c, why, len);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "synth") == 0) return gb_synth_main(argc - 1, argv + 1);
  if (argc > 1 && strcmp(argv[1], "costs") == 0) {
    gb_costs_options co;
    int parsed = gb_costs_parse(argc - 1, argv + 1, &co);
    if (parsed != 0) return parsed == 1 ? GB_EXIT_OK : GB_EXIT_USAGE;
    gb_bench cb = {.device = co.device, .cap_limit = SIZE_MAX};
    gb_header h;
    int rc = start(&cb, &h);
    if (rc == GB_EXIT_OK) rc = gb_costs_run(&co, &h);
    GB_CHECKED(gpumem_finalize());
    return rc;
  }
  static gb_options o;
  switch (gb_parse_args(argc, argv, &o)) {
  case GB_PARSE_DONE:
    return GB_EXIT_OK;
  case GB_PARSE_BAD:
    return GB_EXIT_USAGE;
  case GB_PARSE_RUN:
    break;
  }
  static gb_report report;
  gb_bench b = {.o = &o, .report = &report, .device = (int)o.device, .cap_limit = SIZE_MAX};
  int rc = GB_EXIT_OK;
  if (o.trace != NULL) {
    char why[512];
    bool read = strncmp(o.trace, "synth:", 6) == 0
                    ? synth_trace(&b.trace, o.trace + 6, why, sizeof why)
                    : gb_plan_read_trace(&b.trace, o.trace, why, sizeof why);
    if (!read) {
      fprintf(stderr, "gpumem-bench: cannot replay: %s\n", why);
      gb_plan_free(&b.trace);
      return GB_EXIT_USAGE;
    }
    b.trace_peak = gb_plan_live_curve(&b.trace, NULL);
  }
  if (o.export_dir != NULL) {
    rc = gb_export_plans(&b, o.export_dir);
    gb_plan_free(&b.trace);
    return rc;
  }
  char why[512];
  if (!gb_report_open(&report, &o, why, sizeof why)) {
    fprintf(stderr, "gpumem-bench: %s\n", why);
    gb_plan_free(&b.trace);
    return GB_EXIT_USAGE;
  }
  gb_header h;
  rc = start(&b, &h);
  if (rc == GB_EXIT_OK) {
    gb_report_begin(&report, &h, gb_allocator_width(&o), gb_rows_total(&b));
    gb_run(&b);
  }
  int end = gb_report_end(&report); /* closes the files, also after a failed start */
  if (rc == GB_EXIT_OK) rc = end;
  gb_plan_free(&b.trace);
  GB_CHECKED(gpumem_finalize());
  return rc;
}
