/* 02_devices_and_mig.c: devices, MIG slices, and choosing where a rank runs.
 *
 * Course topics "MIG fundamentals" and "query MIG state and run on MIG
 * instances", as an allocator user meets them.
 *
 * What a slice is. Multi-Instance GPU splits an A100, H100 or H200 into as
 * many as seven GPU instances, each with its own share of memory, L2 and SMs
 * (an H100's "1g.10gb" instance has one seventh of the compute slices, 16
 * SMs, and one eighth of the memory). Inside a GPU instance, compute
 * instances divide the SMs further. A process sees each compute instance it
 * is given as an ordinary CUDA device with a "MIG-…" UUID and a name such as
 * "NVIDIA H100 80GB HBM3 MIG 1g.10gb", but CUDA has no MIG attribute.
 * libgpumem asks NVML (loaded at run time); without NVML it knows a slice by
 * its name only, and the rest is "unknown".
 *
 * How to target one. Set CUDA_VISIBLE_DEVICES before the process starts:
 *   CUDA_VISIBLE_DEVICES=MIG-1a2b3c4d-...    one slice, by its UUID
 *   CUDA_VISIBLE_DEVICES=GPU-8b2f,1          a whole GPU by UUID prefix, then index 1
 * CUDA stops reading the list at the first invalid entry, silently: step 2
 * below shows how libgpumem explains a list. Under a job launcher, let each
 * rank pick its device with gpumem_device_select (step 3): ranks are spread
 * over physical GPUs first, since slices of one GPU share it.
 *
 * What a slice cannot do. A slice cannot map another device's memory (no
 * peer access between slices, step 4), CUDA IPC does not cross GPU
 * instances, and its memory is only its share: size pools and buffers from
 * the slice's own free memory, never from the GPU's.
 *
 * Rehearse it without a GPU: the host backend emulates a MIG node, with the
 * real profiles' memory and SMs, and applies CUDA_VISIBLE_DEVICES as the
 * driver does:
 *   GPUMEM_BACKEND=host GPUMEM_HOST_MIG="h100:3g.40gb,2g.20gb*2;h100" \
 *     build/examples/02_devices_and_mig
 *   ... CUDA_VISIBLE_DEVICES=1,MIG-<uuid from the first run> build/examples/...
 *
 * Run:  build/examples/02_devices_and_mig   (GPUMEM_BACKEND=host without a GPU;
 *       gpumem-info prints the same facts for a whole node)
 */
#include <stdio.h>
#include <stdlib.h>

#include <gpumem/gpumem.h>

#define CHECK(call)                                                                               \
  do {                                                                                            \
    gpumem_status s_ = (call);                                                                    \
    if (s_ != GPUMEM_OK) {                                                                        \
      fprintf(stderr, "02_devices_and_mig: %s failed: %s\n  %s\n", #call, gpumem_status_name(s_), \
              gpumem_last_error());                                                               \
      exit(1);                                                                                    \
    }                                                                                             \
  } while (0)

static const char *yes_no(gpumem_tristate t) {
  return t == GPUMEM_YES ? "yes" : t == GPUMEM_NO ? "no" : "unknown";
}

int main(void) {
  /* Step 1: every device this process sees, and whether it is a slice. */
  int count = 0;
  gpumem_status st = gpumem_device_count(&count);
  if (st == GPUMEM_ERR_NO_DEVICE) {
    fprintf(stderr,
            "02_devices_and_mig: %s\n  (run with GPUMEM_BACKEND=host to use emulated devices)\n",
            gpumem_last_error());
    return 2;
  }
  CHECK(st);
  printf("step 1: %d device(s) on the %s backend\n", count, gpumem_backend_name());
  for (int d = 0; d < count; d++) {
    gpumem_device_info info;
    CHECK(gpumem_device_get_info(d, &info));
    printf("  device %d: %s, %s, MIG slice: %s\n", d, info.name, info.uuid, yes_no(info.mig));
    if (info.mig == GPUMEM_YES && info.parent_uuid[0] != '\0') {
      printf("    slice of %s: GPU instance %d (%d of 7 compute slices), compute instance %d, "
             "%d SMs, %.2f GiB\n",
             info.parent_uuid, info.gpu_instance_id, info.gpu_instance_slices,
             info.compute_instance_id, info.sm_count, (double)info.memory_total / (1 << 30));
    } else if (info.mig != GPUMEM_NO) {
      printf("    MIG: %s\n", info.mig_note);
    }
  }

  /* Step 2: what CUDA_VISIBLE_DEVICES does to this process. */
  gpumem_visible_devices visible;
  CHECK(gpumem_visible_devices_read(NULL, &visible));
  if (!visible.set) {
    printf("step 2: CUDA_VISIBLE_DEVICES is not set: every device of the node is visible\n");
  } else {
    printf("step 2: CUDA_VISIBLE_DEVICES has %zu entr%s in effect%s\n", visible.count,
           visible.count == 1 ? "y" : "ies", visible.resolved ? " (checked against the node)" : "");
    if (visible.stopped) {
      printf("  entry %zu ('%s') is invalid: %s; %s\n", visible.stopped_at, visible.stopped_text,
             visible.why,
             visible.hides_all ? "a device named twice: CUDA shows no device at all"
                               : "CUDA ignores it and the rest");
    }
    for (size_t d = 0; visible.resolved && d < visible.device_count; d++)
      printf("  the process's device %zu is %s\n", d, visible.devices[d]);
  }

  /* Step 3: the device for this rank. With no launcher variable set, rank -1
   * means "the first device that qualifies". Ask for what the code needs:
   * here virtual memory management. */
  gpumem_select_criteria want = GPUMEM_SELECT_CRITERIA_INIT;
  want.local_rank = GPUMEM_RANK_FROM_ENV; /* SLURM_LOCALID, OMPI_COMM_WORLD_LOCAL_RANK, ... */
  want.required_caps = GPUMEM_CAP_VMM;
  gpumem_selection chosen;
  CHECK(gpumem_device_select(&want, &chosen));
  printf("step 3: use device %d: %s\n", chosen.ordinal, chosen.reason);

  /* Step 4: which devices can map each other's memory. Slices never can. */
  printf("step 4: peer mapping from device %d\n", chosen.ordinal);
  for (int d = 0; d < count; d++) {
    gpumem_peer_info peer;
    CHECK(gpumem_device_peer_info(chosen.ordinal, d, &peer));
    printf("  to device %d: %s (%s)\n", d, peer.can_map ? "yes" : "no", peer.why);
  }

  /* Step 5: allocate on the chosen device. Size requests from the device's
   * own free memory: on a slice that is the slice's share. */
  gpumem_device_info info;
  CHECK(gpumem_device_get_info(chosen.ordinal, &info));
  gpumem_phys_props props = GPUMEM_PHYS_PROPS_INIT;
  props.device = chosen.ordinal;
  size_t gran = info.granularity_min;
  void *va = NULL;
  gpumem_phys_t mem = 0;
  gpumem_access_desc rw = {chosen.ordinal, GPUMEM_ACCESS_READWRITE};
  CHECK(gpumem_vmm_reserve(gran, 0, &va));
  CHECK(gpumem_vmm_create(&props, gran, &mem));
  CHECK(gpumem_vmm_map(va, gran, 0, mem));
  CHECK(gpumem_vmm_set_access(va, gran, &rw, 1));
  unsigned char probe[64];
  CHECK(gpumem_memset(va, 0x5a, gran, NULL));
  CHECK(gpumem_memcpy(probe, (char *)va + gran - sizeof probe, sizeof probe, NULL));
  CHECK(gpumem_stream_synchronize(NULL));
  bool good = probe[0] == 0x5a && probe[sizeof probe - 1] == 0x5a;
  printf("step 5: mapped %zu KiB on device %d (%.1f GiB free there) and read it back: %s\n",
         gran >> 10, chosen.ordinal, (double)info.memory_free / (1 << 30), good ? "ok" : "wrong");
  CHECK(gpumem_vmm_unmap(va, gran));
  CHECK(gpumem_vmm_release(mem));
  CHECK(gpumem_vmm_free(va, gran));
  CHECK(gpumem_finalize());
  printf("%s\n", good ? "ok" : "FAILED");
  return good ? 0 : 1;
}
