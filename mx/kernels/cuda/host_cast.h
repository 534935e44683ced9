// Host-memory convenience over the device API: copies a host tensor to the GPU, quantizes it
// there, and copies the MxTensor (or decoded values) back. For tools and tests; hot loops
// should call quantize_cuda on device buffers they own.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "mx/core/dtype.h"
#include "mx/core/mx_tensor.h"
#include "mx/core/quant_spec.h"

namespace mx::cuda {

// Quantizes a row-major host tensor on the current CUDA device. Returns "" or a one-line reason
// (no device, out of device memory, an unsupported spec).
std::string quantize_on_device(const void* host_in, DType dtype, std::span<const int64_t> shape,
                               const QuantSpec& spec, MxTensor* out);

// Decodes an MxTensor on the device into host memory (float32 or bfloat16).
std::string dequantize_on_device(const MxTensor& t, DType out_dtype, void* host_out);

}  // namespace mx::cuda
