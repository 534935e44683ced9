// Element codes packed as a little-endian bit stream: code i of width w occupies bits
// [w*i, w*i + w) counting from bit 0 of byte 0. For 4-bit codes this is "low nibble first"
// (PyTorch float4_e2m1fn_x2, gpt-oss); for 6-bit codes it is DLPack/ONNX's order, four
// elements in three bytes; 8-bit codes are one per byte.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace mx {

constexpr int64_t packed_bytes(int64_t count, int bits) {
  return (count * bits + 7) / 8;
}

// Writes `codes` (each < 2^bits) into `out` starting at code position `first`. Bits of `out`
// outside the written codes are preserved.
void pack_codes(std::span<const uint8_t> codes, int bits, int64_t first, std::span<uint8_t> out);

// Reads `out.size()` codes starting at code position `first`.
void unpack_codes(std::span<const uint8_t> packed, int bits, int64_t first, std::span<uint8_t> out);

}  // namespace mx
