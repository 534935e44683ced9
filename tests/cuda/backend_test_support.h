// What the CUDA backend's tests share: a backend to test, random values, float values into and
// out of its buffers (bfloat16 buffers hold the values' bfloat16 roundings, other types the
// values themselves), and a relative distance between results.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "mx/core/half.h"
#include "mx/nn/backend.h"
#include "mx/nn/cuda/cuda_backend.h"

namespace mx::nn {

// A CUDA backend with activations of type `act`; *ok false, and the test failed, where none can
// be made.
inline std::unique_ptr<Backend> gpu(BufType act, bool* ok, bool packed_products = false) {
  CudaBackendOptions o;
  o.act_type = act;
  o.packed_products = packed_products;
  std::string error;
  std::unique_ptr<Backend> backend = make_cuda_backend(o, &error);
  *ok = backend != nullptr;
  EXPECT_TRUE(*ok) << error;
  return backend;
}

// ||a - b|| / ||b|| in the 2-norm (||a - b|| where b is zero).
inline double rel_diff(const float* a, const float* b, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; ++i) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

// n values drawn from N(0, scale^2), the same for the same seed.
inline std::vector<float> normal(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

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
