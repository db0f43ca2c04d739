/* 05_peer_arena.c: one address range for every GPU, with an O(1) allocator.
 *
 * Course topics "multi-GPU VMM: peer access, fabric handles, NVLink" and
 * "building efficient memory managers". With CUDA's virtual memory API the
 * physical memory of one GPU can be mapped into a virtual range and that
 * range opened to other GPUs with cuMemSetAccess: a kernel on GPU 0 then
 * dereferences a pointer whose bytes live on GPU 1, over NVLink or PCIe,
 * without cudaDeviceEnablePeerAccess (which opens *all* of a device's memory
 * to the peer and costs time for every allocation made afterwards).
 *
 * gpumem_arena_t builds this for you: one range, chunks of physical memory
 * on each member mapped into it and opened to every member, and a TLSF
 * sub-allocator (two-level segregated fit, host-side metadata) that hands
 * out blocks in constant time. Where each block lives is your choice:
 *
 *   LOCAL       the device you name in gpumem_arena_alloc; typical for halo
 *               buffers that a neighbour GPU reads or writes
 *   INTERLEAVE  striped over all members; one large array spreads its
 *               bandwidth (and its footprint) over every GPU
 *
 * Members must reach each other: two MIG slices, or GPUs with no P2P path,
 * cannot share an arena, and creation says which pair failed and why.
 *
 * This tutorial builds an arena over the visible GPUs (one on a single-GPU
 * machine, the emulated devices with GPUMEM_BACKEND=host), places a block on
 * each, has every device's stream write its neighbour's block, checks the
 * bytes, and prints the statistics; then it grows a block by copies under
 * two `remap` settings, to show the trade between memory held and driver
 * calls.
 *
 * Run:  build/release/examples/05_peer_arena  (GPUMEM_BACKEND=host without a GPU)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gpumem/gpumem.h>

#define CHECK(call)                                                                          \
  do {                                                                                       \
    gpumem_status s_ = (call);                                                               \
    if (s_ != GPUMEM_OK) {                                                                   \
      fprintf(stderr, "05_peer_arena: %s failed: %s\n  %s\n", #call, gpumem_status_name(s_), \
              gpumem_last_error());                                                          \
      exit(1);                                                                               \
    }                                                                                        \
  } while (0)

#define BLOCK ((size_t)1 << 20)

static void print_stats(gpumem_arena_t *arena) {
  gpumem_arena_stats s = GPUMEM_ARENA_STATS_INIT;
  CHECK(gpumem_arena_get_stats(arena, &s));
  printf("  mapped %.1f MiB of %.1f MiB, in use %.2f MiB in %zu blocks, largest free %.2f MiB, "
         "fragmentation %.2f, %llu growths\n",
         (double)s.base.bytes_reserved / (1 << 20), (double)s.max_size / (1 << 20),
         (double)s.base.bytes_in_use / (1 << 20), s.blocks_in_use,
         (double)s.base.largest_free / (1 << 20), s.fragmentation, (unsigned long long)s.growths);
  for (size_t m = 0; m < s.device_count; m++) {
    printf("    device %d: %.1f MiB mapped, %.2f MiB in use\n", s.devices[m].device,
           (double)s.devices[m].bytes_mapped / (1 << 20),
           (double)s.devices[m].bytes_in_use / (1 << 20));
  }
}

/* The visible devices that can all reach device 0 and each other. */
static int pick_members(int count, int *members) {
  int n = 0;
  for (int d = 0; d < count && n < GPUMEM_MAX_DEVICES; d++) {
    bool ok = true;
    for (int k = 0; k < n && ok; k++) {
      gpumem_peer_info a, b;
      CHECK(gpumem_device_peer_info(d, members[k], &a));
      CHECK(gpumem_device_peer_info(members[k], d, &b));
      if (!a.can_map || !b.can_map) {
        printf("  leaving out device %d: %s\n", d, a.can_map ? b.why : a.why);
        ok = false;
      }
    }
    if (ok) members[n++] = d;
  }
  return n;
}

int main(void) {
  int count = 0;
  gpumem_status st = gpumem_device_count(&count);
  if (st == GPUMEM_ERR_NO_DEVICE) {
    fprintf(stderr, "05_peer_arena: %s\n  (run with GPUMEM_BACKEND=host to use emulated devices)\n",
            gpumem_last_error());
    return 2;
  }
  CHECK(st);
  printf("backend %s, %d device(s)\n", gpumem_backend_name(), count);

  /* 1. An arena over every device that can reach the others. */
  int members[GPUMEM_MAX_DEVICES];
  int n = pick_members(count, members);
  gpumem_arena_config cfg = GPUMEM_ARENA_CONFIG_INIT;
  cfg.devices = members;
  cfg.device_count = (size_t)n;
  cfg.placement = GPUMEM_PLACE_LOCAL;
  cfg.max_size = (size_t)n * (256u << 20); /* 256 MiB of address space per member */
  gpumem_arena_t *arena = NULL;
  CHECK(gpumem_arena_create(&cfg, &arena));
  printf("1. a LOCAL arena over %d device(s)\n", n);

  /* 2. One block on each member; owner() says where its bytes live. */
  void *block[GPUMEM_MAX_DEVICES];
  for (int m = 0; m < n; m++) {
    CHECK(gpumem_arena_alloc(arena, BLOCK, 0, members[m], &block[m]));
    int owner = -1;
    CHECK(gpumem_arena_owner(arena, block[m], &owner));
    printf("2. block %d at %p lives on device %d\n", m, block[m], owner);
  }

  /* 3. Each device's stream writes its neighbour's block (on one GPU, its
   *    own): the copy runs on device d and lands in device d+1's memory
   *    through the arena's mapping, no peer enabling needed. */
  unsigned char *host = malloc(BLOCK);
  for (int m = 0; m < n; m++) {
    int peer = (m + 1) % n;
    gpumem_stream_t s = NULL;
    CHECK(gpumem_stream_create(members[m], &s));
    memset(host, 0x40 + m, BLOCK);
    CHECK(gpumem_memcpy(block[peer], host, BLOCK, s));
    CHECK(gpumem_stream_synchronize(s));
    CHECK(gpumem_stream_destroy(s));
    printf("3. device %d wrote 0x%02x into the block on device %d\n", members[m], 0x40 + m,
           members[peer]);
  }
  int wrong = 0;
  for (int m = 0; m < n; m++) {
    int writer = (m + n - 1) % n;
    CHECK(gpumem_memcpy(host, block[m], BLOCK, NULL));
    CHECK(gpumem_stream_synchronize(NULL));
    for (size_t i = 0; i < BLOCK; i++)
      wrong += host[i] != (unsigned char)(0x40 + writer);
  }
  printf("   read back: %d wrong bytes\n", wrong);

  /* 4. Many small blocks: constant-time alloc and free, neighbours merge. */
  void *small[1000];
  for (int i = 0; i < 1000; i++)
    CHECK(gpumem_arena_alloc(arena, 256 + (size_t)i * 64, 0, members[i % n], &small[i]));
  printf("4. after 1000 more blocks:\n");
  print_stats(arena);
  for (int i = 0; i < 1000; i++)
    CHECK(gpumem_arena_free(arena, small[i]));
  for (int m = 0; m < n; m++)
    CHECK(gpumem_arena_free(arena, block[m]));
  printf("   after freeing everything (memory stays mapped for the next blocks):\n");
  print_stats(arena);

  /* 5. Mistakes are errors, not crashes. */
  st = gpumem_arena_free(arena, small[0]);
  printf("5. freeing a block twice: %s\n   %s\n", gpumem_status_name(st), gpumem_last_error());
  char why[256];
  CHECK(gpumem_arena_check(arena, why, sizeof why));
  CHECK(gpumem_arena_destroy(arena));

  /* 6. Interleaved: a large array striped over the members. */
  cfg.placement = GPUMEM_PLACE_INTERLEAVE;
  CHECK(gpumem_arena_create(&cfg, &arena));
  gpumem_arena_stats s = GPUMEM_ARENA_STATS_INIT;
  CHECK(gpumem_arena_get_stats(arena, &s));
  void *big = NULL;
  CHECK(gpumem_arena_alloc(arena, 4 * s.stripe_size * (size_t)n, 0, GPUMEM_ARENA_ANY_DEVICE, &big));
  printf("6. an INTERLEAVE arena, stripe %.1f MiB; stripes of one block live on devices:",
         (double)s.stripe_size / (1 << 20));
  for (size_t k = 0; k < 4 * (size_t)n; k++) {
    int owner = -1;
    CHECK(gpumem_arena_owner(arena, (char *)big + k * s.stripe_size, &owner));
    printf(" %d", owner);
  }
  printf("\n");
  CHECK(gpumem_arena_free(arena, big));
  CHECK(gpumem_arena_destroy(arena));

  /* 7. Memory or driver calls. A block that grows by copies (a KV cache:
   *    allocate one page more, copy, free the old) needs new contiguous
   *    memory at every step. The arena can move the old block's free pages
   *    to where the new one goes (an unmap, maps and an access call), or
   *    create new pages and keep the old ones mapped. `remap` says which:
   *    MEMORY moves whenever creating would hold more than 5% over the
   *    peak use, CALLS never moves while the device has room, BALANCED
   *    (the default) moves within a budget. */
  const gpumem_arena_remap settings[2] = {GPUMEM_ARENA_REMAP_MEMORY, GPUMEM_ARENA_REMAP_CALLS};
  const char *names[2] = {"MEMORY", "CALLS"};
  printf("7. a block grown by copies, 1 to 12 pages:\n");
  for (int k = 0; k < 2; k++) {
    gpumem_arena_config one = GPUMEM_ARENA_CONFIG_INIT;
    one.devices = members;
    one.device_count = 1;
    one.remap = settings[k];
    CHECK(gpumem_arena_create(&one, &arena));
    CHECK(gpumem_arena_get_stats(arena, &s));
    size_t page = s.page_size;
    void *cache = NULL;
    CHECK(gpumem_arena_alloc(arena, page, 0, members[0], &cache));
    for (size_t pages = 2; pages <= 12; pages++) {
      void *grown = NULL;
      CHECK(gpumem_arena_alloc(arena, pages * page, 0, members[0], &grown));
      CHECK(gpumem_memcpy(grown, cache, (pages - 1) * page, NULL)); /* torch.cat's copy */
      CHECK(gpumem_stream_synchronize(NULL));
      CHECK(gpumem_arena_free(arena, cache));
      cache = grown;
    }
    CHECK(gpumem_arena_get_stats(arena, &s));
    printf("   %-6s peak reserved %2zu pages for a peak use of 23, %2llu pages moved\n", names[k],
           s.base.peak_bytes_reserved / page, (unsigned long long)s.pages_remapped);
    CHECK(gpumem_arena_free(arena, cache));
    CHECK(gpumem_arena_destroy(arena));
  }
  free(host);
  if (wrong != 0) return 1;
  printf("ok\n");
  return 0;
}
