/* costs.c: `gpumem-bench costs`, what each VMM driver call costs here.
 *
 * The cost model (driver_calls.c) prices driver calls with figures measured
 * once on an H100 and takes every call to cost the same whatever it covers.
 * Two things rest on that: the "model us/op" column of every row, and the
 * arena's choice to move a run of neighbouring free pages with ONE unmap and
 * to open a growth's new pages with ONE access call (src/arena.c). This
 * subcommand measures both on the machine at hand, through the public VMM
 * API (gpumem_vmm_*, whose own work is a few hundred nanoseconds next to the
 * driver's microseconds): for runs of k pages of the device's minimum
 * granularity (--pages, default 1,4,16) it times each cuMemCreate, each
 * cuMemMap, one cuMemSetAccess over the run, one cuMemUnmap of the whole run
 * and each cuMemRelease, and a reserve + free of the run's range, --reps
 * times (default 20, after one untimed warm-up run per k). It prints the
 * median, min and max microseconds per call and per page, says how a run's
 * unmap and access call compare with a single page's (the model assumes
 * 1x), and ends with the `--driver-cost` option that makes replays on this
 * machine use its own figures. On the host backend the figures are the
 * emulation's (mmap and mprotect), printed as such: only a GPU run says what
 * the driver costs. tools/gpu-check runs it in its bench stage.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "harness.h"

enum { C_CREATE, C_MAP, C_ACCESS, C_UNMAP, C_RELEASE, C_RESERVE, C_FREE, C_COUNT };

static const char *const call_names[C_COUNT] = {"phys_create",  "map",        "set_access", "unmap",
                                                "phys_release", "va_reserve", "va_free"};
/* Calls made once per run (their figure depends on k); the others once per
 * page. */
static const bool per_run[C_COUNT] = {false, false, true, true, false, true, true};

typedef struct samples {
  double *v;
  size_t n, cap;
} samples;

static bool add_sample(samples *s, double us) {
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 64;
    double *v = realloc(s->v, cap * sizeof *v);
    if (v == NULL) return false;
    s->v = v;
    s->cap = cap;
  }
  s->v[s->n++] = us;
  return true;
}

static int by_value(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return a < b ? -1 : a > b;
}

static double median_of(samples *s) {
  qsort(s->v, s->n, sizeof *s->v, by_value);
  return s->n % 2 ? s->v[s->n / 2] : (s->v[s->n / 2 - 1] + s->v[s->n / 2]) / 2;
}

/* One run of k pages: every call timed into t[call]. False (with the
 * library's error printed) when a call fails; what was made is undone. */
static bool one_run(int device, size_t gran, size_t k, samples *t, bool keep) {
  gpumem_phys_props props = {device, GPUMEM_HANDLE_NONE, false};
  gpumem_access_desc rw = {device, GPUMEM_ACCESS_READWRITE};
  gpumem_phys_t h[COSTS_MAX_PAGES] = {0};
  void *va = NULL;
  size_t made = 0, mapped = 0;
  bool ok = false;
  double t0 = gb_now_ns();
  gpumem_status st = gpumem_vmm_reserve(k * gran, 0, &va);
  double us = (gb_now_ns() - t0) / 1000;
  if (st != GPUMEM_OK) goto out;
  if (keep && !add_sample(&t[C_RESERVE], us)) goto out;
  for (; made < k; made++) {
    t0 = gb_now_ns();
    st = gpumem_vmm_create(&props, gran, &h[made]);
    us = (gb_now_ns() - t0) / 1000;
    if (st != GPUMEM_OK) goto out;
    if (keep && !add_sample(&t[C_CREATE], us)) goto out;
  }
  for (; mapped < k; mapped++) {
    t0 = gb_now_ns();
    st = gpumem_vmm_map((char *)va + mapped * gran, gran, 0, h[mapped]);
    us = (gb_now_ns() - t0) / 1000;
    if (st != GPUMEM_OK) goto out;
    if (keep && !add_sample(&t[C_MAP], us)) goto out;
  }
  t0 = gb_now_ns();
  st = gpumem_vmm_set_access(va, k * gran, &rw, 1); /* one call over the run */
  us = (gb_now_ns() - t0) / 1000;
  if (st != GPUMEM_OK) goto out;
  if (keep && !add_sample(&t[C_ACCESS], us)) goto out;
  t0 = gb_now_ns();
  st = gpumem_vmm_unmap(va, k * gran); /* one call over k mappings */
  us = (gb_now_ns() - t0) / 1000;
  if (st != GPUMEM_OK) goto out;
  mapped = 0;
  if (keep && !add_sample(&t[C_UNMAP], us)) goto out;
  while (made > 0) {
    t0 = gb_now_ns();
    st = gpumem_vmm_release(h[made - 1]);
    us = (gb_now_ns() - t0) / 1000;
    if (st != GPUMEM_OK) goto out;
    made--;
    if (keep && !add_sample(&t[C_RELEASE], us)) goto out;
  }
  t0 = gb_now_ns();
  st = gpumem_vmm_free(va, k * gran);
  us = (gb_now_ns() - t0) / 1000;
  if (st != GPUMEM_OK) goto out;
  va = NULL;
  ok = !keep || add_sample(&t[C_FREE], us);
out:
  if (!ok) {
    if (st != GPUMEM_OK)
      fprintf(stderr, "gpumem-bench costs: %u pages: %s\n", (unsigned)k, gpumem_last_error());
    else
      fprintf(stderr, "gpumem-bench costs: no host memory for the samples\n");
    for (size_t i = 0; i < mapped; i++)
      GB_CHECKED(gpumem_vmm_unmap((char *)va + i * gran, gran));
    while (made > 0)
      GB_CHECKED(gpumem_vmm_release(h[--made]));
    if (va != NULL) GB_CHECKED(gpumem_vmm_free(va, k * gran));
  }
  return ok;
}

static void costs_usage(FILE *f) {
  fprintf(f,
          "usage: gpumem-bench costs [--device N] [--reps N] [--pages LIST] [--csv FILE]\n"
          "\n"
          "Times each VMM driver call on this machine through the public API: for runs of\n"
          "k pages of the minimum granularity, each create, each map, ONE set_access over\n"
          "the run, ONE unmap of the run, each release, and a reserve + free of the range.\n"
          "Prints median/min/max us per call and per page, how a run's unmap and access\n"
          "compare with one page's (the cost model and the arena assume 1x), and the\n"
          "--driver-cost option that prices replays with this machine's figures. On the\n"
          "host backend these are the emulation's times, not a GPU's.\n"
          "\n"
          "  --device N     device ordinal (0)\n"
          "  --reps N       timed runs per k, 1-%d (20)\n"
          "  --pages LIST   run lengths k, comma-separated, 1-%d each, at most %d (1,4,16)\n"
          "  --csv FILE     also write the rows as CSV\n"
          "\n"
          "Exit status: 0 measured; 1 a driver call failed or FILE could not be written;\n"
          "2 bad arguments or no such device.\n",
          GB_MAX_REPS, COSTS_MAX_PAGES, COSTS_MAX_RUNS);
}

static bool whole_number(const char *text, unsigned long long min, unsigned long long max,
                         unsigned long long *out) {
  char *end = NULL;
  if (text[0] < '0' || text[0] > '9') return false;
  unsigned long long v = strtoull(text, &end, 10);
  if (*end != '\0' || v < min || v > max) return false;
  *out = v;
  return true;
}

int gb_costs_parse(int argc, char **argv, gb_costs_options *o) {
  *o = (gb_costs_options){.device = 0, .reps = 20, .pages = {1, 4, 16}, .nruns = 3, .csv = NULL};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      costs_usage(stdout);
      return 1;
    }
    bool known = strcmp(a, "--device") == 0 || strcmp(a, "--reps") == 0 ||
                 strcmp(a, "--pages") == 0 || strcmp(a, "--csv") == 0;
    if (!known) {
      fprintf(stderr, "gpumem-bench costs: unknown option: '%s' (costs --help)\n", a);
      return 2;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "gpumem-bench costs: missing value after: '%s'\n", a);
      return 2;
    }
    const char *v = argv[++i];
    unsigned long long n = 0;
    if (strcmp(a, "--csv") == 0) {
      o->csv = v;
    } else if (strcmp(a, "--device") == 0) {
      if (!whole_number(v, 0, GPUMEM_MAX_DEVICES - 1, &n)) {
        fprintf(stderr, "gpumem-bench costs: --device wants 0-%d: '%s'\n", GPUMEM_MAX_DEVICES - 1,
                v);
        return 2;
      }
      o->device = (int)n;
    } else if (strcmp(a, "--reps") == 0) {
      if (!whole_number(v, 1, GB_MAX_REPS, &n)) {
        fprintf(stderr, "gpumem-bench costs: --reps wants 1-%d: '%s'\n", GB_MAX_REPS, v);
        return 2;
      }
      o->reps = (unsigned)n;
    } else {
      char list[256];
      snprintf(list, sizeof list, "%s", v);
      o->nruns = 0;
      for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok != NULL;
           tok = strtok_r(NULL, ",", &save)) {
        if (o->nruns == COSTS_MAX_RUNS || !whole_number(tok, 1, COSTS_MAX_PAGES, &n)) {
          fprintf(stderr,
                  "gpumem-bench costs: --pages wants at most %d run lengths of 1-%d pages: '%s'\n",
                  COSTS_MAX_RUNS, COSTS_MAX_PAGES, v);
          return 2;
        }
        o->pages[o->nruns++] = (size_t)n;
      }
      if (o->nruns == 0) {
        fprintf(stderr, "gpumem-bench costs: --pages is empty\n");
        return 2;
      }
    }
  }
  return 0;
}

int gb_costs_run(const gb_costs_options *o, const gb_header *h) {
  gpumem_phys_props props = {o->device, GPUMEM_HANDLE_NONE, false};
  size_t gran = 0;
  if (gpumem_vmm_granularity(&props, false, &gran) != GPUMEM_OK) {
    fprintf(stderr, "gpumem-bench costs: %s\n", gpumem_last_error());
    return GB_EXIT_FAILED;
  }
  printf("gpumem-bench %s costs | %s | CUDA driver %d.%d, runtime %d.%d | backend %s | %s\n",
         gpumem_version_string(), h->device, h->driver / 1000, h->driver % 1000 / 10,
         h->runtime / 1000, h->runtime % 1000 / 10, h->backend, h->date);
  if (h->note[0] != '\0') printf("%s\n", h->note);
  printf("method: per run of k pages of %zu KiB (the minimum granularity): each create, each "
         "map, ONE set_access over the run, ONE unmap of the run, each release, reserve and "
         "free of its range; %u timed runs per k after one warm-up; us per call\n\n",
         gran >> 10, o->reps);
  FILE *csv = NULL;
  if (o->csv != NULL && (csv = fopen(o->csv, "w")) == NULL) {
    fprintf(stderr, "gpumem-bench costs: cannot write %s\n", o->csv);
    return GB_EXIT_FAILED;
  }
  if (csv != NULL)
    fprintf(csv, "backend,device,date,call,pages_per_call,calls,median_us,min_us,max_us,"
                 "median_us_per_page\n");
  printf("%-13s %6s %6s %10s %10s %10s %12s\n", "call", "pages", "calls", "median us", "min us",
         "max us", "us per page");
  int rc = GB_EXIT_OK;
  double single[C_COUNT] = {0}, last[C_COUNT] = {0};
  size_t last_k = 0;
  samples pooled[C_COUNT] = {{0}}; /* per-page calls, over every k */
  for (size_t r = 0; r < o->nruns && rc == GB_EXIT_OK; r++) {
    size_t k = o->pages[r];
    samples t[C_COUNT] = {{0}};
    bool ok = one_run(o->device, gran, k, t, false);
    for (unsigned i = 0; ok && i < o->reps; i++)
      ok = one_run(o->device, gran, k, t, true);
    if (!ok) rc = GB_EXIT_FAILED;
    for (int c = 0; c < C_COUNT; c++) {
      for (size_t i = 0; ok && i < t[c].n; i++)
        if (!per_run[c] && !add_sample(&pooled[c], t[c].v[i])) ok = false, rc = GB_EXIT_FAILED;
      if (ok && per_run[c] && t[c].n > 0) {
        double med = median_of(&t[c]);
        printf("%-13s %6zu %6zu %10.2f %10.2f %10.2f %12.2f\n", call_names[c], k, t[c].n, med,
               t[c].v[0], t[c].v[t[c].n - 1], med / (double)k);
        if (csv != NULL)
          fprintf(csv, "%s,\"%s\",%s,%s,%zu,%zu,%.3f,%.3f,%.3f,%.3f\n", h->backend, h->device,
                  h->date, call_names[c], k, t[c].n, med, t[c].v[0], t[c].v[t[c].n - 1],
                  med / (double)k);
        if (k == 1) single[c] = med;
        last[c] = med;
      }
      free(t[c].v);
    }
    last_k = k;
  }
  for (int c = 0; c < C_COUNT && rc == GB_EXIT_OK; c++) {
    if (per_run[c] || pooled[c].n == 0) continue;
    double med = median_of(&pooled[c]);
    single[c] = med;
    printf("%-13s %6d %6zu %10.2f %10.2f %10.2f %12.2f\n", call_names[c], 1, pooled[c].n, med,
           pooled[c].v[0], pooled[c].v[pooled[c].n - 1], med);
    if (csv != NULL)
      fprintf(csv, "%s,\"%s\",%s,%s,1,%zu,%.3f,%.3f,%.3f,%.3f\n", h->backend, h->device, h->date,
              call_names[c], pooled[c].n, med, pooled[c].v[0], pooled[c].v[pooled[c].n - 1], med);
  }
  for (int c = 0; c < C_COUNT; c++)
    free(pooled[c].v);
  if (csv != NULL && fclose(csv) != 0) rc = GB_EXIT_FAILED;
  if (rc != GB_EXIT_OK) return rc;
  if (last_k > 1 && single[C_UNMAP] > 0 && single[C_ACCESS] > 0) {
    printf("\none unmap of %zu pages costs %.2fx one of 1 page, one set_access over %zu pages "
           "%.2fx (the cost model and the arena assume 1x)\n",
           last_k, last[C_UNMAP] / single[C_UNMAP], last_k, last[C_ACCESS] / single[C_ACCESS]);
  }
  printf("%s--driver-cost phys_create=%.2f,map=%.2f,set_access=%.2f,unmap=%.2f,phys_release=%.2f,"
         "va_reserve=%.2f,va_free=%.2f\n",
         last_k > 1 ? "" : "\n", single[C_CREATE], single[C_MAP], single[C_ACCESS], single[C_UNMAP],
         single[C_RELEASE], single[C_RESERVE], single[C_FREE]);
  return GB_EXIT_OK;
}
