// kernels.cu: device code for the GPU-only tests (built when nvcc is found).
// A kernel that spins for a while, then writes a byte pattern: work still in
// flight on a stream when the host frees and reallocates memory.
#include <cuda_runtime.h>

namespace {
__global__ void spin_then_write(unsigned char *dst, size_t n, unsigned char value,
                                long long cycles) {
  long long start = clock64();
  while (clock64() - start < cycles) {
  }
  for (size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    dst[i] = value;
}
}  // namespace

extern "C" int gm_test_spin_then_write(void *dst, size_t n, unsigned char value, long long cycles,
                                       void *stream) {
  spin_then_write<<<64, 256, 0, (cudaStream_t)stream>>>((unsigned char *)dst, n, value, cycles);
  return (int)cudaGetLastError();
}

// Word i of a block holds seed * 2654435761 + i; a second kernel counts the
// words that do not. Used by the arena's end-to-end test.
namespace {
__global__ void fill_words(unsigned *dst, size_t n, unsigned seed) {
  for (size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    dst[i] = seed * 2654435761u + (unsigned)i;
}

__global__ void count_wrong_words(const unsigned *src, size_t n, unsigned seed,
                                  unsigned long long *wrong) {
  unsigned long long mine = 0;
  for (size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    mine += src[i] != seed * 2654435761u + (unsigned)i;
  if (mine) atomicAdd(wrong, mine);
}
}  // namespace

extern "C" int gm_test_fill_words(void *dst, size_t words, unsigned seed, void *stream) {
  fill_words<<<128, 256, 0, (cudaStream_t)stream>>>((unsigned *)dst, words, seed);
  return (int)cudaGetLastError();
}

extern "C" int gm_test_count_wrong_words(const void *src, size_t words, unsigned seed,
                                         unsigned long long *wrong, void *stream) {
  count_wrong_words<<<128, 256, 0, (cudaStream_t)stream>>>((const unsigned *)src, words, seed,
                                                           wrong);
  return (int)cudaGetLastError();
}
