#include "mx/train/checkpoint.h"

#include <cstring>
#include <nlohmann/json.hpp>

#include "mx/io/cat.h"
#include "mx/io/content_checksum.h"
#include "mx/io/safetensors.h"
#include "mx/nn/model_file.h"

namespace mx::train {
namespace {

using io::cat;
using nlohmann::json;

constexpr const char* kTrainKey = "mxkit.train";
constexpr const char* kStateKey = "mxkit.state";
constexpr const char* kMomentM = "optimizer.m";
constexpr const char* kMomentV = "optimizer.v";

std::string state_json(const RunState& s) {
  json j = json::object();
  j["step"] = s.step;
  j["adam_steps"] = s.adam_steps;
  j["sampler_seed"] = s.sampler.seed;
  j["sampler_draws"] = s.sampler.draws;
  return j.dump();
}

std::string parse_state_json(const std::string& text, RunState* out) {
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || j.size() != 4) return "run state is not the expected JSON object";
  try {
    out->step = j.at("step").get<int64_t>();
    out->adam_steps = j.at("adam_steps").get<int64_t>();
    out->sampler.seed = j.at("sampler_seed").get<uint64_t>();
    out->sampler.draws = j.at("sampler_draws").get<uint64_t>();
  } catch (const json::exception&) {
    return "run state is missing a field or has a wrong type";
  }
  if (out->step < 0 || out->adam_steps < 0) return "run state has a negative step";
  return "";
}

std::span<const uint8_t> bytes_of(const float* p, size_t n) {
  return {reinterpret_cast<const uint8_t*>(p), n * sizeof(float)};
}

std::string metadata_value(const io::SafetensorsFile& file, const char* key, std::string* out) {
  auto it = file.metadata().find(key);
  if (it == file.metadata().end()) return cat("metadata \"", key, "\" is missing");
  *out = it->second;
  return "";
}

}  // namespace

std::string save_checkpoint(const std::string& path, const TrainConfig& config,
                            const nn::Params& params, const nn::AdamW& optimizer,
                            const RunState& state) {
  return save_checkpoint(path, config, params, optimizer.m(), optimizer.v(), state);
}

std::string save_checkpoint(const std::string& path, const TrainConfig& config,
                            const nn::Params& params, std::span<const float> m,
                            std::span<const float> v, const RunState& state) {
  std::vector<io::TensorToWrite> tensors;
  std::map<std::string, std::string> meta;
  nn::model_file_contents(config.model_config, params, config.tokenizer, &tensors, &meta);
  const int64_t n = params.count();
  if (int64_t(m.size()) != n || int64_t(v.size()) != n) {
    return cat("the optimizer's moments do not match the model's ", n, " parameters");
  }
  tensors.push_back({kMomentM, "F32", {n}, bytes_of(m.data(), n)});
  tensors.push_back({kMomentV, "F32", {n}, bytes_of(v.data(), n)});
  meta[kTrainKey] = train_config_to_json(config);
  meta[kStateKey] = state_json(state);
  io::add_checksum(tensors, &meta);
  return io::write_safetensors(path, tensors, meta);
}

std::string Checkpoint::open(const std::string& path) {
  path_ = path;
  if (std::string e = io::open_safetensors(path, &file_); !e.empty()) return e;
  return check();
}

std::string Checkpoint::parse(std::span<const uint8_t> bytes) {
  path_ = "checkpoint";
  if (std::string e = io::parse_safetensors(bytes, &file_); !e.empty()) return e;
  return check();
}

std::string Checkpoint::check() {
  const std::string& path = path_;
  std::string train, state_text, model;
  if (std::string e = metadata_value(file_, kTrainKey, &train); !e.empty()) {
    return cat(path, ": not a training checkpoint (", e, ")");
  }
  if (file_.metadata().count(std::string(io::kChecksumKey)) == 0) {
    return cat(path, ": metadata \"", io::kChecksumKey, "\" is missing");
  }
  for (auto [key, value] :
       {std::pair{kStateKey, &state_text}, {nn::kModelConfigKey.data(), &model}}) {
    if (std::string e = metadata_value(file_, key, value); !e.empty()) return cat(path, ": ", e);
  }
  if (std::string e = parse_train_config_json(train, &config_); !e.empty()) {
    return cat(path, ": ", e);
  }
  if (model != nn::model_config_to_json(config_.model_config)) {
    return cat(path, ": its model config and its training settings disagree");
  }
  if (std::string e = parse_state_json(state_text, &state_); !e.empty()) return cat(path, ": ", e);
  if (std::string e = nn::check_file_holds(file_, config_.model_config); !e.empty()) {
    return cat(path, ": ", e);
  }
  return "";
}

std::string Checkpoint::load(nn::Params* params, nn::AdamW* optimizer) const {
  if (std::string e = load(params, optimizer->m().data(), optimizer->v().data()); !e.empty()) {
    return e;
  }
  optimizer->set_steps(state_.adam_steps);
  return "";
}

std::string Checkpoint::load(nn::Params* params, float* m, float* v) const {
  for (const nn::ParamView& v : params->views()) {
    if (std::string e = copy_tensor(v.name, v.shape, params->data() + v.offset); !e.empty()) {
      return e;
    }
  }
  return load_moments(params->count(), m, v);
}

std::string Checkpoint::load_moments(int64_t count, float* m, float* v) const {
  if (m != nullptr) {
    if (std::string e = copy_tensor(kMomentM, {count}, m); !e.empty()) return e;
  }
  return copy_tensor(kMomentV, {count}, v);
}

std::string Checkpoint::copy_tensor(const std::string& name, const std::vector<int64_t>& shape,
                                    float* dst) const {
  const io::SafetensorsTensor* t = file_.find(name);
  if (t == nullptr) return cat(path_, ": tensor ", name, " is missing");
  if (t->dtype != "F32" || t->shape != shape) {
    return cat(path_, ": tensor ", name, " has the wrong dtype or shape for this model");
  }
  std::memcpy(dst, t->bytes.data(), t->bytes.size());
  return "";
}

}  // namespace mx::train
