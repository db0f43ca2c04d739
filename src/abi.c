/* abi.c: reading and writing public structs of another version (abi.h). */
#include "abi.h"

#include <string.h>

static size_t size_of(const void *p) {
  size_t n;
  memcpy(&n, p, sizeof n);
  return n;
}

static gpumem_status check(const void *p, size_t full, const char *what) {
  if (p == NULL) return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "%s is NULL", what);
  size_t n = size_of(p);
  if (n < sizeof(size_t) || n > full + GM_ABI_GROWTH_MAX) {
    return gm_error(GPUMEM_ERR_INVALID_ARGUMENT,
                    "%s has struct_size %zu (this libgpumem's is %zu): initialise it with its "
                    "*_INIT macro",
                    what, n, full);
  }
  return GPUMEM_OK;
}

gpumem_status gm_abi_read(const void *in, size_t full, const void *defaults, void *out,
                          const char *what) {
  gpumem_status st = check(in, full, what);
  if (st != GPUMEM_OK) return st;
  size_t n = size_of(in);
  if (n > full) { /* a newer caller: what this library does not know must be unset */
    const unsigned char *extra = (const unsigned char *)in + full;
    for (size_t i = 0; i < n - full; i++) {
      if (extra[i] != 0) {
        return gm_error(GPUMEM_ERR_NOT_SUPPORTED,
                        "%s sets a field at byte %zu, past the %zu bytes this libgpumem knows "
                        "(the caller was built against a newer libgpumem)",
                        what, full + i, full);
      }
    }
  }
  memcpy(out, defaults, full);
  memcpy(out, in, n < full ? n : full);
  memcpy(out, &full, sizeof full);
  return GPUMEM_OK;
}

gpumem_status gm_abi_check_out(const void *out, size_t full, const char *what) {
  return check(out, full, what);
}

void gm_abi_write(void *out, const void *value, size_t full) {
  size_t n = size_of(out);
  memcpy((unsigned char *)out + sizeof n, (const unsigned char *)value + sizeof n,
         (n < full ? n : full) - sizeof n);
}
