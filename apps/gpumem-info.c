/* gpumem-info: what a process on this node sees, and why.
 *
 * Prints the device table (like `nvidia-smi -L` with the allocation
 * capabilities a memory manager cares about), the node's MIG layout from
 * NVML (or, under the host backend, the emulated GPUMEM_HOST_MIG layout), a
 * reading of CUDA_VISIBLE_DEVICES entry by entry with the devices it leaves,
 * the peer matrix, and the device each node-local rank would get from
 * gpumem_device_select. `--json` prints the same as one JSON object for
 * scripts. Without a GPU, a MIG node can be rehearsed:
 *
 *   GPUMEM_BACKEND=host GPUMEM_HOST_MIG="h100:3g.40gb,2g.20gb*2;h100" \
 *     CUDA_VISIBLE_DEVICES=MIG-... gpumem-info
 *
 *   gpumem-info [--json] [--ranks N] [--visible LIST]
 *
 * Uses only libgpumem's public API (and the JSON writer it shares with
 * gpumem-bench, src/json.h). Exit status, as in gpumem-bench: 0, 1 on a
 * failed query, 2 on bad arguments or when there is no usable device (what
 * needs no device, the MIG layout and the CUDA_VISIBLE_DEVICES reading, is
 * still printed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gpumem/gpumem.h>

#include "json.h" /* the JSON writer shared with gpumem-bench (not library API) */

/* Exit status for bad arguments: 2, as in gpumem-bench. */
#define EXIT_BAD_ARGUMENTS 2

typedef struct args {
  bool json;
  int ranks; /* -1: as many as devices */
  const char *visible;
} args;

static void usage(FILE *f) {
  fprintf(f, "usage: gpumem-info [--json] [--ranks N] [--visible LIST]\n"
             "  --json          one JSON object instead of tables\n"
             "  --ranks N       show the device for node-local ranks 0..N-1 (default: one per "
             "device)\n"
             "  --visible LIST  read LIST as CUDA_VISIBLE_DEVICES instead of the environment's\n"
             "Backend and logging come from GPUMEM_BACKEND, GPUMEM_LOG, ... (see README).\n"
             "Exit status: 0; 1 a query failed; 2 bad arguments or no usable device.\n");
}

static bool parse_args(int argc, char **argv, args *a) {
  *a = (args){false, -1, NULL};
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--json") == 0) {
      a->json = true;
    } else if (strcmp(argv[i], "--ranks") == 0 && i + 1 < argc) {
      char *end = NULL;
      long n = strtol(argv[++i], &end, 10);
      if (*end != '\0' || n < 0 || n > 4096) {
        fprintf(stderr, "gpumem-info: --ranks wants a number 0..4096, not '%s'\n", argv[i]);
        return false;
      }
      a->ranks = (int)n;
    } else if (strcmp(argv[i], "--visible") == 0 && i + 1 < argc) {
      a->visible = argv[++i];
    } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      exit(0);
    } else {
      fprintf(stderr, "gpumem-info: unknown argument '%s'\n", argv[i]);
      usage(stderr);
      return false;
    }
  }
  return true;
}

static void caps_text(const gpumem_device_info *d, char *buf, size_t len) {
  snprintf(buf, len, "%s%s%s%s%s%s", d->vmm ? "vmm " : "", d->pools ? "pools " : "",
           d->posix_fd ? "posix-fd " : "", d->fabric ? "fabric " : "",
           d->compression ? "compression " : "", d->multicast ? "multicast " : "");
  size_t n = strlen(buf);
  if (n > 0) buf[n - 1] = '\0';
}

/* A tristate as JSON: true, false or null (unknown). */
static void jtri(gm_json *j, const char *key, gpumem_tristate t) {
  if (t == GPUMEM_YES || t == GPUMEM_NO)
    gm_json_bool(j, key, t == GPUMEM_YES);
  else
    gm_json_null(j, key);
}

static const char *order_name(gpumem_index_order o) {
  switch (o) {
  case GPUMEM_INDEX_ORDER_PCI_BUS_ID:
    return "pci-bus-id";
  case GPUMEM_INDEX_ORDER_CUDA:
    return "cuda";
  case GPUMEM_INDEX_ORDER_ASSUMED:
    return "assumed-pci";
  case GPUMEM_INDEX_ORDER_UNKNOWN:
    return "unknown";
  default:
    return "none";
  }
}

static const char *order_text(gpumem_index_order o) {
  switch (o) {
  case GPUMEM_INDEX_ORDER_PCI_BUS_ID:
    return "CUDA_DEVICE_ORDER=PCI_BUS_ID: NVML's order";
  case GPUMEM_INDEX_ORDER_CUDA:
    return "fastest first, as the driver enumerates the node";
  case GPUMEM_INDEX_ORDER_ASSUMED:
    return "fastest first, taken to be the PCI order (the GPUs are alike)";
  case GPUMEM_INDEX_ORDER_UNKNOWN:
    return "fastest first, which cannot be known here: indices not checked";
  default:
    return "not checked";
  }
}

/* A slice's profile, or one made up from its size when NVML does not say. */
static void profile_text(const gpumem_mig_slice *sl, char *buf, size_t len) {
  if (sl->profile[0] != '\0')
    snprintf(buf, len, "%s", sl->profile);
  else
    snprintf(buf, len, "%dg.%.0fgb", sl->gpu_instance_slices,
             (double)sl->memory_bytes / (1 << 30) + 0.5);
}

typedef struct node {
  int count;
  gpumem_status device_status;
  char device_error[512];
  gpumem_device_info devices[GPUMEM_MAX_DEVICES];
  gpumem_mig_gpu gpus[GPUMEM_MAX_DEVICES];
  size_t ngpus;
  gpumem_status layout_status;
  char layout_error[512];
  gpumem_visible_devices visible;
} node;

static bool gather(node *n, const args *a) {
  n->device_status = gpumem_device_count(&n->count);
  if (n->device_status != GPUMEM_OK) {
    n->count = 0;
    snprintf(n->device_error, sizeof n->device_error, "%s", gpumem_last_error());
  }
  if (n->count > GPUMEM_MAX_DEVICES) n->count = GPUMEM_MAX_DEVICES;
  for (int d = 0; d < n->count; d++) {
    if (gpumem_device_get_info(d, &n->devices[d]) != GPUMEM_OK) {
      fprintf(stderr, "gpumem-info: %s\n", gpumem_last_error());
      return false;
    }
  }
  n->layout_status = gpumem_mig_layout(n->gpus, GPUMEM_MAX_DEVICES, &n->ngpus);
  if (n->layout_status != GPUMEM_OK) {
    snprintf(n->layout_error, sizeof n->layout_error, "%s", gpumem_last_error());
  }
  if (n->ngpus > GPUMEM_MAX_DEVICES) n->ngpus = GPUMEM_MAX_DEVICES;
  if (gpumem_visible_devices_read(a->visible, &n->visible) != GPUMEM_OK)
    memset(&n->visible, 0, sizeof n->visible); /* shown as not set */
  return true;
}

static char peer_symbol(const gpumem_peer_info *p) {
  switch (p->reason) {
  case GPUMEM_PEER_SAME_DEVICE:
    return '=';
  case GPUMEM_PEER_P2P:
    return 'P';
  case GPUMEM_PEER_MIG:
    return 'M';
  default:
    return '-';
  }
}

static void print_text(const node *n, int ranks) {
  int driver = 0, runtime = 0;
  gpumem_cuda_versions(&driver, &runtime);
  printf("gpumem-info: libgpumem %s, backend %s, CUDA driver %d.%d, runtime %d.%d\n\n",
         gpumem_version_string(), gpumem_backend_name(), driver / 1000, driver % 1000 / 10,
         runtime / 1000, runtime % 1000 / 10);

  printf("Devices this process sees\n");
  if (n->device_status != GPUMEM_OK)
    printf("  none: %s\n%s", n->device_error,
           n->device_status == GPUMEM_ERR_NO_DEVICE
               ? "  (run with GPUMEM_BACKEND=host to use emulated devices)\n"
               : "");
  for (int d = 0; d < n->count; d++) {
    const gpumem_device_info *i = &n->devices[d];
    char caps[96];
    caps_text(i, caps, sizeof caps);
    printf("  %d: %s (UUID: %s)\n", d, i->name, i->uuid);
    printf("     cc %d.%d, %d SMs, %.1f of %.1f GiB free, granularity %zu KiB (recommended %zu "
           "KiB)\n",
           i->cc_major, i->cc_minor, i->sm_count, (double)i->memory_free / (1 << 30),
           (double)i->memory_total / (1 << 30), i->granularity_min >> 10,
           i->granularity_recommended >> 10);
    printf("     capabilities: %s\n", caps[0] ? caps : "none");
    if (i->mig == GPUMEM_YES) {
      printf("     MIG slice of %s: GPU instance %d (%d slice(s)), compute instance %d (%d)\n",
             i->parent_uuid, i->gpu_instance_id, i->gpu_instance_slices, i->compute_instance_id,
             i->compute_instance_slices);
    } else if (i->mig == GPUMEM_NO) {
      printf("     whole GPU, MIG mode %s\n",
             i->parent_mig_mode == GPUMEM_YES ? "enabled" : "disabled or unsupported");
    } else {
      printf("     MIG: unknown (%s)\n", i->mig_note);
    }
  }

  printf("\nMIG layout of the node (%s; whatever CUDA_VISIBLE_DEVICES says)\n",
         strcmp(gpumem_backend_name(), "host") == 0
             ? "NVML, or the host backend's GPUMEM_HOST_MIG layout"
             : "NVML");
  if (n->layout_status != GPUMEM_OK) printf("  unknown: %s\n", n->layout_error);
  for (size_t g = 0; g < n->ngpus; g++) {
    const gpumem_mig_gpu *gpu = &n->gpus[g];
    printf("  GPU %d: %s (UUID: %s), MIG %s\n", gpu->nvml_index, gpu->name, gpu->uuid,
           gpu->mig_mode == GPUMEM_YES  ? "enabled"
           : gpu->mig_mode == GPUMEM_NO ? "disabled"
                                        : "not supported");
    for (size_t s = 0; s < gpu->slice_count; s++) {
      const gpumem_mig_slice *sl = &gpu->slices[s];
      char profile[32];
      profile_text(sl, profile, sizeof profile);
      printf("    %s  GI %d CI %d  %s  %d SMs, %.2f GiB\n", sl->uuid, sl->gpu_instance_id,
             sl->compute_instance_id, profile, sl->sm_count, (double)sl->memory_bytes / (1 << 30));
    }
  }

  const gpumem_visible_devices *v = &n->visible;
  printf("\nCUDA_VISIBLE_DEVICES\n");
  if (!v->set)
    printf("  not set: every device is visible\n");
  else if (v->count == 0 && !v->stopped)
    printf("  set to \"\": no device is visible\n");
  for (size_t e = 0; e < v->count; e++) {
    printf("  entry %zu '%s' -> %s\n", e, v->entries[e].text,
           v->entries[e].resolved[0] ? v->entries[e].resolved
           : v->resolved             ? "?"
                                     : "(not checked: NVML unavailable)");
  }
  if (v->stopped && v->hides_all) {
    printf("  entry %zu '%s' is invalid: %s\n  a device named twice: CUDA shows no device at all\n",
           v->stopped_at, v->stopped_text, v->why);
  } else if (v->stopped) {
    printf("  entry %zu '%s' is invalid: %s\n  CUDA ignores it and every entry after it\n",
           v->stopped_at, v->stopped_text, v->why);
  }
  if (v->set && v->resolved) {
    printf("  indices: %s\n", order_text(v->index_order));
    printf("  the process sees %zu device(s)%s\n", v->device_count, v->device_count ? ":" : "");
    for (size_t d = 0; d < v->device_count; d++)
      printf("    %zu: %s\n", d, v->devices[d]);
  } else if (v->set && v->index_order == GPUMEM_INDEX_ORDER_UNKNOWN) {
    printf("  indices: %s\n", order_text(v->index_order));
  }

  if (n->count > 0) {
    printf("\nPeer access (row: the device that accesses, column: where the memory lives)\n     ");
    for (int c = 0; c < n->count; c++)
      printf("%3d", c);
    printf("\n");
    for (int r = 0; r < n->count; r++) {
      printf("  %3d", r);
      for (int c = 0; c < n->count; c++) {
        gpumem_peer_info p;
        char sym = gpumem_device_peer_info(r, c, &p) == GPUMEM_OK ? peer_symbol(&p) : '?';
        printf("  %c", sym);
      }
      printf("\n");
    }
    printf("  = same device, P peer to peer, M MIG slice (no peer mapping), - no path\n");

    printf("\nPlacement of node-local ranks (gpumem_device_select)\n");
    for (int r = 0; r < ranks; r++) {
      gpumem_select_criteria c = GPUMEM_SELECT_CRITERIA_INIT;
      c.local_rank = r;
      gpumem_selection s;
      if (gpumem_device_select(&c, &s) == GPUMEM_OK)
        printf("  %s\n", s.reason);
      else
        printf("  rank %d: %s\n", r, gpumem_last_error());
    }
  }
}

/* The same as print_text, as one JSON object (through the JSON writer that
 * gpumem-bench uses too). False if it could not be written whole. */
static bool print_json(const node *n, int ranks) {
  int driver = 0, runtime = 0;
  gpumem_cuda_versions(&driver, &runtime);
  gm_json j;
  gm_json_start(&j, stdout);
  gm_json_object(&j, NULL);
  gm_json_string(&j, "library", gpumem_version_string());
  gm_json_string(&j, "backend", gpumem_backend_name());
  gm_json_int(&j, "cuda_driver", driver);
  gm_json_int(&j, "cuda_runtime", runtime);
  gm_json_string(&j, "device_error", n->device_status != GPUMEM_OK ? n->device_error : NULL);
  gm_json_array(&j, "devices");
  for (int d = 0; d < n->count; d++) {
    const gpumem_device_info *i = &n->devices[d];
    char caps[96], cc[16];
    caps_text(i, caps, sizeof caps);
    snprintf(cc, sizeof cc, "%d.%d", i->cc_major, i->cc_minor);
    gm_json_object(&j, NULL);
    gm_json_int(&j, "ordinal", d);
    gm_json_string(&j, "name", i->name);
    gm_json_string(&j, "uuid", i->uuid);
    gm_json_string(&j, "cc", cc);
    gm_json_int(&j, "sm_count", i->sm_count);
    gm_json_uint(&j, "memory_total", i->memory_total);
    gm_json_uint(&j, "memory_free", i->memory_free);
    gm_json_uint(&j, "granularity_min", i->granularity_min);
    gm_json_uint(&j, "granularity_recommended", i->granularity_recommended);
    gm_json_string(&j, "capabilities", caps);
    jtri(&j, "mig", i->mig);
    jtri(&j, "parent_mig_mode", i->parent_mig_mode);
    gm_json_string(&j, "parent_uuid", i->parent_uuid);
    gm_json_int(&j, "gpu_instance_id", i->gpu_instance_id);
    gm_json_int(&j, "compute_instance_id", i->compute_instance_id);
    gm_json_int(&j, "gpu_instance_slices", i->gpu_instance_slices);
    gm_json_int(&j, "compute_instance_slices", i->compute_instance_slices);
    gm_json_string(&j, "mig_note", i->mig_note);
    gm_json_end(&j);
  }
  gm_json_end(&j);
  if (n->layout_status != GPUMEM_OK) {
    gm_json_null(&j, "mig_layout");
    gm_json_string(&j, "mig_layout_error", n->layout_error);
  } else {
    gm_json_array(&j, "mig_layout");
    for (size_t g = 0; g < n->ngpus; g++) {
      const gpumem_mig_gpu *gpu = &n->gpus[g];
      gm_json_object(&j, NULL);
      gm_json_int(&j, "nvml_index", gpu->nvml_index);
      gm_json_string(&j, "uuid", gpu->uuid);
      gm_json_string(&j, "name", gpu->name);
      jtri(&j, "mig_mode", gpu->mig_mode);
      gm_json_array(&j, "slices");
      for (size_t s = 0; s < gpu->slice_count; s++) {
        const gpumem_mig_slice *sl = &gpu->slices[s];
        gm_json_object(&j, NULL);
        gm_json_string(&j, "uuid", sl->uuid);
        gm_json_string(&j, "profile", sl->profile);
        gm_json_int(&j, "gpu_instance_id", sl->gpu_instance_id);
        gm_json_int(&j, "compute_instance_id", sl->compute_instance_id);
        gm_json_int(&j, "gpu_instance_slices", sl->gpu_instance_slices);
        gm_json_int(&j, "compute_instance_slices", sl->compute_instance_slices);
        gm_json_int(&j, "sm_count", sl->sm_count);
        gm_json_uint(&j, "memory_bytes", sl->memory_bytes);
        gm_json_end(&j);
      }
      gm_json_end(&j);
      gm_json_end(&j);
    }
    gm_json_end(&j);
  }
  const gpumem_visible_devices *v = &n->visible;
  gm_json_object(&j, "cuda_visible_devices");
  gm_json_bool(&j, "set", v->set);
  gm_json_bool(&j, "checked", v->resolved);
  gm_json_array(&j, "entries");
  for (size_t e = 0; e < v->count; e++) {
    gm_json_object(&j, NULL);
    gm_json_string(&j, "text", v->entries[e].text);
    gm_json_string(&j, "device", v->entries[e].resolved);
    gm_json_end(&j);
  }
  gm_json_end(&j);
  if (v->stopped) {
    gm_json_object(&j, "stopped");
    gm_json_uint(&j, "position", v->stopped_at);
    gm_json_string(&j, "text", v->stopped_text);
    gm_json_string(&j, "why", v->why);
    gm_json_bool(&j, "hides_all", v->hides_all);
    gm_json_end(&j);
  } else {
    gm_json_null(&j, "stopped");
  }
  gm_json_string(&j, "index_order", order_name(v->index_order));
  if (v->set && v->resolved) {
    gm_json_array(&j, "visible");
    for (size_t d = 0; d < v->device_count; d++)
      gm_json_string(&j, NULL, v->devices[d]);
    gm_json_end(&j);
  } else {
    gm_json_null(&j, "visible");
  }
  gm_json_end(&j);
  gm_json_array(&j, "peers");
  for (int r = 0; r < n->count; r++) {
    gm_json_array(&j, NULL);
    for (int c = 0; c < n->count; c++) {
      gpumem_peer_info p;
      bool ok = gpumem_device_peer_info(r, c, &p) == GPUMEM_OK;
      gm_json_object(&j, NULL);
      gm_json_bool(&j, "can_map", ok && p.can_map);
      gm_json_string(&j, "why", ok ? p.why : gpumem_last_error());
      gm_json_end(&j);
    }
    gm_json_end(&j);
  }
  gm_json_end(&j);
  gm_json_array(&j, "placement");
  for (int r = 0; n->count > 0 && r < ranks; r++) {
    gpumem_select_criteria c = GPUMEM_SELECT_CRITERIA_INIT;
    c.local_rank = r;
    gpumem_selection s;
    bool ok = gpumem_device_select(&c, &s) == GPUMEM_OK;
    gm_json_object(&j, NULL);
    gm_json_int(&j, "rank", r);
    gm_json_int(&j, "device", ok ? s.ordinal : -1);
    gm_json_string(&j, "reason", ok ? s.reason : gpumem_last_error());
    gm_json_end(&j);
  }
  gm_json_end(&j);
  gm_json_end(&j);
  return gm_json_finish(&j);
}

int main(int argc, char **argv) {
  args a;
  if (!parse_args(argc, argv, &a)) return EXIT_BAD_ARGUMENTS;
  static node n;
  if (!gather(&n, &a)) return 1;
  int ranks = a.ranks >= 0 ? a.ranks : n.count;
  if (a.json && !print_json(&n, ranks)) {
    fprintf(stderr, "gpumem-info: the JSON output could not be written whole\n");
    return 1;
  }
  if (!a.json) print_text(&n, ranks);
  return n.device_status == GPUMEM_ERR_NO_DEVICE ? 2 : n.device_status == GPUMEM_OK ? 0 : 1;
}
