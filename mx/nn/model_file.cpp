#include "mx/nn/model_file.h"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <span>

#include "mx/core/dtype.h"
#include "mx/io/cat.h"
#include "mx/io/container.h"
#include "mx/io/content_checksum.h"
#include "mx/io/gguf.h"
#include "mx/io/llama2c.h"
#include "mx/io/mx_safetensors.h"
#include "mx/io/read_file.h"
#include "mx/io/safetensors.h"
#include "mx/kernels/cpu/quantize.h"
#include "mx/nn/cpu/cpu_backend.h"
#include "mx/nn/gguf_model.h"
#include "mx/nn/hf_model.h"

namespace mx::nn {
namespace {

using io::cat;
using io::format_shape;
using nlohmann::json;

// The config of a file llama2c_to_safetensors wrote.
std::string config_from_llama2c_metadata(const std::map<std::string, std::string>& meta,
                                         ModelConfig* c) {
  auto number = [&](const char* key, int64_t* v) {
    auto it = meta.find(std::string("llama2c.") + key);
    if (it == meta.end()) return cat("metadata llama2c.", key, " is missing");
    try {
      *v = std::stoll(it->second);
    } catch (const std::exception&) {
      return cat("metadata llama2c.", key, " is not a number");
    }
    return std::string();
  };
  c->arch = Arch::kLlama;
  for (auto [key, field] : {std::pair{"dim", &c->dim},
                            {"hidden_dim", &c->hidden},
                            {"n_layers", &c->n_layers},
                            {"n_heads", &c->n_heads},
                            {"n_kv_heads", &c->n_kv_heads},
                            {"vocab_size", &c->vocab},
                            {"seq_len", &c->seq_len}}) {
    if (std::string e = number(key, field); !e.empty()) return e;
  }
  auto shared = meta.find("llama2c.shared_classifier");
  c->tied = shared == meta.end() || shared->second != "false";
  return validate(*c);
}

ModelConfig config_from_llama2c(const io::Llama2cConfig& l) {
  ModelConfig c;
  c.arch = Arch::kLlama;
  c.vocab = l.vocab_size, c.dim = l.dim, c.n_layers = l.n_layers, c.n_heads = l.n_heads;
  c.n_kv_heads = l.n_kv_heads, c.hidden = l.hidden_dim, c.seq_len = l.seq_len;
  c.tied = l.shared_classifier;
  return c;
}

// Fills every parameter of `model` from the named tensors: plain float tensors, or MX tensors
// (NAME.blocks/.scales with "mx.NAME" metadata) dequantized to F32.
std::string fill_params(const std::vector<io::SafetensorsTensor>& tensors,
                        const io::SafetensorsFile* file, Model* model,
                        std::map<std::string, QuantSpec>* stored_mx = nullptr) {
  std::map<std::string, const io::SafetensorsTensor*> by_name;
  for (const io::SafetensorsTensor& t : tensors) by_name[t.name] = &t;
  Params& params = model->params();
  for (const ParamView& v : params.views()) {
    float* dst = params.data() + v.offset;
    auto it = by_name.find(v.name);
    if (it == by_name.end()) {
      if (file != nullptr && file->metadata().count(io::mx_metadata_key(v.name)) != 0) {
        MxTensor t;
        if (std::string e = io::load_mx_tensor(*file, v.name, &t); !e.empty()) return e;
        if (t.shape != v.shape) {
          return cat("tensor ", v.name, " has shape ", format_shape(t.shape), ", the model needs ",
                     format_shape(v.shape));
        }
        if (std::string e = mx::cpu::dequantize(t, DType::kF32, dst); !e.empty()) return e;
        if (stored_mx != nullptr) (*stored_mx)[v.name] = t.spec;
        continue;
      }
      return cat("tensor ", v.name, " is missing");
    }
    const io::SafetensorsTensor& t = *it->second;
    if (file != nullptr && file->metadata().count(io::mx_metadata_key(v.name)) != 0) {
      return cat("the file has both a plain tensor '", v.name, "' and an MX tensor '", v.name, "'");
    }
    if (t.shape != v.shape) {
      return cat("tensor ", v.name, " has shape ", format_shape(t.shape), ", the model needs ",
                 format_shape(v.shape));
    }
    const std::optional<DType> dtype = io::safetensors_float_dtype(t.dtype);
    if (!dtype) return cat("tensor ", v.name, " has dtype ", t.dtype, ", not F32, BF16 or F16");
    for (int64_t i = 0; i < v.size; ++i) dst[i] = load_as_float(t.bytes.data(), *dtype, i);
  }
  // An MX tensor that no parameter reads is a damaged or foreign file, which the readers of MX
  // tensors (inspect, dequantize) refuse too.
  if (file != nullptr) {
    for (const auto& [key, value] : file->metadata()) {
      if (key.rfind("mx.", 0) == 0 && params.find(key.substr(3)) == nullptr) {
        return cat("MX tensor '", key.substr(3), "' (metadata '", key,
                   "') is not a parameter of this model");
      }
    }
  }
  return "";
}

// Errors name `path` once (read_llama2c's own do already).
std::string load_llama2c_bin(const std::string& path, LoadedModel* out,
                             std::unique_ptr<Backend> backend) {
  io::Llama2cCheckpoint ckpt;
  if (std::string e = io::read_llama2c(path, &ckpt); !e.empty()) return e;
  std::vector<io::TensorToWrite> named;
  std::map<std::string, std::string> meta;
  if (std::string e = io::llama2c_named_tensors(ckpt, &named, &meta); !e.empty()) {
    return cat(path, ": ", e);
  }
  const ModelConfig config = config_from_llama2c(ckpt.config());
  if (std::string e = validate(config); !e.empty()) return cat(path, ": ", e);
  std::vector<io::SafetensorsTensor> tensors;
  for (const io::TensorToWrite& t : named) tensors.push_back({t.name, t.dtype, t.shape, t.bytes});
  auto model = std::make_unique<Model>(config, std::move(backend));
  if (std::string e = fill_params(tensors, nullptr, model.get()); !e.empty()) {
    return cat(path, ": ", e);
  }
  model->upload_params();
  out->model = std::move(model);
  out->kind = "llama2c";
  const std::filesystem::path tok =
      std::filesystem::path(path).parent_path() / cat("tok", std::to_string(config.vocab), ".bin");
  std::error_code ec;
  out->tokenizer = std::filesystem::exists(tok, ec) ? tok.string() : "";
  return "";
}

// A config.json or shard index larger than this is none: refused before it is read.
constexpr std::uintmax_t kMaxJsonBytes = std::uintmax_t{16} << 20;

// A small JSON file's text, or an error naming it.
std::string read_json_file(const std::filesystem::path& path, std::string* out) {
  std::error_code ec;
  const std::uintmax_t bytes = std::filesystem::file_size(path, ec);
  if (ec) return cat("cannot read ", path.string());
  if (bytes > kMaxJsonBytes) return cat(path.string(), " is too large");
  return io::read_whole_file(path, out);
}

// A Hugging Face checkpoint (hf_model.h): its files (one, or the shards of an index) and the
// config.json in `folder`; the tokenizer GPT-2's for GPT-2's vocabulary, a Llama's
// tokenizer.model when it is in the folder.
std::string load_hf_checkpoint(std::span<const io::SafetensorsFile* const> files,
                               const std::filesystem::path& folder, LoadedModel* out,
                               std::unique_ptr<Backend> backend) {
  namespace fs = std::filesystem;
  std::string text;
  std::error_code ec;
  if (!fs::exists(folder / "config.json", ec)) {
    return cat("a Hugging Face checkpoint needs the config.json beside it (",
               (folder / "config.json").string(), ")");
  }
  if (std::string e = read_json_file(folder / "config.json", &text); !e.empty()) return e;
  ModelConfig config;
  if (std::string e = hf_config(text, &config); !e.empty()) return e;
  std::vector<std::vector<float>> storage;
  std::vector<io::SafetensorsTensor> tensors;
  if (std::string e = hf_engine_tensors(files, config, &storage, &tensors); !e.empty()) return e;
  auto model = std::make_unique<Model>(config, std::move(backend));
  if (std::string e = fill_params(tensors, nullptr, model.get()); !e.empty()) return e;
  model->upload_params();
  out->model = std::move(model);
  const bool gpt2 = config.arch == Arch::kGpt2;
  out->kind = gpt2 ? "hf-gpt2" : "hf-llama";
  const fs::path sentencepiece = folder / "tokenizer.model";
  if (gpt2) {
    out->tokenizer = config.vocab == 50257 ? "gpt2" : "";
  } else {
    out->tokenizer = fs::exists(sentencepiece, ec) ? sentencepiece.string() : "";
  }
  return "";
}

// A checkpoint sharded by transformers: the index names the files, all in its folder.
std::string load_hf_shards(const std::filesystem::path& index, LoadedModel* out,
                           std::unique_ptr<Backend> backend) {
  std::string text;
  if (std::string e = read_json_file(index, &text); !e.empty()) return e;
  std::vector<std::string> names;
  if (std::string e = hf_shard_names(text, &names); !e.empty()) return e;
  std::vector<std::unique_ptr<io::SafetensorsFile>> shards;
  std::vector<const io::SafetensorsFile*> files;
  for (const std::string& name : names) {
    shards.push_back(std::make_unique<io::SafetensorsFile>());
    if (std::string e =
            io::open_safetensors((index.parent_path() / name).string(), shards.back().get());
        !e.empty()) {
      return e;
    }
    files.push_back(shards.back().get());
  }
  return load_hf_checkpoint(files, index.parent_path(), out, std::move(backend));
}

}  // namespace

std::string model_config_to_json(const ModelConfig& c) {
  json j = json::object();
  j["arch"] = std::string(arch_name(c.arch));
  j["vocab"] = c.vocab;
  j["dim"] = c.dim;
  j["n_layers"] = c.n_layers;
  j["n_heads"] = c.n_heads;
  j["n_kv_heads"] = c.n_kv_heads;
  j["hidden"] = c.hidden;
  j["seq_len"] = c.seq_len;
  j["tied"] = c.tied;
  return j.dump();
}

std::string parse_model_config_json(std::string_view text, ModelConfig* out) {
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return "model config is not a JSON object";
  ModelConfig c;
  int found = 0;
  for (const auto& [key, value] : j.items()) {
    ++found;
    if (key == "arch") {
      const std::optional<Arch> arch =
          value.is_string() ? parse_arch(value.get<std::string>()) : std::nullopt;
      if (!arch) return "model config: arch must be \"gpt2\" or \"llama\"";
      c.arch = *arch;
    } else if (key == "tied") {
      if (!value.is_boolean()) return "model config: tied must be true or false";
      c.tied = value.get<bool>();
    } else {
      int64_t* field = key == "vocab"        ? &c.vocab
                       : key == "dim"        ? &c.dim
                       : key == "n_layers"   ? &c.n_layers
                       : key == "n_heads"    ? &c.n_heads
                       : key == "n_kv_heads" ? &c.n_kv_heads
                       : key == "hidden"     ? &c.hidden
                       : key == "seq_len"    ? &c.seq_len
                                             : nullptr;
      if (field == nullptr) return cat("model config: unknown key \"", key, "\"");
      if (!value.is_number_integer()) return cat("model config: ", key, " must be an integer");
      *field = value.get<int64_t>();
    }
  }
  if (found != 9) return "model config: expected the 9 keys arch, vocab, dim, n_layers, ...";
  if (std::string e = validate(c); !e.empty()) return cat("model config: ", e);
  *out = c;
  return "";
}

void model_file_contents(const ModelConfig& config, const Params& params,
                         std::string_view tokenizer, std::vector<io::TensorToWrite>* tensors,
                         std::map<std::string, std::string>* metadata) {
  tensors->clear();
  for (const ParamView& v : params.views()) {
    const auto* bytes = reinterpret_cast<const uint8_t*>(params.data() + v.offset);
    tensors->push_back({v.name, "F32", v.shape, {bytes, size_t(v.size) * sizeof(float)}});
  }
  *metadata = {{"format", "pt"},
               {std::string(kModelConfigKey), model_config_to_json(config)},
               {std::string(kTokenizerKey), std::string(tokenizer)}};
}

std::string save_model_file(const std::string& path, const ModelConfig& config,
                            const Params& params, std::string_view tokenizer) {
  std::vector<io::TensorToWrite> tensors;
  std::map<std::string, std::string> meta;
  model_file_contents(config, params, tokenizer, &tensors, &meta);
  io::add_checksum(tensors, &meta);
  return io::write_safetensors(path, tensors, meta);
}

std::string save_model_file_mx(const std::string& path, const ModelConfig& config,
                               const Params& params, std::string_view tokenizer,
                               const std::map<std::string, MxTensor>& mx) {
  std::vector<io::TensorToWrite> all, tensors;
  std::map<std::string, std::string> meta;
  model_file_contents(config, params, tokenizer, &all, &meta);
  for (const io::TensorToWrite& t : all) {
    if (mx.count(t.name) == 0) tensors.push_back(t);
  }
  for (const auto& [name, t] : mx) {
    const ParamView* v = params.find(name);
    if (v == nullptr) return cat("the model has no parameter ", name);
    if (t.shape != v->shape) {
      return cat("MX tensor ", name, " has shape ", format_shape(t.shape), ", the model needs ",
                 format_shape(v->shape));
    }
    if (std::string e = io::add_mx_tensor(name, t, &tensors, &meta); !e.empty()) return e;
  }
  io::add_checksum(tensors, &meta);
  return io::write_safetensors(path, tensors, meta);
}

std::string check_file_holds(const io::SafetensorsFile& file, const ModelConfig& c) {
  if (std::string e = validate(c); !e.empty()) return cat("model config: ", e);
  // Every block has at least 9 tensors: the layer count is bounded by the file before a single
  // name is listed.
  const int64_t held = int64_t(file.tensors().size());
  if (c.n_layers > held / 9) {
    return cat("model config: ", c.n_layers, " layers cannot fit in a file of ", held, " tensors");
  }
  const Params shapes(c, /*allocate=*/false);
  for (const ParamView& v : shapes.views()) {
    std::vector<int64_t> shape;
    if (const io::SafetensorsTensor* t = file.find(v.name); t != nullptr) {
      shape = t->shape;
    } else if (auto it = file.metadata().find(io::mx_metadata_key(v.name));
               it != file.metadata().end()) {
      QuantSpec spec;
      if (std::string e = io::parse_mx_spec_json(it->second, &shape, &spec); !e.empty()) {
        return cat("metadata '", it->first, "': ", e);
      }
    } else {
      return cat("tensor ", v.name, " is missing");
    }
    if (shape != v.shape) {
      return cat("tensor ", v.name, " has shape ", format_shape(shape), ", the model needs ",
                 format_shape(v.shape));
    }
  }
  return "";
}

std::string load_model_file(const std::string& path, LoadedModel* out, int threads) {
  return load_model_file(path, out, std::make_unique<CpuBackend>(threads));
}

std::string load_model_file(const std::string& path_in, LoadedModel* out,
                            std::unique_ptr<Backend> backend) {
  namespace fs = std::filesystem;
  std::string path = path_in;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    // A run's folder, or a Hugging Face checkpoint's (one file, or shards and their index).
    const fs::path folder = path;
    path = (folder / "checkpoint.safetensors").string();
    if (!fs::exists(path, ec) && fs::exists(folder / "config.json", ec)) {
      path = (folder / "model.safetensors").string();
      if (!fs::exists(path, ec)) path = (folder / "model.safetensors.index.json").string();
    }
  }
  if (path.ends_with(".safetensors.index.json")) {
    if (std::string e = load_hf_shards(path, out, std::move(backend)); !e.empty()) {
      return cat(path, ": ", e);
    }
    return "";
  }
  switch (io::guess_container(path)) {
    case io::Container::kLlama2c:
      return load_llama2c_bin(path, out, std::move(backend));
    case io::Container::kGguf: {
      io::GgufFile file;
      if (std::string e = io::open_gguf(path, &file); !e.empty()) return e;
      if (std::string e = load_gguf_model(file, path, out, std::move(backend)); !e.empty()) {
        return cat(path, ": ", e);
      }
      return "";
    }
    case io::Container::kSafetensors:
      break;
  }
  io::SafetensorsFile file;
  if (std::string e = io::open_safetensors(path, &file); !e.empty()) return e;
  if (is_hf_checkpoint(file)) {
    const io::SafetensorsFile* files[] = {&file};
    if (std::string e =
            load_hf_checkpoint(files, fs::path(path).parent_path(), out, std::move(backend));
        !e.empty()) {
      return cat(path, ": ", e);
    }
    return "";
  }
  if (std::string e = load_model_safetensors(file, out, std::move(backend)); !e.empty()) {
    return cat(path, ": ", e);
  }
  if (out->kind == "llama2c-safetensors") {
    const fs::path guess = fs::path(path).parent_path() /
                           cat("tok", std::to_string(out->model->config().vocab), ".bin");
    if (fs::exists(guess, ec)) out->tokenizer = guess.string();
  }
  return "";
}

std::string load_model_safetensors(const io::SafetensorsFile& file, LoadedModel* out,
                                   std::unique_ptr<Backend> backend) {
  const auto& meta = file.metadata();
  ModelConfig config;
  auto it = meta.find(std::string(kModelConfigKey));
  std::string kind = "mxkit";
  if (it != meta.end()) {
    if (std::string e = parse_model_config_json(it->second, &config); !e.empty()) return e;
  } else if (meta.count("llama2c.dim") != 0) {
    if (std::string e = config_from_llama2c_metadata(meta, &config); !e.empty()) return e;
    kind = "llama2c-safetensors";
  } else {
    return "no model config (metadata \"mxkit.model\" or \"llama2c.*\")";
  }
  if (std::string e = check_file_holds(file, config); !e.empty()) return e;
  auto model = std::make_unique<Model>(config, std::move(backend));
  std::map<std::string, QuantSpec> stored_mx;
  if (std::string e = fill_params(file.tensors(), &file, model.get(), &stored_mx); !e.empty()) {
    return e;
  }
  model->upload_params();
  out->model = std::move(model);
  out->stored_mx = std::move(stored_mx);
  out->kind = kind;
  auto tok = meta.find(std::string(kTokenizerKey));
  out->tokenizer = tok != meta.end() ? tok->second : "";
  return "";
}

}  // namespace mx::nn
