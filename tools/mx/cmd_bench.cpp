// `mx bench train --model gpt2-124m --recipe mxfp6 --device cuda`: the speed of training steps
// on random tokens, with model FLOPs utilization and peak memory (mx/train/bench.h).
// `mx bench generate --model gpt2-124m --recipe mxfp4`: the speed of generation, the prompt's
// pass and each new token's (mx/train/generation_bench.h).
#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <optional>

#include <filesystem>

#include "mx/io/memory_budget.h"
#include "mx/nn/devices/devices.h"
#include "mx/nn/model_config.h"
#include "mx/nn/model_file.h"
#include "mx/train/bench.h"
#include "mx/train/generation_bench.h"
#include "tools/mx/commands.h"
#include "tools/mx/flag_checks.h"
#include "tools/mx/model_source.h"
#include "tools/mx/run_command.h"

namespace mx::tools {
namespace {

// The most any count flag takes: far beyond what a benchmark runs, and small enough that a sum
// or product of two (prompt and new tokens, batch and sequence length, 4 x width) fits in 64
// bits. The model's own limits (nn::validate) then say what is too large for a model.
constexpr int64_t kMaxCount = int64_t{1} << 30;

struct BenchFlags {
  std::string model = "tiny", arch = "gpt2", recipe = "bf16", device = "cpu";
  int64_t batch = 8, micro_batch = 0, seq_len = 0, steps = 20, warmup = 3, vocab = 0;
  int64_t layers = 0, dim = 0, heads = 0;  // 0: the preset's
  int threads = 0;
  double peak_tflops = 0;
  bool json = false;
  bool packed_products = false;
  std::string product_algorithms, tune_products;
};

struct Peak {
  double flops;
  const char* what;
};

// Dense peak rates of the GPUs the products run on, by the vendor's datasheet (H100 SXM; the
// H200 has the same compute). Products run on bfloat16 tensor cores except under fp32 (CUDA
// cores) and tf32.
std::optional<Peak> datasheet_peak(const std::string& device, const nn::Recipe& recipe) {
  const bool hopper_sxm = device.find("H200") != std::string::npos ||
                          device.find("H100 80GB HBM3") != std::string::npos ||
                          device.find("H100 SXM") != std::string::npos;
  if (!hopper_sxm) return std::nullopt;
  if (recipe.name == "fp32") return Peak{66.9e12, "float32, datasheet"};
  if (recipe.name == "tf32") return Peak{494.7e12, "TF32 dense, datasheet"};
  return Peak{989.4e12, "bfloat16 dense, datasheet"};
}

std::string run_bench_train(const BenchFlags& f) {
  const std::optional<nn::Arch> arch = nn::parse_arch(f.arch);
  if (!arch) return "--arch must be gpt2 or llama";
  std::optional<nn::ModelConfig> model = nn::model_preset(f.model, *arch);
  if (!model) {
    return fmt::format("unknown --model '{}' for --arch {} (presets: {})", f.model, f.arch,
                       nn::model_preset_list());
  }
  // The presets' vocabularies: bytes, or GPT-2's for the gpt2-* presets.
  if (f.vocab > 0) model->vocab = f.vocab;
  if (f.layers > 0 || f.dim > 0 || f.heads > 0) {
    *model = nn::with_shape(*model, f.layers > 0 ? f.layers : model->n_layers,
                            f.dim > 0 ? f.dim : model->dim, f.heads > 0 ? f.heads : model->n_heads);
  }
  // The benchmark's model starts from random weights, so a longer --seq-len is its context.
  if (f.seq_len > model->seq_len) model->seq_len = f.seq_len;
  train::BenchConfig c;
  c.model = *model;
  if (std::string e = nn::recipe_from_spec(f.recipe, &c.recipe); !e.empty()) return e;
  c.device = {f.device, f.threads, false, 0, f.packed_products, f.product_algorithms};
  c.tuned_products_out = f.tune_products;
  c.batch = f.batch;
  c.micro_batch = f.micro_batch;
  c.seq_len = f.seq_len;
  c.steps = f.steps;
  c.warmup = f.warmup;
  train::BenchResult r;
  if (std::string e = train::bench_training(c, &r); !e.empty()) return e;
  std::optional<Peak> peak = datasheet_peak(r.device, c.recipe);
  if (f.peak_tflops > 0) peak = Peak{f.peak_tflops * 1e12, "--peak-tflops"};
  const double achieved = r.flops_per_token * r.tokens_per_s;
  const int64_t seq_len = r.tokens_per_step / f.batch;
  if (f.json) {
    nlohmann::json j = nlohmann::json::object();
    j["model"] = f.model;
    j["shape"] = nn::describe(c.model);
    j["recipe"] = c.recipe.name;
    j["device"] = r.device;
    j["packed_products"] = f.packed_products;
    j["product_algorithms"] = f.product_algorithms;
    if (!f.tune_products.empty()) j["tuned_products"] = r.tuned_products;
    j["params"] = r.params;
    j["batch"] = f.batch;
    j["seq_len"] = seq_len;
    j["tokens_per_s"] = r.tokens_per_s;
    j["step_ms"] = r.seconds_per_step * 1e3;
    j["flops_per_token"] = r.flops_per_token;
    j["mfu"] = peak ? nlohmann::json(achieved / peak->flops) : nlohmann::json(nullptr);
    j["peak_memory_bytes"] = r.peak_memory;
    fmt::print("{}\n", j.dump());
    return "";
  }
  fmt::print("{} ({} parameters), recipe {}{}, {}: batch {} x {}, {} timed steps\n",
             nn::describe(c.model), r.params, c.recipe.name,
             f.packed_products ? " (packed MX products)" : "", r.device, f.batch, seq_len, f.steps);
  fmt::print("  tokens/s      {:.0f}\n", r.tokens_per_s);
  fmt::print("  step          {:.2f} ms\n", r.seconds_per_step * 1e3);
  fmt::print("  model FLOPs   {:.1f} MFLOP per token (6N + 6LCT), {}\n", r.flops_per_token / 1e6,
             achieved >= 1e12 ? fmt::format("{:.1f} TFLOP/s", achieved / 1e12)
                              : fmt::format("{:.1f} GFLOP/s", achieved / 1e9));
  if (peak) {
    fmt::print("  MFU           {:.1f}% of {:.1f} TFLOP/s ({})\n", 100 * achieved / peak->flops,
               peak->flops / 1e12, peak->what);
  } else {
    fmt::print("  MFU           unknown peak for this device (give --peak-tflops)\n");
  }
  fmt::print("  peak memory   {}\n", io::format_bytes(double(r.peak_memory)));
  if (!f.tune_products.empty()) {
    fmt::print("  products      {} algorithms tuned in the warm-up, written to {}\n",
               r.tuned_products, f.tune_products);
  } else if (!f.product_algorithms.empty()) {
    fmt::print("  products      the algorithms of {}\n", f.product_algorithms);
  }
  return "";
}

struct GenerateBenchFlags {
  std::string model = "tiny", arch = "gpt2", recipe = "fp32", device = "cpu";
  int64_t prompt_tokens = 16, tokens = 32, vocab = 0;
  int threads = 0;
  bool no_cache = false, unpacked = false, json = false, fast_products = false;
  // What shapes a preset; a model file has its own shape.
  std::vector<const CLI::Option*> preset_options;
};

// A preset with random weights, or a model file (anything `mx eval` reads).
std::string open_bench_model(const GenerateBenchFlags& f, const nn::Recipe& recipe,
                             std::unique_ptr<nn::Model>* out,
                             std::map<std::string, QuantSpec>* stored_mx) {
  std::unique_ptr<nn::Backend> backend;
  if (std::string e = nn::make_backend({f.device, f.threads, f.fast_products}, recipe, &backend);
      !e.empty()) {
    return e;
  }
  const std::optional<nn::Arch> arch = nn::parse_arch(f.arch);
  if (!arch) return "--arch must be gpt2 or llama";
  if (std::optional<nn::ModelConfig> preset = nn::model_preset(f.model, *arch)) {
    if (f.vocab > 0) preset->vocab = f.vocab;
    if (std::string e = nn::validate(*preset); !e.empty()) return e;
    *out = std::make_unique<nn::Model>(*preset, std::move(backend));
    (*out)->params().init(1);
    (*out)->upload_params();
    return "";
  }
  std::error_code ec;
  if (!std::filesystem::exists(f.model, ec)) {
    return fmt::format("--model '{}' is neither a preset ({}) nor a file", f.model,
                       nn::model_preset_list());
  }
  for (const CLI::Option* option : f.preset_options) {
    if (option->count() > 0) {
      return fmt::format("{} applies to a preset, not to a model file", option->get_name());
    }
  }
  nn::LoadedModel loaded;
  if (std::string e = nn::load_model_file(f.model, &loaded, std::move(backend)); !e.empty()) {
    return e;
  }
  *out = std::move(loaded.model);
  *stored_mx = std::move(loaded.stored_mx);
  return "";
}

std::string run_bench_generate(const GenerateBenchFlags& f) {
  nn::Recipe recipe;
  if (std::string e = nn::recipe_from_spec(f.recipe, &recipe); !e.empty()) return e;
  std::unique_ptr<nn::Model> model;
  std::map<std::string, QuantSpec> stored_mx;
  if (std::string e = open_bench_model(f, recipe, &model, &stored_mx); !e.empty()) return e;
  model->set_recipe(nn::forward_only(recipe));
  if (!f.unpacked) pack_for_inference(*model, stored_mx);
  if (f.prompt_tokens + f.tokens > model->config().seq_len) {
    return fmt::format("--prompt-tokens + --tokens must not exceed the model's context of {}",
                       model->config().seq_len);
  }
  train::GenerationBenchConfig c;
  c.prompt_tokens = f.prompt_tokens;
  c.new_tokens = f.tokens;
  c.use_cache = !f.no_cache;
  train::GenerationBenchResult r;
  if (std::string e = train::bench_generation(*model, c, &r); !e.empty()) return e;
  if (f.json) {
    nlohmann::json j = nlohmann::json::object();
    j["model"] = f.model;
    j["recipe"] = recipe.name;
    j["device"] = r.device;
    j["params"] = model->params().count();
    j["prompt_tokens"] = f.prompt_tokens;
    j["new_tokens"] = f.tokens;
    j["cache"] = r.cached;
    j["packed_weights"] = model->weights_packed();
    j["fast_products"] = f.fast_products;
    j["weight_bytes"] = model->weight_bytes();
    j["first_token_ms"] = r.first_token_s * 1e3;
    j["tokens_per_s"] = r.tokens_per_s;
    j["peak_memory_bytes"] = r.peak_memory;
    j["resident_bytes"] = r.resident;
    fmt::print("{}\n", j.dump());
    return "";
  }
  fmt::print("{} ({} parameters), recipe {}, {}: {} prompt tokens, {} new, {}, {}\n",
             nn::describe(model->config()), model->params().count(), recipe.name, r.device,
             f.prompt_tokens, f.tokens,
             r.cached ? "key/value cache" : "the window re-run for each token",
             !model->weights_packed() ? "FP32 weights"
             : f.fast_products        ? "packed MX weights, fast products"
                                      : "packed MX weights");
  fmt::print("  first token   {:.1f} ms (the prompt's pass and the first draw)\n",
             r.first_token_s * 1e3);
  fmt::print("  tokens/s      {:.1f} (each later token)\n", r.tokens_per_s);
  fmt::print("  weights       {} in memory (FP32: {})\n",
             io::format_bytes(double(model->weight_bytes())),
             io::format_bytes(double(model->params().size() * int64_t(sizeof(float)))));
  fmt::print("  peak memory   {}\n", io::format_bytes(double(r.peak_memory)));
  fmt::print("  resident      {} at the end\n", io::format_bytes(double(r.resident)));
  return "";
}

void register_bench_generate(CLI::App* bench) {
  static GenerateBenchFlags f;
  CLI::App* cmd = bench->add_subcommand(
      "generate", "Time to first token and tokens/s of greedy generation from a random prompt");
  cmd->add_option("--model", f.model,
                  "Model preset (" + nn::model_preset_list() + "; random weights) or a model file")
      ->capture_default_str();
  f.preset_options = {
      cmd->add_option("--arch", f.arch, "gpt2 or llama, for a preset")->capture_default_str(),
      cmd->add_option("--vocab", f.vocab, "Vocabulary size of a preset (default: the preset's)")
          ->check(integer_in(1, kMaxCount))};
  cmd->add_option("--recipe", f.recipe, "Run the model with this recipe's forward casts")
      ->capture_default_str();
  cmd->add_option("--device", f.device, "cpu or cuda")->capture_default_str();
  cmd->add_option("--prompt-tokens", f.prompt_tokens, "Tokens in the prompt")
      ->check(integer_in(1, kMaxCount))
      ->capture_default_str();
  cmd->add_option("--tokens", f.tokens, "New tokens (the rate is timed after the first)")
      ->check(integer_in(2, kMaxCount))
      ->capture_default_str();
  cmd->add_flag("--no-cache", f.no_cache, "Re-run the whole window for each token");
  add_packing_flags(cmd, &f.unpacked, &f.fast_products);
  cmd->add_option("--threads", f.threads, "CPU threads (0: all)")->check(thread_count());
  cmd->add_flag("--json", f.json, "Print the figures as one JSON object");
  cmd->callback([] { run_command("bench generate", [] { return run_bench_generate(f); }); });
}

}  // namespace

void register_bench(CLI::App& app) {
  CLI::App* bench = app.add_subcommand("bench", "Measure the speed of mxkit's work");
  bench->require_subcommand(1);
  static BenchFlags f;
  CLI::App* cmd = bench->add_subcommand("train",
                                        "Tokens/s, model FLOPs utilization and peak memory of "
                                        "training steps on random tokens");
  cmd->add_option("--model", f.model, "Model preset: " + nn::model_preset_list())
      ->capture_default_str();
  cmd->add_option("--arch", f.arch, "gpt2 or llama")->capture_default_str();
  cmd->add_option("--recipe", f.recipe, "A recipe preset, JSON text or a JSON file")
      ->capture_default_str();
  cmd->add_option("--device", f.device, "cpu or cuda")->capture_default_str();
  cmd->add_option("--batch", f.batch, "Sequences per step")
      ->check(integer_in(1, kMaxCount))
      ->capture_default_str();
  cmd->add_option("--micro-batch", f.micro_batch, "Sequences per pass (default: the whole batch)")
      ->check(integer_in(1, kMaxCount));
  cmd->add_option("--seq-len", f.seq_len,
                  "Tokens per sequence (default: the model's context; a longer one becomes the "
                  "context)")
      ->check(integer_in(1, kMaxCount));
  cmd->add_option("--vocab", f.vocab, "Vocabulary size (default: the preset's)")
      ->check(integer_in(1, kMaxCount));
  cmd->add_option("--layers", f.layers, "Layers, in place of the preset's")
      ->check(integer_in(1, kMaxCount));
  cmd->add_option("--dim", f.dim, "Model width, in place of the preset's (MLP width follows)")
      ->check(integer_in(1, kMaxCount));
  cmd->add_option("--heads", f.heads, "Attention heads, in place of the preset's")
      ->check(integer_in(1, kMaxCount));
  cmd->add_option("--steps", f.steps, "Timed steps")
      ->check(integer_in(1, kMaxCount))
      ->capture_default_str();
  cmd->add_option("--warmup", f.warmup, "Untimed steps first")
      ->check(integer_in(0, kMaxCount))
      ->capture_default_str();
  cmd->add_option("--threads", f.threads, "CPU threads (0: all)")->check(thread_count());
  add_packed_products_flag(cmd, &f.packed_products);
  add_product_algorithms_option(cmd, &f.product_algorithms);
  cmd->add_option("--tune-products", f.tune_products,
                  "With --device cuda, time cuBLASLt's candidates for each product in the first "
                  "warm-up step, take the fastest, and write the choices to FILE for "
                  "--product-algorithms")
      ->type_name("FILE")
      ->excludes("--product-algorithms");
  cmd->add_option("--peak-tflops", f.peak_tflops, "The device's peak, for the MFU")
      ->check(finite_in(0));
  cmd->add_flag("--json", f.json, "Print the figures as one JSON object");
  cmd->callback([] { run_command("bench train", [] { return run_bench_train(f); }); });
  register_bench_generate(bench);
}

}  // namespace mx::tools
