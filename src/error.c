/* error.c: status names and messages, and the thread-local last error.
 *
 * The status table in gpumem/error.h generates the enum, and here the name and
 * message arrays, so adding a code is one line. The last-error machinery keeps
 * two thread-local buffers: the detail written where a failure is detected
 * (gm_error) and the sentence that gpumem_last_error() returns, composed when
 * the public function returns (gm_api_return). Nothing here allocates, so it
 * works when memory is short and from any thread.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "log.h"

static const char *const status_names[] = {
#define GM_NAME_(name, value, msg) [value] = "GPUMEM_" #name,
    GPUMEM_STATUS_MAP(GM_NAME_)
#undef GM_NAME_
};

static const char *const status_messages[] = {
#define GM_MSG_(name, value, msg) [value] = msg,
    GPUMEM_STATUS_MAP(GM_MSG_)
#undef GM_MSG_
};

_Static_assert(GM_ARRAY_SIZE(status_names) == GPUMEM_STATUS_COUNT,
               "GPUMEM_STATUS_COUNT must match GPUMEM_STATUS_MAP");

static bool status_valid(gpumem_status s) {
  return (int)s >= 0 && (int)s < GPUMEM_STATUS_COUNT && status_names[s] != NULL;
}

GPUMEM_API const char *gpumem_status_string(gpumem_status status) {
  return status_valid(status) ? status_messages[status] : "unknown status";
}

GPUMEM_API const char *gpumem_status_name(gpumem_status status) {
  return status_valid(status) ? status_names[status] : "GPUMEM_UNKNOWN_STATUS";
}

typedef struct gm_error_tls {
  char detail[GM_ERROR_DETAIL_MAX];
  char sentence[GM_ERROR_SENTENCE_MAX];
  gpumem_status status;
} gm_error_tls;

/* The sentence buffers: touched only on failure (general-dynamic TLS). */
static _Thread_local gm_error_tls tls_error;
/* Whether a detail was recorded and not yet consumed by a public return:
 * cleared at every public entry, so it is on the hot path. */
static GM_TLS_FAST bool tls_pending;

gpumem_status gm_verror(gpumem_status status, const char *fmt, va_list ap) {
  vsnprintf(tls_error.detail, sizeof tls_error.detail, fmt, ap);
  tls_pending = true;
  return status;
}

gpumem_status gm_error(gpumem_status status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  gm_verror(status, fmt, ap);
  va_end(ap);
  return status;
}

void gm_error_discard(void) {
  tls_pending = false; /* the detail is read only while pending */
}

const char *gm_error_detail(void) {
  return tls_pending ? tls_error.detail : "";
}

gpumem_status gm_api_return(const char *func, gpumem_status status) {
  if (status == GPUMEM_OK) return status; /* a recovered detail is dropped at the next entry */
  if (tls_pending && tls_error.detail[0] != '\0') {
    snprintf(tls_error.sentence, sizeof tls_error.sentence, "%s: %s", func, tls_error.detail);
  } else {
    snprintf(tls_error.sentence, sizeof tls_error.sentence, "%s: %s", func,
             gpumem_status_string(status));
  }
  tls_pending = false;
  tls_error.status = status;
  gm_log(GPUMEM_LOG_DEBUG, "%s (%s)", tls_error.sentence, gpumem_status_name(status));
  return status;
}

GPUMEM_API const char *gpumem_last_error(void) {
  return tls_error.sentence;
}

GPUMEM_API gpumem_status gpumem_last_status(void) {
  return tls_error.status;
}

GPUMEM_API void gpumem_clear_last_error(void) {
  tls_error.sentence[0] = '\0';
  tls_error.status = GPUMEM_OK;
  gm_error_discard();
}
