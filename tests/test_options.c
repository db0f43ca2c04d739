/* test_options.c: parsing sizes, booleans, integers and words; reading the
 * table from GPUMEM_<NAME>; warnings that name the variable and the value;
 * defaults kept on bad input. Runs without a backend. */
#include <stdio.h>
#include <stdlib.h>

#include "helpers.h"
#include "internal.h"
#include "log.h"
#include "options.h"

static const char *const option_vars[] = {
    "GPUMEM_LOG",          "GPUMEM_LOG_FILE",      "GPUMEM_BACKEND",
    "GPUMEM_HOST_DEVICES", "GPUMEM_HOST_CAPACITY", "GPUMEM_HOST_GRANULARITY",
    "GPUMEM_HOST_PEERS",   "GPUMEM_HOST_FABRIC",   "GPUMEM_FAULT"};

static int clean_env(void **state) {
  (void)state;
  for (size_t i = 0; i < GM_ARRAY_SIZE(option_vars); i++)
    unsetenv(option_vars[i]);
  gm_test_ignore(gpumem_log_set_callback(NULL, NULL));
  gm_test_ignore(gpumem_log_set_level(GPUMEM_LOG_WARN));
  gm_options_load();
  return 0;
}

static void test_parse_size(void **state) {
  (void)state;
  struct {
    const char *text;
    size_t value;
  } good[] = {{"0", 0},
              {"4096", 4096},
              {"512K", 512u << 10},
              {"512k", 512u << 10},
              {"64M", 64u << 20},
              {"64MiB", 64u << 20},
              {"64MB", 64u << 20},
              {"64 MiB", 64u << 20},
              {"2G", (size_t)2 << 30},
              {"2gib", (size_t)2 << 30},
              {"1T", (size_t)1 << 40},
              {" 7 ", 7},
              {"8B", 8}};
  for (size_t i = 0; i < GM_ARRAY_SIZE(good); i++) {
    size_t v = 1234;
    if (!gm_parse_size(good[i].text, &v)) fail_msg("'%s' should parse", good[i].text);
    assert_int_equal(v, good[i].value);
  }
  const char *bad[] = {"",
                       " ",
                       "-1",
                       "+5",
                       "1.5G",
                       "12X",
                       "G",
                       "1Gi",
                       "1GiBx",
                       "1 2",
                       "0x10",
                       "99999999999999999999",
                       "17179869184T",
                       NULL};
  for (size_t i = 0; i < GM_ARRAY_SIZE(bad); i++) {
    size_t v = 1234;
    if (gm_parse_size(bad[i], &v)) fail_msg("'%s' should not parse", bad[i] ? bad[i] : "NULL");
    assert_int_equal(v, 1234);
  }
}

static void test_parse_bool_int_word(void **state) {
  (void)state;
  const char *yes[] = {"1", "on", "ON", "true", "Yes", "enable", "enabled"};
  const char *no[] = {"0", "off", "False", "no", "disable", "disabled"};
  for (size_t i = 0; i < GM_ARRAY_SIZE(yes); i++) {
    bool b = false;
    assert_true(gm_parse_bool(yes[i], &b));
    assert_true(b);
  }
  for (size_t i = 0; i < GM_ARRAY_SIZE(no); i++) {
    bool b = true;
    assert_true(gm_parse_bool(no[i], &b));
    assert_false(b);
  }
  bool b = true;
  assert_false(gm_parse_bool("maybe", &b));
  assert_false(gm_parse_bool("", &b));
  assert_true(b);

  int64_t v = 5;
  assert_true(gm_parse_int("-12", &v));
  assert_int_equal(v, -12);
  assert_false(gm_parse_int("12abc", &v));
  assert_false(gm_parse_int("", &v));
  assert_false(gm_parse_int("99999999999999999999", &v));
  assert_int_equal(v, -12);

  assert_int_equal(gm_parse_word("host", "cuda|host"), 1);
  assert_int_equal(gm_parse_word("CUDA", "cuda|host"), 0);
  assert_int_equal(gm_parse_word("hos", "cuda|host"), -1);
  assert_int_equal(gm_parse_word("", "cuda|host"), -1);
  assert_int_equal(gm_parse_word("cuda|host", "cuda|host"), -1);
}

static void test_defaults(void **state) {
  (void)state;
  assert_int_equal(gm_option_word(GM_OPTION_LOG), GPUMEM_LOG_WARN);
  assert_int_equal(gm_option_word(GM_OPTION_BACKEND), 0); /* cuda */
  assert_int_equal(gm_option_int(GM_OPTION_HOST_DEVICES), 2);
  assert_int_equal(gm_option_size(GM_OPTION_HOST_CAPACITY), (size_t)1 << 30);
  assert_int_equal(gm_option_size(GM_OPTION_HOST_GRANULARITY), (size_t)2 << 20);
  assert_string_equal(gm_option_string(GM_OPTION_HOST_PEERS), "all");
  assert_string_equal(gm_option_string(GM_OPTION_LOG_FILE), "");
  assert_false(gm_option_is_set(GM_OPTION_HOST_CAPACITY));
  assert_string_equal(gm_option_env_name(GM_OPTION_HOST_CAPACITY), "GPUMEM_HOST_CAPACITY");
}

static void test_environment_values(void **state) {
  (void)state;
  setenv("GPUMEM_HOST_CAPACITY", "256MiB", 1);
  setenv("GPUMEM_HOST_DEVICES", "4", 1);
  setenv("GPUMEM_BACKEND", "HOST", 1);
  setenv("GPUMEM_HOST_FABRIC", "on", 1);
  gm_options_load();
  assert_int_equal(gm_option_size(GM_OPTION_HOST_CAPACITY), (size_t)256 << 20);
  assert_true(gm_option_is_set(GM_OPTION_HOST_CAPACITY));
  assert_int_equal(gm_option_int(GM_OPTION_HOST_DEVICES), 4);
  assert_int_equal(gm_option_word(GM_OPTION_BACKEND), 1);
  assert_int_equal(gm_option_word(GM_OPTION_HOST_FABRIC), 2);
}

static void test_invalid_value_warns_and_keeps_default(void **state) {
  (void)state;
  gm_test_log c = {0};
  assert_gpumem_ok(gpumem_log_set_callback(gm_test_log_capture, &c));
  setenv("GPUMEM_HOST_CAPACITY", "12X", 1);
  gm_options_load();
  assert_int_equal(c.count, 1);
  assert_non_null(strstr(c.line, "gpumem: warn: GPUMEM_HOST_CAPACITY='12X' is not a size"));
  assert_non_null(strstr(c.line, "keeping the default 1GiB"));
  assert_int_equal(gm_option_size(GM_OPTION_HOST_CAPACITY), (size_t)1 << 30);
  assert_false(gm_option_is_set(GM_OPTION_HOST_CAPACITY));

  unsetenv("GPUMEM_HOST_CAPACITY");
  setenv("GPUMEM_HOST_DEVICES", "65", 1);
  gm_options_load();
  assert_non_null(strstr(c.line, "GPUMEM_HOST_DEVICES='65' is outside 1..64"));
  assert_int_equal(gm_option_int(GM_OPTION_HOST_DEVICES), 2);

  unsetenv("GPUMEM_HOST_DEVICES");
  setenv("GPUMEM_HOST_GRANULARITY", "3M", 1);
  gm_options_load();
  assert_non_null(strstr(c.line, "GPUMEM_HOST_GRANULARITY='3M' is not a power of two"));
  assert_int_equal(gm_option_size(GM_OPTION_HOST_GRANULARITY), (size_t)2 << 20);

  unsetenv("GPUMEM_HOST_GRANULARITY");
  setenv("GPUMEM_BACKEND", "gpu", 1);
  gm_options_load();
  assert_non_null(strstr(c.line, "GPUMEM_BACKEND='gpu' is not one of cuda|host"));
  assert_int_equal(gm_option_word(GM_OPTION_BACKEND), 0);
}

static void test_log_level_from_environment(void **state) {
  (void)state;
  gm_test_log c = {0};
  assert_gpumem_ok(gpumem_log_set_callback(gm_test_log_capture, &c));
  setenv("GPUMEM_LOG", "debug", 1);
  gm_options_load();
  assert_int_equal(gpumem_log_get_level(), GPUMEM_LOG_DEBUG);
  setenv("GPUMEM_LOG", "chatty", 1);
  assert_gpumem_ok(gpumem_log_set_level(GPUMEM_LOG_WARN));
  gm_options_load();
  assert_int_equal(gpumem_log_get_level(), GPUMEM_LOG_WARN);
  assert_non_null(
      strstr(c.line, "GPUMEM_LOG='chatty' is not one of off|error|warn|info|debug|trace"));
}

static void test_override_logged_at_info(void **state) {
  (void)state;
  gm_test_log c = {0};
  assert_gpumem_ok(gpumem_log_set_callback(gm_test_log_capture, &c));
  assert_gpumem_ok(gpumem_log_set_level(GPUMEM_LOG_INFO));
  assert_true(gm_option_set(GM_OPTION_HOST_PEERS, "0-1", "test"));
  assert_string_equal(c.line, "gpumem: info: GPUMEM_HOST_PEERS=0-1 (from test)");
  char longtext[2000];
  memset(longtext, 'a', sizeof longtext - 1);
  longtext[sizeof longtext - 1] = '\0';
  assert_false(gm_option_set(GM_OPTION_HOST_PEERS, longtext, "test"));
  assert_string_equal(gm_option_string(GM_OPTION_HOST_PEERS), "0-1");
}

static void test_format_size(void **state) {
  (void)state;
  char buf[32];
  assert_string_equal(gm_format_size(512, buf, sizeof buf), "512 B");
  assert_string_equal(gm_format_size(2 << 20, buf, sizeof buf), "2 MiB");
  assert_string_equal(gm_format_size((size_t)3 << 29, buf, sizeof buf), "1.50 GiB");
  assert_string_equal(gm_format_size(0, buf, sizeof buf), "0 B");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_parse_size, clean_env, clean_env),
      cmocka_unit_test_setup_teardown(test_parse_bool_int_word, clean_env, clean_env),
      cmocka_unit_test_setup_teardown(test_defaults, clean_env, clean_env),
      cmocka_unit_test_setup_teardown(test_environment_values, clean_env, clean_env),
      cmocka_unit_test_setup_teardown(test_invalid_value_warns_and_keeps_default, clean_env,
                                      clean_env),
      cmocka_unit_test_setup_teardown(test_log_level_from_environment, clean_env, clean_env),
      cmocka_unit_test_setup_teardown(test_override_logged_at_info, clean_env, clean_env),
      cmocka_unit_test_setup_teardown(test_format_size, clean_env, clean_env),
  };
  return cmocka_run_group_tests_name("options", tests, NULL, NULL);
}
