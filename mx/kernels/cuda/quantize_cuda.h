// CUDA quantization: the functions of mx/core/quantize_ref.h on device buffers, bit for bit.
//
// All pointers are device pointers; buffers are sized as mx::storage_sizes says (element bytes,
// one scale byte per block, one bfloat16 offset per block for asymmetric specs, else offsets may
// be null). Work is enqueued on `stream`: nothing synchronises, nothing is allocated, and a
// non-empty returned string is a one-line reason (then nothing, or only part, was written).
//
// Supported: every element format, scale rule and rounding mode (stochastic included),
// asymmetric, flush_subnormals, zero_block_scale; 1-D blocks of any size along any axis and 2-D
// tiles, including blocks whose packed codes end inside a byte (e.g. 3 values of E2M1). Inputs
// float32, bfloat16 or float16; outputs float32 or bfloat16.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <span>
#include <string>

#include "mx/core/dtype.h"
#include "mx/core/quant_spec.h"

namespace mx::cuda {

// True when a CUDA device can be used; otherwise `why` (if given) says why not.
bool cuda_device_available(std::string* why);

std::string quantize_cuda(const void* d_in, DType dtype, std::span<const int64_t> shape,
                          const QuantSpec& spec, uint8_t* d_elements, uint8_t* d_scales,
                          uint16_t* d_offsets, cudaStream_t stream);

std::string dequantize_cuda(const uint8_t* d_elements, const uint8_t* d_scales,
                            const uint16_t* d_offsets, std::span<const int64_t> shape,
                            const QuantSpec& spec, DType out_dtype, void* d_out,
                            cudaStream_t stream);

// quantize then dequantize into `d_out` (float32 or bfloat16), without storing codes.
std::string fake_quantize_cuda(const void* d_in, DType dtype, std::span<const int64_t> shape,
                               const QuantSpec& spec, DType out_dtype, void* d_out,
                               cudaStream_t stream);

// Device buffers of one quantized tensor.
struct MxDeviceBuffers {
  uint8_t* elements = nullptr;
  uint8_t* scales = nullptr;
  uint16_t* offsets = nullptr;  // asymmetric only
};

// One read of a 2-D [M, K] matrix writes two quantizations: `rows` with blocks of
// spec.block_size (must be 32) along K (axis -1), `cols` with blocks of 32 along axis 0. Their
// bytes equal quantize_cuda with spec.axis = -1 and spec.axis = 0. spec.axis is ignored; tiles
// are refused.
std::string quantize_dual_cuda(const void* d_in, DType dtype, std::span<const int64_t> shape,
                               const QuantSpec& spec, MxDeviceBuffers rows, MxDeviceBuffers cols,
                               cudaStream_t stream);

}  // namespace mx::cuda
