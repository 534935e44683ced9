#include "mx/nn/cuda/cuda_backend.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <unordered_set>
#include <vector>

#include "mx/io/cat.h"
#include "mx/kernels/cuda/quantize_cuda.h"
#include "mx/nn/cast_streams.h"
#include "mx/nn/cuda/attention.h"
#include "mx/nn/cuda/flash_attention.h"
#include "mx/nn/cuda/lt_products.h"
#include "mx/nn/cuda/ops.h"

namespace mx::nn {
namespace {

using io::cat;
namespace kernels = mx::nn::cuda;

DType dtype_of(BufType t) {
  return t == BufType::kBF16 ? DType::kBF16 : DType::kF32;
}

// A growing device buffer, reused by one operand slot across calls (all work is on one stream,
// so a later use never overtakes an earlier one).
struct Scratch {
  void* p = nullptr;
  size_t bytes = 0;
};

class CudaBackend final : public Backend {
 public:
  CudaBackend(const CudaBackendOptions& o, cudaStream_t stream,
              std::unique_ptr<kernels::LtProducts> products)
      : options_(o), stream_(stream), products_(std::move(products)) {}

  ~CudaBackend() override {
    cudaStreamSynchronize(stream_);
    for (void* p : owned_) cudaFree(p);
    for (Scratch& s : scratch_) cudaFree(s.p);
    cudaFree(ops_.partials);
    cudaFree(ops_.sort_temp);
    cudaFree(ops_.sort_keys);
    cudaFree(ops_.sort_values);
    cudaFree(norm_partials_);
    cudaFree(weights_bf16_);
    products_.reset();
    cudaStreamDestroy(stream_);
  }

  std::string_view name() const override { return "cuda"; }
  BufType act_type() const override { return options_.act_type; }
  bool host_visible() const override { return false; }

  Buf alloc(BufType type, int64_t n) override {
    void* p = nullptr;
    const size_t bytes = size_t(std::max<int64_t>(n * buf_type_bytes(type), 1));
    if (cudaMalloc(&p, bytes) != cudaSuccess) {
      cudaGetLastError();
      record(cat("out of GPU memory: ", bytes, " bytes for a buffer of ", n, " elements"));
      return {};
    }
    owned_.insert(p);
    note_memory();
    cudaMemsetAsync(p, 0, bytes, stream_);
    return {p, n, type};
  }
  void release(Buf x) override {
    if (x.p == weights_.p) weights_ = {};
    // A gradient kept for a buffer that goes is never read: it must not be copied into memory
    // that a later allocation may hand out again.
    const char* pending = static_cast<const char*>(pending_.dlogits);
    const char* p = static_cast<const char*>(x.p);
    if (pending != nullptr && p <= pending && pending < p + x.bytes()) pending_ = {};
    if (owned_.erase(x.p) != 0) {
      cudaStreamSynchronize(stream_);
      cudaFree(x.p);
    }
  }
  Buf wrap(void*, BufType, int64_t) override {
    record("the CUDA backend cannot wrap host memory");
    return {};
  }
  void upload(Buf dst, const void* host) override {
    touch_weights(dst);
    check(cudaMemcpyAsync(dst.p, host, size_t(dst.bytes()), cudaMemcpyHostToDevice, stream_),
          "upload");
  }
  void download(void* host, Buf src) override {
    check(cudaMemcpyAsync(host, src.p, size_t(src.bytes()), cudaMemcpyDeviceToHost, stream_),
          "download");
    check(cudaStreamSynchronize(stream_), "synchronize");
  }
  void zero(Buf x) override {
    touch_weights(x);
    check(cudaMemsetAsync(x.p, 0, size_t(x.bytes()), stream_), "zero");
  }
  void copy(Buf dst, Buf src) override {
    touch_weights(dst);
    check(cudaMemcpyAsync(dst.p, src.p, size_t(src.bytes()), cudaMemcpyDeviceToDevice, stream_),
          "copy");
  }
  void hold_weights(Buf weights) override {
    weights_ = weights;
    weights_bf16_fresh_ = false;
  }
  int64_t peak_memory() override { return peak_; }
  std::string device_description() const override {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, options_.device) != cudaSuccess) {
      cudaGetLastError();
      return "a CUDA GPU";
    }
    return prop.name;
  }

  int64_t memory_available() override {
    size_t free = 0, total = 0;
    if (cudaMemGetInfo(&free, &total) != cudaSuccess) {
      cudaGetLastError();
      return 0;
    }
    return int64_t(free);
  }

  // ---- Linear layers ----

  // x [m, k] and w [n, k] as the forward product reads them (the recipe's act_fwd and
  // weight_fwd casts, scratch 0 and 1); both null where a cast failed (recorded).
  struct Operands {
    const void *x = nullptr, *w = nullptr;
    bool ok() const { return x != nullptr && w != nullptr; }
  };
  Operands forward_operands(Buf x, Buf w, int64_t m, int64_t k, int64_t n, const Recipe& recipe,
                            SrKey key) {
    const uint64_t stream = stream_of(key);
    Operands q;
    q.x = prepare(x, {m, k}, 1, recipe.act_fwd, "act_fwd",
                  operand_stream(stream, LinearOperand::kActFwd), 0);
    q.w = prepare(w, {n, k}, 1, recipe.weight_fwd, "weight_fwd",
                  operand_stream(stream, LinearOperand::kWeightFwd), 1);
    return q.ok() ? q : Operands{};
  }

  void matmul_forward(Buf y, Buf x, Buf w, Buf bias, int64_t m, int64_t k, int64_t n,
                      const Recipe& recipe, SrKey key) override {
    const Operands q = forward_operands(x, w, m, k, n, recipe, key);
    if (!q.ok()) return;
    // Row-major y[M,N] = x[M,K] W[N,K]^T is column-major y^T = W x^T. An N that is not a
    // multiple of 8 (the classifier's vocabulary) sends cuBLASLt to slow unaligned kernels:
    // the product runs on W padded with zero rows, into rows padded alike, then goes to y.
    const int64_t padded = round_up(n, 8);
    bool bias_added = false;
    if (padded == n) {
      bias_added =
          gemm(true, false, n, m, k, q.w, k, q.x, k, y.p, act(), n, 0.0f, epilogue_bias(bias));
    } else {
      const void* yp = padded_product(q.x, q.w, m, k, n);
      if (yp == nullptr) return;
      copy_rows(y.p, n, yp, padded, n, m);
    }
    if (!bias.empty() && !bias_added) {
      kernels::add_bias(y.p, bias.as<float>(), m, n, bf16_act(), stream_);
    }
    check_launch("matmul_forward");
  }

  void matmul_backward(Buf dx, Buf dw, Buf dbias, Buf dy, Buf x, Buf w, int64_t m, int64_t k,
                       int64_t n, bool accumulate_dx, const Recipe& recipe, SrKey key) override {
    linear_backward(dx, dw, dbias, dy, x, w, m, k, n, accumulate_dx, recipe, key, {});
  }

  // An odd vocabulary's training pass keeps the logits' gradient in the padded rows that the
  // product wrote and the loss read (PendingGradient), where both backward products take it as
  // it is: no copy out of the padded rows after the product and none back in before the
  // backward. Other passes take Backend's two calls.
  void classifier_forward(Buf logits, Buf losses, Buf x, Buf w, Buf targets, int64_t n, int64_t k,
                          int64_t v, bool training, float dloss, const Recipe& recipe,
                          SrKey key) override {
    const int64_t padded = round_up(v, 8);
    if (!training || padded == v) {
      Backend::classifier_forward(logits, losses, x, w, targets, n, k, v, training, dloss, recipe,
                                  key);
      return;
    }
    const Operands q = forward_operands(x, w, n, k, v, recipe, key);
    if (!q.ok()) return;
    void* yp = padded_product(q.x, q.w, n, k, v);
    if (yp == nullptr) return;
    kernels::classifier_loss(losses.as<float>(), yp, yp, targets.as<uint32_t>(), n, v, dloss,
                             bf16_act(), stream_, padded);
    pending_ = {logits.p, n, v};
    check_launch("classifier_forward");
  }

  void classifier_backward(Buf dx, Buf dw, Buf dlogits, Buf x, Buf w, int64_t n, int64_t k,
                           int64_t v, const Recipe& recipe, SrKey key) override {
    if (pending_.dlogits != dlogits.p || pending_.rows != n || pending_.v != v ||
        !casts_padded_rows(dlogits, recipe.grad_out_dx) ||
        !casts_padded_rows(dlogits, recipe.grad_out_dw)) {
      materialize_pending();
      linear_backward(dx, dw, {}, dlogits, x, w, n, k, v, false, recipe, key, {});
      return;
    }
    // The padded rows serve both products, cast in place of dlogits where the recipe casts it.
    const uint64_t stream = stream_of(key);
    const int64_t padded = round_up(v, 8);
    const Buf rows{scratch_[kPaddedOut].p, n * padded, act()};
    const PaddedDy operands{
        prepare(rows, {n, padded}, 1, recipe.grad_out_dx, "grad_out_dx",
                operand_stream(stream, LinearOperand::kGradOutDx), kPaddedDyDx),
        prepare(rows, {n, padded}, 0, recipe.grad_out_dw, "grad_out_dw",
                operand_stream(stream, LinearOperand::kGradOutDw), kPaddedDyDw)};
    if (operands.dx == nullptr || operands.dw == nullptr) return;  // prepare recorded why
    pending_ = {};
    linear_backward(dx, dw, {}, dlogits, x, w, n, k, v, false, recipe, key, operands);
  }

  // Whether cast c of the pending gradient's padded rows (scratch kPaddedOut) gives the values
  // that it gives the unpadded rows, in their first v columns, and zeros in the padding. True
  // where c leaves the values as they are, and for symmetric MX casts by nearest or directed
  // rounding: blocks start at column 0, zeros do not change a block's scale, and a zero casts to
  // zero (a NaN block also fills the padding of its row with NaN, where that row's dx is NaN
  // anyway). Not for stochastic rounding, which draws by each value's index in the unpadded
  // tensor: the caller then copies the rows out and casts those.
  bool casts_padded_rows(Buf dlogits, const OperandCast& c) const {
    if (as_is(dlogits, c)) return true;
    const QuantSpec& s = c.spec;
    return c.kind == OperandCast::Kind::kMx && !s.asymmetric && !s.is_tiled() &&
           s.rounding != Rounding::kStochastic;
  }

  // The dy operands of the two backward products as rows padded to a multiple of 8 with zeros,
  // already cast as the recipe says; null where linear_backward casts and pads dy itself.
  struct PaddedDy {
    const void* dx = nullptr;
    const void* dw = nullptr;
  };

  void linear_backward(Buf dx, Buf dw, Buf dbias, Buf dy, Buf x, Buf w, int64_t m, int64_t k,
                       int64_t n, bool accumulate_dx, const Recipe& recipe, SrKey key,
                       const PaddedDy& padded_dy) {
    const uint64_t stream = stream_of(key);
    // The padded copy of the dx product's dy operand, which the dW product reuses when neither
    // casts dy (a cast goes to a scratch slot that the next cast overwrites).
    const void* dx_operand = nullptr;
    const void* dx_padded = nullptr;
    if (!dx.empty()) {
      const void* wq = prepare(w, {n, k}, 0, recipe.weight_dx, "weight_dx",
                               operand_stream(stream, LinearOperand::kWeightDx), 1);
      const void* gp = padded_dy.dx;
      if (gp == nullptr) {
        const void* gq = prepare(dy, {m, n}, 1, recipe.grad_out_dx, "grad_out_dx",
                                 operand_stream(stream, LinearOperand::kGradOutDx), 0);
        if (gq == nullptr) return;
        gp = padded_rows(gq, m, n, kPaddedDyDx);
        dx_operand = gq, dx_padded = gp;
      }
      if (wq == nullptr) return;
      // dx^T[K,M] = W^T[K,N] dy^T[N,M], over N padded with zeros when it is not a multiple of 8.
      const int64_t padded = round_up(n, 8);
      const void* wp = padded == n ? wq : padded_weight(wq, n, k);
      if (gp == nullptr || wp == nullptr) return;
      gemm(false, false, k, m, padded, wp, k, gp, padded, dx.p, act(), k,
           accumulate_dx ? 1.0f : 0.0f);
    }
    if (!dw.empty()) {
      const void* xq = prepare(x, {m, k}, 0, recipe.act_dw, "act_dw",
                               operand_stream(stream, LinearOperand::kActDw), 1);
      const void* gp = padded_dy.dw;
      if (gp == nullptr) {
        const void* gq = prepare(dy, {m, n}, 0, recipe.grad_out_dw, "grad_out_dw",
                                 operand_stream(stream, LinearOperand::kGradOutDw), 0);
        if (gq == nullptr) return;
        const bool same = gq == dy.p && dx_operand == dy.p;
        gp = same ? dx_padded : padded_rows(gq, m, n, kPaddedDyDw);
      }
      if (xq == nullptr || gp == nullptr) return;
      // dW^T[K,N] += x^T[K,M] dy[M,N]. Where N is not a multiple of 8 (a vocabulary of 50,257),
      // cuBLASLt picks a far slower kernel for that width than for the padded one, whose zero
      // columns are then left out as the product is added: the sum is the same float32 add of
      // the product to dW that beta = 1 makes.
      const int64_t padded = round_up(n, 8);
      if (padded == n) {
        gemm(false, true, k, n, m, xq, k, gp, padded, dw.p, BufType::kF32, k, 1.0f);
      } else {
        void* product = slot(kPaddedDw, size_t(k * padded) * sizeof(float));
        if (product == nullptr) return;
        gemm(false, true, k, padded, m, xq, k, gp, padded, product, BufType::kF32, k, 0.0f);
        // dW += the product's first n columns: float32 adds, in place.
        kernels::residual_forward(dw.p, dw.p, product, k * n, false, false, stream_);
      }
    }
    if (!dbias.empty()) {
      grow_ops(m, n);
      kernels::bias_grad(dbias.as<float>(), dy.p, m, n, bf16_act(), ops_, stream_);
    }
    check_launch("matmul_backward");
  }

  // cuBLAS's float32 product, both operands the cast x (padded to a multiple of 8 columns
  // where needed, as the weight gradient pads dy).
  void gram(Buf h, Buf x, int64_t m, int64_t k, const OperandCast& cast, uint64_t stream) override {
    const void* xq = prepare(x, {m, k}, 1, cast, "act_fwd", stream, 0);
    if (xq == nullptr) return;
    const void* xp = padded_rows(xq, m, k, kPaddedDyDw);
    if (xp == nullptr) return;
    gemm(false, true, k, k, m, xq, k, xp, round_up(k, 8), h.p, BufType::kF32, k, 0.0f);
    check_launch("gram");
  }

  // ---- Vector ops ----

  void embedding_forward(Buf out, Buf tokens, Buf wte, Buf wpe, int64_t n, int64_t t,
                         int64_t c) override {
    kernels::embedding_forward(out.p, tokens.as<uint32_t>(), wte.as<float>(), wpe.as<float>(), n, t,
                               c, bf16_act(), stream_);
    check_launch("embedding_forward");
  }
  void embedding_backward(Buf dwte, Buf dwpe, Buf dout, Buf tokens, int64_t n, int64_t t,
                          int64_t c) override {
    grow_sort(n);
    kernels::embedding_backward(dwte.as<float>(), dwpe.as<float>(), dout.p, tokens.as<uint32_t>(),
                                n, t, c, bf16_act(), ops_, stream_);
    check_launch("embedding_backward");
  }
  void layernorm_forward(Buf out, Buf mean, Buf rstd, Buf x, Buf w, Buf b, int64_t n, int64_t c,
                         bool bf16) override {
    kernels::layernorm_forward(out.p, mean.as<float>(), rstd.as<float>(), x.p, w.as<float>(),
                               b.as<float>(), n, c, bf16_act(), round(bf16), stream_);
    check_launch("layernorm_forward");
  }
  void layernorm_backward(Buf dx, Buf dw, Buf db, Buf dout, Buf x, Buf w, Buf mean, Buf rstd,
                          int64_t n, int64_t c) override {
    grow_ops(n, c);
    kernels::layernorm_backward(dx.p, dw.as<float>(), db.as<float>(), dout.p, x.p, w.as<float>(),
                                mean.as<float>(), rstd.as<float>(), n, c, bf16_act(), ops_,
                                stream_);
    check_launch("layernorm_backward");
  }
  void rmsnorm_forward(Buf out, Buf rstd, Buf x, Buf w, int64_t n, int64_t c, bool bf16) override {
    kernels::rmsnorm_forward(out.p, rstd.as<float>(), x.p, w.as<float>(), n, c, bf16_act(),
                             round(bf16), stream_);
    check_launch("rmsnorm_forward");
  }
  void rmsnorm_backward(Buf dx, Buf dw, Buf dout, Buf x, Buf w, Buf rstd, int64_t n,
                        int64_t c) override {
    grow_ops(n, c);
    kernels::rmsnorm_backward(dx.p, dw.as<float>(), dout.p, x.p, w.as<float>(), rstd.as<float>(), n,
                              c, bf16_act(), ops_, stream_);
    check_launch("rmsnorm_backward");
  }
  void gelu_forward(Buf out, Buf x, int64_t count, bool bf16) override {
    kernels::gelu_forward(out.p, x.p, count, bf16_act(), round(bf16), stream_);
    check_launch("gelu_forward");
  }
  void gelu_backward(Buf dx, Buf x, Buf dout, int64_t count) override {
    kernels::gelu_backward(dx.p, x.p, dout.p, count, bf16_act(), stream_);
    check_launch("gelu_backward");
  }
  void swiglu_forward(Buf out, Buf gate, Buf up, int64_t count, bool bf16) override {
    kernels::swiglu_forward(out.p, gate.p, up.p, count, bf16_act(), round(bf16), stream_);
    check_launch("swiglu_forward");
  }
  void swiglu_backward(Buf dgate, Buf dup, Buf dout, Buf gate, Buf up, int64_t count) override {
    kernels::swiglu_backward(dgate.p, dup.p, dout.p, gate.p, up.p, count, bf16_act(), stream_);
    check_launch("swiglu_backward");
  }
  void residual_forward(Buf out, Buf a, Buf b, int64_t count, bool bf16) override {
    kernels::residual_forward(out.p, a.p, b.p, count, bf16_act(), round(bf16), stream_);
    check_launch("residual_forward");
  }
  void rope_forward(Buf x, int64_t n, int64_t t, int64_t heads, int64_t hs, int64_t first_position,
                    bool bf16) override {
    kernels::rope(x.p, n, t, heads, hs, first_position, 1.0f, bf16_act(), round(bf16), stream_);
    check_launch("rope_forward");
  }
  void rope_backward(Buf dx, int64_t n, int64_t t, int64_t heads, int64_t hs) override {
    kernels::rope(dx.p, n, t, heads, hs, 0, -1.0f, bf16_act(), false, stream_);
    check_launch("rope_backward");
  }

  // ---- Attention ----

  // One log-sum-exp per row, then (when the forward computes it) P v_dw for the backward's delta:
  // kernels::PvForDelta.
  int64_t attn_saved_count(const AttnShape& s, const Recipe& recipe) const override {
    return saves_pv(s, recipe) ? pv_offset(s) + pv_floats(s) : s.b * s.nh * s.t;
  }
  // The log-sum-exps alone: without room for P v_dw the forward does not compute it.
  int64_t attn_inference_saved_count(const AttnShape& s, const Recipe&) const override {
    return s.b * s.nh * s.t;
  }
  // The GPU casts weights on the fly at memory speed; packed products are CPU kernels.
  Packed pack_weight(Buf, int64_t, int64_t, const OperandCast&) override { return Packed::kNo; }
  // A cache's queries run on the CUDA-core kernel (one warp per query row).
  bool attends_to_a_cache() const override { return true; }

  void attention_forward(Buf out, Buf saved, Buf q, Buf k, Buf v, const AttnShape& s,
                         const Recipe& recipe, SrKey key) override {
    if (!attention_shape_ok(s, /*forward=*/true)) return;
    const uint64_t stream = stream_of(key);
    const int64_t n = s.b * s.t, keys = s.b * s.keys();
    const OperandCast& cast = recipe.act_fwd;
    const void* qf = prepare(q, {n * s.nh, s.hs}, 1, cast, "act_fwd",
                             operand_stream(stream, AttnOperand::kQFwd), 0, act());
    const void* kf = prepare(k, {keys * s.nkv, s.hs}, 1, cast, "act_fwd",
                             operand_stream(stream, AttnOperand::kKFwd), 1, act());
    const void* vf = prepare(v, {s.b, s.keys(), s.nkv * s.hs}, 1, cast, "act_fwd",
                             operand_stream(stream, AttnOperand::kVFwd), 2, act());
    const kernels::TileCast p = tile_cast(cast, operand_stream(stream, AttnOperand::kPFwd));
    if (qf == nullptr || kf == nullptr || vf == nullptr || !tile_ok(p)) return;
    // v as the backward's dP product reads it: the same cast, stream and bits as there.
    kernels::PvForDelta pv;
    if (saves_pv(s, recipe) && saved.n >= pv_offset(s) + pv_floats(s)) {
      pv.v_dw = prepare(v, {n * s.nkv, s.hs}, 1, recipe.act_dw, "act_dw",
                        operand_stream(stream, AttnOperand::kVDw), 3, act());
      if (pv.v_dw == nullptr) return;
      pv.pv = saved.at(pv_offset(s), pv_floats(s)).p;
    }
    const bool wrote_pv =
        kernels::attention_forward(out.p, saved.as<float>(), qf, kf, vf, dims(s), p,
                                   recipe.bf16_vector_ops, bf16_act(), stream_, pv);
    if (wrote_pv) {
      saved_with_pv_.insert(saved.p);
    } else {
      saved_with_pv_.erase(saved.p);
    }
    check_launch("attention_forward");
  }

  void attention_backward(Buf dq, Buf dk, Buf dv, Buf dout, Buf q, Buf k, Buf v, Buf out, Buf saved,
                          const AttnShape& s, const Recipe& recipe, SrKey key) override {
    if (!attention_shape_ok(s, /*forward=*/false)) return;
    const uint64_t stream = stream_of(key);
    const int64_t n = s.b * s.t;
    auto op = [&](AttnOperand o) { return operand_stream(stream, o); };
    kernels::AttnBackwardArgs a{};
    a.qf = prepare(q, {n * s.nh, s.hs}, 1, recipe.act_fwd, "act_fwd", op(AttnOperand::kQFwd), 0,
                   act());
    a.kf = prepare(k, {n * s.nkv, s.hs}, 1, recipe.act_fwd, "act_fwd", op(AttnOperand::kKFwd), 1,
                   act());
    a.do_x = prepare(dout, {n * s.nh, s.hs}, 1, recipe.grad_out_dx, "grad_out_dx",
                     op(AttnOperand::kDoDx), 2, act());
    a.v_dw =
        prepare(v, {n * s.nkv, s.hs}, 1, recipe.act_dw, "act_dw", op(AttnOperand::kVDw), 3, act());
    a.do_w = prepare(dout, {s.b, s.t, s.nh * s.hs}, 1, recipe.grad_out_dw, "grad_out_dw",
                     op(AttnOperand::kDoDw), 4, act());
    a.k_dw = prepare(k, {s.b, s.t, s.nkv * s.hs}, 1, recipe.act_dw, "act_dw", op(AttnOperand::kKDw),
                     5, act());
    a.q_dw = prepare(q, {s.b, s.t, s.nh * s.hs}, 1, recipe.act_dw, "act_dw", op(AttnOperand::kQDw),
                     6, act());
    a.delta = static_cast<float*>(slot(7, size_t(s.b * s.nh * s.t) * sizeof(float)));
    a.lse = saved.as<float>();
    a.dq = dq.p;
    a.dk = dk.p;
    a.dv = dv.p;
    if (out.type == act()) a.out = out.p;
    if (saved_with_pv_.count(saved.p) != 0) a.pv = saved.at(pv_offset(s), pv_floats(s)).p;
    const kernels::TileCast p_dw = tile_cast(recipe.act_dw, op(AttnOperand::kPDw));
    const kernels::TileCast ds_x = tile_cast(recipe.grad_out_dx, op(AttnOperand::kDsDx));
    const kernels::TileCast ds_w = tile_cast(recipe.grad_out_dw, op(AttnOperand::kDsDw));
    for (const void* p : {a.qf, a.kf, a.do_x, a.v_dw, a.do_w, a.k_dw, a.q_dw}) {
      if (p == nullptr) return;
    }
    if (a.delta == nullptr || !tile_ok(p_dw) || !tile_ok(ds_x) || !tile_ok(ds_w)) return;
    kernels::attention_backward(a, dims(s), p_dw, ds_x, ds_w, recipe.bf16_vector_ops, bf16_act(),
                                stream_);
    check_launch("attention_backward");
  }

  // ---- Classifier and optimizer ----

  void classifier_loss(Buf losses, Buf dlogits, Buf logits, Buf targets, int64_t n, int64_t v,
                       float dloss) override {
    materialize_pending();
    kernels::classifier_loss(losses.as<float>(), dlogits.p, logits.p, targets.as<uint32_t>(), n, v,
                             dloss, bf16_act(), stream_);
    check_launch("classifier_loss");
  }
  void distillation_loss(Buf losses, Buf dlogits, Buf logits, Buf teacher, int64_t n, int64_t v,
                         float dloss) override {
    materialize_pending();
    kernels::distillation_loss(losses.as<float>(), dlogits.p, logits.p, teacher.p, n, v, dloss,
                               bf16_act(), stream_);
    check_launch("distillation_loss");
  }

  double norm(Buf x) override {
    const int64_t count = kernels::norm_partials_count(x.n);
    if (norm_partials_ == nullptr &&
        !check(cudaMalloc(&norm_partials_, size_t(count) * sizeof(double)), "norm")) {
      return 0.0;
    }
    kernels::sum_squares(norm_partials_, x.as<float>(), x.n, stream_);
    check_launch("norm");
    std::vector<double> host(static_cast<size_t>(count));
    check(cudaMemcpyAsync(host.data(), norm_partials_, host.size() * sizeof(double),
                          cudaMemcpyDeviceToHost, stream_),
          "norm");
    check(cudaStreamSynchronize(stream_), "norm");
    double sum = 0.0;
    for (const double p : host) sum += p;
    return std::sqrt(sum);
  }

  void scale(Buf x, float factor) override {
    kernels::scale(x.as<float>(), factor, x.n, stream_);
    check_launch("scale");
  }

  void adamw(Buf params, Buf grads, Buf m, Buf v, Buf decay_mask, const AdamWStep& s) override {
    touch_weights(params);
    kernels::adamw(params.as<float>(), grads.as<float>(), m.as<float>(), v.as<float>(),
                   decay_mask.as<uint8_t>(), params.n, s.lr, s.beta1, s.beta2, s.eps,
                   s.weight_decay, s.bias_correction1, s.bias_correction2, stream_);
    check_launch("adamw");
  }

  std::string take_error() override {
    check_launch("the last op");
    return std::move(error_);
  }

 private:
  bool bf16_act() const { return options_.act_type == BufType::kBF16; }
  BufType act() const { return options_.act_type; }
  // Vector ops round their outputs to bfloat16 on request; bfloat16 activations already are.
  bool round(bool bf16) const { return bf16 && !bf16_act(); }

  void record(std::string e) {
    if (error_.empty()) error_ = std::move(e);
  }
  bool check(cudaError_t status, const char* what) {
    if (status == cudaSuccess) return true;
    record(cat("CUDA error in ", what, ": ", cudaGetErrorString(status)));
    return false;
  }
  void check_launch(const char* what) { check(cudaGetLastError(), what); }

  // The device's memory in use after an allocation: memory only grows at allocations (scratch
  // is kept), so the largest of these is the peak.
  void note_memory() {
    size_t free = 0, total = 0;
    if (cudaMemGetInfo(&free, &total) != cudaSuccess) {
      cudaGetLastError();
      return;
    }
    peak_ = std::max(peak_, int64_t(total - free));
  }

  // Scratch slots past the operand casts' (0 to 7).
  static constexpr size_t kPaddedOut = 8, kPaddedDyDx = 9, kPaddedDyDw = 10, kPaddedW = 11,
                          kBiasBf16 = 12, kPaddedDw = 13;

  static int64_t round_up(int64_t n, int64_t to) { return (n + to - 1) / to * to; }

  // y [m, round_up(n, 8)] = x w^T (x [m, k], w [n, k], both as the product reads them) in scratch
  // kPaddedOut, its columns past n zero (w padded with zero rows). A gradient pending there goes
  // to its buffer first.
  void* padded_product(const void* xq, const void* wq, int64_t m, int64_t k, int64_t n) {
    materialize_pending();
    const int64_t padded = round_up(n, 8);
    const void* wp = padded_weight(wq, n, k);
    void* yp = slot(kPaddedOut, size_t(m * padded * buf_type_bytes(act())));
    if (wp == nullptr || yp == nullptr) return nullptr;
    gemm(true, false, padded, m, k, wp, k, xq, k, yp, act(), padded, 0.0f);
    return yp;
  }

  // The logits' gradient that a training classifier_forward left in scratch kPaddedOut, to its
  // buffer (rows of v), before anything else could overwrite that scratch or read the buffer.
  void materialize_pending() {
    if (pending_.dlogits == nullptr) return;
    copy_rows(const_cast<void*>(pending_.dlogits), pending_.v, scratch_[kPaddedOut].p,
              round_up(pending_.v, 8), pending_.v, pending_.rows);
    pending_ = {};
  }

  // Whether cast c leaves values of type t as they are (bfloat16 values rounded to bfloat16 are
  // themselves).
  static bool cast_keeps(BufType t, const OperandCast& c) {
    return c.kind == OperandCast::Kind::kNone ||
           (c.kind == OperandCast::Kind::kBF16 && t == BufType::kBF16);
  }
  // Whether a product reads x itself under cast c (prepare returns x.p).
  bool as_is(Buf x, const OperandCast& c) const {
    return cast_keeps(x.type, c) && x.type == gemm_type();
  }

  // Copies `rows` rows of `width` activation elements between row strides.
  void copy_rows(void* dst, int64_t dst_stride, const void* src, int64_t src_stride, int64_t width,
                 int64_t rows) {
    kernels::copy_rows(dst, dst_stride, src, src_stride, width, rows, int(buf_type_bytes(act())),
                       stream_);
    check_launch("row copy");
  }

  // x [rows, n] itself when n is a multiple of 8, else a copy in rows padded to one with zeros
  // (scratch `index`).
  const void* padded_rows(const void* x, int64_t rows, int64_t n, size_t index) {
    const int64_t padded = round_up(n, 8);
    if (padded == n) return x;
    const size_t e = size_t(buf_type_bytes(act()));
    char* p = static_cast<char*>(slot(index, size_t(rows * padded) * e));
    if (p == nullptr) return nullptr;
    copy_rows(p, padded, x, n, n, rows);
    check(cudaMemset2DAsync(p + size_t(n) * e, size_t(padded) * e, 0, size_t(padded - n) * e,
                            size_t(rows), stream_),
          "padding");
    return p;
  }

  // A weight cast w [n, k] followed by zero rows up to a multiple of 8 (scratch kPaddedW).
  const void* padded_weight(const void* w, int64_t n, int64_t k) {
    const size_t e = size_t(buf_type_bytes(act()));
    const size_t bytes = size_t(n * k) * e, padded = size_t(round_up(n, 8) * k) * e;
    char* p = static_cast<char*>(slot(kPaddedW, padded));
    if (p == nullptr) return nullptr;
    check(cudaMemcpyAsync(p, w, bytes, cudaMemcpyDeviceToDevice, stream_), "weight copy");
    check(cudaMemsetAsync(p + bytes, 0, padded - bytes, stream_), "padding");
    return p;
  }

  void* slot(size_t index, size_t bytes) {
    if (scratch_.size() <= index) scratch_.resize(index + 1);
    Scratch& s = scratch_[index];
    if (s.bytes < bytes) {
      cudaStreamSynchronize(stream_);
      cudaFree(s.p);
      s.p = nullptr;
      s.bytes = 0;
      if (!check(cudaMalloc(&s.p, bytes), "scratch allocation")) return nullptr;
      s.bytes = bytes;
      note_memory();
    }
    return s.p;
  }

  void grow_ops(int64_t n, int64_t c) {
    const int64_t floats = kernels::column_partials_floats(n, c);
    if (floats <= ops_.partials_floats) return;
    cudaStreamSynchronize(stream_);
    cudaFree(ops_.partials);
    ops_.partials = nullptr;
    ops_.partials_floats = 0;
    if (check(cudaMalloc(&ops_.partials, size_t(floats) * sizeof(float)), "scratch allocation")) {
      ops_.partials_floats = floats;
      note_memory();
    }
  }

  void grow_sort(int64_t n) {
    if (n <= ops_.sort_capacity) return;
    cudaStreamSynchronize(stream_);
    cudaFree(ops_.sort_temp);
    cudaFree(ops_.sort_keys);
    cudaFree(ops_.sort_values);
    ops_.sort_temp = nullptr;
    ops_.sort_keys = ops_.sort_values = nullptr;
    ops_.sort_capacity = 0;
    ops_.sort_temp_bytes = kernels::sort_temp_bytes(n);
    if (check(cudaMalloc(&ops_.sort_temp, std::max<size_t>(ops_.sort_temp_bytes, 1)), "sort") &&
        check(cudaMalloc(&ops_.sort_keys, size_t(2 * n) * sizeof(uint32_t)), "sort") &&
        check(cudaMalloc(&ops_.sort_values, size_t(2 * n) * sizeof(uint32_t)), "sort")) {
      ops_.sort_capacity = n;
      note_memory();
    }
  }

  // The operand as the product reads it, of type `out` (the GEMM's, by default the activation
  // type): `x` itself when no cast or conversion is needed, else a cast copy in scratch `index`.
  const void* prepare(Buf x, std::initializer_list<int64_t> shape_list, int axis,
                      const OperandCast& cast, const char* role, uint64_t stream, size_t index) {
    return prepare(x, shape_list, axis, cast, role, stream, index, gemm_type());
  }
  const void* prepare(Buf x, std::initializer_list<int64_t> shape_list, int axis,
                      const OperandCast& cast, const char* role, uint64_t stream, size_t index,
                      BufType out) {
    const std::vector<int64_t> shape(shape_list);
    int64_t count = 1;
    for (const int64_t d : shape) count *= d;
    // No copy when nothing would change.
    const bool identity = cast_keeps(x.type, cast);
    if (identity && x.type == out) return x.p;
    const bool only_rounded =
        cast.kind != OperandCast::Kind::kMx && x.type == BufType::kF32 && out == BufType::kBF16;
    if (only_rounded) {
      // cuBLASLt's heuristics assume 256-byte aligned operands, as the scratch slots are.
      const void* w = weight_as_bf16(x, count);
      if (w != nullptr && (reinterpret_cast<uintptr_t>(w) & 255) == 0) return w;
    }
    void* dst = slot(index, size_t(count * buf_type_bytes(out)));
    if (dst == nullptr) return nullptr;
    switch (cast.kind) {
      case OperandCast::Kind::kNone:
        if (out == BufType::kBF16) {
          kernels::f32_to_bf16(static_cast<uint16_t*>(dst), x.as<float>(), count, stream_);
        } else {
          kernels::bf16_to_f32(static_cast<float*>(dst), x.as<uint16_t>(), count, stream_);
        }
        break;
      case OperandCast::Kind::kBF16:
        if (x.type == BufType::kF32 && out == BufType::kBF16) {
          kernels::f32_to_bf16(static_cast<uint16_t*>(dst), x.as<float>(), count, stream_);
        } else if (x.type == out) {
          kernels::round_to_bf16(dst, x.p, count, out == BufType::kBF16, stream_);
        } else {
          kernels::bf16_to_f32(static_cast<float*>(dst), x.as<uint16_t>(), count, stream_);
        }
        break;
      case OperandCast::Kind::kMx: {
        const QuantSpec spec = cast_spec(cast.spec, axis, stream);
        if (std::string e = mx::cuda::fake_quantize_cuda(x.p, dtype_of(x.type), shape, spec,
                                                         dtype_of(out), dst, stream_);
            !e.empty()) {
          record(cat("recipe role '", role, "' on a ", io::format_shape(shape), " operand: ", e));
          return nullptr;
        }
        break;
      }
    }
    check_launch(role);
    return dst;
  }

  // The weights as bfloat16 (rounded to nearest even), made once after each change to them
  // (hold_weights): products and bias epilogues read the weights many times per step (forward
  // and backward) and per generated token, and each read would otherwise convert them again.
  // x must lie within the weights; null otherwise, or without the memory.
  const void* weight_as_bf16(Buf x, int64_t count) {
    if (x.type != BufType::kF32 || weights_.empty()) return nullptr;
    const float* w = weights_.as<float>();
    const float* p = x.as<float>();
    if (p < w || p + count > w + weights_.n) return nullptr;
    if (weights_bf16_ == nullptr) {
      if (cudaMalloc(&weights_bf16_, size_t(weights_.n) * sizeof(uint16_t)) != cudaSuccess) {
        cudaGetLastError();
        weights_ = {};  // without the memory, convert at each use as before
        return nullptr;
      }
      note_memory();
    }
    if (!weights_bf16_fresh_) {
      kernels::f32_to_bf16(static_cast<uint16_t*>(weights_bf16_), w, weights_.n, stream_);
      check_launch("bfloat16 weights");
      weights_bf16_fresh_ = true;
    }
    return static_cast<uint16_t*>(weights_bf16_) + (p - w);
  }
  // A write to `x` makes the bfloat16 weights stale when it reaches into the weights.
  void touch_weights(Buf x) {
    if (weights_.empty() || x.empty()) return;
    const char* w = static_cast<const char*>(weights_.p);
    const char* p = static_cast<const char*>(x.p);
    if (p < w + weights_.bytes() && w < p + x.bytes()) weights_bf16_fresh_ = false;
  }

  // Products read bfloat16 operands when activations are bfloat16, float32 otherwise.
  BufType gemm_type() const { return options_.act_type; }

  // A bias as cuBLASLt's epilogue takes it: of the output's type (it has no float32 bias for a
  // bfloat16 output), so with bfloat16 activations a bfloat16 copy in scratch, as PyTorch's
  // autocast also rounds a linear layer's bias. Null for no bias.
  const void* epilogue_bias(Buf bias) {
    if (bias.empty()) return nullptr;
    if (!bf16_act()) return bias.p;
    // Where the weights' copy leaves the bias 16-byte aligned, as the epilogue needs.
    const void* w = weight_as_bf16(bias, bias.n);
    if (w != nullptr && (reinterpret_cast<uintptr_t>(w) & 15) == 0) return w;
    void* copy = slot(kBiasBf16, size_t(bias.n) * sizeof(uint16_t));
    if (copy != nullptr) {
      kernels::f32_to_bf16(static_cast<uint16_t*>(copy), bias.as<float>(), bias.n, stream_);
    }
    return copy;
  }

  // Column-major C[m,n] = op(A) op(B) + beta C (+ bias[m] on every column) through cuBLASLt, A
  // and B of gemm_type(), the bias (when given) of C's type. Returns whether the bias was added:
  // cuBLASLt's bias epilogue adds it to the float32 accumulator before the one rounding to C's
  // type; where no kernel offers that epilogue (or the bias is not 16-byte aligned) the product
  // runs without it, for the caller to add.
  bool gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const void* a, int64_t lda,
            const void* b, int64_t ldb, void* c, BufType c_type, int64_t ldc, float beta,
            const void* bias = nullptr) {
    const kernels::LtProducts::Shape shape{trans_a, trans_b,      m,    n, k, lda, ldb, ldc,
                                           c_type,  beta != 0.0f, false};
    if (bias != nullptr && (reinterpret_cast<uintptr_t>(bias) & 15) == 0) {
      kernels::LtProducts::Shape with_bias = shape;
      with_bias.bias = true;
      if (products_->run(with_bias, a, b, c, beta, bias)) return true;
    }
    if (!products_->run(shape, a, b, c, beta, nullptr)) {
      record(cat("cuBLASLt found no way to multiply ", m, " x ", k, " by ", k, " x ", n));
    }
    return false;
  }

  bool attention_shape_ok(const AttnShape& s, bool forward) {
    if (s.past != 0 && !forward) {
      record("attention's backward takes no key/value cache");
      return false;
    }
    if (s.hs % 32 != 0 || s.hs > 128) {
      record(cat("attention on the GPU needs a head size that is a multiple of 32 up to 128, not ",
                 s.hs));
      return false;
    }
    return true;
  }

  kernels::TileCast tile_cast(const OperandCast& c, uint64_t stream) const {
    kernels::TileCast t;
    t.kind = c.kind == OperandCast::Kind::kNone   ? kernels::TileCast::Kind::kNone
             : c.kind == OperandCast::Kind::kBF16 ? kernels::TileCast::Kind::kBF16
                                                  : kernels::TileCast::Kind::kMx;
    if (c.kind == OperandCast::Kind::kMx) t.spec = cast_spec(c.spec, 1, stream);
    return t;
  }
  bool tile_ok(const kernels::TileCast& t) {
    if (std::string e = kernels::check_tile_cast(t); !e.empty()) {
      record(e);
      return false;
    }
    return true;
  }
  static kernels::AttnDims dims(const AttnShape& s) {
    return {s.b, s.t, s.nh, s.nkv, s.hs, s.past};
  }
  // Whether the forward keeps P v_dw for the backward's delta: when the tensor-core kernels cast
  // P with MX (otherwise delta comes from the output or from a sweep of the backward).
  bool saves_pv(const AttnShape& s, const Recipe& recipe) const {
    const kernels::TileCast p = tile_cast(recipe.act_fwd, 0);
    return s.past == 0 && p.kind == kernels::TileCast::Kind::kMx &&
           kernels::flash_supports(dims(s), bf16_act(), {p});
  }
  // [B, T, nh, hs] in the activation type (bfloat16 where saves_pv), in float32 elements, after
  // the log-sum-exps at the next 16-byte boundary (the kernels copy rows in 16-byte pieces).
  static int64_t pv_floats(const AttnShape& s) { return (s.b * s.t * s.nh * s.hs + 1) / 2; }
  static int64_t pv_offset(const AttnShape& s) { return (s.b * s.nh * s.t + 3) / 4 * 4; }

  friend void* mx::nn::cuda_backend_stream(Backend& backend);

  CudaBackendOptions options_;
  cudaStream_t stream_;
  std::unique_ptr<kernels::LtProducts> products_;
  std::unordered_set<void*> owned_;
  std::unordered_set<const void*> saved_with_pv_;  // saved buffers whose forward wrote P v_dw
  // A training classifier_forward's gradient of `dlogits` (rows x v), kept padded in scratch
  // kPaddedOut until classifier_backward takes it (or materialize_pending copies it out).
  struct PendingGradient {
    const void* dlogits = nullptr;
    int64_t rows = 0, v = 0;
  };
  PendingGradient pending_;
  std::vector<Scratch> scratch_;
  kernels::OpsScratch ops_;
  double* norm_partials_ = nullptr;
  Buf weights_;                   // hold_weights
  void* weights_bf16_ = nullptr;  // weight_as_bf16
  bool weights_bf16_fresh_ = false;
  int64_t peak_ = 0;
  std::string error_;
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(const CudaBackendOptions& options, std::string* error) {
  std::string why;
  if (!mx::cuda::cuda_device_available(&why)) {
    *error = "no usable CUDA GPU (" + why + ")";
    return nullptr;
  }
  if (options.act_type != BufType::kBF16 && options.act_type != BufType::kF32) {
    *error = "GPU activations are bfloat16 or float32";
    return nullptr;
  }
  if (cudaSetDevice(options.device) != cudaSuccess) {
    cudaGetLastError();
    *error = cat("cannot use GPU ", options.device);
    return nullptr;
  }
  cudaStream_t stream = nullptr;
  if (cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) != cudaSuccess) {
    cudaGetLastError();
    *error = "cannot set up the GPU (stream)";
    return nullptr;
  }
  auto products = kernels::LtProducts::create(stream, options.act_type, options.tf32, error);
  if (products == nullptr) {
    cudaStreamDestroy(stream);
    return nullptr;
  }
  return std::make_unique<CudaBackend>(options, stream, std::move(products));
}

int cuda_device_count(std::string* why) {
  if (!mx::cuda::cuda_device_available(why)) return 0;
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    *why = "the CUDA driver cannot count the GPUs";
    return 0;
  }
  return count;
}

void* cuda_backend_stream(Backend& backend) {
  auto* cuda = dynamic_cast<CudaBackend*>(&backend);
  return cuda != nullptr ? static_cast<void*>(cuda->stream_) : nullptr;
}

}  // namespace mx::nn
