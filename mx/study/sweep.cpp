#include "mx/study/sweep.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>

#include "mx/core/block_grid.h"
#include "mx/core/e8m0.h"
#include "mx/core/half.h"
#include "mx/kernels/cpu/parallel.h"
#include "mx/kernels/cpu/quantize.h"

namespace mx::study {

std::string_view organisation_name(Organisation o) {
  switch (o) {
    case Organisation::kRow:
      return "row";
    case Organisation::kColumn:
      return "column";
    case Organisation::kTile:
      return "tile";
  }
  return "?";
}

SweepGrid default_sweep_grid() {
  SweepGrid g;
  g.formats = {{ElementFormat::kE2M1, false, "e2m1"}, {ElementFormat::kE3M0, false, "e3m0"},
               {ElementFormat::kInt4, false, "int4"}, {ElementFormat::kInt4, true, "int4-asym"},
               {ElementFormat::kE2M3, false, "e2m3"}, {ElementFormat::kE3M2, false, "e3m2"},
               {ElementFormat::kE4M3, false, "e4m3"}, {ElementFormat::kE5M2, false, "e5m2"},
               {ElementFormat::kInt8, false, "int8"}};
  g.scale_rules = {ScaleRule::kFloor, ScaleRule::kCeil, ScaleRule::kEven, ScaleRule::kRceil};
  g.roundings = {Rounding::kNearestEven, Rounding::kStochastic};
  g.block_sizes = {8, 16, 32, 64};
  g.organisations = {Organisation::kRow, Organisation::kColumn, Organisation::kTile};
  return g;
}

QuantSpec spec_for(const SweepCell& cell) {
  QuantSpec s;
  s.format = cell.format.format;
  s.asymmetric = cell.format.asymmetric;
  s.scale_rule = cell.scale_rule;
  s.rounding = cell.rounding;
  switch (cell.organisation) {
    case Organisation::kRow:
      s.block_size = cell.block_size;
      s.axis = -1;
      break;
    case Organisation::kColumn:
      s.block_size = cell.block_size;
      s.axis = 0;
      break;
    case Organisation::kTile: {
      int r = int(std::sqrt(double(cell.block_size)));
      while (cell.block_size % r != 0) --r;
      s.tile_rows = r;
      s.tile_cols = cell.block_size / r;
      break;
    }
  }
  return s;
}

namespace {

struct Accumulator {
  double signal = 0, noise = 0, max_abs = 0;
  int64_t count = 0, clamped = 0, flushed = 0;
};

// Adds one tensor's errors under one spec. Clamping is judged per block against the block's
// largest representable magnitude X * max_normal (plus the offset for asymmetric blocks).
void accumulate(const SweepTensor& t, const QuantSpec& spec, const cpu::Options& options,
                Accumulator& acc) {
  const std::vector<int64_t> shape = {t.rows, t.cols};
  MxTensor q;
  if (!cpu::quantize(t.values.data(), DType::kF32, shape, spec, &q, options).empty()) return;
  std::vector<float> decoded(t.values.size());
  if (!cpu::dequantize(q, DType::kF32, decoded.data(), options).empty()) return;
  std::string error;
  const BlockGrid grid = make_block_grid(shape, spec, &error);
  const double max_normal = traits(spec.format).max_normal;
  // Partial sums keyed by range start and merged in order, so results do not depend on timing.
  std::mutex merge;
  std::map<int64_t, Accumulator> partials;
  cpu::parallel_for(grid.num_blocks(), 64, options.threads, [&](int64_t begin, int64_t end) {
    Accumulator local;
    std::vector<int64_t> indices(grid.block_elems());
    for (int64_t b = begin; b < end; ++b) {
      if (q.scales[b] == kE8m0Nan) continue;
      const double limit = max_normal * e8m0_to_float(q.scales[b]);
      const double offset = spec.asymmetric ? bf16_to_float(q.offsets[b]) : 0.0;
      grid.block_indices(b, indices.data());
      for (int64_t idx : indices) {
        if (idx < 0) continue;
        const double v = t.values[idx], d = v - decoded[idx];
        local.signal += v * v;
        local.noise += d * d;
        local.max_abs = std::max(local.max_abs, std::fabs(d));
        local.clamped += std::fabs(v - offset) > limit;
        local.flushed += v != 0 && decoded[idx] == 0;
        ++local.count;
      }
    }
    std::lock_guard<std::mutex> lock(merge);
    partials[begin] = local;
  });
  for (const auto& [begin, local] : partials) {
    acc.signal += local.signal;
    acc.noise += local.noise;
    acc.max_abs = std::max(acc.max_abs, local.max_abs);
    acc.count += local.count;
    acc.clamped += local.clamped;
    acc.flushed += local.flushed;
  }
}

}  // namespace

std::vector<SweepCell> run_sweep(const std::vector<SweepTensor>& tensors, const SweepGrid& grid,
                                 int threads,
                                 const std::function<void(int64_t, int64_t)>& progress) {
  cpu::Options options;
  options.threads = threads;
  std::vector<SweepCell> cells;
  for (const SweepFormat& f : grid.formats) {
    for (ScaleRule rule : grid.scale_rules) {
      for (Rounding mode : grid.roundings) {
        for (int block : grid.block_sizes) {
          for (Organisation org : grid.organisations) {
            cells.push_back({f, rule, mode, block, org});
          }
        }
      }
    }
  }
  const int64_t total = static_cast<int64_t>(cells.size());
  for (int64_t c = 0; c < total; ++c) {
    SweepCell& cell = cells[c];
    QuantSpec spec = spec_for(cell);
    spec.seed = grid.seed;
    cell.bits_per_element = bits_per_element(spec);
    Accumulator acc;
    for (const SweepTensor& t : tensors) {
      if (cell.organisation != Organisation::kRow && t.rows < 2) continue;
      if (spec.is_tiled() && (spec.tile_rows > t.rows || spec.tile_cols > t.cols)) continue;
      accumulate(t, spec, options, acc);
    }
    cell.count = acc.count;
    cell.rmse = acc.count ? std::sqrt(acc.noise / double(acc.count)) : 0;
    cell.sqnr_db = acc.noise > 0 ? 10 * std::log10(acc.signal / acc.noise) : INFINITY;
    cell.max_abs = acc.max_abs;
    cell.clamped = acc.count ? double(acc.clamped) / double(acc.count) : 0;
    cell.flushed = acc.count ? double(acc.flushed) / double(acc.count) : 0;
    if (progress) progress(c + 1, total);
  }
  return cells;
}

std::vector<SweepCell> best_per_bit_budget(const std::vector<SweepCell>& cells) {
  std::map<double, SweepCell> best;
  for (const SweepCell& c : cells) {
    if (c.count == 0) continue;
    auto it = best.find(c.bits_per_element);
    if (it == best.end() || c.sqnr_db > it->second.sqnr_db) best[c.bits_per_element] = c;
  }
  std::vector<SweepCell> out;
  for (const auto& [bits, cell] : best) out.push_back(cell);
  return out;
}

std::string sweep_csv(const std::vector<SweepCell>& cells) {
  std::ostringstream s;
  s << "format,scale,rounding,block,organisation,bits_per_element,count,rmse,sqnr_db,max_abs,"
       "clamped,flushed\n";
  s.precision(9);
  for (const SweepCell& c : cells) {
    s << c.format.label << ',' << scale_rule_name(c.scale_rule) << ',' << rounding_name(c.rounding)
      << ',' << c.block_size << ',' << organisation_name(c.organisation) << ','
      << c.bits_per_element << ',' << c.count << ',' << c.rmse << ',' << c.sqnr_db << ','
      << c.max_abs << ',' << c.clamped << ',' << c.flushed << '\n';
  }
  return s.str();
}

std::string sweep_json(const std::vector<SweepCell>& cells) {
  nlohmann::json rows = nlohmann::json::array();
  for (const SweepCell& c : cells) {
    rows.push_back({{"format", c.format.label},
                    {"scale", scale_rule_name(c.scale_rule)},
                    {"rounding", rounding_name(c.rounding)},
                    {"block", c.block_size},
                    {"organisation", organisation_name(c.organisation)},
                    {"bits_per_element", c.bits_per_element},
                    {"count", c.count},
                    {"rmse", c.rmse},
                    {"sqnr_db", std::isfinite(c.sqnr_db) ? nlohmann::json(c.sqnr_db) : nullptr},
                    {"max_abs", c.max_abs},
                    {"clamped", c.clamped},
                    {"flushed", c.flushed}});
  }
  return rows.dump(1);
}

}  // namespace mx::study
