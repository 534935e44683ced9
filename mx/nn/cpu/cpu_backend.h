// The CPU backend, the reference the CUDA backend is tested against: mx/nn/cpu/layers.h and
// mx/nn/cpu/matmul.h behind the Backend interface, over host memory, in FP32.
#pragma once

#include <memory>
#include <unordered_map>
#include <vector>

#include "mx/core/mx_tensor.h"
#include "mx/kernels/cpu/mx_matmul.h"
#include "mx/nn/backend.h"
#include "mx/nn/cpu/layers.h"
#include "mx/nn/cpu/matmul.h"

namespace mx::nn {

class CpuBackend : public Backend {
 public:
  // threads: for the layer ops (0: all hardware threads). Results do not depend on it.
  // packed_mode: how products from packed weights run (mx/kernels/cpu/mx_matmul.h).
  explicit CpuBackend(int threads = 0,
                      mx::cpu::MatmulMode packed_mode = mx::cpu::MatmulMode::kExact)
      : threads_(threads), packed_mode_(packed_mode) {}
  std::string_view name() const override { return "cpu"; }

  BufType act_type() const override { return BufType::kF32; }
  bool host_visible() const override { return true; }
  Buf alloc(BufType type, int64_t n) override;
  void release(Buf x) override { owned_.erase(x.p); }
  Buf wrap(void* host, BufType type, int64_t n) override { return {host, n, type}; }
  void upload(Buf dst, const void* host) override;
  void download(void* host, Buf src) override;
  void zero(Buf x) override;
  void copy(Buf dst, Buf src) override;
  int64_t memory_available() override;
  int64_t peak_memory() override;
  std::string device_description() const override;

  void matmul_forward(Buf y, Buf x, Buf w, Buf bias, int64_t m, int64_t k, int64_t n,
                      const Recipe& recipe, SrKey key) override;
  // Packs casts to MX in blocks of 32 along K with deterministic rounding. Products from packed
  // weights are mx::cpu::mx_matmul's, in exact mode (float32 sums of the dequantized W times the
  // cast x, equal to the cast path's up to summation order) unless the backend was made for fast
  // mode (x quantized to MXINT8 in blocks of 32 first; docs/NUMERICS.md).
  Packed pack_weight(Buf w, int64_t n, int64_t k, const OperandCast& cast) override;
  bool embeds_from_packed() const override { return true; }
  int64_t packed_bytes() const override;
  void matmul_backward(Buf dx, Buf dw, Buf dbias, Buf dy, Buf x, Buf w, int64_t m, int64_t k,
                       int64_t n, bool accumulate_dx, const Recipe& recipe, SrKey key) override;
  // One chain of fused multiply-adds per element over the rows in order (mx/kernels/cpu/sgemm.h),
  // the upper triangle computed and copied below.
  void gram(Buf h, Buf x, int64_t m, int64_t k, const OperandCast& cast, uint64_t stream) override;
  void embedding_forward(Buf out, Buf tokens, Buf wte, Buf wpe, int64_t n, int64_t t,
                         int64_t c) override;
  void embedding_backward(Buf dwte, Buf dwpe, Buf dout, Buf tokens, int64_t n, int64_t t,
                          int64_t c) override;
  void layernorm_forward(Buf out, Buf mean, Buf rstd, Buf x, Buf w, Buf b, int64_t n, int64_t c,
                         bool bf16) override;
  void layernorm_backward(Buf dx, Buf dw, Buf db, Buf dx_bias, Buf dout, Buf x, Buf w, Buf mean,
                          Buf rstd, int64_t n, int64_t c) override;
  void rmsnorm_forward(Buf out, Buf rstd, Buf x, Buf w, int64_t n, int64_t c, bool bf16) override;
  void rmsnorm_backward(Buf dx, Buf dw, Buf dout, Buf x, Buf w, Buf rstd, int64_t n,
                        int64_t c) override;
  void gelu_forward(Buf out, Buf x, int64_t count, bool bf16) override;
  void gelu_backward(Buf dx, Buf x, Buf dout, int64_t count) override;
  void swiglu_forward(Buf out, Buf gate, Buf up, int64_t count, bool bf16) override;
  void swiglu_backward(Buf dgate, Buf dup, Buf dout, Buf gate, Buf up, int64_t count) override;
  void residual_forward(Buf out, Buf a, Buf b, int64_t count, bool bf16) override;
  void rope_forward(Buf x, int64_t n, int64_t t, int64_t heads, int64_t hs, int64_t first_position,
                    bool bf16) override;
  void rope_backward(Buf dx, int64_t n, int64_t t, int64_t heads, int64_t hs) override;
  int64_t attn_saved_count(const AttnShape& s, const Recipe&) const override {
    return s.b * s.nh * s.t * s.keys();
  }
  bool attends_to_a_cache() const override { return true; }
  void attention_forward(Buf out, Buf saved, Buf q, Buf k, Buf v, const AttnShape& s,
                         const Recipe& recipe, SrKey key) override;
  void attention_backward(Buf dq, Buf dk, Buf dv, const QkvBiasGrads& dbias, Buf dout, Buf q, Buf k,
                          Buf v, Buf out, Buf saved, const AttnShape& s, const Recipe& recipe,
                          SrKey key) override;
  void classifier_loss(Buf losses, Buf dlogits, Buf logits, Buf targets, int64_t n, int64_t v,
                       float dloss) override;
  void distillation_loss(Buf losses, Buf dlogits, Buf logits, Buf teacher, int64_t n, int64_t v,
                         float dloss) override;
  double norm(Buf x) override;
  void scale(Buf x, float factor) override;
  void adamw(Buf params, Buf grads, Buf m, Buf v, Buf decay_mask, const AdamWStep& s) override;
  std::string take_error() override { return std::move(error_); }

 private:
  void record(std::string error) {
    if (error_.empty()) error_ = std::move(error);
  }

  int threads_;
  mx::cpu::MatmulMode packed_mode_;
  cpu::MatmulScratch scratch_;
  cpu::AttentionScratch attention_scratch_;
  std::vector<float> probs_;  // the classifier's softmax, [N, V]
  struct PackedWeight {
    QuantSpec spec;  // the weight cast's, as the recipe gives it
    bool exact;      // the blocks decode to w's values
    MxTensor w;
  };
  std::unordered_map<const void*, PackedWeight> packed_;
  std::unordered_map<void*, std::unique_ptr<char[]>> owned_;
  std::string error_;
};

}  // namespace mx::nn
