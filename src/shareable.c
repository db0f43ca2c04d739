/* shareable.c: creating physical memory that other processes (or nodes) can
 * import, with the fallback the buffer and the arena share.
 *
 * A caller asking for FABRIC handles (multi-node NVLink, an IMEX channel)
 * gets memory created with FABRIC and POSIX_FD together where the device
 * advertises fabric handles (CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_FABRIC_
 * SUPPORTED); where it does not, or where the system refuses them at
 * creation (no IMEX channel: NOT_PERMITTED, as measured on our H100), the
 * creation is made with POSIX_FD alone, once, and the caller keeps that
 * choice for its later creations, with an info line saying why. This sits on
 * the seam (gm_be_*), not in it: it is policy, not a driver call.
 */
#include <stdio.h>

#include "backend.h"
#include "log.h"
#include "shareable.h"

gpumem_status gm_shareable_types(gpumem_handle_type requested, unsigned *handle_types) {
  if (requested != GPUMEM_HANDLE_NONE && requested != GPUMEM_HANDLE_POSIX_FD &&
      requested != GPUMEM_HANDLE_FABRIC) {
    return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "handle type %d is not NONE, POSIX_FD or FABRIC",
                    (int)requested);
  }
  *handle_types = requested == GPUMEM_HANDLE_FABRIC
                      ? (unsigned)(GPUMEM_HANDLE_FABRIC | GPUMEM_HANDLE_POSIX_FD)
                      : (unsigned)requested;
  return GPUMEM_OK;
}

/* Whether a failed creation with FABRIC may be the system refusing fabric
 * handles, so that one without them can work. NOT_PERMITTED: no IMEX channel
 * (measured on our H100, which advertises fabric); NOT_SUPPORTED; and
 * INVALID_ARGUMENT (CUDA_ERROR_INVALID_VALUE): cuda.h does not say which of
 * the codes cuMemCreate lists answers a handle type the system cannot give,
 * and INVALID_VALUE is what it answers for a handle type a HOST allocation
 * cannot have ("requestedHandleTypes must be 0, any other value will result
 * in ::CUDA_ERROR_INVALID_VALUE"). */
static bool fabric_refusal(gpumem_status st) {
  return st == GPUMEM_ERR_NOT_PERMITTED || st == GPUMEM_ERR_NOT_SUPPORTED ||
         st == GPUMEM_ERR_INVALID_ARGUMENT;
}

gpumem_status gm_phys_create_shareable(int device, size_t bytes, bool compression,
                                       unsigned *handle_types, const char *who,
                                       gpumem_phys_t *out) {
  gpumem_phys_props p = {device, *handle_types, compression};
  if (!(*handle_types & GPUMEM_HANDLE_FABRIC)) return gm_be_phys_create(&p, bytes, out);
  /* Ask for fabric only where the device says it has it
   * (CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_FABRIC_SUPPORTED; 0 on PCIe GPUs and MIG
   * slices, where cuMemCreate would fail with a code of its choosing). */
  gm_device_props dev;
  gpumem_status st = gm_be_device_props(device, &dev);
  if (st != GPUMEM_OK) return st;
  char why[GM_ERROR_DETAIL_MAX];
  if (dev.fabric) {
    st = gm_be_phys_create(&p, bytes, out);
    if (st == GPUMEM_OK || !fabric_refusal(st)) return st;
    snprintf(why, sizeof why, "fabric handles refused (%s)", gm_error_detail());
  } else {
    snprintf(why, sizeof why, "the device does not support fabric handles");
  }
  p.handle_types = GPUMEM_HANDLE_POSIX_FD;
  st = gm_be_phys_create(&p, bytes, out);
  if (st != GPUMEM_OK) {
    char detail[GM_ERROR_DETAIL_MAX];
    snprintf(detail, sizeof detail, "%s", gm_error_detail());
    return gm_error(st, "%s (without fabric handles, since %s)", detail, why);
  }
  gm_error_discard();
  gm_log(GPUMEM_LOG_INFO, "%s on device %d: %s; using POSIX file descriptors", who, device, why);
  *handle_types = GPUMEM_HANDLE_POSIX_FD;
  return GPUMEM_OK;
}
