// The tensor-core attention kernels against the CUDA-core ones, on the same bfloat16 inputs
// with the same in-tile casts: the outputs, the log-sum-exps and the three gradients agree
// within bfloat16 rounding. Both kernels cast P and dS with the same bit-exact code (tested in
// nn_backend_test.cpp) and compute P from the same inputs, so a cast element differs only where
// float32 sums in another order move P across a rounding boundary, which is rare. Skips where no
// GPU is present. The tiled float32 kernels are held to the same CUDA-core kernels.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "mx/kernels/cuda/quantize_cuda.h"
#include "mx/nn/cuda/attention.h"
#include "mx/nn/cuda/flash_attention.h"
#include "mx/nn/cuda/fp32_attention.h"
#include "tests/cuda/skip_without_gpu.h"

namespace mx::nn::cuda {
namespace {

uint16_t to_bf16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return uint16_t((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}

float from_bf16(uint16_t h) {
  const uint32_t bits = uint32_t(h) << 16;
  float x;
  std::memcpy(&x, &bits, sizeof x);
  return x;
}

// A device buffer of bfloat16 or float32 values, copied back on request.
class DeviceArray {
 public:
  DeviceArray(size_t count, size_t element_bytes) : bytes_(count * element_bytes) {
    EXPECT_EQ(cudaMalloc(&p_, bytes_), cudaSuccess);
    cudaMemset(p_, 0, bytes_);
  }
  ~DeviceArray() { cudaFree(p_); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  void* get() const { return p_; }
  float* f32() const { return static_cast<float*>(p_); }
  std::vector<float> values(bool bf16) const {
    std::vector<float> out;
    if (bf16) {
      std::vector<uint16_t> h(bytes_ / 2);
      cudaMemcpy(h.data(), p_, bytes_, cudaMemcpyDeviceToHost);
      for (uint16_t x : h) out.push_back(from_bf16(x));
    } else {
      out.resize(bytes_ / 4);
      cudaMemcpy(out.data(), p_, bytes_, cudaMemcpyDeviceToHost);
    }
    return out;
  }

 private:
  void* p_ = nullptr;
  size_t bytes_;
};

void fill_normal(DeviceArray& a, size_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<uint16_t> h(count);
  for (uint16_t& x : h) x = to_bf16(normal(rng));
  cudaMemcpy(a.get(), h.data(), count * 2, cudaMemcpyHostToDevice);
}

void fill_normal_f32(DeviceArray& a, size_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> h(count);
  for (float& x : h) x = normal(rng);
  cudaMemcpy(a.get(), h.data(), count * 4, cudaMemcpyHostToDevice);
}

double rel_diff(const std::vector<float>& got, const std::vector<float>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    num += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    den += double(want[i]) * want[i];
  }
  return std::sqrt(num / den);
}

TileCast mx_cast(ElementFormat format, Rounding rounding) {
  TileCast c{TileCast::Kind::kMx, {}};
  c.spec.format = format;
  c.spec.rounding = rounding;
  c.spec.seed = 12345;
  return c;
}

struct Case {
  const char* name;
  AttnDims dims;
  TileCast p, p_dw, ds_x, ds_w;
  bool round_p;
};

struct Options {
  // The backward reads the forward's own tensors and output, as the bf16 recipe has it (its casts
  // of bfloat16 activations are the activations themselves).
  bool as_in_training = false;
  // The tensor-core forward also writes P v_dw and its backward takes delta from it, as the
  // backend runs MX recipes.
  bool pv_from_forward = false;
  // For dQ and dK when above `tol` (see DeltaFromTheForwardsPv...).
  double dq_dk_tol = 0.0;
};

// Each column of `grad` [rows, width] summed over its rows equals the column's sum over the
// rows of `sums` [sum_rows, width] (the tiles' column sums that the tensor-core backward
// writes), within float32 rounding of sums of a few hundred terms.
void expect_column_sums(const std::vector<float>& sums, const std::vector<float>& grad,
                        int64_t width, const char* what) {
  const int64_t rows = int64_t(grad.size()) / width, sum_rows = int64_t(sums.size()) / width;
  for (int64_t j = 0; j < width; ++j) {
    double want = 0, magnitude = 0, got = 0;
    for (int64_t i = 0; i < rows; ++i) {
      want += grad[size_t(i * width + j)];
      magnitude += std::fabs(grad[size_t(i * width + j)]);
    }
    for (int64_t i = 0; i < sum_rows; ++i) got += sums[size_t(i * width + j)];
    ASSERT_NEAR(got, want, 1e-5 * magnitude + 1e-6) << what << " column " << j;
  }
}

// Runs both kernels on one set of inputs; every result within `tol` relative (2-norm). The
// tensor-core backward also writes its tiles' column sums, which add up to those of its dq, dk
// and dv.
void expect_kernels_agree(const Case& c, double tol, Options o = {}) {
  const bool as_in_training = o.as_in_training, pv_from_forward = o.pv_from_forward;
  const double dq_dk_tol = std::max(tol, o.dq_dk_tol);
  SCOPED_TRACE(c.name);
  const AttnDims& d = c.dims;
  const size_t q_count = size_t(d.b * d.t * d.nh * d.hs),
               kv_count = size_t(d.b * d.t * d.nkv * d.hs);
  const size_t rows = size_t(d.b * d.nh * d.t);
  DeviceArray q(q_count, 2), k(kv_count, 2), v(kv_count, 2), dout(q_count, 2);
  DeviceArray k_dw(kv_count, 2), v_dw(kv_count, 2), q_dw(q_count, 2), do_w(q_count, 2);
  fill_normal(q, q_count, 1);
  fill_normal(k, kv_count, 2);
  fill_normal(v, kv_count, 3);
  fill_normal(dout, q_count, 4);
  // The backward's operands are other casts of the same tensors; other values serve as well.
  fill_normal(k_dw, kv_count, 5);
  fill_normal(v_dw, kv_count, 6);
  fill_normal(q_dw, q_count, 7);
  fill_normal(do_w, q_count, 8);
  struct Results {
    std::vector<float> out, lse, delta, dq, dk, dv, column_sums;
  };
  const int64_t sum_rows = attention_column_sum_rows(d);
  auto run = [&](bool tensor_cores) {
    DeviceArray out(q_count, 2), lse(rows, 4), delta(rows, 4);
    DeviceArray column_sums(size_t(sum_rows * (d.nh + 2 * d.nkv) * d.hs), 4);
    DeviceArray dq(q_count, 2), dk(kv_count, 2), dv(kv_count, 2), pv(q_count, 2);
    const bool with_pv = tensor_cores && pv_from_forward;
    if (tensor_cores) {
      const PvForDelta want_pv{pv.get(), as_in_training ? v.get() : v_dw.get()};
      const bool wrote =
          flash_attention_forward(out.get(), lse.f32(), q.get(), k.get(), v.get(), d, c.p,
                                  c.round_p, nullptr, with_pv ? want_pv : PvForDelta{});
      EXPECT_EQ(wrote, with_pv);
    } else {
      attention_forward_cuda_cores(out.get(), lse.f32(), q.get(), k.get(), v.get(), d, c.p,
                                   c.round_p, true, nullptr);
    }
    AttnBackwardArgs a{q.get(),    k.get(),   dout.get(),  v_dw.get(), do_w.get(), k_dw.get(),
                       q_dw.get(), lse.f32(), delta.f32(), dq.get(),   dk.get(),   dv.get()};
    if (as_in_training) {
      a.v_dw = v.get();
      a.do_w = dout.get();
      a.k_dw = k.get();
      a.q_dw = q.get();
      a.out = out.get();
    }
    if (with_pv) a.pv = pv.get();
    if (tensor_cores) {
      a.column_sums = column_sums.f32();
      flash_attention_backward(a, d, c.p_dw, c.ds_x, c.ds_w, c.round_p, nullptr);
    } else {
      attention_backward_cuda_cores(a, d, c.p_dw, c.ds_x, c.ds_w, c.round_p, true, nullptr);
    }
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    return Results{out.values(true), lse.values(false), delta.values(false),      dq.values(true),
                   dk.values(true),  dv.values(true),   column_sums.values(false)};
  };
  const Results want = run(false), got = run(true);
  const int64_t q_width = d.nh * d.hs, kv_width = d.nkv * d.hs;
  const auto sums_from = [&](int64_t offset, int64_t width) {
    return std::vector<float>(got.column_sums.begin() + offset,
                              got.column_sums.begin() + offset + sum_rows * width);
  };
  expect_column_sums(sums_from(0, q_width), got.dq, q_width, "dq");
  expect_column_sums(sums_from(sum_rows * q_width, kv_width), got.dk, kv_width, "dk");
  expect_column_sums(sums_from(sum_rows * (q_width + kv_width), kv_width), got.dv, kv_width, "dv");
  EXPECT_LT(rel_diff(got.out, want.out), tol) << "out";
  EXPECT_LT(rel_diff(got.lse, want.lse), 1e-5) << "lse";
  EXPECT_LT(rel_diff(got.delta, want.delta), tol) << "delta";
  EXPECT_LT(rel_diff(got.dq, want.dq), dq_dk_tol) << "dq";
  EXPECT_LT(rel_diff(got.dk, want.dk), dq_dk_tol) << "dk";
  EXPECT_LT(rel_diff(got.dv, want.dv), tol) << "dv";
}

const TileCast kBf16{TileCast::Kind::kBF16, {}};

// bfloat16 casts (the bf16 recipe) for each head size, T = 100 (tiles cut short), grouped
// queries; 1e-2 is a few bfloat16 roundings of the outputs (2^-9 relative each).
TEST(FlashAttention, MatchesTheCudaCoreKernelsUnderBfloat16Casts) {
  SKIP_WITHOUT_GPU();
  for (int64_t hs : {32, 64, 128}) {
    expect_kernels_agree({"bf16", {2, 100, 4, 2, hs}, kBf16, kBf16, kBf16, kBf16, false}, 1e-2);
  }
  expect_kernels_agree(
      {"bf16, T 64, P rounded", {1, 64, 2, 2, 64}, kBf16, kBf16, kBf16, kBf16, true}, 1e-2);
}

// As in training under the bf16 recipe: one sweep over the keys in the forward (online softmax)
// and in dQ (delta from the output), each operand tile loaded once.
TEST(FlashAttention, OneSweepKernelsMatchTheCudaCoreKernelsUnderBfloat16Casts) {
  SKIP_WITHOUT_GPU();
  for (int64_t hs : {32, 64, 128}) {
    expect_kernels_agree({"bf16, one sweep", {2, 300, 4, 2, hs}, kBf16, kBf16, kBf16, kBf16, false},
                         1e-2, {.as_in_training = true});
  }
}

// MX casts in the tiles: MXFP6 throughout, and the mxfp4 recipe's E2M1 probabilities with
// stochastically rounded E3M0 gradients.
TEST(FlashAttention, MatchesTheCudaCoreKernelsUnderMxCasts) {
  SKIP_WITHOUT_GPU();
  const TileCast fp6 = mx_cast(ElementFormat::kE3M2, Rounding::kNearestEven);
  const TileCast fp4 = mx_cast(ElementFormat::kE2M1, Rounding::kNearestEven);
  const TileCast e3m0 = mx_cast(ElementFormat::kE3M0, Rounding::kStochastic);
  // P in asymmetric INT4 blocks (a bfloat16 offset each), as recipes/mxint4-asym.json casts it.
  TileCast int4_asym = mx_cast(ElementFormat::kInt4, Rounding::kNearestEven);
  int4_asym.spec.asymmetric = true;
  for (int64_t hs : {64, 128}) {
    expect_kernels_agree({"mxfp6", {2, 100, 4, 2, hs}, fp6, fp6, fp6, fp6, false}, 1e-2);
    expect_kernels_agree({"mxfp4", {2, 100, 4, 2, hs}, fp4, fp4, e3m0, e3m0, false}, 1e-2);
    expect_kernels_agree(
        {"P mxint4 asymmetric", {2, 100, 4, 2, hs}, int4_asym, int4_asym, e3m0, e3m0, false}, 1e-2);
  }
}

// As the backend runs MX recipes: the forward also multiplies P (before its cast) by the
// backward's v_dw, and dQ takes delta = rowsum(dO * P v_dw) from it in one sweep over the keys
// instead of summing P * dP in a sweep of its own. That delta differs from the sum by bfloat16
// rounding (of P in the product, and of P v_dw as stored), as the bf16 recipe's delta from O
// does. With dS cast to bfloat16 the difference reaches dQ and dK as it is. With dS cast to MX,
// an element near a rounding boundary of its format can round the other way, a whole step of a
// 2-bit (E3M2) or 0-bit (E3M0) mantissa, so dQ and dK agree less closely there.
TEST(FlashAttention, DeltaFromTheForwardsPvMatchesTheCudaCoreKernelsUnderMxCasts) {
  SKIP_WITHOUT_GPU();
  const TileCast fp6 = mx_cast(ElementFormat::kE3M2, Rounding::kNearestEven);
  const TileCast fp4 = mx_cast(ElementFormat::kE2M1, Rounding::kNearestEven);
  const TileCast e3m0 = mx_cast(ElementFormat::kE3M0, Rounding::kStochastic);
  for (int64_t hs : {32, 64, 128}) {
    for (bool as_in_training : {false, true}) {
      const Options o{.as_in_training = as_in_training, .pv_from_forward = true};
      expect_kernels_agree({"P mxfp6, dS bf16", {2, 300, 4, 2, hs}, fp6, fp6, kBf16, kBf16, false},
                           1e-2, o);
      expect_kernels_agree(
          {"mxfp6", {2, 300, 4, 2, hs}, fp6, fp6, fp6, fp6, false}, 1e-2,
          {.as_in_training = as_in_training, .pv_from_forward = true, .dq_dk_tol = 3e-2});
    }
    expect_kernels_agree({"mxfp4, P rounded", {2, 100, 4, 2, hs}, fp4, fp4, e3m0, e3m0, true}, 1e-2,
                         {.pv_from_forward = true, .dq_dk_tol = 6e-2});
  }
}

struct AttentionResults {
  std::vector<float> out, lse, delta, dq, dk, dv;
  bool operator==(const AttentionResults&) const = default;
};

// Float32 activations without casts (the fp32 recipe), the backward reading the forward's own
// tensors and output as training does: the tiled kernels, or the warp-per-row ones.
AttentionResults run_fp32(const AttnDims& d, bool tiled) {
  const size_t q_count = size_t(d.b * d.t * d.nh * d.hs),
               kv_count = size_t(d.b * d.t * d.nkv * d.hs);
  const size_t rows = size_t(d.b * d.nh * d.t);
  DeviceArray q(q_count, 4), k(kv_count, 4), v(kv_count, 4), dout(q_count, 4);
  fill_normal_f32(q, q_count, 1);
  fill_normal_f32(k, kv_count, 2);
  fill_normal_f32(v, kv_count, 3);
  fill_normal_f32(dout, q_count, 4);
  DeviceArray out(q_count, 4), lse(rows, 4), delta(rows, 4);
  DeviceArray dq(q_count, 4), dk(kv_count, 4), dv(kv_count, 4);
  const float *qp = q.f32(), *kp = k.f32(), *vp = v.f32(), *dop = dout.f32();
  AttnBackwardArgs a{qp, kp,        dop,         vp,       dop,      kp,
                     qp, lse.f32(), delta.f32(), dq.get(), dk.get(), dv.get()};
  a.out = out.get();
  if (tiled) {
    fp32_attention_forward(out.f32(), lse.f32(), qp, kp, vp, d, nullptr);
    fp32_attention_backward(a, d, nullptr);
  } else {
    attention_forward_cuda_cores(out.get(), lse.f32(), qp, kp, vp, d, {}, false, false, nullptr);
    attention_backward_cuda_cores(a, d, {}, {}, {}, false, false, nullptr);
  }
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  return {out.values(false), lse.values(false), delta.values(false),
          dq.values(false),  dk.values(false),  dv.values(false)};
}

const AttnDims kFp32Shapes[] = {
    {2, 100, 4, 4, 64},  // the last tile cut short
    {1, 300, 4, 2, 64},  // grouped queries, five tiles
    {1, 64, 2, 1, 64},   // one tile, one key head for two query heads
    {3, 2, 2, 2, 64},    // two positions
};

// The same sums in another order: float32 rounding apart.
TEST(Fp32Attention, TiledKernelsMatchTheWarpPerRowKernels) {
  SKIP_WITHOUT_GPU();
  for (const AttnDims& d : kFp32Shapes) {
    SCOPED_TRACE(::testing::Message()
                 << "B " << d.b << " T " << d.t << " heads " << d.nh << "/" << d.nkv);
    const AttentionResults want = run_fp32(d, false), got = run_fp32(d, true);
    EXPECT_LT(rel_diff(got.out, want.out), 1e-5) << "out";
    EXPECT_LT(rel_diff(got.lse, want.lse), 1e-6) << "lse";
    EXPECT_LT(rel_diff(got.delta, want.delta), 1e-5) << "delta";
    EXPECT_LT(rel_diff(got.dq, want.dq), 1e-5) << "dq";
    EXPECT_LT(rel_diff(got.dk, want.dk), 1e-5) << "dk";
    EXPECT_LT(rel_diff(got.dv, want.dv), 1e-5) << "dv";
  }
}

TEST(Fp32Attention, RepeatsBitForBit) {
  SKIP_WITHOUT_GPU();
  const AttnDims d{2, 300, 4, 2, 64};
  EXPECT_TRUE(run_fp32(d, true) == run_fp32(d, true));
}

TEST(Fp32Attention, TakesHeadSize64WithoutCastsOrCache) {
  const AttnDims d{2, 100, 4, 2, 64};
  EXPECT_TRUE(fp32_attention_supports(d, {TileCast{}, TileCast{}}, false));
  EXPECT_FALSE(fp32_attention_supports({2, 100, 4, 2, 128}, {TileCast{}}, false));
  EXPECT_FALSE(fp32_attention_supports({2, 100, 4, 2, 64, 5}, {TileCast{}}, false));
  EXPECT_FALSE(fp32_attention_supports(d, {TileCast{}}, true));
  EXPECT_FALSE(fp32_attention_supports(d, {kBf16}, false));
  EXPECT_FALSE(fp32_attention_supports(
      d, {TileCast{}, mx_cast(ElementFormat::kE3M2, Rounding::kNearestEven)}, false));
}

}  // namespace
}  // namespace mx::nn::cuda
