#include "mx/train/cast_errors.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <tuple>
#include <utility>

#include "mx/data/batch_sampler.h"

namespace mx::train {
namespace {

constexpr nn::LinearOperand kRoleOrder[] = {
    nn::LinearOperand::kActFwd,   nn::LinearOperand::kWeightFwd, nn::LinearOperand::kGradOutDx,
    nn::LinearOperand::kWeightDx, nn::LinearOperand::kGradOutDw, nn::LinearOperand::kActDw};

void add_into(nn::CastError* total, const nn::CastError& e) {
  total->count += e.count;
  total->nonzero += e.nonzero;
  total->flushed += e.flushed;
  total->sum_sq += e.sum_sq;
  total->err_sq += e.err_sq;
}

// Sums of `rows` keyed by `key_of` (a (layer, site) pair), in the order the keys first appear,
// each role within a key in recipe order.
template <class KeyOf>
std::vector<nn::CastError> summed(const std::vector<nn::CastError>& rows, KeyOf key_of) {
  std::vector<std::pair<int, int>> keys;
  std::map<std::tuple<int, int, nn::LinearOperand>, nn::CastError> sums;
  for (const nn::CastError& e : rows) {
    const auto [layer, site] = key_of(e);
    auto [it, inserted] = sums.try_emplace({layer, site, e.role});
    if (inserted) {
      it->second.layer = layer, it->second.site = site, it->second.role = e.role;
      if (std::find(keys.begin(), keys.end(), std::pair{layer, site}) == keys.end()) {
        keys.emplace_back(layer, site);
      }
    }
    add_into(&it->second, e);
  }
  std::vector<nn::CastError> out;
  for (const auto& [layer, site] : keys) {
    for (nn::LinearOperand role : kRoleOrder) {
      if (auto it = sums.find({layer, site, role}); it != sums.end()) out.push_back(it->second);
    }
  }
  return out;
}

double sqnr_db(const nn::CastError& e) {
  return e.err_sq > 0 ? 10 * std::log10(e.sum_sq / e.err_sq)
                      : std::numeric_limits<double>::infinity();
}

// "3.12% (0.4%)": relative RMSE, and the share of nonzero values flushed when any were.
std::string cell(const nn::CastError* e) {
  if (e == nullptr) return "–";
  std::string s = fmt::format("{:.2f}%", 100 * e->relative_rmse());
  if (e->flushed > 0) s += fmt::format(" ({:.2g}% to 0)", 100 * e->flushed_fraction());
  return s;
}

// One markdown row per (layer, site) of `rows`, a column per role.
void table(std::string* out, const std::vector<nn::CastError>& rows, int n_layers,
           bool with_layer) {
  *out += with_layer ? "| layer | product |" : "| product |";
  for (nn::LinearOperand role : kRoleOrder)
    *out += fmt::format(" {} |", nn::linear_operand_name(role));
  *out += with_layer ? "\n|---:|---|" : "\n|---|";
  for (size_t i = 0; i < std::size(kRoleOrder); ++i) *out += "---:|";
  *out += "\n";
  for (size_t i = 0; i < rows.size();) {
    const int layer = rows[i].layer, site = rows[i].site;
    std::map<nn::LinearOperand, const nn::CastError*> by_role;
    for (; i < rows.size() && rows[i].layer == layer && rows[i].site == site; ++i) {
      by_role[rows[i].role] = &rows[i];
    }
    const std::string product =
        site < 0 ? "all" : product_name(layer < 0 ? 0 : layer, site, layer < 0 ? -1 : n_layers);
    *out +=
        with_layer ? fmt::format("| {} | {} |", layer, product) : fmt::format("| {} |", product);
    for (nn::LinearOperand role : kRoleOrder) {
      auto it = by_role.find(role);
      *out += fmt::format(" {} |", cell(it == by_role.end() ? nullptr : it->second));
    }
    *out += "\n";
  }
}

}  // namespace

std::string product_name(int layer, int site, int n_layers) {
  if (layer == n_layers) return "classifier";
  switch (site) {
    case 0:
      return "q";
    case 1:
      return "k";
    case 2:
      return "v";
    case 4:
      return "attn_out";
    case 5:
      return "fc";
    case 6:
      return "up";
    case 7:
      return "proj";
  }
  return fmt::format("site {}", site);
}

std::string measure_cast_errors(nn::Model& model, nn::CastProbe& probe, const nn::Recipe& recipe,
                                data::TokenView tokens, const EvalWindow& window,
                                CastErrorReport* out) {
  if (&model.backend() != &probe) return "the model does not run on the probe";
  const int64_t batches = batch_count(tokens, window);
  if (batches == 0) return "the tokens hold no window";
  if (std::string e = reserve_for(model, tokens, window); !e.empty()) return e;
  const nn::Recipe saved = model.recipe();
  model.set_recipe(recipe);
  probe.clear();
  CastErrorReport r;
  double loss_sum = 0;
  std::string error;
  data::Batch batch;
  for (int64_t i = 0; i < batches && error.empty(); ++i) {
    if (error = data::eval_batch(tokens, window.batch, window.seq_len, i, &batch); !error.empty()) {
      break;
    }
    float loss = 0;
    nn::PassOptions training;
    training.training = true;
    error = model.forward(batch.inputs.data(), batch.targets.data(), batch.rows, batch.seq_len,
                          &loss, training);
    if (error.empty()) error = model.backward();
    if (error.empty()) error = probe.probe_error();
    const int64_t n = batch.rows * batch.seq_len;
    loss_sum += double(loss) * double(n);
    r.tokens += n;
  }
  model.zero_grad();
  model.set_recipe(saved);
  if (!error.empty()) return error;
  r.loss = loss_sum / double(r.tokens);
  r.rows = probe.errors();
  const int n_layers = int(model.config().n_layers);
  r.by_role = summed(r.rows, [](const nn::CastError&) { return std::pair{-1, -1}; });
  r.by_product = summed(r.rows, [n_layers](const nn::CastError& e) {
    return std::pair{e.layer == n_layers ? n_layers : -1, e.site};
  });
  *out = std::move(r);
  return "";
}

std::string cast_error_markdown(const CastErrorReport& report, int n_layers, bool per_layer) {
  std::string out =
      "Relative RMSE of each cast, ||cast(x) - x|| / ||x|| (the share of nonzero values it "
      "made zero)\n\nBy product, over the layers:\n\n";
  table(&out, report.by_product, n_layers, false);
  out += "\nEvery product:\n\n";
  table(&out, report.by_role, n_layers, false);
  if (per_layer) {
    out += "\nBy layer:\n\n";
    table(&out, report.rows, n_layers, true);
  }
  return out;
}

std::string cast_error_json(const CastErrorReport& report, int n_layers) {
  auto rows = [n_layers](const std::vector<nn::CastError>& v) {
    nlohmann::json a = nlohmann::json::array();
    for (const nn::CastError& e : v) {
      nlohmann::json j = nlohmann::json::object();
      if (e.layer >= 0) j["layer"] = e.layer;
      if (e.site >= 0)
        j["product"] = product_name(e.layer < 0 ? 0 : e.layer, e.site, e.layer < 0 ? -1 : n_layers);
      j["role"] = std::string(nn::linear_operand_name(e.role));
      j["values"] = e.count;
      j["relative_rmse"] = e.relative_rmse();
      j["flushed"] = e.flushed_fraction();
      const double db = sqnr_db(e);
      j["sqnr_db"] = std::isfinite(db) ? nlohmann::json(db) : nlohmann::json(nullptr);
      a.push_back(std::move(j));
    }
    return a;
  };
  nlohmann::json j = nlohmann::json::object();
  j["loss"] = report.loss;
  j["tokens"] = report.tokens;
  j["by_role"] = rows(report.by_role);
  j["by_product"] = rows(report.by_product);
  j["rows"] = rows(report.rows);
  return j.dump();
}

}  // namespace mx::train
