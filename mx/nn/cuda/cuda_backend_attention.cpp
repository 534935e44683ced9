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
  const bool wrote_pv = kernels::attention_forward(out.p, saved.as<float>(), qf, kf, vf, dims(s), p,
                                                   recipe.bf16_vector_ops, bf16_act(), stream_, pv);
  if (wrote_pv) {
    saved_with_pv_.insert(saved.p);
  } else {
    saved_with_pv_.erase(saved.p);
  }
  check_launch("attention_forward");
}

void CudaBackend::attention_backward(Buf dq, Buf dk, Buf dv, Buf dout, Buf q, Buf k, Buf v, Buf out,
                                     Buf saved, const AttnShape& s, const Recipe& recipe,
                                     SrKey key) {
  if (!attention_shape_ok(s, /*forward=*/false)) return;
  const uint64_t stream = stream_of(key);
  const int64_t n = s.b * s.t;
  auto op = [&](AttnOperand o) { return operand_stream(stream, o); };
  kernels::AttnBackwardArgs a{};
  a.qf =
      prepare(q, {n * s.nh, s.hs}, 1, recipe.act_fwd, "act_fwd", op(AttnOperand::kQFwd), 0, act());
  a.kf =
      prepare(k, {n * s.nkv, s.hs}, 1, recipe.act_fwd, "act_fwd", op(AttnOperand::kKFwd), 1, act());
  a.do_x = prepare(dout, {n * s.nh, s.hs}, 1, recipe.grad_out_dx, "grad_out_dx",
                   op(AttnOperand::kDoDx), 2, act());
  a.v_dw =
      prepare(v, {n * s.nkv, s.hs}, 1, recipe.act_dw, "act_dw", op(AttnOperand::kVDw), 3, act());
  a.do_w = prepare(dout, {s.b, s.t, s.nh * s.hs}, 1, recipe.grad_out_dw, "grad_out_dw",
                   op(AttnOperand::kDoDw), 4, act());
  a.k_dw = prepare(k, {s.b, s.t, s.nkv * s.hs}, 1, recipe.act_dw, "act_dw", op(AttnOperand::kKDw),
                   5, act());
  a.q_dw = prepare(q, {s.b, s.t, s.nh * s.hs}, 1, recipe.act_dw, "act_dw", op(AttnOperand::kQDw), 6,
                   act());
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

bool CudaBackend::saves_pv(const AttnShape& s, const Recipe& recipe) const {
  const kernels::TileCast p = tile_cast(recipe.act_fwd, 0);
  return s.past == 0 && p.kind == kernels::TileCast::Kind::kMx &&
         kernels::flash_supports(dims(s), bf16_act(), {p});
}

}  // namespace mx::nn::cuda_impl
