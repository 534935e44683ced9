#include "mx/core/dot_ref.h"

#include <cmath>

#include "mx/core/bitpack.h"
#include "mx/core/e8m0.h"
#include "mx/core/element_ref.h"

namespace mx {
namespace {

// Exponent of the smallest quantum of a format: every element value is an integer times it.
int quantum_exponent(const FormatTraits& f) {
  return f.is_integer ? f.emin : f.emin - f.man_bits;
}

// A 2-D operand viewed as rows of blocks along K: block (r, j) is block number
// r * blocks_per_row + j when blocked along the last axis, or j * rows + r when blocked along
// axis 0 of a [K, rows] matrix (the column-wise blocks of B in C = A * B).
struct BlockedOperand {
  const MxTensor* t;
  int64_t rows, k, blocks_per_row;
  bool k_is_axis0;
  int64_t block(int64_t r, int64_t j) const {
    return k_is_axis0 ? j * rows + r : r * blocks_per_row + j;
  }
};

std::string view_operand(const MxTensor& t, bool allow_axis0, BlockedOperand* out) {
  if (t.shape.size() != 2) return "GEMM operands must be 2-D";
  if (t.spec.is_tiled()) return "GEMM operands must use 1-D blocks, not tiles";
  if (t.spec.asymmetric) return "GEMM operands must be symmetric (no block offsets)";
  if (std::string e = check_consistent(t); !e.empty()) return e;
  const int axis = t.spec.axis < 0 ? t.spec.axis + 2 : t.spec.axis;
  const int64_t k_block = t.spec.block_size;
  if (axis == 1) {
    *out = {&t, t.shape[0], t.shape[1], (t.shape[1] + k_block - 1) / k_block, false};
  } else if (axis == 0 && allow_axis0) {
    *out = {&t, t.shape[1], t.shape[0], (t.shape[0] + k_block - 1) / k_block, true};
  } else {
    return "the first GEMM operand must be blocked along its last axis";
  }
  return "";
}

}  // namespace

double block_dot(const FormatTraits& fa, std::span<const uint8_t> codes_a, uint8_t scale_a,
                 const FormatTraits& fb, std::span<const uint8_t> codes_b, uint8_t scale_b) {
  if (scale_a == kE8m0Nan || scale_b == kE8m0Nan) return NAN;
  const int qa = quantum_exponent(fa), qb = quantum_exponent(fb);
  __int128 sum = 0;
  double special = 0;  // sum of products involving Inf or NaN codes, in float arithmetic
  bool has_special = false;
  for (size_t i = 0; i < codes_a.size(); ++i) {
    const double va = decode_element(fa, codes_a[i]);
    const double vb = decode_element(fb, codes_b[i]);
    if (!std::isfinite(va) || !std::isfinite(vb)) {
      has_special = true;
      special += va * vb;
      continue;
    }
    // Both are exact integers in units of their smallest quantum (|n| < 2^32).
    const auto na = static_cast<int64_t>(std::ldexp(va, -qa));
    const auto nb = static_cast<int64_t>(std::ldexp(vb, -qb));
    sum += static_cast<__int128>(na) * nb;
  }
  const int exponent = qa + qb + e8m0_exponent(scale_a) + e8m0_exponent(scale_b);
  const double exact_part = std::ldexp(static_cast<double>(sum), exponent);
  return has_special ? exact_part + special : exact_part;
}

std::string dot_general(const MxTensor& a, const MxTensor& b, float* result) {
  if (a.shape.size() != 1 || b.shape.size() != 1) return "dot_general takes 1-D tensors";
  if (a.shape != b.shape) return "dot_general operands differ in length";
  if (a.spec.is_tiled() || b.spec.is_tiled() || a.spec.block_size != b.spec.block_size) {
    return "dot_general operands need 1-D blocks of the same size";
  }
  if (a.spec.asymmetric || b.spec.asymmetric) return "dot_general operands must be symmetric";
  if (std::string e = check_consistent(a); !e.empty()) return e;
  if (std::string e = check_consistent(b); !e.empty()) return e;
  const FormatTraits& fa = traits(a.spec.format);
  const FormatTraits& fb = traits(b.spec.format);
  const int k = a.spec.block_size;
  std::vector<uint8_t> ca(k), cb(k);
  double total = 0;
  for (int64_t j = 0; j < a.num_blocks(); ++j) {
    unpack_codes(a.elements, fa.bits, j * k, ca);
    unpack_codes(b.elements, fb.bits, j * k, cb);
    total += block_dot(fa, ca, a.scales[j], fb, cb, b.scales[j]);
  }
  *result = static_cast<float>(total);
  return "";
}

std::string gemm_ref(const MxTensor& a, const MxTensor& b, std::vector<float>* c) {
  BlockedOperand va{}, vb{};
  if (std::string e = view_operand(a, false, &va); !e.empty()) return "A: " + e;
  if (std::string e = view_operand(b, true, &vb); !e.empty()) return "B: " + e;
  if (va.k != vb.k) {
    return "inner dimensions differ: A has K=" + std::to_string(va.k) +
           ", B has K=" + std::to_string(vb.k);
  }
  if (a.spec.block_size != b.spec.block_size) return "A and B use different block sizes";
  const FormatTraits& fa = traits(a.spec.format);
  const FormatTraits& fb = traits(b.spec.format);
  const int k = a.spec.block_size;
  // Unpack every block once: codes_x[block * k + slot].
  std::vector<uint8_t> codes_a(a.num_blocks() * int64_t{k}), codes_b(b.num_blocks() * int64_t{k});
  unpack_codes(a.elements, fa.bits, 0, codes_a);
  unpack_codes(b.elements, fb.bits, 0, codes_b);
  c->assign(va.rows * vb.rows, 0.0f);
  for (int64_t m = 0; m < va.rows; ++m) {
    for (int64_t n = 0; n < vb.rows; ++n) {
      double total = 0;
      for (int64_t j = 0; j < va.blocks_per_row; ++j) {
        const int64_t ba = va.block(m, j), bb = vb.block(n, j);
        total += block_dot(fa, std::span(codes_a).subspan(ba * k, k), a.scales[ba], fb,
                           std::span(codes_b).subspan(bb * k, k), b.scales[bb]);
      }
      (*c)[m * vb.rows + n] = static_cast<float>(total);
    }
  }
  return "";
}

}  // namespace mx
