// Causal self-attention with grouped-query heads (see layers.h).
//
// Per (sequence b, query head h), with Q, K, V the [T, hs] slices of head h (K, V of kv head
// h / (nh / nkv)), every matrix product goes through cast_operand, each operand cast along the
// product's reduction axis (MX_REFERENCE.md section 7; recipe.h):
//
//   product                    reduces over   operand  recipe role    cast axis
//   S  = Q K^T / sqrt(hs)      head dim       Q        act_fwd        1 (hs)
//                                             K        act_fwd        1 (hs)
//   O  = P V                   keys           P        act_fwd        1 (keys)
//                                             V        act_fwd        0 (keys)
//   dP = dO V^T                head dim       dO       grad_out_dx    1 (hs)
//                                             V        act_dw         1 (hs)
//   dV = P^T dO                queries        P        act_dw         0 (queries)
//                                             dO       grad_out_dw    0 (queries)
//   dQ = dS K / sqrt(hs)       keys           dS       grad_out_dx    1 (keys)
//                                             K        act_dw         0 (keys)
//   dK = dS^T Q / sqrt(hs)     queries        dS       grad_out_dw    0 (queries)
//                                             Q        act_dw         0 (queries)
//
// Gradients use grad_out_dx where they are reduced along their last axis and grad_out_dw
// where along their rows (tokens), as in the linear layer. The causal mask and softmax are FP32
// vector ops (P rounded to bf16 when recipe.bf16_vector_ops). The products are full T x T; the
// masked entries of P are exactly zero. Work is split over (b, kv head) so that dK and dV of a
// kv head are summed over its query heads in a fixed order on one thread.
#include <cmath>
#include <mutex>
#include <string>
#include <vector>

#include "mx/core/half.h"
#include "mx/core/rounding.h"
#include "mx/kernels/cpu/parallel.h"
#include "mx/nn/cpu/layers.h"
#include "mx/nn/cpu/matmul.h"
#include "mx/nn/cpu/sgemm.h"

namespace mx::nn::cpu {
namespace {

// The first error any thread met (threads stop at their own first error).
class FirstError {
 public:
  void record(std::string error) {
    if (error.empty()) return;
    std::lock_guard<std::mutex> lock(mutex_);
    if (first_.empty()) first_ = std::move(error);
  }
  std::string take() { return std::move(first_); }

 private:
  std::mutex mutex_;
  std::string first_;
};

// Per-thread buffers.
struct HeadScratch {
  std::vector<float> q, k, v, o, s, ds, c0, c1;
};

// Distinct stream per (head, product operand).
uint64_t cast_stream(uint64_t stream, int64_t b, int64_t h, int op) {
  return splitmix64_mix(stream ^ ((uint64_t(b) << 40) + (uint64_t(h) << 8) + uint64_t(op)));
}

// Copies head `h` of x[B, T, heads, hs] for sequence b into dst[T, hs].
void gather(std::vector<float>& dst, const float* x, int64_t b, int64_t h, int64_t t, int64_t heads,
            int64_t hs) {
  dst.resize(t * hs);
  for (int64_t i = 0; i < t; ++i) {
    const float* src = x + ((b * t + i) * heads + h) * hs;
    for (int64_t d = 0; d < hs; ++d) dst[i * hs + d] = src[d];
  }
}

void scatter_add(float* x, const std::vector<float>& src, int64_t b, int64_t h, int64_t t,
                 int64_t heads, int64_t hs) {
  for (int64_t i = 0; i < t; ++i) {
    float* dst = x + ((b * t + i) * heads + h) * hs;
    for (int64_t d = 0; d < hs; ++d) dst[d] += src[i * hs + d];
  }
}

}  // namespace

std::string attention_forward(float* out, float* att, const float* q, const float* k,
                              const float* v, const AttentionShape& s, const Recipe& recipe,
                              uint64_t stream, int threads) {
  const int64_t t = s.t, hs = s.hs, group = s.nh / s.nkv;
  const float scale = 1.0f / std::sqrt(float(hs));
  const bool bf16 = recipe.bf16_vector_ops;
  FirstError failure;
  mx::cpu::parallel_for(s.b * s.nh, 1, threads, [&](int64_t begin, int64_t end) {
    HeadScratch w;
    w.s.resize(t * t);
    w.o.resize(t * hs);
    std::string error;
    for (int64_t bh = begin; bh < end && error.empty(); ++bh) {
      const int64_t b = bh / s.nh, h = bh % s.nh, kvh = h / group;
      auto cast = [&](const float* src, int64_t rows, int64_t cols, int axis, int op,
                      std::vector<float>& scratch) {
        return cast_operand(src, rows, cols, axis, recipe.act_fwd, "act_fwd",
                            cast_stream(stream, b, h, op), scratch, &error);
      };
      gather(w.q, q, b, h, t, s.nh, hs);
      gather(w.k, k, b, kvh, t, s.nkv, hs);
      gather(w.v, v, b, kvh, t, s.nkv, hs);
      const float* qc = cast(w.q.data(), t, hs, 1, 0, w.c0);
      const float* kc = cast(w.k.data(), t, hs, 1, 1, w.c1);
      if (!error.empty()) break;
      sgemm_nt(w.s.data(), qc, kc, t, hs, t, false, 1);
      float* p = att + bh * t * t;
      for (int64_t i = 0; i < t; ++i) {
        const float* si = w.s.data() + i * t;
        float mx = -INFINITY;
        for (int64_t j = 0; j <= i; ++j) mx = std::fmax(mx, si[j] * scale);
        float sum = 0.0f;
        float* pi = p + i * t;
        for (int64_t j = 0; j <= i; ++j) {
          pi[j] = std::exp(si[j] * scale - mx);
          sum += pi[j];
        }
        const float inv = 1.0f / sum;
        for (int64_t j = 0; j <= i; ++j) pi[j] = bf16 ? round_to_bf16(pi[j] * inv) : pi[j] * inv;
        for (int64_t j = i + 1; j < t; ++j) pi[j] = 0.0f;
      }
      const float* pc = cast(p, t, t, 1, 2, w.c0);
      const float* vc = cast(w.v.data(), t, hs, 0, 3, w.c1);
      if (!error.empty()) break;
      sgemm_nn(w.o.data(), pc, vc, t, t, hs, false, 1);
      for (int64_t i = 0; i < t; ++i) {
        float* dst = out + ((b * t + i) * s.nh + h) * hs;
        for (int64_t d = 0; d < hs; ++d) dst[d] = w.o[i * hs + d];
      }
    }
    failure.record(std::move(error));
  });
  return failure.take();
}

std::string attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q,
                               const float* k, const float* v, const float* att,
                               const AttentionShape& s, const Recipe& recipe, uint64_t stream,
                               int threads) {
  const int64_t t = s.t, hs = s.hs, group = s.nh / s.nkv;
  const float scale = 1.0f / std::sqrt(float(hs));
  FirstError failure;
  mx::cpu::parallel_for(s.b * s.nkv, 1, threads, [&](int64_t begin, int64_t end) {
    HeadScratch w;
    std::vector<float> dout_h, dp(t * t), dqh(t * hs), dkh(t * hs), dvh(t * hs);
    std::string error;
    for (int64_t bk = begin; bk < end && error.empty(); ++bk) {
      const int64_t b = bk / s.nkv, kvh = bk % s.nkv;
      gather(w.k, k, b, kvh, t, s.nkv, hs);
      gather(w.v, v, b, kvh, t, s.nkv, hs);
      std::fill(dkh.begin(), dkh.end(), 0.0f);
      std::fill(dvh.begin(), dvh.end(), 0.0f);
      for (int64_t h = kvh * group; h < (kvh + 1) * group && error.empty(); ++h) {
        auto cast = [&](const float* src, int64_t rows, int64_t cols, int axis,
                        const OperandCast& c, std::string_view role, int op,
                        std::vector<float>& scratch) {
          return cast_operand(src, rows, cols, axis, c, role, cast_stream(stream, b, h, op),
                              scratch, &error);
        };
        const float* p = att + (b * s.nh + h) * t * t;
        gather(w.q, q, b, h, t, s.nh, hs);
        gather(dout_h, dout, b, h, t, s.nh, hs);
        // dP = dO V^T
        const float* gc = cast(dout_h.data(), t, hs, 1, recipe.grad_out_dx, "grad_out_dx", 4, w.c0);
        const float* vc = cast(w.v.data(), t, hs, 1, recipe.act_dw, "act_dw", 5, w.c1);
        if (!error.empty()) break;
        sgemm_nt(dp.data(), gc, vc, t, hs, t, false, 1);
        // dV += P^T dO
        const float* pc = cast(p, t, t, 0, recipe.act_dw, "act_dw", 6, w.c0);
        const float* gc2 =
            cast(dout_h.data(), t, hs, 0, recipe.grad_out_dw, "grad_out_dw", 7, w.c1);
        if (!error.empty()) break;
        sgemm_tn(dvh.data(), pc, gc2, t, t, hs, true, 1);
        // dS = P (dP - rowsum(P dP)) * scale (the 1/sqrt(hs) of S folded in here)
        w.ds.assign(t * t, 0.0f);
        for (int64_t i = 0; i < t; ++i) {
          const float* pi = p + i * t;
          const float* dpi = dp.data() + i * t;
          float dot = 0.0f;
          for (int64_t j = 0; j <= i; ++j) dot += pi[j] * dpi[j];
          for (int64_t j = 0; j <= i; ++j) w.ds[i * t + j] = pi[j] * (dpi[j] - dot) * scale;
        }
        // dQ = dS K
        const float* dsc = cast(w.ds.data(), t, t, 1, recipe.grad_out_dx, "grad_out_dx", 8, w.c0);
        const float* kc = cast(w.k.data(), t, hs, 0, recipe.act_dw, "act_dw", 9, w.c1);
        if (!error.empty()) break;
        sgemm_nn(dqh.data(), dsc, kc, t, t, hs, false, 1);
        scatter_add(dq, dqh, b, h, t, s.nh, hs);
        // dK += dS^T Q
        const float* dsc2 = cast(w.ds.data(), t, t, 0, recipe.grad_out_dw, "grad_out_dw", 10, w.c0);
        const float* qc = cast(w.q.data(), t, hs, 0, recipe.act_dw, "act_dw", 11, w.c1);
        if (!error.empty()) break;
        sgemm_tn(dkh.data(), dsc2, qc, t, t, hs, true, 1);
      }
      scatter_add(dk, dkh, b, kvh, t, s.nkv, hs);
      scatter_add(dv, dvh, b, kvh, t, s.nkv, hs);
    }
    failure.record(std::move(error));
  });
  return failure.take();
}

}  // namespace mx::nn::cpu
