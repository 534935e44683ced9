#include "mx/train/model_gguf.h"

#include <deque>

#include "mx/convert/dtypes.h"
#include "mx/convert/quantize_checkpoint.h"
#include "mx/core/quantize_ref.h"
#include "mx/data/gguf_tokenizer.h"
#include "mx/io/atomic_file.h"
#include "mx/io/cat.h"
#include "mx/io/gguf.h"
#include "mx/nn/gguf_model.h"

namespace mx::train {
namespace {

using convert::TensorAction;
using io::cat;

// Why a tensor is not MXFP4 ("" when it is to be).
std::string reason_to_keep(const nn::GgufModelTensor& t, const ModelGgufOptions& o,
                           const convert::TensorSelector& selector) {
  if (!o.quantize) return "not quantizing";
  if (std::string why = selector.reason_to_keep(t.params.front(), t.shape); !why.empty()) {
    return why;
  }
  if (t.shape.back() % 32 != 0) return "last dimension not a multiple of 32";
  return "";
}

// The stored blocks of `t`'s parameters stacked by rows (as gather_gguf_tensor stacks their
// values): `*found` false when none is stored.
std::string stacked_stored(const nn::GgufModelTensor& t,
                           const std::map<std::string, MxTensor>& stored, bool* found,
                           MxTensor* out) {
  size_t present = 0;
  for (const std::string& name : t.params) present += stored.count(name);
  *found = present > 0;
  if (present == 0) return "";
  if (present != t.params.size()) {
    return cat(t.name, " stacks quantized and unquantized parameters");
  }
  *out = MxTensor{};
  out->shape = t.shape;
  for (size_t i = 0; i < t.params.size(); ++i) {
    const std::string& name = t.params[i];
    const MxTensor& part = stored.at(name);
    if (part.shape.empty() || part.shape.back() != t.shape.back()) {
      return cat(name, ": quantized shape does not match ", t.name);
    }
    if (i == 0) {
      out->spec = part.spec;
    } else if (!(part.spec == out->spec)) {
      return cat(t.name, " stacks parameters quantized with different specs");
    }
    out->elements.insert(out->elements.end(), part.elements.begin(), part.elements.end());
    out->scales.insert(out->scales.end(), part.scales.begin(), part.scales.end());
  }
  if (std::string e = convert::check_gguf_spec(out->spec); !e.empty()) return cat(t.name, ": ", e);
  if (std::string e = check_consistent(*out); !e.empty()) return cat(t.name, ": ", e);
  return "";
}

}  // namespace

std::string write_model_gguf(const nn::LoadedModel& loaded, const std::string& model_path,
                             const std::string& out_path, const ModelGgufOptions& o,
                             const convert::ProgressCallback& progress,
                             convert::ConvertReport* report) {
  report->tensors.clear();
  if (o.quantize && o.stored == nullptr) {
    if (std::string e = convert::check_gguf_spec(o.spec); !e.empty()) return e;
  }
  if (std::string e = io::check_output_file(out_path); !e.empty()) return e;
  convert::TensorSelector selector;
  if (std::string e = convert::make_selector(o.selection, &selector); !e.empty()) return e;
  const nn::ModelConfig& config = loaded.model->config();
  const std::string tokenizer = o.tokenizer.empty() ? loaded.tokenizer : o.tokenizer;
  if (tokenizer.empty()) {
    return cat(model_path, " names no tokenizer, which llama.cpp needs; pass --tokenizer");
  }
  std::vector<io::GgufKv> kvs = nn::gguf_model_kvs(config);
  std::vector<io::GgufKv> vocab;
  if (std::string e = data::gguf_tokenizer_kvs(tokenizer, data::data_paths_from_environment(),
                                               config.vocab, &vocab);
      !e.empty()) {
    return cat(model_path, ": ", e);
  }
  kvs.insert(kvs.end(), vocab.begin(), vocab.end());

  const nn::Params& params = loaded.model->params();
  const std::vector<nn::GgufModelTensor> layout = nn::gguf_model_tensors(config);
  if (o.quantize && o.stored == nullptr) {
    std::vector<std::string> names;
    for (const nn::GgufModelTensor& t : layout) names.push_back(t.params.front());
    if (std::string e = selector.check_matches(names, model_path); !e.empty()) return e;
  }
  std::deque<std::vector<uint8_t>> storage;  // the writer's spans point into it
  std::vector<io::GgufTensorToWrite> tensors;
  for (size_t i = 0; i < layout.size(); ++i) {
    const nn::GgufModelTensor& t = layout[i];
    const std::vector<float> values = nn::gather_gguf_tensor(params, t);
    convert::TensorOutcome outcome;
    outcome.name = t.name;
    outcome.dtype = "F32";
    outcome.shape = t.shape;
    outcome.bytes_in = values.size() * sizeof(float);
    io::GgufTensorToWrite w;
    bool stored = false;
    MxTensor blocks;
    if (o.stored != nullptr) {
      if (std::string e = stacked_stored(t, *o.stored, &stored, &blocks); !e.empty()) return e;
    }
    if (stored && t.shape.back() % 32 != 0) {
      // ggml's MXFP4 rows hold whole blocks: store the blocks' decoded values instead.
      const std::vector<float> decoded = dequantize_ref(blocks);
      const DType type = t.shape.size() == 1 ? DType::kF32 : o.float_type;
      w.name = t.name;
      w.dims.assign(t.shape.rbegin(), t.shape.rend());
      w.type = *convert::ggml_type_of(convert::safetensors_name(type));
      w.bytes = storage.emplace_back(convert::encode_floats(decoded, type));
      outcome.action = TensorAction::kKept;
      outcome.reason = "last dimension not a multiple of 32: its MX values, decoded";
    } else if (stored) {
      if (std::string e = io::gguf_mxfp4_tensor(t.name, blocks, &storage.emplace_back(), &w);
          !e.empty()) {
        return e;
      }
      outcome.action = TensorAction::kConverted;
    } else if (std::string why =
                   o.stored != nullptr ? "not quantized" : reason_to_keep(t, o, selector);
               why.empty()) {
      MxTensor m;
      if (std::string e = cpu::quantize(values.data(), DType::kF32, t.shape, o.spec, &m, o.cpu);
          !e.empty()) {
        return cat(t.name, ": ", e);
      }
      if (std::string e = io::gguf_mxfp4_tensor(t.name, m, &storage.emplace_back(), &w);
          !e.empty()) {
        return e;
      }
      outcome.action = TensorAction::kConverted;
    } else {
      const DType type = t.shape.size() == 1 ? DType::kF32 : o.float_type;
      w.name = t.name;
      w.dims.assign(t.shape.rbegin(), t.shape.rend());
      w.type = *convert::ggml_type_of(convert::safetensors_name(type));
      w.bytes = storage.emplace_back(convert::encode_floats(values, type));
      outcome.action = TensorAction::kKept;
      outcome.reason = why;
    }
    outcome.bytes_out = w.bytes.size();
    tensors.push_back(std::move(w));
    report->tensors.push_back(std::move(outcome));
    if (progress) progress(int64_t(i) + 1, int64_t(layout.size()), t.name);
  }
  return io::write_gguf(out_path, kvs, tensors);
}

}  // namespace mx::train
