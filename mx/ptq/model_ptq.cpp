#include "mx/ptq/model_ptq.h"

#include <algorithm>
#include <vector>

#include "mx/io/cat.h"
#include "mx/io/memory_budget.h"
#include "mx/kernels/cpu/quantize.h"
#include "mx/nn/cast_streams.h"
#include "mx/nn/cpu/matmul.h"
#include "mx/ptq/hessian.h"

namespace mx::ptq {
namespace {

using io::cat;
using nn::LinearSite;

// The linear layers of a block in the order their inputs become final: those that share an
// input share its Hessian (q, k and v; gate and up).
std::vector<std::vector<LinearSite>> site_groups(const nn::Model& model, int64_t layer) {
  std::vector<std::vector<LinearSite>> groups = {{LinearSite::kQ, LinearSite::kK, LinearSite::kV},
                                                 {LinearSite::kAttnOut},
                                                 {LinearSite::kFc, LinearSite::kUp},
                                                 {LinearSite::kProj}};
  for (auto& g : groups) {
    std::erase_if(g, [&](LinearSite s) { return model.linear_weight(layer, s) < 0; });
  }
  return groups;
}

const nn::ParamView* view_at(const nn::Params& params, int64_t offset) {
  for (const nn::ParamView& v : params.views()) {
    if (v.offset == offset) return &v;
  }
  return nullptr;
}

// The residual stream of every calibration batch, on the host.
struct Stream {
  std::vector<std::vector<float>> x;  // per batch, [rows * seq_len, dim]
  std::vector<int64_t> rows;          // sequences per batch
};

std::string embed_all(nn::Model& model, std::span<const uint32_t> tokens, int64_t seq_len,
                      Stream* s) {
  const int64_t dim = model.config().dim;
  for (size_t b = 0, first = 0; b < s->rows.size(); first += size_t(s->rows[b] * seq_len), ++b) {
    s->x[b].resize(size_t(s->rows[b] * seq_len * dim));
    if (std::string e = model.embed(tokens.data() + first, s->rows[b], seq_len, s->x[b].data());
        !e.empty()) {
      return e;
    }
  }
  return "";
}

// H = X^T X of the input at `site` of block `layer` over every batch, as its product reads it
// under the model's recipe (the act_fwd cast of that site's stream).
std::string collect_hessian(nn::Model& model, const Stream& s, int64_t layer, LinearSite site,
                            int64_t seq_len, int threads, std::vector<float>* h) {
  const int64_t k = site == LinearSite::kProj ? model.config().hidden : model.config().dim;
  h->assign(size_t(k * k), 0.0f);
  std::vector<float> x, input, scratch;
  const uint64_t stream =
      nn::operand_stream(nn::stream_id(0, int(layer), int(site)), nn::LinearOperand::kActFwd);
  for (size_t b = 0; b < s.x.size(); ++b) {
    x = s.x[b];
    const int64_t rows = s.rows[b] * seq_len;
    if (std::string e = model.forward_block(layer, x.data(), s.rows[b], seq_len); !e.empty()) {
      return e;
    }
    if (std::string e = model.linear_input(layer, site, &input); !e.empty()) return e;
    std::string error;
    const float* cast = nn::cpu::cast_operand(input.data(), rows, k, 1, model.recipe().act_fwd,
                                              "act_fwd", stream, scratch, &error);
    if (!error.empty()) return error;
    accumulate_hessian(h->data(), cast, rows, k, threads);
  }
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
  if (std::string e = io::check_memory(double(sequences) * double(seq_len) * double(c.dim) * 4.0,
                                       "the calibration set's residual stream");
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
  std::string error = embed_all(model, tokens, seq_len, &s);

  int64_t total = 0, done = 0;
  for (int64_t l = 0; l < c.n_layers; ++l) {
    for (const auto& g : site_groups(model, l)) total += int64_t(g.size());
  }
  nn::Params& params = model.params();
  std::vector<float> h, dequantized;
  for (int64_t l = 0; l < c.n_layers && error.empty(); ++l) {
    for (const auto& group : site_groups(model, l)) {
      if (group.empty()) continue;
      if (error = collect_hessian(model, s, l, group[0], seq_len, options.gptq.threads, &h);
          !error.empty()) {
        break;
      }
      for (const LinearSite site : group) {
        const nn::ParamView* v = view_at(params, model.linear_weight(l, site));
        MxTensor t;
        const std::span<const float> w(params.data() + v->offset, size_t(v->size));
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
      model.upload_params();
    }
    // The block's output with all of its weights quantized feeds the next block.
    for (size_t b = 0; b < s.x.size() && error.empty(); ++b) {
      error = model.forward_block(l, s.x[b].data(), s.rows[b], seq_len);
    }
  }
  model.set_recipe(saved);
  return error;
}

}  // namespace mx::ptq
