// The cuBLASLt MX plan, on the host: run without a GPU. The plan is checked against a
// column-major emulation of what cuBLASLt computes from the arguments the plan records, and
// its scale layout against the 128 x 4 tile formula of the cuBLAS documentation.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "mx/core/element_ref.h"
#include "mx/core/format.h"
#include "mx/core/layout_swizzle.h"
#include "mx/kernels/cuda/gemm_cublaslt_mx.h"
#include "mx/kernels/cuda/gemm_cublaslt_mx_plan.h"
#include "mx/kernels/cuda/mx_gemm_route.h"

namespace mx::cuda {
namespace {

// Host bytes whose start is 16-byte aligned, as cudaMalloc's are (the plan checks alignment).
struct AlignedBytes {
  std::vector<uint8_t> storage;
  uint8_t* data = nullptr;
  explicit AlignedBytes(size_t n) : storage(n + 16) {
    const uintptr_t p = reinterpret_cast<uintptr_t>(storage.data());
    data = storage.data() + (16 - p % 16) % 16;
  }
};

// An MX product's host buffers: random codes and scales in our storage.
struct Operands {
  int64_t m, n, k;
  ElementFormat fa, fb;
  AlignedBytes a_codes, b_codes, a_scales, b_scales, d;
  std::vector<float> bias;
  Operands(int64_t m_, int64_t n_, int64_t k_, ElementFormat fa_, ElementFormat fb_)
      : m(m_),
        n(n_),
        k(k_),
        fa(fa_),
        fb(fb_),
        a_codes(m_ * mx_row_code_bytes(fa_, k_)),
        b_codes(n_ * mx_row_code_bytes(fb_, k_)),
        a_scales(m_ * mx_row_scale_bytes(k_)),
        b_scales(n_ * mx_row_scale_bytes(k_)),
        d(m_ * n_ * 4),
        bias(n_) {
    std::mt19937 rng(uint32_t(m * 131 + n * 17 + k));
    for (AlignedBytes* codes : {&a_codes, &b_codes}) {
      for (size_t i = 0; i + 16 < codes->storage.size(); ++i) codes->data[i] = uint8_t(rng());
    }
    // Scales near 2^0 keep every product and sum exact in double.
    for (AlignedBytes* s : {&a_scales, &b_scales}) {
      for (size_t i = 0; i + 16 < s->storage.size(); ++i) s->data[i] = uint8_t(120 + rng() % 15);
    }
  }
  MxGemmArgs args(DType out = DType::kF32, bool with_bias = false) const {
    MxGemmArgs g;
    g.m = m;
    g.n = n;
    g.k = k;
    g.a = {a_codes.data, a_scales.data, fa};
    g.b = {b_codes.data, b_scales.data, fb};
    g.bias = with_bias ? bias.data() : nullptr;
    g.out_dtype = out;
    g.d = d.data;
    return g;
  }
};

// Code at slot `index` of a buffer of `bits`-bit codes; two E2M1 codes share a byte, the
// lower index in the low nibble (cuda_fp4.h packs __nv_fp4x2 that way, and so do we).
uint8_t code_at(const void* data, int bits, int64_t index) {
  const uint8_t* bytes = static_cast<const uint8_t*>(data);
  if (bits == 8) return bytes[index];
  const uint8_t byte = bytes[index / 2];
  return index % 2 == 0 ? byte & 0x0F : byte >> 4;
}

int bits_of(cudaDataType_t t) {
  return t == CUDA_R_4F_E2M1 ? 4 : 8;
}

ElementFormat format_of(cudaDataType_t t) {
  if (t == CUDA_R_8F_E4M3) return ElementFormat::kE4M3;
  if (t == CUDA_R_8F_E5M2) return ElementFormat::kE5M2;
  return ElementFormat::kE2M1;
}

// Byte of scale (outer index, block along K) in the swizzled tiles, as the cuBLAS
// documentation's "1D Block Scaling Factors Layout" lays them out: tiles of 128 outer indices
// x 4 blocks in row-major tile order, 512 bytes each; inside a tile, 32 lines of 16 bytes, line
// i % 32 holding outer indices i, i + 32, i + 64, i + 96 with their 4 blocks each.
int64_t documented_scale_byte(int64_t outer, int64_t block, int64_t padded_cols) {
  const int64_t tile = (outer / 128) * (padded_cols / 4) + block / 4;
  return tile * 512 + (outer % 32) * 16 + (outer % 128) / 32 * 4 + block % 4;
}

// Element (i, l) of op(X) for a cuBLASLt operand, decoded and scaled, read through the plan's
// type, shape, leading dimension, transpose and (swizzled) scales only.
double lt_operand_value(const LtMxOperand& x, const std::vector<uint8_t>& swizzled, int64_t i,
                        int64_t l) {
  // op(X) is i x l; the stored column-major matrix is rows x cols.
  const int64_t r = x.op == CUBLAS_OP_N ? i : l;
  const int64_t c = x.op == CUBLAS_OP_N ? l : i;
  EXPECT_LT(uint64_t(r), x.rows);
  EXPECT_LT(uint64_t(c), x.cols);
  const uint8_t code = code_at(x.data, bits_of(x.type), r + c * x.ld);
  // VEC32 blocks run along the reduction dimension; the outer index is op(X)'s other one.
  const bool k_is_second = x.op == CUBLAS_OP_T;  // op(A) is m x k
  const int64_t outer = k_is_second ? i : l;
  const int64_t kk = k_is_second ? l : i;
  const uint8_t scale = swizzled.at(documented_scale_byte(outer, kk / 32, x.scale_padded_cols));
  return decode_element(traits(format_of(x.type)), code) * std::ldexp(1.0, int(scale) - 127);
}

// D as cuBLASLt would compute it from the plan: column-major m x n with leading dimension ldd,
// D(i, j) = sum_l op(A)(i, l) · op(B)(l, j); returned as the flat buffer it would write.
std::vector<double> emulate_lt(const LtMxPlan& p) {
  std::string error;
  const std::vector<uint8_t> sa =
      swizzle_scales({p.a.scales, size_t(p.a.scale_rows * p.a.scale_cols)}, p.a.scale_rows,
                     p.a.scale_cols, &error);
  EXPECT_EQ("", error);
  const std::vector<uint8_t> sb =
      swizzle_scales({p.b.scales, size_t(p.b.scale_rows * p.b.scale_cols)}, p.b.scale_rows,
                     p.b.scale_cols, &error);
  EXPECT_EQ("", error);
  EXPECT_EQ(int64_t(sa.size()), p.a.scale_bytes);
  EXPECT_EQ(int64_t(sb.size()), p.b.scale_bytes);
  std::vector<double> d(p.ldd * p.n, 0.0);
  for (uint64_t j = 0; j < p.n; ++j) {
    for (uint64_t i = 0; i < p.m; ++i) {
      double sum = 0;
      for (uint64_t l = 0; l < p.k; ++l) {
        // op(B) is k x n: its element (l, j) is stored as op N (l, j) or op T (j, l).
        const double b = p.b.op == CUBLAS_OP_N ? lt_operand_value(p.b, sb, l, j)
                                               : lt_operand_value(p.b, sb, j, l);
        sum += lt_operand_value(p.a, sa, i, l) * b;
      }
      d[i + j * p.ldd] = sum;
    }
  }
  return d;
}

// Our definition: D[r, c] = sum_k A[r, k] · B[c, k], row-major, from our storage directly.
std::vector<double> row_major_product(const Operands& o) {
  const int64_t blocks = mx_row_scale_bytes(o.k);
  auto value = [&](const AlignedBytes& codes, const AlignedBytes& scales, ElementFormat f,
                   int64_t row, int64_t col) {
    const int64_t slot = row * blocks * 32 + col;
    const uint8_t code = code_at(codes.data, traits(f).bits, slot);
    return decode_element(traits(f), code) *
           std::ldexp(1.0, int(scales.data[row * blocks + col / 32]) - 127);
  };
  std::vector<double> d(o.m * o.n);
  for (int64_t r = 0; r < o.m; ++r) {
    for (int64_t c = 0; c < o.n; ++c) {
      double sum = 0;
      for (int64_t kk = 0; kk < o.k; ++kk) {
        sum +=
            value(o.a_codes, o.a_scales, o.fa, r, kk) * value(o.b_codes, o.b_scales, o.fb, c, kk);
      }
      d[r * o.n + c] = sum;
    }
  }
  return d;
}

constexpr ElementFormat kE4M3 = ElementFormat::kE4M3;
constexpr ElementFormat kE5M2 = ElementFormat::kE5M2;
constexpr ElementFormat kE2M1 = ElementFormat::kE2M1;

TEST(CublasLtMxPlan, ComputesTheTransposedProductWithOurBFirstAndTransposed) {
  const Operands o(64, 256, 512, kE4M3, kE5M2);
  std::string why;
  const LtMxPlan p = plan_blackwell_mx_gemm(o.args(), &why);
  ASSERT_EQ("", why);
  EXPECT_EQ(p.m, 256u);  // our N
  EXPECT_EQ(p.n, 64u);   // our M
  EXPECT_EQ(p.k, 512u);
  EXPECT_EQ(p.a.data, o.b_codes.data);
  EXPECT_EQ(p.a.scales, o.b_scales.data);
  EXPECT_EQ(p.a.op, CUBLAS_OP_T);
  EXPECT_EQ(p.a.type, CUDA_R_8F_E5M2);
  EXPECT_EQ(p.a.rows, 512u);
  EXPECT_EQ(p.a.cols, 256u);
  EXPECT_EQ(p.a.ld, 512);
  EXPECT_EQ(p.b.data, o.a_codes.data);
  EXPECT_EQ(p.b.scales, o.a_scales.data);
  EXPECT_EQ(p.b.op, CUBLAS_OP_N);
  EXPECT_EQ(p.b.type, CUDA_R_8F_E4M3);
  EXPECT_EQ(p.b.rows, 512u);
  EXPECT_EQ(p.b.cols, 64u);
  EXPECT_EQ(p.b.ld, 512);
  EXPECT_EQ(p.a.scale_mode, CUBLASLT_MATMUL_MATRIX_SCALE_VEC32_UE8M0);
  EXPECT_EQ(p.b.scale_mode, CUBLASLT_MATMUL_MATRIX_SCALE_VEC32_UE8M0);
  EXPECT_EQ(p.compute, CUBLAS_COMPUTE_32F);
  EXPECT_EQ(p.scale_type, CUDA_R_32F);
  EXPECT_EQ(p.d_type, CUDA_R_32F);
  EXPECT_EQ(p.ldd, 256);
  EXPECT_FALSE(p.d_in_scratch);
  EXPECT_EQ(p.bias, LtMxBias::kNone);
}

TEST(CublasLtMxPlan, Fp4OperandsAreE2M1WithLeadingDimensionsInElements) {
  const Operands o(3, 32, 96, kE2M1, kE2M1);
  std::string why;
  const LtMxPlan p = plan_blackwell_mx_gemm(o.args(DType::kBF16), &why);
  ASSERT_EQ("", why);
  EXPECT_EQ(p.a.type, CUDA_R_4F_E2M1);
  EXPECT_EQ(p.b.type, CUDA_R_4F_E2M1);
  EXPECT_EQ(p.a.ld, 96);  // 48 bytes: a multiple of 16
  EXPECT_EQ(p.b.ld, 96);
  EXPECT_EQ(p.d_type, CUDA_R_16BF);
  EXPECT_EQ(p.ldd, 32);
}

// The emulation reads only what the plan records; our product reads our storage. Odd M and
// scale matrices that do not fill their tiles included.
TEST(CublasLtMxPlan, ColumnMajorProductOfThePlanIsOurRowMajorProduct) {
  struct Case {
    int64_t m, n, k;
    ElementFormat fa, fb;
  };
  for (const Case& c : {Case{5, 8, 64, kE4M3, kE4M3}, Case{3, 12, 96, kE4M3, kE5M2},
                        Case{7, 4, 32, kE5M2, kE4M3}, Case{9, 16, 160, kE2M1, kE2M1},
                        Case{130, 20, 64, kE2M1, kE2M1}, Case{1, 132, 32, kE4M3, kE4M3}}) {
    SCOPED_TRACE(std::to_string(c.m) + "x" + std::to_string(c.n) + "x" + std::to_string(c.k) + " " +
                 std::string(traits(c.fa).name) + " x " + std::string(traits(c.fb).name));
    const Operands o(c.m, c.n, c.k, c.fa, c.fb);
    std::string why;
    const LtMxPlan p = plan_blackwell_mx_gemm(o.args(), &why);
    ASSERT_EQ("", why);
    const std::vector<double> lt = emulate_lt(p);
    const std::vector<double> want = row_major_product(o);
    ASSERT_EQ(lt.size(), want.size());
    int64_t differ = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      // NaN codes (E4M3 0x7F/0xFF, E5M2 NaNs) give NaN on both sides.
      if (std::isnan(want[i]) && std::isnan(lt[i])) continue;
      if (want[i] != lt[i]) ++differ;
    }
    EXPECT_EQ(differ, 0);
  }
}

TEST(CublasLtMxPlan, ScaleBytesAreTheDocumentedTilesAndSwizzledScaleOffset) {
  for (int64_t rows : {1, 31, 127, 128, 129, 300}) {
    for (int64_t k : {32, 96, 128, 160, 288}) {
      const Operands o(rows, 8, k, kE4M3, kE4M3);
      std::string why;
      const LtMxPlan p = plan_blackwell_mx_gemm(o.args(), &why);
      ASSERT_EQ("", why);
      const LtMxOperand& x = p.b;  // our A: `rows` outer indices
      const int64_t blocks = k / 32;
      EXPECT_EQ(x.scale_rows, rows);
      EXPECT_EQ(x.scale_cols, blocks);
      EXPECT_EQ(x.scale_padded_rows % 128, 0);
      EXPECT_TRUE(x.scale_padded_rows >= rows && x.scale_padded_rows < rows + 128);
      EXPECT_EQ(x.scale_padded_cols % 4, 0);
      EXPECT_TRUE(x.scale_padded_cols >= blocks && x.scale_padded_cols < blocks + 4);
      EXPECT_EQ(x.scale_bytes, x.scale_padded_rows * x.scale_padded_cols);
      EXPECT_EQ(x.scale_bytes, swizzled_scale_bytes(rows, blocks));
      std::vector<bool> seen(x.scale_bytes, false);
      for (int64_t r = 0; r < x.scale_padded_rows; ++r) {
        for (int64_t c = 0; c < x.scale_padded_cols; ++c) {
          const int64_t at = documented_scale_byte(r, c, x.scale_padded_cols);
          ASSERT_LT(at, x.scale_bytes);
          EXPECT_FALSE(seen[at]) << "byte " << at << " taken twice";
          seen[at] = true;
          if (r < rows && c < blocks) {
            ASSERT_EQ(at, swizzled_scale_offset(r, c, blocks));
          }
        }
      }
    }
  }
}

TEST(CublasLtMxPlan, WorkspaceRegionsAreAlignedAndDisjoint) {
  for (DType out : {DType::kF32, DType::kBF16}) {
    for (bool bias : {false, true}) {
      const Operands o(300, 64, 256, kE4M3, kE4M3);
      std::string why;
      const LtMxPlan p = plan_blackwell_mx_gemm(o.args(out, bias), &why);
      ASSERT_EQ("", why);
      struct Region {
        int64_t at, bytes;
      };
      std::vector<Region> regions = {{p.a.scale_offset, p.a.scale_bytes},
                                     {p.b.scale_offset, p.b.scale_bytes},
                                     {p.lt_workspace_offset, p.lt_workspace_bytes}};
      if (p.d_in_scratch) regions.push_back({p.scratch_offset, p.scratch_bytes});
      for (size_t i = 0; i < regions.size(); ++i) {
        EXPECT_EQ(regions[i].at % kLtMxWorkspaceAlign, 0);
        EXPECT_LE(regions[i].at + regions[i].bytes, p.workspace_bytes);
        for (size_t j = 0; j < i; ++j) {
          const bool apart = regions[i].at + regions[i].bytes <= regions[j].at ||
                             regions[j].at + regions[j].bytes <= regions[i].at;
          EXPECT_TRUE(apart) << "regions " << j << " and " << i << " overlap";
        }
      }
      EXPECT_EQ(p.lt_workspace_bytes, int64_t{32} << 20);
      EXPECT_EQ(mx_gemm_cublaslt_workspace_bytes(o.args(out, bias)), size_t(p.workspace_bytes));
    }
  }
}

// The two-pass route: each operand's dequantized copy, K contiguous, is what cuBLASLt reads (our
// B first and transposed, as on the block-scaled route), for any pair of formats and any K; the
// copies, the float32 scratch and cuBLASLt's workspace do not overlap.
TEST(CublasLtMxPlan, DequantizedRouteReadsBfloat16CopiesOfAnyPairAndAnyK) {
  for (auto [fa, fb] : {std::pair{ElementFormat::kE3M2, ElementFormat::kInt8},
                        std::pair{ElementFormat::kE2M1, ElementFormat::kE2M3},
                        std::pair{ElementFormat::kE5M2, ElementFormat::kE5M2}}) {
    for (DType out : {DType::kF32, DType::kBF16}) {
      const Operands o(37, 24, 100, fa, fb);
      std::string why;
      const LtMxPlan p = plan_dequantized_mx_gemm(o.args(out, true), &why);
      ASSERT_EQ("", why);
      EXPECT_FALSE(p.block_scaled);
      EXPECT_EQ(p.m, 24u);
      EXPECT_EQ(p.n, 37u);
      EXPECT_EQ(p.k, 100u);
      EXPECT_EQ(p.a.type, CUDA_R_16BF);
      EXPECT_EQ(p.b.type, CUDA_R_16BF);
      EXPECT_EQ(p.a.op, CUBLAS_OP_T);
      EXPECT_EQ(p.b.op, CUBLAS_OP_N);
      EXPECT_EQ(p.a.source.elements, o.b_codes.data);
      EXPECT_EQ(p.b.source.elements, o.a_codes.data);
      EXPECT_EQ(p.a.source.format, fb);
      EXPECT_EQ(p.b.source.format, fa);
      EXPECT_EQ(p.a.ld, 100);
      EXPECT_EQ(p.b.ld, 100);
      EXPECT_EQ(p.a.copy_bytes, 24 * 100 * 2);
      EXPECT_EQ(p.b.copy_bytes, 37 * 100 * 2);
      EXPECT_EQ(p.d_in_scratch, out == DType::kBF16);
      std::vector<std::pair<int64_t, int64_t>> regions = {
          {p.a.copy_offset, p.a.copy_bytes},
          {p.b.copy_offset, p.b.copy_bytes},
          {p.lt_workspace_offset, p.lt_workspace_bytes}};
      if (p.d_in_scratch) regions.push_back({p.scratch_offset, p.scratch_bytes});
      for (size_t i = 0; i < regions.size(); ++i) {
        EXPECT_EQ(regions[i].first % kLtMxWorkspaceAlign, 0);
        EXPECT_LE(regions[i].first + regions[i].second, p.workspace_bytes);
        for (size_t j = 0; j < i; ++j) {
          EXPECT_TRUE(regions[i].first + regions[i].second <= regions[j].first ||
                      regions[j].first + regions[j].second <= regions[i].first)
              << "regions " << j << " and " << i << " overlap";
        }
      }
      EXPECT_EQ(mx_gemm_dequantized_workspace_bytes(o.args(out, true)), size_t(p.workspace_bytes));
    }
  }
  const Operands empty(0, 16, 64, ElementFormat::kE4M3, ElementFormat::kE4M3);
  std::string why;
  plan_dequantized_mx_gemm(empty.args(), &why);
  EXPECT_NE(why.find("positive"), std::string::npos) << why;
  EXPECT_EQ(mx_gemm_dequantized_workspace_bytes(empty.args()), 0u);
}

// The route taken at run time: Blackwell's block-scaled product where cuBLASLt takes the pair
// and shape, else the two-pass route on 9.0 and newer, else the fused kernel on Hopper; nothing
// before 9.0.
TEST(MxGemmRoute, TakesTheFastestRouteTheComputeCapabilityHasForTheArguments) {
  const Operands fp8(64, 64, 64, kE4M3, kE4M3),
      fp6(64, 64, 64, ElementFormat::kE3M2, ElementFormat::kE2M3);
  const Operands odd_k(64, 64, 40, kE2M1, kE2M1), odd_n(64, 36, 64, kE4M3, kE4M3);
  std::string why;
  EXPECT_EQ(choose_mx_gemm_route(fp8.args(), 10, 0, &why), MxGemmRoute::kBlockScaled);
  EXPECT_EQ(choose_mx_gemm_route(fp8.args(), 12, 1, &why), MxGemmRoute::kBlockScaled);
  EXPECT_EQ(choose_mx_gemm_route(fp6.args(), 10, 0, &why), MxGemmRoute::kDequantized);
  EXPECT_EQ(choose_mx_gemm_route(odd_k.args(), 10, 0, &why), MxGemmRoute::kDequantized);
  EXPECT_EQ(choose_mx_gemm_route(fp8.args(), 9, 0, &why), MxGemmRoute::kDequantized);
  EXPECT_EQ(choose_mx_gemm_route(fp6.args(), 9, 0, &why), MxGemmRoute::kDequantized);
  // Rows of 36 bfloat16 values are not a multiple of 16 bytes: only the fused kernel takes them.
  EXPECT_EQ(choose_mx_gemm_route(odd_n.args(DType::kBF16), 9, 0, &why), MxGemmRoute::kFused);
  EXPECT_EQ(why, "");
  EXPECT_EQ(choose_mx_gemm_route(odd_n.args(DType::kBF16), 10, 0, &why), MxGemmRoute::kNone);
  EXPECT_NE(why.find("multiple of 16 bytes"), std::string::npos) << why;
  EXPECT_EQ(choose_mx_gemm_route(fp8.args(), 8, 6, &why), MxGemmRoute::kNone);
  EXPECT_NE(why.find("9.0 or newer, this GPU is 8.6"), std::string::npos) << why;
  EXPECT_STREQ(mx_gemm_route_name(MxGemmRoute::kDequantized), "dequantized + cuBLASLt BF16");
}

TEST(CublasLtMxPlan, FloatBiasIsAddedInFloat32AfterTheProduct) {
  const Operands o(4, 16, 64, kE4M3, kE4M3);
  std::string why;
  LtMxPlan p = plan_blackwell_mx_gemm(o.args(DType::kF32, true), &why);
  ASSERT_EQ("", why);
  EXPECT_EQ(p.bias, LtMxBias::kAddInPlace);
  EXPECT_EQ(p.d_type, CUDA_R_32F);
  EXPECT_FALSE(p.d_in_scratch);
  p = plan_blackwell_mx_gemm(o.args(DType::kBF16, true), &why);
  ASSERT_EQ("", why);
  EXPECT_EQ(p.bias, LtMxBias::kAddFromFloatScratch);
  EXPECT_EQ(p.d_type, CUDA_R_32F);
  EXPECT_TRUE(p.d_in_scratch);
  EXPECT_EQ(p.scratch_bytes, 4 * 16 * 4);
}

TEST(CublasLtMxPlan, TakesExactlyTheDocumentedFormatPairs) {
  const auto supported = [](ElementFormat a, ElementFormat b) {
    return (a == kE4M3 && b == kE4M3) || (a == kE4M3 && b == kE5M2) || (a == kE5M2 && b == kE4M3) ||
           (a == kE2M1 && b == kE2M1);
  };
  for (const FormatTraits& fa : all_formats()) {
    for (const FormatTraits& fb : all_formats()) {
      SCOPED_TRACE(std::string(fa.name) + " x " + std::string(fb.name));
      const Operands o(8, 16, 64, fa.format, fb.format);
      std::string why;
      const LtMxPlan p = plan_blackwell_mx_gemm(o.args(), &why);
      if (supported(fa.format, fb.format)) {
        EXPECT_EQ("", why);
      } else {
        EXPECT_NE(why.find(std::string(fa.name) + " x " + std::string(fb.name)), std::string::npos)
            << why;
        EXPECT_EQ(p.workspace_bytes, 0);
        EXPECT_EQ(mx_gemm_cublaslt_workspace_bytes(o.args()), 0u);
      }
    }
  }
}

// One refusal per rule; each reason is one line naming the problem.
TEST(CublasLtMxPlan, RefusesWhatCublasLtCannotRunWithOneLineReasons) {
  const Operands o(8, 16, 64, kE4M3, kE4M3);
  struct Case {
    const char* name;
    MxGemmArgs args;
    const char* says;
  };
  std::vector<Case> cases;
  auto with = [&](const char* name, const char* says, auto change) {
    MxGemmArgs g = o.args();
    change(g);
    cases.push_back({name, g, says});
  };
  with("K not a multiple of 32", "multiple of 32", [](MxGemmArgs& g) { g.k = 48; });
  with("K zero", "positive", [](MxGemmArgs& g) { g.k = 0; });
  with("M zero", "positive", [](MxGemmArgs& g) { g.m = 0; });
  with("N negative", "positive", [](MxGemmArgs& g) { g.n = -16; });
  with("float16 output", "float16", [](MxGemmArgs& g) { g.out_dtype = DType::kF16; });
  with("int8 A", "int8 x e4m3", [](MxGemmArgs& g) { g.a.format = ElementFormat::kInt8; });
  with("e3m2 B", "e4m3 x e3m2", [](MxGemmArgs& g) { g.b.format = ElementFormat::kE3M2; });
  with("mixed fp8 x fp4", "e4m3 x e2m1", [](MxGemmArgs& g) { g.b.format = kE2M1; });
  with("null A codes", "A", [](MxGemmArgs& g) { g.a.elements = nullptr; });
  with("null A scales", "A", [](MxGemmArgs& g) { g.a.scales = nullptr; });
  with("null B codes", "B", [](MxGemmArgs& g) { g.b.elements = nullptr; });
  with("null B scales", "B", [](MxGemmArgs& g) { g.b.scales = nullptr; });
  with("null D", "output", [](MxGemmArgs& g) { g.d = nullptr; });
  with("misaligned A", "aligned", [](MxGemmArgs& g) { g.a.elements += 1; });
  with("misaligned B", "aligned", [](MxGemmArgs& g) { g.b.elements += 8; });
  with("misaligned D", "aligned", [](MxGemmArgs& g) { g.d = static_cast<uint8_t*>(g.d) + 4; });
  with("float32 rows of 24 bytes", "16 bytes", [](MxGemmArgs& g) { g.n = 6; });
  with("bfloat16 rows of 8 bytes", "16 bytes", [](MxGemmArgs& g) {
    g.n = 4;
    g.out_dtype = DType::kBF16;
  });
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::string why;
    const LtMxPlan p = plan_blackwell_mx_gemm(c.args, &why);
    EXPECT_NE(why.find(c.says), std::string::npos) << why;
    EXPECT_EQ(why.find('\n'), std::string::npos) << why;
    EXPECT_EQ(p.workspace_bytes, 0);
  }
}

// The neighbours of the refusals above are taken: the rules are no wider than they say.
TEST(CublasLtMxPlan, TakesTheAlignedNeighboursOfItsRefusals) {
  const Operands o(8, 16, 64, kE4M3, kE4M3);
  auto takes = [](MxGemmArgs g) {
    std::string why;
    plan_blackwell_mx_gemm(g, &why);
    return why;
  };
  MxGemmArgs g = o.args();
  g.n = 4;  // 16 bytes of float32
  EXPECT_EQ("", takes(g));
  g.n = 8;
  g.out_dtype = DType::kBF16;  // 16 bytes of bfloat16
  EXPECT_EQ("", takes(g));
  g = o.args(DType::kBF16, true);
  g.n = 4;  // cuBLASLt writes 16-byte float32 rows of scratch; our kernel writes D
  g.d = static_cast<uint8_t*>(g.d) + 2;
  EXPECT_EQ("", takes(g));
  g = o.args();
  g.b.elements += 16;
  g.a.scales += 1;  // scales are read by our swizzle kernel, byte by byte
  EXPECT_EQ("", takes(g));
  g = o.args();
  g.k = 32;
  EXPECT_EQ("", takes(g));
}

}  // namespace
}  // namespace mx::cuda
