// Matrix products from packed MX weights (mx/kernels/cpu/mx_matmul.h), checked against oracles
// written here from the definitions in docs/NUMERICS.md: the dequantized operands' dot product
// in double precision, the reference GEMM of core (mx::gemm_ref) on the MXINT8-quantized x, and
// plain loops that sum in the documented order. Every case runs on every instruction set this
// machine supports and on several thread counts.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <random>

#include "mx/core/bitpack.h"
#include "mx/core/dot_ref.h"
#include "mx/core/e8m0.h"
#include "mx/core/element_ref.h"
#include "mx/core/half.h"
#include "mx/core/quantize_ref.h"
#include "mx/kernels/cpu/mx_matmul.h"

namespace mx {
namespace {

using cpu::MatmulMode;

struct Shape {
  int64_t m, n, k;
};
// Odd sizes, K not a multiple of 32 (and an odd number of blocks), a single row and column.
const Shape kShapes[] = {{1, 1, 1},   {1, 7, 33}, {3, 5, 32},   {2, 13, 95},
                         {5, 4, 100}, {4, 9, 64}, {1, 17, 257}, {6, 3, 31}};

QuantSpec blocks_of_32(ElementFormat f) {
  QuantSpec s;
  s.format = f;
  return s;
}

std::vector<float> normal_values(size_t count, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, sigma);
  std::vector<float> v(count);
  for (float& x : v) x = d(rng);
  return v;
}

// W quantized by the reference from normal values with an outlier now and then.
MxTensor weights_from_values(ElementFormat f, int64_t n, int64_t k, uint32_t seed) {
  std::vector<float> v = normal_values(n * k, seed);
  for (size_t i = 0; i < v.size(); i += 37) v[i] *= 20.0f;
  std::string error;
  MxTensor w = quantize_ref(v, std::vector<int64_t>{n, k}, blocks_of_32(f), &error);
  EXPECT_EQ(error, "");
  return w;
}

// W written code by code, with values that keep float32 partial sums exact: magnitudes are 0 or
// within a factor 16 of the format's largest (at most 8 significant bits: a fixed quantum and
// fewer than 2^9 of them), scales 2^-1, 2^0 or 2^1. Padding slots keep code 0.
MxTensor weights_with_few_bits(ElementFormat f, int64_t n, int64_t k, uint32_t seed) {
  const FormatTraits& t = traits(f);
  std::vector<uint8_t> usable;
  for (int c = 0; c < (1 << t.bits); ++c) {
    const double v = decode_element(t, uint8_t(c));
    if (std::isfinite(v) && (v == 0 || std::fabs(v) >= t.max_normal / 16)) usable.push_back(c);
  }
  std::string error;
  MxTensor w = make_mx_tensor(std::vector<int64_t>{n, k}, blocks_of_32(f), &error);
  EXPECT_EQ(error, "");
  std::mt19937 rng(seed);
  const int64_t nb = (k + 31) / 32;
  std::vector<uint8_t> codes(n * nb * 32, 0);
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t j = 0; j < k; ++j) codes[r * nb * 32 + j] = usable[rng() % usable.size()];
  }
  pack_codes(codes, t.bits, 0, w.elements);
  for (uint8_t& s : w.scales) s = uint8_t(126 + rng() % 3);
  return w;
}

// Small integers: exact in bfloat16, and exact partial sums with weights_with_few_bits.
std::vector<float> small_integers(size_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<float> v(count);
  for (float& x : v) x = float(int(rng() % 15) - 7);
  return v;
}

std::vector<uint16_t> to_bf16(const std::vector<float>& v) {
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = float_to_bf16(v[i]);
  return out;
}

// Runs mx_matmul on every supported target and thread count, requires identical bits from all
// of them, and returns that result.
std::vector<float> matmul_everywhere(const MxTensor& w, const std::vector<float>& x, int64_t m,
                                     MatmulMode mode, DType x_dtype = DType::kF32) {
  const int64_t n = w.shape[0];
  const std::vector<uint16_t> x_bf16 = to_bf16(x);
  const void* xp = x_dtype == DType::kF32 ? static_cast<const void*>(x.data()) : x_bf16.data();
  std::vector<float> first;
  for (cpu::SimdTarget target : cpu::supported_targets()) {
    for (int threads : {1, 2, 3}) {
      SCOPED_TRACE(std::string(cpu::target_name(target)) + " threads " + std::to_string(threads));
      cpu::MatmulOptions options;
      options.mode = mode;
      options.target = target;
      options.threads = threads;
      options.min_bytes_per_thread = 0;  // split even these small products
      std::vector<float> y(m * n, -1.0f);
      EXPECT_EQ(cpu::mx_matmul(w, xp, x_dtype, m, y.data(), options), "");
      if (first.empty()) {
        first = y;
      } else {
        EXPECT_EQ(0, std::memcmp(first.data(), y.data(), y.size() * 4));
      }
    }
  }
  return first;
}

// Exact mode's definition, as plain loops: lane j adds w_i * x_i for i = 32b + 2j, then
// 32b + 2j + 1, block after block (padding slots: code 0 times zero); then lane j + 8 is added
// to lane j, j + 4, j + 2 and j + 1.
float sum_in_documented_order(const float* w, const float* x, int64_t k) {
  float lane[16] = {};
  for (int64_t b = 0; 32 * b < k; ++b) {
    for (int j = 0; j < 16; ++j) {
      for (int odd = 0; odd < 2; ++odd) {
        const int64_t i = 32 * b + 2 * j + odd;
        lane[j] = lane[j] + (i < k ? w[i] * x[i] : w[i] * 0.0f);
      }
    }
  }
  for (int width = 8; width >= 1; width /= 2) {
    for (int j = 0; j < width; ++j) lane[j] = lane[j] + lane[j + width];
  }
  return lane[0];
}

// The dequantized W with each row's padding slots, [n][blocks * 32].
std::vector<float> dequantized_padded_rows(const MxTensor& w) {
  const FormatTraits& f = traits(w.spec.format);
  const int64_t n = w.shape[0], nb = (w.shape[1] + 31) / 32;
  std::vector<uint8_t> codes(n * nb * 32);
  unpack_codes(w.elements, f.bits, 0, codes);
  std::vector<float> out(codes.size());
  for (size_t i = 0; i < codes.size(); ++i) {
    out[i] = decode_value(f, codes[i], w.scales[i / 32], false, 0);
  }
  return out;
}

std::vector<float> exact_mode_oracle(const MxTensor& w, const std::vector<float>& x, int64_t m) {
  const int64_t n = w.shape[0], k = w.shape[1], stride = (k + 31) / 32 * 32;
  const std::vector<float> wd = dequantized_padded_rows(w);
  std::vector<float> y(m * n);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t r = 0; r < n; ++r) {
      y[i * n + r] = sum_in_documented_order(wd.data() + r * stride, x.data() + i * k, k);
    }
  }
  return y;
}

// Fast mode's definition, as plain loops: x quantized by the reference to MXINT8; per pair of
// blocks, lane l holds the integer dot product of elements 4l .. 4l + 3 of the pair, converted
// to float32, times Xw * Xx * 2^(q_w - 6) and added to lane l; then the tree of exact mode.
std::vector<float> fast_mode_oracle(const MxTensor& w, const std::vector<float>& x, int64_t m) {
  const FormatTraits& f = traits(w.spec.format);
  const int64_t n = w.shape[0], k = w.shape[1], nb = (k + 31) / 32;
  std::string error;
  const MxTensor xq =
      quantize_ref(x, std::vector<int64_t>{m, k}, blocks_of_32(ElementFormat::kInt8), &error);
  const int q = f.is_integer ? f.emin : f.emin - f.man_bits;
  std::vector<uint8_t> codes(n * nb * 32);
  unpack_codes(w.elements, f.bits, 0, codes);
  std::vector<float> y(m * n);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t r = 0; r < n; ++r) {
      float lane[16] = {};
      for (int64_t p = 0; 2 * p < nb; ++p) {
        for (int l = 0; l < 16; ++l) {
          const int64_t b = 2 * p + l / 8;
          if (b >= nb) continue;  // the missing block of a last lone one adds zero
          int32_t dot = 0;
          for (int e = 0; e < 4; ++e) {
            const int64_t slot = 32 * b + 4 * (l % 8) + e;
            const double wv = std::ldexp(decode_element(f, codes[r * nb * 32 + slot]), -q);
            dot += int32_t(wv) * int8_t(xq.elements[i * nb * 32 + slot]);
          }
          const float unit = std::ldexp(1.0f, q - 6);
          const float scale =
              e8m0_to_float(w.scales[r * nb + b]) * (e8m0_to_float(xq.scales[i * nb + b]) * unit);
          lane[l] = lane[l] + float(dot) * scale;
        }
      }
      for (int width = 8; width >= 1; width /= 2) {
        for (int j = 0; j < width; ++j) lane[j] = lane[j] + lane[j + width];
      }
      y[i * n + r] = lane[0];
    }
  }
  return y;
}

bool has_int8_values(const FormatTraits& f) {
  const int q = f.is_integer ? f.emin : f.emin - f.man_bits;
  return !f.has_inf && !f.has_nan && std::ldexp(f.max_normal, -q) <= 127;
}

// The reference's x after MXINT8 quantization, decoded.
std::vector<float> mxint8_round_trip(const std::vector<float>& x, int64_t m, int64_t k) {
  std::string error;
  return dequantize_ref(
      quantize_ref(x, std::vector<int64_t>{m, k}, blocks_of_32(ElementFormat::kInt8), &error));
}

void expect_same_bits(const std::vector<float>& got, const std::vector<float>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(std::bit_cast<uint32_t>(got[i]), std::bit_cast<uint32_t>(want[i]))
        << "element " << i << ": " << got[i] << " vs " << want[i];
  }
}

TEST(CpuMatmul, ExactModeIsBitExactWhenEveryPartialSumIsExact) {
  for (const FormatTraits& f : all_formats()) {
    for (const Shape& s : kShapes) {
      SCOPED_TRACE(std::string(f.name) + " " + std::to_string(s.m) + "x" + std::to_string(s.n) +
                   "x" + std::to_string(s.k));
      const MxTensor w = weights_with_few_bits(f.format, s.n, s.k, 11);
      const std::vector<float> x = small_integers(s.m * s.k, 12);
      // Every partial sum is an exact float32, so the double sum rounded once is the answer.
      const std::vector<float> wd = dequantize_ref(w);
      std::vector<float> want(s.m * s.n);
      for (int64_t i = 0; i < s.m; ++i) {
        for (int64_t r = 0; r < s.n; ++r) {
          double sum = 0;
          for (int64_t j = 0; j < s.k; ++j) sum += double(wd[r * s.k + j]) * x[i * s.k + j];
          want[i * s.n + r] = float(sum);
        }
      }
      for (DType dtype : {DType::kF32, DType::kBF16}) {
        const std::vector<float> got = matmul_everywhere(w, x, s.m, MatmulMode::kExact, dtype);
        for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], want[i]) << i;
      }
    }
  }
}

TEST(CpuMatmul, ExactModeSumsInItsDocumentedOrderBitForBit) {
  for (const FormatTraits& f : all_formats()) {
    for (const Shape& s : kShapes) {
      SCOPED_TRACE(std::string(f.name) + " k=" + std::to_string(s.k));
      const MxTensor w = weights_from_values(f.format, s.n, s.k, 21);
      std::vector<float> x = normal_values(s.m * s.k, 22);
      expect_same_bits(matmul_everywhere(w, x, s.m, MatmulMode::kExact),
                       exact_mode_oracle(w, x, s.m));
      // bfloat16 x: the same products of its exact float32 values.
      for (float& v : x) v = round_to_bf16(v);
      expect_same_bits(matmul_everywhere(w, x, s.m, MatmulMode::kExact, DType::kBF16),
                       exact_mode_oracle(w, x, s.m));
    }
  }
}

TEST(CpuMatmul, ExactModeIsTheDequantizedDotProductUpToSummationOrder) {
  // Each output sums K products in 16 lanes of ceil(K / 16) terms and a tree of 4 additions, so
  // each product passes through at most ceil(K / 16) + 5 roundings (its own and the additions):
  // |y - sum w_i x_i| <= gamma(ceil(K / 16) + 5) * sum |w_i x_i|, gamma(j) = j u / (1 - j u),
  // u = 2^-24 (Higham, Accuracy and Stability of Numerical Algorithms, 2002, section 3.1).
  const int64_t m = 3, n = 8, k = 4096 + 17;
  for (const FormatTraits& f : all_formats()) {
    const MxTensor w = weights_from_values(f.format, n, k, 31);
    const std::vector<float> x = normal_values(m * k, 32);
    const std::vector<float> y = matmul_everywhere(w, x, m, MatmulMode::kExact);
    const std::vector<float> wd = dequantize_ref(w);
    const double rounds = double((k + 15) / 16 + 5), u = std::ldexp(1.0, -24);
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t r = 0; r < n; ++r) {
        double sum = 0, magnitude = 0;
        for (int64_t j = 0; j < k; ++j) {
          sum += double(wd[r * k + j]) * x[i * k + j];
          magnitude += std::fabs(double(wd[r * k + j]) * x[i * k + j]);
        }
        EXPECT_LE(std::fabs(y[i * n + r] - sum), rounds * u / (1 - rounds * u) * magnitude)
            << f.name;
      }
    }
  }
}

TEST(CpuMatmul, FastModeIsTheDotProductWithMxint8QuantizedX) {
  // With partial sums exact, fast mode equals core's reference GEMM of W and MXINT8(x), which
  // sums every block pair exactly: exactly the OCP dot product of the two MX operands.
  for (const FormatTraits& f : all_formats()) {
    for (const Shape& s : kShapes) {
      SCOPED_TRACE(std::string(f.name) + " k=" + std::to_string(s.k));
      const MxTensor w = weights_with_few_bits(f.format, s.n, s.k, 41);
      const std::vector<float> x = small_integers(s.m * s.k, 42);
      std::string error;
      const MxTensor xq = quantize_ref(x, std::vector<int64_t>{s.m, s.k},
                                       blocks_of_32(ElementFormat::kInt8), &error);
      std::vector<float> want;
      ASSERT_EQ(gemm_ref(xq, w, &want), "");
      for (DType dtype : {DType::kF32, DType::kBF16}) {
        const std::vector<float> got = matmul_everywhere(w, x, s.m, MatmulMode::kFast, dtype);
        for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], want[i]) << i;
      }
    }
  }
}

TEST(CpuMatmul, FastModeSumsInItsDocumentedOrderBitForBit) {
  for (const FormatTraits& f : all_formats()) {
    for (const Shape& s : kShapes) {
      SCOPED_TRACE(std::string(f.name) + " k=" + std::to_string(s.k));
      const MxTensor w = weights_from_values(f.format, s.n, s.k, 51);
      const std::vector<float> x = normal_values(s.m * s.k, 52, 3.0f);
      const std::vector<float> want =
          has_int8_values(f) ? fast_mode_oracle(w, x, s.m)
                             : exact_mode_oracle(w, mxint8_round_trip(x, s.m, s.k), s.m);
      expect_same_bits(matmul_everywhere(w, x, s.m, MatmulMode::kFast), want);
    }
  }
}

TEST(CpuMatmul, FastModeStaysWithinItsDocumentedBound) {
  // docs/NUMERICS.md: |y_fast - sum w_i x_i| <= 2^-6 sum_b X_b sum_{i in b} |w_i|
  //                                             + gamma(ceil(K / 16) + 5) sum |w_i| |xq_i|,
  // X_b the MXINT8 scale of x's block b, xq the quantized x.
  const int64_t m = 4, n = 12, k = 2048 + 5, nb = (k + 31) / 32;
  for (const FormatTraits& f : all_formats()) {
    const MxTensor w = weights_from_values(f.format, n, k, 61);
    std::vector<float> x = normal_values(m * k, 62);
    for (size_t i = 0; i < x.size(); i += 29) x[i] *= 50.0f;  // outliers set block scales
    const std::vector<float> y = matmul_everywhere(w, x, m, MatmulMode::kFast);
    const std::vector<float> wd = dequantize_ref(w);
    std::string error;
    const MxTensor xq =
        quantize_ref(x, std::vector<int64_t>{m, k}, blocks_of_32(ElementFormat::kInt8), &error);
    const std::vector<float> xd = dequantize_ref(xq);
    const double rounds = double((k + 15) / 16 + 5), u = std::ldexp(1.0, -24);
    double largest_share = 0;
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t r = 0; r < n; ++r) {
        double sum = 0, quantization = 0, magnitude = 0;
        for (int64_t j = 0; j < k; ++j) {
          const double wv = wd[r * k + j];
          sum += wv * x[i * k + j];
          quantization += std::ldexp(std::fabs(wv), -6) * e8m0_to_float(xq.scales[i * nb + j / 32]);
          magnitude += std::fabs(wv * xd[i * k + j]);
        }
        const double bound = quantization + rounds * u / (1 - rounds * u) * magnitude;
        const double error_seen = std::fabs(y[i * n + r] - sum);
        EXPECT_LE(error_seen, bound) << f.name;
        largest_share = std::max(largest_share, error_seen / bound);
      }
    }
    // Worst-case sums against random signs: the errors seen come within a factor of about
    // sqrt(K) of the bound, not orders of magnitude more (a bound off by a power of two would).
    EXPECT_GT(largest_share, 1e-3) << f.name;
  }
}

TEST(CpuMatmul, NanBlocksMakeTheirOutputsNan) {
  for (MatmulMode mode : {MatmulMode::kExact, MatmulMode::kFast}) {
    for (const FormatTraits& f : all_formats()) {
      const int64_t m = 3, n = 6, k = 70;
      MxTensor w = weights_from_values(f.format, n, k, 71);
      w.scales[2 * 3 + 1] = kE8m0Nan;  // row 2, block 1
      std::vector<float> x = normal_values(m * k, 72);
      x[1 * k + 40] = NAN;  // row 1 of x, block 1
      const std::vector<float> y = matmul_everywhere(w, x, m, mode);
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t r = 0; r < n; ++r) {
          EXPECT_EQ(std::isnan(y[i * n + r]), i == 1 || r == 2) << f.name << " " << i << "," << r;
        }
      }
    }
  }
}

TEST(CpuMatmul, AnEmptySumIsZero) {
  std::string error;
  const MxTensor w = quantize_ref(std::vector<float>{}, std::vector<int64_t>{3, 0},
                                  blocks_of_32(ElementFormat::kE2M1), &error);
  ASSERT_EQ(error, "");
  for (MatmulMode mode : {MatmulMode::kExact, MatmulMode::kFast}) {
    for (float v : matmul_everywhere(w, {}, 2, mode)) EXPECT_EQ(v, 0.0f);
  }
}

TEST(CpuMatmul, RejectsWhatItCannotMultiplyWithOneLineErrors) {
  const std::vector<float> x(64, 1.0f);
  std::vector<float> y(64);
  auto error_for = [&](const MxTensor& w, DType dtype = DType::kF32, int64_t m = 1) {
    const std::string e = cpu::mx_matmul(w, x.data(), dtype, m, y.data());
    EXPECT_EQ(e.find('\n'), std::string::npos);
    return e;
  };
  const MxTensor good = weights_from_values(ElementFormat::kE2M1, 2, 32, 81);
  EXPECT_EQ(error_for(good), "");
  EXPECT_NE(error_for(good, DType::kF16), "");
  EXPECT_NE(error_for(good, DType::kF32, -1), "");
  std::string error;
  QuantSpec block16 = blocks_of_32(ElementFormat::kE2M1);
  block16.block_size = 16;
  EXPECT_NE(error_for(quantize_ref(x, std::vector<int64_t>{2, 32}, block16, &error)), "");
  QuantSpec column = blocks_of_32(ElementFormat::kE2M1);
  column.axis = 0;
  EXPECT_NE(error_for(quantize_ref(x, std::vector<int64_t>{32, 2}, column, &error)), "");
  QuantSpec asymmetric = blocks_of_32(ElementFormat::kE2M1);
  asymmetric.asymmetric = true;
  EXPECT_NE(error_for(quantize_ref(x, std::vector<int64_t>{2, 32}, asymmetric, &error)), "");
  EXPECT_NE(error_for(quantize_ref(x, std::vector<int64_t>{2, 2, 16},
                                   blocks_of_32(ElementFormat::kE2M1), &error)),
            "");
  MxTensor short_storage = good;
  short_storage.elements.pop_back();
  EXPECT_NE(error_for(short_storage), "");
  EXPECT_NE(cpu::mx_matmul(good, nullptr, DType::kF32, 1, y.data()), "");
}

}  // namespace
}  // namespace mx
