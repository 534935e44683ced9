// `mx inspect`: what a checkpoint holds, tensor by tensor. Reads safetensors (plain or MX),
// GGUF and llama2.c checkpoints (io/container.h tells them apart). An MX tensor of an MX
// safetensors file (NAME.blocks, NAME.scales, NAME.offsets and "mx.NAME") is listed once, as
// the logical tensor NAME with the bytes of all its parts and its spec.
//
// The compression ratio is against the same tensor in BF16: 2 bytes per element over the bytes
// stored. Only float tensors (plain floats, MX, ggml quants) have one; integer and boolean
// tensors count at their own size in the totals, as they would in a BF16 checkpoint.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "mx/core/quant_spec.h"
#include "mx/io/container.h"

namespace mx::convert {

using io::Container;

struct InspectedTensor {
  std::string name;
  std::string dtype;  // safetensors dtype, ggml type name ("MXFP4", "Q4_K") or MX format name
  std::vector<int64_t> shape;  // logical shape
  uint64_t bytes = 0;          // as stored, all parts together
  bool is_float = false;
  std::optional<QuantSpec> spec;  // MX tensors only
  std::string spec_text;          // describe(spec); ggml MXFP4 stores no scale rule or rounding

  uint64_t bf16_bytes() const;
  std::optional<double> ratio() const;  // bf16_bytes / bytes, float tensors only
};

struct Inspection {
  std::string path;
  Container container = Container::kSafetensors;
  uint64_t file_bytes = 0;
  std::vector<std::pair<std::string, std::string>> metadata;  // less the "mx.*" keys
  std::vector<InspectedTensor> tensors;                       // in file order

  uint64_t bytes() const;
  uint64_t bf16_bytes() const;
  std::optional<double> ratio() const;  // nullopt when nothing is stored
  int64_t mx_count() const;
  int64_t parameters() const;  // elements of the float tensors
};

std::string inspect_checkpoint(const std::string& path, Inspection* out);

// One JSON object: {"file", "container", "file_bytes", "metadata": {...}, "tensors": [{"name",
// "dtype", "shape", "bytes", "bf16_bytes", "ratio", "spec"}...], "total": {"tensors",
// "mx_tensors", "parameters", "bytes", "bf16_bytes", "ratio"}}. "ratio" is null for
// non-float tensors; "spec" (MX tensors only) holds the "mx.NAME" keys and "text".
std::string inspection_json(const Inspection& inspection);

}  // namespace mx::convert
