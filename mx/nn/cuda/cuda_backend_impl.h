// The CUDA backend's class, shared by its source files. Private to mx/nn/cuda (users include
// cuda_backend.h):
//   cuda_backend.cpp            memory, scratch, errors, and making the backend;
//   cuda_backend_linear.cpp     matrix products, their operand casts and the classifier;
//   cuda_backend_ops.cpp        vector ops, losses and the optimizer;
//   cuda_backend_attention.cpp  attention.
#pragma once

#include <cuda_runtime.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "mx/kernels/cuda/mx_gemm.h"
#include "mx/kernels/cuda/quantize_cuda.h"
#include "mx/nn/backend.h"
#include "mx/nn/cuda/attention.h"
#include "mx/nn/cuda/cuda_backend.h"
#include "mx/nn/cuda/lt_products.h"
#include "mx/nn/cuda/ops.h"

namespace mx::nn::cuda_impl {

namespace kernels = mx::nn::cuda;

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

  ~CudaBackend() override;

  std::string_view name() const override { return "cuda"; }
  BufType act_type() const override { return options_.act_type; }
  bool host_visible() const override { return false; }

  Buf alloc(BufType type, int64_t n) override;
  void release(Buf x) override;
  Buf wrap(void*, BufType, int64_t) override;
  void upload(Buf dst, const void* host) override;
  void download(void* host, Buf src) override;
  void zero(Buf x) override;
  void copy(Buf dst, Buf src) override;
  void hold_weights(Buf weights) override;
  int64_t peak_memory() override { return peak_; }
  std::string device_description() const override;

  int64_t memory_available() override;

  // ---- Linear layers ----

  void matmul_forward(Buf y, Buf x, Buf w, Buf bias, int64_t m, int64_t k, int64_t n,
                      const Recipe& recipe, SrKey key) override;

  void matmul_backward(Buf dx, Buf dw, Buf dbias, Buf dy, Buf x, Buf w, int64_t m, int64_t k,
                       int64_t n, bool accumulate_dx, const Recipe& recipe, SrKey key) override;
  // Room for x's cast down its columns (act_dw) where keeps_input_cast would make it: M*K
  // bfloat16 values and 128 more, so that the copy can start at a 256-byte boundary.
  int64_t input_kept_count(int64_t m, int64_t k, const Recipe& recipe) const override;
  bool sums_bias_with_dy_casts(int64_t m, int64_t n, const Recipe& recipe) const override;
  // x cast once for all the products (and, backward, once for all the weight gradients) where
  // the casts draw nothing from each product's key and no product takes packed operands; else
  // the defaults, a product at a time.
  void matmuls_forward(std::span<const Product> products, Buf x, int64_t m, int64_t k,
                       const Recipe& recipe) override;
  void matmuls_backward(Buf dx, std::span<const ProductGrad> grads, Buf x, int64_t m, int64_t k,
                        bool accumulate_dx, const Recipe& recipe) override;
  // The GELU in the products' epilogues (cuBLASLt's GELU_AUX_BIAS forward, DGELU backward): no
  // separate pass over the MLP's widest activations.
  void matmul_gelu_forward(Buf out, Buf pre, Buf x, Buf w, Buf bias, int64_t m, int64_t k,
                           int64_t n, bool bf16, const Recipe& recipe, SrKey key) override;
  void matmul_backward_gelu(Buf dpre, Buf dx, Buf dw, Buf dbias, Buf dy, Buf x, Buf w, Buf pre,
                            int64_t m, int64_t k, int64_t n, const Recipe& recipe,
                            SrKey key) override;
  // The residual added by the product's epilogue (beta = 1 on the stream's matrix).
  void matmul_residual_forward(Buf out, Buf x, Buf w, Buf bias, Buf residual, int64_t m, int64_t k,
                               int64_t n, bool bf16, const Recipe& recipe, SrKey key) override;

  // An odd vocabulary's training pass keeps the logits' gradient in the padded rows that the
  // product wrote and the loss read (PendingGradient), where both backward products take it as
  // it is: no copy out of the padded rows after the product and none back in before the
  // backward. Other passes take Backend's two calls.
  void classifier_forward(Buf logits, Buf losses, Buf x, Buf w, Buf targets, int64_t n, int64_t k,
                          int64_t v, bool training, float dloss, const Recipe& recipe,
                          SrKey key) override;

  void classifier_backward(Buf dx, Buf dw, Buf dlogits, Buf x, Buf w, int64_t n, int64_t k,
                           int64_t v, const Recipe& recipe, SrKey key) override;

  // cuBLAS's float32 product, both operands the cast x (padded to a multiple of 8 columns
  // where needed, as the weight gradient pads dy).
  void gram(Buf h, Buf x, int64_t m, int64_t k, const OperandCast& cast, uint64_t stream) override;

  // ---- Vector ops ----

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

  // ---- Attention ----

  // One log-sum-exp per row, then (when the forward computes it) P v_dw for the backward's delta:
  // kernels::PvForDelta, then (saves_casts) the backward's casts of q, k and v.
  int64_t attn_saved_count(const AttnShape& s, const Recipe& recipe) const override {
    if (saves_casts(s, recipe)) return saved_casts(s).end;
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
                         const Recipe& recipe, SrKey key) override;

  void attention_backward(Buf dq, Buf dk, Buf dv, const QkvBiasGrads& dbias, Buf dout, Buf q, Buf k,
                          Buf v, Buf out, Buf saved, const AttnShape& s, const Recipe& recipe,
                          SrKey key) override;
  bool attention_sums_qkv_biases(const AttnShape& s) const override;

  // ---- Classifier and optimizer ----

  void classifier_loss(Buf losses, Buf dlogits, Buf logits, Buf targets, int64_t n, int64_t v,
                       float dloss) override;
  void distillation_loss(Buf losses, Buf dlogits, Buf logits, Buf teacher, int64_t n, int64_t v,
                         float dloss) override;

  double norm(Buf x) override;

  void scale(Buf x, float factor) override;

  void adamw(Buf params, Buf grads, Buf m, Buf v, Buf decay_mask, const AdamWStep& s) override;

  std::string take_error() override;

 private:
  // ---- Linear layers ----

  // x [m, k] and w [n, k] as the forward product reads them (the recipe's act_fwd and
  // weight_fwd casts, scratch 0 and 1); both null where a cast failed (recorded).
  struct Operands {
    const void *x = nullptr, *w = nullptr;
    bool ok() const { return x != nullptr && w != nullptr; }
  };
  Operands forward_operands(Buf x, Buf w, int64_t m, int64_t k, int64_t n, const Recipe& recipe,
                            SrKey key);
  // Whether the forward casts product input x [m, k] along its rows (act_fwd) and down its
  // columns (act_dw) in one read, keeping the second in x's room past m * k for the backward:
  // both MX casts that draw nothing from a product's key (so that products of one input share
  // them), one read for both (fake_quantize_dual_reads_once), bfloat16 operands, no packed
  // products, and the room there.
  bool keeps_input_cast(int64_t m, int64_t k, const Recipe& recipe) const;
  // Where x's kept cast starts: the first 256-byte boundary past its m * k values.
  static void* kept_input_cast(Buf x, int64_t m, int64_t k);
  // x as the forward product reads it, in scratch 0 (or x itself), with its act_dw cast kept
  // where keeps_input_cast and x has the room. Null where a cast failed (recorded).
  const void* forward_input(Buf x, int64_t m, int64_t k, const Recipe& recipe, uint64_t stream);
  // x as the weight gradient's product reads it: the cast its forward kept, or made now in
  // scratch `index`.
  const void* dw_input(Buf x, int64_t m, int64_t k, const Recipe& recipe, uint64_t stream,
                       size_t index);
  // Row-major y[M,N] = x[M,K] W[N,K]^T of the forward operands (+ residual[M,N] as cuBLASLt's C
  // where given), plus the bias: in the product's epilogue (lt_bias, epilogue_bias's copy) where
  // cuBLASLt takes it, else as a pass of its own after it. N a multiple of 8.
  void forward_product(void* y, const Operands& q, Buf bias, const void* lt_bias, int64_t m,
                       int64_t k, int64_t n, const void* residual = nullptr);

  // Whether cast c of the pending gradient's padded rows (scratch kPaddedOut) gives the values
  // that it gives the unpadded rows, in their first v columns, and zeros in the padding. True
  // where c leaves the values as they are, and for symmetric MX casts by nearest or directed
  // rounding: blocks start at column 0, zeros do not change a block's scale, and a zero casts to
  // zero (a NaN block also fills the padding of its row with NaN, where that row's dx is NaN
  // anyway). Not for stochastic rounding, which draws by each value's index in the unpadded
  // tensor: the caller then copies the rows out and casts those.
  bool casts_padded_rows(Buf dlogits, const OperandCast& c) const;

  // The dy operands of the two backward products as rows padded to a multiple of 8 with zeros,
  // already cast as the recipe says; null where linear_backward casts and pads dy itself.
  struct PaddedDy {
    const void* dx = nullptr;
    const void* dw = nullptr;
  };

  // dy [m, n]'s casts for both backward products from one read (fake_quantize_dual_cuda): along
  // the rows (grad_out_dx) into scratch `rows_index`, down the columns (grad_out_dw) into
  // `cols_index`; where real_n < n, dy's rows hold real_n values and zero padding, cast as the
  // unpadded rows would be. False, with *out untouched, where that read is not one kernel (not
  // both MX casts of bfloat16 operands with one rounding, symmetric where padded, or not a shape
  // the kernel takes): the caller casts dy otherwise. True otherwise, *out null where the casts
  // failed (recorded).
  // With column_sums, the kernel also writes dy's column sums per 32-row tile there
  // (fake_quantize_dual_cuda; real_n == n).
  bool dual_dy_casts(Buf dy, int64_t m, int64_t n, int64_t real_n, const Recipe& recipe,
                     uint64_t stream, size_t rows_index, size_t cols_index, PaddedDy* out,
                     float* column_sums = nullptr);
  // x [rows, cols] (bfloat16) cast along its rows into rows_out and down its columns into
  // cols_out (fake_quantize_dual_cuda: one read where its kernel takes the specs); false where
  // the casts failed (recorded, naming `roles`). real_cols as there.
  bool dual_cast(const void* x, int64_t rows, int64_t cols, int64_t real_cols,
                 const QuantSpec& along, const QuantSpec& down, void* rows_out, void* cols_out,
                 const char* roles, float* column_sums = nullptr);

  // dgelu_pre: dx's product ends in cuBLASLt's DGELU epilogue on this GELU input (or, where
  // cuBLASLt has none, in gelu_backward in place), so dx holds d(pre).
  // x_dw: x as the dW product reads it, already cast (matmuls_backward), or null.
  void linear_backward(Buf dx, Buf dw, Buf dbias, Buf dy, Buf x, Buf w, int64_t m, int64_t k,
                       int64_t n, bool accumulate_dx, const Recipe& recipe, SrKey key,
                       const PaddedDy& padded_dy, Buf dgelu_pre = {}, const void* x_dw = nullptr);
  // Whether a cast of one operand gives the same values whichever product's key it is drawn
  // under: all but stochastic rounding.
  static bool cast_ignores_key(const OperandCast& c) {
    return c.kind != OperandCast::Kind::kMx || c.spec.rounding != Rounding::kStochastic;
  }

  // ---- Linear layers on packed MX operands (cuda_backend_packed.cpp) ----

  // Whether options_.packed_products takes a product of these casts with these three dimensions
  // (product_takes_packed_operands, mx/nn/packed_operands.h).
  bool packs(const OperandCast& a, const OperandCast& b, std::initializer_list<int64_t> dims) const;

  // x [rows, cols] cast with blocks of 32 along `axis` (1: along the rows; 0: down the columns,
  // then rearranged as the transpose's rows), as MX storage whose rows run along the product's
  // reduction axis, in scratch `index`. Null elements where the cast failed (recorded).
  mx::cuda::MxMatrix pack(Buf x, int64_t rows, int64_t cols, int axis, const OperandCast& cast,
                          const char* role, uint64_t stream, size_t index);

  // Scratch `index` sized for one packed [rows, cols] operand of `format`, and where `staged`,
  // for the cast down its columns before transpose_staged moves it into `matrix`.
  struct PackedRoom {
    mx::cuda::MxDeviceBuffers matrix, staged;
    ElementFormat format = ElementFormat::kE4M3;
    mx::cuda::MxMatrix as_matrix() const { return {matrix.elements, matrix.scales, format}; }
  };
  PackedRoom packed_room(int64_t rows, int64_t cols, ElementFormat format, bool staged,
                         size_t index);
  std::string transpose_staged(const PackedRoom& room, int64_t rows, int64_t cols);

  // dy [m, n] along its rows (grad_out_dx, into scratch kPackedA) and down its columns
  // (grad_out_dw, as dy^T, scratch kPackedDy) from one read (quantize_dual_cuda). False, with
  // nothing done, where the two casts differ in more than their stochastic seed or round
  // stochastically; true otherwise, *rows and *cols null where the casts failed (recorded).
  bool pack_dy_once(Buf dy, int64_t m, int64_t n, const Recipe& recipe, uint64_t stream,
                    mx::cuda::MxMatrix* rows, mx::cuda::MxMatrix* cols);

  // d [m, n] (of type d_type) = a [m, k] b [n, k]^T (+ bias) through mx_gemm_auto; false where
  // it refused (recorded).
  bool packed_product(const mx::cuda::MxMatrix& a, const mx::cuda::MxMatrix& b, int64_t m,
                      int64_t n, int64_t k, const float* bias, void* d, BufType d_type);

  // The forward and backward of a linear layer on packed operands; false, with nothing done,
  // where packs() refuses a product or y or dx does not start at a 16-byte boundary.
  bool packed_forward(Buf y, Buf x, Buf w, Buf bias, int64_t m, int64_t k, int64_t n,
                      const Recipe& recipe, SrKey key);
  bool packed_backward(Buf dx, Buf dw, Buf dbias, Buf dy, Buf x, Buf w, int64_t m, int64_t k,
                       int64_t n, bool accumulate_dx, const Recipe& recipe, SrKey key);

  // ---- Shared ----

  bool bf16_act() const { return options_.act_type == BufType::kBF16; }
  BufType act() const { return options_.act_type; }
  // Vector ops round their outputs to bfloat16 on request; bfloat16 activations already are.
  bool round(bool bf16) const { return bf16 && !bf16_act(); }

  void record(std::string e) {
    if (error_.empty()) error_ = std::move(e);
  }
  bool check(cudaError_t status, const char* what);
  void check_launch(const char* what) { check(cudaGetLastError(), what); }

  // The device's memory in use after an allocation: memory only grows at allocations (scratch
  // is kept), so the largest of these is the peak.
  void note_memory();

  // Scratch slots past the operand casts' (0 to 7).
  static constexpr size_t kPaddedOut = 8, kPaddedDyDx = 9, kPaddedDyDw = 10, kPaddedW = 11,
                          kBiasBf16 = 12, kPaddedDw = 13, kDyDw = 14, kPackedA = 15, kPackedB = 16,
                          kMxWorkspace = 17, kPackedOut = 18, kPackedDy = 19, kSharedActDw = 20;

  static int64_t round_up(int64_t n, int64_t to) { return (n + to - 1) / to * to; }
  // The kernels' element type of a buffer type.
  static DType dtype_of(BufType t) { return t == BufType::kBF16 ? DType::kBF16 : DType::kF32; }

  // y [m, round_up(n, 8)] = x w^T (x [m, k], w [n, k], both as the product reads them) in scratch
  // kPaddedOut, its columns past n zero (w padded with zero rows). A gradient pending there goes
  // to its buffer first.
  void* padded_product(const void* xq, const void* wq, int64_t m, int64_t k, int64_t n);

  // The logits' gradient that a training classifier_forward left in scratch kPaddedOut, to its
  // buffer (rows of v), before anything else could overwrite that scratch or read the buffer.
  void materialize_pending();

  // Whether cast c leaves values of type t as they are (bfloat16 values rounded to bfloat16 are
  // themselves).
  static bool cast_keeps(BufType t, const OperandCast& c);
  // Whether a product reads x itself under cast c (prepare returns x.p).
  bool as_is(Buf x, const OperandCast& c) const {
    return cast_keeps(x.type, c) && x.type == gemm_type();
  }

  // Copies `rows` rows of `width` activation elements between row strides.
  void copy_rows(void* dst, int64_t dst_stride, const void* src, int64_t src_stride, int64_t width,
                 int64_t rows);

  // x [rows, n] itself when n is a multiple of 8, else a copy in rows padded to one with zeros
  // (scratch `index`).
  const void* padded_rows(const void* x, int64_t rows, int64_t n, size_t index);

  // A weight cast w [n, k] followed by zero rows up to a multiple of 8 (scratch kPaddedW).
  const void* padded_weight(const void* w, int64_t n, int64_t k);

  void* slot(size_t index, size_t bytes);

  // ops_.partials grown to column sums over n rows of c columns, or to `floats`.
  void grow_ops(int64_t n, int64_t c);
  void grow_partials(int64_t floats);

  void grow_sort(int64_t n);

  // The operand as the product reads it, of type `out` (the GEMM's, by default the activation
  // type): `x` itself when no cast or conversion is needed, else a cast copy in scratch `index`.
  const void* prepare(Buf x, std::initializer_list<int64_t> shape_list, int axis,
                      const OperandCast& cast, const char* role, uint64_t stream, size_t index);
  const void* prepare(Buf x, std::initializer_list<int64_t> shape_list, int axis,
                      const OperandCast& cast, const char* role, uint64_t stream, size_t index,
                      BufType out);

  // The weights as bfloat16 (rounded to nearest even), made once after each change to them
  // (hold_weights): products and bias epilogues read the weights many times per step (forward
  // and backward) and per generated token, and each read would otherwise convert them again.
  // x must lie within the weights; null otherwise, or without the memory.
  const void* weight_as_bf16(Buf x, int64_t count);
  // A bias among the weights as bfloat16 where the weights have no bfloat16 copy: under MX
  // casts the products read the weights' casts, and the bias epilogues alone read bfloat16
  // weights, so a copy of each bias seen (2 bytes per bias value, not per parameter), renewed in
  // one launch for all of them after each change to the weights. Null where the bias lies
  // outside the weights or its memory is not there.
  const void* bias_as_bf16(Buf bias);
  // The index of `bias`'s copy in bias_copies_, its memory taken on first sight; none where that
  // fails or the bias was first seen with another count.
  std::optional<size_t> bias_copy_index(const float* bias, int64_t count);
  // Every bias copy made again from the weights, in one launch; false without the memory for
  // the table of them.
  bool renew_bias_copies();
  // Frees every copy made of the weights (their bfloat16 copy, their biases', their casts).
  void drop_weight_copies();
  // A write to `x` makes the bfloat16 weights and their casts stale when it reaches into the
  // weights.
  void touch_weights(Buf x);

  // ---- Weight casts, once per change of the weights (cuda_backend_weight_casts.cpp) ----

  // w [n, k] cast along `axis` as prepare() casts it. A matrix among the held weights under a
  // deterministic MX cast is cast once after each change to the weights and read from then on
  // by every product (forward and backward, every micro-batch and generated token): where the
  // blocks run along the rows, all the weights in one pass, since each row of 32 is a block
  // wherever a matrix starts on a block boundary. The casts' memory is taken from the second
  // pass on (once the first has allocated its scratch), only where as much again stays free,
  // and given up to any buffer of the model's that would not fit otherwise. Elsewhere, and
  // until then, prepare() into scratch `index`.
  const void* weight_cast(Buf w, int64_t n, int64_t k, int axis, const OperandCast& cast,
                          const char* role, uint64_t stream, size_t index);
  // The kept casts of one cast along one axis, each matrix's at its offset into the weights.
  struct WeightCasts {
    OperandCast cast;
    int axis = 0;
    void* p = nullptr;  // null: not (yet) kept, cast at each use
    // The matrix first asked for: the memory is taken when it is asked for again, after a
    // whole pass has allocated its scratch. Then -1 (taken, or too little memory).
    int64_t first_offset = -1;
    uint64_t version = 0;
    bool all_rows = false;                      // every row block of the weights cast at `version`
    std::set<std::array<int64_t, 3>> matrices;  // {offset, n, k} cast at `version`
    std::set<std::array<int64_t, 3>> previous;  // those cast at the version before
    // `previous` as one launch's column casts (cast_previous_matrices), and its device copy.
    std::vector<mx::cuda::ColumnCastMatrix> batch;
    mx::cuda::ColumnCastMatrix* batch_table = nullptr;
  };
  WeightCasts* weight_casts_for(const OperandCast& cast, int axis, int64_t offset);
  // Casts every matrix of casts->previous down its columns in one launch, into casts->matrices;
  // false (nothing recorded) where it cannot, for the matrices to be cast one by one.
  bool cast_previous_matrices(WeightCasts* casts, const OperandCast& cast);
  // Frees the kept casts for good (each product casts its weight from then on); false where
  // none were kept.
  bool spare_weight_casts();
  // x's MX cast with blocks along `axis`, of type `out`, into dst; false where it failed
  // (recorded).
  bool mx_cast(Buf x, const std::vector<int64_t>& shape, int axis, const OperandCast& cast,
               const char* role, uint64_t stream, void* dst, BufType out);

  // Products read bfloat16 operands when activations are bfloat16, float32 otherwise.
  BufType gemm_type() const { return options_.act_type; }

  // A bias as cuBLASLt's epilogue takes it: of the output's type (it has no float32 bias for a
  // bfloat16 output), so with bfloat16 activations a bfloat16 copy in scratch, as PyTorch's
  // autocast also rounds a linear layer's bias. Null for no bias.
  const void* epilogue_bias(Buf bias);

  // Column-major C[m,n] = op(A) op(B) + beta C (+ bias[m] on every column) through cuBLASLt, A
  // and B of gemm_type(), the bias (when given) of C's type. Returns whether the bias was added:
  // cuBLASLt's bias epilogue adds it to the float32 accumulator before the one rounding to C's
  // type; where no kernel offers that epilogue (or the bias is not 16-byte aligned) the product
  // runs without it, for the caller to add.
  // With c_in, C = op(A) op(B) + beta c_in (+ bias) instead.
  bool gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const void* a, int64_t lda,
            const void* b, int64_t ldb, void* c, BufType c_type, int64_t ldc, float beta,
            const void* bias = nullptr, const void* c_in = nullptr);
  // Column-major C[m,n] = op(A) B with one of the GELU epilogues (kGeluAux, kGeluAuxBias,
  // kDgelu) on `aux`, C's shape: operands and C of the activation type, C overwritten. False,
  // with nothing recorded, where cuBLASLt has no kernel for it.
  bool gemm_gelu(kernels::LtProducts::Epilogue epilogue, bool trans_a, int64_t m, int64_t n,
                 int64_t k, const void* a, int64_t lda, const void* b, int64_t ldb, void* c,
                 int64_t ldc, const void* bias, void* aux);

  bool attention_shape_ok(const AttnShape& s, bool forward);

  kernels::TileCast tile_cast(const OperandCast& c, uint64_t stream) const;
  bool tile_ok(const kernels::TileCast& t);
  static kernels::AttnDims dims(const AttnShape& s) {
    return {s.b, s.t, s.nh, s.nkv, s.hs, s.past};
  }
  // Whether the forward keeps P v_dw for the backward's delta: when the tensor-core kernels cast
  // P with MX (otherwise delta comes from the output or from a sweep of the backward).
  bool saves_pv(const AttnShape& s, const Recipe& recipe) const;
  // [B, T, nh, hs] in the activation type (bfloat16 where saves_pv), in float32 elements, after
  // the log-sum-exps at the next 16-byte boundary (the kernels copy rows in 16-byte pieces).
  static int64_t pv_floats(const AttnShape& s) { return (s.b * s.t * s.nh * s.hs + 1) / 2; }
  static int64_t pv_offset(const AttnShape& s) { return (s.b * s.nh * s.t + 3) / 4 * 4; }
  // A training forward whose operands are cast with MX casts it can take as matrices
  // [tokens, heads x hs] keeps the backward's casts of q, k and v in `saved` after P v_dw: q and
  // k along the head (act_fwd, for S = q k^T) and down the tokens (act_dw, for dK = dS^T q and
  // dQ = dS k), v along the head (act_dw, for dP = dO v^T). Each input is read once for both of
  // its casts, and the backward casts only dO (once, for both of its products), where it would
  // otherwise cast q, k, v and dO seven times. Blocks along the head or down the tokens are
  // those of the per-head or per-sequence casts when hs and T are multiples of the block size.
  bool saves_casts(const AttnShape& s, const Recipe& recipe) const;
  // Offsets in `saved` (float32 elements; each region on a 256-byte boundary) of those casts.
  struct SavedCasts {
    int64_t q_rows = 0, q_cols = 0, k_rows = 0, k_cols = 0, v_rows = 0, end = 0;
  };
  static SavedCasts saved_casts(const AttnShape& s);

  friend void* mx::nn::cuda_backend_stream(Backend& backend);
  friend std::string mx::nn::write_cuda_product_algorithms(Backend& backend,
                                                           const std::string& path,
                                                           size_t* products);

  CudaBackendOptions options_;
  cudaStream_t stream_;
  std::unique_ptr<kernels::LtProducts> products_;
  std::unordered_set<void*> owned_;
  std::unordered_set<const void*> saved_with_pv_;     // saved buffers whose forward wrote P v_dw
  std::unordered_set<const void*> saved_with_casts_;  // ... and the backward's casts
  // Product inputs whose last forward kept their act_dw cast, with that forward's shape and
  // cast: the backward reads the kept cast only where it would make the same one.
  struct KeptInput {
    int64_t m = 0, k = 0;
    OperandCast cast;
  };
  std::unordered_map<const void*, KeptInput> inputs_with_kept_casts_;
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
  Buf weights_;                                   // hold_weights
  void* weights_bf16_ = nullptr;                  // weight_as_bf16
  uint64_t weights_version_ = 0;                  // counts the writes into the weights
  uint64_t weights_bf16_version_ = ~uint64_t{0};  // the weights_version_ of weights_bf16_
  std::vector<WeightCasts> weight_casts_;
  struct BiasCopies {
    std::vector<kernels::Bf16Segment> segments;        // each bias's float32 values and copy
    std::unordered_map<const float*, size_t> by_bias;  // index into segments
    kernels::Bf16Segment* table = nullptr;             // segments on the device, as of the last
    size_t table_size = 0;                             // launch over all of them
    uint64_t version = ~uint64_t{0};                   // the weights_version_ of the copies
  };
  BiasCopies bias_copies_;
  int64_t peak_ = 0;
  std::string error_;
};

}  // namespace mx::nn::cuda_impl
