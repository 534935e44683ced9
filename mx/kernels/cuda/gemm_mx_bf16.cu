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

#include "mx/kernels/cuda/gemm_mx_bf16.h"
#include "mx/kernels/cuda/gemm_mx_stage.cuh"
#include "mx/kernels/cuda/launch_with_shared_memory.cuh"
#include "mx/kernels/cuda/mma_sync.cuh"
#include "mx/kernels/cuda/wgmma.cuh"

namespace mx::cuda {
namespace {

using namespace gemm_stage;

constexpr int kThreads = 256;
constexpr int kRowBlocksPerThread = kTileRows * kBlocksPerStage / kThreads;  // 3
constexpr int kBf16Stages = 3;
using CodeSlots = Slots<kThreads>;
constexpr int kCodeStageBytes = kRowBlocksPerThread * CodeSlots::kSlotBytes;
constexpr int kCodeStages = 2;
constexpr int kSharedBytes = kBf16Stages * kStageBytes + kCodeStages * kCodeStageBytes + 1024;

// The blocks a thread copies and decodes in every stage: slot 0 holds a block of A (row
// threadIdx % 128, the stage's first or second block by threadIdx / 128), slots 1 and 2 the
// first and second block of B's row threadIdx. Each slot's operand is the same for every thread,
// so each decodes with one format's code.

// Starts copying stage `s`'s codes into `slots` and returns its scale bytes.
template <int kBitsA, int kBitsB>
__device__ __forceinline__ void load_stage(const Params& P,
                                           const RowBlock (&rb)[kRowBlocksPerThread], int64_t s,
                                           uint8_t* slots, uint32_t (&scale)[kRowBlocksPerThread]) {
  const int t = threadIdx.x;
  scale[0] = CodeSlots::load<kBitsA>(P, P.a, rb[0], s, slots, t);
  scale[1] = CodeSlots::load<kBitsB>(P, P.b, rb[1], s, slots + CodeSlots::kSlotBytes, t);
  scale[2] = CodeSlots::load<kBitsB>(P, P.b, rb[2], s, slots + 2 * CodeSlots::kSlotBytes, t);
}

// Decodes stage `s` from `slots` into the swizzled bfloat16 tiles at `stage`: A's block, then
// B's two.
template <int kBitsA, int kBitsB>
__device__ __forceinline__ void decode_stage(const Params& P,
                                             const RowBlock (&rb)[kRowBlocksPerThread], int64_t s,
                                             const uint8_t* slots,
                                             const uint32_t (&scale)[kRowBlocksPerThread],
                                             uint8_t* stage) {
  const int t = threadIdx.x;
  CodeSlots::decode<kBitsA, 1>(P, P.a, rb, s, slots, scale, stage, t);
  CodeSlots::decode<kBitsB, 1>(P, P.b, rb + 1, s, slots + CodeSlots::kSlotBytes, scale + 1, stage,
                               t);
  CodeSlots::decode<kBitsB, 1>(P, P.b, rb + 2, s, slots + 2 * CodeSlots::kSlotBytes, scale + 2,
                               stage, t);
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
  int64_t m0 = 0, n0 = 0;
  tile_origin(P, &m0, &n0);

  const int thread = threadIdx.x;
  const RowBlock rb[kRowBlocksPerThread] = {row_block(P, m0, n0, thread % kTileM, thread / kTileM),
                                            row_block(P, m0, n0, kTileM + thread, 0),
                                            row_block(P, m0, n0, kTileM + thread, 1)};

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

  store_tile(P, m0, n0, warpgroup * 64, threadIdx.x % 128, acc);
}

template <int kBitsA, int kBitsB>
struct Launch {
  static std::string run(const Params& P, unsigned tiles, cudaStream_t stream) {
    return launch_with_shared_memory<&mx_gemm_bf16_kernel<kBitsA, kBitsB>>(
        P, tiles, kThreads, kSharedBytes, stream, "mx_gemm");
  }
};

}  // namespace

std::string launch_mx_gemm_bf16_hopper(const MxGemmArgs& args, cudaStream_t stream) {
  Params P;
  int64_t tiles = 0;
  if (auto e = make_params(args, &P, &tiles); !e.empty()) return e;
  return launch_for_bits<Launch>(traits(args.a.format).bits, traits(args.b.format).bits, P,
                                 unsigned(tiles), stream);
}

}  // namespace mx::cuda
