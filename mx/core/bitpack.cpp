#include "mx/core/bitpack.h"

namespace mx {

void pack_codes(std::span<const uint8_t> codes, int bits, int64_t first, std::span<uint8_t> out) {
  const unsigned mask = (1u << bits) - 1;
  int64_t bit = first * bits;
  for (uint8_t code : codes) {
    // A code straddles at most two bytes (bits <= 8).
    const int64_t byte = bit / 8;
    const int shift = static_cast<int>(bit % 8);
    const unsigned placed = (code & mask) << shift;
    const unsigned keep = ~(mask << shift);
    out[byte] = static_cast<uint8_t>((out[byte] & keep) | (placed & 0xFF));
    if (shift + bits > 8) {
      out[byte + 1] = static_cast<uint8_t>((out[byte + 1] & (keep >> 8)) | ((placed >> 8) & 0xFF));
    }
    bit += bits;
  }
}

void unpack_codes(std::span<const uint8_t> packed, int bits, int64_t first,
                  std::span<uint8_t> out) {
  const unsigned mask = (1u << bits) - 1;
  int64_t bit = first * bits;
  for (uint8_t& code : out) {
    const int64_t byte = bit / 8;
    const int shift = static_cast<int>(bit % 8);
    unsigned word = packed[byte];
    if (shift + bits > 8) word |= unsigned(packed[byte + 1]) << 8;
    code = static_cast<uint8_t>((word >> shift) & mask);
    bit += bits;
  }
}

}  // namespace mx
