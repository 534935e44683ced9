// Launchers of the CUDA backend's vector-op kernels (ops_*.cu): the ops of mx/nn/cpu/layers.h
// over device buffers, with activations in bfloat16 or float32 (`bf16_act`) and everything
// else (weights, gradients, statistics) in float32. Math is float32; each output element is
// computed by one thread in a fixed order, and every reduction over rows sums fixed chunks in
// a fixed order, so results repeat bit for bit on the same GPU. Nothing here synchronises.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace mx::nn {
struct AdamWStep;  // mx/nn/backend.h
}  // namespace mx::nn

namespace mx::nn::cuda {

// Scratch the reductions need: column partial sums [chunks, C] and sort buffers.
struct OpsScratch {
  float* partials = nullptr;  // column_partials_floats(n, c) floats
  int64_t partials_floats = 0;
  void* sort_temp = nullptr;  // cub radix sort
  size_t sort_temp_bytes = 0;
  uint32_t* sort_keys = nullptr;    // 2 x N
  uint32_t* sort_values = nullptr;  // 2 x N
  int64_t sort_capacity = 0;
};

// Floats of `partials` for column sums over n rows of c columns.
int64_t column_partials_floats(int64_t n, int64_t c);
// Bytes of sort scratch for n keys (cub's temporary storage).
size_t sort_temp_bytes(int64_t n);

void embedding_forward(void* out, const uint32_t* tokens, const float* wte, const float* wpe,
                       int64_t n, int64_t t, int64_t c, bool bf16_act, cudaStream_t s);
// dwte += (rows of dout scattered by token, in position order); dwpe += (rows by position).
void embedding_backward(float* dwte, float* dwpe, const void* dout, const uint32_t* tokens,
                        int64_t n, int64_t t, int64_t c, bool bf16_act, OpsScratch& scratch,
                        cudaStream_t s);

void layernorm_forward(void* out, float* mean, float* rstd, const void* x, const float* w,
                       const float* b, int64_t n, int64_t c, bool bf16_act, bool round_bf16,
                       cudaStream_t s);
// dx += ...; dw += ...; db += ... (db may be null); dx_bias += the column sums of dx as updated
// (where not null).
void layernorm_backward(void* dx, float* dw, float* db, float* dx_bias, const void* dout,
                        const void* x, const float* w, const float* mean, const float* rstd,
                        int64_t n, int64_t c, bool bf16_act, OpsScratch& scratch, cudaStream_t s);
void rmsnorm_forward(void* out, float* rstd, const void* x, const float* w, int64_t n, int64_t c,
                     bool bf16_act, bool round_bf16, cudaStream_t s);
void rmsnorm_backward(void* dx, float* dw, const void* dout, const void* x, const float* w,
                      const float* rstd, int64_t n, int64_t c, bool bf16_act, OpsScratch& scratch,
                      cudaStream_t s);

// Assigning backward ops (dx =).
void gelu_forward(void* out, const void* x, int64_t count, bool bf16_act, bool round_bf16,
                  cudaStream_t s);
void gelu_backward(void* dx, const void* x, const void* dout, int64_t count, bool bf16_act,
                   cudaStream_t s);
void swiglu_forward(void* out, const void* gate, const void* up, int64_t count, bool bf16_act,
                    bool round_bf16, cudaStream_t s);
void swiglu_backward(void* dgate, void* dup, const void* dout, const void* gate, const void* up,
                     int64_t count, bool bf16_act, cudaStream_t s);
void residual_forward(void* out, const void* a, const void* b, int64_t count, bool bf16_act,
                      bool round_bf16, cudaStream_t s);
// Row r at position first_position + r % t. sign +1: forward rotation; -1: its transpose (the
// backward).
void rope(void* x, int64_t n, int64_t t, int64_t heads, int64_t hs, int64_t first_position,
          float sign, bool bf16_act, bool round_bf16, cudaStream_t s);

// y[m, n] += bias[n].
void add_bias(void* y, const float* bias, int64_t m, int64_t n, bool bf16_act, cudaStream_t s);
// dbias[n] += column sums of dy[m, n].
void bias_grad(float* dbias, const void* dy, int64_t m, int64_t n, bool bf16_act,
               OpsScratch& scratch, cudaStream_t s);
// out[c] += the column sums of partials[chunks, c] (rows added as the finish of bias_grad adds
// them).
void sum_column_partials(float* out, const float* partials, int64_t chunks, int64_t c,
                         cudaStream_t s);
// dbias[n] += the column sums of dy[m, n] from partials already in scratch.partials: one per
// 32-row tile and column, [ceil(m / 32), n], as the dual cast writes them
// (fake_quantize_dual_cuda). The same bits as bias_grad over bfloat16 rows of a multiple of 8.
void bias_grad_from_tile_sums(float* dbias, int64_t m, int64_t n, const OpsScratch& scratch,
                              cudaStream_t s);

// losses[i] = -log softmax(logits_i)[t_i]; with dlogits (may alias logits), also
// dlogits = (softmax - onehot) * dloss. Rows of both lie row_stride elements apart (v when 0);
// dlogits' elements past v in each row are set to zero.
void classifier_loss(float* losses, void* dlogits, const void* logits, const uint32_t* targets,
                     int64_t n, int64_t v, float dloss, bool bf16_act, cudaStream_t s,
                     int64_t row_stride = 0);
// losses[i] = KL(softmax(teacher_i) || softmax(logits_i)); with dlogits (may alias logits), also
// dlogits = (softmax(logits) - softmax(teacher)) * dloss. Teacher rows of the logits' type.
void distillation_loss(float* losses, void* dlogits, const void* logits, const void* teacher,
                       int64_t n, int64_t v, float dloss, bool bf16_act, cudaStream_t s);

// Copies with rounding: float32 to bfloat16 (nearest even), bfloat16 to float32, and float32
// (or bfloat16) rounded to bfloat16 values in place of its own type.
void f32_to_bf16(uint16_t* out, const float* in, int64_t count, cudaStream_t s);
void bf16_to_f32(float* out, const uint16_t* in, int64_t count, cudaStream_t s);
void round_to_bf16(void* out, const void* in, int64_t count, bool bf16_act, cudaStream_t s);
// f32_to_bf16 of many short vectors in one launch: segments[i].count values from .in to .out,
// for i < n_segments (`segments` in device memory).
struct Bf16Segment {
  const float* in;
  uint16_t* out;
  int64_t count;
};
void f32_to_bf16_segments(const Bf16Segment* segments, int64_t n_segments, cudaStream_t s);

// partials[k] = sum of squares of x over fixed chunks; norm_partials_count(n) of them.
int64_t norm_partials_count(int64_t n);
void sum_squares(double* partials, const float* x, int64_t n, cudaStream_t s);
void scale(float* x, float factor, int64_t n, cudaStream_t s);
// dst[r * dst_stride + c] = src[r * src_stride + c] for c < width, r < rows, elements of 2 or 4
// bytes (copy_rows.cu): rows padded to a multiple of 8 elements and back.
void copy_rows(void* dst, int64_t dst_stride, const void* src, int64_t src_stride, int64_t width,
               int64_t rows, int element_bytes, cudaStream_t s);
// AdamW (mx/nn/backend.h's AdamWStep) over n parameters; with p_bf16, also writes the updated
// parameters rounded to bfloat16 there (as f32_to_bf16 would), sparing that pass.
void adamw(float* p, uint16_t* p_bf16, const float* g, float* m, float* v, const uint8_t* decay,
           int64_t n, const AdamWStep& step, cudaStream_t s);

}  // namespace mx::nn::cuda
