// Dequantize: codes, scales (and offsets) back to float32 or bfloat16. The general kernel takes
// any grid, the chunks kernel contiguous blocks of whole bytes, and the fast one 32 codes per
// thread. See NOTES.md.
#include "mx/kernels/cuda/dequantize_kernels.cuh"

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>

#include "mx/core/dtype.h"
#include "mx/kernels/cuda/chunk_codec.cuh"
#include "mx/kernels/cuda/codec.cuh"
#include "mx/kernels/cuda/device_common.cuh"
#include "mx/kernels/cuda/vec_codec.cuh"

namespace mx::cuda {
namespace {

__device__ __forceinline__ float decode_one(const DequantParams& P, uint32_t code, bool nan_block,
                                            float x, float m) {
  if (nan_block) return __uint_as_float(kNanF32);
  float t = __fmul_rn(P.f.decode[code], x);
  if (P.asym) t = __fadd_rn(t, m);
  return t;
}

// Contiguous blocks with k % 8 == 0: one thread per chunk of 8 codes (`bits` bytes in, 8 values
// out).
__global__ void __launch_bounds__(256)
    dequantize_chunks_kernel(__grid_constant__ const DequantParams P) {
  const int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int k = P.g.k, bits = P.f.bits, cpb = k / 8;
  if (t >= P.g.num_blocks * cpb) return;
  const int64_t b = t / cpb;
  const int c = int(t - b * cpb);
  const int64_t run = b / P.g.blocks_per_run;
  const int64_t j = b - run * P.g.blocks_per_run;
  const int64_t i0 = run * P.g.run_len + j * k + c * 8;
  const int n = int(min(int64_t(8), P.g.run_len - j * k - c * 8));
  if (n <= 0) return;
  const uint8_t scale = __ldg(P.scales + b);
  const bool nan_block = scale == kScaleNan;
  const float x = e8m0_value(scale);
  const float m = P.asym ? bf16_bits_to_f32(P.offsets[b]) : 0.0f;
  const uint8_t* q = P.elements + t * bits;
  uint64_t packed = 0;
  switch (bits) {
    case 8:
      packed = __ldg(reinterpret_cast<const unsigned long long*>(q));
      break;
    case 4:
      packed = __ldg(reinterpret_cast<const unsigned int*>(q));
      break;
    case 2:
      packed = __ldg(reinterpret_cast<const unsigned short*>(q));
      break;
    default:
      for (int i = 0; i < bits; ++i) packed |= uint64_t(q[i]) << (8 * i);
  }
  const uint32_t code_mask = (1u << bits) - 1u;
  float d[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    d[i] = decode_one(P, uint32_t(packed >> (i * bits)) & code_mask, nan_block, x, m);
  }
  if (n == 8 && P.out_dtype == int(DType::kF32) &&
      (reinterpret_cast<uintptr_t>(static_cast<float*>(P.out) + i0) & 15) == 0) {
    float4* p = reinterpret_cast<float4*>(static_cast<float*>(P.out) + i0);
    p[0] = make_float4(d[0], d[1], d[2], d[3]);
    p[1] = make_float4(d[4], d[5], d[6], d[7]);
  } else if (n == 8 && P.out_dtype == int(DType::kBF16) &&
             (reinterpret_cast<uintptr_t>(static_cast<uint16_t*>(P.out) + i0) & 15) == 0) {
    uint32_t w[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      w[i] =
          uint32_t(f32_to_bf16_bits(d[2 * i])) | (uint32_t(f32_to_bf16_bits(d[2 * i + 1])) << 16);
    }
    *reinterpret_cast<uint4*>(static_cast<uint16_t*>(P.out) + i0) =
        make_uint4(w[0], w[1], w[2], w[3]);
  } else {
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      if (i < n) store_out(P.out, P.out_dtype, i0 + i, d[i]);
    }
  }
}

__global__ void __launch_bounds__(256) dequantize_kernel(__grid_constant__ const DequantParams P) {
  const int64_t b = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (b >= P.g.num_blocks) return;
  const int k = P.g.k, bits = P.f.bits;
  const uint8_t scale = P.scales[b];
  const float x = e8m0_value(scale);
  const bool nan_block = scale == kScaleNan;
  const float m = P.asym ? bf16_bits_to_f32(P.offsets[b]) : 0.0f;
  const int64_t first_bit = b * int64_t(k) * bits;  // blocks need not start on a byte
  const uint8_t* src = P.elements + first_bit / 8;
  const uint32_t code_mask = (1u << bits) - 1u;
  auto decode = [&](uint32_t code) {
    if (nan_block) return __uint_as_float(kNanF32);
    float t = __fmul_rn(P.f.decode[code], x);
    if (P.asym) t = __fadd_rn(t, m);
    return t;
  };
  if (P.g.contiguous && (k & 7) == 0) {
    const int64_t run = b / P.g.blocks_per_run;
    const int64_t j = b % P.g.blocks_per_run;
    const int64_t first = run * P.g.run_len + j * k;
    const int n_real = int(min(int64_t(k), P.g.run_len - j * k));
    for (int c = 0; c < k / 8; ++c) {
      const uint8_t* q = src + c * bits;
      uint64_t packed = 0;
      switch (bits) {
        case 8:
          packed = *reinterpret_cast<const uint64_t*>(q);
          break;
        case 4:
          packed = *reinterpret_cast<const uint32_t*>(q);
          break;
        case 2:
          packed = *reinterpret_cast<const uint16_t*>(q);
          break;
        default:
          for (int i = 0; i < bits; ++i) packed |= uint64_t(q[i]) << (8 * i);
      }
      float d[8];
#pragma unroll
      for (int i = 0; i < 8; ++i) d[i] = decode(uint32_t(packed >> (i * bits)) & code_mask);
      const int64_t i0 = first + c * 8;
      const int n = n_real - c * 8;
      if (n >= 8 && P.out_dtype == int(DType::kF32) &&
          (reinterpret_cast<uintptr_t>(static_cast<float*>(P.out) + i0) & 15) == 0) {
        float4* p = reinterpret_cast<float4*>(static_cast<float*>(P.out) + i0);
        p[0] = make_float4(d[0], d[1], d[2], d[3]);
        p[1] = make_float4(d[4], d[5], d[6], d[7]);
      } else if (n >= 8 && P.out_dtype == int(DType::kBF16) &&
                 (reinterpret_cast<uintptr_t>(static_cast<uint16_t*>(P.out) + i0) & 15) == 0) {
        uint32_t w[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          w[i] = uint32_t(f32_to_bf16_bits(d[2 * i])) |
                 (uint32_t(f32_to_bf16_bits(d[2 * i + 1])) << 16);
        }
        *reinterpret_cast<uint4*>(static_cast<uint16_t*>(P.out) + i0) =
            make_uint4(w[0], w[1], w[2], w[3]);
      } else {
        for (int i = 0; i < min(n, 8); ++i) store_out(P.out, P.out_dtype, i0 + i, d[i]);
      }
    }
    return;
  }
  GridSrc where(nullptr, 0, &P.g, b);
  uint32_t acc = 0;
  int nacc = 0;
  if (first_bit % 8 != 0) {
    acc = uint32_t(*src++) >> (first_bit % 8);
    nacc = 8 - int(first_bit % 8);
  }
  for (int slot = 0; slot < k; ++slot) {
    while (nacc < bits) {
      acc |= uint32_t(*src++) << nacc;
      nacc += 8;
    }
    const uint32_t code = acc & code_mask;
    acc >>= bits;
    nacc -= bits;
    const int64_t idx = where.index(slot);
    if (idx >= 0) store_out(P.out, P.out_dtype, idx, decode(code));
  }
}

// Dense contiguous blocks with k = 32 * G (G a power of two), codes of 4, 6 or 8 bits, 16-byte
// aligned buffers: one thread per 32 codes (one or two 16-byte loads), 16-byte stores. E4M3 and
// E5M2 decode with the hardware conversion to half precision (exact, NaN and Inf included); other
// formats read the decode table from shared memory (at most 16 distinct words for 4-bit codes:
// no bank conflicts).
template <int kBits>
__global__ void __launch_bounds__(256)
    dequantize_vec_kernel(__grid_constant__ const DequantParams P, int log2g) {
  extern __shared__ uint4 stage_all[];
  __shared__ float table[1 << kBits];
  for (int i = threadIdx.x; i < (1 << kBits); i += blockDim.x) table[i] = P.f.decode[i];
  __syncthreads();
  const int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= (P.g.num_blocks << log2g)) return;
  const int64_t b = t >> log2g;
  uint32_t words[kBits];
  if constexpr (kBits == 6) {
    // 24 bytes: 8-byte aligned only.
    const uint2* src = reinterpret_cast<const uint2*>(P.elements + t * 24);
#pragma unroll
    for (int q = 0; q < 3; ++q) {
      const uint2 a = __ldg(src + q);
      words[2 * q] = a.x, words[2 * q + 1] = a.y;
    }
  } else {
    const uint4* src = reinterpret_cast<const uint4*>(P.elements + t * (4 * kBits));
#pragma unroll
    for (int q = 0; q < kBits / 4; ++q) {
      const uint4 a = __ldg(src + q);
      words[4 * q] = a.x, words[4 * q + 1] = a.y, words[4 * q + 2] = a.z, words[4 * q + 3] = a.w;
    }
  }
  const uint8_t scale = __ldg(P.scales + b);
  const bool nan_block = scale == kScaleNan;
  const float x = e8m0_value(scale);
  const float m = P.asym ? bf16_bits_to_f32(P.offsets[b]) : 0.0f;
  float v[32];
  if (kBits == 8 && P.f.cvt != 0) {
#pragma unroll
    for (int w = 0; w < 8; ++w) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const uint16_t pair = uint16_t(words[w] >> (16 * h));
        uint32_t f16x2;
        if (P.f.cvt == 1) {
          asm("cvt.rn.f16x2.e4m3x2 %0, %1;" : "=r"(f16x2) : "h"(pair));
        } else {
          asm("cvt.rn.f16x2.e5m2x2 %0, %1;" : "=r"(f16x2) : "h"(pair));
        }
        __half2 hh;
        memcpy(&hh, &f16x2, 4);
        const float2 f = __half22float2(hh);
        v[4 * w + 2 * h] = f.x;
        v[4 * w + 2 * h + 1] = f.y;
      }
    }
  } else {
#pragma unroll
    for (int j = 0; j < 32; ++j) {
      // Code j starts at bit j * kBits of the stream; a 6-bit code may run into the next word.
      const int w = j * kBits / 32, o = (j * kBits) % 32;
      uint32_t c = words[w] >> o;
      if (o + kBits > 32) c |= words[w + 1] << (32 - o);
      v[j] = table[c & ((1u << kBits) - 1u)];
    }
  }
#pragma unroll
  for (int j = 0; j < 32; ++j) {
    float d = __fmul_rn(v[j], x);
    if (P.asym) d = __fadd_rn(d, m);
    v[j] = d;
  }
  const bool whole = (t | 31) < (P.g.num_blocks << log2g);
  if (P.out_dtype == int(DType::kF32)) {
    uint4 x[8];
    fake_vectors_f32(v, nan_block, x);
    store_group<8>(reinterpret_cast<uint4*>(static_cast<float*>(P.out) + t * 32), x, 32, whole,
                   stage_all + (threadIdx.x >> 5) * (32 * 9));
  } else {
    uint4 x[4];
    fake_vectors_bf16(v, nan_block, x);
    store_group<4>(reinterpret_cast<uint4*>(static_cast<uint16_t*>(P.out) + t * 32), x, 32, whole,
                   stage_all + (threadIdx.x >> 5) * (32 * 5));
  }
}

}  // namespace

void launch_dequantize_vec(const DequantParams& P, int code_bits, int log2g, cudaStream_t stream) {
  const int threads = 256;
  const unsigned grid = unsigned(((P.g.num_blocks << log2g) + threads - 1) / threads);
  const size_t stage = stage_bytes(threads, P.out_dtype == int(DType::kF32) ? 8 : 4);
  if (code_bits == 8) {
    dequantize_vec_kernel<8><<<grid, threads, stage, stream>>>(P, log2g);
  } else if (code_bits == 6) {
    dequantize_vec_kernel<6><<<grid, threads, stage, stream>>>(P, log2g);
  } else {
    dequantize_vec_kernel<4><<<grid, threads, stage, stream>>>(P, log2g);
  }
}

void launch_dequantize_chunks(const DequantParams& P, cudaStream_t stream) {
  const int threads = 256;
  const int64_t chunks = P.g.num_blocks * (P.g.k / 8);
  dequantize_chunks_kernel<<<unsigned((chunks + threads - 1) / threads), threads, 0, stream>>>(P);
}

void launch_dequantize(const DequantParams& P, cudaStream_t stream) {
  const int threads = 256;
  dequantize_kernel<<<unsigned((P.g.num_blocks + threads - 1) / threads), threads, 0, stream>>>(P);
}

}  // namespace mx::cuda
