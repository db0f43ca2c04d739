/* harness.h: gpumem-bench the program, in three parts around the core of
 * bench.h:
 *
 *   cli.c        the command line: one table of options (getopt_long), the
 *                usage text and --list generated from it and from the
 *                workload table
 *   workloads.c  the workload table: for each workload its name, help, the
 *                options it reads, its rows, plan builder and runner; the
 *                generic runner that times a plan on an allocator; exporting
 *                the plans for peers
 *   report.c     the header, the table on stdout and the CSV lines written
 *                as each row finishes, the JSON at the end, and the summary
 *                of failed rows on stderr
 *
 * plus yardstick.c (host-memory allocators for `pairs`) and main.c (choosing
 * the backend, sizing the emulated devices, running). Only the public API is
 * used, but for counting driver calls (driver_calls.c).
 */
#ifndef GPUMEM_BENCH_HARNESS_H
#define GPUMEM_BENCH_HARNESS_H

#include "bench.h"

#define GB_MAX_LIST       32   /* entries of a list option (--sizes, --threads, ...) */
#define GB_MAX_ALLOCATORS 16   /* allocators in one run */
#define GB_MAX_REPS       1000 /* --reps */
#define GB_MAX_WARMUP     100  /* --warmup */
#define GB_MAX_THREADS    256  /* threads of one `threads` row */
#define GB_MAX_STREAMS    64   /* streams of one plan */

/* Exit statuses, the same in every libgpumem program (gpumem-info too). */
#define GB_EXIT_OK     0 /* every row ran */
#define GB_EXIT_FAILED 1 /* a row failed, or an output could not be written whole */
#define GB_EXIT_USAGE                                                    \
  2 /* bad arguments, an unreadable trace, an output path that cannot be \
       written, no such device: nothing was run */

/* ---- options ---- */

typedef enum gb_opt {
  GB_OPT_ALLOCATORS,
  GB_OPT_DEVICE,
  GB_OPT_REPS,
  GB_OPT_WARMUP,
  GB_OPT_SEED,
  GB_OPT_QUICK,
  GB_OPT_CSV,
  GB_OPT_JSON,
  GB_OPT_EXPORT_PLANS,
  GB_OPT_LIST,
  GB_OPT_HELP,
  GB_OPT_SIZES,
  GB_OPT_PAIRS,
  GB_OPT_LIVE,
  GB_OPT_OPS,
  GB_OPT_MAX_SIZE,
  GB_OPT_DIST,
  GB_OPT_P_ALLOC,
  GB_OPT_CAP,
  GB_OPT_THREADS,
  GB_OPT_THREAD_WORKLOAD,
  GB_OPT_THREAD_SIZE,
  GB_OPT_THREAD_PAIRS,
  GB_OPT_STREAMS,
  GB_OPT_TRACE,
  GB_OPT_FIRST,
  GB_OPT_GROW_TARGET,
  GB_OPT_GROW_STEPS,
  GB_OPT_BATCH,
  GB_OPT_BATCH_ITERATIONS,
  GB_OPT_DRIVER_COST,
  GB_OPT_COUNT
} gb_opt;

#define GB_BIT(opt) ((uint64_t)1 << (opt))

typedef struct gb_options {
  uint32_t workloads; /* bit w: gb_workloads[w] runs */
  uint64_t given;     /* GB_BIT(opt) of each option the command line set */
  const char *allocators[GB_MAX_ALLOCATORS];
  size_t nallocators;
  char allocator_text[512]; /* --allocators, cut into the names above */
  size_t device, reps, warmup, seed;
  size_t sizes[GB_MAX_LIST], nsizes, pairs;
  size_t live[GB_MAX_LIST], nlive;
  size_t ops, max_size, cap;
  int dist; /* gb_dist */
  double p_alloc;
  size_t threads[GB_MAX_LIST], nthreads;
  int thread_workload; /* 0 pairs, 1 random */
  size_t thread_size, thread_pairs;
  size_t streams, stream_size, stream_ops;
  const char *trace;
  size_t first, first_size;
  size_t grow_target, grow_steps[GB_MAX_LIST], ngrow_steps, batch, batch_iterations;
  const char *csv, *json, *export_dir;
  bool quick, progress;
  double driver_cost[GB_COST_COUNT]; /* us per driver call: the cost model */
} gb_options;

typedef enum gb_parse_result {
  GB_PARSE_RUN,  /* options in place: run */
  GB_PARSE_DONE, /* --help or --list printed: exit 0 */
  GB_PARSE_BAD,  /* a message on stderr: exit GB_EXIT_USAGE */
} gb_parse_result;

/* Fill `o` from the command line (defaults, then the options, then --quick
 * for what was not given). Messages go to stderr, --help and --list to
 * stdout. Checks allocator and workload names, not files or devices. */
gb_parse_result gb_parse_args(int argc, char **argv, gb_options *o);

/* "4096", "64K", "1MiB", "2G", "1T" (case-insensitive, an optional B): false
 * for anything else or a value past SIZE_MAX. */
bool gb_parse_size(const char *text, size_t *out);

/* The random workload's configuration from the options, with `cap` for the
 * cap on live bytes. */
gb_random_config gb_random_from(const gb_options *o, size_t cap);

/* "256B", "4K", "1.5G": the table's short size text. */
void gb_size_text(size_t bytes, char *buf, size_t len);

/* ---- host-memory yardsticks (yardstick.c) ---- */

/* The host allocators' names and descriptions (as gpumem_allocator_list). */
size_t gb_host_allocator_list(gpumem_allocator_kind *kinds, size_t max);
bool gb_host_allocator_known(const char *name);
/* Whether it can be created here (mimalloc needs its library); if not, why. */
bool gb_host_allocator_available(const char *name, char *why, size_t len);
/* Fill `out`; false with the reason in `why`. gpumem_allocator_destroy ends it. */
bool gb_host_allocator_create(const char *name, gpumem_allocator *out, char *why, size_t len);

/* ---- results and the report (report.c) ---- */

typedef struct gb_result {
  char allocator[32];
  char workload[16];
  char params[96];
  int threads;
  size_t ops; /* per repetition: the divisor of the elapsed time */
  int reps;
  gb_summary ns;    /* per operation (per pair for pairs) */
  double ops_per_s; /* from the median */
  double scaling;   /* threads: against one thread; else 0 */
  bool has_calls;   /* grow: driver calls counted */
  uint64_t calls;
  bool has_model;  /* model_us was computed (device rows of timed plans) */
  double model_us; /* modelled driver us per op in the timed repetitions */
  size_t peak_live, peak_reserved;
  bool host_memory; /* a yardstick's row: host memory, not the device's */
  char status[200]; /* "ok" or why the row failed */
} gb_result;

/* A fresh row: status "ok", one thread. */
void gb_result_init(gb_result *r, const char *allocator, const char *workload);

typedef struct gb_header {
  char device[320];
  char backend[16];
  char date[40];
  int driver, runtime;
  char note[512];
} gb_header;

/* ---- `gpumem-bench costs` (costs.c) ---- */

#define COSTS_MAX_RUNS  8  /* run lengths of one --pages */
#define COSTS_MAX_PAGES 64 /* pages of one run */

typedef struct gb_costs_options {
  int device;
  unsigned reps;
  size_t pages[COSTS_MAX_RUNS]; /* run lengths k */
  size_t nruns;
  const char *csv;
} gb_costs_options;

/* Parse `costs [options]` (argv[0] is "costs"): 0 to run, 1 when --help
 * was printed, 2 after a message on stderr. */
int gb_costs_parse(int argc, char **argv, gb_costs_options *o);
/* Measure and print (the library is initialised; `h` says where). Returns
 * an exit status. */
int gb_costs_run(const gb_costs_options *o, const gb_header *h);

typedef struct gb_report {
  const gb_options *o;
  gb_header header;
  FILE *csv, *json;
  int allocator_width; /* the table's first column: the longest name */
  gb_result *rows;
  size_t count, capacity;
  size_t total, done; /* rows expected and written, for the progress bar */
  bool write_failed;
  bool begun; /* gb_report_begin was called */
} gb_report;

/* Open the --csv and --json files before anything runs, so that a path
 * that cannot be written stops the run at once. False with the reason in
 * `why` (and nothing left open). */
bool gb_report_open(gb_report *r, const gb_options *o, char *why, size_t len);

/* The header and the table's column names on stdout, the CSV's column line;
 * `width` is the longest allocator or grower name the run will show. */
void gb_report_begin(gb_report *r, const gb_header *h, int width, size_t total_rows);

/* One finished row: into the table (stdout) and the CSV at once, both
 * flushed, and kept for the JSON. */
void gb_report_row(gb_report *r, const gb_result *row);

/* The JSON file, the summary on stderr (rows, failures listed), files
 * closed. Returns the exit status. */
int gb_report_end(gb_report *r);

/* A line on stderr, "gpumem-bench: " and the text, that does not tangle
 * with the progress bar. */
void gb_note(gb_report *r, const char *format, ...) __attribute__((format(printf, 2, 3)));

/* The CSV's columns, in order (tools read them by name; new ones go last). */
extern const char *const gb_csv_columns[];

/* ---- workloads (workloads.c) ---- */

typedef struct gb_bench {
  gb_options *o;
  gb_report *report;
  gb_plan trace;     /* replay: the trace, read before the run */
  size_t trace_peak; /* its most live bytes */
  int device;
  size_t memory_free; /* the device's, at start */
  size_t granularity; /* the device's minimum */
  size_t cap_limit;   /* the random cap the device allows (SIZE_MAX: no device) */
  bool cap_noted;     /* the --cap note was printed */
} gb_bench;

/* One row of a planned workload, before it runs. */
typedef struct gb_row {
  char params[96];
  int threads;      /* plans (one per thread, each with its own stream) */
  size_t live;      /* pairs: blocks held live meanwhile */
  size_t per;       /* divides the elapsed time; 0: the plan's operations */
  bool touch;       /* write each block on its stream (work in flight) */
  bool shared_plan; /* the plan is the workload's own (replay): not freed */
} gb_row;

enum {
  GB_WL_DEFAULT = 1u << 0,  /* runs when no workload is named */
  GB_WL_ONCE = 1u << 1,     /* runs once, with its own rows, not per allocator (grow) */
  GB_WL_HOST = 1u << 2,     /* the host-memory yardsticks run it too */
  GB_WL_THREADED = 1u << 3, /* each plan on a thread of its own, scaling reported */
};

typedef struct gb_workload gb_workload;
struct gb_workload {
  const char *name;
  const char *help; /* one line for --help and --list */
  uint64_t reads;   /* GB_BIT of each option it reads */
  unsigned flags;   /* GB_WL_* */
  /* Rows per allocator (GB_WL_ONCE: in all). */
  size_t (*rows)(gb_bench *b);
  /* Planned workloads: describe row `row`, and build the plan of one of its
   * threads (false with the reason in `why`). NULL for the others. */
  void (*describe)(gb_bench *b, size_t row, gb_row *out);
  bool (*plan)(gb_bench *b, size_t row, int thread, gb_plan *out, char *why, size_t len);
  /* Run every row on `allocator` (NULL for GB_WL_ONCE); NULL: the generic
   * runner over describe and plan. */
  void (*run)(gb_bench *b, const gb_workload *w, const char *allocator);
};

extern const gb_workload gb_workloads[];
extern const size_t gb_workload_count;

/* The index of the workload called `name`, or -1. */
int gb_workload_find(const char *name);

/* Rows the whole run will report. */
size_t gb_rows_total(gb_bench *b);

/* Every selected workload on every selected allocator, rows reported as
 * they finish. */
void gb_run(gb_bench *b);

/* --export-plans DIR: each selected planned workload's plans as trace files
 * and DIR/plans.tsv indexing them. Returns the exit status. */
int gb_export_plans(gb_bench *b, const char *dir);

/* The width of the table's allocator column for this run. */
int gb_allocator_width(const gb_options *o);

#endif
