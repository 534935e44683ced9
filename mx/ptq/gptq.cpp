#include "mx/ptq/gptq.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "mx/core/bitpack.h"
#include "mx/core/block_grid.h"
#include "mx/core/quantize_ref.h"
#include "mx/io/cat.h"
#include "mx/kernels/cpu/parallel.h"
#include "mx/kernels/cpu/sgemm.h"
#include "mx/ptq/cholesky.h"
#include "mx/ptq/hessian.h"
#include "mx/ptq/refine.h"

namespace mx::ptq {
namespace {

using io::cat;

// When each block's scale is due: starts[p] lists the blocks whose first column in the order
// is at position p, and reach[p] the last position of any column of those blocks (-1: none).
struct BlockSchedule {
  std::vector<std::vector<int64_t>> starts;
  std::vector<int64_t> reach;
};

BlockSchedule schedule_blocks(const BlockGrid& grid, int64_t k, std::span<const int64_t> pos) {
  BlockSchedule s;
  s.starts.resize(size_t(k));
  s.reach.assign(size_t(k), -1);
  std::vector<int64_t> slots(size_t(grid.block_elems()));
  for (int64_t b = 0; b < grid.num_blocks(); ++b) {
    grid.block_indices(b, slots.data());
    int64_t first = k, last = -1;
    for (const int64_t flat : slots) {
      if (flat < 0) continue;
      first = std::min(first, pos[size_t(flat % k)]);
      last = std::max(last, pos[size_t(flat % k)]);
    }
    s.starts[size_t(first)].push_back(b);
    s.reach[size_t(first)] = std::max(s.reach[size_t(first)], last);
  }
  return s;
}

// How many consecutive input columns (the last axis of [n, k]) one block spans.
int64_t columns_per_block(const QuantSpec& spec) {
  if (spec.is_tiled()) return spec.tile_cols;
  return spec.axis == -1 || spec.axis == 1 ? spec.block_size : 1;
}

std::string check_inputs(std::span<const float> w, int64_t n, int64_t k,
                         std::span<const float> hessian, const GptqOptions& options) {
  if (n < 1 || k < 1) return cat("a weight of ", n, " x ", k, " has nothing to quantize");
  if (int64_t(w.size()) != n * k) return "the weight's value count does not match its shape";
  if (int64_t(hessian.size()) != k * k) {
    return cat("the Hessian has ", hessian.size(), " values, a ", k, " x ", k, " one needs ",
               k * k);
  }
  if (!(options.damp >= 0) || !std::isfinite(options.damp)) {
    return "the dampening fraction must be a finite number >= 0";
  }
  if (options.batch_columns < 1) return "the batch of columns must hold at least one";
  if (options.refine_passes < 0) return "the refinement passes must be >= 0";
  for (const float v : w) {
    if (!std::isfinite(v)) return "the weight holds NaN or Inf";
  }
  for (const float v : hessian) {
    if (!std::isfinite(v)) return "the Hessian holds NaN or Inf";
  }
  return "";
}

// The block's squared error under `block`'s scale, each slot's weighted by diag(H) of its input
// column (slots < 0 are padding).
double weighted_error(const QuantSpec& spec, const BlockResult& block,
                      std::span<const float> values, std::span<const int64_t> slots,
                      std::span<const float> diag, int64_t k) {
  const FormatTraits& format = traits(spec.format);
  double sum = 0;
  for (size_t s = 0; s < slots.size(); ++s) {
    if (slots[s] < 0) continue;
    const uint8_t code = encode_block_element_ref(spec, block, values[s], slots[s]);
    const double q = decode_value(format, code, block.scale, spec.asymmetric, block.offset);
    const double e = double(values[s]) - q;
    sum += double(diag[size_t(slots[s] % k)]) * e * e;
  }
  return sum;
}

// The rule's scale byte, or one step below or above it where that is a finite E8M0 scale,
// whichever block has the least cost (the rule's on a tie, then the lower).
template <class Cost>
BlockResult least_cost_scale(const BlockResult& rule, Cost cost) {
  if (rule.nan_block || rule.scale == 0xFF) return rule;
  BlockResult best = rule;
  double best_cost = cost(rule);
  for (const int step : {-1, 1}) {
    const int byte = int(rule.scale) + step;
    if (byte < 0 || byte > 254) continue;
    BlockResult candidate = rule;
    candidate.scale = uint8_t(byte);
    const double c = cost(candidate);
    if (c < best_cost) best = candidate, best_cost = c;
  }
  return best;
}

// ScaleChoice::kNeighbors: the scale whose block has the least diag(H)-weighted error.
BlockResult best_neighbor_scale(const QuantSpec& spec, const BlockResult& rule,
                                std::span<const float> values, std::span<const int64_t> slots,
                                std::span<const float> diag, int64_t k) {
  return least_cost_scale(rule, [&](const BlockResult& block) {
    return weighted_error(spec, block, values, slots, diag, k);
  });
}

// ScaleChoice::kLookahead: of the same three scales, the one whose block, quantized column by
// column in the order with each column's error passed on to the block's later columns through
// the inverse Hessian's factor u, adds the least to GPTQ's objective (the sum of the squared
// scaled errors). Each row's block is chosen on its own.
BlockResult best_lookahead_scale(const QuantSpec& spec, const BlockResult& rule,
                                 std::span<const float> values, std::span<const int64_t> slots,
                                 std::span<const int64_t> pos, std::span<const float> u,
                                 int64_t k) {
  if (rule.nan_block || rule.scale == 0xFF) return rule;  // no objective to weigh
  const FormatTraits& format = traits(spec.format);
  std::vector<int> order;
  for (size_t s = 0; s < slots.size(); ++s) {
    if (slots[s] >= 0) order.push_back(int(s));
  }
  std::sort(order.begin(), order.end(), [&](int a, int b) {
    return pos[size_t(slots[size_t(a)] % k)] < pos[size_t(slots[size_t(b)] % k)];
  });
  std::vector<double> v(values.size());
  auto objective = [&](const BlockResult& block) {
    for (size_t s = 0; s < values.size(); ++s) v[s] = values[s];
    double sum = 0;
    for (size_t a = 0; a < order.size(); ++a) {
      const int sa = order[a];
      const int64_t pa = pos[size_t(slots[size_t(sa)] % k)];
      const uint8_t code =
          encode_block_element_ref(spec, block, float(v[size_t(sa)]), slots[size_t(sa)]);
      const double q = decode_value(format, code, block.scale, spec.asymmetric, block.offset);
      const double e = (v[size_t(sa)] - q) / double(u[size_t(pa * k + pa)]);
      sum += e * e;
      for (size_t b = a + 1; b < order.size(); ++b) {
        const int sb = order[b];
        v[size_t(sb)] -= double(u[size_t(pa * k + pos[size_t(slots[size_t(sb)] % k)])]) * e;
      }
    }
    return sum;
  };
  return least_cost_scale(rule, objective);
}

}  // namespace

std::string gptq_quantize(std::span<const float> w, int64_t n, int64_t k,
                          std::span<const float> hessian, const QuantSpec& spec,
                          const GptqOptions& options, MxTensor* out,
                          std::vector<float>* dequantized) {
  if (std::string e = check_inputs(w, n, k, hessian, options); !e.empty()) return e;
  if (options.refine_passes > 0 && !refinement_keeps(spec.rounding)) {
    return cat("refinement keeps nearest roundings only, and the spec rounds ",
               rounding_name(spec.rounding));
  }
  std::string error;
  const int64_t shape[2] = {n, k};
  MxTensor t = make_mx_tensor(shape, spec, &error);
  if (!error.empty()) return error;
  const BlockGrid grid = make_block_grid(shape, spec, &error);
  if (!error.empty()) return error;

  std::vector<float> diag(static_cast<size_t>(k));
  for (int64_t c = 0; c < k; ++c) diag[size_t(c)] = hessian[size_t(c * k + c)];
  const std::vector<int64_t> order = column_order(diag, columns_per_block(spec), options.order);
  std::vector<int64_t> pos(static_cast<size_t>(k));
  for (int64_t p = 0; p < k; ++p) pos[size_t(order[size_t(p)])] = p;
  std::vector<double> factor = damped_hessian(hessian, k, order, options.damp);
  if (std::string e = inverse_hessian_factor(&factor, k, options.threads); !e.empty()) return e;
  const std::vector<float> u(factor.begin(), factor.end());
  factor = {};

  // The working copy, one row per input column in the order: wt[p * n + r] = W[r, order[p]].
  std::vector<float> wt(static_cast<size_t>(k * n));
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t p = 0; p < k; ++p) wt[size_t(p * n + r)] = w[size_t(r * k + order[size_t(p)])];
  }
  const BlockSchedule schedule = schedule_blocks(grid, k, pos);
  const FormatTraits& format = traits(spec.format);
  const int elems = grid.block_elems();
  std::vector<BlockResult> blocks(size_t(grid.num_blocks()));
  std::vector<uint8_t> codes(size_t(grid.num_blocks() * elems), 0);
  std::vector<float> decoded;
  if (dequantized == nullptr && options.refine_passes > 0) dequantized = &decoded;
  if (dequantized != nullptr) dequantized->assign(size_t(n * k), 0.0f);
  const int64_t batch = options.batch_columns;
  std::vector<float> errors(size_t(batch * n)), panel;
  std::string column_error;

  // Chooses the scales due at position i, from the blocks' current values.
  auto choose_scales = [&](int64_t i) {
    const std::vector<int64_t>& due = schedule.starts[size_t(i)];
    cpu::parallel_for(int64_t(due.size()), 1, options.threads, [&](int64_t begin, int64_t end) {
      std::vector<int64_t> slots(static_cast<size_t>(elems));
      std::vector<float> values(static_cast<size_t>(elems));
      std::unique_ptr<bool[]> real(new bool[size_t(elems)]);
      for (int64_t d = begin; d < end; ++d) {
        const int64_t b = due[size_t(d)];
        grid.block_indices(b, slots.data());
        for (int s = 0; s < elems; ++s) {
          const int64_t flat = slots[size_t(s)];
          real[size_t(s)] = flat >= 0;
          values[size_t(s)] = flat < 0 ? 0.0f : wt[size_t(pos[size_t(flat % k)] * n + flat / k)];
        }
        blocks[size_t(b)] = choose_block_scale_ref(spec, values, std::span(real.get(), elems));
        if (options.scale == ScaleChoice::kNeighbors) {
          blocks[size_t(b)] = best_neighbor_scale(spec, blocks[size_t(b)], values, slots, diag, k);
        } else if (options.scale == ScaleChoice::kLookahead) {
          blocks[size_t(b)] =
              best_lookahead_scale(spec, blocks[size_t(b)], values, slots, pos, u, k);
        }
      }
    });
  };

  // Quantizes the column at position i of a batch ending at `end`, keeping its scaled errors
  // and passing them on to the batch's later columns.
  auto quantize_column = [&](int64_t i, int64_t first, int64_t end) {
    const int64_t column = order[size_t(i)];
    const float d = u[size_t(i * k + i)];
    float* err = errors.data() + (i - first) * n;
    cpu::parallel_for(n, 16, options.threads, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const float v = wt[size_t(i * n + r)];
        const int64_t flat = r * k + column;
        int64_t b = 0;
        int slot = 0;
        grid.locate(flat, &b, &slot);
        const BlockResult& block = blocks[size_t(b)];
        const uint8_t code = encode_block_element_ref(spec, block, v, flat);
        codes[size_t(b * elems + slot)] = code;
        const float q = decode_value(format, code, block.scale, spec.asymmetric, block.offset);
        if (dequantized != nullptr) (*dequantized)[size_t(flat)] = q;
        err[r] = (v - q) / d;
      }
      for (int64_t j = i + 1; j < end; ++j) {
        const float s = u[size_t(i * k + j)];
        float* row = wt.data() + j * n;
        for (int64_t r = r0; r < r1; ++r) row[r] -= s * err[r];
      }
    });
    for (int64_t r = 0; r < n; ++r) {
      if (!std::isfinite(err[r]) && column_error.empty()) {
        column_error = cat("error diffusion diverged at input ", column, " (row ", r,
                           "): raise the dampening");
      }
    }
  };

  // Passes the errors of positions [first, last) on to the columns from `end` on.
  auto flush = [&](int64_t first, int64_t last, int64_t end) {
    const int64_t rows = last - first, tail = k - end;
    if (rows == 0 || tail == 0) return;
    panel.resize(size_t(rows * tail));
    for (int64_t p = 0; p < rows; ++p) {
      std::copy_n(u.data() + (first + p) * k + end, tail, panel.data() + p * tail);
    }
    for (int64_t x = 0; x < rows * n; ++x) errors[size_t(x)] = -errors[size_t(x)];
    // wt[end:, :] += panel^T errors: panel [rows, tail] read transposed, errors [rows, n].
    cpu::SgemmOptions product;
    product.accumulate = true;
    product.threads = options.threads;
    cpu::sgemm(wt.data() + end * n, n, cpu::StridedMatrix{panel.data(), 1, tail},
               cpu::StridedMatrix{errors.data(), n, 1}, tail, rows, n, product);
  };

  for (int64_t first = 0; first < k;) {
    const int64_t end = std::min(k, first + batch);
    int64_t i = first;
    for (; i < end; ++i) {
      // A scale is due whose block has columns past the batch, which have not yet received
      // this batch's errors: pass them on first.
      if (i > first && schedule.reach[size_t(i)] >= end) break;
      choose_scales(i);
      quantize_column(i, first, end);
      if (!column_error.empty()) return column_error;
    }
    flush(first, i, end);
    first = i;
  }

  if (options.refine_passes > 0) {
    std::vector<int64_t> natural(static_cast<size_t>(k));
    for (int64_t c = 0; c < k; ++c) natural[size_t(c)] = c;
    const std::vector<double> damped = damped_hessian(hessian, k, natural, options.damp);
    refine_codes(w, n, k, damped, spec, grid, blocks, codes, *dequantized, options.refine_passes,
                 options.threads);
  }

  for (int64_t b = 0; b < grid.num_blocks(); ++b) {
    t.scales[size_t(b)] = blocks[size_t(b)].scale;
    if (spec.asymmetric) t.offsets[size_t(b)] = blocks[size_t(b)].offset;
    pack_codes(std::span(codes).subspan(size_t(b * elems), size_t(elems)), format.bits, b * elems,
               t.elements);
  }
  *out = std::move(t);
  return "";
}

}  // namespace mx::ptq
