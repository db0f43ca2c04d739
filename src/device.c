/* device.c: the public device queries (gpumem/device.h).
 *
 * The backend describes a device in gm_device_props; this file turns that
 * into the public gpumem_device_info, adding the free memory read at the
 * time of the call.
 */
#include <string.h>

#include "api.h"
#include "gpumem/device.h"

GPUMEM_API gpumem_status gpumem_device_count(int *count) {
  GM_API_FORWARD(gm_be_device_count(count));
}

static gpumem_status get_info(int ordinal, gpumem_device_info *info) {
  if (info == NULL) return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "info is NULL");
  gm_device_props p;
  size_t free_bytes = 0, total = 0;
  gpumem_status st = gm_be_device_props(ordinal, &p);
  if (st == GPUMEM_OK) st = gm_be_mem_info(ordinal, &free_bytes, &total);
  if (st != GPUMEM_OK) return st;
  memset(info, 0, sizeof *info);
  info->ordinal = ordinal;
  memcpy(info->name, p.name, sizeof info->name);
  _Static_assert(sizeof info->uuid == sizeof p.uuid_string, "uuid string size");
  memcpy(info->uuid, p.uuid_string, sizeof info->uuid);
  info->cc_major = p.cc_major;
  info->cc_minor = p.cc_minor;
  info->sm_count = p.sm_count;
  info->pci_domain = p.pci_domain;
  info->pci_bus = p.pci_bus;
  info->pci_device = p.pci_device;
  info->memory_total = p.total_memory;
  info->memory_free = free_bytes;
  info->vmm = p.vmm;
  info->pools = p.pools;
  info->posix_fd = p.posix_fd;
  info->fabric = p.fabric;
  info->compression = p.compression;
  info->multicast = p.multicast;
  info->pool_handle_types = p.pool_handle_types;
  info->granularity_min = p.granularity_min;
  info->granularity_recommended = p.granularity_recommended;
  return GPUMEM_OK;
}

GPUMEM_API gpumem_status gpumem_device_get_info(int ordinal, gpumem_device_info *info) {
  GM_API_FORWARD(get_info(ordinal, info));
}

GPUMEM_API gpumem_status gpumem_device_mem_info(int ordinal, size_t *free_bytes,
                                                size_t *total_bytes) {
  GM_API_FORWARD(gm_be_mem_info(ordinal, free_bytes, total_bytes));
}

static gpumem_status can_access(int device, int peer, bool *out) {
  if (out == NULL) return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "can_access is NULL");
  gm_p2p_attrs a;
  gpumem_status st = gm_be_p2p_attrs(device, peer, &a);
  if (st == GPUMEM_OK) *out = a.access;
  return st;
}

GPUMEM_API gpumem_status gpumem_device_can_access_peer(int device, int peer, bool *can_access_out) {
  GM_API_FORWARD(can_access(device, peer, can_access_out));
}
