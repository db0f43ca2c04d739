/* trace_file.c: reading allocation traces into plans, and writing them.
 *
 * A trace is CSV with the header "op,id,size,stream" and one line per
 * operation: "a,17,1048576,0" allocates id 17, "f,17,1048576,0" frees it.
 * GPUMEM_TRACE writes this format and ../shared/traces holds a real one from a
 * PyTorch training run.
 *
 * Files are read with zlib (gzopen, gzgets), which reads plain text as it is
 * and decompresses gzip data, so one reader serves .csv and .csv.gz. A file
 * whose name ends in .gz must be gzip data. zlib checks the stream as it
 * reads (and the CRC and length at its end), so a truncated or corrupt file
 * is reported as such, naming the file: where bad data decompresses into
 * text the parser rejects before zlib sees the damage, the rest of the file
 * is read through to let zlib have its say, and its verdict wins.
 *
 * The parser is strict, since a silently mangled trace gives plausible but
 * wrong figures: a line that is not four well-formed fields (an empty field
 * or a NUL byte included), an op other than
 * a/f, a number that overflows, an id allocated twice or freed without being
 * live, or a free whose size differs from its allocation stops the read with
 * the file, the line number and the line's text. Ids still live at the end
 * are freed, so the plan is balanced.
 *
 * Only the public API and the C library and zlib are used here; ids are
 * mapped to slots by a small open-addressing table of this file's own.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "bench.h"

#define MAX_STREAMS 1024
/* The longest trace line read (a well-formed one is under 80 characters). */
#define TRACE_LINE_MAX 4096
/* Bytes read at a time when reading the rest of a gzip file through. */
#define DRAIN_CHUNK 65536
/* The id table's first capacity (a power of two) and its largest load, in
 * percent, before it doubles. */
#define IDS_FIRST_CAPACITY 1024
#define IDS_MAX_LOAD_PCT   70

/* ---- ids -> slots: open addressing, linear probing, key 0 free ---- */

typedef struct id_table {
  uint64_t *keys; /* id + 1; 0: empty */
  uint32_t *slots;
  size_t capacity, count;
} id_table;

static size_t id_hash(uint64_t key, size_t mask) {
  key ^= key >> 33;
  key *= 0xff51afd7ed558ccdULL; /* murmur3's 64-bit finaliser */
  key ^= key >> 33;
  return (size_t)key & mask;
}

static size_t id_find(const id_table *t, uint64_t key) {
  size_t mask = t->capacity - 1, i = id_hash(key, mask);
  while (t->keys[i] != 0 && t->keys[i] != key)
    i = (i + 1) & mask;
  return i;
}

static bool id_get(const id_table *t, uint64_t id, uint32_t *slot) {
  if (t->capacity == 0) return false;
  size_t i = id_find(t, id + 1);
  if (t->keys[i] == 0) return false;
  *slot = t->slots[i];
  return true;
}

static bool id_put(id_table *t, uint64_t id, uint32_t slot) {
  if ((t->count + 1) * 100 > t->capacity * IDS_MAX_LOAD_PCT) {
    id_table bigger = {0};
    bigger.capacity = t->capacity ? t->capacity * 2 : IDS_FIRST_CAPACITY;
    bigger.keys = calloc(bigger.capacity, sizeof *bigger.keys);
    bigger.slots = calloc(bigger.capacity, sizeof *bigger.slots);
    if (bigger.keys == NULL || bigger.slots == NULL) {
      free(bigger.keys);
      free(bigger.slots);
      return false;
    }
    for (size_t i = 0; i < t->capacity; i++) {
      if (t->keys[i] == 0) continue;
      size_t j = id_find(&bigger, t->keys[i]);
      bigger.keys[j] = t->keys[i];
      bigger.slots[j] = t->slots[i];
    }
    bigger.count = t->count;
    free(t->keys);
    free(t->slots);
    *t = bigger;
  }
  size_t i = id_find(t, id + 1);
  t->keys[i] = id + 1;
  t->slots[i] = slot;
  t->count++;
  return true;
}

/* Remove `id` (present), shifting later entries of its probe run back so
 * that lookups need no tombstones. */
static void id_remove(id_table *t, uint64_t id) {
  size_t mask = t->capacity - 1, hole = id_find(t, id + 1);
  t->keys[hole] = 0;
  t->count--;
  for (size_t i = (hole + 1) & mask; t->keys[i] != 0; i = (i + 1) & mask) {
    size_t home = id_hash(t->keys[i], mask);
    /* Move the entry into the hole if its home is not in (hole, i]. */
    bool stays = hole <= i ? (home > hole && home <= i) : (home > hole || home <= i);
    if (stays) continue;
    t->keys[hole] = t->keys[i];
    t->slots[hole] = t->slots[i];
    t->keys[i] = 0;
    hole = i;
  }
}

static void id_free(id_table *t) {
  free(t->keys);
  free(t->slots);
}

/* ---- the parser, over any source of lines ---- */

/* Next line into *line (without its end), false at the end or on an error
 * (the caller asks the source which). */
typedef bool (*next_line_fn)(void *source, char **line, size_t *len);

static bool parse_u64(const char *s, uint64_t *out) {
  if (*s < '0' || *s > '9') return false;
  char *end = NULL;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0') return false;
  *out = v;
  return true;
}

static bool parse_lines(gb_plan *plan, next_line_fn next, void *source, const char *name, char *why,
                        size_t why_len) {
  id_table ids = {0};
  size_t *slot_size = NULL, slot_cap = 0, lineno = 0, n = 0;
  uint32_t next_slot = 0;
  char *line = NULL;
  bool ok = true;
  while (ok && next(source, &line, &n)) {
    lineno++;
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
      line[--n] = '\0';
    if (n == 0) continue;
    if (lineno == 1 && strncmp(line, "op,", 3) == 0) continue; /* the header */
    char copy[128];
    snprintf(copy, sizeof copy, "%s", line);
    /* Split at every comma: an empty field is a field (strtok would skip it
     * and read "a,,1,,256,,0" as four). */
    bool nul = memchr(line, '\0', n) != NULL, empty = false;
    char *field[5] = {0};
    int nf = 0;
    for (char *p = line; p != NULL && nf < 5;) {
      field[nf++] = p;
      char *comma = strchr(p, ',');
      if (comma != NULL) *comma = '\0';
      empty = empty || *p == '\0';
      p = comma != NULL ? comma + 1 : NULL;
    }
    uint64_t id = 0, size = 0, stream = 0;
    const char *problem = NULL;
    if (nul)
      problem = "the line holds a NUL byte";
    else if (empty)
      problem = "a field is empty";
    else if (nf != 4)
      problem = "expected 4 fields: op,id,size,stream";
    else if (strcmp(field[0], "a") != 0 && strcmp(field[0], "f") != 0)
      problem = "op must be a (alloc) or f (free)";
    else if (!parse_u64(field[1], &id) || id == UINT64_MAX)
      problem = "id is not a number";
    else if (!parse_u64(field[2], &size) || size > SIZE_MAX / 2)
      problem = "size is not a number or overflows";
    else if (size == 0)
      problem = "size is 0";
    else if (!parse_u64(field[3], &stream) || stream >= MAX_STREAMS)
      problem = "stream is not a number below 1024";
    uint32_t slot = 0;
    bool live = problem == NULL && id_get(&ids, id, &slot);
    if (problem == NULL && field[0][0] == 'a' && live) problem = "id allocated again while live";
    if (problem == NULL && field[0][0] == 'f' && !live) problem = "free of an id that is not live";
    if (problem == NULL && field[0][0] == 'f' && slot_size[slot] != size)
      problem = "free size differs from the allocation's";
    if (problem != NULL) {
      snprintf(why, why_len, "%s:%zu: %s: '%s'", name, lineno, problem, copy);
      ok = false;
      break;
    }
    gb_op op = {GB_ALLOC, (uint16_t)stream, 0, (size_t)size};
    if (field[0][0] == 'a') {
      if (next_slot == slot_cap) {
        slot_cap = slot_cap ? slot_cap * 2 : IDS_FIRST_CAPACITY;
        size_t *grown = realloc(slot_size, slot_cap * sizeof *grown);
        ok = grown != NULL;
        if (ok) slot_size = grown;
      }
      if (ok) {
        slot_size[next_slot] = (size_t)size;
        op.slot = next_slot++;
        ok = id_put(&ids, id, op.slot);
      }
    } else {
      op.kind = GB_FREE;
      op.slot = slot;
      id_remove(&ids, id);
    }
    ok = ok && gb_plan_push(plan, op);
    if (!ok) snprintf(why, why_len, "%s: out of host memory", name);
  }
  if (ok && plan->count == 0) {
    snprintf(why, why_len, "%s: no operations", name);
    ok = false;
  }
  /* Free what the trace left live. */
  for (size_t i = 0; ok && i < ids.capacity; i++) {
    if (ids.keys[i] == 0) continue;
    uint32_t s = ids.slots[i];
    ok = gb_plan_push(plan, (gb_op){GB_FREE, 0, s, slot_size[s]});
    if (!ok) snprintf(why, why_len, "%s: out of host memory", name);
  }
  if (plan->streams == 0) plan->streams = 1;
  free(slot_size);
  id_free(&ids);
  return ok;
}

/* ---- a FILE as a source of lines ---- */

typedef struct file_source {
  FILE *in;
  char *buf;
  size_t cap;
} file_source;

static bool file_next(void *source, char **line, size_t *len) {
  file_source *s = source;
  ssize_t n = getline(&s->buf, &s->cap, s->in);
  if (n < 0) return false;
  *line = s->buf;
  *len = (size_t)n;
  return true;
}

bool gb_plan_parse_trace(gb_plan *plan, FILE *in, const char *name, char *why, size_t why_len) {
  file_source s = {in, NULL, 0};
  bool ok = parse_lines(plan, file_next, &s, name, why, why_len);
  free(s.buf);
  return ok;
}

/* ---- a file through zlib as a source of lines ---- */

typedef struct gz_source {
  gzFile in;
  char buf[TRACE_LINE_MAX];
  bool too_long; /* a line did not fit buf */
  char sink[DRAIN_CHUNK];
} gz_source;

static bool gz_next(void *source, char **line, size_t *len) {
  gz_source *s = source;
  /* gzgets ends what it read with a NUL and says nothing of its length: with
   * the buffer filled with non-NUL bytes first, the last NUL is the end, and
   * an earlier one was in the data (which the parser refuses). */
  memset(s->buf, '\n', sizeof s->buf);
  if (gzgets(s->in, s->buf, sizeof s->buf) == NULL) return false;
  const char *end = memrchr(s->buf, '\0', sizeof s->buf);
  size_t n = end != NULL ? (size_t)(end - s->buf) : strlen(s->buf);
  if (n == sizeof s->buf - 1 && s->buf[n - 1] != '\n' && !gzeof(s->in)) {
    s->too_long = true;
    return false;
  }
  *line = s->buf;
  *len = n;
  return true;
}

/* zlib's verdict on the stream after reading it to its end: false, with
 * the reason in `why`, for a truncated or corrupt file. */
static bool gz_verdict(gz_source *s, const char *path, char *why, size_t why_len) {
  int err = Z_OK;
  const char *msg = gzerror(s->in, &err);
  if (err == Z_OK || err == Z_STREAM_END) return true;
  size_t plen = strlen(path); /* zlib's message starts with the path: said already */
  if (strncmp(msg, path, plen) == 0 && strncmp(msg + plen, ": ", 2) == 0) msg += plen + 2;
  if (err == Z_BUF_ERROR) {
    snprintf(why, why_len, "%s: the gzip file is truncated (zlib: %s)", path, msg);
  } else if (err == Z_ERRNO) {
    snprintf(why, why_len, "%s: read error: %s", path, strerror(errno));
  } else {
    snprintf(why, why_len, "%s: the gzip data is corrupt (zlib: %s)", path, msg);
  }
  return false;
}

bool gb_plan_read_trace(gb_plan *plan, const char *path, char *why, size_t why_len) {
  size_t len = strlen(path);
  bool gz_name = len > 3 && strcmp(path + len - 3, ".gz") == 0;
  gz_source *s = calloc(1, sizeof *s);
  if (s == NULL) {
    snprintf(why, why_len, "%s: out of host memory", path);
    return false;
  }
  errno = 0;
  s->in = gzopen(path, "rb");
  if (s->in == NULL) {
    snprintf(why, why_len, "%s: %s", path, errno ? strerror(errno) : "out of host memory");
    free(s);
    return false;
  }
  bool ok = true;
  if (gz_name && gzdirect(s->in)) { /* reads the header: plain text is "direct" */
    snprintf(why, why_len, "%s: not gzip data, though the name ends in .gz", path);
    ok = false;
  }
  if (ok) ok = parse_lines(plan, gz_next, s, path, why, why_len);
  if (s->too_long) {
    snprintf(why, why_len, "%s: a line is longer than %d characters: is it a trace?", path,
             TRACE_LINE_MAX - 1);
    ok = false;
  }
  if (!ok && !gzdirect(s->in)) {
    /* Damage may have decompressed into text the parser refused: read the
     * rest through, and if zlib finds the stream broken, say that instead. */
    while (gzread(s->in, s->sink, sizeof s->sink) > 0) {
    }
  }
  char zwhy[512];
  if (!gz_verdict(s, path, zwhy, sizeof zwhy)) {
    snprintf(why, why_len, "%s", zwhy);
    ok = false;
  }
  gzclose(s->in);
  free(s);
  return ok;
}

bool gb_plan_write_trace(const gb_plan *plan, const char *path) {
  FILE *f = fopen(path, "w");
  if (f == NULL) return false;
  fprintf(f, "op,id,size,stream\n");
  for (size_t i = 0; i < plan->count; i++) {
    const gb_op *op = &plan->ops[i];
    fprintf(f, "%c,%" PRIu32 ",%zu,%u\n", op->kind == GB_ALLOC ? 'a' : 'f', op->slot, op->size,
            (unsigned)op->stream);
  }
  return fclose(f) == 0;
}
