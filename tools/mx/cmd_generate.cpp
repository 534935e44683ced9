// `mx generate MODEL --prompt TEXT`: samples a continuation with temperature and top-k,
// printing it as it is drawn. MODEL is anything `mx eval` takes; --recipe runs the model with
// a recipe's forward casts (direct cast) instead of FP32.
#include <fmt/format.h>

#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "mx/nn/recipe.h"
#include "mx/train/generate.h"
#include "tools/mx/commands.h"
#include "tools/mx/flag_checks.h"
#include "tools/mx/model_source.h"
#include "tools/mx/run_command.h"

namespace mx::tools {
namespace {

struct GenerateFlags {
  std::string model, prompt, tokenizer, recipe = "fp32";
  int64_t tokens = 200;
  float temperature = 0.8f;
  int top_k = 40;
  uint64_t seed = 1;
  int threads = 0;
  std::string device = "cpu";
  bool unpacked = false, json = false, fast_products = false;
};

// The two largest of a step's logits, largest first.
std::pair<float, float> top_two(const float* logits, int64_t n) {
  float first = -std::numeric_limits<float>::infinity(), second = first;
  for (int64_t i = 0; i < n; ++i) {
    if (logits[i] > first) {
      second = first, first = logits[i];
    } else if (logits[i] > second) {
      second = logits[i];
    }
  }
  return {first, second};
}

void print_json(const std::vector<uint32_t>& tokens, size_t prompt_end, const std::string& text,
                const std::vector<std::pair<float, float>>& top) {
  nlohmann::json j;
  j["prompt_ids"] = std::vector<uint32_t>(tokens.begin(), tokens.begin() + long(prompt_end));
  j["ids"] = std::vector<uint32_t>(tokens.begin() + long(prompt_end), tokens.end());
  j["text"] = text;
  j["top2_logits"] = nlohmann::json::array();
  for (const auto& [first, second] : top) j["top2_logits"].push_back({first, second});
  fmt::print("{}\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

std::string run_generate(const GenerateFlags& f) {
  nn::Recipe recipe;
  if (std::string e = nn::recipe_from_spec(f.recipe, &recipe); !e.empty()) return e;
  ModelSource source;
  if (std::string e = open_model_source(f.model, f.tokenizer,
                                        {f.device, f.threads, f.fast_products}, recipe, &source);
      !e.empty()) {
    return e;
  }
  nn::Model& model = *source.loaded.model;
  model.set_recipe(nn::forward_only(recipe));
  if (!f.unpacked) pack_for_inference(model, source.loaded.stored_mx);
  const data::Tokenizer& tok = *source.tokenizer;
  std::vector<uint32_t> tokens;
  if (tok.bos_id()) tokens.push_back(*tok.bos_id());
  const std::vector<uint32_t> prompt = tok.encode(f.prompt);
  tokens.insert(tokens.end(), prompt.begin(), prompt.end());
  if (tokens.empty()) return "--prompt is empty and the tokenizer has no BOS token to start from";
  train::SampleOptions options;
  options.max_new_tokens = f.tokens;
  options.temperature = f.temperature;
  options.top_k = f.top_k;
  options.seed = f.seed;
  if (tok.eos_id()) options.stop_tokens.push_back(*tok.eos_id());
  if (tok.bos_id()) options.stop_tokens.push_back(*tok.bos_id());
  if (f.json) {
    std::vector<std::pair<float, float>> top;
    const int64_t vocab = model.config().vocab;
    options.on_logits = [&](const float* logits) { top.push_back(top_two(logits, vocab)); };
    const size_t prompt_end = tokens.size();
    if (std::string e = train::generate(model, &tokens, options); !e.empty()) return e;
    print_json(tokens, prompt_end, tok.decode(std::span(tokens).subspan(prompt_end)), top);
    return "";
  }
  fmt::print("{}", f.prompt);
  std::fflush(stdout);
  // Decoding the whole text so far and printing what is new keeps multi-token characters and
  // SentencePiece's leading spaces right.
  const size_t first = tokens.size() - prompt.size();
  std::string shown = tok.decode(std::span(tokens).subspan(first));
  const std::string error = train::generate(model, &tokens, options, [&](uint32_t id) {
    if (std::find(options.stop_tokens.begin(), options.stop_tokens.end(), id) !=
        options.stop_tokens.end()) {
      return;
    }
    const std::string text = tok.decode(std::span(tokens).subspan(first));
    if (text.size() > shown.size() && text.compare(0, shown.size(), shown) == 0) {
      fmt::print("{}", text.substr(shown.size()));
      std::fflush(stdout);
    }
    shown = text;
  });
  fmt::print("\n");
  return error;
}

}  // namespace

void register_generate(CLI::App& app) {
  static GenerateFlags f;
  CLI::App* cmd = app.add_subcommand("generate", "Sample text from a model");
  cmd->add_option("model", f.model,
                  "A training run folder, a model .safetensors, or a llama2.c .bin")
      ->required();
  cmd->add_option("--prompt", f.prompt, "Text to continue");
  cmd->add_option("--tokens", f.tokens, "Tokens to generate")
      ->check(integer_in(0))
      ->capture_default_str();
  cmd->add_option("--temperature", f.temperature, "Sampling temperature (0: greedy)")
      ->check(finite_in(0))
      ->capture_default_str();
  cmd->add_option("--top-k", f.top_k, "Sample among the k likeliest tokens (0: all)")
      ->check(integer_in(0, std::numeric_limits<int>::max()))
      ->capture_default_str();
  cmd->add_option("--seed", f.seed, "Sampling seed")
      ->check(unsigned_integer())
      ->capture_default_str();
  cmd->add_option("--recipe", f.recipe, "Run the model with this recipe's forward casts")
      ->capture_default_str();
  cmd->add_option("--tokenizer", f.tokenizer, "Tokenizer (default: the one the model names)");
  cmd->add_option("--threads", f.threads, "Threads (0: all)")->check(thread_count());
  cmd->add_option("--device", f.device, "cpu, or cuda (bfloat16 activations unless fp32)")
      ->capture_default_str();
  cmd->add_flag("--json", f.json,
                "Print one JSON object at the end: the prompt's and the new token ids, the new "
                "text, and each step's two largest logits");
  add_packing_flags(cmd, &f.unpacked, &f.fast_products);
  cmd->callback([] { run_command("generate", [] { return run_generate(f); }); });
}

}  // namespace mx::tools
