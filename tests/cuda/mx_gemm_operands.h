// Test helpers for the MX matrix products: MX operands on the host (codes, scales and the
// packed storage the kernels read), a float64 product of their decoded values, and a run of a
// product entry point on the GPU.
#pragma once

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <random>
#include <string>
#include <vector>

#include "mx/core/bitpack.h"
#include "mx/core/format.h"
#include "mx/core/half.h"
#include "mx/core/quantize_ref.h"
#include "mx/kernels/cuda/mx_gemm.h"
#include "mx/kernels/cuda/quantize_cuda.h"

namespace mx::gemm_test {

#define SKIP_WITHOUT_HOPPER()                                                          \
  do {                                                                                 \
    std::string why;                                                                   \
    if (!cuda::cuda_device_available(&why)) GTEST_SKIP() << "no CUDA device: " << why; \
    int major = 0;                                                                     \
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0);              \
    if (major != 9) GTEST_SKIP() << "the MX GEMM kernels need a Hopper GPU";           \
  } while (0)

#define CUDA_OK(expr) ASSERT_EQ(cudaSuccess, (expr)) << #expr

// One operand on the host: codes [rows][k] (one byte each), scales [rows][blocks], and the
// packed MX storage the kernels read, whose padding slots hold junk codes.
struct HostMx {
  ElementFormat format;
  int64_t rows = 0;
  int64_t k = 0;
  std::vector<uint8_t> codes;
  std::vector<uint8_t> scales;
  std::vector<uint8_t> packed;

  int64_t blocks() const { return (k + 31) / 32; }
  double value(int64_t r, int64_t c) const {
    return decode_value(traits(format), codes[r * k + c], scales[r * blocks() + c / 32], false, 0);
  }
};

inline void pack(HostMx& x, std::mt19937& rng) {
  const int bits = traits(x.format).bits;
  x.packed.assign(cuda::mx_row_code_bytes(x.format, x.k) * x.rows, 0);
  std::vector<uint8_t> slots(32);
  for (int64_t r = 0; r < x.rows; ++r) {
    for (int64_t b = 0; b < x.blocks(); ++b) {
      for (int s = 0; s < 32; ++s) {
        const int64_t c = b * 32 + s;
        slots[s] = c < x.k ? x.codes[r * x.k + c] : uint8_t(rng() & ((1u << bits) - 1));
      }
      pack_codes(slots, bits, (r * x.blocks() + b) * 32, x.packed);
    }
  }
}

// Codes drawn by `pick_code`, scales by `pick_scale(row, block)`.
inline HostMx make_operand(ElementFormat format, int64_t rows, int64_t k, std::mt19937& rng,
                           const std::function<uint8_t()>& pick_code,
                           const std::function<uint8_t(int64_t, int64_t)>& pick_scale) {
  HostMx x{format, rows, k, {}, {}, {}};
  x.codes.resize(rows * k);
  for (auto& c : x.codes) c = pick_code();
  x.scales.resize(rows * x.blocks());
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t b = 0; b < x.blocks(); ++b) x.scales[r * x.blocks() + b] = pick_scale(r, b);
  }
  pack(x, rng);
  return x;
}

// Codes whose value at scale 2^0 is a multiple of 1/2 of magnitude at most 4: with scales near
// 2^0, every product and partial sum of a few hundred of them is exact in float32.
inline std::vector<uint8_t> small_codes(ElementFormat format) {
  const FormatTraits& t = traits(format);
  std::vector<uint8_t> out;
  for (uint32_t c = 0; c < (1u << t.bits); ++c) {
    const double v = decode_value(t, uint8_t(c), 127, false, 0);
    if (std::isfinite(v) && std::abs(v) <= 4 && v * 2 == std::floor(v * 2))
      out.push_back(uint8_t(c));
  }
  return out;
}

// Every code whose value is finite.
inline std::vector<uint8_t> finite_codes(ElementFormat format) {
  const FormatTraits& t = traits(format);
  std::vector<uint8_t> out;
  for (uint32_t c = 0; c < (1u << t.bits); ++c) {
    if (std::isfinite(decode_value(t, uint8_t(c), 127, false, 0))) out.push_back(uint8_t(c));
  }
  return out;
}

inline std::function<uint8_t()> draw_from(std::vector<uint8_t> codes, std::mt19937& rng) {
  return [codes = std::move(codes), &rng] { return codes[rng() % codes.size()]; };
}

inline std::function<uint8_t(int64_t, int64_t)> scales_between(int lo, int hi, std::mt19937& rng) {
  return
      [lo, hi, &rng](int64_t, int64_t) { return uint8_t(lo + int(rng() % uint32_t(hi - lo + 1))); };
}

template <class T>
struct DevArray {
  T* p = nullptr;
  explicit DevArray(const std::vector<T>& host) {
    void* raw = nullptr;
    if (cudaMalloc(&raw, std::max<size_t>(1, host.size()) * sizeof(T)) == cudaSuccess)
      p = static_cast<T*>(raw);
    if (p && !host.empty())
      cudaMemcpy(p, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice);
  }
  ~DevArray() {
    if (p) cudaFree(p);
  }
  DevArray(const DevArray&) = delete;
  DevArray& operator=(const DevArray&) = delete;
};

struct Product {
  std::vector<double> exact;      // float64 sum of the decoded products, plus bias
  std::vector<double> magnitude;  // sum of |products| (for error bounds)
};

inline Product reference(const HostMx& a, const HostMx& b, const std::vector<float>& bias) {
  Product p;
  p.exact.assign(a.rows * b.rows, 0.0);
  p.magnitude.assign(a.rows * b.rows, 0.0);
  std::vector<double> av(a.k), bv(b.k * b.rows);
  for (int64_t n = 0; n < b.rows; ++n) {
    for (int64_t c = 0; c < b.k; ++c) bv[n * b.k + c] = b.value(n, c);
  }
  for (int64_t m = 0; m < a.rows; ++m) {
    for (int64_t c = 0; c < a.k; ++c) av[c] = a.value(m, c);
    for (int64_t n = 0; n < b.rows; ++n) {
      double sum = bias.empty() ? 0.0 : bias[n];
      double mag = std::abs(sum);
      for (int64_t c = 0; c < a.k; ++c) {
        const double prod = av[c] * bv[n * b.k + c];
        sum += prod;
        mag += std::abs(prod);
      }
      p.exact[m * b.rows + n] = sum;
      p.magnitude[m * b.rows + n] = mag;
    }
  }
  return p;
}

// Runs the product on the GPU and returns D as float (bfloat16 outputs widened).
using GemmEntry = std::string (*)(const cuda::MxGemmArgs&, cudaStream_t);

inline std::vector<float> run(const HostMx& a, const HostMx& b, const std::vector<float>& bias,
                              DType out, std::string* error, GemmEntry entry = cuda::mx_gemm_cuda) {
  DevArray<uint8_t> ac(a.packed), as(a.scales), bc(b.packed), bs(b.scales);
  DevArray<float> db(bias);
  const size_t count = size_t(a.rows * b.rows);
  DevArray<uint8_t> d(std::vector<uint8_t>(count * dtype_size(out), 0xA5));
  cuda::MxGemmArgs args;
  args.m = a.rows;
  args.n = b.rows;
  args.k = a.k;
  args.a = {ac.p, as.p, a.format};
  args.b = {bc.p, bs.p, b.format};
  args.bias = bias.empty() ? nullptr : db.p;
  args.out_dtype = out;
  args.d = d.p;
  *error = entry(args, nullptr);
  std::vector<float> result(count);
  if (!error->empty()) return result;
  if (cudaDeviceSynchronize() != cudaSuccess) {
    *error = "kernel failed";
    return result;
  }
  if (out == DType::kF32) {
    cudaMemcpy(result.data(), d.p, count * 4, cudaMemcpyDeviceToHost);
  } else {
    std::vector<uint16_t> h(count);
    cudaMemcpy(h.data(), d.p, count * 2, cudaMemcpyDeviceToHost);
    for (size_t i = 0; i < count; ++i) result[i] = bf16_to_float(h[i]);
  }
  return result;
}

// The exact float32 (or bfloat16) value of an exactly representable float64 sum.
inline float expected_bits(double exact, DType out) {
  const float f = float(exact);
  return out == DType::kF32 ? f : round_to_bf16(f);
}

// Counts outputs whose bits differ from the exact product (NaN matching any NaN); prints the
// first few, labelled `what`.
inline int64_t count_mismatches(const std::vector<float>& got, const Product& want, DType out,
                                const std::string& what) {
  int64_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double e = want.exact[i];
    const bool ok = std::isnan(e) ? std::isnan(got[i])
                                  : std::bit_cast<uint32_t>(expected_bits(e, out)) ==
                                        std::bit_cast<uint32_t>(got[i]);
    if (!ok && bad++ < 4)
      ADD_FAILURE() << what << " at " << i << ": want " << e << " got " << got[i];
  }
  return bad;
}

inline int64_t count_bit_mismatches(const HostMx& a, const HostMx& b, const std::vector<float>& got,
                                    const Product& want, DType out) {
  return count_mismatches(
      got, want, out,
      std::string(traits(a.format).name) + " x " + std::string(traits(b.format).name));
}

// Outputs farther from the exact product than any order of k float32 additions allows:
// |error| <= k * 2^-23 * sum |terms|, with 2^-22 for a tensor core that truncates instead of
// rounding. Prints the first few, labelled `what`; *largest (if given) gets the largest
// |error| relative to the sum of magnitudes.
inline int64_t count_beyond_float32_sums(const std::vector<float>& got, const Product& want,
                                         int64_t k, const std::string& what,
                                         double* largest = nullptr) {
  int64_t bad = 0;
  double seen = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double error = std::abs(got[i] - want.exact[i]);
    if (want.magnitude[i] > 0) seen = std::max(seen, error / want.magnitude[i]);
    const double bound = double(k) * 0x1p-22 * want.magnitude[i];
    if (!(error <= bound) && bad++ < 4) {
      ADD_FAILURE() << what << " at " << i << ": want " << want.exact[i] << " got " << got[i]
                    << " bound " << bound;
    }
  }
  if (largest != nullptr) *largest = seen;
  return bad;
}

// The product of E4M3 operands of m and n rows at each K, on small codes whose sums are exact,
// must equal the exact product bit for bit.
inline void expect_exact_at_each_k(GemmEntry entry, std::initializer_list<int64_t> ks, int64_t m,
                                   int64_t n, std::mt19937& rng) {
  const ElementFormat f = ElementFormat::kE4M3;
  for (int64_t k : ks) {
    const HostMx a =
        make_operand(f, m, k, rng, draw_from(small_codes(f), rng), scales_between(126, 128, rng));
    const HostMx b =
        make_operand(f, n, k, rng, draw_from(small_codes(f), rng), scales_between(126, 128, rng));
    std::string error;
    const auto got = run(a, b, {}, DType::kF32, &error, entry);
    ASSERT_EQ(error, "");
    EXPECT_EQ(count_bit_mismatches(a, b, got, reference(a, b, {}), DType::kF32), 0) << "k = " << k;
  }
}

// Outputs that differ from a product with NaN and Inf in it: NaN where float64 has NaN, the same
// infinity where it has one, the exact float32 bits elsewhere. *specials counts the NaN and Inf
// outputs expected.
inline int64_t count_special_mismatches(const std::vector<float>& got, const Product& want,
                                        int64_t* specials) {
  int64_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double w = want.exact[i];
    bool ok;
    if (std::isnan(w)) {
      ok = std::isnan(got[i]);
      ++*specials;
    } else if (std::isinf(w)) {
      ok = got[i] == float(w);
      ++*specials;
    } else {
      ok = std::bit_cast<uint32_t>(float(w)) == std::bit_cast<uint32_t>(got[i]);
    }
    if (!ok && bad++ < 4) ADD_FAILURE() << "at " << i << ": want " << w << " got " << got[i];
  }
  return bad;
}

}  // namespace mx::gemm_test
