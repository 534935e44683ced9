// libFuzzer target: parse_safetensors over arbitrary bytes, then load_mx_tensors (which parses
// the "mx.*" metadata JSON) over whatever parsed. A file that parses must also survive a round
// trip through encode_safetensors unchanged.
#include <algorithm>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "mx/io/mx_safetensors.h"
#include "mx/io/safetensors.h"

namespace {

using mx::fuzz::fail;
using mx::fuzz::touch;

void walk(const mx::io::SafetensorsFile& f) {
  for (const auto& t : f.tensors()) {
    touch(t.name);
    touch(t.dtype);
    touch(t.bytes);
    std::string err;
    const uint64_t want = mx::io::safetensors_byte_size(t.dtype, t.shape, &err);
    if (!err.empty() || want != t.bytes.size())
      fail("tensor size disagrees with its shape", t.name);
    if (f.find(t.name) == nullptr) fail("find() misses a listed tensor", t.name);
  }
  for (const auto& [k, v] : f.metadata()) {
    touch(k);
    touch(v);
  }
}

void round_trip(const mx::io::SafetensorsFile& f) {
  std::vector<mx::io::TensorToWrite> list;
  for (const auto& t : f.tensors()) list.push_back({t.name, t.dtype, t.shape, t.bytes});
  std::vector<uint8_t> encoded;
  // Names the writer refuses (empty, invalid UTF-8) are fine to read: nothing to compare then.
  if (!mx::io::encode_safetensors(list, f.metadata(), &encoded).empty()) return;
  mx::io::SafetensorsFile back;
  if (auto e = mx::io::parse_safetensors(encoded, &back); !e.empty()) {
    fail("re-encoded file does not parse:", e);
  }
  if (back.tensors().size() != f.tensors().size() || back.metadata() != f.metadata()) {
    fail("round trip changes the tensor list or metadata");
  }
  for (size_t i = 0; i < f.tensors().size(); ++i) {
    const auto& a = f.tensors()[i];
    const auto& b = back.tensors()[i];
    if (a.name != b.name || a.dtype != b.dtype || a.shape != b.shape ||
        !std::equal(a.bytes.begin(), a.bytes.end(), b.bytes.begin(), b.bytes.end())) {
      fail("round trip changes tensor", a.name);
    }
  }
}

void load_mx(const mx::io::SafetensorsFile& f) {
  std::map<std::string, mx::MxTensor> tensors;
  const std::string e = mx::io::load_mx_tensors(f, &tensors);
  mx::fuzz::check_error(e);
  if (!e.empty()) return;
  for (const auto& [name, t] : tensors) {
    touch(name);
    touch(t.elements);
    touch(t.scales);
    touch(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(t.offsets.data()),
                                   t.offsets.size() * sizeof(uint16_t)));
    if (auto c = mx::check_consistent(t); !c.empty()) fail("loaded MX tensor is inconsistent:", c);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  mx::io::SafetensorsFile f;
  const std::string e = mx::io::parse_safetensors(std::span<const uint8_t>(data, size), &f);
  mx::fuzz::check_error(e);
  if (!e.empty()) {
    if (!f.tensors().empty() || !f.metadata().empty()) fail("failed parse leaves output", e);
    return 0;
  }
  walk(f);
  round_trip(f);
  load_mx(f);
  return 0;
}
