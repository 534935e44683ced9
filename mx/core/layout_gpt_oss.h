// gpt-oss checkpoint layout for MXFP4 weights (MX_REFERENCE.md §6): two safetensors U8 tensors,
//   NAME.blocks [..., N, K/32, 16]  FP4 codes, element 2i in the low nibble of byte i;
//   NAME.scales [..., N, K/32]      E8M0 bytes.
//
// For E2M1 in row-wise blocks of 32 our MxTensor stores exactly these bytes: blocks are numbered
// row-major over (row, K/32) and each block's 32 codes are a 16-byte low-nibble-first stream.
// So the conversion only copies the vectors and computes the shapes.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "mx/core/mx_tensor.h"
#include "mx/core/quant_spec.h"

namespace mx {

// The spec of MXFP4 as gpt-oss and ggml store it: E2M1, symmetric, blocks of 32 along the last
// axis (scale rule and rounding at their defaults; they do not affect the stored bytes).
QuantSpec mxfp4_rowwise_spec();

// Empty when `t` is E2M1, symmetric, in 1-D blocks of 32 along its last axis, at least 1-D with
// a last dimension that is a multiple of 32, and its vectors have consistent sizes; else why not.
// Both the gpt-oss and the ggml layouts need exactly this.
std::string check_mxfp4_rowwise(const MxTensor& t);

struct GptOssMxfp4 {
  std::vector<uint8_t> blocks;
  std::vector<int64_t> blocks_shape;  // [..., N, K/32, 16]
  std::vector<uint8_t> scales;
  std::vector<int64_t> scales_shape;  // [..., N, K/32]
};

// The two gpt-oss tensors for `t`, or a reason in `error` (see check_mxfp4_rowwise).
GptOssMxfp4 to_gpt_oss(const MxTensor& t, std::string* error);

// The MxTensor (spec mxfp4_rowwise_spec(), shape [..., N, K]) for a pair of gpt-oss tensors, or
// a reason in `error` when the shapes disagree with each other or with the byte counts.
MxTensor from_gpt_oss(const GptOssMxfp4& in, std::string* error);

}  // namespace mx
