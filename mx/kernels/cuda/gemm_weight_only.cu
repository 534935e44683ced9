// Weight-only MX product for small batches: Y [M, N] = X [M, K] (bfloat16, M <= 64) times W^T,
// W [N, K] in the weight-tile layout (mx/core/layout_weight_tiles.h). Memory-bound on W: every
// lane loads its 32 codes of a 16 x 64 tile in one contiguous piece, decodes them to bfloat16
// in registers (weight_tile_decode.cuh) and feeds them to m16n8k16 tensor-core products as the
// A fragments; X comes from shared memory as the B fragments.
//
// A warp owns 16 rows of W over one slice of K and keeps four tiles' loads in flight, refilling
// each tile's registers as soon as it is decoded. When one slice per row is too little work to
// fill the GPU, the slices of a row group run as one thread-block cluster, and their float32
// partial sums meet in distributed shared memory, added in slice order: results do not depend
// on timing, and no second kernel or workspace is needed.
#include <cooperative_groups.h>
#include <cuda_bf16.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <tuple>

#include "mx/core/layout_weight_tiles.h"
#include "mx/kernels/cuda/mma_sync.cuh"
#include "mx/kernels/cuda/mx_gemm.h"
#include "mx/kernels/cuda/shared_memory_limit.h"
#include "mx/kernels/cuda/weight_tile_decode.cuh"

namespace mx::cuda {
namespace {

namespace cg = cooperative_groups;

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int kTileK = 64;
constexpr int kGroupTiles = 4;                 // tiles per scale group
constexpr int kGroupK = kTileK * kGroupTiles;  // 256 columns
constexpr int kMaxSlices = 8;                  // portable cluster size
constexpr int kXBudgetBytes = 64 * 1024;       // shared memory per block: X per chunk of K
// Up to 16 rows of X, chunks of half the budget: the smaller chunk leaves room for more blocks
// per SM, which a product of 8 or 16 rows needs to keep W's loads in flight (measured: faster
// at 16 rows, slower at 32).
constexpr int kXChunkBytesFewRows = 32 * 1024;

// Bytes from one tile's codes to the next tile's, and blocks per multiprocessor to aim for (the
// registers that leaves decide how many warps hide the decode's latency).
template <int kBits>
constexpr int kTileStride = 32 * 4 * kBits;
template <int kBits, int kTilesM>
constexpr int kMinBlocks = kTilesM >= 4   ? 2
                           : kTilesM == 2 ? (kBits >= 6 ? 4 : 6)
                           : kBits >= 6   ? 5
                                          : 7;

// Accumulator sets per X tile: with one X tile, even and odd 16-column steps go to two sets, so
// that the chain of dependent tensor-core products is half as long; more X tiles interleave
// chains of their own.
template <int kBits, int kTilesM>
constexpr int kChains = kTilesM == 1 ? 2 : 1;

struct Params {
  const uint8_t* codes;
  const uint8_t* scales;
  DecodeFormat format;
  const __nv_bfloat16* x;
  const float* bias;
  void* d;
  bool out_bf16;
  int64_t m;
  int64_t n;
  int64_t k;
  int64_t tile_rows;  // W rows / 16, rounded up
  int64_t groups;     // scale groups per tile row
  int slices;         // K slices = cluster size along y
  int groups_per_slice;
  int chunk_groups;  // groups of X staged at a time
  int x_stride;      // shared-memory row stride of X, in bfloat16 values
  bool x_vectors;    // X rows can be read in 16-byte pieces
};

// Shared-memory position of X column c within a staged chunk: each 16 columns reordered so that
// lane q's B fragment (columns 2q, 2q + 1, 2q + 8, 2q + 9) is 8 contiguous bytes.
__device__ __forceinline__ int x_slot(int c) {
  const int w = c % 16;
  return c - w + 4 * ((w % 8) / 2) + 2 * (w / 8) + w % 2;
}

// Stages X rows [0, rows) at columns [k0, k0 + count) of the chunk (zero past K).
__device__ void stage_x(const Params& P, __nv_bfloat16* xs, int rows, int64_t k0, int count) {
  const int64_t k_end = min(P.k, k0 + count);
  if (P.x_vectors) {
    const int pieces = count / 8;  // count is a multiple of 256
    for (int i = threadIdx.x; i < rows * pieces; i += kThreads) {
      const int row = i / pieces;
      const int col = 8 * (i % pieces);
      const uint4 v = k0 + col < k_end
                          ? __ldg(reinterpret_cast<const uint4*>(P.x + row * P.k + k0 + col))
                          : make_uint4(0, 0, 0, 0);
      uint32_t* dst = reinterpret_cast<uint32_t*>(xs + row * P.x_stride);
      const uint32_t part[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
      for (int j = 0; j < 4; ++j) dst[x_slot(col + 2 * j) / 2] = part[j];
    }
  } else {
    for (int i = threadIdx.x; i < rows * count; i += kThreads) {
      const int row = i / count;
      const int col = i % count;
      xs[row * P.x_stride + x_slot(col)] =
          k0 + col < k_end ? P.x[row * P.k + k0 + col] : __float2bfloat16_rn(0.0f);
    }
  }
}

template <int kBits>
__device__ __forceinline__ void load_tile(const uint8_t* p, uint32_t (&w)[kBits]) {
  if constexpr (kBits == 8) {
    const uint4 a = __ldg(reinterpret_cast<const uint4*>(p));
    const uint4 b = __ldg(reinterpret_cast<const uint4*>(p) + 1);
    w[0] = a.x, w[1] = a.y, w[2] = a.z, w[3] = a.w, w[4] = b.x, w[5] = b.y, w[6] = b.z, w[7] = b.w;
  } else if constexpr (kBits == 6) {
    const uint2 a = __ldg(reinterpret_cast<const uint2*>(p));
    const uint2 b = __ldg(reinterpret_cast<const uint2*>(p) + 1);
    const uint2 c = __ldg(reinterpret_cast<const uint2*>(p) + 2);
    w[0] = a.x, w[1] = a.y, w[2] = b.x, w[3] = b.y, w[4] = c.x, w[5] = c.y;
  } else if constexpr (kBits == 4) {
    const uint4 a = __ldg(reinterpret_cast<const uint4*>(p));
    w[0] = a.x, w[1] = a.y, w[2] = a.z, w[3] = a.w;
  } else {
    const uint2 a = __ldg(reinterpret_cast<const uint2*>(p));
    w[0] = a.x, w[1] = a.y;
  }
}

// Decodes the four tiles of one scale group and multiplies them with X, refilling each tile's
// code registers with the same tile of the next group (`next`, or null at the slice's end) as
// soon as they are decoded.
template <int kBits, bool kFastE2M1, int kTilesM>
__device__ __forceinline__ void multiply_group(const DecodeFormat& f,
                                               uint32_t (&codes)[kGroupTiles][kBits],
                                               const uint4& scales, const uint8_t* next,
                                               const __nv_bfloat16* x_lane, int x_rows8,
                                               const bool (&live)[kTilesM],
                                               float (&acc)[kChains<kBits, kTilesM>][kTilesM][4]) {
  const uint32_t scale_words[kGroupTiles] = {scales.x, scales.y, scales.z, scales.w};
#pragma unroll
  for (int u = 0; u < kGroupTiles; ++u) {
    uint32_t a[16];
    if constexpr (kFastE2M1) {
      decode_e2m1_lane(codes[u], scale_words[u], a);
    } else {
      decode_lane_any<kBits>(codes[u], scale_words[u], f, a);
    }
    if (next != nullptr) load_tile<kBits>(next + u * kTileStride<kBits>, codes[u]);
#pragma unroll
    for (int step = 0; step < 4; ++step) {  // 16 columns each: step = 2b + s
      const uint32_t frag[4] = {a[4 * step], a[4 * step + 1], a[4 * step + 2], a[4 * step + 3]};
#pragma unroll
      for (int t = 0; t < kTilesM; ++t) {
        uint2 b = make_uint2(0, 0);  // rows past M multiply as zero
        if (live[t]) {
          b = *reinterpret_cast<const uint2*>(x_lane + t * x_rows8 + u * kTileK + 16 * step);
        }
        mma_m16n8k16_bf16(acc[step % kChains<kBits, kTilesM>][t], frag, b.x, b.y);
      }
    }
  }
}

// acc[t][j] is (W row 16 * tile_row + r + 8(j / 2), X row 8t + 2q + j % 2).
__device__ __forceinline__ void store_result(const Params& P, int64_t w_row, int64_t x_row,
                                             float sum) {
  if (w_row >= P.n || x_row >= P.m) return;
  if (P.bias) sum += P.bias[w_row];
  if (P.out_bf16) {
    static_cast<__nv_bfloat16*>(P.d)[x_row * P.n + w_row] = __float2bfloat16_rn(sum);
  } else {
    static_cast<float*>(P.d)[x_row * P.n + w_row] = sum;
  }
}

template <int kBits, bool kE2M1, int kTilesM>
__global__ void __launch_bounds__(kThreads, kMinBlocks<kBits, kTilesM>)
    weight_only_kernel(__grid_constant__ const Params P) {
  extern __shared__ __align__(16) unsigned char shared[];
  auto* xs = reinterpret_cast<__nv_bfloat16*>(shared);  // [min(M, 8 kTilesM)][x_stride]
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int r = lane / 4;
  const int q = lane % 4;
  const int64_t first = int64_t(blockIdx.y) * P.groups_per_slice;
  const int64_t last = min(first + P.groups_per_slice, P.groups);
  const int rows = int(P.m < 8 * kTilesM ? P.m : 8 * kTilesM);
  // Warps past the last tile row repeat it, so that every warp reaches the block's barriers.
  const int64_t own_row = int64_t(blockIdx.x) * kWarps + warp;
  const int64_t tile_row = min(own_row, P.tile_rows - 1);
  const uint8_t* lane_codes =
      P.codes + tile_row * P.groups * kGroupTiles * kTileStride<kBits> + lane * 4 * kBits;
  const uint8_t* lane_scales = P.scales + tile_row * P.groups * 128 + 16 * r;
  const __nv_bfloat16* x_lane = xs + r * P.x_stride + 4 * q;
  const int x_rows8 = 8 * P.x_stride;
  bool live[kTilesM];
#pragma unroll
  for (int t = 0; t < kTilesM; ++t) live[t] = 8 * t + r < P.m;

  float acc[kChains<kBits, kTilesM>][kTilesM][4] = {};
  uint32_t codes[kGroupTiles][kBits];
  uint4 scales = make_uint4(0, 0, 0, 0), next_scales = make_uint4(0, 0, 0, 0);
  if (first < last) {
#pragma unroll
    for (int u = 0; u < kGroupTiles; ++u) {
      load_tile<kBits>(lane_codes + (first * kGroupTiles + u) * kTileStride<kBits>, codes[u]);
    }
    scales = __ldg(reinterpret_cast<const uint4*>(lane_scales + first * 128));
    if (first + 1 < last) {
      next_scales = __ldg(reinterpret_cast<const uint4*>(lane_scales + (first + 1) * 128));
    }
  }
  int64_t chunk_first = first;
  for (int64_t g = first; g < last; ++g) {
    if (g == first || g - chunk_first == P.chunk_groups) {
      if (g != first) __syncthreads();  // every warp is done with the previous chunk
      chunk_first = g;
      stage_x(P, xs, rows, chunk_first * kGroupK,
              int(min(int64_t(P.chunk_groups), last - chunk_first)) * kGroupK);
      __syncthreads();
    }
    const uint8_t* next =
        g + 1 < last ? lane_codes + (g + 1) * kGroupTiles * kTileStride<kBits> : nullptr;
    const __nv_bfloat16* x_group = x_lane + (g - chunk_first) * kGroupK;
    bool fast = false;
    if constexpr (kE2M1) {
      fast = __all_sync(0xFFFFFFFFu, e2m1_scales_fit(scales.x) && e2m1_scales_fit(scales.y) &&
                                         e2m1_scales_fit(scales.z) && e2m1_scales_fit(scales.w));
      if (fast) {
        multiply_group<kBits, true, kTilesM>(P.format, codes, scales, next, x_group, x_rows8, live,
                                             acc);
      }
    }
    if (!fast) {
      multiply_group<kBits, false, kTilesM>(P.format, codes, scales, next, x_group, x_rows8, live,
                                            acc);
    }
    scales = next_scales;
    if (g + 2 < last) {
      next_scales = __ldg(reinterpret_cast<const uint4*>(lane_scales + (g + 2) * 128));
    }
  }
  if constexpr (kChains<kBits, kTilesM> == 2) {
#pragma unroll
    for (int t = 0; t < kTilesM; ++t) {
#pragma unroll
      for (int j = 0; j < 4; ++j) acc[0][t][j] += acc[kChains<kBits, kTilesM> - 1][t][j];
    }
  }

  if (P.slices == 1) {
    if (own_row >= P.tile_rows) return;
#pragma unroll
    for (int t = 0; t < kTilesM; ++t) {
#pragma unroll
      for (int j = 0; j < 4; ++j)
        store_result(P, own_row * 16 + r + 8 * (j / 2), 8 * t + 2 * q + j % 2, acc[0][t][j]);
    }
    return;
  }
  // The cluster's slices add up in distributed shared memory: each block writes its partial
  // sums, then reduces its share of positions over all slices in slice order.
  __syncthreads();                                    // X is no longer read
  float* partial = reinterpret_cast<float*>(shared);  // [warp][t][j][lane]
#pragma unroll
  for (int t = 0; t < kTilesM; ++t) {
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      partial[((warp * kTilesM + t) * 4 + j) * 32 + lane] = acc[0][t][j];
    }
  }
  cg::cluster_group cluster = cg::this_cluster();
  cluster.sync();
  // Outputs of this block: 16 kWarps rows of W times `rows` rows of X, shared out in order.
  const int outputs = 16 * kWarps * rows;
  const int share = (outputs + P.slices - 1) / P.slices;
  const int end = min(outputs, int(cluster.block_rank() + 1) * share);
  for (int i = int(cluster.block_rank()) * share + threadIdx.x; i < end; i += kThreads) {
    const int w_local = i % (16 * kWarps), x_row = i / (16 * kWarps);
    const int rr = w_local % 16, t = x_row / 8, xr = x_row % 8;
    const int j = 2 * (rr / 8) + xr % 2, i_lane = 4 * (rr % 8) + xr / 2;
    const int at = (((w_local / 16) * kTilesM + t) * 4 + j) * 32 + i_lane;
    const int64_t w_row = int64_t(blockIdx.x) * 16 * kWarps + w_local;
    if (w_row >= P.n) continue;
    float sum = 0.0f;
    for (int s = 0; s < P.slices; ++s) sum += cluster.map_shared_rank(partial, s)[at];
    store_result(P, w_row, x_row, sum);
  }
  cluster.sync();  // no block leaves while another reads its shared memory
}

// Slices of K run as one cluster per row group. More slices put more warps to work on a short
// matrix, but every block must be resident at once: a cluster left for a second wave would
// double the time. So the plan takes the most slices (up to a portable cluster of 8) whose
// clusters the device can hold all together, and stages X in chunks that fit shared memory.
struct Plan {
  int slices;
  int groups_per_slice;
  int chunk_groups;
  int x_stride;
  int shared_bytes;
};

Plan plan_for(int64_t m, int64_t k, int tiles_m, int64_t slices) {
  const int64_t groups = std::max<int64_t>(1, weight_tile_scale_groups(k));
  const int rows_m = int(std::clamp<int64_t>(m, 1, 64));
  slices = std::clamp<int64_t>(slices, 1, groups);
  Plan p;
  p.groups_per_slice = int((groups + slices - 1) / slices);
  p.slices = int((groups + p.groups_per_slice - 1) / p.groups_per_slice);
  const int budget = rows_m <= 16 ? kXChunkBytesFewRows : kXBudgetBytes;
  const int fit = std::max(1, budget / (2 * rows_m * (kGroupK + 16)));
  p.chunk_groups = std::min(p.groups_per_slice, fit);
  p.x_stride = p.chunk_groups * kGroupK + 16;  // rows 32 bytes apart mod 128: conflict-free
  const int partial_bytes = kWarps * tiles_m * 4 * 32 * 4;
  p.shared_bytes = std::max(rows_m * p.x_stride * 2, partial_bytes);
  return p;
}

struct Launch {
  cudaLaunchConfig_t config{};
  cudaLaunchAttribute cluster{};
};

void set_launch(Launch& l, int64_t tile_rows, const Plan& plan, cudaStream_t stream) {
  l.config.gridDim = dim3(unsigned((tile_rows + kWarps - 1) / kWarps), unsigned(plan.slices));
  l.config.blockDim = dim3(kThreads);
  l.config.dynamicSmemBytes = size_t(plan.shared_bytes);
  l.config.stream = stream;
  l.cluster.id = cudaLaunchAttributeClusterDimension;
  l.cluster.val.clusterDim.x = 1;
  l.cluster.val.clusterDim.y = unsigned(plan.slices);
  l.cluster.val.clusterDim.z = 1;
  l.config.attrs = &l.cluster;
  l.config.numAttrs = 1;
}

// The plan for one kernel and shape on the current device, worked out once.
template <typename Kernel>
std::string choose_plan(Kernel kernel, int64_t m, int64_t n, int64_t k, int tiles_m, Plan* plan) {
  // Kernels differ in registers, hence in resident clusters: the kernel is part of the key.
  static std::mutex mutex;
  static std::map<std::tuple<const void*, int, int64_t, int64_t, int64_t>, Plan> plans;
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return "mx_gemm_weight_only: no current device";
  const auto key = std::make_tuple(reinterpret_cast<const void*>(kernel), device, m, n, k);
  std::lock_guard<std::mutex> lock(mutex);
  if (const auto it = plans.find(key); it != plans.end()) {
    *plan = it->second;
    return {};
  }
  const int64_t row_blocks = (weight_tile_rows(n) + kWarps - 1) / kWarps;
  Plan chosen = plan_for(m, k, tiles_m, 1);
  for (int64_t slices = kMaxSlices; slices > 1; --slices) {
    const Plan p = plan_for(m, k, tiles_m, slices);
    if (p.slices != slices) continue;  // fewer groups than slices: a smaller count says the same
    Launch l;
    set_launch(l, weight_tile_rows(n), p, nullptr);
    int clusters = 0;
    if (cudaOccupancyMaxActiveClusters(&clusters, kernel, &l.config) != cudaSuccess) {
      return "mx_gemm_weight_only: cannot query cluster occupancy";
    }
    if (clusters >= row_blocks) {
      chosen = p;
      break;
    }
  }
  plans.emplace(key, chosen);
  *plan = chosen;
  return {};
}

template <int kBits, bool kE2M1, int kTilesM>
std::string launch(Params P, cudaStream_t stream) {
  auto* kernel = &weight_only_kernel<kBits, kE2M1, kTilesM>;
  static SharedMemoryLimit limit;
  if (const cudaError_t e = limit.ensure(reinterpret_cast<const void*>(kernel), kXBudgetBytes);
      e != cudaSuccess) {
    return std::string("mx_gemm_weight_only: cannot reserve shared memory: ") +
           cudaGetErrorString(e);
  }
  Plan plan;
  if (std::string e = choose_plan(kernel, P.m, P.n, P.k, kTilesM, &plan); !e.empty()) return e;
  P.slices = plan.slices;
  P.groups_per_slice = plan.groups_per_slice;
  P.chunk_groups = plan.chunk_groups;
  P.x_stride = plan.x_stride;
  Launch l;
  set_launch(l, P.tile_rows, plan, stream);
  if (const cudaError_t e = cudaLaunchKernelEx(&l.config, kernel, P); e != cudaSuccess) {
    return std::string("mx_gemm_weight_only: launch failed: ") + cudaGetErrorString(e);
  }
  return {};
}

template <int kBits, bool kE2M1 = false>
std::string launch_for_m(const Params& P, cudaStream_t stream) {
  if (P.m <= 8) return launch<kBits, kE2M1, 1>(P, stream);
  if (P.m <= 16) return launch<kBits, kE2M1, 2>(P, stream);
  if (P.m <= 32) return launch<kBits, kE2M1, 4>(P, stream);
  return launch<kBits, kE2M1, 8>(P, stream);
}

}  // namespace

std::string mx_gemm_weight_only_cuda(const MxWeightOnlyArgs& args, cudaStream_t stream) {
  if (args.m < 0 || args.n < 0 || args.k < 0) return "mx_gemm_weight_only: negative dimension";
  if (args.m > 64) return "mx_gemm_weight_only: M must be at most 64 (use mx_gemm_cuda above)";
  if (args.out_dtype != DType::kF32 && args.out_dtype != DType::kBF16) {
    return "mx_gemm_weight_only: output must be float32 or bfloat16";
  }
  if (args.m == 0 || args.n == 0) return {};
  if (!args.x || !args.codes || !args.scales || !args.d) return "mx_gemm_weight_only: null buffer";
  const int bits = traits(args.format).bits;
  const int align = bits == 6 || bits == 2 ? 8 : 16;
  if (reinterpret_cast<uintptr_t>(args.codes) % align != 0) {
    return "mx_gemm_weight_only: codes must be " + std::to_string(align) + "-byte aligned";
  }
  if (reinterpret_cast<uintptr_t>(args.scales) % 16 != 0) {
    return "mx_gemm_weight_only: scales must be 16-byte aligned";
  }
  Params P{};
  P.codes = args.codes;
  P.scales = args.scales;
  P.format = make_decode_format(args.format);
  P.x = static_cast<const __nv_bfloat16*>(args.x);
  P.bias = args.bias;
  P.d = args.d;
  P.out_bf16 = args.out_dtype == DType::kBF16;
  P.m = args.m;
  P.n = args.n;
  P.k = args.k;
  P.tile_rows = weight_tile_rows(args.n);
  P.groups = weight_tile_scale_groups(args.k);
  P.x_vectors = args.k % 8 == 0 && reinterpret_cast<uintptr_t>(args.x) % 16 == 0;
  switch (bits) {
    case 8:
      return launch_for_m<8>(P, stream);
    case 6:
      return launch_for_m<6>(P, stream);
    case 4:
      return args.format == ElementFormat::kE2M1 ? launch_for_m<4, true>(P, stream)
                                                 : launch_for_m<4>(P, stream);
    default:
      return launch_for_m<2>(P, stream);
  }
}

}  // namespace mx::cuda
