#include "mx/train/train_config.h"

#include <algorithm>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "mx/data/tokenizer.h"
#include "mx/io/cat.h"
#include "mx/nn/model_file.h"

namespace mx::train {
namespace {

using io::cat;
using nlohmann::json;

// Reads field `key` of `j` into `*v`, refusing a missing field or a wrong JSON type.
template <class T>
std::string get(const json& j, const char* key, T* v) {
  auto it = j.find(key);
  if (it == j.end()) return cat("train config: \"", key, "\" is missing");
  try {
    *v = it->get<T>();
  } catch (const json::exception&) {
    return cat("train config: \"", key, "\" has the wrong type");
  }
  return "";
}

}  // namespace

std::string train_config_to_json(const TrainConfig& c) {
  json j = json::object();
  j["model"] = c.model;
  j["init"] = c.init;
  j["distill"] = c.distill;
  j["init_moments"] = c.init_moments;
  j["model_config"] = json::parse(nn::model_config_to_json(c.model_config));
  j["recipe"] = json::parse(nn::recipe_to_json(c.recipe));
  j["data"] = c.data;
  j["tokenizer"] = c.tokenizer;
  j["steps"] = c.steps;
  j["batch"] = c.batch;
  j["micro_batch"] = c.micro_batch;
  j["seq_len"] = c.seq_len;
  j["seed"] = c.seed;
  j["beta1"] = c.adamw.beta1;
  j["beta2"] = c.adamw.beta2;
  j["eps"] = c.adamw.eps;
  j["weight_decay"] = c.adamw.weight_decay;
  j["max_lr"] = c.max_lr;
  j["min_lr"] = c.min_lr;
  j["warmup"] = c.warmup;
  j["grad_clip"] = c.grad_clip;
  j["eval_every"] = c.eval_every;
  j["eval_batches"] = c.eval_batches;
  j["checkpoint_every"] = c.checkpoint_every;
  return j.dump();
}

std::string parse_train_config_json(std::string_view text, TrainConfig* out) {
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return "train config: not a JSON object";
  TrainConfig c;
  // Fields added after the first runs: absent in those runs' configs.
  const bool has_micro_batch = j.contains("micro_batch"), has_init = j.contains("init"),
             has_distill = j.contains("distill"), has_init_moments = j.contains("init_moments");
  if (j.size() + (has_micro_batch ? 0 : 1) + (has_init ? 0 : 1) + (has_distill ? 0 : 1) +
          (has_init_moments ? 0 : 1) !=
      json::parse(train_config_to_json(c)).size()) {
    return "train config: unexpected number of fields";
  }
  if (has_micro_batch) {
    if (std::string e = get(j, "micro_batch", &c.micro_batch); !e.empty()) return e;
  }
  if (has_init) {
    if (std::string e = get(j, "init", &c.init); !e.empty()) return e;
  }
  if (has_distill) {
    if (std::string e = get(j, "distill", &c.distill); !e.empty()) return e;
  }
  if (has_init_moments) {
    if (std::string e = get(j, "init_moments", &c.init_moments); !e.empty()) return e;
  }
  auto model_config = j.find("model_config");
  auto recipe = j.find("recipe");
  if (model_config == j.end() || recipe == j.end()) {
    return "train config: \"model_config\" or \"recipe\" is missing";
  }
  if (std::string e = nn::parse_model_config_json(model_config->dump(), &c.model_config);
      !e.empty()) {
    return e;
  }
  if (std::string e = nn::parse_recipe_json(recipe->dump(), &c.recipe); !e.empty()) return e;
  for (std::string e :
       {get(j, "model", &c.model), get(j, "data", &c.data), get(j, "tokenizer", &c.tokenizer),
        get(j, "steps", &c.steps), get(j, "batch", &c.batch), get(j, "seq_len", &c.seq_len),
        get(j, "seed", &c.seed), get(j, "beta1", &c.adamw.beta1), get(j, "beta2", &c.adamw.beta2),
        get(j, "eps", &c.adamw.eps), get(j, "weight_decay", &c.adamw.weight_decay),
        get(j, "max_lr", &c.max_lr), get(j, "min_lr", &c.min_lr), get(j, "warmup", &c.warmup),
        get(j, "grad_clip", &c.grad_clip), get(j, "eval_every", &c.eval_every),
        get(j, "eval_batches", &c.eval_batches), get(j, "checkpoint_every", &c.checkpoint_every)}) {
    if (!e.empty()) return e;
  }
  if (std::string e = validate(c); !e.empty()) return e;
  *out = std::move(c);
  return "";
}

std::string validate(const TrainConfig& c) {
  if (std::string e = nn::validate(c.model_config); !e.empty()) return e;
  if (c.steps < 1) return "--steps must be at least 1";
  if (c.batch < 1) return "--batch must be at least 1";
  if (c.micro_batch < 0 || c.micro_batch > c.batch ||
      (c.micro_batch > 0 && c.batch % c.micro_batch != 0)) {
    return cat("--micro-batch must divide --batch (", c.batch, ")");
  }
  if (c.seq_len < 1 || c.seq_len > c.model_config.seq_len) {
    return cat("--seq-len must be between 1 and the model's context, ", c.model_config.seq_len);
  }
  if (c.warmup < 0) return "--warmup must not be negative";
  if (c.distill && c.init.empty()) return "--distill needs --init: the model to learn from";
  if (c.init_moments && c.init.empty()) {
    return "--init-moments needs --init: the run whose moments to continue";
  }
  if (!(c.max_lr > 0) || !(c.min_lr >= 0) || c.min_lr > c.max_lr) {
    return "learning rates need 0 <= min_lr <= max_lr and max_lr > 0";
  }
  if (c.eval_every < 1 || c.eval_batches < 1 || c.checkpoint_every < 1) {
    return "--eval-every, --eval-batches and --checkpoint-every must be at least 1";
  }
  return "";
}

std::string make_train_config(std::string_view model, nn::Arch arch, std::string_view recipe,
                              std::string_view tokenizer, int64_t steps,
                              const data::DataPaths& paths, TrainConfig* out) {
  const std::optional<nn::ModelConfig> preset = nn::model_preset(model, arch);
  if (!preset) {
    return cat("unknown --model '", model, "' for --arch ", nn::arch_name(arch),
               " (presets: ", nn::model_preset_list(), ")");
  }
  TrainConfig c;
  c.model = std::string(model);
  c.model_config = *preset;
  if (std::string e = nn::recipe_from_spec(recipe, &c.recipe); !e.empty()) return e;
  c.tokenizer = !tokenizer.empty()    ? std::string(tokenizer)
                : preset->vocab > 256 ? "gpt2"
                                      : "bytes";
  std::unique_ptr<data::Tokenizer> loaded;
  if (std::string e = data::load_tokenizer(c.tokenizer, paths, &loaded); !e.empty()) return e;
  c.model_config.vocab = loaded->vocab_size();
  c.steps = steps;
  c.seq_len = preset->seq_len;
  c.warmup = std::min<int64_t>(100, steps / 10);
  *out = std::move(c);
  return "";
}

std::string make_finetune_config(const std::string& init, std::string_view recipe,
                                 std::string_view tokenizer, int64_t steps,
                                 const data::DataPaths& paths, TrainConfig* out) {
  nn::LoadedModel loaded;
  if (std::string e = nn::load_model_file(init, &loaded, 1); !e.empty()) return "--init: " + e;
  TrainConfig c;
  c.model = "init";
  c.init = std::filesystem::absolute(init).string();
  c.model_config = loaded.model->config();
  if (std::string e = nn::recipe_from_spec(recipe, &c.recipe); !e.empty()) return e;
  c.tokenizer = !tokenizer.empty() ? std::string(tokenizer) : loaded.tokenizer;
  if (c.tokenizer.empty()) {
    return cat("--init: ", init, " names no tokenizer; give one with --tokenizer");
  }
  std::unique_ptr<data::Tokenizer> tokens;
  if (std::string e = data::load_tokenizer(c.tokenizer, paths, &tokens); !e.empty()) return e;
  if (std::string e = data::check_tokenizer_fits_model(*tokens, c.model_config.vocab); !e.empty()) {
    return cat("--init: ", e);
  }
  c.steps = steps;
  c.seq_len = c.model_config.seq_len;
  c.warmup = std::min<int64_t>(100, steps / 10);
  *out = std::move(c);
  return "";
}

nn::LrSchedule schedule_of(const TrainConfig& c) {
  return nn::LrSchedule{c.max_lr, c.min_lr, c.warmup, c.steps};
}

int64_t pass_rows(const TrainConfig& c) {
  return c.micro_batch > 0 ? c.micro_batch : c.batch;
}

int64_t passes_per_step(const TrainConfig& c) {
  return c.batch / pass_rows(c);
}

}  // namespace mx::train
