// Matrix products from packed MX rows, written once and compiled per instruction set: the
// including file defines MX_CPU_ISA and MX_CPU_MATMUL_FN. A tile of kRows rows of W and
// kXRows rows of x decodes each block of W once, in registers, for all of its x rows.
//
// Every output element is summed in one order, whatever the tile, the thread split or the
// instruction set, so results are identical across all three:
//   exact: lane j (0-15) adds w_k * x_k for k = 32b + 2j, then 32b + 2j + 1, block b after
//          block b; w_k is the dequantized weight, decode(code) * X, and every product and sum is
//          a float32 operation (no fused multiply-add);
//   fast:  lane l (0-15) of block pair p holds the exact integer dot product of four
//          consecutive elements (lanes 0-7 block 2p, 8-15 block 2p + 1), which is converted
//          (exactly), multiplied by the two blocks' scale product (exactly, a power of two) and
//          added to lane l's float32 sum, pair after pair;
// then the sixteen lanes are added in the tree of sum_lanes.
#include <type_traits>

#include "mx/kernels/cpu/element_decoders.h"
#include "mx/kernels/cpu/element_int8_values.h"
#include "mx/kernels/cpu/matmul_kernels.h"

namespace mx::cpu::detail {
namespace MX_CPU_ISA {
namespace {

constexpr int kRows = 4;  // rows of W per tile
// Rows of x per tile: the kRows * kXRows accumulators stay in registers (32 zmm on AVX-512; on
// AVX2 a sixteen-lane vector takes two of the 16 ymm).
#if defined(__AVX512F__)
constexpr int kXRows = 2;
#else
constexpr int kXRows = 1;
#endif

template <int kBits>
constexpr int64_t block_bytes() {
  return 32 * kBits / 8;
}

// Reading W from memory, the hardware prefetcher falls behind the short rows of a tile; each
// step asks for the same share of the next tile (the rows right after this one's), so it
// arrives while this tile is computed. Prefetches past W's end are harmless hints.
template <int kBits, int kTileRows>
inline void prefetch_next_tile(const uint8_t* next_codes, const uint8_t* next_scales,
                               int64_t block) {
  constexpr int64_t kStep = kTileRows * block_bytes<kBits>();
  for (int64_t line = 0; line < kStep; line += 64) prefetch(next_codes + block * kStep + line);
  if (block % 16 == 0) prefetch(next_scales + block * kTileRows);
}

// Walks W's rows [first_row, end_row) in tiles of kRows (the rows left over one at a time) and
// x's m rows in tiles of kXRows (likewise), calling tile(rows, x_rows, n0, m0) with the tile's
// shape as integral constants.
template <class Tile>
void for_each_tile(int64_t m, int64_t first_row, int64_t end_row, const Tile& tile) {
  using One = std::integral_constant<int, 1>;
  using Rows = std::integral_constant<int, kRows>;
  using XRows = std::integral_constant<int, kXRows>;
  for (int64_t n0 = first_row; n0 < end_row; n0 += kRows) {
    if (n0 + kRows > end_row) {
      for (int64_t n = n0; n < end_row; ++n) {
        for (int64_t m0 = 0; m0 < m; ++m0) tile(One{}, One{}, n, m0);
      }
      return;
    }
    int64_t m0 = 0;
    for (; m0 + kXRows <= m; m0 += kXRows) tile(Rows{}, XRows{}, n0, m0);
    for (; m0 < m; ++m0) tile(Rows{}, One{}, n0, m0);
  }
}

// ---------------------------------------------------------------------------------------------
// Exact mode.

template <int kBits, int kTileRows, int kTileXRows, class Decoder>
void exact_tile(const ExactMatmulJob& job, const Decoder& decoder, int64_t n0, int64_t m0) {
  const int64_t nb = job.w.blocks_per_row;
  const int64_t x_stride = nb * 32;
  F32x16 acc[kTileXRows][kTileRows];
  for (auto& row : acc) {
    for (F32x16& a : row) a = splat(0.0f);
  }
  const uint8_t* codes[kTileRows];
  const uint8_t* scales[kTileRows];
  for (int r = 0; r < kTileRows; ++r) {
    codes[r] = job.w.elements + (n0 + r) * nb * block_bytes<kBits>();
    scales[r] = job.w.scales + (n0 + r) * nb;
  }
  const uint8_t* next_codes = codes[0] + kTileRows * nb * block_bytes<kBits>();
  const uint8_t* next_scales = scales[0] + kTileRows * nb;
  for (int64_t b = 0; b < nb; ++b) {
    prefetch_next_tile<kBits, kTileRows>(next_codes, next_scales, b);
    for (int r = 0; r < kTileRows; ++r) {
      const F32x16 scale = splat(job.scale_values[scales[r][b]]);
      const Pairs w = decoder.template decode<kBits>(codes[r] + b * block_bytes<kBits>(), scale);
      for (int i = 0; i < kTileXRows; ++i) {
        const float* x = job.x + (m0 + i) * x_stride + b * 32;
        acc[i][r] = acc[i][r] + w.even * load_f32(x);
        acc[i][r] = acc[i][r] + w.odd * load_f32(x + 16);
      }
    }
  }
  for (int i = 0; i < kTileXRows; ++i) {
    for (int r = 0; r < kTileRows; ++r) job.y[(m0 + i) * job.n + n0 + r] = sum_lanes(acc[i][r]);
  }
}

void exact_rows(const ExactMatmulJob& job, int64_t first_row, int64_t end_row) {
  with_decoder(traits(job.w.format), [&](auto bits, const auto& decoder) {
    for_each_tile(job.m, first_row, end_row, [&](auto rows, auto x_rows, int64_t n0, int64_t m0) {
      exact_tile<decltype(bits)::value, decltype(rows)::value, decltype(x_rows)::value>(
          job, decoder, n0, m0);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Fast mode.

template <int kBits, int kTileRows, int kTileXRows, class Values>
void fast_tile(const FastMatmulJob& job, const Values& values, int64_t n0, int64_t m0) {
  const int64_t nb = job.w.blocks_per_row;
  F32x16 acc[kTileXRows][kTileRows];
  for (auto& row : acc) {
    for (F32x16& a : row) a = splat(0.0f);
  }
  const uint8_t* codes[kTileRows];
  const uint8_t* scales[kTileRows];
  for (int r = 0; r < kTileRows; ++r) {
    codes[r] = job.w.elements + (n0 + r) * nb * block_bytes<kBits>();
    scales[r] = job.w.scales + (n0 + r) * nb;
  }
  const int8_t* x_codes[kTileXRows];
  const float* x_scales[kTileXRows];
  const int32_t* x_bias[kTileXRows];
  for (int i = 0; i < kTileXRows; ++i) {
    x_codes[i] = job.x_codes + (m0 + i) * job.pairs * 64;
    x_scales[i] = job.x_pair_scales + (m0 + i) * job.pairs * 16;
    x_bias[i] = job.x_quad_bias + (m0 + i) * job.pairs * 16;
  }
  // One pair of blocks (b, b + 1), or the lone last block b when kLone.
  const uint8_t* next_codes = codes[0] + kTileRows * nb * block_bytes<kBits>();
  const uint8_t* next_scales = scales[0] + kTileRows * nb;
  auto step = [&]<bool kLone>(int64_t p) {
    const int64_t b = 2 * p;
    prefetch_next_tile<kBits, kTileRows>(next_codes, next_scales, b);
    prefetch_next_tile<kBits, kTileRows>(next_codes, next_scales, b + 1);
    for (int r = 0; r < kTileRows; ++r) {
      const uint8_t* packed = codes[r] + b * block_bytes<kBits>();
      const I8x64 w = values(kLone ? unpack_single<kBits>(packed) : unpack_pair<kBits>(packed));
      const float scale_high = kLone ? 0.0f : job.scale_values[scales[r][b + 1]];
      const F32x16 w_scale = splat_halves(job.scale_values[scales[r][b]], scale_high);
      for (int i = 0; i < kTileXRows; ++i) {
        const I32x16 q =
            dot_quads(w, load_i8x64(x_codes[i] + 64 * p), load_i32x16(x_bias[i] + 16 * p));
        acc[i][r] = acc[i][r] + to_f32(q) * (w_scale * load_f32(x_scales[i] + 16 * p));
      }
    }
  };
  for (int64_t p = 0; p < nb / 2; ++p) step.template operator()<false>(p);
  if (nb % 2 == 1) step.template operator()<true>(nb / 2);
  for (int i = 0; i < kTileXRows; ++i) {
    for (int r = 0; r < kTileRows; ++r) job.y[(m0 + i) * job.n + n0 + r] = sum_lanes(acc[i][r]);
  }
}

void fast_rows(const FastMatmulJob& job, int64_t first_row, int64_t end_row) {
  with_int8_values(traits(job.w.format), [&](auto bits, const auto& values) {
    for_each_tile(job.m, first_row, end_row, [&](auto rows, auto x_rows, int64_t n0, int64_t m0) {
      fast_tile<decltype(bits)::value, decltype(rows)::value, decltype(x_rows)::value>(job, values,
                                                                                       n0, m0);
    });
  });
}

}  // namespace
}  // namespace MX_CPU_ISA

MatmulKernels MX_CPU_MATMUL_FN() {
  return {&MX_CPU_ISA::exact_rows, &MX_CPU_ISA::fast_rows};
}

}  // namespace mx::cpu::detail
