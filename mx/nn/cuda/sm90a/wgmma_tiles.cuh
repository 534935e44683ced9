// The tile products of the attention kernels on Hopper's warpgroup products (WgmmaTiles, the
// policy that flash_forward_kernels.cuh and flash_backward_kernels.cuh take): a block is one
// warpgroup of four warps that owns 64 rows, as in flash_tiles.cuh, whose accumulator layout
// (m16n8 tiles, warp w on rows 16w .. 16w + 15) the wgmma accumulators share, so that softmax,
// masks, casts and stores are flash_tiles.cuh's. Operand
// tiles in shared memory are 128-byte swizzled (mx/kernels/cuda/wgmma.cuh), 64 columns to a
// slice: read K-major as the B of S = A B^T products, or MN-major (rows along the reduction) as
// the B of X B products whose X is an accumulator tile converted to A fragments in registers.
#pragma once

#include <cstdint>

#include "mx/kernels/cuda/mx_gemm.h"
#include "mx/kernels/cuda/wgmma.cuh"
#include "mx/nn/cuda/flash_tiles.cuh"

namespace mx::nn::cuda::flash::sm90a {

namespace wg = mx::cuda::wgmma;

// A tile of 64 rows by HS columns: HS / 64 slices of 64 rows x 128 bytes, each 1024-aligned.
constexpr int kSliceBytes = kTile * 128;
template <int HS>
constexpr int kSwizzledTileBytes = (HS / 64) * kSliceBytes;

// The swizzle pattern is a function of address bits 7-9: tiles start on 1024-byte boundaries,
// and kernels ask for 1024 bytes more shared memory than their tiles take.
__device__ __forceinline__ unsigned char* align_1024(unsigned char* p) {
  return reinterpret_cast<unsigned char*>((reinterpret_cast<uintptr_t>(p) + 1023) &
                                          ~uintptr_t(1023));
}

// Rows [row0, row0 + 64) of a tensor whose row r starts at src + r * stride into a swizzled
// tile; rows at or past t are zeros. Consecutive threads take consecutive 16-byte pieces of a
// row (coalesced reads); the eight pieces of a row land in eight different bank groups.
template <int HS>
__device__ __forceinline__ void load_swizzled(unsigned char* dst, const bf16* src, int64_t stride,
                                              int64_t row0, int64_t t) {
  constexpr int kChunks = HS / 8;
  for (int c = int(threadIdx.x); c < kTile * kChunks; c += kThreadsTc) {
    const int r = c / kChunks, piece = c % kChunks, slice = piece / 8, chunk = piece % 8;
    unsigned char* d = dst + slice * kSliceBytes + r * 128 + ((chunk ^ (r & 7)) << 4);
    if (row0 + r < t) {
      cp_async16(d, src + (row0 + r) * stride + piece * 8);
    } else {
      *reinterpret_cast<uint4*>(d) = make_uint4(0, 0, 0, 0);
    }
  }
}

// After cp_async_wait: this thread's copies and zero fills become visible to the tensor cores'
// reads, then every thread's.
__device__ __forceinline__ void tiles_ready() {
  wg::fence_shared_for_async();
  __syncthreads();
}

// K-major descriptor of rows [row0, row0 + 64) (or 32), columns [16 kc, 16 kc + 16) of a
// swizzled tile; row0 a multiple of 8.
__device__ __forceinline__ uint64_t k_major(const unsigned char* tile, int kc, int row0 = 0) {
  return wg::descriptor(tile + (kc / 4) * kSliceBytes + row0 * 128 + (kc % 4) * 32);
}

// MN-major descriptor of rows [16 ks, 16 ks + 16) of a swizzled tile (rows along K), all HS
// columns along N.
__device__ __forceinline__ uint64_t mn_major(const unsigned char* tile, int ks) {
  return wg::descriptor_mn(tile + ks * 16 * 128, kSliceBytes);
}

// acc[64 x 8N] (N = 4 or 8 n-tiles) = A[64 x HS] B[8N x HS]^T: A the whole tile `a`, B rows
// [row0, row0 + 8N) of tile `b`. Issued, not waited for.
template <int HS, int N>
__device__ __forceinline__ void issue_abt(float (&acc)[N][4], const unsigned char* a,
                                          const unsigned char* b, int row0 = 0) {
#pragma unroll
  for (int kc = 0; kc < HS / 16; ++kc) {
    if constexpr (N == 8) {
      wg::wgmma_m64n64k16_ss(acc, k_major(a, kc), k_major(b, kc, row0), kc > 0);
    } else {
      static_assert(N == 4, "32 or 64 columns");
      wg::wgmma_m64n32k16_ss(acc, k_major(a, kc), k_major(b, kc, row0), kc > 0);
    }
  }
}

// The A fragments of an accumulator tile X[64 x 8N], rounded to bfloat16: fragment kc holds
// columns [16 kc, 16 kc + 16).
template <int N>
__device__ __forceinline__ void pack_a(uint32_t (&a)[N / 2][4], const float (&x)[N][4]) {
#pragma unroll
  for (int kc = 0; kc < N / 2; ++kc) {
    a[kc][0] = pack_bf16(x[2 * kc][0], x[2 * kc][1]);
    a[kc][1] = pack_bf16(x[2 * kc][2], x[2 * kc][3]);
    a[kc][2] = pack_bf16(x[2 * kc + 1][0], x[2 * kc + 1][1]);
    a[kc][3] = pack_bf16(x[2 * kc + 1][2], x[2 * kc + 1][3]);
  }
}

// out[64 x HS] += X[64 x 8N] B[8N x HS]: X as A fragments (pack_a), B rows [row0, row0 + 8N)
// of tile `b` read MN-major. Issued, not waited for. Fragments are packed before the fence that
// precedes the products, so that the compiler need not fence again between them.
template <int HS, int N>
__device__ __forceinline__ void issue_ab(float (&out)[HS / 8][4], const uint32_t (&a)[N / 2][4],
                                         const unsigned char* b, int row0 = 0) {
#pragma unroll
  for (int kc = 0; kc < N / 2; ++kc) {
    if constexpr (HS == 64) {
      wg::wgmma_m64n64k16_rs_mn(out, a[kc], mn_major(b, row0 / 16 + kc));
    } else {
      static_assert(HS == 128, "head size 64 or 128");
      wg::wgmma_m64n128k16_rs_mn(out, a[kc], mn_major(b, row0 / 16 + kc));
    }
  }
}

// Waits for every product issued, and keeps the compiler from reading their accumulators before.
template <int N1, int N2>
__device__ __forceinline__ void finish(float (&x)[N1][4], float (&y)[N2][4]) {
  wg::commit();
  wg::wait<0>();
  wg::pin(x);
  wg::pin(y);
}
template <int N>
__device__ __forceinline__ void finish(float (&x)[N][4]) {
  wg::commit();
  wg::wait<0>();
  wg::pin(x);
}

// The tile products of the kernels' sm_90a build (MmaTiles in flash_tiles.cuh has the same
// members): the block's four warps multiply its 64 rows together.
struct WgmmaTiles {
  // Every warp takes part in every product: columns are skipped only for the whole block.
  static constexpr bool kPerWarp = false;
  template <int HS>
  static constexpr size_t kTileBytes = kSwizzledTileBytes<HS>;
  static constexpr size_t kAlignSlack = 1024;
  __device__ static unsigned char* tiles(unsigned char* smem) { return align_1024(smem); }
  template <int HS>
  __device__ static void load(unsigned char* dst, const bf16* src, int64_t stride, int64_t row0,
                              int64_t t) {
    load_swizzled<HS>(dst, src, stride, row0, t);
  }
  __device__ static void ready() { tiles_ready(); }
  // The first product overwrites its accumulators; zeros keep them defined before it.
  template <int N>
  __device__ static void zero(float (&acc)[N][4]) {
#pragma unroll
    for (int n = 0; n < N; ++n) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
  }
  template <int HS>
  struct A {
    const unsigned char* tile;
    __device__ void load(const unsigned char* t) { tile = t; }
  };
  template <int HS, int N>
  __device__ static void abt(float (&acc)[N][4], const A<HS>& a, const unsigned char* b,
                             int row0 = 0) {
    zero(acc);
    wg::fence();
    issue_abt<HS, N>(acc, a.tile, b, row0);
    finish(acc);
  }
  template <int HS, int N>
  __device__ static void abt2(float (&acc1)[N][4], const A<HS>& a1, const unsigned char* b1,
                              float (&acc2)[N][4], const A<HS>& a2, const unsigned char* b2,
                              int row0) {
    zero(acc1);
    zero(acc2);
    wg::fence();
    issue_abt<HS, N>(acc1, a1.tile, b1, row0);
    issue_abt<HS, N>(acc2, a2.tile, b2, row0);
    finish(acc1, acc2);
  }
  template <int HS, int N>
  __device__ static void abt(float (&acc)[N][4], const unsigned char* a, const unsigned char* b,
                             int row0 = 0) {
    abt<HS, N>(acc, A<HS>{a}, b, row0);
  }
  template <int HS, int N>
  __device__ static void abt2(float (&acc1)[N][4], const unsigned char* a1, const unsigned char* b1,
                              float (&acc2)[N][4], const unsigned char* a2, const unsigned char* b2,
                              int row0) {
    abt2<HS, N>(acc1, A<HS>{a1}, b1, acc2, A<HS>{a2}, b2, row0);
  }
  template <int HS, int N>
  __device__ static void xb(float (&out)[HS / 8][4], const float (&x)[N][4], const unsigned char* b,
                            int row0 = 0) {
    uint32_t a[N / 2][4];
    pack_a(a, x);
    wg::fence();
    issue_ab<HS, N>(out, a, b, row0);
    finish(out);
  }
  template <int HS, int N>
  __device__ static void xb2(float (&out1)[HS / 8][4], const float (&x1)[N][4],
                             const unsigned char* b1, float (&out2)[HS / 8][4],
                             const float (&x2)[N][4], const unsigned char* b2, int row0) {
    uint32_t a1[N / 2][4], a2[N / 2][4];
    pack_a(a1, x1);
    pack_a(a2, x2);
    wg::fence();
    issue_ab<HS, N>(out1, a1, b1, row0);
    issue_ab<HS, N>(out2, a2, b2, row0);
    finish(out1, out2);
  }
};

inline bool on_compute_capability_90() {
  int major = 0, minor = 0;
  return mx::cuda::current_compute_capability(&major, &minor) && major == 9 && minor == 0;
}

}  // namespace mx::nn::cuda::flash::sm90a
