// MXFP8 x MXFP8 through the FP8 mma.sync instruction, with the MX scales applied per block of 32.
//
// On Hopper, mma.sync on FP8 codes is not a native tensor-core operation: the compiled code
// converts the codes to FP16 and runs FP16 tensor-core products, so this kernel runs at about the
// speed of the bfloat16 decode path. Hopper's native FP8 products (wgmma) sum each block's 32
// products at less than float32 precision, which the tests reject (docs/NUMERICS.md §19).
//
// One mma.sync m16n8k32 multiplies a 16 x 32 piece of A by a 32 x 8 piece of B: exactly one MX
// block of each row and column. Each product starts from zero, so every block's partial sums
// leave the tensor core on their own, and the float32 accumulators take them times the two
// blocks' scales: acc += p * (sa * sb). E8M0 scales are powers of two, so sa * sb and p * (sa *
// sb) are exact while they stay in float32's normal range; the result is then the float32 sum of
// the blocks' exact contributions, in block order.
//
// A CTA of 8 warps computes a 128 x 128 tile of D, each warp 64 x 32 (4 x 4 mma tiles). A stage
// holds 128 values of K (four blocks) of both operands: codes copied with cp.async into rows
// padded to 144 bytes (ldmatrix reads them without bank conflicts), scales widened to float32.
// Three stages rotate: while stage t is multiplied, stage t + 2 is in flight. Codes past K are
// zero-filled by the copies (a NaN code in a padding slot would otherwise reach the sums).
#include <cuda_bf16.h>

#include <string>

#include "mx/kernels/cuda/gemm_epilogue.cuh"
#include "mx/kernels/cuda/gemm_mxfp8_fp8.h"
#include "mx/kernels/cuda/launch_with_shared_memory.cuh"
#include "mx/kernels/cuda/mma_sync.cuh"

namespace mx::cuda {
namespace {

constexpr int kTileM = 128;
constexpr int kTileN = 128;
constexpr int kStageK = 128;  // values (bytes) of K per stage
constexpr int kBlocksPerStage = kStageK / 32;
constexpr int kThreads = 256;
constexpr int kStages = 3;
constexpr int kRowPitch = kStageK + 16;
constexpr int kTileBytes = kTileM * kRowPitch;  // kTileN == kTileM
constexpr int kScaleBytes = (kTileM + kTileN) * kBlocksPerStage * 4;
constexpr int kStageBytes = 2 * kTileBytes + kScaleBytes;
constexpr int kSharedBytes = kStages * kStageBytes;
constexpr int kGroupTilesM = 8;
constexpr int kChunksPerRow = kStageK / 16;
constexpr int kChunksPerThread = kTileM * kChunksPerRow / kThreads;    // per operand
constexpr int kScalesPerThread = kTileM * kBlocksPerStage / kThreads;  // per operand
static_assert(kTileM == kTileN && kChunksPerThread == 4 && kScalesPerThread == 2);

struct Fp8Operand {
  const uint8_t* codes;
  const uint8_t* scales;
  int64_t rows;
};

struct Params {
  Fp8Operand a, b;
  int64_t m, n, k;
  int64_t row_bytes;  // blocks_k * 32
  int64_t blocks_k;
  int64_t stages;
  int tiles_m, tiles_n;
  const float* bias;
  void* d;
  bool out_bf16;
  bool pair_stores;
};

// An E8M0 scale byte as float32: 2^(e - 127), 2^-127 a subnormal, 0xFF NaN.
__device__ __forceinline__ float scale_value(uint32_t e) {
  if (e == 255u) return __int_as_float(0x7FC00000);
  return e == 0u ? __int_as_float(0x00400000) : __int_as_float(int(e << 23));
}

// `bytes` (0 to 16) of src, the rest of the 16 zero-filled.
__device__ __forceinline__ void copy16(uint32_t dst, const void* src, int bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(bytes));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}

// p = a b for one m16n8k32 tile of FP8 codes, from zero (fragment layouts: PTX ISA, "Matrix
// Fragments for mma.m16n8k32").
template <bool kE5m2A, bool kE5m2B>
__device__ __forceinline__ void mma_fp8(float (&p)[4], const uint32_t (&a)[4], uint32_t b0,
                                        uint32_t b1) {
  const float zero = 0.0f;
#define MX_FP8_MMA(TA, TB)                                                                  \
  asm volatile("mma.sync.aligned.m16n8k32.row.col.f32." TA "." TB                           \
               ".f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %10, %10, %10};\n" \
               : "=f"(p[0]), "=f"(p[1]), "=f"(p[2]), "=f"(p[3])                             \
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1), "f"(zero))
  if constexpr (!kE5m2A && !kE5m2B) {
    MX_FP8_MMA("e4m3", "e4m3");
  } else if constexpr (!kE5m2A) {
    MX_FP8_MMA("e4m3", "e5m2");
  } else if constexpr (!kE5m2B) {
    MX_FP8_MMA("e5m2", "e4m3");
  } else {
    MX_FP8_MMA("e5m2", "e5m2");
  }
#undef MX_FP8_MMA
}

// Stage s's codes of one operand (the tile's rows from row0) into `tile`: this thread's four
// 16-byte pieces, zero-filled past K and past the operand's rows.
__device__ __forceinline__ void copy_codes(const Params& P, const Fp8Operand& op, int64_t row0,
                                           int64_t s, uint8_t* tile) {
#pragma unroll
  for (int i = 0; i < kChunksPerThread; ++i) {
    const int c = int(threadIdx.x) + i * kThreads;
    const int r = c / kChunksPerRow, piece = c % kChunksPerRow;
    const int64_t row = row0 + r, first = s * kStageK + piece * 16;
    const int64_t left = row < op.rows ? P.k - first : 0;
    const int bytes = left <= 0 ? 0 : left >= 16 ? 16 : int(left);
    const uint8_t* src = bytes > 0 ? op.codes + row * P.row_bytes + first : op.codes;
    copy16(shared_address(tile + r * kRowPitch + piece * 16), src, bytes);
  }
}

// This thread's scale bytes of stage s for one operand (0 past K and past the rows, where the
// codes are zero).
__device__ __forceinline__ void load_scales(const Params& P, const Fp8Operand& op, int64_t row0,
                                            int64_t s, uint32_t (&bytes)[kScalesPerThread]) {
#pragma unroll
  for (int i = 0; i < kScalesPerThread; ++i) {
    const int e = int(threadIdx.x) + i * kThreads;
    const int64_t row = row0 + e / kBlocksPerStage,
                  block = s * kBlocksPerStage + e % kBlocksPerStage;
    bytes[i] = row < op.rows && block < P.blocks_k
                   ? uint32_t(__ldg(op.scales + row * P.blocks_k + block))
                   : 0xFFFFFFFFu;
  }
}

// Scales as float32, [tile row][block of the stage]; 0xFFFFFFFF (nothing there) becomes 0.
__device__ __forceinline__ void store_scales(const uint32_t (&bytes)[kScalesPerThread],
                                             float* scales) {
#pragma unroll
  for (int i = 0; i < kScalesPerThread; ++i) {
    scales[int(threadIdx.x) + i * kThreads] =
        bytes[i] == 0xFFFFFFFFu ? 0.0f : scale_value(bytes[i]);
  }
}

struct StageTiles {
  uint8_t* a;
  uint8_t* b;
  float* scales_a;  // [kTileM][kBlocksPerStage]
  float* scales_b;  // [kTileN][kBlocksPerStage]
};

__device__ __forceinline__ StageTiles stage_tiles(uint8_t* shared, int64_t s) {
  uint8_t* base = shared + (s % kStages) * kStageBytes;
  return {base, base + kTileBytes, reinterpret_cast<float*>(base + 2 * kTileBytes),
          reinterpret_cast<float*>(base + 2 * kTileBytes) + kTileM * kBlocksPerStage};
}

template <bool kE5m2A, bool kE5m2B>
__global__ void __launch_bounds__(kThreads, 1)
    mxfp8_gemm_fp8_kernel(__grid_constant__ const Params P) {
  extern __shared__ __align__(16) uint8_t shared[];
  // Tile order: groups of kGroupTilesM tiles of M sweep N together, so that the CTAs in flight
  // share their B tiles in L2.
  const int per_group = kGroupTilesM * P.tiles_n;
  const int group_index = int(blockIdx.x) / per_group;
  const int first_m = group_index * kGroupTilesM;
  const int group_m = min(P.tiles_m - first_m, kGroupTilesM);
  const int in_group_index = int(blockIdx.x) % per_group;
  const int64_t m0 = int64_t(first_m + in_group_index % group_m) * kTileM;
  const int64_t n0 = int64_t(in_group_index / group_m) * kTileN;
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const int warp_m = warp / 4, warp_n = warp % 4;  // 2 x 4 warps of 64 x 32
  const int group = lane / 4, in_group = lane % 4;

  float acc[4][4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
#pragma unroll
    for (int j = 0; j < 4; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;
    }
  }

  // The first kStages - 1 stages; their scales go straight to shared memory.
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < P.stages) {
      const StageTiles st = stage_tiles(shared, s);
      copy_codes(P, P.a, m0, s, st.a);
      copy_codes(P, P.b, n0, s, st.b);
      uint32_t sa[kScalesPerThread], sb[kScalesPerThread];
      load_scales(P, P.a, m0, s, sa);
      load_scales(P, P.b, n0, s, sb);
      store_scales(sa, st.scales_a);
      store_scales(sb, st.scales_b);
    }
    cp_async_commit();
  }

  // ldmatrix rows: A's 16 x 32 piece as four 8 x 16-byte matrices (a0..a3), B's two 8-column
  // pieces side by side (b0 and b1 of each).
  const int a_row = (lane % 8) + ((lane / 8) % 2) * 8, a_byte = (lane / 16) * 16;
  const int b_row = (lane % 8) + (lane / 16) * 8, b_byte = ((lane / 8) % 2) * 16;

  for (int64_t t = 0; t < P.stages; ++t) {
    cp_async_wait<kStages - 2>();
    __syncthreads();  // stage t is everyone's; stage t - 1's buffer is free
    const int64_t next = t + kStages - 1;
    uint32_t next_sa[kScalesPerThread], next_sb[kScalesPerThread];
    if (next < P.stages) {
      const StageTiles nt = stage_tiles(shared, next);
      copy_codes(P, P.a, m0, next, nt.a);
      copy_codes(P, P.b, n0, next, nt.b);
      load_scales(P, P.a, m0, next, next_sa);
      load_scales(P, P.b, n0, next, next_sb);
    }
    cp_async_commit();

    const StageTiles st = stage_tiles(shared, t);
    const uint32_t tile_a = shared_address(st.a) + (warp_m * 64 + a_row) * kRowPitch + a_byte;
    const uint32_t tile_b = shared_address(st.b) + (warp_n * 32 + b_row) * kRowPitch + b_byte;
#pragma unroll 1
    for (int kb = 0; kb < kBlocksPerStage; ++kb) {
      uint32_t b[4][2];
#pragma unroll
      for (int j = 0; j < 4; j += 2) {
        uint32_t r[4];
        ldmatrix_x4(r, tile_b + j * 8 * kRowPitch + kb * 32);
        b[j][0] = r[0], b[j][1] = r[1], b[j + 1][0] = r[2], b[j + 1][1] = r[3];
      }
      float col_scale[4][2];
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int col = warp_n * 32 + j * 8 + in_group * 2;
        col_scale[j][0] = st.scales_b[col * kBlocksPerStage + kb];
        col_scale[j][1] = st.scales_b[(col + 1) * kBlocksPerStage + kb];
      }
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        uint32_t a[4];
        ldmatrix_x4(a, tile_a + i * 16 * kRowPitch + kb * 32);
        const int row = warp_m * 64 + i * 16 + group;
        const float top = st.scales_a[row * kBlocksPerStage + kb];
        const float bottom = st.scales_a[(row + 8) * kBlocksPerStage + kb];
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          float p[4];
          mma_fp8<kE5m2A, kE5m2B>(p, a, b[j][0], b[j][1]);
          acc[i][j][0] = fmaf(p[0], top * col_scale[j][0], acc[i][j][0]);
          acc[i][j][1] = fmaf(p[1], top * col_scale[j][1], acc[i][j][1]);
          acc[i][j][2] = fmaf(p[2], bottom * col_scale[j][0], acc[i][j][2]);
          acc[i][j][3] = fmaf(p[3], bottom * col_scale[j][1], acc[i][j][3]);
        }
      }
    }
    if (next < P.stages) {
      // Stage t + 2's buffer was last read in iteration t - 1, before this iteration's barrier.
      const StageTiles nt = stage_tiles(shared, next);
      store_scales(next_sa, nt.scales_a);
      store_scales(next_sb, nt.scales_b);
    }
  }
  cp_async_wait<0>();

#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t row = m0 + warp_m * 64 + i * 16 + group;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t col = n0 + warp_n * 32 + j * 8 + in_group * 2;
      store_pair(P, row, col, acc[i][j][0], acc[i][j][1]);
      store_pair(P, row + 8, col, acc[i][j][2], acc[i][j][3]);
    }
  }
}

template <bool kE5m2A, bool kE5m2B>
std::string launch_kernel(const Params& P, unsigned grid, cudaStream_t stream) {
  return launch_with_shared_memory<&mxfp8_gemm_fp8_kernel<kE5m2A, kE5m2B>>(
      P, grid, kThreads, kSharedBytes, stream, "mx_gemm_fp8");
}

}  // namespace

std::string launch_mxfp8_gemm_fp8_hopper(const MxGemmArgs& args, cudaStream_t stream) {
  for (const MxMatrix* x : {&args.a, &args.b}) {
    if (reinterpret_cast<uintptr_t>(x->elements) % 16 != 0) {
      return "mx_gemm_fp8: codes must be 16-byte aligned";
    }
  }
  Params P{};
  P.a = {args.a.elements, args.a.scales, args.m};
  P.b = {args.b.elements, args.b.scales, args.n};
  P.m = args.m;
  P.n = args.n;
  P.k = args.k;
  P.blocks_k = mx_row_scale_bytes(args.k);
  P.row_bytes = P.blocks_k * 32;
  P.stages = (P.blocks_k + kBlocksPerStage - 1) / kBlocksPerStage;
  P.bias = args.bias;
  P.d = args.d;
  P.out_bf16 = args.out_dtype == DType::kBF16;
  P.pair_stores = args.n % 2 == 0 && reinterpret_cast<uintptr_t>(args.d) % 8 == 0;
  P.tiles_m = int((args.m + kTileM - 1) / kTileM);
  P.tiles_n = int((args.n + kTileN - 1) / kTileN);
  const int64_t tiles = int64_t(P.tiles_m) * P.tiles_n;
  if (tiles > int64_t(0x7FFFFFFF) / kGroupTilesM) return "mx_gemm_fp8: too many output tiles";
  const unsigned grid = unsigned(tiles);
  const bool e5m2_a = args.a.format == ElementFormat::kE5M2;
  const bool e5m2_b = args.b.format == ElementFormat::kE5M2;
  if (!e5m2_a && !e5m2_b) return launch_kernel<false, false>(P, grid, stream);
  if (!e5m2_a) return launch_kernel<false, true>(P, grid, stream);
  if (!e5m2_b) return launch_kernel<true, false>(P, grid, stream);
  return launch_kernel<true, true>(P, grid, stream);
}

}  // namespace mx::cuda
