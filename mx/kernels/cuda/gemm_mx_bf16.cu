// MX x MX matrix product on Hopper: each stage's codes are copied to shared memory, decoded to
// bfloat16 tiles there (mx_decode.cuh), and multiplied by wgmma with float32 accumulators.
//
// A CTA of two warpgroups computes a 128 x 256 tile of D, 64 rows per warpgroup. A stage covers
// 64 values of K (two MX blocks). Every thread copies and decodes three whole blocks of a stage
// (a block = 32 codes of one row of A or B), so the copies it waits for are its own and need no
// barrier. The pipeline keeps one stage of wgmma in flight while the next stage is decoded:
//
//   iteration t: barrier (stage t decoded) -> issue wgmma on stage t -> start copying stage t+2
//                -> decode stage t+1 into the bfloat16 buffer that stage t-2 used -> wait until
//                at most stage t's wgmma is pending (so stage t-1's buffer is free next time).
#include <cuda_bf16.h>

#include <algorithm>

#include "mx/kernels/cuda/gemm_epilogue.cuh"
#include "mx/kernels/cuda/gemm_mx_bf16.h"
#include "mx/kernels/cuda/mma_sync.cuh"
#include "mx/kernels/cuda/mx_decode.cuh"
#include "mx/kernels/cuda/shared_memory_limit.h"
#include "mx/kernels/cuda/wgmma.cuh"

namespace mx::cuda {
namespace {

constexpr int kTileM = 128;
constexpr int kTileN = 256;
constexpr int kBlocksPerStage = 2;  // 64 values of K
constexpr int kThreads = 256;
constexpr int kTileRows = kTileM + kTileN;
constexpr int kRowBlocksPerThread = kTileRows * kBlocksPerStage / kThreads;  // 3
constexpr int kRowBytes = 128;  // 64 bfloat16 values of one tile row
constexpr int kTileBytesA = kTileM * kRowBytes;
constexpr int kStageBytes = kTileRows * kRowBytes;
constexpr int kBf16Stages = 3;
constexpr int kCodeSlotBytes = 32 * kThreads;  // one block of at most 32 bytes per thread
constexpr int kCodeStageBytes = kRowBlocksPerThread * kCodeSlotBytes;
constexpr int kCodeStages = 2;
constexpr int kSharedBytes = kBf16Stages * kStageBytes + kCodeStages * kCodeStageBytes + 1024;
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

// The blocks a thread copies and decodes in every stage: slot 0 holds a block of A (row
// threadIdx % 128, the stage's first or second block by threadIdx / 128), slots 1 and 2 the
// first and second block of B's row threadIdx. Each slot's operand is the same for every thread,
// so each decodes with one format's code.
struct RowBlock {
  const uint8_t* codes;   // row start, null past the matrix
  const uint8_t* scales;  // row start
  int tile_row;           // 0..383: A rows first
  int half;               // which of the stage's two blocks
};
__host__ __device__ constexpr bool slot_is_a(int i) {
  return i == 0;
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

template <int kBits>
__device__ __forceinline__ uint32_t load_slot(const Params& P, const Operand& op,
                                              const RowBlock& rb, int64_t s, uint8_t* slot) {
  using Copy = BlockCopy<kBits>;
  const int64_t kb = s * kBlocksPerStage + rb.half;
  const bool valid = rb.codes != nullptr && kb < P.blocks_k;
  const uint8_t* src = valid ? rb.codes + kb * Copy::kBytes : op.codes;
  const uint32_t dst = wgmma::shared_address(slot) + threadIdx.x * Copy::kChunk;
#pragma unroll
  for (int c = 0; c < Copy::kChunks; ++c) {
    copy_async<Copy::kChunk>(dst + c * kThreads * Copy::kChunk, src + c * Copy::kChunk, valid);
  }
  return valid ? __ldg(rb.scales + kb) : 0u;
}

// Starts copying stage `s`'s codes into `slots` and returns its scale bytes.
template <int kBitsA, int kBitsB>
__device__ __forceinline__ void load_stage(const Params& P,
                                           const RowBlock (&rb)[kRowBlocksPerThread], int64_t s,
                                           uint8_t* slots, uint32_t (&scale)[kRowBlocksPerThread]) {
  scale[0] = load_slot<kBitsA>(P, P.a, rb[0], s, slots);
  scale[1] = load_slot<kBitsB>(P, P.b, rb[1], s, slots + kCodeSlotBytes);
  scale[2] = load_slot<kBitsB>(P, P.b, rb[2], s, slots + 2 * kCodeSlotBytes);
}

template <int kBits>
__device__ __forceinline__ void read_codes(const uint8_t* slot, uint32_t (&w)[8]) {
  using Copy = BlockCopy<kBits>;
#pragma unroll
  for (int i = 0; i < 8; ++i) w[i] = 0;
  const uint8_t* mine = slot + threadIdx.x * Copy::kChunk;
#pragma unroll
  for (int c = 0; c < Copy::kChunks; ++c) {
    if constexpr (Copy::kChunk == 16) {
      const uint4 v = *reinterpret_cast<const uint4*>(mine + c * kThreads * 16);
      w[4 * c] = v.x;
      w[4 * c + 1] = v.y;
      w[4 * c + 2] = v.z;
      w[4 * c + 3] = v.w;
    } else {
      const uint2 v = *reinterpret_cast<const uint2*>(mine + c * kThreads * 8);
      w[2 * c] = v.x;
      w[2 * c + 1] = v.y;
    }
  }
}

__device__ __forceinline__ void store_row_block(const RowBlock& rb, const uint32_t (&out)[16],
                                                uint8_t* stage) {
  uint8_t* line = stage + rb.tile_row * kRowBytes;
#pragma unroll
  for (int q = 0; q < 4; ++q) {
    const int chunk = (rb.half * 4 + q) ^ (rb.tile_row & 7);
    *reinterpret_cast<uint4*>(line + chunk * 16) =
        make_uint4(out[4 * q], out[4 * q + 1], out[4 * q + 2], out[4 * q + 3]);
  }
}

__device__ __forceinline__ int valid_slots(const Params& P, const RowBlock& rb, int64_t s) {
  const int64_t kb = s * kBlocksPerStage + rb.half;
  return kb == P.blocks_k - 1 ? int(P.k - 32 * kb) : 32;
}

// Decodes `kCount` consecutive slots of one operand (codes of `kBits` bits). The blocks go
// through the common path side by side (no branch between them, so their instructions
// interleave); if any is unusual, all are redone exactly from shared memory.
template <int kBits, int kCount>
__device__ __forceinline__ void decode_slots(const Params& P, const Operand& op, const RowBlock* rb,
                                             int64_t s, const uint8_t* slots, const uint32_t* scale,
                                             uint8_t* stage) {
  uint32_t w[kCount][8];
  bool plain = true;
  int valid[kCount];
#pragma unroll
  for (int i = 0; i < kCount; ++i) {
    read_codes<kBits>(slots + i * kCodeSlotBytes, w[i]);
    valid[i] = valid_slots(P, rb[i], s);
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
      read_codes<kBits>(slots + i * kCodeSlotBytes, again);
      decode_any_block<kBits>(again, scale[i], op.format, valid[i], out[i]);
    }
  }
#pragma unroll
  for (int i = 0; i < kCount; ++i) store_row_block(rb[i], out[i], stage);
}

// Decodes stage `s` from `slots` into the swizzled bfloat16 tiles at `stage`: A's block, then
// B's two.
template <int kBitsA, int kBitsB>
__device__ __forceinline__ void decode_stage(const Params& P,
                                             const RowBlock (&rb)[kRowBlocksPerThread], int64_t s,
                                             const uint8_t* slots,
                                             const uint32_t (&scale)[kRowBlocksPerThread],
                                             uint8_t* stage) {
  decode_slots<kBitsA, 1>(P, P.a, rb, s, slots, scale, stage);
  decode_slots<kBitsB, 1>(P, P.b, rb + 1, s, slots + kCodeSlotBytes, scale + 1, stage);
  decode_slots<kBitsB, 1>(P, P.b, rb + 2, s, slots + 2 * kCodeSlotBytes, scale + 2, stage);
  wgmma::fence_shared_for_async();
}

template <int kBitsA, int kBitsB>
__global__ void __launch_bounds__(kThreads, 1)
    mx_gemm_bf16_kernel(__grid_constant__ const Params P) {
  extern __shared__ uint8_t shared_raw[];
  uint8_t* shared = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(shared_raw) + 1023) &
                                               ~uintptr_t(1023));
  uint8_t* bf16_stages = shared;
  uint8_t* code_stages = shared + kBf16Stages * kStageBytes;

  // Tile order: groups of kGroupTilesM tiles of M sweep N together.
  const int per_group = kGroupTilesM * P.tiles_n;
  const int group = blockIdx.x / per_group;
  const int first_m = group * kGroupTilesM;
  const int group_m = min(P.tiles_m - first_m, kGroupTilesM);
  const int in_group = blockIdx.x % per_group;
  const int64_t m0 = int64_t(first_m + in_group % group_m) * kTileM;
  const int64_t n0 = int64_t(in_group / group_m) * kTileN;

  RowBlock rb[kRowBlocksPerThread];
#pragma unroll
  for (int i = 0; i < kRowBlocksPerThread; ++i) {
    const bool is_a = slot_is_a(i);
    rb[i].tile_row = is_a ? int(threadIdx.x) % kTileM : kTileM + int(threadIdx.x);
    rb[i].half = is_a ? int(threadIdx.x) / kTileM : i - 1;
    const Operand& op = is_a ? P.a : P.b;
    const int64_t row = is_a ? m0 + rb[i].tile_row : n0 + rb[i].tile_row - kTileM;
    rb[i].codes = row < op.rows ? op.codes + row * op.row_bytes : nullptr;
    rb[i].scales = op.scales + (row < op.rows ? row : 0) * P.blocks_k;
  }

  float acc[128];
#pragma unroll
  for (int i = 0; i < 128; ++i) acc[i] = 0.0f;

  const int warpgroup = threadIdx.x / 128;
  // Scale bytes of even and odd stages: each is loaded one iteration before its decode.
  uint32_t scales_even[kRowBlocksPerThread];
  uint32_t scales_odd[kRowBlocksPerThread];
  if (P.stages > 0) {
    load_stage<kBitsA, kBitsB>(P, rb, 0, code_stages, scales_even);
    cp_async_commit();
    if (P.stages > 1)
      load_stage<kBitsA, kBitsB>(P, rb, 1, code_stages + kCodeStageBytes, scales_odd);
    cp_async_commit();
    cp_async_wait<1>();
    decode_stage<kBitsA, kBitsB>(P, rb, 0, code_stages, scales_even, bf16_stages);
  }

  // One iteration: multiply stage t, copy stage t + 2, decode stage t + 1.
  auto step = [&](int64_t t, uint32_t(&scales_t)[kRowBlocksPerThread],
                  const uint32_t(&scales_next)[kRowBlocksPerThread]) {
    __syncthreads();
    const uint8_t* stage = bf16_stages + (t % kBf16Stages) * kStageBytes;
    const uint8_t* tile_a = stage + warpgroup * 64 * kRowBytes;
    const uint8_t* tile_b = stage + kTileBytesA;
    wgmma::fence();
#pragma unroll
    for (int s = 0; s < 4; ++s) {
      wgmma::wgmma_m64n256k16(acc, wgmma::descriptor(tile_a + 32 * s),
                              wgmma::descriptor(tile_b + 32 * s));
    }
    wgmma::commit();
    if (t + 2 < P.stages) {
      load_stage<kBitsA, kBitsB>(P, rb, t + 2, code_stages + (t % kCodeStages) * kCodeStageBytes,
                                 scales_t);
    }
    cp_async_commit();
    if (t + 1 < P.stages) {
      cp_async_wait<1>();
      decode_stage<kBitsA, kBitsB>(
          P, rb, t + 1, code_stages + ((t + 1) % kCodeStages) * kCodeStageBytes, scales_next,
          bf16_stages + ((t + 1) % kBf16Stages) * kStageBytes);
    }
    wgmma::wait<1>();
    wgmma::pin(acc);
  };
  for (int64_t t = 0; t < P.stages; t += 2) {
    step(t, scales_even, scales_odd);
    if (t + 1 < P.stages) step(t + 1, scales_odd, scales_even);
  }
  wgmma::wait<0>();
  wgmma::pin(acc);

  const int warp = (threadIdx.x % 128) / 32;
  const int lane = threadIdx.x % 32;
  const int64_t row = m0 + warpgroup * 64 + warp * 16 + lane / 4;
#pragma unroll
  for (int j = 0; j < 32; ++j) {
    const int64_t col = n0 + 8 * j + 2 * (lane % 4);
    store_pair(P, row, col, acc[4 * j], acc[4 * j + 1]);
    store_pair(P, row + 8, col, acc[4 * j + 2], acc[4 * j + 3]);
  }
}

std::string make_operand(const MxMatrix& x, int64_t rows, int64_t k, const char* name,
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

template <int kBitsA, int kBitsB>
std::string launch(const Params& P, unsigned tiles, cudaStream_t stream) {
  static SharedMemoryLimit limit;
  const cudaError_t attribute = limit.ensure(
      reinterpret_cast<const void*>(&mx_gemm_bf16_kernel<kBitsA, kBitsB>), kSharedBytes);
  if (attribute != cudaSuccess) {
    return std::string("mx_gemm: cannot reserve shared memory: ") + cudaGetErrorString(attribute);
  }
  mx_gemm_bf16_kernel<kBitsA, kBitsB><<<tiles, kThreads, kSharedBytes, stream>>>(P);
  const cudaError_t launched = cudaGetLastError();
  if (launched != cudaSuccess) {
    return std::string("mx_gemm: launch failed: ") + cudaGetErrorString(launched);
  }
  return {};
}

template <int kBitsA>
std::string launch_for_b(int bits_b, const Params& P, unsigned tiles, cudaStream_t stream) {
  switch (bits_b) {
    case 8:
      return launch<kBitsA, 8>(P, tiles, stream);
    case 6:
      return launch<kBitsA, 6>(P, tiles, stream);
    case 4:
      return launch<kBitsA, 4>(P, tiles, stream);
    default:
      return launch<kBitsA, 2>(P, tiles, stream);
  }
}

std::string launch_for_bits(int bits_a, int bits_b, const Params& P, unsigned tiles,
                            cudaStream_t stream) {
  switch (bits_a) {
    case 8:
      return launch_for_b<8>(bits_b, P, tiles, stream);
    case 6:
      return launch_for_b<6>(bits_b, P, tiles, stream);
    case 4:
      return launch_for_b<4>(bits_b, P, tiles, stream);
    default:
      return launch_for_b<2>(bits_b, P, tiles, stream);
  }
}

}  // namespace

std::string launch_mx_gemm_bf16_hopper(const MxGemmArgs& args, cudaStream_t stream) {
  Params P{};
  if (auto e = make_operand(args.a, args.m, args.k, "A", &P.a); !e.empty()) return e;
  if (auto e = make_operand(args.b, args.n, args.k, "B", &P.b); !e.empty()) return e;
  P.m = args.m;
  P.n = args.n;
  P.k = args.k;
  P.blocks_k = mx_row_scale_bytes(args.k);
  P.stages = (P.blocks_k + kBlocksPerStage - 1) / kBlocksPerStage;
  P.tiles_m = int((args.m + kTileM - 1) / kTileM);
  P.tiles_n = int((args.n + kTileN - 1) / kTileN);
  P.bias = args.bias;
  P.d = args.d;
  P.out_bf16 = args.out_dtype == DType::kBF16;
  P.pair_stores = args.n % 2 == 0 && reinterpret_cast<uintptr_t>(args.d) % 8 == 0;
  const int64_t tiles = int64_t(P.tiles_m) * P.tiles_n;
  if (tiles > int64_t(0x7FFFFFFF) / kGroupTilesM) return "mx_gemm: too many output tiles";
  return launch_for_bits(traits(args.a.format).bits, traits(args.b.format).bits, P, unsigned(tiles),
                         stream);
}

}  // namespace mx::cuda
