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
 * Uses only libgpumem's public API. Exit status: 0, 1 on a failed query or
 * bad arguments, 2 when there is no usable device (what needs no device, the
 * MIG layout and the CUDA_VISIBLE_DEVICES reading, is still printed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gpumem/gpumem.h>

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
             "Backend and logging come from GPUMEM_BACKEND, GPUMEM_LOG, ... (see README).\n");
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

/* A JSON string (quotes and escapes). */
static void jstr(const char *s) {
  putchar('"');
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      printf("\\%c", c);
    else if (c < 0x20)
      printf("\\u%04x", c);
    else
      putchar(c);
  }
  putchar('"');
}

static void jtri(gpumem_tristate t) {
  printf("%s", t == GPUMEM_YES ? "true" : t == GPUMEM_NO ? "false" : "null");
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

static void print_json(const node *n, int ranks) {
  int driver = 0, runtime = 0;
  gpumem_cuda_versions(&driver, &runtime);
  printf("{\"library\":");
  jstr(gpumem_version_string());
  printf(",\"backend\":");
  jstr(gpumem_backend_name());
  printf(",\"cuda_driver\":%d,\"cuda_runtime\":%d,\"device_error\":", driver, runtime);
  if (n->device_status != GPUMEM_OK)
    jstr(n->device_error);
  else
    printf("null");
  printf(",\"devices\":[");
  for (int d = 0; d < n->count; d++) {
    const gpumem_device_info *i = &n->devices[d];
    char caps[96];
    caps_text(i, caps, sizeof caps);
    printf("%s{\"ordinal\":%d,\"name\":", d ? "," : "", d);
    jstr(i->name);
    printf(",\"uuid\":");
    jstr(i->uuid);
    printf(",\"cc\":\"%d.%d\",\"sm_count\":%d,\"memory_total\":%zu,\"memory_free\":%zu,"
           "\"granularity_min\":%zu,\"granularity_recommended\":%zu,\"capabilities\":",
           i->cc_major, i->cc_minor, i->sm_count, i->memory_total, i->memory_free,
           i->granularity_min, i->granularity_recommended);
    jstr(caps);
    printf(",\"mig\":");
    jtri(i->mig);
    printf(",\"parent_mig_mode\":");
    jtri(i->parent_mig_mode);
    printf(",\"parent_uuid\":");
    jstr(i->parent_uuid);
    printf(",\"gpu_instance_id\":%d,\"compute_instance_id\":%d,\"gpu_instance_slices\":%d,"
           "\"compute_instance_slices\":%d,\"mig_note\":",
           i->gpu_instance_id, i->compute_instance_id, i->gpu_instance_slices,
           i->compute_instance_slices);
    jstr(i->mig_note);
    printf("}");
  }
  printf("],\"mig_layout\":");
  if (n->layout_status != GPUMEM_OK) {
    printf("null,\"mig_layout_error\":");
    jstr(n->layout_error);
  } else {
    printf("[");
    for (size_t g = 0; g < n->ngpus; g++) {
      const gpumem_mig_gpu *gpu = &n->gpus[g];
      printf("%s{\"nvml_index\":%d,\"uuid\":", g ? "," : "", gpu->nvml_index);
      jstr(gpu->uuid);
      printf(",\"name\":");
      jstr(gpu->name);
      printf(",\"mig_mode\":");
      jtri(gpu->mig_mode);
      printf(",\"slices\":[");
      for (size_t s = 0; s < gpu->slice_count; s++) {
        const gpumem_mig_slice *sl = &gpu->slices[s];
        printf("%s{\"uuid\":", s ? "," : "");
        jstr(sl->uuid);
        printf(",\"profile\":");
        jstr(sl->profile);
        printf(",\"gpu_instance_id\":%d,\"compute_instance_id\":%d,\"gpu_instance_slices\":%d,"
               "\"compute_instance_slices\":%d,\"sm_count\":%d,\"memory_bytes\":%zu}",
               sl->gpu_instance_id, sl->compute_instance_id, sl->gpu_instance_slices,
               sl->compute_instance_slices, sl->sm_count, sl->memory_bytes);
      }
      printf("]}");
    }
    printf("]");
  }
  const gpumem_visible_devices *v = &n->visible;
  printf(",\"cuda_visible_devices\":{\"set\":%s,\"checked\":%s,\"entries\":[",
         v->set ? "true" : "false", v->resolved ? "true" : "false");
  for (size_t e = 0; e < v->count; e++) {
    printf("%s{\"text\":", e ? "," : "");
    jstr(v->entries[e].text);
    printf(",\"device\":");
    jstr(v->entries[e].resolved);
    printf("}");
  }
  printf("],\"stopped\":");
  if (v->stopped) {
    printf("{\"position\":%zu,\"text\":", v->stopped_at);
    jstr(v->stopped_text);
    printf(",\"why\":");
    jstr(v->why);
    printf(",\"hides_all\":%s}", v->hides_all ? "true" : "false");
  } else {
    printf("null");
  }
  printf(",\"index_order\":");
  jstr(order_name(v->index_order));
  printf(",\"visible\":");
  if (v->set && v->resolved) {
    printf("[");
    for (size_t d = 0; d < v->device_count; d++) {
      printf("%s", d ? "," : "");
      jstr(v->devices[d]);
    }
    printf("]");
  } else {
    printf("null");
  }
  printf("},\"peers\":[");
  for (int r = 0; r < n->count; r++) {
    printf("%s[", r ? "," : "");
    for (int c = 0; c < n->count; c++) {
      gpumem_peer_info p;
      bool ok = gpumem_device_peer_info(r, c, &p) == GPUMEM_OK;
      printf("%s{\"can_map\":%s,\"why\":", c ? "," : "", ok && p.can_map ? "true" : "false");
      jstr(ok ? p.why : gpumem_last_error());
      printf("}");
    }
    printf("]");
  }
  printf("],\"placement\":[");
  for (int r = 0; n->count > 0 && r < ranks; r++) {
    gpumem_select_criteria c = GPUMEM_SELECT_CRITERIA_INIT;
    c.local_rank = r;
    gpumem_selection s;
    bool ok = gpumem_device_select(&c, &s) == GPUMEM_OK;
    printf("%s{\"rank\":%d,\"device\":%d,\"reason\":", r ? "," : "", r, ok ? s.ordinal : -1);
    jstr(ok ? s.reason : gpumem_last_error());
    printf("}");
  }
  printf("]}\n");
}

int main(int argc, char **argv) {
  args a;
  if (!parse_args(argc, argv, &a)) return 1;
  static node n;
  if (!gather(&n, &a)) return 1;
  int ranks = a.ranks >= 0 ? a.ranks : n.count;
  if (a.json)
    print_json(&n, ranks);
  else
    print_text(&n, ranks);
  return n.device_status == GPUMEM_ERR_NO_DEVICE ? 2 : n.device_status == GPUMEM_OK ? 0 : 1;
}
