// The stochastic-rounding streams of a recipe's casts (recipe.h), shared by every backend so
// that the same cast of the same values gives the same bits on each: a stream per product
// (step, layer, site), one per operand role within it, and the spec a cast then quantizes with.
#pragma once

#include <cstdint>

#include "mx/core/quant_spec.h"
#include "mx/nn/backend.h"

namespace mx::nn {

uint64_t stream_id(uint64_t step, int layer, int site);
inline uint64_t stream_of(SrKey key) {
  return stream_id(key.step, key.layer, key.site);
}

// The six operands of a linear layer's three products (recipe.h).
enum class LinearOperand : uint64_t {
  kActFwd = 1,
  kWeightFwd,
  kGradOutDx,
  kWeightDx,
  kGradOutDw,
  kActDw
};
uint64_t operand_stream(uint64_t stream, LinearOperand operand);

// The twelve cast operands of attention (the table in mx/nn/cpu/attention.cpp).
enum class AttnOperand : uint64_t {
  kQFwd,
  kKFwd,
  kPFwd,
  kVFwd,
  kDoDx,
  kVDw,
  kPDw,
  kDoDw,
  kDsDx,
  kKDw,
  kDsDw,
  kQDw
};
uint64_t operand_stream(uint64_t stream, AttnOperand operand);

// The spec an MX cast quantizes with: the role's, along `axis`, its seed mixed with the stream.
QuantSpec cast_spec(const QuantSpec& role, int axis, uint64_t stream);

}  // namespace mx::nn
