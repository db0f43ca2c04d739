/* 06_mpi_node.c: the ranks of a node share one growable device buffer.
 *
 * Course topic "GPU memory in MPI jobs". An MPI job starts several ranks on
 * each node, and each rank must first pick its GPU. The usual rule is the
 * node-local rank: rank r of the node takes GPU r mod G. MPI itself says which
 * ranks share a node (MPI_Comm_split_type with MPI_COMM_TYPE_SHARED), and
 * gpumem_device_select turns that rank into a device, spreading ranks over
 * physical GPUs first and handing out MIG slices of one GPU in turn, without
 * creating a CUDA context on any device it only looks at (a context costs
 * about 0.5 GiB, and a GPU in EXCLUSIVE_PROCESS mode refuses a second one).
 *
 * Each rank then allocates its scratch memory from a stream-ordered pool on
 * a stream of its own, as a solver would for its temporaries.
 *
 * Finally the ranks of a node share one buffer without going through MPI:
 * node rank 0 creates a growable buffer (gpumem_buffer_t, shareable as POSIX
 * file descriptors) and grows it; the other ranks map the same physical
 * memory into their own address space and write their slice of it directly;
 * after an MPI_Barrier rank 0 checks every slice. The file descriptors travel
 * over an AF_UNIX socket (SCM_RIGHTS), the only way to pass an open file
 * to another process that did not fork from this one: rank 0 makes a private
 * directory (mkdtemp), listens on a socket in it, and broadcasts the path
 * over the node's communicator; the others connect and say who they are.
 *
 * Growth and sharing. The buffer grows by mapping a new physical segment
 * after the last one, so rank 0's pointer never moves; but a received buffer
 * is a fixed-size view of the segments that existed when it was sent
 * (gpumem_buffer_receive: resize returns NOT_SUPPORTED). The API's answer to
 * "the others must see the growth" is therefore: grow, then (re)send. This
 * program does it twice: round 1 grows the buffer to one slice per rank and
 * shares it; round 2 grows it to twice that, sends it again, and every rank
 * swaps its old view for the new one (the old slices are in the new view, at
 * the same offsets: growth never moves bytes). A view costs the receiver
 * only address space: destroying it unmaps it, and the memory lives on
 * until rank 0 releases it and every view of it is gone.
 *
 * Each slice is deliberately not a multiple of the granularity, and rank 0
 * grows the buffer one slice at a time, so the buffer is made of several
 * physical segments and slices straddle their boundaries: one virtual range,
 * several physical allocations. A copy engine does not care, but this is
 * exactly what CUDA-aware MPI libraries trip on (see the README's MPI
 * section: UCX and VMM memory).
 *
 * Errors: every libgpumem call is checked; a failure prints the call, its
 * status and gpumem_last_error() with the rank, then MPI_Abort ends the job
 * (one rank returning alone would leave the others waiting at a barrier).
 *
 * Run:  GPUMEM_BACKEND=host mpirun -np 4 --oversubscribe build/dev/examples/06_mpi_node
 *       (as root also --allow-run-as-root); the host backend emulates two
 *       devices per process, so ranks 0 and 2 take device 0, ranks 1 and 3
 *       device 1. On a GPU node drop GPUMEM_BACKEND.
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <mpi.h>

#include <gpumem/gpumem.h>

/* Who we are, for messages. */
static int g_world_rank;

static void fail(const char *call, gpumem_status s) {
  fprintf(stderr, "06_mpi_node: rank %d: %s failed: %s\n  %s\n", g_world_rank, call,
          gpumem_status_name(s), gpumem_last_error());
  MPI_Abort(MPI_COMM_WORLD, 1);
}

static void fail_os(const char *what) {
  fprintf(stderr, "06_mpi_node: rank %d: %s: %s\n", g_world_rank, what, strerror(errno));
  MPI_Abort(MPI_COMM_WORLD, 1);
}

#define CHECK(call)                       \
  do {                                    \
    gpumem_status s_ = (call);            \
    if (s_ != GPUMEM_OK) fail(#call, s_); \
  } while (0)

/* A slice: 1.5 granules of the host backend's 2 MiB (GPUs: 2 MiB too), so
 * that slices straddle the segments' boundaries. */
#define SLICE  ((size_t)3 << 19)
#define ROUNDS 2

/* The byte rank r writes into its slice of round k. */
static unsigned char pattern(int node_rank, int round) {
  return (unsigned char)(1 + node_rank + 64 * round);
}

/* Rank 0 of the node: listen on a socket in a fresh private directory.
 * `path` receives the socket's path (sizeof(sockaddr_un.sun_path) bytes). */
static int listen_socket(char *dir, char *path, size_t path_len) {
  const char *tmp = getenv("TMPDIR");
  snprintf(dir, 256, "%s/gpumem-mpi-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(dir)) fail_os("mkdtemp");
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if ((size_t)snprintf(path, path_len, "%s/socket", dir) >= sizeof addr.sun_path) {
    fprintf(stderr, "06_mpi_node: socket path %s/socket is too long for AF_UNIX (set TMPDIR)\n",
            dir);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  memcpy(addr.sun_path, path, strlen(path) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0) fail_os("socket");
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0) fail_os("bind");
  if (listen(fd, 64) != 0) fail_os("listen");
  return fd;
}

/* Another rank: connect to rank 0's socket and say which node rank we are. */
static int connect_socket(const char *path, int node_rank) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  memcpy(addr.sun_path, path, strlen(path) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0) fail_os("socket");
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) fail_os("connect");
  if (write(fd, &node_rank, sizeof node_rank) != (ssize_t)sizeof node_rank) fail_os("write");
  return fd;
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_world_rank);
  MPI_Comm node;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  int node_rank, node_size;
  MPI_Comm_rank(node, &node_rank);
  MPI_Comm_size(node, &node_size);

  /* No device at all (the CUDA backend on a machine without a GPU): every
   * rank sees the same, says so once, and the job exits 2. */
  int count = 0;
  gpumem_status st = gpumem_device_count(&count);
  if (st == GPUMEM_ERR_NO_DEVICE) {
    if (g_world_rank == 0)
      fprintf(stderr, "06_mpi_node: %s\n  (run with GPUMEM_BACKEND=host to use emulated devices)\n",
              gpumem_last_error());
    MPI_Comm_free(&node);
    MPI_Finalize();
    return 2;
  }
  CHECK(st);

  /* 1. One device per rank, by node-local rank. The device must offer VMM
   * and POSIX fd handles (the shared buffer) and pools (the scratch). On a
   * GPU, this is where the program would call cudaSetDevice(sel.ordinal)
   * before launching its kernels; libgpumem's calls take the device
   * explicitly and need no current device. */
  gpumem_select_criteria crit = GPUMEM_SELECT_CRITERIA_INIT;
  crit.local_rank = node_rank;
  crit.required_caps = GPUMEM_CAP_VMM | GPUMEM_CAP_POSIX_FD | GPUMEM_CAP_POOLS;
  gpumem_selection sel;
  CHECK(gpumem_device_select(&crit, &sel));
  const int device = sel.ordinal;

  /* Rank 0 prints every rank's choice, in rank order. */
  int world_size;
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  char *reasons = g_world_rank == 0 ? malloc((size_t)world_size * sizeof sel.reason) : NULL;
  if (g_world_rank == 0 && !reasons) fail_os("malloc");
  MPI_Gather(sel.reason, (int)sizeof sel.reason, MPI_CHAR, reasons, (int)sizeof sel.reason,
             MPI_CHAR, 0, MPI_COMM_WORLD);
  if (g_world_rank == 0) {
    printf("%d ranks, %d on this node, %d devices each\n", world_size, node_size, count);
    for (int r = 0; r < world_size; r++)
      printf("  %s\n", reasons + (size_t)r * sizeof sel.reason);
    free(reasons);
  }

  /* 2. Scratch from a pool, ordered on this rank's own stream. Each round's
   * slice is staged here (the memset stands for a kernel computing it) and
   * copied into the shared buffer on the same stream. */
  gpumem_stream_t stream;
  CHECK(gpumem_stream_create(device, &stream));
  gpumem_pool_config pcfg = GPUMEM_POOL_CONFIG_INIT;
  pcfg.device = device;
  gpumem_pool_t *pool;
  CHECK(gpumem_pool_create(&pcfg, &pool));
  void *scratch;
  CHECK(gpumem_pool_alloc(pool, SLICE, stream, &scratch));

  /* 3. The shared buffer and the sockets that carry it. */
  gpumem_buffer_t *buf = NULL; /* node rank 0: the buffer; others: the view */
  int *peers = NULL;           /* node rank 0: a connection per node rank */
  int conn = -1;               /* others: the connection to node rank 0 */
  char dir[256] = "", path[sizeof(((struct sockaddr_un *)0)->sun_path)] = "";
  if (node_rank == 0) {
    gpumem_buffer_config bcfg = GPUMEM_BUFFER_CONFIG_INIT;
    bcfg.device = device;
    bcfg.max_size = (size_t)ROUNDS * (size_t)node_size * SLICE + ((size_t)64 << 20);
    bcfg.handle_type = GPUMEM_HANDLE_POSIX_FD;
    CHECK(gpumem_buffer_create(&bcfg, &buf));
    int lfd = listen_socket(dir, path, sizeof path);
    MPI_Bcast(path, (int)sizeof path, MPI_CHAR, 0, node);
    peers = calloc((size_t)node_size, sizeof *peers);
    if (!peers) fail_os("calloc");
    for (int i = 1; i < node_size; i++) {
      int fd = accept(lfd, NULL, NULL), who = -1;
      if (fd < 0) fail_os("accept");
      if (read(fd, &who, sizeof who) != (ssize_t)sizeof who || who < 1 || who >= node_size ||
          peers[who]) {
        fprintf(stderr, "06_mpi_node: a connection did not name a node rank (%d)\n", who);
        MPI_Abort(MPI_COMM_WORLD, 1);
      }
      peers[who] = fd;
    }
    /* Everyone is connected: the path is needed no more. */
    close(lfd);
    unlink(path);
    rmdir(dir);
  } else {
    MPI_Bcast(path, (int)sizeof path, MPI_CHAR, 0, node);
    conn = connect_socket(path, node_rank);
  }

  for (int round = 0; round < ROUNDS; round++) {
    size_t total = (size_t)(round + 1) * (size_t)node_size * SLICE;
    if (node_rank == 0) {
      /* Grow one slice at a time (each growth maps one more segment), then
       * share what there is now. */
      while (gpumem_buffer_size(buf) < total)
        CHECK(gpumem_buffer_resize(buf, gpumem_buffer_size(buf) + SLICE));
      for (int i = 1; i < node_size; i++)
        CHECK(gpumem_buffer_send(buf, peers[i]));
    } else {
      /* The new view replaces the old one: unmap it, map the grown buffer. */
      CHECK(gpumem_buffer_destroy(buf));
      buf = NULL;
      CHECK(gpumem_buffer_receive(conn, device, &buf));
      if (gpumem_buffer_size(buf) != total) {
        fprintf(stderr, "06_mpi_node: rank %d received %zu bytes, expected %zu\n", g_world_rank,
                gpumem_buffer_size(buf), total);
        MPI_Abort(MPI_COMM_WORLD, 1);
      }
    }

    /* Every rank writes its slice of this round: compute into the scratch,
     * copy into the shared buffer, wait for the stream. */
    size_t offset = ((size_t)round * (size_t)node_size + (size_t)node_rank) * SLICE;
    unsigned char *slice = (unsigned char *)gpumem_buffer_data(buf) + offset;
    CHECK(gpumem_memset(scratch, pattern(node_rank, round), SLICE, stream));
    CHECK(gpumem_memcpy(slice, scratch, SLICE, stream));
    CHECK(gpumem_stream_synchronize(stream));
    MPI_Barrier(node);

    /* Node rank 0 reads the whole buffer back and checks every slice of
     * every round so far: the first round's slices survived the growth. */
    if (node_rank == 0) {
      unsigned char *host = malloc(total);
      if (!host) fail_os("malloc");
      CHECK(gpumem_memcpy(host, gpumem_buffer_data(buf), total, stream));
      CHECK(gpumem_stream_synchronize(stream));
      gpumem_buffer_stats bs = GPUMEM_BUFFER_STATS_INIT;
      CHECK(gpumem_buffer_get_stats(buf, &bs));
      for (int k = 0; k <= round; k++)
        for (int r = 0; r < node_size; r++) {
          const unsigned char *s = host + ((size_t)k * (size_t)node_size + (size_t)r) * SLICE;
          for (size_t i = 0; i < SLICE; i++)
            if (s[i] != pattern(r, k)) {
              fprintf(stderr,
                      "06_mpi_node: round %d: byte %zu of rank %d's slice is %u, expected %u\n", k,
                      i, r, s[i], pattern(r, k));
              MPI_Abort(MPI_COMM_WORLD, 1);
            }
        }
      printf("round %d: %zu MiB shared in %zu segments, %d slices of %zu KiB checked\n", round + 1,
             total >> 20, bs.segments, (round + 1) * node_size, SLICE >> 10);
      free(host);
    }
    MPI_Barrier(node);
  }

  /* Tear down in reverse: views and connections, the buffer, the scratch,
   * the pool (before its stream), the stream; then the library, which says
   * BUSY if anything was forgotten. */
  CHECK(gpumem_buffer_destroy(buf));
  if (node_rank == 0) {
    for (int i = 1; i < node_size; i++)
      close(peers[i]);
    free(peers);
  } else {
    close(conn);
  }
  CHECK(gpumem_pool_free(pool, scratch, stream));
  CHECK(gpumem_pool_destroy(pool));
  CHECK(gpumem_stream_destroy(stream));
  CHECK(gpumem_finalize());

  MPI_Barrier(MPI_COMM_WORLD);
  if (g_world_rank == 0) printf("ok\n");
  MPI_Comm_free(&node);
  MPI_Finalize();
  return 0;
}
