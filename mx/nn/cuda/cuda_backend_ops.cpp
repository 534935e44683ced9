// The CUDA backend's vector ops, losses, gradient norm and optimizer: each a launch of
// mx/nn/cuda/ops.h on the backend's stream.
#include "mx/nn/cuda/cuda_backend_impl.h"

#include <cmath>
#include <vector>

namespace mx::nn::cuda_impl {

void CudaBackend::embedding_forward(Buf out, Buf tokens, Buf wte, Buf wpe, int64_t n, int64_t t,
                                    int64_t c) {
  kernels::embedding_forward(out.p, tokens.as<uint32_t>(), wte.as<float>(), wpe.as<float>(), n, t,
                             c, bf16_act(), stream_);
  check_launch("embedding_forward");
}

void CudaBackend::embedding_backward(Buf dwte, Buf dwpe, Buf dout, Buf tokens, int64_t n, int64_t t,
                                     int64_t c) {
  grow_sort(n);
  kernels::embedding_backward(dwte.as<float>(), dwpe.as<float>(), dout.p, tokens.as<uint32_t>(), n,
                              t, c, bf16_act(), ops_, stream_);
  check_launch("embedding_backward");
}

void CudaBackend::layernorm_forward(Buf out, Buf mean, Buf rstd, Buf x, Buf w, Buf b, int64_t n,
                                    int64_t c, bool bf16) {
  kernels::layernorm_forward(out.p, mean.as<float>(), rstd.as<float>(), x.p, w.as<float>(),
                             b.as<float>(), n, c, bf16_act(), round(bf16), stream_);
  check_launch("layernorm_forward");
}

void CudaBackend::layernorm_backward(Buf dx, Buf dw, Buf db, Buf dx_bias, Buf dout, Buf x, Buf w,
                                     Buf mean, Buf rstd, int64_t n, int64_t c) {
  grow_ops(n, c);
  kernels::layernorm_backward(dx.p, dw.as<float>(), db.as<float>(), dx_bias.as<float>(), dout.p,
                              x.p, w.as<float>(), mean.as<float>(), rstd.as<float>(), n, c,
                              bf16_act(), ops_, stream_);
  check_launch("layernorm_backward");
}

void CudaBackend::rmsnorm_forward(Buf out, Buf rstd, Buf x, Buf w, int64_t n, int64_t c,
                                  bool bf16) {
  kernels::rmsnorm_forward(out.p, rstd.as<float>(), x.p, w.as<float>(), n, c, bf16_act(),
                           round(bf16), stream_);
  check_launch("rmsnorm_forward");
}

void CudaBackend::rmsnorm_backward(Buf dx, Buf dw, Buf dout, Buf x, Buf w, Buf rstd, int64_t n,
                                   int64_t c) {
  grow_ops(n, c);
  kernels::rmsnorm_backward(dx.p, dw.as<float>(), dout.p, x.p, w.as<float>(), rstd.as<float>(), n,
                            c, bf16_act(), ops_, stream_);
  check_launch("rmsnorm_backward");
}

void CudaBackend::gelu_forward(Buf out, Buf x, int64_t count, bool bf16) {
  kernels::gelu_forward(out.p, x.p, count, bf16_act(), round(bf16), stream_);
  check_launch("gelu_forward");
}

void CudaBackend::gelu_backward(Buf dx, Buf x, Buf dout, int64_t count) {
  kernels::gelu_backward(dx.p, x.p, dout.p, count, bf16_act(), stream_);
  check_launch("gelu_backward");
}

void CudaBackend::swiglu_forward(Buf out, Buf gate, Buf up, int64_t count, bool bf16) {
  kernels::swiglu_forward(out.p, gate.p, up.p, count, bf16_act(), round(bf16), stream_);
  check_launch("swiglu_forward");
}

void CudaBackend::swiglu_backward(Buf dgate, Buf dup, Buf dout, Buf gate, Buf up, int64_t count) {
  kernels::swiglu_backward(dgate.p, dup.p, dout.p, gate.p, up.p, count, bf16_act(), stream_);
  check_launch("swiglu_backward");
}

void CudaBackend::residual_forward(Buf out, Buf a, Buf b, int64_t count, bool bf16) {
  kernels::residual_forward(out.p, a.p, b.p, count, bf16_act(), round(bf16), stream_);
  check_launch("residual_forward");
}

void CudaBackend::rope_forward(Buf x, int64_t n, int64_t t, int64_t heads, int64_t hs,
                               int64_t first_position, bool bf16) {
  kernels::rope(x.p, n, t, heads, hs, first_position, 1.0f, bf16_act(), round(bf16), stream_);
  check_launch("rope_forward");
}

void CudaBackend::rope_backward(Buf dx, int64_t n, int64_t t, int64_t heads, int64_t hs) {
  kernels::rope(dx.p, n, t, heads, hs, 0, -1.0f, bf16_act(), false, stream_);
  check_launch("rope_backward");
}

void CudaBackend::classifier_loss(Buf losses, Buf dlogits, Buf logits, Buf targets, int64_t n,
                                  int64_t v, float dloss) {
  materialize_pending();
  kernels::classifier_loss(losses.as<float>(), dlogits.p, logits.p, targets.as<uint32_t>(), n, v,
                           dloss, bf16_act(), stream_);
  check_launch("classifier_loss");
}

void CudaBackend::distillation_loss(Buf losses, Buf dlogits, Buf logits, Buf teacher, int64_t n,
                                    int64_t v, float dloss) {
  materialize_pending();
  kernels::distillation_loss(losses.as<float>(), dlogits.p, logits.p, teacher.p, n, v, dloss,
                             bf16_act(), stream_);
  check_launch("distillation_loss");
}

double CudaBackend::norm(Buf x) {
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

void CudaBackend::scale(Buf x, float factor) {
  kernels::scale(x.as<float>(), factor, x.n, stream_);
  check_launch("scale");
}

void CudaBackend::adamw(Buf params, Buf grads, Buf m, Buf v, Buf decay_mask, const AdamWStep& s) {
  // An update of every weight also renews their bfloat16 copy, where one exists.
  const bool all_weights = params.p == weights_.p && params.n == weights_.n;
  uint16_t* rounded = all_weights ? static_cast<uint16_t*>(weights_bf16_) : nullptr;
  touch_weights(params);
  kernels::adamw(params.as<float>(), rounded, grads.as<float>(), m.as<float>(), v.as<float>(),
                 decay_mask.as<uint8_t>(), params.n, s, stream_);
  check_launch("adamw");
  if (rounded != nullptr) weights_bf16_version_ = weights_version_;
}

}  // namespace mx::nn::cuda_impl
