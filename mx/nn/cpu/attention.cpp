// Causal self-attention with grouped-query heads (see layers.h).
//
// Every matrix product's operands are cast (cast_tensor) along the product's reduction axis
// (MX_REFERENCE.md section 7; recipe.h). A cast is of the whole activation tensor, with one
// stochastic-rounding stream per operand and the element's index in that tensor, so that a
// backend computing attention head by head in fused tiles can cast the same values to the same
// bits; blocks never cross a head or a sequence:
//
//   product                  reduces over  operand  role         tensor cast          along
//   S  = Q K^T / sqrt(hs)    head dim      Q        act_fwd      q [N*nh, hs]         hs
//                                          K        act_fwd      k [N*nkv, hs]        hs
//   O  = P V                 keys          P        act_fwd      P [B*nh*T, T]        keys
//                                          V        act_fwd      v [B, T, nkv*hs]     T
//   dP = dO V^T              head dim      dO       grad_out_dx  dO [N*nh, hs]        hs
//                                          V        act_dw       v [N*nkv, hs]        hs
//   dV = P^T dO              queries       P        act_dw       P [B*nh, T, T]       queries
//                                          dO       grad_out_dw  dO [B, T, nh*hs]     T
//   dQ = dS K / sqrt(hs)     keys          dS       grad_out_dx  dS [B*nh*T, T]       keys
//                                          K        act_dw       k [B, T, nkv*hs]     T
//   dK = dS^T Q / sqrt(hs)   queries       dS       grad_out_dw  dS [B*nh, T, T]      queries
//                                          Q        act_dw       q [B, T, nh*hs]      T
//
// Gradients use grad_out_dx where they are reduced along their last axis and grad_out_dw
// where along their rows (tokens), as in the linear layer. The causal mask and softmax are FP32
// vector ops (P rounded to bf16 when recipe.bf16_vector_ops). The products are full T x T; the
// masked entries of P and dS are exactly zero, after their casts too. Work is split over (b, head)
// in the forward and over (b, kv head) in the backward, so that dK and dV of a kv head are summed
// over its query heads in a fixed order on one thread.
#include <algorithm>
#include <cmath>
#include <mutex>
#include <string>
#include <vector>

#include "mx/core/half.h"
#include "mx/core/rounding.h"
#include "mx/kernels/cpu/parallel.h"
#include "mx/nn/cast_streams.h"
#include "mx/nn/cpu/layers.h"
#include "mx/nn/cpu/matmul.h"
#include "mx/nn/cpu/sgemm.h"

namespace mx::nn::cpu {
namespace {

using Op = AttnOperand;

// Head `h` of x[B, T, heads, hs] for sequence b: its first row; the next rows follow
// heads * hs floats apart, which the strided products read in place.
const float* head_rows(const float* x, int64_t b, int64_t h, int64_t t, int64_t heads, int64_t hs) {
  return x + (b * t * heads + h) * hs;
}

void scatter_add(float* x, const std::vector<float>& src, int64_t b, int64_t h, int64_t t,
                 int64_t heads, int64_t hs) {
  for (int64_t i = 0; i < t; ++i) {
    float* dst = x + ((b * t + i) * heads + h) * hs;
    for (int64_t d = 0; d < hs; ++d) dst[d] += src[i * hs + d];
  }
}

// Casts of one pass, each into its own scratch; the first error is kept.
struct Casts {
  Casts(uint64_t s, AttentionScratch& a, int t) : stream(s), scratch(a), threads(t) {
    scratch.casts.resize(12);
  }

  uint64_t stream;
  AttentionScratch& scratch;
  int threads;
  std::string error;
  int used = 0;

  const float* operator()(const float* src, std::initializer_list<int64_t> shape, int axis,
                          const OperandCast& cast, std::string_view role, Op op) {
    return cast_tensor(src, std::vector<int64_t>(shape), axis, cast, role,
                       operand_stream(stream, op), scratch.casts[size_t(used++)], &error, threads);
  }

  // The cast above of `matrices` [t, tk] attention matrices, the causal mask applied again (query
  // i sees keys up to past + i): an asymmetric cast gives the masked zeros its offset, which would
  // let a query attend to later keys.
  const float* causal(const float* src, int64_t matrices, int64_t t, int64_t tk, int64_t past,
                      std::initializer_list<int64_t> shape, const OperandCast& cast,
                      std::string_view role, Op op) {
    const float* c = (*this)(src, shape, 1, cast, role, op);
    if (c == src || cast.kind != OperandCast::Kind::kMx || !cast.spec.asymmetric) return c;
    float* x = scratch.casts[size_t(used - 1)].data();
    for (int64_t m = 0; m < matrices; ++m) {
      for (int64_t i = 0; i < t; ++i) {
        float* row = x + (m * t + i) * tk;
        std::fill(row + std::min(tk, past + i + 1), row + tk, 0.0f);
      }
    }
    return x;
  }
};

}  // namespace

std::string attention_forward(float* out, float* att, const float* q, const float* k,
                              const float* v, const AttentionShape& s, const Recipe& recipe,
                              uint64_t stream, int threads, AttentionScratch& scratch) {
  // tk keys per sequence, the last t of which are the queries' own positions.
  const int64_t t = s.t, tk = s.past + s.t, hs = s.hs, group = s.nh / s.nkv, n = s.b * s.t;
  const float scale = 1.0f / std::sqrt(float(hs));
  const bool bf16 = recipe.bf16_vector_ops;
  const OperandCast& cast = recipe.act_fwd;
  Casts casts{stream, scratch, threads};
  const float* qc = casts(q, {n * s.nh, hs}, 1, cast, "act_fwd", Op::kQFwd);
  const float* kc = casts(k, {s.b * tk * s.nkv, hs}, 1, cast, "act_fwd", Op::kKFwd);
  const float* vc = casts(v, {s.b, tk, s.nkv * hs}, 1, cast, "act_fwd", Op::kVFwd);
  if (!casts.error.empty()) return casts.error;
  // Decoding one token of a small model is a few thousand multiply-adds per head: less than
  // waking a worker costs. Either way each (sequence, head) is one thread's, in one order.
  if (double(s.b * s.nh) * double(t) * double(tk) * double(hs) < double(1 << 17)) threads = 1;
  // P = softmax(S), per (sequence, head).
  mx::cpu::parallel_for(s.b * s.nh, 1, threads, [&](int64_t begin, int64_t end) {
    std::vector<float> sh(t * tk);
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / s.nh, h = bh % s.nh;
      sgemm_nt_strided(sh.data(), tk, head_rows(qc, b, h, t, s.nh, hs), s.nh * hs,
                       head_rows(kc, b, h / group, tk, s.nkv, hs), s.nkv * hs, t, hs, tk, false, 1);
      float* p = att + bh * t * tk;
      for (int64_t i = 0; i < t; ++i) {
        const int64_t last = s.past + i;  // the last key query i sees
        const float* si = sh.data() + i * tk;
        float mx = -INFINITY;
        for (int64_t j = 0; j <= last; ++j) mx = std::fmax(mx, si[j] * scale);
        float sum = 0.0f;
        float* pi = p + i * tk;
        for (int64_t j = 0; j <= last; ++j) {
          pi[j] = std::exp(si[j] * scale - mx);
          sum += pi[j];
        }
        const float inv = 1.0f / sum;
        for (int64_t j = 0; j <= last; ++j) {
          pi[j] = bf16 ? round_to_bf16(pi[j] * inv) : pi[j] * inv;
        }
        for (int64_t j = last + 1; j < tk; ++j) pi[j] = 0.0f;
      }
    }
  });
  // O = P V.
  const float* pc = casts.causal(att, s.b * s.nh, t, tk, s.past, {s.b * s.nh * t, tk}, cast,
                                 "act_fwd", Op::kPFwd);
  if (!casts.error.empty()) return casts.error;
  mx::cpu::parallel_for(s.b * s.nh, 1, threads, [&](int64_t begin, int64_t end) {
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / s.nh, h = bh % s.nh;
      sgemm_nn_strided(out + (b * t * s.nh + h) * hs, s.nh * hs, pc + bh * t * tk, tk,
                       head_rows(vc, b, h / group, tk, s.nkv, hs), s.nkv * hs, t, tk, hs, false, 1);
    }
  });
  return "";
}

std::string attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q,
                               const float* k, const float* v, const float* att,
                               const AttentionShape& s, const Recipe& recipe, uint64_t stream,
                               int threads, AttentionScratch& scratch) {
  const int64_t t = s.t, hs = s.hs, group = s.nh / s.nkv, n = s.b * s.t;
  const float scale = 1.0f / std::sqrt(float(hs));
  Casts casts{stream, scratch, threads};
  const float* do_x = casts(dout, {n * s.nh, hs}, 1, recipe.grad_out_dx, "grad_out_dx", Op::kDoDx);
  const float* v_dw = casts(v, {n * s.nkv, hs}, 1, recipe.act_dw, "act_dw", Op::kVDw);
  const float* p_dw =
      casts.causal(att, s.b * s.nh, t, t, 0, {s.b * s.nh, t, t}, recipe.act_dw, "act_dw", Op::kPDw);
  const float* do_w =
      casts(dout, {s.b, t, s.nh * hs}, 1, recipe.grad_out_dw, "grad_out_dw", Op::kDoDw);
  const float* k_dw = casts(k, {s.b, t, s.nkv * hs}, 1, recipe.act_dw, "act_dw", Op::kKDw);
  const float* q_dw = casts(q, {s.b, t, s.nh * hs}, 1, recipe.act_dw, "act_dw", Op::kQDw);
  if (!casts.error.empty()) return casts.error;
  // dP = dO V^T, dV += P^T dO and dS = P (dP - rowsum(P dP)) * scale (the 1/sqrt(hs) of S folded
  // in here), per (sequence, kv head), its query heads in order.
  std::vector<float>& ds = scratch.ds;
  ds.assign(size_t(s.b * s.nh * t * t), 0.0f);
  mx::cpu::parallel_for(s.b * s.nkv, 1, threads, [&](int64_t begin, int64_t end) {
    std::vector<float> dp(t * t), dvh(t * hs);
    for (int64_t bk = begin; bk < end; ++bk) {
      const int64_t b = bk / s.nkv, kvh = bk % s.nkv;
      const float* vh = head_rows(v_dw, b, kvh, t, s.nkv, hs);
      std::fill(dvh.begin(), dvh.end(), 0.0f);
      for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
        const int64_t bh = b * s.nh + h;
        const float* p = att + bh * t * t;
        sgemm_nt_strided(dp.data(), t, head_rows(do_x, b, h, t, s.nh, hs), s.nh * hs, vh,
                         s.nkv * hs, t, hs, t, false, 1);
        sgemm_tn_strided(dvh.data(), hs, p_dw + bh * t * t, t, head_rows(do_w, b, h, t, s.nh, hs),
                         s.nh * hs, t, t, hs, true, 1);
        float* dsh = ds.data() + bh * t * t;
        for (int64_t i = 0; i < t; ++i) {
          const float* pi = p + i * t;
          const float* dpi = dp.data() + i * t;
          float dot = 0.0f;
          for (int64_t j = 0; j <= i; ++j) dot += pi[j] * dpi[j];
          for (int64_t j = 0; j <= i; ++j) dsh[i * t + j] = pi[j] * (dpi[j] - dot) * scale;
        }
      }
      scatter_add(dv, dvh, b, kvh, t, s.nkv, hs);
    }
  });
  // dQ = dS K, dK += dS^T Q.
  const float* ds_x = casts.causal(ds.data(), s.b * s.nh, t, t, 0, {s.b * s.nh * t, t},
                                   recipe.grad_out_dx, "grad_out_dx", Op::kDsDx);
  const float* ds_w = casts.causal(ds.data(), s.b * s.nh, t, t, 0, {s.b * s.nh, t, t},
                                   recipe.grad_out_dw, "grad_out_dw", Op::kDsDw);
  if (!casts.error.empty()) return casts.error;
  mx::cpu::parallel_for(s.b * s.nkv, 1, threads, [&](int64_t begin, int64_t end) {
    std::vector<float> dqh(t * hs), dkh(t * hs);
    for (int64_t bk = begin; bk < end; ++bk) {
      const int64_t b = bk / s.nkv, kvh = bk % s.nkv;
      const float* kh = head_rows(k_dw, b, kvh, t, s.nkv, hs);
      std::fill(dkh.begin(), dkh.end(), 0.0f);
      for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
        const int64_t bh = b * s.nh + h;
        sgemm_nn_strided(dqh.data(), hs, ds_x + bh * t * t, t, kh, s.nkv * hs, t, t, hs, false, 1);
        scatter_add(dq, dqh, b, h, t, s.nh, hs);
        sgemm_tn_strided(dkh.data(), hs, ds_w + bh * t * t, t, head_rows(q_dw, b, h, t, s.nh, hs),
                         s.nh * hs, t, t, hs, true, 1);
      }
      scatter_add(dk, dkh, b, kvh, t, s.nkv, hs);
    }
  });
  return "";
}

}  // namespace mx::nn::cpu
