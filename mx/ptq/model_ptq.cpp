#include "mx/ptq/model_ptq.h"

#include <algorithm>
#include <vector>

#include "mx/io/cat.h"
#include "mx/io/memory_budget.h"
#include "mx/nn/cast_streams.h"
#include "mx/ptq/fp32_targets.h"
#include "mx/ptq/hessian.h"

namespace mx::ptq {
namespace {

using io::cat;
using nn::BlockStep;
using nn::LinearSite;

// A block's steps in order, each with the linear layers whose input it ends at (those share
// the input's Hessian); the last step ends at the block's output.
struct StepSites {
  BlockStep step;
  std::vector<LinearSite> sites;
};

std::vector<StepSites> block_steps(const nn::Model& model, int64_t layer) {
  std::vector<StepSites> steps = {
      {BlockStep::kNorm1, {LinearSite::kQ, LinearSite::kK, LinearSite::kV}},
      {BlockStep::kAttention, {LinearSite::kAttnOut}},
      {BlockStep::kAttnResidual, {LinearSite::kFc, LinearSite::kUp}},
      {BlockStep::kMlp, {LinearSite::kProj}},
      {BlockStep::kMlpResidual, {}}};
  for (auto& s : steps) {
    std::erase_if(s.sites, [&](LinearSite site) { return model.linear_weight(layer, site) < 0; });
  }
  return steps;
}

// The calibration batches on the host: the residual stream of each, and the block's
// intermediate a step leaves for the next (attention's output, then the MLP's activation).
struct Stream {
  std::vector<std::vector<float>> x, side;  // per batch: [rows * seq_len, dim], [.., hidden]
  std::vector<int64_t> rows;                // sequences per batch
};

std::string embed_all(nn::Model& model, std::span<const uint32_t> tokens, int64_t seq_len,
                      Stream* s) {
  const int64_t dim = model.config().dim, wide = std::max(dim, model.config().hidden);
  for (size_t b = 0, first = 0; b < s->rows.size(); first += size_t(s->rows[b] * seq_len), ++b) {
    s->x[b].resize(size_t(s->rows[b] * seq_len * dim));
    s->side[b].resize(size_t(s->rows[b] * seq_len * wide));
    if (std::string e = model.embed(tokens.data() + first, s->rows[b], seq_len, s->x[b].data());
        !e.empty()) {
      return e;
    }
  }
  return "";
}

// The unquantized copy of the model and its own stream, for FP32 targets (fp32_targets.h).
struct Fp32Side {
  nn::Model* model = nullptr;
  Stream* stream = nullptr;
};

// Runs `step` of block `layer` on every batch; with a site, also returns H = X^T X of that
// site's input over all batches, as its product reads it under the model's recipe (the act_fwd
// cast of that site's stream). Each batch's product runs on the model's backend; only it
// crosses to the host, where the batches are summed in double. With fp.model, the step runs
// on the unquantized copy's stream too, and *cross gets (X_fp - X)^T X summed over the batches
// (X_fp - X formed on the host, its product with X on the backend).
std::string run_step(nn::Model& model, Stream& s, int64_t layer, BlockStep step,
                     const LinearSite* site, int64_t seq_len, std::vector<float>* h,
                     const Fp32Side& fp = {}, CrossSum* cross = nullptr) {
  const int64_t k = site == nullptr              ? 0
                    : *site == LinearSite::kProj ? model.config().hidden
                                                 : model.config().dim;
  HessianSum sum = hessian_sum(k);
  if (fp.model != nullptr) *cross = cross_sum(k);
  std::vector<float> fp_in, in;
  for (size_t b = 0; b < s.x.size(); ++b) {
    if (fp.model != nullptr) {
      Stream& f = *fp.stream;
      if (std::string e = fp.model->forward_block_step(layer, step, f.x[b].data(), f.side[b].data(),
                                                       f.rows[b], seq_len);
          !e.empty()) {
        return e;
      }
      if (site != nullptr) {
        if (std::string e = fp.model->linear_input(layer, *site, &fp_in); !e.empty()) return e;
      }
    }
    if (std::string e = model.forward_block_step(layer, step, s.x[b].data(), s.side[b].data(),
                                                 s.rows[b], seq_len);
        !e.empty()) {
      return e;
    }
    if (site == nullptr) continue;
    if (fp.model != nullptr) {
      if (std::string e = model.linear_input(layer, *site, &in); !e.empty()) return e;
      // ΔXᵀX on the backend, where X already is: the product that dominates this pass.
      input_difference(fp_in.data(), in.data(), int64_t(in.size()) / k, k, &cross->delta);
      if (std::string e = model.linear_input_product(layer, *site, cross->delta, &cross->batch);
          !e.empty()) {
        return e;
      }
      add_cross_product(cross, cross->batch.data());
    }
    const uint64_t stream =
        nn::operand_stream(nn::stream_id(0, int(layer), int(*site)), nn::LinearOperand::kActFwd);
    if (std::string e =
            model.linear_input_gram(layer, *site, model.recipe().act_fwd, stream, &sum.batch);
        !e.empty()) {
      return e;
    }
    add_batch(&sum, sum.batch.data());
  }
  if (site != nullptr) *h = hessian_value(sum);
  return "";
}

}  // namespace

std::string quantize_model(nn::Model& model, std::span<const uint32_t> tokens, int64_t sequences,
                           int64_t seq_len, const ModelPtqOptions& options,
                           const PtqProgress& progress, std::map<std::string, MxTensor>* out) {
  const nn::ModelConfig& c = model.config();
  if (sequences < 1 || seq_len < 1) return "calibration needs at least one sequence of one token";
  if (int64_t(tokens.size()) != sequences * seq_len) {
    return "the calibration tokens do not fill the sequences";
  }
  if (seq_len > c.seq_len) {
    return cat("calibration sequences of ", seq_len, " tokens exceed the model's context ",
               c.seq_len);
  }
  if (options.batch < 1) return "a calibration batch needs at least one sequence";
  const double wide = double(std::max(c.dim, c.hidden));
  if (std::string e =
          io::check_memory(double(sequences) * double(seq_len) * (double(c.dim) + wide) * 4.0 *
                               (options.fp32_model != nullptr ? 2.0 : 1.0),
                           "the calibration set's residual stream and block state");
      !e.empty()) {
    return e;
  }
  nn::Recipe recipe = nn::forward_only(options.recipe);
  recipe.weight_fwd = nn::OperandCast::none();
  const nn::Recipe saved = model.recipe();
  model.set_recipe(recipe);
  model.set_step(0);

  Stream s;
  for (int64_t done = 0; done < sequences; done += options.batch) {
    s.rows.push_back(std::min(options.batch, sequences - done));
  }
  s.x.resize(s.rows.size());
  s.side.resize(s.rows.size());
  std::string error = embed_all(model, tokens, seq_len, &s);
  Stream fp_stream;
  Fp32Side fp;
  if (options.fp32_model != nullptr && error.empty()) {
    if (recipe.act_fwd.kind != nn::OperandCast::Kind::kNone) {
      error = "FP32 targets take a recipe without activation casts";
    } else {
      fp = {options.fp32_model, &fp_stream};
      fp.model->set_recipe(recipe);
      fp.model->set_step(0);
      fp_stream.rows = s.rows;
      fp_stream.x.resize(s.rows.size());
      fp_stream.side.resize(s.rows.size());
      error = embed_all(*fp.model, tokens, seq_len, &fp_stream);
    }
  }

  int64_t total = 0, done = 0;
  for (int64_t l = 0; l < c.n_layers; ++l) {
    for (const StepSites& step : block_steps(model, l)) total += int64_t(step.sites.size());
  }
  nn::Params& params = model.params();
  std::vector<float> h, dequantized, target;
  for (int64_t l = 0; l < c.n_layers && error.empty(); ++l) {
    // Each step runs once per batch, with the weights it uses already quantized, and ends at
    // the input whose Hessian the next weights need.
    for (const StepSites& step : block_steps(model, l)) {
      const LinearSite* site = step.sites.empty() ? nullptr : &step.sites[0];
      CrossSum cross;
      if (error = run_step(model, s, l, step.step, site, seq_len, &h, fp, &cross); !error.empty()) {
        break;
      }
      Fp32Correction correction;
      if (fp.model != nullptr && site != nullptr) {
        if (error = prepare_fp32_correction(h, std::move(cross), options.gptq.damp,
                                            options.gptq.threads, &correction);
            !error.empty()) {
          error = cat(params.find_at(model.linear_weight(l, *site))->name, ": ", error);
          break;
        }
      }
      for (const LinearSite site : step.sites) {
        const nn::ParamView* v = params.find_at(model.linear_weight(l, site));
        MxTensor t;
        std::span<const float> w(params.data() + v->offset, size_t(v->size));
        if (fp.model != nullptr) {
          target.assign(w.begin(), w.end());
          correct_toward_fp32_outputs(target, v->shape[0], correction, options.fp32_target_weight,
                                      options.gptq.threads);
          w = target;
        }
        if (std::string e = gptq_quantize(w, v->shape[0], v->shape[1], h, options.spec,
                                          options.gptq, &t, &dequantized);
            !e.empty()) {
          error = cat(v->name, ": ", e);
          break;
        }
        std::copy(dequantized.begin(), dequantized.end(), params.data() + v->offset);
        (*out)[v->name] = std::move(t);
        if (progress) progress(++done, total, v->name);
      }
      if (!error.empty()) break;
      if (!step.sites.empty()) model.upload_params();
    }
  }
  model.set_recipe(saved);
  return error;
}

}  // namespace mx::ptq
