/* trace_file.c: reading allocation traces into plans.
 *
 * A trace is CSV with the header "op,id,size,stream" and one line per
 * operation: "a,17,1048576,0" allocates id 17, "f,17,1048576,0" frees it.
 * GPUMEM_TRACE writes this format and ../shared/traces holds a real one from a
 * PyTorch training run. Files ending in .gz are read through `gzip -dc`.
 *
 * The reader is strict, since a silently mangled trace gives plausible but
 * wrong figures: a line that is not four well-formed fields, an op other than
 * a/f, a number that overflows, an id allocated twice or freed without being
 * live, or a free whose size differs from its allocation stops the read with
 * the file, the line number and the line's text. Ids still live at the end
 * are freed, so the plan is balanced.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "hashmap.h"

#define MAX_STREAMS 1024

static bool parse_u64(const char *s, uint64_t *out) {
  if (*s < '0' || *s > '9') return false;
  char *end = NULL;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0') return false;
  *out = v;
  return true;
}

bool gb_plan_parse_trace(gb_plan *plan, FILE *in, const char *name, char *why, size_t why_len) {
  gm_hashmap ids = GM_HASHMAP_INIT; /* id + 1 -> slot + 1 */
  size_t *slot_size = NULL, slot_cap = 0;
  char *line = NULL;
  size_t line_cap = 0, lineno = 0;
  uint32_t next_slot = 0;
  bool ok = true;
  ssize_t n;
  while (ok && (n = getline(&line, &line_cap, in)) >= 0) {
    lineno++;
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
      line[--n] = '\0';
    if (n == 0) continue;
    if (lineno == 1 && strncmp(line, "op,", 3) == 0) continue; /* the header */
    char copy[128];
    snprintf(copy, sizeof copy, "%s", line);
    char *field[5] = {0};
    int nf = 0;
    for (char *p = line, *save = NULL; nf < 5 && (p = strtok_r(nf ? NULL : p, ",", &save));) {
      field[nf++] = p;
    }
    uint64_t id = 0, size = 0, stream = 0;
    const char *problem = NULL;
    if (nf != 4)
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
    uint64_t slot1 = 0;
    bool live = problem == NULL && gm_hashmap_get(&ids, id + 1, &slot1);
    if (problem == NULL && field[0][0] == 'a' && live) problem = "id allocated again while live";
    if (problem == NULL && field[0][0] == 'f' && !live) problem = "free of an id that is not live";
    if (problem == NULL && field[0][0] == 'f' && slot_size[slot1 - 1] != size)
      problem = "free size differs from the allocation's";
    if (problem != NULL) {
      snprintf(why, why_len, "%s:%zu: %s: '%s'", name, lineno, problem, copy);
      ok = false;
      break;
    }
    gb_op op = {GB_ALLOC, (uint16_t)stream, 0, (size_t)size};
    if (field[0][0] == 'a') {
      if (next_slot == slot_cap) {
        slot_cap = slot_cap ? slot_cap * 2 : 1024;
        size_t *grown = realloc(slot_size, slot_cap * sizeof *grown);
        if (grown == NULL) {
          ok = false;
          snprintf(why, why_len, "%s: out of host memory", name);
          break;
        }
        slot_size = grown;
      }
      slot_size[next_slot] = (size_t)size;
      op.slot = next_slot++;
      ok = gm_hashmap_put(&ids, id + 1, op.slot + 1u);
    } else {
      op.kind = GB_FREE;
      op.slot = (uint32_t)(slot1 - 1);
      gm_hashmap_remove(&ids, id + 1);
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
    uint32_t s = (uint32_t)(ids.values[i] - 1);
    ok = gb_plan_push(plan, (gb_op){GB_FREE, 0, s, slot_size[s]});
  }
  if (plan->streams == 0) plan->streams = 1;
  free(line);
  free(slot_size);
  gm_hashmap_free(&ids);
  return ok;
}

bool gb_plan_read_trace(gb_plan *plan, const char *path, char *why, size_t why_len) {
  size_t len = strlen(path);
  bool gz = len > 3 && strcmp(path + len - 3, ".gz") == 0;
  FILE *in = NULL;
  if (gz) {
    /* gzip -dc -- 'path', with single quotes in the path escaped */
    char cmd[4200] = "gzip -dc -- '";
    size_t used = strlen(cmd);
    for (const char *p = path; *p && used + 5 < sizeof cmd; p++) {
      if (*p == '\'') {
        memcpy(cmd + used, "'\\''", 4);
        used += 4;
      } else {
        cmd[used++] = *p;
      }
    }
    cmd[used++] = '\'';
    cmd[used] = '\0';
    strncat(cmd, " 2>/dev/null", sizeof cmd - used - 1);
    FILE *probe = fopen(path, "r");
    if (probe == NULL) {
      snprintf(why, why_len, "%s: %s", path, strerror(errno));
      return false;
    }
    fclose(probe);
    in = popen(cmd, "r");
  } else {
    in = fopen(path, "r");
  }
  if (in == NULL) {
    snprintf(why, why_len, "%s: %s", path, strerror(errno));
    return false;
  }
  bool ok = gb_plan_parse_trace(plan, in, path, why, why_len);
  int rc = gz ? pclose(in) : fclose(in);
  if (ok && gz && rc != 0) {
    snprintf(why, why_len, "%s: gzip -dc failed (status %d): is it a gzip file?", path, rc);
    ok = false;
  }
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
