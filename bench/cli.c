/* cli.c: gpumem-bench's command line.
 *
 * One table describes every option: its name, the value it takes, how that
 * value is parsed and checked (a count in a range, a size, a list of either,
 * a word, a probability, text), where it is stored in gb_options, its line in
 * --help and the sentence that says what it wants when the value is bad.
 * getopt_long reads the command line from that table (so `--reps=5`, `--reps
 * 5` and unambiguous abbreviations work, and options and workloads may come
 * in any order), and --help is generated from it and from the workload table
 * (workloads.c), each workload's options under its name, so the text cannot
 * drift from what is parsed.
 *
 * --quick gives small counts to the options the command line did not set;
 * what it did set stands. Every bad argument is one line on stderr and exit
 * status 2 (GB_EXIT_USAGE), as in gpumem-info.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "harness.h"

#define GIB ((size_t)1 << 30)
#define MIB ((size_t)1 << 20)
#define KIB ((size_t)1 << 10)
/* Sizes a list or size option accepts: leave room to add and double. */
#define SIZE_OPTION_MAX (SIZE_MAX / 4)
/* getopt_long's value for the option at table index i. */
#define LONG_OPTION_BASE 256

typedef enum arg_kind {
  ARG_NONE,       /* a flag or an action */
  ARG_COUNT,      /* size_t in [min, max] */
  ARG_SIZE,       /* size_t, a size, in [min, max] */
  ARG_SIZE_LIST,  /* size_t[GB_MAX_LIST] of sizes in [min, max], count at count_offset */
  ARG_COUNT_LIST, /* size_t[GB_MAX_LIST] of counts in [min, max] */
  ARG_WORD,       /* int: the index of the value in `words` ("a|b|c") */
  ARG_PROB,       /* double in (0, 1] */
  ARG_TEXT,       /* const char *: the argument itself */
  ARG_NAMES,      /* the allocator list */
  ARG_COSTS,      /* the cost model's overrides: name=us,... */
} arg_kind;

typedef struct option_desc {
  gb_opt id;
  const char *name; /* without the leading -- */
  const char *arg;  /* the value's placeholder in --help */
  arg_kind kind;
  size_t offset, count_offset; /* into gb_options */
  size_t min, max;
  const char *words;
  const char *help;
  const char *wants; /* "--reps wants ...": the message for a bad value */
} option_desc;

#define AT(field) offsetof(gb_options, field)

static const option_desc option_table[] = {
    {GB_OPT_ALLOCATORS, "allocators", "A,B", ARG_NAMES, 0, 0, 0, 0, NULL,
     "which allocators (default: every one --list shows)", "names from --list"},
    {GB_OPT_DEVICE, "device", "N", ARG_COUNT, AT(device), 0, 0, GPUMEM_MAX_DEVICES, NULL,
     "device ordinal (default 0)", "an ordinal"},
    {GB_OPT_REPS, "reps", "N", ARG_COUNT, AT(reps), 0, 1, GB_MAX_REPS, NULL,
     "timed repetitions (default 5; --quick 3)", "1..1000"},
    {GB_OPT_WARMUP, "warmup", "N", ARG_COUNT, AT(warmup), 0, 0, GB_MAX_WARMUP, NULL,
     "warm-up repetitions before them (default 1)", "0..100"},
    {GB_OPT_SEED, "seed", "N", ARG_COUNT, AT(seed), 0, 0, INT64_MAX, NULL,
     "seed of the random plans (default 42)", "a non-negative integer"},
    {GB_OPT_QUICK, "quick", NULL, ARG_NONE, AT(quick), 0, 0, 0, NULL,
     "small counts for every option not given (a quick look, and CI)", NULL},
    {GB_OPT_CSV, "csv", "FILE", ARG_TEXT, AT(csv), 0, 0, 0, NULL,
     "also write the rows there as CSV, each as it finishes", NULL},
    {GB_OPT_JSON, "json", "FILE", ARG_TEXT, AT(json), 0, 0, 0, NULL,
     "also write the header and rows there as JSON", NULL},
    {GB_OPT_EXPORT_PLANS, "export-plans", "DIR", ARG_TEXT, AT(export_dir), 0, 0, 0, NULL,
     "write the workloads' plans as traces for a peer, then exit", NULL},
    {GB_OPT_LIST, "list", NULL, ARG_NONE, 0, 0, 0, 0, NULL,
     "list the allocators, grow's rows and the workloads, then exit", NULL},
    {GB_OPT_HELP, "help", NULL, ARG_NONE, 0, 0, 0, 0, NULL, "this text (also -h)", NULL},
    {GB_OPT_SIZES, "sizes", "LIST", ARG_SIZE_LIST, AT(sizes), AT(nsizes), 1, SIZE_OPTION_MAX, NULL,
     "sizes (default 256,4K,64K,1M,16M,256M,1G)",
     "up to 32 sizes such as 256,64K,1G (each below 4 EiB)"},
    {GB_OPT_PAIRS, "pairs", "N", ARG_COUNT, AT(pairs), 0, 1, 100000000, NULL,
     "alloc+free pairs per size (default 1000, --quick 200; a tenth at >= 256M)", "1..1e8"},
    {GB_OPT_LIVE, "live", "LIST", ARG_COUNT_LIST, AT(live), AT(nlive), 0, 10000000, NULL,
     "blocks held live meanwhile, a row for each count (default 0; 256 B-4 KiB, every other of "
     "2N freed)",
     "up to 32 counts in 0..1e7 such as 0,10,100000"},
    {GB_OPT_OPS, "ops", "N", ARG_COUNT, AT(ops), 0, 1, 100000000, NULL,
     "steps (default 20000, --quick 4000)", "1..1e8"},
    {GB_OPT_MAX_SIZE, "max-size", "SIZE", ARG_SIZE, AT(max_size), 0, 1, SIZE_OPTION_MAX, NULL,
     "largest allocation (default 64M)", "a size"},
    {GB_OPT_DIST, "dist", "D", ARG_WORD, AT(dist), 0, 0, 0, "uniform|lognormal|geometric",
     "size distribution: uniform, lognormal or geometric (default uniform)",
     "uniform, lognormal or geometric"},
    {GB_OPT_P_ALLOC, "p-alloc", "P", ARG_PROB, AT(p_alloc), 0, 0, 0, NULL,
     "probability of allocating at a step (default 0.6)", "0 < P <= 1"},
    {GB_OPT_CAP, "cap", "SIZE", ARG_SIZE, AT(cap), 0, 1, SIZE_OPTION_MAX, NULL,
     "cap on live bytes (default 1G; lowered, and said, past half the free memory)", "a size"},
    {GB_OPT_THREADS, "threads", "LIST", ARG_COUNT_LIST, AT(threads), AT(nthreads), 1,
     GB_MAX_THREADS, NULL, "thread counts (default 1,2,4,8,16; --quick 1,2,4)",
     "counts such as 1,2,4 (at most 256 threads)"},
    {GB_OPT_THREAD_WORKLOAD, "thread-workload", "W", ARG_WORD, AT(thread_workload), 0, 0, 0,
     "pairs|random",
     "pairs or random (default pairs; random takes the random options, the cap split "
     "between threads)",
     "pairs or random"},
    {GB_OPT_THREAD_SIZE, "thread-size", "SIZE", ARG_SIZE, AT(thread_size), 0, 1, SIZE_OPTION_MAX,
     NULL, "pair size (default 64K)", "a size"},
    {GB_OPT_THREAD_PAIRS, "thread-pairs", "N", ARG_COUNT, AT(thread_pairs), 0, 1, 100000000, NULL,
     "pairs (random: 2N steps) per thread (default 2000, --quick 500)", "1..1e8"},
    {GB_OPT_STREAMS, "streams", "N", ARG_COUNT, AT(streams), 0, 1, GB_MAX_STREAMS, NULL,
     "number of streams (default 4)", "1..64"},
    {GB_OPT_TRACE, "trace", "FILE", ARG_TEXT, AT(trace), 0, 0, 0, NULL,
     "the trace to replay (.csv or .csv.gz, or synth:FAMILY:SEED, see `synth --help`); giving "
     "it selects replay",
     NULL},
    {GB_OPT_FIRST, "first", "N", ARG_COUNT, AT(first), 0, 1, 100000, NULL,
     "allocations timed on a fresh allocator (default 16)", "1..100000"},
    {GB_OPT_GROW_TARGET, "grow-target", "SIZE", ARG_SIZE, AT(grow_target), 0, 1, SIZE_OPTION_MAX,
     NULL, "final size (default 8G, --quick 256M; lowered, and said, past a third of free memory)",
     "a size"},
    {GB_OPT_GROW_STEPS, "grow-steps", "LIST", ARG_SIZE_LIST, AT(grow_steps), AT(ngrow_steps), 1,
     SIZE_OPTION_MAX, NULL, "step sizes (default 64M,512M)", "sizes such as 64M,512M"},
    {GB_OPT_BATCH, "batch", "SIZE", ARG_SIZE, AT(batch), 0, 2, SIZE_OPTION_MAX, NULL,
     "the size N of the N+-1 pattern (default 1G, --quick 64M)", "a size of at least 2 bytes"},
    {GB_OPT_BATCH_ITERATIONS, "batch-iterations", "N", ARG_COUNT, AT(batch_iterations), 0, 1,
     10000000, NULL, "N+-1 repetitions (default 1000, --quick 100)", "1..1e7"},
    {GB_OPT_DRIVER_COST, "driver-cost", "NAME=US,...", ARG_COSTS, 0, 0, 0, 0, NULL,
     "the cost model's us per driver call, e.g. map=1.5,set_access=25 (defaults: H100 "
     "figures, phys_create=12 map=1.1 set_access=30 unmap=20 phys_release=12 va_reserve=2 "
     "va_free=2 dev_malloc=42 dev_free=42 pool_alloc=0.6 pool_free=0.6 pool_trim=12)",
     NULL},
};
#define OPTION_COUNT (sizeof option_table / sizeof option_table[0])

_Static_assert(OPTION_COUNT == GB_OPT_COUNT, "one option_table entry per gb_opt, in order");
_Static_assert(GB_OPT_COUNT <= 64, "gb_options.given holds one bit per option");

/* ---- sizes and lists ---- */

bool gb_parse_size(const char *text, size_t *out) {
  if (text == NULL || *text < '0' || *text > '9') return false; /* no sign, no space */
  char *end = NULL;
  errno = 0;
  unsigned long long v = strtoull(text, &end, 10);
  if (errno != 0) return false;
  unsigned shift = 0;
  const char *units = "KMGT";
  const char *u = *end ? strchr(units, toupper((unsigned char)*end)) : NULL;
  if (u != NULL) {
    shift = 10 * (unsigned)(u - units + 1);
    end++;
    if (*end == 'i' || *end == 'I') {
      end++;
      if (*end != 'B' && *end != 'b') return false; /* "Ki" alone is not a unit */
    }
  }
  if (*end == 'B' || *end == 'b') end++;
  if (*end != '\0') return false;
  if (v > SIZE_MAX >> shift) return false;
  *out = (size_t)v << shift;
  return true;
}

static bool parse_count(const char *text, size_t *out) {
  if (text == NULL || *text < '0' || *text > '9') return false;
  char *end = NULL;
  errno = 0;
  unsigned long long v = strtoull(text, &end, 10);
  if (errno != 0 || *end != '\0' || v > SIZE_MAX) return false;
  *out = (size_t)v;
  return true;
}

/* A comma-separated list of up to GB_MAX_LIST values in [min, max]. */
static bool parse_list(const char *text, bool sizes, size_t min, size_t max, size_t *out,
                       size_t *n) {
  char buf[512];
  if (strlen(text) >= sizeof buf) return false;
  snprintf(buf, sizeof buf, "%s", text);
  size_t count = 0;
  char *save = NULL;
  for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    size_t v = 0;
    if (count == GB_MAX_LIST || !(sizes ? gb_parse_size(t, &v) : parse_count(t, &v)) || v < min ||
        v > max)
      return false;
    out[count++] = v;
  }
  if (count == 0) return false;
  *n = count;
  return true;
}

static int parse_word(const char *text, const char *words) {
  size_t len = strlen(text);
  int index = 0;
  for (const char *w = words;; index++) {
    const char *bar = strchr(w, '|');
    size_t wlen = bar ? (size_t)(bar - w) : strlen(w);
    if (len > 0 && wlen == len && strncasecmp(w, text, len) == 0) return index;
    if (bar == NULL) return -1;
    w = bar + 1;
  }
}

void gb_size_text(size_t bytes, char *buf, size_t len) {
  static const char *const units[] = {"B", "K", "M", "G", "T"};
  size_t u = 0;
  double v = (double)bytes;
  while (v >= 1024.0 && u + 1 < sizeof units / sizeof units[0]) {
    v /= 1024.0;
    u++;
  }
  if (v == (double)(size_t)v)
    snprintf(buf, len, "%zu%s", (size_t)v, units[u]);
  else
    snprintf(buf, len, "%.1f%s", v, units[u]);
}

gb_random_config gb_random_from(const gb_options *o, size_t cap) {
  return (gb_random_config){.seed = o->seed,
                            .steps = o->ops,
                            .dist = (gb_dist)o->dist,
                            .max_size = o->max_size,
                            .p_alloc = o->p_alloc,
                            .cap = cap};
}

/* ---- allocators ---- */

/* Every allocator a run may name: the registered ones, then the yardsticks. */
static size_t all_allocators(gpumem_allocator_kind *kinds, size_t max) {
  size_t n = gpumem_allocator_list(kinds, max);
  if (n > max) n = max;
  return n + gb_host_allocator_list(kinds + n, max - n);
}

static bool allocator_known(const char *name) {
  gpumem_allocator_kind kinds[GB_MAX_ALLOCATORS];
  size_t n = all_allocators(kinds, GB_MAX_ALLOCATORS);
  for (size_t i = 0; i < n && i < GB_MAX_ALLOCATORS; i++)
    if (strcmp(kinds[i].name, name) == 0) return true;
  return false;
}

/* ---- --help and --list ---- */

static void print_option(FILE *f, const option_desc *d, int indent) {
  char left[48];
  snprintf(left, sizeof left, "%*s--%s%s%s", indent, "", d->name, d->arg ? " " : "",
           d->arg ? d->arg : "");
  fprintf(f, "%-24s %s\n", left, d->help);
}

static void usage(FILE *f) {
  gpumem_allocator_kind kinds[GB_MAX_ALLOCATORS];
  size_t n = all_allocators(kinds, GB_MAX_ALLOCATORS);
  fprintf(f, "usage: gpumem-bench [options] [workload ...]\n"
             "       gpumem-bench synth --family F [--seed N] [params] --out FILE  (synthetic "
             "traces: synth --help)\n"
             "       gpumem-bench costs [--reps N] [--pages LIST] [--csv FILE]  (what each VMM "
             "driver call costs here: costs --help)\n"
             "Every allocator runs the same workloads, planned from a seed before timing (README: "
             "\"gpumem-bench\").\n\nOptions:\n");
  uint64_t printed = 0, read_by_workloads = 0;
  for (size_t w = 0; w < gb_workload_count; w++)
    read_by_workloads |= gb_workloads[w].reads;
  for (size_t i = 0; i < OPTION_COUNT; i++) {
    if (read_by_workloads & GB_BIT(option_table[i].id)) continue;
    print_option(f, &option_table[i], 2);
    if (option_table[i].id == GB_OPT_ALLOCATORS) {
      fprintf(f, "%-24s ", "");
      for (size_t k = 0; k < n && k < GB_MAX_ALLOCATORS; k++)
        fprintf(f, "%s%s", kinds[k].name, k + 1 < n ? ", " : "\n");
      fprintf(f, "%-24s (malloc and mimalloc: host memory, in pairs only, the yardstick)\n", "");
    }
  }
  fprintf(f, "\nWorkloads (default: all but replay; --trace FILE selects replay):\n");
  for (size_t w = 0; w < gb_workload_count; w++) {
    const gb_workload *wl = &gb_workloads[w];
    fprintf(f, "  %-9s %s\n", wl->name, wl->help);
    for (size_t i = 0; i < OPTION_COUNT; i++) {
      uint64_t bit = GB_BIT(option_table[i].id);
      if (!(wl->reads & bit) || (printed & bit)) continue;
      print_option(f, &option_table[i], 4);
      printed |= bit;
    }
  }
  fprintf(f, "\nExit status: 0 every row ran; 1 a row failed, or an output could not be written "
             "whole;\n2 bad arguments, an unreadable trace, an output path that cannot be "
             "written, no such\ndevice (nothing ran).\n");
}

static void list(FILE *f) {
  gpumem_allocator_kind kinds[GB_MAX_ALLOCATORS];
  size_t n = all_allocators(kinds, GB_MAX_ALLOCATORS);
  fprintf(f, "allocators (--allocators; every workload but grow):\n");
  for (size_t i = 0; i < n && i < GB_MAX_ALLOCATORS; i++) {
    char why[160] = "";
    bool here = !gb_host_allocator_known(kinds[i].name) ||
                gb_host_allocator_available(kinds[i].name, why, sizeof why);
    fprintf(f, "  %-20s %s%s%s\n", kinds[i].name, kinds[i].description,
            here ? "" : "; here: ", here ? "" : why);
  }
  fprintf(f, "grow's rows (the grow workload; libgpumem's buffer against the others):\n");
  for (int g = 0; g < GB_GROWER_COUNT; g++)
    fprintf(f, "  %-20s %s\n", gb_grower_name((gb_grower)g), gb_grower_description((gb_grower)g));
  fprintf(f, "workloads:\n");
  for (size_t w = 0; w < gb_workload_count; w++)
    fprintf(f, "  %-20s %s\n", gb_workloads[w].name, gb_workloads[w].help);
}

/* ---- parsing ---- */

static void defaults(gb_options *o) {
  static const size_t sizes[] = {256, 4 * KIB, 64 * KIB, MIB, 16 * MIB, 256 * MIB, GIB};
  static const size_t threads[] = {1, 2, 4, 8, 16};
  *o = (gb_options){.reps = 5,
                    .warmup = 1,
                    .seed = 42,
                    .pairs = 1000,
                    .nlive = 1,
                    .ops = 20000,
                    .max_size = 64 * MIB,
                    .cap = GIB,
                    .dist = GB_UNIFORM,
                    .p_alloc = 0.6,
                    .thread_size = 64 * KIB,
                    .thread_pairs = 2000,
                    .streams = 4,
                    .stream_size = MIB,
                    .stream_ops = 4000,
                    .first = 16,
                    .first_size = MIB,
                    .grow_target = 8 * GIB,
                    .grow_steps = {64 * MIB, 512 * MIB},
                    .ngrow_steps = 2,
                    .batch = GIB,
                    .batch_iterations = 1000};
  gb_cost_defaults(o->driver_cost);
  memcpy(o->sizes, sizes, sizeof sizes);
  o->nsizes = sizeof sizes / sizeof sizes[0];
  memcpy(o->threads, threads, sizeof threads);
  o->nthreads = sizeof threads / sizeof threads[0];
}

/* --quick: small counts where the command line set none. */
static void quick(gb_options *o) {
#define QUICK(opt, field, value) \
  if (!(o->given & GB_BIT(opt))) o->field = (value)
  QUICK(GB_OPT_REPS, reps, 3);
  QUICK(GB_OPT_PAIRS, pairs, 200);
  QUICK(GB_OPT_OPS, ops, 4000);
  QUICK(GB_OPT_THREAD_PAIRS, thread_pairs, 500);
  QUICK(GB_OPT_THREADS, nthreads, 3);
  QUICK(GB_OPT_GROW_TARGET, grow_target, 256 * MIB);
  QUICK(GB_OPT_BATCH, batch, 64 * MIB);
  QUICK(GB_OPT_BATCH_ITERATIONS, batch_iterations, 100);
#undef QUICK
  o->stream_ops = 800; /* not an option */
}

static bool split_allocators(gb_options *o, const char *text) {
  if (strlen(text) >= sizeof o->allocator_text) return false;
  snprintf(o->allocator_text, sizeof o->allocator_text, "%s", text);
  o->nallocators = 0;
  char *save = NULL;
  for (char *t = strtok_r(o->allocator_text, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    if (o->nallocators == GB_MAX_ALLOCATORS) return false;
    o->allocators[o->nallocators++] = t;
  }
  return o->nallocators > 0;
}

static gb_parse_result bad(const char *what, const char *value) {
  fprintf(stderr, "gpumem-bench: %s: '%s'\n", what, value);
  return GB_PARSE_BAD;
}

/* Store the value of option `d` from `text`. */
static gb_parse_result take(gb_options *o, const option_desc *d, const char *text) {
  char *base = (char *)o;
  size_t *number = (size_t *)(base + d->offset);
  bool ok = true;
  switch (d->kind) {
  case ARG_NONE:
    if (d->id == GB_OPT_QUICK) o->quick = true;
    break;
  case ARG_COUNT:
    ok = parse_count(text, number) && *number >= d->min && *number <= d->max;
    break;
  case ARG_SIZE:
    ok = gb_parse_size(text, number) && *number >= d->min && *number <= d->max;
    break;
  case ARG_SIZE_LIST:
  case ARG_COUNT_LIST:
    ok = parse_list(text, d->kind == ARG_SIZE_LIST, d->min, d->max, number,
                    (size_t *)(base + d->count_offset));
    break;
  case ARG_WORD: {
    int w = parse_word(text, d->words);
    ok = w >= 0;
    if (ok) *(int *)(base + d->offset) = w;
    break;
  }
  case ARG_PROB: {
    char *end = NULL;
    double p = strtod(text, &end);
    ok = end != text && *end == '\0' && p > 0.0 && p <= 1.0;
    if (ok) *(double *)(base + d->offset) = p;
    break;
  }
  case ARG_TEXT:
    *(const char **)(base + d->offset) = text;
    break;
  case ARG_NAMES:
    ok = split_allocators(o, text);
    break;
  case ARG_COSTS: {
    char why[400];
    if (!gb_cost_parse(text, o->driver_cost, why, sizeof why)) return bad(why, text);
    break;
  }
  }
  if (!ok) {
    char what[160];
    snprintf(what, sizeof what, "--%s wants %s", d->name, d->wants ? d->wants : "a value");
    return bad(what, text);
  }
  o->given |= GB_BIT(d->id);
  return GB_PARSE_RUN;
}

gb_parse_result gb_parse_args(int argc, char **argv, gb_options *o) {
  defaults(o);
  o->progress = isatty(STDERR_FILENO);
  struct option longopts[OPTION_COUNT + 1];
  for (size_t i = 0; i < OPTION_COUNT; i++) {
    longopts[i] =
        (struct option){option_table[i].name, option_table[i].arg ? required_argument : no_argument,
                        NULL, LONG_OPTION_BASE + (int)i};
  }
  longopts[OPTION_COUNT] = (struct option){NULL, 0, NULL, 0};
  opterr = 0; /* the messages are ours */
  optind = 0; /* GNU: start afresh (tests parse many command lines) */
  int c;
  while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
    if (c == 'h') c = LONG_OPTION_BASE + GB_OPT_HELP;
    if (c == '?') {
      const char *arg = optopt ? NULL : argv[optind - 1];
      char shortopt[3] = {'-', (char)optopt, '\0'};
      usage(stderr);
      return bad("unknown option", arg ? arg : shortopt);
    }
    if (c == ':') return bad("missing value after", argv[optind - 1]);
    const option_desc *d = &option_table[c - LONG_OPTION_BASE];
    if (d->id == GB_OPT_HELP) {
      usage(stdout);
      return GB_PARSE_DONE;
    }
    if (d->id == GB_OPT_LIST) {
      list(stdout);
      return GB_PARSE_DONE;
    }
    if (take(o, d, optarg) != GB_PARSE_RUN) return GB_PARSE_BAD;
  }
  for (int i = optind; i < argc; i++) {
    int w = gb_workload_find(argv[i]);
    if (w < 0) {
      char what[256] = "unknown workload (";
      for (size_t k = 0; k < gb_workload_count; k++) {
        size_t used = strlen(what);
        snprintf(what + used, sizeof what - used, "%s%s", gb_workloads[k].name,
                 k + 1 < gb_workload_count ? ", " : ")");
      }
      return bad(what, argv[i]);
    }
    o->workloads |= 1u << w;
  }
  if (o->quick) quick(o);
  if (o->workloads == 0) {
    for (size_t w = 0; w < gb_workload_count; w++)
      if (gb_workloads[w].flags & GB_WL_DEFAULT) o->workloads |= 1u << w;
  }
  int replay = gb_workload_find("replay"), fit = gb_workload_find("fit");
  if (o->trace != NULL && !(o->workloads & (1u << fit))) o->workloads |= 1u << replay;
  for (int need = 0; need < 2; need++) { /* replay and fit need the trace */
    int wl = need ? fit : replay;
    if ((o->workloads & (1u << wl)) && o->trace == NULL) {
      fprintf(stderr, "gpumem-bench: %s needs --trace FILE\n", gb_workloads[wl].name);
      return GB_PARSE_BAD;
    }
  }
  for (size_t i = 0; i < o->nallocators; i++) {
    if (!allocator_known(o->allocators[i])) {
      fprintf(stderr, "gpumem-bench: unknown allocator '%s' (gpumem-bench --list shows them)\n",
              o->allocators[i]);
      return GB_PARSE_BAD;
    }
  }
  if (o->nallocators == 0) { /* every one there is (mimalloc where its library is) */
    gpumem_allocator_kind kinds[GB_MAX_ALLOCATORS];
    size_t n = all_allocators(kinds, GB_MAX_ALLOCATORS);
    for (size_t i = 0; i < n && i < GB_MAX_ALLOCATORS; i++) {
      char why[160];
      if (gb_host_allocator_known(kinds[i].name) &&
          !gb_host_allocator_available(kinds[i].name, why, sizeof why))
        continue;
      o->allocators[o->nallocators++] = kinds[i].name;
    }
  }
  return GB_PARSE_RUN;
}
