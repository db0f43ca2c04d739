/* json.h: a small streaming JSON writer for libgpumem's programs.
 *
 * gpumem-bench (--json) and gpumem-info (--json) write their reports through
 * it, so that both escape strings the same way (quote, backslash and control
 * characters; other bytes, UTF-8 included, pass as they are), print numbers
 * the same way (a value that is not finite becomes null, which JSON has no
 * other way to say) and cannot forget a comma or a closing bracket.
 *
 * It is not part of the library's API: it is compiled once as the object
 * library `gpumem_json` (top-level CMakeLists.txt) and linked into those two
 * programs only, which otherwise use the public API alone.
 *
 *   gm_json j;
 *   gm_json_start(&j, stdout);
 *   gm_json_object(&j, NULL);          {
 *   gm_json_string(&j, "name", "x");     "name":"x",
 *   gm_json_array(&j, "sizes");          "sizes":[
 *   gm_json_uint(&j, NULL, 4096);          4096
 *   gm_json_end(&j);                     ]
 *   gm_json_end(&j);                   }
 *   bool ok = gm_json_finish(&j);      newline; false on misuse or a write error
 *
 * Inside an object every value has a key; inside an array, and at the top,
 * the key is NULL. A call that breaks this (or nests deeper than
 * GM_JSON_MAX_DEPTH) writes nothing and makes gm_json_finish return false.
 * Output is compact (no spaces), one document per writer.
 *
 * Thread safety: one writer belongs to one thread at a time.
 */
#ifndef GPUMEM_JSON_H
#define GPUMEM_JSON_H

#include <stdbool.h>
#include <stdio.h>

/* The deepest nesting of objects and arrays a writer keeps track of. */
#define GM_JSON_MAX_DEPTH 16

typedef struct gm_json {
  FILE *out;
  int depth;                         /* open containers */
  char kind[GM_JSON_MAX_DEPTH];      /* '{' or '[' for each open container */
  bool has_items[GM_JSON_MAX_DEPTH]; /* the container already holds a value */
  bool misused;                      /* a call broke the rules above */
  bool done;                         /* a complete value was written at the top */
} gm_json;

/* Begin a document on `out`. */
void gm_json_start(gm_json *j, FILE *out);

/* Open an object or an array (as the value of `key` inside an object). */
void gm_json_object(gm_json *j, const char *key);
void gm_json_array(gm_json *j, const char *key);

/* Close the innermost open object or array. */
void gm_json_end(gm_json *j);

/* Values. A NULL string is written as null. */
void gm_json_string(gm_json *j, const char *key, const char *value);
void gm_json_int(gm_json *j, const char *key, long long value);
void gm_json_uint(gm_json *j, const char *key, unsigned long long value);
/* `decimals` digits after the point; NaN and infinities are written as null. */
void gm_json_number(gm_json *j, const char *key, double value, int decimals);
void gm_json_bool(gm_json *j, const char *key, bool value);
void gm_json_null(gm_json *j, const char *key);

/* End the document with a newline. True when it is complete (every
 * container closed, no misuse) and the stream reported no error. */
bool gm_json_finish(gm_json *j);

#endif
