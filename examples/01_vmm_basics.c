/* 01_vmm_basics.c: virtual memory management, step by step.
 *
 * Course topic "VMM fundamentals": CUDA lets a program separate the address
 * of memory from the memory itself. You reserve a range of virtual addresses
 * (no memory yet), create physical allocations, map them into the range, and
 * grant devices access. Because the address is chosen first, a data structure
 * can grow in place: map more memory after the end and the pointer your
 * kernels hold never changes. This is what libgpumem's growable buffer and
 * arena are built on.
 *
 * Each gpumem_vmm_* call below is the checked twin of one driver call:
 *
 *   gpumem_vmm_granularity  cuMemGetAllocationGranularity
 *   gpumem_vmm_reserve      cuMemAddressReserve
 *   gpumem_vmm_create       cuMemCreate
 *   gpumem_vmm_map          cuMemMap
 *   gpumem_vmm_set_access   cuMemSetAccess
 *   gpumem_vmm_unmap        cuMemUnmap
 *   gpumem_vmm_release      cuMemRelease
 *   gpumem_vmm_free         cuMemAddressFree
 *
 * They run on the GPU by default. On a machine without one, run the example
 * with GPUMEM_BACKEND=host: the same calls then work on emulated devices in
 * host memory, with the same rules (the quick start in README.md does that).
 *
 * Build and run:  tools/bench builds it; then build/release/examples/01_vmm_basics
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gpumem/gpumem.h>

/* Every call is checked: on failure print the status and libgpumem's
 * sentence, which names the call that failed and the CUDA error behind it. */
#define CHECK(call)                                                                          \
  do {                                                                                       \
    gpumem_status s_ = (call);                                                               \
    if (s_ != GPUMEM_OK) {                                                                   \
      fprintf(stderr, "01_vmm_basics: %s failed: %s\n  %s\n", #call, gpumem_status_name(s_), \
              gpumem_last_error());                                                          \
      exit(1);                                                                               \
    }                                                                                        \
  } while (0)

static void print_devices(int count) {
  int driver = 0, runtime = 0;
  gpumem_cuda_versions(&driver, &runtime);
  printf("libgpumem %s, backend %s, CUDA driver %d.%d, runtime %d.%d\n", gpumem_version_string(),
         gpumem_backend_name(), driver / 1000, driver % 1000 / 10, runtime / 1000,
         runtime % 1000 / 10);
  for (int d = 0; d < count; d++) {
    gpumem_device_info info;
    CHECK(gpumem_device_get_info(d, &info));
    printf("device %d: %s (%s), cc %d.%d, %d SMs, %.1f GiB (%.1f GiB free)\n", d, info.name,
           info.uuid, info.cc_major, info.cc_minor, info.sm_count,
           (double)info.memory_total / (1 << 30), (double)info.memory_free / (1 << 30));
    printf("  VMM %s, pools %s, POSIX fd %s, fabric %s, compression %s, granularity %zu KiB "
           "(recommended %zu KiB)\n",
           info.vmm ? "yes" : "no", info.pools ? "yes" : "no", info.posix_fd ? "yes" : "no",
           info.fabric ? "yes" : "no", info.compression ? "yes" : "no", info.granularity_min >> 10,
           info.granularity_recommended >> 10);
  }
}

/* Fill host memory with a pattern that depends on the position. */
static void fill(unsigned char *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++)
    p[i] = (unsigned char)(i * 31u + seed);
}

static size_t count_mismatches(const unsigned char *p, size_t n, unsigned seed) {
  size_t bad = 0;
  for (size_t i = 0; i < n; i++)
    bad += p[i] != (unsigned char)(i * 31u + seed);
  return bad;
}

int main(void) {
  /* Step 0: find the devices. On a machine without a CUDA driver this is
   * where we learn it: the status is GPUMEM_ERR_NO_DEVICE and the sentence
   * says why. libgpumem never falls back to host memory by itself. */
  int count = 0;
  gpumem_status st = gpumem_device_count(&count);
  if (st == GPUMEM_ERR_NO_DEVICE) {
    fprintf(stderr, "01_vmm_basics: %s\n  (run with GPUMEM_BACKEND=host to use emulated devices)\n",
            gpumem_last_error());
    return 2;
  }
  CHECK(st);
  print_devices(count);

  const int dev = 0;
  gpumem_device_info info;
  CHECK(gpumem_device_get_info(dev, &info));
  if (!info.vmm) {
    fprintf(stderr, "01_vmm_basics: device %d does not support virtual memory management\n", dev);
    return 2;
  }

  /* Step 1: the granularity. Physical sizes, mapping offsets and addresses
   * must be multiples of the minimum granularity for exactly the properties
   * we will create with (2 MiB on an H100). */
  gpumem_phys_props props = GPUMEM_PHYS_PROPS_INIT;
  props.device = dev;
  size_t gran = 0;
  CHECK(gpumem_vmm_granularity(&props, false, &gran));

  /* Step 2: reserve address space. Reserving costs no memory, so reserve
   * for the largest size the structure may reach: here 8 granules. */
  const size_t reserved = 8 * gran;
  void *base = NULL;
  CHECK(gpumem_vmm_reserve(reserved, 0, &base));
  printf("reserved %zu MiB of addresses at %p\n", reserved >> 20, base);

  /* Step 3: create physical memory on the device: 2 granules. */
  gpumem_phys_t first = 0;
  CHECK(gpumem_vmm_create(&props, 2 * gran, &first));

  /* Step 4: map it at the start of the reservation. A fresh mapping grants
   * no access to anyone: touching it now would fault. */
  CHECK(gpumem_vmm_map(base, 2 * gran, 0, first));
  gpumem_access_flags flags;
  CHECK(gpumem_vmm_get_access(base, dev, &flags));
  printf("mapped %zu MiB; access before set_access: %s\n", (2 * gran) >> 20,
         flags == GPUMEM_ACCESS_NONE ? "none" : "some");

  /* Step 5: grant access: read-write for our device, and for every device
   * that can reach it (peers), one descriptor each. No
   * cudaDeviceEnablePeerAccess is involved with VMM memory. */
  gpumem_access_desc desc[GPUMEM_MAX_DEVICES];
  size_t ndesc = 0;
  for (int d = 0; d < count && d < GPUMEM_MAX_DEVICES; d++) {
    bool ok = d == dev;
    if (!ok) CHECK(gpumem_device_can_access_peer(d, dev, &ok));
    if (ok) desc[ndesc++] = (gpumem_access_desc){d, GPUMEM_ACCESS_READWRITE};
  }
  CHECK(gpumem_vmm_set_access(base, 2 * gran, desc, ndesc));
  printf("granted read-write access to %zu device(s)\n", ndesc);

  /* Step 6: use it. Copy a pattern in, copy it back, compare. */
  size_t n = 2 * gran;
  unsigned char *host = malloc(4 * gran);
  unsigned char *check = malloc(4 * gran);
  if (host == NULL || check == NULL) return 1;
  gpumem_stream_t stream = NULL;
  CHECK(gpumem_stream_create(dev, &stream));
  fill(host, n, 7);
  CHECK(gpumem_memcpy(base, host, n, stream));
  CHECK(gpumem_memcpy(check, base, n, stream));
  CHECK(gpumem_stream_synchronize(stream));
  printf("wrote and read back %zu MiB: %zu mismatches\n", n >> 20, count_mismatches(check, n, 7));

  /* Step 7: grow in place. Create two more granules and map them right
   * after the first ones. The base pointer is unchanged and the old bytes are
   * where they were: no copy happened. */
  gpumem_phys_t second = 0;
  CHECK(gpumem_vmm_create(&props, 2 * gran, &second));
  char *next = (char *)base + 2 * gran;
  CHECK(gpumem_vmm_map(next, 2 * gran, 0, second));
  CHECK(gpumem_vmm_set_access(next, 2 * gran, desc, ndesc));
  fill(host + n, 2 * gran, 7 + (unsigned)(n * 31u));
  CHECK(gpumem_memcpy(next, host + n, 2 * gran, stream));
  CHECK(gpumem_memcpy(check, base, 4 * gran, stream));
  CHECK(gpumem_stream_synchronize(stream));
  printf("grew to %zu MiB at the same address %p: %zu mismatches over the whole range\n",
         (4 * gran) >> 20, base, count_mismatches(check, 4 * gran, 7));

  /* Step 8: tear down in reverse. Release may come right after map (the
   * mapping keeps the memory alive); here we unmap first, then release the
   * handles, then free the addresses. Work that may still touch the range
   * must be finished before unmapping: we synchronized above. */
  CHECK(gpumem_stream_destroy(stream));
  CHECK(gpumem_vmm_unmap(base, 4 * gran)); /* one call may unmap several whole mappings */
  CHECK(gpumem_vmm_release(first));
  CHECK(gpumem_vmm_release(second));
  CHECK(gpumem_vmm_free(base, reserved));

  /* Mistakes are reported, not crashed on: releasing twice is an error. */
  st = gpumem_vmm_release(first);
  printf("releasing a handle twice: %s (%s)\n", gpumem_status_name(st), gpumem_last_error());

  bool all_good = count_mismatches(check, 4 * gran, 7) == 0 && st == GPUMEM_ERR_DOUBLE_FREE;
  free(host);
  free(check);
  CHECK(gpumem_finalize());
  printf("%s\n", all_good ? "ok" : "FAILED");
  return all_good ? 0 : 1;
}
