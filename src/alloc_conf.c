/* alloc_conf.c: GPUMEM_ALLOC_CONF, the allocator the environment asks for.
 *
 * The variable is a comma-separated list of key:value pairs, as PyTorch's
 * PYTORCH_CUDA_ALLOC_CONF is:
 *
 *   GPUMEM_ALLOC_CONF=kind:pool,cache_max_bytes:512M,release_threshold:1G
 *
 * `kind` names the allocator: pool (gpumem-pool, the default), pool-nocache
 * (gpumem-pool-nocache), arena (gpumem-arena), arena-lean (gpumem-arena-lean:
 * the arena with remap:memory), or any other name of
 * gpumem_allocator_list (cuda-malloc, cuda-async, cuda-pool), which take no
 * settings. The settings are fields of the pool's or the arena's config:
 *
 *   pool:  cache (bool), cache_max_bytes, cache_max_size, release_threshold,
 *          max_size
 *   arena: chunk_size, initial_size, max_size, shards (1..64), remap
 *          (balanced, memory or calls: gpumem_arena_remap), slack_percent
 *          (1..100)
 *
 * Sizes are read by the option parser of options.c (gm_parse_size: 4096,
 * 512K, 64MiB, 2G), booleans by gm_parse_bool: one parser for every
 * GPUMEM_ variable. The rules are those of the other options: a key that is
 * unknown, a value that does not parse, or a key that does not apply to the
 * kind is a warning naming the variable, the key, the value and what was
 * expected, and that key keeps its default; the rest still applies. The
 * text is parsed at each creation (the framework hooks make one allocator per
 * device), but the warnings are logged once per distinct text, so a bad key
 * is not reported eight times on an eight-GPU node. The kind is read first,
 * wherever it stands in the list, so that "cache_max_bytes:1G,kind:pool"
 * means what it says; a later kind replaces an earlier one.
 *
 * Creation reuses the registry's implementations (src/allocators/): the pool
 * or arena is created here with the configured settings and wrapped with
 * gm_allocator_make, so the result counts statistics and traces like any
 * allocator of gpumem_allocator_create, and is destroyed the same way.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "abi.h"
#include "alloc_conf.h"
#include "allocator.h"
#include "arena.h"
#include "log.h"
#include "options.h"
#include "pool.h"

typedef enum conf_family { CONF_POOL, CONF_ARENA, CONF_OTHER } conf_family;

typedef struct conf {
  const char *kind; /* a gpumem_allocator_list name */
  conf_family family;
  gpumem_pool_config pool;
  gpumem_arena_config arena;
} conf;

#define CONF_POOL_KEYS  "cache, cache_max_bytes, cache_max_size, release_threshold, max_size"
#define CONF_ARENA_KEYS "chunk_size, initial_size, max_size, shards, remap, slack_percent"

/* The warnings of one parse, logged only when `warn`. */
#define CONF_WARN(warn, ...)                                              \
  do {                                                                    \
    if (warn) gm_log(GPUMEM_LOG_WARN, "GPUMEM_ALLOC_CONF: " __VA_ARGS__); \
  } while (0)

static bool set_kind(const char *value, conf *c) {
  static const struct {
    const char *word, *name;
    conf_family family;
  } kinds[] = {
      {"pool", "gpumem-pool", CONF_POOL},
      {"pool-nocache", "gpumem-pool-nocache", CONF_POOL},
      {"arena", "gpumem-arena", CONF_ARENA},
      {"arena-lean", "gpumem-arena-lean", CONF_ARENA},
      {"gpumem-pool", "gpumem-pool", CONF_POOL},
      {"gpumem-pool-nocache", "gpumem-pool-nocache", CONF_POOL},
      {"gpumem-arena", "gpumem-arena", CONF_ARENA},
      {"gpumem-arena-lean", "gpumem-arena-lean", CONF_ARENA},
  };
  for (size_t i = 0; i < GM_ARRAY_SIZE(kinds); i++) {
    if (strcmp(value, kinds[i].word) == 0) {
      c->kind = kinds[i].name;
      c->family = kinds[i].family;
      c->pool.cache = strcmp(kinds[i].name, "gpumem-pool-nocache") != 0;
      c->arena.remap = strcmp(kinds[i].name, "gpumem-arena-lean") == 0
                           ? GPUMEM_ARENA_REMAP_MEMORY
                           : GPUMEM_ARENA_REMAP_BALANCED;
      return true;
    }
  }
  gpumem_allocator_kind list[32];
  size_t n = gpumem_allocator_list(list, GM_ARRAY_SIZE(list));
  for (size_t i = 0; i < n && i < GM_ARRAY_SIZE(list); i++) {
    if (strcmp(value, list[i].name) == 0) {
      c->kind = list[i].name;
      c->family = CONF_OTHER;
      return true;
    }
  }
  return false;
}

static bool is_pool_key(const char *key) {
  return strcmp(key, "cache") == 0 || strcmp(key, "cache_max_bytes") == 0 ||
         strcmp(key, "cache_max_size") == 0 || strcmp(key, "release_threshold") == 0 ||
         strcmp(key, "max_size") == 0;
}

static bool is_arena_key(const char *key) {
  return strcmp(key, "chunk_size") == 0 || strcmp(key, "initial_size") == 0 ||
         strcmp(key, "max_size") == 0 || strcmp(key, "shards") == 0 || strcmp(key, "remap") == 0 ||
         strcmp(key, "slack_percent") == 0;
}

/* An integer setting in 1..max: set, or warned about and left as it was. */
static void set_count(const char *key, const char *value, int64_t max, unsigned *out, bool warn) {
  int64_t v;
  if (gm_parse_int(value, &v) && v >= 1 && v <= max)
    *out = (unsigned)v;
  else
    CONF_WARN(warn, "%s:'%s' is not an integer in 1..%" PRId64 "; keeping the default", key, value,
              max);
}

/* Apply one setting to the kind chosen; warn and keep the default if it
 * does not parse or apply. */
static void apply(const char *key, const char *value, conf *c, bool warn) {
  if (!is_pool_key(key) && !is_arena_key(key)) {
    CONF_WARN(warn,
              "unknown key '%s' (value '%s'); expected kind or one of: " CONF_POOL_KEYS
              " (pool), " CONF_ARENA_KEYS " (arena); ignored",
              key, value);
    return;
  }
  bool applies = (c->family == CONF_POOL && is_pool_key(key)) ||
                 (c->family == CONF_ARENA && is_arena_key(key));
  if (!applies) {
    CONF_WARN(warn, "key '%s' (value '%s') does not apply to kind %s (%s); ignored", key, value,
              c->kind,
              c->family == CONF_POOL    ? "its keys: " CONF_POOL_KEYS
              : c->family == CONF_ARENA ? "its keys: " CONF_ARENA_KEYS
                                        : "it takes no settings");
    return;
  }
  if (strcmp(key, "cache") == 0) {
    bool b;
    if (gm_parse_bool(value, &b))
      c->pool.cache = b;
    else
      CONF_WARN(warn,
                "cache:'%s' is not on/off (also: true/false, yes/no, 1/0); keeping the default",
                value);
    return;
  }
  if (strcmp(key, "shards") == 0 || strcmp(key, "slack_percent") == 0) {
    bool shards = strcmp(key, "shards") == 0;
    set_count(key, value, shards ? 64 : 100, shards ? &c->arena.shards : &c->arena.slack_percent,
              warn);
    return;
  }
  if (strcmp(key, "remap") == 0) {
    static const char *const words[] = {"balanced", "memory", "calls"};
    for (size_t i = 0; i < GM_ARRAY_SIZE(words); i++) {
      if (strcmp(value, words[i]) == 0) {
        c->arena.remap = (gpumem_arena_remap)i; /* in the enum's order */
        return;
      }
    }
    CONF_WARN(warn, "remap:'%s' is not balanced, memory or calls; keeping the default", value);
    return;
  }
  size_t size;
  if (!gm_parse_size(value, &size)) {
    CONF_WARN(warn, "%s:'%s' is not a size (examples: 4096, 512K, 64MiB, 2G); keeping the default",
              key, value);
    return;
  }
  if (strcmp(key, "cache_max_bytes") == 0) c->pool.cache_max_bytes = size;
  if (strcmp(key, "cache_max_size") == 0) c->pool.cache_max_size = size;
  if (strcmp(key, "release_threshold") == 0) c->pool.release_threshold = size;
  if (strcmp(key, "chunk_size") == 0) c->arena.chunk_size = size;
  if (strcmp(key, "initial_size") == 0) c->arena.initial_size = size;
  if (strcmp(key, "max_size") == 0) {
    if (c->family == CONF_POOL)
      c->pool.max_size = size;
    else
      c->arena.max_size = size;
  }
}

static char *trim(char *s) {
  while (*s == ' ' || *s == '\t')
    s++;
  size_t n = strlen(s);
  while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
    s[--n] = '\0';
  return s;
}

/* Split `text` into its pairs; call back for each (key, value), value NULL
 * when the ':' is missing. */
static void parse_pass(const char *text, conf *c, bool warn, bool kinds_pass) {
  char buf[GM_OPTION_STRING_MAX];
  snprintf(buf, sizeof buf, "%s", text);
  char *save = NULL;
  for (char *item = strtok_r(buf, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save)) {
    char *colon = strchr(item, ':');
    if (colon != NULL) *colon = '\0';
    char *key = trim(item);
    if (*key == '\0' && colon == NULL) continue; /* "a,,b" or a trailing comma */
    bool is_kind = strcmp(key, "kind") == 0;
    if (is_kind != kinds_pass) continue;
    if (colon == NULL) {
      CONF_WARN(warn && kinds_pass == false, "'%s' is not key:value; ignored", key);
      continue;
    }
    char *value = trim(colon + 1);
    if (!is_kind) {
      apply(key, value, c, warn);
    } else if (!set_kind(value, c)) {
      char names[256] = "pool, pool-nocache, arena, arena-lean";
      gpumem_allocator_kind list[32];
      size_t n = gpumem_allocator_list(list, GM_ARRAY_SIZE(list));
      for (size_t i = 0; i < n && i < GM_ARRAY_SIZE(list); i++) {
        size_t used = strlen(names);
        snprintf(names + used, sizeof names - used, ", %s", list[i].name);
      }
      CONF_WARN(warn, "kind:'%s' is not one of %s; keeping the default kind %s", value, names,
                c->kind);
    }
  }
}

static pthread_mutex_t warned_lock = PTHREAD_MUTEX_INITIALIZER;
static char warned_text[GM_OPTION_STRING_MAX];
static bool warned;

/* The settings `text` describes, over the defaults: kinds first, so that
 * a key is checked against the kind wherever it stands. */
static void conf_parse(const char *text, conf *c, bool warn) {
  *c = (conf){.kind = "gpumem-pool",
              .family = CONF_POOL,
              .pool = GPUMEM_POOL_CONFIG_INIT,
              .arena = GPUMEM_ARENA_CONFIG_INIT};
  parse_pass(text, c, warn, true);
  parse_pass(text, c, warn, false);
}

const char *gm_conf_parse_kind(const char *text, bool warn) {
  conf c;
  conf_parse(text, &c, warn);
  return c.kind;
}

static void conf_read(conf *c) {
  const char *text = gm_option_string(GM_OPTION_ALLOC_CONF);
  if (text[0] == '\0') {
    conf_parse("", c, false);
    return;
  }
  pthread_mutex_lock(&warned_lock);
  bool warn = !warned || strcmp(warned_text, text) != 0;
  if (warn) {
    snprintf(warned_text, sizeof warned_text, "%s", text);
    warned = true;
  }
  pthread_mutex_unlock(&warned_lock);
  conf_parse(text, c, warn);
}

gpumem_status gm_conf_allocator_create(int device, gpumem_allocator *out) {
  gpumem_status st = gm_abi_check_out(out, sizeof *out, "allocator (GPUMEM_ALLOCATOR_INIT)");
  if (st != GPUMEM_OK) return st;
  conf c;
  conf_read(&c);
  if (c.family == CONF_OTHER) return gm_allocator_create_named(c.kind, device, out);
  const gm_allocator_impl *impl = NULL;
  void *state = NULL;
  gpumem_pool_t *pool = NULL;
  gpumem_arena_t *arena = NULL;
  if (c.family == CONF_POOL) {
    impl = c.pool.cache ? &gm_allocator_gpumem_pool : &gm_allocator_gpumem_pool_nocache;
    c.pool.device = device;
    st = gm_pool_create(&c.pool, &pool);
    state = pool;
  } else {
    impl = c.arena.remap == GPUMEM_ARENA_REMAP_MEMORY ? &gm_allocator_gpumem_arena_lean
                                                      : &gm_allocator_gpumem_arena;
    c.arena.devices = &device;
    c.arena.device_count = 1;
    st = gm_arena_create(&c.arena, &arena);
    if (st == GPUMEM_OK) st = gm_arena_allocator_state(arena, device, &state);
  }
  if (st == GPUMEM_OK) st = gm_allocator_make(impl, state, device, out);
  if (st == GPUMEM_OK) return GPUMEM_OK;
  /* Roll back; the first error is the one to report. */
  if (state != NULL && c.family == CONF_ARENA) free(state);
  if ((pool != NULL && gm_pool_destroy(pool) != GPUMEM_OK) ||
      (arena != NULL && gm_arena_destroy(arena) != GPUMEM_OK))
    gm_error_discard(); /* as gpumem_allocator_create does */
  return st;
}
