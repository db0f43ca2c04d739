/* workloads.c: gpumem-bench's workloads, in one table.
 *
 * Each entry of gb_workloads says everything about one workload: its name
 * and help line, the options it reads (which --help groups under it), whether
 * it runs by default, per allocator or once, whether the host-memory
 * yardsticks run it, how many rows it makes, and either a plan builder
 * (describe a row, build each thread's plan) for the generic runner or a
 * runner of its own (`first` times allocator creation, `grow` has growers
 * instead of allocators). Adding a workload is adding an entry.
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
 *   grow     a device array made larger four ways (grow.c)
 *
 * Method: a warm-up run, then R timed repetitions; each repetition ends with
 * a synchronize of its streams, so deferred work is paid for; a row gives the
 * median with min and max, in nanoseconds per operation (per alloc+free pair
 * for `pairs`), and the allocator's own peak of reserved bytes against the
 * peak of live bytes. A fresh allocator serves each row, so peaks do not leak
 * between rows.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"

#define MIB ((size_t)1 << 20)
/* Pairs of sizes from this one up are a tenth as many: one pair takes ms. */
#define PAIRS_LARGE_SIZE ((size_t)256 << 20)
/* --live: the background blocks' sizes, in [LIVE_MIN_SIZE, LIVE_MIN_SIZE +
 * LIVE_SIZE_SPAN). */
#define LIVE_MIN_SIZE  ((size_t)256)
#define LIVE_SIZE_SPAN ((size_t)3841)
/* Bytes realloc may copy in one N+-1 repetition set: it copies N per resize,
 * so its iterations are cut to stay within this (its ns per resize stays
 * comparable; the ops column shows how many it made). The host emulation
 * copies about a thousand times slower than a GPU. */
#define REALLOC_BATCH_BUDGET_GPU     ((size_t)64 << 30)
#define REALLOC_BATCH_BUDGET_HOST    ((size_t)2 << 30)
#define REALLOC_BATCH_MIN_ITERATIONS 5

static const char *const dist_names[] = {"uniform", "lognormal", "geometric"};

/* ---- allocators and the random cap ---- */

static bool open_allocator(gb_bench *b, const char *name, gpumem_allocator *a, gb_result *r) {
  if (gb_host_allocator_known(name))
    return gb_host_allocator_create(name, a, r->status, sizeof r->status);
  if (gpumem_allocator_create(name, b->device, a) == GPUMEM_OK) return true;
  snprintf(r->status, sizeof r->status, "%s", gpumem_last_error());
  return false;
}

/* The random cap the device allows. The first workload that uses the cap
 * says so if --cap was lowered; the others do not mention it. */
static size_t capped(gb_bench *b) {
  if (b->o->cap <= b->cap_limit) return b->o->cap;
  if (!b->cap_noted) {
    char asked[16], given[16];
    gb_size_text(b->o->cap, asked, sizeof asked);
    gb_size_text(b->cap_limit, given, sizeof given);
    gb_note(b->report, "--cap lowered from %s to %s, half the device's free memory", asked, given);
    b->cap_noted = true;
  }
  return b->cap_limit;
}

/* ---- pairs ---- */

static size_t pairs_for(const gb_options *o, size_t size) {
  if (size < PAIRS_LARGE_SIZE) return o->pairs;
  return o->pairs / 10 ? o->pairs / 10 : 1;
}

static size_t pairs_rows(gb_bench *b) {
  return b->o->nsizes * b->o->nlive;
}

static void pairs_describe(gb_bench *b, size_t row, gb_row *out) {
  size_t size = b->o->sizes[row / b->o->nlive], live = b->o->live[row % b->o->nlive];
  char sz[16];
  gb_size_text(size, sz, sizeof sz);
  if (live > 0)
    snprintf(out->params, sizeof out->params, "size=%s live=%zu", sz, live);
  else
    snprintf(out->params, sizeof out->params, "size=%s", sz);
  out->live = live;
  out->per = pairs_for(b->o, size);
}

static bool no_memory(char *why, size_t len) {
  snprintf(why, len, "out of host memory for the plan");
  return false;
}

static bool pairs_plan(gb_bench *b, size_t row, int thread, gb_plan *out, char *why, size_t len) {
  (void)thread;
  size_t size = b->o->sizes[row / b->o->nlive];
  return gb_plan_pairs(out, size, pairs_for(b->o, size)) || no_memory(why, len);
}

/* ---- random ---- */

static size_t one_row(gb_bench *b) {
  (void)b;
  return 1;
}

static void random_describe(gb_bench *b, size_t row, gb_row *out) {
  (void)row;
  char mx[16], cap[16];
  gb_size_text(b->o->max_size, mx, sizeof mx);
  gb_size_text(capped(b), cap, sizeof cap);
  snprintf(out->params, sizeof out->params, "%s<=%s p=%.2f cap=%s", dist_names[b->o->dist], mx,
           b->o->p_alloc, cap);
}

static bool random_plan(gb_bench *b, size_t row, int thread, gb_plan *out, char *why, size_t len) {
  (void)row;
  (void)thread;
  gb_random_config c = gb_random_from(b->o, capped(b));
  if (gb_plan_random(out, &c)) return true;
  snprintf(why, len, "no random plan (out of host memory?)");
  return false;
}

/* ---- threads ---- */

static size_t threads_rows(gb_bench *b) {
  return b->o->nthreads;
}

static void threads_describe(gb_bench *b, size_t row, gb_row *out) {
  int nt = (int)b->o->threads[row];
  char sz[16];
  gb_size_text(b->o->thread_size, sz, sizeof sz);
  if (b->o->thread_workload == 1)
    snprintf(out->params, sizeof out->params, "T=%d random", nt);
  else
    snprintf(out->params, sizeof out->params, "T=%d pairs size=%s", nt, sz);
  out->threads = nt;
}

/* Thread `t`'s plan: its own seed, and its share of the cap. */
static bool threads_plan(gb_bench *b, size_t row, int t, gb_plan *out, char *why, size_t len) {
  size_t nt = b->o->threads[row];
  if (b->o->thread_workload == 0)
    return gb_plan_pairs(out, b->o->thread_size, b->o->thread_pairs) || no_memory(why, len);
  gb_random_config c = gb_random_from(b->o, capped(b) / nt);
  c.seed = b->o->seed + (uint64_t)t;
  c.steps = b->o->thread_pairs * 2;
  return gb_plan_random(out, &c) || no_memory(why, len);
}

/* ---- streams ---- */

static void streams_describe(gb_bench *b, size_t row, gb_row *out) {
  (void)row;
  char sz[16];
  gb_size_text(b->o->stream_size, sz, sizeof sz);
  snprintf(out->params, sizeof out->params, "streams=%zu size=%s writes", b->o->streams, sz);
  out->touch = true;
}

/* Round-robin over the streams; each block lives while the next two of its
 * stream are allocated, and is written (work in flight) when allocated, so
 * its free is ordered behind that work. */
static bool streams_plan(gb_bench *b, size_t row, int thread, gb_plan *plan, char *why,
                         size_t len) {
  (void)row;
  (void)thread;
  const gb_options *o = b->o;
  size_t depth = 2 * o->streams;
  bool ok = true;
  for (size_t i = 0; ok && i < o->stream_ops; i++) {
    uint16_t s = (uint16_t)(i % o->streams);
    ok = gb_plan_push(plan, (gb_op){GB_ALLOC, s, (uint32_t)i, o->stream_size});
    if (ok && i >= depth) {
      size_t old = i - depth;
      ok = gb_plan_push(
          plan, (gb_op){GB_FREE, (uint16_t)(old % o->streams), (uint32_t)old, o->stream_size});
    }
  }
  for (size_t old = o->stream_ops > depth ? o->stream_ops - depth : 0; ok && old < o->stream_ops;
       old++) {
    ok = gb_plan_push(
        plan, (gb_op){GB_FREE, (uint16_t)(old % o->streams), (uint32_t)old, o->stream_size});
  }
  return ok || no_memory(why, len);
}

/* ---- replay ---- */

static void replay_describe(gb_bench *b, size_t row, gb_row *out) {
  (void)row;
  const char *base = strrchr(b->o->trace, '/');
  snprintf(out->params, sizeof out->params, "%s", base ? base + 1 : b->o->trace);
  out->shared_plan = true;
}

static bool replay_plan(gb_bench *b, size_t row, int thread, gb_plan *out, char *why, size_t len) {
  (void)row;
  (void)thread;
  (void)why;
  (void)len;
  *out = b->trace; /* read once, before the run (shared_plan: not freed here) */
  return true;
}

/* ---- timing a plan ---- */

static bool make_streams(gb_bench *b, int n, gpumem_stream_t *s, gb_result *r) {
  for (int i = 0; i < n; i++) {
    if (gpumem_stream_create(b->device, &s[i]) != GPUMEM_OK) {
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

/* The modelled driver time per operation of the timed repetitions
 * (`ops`: their operations, all repetitions together). */
static void set_model(const gb_bench *b, gb_result *r, const uint64_t *before,
                      const uint64_t *after, size_t ops) {
  r->has_model = ops > 0;
  r->model_us = ops > 0 ? gb_cost_model_us(before, after, b->o->driver_cost) / (double)ops : 0;
}

static void fill_timing(gb_result *r, double *samples, size_t reps, size_t per) {
  r->reps = (int)reps;
  r->ops = per;
  r->ns = gb_summarize(samples, reps);
  r->ops_per_s = r->ns.median > 0 ? 1e9 / r->ns.median : 0;
}

/* Warm up, time the repetitions, fill r. `per` divides the elapsed time. */
static void time_plan(gb_bench *b, const gpumem_allocator *a, const gb_plan *plan, bool touch,
                      size_t per, gb_result *r) {
  gpumem_stream_t streams[GB_MAX_STREAMS];
  int ns = plan->streams ? plan->streams : 1;
  if (ns > GB_MAX_STREAMS) {
    snprintf(r->status, sizeof r->status, "plan uses %d streams (at most %d)", ns, GB_MAX_STREAMS);
    return;
  }
  if (!make_streams(b, ns, streams, r)) return;
  double samples[GB_MAX_REPS];
  size_t done = 0;
  uint64_t before[GB_COST_COUNT], after[GB_COST_COUNT];
  for (size_t i = 0; i < b->o->warmup + b->o->reps; i++) {
    if (i == b->o->warmup) gb_cost_counts(before);
    double t = gb_run_plan(a, plan, streams, b->device, touch, r->status, sizeof r->status);
    if (t < 0) break;
    if (i >= b->o->warmup) samples[done++] = t / (double)per;
  }
  gb_cost_counts(after);
  drop_streams(ns, streams);
  if (done < b->o->reps) return; /* status holds the error */
  fill_timing(r, samples, done, per);
  set_model(b, r, before, after, done * per);
  r->peak_live = gb_plan_live_curve(plan, NULL);
  gpumem_stats st = GPUMEM_STATS_INIT;
  if (a->stats(a->ctx, &st) == GPUMEM_OK) r->peak_reserved = st.peak_bytes_reserved;
}

/* Allocate 2n blocks of 256 B to 4 KiB and free every other one: n live
 * blocks with holes between them, the background of a `pairs` row with
 * --live. Returns the blocks kept (n of them) or NULL after writing why. */
static void **hold_live(gb_bench *b, const gpumem_allocator *a, size_t n, size_t **sizes,
                        gb_result *r) {
  void **held = calloc(2 * n, sizeof *held);
  size_t *sz = calloc(2 * n, sizeof *sz);
  uint64_t x = b->o->seed * 2654435761u + 1; /* xorshift64 */
  size_t made = 0;
  bool ok = held != NULL && sz != NULL;
  if (!ok) snprintf(r->status, sizeof r->status, "live blocks: out of host memory");
  for (; ok && made < 2 * n; made++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    sz[made] = LIVE_MIN_SIZE + (size_t)(x % LIVE_SIZE_SPAN);
    if (a->alloc(a->ctx, sz[made], NULL, &held[made]) != GPUMEM_OK) {
      snprintf(r->status, sizeof r->status, "live blocks: %s", gpumem_last_error());
      ok = false;
    }
  }
  size_t kept = 0;
  size_t allocated = ok ? made : made - 1;
  for (size_t i = 0; held != NULL && sz != NULL && i < allocated; i++) {
    if (ok && i % 2 == 0) {
      held[kept] = held[i];
      sz[kept++] = sz[i];
    } else {
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

/* One plan on one thread. */
static void run_single(gb_bench *b, const gb_workload *w, size_t row, const gb_row *spec,
                       const char *name, gb_result *r) {
  gb_plan plan = {0};
  gpumem_allocator a = GPUMEM_ALLOCATOR_INIT;
  if (w->plan(b, row, 0, &plan, r->status, sizeof r->status) && open_allocator(b, name, &a, r)) {
    size_t *sizes = NULL;
    void **held = spec->live ? hold_live(b, &a, spec->live, &sizes, r) : NULL;
    if (spec->live == 0 || held != NULL)
      time_plan(b, &a, &plan, spec->touch, spec->per ? spec->per : plan.count, r);
    for (size_t i = 0; held != NULL && i < spec->live; i++)
      r->peak_live += sizes[i]; /* the background counts in the live bytes */
    release_live(&a, held, sizes, spec->live);
    GB_CHECKED(gpumem_allocator_destroy(&a));
  }
  if (!spec->shared_plan) gb_plan_free(&plan);
}

/* The threads of one repetition wait here until all are started, then go
 * together (or are told to stop, when one could not be started). */
typedef struct start_gate {
  pthread_mutex_t lock;
  pthread_cond_t open;
  bool go, cancel;
} start_gate;

typedef struct thread_job {
  gb_bench *b;
  const gpumem_allocator *a;
  gb_plan plan;
  gpumem_stream_t stream;
  start_gate *gate;
  double start_ns, end_ns;
  char err[200];
  bool failed;
} thread_job;

static void *thread_main(void *arg) {
  thread_job *j = arg;
  pthread_mutex_lock(&j->gate->lock);
  while (!j->gate->go)
    pthread_cond_wait(&j->gate->open, &j->gate->lock);
  bool cancel = j->gate->cancel;
  pthread_mutex_unlock(&j->gate->lock);
  if (cancel) return NULL;
  j->start_ns = gb_now_ns();
  double t = gb_run_plan(j->a, &j->plan, &j->stream, j->b->device, false, j->err, sizeof j->err);
  j->end_ns = gb_now_ns();
  j->failed = t < 0;
  return NULL;
}

/* Start the threads of one repetition, wait for them; the time from the
 * first thread's start to the last one's end, or a negative value after
 * writing why. */
static double run_threads_once(thread_job *jobs, int nt, gb_result *r) {
  start_gate gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false};
  pthread_t tid[GB_MAX_THREADS];
  int started = 0;
  for (; started < nt; started++) {
    jobs[started].gate = &gate;
    jobs[started].failed = false;
    if (pthread_create(&tid[started], NULL, thread_main, &jobs[started]) != 0) break;
  }
  bool ok = started == nt;
  if (!ok) snprintf(r->status, sizeof r->status, "could not start thread %d", started);
  pthread_mutex_lock(&gate.lock);
  gate.go = true;
  gate.cancel = !ok;
  pthread_cond_broadcast(&gate.open);
  pthread_mutex_unlock(&gate.lock);
  double t0 = 0, t1 = 0;
  for (int t = 0; t < started; t++) {
    pthread_join(tid[t], NULL);
    if (t == 0 || jobs[t].start_ns < t0) t0 = jobs[t].start_ns;
    if (jobs[t].end_ns > t1) t1 = jobs[t].end_ns;
    if (jobs[t].failed && ok) {
      snprintf(r->status, sizeof r->status, "thread %d: %.180s", t, jobs[t].err);
      ok = false;
    }
  }
  pthread_cond_destroy(&gate.open);
  pthread_mutex_destroy(&gate.lock);
  return ok ? t1 - t0 : -1;
}

/* Each plan on a thread of its own, with its own stream; scaling against
 * the allocator's one-thread row (`one_thread`: its ops/s, 0 until known). */
static void run_threaded(gb_bench *b, const gb_workload *w, size_t row, const gb_row *spec,
                         const char *name, gb_result *r, double *one_thread) {
  int nt = spec->threads;
  gpumem_allocator a = GPUMEM_ALLOCATOR_INIT;
  thread_job *jobs = calloc((size_t)nt, sizeof *jobs);
  if (jobs == NULL) {
    snprintf(r->status, sizeof r->status, "out of host memory");
    return;
  }
  if (!open_allocator(b, name, &a, r)) {
    free(jobs);
    return;
  }
  bool ok = true;
  size_t total_ops = 0;
  for (int t = 0; t < nt && ok; t++) {
    jobs[t].b = b;
    jobs[t].a = &a;
    ok = w->plan(b, row, t, &jobs[t].plan, r->status, sizeof r->status) &&
         make_streams(b, 1, &jobs[t].stream, r);
    total_ops += jobs[t].plan.count;
  }
  double samples[GB_MAX_REPS];
  size_t done = 0;
  uint64_t before[GB_COST_COUNT], after[GB_COST_COUNT];
  for (size_t rep = 0; ok && rep < b->o->warmup + b->o->reps; rep++) {
    if (rep == b->o->warmup) gb_cost_counts(before);
    double t = run_threads_once(jobs, nt, r);
    ok = t >= 0;
    if (ok && rep >= b->o->warmup) samples[done++] = t / (double)total_ops;
  }
  gb_cost_counts(after);
  if (ok) {
    fill_timing(r, samples, done, total_ops);
    set_model(b, r, before, after, done * total_ops);
    if (nt == 1) *one_thread = r->ops_per_s;
    r->scaling = *one_thread > 0 ? r->ops_per_s / *one_thread : 0;
    for (int t = 0; t < nt; t++) /* threads overlap: an upper bound */
      r->peak_live += gb_plan_live_curve(&jobs[t].plan, NULL);
    gpumem_stats st = GPUMEM_STATS_INIT;
    if (a.stats(a.ctx, &st) == GPUMEM_OK) r->peak_reserved = st.peak_bytes_reserved;
  }
  for (int t = 0; t < nt; t++) {
    if (jobs[t].stream) GB_CHECKED(gpumem_stream_destroy(jobs[t].stream));
    gb_plan_free(&jobs[t].plan);
  }
  free(jobs);
  GB_CHECKED(gpumem_allocator_destroy(&a));
}

/* The runner of every planned workload: each row described, planned,
 * timed and reported as it finishes. */
static void run_planned(gb_bench *b, const gb_workload *w, const char *name) {
  double one_thread = 0;
  size_t rows = w->rows(b);
  for (size_t row = 0; row < rows; row++) {
    gb_row spec = {.threads = 1};
    w->describe(b, row, &spec);
    gb_result r;
    gb_result_init(&r, name, w->name);
    snprintf(r.params, sizeof r.params, "%s", spec.params);
    r.threads = spec.threads;
    r.host_memory = gb_host_allocator_known(name);
    if (w->flags & GB_WL_THREADED)
      run_threaded(b, w, row, &spec, name, &r, &one_thread);
    else
      run_single(b, w, row, &spec, name, &r);
    gb_report_row(b->report, &r);
  }
}

/* ---- first ---- */

static size_t first_rows(gb_bench *b) {
  (void)b;
  return 2;
}

/* A fresh allocator per repetition. Two rows: the first allocation (what a
 * process pays at start-up) and the median of the ones after it. */
static void run_first(gb_bench *b, const gb_workload *w, const char *name) {
  const gb_options *o = b->o;
  gb_result r1, r2;
  gb_result_init(&r1, name, w->name);
  gb_result_init(&r2, name, w->name);
  char sz[16];
  gb_size_text(o->first_size, sz, sizeof sz);
  snprintf(r1.params, sizeof r1.params, "size=%s, allocation 1", sz);
  snprintf(r2.params, sizeof r2.params, "size=%s, allocations 2..%zu", sz, o->first);
  double first[GB_MAX_REPS], later[GB_MAX_REPS];
  size_t peak_reserved = 0, done = 0;
  void **ptrs = calloc(o->first, sizeof *ptrs);
  double *rest = calloc(o->first, sizeof *rest);
  if (ptrs == NULL || rest == NULL) snprintf(r1.status, sizeof r1.status, "out of host memory");
  for (size_t rep = 0; ptrs != NULL && rest != NULL && rep < o->reps; rep++) {
    gpumem_allocator a = GPUMEM_ALLOCATOR_INIT;
    if (!open_allocator(b, name, &a, &r1)) break;
    size_t k = 0;
    bool ok = true;
    for (; k < o->first && ok; k++) {
      double t0 = gb_now_ns();
      ok = a.alloc(a.ctx, o->first_size, NULL, &ptrs[k]) == GPUMEM_OK;
      double dt = gb_now_ns() - t0;
      if (k == 0)
        first[done] = dt;
      else
        rest[k - 1] = dt;
    }
    if (!ok) {
      snprintf(r1.status, sizeof r1.status, "%s", gpumem_last_error());
      k--;
    }
    for (size_t j = 0; j < k; j++)
      a.free(a.ctx, ptrs[j], o->first_size, NULL);
    GB_CHECKED(gpumem_stream_synchronize(NULL));
    gpumem_stats stats = GPUMEM_STATS_INIT;
    if (a.stats(a.ctx, &stats) == GPUMEM_OK && stats.peak_bytes_reserved > peak_reserved)
      peak_reserved = stats.peak_bytes_reserved;
    GB_CHECKED(gpumem_allocator_destroy(&a));
    if (!ok) break;
    later[done++] = o->first > 1 ? gb_summarize(rest, o->first - 1).median : 0;
  }
  free(ptrs);
  free(rest);
  if (done == o->reps) {
    gb_result *rows[2] = {&r1, &r2};
    double *samples[2] = {first, later};
    for (int i = 0; i < 2; i++) {
      fill_timing(rows[i], samples[i], done, 1);
      rows[i]->peak_live = o->first * o->first_size;
      rows[i]->peak_reserved = peak_reserved;
    }
  } else {
    snprintf(r2.status, sizeof r2.status, "%s", r1.status);
  }
  gb_report_row(b->report, &r1);
  gb_report_row(b->report, &r2);
}

/* ---- grow: a device array made larger, four ways (grow.c) ---- */

/* realloc holds the old and the new block at once: the target is at most a
 * third of the free memory. */
static size_t grow_target(const gb_bench *b) {
  return b->o->grow_target <= b->memory_free / 3 ? b->o->grow_target : b->memory_free / 3;
}

static size_t grow_step(const gb_bench *b, size_t k) {
  size_t chunk = b->granularity;
  return (b->o->grow_steps[k] + chunk - 1) / chunk * chunk;
}

static size_t grow_rows(gb_bench *b) {
  size_t steps = 0, target = grow_target(b);
  for (size_t k = 0; k < b->o->ngrow_steps; k++)
    steps += target / grow_step(b, k) > 0;
  return (steps + 1) * GB_GROWER_COUNT;
}

static void grow_row(gb_bench *b, gb_grower g, const char *params, size_t per, size_t target,
                     bool batch, size_t step_or_n) {
  size_t iterations = b->o->batch_iterations;
  if (batch && g == GB_REALLOC) {
    size_t budget = gpumem_backend() == GPUMEM_BACKEND_HOST ? REALLOC_BATCH_BUDGET_HOST
                                                            : REALLOC_BATCH_BUDGET_GPU;
    size_t most = budget / (2 * step_or_n);
    if (most < REALLOC_BATCH_MIN_ITERATIONS) most = REALLOC_BATCH_MIN_ITERATIONS;
    if (iterations > most) iterations = most;
    per = 2 * iterations;
  }
  gb_result r;
  gb_result_init(&r, gb_grower_name(g), "grow");
  snprintf(r.params, sizeof r.params, "%s", params);
  double samples[GB_MAX_REPS];
  size_t done = 0, peak = 0;
  uint64_t calls = 0;
  for (size_t i = 0; i < b->o->warmup + b->o->reps; i++) {
    double t = batch ? gb_grow_batch(g, b->device, step_or_n, iterations, b->granularity, &calls,
                                     &peak, r.status, sizeof r.status)
                     : gb_grow_steps(g, b->device, target, step_or_n, b->granularity, &calls, &peak,
                                     r.status, sizeof r.status);
    if (t < 0) break;
    if (i >= b->o->warmup) samples[done++] = t / (double)per;
  }
  if (done == b->o->reps) {
    fill_timing(&r, samples, done, per);
    r.peak_live = batch ? step_or_n + 1 : target;
    r.peak_reserved = peak;
    r.has_calls = true;
    r.calls = calls;
  }
  gb_report_row(b->report, &r);
}

static void run_grow(gb_bench *b, const gb_workload *w, const char *allocator) {
  (void)w;
  (void)allocator;
  size_t chunk = b->granularity, target = grow_target(b);
  char tsz[16], ssz[16], params[96];
  if (target < b->o->grow_target) {
    char asked[16];
    gb_size_text(b->o->grow_target, asked, sizeof asked);
    gb_size_text(target, tsz, sizeof tsz);
    gb_note(b->report,
            "grow: --grow-target lowered from %s to %s, a third of the device's free memory "
            "(realloc holds the old and the new array at once)",
            asked, tsz);
  }
  for (size_t k = 0; k < b->o->ngrow_steps; k++) {
    size_t step = grow_step(b, k), t = target / step * step;
    gb_size_text(t, tsz, sizeof tsz);
    gb_size_text(step, ssz, sizeof ssz);
    if (t == 0) { /* a step larger than the target: nothing to measure */
      gb_size_text(target, tsz, sizeof tsz);
      gb_note(b->report, "grow: step %s skipped: larger than the target %s", ssz, tsz);
      continue;
    }
    snprintf(params, sizeof params, "0->%s step=%s", tsz, ssz);
    for (int g = 0; g < GB_GROWER_COUNT; g++)
      grow_row(b, (gb_grower)g, params, t / step, t, false, step);
  }
  size_t n = b->o->batch < target ? b->o->batch : target;
  n = n / chunk * chunk;
  if (n < chunk) n = chunk;
  gb_size_text(n, tsz, sizeof tsz);
  snprintf(params, sizeof params, "N=%s +-1", tsz);
  for (int g = 0; g < GB_GROWER_COUNT; g++)
    grow_row(b, (gb_grower)g, params, 2 * b->o->batch_iterations, n, true, n);
}

/* ---- the table ---- */

#define READS_RANDOM                                                                             \
  (GB_BIT(GB_OPT_OPS) | GB_BIT(GB_OPT_MAX_SIZE) | GB_BIT(GB_OPT_DIST) | GB_BIT(GB_OPT_P_ALLOC) | \
   GB_BIT(GB_OPT_CAP))

const gb_workload gb_workloads[] = {
    {"pairs", "alloc+free of one size, for each size (malloc, mimalloc: host yardsticks)",
     GB_BIT(GB_OPT_SIZES) | GB_BIT(GB_OPT_PAIRS) | GB_BIT(GB_OPT_LIVE), GB_WL_DEFAULT | GB_WL_HOST,
     pairs_rows, pairs_describe, pairs_plan, NULL},
    {"random", "RMM's random_allocations: random sizes, allocate with P else free, capped",
     READS_RANDOM, GB_WL_DEFAULT, one_row, random_describe, random_plan, NULL},
    {"threads", "T threads, each on its own stream, running pairs or random; scaling",
     GB_BIT(GB_OPT_THREADS) | GB_BIT(GB_OPT_THREAD_WORKLOAD) | GB_BIT(GB_OPT_THREAD_SIZE) |
         GB_BIT(GB_OPT_THREAD_PAIRS) | READS_RANDOM,
     GB_WL_DEFAULT | GB_WL_THREADED, threads_rows, threads_describe, threads_plan, NULL},
    {"streams", "round-robin over streams, each block written on its stream, freed behind it",
     GB_BIT(GB_OPT_STREAMS), GB_WL_DEFAULT, one_row, streams_describe, streams_plan, NULL},
    {"replay", "a recorded trace (op,id,size,stream), peak reserved against peak live",
     GB_BIT(GB_OPT_TRACE), 0, one_row, replay_describe, replay_plan, NULL},
    {"first", "the first allocation of a fresh allocator, and the ones after it",
     GB_BIT(GB_OPT_FIRST), GB_WL_DEFAULT, first_rows, NULL, NULL, run_first},
    {"grow", "an array grown by steps and N+-1: buffer-exact, buffer-geometric, realloc, vmm-floor",
     GB_BIT(GB_OPT_GROW_TARGET) | GB_BIT(GB_OPT_GROW_STEPS) | GB_BIT(GB_OPT_BATCH) |
         GB_BIT(GB_OPT_BATCH_ITERATIONS),
     GB_WL_DEFAULT | GB_WL_ONCE, grow_rows, NULL, NULL, run_grow},
};
const size_t gb_workload_count = sizeof gb_workloads / sizeof gb_workloads[0];

_Static_assert(sizeof gb_workloads / sizeof gb_workloads[0] <= 32,
               "gb_options.workloads holds one bit per workload");

int gb_workload_find(const char *name) {
  for (size_t w = 0; w < gb_workload_count; w++)
    if (strcmp(gb_workloads[w].name, name) == 0) return (int)w;
  return -1;
}

static bool selected(const gb_bench *b, size_t w) {
  return (b->o->workloads >> w) & 1u;
}

/* Whether allocator `name` runs workload `w` (grow has growers instead;
 * the host yardsticks run only the workloads marked for them). */
static bool runs(const char *name, const gb_workload *w) {
  if (w->flags & GB_WL_ONCE) return false;
  return !gb_host_allocator_known(name) || (w->flags & GB_WL_HOST);
}

size_t gb_rows_total(gb_bench *b) {
  size_t total = 0;
  for (size_t w = 0; w < gb_workload_count; w++) {
    const gb_workload *wl = &gb_workloads[w];
    if (!selected(b, w)) continue;
    if (wl->flags & GB_WL_ONCE) total += wl->rows(b);
    for (size_t i = 0; i < b->o->nallocators; i++)
      if (runs(b->o->allocators[i], wl)) total += wl->rows(b);
  }
  return total;
}

int gb_allocator_width(const gb_options *o) {
  size_t width = strlen("allocator");
  for (size_t i = 0; i < o->nallocators; i++)
    if (strlen(o->allocators[i]) > width) width = strlen(o->allocators[i]);
  int grow = gb_workload_find("grow");
  for (int g = 0; grow >= 0 && ((o->workloads >> grow) & 1u) && g < GB_GROWER_COUNT; g++)
    if (strlen(gb_grower_name((gb_grower)g)) > width) width = strlen(gb_grower_name((gb_grower)g));
  return (int)width;
}

/* An allocator named on the command line that some chosen workload does
 * not run (a host yardstick outside pairs) is said to be left out. */
static void note_left_out(gb_bench *b, const char *name) {
  char skipped[256] = "";
  for (size_t w = 0; w < gb_workload_count; w++) {
    const gb_workload *wl = &gb_workloads[w];
    if (!selected(b, w) || (wl->flags & GB_WL_ONCE) || runs(name, wl)) continue;
    size_t used = strlen(skipped);
    snprintf(skipped + used, sizeof skipped - used, "%s%s", used ? ", " : "", wl->name);
  }
  if (skipped[0] != '\0')
    gb_note(b->report, "%s (host memory) runs in pairs only: left out of %s", name, skipped);
}

void gb_run(gb_bench *b) {
  const gb_options *o = b->o;
  for (size_t i = 0; i < o->nallocators; i++) {
    const char *name = o->allocators[i];
    if ((o->given & GB_BIT(GB_OPT_ALLOCATORS)) && gb_host_allocator_known(name))
      note_left_out(b, name);
    for (size_t w = 0; w < gb_workload_count; w++) {
      const gb_workload *wl = &gb_workloads[w];
      if (!selected(b, w) || !runs(name, wl)) continue;
      (wl->run ? wl->run : run_planned)(b, wl, name);
    }
  }
  for (size_t w = 0; w < gb_workload_count; w++) {
    const gb_workload *wl = &gb_workloads[w];
    if (selected(b, w) && (wl->flags & GB_WL_ONCE)) wl->run(b, wl, NULL);
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

/* One row's plans as files; its line in the index. */
static bool export_row(gb_bench *b, const gb_workload *w, size_t row, const char *dir,
                       FILE *index) {
  gb_row spec = {.threads = 1};
  w->describe(b, row, &spec);
  if (spec.live > 0) { /* a peer replays the plan alone, not the background */
    fprintf(stderr, "gpumem-bench: %s %s not exported: a peer cannot hold the live blocks\n",
            w->name, spec.params);
    return true;
  }
  char files[2048] = "", file[64], why[256];
  size_t total = 0;
  bool ok = true;
  for (int t = 0; ok && t < spec.threads; t++) {
    gb_plan p = {0};
    if (w->flags & GB_WL_THREADED)
      snprintf(file, sizeof file, "%s-%zu-%d.csv", w->name, row, t);
    else
      snprintf(file, sizeof file, "%s-%zu.csv", w->name, row);
    ok = w->plan(b, row, t, &p, why, sizeof why);
    if (!ok) fprintf(stderr, "gpumem-bench: %s: %s\n", w->name, why);
    ok = ok && export_one(dir, file, &p);
    total += p.count;
    size_t used = strlen(files);
    snprintf(files + used, sizeof files - used, "%s%s", t ? "," : "", file);
    if (!spec.shared_plan) gb_plan_free(&p);
  }
  fprintf(index, "%s\t%s\t%d\t%zu\t%d\t%s\n", w->name, spec.params, spec.threads,
          spec.per ? spec.per : total, spec.touch ? 1 : 0, files);
  return ok;
}

int gb_export_plans(gb_bench *b, const char *dir) {
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
    fprintf(stderr, "gpumem-bench: cannot create %s: %s\n", dir, strerror(errno));
    return GB_EXIT_USAGE;
  }
  char path[4096];
  snprintf(path, sizeof path, "%s/plans.tsv", dir);
  FILE *index = fopen(path, "w");
  if (index == NULL) {
    fprintf(stderr, "gpumem-bench: cannot write %s: %s\n", path, strerror(errno));
    return GB_EXIT_USAGE;
  }
  fprintf(index, "workload\tparams\tthreads\tper\ttouch\tfiles\n");
  bool ok = true;
  for (size_t w = 0; ok && w < gb_workload_count; w++) {
    const gb_workload *wl = &gb_workloads[w];
    if (!selected(b, w) || wl->plan == NULL) continue;
    size_t rows = wl->rows(b);
    for (size_t row = 0; ok && row < rows; row++)
      ok = export_row(b, wl, row, dir, index);
  }
  if (fclose(index) != 0) ok = false;
  if (ok) printf("gpumem-bench: plans written to %s (index: plans.tsv)\n", dir);
  return ok ? GB_EXIT_OK : GB_EXIT_FAILED;
}
