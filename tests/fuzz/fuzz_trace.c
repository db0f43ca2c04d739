/* fuzz_trace.c: libFuzzer target for gpumem-bench's trace reader
 * (bench/trace_file.c: parse_lines through its two sources).
 *
 * The input is a trace file's bytes. It is read three ways: from a FILE
 * (gb_plan_parse_trace, getline), as a plain file through zlib
 * (gb_plan_read_trace on a .csv name: gzopen reads it "direct"), and
 * compressed with gzip (the same on a .csv.gz name). A fourth read takes the
 * raw bytes as a .csv.gz file, so that damaged gzip data meets zlib's checks.
 * Beyond the sanitizers: a refusal has its reason, an accepted plan has
 * operations, every free follows its allocation with the same size, and
 * what the trace leaves live is freed at its end (the reader's promise). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "bench.h"

static char plain_path[64], gz_path[64], raw_gz_path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  int pid = (int)getpid();
  snprintf(plain_path, sizeof plain_path, "%.32s/gm-fuzz-%d.csv", dir, pid);
  snprintf(gz_path, sizeof gz_path, "%.32s/gm-fuzz-%d.csv.gz", dir, pid);
  snprintf(raw_gz_path, sizeof raw_gz_path, "%.32s/gm-fuzz-%d-raw.csv.gz", dir, pid);
  return 0;
}

/* An accepted plan: operations, frees of live slots with their size, nothing live at the end. */
static void check_plan(const gb_plan *p) {
  if (p->count == 0) abort();
  size_t slots = 0;
  for (size_t i = 0; i < p->count; i++)
    if (p->ops[i].kind == GB_ALLOC && p->ops[i].slot + 1 > slots) slots = p->ops[i].slot + 1;
  size_t *live = calloc(slots + 1, sizeof *live);
  if (live == NULL) abort();
  for (size_t i = 0; i < p->count; i++) {
    const gb_op *op = &p->ops[i];
    if (op->slot >= slots + (op->kind == GB_ALLOC)) abort();
    if (op->kind == GB_ALLOC) {
      if (live[op->slot] != 0 || op->size == 0) abort();
      live[op->slot] = op->size;
    } else {
      if (live[op->slot] != op->size) abort();
      live[op->slot] = 0;
    }
  }
  for (size_t s = 0; s < slots; s++)
    if (live[s] != 0) abort();
  free(live);
}

static void read_path(const char *path) {
  gb_plan plan = {0};
  char why[512] = "";
  if (gb_plan_read_trace(&plan, path, why, sizeof why))
    check_plan(&plan);
  else if (why[0] == '\0')
    abort();
  gb_plan_free(&plan);
}

static void write_file(const char *path, const uint8_t *data, size_t size) {
  FILE *f = fopen(path, "wb");
  if (f == NULL || fwrite(data, 1, size, f) != size || fclose(f) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  gb_plan plan = {0};
  char why[512] = "";
  FILE *in = fmemopen((void *)data, size, "rb");
  if (size > 0 && in != NULL) {
    if (gb_plan_parse_trace(&plan, in, "fuzz", why, sizeof why))
      check_plan(&plan);
    else if (why[0] == '\0')
      abort();
    fclose(in);
  }
  gb_plan_free(&plan);

  write_file(plain_path, data, size);
  read_path(plain_path);

  gzFile gz = gzopen(gz_path, "wb1");
  if (gz == NULL || (size > 0 && gzwrite(gz, data, (unsigned)size) != (int)size) ||
      gzclose(gz) != Z_OK)
    abort();
  read_path(gz_path);

  write_file(raw_gz_path, data, size);
  read_path(raw_gz_path);
  return 0;
}
