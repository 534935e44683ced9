// Launching a kernel that takes more than 48 KB of dynamic shared memory: its limit is raised
// first (once per device: shared_memory_limit.h), and both steps' errors come back as one line.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "mx/kernels/cuda/shared_memory_limit.h"

namespace mx::cuda {

// kKernel<<<grid, threads, shared_bytes, stream>>>(params); "" or "<name>: <what failed>".
template <auto kKernel, class Params>
std::string launch_with_shared_memory(const Params& params, unsigned grid, int threads,
                                      int shared_bytes, cudaStream_t stream, const char* name) {
  static SharedMemoryLimit limit;  // one per kernel
  const cudaError_t raised = limit.ensure(reinterpret_cast<const void*>(kKernel), shared_bytes);
  if (raised != cudaSuccess) {
    return std::string(name) + ": cannot reserve shared memory: " + cudaGetErrorString(raised);
  }
  kKernel<<<grid, threads, shared_bytes, stream>>>(params);
  const cudaError_t launched = cudaGetLastError();
  if (launched != cudaSuccess) {
    return std::string(name) + ": launch failed: " + cudaGetErrorString(launched);
  }
  return {};
}

}  // namespace mx::cuda
