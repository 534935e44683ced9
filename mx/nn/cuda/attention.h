// Causal self-attention on the GPU without a T x T matrix in memory (attention.cu): one warp per
// query row (forward, dQ) or per key (dK, dV), keys or queries in chunks of 32 with a lane each,
// the softmax recomputed from one saved log-sum-exp per row. The probabilities P and their
// gradient dS are cast inside the kernels, one block of 32 per chunk, along the axis each product
// reduces over (mx/nn/cpu/attention.cpp's table); q, k, v and dO arrive already cast by the
// backend. Each output is summed by one warp in a fixed order: results repeat bit for bit.
//
// These kernels compute in float32 on CUDA cores. Where activations are bfloat16 and the head
// size is 32, 64 or 128, tensor-core kernels (flash_attention.h) take over with the same
// arguments and the same casts; where they are float32, the head size 64 and nothing casts P or
// dS, tiled float32 kernels (fp32_attention.h) do.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

#include "mx/core/quant_spec.h"

namespace mx::nn::cuda {

// How P or dS is cast inside a kernel: not at all, to bfloat16, or MX in blocks of 32 along the
// product's reduction axis.
struct TileCast {
  enum class Kind : int { kNone, kBF16, kMx };
  Kind kind = Kind::kNone;
  QuantSpec spec;  // kMx: block_size 32, the stream's seed already mixed in (cast_spec)
};

// With past > 0 (inference with a key/value cache; the forward only) the T queries are the
// last of past + T positions: k and v hold past + T rows per sequence, and query i sees keys
// 0 .. past + i.
struct AttnDims {
  int64_t b, t, nh, nkv, hs;
  int64_t past = 0;
};

// "" when the kernels can cast with `cast` (MX needs 1-D blocks of 32), else why not.
std::string check_tile_cast(const TileCast& cast);

// What the backward's delta = rowsum(P * dP) needs from the forward when P is MX-cast: with
// dP = dO v_dw^T, delta = rowsum(dO * (P v_dw)), and the forward, which has P, can multiply it by
// v_dw (the backward's dP operand) beside its own product. Then the backward's dQ kernel takes one
// sweep over the keys instead of two. P enters that product before its cast, rounded to bfloat16.
struct PvForDelta {
  void* pv = nullptr;          // [B, T, nh, hs], the activation type
  const void* v_dw = nullptr;  // [B, T, nkv, hs]
};

// q [B, T, nh, hs] and k [B, T, nkv, hs] as the forward product reads them (act_fwd along hs),
// v likewise (act_fwd along T). Writes out [B, T, nh, hs] and lse [B, nh, T] (float32). When
// round_p, P is rounded to bfloat16 before its cast (recipe.bf16_vector_ops). Writes pv.pv as
// well when given and the tensor-core kernels cast P with MX; returns whether it did.
bool attention_forward(void* out, float* lse, const void* q, const void* k, const void* v,
                       const AttnDims& d, const TileCast& p_cast, bool round_p, bool bf16_act,
                       cudaStream_t s, const PvForDelta& pv = {});

// Operands, each already cast for the product that reads it:
//   qf, kf      q, k as the forward read them (to recompute S)
//   do_x, v_dw  dO (grad_out_dx) and v (act_dw) along hs: dP = dO V^T
//   do_w        dO (grad_out_dw) along T: dV = P^T dO
//   k_dw, q_dw  k, q (act_dw) along T: dQ = dS K, dK = dS^T Q
// P is cast with p_dw (act_dw, along queries); dS with ds_x (grad_out_dx, along keys) and ds_w
// (grad_out_dw, along queries). `delta` is scratch of B * nh * T floats. dq, dk, dv are assigned.
struct AttnBackwardArgs {
  const void *qf, *kf, *do_x, *v_dw, *do_w, *k_dw, *q_dw;
  const float* lse;
  float* delta;
  void *dq, *dk, *dv;
  // The forward's output: without MX casts of P and dS, the tensor-core kernels take delta =
  // rowsum(dO * O) from it (equal to rowsum(P * dP) up to bfloat16 rounding).
  const void* out = nullptr;
  // P v_dw as the forward wrote it (PvForDelta): the tensor-core kernels take delta =
  // rowsum(dO * pv) from it whatever the casts.
  const void* pv = nullptr;
  // Where given, the tensor-core kernels also write the column sums of dq, dk and dv as they
  // store them (bfloat16), one row of sums per 64-row tile of each sequence: dq's
  // [R, nh hs], then dk's and dv's, each [R, nkv hs], R = attention_column_sum_rows (B
  // ceil(T / 64)). Summed over their rows, they are the bias gradients of the products that
  // made Q, K and V.
  float* column_sums = nullptr;
};
int64_t attention_column_sum_rows(const AttnDims& d);
// Whether the tensor-core kernels ran, and so wrote a.column_sums where it is given.
bool attention_backward(const AttnBackwardArgs& a, const AttnDims& d, const TileCast& p_dw,
                        const TileCast& ds_x, const TileCast& ds_w, bool round_p, bool bf16_act,
                        cudaStream_t s);

// The CUDA-core kernels whatever the arguments (attention_forward and attention_backward choose
// between them and the tensor-core kernels); for tests that hold one to the other.
void attention_forward_cuda_cores(void* out, float* lse, const void* q, const void* k,
                                  const void* v, const AttnDims& d, const TileCast& p_cast,
                                  bool round_p, bool bf16_act, cudaStream_t s);
void attention_backward_cuda_cores(const AttnBackwardArgs& a, const AttnDims& d,
                                   const TileCast& p_dw, const TileCast& ds_x, const TileCast& ds_w,
                                   bool round_p, bool bf16_act, cudaStream_t s);

// The in-tile cast alone, for tests: x[i] for i in [0, n) cast in blocks of 32 consecutive
// values, value i at flat index index0 + i of the cast tensor (n a multiple of 32; the last
// `padding` values of each block are treated as padding past a tensor's end). Blocks are held as
// the CUDA-core kernels hold them (a warp each) or, when `quads`, as the tensor-core kernels do
// (four lanes each, with the encoder they compile in for the cast; symmetric casts only).
void cast_tiles_for_test(float* x, int64_t n, int64_t index0, int padding, const TileCast& cast,
                         bool quads, cudaStream_t s);

}  // namespace mx::nn::cuda
