#include "mx/convert/dequantize_checkpoint.h"
#include "mx/io/atomic_file.h"

#include <deque>
#include <map>
#include <set>
#include <vector>

#include "mx/convert/dtypes.h"
#include "mx/core/block_grid.h"
#include "mx/io/cat.h"
#include "mx/io/container.h"
#include "mx/io/content_checksum.h"
#include "mx/io/gguf.h"
#include "mx/io/mx_safetensors.h"
#include "mx/io/safetensors.h"

namespace mx::convert {

using io::Container;
using io::guess_container;
namespace {

using io::cat;

// What the output is built from; the spans point into the input's mapping or `storage`, so
// the input stays open here until the output is written.
struct Output {
  io::SafetensorsFile safetensors_input;
  io::GgufFile gguf_input;
  std::deque<std::vector<uint8_t>> storage;
  std::vector<io::TensorToWrite> tensors;
  std::map<std::string, std::string> metadata;
};

std::string decode(const std::string& name, const MxTensor& t, const DequantizeOptions& o,
                   Output* out) {
  const size_t n = static_cast<size_t>(element_count(t.shape));
  std::vector<uint8_t>& bytes = out->storage.emplace_back();
  if (o.dtype == DType::kF16) {
    // The CPU decoder writes float32 or bfloat16; float32 is exact, so one rounding follows.
    std::vector<float> values(n);
    if (std::string e = cpu::dequantize(t, DType::kF32, values.data(), o.cpu); !e.empty()) {
      return cat("tensor '", name, "': ", e);
    }
    bytes = encode_floats(values, DType::kF16);
  } else {
    bytes.resize(n * static_cast<size_t>(dtype_size(o.dtype)));
    if (std::string e = cpu::dequantize(t, o.dtype, bytes.data(), o.cpu); !e.empty()) {
      return cat("tensor '", name, "': ", e);
    }
  }
  out->tensors.push_back({name, std::string(safetensors_name(o.dtype)), t.shape, bytes});
  return "";
}

TensorOutcome outcome(std::string name, std::string dtype, std::vector<int64_t> shape,
                      TensorAction action, uint64_t bytes_in, uint64_t bytes_out) {
  return {std::move(name), std::move(dtype), std::move(shape), action, "", bytes_in, bytes_out};
}

std::string from_safetensors(const std::string& path, const DequantizeOptions& o,
                             const ProgressCallback& progress, Output* out, ConvertReport* report) {
  io::SafetensorsFile& file = out->safetensors_input;
  if (std::string e = io::open_safetensors(path, &file); !e.empty()) return e;
  std::map<std::string, MxTensor> mx;
  if (std::string e = io::load_mx_tensors(file, &mx); !e.empty()) return cat(path, ": ", e);
  // Each component names the MX tensor it belongs to.
  std::map<std::string, std::string> owner;
  for (const auto& [name, t] : mx) {
    for (const std::string& part : io::mx_component_names(name, t)) owner[part] = name;
  }
  std::map<std::string, uint64_t> stored_bytes;
  for (const io::SafetensorsTensor& t : file.tensors()) {
    if (auto it = owner.find(t.name); it != owner.end()) stored_bytes[it->second] += t.bytes.size();
  }
  for (const auto& [key, value] : file.metadata()) {
    if (!key.starts_with("mx.") || !mx.contains(key.substr(3))) out->metadata[key] = value;
  }
  const int64_t total = static_cast<int64_t>(file.tensors().size());
  std::set<std::string> done;
  for (int64_t i = 0; i < total; ++i) {
    const io::SafetensorsTensor& t = file.tensors()[size_t(i)];
    if (auto it = owner.find(t.name); it == owner.end()) {
      out->tensors.push_back({t.name, t.dtype, t.shape, t.bytes});
      report->tensors.push_back(
          outcome(t.name, t.dtype, t.shape, TensorAction::kCopied, t.bytes.size(), t.bytes.size()));
    } else if (done.insert(it->second).second) {
      // The decoded tensor takes the place of its first component.
      const MxTensor& m = mx.at(it->second);
      if (std::string e = decode(it->second, m, o, out); !e.empty()) return cat(path, ": ", e);
      report->tensors.push_back(outcome(it->second, std::string(traits(m.spec.format).mx_name),
                                        m.shape, TensorAction::kConverted, stored_bytes[it->second],
                                        out->storage.back().size()));
    }
    if (progress) progress(i + 1, total, t.name);
  }
  return "";
}

std::string from_gguf(const std::string& path, const DequantizeOptions& o,
                      const ProgressCallback& progress, Output* out, ConvertReport* report) {
  io::GgufFile& file = out->gguf_input;
  if (std::string e = io::open_gguf(path, &file); !e.empty()) return e;
  for (const io::GgufTensor& t : file.tensors()) {
    if (t.type != io::kGgmlMxfp4 && safetensors_dtype_of(t.type).empty()) {
      return cat(path, ": tensor '", t.name, "' has ggml type ", ggml_type_name(t.type),
                 ", which mx dequantize does not decode (MXFP4, F32, F16, BF16, I8-I64, F64 only)");
    }
  }
  for (const io::GgufKv& kv : file.kvs()) {
    if (const auto* s = std::get_if<std::string>(&kv.value.v)) out->metadata[kv.key] = *s;
  }
  const int64_t total = static_cast<int64_t>(file.tensors().size());
  for (int64_t i = 0; i < total; ++i) {
    const io::GgufTensor& t = file.tensors()[size_t(i)];
    if (t.type == io::kGgmlMxfp4) {
      MxTensor m;
      if (std::string e = io::load_gguf_mxfp4(t, &m); !e.empty()) return cat(path, ": ", e);
      if (std::string e = decode(t.name, m, o, out); !e.empty()) return cat(path, ": ", e);
      report->tensors.push_back(outcome(t.name, "MXFP4", t.shape(), TensorAction::kConverted,
                                        t.bytes.size(), out->storage.back().size()));
    } else {
      const std::string dtype(safetensors_dtype_of(t.type));
      out->tensors.push_back({t.name, dtype, t.shape(), t.bytes});
      report->tensors.push_back(
          outcome(t.name, dtype, t.shape(), TensorAction::kCopied, t.bytes.size(), t.bytes.size()));
    }
    if (progress) progress(i + 1, total, t.name);
  }
  return "";
}

}  // namespace

std::string dequantize_checkpoint(const std::string& input_path, const std::string& output_path,
                                  const DequantizeOptions& o, const ProgressCallback& progress,
                                  ConvertReport* report) {
  report->tensors.clear();
  if (std::string e = io::check_output_file(output_path); !e.empty()) return e;
  Output out;
  ConvertReport r;
  const Container c = guess_container(input_path);
  if (c == Container::kLlama2c) {
    return cat(input_path, ": a llama2.c checkpoint holds no MX tensors (mx dequantize reads MX ",
               "safetensors or GGUF)");
  }
  std::string e = c == Container::kGguf ? from_gguf(input_path, o, progress, &out, &r)
                                        : from_safetensors(input_path, o, progress, &out, &r);
  if (!e.empty()) return e;
  io::refresh_checksum(out.tensors, &out.metadata);
  if (e = io::write_safetensors(output_path, out.tensors, out.metadata); !e.empty()) return e;
  *report = std::move(r);
  return "";
}

}  // namespace mx::convert
