#include "mx/nn/cpu/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>
#include <thread>

#include "mx/io/cat.h"
#include "mx/io/memory_budget.h"
#include "mx/kernels/cpu/mx_matmul.h"
#include "mx/kernels/cpu/parallel.h"
#include "mx/kernels/cpu/quantize.h"
#include "mx/kernels/cpu/sgemm.h"
#include "mx/nn/cast_streams.h"
#include "mx/nn/cpu/layers.h"

namespace mx::nn {
namespace {

float* f32(Buf b) {
  return b.as<float>();
}
const uint32_t* u32(Buf b) {
  return b.as<const uint32_t>();
}

}  // namespace

Buf CpuBackend::alloc(BufType type, int64_t n) {
  const int64_t bytes = n * buf_type_bytes(type);
  char* p = new (std::nothrow) char[size_t(std::max<int64_t>(bytes, 1))]();
  if (p == nullptr) {
    record(io::cat("out of memory: ", bytes, " bytes for a buffer of ", n, " elements"));
    return {};
  }
  owned_[p].reset(p);
  return {p, n, type};
}

void CpuBackend::upload(Buf dst, const void* host) {
  if (dst.p != host) std::memcpy(dst.p, host, size_t(dst.bytes()));
}

void CpuBackend::download(void* host, Buf src) {
  if (src.p != host) std::memcpy(host, src.p, size_t(src.bytes()));
}

int64_t CpuBackend::memory_available() {
  return io::available_memory_bytes();
}

int64_t CpuBackend::peak_memory() {
  return io::peak_resident_bytes();
}

std::string CpuBackend::device_description() const {
  const int n = threads_ > 0 ? threads_ : int(std::max(1u, std::thread::hardware_concurrency()));
  return io::cat("CPU, ", n, n == 1 ? " thread" : " threads");
}

void CpuBackend::zero(Buf x) {
  std::memset(x.p, 0, size_t(x.bytes()));
}

void CpuBackend::copy(Buf dst, Buf src) {
  std::memcpy(dst.p, src.p, size_t(src.bytes()));
}

Backend::Packed CpuBackend::pack_weight(Buf w, int64_t n, int64_t k, const OperandCast& cast) {
  const QuantSpec& s = cast.spec;
  if (cast.kind != OperandCast::Kind::kMx || cast.is_rotated() || s.is_tiled() ||
      s.block_size != 32 || s.asymmetric || s.rounding == Rounding::kStochastic || k == 0) {
    return Packed::kNo;
  }
  PackedWeight packed{s, false, {}};
  const int64_t shape[2] = {n, k};
  mx::cpu::Options options;
  options.threads = threads_;
  // The stream only seeds stochastic rounding, which is excluded above.
  if (!mx::cpu::quantize(f32(w), DType::kF32, shape, cast_spec(s, 1, 0), &packed.w, options)
           .empty()) {
    return Packed::kNo;
  }
  std::vector<float> decoded(size_t(n * k));
  packed.exact = mx::cpu::dequantize(packed.w, DType::kF32, decoded.data(), options).empty() &&
                 std::memcmp(decoded.data(), w.p, decoded.size() * sizeof(float)) == 0;
  const Packed result = packed.exact ? Packed::kExact : Packed::kCast;
  packed_[w.p] = std::move(packed);
  return result;
}

int64_t CpuBackend::packed_bytes() const {
  int64_t bytes = 0;
  for (const auto& [w, packed] : packed_) {
    bytes += int64_t(packed.w.elements.size() + packed.w.scales.size() +
                     packed.w.offsets.size() * sizeof(uint16_t));
  }
  return bytes;
}

void CpuBackend::matmul_forward(Buf y, Buf x, Buf w, Buf bias, int64_t m, int64_t k, int64_t n,
                                const Recipe& recipe, SrKey key) {
  const auto packed = packed_.find(w.p);
  const OperandCast& cast = recipe.weight_fwd;
  const bool use_packed =
      packed != packed_.end() &&
      (cast == OperandCast::mx(packed->second.spec) || (cast.is_none() && packed->second.exact));
  if (!use_packed) {
    record(cpu::matmul_forward(f32(y), f32(x), f32(w), f32(bias), m, k, n, recipe, stream_of(key),
                               scratch_, threads_));
    return;
  }
  std::string error;
  const float* xq = cpu::cast_operand(f32(x), m, k, 1, recipe.act_fwd, "act_fwd",
                                      operand_stream(stream_of(key), LinearOperand::kActFwd),
                                      scratch_.a, &error, threads_);
  if (!error.empty()) return record(error);
  mx::cpu::MatmulOptions options;
  options.threads = threads_;
  options.mode = packed_mode_;
  if (std::string e = mx::cpu::mx_matmul(packed->second.w, xq, DType::kF32, m, f32(y), options);
      !e.empty()) {
    return record(e);
  }
  if (!bias.empty()) cpu::add_bias(f32(y), f32(bias), m, n);
}

void CpuBackend::matmul_backward(Buf dx, Buf dw, Buf dbias, Buf dy, Buf x, Buf w, int64_t m,
                                 int64_t k, int64_t n, bool accumulate_dx, const Recipe& recipe,
                                 SrKey key) {
  if (!dx.empty() && !accumulate_dx) zero(dx);
  record(cpu::matmul_backward(f32(dx), f32(dw), f32(dbias), f32(dy), f32(x), f32(w), m, k, n,
                              recipe, stream_of(key), scratch_, threads_));
}

void CpuBackend::gram(Buf h, Buf x, int64_t m, int64_t k, const OperandCast& cast,
                      uint64_t stream) {
  std::string error;
  const float* xq =
      cpu::cast_operand(f32(x), m, k, 1, cast, "act_fwd", stream, scratch_.a, &error, threads_);
  if (!error.empty()) return record(error);
  mx::cpu::SgemmOptions options;
  options.symmetric = true;
  options.threads = threads_;
  mx::cpu::sgemm(f32(h), k, mx::cpu::StridedMatrix{xq, 1, k}, mx::cpu::StridedMatrix{xq, k, 1}, k,
                 m, k, options);
}

void CpuBackend::embedding_forward(Buf out, Buf tokens, Buf wte, Buf wpe, int64_t n, int64_t t,
                                   int64_t c) {
  const auto packed = packed_.find(wte.p);
  if (packed == packed_.end() || !packed->second.exact) {
    cpu::embedding_forward(f32(out), u32(tokens), f32(wte), f32(wpe), n, t, c);
    return;
  }
  // The table's rows from its blocks, which hold its values exactly: its FP32 copy may be gone.
  float* o = f32(out);
  const uint32_t* ids = u32(tokens);
  mx::cpu::Options one_thread;
  one_thread.threads = 1;
  for (int64_t i = 0; i < n; ++i) {
    if (std::string e = mx::cpu::dequantize_rows(packed->second.w, ids[i], 1, DType::kF32,
                                                 o + i * c, one_thread);
        !e.empty()) {
      return record(e);
    }
  }
  if (wpe.p == nullptr) return;
  const float* p = f32(wpe);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < c; ++j) o[i * c + j] += p[(i % t) * c + j];
  }
}

void CpuBackend::embedding_backward(Buf dwte, Buf dwpe, Buf dout, Buf tokens, int64_t n, int64_t t,
                                    int64_t c) {
  cpu::embedding_backward(f32(dwte), f32(dwpe), f32(dout), u32(tokens), n, t, c);
}

void CpuBackend::layernorm_forward(Buf out, Buf mean, Buf rstd, Buf x, Buf w, Buf b, int64_t n,
                                   int64_t c, bool bf16) {
  cpu::layernorm_forward(f32(out), f32(mean), f32(rstd), f32(x), f32(w), f32(b), n, c, bf16,
                         threads_);
}

void CpuBackend::layernorm_backward(Buf dx, Buf dw, Buf db, Buf dx_bias, Buf dout, Buf x, Buf w,
                                    Buf mean, Buf rstd, int64_t n, int64_t c) {
  cpu::layernorm_backward(f32(dx), f32(dw), f32(db), f32(dout), f32(x), f32(w), f32(mean),
                          f32(rstd), n, c, threads_);
  if (!dx_bias.empty()) cpu::add_column_sums(f32(dx_bias), f32(dx), n, c);
}

void CpuBackend::rmsnorm_forward(Buf out, Buf rstd, Buf x, Buf w, int64_t n, int64_t c, bool bf16) {
  cpu::rmsnorm_forward(f32(out), f32(rstd), f32(x), f32(w), n, c, bf16, threads_);
}

void CpuBackend::rmsnorm_backward(Buf dx, Buf dw, Buf dout, Buf x, Buf w, Buf rstd, int64_t n,
                                  int64_t c) {
  cpu::rmsnorm_backward(f32(dx), f32(dw), f32(dout), f32(x), f32(w), f32(rstd), n, c, threads_);
}

// The layer functions accumulate; assigning is accumulating into zeros (the same bits).
void CpuBackend::gelu_forward(Buf out, Buf x, int64_t count, bool bf16) {
  cpu::gelu_forward(f32(out), f32(x), count, bf16, threads_);
}

void CpuBackend::gelu_backward(Buf dx, Buf x, Buf dout, int64_t count) {
  zero(dx.at(0, count));
  cpu::gelu_backward(f32(dx), f32(x), f32(dout), count, threads_);
}

void CpuBackend::swiglu_forward(Buf out, Buf gate, Buf up, int64_t count, bool bf16) {
  cpu::swiglu_forward(f32(out), f32(gate), f32(up), count, bf16, threads_);
}

void CpuBackend::swiglu_backward(Buf dgate, Buf dup, Buf dout, Buf gate, Buf up, int64_t count) {
  zero(dgate.at(0, count));
  zero(dup.at(0, count));
  cpu::swiglu_backward(f32(dgate), f32(dup), f32(dout), f32(gate), f32(up), count, threads_);
}

void CpuBackend::residual_forward(Buf out, Buf a, Buf b, int64_t count, bool bf16) {
  cpu::residual_forward(f32(out), f32(a), f32(b), count, bf16, threads_);
}

void CpuBackend::rope_forward(Buf x, int64_t n, int64_t t, int64_t heads, int64_t hs,
                              int64_t first_position, bool bf16) {
  cpu::rope_forward(f32(x), n, t, heads, hs, first_position, bf16, threads_);
}

void CpuBackend::rope_backward(Buf dx, int64_t n, int64_t t, int64_t heads, int64_t hs) {
  cpu::rope_backward(f32(dx), n, t, heads, hs, threads_);
}

void CpuBackend::attention_forward(Buf out, Buf saved, Buf q, Buf k, Buf v, const AttnShape& s,
                                   const Recipe& recipe, SrKey key) {
  record(cpu::attention_forward(f32(out), f32(saved), f32(q), f32(k), f32(v),
                                {s.b, s.t, s.nh, s.nkv, s.hs, s.past}, recipe, stream_of(key),
                                threads_, attention_scratch_));
}

void CpuBackend::attention_backward(Buf dq, Buf dk, Buf dv, const QkvBiasGrads& dbias, Buf dout,
                                    Buf q, Buf k, Buf v, Buf /*out*/, Buf saved, const AttnShape& s,
                                    const Recipe& recipe, SrKey key) {
  if (s.past != 0) {
    record("attention's backward takes no key/value cache");
    return;
  }
  if (!dbias.q.empty() || !dbias.k.empty() || !dbias.v.empty()) {
    record("the CPU backend's attention sums no bias gradients");
    return;
  }
  for (Buf g : {dq.at(0, s.b * s.t * s.nh * s.hs), dk.at(0, s.b * s.t * s.nkv * s.hs),
                dv.at(0, s.b * s.t * s.nkv * s.hs)}) {
    zero(g);
  }
  record(cpu::attention_backward(f32(dq), f32(dk), f32(dv), f32(dout), f32(q), f32(k), f32(v),
                                 f32(saved), {s.b, s.t, s.nh, s.nkv, s.hs}, recipe, stream_of(key),
                                 threads_, attention_scratch_));
}

void CpuBackend::classifier_loss(Buf losses, Buf dlogits, Buf logits, Buf targets, int64_t n,
                                 int64_t v, float dloss) {
  probs_.resize(size_t(n * v));
  cpu::crossentropy_forward(probs_.data(), f32(losses), f32(logits), u32(targets), n, v, threads_);
  if (dlogits.empty()) return;
  zero(dlogits.at(0, n * v));
  cpu::crossentropy_backward(f32(dlogits), probs_.data(), u32(targets), n, v, dloss, threads_);
}

void CpuBackend::distillation_loss(Buf losses, Buf dlogits, Buf logits, Buf teacher, int64_t n,
                                   int64_t v, float dloss) {
  cpu::distillation_loss(f32(losses), dlogits.empty() ? nullptr : f32(dlogits), f32(logits),
                         f32(teacher), n, v, dloss, threads_);
}

double CpuBackend::norm(Buf x) {
  const float* g = f32(x);
  double sum = 0.0;
  for (int64_t i = 0; i < x.n; ++i) sum += double(g[i]) * double(g[i]);
  return std::sqrt(sum);
}

void CpuBackend::scale(Buf x, float factor) {
  float* g = f32(x);
  for (int64_t i = 0; i < x.n; ++i) g[i] *= factor;
}

void CpuBackend::adamw(Buf params, Buf grads, Buf m, Buf v, Buf decay_mask, const AdamWStep& s) {
  float* p = f32(params);
  const float* g = f32(grads);
  float* mm = f32(m);
  float* vv = f32(v);
  const uint8_t* decay = decay_mask.as<const uint8_t>();
  mx::cpu::parallel_for(params.n, 4096, threads_, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float gi = g[i] * s.grad_scale;
      mm[i] = s.beta1 * mm[i] + (1.0f - s.beta1) * gi;
      vv[i] = s.beta2 * vv[i] + (1.0f - s.beta2) * gi * gi;
      const float mhat = mm[i] / s.bias_correction1, vhat = vv[i] / s.bias_correction2;
      const float wd = decay[i] ? s.weight_decay * p[i] : 0.0f;
      p[i] -= s.lr * (mhat / (std::sqrt(vhat) + s.eps) + wd);
    }
  });
}

}  // namespace mx::nn
