/* test_parsers_fuzz.c: the text parsers against random and mutated input.
 * CUDA_VISIBLE_DEVICES, option values, sizes and trace lines come from users
 * and files; whatever they hold must give an answer (a value or a reason),
 * never a crash, an overflow or a hang. Seeded, so a failure reproduces; the
 * sanitizer builds run it too. */
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"
#include "helpers.h"
#include "backend/nvml.h"
#include "options.h"

#define ROUNDS 20000

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* Random text from an alphabet that hits the parsers' interesting bytes. */
static void random_text(char *buf, size_t cap) {
  static const char alphabet[] = "0123456789abcdefABCDEF-,/: \t\r\nGPUMIGgpumigKMGTiBb.+x\x01\xff";
  size_t n = next() % (cap - 1);
  for (size_t i = 0; i < n; i++)
    buf[i] = alphabet[next() % (sizeof alphabet - 1)];
  buf[n] = '\0';
}

static void test_visible_devices(void **state) {
  (void)state;
  gm_nvml_install(NULL, "fuzz");
  assert_gpumem_ok(gpumem_log_set_level(GPUMEM_LOG_OFF));
  static const char *const seeds[] = {"0,1", "GPU-8b2f", "MIG-a1000007-0000-4000-8000-000000000007",
                                      "MIG-GPU-a1000000-0000-4000-8000-000000000000/7/0", ""};
  char text[160];
  gpumem_visible_devices v;
  for (int i = 0; i < ROUNDS; i++) {
    if (i % 2) {
      random_text(text, sizeof text);
    } else { /* mutate a valid list */
      snprintf(text, sizeof text, "%s", seeds[next() % 5]);
      size_t n = strlen(text);
      if (n > 0) text[next() % n] = (char)(next() % 128);
    }
    assert_gpumem_ok(gpumem_visible_devices_read(text, &v));
    assert_true(v.count <= GPUMEM_MAX_DEVICES);
    if (v.stopped) assert_true(v.stopped_at == v.count && v.why[0] != '\0');
    for (size_t k = 0; k < v.count; k++)
      assert_true(strlen(v.entries[k].text) > 0);
  }
  assert_gpumem_ok(gpumem_log_set_level(GPUMEM_LOG_WARN));
  gm_nvml_reset();
}

static void test_sizes_and_options(void **state) {
  (void)state;
  char text[64];
  for (int i = 0; i < ROUNDS; i++) {
    random_text(text, sizeof text);
    size_t size = 7;
    if (gm_parse_size(text, &size)) {
      /* Whatever parsed is what the digits and the unit say, without overflow. */
      size_t again = 0;
      assert_true(gm_parse_size(text, &again));
      assert_int_equal(size, again);
    } else {
      assert_int_equal(size, 7);
    }
    int64_t v = 3;
    if (!gm_parse_int(text, &v)) assert_int_equal(v, 3);
    bool b = true;
    if (!gm_parse_bool(text, &b)) assert_true(b);
  }
}

static void test_trace_lines(void **state) {
  (void)state;
  static const char *const lines[] = {"a,1,4096,0\n", "f,1,4096,0\n", "a,2,100,3\n", "f,2,100,3\n",
                                      "op,id,size,stream\n"};
  char text[512];
  for (int i = 0; i < ROUNDS / 10; i++) {
    size_t used = 0;
    int nlines = (int)(next() % 8);
    for (int l = 0; l < nlines; l++) {
      used += (size_t)snprintf(text + used, sizeof text - used, "%s", lines[next() % 5]);
    }
    if (used > 0 && next() % 2) text[next() % used] = (char)(next() % 128); /* one bad byte */
    FILE *f = fmemopen(text, used ? used : 1, "r");
    gb_plan p = {0};
    char why[256] = "";
    bool ok = gb_plan_parse_trace(&p, f, "fuzz", why, sizeof why);
    fclose(f);
    if (ok) {
      /* Accepted plans are balanced: the live bytes end at zero. */
      size_t *curve = malloc((p.count + 1) * sizeof *curve);
      gb_plan_live_curve(&p, curve);
      assert_int_equal(curve[p.count - 1], 0);
      free(curve);
    } else {
      assert_true(strncmp(why, "fuzz", 4) == 0);
    }
    gb_plan_free(&p);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_visible_devices),
      cmocka_unit_test(test_sizes_and_options),
      cmocka_unit_test(test_trace_lines),
  };
  return cmocka_run_group_tests_name("parsers_fuzz", tests, NULL, NULL);
}
