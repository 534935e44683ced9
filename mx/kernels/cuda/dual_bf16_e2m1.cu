// Dual quantize of a bfloat16 matrix to MXFP4 (E2M1, nearest-even, 1x32 and 32x1 blocks) on
// packed bfloat16 pairs. The general dual kernel widens every value to float32 and runs the
// float32 E2M1 encoder twice per value, which leaves it issue-bound; here one 32-bit word holds
// two values and every step of the encoder works on both at once:
//
//   a     = |w| * (1/scale)                 mul.rn.bf16x2: exact, the scale is a power of two
//   e     = max(exponent bits of a, 1.0's)  max.u16x2
//   magic = e + 6 << 7                      2^(exp + 6): its bfloat16 ulp is E2M1's ulp at a
//   sum   = a + magic                       add.rn.bf16x2 rounds a to E2M1's grid, ties to even
//   code  = min(sum - magic + 2 (exp - 127), 7), sign from w
//
// Per 16-bit lane every intermediate of `code` is a small non-negative integer, so the packed
// 32-bit adds never carry between lanes. NaN/Inf lanes are clamped to the largest finite value
// first (their block is a NaN block, written as zeros) so that they cannot disturb the other
// lane. Blocks whose scale byte is below 4 or above 253 go through float32 instead: there
// 1/scale or a value that matters is a bfloat16 subnormal, which the packed unit may flush.
//
// A CTA of 128 threads stages a 32 x 256 tile (16 KB) in shared memory with 16-byte chunks
// swizzled (chunk c of a row at c ^ (c / 8 % 8)), so that both the row reads (one row block =
// four chunks per thread) and the column reads (one word = two columns per thread) are free of
// bank conflicts. Each thread quantizes two row blocks and two column blocks.
#include <cuda_runtime.h>

#include "mx/kernels/cuda/device_common.cuh"
#include "mx/kernels/cuda/dual_bf16_e2m1.cuh"

namespace mx::cuda {
namespace {

constexpr int kTileCols = 256, kThreads = 128;

__device__ __forceinline__ int chunk_slot(int row, int chunk) {
  return row * 32 + (chunk ^ ((chunk >> 3) & 7));
}

__device__ __forceinline__ uint32_t mul_bf16x2(uint32_t a, uint32_t b) {
  uint32_t d;
  asm("mul.rn.bf16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b));
  return d;
}
__device__ __forceinline__ uint32_t add_bf16x2(uint32_t a, uint32_t b) {
  uint32_t d;
  asm("add.rn.bf16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b));
  return d;
}
__device__ __forceinline__ uint32_t min_u16x2(uint32_t a, uint32_t b) {
  uint32_t d;
  asm("min.u16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b));
  return d;
}

// E2M1 codes of the two bfloat16 values of `w` (bits 0-3 and 16-19), each lane scaled by its
// lane of `inv2` (bfloat16 powers of two).
__device__ __forceinline__ uint32_t e2m1_pair(uint32_t w, uint32_t inv2) {
  const uint32_t mag = min_u16x2(w & 0x7FFF7FFFu, 0x7F7F7F7Fu);
  const uint32_t a = mul_bf16x2(mag, inv2);
  const uint32_t e = vmax_u16x2(a & 0x7F807F80u, 0x3F803F80u);
  const uint32_t magic = e + 0x03000300u;
  const uint32_t sum = add_bf16x2(a, magic);
  const uint32_t code = sum - magic + (e >> 6) - 0x00FE00FEu;
  return min_u16x2(code, 0x00070007u) | ((w >> 12) & 0x00080008u);
}

// The same codes through float32 (exact for every scale), for the rare blocks above.
__device__ __forceinline__ uint32_t e2m1_pair_f32(uint32_t w, float inv_lo, float inv_hi) {
  uint32_t out = 0;
#pragma unroll
  for (int lane = 0; lane < 2; ++lane) {
    const uint32_t h = (w >> (16 * lane)) & 0xFFFFu;
    const float a = __fmul_rn(__uint_as_float((h & 0x7FFFu) << 16), lane ? inv_hi : inv_lo);
    const uint32_t E = max(__float_as_uint(a) >> 23, 127u);
    const uint32_t magic = (E + 22u) << 23;
    const uint32_t q = __float_as_uint(__fadd_rn(a, __uint_as_float(magic))) - magic;
    const uint32_t code = min(q + 2u * (E - 127u), 7u) | ((h >> 12) & 8u);
    out |= code << (16 * lane);
  }
  return out;
}

__device__ __forceinline__ bool packed_path_exact(uint8_t scale) {
  return scale >= 4 && scale <= 253;
}

// 1/scale of a block as a bfloat16 (exact: a power of two; 0 for a NaN block).
__device__ __forceinline__ uint32_t inv_bf16(const BlockState& st) {
  return __float_as_uint(st.inv_scale) >> 16;
}

// Bytes 0 and 2 of four words into two words: lo = their byte 0s, hi = their byte 2s.
__device__ __forceinline__ void gather_bytes(const uint32_t z[4], uint32_t& lo, uint32_t& hi) {
  const uint32_t a = __byte_perm(z[0], z[1], 0x6240);
  const uint32_t b = __byte_perm(z[2], z[3], 0x6240);
  lo = __byte_perm(a, b, 0x5410);
  hi = __byte_perm(a, b, 0x7632);
}

__global__ void __launch_bounds__(kThreads)
    dual_bf16_e2m1_kernel(__grid_constant__ const DualParams P) {
  __shared__ uint4 tile[32 * 32];
  __shared__ uint4 stage_all[kThreads / 32 * 32 * 3];
  const int64_t R0 = int64_t(blockIdx.y) * 32;
  const int64_t C0 = int64_t(blockIdx.x) * kTileCols;
  const int t = threadIdx.x;
  const DevSpec& s = P.s;
  {
    uint4 x[8];
#pragma unroll
    for (int q = 0; q < 8; ++q) {
      const int e = q * kThreads + t, r = e >> 5, c = e & 31;
      x[q] = __ldg(reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(P.in) +
                                                  (R0 + r) * P.K + C0 + c * 8));
    }
#pragma unroll
    for (int q = 0; q < 8; ++q) {
      const int e = q * kThreads + t;
      tile[chunk_slot(e >> 5, e & 31)] = x[q];
    }
  }
  __syncthreads();

  // Row blocks: block b of tile row r, for (r, b) = (id / 8, id % 8), id = t and t + 128.
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int id = t + i * kThreads, r = id >> 3, b = id & 7;
    uint32_t w[16];
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const uint4 c = tile[chunk_slot(r, 4 * b + q)];
      w[4 * q] = c.x, w[4 * q + 1] = c.y, w[4 * q + 2] = c.z, w[4 * q + 3] = c.w;
    }
    uint32_t m2 = 0;
#pragma unroll
    for (int j = 0; j < 16; ++j) m2 = vmax_u16x2(m2, w[j] & 0x7FFF7FFFu);
    BlockState st{};
    const uint32_t amax = max(m2 >> 16, m2 & 0xFFFFu);
    st.nan_block = amax >= 0x7F80u;
    finish_scale(s, amax << 16, st);
    uint32_t x[16];
    if (packed_path_exact(st.scale)) {
      const uint32_t inv = inv_bf16(st) * 0x10001u;
#pragma unroll
      for (int j = 0; j < 16; ++j) x[j] = e2m1_pair(w[j], inv);
    } else {
#pragma unroll
      for (int j = 0; j < 16; ++j) x[j] = e2m1_pair_f32(w[j], st.inv_scale, st.inv_scale);
    }
    // Word j holds values 2j (bits 0-3) and 2j + 1 (bits 16-19): byte pairs, then words.
    uint32_t out[4];
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      uint32_t u[2];
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const uint32_t v = x[4 * q + 2 * h] | (x[4 * q + 2 * h + 1] << 8);
        u[h] = v | (v >> 12);
      }
      out[q] = st.nan_block ? 0u : __byte_perm(u[0], u[1], 0x5410);
    }
    const int64_t blk = (R0 + r) * P.row_blocks_per_row + (C0 >> 5) + b;
    P.rows.scales[blk] = st.scale;
    reinterpret_cast<uint4*>(P.rows.elements)[blk] = make_uint4(out[0], out[1], out[2], out[3]);
  }

  // Column blocks: tile columns 2t and 2t + 1, one bfloat16 pair per row.
  {
    const int chunk = t >> 2, word = t & 3;
    const uint32_t* words = reinterpret_cast<const uint32_t*>(tile);
    uint32_t w[32];
#pragma unroll
    for (int j = 0; j < 32; ++j) w[j] = words[chunk_slot(j, chunk) * 4 + word];
    uint32_t m2 = 0;
#pragma unroll
    for (int j = 0; j < 32; ++j) m2 = vmax_u16x2(m2, w[j] & 0x7FFF7FFFu);
    BlockState lo{}, hi{};
    lo.nan_block = (m2 & 0xFFFFu) >= 0x7F80u;
    hi.nan_block = (m2 >> 16) >= 0x7F80u;
    finish_scale(s, m2 << 16, lo);
    finish_scale(s, m2 & 0xFFFF0000u, hi);
    uint32_t x[32];
    if (packed_path_exact(lo.scale) && packed_path_exact(hi.scale)) {
      const uint32_t inv = inv_bf16(lo) | (inv_bf16(hi) << 16);
#pragma unroll
      for (int j = 0; j < 32; ++j) x[j] = e2m1_pair(w[j], inv);
    } else {
#pragma unroll
      for (int j = 0; j < 32; ++j) x[j] = e2m1_pair_f32(w[j], lo.inv_scale, hi.inv_scale);
    }
    // Rows 2k and 2k + 1 share a byte of each column's block: z_k has column 2t's byte k in
    // byte 0 and column 2t + 1's in byte 2.
    uint32_t col_lo[4], col_hi[4];
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      uint32_t z[4];
#pragma unroll
      for (int h = 0; h < 4; ++h) z[h] = x[8 * q + 2 * h] | (x[8 * q + 2 * h + 1] << 4);
      gather_bytes(z, col_lo[q], col_hi[q]);
      if (lo.nan_block) col_lo[q] = 0;
      if (hi.nan_block) col_hi[q] = 0;
    }
    const int64_t blk = (R0 >> 5) * P.K + C0 + 2 * t;
    P.cols.scales[blk] = lo.scale;
    P.cols.scales[blk + 1] = hi.scale;
    const uint4 v[2] = {make_uint4(col_lo[0], col_lo[1], col_lo[2], col_lo[3]),
                        make_uint4(col_hi[0], col_hi[1], col_hi[2], col_hi[3])};
    store_group<2>(reinterpret_cast<uint4*>(P.cols.elements) + blk, v, 32, true,
                   stage_all + (t >> 5) * (32 * 3));
  }
}

}  // namespace

bool dual_bf16_e2m1_applies(const DualParams& P, const QuantSpec& spec, DType dtype) {
  const auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  return dtype == DType::kBF16 && spec.format == ElementFormat::kE2M1 &&
         spec.rounding == Rounding::kNearestEven && !spec.asymmetric && !spec.flush_subnormals &&
         P.M % 32 == 0 && P.K % kTileCols == 0 && P.M / 32 <= 65535 && aligned(P.in) &&
         aligned(P.rows.elements) && aligned(P.cols.elements);
}

void launch_dual_bf16_e2m1(const DualParams& P, cudaStream_t stream) {
  const dim3 grid{unsigned(P.K / kTileCols), unsigned(P.M / 32)};
  dual_bf16_e2m1_kernel<<<grid, kThreads, 0, stream>>>(P);
}

}  // namespace mx::cuda
