/* fuzz_options.c: libFuzzer target for the option parsers (src/options.c)
 * and the other option-text parsers they lead to.
 *
 * The first byte picks an option of the table, the rest is its text (up to
 * the first NUL, as an environment variable would be): gm_option_set parses
 * it by the option's type (bool, int in a range, size with a unit, word,
 * string; GPUMEM_HOST_MIG's layout through gm_mig_spec_parse). The same text
 * goes to each primitive parser (gm_parse_int, _size, _bool, _word) and to
 * gm_fault_parse (GPUMEM_FAULT), and to GPUMEM_ALLOC_CONF's parser. Beyond the sanitizers, what an
 * accepted text yields is checked: a size with no unit is the decimal number; an int is what
 * strtoll reads; a word index is in range. */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_conf.h"
#include "backend.h"
#include "gpumem/log.h"
#include "mig.h"
#include "options.h"

#define TEXT_MAX 512 /* longer than an option string may be */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  if (gpumem_log_set_level(GPUMEM_LOG_OFF) != GPUMEM_OK) abort();
  return 0;
}

static bool digits_only(const char *s) {
  if (*s == '\0') return false;
  for (; *s != '\0'; s++)
    if (!isdigit((unsigned char)*s)) return false;
  return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  gm_option_id id = (gm_option_id)(data[0] % GM_OPTION_COUNT);
  char text[TEXT_MAX + 1];
  size_t n = size - 1 < TEXT_MAX ? size - 1 : TEXT_MAX;
  memcpy(text, data + 1, n);
  text[n] = '\0';

  if (id != GM_OPTION_LOG && id != GM_OPTION_LOG_FILE) gm_option_set(id, text, "fuzz");
  /* GPUMEM_ALLOC_CONF's key:value list (parsed when an allocator is made):
   * whatever the text, it names a kind libgpumem has. */
  const char *kind = gm_conf_parse_kind(text, true);
  gpumem_allocator_kind kinds[32];
  size_t nkinds = gpumem_allocator_list(kinds, 32);
  bool known = false;
  for (size_t k = 0; k < nkinds && k < 32; k++)
    known = known || strcmp(kinds[k].name, kind) == 0;
  if (!known) abort();

  int64_t i = 0;
  if (gm_parse_int(text, &i)) {
    errno = 0;
    if (strtoll(text, NULL, 10) != i || errno != 0) abort();
  }
  size_t sz = 0;
  if (gm_parse_size(text, &sz) && digits_only(text)) {
    if (strtoull(text, NULL, 10) != sz) abort();
  }
  bool b = false;
  (void)gm_parse_bool(text, &b);
  int w = gm_parse_word(text, "off|error|warn|info|debug|trace");
  if (w < -1 || w > 5) abort();

  if (gm_fault_parse(text)) gm_fault_clear();
  gm_mig_spec spec;
  char why[256];
  why[0] = '\0';
  if (!gm_mig_spec_parse(text, &spec, why, sizeof why) && strnlen(why, sizeof why) == sizeof why)
    abort();
  return 0;
}
