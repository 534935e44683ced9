// Raising a kernel's dynamic shared-memory limit above 48 KB, once per kernel and device (the
// attribute belongs to the device's context, so a process that moves to another GPU must set it
// again there).
#pragma once

#include <cuda_runtime_api.h>

#include <array>
#include <atomic>

namespace mx::cuda {

// One per kernel: the devices whose limit is already raised.
struct SharedMemoryLimit {
  static constexpr int kDevices = 64;
  std::array<std::atomic<bool>, kDevices> raised{};

  // cudaSuccess when `kernel` may take `bytes` of dynamic shared memory on the current device.
  cudaError_t ensure(const void* kernel, int bytes) {
    int device = 0;
    if (const cudaError_t e = cudaGetDevice(&device); e != cudaSuccess) return e;
    if (device >= 0 && device < kDevices && raised[device].load(std::memory_order_acquire)) {
      return cudaSuccess;
    }
    const cudaError_t e =
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
    if (e == cudaSuccess && device >= 0 && device < kDevices) {
      raised[device].store(true, std::memory_order_release);
    }
    return e;
  }
};

}  // namespace mx::cuda
