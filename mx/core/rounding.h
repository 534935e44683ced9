// Element rounding modes, and the counter-based generator behind stochastic rounding.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace mx {

enum class Rounding : uint8_t {
  kNearestEven,  // OCP default: round to nearest, ties to even
  kNearestAway,  // ties away from zero (microxcaling's round="nearest")
  kTowardZero,   // truncate the magnitude
  kStochastic,   // round up with probability equal to the discarded fraction (32-bit resolution)
};

std::string_view rounding_name(Rounding r);
std::optional<Rounding> parse_rounding(std::string_view name);

// Stochastic rounding draws one 32-bit number per element from a counter-based generator keyed
// by the seed and the element's flat index in the input tensor, so any backend, any thread
// split and any block order reproduces the same bits. The mix is SplitMix64's finalizer
// (Steele, Lea, Flood 2014) applied to a hashed seed plus the index times the golden ratio.
constexpr uint64_t splitmix64_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

constexpr uint64_t stochastic_stream_key(uint64_t seed) {
  return splitmix64_mix(seed);
}

constexpr uint32_t stochastic_bits(uint64_t stream_key, uint64_t element_index) {
  return static_cast<uint32_t>(
      splitmix64_mix(stream_key + (element_index + 1) * 0x9E3779B97F4A7C15ull) >> 32);
}

}  // namespace mx
