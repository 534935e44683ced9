// The MX matrix product against a float64 product of the decoded operands (decode_value, the
// reference's decoder): bit-equal on data whose partial sums are all exact in float32, within
// float32 accumulation error elsewhere, with NaN and Inf where the decoded values put them.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "mx/core/bitpack.h"
#include "mx/core/format.h"
#include "mx/core/half.h"
#include "mx/core/layout_weight_tiles.h"
#include "mx/core/quantize_ref.h"
#include "mx/kernels/cuda/mx_gemm.h"
#include "mx/kernels/cuda/quantize_cuda.h"
#include "tests/cuda/mx_gemm_operands.h"

namespace mx {
namespace {

using namespace gemm_test;

const ElementFormat kAll[] = {ElementFormat::kE4M3, ElementFormat::kE5M2, ElementFormat::kE3M2,
                              ElementFormat::kE2M3, ElementFormat::kE2M1, ElementFormat::kInt8,
                              ElementFormat::kInt4, ElementFormat::kInt2, ElementFormat::kE3M0};

TEST(MxGemm, EqualsTheExactProductBitForBitForEveryPairOfFormats) {
  SKIP_WITHOUT_HOPPER();
  std::mt19937 rng(1);
  // M and N cross a tile edge, K ends inside a block and inside a stage.
  const int64_t m = 131, n = 270, k = 200;
  std::vector<float> bias(n);
  for (auto& v : bias) v = float(int(rng() % 17) - 8) * 0.25f;
  for (ElementFormat fa : kAll) {
    for (ElementFormat fb : kAll) {
      const HostMx a = make_operand(fa, m, k, rng, draw_from(small_codes(fa), rng),
                                    scales_between(126, 128, rng));
      const HostMx b = make_operand(fb, n, k, rng, draw_from(small_codes(fb), rng),
                                    scales_between(126, 128, rng));
      for (DType out : {DType::kF32, DType::kBF16}) {
        const bool with_bias = out == DType::kBF16;
        const std::vector<float> used_bias = with_bias ? bias : std::vector<float>{};
        std::string error;
        const auto got = run(a, b, used_bias, out, &error, cuda::mx_gemm_cuda);
        ASSERT_EQ(error, "");
        EXPECT_EQ(count_bit_mismatches(a, b, got, reference(a, b, used_bias), out), 0)
            << traits(fa).name << " x " << traits(fb).name << " out " << dtype_name(out);
      }
    }
  }
}

TEST(MxGemm, ManyStagesAndTilesEqualTheExactProduct) {
  SKIP_WITHOUT_HOPPER();
  std::mt19937 rng(2);
  // 16 stages cycle the three decode buffers several times; 4 x 3 output tiles.
  const int64_t m = 512, n = 700, k = 1024;
  for (auto [fa, fb] : {std::pair{ElementFormat::kE4M3, ElementFormat::kE4M3},
                        std::pair{ElementFormat::kE2M1, ElementFormat::kE3M2},
                        std::pair{ElementFormat::kInt8, ElementFormat::kE2M1}}) {
    const HostMx a =
        make_operand(fa, m, k, rng, draw_from(small_codes(fa), rng), scales_between(126, 127, rng));
    const HostMx b =
        make_operand(fb, n, k, rng, draw_from(small_codes(fb), rng), scales_between(126, 127, rng));
    std::string error;
    const auto got = run(a, b, {}, DType::kF32, &error, cuda::mx_gemm_cuda);
    ASSERT_EQ(error, "");
    EXPECT_EQ(count_bit_mismatches(a, b, got, reference(a, b, {}), DType::kF32), 0);
  }
}

TEST(MxGemm, ProductWithTheIdentityReturnsEachDecodedValue) {
  SKIP_WITHOUT_HOPPER();
  std::mt19937 rng(9);
  const int64_t rows = 48, k = 96;
  // E4M3 code 0x38 is 1.0; scale byte 127 is 2^0.
  const HostMx identity = make_operand(
      ElementFormat::kE4M3, k, k, rng, [] { return uint8_t(0); },
      [](int64_t, int64_t) { return uint8_t(127); });
  HostMx eye = identity;
  for (int64_t i = 0; i < k; ++i) eye.codes[i * k + i] = 0x38;
  pack(eye, rng);
  for (ElementFormat f : kAll) {
    const HostMx x = make_operand(f, rows, k, rng, draw_from(finite_codes(f), rng),
                                  scales_between(120, 134, rng));
    for (bool x_is_a : {true, false}) {
      std::string error;
      const auto got = x_is_a ? run(x, eye, {}, DType::kF32, &error, cuda::mx_gemm_cuda)
                              : run(eye, x, {}, DType::kF32, &error, cuda::mx_gemm_cuda);
      ASSERT_EQ(error, "");
      int64_t bad = 0;
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < k; ++c) {
          const float want = float(x.value(r, c));
          const float have = x_is_a ? got[r * k + c] : got[c * rows + r];
          // The sum also adds zeros (other values times 0), so -0 may come back as +0.
          if (want != have && bad++ < 6) {
            ADD_FAILURE() << traits(f).name << (x_is_a ? " as A" : " as B") << " (" << r << ", "
                          << c << "): code " << int(x.codes[r * k + c]) << " want " << want
                          << " got " << have;
          }
        }
      }
      EXPECT_EQ(bad, 0) << traits(f).name << (x_is_a ? " as A" : " as B");
    }
  }
}

TEST(MxGemm, EveryStageCountEqualsTheExactProduct) {
  SKIP_WITHOUT_HOPPER();
  std::mt19937 rng(8);
  // 1 to 9 stages of two blocks: the first stages run before the loop, later ones reuse the
  // copy and decode buffers.
  expect_exact_at_each_k(cuda::mx_gemm_cuda, {32, 64, 96, 128, 160, 192, 224, 256, 320, 576}, 64,
                         40, rng);
}

TEST(MxGemm, EveryFiniteCodeAndWideScalesStayWithinFloat32AccumulationError) {
  SKIP_WITHOUT_HOPPER();
  std::mt19937 rng(3);
  const int64_t m = 130, n = 260, k = 333;
  for (ElementFormat fa : kAll) {
    for (ElementFormat fb : {ElementFormat::kE4M3, ElementFormat::kE2M1, ElementFormat::kInt8}) {
      const HostMx a = make_operand(fa, m, k, rng, draw_from(finite_codes(fa), rng),
                                    scales_between(112, 142, rng));
      const HostMx b = make_operand(fb, n, k, rng, draw_from(finite_codes(fb), rng),
                                    scales_between(112, 142, rng));
      std::string error;
      const auto got = run(a, b, {}, DType::kF32, &error, cuda::mx_gemm_cuda);
      ASSERT_EQ(error, "");
      EXPECT_EQ(count_beyond_float32_sums(
                    got, reference(a, b, {}), k,
                    std::string(traits(fa).name) + " x " + std::string(traits(fb).name)),
                0);
    }
  }
}

TEST(MxGemm, ScalesAtBothEndsOfTheRangeAreExact) {
  SKIP_WITHOUT_HOPPER();
  std::mt19937 rng(4);
  const int64_t m = 64, n = 96, k = 256;
  // Per block, A's scale byte is anywhere in [lo, 250] and B's is 253 or 254 minus it, so
  // products are near 1 and sums stay exact, while no value reaches 2^128. lo is where
  // bfloat16 still holds every value: 0 for the 4- and 6-bit formats and integers, 3 for E4M3,
  // 10 for E5M2 (2 at least, so that B's scale stays at most 252). B (E2M1) takes the
  // two-multiply path above scale byte 128.
  for (ElementFormat fa : kAll) {
    const int lo = fa == ElementFormat::kE4M3 ? 3 : fa == ElementFormat::kE5M2 ? 10 : 2;
    std::vector<int> base(k / 32);
    for (auto& s : base) s = lo + int(rng() % uint32_t(251 - lo));
    const HostMx a =
        make_operand(fa, m, k, rng, draw_from(small_codes(fa), rng),
                     [&](int64_t, int64_t b) { return uint8_t(base[b] + int(rng() % 2)); });
    const ElementFormat fb = ElementFormat::kE2M1;
    const HostMx b = make_operand(
        fb, n, k, rng, draw_from(small_codes(fb), rng),
        [&](int64_t, int64_t blk) { return uint8_t(253 - base[blk] + int(rng() % 2)); });
    std::string error;
    const auto got = run(a, b, {}, DType::kF32, &error, cuda::mx_gemm_cuda);
    ASSERT_EQ(error, "");
    EXPECT_EQ(count_bit_mismatches(a, b, got, reference(a, b, {}), DType::kF32), 0)
        << traits(fa).name;
  }
}

TEST(MxGemm, NanAndInfinityGoWhereTheDecodedValuesPutThem) {
  SKIP_WITHOUT_HOPPER();
  std::mt19937 rng(5);
  const int64_t m = 40, n = 50, k = 96;
  for (ElementFormat fa : {ElementFormat::kE4M3, ElementFormat::kE5M2, ElementFormat::kE2M1}) {
    HostMx a =
        make_operand(fa, m, k, rng, draw_from(small_codes(fa), rng), scales_between(126, 128, rng));
    HostMx b = make_operand(ElementFormat::kE5M2, n, k, rng,
                            draw_from(small_codes(ElementFormat::kE5M2), rng),
                            scales_between(126, 128, rng));
    a.scales[3 * a.blocks() + 1] = 0xFF;                         // NaN block in row 3
    b.scales[7 * b.blocks() + 2] = 0xFF;                         // NaN block in column 7
    if (fa == ElementFormat::kE4M3) a.codes[10 * k + 5] = 0x7F;  // E4M3 NaN code
    if (fa == ElementFormat::kE5M2) {
      a.codes[10 * k + 5] = 0x7C;   // +Inf
      a.codes[11 * k + 6] = 0xFC;   // -Inf
      a.codes[12 * k + 70] = 0x7E;  // NaN
    }
    b.codes[20 * k + 40] = 0x7C;  // +Inf in column 20
    b.codes[21 * k + 41] = 0x7C;  // +Inf in column 21 ...
    b.codes[21 * k + 42] = 0xFC;  // ... and -Inf: NaN wherever both meet nonzero values
    pack(a, rng);
    pack(b, rng);
    std::string error;
    const auto got = run(a, b, {}, DType::kF32, &error, cuda::mx_gemm_cuda);
    ASSERT_EQ(error, "");
    int64_t specials = 0;
    EXPECT_EQ(count_special_mismatches(got, reference(a, b, {}), &specials), 0) << traits(fa).name;
    EXPECT_GT(specials, n + m);  // the NaN row and column at least
  }
}

TEST(MxGemm, EmptyKGivesTheBiasAndEmptyOutputsLaunchNothing) {
  SKIP_WITHOUT_HOPPER();
  std::mt19937 rng(6);
  const HostMx a = make_operand(
      ElementFormat::kE4M3, 5, 0, rng, [] { return uint8_t(0); },
      [](int64_t, int64_t) { return uint8_t(127); });
  const HostMx b = make_operand(
      ElementFormat::kE4M3, 7, 0, rng, [] { return uint8_t(0); },
      [](int64_t, int64_t) { return uint8_t(127); });
  const std::vector<float> bias = {1, -2, 3.5f, 0, 0.25f, -0.0f, 8};
  std::string error;
  const auto got = run(a, b, bias, DType::kF32, &error, cuda::mx_gemm_cuda);
  ASSERT_EQ(error, "");
  for (int64_t i = 0; i < 35; ++i) EXPECT_EQ(got[i], bias[i % 7]) << i;

  cuda::MxGemmArgs empty;
  empty.m = 0;
  empty.n = 4;
  empty.k = 64;
  EXPECT_EQ(cuda::mx_gemm_cuda(empty, nullptr), "");
}

TEST(MxGemm, RefusesBadArgumentsWithAReason) {
  cuda::MxGemmArgs args;
  args.m = -1;
  EXPECT_NE(cuda::mx_gemm_cuda(args, nullptr).find("negative"), std::string::npos);
  args.m = 4;
  args.n = 4;
  args.k = 32;
  args.out_dtype = DType::kF16;
  EXPECT_NE(cuda::mx_gemm_cuda(args, nullptr).find("float32 or bfloat16"), std::string::npos);
  args.out_dtype = DType::kF32;
  EXPECT_NE(cuda::mx_gemm_cuda(args, nullptr).find("null output"), std::string::npos);
  float dummy = 0;
  args.d = &dummy;
  EXPECT_NE(cuda::mx_gemm_cuda(args, nullptr).find("null operand"), std::string::npos);

  SKIP_WITHOUT_HOPPER();
  std::mt19937 rng(7);
  const HostMx a = make_operand(
      ElementFormat::kE4M3, 4, 32, rng, [] { return uint8_t(0x38); },
      [](int64_t, int64_t) { return uint8_t(127); });
  DevArray<uint8_t> codes(std::vector<uint8_t>(4 * 32 + 4, 0)), scales(a.scales);
  DevArray<float> d(std::vector<float>(16, 0.0f));
  args.a = {codes.p + 1, scales.p, ElementFormat::kE4M3};
  args.b = {codes.p, scales.p, ElementFormat::kE4M3};
  args.d = d.p;
  EXPECT_NE(cuda::mx_gemm_cuda(args, nullptr).find("aligned"), std::string::npos);
}

// ---- Weight-only product (W in the weight-tile layout, X bfloat16, M <= 64) ----

struct WeightOnlyRun {
  std::vector<float> d;
  std::string error;
};

WeightOnlyRun run_weight_only(const HostMx& w, const std::vector<uint16_t>& x, int64_t m,
                              const std::vector<float>& bias, DType out) {
  WeightOnlyRun result;
  const WeightTiles tiles =
      to_weight_tiles(w.format, w.rows, w.k, w.packed, w.scales, &result.error);
  if (!result.error.empty()) return result;
  DevArray<uint8_t> codes(tiles.codes), scales(tiles.scales);
  DevArray<uint16_t> dx(x);
  DevArray<float> db(bias);
  const size_t count = size_t(m * w.rows);
  DevArray<uint8_t> d(std::vector<uint8_t>(count * dtype_size(out), 0xA5));
  cuda::MxWeightOnlyArgs args;
  args.m = m;
  args.n = w.rows;
  args.k = w.k;
  args.x = dx.p;
  args.codes = codes.p;
  args.scales = scales.p;
  args.format = w.format;
  args.bias = bias.empty() ? nullptr : db.p;
  args.out_dtype = out;
  args.d = d.p;
  result.error = cuda::mx_gemm_weight_only_cuda(args, nullptr);
  result.d.resize(count);
  if (!result.error.empty()) return result;
  if (cudaDeviceSynchronize() != cudaSuccess) {
    result.error = "kernel failed";
    return result;
  }
  if (out == DType::kF32) {
    cudaMemcpy(result.d.data(), d.p, count * 4, cudaMemcpyDeviceToHost);
  } else {
    std::vector<uint16_t> h(count);
    cudaMemcpy(h.data(), d.p, count * 2, cudaMemcpyDeviceToHost);
    for (size_t i = 0; i < count; ++i) result.d[i] = bf16_to_float(h[i]);
  }
  return result;
}

// X as an MX-free operand: bfloat16 values that are multiples of 1/4 up to 4 in magnitude.
std::vector<uint16_t> small_bf16(int64_t count, std::mt19937& rng) {
  std::vector<uint16_t> x(count);
  for (auto& v : x) v = float_to_bf16(float(int(rng() % 33) - 16) * 0.25f);
  return x;
}

// The reference as a product of X (M x K) with W: Product over rows of X.
Product reference_weight_only(const std::vector<uint16_t>& x, int64_t m, const HostMx& w,
                              const std::vector<float>& bias) {
  Product p;
  p.exact.assign(m * w.rows, 0.0);
  p.magnitude.assign(m * w.rows, 0.0);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t n = 0; n < w.rows; ++n) {
      double sum = bias.empty() ? 0.0 : bias[n];
      double mag = std::abs(sum);
      for (int64_t c = 0; c < w.k; ++c) {
        const double prod = double(bf16_to_float(x[i * w.k + c])) * w.value(n, c);
        sum += prod;
        mag += std::abs(prod);
      }
      p.exact[i * w.rows + n] = sum;
      p.magnitude[i * w.rows + n] = mag;
    }
  }
  return p;
}

TEST(MxWeightOnly, EqualsTheExactProductForEveryFormatAndBatchSize) {
  SKIP_WITHOUT_HOPPER();
  std::mt19937 rng(11);
  const int64_t n = 40, k = 200;  // N ends inside a 16-row tile, K inside a 64-column tile
  std::vector<float> bias(n);
  for (auto& v : bias) v = float(int(rng() % 17) - 8) * 0.5f;
  for (ElementFormat f : kAll) {
    const HostMx w =
        make_operand(f, n, k, rng, draw_from(small_codes(f), rng), scales_between(126, 128, rng));
    for (int64_t m : {1, 5, 16, 33, 64}) {
      const std::vector<uint16_t> x = small_bf16(m * k, rng);
      for (DType out : {DType::kF32, DType::kBF16}) {
        const std::vector<float> used_bias = out == DType::kBF16 ? bias : std::vector<float>{};
        const WeightOnlyRun got = run_weight_only(w, x, m, used_bias, out);
        ASSERT_EQ(got.error, "");
        const std::string what = std::string(traits(f).name) + " M=" + std::to_string(m);
        EXPECT_EQ(count_mismatches(got.d, reference_weight_only(x, m, w, used_bias), out, what), 0)
            << what;
      }
    }
  }
}

// Few rows and long K: the slices of a row group meet in one cluster. With M = 64, X is staged
// in several chunks of K per slice.
TEST(MxWeightOnly, LongRowsSplitIntoSlicesOfKAndStayExact) {
  SKIP_WITHOUT_HOPPER();
  std::mt19937 rng(12);
  struct Case {
    int64_t n, k, m;
  };
  for (const Case c : {Case{2048, 4096, 16}, Case{144, 6000, 64}}) {
    for (ElementFormat f : {ElementFormat::kE2M1, ElementFormat::kE4M3, ElementFormat::kE3M2}) {
      const HostMx w = make_operand(f, c.n, c.k, rng, draw_from(small_codes(f), rng),
                                    scales_between(125, 126, rng));
      const std::vector<uint16_t> x = small_bf16(c.m * c.k, rng);
      const WeightOnlyRun got = run_weight_only(w, x, c.m, {}, DType::kF32);
      ASSERT_EQ(got.error, "");
      const std::string what = std::string(traits(f).name) + " M=" + std::to_string(c.m);
      EXPECT_EQ(count_mismatches(got.d, reference_weight_only(x, c.m, w, {}), DType::kF32, what), 0)
          << what;
    }
  }
}

TEST(MxWeightOnly, NanScalesAndSpecialCodesGoWhereTheDecodedValuesPutThem) {
  SKIP_WITHOUT_HOPPER();
  std::mt19937 rng(13);
  const int64_t n = 48, k = 128, m = 3;
  for (ElementFormat f : {ElementFormat::kE4M3, ElementFormat::kE5M2, ElementFormat::kE2M1}) {
    HostMx w =
        make_operand(f, n, k, rng, draw_from(small_codes(f), rng), scales_between(126, 128, rng));
    w.scales[5 * w.blocks() + 2] = 0xFF;  // row 5: NaN block
    w.scales[6 * w.blocks() + 1] = 254;   // row 6: a factor above 2^127 (two multiplies)
    for (int64_t c = 32; c < 64; ++c) w.codes[6 * k + c] = 0;
    w.codes[6 * k + 40] = small_codes(f)[1];
    if (f == ElementFormat::kE4M3) w.codes[7 * k + 3] = 0x7F;  // NaN code
    if (f == ElementFormat::kE5M2) w.codes[7 * k + 3] = 0x7C;  // +Inf code
    pack(w, rng);
    const std::vector<uint16_t> x = small_bf16(m * k, rng);
    const WeightOnlyRun got = run_weight_only(w, x, m, {}, DType::kF32);
    ASSERT_EQ(got.error, "");
    const Product want = reference_weight_only(x, m, w, {});
    int64_t bad = 0;
    for (size_t i = 0; i < got.d.size(); ++i) {
      const double e = want.exact[i];
      const bool ok = std::isnan(e) ? std::isnan(got.d[i]) : float(e) == got.d[i];
      if (!ok && bad++ < 4)
        ADD_FAILURE() << traits(f).name << " at " << i << ": want " << e << " got " << got.d[i];
    }
    EXPECT_EQ(bad, 0) << traits(f).name;
    EXPECT_TRUE(std::isnan(got.d[5]));  // X row 0, W row 5
  }
}

TEST(MxWeightOnly, RefusesBadArgumentsWithAReason) {
  cuda::MxWeightOnlyArgs args;
  args.m = 65;
  args.n = 16;
  args.k = 64;
  EXPECT_NE(cuda::mx_gemm_weight_only_cuda(args, nullptr).find("at most 64"), std::string::npos);
  args.m = 4;
  EXPECT_NE(cuda::mx_gemm_weight_only_cuda(args, nullptr).find("null"), std::string::npos);
  args.out_dtype = DType::kF16;
  EXPECT_NE(cuda::mx_gemm_weight_only_cuda(args, nullptr).find("float32 or bfloat16"),
            std::string::npos);
  args.out_dtype = DType::kBF16;
  uint8_t byte = 0;
  float f = 0;
  args.x = &byte;
  args.codes = &byte + 1;
  args.scales = &byte;
  args.d = &f;
  EXPECT_NE(cuda::mx_gemm_weight_only_cuda(args, nullptr).find("codes must be 16-byte aligned"),
            std::string::npos);
  alignas(16) static uint8_t aligned[32];
  args.codes = aligned;
  args.scales = aligned + 4;
  EXPECT_NE(cuda::mx_gemm_weight_only_cuda(args, nullptr).find("scales must be 16-byte aligned"),
            std::string::npos);
}

}  // namespace
}  // namespace mx
