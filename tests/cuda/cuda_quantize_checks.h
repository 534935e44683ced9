// What the CUDA quantization tests share: device buffers, dtype conversion, byte comparison,
// and the checks of every kernel against the CPU fast path.
#pragma once

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <bit>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include <unistd.h>

#include "mx/core/block_grid.h"
#include "mx/core/format.h"
#include "mx/core/half.h"
#include "mx/core/mx_tensor.h"
#include "mx/core/rounding.h"
#include "mx/kernels/cpu/parallel.h"
#include "mx/kernels/cpu/quantize.h"
#include "mx/kernels/cuda/quantize_cuda.h"
#include "tests/cuda/skip_without_gpu.h"
#include "tests/test_data.h"

namespace mx {

#define CUDA_OK(expr) ASSERT_EQ(cudaSuccess, (expr)) << #expr

// A device buffer that frees itself.
struct DevBuf {
  void* p = nullptr;
  size_t n = 0;
  explicit DevBuf(size_t bytes) : n(bytes) {
    if (bytes && cudaMalloc(&p, bytes) != cudaSuccess) p = nullptr;
    if (p) cudaMemset(p, 0xA5, bytes);
  }
  ~DevBuf() {
    if (p) cudaFree(p);
  }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  template <class T>
  T* as() {
    return static_cast<T*>(p);
  }
};

template <class T>
inline std::vector<T> download(const void* d, size_t count) {
  std::vector<T> h(count);
  if (count) cudaMemcpy(h.data(), d, count * sizeof(T), cudaMemcpyDeviceToHost);
  return h;
}

// Input bytes of `dtype` from float32 values (bfloat16/float16 round to nearest even).
inline std::vector<uint8_t> to_dtype(const std::vector<float>& v, DType dtype) {
  std::vector<uint8_t> out(v.size() * dtype_size(dtype));
  for (size_t i = 0; i < v.size(); ++i) {
    if (dtype == DType::kF32) {
      std::memcpy(&out[4 * i], &v[i], 4);
    } else {
      const uint16_t h = dtype == DType::kBF16 ? float_to_bf16(v[i]) : float_to_fp16(v[i]);
      std::memcpy(&out[2 * i], &h, 2);
    }
  }
  return out;
}

// Empty when equal, else the count of differing entries and the first few (index: want, got).
template <class T>
inline std::string first_diffs(const std::vector<T>& want, const std::vector<T>& got) {
  if (want.size() != got.size())
    return "size " + std::to_string(want.size()) + " vs " + std::to_string(got.size());
  std::string out;
  size_t count = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (want[i] == got[i]) continue;
    if (++count <= 4) {
      out += " [" + std::to_string(i) + "]: " + std::to_string(uint64_t(want[i])) + " vs " +
             std::to_string(uint64_t(got[i]));
    }
  }
  return count == 0 ? "" : std::to_string(count) + " differ:" + out;
}

inline std::string name_of(const QuantSpec& spec, DType dtype, std::span<const int64_t> shape) {
  std::string s = describe(spec) + " dtype=" + std::string(dtype_name(dtype)) + " shape=";
  for (int64_t d : shape) s += std::to_string(d) + ",";
  return s;
}

// Quantizes, dequantizes and fake-quantizes on both sides and compares every byte.
inline void check_all(const std::vector<uint8_t>& input, DType dtype, std::vector<int64_t> shape,
                      const QuantSpec& spec, bool also_decode = true) {
  SCOPED_TRACE(name_of(spec, dtype, shape));
  if (std::getenv("MX_CUDA_TEST_VERBOSE") != nullptr) {
    std::fprintf(stderr, "%s\n", name_of(spec, dtype, shape).c_str());
  }
  const int64_t n = element_count(shape);
  MxTensor ref;
  ASSERT_EQ("", cpu::quantize(input.data(), dtype, shape, spec, &ref));
  DevBuf d_in(input.size()), d_el(ref.elements.size()), d_sc(ref.scales.size()),
      d_off(ref.offsets.size() * 2);
  CUDA_OK(cudaMemcpy(d_in.p, input.data(), input.size(), cudaMemcpyHostToDevice));
  // Every byte must be written, the last partial one zero-filled as on the CPU.
  if (!ref.elements.empty()) {
    CUDA_OK(cudaMemset(d_el.p, 0x5A, ref.elements.size()));
  }
  ASSERT_EQ("", cuda::quantize_cuda(d_in.p, dtype, shape, spec, d_el.as<uint8_t>(),
                                    d_sc.as<uint8_t>(), d_off.as<uint16_t>(), nullptr));
  CUDA_OK(cudaDeviceSynchronize());
  ASSERT_EQ("", first_diffs(ref.scales, download<uint8_t>(d_sc.p, ref.scales.size()))) << "scales";
  ASSERT_EQ("", first_diffs(ref.elements, download<uint8_t>(d_el.p, ref.elements.size())))
      << "elements";
  if (spec.asymmetric) {
    ASSERT_EQ("", first_diffs(ref.offsets, download<uint16_t>(d_off.p, ref.offsets.size())))
        << "offsets";
  }
  if (!also_decode) return;
  for (DType out : {DType::kF32, DType::kBF16}) {
    const size_t bytes = size_t(n) * dtype_size(out);
    std::vector<uint8_t> want(bytes);
    ASSERT_EQ("", cpu::dequantize(ref, out, want.data()));
    DevBuf d_out(bytes);
    ASSERT_EQ("", cuda::dequantize_cuda(d_el.as<uint8_t>(), d_sc.as<uint8_t>(),
                                        d_off.as<uint16_t>(), shape, spec, out, d_out.p, nullptr));
    CUDA_OK(cudaDeviceSynchronize());
    ASSERT_EQ("", first_diffs(want, download<uint8_t>(d_out.p, bytes)))
        << "dequantize to " << dtype_name(out);
    ASSERT_EQ("", cpu::fake_quantize(input.data(), dtype, shape, spec, out, want.data()));
    CUDA_OK(cudaMemset(d_out.p, 0x5A, bytes));
    ASSERT_EQ("", cuda::fake_quantize_cuda(d_in.p, dtype, shape, spec, out, d_out.p, nullptr));
    CUDA_OK(cudaDeviceSynchronize());
    ASSERT_EQ("", first_diffs(want, download<uint8_t>(d_out.p, bytes)))
        << "fake-quantize to " << dtype_name(out);
  }
}

constexpr ScaleRule kRules[] = {ScaleRule::kFloor, ScaleRule::kCeil, ScaleRule::kEven,
                                ScaleRule::kRceil};

// Dual quantize on the GPU against two CPU quantizations of the same input: 1x32 blocks along
// the rows, and 32x1 blocks (axis 0) down the columns.
inline void check_dual(const std::vector<uint8_t>& input, DType dtype, std::vector<int64_t> shape,
                       const QuantSpec& spec) {
  SCOPED_TRACE(name_of(spec, dtype, shape));
  MxTensor rows, cols;
  ASSERT_EQ("", cpu::quantize(input.data(), dtype, shape, spec, &rows));
  QuantSpec col_spec = spec;
  col_spec.axis = 0;
  ASSERT_EQ("", cpu::quantize(input.data(), dtype, shape, col_spec, &cols));
  DevBuf d_in(input.size()), re(rows.elements.size()), rs(rows.scales.size()),
      ro(rows.offsets.size() * 2), ce(cols.elements.size()), cs(cols.scales.size()),
      co(cols.offsets.size() * 2);
  CUDA_OK(cudaMemcpy(d_in.p, input.data(), input.size(), cudaMemcpyHostToDevice));
  ASSERT_EQ("", cuda::quantize_dual_cuda(d_in.p, dtype, shape, spec,
                                         {re.as<uint8_t>(), rs.as<uint8_t>(), ro.as<uint16_t>()},
                                         {ce.as<uint8_t>(), cs.as<uint8_t>(), co.as<uint16_t>()},
                                         nullptr));
  CUDA_OK(cudaDeviceSynchronize());
  EXPECT_EQ("", first_diffs(rows.scales, download<uint8_t>(rs.p, rows.scales.size())))
      << "row scales";
  EXPECT_EQ("", first_diffs(rows.elements, download<uint8_t>(re.p, rows.elements.size())))
      << "row codes";
  EXPECT_EQ("", first_diffs(cols.scales, download<uint8_t>(cs.p, cols.scales.size())))
      << "column scales";
  EXPECT_EQ("", first_diffs(cols.elements, download<uint8_t>(ce.p, cols.elements.size())))
      << "column codes";
  if (spec.asymmetric) {
    EXPECT_EQ("", first_diffs(rows.offsets, download<uint16_t>(ro.p, rows.offsets.size())))
        << "row offsets";
    EXPECT_EQ("", first_diffs(cols.offsets, download<uint16_t>(co.p, cols.offsets.size())))
        << "column offsets";
  }
}
constexpr Rounding kModes[] = {Rounding::kNearestEven, Rounding::kNearestAway,
                               Rounding::kTowardZero, Rounding::kStochastic};

// Calls check(input, dtype, spec) for every input dtype x format x scale rule x rounding, with
// `seed`; stops at the first fatal failure.
template <class Check>
inline void for_every_dtype_format_rule_rounding(const std::vector<float>& values, uint64_t seed,
                                                 Check check) {
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    const auto input = to_dtype(values, dtype);
    for (const FormatTraits& f : all_formats()) {
      for (ScaleRule rule : kRules) {
        for (Rounding mode : kModes) {
          QuantSpec spec;
          spec.format = f.format;
          spec.scale_rule = rule;
          spec.rounding = mode;
          spec.seed = seed;
          check(input, dtype, spec);
          if (::testing::Test::HasFatalFailure()) return;
        }
      }
    }
  }
}

// `values` [rows, width] in rows of `padded` columns, the columns past `width` zero: a matrix
// stored as the classifier's gradient is, in rows padded to a multiple of 8.
inline std::vector<float> zero_padded(const std::vector<float>& values, int64_t rows, int64_t width,
                                      int64_t padded) {
  std::vector<float> out(size_t(rows * padded), 0.0f);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < width; ++c) out[size_t(r * padded + c)] = values[size_t(r * width + c)];
  }
  return out;
}

}  // namespace mx
