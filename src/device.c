/* device.c: discovery, peer queries and device selection (gpumem/device.h).
 *
 * The backend describes a device in gm_device_props; this file turns that
 * into the public gpumem_device_info, adding the free memory read at the
 * time of the call and the MIG facts NVML gives (mig.c).
 *
 * Selection filters the devices by the caller's criteria and, for a
 * node-local rank, spreads ranks over physical GPUs before it stacks them:
 * MIG slices of one GPU share its memory bandwidth and copy engines, so two
 * ranks on two slices of one GPU while another GPU idles is the placement to
 * avoid. The result carries the reason in a sentence, since "why did rank 5
 * land there?" is the first question on a new cluster.
 *
 * Nothing here creates a CUDA context. Every MPI rank of a node lists the
 * devices and selects one, so a context made while looking would cost each
 * rank about 0.5 GiB on every GPU (56 wasted contexts on an 8-GPU node), and
 * fail with cudaErrorDevicesUnavailable on GPUs in EXCLUSIVE_PROCESS mode
 * that another rank holds. The descriptions come from driver device queries,
 * which take a device and not a context; free memory comes from the backend's
 * mem_probe (the device's context if it already has one, else NVML). Only
 * where neither can answer (no context yet, no NVML) is free memory read
 * through CUDA, which creates that device's context; peer queries never read
 * it, and selection reads it only when a criterion asks for free memory.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "abi.h"
#include "api.h"
#include "gpumem/device.h"
#include "log.h"
#include "mig.h"
#include "options.h"
#include "uuid.h"

GPUMEM_API gpumem_status gpumem_device_count(int *count) {
  GM_API_FORWARD(gm_be_device_count(count));
}

/* Free memory of a device without creating its context where that can be
 * done; where it cannot (see the essay), through its context, said once. */
static gpumem_status free_memory(int ordinal, size_t *free_bytes) {
  static atomic_bool said;
  size_t total = 0;
  gpumem_status st = gm_be_mem_probe(ordinal, free_bytes, &total);
  if (st != GPUMEM_ERR_NOT_SUPPORTED) return st;
  if (!atomic_exchange(&said, true)) {
    gm_log(GPUMEM_LOG_INFO,
           "device %d: %s; reading free memory through CUDA instead, which creates the "
           "device's context",
           ordinal, gm_error_detail());
  }
  gm_error_discard();
  return gm_be_mem_info(ordinal, free_bytes, &total);
}

/* Describe a device; its free memory only if `read_free` (else 0). */
static gpumem_status get_info(int ordinal, gpumem_device_info *info, bool read_free) {
  if (info == NULL) return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "info is NULL");
  gm_device_props p;
  size_t free_bytes = 0;
  gpumem_status st = gm_be_device_props(ordinal, &p);
  if (st == GPUMEM_OK && read_free) st = free_memory(ordinal, &free_bytes);
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
  gm_mig_describe(p.uuid, info);
  return GPUMEM_OK;
}

GPUMEM_API gpumem_status gpumem_device_get_info(int ordinal, gpumem_device_info *info) {
  GM_API_FORWARD(get_info(ordinal, info, true));
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

gpumem_status gm_peer_info(int device, int peer, gpumem_peer_info *out) {
  if (out == NULL) return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "info is NULL");
  gm_p2p_attrs a;
  gpumem_status st = gm_be_p2p_attrs(device, peer, &a); /* validates both ordinals */
  if (st != GPUMEM_OK) return st;
  memset(out, 0, sizeof *out);
  out->native_atomics = a.native_atomics;
  out->performance_rank = a.performance_rank;
  if (device == peer) {
    out->can_map = true;
    out->reason = GPUMEM_PEER_SAME_DEVICE;
    snprintf(out->why, sizeof out->why, "device %d is the memory's own device", device);
    return GPUMEM_OK;
  }
  gpumem_device_info d, p;
  if ((st = get_info(device, &d, false)) != GPUMEM_OK ||
      (st = get_info(peer, &p, false)) != GPUMEM_OK)
    return st;
  if (d.mig == GPUMEM_YES || p.mig == GPUMEM_YES) {
    const gpumem_device_info *slice = d.mig == GPUMEM_YES ? &d : &p;
    out->reason = GPUMEM_PEER_MIG;
    out->native_atomics = false;
    snprintf(out->why, sizeof out->why,
             "device %d (%s) is a MIG slice: MIG slices cannot map another device's memory",
             slice->ordinal, slice->uuid);
    return GPUMEM_OK;
  }
  out->can_map = a.access;
  out->reason = a.access ? GPUMEM_PEER_P2P : GPUMEM_PEER_NO_PATH;
  if (a.access) {
    snprintf(out->why, sizeof out->why,
             "device %d reaches device %d peer to peer (performance rank %d%s)", device, peer,
             a.performance_rank, a.native_atomics ? ", native atomics" : "");
  } else {
    snprintf(out->why, sizeof out->why,
             "no peer-to-peer path from device %d to device %d (the driver reports no access)",
             device, peer);
  }
  return GPUMEM_OK;
}

GPUMEM_API gpumem_status gpumem_device_peer_info(int device, int peer, gpumem_peer_info *info) {
  GM_API_FORWARD(gm_peer_info(device, peer, info));
}

/* ---- node-local rank ---- */

static const char *const rank_variables[] = {
    "SLURM_LOCALID",  "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "MV2_COMM_WORLD_LOCAL_RANK",
    "PMI_LOCAL_RANK", "PALS_LOCAL_RANKID",          "LOCAL_RANK"};

static gpumem_status local_rank(int *rank, const char **variable) {
  if (rank == NULL) return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "rank is NULL");
  *rank = -1;
  if (variable != NULL) *variable = NULL;
  for (size_t i = 0; i < GM_ARRAY_SIZE(rank_variables); i++) {
    const char *v = getenv(rank_variables[i]);
    if (v == NULL) continue;
    int64_t r = -1;
    if (!gm_parse_int(v, &r) || r < 0 || r > 1000000) {
      return gm_error(GPUMEM_ERR_INVALID_ARGUMENT,
                      "%s='%s' is not a node-local rank (a non-negative integer)",
                      rank_variables[i], v);
    }
    *rank = (int)r;
    if (variable != NULL) *variable = rank_variables[i];
    return GPUMEM_OK;
  }
  return GPUMEM_OK;
}

GPUMEM_API gpumem_status gpumem_local_rank(int *rank, const char **variable) {
  gm_error_discard();
  GM_RETURN(local_rank(rank, variable));
}

/* ---- selection ---- */

static unsigned caps_of(const gpumem_device_info *d) {
  return (d->vmm ? GPUMEM_CAP_VMM : 0u) | (d->pools ? GPUMEM_CAP_POOLS : 0u) |
         (d->posix_fd ? GPUMEM_CAP_POSIX_FD : 0u) | (d->fabric ? GPUMEM_CAP_FABRIC : 0u) |
         (d->compression ? GPUMEM_CAP_COMPRESSION : 0u) |
         (d->multicast ? GPUMEM_CAP_MULTICAST : 0u);
}

/* The physical GPU a device belongs to: its parent's UUID when known. */
static const char *gpu_of(const gpumem_device_info *d) {
  return d->parent_uuid[0] != '\0' ? d->parent_uuid : d->uuid;
}

typedef struct select_state {
  gpumem_device_info *dev;
  bool *keep;
  int n, left;
  const char *removed_by; /* the criterion that removed the last candidates */
} select_state;

static void drop(select_state *s, int i, const char *criterion) {
  if (!s->keep[i]) return;
  s->keep[i] = false;
  if (--s->left == 0) s->removed_by = criterion;
}

static gpumem_status filter(select_state *s, const gpumem_select_criteria *c) {
  int own_matches = 0, first_match = -1;
  for (int i = 0; c->uuid != NULL && i < s->n; i++) {
    if (gm_starts_with_nocase(s->dev[i].uuid, c->uuid)) {
      if (own_matches++ > 0) {
        return gm_error(
            GPUMEM_ERR_INVALID_ARGUMENT,
            "UUID prefix '%s' matches two devices, %d (%s) and %d (%s): give more of it", c->uuid,
            first_match, s->dev[first_match].uuid, i, s->dev[i].uuid);
      }
      first_match = i;
    }
  }
  char need[64];
  for (int i = 0; i < s->n; i++) {
    const gpumem_device_info *d = &s->dev[i];
    if (c->uuid != NULL && !gm_starts_with_nocase(d->uuid, c->uuid) &&
        !(d->mig == GPUMEM_YES && gm_starts_with_nocase(d->parent_uuid, c->uuid)))
      drop(s, i, "the UUID");
    if (d->memory_free < c->min_free_bytes) drop(s, i, "the free memory required");
    if ((caps_of(d) & c->required_caps) != c->required_caps)
      drop(s, i, "the required capabilities");
    if (c->mig == GPUMEM_MIG_EXCLUDE && d->mig == GPUMEM_YES) drop(s, i, "excluding MIG slices");
    if (c->mig == GPUMEM_MIG_REQUIRE && d->mig != GPUMEM_YES) drop(s, i, "requiring MIG slices");
  }
  if (c->mig == GPUMEM_MIG_PREFER) {
    bool any_slice = false;
    for (int i = 0; i < s->n; i++)
      any_slice |= s->keep[i] && s->dev[i].mig == GPUMEM_YES;
    for (int i = 0; any_slice && i < s->n; i++) {
      if (s->dev[i].mig != GPUMEM_YES) drop(s, i, "preferring MIG slices");
    }
  }
  if (s->left > 0) return GPUMEM_OK;
  snprintf(need, sizeof need, "%s", c->uuid ? c->uuid : "any");
  return gm_error(GPUMEM_ERR_NOT_FOUND,
                  "none of the %d device(s) qualifies: %s removed the last candidates (uuid %s, "
                  "min free %zu bytes, capabilities 0x%x, MIG policy %d)",
                  s->n, s->removed_by, need, c->min_free_bytes, c->required_caps, (int)c->mig);
}

/* Place `rank` on the candidates: GPUs first, then the slices of a GPU. */
static void place(const select_state *s, int rank, gpumem_selection *out) {
  int group_first[GPUMEM_MAX_DEVICES], groups = 0;
  for (int i = 0; i < s->n; i++) {
    if (!s->keep[i]) continue;
    bool seen = false;
    for (int g = 0; g < groups && !seen; g++) {
      seen = strcasecmp(gpu_of(&s->dev[group_first[g]]), gpu_of(&s->dev[i])) == 0;
    }
    if (!seen) group_first[groups++] = i;
  }
  int g = rank % groups;
  const char *gpu = gpu_of(&s->dev[group_first[g]]);
  int members[GPUMEM_MAX_DEVICES], size = 0;
  for (int i = 0; i < s->n; i++) {
    if (s->keep[i] && strcasecmp(gpu_of(&s->dev[i]), gpu) == 0) members[size++] = i;
  }
  int k = (rank / groups) % size;
  out->ordinal = members[k];
  snprintf(out->reason, sizeof out->reason,
           "rank %d: %d physical GPU(s) have a qualifying device; rank %d takes GPU %d (%s)%s, "
           "device %d (%s)",
           rank, groups, rank, g, gpu, size > 1 ? " and, among its devices, the next in turn" : "",
           members[k], s->dev[members[k]].uuid);
}

static gpumem_status select_device(const gpumem_select_criteria *criteria, gpumem_selection *out) {
  if (out == NULL) return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "selection is NULL");
  gpumem_select_criteria cfg;
  const gpumem_select_criteria *c = &cfg;
  gpumem_status st0 =
      gm_abi_read(criteria, sizeof cfg, &(gpumem_select_criteria)GPUMEM_SELECT_CRITERIA_INIT, &cfg,
                  "selection criteria (GPUMEM_SELECT_CRITERIA_INIT)");
  if (st0 != GPUMEM_OK) return st0;
  if ((int)c->mig < GPUMEM_MIG_EITHER || c->mig > GPUMEM_MIG_REQUIRE) {
    return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "MIG policy %d is not a gpumem_mig_policy",
                    (int)c->mig);
  }
  if (c->local_rank < -1 && c->local_rank != GPUMEM_RANK_FROM_ENV) {
    return gm_error(GPUMEM_ERR_INVALID_ARGUMENT, "local_rank %d is not valid", c->local_rank);
  }
  gpumem_selection result = {.ordinal = -1, .local_rank = c->local_rank};
  if (c->local_rank == GPUMEM_RANK_FROM_ENV) {
    gpumem_status st = local_rank(&result.local_rank, &result.rank_variable);
    if (st != GPUMEM_OK) return st;
  }
  int n = 0;
  gpumem_status st = gm_be_device_count(&n);
  if (st != GPUMEM_OK) return st;
  select_state s = {calloc((size_t)n + 1, sizeof *s.dev), calloc((size_t)n + 1, sizeof *s.keep), n,
                    n, "nothing"};
  if (s.dev == NULL || s.keep == NULL) {
    st = gm_error(GPUMEM_ERR_OUT_OF_MEMORY, "no host memory for %d device records", n);
    goto fail;
  }
  for (int i = 0; i < n; i++) {
    GM_TRY(get_info(i, &s.dev[i], c->min_free_bytes > 0));
    s.keep[i] = true;
  }
  GM_TRY(filter(&s, c));
  for (int i = 0; i < n; i++)
    result.candidates += s.keep[i];
  if (result.local_rank >= 0) {
    place(&s, result.local_rank, &result);
  } else {
    for (int i = n - 1; i >= 0; i--) {
      if (s.keep[i]) result.ordinal = i;
    }
    snprintf(result.reason, sizeof result.reason,
             "no rank given: the first of %d qualifying device(s), device %d (%s)",
             result.candidates, result.ordinal, s.dev[result.ordinal].uuid);
  }
  if (result.rank_variable != NULL) {
    size_t used = strlen(result.reason);
    snprintf(result.reason + used, sizeof result.reason - used, "; rank from %s",
             result.rank_variable);
  }
  *out = result;
fail:
  free(s.dev);
  free(s.keep);
  return st;
}

GPUMEM_API gpumem_status gpumem_device_select(const gpumem_select_criteria *criteria,
                                              gpumem_selection *selection) {
  GM_API_FORWARD(select_device(criteria, selection));
}
