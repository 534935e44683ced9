#include "mx/train/checkpoint.h"

#include <cstring>
#include <nlohmann/json.hpp>

#include "mx/core/rounding.h"
#include "mx/io/cat.h"
#include "mx/io/safetensors.h"
#include "mx/nn/model_file.h"

namespace mx::train {
namespace {

using io::cat;
using nlohmann::json;

constexpr const char* kTrainKey = "mxkit.train";
constexpr const char* kStateKey = "mxkit.state";
constexpr const char* kChecksumKey = "mxkit.checksum";
constexpr const char* kMomentM = "optimizer.m";
constexpr const char* kMomentV = "optimizer.v";

// A 64-bit hash that reads 8 bytes at a time (a byte-wise hash would take seconds on a
// 124M-parameter checkpoint). Every word goes through SplitMix64's finalizer, chained.
class Hasher {
 public:
  void add(std::span<const uint8_t> bytes) {
    size_t i = 0;
    for (; i + 8 <= bytes.size(); i += 8) {
      uint64_t w;
      std::memcpy(&w, bytes.data() + i, 8);
      mix(w);
    }
    uint64_t tail = 0;
    std::memcpy(&tail, bytes.data() + i, bytes.size() - i);
    mix(tail ^ (uint64_t(bytes.size()) << 56));
  }
  void add(const std::string& s) {
    add(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
  }
  std::string hex() const {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h_));
    return buf;
  }

 private:
  void mix(uint64_t w) { h_ = splitmix64_mix(h_ ^ w) + 0x9E3779B97F4A7C15ull; }
  uint64_t h_ = 0x6D786B6974ull;
};

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

std::string checksum_of(const std::vector<io::SafetensorsTensor>& tensors, const std::string& train,
                        const std::string& state, const std::string& model) {
  Hasher h;
  for (const io::SafetensorsTensor& t : tensors) {
    h.add(t.name);
    h.add(t.bytes);
  }
  h.add(train);
  h.add(state);
  h.add(model);
  return h.hex();
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
  std::vector<io::TensorToWrite> tensors;
  std::map<std::string, std::string> meta;
  nn::model_file_contents(config.model_config, params, config.tokenizer, &tensors, &meta);
  const int64_t n = params.count();
  tensors.push_back({kMomentM, "F32", {n}, bytes_of(optimizer.m().data(), n)});
  tensors.push_back({kMomentV, "F32", {n}, bytes_of(optimizer.v().data(), n)});
  meta[kTrainKey] = train_config_to_json(config);
  meta[kStateKey] = state_json(state);
  // The checksum covers the tensors as the reader will list them: by name and bytes.
  std::vector<io::SafetensorsTensor> listed;
  for (const io::TensorToWrite& t : tensors) listed.push_back({t.name, t.dtype, t.shape, t.bytes});
  std::sort(listed.begin(), listed.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  meta[kChecksumKey] =
      checksum_of(listed, meta[kTrainKey], meta[kStateKey], meta[std::string(nn::kModelConfigKey)]);
  return io::write_safetensors(path, tensors, meta);
}

std::string read_checkpoint_config(const std::string& path, TrainConfig* config) {
  io::SafetensorsFile file;
  if (std::string e = io::open_safetensors(path, &file); !e.empty()) return e;
  std::string train;
  if (std::string e = metadata_value(file, kTrainKey, &train); !e.empty()) {
    return cat(path, ": not a training checkpoint (", e, ")");
  }
  if (std::string e = parse_train_config_json(train, config); !e.empty()) {
    return cat(path, ": ", e);
  }
  return "";
}

std::string load_checkpoint(const std::string& path, const TrainConfig& config, nn::Params* params,
                            nn::AdamW* optimizer, RunState* state) {
  io::SafetensorsFile file;
  if (std::string e = io::open_safetensors(path, &file); !e.empty()) return e;
  std::string train, state_text, model, checksum;
  for (auto [key, value] : {std::pair{kTrainKey, &train},
                            {kStateKey, &state_text},
                            {nn::kModelConfigKey.data(), &model},
                            {kChecksumKey, &checksum}}) {
    if (std::string e = metadata_value(file, key, value); !e.empty()) return cat(path, ": ", e);
  }
  std::vector<io::SafetensorsTensor> listed = file.tensors();
  std::sort(listed.begin(), listed.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  if (checksum_of(listed, train, state_text, model) != checksum) {
    return cat(path, ": checksum mismatch (the file is corrupted)");
  }
  if (train != train_config_to_json(config)) {
    return cat(path, ": its training settings differ from this run's");
  }
  RunState s;
  if (std::string e = parse_state_json(state_text, &s); !e.empty()) return cat(path, ": ", e);
  const int64_t n = params->count();
  auto copy = [&](const std::string& name, const std::vector<int64_t>& shape, float* dst) {
    const io::SafetensorsTensor* t = file.find(name);
    if (t == nullptr) return cat(path, ": tensor ", name, " is missing");
    if (t->dtype != "F32" || t->shape != shape) {
      return cat(path, ": tensor ", name, " has the wrong dtype or shape for this model");
    }
    std::memcpy(dst, t->bytes.data(), t->bytes.size());
    return std::string();
  };
  for (const nn::ParamView& v : params->views()) {
    if (std::string e = copy(v.name, v.shape, params->data() + v.offset); !e.empty()) return e;
  }
  if (std::string e = copy(kMomentM, {n}, optimizer->m().data()); !e.empty()) return e;
  if (std::string e = copy(kMomentV, {n}, optimizer->v().data()); !e.empty()) return e;
  optimizer->set_steps(s.adam_steps);
  *state = s;
  return "";
}

}  // namespace mx::train
