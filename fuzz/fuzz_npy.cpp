// libFuzzer target: decode_npy over arbitrary bytes; an array that decodes must survive
// encode_npy and decode_npy unchanged.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "mx/io/npy.h"

using mx::fuzz::fail;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  mx::io::NpyArray a;
  const std::string e = mx::io::decode_npy(std::span<const uint8_t>(data, size), &a);
  mx::fuzz::check_error(e);
  if (!e.empty()) return 0;
  mx::fuzz::touch(a.data);
  if (static_cast<uint64_t>(a.element_count()) * mx::io::npy_itemsize(a.dtype) != a.data.size()) {
    fail("data size disagrees with shape and dtype");
  }
  std::vector<uint8_t> encoded;
  if (auto w = mx::io::encode_npy(a, &encoded); !w.empty())
    fail("decoded array does not encode:", w);
  mx::io::NpyArray back;
  if (auto r = mx::io::decode_npy(encoded, &back); !r.empty()) fail("re-encoded array:", r);
  if (back.dtype != a.dtype || back.shape != a.shape || back.data != a.data) {
    fail("round trip changes the array");
  }
  return 0;
}
