/* synth.c: synthetic allocation traces of documented families.
 *
 * One recorded trace (resnet50_train) is one point; tuning an allocator on
 * it alone over-fits. `gpumem-bench synth` writes traces in the replay
 * format (op,id,size,stream, see trace_file.c) from a small model of what a
 * deep-learning framework asks of its allocator, for four families:
 *
 * training    A transformer-like stack trained for `steps` steps at a fixed
 *             sequence length. Weights (per layer: qkv 3H^2, out H^2, two
 *             MLP matrices 4H^2 each, fp16) are allocated first and live to
 *             the end. Each step runs forward (per layer it saves the layer
 *             input B*S*H*2 bytes, the attention probabilities B*heads*S^2*2,
 *             the MLP activation B*S*4H*2, and allocates and frees a few
 *             temporaries), then a logits tensor and the loss, then backward
 *             in reverse layer order: a gradient of the activation is
 *             allocated, the saved tensors of that layer are freed (last
 *             saved first), and at the first step each weight gets its
 *             gradient (persistent from then on, like .grad). The optimizer
 *             step (Adam) allocates two fp32 moments per weight at the first
 *             step (persistent) and a per-weight temporary each step.
 * varlen      The same, but each step draws a sequence length uniformly in
 *             [seq/8, seq] (a multiple of 8): activations scale with the
 *             length, attention with its square, so block sizes change from
 *             step to step as with variable-length batches.
 * generation  Inference: `steps` requests. Each draws a prompt length in
 *             [seq/4, seq] and a token count in [tokens/2, tokens]. The
 *             prefill allocates a K and a V cache per layer for the prompt
 *             (B*len*H*2 bytes each) and temporaries; then every token, per
 *             layer, grows K and V like torch.cat (allocate len+1, free the
 *             old block) and allocates and frees small temporaries (q, the
 *             attention row, the MLP activation). The caches are freed at the
 *             end of the request.
 * mixture     varlen training with a generation request (an evaluation)
 *             after every `period` steps, sharing the weights.
 *
 * Sizes are rounded up to 512 bytes as PyTorch's caching allocator does, and
 * small temporaries get a random size jitter, so seeds differ also for
 * training. The defaults (layers 16, batch 4, hidden 1024, heads 8, seq
 * 1024, tokens 32, period 4, steps by family) give peaks of a few GiB and a
 * few thousand to about 20 000 operations, so a replay on the host backend
 * takes seconds. Everything allocated is freed by the end of the trace (the
 * weights, gradients and optimizer state last), so replays balance without
 * the reader's end-of-trace frees.
 *
 * The generator is deterministic: splitmix64 seeded with --seed, no rand(),
 * no floating point in any size, so a seed gives the same bytes everywhere.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "harness.h"

#define SYNTH_ROUND 512 /* PyTorch's caching allocator rounds to 512 B */
#define FP16        2
#define FP32        4
/* Most layers / weights per layer tracked; bounds the arrays below. */
#define SYNTH_MAX_LAYERS  256
#define WEIGHTS_PER_LAYER 4
#define SAVED_PER_LAYER   3

static const char *const family_names[GB_SYNTH_COUNT] = {"training", "varlen", "generation",
                                                         "mixture"};

const char *gb_synth_family_name(gb_synth_family f) {
  return (unsigned)f < GB_SYNTH_COUNT ? family_names[f] : "?";
}

bool gb_synth_family_parse(const char *name, gb_synth_family *f) {
  for (int i = 0; i < GB_SYNTH_COUNT; i++) {
    if (strcmp(name, family_names[i]) == 0) {
      *f = (gb_synth_family)i;
      return true;
    }
  }
  return false;
}

void gb_synth_defaults(gb_synth_config *c, gb_synth_family family) {
  memset(c, 0, sizeof *c);
  c->family = family;
  c->seed = 1;
  c->layers = 16;
  c->batch = 4;
  c->hidden = 1024;
  c->heads = 8;
  c->seq = 1024;
  c->tokens = 32;
  c->period = 4;
  switch (family) {
  case GB_SYNTH_TRAINING:
  case GB_SYNTH_VARLEN:
    c->steps = 30;
    break;
  case GB_SYNTH_GENERATION:
    c->steps = 4;
    break;
  case GB_SYNTH_MIXTURE:
  default:
    c->steps = 12;
    break;
  }
}

/* ---- the generator's state ---- */

typedef struct tensor {
  uint32_t id;
  size_t size;
} tensor;

typedef struct gen {
  gb_plan *plan;
  const gb_synth_config *c;
  uint64_t rng;
  uint32_t next_id;
  bool ok;
  tensor weights[SYNTH_MAX_LAYERS][WEIGHTS_PER_LAYER];
  tensor grads[SYNTH_MAX_LAYERS][WEIGHTS_PER_LAYER];
  tensor moments[SYNTH_MAX_LAYERS][WEIGHTS_PER_LAYER][2];
  bool have_grads, have_moments;
} gen;

static uint64_t next_random(uint64_t *state) { /* splitmix64 */
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* Uniform in [lo, hi] (lo <= hi). */
static size_t uniform(gen *g, size_t lo, size_t hi) {
  return lo + (size_t)(next_random(&g->rng) % (uint64_t)(hi - lo + 1));
}

static tensor t_alloc(gen *g, size_t bytes) {
  size_t size = (bytes + SYNTH_ROUND - 1) / SYNTH_ROUND * SYNTH_ROUND;
  if (size == 0) size = SYNTH_ROUND;
  tensor t = {g->next_id++, size};
  if (!gb_plan_push(g->plan, (gb_op){GB_ALLOC, 0, t.id, t.size})) g->ok = false;
  return t;
}

static void t_free(gen *g, tensor t) {
  if (!gb_plan_push(g->plan, (gb_op){GB_FREE, 0, t.id, t.size})) g->ok = false;
}

/* A temporary allocated and freed at once, `bytes` jittered by up to 1/8. */
static void temporary(gen *g, size_t bytes) {
  size_t jitter = uniform(g, 0, bytes / 8);
  t_free(g, t_alloc(g, bytes + jitter));
}

/* Per-layer weight sizes in bytes (fp16): qkv, out, mlp up, mlp down. */
static size_t weight_bytes(const gb_synth_config *c, int w) {
  static const size_t mult[WEIGHTS_PER_LAYER] = {3, 1, 4, 4};
  return mult[w] * c->hidden * c->hidden * FP16;
}

static void alloc_weights(gen *g) {
  for (size_t l = 0; l < g->c->layers; l++)
    for (int w = 0; w < WEIGHTS_PER_LAYER; w++)
      g->weights[l][w] = t_alloc(g, weight_bytes(g->c, w));
}

/* One training step at sequence length `len`. */
static void train_step(gen *g, size_t len) {
  const gb_synth_config *c = g->c;
  size_t act = c->batch * len * c->hidden * FP16;
  size_t attn = c->batch * c->heads * len * len * FP16;
  tensor saved[SYNTH_MAX_LAYERS][SAVED_PER_LAYER];
  for (size_t l = 0; l < c->layers; l++) { /* forward */
    saved[l][0] = t_alloc(g, act);         /* layer input */
    temporary(g, 3 * act);                 /* qkv projection (kept as views: freed) */
    saved[l][1] = t_alloc(g, attn);        /* attention probabilities */
    temporary(g, attn);                    /* scores before softmax */
    saved[l][2] = t_alloc(g, 4 * act);     /* MLP activation */
    for (size_t k = uniform(g, 1, 3); k > 0; k--)
      temporary(g, uniform(g, 1, 64) * 1024);
  }
  tensor logits = t_alloc(g, c->batch * len * 8192 * FP16);
  tensor loss = t_alloc(g, 4);
  t_free(g, loss);
  tensor dlogits = t_alloc(g, logits.size);
  t_free(g, logits);
  tensor dx = t_alloc(g, act);
  t_free(g, dlogits);
  for (size_t l = c->layers; l-- > 0;) { /* backward, reverse order */
    tensor dmlp = t_alloc(g, 4 * act);
    t_free(g, saved[l][2]);
    temporary(g, attn); /* gradient of the scores */
    t_free(g, saved[l][1]);
    tensor dnext = t_alloc(g, act);
    t_free(g, saved[l][0]);
    t_free(g, dmlp);
    t_free(g, dx);
    dx = dnext;
    if (!g->have_grads)
      for (int w = WEIGHTS_PER_LAYER; w-- > 0;)
        g->grads[l][w] = t_alloc(g, weight_bytes(c, w));
  }
  t_free(g, dx);
  g->have_grads = true;
  for (size_t l = 0; l < c->layers; l++) { /* optimizer (Adam) */
    for (int w = 0; w < WEIGHTS_PER_LAYER; w++) {
      size_t fp32 = weight_bytes(c, w) / FP16 * FP32;
      if (!g->have_moments) {
        g->moments[l][w][0] = t_alloc(g, fp32);
        g->moments[l][w][1] = t_alloc(g, fp32);
      }
      temporary(g, weight_bytes(c, w)); /* the update before it is applied */
    }
  }
  g->have_moments = true;
}

/* One generation request: prefill, then token steps growing the KV cache. */
static void generate(gen *g) {
  const gb_synth_config *c = g->c;
  size_t len = uniform(g, c->seq / 4 > 0 ? c->seq / 4 : 1, c->seq);
  size_t tokens = uniform(g, c->tokens / 2 > 0 ? c->tokens / 2 : 1, c->tokens);
  size_t row = c->batch * c->hidden * FP16; /* one token of K or V */
  tensor k[SYNTH_MAX_LAYERS], v[SYNTH_MAX_LAYERS];
  for (size_t l = 0; l < c->layers; l++) { /* prefill */
    tensor x = t_alloc(g, len * row);
    k[l] = t_alloc(g, len * row);
    v[l] = t_alloc(g, len * row);
    temporary(g, c->batch * c->heads * len * len * FP16);
    temporary(g, 4 * len * row);
    t_free(g, x);
  }
  for (size_t t = 0; t < tokens; t++, len++) {
    for (size_t l = 0; l < c->layers; l++) {
      temporary(g, 3 * row);                   /* q, k, v of the token */
      tensor nk = t_alloc(g, (len + 1) * row); /* torch.cat([k, new]) */
      t_free(g, k[l]);
      k[l] = nk;
      tensor nv = t_alloc(g, (len + 1) * row);
      t_free(g, v[l]);
      v[l] = nv;
      temporary(g, c->batch * c->heads * (len + 1) * FP16); /* attention row */
      temporary(g, 4 * row);                                /* MLP activation */
    }
    temporary(g, c->batch * 8192 * FP16); /* logits of the token */
  }
  for (size_t l = c->layers; l-- > 0;) {
    t_free(g, v[l]);
    t_free(g, k[l]);
  }
}

static size_t varlen_len(gen *g) {
  size_t lo = g->c->seq / 8 / 8 * 8;
  if (lo < 8) lo = 8;
  size_t hi = g->c->seq < lo ? lo : g->c->seq;
  return uniform(g, lo / 8, hi / 8) * 8;
}

bool gb_synth_plan(gb_plan *plan, const gb_synth_config *c, char *why, size_t why_len) {
  if ((unsigned)c->family >= GB_SYNTH_COUNT) {
    snprintf(why, why_len, "unknown family %d", (int)c->family);
    return false;
  }
  if (c->layers == 0 || c->layers > SYNTH_MAX_LAYERS) {
    snprintf(why, why_len, "--layers %zu is out of range 1..%d", c->layers, SYNTH_MAX_LAYERS);
    return false;
  }
  const struct {
    const char *name;
    size_t value;
  } positive[] = {{"--steps", c->steps},  {"--batch", c->batch}, {"--hidden", c->hidden},
                  {"--heads", c->heads},  {"--seq", c->seq},     {"--tokens", c->tokens},
                  {"--period", c->period}};
  for (size_t i = 0; i < sizeof positive / sizeof positive[0]; i++) {
    if (positive[i].value == 0) {
      snprintf(why, why_len, "%s must be at least 1", positive[i].name);
      return false;
    }
  }
  /* Keep every size far from overflow: the largest tensor is the attention
   * (batch*heads*seq^2*2) or a weight (4*hidden^2*2); 1 TiB is a bound
   * no real GPU reaches. */
  const double tib = 1099511627776.0;
  if ((double)c->batch * (double)c->heads * (double)c->seq * (double)c->seq * FP16 > tib ||
      (double)c->hidden * (double)c->hidden * 4 * FP32 > tib ||
      (double)c->batch * (double)(c->seq + c->tokens) * (double)c->hidden * 4 * FP16 > tib) {
    snprintf(why, why_len,
             "tensors over 1 TiB (batch %zu, heads %zu, seq %zu, hidden %zu): parameters too large",
             c->batch, c->heads, c->seq, c->hidden);
    return false;
  }
  gen *g = calloc(1, sizeof *g);
  if (g == NULL) {
    snprintf(why, why_len, "out of host memory");
    return false;
  }
  g->plan = plan;
  g->c = c;
  g->rng = c->seed;
  g->ok = true;
  alloc_weights(g);
  for (size_t s = 0; s < c->steps && g->ok; s++) {
    switch (c->family) {
    case GB_SYNTH_TRAINING:
      train_step(g, c->seq);
      break;
    case GB_SYNTH_VARLEN:
      train_step(g, varlen_len(g));
      break;
    case GB_SYNTH_GENERATION:
      generate(g);
      break;
    default: /* mixture */
      train_step(g, varlen_len(g));
      if ((s + 1) % c->period == 0) generate(g);
      break;
    }
  }
  /* Teardown: optimizer state, gradients, weights. */
  for (size_t l = c->layers; l-- > 0;) {
    for (int w = WEIGHTS_PER_LAYER; w-- > 0;) {
      if (g->have_moments) {
        t_free(g, g->moments[l][w][1]);
        t_free(g, g->moments[l][w][0]);
      }
      if (g->have_grads) t_free(g, g->grads[l][w]);
      t_free(g, g->weights[l][w]);
    }
  }
  if (plan->streams == 0) plan->streams = 1;
  bool ok = g->ok;
  free(g);
  if (!ok) snprintf(why, why_len, "out of host memory for the plan");
  return ok;
}

bool gb_synth_write(const gb_plan *plan, const char *path, char *why, size_t why_len) {
  size_t n = strlen(path);
  bool gz = n > 3 && strcmp(path + n - 3, ".gz") == 0;
  gzFile f = gzopen(path, gz ? "wb6" : "wbT"); /* T: plain, no gzip */
  if (f == NULL) {
    snprintf(why, why_len, "cannot write %s: %s", path, strerror(errno ? errno : EIO));
    return false;
  }
  bool ok = gzprintf(f, "op,id,size,stream\n") > 0;
  for (size_t i = 0; ok && i < plan->count; i++) {
    const gb_op *op = &plan->ops[i];
    ok = gzprintf(f, "%c,%" PRIu32 ",%zu,%u\n", op->kind == GB_ALLOC ? 'a' : 'f', op->slot,
                  op->size, (unsigned)op->stream) > 0;
  }
  int errnum = 0;
  const char *zmsg = ok ? NULL : gzerror(f, &errnum);
  int closed = gzclose(f);
  if (!ok || closed != Z_OK) {
    snprintf(why, why_len, "cannot write %s: %s", path,
             errnum == Z_ERRNO || zmsg == NULL ? strerror(errno ? errno : EIO) : zmsg);
    return false;
  }
  return true;
}

/* ---- the command: gpumem-bench synth ---- */

static void synth_usage(FILE *f) {
  gb_synth_config d;
  gb_synth_defaults(&d, GB_SYNTH_TRAINING);
  fprintf(f,
          "usage: gpumem-bench synth --family F [--seed N] [--steps S] [params] --out FILE\n"
          "\n"
          "Writes a synthetic allocation trace (op,id,size,stream; gzip if FILE ends in .gz)\n"
          "for `gpumem-bench replay --trace FILE`. The same parameters and seed give the\n"
          "same trace. Sizes are rounded up to 512 B; everything is freed by the end.\n"
          "\n"
          "families:\n"
          "  training    fixed-length transformer training: weights first; per step\n"
          "              forward saves input, attention (B*heads*S^2) and MLP activations\n"
          "              per layer, backward frees them in reverse layer order; grads and\n"
          "              Adam moments allocated at step 1 and kept; per-step temporaries\n"
          "  varlen      training with a random sequence length in [seq/8, seq] per step:\n"
          "              activations scale with it, attention with its square\n"
          "  generation  `steps` requests: prompt length in [seq/4, seq], tokens in\n"
          "              [tokens/2, tokens]; KV cache per layer grown each token by\n"
          "              allocating len+1 and freeing the old block (torch.cat), plus\n"
          "              small temporaries per layer and token\n"
          "  mixture     varlen training with a generation request every `period` steps\n"
          "\n"
          "options (defaults):\n"
          "  --family F     training, varlen, generation, mixture (required)\n"
          "  --seed N       PRNG seed, splitmix64 (%" PRIu64 ")\n"
          "  --steps S      training steps, or requests for generation (30 training and\n"
          "                 varlen, 4 generation, 12 mixture)\n"
          "  --layers L     transformer layers (%zu)\n"
          "  --batch B      batch size (%zu)\n"
          "  --hidden H     hidden size; fp16 tensors (%zu)\n"
          "  --heads N      attention heads (%zu)\n"
          "  --seq S        sequence length; the maximum for varlen and prompts (%zu)\n"
          "  --tokens T     most generated tokens per request (%zu)\n"
          "  --period P     mixture: a generation request every P steps (%zu)\n"
          "  --out FILE     where to write the trace (required)\n",
          d.seed, d.layers, d.batch, d.hidden, d.heads, d.seq, d.tokens, d.period);
}

static bool parse_u64_arg(const char *text, uint64_t *out) {
  if (text == NULL || *text < '0' || *text > '9') return false;
  errno = 0;
  char *end;
  unsigned long long v = strtoull(text, &end, 10);
  if (errno != 0 || *end != '\0') return false;
  *out = v;
  return true;
}

/* Parses synth's arguments (argv[0] is "synth") into `c` and `out`. Returns
 * 0 to go on, 1 after --help, 2 on bad input (said on stderr). */
int gb_synth_parse(int argc, char **argv, gb_synth_config *c, const char **out) {
  gb_synth_config given;
  memset(&given, 0, sizeof given);
  bool have_family = false;
  *out = NULL;
  gb_synth_family family = GB_SYNTH_TRAINING;
  /* First pass: the family (the defaults depend on it). */
  for (int i = 1; i + 1 < argc; i++) {
    if (strcmp(argv[i], "--family") == 0) {
      if (!gb_synth_family_parse(argv[i + 1], &family)) {
        fprintf(stderr,
                "gpumem-bench synth: unknown family (training, varlen, generation, mixture): "
                "'%s'\n",
                argv[i + 1]);
        return 2;
      }
      have_family = true;
    }
  }
  gb_synth_defaults(c, family);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      synth_usage(stdout);
      return 1;
    }
    struct {
      const char *name;
      size_t *field;
    } counts[] = {{"--steps", &c->steps},   {"--layers", &c->layers}, {"--batch", &c->batch},
                  {"--hidden", &c->hidden}, {"--heads", &c->heads},   {"--seq", &c->seq},
                  {"--tokens", &c->tokens}, {"--period", &c->period}};
    bool known = strcmp(a, "--family") == 0 || strcmp(a, "--seed") == 0 || strcmp(a, "--out") == 0;
    for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++)
      if (strcmp(a, counts[k].name) == 0) known = true;
    if (!known) {
      fprintf(stderr, "gpumem-bench synth: unknown option: '%s'\n", a);
      return 2;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "gpumem-bench synth: missing value after: '%s'\n", a);
      return 2;
    }
    const char *v = argv[++i];
    if (strcmp(a, "--family") == 0) continue;
    if (strcmp(a, "--out") == 0) {
      *out = v;
      continue;
    }
    uint64_t n;
    if (!parse_u64_arg(v, &n) || n > SIZE_MAX) {
      fprintf(stderr, "gpumem-bench synth: %s wants a whole number: '%s'\n", a, v);
      return 2;
    }
    if (strcmp(a, "--seed") == 0) {
      c->seed = n;
      continue;
    }
    for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++)
      if (strcmp(a, counts[k].name) == 0) *counts[k].field = (size_t)n;
  }
  if (!have_family) {
    fprintf(stderr, "gpumem-bench synth: --family F is required (training, varlen, generation, "
                    "mixture)\n");
    return 2;
  }
  if (*out == NULL) {
    fprintf(stderr, "gpumem-bench synth: --out FILE is required\n");
    return 2;
  }
  return 0;
}

int gb_synth_main(int argc, char **argv) {
  gb_synth_config c;
  const char *out;
  int rc = gb_synth_parse(argc, argv, &c, &out);
  if (rc != 0) return rc == 1 ? 0 : 2;
  gb_plan plan = {0};
  char why[512];
  if (!gb_synth_plan(&plan, &c, why, sizeof why)) {
    fprintf(stderr, "gpumem-bench synth: %s\n", why);
    gb_plan_free(&plan);
    return 2;
  }
  if (!gb_synth_write(&plan, out, why, sizeof why)) {
    fprintf(stderr, "gpumem-bench synth: %s\n", why);
    gb_plan_free(&plan);
    return 2;
  }
  char peak[16];
  gb_size_text(gb_plan_live_curve(&plan, NULL), peak, sizeof peak);
  printf("gpumem-bench synth: wrote %s: %s seed %" PRIu64 ", %zu operations, peak live %s\n", out,
         gb_synth_family_name(c.family), c.seed, plan.count, peak);
  gb_plan_free(&plan);
  return 0;
}
