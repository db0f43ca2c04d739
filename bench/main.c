/* gpumem-bench: compare allocators on the same work.
 *
 * Every allocator registered with the common interface (gpumem_allocator_list:
 * the CUDA baselines now, libgpumem's own as they arrive) runs the same
 * workloads, generated as plans from a seed before timing starts:
 *
 *   pairs    alloc+free of one size, for each size of a list
 *   random   RMM's random_allocations: sizes from a distribution, allocate with
 *            probability p else free a random live block, a cap on live bytes
 *   threads  T threads, each with its own stream, running pairs or random;
 *            aggregate throughput and scaling against one thread
 *   streams  allocations round-robin over several streams, each block written
 *            (memset) on its stream, so frees are stream-ordered behind work
 *   replay   a recorded trace (op,id,size,stream; .csv or .csv.gz)
 *   first    latency of the first allocations of a fresh allocator
 *
 * Method: a warm-up run, then R timed repetitions; each repetition ends with
 * a synchronize of its streams, so deferred work is paid for; the table
 * gives the median with min and max, in nanoseconds per operation (per
 * alloc+free pair for `pairs`), and the allocator's own peak of reserved
 * bytes against the peak of live bytes. A fresh allocator serves each
 * workload, so peaks do not leak between workloads.
 *
 * Without a GPU, gpumem-bench runs on the host backend and says so in its
 * header: those timings are CPU timings of the emulation, not GPU figures.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "options.h"

#define MAX_LIST       32
#define MAX_ALLOCATORS 16

enum {
  W_PAIRS = 1 << 0,
  W_RANDOM = 1 << 1,
  W_THREADS = 1 << 2,
  W_STREAMS = 1 << 3,
  W_REPLAY = 1 << 4,
  W_FIRST = 1 << 5,
  W_GROW = 1 << 6,
};

typedef struct options {
  unsigned workloads;
  const char *allocator_names[MAX_ALLOCATORS];
  size_t nallocators;
  int device;
  int reps, warmup;
  uint64_t seed;
  size_t sizes[MAX_LIST], nsizes;
  size_t pairs;
  size_t live[MAX_LIST], nlive;
  gb_random_config random;
  int threads[MAX_LIST];
  size_t nthreads;
  bool thread_random;
  size_t thread_size, thread_pairs;
  int streams;
  size_t stream_size, stream_ops;
  const char *trace;
  int first_count;
  size_t first_size;
  size_t grow_target, grow_steps[MAX_LIST], ngrow_steps, batch_n, batch_iterations;
  const char *csv, *json;
  const char *export_dir;
  bool progress;
} options;

typedef struct result {
  char allocator[32];
  char workload[16];
  char params[96];
  int threads;
  size_t ops;
  int reps;
  gb_summary ns;    /* per operation (per pair for pairs) */
  double ops_per_s; /* median */
  double scaling;   /* threads: against one thread; else 0 */
  bool has_calls;   /* grow: driver calls counted */
  uint64_t calls;
  size_t peak_live, peak_reserved;
  char status[200];
} result;

static result *results;
static size_t nresults, results_cap;
static int progress_total, progress_done;
static const options *opt;

/* ---- arguments ---- */

static void usage(FILE *f) {
  fprintf(f,
          "usage: gpumem-bench [options] [pairs|random|threads|streams|replay|first ...]\n"
          "  --allocators A,B     which allocators (default: all; --list shows them)\n"
          "  --device N           device ordinal (default 0)\n"
          "  --reps N             timed repetitions (default 5); --warmup N (default 1)\n"
          "  --seed N             seed of the random plans (default 42)\n"
          "  --sizes LIST         pairs: sizes (default 256,4K,64K,1M,16M,256M,1G)\n"
          "  --pairs N            pairs: alloc+free pairs per size (default 1000; a tenth at "
          ">= 256M)\n"
          "  --live LIST          pairs: blocks held live meanwhile, for each count of the list\n"
          "                       (default 0; sizes 256 B to 4 KiB, every other of 2N freed)\n"
          "  --ops N              random: steps (default 20000)\n"
          "  --max-size SIZE      random: largest allocation (default 64M)\n"
          "  --dist D             random: uniform, lognormal or geometric (default uniform)\n"
          "  --p-alloc P          random: probability of allocating (default 0.6)\n"
          "  --cap SIZE           random: cap on live bytes (default 1G)\n"
          "  --threads LIST       threads: thread counts (default 1,2,4,8,16)\n"
          "  --thread-workload W  threads: pairs or random (default pairs)\n"
          "  --thread-size SIZE   threads: pair size (default 64K)\n"
          "  --thread-pairs N     threads: pairs (random: 2N steps) per thread (default 2000)\n"
          "  --streams N          streams: number of streams (default 4)\n"
          "  --trace FILE         replay: the trace to replay (.csv or .csv.gz)\n"
          "  --first N            first: allocations timed on a fresh allocator (default 16)\n"
          "  --grow-target SIZE   grow: final size (default 8G, at most a third of free memory)\n"
          "  --grow-steps LIST    grow: step sizes (default 64M,512M)\n"
          "  --batch N            grow: the size of the N+-1 pattern (default 1G)\n"
          "  --batch-iterations N grow: N+-1 repetitions (default 1000)\n"
          "  --quick              small counts everywhere (a quick look, and CI)\n"
          "  --csv FILE, --json FILE   also write the results there\n"
          "  --export-plans DIR   write the workloads' plans as traces for a peer, then exit\n"
          "  --list               list the allocators and workloads, then exit\n");
}

static bool parse_size_list(const char *text, size_t *out, size_t *n) {
  char buf[512];
  snprintf(buf, sizeof buf, "%s", text);
  *n = 0;
  char *save = NULL;
  for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    if (*n == MAX_LIST || !gm_parse_size(t, &out[*n]) || out[*n] == 0 || out[*n] > SIZE_MAX / 4)
      return false;
    (*n)++;
  }
  return *n > 0;
}

/* "0,10,100000": up to MAX_LIST counts in [0, max]. */
static bool parse_count_list(const char *text, size_t max, size_t *out, size_t *n) {
  char buf[512];
  snprintf(buf, sizeof buf, "%s", text);
  *n = 0;
  char *save = NULL;
  for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    int64_t v = -1;
    if (*n == MAX_LIST || !gm_parse_int(t, &v) || v < 0 || (uint64_t)v > max) return false;
    out[(*n)++] = (size_t)v;
  }
  return *n > 0;
}

static bool parse_count(const char *text, size_t max, size_t *out) {
  int64_t v = 0;
  if (!gm_parse_int(text, &v) || v < 1 || (uint64_t)v > max) return false;
  *out = (size_t)v;
  return true;
}

static int bad(const char *what, const char *value) {
  fprintf(stderr, "gpumem-bench: %s: '%s'\n", what, value);
  return 2;
}

static int parse_args(int argc, char **argv, options *o) {
  *o = (options){.device = 0,
                 .reps = 5,
                 .warmup = 1,
                 .seed = 42,
                 .pairs = 1000,
                 .streams = 4,
                 .stream_size = 1 << 20,
                 .stream_ops = 4000,
                 .thread_size = 64 << 10,
                 .thread_pairs = 2000,
                 .first_count = 16,
                 .first_size = 1 << 20};
  o->random = (gb_random_config){42, 20000, GB_UNIFORM, 64 << 20, 0.6, (size_t)1 << 30};
  parse_size_list("256,4K,64K,1M,16M,256M,1G", o->sizes, &o->nsizes);
  o->nlive = 1;
  parse_size_list("64M,512M", o->grow_steps, &o->ngrow_steps);
  o->grow_target = (size_t)8 << 30;
  o->batch_n = (size_t)1 << 30;
  o->batch_iterations = 1000;
  const int default_threads[] = {1, 2, 4, 8, 16};
  o->nthreads = 5;
  memcpy(o->threads, default_threads, sizeof default_threads);
  o->progress = isatty(STDERR_FILENO);
  bool quick = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    size_t n = 0;
#define NEED_VALUE                                     \
  if (v == NULL) return bad("missing value after", a); \
  i++
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      exit(0);
    } else if (strcmp(a, "--list") == 0) {
      gpumem_allocator_kind kinds[MAX_ALLOCATORS];
      size_t k = gpumem_allocator_list(kinds, MAX_ALLOCATORS);
      printf("allocators:\n");
      for (size_t j = 0; j < k && j < MAX_ALLOCATORS; j++) {
        printf("  %-12s %s\n", kinds[j].name, kinds[j].description);
      }
      printf("workloads: pairs random threads streams replay first\n");
      exit(0);
    } else if (strcmp(a, "--allocators") == 0) {
      NEED_VALUE;
      char *copy = strdup(v), *save = NULL;
      for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (o->nallocators == MAX_ALLOCATORS) return bad("too many allocators", v);
        o->allocator_names[o->nallocators++] = t; /* copy lives until exit */
      }
    } else if (strcmp(a, "--device") == 0) {
      NEED_VALUE;
      if (!parse_count(v, GPUMEM_MAX_DEVICES, &n) && strcmp(v, "0") != 0) {
        return bad("--device wants an ordinal", v);
      }
      o->device = strcmp(v, "0") == 0 ? 0 : (int)n;
    } else if (strcmp(a, "--reps") == 0) {
      NEED_VALUE;
      if (!parse_count(v, 1000, &n)) return bad("--reps wants 1..1000", v);
      o->reps = (int)n;
    } else if (strcmp(a, "--warmup") == 0) {
      NEED_VALUE;
      if (strcmp(v, "0") == 0)
        n = 0;
      else if (!parse_count(v, 100, &n))
        return bad("--warmup wants 0..100", v);
      o->warmup = (int)n;
    } else if (strcmp(a, "--seed") == 0) {
      NEED_VALUE;
      int64_t s = 0;
      if (!gm_parse_int(v, &s) || s < 0) return bad("--seed wants a non-negative integer", v);
      o->seed = o->random.seed = (uint64_t)s;
    } else if (strcmp(a, "--sizes") == 0) {
      NEED_VALUE;
      if (!parse_size_list(v, o->sizes, &o->nsizes)) {
        return bad("--sizes wants up to 32 sizes such as 256,64K,1G (each below 4 EiB)", v);
      }
    } else if (strcmp(a, "--pairs") == 0) {
      NEED_VALUE;
      if (!parse_count(v, 100000000, &o->pairs)) return bad("--pairs wants 1..1e8", v);
    } else if (strcmp(a, "--live") == 0) {
      NEED_VALUE;
      if (!parse_count_list(v, 10000000, o->live, &o->nlive)) {
        return bad("--live wants up to 32 counts in 0..1e7 such as 0,10,100000", v);
      }
    } else if (strcmp(a, "--ops") == 0) {
      NEED_VALUE;
      if (!parse_count(v, 100000000, &o->random.steps)) return bad("--ops wants 1..1e8", v);
    } else if (strcmp(a, "--max-size") == 0) {
      NEED_VALUE;
      if (!gm_parse_size(v, &o->random.max_size) || o->random.max_size == 0 ||
          o->random.max_size > SIZE_MAX / 4)
        return bad("--max-size wants a size", v);
    } else if (strcmp(a, "--cap") == 0) {
      NEED_VALUE;
      if (!gm_parse_size(v, &o->random.cap) || o->random.cap == 0 || o->random.cap > SIZE_MAX / 4)
        return bad("--cap wants a size", v);
    } else if (strcmp(a, "--dist") == 0) {
      NEED_VALUE;
      int d = gm_parse_word(v, "uniform|lognormal|geometric");
      if (d < 0) return bad("--dist wants uniform, lognormal or geometric", v);
      o->random.dist = (gb_dist)d;
    } else if (strcmp(a, "--p-alloc") == 0) {
      NEED_VALUE;
      char *end = NULL;
      double p = strtod(v, &end);
      if (*end != '\0' || !(p > 0.0 && p <= 1.0)) return bad("--p-alloc wants 0 < P <= 1", v);
      o->random.p_alloc = p;
    } else if (strcmp(a, "--threads") == 0) {
      NEED_VALUE;
      size_t t[MAX_LIST];
      if (!parse_size_list(v, t, &o->nthreads))
        return bad("--threads wants counts such as 1,2,4", v);
      for (size_t k = 0; k < o->nthreads; k++) {
        if (t[k] > 256) return bad("--threads: at most 256 threads", v);
        o->threads[k] = (int)t[k];
      }
    } else if (strcmp(a, "--thread-workload") == 0) {
      NEED_VALUE;
      int w = gm_parse_word(v, "pairs|random");
      if (w < 0) return bad("--thread-workload wants pairs or random", v);
      o->thread_random = w == 1;
    } else if (strcmp(a, "--thread-pairs") == 0) {
      NEED_VALUE;
      if (!parse_count(v, 100000000, &o->thread_pairs))
        return bad("--thread-pairs wants 1..1e8", v);
    } else if (strcmp(a, "--thread-size") == 0) {
      NEED_VALUE;
      if (!gm_parse_size(v, &o->thread_size) || o->thread_size == 0) {
        return bad("--thread-size wants a size", v);
      }
    } else if (strcmp(a, "--streams") == 0) {
      NEED_VALUE;
      if (!parse_count(v, 64, &n)) return bad("--streams wants 1..64", v);
      o->streams = (int)n;
    } else if (strcmp(a, "--trace") == 0) {
      NEED_VALUE;
      o->trace = v;
    } else if (strcmp(a, "--first") == 0) {
      NEED_VALUE;
      if (!parse_count(v, 100000, &n)) return bad("--first wants 1..100000", v);
      o->first_count = (int)n;
    } else if (strcmp(a, "--csv") == 0) {
      NEED_VALUE;
      o->csv = v;
    } else if (strcmp(a, "--json") == 0) {
      NEED_VALUE;
      o->json = v;
    } else if (strcmp(a, "--grow-target") == 0) {
      NEED_VALUE;
      if (!gm_parse_size(v, &o->grow_target) || o->grow_target == 0 ||
          o->grow_target > SIZE_MAX / 4)
        return bad("--grow-target wants a size", v);
    } else if (strcmp(a, "--grow-steps") == 0) {
      NEED_VALUE;
      if (!parse_size_list(v, o->grow_steps, &o->ngrow_steps)) {
        return bad("--grow-steps wants sizes such as 64M,512M", v);
      }
    } else if (strcmp(a, "--batch") == 0) {
      NEED_VALUE;
      if (!gm_parse_size(v, &o->batch_n) || o->batch_n < 2 || o->batch_n > SIZE_MAX / 4)
        return bad("--batch wants a size of at least 2 bytes", v);
    } else if (strcmp(a, "--batch-iterations") == 0) {
      NEED_VALUE;
      if (!parse_count(v, 10000000, &o->batch_iterations))
        return bad("--batch-iterations wants 1..1e7", v);
    } else if (strcmp(a, "--export-plans") == 0) {
      NEED_VALUE;
      o->export_dir = v;
    } else if (strcmp(a, "--quick") == 0) {
      quick = true;
    } else if (a[0] == '-') {
      usage(stderr);
      return bad("unknown option", a);
    } else {
      int w = gm_parse_word(a, "pairs|random|threads|streams|replay|first|grow");
      if (w < 0) {
        return bad("unknown workload (pairs, random, threads, streams, replay, first, grow)", a);
      }
      o->workloads |= 1u << w;
    }
#undef NEED_VALUE
  }
  if (quick) {
    o->reps = o->reps > 3 ? 3 : o->reps;
    o->pairs = o->pairs > 200 ? 200 : o->pairs;
    o->random.steps = o->random.steps > 4000 ? 4000 : o->random.steps;
    o->thread_pairs = o->thread_pairs > 500 ? 500 : o->thread_pairs;
    o->stream_ops = 800;
    if (o->nthreads > 3) o->nthreads = 3;
    o->grow_target = o->grow_target > ((size_t)256 << 20) ? (size_t)256 << 20 : o->grow_target;
    o->batch_n = o->batch_n > ((size_t)64 << 20) ? (size_t)64 << 20 : o->batch_n;
    o->batch_iterations = o->batch_iterations > 100 ? 100 : o->batch_iterations;
  }
  if (o->workloads == 0) {
    o->workloads = W_PAIRS | W_RANDOM | W_THREADS | W_STREAMS | W_FIRST | W_GROW;
  }
  if (o->trace != NULL) o->workloads |= W_REPLAY;
  if ((o->workloads & W_REPLAY) && o->trace == NULL) {
    fprintf(stderr, "gpumem-bench: replay needs --trace FILE\n");
    return 2;
  }
  return 0;
}

/* ---- results ---- */

static result *new_result(const char *allocator, const char *workload) {
  if (nresults == results_cap) {
    results_cap = results_cap ? results_cap * 2 : 64;
    results = realloc(results, results_cap * sizeof *results);
    if (results == NULL) {
      fprintf(stderr, "gpumem-bench: out of host memory\n");
      exit(1);
    }
  }
  result *r = &results[nresults++];
  memset(r, 0, sizeof *r);
  snprintf(r->allocator, sizeof r->allocator, "%s", allocator);
  snprintf(r->workload, sizeof r->workload, "%s", workload);
  snprintf(r->status, sizeof r->status, "ok");
  r->threads = 1;
  return r;
}

static void progress(const result *r) {
  progress_done++;
  if (!opt->progress || progress_total == 0) return;
  int width = 30, filled = progress_done * width / progress_total;
  fprintf(stderr, "\r[%.*s%*s] %d/%d %-12s %-8s %-28.28s", filled, "##############################",
          width - filled, "", progress_done, progress_total, r->allocator, r->workload, r->params);
  if (progress_done == progress_total) fprintf(stderr, "\r%*s\r", 100, "");
}

static void size_text(size_t bytes, char *buf, size_t len) {
  static const char *const units[] = {"B", "K", "M", "G", "T"};
  size_t u = 0;
  double v = (double)bytes;
  while (v >= 1024.0 && u + 1 < 5) {
    v /= 1024.0;
    u++;
  }
  if (v == (double)(size_t)v)
    snprintf(buf, len, "%zu%s", (size_t)v, units[u]);
  else
    snprintf(buf, len, "%.1f%s", v, units[u]);
}

/* ---- timing a plan on an allocator ---- */

static bool make_streams(int n, gpumem_stream_t *s, result *r) {
  for (int i = 0; i < n; i++) {
    if (gpumem_stream_create(opt->device, &s[i]) != GPUMEM_OK) {
      snprintf(r->status, sizeof r->status, "stream: %s", gpumem_last_error());
      for (int k = 0; k < i; k++)
        GB_CHECKED(gpumem_stream_destroy(s[k]));
      return false;
    }
  }
  return true;
}

static void drop_streams(int n, gpumem_stream_t *s) {
  for (int i = 0; i < n; i++)
    GB_CHECKED(gpumem_stream_destroy(s[i]));
}

/* Warm up, time the repetitions, fill r. `per` divides the elapsed time
 * (operations, or pairs). */
static void time_plan(const gpumem_allocator *a, const gb_plan *plan, bool touch, size_t per,
                      result *r) {
  gpumem_stream_t streams[64];
  int ns = plan->streams ? plan->streams : 1;
  if (ns > 64 || !make_streams(ns, streams, r)) {
    if (ns > 64) snprintf(r->status, sizeof r->status, "plan uses %d streams (at most 64)", ns);
    return;
  }
  double samples[1000];
  int done = 0;
  for (int i = 0; i < opt->warmup + opt->reps; i++) {
    double t = gb_run_plan(a, plan, streams, opt->device, touch, r->status, sizeof r->status);
    if (t < 0) break;
    if (i >= opt->warmup) samples[done++] = t / (double)per;
  }
  drop_streams(ns, streams);
  if (done < opt->reps) return; /* status holds the error */
  r->reps = done;
  r->ops = per;
  r->ns = gb_summarize(samples, (size_t)done);
  r->ops_per_s = r->ns.median > 0 ? 1e9 / r->ns.median : 0;
  r->peak_live = gb_plan_live_curve(plan, NULL);
  gpumem_stats st = GPUMEM_STATS_INIT;
  if (a->stats(a->ctx, &st) == GPUMEM_OK) r->peak_reserved = st.peak_bytes_reserved;
}

static bool open_allocator(const char *name, gpumem_allocator *a, result *r) {
  if (gpumem_allocator_create(name, opt->device, a) == GPUMEM_OK) return true;
  snprintf(r->status, sizeof r->status, "%s", gpumem_last_error());
  return false;
}

/* Pairs per size: a tenth at 256 MiB and above, where one pair takes ms. */
static size_t pairs_for(size_t size) {
  if (size < ((size_t)256 << 20)) return opt->pairs;
  return opt->pairs / 10 ? opt->pairs / 10 : 1;
}

static void pairs_params(size_t size, size_t live, char *buf, size_t len) {
  char sz[16];
  size_text(size, sz, sizeof sz);
  if (live > 0)
    snprintf(buf, len, "size=%s live=%zu", sz, live);
  else
    snprintf(buf, len, "size=%s", sz);
}

static void random_params(char *buf, size_t len) {
  char mx[16], cap[16];
  size_text(opt->random.max_size, mx, sizeof mx);
  size_text(opt->random.cap, cap, sizeof cap);
  static const char *const dists[] = {"uniform", "lognormal", "geometric"};
  snprintf(buf, len, "%s<=%s p=%.2f cap=%s", dists[opt->random.dist], mx, opt->random.p_alloc, cap);
}

static void threads_params(int nt, char *buf, size_t len) {
  char sz[16];
  size_text(opt->thread_size, sz, sizeof sz);
  if (opt->thread_random)
    snprintf(buf, len, "T=%d random", nt);
  else
    snprintf(buf, len, "T=%d pairs size=%s", nt, sz);
}

/* The plan thread `t` of `nt` runs. */
static bool plan_thread(int t, int nt, gb_plan *plan) {
  gb_random_config rc = opt->random;
  rc.seed = opt->seed + (uint64_t)t;
  rc.steps = opt->thread_pairs * 2;
  rc.cap = opt->random.cap / (size_t)nt;
  return opt->thread_random ? gb_plan_random(plan, &rc)
                            : gb_plan_pairs(plan, opt->thread_size, opt->thread_pairs);
}

/* Allocate 2n blocks of 256 B to 4 KiB and free every other one: n live
 * blocks with holes between them, the background of a `pairs` run with
 * --live. Returns the blocks kept (n of them) or NULL after writing why. */
static void **hold_live(const gpumem_allocator *a, size_t n, size_t **sizes, result *r) {
  void **held = calloc(2 * n, sizeof *held);
  size_t *sz = calloc(2 * n, sizeof *sz);
  uint64_t x = opt->seed * 2654435761u + 1;
  size_t made = 0;
  bool ok = held != NULL && sz != NULL;
  for (; ok && made < 2 * n; made++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    sz[made] = 256 + (size_t)(x % 3841);
    if (a->alloc(a->ctx, sz[made], NULL, &held[made]) != GPUMEM_OK) {
      snprintf(r->status, sizeof r->status, "live blocks: %s", gpumem_last_error());
      ok = false;
    }
  }
  size_t kept = 0;
  for (size_t i = 0; i < (ok ? made : made - 1); i++) {
    if (ok && i % 2 == 0) {
      held[kept] = held[i];
      sz[kept++] = sz[i];
    } else if (held != NULL) {
      a->free(a->ctx, held[i], sz[i], NULL);
    }
  }
  if (!ok) {
    free(held);
    free(sz);
    return NULL;
  }
  *sizes = sz;
  return held;
}

static void release_live(const gpumem_allocator *a, void **held, size_t *sizes, size_t n) {
  for (size_t i = 0; held != NULL && i < n; i++)
    a->free(a->ctx, held[i], sizes[i], NULL);
  free(held);
  free(sizes);
}

static void run_pairs(const char *name) {
  for (size_t k = 0; k < opt->nsizes; k++) {
    for (size_t l = 0; l < opt->nlive; l++) {
      size_t live = opt->live[l];
      result *r = new_result(name, "pairs");
      pairs_params(opt->sizes[k], live, r->params, sizeof r->params);
      size_t n = pairs_for(opt->sizes[k]);
      gb_plan plan = {0};
      gpumem_allocator a = GPUMEM_ALLOCATOR_INIT;
      if (!gb_plan_pairs(&plan, opt->sizes[k], n)) {
        snprintf(r->status, sizeof r->status, "no memory");
      } else if (open_allocator(name, &a, r)) {
        size_t *sizes = NULL;
        void **held = live ? hold_live(&a, live, &sizes, r) : NULL;
        if (live == 0 || held != NULL) time_plan(&a, &plan, false, n, r);
        for (size_t i = 0; held != NULL && i < live; i++)
          r->peak_live += sizes[i]; /* the background counts in the live bytes */
        release_live(&a, held, sizes, live);
        gpumem_allocator_destroy(&a);
      }
      gb_plan_free(&plan);
      progress(r);
    }
  }
}

static void run_random(const char *name) {
  result *r = new_result(name, "random");
  random_params(r->params, sizeof r->params);
  gb_plan plan = {0};
  gpumem_allocator a = GPUMEM_ALLOCATOR_INIT;
  if (!gb_plan_random(&plan, &opt->random))
    snprintf(r->status, sizeof r->status, "bad plan");
  else if (open_allocator(name, &a, r)) {
    time_plan(&a, &plan, false, plan.count, r);
    gpumem_allocator_destroy(&a);
  }
  gb_plan_free(&plan);
  progress(r);
}

/* `streams`: round-robin over the streams; each block lives while the next
 * two of its stream are allocated, and is written (work in flight) when
 * allocated, so its free is ordered behind that work. */
static bool plan_streams(gb_plan *plan) {
  size_t depth = 2 * (size_t)opt->streams;
  bool ok = true;
  for (size_t i = 0; ok && i < opt->stream_ops; i++) {
    uint16_t s = (uint16_t)(i % (size_t)opt->streams);
    ok = gb_plan_push(plan, (gb_op){GB_ALLOC, s, (uint32_t)i, opt->stream_size});
    if (ok && i >= depth) {
      size_t old = i - depth;
      ok = gb_plan_push(plan, (gb_op){GB_FREE, (uint16_t)(old % (size_t)opt->streams),
                                      (uint32_t)old, opt->stream_size});
    }
  }
  for (size_t old = opt->stream_ops > depth ? opt->stream_ops - depth : 0;
       ok && old < opt->stream_ops; old++) {
    ok = gb_plan_push(plan, (gb_op){GB_FREE, (uint16_t)(old % (size_t)opt->streams), (uint32_t)old,
                                    opt->stream_size});
  }
  return ok;
}

static void streams_params(char *buf, size_t len) {
  char sz[16];
  size_text(opt->stream_size, sz, sizeof sz);
  snprintf(buf, len, "streams=%d size=%s writes", opt->streams, sz);
}

static void run_streams(const char *name) {
  result *r = new_result(name, "streams");
  streams_params(r->params, sizeof r->params);
  gb_plan plan = {0};
  gpumem_allocator a = GPUMEM_ALLOCATOR_INIT;
  if (!plan_streams(&plan))
    snprintf(r->status, sizeof r->status, "no memory");
  else if (open_allocator(name, &a, r)) {
    time_plan(&a, &plan, true, plan.count, r);
    gpumem_allocator_destroy(&a);
  }
  gb_plan_free(&plan);
  progress(r);
}

static void run_replay(const char *name, const gb_plan *plan) {
  result *r = new_result(name, "replay");
  const char *base = strrchr(opt->trace, '/');
  snprintf(r->params, sizeof r->params, "%s", base ? base + 1 : opt->trace);
  gpumem_allocator a = GPUMEM_ALLOCATOR_INIT;
  if (open_allocator(name, &a, r)) {
    time_plan(&a, plan, false, plan->count, r);
    gpumem_allocator_destroy(&a);
  }
  progress(r);
}

/* `first`: a fresh allocator per repetition. Two rows: the first allocation
 * (what a process pays at start-up) and the median of the ones after it. */
static void run_first(const char *name) {
  result *r = new_result(name, "first");
  char sz[16];
  size_text(opt->first_size, sz, sizeof sz);
  snprintf(r->params, sizeof r->params, "size=%s, allocation 1", sz);
  double first[1000], later[1000];
  size_t peak_reserved = 0;
  int done = 0;
  void **ptrs = calloc((size_t)opt->first_count, sizeof *ptrs);
  double *rest = calloc((size_t)opt->first_count, sizeof *rest);
  for (int rep = 0; ptrs != NULL && rest != NULL && rep < opt->reps; rep++) {
    gpumem_allocator a = GPUMEM_ALLOCATOR_INIT;
    if (!open_allocator(name, &a, r)) break;
    int k = 0;
    bool ok = true;
    for (; k < opt->first_count && ok; k++) {
      double t0 = gb_now_ns();
      ok = a.alloc(a.ctx, opt->first_size, NULL, &ptrs[k]) == GPUMEM_OK;
      double dt = gb_now_ns() - t0;
      if (k == 0)
        first[done] = dt;
      else
        rest[k - 1] = dt;
    }
    if (!ok) {
      snprintf(r->status, sizeof r->status, "%s", gpumem_last_error());
      k--;
    }
    for (int j = 0; j < k; j++)
      a.free(a.ctx, ptrs[j], opt->first_size, NULL);
    GB_CHECKED(gpumem_stream_synchronize(NULL));
    gpumem_stats stats = GPUMEM_STATS_INIT;
    if (a.stats(a.ctx, &stats) == GPUMEM_OK && stats.peak_bytes_reserved > peak_reserved) {
      peak_reserved = stats.peak_bytes_reserved;
    }
    gpumem_allocator_destroy(&a);
    if (!ok) break;
    later[done++] =
        opt->first_count > 1 ? gb_summarize(rest, (size_t)(opt->first_count - 1)).median : 0;
  }
  free(ptrs);
  free(rest);
  result *r2 = new_result(name, "first");
  snprintf(r2->params, sizeof r2->params, "size=%s, allocations 2..%d", sz, opt->first_count);
  r = &results[nresults - 2]; /* new_result may have moved the array */
  if (done == opt->reps) {
    result *rows[2] = {r, r2};
    double *samples[2] = {first, later};
    for (int i = 0; i < 2; i++) {
      rows[i]->reps = done;
      rows[i]->ops = 1;
      rows[i]->peak_live = (size_t)opt->first_count * opt->first_size;
      rows[i]->peak_reserved = peak_reserved;
      rows[i]->ns = gb_summarize(samples[i], (size_t)done);
      rows[i]->ops_per_s = rows[i]->ns.median > 0 ? 1e9 / rows[i]->ns.median : 0;
    }
  } else {
    snprintf(r2->status, sizeof r2->status, "%s", r->status);
  }
  progress(r);
  progress(r2);
}

/* ---- threads ---- */

typedef struct thread_job {
  const gpumem_allocator *a;
  gb_plan plan;
  gpumem_stream_t stream;
  pthread_barrier_t *start;
  double start_ns, end_ns;
  char err[200];
  bool failed;
} thread_job;

static void *thread_main(void *arg) {
  thread_job *j = arg;
  pthread_barrier_wait(j->start);
  j->start_ns = gb_now_ns();
  double t = gb_run_plan(j->a, &j->plan, &j->stream, opt->device, false, j->err, sizeof j->err);
  j->end_ns = gb_now_ns();
  j->failed = t < 0;
  return NULL;
}

static void run_threads(const char *name) {
  double one_thread = 0;
  for (size_t k = 0; k < opt->nthreads; k++) {
    int nt = opt->threads[k];
    result *r = new_result(name, "threads");
    r->threads = nt;
    threads_params(nt, r->params, sizeof r->params);
    gpumem_allocator a = GPUMEM_ALLOCATOR_INIT;
    thread_job *jobs = calloc((size_t)nt, sizeof *jobs);
    if (jobs == NULL || !open_allocator(name, &a, r)) {
      free(jobs);
      progress(r);
      continue;
    }
    bool ok = true;
    size_t total_ops = 0;
    for (int t = 0; t < nt && ok; t++) {
      jobs[t].a = &a;
      ok = plan_thread(t, nt, &jobs[t].plan) && make_streams(1, &jobs[t].stream, r);
      total_ops += jobs[t].plan.count;
    }
    double samples[1000];
    int done = 0;
    for (int rep = 0; ok && rep < opt->warmup + opt->reps; rep++) {
      pthread_barrier_t start;
      pthread_barrier_init(&start, NULL, (unsigned)nt + 1);
      pthread_t tid[256];
      for (int t = 0; t < nt; t++) {
        jobs[t].start = &start;
        pthread_create(&tid[t], NULL, thread_main, &jobs[t]);
      }
      pthread_barrier_wait(&start);
      double t0 = 0, t1 = 0; /* the first thread's start to the last one's end */
      for (int t = 0; t < nt; t++) {
        pthread_join(tid[t], NULL);
        if (t == 0 || jobs[t].start_ns < t0) t0 = jobs[t].start_ns;
        if (jobs[t].end_ns > t1) t1 = jobs[t].end_ns;
        if (jobs[t].failed) {
          snprintf(r->status, sizeof r->status, "thread %d: %.180s", t, jobs[t].err);
          ok = false;
        }
      }
      pthread_barrier_destroy(&start);
      if (ok && rep >= opt->warmup) samples[done++] = (t1 - t0) / (double)total_ops;
    }
    if (ok) {
      r->reps = done;
      r->ops = total_ops;
      r->ns = gb_summarize(samples, (size_t)done);
      r->ops_per_s = r->ns.median > 0 ? 1e9 / r->ns.median : 0;
      if (nt == 1 || one_thread == 0) one_thread = nt == 1 ? r->ops_per_s : one_thread;
      r->scaling = one_thread > 0 ? r->ops_per_s / one_thread : 0;
      for (int t = 0; t < nt; t++) {
        size_t peak = gb_plan_live_curve(&jobs[t].plan, NULL);
        r->peak_live += peak; /* threads overlap: an upper bound */
      }
      gpumem_stats st = GPUMEM_STATS_INIT;
      if (a.stats(a.ctx, &st) == GPUMEM_OK) r->peak_reserved = st.peak_bytes_reserved;
    }
    for (int t = 0; t < nt; t++) {
      if (jobs[t].stream) GB_CHECKED(gpumem_stream_destroy(jobs[t].stream));
      gb_plan_free(&jobs[t].plan);
    }
    free(jobs);
    gpumem_allocator_destroy(&a);
    progress(r);
  }
}

/* ---- grow: a device array made larger, four ways (grow.c) ---- */

/* Bytes realloc may copy in one N+-1 repetition set: it copies N per resize,
 * so its iterations are cut to stay within this (its ns per resize stays
 * comparable; the ops column shows how many it made). The host emulation
 * copies about a thousand times slower than a GPU. */
#define REALLOC_BATCH_BUDGET_GPU  ((size_t)64 << 30)
#define REALLOC_BATCH_BUDGET_HOST ((size_t)2 << 30)

static void grow_row(gb_grower g, const char *params, size_t per, size_t target, bool batch,
                     size_t step_or_n, size_t chunk) {
  size_t iterations = opt->batch_iterations;
  if (batch && g == GB_REALLOC) {
    size_t budget = gpumem_backend() == GPUMEM_BACKEND_HOST ? REALLOC_BATCH_BUDGET_HOST
                                                            : REALLOC_BATCH_BUDGET_GPU;
    size_t most = budget / (2 * step_or_n);
    if (most < 5) most = 5;
    if (iterations > most) iterations = most;
    per = 2 * iterations;
  }
  result *r = new_result(gb_grower_name(g), "grow");
  snprintf(r->params, sizeof r->params, "%s", params);
  double samples[1000];
  int done = 0;
  uint64_t calls = 0;
  size_t peak = 0;
  for (int i = 0; i < opt->warmup + opt->reps; i++) {
    double t = batch ? gb_grow_batch(g, opt->device, step_or_n, iterations, chunk, &calls, &peak,
                                     r->status, sizeof r->status)
                     : gb_grow_steps(g, opt->device, target, step_or_n, chunk, &calls, &peak,
                                     r->status, sizeof r->status);
    if (t < 0) break;
    if (i >= opt->warmup) samples[done++] = t / (double)per;
  }
  if (done == opt->reps) {
    r->reps = done;
    r->ops = per;
    r->ns = gb_summarize(samples, (size_t)done);
    r->ops_per_s = r->ns.median > 0 ? 1e9 / r->ns.median : 0;
    r->peak_live = batch ? step_or_n + 1 : target;
    r->peak_reserved = peak;
    r->has_calls = true;
    r->calls = calls;
  }
  progress(r);
}

static void run_grow(void) {
  gpumem_device_info info;
  if (gpumem_device_get_info(opt->device, &info) != GPUMEM_OK) {
    result *r = new_result("grow", "grow");
    snprintf(r->status, sizeof r->status, "%s", gpumem_last_error());
    return;
  }
  size_t chunk = info.granularity_min;
  /* realloc holds the old and the new block at once: leave room for both. */
  size_t target = opt->grow_target;
  if (target > info.memory_free / 3) target = info.memory_free / 3;
  for (size_t k = 0; k < opt->ngrow_steps; k++) {
    size_t step = (opt->grow_steps[k] + chunk - 1) / chunk * chunk;
    size_t t = target / step * step;
    char tsz[16], ssz[16], params[96];
    size_text(t, tsz, sizeof tsz);
    size_text(step, ssz, sizeof ssz);
    snprintf(params, sizeof params, "0->%s step=%s", tsz, ssz);
    if (t == 0) { /* a step larger than the target: nothing to measure */
      size_text(target, tsz, sizeof tsz);
      fprintf(stderr, "gpumem-bench: grow: step %s skipped: larger than the target %s\n", ssz, tsz);
      progress_total -= GB_GROWER_COUNT;
      continue;
    }
    for (int g = 0; g < GB_GROWER_COUNT; g++) {
      grow_row((gb_grower)g, params, t / step, t, false, step, chunk);
    }
  }
  size_t n = opt->batch_n < target ? opt->batch_n : target;
  n = n / chunk * chunk;
  if (n < chunk) n = chunk;
  char nsz[16], params[96];
  size_text(n, nsz, sizeof nsz);
  snprintf(params, sizeof params, "N=%s +-1", nsz);
  for (int g = 0; g < GB_GROWER_COUNT; g++) {
    grow_row((gb_grower)g, params, 2 * opt->batch_iterations, n, true, n, chunk);
  }
}

/* ---- exporting the plans for peers ---- */

/* Write one plan file; false after printing why. */
static bool export_one(const char *dir, const char *file, const gb_plan *plan) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, file);
  if (gb_plan_write_trace(plan, path)) return true;
  fprintf(stderr, "gpumem-bench: cannot write %s: %s\n", path, strerror(errno));
  return false;
}

/* --export-plans DIR: every plan of the chosen workloads as a trace file, and
 * DIR/plans.tsv listing them (workload, params, threads, divisor of the
 * elapsed time, whether blocks are written, files), so that a peer
 * (bench/peers/torch_caching.py) replays exactly the same work. */
static int export_plans(const char *dir) {
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
    fprintf(stderr, "gpumem-bench: cannot create %s: %s\n", dir, strerror(errno));
    return 1;
  }
  char path[4096], params[96], file[64];
  snprintf(path, sizeof path, "%s/plans.tsv", dir);
  FILE *index = fopen(path, "w");
  if (index == NULL) {
    fprintf(stderr, "gpumem-bench: cannot write %s: %s\n", path, strerror(errno));
    return 1;
  }
  fprintf(index, "workload\tparams\tthreads\tper\ttouch\tfiles\n");
  bool ok = true;
  for (size_t k = 0; ok && (opt->workloads & W_PAIRS) && k < opt->nsizes; k++) {
    gb_plan p = {0};
    size_t n = pairs_for(opt->sizes[k]);
    snprintf(file, sizeof file, "pairs-%zu.csv", k);
    ok = gb_plan_pairs(&p, opt->sizes[k], n) && export_one(dir, file, &p);
    pairs_params(opt->sizes[k], 0, params, sizeof params);
    fprintf(index, "pairs\t%s\t1\t%zu\t0\t%s\n", params, n, file);
    gb_plan_free(&p);
  }
  if (ok && (opt->workloads & W_RANDOM)) {
    gb_plan p = {0};
    ok = gb_plan_random(&p, &opt->random) && export_one(dir, "random.csv", &p);
    random_params(params, sizeof params);
    fprintf(index, "random\t%s\t1\t%zu\t0\trandom.csv\n", params, p.count);
    gb_plan_free(&p);
  }
  for (size_t k = 0; ok && (opt->workloads & W_THREADS) && k < opt->nthreads; k++) {
    int nt = opt->threads[k];
    size_t total = 0;
    char files[2048] = "";
    for (int t = 0; ok && t < nt; t++) {
      gb_plan p = {0};
      snprintf(file, sizeof file, "threads-%d-%d.csv", nt, t);
      ok = plan_thread(t, nt, &p) && export_one(dir, file, &p);
      total += p.count;
      size_t used = strlen(files);
      snprintf(files + used, sizeof files - used, "%s%s", t ? "," : "", file);
      gb_plan_free(&p);
    }
    threads_params(nt, params, sizeof params);
    fprintf(index, "threads\t%s\t%d\t%zu\t0\t%s\n", params, nt, total, files);
  }
  if (ok && (opt->workloads & W_STREAMS)) {
    gb_plan p = {0};
    ok = plan_streams(&p) && export_one(dir, "streams.csv", &p);
    streams_params(params, sizeof params);
    fprintf(index, "streams\t%s\t1\t%zu\t1\tstreams.csv\n", params, p.count);
    gb_plan_free(&p);
  }
  if (ok && (opt->workloads & W_REPLAY)) {
    gb_plan p = {0};
    char why[512];
    ok = gb_plan_read_trace(&p, opt->trace, why, sizeof why) && export_one(dir, "replay.csv", &p);
    const char *base = strrchr(opt->trace, '/');
    fprintf(index, "replay\t%s\t1\t%zu\t0\treplay.csv\n", base ? base + 1 : opt->trace, p.count);
    gb_plan_free(&p);
  }
  if (fclose(index) != 0) ok = false;
  if (ok) printf("gpumem-bench: plans written to %s (index: plans.tsv)\n", dir);
  return ok ? 0 : 1;
}

/* ---- output ---- */

typedef struct header {
  char device[320];
  char backend[16];
  char date[40];
  int driver, runtime;
  char note[320];
} header;

static void print_header(const header *h) {
  printf("gpumem-bench %s | %s | CUDA driver %d.%d, runtime %d.%d | backend %s | %s\n",
         gpumem_version_string(), h->device, h->driver / 1000, h->driver % 1000 / 10,
         h->runtime / 1000, h->runtime % 1000 / 10, h->backend, h->date);
  if (h->note[0]) printf("%s\n", h->note);
  printf("method: %d warm-up + %d timed repetitions, median [min, max] ns per operation "
         "(pairs: per alloc+free pair), each repetition ending in a synchronize\n",
         opt->warmup, opt->reps);
}

static void print_table(void) {
  printf("\n%-16s %-8s %-32s %9s %12s %12s %12s %12s %9s %10s %10s %6s %7s\n", "allocator",
         "workload", "params", "ops/rep", "median ns", "min ns", "max ns", "ops/s", "scaling",
         "peak live", "peak rsvd", "r/l", "calls");
  for (size_t i = 0; i < nresults; i++) {
    const result *r = &results[i];
    if (strcmp(r->status, "ok") != 0) {
      printf("%-16s %-8s %-32s FAILED: %s\n", r->allocator, r->workload, r->params, r->status);
      continue;
    }
    char live[16], rsvd[16], scaling[16] = "";
    size_text(r->peak_live, live, sizeof live);
    size_text(r->peak_reserved, rsvd, sizeof rsvd);
    if (strcmp(r->workload, "threads") == 0) snprintf(scaling, sizeof scaling, "%.2fx", r->scaling);
    char calls[24] = "";
    if (r->has_calls) snprintf(calls, sizeof calls, "%llu", (unsigned long long)r->calls);
    printf("%-16s %-8s %-32.32s %9zu %12.0f %12.0f %12.0f %12.0f %9s %10s %10s %6.2f %7s\n",
           r->allocator, r->workload, r->params, r->ops, r->ns.median, r->ns.min, r->ns.max,
           r->ops_per_s, scaling, live, rsvd,
           r->peak_live ? (double)r->peak_reserved / (double)r->peak_live : 0.0, calls);
  }
}

static void json_string(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    if (*s == '"' || *s == '\\')
      fprintf(f, "\\%c", *s);
    else if ((unsigned char)*s < 0x20)
      fprintf(f, "\\u%04x", *s);
    else
      fputc(*s, f);
  }
  fputc('"', f);
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

static bool write_csv(const char *path, const header *h) {
  FILE *f = fopen(path, "w");
  if (f == NULL) return false;
  fprintf(f, "backend,device,date,allocator,workload,params,threads,ops,reps,median_ns,min_ns,"
             "max_ns,ops_per_s,scaling,peak_live_bytes,peak_reserved_bytes,driver_calls,status\n");
  for (size_t i = 0; i < nresults; i++) {
    const result *r = &results[i];
    fprintf(f, "%s,", h->backend);
    csv_quoted(f, h->device);
    fprintf(f, ",%s,%s,%s,", h->date, r->allocator, r->workload);
    csv_quoted(f, r->params);
    fprintf(f, ",%d,%zu,%d,%.1f,%.1f,%.1f,%.1f,%.3f,%zu,%zu,", r->threads, r->ops, r->reps,
            r->ns.median, r->ns.min, r->ns.max, r->ops_per_s, r->scaling, r->peak_live,
            r->peak_reserved);
    if (r->has_calls) fprintf(f, "%llu", (unsigned long long)r->calls);
    fputc(',', f);
    csv_quoted(f, r->status);
    fputc('\n', f);
  }
  return fclose(f) == 0;
}

static bool write_json(const char *path, const header *h) {
  FILE *f = fopen(path, "w");
  if (f == NULL) return false;
  fprintf(f, "{\"header\":{\"library\":\"%s\",\"device\":", gpumem_version_string());
  json_string(f, h->device);
  fprintf(f,
          ",\"backend\":\"%s\",\"date\":\"%s\",\"cuda_driver\":%d,\"cuda_runtime\":%d,"
          "\"warmup\":%d,\"reps\":%d,\"note\":",
          h->backend, h->date, h->driver, h->runtime, opt->warmup, opt->reps);
  json_string(f, h->note);
  fprintf(f, "},\"results\":[");
  for (size_t i = 0; i < nresults; i++) {
    const result *r = &results[i];
    fprintf(f, "%s{\"allocator\":\"%s\",\"workload\":\"%s\",\"params\":", i ? "," : "",
            r->allocator, r->workload);
    json_string(f, r->params);
    fprintf(f,
            ",\"threads\":%d,\"ops\":%zu,\"reps\":%d,\"median_ns\":%.1f,\"min_ns\":%.1f,"
            "\"max_ns\":%.1f,\"ops_per_s\":%.1f,\"scaling\":%.3f,\"peak_live_bytes\":%zu,"
            "\"peak_reserved_bytes\":%zu,\"driver_calls\":%lld,\"status\":",
            r->threads, r->ops, r->reps, r->ns.median, r->ns.min, r->ns.max, r->ops_per_s,
            r->scaling, r->peak_live, r->peak_reserved, r->has_calls ? (long long)r->calls : -1LL);
    json_string(f, r->status);
    fprintf(f, "}");
  }
  fprintf(f, "]}\n");
  return fclose(f) == 0;
}

/* ---- main ---- */

static options *mutable_opt;

/* Lower the random cap to half the free memory; true if it was lowered. */
static bool o_cap_fit(size_t free_bytes) {
  if (mutable_opt->random.cap <= free_bytes / 2) return false;
  mutable_opt->random.cap = free_bytes / 2;
  return true;
}

/* Initialise the library; without a usable GPU, and unless GPUMEM_BACKEND
 * chose a backend, fall back to the host backend and say so. */
static int start(header *h) {
  memset(h, 0, sizeof *h);
  int count = 0;
  gpumem_status st = gpumem_device_count(&count);
  if (st == GPUMEM_ERR_NO_DEVICE && getenv("GPUMEM_BACKEND") == NULL) {
    snprintf(h->note, sizeof h->note,
             "NOTE: no GPU here (%s); running on the host backend's emulated devices: these are "
             "CPU timings of the emulation, not GPU figures",
             gpumem_last_error());
    gpumem_init_options o = GPUMEM_INIT_OPTIONS_INIT;
    o.backend = GPUMEM_BACKEND_HOST;
    o.host_capacity = (size_t)4 << 30;
    st = gpumem_init(&o);
    if (st == GPUMEM_OK) st = gpumem_device_count(&count);
  }
  if (st != GPUMEM_OK) {
    fprintf(stderr, "gpumem-bench: %s\n", gpumem_last_error());
    return 1;
  }
  gpumem_device_info info;
  if (gpumem_device_get_info(opt->device, &info) != GPUMEM_OK) {
    fprintf(stderr, "gpumem-bench: %s\n", gpumem_last_error());
    return 2;
  }
  snprintf(h->device, sizeof h->device, "%.200s (%.48s)", info.name, info.uuid);
  snprintf(h->backend, sizeof h->backend, "%s", gpumem_backend_name());
  gpumem_cuda_versions(&h->driver, &h->runtime);
  time_t now = time(NULL);
  strftime(h->date, sizeof h->date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
  /* The random workload's cap must fit the device (a MIG slice, a small GPU). */
  if (o_cap_fit(info.memory_free)) {
    fprintf(stderr, "gpumem-bench: --cap lowered to half the device's free memory\n");
  }
  if (gpumem_backend() == GPUMEM_BACKEND_HOST && h->note[0] == '\0') {
    snprintf(h->note, sizeof h->note,
             "NOTE: host backend (emulated devices): CPU timings of the emulation, not GPU "
             "figures");
  }
  return 0;
}

int main(int argc, char **argv) {
  static options o;
  int rc = parse_args(argc, argv, &o);
  if (rc != 0) return rc;
  opt = &o;
  mutable_opt = &o;
  gpumem_allocator_kind kinds[MAX_ALLOCATORS];
  size_t nkinds = gpumem_allocator_list(kinds, MAX_ALLOCATORS);
  if (o.nallocators == 0) {
    for (size_t i = 0; i < nkinds && i < MAX_ALLOCATORS; i++)
      o.allocator_names[o.nallocators++] = kinds[i].name;
  }
  for (size_t i = 0; i < o.nallocators; i++) {
    bool known = false;
    for (size_t k = 0; k < nkinds; k++)
      known |= strcmp(kinds[k].name, o.allocator_names[i]) == 0;
    if (!known) {
      fprintf(stderr, "gpumem-bench: unknown allocator '%s' (gpumem-bench --list shows them)\n",
              o.allocator_names[i]);
      return 2;
    }
  }
  if (o.export_dir != NULL) return export_plans(o.export_dir);
  gb_plan trace_plan = {0};
  if (o.workloads & W_REPLAY) {
    char why[512];
    if (!gb_plan_read_trace(&trace_plan, o.trace, why, sizeof why)) {
      fprintf(stderr, "gpumem-bench: cannot replay: %s\n", why);
      gb_plan_free(&trace_plan);
      return 2;
    }
  }
  header h;
  if ((rc = start(&h)) != 0) {
    gb_plan_free(&trace_plan);
    return rc;
  }
  print_header(&h);
  fflush(stdout);
  int per_alloc = 0;
  if (o.workloads & W_PAIRS) per_alloc += (int)(o.nsizes * o.nlive);
  if (o.workloads & W_RANDOM) per_alloc++;
  if (o.workloads & W_THREADS) per_alloc += (int)o.nthreads;
  if (o.workloads & W_STREAMS) per_alloc++;
  if (o.workloads & W_REPLAY) per_alloc++;
  if (o.workloads & W_FIRST) per_alloc += 2;
  progress_total = per_alloc * (int)o.nallocators;
  if (o.workloads & W_GROW) progress_total += GB_GROWER_COUNT * ((int)o.ngrow_steps + 1);
  for (size_t i = 0; i < o.nallocators; i++) {
    const char *name = o.allocator_names[i];
    if (o.workloads & W_PAIRS) run_pairs(name);
    if (o.workloads & W_RANDOM) run_random(name);
    if (o.workloads & W_THREADS) run_threads(name);
    if (o.workloads & W_STREAMS) run_streams(name);
    if (o.workloads & W_REPLAY) run_replay(name, &trace_plan);
    if (o.workloads & W_FIRST) run_first(name);
  }
  if (o.workloads & W_GROW) run_grow();
  print_table();
  if (o.csv && !write_csv(o.csv, &h)) {
    fprintf(stderr, "gpumem-bench: cannot write %s: %s\n", o.csv, strerror(errno));
    rc = 1;
  }
  if (o.json && !write_json(o.json, &h)) {
    fprintf(stderr, "gpumem-bench: cannot write %s: %s\n", o.json, strerror(errno));
    rc = 1;
  }
  gb_plan_free(&trace_plan);
  for (size_t i = 0; i < nresults; i++) {
    if (strcmp(results[i].status, "ok") != 0) rc = 1;
  }
  free(results);
  GB_CHECKED(gpumem_finalize());
  return rc;
}
