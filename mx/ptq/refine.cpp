#include "mx/ptq/refine.h"

#include <algorithm>
#include <cmath>

#include "mx/core/element_ref.h"
#include "mx/core/half.h"
#include "mx/kernels/cpu/dgemm.h"
#include "mx/kernels/cpu/parallel.h"

namespace mx::ptq {
namespace {

// The codes that the cast itself can give, ordered by the value they decode to (one code per
// value). The cast clamps MXINT to a range symmetric about zero, so the most negative code
// (-2^(bits-1)) is left out, as is every code of a value that does not encode back to itself.
struct CodeLadder {
  std::vector<double> values;
  std::vector<uint8_t> codes;
};

CodeLadder code_ladder(const QuantSpec& spec) {
  const FormatTraits& format = traits(spec.format);
  QuantSpec unit = spec;
  unit.asymmetric = false;
  unit.flush_subnormals = false;
  const BlockResult unit_block{127, 0, false};  // a scale of 2^0
  std::vector<std::pair<double, uint8_t>> all;
  for (int c = 0; c < (1 << format.bits); ++c) {
    const double v = decode_element(format, uint8_t(c));
    if (!std::isfinite(v)) continue;
    const uint8_t back = encode_block_element_ref(unit, unit_block, float(v), 0);
    if (decode_element(format, back) == v) all.emplace_back(v, uint8_t(c));
  }
  // Equal values (+0 and -0) keep the lower code, which sorts first.
  std::sort(all.begin(), all.end());
  CodeLadder ladder;
  for (const auto& [v, c] : all) {
    if (!ladder.values.empty() && ladder.values.back() == v) continue;
    ladder.values.push_back(v);
    ladder.codes.push_back(c);
  }
  return ladder;
}

}  // namespace

bool refinement_keeps(Rounding rounding) {
  return rounding == Rounding::kNearestEven || rounding == Rounding::kNearestAway;
}

void refine_codes(std::span<const float> w, int64_t n, int64_t k, std::span<const double> hessian,
                  const QuantSpec& spec, const BlockGrid& grid, std::span<const BlockResult> blocks,
                  std::span<uint8_t> codes, std::span<float> dequantized, int passes, int threads) {
  const FormatTraits& format = traits(spec.format);
  const CodeLadder ladder = code_ladder(spec);
  const int elems = grid.block_elems();
  // Rows go in groups of this many, so that the FP64 buffers stay a few MB per thread.
  constexpr int64_t kGroup = 64;
  cpu::parallel_for((n + kGroup - 1) / kGroup, 1, threads, [&](int64_t g0, int64_t g1) {
    std::vector<double> errors(static_cast<size_t>(kGroup * k));
    std::vector<double> gradients(static_cast<size_t>(kGroup * k));
    for (int64_t g = g0; g < g1; ++g) {
      const int64_t r0 = g * kGroup, r1 = std::min(n, r0 + kGroup), rows = r1 - r0;
      // The rows' errors e = w - q, and gradient = e Hd for all of them at once (an FP64
      // product whose sums do not depend on how the rows are grouped).
      for (int64_t i = 0; i < rows * k; ++i) {
        errors[size_t(i)] = double(w[size_t(r0 * k + i)]) - double(dequantized[size_t(r0 * k + i)]);
      }
      std::fill(gradients.begin(), gradients.end(), 0.0);
      cpu::dgemm_accumulate(gradients.data(), k, errors.data(), k, hessian.data(), k, rows, k, k);
      for (int64_t r = r0; r < r1; ++r) {
        float* qr = dequantized.data() + r * k;
        double* gradient = gradients.data() + (r - r0) * k;
        // Moving q_c by d changes the objective by d^2 Hd_cc - 2 d gradient_c.
        for (int pass = 0; pass < passes; ++pass) {
          for (int64_t c = 0; c < k; ++c) {
            const double hcc = hessian[size_t(c * k + c)];
            if (!(hcc > 0)) continue;
            int64_t b = 0;
            int slot = 0;
            grid.locate(r * k + c, &b, &slot);
            const BlockResult& block = blocks[size_t(b)];
            if (block.nan_block || block.scale == 0xFF) continue;
            // The unconstrained best value, then the two grid values around it.
            const double target = double(qr[c]) + gradient[c] / hcc;
            const double offset = spec.asymmetric ? double(bf16_to_float(block.offset)) : 0.0;
            const double unit = std::ldexp(1.0, int(block.scale) - 127);
            const double x = (target - offset) / unit;
            const auto above = std::lower_bound(ladder.values.begin(), ladder.values.end(), x);
            const size_t hi =
                std::min(size_t(above - ladder.values.begin()), ladder.values.size() - 1);
            const size_t lo = hi == 0 ? 0 : hi - 1;
            double best_change = 0;
            uint8_t best_code = codes[size_t(b * elems + slot)];
            float best_value = qr[c];
            for (const size_t i : {lo, hi}) {
              const uint8_t code = ladder.codes[i];
              const float value =
                  decode_value(format, code, block.scale, spec.asymmetric, block.offset);
              if (!std::isfinite(value)) continue;
              const double d = double(value) - double(qr[c]);
              const double change = d * d * hcc - 2 * d * gradient[c];
              // A gain within rounding of the terms is no gain: ties keep the value.
              const double noise = 1e-12 * (d * d * hcc + std::fabs(2 * d * gradient[c]));
              if (change < best_change - noise) {
                best_change = change, best_code = code, best_value = value;
              }
            }
            if (best_value == qr[c]) continue;
            const double d = double(best_value) - double(qr[c]);
            qr[c] = best_value;
            codes[size_t(b * elems + slot)] = best_code;
            const double* h = hessian.data() + c * k;  // H is symmetric: column c is row c
            for (int64_t j = 0; j < k; ++j) gradient[j] -= h[j] * d;
          }
        }
      }
    }
  });
}

}  // namespace mx::ptq
