// Weight-only MX product for small batches: Y [M, N] = X [M, K] (bfloat16, M <= 64) times W^T,
// W [N, K] in the weight-tile layout (mx/core/layout_weight_tiles.h). Memory-bound on W: every
// lane loads its 32 codes of a 16 x 64 tile in one contiguous piece, decodes them to bfloat16
// in registers (mx_decode.cuh) and feeds them to m16n8k16 tensor-core products as the A
// fragments; X comes from shared memory as the B fragments.
//
// A warp owns 16 rows of W over one slice of K; the slices' float32 partial sums go to a
// workspace and a second kernel adds them in slice order (plus the bias), so results do not
// depend on timing.
#include <cuda_bf16.h>

#include <algorithm>

#include "mx/core/layout_weight_tiles.h"
#include "mx/kernels/cuda/mma_sync.cuh"
#include "mx/kernels/cuda/mx_decode.cuh"
#include "mx/kernels/cuda/mx_gemm.h"
#include "mx/kernels/cuda/shared_memory_limit.h"

namespace mx::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kThreads = 32 * kWarps;
constexpr int kTileK = 64;
constexpr int kMaxSharedBytes = 96 * 1024;

struct Params {
  const uint8_t* codes;
  const uint8_t* scales;
  DecodeFormat format;
  const __nv_bfloat16* x;
  int64_t m;
  int64_t n;
  int64_t k;
  int64_t tile_rows;     // W rows / 16, rounded up
  int64_t tile_columns;  // K / 64, rounded up
  int tiles_per_slice;   // K tiles per slice
  int x_stride;          // shared-memory row stride of X, in bfloat16 values
  bool x_vectors;        // X rows can be copied in 16-byte pieces
  float* partial;        // [slices][M][N]
};

template <int kBits>
struct LaneCodes {
  static constexpr int kBytes = 4 * kBits;  // 32 codes
};

template <int kBits>
__device__ __forceinline__ void load_lane(const uint8_t* p, uint32_t (&w)[8]) {
#pragma unroll
  for (int i = 0; i < 8; ++i) w[i] = 0;
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

// The pairs of one lane, scaled: pair p = 8b + 4s + 2i + h belongs to tile row r + 8h and
// block b, whose scale byte is `scale[2b + h]`.
template <int kBits>
__device__ __forceinline__ void decode_lane(const uint32_t (&w)[8], const uint32_t (&scale)[4],
                                            const DecodeFormat& f, uint32_t (&out)[16]) {
  decode_values<kBits>(w, f, out);
  bool plain = true;
  bool two_steps = false;  // a factor above 2^127: two multiplies
  int e[4];
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    e[j] = scale_exponent<kBits>(scale[j], f);
    plain = plain && scale[j] != 0xFFu;
    two_steps = two_steps || e[j] > 127;
  }
  if constexpr (kBits == 8) {
    if (f.kind == DecodeKind::kE4M3 || f.kind == DecodeKind::kE5M2) {
      plain = plain && !has_special_fp8(w, f.kind == DecodeKind::kE4M3 ? 1u : 4u);
    }
  }
  if (__all_sync(0xFFFFFFFFu, plain)) {
    uint32_t m[4];
    if (!__any_sync(0xFFFFFFFFu, two_steps)) {
#pragma unroll
      for (int j = 0; j < 4; ++j) m[j] = bf16_pow2_pair(e[j]);
#pragma unroll
      for (int p = 0; p < 16; ++p) out[p] = bf16x2_mul(out[p], m[2 * (p / 8) + p % 2]);
    } else {
      uint32_t m2[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        m[j] = bf16_pow2_pair(e[j] > 127 ? e[j] - 127 : e[j]);
        m2[j] = bf16_pow2_pair(e[j] > 127 ? 127 : 0);
      }
#pragma unroll
      for (int p = 0; p < 16; ++p) {
        out[p] = bf16x2_mul(bf16x2_mul(out[p], m[2 * (p / 8) + p % 2]), m2[2 * (p / 8) + p % 2]);
      }
    }
    return;
  }
  // Rare: special codes or NaN scales somewhere in the warp; pair by pair.
  if constexpr (kBits == 8) {
    if (f.kind == DecodeKind::kE4M3 || f.kind == DecodeKind::kE5M2) {
#pragma unroll
      for (int p = 0; p < 16; ++p) {
        const uint32_t word = w[p / 2] >> (16 * (p % 2));
        out[p] = fp8_special_half(word & 0xFFu, f.kind, f.man_bits) |
                 (uint32_t(fp8_special_half((word >> 8) & 0xFFu, f.kind, f.man_bits)) << 16);
      }
    }
  }
#pragma unroll
  for (int p = 0; p < 16; ++p) {
    const int j = 2 * (p / 8) + p % 2;
    if (scale[j] == 0xFFu) {
      out[p] = 0x7FC07FC0u;
    } else if (e[j] <= 127) {
      out[p] = bf16x2_mul(out[p], bf16_pow2_pair(e[j]));
    } else {
      out[p] = bf16x2_mul(bf16x2_mul(out[p], bf16_pow2_pair(e[j] - 127)), bf16_pow2_pair(127));
    }
  }
}

template <int kBits, int kTilesM>
__global__ void __launch_bounds__(kThreads) weight_only_kernel(__grid_constant__ const Params P) {
  extern __shared__ __nv_bfloat16 xs[];  // [min(M, 8 * kTilesM)][x_stride]
  const int slice = blockIdx.y;
  const int64_t k0 = int64_t(slice) * P.tiles_per_slice * kTileK;
  const int slice_k = P.tiles_per_slice * kTileK;
  // Stage X's rows for this slice (zero past K); rows past M are never read.
  const int rows = int(P.m < 8 * kTilesM ? P.m : 8 * kTilesM);
  const int64_t k_end = P.k < k0 + slice_k ? P.k : k0 + slice_k;
  for (int row = 0; row < rows; ++row) {
    const __nv_bfloat16* src = P.x + row * P.k + k0;
    __nv_bfloat16* dst = xs + row * P.x_stride;
    if (P.x_vectors) {  // rows of 8-value (16-byte) pieces
      for (int col = 8 * threadIdx.x; col < slice_k; col += 8 * kThreads) {
        const uint4 v = k0 + col < k_end ? __ldg(reinterpret_cast<const uint4*>(src + col))
                                         : make_uint4(0, 0, 0, 0);
        *reinterpret_cast<uint4*>(dst + col) = v;
      }
    } else {
      for (int col = threadIdx.x; col < slice_k; col += kThreads) {
        dst[col] = k0 + col < k_end ? src[col] : __float2bfloat16_rn(0.0f);
      }
    }
  }
  __syncthreads();

  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int64_t tile_row = int64_t(blockIdx.x) * kWarps + warp;
  if (tile_row >= P.tile_rows) return;
  const int64_t first = int64_t(slice) * P.tiles_per_slice;
  const int64_t last = min(first + P.tiles_per_slice, P.tile_columns);

  float acc[kTilesM][4] = {};
  const int r = lane / 4;
  const int q = lane % 4;
  constexpr int kLaneBytes = LaneCodes<kBits>::kBytes;
  // Four tiles' loads per lane in flight, and the next four issued before these are used.
  constexpr int kAhead = 4;
  uint32_t w[kAhead][8];
  uint32_t mine[kAhead];  // lane l's scale byte: tile row l / 2, block l % 2
  auto load_group = [&](int64_t tk0, uint32_t(&codes)[kAhead][8], uint32_t(&scales)[kAhead]) {
#pragma unroll
    for (int u = 0; u < kAhead; ++u) {
      const int64_t tile = tile_row * P.tile_columns + min(tk0 + u, last - 1);
      load_lane<kBits>(P.codes + tile * 32 * kLaneBytes + lane * kLaneBytes, codes[u]);
      scales[u] = __ldg(P.scales + tile * 32 + lane);
    }
  };
  load_group(first, w, mine);
  for (int64_t tk0 = first; tk0 < last; tk0 += kAhead) {
    uint32_t w_next[kAhead][8];
    uint32_t mine_next[kAhead];
    if (tk0 + kAhead < last) load_group(tk0 + kAhead, w_next, mine_next);
#pragma unroll
    for (int u = 0; u < kAhead; ++u) {
      if (tk0 + u >= last) break;
      uint32_t scale[4];  // rows r and r + 8 of each block, from the lanes that loaded them
#pragma unroll
      for (int b = 0; b < 2; ++b) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          scale[2 * b + h] = __shfl_sync(0xFFFFFFFFu, mine[u], 2 * (r + 8 * h) + b);
        }
      }
      uint32_t a[16];
      decode_lane<kBits>(w[u], scale, P.format, a);
      const int col0 = int(tk0 + u - first) * kTileK;
#pragma unroll
      for (int step = 0; step < 4; ++step) {  // 16 columns each: step = 2b + s
        const uint32_t frag[4] = {a[4 * step], a[4 * step + 1], a[4 * step + 2], a[4 * step + 3]};
        const int col = col0 + 16 * step + 2 * q;
#pragma unroll
        for (int t = 0; t < kTilesM; ++t) {
          const __nv_bfloat16* xrow = xs + (8 * t + r) * P.x_stride + col;
          const bool live = 8 * t + r < P.m;  // rows past M multiply as zero
          mma_m16n8k16_bf16(acc[t], frag, live ? *reinterpret_cast<const uint32_t*>(xrow) : 0u,
                            live ? *reinterpret_cast<const uint32_t*>(xrow + 8) : 0u);
        }
      }
    }
#pragma unroll
    for (int u = 0; u < kAhead; ++u) {
      mine[u] = mine_next[u];
#pragma unroll
      for (int i = 0; i < 8; ++i) w[u][i] = w_next[u][i];
    }
  }
  // acc[t]: (W row r, X row 8t + 2q), (r, 8t + 2q + 1), (r + 8, ...), (r + 8, ...).
  float* out = P.partial + int64_t(slice) * P.m * P.n;
#pragma unroll
  for (int t = 0; t < kTilesM; ++t) {
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t n = tile_row * 16 + r + 8 * (j / 2);
      const int64_t m = 8 * t + 2 * q + j % 2;
      if (n < P.n && m < P.m) out[m * P.n + n] = acc[t][j];
    }
  }
}

__global__ void sum_slices_kernel(const float* partial, int slices, int64_t count, int64_t n,
                                  const float* bias, bool out_bf16, void* d) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= count) return;
  float sum = partial[i];
  for (int s = 1; s < slices; ++s) sum += partial[int64_t(s) * count + i];
  if (bias) sum += bias[i % n];
  if (out_bf16) {
    static_cast<__nv_bfloat16*>(d)[i] = __float2bfloat16_rn(sum);
  } else {
    static_cast<float*>(d)[i] = sum;
  }
}

// Slices of K: enough warps to keep W's reads in flight (about 24 per multiprocessor), within the
// shared memory that one slice of X takes.
struct Plan {
  int slices;
  int tiles_per_slice;
  int x_stride;
  int shared_bytes;
};

Plan plan_for(int64_t m, int64_t n, int64_t k) {
  const int64_t tile_rows = weight_tile_rows(n);
  const int64_t tile_columns = std::max<int64_t>(1, weight_tile_columns(k));
  const int rows_m = int(std::min<int64_t>(std::max<int64_t>(m, 1), 64));
  const int64_t want_warps = 132 * 24;
  int64_t slices =
      std::clamp<int64_t>(want_warps / std::max<int64_t>(1, tile_rows), 1, tile_columns);
  int64_t per_slice = (tile_columns + slices - 1) / slices;
  const int64_t max_per_slice = std::max<int64_t>(1, (kMaxSharedBytes / (2 * rows_m) - 8) / kTileK);
  per_slice = std::min(per_slice, max_per_slice);
  slices = (tile_columns + per_slice - 1) / per_slice;
  Plan p;
  p.slices = int(slices);
  p.tiles_per_slice = int(per_slice);
  p.x_stride = int(per_slice * kTileK + 8);  // +8: rows 4 banks apart, conflict-free B loads
  p.shared_bytes = rows_m * p.x_stride * 2;
  return p;
}

template <int kBits, int kTilesM>
std::string launch(const Params& P, const Plan& plan, cudaStream_t stream) {
  static SharedMemoryLimit limit;
  const cudaError_t attribute = limit.ensure(
      reinterpret_cast<const void*>(&weight_only_kernel<kBits, kTilesM>), kMaxSharedBytes);
  if (attribute != cudaSuccess) {
    return std::string("mx_gemm_weight_only: cannot reserve shared memory: ") +
           cudaGetErrorString(attribute);
  }
  const dim3 grid(unsigned((P.tile_rows + kWarps - 1) / kWarps), unsigned(plan.slices));
  weight_only_kernel<kBits, kTilesM><<<grid, kThreads, plan.shared_bytes, stream>>>(P);
  return {};
}

template <int kBits>
std::string launch_for_m(const Params& P, const Plan& plan, cudaStream_t stream) {
  if (P.m <= 8) return launch<kBits, 1>(P, plan, stream);
  if (P.m <= 16) return launch<kBits, 2>(P, plan, stream);
  if (P.m <= 32) return launch<kBits, 4>(P, plan, stream);
  return launch<kBits, 8>(P, plan, stream);
}

}  // namespace

int64_t mx_weight_only_workspace_bytes(int64_t m, int64_t n, int64_t k) {
  if (m <= 0 || n <= 0) return 0;
  return int64_t(plan_for(m, n, k).slices) * m * n * 4;
}

std::string mx_gemm_weight_only_cuda(const MxWeightOnlyArgs& args, cudaStream_t stream) {
  if (args.m < 0 || args.n < 0 || args.k < 0) return "mx_gemm_weight_only: negative dimension";
  if (args.m > 64) return "mx_gemm_weight_only: M must be at most 64 (use mx_gemm_cuda above)";
  if (args.out_dtype != DType::kF32 && args.out_dtype != DType::kBF16) {
    return "mx_gemm_weight_only: output must be float32 or bfloat16";
  }
  if (args.m == 0 || args.n == 0) return {};
  if (!args.x || !args.codes || !args.scales || !args.d || !args.workspace) {
    return "mx_gemm_weight_only: null buffer";
  }
  const int bits = traits(args.format).bits;
  const int align = bits == 6 || bits == 2 ? 8 : 16;
  if (reinterpret_cast<uintptr_t>(args.codes) % align != 0) {
    return "mx_gemm_weight_only: codes must be " + std::to_string(align) + "-byte aligned";
  }
  if (args.workspace_bytes < mx_weight_only_workspace_bytes(args.m, args.n, args.k)) {
    return "mx_gemm_weight_only: workspace too small (see mx_weight_only_workspace_bytes)";
  }
  const Plan plan = plan_for(args.m, args.n, args.k);
  Params P{};
  P.codes = args.codes;
  P.scales = args.scales;
  P.format = make_decode_format(args.format);
  P.x = static_cast<const __nv_bfloat16*>(args.x);
  P.m = args.m;
  P.n = args.n;
  P.k = args.k;
  P.tile_rows = weight_tile_rows(args.n);
  P.tile_columns = weight_tile_columns(args.k);
  P.tiles_per_slice = plan.tiles_per_slice;
  P.x_stride = plan.x_stride;
  P.x_vectors = args.k % 8 == 0 && reinterpret_cast<uintptr_t>(args.x) % 16 == 0;
  P.partial = args.workspace;
  if (P.tile_columns == 0) {  // K = 0: the partial sums are zero
    if (cudaMemsetAsync(P.partial, 0, size_t(args.m * args.n * 4), stream) != cudaSuccess) {
      return "mx_gemm_weight_only: memset failed";
    }
  } else {
    std::string e;
    switch (bits) {
      case 8:
        e = launch_for_m<8>(P, plan, stream);
        break;
      case 6:
        e = launch_for_m<6>(P, plan, stream);
        break;
      case 4:
        e = launch_for_m<4>(P, plan, stream);
        break;
      default:
        e = launch_for_m<2>(P, plan, stream);
        break;
    }
    if (!e.empty()) return e;
  }
  const int64_t count = args.m * args.n;
  const int slices = P.tile_columns == 0 ? 1 : plan.slices;
  sum_slices_kernel<<<unsigned((count + 255) / 256), 256, 0, stream>>>(
      P.partial, slices, count, args.n, args.bias, args.out_dtype == DType::kBF16, args.d);
  const cudaError_t launched = cudaGetLastError();
  if (launched != cudaSuccess) {
    return std::string("mx_gemm_weight_only: launch failed: ") + cudaGetErrorString(launched);
  }
  return {};
}

}  // namespace mx::cuda
