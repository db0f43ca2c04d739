/* uuid.c: formatting and parsing device UUIDs.
 *
 * CUDA hands out the 16 bytes of a device's UUID (cuDeviceGetUuid); NVML and
 * nvidia-smi write them as "GPU-" or "MIG-" followed by the canonical
 * 8-4-4-4-12 hex form. Matching the two is how a CUDA ordinal is tied to its
 * NVML handle, so both directions live here, once.
 */
#include <ctype.h>
#include <stdio.h>
#include <strings.h>

#include "uuid.h"

void gm_uuid_format(const unsigned char b[16], const char *prefix, char *buf, size_t len) {
  snprintf(buf, len, "%s%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
           prefix, b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
           b[13], b[14], b[15]);
}

bool gm_starts_with_nocase(const char *text, const char *prefix) {
  size_t n = 0;
  while (prefix[n] != '\0')
    n++;
  return strncasecmp(text, prefix, n) == 0;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = tolower(c);
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

bool gm_uuid_parse(const char *text, unsigned char bytes[16]) {
  if (text == NULL) return false;
  if (gm_starts_with_nocase(text, "GPU-") || gm_starts_with_nocase(text, "MIG-")) text += 4;
  unsigned char out[16];
  int digits = 0;
  for (const char *p = text; *p != '\0'; p++) {
    if (*p == '-') continue;
    int v = hexval((unsigned char)*p);
    if (v < 0 || digits == 32) return false;
    if (digits % 2 == 0)
      out[digits / 2] = (unsigned char)(v << 4);
    else
      out[digits / 2] |= (unsigned char)v;
    digits++;
  }
  if (digits != 32) return false;
  for (int i = 0; i < 16; i++)
    bytes[i] = out[i];
  return true;
}
