/* bench.h: the core of gpumem-bench: operation plans and their generators,
 * the trace reader, statistics, the runner and the grow workload's growers.
 * The program around it (command line, workload table, report) is in
 * harness.h. Everything here uses only the public API, but for
 * gb_driver_calls (driver_calls.c). */
#ifndef GPUMEM_BENCH_H
#define GPUMEM_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <gpumem/gpumem.h>

/* Cleanup whose failure changes no figure: the status is looked at
 * (GPUMEM_NODISCARD) and a failure goes to stderr. */
#define GB_CHECKED(call)                                                     \
  do {                                                                       \
    if ((call) != GPUMEM_OK)                                                 \
      fprintf(stderr, "gpumem-bench: %s: %s\n", #call, gpumem_last_error()); \
  } while (0)

/* ---- plans: what a workload does, fixed before anything is timed ---- */

typedef enum gb_op_kind { GB_ALLOC = 0, GB_FREE = 1 } gb_op_kind;

/* One operation. A slot names one allocation from its alloc to its free. */
typedef struct gb_op {
  uint8_t kind;
  uint16_t stream; /* index into the run's streams */
  uint32_t slot;
  size_t size;
} gb_op;

typedef struct gb_plan {
  gb_op *ops;
  size_t count, capacity;
  uint32_t slots;   /* slots used: 0..slots-1 */
  uint16_t streams; /* streams used: 0..streams-1 */
} gb_plan;

void gb_plan_free(gb_plan *plan);
bool gb_plan_push(gb_plan *plan, gb_op op);

/* `pairs`: n times alloc+free of `size` on stream 0. */
bool gb_plan_pairs(gb_plan *plan, size_t size, size_t n);

typedef enum gb_dist { GB_UNIFORM, GB_LOGNORMAL, GB_GEOMETRIC } gb_dist;

/* `random` (RMM's random_allocations): n steps; each allocates with
 * probability p_alloc (a size from `dist` in [1, max_size]) or frees a random
 * live block; an allocation that would take the live bytes past `cap` frees
 * instead. Blocks still live at the end are freed, so every alloc has its free.
 * The same seed gives the same plan. */
typedef struct gb_random_config {
  uint64_t seed;
  size_t steps;
  gb_dist dist;
  size_t max_size;
  double p_alloc;
  size_t cap;
} gb_random_config;

bool gb_plan_random(gb_plan *plan, const gb_random_config *config);

/* Read a trace ("op,id,size,stream" lines after a header; plain or gzip,
 * read with zlib; a name ending in .gz must be gzip) into a plan. On failure
 * returns false and writes the reason into `why`, naming the file: with the
 * line number and text for a malformed line, "truncated" or "corrupt" for
 * damaged gzip data. */
bool gb_plan_read_trace(gb_plan *plan, const char *path, char *why, size_t why_len);
/* The same from text already in memory (`name` is used in messages). */
bool gb_plan_parse_trace(gb_plan *plan, FILE *in, const char *name, char *why, size_t why_len);

/* Write `plan` as a trace (the slot is the id), for peers that replay
 * gpumem-bench's exact workloads. False with errno set on failure. */
bool gb_plan_write_trace(const gb_plan *plan, const char *path);

/* Live bytes after each operation (`curve` has plan->count entries; may be
 * NULL) and their maximum. */
size_t gb_plan_live_curve(const gb_plan *plan, size_t *curve);

/* ---- statistics ---- */

typedef struct gb_summary {
  double median, min, max;
} gb_summary;

/* Summary of `n` samples (sorted in place). n == 0 gives zeros. */
gb_summary gb_summarize(double *samples, size_t n);

/* ---- running ---- */

/* Run `plan` once on `a` with `streams` (plan->streams of them). Returns the
 * elapsed nanoseconds including a final synchronize, or a negative value
 * after printing why to `err`. `touch` writes each block (memset) on its
 * stream, putting work in flight. */
double gb_run_plan(const gpumem_allocator *a, const gb_plan *plan, gpumem_stream_t *streams,
                   int device, bool touch, char *err, size_t err_len);

double gb_now_ns(void);

/* ---- the grow workload (grow.c) ---- */

typedef enum gb_grower {
  GB_BUFFER_EXACT,
  GB_BUFFER_GEOMETRIC,
  GB_REALLOC,
  GB_VMM_FLOOR,
  GB_GROWER_COUNT
} gb_grower;

const char *gb_grower_name(gb_grower g);
/* One line saying what the grower does (for --help and --list). */
const char *gb_grower_description(gb_grower g);

/* The driver calls made so far through the backend seam: VMM steps and plain
 * allocations (driver_calls.c, the bench's one use of an internal header). */
uint64_t gb_driver_calls(void);

/* The cost model (driver_calls.c, whose essay gives the defaults and their
 * sources): microseconds per driver call of these kinds. */
typedef enum gb_cost_op {
  GB_COST_PHYS_CREATE,
  GB_COST_MAP,
  GB_COST_SET_ACCESS,
  GB_COST_UNMAP,
  GB_COST_PHYS_RELEASE,
  GB_COST_VA_RESERVE,
  GB_COST_VA_FREE,
  GB_COST_DEV_MALLOC,
  GB_COST_DEV_FREE,
  GB_COST_POOL_ALLOC,
  GB_COST_POOL_FREE,
  GB_COST_POOL_TRIM,
  GB_COST_COUNT
} gb_cost_op;

/* The name of a cost entry ("map"), and all of them, comma separated. */
const char *gb_cost_name(gb_cost_op op);
const char *gb_cost_names(void);
/* The default table (us[GB_COST_COUNT]). */
void gb_cost_defaults(double *us);
/* The calls of each kind made so far (counts[GB_COST_COUNT]). */
void gb_cost_counts(uint64_t *counts);
/* Modelled microseconds of the calls made between two gb_cost_counts. */
double gb_cost_model_us(const uint64_t *before, const uint64_t *after, const double *us);
/* Override entries of `us` from "name=us,name=us". False, `us` unchanged,
 * with the reason in `why` for an unknown name (listing the names), a
 * missing '=', or a value that is not a number in 0..1e7. */
bool gb_cost_parse(const char *text, double *us, char *why, size_t len);
/* "phys_create=12 map=1.1 ..." for the report's legend. */
void gb_cost_text(const double *us, char *buf, size_t len);

/* Grow an array from 0 to `target` bytes in `step` increments. Returns the
 * elapsed ns (negative after writing `err`), the driver calls made, and the
 * most bytes held at once. `chunk` is the device's granularity. */
double gb_grow_steps(gb_grower g, int device, size_t target, size_t step, size_t chunk,
                     uint64_t *calls, size_t *peak, char *err, size_t len);

/* Resize to `n`, then `iterations` times to n+1 and n-1. Returns the ns of the
 * iterations and the driver calls made after the first one. */
double gb_grow_batch(gb_grower g, int device, size_t n, size_t iterations, size_t chunk,
                     uint64_t *calls_after_first, size_t *peak, char *err, size_t len);

/* ---- synthetic traces (synth.c; its essay describes the families) ---- */

typedef enum gb_synth_family {
  GB_SYNTH_TRAINING,
  GB_SYNTH_VARLEN,
  GB_SYNTH_GENERATION,
  GB_SYNTH_MIXTURE,
  GB_SYNTH_DECODE,
  GB_SYNTH_COUNT
} gb_synth_family;

/* A family's parameters: `steps` are training steps (generation: requests;
 * decode: generate() calls);
 * the model's sizes in elements; fp16 tensors. */
typedef struct gb_synth_config {
  gb_synth_family family;
  uint64_t seed;
  size_t steps, layers, batch, hidden, heads, seq, tokens, period;
} gb_synth_config;

/* The family's name ("training", ...), and the family of a name (false if
 * none has it). */
const char *gb_synth_family_name(gb_synth_family f);
bool gb_synth_family_parse(const char *name, gb_synth_family *f);
/* The documented defaults of `family`, seed 1. */
void gb_synth_defaults(gb_synth_config *c, gb_synth_family family);
/* Append the family's operations to `plan` (slots are unique ids, all on
 * stream 0, everything freed by the end). False with the reason in `why`
 * for a parameter out of range (named with its value: layers 1..256, others
 * at least 1, no tensor over 1 TiB, at most 10M operations) or when host
 * memory runs out; then `plan` holds the operations it held before. */
bool gb_synth_plan(gb_plan *plan, const gb_synth_config *c, char *why, size_t why_len);
/* Write `plan` as a trace, gzip when `path` ends in .gz. False with the
 * reason (naming the path) in `why`. */
bool gb_synth_write(const gb_plan *plan, const char *path, char *why, size_t why_len);
/* synth's command line (argv[0] is "synth"): 0 to go on with `c` and `out`
 * set, 1 after --help, 2 on bad input, said on stderr. */
int gb_synth_parse(int argc, char **argv, gb_synth_config *c, const char **out);
/* `gpumem-bench synth ...`: returns the exit status (0, or 2 on bad input or
 * an unwritable file). */
int gb_synth_main(int argc, char **argv);

#endif
