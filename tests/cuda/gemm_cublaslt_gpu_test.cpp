// The cuBLASLt MX product's GPU parts: the scale swizzle kernel against mx::swizzle_scales
// byte for byte, the bias kernel against float32 arithmetic on the host, and the product
// against the reference GEMM on Blackwell (elsewhere, its refusal). Every test skips without a
// GPU.
#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "mx/core/dot_ref.h"
#include "mx/core/half.h"
#include "mx/core/layout_swizzle.h"
#include "mx/core/quantize_ref.h"
#include "mx/kernels/cuda/bias_rows_cuda.h"
#include "mx/kernels/cuda/cublaslt_loader.h"
#include "mx/kernels/cuda/gemm_cublaslt_mx.h"
#include "mx/kernels/cuda/mx_gemm_route.h"
#include "mx/kernels/cuda/swizzle_scales_cuda.h"
#include "tests/test_data.h"

namespace mx::cuda {
namespace {

using mx::testing::stress_values;

std::string gpu_reason() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return cudaGetErrorString(e);
  }
  return n == 0 ? "no CUDA device found" : "";
}

#define SKIP_WITHOUT_GPU()                                                               \
  do {                                                                                   \
    if (std::string why = gpu_reason(); !why.empty()) GTEST_SKIP() << "no GPU: " << why; \
  } while (0)

#define CUDA_OK(expr) ASSERT_EQ(cudaSuccess, (expr)) << #expr

int compute_major() {
  int device = 0, major = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
  return major;
}

// A device buffer that frees itself, filled with `fill` so that unwritten bytes show.
struct DevBuf {
  void* p = nullptr;
  explicit DevBuf(size_t bytes, int fill = 0xAB) {
    if (bytes != 0 && cudaMalloc(&p, bytes) == cudaSuccess) cudaMemset(p, fill, bytes);
  }
  ~DevBuf() {
    if (p != nullptr) cudaFree(p);
  }
  DevBuf(DevBuf&& o) noexcept : p(o.p) { o.p = nullptr; }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  DevBuf& operator=(DevBuf&&) = delete;
  template <class T>
  T* as() const {
    return static_cast<T*>(p);
  }
};

template <class T>
DevBuf upload(const std::vector<T>& h) {
  DevBuf d(h.size() * sizeof(T));
  if (!h.empty()) cudaMemcpy(d.p, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice);
  return d;
}

template <class T>
std::vector<T> download(const void* d, size_t count) {
  std::vector<T> h(count);
  if (count != 0) cudaMemcpy(h.data(), d, count * sizeof(T), cudaMemcpyDeviceToHost);
  return h;
}

// Count of differing bytes and the first few.
std::string byte_diffs(const std::vector<uint8_t>& want, const std::vector<uint8_t>& got) {
  if (want.size() != got.size()) return "sizes differ";
  std::string out;
  size_t count = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (want[i] != got[i] && ++count <= 4) {
      out += " [" + std::to_string(i) + "] " + std::to_string(want[i]) + " vs " +
             std::to_string(got[i]);
    }
  }
  return count == 0 ? "" : std::to_string(count) + " differ:" + out;
}

TEST(SwizzleScalesCuda, EqualsTheCpuLayoutByteForByteWithZeroPadding) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(7);
  const std::vector<std::pair<int64_t, int64_t>> shapes = {
      {0, 0},   {0, 5},   {5, 0},   {1, 1},    {3, 5},    {31, 2},   {32, 4},    {127, 3},
      {128, 4}, {129, 5}, {200, 8}, {257, 33}, {1000, 7}, {4096, 1}, {130, 129}, {1, 1025}};
  for (auto [rows, cols] : shapes) {
    SCOPED_TRACE(std::to_string(rows) + " x " + std::to_string(cols));
    std::vector<uint8_t> scales(rows * cols);
    for (uint8_t& s : scales) s = uint8_t(rng() % 255 + 1);  // never 0: padding must show
    std::string error;
    const std::vector<uint8_t> want = swizzle_scales(scales, rows, cols, &error);
    ASSERT_EQ("", error);
    const DevBuf d_scales = upload(scales);
    DevBuf d_out(want.size());  // pre-filled with 0xAB: every byte must be written
    ASSERT_EQ(
        "", swizzle_scales_cuda(d_scales.as<uint8_t>(), rows, cols, d_out.as<uint8_t>(), nullptr));
    CUDA_OK(cudaDeviceSynchronize());
    EXPECT_EQ("", byte_diffs(want, download<uint8_t>(d_out.p, want.size())));
  }
}

TEST(SwizzleScalesCuda, RefusesBadArgumentsWithoutLaunching) {
  SKIP_WITHOUT_GPU();
  DevBuf d(1024);
  EXPECT_NE("", swizzle_scales_cuda(d.as<uint8_t>(), -1, 4, d.as<uint8_t>(), nullptr));
  EXPECT_NE("", swizzle_scales_cuda(d.as<uint8_t>(), 4, 4, d.as<uint8_t>() + 1, nullptr));
  EXPECT_NE("", swizzle_scales_cuda(nullptr, 4, 4, d.as<uint8_t>(), nullptr));
  EXPECT_NE("", swizzle_scales_cuda(d.as<uint8_t>(), 4, 4, nullptr, nullptr));
}

TEST(BiasRowsCuda, AddsInFloat32AndRoundsToBfloat16ToNearestEven) {
  SKIP_WITHOUT_GPU();
  const int64_t m = 37, n = 100;
  const std::vector<float> in = stress_values(m * n, 3);
  const std::vector<float> bias = stress_values(n, 4);
  const DevBuf d_in = upload(in), d_bias = upload(bias);
  DevBuf d_f32(m * n * 4), d_bf16(m * n * 2);
  ASSERT_EQ("", add_bias_rows_cuda(d_in.as<float>(), d_bias.as<float>(), m, n, DType::kF32, d_f32.p,
                                   nullptr));
  ASSERT_EQ("", add_bias_rows_cuda(d_in.as<float>(), d_bias.as<float>(), m, n, DType::kBF16,
                                   d_bf16.p, nullptr));
  CUDA_OK(cudaDeviceSynchronize());
  const std::vector<float> f32 = download<float>(d_f32.p, m * n);
  const std::vector<uint16_t> bf16 = download<uint16_t>(d_bf16.p, m * n);
  int64_t differ = 0;
  for (int64_t i = 0; i < m * n; ++i) {
    const float want = in[i] + bias[i % n];
    if (std::bit_cast<uint32_t>(want) != std::bit_cast<uint32_t>(f32[i]) && !std::isnan(want)) {
      ++differ;
    }
    if (float_to_bf16(want) != bf16[i] && !std::isnan(want)) ++differ;
  }
  EXPECT_EQ(differ, 0);
}

// MX operands from float values by the reference quantizer, in our storage.
struct MxOperands {
  MxTensor a, b;
  std::vector<float> bias;
};

MxOperands make_operands(int64_t m, int64_t n, int64_t k, ElementFormat fa, ElementFormat fb,
                         uint64_t seed) {
  MxOperands o;
  std::string error;
  QuantSpec sa, sb;
  sa.format = fa;
  sb.format = fb;
  const std::vector<int64_t> shape_a = {m, k}, shape_b = {n, k};
  o.a = quantize_ref(stress_values(m * k, seed), shape_a, sa, &error);
  o.b = quantize_ref(stress_values(n * k, seed + 1), shape_b, sb, &error);
  o.bias = stress_values(n, seed + 2);
  return o;
}

// Which entry point run_product calls.
enum class Entry { kBlockScaled, kDequantized, kAuto };

// The product through `entry` (block-scaled: device >= 10.0; dequantized: any device that runs
// our kernels; auto: the device's route), D written `d_offset` bytes into a fresh allocation and
// downloaded as float32.
std::string run_product(const MxOperands& o, DType out, bool with_bias, std::vector<float>* d,
                        Entry entry = Entry::kBlockScaled, int64_t d_offset = 0) {
  const int64_t m = o.a.shape[0], n = o.b.shape[0], k = o.a.shape[1];
  const DevBuf a_codes = upload(o.a.elements), a_scales = upload(o.a.scales);
  const DevBuf b_codes = upload(o.b.elements), b_scales = upload(o.b.scales);
  const DevBuf d_bias = upload(o.bias);
  DevBuf d_buffer(d_offset + m * n * dtype_size(out));
  uint8_t* const d_out = d_buffer.as<uint8_t>() + d_offset;
  MxGemmArgs g;
  g.m = m;
  g.n = n;
  g.k = k;
  g.a = {a_codes.as<uint8_t>(), a_scales.as<uint8_t>(), o.a.spec.format};
  g.b = {b_codes.as<uint8_t>(), b_scales.as<uint8_t>(), o.b.spec.format};
  g.bias = with_bias ? d_bias.as<float>() : nullptr;
  g.out_dtype = out;
  g.d = d_out;
  const size_t ws_bytes = entry == Entry::kDequantized ? mx_gemm_dequantized_workspace_bytes(g)
                          : entry == Entry::kAuto      ? mx_gemm_auto_workspace_bytes(g)
                                                       : mx_gemm_cublaslt_workspace_bytes(g);
  DevBuf ws(ws_bytes);
  std::string why;
  const CublasLt* api = cublaslt(&why);
  if (api == nullptr) return why;
  cublasLtHandle_t lt = nullptr;
  if (api->create(&lt) != CUBLAS_STATUS_SUCCESS) return "cannot create a cuBLASLt handle";
  why = entry == Entry::kDequantized ? mx_gemm_dequantized(g, ws.p, ws_bytes, lt, nullptr)
        : entry == Entry::kAuto      ? mx_gemm_auto(g, ws.p, ws_bytes, lt, nullptr)
                                     : mx_gemm_cublaslt(g, ws.p, ws_bytes, lt, nullptr);
  if (cudaDeviceSynchronize() != cudaSuccess && why.empty()) why = "the product faulted";
  api->destroy(lt);
  if (!why.empty()) return why;
  d->resize(m * n);
  if (out == DType::kF32) {
    *d = download<float>(d_out, m * n);
  } else {
    const std::vector<uint16_t> h = download<uint16_t>(d_out, m * n);
    for (int64_t i = 0; i < m * n; ++i) (*d)[i] = bf16_to_float(h[i]);
  }
  return "";
}

TEST(MxGemmCublasLt, RefusesBeforeBlackwellWithoutTouchingD) {
  SKIP_WITHOUT_GPU();
  if (compute_major() >= 10) GTEST_SKIP() << "this GPU runs the product (see the next test)";
  const MxOperands o = make_operands(64, 64, 64, ElementFormat::kE4M3, ElementFormat::kE4M3, 1);
  const DevBuf a_codes = upload(o.a.elements), a_scales = upload(o.a.scales);
  const DevBuf b_codes = upload(o.b.elements), b_scales = upload(o.b.scales);
  DevBuf d_out(64 * 64 * 4, 0x5A);
  MxGemmArgs g;
  g.m = g.n = g.k = 64;
  g.a = {a_codes.as<uint8_t>(), a_scales.as<uint8_t>(), ElementFormat::kE4M3};
  g.b = {b_codes.as<uint8_t>(), b_scales.as<uint8_t>(), ElementFormat::kE4M3};
  g.d = d_out.p;
  const size_t ws_bytes = mx_gemm_cublaslt_workspace_bytes(g);
  ASSERT_GT(ws_bytes, 0u);
  DevBuf ws(ws_bytes);
  std::string load_error;
  const CublasLt* api = cublaslt(&load_error);
  ASSERT_NE(api, nullptr) << load_error;
  cublasLtHandle_t lt = nullptr;
  ASSERT_EQ(CUBLAS_STATUS_SUCCESS, api->create(&lt));
  const std::string why = mx_gemm_cublaslt(g, ws.p, ws_bytes, lt, nullptr);
  api->destroy(lt);
  EXPECT_NE(why.find("10.0"), std::string::npos) << why;
  CUDA_OK(cudaDeviceSynchronize());
  const std::vector<uint8_t> d = download<uint8_t>(d_out.p, 64 * 64 * 4);
  EXPECT_EQ(d, std::vector<uint8_t>(d.size(), 0x5A));
}

// Counts the outputs of `o`'s product (`got`, from run_product) farther from the reference GEMM
// than float32 summation in any order allows: about K units of 2^-24 of sum |a_k b_k|, plus 2^-8
// of the value for a bfloat16 result, or an infinity where sum |a_k b_k| passes float32's range;
// the first one goes to `first`.
int64_t count_beyond_float32_sums(const MxOperands& o, DType out, bool bias,
                                  const std::vector<float>& got, std::string* first) {
  const int64_t m = o.a.shape[0], n = o.b.shape[0], k = o.a.shape[1];
  std::vector<float> ref;
  if (gemm_ref(o.a, o.b, &ref) != "") return m * n;
  const std::vector<float> da = dequantize_ref(o.a), db = dequantize_ref(o.b);
  int64_t bad = 0;
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double mag = 0;
      for (int64_t l = 0; l < k; ++l) mag += std::fabs(double(da[i * k + l]) * db[j * k + l]);
      const double want = double(ref[i * n + j]) + (bias ? o.bias[j] : 0.0);
      const double g = got[i * n + j];
      if (std::isnan(want) || std::isinf(want)) {
        if (!(std::isnan(g) || std::isinf(g))) ++bad;
        continue;
      }
      const double magnitude = mag + (bias ? std::fabs(o.bias[j]) : 0.0);
      // Where the terms' magnitudes add up past float32's range, a partial sum in some order
      // overflows although the exact sum does not.
      if (std::isinf(g) && magnitude > double(std::numeric_limits<float>::max())) continue;
      const double sum_bound = double(k + 4) * 0x1p-23 * magnitude;
      const double tol = sum_bound + (out == DType::kBF16 ? std::fabs(want) * 0x1p-8 : 0.0) + 1e-30;
      if (!(std::fabs(g - want) <= tol) && ++bad == 1) {
        std::ostringstream where;
        where << "(" << i << ", " << j << "): want " << want << " got " << g;
        *first = where.str();
      }
    }
  }
  return bad;
}

struct Shape {
  int64_t m, n, k;
};

// "e4m3 x e2m1 130x136x100 float32", the case a loop of these tests is at.
std::string case_name(ElementFormat a, ElementFormat b, const Shape& s, DType out) {
  return std::string(traits(a).name) + " x " + std::string(traits(b).name) + " " +
         std::to_string(s.m) + "x" + std::to_string(s.n) + "x" + std::to_string(s.k) + " " +
         std::string(dtype_name(out));
}

// Every format pair, both outputs, with and without bias, on shapes with partial scale tiles
// (M, N not multiples of 128; K / 32 not a multiple of 4). cuBLASLt's sum order is its own, so
// the tolerance is the float32 summation bound relative to sum |a_k b_k|.
TEST(MxGemmCublasLt, MatchesTheReferenceGemmOnBlackwell) {
  SKIP_WITHOUT_GPU();
  if (compute_major() < 10) {
    GTEST_SKIP() << "cuBLASLt MX products need compute capability 10.0+, this GPU is "
                 << compute_major() << ".x";
  }
  using F = ElementFormat;
  struct Pair {
    F a, b;
  };
  for (Pair p : {Pair{F::kE4M3, F::kE4M3}, Pair{F::kE4M3, F::kE5M2}, Pair{F::kE5M2, F::kE4M3},
                 Pair{F::kE2M1, F::kE2M1}}) {
    for (Shape s :
         {Shape{128, 256, 512}, Shape{1, 16, 32}, Shape{130, 136, 96}, Shape{257, 64, 1056}}) {
      const MxOperands o = make_operands(s.m, s.n, s.k, p.a, p.b, uint64_t(s.m * 7 + s.k));
      for (DType out : {DType::kF32, DType::kBF16}) {
        for (bool bias : {false, true}) {
          SCOPED_TRACE(case_name(p.a, p.b, s, out) + (bias ? " bias" : ""));
          std::vector<float> got;
          ASSERT_EQ("", run_product(o, out, bias, &got));
          std::string first;
          EXPECT_EQ(count_beyond_float32_sums(o, out, bias, got, &first), 0) << first;
        }
      }
    }
  }
}

// The two-pass route on the GPUs our kernels target: every kind of format on both sides, K
// ending inside a block, both outputs, with and without bias, within float32 summation of the
// reference GEMM (NaN and Inf where it has them).
TEST(MxGemmDequantized, MatchesTheReferenceGemmForAnyPairAndK) {
  SKIP_WITHOUT_GPU();
  if (compute_major() < 9) GTEST_SKIP() << "mxkit's kernels target compute capability 9.0";
  using F = ElementFormat;
  for (auto [fa, fb] : {std::pair{F::kE4M3, F::kE5M2}, std::pair{F::kE3M2, F::kE2M3},
                        std::pair{F::kE2M1, F::kInt8}, std::pair{F::kInt8, F::kE2M1}}) {
    for (Shape s :
         {Shape{128, 256, 512}, Shape{1, 16, 32}, Shape{130, 136, 100}, Shape{257, 64, 1056}}) {
      const MxOperands o = make_operands(s.m, s.n, s.k, fa, fb, uint64_t(s.m * 5 + s.k));
      for (DType out : {DType::kF32, DType::kBF16}) {
        for (bool bias : {false, true}) {
          SCOPED_TRACE(case_name(fa, fb, s, out) + (bias ? " bias" : ""));
          std::vector<float> got;
          ASSERT_EQ("", run_product(o, out, bias, &got, Entry::kDequantized));
          std::string first;
          EXPECT_EQ(count_beyond_float32_sums(o, out, bias, got, &first), 0) << first;
        }
      }
    }
  }
}

// cuBLASLt assumes 256-byte aligned matrices unless told otherwise; an output that is 16-byte
// aligned only (all the plan asks) gets an algorithm for that alignment, and the same product
// asked again (its algorithm then remembered) gives the same bits.
TEST(MxGemmDequantized, WritesAnOutputAlignedTo16BytesOnlyAndRepeatsItsBits) {
  SKIP_WITHOUT_GPU();
  if (compute_major() < 9) GTEST_SKIP() << "mxkit's kernels target compute capability 9.0";
  const MxOperands o = make_operands(192, 256, 320, ElementFormat::kE4M3, ElementFormat::kE2M1, 11);
  for (DType out : {DType::kF32, DType::kBF16}) {
    for (int64_t offset : {int64_t{16}, int64_t{48}, int64_t{0}}) {
      SCOPED_TRACE(std::string(dtype_name(out)) + " at offset " + std::to_string(offset));
      std::vector<float> first, again;
      ASSERT_EQ("", run_product(o, out, true, &first, Entry::kDequantized, offset));
      ASSERT_EQ("", run_product(o, out, true, &again, Entry::kDequantized, offset));
      std::string where;
      EXPECT_EQ(count_beyond_float32_sums(o, out, true, first, &where), 0) << where;
      EXPECT_EQ(0, std::memcmp(first.data(), again.data(), first.size() * sizeof(float)));
    }
  }
}

// The run-time choice on this GPU: its route's product within float32 summation of the
// reference GEMM. On Hopper the cases take both routes: the two-pass one where D's rows are a
// multiple of 16 bytes, the fused kernel where they are not (36 bfloat16 values, 72 bytes).
TEST(MxGemmAuto, TakesThisDevicesRouteAndMatchesTheReferenceGemm) {
  SKIP_WITHOUT_GPU();
  if (compute_major() < 9) GTEST_SKIP() << "mxkit's kernels target compute capability 9.0";
  using F = ElementFormat;
  bool took_dequantized = false, took_fused = false;
  for (Shape s : {Shape{130, 136, 100}, Shape{64, 36, 96}}) {
    for (auto [fa, fb] : {std::pair{F::kE4M3, F::kE4M3}, std::pair{F::kE3M2, F::kE2M1}}) {
      const MxOperands o = make_operands(s.m, s.n, s.k, fa, fb, uint64_t(s.n * 3 + s.k));
      for (DType out : {DType::kF32, DType::kBF16}) {
        // The same arguments with stand-in buffers, to name the route (the choice looks at
        // shapes, formats and alignment only).
        alignas(256) static uint8_t stand_in[256];
        MxGemmArgs probe;
        probe.m = s.m, probe.n = s.n, probe.k = s.k, probe.out_dtype = out;
        probe.a = {stand_in, stand_in, fa};
        probe.b = {stand_in, stand_in, fb};
        probe.d = stand_in;
        std::string route_why;
        const MxGemmRoute route = mx_gemm_auto_route(probe, &route_why);
        SCOPED_TRACE(case_name(fa, fb, s, out) + ", route " + mx_gemm_route_name(route));
        if (compute_major() == 9) {
          const bool rows_of_16_bytes = s.n * int64_t(dtype_size(out)) % 16 == 0;
          EXPECT_EQ(route, rows_of_16_bytes ? MxGemmRoute::kDequantized : MxGemmRoute::kFused);
        }
        took_dequantized = took_dequantized || route == MxGemmRoute::kDequantized;
        took_fused = took_fused || route == MxGemmRoute::kFused;
        std::vector<float> got;
        ASSERT_EQ("", run_product(o, out, false, &got, Entry::kAuto));
        std::string first;
        EXPECT_EQ(count_beyond_float32_sums(o, out, false, got, &first), 0) << first;
      }
    }
  }
  if (compute_major() == 9) {
    EXPECT_TRUE(took_dequantized && took_fused);
  }
}

}  // namespace
}  // namespace mx::cuda
