// Dequantizing on the CPU fast path gives the reference's values bit for bit, to float32 and to
// bfloat16, for every code of every format, under every scale byte class, on every instruction
// set this machine supports. The tensors are written directly (not quantized), so codes the
// quantizer never emits (E4M3 NaN, E5M2 Inf and NaN, INT8 -128) and the extreme scale bytes are
// covered too.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <tuple>

#include "mx/core/bitpack.h"
#include "mx/core/half.h"
#include "mx/core/quantize_ref.h"
#include "mx/kernels/cpu/quantize.h"

namespace mx {
namespace {

// Scale bytes that matter: the subnormal 2^-127, the ends of the range, the values around 1,
// bytes whose products land in float32's and bfloat16's subnormal range, and NaN.
const std::vector<uint8_t> kScaleBytes = {0x00, 0x01, 0x02, 0x05, 0x0A, 0x10, 0x14, 0x18,
                                          0x7E, 0x7F, 0x80, 0xF0, 0xFD, 0xFE, 0xFF};

// A [rows, cols] tensor blocked along cols whose codes run through every code of the format in
// each stretch of 2^bits slots (in a shuffled order that changes from stretch to stretch), with
// block scales drawn from kScaleBytes or at random, and random bfloat16 offsets when asymmetric.
MxTensor every_code_tensor(ElementFormat format, int64_t rows, int64_t cols, int block,
                           bool asymmetric, uint32_t seed) {
  QuantSpec spec;
  spec.format = format;
  spec.block_size = block;
  spec.asymmetric = asymmetric;
  std::string error;
  const std::vector<int64_t> shape = {rows, cols};
  MxTensor t = make_mx_tensor(shape, spec, &error);
  EXPECT_EQ(error, "");
  const int bits = traits(format).bits;
  std::mt19937 rng(seed);
  std::vector<uint8_t> codes(t.num_blocks() * block);
  for (size_t i = 0; i < codes.size(); ++i) {
    codes[i] = uint8_t((i * 7 + i / (1u << bits)) % (1u << bits));
  }
  pack_codes(codes, bits, 0, t.elements);
  for (size_t b = 0; b < t.scales.size(); ++b) {
    t.scales[b] = b % 3 == 2 ? uint8_t(rng()) : kScaleBytes[rng() % kScaleBytes.size()];
  }
  for (uint16_t& o : t.offsets) o = float_to_bf16(std::ldexp(float(int(rng() % 200) - 100), -4));
  return t;
}

void expect_fast_dequantize_equals_reference(const MxTensor& t) {
  const std::vector<float> want = dequantize_ref(t);
  std::vector<uint16_t> want_bf16(want.size());
  for (size_t i = 0; i < want.size(); ++i) want_bf16[i] = float_to_bf16(want[i]);
  for (cpu::SimdTarget target : cpu::supported_targets()) {
    SCOPED_TRACE(std::string(cpu::target_name(target)) + " " + describe(t.spec));
    cpu::Options options;
    options.target = target;
    options.threads = 2;
    std::vector<float> got(want.size());
    ASSERT_EQ(cpu::dequantize(t, DType::kF32, got.data(), options), "");
    ASSERT_EQ(0, std::memcmp(got.data(), want.data(), want.size() * 4));
    std::vector<uint16_t> got_bf16(want.size());
    ASSERT_EQ(cpu::dequantize(t, DType::kBF16, got_bf16.data(), options), "");
    ASSERT_EQ(got_bf16, want_bf16);
  }
}

TEST(CpuDequantize, EveryCodeUnderEveryScaleClassEqualsTheReference) {
  for (const FormatTraits& f : all_formats()) {
    // 8 blocks of 32 per row: the 256 codes of an 8-bit format in each row, shifted by the row.
    expect_fast_dequantize_equals_reference(every_code_tensor(f.format, 40, 256, 32, false, 1));
  }
}

TEST(CpuDequantize, AsymmetricBlocksEqualTheReference) {
  for (const FormatTraits& f : all_formats()) {
    expect_fast_dequantize_equals_reference(every_code_tensor(f.format, 9, 128, 32, true, 2));
  }
}

TEST(CpuDequantize, RowsThatEndInsideABlockAndLongerBlocksEqualTheReference) {
  for (const FormatTraits& f : all_formats()) {
    expect_fast_dequantize_equals_reference(every_code_tensor(f.format, 7, 100, 32, false, 3));
    expect_fast_dequantize_equals_reference(every_code_tensor(f.format, 5, 200, 64, false, 4));
    expect_fast_dequantize_equals_reference(every_code_tensor(f.format, 3, 96, 96, true, 5));
    expect_fast_dequantize_equals_reference(every_code_tensor(f.format, 6, 33, 16, false, 6));
  }
}

TEST(CpuDequantize, LargeOutputsAtAnyAlignmentEqualTheReference) {
  // Above 16 MiB of output the AVX-512 path writes whole 64-byte lines with non-temporal stores
  // and the partial lines at a run's ends with masked ones: shift the output off the lines by
  // every even number of bytes it may take, and break the runs at rows that end inside a block.
  for (ElementFormat format : {ElementFormat::kE2M1, ElementFormat::kE2M3, ElementFormat::kE4M3}) {
    for (int64_t cols : {4096, 4100}) {
      const MxTensor t = every_code_tensor(format, 2100, cols, 32, false, 8);
      const std::vector<float> want = dequantize_ref(t);
      std::vector<uint16_t> want_bf16(want.size());
      for (size_t i = 0; i < want.size(); ++i) want_bf16[i] = float_to_bf16(want[i]);
      std::vector<float> got(want.size() + 16);
      std::vector<uint16_t> got_bf16(want.size() + 32);
      for (cpu::SimdTarget target : cpu::supported_targets()) {
        cpu::Options options;
        options.target = target;
        options.threads = 2;
        for (int shift : {0, 1, 6, 15}) {
          SCOPED_TRACE(std::string(cpu::target_name(target)) + " " + describe(t.spec) + " cols " +
                       std::to_string(cols) + " shift " + std::to_string(shift));
          ASSERT_EQ(cpu::dequantize(t, DType::kF32, got.data() + shift, options), "");
          ASSERT_EQ(0, std::memcmp(got.data() + shift, want.data(), want.size() * 4));
          ASSERT_EQ(cpu::dequantize(t, DType::kBF16, got_bf16.data() + 2 * shift + 1, options), "");
          ASSERT_EQ(
              0, std::memcmp(got_bf16.data() + 2 * shift + 1, want_bf16.data(), want.size() * 2));
        }
      }
    }
  }
}

// A lookup of rows (an embedding table kept as blocks) gives the reference's rows: in rows that
// end inside a block, in asymmetric blocks and in blocks of 16.
TEST(CpuDequantize, RowLookupsEqualTheReferenceRows) {
  for (const FormatTraits& f : all_formats()) {
    for (const auto& [cols, block, asymmetric] :
         {std::tuple{100, 32, false}, std::tuple{64, 32, true}, std::tuple{48, 16, false}}) {
      const MxTensor t = every_code_tensor(f.format, 11, cols, block, asymmetric, 9);
      SCOPED_TRACE(describe(t.spec) + " cols " + std::to_string(cols));
      const std::vector<float> want = dequantize_ref(t);
      for (const auto& [first, rows] : {std::pair{0, 1}, std::pair{10, 1}, std::pair{3, 5}}) {
        std::vector<float> got(size_t(rows * cols));
        ASSERT_EQ(cpu::dequantize_rows(t, first, rows, DType::kF32, got.data()), "");
        ASSERT_EQ(0, std::memcmp(got.data(), want.data() + first * cols, got.size() * 4));
      }
    }
  }
}

TEST(CpuDequantize, RowLookupsRefuseRowsOutOfRangeAndOtherLayouts) {
  const MxTensor t = every_code_tensor(ElementFormat::kE2M1, 4, 64, 32, false, 10);
  float out[64 * 4];
  EXPECT_EQ(cpu::dequantize_rows(t, 3, 2, DType::kF32, out),
            "rows 3 to 5 are not all below the tensor's 4");
  EXPECT_EQ(cpu::dequantize_rows(t, -1, 1, DType::kF32, out),
            "rows -1 to 0 are not all below the tensor's 4");
  MxTensor down = t;
  down.spec.axis = 0;
  down.shape = {64, 4};
  EXPECT_EQ(cpu::dequantize_rows(down, 0, 1, DType::kF32, out),
            "row lookups need a 2-D tensor in blocks of whole bytes along its last axis");
}

TEST(CpuDequantize, ScaleByteZeroIsTheSubnormalNotZeroAndNanFillsTheBlock) {
  // Hand-checked anchors, independent of dequantize_ref: E2M1 code 0x7 (6.0) under byte 0 is
  // 6 * 2^-127 = 1.5 * 2^-125, a normal float32; under 0xFF every slot is NaN.
  for (cpu::SimdTarget target : cpu::supported_targets()) {
    MxTensor t = every_code_tensor(ElementFormat::kE2M1, 1, 64, 32, false, 7);
    std::fill(t.elements.begin(), t.elements.end(), uint8_t{0x77});
    t.scales = {0x00, 0xFF};
    cpu::Options options;
    options.target = target;
    std::vector<float> got(64);
    ASSERT_EQ(cpu::dequantize(t, DType::kF32, got.data(), options), "");
    for (int i = 0; i < 32; ++i) EXPECT_EQ(got[i], std::ldexp(1.5f, -125)) << i;
    for (int i = 32; i < 64; ++i) EXPECT_TRUE(std::isnan(got[i])) << i;
  }
}

}  // namespace
}  // namespace mx
