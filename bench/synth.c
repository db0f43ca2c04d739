/* synth.c: synthetic allocation traces of documented families.
 *
 * One recorded trace (resnet50_train) is one point; tuning an allocator on
 * it alone over-fits. `gpumem-bench synth` writes traces in the replay
 * format (op,id,size,stream, see trace_file.c) from a small model of what a
 * deep-learning framework asks of its allocator, for five families (below).
 *
 * The defaults are chosen to reproduce the patterns that make real
 * PyTorch workloads waste memory, not to suit any allocator: on recorded
 * transformer training, variable-length inference and generation the arena
 * reached peak reserved / peak live 1.08-1.21 and PyTorch with expandable
 * segments 1.07-1.08, while gentler earlier defaults gave <= 1.02 here. The
 * model is a 16-layer fp16 transformer, hidden 1024, 16 heads, a 32000-token
 * vocabulary (embedding and LM head 62.5 MiB each in fp16): weights of
 * 4 KiB (layer norms) to 64 MiB, as a 300M-parameter model has.
 *
 * training    Mixed-precision training as torch.autocast + AdamW does it.
 *             Weights are fp32 masters, allocated first. `steps` counts
 *             micro-batches, two per optimizer step (gradient accumulation:
 *             the first allocates each weight's .grad in backward, the
 *             second allocates its gradient and adds it in place, and only
 *             the second all-reduces and steps). Each micro-batch draws a
 *             padded length in [seq/2, seq] (a multiple of 64: dynamic
 *             padding to the longest sequence of the micro-batch) and, one
 *             step in four, a micro-batch one short (the last batch of an
 *             accumulation round). Forward, per layer: autocast's fp16
 *             copies of the four matmul weights (saved for backward, so
 *             they live until then, interleaved with activations), layer
 *             norm statistics, q/k/v (3*B*S*H*2), the scores (a temporary)
 *             and the attention probabilities B*heads*S^2*2, the context,
 *             the MLP up and GELU outputs (4*B*S*H*2 each); then the logits
 *             in fp16 and their fp32 log-softmax (B*S*32000*4). Backward in
 *             reverse layer order frees each layer's saved tensors after
 *             using them and allocates the weight gradients as it goes
 *             (fp32, zero_grad(set_to_none=True) frees them after the
 *             optimizer step, so they are allocated anew every step); every
 *             25 MiB of gradients a DDP-style bucket buffer is allocated for
 *             the all-reduce and freed when the next one launches. Adam's two
 *             fp32 moments per weight appear at the first optimizer step
 *             (lazily, as torch.optim does) and stay; each weight gets a
 *             temporary update.
 * varlen      Variable-length inference (an encoder or a prefill server).
 *             Each of `steps` batches draws its padded length from a
 *             long-tailed (log-uniform) distribution in [16, seq]: as many
 *             lengths in 16-31 as in 1024-2047, so most batches are short
 *             and a few near the maximum. The batch holds up to `batch`
 *             sequences within a token budget of batch*seq/4, as dynamic
 *             batching by tokens does. Per layer: q, K and V (batch*len*H*2
 *             each), the scores and softmax (batch*heads*len^2*2), the
 *             context and the MLP (4x). The K and V of every layer and the
 *             output are kept after the batch (a cache handed on, a result
 *             waiting for its client) and released out of order: after each
 *             batch, random held batches are freed until at most a random
 *             number in [0, period] remain.
 * generation  Continuous batching (as vLLM or TGI schedule, without paged
 *             blocks: like Hugging Face's cache grown by torch.cat). `steps`
 *             requests, at most `batch` running at once, at most two
 *             admitted per decode step. A request draws a long-tailed prompt
 *             length in [16, seq] and a token count in [tokens/8, tokens];
 *             its prefill allocates its KV block (layers * 2 * H * 2 bytes
 *             a token, 64 KiB: K and V of every layer in one block, which
 *             keeps the operation count at a few per token) and prefill
 *             temporaries (q/k/v, scores heads*len^2*2, MLP, logits). Every
 *             decode step each running request grows its block by one
 *             token: allocate the larger block, free the old one (MiB-sized
 *             at these lengths), with an attention row temporary; the batch
 *             has its hidden state, MLP and fp32 logits temporaries.
 *             Requests finish at different times and free their block;
 *             waiting ones take their place.
 * mixture     training with an evaluation every `period` steps: a
 *             generation phase of 4 requests, 4 at once, over the training
 *             model's weights and optimizer state.
 * decode      Static-batch generation, as Hugging Face's generate() with
 *             its dynamic cache: `steps` calls, each on `batch` prompts
 *             padded to one length uniform in [seq/4, seq], decoding
 *             [tokens/2, tokens] tokens. The cache is a K and a V per layer
 *             (batch*len*H*2 bytes each, 16 MiB at 1024 tokens), and every
 *             token replaces each of them, layer after layer, with one a
 *             token longer (torch.cat): the same growth as generation's, but
 *             of 2*layers blocks of one size instead of one block per
 *             request of different sizes.
 *
 * Sizes are rounded up to 512 bytes as PyTorch's caching allocator does;
 * small temporaries get a random size jitter. The defaults give 15k-22k
 * operations (a replay takes seconds on the host backend) and peaks of
 * 0.8 GiB (generation), 1.6-1.8 GiB (varlen) and 6.1-6.7 GiB (training,
 * mixture). Everything allocated is freed by the end of the trace (the
 * optimizer state and weights last), so replays balance without the
 * reader's end-of-trace frees.
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
#define VOCAB       32000 /* a Llama-sized vocabulary: embedding and logits */
/* Most layers / weights per layer tracked; bounds the arrays below. */
#define SYNTH_MAX_LAYERS  256
#define WEIGHTS_PER_LAYER 6  /* qkv, out, MLP up, MLP down, two layer norms */
#define SAVED_PER_LAYER   11 /* 7 activations, 4 autocast weight copies */
#define SYNTH_MAX_SLOTS   64 /* generation: concurrent requests; varlen: batches kept */
#define ACCUM             2  /* training: micro-batches per optimizer step */
#define BUCKET_BYTES      ((size_t)25 << 20) /* DDP's default bucket_cap_mb */
/* The most operations a trace may have (160 MB of plan): parameters past it
 * are refused rather than left to exhaust host memory. */
#define SYNTH_MAX_OPS 10000000

static const char *const family_names[GB_SYNTH_COUNT] = {"training", "varlen", "generation",
                                                         "mixture", "decode"};

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
  c->hidden = 1024;
  c->heads = 16;
  c->period = 4;
  switch (family) {
  case GB_SYNTH_TRAINING:
    c->steps = 20;
    c->batch = 2;
    c->seq = 1024;
    c->tokens = 256;
    break;
  case GB_SYNTH_VARLEN:
    c->steps = 60;
    c->batch = 8;
    c->seq = 2048;
    c->tokens = 256;
    break;
  case GB_SYNTH_GENERATION:
    c->steps = 24;
    c->batch = 8;
    c->seq = 1024;
    c->tokens = 256;
    break;
  case GB_SYNTH_DECODE:
    c->steps = 4;
    c->batch = 8;
    c->seq = 1024;
    c->tokens = 48;
    break;
  case GB_SYNTH_MIXTURE:
  default:
    c->steps = 12;
    c->batch = 2;
    c->seq = 1024;
    c->tokens = 64;
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
  bool ok, too_long;
  tensor embed, head, gembed, ghead;
  tensor weights[SYNTH_MAX_LAYERS][WEIGHTS_PER_LAYER];
  tensor grads[SYNTH_MAX_LAYERS][WEIGHTS_PER_LAYER];
  tensor moments[SYNTH_MAX_LAYERS + 1][WEIGHTS_PER_LAYER][2]; /* + embed, head */
  size_t wbytes; /* bytes per parameter: fp32 masters in training, fp16 */
  bool have_moments;
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

/* Log-uniform in [lo, hi], a multiple of 8: every octave is as likely, so
 * short lengths are many and lengths near `hi` few (a long tail). */
static size_t long_tailed(gen *g, size_t lo, size_t hi) {
  if (lo < 8) lo = 8;
  if (hi < lo) hi = lo;
  int octaves = 0;
  while ((lo << (octaves + 1)) <= hi)
    octaves++;
  size_t base = lo << uniform(g, 0, (size_t)octaves);
  size_t top = base * 2 - 1 < hi ? base * 2 - 1 : hi;
  size_t len = uniform(g, base, top) / 8 * 8;
  return len < 8 ? 8 : len;
}

static tensor t_alloc(gen *g, size_t bytes) {
  if (g->plan->count >= SYNTH_MAX_OPS) {
    g->ok = false;
    g->too_long = true;
  }
  size_t size = (bytes + SYNTH_ROUND - 1) / SYNTH_ROUND * SYNTH_ROUND;
  if (size == 0) size = SYNTH_ROUND;
  tensor t = {g->next_id++, size};
  if (g->ok && !gb_plan_push(g->plan, (gb_op){GB_ALLOC, 0, t.id, t.size})) g->ok = false;
  return t;
}

static void t_free(gen *g, tensor t) {
  if (g->ok && !gb_plan_push(g->plan, (gb_op){GB_FREE, 0, t.id, t.size})) g->ok = false;
}

/* A temporary allocated and freed at once, `bytes` jittered by up to 1/8. */
static void temporary(gen *g, size_t bytes) {
  size_t jitter = uniform(g, 0, bytes / 8);
  t_free(g, t_alloc(g, bytes + jitter));
}

/* Per-layer weight parameters: qkv with bias, out, MLP up with bias, MLP
 * down, two layer norms (weight and bias). */
static size_t weight_params(const gb_synth_config *c, int w) {
  size_t h = c->hidden;
  switch (w) {
  case 0:
    return 3 * h * h + 3 * h;
  case 1:
    return h * h;
  case 2:
    return 4 * h * h + 4 * h;
  case 3:
    return 4 * h * h;
  default:
    return 2 * h;
  }
}

/* A weight's bytes in the model's storage type (g->wbytes per parameter). */
static size_t wsize(const gen *g, int w) {
  return weight_params(g->c, w) * g->wbytes;
}

static void alloc_weights(gen *g) {
  g->embed = t_alloc(g, (size_t)VOCAB * g->c->hidden * g->wbytes);
  for (size_t l = 0; l < g->c->layers; l++)
    for (int w = 0; w < WEIGHTS_PER_LAYER; w++)
      g->weights[l][w] = t_alloc(g, wsize(g, w));
  g->head = t_alloc(g, (size_t)VOCAB * g->c->hidden * g->wbytes);
}

/* Gradient buckets: every BUCKET_BYTES of weight gradients produced in
 * backward, a communication buffer of that size is allocated for the
 * all-reduce and freed when the next bucket launches (overlap). */
typedef struct buckets {
  size_t pending;
  tensor inflight;
  bool have;
} buckets;

static void bucket_add(gen *g, buckets *b, size_t bytes) {
  b->pending += bytes;
  if (b->pending < BUCKET_BYTES) return;
  tensor t = t_alloc(g, b->pending);
  if (b->have) t_free(g, b->inflight);
  b->inflight = t;
  b->have = true;
  b->pending = 0;
}

/* One training step: micro-batch `batch`, padded length `len`. */
/* A weight gradient from backward: the first micro-batch of an optimizer
 * step allocates .grad; later ones allocate the new gradient and add it in
 * place (AccumulateGrad), freeing it at once. */
static void grad(gen *g, tensor *slot, size_t size, bool first) {
  tensor t = t_alloc(g, size);
  if (first)
    *slot = t;
  else
    t_free(g, t);
}

/* One micro-batch: `batch` sequences padded to `len`; `first` and `last`
 * say where it stands in its optimizer step (gradient accumulation). */
static void train_step(gen *g, size_t batch, size_t len, bool first, bool last) {
  const gb_synth_config *c = g->c;
  size_t act = batch * len * c->hidden * FP16;
  size_t probs = batch * c->heads * len * len * FP16;
  size_t stats = batch * len * FP32 * 2; /* layer norm mean and rstd */
  tensor saved[SYNTH_MAX_LAYERS][SAVED_PER_LAYER];
  tensor x = t_alloc(g, act);              /* embedding output */
  for (size_t l = 0; l < c->layers; l++) { /* forward */
    saved[l][0] = x;                       /* layer input */
    for (int w = 0; w < 4; w++)            /* autocast's fp16 copies of the matmul weights */
      saved[l][7 + w] = t_alloc(g, weight_params(c, w) * FP16);
    saved[l][1] = t_alloc(g, stats);   /* ln1 statistics */
    saved[l][2] = t_alloc(g, 3 * act); /* q, k, v */
    temporary(g, probs);               /* scores before softmax */
    saved[l][3] = t_alloc(g, probs);   /* attention probabilities */
    saved[l][4] = t_alloc(g, act);     /* attention context */
    temporary(g, act);                 /* out projection before residual */
    saved[l][5] = t_alloc(g, 4 * act); /* MLP up */
    saved[l][6] = t_alloc(g, 4 * act); /* GELU output */
    x = t_alloc(g, act);               /* the residual stream, next input */
    for (size_t k = uniform(g, 0, 2); k > 0; k--)
      temporary(g, uniform(g, 1, 64) * 1024);
  }
  tensor head16 = t_alloc(g, (size_t)VOCAB * c->hidden * FP16);
  tensor logits = t_alloc(g, batch * len * VOCAB * FP16);
  tensor logp = t_alloc(g, batch * len * VOCAB * FP32); /* log_softmax in fp32 */
  t_free(g, x);
  tensor loss = t_alloc(g, 4);
  t_free(g, loss);
  tensor dlogits = t_alloc(g, logits.size);
  t_free(g, logp);
  t_free(g, logits);
  tensor dx = t_alloc(g, act);
  t_free(g, dlogits);
  t_free(g, head16);
  buckets b = {0};
  grad(g, &g->ghead, g->head.size, first);
  if (last) bucket_add(g, &b, g->head.size);
  for (size_t l = c->layers; l-- > 0;) { /* backward, reverse order */
    tensor dgelu = t_alloc(g, 4 * act);
    t_free(g, saved[l][6]);
    tensor dup = t_alloc(g, 4 * act);
    t_free(g, saved[l][5]);
    t_free(g, dgelu);
    t_free(g, saved[l][10]);
    t_free(g, saved[l][9]);
    grad(g, &g->grads[l][3], wsize(g, 3), first);
    grad(g, &g->grads[l][2], wsize(g, 2), first);
    t_free(g, dup);
    temporary(g, probs); /* gradient of the probabilities */
    t_free(g, saved[l][4]);
    t_free(g, saved[l][3]);
    tensor dqkv = t_alloc(g, 3 * act);
    t_free(g, saved[l][2]);
    grad(g, &g->grads[l][1], wsize(g, 1), first);
    grad(g, &g->grads[l][0], wsize(g, 0), first);
    tensor dnext = t_alloc(g, act);
    t_free(g, saved[l][8]);
    t_free(g, saved[l][7]);
    t_free(g, dqkv);
    t_free(g, saved[l][1]);
    t_free(g, saved[l][0]);
    grad(g, &g->grads[l][5], wsize(g, 5), first);
    grad(g, &g->grads[l][4], wsize(g, 4), first);
    t_free(g, dx);
    dx = dnext;
    for (int w = WEIGHTS_PER_LAYER; w-- > 0 && last;)
      bucket_add(g, &b, wsize(g, w));
  }
  grad(g, &g->gembed, g->embed.size, first);
  t_free(g, dx);
  if (!last) return; /* DDP's no_sync: no all-reduce, no optimizer step */
  bucket_add(g, &b, g->embed.size + BUCKET_BYTES); /* the last bucket goes now */
  t_free(g, b.inflight);
  /* Optimizer (Adam, foreach): moments at the first step, kept; one fp32
   * temporary per weight; then zero_grad(set_to_none=True) frees the grads. */
  for (size_t l = 0; l <= c->layers; l++) {
    for (int w = 0; w < WEIGHTS_PER_LAYER; w++) {
      bool edge = l == c->layers;
      if (edge && w >= 2) break;
      size_t wb = edge ? g->embed.size : wsize(g, w);
      size_t fp32 = wb / g->wbytes * FP32;
      if (!g->have_moments) {
        g->moments[l][w][0] = t_alloc(g, fp32);
        g->moments[l][w][1] = t_alloc(g, fp32);
      }
      temporary(g, fp32); /* the update before it is applied */
    }
  }
  g->have_moments = true;
  t_free(g, g->gembed);
  t_free(g, g->ghead);
  for (size_t l = 0; l < c->layers; l++)
    for (int w = 0; w < WEIGHTS_PER_LAYER; w++)
      t_free(g, g->grads[l][w]);
}

/* ---- generation: continuous batching ---- */

typedef struct request {
  tensor kv;        /* the K and V of every layer, one block */
  size_t len, left; /* tokens in the cache, tokens still to generate */
} request;

static void prefill(gen *g, request *r, size_t tokens) {
  const gb_synth_config *c = g->c;
  size_t len = long_tailed(g, 16, c->seq);
  size_t act = len * c->hidden * FP16;
  r->len = len;
  r->left = uniform(g, tokens / 8 > 0 ? tokens / 8 : 1, tokens);
  r->kv = t_alloc(g, c->layers * 2 * len * c->hidden * FP16);
  tensor x = t_alloc(g, act);
  for (size_t l = 0; l < c->layers; l++) {
    tensor qkv = t_alloc(g, 3 * act);
    temporary(g, c->heads * len * len * FP16); /* scores, softmax in place */
    t_free(g, qkv);
    temporary(g, 4 * act); /* MLP activation */
  }
  temporary(g, (size_t)VOCAB * FP32); /* logits of the last position */
  t_free(g, x);
}

/* `requests` requests, at most `concurrent` at once: each decode step runs
 * every active request one token; a finished request frees its cache and a
 * waiting one is prefilled in its place. */
static void generate(gen *g, size_t requests, size_t concurrent, size_t tokens) {
  const gb_synth_config *c = g->c;
  request live[SYNTH_MAX_SLOTS];
  size_t n = 0, started = 0;
  size_t row = c->layers * 2 * c->hidden * FP16; /* one token of K and V, all layers */
  if (concurrent > SYNTH_MAX_SLOTS) concurrent = SYNTH_MAX_SLOTS;
  while (g->ok && (n > 0 || started < requests)) {
    /* Admit waiting requests (at most two per step, as a scheduler does). */
    for (int k = 0; k < 2 && n < concurrent && started < requests; k++, started++)
      prefill(g, &live[n++], tokens);
    tensor h = t_alloc(g, n * c->hidden * FP16); /* the batch's hidden state */
    for (size_t i = 0; i < n; i++) {
      request *r = &live[i];
      temporary(g, c->heads * (r->len + 1) * FP16);  /* attention row */
      tensor grown = t_alloc(g, (r->len + 1) * row); /* torch.cat([kv, new]) */
      t_free(g, r->kv);
      r->kv = grown;
      r->len++;
    }
    temporary(g, n * 4 * c->hidden * FP16); /* MLP activation */
    temporary(g, n * (size_t)VOCAB * FP32); /* logits */
    t_free(g, h);
    for (size_t i = 0; i < n;) { /* finished requests leave */
      if (--live[i].left == 0) {
        t_free(g, live[i].kv);
        live[i] = live[--n];
      } else {
        i++;
      }
    }
  }
}

/* ---- decode: a static batch, a cache per layer ---- */

/* `steps` generate() calls on a batch of `batch` prompts padded to one
 * length, uniform in [seq/4, seq] (a multiple of 8), each decoding
 * [tokens/2, tokens] tokens. Prefill keeps each layer's K and V (batch*len*H*2
 * each) and frees its temporaries; every token then replaces each layer's K
 * and V with the one a token longer (torch.cat into the cache), one layer
 * after the other, between attention and MLP temporaries. */
static void decode(gen *g) {
  const gb_synth_config *c = g->c;
  tensor kv[SYNTH_MAX_LAYERS][2];
  size_t row = c->batch * c->hidden * FP16; /* one token of K (or V) of one layer */
  for (size_t s = 0; s < c->steps && g->ok; s++) {
    size_t len = uniform(g, c->seq / 4 > 8 ? c->seq / 4 : 8, c->seq > 8 ? c->seq : 8) / 8 * 8;
    size_t tokens = uniform(g, c->tokens / 2 > 0 ? c->tokens / 2 : 1, c->tokens);
    size_t act = len * row;
    tensor x = t_alloc(g, act);
    for (size_t l = 0; l < c->layers; l++) {
      tensor qkv = t_alloc(g, 3 * act);
      kv[l][0] = t_alloc(g, act);
      kv[l][1] = t_alloc(g, act);
      t_free(g, qkv);
      temporary(g, c->batch * c->heads * len * len * FP16); /* scores, softmax in place */
      temporary(g, 4 * act);                                /* MLP activation */
    }
    temporary(g, c->batch * (size_t)VOCAB * FP32); /* logits of the last position */
    t_free(g, x);
    for (size_t t = 0; t < tokens; t++, len++) {
      tensor h = t_alloc(g, row);
      for (size_t l = 0; l < c->layers; l++) {
        for (int j = 0; j < 2; j++) { /* K, then V: torch.cat([cache, new]) */
          tensor grown = t_alloc(g, (len + 1) * row);
          t_free(g, kv[l][j]);
          kv[l][j] = grown;
        }
        temporary(g, c->batch * c->heads * (len + 1) * FP16); /* attention row */
        temporary(g, 4 * row);                                /* MLP activation */
      }
      temporary(g, c->batch * (size_t)VOCAB * FP32); /* logits */
      t_free(g, h);
    }
    for (size_t l = c->layers; l-- > 0;) {
      t_free(g, kv[l][1]);
      t_free(g, kv[l][0]);
    }
  }
}

/* ---- varlen: variable-length inference batches ---- */

typedef struct kept {
  tensor kv[SYNTH_MAX_LAYERS][2];
  tensor out;
} kept;

static void free_kept(gen *g, kept *k) {
  for (size_t l = g->c->layers; l-- > 0;) {
    t_free(g, k->kv[l][1]);
    t_free(g, k->kv[l][0]);
  }
  t_free(g, k->out);
}

/* One forward batch of sequences padded to a long-tailed length; up to
 * `batch` sequences within a token budget of batch*seq/4. Its K, V and output
 * are kept in `k`. */
static void varlen_batch(gen *g, kept *k) {
  const gb_synth_config *c = g->c;
  size_t len = long_tailed(g, 16, c->seq);
  size_t budget = c->batch * c->seq / 4;
  size_t batch = budget / len;
  if (batch > c->batch) batch = c->batch;
  if (batch == 0) batch = 1;
  size_t act = batch * len * c->hidden * FP16;
  size_t scores = batch * c->heads * len * len * FP16;
  tensor x = t_alloc(g, act);
  for (size_t l = 0; l < c->layers; l++) {
    tensor q = t_alloc(g, act);
    k->kv[l][0] = t_alloc(g, act);
    k->kv[l][1] = t_alloc(g, act);
    tensor s = t_alloc(g, scores);
    tensor p = t_alloc(g, scores); /* softmax */
    t_free(g, s);
    tensor ctx = t_alloc(g, act);
    t_free(g, p);
    t_free(g, q);
    tensor mlp = t_alloc(g, 4 * act);
    t_free(g, ctx);
    tensor y = t_alloc(g, act);
    t_free(g, mlp);
    t_free(g, x);
    x = y;
  }
  k->out = t_alloc(g, batch * len * c->hidden * FP16 / 4 + batch * (size_t)VOCAB * FP16);
  t_free(g, x);
}

static void varlen(gen *g) {
  kept *held = calloc(SYNTH_MAX_SLOTS, sizeof *held);
  if (held == NULL) {
    g->ok = false;
    return;
  }
  size_t n = 0, hold = g->c->period < SYNTH_MAX_SLOTS ? g->c->period : SYNTH_MAX_SLOTS - 1;
  for (size_t s = 0; s < g->c->steps && g->ok; s++) {
    varlen_batch(g, &held[n++]);
    /* Consumers take results out of order: free random held batches until at
     * most a random number in [0, period] remain. */
    for (size_t keep = uniform(g, 0, hold); n > keep;) {
      size_t i = uniform(g, 0, n - 1);
      free_kept(g, &held[i]);
      held[i] = held[--n];
    }
  }
  while (n > 0)
    free_kept(g, &held[--n]);
  free(held);
}

/* Training's padded length this step: uniform in [seq/2, seq], a multiple
 * of 64 (dynamic padding to the longest sequence of the micro-batch). */
static size_t train_len(gen *g) {
  size_t hi = g->c->seq / 64 > 0 ? g->c->seq / 64 : 1;
  size_t lo = hi / 2 > 0 ? hi / 2 : 1;
  return uniform(g, lo, hi) * 64;
}

/* The micro-batch: `batch`, or one fewer one step in four (the last
 * micro-batch of an epoch or a gradient-accumulation round is short). */
static size_t train_batch(gen *g) {
  size_t b = g->c->batch;
  return b > 1 && uniform(g, 0, 3) == 0 ? b - 1 : b;
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
   * (batch*heads*seq^2*2), a weight (4*hidden^2*2), the logits
   * (batch*seq*vocab*4) or a KV cache; 1 TiB is a bound no real GPU
   * reaches. */
  const double tib = 1099511627776.0;
  if ((double)c->batch * (double)c->heads * (double)c->seq * (double)c->seq * FP16 > tib ||
      (double)c->hidden * (double)c->hidden * 4 * FP32 > tib ||
      (double)c->batch * (double)c->seq * VOCAB * FP32 > tib ||
      (double)c->layers * (double)(c->seq + c->tokens) * (double)c->hidden * 2 * FP16 *
              (double)c->batch >
          tib) {
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
  size_t start = plan->count;
  g->plan = plan;
  g->c = c;
  g->rng = c->seed;
  g->ok = true;
  g->wbytes = c->family == GB_SYNTH_TRAINING || c->family == GB_SYNTH_MIXTURE ? FP32 : FP16;
  alloc_weights(g);
  switch (c->family) {
  case GB_SYNTH_TRAINING:
    for (size_t s = 0; s < c->steps && g->ok; s++)
      train_step(g, train_batch(g), train_len(g), s % ACCUM == 0,
                 s % ACCUM == ACCUM - 1 || s + 1 == c->steps);
    break;
  case GB_SYNTH_VARLEN:
    varlen(g);
    break;
  case GB_SYNTH_GENERATION:
    generate(g, c->steps, c->batch, c->tokens);
    break;
  case GB_SYNTH_DECODE:
    decode(g);
    break;
  default: /* mixture */
    for (size_t s = 0; s < c->steps && g->ok; s++) {
      train_step(g, train_batch(g), train_len(g), s % ACCUM == 0,
                 s % ACCUM == ACCUM - 1 || s + 1 == c->steps);
      if ((s + 1) % c->period == 0) generate(g, 4, 4, c->tokens); /* evaluation */
    }
    break;
  }
  /* Teardown: optimizer state, weights. */
  if (g->have_moments) {
    for (size_t l = c->layers + 1; l-- > 0;) {
      for (int w = WEIGHTS_PER_LAYER; w-- > 0;) {
        if (l == c->layers && w >= 2) continue;
        t_free(g, g->moments[l][w][1]);
        t_free(g, g->moments[l][w][0]);
      }
    }
  }
  t_free(g, g->head);
  for (size_t l = c->layers; l-- > 0;)
    for (int w = WEIGHTS_PER_LAYER; w-- > 0;)
      t_free(g, g->weights[l][w]);
  t_free(g, g->embed);
  if (plan->streams == 0) plan->streams = 1;
  bool ok = g->ok, g_too_long = g->too_long;
  free(g);
  if (!ok && g_too_long)
    snprintf(why, why_len, "over %d operations: lower --steps (%zu) or --layers (%zu)",
             SYNTH_MAX_OPS, c->steps, c->layers);
  else if (!ok)
    snprintf(why, why_len, "out of host memory for the plan");
  if (!ok) plan->count = start; /* what was appended goes */
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
          "families: a 16-layer transformer, hidden 1024, vocabulary 32000\n"
          "  training    mixed-precision training, 2 micro-batches per optimizer step:\n"
          "              fp32 weights; per micro-batch a padded length\n"
          "              in [seq/2, seq] and sometimes a micro-batch one short; forward\n"
          "              saves autocast fp16 weight copies, q/k/v, attention\n"
          "              (B*heads*S^2) and MLP activations per layer; backward frees\n"
          "              them in reverse layer order and allocates the weight grads\n"
          "              (freed after each optimizer step), 25 MiB gradient buckets;\n"
          "              Adam moments from the first step on\n"
          "  varlen      inference batches of a long-tailed length in [16, seq], up to\n"
          "              `batch` sequences within batch*seq/4 tokens; attention ~len^2;\n"
          "              each batch's K/V and output kept, freed out of order (at most\n"
          "              `period` batches held)\n"
          "  generation  continuous batching: `steps` requests, `batch` at once; each\n"
          "              request's KV block (64 KiB a token) grows every token by\n"
          "              allocating the larger block and freeing the old (torch.cat);\n"
          "              long-tailed prompts, [tokens/8, tokens] new tokens each\n"
          "  mixture     training with a 4-request generation phase every `period` steps\n"
          "  decode      static batches (generate() with a dynamic cache): prompts padded\n"
          "              to a length in [seq/4, seq], [tokens/2, tokens] tokens; each token\n"
          "              replaces every layer's K and V with one a token longer\n"
          "\n"
          "options (defaults: training / varlen / generation / mixture / decode):\n"
          "  --family F     training, varlen, generation, mixture, decode (required)\n"
          "  --seed N       PRNG seed, splitmix64 (%" PRIu64 ")\n"
          "  --steps S      training micro-batches, inference batches, requests or\n"
          "                 generate() calls (20/60/24/12/4)\n"
          "  --layers L     transformer layers (%zu)\n"
          "  --batch B      micro-batch; varlen: most sequences per batch; generation:\n"
          "                 most requests at once; decode: sequences (2/8/8/2/8)\n"
          "  --hidden H     hidden size (%zu)\n"
          "  --heads N      attention heads (%zu)\n"
          "  --seq S        (most) sequence or prompt length (1024/2048/1024/1024/1024)\n"
          "  --tokens T     most generated tokens per request (256/256/256/64/48)\n"
          "  --period P     varlen: most batches held; mixture: evaluate every P (%zu)\n"
          "  --out FILE     where to write the trace (required)\n",
          d.seed, d.layers, d.hidden, d.heads, d.period);
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
                "gpumem-bench synth: unknown family (training, varlen, generation, mixture, "
                "decode): "
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
                    "mixture, decode)\n");
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
