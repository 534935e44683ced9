// What a checkpoint conversion did to each tensor, and how it reports progress.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace mx::convert {

// Called after each tensor with the count done, the total and the tensor's name. Conversions
// call it from the thread that called them.
using ProgressCallback = std::function<void(int64_t done, int64_t total, std::string_view name)>;

enum class TensorAction {
  kConverted,  // quantized to MX, or decoded from MX
  kKept,       // a float tensor left in its own dtype; `reason` says why
  kCopied,     // not a float tensor: copied byte for byte
};

struct TensorOutcome {
  std::string name;
  std::string dtype;  // as read: a safetensors dtype, a ggml type name, or an MX format name
  std::vector<int64_t> shape;
  TensorAction action = TensorAction::kCopied;
  std::string reason;  // for kKept: "embedding", "norm", "--skip", ...
  uint64_t bytes_in = 0, bytes_out = 0;
};

struct ConvertReport {
  std::vector<TensorOutcome> tensors;

  int64_t count(TensorAction action) const;
  uint64_t bytes_in() const;
  uint64_t bytes_out() const;
};

}  // namespace mx::convert
