// What the GPU benchmarks share: CUDA and cuBLAS/cuBLASLt status checks that end the program,
// and the median time of a call measured with CUDA events on the default stream.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#define CHECK(x)                                                    \
  do {                                                              \
    cudaError_t e_ = (x);                                           \
    if (e_ != cudaSuccess) {                                        \
      std::fprintf(stderr, "%s: %s\n", #x, cudaGetErrorString(e_)); \
      std::exit(1);                                                 \
    }                                                               \
  } while (0)

// A cuBLAS or cuBLASLt status other than success (0) ends the program.
#define CHECK_BLAS(x)                                  \
  do {                                                 \
    const int s_ = int(x);                             \
    if (s_ != 0) {                                     \
      std::fprintf(stderr, "%s: status %d\n", #x, s_); \
      std::exit(1);                                    \
    }                                                  \
  } while (0)

namespace mx::bench {

// Milliseconds per call of fn, the median of `reps` timed calls after 3 untimed ones.
template <class Fn>
float median_ms(Fn&& fn, int reps) {
  cudaEvent_t a, b;
  CHECK(cudaEventCreate(&a));
  CHECK(cudaEventCreate(&b));
  for (int i = 0; i < 3; ++i) fn();
  CHECK(cudaDeviceSynchronize());
  std::vector<float> t;
  for (int i = 0; i < reps; ++i) {
    CHECK(cudaEventRecord(a));
    fn();
    CHECK(cudaEventRecord(b));
    CHECK(cudaEventSynchronize(b));
    float ms = 0;
    CHECK(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms);
  }
  CHECK(cudaEventDestroy(a));
  CHECK(cudaEventDestroy(b));
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace mx::bench
