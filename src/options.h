/* options.h: the library's settings, one table, read from GPUMEM_<NAME>.
 *
 * Each row: identifier, type, default (as the user would write it), bounds
 * for numbers, accepted words for GM_OPT_WORD, and a one-line meaning. An
 * invalid value is a warning that names the variable and the value, and the
 * default stays; a valid non-default value is logged at info level.
 */
#ifndef GPUMEM_SRC_OPTIONS_H
#define GPUMEM_SRC_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum gm_option_type {
  GM_OPT_BOOL,   /* on/off, true/false, yes/no, 1/0, enable(d)/disable(d) */
  GM_OPT_INT,    /* decimal integer within [min, max] */
  GM_OPT_SIZE,   /* bytes, with optional K/M/G/T suffix (binary; "KiB", "KB", "K") */
  GM_OPT_WORD,   /* one of a '|'-separated list of words */
  GM_OPT_STRING, /* free text (paths, lists parsed by their user) */
} gm_option_type;

/* X(id, type, default, min, max, words, help) */
#define GM_OPTION_TABLE(X)                                                                         \
  X(LOG, GM_OPT_WORD, "warn", 0, 0, "off|error|warn|info|debug|trace", "log level")                \
  X(LOG_FILE, GM_OPT_STRING, "", 0, 0, NULL,                                                       \
    "append log lines to this file instead of stderr (%h: host name, %p: pid)")                    \
  X(BACKEND, GM_OPT_WORD, "cuda", 0, 0, "cuda|host",                                               \
    "cuda: the GPU (default); host: emulated devices on POSIX memory, for CPU-only machines")      \
  X(HOST_DEVICES, GM_OPT_INT, "2", 1, 64, NULL, "number of devices the host backend emulates")     \
  X(HOST_CAPACITY, GM_OPT_SIZE, "1GiB", 1, INT64_MAX, NULL, "memory of each emulated device")      \
  X(HOST_GRANULARITY, GM_OPT_SIZE, "2MiB", 4096, 1073741824, NULL,                                 \
    "allocation granularity of the emulated devices (a power of two)")                             \
  X(HOST_PEERS, GM_OPT_STRING, "all", 0, 0, NULL,                                                  \
    "peer links between emulated devices: all, none, or pairs such as 0-1,1-2")                    \
  X(HOST_UUIDS, GM_OPT_STRING, "", 0, 0, NULL,                                                     \
    "UUIDs of the emulated devices, comma-separated (32 hex digits each, dashes and a GPU- or "    \
    "MIG- prefix allowed); devices without one get a generated UUID")                              \
  X(HOST_FABRIC, GM_OPT_WORD, "refused", 0, 0, "off|refused|on",                                   \
    "fabric handles on emulated devices: unsupported, advertised but refused (like a GPU without " \
    "an IMEX channel), or working within the process")                                             \
  X(HOST_STREAM_DELAY, GM_OPT_INT, "0", 0, 1000000, NULL,                                          \
    "host backend: delay each item of stream work by a random time up to this many microseconds "  \
    "(0: none), so that stream-ordering races show")                                               \
  X(HOST_STREAM_SEED, GM_OPT_INT, "1", 0, INT64_MAX, NULL,                                         \
    "seed of the random stream delays (GPUMEM_HOST_STREAM_DELAY)")                                 \
  X(HOST_MIG, GM_OPT_STRING, "", 0, 0, NULL,                                                       \
    "GPUs the host backend emulates, ';'-separated: gpu, a model (a100-40, a100-80, h100, h200), " \
    "or a model in MIG mode with its instances, e.g. h100:3g.40gb,2g.20gb*2;gpu")                  \
  X(HOST_VISIBLE, GM_OPT_WORD, "cuda", 0, 0, "cuda|all",                                           \
    "emulated devices the process sees: cuda applies CUDA_VISIBLE_DEVICES as the driver does; "    \
    "all ignores it (runs that hide a real GPU with CUDA_VISIBLE_DEVICES= yet emulate devices)")   \
  X(TRACE, GM_OPT_STRING, "", 0, 0, NULL,                                                          \
    "append every alloc and free of libgpumem's pools, arenas, buffers and allocators to this "    \
    "file (op,id,size,stream; %h: host name, %p: pid)")                                            \
  X(RECEIVE_TIMEOUT, GM_OPT_INT, "30000", 0, INT32_MAX, NULL,                                      \
    "milliseconds gpumem_buffer_receive waits for the sender's message before NOT_READY "          \
    "(0: wait forever)")                                                                           \
  X(ALLOC_CONF, GM_OPT_STRING, "", 0, 0, NULL,                                                     \
    "the default allocator and the framework hooks' allocators: key:value pairs, e.g. "            \
    "kind:pool,cache_max_bytes:512M,release_threshold:1G (kind: pool, pool-nocache, arena or a "   \
    "gpumem_allocator_list name)")                                                                 \
  X(SHOW_STATS, GM_OPT_BOOL, "off", 0, 0, NULL,                                                    \
    "print each live allocator's statistics to stderr at exit")                                    \
  X(FAULT, GM_OPT_STRING, "", 0, 0, NULL,                                                          \
    "inject failures: op:N[,op:N...] makes the Nth call of a backend operation fail")

typedef enum gm_option_id {
#define GM_OPT_ID_(id, type, def, min, max, words, help) GM_OPTION_##id,
  GM_OPTION_TABLE(GM_OPT_ID_)
#undef GM_OPT_ID_
      GM_OPTION_COUNT
} gm_option_id;

#define GM_OPTION_STRING_MAX 1536

/* (Re)read every option from the environment. Not thread-safe: called under
 * the library's init lock, and by tests. */
void gm_options_load(void);

/* Set an option from text as if it came from the environment; returns false
 * (after logging the warning) when the text is invalid for the option. */
bool gm_option_set(gm_option_id id, const char *text, const char *source);

bool gm_option_bool(gm_option_id id);
int64_t gm_option_int(gm_option_id id);
size_t gm_option_size(gm_option_id id);
/* Index of the chosen word in the option's word list. */
int gm_option_word(gm_option_id id);
const char *gm_option_string(gm_option_id id);
/* True when the value did not come from the default. */
bool gm_option_is_set(gm_option_id id);
/* The source gpumem_init passes to gm_option_set for its explicit options. */
#define GM_OPTION_SOURCE_INIT "gpumem_init"
/* True when the value came from an explicit gpumem_init option (source
 * GM_OPTION_SOURCE_INIT): its user refuses a value it cannot use
 * (INVALID_ARGUMENT) where an environment variable's is warned about and
 * replaced by the default. */
bool gm_option_strict(gm_option_id id);
/* "GPUMEM_<NAME>" */
const char *gm_option_env_name(gm_option_id id);

/* Parsers shared with the rest of the library; each returns false for
 * malformed text and leaves *out unchanged. */
bool gm_parse_size(const char *text, size_t *out);
bool gm_parse_bool(const char *text, bool *out);
bool gm_parse_int(const char *text, int64_t *out);
/* Index of `text` in a '|'-separated word list (case-insensitive), or -1. */
int gm_parse_word(const char *text, const char *words);

/* Format a byte count with a binary suffix ("2 MiB", "1.50 GiB", "512 B"). */
const char *gm_format_size(size_t bytes, char *buf, size_t len);

#endif
