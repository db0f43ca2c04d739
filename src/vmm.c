/* vmm.c: the public virtual-memory primitives (gpumem/vmm.h).
 *
 * Each function initialises the library if needed and forwards to the seam
 * (backend.c), which checks arguments, tracks handles and counts objects;
 * the backend applies CUDA's rules. Device addresses cross the public API as
 * void * and the seam as uintptr_t.
 */
#include <stdio.h>

#include "api.h"
#include "gpumem/vmm.h"
#include "log.h"

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

GPUMEM_API gpumem_status gpumem_vmm_granularity(const gpumem_phys_props *props, bool recommended,
                                                size_t *granularity) {
  GM_API_FORWARD(gm_be_granularity(props, recommended, granularity));
}

static gpumem_status reserve(size_t size, size_t alignment, void **va) {
  if (va == NULL) return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "va is NULL");
  uintptr_t p = 0;
  gpumem_status st = gm_be_va_reserve(size, alignment, &p);
  if (st == GPUMEM_OK) *va = (void *)p;
  return st;
}

GPUMEM_API gpumem_status gpumem_vmm_reserve(size_t size, size_t alignment, void **va) {
  GM_API_FORWARD(reserve(size, alignment, va));
}

GPUMEM_API gpumem_status gpumem_vmm_free(void *va, size_t size) {
  GM_API_FORWARD(gm_be_va_free((uintptr_t)va, size));
}

GPUMEM_API gpumem_status gpumem_vmm_create(const gpumem_phys_props *props, size_t size,
                                           gpumem_phys_t *phys) {
  GM_API_FORWARD(gm_be_phys_create(props, size, phys));
}

GPUMEM_API gpumem_status gpumem_vmm_release(gpumem_phys_t phys) {
  GM_API_FORWARD(gm_be_phys_release(phys));
}

GPUMEM_API gpumem_status gpumem_vmm_get_props(gpumem_phys_t phys, gpumem_phys_props *props) {
  GM_API_FORWARD(gm_be_phys_props(phys, props));
}

GPUMEM_API gpumem_status gpumem_vmm_map(void *va, size_t size, size_t offset, gpumem_phys_t phys) {
  GM_API_FORWARD(gm_be_map((uintptr_t)va, size, offset, phys));
}

GPUMEM_API gpumem_status gpumem_vmm_unmap(void *va, size_t size) {
  GM_API_FORWARD(gm_be_unmap((uintptr_t)va, size));
}

GPUMEM_API gpumem_status gpumem_vmm_set_access(void *va, size_t size,
                                               const gpumem_access_desc *desc, size_t count) {
  GM_API_FORWARD(gm_be_set_access((uintptr_t)va, size, desc, count));
}

GPUMEM_API gpumem_status gpumem_vmm_get_access(const void *va, int device,
                                               gpumem_access_flags *flags) {
  GM_API_FORWARD(gm_be_get_access((uintptr_t)va, device, flags));
}

GPUMEM_API gpumem_status gpumem_vmm_export(gpumem_phys_t phys, gpumem_handle_type type,
                                           gpumem_shareable_handle *handle) {
  GM_API_FORWARD(gm_be_export_handle(phys, type, handle));
}

GPUMEM_API gpumem_status gpumem_vmm_import(const gpumem_shareable_handle *handle,
                                           gpumem_phys_t *phys) {
  GM_API_FORWARD(gm_be_import_handle(handle, phys));
}
