/* uuid.h: device UUIDs as CUDA and NVML write them. */
#ifndef GPUMEM_SRC_UUID_H
#define GPUMEM_SRC_UUID_H

#include <stdbool.h>
#include <stddef.h>

/* "GPU-" or "MIG-", 36 characters of UUID, the terminator. */
#define GM_UUID_TEXT_MAX 48

/* Write `prefix` ("GPU-" or "MIG-") and the 16 bytes as
 * xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx into buf (at least GM_UUID_TEXT_MAX). */
void gm_uuid_format(const unsigned char bytes[16], const char *prefix, char *buf, size_t len);

/* Parse 32 hex digits, dashes allowed anywhere, after an optional "GPU-" or
 * "MIG-" prefix (case-insensitive). False for anything else. */
bool gm_uuid_parse(const char *text, unsigned char bytes[16]);

/* True when `text` starts with `prefix`, ignoring case. */
bool gm_starts_with_nocase(const char *text, const char *prefix);

#endif
