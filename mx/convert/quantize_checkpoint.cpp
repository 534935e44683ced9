#include "mx/convert/quantize_checkpoint.h"
#include "mx/io/atomic_file.h"

#include <deque>
#include <map>
#include <optional>
#include <vector>

#include "mx/convert/dtypes.h"
#include "mx/core/block_grid.h"
#include "mx/io/cat.h"
#include "mx/io/container.h"
#include "mx/io/content_checksum.h"
#include "mx/io/gguf.h"
#include "mx/io/llama2c.h"
#include "mx/io/mx_safetensors.h"
#include "mx/io/safetensors.h"

namespace mx::convert {

using io::Container;
using io::guess_container;
using io::has_gguf_extension;
namespace {

using io::cat;
using io::format_shape;

// The input's tensors, whatever file they come from; they point into the open file.
struct Input {
  io::SafetensorsFile safetensors;
  io::Llama2cCheckpoint llama2c;
  std::vector<io::TensorToWrite> tensors;
  std::map<std::string, std::string> metadata;
};

std::string open_input(const std::string& path, Input* in) {
  switch (guess_container(path)) {
    case Container::kGguf:
      return cat(path, ": a GGUF file (mx quantize reads safetensors or llama2.c checkpoints)");
    case Container::kLlama2c:
      if (std::string e = io::read_llama2c(path, &in->llama2c); !e.empty()) return e;
      return io::llama2c_named_tensors(in->llama2c, &in->tensors, &in->metadata);
    case Container::kSafetensors:
      break;
  }
  if (std::string e = io::open_safetensors(path, &in->safetensors); !e.empty()) return e;
  for (const io::SafetensorsTensor& t : in->safetensors.tensors()) {
    in->tensors.push_back({t.name, t.dtype, t.shape, t.bytes});
  }
  in->metadata = in->safetensors.metadata();
  // MX tensors already in the input are copied as their stored parts; each must be whole.
  if (std::string e = io::check_mx_tensors(in->safetensors); !e.empty()) return cat(path, ": ", e);
  return "";
}

struct Planned {
  const io::TensorToWrite* tensor = nullptr;
  std::optional<DType> dtype;  // set when the tensor is to be quantized
  TensorOutcome outcome;
};

// Decides each tensor's fate and rejects what cannot be written, before any work is done.
std::string plan(const std::vector<io::TensorToWrite>& tensors, const std::string& path,
                 const QuantizeOptions& o, bool gguf, std::vector<Planned>* out) {
  TensorSelector selector;
  if (std::string e = make_selector(o.selection, &selector); !e.empty()) return e;
  std::vector<std::string> names;
  for (const io::TensorToWrite& t : tensors) names.push_back(t.name);
  if (std::string e = selector.check_matches(names, path); !e.empty()) return e;
  for (const io::TensorToWrite& t : tensors) {
    Planned p;
    p.tensor = &t;
    p.outcome.name = t.name;
    p.outcome.dtype = t.dtype;
    p.outcome.shape = t.shape;
    p.outcome.bytes_in = t.bytes.size();
    p.outcome.bytes_out = t.bytes.size();
    const std::string where = cat(path, ": tensor '", t.name, "' ", format_shape(t.shape));
    if (gguf && t.shape.size() > 4) {
      return cat(where, ": GGUF tensors have at most 4 dimensions");
    }
    if (gguf && !ggml_type_of(t.dtype)) {
      return cat(where, ": dtype ", t.dtype, " has no GGUF type");
    }
    const std::optional<DType> dtype = io::safetensors_float_dtype(t.dtype);
    if (!dtype) {
      p.outcome.action = TensorAction::kCopied;
    } else if (std::string why = selector.reason_to_keep(t.name, t.shape); !why.empty()) {
      p.outcome.action = TensorAction::kKept;
      p.outcome.reason = why;
    } else if (gguf && (t.shape.empty() || t.shape.back() % 32 != 0)) {
      p.outcome.action = TensorAction::kKept;
      p.outcome.reason = "last dimension not a multiple of 32";
    } else {
      std::string error;
      (void)make_block_grid(t.shape, o.spec, &error);
      if (!error.empty()) return cat(where, ": ", error);
      p.outcome.action = TensorAction::kConverted;
      p.dtype = dtype;
    }
    out->push_back(std::move(p));
  }
  return "";
}

std::vector<io::GgufKv> metadata_kvs(const std::map<std::string, std::string>& metadata) {
  std::vector<io::GgufKv> kvs;
  for (const auto& [key, value] : metadata) kvs.push_back({key, io::GgufValue{value}});
  return kvs;
}

// A GGUF tensor with the safetensors tensor's bytes; a 0-D tensor becomes [1] (GGUF needs a
// dimension).
io::GgufTensorToWrite plain_gguf_tensor(const io::TensorToWrite& t) {
  io::GgufTensorToWrite w;
  w.name = t.name;
  w.dims.assign(t.shape.rbegin(), t.shape.rend());
  if (w.dims.empty()) w.dims = {1};
  w.type = *ggml_type_of(t.dtype);
  w.bytes = t.bytes;
  return w;
}

}  // namespace

std::string check_gguf_spec(const QuantSpec& s) {
  if (s.format == ElementFormat::kE2M1 && !s.is_tiled() && s.block_size == 32 && s.axis == -1 &&
      !s.asymmetric) {
    return "";
  }
  return cat(
      "GGUF holds MX tensors only as MXFP4 (--format mxfp4_e2m1, blocks of 32 along axis -1, "
      "symmetric); got ",
      describe(s));
}

std::string quantize_checkpoint(const std::string& input_path, const std::string& output_path,
                                const QuantizeOptions& o, const ProgressCallback& progress,
                                ConvertReport* report) {
  report->tensors.clear();
  const bool gguf = has_gguf_extension(output_path);
  if (gguf) {
    if (std::string e = check_gguf_spec(o.spec); !e.empty()) return e;
  }
  if (std::string e = io::check_output_file(output_path); !e.empty()) return e;
  Input in;
  if (std::string e = open_input(input_path, &in); !e.empty()) return e;
  std::vector<Planned> planned;
  if (std::string e = plan(in.tensors, input_path, o, gguf, &planned); !e.empty()) return e;

  // Deques: what the writer's spans point into must not move as more is added.
  std::deque<MxTensor> quantized;
  std::deque<std::vector<uint8_t>> gguf_storage;
  std::vector<io::TensorToWrite> st_tensors;
  std::vector<io::GgufTensorToWrite> gguf_tensors;
  std::map<std::string, std::string> metadata = in.metadata;
  const int64_t total = static_cast<int64_t>(planned.size());
  for (int64_t i = 0; i < total; ++i) {
    Planned& p = planned[size_t(i)];
    const io::TensorToWrite& t = *p.tensor;
    const std::string where = cat(input_path, ": tensor '", t.name, "'");
    if (!p.dtype) {
      if (gguf) {
        gguf_tensors.push_back(plain_gguf_tensor(t));
      } else {
        st_tensors.push_back({t.name, t.dtype, t.shape, t.bytes});
      }
    } else {
      MxTensor& m = quantized.emplace_back();
      if (std::string e = cpu::quantize(t.bytes.data(), *p.dtype, t.shape, o.spec, &m, o.cpu);
          !e.empty()) {
        return cat(where, ": ", e);
      }
      if (gguf) {
        io::GgufTensorToWrite w;
        if (std::string e = io::gguf_mxfp4_tensor(t.name, m, &gguf_storage.emplace_back(), &w);
            !e.empty()) {
          return cat(input_path, ": ", e);
        }
        p.outcome.bytes_out = w.bytes.size();
        gguf_tensors.push_back(std::move(w));
        quantized.pop_back();  // the ggml bytes are a copy
      } else {
        const size_t before = st_tensors.size();
        if (std::string e = io::add_mx_tensor(t.name, m, &st_tensors, &metadata); !e.empty()) {
          return cat(where, ": ", e);
        }
        p.outcome.bytes_out = 0;
        for (size_t k = before; k < st_tensors.size(); ++k) {
          p.outcome.bytes_out += st_tensors[k].bytes.size();
        }
      }
    }
    if (progress) progress(i + 1, total, t.name);
  }
  if (gguf) {
    metadata.erase(std::string(io::kChecksumKey));  // it covers safetensors contents only
  } else {
    io::refresh_checksum(st_tensors, &metadata);
  }
  const std::string e = gguf ? io::write_gguf(output_path, metadata_kvs(metadata), gguf_tensors)
                             : io::write_safetensors(output_path, st_tensors, metadata);
  if (!e.empty()) return e;
  for (Planned& p : planned) report->tensors.push_back(std::move(p.outcome));
  return "";
}

}  // namespace mx::convert
