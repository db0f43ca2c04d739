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

/* The public calls that change a range refuse one inside a library object's
 * reservation (a buffer's or an arena's): a caller's map there would stop
 * the object from growing or being destroyed, an unmap or free would pull
 * memory from under it. */
static gpumem_status vmm_free(void *va, size_t size) {
  gpumem_status st = gm_be_va_check_public((uintptr_t)va, "free");
  return st != GPUMEM_OK ? st : gm_be_va_free((uintptr_t)va, size);
}

GPUMEM_API gpumem_status gpumem_vmm_free(void *va, size_t size) {
  GM_API_FORWARD(vmm_free(va, size));
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

static gpumem_status vmm_map(void *va, size_t size, size_t offset, gpumem_phys_t phys) {
  gpumem_status st = gm_be_va_check_public((uintptr_t)va, "map");
  return st != GPUMEM_OK ? st : gm_be_map((uintptr_t)va, size, offset, phys);
}

GPUMEM_API gpumem_status gpumem_vmm_map(void *va, size_t size, size_t offset, gpumem_phys_t phys) {
  GM_API_FORWARD(vmm_map(va, size, offset, phys));
}

static gpumem_status vmm_unmap(void *va, size_t size) {
  gpumem_status st = gm_be_va_check_public((uintptr_t)va, "unmap");
  return st != GPUMEM_OK ? st : gm_be_unmap((uintptr_t)va, size);
}

GPUMEM_API gpumem_status gpumem_vmm_unmap(void *va, size_t size) {
  GM_API_FORWARD(vmm_unmap(va, size));
}

static gpumem_status vmm_set_access(void *va, size_t size, const gpumem_access_desc *desc,
                                    size_t count) {
  gpumem_status st = gm_be_va_check_public((uintptr_t)va, "set_access");
  return st != GPUMEM_OK ? st : gm_be_set_access((uintptr_t)va, size, desc, count);
}

GPUMEM_API gpumem_status gpumem_vmm_set_access(void *va, size_t size,
                                               const gpumem_access_desc *desc, size_t count) {
  GM_API_FORWARD(vmm_set_access(va, size, desc, count));
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
