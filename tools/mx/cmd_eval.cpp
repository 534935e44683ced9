// `mx eval MODEL --recipe mxint8`: direct-cast evaluation. The weights and activations of a
// trained FP32 model are cast with the recipe's forward specs; the command reports validation
// loss and perplexity, and the KL divergence and top-1 agreement of the next-token
// distribution against the same model in FP32. Several recipes may be given, comma-separated.
#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "mx/train/evaluate.h"
#include "tools/mx/commands.h"
#include "tools/mx/direct_cast_table.h"
#include "tools/mx/flag_checks.h"
#include "tools/mx/model_source.h"
#include "tools/mx/run_command.h"

namespace mx::tools {
namespace {

struct EvalFlags {
  std::string model;
  std::string recipes = "mxint8";
  std::string data, split = "val", tokenizer, reference;
  int64_t batch = 8, seq_len = 0, batches = 16;
  int threads = 0;
  std::string device = "cpu";
  bool json = false, unpacked = false, fast_products = false;
};

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

nlohmann::json result_json(const std::string& recipe, const train::DirectCastResult& r) {
  nlohmann::json j = nlohmann::json::object();
  j["recipe"] = recipe;
  j["loss"] = r.loss;
  j["ppl"] = r.ppl;
  j["kl"] = r.kl;
  j["top1"] = r.top1;
  j["fp32_loss"] = r.reference_loss;
  j["tokens"] = r.tokens;
  return j;
}

std::string run_eval(const EvalFlags& f) {
  std::vector<std::pair<std::string, nn::Recipe>> recipes;
  // JSON text holds commas of its own: it is one recipe.
  const std::vector<std::string> specs =
      nn::is_recipe_json_text(f.recipes) ? std::vector{f.recipes} : split_commas(f.recipes);
  for (const std::string& name : specs) {
    nn::Recipe r;
    if (std::string e = nn::recipe_from_spec(name, &r); !e.empty()) return e;
    // A JSON file's recipe goes by the name it gives itself ("custom" when it gives none: then
    // by the file's path).
    recipes.emplace_back(r.name == "custom" && !nn::is_recipe_json_text(name) ? name : r.name, r);
  }
  if (recipes.empty()) return "--recipe names no recipe";
  if (f.split != "val" && f.split != "all") return "--split must be val or all";
  ModelSource source;
  // On a GPU, one activation type serves the FP32 reference and every recipe's casts: float32
  // when every recipe is fp32, bfloat16 otherwise.
  const nn::Recipe& precision =
      recipes.size() == 1 ? recipes[0].second : *nn::recipe_preset("bf16");
  if (std::string e = open_model_source(f.model, f.tokenizer,
                                        {f.device, f.threads, f.fast_products}, precision, &source);
      !e.empty()) {
    return e;
  }
  nn::Model& model = *source.loaded.model;
  nn::LoadedModel reference;
  if (!f.reference.empty()) {
    std::unique_ptr<nn::Backend> backend;
    if (std::string e = nn::make_backend({f.device, f.threads}, precision, &backend); !e.empty()) {
      return e;
    }
    if (std::string e = nn::load_model_file(f.reference, &reference, std::move(backend));
        !e.empty()) {
      return e;
    }
    if (reference.model->config().vocab != model.config().vocab) {
      return fmt::format("--reference {} has a vocabulary of {}, the model one of {}", f.reference,
                         reference.model->config().vocab, model.config().vocab);
    }
  }
  EvalTokens tokens;
  if (std::string e =
          open_eval_tokens(f.model, f.data, f.split == "all", *source.tokenizer, &tokens);
      !e.empty()) {
    return e;
  }
  int64_t context = model.config().seq_len;
  if (reference.model) context = std::min(context, reference.model->config().seq_len);
  int64_t seq_len = 0;
  if (std::string e = eval_seq_len(
          f.seq_len, context, reference.model ? "the model's or its reference's" : "the model's",
          tokens, &seq_len);
      !e.empty())
    return e;
  const train::EvalWindow window{f.batch, seq_len, f.batches, f.threads};
  std::vector<train::DirectCastResult> results;
  for (const auto& [name, recipe] : recipes) {
    // The recipe's weight cast made once and kept packed (on the CPU), not at every pass, or,
    // for a recipe without one, an MX file's own blocks; the FP32 copies stay, since every batch
    // also runs the FP32 reference.
    if (!f.unpacked) {
      const nn::Recipe saved = model.recipe();
      model.set_recipe(nn::forward_only(recipe));
      if (recipe.weight_fwd.is_none()) {
        model.pack_stored_weights(source.loaded.stored_mx);
      } else {
        model.pack_weights();
      }
      model.set_recipe(saved);
    }
    train::DirectCastResult result;
    if (std::string e = train::direct_cast_eval(model, recipe, tokens.view, window, &result,
                                                reference.model.get());
        !e.empty()) {
      return e;
    }
    results.push_back(result);
  }
  if (f.json) {
    if (results.size() == 1) {
      fmt::print("{}\n", result_json(recipes[0].first, results[0]).dump());
    } else {
      nlohmann::json j = nlohmann::json::object();
      j["fp32_loss"] = results[0].reference_loss;
      j["results"] = nlohmann::json::array();
      for (size_t i = 0; i < results.size(); ++i) {
        j["results"].push_back(result_json(recipes[i].first, results[i]));
      }
      fmt::print("{}\n", j.dump());
    }
    return "";
  }
  fmt::print("Direct cast of {} ({}){}, {} tokens of {}\n", f.model, source.loaded.kind,
             f.reference.empty() ? "" : fmt::format(" against {}", f.reference), results[0].tokens,
             tokens.name);
  std::vector<std::pair<std::string, train::DirectCastResult>> rows;
  for (size_t i = 0; i < results.size(); ++i) rows.emplace_back(recipes[i].first, results[i]);
  print_direct_cast_table(rows);
  return "";
}

}  // namespace

void register_eval(CLI::App& app) {
  static EvalFlags f;
  CLI::App* cmd = app.add_subcommand(
      "eval", "Direct-cast evaluation: loss, perplexity, KL and top-1 against FP32");
  cmd->add_option("model", f.model,
                  "A training run folder, a model .safetensors, or a llama2.c .bin")
      ->required();
  cmd->add_option("--recipe", f.recipes,
                  "Recipes to cast with, comma-separated (or one recipe as JSON text)")
      ->capture_default_str();
  cmd->add_option("--data", f.data,
                  "sotu, study, tinyshakespeare, wikitext2, a .txt file, a folder, or one that mx "
                  "corpus build or mx tokenizer shards wrote (default: the run's validation "
                  "split)");
  cmd->add_option("--split", f.split, "val (held-out part of --data) or all")
      ->capture_default_str();
  cmd->add_option("--tokenizer", f.tokenizer, "Tokenizer (default: the one the model names)");
  cmd->add_option("--reference", f.reference,
                  "Measure KL, top-1 and the FP32 loss against this model instead (e.g. the one "
                  "a quantized file came from)");
  cmd->add_option("--batch", f.batch, "Windows per batch")
      ->check(integer_in(1))
      ->capture_default_str();
  cmd->add_option("--seq-len", f.seq_len, "Tokens per window (default: context, at most 256)")
      ->check(integer_in(1));
  cmd->add_option("--batches", f.batches, "Batches to evaluate (0: all)")
      ->check(integer_in(0))
      ->capture_default_str();
  cmd->add_option("--threads", f.threads, "Threads (0: all)")->check(thread_count());
  cmd->add_option("--device", f.device, "cpu, or cuda (bfloat16 activations unless fp32)")
      ->capture_default_str();
  cmd->add_flag("--json", f.json, "Print the figures as one JSON object");
  add_packing_flags(cmd, &f.unpacked, &f.fast_products);
  cmd->callback([] { run_command("eval", [] { return run_eval(f); }); });
}

}  // namespace mx::tools
