// The stages of the MX x MX kernel through bfloat16 tensor cores (gemm_mx_bf16.cu): the
// parameters, the copy of whole MX blocks of codes into per-thread slots of shared memory, and
// their decode into the swizzled bfloat16 tiles that wgmma reads (wgmma.cuh).
//
// A stage covers 64 values of K (two MX blocks) of a 128 x 256 output tile: 128 rows of A and 256
// of B, 384 tile rows of 128 bytes of bfloat16 each. A thread owns whole blocks (a block = 32
// codes of one row of A or B): it copies them into its slots and decodes them itself, so the
// copies it waits for are its own and need no barrier. Slot i of a code stage holds one block per
// decoding thread, kSlotThreads of them, chunk c of thread t at (c * kSlotThreads + t) * chunk.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <type_traits>

#include "mx/kernels/cuda/gemm_epilogue.cuh"
#include "mx/kernels/cuda/mx_decode.cuh"
#include "mx/kernels/cuda/mx_gemm.h"
#include "mx/kernels/cuda/wgmma.cuh"

namespace mx::cuda::gemm_stage {

constexpr int kTileM = 128;
constexpr int kTileN = 256;
constexpr int kBlocksPerStage = 2;  // 64 values of K
constexpr int kTileRows = kTileM + kTileN;
constexpr int kRowBytes = 128;  // 64 bfloat16 values of one tile row
constexpr int kTileBytesA = kTileM * kRowBytes;
constexpr int kStageBytes = kTileRows * kRowBytes;
constexpr int kGroupTilesM = 8;  // tiles of M that walk N together, for L2 reuse

struct Operand {
  const uint8_t* codes;
  const uint8_t* scales;
  int64_t rows;
  int64_t row_bytes;
  DecodeFormat format;
};

struct Params {
  Operand a;
  Operand b;
  int64_t m;
  int64_t n;
  int64_t k;
  int64_t blocks_k;
  int64_t stages;
  int tiles_m;
  int tiles_n;
  const float* bias;
  void* d;
  bool out_bf16;
  bool pair_stores;
};

// One block a thread copies and decodes in every stage.
struct RowBlock {
  const uint8_t* codes;   // row start, null past the matrix
  const uint8_t* scales;  // row start
  int tile_row;           // 0..383: A rows first
  int half;               // which of the stage's two blocks
};

// The block of `row` (of A when tile_row < kTileM, else of B) at `half`, for the tile at m0, n0.
__device__ __forceinline__ RowBlock row_block(const Params& P, int64_t m0, int64_t n0, int tile_row,
                                              int half) {
  const bool is_a = tile_row < kTileM;
  const Operand& op = is_a ? P.a : P.b;
  const int64_t row = is_a ? m0 + tile_row : n0 + tile_row - kTileM;
  RowBlock rb;
  rb.codes = row < op.rows ? op.codes + row * op.row_bytes : nullptr;
  rb.scales = op.scales + (row < op.rows ? row : 0) * P.blocks_k;
  rb.tile_row = tile_row;
  rb.half = half;
  return rb;
}

// The output tile of this CTA: groups of kGroupTilesM tiles of M sweep N together.
__device__ __forceinline__ void tile_origin(const Params& P, int64_t* m0, int64_t* n0) {
  const int per_group = kGroupTilesM * P.tiles_n;
  const int group = blockIdx.x / per_group;
  const int first_m = group * kGroupTilesM;
  const int group_m = min(P.tiles_m - first_m, kGroupTilesM);
  const int in_group = blockIdx.x % per_group;
  *m0 = int64_t(first_m + in_group % group_m) * kTileM;
  *n0 = int64_t(in_group / group_m) * kTileN;
}

template <int kBytes>
__device__ __forceinline__ void copy_async(uint32_t dst, const void* src, bool valid) {
  const int n = valid ? kBytes : 0;  // 0: zero-fill without reading
  if constexpr (kBytes == 16) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(n));
  } else {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;\n" ::"r"(dst), "l"(src), "r"(n));
  }
}

// One block of codes of `kBits` bits: its bytes, and the asynchronous copies that move it (the
// largest size that divides it; rows of whole blocks keep every block that aligned).
template <int kBits>
struct BlockCopy {
  static constexpr int kBytes = 4 * kBits;
  static constexpr int kChunk = kBytes % 16 == 0 ? 16 : 8;
  static constexpr int kChunks = kBytes / kChunk;
};

template <int kSlotThreads>
struct Slots {
  static constexpr int kSlotBytes = 32 * kSlotThreads;  // one block of at most 32 bytes each

  // Starts copying stage s's block of `rb` into `slot` (as thread `t`); returns its scale byte.
  template <int kBits>
  static __device__ __forceinline__ uint32_t load(const Params& P, const Operand& op,
                                                  const RowBlock& rb, int64_t s, uint8_t* slot,
                                                  int t) {
    using Copy = BlockCopy<kBits>;
    const int64_t kb = s * kBlocksPerStage + rb.half;
    const bool valid = rb.codes != nullptr && kb < P.blocks_k;
    const uint8_t* src = valid ? rb.codes + kb * Copy::kBytes : op.codes;
    const uint32_t dst = shared_address(slot) + t * Copy::kChunk;
#pragma unroll
    for (int c = 0; c < Copy::kChunks; ++c) {
      copy_async<Copy::kChunk>(dst + c * kSlotThreads * Copy::kChunk, src + c * Copy::kChunk,
                               valid);
    }
    return valid ? __ldg(rb.scales + kb) : 0u;
  }

  template <int kBits>
  static __device__ __forceinline__ void read(const uint8_t* slot, int t, uint32_t (&w)[8]) {
    using Copy = BlockCopy<kBits>;
#pragma unroll
    for (int i = 0; i < 8; ++i) w[i] = 0;
    const uint8_t* mine = slot + t * Copy::kChunk;
#pragma unroll
    for (int c = 0; c < Copy::kChunks; ++c) {
      if constexpr (Copy::kChunk == 16) {
        const uint4 v = *reinterpret_cast<const uint4*>(mine + c * kSlotThreads * 16);
        w[4 * c] = v.x;
        w[4 * c + 1] = v.y;
        w[4 * c + 2] = v.z;
        w[4 * c + 3] = v.w;
      } else {
        const uint2 v = *reinterpret_cast<const uint2*>(mine + c * kSlotThreads * 8);
        w[2 * c] = v.x;
        w[2 * c + 1] = v.y;
      }
    }
  }

  // Decodes `kCount` consecutive slots of one operand (codes of `kBits` bits) into the bfloat16
  // tiles at `stage`. The blocks go through the common path side by side (no branch between
  // them, so their instructions interleave); if any is unusual, all are redone exactly from
  // shared memory.
  template <int kBits, int kCount>
  static __device__ __forceinline__ void decode(const Params& P, const Operand& op,
                                                const RowBlock* rb, int64_t s, const uint8_t* slots,
                                                const uint32_t* scale, uint8_t* stage, int t) {
    uint32_t w[kCount][8];
    bool plain = true;
    int valid[kCount];
#pragma unroll
    for (int i = 0; i < kCount; ++i) {
      read<kBits>(slots + i * kSlotBytes, t, w[i]);
      valid[i] = valid_values(P, rb[i], s);
      plain = plain && block_is_plain<kBits>(w[i], scale[i], op.format, valid[i]);
    }
    uint32_t out[kCount][16];
#pragma unroll
    for (int i = 0; i < kCount; ++i) decode_values<kBits>(w[i], op.format, out[i]);
    if (plain) {
#pragma unroll
      for (int i = 0; i < kCount; ++i) scale_plain_block<kBits>(scale[i], op.format, out[i]);
    } else {
#pragma unroll
      for (int i = 0; i < kCount; ++i) {
        uint32_t again[8];
        read<kBits>(slots + i * kSlotBytes, t, again);
        decode_any_block<kBits>(again, scale[i], op.format, valid[i], out[i]);
      }
    }
#pragma unroll
    for (int i = 0; i < kCount; ++i) store(rb[i], out[i], stage);
  }

  // The values of K in rb's block of stage s (32 but in a row's last block).
  static __device__ __forceinline__ int valid_values(const Params& P, const RowBlock& rb,
                                                     int64_t s) {
    const int64_t kb = s * kBlocksPerStage + rb.half;
    return kb == P.blocks_k - 1 ? int(P.k - 32 * kb) : 32;
  }

  // A decoded block into its tile row, 16-byte chunk c at c ^ (row % 8) (the 128-byte swizzle).
  static __device__ __forceinline__ void store(const RowBlock& rb, const uint32_t (&out)[16],
                                               uint8_t* stage) {
    uint8_t* line = stage + rb.tile_row * kRowBytes;
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int chunk = (rb.half * 4 + q) ^ (rb.tile_row & 7);
      *reinterpret_cast<uint4*>(line + chunk * 16) =
          make_uint4(out[4 * q], out[4 * q + 1], out[4 * q + 2], out[4 * q + 3]);
    }
  }
};

// The 64 rows x 256 columns of D that a warpgroup's m64n256 accumulators hold, stored with the
// bias (`row0`: the warpgroup's first row of the tile; `thread`: its index in the warpgroup).
__device__ __forceinline__ void store_tile(const Params& P, int64_t m0, int64_t n0, int row0,
                                           int thread, const float (&acc)[128]) {
  const int warp = thread / 32;
  const int lane = thread % 32;
  const int64_t row = m0 + row0 + warp * 16 + lane / 4;
#pragma unroll
  for (int j = 0; j < 32; ++j) {
    const int64_t col = n0 + 8 * j + 2 * (lane % 4);
    store_pair(P, row, col, acc[4 * j], acc[4 * j + 1]);
    store_pair(P, row + 8, col, acc[4 * j + 2], acc[4 * j + 3]);
  }
}

inline std::string make_operand(const MxMatrix& x, int64_t rows, int64_t k, const char* name,
                                Operand* op) {
  op->codes = x.elements;
  op->scales = x.scales;
  op->rows = rows;
  op->row_bytes = mx_row_code_bytes(x.format, k);
  op->format = make_decode_format(x.format);
  // Blocks are copied in 16-byte pieces (8-byte for the 24- and 8-byte blocks of 6- and 2-bit
  // codes); every block of a row is then aligned when the first is.
  const int block_bytes = 4 * traits(x.format).bits;
  const int chunk = block_bytes % 16 == 0 ? 16 : 8;
  if (reinterpret_cast<uintptr_t>(x.elements) % chunk != 0) {
    return std::string("mx_gemm: ") + name + "'s codes must be " + std::to_string(chunk) +
           "-byte aligned";
  }
  return {};
}

// Host side: the parameters of args, and the number of output tiles; or a reason.
inline std::string make_params(const MxGemmArgs& args, Params* P, int64_t* tiles) {
  *P = Params{};
  if (auto e = make_operand(args.a, args.m, args.k, "A", &P->a); !e.empty()) return e;
  if (auto e = make_operand(args.b, args.n, args.k, "B", &P->b); !e.empty()) return e;
  P->m = args.m;
  P->n = args.n;
  P->k = args.k;
  P->blocks_k = mx_row_scale_bytes(args.k);
  P->stages = (P->blocks_k + kBlocksPerStage - 1) / kBlocksPerStage;
  P->tiles_m = int((args.m + kTileM - 1) / kTileM);
  P->tiles_n = int((args.n + kTileN - 1) / kTileN);
  P->bias = args.bias;
  P->d = args.d;
  P->out_bf16 = args.out_dtype == DType::kBF16;
  P->pair_stores = args.n % 2 == 0 && reinterpret_cast<uintptr_t>(args.d) % 8 == 0;
  *tiles = int64_t(P->tiles_m) * P->tiles_n;
  if (*tiles > int64_t(0x7FFFFFFF) / kGroupTilesM) return "mx_gemm: too many output tiles";
  return {};
}

// Calls Launch<bits of A, bits of B>::run(P, tiles, stream) for the operands' code widths.
template <template <int, int> class Launch>
std::string launch_for_bits(int bits_a, int bits_b, const Params& P, unsigned tiles,
                            cudaStream_t stream) {
  auto for_b = [&](auto bits_a_constant) -> std::string {
    constexpr int kA = decltype(bits_a_constant)::value;
    switch (bits_b) {
      case 8:
        return Launch<kA, 8>::run(P, tiles, stream);
      case 6:
        return Launch<kA, 6>::run(P, tiles, stream);
      case 4:
        return Launch<kA, 4>::run(P, tiles, stream);
      default:
        return Launch<kA, 2>::run(P, tiles, stream);
    }
  };
  switch (bits_a) {
    case 8:
      return for_b(std::integral_constant<int, 8>{});
    case 6:
      return for_b(std::integral_constant<int, 6>{});
    case 4:
      return for_b(std::integral_constant<int, 4>{});
    default:
      return for_b(std::integral_constant<int, 2>{});
  }
}

}  // namespace mx::cuda::gemm_stage
