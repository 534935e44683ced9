// MX x MX matrix product on Hopper with warp specialization: one warpgroup copies and decodes,
// two multiply.
//
// The staged kernel (gemm_mx_bf16.cu) has every warp decode and then issue wgmma, with a barrier
// per stage; its warps wait on their own decode's shared-memory loads while the tensor cores
// idle. Here the 128 threads of the first warpgroup (the producers) copy each stage's codes
// (gemm_mx_stage.cuh: six blocks per thread) and decode them into a ring of bfloat16 stages,
// while the other two warpgroups (the consumers, 64 rows of the 128 x 256 tile each) only wait
// for a stage, issue its four m64n256k16 wgmma and hand the previous stage's buffer back. The
// hand-over uses two shared-memory barriers per ring slot: `full` (the producers' 128 arrivals,
// after a proxy fence that makes their stores visible to the tensor cores) and `empty` (the
// consumers' 256 arrivals, once the wgmma that read the slot have completed). Each output sums
// the same wgmma in the same order as the staged kernel, so the two give the same bits.
#include <cuda_bf16.h>

#include <string>

#include "mx/kernels/cuda/gemm_mx_bf16.h"
#include "mx/kernels/cuda/gemm_mx_stage.cuh"
#include "mx/kernels/cuda/launch_with_shared_memory.cuh"
#include "mx/kernels/cuda/mma_sync.cuh"
#include "mx/kernels/cuda/wgmma.cuh"

namespace mx::cuda {
namespace {

using namespace gemm_stage;

constexpr int kProducers = 128;
constexpr int kConsumers = 256;
constexpr int kThreads = kProducers + kConsumers;
constexpr int kSlotsPerProducer = kTileRows * kBlocksPerStage / kProducers;  // 6
constexpr int kRing = 3;                                                     // bfloat16 stages
using CodeSlots = Slots<kProducers>;
constexpr int kCodeStageBytes = kSlotsPerProducer * CodeSlots::kSlotBytes;
constexpr int kCodeStages = 2;
constexpr int kBarrierBytes = 2 * kRing * 8;
constexpr int kSharedBytes =
    kRing * kStageBytes + kCodeStages * kCodeStageBytes + kBarrierBytes + 1024;
static_assert(kSlotsPerProducer == 6);

__device__ __forceinline__ void barrier_init(uint64_t* bar, int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(shared_address(bar)), "r"(count)
               : "memory");
}

// Arrives with release semantics: this thread's earlier shared-memory writes are visible to the
// threads whose wait the arrival completes.
__device__ __forceinline__ void barrier_arrive(uint64_t* bar) {
  asm volatile(
      "{\n"
      ".reg .b64 state;\n"
      "mbarrier.arrive.release.cta.shared::cta.b64 state, [%0];\n"
      "}\n" ::"r"(shared_address(bar))
      : "memory");
}

// Waits until the barrier's phase of the given parity has completed. A freshly initialized
// barrier is in phase 0, so waiting for parity 1 returns at once.
__device__ __forceinline__ void barrier_wait(uint64_t* bar, uint32_t parity) {
  uint32_t done = 0;
  do {
    asm volatile(
        "{\n"
        ".reg .pred p;\n"
        "mbarrier.try_wait.parity.acquire.cta.shared::cta.b64 p, [%1], %2;\n"
        "selp.u32 %0, 1, 0, p;\n"
        "}\n"
        : "=r"(done)
        : "r"(shared_address(bar)), "r"(parity)
        : "memory");
  } while (!done);
}

// The producers: stage s's codes are copied one stage ahead into two code buffers, then decoded
// into ring slot s % kRing once the consumers have released it.
template <int kBitsA, int kBitsB>
__device__ __forceinline__ void produce(const Params& P, int64_t m0, int64_t n0, uint8_t* ring,
                                        uint8_t* code_stages, uint64_t* full, uint64_t* empty) {
  const int t = threadIdx.x;  // 0..127
  // Slots 0 and 1: A's row t, both blocks of the stage; slots 2 to 5: B's rows t and t + 128.
  const RowBlock rb[kSlotsPerProducer] = {row_block(P, m0, n0, t, 0),
                                          row_block(P, m0, n0, t, 1),
                                          row_block(P, m0, n0, kTileM + t, 0),
                                          row_block(P, m0, n0, kTileM + t, 1),
                                          row_block(P, m0, n0, kTileM + kProducers + t, 0),
                                          row_block(P, m0, n0, kTileM + kProducers + t, 1)};
  auto load = [&](int64_t s, uint32_t(&scale)[kSlotsPerProducer]) {
    uint8_t* slots = code_stages + (s % kCodeStages) * kCodeStageBytes;
#pragma unroll
    for (int i = 0; i < kSlotsPerProducer; ++i) {
      scale[i] =
          i < 2 ? CodeSlots::load<kBitsA>(P, P.a, rb[i], s, slots + i * CodeSlots::kSlotBytes, t)
                : CodeSlots::load<kBitsB>(P, P.b, rb[i], s, slots + i * CodeSlots::kSlotBytes, t);
    }
  };
  auto decode = [&](int64_t s, const uint32_t(&scale)[kSlotsPerProducer]) {
    const uint8_t* slots = code_stages + (s % kCodeStages) * kCodeStageBytes;
    uint8_t* stage = ring + (s % kRing) * kStageBytes;
#pragma unroll
    for (int i = 0; i < kSlotsPerProducer; ++i) {
      if (i < 2) {
        CodeSlots::decode<kBitsA, 1>(P, P.a, rb + i, s, slots + i * CodeSlots::kSlotBytes,
                                     scale + i, stage, t);
      } else {
        CodeSlots::decode<kBitsB, 1>(P, P.b, rb + i, s, slots + i * CodeSlots::kSlotBytes,
                                     scale + i, stage, t);
      }
    }
    wgmma::fence_shared_for_async();
  };
  // One step: copy stage s + 1, wait for stage s's codes and for its ring slot, decode it.
  auto step = [&](int64_t s, const uint32_t(&scale_s)[kSlotsPerProducer],
                  uint32_t(&scale_next)[kSlotsPerProducer]) {
    if (s + 1 < P.stages) load(s + 1, scale_next);
    cp_async_commit();
    cp_async_wait<1>();
    barrier_wait(&empty[s % kRing], uint32_t((s / kRing) & 1) ^ 1u);
    decode(s, scale_s);
    barrier_arrive(&full[s % kRing]);
  };
  uint32_t scales_even[kSlotsPerProducer], scales_odd[kSlotsPerProducer];
  if (P.stages > 0) load(0, scales_even);
  cp_async_commit();
  for (int64_t s = 0; s < P.stages; s += 2) {
    step(s, scales_even, scales_odd);
    if (s + 1 < P.stages) step(s + 1, scales_odd, scales_even);
  }
  cp_async_wait<0>();
}

// The consumers: warpgroup `w` (0 or 1) multiplies rows 64w to 64w + 63 of the tile.
__device__ __forceinline__ void consume(const Params& P, int64_t m0, int64_t n0, int w,
                                        const uint8_t* ring, uint64_t* full, uint64_t* empty) {
  float acc[128];
#pragma unroll
  for (int i = 0; i < 128; ++i) acc[i] = 0.0f;
  for (int64_t s = 0; s < P.stages; ++s) {
    barrier_wait(&full[s % kRing], uint32_t((s / kRing) & 1));
    const uint8_t* stage = ring + (s % kRing) * kStageBytes;
    const uint8_t* tile_a = stage + w * 64 * kRowBytes;
    const uint8_t* tile_b = stage + kTileBytesA;
    wgmma::fence();
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      wgmma::wgmma_m64n256k16(acc, wgmma::descriptor(tile_a + 32 * k),
                              wgmma::descriptor(tile_b + 32 * k));
    }
    wgmma::commit();
    // Stage s - 1's wgmma have read their slot once at most stage s's are pending.
    wgmma::wait<1>();
    wgmma::pin(acc);
    if (s > 0) barrier_arrive(&empty[(s - 1) % kRing]);
  }
  wgmma::wait<0>();
  wgmma::pin(acc);
  store_tile(P, m0, n0, w * 64, threadIdx.x % 128, acc);
}

template <int kBitsA, int kBitsB>
__global__ void __launch_bounds__(kThreads, 1)
    mx_gemm_bf16_ws_kernel(__grid_constant__ const Params P) {
  extern __shared__ uint8_t shared_raw[];
  uint8_t* shared = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(shared_raw) + 1023) &
                                               ~uintptr_t(1023));
  uint8_t* ring = shared;
  uint8_t* code_stages = ring + kRing * kStageBytes;
  uint64_t* full = reinterpret_cast<uint64_t*>(code_stages + kCodeStages * kCodeStageBytes);
  uint64_t* empty = full + kRing;
  if (threadIdx.x == 0) {
    for (int i = 0; i < kRing; ++i) {
      barrier_init(&full[i], kProducers);
      barrier_init(&empty[i], kConsumers);
    }
  }
  __syncthreads();
  int64_t m0 = 0, n0 = 0;
  tile_origin(P, &m0, &n0);
  const int warpgroup = threadIdx.x / 128;
  if (warpgroup == 0) {
    produce<kBitsA, kBitsB>(P, m0, n0, ring, code_stages, full, empty);
  } else {
    consume(P, m0, n0, warpgroup - 1, ring, full, empty);
  }
}

template <int kBitsA, int kBitsB>
struct Launch {
  static std::string run(const Params& P, unsigned tiles, cudaStream_t stream) {
    return launch_with_shared_memory<&mx_gemm_bf16_ws_kernel<kBitsA, kBitsB>>(
        P, tiles, kThreads, kSharedBytes, stream, "mx_gemm_specialized");
  }
};

}  // namespace

std::string launch_mx_gemm_bf16_ws_hopper(const MxGemmArgs& args, cudaStream_t stream) {
  Params P;
  int64_t tiles = 0;
  if (auto e = make_params(args, &P, &tiles); !e.empty()) return e;
  return launch_for_bits<Launch>(traits(args.a.format).bits, traits(args.b.format).bits, P,
                                 unsigned(tiles), stream);
}

}  // namespace mx::cuda
