#include "mx/kernels/cuda/host_cast.h"

#include <cuda_runtime_api.h>

#include "mx/kernels/cuda/quantize_cuda.h"

namespace mx::cuda {
namespace {

// A device allocation freed on scope exit.
struct DeviceBuffer {
  void* ptr = nullptr;
  ~DeviceBuffer() {
    if (ptr != nullptr) cudaFree(ptr);
  }
  std::string allocate(size_t bytes) {
    if (bytes == 0) return "";
    const cudaError_t e = cudaMalloc(&ptr, bytes);
    return e == cudaSuccess ? "" : std::string("cudaMalloc: ") + cudaGetErrorString(e);
  }
  template <class T>
  T* as() const {
    return static_cast<T*>(ptr);
  }
};

std::string check(cudaError_t e, const char* what) {
  return e == cudaSuccess ? "" : std::string(what) + ": " + cudaGetErrorString(e);
}

}  // namespace

std::string quantize_on_device(const void* host_in, DType dtype, std::span<const int64_t> shape,
                               const QuantSpec& spec, MxTensor* out) {
  std::string why;
  if (!cuda_device_available(&why)) return "no CUDA device: " + why;
  std::string error;
  *out = make_mx_tensor(shape, spec, &error);
  if (!error.empty()) return error;
  const size_t in_bytes = size_t(element_count(shape)) * size_t(dtype_size(dtype));
  DeviceBuffer in, elements, scales, offsets;
  for (auto [buffer, bytes] : {std::pair{&in, in_bytes},
                               {&elements, out->elements.size()},
                               {&scales, out->scales.size()},
                               {&offsets, out->offsets.size() * 2}}) {
    if (std::string e = buffer->allocate(bytes); !e.empty()) return e;
  }
  if (in_bytes > 0) {
    if (auto e = check(cudaMemcpy(in.ptr, host_in, in_bytes, cudaMemcpyHostToDevice), "copy in");
        !e.empty()) {
      return e;
    }
  }
  if (std::string e = quantize_cuda(in.ptr, dtype, shape, spec, elements.as<uint8_t>(),
                                    scales.as<uint8_t>(), offsets.as<uint16_t>(), nullptr);
      !e.empty()) {
    return e;
  }
  const std::pair<void*, const DeviceBuffer*> copies[] = {{out->elements.data(), &elements},
                                                          {out->scales.data(), &scales},
                                                          {out->offsets.data(), &offsets}};
  const size_t sizes[] = {out->elements.size(), out->scales.size(), out->offsets.size() * 2};
  for (int i = 0; i < 3; ++i) {
    if (sizes[i] == 0) continue;
    if (auto e = check(
            cudaMemcpy(copies[i].first, copies[i].second->ptr, sizes[i], cudaMemcpyDeviceToHost),
            "copy out");
        !e.empty()) {
      return e;
    }
  }
  return "";
}

std::string dequantize_on_device(const MxTensor& t, DType out_dtype, void* host_out) {
  std::string why;
  if (!cuda_device_available(&why)) return "no CUDA device: " + why;
  if (std::string e = check_consistent(t); !e.empty()) return e;
  const size_t out_bytes = size_t(element_count(t.shape)) * size_t(dtype_size(out_dtype));
  DeviceBuffer out, elements, scales, offsets;
  const std::pair<DeviceBuffer*, std::pair<const void*, size_t>> inputs[] = {
      {&elements, {t.elements.data(), t.elements.size()}},
      {&scales, {t.scales.data(), t.scales.size()}},
      {&offsets, {t.offsets.data(), t.offsets.size() * 2}}};
  if (std::string e = out.allocate(out_bytes); !e.empty()) return e;
  for (const auto& [buffer, host] : inputs) {
    if (std::string e = buffer->allocate(host.second); !e.empty()) return e;
    if (host.second == 0) continue;
    if (auto e = check(cudaMemcpy(buffer->ptr, host.first, host.second, cudaMemcpyHostToDevice),
                       "copy in");
        !e.empty()) {
      return e;
    }
  }
  if (std::string e =
          dequantize_cuda(elements.as<uint8_t>(), scales.as<uint8_t>(), offsets.as<uint16_t>(),
                          t.shape, t.spec, out_dtype, out.ptr, nullptr);
      !e.empty()) {
    return e;
  }
  if (out_bytes == 0) return "";
  return check(cudaMemcpy(host_out, out.ptr, out_bytes, cudaMemcpyDeviceToHost), "copy out");
}

}  // namespace mx::cuda
