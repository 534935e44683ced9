// Attention's tensors for the CUDA backend's attention tests: q, k, v and dO with values drawn
// from N(0, 1) (the same for the same shape), room for what the forward saves, and the output and
// gradients to write.
#pragma once

#include <cstdint>

#include "mx/nn/backend.h"
#include "tests/cuda/backend_test_support.h"

namespace mx::nn {

struct AttentionBuffers {
  Buf q, k, v, dout, out, saved, dq, dk, dv;
};

inline AttentionBuffers attention_buffers(Backend& be, const AttnShape& s, int64_t saved_floats) {
  const int64_t q_count = s.b * s.t * s.nh * s.hs, kv_count = s.b * s.t * s.nkv * s.hs;
  AttentionBuffers a;
  a.q = upload(be, BufType::kBF16, normal(size_t(q_count), 1));
  a.k = upload(be, BufType::kBF16, normal(size_t(kv_count), 2));
  a.v = upload(be, BufType::kBF16, normal(size_t(kv_count), 3));
  a.dout = upload(be, BufType::kBF16, normal(size_t(q_count), 4));
  a.out = be.alloc(BufType::kBF16, q_count);
  a.saved = be.alloc(BufType::kF32, saved_floats);
  a.dq = be.alloc(BufType::kBF16, q_count);
  a.dk = be.alloc(BufType::kBF16, kv_count);
  a.dv = be.alloc(BufType::kBF16, kv_count);
  return a;
}

}  // namespace mx::nn
