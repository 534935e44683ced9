// The CUDA backend's linear layers on packed MX operands (CudaBackendOptions::packed_products)
// against its products of bfloat16-cast operands: the same operand bits, so every result agrees
// up to the order of float32 additions and the one rounding of each output. Skips without a
// GPU of compute capability 9.0 or newer.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "mx/core/format.h"
#include "mx/core/half.h"
#include "mx/core/mx_tensor.h"
#include "mx/kernels/cuda/mx_gemm.h"
#include "mx/kernels/cuda/quantize_cuda.h"
#include "mx/kernels/cuda/transpose_blocks_cuda.h"
#include "mx/nn/cuda/cuda_backend.h"
#include "mx/nn/recipe.h"
#include "tests/cuda/skip_without_gpu.h"

namespace mx::nn {
namespace {

template <class T>
struct DeviceBuffer {
  T* p = nullptr;
  explicit DeviceBuffer(size_t n) { EXPECT_EQ(cudaMalloc(&p, n * sizeof(T) + 16), cudaSuccess); }
  ~DeviceBuffer() { cudaFree(p); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

std::vector<uint16_t> random_bf16(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<uint16_t> v(n);
  for (uint16_t& x : v) x = float_to_bf16(normal(rng));
  return v;
}

// Codes and scales of a [rows, cols] bfloat16 matrix quantized on the GPU.
struct HostMx {
  std::vector<uint8_t> elements, scales;
};

HostMx quantize_on_gpu(const std::vector<uint16_t>& x, int64_t rows, int64_t cols,
                       const QuantSpec& spec) {
  const std::vector<int64_t> shape{rows, cols};
  std::string error;
  const MxTensor sized = make_mx_tensor(shape, spec, &error);
  EXPECT_EQ(error, "");
  DeviceBuffer<uint16_t> in(x.size());
  DeviceBuffer<uint8_t> elements(sized.elements.size()), scales(sized.scales.size());
  cudaMemcpy(in.p, x.data(), x.size() * 2, cudaMemcpyHostToDevice);
  EXPECT_EQ(mx::cuda::quantize_cuda(in.p, DType::kBF16, shape, spec, elements.p, scales.p, nullptr,
                                    nullptr),
            "");
  HostMx out{sized.elements, sized.scales};
  cudaMemcpy(out.elements.data(), elements.p, out.elements.size(), cudaMemcpyDeviceToHost);
  cudaMemcpy(out.scales.data(), scales.p, out.scales.size(), cudaMemcpyDeviceToHost);
  return out;
}

// A cast down the columns, rearranged, is the transpose's cast along its rows: whole blocks and
// a last block of 8 rows whose padding slots are part of what moves.
TEST(TransposeColumnBlocks, EqualTheTransposesCastAlongItsRows) {
  SKIP_WITHOUT_GPU();
  for (ElementFormat format :
       {ElementFormat::kE4M3, ElementFormat::kE3M2, ElementFormat::kE2M1, ElementFormat::kInt8}) {
    for (int64_t rows : {64, 40}) {
      const int64_t cols = 48;
      SCOPED_TRACE(::testing::Message() << traits(format).name << " rows " << rows);
      const std::vector<uint16_t> x = random_bf16(size_t(rows * cols), uint32_t(rows));
      std::vector<uint16_t> xt(x.size());
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) xt[size_t(c * rows + r)] = x[size_t(r * cols + c)];
      }
      QuantSpec down;
      down.format = format, down.axis = 0;
      QuantSpec along = down;
      along.axis = -1;
      const HostMx cast = quantize_on_gpu(x, rows, cols, down);
      const HostMx want = quantize_on_gpu(xt, cols, rows, along);

      DeviceBuffer<uint8_t> elements(cast.elements.size()), scales(cast.scales.size());
      DeviceBuffer<uint8_t> out_elements(cast.elements.size()), out_scales(cast.scales.size());
      cudaMemcpy(elements.p, cast.elements.data(), cast.elements.size(), cudaMemcpyHostToDevice);
      cudaMemcpy(scales.p, cast.scales.data(), cast.scales.size(), cudaMemcpyHostToDevice);
      ASSERT_EQ(mx::cuda::transpose_column_blocks_cuda(elements.p, scales.p, rows, cols,
                                                       4 * traits(format).bits, out_elements.p,
                                                       out_scales.p, nullptr),
                "");
      HostMx got{std::vector<uint8_t>(cast.elements.size()),
                 std::vector<uint8_t>(cast.scales.size())};
      cudaMemcpy(got.elements.data(), out_elements.p, got.elements.size(), cudaMemcpyDeviceToHost);
      cudaMemcpy(got.scales.data(), out_scales.p, got.scales.size(), cudaMemcpyDeviceToHost);
      EXPECT_EQ(got.elements, want.elements);
      EXPECT_EQ(got.scales, want.scales);
    }
  }
  EXPECT_NE(mx::cuda::transpose_column_blocks_cuda(nullptr, nullptr, 32, 32, 12, nullptr, nullptr,
                                                   nullptr),
            "");
}

std::unique_ptr<Backend> gpu(bool packed) {
  CudaBackendOptions o;
  o.packed_products = packed;
  std::string error;
  auto backend = make_cuda_backend(o, &error);
  EXPECT_NE(backend, nullptr) << error;
  return backend;
}

// One linear layer's forward and backward on one backend, the results downloaded.
struct Layer {
  std::vector<uint16_t> y, dx;
  std::vector<float> dw, dbias;
};

struct LayerInputs {
  int64_t m = 96, k = 128, n = 64;
  std::vector<uint16_t> x, dy, dx0;
  std::vector<float> w, bias, dw0;
  LayerInputs() {
    x = random_bf16(size_t(m * k), 1);
    dy = random_bf16(size_t(m * n), 2, 1e-3f);
    dx0 = random_bf16(size_t(m * k), 3, 1e-3f);
    std::mt19937 rng(4);
    std::normal_distribution<float> normal(0.0f, 0.05f);
    for (int64_t i = 0; i < n * k; ++i) w.push_back(normal(rng));
    for (int64_t i = 0; i < n * k; ++i) dw0.push_back(normal(rng) * 1e-3f);
    for (int64_t i = 0; i < n; ++i) bias.push_back(normal(rng));
  }
};

Layer run_layer(Backend& be, const LayerInputs& in, const Recipe& recipe, bool accumulate_dx) {
  const int64_t m = in.m, k = in.k, n = in.n;
  Buf x = be.alloc(BufType::kBF16, m * k), w = be.alloc(BufType::kF32, n * k);
  Buf bias = be.alloc(BufType::kF32, n), y = be.alloc(BufType::kBF16, m * n);
  Buf dy = be.alloc(BufType::kBF16, m * n), dx = be.alloc(BufType::kBF16, m * k);
  Buf dw = be.alloc(BufType::kF32, n * k), dbias = be.alloc(BufType::kF32, n);
  be.upload(x, in.x.data());
  be.upload(w, in.w.data());
  be.upload(bias, in.bias.data());
  be.upload(dy, in.dy.data());
  be.upload(dx, in.dx0.data());
  be.upload(dw, in.dw0.data());
  be.zero(dbias);
  const SrKey key{5, 1, 2};
  be.matmul_forward(y, x, w, bias, m, k, n, recipe, key);
  be.matmul_backward(dx, dw, dbias, dy, x, w, m, k, n, accumulate_dx, recipe, key);
  Layer out{std::vector<uint16_t>(size_t(m * n)), std::vector<uint16_t>(size_t(m * k)),
            std::vector<float>(size_t(n * k)), std::vector<float>(size_t(n))};
  be.download(out.y.data(), y);
  be.download(out.dx.data(), dx);
  be.download(out.dw.data(), dw);
  be.download(out.dbias.data(), dbias);
  EXPECT_EQ(be.take_error(), "");
  for (Buf b : {x, w, bias, y, dy, dx, dw, dbias}) be.release(b);
  return out;
}

// Two bfloat16 results of the same float32 products summed in different orders: each rounding
// may land on either side, one bfloat16 step (2^-7 relative) apart at most, plus a term
// `rounded` that one side rounds on its own first: the bias, which the bfloat16 path's epilogue
// takes rounded to bfloat16, or an accumulated dx, which the packed path adds to a rounded
// product.
void expect_within_one_rounding(const std::vector<uint16_t>& got, const std::vector<uint16_t>& want,
                                const std::vector<float>& rounded, const char* what) {
  int64_t off = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const float g = bf16_to_float(got[i]), w = bf16_to_float(want[i]);
    const float tol = std::ldexp(std::max(std::fabs(g), std::fabs(w)), -7) +
                      std::ldexp(std::fabs(rounded[i]), -8) + 1e-7f;
    if (!(std::fabs(g - w) <= tol)) ++off;
  }
  EXPECT_EQ(off, 0) << what << ": " << off << " of " << want.size() << " values differ by more";
}

TEST(PackedProducts, GiveTheBfloat16CastsResultsUpToSummationOrder) {
  SKIP_BELOW_COMPUTE_CAPABILITY_9();
  for (const char* name : {"mxfp8", "mxfp6", "mxfp4w-mxfp6a", "mxfp4"}) {
    for (bool accumulate_dx : {false, true}) {
      SCOPED_TRACE(::testing::Message() << name << (accumulate_dx ? ", dx accumulated" : ""));
      const LayerInputs in;
      const Recipe recipe = *recipe_preset(name);
      auto packed = gpu(true), fake = gpu(false);
      if (packed == nullptr || fake == nullptr) return;
      const Layer got = run_layer(*packed, in, recipe, accumulate_dx);
      const Layer want = run_layer(*fake, in, recipe, accumulate_dx);
      std::vector<float> bias(got.y.size()), dx0(got.dx.size(), 0.0f);
      for (size_t i = 0; i < bias.size(); ++i) bias[i] = in.bias[i % size_t(in.n)];
      if (accumulate_dx) {
        for (size_t i = 0; i < dx0.size(); ++i) dx0[i] = bf16_to_float(in.dx0[i]);
      }
      expect_within_one_rounding(got.y, want.y, bias, "y");
      // The packed route ran: it adds the bias in float32 where the bfloat16 path's epilogue
      // adds it rounded to bfloat16, which moves a few percent of the 6,144 roundings of y (the
      // two paths would otherwise give the same bits, as the next test shows they do).
      EXPECT_NE(got.y, want.y) << "the packed route did not run";
      expect_within_one_rounding(got.dx, want.dx, dx0, "dx");
      double diff = 0, norm = 0;
      for (size_t i = 0; i < want.dw.size(); ++i) {
        diff += (double(got.dw[i]) - want.dw[i]) * (double(got.dw[i]) - want.dw[i]);
        norm += double(want.dw[i]) * want.dw[i];
      }
      EXPECT_LT(std::sqrt(diff), 1e-5 * std::sqrt(norm)) << "dW: float32 sums in another order";
      EXPECT_EQ(got.dbias, want.dbias);
    }
  }
}

// Where a product's operands cannot be packed (bfloat16 casts, partial blocks), the option
// changes nothing: the results are the bfloat16 path's, bit for bit.
TEST(PackedProducts, LeaveProductsThatCannotBePackedAsTheyWere) {
  SKIP_BELOW_COMPUTE_CAPABILITY_9();
  LayerInputs in;
  in.m = 80;  // not a multiple of 32
  in.x = random_bf16(size_t(in.m * in.k), 1);
  in.dy = random_bf16(size_t(in.m * in.n), 2, 1e-3f);
  in.dx0 = random_bf16(size_t(in.m * in.k), 3, 1e-3f);
  for (const char* name : {"bf16", "mxfp6"}) {
    SCOPED_TRACE(name);
    auto packed = gpu(true), fake = gpu(false);
    if (packed == nullptr || fake == nullptr) return;
    const Recipe recipe = *recipe_preset(name);
    const Layer got = run_layer(*packed, in, recipe, false);
    const Layer want = run_layer(*fake, in, recipe, false);
    EXPECT_EQ(got.y, want.y);
    EXPECT_EQ(got.dx, want.dx);
    EXPECT_EQ(got.dw, want.dw);
  }
}

}  // namespace
}  // namespace mx::nn
