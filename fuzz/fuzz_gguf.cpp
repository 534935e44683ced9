// libFuzzer target: parse_gguf over arbitrary bytes, every KV and tensor walked, every MXFP4
// (type 39) tensor loaded with load_gguf_mxfp4, and a parsed file re-encoded and parsed again.
#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "mx/io/gguf.h"

namespace {

using mx::fuzz::fail;
using mx::fuzz::touch;

void walk_value(const mx::io::GgufValue& v) {
  if (const auto* s = std::get_if<std::string>(&v.v)) {
    touch(*s);
  } else if (const auto* a = std::get_if<mx::io::GgufArray>(&v.v)) {
    uint64_t seen = 0;
    const std::string e = a->for_each([&](const mx::io::GgufValue& item) {
      if (item.type() != a->type()) fail("array item of another type than the array's");
      walk_value(item);
      ++seen;
      return std::string();
    });
    if (!e.empty()) fail("a parsed array does not decode:", e);
    if (seen != a->size()) fail("array decodes to another count than it declares");
  }
}

void walk(const mx::io::GgufFile& f, std::span<const uint8_t> file) {
  if (f.data_offset() > file.size() || f.alignment() == 0) fail("bad data offset or alignment");
  for (const auto& kv : f.kvs()) {
    touch(kv.key);
    walk_value(kv.value);
    if (f.find_kv(kv.key) == nullptr) fail("find_kv() misses a listed key", kv.key);
  }
  for (const auto& t : f.tensors()) {
    touch(t.name);
    touch(t.bytes);
    if (t.bytes.data() != file.data() + f.data_offset() + t.offset) {
      fail("tensor bytes are not at data offset + offset", t.name);
    }
    if (f.find_tensor(t.name) == nullptr) fail("find_tensor() misses a listed tensor", t.name);
    if (t.type != mx::io::kGgmlMxfp4) continue;
    mx::MxTensor m;
    const std::string e = mx::io::load_gguf_mxfp4(t, &m);
    mx::fuzz::check_error(e);
    if (!e.empty()) continue;
    touch(m.elements);
    touch(m.scales);
    if (auto c = mx::check_consistent(m); !c.empty()) fail("loaded MXFP4 is inconsistent:", c);
  }
}

void round_trip(const mx::io::GgufFile& f) {
  std::vector<mx::io::GgufTensorToWrite> list;
  for (const auto& t : f.tensors()) list.push_back({t.name, t.dims, t.type, t.bytes});
  std::vector<uint8_t> encoded;
  if (!mx::io::encode_gguf(f.kvs(), list, &encoded).empty()) return;
  mx::io::GgufFile back;
  if (auto e = mx::io::parse_gguf(encoded, &back); !e.empty()) {
    fail("re-encoded file does not parse:", e);
  }
  if (back.kvs().size() != f.kvs().size() || back.tensors().size() != f.tensors().size()) {
    fail("round trip changes the KV or tensor count");
  }
  for (const auto& t : f.tensors()) {
    const mx::io::GgufTensor* b = back.find_tensor(t.name);
    if (b == nullptr || b->dims != t.dims || b->type != t.type ||
        !std::equal(t.bytes.begin(), t.bytes.end(), b->bytes.begin(), b->bytes.end())) {
      fail("round trip changes tensor", t.name);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> file(data, size);
  mx::io::GgufFile f;
  const std::string e = mx::io::parse_gguf(file, &f);
  mx::fuzz::check_error(e);
  if (!e.empty()) {
    if (!f.kvs().empty() || !f.tensors().empty()) fail("failed parse leaves output", e);
    return 0;
  }
  walk(f, file);
  round_trip(f);
  return 0;
}
