// libFuzzer target: parse_llama2c over arbitrary bytes, every array read as floats.
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "mx/io/llama2c.h"

using mx::fuzz::fail;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The reader casts the buffer to floats, so give it a float-aligned copy as a mapping would.
  std::vector<float> aligned((size + 3) / 4);
  if (size > 0) std::memcpy(aligned.data(), data, size);
  const std::span<const uint8_t> file(reinterpret_cast<const uint8_t*>(aligned.data()), size);
  mx::io::Llama2cCheckpoint c;
  const std::string e = mx::io::parse_llama2c(file, &c);
  mx::fuzz::check_error(e);
  if (!e.empty()) {
    if (!c.tensors().empty()) fail("failed parse leaves output", e);
    return 0;
  }
  if (!mx::io::validate(c.config()).empty()) fail("accepted config fails validate()");
  uint64_t expected_offset = 28;
  float sum = 0;
  for (const auto& t : c.tensors()) {
    if (t.file_offset != expected_offset) fail("arrays are not contiguous", t.name);
    uint64_t n = 1;
    for (const int64_t d : t.shape) n *= static_cast<uint64_t>(d);
    if (n != t.data.size()) fail("array size disagrees with its shape", t.name);
    for (const float x : t.data) sum += x;  // every float, read as a float
    expected_offset += t.data.size() * 4;
    if (c.find(t.name) != &t) fail("find() misses a listed array", t.name);
  }
  volatile float sink = sum;
  (void)sink;
  return 0;
}
