// The CUDA backend's attention: the operands cast as the recipe says, then the fused kernels
// (attention.h), which cast P and dS in their tiles.
#include "mx/nn/cuda/cuda_backend_impl.h"

#include "mx/io/cat.h"
#include "mx/nn/cast_streams.h"
#include "mx/nn/cuda/flash_attention.h"

namespace mx::nn::cuda_impl {

using io::cat;

void CudaBackend::attention_forward(Buf out, Buf saved, Buf q, Buf k, Buf v, const AttnShape& s,
                                    const Recipe& recipe, SrKey key) {
  if (!attention_shape_ok(s, /*forward=*/true)) return;
  const uint64_t stream = stream_of(key);
  const int64_t n = s.b * s.t, keys = s.b * s.keys();
  const OperandCast& cast = recipe.act_fwd;
  auto spec = [&](const OperandCast& c, int axis, AttnOperand o) {
    return cast_spec(c.spec, axis, operand_stream(stream, o));
  };
  const kernels::TileCast p = tile_cast(cast, operand_stream(stream, AttnOperand::kPFwd));
  kernels::PvForDelta pv;
  const void *qf = nullptr, *kf = nullptr, *vf = nullptr;
  const bool keeps_casts = saves_casts(s, recipe) && saved.n >= saved_casts(s).end;
  if (keeps_casts) {
    const SavedCasts at = saved_casts(s);
    auto region = [&](int64_t offset) { return saved.at(offset, 0).p; };
    const int64_t kv_width = s.nkv * s.hs;
    void* v_cols = slot(2, size_t(keys * kv_width) * sizeof(uint16_t));
    const char* roles = "'act_fwd' and 'act_dw'";
    if (v_cols == nullptr ||
        !dual_cast(q.p, n, s.nh * s.hs, -1, spec(cast, 1, AttnOperand::kQFwd),
                   spec(recipe.act_dw, 0, AttnOperand::kQDw), region(at.q_rows), region(at.q_cols),
                   roles) ||
        !dual_cast(k.p, keys, kv_width, -1, spec(cast, 1, AttnOperand::kKFwd),
                   spec(recipe.act_dw, 0, AttnOperand::kKDw), region(at.k_rows), region(at.k_cols),
                   roles) ||
        !dual_cast(v.p, keys, kv_width, -1, spec(recipe.act_dw, 1, AttnOperand::kVDw),
                   spec(cast, 0, AttnOperand::kVFwd), region(at.v_rows), v_cols, roles)) {
      return;  // recorded
    }
    qf = region(at.q_rows), kf = region(at.k_rows), vf = v_cols;
    pv.v_dw = region(at.v_rows);
    pv.pv = saved.at(pv_offset(s), pv_floats(s)).p;
  } else {
    qf = prepare(q, {n * s.nh, s.hs}, 1, cast, "act_fwd",
                 operand_stream(stream, AttnOperand::kQFwd), 0, act());
    kf = prepare(k, {keys * s.nkv, s.hs}, 1, cast, "act_fwd",
                 operand_stream(stream, AttnOperand::kKFwd), 1, act());
    vf = prepare(v, {s.b, s.keys(), s.nkv * s.hs}, 1, cast, "act_fwd",
                 operand_stream(stream, AttnOperand::kVFwd), 2, act());
  }
  if (qf == nullptr || kf == nullptr || vf == nullptr || !tile_ok(p)) return;
  // v as the backward's dP product reads it: the same cast, stream and bits as there.
  if (!keeps_casts && saves_pv(s, recipe) && saved.n >= pv_offset(s) + pv_floats(s)) {
    pv.v_dw = prepare(v, {n * s.nkv, s.hs}, 1, recipe.act_dw, "act_dw",
                      operand_stream(stream, AttnOperand::kVDw), 3, act());
    if (pv.v_dw == nullptr) return;
    pv.pv = saved.at(pv_offset(s), pv_floats(s)).p;
  }
  const bool wrote_pv = kernels::attention_forward(out.p, saved.as<float>(), qf, kf, vf, dims(s), p,
                                                   recipe.bf16_vector_ops, bf16_act(), stream_, pv);
  if (wrote_pv) {
    saved_with_pv_.insert(saved.p);
  } else {
    saved_with_pv_.erase(saved.p);
  }
  if (keeps_casts) {
    saved_with_casts_.insert(saved.p);
  } else {
    saved_with_casts_.erase(saved.p);
  }
  check_launch("attention_forward");
}

bool CudaBackend::attention_sums_qkv_biases(const AttnShape& s) const {
  return bf16_act() && s.past == 0;
}

void CudaBackend::attention_backward(Buf dq, Buf dk, Buf dv, const QkvBiasGrads& dbias, Buf dout,
                                     Buf q, Buf k, Buf v, Buf out, Buf saved, const AttnShape& s,
                                     const Recipe& recipe, SrKey key) {
  if (!attention_shape_ok(s, /*forward=*/false)) return;
  const uint64_t stream = stream_of(key);
  const int64_t n = s.b * s.t;
  auto op = [&](AttnOperand o) { return operand_stream(stream, o); };
  kernels::AttnBackwardArgs a{};
  if (saved_with_casts_.count(saved.p) != 0 && saves_casts(s, recipe) &&
      dout.type == BufType::kBF16) {
    const SavedCasts at = saved_casts(s);
    auto region = [&](int64_t offset) { return saved.at(offset, 0).p; };
    a.qf = region(at.q_rows), a.q_dw = region(at.q_cols);
    a.kf = region(at.k_rows), a.k_dw = region(at.k_cols);
    a.v_dw = region(at.v_rows);
    const size_t bytes = size_t(n * s.nh * s.hs) * sizeof(uint16_t);
    void* rows = slot(2, bytes);
    void* cols = slot(4, bytes);
    if (rows == nullptr || cols == nullptr ||
        !dual_cast(dout.p, n, s.nh * s.hs, -1,
                   cast_spec(recipe.grad_out_dx.spec, 1, op(AttnOperand::kDoDx)),
                   cast_spec(recipe.grad_out_dw.spec, 0, op(AttnOperand::kDoDw)), rows, cols,
                   "'grad_out_dx' and 'grad_out_dw'")) {
      return;  // recorded
    }
    a.do_x = rows, a.do_w = cols;
  } else {
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
  }
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
  const bool sums_biases = !dbias.q.empty() || !dbias.k.empty() || !dbias.v.empty();
  const int64_t sum_rows = kernels::attention_column_sum_rows(dims(s));
  if (sums_biases) {
    const int64_t floats = sum_rows * (s.nh + 2 * s.nkv) * s.hs;
    grow_partials(floats);
    if (ops_.partials_floats < floats) return;  // recorded
    a.column_sums = ops_.partials;
  }
  const bool summed = kernels::attention_backward(a, dims(s), p_dw, ds_x, ds_w,
                                                  recipe.bf16_vector_ops, bf16_act(), stream_);
  check_launch("attention_backward");
  if (!sums_biases) return;
  // The bias gradients from the kernels' sums of their tiles, or, where other kernels ran, from
  // passes over dq, dk and dv.
  const int64_t widths[3] = {s.nh * s.hs, s.nkv * s.hs, s.nkv * s.hs};
  const Buf grads[3] = {dbias.q, dbias.k, dbias.v}, outputs[3] = {dq, dk, dv};
  const float* partials = ops_.partials;
  for (int i = 0; i < 3; ++i) {
    if (!grads[i].empty()) {
      if (summed) {
        kernels::sum_column_partials(grads[i].as<float>(), partials, sum_rows, widths[i], stream_);
      } else {
        kernels::bias_grad(grads[i].as<float>(), outputs[i].p, n, widths[i], bf16_act(), ops_,
                           stream_);
      }
    }
    partials += sum_rows * widths[i];
  }
  check_launch("attention_backward's bias gradients");
}

bool CudaBackend::attention_shape_ok(const AttnShape& s, bool forward) {
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

kernels::TileCast CudaBackend::tile_cast(const OperandCast& c, uint64_t stream) const {
  kernels::TileCast t;
  t.kind = c.kind == OperandCast::Kind::kNone   ? kernels::TileCast::Kind::kNone
           : c.kind == OperandCast::Kind::kBF16 ? kernels::TileCast::Kind::kBF16
                                                : kernels::TileCast::Kind::kMx;
  if (c.kind == OperandCast::Kind::kMx) t.spec = cast_spec(c.spec, 1, stream);
  return t;
}

bool CudaBackend::tile_ok(const kernels::TileCast& t) {
  if (std::string e = kernels::check_tile_cast(t); !e.empty()) {
    record(e);
    return false;
  }
  return true;
}

bool CudaBackend::saves_casts(const AttnShape& s, const Recipe& recipe) const {
  if (!bf16_act() || !saves_pv(s, recipe)) return false;
  for (const OperandCast* c :
       {&recipe.act_fwd, &recipe.act_dw, &recipe.grad_out_dx, &recipe.grad_out_dw}) {
    const QuantSpec& spec = c->spec;
    if (c->kind != OperandCast::Kind::kMx || c->is_rotated() || spec.is_tiled() ||
        s.hs % spec.block_size != 0 || s.t % spec.block_size != 0) {
      return false;
    }
  }
  return true;
}

CudaBackend::SavedCasts CudaBackend::saved_casts(const AttnShape& s) {
  // Each region in float32 elements, rounded up to 64 of them (256 bytes).
  auto after = [](int64_t offset, int64_t bf16_values) {
    return round_up(offset + (bf16_values + 1) / 2, 64);
  };
  const int64_t q_values = s.b * s.t * s.nh * s.hs, kv_values = s.b * s.keys() * s.nkv * s.hs;
  SavedCasts c;
  c.q_rows = round_up(pv_offset(s) + pv_floats(s), 64);
  c.q_cols = after(c.q_rows, q_values);
  c.k_rows = after(c.q_cols, q_values);
  c.k_cols = after(c.k_rows, kv_values);
  c.v_rows = after(c.k_cols, kv_values);
  c.end = c.v_rows + (kv_values + 1) / 2;
  return c;
}

bool CudaBackend::saves_pv(const AttnShape& s, const Recipe& recipe) const {
  const kernels::TileCast p = tile_cast(recipe.act_fwd, 0);
  return s.past == 0 && p.kind == kernels::TileCast::Kind::kMx &&
         kernels::flash_supports(dims(s), bf16_act(), {p});
}

}  // namespace mx::nn::cuda_impl
