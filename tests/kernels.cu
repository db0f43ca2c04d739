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
