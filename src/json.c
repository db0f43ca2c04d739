/* json.c: the streaming JSON writer of json.h.
 *
 * The writer keeps a stack of the open containers and, for each, whether a
 * value was written into it yet: that decides the comma, and whether a key
 * is required (inside an object) or forbidden (inside an array, at the top).
 * A misuse writes nothing and is remembered, so the program that made it
 * finds out from gm_json_finish instead of shipping a file no parser reads.
 */
#include "json.h"

#include <math.h>

void gm_json_start(gm_json *j, FILE *out) {
  *j = (gm_json){.out = out};
}

static void put_string(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      fprintf(f, "\\%c", c);
    else if (c == '\n')
      fputs("\\n", f);
    else if (c == '\t')
      fputs("\\t", f);
    else if (c < 0x20)
      fprintf(f, "\\u%04x", c);
    else
      fputc(c, f);
  }
  fputc('"', f);
}

/* Write what comes before a value: the comma and the key. False (and
 * nothing written) when the key does not fit where the value goes. */
static bool before_value(gm_json *j, const char *key) {
  bool in_object = j->depth > 0 && j->kind[j->depth - 1] == '{';
  bool at_top = j->depth == 0;
  if (j->misused || (in_object != (key != NULL)) || (at_top && j->done)) {
    j->misused = true;
    return false;
  }
  if (!at_top) {
    if (j->has_items[j->depth - 1]) fputc(',', j->out);
    j->has_items[j->depth - 1] = true;
  }
  if (key != NULL) {
    put_string(j->out, key);
    fputc(':', j->out);
  }
  if (at_top) j->done = true;
  return true;
}

static void open_container(gm_json *j, const char *key, char kind) {
  if (j->depth == GM_JSON_MAX_DEPTH) {
    j->misused = true;
    return;
  }
  if (!before_value(j, key)) return;
  fputc(kind, j->out);
  j->kind[j->depth] = kind;
  j->has_items[j->depth] = false;
  j->depth++;
}

void gm_json_object(gm_json *j, const char *key) {
  open_container(j, key, '{');
}

void gm_json_array(gm_json *j, const char *key) {
  open_container(j, key, '[');
}

void gm_json_end(gm_json *j) {
  if (j->misused || j->depth == 0) {
    j->misused = true;
    return;
  }
  j->depth--;
  fputc(j->kind[j->depth] == '{' ? '}' : ']', j->out);
}

void gm_json_string(gm_json *j, const char *key, const char *value) {
  if (!before_value(j, key)) return;
  if (value == NULL)
    fputs("null", j->out);
  else
    put_string(j->out, value);
}

void gm_json_int(gm_json *j, const char *key, long long value) {
  if (before_value(j, key)) fprintf(j->out, "%lld", value);
}

void gm_json_uint(gm_json *j, const char *key, unsigned long long value) {
  if (before_value(j, key)) fprintf(j->out, "%llu", value);
}

void gm_json_number(gm_json *j, const char *key, double value, int decimals) {
  if (!before_value(j, key)) return;
  if (isfinite(value))
    fprintf(j->out, "%.*f", decimals, value);
  else
    fputs("null", j->out);
}

void gm_json_bool(gm_json *j, const char *key, bool value) {
  if (before_value(j, key)) fputs(value ? "true" : "false", j->out);
}

void gm_json_null(gm_json *j, const char *key) {
  if (before_value(j, key)) fputs("null", j->out);
}

bool gm_json_finish(gm_json *j) {
  bool complete = !j->misused && j->depth == 0 && j->done;
  fputc('\n', j->out);
  return complete && fflush(j->out) == 0 && !ferror(j->out);
}
