/* options.c: settings from GPUMEM_<NAME> environment variables.
 *
 * One table (options.h) holds each option's name, type, default, bounds and
 * meaning, like mimalloc's options.c and NCCL's param.h. Values are parsed
 * once at initialisation into a fixed array; later reads are plain loads.
 * Malformed values never take effect: the warning names the variable, the
 * value and what was expected, and the default stays. Nothing here allocates.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"
#include "log.h"
#include "mig.h"
#include "options.h"

typedef struct gm_option_desc {
  const char *env;
  gm_option_type type;
  const char *def;
  int64_t min, max;
  const char *words;
  const char *help;
} gm_option_desc;

typedef struct gm_option_value {
  bool set;
  bool strict; /* from gpumem_init (GM_OPTION_SOURCE_INIT) */
  bool b;
  int64_t i;
  size_t size;
  int word;
  char str[GM_OPTION_STRING_MAX];
} gm_option_value;

static const gm_option_desc option_descs[GM_OPTION_COUNT] = {
#define GM_OPT_DESC_(id, type, def, min, max, words, help) \
  [GM_OPTION_##id] = {"GPUMEM_" #id, type, def, min, max, words, help},
    GM_OPTION_TABLE(GM_OPT_DESC_)
#undef GM_OPT_DESC_
};

static gm_option_value option_values[GM_OPTION_COUNT];

#define GM_OPTION_WHY_MAX 256

static const char *skip_space(const char *s) {
  while (isspace((unsigned char)*s))
    s++;
  return s;
}

static bool only_space(const char *s) {
  return *skip_space(s) == '\0';
}

bool gm_parse_int(const char *text, int64_t *out) {
  if (text == NULL) return false;
  const char *s = skip_space(text);
  if (*s == '\0') return false;
  char *end = NULL;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno != 0 || end == s || !only_space(end)) return false;
  *out = (int64_t)v;
  return true;
}

bool gm_parse_size(const char *text, size_t *out) {
  if (text == NULL) return false;
  const char *s = skip_space(text);
  if (!isdigit((unsigned char)*s)) return false; /* no sign, no empty text */
  char *end = NULL;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0) return false;
  s = skip_space(end);
  unsigned shift = 0;
  switch (toupper((unsigned char)*s)) {
  case 'K':
    shift = 10;
    s++;
    break;
  case 'M':
    shift = 20;
    s++;
    break;
  case 'G':
    shift = 30;
    s++;
    break;
  case 'T':
    shift = 40;
    s++;
    break;
  default:
    break;
  }
  if (shift != 0 && (*s == 'i' || *s == 'I')) {
    s++;
    if (*s != 'B' && *s != 'b') return false; /* "Ki" alone is not a unit */
  }
  if (*s == 'B' || *s == 'b') s++;
  if (!only_space(s)) return false;
  if (shift != 0 && v > (SIZE_MAX >> shift)) return false;
  *out = (size_t)(v << shift);
  return true;
}

bool gm_parse_bool(const char *text, bool *out) {
  static const char *const yes[] = {"1", "on", "true", "yes", "enable", "enabled"};
  static const char *const no[] = {"0", "off", "false", "no", "disable", "disabled"};
  if (text == NULL) return false;
  for (size_t i = 0; i < GM_ARRAY_SIZE(yes); i++) {
    if (strcasecmp(text, yes[i]) == 0) {
      *out = true;
      return true;
    }
    if (strcasecmp(text, no[i]) == 0) {
      *out = false;
      return true;
    }
  }
  return false;
}

int gm_parse_word(const char *text, const char *words) {
  if (text == NULL || words == NULL) return -1;
  size_t len = strlen(text);
  int index = 0;
  for (const char *w = words; *w != '\0'; index++) {
    const char *bar = strchr(w, '|');
    size_t wlen = bar ? (size_t)(bar - w) : strlen(w);
    if (wlen == len && len > 0 && strncasecmp(w, text, len) == 0) return index;
    if (bar == NULL) break;
    w = bar + 1;
  }
  return -1;
}

const char *gm_format_size(size_t bytes, char *buf, size_t len) {
  static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  size_t u = 0;
  double v = (double)bytes;
  while (v >= 1024.0 && u + 1 < GM_ARRAY_SIZE(units)) {
    v /= 1024.0;
    u++;
  }
  if (u == 0 || bytes % ((size_t)1 << (10 * u)) == 0) {
    snprintf(buf, len, "%zu %s", u == 0 ? bytes : (size_t)v, units[u]);
  } else {
    snprintf(buf, len, "%.2f %s", v, units[u]);
  }
  return buf;
}

/* GPUMEM_HOST_MIG is parsed here already, so that a bad layout is a warning
 * naming the variable and the default stays, like any other option. */
static bool host_mig_valid(const char *text, char *why, size_t why_len) {
  gm_mig_spec spec; /* about 8 KiB, on the stack: nothing here allocates */
  char detail[GM_OPTION_WHY_MAX - 32];
  if (gm_mig_spec_parse(text, &spec, detail, sizeof detail)) return true;
  snprintf(why, why_len, "is not a layout: %s", detail);
  return false;
}

/* Parse `text` for option `id` into `val`; on failure describe what was
 * expected in `why`. */
static bool parse_value(gm_option_id id, const char *text, gm_option_value *val, char *why,
                        size_t why_len) {
  const gm_option_desc *d = &option_descs[id];
  switch (d->type) {
  case GM_OPT_BOOL:
    if (gm_parse_bool(text, &val->b)) return true;
    snprintf(why, why_len, "is not on/off (also: true/false, yes/no, 1/0)");
    return false;
  case GM_OPT_INT:
    if (!gm_parse_int(text, &val->i)) {
      snprintf(why, why_len, "is not an integer");
      return false;
    }
    if (val->i < d->min || val->i > d->max) {
      snprintf(why, why_len, "is outside %" PRId64 "..%" PRId64, d->min, d->max);
      return false;
    }
    return true;
  case GM_OPT_SIZE:
    if (!gm_parse_size(text, &val->size)) {
      snprintf(why, why_len, "is not a size (examples: 4096, 512K, 64MiB, 2G)");
      return false;
    }
    if ((int64_t)val->size < d->min || (uint64_t)val->size > (uint64_t)d->max) {
      snprintf(why, why_len, "is outside %" PRId64 "..%" PRId64 " bytes", d->min, d->max);
      return false;
    }
    if (id == GM_OPTION_HOST_GRANULARITY && !gm_is_pow2(val->size)) {
      snprintf(why, why_len, "is not a power of two");
      return false;
    }
    return true;
  case GM_OPT_WORD:
    val->word = gm_parse_word(text, d->words);
    if (val->word >= 0) return true;
    snprintf(why, why_len, "is not one of %s", d->words);
    return false;
  case GM_OPT_STRING:
    if (strlen(text) >= sizeof val->str) {
      snprintf(why, why_len, "is longer than %d characters", GM_OPTION_STRING_MAX - 1);
      return false;
    }
    if (id == GM_OPTION_HOST_MIG && text[0] != '\0') return host_mig_valid(text, why, why_len);
    return true;
  }
  return false;
}

bool gm_option_set(gm_option_id id, const char *text, const char *source) {
  const gm_option_desc *d = &option_descs[id];
  gm_option_value val = {0};
  char why[GM_OPTION_WHY_MAX];
  if (!parse_value(id, text, &val, why, sizeof why)) {
    gm_log(GPUMEM_LOG_WARN, "%s='%s' %s; keeping the default %s (%s)", d->env, text, why,
           option_values[id].set ? "value"
           : d->def[0]           ? d->def
                                 : "(empty)",
           d->help);
    return false;
  }
  snprintf(val.str, sizeof val.str, "%s", text);
  val.set = true;
  val.strict = strcmp(source, GM_OPTION_SOURCE_INIT) == 0;
  option_values[id] = val;
  gm_log(GPUMEM_LOG_INFO, "%s=%s (from %s)", d->env, text, source);
  return true;
}

void gm_options_load(void) {
  /* Defaults first (they always parse), then the environment. The log level
   * is applied first so that the warnings for later options obey it. */
  for (int id = 0; id < GM_OPTION_COUNT; id++) {
    gm_option_value val = {0};
    char why[GM_OPTION_WHY_MAX];
    bool ok = parse_value((gm_option_id)id, option_descs[id].def, &val, why, sizeof why);
    (void)ok;
    snprintf(val.str, sizeof val.str, "%s", option_descs[id].def);
    option_values[id] = val;
  }
  const char *level = getenv(option_descs[GM_OPTION_LOG].env);
  if (level != NULL && gm_option_set(GM_OPTION_LOG, level, "environment")) {
    if (gpumem_log_set_level((gpumem_log_level)option_values[GM_OPTION_LOG].word) != GPUMEM_OK)
      gm_error_discard(); /* the word was checked: cannot happen */
  }
  for (int id = 0; id < GM_OPTION_COUNT; id++) {
    if (id == GM_OPTION_LOG) continue;
    const char *text = getenv(option_descs[id].env);
    if (text != NULL) gm_option_set((gm_option_id)id, text, "environment");
  }
}

bool gm_option_bool(gm_option_id id) {
  return option_values[id].b;
}
int64_t gm_option_int(gm_option_id id) {
  return option_values[id].i;
}
size_t gm_option_size(gm_option_id id) {
  return option_values[id].size;
}
int gm_option_word(gm_option_id id) {
  return option_values[id].word;
}
const char *gm_option_string(gm_option_id id) {
  return option_values[id].str;
}
bool gm_option_is_set(gm_option_id id) {
  return option_values[id].set;
}
bool gm_option_strict(gm_option_id id) {
  return option_values[id].strict;
}
const char *gm_option_env_name(gm_option_id id) {
  return option_descs[id].env;
}
