// The model's activation buffers (model.cpp), shared with the layer-wise passes
// (model_layerwise.cpp). Internal to mx/nn.
#pragma once

#include <vector>

#include "mx/nn/buf.h"
#include "mx/nn/model.h"

namespace mx::nn {

// The parts of a block's forward pass, in order (Model::layer_forward).
enum BlockPart : unsigned {
  kPartNorm1 = 1,         // x -> ln1
  kPartAttention = 2,     // ln1 -> q, k, v -> atty
  kPartAttnResidual = 4,  // atty, x -> res_att
  kPartNorm2 = 8,         // res_att -> ln2
  kPartMlp = 16,          // ln2 -> fc (up) -> act
  kPartMlpResidual = 32,  // act, res_att -> res_out
};

// Saved activations of one block (shapes for N = B * T tokens). Activations are of the
// backend's act_type(); the norms' statistics and attention's saved state are FP32.
struct LayerActs {
  Buf ln1, ln1_mean, ln1_rstd;  // [N, C], [N], [N]
  Buf q, k, v;                  // [N, nh * hs], [N, nkv * hs] (after RoPE)
  Buf att_saved;                // Backend::attn_saved_count
  Buf atty, res_att;            // [N, C]
  Buf ln2, ln2_mean, ln2_rstd;  // [N, C], [N], [N]
  Buf fc, up, act;              // [N, H] (fc: GPT-2 c_fc / Llama gate)
  Buf res_out;                  // [N, C]
};

struct Model::Acts {
  bool one_block = false;            // layers[0] serves every block (Model::reserve_for)
  Buf tokens, targets;               // [N] u32
  Buf encoded;                       // [N, C]
  std::vector<LayerActs> layers;     // [L]
  Buf lnf, lnf_mean, lnf_rstd;       // [N, C], [N], [N]
  Buf logits, losses;                // [N, V] (then their gradient), [N] f32
  Buf dres, dln, datty, dq, dk, dv;  // backward scratch
  Buf dact, dfc, dup;
};

}  // namespace mx::nn
