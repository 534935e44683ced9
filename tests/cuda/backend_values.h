// Float values into and out of a backend's buffers, for tests of single backend ops: bfloat16
// buffers hold the values' bfloat16 roundings, other types the values themselves.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "mx/core/half.h"
#include "mx/nn/backend.h"

namespace mx::nn {

// A new buffer of `type` on the backend holding `values`.
inline Buf upload(Backend& be, BufType type, const std::vector<float>& values) {
  Buf b = be.alloc(type, int64_t(values.size()));
  if (type == BufType::kBF16) {
    std::vector<uint16_t> bits(values.size());
    std::transform(values.begin(), values.end(), bits.begin(), float_to_bf16);
    be.upload(b, bits.data());
  } else {
    be.upload(b, values.data());
  }
  return b;
}

inline std::vector<float> download(Backend& be, Buf b) {
  std::vector<float> out(static_cast<size_t>(b.n));
  if (b.type == BufType::kBF16) {
    std::vector<uint16_t> bits(static_cast<size_t>(b.n));
    be.download(bits.data(), b);
    std::transform(bits.begin(), bits.end(), out.begin(), bf16_to_float);
  } else {
    be.download(out.data(), b);
  }
  return out;
}

}  // namespace mx::nn
