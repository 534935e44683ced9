// The MXFP8 x MXFP8 product through FP8 mma (mx_gemm_fp8_cuda) against a float64 product of
// the decoded operands: bit-equal where every partial sum is exact in float32, within float32
// accumulation error elsewhere, NaN and Inf where the decoded values put them.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "mx/core/format.h"
#include "mx/kernels/cuda/mx_gemm.h"
#include "tests/cuda/mx_gemm_operands.h"

namespace mx {
namespace {

using namespace gemm_test;

const ElementFormat kFp8[] = {ElementFormat::kE4M3, ElementFormat::kE5M2};

std::vector<float> run_fp8(const HostMx& a, const HostMx& b, const std::vector<float>& bias,
                           DType out, std::string* error) {
  return run(a, b, bias, out, error, cuda::mx_gemm_fp8_cuda);
}

TEST(MxGemmFp8, EqualsTheExactProductBitForBitForEveryPairOfFp8Formats) {
  SKIP_WITHOUT_HOPPER();
  std::mt19937 rng(11);
  // M and N cross a tile edge; K ends inside a block and inside a stage of four blocks.
  const std::tuple<int64_t, int64_t, int64_t> shapes[] = {
      {131, 270, 200}, {64, 48, 32}, {1, 1, 7}, {257, 3, 513}};
  for (const auto& [m, n, k] : shapes) {
    std::vector<float> bias(n);
    for (auto& v : bias) v = float(int(rng() % 17) - 8) * 0.25f;
    for (ElementFormat fa : kFp8) {
      for (ElementFormat fb : kFp8) {
        const HostMx a = make_operand(fa, m, k, rng, draw_from(small_codes(fa), rng),
                                      scales_between(125, 129, rng));
        const HostMx b = make_operand(fb, n, k, rng, draw_from(small_codes(fb), rng),
                                      scales_between(125, 129, rng));
        for (DType out : {DType::kF32, DType::kBF16}) {
          std::string error;
          const auto got = run_fp8(a, b, bias, out, &error);
          ASSERT_EQ(error, "");
          EXPECT_EQ(count_bit_mismatches(a, b, got, reference(a, b, bias), out), 0)
              << m << " x " << n << " x " << k;
        }
      }
    }
  }
}

TEST(MxGemmFp8, EveryStageCountEqualsTheExactProduct) {
  SKIP_WITHOUT_HOPPER();
  std::mt19937 rng(12);
  // 1 to 6 stages of four blocks: the first two are copied before the loop, later ones rotate
  // through the three buffers.
  expect_exact_at_each_k(cuda::mx_gemm_fp8_cuda, {32, 96, 128, 160, 256, 384, 416, 512, 640, 768},
                         130, 140, rng);
}

TEST(MxGemmFp8, ScalesFarApartStayExactWhileTheirProductIsNormal) {
  SKIP_WITHOUT_HOPPER();
  std::mt19937 rng(13);
  const int64_t m = 64, n = 96, k = 256;
  // A's scale byte anywhere in [2, 250] per block, B's 253 or 254 minus it: each block's scale
  // product is 2^-1 or 2^0 or 2^1 while the scales themselves reach 2^-125 and 2^123.
  std::vector<int> base(k / 32);
  for (auto& s : base) s = 2 + int(rng() % 249u);
  for (ElementFormat fa : kFp8) {
    const HostMx a =
        make_operand(fa, m, k, rng, draw_from(small_codes(fa), rng),
                     [&](int64_t, int64_t b) { return uint8_t(base[b] + int(rng() % 2)); });
    const HostMx b = make_operand(
        ElementFormat::kE4M3, n, k, rng, draw_from(small_codes(ElementFormat::kE4M3), rng),
        [&](int64_t, int64_t blk) { return uint8_t(253 - base[blk] + int(rng() % 2)); });
    std::string error;
    const auto got = run_fp8(a, b, {}, DType::kF32, &error);
    ASSERT_EQ(error, "");
    EXPECT_EQ(count_bit_mismatches(a, b, got, reference(a, b, {}), DType::kF32), 0)
        << traits(fa).name;
  }
}

TEST(MxGemmFp8, EveryFiniteCodeStaysWithinFloat32AccumulationError) {
  SKIP_WITHOUT_HOPPER();
  std::mt19937 rng(14);
  const int64_t m = 130, n = 260, k = 333;
  for (ElementFormat fa : kFp8) {
    for (ElementFormat fb : kFp8) {
      const HostMx a = make_operand(fa, m, k, rng, draw_from(finite_codes(fa), rng),
                                    scales_between(112, 142, rng));
      const HostMx b = make_operand(fb, n, k, rng, draw_from(finite_codes(fb), rng),
                                    scales_between(112, 142, rng));
      std::string error;
      const auto got = run_fp8(a, b, {}, DType::kF32, &error);
      ASSERT_EQ(error, "");
      const std::string what = std::string(traits(fa).name) + " x " + std::string(traits(fb).name);
      double largest = 0;  // printed for docs/NUMERICS.md
      const int64_t bad = count_beyond_float32_sums(got, reference(a, b, {}), k, what, &largest);
      std::cout << what << ": largest |error| / sum of |products| " << largest << "\n";
      EXPECT_EQ(bad, 0);
    }
  }
}

TEST(MxGemmFp8, NanAndInfinityGoWhereTheDecodedValuesPutThem) {
  SKIP_WITHOUT_HOPPER();
  std::mt19937 rng(15);
  const int64_t m = 40, n = 50, k = 160;
  for (ElementFormat fa : kFp8) {
    HostMx a =
        make_operand(fa, m, k, rng, draw_from(small_codes(fa), rng), scales_between(126, 128, rng));
    HostMx b = make_operand(ElementFormat::kE5M2, n, k, rng,
                            draw_from(small_codes(ElementFormat::kE5M2), rng),
                            scales_between(126, 128, rng));
    a.scales[3 * a.blocks() + 1] = 0xFF;  // NaN block in row 3
    b.scales[7 * b.blocks() + 4] = 0xFF;  // NaN block in column 7 (the second stage)
    if (fa == ElementFormat::kE4M3) {
      a.codes[10 * k + 5] = 0x7F;  // NaN
    } else {
      a.codes[10 * k + 5] = 0x7C;    // +Inf
      a.codes[11 * k + 6] = 0xFC;    // -Inf
      a.codes[12 * k + 140] = 0x7E;  // NaN
    }
    b.codes[20 * k + 40] = 0x7C;  // +Inf in column 20
    b.codes[21 * k + 41] = 0x7C;  // +Inf in column 21 ...
    b.codes[21 * k + 42] = 0xFC;  // ... and -Inf: NaN wherever both meet nonzero values
    pack(a, rng);
    pack(b, rng);
    std::string error;
    const auto got = run_fp8(a, b, {}, DType::kF32, &error);
    ASSERT_EQ(error, "");
    int64_t specials = 0;
    EXPECT_EQ(count_special_mismatches(got, reference(a, b, {}), &specials), 0) << traits(fa).name;
    EXPECT_GT(specials, n + m);  // the NaN row and column at least
  }
}

TEST(MxGemmFp8, PaddingSlotsHoldingNanCodesDoNotReachTheSums) {
  SKIP_WITHOUT_HOPPER();
  std::mt19937 rng(16);
  // K = 40: the second block's slots 8..31 are padding, which pack() fills with junk codes;
  // here every one of them is E4M3's NaN.
  const int64_t m = 20, n = 24, k = 40;
  const ElementFormat f = ElementFormat::kE4M3;
  HostMx a =
      make_operand(f, m, k, rng, draw_from(small_codes(f), rng), scales_between(126, 128, rng));
  HostMx b =
      make_operand(f, n, k, rng, draw_from(small_codes(f), rng), scales_between(126, 128, rng));
  for (HostMx* x : {&a, &b}) {
    for (int64_t r = 0; r < x->rows; ++r) {
      for (int64_t slot = k; slot < 64; ++slot) x->packed[r * 64 + slot] = 0x7F;
    }
  }
  std::string error;
  const auto got = run_fp8(a, b, {}, DType::kF32, &error);
  ASSERT_EQ(error, "");
  EXPECT_EQ(count_bit_mismatches(a, b, got, reference(a, b, {}), DType::kF32), 0);
}

TEST(MxGemmFp8, RefusesOtherFormatsAndBadArgumentsWithAReason) {
  cuda::MxGemmArgs args;
  args.m = -1;
  EXPECT_NE(cuda::mx_gemm_fp8_cuda(args, nullptr).find("mx_gemm_fp8: negative"), std::string::npos);
  args.m = 4, args.n = 4, args.k = 32;
  float dummy = 0;
  uint8_t byte = 0;
  args.d = &dummy;
  args.a = {&byte, &byte, ElementFormat::kE2M1};
  args.b = {&byte, &byte, ElementFormat::kE4M3};
  EXPECT_NE(cuda::mx_gemm_fp8_cuda(args, nullptr).find("must be MXFP8"), std::string::npos);
  args.a.format = ElementFormat::kE5M2;
  args.b.format = ElementFormat::kInt8;
  EXPECT_NE(cuda::mx_gemm_fp8_cuda(args, nullptr).find("must be MXFP8"), std::string::npos);

  SKIP_WITHOUT_HOPPER();
  DevArray<uint8_t> codes(std::vector<uint8_t>(4 * 32 + 16, 0)),
      scales(std::vector<uint8_t>(4, 127));
  DevArray<float> d(std::vector<float>(16, 0.0f));
  args.a = {codes.p + 1, scales.p, ElementFormat::kE4M3};
  args.b = {codes.p, scales.p, ElementFormat::kE4M3};
  args.d = d.p;
  EXPECT_NE(cuda::mx_gemm_fp8_cuda(args, nullptr).find("16-byte aligned"), std::string::npos);
}

}  // namespace
}  // namespace mx
